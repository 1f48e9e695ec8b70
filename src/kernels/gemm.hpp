// GEMM through BLAS (OpenBLAS's cblas), row-major: c (m, n) = op(a) @ op(b) (+ c when accumulate).
#pragma once

#include <cstddef>

namespace pynn::kernels {

template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, const T* a,
          const T* b, T* c, bool accumulate = false);

// The plain triple loop, kept as the reference the BLAS path is tested against.
template <class T>
void gemm_reference(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                    const T* a, const T* b, T* c);

} // namespace pynn::kernels
