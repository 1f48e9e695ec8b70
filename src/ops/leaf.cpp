// Leaf and Detach. A leaf never runs (the executor binds its data); detach copies its input.
#include "ops/leaf.hpp"

#include <cstring>

#include "ops/builder.hpp"

namespace pynn {

void Leaf::forward(const KernelArgs&) const {
    PYNN_ASSERT(false, "a leaf was scheduled as a kernel");
}
std::vector<Tensor> Leaf::backward(const GradArgs&) const { return {}; }

void Detach::forward(const KernelArgs& args) const {
    std::memcpy(args.out, args.in[0].data, numel(args.out_shape) * dtype_size(args.dtype));
}
std::vector<Tensor> Detach::backward(const GradArgs&) const { return {Tensor()}; }

} // namespace pynn
