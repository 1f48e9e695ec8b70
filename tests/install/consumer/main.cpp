// The program of the install test (tests/install/run_install_test.cmake), built against an
// installed pynn. It builds loss = mean(square(tanh(x @ w + b))), runs backward, and checks the
// loss against a plain loop and dloss/dw against central finite differences. Exits 1 on mismatch.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <exception>

#include <xtensor/xarray.hpp>

#include <pynn/pynn.hpp>

namespace {

pynn::Tensor build_loss(const pynn::Tensor& x, const pynn::Tensor& w, const pynn::Tensor& b) {
    return pynn::mean(pynn::square(pynn::tanh(pynn::matmul(x, w) + b)));
}

// The same loss without pynn.
double loss_reference(const xt::xarray<double>& x,   // (N, K)
                      const xt::xarray<double>& w,   // (K, M)
                      const xt::xarray<double>& b) { // (M)
    double total = 0.0;
    for (std::size_t n = 0; n < x.shape(0); ++n) {
        for (std::size_t m = 0; m < w.shape(1); ++m) {
            double z = b(m);
            for (std::size_t k = 0; k < x.shape(1); ++k) {
                z += x(n, k) * w(k, m);
            }
            total += std::tanh(z) * std::tanh(z);
        }
    }
    return total / static_cast<double>(x.shape(0) * w.shape(1));
}

bool close(double actual, double expected, double tolerance) {
    return std::abs(actual - expected) <= tolerance * std::max(1.0, std::abs(expected));
}

int run() {
    const xt::xarray<double> x_values = {
        {0.5, -1.0, 0.25, 2.0}, {-0.75, 0.1, 1.5, -0.3}, {1.2, 0.4, -0.6, 0.05}}; // (3, 4)
    const xt::xarray<double> w_values = {{0.3, -0.2}, {0.1, 0.4}, {-0.5, 0.25}, {0.2, -0.1}};
    const xt::xarray<double> b_values = {0.05, -0.15};

    const pynn::Tensor x = pynn::Tensor::from_values(x_values);
    const pynn::Tensor w = pynn::Tensor::from_values(w_values).set_requires_grad();
    const pynn::Tensor b = pynn::Tensor::from_values(b_values).set_requires_grad();
    const pynn::Tensor loss = build_loss(x, w, b);
    loss.backward();

    int failures = 0;
    const double expected_loss = loss_reference(x_values, w_values, b_values);
    if (!close(loss.item(), expected_loss, 1e-12)) {
        std::fprintf(stderr, "loss: pynn %.17g, reference %.17g\n", loss.item(), expected_loss);
        ++failures;
    }

    const xt::xarray<double> grad_w = w.grad().values<double>();
    if (grad_w.shape(0) != 4 || grad_w.shape(1) != 2) {
        std::fprintf(stderr, "dloss/dw: shape (%zu, %zu), expected (4, 2)\n", grad_w.shape(0),
                     grad_w.shape(1));
        return 1;
    }
    const double step = 1e-6;
    for (std::size_t i = 0; i < w_values.shape(0); ++i) {
        for (std::size_t j = 0; j < w_values.shape(1); ++j) {
            xt::xarray<double> w_plus = w_values;
            xt::xarray<double> w_minus = w_values;
            w_plus(i, j) += step;
            w_minus(i, j) -= step;
            const double numeric = (build_loss(x, pynn::Tensor::from_values(w_plus), b).item() -
                                    build_loss(x, pynn::Tensor::from_values(w_minus), b).item()) /
                                   (2.0 * step);
            if (!close(grad_w(i, j), numeric, 1e-6)) {
                std::fprintf(stderr,
                             "dloss/dw(%zu, %zu): autodiff %.17g, finite difference %.17g\n", i, j,
                             grad_w(i, j), numeric);
                ++failures;
            }
        }
    }
    if (failures != 0) {
        return 1;
    }
    std::printf("pynn consumer: loss %.6f, dloss/dw(0, 0) %.6f: ok\n", loss.item(), grad_w(0, 0));
    return 0;
}

} // namespace

int main() {
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pynn consumer: %s\n", e.what());
        return 1;
    }
}
