// pynn::Tensor: a cheap handle to a node of the lazy DAG. Writing `a + b` adds a node; nothing is
// computed until values(), item() or backward() asks for a result. See docs/ARCHITECTURE.md.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "pynn/dtype.hpp"
#include "pynn/error.hpp"
#include "pynn/flags.hpp"

namespace pynn {

struct Node; // src/graph/node.hpp

// What made a tensor, beyond its op: layers record their calls here (as Keras' layer-call
// history), so models::Model can replay the layers on new input.
struct History {
    virtual ~History() = default;
};

// The random source behind randn/rand. The global one is seeded by manual_seed().
class Generator {
public:
    explicit Generator(std::uint64_t seed = 0) : m_engine(seed) {}
    void seed(std::uint64_t s) { m_engine.seed(s); }
    std::mt19937_64& engine() { return m_engine; }
    const std::mt19937_64& engine() const { return m_engine; }
    static Generator& global();

private:
    std::mt19937_64 m_engine;
};

void manual_seed(std::uint64_t seed);

class Tensor {
public:
    Tensor() = default; // an undefined tensor; defined() is false
    explicit Tensor(std::shared_ptr<Node> node);

    // --- creation (leaves holding data) ---
    static Tensor zeros(const Shape& shape, DType dtype = Flags::global_type());
    static Tensor ones(const Shape& shape, DType dtype = Flags::global_type());
    static Tensor full(const Shape& shape, double value, DType dtype = Flags::global_type());
    static Tensor scalar(double value, DType dtype = Flags::global_type());
    // Normal(mean, stddev) and Uniform[low, high) samples from `gen` (the global generator by
    // default).
    static Tensor randn(const Shape& shape, double mean = 0.0, double stddev = 1.0,
                        DType dtype = Flags::global_type(), Generator* gen = nullptr);
    static Tensor rand(const Shape& shape, double low = 0.0, double high = 1.0,
                       DType dtype = Flags::global_type(), Generator* gen = nullptr);
    // [start, stop) with `step`, as numpy.arange.
    static Tensor arange(double start, double stop, double step = 1.0,
                         DType dtype = Flags::global_type());
    // Keeps the array's element type: xarray<double> gives a float64 tensor.
    static Tensor from_values(const xt::xarray<float>& values);
    static Tensor from_values(const xt::xarray<double>& values);
    static Tensor from_values(const float* data, const Shape& shape);
    static Tensor from_values(const double* data, const Shape& shape);
    static Tensor from_values(std::initializer_list<double> values,
                              DType dtype = Flags::global_type()); // a 1-D tensor

    // --- reading (runs the graph if needed) ---
    bool defined() const { return m_node != nullptr; }
    const Shape& shape() const;
    std::size_t dim() const { return shape().size(); }
    std::size_t numel() const;
    DType dtype() const;
    // The values as an array of T; T must match dtype() (a DTypeError names both otherwise).
    template <class T = float>
    xt::xarray<T> values() const;
    double item() const; // the single value of a one-element tensor

    // --- autodiff ---
    Tensor& set_requires_grad(bool enabled = true); // leaves only
    bool requires_grad() const;
    bool is_leaf() const;
    // Differentiates this (scalar) tensor and adds the gradients into every leaf that requires
    // grad.
    void backward() const;
    void backward(const Tensor& grad_output) const; // seed gradient for a non-scalar output
    Tensor grad() const;                            // the accumulated gradient of a leaf
    bool has_grad() const;
    // On a leaf: clears its gradient. On any other tensor: clears the gradients of every leaf
    // reachable from it (the seed's `loss.zero_grad()`).
    void zero_grad() const;
    Tensor detach() const; // same values, no gradient flows back through the result

    // --- in-place on leaves (optimizers, checkpoint loading) ---
    void assign(const Tensor& source); // copies values (same shape and dtype)
    void assign_values(const xt::xarray<float>& values);
    void assign_values(const xt::xarray<double>& values);

    // --- shape ops as members (the free functions in math.hpp do the same) ---
    Tensor reshape(const Shape& shape) const;
    Tensor slice(std::int64_t begin, std::int64_t end) const; // axis 0: the seed's X[a:b]
    Tensor slice(int axis, std::int64_t begin, std::int64_t end, std::int64_t step = 1) const;
    Tensor transpose() const; // reverse all axes (2-D: the matrix transpose)
    Tensor transpose(int axis0, int axis1) const;
    Tensor permute(const std::vector<int>& perm) const;
    Tensor sum() const;
    Tensor mean() const;

    Tensor operator-() const;

    // A debug name shown in plan printouts and error messages.
    Tensor& set_name(const std::string& name);
    const std::string& name() const;

    // A deferred in-place write: the first time a graph that computes this tensor runs, it also
    // computes `value` and copies it into the leaf `target` (how BatchNorm's running statistics
    // update during a lazy forward pass, as they do during PyTorch's eager one).
    void defer_assign(const Tensor& target, const Tensor& value) const;

    void set_history(std::shared_ptr<const History> history);
    std::shared_ptr<const History> history() const;

    std::string to_string() const; // shape, dtype and (small) values; runs the graph
    const std::shared_ptr<Node>& node() const { return m_node; }

private:
    std::shared_ptr<Node> m_node;
};

// Scope guard: tensors built while it lives do not record a gradient path (torch::NoGradGuard).
class NoGradGuard {
public:
    NoGradGuard();
    ~NoGradGuard();
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;
    static bool grad_enabled();

private:
    bool m_previous;
};

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
// Comparisons give masks: 1 where true, 0 where false, in the operands' dtype.
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, double b);
Tensor operator<=(const Tensor& a, double b);
Tensor operator>(const Tensor& a, double b);
Tensor operator>=(const Tensor& a, double b);

} // namespace pynn
