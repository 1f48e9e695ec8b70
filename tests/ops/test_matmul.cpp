// matmul: 2-D, batched and batch-broadcast products against a naive triple loop in float64 and
// float32, gradients against central finite differences, the transpose-flag variants the
// backward rule uses (matmul_t), transposed and sliced operands, the exact error messages, and
// the BLAS gemm kernel against its reference loop for all four transpose combinations.
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xview.hpp>

#include "kernels/gemm.hpp"
#include "ops/matmul.hpp"
#include "support/gradcheck.hpp"

using namespace pynn;
using pynn::testing::check_gradients;
using pynn::testing::random_array;
using pynn::testing::require_close;
using namespace pynn::testing::shorthands;

namespace {


// (n, k) @ (k, m) by the textbook triple loop.
Array naive_matmul_2d(const Array& a, const Array& b) {
    REQUIRE(a.dimension() == 2);
    REQUIRE(b.dimension() == 2);
    REQUIRE(a.shape(1) == b.shape(0));
    Array c = xt::zeros<double>({a.shape(0), b.shape(1)});
    for (std::size_t i = 0; i < a.shape(0); ++i) {
        for (std::size_t j = 0; j < b.shape(1); ++j) {
            for (std::size_t p = 0; p < a.shape(1); ++p) {
                c(i, j) += a(i, p) * b(p, j);
            }
        }
    }
    return c;
}

// Batched product with numpy broadcasting of the batch axes: broadcast both operands to the
// common batch shape with xtensor, then one naive 2-D product per batch element.
Array naive_matmul(const Array& a, const Array& b) {
    const Shape sa(a.shape().begin(), a.shape().end());
    const Shape sb(b.shape().begin(), b.shape().end());
    const Shape batch_a(sa.begin(), sa.end() - 2);
    const Shape batch_b(sb.begin(), sb.end() - 2);
    const std::size_t rank = std::max(batch_a.size(), batch_b.size());
    Shape batch(rank);
    for (std::size_t i = 0; i < rank; ++i) {
        const std::size_t da = i + batch_a.size() < rank ? 1 : batch_a[i + batch_a.size() - rank];
        const std::size_t db = i + batch_b.size() < rank ? 1 : batch_b[i + batch_b.size() - rank];
        REQUIRE((da == db || da == 1 || db == 1));
        batch[i] = std::max(da, db);
    }
    const std::size_t n = sa[sa.size() - 2], k = sa.back(), m = sb.back();
    Shape full_a = batch, full_b = batch, full_c = batch;
    full_a.insert(full_a.end(), {n, k});
    full_b.insert(full_b.end(), {k, m});
    full_c.insert(full_c.end(), {n, m});
    Array ea = xt::broadcast(a, full_a);
    Array eb = xt::broadcast(b, full_b);
    const std::size_t count = numel(batch);
    ea.reshape({count, n, k});
    eb.reshape({count, k, m});
    Array c = xt::zeros<double>({count, n, m});
    for (std::size_t i = 0; i < count; ++i) {
        xt::view(c, i) = naive_matmul_2d(xt::view(ea, i), xt::view(eb, i));
    }
    c.reshape(full_c);
    return c;
}

// Swaps the last two axes.
Array swap_last(const Array& a) {
    std::vector<std::size_t> perm(a.dimension());
    for (std::size_t i = 0; i < perm.size(); ++i) {
        perm[i] = i;
    }
    std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
    return xt::transpose(a, perm);
}

// Forward in float64 and float32 and float64 gradients of matmul(a, b) for random operands.
void check_matmul(const Shape& shape_a, const Shape& shape_b, const Shape& expected_shape) {
    INFO("a " << to_string(shape_a) << ", b " << to_string(shape_b));
    const Array a = random_array(shape_a, 1);
    const Array b = random_array(shape_b, 2);
    Tensor c = matmul(leaf(a), leaf(b));
    CHECK(c.shape() == expected_shape);
    require_close(c.values<double>(), naive_matmul(a, b), 1e-12);

    const xt::xarray<float> af = to_f32(a);
    const xt::xarray<float> bf = to_f32(b);
    Tensor c32 = matmul(Tensor::from_values(af), Tensor::from_values(bf));
    CHECK(c32.dtype() == DType::Float32);
    require_close(c32.values<float>(), to_f32(naive_matmul(to_f64(af), to_f64(bf))), 1e-5);

    check_gradients([](const Inputs& t) { return matmul(t[0], t[1]); }, {a, b});
}

} // namespace

TEST_CASE("2-D matmul matches the triple loop", "[ops]") {
    check_matmul({3, 4}, {4, 5}, {3, 5});
    SECTION("degenerate sizes: row and column vectors, outer and inner products") {
        check_matmul({1, 4}, {4, 1}, {1, 1});
        check_matmul({5, 1}, {1, 3}, {5, 3});
        check_matmul({1, 1}, {1, 6}, {1, 6});
    }
    SECTION("by hand") {
        Tensor a = Tensor::from_values(Array{{1.0, 2.0}, {3.0, 4.0}});
        Tensor b = Tensor::from_values(Array{{5.0, 6.0}, {7.0, 8.0}});
        require_close(matmul(a, b).values<double>(), Array{{19.0, 22.0}, {43.0, 50.0}});
    }
    SECTION("an empty inner dimension gives zeros") {
        Tensor c =
            matmul(Tensor::ones({2, 0}, DType::Float64), Tensor::ones({0, 3}, DType::Float64));
        REQUIRE(c.shape() == Shape{2, 3});
        require_close(c.values<double>(), Array(xt::zeros<double>({2, 3})));
    }
}

TEST_CASE("batched matmul matches one triple loop per batch element", "[ops]") {
    check_matmul({2, 3, 4}, {2, 4, 5}, {2, 3, 5});
    check_matmul({2, 2, 3, 4}, {2, 2, 4, 2}, {2, 2, 3, 2});
}

TEST_CASE("matmul broadcasts batch axes as numpy does", "[ops]") {
    SECTION("batched @ 2-D") { check_matmul({2, 3, 4}, {4, 5}, {2, 3, 5}); }
    SECTION("2-D @ batched") { check_matmul({3, 4}, {2, 4, 5}, {2, 3, 5}); }
    SECTION("size-1 batch against a batch of 5") { check_matmul({1, 3, 4}, {5, 4, 2}, {5, 3, 2}); }
    SECTION("batch axes broadcast on both sides") {
        check_matmul({2, 1, 3, 4}, {3, 4, 2}, {2, 3, 3, 2});
        check_matmul({3, 1, 2, 3}, {1, 2, 3, 2}, {3, 2, 2, 2});
    }
}

TEST_CASE("matmul_t: all four transpose-flag combinations", "[ops]") {
    // The flags are how backward hands transposed operands to BLAS; op(x) swaps the last two axes.
    for (const bool trans_a : {false, true}) {
        for (const bool trans_b : {false, true}) {
            INFO("trans_a " << trans_a << ", trans_b " << trans_b);
            {
                INFO("2-D");
                const Array a = random_array(trans_a ? Shape{4, 3} : Shape{3, 4}, 21);
                const Array b = random_array(trans_b ? Shape{5, 4} : Shape{4, 5}, 22);
                const Array expected =
                    naive_matmul(trans_a ? swap_last(a) : a, trans_b ? swap_last(b) : b);
                Tensor c = matmul_t(leaf(a), leaf(b), trans_a, trans_b);
                REQUIRE(c.shape() == Shape{3, 5});
                require_close(c.values<double>(), expected, 1e-12);
                require_close(matmul_t(Tensor::from_values(to_f32(a)),
                                       Tensor::from_values(to_f32(b)), trans_a, trans_b)
                                  .values<float>(),
                              to_f32(expected), 1e-5);
                check_gradients(
                    [=](const Inputs& t) { return matmul_t(t[0], t[1], trans_a, trans_b); },
                    {a, b});
            }
            {
                INFO("batched with a broadcast batch axis");
                const Array a = random_array(trans_a ? Shape{2, 4, 3} : Shape{2, 3, 4}, 23);
                const Array b = random_array(trans_b ? Shape{1, 5, 4} : Shape{1, 4, 5}, 24);
                const Array expected =
                    naive_matmul(trans_a ? swap_last(a) : a, trans_b ? swap_last(b) : b);
                Tensor c = matmul_t(leaf(a), leaf(b), trans_a, trans_b);
                REQUIRE(c.shape() == Shape{2, 3, 5});
                require_close(c.values<double>(), expected, 1e-12);
                check_gradients(
                    [=](const Inputs& t) { return matmul_t(t[0], t[1], trans_a, trans_b); },
                    {a, b});
            }
        }
    }
}

TEST_CASE("matmul of non-contiguous operands", "[ops]") {
    SECTION("a transposed operand") {
        const Array a = random_array({4, 3}, 31);
        const Array b = random_array({4, 2}, 32);
        require_close(matmul(transpose(leaf(a)), leaf(b)).values<double>(),
                      naive_matmul(xt::transpose(a), b), 1e-12);
        check_gradients([](const Inputs& t) { return matmul(transpose(t[0]), t[1]); }, {a, b});
    }
    SECTION("rows taken with step 2, then matmul") {
        const Array x = random_array({6, 4}, 33);
        const Array w = random_array({4, 2}, 34);
        const Array rows = xt::view(x, xt::range(0, 6, 2), xt::all());
        require_close(matmul(slice(leaf(x), 0, 0, 6, 2), leaf(w)).values<double>(),
                      naive_matmul(rows, w), 1e-12);
        check_gradients([](const Inputs& t) { return matmul(slice(t[0], 0, 0, 6, 2), t[1]); },
                        {x, w});
    }
    SECTION("the same tensor on both sides: x @ x^T") {
        const Array x = random_array({3, 4}, 37);
        require_close(matmul(leaf(x), transpose(leaf(x))).values<double>(),
                      naive_matmul(x, xt::transpose(x)), 1e-12);
        check_gradients([](const Inputs& t) { return matmul(t[0], transpose(t[0])); }, {x});
    }
    SECTION("a batched operand permuted so its batch axis was in the middle") {
        const Array x = random_array({3, 2, 4}, 35); // (n, batch, k)
        const Array w = random_array({2, 4, 2}, 36);
        require_close(matmul(permute(leaf(x), {1, 0, 2}), leaf(w)).values<double>(),
                      naive_matmul(xt::transpose(x, {1, 0, 2}), w), 1e-12);
        check_gradients(
            [](const Inputs& t) {
                return matmul(permute(t[0], {1, 0, 2}), t[1]);
            },
            {x, w});
    }
}

TEST_CASE("matmul rejects bad operands with exact messages", "[ops]") {
    SECTION("inner dimensions differ") {
        CHECK_THROWS_MATCHES(matmul(Tensor::zeros({2, 3}), Tensor::zeros({4, 5})), ShapeError,
                             Catch::Matchers::Message(
                                 "matmul: a (2, 3) and b (4, 5): inner dimensions 3 and 4 differ"));
        CHECK_THROWS_MATCHES(
            matmul(Tensor::zeros({2, 3, 4}), Tensor::zeros({2, 3, 4})), ShapeError,
            Catch::Matchers::Message(
                "matmul: a (2, 3, 4) and b (2, 3, 4): inner dimensions 4 and 3 differ"));
    }
    SECTION("fewer than two axes") {
        CHECK_THROWS_MATCHES(
            matmul(Tensor::zeros({3}), Tensor::zeros({3, 2})), ShapeError,
            Catch::Matchers::Message("matmul: a (3) and b (3, 2): both operands need at least 2 "
                                     "axes (reshape a vector to (1, n) or (n, 1))"));
    }
    SECTION("batch axes that cannot be broadcast") {
        CHECK_THROWS_MATCHES(
            matmul(Tensor::zeros({2, 3, 4}), Tensor::zeros({3, 4, 5})), ShapeError,
            Catch::Matchers::Message("matmul: a (2, 3, 4) and b (3, 4, 5): batch axes (2) and "
                                     "(3) cannot be broadcast"));
    }
    SECTION("mixed dtypes") {
        CHECK_THROWS_MATCHES(
            matmul(Tensor::zeros({2, 3}, DType::Float32), Tensor::zeros({3, 2}, DType::Float64)),
            DTypeError,
            Catch::Matchers::Message("matmul: a (2, 3) is float32 but b (3, 2) is float64 (pynn "
                                     "does not promote dtypes; convert one explicitly)"));
    }
}

TEST_CASE("kernels::gemm agrees with gemm_reference for every transpose combination", "[ops]") {
    // Non-square sizes so that a wrong leading dimension cannot go unnoticed; the larger ones
    // take OpenBLAS's blocked paths.
    const std::vector<std::array<std::size_t, 3>> sizes = {{5, 7, 3}, {1, 9, 4}, {33, 17, 29}};
    for (const auto& [m, n, k] : sizes) {
        for (const bool trans_a : {false, true}) {
            for (const bool trans_b : {false, true}) {
                INFO("m " << m << ", n " << n << ", k " << k << ", trans_a " << trans_a
                          << ", trans_b " << trans_b);
                // op(a) is (m, k) and op(b) is (k, n); the stored layouts follow the flags.
                const Array a = random_array(trans_a ? Shape{k, m} : Shape{m, k}, 41);
                const Array b = random_array(trans_b ? Shape{n, k} : Shape{k, n}, 42);
                const Array c0 = random_array({m, n}, 43);

                Array expected = xt::zeros<double>({m, n});
                kernels::gemm_reference<double>(trans_a, trans_b, m, n, k, a.data(), b.data(),
                                                expected.data());
                // The reference itself against the independent triple loop.
                require_close(expected,
                              naive_matmul_2d(trans_a ? Array(xt::transpose(a)) : a,
                                              trans_b ? Array(xt::transpose(b)) : b),
                              1e-12);

                Array c = xt::zeros<double>({m, n});
                kernels::gemm<double>(trans_a, trans_b, m, n, k, a.data(), b.data(), c.data());
                require_close(c, expected, 1e-12);

                c = c0;
                kernels::gemm<double>(trans_a, trans_b, m, n, k, a.data(), b.data(), c.data(),
                                      true);
                require_close(c, Array(c0 + expected), 1e-12);

                const xt::xarray<float> af = to_f32(a);
                const xt::xarray<float> bf = to_f32(b);
                xt::xarray<float> expected32 = xt::zeros<float>({m, n});
                kernels::gemm_reference<float>(trans_a, trans_b, m, n, k, af.data(), bf.data(),
                                               expected32.data());
                xt::xarray<float> c32 = xt::zeros<float>({m, n});
                kernels::gemm<float>(trans_a, trans_b, m, n, k, af.data(), bf.data(), c32.data());
                require_close(c32, expected32, 1e-5);
                c32 = to_f32(c0);
                kernels::gemm<float>(trans_a, trans_b, m, n, k, af.data(), bf.data(), c32.data(),
                                     true);
                require_close(c32, xt::xarray<float>(to_f32(c0) + expected32), 1e-5);
            }
        }
    }
}
