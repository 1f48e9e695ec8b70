// Tensor operations as free functions (the seed's `math` module). All of them are lazy: each call
// adds a node to the DAG after checking shapes and dtypes, and throws there if they are wrong.
// Elementwise binary ops broadcast as numpy does. Axes may be negative (counted from the end).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "pynn/tensor.hpp"

namespace pynn {

// --- elementwise ---
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& x);
Tensor pow(const Tensor& base, const Tensor& exponent);
Tensor pow(const Tensor& base, double exponent);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor gelu(const Tensor& x); // tanh approximation, as torch's approximate="tanh"
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor clip(const Tensor& x, double low, double high);

// --- comparisons (masks of 0/1 in the operands' dtype; no gradient) and selection ---
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
// Elementwise cond ? a : b, where cond is a mask (nonzero = true); all three broadcast.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// --- reductions: over all axes when `axes` is empty ---
Tensor sum(const Tensor& x, const std::vector<int>& axes = {}, bool keepdims = false);
Tensor mean(const Tensor& x, const std::vector<int>& axes = {}, bool keepdims = false);
Tensor max(const Tensor& x, const std::vector<int>& axes = {}, bool keepdims = false);
Tensor min(const Tensor& x, const std::vector<int>& axes = {}, bool keepdims = false);
// Index of the largest value along `axis` (first one on ties), as values of x's dtype.
Tensor argmax(const Tensor& x, int axis, bool keepdims = false);

// --- linear algebra (BLAS) ---
// 2-D (n, k) @ (k, m); batched (..., n, k) @ (..., k, m) with numpy broadcasting of batch axes.
Tensor matmul(const Tensor& a, const Tensor& b);

// --- convolution and pooling on NCHW tensors (im2col + BLAS GEMM) ---
// x (N, C, H, W), weight (O, C, KH, KW) -> (N, O, OH, OW); cross-correlation, as torch.
Tensor conv2d(const Tensor& x, const Tensor& weight, std::size_t stride = 1,
              std::size_t padding = 0);
// Windows of kernel x kernel every `stride` (0 = kernel) pixels, no padding (torch's defaults).
Tensor max_pool2d(const Tensor& x, std::size_t kernel, std::size_t stride = 0);
Tensor avg_pool2d(const Tensor& x, std::size_t kernel, std::size_t stride = 0);

// --- shapes ---
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x, int start_axis = 1); // keeps axes before start_axis
Tensor transpose(const Tensor& x);                   // reverses all axes
Tensor transpose(const Tensor& x, int axis0, int axis1);
Tensor permute(const Tensor& x, const std::vector<int>& perm);
Tensor broadcast_to(const Tensor& x, const Shape& shape);
// Python-style x[begin:end:step] on one axis; negative begin/end count from the end, and
// out-of-range bounds are clamped as Python does. step must be positive.
Tensor slice(const Tensor& x, int axis, std::int64_t begin, std::int64_t end,
             std::int64_t step = 1);
Tensor concat(const std::vector<Tensor>& xs, int axis = 0);
Tensor stack(const std::vector<Tensor>& xs, int axis = 0);

// --- composites used by layers and losses ---
Tensor softmax(const Tensor& x, int axis = -1);     // numerically stable (max subtracted)
Tensor log_softmax(const Tensor& x, int axis = -1); // x - max - log(sum(exp(x - max)))
// labels: integer class ids stored as floats, any shape; the result has one more axis of size
// num_classes holding 1 at the label's position.
Tensor one_hot(const Tensor& labels, std::size_t num_classes);

// --- autodiff as graph building (torch.autograd.grad) ---
// d(loss)/d(w) for each w in `wrt` (leaves that require grad), as lazy tensors: nothing runs
// until they are evaluated, so they can feed more ops (an optimizer's update) and compile into
// one plan with the forward and backward pass. loss must have one element unless `seed`
// (d(result)/d(loss), loss's shape) is given. A w the loss does not depend on gets zeros. The
// results are first-order: they do not require grad.
std::vector<Tensor> gradients(const Tensor& loss, const std::vector<Tensor>& wrt,
                              const Tensor& seed = Tensor());

} // namespace pynn
