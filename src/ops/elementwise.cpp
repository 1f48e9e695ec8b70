// Elementwise primitives: builders with their shape rules, forward kernels (kernels::map over the
// functors) and backward rules, one op after another.
#include "ops/elementwise.hpp"

#include <charconv>

#include "kernels/elementwise.hpp"
#include "ops/builder.hpp"
#include "ops/elementwise_functors.hpp"
#include "pynn/math.hpp"

namespace pynn {

Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b,
                       std::string_view label_a, std::string_view label_b) {
    const std::size_t rank = std::max(a.size(), b.size());
    Shape out(rank);
    for (std::size_t i = 0; i < rank; ++i) {
        const std::size_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
        const std::size_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
        PYNN_CHECK(da == db || da == 1 || db == 1, ShapeError, op, ": ", label_a, " ", to_string(a),
                   " and ", label_b, " ", to_string(b), ": shapes cannot be broadcast (axis ", i,
                   ": ", da, " vs ", db, ")");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

namespace {

template <class F, std::size_t N>
void run_map(const KernelArgs& args, const F& f) {
    dispatch_dtype(args.dtype, [&]<class T>() {
        std::array<const T*, N> in;
        std::array<const Shape*, N> shapes;
        for (std::size_t k = 0; k < N; ++k) {
            in[k] = args.input<T>(k);
            shapes[k] = args.in[k].shape;
        }
        kernels::map<T, N>(args.out_shape, args.output<T>(), in, shapes, f);
    });
}

template <class OpT>
Tensor binary(const Tensor& a, const Tensor& b) {
    constexpr std::string_view name = OpT::name;
    check_defined(name, a, "a");
    check_defined(name, b, "b");
    check_same_dtype(name, a, b);
    Shape shape = broadcast_shapes(name, a.shape(), b.shape());
    return make_tensor(OpT{}, {a, b}, std::move(shape), a.dtype());
}

template <class OpT>
Tensor unary(const Tensor& x, OpT op = {}) {
    check_defined(OpT::name, x);
    return make_tensor(op, {x}, x.shape(), x.dtype());
}

Tensor scalar_like(double value, const Tensor& like) { return Tensor::scalar(value, like.dtype()); }

// The gradient for input i of a broadcasting binary op, summed back to that input's shape.
Tensor to_input(const GradArgs& g, std::size_t i, const Tensor& grad) {
    return reduce_to_shape(grad, g.inputs[i].shape());
}

} // namespace

// --- add ---
Tensor add(const Tensor& a, const Tensor& b) { return binary<Add>(a, b); }
void Add::forward(const KernelArgs& args) const { run_map<functors::AddF, 2>(args, {}); }
std::vector<Tensor> Add::backward(const GradArgs& g) const {
    return {to_input(g, 0, g.grad_out), to_input(g, 1, g.grad_out)};
}

// --- sub ---
Tensor sub(const Tensor& a, const Tensor& b) { return binary<Sub>(a, b); }
void Sub::forward(const KernelArgs& args) const { run_map<functors::SubF, 2>(args, {}); }
std::vector<Tensor> Sub::backward(const GradArgs& g) const {
    return {to_input(g, 0, g.grad_out), to_input(g, 1, -g.grad_out)};
}

// --- mul ---
Tensor mul(const Tensor& a, const Tensor& b) { return binary<Mul>(a, b); }
void Mul::forward(const KernelArgs& args) const { run_map<functors::MulF, 2>(args, {}); }
std::vector<Tensor> Mul::backward(const GradArgs& g) const {
    return {to_input(g, 0, g.grad_out * g.inputs[1]), to_input(g, 1, g.grad_out * g.inputs[0])};
}

// --- div ---
Tensor div(const Tensor& a, const Tensor& b) { return binary<Div>(a, b); }
void Div::forward(const KernelArgs& args) const { run_map<functors::DivF, 2>(args, {}); }
std::vector<Tensor> Div::backward(const GradArgs& g) const {
    // d(a/b)/db = -a/b^2 = -out/b
    return {to_input(g, 0, g.grad_out / g.inputs[1]),
            to_input(g, 1, -(g.grad_out * g.output / g.inputs[1]))};
}

// --- pow ---
Tensor pow(const Tensor& base, const Tensor& exponent) { return binary<Pow>(base, exponent); }
Tensor pow(const Tensor& base, double exponent) {
    check_defined("pow", base, "base");
    return pow(base, scalar_like(exponent, base));
}
void Pow::forward(const KernelArgs& args) const { run_map<functors::PowF, 2>(args, {}); }
std::vector<Tensor> Pow::backward(const GradArgs& g) const {
    const Tensor& a = g.inputs[0];
    const Tensor& b = g.inputs[1];
    Tensor grad_a = g.grad_out * b * pow(a, b - 1.0);
    // d(a^b)/db = a^b log(a); only defined for a > 0, as in PyTorch.
    Tensor grad_b = g.grad_out * g.output * log(a);
    return {to_input(g, 0, grad_a), to_input(g, 1, grad_b)};
}

// --- maximum / minimum: ties split the gradient evenly, as PyTorch does ---
Tensor maximum(const Tensor& a, const Tensor& b) { return binary<Maximum>(a, b); }
void Maximum::forward(const KernelArgs& args) const { run_map<functors::MaximumF, 2>(args, {}); }
std::vector<Tensor> Maximum::backward(const GradArgs& g) const {
    const Tensor& a = g.inputs[0];
    const Tensor& b = g.inputs[1];
    Tensor half_tie = eq(a, b) * 0.5;
    return {to_input(g, 0, g.grad_out * (gt(a, b) + half_tie)),
            to_input(g, 1, g.grad_out * (lt(a, b) + half_tie))};
}

Tensor minimum(const Tensor& a, const Tensor& b) { return binary<Minimum>(a, b); }
void Minimum::forward(const KernelArgs& args) const { run_map<functors::MinimumF, 2>(args, {}); }
std::vector<Tensor> Minimum::backward(const GradArgs& g) const {
    const Tensor& a = g.inputs[0];
    const Tensor& b = g.inputs[1];
    Tensor half_tie = eq(a, b) * 0.5;
    return {to_input(g, 0, g.grad_out * (lt(a, b) + half_tie)),
            to_input(g, 1, g.grad_out * (gt(a, b) + half_tie))};
}

// --- unary ---
Tensor neg(const Tensor& x) { return unary<Neg>(x); }
void Neg::forward(const KernelArgs& args) const { run_map<functors::NegF, 1>(args, {}); }
std::vector<Tensor> Neg::backward(const GradArgs& g) const { return {-g.grad_out}; }

Tensor exp(const Tensor& x) { return unary<Exp>(x); }
void Exp::forward(const KernelArgs& args) const { run_map<functors::ExpF, 1>(args, {}); }
std::vector<Tensor> Exp::backward(const GradArgs& g) const { return {g.grad_out * g.output}; }

Tensor log(const Tensor& x) { return unary<Log>(x); }
void Log::forward(const KernelArgs& args) const { run_map<functors::LogF, 1>(args, {}); }
std::vector<Tensor> Log::backward(const GradArgs& g) const { return {g.grad_out / g.inputs[0]}; }

Tensor sqrt(const Tensor& x) { return unary<Sqrt>(x); }
void Sqrt::forward(const KernelArgs& args) const { run_map<functors::SqrtF, 1>(args, {}); }
std::vector<Tensor> Sqrt::backward(const GradArgs& g) const {
    return {g.grad_out / (g.output * 2.0)};
}

Tensor abs(const Tensor& x) { return unary<Abs>(x); }
void Abs::forward(const KernelArgs& args) const { run_map<functors::AbsF, 1>(args, {}); }
std::vector<Tensor> Abs::backward(const GradArgs& g) const {
    return {g.grad_out * sign(g.inputs[0])};
}

Tensor sign(const Tensor& x) { return unary<Sign>(x); }
void Sign::forward(const KernelArgs& args) const { run_map<functors::SignF, 1>(args, {}); }
std::vector<Tensor> Sign::backward(const GradArgs&) const { return {Tensor()}; } // zero a.e.

Tensor tanh(const Tensor& x) { return unary<Tanh>(x); }
void Tanh::forward(const KernelArgs& args) const { run_map<functors::TanhF, 1>(args, {}); }
std::vector<Tensor> Tanh::backward(const GradArgs& g) const {
    return {g.grad_out * (1.0 - g.output * g.output)};
}

Tensor sigmoid(const Tensor& x) { return unary<Sigmoid>(x); }
void Sigmoid::forward(const KernelArgs& args) const { run_map<functors::SigmoidF, 1>(args, {}); }
std::vector<Tensor> Sigmoid::backward(const GradArgs& g) const {
    return {g.grad_out * g.output * (1.0 - g.output)};
}

Tensor relu(const Tensor& x) { return unary<Relu>(x); }
void Relu::forward(const KernelArgs& args) const { run_map<functors::ReluF, 1>(args, {}); }
std::vector<Tensor> Relu::backward(const GradArgs& g) const {
    // y > 0 exactly where x > 0. Reading the output, which the next layer keeps anyway (a
    // max-pool's backward reads it), spares keeping the pre-activation too: for a conv layer
    // that is one activation-sized tensor less to write and hold.
    return {g.grad_out * gt(g.output, scalar_like(0.0, g.output))};
}

Tensor leaky_relu(const Tensor& x, double negative_slope) {
    return unary<LeakyRelu>(x, LeakyRelu{negative_slope});
}
std::string LeakyRelu::attributes() const {
    // The shortest form that reads back exactly: the plan cache keys on attributes, so two slopes
    // must never print alike (std::to_string's 6 decimals made 1e-7 and 3e-7 share a plan).
    std::array<char, 32> buf{};
    const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), negative_slope);
    return "slope=" + std::string(buf.data(), end);
}
void LeakyRelu::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        kernels::map<T, 1>(args.out_shape, args.output<T>(), {args.input<T>(0)},
                           {args.in[0].shape},
                           functors::LeakyReluF<T>{static_cast<T>(negative_slope)});
    });
}
std::vector<Tensor> LeakyRelu::backward(const GradArgs& g) const {
    const Tensor& x = g.inputs[0];
    Tensor zero = scalar_like(0.0, x);
    Tensor slope = where(gt(x, zero), scalar_like(1.0, x), scalar_like(negative_slope, x));
    return {g.grad_out * slope};
}

// --- comparisons ---
namespace {
Tensor compare(CompareKind kind, const Tensor& a, const Tensor& b) {
    constexpr std::string_view name = Compare::name;
    check_defined(name, a, "a");
    check_defined(name, b, "b");
    check_same_dtype(name, a, b);
    Shape shape = broadcast_shapes(name, a.shape(), b.shape());
    return make_tensor(Compare{kind}, {a, b}, std::move(shape), a.dtype());
}
} // namespace

Tensor eq(const Tensor& a, const Tensor& b) { return compare(CompareKind::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare(CompareKind::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(CompareKind::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(CompareKind::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare(CompareKind::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(CompareKind::Ge, a, b); }

std::string Compare::attributes() const {
    static constexpr std::array<std::string_view, 6> names = {"==", "!=", "<", "<=", ">", ">="};
    return std::string("kind=") + std::string(names[static_cast<std::size_t>(kind)]);
}
void Compare::forward(const KernelArgs& args) const {
    switch (kind) {
    case CompareKind::Eq: run_map<functors::EqF, 2>(args, {}); break;
    case CompareKind::Ne: run_map<functors::NeF, 2>(args, {}); break;
    case CompareKind::Lt: run_map<functors::LtF, 2>(args, {}); break;
    case CompareKind::Le: run_map<functors::LeF, 2>(args, {}); break;
    case CompareKind::Gt: run_map<functors::GtF, 2>(args, {}); break;
    case CompareKind::Ge: run_map<functors::GeF, 2>(args, {}); break;
    }
}
std::vector<Tensor> Compare::backward(const GradArgs&) const { return {Tensor(), Tensor()}; }

// --- where ---
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
    constexpr std::string_view name = Where::name;
    check_defined(name, cond, "cond");
    check_defined(name, a, "a");
    check_defined(name, b, "b");
    check_same_dtype(name, cond, a, "cond", "a");
    check_same_dtype(name, a, b);
    // Pairwise checks so the message names the two operands that clash; when every pair
    // broadcasts, so do all three.
    broadcast_shapes(name, cond.shape(), a.shape(), "cond", "a");
    broadcast_shapes(name, cond.shape(), b.shape(), "cond", "b");
    Shape shape = broadcast_shapes(name, a.shape(), b.shape());
    shape = broadcast_shapes(name, shape, cond.shape());
    return make_tensor(Where{}, {cond, a, b}, std::move(shape), a.dtype());
}
void Where::forward(const KernelArgs& args) const { run_map<functors::WhereF, 3>(args, {}); }
std::vector<Tensor> Where::backward(const GradArgs& g) const {
    Tensor zero = scalar_like(0.0, g.grad_out);
    return {Tensor(), to_input(g, 1, where(g.inputs[0], g.grad_out, zero)),
            to_input(g, 2, where(g.inputs[0], zero, g.grad_out))};
}

} // namespace pynn
