// Optimizer updates as Tensor expressions. Hyper-parameters that change between steps (the
// learning rate, Adam's bias corrections) enter as scalar leaves, i.e. as data, so the update's
// plan stays cached across steps.
#include "pynn/optimizers.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numbers>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>

#include "pynn/compute_graph.hpp"
#include "pynn/error.hpp"
#include "pynn/flags.hpp"
#include "pynn/math.hpp"

#include "graph/node.hpp"
#include "graph/storage.hpp"

namespace pynn::optimizers {
namespace {

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// The number `key` of `state`, or nothing and a line in `problems` saying why.
std::optional<double> read_number(const io::StateDict& state, const std::string& key,
                                  std::vector<std::string>& problems) {
    if (state.values.count(key) == 0) {
        problems.push_back("no value " + quoted(key));
        return std::nullopt;
    }
    try {
        return state.number(key);
    } catch (const ValueError&) {
        problems.push_back("value " + quoted(key) + " is " + quoted(state.text(key)) +
                           ", not a number");
        return std::nullopt;
    }
}

// A count (steps, epochs): an integer in [0, 2^53], where doubles hold every integer.
std::optional<std::int64_t> read_count(const io::StateDict& state, const std::string& key,
                                       std::vector<std::string>& problems) {
    const std::optional<double> v = read_number(state, key, problems);
    if (!v) {
        return std::nullopt;
    }
    if (!(*v >= 0.0 && *v <= 9007199254740992.0 && std::floor(*v) == *v)) {
        problems.push_back(quoted(key) + " is " + state.text(key) +
                           ", not a count (an integer >= 0)");
        return std::nullopt;
    }
    return static_cast<std::int64_t>(*v);
}

std::optional<double> read_rate(const io::StateDict& state, const std::string& key,
                                std::vector<std::string>& problems) {
    const std::optional<double> v = read_number(state, key, problems);
    if (v && !(std::isfinite(*v) && *v >= 0.0)) {
        problems.push_back(quoted(key) + " is " + state.text(key) + ", not a finite rate >= 0");
        return std::nullopt;
    }
    return v;
}

void check_type(const io::StateDict& state, const std::string& type,
                std::vector<std::string>& problems) {
    const auto it = state.values.find("type");
    if (it == state.values.end()) {
        problems.push_back("no value \"type\" (is this the state of a " + type + "?)");
    } else if (it->second != type) {
        problems.push_back("the state was saved by " + it->second + ", this is " + type);
    }
}

[[noreturn]] void throw_problems(const std::string& who, const std::vector<std::string>& problems,
                                 const std::string& unchanged) {
    std::string msg = who + ": ";
    for (const std::string& p : problems) {
        msg += p + "; ";
    }
    throw ValueError(msg + unchanged);
}

std::string describe(const Tensor& t) { return to_string(t.shape()) + " " + to_string(t.dtype()); }

Tensor copy_of(const Tensor& t) {
    Tensor c = Tensor::zeros(t.shape(), t.dtype());
    c.assign(t);
    return c;
}

} // namespace

Optimizer::Optimizer(double lr) : m_lr(lr) {
    if (!(lr >= 0.0)) {
        std::ostringstream msg;
        msg << "optimizer: learning rate " << lr << " must be >= 0";
        throw ValueError(msg.str());
    }
}

void Optimizer::update(const std::vector<Tensor>& params) {
    // Every parameter is checked before anything changes, the step count included.
    for (std::size_t i = 0; i < params.size(); ++i) {
        const Tensor& p = params[i];
        if (p.defined() && p.is_leaf() && p.requires_grad()) {
            continue;
        }
        const std::string which = "optimizer: parameter " + std::to_string(i);
        if (!p.defined()) {
            throw ValueError(which + " is an undefined Tensor");
        }
        throw ValueError(which + " " + to_string(p.shape()) +
                         (p.is_leaf() ? " does not require grad; call set_requires_grad(true) on "
                                        "parameters"
                                      : " is not a leaf (it is computed from other tensors)"));
    }
    ++m_steps;
    // Note [Cached update]: the update plan depends only on which parameters have gradients (and
    // the compiler switches), so it is built once and rerun: each step only points the gradient
    // leaves at this step's gradients and refreshes the hyper-parameter leaves. No graph is built
    // and no plan looked up per step.
    std::vector<std::uintptr_t> key{Flags::fusion(), Flags::simplify(), Flags::memory_reuse(),
                                    Flags::detect_anomaly()};
    for (const Tensor& p : params) {
        key.push_back(reinterpret_cast<std::uintptr_t>(p.node().get()));
        key.push_back(p.has_grad() ? 1 : 0);
    }
    if (!m_update || key != m_update_key) {
        std::vector<std::pair<Tensor, Tensor>> writes; // (leaf to overwrite, its new value)
        std::vector<std::pair<std::size_t, Tensor>> grad_leaves;
        bool new_state = false; // a first step (SGD's momentum) has a graph of its own
        for (std::size_t i = 0; i < params.size(); ++i) {
            const Tensor& p = params[i];
            if (!p.has_grad()) {
                continue;
            }
            NoGradGuard no_grad;
            State& state = m_state[p.node().get()];
            new_state = new_state || state.slots.empty();
            grad_leaves.emplace_back(i, p.grad());
            std::vector<std::pair<Tensor, Tensor>> state_updates;
            writes.emplace_back(p, new_value(p, grad_leaves.back().second, state, state_updates));
            for (auto& u : state_updates) {
                writes.push_back(std::move(u));
            }
        }
        if (writes.empty()) {
            return;
        }
        m_update = std::make_shared<ComputeGraph>(ComputeGraph::assign(writes));
        m_update_key = new_state ? std::vector<std::uintptr_t>{} : std::move(key);
        m_grad_leaves = std::move(grad_leaves);
    }
    for (auto& [i, leaf] : m_grad_leaves) {
        leaf.node()->data = params[i].node()->grad;
    }
    const std::vector<double> values = hyper_values();
    for (auto& [k, leaf] : m_hypers) {
        Storage& s = *leaf.node()->data;
        if (s.dtype() == DType::Float32) {
            *s.data<float>() = static_cast<float>(values.at(k.first));
        } else {
            *s.data<double>() = values.at(k.first);
        }
    }
    // One plan computes every new value and stores it into its parameter or state slot (into
    // recycled storages, without a copy).
    m_update->run();
    m_last_kernels = m_update->num_kernels();
    for (auto& [i, leaf] : m_grad_leaves) { // let zero_grad() recycle the gradient storages
        leaf.node()->data = nullptr;
    }
}

Tensor Optimizer::hyper(std::size_t k, const Tensor& like) {
    auto [it, inserted] = m_hypers.try_emplace({k, like.dtype()});
    if (inserted) {
        it->second = Tensor::scalar(0.0, like.dtype()); // its value is set before every run
    }
    return it->second;
}

void Optimizer::zero_grad(const std::vector<Tensor>& params) const {
    for (const Tensor& p : params) {
        if (p.defined() && p.is_leaf()) {
            p.zero_grad();
        }
    }
}

// Note [Optimizer state] in optimizers.hpp.
io::StateDict Optimizer::state_dict(const std::vector<Tensor>& params) const {
    io::StateDict out;
    out.set_text("type", name());
    out.set_number("steps", static_cast<double>(m_steps));
    out.set_number("lr", m_lr);
    const std::vector<std::string> slots = slot_names();
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (!params[i].defined()) {
            throw ValueError(name() + "::state_dict: parameter " + std::to_string(i) +
                             " is an undefined Tensor");
        }
        const auto it = m_state.find(params[i].node().get());
        if (it == m_state.end() || it->second.slots.empty()) {
            continue;
        }
        if (it->second.slots.size() != slots.size()) { // a bug in a subclass, not a user error
            throw Error("internal error: " + name() + " keeps " +
                        std::to_string(it->second.slots.size()) + " state slots but names " +
                        std::to_string(slots.size()));
        }
        for (std::size_t j = 0; j < slots.size(); ++j) {
            out.tensors.emplace_back(std::to_string(i) + "." + slots[j],
                                     copy_of(it->second.slots[j]));
        }
    }
    return out;
}

void Optimizer::load_state_dict(const std::vector<Tensor>& params, const io::StateDict& state) {
    std::vector<std::string> problems;
    check_type(state, name(), problems);
    const std::optional<std::int64_t> steps = read_count(state, "steps", problems);
    const std::optional<double> lr = read_rate(state, "lr", problems);

    const std::vector<std::string> slots = slot_names();
    std::string slot_list;
    for (const std::string& slot : slots) {
        slot_list += (slot_list.empty() ? "" : ", ") + slot;
    }
    std::vector<std::vector<Tensor>> loaded(params.size(), std::vector<Tensor>(slots.size()));
    for (const auto& [key, t] : state.tensors) {
        const auto dot = key.find('.');
        std::size_t i = 0;
        const char* digits_end = key.data() + (dot == std::string::npos ? 0 : dot);
        const auto [end, ec] = std::from_chars(key.data(), digits_end, i);
        if (dot == std::string::npos || dot == 0 || ec != std::errc() || end != digits_end) {
            problems.push_back("tensor " + quoted(key) +
                               ": expected a name \"<parameter index>.<slot>\"");
            continue;
        }
        const std::string slot = key.substr(dot + 1);
        const auto j =
            static_cast<std::size_t>(std::find(slots.begin(), slots.end(), slot) - slots.begin());
        if (i >= params.size()) {
            problems.push_back("tensor " + quoted(key) + ": parameter " + std::to_string(i) +
                               " is out of range for " + std::to_string(params.size()) +
                               " parameters");
        } else if (j == slots.size()) {
            problems.push_back("tensor " + quoted(key) + ": " + name() + " has no slot " +
                               quoted(slot) +
                               (slots.empty() ? " (it keeps no state with these settings)"
                                              : " (its slots: " + slot_list + ")"));
        } else if (!params[i].defined()) {
            problems.push_back("parameter " + std::to_string(i) + " is an undefined Tensor");
        } else if (t.shape() != params[i].shape() || t.dtype() != params[i].dtype()) {
            problems.push_back("tensor " + quoted(key) + " is " + describe(t) + " but parameter " +
                               std::to_string(i) + " is " + describe(params[i]));
        } else if (loaded[i][j].defined()) {
            problems.push_back("tensor " + quoted(key) + " appears twice");
        } else {
            loaded[i][j] = t;
        }
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
        const auto given = std::count_if(loaded[i].begin(), loaded[i].end(),
                                         [](const Tensor& t) { return t.defined(); });
        for (std::size_t j = 0; given > 0 && j < slots.size(); ++j) {
            if (!loaded[i][j].defined()) {
                problems.push_back("tensor " + quoted(std::to_string(i) + "." + slots[j]) +
                                   " is missing (parameter " + std::to_string(i) +
                                   " has other state)");
            }
        }
    }
    if (!problems.empty()) {
        throw_problems(name() + "::load_state_dict", problems, "the optimizer was not changed");
    }
    m_steps = *steps;
    m_lr = *lr;
    m_state.clear();
    m_update.reset(); // it wrote into the state slots just dropped
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (loaded[i].empty() || !loaded[i][0].defined()) {
            continue;
        }
        State& st = m_state[params[i].node().get()];
        st.slots.clear();
        for (const Tensor& t : loaded[i]) {
            st.slots.push_back(copy_of(t));
        }
    }
}

// --- SGD ---
SGD::SGD(double lr, double momentum, double weight_decay, bool nesterov, double dampening)
    : Optimizer(lr), m_momentum(momentum), m_weight_decay(weight_decay), m_dampening(dampening),
      m_nesterov(nesterov) {
    if (nesterov && (momentum <= 0.0 || dampening != 0.0)) {
        throw ValueError("SGD: nesterov momentum needs momentum > 0 and dampening 0");
    }
}
std::vector<std::string> SGD::slot_names() const {
    if (m_momentum == 0.0) {
        return {};
    }
    return {"momentum_buffer"};
}
namespace {
enum SgdHyper : std::size_t { kSgdLr, kSgdMomentum, kSgdOneMinusDampening, kSgdDecay };
enum AdamHyper : std::size_t {
    kBeta1, kOneMinusBeta1, kBeta2, kOneMinusBeta2, kStepSize, kVScale, kAdamEps, kAdamDecay,
    kDecoupledKeep
};
enum RmsHyper : std::size_t { kAlpha, kOneMinusAlpha, kRmsLr, kRmsEps, kRmsDecay };
} // namespace

std::vector<double> SGD::hyper_values() const {
    return {m_lr, m_momentum, 1.0 - m_dampening, m_weight_decay};
}
Tensor SGD::new_value(const Tensor& p, const Tensor& grad, State& state,
                      std::vector<std::pair<Tensor, Tensor>>& updates) {
    Tensor g = grad;
    if (m_weight_decay != 0.0) {
        g = g + hyper(kSgdDecay, p) * p;
    }
    if (m_momentum != 0.0) {
        Tensor buf;
        if (state.slots.empty()) { // first step: the buffer starts as the gradient (as PyTorch)
            state.slots.push_back(Tensor::zeros(p.shape(), p.dtype()));
            buf = g;
        } else {
            buf = hyper(kSgdMomentum, p) * state.slots[0] + hyper(kSgdOneMinusDampening, p) * g;
        }
        updates.emplace_back(state.slots[0], buf);
        g = m_nesterov ? g + hyper(kSgdMomentum, p) * buf : buf;
    }
    return p - hyper(kSgdLr, p) * g;
}

// --- Adam / AdamW ---
Adam::Adam(double lr, double beta1, double beta2, double eps, double weight_decay)
    : Optimizer(lr), m_beta1(beta1), m_beta2(beta2), m_eps(eps), m_weight_decay(weight_decay) {
    if (!(beta1 >= 0.0 && beta1 < 1.0 && beta2 >= 0.0 && beta2 < 1.0)) {
        throw ValueError("Adam: betas must be in [0, 1)");
    }
}
std::vector<double> Adam::hyper_values() const {
    const auto t = static_cast<double>(m_steps);
    // torch.optim.Adam's bias corrections, in double on the host.
    return {m_beta1,
            1.0 - m_beta1,
            m_beta2,
            1.0 - m_beta2,
            m_lr / (1.0 - std::pow(m_beta1, t)),
            1.0 / (1.0 - std::pow(m_beta2, t)),
            m_eps,
            m_weight_decay,
            1.0 - m_lr * m_weight_decay};
}
Tensor Adam::new_value(const Tensor& p, const Tensor& grad, State& state,
                       std::vector<std::pair<Tensor, Tensor>>& updates) {
    if (state.slots.empty()) {
        state.slots = {Tensor::zeros(p.shape(), p.dtype()), Tensor::zeros(p.shape(), p.dtype())};
    }
    Tensor g = grad;
    Tensor param = p;
    if (m_weight_decay != 0.0) {
        if (m_decoupled) {
            param = p * hyper(kDecoupledKeep, p);
        } else {
            g = g + hyper(kAdamDecay, p) * p;
        }
    }
    Tensor m = hyper(kBeta1, p) * state.slots[0] + hyper(kOneMinusBeta1, p) * g;
    Tensor v = hyper(kBeta2, p) * state.slots[1] + hyper(kOneMinusBeta2, p) * g * g;
    updates.emplace_back(state.slots[0], m);
    updates.emplace_back(state.slots[1], v);
    // p - lr/(1-b1^t) * m / (sqrt(v/(1-b2^t)) + eps), torch.optim.Adam's formula.
    return param - hyper(kStepSize, p) * m / (sqrt(v * hyper(kVScale, p)) + hyper(kAdamEps, p));
}

AdamW::AdamW(double lr, double beta1, double beta2, double eps, double weight_decay)
    : Adam(lr, beta1, beta2, eps, weight_decay) {
    m_decoupled = true;
}

// --- RMSprop ---
RMSprop::RMSprop(double lr, double alpha, double eps, double weight_decay)
    : Optimizer(lr), m_alpha(alpha), m_eps(eps), m_weight_decay(weight_decay) {}
std::vector<double> RMSprop::hyper_values() const {
    return {m_alpha, 1.0 - m_alpha, m_lr, m_eps, m_weight_decay};
}
Tensor RMSprop::new_value(const Tensor& p, const Tensor& grad, State& state,
                          std::vector<std::pair<Tensor, Tensor>>& updates) {
    if (state.slots.empty()) {
        state.slots = {Tensor::zeros(p.shape(), p.dtype())};
    }
    Tensor g = grad;
    if (m_weight_decay != 0.0) {
        g = g + hyper(kRmsDecay, p) * p;
    }
    Tensor sq = hyper(kAlpha, p) * state.slots[0] + hyper(kOneMinusAlpha, p) * g * g;
    updates.emplace_back(state.slots[0], sq);
    return p - hyper(kRmsLr, p) * g / (sqrt(sq) + hyper(kRmsEps, p));
}

// --- schedules ---
namespace {

// The state of a schedule: its type, the epochs stepped and the base lr.
io::StateDict schedule_state(const std::string& type, std::int64_t epoch, double base_lr) {
    io::StateDict out;
    out.set_text("type", type);
    out.set_number("epoch", static_cast<double>(epoch));
    out.set_number("base_lr", base_lr);
    return out;
}

// Validates a schedule's state; (epoch, base_lr) if it is fine, throws ValueError otherwise.
std::pair<std::int64_t, double> read_schedule_state(const std::string& type,
                                                    const io::StateDict& state) {
    std::vector<std::string> problems;
    check_type(state, type, problems);
    const std::optional<std::int64_t> epoch = read_count(state, "epoch", problems);
    const std::optional<double> base_lr = read_rate(state, "base_lr", problems);
    if (!problems.empty()) {
        throw_problems(type + "::load_state_dict", problems, "the schedule was not changed");
    }
    return {*epoch, *base_lr};
}

} // namespace

StepLR::StepLR(Optimizer& opt, std::int64_t step_size, double gamma)
    : m_opt(opt), m_base_lr(opt.lr()), m_step_size(step_size), m_gamma(gamma) {
    if (step_size <= 0) {
        throw ValueError("StepLR: step_size must be positive");
    }
}
double StepLR::lr_at(std::int64_t epoch) const {
    return m_base_lr * std::pow(m_gamma, static_cast<double>(epoch / m_step_size));
}
void StepLR::step() {
    ++m_epoch;
    m_opt.set_lr(lr_at(m_epoch));
}
io::StateDict StepLR::state_dict() const { return schedule_state("StepLR", m_epoch, m_base_lr); }
void StepLR::load_state_dict(const io::StateDict& state) {
    std::tie(m_epoch, m_base_lr) = read_schedule_state("StepLR", state);
    m_opt.set_lr(lr_at(m_epoch));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& opt, std::int64_t t_max, double eta_min)
    : m_opt(opt), m_base_lr(opt.lr()), m_t_max(t_max), m_eta_min(eta_min) {
    if (t_max <= 0) {
        throw ValueError("CosineAnnealingLR: t_max must be positive");
    }
}
double CosineAnnealingLR::lr_at(std::int64_t epoch) const {
    if (epoch == 0) { // where the optimizer's lr starts (the formula may round it)
        return m_base_lr;
    }
    const double phase =
        std::numbers::pi * static_cast<double>(epoch) / static_cast<double>(m_t_max);
    return m_eta_min + (m_base_lr - m_eta_min) * (1.0 + std::cos(phase)) / 2.0;
}
void CosineAnnealingLR::step() {
    ++m_epoch;
    m_opt.set_lr(lr_at(m_epoch));
}
io::StateDict CosineAnnealingLR::state_dict() const {
    return schedule_state("CosineAnnealingLR", m_epoch, m_base_lr);
}
void CosineAnnealingLR::load_state_dict(const io::StateDict& state) {
    std::tie(m_epoch, m_base_lr) = read_schedule_state("CosineAnnealingLR", state);
    m_opt.set_lr(lr_at(m_epoch));
}

} // namespace pynn::optimizers
