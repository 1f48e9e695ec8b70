// Composite ops: built only from primitives, so they need no kernel and no backward rule of their
// own; the compiler differentiates and (later) fuses the primitives they expand into.
#include <cmath>
#include <numbers>

#include "ops/builder.hpp"
#include "ops/reduce.hpp"
#include "pynn/math.hpp"

namespace pynn {

Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdims) {
    check_defined("mean", x);
    std::vector<int> norm = normalize_axes("mean", axes, x.dim(), x.shape());
    std::size_t count = 1;
    for (int a : norm) {
        count *= x.shape()[static_cast<std::size_t>(a)];
    }
    return sum(x, norm, keepdims) * (1.0 / static_cast<double>(count));
}

Tensor min(const Tensor& x, const std::vector<int>& axes, bool keepdims) {
    check_defined("min", x);
    // Validate here so errors name min, not the max it expands to.
    PYNN_CHECK(x.numel() > 0, ValueError, "min: x ", to_string(x.shape()),
               " is empty: the minimum of no values is undefined");
    normalize_axes("min", axes, x.dim(), x.shape());
    return -max(-x, axes, keepdims);
}

Tensor square(const Tensor& x) { return x * x; }

Tensor clip(const Tensor& x, double low, double high) {
    check_defined("clip", x);
    PYNN_CHECK(low <= high, ValueError, "clip: low ", low, " is above high ", high);
    return minimum(maximum(x, Tensor::scalar(low, x.dtype())), Tensor::scalar(high, x.dtype()));
}

Tensor gelu(const Tensor& x) {
    check_defined("gelu", x);
    const double k = std::sqrt(2.0 / std::numbers::pi);
    return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
}

Tensor softmax(const Tensor& x, int axis) {
    check_defined("softmax", x);
    normalize_axis("softmax", axis, x.dim(), x.shape()); // so a bad axis names softmax, not max
    // Subtracting the (constant) row maximum keeps exp() in range; it cancels in the gradient.
    Tensor shifted = x - max(x, {axis}, true).detach();
    Tensor e = exp(shifted);
    return e / sum(e, {axis}, true);
}

Tensor log_softmax(const Tensor& x, int axis) {
    check_defined("log_softmax", x);
    normalize_axis("log_softmax", axis, x.dim(), x.shape());
    Tensor shifted = x - max(x, {axis}, true).detach();
    return shifted - log(sum(exp(shifted), {axis}, true));
}

Tensor one_hot(const Tensor& labels, std::size_t num_classes) {
    check_defined("one_hot", labels, "labels");
    PYNN_CHECK(num_classes > 0, ValueError, "one_hot: num_classes must be positive");
    Shape column = labels.shape();
    column.push_back(1);
    Tensor classes = Tensor::arange(0.0, static_cast<double>(num_classes), 1.0, labels.dtype());
    return eq(reshape(labels.detach(), column), classes);
}

Tensor stack(const std::vector<Tensor>& xs, int axis) {
    PYNN_CHECK(!xs.empty(), ValueError, "stack: needs at least one tensor");
    check_defined("stack", xs.front());
    const Shape& first = xs.front().shape();
    const int rank = static_cast<int>(first.size()) + 1;
    PYNN_CHECK(axis >= -rank && axis < rank, ValueError, "stack: axis ", axis,
               " is out of range for the result's ", rank, " axes");
    const auto a = static_cast<std::size_t>(axis < 0 ? axis + rank : axis);
    std::vector<Tensor> parts;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        check_defined("stack", xs[i]);
        PYNN_CHECK(xs[i].shape() == first, ShapeError, "stack: tensor 0 ", to_string(first),
                   " and tensor ", i, " ", to_string(xs[i].shape()), ": shapes differ");
        Shape s = first;
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(a), 1);
        parts.push_back(reshape(xs[i], s));
    }
    return concat(parts, static_cast<int>(a));
}

} // namespace pynn
