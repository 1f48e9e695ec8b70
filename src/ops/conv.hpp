// 2-D convolution and pooling on NCHW tensors. Conv2d runs as im2col + one GEMM per image; its
// backward rule emits two more primitives (gradient w.r.t. input: GEMM + col2im; w.r.t. weight:
// im2col + GEMM). Pooling has its own forward and gradient kernels.
#pragma once

#include "ops/op_base.hpp"

namespace pynn {

struct Conv2dGeometry {
    std::size_t stride = 1;
    std::size_t padding = 0;
};

// y (N, O, OH, OW) = conv(x (N, C, H, W), w (O, C, KH, KW)), cross-correlation as torch.
struct Conv2d {
    static constexpr std::string_view name = "conv2d";
    Conv2dGeometry geo;
    std::string attributes() const;
    void forward(const KernelArgs& args) const { forward(args, nullptr); }
    // With a sink, images go to it one at a time (a fused epilogue, see PartSink).
    void forward(const KernelArgs& args, const PartSink* sink) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

// d(conv)/dx: inputs (w, grad_out) -> (N, C, H, W) of `input_shape`.
struct Conv2dGradInput {
    static constexpr std::string_view name = "conv2d_grad_input";
    Conv2dGeometry geo;
    Shape input_shape;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

// d(conv)/dw: inputs (x, grad_out) -> (O, C, KH, KW) of `weight_shape`.
struct Conv2dGradWeight {
    static constexpr std::string_view name = "conv2d_grad_weight";
    Conv2dGeometry geo;
    Shape weight_shape;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

struct PoolGeometry {
    std::size_t kernel = 2;
    std::size_t stride = 2;
};

struct MaxPool2d {
    static constexpr std::string_view name = "max_pool2d";
    PoolGeometry geo;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

// inputs (x, grad_out): routes each window's gradient to its (first) maximum.
struct MaxPool2dGrad {
    static constexpr std::string_view name = "max_pool2d_grad";
    PoolGeometry geo;
    std::string attributes() const;
    void forward(const KernelArgs& args) const { forward(args, nullptr); }
    // With a sink, planes go to it in blocks (a fused epilogue, see PartSink).
    void forward(const KernelArgs& args, const PartSink* sink) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

struct AvgPool2d {
    static constexpr std::string_view name = "avg_pool2d";
    PoolGeometry geo;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

// input grad_out -> (N, C, H, W) of `input_shape`: spreads each gradient over its window.
struct AvgPool2dGrad {
    static constexpr std::string_view name = "avg_pool2d_grad";
    PoolGeometry geo;
    Shape input_shape;
    std::string attributes() const;
    void forward(const KernelArgs& args) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

} // namespace pynn
