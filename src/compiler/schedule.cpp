// Lowering and scheduling: number every node of the DAG as a buffer and emit one step per
// non-leaf node in topological order (inputs before users, depth-first from the outputs, which
// keeps a producer close to its consumer).
#include <unordered_map>

#include "compiler/compile.hpp"

namespace pynn::compiler {

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
            for (const NodePtr& in : node->inputs) {
                step.inputs.push_back(buffer_of.at(in.get()));
            }
            plan.steps.push_back(std::move(step));
        }
    }
    return plan;
}

} // namespace pynn::compiler
