// The loop nest under every elementwise, broadcast, reduction and copy kernel: walk a shape with K
// operands, each described by element strides (0 on a broadcast axis), merging axes that are
// contiguous for every operand so most kernels run as one long innermost row.
#pragma once

#include <array>
#include <cstddef>
#include <vector>

#include "pynn/dtype.hpp"

namespace pynn::kernels {

using Strides = std::vector<std::ptrdiff_t>;

inline Strides contiguous_strides(const Shape& shape) {
    Strides s(shape.size());
    std::ptrdiff_t step = 1;
    for (std::size_t i = shape.size(); i-- > 0;) {
        s[i] = step;
        step *= static_cast<std::ptrdiff_t>(shape[i]);
    }
    return s;
}

// Strides of a contiguous `in_shape` read as if broadcast to `out_shape` (numpy rules:
// right-aligned, size-1 axes repeat).
inline Strides broadcast_strides(const Shape& in_shape, const Shape& out_shape) {
    Strides in = contiguous_strides(in_shape);
    Strides s(out_shape.size(), 0);
    std::size_t offset = out_shape.size() - in_shape.size();
    for (std::size_t i = 0; i < in_shape.size(); ++i) {
        s[offset + i] = in_shape[i] == 1 ? 0 : in[i];
    }
    return s;
}

// Calls body(offsets, n, inner_strides) once per innermost row of `shape`, where offsets[k] is
// operand k's element offset of the row's first element.
template <std::size_t K, class Body>
void for_each_row(const Shape& shape, const std::array<Strides, K>& strides, Body&& body) {
    // Drop size-1 axes and merge neighbours that are contiguous for every operand.
    std::vector<std::size_t> dims;
    std::array<Strides, K> st;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == 1) {
            continue;
        }
        if (shape[i] == 0) {
            return;
        }
        bool merge = !dims.empty();
        for (std::size_t k = 0; merge && k < K; ++k) {
            merge = st[k].back() == strides[k][i] * static_cast<std::ptrdiff_t>(shape[i]);
        }
        if (merge) {
            dims.back() *= shape[i];
            for (std::size_t k = 0; k < K; ++k) {
                st[k].back() = strides[k][i];
            }
        } else {
            dims.push_back(shape[i]);
            for (std::size_t k = 0; k < K; ++k) {
                st[k].push_back(strides[k][i]);
            }
        }
    }
    std::array<std::ptrdiff_t, K> offsets{};
    std::array<std::ptrdiff_t, K> inner{};
    if (dims.empty()) { // a single element
        body(offsets, std::size_t{1}, inner);
        return;
    }
    const std::size_t rank = dims.size();
    const std::size_t n = dims.back();
    for (std::size_t k = 0; k < K; ++k) {
        inner[k] = st[k].back();
    }
    std::vector<std::size_t> counter(rank - 1, 0);
    while (true) {
        body(offsets, n, inner);
        // Advance the outer counter (odometer), updating offsets incrementally.
        std::size_t axis = rank - 1;
        while (axis-- > 0) {
            ++counter[axis];
            for (std::size_t k = 0; k < K; ++k) {
                offsets[k] += st[k][axis];
            }
            if (counter[axis] < dims[axis]) {
                break;
            }
            for (std::size_t k = 0; k < K; ++k) {
                offsets[k] -= st[k][axis] * static_cast<std::ptrdiff_t>(dims[axis]);
            }
            counter[axis] = 0;
            if (axis == 0) {
                return;
            }
        }
        if (rank == 1) {
            return;
        }
    }
}

// dst[i] = src[i] over `shape`, each side with its own strides.
template <class T>
void strided_copy(const Shape& shape, T* dst, const Strides& dst_strides, const T* src,
                  const Strides& src_strides) {
    for_each_row<2>(shape, {dst_strides, src_strides},
                    [&](const std::array<std::ptrdiff_t, 2>& off, std::size_t n,
                        const std::array<std::ptrdiff_t, 2>& inc) {
                        T* d = dst + off[0];
                        const T* s = src + off[1];
                        if (inc[0] == 1 && inc[1] == 1) {
                            std::copy(s, s + n, d);
                        } else {
                            for (std::size_t j = 0; j < n; ++j) {
                                d[static_cast<std::ptrdiff_t>(j) * inc[0]] =
                                    s[static_cast<std::ptrdiff_t>(j) * inc[1]];
                            }
                        }
                    });
}

} // namespace pynn::kernels
