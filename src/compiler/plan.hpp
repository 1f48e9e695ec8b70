// Plan: what the compiler hands the executor. A list of kernels (steps) in execution order over
// numbered buffers; each buffer is a bound leaf, a constant baked in by the compiler, or an
// intermediate the executor allocates. Later passes (fusion, memory planning) rewrite this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graph/node.hpp"

namespace pynn::compiler {

enum class BufferKind : std::uint8_t { Leaf, Constant, Intermediate };

struct BufferInfo {
    Shape shape;
    DType dtype = DType::Float32;
    BufferKind kind = BufferKind::Intermediate;
    std::size_t leaf_index = 0; // Leaf: position among the DAG's leaves
    StoragePtr constant;        // Constant: its data
    std::string label;          // the user's tensor name, when it has one
    std::size_t offset = 0;     // Intermediate: byte offset in the arena (memory_plan.cpp)
};

// A kernel made by a compiler pass (fusion) rather than by one primitive op.
class FusedKernel {
public:
    virtual ~FusedKernel() = default;
    virtual void run(const KernelArgs& args) const = 0;
    virtual std::string name() const = 0;                // e.g. "fused_elementwise"
    virtual std::vector<std::string> ops() const = 0;    // the primitive ops it runs
    // Whether run_part may compute parts of the output on their own (true for elementwise
    // regions that fold no reduction across elements); a producer fused in front of it then
    // hands it each part of its input while that part is in cache.
    virtual bool runs_in_parts() const { return false; }
    // Whether it has machine code generated for it (compiler/jit.hpp), used while Flags::jit().
    virtual bool compiled() const { return false; }
    // Elements [first, last) of the output, on the calling thread. With `local`, input
    // local->input is read from local->data, which holds just those elements (a producer's
    // per-thread buffer for one part).
    struct PartInput {
        std::size_t input;
        const void* data;
    };
    virtual void run_part(const KernelArgs& args, std::size_t first, std::size_t last,
                          const PartInput* local = nullptr) const;
    // Whether output `slot` (0: the main output, k: extra output k - 1) may be written into the
    // memory of the inputs at `inputs` (positions that all name one buffer): every element of
    // theirs is read before the same element of the output is written, and none after.
    virtual bool may_overwrite(std::size_t /*slot*/,
                               const std::vector<std::size_t>& /*inputs*/) const {
        return false;
    }
    // The same kernel for a plan whose outputs are written over the inputs at `inputs` (tuned
    // for that, e.g. prefetching those rows for writing), or null to keep this one.
    virtual std::shared_ptr<const FusedKernel> overwriting(
        const std::vector<std::size_t>& /*inputs*/) const {
        return nullptr;
    }
};

struct Step {
    Op op;                                 // the primitive, unless `fused` is set
    std::shared_ptr<const FusedKernel> fused;
    std::vector<std::size_t> inputs;       // buffer ids
    std::size_t output = 0;                // buffer id
    std::vector<std::size_t> extra_outputs; // more buffers a fused step writes (KernelArgs::extra_out)
    std::size_t in_place_of = SIZE_MAX;    // an input buffer the output overwrites (memory plan)
    std::string origin; // detect_anomaly only: the op and where the user wrote it

    std::string name() const;
    void run(const KernelArgs& args) const;
};

struct Plan {
    std::vector<BufferInfo> buffers;
    std::vector<Step> steps;
    std::size_t num_leaves = 0;
    std::vector<std::size_t> outputs;                         // requested outputs -> buffer
    std::vector<std::pair<std::size_t, std::size_t>> grads;   // (leaf index, buffer)
    // Per output: the leaf buffer whose storage it may be computed into (the leaf an assign run
    // stores it into, when no step reads that leaf after the output's step), or SIZE_MAX.
    std::vector<std::size_t> overwrites;
    std::size_t arena_bytes = 0; // intermediates' arena, after the memory plan
    std::size_t naive_bytes = 0; // what one buffer per intermediate would need
    std::vector<std::string> fusion_notes; // why neighbouring kernels were not fused

    std::size_t intermediate_bytes() const;
    std::string to_string() const;
    // Graphviz: buffers as ellipses, kernels as boxes; each fused kernel's ops are drawn inside
    // a cluster named after it.
    std::string to_dot() const;
};

} // namespace pynn::compiler
