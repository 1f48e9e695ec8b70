// Optimizer updates as Tensor expressions. Hyper-parameters that change between steps (the
// learning rate, Adam's bias corrections) enter as scalar leaves, i.e. as data, so the update's
// plan stays cached across steps.
#include "pynn/optimizers.hpp"

#include <cmath>
#include <numbers>

#include "pynn/compute_graph.hpp"
#include "pynn/error.hpp"
#include "pynn/math.hpp"

namespace pynn::optimizers {

Optimizer::Optimizer(double lr) : m_lr(lr) {
    if (!(lr >= 0.0)) {
        throw ValueError("optimizer: learning rate " + std::to_string(lr) + " must be >= 0");
    }
}

void Optimizer::update(const std::vector<Tensor>& params) {
    std::vector<std::pair<Tensor, Tensor>> writes; // (leaf to overwrite, its new value)
    ++m_steps;
    for (std::size_t i = 0; i < params.size(); ++i) {
        const Tensor& p = params[i];
        if (!p.defined() || !p.is_leaf() || !p.requires_grad()) {
            throw ValueError("optimizer: parameter " + std::to_string(i) + " " +
                             (p.defined() ? to_string(p.shape()) : std::string("(undefined)")) +
                             (p.defined() && !p.is_leaf()
                                  ? " is not a leaf (it is computed from other tensors)"
                                  : " does not require grad; call set_requires_grad(true) on "
                                    "parameters"));
        }
        if (!p.has_grad()) {
            continue;
        }
        NoGradGuard no_grad;
        State& state = m_state[p.node().get()];
        std::vector<std::pair<Tensor, Tensor>> state_updates;
        Tensor value = new_value(p, p.grad(), state, state_updates);
        writes.emplace_back(p, value);
        for (auto& u : state_updates) {
            writes.push_back(std::move(u));
        }
    }
    if (writes.empty()) {
        return;
    }
    // One plan computes every new value and stores it into its parameter or state slot (into
    // recycled storages, without a copy).
    ComputeGraph graph = ComputeGraph::assign(writes);
    graph.run();
    m_last_kernels = graph.num_kernels();
}

void Optimizer::zero_grad(const std::vector<Tensor>& params) const {
    for (const Tensor& p : params) {
        if (p.defined() && p.is_leaf()) {
            p.zero_grad();
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
Tensor SGD::new_value(const Tensor& p, const Tensor& grad, State& state,
                      std::vector<std::pair<Tensor, Tensor>>& updates) {
    Tensor g = grad;
    if (m_weight_decay != 0.0) {
        g = g + scalar(m_weight_decay, p) * p;
    }
    if (m_momentum != 0.0) {
        Tensor buf;
        if (state.slots.empty()) { // first step: the buffer starts as the gradient (as PyTorch)
            state.slots.push_back(Tensor::zeros(p.shape(), p.dtype()));
            buf = g;
        } else {
            buf = scalar(m_momentum, p) * state.slots[0] + scalar(1.0 - m_dampening, p) * g;
        }
        updates.emplace_back(state.slots[0], buf);
        g = m_nesterov ? g + scalar(m_momentum, p) * buf : buf;
    }
    return p - scalar(m_lr, p) * g;
}

// --- Adam / AdamW ---
Adam::Adam(double lr, double beta1, double beta2, double eps, double weight_decay)
    : Optimizer(lr), m_beta1(beta1), m_beta2(beta2), m_eps(eps), m_weight_decay(weight_decay) {
    if (!(beta1 >= 0.0 && beta1 < 1.0 && beta2 >= 0.0 && beta2 < 1.0)) {
        throw ValueError("Adam: betas must be in [0, 1)");
    }
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
            param = p * scalar(1.0 - m_lr * m_weight_decay, p);
        } else {
            g = g + scalar(m_weight_decay, p) * p;
        }
    }
    const auto t = static_cast<double>(m_steps);
    Tensor m = scalar(m_beta1, p) * state.slots[0] + scalar(1.0 - m_beta1, p) * g;
    Tensor v = scalar(m_beta2, p) * state.slots[1] + scalar(1.0 - m_beta2, p) * g * g;
    updates.emplace_back(state.slots[0], m);
    updates.emplace_back(state.slots[1], v);
    // p - lr/(1-b1^t) * m / (sqrt(v/(1-b2^t)) + eps), torch.optim.Adam's formula.
    Tensor step_size = scalar(m_lr / (1.0 - std::pow(m_beta1, t)), p);
    Tensor v_scale = scalar(1.0 / (1.0 - std::pow(m_beta2, t)), p);
    return param - step_size * m / (sqrt(v * v_scale) + scalar(m_eps, p));
}

AdamW::AdamW(double lr, double beta1, double beta2, double eps, double weight_decay)
    : Adam(lr, beta1, beta2, eps, weight_decay) {
    m_decoupled = true;
}

// --- RMSprop ---
RMSprop::RMSprop(double lr, double alpha, double eps, double weight_decay)
    : Optimizer(lr), m_alpha(alpha), m_eps(eps), m_weight_decay(weight_decay) {}
Tensor RMSprop::new_value(const Tensor& p, const Tensor& grad, State& state,
                          std::vector<std::pair<Tensor, Tensor>>& updates) {
    if (state.slots.empty()) {
        state.slots = {Tensor::zeros(p.shape(), p.dtype())};
    }
    Tensor g = grad;
    if (m_weight_decay != 0.0) {
        g = g + scalar(m_weight_decay, p) * p;
    }
    Tensor sq = scalar(m_alpha, p) * state.slots[0] + scalar(1.0 - m_alpha, p) * g * g;
    updates.emplace_back(state.slots[0], sq);
    return p - scalar(m_lr, p) * g / (sqrt(sq) + scalar(m_eps, p));
}

// --- schedules ---
StepLR::StepLR(Optimizer& opt, std::int64_t step_size, double gamma)
    : m_opt(opt), m_base_lr(opt.lr()), m_step_size(step_size), m_gamma(gamma) {
    if (step_size <= 0) {
        throw ValueError("StepLR: step_size must be positive");
    }
}
void StepLR::step() {
    ++m_epoch;
    m_opt.set_lr(m_base_lr * std::pow(m_gamma, static_cast<double>(m_epoch / m_step_size)));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& opt, std::int64_t t_max, double eta_min)
    : m_opt(opt), m_base_lr(opt.lr()), m_t_max(t_max), m_eta_min(eta_min) {
    if (t_max <= 0) {
        throw ValueError("CosineAnnealingLR: t_max must be positive");
    }
}
void CosineAnnealingLR::step() {
    ++m_epoch;
    const double phase =
        std::numbers::pi * static_cast<double>(m_epoch) / static_cast<double>(m_t_max);
    m_opt.set_lr(m_eta_min + (m_base_lr - m_eta_min) * (1.0 + std::cos(phase)) / 2.0);
}

} // namespace pynn::optimizers
