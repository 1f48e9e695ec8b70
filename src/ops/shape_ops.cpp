// Data-movement primitives: shape rules, the strided-copy kernels and backward rules of reshape,
// permute, broadcast_to, slice, slice_scatter and concat.
#include "ops/shape_ops.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>

#include "kernels/strided.hpp"
#include "ops/builder.hpp"
#include "pynn/math.hpp"

namespace pynn {

namespace {
std::string perm_to_string(const std::vector<int>& p) { return axes_to_string(p); }
} // namespace

Tensor reduce_to_shape(const Tensor& grad, const Shape& shape) {
    const Shape& gs = grad.shape();
    if (gs == shape) {
        return grad;
    }
    PYNN_ASSERT(gs.size() >= shape.size(), "reduce_to_shape: gradient ", to_string(gs),
                " has fewer axes than ", to_string(shape));
    const std::size_t lead = gs.size() - shape.size();
    std::vector<int> axes;
    for (std::size_t i = 0; i < gs.size(); ++i) {
        if (i < lead || (shape[i - lead] == 1 && gs[i] != 1)) {
            axes.push_back(static_cast<int>(i));
        }
    }
    Tensor r = axes.empty() ? grad : sum(grad, axes, true);
    return r.shape() == shape ? r : reshape(r, shape);
}

// --- reshape ---
Tensor reshape(const Tensor& x, const Shape& shape) {
    check_defined("reshape", x);
    // numel() wraps around: (2^32, 2^32) would pass for an empty x.
    bool overflow = false;
    std::size_t count = 1;
    for (std::size_t d : shape) {
        overflow = overflow || (d != 0 && count > std::numeric_limits<std::size_t>::max() / d);
        count *= d;
    }
    PYNN_CHECK(!overflow, ShapeError, "reshape: x ", to_string(x.shape()), " has ", x.numel(),
               " elements, cannot view it as ", to_string(shape), " (more than 2^64 elements)");
    PYNN_CHECK(count == x.numel(), ShapeError, "reshape: x ", to_string(x.shape()), " has ",
               x.numel(), " elements, cannot view it as ", to_string(shape), " (", count,
               " elements)");
    return make_tensor(Reshape{shape}, {x}, shape, x.dtype());
}
Tensor flatten(const Tensor& x, int start_axis) {
    check_defined("flatten", x);
    if (x.dim() == 0) {
        return reshape(x, {1});
    }
    const auto start = static_cast<std::size_t>(normalize_axis("flatten", start_axis, x.dim(),
                                                               x.shape()));
    Shape shape(x.shape().begin(), x.shape().begin() + static_cast<std::ptrdiff_t>(start));
    std::size_t rest = 1;
    for (std::size_t i = start; i < x.dim(); ++i) {
        rest *= x.shape()[i];
    }
    shape.push_back(rest);
    return reshape(x, shape);
}
std::string Reshape::attributes() const { return "shape=" + to_string(shape); }
void Reshape::forward(const KernelArgs& args) const {
    std::memcpy(args.out, args.in[0].data, numel(args.out_shape) * dtype_size(args.dtype));
}
std::vector<Tensor> Reshape::backward(const GradArgs& g) const {
    return {reshape(g.grad_out, g.inputs[0].shape())};
}

// --- permute ---
Tensor permute(const Tensor& x, const std::vector<int>& perm) {
    check_defined("permute", x);
    PYNN_CHECK(perm.size() == x.dim(), ShapeError, "permute: x ", to_string(x.shape()), " has ",
               x.dim(), " axes but the permutation ", perm_to_string(perm), " has ", perm.size());
    std::vector<int> norm;
    for (int p : perm) {
        norm.push_back(normalize_axis("permute", p, x.dim(), x.shape()));
    }
    std::vector<int> sorted = norm;
    std::sort(sorted.begin(), sorted.end());
    PYNN_CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(), ValueError,
               "permute: ", perm_to_string(perm), " is not a permutation of the axes of x ",
               to_string(x.shape()));
    Shape shape;
    for (int p : norm) {
        shape.push_back(x.shape()[static_cast<std::size_t>(p)]);
    }
    return make_tensor(Permute{norm}, {x}, std::move(shape), x.dtype());
}
Tensor transpose(const Tensor& x) {
    check_defined("transpose", x);
    std::vector<int> perm(x.dim());
    std::iota(perm.rbegin(), perm.rend(), 0);
    return permute(x, perm);
}
Tensor transpose(const Tensor& x, int axis0, int axis1) {
    check_defined("transpose", x);
    std::vector<int> perm(x.dim());
    std::iota(perm.begin(), perm.end(), 0);
    const auto a = static_cast<std::size_t>(normalize_axis("transpose", axis0, x.dim(), x.shape()));
    const auto b = static_cast<std::size_t>(normalize_axis("transpose", axis1, x.dim(), x.shape()));
    std::swap(perm[a], perm[b]);
    return permute(x, perm);
}
std::string Permute::attributes() const { return "perm=" + perm_to_string(perm); }
void Permute::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        kernels::Strides in = kernels::contiguous_strides(args.in_shape(0));
        kernels::Strides src(perm.size());
        for (std::size_t i = 0; i < perm.size(); ++i) {
            src[i] = in[static_cast<std::size_t>(perm[i])];
        }
        kernels::strided_copy<T>(args.out_shape, args.output<T>(),
                                 kernels::contiguous_strides(args.out_shape), args.input<T>(0),
                                 src);
    });
}
std::vector<Tensor> Permute::backward(const GradArgs& g) const {
    std::vector<int> inverse(perm.size());
    for (std::size_t i = 0; i < perm.size(); ++i) {
        inverse[static_cast<std::size_t>(perm[i])] = static_cast<int>(i);
    }
    return {permute(g.grad_out, inverse)};
}

// --- broadcast_to ---
Tensor broadcast_to(const Tensor& x, const Shape& shape) {
    check_defined("broadcast_to", x);
    const Shape& xs = x.shape();
    bool ok = xs.size() <= shape.size();
    for (std::size_t i = 0; ok && i < xs.size(); ++i) {
        const std::size_t target = shape[shape.size() - xs.size() + i];
        ok = xs[i] == target || xs[i] == 1;
    }
    PYNN_CHECK(ok, ShapeError, "broadcast_to: x ", to_string(xs), " cannot be broadcast to ",
               to_string(shape));
    return make_tensor(BroadcastTo{shape}, {x}, shape, x.dtype());
}
std::string BroadcastTo::attributes() const { return "shape=" + to_string(shape); }
void BroadcastTo::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        kernels::strided_copy<T>(args.out_shape, args.output<T>(),
                                 kernels::contiguous_strides(args.out_shape), args.input<T>(0),
                                 kernels::broadcast_strides(args.in_shape(0), args.out_shape));
    });
}
std::vector<Tensor> BroadcastTo::backward(const GradArgs& g) const {
    return {reduce_to_shape(g.grad_out, g.inputs[0].shape())};
}

// --- slice ---
Tensor slice(const Tensor& x, int axis, std::int64_t begin, std::int64_t end, std::int64_t step) {
    check_defined("slice", x);
    PYNN_CHECK(x.dim() > 0, ShapeError, "slice: x ", to_string(x.shape()),
               " is 0-d: there is no axis to slice");
    const int a = normalize_axis("slice", axis, x.dim(), x.shape());
    PYNN_CHECK(step > 0, ValueError, "slice: step ", step, " on axis ", a, " of x ",
               to_string(x.shape()), " must be positive");
    const auto len = static_cast<std::int64_t>(x.shape()[static_cast<std::size_t>(a)]);
    // Python's rules: negative bounds count from the end, then clamp into [0, len].
    auto clamp = [len](std::int64_t v) {
        if (v < 0) {
            v += len;
        }
        return std::clamp<std::int64_t>(v, 0, len);
    };
    const std::int64_t b = clamp(begin);
    const std::int64_t e = clamp(end);
    // Not (e - b + step - 1) / step, which overflows for a step near 2^63.
    const std::int64_t count = e > b ? (e - b - 1) / step + 1 : 0;
    Shape shape = x.shape();
    shape[static_cast<std::size_t>(a)] = static_cast<std::size_t>(count);
    // With at most one element taken the step is irrelevant; 1 keeps the kernels' stride
    // arithmetic (stride * step) and the backward rule's end (begin + count * step) in range.
    return make_tensor(Slice{a, b, count > 1 ? step : 1}, {x}, std::move(shape), x.dtype());
}
std::string Slice::attributes() const {
    return "axis=" + std::to_string(axis) + " begin=" + std::to_string(begin) +
           " step=" + std::to_string(step);
}
namespace {
// Strides and offset of the slice (axis, begin, step) inside a contiguous `full` tensor.
std::pair<kernels::Strides, std::ptrdiff_t> slice_view(const Shape& full, int axis,
                                                       std::int64_t begin, std::int64_t step) {
    kernels::Strides s = kernels::contiguous_strides(full);
    const auto ax = static_cast<std::size_t>(axis);
    std::ptrdiff_t offset = begin * s[ax];
    s[ax] *= step;
    return {s, offset};
}
} // namespace
void Slice::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        auto [src, offset] = slice_view(args.in_shape(0), axis, begin, step);
        kernels::strided_copy<T>(args.out_shape, args.output<T>(),
                                 kernels::contiguous_strides(args.out_shape),
                                 args.input<T>(0) + offset, src);
    });
}
std::vector<Tensor> Slice::backward(const GradArgs& g) const {
    return {slice_scatter(g.grad_out, g.inputs[0].shape(), axis, begin, step)};
}

// --- slice_scatter (the adjoint of slice) ---
Tensor slice_scatter(const Tensor& grad, const Shape& full_shape, int axis, std::int64_t begin,
                     std::int64_t step) {
    return make_tensor(SliceScatter{axis, begin, step, full_shape}, {grad}, full_shape,
                       grad.dtype());
}
std::string SliceScatter::attributes() const {
    return "axis=" + std::to_string(axis) + " begin=" + std::to_string(begin) +
           " step=" + std::to_string(step) + " shape=" + to_string(full_shape);
}
void SliceScatter::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        T* out = args.output<T>();
        std::fill_n(out, numel(args.out_shape), T(0));
        auto [dst, offset] = slice_view(args.out_shape, axis, begin, step);
        kernels::strided_copy<T>(args.in_shape(0), out + offset, dst, args.input<T>(0),
                                 kernels::contiguous_strides(args.in_shape(0)));
    });
}
std::vector<Tensor> SliceScatter::backward(const GradArgs& g) const {
    const auto count = static_cast<std::int64_t>(g.inputs[0].shape()[static_cast<std::size_t>(axis)]);
    return {slice(g.grad_out, axis, begin, begin + count * step, step)};
}

// --- concat ---
Tensor concat(const std::vector<Tensor>& xs, int axis) {
    PYNN_CHECK(!xs.empty(), ValueError, "concat: needs at least one tensor");
    for (const Tensor& x : xs) {
        check_defined("concat", x);
    }
    const Tensor& first = xs.front();
    PYNN_CHECK(first.dim() > 0, ShapeError, "concat: tensor 0 ", to_string(first.shape()),
               " is 0-d: there is no axis to join along");
    const int a = normalize_axis("concat", axis, first.dim(), first.shape());
    Shape shape = first.shape();
    shape[static_cast<std::size_t>(a)] = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        const Tensor& x = xs[i];
        check_same_dtype("concat", first, x, "tensor 0", "tensor " + std::to_string(i));
        bool same = x.dim() == first.dim();
        for (std::size_t d = 0; same && d < x.dim(); ++d) {
            same = d == static_cast<std::size_t>(a) || x.shape()[d] == first.shape()[d];
        }
        PYNN_CHECK(same, ShapeError, "concat: tensor 0 ", to_string(first.shape()), " and tensor ",
                   i, " ", to_string(x.shape()), ": shapes differ outside axis ", a);
        shape[static_cast<std::size_t>(a)] += x.shape()[static_cast<std::size_t>(a)];
    }
    return make_tensor(Concat{a}, xs, std::move(shape), first.dtype());
}
std::string Concat::attributes() const { return "axis=" + std::to_string(axis); }
void Concat::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        T* out = args.output<T>();
        std::int64_t begin = 0;
        for (std::size_t i = 0; i < args.in.size(); ++i) {
            const Shape& s = args.in_shape(i);
            auto [dst, offset] = slice_view(args.out_shape, axis, begin, 1);
            kernels::strided_copy<T>(s, out + offset, dst, args.input<T>(i),
                                     kernels::contiguous_strides(s));
            begin += static_cast<std::int64_t>(s[static_cast<std::size_t>(axis)]);
        }
    });
}
std::vector<Tensor> Concat::backward(const GradArgs& g) const {
    std::vector<Tensor> grads;
    std::int64_t begin = 0;
    for (const Tensor& x : g.inputs) {
        const auto len = static_cast<std::int64_t>(x.shape()[static_cast<std::size_t>(axis)]);
        grads.push_back(slice(g.grad_out, axis, begin, begin + len));
        begin += len;
    }
    return grads;
}

} // namespace pynn
