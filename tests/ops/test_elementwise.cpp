// Elementwise ops of math.hpp (primitives and the composites square, clip, gelu): values against
// xtensor expressions or hand-computed numbers in float64 and float32, gradients against central
// finite differences in float64, numpy broadcasting, inputs made by transposes and strided
// slices, and the exact text of every error.
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>
#include <xtensor/xvectorize.hpp>
#include <xtensor/xview.hpp>

#include "support/gradcheck.hpp"

using namespace pynn;
using pynn::testing::check_gradients;
using pynn::testing::random_array;
using pynn::testing::require_close;
using namespace pynn::testing::shorthands;

namespace {

// Moves every element `margin` further from 0, for ops with a kink there.
Array away_from_zero(const Array& a, double margin) { return a + margin * xt::sign(a); }

// Multiples of 0.1 shifted by `offset`: arrays made with offsets 0 and 0.05 never hold elements
// closer than 0.05, which keeps maximum/minimum/comparisons clear of ties in gradient checks.
Array on_grid(const Shape& shape, std::uint64_t seed, double offset) {
    return Array(xt::round(random_array(shape, seed) * 10.0) / 10.0 + offset);
}

// --- unary ---

using UnaryOp = std::function<Tensor(const Tensor&)>;
using UnaryRef = std::function<Array(const Array&)>;

// Forward in float64 and float32, forward on a transposed and a strided-slice input and, for
// ops that are smooth on x's values, gradients on all three. x must be 2-D.
void check_unary(const UnaryOp& op, const UnaryRef& reference, const Array& x, bool smooth = true) {
    REQUIRE(x.dimension() == 2);
    SECTION("float64 forward") {
        Tensor out = op(leaf(x));
        CHECK(out.dtype() == DType::Float64);
        require_close(out.values<double>(), reference(x), 1e-12);
    }
    SECTION("float32 forward") {
        const xt::xarray<float> xf = to_f32(x);
        Tensor out = op(Tensor::from_values(xf));
        CHECK(out.dtype() == DType::Float32);
        require_close(out.values<float>(), to_f32(reference(to_f64(xf))), 1e-5);
    }
    SECTION("non-contiguous inputs: a transpose and a strided slice") {
        require_close(op(transpose(leaf(x))).values<double>(), reference(xt::transpose(x)), 1e-12);
        const Array strided = xt::view(x, xt::all(), xt::range(1, x.shape(1), 2));
        require_close(op(slice(leaf(x), 1, 1, 100, 2)).values<double>(), reference(strided), 1e-12);
    }
    if (smooth) {
        SECTION("gradient") {
            check_gradients([&](const Inputs& t) { return op(t[0]); }, {x});
            check_gradients([&](const Inputs& t) { return op(transpose(t[0])); }, {x});
            check_gradients([&](const Inputs& t) { return op(slice(t[0], 1, 1, 100, 2)); }, {x});
        }
    }
}

// --- binary ---

using BinaryOp = std::function<Tensor(const Tensor&, const Tensor&)>;
using BinaryRef = std::function<Array(const Array&, const Array&)>;
using Maker = std::function<Array(const Shape&, std::uint64_t)>;

// Shape pairs covering equal shapes, a trailing vector, two-sided broadcasting, 0-d scalars and
// a rank difference with size-1 axes on both sides.
const std::vector<std::pair<Shape, Shape>> kBroadcastCases = {
    {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{4}, {3, 4}},       {{3, 1}, {1, 4}},
    {{}, {2, 3}},     {{2, 3}, {}},  {{2, 1, 3}, {4, 1}}, {{4, 1}, {2, 1, 3}},
};

Maker uniform(double low, double high) {
    return [=](const Shape& s, std::uint64_t seed) { return random_array(s, seed, low, high); };
}

// Forward (float64 against xtensor's broadcasting expression, float32) and float64 gradients
// for every broadcast case, then once with a transposed first operand.
void check_binary(const BinaryOp& op, const BinaryRef& reference, const Maker& make_a,
                  const Maker& make_b) {
    std::uint64_t seed = 100;
    for (const auto& [shape_a, shape_b] : kBroadcastCases) {
        INFO("a " << to_string(shape_a) << ", b " << to_string(shape_b));
        const Array a = make_a(shape_a, ++seed);
        const Array b = make_b(shape_b, ++seed);
        const Array expected = reference(a, b);
        Tensor out = op(leaf(a), leaf(b));
        REQUIRE(out.shape() == Shape(expected.shape().begin(), expected.shape().end()));
        require_close(out.values<double>(), expected, 1e-12);

        const xt::xarray<float> af = to_f32(a);
        const xt::xarray<float> bf = to_f32(b);
        Tensor out32 = op(Tensor::from_values(af), Tensor::from_values(bf));
        CHECK(out32.dtype() == DType::Float32);
        require_close(out32.values<float>(), to_f32(reference(to_f64(af), to_f64(bf))), 1e-5);

        check_gradients([&](const Inputs& t) { return op(t[0], t[1]); }, {a, b});
    }
    INFO("a transposed (4, 3) -> (3, 4), b (4)");
    const Array a = make_a({4, 3}, 7);
    const Array b = make_b({4}, 8);
    require_close(op(transpose(leaf(a)), leaf(b)).values<double>(), reference(xt::transpose(a), b),
                  1e-12);
    check_gradients([&](const Inputs& t) { return op(transpose(t[0]), t[1]); }, {a, b});
}

Array mask(const auto& bool_expression) { return xt::cast<double>(bool_expression); }

// References for transcendental functions use the C++ standard library element by element:
// independent of xsimd (which pynn's kernels use), and xtensor's xsimd-backed xt::exp/xt::pow
// trip GCC 12's -Wuninitialized false positive in AVX-512 intrinsics.
template <class F>
Array std_map(const Array& x, F f) {
    Array out = x;
    for (double& v : out) {
        v = f(v);
    }
    return out;
}

// std::pow elementwise with numpy broadcasting.
Array std_pow(const Array& a, const Array& b) {
    auto f = xt::vectorize([](double x, double y) { return std::pow(x, y); });
    return f(a, b);
}

Array gelu_reference(const Array& x) {
    // torch.nn.functional.gelu(x, approximate="tanh")
    const double k = std::sqrt(2.0 / std::numbers::pi);
    return std_map(
        x, [k](double v) { return 0.5 * v * (1.0 + std::tanh(k * (v + 0.044715 * v * v * v))); });
}

} // namespace

// ---------------------------------------------------------------------------------------------
// binary arithmetic

TEST_CASE("add broadcasts and matches a + b", "[ops]") {
    check_binary([](const Tensor& a, const Tensor& b) { return add(a, b); },
                 [](const Array& a, const Array& b) { return Array(a + b); }, uniform(-1, 1),
                 uniform(-1, 1));
}

TEST_CASE("sub broadcasts and matches a - b", "[ops]") {
    check_binary([](const Tensor& a, const Tensor& b) { return sub(a, b); },
                 [](const Array& a, const Array& b) { return Array(a - b); }, uniform(-1, 1),
                 uniform(-1, 1));
}

TEST_CASE("mul broadcasts and matches a * b", "[ops]") {
    check_binary([](const Tensor& a, const Tensor& b) { return mul(a, b); },
                 [](const Array& a, const Array& b) { return Array(a * b); }, uniform(-1, 1),
                 uniform(-1, 1));
}

TEST_CASE("div broadcasts and matches a / b", "[ops]") {
    check_binary([](const Tensor& a, const Tensor& b) { return div(a, b); },
                 [](const Array& a, const Array& b) { return Array(a / b); }, uniform(-1, 1),
                 uniform(0.5, 2.0));
    SECTION("hand-computed, with a negative divisor") {
        Tensor q = div(Tensor::from_values({1.0, -3.0, 7.0}, DType::Float64),
                       Tensor::from_values({2.0, 4.0, -0.5}, DType::Float64));
        require_close(q.values<double>(), Array{0.5, -0.75, -14.0});
    }
}

TEST_CASE("pow with a tensor exponent broadcasts and matches a ^ b for positive bases", "[ops]") {
    check_binary([](const Tensor& a, const Tensor& b) { return pow(a, b); },
                 [](const Array& a, const Array& b) { return std_pow(a, b); }, uniform(0.5, 2.0),
                 uniform(-1.5, 1.5));
    SECTION("hand-computed") {
        Tensor p = pow(Tensor::from_values({2.0, 9.0, 4.0}, DType::Float64),
                       Tensor::from_values({3.0, 0.5, -1.0}, DType::Float64));
        require_close(p.values<double>(), Array{8.0, 3.0, 0.25});
    }
}

TEST_CASE("pow with a scalar exponent", "[ops]") {
    const double exponent = GENERATE(2.0, 3.0, 0.5, -1.5, 0.0);
    INFO("exponent " << exponent);
    check_unary([=](const Tensor& x) { return pow(x, exponent); },
                [=](const Array& x) { return std_pow(x, Array(exponent)); },
                random_array({3, 4}, 21, 0.5, 2.0));
}

TEST_CASE("pow with an integer exponent accepts negative bases", "[ops]") {
    // As torch.pow: (-2)^3 = -8. Also on long rows, where xsimd's pow runs instead of std::pow.
    const Array x = away_from_zero(random_array({4, 37}, 25, -2.0, 2.0), 0.05);
    for (const double exponent : {2.0, 3.0, -1.0}) {
        INFO("exponent " << exponent);
        const Array expected = std_pow(x, Array(exponent));
        require_close(pow(leaf(x), exponent).values<double>(), expected, 1e-12);
        require_close(pow(Tensor::from_values(to_f32(x)), exponent).values<float>(),
                      to_f32(expected), 1e-5);
        check_gradients([=](const Inputs& t) { return pow(t[0], exponent); },
                        {away_from_zero(random_array({3, 4}, 26), 0.1)});
    }
    require_close(pow(Tensor::from_values({-2.0, -0.5}, DType::Float64), 3.0).values<double>(),
                  Array{-8.0, -0.125});
}

TEST_CASE("maximum and minimum broadcast and match xtensor's", "[ops]") {
    const Maker grid0 = [](const Shape& s, std::uint64_t seed) { return on_grid(s, seed, 0.0); };
    const Maker grid5 = [](const Shape& s, std::uint64_t seed) { return on_grid(s, seed, 0.05); };
    SECTION("maximum") {
        check_binary([](const Tensor& a, const Tensor& b) { return maximum(a, b); },
                     [](const Array& a, const Array& b) { return Array(xt::maximum(a, b)); }, grid0,
                     grid5);
    }
    SECTION("minimum") {
        check_binary([](const Tensor& a, const Tensor& b) { return minimum(a, b); },
                     [](const Array& a, const Array& b) { return Array(xt::minimum(a, b)); }, grid0,
                     grid5);
    }
    SECTION("ties split the gradient evenly between the operands") {
        Tensor a = Tensor::from_values({1.0, 2.0, 3.0}, DType::Float64).set_requires_grad();
        Tensor b = Tensor::from_values({1.0, 5.0, 0.0}, DType::Float64).set_requires_grad();
        sum(maximum(a, b) + 10.0 * minimum(a, b)).backward();
        require_close(a.grad().values<double>(), Array{5.5, 10.0, 1.0});
        require_close(b.grad().values<double>(), Array{5.5, 1.0, 10.0});
    }
}

TEST_CASE("arithmetic operators and their scalar forms", "[ops]") {
    const Array x = away_from_zero(random_array({2, 3}, 31), 0.25);
    const Array y = random_array({3}, 32);
    Tensor tx = leaf(x);
    Tensor ty = leaf(y);
    require_close((tx + ty).values<double>(), Array(x + y));
    require_close((tx - ty).values<double>(), Array(x - y));
    require_close((tx * ty).values<double>(), Array(x * y));
    require_close((tx / ty).values<double>(), Array(x / y));
    require_close((tx + 2.0).values<double>(), Array(x + 2.0));
    require_close((2.0 + tx).values<double>(), Array(2.0 + x));
    require_close((tx - 2.0).values<double>(), Array(x - 2.0));
    require_close((2.0 - tx).values<double>(), Array(2.0 - x));
    require_close((tx * 3.0).values<double>(), Array(x * 3.0));
    require_close((3.0 * tx).values<double>(), Array(3.0 * x));
    require_close((tx / 4.0).values<double>(), Array(x / 4.0));
    require_close((4.0 / tx).values<double>(), Array(4.0 / x));
    require_close((-tx).values<double>(), Array(-x));
    SECTION("scalar operands take the tensor's dtype") {
        Tensor f = Tensor::from_values(xt::xarray<float>{1.0F, 2.0F});
        Tensor r = 1.5 - f * 2.0;
        CHECK(r.dtype() == DType::Float32);
        require_close(r.values<float>(), xt::xarray<float>{-0.5F, -2.5F});
    }
    SECTION("gradient") {
        check_gradients(
            [](const Inputs& t) {
                return (2.0 - t[0] * 3.0) / t[1] + 1.0 / t[0] - (t[0] + 0.5) * (4.0 + t[1]) / 2.0;
            },
            {x, Array(y + 2.0)});
    }
}

// ---------------------------------------------------------------------------------------------
// unary

TEST_CASE("neg", "[ops]") {
    check_unary([](const Tensor& x) { return neg(x); }, [](const Array& x) { return Array(-x); },
                random_array({3, 4}, 41));
}

TEST_CASE("exp", "[ops]") {
    check_unary([](const Tensor& x) { return exp(x); },
                [](const Array& x) { return std_map(x, [](double v) { return std::exp(v); }); },
                random_array({3, 4}, 42, -2, 2));
    SECTION("hand-computed") {
        require_close(exp(Tensor::from_values({0.0, 1.0, -1.0}, DType::Float64)).values<double>(),
                      Array{1.0, std::numbers::e, 1.0 / std::numbers::e});
    }
}

TEST_CASE("log on positive inputs", "[ops]") {
    check_unary([](const Tensor& x) { return log(x); },
                [](const Array& x) { return std_map(x, [](double v) { return std::log(v); }); },
                random_array({3, 4}, 43, 0.2, 3.0));
    SECTION("hand-computed") {
        require_close(
            log(Tensor::from_values({1.0, std::numbers::e, 0.5}, DType::Float64)).values<double>(),
            Array{0.0, 1.0, -std::numbers::ln2});
    }
}

TEST_CASE("sqrt on positive inputs", "[ops]") {
    check_unary([](const Tensor& x) { return sqrt(x); },
                [](const Array& x) { return std_map(x, [](double v) { return std::sqrt(v); }); },
                random_array({3, 4}, 44, 0.2, 3.0));
    SECTION("hand-computed") {
        require_close(sqrt(Tensor::from_values({4.0, 0.25, 0.0}, DType::Float64)).values<double>(),
                      Array{2.0, 0.5, 0.0});
    }
}

TEST_CASE("square", "[ops]") {
    check_unary([](const Tensor& x) { return square(x); },
                [](const Array& x) { return Array(x * x); }, random_array({3, 4}, 45, -2, 2));
}

TEST_CASE("abs away from 0", "[ops]") {
    check_unary([](const Tensor& x) { return abs(x); },
                [](const Array& x) { return Array(xt::abs(x)); },
                away_from_zero(random_array({3, 4}, 46), 0.05));
}

TEST_CASE("sign is -1, 0 or 1 and passes no gradient", "[ops]") {
    check_unary([](const Tensor& x) { return sign(x); },
                [](const Array& x) { return Array(xt::sign(x)); },
                away_from_zero(random_array({3, 4}, 47), 0.05), false);
    SECTION("hand-computed, including 0") {
        Tensor s = sign(Tensor::from_values({-2.5, 0.0, 3.0, -0.0}, DType::Float64));
        require_close(s.values<double>(), Array{-1.0, 0.0, 1.0, 0.0});
    }
    SECTION("d(sign(x) * x)/dx is sign(x): sign itself contributes nothing") {
        check_gradients([](const Inputs& t) { return sign(t[0]) * t[0]; },
                        {away_from_zero(random_array({3, 4}, 48), 0.05)});
    }
}

TEST_CASE("tanh", "[ops]") {
    check_unary([](const Tensor& x) { return tanh(x); },
                [](const Array& x) { return std_map(x, [](double v) { return std::tanh(v); }); },
                random_array({3, 4}, 49, -3, 3));
    SECTION("saturates without overflow") {
        require_close(
            tanh(Tensor::from_values({-20.0, 0.5, 20.0}, DType::Float64)).values<double>(),
            Array{-1.0, 0.46211715726000974, 1.0});
        require_close(tanh(Tensor::from_values({-100.0, 100.0}, DType::Float32)).values<float>(),
                      xt::xarray<float>{-1.0F, 1.0F});
    }
}

TEST_CASE("sigmoid", "[ops]") {
    check_unary([](const Tensor& x) { return sigmoid(x); },
                [](const Array& x) {
                    return std_map(x, [](double v) { return 1.0 / (1.0 + std::exp(-v)); });
                },
                random_array({3, 4}, 50, -4, 4));
    SECTION("hand-computed and extreme inputs") {
        require_close(sigmoid(Tensor::from_values({0.0, 2.0, -100.0, 100.0}, DType::Float64))
                          .values<double>(),
                      Array{0.5, 0.8807970779778823, 3.7200759760208356e-44, 1.0});
        require_close(sigmoid(Tensor::from_values({-100.0, 100.0}, DType::Float32)).values<float>(),
                      xt::xarray<float>{0.0F, 1.0F});
    }
}

TEST_CASE("relu away from 0", "[ops]") {
    check_unary([](const Tensor& x) { return relu(x); },
                [](const Array& x) { return Array(xt::maximum(x, 0.0)); },
                away_from_zero(random_array({3, 4}, 51), 0.05));
}

TEST_CASE("leaky_relu away from 0", "[ops]") {
    SECTION("default slope 0.01") {
        check_unary([](const Tensor& x) { return leaky_relu(x); },
                    [](const Array& x) { return Array(xt::where(x > 0.0, x, 0.01 * x)); },
                    away_from_zero(random_array({3, 4}, 52), 0.05));
    }
    SECTION("slope 0.2") {
        check_unary([](const Tensor& x) { return leaky_relu(x, 0.2); },
                    [](const Array& x) { return Array(xt::where(x > 0.0, x, 0.2 * x)); },
                    away_from_zero(random_array({3, 4}, 53), 0.05));
    }
    SECTION("slopes that differ by less than 1e-6 do not share a compiled plan") {
        // The plan cache keys on op attributes; the slope must be part of the key exactly.
        auto run = [](double slope) {
            Tensor x = Tensor::from_values({-1.0, 2.0}, DType::Float64).set_requires_grad();
            Tensor y = leaky_relu(x, slope);
            const double value = y.values<double>()(0);
            sum(y).backward();
            return std::make_pair(value, x.grad().values<double>()(0));
        };
        for (const double slope : {1e-7, 3e-7, 0.2, 0.2000000001}) {
            INFO("slope " << slope);
            const auto [value, grad] = run(slope);
            CHECK(value == -slope);
            CHECK(grad == slope);
        }
    }
}

TEST_CASE("gelu is torch's tanh approximation", "[ops]") {
    check_unary([](const Tensor& x) { return gelu(x); }, gelu_reference,
                random_array({3, 4}, 54, -3, 3));
    SECTION("values of torch.nn.functional.gelu(x, approximate='tanh') in float64") {
        Tensor g =
            gelu(Tensor::from_values({-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0}, DType::Float64));
        require_close(g.values<double>(),
                      Array{-0.0036373920817729943, -0.15880800939172324, -0.15428599017485606, 0.0,
                            0.34571400982514394, 0.8411919906082768, 2.996362607918227});
    }
}

TEST_CASE("clip", "[ops]") {
    // On a grid shifted by 0.05, no element sits on the bounds -0.5 and 0.5.
    check_unary([](const Tensor& x) { return clip(x, -0.5, 0.5); },
                [](const Array& x) { return Array(xt::clip(x, -0.5, 0.5)); },
                on_grid({3, 4}, 55, 0.05));
    SECTION("hand-computed, including equal bounds") {
        Tensor x = Tensor::from_values({-3.0, -0.2, 0.0, 0.7, 9.0}, DType::Float64);
        require_close(clip(x, -1.0, 0.5).values<double>(), Array{-1.0, -0.2, 0.0, 0.5, 0.5});
        require_close(clip(x, 0.25, 0.25).values<double>(), Array{0.25, 0.25, 0.25, 0.25, 0.25});
    }
}

// ---------------------------------------------------------------------------------------------
// long rows: the tests above use rows shorter than one SIMD register

TEST_CASE("long rows run the SIMD body, broadcast loads and the scalar tail", "[ops]") {
    // 37 = several xsimd batches of float or double plus a remainder, whatever the vector width.
    struct Binary {
        const char* name;
        BinaryOp op;
        BinaryRef reference;
        double low_b; // b is drawn from [low_b, 2)
    };
    const std::vector<Binary> binaries = {
        {"add", [](const Tensor& a, const Tensor& b) { return a + b; },
         [](const Array& a, const Array& b) { return Array(a + b); }, -1.0},
        {"sub", [](const Tensor& a, const Tensor& b) { return a - b; },
         [](const Array& a, const Array& b) { return Array(a - b); }, -1.0},
        {"mul", [](const Tensor& a, const Tensor& b) { return a * b; },
         [](const Array& a, const Array& b) { return Array(a * b); }, -1.0},
        {"div", [](const Tensor& a, const Tensor& b) { return a / b; },
         [](const Array& a, const Array& b) { return Array(a / b); }, 0.5},
        {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }, std_pow, 0.5},
        {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
         [](const Array& a, const Array& b) { return Array(xt::maximum(a, b)); }, -1.0},
        {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
         [](const Array& a, const Array& b) { return Array(xt::minimum(a, b)); }, -1.0},
        {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); },
         [](const Array& a, const Array& b) { return mask(xt::less(a, b)); }, -1.0},
        {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); },
         [](const Array& a, const Array& b) { return mask(xt::greater_equal(a, b)); }, -1.0},
        {"where(a > 1, a, b)",
         [](const Tensor& a, const Tensor& b) { return where(a > 1.0, a, b); },
         [](const Array& a, const Array& b) { return Array(xt::where(a > 1.0, a, b)); }, -1.0},
    };
    const std::vector<std::pair<Shape, Shape>> shapes = {{{3, 37}, {3, 37}},
                                                         {{3, 37}, {37}},
                                                         {{37, 1}, {1, 37}},
                                                         {{}, {5, 37}},
                                                         {{2, 1, 37}, {3, 1}}};
    std::uint64_t seed = 500;
    for (const Binary& c : binaries) {
        for (const auto& [shape_a, shape_b] : shapes) {
            INFO(c.name << ": a " << to_string(shape_a) << ", b " << to_string(shape_b));
            const Array a = random_array(shape_a, ++seed, 0.5, 2.0);
            const Array b = random_array(shape_b, ++seed, c.low_b, 2.0);
            require_close(c.op(leaf(a), leaf(b)).values<double>(), c.reference(a, b), 1e-12);
            const xt::xarray<float> af = to_f32(a);
            const xt::xarray<float> bf = to_f32(b);
            require_close(c.op(Tensor::from_values(af), Tensor::from_values(bf)).values<float>(),
                          to_f32(c.reference(to_f64(af), to_f64(bf))), 1e-5);
        }
    }
    struct Unary {
        const char* name;
        UnaryOp op;
        UnaryRef reference;
    };
    const std::vector<Unary> unaries = {
        {"exp", [](const Tensor& x) { return exp(x); },
         [](const Array& x) { return std_map(x, [](double v) { return std::exp(v); }); }},
        {"log", [](const Tensor& x) { return log(x + 3.0); },
         [](const Array& x) { return std_map(x, [](double v) { return std::log(v + 3.0); }); }},
        {"sqrt", [](const Tensor& x) { return sqrt(x + 3.0); },
         [](const Array& x) { return std_map(x, [](double v) { return std::sqrt(v + 3.0); }); }},
        {"tanh", [](const Tensor& x) { return tanh(x); },
         [](const Array& x) { return std_map(x, [](double v) { return std::tanh(v); }); }},
        {"sigmoid", [](const Tensor& x) { return sigmoid(x); },
         [](const Array& x) {
             return std_map(x, [](double v) { return 1.0 / (1.0 + std::exp(-v)); });
         }},
        {"abs", [](const Tensor& x) { return abs(x); },
         [](const Array& x) { return Array(xt::abs(x)); }},
        {"sign", [](const Tensor& x) { return sign(x); },
         [](const Array& x) { return Array(xt::sign(x)); }},
        {"relu", [](const Tensor& x) { return relu(x); },
         [](const Array& x) { return Array(xt::maximum(x, 0.0)); }},
        {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.1); },
         [](const Array& x) { return Array(xt::where(x > 0.0, x, 0.1 * x)); }},
        {"neg", [](const Tensor& x) { return -x; }, [](const Array& x) { return Array(-x); }},
        {"gelu", [](const Tensor& x) { return gelu(x); }, gelu_reference},
    };
    const Array x = random_array({4, 37}, 600, -2.5, 2.5);
    const xt::xarray<float> xf = to_f32(x);
    for (const Unary& c : unaries) {
        INFO(c.name);
        require_close(c.op(leaf(x)).values<double>(), c.reference(x), 1e-12);
        require_close(c.op(Tensor::from_values(xf)).values<float>(),
                      to_f32(c.reference(to_f64(xf))), 1e-5);
        require_close(c.op(transpose(leaf(x))).values<double>(), c.reference(xt::transpose(x)),
                      1e-12);
    }
}

// ---------------------------------------------------------------------------------------------
// comparisons and where

TEST_CASE("comparisons give 0/1 masks in the operands' dtype", "[ops]") {
    // b broadcasts over the rows; equal elements in column 1 exercise the non-strict forms.
    const Array a = {{1.0, 2.0, 3.0}, {4.0, 2.0, 0.0}};
    const Array b = {2.0, 2.0, 1.0};
    struct Case {
        const char* name;
        BinaryOp op;
        Array hand;    // hand-computed
        Array xtensor; // the same through xtensor's comparison functions
    };
    const std::vector<Case> cases = {
        {"eq",
         [](const Tensor& l, const Tensor& r) { return eq(l, r); },
         {{0, 1, 0}, {0, 1, 0}},
         mask(xt::equal(a, b))},
        {"ne",
         [](const Tensor& l, const Tensor& r) { return ne(l, r); },
         {{1, 0, 1}, {1, 0, 1}},
         mask(xt::not_equal(a, b))},
        {"lt",
         [](const Tensor& l, const Tensor& r) { return lt(l, r); },
         {{1, 0, 0}, {0, 0, 1}},
         mask(xt::less(a, b))},
        {"le",
         [](const Tensor& l, const Tensor& r) { return le(l, r); },
         {{1, 1, 0}, {0, 1, 1}},
         mask(xt::less_equal(a, b))},
        {"gt",
         [](const Tensor& l, const Tensor& r) { return gt(l, r); },
         {{0, 0, 1}, {1, 0, 0}},
         mask(xt::greater(a, b))},
        {"ge",
         [](const Tensor& l, const Tensor& r) { return ge(l, r); },
         {{0, 1, 1}, {1, 1, 0}},
         mask(xt::greater_equal(a, b))},
        {"operator<",
         [](const Tensor& l, const Tensor& r) { return l < r; },
         {{1, 0, 0}, {0, 0, 1}},
         mask(xt::less(a, b))},
        {"operator<=",
         [](const Tensor& l, const Tensor& r) { return l <= r; },
         {{1, 1, 0}, {0, 1, 1}},
         mask(xt::less_equal(a, b))},
        {"operator>",
         [](const Tensor& l, const Tensor& r) { return l > r; },
         {{0, 0, 1}, {1, 0, 0}},
         mask(xt::greater(a, b))},
        {"operator>=",
         [](const Tensor& l, const Tensor& r) { return l >= r; },
         {{0, 1, 1}, {1, 1, 0}},
         mask(xt::greater_equal(a, b))},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        require_close(c.hand, c.xtensor);
        Tensor m = c.op(leaf(a), leaf(b));
        CHECK(m.dtype() == DType::Float64);
        require_close(m.values<double>(), c.hand);
        Tensor m32 = c.op(Tensor::from_values(to_f32(a)), Tensor::from_values(to_f32(b)));
        CHECK(m32.dtype() == DType::Float32);
        require_close(m32.values<float>(), to_f32(c.hand));
        // Transposed operands give the transposed mask.
        Tensor mt = c.op(transpose(leaf(a)), reshape(leaf(b), {3, 1}));
        require_close(mt.values<double>(), Array(xt::transpose(c.hand)));
    }
}

TEST_CASE("comparison operators against a scalar", "[ops]") {
    const Array a = {{1.0, 2.0, 3.0}, {4.0, 2.0, 0.0}};
    Tensor t = leaf(a);
    require_close((t < 2.0).values<double>(), Array{{1, 0, 0}, {0, 0, 1}});
    require_close((t <= 2.0).values<double>(), Array{{1, 1, 0}, {0, 1, 1}});
    require_close((t > 2.0).values<double>(), Array{{0, 0, 1}, {1, 0, 0}});
    require_close((t >= 2.0).values<double>(), Array{{0, 1, 1}, {1, 1, 0}});
    Tensor f = Tensor::from_values(to_f32(a));
    CHECK((f > 2.0).dtype() == DType::Float32);
    require_close((f > 2.0).values<float>(), xt::xarray<float>{{0, 0, 1}, {1, 0, 0}});
}

TEST_CASE("comparison masks carry no gradient", "[ops]") {
    // max-like selection written with masks: the gradient flows through the products only.
    check_gradients(
        [](const Inputs& t) {
            return t[0] * gt(t[0], t[1]) + t[1] * le(t[0], t[1]) * ne(t[0], t[1]);
        },
        {on_grid({3, 4}, 61, 0.0), on_grid({4}, 62, 0.05)});
}

TEST_CASE("where selects elementwise and broadcasts all three operands", "[ops]") {
    SECTION("float64 forward with broadcasting") {
        const Array cond = xt::reshape_view(Array{1.0, 0.0}, {2, 1}); // (2, 1)
        const Array a = random_array({2, 3}, 71);                     // (2, 3)
        const Array b = Array{-7.0};                                  // (1)
        Tensor w = where(leaf(cond), leaf(a), leaf(b));
        REQUIRE(w.shape() == Shape{2, 3});
        const Array expected = {{a(0, 0), a(0, 1), a(0, 2)}, {-7.0, -7.0, -7.0}};
        require_close(w.values<double>(), expected);
        require_close(w.values<double>(), Array(xt::where(xt::not_equal(cond, 0.0), a, b)));
    }
    SECTION("any nonzero condition counts as true; float32") {
        const xt::xarray<float> cond = {2.0F, -1.0F, 0.0F, 0.5F};
        Tensor w = where(Tensor::from_values(cond), Tensor::full({4}, 1.0, DType::Float32),
                         Tensor::scalar(-1.0, DType::Float32));
        require_close(w.values<float>(), xt::xarray<float>{1.0F, 1.0F, -1.0F, 1.0F});
    }
    SECTION("a condition computed from a transposed input") {
        const Array x = random_array({3, 2}, 72);
        Tensor xtr_t = transpose(leaf(x));
        Tensor w = where(xtr_t > 0.0, xtr_t, xtr_t * 0.5);
        const Array xtr = xt::transpose(x);
        require_close(w.values<double>(), Array(xt::where(xtr > 0.0, xtr, 0.5 * xtr)));
    }
    SECTION("gradient flows to the selected operand, summed over broadcast axes") {
        const Array cond = {{1.0, 0.0, 1.0}, {0.0, 0.0, 1.0}};
        check_gradients([&](const Inputs& t) { return where(leaf(cond), t[0], t[1]); },
                        {random_array({2, 3}, 73), random_array({3}, 74)});
        check_gradients([](const Inputs& t) { return where(t[0] > 0.0, t[0] * t[0], 0.1 * t[0]); },
                        {away_from_zero(random_array({3, 4}, 75), 0.05)});
    }
}

TEST_CASE("maximum, minimum, relu and neg follow PyTorch on NaN and zero, in the SIMD body "
          "and the scalar tail",
          "[ops]") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (const std::size_t n : {std::size_t{3}, std::size_t{64}}) {
        INFO("n = " << n);
        xt::xarray<float> x = xt::ones<float>({n});
        x(0) = nan;
        x(1) = -0.0F;
        x(n - 1) = 0.0F;
        const Tensor t = Tensor::from_values(x);
        const Tensor one = Tensor::scalar(1.0, DType::Float32);
        const xt::xarray<float> max_a = maximum(t, one).values<float>();
        const xt::xarray<float> max_b = maximum(one, t).values<float>();
        const xt::xarray<float> min_a = minimum(t, one).values<float>();
        const xt::xarray<float> min_b = minimum(one, t).values<float>();
        const xt::xarray<float> rel = relu(t).values<float>();
        const xt::xarray<float> negated = neg(t).values<float>();
        for (const auto* v : {&max_a, &max_b, &min_a, &min_b, &rel, &negated}) {
            CHECK(std::isnan((*v)(0))); // NaN in, NaN out (torch.maximum propagates NaN)
        }
        CHECK(max_a(n - 1) == 1.0F);
        CHECK(min_a(n - 1) == 0.0F);
        CHECK(rel(n - 1) == 0.0F);
        CHECK(std::signbit(negated(n - 1))); // -(+0) is -0
        CHECK_FALSE(std::signbit(negated(1)));
        CHECK(std::signbit(rel(1))); // relu(-0) is -0, as torch's max(0, x)
    }
}

TEST_CASE("ne and where treat NaN as PyTorch does, in the SIMD body and the scalar tail", "[ops]") {
    // torch.ne(nan, x) is true for every x, and where() takes a NaN condition as nonzero.
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (const std::size_t n : {std::size_t{3}, std::size_t{64}}) { // tail only; whole vectors
        INFO("n = " << n);
        xt::xarray<float> x = xt::ones<float>({n});
        x(0) = nan;
        x(n - 1) = nan;
        const Tensor t = Tensor::from_values(x);
        const xt::xarray<float> self = ne(t, t).values<float>();
        const xt::xarray<float> to_one = ne(t, Tensor::scalar(1.0, DType::Float32)).values<float>();
        const xt::xarray<float> picked =
            where(t, Tensor::full({n}, 5.0, DType::Float32), Tensor::scalar(-5.0, DType::Float32))
                .values<float>();
        for (std::size_t i = 0; i < n; ++i) {
            const bool is_nan = i == 0 || i == n - 1;
            CHECK(self(i) == (is_nan ? 1.0F : 0.0F));
            CHECK(to_one(i) == (is_nan ? 1.0F : 0.0F));
            CHECK(picked(i) == 5.0F);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// errors

TEST_CASE("elementwise ops name themselves and their operands in errors", "[ops]") {
    Tensor a = Tensor::zeros({3, 4}, DType::Float64);
    Tensor b = Tensor::zeros({3}, DType::Float64);
    SECTION("shapes that cannot be broadcast") {
        const std::string tail = " a (3, 4) and b (3): shapes cannot be broadcast (axis 1: 4 vs 3)";
        CHECK_THROWS_MATCHES(add(a, b), ShapeError, Catch::Matchers::Message("add:" + tail));
        CHECK_THROWS_MATCHES(a - b, ShapeError, Catch::Matchers::Message("sub:" + tail));
        CHECK_THROWS_MATCHES(a * b, ShapeError, Catch::Matchers::Message("mul:" + tail));
        CHECK_THROWS_MATCHES(div(a, b), ShapeError, Catch::Matchers::Message("div:" + tail));
        CHECK_THROWS_MATCHES(pow(a, b), ShapeError, Catch::Matchers::Message("pow:" + tail));
        CHECK_THROWS_MATCHES(maximum(a, b), ShapeError,
                             Catch::Matchers::Message("maximum:" + tail));
        CHECK_THROWS_MATCHES(minimum(a, b), ShapeError,
                             Catch::Matchers::Message("minimum:" + tail));
        CHECK_THROWS_MATCHES(a < b, ShapeError, Catch::Matchers::Message("compare:" + tail));
        CHECK_THROWS_MATCHES(eq(a, b), ShapeError, Catch::Matchers::Message("compare:" + tail));
        CHECK_THROWS_MATCHES(
            add(Tensor::zeros({2, 1, 3}), Tensor::zeros({4, 2})), ShapeError,
            Catch::Matchers::Message(
                "add: a (2, 1, 3) and b (4, 2): shapes cannot be broadcast (axis 2: 3 vs 2)"));
    }
    SECTION("mixed dtypes") {
        Tensor f = Tensor::zeros({2}, DType::Float32);
        Tensor d = Tensor::zeros({2}, DType::Float64);
        const std::string tail =
            " a (2) is float32 but b (2) is float64 (pynn does not promote dtypes; convert one "
            "explicitly)";
        CHECK_THROWS_MATCHES(f * d, DTypeError, Catch::Matchers::Message("mul:" + tail));
        CHECK_THROWS_MATCHES(maximum(f, d), DTypeError,
                             Catch::Matchers::Message("maximum:" + tail));
        CHECK_THROWS_MATCHES(gt(f, d), DTypeError, Catch::Matchers::Message("compare:" + tail));
    }
    SECTION("undefined tensors") {
        const std::string tail =
            " is an undefined Tensor (default-constructed, or a gradient that was never set)";
        CHECK_THROWS_MATCHES(neg(Tensor()), ValueError, Catch::Matchers::Message("neg: x" + tail));
        CHECK_THROWS_MATCHES(exp(Tensor()), ValueError, Catch::Matchers::Message("exp: x" + tail));
        CHECK_THROWS_MATCHES(add(a, Tensor()), ValueError,
                             Catch::Matchers::Message("add: b" + tail));
        CHECK_THROWS_MATCHES(pow(Tensor(), 2.0), ValueError,
                             Catch::Matchers::Message("pow: base" + tail));
        CHECK_THROWS_MATCHES(gelu(Tensor()), ValueError,
                             Catch::Matchers::Message("gelu: x" + tail));
    }
    SECTION("clip with low above high") {
        CHECK_THROWS_MATCHES(clip(a, 1.0, -1.5), ValueError,
                             Catch::Matchers::Message("clip: low 1 is above high -1.5"));
    }
    SECTION("where names the operands that clash") {
        Tensor c = Tensor::ones({2, 3}, DType::Float64);
        CHECK_THROWS_MATCHES(
            where(c, Tensor::zeros({4}, DType::Float64), Tensor::zeros({3}, DType::Float64)),
            ShapeError,
            Catch::Matchers::Message(
                "where: cond (2, 3) and a (4): shapes cannot be broadcast (axis 1: 3 vs 4)"));
        CHECK_THROWS_MATCHES(
            where(c, Tensor::zeros({3}, DType::Float64), Tensor::zeros({2}, DType::Float64)),
            ShapeError,
            Catch::Matchers::Message(
                "where: cond (2, 3) and b (2): shapes cannot be broadcast (axis 1: 3 vs 2)"));
        CHECK_THROWS_MATCHES(
            where(Tensor::ones({1}, DType::Float64), Tensor::zeros({2}, DType::Float64),
                  Tensor::zeros({3}, DType::Float64)),
            ShapeError,
            Catch::Matchers::Message(
                "where: a (2) and b (3): shapes cannot be broadcast (axis 0: 2 vs 3)"));
        CHECK_THROWS_MATCHES(
            where(Tensor::ones({2}, DType::Float32), Tensor::zeros({2}, DType::Float64),
                  Tensor::zeros({2}, DType::Float64)),
            DTypeError,
            Catch::Matchers::Message("where: cond (2) is float32 but a (2) is float64 (pynn does "
                                     "not promote dtypes; convert one explicitly)"));
    }
}
