// The fusion pass, measured against the bandwidth floor: a chain of 8 elementwise ops run fused
// (as generated machine code, and interpreted op by op with PYNN_JIT's switch off), unfused and
// as one hand-written xtensor expression, at 16 M elements (DRAM) and 64 K (cache);
// and the model's own fused chain, Adam's update of the MLP's first weight (784 x 256) through
// optimizers::Adam::update. The floor is a plain c = a + b stream moving the same bytes; the
// ratio table prints each chain's fraction of its bytes/s.
// Run: ./build/release/bench/bench_fusion --benchmark_repetitions=5
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include <pynn/pynn.hpp>

#include "ratio_reporter.hpp"
#include "stream_reference.hpp"

namespace {

using pynn_bench::Compare;
using pynn_bench::RatioReporter;

std::int64_t as_count(double v) { return static_cast<std::int64_t>(v); }

// The floor: one streaming pass c = a + b over n elements (three arrays: 12 bytes per element).
using pynn_bench::register_stream; // the c = a + b floor (stream_reference.hpp)

pynn::Tensor chain(const pynn::Tensor& x) {
    using namespace pynn;
    Tensor t = x * 1.5;   // 1
    t = t + 0.5;          // 2
    t = relu(t);          // 3
    t = t * t;            // 4
    t = t - x;            // 5
    t = abs(t);           // 6
    t = t * 0.25;         // 7
    return minimum(t, x); // 8
}

// Bytes a single pass must move: read x once, write y once.
double chain_bytes(std::size_t n) { return 8.0 * static_cast<double>(n); }

// `jit`: fused regions run as generated machine code (Flags::jit), else interpreted op by op.
void bm_chain8(benchmark::State& state, std::size_t n, bool fused, bool jit) {
    const bool saved = pynn::Flags::fusion();
    const bool saved_jit = pynn::Flags::jit();
    pynn::Flags::set_fusion(fused);
    pynn::Flags::set_jit(jit);
    pynn::Flags::set_num_threads(1);
    const pynn::Tensor x = pynn::Tensor::rand({n}, -1.0, 1.0, pynn::DType::Float32);
    pynn::Tensor y = chain(x);
    pynn::ComputeGraph graph({y});
    graph.run();
    for (auto _ : state) {
        graph.run();
        benchmark::DoNotOptimize(y.node().get());
        benchmark::ClobberMemory();
    }
    state.counters["kernels"] = static_cast<double>(graph.num_kernels());
    state.SetBytesProcessed(as_count(static_cast<double>(state.iterations()) * chain_bytes(n)));
    pynn::Flags::set_fusion(saved);
    pynn::Flags::set_jit(saved_jit);
}

// The same 8 ops as one xtensor expression, evaluated in one pass with xsimd.
void bm_chain8_xtensor(benchmark::State& state, std::size_t n) {
    xt::xarray<float> x = xt::zeros<float>({n});
    for (std::size_t i = 0; i < n; ++i) {
        x(i) = static_cast<float>(i % 1000) / 500.0F - 1.0F;
    }
    xt::xarray<float> y = xt::zeros<float>({n});
    for (auto _ : state) {
        auto t = xt::maximum(x * 1.5F + 0.5F, 0.0F);
        xt::noalias(y) = xt::minimum(xt::abs(t * t - x) * 0.25F, x);
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(as_count(static_cast<double>(state.iterations()) * chain_bytes(n)));
}

void register_chains(RatioReporter& rep) {
    const std::pair<const char*, std::size_t> sizes[] = {{"16M", std::size_t{1} << 24},
                                                         {"64K", std::size_t{1} << 16}};
    for (auto [label, n] : sizes) {
        const std::string stream = register_stream(chain_bytes(n));
        const std::string fused = std::string("BM_chain8_fused/") + label;
        const std::string interpreted = std::string("BM_chain8_fused_interpreted/") + label;
        const std::string unfused = std::string("BM_chain8_unfused/") + label;
        const std::string expr = std::string("BM_chain8_xtensor_expression/") + label;
        benchmark::RegisterBenchmark(fused.c_str(), bm_chain8, n, true, true)->UseRealTime();
        benchmark::RegisterBenchmark(interpreted.c_str(), bm_chain8, n, true, false)->UseRealTime();
        benchmark::RegisterBenchmark(unfused.c_str(), bm_chain8, n, false, true)->UseRealTime();
        benchmark::RegisterBenchmark(expr.c_str(), bm_chain8_xtensor, n)->UseRealTime();
        rep.add({fused, stream, Compare::Bandwidth, 0.7});
        rep.add({interpreted, stream, Compare::Bandwidth, 0.0});
        rep.add({unfused, stream, Compare::Bandwidth, 0.0});
        rep.add({expr, stream, Compare::Bandwidth, 0.0});
    }
}

// Adam's update as the model runs it: optimizer.update() on one parameter whose gradient stays
// put, i.e. graph build, plan-cache hit, the fused update and the write-back. The minimal bytes
// are 7 per element: read p, grad, m, v; write p, m, v.
void bm_adam_update(benchmark::State& state, std::size_t rows, std::size_t cols, bool jit) {
    pynn::Flags::set_num_threads(1);
    const bool saved_jit = pynn::Flags::jit();
    pynn::Flags::set_jit(jit);
    pynn::Tensor p = pynn::Tensor::randn({rows, cols}).set_requires_grad();
    const pynn::Tensor c = pynn::Tensor::randn({rows, cols});
    pynn::sum(p * c).backward(); // a gradient that stays put
    pynn::optimizers::Adam adam(0.001);
    adam.update({p});
    for (auto _ : state) {
        adam.update({p});
        benchmark::DoNotOptimize(p.node().get());
        benchmark::ClobberMemory();
    }
    state.counters["kernels"] = static_cast<double>(adam.last_update_kernels());
    state.SetBytesProcessed(as_count(static_cast<double>(state.iterations()) * 28.0 *
                                     static_cast<double>(rows * cols)));
    pynn::Flags::set_jit(saved_jit);
}

void register_adam(RatioReporter& rep) {
    const std::string stream = register_stream(28.0 * 784 * 256);
    const std::string name = "BM_adam_update/784x256";
    const std::string interpreted = "BM_adam_update_interpreted/784x256";
    benchmark::RegisterBenchmark(name.c_str(), bm_adam_update, 784, 256, true)->UseRealTime();
    benchmark::RegisterBenchmark(interpreted.c_str(), bm_adam_update, 784, 256, false)
        ->UseRealTime();
    rep.add({name, stream, Compare::Bandwidth, 0.7});
    rep.add({interpreted, stream, Compare::Bandwidth, 0.0});
}

} // namespace

int main(int argc, char** argv) {
    return pynn_bench::run_with_ratios(argc, argv, [](RatioReporter& rep) {
        register_chains(rep);
        register_adam(rep);
    });
}
