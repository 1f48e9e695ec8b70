// Dense, Flatten, Dropout and Lambda: their parameters, initialisation and forward, all from
// public Tensor ops.
#include "pynn/layers.hpp"

#include "layers/weight_bias.hpp"

#include <cmath>
#include <locale>
#include <optional>
#include <random>
#include <sstream>

#include "graph/node.hpp"
#include "pynn/error.hpp"
#include "pynn/flags.hpp"

namespace pynn {

Activation::Activation(Tensor (*f)(const Tensor&)) : m_fn(f), m_name("activation") {
    if (f == &relu) {
        m_name = "relu";
    } else if (f == &sigmoid) {
        m_name = "sigmoid";
    } else if (f == &tanh) {
        m_name = "tanh";
    } else if (f == &gelu) {
        m_name = "gelu";
    }
}
Activation::Activation(Tensor (*f)(const Tensor&, int))
    : m_fn([f](const Tensor& x) { return f(x, -1); }), m_name(f == &softmax       ? "softmax"
                                                              : f == &log_softmax ? "log_softmax"
                                                                                  : "activation") {}
Activation::Activation(Tensor (*f)(const Tensor&, double))
    : m_fn([f](const Tensor& x) { return f(x, 0.01); }),
      m_name(f == &leaky_relu ? "leaky_relu" : "activation") {}
Activation::Activation(std::function<Tensor(const Tensor&)> f, std::string name)
    : m_fn(std::move(f)), m_name(std::move(name)) {}

namespace layers {

void Layer::set_extra_state(const std::string& /*state*/) {
    throw ValueError(name() + " has no extra state to load");
}

std::vector<std::string> Layer::parameter_names() const {
    std::vector<std::string> names;
    const std::size_t count = parameters().size();
    for (std::size_t i = 0; i < count; ++i) {
        names.push_back("param" + std::to_string(i));
    }
    return names;
}

Tensor call_layer(const std::shared_ptr<Layer>& layer, const Tensor& x) {
    if (!x.defined()) {
        throw ValueError(layer->name() + ": input is an undefined Tensor");
    }
    std::optional<NodeScope> scope; // anomaly reports name the layer an op was written in
    if (Flags::detect_anomaly()) {
        scope.emplace(std::make_shared<const std::string>(layer->name()));
    }
    Tensor y = layer->forward(x);
    if (y.node() == x.node()) { // an identity layer: give the call its own node to annotate
        y = reshape(x, x.shape());
    }
    y.set_history(std::make_shared<LayerCall>(layer, x));
    return y;
}

namespace {

class DenseLayer : public WeightBiasLayer {
public:
    DenseLayer(std::size_t in, std::size_t out, Activation act, bool use_bias)
        : WeightBiasLayer(checked_shape(in, out), 1, use_bias, std::move(act), "dense"), m_in(in),
          m_out(out) {}
    Tensor forward(const Tensor& x) override {
        if (x.dim() == 0 || x.shape().back() != m_in) {
            throw ShapeError("Dense(" + std::to_string(m_in) + ", " + std::to_string(m_out) +
                             "): input " + to_string(x.shape()) + " must end in " +
                             std::to_string(m_in) + " features");
        }
        Tensor y = matmul(x, m_weight);
        if (m_bias.defined()) {
            y = y + m_bias;
        }
        return m_activation(y);
    }
    std::string name() const override {
        return "Dense(" + std::to_string(m_in) + ", " + std::to_string(m_out) +
               activation_suffix() + ")";
    }

private:
    static Shape checked_shape(std::size_t in, std::size_t out) {
        if (in == 0 || out == 0) {
            throw ValueError("Dense: in_features " + std::to_string(in) + " and out_features " +
                             std::to_string(out) + " must be positive");
        }
        return {in, out};
    }
    std::size_t m_in, m_out;
};

class FlattenLayer : public Layer {
public:
    Tensor forward(const Tensor& x) override { return flatten(x, 1); }
    std::string name() const override { return "Flatten"; }
};

class DropoutLayer : public Layer {
public:
    DropoutLayer(double p, std::uint64_t seed) : m_p(p), m_generator(seed) {
        if (!(p >= 0.0 && p < 1.0)) {
            std::ostringstream msg;
            msg << "Dropout: p " << p << " must be in [0, 1)";
            throw ValueError(msg.str());
        }
    }
    Tensor forward(const Tensor& x) override {
        if (!training() || m_p == 0.0) {
            return x;
        }
        // A fresh mask leaf per call: it is data, so the compiled plan is reused.
        Tensor keep = Tensor::rand(x.shape(), 0.0, 1.0, x.dtype(), &m_generator);
        Tensor mask = ge(keep, Tensor::scalar(m_p, x.dtype())) * (1.0 / (1.0 - m_p));
        return x * mask.detach();
    }
    std::string name() const override {
        std::ostringstream s;
        s << "Dropout(" << m_p << ")";
        return s.str();
    }
    // The generator's state, as the standard library writes a mt19937_64.
    std::string extra_state() const override {
        std::ostringstream s;
        s.imbue(std::locale::classic()); // no digit grouping, whatever the global locale
        s << m_generator.engine();
        return s.str();
    }
    void set_extra_state(const std::string& state) override {
        std::istringstream in(state);
        in.imbue(std::locale::classic());
        std::mt19937_64 engine;
        in >> engine;
        if (in.fail() || !(in >> std::ws).eof()) {
            throw ValueError(name() + ": the extra state is not a generator state (" +
                             std::to_string(state.size()) + " characters)");
        }
        m_generator.engine() = engine; // only once it was read whole
    }

private:
    double m_p;
    Generator m_generator;
};

class LambdaLayer : public Layer {
public:
    LambdaLayer(std::function<Tensor(const Tensor&)> fn, std::string name)
        : m_fn(std::move(fn)), m_name(std::move(name)) {}
    Tensor forward(const Tensor& x) override { return m_fn(x); }
    std::string name() const override { return "Lambda(" + m_name + ")"; }

private:
    std::function<Tensor(const Tensor&)> m_fn;
    std::string m_name;
};

} // namespace

Dense::Dense(std::size_t in_features, std::size_t out_features, Activation activation, bool bias)
    : LayerHandle(
          std::make_shared<DenseLayer>(in_features, out_features, std::move(activation), bias)) {}
Tensor Dense::weight() const { return static_cast<const DenseLayer&>(*m_layer).weight(); }
Tensor Dense::bias() const { return static_cast<const DenseLayer&>(*m_layer).bias(); }

Flatten::Flatten() : LayerHandle(std::make_shared<FlattenLayer>()) {}

Dropout::Dropout(double p, std::uint64_t seed)
    : LayerHandle(std::make_shared<DropoutLayer>(p, seed)) {}

Lambda::Lambda(std::function<Tensor(const Tensor&)> fn, std::string name)
    : LayerHandle(std::make_shared<LambdaLayer>(std::move(fn), std::move(name))) {}

} // namespace layers
} // namespace pynn
