// Tensor: creation of leaves, reading values (which compiles and runs the graph), autodiff entry
// points, and the operator sugar over the free functions of math.hpp.
#include "pynn/tensor.hpp"

#include <cstring>
#include <sstream>
#include <unordered_set>

#include <xtensor/xadapt.hpp>
#include <xtensor/xio.hpp>

#include "graph/node.hpp"
#include "ops/builder.hpp"
#include "ops/shape_ops.hpp"
#include "pynn/compute_graph.hpp"
#include "pynn/math.hpp"

namespace pynn {

Generator& Generator::global() {
    static Generator g(0x5eed);
    return g;
}

void manual_seed(std::uint64_t seed) { Generator::global().seed(seed); }

namespace {

thread_local bool g_grad_enabled = true;

template <class T>
Tensor leaf_from(const T* data, const Shape& shape) {
    auto storage = std::make_shared<Storage>(dtype_of<T>(), numel(shape));
    if (numel(shape) > 0) {
        std::memcpy(storage->raw(), data, storage->bytes());
    }
    return Tensor(make_leaf(std::move(storage), shape));
}

template <class Fill>
Tensor leaf_filled(const Shape& shape, DType dtype, Fill fill) {
    auto storage = std::make_shared<Storage>(dtype, numel(shape));
    dispatch_dtype(dtype, [&]<class T>() {
        T* p = storage->data<T>();
        for (std::size_t i = 0; i < storage->numel(); ++i) {
            p[i] = static_cast<T>(fill(i));
        }
    });
    return Tensor(make_leaf(std::move(storage), shape));
}

// The node's values, computing them first when it is not a leaf and was not computed yet.
const Storage& evaluated(const Tensor& t) {
    check_defined("values", t, "tensor");
    Node& node = *t.node();
    if (!node.data) {
        ComputeGraph g({t});
        g.run();
    }
    return *node.data;
}

Node& leaf_node(std::string_view op, const Tensor& t) {
    check_defined(op, t, "tensor");
    PYNN_CHECK(t.is_leaf(), ValueError, op, ": tensor ", to_string(t.shape()),
               " is not a leaf (it is the result of ", op_name(t.node()->op),
               "); only tensors created with zeros/randn/from_values/... can be changed in place");
    return *t.node();
}

} // namespace

Tensor::Tensor(std::shared_ptr<Node> node) : m_node(std::move(node)) {}

Tensor Tensor::zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }
Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
    auto storage = std::make_shared<Storage>(dtype, pynn::numel(shape));
    storage->fill(value);
    return Tensor(make_leaf(std::move(storage), shape));
}
Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::randn(const Shape& shape, double mean, double stddev, DType dtype, Generator* gen) {
    PYNN_CHECK(stddev >= 0, ValueError, "randn: stddev ", stddev, " is negative");
    std::mt19937_64& engine = (gen ? *gen : Generator::global()).engine();
    std::normal_distribution<double> dist(mean, stddev);
    return leaf_filled(shape, dtype, [&](std::size_t) { return dist(engine); });
}

Tensor Tensor::rand(const Shape& shape, double low, double high, DType dtype, Generator* gen) {
    PYNN_CHECK(low < high, ValueError, "rand: low ", low, " must be below high ", high);
    std::mt19937_64& engine = (gen ? *gen : Generator::global()).engine();
    std::uniform_real_distribution<double> dist(low, high);
    return leaf_filled(shape, dtype, [&](std::size_t) { return dist(engine); });
}

Tensor Tensor::arange(double start, double stop, double step, DType dtype) {
    PYNN_CHECK(step != 0, ValueError, "arange: step must not be 0");
    const double span = (stop - start) / step;
    const auto count = span > 0 ? static_cast<std::size_t>(std::ceil(span)) : 0;
    return leaf_filled({count}, dtype,
                       [&](std::size_t i) { return start + static_cast<double>(i) * step; });
}

Tensor Tensor::from_values(const xt::xarray<float>& values) {
    xt::xarray<float> c = values; // xarray is row-major and contiguous
    return leaf_from(c.data(), Shape(c.shape().begin(), c.shape().end()));
}
Tensor Tensor::from_values(const xt::xarray<double>& values) {
    xt::xarray<double> c = values;
    return leaf_from(c.data(), Shape(c.shape().begin(), c.shape().end()));
}
Tensor Tensor::from_values(const float* data, const Shape& shape) { return leaf_from(data, shape); }
Tensor Tensor::from_values(const double* data, const Shape& shape) {
    return leaf_from(data, shape);
}
Tensor Tensor::from_values(std::initializer_list<double> values, DType dtype) {
    std::vector<double> v(values);
    return leaf_filled({v.size()}, dtype, [&](std::size_t i) { return v[i]; });
}

const Shape& Tensor::shape() const {
    check_defined("shape", *this, "tensor");
    return m_node->shape;
}
std::size_t Tensor::numel() const { return pynn::numel(shape()); }
DType Tensor::dtype() const {
    check_defined("dtype", *this, "tensor");
    return m_node->dtype;
}

template <class T>
xt::xarray<T> Tensor::values() const {
    const Storage& s = evaluated(*this);
    PYNN_CHECK(s.dtype() == dtype_of<T>(), DTypeError, "values: tensor ", pynn::to_string(shape()),
               " is ", pynn::to_string(s.dtype()), " but values<",
               pynn::to_string(dtype_of<T>()), ">() was asked for");
    xt::xarray<T> out = xt::adapt(s.data<T>(), s.numel(), xt::no_ownership(), shape());
    return out;
}
template xt::xarray<float> Tensor::values<float>() const;
template xt::xarray<double> Tensor::values<double>() const;

double Tensor::item() const {
    check_defined("item", *this, "tensor");
    PYNN_CHECK(numel() == 1, ShapeError, "item: tensor ", pynn::to_string(shape()), " has ",
               numel(), " elements; item() needs exactly one");
    const Storage& s = evaluated(*this);
    return s.dtype() == DType::Float32 ? static_cast<double>(*s.data<float>()) : *s.data<double>();
}

Tensor& Tensor::set_requires_grad(bool enabled) {
    Node& node = leaf_node("set_requires_grad", *this);
    node.requires_grad = enabled;
    return *this;
}
bool Tensor::requires_grad() const { return defined() && m_node->requires_grad; }
bool Tensor::is_leaf() const { return defined() && m_node->is_leaf(); }

void Tensor::backward() const { backward(Tensor()); }
void Tensor::backward(const Tensor& grad_output) const {
    ComputeGraph g = ComputeGraph::backward(*this, grad_output);
    g.run();
}

Tensor Tensor::grad() const {
    check_defined("grad", *this, "tensor");
    PYNN_CHECK(m_node->grad != nullptr, ValueError, "grad: tensor ", pynn::to_string(shape()),
               (is_leaf() ? (requires_grad() ? " has no gradient yet: call backward() first "
                                               "(or it was cleared by zero_grad())"
                                             : " does not require grad: call "
                                               "set_requires_grad(true) before backward()")
                          : " is not a leaf: gradients are kept for leaves only"));
    return Tensor(make_leaf(m_node->grad, m_node->shape));
}
bool Tensor::has_grad() const { return defined() && m_node->grad != nullptr; }

namespace {
// Clears a leaf's gradient, keeping its storage for the next backward unless a grad() tensor the
// user holds still shares it.
void clear_grad(Node& leaf) {
    if (leaf.grad && leaf.grad.use_count() == 1) {
        leaf.spare_grad = std::move(leaf.grad);
    }
    leaf.grad.reset();
}
} // namespace

void Tensor::zero_grad() const {
    check_defined("zero_grad", *this, "tensor");
    if (is_leaf()) {
        clear_grad(*m_node);
        return;
    }
    for (Node* n : topological_order({m_node.get()})) {
        if (n->is_leaf()) {
            clear_grad(*n);
        }
    }
}

Tensor Tensor::detach() const {
    check_defined("detach", *this, "tensor");
    if (is_leaf() && !requires_grad()) {
        return *this;
    }
    return make_tensor(Detach{}, {*this}, shape(), dtype());
}

void Tensor::assign(const Tensor& source) {
    Node& node = leaf_node("assign", *this);
    check_defined("assign", source, "source");
    PYNN_CHECK(source.shape() == shape(), ShapeError, "assign: target ", pynn::to_string(shape()),
               " and source ", pynn::to_string(source.shape()), ": shapes differ");
    check_same_dtype("assign", *this, source, "target", "source");
    const Storage& s = evaluated(source);
    std::memcpy(node.data->raw(), s.raw(), s.bytes());
}
void Tensor::assign_values(const xt::xarray<float>& values) { assign(from_values(values)); }
void Tensor::assign_values(const xt::xarray<double>& values) { assign(from_values(values)); }

Tensor Tensor::reshape(const Shape& s) const { return pynn::reshape(*this, s); }
Tensor Tensor::slice(std::int64_t begin, std::int64_t end) const {
    return pynn::slice(*this, 0, begin, end, 1);
}
Tensor Tensor::slice(int axis, std::int64_t begin, std::int64_t end, std::int64_t step) const {
    return pynn::slice(*this, axis, begin, end, step);
}
Tensor Tensor::transpose() const { return pynn::transpose(*this); }
Tensor Tensor::transpose(int axis0, int axis1) const {
    return pynn::transpose(*this, axis0, axis1);
}
Tensor Tensor::permute(const std::vector<int>& perm) const { return pynn::permute(*this, perm); }
Tensor Tensor::sum() const { return pynn::sum(*this); }
Tensor Tensor::mean() const { return pynn::mean(*this); }
Tensor Tensor::operator-() const { return neg(*this); }

Tensor& Tensor::set_name(const std::string& name) {
    check_defined("set_name", *this, "tensor");
    m_node->name = name;
    return *this;
}
const std::string& Tensor::name() const {
    check_defined("name", *this, "tensor");
    return m_node->name;
}

void Tensor::defer_assign(const Tensor& target, const Tensor& value) const {
    check_defined("defer_assign", *this, "tensor");
    check_defined("defer_assign", value, "value");
    Node& leaf = leaf_node("defer_assign", target);
    PYNN_CHECK(leaf.shape == value.shape(), ShapeError, "defer_assign: target ",
               pynn::to_string(leaf.shape), " and value ", pynn::to_string(value.shape()),
               ": shapes differ");
    check_same_dtype("defer_assign", target, value, "target", "value");
    m_node->effects.emplace_back(target.node(), value.detach().node());
}

void Tensor::set_history(std::shared_ptr<const History> history) {
    check_defined("set_history", *this, "tensor");
    m_node->history = std::move(history);
}
std::shared_ptr<const History> Tensor::history() const {
    return defined() ? m_node->history : nullptr;
}

std::string Tensor::to_string() const {
    std::ostringstream out;
    out << "Tensor" << pynn::to_string(shape()) << " " << pynn::to_string(dtype()) << "\n";
    if (dtype() == DType::Float32) {
        out << values<float>();
    } else {
        out << values<double>();
    }
    return out.str();
}

NoGradGuard::NoGradGuard() : m_previous(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = m_previous; }
bool NoGradGuard::grad_enabled() { return g_grad_enabled; }

// --- operators ---
namespace {
Tensor scalar_for(double v, const Tensor& like) {
    check_defined("scalar operand", like, "tensor");
    return Tensor::scalar(v, like.dtype());
}
} // namespace

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_for(b, a)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_for(b, a)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_for(b, a)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_for(b, a)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_for(a, b), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_for(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_for(a, b), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_for(a, b), b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator<(const Tensor& a, double b) { return lt(a, scalar_for(b, a)); }
Tensor operator<=(const Tensor& a, double b) { return le(a, scalar_for(b, a)); }
Tensor operator>(const Tensor& a, double b) { return gt(a, scalar_for(b, a)); }
Tensor operator>=(const Tensor& a, double b) { return ge(a, scalar_for(b, a)); }

} // namespace pynn
