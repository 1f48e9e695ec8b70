// GEMM (pynn's float32 kernel or OpenBLAS, see gemm.cpp), row-major: c (m, n) = op(a) @ op(b) (+ c when accumulate).
#pragma once

#include <cstddef>
#include <functional>

namespace pynn::kernels {

// Called with rows [begin, end) of c once they are final (all columns, the whole k sum), while
// they are still in cache: the place for a bias add and an activation. Calls may come from
// pool threads, for disjoint row ranges.
using RowsDone = std::function<void(std::size_t begin, std::size_t end)>;

template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, const T* a,
          const T* b, T* c, bool accumulate = false, const RowsDone* rows_done = nullptr);

// The plain triple loop, kept as the reference the BLAS path is tested against.
template <class T>
void gemm_reference(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                    const T* a, const T* b, T* c);

} // namespace pynn::kernels
