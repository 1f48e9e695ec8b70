// Elementwise maps over broadcast operands with xsimd. A functor is written once as a template and
// called on xsimd batches in the body of a row and on scalars in its tail (see
// ops/elementwise_functors.hpp). Inputs are contiguous buffers; broadcasting shows up as stride 0.
#pragma once

#include <array>
#include <utility>

#include <xsimd/xsimd.hpp>

#include "kernels/strided.hpp"

namespace pynn::kernels {

namespace detail {
template <class T, std::size_t N, class F, std::size_t... I>
void map_row(T* out, const std::array<const T*, N>& in, const std::array<std::ptrdiff_t, N>& inc,
             std::size_t n, const F& f, std::index_sequence<I...>) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    std::size_t j = 0;
    if (((inc[I] == 1) && ...)) { // the common case: every input is a real row, no branches
        for (; j + W <= n; j += W) {
            f(B::load_unaligned(in[I] + j)...).store_unaligned(out + j);
        }
        for (; j < n; ++j) {
            out[j] = f(in[I][j]...);
        }
        return;
    }
    // Stride is 1 (a real row) or 0 (a broadcast scalar) for every input of a map.
    auto load = [&](std::size_t k, std::size_t at) {
        return inc[k] == 0 ? B(in[k][0]) : B::load_unaligned(in[k] + at);
    };
    for (; j + W <= n; j += W) {
        f(load(I, j)...).store_unaligned(out + j);
    }
    for (; j < n; ++j) {
        out[j] = f(in[I][inc[I] == 0 ? 0 : j]...);
    }
}
} // namespace detail

// out (contiguous, out_shape) = f(in_0, ..., in_{N-1}) with each input broadcast to out_shape.
template <class T, std::size_t N, class F>
void map(const Shape& out_shape, T* out, const std::array<const T*, N>& in,
         const std::array<const Shape*, N>& in_shapes, const F& f) {
    std::array<Strides, N + 1> strides;
    strides[0] = contiguous_strides(out_shape);
    for (std::size_t k = 0; k < N; ++k) {
        strides[k + 1] = broadcast_strides(*in_shapes[k], out_shape);
    }
    for_each_row<N + 1>(out_shape, strides,
                        [&](const std::array<std::ptrdiff_t, N + 1>& off, std::size_t n,
                            const std::array<std::ptrdiff_t, N + 1>& inc) {
                            std::array<const T*, N> row;
                            std::array<std::ptrdiff_t, N> row_inc;
                            for (std::size_t k = 0; k < N; ++k) {
                                row[k] = in[k] + off[k + 1];
                                row_inc[k] = inc[k + 1];
                            }
                            detail::map_row<T, N>(out + off[0], row, row_inc, n, f,
                                                  std::make_index_sequence<N>{});
                        });
}

} // namespace pynn::kernels
