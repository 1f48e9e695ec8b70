// Helpers the ops' builder functions share: the check macro that formats user errors, dtype
// checks, and wrapping a new node in a Tensor.
#pragma once

#include <sstream>
#include <string_view>
#include <vector>

#include "graph/node.hpp"
#include "pynn/error.hpp"
#include "pynn/tensor.hpp"

namespace pynn {

// Throws ErrorType with a message built by streaming the remaining arguments.
#define PYNN_CHECK(cond, ErrorType, ...)                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            std::ostringstream pynn_check_msg_;                                                   \
            pynn::detail::stream_all(pynn_check_msg_, __VA_ARGS__);                               \
            throw ErrorType(pynn_check_msg_.str());                                               \
        }                                                                                         \
    } while (false)

// Internal invariants (bugs in pynn, not user mistakes); checked in every build.
#define PYNN_ASSERT(cond, ...)                                                                    \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            std::ostringstream pynn_check_msg_;                                                   \
            pynn::detail::stream_all(pynn_check_msg_, "internal error: ", __VA_ARGS__);           \
            throw pynn::Error(pynn_check_msg_.str());                                             \
        }                                                                                         \
    } while (false)

namespace detail {
template <class... Args>
void stream_all(std::ostringstream& out, const Args&... args) {
    (out << ... << args);
}
} // namespace detail

// "a (2, 3)" style operand description.
inline std::string describe(std::string_view label, const Tensor& t) {
    return std::string(label) + " " + to_string(t.shape());
}

void check_defined(std::string_view op, const Tensor& t, std::string_view label = "x");
// Both operands must share a dtype: pynn never promotes silently.
void check_same_dtype(std::string_view op, const Tensor& a, const Tensor& b,
                      std::string_view label_a = "a", std::string_view label_b = "b");

Tensor make_tensor(Op op, const std::vector<Tensor>& inputs, Shape shape, DType dtype);

// Normalises an axis in [-rank, rank) to [0, rank); throws ValueError naming the op.
int normalize_axis(std::string_view op, int axis, std::size_t rank, const Shape& shape);

} // namespace pynn
