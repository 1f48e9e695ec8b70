// The compile driver and the plan cache. A training loop rebuilds the same DAG every step, so
// the compiled plan is keyed by the DAG's structure: ops with attributes, shapes, dtypes, grad
// flags, how nodes connect and where each leaf sits. Leaf data is not part of the key; it is
// bound at run time.
#include "compiler/compile.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

#include "compiler/autodiff.hpp"
#include "compiler/fuse.hpp"
#include "compiler/memory_plan.hpp"
#include "compiler/simplify.hpp"
#include "ops/builder.hpp"
#include "pynn/flags.hpp"

namespace pynn::compiler {

namespace {

struct Cache {
    std::mutex mutex;
    std::unordered_map<std::string, std::shared_ptr<CompiledPlan>> plans;
    CacheStats stats;
};
Cache& cache() {
    static Cache c;
    return c;
}

template <class T>
void append(std::string& key, const T& value) {
    key.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

std::string structural_key(const Request& request, const std::vector<Node*>& order) {
    std::unordered_map<const Node*, std::uint32_t> position;
    std::string key;
    key.reserve(order.size() * 48);
    for (std::uint32_t i = 0; i < order.size(); ++i) {
        const Node* n = order[i];
        position[n] = i;
        append(key, static_cast<std::uint8_t>(n->op.index()));
        append(key, static_cast<std::uint8_t>(n->dtype));
        append(key, static_cast<std::uint8_t>(n->requires_grad));
        append(key, static_cast<std::uint32_t>(n->shape.size()));
        for (std::size_t d : n->shape) {
            append(key, static_cast<std::uint64_t>(d));
        }
        std::string attrs = op_attributes(n->op);
        append(key, static_cast<std::uint32_t>(attrs.size()));
        key += attrs;
        append(key, static_cast<std::uint32_t>(n->inputs.size()));
        for (const NodePtr& in : n->inputs) {
            append(key, position.at(in.get()));
        }
    }
    key += request.backward ? 'B' : 'F';
    for (const NodePtr& out : request.outputs) {
        append(key, position.at(out.get()));
    }
    if (request.seed) {
        append(key, position.at(request.seed.get()));
    }
    key += 'A';
    for (const NodePtr& target : request.assign_targets) {
        const auto it = target ? position.find(target.get()) : position.end();
        append(key, it != position.end() ? it->second : UINT32_MAX);
    }
    return key;
}

Plan build_plan(const Request& request, const std::vector<Node*>& order,
                const std::vector<Node*>& leaves, const PassOptions& options) {
    // Roots: the requested outputs, then one gradient per leaf that gets one.
    std::vector<NodePtr> roots = request.outputs;
    std::unordered_map<Node*, std::size_t> leaf_index;
    for (std::size_t i = 0; i < leaves.size(); ++i) {
        leaf_index[leaves[i]] = i;
    }
    std::vector<std::pair<Node*, Tensor>> grads;
    if (request.backward) {
        Tensor loss(request.outputs.front());
        Tensor seed;
        if (request.seed) {
            seed = Tensor(request.seed);
        } else {
            NoGradGuard no_grad;
            seed = Tensor::ones(loss.shape(), loss.dtype());
        }
        for (auto& [leaf, grad] : autodiff(loss, seed, order)) {
            grads.emplace_back(leaf, grad);
        }
        // Leaf order, so the schedule does not depend on hash-map iteration order.
        std::sort(grads.begin(), grads.end(), [&](const auto& x, const auto& y) {
            return leaf_index.at(x.first) < leaf_index.at(y.first);
        });
        for (const auto& [leaf, grad] : grads) {
            roots.push_back(grad.node());
        }
    }
    if (options.simplify) {
        roots = simplify(roots, leaves);
    }
    std::vector<Node*> raw;
    for (const NodePtr& r : roots) {
        raw.push_back(r.get());
    }
    Plan plan = lower(raw, leaves);
    // lower() numbers buffers in topological order; find the roots' buffers again.
    std::unordered_map<Node*, std::size_t> buffer_of;
    {
        std::size_t id = 0;
        for (Node* n : topological_order(raw)) {
            buffer_of[n] = id++;
        }
    }
    const std::size_t num_outputs = request.outputs.size();
    for (std::size_t i = 0; i < num_outputs; ++i) {
        plan.outputs.push_back(buffer_of.at(raw[i]));
    }
    for (std::size_t i = 0; i < grads.size(); ++i) {
        plan.grads.emplace_back(leaf_index.at(grads[i].first), buffer_of.at(raw[num_outputs + i]));
    }
    if (options.fusion) {
        fuse(plan);
    }
    if (options.memory_reuse) {
        schedule_for_memory(plan);
    }
    if (options.fusion) {
        explain_boundaries(plan);
    }
    plan_memory(plan, options.memory_reuse);
    std::vector<std::size_t> target_leaf;
    for (const NodePtr& target : request.assign_targets) {
        const auto it = target ? leaf_index.find(target.get()) : leaf_index.end();
        target_leaf.push_back(it != leaf_index.end() ? it->second : SIZE_MAX);
    }
    plan_overwrites(plan, target_leaf);
    return plan;
}

} // namespace

PassOptions PassOptions::current() {
    if (Flags::detect_anomaly()) { // one kernel per op the user wrote, so a report names the op
        return {false, false, Flags::memory_reuse()};
    }
    return {Flags::simplify(), Flags::fusion(), Flags::memory_reuse()};
}

Compiled compile(const Request& original) {
    PYNN_ASSERT(!original.outputs.empty(), "compile: no outputs requested");
    Request request = original;
    auto roots_of = [&]() {
        std::vector<Node*> roots;
        for (const NodePtr& out : request.outputs) {
            roots.push_back(out.get());
        }
        if (request.seed) {
            roots.push_back(request.seed.get());
        }
        return roots;
    };
    std::vector<Node*> order = topological_order(roots_of());
    Compiled result;
    // Pending deferred writes (Tensor::defer_assign) become extra outputs of this run. Rare
    // (BatchNorm in training mode), so the walk is redone only when there are some.
    for (Node* n : order) {
        if (!n->effects.empty() && !n->effects_done) {
            result.effect_nodes.push_back(n->shared_from_this());
            for (const auto& effect : n->effects) {
                request.outputs.push_back(effect.second);
                result.effect_values.push_back(effect.second);
            }
        }
    }
    if (!result.effect_values.empty()) {
        order = topological_order(roots_of());
    }
    for (Node* n : order) {
        if (n->is_leaf()) {
            result.leaves.push_back(n);
        }
    }
    const PassOptions options = PassOptions::current();
    if (Flags::detect_anomaly()) { // the steps name this graph's ops and layers: not reusable
        result.entry = std::make_shared<CompiledPlan>();
        result.entry->plan = build_plan(request, order, result.leaves, options);
        return result;
    }
    std::string key = structural_key(request, order);
    key += options.simplify ? 's' : '-';
    key += options.fusion ? 'f' : '-';
    key += options.memory_reuse ? 'm' : '-';
    Cache& c = cache();
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        auto it = c.plans.find(key);
        if (it != c.plans.end()) {
            ++c.stats.hits;
            result.entry = it->second;
            result.cache_hit = true;
            return result;
        }
    }
    auto entry = std::make_shared<CompiledPlan>();
    entry->plan = build_plan(request, order, result.leaves, options);
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        ++c.stats.misses;
        c.plans.emplace(std::move(key), entry);
        c.stats.entries = c.plans.size();
    }
    result.entry = std::move(entry);
    return result;
}

CacheStats cache_stats() {
    std::lock_guard<std::mutex> lock(cache().mutex);
    return cache().stats;
}

void clear_cache() {
    std::lock_guard<std::mutex> lock(cache().mutex);
    cache().plans.clear();
    cache().stats = {};
}

} // namespace pynn::compiler
