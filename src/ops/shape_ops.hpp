// Data-movement primitives: reshape, permute, broadcast_to, slice (and its adjoint, which writes a
// slice into zeros), concat. They all run as one strided copy (kernels/strided.hpp).
#pragma once

#include <cstdint>

#include "ops/op_base.hpp"

namespace pynn {

struct Reshape {
    static constexpr std::string_view name = "reshape";
    Shape shape;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

struct Permute {
    static constexpr std::string_view name = "permute";
    std::vector<int> perm;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

struct BroadcastTo {
    static constexpr std::string_view name = "broadcast_to";
    Shape shape;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

// x[begin:begin+step*len:step] on `axis` (bounds already normalised by the builder).
struct Slice {
    static constexpr std::string_view name = "slice";
    int axis = 0;
    std::int64_t begin = 0;
    std::int64_t step = 1;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

// The adjoint of Slice: a tensor of `full_shape`, zero except where the slice came from.
struct SliceScatter {
    static constexpr std::string_view name = "slice_scatter";
    int axis = 0;
    std::int64_t begin = 0;
    std::int64_t step = 1;
    Shape full_shape;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

struct Concat {
    static constexpr std::string_view name = "concat";
    int axis = 0;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

Tensor slice_scatter(const Tensor& grad, const Shape& full_shape, int axis, std::int64_t begin,
                     std::int64_t step);

} // namespace pynn
