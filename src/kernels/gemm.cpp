// GEMM kernels: pynn's own float32 kernel (kernels/sgemm.hpp) where it suits the shape, BLAS
// otherwise and for float64, split over pynn's pool; a naive loop as the reference.
#include "kernels/gemm.hpp"

#include <algorithm>
#include <type_traits>

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

// Splits c into one block of columns (or rows, when c is taller than wide or rows_done wants
// whole rows) per thread; each block is an ordinary single-threaded GEMM call on sub-matrices
// of a, b and c.
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
