// matmul: shape rule (with broadcast batch axes), the batched BLAS kernel and the backward rule,
// which is two more matmuls with transpose flags instead of transposed copies.
#include "ops/matmul.hpp"

#include <algorithm>
#include <type_traits>

#include "kernels/gemm.hpp"
#include "kernels/strided.hpp"
#include "ops/builder.hpp"
#include "ops/elementwise.hpp"
#include "pynn/math.hpp"

namespace pynn {

namespace {

struct MatDims {
    std::size_t rows, cols; // of op(x)
};
MatDims mat_dims(const Shape& s, bool trans) {
    std::size_t r = s[s.size() - 2];
    std::size_t c = s[s.size() - 1];
    return trans ? MatDims{c, r} : MatDims{r, c};
}
Shape batch_of(const Shape& s) { return Shape(s.begin(), s.end() - 2); }
// Checked here rather than by broadcast_shapes so the error shows the operands' full shapes.
bool batch_broadcastable(const Shape& a, const Shape& b) {
    for (std::size_t i = 1; i <= std::min(a.size(), b.size()); ++i) {
        const std::size_t da = a[a.size() - i];
        const std::size_t db = b[b.size() - i];
        if (da != db && da != 1 && db != 1) {
            return false;
        }
    }
    return true;
}

} // namespace

Tensor matmul_t(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
    constexpr std::string_view name = Matmul::name;
    check_defined(name, a, "a");
    check_defined(name, b, "b");
    check_same_dtype(name, a, b);
    PYNN_CHECK(a.dim() >= 2 && b.dim() >= 2, ShapeError, "matmul: a ", to_string(a.shape()),
               " and b ", to_string(b.shape()),
               ": both operands need at least 2 axes (reshape a vector to (1, n) or (n, 1))");
    MatDims da = mat_dims(a.shape(), trans_a);
    MatDims db = mat_dims(b.shape(), trans_b);
    PYNN_CHECK(da.cols == db.rows, ShapeError, "matmul: a ", to_string(a.shape()), " and b ",
               to_string(b.shape()), ": inner dimensions ", da.cols, " and ", db.rows, " differ");
    const Shape batch_a = batch_of(a.shape());
    const Shape batch_b = batch_of(b.shape());
    PYNN_CHECK(batch_broadcastable(batch_a, batch_b), ShapeError, "matmul: a ",
               to_string(a.shape()), " and b ", to_string(b.shape()), ": batch axes ",
               to_string(batch_a), " and ", to_string(batch_b), " cannot be broadcast");
    Shape shape = broadcast_shapes(name, batch_a, batch_b);
    shape.push_back(da.rows);
    shape.push_back(db.cols);
    return make_tensor(Matmul{trans_a, trans_b}, {a, b}, std::move(shape), a.dtype());
}

Tensor matmul(const Tensor& a, const Tensor& b) { return matmul_t(a, b, false, false); }

std::string Matmul::attributes() const {
    std::string s;
    if (trans_a) {
        s += "trans_a";
    }
    if (trans_b) {
        s += s.empty() ? "trans_b" : " trans_b";
    }
    return s;
}

void Matmul::forward(const KernelArgs& args, const kernels::RowsDone* rows_done) const {
    static_assert(std::is_same_v<kernels::RowsDone, std::function<void(std::size_t, std::size_t)>>);
    dispatch_dtype(args.dtype, [&]<class T>() {
        const Shape& sa = args.in_shape(0);
        const Shape& sb = args.in_shape(1);
        const Shape& so = args.out_shape;
        const std::size_t m = so[so.size() - 2];
        const std::size_t n = so[so.size() - 1];
        const std::size_t k = mat_dims(sa, trans_a).cols;
        const T* a = args.input<T>(0);
        const T* b = args.input<T>(1);
        T* c = args.output<T>();
        Shape batch = batch_of(so);
        if (batch.empty()) {
            kernels::gemm<T>(trans_a, trans_b, m, n, k, a, b, c, false, rows_done);
            return;
        }
        // Walk the batch axes with each operand's matrix-sized strides (0 where broadcast).
        auto scaled = [](kernels::Strides s, std::size_t by) {
            for (auto& v : s) {
                v *= static_cast<std::ptrdiff_t>(by);
            }
            return s;
        };
        kernels::Strides st_c = scaled(kernels::contiguous_strides(batch), m * n);
        kernels::Strides st_a = scaled(kernels::broadcast_strides(batch_of(sa), batch), m * k);
        kernels::Strides st_b = scaled(kernels::broadcast_strides(batch_of(sb), batch), k * n);
        kernels::for_each_row<3>(batch, {st_c, st_a, st_b},
                                 [&](const std::array<std::ptrdiff_t, 3>& off, std::size_t rows,
                                     const std::array<std::ptrdiff_t, 3>& inc) {
                                     for (std::size_t r = 0; r < rows; ++r) {
                                         const auto i = static_cast<std::ptrdiff_t>(r);
                                         kernels::gemm<T>(trans_a, trans_b, m, n, k,
                                                          a + off[1] + i * inc[1],
                                                          b + off[2] + i * inc[2],
                                                          c + off[0] + i * inc[0]);
                                     }
                                 });
        if (rows_done != nullptr) { // batched: the whole output at once
            (*rows_done)(0, numel(batch) * m);
        }
    });
}

std::vector<Tensor> Matmul::backward(const GradArgs& g) const {
    // out = op(a) @ op(b). d op(a) = g @ op(b)^T and d op(b) = op(a)^T @ g; when an operand was
    // used transposed, its gradient is the transpose of that, which is again one matmul.
    const Tensor& a = g.inputs[0];
    const Tensor& b = g.inputs[1];
    const Tensor& go = g.grad_out;
    Tensor grad_a = trans_a ? matmul_t(b, go, trans_b, true) : matmul_t(go, b, false, !trans_b);
    Tensor grad_b = trans_b ? matmul_t(go, a, true, trans_a) : matmul_t(a, go, !trans_a, false);
    return {reduce_to_shape(grad_a, a.shape()), reduce_to_shape(grad_b, b.shape())};
}

} // namespace pynn
