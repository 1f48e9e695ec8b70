// Printing a Plan: one line per kernel with its buffers, then totals.
#include "compiler/plan.hpp"

#include <sstream>

namespace pynn::compiler {

std::string Step::name() const {
    return fused ? fused->name() : std::string(op_name(op));
}

void Step::run(const KernelArgs& args) const {
    if (fused) {
        fused->run(args);
    } else {
        std::visit([&](const auto& o) { o.forward(args); }, op);
    }
}

std::size_t Plan::intermediate_bytes() const {
    std::size_t total = 0;
    for (const BufferInfo& b : buffers) {
        if (b.kind == BufferKind::Intermediate) {
            total += numel(b.shape) * dtype_size(b.dtype);
        }
    }
    return total;
}

namespace {
std::string buffer_ref(const Plan& plan, std::size_t id) {
    const BufferInfo& b = plan.buffers[id];
    std::string s = "b" + std::to_string(id);
    switch (b.kind) {
    case BufferKind::Leaf: s += "[leaf " + std::to_string(b.leaf_index) + "]"; break;
    case BufferKind::Constant: s += "[const]"; break;
    case BufferKind::Intermediate: break;
    }
    if (!b.label.empty()) {
        s += "'" + b.label + "'";
    }
    return s + " " + pynn::to_string(b.shape);
}
} // namespace

std::string Plan::to_string() const {
    std::ostringstream out;
    std::size_t leaves = 0, constants = 0;
    for (const BufferInfo& b : buffers) {
        leaves += b.kind == BufferKind::Leaf ? 1 : 0;
        constants += b.kind == BufferKind::Constant ? 1 : 0;
    }
    out << "plan: " << steps.size() << " kernels, " << buffers.size() << " buffers (" << leaves
        << " leaves, " << constants << " constants), arena " << arena_bytes << " bytes (" 
        << naive_bytes << " without reuse)\n";
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const Step& s = steps[i];
        out << "  #" << i << " " << s.name();
        if (s.fused) {
            out << "[";
            const auto names = s.fused->ops();
            for (std::size_t k = 0; k < names.size(); ++k) {
                out << (k ? " " : "") << names[k];
            }
            out << "]";
        } else {
            std::string attrs = op_attributes(s.op);
            if (!attrs.empty()) {
                out << "{" << attrs << "}";
            }
        }
        if (s.in_place_of != SIZE_MAX) {
            out << " (in place of b" << s.in_place_of << ")";
        }
        out << " -> " << buffer_ref(*this, s.output);
        for (std::size_t b : s.extra_outputs) {
            out << ", " << buffer_ref(*this, b);
        }
        out << " " << pynn::to_string(buffers[s.output].dtype) << " <- ";
        for (std::size_t k = 0; k < s.inputs.size(); ++k) {
            out << (k ? ", " : "") << buffer_ref(*this, s.inputs[k]);
        }
        out << "\n";
    }
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        out << "  output " << i << ": " << buffer_ref(*this, outputs[i]) << "\n";
    }
    for (const auto& [leaf, buffer] : grads) {
        out << "  grad of leaf " << leaf << ": " << buffer_ref(*this, buffer) << "\n";
    }
    for (const std::string& note : fusion_notes) {
        out << "  not fused: " << note << "\n";
    }
    return out.str();
}

} // namespace pynn::compiler
