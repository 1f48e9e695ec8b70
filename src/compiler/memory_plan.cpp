// The memory-planning pass (see memory_plan.hpp).
#include "compiler/memory_plan.hpp"

namespace pynn::compiler {

namespace {
constexpr std::size_t kAlign = 64;
std::size_t aligned(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }
} // namespace

void plan_memory(Plan& plan, bool /*reuse*/) {
    std::size_t offset = 0;
    for (BufferInfo& b : plan.buffers) {
        if (b.kind != BufferKind::Intermediate) {
            continue;
        }
        b.offset = offset;
        offset += aligned(numel(b.shape) * dtype_size(b.dtype));
    }
    plan.arena_bytes = offset;
    plan.naive_bytes = offset;
}

} // namespace pynn::compiler
