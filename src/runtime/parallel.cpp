// A small persistent pool: workers sleep on a condition variable between jobs and spin briefly
// first, because a training step posts many small jobs back to back and waking a sleeping thread
// costs more than most of them take.
#include "runtime/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "pynn/flags.hpp"

#if defined(__SSE__)
#include <xmmintrin.h> // MXCSR: the SSE/AVX floating-point mode
#endif

namespace pynn::runtime {

namespace {

// The calling thread's SIMD floating-point mode, and setting it (x86: MXCSR; elsewhere a no-op).
#if defined(__SSE__)
constexpr unsigned kFlushDenormals = 0x8040U; // FTZ (bit 15) | DAZ (bit 6)
unsigned float_mode() { return _mm_getcsr(); }
void set_float_mode(unsigned mode) { _mm_setcsr(mode); }
#else
constexpr unsigned kFlushDenormals = 0;
unsigned float_mode() { return 0; }
void set_float_mode(unsigned /*mode*/) {}
#endif

// A spinning worker's wait between polls: x86's pause (ARM's yield) eases the spin's load on
// the core and on a hyperthread sibling; elsewhere the loop just polls.
#if defined(__x86_64__) || defined(__i386__)
void cpu_relax() { __builtin_ia32_pause(); }
#elif defined(__aarch64__)
void cpu_relax() { asm volatile("yield"); }
#else
void cpu_relax() {}
#endif
constexpr std::chrono::microseconds kSpin{200};

thread_local bool t_in_task = false;

class Pool {
public:
    ~Pool() { resize(0); }

    // Runs blocks [0, blocks) of a job; block 0 on the caller.
    void run(std::size_t blocks, const std::function<void(std::size_t)>& block) {
        std::lock_guard<std::mutex> serial(m_run_mutex); // one job at a time
        if (m_workers.size() + 1 < blocks) {
            resize(blocks - 1);
        }
        std::uint64_t generation = 0;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_job = &block;
            m_blocks = blocks;
            m_float_mode = float_mode();
            m_pending.store(blocks - 1, std::memory_order_relaxed);
            generation = m_generation.load(std::memory_order_relaxed) + 1;
            m_ticket.store((generation << 32U) | 1U, std::memory_order_relaxed);
            m_generation.store(generation, std::memory_order_release);
        }
        m_wake.notify_all();
        run_block(block, 0);
        // Help with blocks no worker has taken yet, then wait for the rest.
        for (std::size_t b; (b = grab(generation, blocks)) != kNone;) {
            run_block(block, b);
            m_pending.fetch_sub(1, std::memory_order_acq_rel);
        }
        while (m_pending.load(std::memory_order_acquire) != 0) {
            std::this_thread::yield();
        }
        std::exception_ptr error = std::exchange(m_error, nullptr);
        if (error) {
            std::rethrow_exception(error);
        }
    }

private:
    void run_block(const std::function<void(std::size_t)>& block, std::size_t b) {
        t_in_task = true;
        try {
            block(b);
        } catch (...) {
            std::lock_guard<std::mutex> lock(m_mutex);
            if (!m_error) {
                m_error = std::current_exception();
            }
        }
        t_in_task = false;
    }

    static constexpr std::size_t kNone = SIZE_MAX;

    // The next block of job `generation`, or kNone when it has none left or is not the current
    // job any more. Ticket = generation << 32 | next block, so a late worker can never take a
    // block of a newer job for an older one.
    std::size_t grab(std::uint64_t generation, std::size_t blocks) {
        std::uint64_t t = m_ticket.load(std::memory_order_acquire);
        for (;;) {
            const std::size_t b = t & 0xFFFFFFFFU;
            if ((t >> 32U) != (generation & 0xFFFFFFFFU) || b >= blocks) {
                return kNone;
            }
            if (m_ticket.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) {
                return b;
            }
        }
    }

    // Worker `index` (0-based; the posting thread is not one) of the pool.
    void worker(std::uint64_t seen, std::size_t index) {
        bool spin = true; // whether the last job had a block for this worker
        for (;;) {
            // Spin for the next job before sleeping: a plan's kernels come back to back, but
            // the serial stretches between parallel ones (small layers, the loss, the
            // optimizer's small tensors, the next step's graph build) often outlast a short
            // spin, and a worker woken from sleep starts late. Seed MLP step on 2 threads,
            // batch 64: plan 326-332 us with a 50 us spin, 271-276 with 200 us, 270 with
            // 500 us, 275 with 2 ms. (OpenMP runtimes spin for similar times or longer.) A
            // worker the last job did not need (the pool is larger than the current thread
            // count, or the job had fewer blocks) sleeps at once instead of burning a core.
            const auto spin_until = std::chrono::steady_clock::now() + kSpin;
            while (spin && m_generation.load(std::memory_order_acquire) == seen &&
                   std::chrono::steady_clock::now() < spin_until) {
                cpu_relax();
            }
            const std::function<void(std::size_t)>* job = nullptr;
            std::size_t blocks = 0;
            unsigned mode = 0;
            {
                std::unique_lock<std::mutex> lock(m_mutex);
                m_wake.wait(lock, [&] {
                    return m_stop || m_generation.load(std::memory_order_relaxed) != seen;
                });
                if (m_stop) {
                    return;
                }
                seen = m_generation.load(std::memory_order_relaxed);
                job = m_job;
                blocks = m_blocks;
                mode = m_float_mode;
            }
            if (float_mode() != mode) { // compute as the posting thread would
                set_float_mode(mode);
            }
            spin = index + 1 < blocks; // the caller runs block 0, workers the others
            for (std::size_t b; (b = grab(seen, blocks)) != kNone;) {
                run_block(*job, b);
                m_pending.fetch_sub(1, std::memory_order_acq_rel);
            }
        }
    }

    void resize(std::size_t workers) {
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_stop = true;
        }
        m_wake.notify_all();
        for (std::thread& t : m_workers) {
            t.join();
        }
        m_workers.clear();
        m_stop = false;
        for (std::size_t i = 0; i < workers; ++i) {
            m_workers.emplace_back(
                [this, g = m_generation.load(std::memory_order_acquire), i] { worker(g, i); });
        }
    }

    std::mutex m_run_mutex;
    std::mutex m_mutex;
    std::condition_variable m_wake;
    std::vector<std::thread> m_workers;
    bool m_stop = false;
    const std::function<void(std::size_t)>* m_job = nullptr;
    std::size_t m_blocks = 0;
    unsigned m_float_mode = 0; // the posting thread's floating-point mode
    std::atomic<std::uint64_t> m_generation{0};
    std::atomic<std::uint64_t> m_ticket{0};
    std::atomic<std::size_t> m_pending{0};
    std::exception_ptr m_error;
};

Pool& pool() {
    static Pool p;
    return p;
}

} // namespace

std::size_t available_threads() {
    return t_in_task ? 1 : static_cast<std::size_t>(std::max(1, Flags::num_threads()));
}

void parallel_for(std::size_t tasks, const std::function<void(std::size_t)>& fn) {
    const std::size_t threads = std::min(available_threads(), tasks);
    if (threads <= 1) {
        for (std::size_t t = 0; t < tasks; ++t) {
            fn(t);
        }
        return;
    }
    // Contiguous blocks, one per thread: block b runs tasks [b*tasks/threads, (b+1)*tasks/threads).
    pool().run(threads, [&](std::size_t b) {
        for (std::size_t t = b * tasks / threads; t < (b + 1) * tasks / threads; ++t) {
            fn(t);
        }
    });
}

ScopedFloatMode::ScopedFloatMode() : m_saved(float_mode()) {
    const unsigned wanted =
        Flags::flush_denormal() ? (m_saved | kFlushDenormals) : (m_saved & ~kFlushDenormals);
    if (wanted != m_saved) {
        set_float_mode(wanted);
        m_changed = true;
    }
}

ScopedFloatMode::~ScopedFloatMode() {
    if (m_changed) { // only the two bits: exception flags raised by the run stay visible
        set_float_mode((float_mode() & ~kFlushDenormals) | (m_saved & kFlushDenormals));
    }
}

void parallel_ranges(std::size_t total, std::size_t grain,
                     const std::function<void(std::size_t, std::size_t)>& fn) {
    const std::size_t by_grain = grain == 0 ? total : total / grain;
    const std::size_t ranges = std::max<std::size_t>(1, std::min(available_threads(), by_grain));
    if (ranges == 1) {
        if (total > 0) {
            fn(0, total);
        }
        return;
    }
    parallel_for(ranges, [&](std::size_t r) { fn(r * total / ranges, (r + 1) * total / ranges); });
}

} // namespace pynn::runtime
