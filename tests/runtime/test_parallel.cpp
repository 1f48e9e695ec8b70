// The thread pool and the kernels that use it: results with 1 thread and with 3 (an uneven split
// on any machine) against each other and against naive references, and errors from tasks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/gemm.hpp"
#include "runtime/parallel.hpp"
#include "support/gradcheck.hpp"

using namespace pynn;
using pynn::testing::random_array;
using pynn::testing::require_close;

namespace {
struct Threads {
    explicit Threads(int n) : m_saved(Flags::num_threads()) { Flags::set_num_threads(n); }
    ~Threads() { Flags::set_num_threads(m_saved); }
    Threads(const Threads&) = delete;
    Threads& operator=(const Threads&) = delete;
    int m_saved;
};

// c (m x n) = op(a) @ op(b) with these transposes and sizes.
struct GemmCase {
    bool ta, tb;
    std::size_t m, n, k;
};
} // namespace

TEST_CASE("parallel_for runs every task once and rethrows a task's error", "[parallel]") {
    Threads threads(3);
    for (std::size_t tasks : {0U, 1U, 2U, 5U, 1000U}) {
        std::vector<std::atomic<int>> hits(tasks);
        runtime::parallel_for(tasks, [&](std::size_t t) { hits[t].fetch_add(1); });
        for (auto& h : hits) {
            CHECK(h.load() == 1);
        }
    }
    CHECK_THROWS_WITH(runtime::parallel_for(8,
                                            [](std::size_t t) {
                                                if (t == 5) {
                                                    throw ValueError("task 5 failed");
                                                }
                                            }),
                      "task 5 failed");
    // Nested calls run serially on the calling thread.
    std::atomic<int> inner{0};
    runtime::parallel_for(4, [&](std::size_t) {
        CHECK(runtime::available_threads() == 1);
        runtime::parallel_for(3, [&](std::size_t) { inner.fetch_add(1); });
    });
    CHECK(inner.load() == 12);
    std::size_t covered = 0;
    runtime::parallel_ranges(10, 4, [&](std::size_t a, std::size_t b) { covered += b - a; });
    CHECK(covered == 10); // 2 ranges of >= 4 items (the lambda's += runs on one thread each)
}

TEST_CASE("GEMMs split over threads match the naive triple loop", "[parallel]") {
    Threads threads(3);
    auto [ta, tb, m, n, k] =
        GENERATE(GemmCase{false, false, 64, 250, 300}, GemmCase{true, false, 301, 70, 64},
                 GemmCase{false, true, 64, 130, 257}, GemmCase{true, true, 200, 35, 300},
                 // few rows, a large b: split by depth (3 parts), every transpose
                 GemmCase{false, false, 50, 300, 450}, GemmCase{true, true, 40, 260, 520},
                 GemmCase{true, false, 20, 500, 400}, GemmCase{false, true, 130, 256, 784});
    xt::xarray<double> a = random_array({ta ? k : m, ta ? m : k}, 1);
    xt::xarray<double> b = random_array({tb ? n : k, tb ? k : n}, 2);
    xt::xarray<double> c = xt::zeros<double>({m, n});
    xt::xarray<double> ref = xt::zeros<double>({m, n});
    kernels::gemm<double>(ta, tb, m, n, k, a.data(), b.data(), c.data());
    kernels::gemm_reference<double>(ta, tb, m, n, k, a.data(), b.data(), ref.data());
    require_close(c, ref, 1e-10);
}

TEST_CASE("float GEMMs split by depth: every transpose, accumulate, rows_done on final rows",
          "[parallel]") {
    // On 3 threads each shape has fewer than 3 * 64 rows, op(b) of >= 128K elements, k >= 3 * 128
    // and >= 4 MFLOP: the depth is split in 3 parts (kernels/gemm.cpp), each a float32 product
    // by pynn's own sgemm (a transposed a has 128-173 steps per part), then the partials are
    // added by blocks of rows and rows_done runs on each block.
    Threads threads(3);
    auto [ta, tb, m, n, k] =
        GENERATE(GemmCase{false, false, 60, 256, 784}, GemmCase{false, true, 60, 256, 784},
                 GemmCase{true, false, 20, 500, 384}, GemmCase{true, true, 40, 260, 520});
    const bool accumulate = GENERATE(false, true);
    // Two calls with different data: the second finds the first call's partials in the buffer.
    for (std::uint64_t call = 0; call < 2; ++call) {
        const xt::xarray<double> a64 = random_array({ta ? k : m, ta ? m : k}, 10 + call);
        const xt::xarray<double> b64 = random_array({tb ? n : k, tb ? k : n}, 20 + call);
        const xt::xarray<double> c64 = random_array({m, n}, 30 + call);
        xt::xarray<double> ref = xt::zeros<double>({m, n});
        kernels::gemm_reference<double>(ta, tb, m, n, k, a64.data(), b64.data(), ref.data());
        if (accumulate) {
            ref += c64;
        }
        const xt::xarray<float> a = xt::cast<float>(a64);
        const xt::xarray<float> b = xt::cast<float>(b64);
        // Without accumulate c's old values must not leak in: start from NaN.
        xt::xarray<float> c = accumulate
                                  ? xt::xarray<float>(xt::cast<float>(c64))
                                  : xt::xarray<float>(xt::zeros<float>({m, n}) *
                                                      std::numeric_limits<float>::quiet_NaN());
        std::vector<std::atomic<int>> seen(m);
        std::atomic<int> wrong{0};
        const kernels::RowsDone rows_done = [&](std::size_t begin, std::size_t end) {
            for (std::size_t i = begin; i < end; ++i) {
                seen[i].fetch_add(1);
                for (std::size_t j = 0; j < n; ++j) {
                    if (!(std::abs(c(i, j) - ref(i, j)) <= 1e-3)) {
                        wrong.fetch_add(1);
                    }
                }
            }
        };
        kernels::gemm<float>(ta, tb, m, n, k, a.data(), b.data(), c.data(), accumulate, &rows_done);
        CHECK(wrong.load() == 0);
        for (auto& hits : seen) {
            CHECK(hits.load() == 1);
        }
        require_close(xt::xarray<double>(xt::cast<double>(c)), ref, 1e-4);
    }
}

TEST_CASE("conv, pooling and fused kernels give the same values on 1 and 3 threads", "[parallel]") {
    auto run = [](int n) {
        Threads threads(n);
        Tensor x = Tensor::from_values(random_array({6, 4, 10, 10}, 3)).set_requires_grad();
        Tensor w = Tensor::from_values(random_array({8, 4, 3, 3}, 4)).set_requires_grad();
        Tensor big = Tensor::from_values(random_array({300, 1000}, 5)).set_requires_grad();
        Tensor y = max_pool2d(relu(conv2d(x, w, 1, 1)), 2);
        Tensor chain = tanh(big * 2.0 + 1.0) * big; // 300K elements: a split fused kernel
        Tensor loss = sum(y * y) + sum(chain);
        loss.backward();
        return std::vector<xt::xarray<double>>{y.values<double>(), chain.values<double>(),
                                               x.grad().values<double>(), w.grad().values<double>(),
                                               big.grad().values<double>()};
    };
    const auto one = run(1);
    const auto three = run(3);
    for (std::size_t i = 0; i < one.size(); ++i) {
        require_close(three[i], one[i], 1e-12);
    }
}

TEST_CASE("plans flush denormals on every thread and restore the caller's mode", "[parallel]") {
    Threads threads(3);
    struct FlushFlag { // restored even when a check throws
        bool saved = Flags::flush_denormal();
        ~FlushFlag() { Flags::set_flush_denormal(saved); }
    } flag;
    const float tiny = 2.0F * std::numeric_limits<float>::min(); // normal; half of it is not
    const float denormal = tiny / 4.0F;                          // below the smallest normal
    REQUIRE(std::fpclassify(tiny) == FP_NORMAL);
    REQUIRE(std::fpclassify(tiny / 2.0F) == FP_NORMAL);
    REQUIRE(std::fpclassify(tiny / 4.0F) == FP_SUBNORMAL);
    const std::size_t n = std::size_t{1} << 22;
    // The caller's own arithmetic keeps IEEE denormals after a run.
    auto caller_keeps_denormals = [&] {
        volatile float x = tiny;
        x = x / 4.0F;
        return x == denormal;
    };
    auto run = [&](bool flush) {
        Flags::set_flush_denormal(flush);
        // Two ops each, so that they run as a fused kernel split over the pool.
        Tensor made = abs(Tensor::full({n}, tiny, DType::Float32) * 0.25);    // makes (FTZ)
        Tensor read = abs(Tensor::full({n}, denormal, DType::Float32) * 4.0); // reads (DAZ)
        auto result = std::pair{made.values<float>(), read.values<float>()};
        CHECK(caller_keeps_denormals());
        return result;
    };
    const auto [made_on, read_on] = run(true);
    const auto [made_off, read_off] = run(false);
#if defined(__SSE__)
    CHECK(std::count(made_on.begin(), made_on.end(), 0.0F) == static_cast<std::ptrdiff_t>(n));
    CHECK(std::count(read_on.begin(), read_on.end(), 0.0F) == static_cast<std::ptrdiff_t>(n));
#endif
    CHECK(std::count(made_off.begin(), made_off.end(), denormal) == static_cast<std::ptrdiff_t>(n));
    CHECK(std::count(read_off.begin(), read_off.end(), tiny) == static_cast<std::ptrdiff_t>(n));
}

TEST_CASE("a lone elementwise op on a large tensor splits over the pool and matches a plain loop",
          "[parallel]") {
    const std::size_t n = 300001; // > 2 * 64K: split, unevenly on 3 threads
    const xt::xarray<double> a = random_array({n}, 7);
    const xt::xarray<double> b = random_array({n}, 8);
    for (const int threads_n : {1, 3}) {
        Threads threads(threads_n);
        Tensor ta = Tensor::from_values(a);
        Tensor tb = Tensor::from_values(b);
        Tensor product = ta * tb; // one op: its own kernel, not a fused region
        Tensor scaled = ta * 3.0; // a scalar operand (stride 0) in every range
        for (const Tensor& t : {product, scaled}) {
            ComputeGraph graph({t});
            REQUIRE(graph.num_kernels() == 1);
            CHECK(graph.to_string().find("fused") == std::string::npos);
            graph.run();
        }
        const xt::xarray<double> p = product.values<double>();
        const xt::xarray<double> s = scaled.values<double>();
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < n; ++i) {
            wrong += (p(i) == a(i) * b(i) && s(i) == a(i) * 3.0) ? 0 : 1;
        }
        CHECK(wrong == 0);
    }
}
