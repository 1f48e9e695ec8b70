// Optimizers with the seed's `opt.update(params)`: each step reads every parameter's gradient and
// writes the new values in place. The update is written with public Tensor ops and evaluated for
// all parameters in one ComputeGraph, so it compiles once and is cached like a training step.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "pynn/io/safetensors.hpp"
#include "pynn/tensor.hpp"

namespace pynn {
class ComputeGraph;
}

namespace pynn::optimizers {

class Optimizer {
public:
    explicit Optimizer(double lr);
    virtual ~Optimizer() = default;

    // One step for every parameter that has a gradient (parameters without one are skipped).
    // Throws ValueError, naming the parameter's index and shape, for a tensor that does not
    // require grad or is not a leaf; every parameter is checked before anything changes.
    void update(const std::vector<Tensor>& params);
    void step(const std::vector<Tensor>& params) { update(params); } // PyTorch's name
    void zero_grad(const std::vector<Tensor>& params) const;

    double lr() const { return m_lr; }
    void set_lr(double lr) { m_lr = lr; }
    std::int64_t steps() const { return m_steps; }
    // Kernels the last update ran (with fusion on: one fused kernel per parameter).
    std::size_t last_update_kernels() const { return m_last_kernels; }

    // --- checkpoints (Note [Optimizer state]) ---
    virtual std::string name() const = 0; // "SGD", "Adam", ...
    // Names of the per-parameter state tensors, in slot order, as torch.optim calls them.
    virtual std::vector<std::string> slot_names() const = 0;
    io::StateDict state_dict(const std::vector<Tensor>& params) const;
    void load_state_dict(const std::vector<Tensor>& params, const io::StateDict& state);

protected:
    // Per-parameter state tensors (moments...), created on first use.
    struct State {
        std::vector<Tensor> slots;
    };
    // The new value of `param` given its gradient; may also return new values for state slots
    // as (slot leaf, new value) pairs in `state_updates`.
    virtual Tensor new_value(const Tensor& param, const Tensor& grad, State& state,
                             std::vector<std::pair<Tensor, Tensor>>& state_updates) = 0;
    // This step's hyper-parameters (lr, Adam's bias corrections, betas...), in the order
    // new_value() refers to them with hyper(k). Called once per step.
    virtual std::vector<double> hyper_values() const = 0;
    // Hyper-parameter k as a scalar leaf of like's dtype. The leaves persist: the update plan is
    // built once and rerun every step with their values refreshed from hyper_values().
    Tensor hyper(std::size_t k, const Tensor& like);

    double m_lr;
    std::int64_t m_steps = 0;
    std::size_t m_last_kernels = 0;

private:
    std::unordered_map<const Node*, State> m_state;
    // The cached update (Note [Cached update]): the plan, what it was built for, and the leaves it
    // reads the gradients and hyper-parameters from.
    std::shared_ptr<ComputeGraph> m_update;
    std::vector<std::uintptr_t> m_update_key;
    std::vector<std::pair<std::size_t, Tensor>> m_grad_leaves; // (parameter index, leaf)
    std::map<std::pair<std::size_t, DType>, Tensor> m_hypers;
};

// SGD with momentum, dampening, Nesterov momentum and L2 weight decay, as torch.optim.SGD.
class SGD : public Optimizer {
public:
    explicit SGD(double lr, double momentum = 0.0, double weight_decay = 0.0,
                 bool nesterov = false, double dampening = 0.0);
    std::string name() const override { return "SGD"; }
    std::vector<std::string> slot_names() const override;

protected:
    Tensor new_value(const Tensor& param, const Tensor& grad, State& state,
                     std::vector<std::pair<Tensor, Tensor>>& state_updates) override;
    std::vector<double> hyper_values() const override;

private:
    double m_momentum, m_weight_decay, m_dampening;
    bool m_nesterov;
};

// Adam (torch.optim.Adam; weight_decay is L2 added to the gradient).
class Adam : public Optimizer {
public:
    explicit Adam(double lr = 0.001, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
                  double weight_decay = 0.0);
    std::string name() const override { return m_decoupled ? "AdamW" : "Adam"; }
    std::vector<std::string> slot_names() const override { return {"exp_avg", "exp_avg_sq"}; }

protected:
    Tensor new_value(const Tensor& param, const Tensor& grad, State& state,
                     std::vector<std::pair<Tensor, Tensor>>& state_updates) override;
    std::vector<double> hyper_values() const override;
    double m_beta1, m_beta2, m_eps, m_weight_decay;
    bool m_decoupled = false;
};

// AdamW: Adam with decoupled weight decay (torch.optim.AdamW, default weight_decay 0.01).
class AdamW : public Adam {
public:
    explicit AdamW(double lr = 0.001, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
                   double weight_decay = 0.01);
};

// RMSprop (torch.optim.RMSprop without momentum/centering).
class RMSprop : public Optimizer {
public:
    explicit RMSprop(double lr = 0.01, double alpha = 0.99, double eps = 1e-8,
                     double weight_decay = 0.0);
    std::string name() const override { return "RMSprop"; }
    std::vector<std::string> slot_names() const override { return {"square_avg"}; }

protected:
    Tensor new_value(const Tensor& param, const Tensor& grad, State& state,
                     std::vector<std::pair<Tensor, Tensor>>& state_updates) override;
    std::vector<double> hyper_values() const override;

private:
    double m_alpha, m_eps, m_weight_decay;
};

// Learning-rate schedules; call step() once per epoch, as torch.optim.lr_scheduler.
//
// Checkpoints: state_dict() holds the schedule's state, the epochs stepped so far ("epoch") and
// the learning rate it started from ("base_lr"). step_size, gamma, t_max and eta_min are its
// configuration, taken from the constructor, not from the state: a run that stopped after epoch
// 1 of a 1-epoch cosine schedule and resumes with t_max 2 continues as a 2-epoch run would.
// load_state_dict() restores the state and sets the optimizer's lr to the schedule's value at
// that epoch (the base lr at epoch 0), so load it after the optimizer's own state.
class StepLR {
public:
    StepLR(Optimizer& opt, std::int64_t step_size, double gamma = 0.1);
    void step();
    std::int64_t epoch() const { return m_epoch; }
    io::StateDict state_dict() const;
    void load_state_dict(const io::StateDict& state);

private:
    double lr_at(std::int64_t epoch) const;
    Optimizer& m_opt;
    double m_base_lr;
    std::int64_t m_step_size;
    double m_gamma;
    std::int64_t m_epoch = 0;
};

class CosineAnnealingLR {
public:
    CosineAnnealingLR(Optimizer& opt, std::int64_t t_max, double eta_min = 0.0);
    void step();
    std::int64_t epoch() const { return m_epoch; }
    io::StateDict state_dict() const;
    void load_state_dict(const io::StateDict& state);

private:
    double lr_at(std::int64_t epoch) const;
    Optimizer& m_opt;
    double m_base_lr;
    std::int64_t m_t_max;
    double m_eta_min;
    std::int64_t m_epoch = 0;
};

// Note [Optimizer state]
// state_dict(params) is what an optimizer needs to continue a run exactly, as
// torch.optim.Optimizer.state_dict(): the values "type" (name()), "steps" (updates so far; Adam's
// bias corrections count them) and "lr" (the current learning rate, which a schedule may have
// changed), and for each parameter that has state the tensors "<i>.<slot>", i its index in
// `params` and slot one of slot_names(): "0.exp_avg", "0.exp_avg_sq", "1.exp_avg", ... for
// Adam, "0.momentum_buffer" for SGD with momentum (none without), "0.square_avg" for RMSprop. A
// parameter that never had a gradient has no state yet and no entry. The tensors are copies:
// later updates do not change a state dict already taken.
//
// load_state_dict(params, state) takes `params` in the same order (model.parameters() of a model
// built the same way), checks everything first, then replaces the step count, the lr and all
// per-parameter state. The hyper-parameters given to the constructor (betas, momentum, weight
// decay...) stay as constructed. It throws ValueError listing every problem (another optimizer's
// type, a missing or malformed "steps"/"lr", an index past `params`, an unknown slot, a missing
// slot, a shape or dtype that differs from the parameter's) and changes nothing then.

} // namespace pynn::optimizers
