// pynn's one thread pool. Flags::num_threads() threads run pynn's kernels: the convolution's
// per-image loop, large fused elementwise kernels and large GEMMs (split into column or row
// blocks, each a single-threaded BLAS call). OpenBLAS itself is kept at one thread, so BLAS and
// pynn never compete for the cores (issue: libtorch's OpenMP pool and OpenBLAS's pool fight).
#pragma once

#include <cstddef>
#include <functional>

namespace pynn::runtime {

// Threads parallel_for may use: Flags::num_threads(), or 1 inside a parallel_for task (nested
// calls run serially on the calling thread).
std::size_t available_threads();

// Runs fn(task) for every task in [0, tasks), on up to available_threads() threads (the caller
// is one of them), and returns when all are done. Tasks are handed out in contiguous blocks, one
// per thread, so a fixed thread count gives the same split every run (reproducible sums). An
// exception from a task is rethrown here after every task has finished.
void parallel_for(std::size_t tasks, const std::function<void(std::size_t)>& fn);

// Splits [0, total) into contiguous ranges of at least `grain` items, at most one per thread,
// and runs fn(begin, end) on each in parallel (serially when there is one range).
void parallel_ranges(std::size_t total, std::size_t grain,
                     const std::function<void(std::size_t, std::size_t)>& fn);

// The floating-point mode a plan runs in (ComputeGraph::run holds one for the run): denormals
// flushed to zero when Flags::flush_denormal(), the caller's own mode restored afterwards. The
// pool's workers run each job in the mode of the thread that posted it, so one run computes the
// same on 1 or n threads.
class ScopedFloatMode {
public:
    ScopedFloatMode();
    ~ScopedFloatMode();
    ScopedFloatMode(const ScopedFloatMode&) = delete;
    ScopedFloatMode& operator=(const ScopedFloatMode&) = delete;

private:
    unsigned m_saved = 0;
    bool m_changed = false;
};

} // namespace pynn::runtime
