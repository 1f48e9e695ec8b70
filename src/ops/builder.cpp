// Shared checks used by every op's builder.
#include "ops/builder.hpp"

#include <algorithm>
#include <cstddef>
#include <limits>

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

namespace {
bool addressable(const Shape& shape, DType dtype) {
    // Strides multiply every size but a leading one, and an empty tensor's strides still multiply
    // its nonzero sizes, so zeros count as ones here.
    const auto max_bytes = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());
    std::size_t extent = dtype_size(dtype);
    for (std::size_t d : shape) {
        const std::size_t factor = std::max<std::size_t>(d, 1);
        if (extent > max_bytes / factor) {
            return false;
        }
        extent *= factor;
    }
    return true;
}
} // namespace

Tensor make_tensor(Op op, const std::vector<Tensor>& inputs, Shape shape, DType dtype) {
    // Every op's shape rule ends here, so one check covers them all (matmul of (2^40, 0) and
    // (0, 2^40), say, which multiplies out to more elements than a size_t holds).
    if (!addressable(shape, dtype)) {
        std::ostringstream operands;
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            operands << (i ? ", " : "") << to_string(inputs[i].shape());
        }
        PYNN_CHECK(false, ShapeError, op_name(op), ": the result ", to_string(shape), " of ",
                   operands.str(), " has more elements than can be addressed");
    }
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
