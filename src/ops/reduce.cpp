// Reductions: shape rules, kernels and backward rules for sum, max and argmax.
#include "ops/reduce.hpp"

#include <algorithm>
#include <limits>

#include <xsimd/xsimd.hpp>

#include "kernels/strided.hpp"
#include "ops/builder.hpp"
#include "pynn/math.hpp"

namespace pynn {

std::string axes_to_string(const std::vector<int>& axes) {
    std::string s = "[";
    for (std::size_t i = 0; i < axes.size(); ++i) {
        s += (i ? ", " : "") + std::to_string(axes[i]);
    }
    return s + "]";
}

std::vector<int> normalize_axes(std::string_view op, const std::vector<int>& axes,
                                std::size_t rank, const Shape& shape) {
    std::vector<int> out;
    if (axes.empty()) {
        for (std::size_t i = 0; i < rank; ++i) {
            out.push_back(static_cast<int>(i));
        }
        return out;
    }
    for (int axis : axes) {
        out.push_back(normalize_axis(op, axis, rank, shape));
    }
    std::sort(out.begin(), out.end());
    PYNN_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), ValueError, op,
               ": axes ", axes_to_string(axes), " repeat an axis of x ", to_string(shape));
    return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<int>& axes, bool keepdims) {
    Shape out;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        bool reduced = std::find(axes.begin(), axes.end(), static_cast<int>(i)) != axes.end();
        if (!reduced) {
            out.push_back(shape[i]);
        } else if (keepdims) {
            out.push_back(1);
        }
    }
    return out;
}

namespace {

// Strides that map an input index to its output element: 0 on reduced axes.
kernels::Strides reduction_out_strides(const Shape& in_shape, const std::vector<int>& axes) {
    Shape kept = reduced_shape(in_shape, axes, true);
    kernels::Strides s = kernels::contiguous_strides(kept);
    for (int a : axes) {
        s[static_cast<std::size_t>(a)] = 0;
    }
    return s;
}

// Walks the input once; `row` folds a row of n inputs into the output, either all into one
// element (out stride 0) or elementwise (out stride 1).
template <class T, class Fold>
void reduce_kernel(const KernelArgs& args, const std::vector<int>& axes, T init, Fold fold) {
    const Shape& in_shape = args.in_shape(0);
    const T* in = args.input<T>(0);
    T* out = args.output<T>();
    std::fill_n(out, numel(args.out_shape), init);
    kernels::for_each_row<2>(
        in_shape, {reduction_out_strides(in_shape, axes), kernels::contiguous_strides(in_shape)},
        [&](const std::array<std::ptrdiff_t, 2>& off, std::size_t n,
            const std::array<std::ptrdiff_t, 2>& inc) { fold(out + off[0], in + off[1], n, inc[0]); });
}

} // namespace

// --- sum ---
Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdims) {
    check_defined("sum", x);
    std::vector<int> norm = normalize_axes("sum", axes, x.dim(), x.shape());
    if (norm.empty()) { // a 0-d tensor: its sum is itself
        return x;
    }
    Shape shape = reduced_shape(x.shape(), norm, keepdims);
    return make_tensor(ReduceSum{norm, keepdims}, {x}, std::move(shape), x.dtype());
}
std::string ReduceSum::attributes() const {
    return "axes=" + axes_to_string(axes) + (keepdims ? " keepdims" : "");
}
void ReduceSum::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        reduce_kernel<T>(args, axes, T(0),
                         [](T* o, const T* in, std::size_t n, std::ptrdiff_t out_inc) {
                             using B = xsimd::batch<T>;
                             constexpr std::size_t W = B::size;
                             std::size_t j = 0;
                             if (out_inc == 0) {
                                 B acc(T(0));
                                 for (; j + W <= n; j += W) {
                                     acc += B::load_unaligned(in + j);
                                 }
                                 T s = xsimd::hadd(acc);
                                 for (; j < n; ++j) {
                                     s += in[j];
                                 }
                                 *o += s;
                             } else {
                                 for (; j + W <= n; j += W) {
                                     (B::load_unaligned(o + j) + B::load_unaligned(in + j))
                                         .store_unaligned(o + j);
                                 }
                                 for (; j < n; ++j) {
                                     o[j] += in[j];
                                 }
                             }
                         });
    });
}
std::vector<Tensor> ReduceSum::backward(const GradArgs& g) const {
    const Shape& in_shape = g.inputs[0].shape();
    Tensor grad = reshape(g.grad_out, reduced_shape(in_shape, axes, true));
    return {broadcast_to(grad, in_shape)};
}

// --- max ---
Tensor max(const Tensor& x, const std::vector<int>& axes, bool keepdims) {
    check_defined("max", x);
    PYNN_CHECK(x.numel() > 0, ValueError, "max: x ", to_string(x.shape()),
               " is empty: the maximum of no values is undefined");
    std::vector<int> norm = normalize_axes("max", axes, x.dim(), x.shape());
    if (norm.empty()) {
        return x;
    }
    for (int a : norm) {
        PYNN_CHECK(x.shape()[static_cast<std::size_t>(a)] > 0, ValueError, "max: x ",
                   to_string(x.shape()), " has size 0 on reduced axis ", a);
    }
    Shape shape = reduced_shape(x.shape(), norm, keepdims);
    return make_tensor(ReduceMax{norm, keepdims}, {x}, std::move(shape), x.dtype());
}
std::string ReduceMax::attributes() const {
    return "axes=" + axes_to_string(axes) + (keepdims ? " keepdims" : "");
}
void ReduceMax::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        reduce_kernel<T>(args, axes, -std::numeric_limits<T>::infinity(),
                         [](T* o, const T* in, std::size_t n, std::ptrdiff_t out_inc) {
                             using B = xsimd::batch<T>;
                             constexpr std::size_t W = B::size;
                             std::size_t j = 0;
                             if (out_inc == 0) {
                                 T m = *o;
                                 if (n >= 2 * W) {
                                     B acc = B::load_unaligned(in);
                                     for (j = W; j + W <= n; j += W) {
                                         acc = xsimd::max(acc, B::load_unaligned(in + j));
                                     }
                                     alignas(64) T lanes[W];
                                     acc.store_aligned(lanes);
                                     for (std::size_t l = 0; l < W; ++l) {
                                         m = std::max(m, lanes[l]);
                                     }
                                 }
                                 for (; j < n; ++j) {
                                     m = std::max(m, in[j]);
                                 }
                                 *o = m;
                             } else {
                                 for (; j + W <= n; j += W) {
                                     xsimd::max(B::load_unaligned(o + j), B::load_unaligned(in + j))
                                         .store_unaligned(o + j);
                                 }
                                 for (; j < n; ++j) {
                                     o[j] = std::max(o[j], in[j]);
                                 }
                             }
                         });
    });
}
std::vector<Tensor> ReduceMax::backward(const GradArgs& g) const {
    // The gradient goes to the maximal elements, split evenly between ties (as torch.amax).
    const Tensor& x = g.inputs[0];
    Shape kept = reduced_shape(x.shape(), axes, true);
    Tensor mask = eq(x, reshape(g.output, kept));
    Tensor count = sum(mask, axes, true);
    return {reshape(g.grad_out, kept) * mask / count};
}

// --- argmax ---
Tensor argmax(const Tensor& x, int axis, bool keepdims) {
    check_defined("argmax", x);
    PYNN_CHECK(x.dim() > 0, ValueError, "argmax: x ", to_string(x.shape()),
               " is 0-d: there is no axis to search");
    int a = normalize_axis("argmax", axis, x.dim(), x.shape());
    PYNN_CHECK(x.shape()[static_cast<std::size_t>(a)] > 0, ValueError, "argmax: x ",
               to_string(x.shape()), " has size 0 on axis ", a);
    Shape shape = reduced_shape(x.shape(), {a}, keepdims);
    return make_tensor(Argmax{a, keepdims}, {x}, std::move(shape), x.dtype());
}
std::string Argmax::attributes() const {
    return "axis=" + std::to_string(axis) + (keepdims ? " keepdims" : "");
}
void Argmax::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        const Shape& s = args.in_shape(0);
        const auto ax = static_cast<std::size_t>(axis);
        std::size_t outer = 1, inner = 1;
        for (std::size_t i = 0; i < ax; ++i) {
            outer *= s[i];
        }
        for (std::size_t i = ax + 1; i < s.size(); ++i) {
            inner *= s[i];
        }
        const std::size_t len = s[ax];
        const T* in = args.input<T>(0);
        T* out = args.output<T>();
        for (std::size_t o = 0; o < outer; ++o) {
            for (std::size_t i = 0; i < inner; ++i) {
                const T* base = in + o * len * inner + i;
                std::size_t best = 0;
                for (std::size_t j = 1; j < len; ++j) {
                    if (base[j * inner] > base[best * inner]) {
                        best = j;
                    }
                }
                out[o * inner + i] = static_cast<T>(best);
            }
        }
    });
}
std::vector<Tensor> Argmax::backward(const GradArgs&) const { return {Tensor()}; }

} // namespace pynn
