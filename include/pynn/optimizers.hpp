// Optimizers with the seed's `opt.update(params)`: each step reads every parameter's gradient and
// writes the new values in place. The update is written with public Tensor ops and evaluated for
// all parameters in one ComputeGraph, so it compiles once and is cached like a training step.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "pynn/tensor.hpp"

namespace pynn::optimizers {

class Optimizer {
public:
    explicit Optimizer(double lr);
    virtual ~Optimizer() = default;

    // One step for every parameter that has a gradient (parameters without one are skipped).
    // Throws ValueError for a tensor that does not require grad or is not a leaf.
    void update(const std::vector<Tensor>& params);
    void step(const std::vector<Tensor>& params) { update(params); } // PyTorch's name
    void zero_grad(const std::vector<Tensor>& params) const;

    double lr() const { return m_lr; }
    void set_lr(double lr) { m_lr = lr; }
    std::int64_t steps() const { return m_steps; }
    // Kernels the last update ran (with fusion on: one fused kernel per parameter).
    std::size_t last_update_kernels() const { return m_last_kernels; }

protected:
    // Per-parameter state tensors (moments...), created on first use.
    struct State {
        std::vector<Tensor> slots;
    };
    // The new value of `param` given its gradient; may also return new values for state slots
    // as (slot leaf, new value) pairs in `state_updates`.
    virtual Tensor new_value(const Tensor& param, const Tensor& grad, State& state,
                             std::vector<std::pair<Tensor, Tensor>>& state_updates) = 0;
    Tensor scalar(double v, const Tensor& like) const { return Tensor::scalar(v, like.dtype()); }

    double m_lr;
    std::int64_t m_steps = 0;
    std::size_t m_last_kernels = 0;

private:
    std::unordered_map<const Node*, State> m_state;
};

// SGD with momentum, dampening, Nesterov momentum and L2 weight decay, as torch.optim.SGD.
class SGD : public Optimizer {
public:
    explicit SGD(double lr, double momentum = 0.0, double weight_decay = 0.0,
                 bool nesterov = false, double dampening = 0.0);

protected:
    Tensor new_value(const Tensor& param, const Tensor& grad, State& state,
                     std::vector<std::pair<Tensor, Tensor>>& state_updates) override;

private:
    double m_momentum, m_weight_decay, m_dampening;
    bool m_nesterov;
};

// Adam (torch.optim.Adam; weight_decay is L2 added to the gradient).
class Adam : public Optimizer {
public:
    explicit Adam(double lr = 0.001, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
                  double weight_decay = 0.0);

protected:
    Tensor new_value(const Tensor& param, const Tensor& grad, State& state,
                     std::vector<std::pair<Tensor, Tensor>>& state_updates) override;
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

protected:
    Tensor new_value(const Tensor& param, const Tensor& grad, State& state,
                     std::vector<std::pair<Tensor, Tensor>>& state_updates) override;

private:
    double m_alpha, m_eps, m_weight_decay;
};

// Learning-rate schedules; call step() once per epoch, as torch.optim.lr_scheduler.
class StepLR {
public:
    StepLR(Optimizer& opt, std::int64_t step_size, double gamma = 0.1);
    void step();

private:
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

private:
    Optimizer& m_opt;
    double m_base_lr;
    std::int64_t m_t_max;
    double m_eta_min;
    std::int64_t m_epoch = 0;
};

} // namespace pynn::optimizers
