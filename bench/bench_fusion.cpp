// The fusion pass, measured: a chain of 8 elementwise ops over 16 M floats run fused, unfused,
// as one hand-written xtensor expression, and next to a plain c = a + b stream (the bandwidth
// floor); and softmax + cross-entropy forward+backward, fused vs unfused, at two sizes.
// Run: ./build/release/bench/bench_fusion --benchmark_min_time=0.2
#include <cstddef>
#include <cstdint>

#include <benchmark/benchmark.h>
#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include <pynn/pynn.hpp>

namespace {

constexpr std::size_t k_chain = std::size_t{1} << 24; // 16 M elements

// Bytes a single pass must move: read x once, write y once.
void set_chain_bytes(benchmark::State& state) {
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(2 * k_chain * sizeof(float)));
}

pynn::Tensor chain(const pynn::Tensor& x) {
    using namespace pynn;
    Tensor t = x * 1.5;     // 1
    t = t + 0.5;            // 2
    t = relu(t);            // 3
    t = t * t;              // 4
    t = t - x;              // 5
    t = abs(t);             // 6
    t = t * 0.25;           // 7
    return minimum(t, x);   // 8
}

void run_chain(benchmark::State& state, bool fused) {
    const bool saved = pynn::Flags::fusion();
    pynn::Flags::set_fusion(fused);
    const pynn::Tensor x = pynn::Tensor::rand({k_chain}, -1.0, 1.0, pynn::DType::Float32);
    pynn::Tensor y = chain(x);
    pynn::ComputeGraph graph({y});
    for (auto _ : state) {
        graph.run();
        benchmark::DoNotOptimize(y.node().get());
        benchmark::ClobberMemory();
    }
    state.counters["kernels"] = static_cast<double>(graph.num_kernels());
    set_chain_bytes(state);
    pynn::Flags::set_fusion(saved);
}

void BM_chain8_fused(benchmark::State& state) { run_chain(state, true); }
void BM_chain8_unfused(benchmark::State& state) { run_chain(state, false); }

// The same 8 ops as one xtensor expression, evaluated in one pass with xsimd.
void BM_chain8_xtensor_expression(benchmark::State& state) {
    xt::xarray<float> x = xt::zeros<float>({k_chain});
    for (std::size_t i = 0; i < k_chain; ++i) {
        x(i) = static_cast<float>(i % 1000) / 500.0F - 1.0F;
    }
    xt::xarray<float> y = xt::zeros<float>({k_chain});
    for (auto _ : state) {
        auto t = xt::maximum(x * 1.5F + 0.5F, 0.0F);
        xt::noalias(y) = xt::minimum(xt::abs(t * t - x) * 0.25F, x);
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    set_chain_bytes(state);
}

// The floor: one streaming pass c = a + b (three arrays, so its bytes are 3 per element).
void BM_stream_add(benchmark::State& state) {
    xt::xarray<float> a = xt::ones<float>({k_chain});
    xt::xarray<float> b = xt::ones<float>({k_chain});
    xt::xarray<float> c = xt::zeros<float>({k_chain});
    for (auto _ : state) {
        xt::noalias(c) = a + b;
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(3 * k_chain * sizeof(float)));
}

BENCHMARK(BM_stream_add)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_chain8_xtensor_expression)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_chain8_fused)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_chain8_unfused)->Unit(benchmark::kMillisecond);

// softmax + cross-entropy, forward and backward with respect to the logits.
void run_softmax_ce(benchmark::State& state, bool fused) {
    using namespace pynn;
    const bool saved = Flags::fusion();
    Flags::set_fusion(fused);
    const auto batch = static_cast<std::size_t>(state.range(0));
    const auto classes = static_cast<std::size_t>(state.range(1));
    Tensor logits = Tensor::randn({batch, classes}).set_requires_grad();
    Tensor labels = Tensor::zeros({batch});
    Tensor loss = losses::cross_entropy_with_logits(logits, labels);
    ComputeGraph graph = ComputeGraph::backward(loss);
    for (auto _ : state) {
        logits.zero_grad();
        graph.run();
        benchmark::DoNotOptimize(loss.node().get());
    }
    state.counters["kernels"] = static_cast<double>(graph.num_kernels());
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch * classes));
    Flags::set_fusion(saved);
}
void BM_softmax_ce_fused(benchmark::State& state) { run_softmax_ce(state, true); }
void BM_softmax_ce_unfused(benchmark::State& state) { run_softmax_ce(state, false); }
BENCHMARK(BM_softmax_ce_fused)->Args({64, 10})->Args({256, 1000});
BENCHMARK(BM_softmax_ce_unfused)->Args({64, 10})->Args({256, 1000});

} // namespace
BENCHMARK_MAIN();
