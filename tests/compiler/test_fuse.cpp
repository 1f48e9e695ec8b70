// The fusion pass: fused results equal unfused ones on 1000 random DAGs (values and gradients,
// float64 and float32), kernel counts shrink, and the plan explains what it did not fuse.
#include <array>
#include <random>

#include <catch2/catch.hpp>

#include "ops/matmul.hpp"
#include "support/gradcheck.hpp"

using namespace pynn;
using pynn::testing::random_array;

namespace {

// Restores the fusion flag when a test ends.
struct FusionScope {
    bool saved = Flags::fusion();
    explicit FusionScope(bool on) { Flags::set_fusion(on); }
    ~FusionScope() { Flags::set_fusion(saved); }
    FusionScope(const FusionScope&) = delete;
    FusionScope& operator=(const FusionScope&) = delete;
};

// A random DAG over a few leaves: elementwise and broadcasting ops, reductions, reshapes and
// matmuls. All ops keep values in a moderate range so float32 comparisons stay meaningful.
struct RandomGraph {
    std::vector<xt::xarray<double>> leaves;
    std::uint64_t seed;

    Tensor build(const std::vector<Tensor>& inputs) const {
        std::mt19937_64 rng(seed);
        auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
        std::vector<Tensor> pool = inputs;
        const std::size_t steps = 4 + pick(10);
        for (std::size_t s = 0; s < steps; ++s) {
            const Tensor a = pool[pick(pool.size())];
            Tensor out;
            switch (pick(9)) {
            case 0: out = tanh(a); break;
            case 1: out = sigmoid(a) * a; break;
            case 2: out = log(abs(a) + 1.0) - relu(a); break;
            case 3: out = exp(tanh(a)) / (sqrt(abs(a) + 1.0)); break;
            case 4: { // a binary op with a broadcast-compatible partner, or a scalar
                Tensor b = pool[pick(pool.size())];
                try {
                    out = pick(2) ? maximum(a, b) * (a - b) : where(gt(a, b), a + b, a * b);
                } catch (const ShapeError&) {
                    out = a * 0.5 + minimum(a, Tensor::scalar(0.25, a.dtype()));
                }
                break;
            }
            case 5: // a reduction, with or without keepdims
                if (a.dim() > 0) {
                    const int axis = static_cast<int>(pick(a.dim()));
                    out = pick(2) ? sum(a, {axis}, pick(2) == 0) : max(a, {axis}, true);
                } else {
                    out = a * a;
                }
                break;
            case 6: // a reshape / flatten then more elementwise work
                out = tanh(reshape(a, {a.numel()})) * 2.0;
                break;
            case 7: // a matmul with a fixed-seed weight, when a is 2-D
                if (a.dim() == 2) {
                    Tensor w = Tensor::from_values(random_array({a.shape()[1], 3}, seed + s));
                    if (a.dtype() == DType::Float32) {
                        w = Tensor::from_values(xt::xarray<float>(
                            random_array({a.shape()[1], 3}, seed + s)));
                    }
                    out = relu(matmul(a, w) + 0.1);
                } else {
                    out = -a;
                }
                break;
            default: out = softmax(a.dim() > 0 ? a : reshape(a, {1}), -1); break;
            }
            pool.push_back(out);
        }
        // The result mixes several pool entries so side branches stay live.
        Tensor result = sum(pool.back());
        for (std::size_t k = 0; k < 2; ++k) {
            result = result + mean(pool[pick(pool.size())]);
        }
        return result;
    }
};

RandomGraph random_graph(std::uint64_t seed) {
    static const std::vector<Shape> shapes{{3, 4}, {4}, {3, 1}, {1, 4}, {}, {2, 3, 4}, {5, 3}};
    std::mt19937_64 rng(seed);
    RandomGraph g{{}, seed};
    const std::size_t n = 1 + rng() % 3;
    for (std::size_t i = 0; i < n; ++i) {
        g.leaves.push_back(random_array(shapes[rng() % shapes.size()], seed * 7 + i));
    }
    return g;
}

template <class T>
std::pair<double, std::vector<xt::xarray<T>>> run(const RandomGraph& g, bool fused) {
    FusionScope scope(fused);
    std::vector<Tensor> leaves;
    for (const auto& a : g.leaves) {
        leaves.push_back(Tensor::from_values(xt::xarray<T>(a)).set_requires_grad());
    }
    Tensor loss = g.build(leaves);
    loss.backward();
    std::vector<xt::xarray<T>> grads;
    for (const Tensor& l : leaves) {
        grads.push_back(l.has_grad() ? l.grad().values<T>()
                                     : xt::xarray<T>(xt::zeros<T>(l.shape())));
    }
    return {loss.item(), grads};
}

template <class T>
void compare_fused_unfused(std::uint64_t seed, double tolerance) {
    const RandomGraph g = random_graph(seed);
    auto [loss_f, grads_f] = run<T>(g, true);
    auto [loss_u, grads_u] = run<T>(g, false);
    INFO("graph seed " << seed);
    REQUIRE(std::abs(loss_f - loss_u) <= tolerance * std::max(1.0, std::abs(loss_u)));
    for (std::size_t i = 0; i < grads_f.size(); ++i) {
        pynn::testing::require_close(grads_f[i], grads_u[i], tolerance);
    }
}

} // namespace

TEST_CASE("fused equals unfused on 1000 random DAGs", "[compiler][fuse]") {
    for (std::uint64_t seed = 1; seed <= 1000; ++seed) {
        if (seed % 2) {
            compare_fused_unfused<double>(seed, 1e-10);
        } else {
            compare_fused_unfused<float>(seed, 1e-5);
        }
    }
    clear_plan_cache(); // 2000 plans nobody will reuse
}

TEST_CASE("an elementwise chain becomes one kernel", "[compiler][fuse]") {
    Tensor a = Tensor::randn({64, 100});
    Tensor b = Tensor::randn({100});
    Tensor y = tanh(relu(a * 2.0 + b) - sigmoid(a)) * a;
    std::size_t fused_kernels = 0, unfused_kernels = 0;
    xt::xarray<float> fused_values, unfused_values;
    {
        FusionScope on(true);
        ComputeGraph g({y});
        g.run();
        fused_kernels = g.num_kernels();
        fused_values = y.values<float>();
        CHECK_THAT(g.to_string(), Catch::Contains("fused_elementwise[mul add relu sigmoid sub "
                                                  "tanh mul]"));
    }
    Tensor y2 = tanh(relu(a * 2.0 + b) - sigmoid(a)) * a;
    {
        FusionScope off(false);
        ComputeGraph g({y2});
        g.run();
        unfused_kernels = g.num_kernels();
        unfused_values = y2.values<float>();
    }
    CHECK(fused_kernels == 1);
    CHECK(unfused_kernels == 7);
    pynn::testing::require_close(fused_values, unfused_values, 1e-6);
}

TEST_CASE("a GEMM epilogue run on blocks of finished rows equals the unfused result",
          "[compiler][fuse]") {
    // Tall enough for many row blocks of pynn's GEMM, and large enough (> 4 MFLOP) to be split
    // over 3 threads by rows; both transpose flags, and a region reading the result through a reshape (absorbed as a flat
    // read, so the parts still line up).
    const int saved_threads = Flags::num_threads();
    for (const int threads : {1, 3}) {
        Flags::set_num_threads(threads);
        for (const bool trans_a : {false, true}) {
            for (const bool trans_b : {false, true}) {
                INFO("threads " << threads << ", trans_a " << trans_a << ", trans_b " << trans_b);
                const std::size_t m = 300, n = 70, k = 120;
                manual_seed(5);
                Tensor a = trans_a ? Tensor::randn({k, m}) : Tensor::randn({m, k});
                Tensor b = trans_b ? Tensor::randn({n, k}) : Tensor::randn({k, n});
                Tensor bias = Tensor::randn({n});
                auto build = [&] {
                    Tensor h = matmul_t(a, b, trans_a, trans_b);
                    return std::array<Tensor, 2>{
                        relu(h + bias) * 0.5,
                        tanh(reshape(matmul_t(a, b, trans_a, trans_b), {m * n / 10, 10}))};
                };
                // Each output its own plan (CSE would merge the two matmuls otherwise).
                auto values = [&](bool fusion, std::size_t which, const char* expect) {
                    FusionScope scope(fusion);
                    Tensor y = build()[which];
                    ComputeGraph g({y});
                    g.run();
                    if (fusion) {
                        CHECK_THAT(g.to_string(), Catch::Contains(expect));
                    }
                    return xt::xarray<float>(y.values<float>());
                };
                const auto f0 = values(true, 0, "gemm_epilogue[matmul add relu mul]");
                const auto u0 = values(false, 0, "");
                const auto f1 = values(true, 1, "gemm_epilogue[matmul tanh]");
                const auto u1 = values(false, 1, "");
                pynn::testing::require_close(f0, u0, 1e-6);
                pynn::testing::require_close(f1, u1, 1e-6);
            }
        }
    }
    Flags::set_num_threads(saved_threads);
}

TEST_CASE("a conv2d epilogue run image by image equals the unfused result", "[compiler][fuse]") {
    // bias + relu run on each image as the convolution finishes it (its own thread's buffer);
    // a region reading the result broadcast to a larger shape cannot, and runs whole.
    const int saved_threads = Flags::num_threads();
    for (const int threads : {1, 3}) {
        Flags::set_num_threads(threads);
        INFO("threads " << threads);
        manual_seed(9);
        Tensor x = Tensor::randn({5, 3, 9, 8});
        Tensor w = Tensor::randn({4, 3, 3, 3});
        Tensor b = Tensor::randn({4});
        auto values = [&](bool fusion, int which, const char* expect) {
            FusionScope scope(fusion);
            Tensor h = conv2d(x, w, 1, 1);
            Tensor y = which == 0 ? relu(h + reshape(b, {4, 1, 1}))
                                  : exp(broadcast_to(h, {2, 5, 4, 9, 8}) * 0.1);
            ComputeGraph g({y});
            g.run();
            if (fusion) {
                CHECK_THAT(g.to_string(), Catch::Contains(expect));
            }
            return xt::xarray<float>(y.values<float>());
        };
        pynn::testing::require_close(values(true, 0, "conv2d_epilogue[conv2d add relu]"),
                                     values(false, 0, ""), 1e-6);
        pynn::testing::require_close(values(true, 1, "conv2d_epilogue[conv2d mul exp] -> b6 (2, 5, 4, 9, 8)"),
                                     values(false, 1, ""), 1e-6);
    }
    Flags::set_num_threads(saved_threads);
}

TEST_CASE("a max-pool gradient's epilogue run by blocks of planes equals the unfused result",
          "[compiler][fuse]") {
    // relu then max-pool, as in a CNN: the relu mask runs on each block of planes the pool's
    // gradient finishes. 60 planes make several blocks of 16; a 3x3 window takes the generic
    // path, which hands over all planes at once.
    const int saved_threads = Flags::num_threads();
    for (const int threads : {1, 3}) {
        for (const std::size_t window : {2U, 3U}) {
            Flags::set_num_threads(threads);
            INFO("threads " << threads << ", window " << window);
            manual_seed(11);
            Tensor x = Tensor::randn({3, 20, 12, 10});
            Tensor r = Tensor::randn(max_pool2d(x, window, 2).shape());
            auto grad = [&](bool fusion) {
                FusionScope scope(fusion);
                Tensor leaf = Tensor::from_values(x.values<float>()).set_requires_grad();
                Tensor loss = sum(max_pool2d(relu(leaf), window, 2) * r);
                ComputeGraph g = ComputeGraph::backward(loss);
                g.run();
                if (fusion) {
                    CHECK_THAT(g.to_string(),
                               Catch::Contains("max_pool2d_grad_epilogue[max_pool2d_grad"));
                }
                return xt::xarray<float>(leaf.grad().values<float>());
            };
            pynn::testing::require_close(grad(true), grad(false), 1e-6);
        }
    }
    Flags::set_num_threads(saved_threads);
}

TEST_CASE("a region with outputs of 16 MB and more (streaming stores) equals the unfused result",
          "[compiler][fuse]") {
    // 4.2 M floats: above the streaming threshold, not a multiple of the tile; two outputs
    // (one also read inside the region) and a trailing-axis sum, on 1 and 3 threads.
    const int saved_threads = Flags::num_threads();
    for (const int threads : {1, 3}) {
        Flags::set_num_threads(threads);
        INFO("threads " << threads);
        manual_seed(13);
        Tensor x = Tensor::randn({2051, 2049});
        auto run = [&](bool fusion) {
            FusionScope scope(fusion);
            Tensor t = relu(x * 1.5 + 0.25);
            Tensor u = abs(t - x) * 0.5;
            Tensor r = sum(u * t, {1});
            ComputeGraph g({t, u, r});
            g.run();
            if (fusion) {
                CHECK(g.num_kernels() == 1);
            }
            return std::array<xt::xarray<float>, 3>{t.values<float>(), u.values<float>(),
                                                    r.values<float>()};
        };
        const auto fused = run(true);
        const auto plain = run(false);
        for (std::size_t i = 0; i < 3; ++i) {
            pynn::testing::require_close(fused[i], plain[i], 1e-5);
        }
    }
    Flags::set_num_threads(saved_threads);
}

// Found by fuzz_graph: a batched matmul with no columns divided by zero when announcing its
// rows to the fused epilogue (fuzz/regressions/fuzz_graph/gemm-epilogue-batched-matmul-with-...).
TEST_CASE("producer epilogues with an empty result", "[compiler][fuse]") {
    FusionScope on(true);
    Tensor e = Tensor::zeros({2, 0, 0});
    Tensor z = exp(matmul(e, e) * 2.0); // a batch of 0x0 products, its epilogue run in parts
    ComputeGraph g({z});
    g.run();
    CHECK_THAT(g.to_string(), Catch::Contains("gemm_epilogue[matmul mul exp]"));
    CHECK(z.shape() == Shape{2, 0, 0});
    Tensor a = Tensor::randn({2, 3, 4}).set_requires_grad();
    Tensor b = Tensor::randn({2, 4, 0}).set_requires_grad();
    Tensor y = relu(matmul(a, b) + 1.0);
    CHECK(y.shape() == Shape{2, 3, 0});
    sum(y).backward();
    const xt::xarray<float> grad_a = a.grad().values<float>();
    CHECK(grad_a.shape() == std::vector<std::size_t>{2, 3, 4});
    CHECK(xt::amax(xt::abs(grad_a))() == 0.0F);
    Tensor x = Tensor::randn({0, 2, 5, 5});
    Tensor w = Tensor::randn({3, 2, 3, 3});
    CHECK(relu(conv2d(x, w, 1, 1) + 1.0).shape() == Shape{0, 3, 5, 5});
}

TEST_CASE("the plan says why neighbouring kernels were not fused", "[compiler][fuse]") {
    FusionScope on(true);
    Tensor x = Tensor::randn({8, 5});
    Tensor w = Tensor::randn({5, 3});
    Tensor y = sum(relu(matmul(x, w)) * 2.0, {1}); // a trailing-axis sum ends the region
    ComputeGraph g({exp(y)});
    const std::string text = g.to_string();
    // The matmul's only reader is the region, so the region runs as the GEMM's epilogue.
    CHECK_THAT(text, Catch::Contains("gemm_epilogue[matmul relu mul sum]"));
    CHECK_THAT(text, Catch::Contains("not fused: #0 gemm_epilogue (8) | #1 exp (8): #0 ends in a "
                                     "reduction (sum), which closes its region"));
    CHECK_THAT(text, Catch::Contains("gemm_epilogue[matmul relu mul sum] -> b6 (8) float32"));
    // A matmul whose result is also needed elsewhere keeps its own kernel.
    Tensor m = matmul(x, w);
    ComputeGraph g3({relu(m) * 2.0, m});
    CHECK_THAT(g3.to_string(),
               Catch::Contains("matmul (8, 3) | #1 fused_elementwise (8, 3): matmul is not "
                               "elementwise"));
    // A sum over a middle axis cannot be folded tile by tile, so it stays a kernel of its own.
    Tensor z = Tensor::randn({2, 3, 4});
    ComputeGraph g2({exp(sum(tanh(z) * 2.0, {1}))});
    CHECK_THAT(g2.to_string(),
               Catch::Contains("sum is not elementwise (a reduction that is not the end of an "
                               "elementwise region)"));
}

TEST_CASE("the MLP training step fuses to at most half the kernels", "[compiler][fuse]") {
    auto kernels = [](bool fused) {
        FusionScope scope(fused);
        manual_seed(1);
        Tensor x_input = Tensor::randn({64, 784});
        Tensor x = layers::Dense(784, 256, relu)(x_input);
        x = layers::Dense(256, 128, relu)(x);
        x = layers::Dense(128, 32, relu)(x);
        x = layers::Dense(32, 10, softmax)(x);
        Tensor y = one_hot(Tensor::from_values(xt::xarray<float>(xt::zeros<float>({64}))), 10);
        Tensor loss = losses::categorical_cross_entropy(x, y);
        ComputeGraph g = ComputeGraph::backward(loss);
        g.run();
        return std::make_pair(g.num_kernels(), loss.item());
    };
    auto [fused, loss_fused] = kernels(true);
    auto [unfused, loss_unfused] = kernels(false);
    INFO("fused " << fused << " kernels, unfused " << unfused);
    CHECK(fused * 2 <= unfused);
    CHECK(loss_fused == Approx(loss_unfused).epsilon(1e-6));
}

TEST_CASE("to_dot draws fused kernels as clusters and write_dot reports bad paths",
          "[compiler][fuse]") {
    FusionScope on(true);
    Tensor x = Tensor::randn({4, 3}).set_name("x");
    ComputeGraph g({sum(tanh(x * 2.0) + 1.0, {0})});
    const std::string dot = g.to_dot();
    CHECK_THAT(dot, Catch::StartsWith("digraph plan {"));
    CHECK_THAT(dot, Catch::Contains("subgraph cluster_0"));
    CHECK_THAT(dot, Catch::Contains("label=\"#0 fused_elementwise\""));
    CHECK_THAT(dot, Catch::Contains("label=\"tanh\""));
    CHECK_THAT(dot, Catch::Contains("b0 (4, 3)\\nx"));
    CHECK_THAT(dot, Catch::EndsWith("}\n"));
    CHECK_THROWS_AS(g.write_dot("/nonexistent-dir/plan.dot"), IOError);
}
