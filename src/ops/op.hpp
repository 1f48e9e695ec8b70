// The op list: every primitive pynn knows, as one variant. Code that handles ops visits it without
// a catch-all, so adding a primitive without handling it everywhere is a compile error.
#pragma once

#include <type_traits>
#include <variant>

#include "ops/conv.hpp"
#include "ops/elementwise.hpp"
#include "ops/leaf.hpp"
#include "ops/matmul.hpp"
#include "ops/reduce.hpp"
#include "ops/shape_ops.hpp"

namespace pynn {

using Op = std::variant<Leaf, Detach,                                          // data
                        Add, Sub, Mul, Div, Pow, Maximum, Minimum,             // binary
                        Neg, Exp, Log, Sqrt, Abs, Sign, Tanh, Sigmoid, Relu,   // unary
                        LeakyRelu, Compare, Where,                             //
                        ReduceSum, ReduceMax, Argmax,                          // reductions
                        Matmul,                                                // BLAS
                        Reshape, Permute, BroadcastTo, Slice, SliceScatter, Concat, // movement
                        Conv2d, Conv2dGradInput, Conv2dGradWeight,             // convolution
                        MaxPool2d, MaxPool2dGrad, AvgPool2d, AvgPool2dGrad>;   // pooling

static_assert(std::variant_size_v<Op> == 38, "update the op list's users when adding an op");

inline std::string_view op_name(const Op& op) {
    return std::visit([](const auto& o) { return std::decay_t<decltype(o)>::name; }, op);
}
inline std::string op_attributes(const Op& op) {
    return std::visit([](const auto& o) { return o.attributes(); }, op);
}

} // namespace pynn
