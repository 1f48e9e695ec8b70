// GEMM kernels: pynn's own float32 kernel (kernels/sgemm.hpp) where it suits the shape, BLAS
// otherwise and for float64, split over pynn's pool; a naive loop as the reference.
#include "kernels/gemm.hpp"

#include <algorithm>
#include <type_traits>
#include <vector>

#include <cblas.h>

#include "kernels/sgemm.hpp"
#include "pynn/flags.hpp"
#include "runtime/parallel.hpp"

namespace pynn::kernels {

namespace {
CBLAS_TRANSPOSE flag(bool t) { return t ? CblasTrans : CblasNoTrans; }

void blas(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const float* a,
          std::size_t lda, const float* b, std::size_t ldb, float* c, std::size_t ldc,
          bool accumulate) {
    cblas_sgemm(CblasRowMajor, flag(ta), flag(tb), static_cast<blasint>(m),
                static_cast<blasint>(n), static_cast<blasint>(k), 1.0F, a,
                static_cast<blasint>(lda), b, static_cast<blasint>(ldb), accumulate ? 1.0F : 0.0F,
                c, static_cast<blasint>(ldc));
}
void blas(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const double* a,
          std::size_t lda, const double* b, std::size_t ldb, double* c, std::size_t ldc,
          bool accumulate) {
    cblas_dgemm(CblasRowMajor, flag(ta), flag(tb), static_cast<blasint>(m),
                static_cast<blasint>(n), static_cast<blasint>(k), 1.0, a,
                static_cast<blasint>(lda), b, static_cast<blasint>(ldb), accumulate ? 1.0 : 0.0, c,
                static_cast<blasint>(ldc));
}

// Below this many flops a GEMM takes a few tens of microseconds: splitting it would cost more in
// hand-off than it saves.
constexpr double kParallelFlops = 4.0e6;

// One single-threaded GEMM on (sub-)matrices; rows_done sees rows of this call's c.
template <class T>
void gemm_serial(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const T* a,
                 std::size_t lda, const T* b, std::size_t ldb, T* c, std::size_t ldc,
                 bool accumulate, const RowsDone* rows_done) {
    if constexpr (std::is_same_v<T, float>) {
        if (Flags::own_gemm() && sgemm_suits(ta, tb, m, n, k)) {
            sgemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, accumulate, rows_done);
            return;
        }
    }
    blas(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    if (rows_done != nullptr && m > 0) {
        (*rows_done)(0, m);
    }
}

// When a split by rows would leave each thread fewer than this many rows of c while op(b) has
// at least kDepthSplitB elements, the depth is split instead (gemm_by_depth), one part per
// thread. Each part keeps at least kMinDepth steps of k, and the partial products (all parts but
// the first) together hold at most kMaxPartials elements (1 MB in float32, 2 MB in float64), so
// the split never needs a large buffer.
constexpr std::size_t kDepthSplitRows = 64;
constexpr std::size_t kDepthSplitB = std::size_t{128} * 1024;
constexpr std::size_t kMinDepth = 128;
constexpr std::size_t kMaxPartials = std::size_t{256} * 1024;

// c = sum over parts of op(a)[:, part] @ op(b)[part, :]: part i reads only its slice of b's
// rows (and a's columns), so each core streams 1/parts of b. Why: split by rows, the MLP's first
// layer at batch 64 (32 rows per thread against 784x256 weights) has both cores stream all of b
// and ran at 124 us on 2 threads against 144 on one; the same product split by depth took
// 0.66x the row split's time in a harness that also ran the weight's Adam update on the same
// halves. Part 0 writes c, the others a partial buffer; a second pass adds the partials into c
// by blocks of rows, then runs rows_done on them. The sum is rounded differently from a
// one-thread product (as for any change in thread count with a split k, e.g. in BLAS).
template <class T>
void gemm_by_depth(std::size_t parts, bool ta, bool tb, std::size_t m, std::size_t n,
                   std::size_t k, const T* a, std::size_t lda, const T* b, std::size_t ldb, T* c,
                   bool accumulate, const RowsDone* rows_done) {
    // The calling thread's, reused from call to call. rows_done must not run a GEMM (it could
    // resize this buffer while it is read); plan epilogues are elementwise.
    thread_local std::vector<T> buffer;
    buffer.resize((parts - 1) * m * n);
    T* const partials = buffer.data(); // the tasks must not name the thread_local: theirs differs
    runtime::parallel_for(parts, [&](std::size_t i) {
        const std::size_t lo = i * k / parts;
        const std::size_t hi = (i + 1) * k / parts;
        T* out = i == 0 ? c : partials + (i - 1) * m * n;
        gemm_serial(ta, tb, m, n, hi - lo, ta ? a + lo * lda : a + lo, lda,
                    tb ? b + lo : b + lo * ldb, ldb, out, n, i == 0 && accumulate, nullptr);
    });
    const std::size_t blocks = std::min(parts, m);
    runtime::parallel_for(blocks, [&](std::size_t i) {
        const std::size_t lo = i * m / blocks;
        const std::size_t hi = (i + 1) * m / blocks;
        T* out = c + lo * n;
        for (std::size_t p = 1; p < parts; ++p) {
            const T* part = partials + (p - 1) * m * n + lo * n;
            for (std::size_t e = 0; e < (hi - lo) * n; ++e) {
                out[e] += part[e];
            }
        }
        if (rows_done != nullptr && lo < hi) {
            (*rows_done)(lo, hi);
        }
    });
}

// Splits c into one block of columns (or rows, when c is taller than wide or rows_done wants
// whole rows) per thread, or splits the depth (gemm_by_depth) when c has few rows and b is
// large; each block is an ordinary single-threaded GEMM call on sub-matrices of a, b and c.
template <class T>
void gemm_blocks(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const T* a,
                 const T* b, T* c, bool accumulate, const RowsDone* rows_done) {
    const std::size_t lda = ta ? m : k;
    const std::size_t ldb = tb ? k : n;
    const std::size_t threads = runtime::available_threads();
    const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) *
                         static_cast<double>(k);
    if (threads <= 1 || flops < kParallelFlops) {
        gemm_serial(ta, tb, m, n, k, a, lda, b, ldb, c, n, accumulate, rows_done);
        return;
    }
    if (m < threads * kDepthSplitRows && k * n >= kDepthSplitB && k >= threads * kMinDepth &&
        (threads - 1) * m * n <= kMaxPartials) {
        gemm_by_depth(threads, ta, tb, m, n, k, a, lda, b, ldb, c, accumulate, rows_done);
        return;
    }
    const bool by_columns = n >= m && rows_done == nullptr;
    const std::size_t extent = by_columns ? n : m;
    constexpr std::size_t kAlign = 16; // whole SIMD registers (and register tiles) per block
    const std::size_t units = (extent + kAlign - 1) / kAlign;
    const std::size_t blocks = std::min(threads, units);
    runtime::parallel_for(blocks, [&](std::size_t i) {
        const std::size_t lo = std::min(extent, i * units / blocks * kAlign);
        const std::size_t hi = std::min(extent, (i + 1) * units / blocks * kAlign);
        if (lo >= hi) {
            return;
        }
        if (by_columns) {
            gemm_serial(ta, tb, m, hi - lo, k, a, lda, tb ? b + lo * k : b + lo, ldb, c + lo, n,
                        accumulate, nullptr);
            return;
        }
        const RowsDone shifted = [&](std::size_t begin, std::size_t end) {
            (*rows_done)(lo + begin, lo + end);
        };
        gemm_serial(ta, tb, hi - lo, n, k, ta ? a + lo : a + lo * k, lda, b, ldb, c + lo * n, n,
                    accumulate, rows_done != nullptr ? &shifted : nullptr);
    });
}
} // namespace

template <>
void gemm<float>(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                 const float* a, const float* b, float* c, bool accumulate,
                 const RowsDone* rows_done) {
    gemm_blocks(trans_a, trans_b, m, n, k, a, b, c, accumulate, rows_done);
}

template <>
void gemm<double>(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                  const double* a, const double* b, double* c, bool accumulate,
                  const RowsDone* rows_done) {
    gemm_blocks(trans_a, trans_b, m, n, k, a, b, c, accumulate, rows_done);
}

template <class T>
void gemm_reference(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                    const T* a, const T* b, T* c) {
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            T acc = 0;
            for (std::size_t p = 0; p < k; ++p) {
                const T av = trans_a ? a[p * m + i] : a[i * k + p];
                const T bv = trans_b ? b[j * k + p] : b[p * n + j];
                acc += av * bv;
            }
            c[i * n + j] = acc;
        }
    }
}

template void gemm_reference<float>(bool, bool, std::size_t, std::size_t, std::size_t,
                                    const float*, const float*, float*);
template void gemm_reference<double>(bool, bool, std::size_t, std::size_t, std::size_t,
                                     const double*, const double*, double*);

} // namespace pynn::kernels
