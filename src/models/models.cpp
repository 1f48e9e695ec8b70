// Model walks the layer-call history from its output back to its input once, then replays the
// calls on whatever input it is given. Sequential just applies its layers in order.
#include "pynn/models.hpp"

#include <iomanip>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "pynn/error.hpp"
#include "pynn/io/safetensors.hpp"

namespace pynn::models {

namespace {

std::size_t count_params(const layers::Layer& layer) {
    std::size_t n = 0;
    for (const Tensor& p : layer.parameters()) {
        n += p.numel();
    }
    return n;
}

void append_parameters(const std::vector<std::shared_ptr<layers::Layer>>& ls,
                       std::vector<Tensor>& out) {
    std::unordered_set<const Node*> seen;
    for (const auto& l : ls) {
        for (const Tensor& p : l->parameters()) {
            if (seen.insert(p.node().get()).second) {
                out.push_back(p);
            }
        }
    }
}

io::NamedTensors named_parameters_of(const std::vector<std::shared_ptr<layers::Layer>>& ls,
                                     bool with_buffers = false) {
    io::NamedTensors out;
    for (std::size_t i = 0; i < ls.size(); ++i) {
        const std::vector<Tensor> params = ls[i]->parameters();
        const std::vector<std::string> names = ls[i]->parameter_names();
        if (names.size() != params.size()) {
            throw ValueError("layer " + std::to_string(i) + " " + ls[i]->name() + ": " +
                             std::to_string(names.size()) + " parameter_names() for " +
                             std::to_string(params.size()) + " parameters()");
        }
        for (std::size_t j = 0; j < params.size(); ++j) {
            out.emplace_back(std::to_string(i) + "." + names[j], params[j]);
        }
        if (with_buffers) { // checkpoints also carry state such as running statistics
            for (const auto& [name, t] : ls[i]->buffers()) {
                out.emplace_back(std::to_string(i) + "." + name, t);
            }
        }
    }
    return out;
}

std::string describe_tensor(const Tensor& t) {
    return to_string(t.shape()) + " " + to_string(t.dtype());
}

// Note [Checkpoints] in models.hpp: validate everything, then assign. Every way `given` does not
// fit `params`, one line each.
std::vector<std::string> fit_problems(const std::string& source, const io::NamedTensors& params,
                                      const io::NamedTensors& given,
                                      std::unordered_map<std::string, const Tensor*>& by_name) {
    std::vector<std::string> problems;
    for (const auto& [name, t] : given) {
        if (!by_name.emplace(name, &t).second) {
            problems.push_back("tensor \"" + name + "\" appears twice");
        }
    }
    std::unordered_set<std::string> expected;
    for (const auto& [name, p] : params) {
        expected.insert(name);
        const auto it = by_name.find(name);
        if (it == by_name.end()) {
            problems.push_back("tensor \"" + name + "\" " + describe_tensor(p) +
                               " is missing from " + source);
        } else if (it->second->shape() != p.shape() || it->second->dtype() != p.dtype()) {
            problems.push_back("tensor \"" + name + "\" is " + describe_tensor(*it->second) +
                               " in " + source + " but " + describe_tensor(p) + " in the model");
        } else if (!p.is_leaf()) {
            problems.push_back("parameter \"" + name + "\" is not a leaf tensor");
        }
    }
    for (const auto& [name, t] : given) {
        if (expected.count(name) == 0) {
            problems.push_back("tensor \"" + name + "\" " + describe_tensor(t) + " in " + source +
                               " is not a parameter of the model");
        }
    }
    return problems;
}

// Checks `given` against `params` and copies it in, or throws ErrorType "<what>: <problems>; no
// weights were changed".
template <class ErrorType>
void assign_parameters(const std::string& what, const std::string& source,
                       const io::NamedTensors& params, const io::NamedTensors& given) {
    std::unordered_map<std::string, const Tensor*> by_name;
    const std::vector<std::string> problems = fit_problems(source, params, given, by_name);
    if (!problems.empty()) {
        std::string msg = what + ": ";
        for (const std::string& p : problems) {
            msg += p + "; ";
        }
        throw ErrorType(msg + "no weights were changed");
    }
    for (const auto& [name, p] : params) {
        Tensor target = p;
        target.assign(*by_name.at(name));
    }
}

void load_parameters(const std::string& who, const std::string& path,
                     const io::NamedTensors& params) {
    assign_parameters<IOError>(who + ": " + path, "the file", params, io::load_safetensors(path));
}

std::string extra_state_key(std::size_t layer) { return std::to_string(layer) + "._extra_state"; }

// A snapshot of every parameter and buffer, and each layer's extra state, for state_dict().
io::StateDict state_of(const std::vector<std::shared_ptr<layers::Layer>>& ls) {
    io::StateDict out;
    for (const auto& [name, t] : named_parameters_of(ls, true)) {
        Tensor copy = Tensor::zeros(t.shape(), t.dtype());
        copy.assign(t);
        out.tensors.emplace_back(name, copy);
    }
    for (std::size_t i = 0; i < ls.size(); ++i) {
        if (std::string extra = ls[i]->extra_state(); !extra.empty()) {
            out.set_text(extra_state_key(i), std::move(extra));
        }
    }
    return out;
}

// load_state_dict: every layer's extra state, then the tensors (assign_parameters). All or
// nothing: a key missing or unexpected changes nothing, and extra states already set are put
// back when a later one, or the tensors, do not fit.
void load_state_of(const std::string& what, const std::vector<std::shared_ptr<layers::Layer>>& ls,
                   const io::StateDict& state) {
    std::string problems;
    std::vector<std::pair<std::size_t, const std::string*>> given;
    for (std::size_t i = 0; i < ls.size(); ++i) {
        const std::string key = extra_state_key(i);
        const auto it = state.values.find(key);
        const bool has = !ls[i]->extra_state().empty();
        if (has && it == state.values.end()) {
            problems +=
                "the state dict has no \"" + key + "\" (" + ls[i]->name() + "'s extra state); ";
        } else if (!has && it != state.values.end()) {
            problems += "unexpected \"" + key + "\": " + ls[i]->name() + " has no extra state; ";
        } else if (has) {
            given.emplace_back(i, &it->second);
        }
    }
    for (const auto& [key, value] : state.values) { // "<i>._extra_state" past the last layer
        const std::string suffix = "._extra_state";
        if (key.size() > suffix.size() && key.ends_with(suffix) &&
            key.find('.') == key.size() - suffix.size() &&
            key.find_first_not_of("0123456789") == key.size() - suffix.size() &&
            std::stoull(key.substr(0, key.size() - suffix.size())) >= ls.size()) {
            problems +=
                "unexpected \"" + key + "\": there are " + std::to_string(ls.size()) + " layers; ";
        }
    }
    if (!problems.empty()) {
        throw ValueError(what + ": " + problems + "no weights were changed");
    }
    std::vector<std::pair<std::size_t, std::string>> before;
    try {
        for (const auto& [i, text] : given) {
            before.emplace_back(i, ls[i]->extra_state());
            try {
                ls[i]->set_extra_state(*text);
            } catch (const Error& e) {
                throw ValueError(what + ": \"" + extra_state_key(i) + "\": " + e.what() +
                                 "; no weights were changed");
            }
        }
        assign_parameters<ValueError>(what, "the state dict", named_parameters_of(ls, true),
                                      state.tensors);
    } catch (...) {
        // Newest first: a layer at two indices gets its state from before the load back.
        for (auto it = before.rbegin(); it != before.rend(); ++it) {
            ls[it->first]->set_extra_state(it->second);
        }
        throw;
    }
}

std::string table(const std::vector<std::pair<std::string, Shape>>& rows,
                  const std::vector<std::size_t>& params) {
    std::ostringstream out;
    out << std::left << std::setw(32) << "Layer" << std::setw(24) << "Output shape"
        << "Param #\n";
    out << std::string(66, '=') << "\n";
    std::size_t total = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        out << std::left << std::setw(32) << rows[i].first << std::setw(24)
            << to_string(rows[i].second) << params[i] << "\n";
        total += params[i];
    }
    out << std::string(66, '=') << "\n";
    out << "Total params: " << total << "\n";
    return out.str();
}

} // namespace

Model::Model(const Tensor& input, const Tensor& output) : m_input(input) {
    if (!input.defined() || !output.defined()) {
        throw ValueError("Model: input and output must be defined tensors");
    }
    // Walk back from the output along layer calls until the input is reached.
    std::vector<std::pair<const layers::LayerCall*, Tensor>> chain;
    Tensor t = output;
    while (t.node() != input.node()) {
        auto call = std::dynamic_pointer_cast<const layers::LayerCall>(t.history());
        if (!call) {
            throw ValueError("Model: output " + to_string(output.shape()) +
                             " is not reached from the input " + to_string(input.shape()) +
                             " through layer calls (a tensor of shape " + to_string(t.shape()) +
                             " was not made by a layer; wrap free-standing ops in "
                             "layers::Lambda)");
        }
        chain.emplace_back(call.get(), t);
        t = call->input;
    }
    std::unordered_set<const layers::Layer*> seen;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        const std::size_t index = m_calls.size();
        m_calls.push_back({it->first->layer, index, it->second.shape()});
        if (seen.insert(it->first->layer.get()).second) {
            m_layers.push_back(it->first->layer);
        }
    }
}

Tensor Model::operator()(const Tensor& x) const {
    if (!x.defined()) {
        throw ValueError("Model: input is an undefined Tensor");
    }
    const Shape& want = m_input.shape();
    bool ok = x.dim() == want.size();
    for (std::size_t i = 1; ok && i < want.size(); ++i) {
        ok = x.shape()[i] == want[i];
    }
    if (!ok) {
        throw ShapeError("Model: input " + to_string(x.shape()) + " " + to_string(x.dtype()) +
                         " does not match the model's input " + to_string(want) + " " +
                         to_string(m_input.dtype()) + " (only the batch axis may differ)");
    }
    if (x.dtype() != m_input.dtype()) {
        throw DTypeError("Model: input " + to_string(x.shape()) + " is " + to_string(x.dtype()) +
                         " but the model was built for " + to_string(m_input.dtype()) +
                         " (pynn does not promote dtypes; convert the input)");
    }
    Tensor y = x;
    for (const Call& c : m_calls) {
        y = layers::call_layer(c.layer, y);
    }
    return y;
}

std::vector<Tensor> Model::parameters() const {
    std::vector<Tensor> out;
    append_parameters(m_layers, out);
    return out;
}

void Model::train(bool training) {
    m_training = training;
    for (const auto& l : m_layers) {
        l->set_training(training);
    }
}

std::string Model::summary() const {
    std::vector<std::pair<std::string, Shape>> rows{{"Input", m_input.shape()}};
    std::vector<std::size_t> params{0};
    for (const Call& c : m_calls) {
        rows.emplace_back(c.layer->name(), c.output_shape);
        params.push_back(count_params(*c.layer));
    }
    return table(rows, params);
}

io::NamedTensors Model::named_parameters() const { return named_parameters_of(m_layers); }
void Model::save(const std::string& path) const {
    io::save_safetensors(path, named_parameters_of(m_layers, true));
}
void Model::load(const std::string& path) {
    load_parameters("Model::load", path, named_parameters_of(m_layers, true));
}
io::StateDict Model::state_dict() const { return state_of(m_layers); }
void Model::load_state_dict(const io::StateDict& state) {
    load_state_of("Model::load_state_dict", m_layers, state);
}

Sequential::Sequential(std::initializer_list<layers::LayerHandle> ls)
    : Sequential(std::vector<layers::LayerHandle>(ls)) {}
Sequential::Sequential(std::vector<layers::LayerHandle> ls) {
    for (const auto& l : ls) {
        add(l);
    }
}
void Sequential::add(const layers::LayerHandle& layer) { m_layers.push_back(layer.layer()); }

Tensor Sequential::operator()(const Tensor& x) const {
    Tensor y = x;
    for (const auto& l : m_layers) {
        y = layers::call_layer(l, y);
    }
    return y;
}

std::vector<Tensor> Sequential::parameters() const {
    std::vector<Tensor> out;
    append_parameters(m_layers, out);
    return out;
}

void Sequential::train(bool training) {
    for (const auto& l : m_layers) {
        l->set_training(training);
    }
}

std::string Sequential::summary(const Shape& input_shape) const {
    NoGradGuard no_grad;
    Tensor y = Tensor::zeros(input_shape);
    std::vector<std::pair<std::string, Shape>> rows{{"Input", input_shape}};
    std::vector<std::size_t> params{0};
    for (const auto& l : m_layers) {
        y = l->forward(y); // shapes only: nothing is computed
        rows.emplace_back(l->name(), y.shape());
        params.push_back(count_params(*l));
    }
    return table(rows, params);
}

io::NamedTensors Sequential::named_parameters() const { return named_parameters_of(m_layers); }
void Sequential::save(const std::string& path) const {
    io::save_safetensors(path, named_parameters_of(m_layers, true));
}
void Sequential::load(const std::string& path) {
    load_parameters("Sequential::load", path, named_parameters_of(m_layers, true));
}
io::StateDict Sequential::state_dict() const { return state_of(m_layers); }
void Sequential::load_state_dict(const io::StateDict& state) {
    load_state_of("Sequential::load_state_dict", m_layers, state);
}

} // namespace pynn::models
