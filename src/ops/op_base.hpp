// What every primitive op sees: the operands of its forward kernel and of its backward rule.
// Each op is a struct with `name`, `attributes()`, `forward(KernelArgs)` and `backward(GradArgs)`;
// the list of them is the Op variant in ops/op.hpp.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pynn/dtype.hpp"
#include "pynn/tensor.hpp"

namespace pynn {

struct Operand {
    const void* data;
    const Shape* shape;
};

struct KernelArgs {
    DType dtype;
    std::span<const Operand> in;
    void* out;
    const Shape& out_shape;
    // Fused kernels may write more than one buffer: their outputs after `out`, in order.
    std::span<void* const> extra_out = {};

    template <class T>
    const T* input(std::size_t i) const {
        return static_cast<const T*>(in[i].data);
    }
    const Shape& in_shape(std::size_t i) const { return *in[i].shape; }
    template <class T>
    T* output() const {
        return static_cast<T*>(out);
    }
};

// How a producer op hands its output to a fused epilogue (compiler/fuse.cpp) part by part while
// each part is in cache. A part is a range of the output's leading units (images for conv2d,
// planes for max_pool2d_grad): units [begin, end) are written to out(begin, end) instead of the
// output tensor, then done(begin, end, that buffer) runs, on the same thread.
struct PartSink {
    std::function<void*(std::size_t begin, std::size_t end)> out;
    std::function<void(std::size_t begin, std::size_t end, const void* data)> done;
};

// Backward rules build gradient nodes from public ops, so the compiler sees them as more DAG.
// A rule returns one Tensor per input; an undefined Tensor means "no gradient for this input".
struct GradArgs {
    const std::vector<Tensor>& inputs;
    const Tensor& output;
    const Tensor& grad_out;
};

// Calls `body.template operator()<T>()` with T = float or double according to `dtype`.
template <class Body>
void dispatch_dtype(DType dtype, Body&& body) {
    if (dtype == DType::Float32) {
        body.template operator()<float>();
    } else {
        body.template operator()<double>();
    }
}

// Sums a broadcast gradient back to the shape of the input it flows to.
Tensor reduce_to_shape(const Tensor& grad, const Shape& shape);

std::string axes_to_string(const std::vector<int>& axes);

} // namespace pynn
