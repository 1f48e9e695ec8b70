// Reductions of math.hpp: sum and max (primitives), mean and min (composites) over all axes, one
// axis, several axes and negative axes, with and without keepdims, in float64 and float32
// against xtensor's reducers; their gradients against central finite differences; argmax with
// ties; reductions of transposed and sliced inputs; and the exact text of every error.
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "support/gradcheck.hpp"

using namespace pynn;
using pynn::testing::check_gradients;
using pynn::testing::random_array;
using pynn::testing::require_close;
using namespace pynn::testing::shorthands;

namespace {


enum class Kind { Sum, Mean, Max, Min };

const char* kind_name(Kind k) {
    switch (k) {
    case Kind::Sum: return "sum";
    case Kind::Mean: return "mean";
    case Kind::Max: return "max";
    case Kind::Min: return "min";
    }
    return "?";
}

Tensor reduce(Kind k, const Tensor& x, const std::vector<int>& axes, bool keepdims) {
    switch (k) {
    case Kind::Sum: return sum(x, axes, keepdims);
    case Kind::Mean: return mean(x, axes, keepdims);
    case Kind::Max: return max(x, axes, keepdims);
    case Kind::Min: return min(x, axes, keepdims);
    }
    return {};
}

// xtensor's reducer over `axes` (non-negative), reshaped to keep size-1 axes when asked.
Array reference(Kind k, const Array& x, const std::vector<std::size_t>& axes, bool keepdims) {
    Array r;
    switch (k) {
    case Kind::Sum: r = xt::sum(x, axes); break;
    case Kind::Mean: r = xt::mean(x, axes); break;
    case Kind::Max: r = xt::amax(x, axes); break;
    case Kind::Min: r = xt::amin(x, axes); break;
    }
    if (keepdims) {
        Shape kept(x.shape().begin(), x.shape().end());
        for (std::size_t a : axes) {
            kept[a] = 1;
        }
        r.reshape(kept);
    }
    return r;
}

struct AxesCase {
    std::vector<int> axes;               // as the user writes them
    std::vector<std::size_t> normalized; // what they mean for a 3-D input
};

// For an input of shape (2, 3, 4).
const std::vector<AxesCase> kAxesCases = {
    {{}, {0, 1, 2}},  {{0}, {0}},       {{1}, {1}},         {{2}, {2}},
    {{0, 2}, {0, 2}}, {{2, 0}, {0, 2}}, {{1, 2}, {1, 2}},   {{0, 1, 2}, {0, 1, 2}},
    {{-1}, {2}},      {{-3}, {0}},      {{-3, -1}, {0, 2}}, {{1, -1}, {1, 2}},
};

std::string describe_case(Kind k, const AxesCase& c, bool keepdims) {
    std::string s = std::string(kind_name(k)) + " axes [";
    for (std::size_t i = 0; i < c.axes.size(); ++i) {
        s += (i ? ", " : "") + std::to_string(c.axes[i]);
    }
    return s + "]" + (keepdims ? " keepdims" : "");
}

void check_reduction(Kind k) {
    const Array x = random_array({2, 3, 4}, 5);
    const Array x_small = random_array({2, 3, 2}, 6); // for gradients with 3-D axes of any size
    for (const AxesCase& c : kAxesCases) {
        for (const bool keepdims : {false, true}) {
            INFO(describe_case(k, c, keepdims));
            const Array expected = reference(k, x, c.normalized, keepdims);
            Tensor out = reduce(k, leaf(x), c.axes, keepdims);
            REQUIRE(out.shape() == Shape(expected.shape().begin(), expected.shape().end()));
            require_close(out.values<double>(), expected, 1e-12);

            const xt::xarray<float> xf = to_f32(x);
            Tensor out32 = reduce(k, Tensor::from_values(xf), c.axes, keepdims);
            CHECK(out32.dtype() == DType::Float32);
            require_close(out32.values<float>(),
                          to_f32(reference(k, to_f64(xf), c.normalized, keepdims)), 1e-5);

            check_gradients([&](const Inputs& t) { return reduce(k, t[0], c.axes, keepdims); },
                            {x_small});
        }
    }
}

// First index of the largest value along `axis`, by a plain loop over rows of y with that axis
// moved last.
Array argmax_reference(const Array& y, std::size_t axis) {
    std::vector<std::size_t> perm;
    for (std::size_t i = 0; i < y.dimension(); ++i) {
        if (i != axis) {
            perm.push_back(i);
        }
    }
    perm.push_back(axis);
    const Array moved = xt::transpose(y, perm);
    const std::size_t len = y.shape(axis);
    Array out = xt::zeros<double>(Shape(moved.shape().begin(), moved.shape().end() - 1));
    for (std::size_t r = 0; r < out.size(); ++r) {
        std::size_t best = 0;
        for (std::size_t j = 1; j < len; ++j) {
            if (moved.flat(r * len + j) > moved.flat(r * len + best)) {
                best = j;
            }
        }
        out.flat(r) = static_cast<double>(best);
    }
    return out;
}

} // namespace

TEST_CASE("sum over all, single, several and negative axes, with and without keepdims", "[ops]") {
    check_reduction(Kind::Sum);
}

TEST_CASE("mean over all, single, several and negative axes, with and without keepdims", "[ops]") {
    check_reduction(Kind::Mean);
}

TEST_CASE("max over all, single, several and negative axes, with and without keepdims", "[ops]") {
    check_reduction(Kind::Max); // random values are distinct: max is differentiable there
}

TEST_CASE("min over all, single, several and negative axes, with and without keepdims", "[ops]") {
    check_reduction(Kind::Min);
}

TEST_CASE("reductions by hand", "[ops]") {
    const Array x = {{1.0, -2.0, 3.0}, {4.0, 5.0, -6.0}};
    Tensor t = leaf(x);
    CHECK(sum(t).item() == 5.0);
    CHECK(sum(t).shape() == Shape{});
    require_close(sum(t, {0}).values<double>(), Array{5.0, 3.0, -3.0});
    require_close(sum(t, {1}, true).values<double>(), xt::reshape_view(Array{2.0, 3.0}, {2, 1}));
    CHECK(sum(t, {}, true).shape() == Shape{1, 1});
    CHECK(mean(t).item() == Approx(5.0 / 6.0));
    require_close(mean(t, {-1}).values<double>(), Array{2.0 / 3.0, 1.0});
    CHECK(max(t).item() == 5.0);
    require_close(max(t, {0}).values<double>(), Array{4.0, 5.0, 3.0});
    CHECK(min(t).item() == -6.0);
    require_close(min(t, {1}).values<double>(), Array{-2.0, -6.0});
    SECTION("the member forms reduce over everything") {
        CHECK(t.sum().item() == 5.0);
        CHECK(t.mean().item() == Approx(5.0 / 6.0));
    }
    SECTION("a 0-d input reduces to itself") {
        Tensor s = Tensor::scalar(-2.5, DType::Float64);
        CHECK(sum(s).item() == -2.5);
        CHECK(mean(s).item() == -2.5);
        CHECK(max(s).item() == -2.5);
        CHECK(min(s).item() == -2.5);
        CHECK(sum(s).shape() == Shape{});
    }
    SECTION("float32") {
        Tensor f = Tensor::from_values(to_f32(x));
        CHECK(sum(f).dtype() == DType::Float32);
        require_close(max(f, {1}).values<float>(), xt::xarray<float>{3.0F, 5.0F});
        require_close(mean(f, {0}, true).values<float>(), xt::xarray<float>{{2.5F, 1.5F, -1.5F}});
    }
}

TEST_CASE("long rows exercise the SIMD body and the scalar tail", "[ops]") {
    // 67 = several SIMD widths plus a remainder, for float32 and float64 alike.
    const Array x = random_array({5, 67}, 9);
    const xt::xarray<float> xf = to_f32(x);
    for (const int axis : {0, 1}) {
        for (const bool keepdims : {false, true}) {
            INFO("axis " << axis << (keepdims ? " keepdims" : ""));
            const std::vector<std::size_t> ax = {static_cast<std::size_t>(axis)};
            for (const Kind k : {Kind::Sum, Kind::Max, Kind::Mean, Kind::Min}) {
                INFO(kind_name(k));
                require_close(reduce(k, leaf(x), {axis}, keepdims).values<double>(),
                              reference(k, x, ax, keepdims), 1e-12);
                require_close(reduce(k, Tensor::from_values(xf), {axis}, keepdims).values<float>(),
                              to_f32(reference(k, to_f64(xf), ax, keepdims)), 1e-5);
            }
        }
    }
    CHECK(sum(leaf(x)).item() == Approx(xt::sum(x)()).epsilon(1e-12));
    CHECK(sum(Tensor::from_values(xf)).item() == Approx(xt::sum(to_f64(xf))()).epsilon(1e-5));
}

TEST_CASE("max and min split the gradient evenly between tied elements", "[ops]") {
    Tensor x =
        Tensor::from_values({1.0, 3.0, 3.0, -2.0, -2.0, 0.0}, DType::Float64).set_requires_grad();
    sum(max(x)).backward();
    require_close(x.grad().values<double>(), Array{0.0, 0.5, 0.5, 0.0, 0.0, 0.0});
    x.zero_grad();
    min(x).backward();
    require_close(x.grad().values<double>(), Array{0.0, 0.0, 0.0, 0.5, 0.5, 0.0});
    SECTION("per row, with keepdims") {
        Tensor m = Tensor::from_values(Array{{2.0, 2.0, 1.0}, {0.0, 4.0, 4.0}}).set_requires_grad();
        (max(m, {1}, true) * Tensor::from_values(Array(xt::reshape_view(Array{1.0, 10.0}, {2, 1}))))
            .sum()
            .backward();
        require_close(m.grad().values<double>(), Array{{0.5, 0.5, 0.0}, {0.0, 5.0, 5.0}});
    }
}

TEST_CASE("reductions of non-contiguous inputs", "[ops]") {
    const Array x = random_array({3, 4}, 11);
    SECTION("sum of a transpose over its first axis") {
        require_close(sum(transpose(leaf(x)), {0}).values<double>(), Array(xt::sum(x, {1})), 1e-12);
        check_gradients([](const Inputs& t) { return sum(transpose(t[0]), {0}); }, {x});
    }
    SECTION("max and mean of a strided slice") {
        const Array strided = xt::view(x, xt::all(), xt::range(0, 4, 2));
        require_close(max(slice(leaf(x), 1, 0, 4, 2), {0}, true).values<double>(),
                      reference(Kind::Max, strided, {0}, true), 1e-12);
        require_close(mean(slice(leaf(x), 1, 0, 4, 2), {-1}).values<double>(),
                      Array(xt::mean(strided, {1})), 1e-12);
        check_gradients([](const Inputs& t) { return max(slice(t[0], 1, 0, 4, 2), {0}, true); },
                        {x});
        check_gradients([](const Inputs& t) { return mean(slice(t[0], 1, 1, 4, 2), {-1}); }, {x});
    }
    SECTION("min of a permuted 3-D input over two axes") {
        const Array y = random_array({2, 3, 4}, 12);
        const Array expected = xt::amin(xt::transpose(y, {2, 0, 1}), {0, 2});
        require_close(min(permute(leaf(y), {2, 0, 1}), {0, 2}).values<double>(), expected, 1e-12);
        check_gradients([](const Inputs& t) { return min(permute(t[0], {2, 0, 1}), {0, 2}); }, {y});
    }
}

TEST_CASE("argmax returns the first index of the largest value", "[ops]") {
    // Row 0 has a tie (first one wins), row 1 its maximum last, row 2 all equal.
    const Array x = {{1.0, 7.0, 7.0, 0.0}, {-3.0, -2.0, -5.0, 4.0}, {2.0, 2.0, 2.0, 2.0}};
    SECTION("along the last axis, as -1 and as 1") {
        require_close(argmax(leaf(x), 1).values<double>(), Array{1.0, 3.0, 0.0});
        require_close(argmax(leaf(x), -1).values<double>(), Array{1.0, 3.0, 0.0});
    }
    SECTION("along axis 0, with keepdims") {
        Tensor a = argmax(leaf(x), 0, true);
        REQUIRE(a.shape() == Shape{1, 4});
        require_close(a.values<double>(), Array{{2.0, 0.0, 0.0, 1.0}});
    }
    SECTION("float32 gives float32 indices") {
        Tensor a = argmax(Tensor::from_values(to_f32(x)), 1, true);
        CHECK(a.dtype() == DType::Float32);
        REQUIRE(a.shape() == Shape{3, 1});
        require_close(a.values<float>(), xt::xarray<float>(xt::reshape_view(
                                             xt::xarray<float>{1.0F, 3.0F, 0.0F}, {3, 1})));
    }
    SECTION("any axis of a 3-D input, against a plain loop") {
        const Array y = random_array({2, 3, 4}, 13);
        for (int axis = -3; axis < 3; ++axis) {
            INFO("axis " << axis);
            const auto ax = static_cast<std::ptrdiff_t>(axis < 0 ? axis + 3 : axis);
            const Array expected = argmax_reference(y, static_cast<std::size_t>(ax));
            require_close(argmax(leaf(y), axis).values<double>(), expected);
        }
    }
    SECTION("of a transposed input") {
        require_close(argmax(transpose(leaf(x)), 0).values<double>(), Array{1.0, 3.0, 0.0});
    }
    SECTION("passes no gradient") {
        check_gradients([](const Inputs& t) { return argmax(t[0], 1) * sum(t[0], {1}); },
                        {random_array({3, 4}, 14)});
    }
}

TEST_CASE("reductions name themselves in errors", "[ops]") {
    Tensor x = Tensor::zeros({2, 3, 4}, DType::Float64);
    SECTION("axis out of range") {
        CHECK_THROWS_MATCHES(
            sum(x, {3}), ValueError,
            Catch::Matchers::Message("sum: axis 3 is out of range for x (2, 3, 4) (3 axes)"));
        CHECK_THROWS_MATCHES(
            mean(x, {0, -4}), ValueError,
            Catch::Matchers::Message("mean: axis -4 is out of range for x (2, 3, 4) (3 axes)"));
        CHECK_THROWS_MATCHES(
            max(x, {7}), ValueError,
            Catch::Matchers::Message("max: axis 7 is out of range for x (2, 3, 4) (3 axes)"));
        CHECK_THROWS_MATCHES(
            min(x, {5}), ValueError,
            Catch::Matchers::Message("min: axis 5 is out of range for x (2, 3, 4) (3 axes)"));
        CHECK_THROWS_MATCHES(
            argmax(x, 3), ValueError,
            Catch::Matchers::Message("argmax: axis 3 is out of range for x (2, 3, 4) (3 axes)"));
        CHECK_THROWS_MATCHES(
            sum(Tensor::scalar(1.0), {0}), ValueError,
            Catch::Matchers::Message("sum: axis 0 is out of range for x () (0 axes)"));
    }
    SECTION("repeated axes") {
        CHECK_THROWS_MATCHES(
            sum(x, {0, -3}), ValueError,
            Catch::Matchers::Message("sum: axes [0, -3] repeat an axis of x (2, 3, 4)"));
        CHECK_THROWS_MATCHES(
            max(x, {1, 1}), ValueError,
            Catch::Matchers::Message("max: axes [1, 1] repeat an axis of x (2, 3, 4)"));
        CHECK_THROWS_MATCHES(
            min(x, {2, -1}), ValueError,
            Catch::Matchers::Message("min: axes [2, -1] repeat an axis of x (2, 3, 4)"));
        CHECK_THROWS_MATCHES(
            mean(x, {-2, 1}), ValueError,
            Catch::Matchers::Message("mean: axes [-2, 1] repeat an axis of x (2, 3, 4)"));
    }
    SECTION("empty inputs to max, min and argmax") {
        Tensor e = Tensor::zeros({0, 3});
        CHECK_THROWS_MATCHES(
            max(e), ValueError,
            Catch::Matchers::Message("max: x (0, 3) is empty: the maximum of no values is "
                                     "undefined"));
        CHECK_THROWS_MATCHES(
            min(e, {0}), ValueError,
            Catch::Matchers::Message("min: x (0, 3) is empty: the minimum of no values is "
                                     "undefined"));
        CHECK_THROWS_MATCHES(argmax(e, 0), ValueError,
                             Catch::Matchers::Message("argmax: x (0, 3) has size 0 on axis 0"));
    }
    SECTION("argmax of a 0-d tensor") {
        CHECK_THROWS_MATCHES(
            argmax(Tensor::scalar(1.0), 0), ValueError,
            Catch::Matchers::Message("argmax: x () is 0-d: there is no axis to search"));
    }
    SECTION("undefined input") {
        CHECK_THROWS_MATCHES(
            sum(Tensor()), ValueError,
            Catch::Matchers::Message("sum: x is an undefined Tensor (default-constructed, or a "
                                     "gradient that was never set)"));
    }
}
