// pynn's own float32 GEMM against the naive reference computed in float64: every transpose
// combination, ragged edges in all three dimensions, depth blocking, sub-matrix strides,
// accumulation, and the rows_done hook (every row once, in order, final when announced).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/sgemm.hpp"

using namespace pynn;

namespace {

std::vector<float> random_floats(std::size_t count, unsigned seed) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> dist(-1.0F, 1.0F);
    std::vector<float> v(count);
    for (float& x : v) {
        x = dist(gen);
    }
    return v;
}

// Reads op(x)(i, p) of a stored matrix with row stride ld.
double at(const std::vector<float>& x, bool trans, std::size_t ld, std::size_t i, std::size_t p) {
    return trans ? x[p * ld + i] : x[i * ld + p];
}

struct Case {
    std::size_t m, n, k;
};

} // namespace

TEST_CASE("sgemm agrees with the float64 reference on ragged shapes and strides", "[kernels]") {
    // Sizes around the register tile (8 or 6 rows, 48 or 16 columns) and the depth block (1024);
    // more than 64 rows (several row blocks) with a small b (panels packed up front) and with a
    // large one (read in place).
    const std::vector<Case> cases = {{1, 1, 1},       {8, 48, 5},    {9, 49, 7},    {7, 47, 3},
                                     {17, 16, 33},    {64, 256, 9},  {3, 200, 64},  {40, 10, 1030},
                                     {13, 100, 2100}, {100, 96, 40}, {70, 96, 1000}};
    for (const Case& cs : cases) {
        for (const bool trans_a : {false, true}) {
            for (const bool trans_b : {false, true}) {
                for (const bool accumulate : {false, true}) {
                    const auto [m, n, k] = cs;
                    INFO("m " << m << ", n " << n << ", k " << k << ", trans_a " << trans_a
                              << ", trans_b " << trans_b << ", accumulate " << accumulate);
                    // Stored matrices are wider than needed (pad 3), so a wrong leading
                    // dimension reads the wrong numbers instead of the right ones.
                    const std::size_t lda = (trans_a ? m : k) + 3;
                    const std::size_t ldb = (trans_b ? k : n) + 3;
                    const std::size_t ldc = n + 3;
                    const auto a = random_floats((trans_a ? k : m) * lda, 1);
                    const auto b = random_floats((trans_b ? n : k) * ldb, 2);
                    const auto c0 = random_floats(m * ldc, 3);
                    auto c = c0;
                    kernels::sgemm(trans_a, trans_b, m, n, k, a.data(), lda, b.data(), ldb,
                                   c.data(), ldc, accumulate);
                    for (std::size_t i = 0; i < m; ++i) {
                        for (std::size_t j = 0; j < n; ++j) {
                            double expected = accumulate ? c0[i * ldc + j] : 0.0;
                            double magnitude = std::abs(expected);
                            for (std::size_t p = 0; p < k; ++p) {
                                const double t =
                                    at(a, trans_a, lda, i, p) * at(b, !trans_b, ldb, j, p);
                                expected += t;
                                magnitude += std::abs(t);
                            }
                            INFO("c(" << i << ", " << j << ")");
                            REQUIRE(std::abs(c[i * ldc + j] - expected) <= 3e-5 * magnitude + 1e-7);
                        }
                        for (std::size_t j = n; j < ldc; ++j) { // padding untouched
                            REQUIRE(c[i * ldc + j] == c0[i * ldc + j]);
                        }
                    }
                }
            }
        }
    }
}

TEST_CASE("sgemm with k = 0 writes zeros, or leaves c when accumulating", "[kernels]") {
    std::vector<float> c(6, 5.0F);
    kernels::sgemm(false, false, 2, 3, 0, nullptr, 0, nullptr, 3, c.data(), 3, true);
    CHECK(c == std::vector<float>(6, 5.0F));
    kernels::sgemm(false, false, 2, 3, 0, nullptr, 0, nullptr, 3, c.data(), 3, false);
    CHECK(c == std::vector<float>(6, 0.0F));
}

TEST_CASE("sgemm announces every row once, in order, after it is final", "[kernels]") {
    for (const Case cs : {Case{1, 5, 3}, Case{100, 300, 50}, Case{37, 10, 1100}}) {
        const auto [m, n, k] = cs;
        INFO("m " << m << ", n " << n << ", k " << k);
        const auto a = random_floats(m * k, 4);
        const auto b = random_floats(k * n, 5);
        std::vector<float> expected(m * n);
        kernels::gemm_reference<float>(false, false, m, n, k, a.data(), b.data(), expected.data());
        std::vector<float> c(m * n, std::nanf(""));
        std::size_t next = 0;
        bool final_when_announced = true;
        const kernels::RowsDone done = [&](std::size_t begin, std::size_t end) {
            CHECK(begin == next);
            CHECK(end > begin);
            next = end;
            for (std::size_t i = begin * n; i < end * n; ++i) {
                final_when_announced &= std::abs(c[i] - expected[i]) <= 1e-4F;
            }
        };
        kernels::sgemm(false, false, m, n, k, a.data(), k, b.data(), n, c.data(), n, false, &done);
        CHECK(next == m);
        CHECK(final_when_announced);
    }
}
