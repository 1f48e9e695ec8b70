// BatchNorm1d / BatchNorm2d. The running statistics are leaves updated through
// Tensor::defer_assign, so they change when the forward pass actually runs, once per batch.
#include <sstream>

#include "pynn/error.hpp"
#include "pynn/layers.hpp"

namespace pynn::layers {

namespace {

class BatchNormLayer : public Layer {
public:
    BatchNormLayer(std::size_t features, double eps, double momentum, bool two_d)
        : m_features(features), m_eps(eps), m_momentum(momentum), m_2d(two_d) {
        if (features == 0) {
            throw ValueError(name() + ": num_features must be positive");
        }
        m_weight = Tensor::ones({features}).set_requires_grad();
        m_bias = Tensor::zeros({features}).set_requires_grad();
        m_running_mean = Tensor::zeros({features});
        m_running_var = Tensor::ones({features});
    }

    Tensor forward(const Tensor& x) override {
        const bool ok = m_2d ? x.dim() == 4 : (x.dim() == 2 || x.dim() == 3);
        if (!ok || x.shape()[1] != m_features) {
            throw ShapeError(name() + ": input " + to_string(x.shape()) + " must be " +
                             (m_2d ? "(N, C, H, W)" : "(N, C) or (N, C, L)") + " with C = " +
                             std::to_string(m_features));
        }
        // Statistics over every axis but the channels; parameters broadcast as (1, C, 1, ...).
        std::vector<int> axes{0};
        Shape bshape{1, m_features};
        for (std::size_t i = 2; i < x.dim(); ++i) {
            axes.push_back(static_cast<int>(i));
            bshape.push_back(1);
        }
        auto as_b = [&](const Tensor& t) { return reshape(t, bshape); };
        Tensor mean_b, var_b;
        if (training()) {
            const std::size_t count = x.numel() / m_features;
            if (count < 2) {
                throw ValueError(name() + ": training needs more than one value per channel, got "
                                 "input " + to_string(x.shape()));
            }
            mean_b = mean(x, axes, true);
            var_b = mean(square(x - mean_b), axes, true);
            // running = (1 - m) running + m batch, with the unbiased variance (as PyTorch).
            const double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
            Tensor new_mean = m_running_mean * (1.0 - m_momentum) +
                              reshape(mean_b, {m_features}) * m_momentum;
            Tensor new_var = m_running_var * (1.0 - m_momentum) +
                             reshape(var_b, {m_features}) * (m_momentum * unbias);
            Tensor y = normalise(x, mean_b, var_b, as_b);
            y.defer_assign(m_running_mean, new_mean);
            y.defer_assign(m_running_var, new_var);
            return y;
        }
        return normalise(x, as_b(m_running_mean), as_b(m_running_var), as_b);
    }

    std::vector<Tensor> parameters() const override { return {m_weight, m_bias}; }
    std::vector<std::string> parameter_names() const override { return {"weight", "bias"}; }
    std::vector<std::pair<std::string, Tensor>> buffers() const override {
        return {{"running_mean", m_running_mean}, {"running_var", m_running_var}};
    }
    std::string name() const override {
        return std::string(m_2d ? "BatchNorm2d(" : "BatchNorm1d(") + std::to_string(m_features) +
               ")";
    }
    Tensor running_mean() const { return m_running_mean; }
    Tensor running_var() const { return m_running_var; }

private:
    template <class AsB>
    Tensor normalise(const Tensor& x, const Tensor& mean_b, const Tensor& var_b, AsB as_b) const {
        Tensor inv_std = 1.0 / sqrt(var_b + m_eps);
        return (x - mean_b) * inv_std * as_b(m_weight) + as_b(m_bias);
    }

    std::size_t m_features;
    double m_eps, m_momentum;
    bool m_2d;
    Tensor m_weight, m_bias, m_running_mean, m_running_var;
};

const BatchNormLayer& impl(const std::shared_ptr<Layer>& l) {
    return static_cast<const BatchNormLayer&>(*l);
}

} // namespace

BatchNorm1d::BatchNorm1d(std::size_t num_features, double eps, double momentum)
    : LayerHandle(std::make_shared<BatchNormLayer>(num_features, eps, momentum, false)) {}
Tensor BatchNorm1d::running_mean() const { return impl(m_layer).running_mean(); }
Tensor BatchNorm1d::running_var() const { return impl(m_layer).running_var(); }

BatchNorm2d::BatchNorm2d(std::size_t num_features, double eps, double momentum)
    : LayerHandle(std::make_shared<BatchNormLayer>(num_features, eps, momentum, true)) {}
Tensor BatchNorm2d::running_mean() const { return impl(m_layer).running_mean(); }
Tensor BatchNorm2d::running_var() const { return impl(m_layer).running_var(); }

} // namespace pynn::layers
