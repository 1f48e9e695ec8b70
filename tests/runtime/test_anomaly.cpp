// Anomaly detection (Flags::set_detect_anomaly): the first kernel that writes NaN/Inf throws an
// AnomalyError naming the op, the layer it was written in and the pass (forward or backward).
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "support/gradcheck.hpp"

using namespace pynn;
using Catch::Contains;

namespace {
struct AnomalyMode {
    AnomalyMode() { Flags::set_detect_anomaly(true); }
    ~AnomalyMode() { Flags::set_detect_anomaly(false); }
    AnomalyMode(const AnomalyMode&) = delete;
    AnomalyMode& operator=(const AnomalyMode&) = delete;
};

// Dense(3, 4) then a layer that takes the log of its input: log of a negative is NaN.
models::Model log_model(Tensor& input) {
    manual_seed(3);
    input = Tensor::randn({2, 3});
    Tensor h = layers::Dense(3, 4)(input);
    Tensor y = layers::Lambda([](const Tensor& t) { return log(t); }, "log_layer")(h);
    return models::Model(input, y);
}
} // namespace

TEST_CASE("detect_anomaly names the forward op and the layer that made a NaN", "[anomaly]") {
    AnomalyMode mode;
    Tensor input;
    models::Model model = log_model(input);
    Tensor x = Tensor::from_values(xt::xarray<float>{{1.0F, -2.0F, 3.0F}, {-4.0F, 5.0F, -6.0F}});
    Tensor y = model(x);
    REQUIRE_THROWS_AS(y.values<float>(), AnomalyError);
    CHECK_THROWS_WITH(y.values<float>(), Contains("produced NaN") &&
                                              Contains("log, forward, in layer Lambda(log_layer)") &&
                                              Contains("of its output (2, 4)"));
}

TEST_CASE("detect_anomaly names the backward rule that made an Inf", "[anomaly]") {
    AnomalyMode mode;
    // sqrt(0) is fine forward; its gradient 1 / (2 sqrt(0)) is Inf.
    Tensor w = Tensor::from_values({0.0, 4.0}, DType::Float64).set_requires_grad();
    Tensor loss = sum(sqrt(w));
    REQUIRE_THROWS_AS(loss.backward(), AnomalyError);
    CHECK_THROWS_WITH(loss.backward(),
                      Contains("produced Inf") && Contains("in the backward of sqrt"));
}

TEST_CASE("detect_anomaly says when the NaN came in with the data", "[anomaly]") {
    AnomalyMode mode;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    Tensor a = Tensor::from_values({1.0, nan}, DType::Float64).set_name("batch");
    Tensor b = a * 2.0;
    CHECK_THROWS_WITH(b.values<double>(),
                      Contains("mul, forward, outside any layer") &&
                          Contains("input 0 (2) 'batch' already held NaN/Inf"));
}

TEST_CASE("without detect_anomaly NaN flows through, and finite graphs are unaffected",
          "[anomaly]") {
    Tensor x = Tensor::from_values({-1.0, 4.0}, DType::Float64);
    const xt::xarray<double> off = log(x).values<double>();
    CHECK(std::isnan(off(0)));
    AnomalyMode mode;
    Tensor w = Tensor::from_values({1.0, 4.0}, DType::Float64).set_requires_grad();
    Tensor loss = sum(sqrt(w) * 3.0);
    loss.backward();
    pynn::testing::require_close(w.grad().values<double>(), xt::xarray<double>{1.5, 0.75});
}
