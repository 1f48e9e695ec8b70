// Building nodes and walking the DAG.
#include "graph/node.hpp"

#include <unordered_set>
#include <utility>

#include "pynn/tensor.hpp"

namespace pynn {

namespace {
std::atomic<std::uint64_t> g_next_id{1};
thread_local std::shared_ptr<const std::string> t_scope;
} // namespace

NodeScope::NodeScope(std::shared_ptr<const std::string> scope)
    : m_previous(std::exchange(t_scope, std::move(scope))) {}
NodeScope::~NodeScope() { t_scope = std::move(m_previous); }
const std::shared_ptr<const std::string>& NodeScope::current() { return t_scope; }

NodePtr make_node(Op op, std::vector<NodePtr> inputs, Shape shape, DType dtype) {
    auto node = std::make_shared<Node>();
    node->op = std::move(op);
    node->shape = std::move(shape);
    node->dtype = dtype;
    node->id = g_next_id++;
    bool any = false;
    for (const NodePtr& in : inputs) {
        any = any || in->requires_grad;
    }
    node->requires_grad = any && NoGradGuard::grad_enabled() && !std::holds_alternative<Detach>(node->op);
    node->inputs = std::move(inputs);
    node->scope = t_scope; // null unless a NodeScope is active (detect_anomaly)
    return node;
}

NodePtr make_leaf(StoragePtr data, Shape shape) {
    auto node = std::make_shared<Node>();
    node->op = Leaf{};
    node->dtype = data->dtype();
    node->shape = std::move(shape);
    node->data = std::move(data);
    node->id = g_next_id++;
    return node;
}

std::vector<Node*> topological_order(const std::vector<Node*>& roots) {
    std::vector<Node*> order;
    std::unordered_set<Node*> visited;
    // Iterative post-order DFS: deep graphs must not overflow the call stack.
    std::vector<std::pair<Node*, std::size_t>> stack;
    for (Node* root : roots) {
        if (!visited.insert(root).second) {
            continue;
        }
        stack.emplace_back(root, 0);
        while (!stack.empty()) {
            auto& [node, next] = stack.back();
            if (next < node->inputs.size()) {
                Node* in = node->inputs[next++].get();
                if (visited.insert(in).second) {
                    stack.emplace_back(in, 0);
                }
            } else {
                order.push_back(node);
                stack.pop_back();
            }
        }
    }
    return order;
}

} // namespace pynn
