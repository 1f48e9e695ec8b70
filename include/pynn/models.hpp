// Models: the seed's functional API, `models::Model model(x_input, x)`, and models::Sequential.
// Calling a model on new input replays its layer calls on that input (lazily, like every op).
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pynn/io/safetensors.hpp"
#include "pynn/layers.hpp"
#include "pynn/tensor.hpp"

namespace pynn::models {

class Model {
public:
    // `output` must be reachable from `input` through layer calls (wrap free-standing ops in
    // layers::Lambda). The sample input fixes every axis but the batch axis (axis 0).
    Model(const Tensor& input, const Tensor& output);

    Tensor operator()(const Tensor& x) const;
    std::vector<Tensor> parameters() const;
    void train(bool training = true);
    void eval() { train(false); }
    bool training() const { return m_training; }
    // Keras-style table: layer, output shape, parameter count; then totals.
    std::string summary() const;
    const std::vector<std::shared_ptr<layers::Layer>>& layers() const { return m_layers; }

    // --- checkpoints (see the Note below) ---
    std::vector<std::pair<std::string, Tensor>> named_parameters() const;
    void save(const std::string& path) const;
    void load(const std::string& path);
    // The same tensors as save() writes, copied (Note [State dicts] in pynn/io/safetensors.hpp),
    // and each layer's extra state as text ("<layer index>._extra_state", e.g. Dropout's
    // generator), so that a resumed run continues exactly.
    io::StateDict state_dict() const;
    // As load(), from memory; the same checks, but ValueError; also sets each layer's extra
    // state (missing, unexpected or unreadable: ValueError, nothing changed).
    void load_state_dict(const io::StateDict& state);

private:
    struct Call {
        std::shared_ptr<layers::Layer> layer;
        std::size_t input; // index into the values of earlier calls (0 = model input)
        Shape output_shape;
    };
    Tensor m_input;
    std::vector<Call> m_calls; // in execution order
    std::vector<std::shared_ptr<layers::Layer>> m_layers;
    bool m_training = true;
};

class Sequential {
public:
    Sequential(std::initializer_list<layers::LayerHandle> layers);
    explicit Sequential(std::vector<layers::LayerHandle> layers);
    void add(const layers::LayerHandle& layer);

    Tensor operator()(const Tensor& x) const;
    std::vector<Tensor> parameters() const;
    void train(bool training = true);
    void eval() { train(false); }
    std::string summary(const Shape& input_shape) const;
    const std::vector<std::shared_ptr<layers::Layer>>& layers() const { return m_layers; }

    // --- checkpoints (see the Note below) ---
    std::vector<std::pair<std::string, Tensor>> named_parameters() const;
    void save(const std::string& path) const;
    void load(const std::string& path);
    // The same tensors as save() writes, copied (Note [State dicts] in pynn/io/safetensors.hpp),
    // and each layer's extra state as text ("<layer index>._extra_state", e.g. Dropout's
    // generator), so that a resumed run continues exactly.
    io::StateDict state_dict() const;
    // As load(), from memory; the same checks, but ValueError; also sets each layer's extra
    // state (missing, unexpected or unreadable: ValueError, nothing changed).
    void load_state_dict(const io::StateDict& state);

private:
    std::vector<std::shared_ptr<layers::Layer>> m_layers;
};

// Note [Checkpoints]
// named_parameters() names each parameter "<layer index>.<parameter name>": the layer's position
// in layers() and its Layer::parameter_names() entry, as the keys of PyTorch's nn.Sequential
// state_dict ("0.weight", "0.bias", "1.weight", ...). (A Dense weight is (in, out), the transpose
// of torch.nn.Linear's (out, in); the values are not transposed on the way out or in.)
// save(path) writes those tensors to a safetensors file (pynn/io/safetensors.hpp), atomically.
// load(path) reads and validates the whole file first, then checks that it holds exactly the
// model's names, each with the parameter's shape and dtype, and only then copies the values in.
// Any problem throws pynn::IOError listing every missing, extra or mismatched tensor (with both
// shapes), and leaves every weight as it was. state_dict() / load_state_dict() are the same in
// memory (a snapshot of the same names, and the same checks throwing ValueError), for a training
// checkpoint that also holds the optimizer's state.

} // namespace pynn::models
