// conv2d against a naive direct convolution over random shapes with stride and padding, its
// gradients (input, weight) and the pooling ops' against finite differences, and shape errors.
#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <utility>
#include <vector>
#include <cstddef>
#include <limits>

#include <catch2/catch.hpp>

#include "kernels/conv2d.hpp"
#include "support/gradcheck.hpp"

using namespace pynn;
using pynn::testing::check_gradients;
using pynn::testing::random_array;
using pynn::testing::require_close;

TEST_CASE("conv2d matches a direct convolution", "[ops][conv]") {
    struct Case {
        Shape x, w;
        std::size_t stride, pad;
    };
    auto [x_shape, w_shape, stride, pad] = GENERATE(
        Case{{2, 3, 7, 6}, {4, 3, 3, 3}, 1, 1}, Case{{1, 1, 5, 5}, {2, 1, 3, 3}, 1, 0},
        Case{{2, 2, 8, 7}, {3, 2, 3, 2}, 2, 1}, Case{{1, 3, 6, 6}, {2, 3, 1, 1}, 3, 0},
        Case{{3, 2, 5, 9}, {2, 2, 5, 3}, 2, 2});
    auto x = random_array(x_shape, 21);
    auto w = random_array(w_shape, 22);
    Tensor y = conv2d(Tensor::from_values(x), Tensor::from_values(w), stride, pad);
    kernels::ConvShape s{x_shape[1], x_shape[2], x_shape[3], w_shape[2], w_shape[3],
                         stride,     pad,        0,          0};
    s.oh = (s.h + 2 * pad - s.kh) / stride + 1;
    s.ow = (s.w + 2 * pad - s.kw) / stride + 1;
    REQUIRE(y.shape() == Shape{x_shape[0], w_shape[0], s.oh, s.ow});
    xt::xarray<double> expected = xt::zeros<double>(y.shape());
    kernels::conv2d_reference<double>(x_shape[0], w_shape[0], s, x.data(), w.data(),
                                      expected.data());
    require_close(y.values<double>(), expected, 1e-12);
}

TEST_CASE("conv2d in float32 (the fast paths) matches float64, gradients included",
          "[ops][conv]") {
    // Images wider and narrower than a 16-float vector, paddings 0-2 and a stride of 2, so the
    // padded stride-1 im2col/col2im (masked runs) and the generic ones are both used.
    struct Case {
        Shape x, w;
        std::size_t stride, pad;
    };
    auto [x_shape, w_shape, stride, pad] =
        GENERATE(Case{{2, 3, 7, 6}, {4, 3, 3, 3}, 1, 1}, Case{{2, 2, 21, 19}, {3, 2, 3, 3}, 1, 2},
                 Case{{1, 2, 18, 17}, {2, 2, 3, 3}, 1, 0}, Case{{2, 2, 9, 20}, {3, 2, 3, 3}, 2, 1});
    INFO("x " << to_string(x_shape) << ", w " << to_string(w_shape) << ", stride " << stride
              << ", padding " << pad);
    const auto x = random_array(x_shape, 31);
    const auto w = random_array(w_shape, 32);
    auto run = [&](DType dtype) {
        Tensor tx = dtype == DType::Float32 ? Tensor::from_values(testing::shorthands::to_f32(x))
                                            : Tensor::from_values(x);
        Tensor tw = dtype == DType::Float32 ? Tensor::from_values(testing::shorthands::to_f32(w))
                                            : Tensor::from_values(w);
        tx.set_requires_grad(true);
        tw.set_requires_grad(true);
        Tensor y = conv2d(tx, tw, stride, pad);
        // A non-uniform seed through sum(y * y): the gradients see every output position.
        sum(y * y).backward();
        auto as_f64 = [&](const Tensor& t) {
            return dtype == DType::Float32 ? xt::xarray<double>(xt::cast<double>(t.values<float>()))
                                           : xt::xarray<double>(t.values<double>());
        };
        return std::array<xt::xarray<double>, 3>{as_f64(y), as_f64(tx.grad()), as_f64(tw.grad())};
    };
    const auto f32 = run(DType::Float32);
    const auto f64 = run(DType::Float64);
    for (std::size_t i = 0; i < 3; ++i) {
        INFO("output " << i << " (y, grad x, grad w)");
        const double scale = xt::amax(xt::abs(f64[i]))();
        REQUIRE(xt::amax(xt::abs(f32[i] - f64[i]))() <= 2e-5 * std::max(scale, 1.0));
    }
}

TEST_CASE("the 2x2 max-pool's float32 fast path matches a naive loop, ties and NaN included",
          "[ops][pool]") {
    // Values from a small set make ties common (the window's first maximum gets the gradient);
    // odd sizes leave a row and column no window covers; widths 5..33 give masked and several
    // vector steps per row. NaN follows the generic loop: std::max skips it, and a window whose
    // later values are NaN routes the gradient to the first element.
    std::mt19937 gen(17);
    std::uniform_int_distribution<int> pick(-3, 3);
    for (const auto& [h, w] : std::vector<std::pair<std::size_t, std::size_t>>{
             {4, 5}, {14, 14}, {7, 17}, {28, 28}, {9, 33}}) {
        INFO("image " << h << "x" << w);
        const Shape shape{2, 3, h, w};
        xt::xarray<float> x = xt::zeros<float>(shape);
        for (float& v : x) {
            const int k = pick(gen);
            v = k == 3 ? std::nanf("") : static_cast<float>(k);
        }
        const std::size_t oh = h / 2, ow = w / 2;
        xt::xarray<float> r = xt::zeros<float>(Shape{2, 3, oh, ow});
        for (float& v : r) {
            v = static_cast<float>(pick(gen)) + 0.5F;
        }
        xt::xarray<float> y_ref = xt::zeros<float>(Shape{2, 3, oh, ow});
        xt::xarray<float> g_ref = xt::zeros<float>(shape);
        for (std::size_t p = 0; p < 6; ++p) {
            for (std::size_t oy = 0; oy < oh; ++oy) {
                for (std::size_t ox = 0; ox < ow; ++ox) {
                    float best = -std::numeric_limits<float>::infinity();
                    std::size_t at = 0;
                    for (std::size_t k = 0; k < 4; ++k) {
                        const std::size_t i =
                            (p * h + 2 * oy + k / 2) * w + 2 * ox + k % 2;
                        const float v = x.data()[i];
                        best = std::max(best, v);
                        if (k == 0 || v > x.data()[at]) {
                            at = i;
                        }
                    }
                    y_ref.data()[(p * oh + oy) * ow + ox] = best;
                    g_ref.data()[at] = r.data()[(p * oh + oy) * ow + ox];
                }
            }
        }
        Tensor tx = Tensor::from_values(x).set_requires_grad();
        Tensor y = max_pool2d(tx, 2);
        sum(y * Tensor::from_values(r)).backward();
        const xt::xarray<float> y_got = y.values<float>();
        const xt::xarray<float> g_got = tx.grad().values<float>();
        for (std::size_t i = 0; i < y_ref.size(); ++i) {
            INFO("output " << i);
            const float e = y_ref.data()[i];
            const float a = y_got.data()[i];
            REQUIRE(((std::isnan(e) && std::isnan(a)) || e == a));
        }
        for (std::size_t i = 0; i < g_ref.size(); ++i) {
            INFO("gradient " << i);
            REQUIRE(g_got.data()[i] == g_ref.data()[i]);
        }
    }
}

TEST_CASE("conv2d's gradients match finite differences", "[ops][conv]") {
    SECTION("stride 1, padding 1") {
        check_gradients(
            [](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], 1, 1); },
            {random_array({2, 2, 4, 4}, 31), random_array({3, 2, 3, 3}, 32)});
    }
    SECTION("stride 2, padding 0, with bias as a layer adds it") {
        check_gradients(
            [](const std::vector<Tensor>& t) {
                return conv2d(t[0], t[1], 2, 0) + reshape(t[2], {2, 1, 1});
            },
            {random_array({1, 3, 5, 5}, 33), random_array({2, 3, 2, 2}, 34),
             random_array({2}, 35)});
    }
}

TEST_CASE("max_pool2d and avg_pool2d forward and gradients", "[ops][pool]") {
    xt::xarray<double> x = {{{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}, {13, 14, 15, 16}}}};
    require_close(max_pool2d(Tensor::from_values(x), 2).values<double>(),
                  xt::xarray<double>{{{{6, 8}, {14, 16}}}});
    require_close(avg_pool2d(Tensor::from_values(x), 2).values<double>(),
                  xt::xarray<double>{{{{3.5, 5.5}, {11.5, 13.5}}}});
    require_close(max_pool2d(Tensor::from_values(x), 3, 1).values<double>(),
                  xt::xarray<double>{{{{11, 12}, {15, 16}}}});
    // Distinct values keep the maximum away from ties, where the gradient jumps.
    check_gradients([](const std::vector<Tensor>& t) { return max_pool2d(t[0], 2); },
                    {random_array({2, 2, 4, 6}, 41)});
    check_gradients([](const std::vector<Tensor>& t) { return avg_pool2d(t[0], 2, 1); },
                    {random_array({1, 2, 5, 4}, 42)});
}

TEST_CASE("2x2 max-pool (the fast path) matches a naive window loop, odd sizes and ties",
          "[ops][pool]") {
    const Shape shape = GENERATE(Shape{2, 3, 5, 7}, Shape{1, 2, 4, 4}, Shape{1, 1, 3, 2});
    // Small integers: many ties inside windows, where the first maximum gets the gradient.
    xt::xarray<double> x = xt::round(random_array(shape, 7) * 2.0);
    xt::xarray<double> go = random_array({shape[0], shape[1], shape[2] / 2, shape[3] / 2}, 8);
    xt::xarray<double> y_ref = xt::zeros<double>(go.shape());
    xt::xarray<double> gx_ref = xt::zeros<double>(x.shape());
    for (std::size_t n = 0; n < shape[0]; ++n) {
        for (std::size_t c = 0; c < shape[1]; ++c) {
            for (std::size_t oy = 0; oy < shape[2] / 2; ++oy) {
                for (std::size_t ox = 0; ox < shape[3] / 2; ++ox) {
                    std::size_t by = 2 * oy;
                    std::size_t bx = 2 * ox;
                    for (std::size_t ky = 0; ky < 2; ++ky) {
                        for (std::size_t kx = 0; kx < 2; ++kx) {
                            if (x(n, c, 2 * oy + ky, 2 * ox + kx) > x(n, c, by, bx)) {
                                by = 2 * oy + ky;
                                bx = 2 * ox + kx;
                            }
                        }
                    }
                    y_ref(n, c, oy, ox) = x(n, c, by, bx);
                    gx_ref(n, c, by, bx) += go(n, c, oy, ox);
                }
            }
        }
    }
    Tensor xt_ = Tensor::from_values(x).set_requires_grad();
    Tensor y = max_pool2d(xt_, 2);
    require_close(y.values<double>(), y_ref);
    y.backward(Tensor::from_values(go));
    require_close(xt_.grad().values<double>(), gx_ref);
}

TEST_CASE("conv2d and pooling reject bad shapes", "[ops][conv]") {
    Tensor x = Tensor::zeros({2, 3, 8, 8});
    CHECK_THROWS_WITH(conv2d(x, Tensor::zeros({4, 2, 3, 3})),
                      "conv2d: x (2, 3, 8, 8) and weight (4, 2, 3, 3): input channels 3 and 2 "
                      "differ");
    CHECK_THROWS_WITH(conv2d(Tensor::zeros({3, 8, 8}), Tensor::zeros({4, 3, 3, 3})),
                      "conv2d: x (3, 8, 8) must be (batch, channels, height, width)");
    CHECK_THROWS_AS(conv2d(x, Tensor::zeros({4, 3, 9, 9})), ShapeError);
    CHECK_THROWS_WITH(max_pool2d(Tensor::zeros({1, 1, 1, 1}), 2),
                      "max_pool2d: x (1, 1, 1, 1) is smaller than the 2x2 window");
}

// Found while fuzzing (fuzz/fuzz_graph.cpp, fuzz/regressions/fuzz_graph/conv2d-*): x's size +
// 2 * padding wrapped around, so a padding near 2^63 passed the size check; and a stride beyond
// 2^63 turned negative in the kernels' ptrdiff_t arithmetic. Both read outside x.
TEST_CASE("conv2d refuses a padding that overflows, and takes any stride", "[ops][conv]") {
    Tensor x = Tensor::ones({1, 1, 4, 4}, DType::Float64);
    Tensor w = Tensor::ones({1, 1, 3, 3}, DType::Float64);
    CHECK_THROWS_AS(conv2d(x, w, 1, std::size_t{1} << 63), ValueError);
    CHECK_THROWS_WITH(conv2d(x, w, 1, std::size_t{1} << 62),
                      "conv2d: padding 4611686018427387904 is too large for x (1, 1, 4, 4)");
    // Any stride past the last window position leaves the one window at the origin, which covers
    // x's corner element only.
    for (std::size_t stride : {std::size_t{6}, std::size_t{11212726789901884315U},
                               std::numeric_limits<std::size_t>::max()}) {
        Tensor y = conv2d(x, w, stride, 2);
        REQUIRE(y.shape() == Shape{1, 1, 1, 1});
        CHECK(y.item() == 1.0);
    }
}
