// Layers, losses and models: shapes, forward against references, gradients against finite
// differences, train/eval behaviour, and a short end-to-end training run that must learn.
#include <cmath>

#include <catch2/catch.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "support/gradcheck.hpp"

using namespace pynn;
using pynn::testing::check_gradients;
using pynn::testing::random_array;
using pynn::testing::require_close;

namespace {
xt::xarray<float> dense_reference(const xt::xarray<float>& x, const xt::xarray<float>& w,
                                  const xt::xarray<float>& b) {
    xt::xarray<float> y = xt::zeros<float>({x.shape(0), w.shape(1)});
    for (std::size_t i = 0; i < x.shape(0); ++i) {
        for (std::size_t j = 0; j < w.shape(1); ++j) {
            float acc = b(j);
            for (std::size_t k = 0; k < x.shape(1); ++k) {
                acc += x(i, k) * w(k, j);
            }
            y(i, j) = std::max(acc, 0.0F);
        }
    }
    return y;
}
} // namespace

TEST_CASE("Dense computes activation(x @ W + b) with torch's default init range", "[nn]") {
    layers::Dense dense(4, 3, relu);
    Tensor w = dense.weight();
    Tensor b = dense.bias();
    CHECK(w.shape() == Shape{4, 3});
    CHECK(b.shape() == Shape{3});
    CHECK(w.requires_grad());
    CHECK(xt::amax(xt::abs(w.values<float>()))() <= 0.5F); // 1/sqrt(in_features)
    Tensor x = Tensor::randn({5, 4});
    require_close(dense(x).values<float>(),
                  dense_reference(x.values<float>(), w.values<float>(), b.values<float>()), 1e-5);
    CHECK_THROWS_WITH(dense(Tensor::zeros({5, 3})),
                      "Dense(4, 3): input (5, 3) must end in 4 features");
}

TEST_CASE("Dense's gradients match finite differences", "[nn]") {
    check_gradients(
        [](const std::vector<Tensor>& t) { return tanh(matmul(t[0], t[1]) + t[2]); },
        {random_array({3, 4}, 1), random_array({4, 2}, 2), random_array({2}, 3)});
}

TEST_CASE("Dropout drops in training mode and is the identity in eval mode", "[nn]") {
    layers::Dropout drop(0.5, 7);
    Tensor x = Tensor::ones({1000});
    auto y = drop(x).values<float>();
    std::size_t zeros = 0;
    for (float v : y) {
        CHECK((v == 0.0F || v == 2.0F)); // kept values are scaled by 1/(1-p)
        zeros += v == 0.0F ? 1 : 0;
    }
    CHECK(zeros > 400);
    CHECK(zeros < 600);
    drop.layer()->set_training(false);
    require_close(drop(x).values<float>(), x.values<float>());
}

TEST_CASE("losses match their formulas", "[nn][loss]") {
    xt::xarray<double> logits{{1.0, 2.0, 0.5}, {-1.0, 0.0, 3.0}};
    xt::xarray<double> onehot{{0.0, 1.0, 0.0}, {0.0, 0.0, 1.0}};
    xt::xarray<double> ids{1.0, 2.0};
    Tensor l = Tensor::from_values(logits);
    // Reference: mean over rows of logsumexp(row) - row[label].
    double expected = 0;
    for (std::size_t r = 0; r < 2; ++r) {
        auto row = xt::view(logits, r, xt::all());
        expected += std::log(xt::sum(xt::exp(row))()) - logits(r, r == 0 ? 1 : 2);
    }
    expected /= 2;
    CHECK(losses::cross_entropy_with_logits(l, Tensor::from_values(onehot)).item() ==
          Approx(expected).epsilon(1e-12));
    CHECK(losses::cross_entropy_with_logits(l, Tensor::from_values(ids)).item() ==
          Approx(expected).epsilon(1e-12));
    CHECK(losses::categorical_cross_entropy(softmax(l), Tensor::from_values(onehot)).item() ==
          Approx(expected).epsilon(1e-9));
    CHECK(losses::nll_loss(log_softmax(l), Tensor::from_values(ids)).item() ==
          Approx(expected).epsilon(1e-12));
    Tensor p = Tensor::from_values(xt::xarray<double>{0.9, 0.2});
    Tensor y = Tensor::from_values(xt::xarray<double>{1.0, 0.0});
    CHECK(losses::binary_cross_entropy(p, y).item() ==
          Approx(-(std::log(0.9) + std::log(0.8)) / 2).epsilon(1e-12));
    CHECK(losses::mse_loss(p, y).item() == Approx((0.01 + 0.04) / 2).epsilon(1e-12));
    CHECK_THROWS_AS(losses::mse_loss(p, Tensor::zeros({3}, DType::Float64)), ShapeError);
}

TEST_CASE("losses' gradients match finite differences", "[nn][loss]") {
    xt::xarray<double> onehot{{0.0, 1.0, 0.0}, {1.0, 0.0, 0.0}};
    check_gradients(
        [&](const std::vector<Tensor>& t) {
            return losses::cross_entropy_with_logits(t[0], Tensor::from_values(onehot));
        },
        {random_array({2, 3}, 11)});
    check_gradients(
        [&](const std::vector<Tensor>& t) {
            return losses::categorical_cross_entropy(softmax(t[0]), Tensor::from_values(onehot));
        },
        {random_array({2, 3}, 12)});
    check_gradients(
        [](const std::vector<Tensor>& t) {
            return losses::binary_cross_entropy(sigmoid(t[0]), Tensor::from_values(
                                                                   xt::xarray<double>{1, 0, 1}));
        },
        {random_array({3}, 13)});
}

TEST_CASE("Model replays its layers on new input and summarises them", "[nn][model]") {
    Tensor x_input = Tensor::randn({8, 6});
    Tensor x = layers::Dense(6, 5, relu)(x_input);
    x = layers::Dense(5, 3, softmax)(x);
    models::Model model(x_input, x);
    CHECK(model.parameters().size() == 4);
    Tensor out = model(Tensor::randn({8, 6}));
    CHECK(out.shape() == Shape{8, 3});
    auto rows = xt::sum(out.values<float>(), {1});
    require_close(xt::xarray<float>(rows), xt::xarray<float>(xt::ones<float>({8})), 1e-5);
    CHECK(model(Tensor::randn({2, 6})).shape() == Shape{2, 3}); // the batch axis may differ
    CHECK_THROWS_WITH(model(Tensor::randn({8, 7})),
                      "Model: input (8, 7) float32 does not match the model's input (8, 6) "
                      "float32 (only the batch axis may differ)");
    const std::string s = model.summary();
    CHECK_THAT(s, Catch::Contains("Dense(6, 5, relu)"));
    CHECK_THAT(s, Catch::Contains("Total params: 53")); // 6*5+5 + 5*3+3
}

TEST_CASE("Sequential applies layers in order", "[nn][model]") {
    models::Sequential net{layers::Flatten(), layers::Dense(12, 4, tanh), layers::Dense(4, 2)};
    Tensor y = net(Tensor::randn({3, 3, 4}));
    CHECK(y.shape() == Shape{3, 2});
    CHECK(net.parameters().size() == 4);
    CHECK_THAT(net.summary({3, 3, 4}), Catch::Contains("Flatten"));
}

TEST_CASE("a small MLP learns a synthetic problem end to end", "[nn][train]") {
    // Two Gaussian blobs per class in 2-D, four classes: an MLP must separate them.
    manual_seed(3);
    const std::size_t n = 256;
    xt::xarray<float> xs = xt::zeros<float>({n, std::size_t{2}});
    xt::xarray<float> ys = xt::zeros<float>({n});
    Generator gen(5);
    std::normal_distribution<float> noise(0.0F, 0.3F);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t c = i % 4;
        xs(i, 0) = (c % 2 ? 1.5F : -1.5F) + noise(gen.engine());
        xs(i, 1) = (c / 2 ? 1.5F : -1.5F) + noise(gen.engine());
        ys(i) = static_cast<float>(c);
    }
    Tensor x_input = Tensor::randn({n, 2});
    Tensor h = layers::Dense(2, 16, relu)(x_input);
    Tensor logits = layers::Dense(16, 4)(h);
    models::Model model(x_input, logits);
    optimizers::Adam opt(0.05);
    Tensor X = Tensor::from_values(xs);
    Tensor Y = Tensor::from_values(ys);
    double first_loss = 0, last_loss = 0;
    for (int step = 0; step < 60; ++step) {
        Tensor loss = losses::cross_entropy_with_logits(model(X), Y);
        loss.zero_grad();
        loss.backward();
        opt.update(model.parameters());
        (step == 0 ? first_loss : last_loss) = loss.item();
    }
    CHECK(last_loss < first_loss / 4);
    auto pred = argmax(model(X), 1).values<float>();
    std::size_t correct = 0;
    for (std::size_t i = 0; i < n; ++i) {
        correct += pred(i) == ys(i) ? 1 : 0;
    }
    CHECK(static_cast<double>(correct) / n >= 0.97);
}

TEST_CASE("BatchNorm2d normalises with batch statistics and updates running ones once",
          "[nn][batchnorm]") {
    Flags::set_global_type(DType::Float64);
    layers::BatchNorm2d bn(2);
    Flags::set_global_type(DType::Float32);
    auto xv = random_array({3, 2, 2, 2}, 51, -2.0, 3.0);
    Tensor y = bn(Tensor::from_values(xv));
    auto yv = y.values<double>();
    for (std::size_t c = 0; c < 2; ++c) {
        xt::xarray<double> xc = xt::view(xv, xt::all(), c);
        const double m = xt::mean(xc)();
        const double var = xt::mean(xt::square(xc - m))();
        xt::xarray<double> expected = (xc - m) / std::sqrt(var + 1e-5);
        require_close(xt::xarray<double>(xt::view(yv, xt::all(), c)), expected, 1e-10);
        // running = 0.9 * init + 0.1 * batch statistic (unbiased variance: n = 12)
        CHECK(bn.running_mean().values<double>()(c) == Approx(0.1 * m).epsilon(1e-12));
        CHECK(bn.running_var().values<double>()(c) ==
              Approx(0.9 + 0.1 * var * 12.0 / 11.0).epsilon(1e-12));
    }
    // Reading y again, or backward through it, does not update the statistics a second time.
    const double rm = bn.running_mean().values<double>()(0);
    sum(y * y).backward();
    CHECK(bn.running_mean().values<double>()(0) == rm);

    bn.layer()->set_training(false);
    auto ev = bn(Tensor::from_values(xv)).values<double>();
    const double rv = bn.running_var().values<double>()(0);
    CHECK(ev(0, 0, 0, 0) == Approx((xv(0, 0, 0, 0) - rm) / std::sqrt(rv + 1e-5)));
}

TEST_CASE("BatchNorm1d's training-mode gradients match finite differences", "[nn][batchnorm]") {
    Flags::set_global_type(DType::Float64);
    layers::BatchNorm1d bn(3);
    Flags::set_global_type(DType::Float32);
    check_gradients([&](const std::vector<Tensor>& t) { return bn(t[0]) * t[1]; },
                    {random_array({4, 3}, 61), random_array({4, 3}, 62)});
    CHECK_THROWS_WITH(bn(Tensor::zeros({4, 2}, DType::Float64)),
                      "BatchNorm1d(3): input (4, 2) must be (N, C) or (N, C, L) with C = 3");
}

TEST_CASE("Conv2d and pooling layers compose into a CNN", "[nn][conv]") {
    models::Sequential net{layers::Conv2d(1, 4, 3, 1, 1, relu), layers::MaxPool2d(2),
                           layers::Conv2d(4, 2, 3, 1, 0), layers::AvgPool2d(2), layers::Flatten(),
                           layers::Dense(2, 3)};
    Tensor y = net(Tensor::randn({5, 1, 8, 8}));
    CHECK(y.shape() == Shape{5, 3});
    CHECK(net.parameters().size() == 6);
    const std::string s = net.summary({5, 1, 8, 8});
    CHECK_THAT(s, Catch::Contains("Conv2d(1, 4, 3, padding=1, relu)"));
    CHECK_THAT(s, Catch::Contains("(5, 4, 4, 4)"));
}

TEST_CASE("a checkpoint carries BatchNorm's running statistics", "[nn][batchnorm][io]") {
    auto build = []() {
        return models::Sequential{layers::Dense(3, 4), layers::BatchNorm1d(4), layers::Dense(4, 2)};
    };
    models::Sequential net = build();
    net(Tensor::randn({8, 3})).values<float>(); // a training-mode pass moves the statistics
    const std::string path = "test_layers_bn_checkpoint.safetensors";
    net.save(path);
    models::Sequential other = build();
    other.load(path);
    std::remove(path.c_str());
    net.eval();
    other.eval();
    Tensor x = Tensor::randn({5, 3});
    require_close(other(x).values<float>(), net(x).values<float>(), 1e-6);
}
