// Lowering and scheduling. lower() numbers every node of the DAG as a buffer and emits one step
// per non-leaf node in depth-first topological order (a producer lands next to its consumer, which
// is what fusion wants). After fusion, schedule_for_memory() reorders the kernels: still
// topological, but ties are broken to shorten buffer lifetimes.
#include <algorithm>
#include <unordered_map>

#include "compiler/compile.hpp"
#include "ops/builder.hpp"
#include "pynn/flags.hpp"

namespace pynn::compiler {

namespace {
// "matmul 'logits', forward, in layer Dense(784 -> 256, relu)" or "add, in the backward of
// matmul in Dense(...)": what an anomaly report says about the op that produced a bad value.
std::string describe_origin(const Node& node) {
    std::string s(op_name(node.op));
    if (!node.name.empty()) {
        s += " '" + node.name + "'";
    }
    if (!node.scope) {
        return s + ", forward, outside any layer";
    }
    if (node.scope->starts_with("backward of")) {
        return s + ", in the " + *node.scope;
    }
    return s + ", forward, in layer " + *node.scope;
}
} // namespace

Plan lower(const std::vector<Node*>& roots, const std::vector<Node*>& leaves) {
    Plan plan;
    plan.num_leaves = leaves.size();
    std::unordered_map<Node*, std::size_t> leaf_index;
    for (std::size_t i = 0; i < leaves.size(); ++i) {
        leaf_index[leaves[i]] = i;
    }
    std::unordered_map<Node*, std::size_t> buffer_of;
    for (Node* node : topological_order(roots)) {
        BufferInfo info;
        info.shape = node->shape;
        info.dtype = node->dtype;
        info.label = node->name;
        if (node->is_leaf()) {
            auto it = leaf_index.find(node);
            if (it != leaf_index.end()) {
                info.kind = BufferKind::Leaf;
                info.leaf_index = it->second;
            } else { // made by a compiler pass (e.g. a backward rule's constant): bake it in
                info.kind = BufferKind::Constant;
                info.constant = node->data;
            }
        }
        const std::size_t id = plan.buffers.size();
        plan.buffers.push_back(std::move(info));
        buffer_of[node] = id;
        if (!node->is_leaf()) {
            Step step;
            step.op = node->op;
            step.output = id;
            if (Flags::detect_anomaly()) {
                step.origin = describe_origin(*node);
            }
            for (const NodePtr& in : node->inputs) {
                step.inputs.push_back(buffer_of.at(in.get()));
            }
            plan.steps.push_back(std::move(step));
        }
    }
    return plan;
}

void schedule_for_memory(Plan& plan) {
    const std::size_t count = plan.steps.size();
    const std::size_t nbuf = plan.buffers.size();
    std::vector<char> handed_out(nbuf, 0); // outputs and gradients live outside the arena
    for (std::size_t b : plan.outputs) {
        handed_out[b] = 1;
    }
    for (const auto& g : plan.grads) {
        handed_out[g.second] = 1;
    }
    auto arena_bytes = [&](std::size_t b) {
        const BufferInfo& info = plan.buffers[b];
        return info.kind == BufferKind::Intermediate && !handed_out[b]
                   ? numel(info.shape) * dtype_size(info.dtype)
                   : std::size_t{0};
    };
    std::vector<std::size_t> writer(nbuf, SIZE_MAX);
    std::vector<std::size_t> readers_left(nbuf, 0);
    for (std::size_t i = 0; i < count; ++i) {
        const Step& s = plan.steps[i];
        writer[s.output] = i;
        for (std::size_t b : s.extra_outputs) {
            writer[b] = i;
        }
        for (std::size_t b : s.inputs) {
            ++readers_left[b];
        }
    }
    std::vector<std::size_t> waiting(count, 0); // producers not yet scheduled
    std::vector<std::vector<std::size_t>> users(count);
    for (std::size_t i = 0; i < count; ++i) {
        std::vector<std::size_t> producers;
        for (std::size_t b : plan.steps[i].inputs) {
            if (writer[b] != SIZE_MAX) {
                producers.push_back(writer[b]);
            }
        }
        std::sort(producers.begin(), producers.end());
        producers.erase(std::unique(producers.begin(), producers.end()), producers.end());
        waiting[i] = producers.size();
        for (std::size_t p : producers) {
            users[p].push_back(i);
        }
    }
    std::vector<std::size_t> ready;
    for (std::size_t i = 0; i < count; ++i) {
        if (waiting[i] == 0) {
            ready.push_back(i);
        }
    }
    // Greedy: run the ready kernel that frees the most arena bytes net of what it allocates;
    // ties keep the depth-first order (lowest index first).
    std::vector<Step> order;
    order.reserve(count);
    while (!ready.empty()) {
        std::size_t best = 0;
        long long best_gain = 0;
        for (std::size_t r = 0; r < ready.size(); ++r) {
            const Step& s = plan.steps[ready[r]];
            long long gain = -static_cast<long long>(arena_bytes(s.output));
            for (std::size_t b : s.extra_outputs) {
                gain -= static_cast<long long>(arena_bytes(b));
            }
            std::vector<std::size_t> seen;
            for (std::size_t b : s.inputs) {
                if (std::find(seen.begin(), seen.end(), b) != seen.end()) {
                    continue;
                }
                seen.push_back(b);
                const auto uses = static_cast<std::size_t>(
                    std::count(s.inputs.begin(), s.inputs.end(), b));
                if (readers_left[b] == uses) { // this kernel is the buffer's last reader
                    gain += static_cast<long long>(arena_bytes(b));
                }
            }
            if (r == 0 || gain > best_gain || (gain == best_gain && ready[r] < ready[best])) {
                best = r;
                best_gain = gain;
            }
        }
        const std::size_t i = ready[best];
        ready.erase(ready.begin() + static_cast<std::ptrdiff_t>(best));
        for (std::size_t b : plan.steps[i].inputs) {
            --readers_left[b];
        }
        for (std::size_t u : users[i]) {
            if (--waiting[u] == 0) {
                ready.push_back(u);
            }
        }
        order.push_back(std::move(plan.steps[i]));
    }
    PYNN_ASSERT(order.size() == count, "schedule: the plan's steps form a cycle");
    plan.steps = std::move(order);
}

} // namespace pynn::compiler
