// Leaf: a node that holds data (a created tensor, a parameter, a constant). It has no kernel: the
// executor binds its storage directly.
#pragma once

#include "ops/op_base.hpp"

namespace pynn {

struct Leaf {
    static constexpr std::string_view name = "leaf";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

// Detach: the identity on values with no gradient path (Tensor::detach).
struct Detach {
    static constexpr std::string_view name = "detach";
    std::string attributes() const { return {}; }
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

} // namespace pynn
