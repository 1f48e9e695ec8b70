// Whole models, as the examples train them: one training step (forward, loss, backward, Adam
// update) and one inference pass of the seed MLP (batch 64 and 256) and the example CNN (batch
// 64), with 1 and 2 threads, each next to its floor, the same step's GEMMs run by cblas_sgemm
// alone (and, for information, those GEMMs plus the least memory traffic of the Adam update).
// Also: plan compilation (cold plan cache) apart from the step, and what building the step's
// graphs and looking their plans up costs per step. Per-step p50/p90 are counters. With 2
// threads, inference is also compared with two independent one-thread passes over half the batch
// each, run at once (*_infer_halves): a split of the batch with no coordination at all.
// Run: ./build/release/bench/bench_models --benchmark_repetitions=5
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include <pynn/pynn.hpp>

#include "bench_support.hpp"
#include "ratio_reporter.hpp"

namespace {

using pynn::ComputeGraph;
using pynn::Tensor;
using pynn_bench::Compare;
using pynn_bench::ModelKind;
using pynn_bench::PynnModel;
using pynn_bench::RatioReporter;

struct ModelCase {
    ModelKind kind;
    std::size_t batch;
};
constexpr ModelCase k_models[] = {
    {ModelKind::Mlp, 64}, {ModelKind::Mlp, 256}, {ModelKind::Cnn, 64}};
constexpr int k_threads[] = {1, 2};

std::string case_name(const ModelCase& c, const char* what) {
    return "BM_" + pynn_bench::model_name(c.kind) + "_" + what + "/b" + std::to_string(c.batch);
}

// One model per case for the whole run (Google Benchmark calls a benchmark function several
// times; rebuilding the CNN each time would only add set-up time). Weights come from seed 0.
PynnModel& model_for(const ModelCase& c) {
    static std::map<std::pair<int, std::size_t>, std::unique_ptr<PynnModel>> models;
    auto& slot = models[{static_cast<int>(c.kind), c.batch}];
    if (!slot) {
        pynn::manual_seed(0);
        slot = std::make_unique<PynnModel>(c.kind, c.batch, pynn_bench::make_batch(c.batch));
    }
    return *slot;
}

// Every benchmark here also times each iteration on its own and reports the p50 and p90 of
// those samples: on a shared machine the mean (Google Benchmark's time) takes in every
// preemption, the p50 hardly any, so the ratio table compares p50s (see ratio_reporter.hpp).
class Samples {
public:
    void start() { m_t0 = std::chrono::steady_clock::now(); }
    void stop() { m_s.push_back(pynn_bench::seconds_since(m_t0)); }
    void report(benchmark::State& state) const {
        const double p50 = pynn_bench::quantile(m_s, 0.5);
        const double p90 = pynn_bench::quantile(m_s, 0.9);
        state.counters["p50_ms"] = p50 * 1e3;
        state.counters["p90_ms"] = p90 * 1e3;
        state.counters["p90/p50"] = p50 > 0 ? p90 / p50 : 0.0;
    }

private:
    std::chrono::steady_clock::time_point m_t0;
    std::vector<double> m_s;
};

template <class Step>
void time_steps(benchmark::State& state, const ModelCase& c, bool training, Step step) {
    for (int i = 0; i < 2; ++i) {
        benchmark::DoNotOptimize(step()); // plans compiled (or cached), caches warm
    }
    Samples samples;
    for (auto _ : state) {
        samples.start();
        benchmark::DoNotOptimize(step());
        samples.stop();
    }
    samples.report(state);
    const double flops = pynn_bench::total_flops(pynn_bench::step_gemms(c.kind, c.batch, training));
    state.counters["gemm_flop"] = benchmark::Counter(
        flops * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(c.batch));
}

void bm_train_step(benchmark::State& state, ModelCase c, int threads) {
    pynn::Flags::set_num_threads(threads);
    PynnModel& m = model_for(c);
    time_steps(state, c, true, [&] { return m.train_step(); });
}

void bm_infer(benchmark::State& state, ModelCase c, int threads) {
    pynn::Flags::set_num_threads(threads);
    PynnModel& m = model_for(c);
    time_steps(state, c, false, [&] { return m.infer(); });
}

// An inference pass with the batch split over 2 cores and no coordination at all: two one-thread
// passes over half the batch each, one per core, started together; an iteration ends when both
// have finished. They share nothing but the weights: no pool, no barrier between layers, no GEMM
// split. Where pynn's 2-thread pass is as fast as this, what it costs above half of the one-thread
// time is what two busy cores give each other (the shared L3 and memory, the all-core clock), not
// pynn's scheduling. (Not a bound: with few rows per core, each core streaming all the weights
// costs more than pynn's split of a GEMM by depth.) Both passes run the same cached plan, so one
// of them allocates its own arena per pass (ComputeGraph::run), a few microseconds against it.
void bm_infer_halves(benchmark::State& state, ModelCase c) {
    pynn::Flags::set_num_threads(1);
    const PynnModel& m = model_for(c);
    const Tensor halves[2] = {Tensor::from_values(pynn_bench::make_batch(c.batch / 2, 1).x),
                              Tensor::from_values(pynn_bench::make_batch(c.batch / 2, 2).x)};
    auto pass = [&m](const Tensor& x) {
        const pynn::NoGradGuard no_grad; // per thread
        const xt::xarray<float> out = m.model(x).values<float>();
        return out(0, 0);
    };
    std::barrier sync(2);
    std::atomic<bool> done{false};
    std::thread helper([&] {
        for (;;) {
            sync.arrive_and_wait(); // go (or stop)
            if (done.load()) {
                return;
            }
            benchmark::DoNotOptimize(pass(halves[1]));
            sync.arrive_and_wait(); // finished
        }
    });
    auto both = [&] {
        sync.arrive_and_wait();
        benchmark::DoNotOptimize(pass(halves[0]));
        sync.arrive_and_wait();
    };
    for (int i = 0; i < 2; ++i) {
        both(); // plan compiled, caches warm
    }
    Samples samples;
    for (auto _ : state) {
        samples.start();
        both();
        samples.stop();
    }
    done.store(true);
    sync.arrive_and_wait();
    helper.join();
    samples.report(state);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(c.batch));
}

// The floor: the step's GEMMs (per-image GEMMs for the convolutions), cblas_sgemm alone on
// `threads` cores (see GemmSet). With `adam_stream`, also the least memory traffic of the Adam
// update, as a one-thread c = a + b stream moving 7 floats per parameter (read p, grad, m, v;
// write p, m, v): what no fusion can remove, for judging the GEMM-only floor's goal.
void bm_floor(benchmark::State& state, ModelCase c, bool training, int threads, bool adam_stream) {
    const pynn_bench::BlasThreads blas(threads);
    pynn_bench::GemmSet set(pynn_bench::step_gemms(c.kind, c.batch, training), threads);
    std::size_t params = 0;
    for (const Tensor& p : model_for(c).model.parameters()) {
        params += p.numel();
    }
    const std::size_t n = adam_stream ? params * 7 / 3 : 0;
    std::vector<float> a(n, 1.0F), b(n, 2.0F), out(n);
    set.run();
    Samples samples;
    for (auto _ : state) {
        samples.start();
        set.run();
        for (std::size_t i = 0; i < n; ++i) {
            out[i] = a[i] + b[i];
        }
        benchmark::DoNotOptimize(set.result(0));
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
        samples.stop();
    }
    samples.report(state);
    state.counters["gemm_flop"] = benchmark::Counter(
        set.flops() * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(c.batch));
}

// Compiling the forward+backward plan with a cold plan cache (the graph is built untimed).
void bm_compile_fwd_bwd(benchmark::State& state, ModelCase c) {
    pynn::Flags::set_num_threads(1);
    PynnModel& m = model_for(c);
    Samples samples;
    for (auto _ : state) {
        state.PauseTiming();
        pynn::clear_plan_cache();
        Tensor loss = m.loss(m.model(m.x));
        state.ResumeTiming();
        samples.start();
        ComputeGraph graph = ComputeGraph::backward(loss);
        benchmark::DoNotOptimize(&graph);
        samples.stop();
    }
    samples.report(state);
}

// A whole first step with a cold plan cache: both compilations (forward+backward and the Adam
// update) plus the run.
void bm_first_step(benchmark::State& state, ModelCase c) {
    pynn::Flags::set_num_threads(1);
    PynnModel& m = model_for(c);
    Samples samples;
    for (auto _ : state) {
        state.PauseTiming();
        pynn::clear_plan_cache();
        state.ResumeTiming();
        samples.start();
        benchmark::DoNotOptimize(m.train_step());
        samples.stop();
    }
    samples.report(state);
}

// Per step, what is not kernels: building the forward/backward DAG and looking its plan up
// (a cache hit), and with `with_optimizer` the optimizer's own per-step overhead. Adam builds
// its update plan once and then only rebinds gradient leaves and refreshes scalars (Note
// [Cached update]); that overhead does not depend on tensor sizes, so it is timed as the whole
// update() of an Adam over the same parameter structure with 1x1 layers, where the kernels
// (one per parameter) touch a single element each: an upper bound on the overhead.
void bm_graph_build(benchmark::State& state, ModelCase c, bool with_optimizer) {
    pynn::Flags::set_num_threads(1);
    PynnModel& m = model_for(c);
    m.train_step(); // plans cached, gradients present
    std::vector<Tensor> tiny_params;
    for (const Tensor& p : m.model.parameters()) {
        pynn::Shape ones(p.shape().size(), 1);
        tiny_params.push_back(Tensor::ones(ones, p.dtype()).set_requires_grad());
    }
    Tensor tiny_loss = Tensor::zeros({}, tiny_params.front().dtype());
    for (const Tensor& p : tiny_params) {
        tiny_loss = tiny_loss + pynn::sum(p * p);
    }
    tiny_loss.backward(); // gradients stay: update() does not clear them
    pynn::optimizers::Adam tiny_adam(1e-3);
    tiny_adam.update(tiny_params); // builds its plan
    tiny_adam.update(tiny_params); // the steady state from here on
    bool hits = true;
    Samples samples;
    for (auto _ : state) {
        samples.start();
        { // freeing the step's DAG is per-step overhead too
            Tensor loss = m.loss(m.model(m.x));
            ComputeGraph graph = ComputeGraph::backward(loss);
            hits = hits && graph.cache_hit();
            benchmark::DoNotOptimize(&graph);
        }
        if (with_optimizer) {
            tiny_adam.update(tiny_params);
        }
        samples.stop();
    }
    samples.report(state);
    state.counters["fwd_bwd_cache_hit"] = hits ? 1.0 : 0.0;
}

void register_all(RatioReporter& rep) {
    for (const ModelCase& c : k_models) {
        const bool heavy = c.kind == ModelKind::Cnn;
        for (int t : k_threads) {
            const std::string suffix = "/t" + std::to_string(t);
            for (bool training : {true, false}) {
                const std::string name =
                    case_name(c, training ? "train_step_pynn" : "infer_pynn") + suffix;
                const std::string floor =
                    case_name(c, training ? "train_floor_sgemm" : "infer_floor_sgemm") + suffix;
                auto* b = training ? benchmark::RegisterBenchmark(name.c_str(), bm_train_step, c, t)
                                   : benchmark::RegisterBenchmark(name.c_str(), bm_infer, c, t);
                b->UseRealTime()->Unit(benchmark::kMillisecond);
                if (heavy) {
                    b->MinTime(1.0);
                }
                benchmark::RegisterBenchmark(floor.c_str(), bm_floor, c, training, t, false)
                    ->UseRealTime()
                    ->Unit(benchmark::kMillisecond);
                rep.set_items_unit(name, "samples");
                rep.set_items_unit(floor, "samples");
                rep.add({name, floor, Compare::Time, training ? 1.25 : 0.0});
                if (!training && t == 2) {
                    const std::string halves = case_name(c, "infer_halves") + suffix;
                    auto* h = benchmark::RegisterBenchmark(halves.c_str(), bm_infer_halves, c);
                    h->UseRealTime()->Unit(benchmark::kMillisecond);
                    if (heavy) {
                        h->MinTime(1.0);
                    }
                    rep.set_items_unit(halves, "samples");
                    rep.add({name, halves, Compare::Time, 0.0});
                }
                if (training) {
                    const std::string adam = case_name(c, "train_floor_sgemm_adam_stream") + suffix;
                    benchmark::RegisterBenchmark(adam.c_str(), bm_floor, c, true, t, true)
                        ->UseRealTime()
                        ->Unit(benchmark::kMillisecond);
                    rep.set_items_unit(adam, "samples");
                    rep.add({name, adam, Compare::Time, 0.0});
                }
            }
        }
        const std::string step = case_name(c, "train_step_pynn") + "/t1";
        const std::string compile = case_name(c, "compile_fwd_bwd");
        const std::string first = case_name(c, "first_step_cold_cache");
        benchmark::RegisterBenchmark(compile.c_str(), bm_compile_fwd_bwd, c)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(first.c_str(), bm_first_step, c)
            ->Unit(benchmark::kMillisecond);
        rep.add({compile, step, Compare::Time, 0.0});
        rep.add({first, step, Compare::Time, 0.0});
        for (bool with_optimizer : {false, true}) {
            const std::string name =
                case_name(c, with_optimizer ? "graph_build_step" : "graph_build_fwd_bwd");
            benchmark::RegisterBenchmark(name.c_str(), bm_graph_build, c, with_optimizer)
                ->Unit(benchmark::kMicrosecond);
            const bool goal = with_optimizer && c.kind == ModelKind::Mlp && c.batch == 64;
            rep.add({name, step, Compare::Time, goal ? 0.05 : 0.0});
        }
    }
}

} // namespace

int main(int argc, char** argv) { return pynn_bench::run_with_ratios(argc, argv, register_all); }
