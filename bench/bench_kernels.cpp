// The kernels the two example models spend their time in, each next to its reference: the
// MLP's first-layer GEMMs (forward and both backward transposes) and a Dense+relu forward against
// cblas_sgemm alone; the CNN's two Conv2d layers forward and forward+backward against their
// per-image GEMMs alone; max-pool against a plain c = a + b stream of the same bytes; softmax +
// cross-entropy (forward and gradient) against a hand-written loop (and, at 256 x 1000, the
// stream). A ratio table after the usual output pairs every pynn row with its reference. /t1 and
// /t2 are pynn::Flags threads for pynn and OpenBLAS threads for sgemm (GemmSet: the per-image
// GEMMs split over the threads); the stream and the loop use one thread.
// Built with oneDNN (PYNN_BENCH_DNNL), each GEMM row also has a dnnl_sgemm reference: kernels
// generated at run time for this CPU, i.e. what a tuned vendor library reaches at these shapes.
// Run: ./build/release/bench/bench_kernels --benchmark_repetitions=5
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#if defined(PYNN_BENCH_HAVE_DNNL)
#include <dnnl.h>
#include <omp.h>
#endif

#include <pynn/pynn.hpp>

#include "bench_support.hpp"
#include "ratio_reporter.hpp"

#include "stream_reference.hpp"

namespace {

using pynn::ComputeGraph;
using pynn::Tensor;
using pynn_bench::Compare;
using pynn_bench::GemmSet;
using pynn_bench::GemmShape;
using pynn_bench::RatioReporter;

constexpr int k_threads[] = {1, 2};

std::int64_t as_count(double v) { return static_cast<std::int64_t>(v); }

void sink(const Tensor& t) {
    benchmark::DoNotOptimize(t.node().get());
    benchmark::ClobberMemory();
}

using pynn_bench::register_stream; // the c = a + b floor (stream_reference.hpp)

// --- GEMM: the MLP's first layer (784 -> 256) at batch 64 and 256 ---

struct GemmCase {
    const char* variant; // fwd: x @ W; grad_w: x^T @ g (TN); grad_x: g @ W^T (NT)
    GemmShape shape;
};

std::vector<GemmCase> gemm_cases(std::size_t batch) {
    return {{"fwd", {false, false, batch, 256, 784}},
            {"grad_w", {true, false, 784, 256, batch}},
            {"grad_x", {false, true, batch, 784, 256}}};
}

// pynn's matmul with operands stored as the model stores them (a transposed operand is a
// transpose() of the stored tensor, which the compiler turns into a BLAS flag).
void bm_gemm_pynn(benchmark::State& state, GemmShape s, int threads) {
    pynn::Flags::set_num_threads(threads);
    const Tensor a = Tensor::rand(s.trans_a ? pynn::Shape{s.k, s.m} : pynn::Shape{s.m, s.k});
    const Tensor b = Tensor::rand(s.trans_b ? pynn::Shape{s.n, s.k} : pynn::Shape{s.k, s.n});
    const Tensor c =
        pynn::matmul(s.trans_a ? pynn::transpose(a) : a, s.trans_b ? pynn::transpose(b) : b);
    ComputeGraph graph({c});
    graph.run();
    for (auto _ : state) {
        graph.run();
        sink(c);
    }
    state.counters["kernels"] = static_cast<double>(graph.num_kernels());
    state.SetItemsProcessed(as_count(static_cast<double>(state.iterations()) * s.flops()));
}

// The reference: the GEMMs alone through OpenBLAS on `threads` cores (see GemmSet).
void bm_gemm_set(benchmark::State& state, std::vector<GemmShape> shapes, int threads) {
    const pynn_bench::BlasThreads blas(threads);
    GemmSet set(std::move(shapes), threads);
    set.run();
    for (auto _ : state) {
        set.run();
        benchmark::DoNotOptimize(set.result(0));
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(as_count(static_cast<double>(state.iterations()) * set.flops()));
}

#if defined(PYNN_BENCH_HAVE_DNNL)
// The same product through oneDNN's dnnl_sgemm (row-major, like cblas with CblasRowMajor) on
// `threads` OpenMP threads.
void bm_gemm_dnnl(benchmark::State& state, GemmShape s, int threads) {
    omp_set_num_threads(threads);
    std::vector<float> av(s.m * s.k);
    std::vector<float> bv(s.k * s.n);
    std::vector<float> c(s.m * s.n);
    for (std::size_t i = 0; i < av.size(); ++i) {
        av[i] = static_cast<float>(i % 97) / 97.0F - 0.5F;
    }
    for (std::size_t i = 0; i < bv.size(); ++i) {
        bv[i] = static_cast<float>(i % 89) / 89.0F - 0.5F;
    }
    const auto dim = [](std::size_t v) { return static_cast<dnnl_dim_t>(v); };
    auto run = [&] {
        const dnnl_status_t status = dnnl_sgemm(
            s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', dim(s.m), dim(s.n), dim(s.k), 1.0F,
            av.data(), dim(s.trans_a ? s.m : s.k), bv.data(), dim(s.trans_b ? s.k : s.n), 0.0F,
            c.data(), dim(s.n));
        if (status != dnnl_success) {
            state.SkipWithError("dnnl_sgemm failed");
        }
    };
    run();
    // A reference must compute the product: checked once against cblas_sgemm.
    std::vector<float> expected(c.size());
    pynn_bench::sgemm(s, av.data(), bv.data(), expected.data(), false);
    for (std::size_t i = 0; i < c.size(); ++i) {
        if (std::abs(c[i] - expected[i]) > 1e-3F * (1.0F + std::abs(expected[i]))) {
            state.SkipWithError("dnnl_sgemm's product differs from cblas_sgemm's");
            return;
        }
    }
    for (auto _ : state) {
        run();
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(as_count(static_cast<double>(state.iterations()) * s.flops()));
}
#endif

// Dense(784, 256, relu) forward as the model runs it: the GEMM with bias + relu fused after it.
void bm_dense_relu_pynn(benchmark::State& state, std::size_t batch, int threads) {
    pynn::Flags::set_num_threads(threads);
    pynn::NoGradGuard no_grad;
    const Tensor x = Tensor::randn({batch, 784});
    const Tensor y = pynn::layers::Dense(784, 256, pynn::relu)(x);
    ComputeGraph graph({y});
    graph.run();
    for (auto _ : state) {
        graph.run();
        sink(y);
    }
    state.counters["kernels"] = static_cast<double>(graph.num_kernels());
    const GemmShape s{false, false, batch, 256, 784};
    state.SetItemsProcessed(as_count(static_cast<double>(state.iterations()) * s.flops()));
}

void register_gemms(RatioReporter& rep) {
    for (std::size_t batch : {std::size_t{64}, std::size_t{256}}) {
        for (int t : k_threads) {
            const std::string dims =
                "/b" + std::to_string(batch) + "_784x256/t" + std::to_string(t);
            for (const GemmCase& gc : gemm_cases(batch)) {
                const std::string base = std::string("BM_gemm_") + gc.variant;
                const std::string pynn_name = base + "_pynn" + dims;
                const std::string ref_name = base + "_sgemm" + dims;
                benchmark::RegisterBenchmark(pynn_name.c_str(), bm_gemm_pynn, gc.shape, t)
                    ->UseRealTime();
                benchmark::RegisterBenchmark(ref_name.c_str(), bm_gemm_set,
                                             std::vector<GemmShape>{gc.shape}, t)
                    ->UseRealTime();
                rep.set_items_unit(pynn_name, "FLOP");
                rep.set_items_unit(ref_name, "FLOP");
                rep.add({pynn_name, ref_name, Compare::Time, 0.0});
#if defined(PYNN_BENCH_HAVE_DNNL)
                const std::string dnnl_name = base + "_dnnl" + dims;
                benchmark::RegisterBenchmark(dnnl_name.c_str(), bm_gemm_dnnl, gc.shape, t)
                    ->UseRealTime();
                rep.set_items_unit(dnnl_name, "FLOP");
                rep.add({pynn_name, dnnl_name, Compare::Time, 0.0});
#endif
            }
            const std::string dense = "BM_dense_relu_pynn" + dims;
            benchmark::RegisterBenchmark(dense.c_str(), bm_dense_relu_pynn, batch, t)
                ->UseRealTime();
            rep.set_items_unit(dense, "FLOP");
            rep.add({dense, "BM_gemm_fwd_sgemm" + dims, Compare::Time, 0.0});
        }
    }
}

// --- Conv2d: the CNN's two layers at batch 64 (3x3, padding 1) ---

struct ConvLayer {
    const char* name;
    std::size_t c, o, hw;
    bool first; // reads the model input: no input gradient
};
constexpr ConvLayer k_conv_layers[] = {{"conv1_1x28x28_32", 1, 32, 28, true},
                                       {"conv2_32x14x14_64", 32, 64, 14, false}};
constexpr std::size_t k_conv_batch = 64;

std::vector<GemmShape> conv_shapes(const ConvLayer& l, bool training) {
    std::vector<GemmShape> g;
    pynn_bench::conv_gemms(g, k_conv_batch, l.c, l.o, l.hw, training, l.first);
    return g;
}

// Forward only, or forward + the backward the model runs (weight gradient, and the input
// gradient for the second layer), seeded with a fixed grad_out.
void bm_conv_pynn(benchmark::State& state, ConvLayer l, bool backward, int threads) {
    pynn::Flags::set_num_threads(threads);
    Tensor x = Tensor::randn({k_conv_batch, l.c, l.hw, l.hw});
    Tensor w = Tensor::randn({l.o, l.c, 3, 3}, 0.0, 0.1);
    if (backward) {
        w.set_requires_grad();
        if (!l.first) {
            x.set_requires_grad();
        }
    }
    const Tensor y = pynn::conv2d(x, w, 1, 1);
    ComputeGraph graph =
        backward ? ComputeGraph::backward(y, Tensor::randn(y.shape())) : ComputeGraph({y});
    auto step = [&] {
        if (backward) {
            w.zero_grad();
            if (!l.first) {
                x.zero_grad();
            }
        }
        graph.run();
    };
    step();
    for (auto _ : state) {
        step();
        sink(y);
    }
    state.counters["kernels"] = static_cast<double>(graph.num_kernels());
    state.SetItemsProcessed(as_count(static_cast<double>(state.iterations()) *
                                     pynn_bench::total_flops(conv_shapes(l, backward))));
}

void register_convs(RatioReporter& rep) {
    for (const ConvLayer& l : k_conv_layers) {
        for (int t : k_threads) {
            for (bool backward : {false, true}) {
                const std::string dims = std::string("/") + l.name + "/t" + std::to_string(t);
                const std::string base = backward ? "BM_conv_fwdbwd" : "BM_conv_fwd";
                const std::string pynn_name = base + "_pynn" + dims;
                const std::string ref_name = base + "_sgemm" + dims;
                benchmark::RegisterBenchmark(pynn_name.c_str(), bm_conv_pynn, l, backward, t)
                    ->UseRealTime();
                benchmark::RegisterBenchmark(ref_name.c_str(), bm_gemm_set,
                                             conv_shapes(l, backward), t)
                    ->UseRealTime();
                rep.set_items_unit(pynn_name, "FLOP");
                rep.set_items_unit(ref_name, "FLOP");
                rep.add({pynn_name, ref_name, Compare::Time, 0.0});
            }
        }
    }
}

// --- max-pool 2x2: the CNN's two pools at batch 64 ---

struct PoolCase {
    const char* name;
    std::size_t c, hw;
};
constexpr PoolCase k_pools[] = {{"pool1_32x28x28", 32, 28}, {"pool2_64x14x14", 64, 14}};

// Bytes a pass must move: forward reads x and writes y; backward reads x and grad_y and writes
// grad_x.
double pool_bytes(const PoolCase& p, bool backward) {
    const double x = static_cast<double>(k_conv_batch * p.c * p.hw * p.hw) * 4.0;
    const double y = x / 4.0;
    return backward ? 3.0 * x + 2.0 * y : x + y;
}

void bm_pool_pynn(benchmark::State& state, PoolCase p, bool backward, int threads) {
    pynn::Flags::set_num_threads(threads);
    Tensor x = Tensor::randn({k_conv_batch, p.c, p.hw, p.hw});
    if (backward) {
        x.set_requires_grad();
    }
    const Tensor y = pynn::max_pool2d(x, 2);
    ComputeGraph graph =
        backward ? ComputeGraph::backward(y, Tensor::randn(y.shape())) : ComputeGraph({y});
    auto step = [&] {
        if (backward) {
            x.zero_grad();
        }
        graph.run();
    };
    step();
    for (auto _ : state) {
        step();
        sink(y);
    }
    state.counters["kernels"] = static_cast<double>(graph.num_kernels());
    state.SetBytesProcessed(
        as_count(static_cast<double>(state.iterations()) * pool_bytes(p, backward)));
}

void register_pools(RatioReporter& rep) {
    for (const PoolCase& p : k_pools) {
        for (bool backward : {false, true}) {
            const std::string stream = register_stream(pool_bytes(p, backward));
            for (int t : k_threads) {
                const std::string name =
                    std::string(backward ? "BM_maxpool_fwdbwd_pynn/" : "BM_maxpool_fwd_pynn/") +
                    p.name + "/t" + std::to_string(t);
                benchmark::RegisterBenchmark(name.c_str(), bm_pool_pynn, p, backward, t)
                    ->UseRealTime();
                rep.add({name, stream, Compare::Bandwidth, 0.0});
            }
        }
    }
}

// --- softmax + cross-entropy, forward and gradient with respect to the logits ---

// cross_entropy_with_logits (the CNN's head) or the MLP's head: softmax, then the seed's
// categorical_cross_entropy (clip, log) against one-hot targets.
void bm_softmax_ce_pynn(benchmark::State& state, std::size_t batch, std::size_t classes,
                        bool mlp_head, bool fused) {
    const bool saved = pynn::Flags::fusion();
    pynn::Flags::set_fusion(fused);
    pynn::Flags::set_num_threads(1);
    Tensor logits = Tensor::randn({batch, classes}).set_requires_grad();
    xt::xarray<float> onehot = xt::zeros<float>({batch, classes});
    for (std::size_t i = 0; i < batch; ++i) {
        onehot(i, (i * 7) % classes) = 1.0F;
    }
    const Tensor target = Tensor::from_values(onehot);
    const Tensor loss = mlp_head
                            ? pynn::losses::categorical_cross_entropy(pynn::softmax(logits), target)
                            : pynn::losses::cross_entropy_with_logits(logits, target);
    ComputeGraph graph = ComputeGraph::backward(loss);
    for (auto _ : state) {
        logits.zero_grad();
        graph.run();
        sink(loss);
    }
    state.counters["kernels"] = static_cast<double>(graph.num_kernels());
    // Read logits and targets, write the gradient.
    state.SetBytesProcessed(as_count(static_cast<double>(state.iterations()) * 12.0 *
                                     static_cast<double>(batch * classes)));
    pynn::Flags::set_fusion(saved);
}

// The reference: one pass per row for max and sum of exponentials, one for loss and gradient.
void bm_softmax_ce_loop(benchmark::State& state, std::size_t batch, std::size_t classes) {
    std::vector<float> logits(batch * classes), onehot(batch * classes, 0.0F);
    std::vector<float> grad(batch * classes);
    for (std::size_t i = 0; i < logits.size(); ++i) {
        logits[i] = static_cast<float>((i * 37) % 101) / 50.0F - 1.0F;
    }
    for (std::size_t i = 0; i < batch; ++i) {
        onehot[i * classes + (i * 7) % classes] = 1.0F;
    }
    const float inv_batch = 1.0F / static_cast<float>(batch);
    for (auto _ : state) {
        float loss = 0.0F;
        for (std::size_t i = 0; i < batch; ++i) {
            const float* x = logits.data() + i * classes;
            const float* y = onehot.data() + i * classes;
            float* g = grad.data() + i * classes;
            float mx = x[0];
            for (std::size_t j = 1; j < classes; ++j) {
                mx = std::max(mx, x[j]);
            }
            float sum = 0.0F;
            for (std::size_t j = 0; j < classes; ++j) {
                g[j] = std::exp(x[j] - mx);
                sum += g[j];
            }
            const float inv = 1.0F / sum;
            const float log_sum = std::log(sum) + mx;
            for (std::size_t j = 0; j < classes; ++j) {
                loss += y[j] * (log_sum - x[j]);
                g[j] = (g[j] * inv - y[j]) * inv_batch;
            }
        }
        loss *= inv_batch;
        benchmark::DoNotOptimize(loss);
        benchmark::DoNotOptimize(grad.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(as_count(static_cast<double>(state.iterations()) * 12.0 *
                                     static_cast<double>(batch * classes)));
}

void register_softmax_ce(RatioReporter& rep) {
    const std::pair<std::size_t, std::size_t> sizes[] = {{64, 10}, {256, 10}, {256, 1000}};
    for (auto [batch, classes] : sizes) {
        const std::string dims = "/" + std::to_string(batch) + "x" + std::to_string(classes);
        const std::string ref = "BM_softmax_ce_loop" + dims;
        benchmark::RegisterBenchmark(ref.c_str(), bm_softmax_ce_loop, batch, classes);
        const std::string stream =
            classes >= 1000 ? register_stream(12.0 * static_cast<double>(batch * classes)) : "";
        struct Variant {
            const char* name;
            bool mlp_head, fused;
        };
        for (Variant v : {Variant{"BM_softmax_ce_pynn", false, true},
                          Variant{"BM_softmax_ce_unfused_pynn", false, false},
                          Variant{"BM_softmax_cce_mlp_head_pynn", true, true}}) {
            const std::string name = v.name + dims;
            benchmark::RegisterBenchmark(name.c_str(), bm_softmax_ce_pynn, batch, classes,
                                         v.mlp_head, v.fused);
            rep.add({name, ref, Compare::Time, 0.0});
            if (classes >= 1000) { // large enough for the bandwidth floor to mean something
                rep.add({name, stream, Compare::Bandwidth, 0.0});
            }
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    return pynn_bench::run_with_ratios(argc, argv, [](RatioReporter& rep) {
        register_gemms(rep);
        register_convs(rep);
        register_pools(rep);
        register_softmax_ce(rep);
    });
}
