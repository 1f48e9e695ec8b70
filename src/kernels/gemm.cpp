// GEMM kernels: BLAS for speed, a naive loop as the reference.
#include "kernels/gemm.hpp"

#include <cblas.h>

namespace pynn::kernels {

namespace {
CBLAS_TRANSPOSE flag(bool t) { return t ? CblasTrans : CblasNoTrans; }
} // namespace

template <>
void gemm<float>(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                 const float* a, const float* b, float* c, bool accumulate) {
    const auto lda = static_cast<blasint>(trans_a ? m : k);
    const auto ldb = static_cast<blasint>(trans_b ? k : n);
    cblas_sgemm(CblasRowMajor, flag(trans_a), flag(trans_b), static_cast<blasint>(m),
                static_cast<blasint>(n), static_cast<blasint>(k), 1.0F, a, lda, b, ldb,
                accumulate ? 1.0F : 0.0F, c, static_cast<blasint>(n));
}

template <>
void gemm<double>(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                  const double* a, const double* b, double* c, bool accumulate) {
    const auto lda = static_cast<blasint>(trans_a ? m : k);
    const auto ldb = static_cast<blasint>(trans_b ? k : n);
    cblas_dgemm(CblasRowMajor, flag(trans_a), flag(trans_b), static_cast<blasint>(m),
                static_cast<blasint>(n), static_cast<blasint>(k), 1.0, a, lda, b, ldb,
                accumulate ? 1.0 : 0.0, c, static_cast<blasint>(n));
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
