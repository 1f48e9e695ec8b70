// Graph-level tests: an MLP-like expression end to end (values and gradients against an
// independent xtensor computation and finite differences), the plan cache, gradient accumulation,
// no-grad scopes and the documented error messages.
#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "graph/node.hpp"
#include "graph/storage.hpp"
#include "support/gradcheck.hpp"

using namespace pynn;
using pynn::testing::check_gradients;
using pynn::testing::random_array;
using pynn::testing::require_close;

namespace {

// Plain xtensor reference for relu(x @ w1 + b1) @ w2 + b2.
xt::xarray<double> naive_matmul(const xt::xarray<double>& a, const xt::xarray<double>& b) {
    xt::xarray<double> c = xt::zeros<double>({a.shape(0), b.shape(1)});
    for (std::size_t i = 0; i < a.shape(0); ++i) {
        for (std::size_t j = 0; j < b.shape(1); ++j) {
            for (std::size_t k = 0; k < a.shape(1); ++k) {
                c(i, j) += a(i, k) * b(k, j);
            }
        }
    }
    return c;
}

Tensor mlp(const std::vector<Tensor>& t) {
    Tensor h = relu(matmul(t[0], t[1]) + t[2]);
    return softmax(matmul(h, t[3]) + t[4], -1);
}

} // namespace

TEST_CASE("an MLP-like graph computes the reference forward values", "[graph]") {
    auto x = random_array({5, 4}, 1);
    auto w1 = random_array({4, 6}, 2);
    auto b1 = random_array({6}, 3);
    auto w2 = random_array({6, 3}, 4);
    auto b2 = random_array({3}, 5);
    Tensor out = mlp({Tensor::from_values(x), Tensor::from_values(w1), Tensor::from_values(b1),
                      Tensor::from_values(w2), Tensor::from_values(b2)});
    xt::xarray<double> h = xt::maximum(naive_matmul(x, w1) + b1, 0.0);
    xt::xarray<double> logits = naive_matmul(h, w2) + b2;
    xt::xarray<double> e = xt::exp(logits);
    xt::xarray<double> expected = e / xt::view(xt::sum(e, {1}), xt::all(), xt::newaxis());
    require_close(out.values<double>(), expected, 1e-12);
}

TEST_CASE("an MLP-like graph's gradients match finite differences", "[graph]") {
    check_gradients(mlp, {random_array({5, 4}, 1), random_array({4, 6}, 2),
                          random_array({6}, 3), random_array({6, 3}, 4), random_array({3}, 5)});
}

TEST_CASE("running the same training step twice compiles once", "[graph]") {
    Flags::set_global_type(DType::Float32);
    Tensor w = Tensor::randn({8, 4}).set_requires_grad();
    Tensor b = Tensor::zeros({4}).set_requires_grad();
    auto step = [&](const Tensor& x) {
        Tensor loss = mean(square(tanh(matmul(x, w) + b)));
        loss.zero_grad();
        loss.backward();
        return loss.item();
    };
    step(Tensor::randn({16, 8}));
    const PlanCacheStats before = plan_cache_stats();
    const double loss = step(Tensor::randn({16, 8})); // new data, same structure
    const PlanCacheStats after = plan_cache_stats();
    CHECK(after.hits == before.hits + 1);
    CHECK(after.misses == before.misses);
    CHECK(std::isfinite(loss));
    CHECK(w.grad().shape() == Shape{8, 4});

    SECTION("a different shape compiles a new plan") {
        step(Tensor::randn({32, 8}));
        CHECK(plan_cache_stats().misses == after.misses + 1);
    }
}

TEST_CASE("a cached plan binds the new data, not the old", "[graph]") {
    auto run = [](double value) {
        Tensor x = Tensor::full({3}, value, DType::Float64);
        return (sum(x * x)).item();
    };
    CHECK(run(2.0) == Approx(12.0));
    CHECK(run(3.0) == Approx(27.0));
}

TEST_CASE("gradients accumulate until zero_grad, as in PyTorch", "[graph]") {
    Tensor x = Tensor::from_values({1.0, 2.0, 3.0}, DType::Float64).set_requires_grad();
    Tensor loss = sum(x * x);
    loss.backward();
    require_close(x.grad().values<double>(), xt::xarray<double>{2.0, 4.0, 6.0});
    loss.backward();
    require_close(x.grad().values<double>(), xt::xarray<double>{4.0, 8.0, 12.0});
    loss.zero_grad();
    CHECK_FALSE(x.has_grad());
    CHECK_THROWS_AS(x.grad(), ValueError);
}

TEST_CASE("detach and NoGradGuard stop gradients", "[graph]") {
    Tensor x = Tensor::from_values({1.0, 2.0}, DType::Float64).set_requires_grad();
    Tensor y = sum(x * x.detach());
    y.backward();
    require_close(x.grad().values<double>(), xt::xarray<double>{1.0, 2.0});
    {
        NoGradGuard guard;
        Tensor z = x * x;
        CHECK_FALSE(z.requires_grad());
    }
    CHECK((x * x).requires_grad());
}

TEST_CASE("a shared subexpression gets the sum of its users' gradients", "[graph]") {
    check_gradients(
        [](const std::vector<Tensor>& t) {
            Tensor s = t[0] * t[1];
            return exp(s) + s * s - sigmoid(s);
        },
        {random_array({3, 2}, 7), random_array({2}, 8)});
}

TEST_CASE("bad shapes throw the documented errors when the op is written", "[graph]") {
    Tensor a = Tensor::zeros({2, 3});
    Tensor b = Tensor::zeros({4, 5});
    try {
        matmul(a, b);
        FAIL("matmul accepted mismatched shapes");
    } catch (const ShapeError& e) {
        CHECK(std::string(e.what()) ==
              "matmul: a (2, 3) and b (4, 5): inner dimensions 3 and 4 differ");
    }
    CHECK_THROWS_WITH(a + b, "add: a (2, 3) and b (4, 5): shapes cannot be broadcast (axis 0: 2 "
                             "vs 4)");
    CHECK_THROWS_AS(a + Tensor::zeros({3}, DType::Float64), DTypeError);
    CHECK_THROWS_WITH(a + Tensor::zeros({3}, DType::Float64),
                      "add: a (2, 3) is float32 but b (3) is float64 (pynn does not promote "
                      "dtypes; convert one explicitly)");
    // All pynn errors derive from pynn::Error, itself a std::runtime_error.
    CHECK_THROWS_AS(reshape(a, {4}), Error);
    CHECK_THROWS_AS(reshape(a, {4}), std::runtime_error);
}

TEST_CASE("backward needs a scalar or a seed gradient", "[graph]") {
    Tensor x = Tensor::ones({2, 2}, DType::Float64).set_requires_grad();
    Tensor y = x * 3.0;
    CHECK_THROWS_AS(y.backward(), ShapeError);
    y.backward(Tensor::full({2, 2}, 2.0, DType::Float64));
    require_close(x.grad().values<double>(), xt::xarray<double>{{6.0, 6.0}, {6.0, 6.0}});
    CHECK_THROWS_AS(Tensor::ones({2}).sum().backward(), ValueError); // nothing requires grad
}

TEST_CASE("ComputeGraph evaluates several outputs and prints its schedule", "[graph]") {
    Tensor x = Tensor::from_values({1.0, 2.0, 3.0}, DType::Float64).set_name("x");
    Tensor s = sum(x);
    Tensor m = max(x);
    ComputeGraph g({s, m});
    g.run();
    CHECK(s.item() == 6.0);
    CHECK(m.item() == 3.0);
    CHECK(g.num_kernels() == 2);
    const std::string text = g.to_string();
    CHECK_THAT(text, Catch::Contains("plan: 2 kernels"));
    CHECK_THAT(text, Catch::Contains("'x'"));
}

TEST_CASE("values() checks the element type it is asked for", "[graph]") {
    Tensor x = Tensor::ones({2}, DType::Float64);
    CHECK_THROWS_AS(x.values<float>(), DTypeError);
    CHECK(x.values<double>()(1) == 1.0);
    Tensor f = Tensor::from_values(xt::xarray<float>{1.0F, 2.0F});
    CHECK(f.dtype() == DType::Float32);
    CHECK(Tensor::from_values(xt::xarray<double>{1.0}).dtype() == DType::Float64);
}

TEST_CASE("ComputeGraph::assign stores every value as if assigned, reading only old values",
          "[graph]") {
    Tensor a = Tensor::from_values({1.0, 2.0}, DType::Float64);
    Tensor b = Tensor::from_values({10.0, 20.0}, DType::Float64);
    Tensor c = Tensor::from_values({5.0, 6.0}, DType::Float64);
    // b's new value reads a's old one; c is given a leaf (copied, not swapped).
    for (int run = 0; run < 3; ++run) {
        const xt::xarray<double> a0 = a.values<double>();
        const xt::xarray<double> b0 = b.values<double>();
        ComputeGraph::assign({{a, a + b}, {b, a * 2.0}, {c, a}}).run();
        require_close(a.values<double>(), xt::xarray<double>(a0 + b0));
        require_close(b.values<double>(), xt::xarray<double>(a0 * 2.0));
        require_close(c.values<double>(), a0);
    }
}

TEST_CASE("ComputeGraph::assign recycles storages: a training step allocates no new ones",
          "[graph]") {
    Tensor w = Tensor::from_values({1.0F, 2.0F, 3.0F}).set_requires_grad();
    auto step = [&] {
        Tensor loss = sum(w * w);
        loss.zero_grad();
        loss.backward();
        ComputeGraph::assign({{w, w - w.grad() * 0.25F}}).run();
        return std::pair{w.node()->data->raw(), w.node()->grad->raw()};
    };
    step();
    const auto first = step();
    const auto second = step();
    const auto third = step();
    CHECK(second.first == first.first);   // w's new value is computed into its own storage
    CHECK(third.first == first.first);
    CHECK(third.second == second.second); // the gradient reuses its storage after zero_grad
    require_close(w.values<float>(), xt::xarray<float>{1.0F / 16, 2.0F / 16, 3.0F / 16}, 1e-6);
    // Someone else holds w's storage: it keeps the old values, and w's new value goes into
    // another storage, which the next steps then update in place.
    const StoragePtr held = w.node()->data;
    const auto fourth = step();
    const auto fifth = step();
    const auto sixth = step();
    CHECK(fourth.first != held->raw());
    CHECK(fifth.first == fourth.first);
    CHECK(sixth.first == fourth.first);
    const float* old = held->data<float>();
    require_close(xt::xarray<float>{old[0], old[1], old[2]},
                  xt::xarray<float>{1.0F / 16, 2.0F / 16, 3.0F / 16}, 1e-6);
    require_close(w.values<float>(), xt::xarray<float>{1.0F / 128, 2.0F / 128, 3.0F / 128}, 1e-6);
}

TEST_CASE("ComputeGraph::assign computes a value into its target unless the old value is read "
          "after it is written",
          "[graph]") {
    // Note [Writing into a leaf]. a's and b's new values are one fused region: a + b (written
    // first), then a * 2, which reads a after a's new value exists, so a's goes elsewhere; b is
    // not read after its new value, which goes into b's storage. Float32 runs compiled code
    // (when the CPU has it) and the interpreter; float64 the interpreter. 37 elements: SIMD
    // bodies and scalar tails.
    const bool saved_jit = Flags::jit();
    auto make = [](const xt::xarray<double>& values, DType dtype) {
        if (dtype == DType::Float64) {
            return Tensor::from_values(values);
        }
        return Tensor::from_values(xt::xarray<float>(xt::cast<float>(values)));
    };
    auto read = [](const Tensor& t) {
        if (t.dtype() == DType::Float64) {
            return t.values<double>();
        }
        return xt::xarray<double>(xt::cast<double>(t.values<float>()));
    };
    for (const DType dtype : {DType::Float32, DType::Float64}) {
        for (const bool jit : {true, false}) {
            Flags::set_jit(jit);
            Tensor a = make(random_array({37}, 1), dtype);
            Tensor b = make(random_array({37}, 2), dtype);
            for (int run = 0; run < 3; ++run) {
                const xt::xarray<double> a0 = read(a);
                const xt::xarray<double> b0 = read(b);
                const void* a_storage = a.node()->data->raw();
                const void* b_storage = b.node()->data->raw();
                ComputeGraph update = ComputeGraph::assign({{a, a + b}, {b, a * 2.0}});
                const std::string plan = update.to_string();
                INFO(plan);
                CHECK(plan.find("output 0: b") != std::string::npos);
                CHECK(plan.find("output 1: b") != std::string::npos);
                CHECK(plan.find(" (into b") == plan.rfind(" (into b")); // one output only
                CHECK(plan.find("(into b") > plan.find("output 1:"));
                update.run();
                require_close(read(a), xt::xarray<double>(a0 + b0), 1e-6);
                require_close(read(b), xt::xarray<double>(a0 * 2.0), 1e-6);
                CHECK(a.node()->data->raw() != a_storage);
                CHECK(b.node()->data->raw() == b_storage);
            }
        }
    }
    Flags::set_jit(saved_jit);
}

TEST_CASE("ComputeGraph::assign checks its writes", "[graph]") {
    Tensor a = Tensor::zeros({2, 3});
    CHECK_THROWS_WITH(ComputeGraph::assign({{a, Tensor::zeros({3, 2})}}),
                      "ComputeGraph::assign: write 0 target (2, 3) and value (3, 2): shapes differ");
    CHECK_THROWS_WITH(ComputeGraph::assign({{a + 1.0F, a}}),
                      Catch::Contains("is not a leaf"));
    CHECK_THROWS_WITH(ComputeGraph::assign({{a, a + 1.0F}, {a, a}}),
                      Catch::Contains("writes 0 and 1 have the same target"));
    CHECK_THROWS_AS(ComputeGraph::assign({{a, Tensor::zeros({2, 3}, DType::Float64)}}), DTypeError);
}

TEST_CASE("zero_grad keeps a gradient the user still holds intact", "[graph]") {
    Tensor x = Tensor::from_values({1.0, 2.0}, DType::Float64).set_requires_grad();
    Tensor loss = sum(x * x);
    loss.backward();
    Tensor held = x.grad();
    loss.zero_grad();
    Tensor loss3 = sum(x * 3.0);
    loss3.backward();
    require_close(held.values<double>(), xt::xarray<double>{2.0, 4.0});
    require_close(x.grad().values<double>(), xt::xarray<double>{3.0, 3.0});
}

TEST_CASE("gradients() returns lazy gradients equal to backward()'s", "[graph]") {
    Tensor w = Tensor::from_values(random_array({3, 4}, 11)).set_requires_grad();
    Tensor b = Tensor::from_values(random_array({4}, 12)).set_requires_grad();
    Tensor unused = Tensor::from_values(random_array({2}, 13)).set_requires_grad();
    Tensor x = Tensor::from_values(random_array({5, 3}, 14));
    Tensor loss = sum(tanh(matmul(x, w) + b));
    std::vector<Tensor> g = gradients(loss, {w, b, unused});
    CHECK_FALSE(w.has_grad()); // nothing ran, nothing was accumulated
    CHECK_FALSE(g[0].requires_grad());
    loss.backward();
    require_close(g[0].values<double>(), w.grad().values<double>());
    require_close(g[1].values<double>(), b.grad().values<double>());
    require_close(g[2].values<double>(), xt::zeros<double>({2}));
    // They compose: an SGD step and the loss in one plan, both from the old w.
    const xt::xarray<double> w0 = w.values<double>();
    const xt::xarray<double> grad0 = w.grad().values<double>();
    const double loss0 = loss.item();
    ComputeGraph step = ComputeGraph::assign({{w, w - g[0] * 0.5}}, {loss});
    step.run();
    require_close(w.values<double>(), xt::xarray<double>(w0 - 0.5 * grad0), 1e-12);
    CHECK(step.outputs()[1].item() == Approx(loss0).epsilon(1e-12));
}

TEST_CASE("gradients() checks its arguments", "[graph]") {
    Tensor w = Tensor::zeros({2}, DType::Float64).set_requires_grad();
    Tensor c = Tensor::zeros({2}, DType::Float64);
    CHECK_THROWS_WITH(gradients(w * 2.0, {w}),
                      Catch::Contains("gradients: loss (2) has 2 elements"));
    CHECK_THROWS_WITH(gradients(sum(w * c), {c}),
                      "gradients: wrt[0] (2) does not require grad");
    CHECK_THROWS_WITH(gradients(sum(w * 2.0), {w * 2.0}), Catch::Contains("is not a leaf"));
    CHECK_THROWS_AS(gradients(sum(c), {w}), ValueError);
}

TEST_CASE("fuzz regressions: repeated outputs, a view of a value read in its own region",
          "[graph]") {
    // fuzz/regressions/fuzz_graph/runtime-duplicate-outputs-use-after-free
    Tensor x = Tensor::from_values({-1.5}, DType::Float64);
    Tensor y = x - x;
    ComputeGraph g({y, y, y, x});
    g.run();
    g.run();
    CHECK(y.item() == 0.0);
    // fuzz/regressions/fuzz_graph/compiler-view-read-in-its-own-fused-region: reshape(a) read
    // by a step that would join a's region.
    Tensor a = Tensor::from_values({3.0}, DType::Float64);
    Tensor q = a / a;
    Tensor r = reshape(q, {}) / q;
    CHECK(r.values<double>()(0) == 1.0);
}
