// pynn's own single-precision GEMM: a register-tiled micro-kernel written with xsimd. It exists
// because OpenBLAS reaches only 52-62% of one core's FMA peak at the MLP's and CNN's small shapes
// (64 x 784 x 256 and the like: its packing of both operands costs as much as it saves there),
// and because cblas has no hook to run an epilogue on rows of c while they are still in cache.
// Large operands, and float64, stay with BLAS (kernels/gemm.cpp decides).
#pragma once

#include <cstddef>

#include "kernels/gemm.hpp" // RowsDone

namespace pynn::kernels {

// True when sgemm measured at least as fast as OpenBLAS on such a shape: n and k not tiny, a
// transposed a not both deep (k > 128) and large (m x k > 128K), and op(b) (k x n) small
// enough to stream from a core's L2 cache.
bool sgemm_suits(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k);

// Row-major c (m x n, row stride ldc) = op(a) (m x k) @ op(b) (k x n) (+ c when accumulate);
// op(x) is x or its transpose, lda/ldb are the stored matrices' row strides. Single-threaded;
// kernels::gemm splits work over the pool.
void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, const float* a,
           std::size_t lda, const float* b, std::size_t ldb, float* c, std::size_t ldc,
           bool accumulate, const RowsDone* rows_done = nullptr);

} // namespace pynn::kernels
