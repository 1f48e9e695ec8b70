// Shared checks used by every op's builder.
#include "ops/builder.hpp"

namespace pynn {

void check_defined(std::string_view op, const Tensor& t, std::string_view label) {
    PYNN_CHECK(t.defined(), ValueError, op, ": ", label,
               " is an undefined Tensor (default-constructed, or a gradient that was never set)");
}

void check_same_dtype(std::string_view op, const Tensor& a, const Tensor& b,
                      std::string_view label_a, std::string_view label_b) {
    PYNN_CHECK(a.dtype() == b.dtype(), DTypeError, op, ": ", label_a, " ", to_string(a.shape()),
               " is ", to_string(a.dtype()), " but ", label_b, " ", to_string(b.shape()), " is ",
               to_string(b.dtype()), " (pynn does not promote dtypes; convert one explicitly)");
}

Tensor make_tensor(Op op, const std::vector<Tensor>& inputs, Shape shape, DType dtype) {
    std::vector<NodePtr> nodes;
    nodes.reserve(inputs.size());
    for (const Tensor& t : inputs) {
        nodes.push_back(t.node());
    }
    return Tensor(make_node(std::move(op), std::move(nodes), std::move(shape), dtype));
}

int normalize_axis(std::string_view op, int axis, std::size_t rank, const Shape& shape) {
    const auto r = static_cast<int>(rank);
    PYNN_CHECK(axis >= -r && axis < r, ValueError, op, ": axis ", axis,
               " is out of range for x ", to_string(shape), " (", rank, " axes)");
    return axis < 0 ? axis + r : axis;
}

} // namespace pynn
