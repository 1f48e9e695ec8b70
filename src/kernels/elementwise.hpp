// Elementwise maps over broadcast operands with xsimd. A functor is written once as a template and
// called on xsimd batches in the body of a row and on scalars in its tail (see
// ops/elementwise_functors.hpp). Inputs are contiguous buffers; broadcasting shows up as stride 0.
#pragma once

#include <array>
#include <type_traits>
#include <utility>

#if defined(__SSE2__)
#include <immintrin.h> // streaming stores (xsimd 8 has none)
#endif

#include <xsimd/xsimd.hpp>

#include "kernels/strided.hpp"
#include "runtime/parallel.hpp"

namespace pynn::kernels {

namespace detail {

// One row with a compile-time pattern of broadcast inputs: bit k of Mask set means input k is
// a scalar (stride 0), loaded into a register once; the others are contiguous rows.
template <std::size_t Mask, class T, std::size_t N, class F, std::size_t... I>
void map_row_masked(T* out, const std::array<const T*, N>& in, std::size_t n, const F& f,
                    std::index_sequence<I...>) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    const std::array<B, N> scalar{B(((Mask >> I) & 1U) ? in[I][0] : T(0))...};
    auto load = [&]<std::size_t K>(std::size_t at) {
        if constexpr (((Mask >> K) & 1U) != 0) {
            return scalar[K];
        } else {
            return B::load_unaligned(in[K] + at);
        }
    };
    std::size_t j = 0;
    for (; j + W <= n; j += W) {
        f(load.template operator()<I>(j)...).store_unaligned(out + j);
    }
    for (; j < n; ++j) {
        out[j] = f(in[I][((Mask >> I) & 1U) ? 0 : j]...);
    }
}

template <class T, std::size_t N, class F, std::size_t... M>
void map_row_dispatch(std::size_t mask, T* out, const std::array<const T*, N>& in, std::size_t n,
                      const F& f, std::index_sequence<M...>) {
    using Fn = void (*)(T*, const std::array<const T*, N>&, std::size_t, const F&,
                        std::make_index_sequence<N>);
    static constexpr Fn table[] = {&map_row_masked<M, T, N, F>...};
    table[mask](out, in, n, f, std::make_index_sequence<N>{});
}

// out[0..n) = f(in_0[..], ...), where each input has stride 1 (a row) or 0 (a scalar).
template <class T, std::size_t N, class F, std::size_t... I>
void map_row(T* out, const std::array<const T*, N>& in, const std::array<std::ptrdiff_t, N>& inc,
             std::size_t n, const F& f, std::index_sequence<I...>) {
    std::size_t mask = 0;
    for (std::size_t k = 0; k < N; ++k) {
        mask |= inc[k] == 0 ? std::size_t{1} << k : 0;
    }
    map_row_dispatch<T, N, F>(mask, out, in, n, f, std::make_index_sequence<std::size_t{1} << N>{});
}
} // namespace detail

// Rows of at least twice this many elements are split over the pool, in ranges of at least this
// many: an unfused op on a large tensor then uses every thread, as a fused region does (64 of
// its 1024-element tiles per thread; fewer cost more to hand over than they save).
inline constexpr std::size_t kParallelElements = std::size_t{64} * 1024;

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
                            // Elements [a, b) of the row (scalars stay put: stride 0).
                            auto part = [&](std::size_t a, std::size_t b) {
                                std::array<const T*, N> row;
                                std::array<std::ptrdiff_t, N> row_inc;
                                for (std::size_t k = 0; k < N; ++k) {
                                    row[k] = in[k] + off[k + 1] +
                                             inc[k + 1] * static_cast<std::ptrdiff_t>(a);
                                    row_inc[k] = inc[k + 1];
                                }
                                detail::map_row<T, N>(out + off[0] + a, row, row_inc, b - a, f,
                                                      std::make_index_sequence<N>{});
                            };
                            if (n >= 2 * kParallelElements) {
                                runtime::parallel_ranges(n, kParallelElements, part);
                            } else {
                                part(0, n);
                            }
                        });
}

// One vector of streaming (non-temporal) stores: the widest the build has (a whole cache line
// with AVX-512, measured 3-5% faster than 16-byte stores on a memory-bound chain), SSE2's on
// any other x86-64.
namespace detail {
#if defined(__AVX512F__)
constexpr std::size_t kStreamBytes = 64;
inline void stream_store(float* dst, const float* src) {
    _mm512_stream_ps(dst, _mm512_loadu_ps(src));
}
inline void stream_store(double* dst, const double* src) {
    _mm512_stream_pd(dst, _mm512_loadu_pd(src));
}
#elif defined(__SSE2__)
constexpr std::size_t kStreamBytes = 16;
inline void stream_store(float* dst, const float* src) { _mm_stream_ps(dst, _mm_loadu_ps(src)); }
inline void stream_store(double* dst, const double* src) { _mm_stream_pd(dst, _mm_loadu_pd(src)); }
#endif
} // namespace detail

// dst[0..n) = src[0..n) with streaming stores: the lines go to memory without being read first
// or kept in cache. dst must be 64-byte aligned; stream_fence() orders these stores before
// anything the thread does next (another thread may read dst after a join).
template <class T>
inline void stream_copy(T* dst, const T* src, std::size_t n) {
    std::size_t i = 0;
#if defined(__SSE2__)
    constexpr std::size_t kStep = detail::kStreamBytes / sizeof(T);
    for (; i + kStep <= n; i += kStep) {
        detail::stream_store(dst + i, src + i);
    }
#endif
    for (; i < n; ++i) {
        dst[i] = src[i];
    }
}

inline void stream_fence() {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

} // namespace pynn::kernels
