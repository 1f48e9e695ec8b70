// Elementwise primitives: unary and binary maps with numpy broadcasting, comparisons giving 0/1
// masks, and where(). Their scalar/SIMD functors live in ops/elementwise_functors.hpp so that a
// fused kernel can apply them tile by tile; the shape rules and backward rules are in
// elementwise.cpp.
#pragma once

#include "ops/op_base.hpp"

namespace pynn {
// --- binary, broadcasting ---
struct Add {
    static constexpr std::string_view name = "add";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Sub {
    static constexpr std::string_view name = "sub";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Mul {
    static constexpr std::string_view name = "mul";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Div {
    static constexpr std::string_view name = "div";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Pow {
    static constexpr std::string_view name = "pow";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Maximum {
    static constexpr std::string_view name = "maximum";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Minimum {
    static constexpr std::string_view name = "minimum";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
// --- unary ---
struct Neg {
    static constexpr std::string_view name = "neg";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Exp {
    static constexpr std::string_view name = "exp";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Log {
    static constexpr std::string_view name = "log";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Sqrt {
    static constexpr std::string_view name = "sqrt";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Abs {
    static constexpr std::string_view name = "abs";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Sign {
    static constexpr std::string_view name = "sign";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Tanh {
    static constexpr std::string_view name = "tanh";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Sigmoid {
    static constexpr std::string_view name = "sigmoid";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Relu {
    static constexpr std::string_view name = "relu";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct LeakyRelu {
    static constexpr std::string_view name = "leaky_relu";
    double negative_slope = 0.01;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

enum class CompareKind : std::uint8_t { Eq, Ne, Lt, Le, Gt, Ge };
struct Compare {
    static constexpr std::string_view name = "compare";
    CompareKind kind = CompareKind::Eq;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};
struct Where {
    static constexpr std::string_view name = "where";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

// Shape of numpy broadcasting `a` against `b`; throws ShapeError naming `op` and both operands.
Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b,
                       std::string_view label_a = "a", std::string_view label_b = "b");

} // namespace pynn
