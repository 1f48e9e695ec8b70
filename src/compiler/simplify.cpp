// The simplify pass (see simplify.hpp): rebuilds the forward + backward DAG bottom-up through one
// canonicalising constructor, `emit`, which tries the algebraic rules, then constant folding,
// then common-subexpression elimination. Only what the new roots reach is lowered (dead code).
#include "compiler/simplify.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

#include "ops/builder.hpp"

namespace pynn::compiler {

// Note [Simplify rules]
// Every rule returns a node with the shape and dtype of the node it replaces (asserted in emit);
// identities that would change the shape (x * 1 where 1 broadcasts x) become broadcast_to(x),
// which the elementwise rule below usually absorbs again. "Constant" means a leaf the compiler
// made (a backward rule's scalar, the ones seed, a folded result): the DAG's own leaves are data
// bound at run time, since a cached plan is reused with new values, and are never folded or read.
//
//  - CSE: op, attributes, dtype, shape and input identities; constants of equal value count as
//    one identity, so the `0`s and `1`s that backward rules create do not split CSE.
//  - Folding: an op whose inputs are all constants runs its forward kernel now and becomes a new
//    constant, unless that would bake a large broadcast into the plan (output above kFoldLimit
//    elements and larger than every input).
//  - Elementwise: x + 0, 0 + x, x - 0, x * 1, 1 * x, x / 1, x ^ 1 -> x; 0 - x, x * -1, x / -1
//    -> -x when that keeps the shape (-x then broadcast_to would add a kernel); a + -b -> a - b;
//    a - -b -> a + b; -a * -b -> a * b; -x * c -> x * (-c) with c constant; where(c, a, a) -> a;
//    where with a constant condition picks a side. A broadcast_to feeding a broadcasting
//    elementwise op is dropped when the op's output shape stays the same (the kernel broadcasts).
//  - x * 0 -> 0 only where it is safe: 0 * inf and 0 * nan are nan, so x must be known finite,
//    i.e. a compare (0/1) or argmax (an index) result, or a finite constant. A general x is kept.
//  - Unary: -(-x) -> x; -(a - b) -> b - a and -(x * c) -> x * (-c) when the inner node has no
//    other user; detach(x) -> x (autodiff already ran: detach is the identity on values).
//  - Movement: reshape to the same shape, broadcast_to the same shape, the identity permute and
//    sum over size-1 axes drop out (or become one reshape); reshape(reshape), permute(permute),
//    broadcast_to(broadcast_to) compose; a reshape that only adds or drops leading 1s before a
//    broadcast_to is dropped; reshape(broadcast_to(s)) of one element becomes broadcast_to(s).
//  - Reductions: sum(broadcast_to(x)) over axes where x has size 1 is reshape(x * count),
//    broadcast over the broadcast axes that were not summed; sum(-x) is -sum(x) (the smaller
//    tensor is negated, and a + -s then becomes a - s); sum(sum(x)) with the same keepdims
//    and reshape(sum(x, keepdims)) dropping those axes become one sum when the inner sum has no
//    other user (otherwise the reduction would run twice).
//  - matmul of permute(x) that swaps the last two axes uses the transpose flag instead.
// The rules run to a fixed point (at most kMaxRounds rounds over the whole DAG): rules that need
// the use count of a node only see counts of the DAG the round started from, so a round may
// enable more rewrites in the next one.

namespace {

constexpr std::size_t kFoldLimit = 4096;
constexpr int kMaxRounds = 8;

template <class T>
void append(std::string& key, const T& value) {
    key.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

void append_shape(std::string& key, const Shape& shape) {
    append(key, static_cast<std::uint32_t>(shape.size()));
    for (std::size_t d : shape) {
        append(key, static_cast<std::uint64_t>(d));
    }
}

// numpy broadcasting of two shapes, or nothing when they do not broadcast.
std::optional<Shape> broadcast_pair(const Shape& a, const Shape& b) {
    const std::size_t rank = std::max(a.size(), b.size());
    Shape out(rank);
    for (std::size_t i = 0; i < rank; ++i) {
        const std::size_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
        const std::size_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
        if (da != db && da != 1 && db != 1) {
            return std::nullopt;
        }
        out[i] = da == 1 ? db : da;
    }
    return out;
}

std::optional<Shape> broadcast_all(const std::vector<NodePtr>& inputs) {
    std::optional<Shape> shape = Shape{};
    for (const NodePtr& in : inputs) {
        shape = broadcast_pair(*shape, in->shape);
        if (!shape) {
            break;
        }
    }
    return shape;
}

// `s` with 1s prepended up to `rank` axes (numpy aligns shapes on their last axis).
Shape aligned(const Shape& s, std::size_t rank) {
    Shape out(rank - s.size(), 1);
    out.insert(out.end(), s.begin(), s.end());
    return out;
}

Shape without_leading_ones(const Shape& s) {
    auto first = std::find_if(s.begin(), s.end(), [](std::size_t d) { return d != 1; });
    return Shape(first, s.end());
}

bool is_identity(const std::vector<int>& perm) {
    for (std::size_t i = 0; i < perm.size(); ++i) {
        if (perm[i] != static_cast<int>(i)) {
            return false;
        }
    }
    return true;
}

// The permutation that swaps the last two axes and keeps the others: a matrix transpose.
bool swaps_last_two(const std::vector<int>& perm) {
    const std::size_t r = perm.size();
    if (r < 2 || perm[r - 2] != static_cast<int>(r - 1) || perm[r - 1] != static_cast<int>(r - 2)) {
        return false;
    }
    return is_identity(std::vector<int>(perm.begin(), perm.end() - 2));
}

template <class OpT>
const OpT* as(const NodePtr& n) {
    return std::get_if<OpT>(&n->op);
}

// Ops whose kernel broadcasts every input to the output shape (kernels::map).
bool broadcasts_inputs(const Op& op) {
    return std::visit(
        []<class T>(const T&) {
            return std::is_same_v<T, Add> || std::is_same_v<T, Sub> || std::is_same_v<T, Mul> ||
                   std::is_same_v<T, Div> || std::is_same_v<T, Pow> || std::is_same_v<T, Maximum> ||
                   std::is_same_v<T, Minimum> || std::is_same_v<T, Compare> ||
                   std::is_same_v<T, Where>;
        },
        op);
}

class Simplifier {
public:
    explicit Simplifier(const std::vector<Node*>& leaves)
        : m_user_leaves(leaves.begin(), leaves.end()) {}

    // One bottom-up pass over the DAG of `roots`; returns the new roots.
    std::vector<NodePtr> round(const std::vector<NodePtr>& roots);

private:
    std::unordered_set<const Node*> m_user_leaves;
    std::unordered_map<const Node*, NodePtr> m_map;      // this round's input -> output
    std::unordered_map<const Node*, std::size_t> m_uses; // in the DAG this round started from
    std::unordered_map<std::string, NodePtr> m_cse;
    std::unordered_map<const Node*, const Node*> m_canonical; // constant -> first equal constant
    std::unordered_map<std::string, const Node*> m_constant_by_value;
    std::vector<NodePtr> m_keep_alive; // nodes m_canonical points at stay valid during a round

    bool is_constant(const Node& n) const {
        return n.is_leaf() && n.data && !m_user_leaves.contains(&n);
    }
    std::optional<double> uniform_value(const Node& n) const;
    bool has_value(const NodePtr& n, double v) const {
        std::optional<double> u = uniform_value(*n);
        return u && *u == v;
    }
    bool known_finite(const NodePtr& n) const;
    bool single_use(const NodePtr& n) const {
        auto it = m_uses.find(n.get());
        return it != m_uses.end() && it->second == 1;
    }
    const Node* canonical(const NodePtr& n);
    std::string cse_key(const Op& op, const std::vector<NodePtr>& inputs, const Shape& shape,
                        DType dtype);
    bool should_fold(const std::vector<NodePtr>& inputs, const Shape& shape) const;
    static NodePtr fold(const Op& op, const std::vector<NodePtr>& inputs, const Shape& shape,
                        DType dtype);

    // The canonical node for op(inputs): a rule's result, a folded constant, an equal node built
    // before, or a new node (`origin` itself when its inputs did not change).
    NodePtr emit(Op op, std::vector<NodePtr> inputs, Shape shape, DType dtype,
                 Node* origin = nullptr);
    NodePtr rewrite(const Op& op, const std::vector<NodePtr>& in, const Shape& shape, DType dtype);

    NodePtr rewrite_add(const NodePtr& a, const NodePtr& b, const Shape& shape);
    NodePtr rewrite_sub(const NodePtr& a, const NodePtr& b, const Shape& shape);
    NodePtr rewrite_mul(const NodePtr& a, const NodePtr& b, const Shape& shape);
    NodePtr rewrite_neg(const NodePtr& x);
    NodePtr rewrite_where(const std::vector<NodePtr>& in, const Shape& shape);
    NodePtr rewrite_reshape(const NodePtr& x, const Shape& shape);
    NodePtr rewrite_broadcast(const NodePtr& x, const Shape& shape);
    NodePtr rewrite_sum(const ReduceSum& op, const NodePtr& x, const Shape& shape);
    NodePtr rewrite_matmul(const Matmul& op, const NodePtr& a, const NodePtr& b,
                           const Shape& shape);

    // Builders: go through emit, so their results are simplified too.
    NodePtr reshape(const NodePtr& x, const Shape& shape) {
        return emit(Reshape{shape}, {x}, shape, x->dtype);
    }
    NodePtr broadcast(const NodePtr& x, const Shape& shape) { // x itself for x's own shape
        return emit(BroadcastTo{shape}, {x}, shape, x->dtype);
    }
    NodePtr neg(const NodePtr& x) { return emit(Neg{}, {x}, x->shape, x->dtype); }
    template <class OpT>
    NodePtr binary(const NodePtr& a, const NodePtr& b) {
        std::optional<Shape> shape = broadcast_pair(a->shape, b->shape);
        PYNN_ASSERT(shape, "simplify: ", OpT::name, " of ", to_string(a->shape), " and ",
                    to_string(b->shape));
        return emit(OpT{}, {a, b}, *shape, a->dtype);
    }
    static NodePtr constant(double value, const Shape& shape, DType dtype) {
        auto storage = std::make_shared<Storage>(dtype, numel(shape));
        storage->fill(value);
        return make_leaf(std::move(storage), shape);
    }
    NodePtr zeros(const Shape& shape, DType dtype) {
        return broadcast(constant(0.0, {}, dtype), shape); // folded unless large
    }
};

std::optional<double> Simplifier::uniform_value(const Node& n) const {
    if (!is_constant(n) || n.data->numel() == 0) {
        return std::nullopt;
    }
    std::optional<double> value;
    dispatch_dtype(n.data->dtype(), [&]<class T>() {
        const T* p = n.data->data<T>();
        for (std::size_t i = 0; i < n.data->numel(); ++i) {
            if (!(p[i] == p[0])) { // also rejects nan
                return;
            }
        }
        value = static_cast<double>(p[0]);
    });
    return value;
}

bool Simplifier::known_finite(const NodePtr& n) const {
    if (as<Compare>(n) || as<Argmax>(n)) {
        return true;
    }
    if (!is_constant(*n)) {
        return false;
    }
    bool finite = true;
    dispatch_dtype(n->data->dtype(), [&]<class T>() {
        const T* p = n->data->data<T>();
        for (std::size_t i = 0; i < n->data->numel() && finite; ++i) {
            finite = std::isfinite(p[i]);
        }
    });
    return finite;
}

const Node* Simplifier::canonical(const NodePtr& n) {
    if (!is_constant(*n) || n->data->numel() > kFoldLimit) {
        return n.get();
    }
    auto [it, inserted] = m_canonical.try_emplace(n.get(), n.get());
    if (inserted) {
        m_keep_alive.push_back(n);
        std::string key;
        append(key, static_cast<std::uint8_t>(n->dtype));
        append_shape(key, n->shape);
        key.append(static_cast<const char*>(n->data->raw()), n->data->bytes());
        it->second = m_constant_by_value.try_emplace(std::move(key), n.get()).first->second;
    }
    return it->second;
}

std::string Simplifier::cse_key(const Op& op, const std::vector<NodePtr>& inputs,
                                const Shape& shape, DType dtype) {
    std::string key;
    append(key, static_cast<std::uint8_t>(op.index()));
    append(key, static_cast<std::uint8_t>(dtype));
    append_shape(key, shape);
    const std::string attrs = op_attributes(op);
    append(key, static_cast<std::uint32_t>(attrs.size()));
    key += attrs;
    for (const NodePtr& in : inputs) {
        append(key, reinterpret_cast<std::uintptr_t>(canonical(in)));
    }
    return key;
}

bool Simplifier::should_fold(const std::vector<NodePtr>& inputs, const Shape& shape) const {
    if (inputs.empty()) {
        return false;
    }
    std::size_t largest_input = 0;
    for (const NodePtr& in : inputs) {
        if (!is_constant(*in)) {
            return false;
        }
        largest_input = std::max(largest_input, in->data->numel());
    }
    const std::size_t n = numel(shape);
    return n <= kFoldLimit || n <= largest_input;
}

NodePtr Simplifier::fold(const Op& op, const std::vector<NodePtr>& inputs, const Shape& shape,
                         DType dtype) {
    auto storage = std::make_shared<Storage>(dtype, numel(shape));
    std::vector<Operand> operands;
    operands.reserve(inputs.size());
    for (const NodePtr& in : inputs) {
        operands.push_back({in->data->raw(), &in->shape});
    }
    const KernelArgs args{dtype, operands, storage->raw(), shape};
    std::visit([&](const auto& o) { o.forward(args); }, op);
    return make_leaf(std::move(storage), shape);
}

NodePtr Simplifier::emit(Op op, std::vector<NodePtr> inputs, Shape shape, DType dtype,
                         Node* origin) {
    if (NodePtr r = rewrite(op, inputs, shape, dtype)) {
        PYNN_ASSERT(r->shape == shape && r->dtype == dtype, "simplify: a rule rewrote ",
                    op_name(op), " ", to_string(shape), " ", to_string(dtype), " into ",
                    op_name(r->op), " ", to_string(r->shape), " ", to_string(r->dtype));
        return r;
    }
    if (should_fold(inputs, shape)) {
        return fold(op, inputs, shape, dtype);
    }
    std::string key = cse_key(op, inputs, shape, dtype);
    if (auto it = m_cse.find(key); it != m_cse.end()) {
        return it->second;
    }
    NodePtr node;
    if (origin != nullptr && origin->inputs == inputs) {
        node = origin->shared_from_this();
    } else {
        node = make_node(std::move(op), std::move(inputs), std::move(shape), dtype);
        if (origin != nullptr) {
            node->name = origin->name;
        }
    }
    m_cse.emplace(std::move(key), node);
    return node;
}

NodePtr Simplifier::rewrite(const Op& op, const std::vector<NodePtr>& in, const Shape& shape,
                            DType dtype) {
    if (broadcasts_inputs(op)) {
        std::vector<NodePtr> narrowed = in;
        bool changed = false;
        for (std::size_t i = 0; i < in.size(); ++i) {
            if (!as<BroadcastTo>(in[i])) {
                continue;
            }
            std::vector<NodePtr> trial = narrowed;
            trial[i] = in[i]->inputs[0];
            if (broadcast_all(trial) == shape) {
                narrowed = std::move(trial);
                changed = true;
            }
        }
        if (changed) {
            return emit(op, std::move(narrowed), shape, dtype);
        }
    }
    if (std::holds_alternative<Add>(op)) {
        return rewrite_add(in[0], in[1], shape);
    }
    if (std::holds_alternative<Sub>(op)) {
        return rewrite_sub(in[0], in[1], shape);
    }
    if (std::holds_alternative<Mul>(op)) {
        return rewrite_mul(in[0], in[1], shape);
    }
    if (std::holds_alternative<Div>(op)) {
        if (has_value(in[1], 1.0)) {
            return broadcast(in[0], shape);
        }
        if (has_value(in[1], -1.0) && in[0]->shape == shape) {
            return neg(in[0]);
        }
        return nullptr;
    }
    if (std::holds_alternative<Pow>(op)) {
        return has_value(in[1], 1.0) ? broadcast(in[0], shape) : nullptr;
    }
    if (std::holds_alternative<Where>(op)) {
        return rewrite_where(in, shape);
    }
    if (std::holds_alternative<Neg>(op)) {
        return rewrite_neg(in[0]);
    }
    if (std::holds_alternative<Detach>(op)) {
        return in[0];
    }
    if (std::holds_alternative<Reshape>(op)) {
        return rewrite_reshape(in[0], shape);
    }
    if (const auto* p = std::get_if<Permute>(&op)) {
        if (is_identity(p->perm)) {
            return in[0];
        }
        if (const auto* inner = as<Permute>(in[0])) {
            std::vector<int> composed(p->perm.size());
            for (std::size_t i = 0; i < composed.size(); ++i) {
                composed[i] = inner->perm[static_cast<std::size_t>(p->perm[i])];
            }
            return emit(Permute{composed}, {in[0]->inputs[0]}, shape, dtype);
        }
        return nullptr;
    }
    if (std::holds_alternative<BroadcastTo>(op)) {
        return rewrite_broadcast(in[0], shape);
    }
    if (const auto* s = std::get_if<ReduceSum>(&op)) {
        return rewrite_sum(*s, in[0], shape);
    }
    if (const auto* m = std::get_if<Matmul>(&op)) {
        return rewrite_matmul(*m, in[0], in[1], shape);
    }
    return nullptr;
}

NodePtr Simplifier::rewrite_add(const NodePtr& a, const NodePtr& b, const Shape& shape) {
    if (has_value(b, 0.0)) {
        return broadcast(a, shape);
    }
    if (has_value(a, 0.0)) {
        return broadcast(b, shape);
    }
    if (as<Neg>(b)) {
        return binary<Sub>(a, b->inputs[0]);
    }
    if (as<Neg>(a)) {
        return binary<Sub>(b, a->inputs[0]);
    }
    return nullptr;
}

NodePtr Simplifier::rewrite_sub(const NodePtr& a, const NodePtr& b, const Shape& shape) {
    if (has_value(b, 0.0)) {
        return broadcast(a, shape);
    }
    if (has_value(a, 0.0) && b->shape == shape) {
        return neg(b);
    }
    if (as<Neg>(b)) {
        return binary<Add>(a, b->inputs[0]);
    }
    return nullptr;
}

NodePtr Simplifier::rewrite_mul(const NodePtr& a, const NodePtr& b, const Shape& shape) {
    // x is the operand kept, c the one that may be a constant.
    for (const auto& [x, c] : {std::pair{a, b}, std::pair{b, a}}) {
        if (has_value(c, 1.0)) {
            return broadcast(x, shape);
        }
        if (has_value(c, -1.0) && x->shape == shape) {
            return neg(x);
        }
        if (has_value(c, 0.0) && known_finite(x)) {
            return zeros(shape, x->dtype);
        }
    }
    if (as<Neg>(a) && as<Neg>(b)) {
        return binary<Mul>(a->inputs[0], b->inputs[0]);
    }
    for (const auto& [x, c] : {std::pair{a, b}, std::pair{b, a}}) {
        if (as<Neg>(x) && is_constant(*c)) {
            return binary<Mul>(x->inputs[0], neg(c));
        }
    }
    return nullptr;
}

NodePtr Simplifier::rewrite_neg(const NodePtr& x) {
    if (as<Neg>(x)) {
        return x->inputs[0];
    }
    if (!single_use(x)) {
        return nullptr;
    }
    if (as<Sub>(x)) {
        return binary<Sub>(x->inputs[1], x->inputs[0]);
    }
    if (as<Mul>(x)) {
        for (std::size_t i = 0; i < 2; ++i) {
            const NodePtr& c = x->inputs[i];
            if (is_constant(*c)) {
                return binary<Mul>(x->inputs[1 - i], neg(c));
            }
        }
    }
    return nullptr;
}

NodePtr Simplifier::rewrite_where(const std::vector<NodePtr>& in, const Shape& shape) {
    const NodePtr& cond = in[0];
    if (in[1] == in[2]) {
        return broadcast(in[1], shape);
    }
    if (std::optional<double> c = uniform_value(*cond)) {
        return broadcast(*c != 0.0 ? in[1] : in[2], shape);
    }
    return nullptr;
}

NodePtr Simplifier::rewrite_reshape(const NodePtr& x, const Shape& shape) {
    if (x->shape == shape) {
        return x;
    }
    if (as<Reshape>(x)) {
        return reshape(x->inputs[0], shape);
    }
    if (as<BroadcastTo>(x)) {
        // One value broadcast, then reshaped: broadcast that value to the new shape directly.
        const NodePtr& value = x->inputs[0];
        if (numel(value->shape) == 1) {
            return broadcast(value->shape.size() <= shape.size() ? value : reshape(value, {}),
                             shape);
        }
    }
    if (const auto* s = as<ReduceSum>(x)) {
        const NodePtr& y = x->inputs[0];
        if (s->keepdims && single_use(x) && reduced_shape(y->shape, s->axes, false) == shape) {
            return emit(ReduceSum{s->axes, false}, {y}, shape, x->dtype);
        }
    }
    return nullptr;
}

NodePtr Simplifier::rewrite_broadcast(const NodePtr& x, const Shape& shape) {
    if (x->shape == shape) {
        return x;
    }
    if (as<BroadcastTo>(x)) {
        return broadcast(x->inputs[0], shape);
    }
    if (as<Reshape>(x)) {
        // A reshape that only adds or drops leading 1s does not change how x broadcasts.
        const NodePtr& y = x->inputs[0];
        if (y->shape.size() <= shape.size() &&
            without_leading_ones(y->shape) == without_leading_ones(x->shape)) {
            return broadcast(y, shape);
        }
    }
    return nullptr;
}

NodePtr Simplifier::rewrite_sum(const ReduceSum& op, const NodePtr& x, const Shape& shape) {
    const Shape& xs = x->shape;
    if (std::all_of(op.axes.begin(), op.axes.end(),
                    [&](int a) { return xs[static_cast<std::size_t>(a)] == 1; })) {
        return reshape(x, shape);
    }
    if (as<BroadcastTo>(x)) {
        // sum over axes where y has size 1 (broadcast or not): each output element adds `count`
        // copies of one value of y.
        const NodePtr& y = x->inputs[0];
        const Shape ya = aligned(y->shape, xs.size());
        std::size_t count = 1;
        bool applies = true;
        for (int a : op.axes) {
            const auto i = static_cast<std::size_t>(a);
            applies = applies && ya[i] == 1;
            count *= xs[i];
        }
        if (applies && count > 0) {
            // Scale first: the reshape then only drops or adds 1s, which a broadcast absorbs.
            NodePtr v = y;
            if (count != 1) {
                v = binary<Mul>(v, constant(static_cast<double>(count), {}, v->dtype));
            }
            return broadcast(reshape(v, reduced_shape(ya, op.axes, op.keepdims)), shape);
        }
    }
    if (as<Neg>(x) && single_use(x)) { // negate the smaller tensor; a + sum(-z) -> a - sum(z)
        return neg(emit(op, {x->inputs[0]}, shape, x->dtype));
    }
    if (const auto* inner = as<ReduceSum>(x)) {
        if (inner->keepdims == op.keepdims && single_use(x)) {
            const NodePtr& y = x->inputs[0];
            std::vector<int> axes = inner->axes;
            if (op.keepdims) { // the inner sum kept its axes: same numbering
                axes.insert(axes.end(), op.axes.begin(), op.axes.end());
            } else { // op.axes number the axes the inner sum kept
                std::vector<int> kept;
                for (std::size_t i = 0; i < y->shape.size(); ++i) {
                    if (!std::binary_search(inner->axes.begin(), inner->axes.end(),
                                            static_cast<int>(i))) {
                        kept.push_back(static_cast<int>(i));
                    }
                }
                for (int a : op.axes) {
                    axes.push_back(kept[static_cast<std::size_t>(a)]);
                }
            }
            std::sort(axes.begin(), axes.end());
            axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
            return emit(ReduceSum{axes, op.keepdims}, {y}, shape, x->dtype);
        }
    }
    return nullptr;
}

NodePtr Simplifier::rewrite_matmul(const Matmul& op, const NodePtr& a, const NodePtr& b,
                                   const Shape& shape) {
    const auto* pa = as<Permute>(a);
    const auto* pb = as<Permute>(b);
    const bool ta = pa && swaps_last_two(pa->perm);
    const bool tb = pb && swaps_last_two(pb->perm);
    if (!ta && !tb) {
        return nullptr;
    }
    return emit(Matmul{op.trans_a != ta, op.trans_b != tb},
                {ta ? a->inputs[0] : a, tb ? b->inputs[0] : b}, shape, a->dtype);
}

std::vector<NodePtr> Simplifier::round(const std::vector<NodePtr>& roots) {
    m_map.clear();
    m_uses.clear();
    m_cse.clear();
    m_canonical.clear();
    m_constant_by_value.clear();
    m_keep_alive.clear();
    std::vector<Node*> raw;
    for (const NodePtr& r : roots) {
        raw.push_back(r.get());
        ++m_uses[r.get()];
    }
    const std::vector<Node*> order = topological_order(raw);
    for (Node* n : order) {
        for (const NodePtr& in : n->inputs) {
            ++m_uses[in.get()];
        }
    }
    for (Node* n : order) {
        if (n->is_leaf()) {
            m_map[n] = n->shared_from_this();
            continue;
        }
        std::vector<NodePtr> inputs;
        inputs.reserve(n->inputs.size());
        for (const NodePtr& in : n->inputs) {
            inputs.push_back(m_map.at(in.get()));
        }
        m_map[n] = emit(n->op, std::move(inputs), n->shape, n->dtype, n);
    }
    std::vector<NodePtr> result;
    result.reserve(roots.size());
    for (const NodePtr& r : roots) {
        result.push_back(m_map.at(r.get()));
    }
    return result;
}

} // namespace

std::vector<NodePtr> simplify(const std::vector<NodePtr>& roots, const std::vector<Node*>& leaves) {
    NoGradGuard no_grad; // the new nodes are values only: autodiff already ran
    Simplifier simplifier(leaves);
    std::vector<NodePtr> current = roots;
    for (int i = 0; i < kMaxRounds; ++i) {
        std::vector<NodePtr> next = simplifier.round(current);
        const bool fixed_point = next == current;
        current = std::move(next);
        if (fixed_point) {
            break;
        }
    }
    for (std::size_t i = 0; i < roots.size(); ++i) {
        PYNN_ASSERT(current[i]->shape == roots[i]->shape && current[i]->dtype == roots[i]->dtype,
                    "simplify: root ", i, " changed from ", to_string(roots[i]->shape), " to ",
                    to_string(current[i]->shape));
    }
    return current;
}

} // namespace pynn::compiler
