// Conv2d, MaxPool2d and AvgPool2d layers over the conv2d / pooling ops.
#include <cmath>

#include "pynn/error.hpp"
#include "pynn/layers.hpp"

#include "layers/weight_bias.hpp"

namespace pynn::layers {

namespace {

class Conv2dLayer : public WeightBiasLayer {
public:
    Conv2dLayer(std::size_t in, std::size_t out, std::size_t k, std::size_t stride,
                std::size_t padding, Activation act, bool use_bias)
        : WeightBiasLayer(checked_shape(in, out, k, stride), 0, use_bias, std::move(act),
                          "conv2d"),
          m_in(in), m_out(out), m_k(k), m_stride(stride), m_padding(padding) {}
    Tensor forward(const Tensor& x) override {
        Tensor y = conv2d(x, m_weight, m_stride, m_padding);
        if (m_bias.defined()) {
            y = y + reshape(m_bias, {m_out, 1, 1});
        }
        return m_activation(y);
    }
    std::string name() const override {
        std::string s = "Conv2d(" + std::to_string(m_in) + ", " + std::to_string(m_out) + ", " +
                         std::to_string(m_k);
        if (m_stride != 1) {
            s += ", stride=" + std::to_string(m_stride);
        }
        if (m_padding != 0) {
            s += ", padding=" + std::to_string(m_padding);
        }
        return s + activation_suffix() + ")";
    }

private:
    static Shape checked_shape(std::size_t in, std::size_t out, std::size_t k,
                               std::size_t stride) {
        if (in == 0 || out == 0 || k == 0 || stride == 0) {
            throw ValueError("Conv2d: channels, kernel_size and stride must be positive");
        }
        return {out, in, k, k};
    }
    std::size_t m_in, m_out, m_k, m_stride, m_padding;
};

class PoolLayer : public Layer {
public:
    PoolLayer(bool is_max, std::size_t k, std::size_t stride)
        : m_max(is_max), m_k(k), m_stride(stride == 0 ? k : stride) {}
    Tensor forward(const Tensor& x) override {
        return m_max ? max_pool2d(x, m_k, m_stride) : avg_pool2d(x, m_k, m_stride);
    }
    std::string name() const override {
        return std::string(m_max ? "MaxPool2d(" : "AvgPool2d(") + std::to_string(m_k) + ")";
    }

private:
    bool m_max;
    std::size_t m_k, m_stride;
};

} // namespace

Conv2d::Conv2d(std::size_t in_channels, std::size_t out_channels, std::size_t kernel_size,
               std::size_t stride, std::size_t padding, Activation activation, bool bias)
    : LayerHandle(std::make_shared<Conv2dLayer>(in_channels, out_channels, kernel_size, stride,
                                                padding, std::move(activation), bias)) {}
Tensor Conv2d::weight() const { return static_cast<const Conv2dLayer&>(*m_layer).weight(); }
Tensor Conv2d::bias() const { return static_cast<const Conv2dLayer&>(*m_layer).bias(); }

MaxPool2d::MaxPool2d(std::size_t kernel_size, std::size_t stride)
    : LayerHandle(std::make_shared<PoolLayer>(true, kernel_size, stride)) {}
AvgPool2d::AvgPool2d(std::size_t kernel_size, std::size_t stride)
    : LayerHandle(std::make_shared<PoolLayer>(false, kernel_size, stride)) {}

} // namespace pynn::layers
