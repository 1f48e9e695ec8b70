// What Dense and Conv2d share: a weight, an optional bias, torch's default initialisation
// (both uniform in +-1/sqrt(fan_in)) and the activation applied after them.
#pragma once

#include <cmath>
#include <string>

#include "pynn/layers.hpp"

namespace pynn::layers {

class WeightBiasLayer : public Layer {
public:
    std::vector<Tensor> parameters() const override {
        if (m_bias.defined()) {
            return {m_weight, m_bias};
        }
        return {m_weight};
    }
    std::vector<std::string> parameter_names() const override {
        if (m_bias.defined()) {
            return {"weight", "bias"};
        }
        return {"weight"};
    }
    Tensor weight() const { return m_weight; }
    Tensor bias() const { return m_bias; }

protected:
    // weight_shape's fan_in is the product of all its axes but the output axis `out_axis`.
    WeightBiasLayer(const Shape& weight_shape, std::size_t out_axis, bool use_bias,
                    Activation activation, const std::string& prefix)
        : m_activation(std::move(activation)) {
        const std::size_t fan_in = numel(weight_shape) / weight_shape[out_axis];
        const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
        m_weight = Tensor::rand(weight_shape, -bound, bound).set_requires_grad();
        m_weight.set_name(prefix + ".weight");
        if (use_bias) {
            m_bias = Tensor::rand({weight_shape[out_axis]}, -bound, bound).set_requires_grad();
            m_bias.set_name(prefix + ".bias");
        }
    }
    // ", relu" (empty for no activation), for layer names.
    std::string activation_suffix() const {
        return m_activation.is_identity() ? std::string() : ", " + m_activation.name();
    }

    Activation m_activation;
    Tensor m_weight, m_bias;
};

} // namespace pynn::layers
