// The compiler's driver: from the requested outputs (and optionally "differentiate outputs[0]")
// to a Plan, through the plan cache. Passes run in order: autodiff, simplify, lowering
// (schedule.cpp), fusion, scheduling for memory, memory planning.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "compiler/plan.hpp"

namespace pynn::compiler {

// Which optional passes run; read from Flags (and the PYNN_* environment switches) per compile,
// and part of the plan-cache key.
struct PassOptions {
    bool simplify = true;
    bool fusion = true;
    bool memory_reuse = true;
    static PassOptions current();
};

struct Request {
    std::vector<NodePtr> outputs;
    bool backward = false; // also compute gradients of outputs[0] for leaves that require grad
    NodePtr seed;          // gradient of outputs[0]; null means ones (outputs[0] must be scalar)
    // Per output (or fewer): the leaf the run stores it into, or null (Plan::overwrites).
    std::vector<NodePtr> assign_targets;
};

// A cached plan plus the arena its intermediates live in, reused from run to run (no allocation
// per training step).
struct CompiledPlan {
    Plan plan;
    StoragePtr arena;
    std::mutex arena_mutex; // a second concurrent run allocates its own arena
};

struct Compiled {
    std::shared_ptr<CompiledPlan> entry;
    std::vector<Node*> leaves; // this DAG's leaves, in the plan's leaf order
    bool cache_hit = false;
    // Deferred writes this run performs: the nodes that carry them, and their values, which
    // the plan computes as outputs after the requested ones.
    std::vector<NodePtr> effect_nodes;
    std::vector<NodePtr> effect_values;
};

Compiled compile(const Request& request);

// Lowers a DAG (forward leaves numbered by `leaf_index`) to a topologically ordered Plan.
Plan lower(const std::vector<Node*>& roots, const std::vector<Node*>& leaves);
// Reorders a Plan's steps (still topologically) to shorten buffer lifetimes; see schedule.cpp.
void schedule_for_memory(Plan& plan);

struct CacheStats {
    std::size_t hits = 0;
    std::size_t misses = 0;
    std::size_t entries = 0;
};
CacheStats cache_stats();
void clear_cache();

} // namespace pynn::compiler
