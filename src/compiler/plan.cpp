// Printing a Plan: one line per kernel with its buffers, then totals.
#include "compiler/plan.hpp"

#include <sstream>

#include "ops/builder.hpp" // PYNN_ASSERT

namespace pynn::compiler {

std::string Step::name() const {
    return fused ? fused->name() : std::string(op_name(op));
}

void FusedKernel::run_part(const KernelArgs&, std::size_t, std::size_t, const PartInput*) const {
    PYNN_ASSERT(false, name(), ": runs whole, not in parts");
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
        out << (s.fused && s.fused->compiled() ? " (compiled)" : "") << "\n";
    }
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        out << "  output " << i << ": " << buffer_ref(*this, outputs[i]);
        if (i < overwrites.size() && overwrites[i] != SIZE_MAX) {
            out << " (into " << buffer_ref(*this, overwrites[i]) << ")";
        }
        out << "\n";
    }
    for (const auto& [leaf, buffer] : grads) {
        out << "  grad of leaf " << leaf << ": " << buffer_ref(*this, buffer) << "\n";
    }
    for (const std::string& note : fusion_notes) {
        out << "  not fused: " << note << "\n";
    }
    return out.str();
}

namespace {
std::string dot_escape(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out;
}
} // namespace

std::string Plan::to_dot() const {
    std::ostringstream out;
    out << "digraph plan {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n";
    std::vector<bool> used(buffers.size(), false);
    for (const Step& s : steps) {
        used[s.output] = true;
        for (std::size_t b : s.extra_outputs) {
            used[b] = true;
        }
        for (std::size_t b : s.inputs) {
            used[b] = true;
        }
    }
    for (std::size_t id = 0; id < buffers.size(); ++id) {
        if (!used[id]) {
            continue;
        }
        const BufferInfo& b = buffers[id];
        const char* colour = b.kind == BufferKind::Leaf       ? "lightblue"
                             : b.kind == BufferKind::Constant ? "lightgrey"
                                                              : "white";
        // Escape the parts, then join them with DOT's line break (which must stay unescaped).
        std::string label = dot_escape("b" + std::to_string(id) + " " + pynn::to_string(b.shape));
        if (!b.label.empty()) {
            label += "\\n" + dot_escape(b.label);
        }
        out << "  b" << id << " [shape=ellipse, style=filled, fillcolor=" << colour
            << ", label=\"" << label << "\"];\n";
    }
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const Step& s = steps[i];
        const std::string node = "k" + std::to_string(i);
        if (s.fused) {
            out << "  subgraph cluster_" << i << " {\n    style=filled; fillcolor=\"#fff3cd\";\n"
                << "    label=\"#" << i << " " << dot_escape(s.name()) << "\";\n";
            const auto names = s.fused->ops();
            std::string prev;
            for (std::size_t k = 0; k < names.size(); ++k) {
                const std::string op = node + "_" + std::to_string(k);
                out << "    " << op << " [shape=box, label=\"" << dot_escape(names[k]) << "\"];\n";
                if (!prev.empty()) {
                    out << "    " << prev << " -> " << op << " [style=dotted];\n";
                }
                prev = op;
            }
            out << "    " << node << " [shape=point];\n    " << prev << " -> " << node
                << " [style=dotted];\n  }\n";
        } else {
            std::string label = dot_escape("#" + std::to_string(i) + " " + s.name());
            const std::string attrs = op_attributes(s.op);
            if (!attrs.empty()) {
                label += "\\n" + dot_escape(attrs);
            }
            out << "  " << node << " [shape=box, style=filled, fillcolor=\"#d4edda\", label=\""
                << label << "\"];\n";
        }
        for (std::size_t b : s.inputs) {
            out << "  b" << b << " -> " << (s.fused ? node + "_0" : node) << ";\n";
        }
        out << "  " << node << " -> b" << s.output << ";\n";
        for (std::size_t b : s.extra_outputs) {
            out << "  " << node << " -> b" << b << ";\n";
        }
    }
    out << "}\n";
    return out.str();
}

} // namespace pynn::compiler
