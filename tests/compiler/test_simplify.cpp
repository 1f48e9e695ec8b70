// Tests for the simplify pass (src/compiler/simplify.cpp): each rule shrinks the DAG it applies to
// (counted on simplify()'s result, and as plan kernels with the pass on and off) while the values
// stay those of the unsimplified plan (float64, 1e-12); the MLP training step loses kernels and
// keeps its loss and gradients; gradients still match finite differences with the pass on.
#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>

#include <random>

#include "compiler/simplify.hpp"
#include "support/gradcheck.hpp"

using namespace pynn;
using pynn::testing::check_gradients;
using pynn::testing::random_array;
using pynn::testing::require_close;

namespace {

// Sets the compiler switches for one scope. Fusion is off unless asked for, so kernel counts are
// the primitive ops simplify leaves.
class PassFlags {
public:
    explicit PassFlags(bool simplify, bool fusion = false) {
        Flags::set_simplify(simplify);
        Flags::set_fusion(fusion);
    }
    PassFlags(const PassFlags&) = delete;
    PassFlags& operator=(const PassFlags&) = delete;
    ~PassFlags() {
        Flags::set_simplify(m_simplify);
        Flags::set_fusion(m_fusion);
    }

private:
    bool m_simplify = Flags::simplify();
    bool m_fusion = Flags::fusion();
};

Tensor data(const Shape& shape, std::uint64_t seed) {
    return Tensor::from_values(random_array(shape, seed));
}
// A leaf the compiler may treat as a constant: simplify() is told it is not user data.
Tensor constant(const Shape& shape, double value) {
    return Tensor::full(shape, value, DType::Float64);
}

// simplify() on `outputs`, with `data_leaves` as the user's leaves (every other leaf is constant).
std::vector<NodePtr> simplified(const std::vector<Tensor>& outputs,
                                const std::vector<Tensor>& data_leaves) {
    std::vector<NodePtr> roots;
    for (const Tensor& t : outputs) {
        roots.push_back(t.node());
    }
    std::vector<Node*> leaves;
    for (const Tensor& t : data_leaves) {
        leaves.push_back(t.node().get());
    }
    return compiler::simplify(roots, leaves);
}
NodePtr simplified(const Tensor& output, const std::vector<Tensor>& data_leaves) {
    return simplified(std::vector<Tensor>{output}, data_leaves).front();
}

// Non-leaf nodes reachable from the roots: the kernels lowering would emit.
std::size_t count_ops(const std::vector<NodePtr>& roots) {
    std::vector<Node*> raw;
    for (const NodePtr& r : roots) {
        raw.push_back(r.get());
    }
    std::size_t n = 0;
    for (Node* node : topological_order(raw)) {
        n += node->is_leaf() ? 0 : 1;
    }
    return n;
}
std::size_t count_ops(const NodePtr& root) { return count_ops(std::vector<NodePtr>{root}); }
std::size_t count_ops(const Tensor& t) { return count_ops(t.node()); }

// The value of a DAG built from the simplified roots (leaves keep their data).
xt::xarray<double> value_of(const NodePtr& root) {
    PassFlags flags(false);
    if (root->is_leaf()) {
        return Tensor(root).values<double>();
    }
    // Wrap the root so the original output node keeps its own cached value untouched.
    Tensor t = Tensor(root) * 1.0;
    return t.values<double>();
}
xt::xarray<double> value_of(const Tensor& t) { return value_of(t.node()); }

template <class OpT>
bool is(const NodePtr& n) {
    return std::holds_alternative<OpT>(n->op);
}

std::size_t kernels(const std::vector<Tensor>& outputs, bool simplify) {
    PassFlags flags(simplify);
    return ComputeGraph(outputs).num_kernels();
}

std::vector<xt::xarray<double>> run(const std::vector<Tensor>& outputs, bool simplify) {
    PassFlags flags(simplify);
    ComputeGraph g(outputs);
    g.run();
    std::vector<xt::xarray<double>> values;
    for (const Tensor& t : outputs) {
        values.push_back(t.values<double>());
    }
    return values;
}

// Same values with and without the pass, and `expect_fewer` kernels fewer with it.
void check_plan(const std::vector<Tensor>& outputs, std::size_t expect_fewer) {
    const std::size_t before = kernels(outputs, false);
    const std::size_t after = kernels(outputs, true);
    INFO("kernels without simplify " << before << ", with " << after);
    CHECK(after + expect_fewer == before);
    const auto expected = run(outputs, false);
    const auto actual = run(outputs, true);
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        require_close(actual[i], expected[i], 1e-12);
    }
}

struct Step {
    double loss = 0;
    std::vector<xt::xarray<double>> grads;
    std::size_t kernels = 0;
};

// loss.backward() for `params` with the pass on or off.
Step backward(const Tensor& loss, const std::vector<Tensor>& params, bool simplify,
              bool fusion = false) {
    PassFlags flags(simplify, fusion);
    loss.zero_grad();
    ComputeGraph g = ComputeGraph::backward(loss, Tensor(), {});
    g.run();
    Step s;
    s.loss = loss.item();
    s.kernels = g.num_kernels();
    for (const Tensor& p : params) {
        s.grads.push_back(p.has_grad() ? p.grad().values<double>()
                                       : xt::xarray<double>(xt::zeros<double>(p.shape())));
    }
    return s;
}

void check_backward(const Tensor& loss, const std::vector<Tensor>& params,
                    std::size_t expect_fewer) {
    const Step off = backward(loss, params, false);
    const Step on = backward(loss, params, true);
    INFO("backward kernels without simplify " << off.kernels << ", with " << on.kernels);
    CHECK(on.kernels + expect_fewer == off.kernels);
    CHECK(on.loss == Approx(off.loss).epsilon(1e-12));
    for (std::size_t i = 0; i < params.size(); ++i) {
        require_close(on.grads[i], off.grads[i], 1e-12);
    }
}

} // namespace

TEST_CASE("simplify: common subexpressions are computed once", "[compiler]") {
    Tensor x = data({3, 4}, 1);
    Tensor y = data({3, 4}, 1); // same values, another leaf: never merged with x
    SECTION("structurally equal nodes merge") {
        Tensor out = exp(x) * sigmoid(x) + exp(x) * sigmoid(x);
        CHECK(count_ops(out) == 7);
        NodePtr s = simplified(out, {x});
        CHECK(count_ops(s) == 4);
        require_close(value_of(s), value_of(out));
        check_plan({out}, 3);
    }
    SECTION("distinct leaves stay distinct, even with equal values") {
        Tensor out = exp(x) + exp(y);
        CHECK(count_ops(simplified(out, {x, y})) == 3);
        check_plan({out}, 0);
    }
    SECTION("attributes are part of the key") {
        std::vector<Tensor> outputs = {max(x, {0}), max(x, {0}, true), max(x, {1}), max(x, {0})};
        std::vector<NodePtr> s = simplified(outputs, {x});
        CHECK(count_ops(s) == 3); // only the repeated max over axis 0 merges
        CHECK(s[3] == s[0]);
        check_plan(outputs, 1);
    }
    SECTION("constants of equal value count as one input") {
        Tensor out = x * constant({}, 0.5) + x * constant({}, 0.5);
        NodePtr s = simplified(out, {x});
        CHECK(count_ops(s) == 2);
        require_close(value_of(s), value_of(out));
    }
    SECTION("outputs that become equal share one buffer") {
        Tensor a = tanh(x);
        Tensor b = tanh(x);
        std::vector<NodePtr> s = simplified({a, b}, {x});
        CHECK(s[0] == s[1]);
        check_plan({a, b}, 1);
    }
}

TEST_CASE("simplify: only what the outputs still need is lowered", "[compiler]") {
    Tensor x = data({4}, 2);
    // where() with a constant condition drops the side it never picks, and all that feeds it.
    Tensor out = where(constant({4}, 1.0), exp(x), log(abs(x)) * sqrt(abs(x)));
    CHECK(count_ops(out) == 7);
    NodePtr s = simplified(out, {x});
    CHECK(count_ops(s) == 1);
    CHECK(is<Exp>(s));
    require_close(value_of(s), value_of(out));
}

TEST_CASE("simplify: subgraphs of constants are folded", "[compiler]") {
    Tensor x = data({2, 3}, 3);
    SECTION("a constant expression becomes one constant leaf") {
        Tensor c = exp(constant({3}, 0.5)) * constant({}, 2.0) + constant({2, 3}, 1.0);
        Tensor out = x * c;
        CHECK(count_ops(out) == 4);
        NodePtr s = simplified(out, {x});
        CHECK(count_ops(s) == 1);
        REQUIRE(s->inputs[1]->is_leaf());
        CHECK(s->inputs[1]->shape == Shape{2, 3});
        CHECK(s->inputs[1]->dtype == DType::Float64);
        require_close(value_of(s->inputs[1]), value_of(c));
        require_close(value_of(s), value_of(out));
    }
    SECTION("the user's leaves are data, never folded") {
        Tensor out = exp(x) * 2.0;
        NodePtr s = simplified(out, {x, Tensor(out.node()->inputs[1])});
        CHECK(count_ops(s) == 2);
        CHECK(s == out.node()); // nothing changed: the same node comes back
    }
    SECTION("a data leaf holding 1 is not an identity: the cached plan sees its new value") {
        Tensor one = Tensor::scalar(1.0, DType::Float64);
        auto times = [&] { return sum(x * one); };
        const double base = times().item();
        CHECK(kernels({times()}, true) == kernels({times()}, false));
        one.assign(Tensor::scalar(3.0, DType::Float64));
        PassFlags flags(true);
        CHECK(times().item() == Approx(3.0 * base).epsilon(1e-12));
    }
    SECTION("large broadcasts of a constant are not baked into the plan") {
        NodePtr big = simplified(broadcast_to(constant({}, 2.0), {100, 100}), {});
        CHECK(is<BroadcastTo>(big));
        NodePtr small = simplified(broadcast_to(constant({}, 2.0), {4, 4}), {});
        CHECK(small->is_leaf());
        CHECK(small->shape == Shape{4, 4});
    }
    SECTION("backward graphs fold their seed and constants") {
        // d sum(x * x)/dx: the ones seed, its reshape and broadcast fold; x * ones is x.
        Tensor w = data({3, 4}, 4).set_requires_grad();
        Tensor loss = sum(w * w);
        check_backward(loss, {w}, 4);
    }
}

TEST_CASE("simplify: x * 1, x + 0 and friends are x when the shape allows", "[compiler]") {
    Tensor x = data({2, 3}, 5);
    Tensor one = constant({3}, 1.0); // all-equal, broadcasts against x
    Tensor zero = constant({}, 0.0);
    for (const Tensor& out :
         {x * one, one * x, x + zero, zero + x, x - zero, x / one, pow(x, one), x.detach()}) {
        NodePtr s = simplified(out, {x});
        CHECK(s == x.node());
    }
    SECTION("when the constant widens x, the result is broadcast_to(x)") {
        Tensor v = data({3}, 6);
        Tensor out = v * constant({2, 3}, 1.0);
        NodePtr s = simplified(out, {v});
        REQUIRE(is<BroadcastTo>(s));
        CHECK(s->inputs[0] == v.node());
        CHECK(s->shape == Shape{2, 3});
        require_close(value_of(s), value_of(out));
    }
    SECTION("a constant that is not all equal is kept") {
        Tensor out = x * Tensor::from_values({1.0, 1.0, 2.0}, DType::Float64);
        CHECK(is<Mul>(simplified(out, {x})));
    }
    SECTION("x * -1, x / -1 and 0 - x are -x") {
        for (const Tensor& out : {x * constant({}, -1.0), x / constant({}, -1.0), zero - x}) {
            NodePtr s = simplified(out, {x});
            REQUIRE(is<Neg>(s));
            CHECK(s->inputs[0] == x.node());
            require_close(value_of(s), value_of(out));
        }
    }
    SECTION("x * 0 is 0 only when x cannot be inf or nan") {
        Tensor wild = Tensor::from_values({1.0, INFINITY, NAN}, DType::Float64);
        NodePtr kept = simplified(wild * zero, {wild});
        CHECK(is<Mul>(kept));
        Tensor mask = gt(x, zero);
        NodePtr zeros = simplified(mask * zero, {x});
        REQUIRE(zeros->is_leaf());
        require_close(value_of(zeros), xt::xarray<double>(xt::zeros<double>({2, 3})));
    }
    SECTION("in a backward graph") {
        // mean's backward multiplies the ones seed by 1/count; tanh's by constants.
        Tensor w = data({4, 3}, 7).set_requires_grad();
        Tensor b = data({3}, 8).set_requires_grad();
        Tensor loss = mean(tanh(w) * b - w);
        check_backward(loss, {w, b}, 4);
    }
}

TEST_CASE("simplify: negations cancel and fold into their users", "[compiler]") {
    Tensor x = data({3, 2}, 9);
    Tensor y = data({3, 2}, 10);
    SECTION("-(-x) is x") {
        CHECK(simplified(-(-x), {x}) == x.node());
        check_plan({exp(-(-x))}, 2);
    }
    SECTION("a + -b, a - -b, -a * -b") {
        Tensor out = (x + -y) * (x - -y) + (-x) * (-y);
        NodePtr s = simplified(out, {x, y});
        CHECK(count_ops(s) == 5);
        require_close(value_of(s), value_of(out));
        check_plan({out}, count_ops(out) - 5);
    }
    SECTION("-(a - b) is b - a and -(x * c) is x * (-c)") {
        Tensor out = -(x - y) + -(x * constant({}, 3.0));
        NodePtr s = simplified(out, {x, y});
        CHECK(count_ops(s) == 3);
        require_close(value_of(s), value_of(out));
    }
}

TEST_CASE("simplify: movement ops compose", "[compiler]") {
    Tensor x = data({2, 3, 4}, 11);
    SECTION("transpose of transpose is x") {
        Tensor out = transpose(transpose(x));
        CHECK(simplified(out, {x}) == x.node());
        check_plan({exp(out)}, 2);
    }
    SECTION("permute of permute is one permute") {
        Tensor out = permute(permute(x, {1, 2, 0}), {0, 2, 1});
        NodePtr s = simplified(out, {x});
        REQUIRE(is<Permute>(s));
        CHECK(s->inputs[0] == x.node());
        CHECK(std::get<Permute>(s->op).perm == std::vector<int>{1, 0, 2});
        check_plan({out}, 1);
    }
    SECTION("reshape of reshape is one reshape; reshape to the same shape is nothing") {
        Tensor out = reshape(reshape(reshape(x, {6, 4}), {4, 6}), {24});
        NodePtr s = simplified(out, {x});
        REQUIRE(is<Reshape>(s));
        CHECK(s->inputs[0] == x.node());
        check_plan({out}, 2);
        CHECK(simplified(reshape(reshape(x, {6, 4}), {2, 3, 4}), {x}) == x.node());
    }
    SECTION("broadcast_to of broadcast_to, and a reshape of one value before it") {
        Tensor s0 = data({}, 12);
        Tensor out = broadcast_to(reshape(broadcast_to(reshape(s0, {1}), {3}), {3, 1}), {3, 5});
        NodePtr s = simplified(out, {s0});
        REQUIRE(is<BroadcastTo>(s));
        CHECK(s->inputs[0] == s0.node());
        check_plan({out}, 3);
    }
    SECTION("a broadcast_to feeding an elementwise op is left to the op") {
        Tensor row = data({4}, 13);
        Tensor out = broadcast_to(row, {2, 3, 4}) * x;
        NodePtr s = simplified(out, {x, row});
        CHECK(count_ops(s) == 1);
        check_plan({out}, 1);
        // Kept when the op would not broadcast to the full shape without it.
        Tensor col = data({3, 1}, 14);
        Tensor kept = broadcast_to(col, {3, 4}) + col;
        CHECK(count_ops(simplified(kept, {col})) == 2);
    }
    SECTION("matmul of a transposed operand uses the transpose flag") {
        Tensor a = data({5, 3}, 15);
        Tensor b = data({4, 3}, 16);
        Tensor t = matmul(a, transpose(b));
        NodePtr s = simplified(t, {a, b});
        REQUIRE(is<Matmul>(s));
        CHECK(std::get<Matmul>(s->op).trans_b);
        CHECK(s->inputs[1] == b.node());
        check_plan({t}, 1);
        Tensor batched = matmul(transpose(data({2, 3, 5}, 17), 1, 2), data({2, 3, 4}, 18));
        check_plan({batched}, 1);
    }
}

TEST_CASE("simplify: sums over broadcast axes are a multiplication", "[compiler]") {
    SECTION("summing exactly the broadcast axes") {
        Tensor x = data({3, 1}, 19);
        Tensor out = sum(broadcast_to(x, {2, 3, 5}), {0, 2});
        NodePtr s = simplified(out, {x});
        CHECK(count_ops(s) == 2); // reshape (3, 1) -> (3), then * 10
        require_close(value_of(s), value_of(out));
        check_plan({out}, 0);
        check_plan({sum(broadcast_to(x, {3, 4}), {1}, true)}, 1); // x * 4 only
    }
    SECTION("broadcast axes left unsummed stay broadcast") {
        Tensor x = data({1, 4}, 20);
        Tensor out = sum(broadcast_to(x, {6, 3, 4}), {0}, true);
        NodePtr s = simplified(out, {x});
        CHECK(s->shape == Shape{1, 3, 4});
        require_close(value_of(s), value_of(out), 1e-12);
    }
    SECTION("a summed axis that x really has is not rewritten") {
        Tensor x = data({3, 4}, 21);
        Tensor out = sum(broadcast_to(x, {2, 3, 4}), {1});
        CHECK(is<ReduceSum>(simplified(out, {x})));
        check_plan({out}, 0);
    }
    SECTION("sum over size-1 axes is a reshape, and sums of sums merge") {
        Tensor x = data({3, 1, 4}, 22);
        CHECK(is<Reshape>(simplified(sum(x, {1}), {x})));
        CHECK(simplified(sum(x, {1}, true), {x}) == x.node());
        Tensor nested = sum(sum(exp(x), {2}), {0});
        NodePtr s = simplified(nested, {x});
        REQUIRE(is<ReduceSum>(s));
        CHECK(std::get<ReduceSum>(s->op).axes == std::vector<int>{0, 2});
        check_plan({nested}, 1);
    }
    SECTION("in a backward graph: bias gradients of a mean") {
        // sum's backward broadcasts; the bias's reduce_to_shape sums it again.
        Tensor x = data({5, 3}, 23);
        Tensor b = data({3}, 24).set_requires_grad();
        Tensor c = data({}, 25).set_requires_grad();
        Tensor loss = sum(x + b) + mean(x * c);
        const Step off = backward(loss, {b, c}, false);
        const Step on = backward(loss, {b, c}, true);
        CHECK(on.kernels < off.kernels);
        require_close(on.grads[0], off.grads[0]);
        require_close(on.grads[1], off.grads[1]);
    }
}

TEST_CASE("simplify: roots keep their count, order, shapes and dtypes", "[compiler]") {
    Tensor x = data({2, 3}, 26);
    std::vector<Tensor> outputs = {x * constant({}, 1.0), reshape(reshape(x, {3, 2}), {2, 3}),
                                   constant({}, 2.0) * constant({}, 3.0), exp(x), exp(x)};
    std::vector<NodePtr> s = simplified(outputs, {x});
    REQUIRE(s.size() == outputs.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        CHECK(s[i]->shape == outputs[i].shape());
        CHECK(s[i]->dtype == outputs[i].dtype());
    }
    CHECK(s[0] == x.node());
    CHECK(s[1] == x.node());
    CHECK(s[2]->is_leaf());
    CHECK(value_of(s[2])() == 6.0);
    CHECK(s[3] == s[4]);
    // Nothing the user built was changed.
    CHECK(std::holds_alternative<Mul>(outputs[0].node()->op));
    CHECK(outputs[0].node()->inputs[0] == x.node());
}

TEST_CASE("simplify: a gradient may become a leaf or a constant", "[compiler]") {
    PassFlags flags(true);
    Tensor w = data({2, 3}, 40).set_requires_grad();
    Tensor x = data({2, 3}, 41);
    SECTION("d sum(w * x)/dw is the data leaf x, read again on every run of the cached plan") {
        auto step = [&] {
            Tensor loss = sum(w * x);
            loss.zero_grad();
            ComputeGraph g = ComputeGraph::backward(loss, Tensor(), {});
            g.run();
            return g.num_kernels();
        };
        CHECK(step() == 2); // mul, sum: the gradient is x itself
        require_close(w.grad().values<double>(), x.values<double>());
        const PlanCacheStats before = plan_cache_stats();
        x.assign_values(random_array({2, 3}, 42));
        step();
        CHECK(plan_cache_stats().hits == before.hits + 1);
        require_close(w.grad().values<double>(), random_array({2, 3}, 42));
    }
    SECTION("d sum(w)/dw is a constant; gradients still accumulate") {
        Tensor loss = sum(w);
        loss.zero_grad();
        loss.backward();
        loss.backward();
        require_close(w.grad().values<double>(),
                      xt::xarray<double>(xt::ones<double>({2, 3}) * 2.0));
    }
}

TEST_CASE("simplify: the MLP training step has fewer kernels and the same loss and gradients",
          "[compiler]") {
    const DType saved = Flags::global_type();
    Flags::set_global_type(DType::Float64);
    manual_seed(7);
    auto x_input = Tensor::randn({16, 20});
    auto h = layers::Dense(20, 32, relu)(x_input);
    h = layers::Dense(32, 16, relu)(h);
    h = layers::Dense(16, 10, softmax)(h);
    models::Model model(x_input, h);
    Flags::set_global_type(saved);

    Tensor xb = Tensor::randn({16, 20}, 0.0, 1.0, DType::Float64);
    Tensor labels =
        Tensor::from_values({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5}, DType::Float64);
    Tensor yb = one_hot(labels, 10).detach();
    Tensor loss = losses::categorical_cross_entropy(model(xb), yb);
    const std::vector<Tensor> params = model.parameters();

    const Step off = backward(loss, params, false);
    const Step on = backward(loss, params, true);
    INFO("MLP step kernels: " << off.kernels << " without simplify, " << on.kernels << " with");
    CHECK(on.kernels < off.kernels);
    CHECK(on.loss == Approx(off.loss).epsilon(1e-12));
    REQUIRE(on.grads.size() == params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
        require_close(on.grads[i], off.grads[i], 1e-12);
    }
    SECTION("also with fusion on") {
        const Step fused_off = backward(loss, params, false, true);
        const Step fused_on = backward(loss, params, true, true);
        INFO("fused: " << fused_off.kernels << " without simplify, " << fused_on.kernels);
        CHECK(fused_on.kernels < fused_off.kernels);
        CHECK(fused_on.loss == Approx(off.loss).epsilon(1e-12));
        for (std::size_t i = 0; i < params.size(); ++i) {
            require_close(fused_on.grads[i], off.grads[i], 1e-12);
        }
    }
}

TEST_CASE("simplify: gradients of composite graphs match finite differences", "[compiler]") {
    PassFlags flags(true, Flags::fusion());
    SECTION("softmax cross-entropy over an affine map") {
        check_gradients(
            [](const std::vector<Tensor>& t) {
                Tensor logits = matmul(t[0], transpose(t[1])) + t[2];
                return -sum(t[3] * log_softmax(logits, -1), {-1});
            },
            {random_array({4, 3}, 30), random_array({5, 3}, 31), random_array({5}, 32),
             random_array({4, 5}, 33, 0.0, 1.0)});
    }
    SECTION("broadcasts, means, transposes and negations") {
        check_gradients(
            [](const std::vector<Tensor>& t) {
                Tensor a = transpose(transpose(t[0])) * t[1] - -t[1];
                Tensor m = mean(broadcast_to(t[1], {3, 4}), {0}, true);
                return sum(tanh(a) * m, {1}) + mean(-(-square(t[0])));
            },
            {random_array({3, 4}, 34), random_array({4}, 35)});
    }
    SECTION("max, min, where and reshapes") {
        check_gradients(
            [](const std::vector<Tensor>& t) {
                Tensor r = reshape(reshape(t[0], {6, 2}), {2, 6});
                Tensor c = clip(r, -0.5, 0.5) + max(r, {1}, true) - min(r, {0}, true);
                return where(gt(r, Tensor::scalar(0.0, DType::Float64)), gelu(c), sigmoid(c));
            },
            {random_array({3, 4}, 36)});
    }
}

TEST_CASE("simplify: random graphs give the same values and gradients", "[compiler]") {
    std::mt19937_64 rng(2024);
    auto pick = [&](std::size_t n) {
        return static_cast<std::size_t>(std::uniform_int_distribution<std::size_t>(0, n - 1)(rng));
    };
    for (int trial = 0; trial < 200; ++trial) {
        Tensor a = data({3, 4}, 100 + static_cast<std::uint64_t>(trial)).set_requires_grad();
        Tensor b = data({4}, 500 + static_cast<std::uint64_t>(trial)).set_requires_grad();
        std::vector<Tensor> pool = {a, b, a * 1.0};
        for (int k = 0; k < 8; ++k) {
            const Tensor& u = pool[pick(pool.size())];
            const Tensor& v = pool[pick(pool.size())];
            Tensor r;
            switch (pick(12)) {
            case 0: r = u.shape() == v.shape() || v.dim() == 1 ? u + v : u - 0.0; break;
            case 1: r = u.shape() == v.shape() || v.dim() == 1 ? u * v : u * 1.0; break;
            case 2: r = -u; break;
            case 3: r = tanh(u); break;
            case 4: r = u.dim() == 2 ? transpose(transpose(u)) : u * 2.0; break;
            case 5: r = u.dim() == 2 ? sum(broadcast_to(u, {2, 3, 4}), {0}) : u / 1.0; break;
            case 6: r = u.dim() == 2 ? reshape(reshape(u, {12}), {3, 4}) : u.detach() * u; break;
            case 7: r = u.dim() == 2 ? mean(u, {0}) : sum(broadcast_to(u, {3, 4}), {0}); break;
            case 8: r = u.dim() == 1 ? broadcast_to(u, {3, 4}) * 1.0 : u + 0.0; break;
            case 9: r = exp(-(-u)) - u; break;
            case 10: r = u.dim() == 2 ? matmul(transpose(u), u) * 0.1 : u * 0.0; break;
            default: r = where(gt(u, Tensor::scalar(0.0, DType::Float64)), u, -u); break;
            }
            if (r.dim() == 2 && r.shape() != Shape{3, 4}) {
                r = sum(r);
            }
            pool.push_back(r);
        }
        Tensor loss = sum(pool.back()) + sum(pool[pool.size() - 2]);
        INFO("trial " << trial);
        const Step off = backward(loss, {a, b}, false);
        const Step on = backward(loss, {a, b}, true);
        CHECK(on.kernels <= off.kernels);
        CHECK(on.loss == Approx(off.loss).epsilon(1e-10));
        require_close(on.grads[0], off.grads[0], 1e-10);
        require_close(on.grads[1], off.grads[1], 1e-10);
    }
}
