// Reductions: sum and max over a set of axes (with or without keepdims) and argmax along one axis.
// mean and min are composites (functional/), built from these.
#pragma once

#include "ops/op_base.hpp"

namespace pynn {

struct ReduceSum {
    static constexpr std::string_view name = "sum";
    std::vector<int> axes; // sorted, non-negative, unique; never empty
    bool keepdims = false;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

struct ReduceMax {
    static constexpr std::string_view name = "max";
    std::vector<int> axes;
    bool keepdims = false;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

struct Argmax {
    static constexpr std::string_view name = "argmax";
    int axis = 0;
    bool keepdims = false;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

// Normalises user axes against rank `rank` (negative counts from the end), sorted and unique;
// empty means all axes. Throws ValueError naming `op`.
std::vector<int> normalize_axes(std::string_view op, const std::vector<int>& axes,
                                std::size_t rank, const Shape& shape);
Shape reduced_shape(const Shape& shape, const std::vector<int>& axes, bool keepdims);

} // namespace pynn
