// The executor: binds leaf storages to a Plan's buffers, allocates intermediates once per cached
// plan, runs the steps in order, then copies out requested values and accumulates gradients.
#include "pynn/compute_graph.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <unordered_map>
#include <utility>

#include "compiler/compile.hpp"
#include "ops/builder.hpp"
#include "pynn/flags.hpp"
#include "runtime/parallel.hpp"

namespace pynn {

ComputeGraph::ComputeGraph(std::vector<Tensor> outputs) : m_outputs(std::move(outputs)) {
    compiler::Request request;
    for (std::size_t i = 0; i < m_outputs.size(); ++i) {
        check_defined("ComputeGraph", m_outputs[i], "output " + std::to_string(i));
        request.outputs.push_back(m_outputs[i].node());
    }
    PYNN_CHECK(!request.outputs.empty(), ValueError, "ComputeGraph: no outputs given");
    compile(request);
}

void ComputeGraph::compile(const compiler::Request& request) {
    compiler::Compiled compiled = compiler::compile(request);
    m_plan = compiled.entry;
    m_cache_hit = compiled.cache_hit;
    for (Node* leaf : compiled.leaves) {
        m_leaves.push_back(leaf->shared_from_this());
    }
    m_effect_nodes = std::move(compiled.effect_nodes);
    for (NodePtr& value : compiled.effect_values) {
        m_outputs.emplace_back(std::move(value));
    }
}

ComputeGraph ComputeGraph::backward(const Tensor& loss, const Tensor& seed,
                                    const std::vector<Tensor>& keep) {
    check_defined("backward", loss, "loss");
    PYNN_CHECK(loss.requires_grad(), ValueError, "backward: loss ", pynn::to_string(loss.shape()),
               " does not require grad: no leaf it depends on has requires_grad set (or it was "
               "built under NoGradGuard)");
    compiler::Request request;
    request.outputs.push_back(loss.node());
    request.backward = true;
    if (seed.defined()) {
        PYNN_CHECK(seed.shape() == loss.shape(), ShapeError, "backward: loss ",
                   pynn::to_string(loss.shape()), " and seed gradient ", pynn::to_string(seed.shape()),
                   ": shapes differ");
        check_same_dtype("backward", loss, seed, "loss", "seed gradient");
        request.seed = seed.detach().node();
    } else {
        PYNN_CHECK(loss.numel() == 1, ShapeError, "backward: loss ", pynn::to_string(loss.shape()),
                   " has ", loss.numel(),
                   " elements; backward() without a seed gradient needs a scalar (reduce it "
                   "with sum() or mean(), or pass backward(seed))");
    }
    ComputeGraph g;
    g.m_outputs = {loss};
    for (std::size_t i = 0; i < keep.size(); ++i) {
        check_defined("backward", keep[i], "kept tensor " + std::to_string(i));
        request.outputs.push_back(keep[i].node());
        g.m_outputs.push_back(keep[i]);
    }
    g.compile(request);
    return g;
}

ComputeGraph ComputeGraph::assign(const std::vector<std::pair<Tensor, Tensor>>& writes,
                                  const std::vector<Tensor>& keep) {
    PYNN_CHECK(!writes.empty() || !keep.empty(), ValueError,
               "ComputeGraph::assign: no writes given");
    ComputeGraph g;
    compiler::Request request;
    for (std::size_t i = 0; i < writes.size(); ++i) {
        const auto& [target, value] = writes[i];
        const std::string what = "write " + std::to_string(i);
        check_defined("ComputeGraph::assign", target, what + " target");
        check_defined("ComputeGraph::assign", value, what + " value");
        PYNN_CHECK(target.is_leaf(), ValueError, "ComputeGraph::assign: ", what, " target ",
                   pynn::to_string(target.shape()), " is not a leaf (only leaves hold data)");
        PYNN_CHECK(target.shape() == value.shape(), ShapeError, "ComputeGraph::assign: ", what,
                   " target ", pynn::to_string(target.shape()), " and value ",
                   pynn::to_string(value.shape()), ": shapes differ");
        check_same_dtype("ComputeGraph::assign", target, value, what + " target",
                         what + " value");
        for (std::size_t j = 0; j < i; ++j) {
            PYNN_CHECK(writes[j].first.node() != target.node(), ValueError,
                       "ComputeGraph::assign: writes ", j, " and ", i,
                       " have the same target ", pynn::to_string(target.shape()));
        }
        request.outputs.push_back(value.node());
        request.assign_targets.push_back(target.node());
        g.m_outputs.push_back(value);
        g.m_assign_targets.push_back(target.node());
    }
    for (std::size_t i = 0; i < keep.size(); ++i) {
        check_defined("ComputeGraph::assign", keep[i], "kept tensor " + std::to_string(i));
        request.outputs.push_back(keep[i].node());
        g.m_outputs.push_back(keep[i]);
    }
    g.compile(request);
    return g;
}

std::size_t ComputeGraph::num_kernels() const { return m_plan->plan.steps.size(); }

std::string ComputeGraph::to_string() const { return m_plan->plan.to_string(); }

std::string ComputeGraph::to_dot() const { return m_plan->plan.to_dot(); }

void ComputeGraph::write_dot(const std::string& path) const {
    std::ofstream out(path);
    out << to_dot();
    out.close();
    PYNN_CHECK(out.good(), IOError, "write_dot: ", path, ": could not write the file");
}

namespace {

void accumulate(Storage& into, const void* add) {
    if (into.dtype() == DType::Float32) {
        float* d = into.data<float>();
        const auto* s = static_cast<const float*>(add);
        for (std::size_t i = 0; i < into.numel(); ++i) {
            d[i] += s[i];
        }
    } else {
        double* d = into.data<double>();
        const auto* s = static_cast<const double*>(add);
        for (std::size_t i = 0; i < into.numel(); ++i) {
            d[i] += s[i];
        }
    }
}

// PYNN_PROFILE=1: time per kernel, sorted, with its share of the run.
void print_profile(const compiler::Plan& plan, const std::vector<double>& seconds) {
    std::vector<std::size_t> order(seconds.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return seconds[a] > seconds[b]; });
    const double total = std::accumulate(seconds.begin(), seconds.end(), 0.0);
    std::fprintf(stderr, "pynn profile: %zu kernels, %.3f ms\n", seconds.size(), total * 1e3);
    for (std::size_t k : order) {
        const compiler::Step& s = plan.steps[k];
        std::fprintf(stderr, "  %9.3f ms %5.1f%%  #%zu %s -> %s\n", seconds[k] * 1e3,
                     total > 0 ? 100.0 * seconds[k] / total : 0.0, k, s.name().c_str(),
                     pynn::to_string(plan.buffers[s.output].shape).c_str());
    }
}

// Position of the first NaN or Inf among n values, or SIZE_MAX when all are finite.
std::size_t first_non_finite(const void* data, DType dtype, std::size_t n) {
    auto scan = [n](const auto* v) {
        for (std::size_t i = 0; i < n; ++i) {
            if (!std::isfinite(v[i])) {
                return i;
            }
        }
        return SIZE_MAX;
    };
    return dtype == DType::Float32 ? scan(static_cast<const float*>(data))
                                   : scan(static_cast<const double*>(data));
}

// detect_anomaly: throws AnomalyError when step k wrote a NaN/Inf, naming the op and where the
// user wrote it, and saying whether an input (a leaf: data, not the op) already held one.
void check_anomaly(const compiler::Plan& plan, std::size_t k, const std::vector<void*>& ptr) {
    const compiler::Step& step = plan.steps[k];
    std::vector<std::size_t> outs{step.output};
    outs.insert(outs.end(), step.extra_outputs.begin(), step.extra_outputs.end());
    for (std::size_t b : outs) {
        const compiler::BufferInfo& info = plan.buffers[b];
        const std::size_t at = first_non_finite(ptr[b], info.dtype, numel(info.shape));
        if (at == SIZE_MAX) {
            continue;
        }
        const bool nan = info.dtype == DType::Float32
                             ? std::isnan(static_cast<const float*>(ptr[b])[at])
                             : std::isnan(static_cast<const double*>(ptr[b])[at]);
        std::string msg = "detect_anomaly: kernel #" + std::to_string(k) + " (" + step.name() +
                          ") produced " + (nan ? "NaN" : "Inf") + " at element " +
                          std::to_string(at) + " of its output " + pynn::to_string(info.shape) +
                          "; op: " + (step.origin.empty() ? step.name() : step.origin);
        for (std::size_t i = 0; i < step.inputs.size(); ++i) {
            // Intermediates were checked when written (and may since be overwritten in place).
            const compiler::BufferInfo& in = plan.buffers[step.inputs[i]];
            if (in.kind != compiler::BufferKind::Intermediate &&
                first_non_finite(ptr[step.inputs[i]], in.dtype, numel(in.shape)) != SIZE_MAX) {
                msg += "; its input " + std::to_string(i) + " " + pynn::to_string(in.shape) +
                       (in.label.empty() ? "" : " '" + in.label + "'") +
                       " already held NaN/Inf (input data, not this op)";
            }
        }
        throw AnomalyError(msg);
    }
}

} // namespace

void ComputeGraph::run() {
    const runtime::ScopedFloatMode float_mode; // denormals flushed (Flags::flush_denormal)
    compiler::CompiledPlan& entry = *m_plan;
    const compiler::Plan& plan = entry.plan;
    // Use the plan's own arena unless another run holds it.
    std::unique_lock<std::mutex> lock(entry.arena_mutex, std::try_to_lock);
    StoragePtr local;
    StoragePtr& arena = lock.owns_lock() ? entry.arena : local;
    if (!arena) {
        arena = std::make_shared<Storage>(DType::Float64, (plan.arena_bytes + 7) / 8);
    }
    auto* arena_base = static_cast<std::byte*>(arena->raw());
    std::vector<void*> ptr(plan.buffers.size(), nullptr);
    for (std::size_t i = 0; i < plan.buffers.size(); ++i) {
        const compiler::BufferInfo& b = plan.buffers[i];
        switch (b.kind) {
        case compiler::BufferKind::Leaf: ptr[i] = m_leaves[b.leaf_index]->data->raw(); break;
        case compiler::BufferKind::Constant: ptr[i] = b.constant->raw(); break;
        case compiler::BufferKind::Intermediate: ptr[i] = arena_base + b.offset; break;
        }
    }
    // Values the run hands back (outputs, gradients) are written straight into storages of
    // their own instead of the arena, which saves copying them out afterwards.
    std::unordered_map<std::size_t, StoragePtr> fresh;
    auto give_own_storage = [&](std::size_t id) {
        const compiler::BufferInfo& b = plan.buffers[id];
        if (b.kind == compiler::BufferKind::Intermediate && !fresh.contains(id)) {
            fresh[id] = std::make_shared<Storage>(b.dtype, numel(b.shape));
            ptr[id] = fresh[id]->raw();
        }
    };
    // Writes into `recycled` (a storage nobody else holds, of the right size) when there is one,
    // instead of allocating (and page-faulting in) a new storage.
    auto reuse_storage = [&](std::size_t id, StoragePtr& recycled) {
        const compiler::BufferInfo& b = plan.buffers[id];
        if (b.kind == compiler::BufferKind::Intermediate && recycled &&
            recycled.use_count() == 1 && !fresh.contains(id) &&
            recycled->numel() == numel(b.shape) && recycled->dtype() == b.dtype) {
            fresh[id] = std::move(recycled);
            ptr[id] = fresh[id]->raw();
        }
    };
    // Values computed straight into their target leaf's storage (Note [Writing into a leaf]),
    // when nobody else holds it (a user's snapshot keeps the old value): nothing to swap after.
    // Not under detect_anomaly, whose report tells a leaf's own bad input from the op's output.
    std::vector<bool> into_leaf(m_assign_targets.size(), false);
    for (std::size_t i = 0; i < m_assign_targets.size() && !Flags::detect_anomaly(); ++i) {
        const std::size_t leaf = i < plan.overwrites.size() ? plan.overwrites[i] : SIZE_MAX;
        const Node* target = m_assign_targets[i].get();
        if (leaf != SIZE_MAX && target != nullptr && target->data.use_count() == 1 &&
            ptr[leaf] == target->data->raw()) {
            ptr[plan.outputs[i]] = ptr[leaf];
            into_leaf[i] = true;
        }
    }
    for (std::size_t i = 0; i < plan.outputs.size(); ++i) {
        const std::size_t id = plan.outputs[i];
        if (i < into_leaf.size() && into_leaf[i]) {
            continue;
        }
        if (i < m_assign_targets.size() && m_assign_targets[i]) {
            reuse_storage(id, m_assign_targets[i]->spare_data);
        } else if (m_outputs[i].node()->data) { // running the same graph again
            StoragePtr previous = std::move(m_outputs[i].node()->data);
            reuse_storage(id, previous);
            if (previous) {
                m_outputs[i].node()->data = std::move(previous);
            }
        }
        give_own_storage(id);
    }
    for (const auto& [leaf_index, buffer] : plan.grads) {
        Node& leaf = *m_leaves[leaf_index];
        if (!leaf.grad) {
            reuse_storage(buffer, leaf.spare_grad);
        }
        give_own_storage(buffer);
    }
    const bool profile = Flags::profile();
    const bool anomaly = Flags::detect_anomaly();
    std::vector<double> seconds(profile ? plan.steps.size() : 0, 0.0);
    std::vector<Operand> operands;
    std::vector<void*> extra;
    for (std::size_t k = 0; k < plan.steps.size(); ++k) {
        const compiler::Step& step = plan.steps[k];
        operands.clear();
        for (std::size_t in : step.inputs) {
            operands.push_back({ptr[in], &plan.buffers[in].shape});
        }
        const compiler::BufferInfo& out = plan.buffers[step.output];
        extra.clear();
        for (std::size_t b : step.extra_outputs) {
            extra.push_back(ptr[b]);
        }
        KernelArgs args{out.dtype, operands, ptr[step.output], out.shape, extra};
        if (profile) {
            const auto start = std::chrono::steady_clock::now();
            step.run(args);
            seconds[k] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                             .count();
        } else {
            step.run(args);
        }
        if (anomaly) {
            check_anomaly(plan, k, ptr);
        }
    }
    if (profile) {
        print_profile(plan, seconds);
    }
    // A storage holding `buffer`'s value that nobody else holds: its own storage the first time,
    // a copy after that (two outputs may be the same buffer).
    auto take = [&](std::size_t buffer) {
        auto it = fresh.find(buffer);
        if (it != fresh.end() && it->second) {
            StoragePtr s = std::move(it->second);
            it->second = nullptr;
            return s;
        }
        const compiler::BufferInfo& b = plan.buffers[buffer];
        auto s = std::make_shared<Storage>(b.dtype, numel(b.shape));
        std::memcpy(s->raw(), ptr[buffer], s->bytes());
        return s;
    };
    // Assignments: copies first (a value that is a leaf, or a buffer two writes share), while
    // every bound storage still holds what the run read; then the swaps.
    std::vector<std::pair<Node*, StoragePtr>> swaps;
    for (std::size_t i = 0; i < m_assign_targets.size(); ++i) {
        if (into_leaf[i]) {
            continue;
        }
        Node& target = *m_assign_targets[i];
        const std::size_t id = plan.outputs[i];
        auto it = fresh.find(id);
        if (it != fresh.end() && it->second) {
            swaps.emplace_back(&target, std::move(it->second));
            it->second = nullptr;
        } else {
            std::memcpy(target.data->raw(), ptr[id], target.data->bytes());
        }
    }
    for (auto& [target, storage] : swaps) {
        StoragePtr previous = std::exchange(target->data, std::move(storage));
        target->spare_data = previous.use_count() == 1 ? std::move(previous) : nullptr;
    }
    for (std::size_t i = m_assign_targets.size(); i < m_outputs.size(); ++i) {
        Node& node = *m_outputs[i].node();
        bool repeated = false; // the same tensor asked for twice: it already has its value
        for (std::size_t j = m_assign_targets.size(); j < i && !repeated; ++j) {
            repeated = m_outputs[j].node().get() == &node;
        }
        if (!node.is_leaf() && !repeated) {
            node.data = take(plan.outputs[i]);
        }
    }
    for (const auto& node : m_effect_nodes) {
        if (node->effects_done) { // another run got there first
            continue;
        }
        for (const auto& [target, value] : node->effects) {
            const Storage& v = *value->data;
            std::memcpy(target->data->raw(), v.raw(), v.bytes());
        }
        node->effects_done = true;
    }
    for (const auto& [leaf_index, buffer] : plan.grads) {
        Node& leaf = *m_leaves[leaf_index];
        if (leaf.grad) { // backward without zero_grad accumulates, as in PyTorch
            accumulate(*leaf.grad, ptr[buffer]);
        } else {
            leaf.grad = take(buffer);
        }
    }
}

PlanCacheStats plan_cache_stats() {
    compiler::CacheStats s = compiler::cache_stats();
    return {s.hits, s.misses, s.entries};
}

void clear_plan_cache() { compiler::clear_cache(); }

} // namespace pynn
