// Matrix product through BLAS: 2-D (n, k) @ (k, m) and batched (..., n, k) @ (..., k, m) with
// numpy broadcasting of the batch axes. The transpose flags let backward (and later the
// simplifier) hand a transposed operand to BLAS instead of materialising the transpose.
#pragma once

#include <functional>

#include "ops/op_base.hpp"

namespace pynn {

struct Matmul {
    static constexpr std::string_view name = "matmul";
    bool trans_a = false; // use a's last two axes swapped
    bool trans_b = false;
    std::string attributes() const;
    void forward(const KernelArgs& args) const { forward(args, nullptr); }
    // rows_done (may be null) is called on rows [begin, end) of the (batch-flattened) output
    // once they are final (kernels::RowsDone).
    void forward(const KernelArgs& args,
                 const std::function<void(std::size_t, std::size_t)>* rows_done) const;
    std::vector<Tensor> backward(const GradArgs& args) const;
};

// op(a) @ op(b) where op transposes the last two axes when the flag is set.
Tensor matmul_t(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);

} // namespace pynn
