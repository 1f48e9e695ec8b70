// Data-movement ops and the composites built on them: reshape, flatten, transpose, permute,
// broadcast_to, slice (Python bounds on any axis), concat, stack, one_hot, softmax and
// log_softmax (including logits of 1000), against xtensor or hand-computed values; gradients in
// float64 against central finite differences, also through chains of non-contiguous views; and
// the exact text of every error.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xbuilder.hpp>
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


Shape shape_of(const Array& a) { return Shape(a.shape().begin(), a.shape().end()); }

Array reshaped(const Array& a, const Shape& shape) {
    Array r = a;
    r.reshape(shape);
    return r;
}

// The elements of x at `indices` along `axis`, by an explicit index walk.
Array take(const Array& x, std::size_t axis, const std::vector<std::size_t>& indices) {
    Shape out_shape = shape_of(x);
    out_shape[axis] = indices.size();
    Array out = xt::zeros<double>(out_shape);
    std::size_t inner = 1;
    for (std::size_t i = axis + 1; i < x.dimension(); ++i) {
        inner *= x.shape(i);
    }
    const std::size_t len = x.shape(axis);
    for (std::size_t f = 0; f < out.size(); ++f) {
        const std::size_t outer = f / (inner * indices.size());
        const std::size_t j = (f / inner) % indices.size();
        const std::size_t in = f % inner;
        out.flat(f) = x.flat((outer * len + indices[j]) * inner + in);
    }
    return out;
}

// Equal-shaped parts joined along a new axis at `axis`, by an explicit index walk.
Array stack_reference(const std::vector<Array>& parts, std::size_t axis) {
    const Shape part_shape = shape_of(parts.front());
    Shape out_shape = part_shape;
    out_shape.insert(out_shape.begin() + static_cast<std::ptrdiff_t>(axis), parts.size());
    std::size_t inner = 1;
    for (std::size_t i = axis; i < part_shape.size(); ++i) {
        inner *= part_shape[i];
    }
    Array out = xt::zeros<double>(out_shape);
    for (std::size_t f = 0; f < out.size(); ++f) {
        const std::size_t outer = f / (inner * parts.size());
        const std::size_t j = (f / inner) % parts.size();
        out.flat(f) = parts[j].flat(outer * inner + f % inner);
    }
    return out;
}

// Moves `axis` to the end, applies `row_fn` to every row, and moves it back.
template <class RowFn>
Array along_axis(const Array& x, std::size_t axis, RowFn row_fn) {
    std::vector<std::size_t> perm, inverse(x.dimension());
    for (std::size_t i = 0; i < x.dimension(); ++i) {
        if (i != axis) {
            perm.push_back(i);
        }
    }
    perm.push_back(axis);
    for (std::size_t i = 0; i < perm.size(); ++i) {
        inverse[perm[i]] = i;
    }
    Array moved = xt::transpose(x, perm);
    const std::size_t len = x.shape(axis);
    for (std::size_t r = 0; r * len < moved.size(); ++r) {
        std::vector<double> row(len);
        for (std::size_t j = 0; j < len; ++j) {
            row[j] = moved.flat(r * len + j);
        }
        row_fn(row);
        for (std::size_t j = 0; j < len; ++j) {
            moved.flat(r * len + j) = row[j];
        }
    }
    return xt::transpose(moved, inverse);
}

// Softmax of a row the textbook way (max subtracted), with std::exp.
void softmax_row(std::vector<double>& row) {
    double m = row[0];
    for (double v : row) {
        m = std::max(m, v);
    }
    double total = 0;
    for (double& v : row) {
        v = std::exp(v - m);
        total += v;
    }
    for (double& v : row) {
        v /= total;
    }
}

void log_softmax_row(std::vector<double>& row) {
    double m = row[0];
    for (double v : row) {
        m = std::max(m, v);
    }
    double total = 0;
    for (double v : row) {
        total += std::exp(v - m);
    }
    for (double& v : row) {
        v = v - m - std::log(total);
    }
}

Array exp_reference(const Array& x) {
    Array out = x;
    for (double& v : out) {
        v = std::exp(v);
    }
    return out;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// reshape, flatten

TEST_CASE("reshape keeps row-major order", "[ops]") {
    const Array x = random_array({2, 3, 4}, 1);
    for (const Shape& shape : std::vector<Shape>{{6, 4}, {24}, {4, 3, 2}, {2, 12, 1}, {1, 24}}) {
        INFO("to " << to_string(shape));
        Tensor r = reshape(leaf(x), shape);
        REQUIRE(r.shape() == shape);
        require_close(r.values<double>(), reshaped(x, shape));
        require_close(reshape(Tensor::from_values(to_f32(x)), shape).values<float>(),
                      to_f32(reshaped(x, shape)));
        check_gradients([&](const Inputs& t) { return reshape(t[0], shape) * 2.0; }, {x});
    }
    SECTION("the member form") {
        require_close(leaf(x).reshape({4, 6}).values<double>(), reshaped(x, {4, 6}));
    }
    SECTION("a transposed input is reshaped in its new (transposed) order") {
        const Array x_t = xt::transpose(x);
        require_close(reshape(transpose(leaf(x)), {12, 2}).values<double>(),
                      reshaped(x_t, {12, 2}));
        check_gradients([](const Inputs& t) { return reshape(transpose(t[0]), {12, 2}); }, {x});
    }
    SECTION("0-d to 1-element and back") {
        Tensor s = Tensor::scalar(3.5, DType::Float64);
        CHECK(reshape(s, {1, 1}).shape() == Shape{1, 1});
        CHECK(reshape(reshape(s, {1}), {}).item() == 3.5);
    }
}

TEST_CASE("flatten keeps the axes before start_axis", "[ops]") {
    const Array x = random_array({2, 3, 4}, 2);
    struct Case {
        int start;
        Shape shape;
    };
    for (const Case& c : std::vector<Case>{
             {1, {2, 12}}, {0, {24}}, {2, {2, 3, 4}}, {-1, {2, 3, 4}}, {-2, {2, 12}}, {-3, {24}}}) {
        INFO("start_axis " << c.start);
        Tensor f = flatten(leaf(x), c.start);
        REQUIRE(f.shape() == c.shape);
        require_close(f.values<double>(), reshaped(x, c.shape));
    }
    CHECK(flatten(leaf(x)).shape() == Shape{2, 12});
    CHECK(flatten(Tensor::scalar(1.0)).shape() == Shape{1});
    SECTION("of a permuted input, with gradient") {
        const Array p = xt::transpose(x, {1, 0, 2});
        require_close(flatten(permute(leaf(x), {1, 0, 2})).values<double>(), reshaped(p, {3, 8}));
        check_gradients([](const Inputs& t) { return flatten(permute(t[0], {1, 0, 2})); }, {x});
    }
}

// ---------------------------------------------------------------------------------------------
// transpose, permute, broadcast_to

TEST_CASE("transpose reverses all axes or swaps two", "[ops]") {
    const Array x = random_array({2, 3, 4}, 3);
    SECTION("all axes") {
        Tensor r = transpose(leaf(x));
        REQUIRE(r.shape() == Shape{4, 3, 2});
        require_close(r.values<double>(), Array(xt::transpose(x)));
        require_close(leaf(x).transpose().values<double>(), Array(xt::transpose(x)));
        require_close(transpose(Tensor::from_values(to_f32(x))).values<float>(),
                      to_f32(xt::transpose(x)));
        check_gradients([](const Inputs& t) { return transpose(t[0]); }, {x});
    }
    SECTION("the 2-D matrix transpose, by hand") {
        Tensor m = Tensor::from_values(Array{{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}});
        require_close(m.transpose().values<double>(), Array{{1.0, 4.0}, {2.0, 5.0}, {3.0, 6.0}});
    }
    SECTION("two axes, including negative ones and an axis with itself") {
        require_close(transpose(leaf(x), 0, 2).values<double>(),
                      Array(xt::transpose(x, {2, 1, 0})));
        require_close(leaf(x).transpose(-1, 1).values<double>(),
                      Array(xt::transpose(x, {0, 2, 1})));
        require_close(transpose(leaf(x), 1, 1).values<double>(), x);
        check_gradients([](const Inputs& t) { return transpose(t[0], -1, 0); }, {x});
    }
    SECTION("errors") {
        CHECK_THROWS_MATCHES(
            transpose(leaf(x), 0, 3), ValueError,
            Catch::Matchers::Message("transpose: axis 3 is out of range for x (2, 3, 4) (3 axes)"));
        CHECK_THROWS_MATCHES(
            transpose(leaf(x), -4, 0), ValueError,
            Catch::Matchers::Message("transpose: axis -4 is out of range for x (2, 3, 4) (3 "
                                     "axes)"));
    }
}

TEST_CASE("permute reorders axes", "[ops]") {
    const Array x = random_array({2, 3, 4}, 4);
    SECTION("forward and gradient") {
        for (const std::vector<int>& perm :
             std::vector<std::vector<int>>{{2, 0, 1}, {1, 2, 0}, {0, 1, 2}, {-1, 0, -2}}) {
            std::vector<std::size_t> p;
            for (int a : perm) {
                p.push_back(static_cast<std::size_t>(a < 0 ? a + 3 : a));
            }
            INFO("perm " << p[0] << " " << p[1] << " " << p[2]);
            require_close(permute(leaf(x), perm).values<double>(), Array(xt::transpose(x, p)));
            require_close(leaf(x).permute(perm).values<double>(), Array(xt::transpose(x, p)));
            require_close(permute(Tensor::from_values(to_f32(x)), perm).values<float>(),
                          to_f32(xt::transpose(x, p)));
            check_gradients([&](const Inputs& t) { return permute(t[0], perm); }, {x});
        }
    }
    SECTION("errors") {
        CHECK_THROWS_MATCHES(permute(leaf(x), {0, 1}), ShapeError,
                             Catch::Matchers::Message("permute: x (2, 3, 4) has 3 axes but the "
                                                      "permutation [0, 1] has 2"));
        CHECK_THROWS_MATCHES(permute(leaf(x), {0, -3, 1}), ValueError,
                             Catch::Matchers::Message("permute: [0, -3, 1] is not a permutation "
                                                      "of the axes of x (2, 3, 4)"));
        CHECK_THROWS_MATCHES(
            permute(leaf(x), {0, 3, 1}), ValueError,
            Catch::Matchers::Message("permute: axis 3 is out of range for x (2, 3, 4) (3 axes)"));
    }
}

TEST_CASE("broadcast_to repeats size-1 and missing leading axes", "[ops]") {
    struct Case {
        Shape from, to;
    };
    for (const Case& c : std::vector<Case>{{{3, 1}, {2, 3, 4}},
                                           {{4}, {3, 4}},
                                           {{}, {2, 2}},
                                           {{1, 4}, {1, 4}},
                                           {{2, 1, 3}, {2, 5, 3}}}) {
        INFO(to_string(c.from) << " to " << to_string(c.to));
        const Array x = random_array(c.from, 5);
        Tensor b = broadcast_to(leaf(x), c.to);
        REQUIRE(b.shape() == c.to);
        require_close(b.values<double>(), Array(xt::broadcast(x, c.to)));
        require_close(broadcast_to(Tensor::from_values(to_f32(x)), c.to).values<float>(),
                      to_f32(xt::broadcast(x, c.to)));
        check_gradients([&](const Inputs& t) { return broadcast_to(t[0], c.to); }, {x});
    }
    SECTION("of a transposed input") {
        const Array x = random_array({1, 3}, 6);
        require_close(broadcast_to(transpose(leaf(x)), {2, 3, 4}).values<double>(),
                      Array(xt::broadcast(xt::transpose(x), Shape{2, 3, 4})));
        check_gradients(
            [](const Inputs& t) {
                return broadcast_to(transpose(t[0]), {2, 3, 4});
            },
            {x});
    }
    SECTION("errors") {
        CHECK_THROWS_MATCHES(broadcast_to(Tensor::zeros({2, 3}), {3, 3}), ShapeError,
                             Catch::Matchers::Message("broadcast_to: x (2, 3) cannot be "
                                                      "broadcast to (3, 3)"));
        CHECK_THROWS_MATCHES(broadcast_to(Tensor::zeros({2, 3}), {3}), ShapeError,
                             Catch::Matchers::Message("broadcast_to: x (2, 3) cannot be "
                                                      "broadcast to (3)"));
    }
}

TEST_CASE("reshape and flatten errors", "[ops]") {
    CHECK_THROWS_MATCHES(reshape(Tensor::zeros({2, 3}), {4}), ShapeError,
                         Catch::Matchers::Message("reshape: x (2, 3) has 6 elements, cannot view "
                                                  "it as (4) (4 elements)"));
    CHECK_THROWS_MATCHES(Tensor::zeros({2, 3}).reshape({2, 2, 2}), ShapeError,
                         Catch::Matchers::Message("reshape: x (2, 3) has 6 elements, cannot view "
                                                  "it as (2, 2, 2) (8 elements)"));
    CHECK_THROWS_MATCHES(
        flatten(Tensor::zeros({2, 3, 4}), 3), ValueError,
        Catch::Matchers::Message("flatten: axis 3 is out of range for x (2, 3, 4) (3 axes)"));
}

// ---------------------------------------------------------------------------------------------
// slice

TEST_CASE("slice follows Python's x[begin:end:step] on any axis", "[ops]") {
    struct Case {
        std::int64_t begin, end, step;
        std::vector<std::size_t> indices; // of an axis of length 5, worked out by hand
    };
    const std::vector<Case> cases = {
        {1, 3, 1, {1, 2}},    {-3, -1, 1, {2, 3}}, {-100, 100, 1, {0, 1, 2, 3, 4}},
        {0, 5, 2, {0, 2, 4}}, {1, 100, 3, {1, 4}}, {4, 5, 10, {4}},
        {-2, 5, 1, {3, 4}},   {-7, 2, 1, {0, 1}},  {0, -1, 2, {0, 2}},
        {3, 1, 1, {}},        {5, 10, 1, {}},      {2, 2, 1, {}},
    };
    const Array cube = random_array({5, 5, 5}, 7);
    const Array tall = random_array({5, 3}, 8);
    const Array wide = random_array({2, 5}, 9);
    for (const Case& c : cases) {
        INFO("[" << c.begin << ":" << c.end << ":" << c.step << "]");
        for (int axis = -3; axis < 3; ++axis) {
            INFO("axis " << axis);
            const auto ax = static_cast<std::size_t>(axis < 0 ? axis + 3 : axis);
            Tensor s = slice(leaf(cube), axis, c.begin, c.end, c.step);
            const Array expected = take(cube, ax, c.indices);
            REQUIRE(s.shape() == shape_of(expected));
            require_close(s.values<double>(), expected);
        }
        require_close(
            slice(Tensor::from_values(to_f32(cube)), 1, c.begin, c.end, c.step).values<float>(),
            to_f32(take(cube, 1, c.indices)));
        check_gradients([&](const Inputs& t) { return slice(t[0], 0, c.begin, c.end, c.step); },
                        {tall});
        check_gradients([&](const Inputs& t) { return slice(t[0], -1, c.begin, c.end, c.step); },
                        {wide});
    }
    SECTION("the seed's t.slice(a, b) takes rows a..b-1") {
        Tensor rows = leaf(tall).slice(1, 3);
        REQUIRE(rows.shape() == Shape{2, 3});
        require_close(rows.values<double>(), Array(xt::view(tall, xt::range(1, 3), xt::all())));
        require_close(leaf(tall).slice(-2, 100).values<double>(), take(tall, 0, {3, 4}));
        require_close(leaf(wide).slice(1, 0, 5, 2).values<double>(), take(wide, 1, {0, 2, 4}));
        check_gradients([](const Inputs& t) { return t[0].slice(1, 3); }, {tall});
    }
    SECTION("a slice of a slice of a transpose") {
        const Array tr = xt::transpose(cube, {2, 0, 1});
        const Array expected = take(take(tr, 1, {1, 3}), 2, {0, 2, 4});
        Tensor s = slice(slice(permute(leaf(cube), {2, 0, 1}), 1, 1, 4, 2), 2, 0, 5, 2);
        require_close(s.values<double>(), expected);
        check_gradients(
            [](const Inputs& t) { return slice(slice(transpose(t[0]), 0, 1, 5, 2), 1, 0, 5, 2); },
            {tall});
    }
    SECTION("errors") {
        Tensor x = leaf(cube);
        CHECK_THROWS_MATCHES(
            slice(x, 1, 0, 5, 0), ValueError,
            Catch::Matchers::Message("slice: step 0 on axis 1 of x (5, 5, 5) must be positive"));
        CHECK_THROWS_MATCHES(
            slice(x, -1, 5, 0, -1), ValueError,
            Catch::Matchers::Message("slice: step -1 on axis 2 of x (5, 5, 5) must be positive"));
        CHECK_THROWS_MATCHES(
            slice(x, 3, 0, 1), ValueError,
            Catch::Matchers::Message("slice: axis 3 is out of range for x (5, 5, 5) (3 axes)"));
        CHECK_THROWS_MATCHES(
            Tensor::scalar(1.0).slice(0, 1), ShapeError,
            Catch::Matchers::Message("slice: x () is 0-d: there is no axis to slice"));
    }
}

// ---------------------------------------------------------------------------------------------
// concat, stack

TEST_CASE("concat joins along an existing axis", "[ops]") {
    SECTION("axis 0, three parts of different lengths") {
        const Array a = random_array({2, 3}, 11), b = random_array({1, 3}, 12),
                    c = random_array({3, 3}, 13);
        Tensor r = concat({leaf(a), leaf(b), leaf(c)}, 0);
        REQUIRE(r.shape() == Shape{6, 3});
        require_close(r.values<double>(), Array(xt::concatenate(xt::xtuple(a, b, c), 0)));
        require_close(concat({Tensor::from_values(to_f32(a)), Tensor::from_values(to_f32(b)),
                              Tensor::from_values(to_f32(c))})
                          .values<float>(),
                      to_f32(xt::concatenate(xt::xtuple(a, b, c), 0)));
        check_gradients([](const Inputs& t) { return concat({t[0], t[1], t[2]}, 0); }, {a, b, c});
    }
    SECTION("axis 1 and axis -1 of 3-D inputs") {
        const Array a = random_array({2, 1, 3}, 14), b = random_array({2, 2, 3}, 15);
        require_close(concat({leaf(a), leaf(b)}, 1).values<double>(),
                      Array(xt::concatenate(xt::xtuple(a, b), 1)));
        const Array c = random_array({2, 1, 2}, 16);
        require_close(concat({leaf(a), leaf(c)}, -1).values<double>(),
                      Array(xt::concatenate(xt::xtuple(a, c), 2)));
        check_gradients([](const Inputs& t) { return concat({t[0], t[1]}, 1); }, {a, b});
        check_gradients([](const Inputs& t) { return concat({t[0], t[1]}, -1); }, {a, c});
    }
    SECTION("a single part, and a part used twice") {
        const Array a = random_array({2, 3}, 17);
        require_close(concat({leaf(a)}, 1).values<double>(), a);
        check_gradients([](const Inputs& t) { return concat({t[0], t[0] * 2.0}, 1); }, {a});
    }
    SECTION("non-contiguous parts: a transpose and a strided slice") {
        const Array a = random_array({3, 2}, 18), b = random_array({4, 3}, 19);
        const Array expected = xt::concatenate(
            xt::xtuple(Array(xt::transpose(a)), Array(xt::view(b, xt::range(0, 4, 2), xt::all()))),
            0);
        require_close(concat({transpose(leaf(a)), slice(leaf(b), 0, 0, 4, 2)}).values<double>(),
                      expected);
        check_gradients(
            [](const Inputs& t) {
                return concat({transpose(t[0]), slice(t[1], 0, 0, 4, 2)});
            },
            {a, b});
    }
    SECTION("errors") {
        Tensor a = Tensor::zeros({2, 3}, DType::Float64);
        CHECK_THROWS_MATCHES(concat({}), ValueError,
                             Catch::Matchers::Message("concat: needs at least one tensor"));
        CHECK_THROWS_MATCHES(concat({a, Tensor::zeros({2, 4}, DType::Float64)}), ShapeError,
                             Catch::Matchers::Message("concat: tensor 0 (2, 3) and tensor 1 (2, "
                                                      "4): shapes differ outside axis 0"));
        CHECK_THROWS_MATCHES(concat({a, Tensor::zeros({3}, DType::Float64)}, 1), ShapeError,
                             Catch::Matchers::Message("concat: tensor 0 (2, 3) and tensor 1 (3): "
                                                      "shapes differ outside axis 1"));
        CHECK_THROWS_MATCHES(
            concat({a, Tensor::zeros({1, 3}, DType::Float32)}), DTypeError,
            Catch::Matchers::Message("concat: tensor 0 (2, 3) is float64 but tensor 1 (1, 3) is "
                                     "float32 (pynn does not promote dtypes; convert one "
                                     "explicitly)"));
        CHECK_THROWS_MATCHES(
            concat({Tensor::scalar(1.0), Tensor::scalar(2.0)}), ShapeError,
            Catch::Matchers::Message("concat: tensor 0 () is 0-d: there is no axis to join "
                                     "along"));
        CHECK_THROWS_MATCHES(
            concat({a, a}, 2), ValueError,
            Catch::Matchers::Message("concat: axis 2 is out of range for x (2, 3) (2 axes)"));
    }
}

TEST_CASE("stack joins along a new axis", "[ops]") {
    const Array a = random_array({2, 3}, 21), b = random_array({2, 3}, 22),
                c = random_array({2, 3}, 23);
    for (int axis = -3; axis < 3; ++axis) {
        INFO("axis " << axis);
        const auto ax = static_cast<std::size_t>(axis < 0 ? axis + 3 : axis);
        const Array expected = stack_reference({a, b, c}, ax);
        Tensor s = stack({leaf(a), leaf(b), leaf(c)}, axis);
        REQUIRE(s.shape() == shape_of(expected));
        require_close(s.values<double>(), expected);
        require_close(stack({Tensor::from_values(to_f32(a)), Tensor::from_values(to_f32(b)),
                             Tensor::from_values(to_f32(c))},
                            axis)
                          .values<float>(),
                      to_f32(expected));
        check_gradients(
            [=](const Inputs& t) {
                return stack({t[0], t[1], t[2]}, axis);
            },
            {a, b, c});
    }
    SECTION("of transposed inputs") {
        const Array p = random_array({3, 2}, 24);
        require_close(stack({transpose(leaf(p)), leaf(a)}, 1).values<double>(),
                      stack_reference({Array(xt::transpose(p)), a}, 1));
        check_gradients([](const Inputs& t) { return stack({transpose(t[0]), t[1]}, 1); }, {p, a});
    }
    SECTION("errors") {
        Tensor x = Tensor::zeros({2, 3}, DType::Float64);
        CHECK_THROWS_MATCHES(stack({}), ValueError,
                             Catch::Matchers::Message("stack: needs at least one tensor"));
        CHECK_THROWS_MATCHES(stack({x, Tensor::zeros({3, 2}, DType::Float64)}), ShapeError,
                             Catch::Matchers::Message("stack: tensor 0 (2, 3) and tensor 1 (3, 2): "
                                                      "shapes differ"));
        CHECK_THROWS_MATCHES(
            stack({x, x}, 3), ValueError,
            Catch::Matchers::Message("stack: axis 3 is out of range for the result's 3 axes"));
        CHECK_THROWS_MATCHES(
            stack({x, x}, -4), ValueError,
            Catch::Matchers::Message("stack: axis -4 is out of range for the result's 3 axes"));
    }
}

// ---------------------------------------------------------------------------------------------
// one_hot, softmax, log_softmax

TEST_CASE("one_hot appends an axis of num_classes", "[ops]") {
    SECTION("1-D labels, float64 and float32") {
        Tensor labels = Tensor::from_values({2.0, 0.0, 3.0, 1.0}, DType::Float64);
        const Array expected = {{0, 0, 1, 0}, {1, 0, 0, 0}, {0, 0, 0, 1}, {0, 1, 0, 0}};
        Tensor h = one_hot(labels, 4);
        REQUIRE(h.shape() == Shape{4, 4});
        CHECK(h.dtype() == DType::Float64);
        require_close(h.values<double>(), expected);
        Tensor h32 = one_hot(Tensor::from_values({2.0, 0.0, 3.0, 1.0}, DType::Float32), 4);
        CHECK(h32.dtype() == DType::Float32);
        require_close(h32.values<float>(), to_f32(expected));
    }
    SECTION("2-D labels, and a label past the last class gives a zero row") {
        Tensor labels = Tensor::from_values(Array{{1.0, 0.0}, {2.0, 5.0}});
        Tensor h = one_hot(labels, 3);
        REQUIRE(h.shape() == Shape{2, 2, 3});
        const Array expected = {{{0, 1, 0}, {1, 0, 0}}, {{0, 0, 1}, {0, 0, 0}}};
        require_close(h.values<double>(), expected);
    }
    SECTION("labels never receive a gradient") {
        Tensor labels = Tensor::from_values({1.0, 0.0}, DType::Float64).set_requires_grad();
        Tensor h = one_hot(labels, 2);
        CHECK_FALSE(h.requires_grad());
        require_close(h.values<double>(), Array{{0, 1}, {1, 0}});
    }
    SECTION("errors") {
        CHECK_THROWS_MATCHES(one_hot(Tensor::zeros({3}), 0), ValueError,
                             Catch::Matchers::Message("one_hot: num_classes must be positive"));
        CHECK_THROWS_MATCHES(
            one_hot(Tensor(), 3), ValueError,
            Catch::Matchers::Message("one_hot: labels is an undefined Tensor (default-constructed, "
                                     "or a gradient that was never set)"));
    }
}

TEST_CASE("softmax and log_softmax match a per-row reference on any axis", "[ops]") {
    struct Case {
        Shape shape;
        int axis;
    };
    for (const Case& c : std::vector<Case>{
             {{3, 4}, -1}, {{3, 4}, 1}, {{3, 4}, 0}, {{2, 3, 4}, 1}, {{2, 3, 4}, -3}, {{5}, 0}}) {
        INFO(to_string(c.shape) << " axis " << c.axis);
        const Array x = random_array(c.shape, 31, -3.0, 3.0);
        const auto ax = static_cast<std::size_t>(
            c.axis < 0 ? c.axis + static_cast<int>(c.shape.size()) : c.axis);
        const Array expected_softmax = along_axis(x, ax, softmax_row);
        const Array expected_log = along_axis(x, ax, log_softmax_row);

        Tensor s = softmax(leaf(x), c.axis);
        require_close(s.values<double>(), expected_softmax, 1e-12);
        require_close(sum(s, {c.axis}).values<double>(),
                      Array(xt::ones<double>(shape_of(xt::sum(x, {ax})))), 1e-12);
        require_close(log_softmax(leaf(x), c.axis).values<double>(), expected_log, 1e-12);
        require_close(softmax(Tensor::from_values(to_f32(x)), c.axis).values<float>(),
                      to_f32(expected_softmax), 1e-5);
        require_close(log_softmax(Tensor::from_values(to_f32(x)), c.axis).values<float>(),
                      to_f32(expected_log), 1e-5);

        check_gradients([&](const Inputs& t) { return softmax(t[0], c.axis); }, {x});
        check_gradients([&](const Inputs& t) { return log_softmax(t[0], c.axis); }, {x});
    }
}

TEST_CASE("softmax and log_softmax are stable for logits near +-1000", "[ops]") {
    // exp(1000) overflows even float64; the max-subtracted forms must not.
    const Array x = {{1000.0, 1001.0, 1002.0}, {-1000.0, -1001.0, -1002.0}};
    const Array expected_softmax = {{0.09003057317038046, 0.24472847105479764, 0.6652409557748219},
                                    {0.6652409557748219, 0.24472847105479764, 0.09003057317038046}};
    const Array expected_log = {{-2.40760596444438, -1.4076059644443801, -0.40760596444438013},
                                {-0.40760596444438013, -1.4076059644443801, -2.40760596444438}};
    SECTION("float64") {
        require_close(softmax(leaf(x)).values<double>(), expected_softmax, 1e-12);
        require_close(log_softmax(leaf(x)).values<double>(), expected_log, 1e-12);
    }
    SECTION("float32") {
        const xt::xarray<float> s = softmax(Tensor::from_values(to_f32(x))).values<float>();
        const xt::xarray<float> l = log_softmax(Tensor::from_values(to_f32(x))).values<float>();
        CHECK(xt::all(xt::isfinite(s)));
        CHECK(xt::all(xt::isfinite(l)));
        require_close(s, to_f32(expected_softmax), 1e-6);
        require_close(l, to_f32(expected_log), 1e-5);
    }
    SECTION("along axis 0 of the transpose") {
        require_close(softmax(transpose(leaf(x)), 0).values<double>(),
                      Array(xt::transpose(expected_softmax)), 1e-12);
    }
    SECTION("gradients stay finite and correct") {
        check_gradients([](const Inputs& t) { return softmax(t[0]); }, {x});
        check_gradients([](const Inputs& t) { return log_softmax(t[0], 1); }, {x});
    }
}

TEST_CASE("softmax and log_softmax name themselves in errors", "[ops]") {
    Tensor x = Tensor::zeros({3, 4});
    CHECK_THROWS_MATCHES(
        softmax(x, 2), ValueError,
        Catch::Matchers::Message("softmax: axis 2 is out of range for x (3, 4) (2 axes)"));
    CHECK_THROWS_MATCHES(
        log_softmax(x, -3), ValueError,
        Catch::Matchers::Message("log_softmax: axis -3 is out of range for x (3, 4) (2 axes)"));
    CHECK_THROWS_MATCHES(
        softmax(Tensor()), ValueError,
        Catch::Matchers::Message("softmax: x is an undefined Tensor (default-constructed, or a "
                                 "gradient that was never set)"));
}

// ---------------------------------------------------------------------------------------------
// gradients through chains of non-contiguous views

TEST_CASE("gradients flow through transposes, strided slices and permutes", "[ops]") {
    SECTION("exp(transpose(x)) * y") {
        const Array x = random_array({4, 3}, 41), y = random_array({3, 4}, 42);
        require_close((exp(transpose(leaf(x))) * leaf(y)).values<double>(),
                      Array(exp_reference(xt::transpose(x)) * y), 1e-12);
        check_gradients([](const Inputs& t) { return exp(transpose(t[0])) * t[1]; }, {x, y});
    }
    SECTION("columns with step 2, then matmul") {
        const Array x = random_array({2, 6}, 43), w = random_array({3, 2}, 44);
        const Array cols = xt::view(x, xt::all(), xt::range(0, 6, 2));
        Array expected = xt::zeros<double>({2, 2});
        for (std::size_t i = 0; i < 2; ++i) {
            for (std::size_t j = 0; j < 2; ++j) {
                for (std::size_t p = 0; p < 3; ++p) {
                    expected(i, j) += cols(i, p) * w(p, j);
                }
            }
        }
        require_close(matmul(slice(leaf(x), 1, 0, 6, 2), leaf(w)).values<double>(), expected,
                      1e-12);
        check_gradients([](const Inputs& t) { return matmul(slice(t[0], 1, 0, 6, 2), t[1]); },
                        {x, w});
    }
    SECTION("permute, then sum over an axis") {
        const Array x = random_array({2, 3, 4}, 45);
        require_close(sum(permute(leaf(x), {2, 0, 1}), {1}).values<double>(),
                      Array(xt::sum(xt::transpose(x, {2, 0, 1}), {1})), 1e-12);
        check_gradients([](const Inputs& t) { return sum(permute(t[0], {2, 0, 1}), {1}); }, {x});
    }
    SECTION("a slice of a transpose, broadcast against a vector, reshaped") {
        const Array x = random_array({4, 3}, 46), v = random_array({2}, 47);
        auto f = [](const Inputs& t) {
            Tensor s = slice(transpose(t[0]), 1, 1, 4, 2); // (3, 2): columns 1 and 3 of x^T
            return reshape(s * t[1] + sum(s, {0}, true), {6});
        };
        const Array s = xt::view(xt::transpose(x), xt::all(), xt::range(1, 4, 2));
        const Array expected = reshaped(Array(s * v + xt::sum(s, {0})), {6});
        require_close(f({leaf(x), leaf(v)}).values<double>(), expected, 1e-12);
        check_gradients(f, {x, v});
    }
    SECTION("log_softmax over a concat of a transpose and a strided slice") {
        const Array a = random_array({3, 2}, 48), b = random_array({3, 3}, 49);
        auto f = [](const Inputs& t) {
            return log_softmax(concat({transpose(t[0]), slice(t[1], 0, 0, 3, 2)}, 0), 0);
        };
        const Array joined = xt::concatenate(
            xt::xtuple(Array(xt::transpose(a)), Array(xt::view(b, xt::range(0, 3, 2), xt::all()))),
            0); // (4, 3)
        require_close(f({leaf(a), leaf(b)}).values<double>(),
                      along_axis(joined, 0, log_softmax_row), 1e-12);
        check_gradients(f, {a, b});
    }
}

// Found by fuzz/fuzz_graph (inputs in fuzz/regressions/fuzz_graph/): a shape whose sizes multiply
// past 2^64 (or, with a 0 among them, whose strides do) was accepted, and its strides overflowed.
TEST_CASE("ops refuse result shapes that cannot be addressed", "[ops]") {
    const std::size_t big = std::size_t{1} << 32;
    const std::size_t huge = std::size_t{1} << 62;
    Tensor empty = Tensor::zeros({0});
    CHECK_THROWS_WITH(reshape(empty, {big, big}),
                      "reshape: x (0) has 0 elements, cannot view it as (4294967296, 4294967296) "
                      "(more than 2^64 elements)");
    CHECK_THROWS_WITH(reshape(empty, {0, huge, huge}),
                      "reshape: the result (0, 4611686018427387904, 4611686018427387904) of (0) "
                      "has more elements than can be addressed");
    CHECK_THROWS_AS(broadcast_to(Tensor::zeros({1}), {big, big}), ShapeError);
    // Each operand is empty and addressable; their product is neither.
    Tensor a = reshape(empty, {std::size_t{1} << 40, 0});
    Tensor b = reshape(empty, {0, std::size_t{1} << 40});
    CHECK_THROWS_WITH(matmul(a, b), "matmul: the result (1099511627776, 1099511627776) of "
                                    "(1099511627776, 0), (0, 1099511627776) has more elements "
                                    "than can be addressed");
    // Empty tensors whose strides fit are fine.
    CHECK(reshape(empty, {0, big, 3}).shape() == Shape{0, big, 3});
}

// Found by fuzz/fuzz_graph: (end - begin + step - 1) / step overflowed for a step near 2^63, and
// so did the kernel's stride * step.
TEST_CASE("slice takes bounds and steps near 2^63", "[ops]") {
    const std::int64_t max = std::numeric_limits<std::int64_t>::max();
    const std::int64_t min = std::numeric_limits<std::int64_t>::min();
    Tensor x = Tensor::from_values({1, 2, 3, 4, 5}, DType::Float64).set_requires_grad();
    Tensor one = slice(x, 0, 1, max, max);
    REQUIRE(one.shape() == Shape{1});
    CHECK(one.values<double>()(0) == 2.0);
    CHECK(slice(x, 0, min, max, max - 1).values<double>()(0) == 1.0);
    CHECK(slice(x, 0, max, min, 1).shape() == Shape{0});
    Tensor two = slice(x, 0, 0, max, 4); // elements 0 and 4
    REQUIRE(two.shape() == Shape{2});
    CHECK(two.values<double>()(1) == 5.0);
    (sum(one) * 10.0 + sum(two)).backward();
    const xt::xarray<double> grad = x.grad().values<double>();
    CHECK(grad(0) == 1.0);
    CHECK(grad(1) == 10.0);
    CHECK(grad(4) == 1.0);
}
