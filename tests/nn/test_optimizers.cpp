// Each optimizer's update against a step computed by hand (the torch.optim formulas) on a small
// float64 tensor, plus the schedules and the error for a tensor that does not require grad.
#include <cmath>

#include <catch2/catch.hpp>

#include "graph/node.hpp"
#include "graph/storage.hpp"
#include "support/gradcheck.hpp"

using namespace pynn;
using pynn::testing::require_close;

namespace {

// A parameter p with gradient g set by backward of sum(p * g).
Tensor param_with_grad(const xt::xarray<double>& p, const xt::xarray<double>& g) {
    Tensor t = Tensor::from_values(p).set_requires_grad();
    sum(t * Tensor::from_values(g)).backward();
    return t;
}

void set_grad(Tensor& t, const xt::xarray<double>& g) {
    t.zero_grad();
    sum(t * Tensor::from_values(g)).backward();
}

const xt::xarray<double> kP{1.0, -2.0, 0.5};
const xt::xarray<double> kG{0.1, -0.3, 2.0};

} // namespace

TEST_CASE("SGD takes p - lr * g", "[nn][optim]") {
    Tensor p = param_with_grad(kP, kG);
    optimizers::SGD opt(0.1);
    opt.update({p});
    require_close(p.values<double>(), xt::xarray<double>(kP - 0.1 * kG));
}

TEST_CASE("SGD with momentum, weight decay and nesterov follows torch.optim.SGD", "[nn][optim]") {
    const double lr = 0.1, mu = 0.9, wd = 0.01;
    Tensor p = param_with_grad(kP, kG);
    optimizers::SGD opt(lr, mu, wd, /*nesterov=*/true);
    xt::xarray<double> ref = kP;
    xt::xarray<double> buf;
    const xt::xarray<double> g2{-0.5, 0.25, 1.0};
    for (int step = 0; step < 2; ++step) {
        const xt::xarray<double>& g_raw = step == 0 ? kG : g2;
        if (step == 1) {
            set_grad(p, g2);
        }
        xt::xarray<double> g = g_raw + wd * ref;
        buf = step == 0 ? g : xt::xarray<double>(mu * buf + g);
        ref = ref - lr * (g + mu * buf);
        opt.update({p});
        require_close(p.values<double>(), ref, 1e-12);
    }
}

TEST_CASE("Adam follows torch.optim.Adam over two steps", "[nn][optim]") {
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    Tensor p = param_with_grad(kP, kG);
    optimizers::Adam opt(lr, b1, b2, eps);
    xt::xarray<double> ref = kP;
    xt::xarray<double> m = xt::zeros<double>({3});
    xt::xarray<double> v = xt::zeros<double>({3});
    const xt::xarray<double> g2{0.3, 0.3, -1.0};
    for (int t = 1; t <= 2; ++t) {
        const xt::xarray<double>& g = t == 1 ? kG : g2;
        if (t == 2) {
            set_grad(p, g2);
        }
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        xt::xarray<double> mhat = m / (1 - std::pow(b1, t));
        xt::xarray<double> vhat = v / (1 - std::pow(b2, t));
        ref = ref - lr * mhat / (xt::sqrt(vhat) + eps);
        opt.update({p});
        require_close(p.values<double>(), ref, 1e-12);
    }
}

TEST_CASE("Adam in float32 updates the parameter in its own storage and follows the formula",
          "[nn][optim]") {
    // Note [Writing into a leaf]: the new value, m and v are computed into the storages they
    // replace (compiled code where the CPU has it, else the interpreter; 37 elements: SIMD bodies
    // and scalar tails), against the formula in float64.
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    const xt::xarray<double> p0 = pynn::testing::random_array({37}, 3);
    Tensor p = Tensor::from_values(xt::xarray<float>(xt::cast<float>(p0))).set_requires_grad();
    optimizers::Adam opt(lr, b1, b2, eps);
    xt::xarray<double> ref = xt::cast<double>(xt::xarray<float>(xt::cast<float>(p0)));
    xt::xarray<double> m = xt::zeros<double>({37});
    xt::xarray<double> v = xt::zeros<double>({37});
    const void* storage = nullptr;
    for (int t = 1; t <= 4; ++t) {
        const xt::xarray<double> g = pynn::testing::random_array({37}, 10 + t);
        p.zero_grad();
        sum(p * Tensor::from_values(xt::xarray<float>(xt::cast<float>(g)))).backward();
        const xt::xarray<double> gf = xt::cast<double>(xt::xarray<float>(xt::cast<float>(g)));
        m = b1 * m + (1 - b1) * gf;
        v = b2 * v + (1 - b2) * gf * gf;
        ref = ref - lr * (m / (1 - std::pow(b1, t))) / (xt::sqrt(v / (1 - std::pow(b2, t))) + eps);
        opt.update({p});
        require_close(xt::xarray<double>(xt::cast<double>(p.values<float>())), ref, 1e-5);
        if (t == 2) {
            storage = p.node()->data->raw();
        } else if (t > 2) {
            CHECK(p.node()->data->raw() == storage);
        }
    }
}

TEST_CASE("AdamW decays weights decoupled from the gradient", "[nn][optim]") {
    const double lr = 0.01, wd = 0.1;
    Tensor p = param_with_grad(kP, kG);
    optimizers::AdamW opt(lr, 0.9, 0.999, 1e-8, wd);
    opt.update({p});
    // First step: mhat = g, vhat = g^2, so the Adam part is lr * g / (|g| + eps).
    xt::xarray<double> expected = kP * (1 - lr * wd) - lr * kG / (xt::abs(kG) + 1e-8);
    require_close(p.values<double>(), expected, 1e-12);
}

TEST_CASE("RMSprop follows torch.optim.RMSprop", "[nn][optim]") {
    const double lr = 0.01, alpha = 0.99, eps = 1e-8;
    Tensor p = param_with_grad(kP, kG);
    optimizers::RMSprop opt(lr, alpha, eps);
    opt.update({p});
    xt::xarray<double> sq = (1 - alpha) * kG * kG;
    require_close(p.values<double>(), xt::xarray<double>(kP - lr * kG / (xt::sqrt(sq) + eps)),
                  1e-12);
}

TEST_CASE("the optimizer's update compiles once and is reused", "[nn][optim]") {
    Tensor p = param_with_grad(kP, kG);
    optimizers::Adam opt(0.01);
    opt.update({p});
    set_grad(p, kG);
    const PlanCacheStats before = plan_cache_stats();
    opt.update({p}); // new step count and bias corrections: data, not structure
    CHECK(plan_cache_stats().misses == before.misses);
}

TEST_CASE("the cached update follows lr changes, new gradients and parameters without one",
          "[nn][optim]") {
    // Note [Cached update]: steps 2.. rerun the plan of step 1 with refreshed leaves; this checks
    // them against the formula over four steps with a different lr each, and a second parameter
    // that has a gradient only on some steps (its update is skipped then, as in torch).
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    Tensor p = param_with_grad(kP, kG);
    Tensor q = param_with_grad(kG, kP);
    optimizers::Adam opt(0.01, b1, b2, eps);
    xt::xarray<double> ref = kP;
    xt::xarray<double> m = xt::zeros<double>({3});
    xt::xarray<double> v = xt::zeros<double>({3});
    xt::xarray<double> q_ref = q.values<double>();
    for (int t = 1; t <= 4; ++t) {
        const double lr = 0.01 * t;
        const xt::xarray<double> g = kG * static_cast<double>(t) - 0.5;
        set_grad(p, g);
        if (t % 2 == 0) {
            q.zero_grad();
        } else {
            set_grad(q, kP);
        }
        opt.set_lr(lr);
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        ref = ref - lr * (m / (1 - std::pow(b1, t))) /
                        (xt::sqrt(v / (1 - std::pow(b2, t))) + eps);
        const xt::xarray<double> q_before = q.values<double>();
        opt.update({p, q});
        require_close(p.values<double>(), ref, 1e-12);
        if (t % 2 == 0) {
            require_close(q.values<double>(), q_before, 0.0); // no gradient: unchanged
        } else {
            const bool changed = !(q.values<double>() == q_before);
            CHECK(changed);
        }
    }
}

TEST_CASE("an optimizer refuses a tensor that does not require grad", "[nn][optim]") {
    Tensor frozen = Tensor::ones({2, 2});
    optimizers::SGD opt(0.1);
    CHECK_THROWS_WITH(opt.update({frozen}),
                      "optimizer: parameter 0 (2, 2) does not require grad; call "
                      "set_requires_grad(true) on parameters");
}

TEST_CASE("learning-rate schedules", "[nn][optim]") {
    optimizers::SGD opt(1.0);
    SECTION("step decay") {
        optimizers::StepLR sched(opt, 2, 0.5);
        sched.step();
        CHECK(opt.lr() == Approx(1.0));
        sched.step();
        CHECK(opt.lr() == Approx(0.5));
        sched.step();
        sched.step();
        CHECK(opt.lr() == Approx(0.25));
    }
    SECTION("cosine") {
        optimizers::CosineAnnealingLR sched(opt, 4, 0.0);
        sched.step();
        CHECK(opt.lr() == Approx((1 + std::cos(M_PI / 4)) / 2));
        sched.step();
        CHECK(opt.lr() == Approx(0.5));
        sched.step();
        sched.step();
        CHECK(opt.lr() == Approx(0.0).margin(1e-12));
    }
}

TEST_CASE("Adam and SGD with momentum update each parameter in one fused kernel", "[nn][optim]") {
    const bool saved = Flags::fusion();
    Flags::set_fusion(true);
    Tensor w = Tensor::randn({6, 4}).set_requires_grad();
    Tensor b = Tensor::zeros({4}).set_requires_grad();
    Tensor v = Tensor::randn({4, 3}).set_requires_grad();
    auto step = [&](optimizers::Optimizer& opt) {
        Tensor loss = mean(square(matmul(tanh(matmul(Tensor::randn({5, 6}), w) + b), v)));
        loss.zero_grad();
        loss.backward();
        opt.update({w, b, v});
        return opt.last_update_kernels();
    };
    optimizers::Adam adam(0.01);
    CHECK(step(adam) == 3);
    optimizers::SGD sgd(0.1, 0.9);
    step(sgd);              // the first step only starts the momentum buffers
    CHECK(step(sgd) == 3);  // buf = mu * buf + g; p -= lr * buf: one kernel per parameter
    Flags::set_fusion(saved);
}
