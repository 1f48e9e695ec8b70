// Elementwise add on 1M float32 values: pynn's `a + b` (a compiled ComputeGraph run, and the full
// lazy path of building the node and reading values()) against a plain loop c[i] = a[i] + b[i].
// Bytes processed count the two reads and one write per element, the same for every variant.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include <pynn/pynn.hpp>

namespace {

constexpr std::size_t k_elements = std::size_t{1} << 20;

void set_bytes(benchmark::State& state) {
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(3 * k_elements * sizeof(float)));
}

// The reference twin: what a compiler makes of the obvious loop (vectorised at -O3 -march=native).
void BM_add_plain_loop(benchmark::State& state) {
    std::vector<float> a(k_elements, 1.5F);
    std::vector<float> b(k_elements, 2.25F);
    std::vector<float> c(k_elements);
    for (auto _ : state) {
        for (std::size_t i = 0; i < k_elements; ++i) {
            c[i] = a[i] + b[i];
        }
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    set_bytes(state);
}
BENCHMARK(BM_add_plain_loop);

// The graph is compiled once; each iteration runs the plan: the add kernel plus copying the
// result out onto the output tensor.
void BM_add_compute_graph(benchmark::State& state) {
    const pynn::Tensor a = pynn::Tensor::rand({k_elements}, 0.0, 1.0, pynn::DType::Float32);
    const pynn::Tensor b = pynn::Tensor::rand({k_elements}, 0.0, 1.0, pynn::DType::Float32);
    const pynn::Tensor c = a + b;
    pynn::ComputeGraph graph({c});
    for (auto _ : state) {
        graph.run();
        benchmark::DoNotOptimize(c.node().get()); // the result lives on c's node
        benchmark::ClobberMemory();
    }
    set_bytes(state);
}
BENCHMARK(BM_add_compute_graph);

// What user code pays per `(a + b).values()`: a new node, a plan-cache hit, the run, and the copy
// into an xt::xarray.
void BM_add_lazy_values(benchmark::State& state) {
    const pynn::Tensor a = pynn::Tensor::rand({k_elements}, 0.0, 1.0, pynn::DType::Float32);
    const pynn::Tensor b = pynn::Tensor::rand({k_elements}, 0.0, 1.0, pynn::DType::Float32);
    for (auto _ : state) {
        xt::xarray<float> c = (a + b).values<float>();
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    set_bytes(state);
}
BENCHMARK(BM_add_lazy_values);

} // namespace

BENCHMARK_MAIN();
