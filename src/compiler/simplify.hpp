// The simplify pass: rewrites the DAG (forward + backward) before lowering into a smaller one with
// the same values. Dead code is dropped by construction (only what the new roots reach is
// lowered); on top of that it does common-subexpression elimination, constant folding and the
// algebraic identities backward graphs are full of (Note [Simplify rules] in simplify.cpp).
#pragma once

#include <vector>

#include "graph/node.hpp"

namespace pynn::compiler {

// Returns roots of an equivalent DAG: same count and order, and each root keeps its shape and
// dtype. `leaves` are the user's data leaves (bound at run time, so never folded or read); any
// other leaf reachable from `roots` is a compile-time constant (a backward rule's scalar, the ones
// seed). Existing nodes are never modified: rewritten parts are new nodes, and leaves map to
// themselves.
std::vector<NodePtr> simplify(const std::vector<NodePtr>& roots, const std::vector<Node*>& leaves);

} // namespace pynn::compiler
