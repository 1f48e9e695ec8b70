// Node: one vertex of the lazy DAG: an op (with its attributes), its input nodes, and the shape
// and dtype its shape rule computed. Leaves carry data; any node may cache its computed value.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graph/storage.hpp"
#include "ops/op.hpp"
#include "pynn/dtype.hpp"
#include "pynn/tensor.hpp"

namespace pynn {

struct Node;
using NodePtr = std::shared_ptr<Node>;

struct Node : std::enable_shared_from_this<Node> {
    Op op;
    std::vector<NodePtr> inputs;
    Shape shape;
    DType dtype = DType::Float32;
    // A leaf's gradient is kept when it requires grad; an inner node requires grad when one of its
    // inputs does and it was built outside a NoGradGuard.
    bool requires_grad = false;
    std::uint64_t id = 0;
    std::string name;
    // Leaves: their data. Inner nodes: the value of the last run that computed them (or null).
    StoragePtr data;
    StoragePtr grad; // accumulated gradient (leaves that require grad)
    // Recycled storages, so a training step allocates nothing: zero_grad() parks the gradient's
    // storage in spare_grad for the next backward to write into; ComputeGraph::assign parks a
    // leaf's previous data in spare_data and computes its next value there.
    StoragePtr spare_grad;
    StoragePtr spare_data;
    std::shared_ptr<const History> history; // set by layers (models::Model replays them)
    // Where the node was written, for anomaly reports: the layer being called ("Dense(784 ->
    // 256, relu)") or the op whose backward rule made it. Recorded only under detect_anomaly.
    std::shared_ptr<const std::string> scope;
    // Deferred writes (target leaf, value), done once by the first run that computes this node.
    std::vector<std::pair<NodePtr, NodePtr>> effects;
    bool effects_done = false;

    bool is_leaf() const { return std::holds_alternative<Leaf>(op); }
};

// Builds an inner node after the op's shape rule has run. requires_grad follows the inputs and
// the grad mode.
NodePtr make_node(Op op, std::vector<NodePtr> inputs, Shape shape, DType dtype);
NodePtr make_leaf(StoragePtr data, Shape shape);

// While alive (and Flags::detect_anomaly() is on), nodes made on this thread record `scope`.
class NodeScope {
public:
    explicit NodeScope(std::shared_ptr<const std::string> scope);
    ~NodeScope();
    NodeScope(const NodeScope&) = delete;
    NodeScope& operator=(const NodeScope&) = delete;
    static const std::shared_ptr<const std::string>& current();

private:
    std::shared_ptr<const std::string> m_previous;
};

// Nodes reachable from `roots`, inputs before users (iterative DFS, deterministic order).
std::vector<Node*> topological_order(const std::vector<Node*>& roots);

} // namespace pynn
