// The plain c = a + b stream: the bandwidth floor that bytes-bound kernels are measured against
// (bench_kernels, bench_fusion). One thread; two reads and one write of a float per element.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

namespace pynn_bench {

inline void bm_stream_add(benchmark::State& state, std::size_t n) {
    std::vector<float> a(n, 1.5F), b(n, 2.25F), c(n);
    for (auto _ : state) {
        const float* pa = a.data();
        const float* pb = b.data();
        float* pc = c.data();
        for (std::size_t i = 0; i < n; ++i) {
            pc[i] = pa[i] + pb[i];
        }
        benchmark::DoNotOptimize(pc);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) *
                                                      12.0 * static_cast<double>(n)));
}

// Registers a stream that moves `bytes` (so it runs in the same cache level as the kernel it is
// the floor of) and returns its name.
inline std::string register_stream(double bytes) {
    const auto n = static_cast<std::size_t>(bytes / 12.0);
    const std::string name = "BM_stream_add/" + std::to_string(n);
    benchmark::RegisterBenchmark(name.c_str(), bm_stream_add, n)->UseRealTime();
    return name;
}

} // namespace pynn_bench
