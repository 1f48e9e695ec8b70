// ComputeGraph: compiles the DAG behind some tensors into a Plan (or takes it from the plan cache)
// and runs it. Tensor::values() and Tensor::backward() use one internally; build one yourself to
// evaluate several tensors in one pass or to look at the schedule.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pynn/tensor.hpp"

namespace pynn {

namespace compiler {
struct CompiledPlan;
struct Request;
} // namespace compiler

class ComputeGraph {
public:
    // Compiles the graph that computes `outputs`.
    explicit ComputeGraph(std::vector<Tensor> outputs);
    // Compiles `loss`'s forward and backward: running it stores loss's value and adds gradients
    // into every leaf that requires grad. `seed` is d(result)/d(loss); undefined means ones
    // (then loss must have one element). `keep` are more tensors whose values the same run
    // computes and keeps (e.g. the predictions, for accuracy), at no extra pass.
    static ComputeGraph backward(const Tensor& loss, const Tensor& seed = Tensor(),
                                 const std::vector<Tensor>& keep = {});

    // Compiles the values of `writes` (leaf target, value) into one plan; running it stores each
    // value into its target as target.assign(value) would, but without a copy: the value is
    // computed into the target's own storage when the plan reads no old element after writing
    // it and nobody else holds that storage, else into a spare storage of the target's, which
    // then becomes the target's data (the previous data is kept as the next run's spare).
    // `keep` are more tensors the same run computes and keeps, as in backward(). Every value is
    // computed from the targets' values before the run. Used by the optimizers.
    static ComputeGraph assign(const std::vector<std::pair<Tensor, Tensor>>& writes,
                               const std::vector<Tensor>& keep = {});
    // Binds the leaves' current data, runs every kernel, and keeps the outputs' values on them.
    void run();

    std::size_t num_kernels() const;
    bool cache_hit() const { return m_cache_hit; } // the plan came from the plan cache
    std::string to_string() const;                // the schedule: kernels and buffers
    std::string to_dot() const;                   // Graphviz, fused kernels as clusters
    void write_dot(const std::string& path) const; // to_dot() into a file (IOError on failure)
    const std::vector<Tensor>& outputs() const { return m_outputs; }

private:
    ComputeGraph() = default;
    // Compiles (or fetches) the plan and binds this DAG's leaves; pending deferred writes
    // (Tensor::defer_assign) join the outputs.
    void compile(const compiler::Request& request);
    std::vector<Tensor> m_outputs;
    std::vector<std::shared_ptr<Node>> m_assign_targets; // per output: leaf it is stored into
    std::vector<std::shared_ptr<Node>> m_effect_nodes; // nodes whose effects this run performs
    std::vector<std::shared_ptr<Node>> m_leaves;
    std::shared_ptr<compiler::CompiledPlan> m_plan;
    bool m_cache_hit = false;
};

struct PlanCacheStats {
    std::size_t hits = 0;   // compile requests served from the cache
    std::size_t misses = 0; // compile requests that built a new plan
    std::size_t entries = 0;
};
PlanCacheStats plan_cache_stats();
void clear_plan_cache();

} // namespace pynn
