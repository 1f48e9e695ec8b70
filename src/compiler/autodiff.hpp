// Symbolic reverse-mode autodiff as a compiler pass: from the loss it walks the DAG in reverse
// topological order and builds gradient nodes with each op's backward rule. The result is more
// DAG, so the rest of the compiler sees forward and backward as one graph.
#pragma once

#include <unordered_map>
#include <vector>

#include "graph/node.hpp"

namespace pynn::compiler {

// Gradients of `loss` (seeded with `seed`, same shape as loss) with respect to every leaf in
// `order` (a topological order holding the loss) that requires grad and is reached.
std::unordered_map<Node*, Tensor> autodiff(const Tensor& loss, const Tensor& seed,
                                           const std::vector<Node*>& order);

} // namespace pynn::compiler
