// The simplify pass: rewrites the DAG (forward + backward) before lowering. Dead code is dropped
// by construction (only what the roots reach is lowered); this pass adds common-subexpression
// elimination, constant folding and algebraic identities.
#pragma once

#include <vector>

#include "graph/node.hpp"

namespace pynn::compiler {

// Returns roots of an equivalent DAG. `leaves` are the user's data leaves (bound at run time,
// never folded); other leaves are compile-time constants. Leaves keep their identity.
std::vector<NodePtr> simplify(const std::vector<NodePtr>& roots, const std::vector<Node*>& leaves);

} // namespace pynn::compiler
