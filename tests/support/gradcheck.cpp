// Finite-difference gradient checking. Each perturbed evaluation builds a fresh graph of
// constant leaves, so it exercises the forward kernels the way a user would.
#include "support/gradcheck.hpp"

#include <cmath>
#include <random>
#include <sstream>

#include <xtensor/xio.hpp>

namespace pynn::testing {

xt::xarray<double> random_array(const Shape& shape, std::uint64_t seed, double low, double high) {
    std::mt19937_64 engine(seed);
    std::uniform_real_distribution<double> dist(low, high);
    xt::xarray<double> a = xt::zeros<double>(shape);
    for (auto& v : a) {
        v = dist(engine);
    }
    return a;
}

namespace {

double weighted_output(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                       const std::vector<xt::xarray<double>>& inputs,
                       const xt::xarray<double>& weights) {
    std::vector<Tensor> leaves;
    for (const auto& a : inputs) {
        leaves.push_back(Tensor::from_values(a));
    }
    xt::xarray<double> out = f(leaves).values<double>();
    double total = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
        total += out.flat(i) * weights.flat(i);
    }
    return total;
}

} // namespace

void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                     const std::vector<xt::xarray<double>>& inputs, double eps,
                     double tolerance) {
    std::vector<Tensor> leaves;
    for (const auto& a : inputs) {
        leaves.push_back(Tensor::from_values(a).set_requires_grad(true));
    }
    Tensor out = f(leaves);
    REQUIRE(out.dtype() == DType::Float64);
    xt::xarray<double> weights = random_array(out.shape(), 1234, 0.5, 1.5);
    Tensor loss = sum(out * Tensor::from_values(weights));
    loss.backward();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        xt::xarray<double> analytic =
            leaves[i].has_grad() ? leaves[i].grad().values<double>()
                                 : xt::xarray<double>(xt::zeros<double>(inputs[i].shape()));
        REQUIRE(analytic.shape() == inputs[i].shape());
        for (std::size_t k = 0; k < inputs[i].size(); ++k) {
            std::vector<xt::xarray<double>> plus = inputs;
            std::vector<xt::xarray<double>> minus = inputs;
            plus[i].flat(k) += eps;
            minus[i].flat(k) -= eps;
            const double numeric =
                (weighted_output(f, plus, weights) - weighted_output(f, minus, weights)) /
                (2 * eps);
            const double a = analytic.flat(k);
            const double scale = std::max({1.0, std::abs(a), std::abs(numeric)});
            if (std::abs(a - numeric) > tolerance * scale) {
                std::ostringstream msg;
                msg << "gradient of input " << i << " element " << k << ": autodiff " << a
                    << ", finite differences " << numeric;
                FAIL(msg.str());
            }
        }
    }
    SUCCEED("gradients match finite differences");
}

template <class T>
static void require_close_impl(const xt::xarray<T>& actual, const xt::xarray<T>& expected,
                               double tolerance) {
    REQUIRE(actual.shape() == expected.shape());
    for (std::size_t i = 0; i < actual.size(); ++i) {
        const double a = actual.flat(i);
        const double e = expected.flat(i);
        if (std::isnan(e)) {
            REQUIRE(std::isnan(a));
            continue;
        }
        const double scale = std::max(1.0, std::abs(e));
        if (!(std::abs(a - e) <= tolerance * scale)) {
            std::ostringstream msg;
            msg << "element " << i << ": got " << a << ", expected " << e << "\nactual:\n"
                << actual << "\nexpected:\n"
                << expected;
            FAIL(msg.str());
        }
    }
}

void require_close(const xt::xarray<double>& actual, const xt::xarray<double>& expected,
                   double tolerance) {
    require_close_impl(actual, expected, tolerance);
}
void require_close(const xt::xarray<float>& actual, const xt::xarray<float>& expected,
                   double tolerance) {
    require_close_impl(actual, expected, tolerance);
}

} // namespace pynn::testing
