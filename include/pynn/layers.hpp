// Layers, callable on a Tensor as in the seed: `x = layers::Dense(784, 256, relu)(x)`. A layer
// object is a cheap handle to shared state (its parameters), so a temporary layer lives on in the
// graph and in the Model built from it. Layers are built only from public Tensor ops.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pynn/math.hpp"
#include "pynn/tensor.hpp"

namespace pynn {

// An activation given to a layer: any of pynn's activation functions (relu, sigmoid, tanh, gelu,
// softmax, log_softmax, leaky_relu with its default slope), a lambda, or `none`.
class Activation {
public:
    Activation() = default; // the identity
    Activation(Tensor (*f)(const Tensor&));
    Activation(Tensor (*f)(const Tensor&, int));    // softmax / log_softmax over the last axis
    Activation(Tensor (*f)(const Tensor&, double)); // leaky_relu with slope 0.01
    Activation(std::function<Tensor(const Tensor&)> f, std::string name = "lambda");
    Tensor operator()(const Tensor& x) const { return m_fn ? m_fn(x) : x; }
    bool is_identity() const { return !m_fn; }
    const std::string& name() const { return m_name; }

private:
    std::function<Tensor(const Tensor&)> m_fn;
    std::string m_name = "none";
};

inline const Activation none{};

namespace layers {

// The shared state behind a layer handle. Subclass it (and a handle) to add a layer.
class Layer {
public:
    virtual ~Layer() = default;
    virtual Tensor forward(const Tensor& x) = 0;
    virtual std::vector<Tensor> parameters() const { return {}; }
    // One name per parameter, in the same order: the keys of a checkpoint (Model::save writes
    // "<layer index>.<name>"). The default is "param0", "param1", ...; Dense says "weight", "bias".
    virtual std::vector<std::string> parameter_names() const;
    // Named state that is not trained but belongs in a checkpoint (PyTorch's buffers), e.g.
    // BatchNorm's running statistics.
    virtual std::vector<std::pair<std::string, Tensor>> buffers() const { return {}; }
    // State that is no tensor but belongs in a checkpoint too (PyTorch's get_extra_state /
    // set_extra_state), e.g. Dropout's generator, so that a resumed run draws the same masks.
    // state_dict() keeps it as text under "<layer index>._extra_state". Empty: none (the
    // default). set_extra_state throws ValueError, changing nothing, on text it cannot read.
    virtual std::string extra_state() const { return {}; }
    virtual void set_extra_state(const std::string& state);
    virtual std::string name() const = 0;
    virtual void set_training(bool training) { m_training = training; }
    bool training() const { return m_training; }

private:
    bool m_training = true;
};

// The record a layer call leaves on its output tensor (see Tensor::history).
struct LayerCall : History {
    std::shared_ptr<Layer> layer;
    Tensor input;
    LayerCall(std::shared_ptr<Layer> l, Tensor in) : layer(std::move(l)), input(std::move(in)) {}
};

// Runs `layer` on x and records the call on the result.
Tensor call_layer(const std::shared_ptr<Layer>& layer, const Tensor& x);

// Base of the user-facing handles.
class LayerHandle {
public:
    explicit LayerHandle(std::shared_ptr<Layer> layer) : m_layer(std::move(layer)) {}
    Tensor operator()(const Tensor& x) const { return call_layer(m_layer, x); }
    std::vector<Tensor> parameters() const { return m_layer->parameters(); }
    std::vector<std::string> parameter_names() const { return m_layer->parameter_names(); }
    const std::shared_ptr<Layer>& layer() const { return m_layer; }

protected:
    std::shared_ptr<Layer> m_layer;
};

// y = activation(x @ W + b), x (..., in) -> (..., out). W (in, out) and b (out) start uniform in
// +-1/sqrt(in), as torch.nn.Linear's default (Kaiming-uniform with a = sqrt(5)).
class Dense : public LayerHandle {
public:
    Dense(std::size_t in_features, std::size_t out_features, Activation activation = none,
          bool bias = true);
    Tensor weight() const;
    Tensor bias() const;
};

// (N, d1, d2, ...) -> (N, d1*d2*...).
class Flatten : public LayerHandle {
public:
    Flatten();
};

// Zeroes each element with probability p in training mode and scales the rest by 1/(1-p);
// the identity in eval mode (as torch.nn.Dropout).
class Dropout : public LayerHandle {
public:
    explicit Dropout(double p = 0.5, std::uint64_t seed = 0);
};

// Wraps any function of one tensor as a layer (Keras' Lambda), so Model can replay it.
class Lambda : public LayerHandle {
public:
    explicit Lambda(std::function<Tensor(const Tensor&)> fn, std::string name = "lambda");
};

// 2-D convolution on NCHW input: activation(conv2d(x, W) + b). W (out, in, k, k) and b (out)
// start uniform in +-1/sqrt(in * k * k), as torch.nn.Conv2d.
class Conv2d : public LayerHandle {
public:
    Conv2d(std::size_t in_channels, std::size_t out_channels, std::size_t kernel_size,
           std::size_t stride = 1, std::size_t padding = 0, Activation activation = none,
           bool bias = true);
    Tensor weight() const;
    Tensor bias() const;
};

// Max / average over kernel x kernel windows every `stride` pixels (0 = kernel), no padding.
class MaxPool2d : public LayerHandle {
public:
    explicit MaxPool2d(std::size_t kernel_size, std::size_t stride = 0);
};
class AvgPool2d : public LayerHandle {
public:
    explicit AvgPool2d(std::size_t kernel_size, std::size_t stride = 0);
};

// Batch normalisation over the channel axis 1, as torch.nn.BatchNorm1d ((N, C) or (N, C, L))
// and BatchNorm2d ((N, C, H, W)). Training mode normalises with the batch's statistics and
// updates the running ones (momentum 0.1, unbiased variance); eval mode uses the running ones.
class BatchNorm1d : public LayerHandle {
public:
    explicit BatchNorm1d(std::size_t num_features, double eps = 1e-5, double momentum = 0.1);
    Tensor running_mean() const;
    Tensor running_var() const;
};
class BatchNorm2d : public LayerHandle {
public:
    explicit BatchNorm2d(std::size_t num_features, double eps = 1e-5, double momentum = 0.1);
    Tensor running_mean() const;
    Tensor running_var() const;
};

} // namespace layers
} // namespace pynn
