// The memory-planning pass (see memory_plan.hpp): liveness over the step order, in-place
// elementwise steps, and greedy-by-size offsets in one 64-byte aligned arena.
#include "compiler/memory_plan.hpp"

#include <algorithm>
#include <numeric>
#include <type_traits>
#include <variant>

#include "ops/builder.hpp"

namespace pynn::compiler {

// Note [Memory plan]
// What lives in the arena: intermediates that some step writes, except the plan's outputs and
// gradients. ComputeGraph::run() writes those straight into storages of their own, which it hands
// back, so they take no arena bytes (offset 0, unused), with or without reuse, and naive_bytes
// does not count them either. Leaves and constants have their own storage too.
//
// Liveness: an intermediate is live from the step that writes it to the last step that reads it
// (both included: during a step its inputs and its output all exist).
//
// In place: an elementwise primitive whose input dies at this step (read by no later step, in the
// arena) and has the output's shape and dtype writes over that input, unless its own output is
// an output or gradient (not in the arena). This is safe
// because kernels::map reads every input of element i before it stores element i (a SIMD batch is
// loaded whole before the store), an input of the output's shape walks the same offsets as the
// output, and a broadcast input is another, live buffer that does not overlap it. The output then
// continues the input's allocation: the two buffers are one allocation whose lifetime is the union.
// A fused step never runs in place: FusedKernel cannot say whether its tiles tolerate aliasing.
// Its extra outputs (Step::extra_outputs) are born at that step like its main output.
//
// Offsets: TFLite's greedy-by-size. Allocations are placed largest first (ties: earliest first);
// each goes into the smallest gap between already placed allocations whose lifetime overlaps its
// own that fits it, else after the last of them. Sizes are rounded up to 64 bytes and the arena
// base is 64-byte aligned, so every offset is.
//
// Without reuse (PYNN_MEMPLAN=0) every intermediate gets its own region, in buffer order.

// Note [Writing into a leaf]
// An assign run (ComputeGraph::assign, the optimizers' update) stores each value into a target
// leaf. Computed into a spare storage and swapped in, Adam's update of a 784x256 weight writes
// three fresh 800 KB arrays (value, m, v) beside the three it reads: every store first fetches a
// line no one needs (from L3 or memory), and the step's footprint grows by 2.4 MB. Computed in
// place, the same update took 97-100 us against 325-343 us ping-ponging (a hand-written AVX-512
// loop, alternating with the layer's forward GEMM and weight gradient, /tmp harness).
// The output may take the leaf's memory when the step writing it is the last step that reads the
// leaf, and that step reads each element of the leaf before it writes the same element of the
// output and never after: an elementwise primitive reading the leaf at the output's shape (as
// for in-place steps above), or a fused kernel that says so (FusedKernel::may_overwrite). The
// executor still checks at run time that nobody else holds the leaf's storage.

namespace {

constexpr std::size_t kAlign = 64;
constexpr std::size_t kNone = SIZE_MAX;

std::size_t aligned_bytes(const BufferInfo& b) {
    return (numel(b.shape) * dtype_size(b.dtype) + kAlign - 1) / kAlign * kAlign;
}

// Every primitive is in exactly one of these lists (checked below), so a new op must be sorted
// into one before it compiles.
template <class... Ts>
struct TypeList {};
// Kernels that go through kernels::map: element i of every input is read before element i of the
// output is written.
using InPlaceOps = TypeList<Add, Sub, Mul, Div, Pow, Maximum, Minimum, Neg, Exp, Log, Sqrt, Abs,
                            Sign, Tanh, Sigmoid, Relu, LeakyRelu, Compare, Where>;
// Kernels that read other elements than the one they write (GEMM, reductions, movement,
// convolution, pooling), or need not to (leaf, detach's memcpy with no overlap allowed).
using OtherOps = TypeList<Leaf, Detach, ReduceSum, ReduceMax, Argmax, Matmul, Reshape, Permute,
                          BroadcastTo, Slice, SliceScatter, Concat, Conv2d, Conv2dGradInput,
                          Conv2dGradWeight, MaxPool2d, MaxPool2dGrad, AvgPool2d, AvgPool2dGrad>;

template <class T, class... Ts>
constexpr bool listed(TypeList<Ts...> /*list*/) {
    return (std::is_same_v<T, Ts> || ...);
}
template <class... Ts>
constexpr bool each_op_listed_once(std::variant<Ts...>* /*op*/) {
    return ((listed<Ts>(InPlaceOps{}) != listed<Ts>(OtherOps{})) && ...);
}
static_assert(each_op_listed_once(static_cast<Op*>(nullptr)),
              "memory_plan.cpp: put the new op into InPlaceOps or OtherOps");

bool may_run_in_place(const Step& step) {
    if (step.fused) { // FusedKernel has no way to say its kernel tolerates aliasing
        return false;
    }
    return std::visit([]<class T>(const T& /*op*/) { return listed<T>(InPlaceOps{}); }, step.op);
}

// Calls f on every buffer a step writes: its output, then a fused step's extra outputs.
template <class F>
void for_each_output(const Step& step, F&& f) {
    f(step.output);
    for (std::size_t id : step.extra_outputs) {
        f(id);
    }
}

// Inclusive step range a buffer is live in; first == kNone: no step touches it.
struct Lifetime {
    std::size_t first = kNone;
    std::size_t last = 0;
};

std::vector<Lifetime> lifetimes(const Plan& plan) {
    std::vector<Lifetime> life(plan.buffers.size());
    for (std::size_t k = 0; k < plan.steps.size(); ++k) {
        const Step& step = plan.steps[k];
        for (std::size_t in : step.inputs) {
            PYNN_ASSERT(plan.buffers[in].kind != BufferKind::Intermediate ||
                            life[in].first != kNone,
                        "memory plan: step #", k, " reads b", in, " before a step writes it");
            life[in].last = k;
        }
        for_each_output(step, [&](std::size_t out) {
            PYNN_ASSERT(life[out].first == kNone, "memory plan: step #", k, " writes b", out,
                        ", which an earlier step wrote");
            life[out] = {k, k};
        });
    }
    return life;
}

// One region of the arena: a buffer, or a chain of buffers each written in place of the previous.
struct Allocation {
    std::size_t bytes = 0;
    Lifetime life;
    std::size_t offset = 0;
};

// Greedy by size (see the Note); returns the peak.
std::size_t assign_offsets(std::vector<Allocation>& allocs) {
    std::vector<std::size_t> order(allocs.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        if (allocs[a].bytes != allocs[b].bytes) {
            return allocs[a].bytes > allocs[b].bytes;
        }
        return allocs[a].life.first < allocs[b].life.first;
    });
    std::vector<std::size_t> placed; // by offset
    std::size_t peak = 0;
    for (std::size_t a : order) {
        Allocation& cur = allocs[a];
        if (cur.bytes == 0) {
            continue;
        }
        std::size_t best = kNone;
        std::size_t best_gap = kNone;
        std::size_t end = 0; // end of the placed, overlapping allocations seen so far
        for (std::size_t p : placed) {
            const Allocation& other = allocs[p];
            if (other.life.last < cur.life.first || cur.life.last < other.life.first) {
                continue;
            }
            if (other.offset >= end + cur.bytes && other.offset - end < best_gap) {
                best = end;
                best_gap = other.offset - end;
            }
            end = std::max(end, other.offset + other.bytes);
        }
        cur.offset = best != kNone ? best : end;
        peak = std::max(peak, cur.offset + cur.bytes);
        placed.insert(std::upper_bound(
                          placed.begin(), placed.end(), cur.offset,
                          [&](std::size_t off, std::size_t p) { return off < allocs[p].offset; }),
                      a);
    }
    return peak;
}

} // namespace

void plan_memory(Plan& plan, bool reuse) {
    const std::size_t n = plan.buffers.size();
    const std::vector<Lifetime> life = lifetimes(plan);
    std::vector<bool> in_arena(n, false);
    for (std::size_t id = 0; id < n; ++id) {
        in_arena[id] = plan.buffers[id].kind == BufferKind::Intermediate && life[id].first != kNone;
    }
    for (std::size_t id : plan.outputs) {
        in_arena[id] = false;
    }
    for (const auto& [leaf, id] : plan.grads) {
        in_arena[id] = false;
    }

    plan.naive_bytes = 0;
    for (std::size_t id = 0; id < n; ++id) {
        plan.buffers[id].offset = 0;
        if (in_arena[id]) {
            plan.naive_bytes += aligned_bytes(plan.buffers[id]);
        }
    }
    for (Step& step : plan.steps) {
        step.in_place_of = kNone;
    }

    if (!reuse) {
        std::size_t offset = 0;
        for (std::size_t id = 0; id < n; ++id) {
            if (in_arena[id]) {
                plan.buffers[id].offset = offset;
                offset += aligned_bytes(plan.buffers[id]);
            }
        }
        plan.arena_bytes = offset;
        return;
    }

    // Allocations in step order; an in-place output joins its input's allocation.
    std::vector<Allocation> allocs;
    std::vector<std::size_t> alloc_of(n, kNone);
    for (std::size_t k = 0; k < plan.steps.size(); ++k) {
        Step& step = plan.steps[k];
        const BufferInfo& out = plan.buffers[step.output];
        if (in_arena[step.output] && may_run_in_place(step)) {
            for (std::size_t in : step.inputs) {
                const BufferInfo& b = plan.buffers[in];
                if (in_arena[in] && life[in].last == k && b.shape == out.shape &&
                    b.dtype == out.dtype) {
                    step.in_place_of = in;
                    break;
                }
            }
        }
        for_each_output(step, [&](std::size_t id) {
            if (!in_arena[id]) {
                return;
            }
            if (id == step.output && step.in_place_of != kNone) {
                const std::size_t a = alloc_of[step.in_place_of];
                alloc_of[id] = a;
                allocs[a].life.last = life[id].last;
            } else {
                alloc_of[id] = allocs.size();
                allocs.push_back({aligned_bytes(plan.buffers[id]), life[id], 0});
            }
        });
    }
    plan.arena_bytes = assign_offsets(allocs);
    for (std::size_t id = 0; id < n; ++id) {
        if (alloc_of[id] != kNone) {
            plan.buffers[id].offset = allocs[alloc_of[id]].offset;
        }
    }
}

void plan_overwrites(Plan& plan, const std::vector<std::size_t>& target_leaf) {
    plan.overwrites.assign(plan.outputs.size(), kNone);
    std::vector<std::vector<std::size_t>> overwritten(plan.steps.size()); // input positions
    for (std::size_t i = 0; i < target_leaf.size() && i < plan.outputs.size(); ++i) {
        const std::size_t out = plan.outputs[i];
        const BufferInfo& o = plan.buffers[out];
        if (target_leaf[i] == kNone || o.kind != BufferKind::Intermediate ||
            std::count(plan.outputs.begin(), plan.outputs.end(), out) != 1) {
            continue;
        }
        std::size_t leaf = kNone;
        for (std::size_t id = 0; id < plan.buffers.size(); ++id) {
            const BufferInfo& b = plan.buffers[id];
            if (b.kind == BufferKind::Leaf && b.leaf_index == target_leaf[i]) {
                leaf = id;
            }
        }
        if (leaf == kNone || plan.buffers[leaf].shape != o.shape ||
            plan.buffers[leaf].dtype != o.dtype) {
            continue;
        }
        // The step writing the output, and which of its outputs it is.
        std::size_t writer = kNone;
        std::size_t slot = 0;
        for (std::size_t k = 0; k < plan.steps.size() && writer == kNone; ++k) {
            const Step& step = plan.steps[k];
            std::size_t s = 0;
            for_each_output(step, [&](std::size_t id) {
                if (id == out) {
                    writer = k;
                    slot = s;
                }
                ++s;
            });
        }
        if (writer == kNone) {
            continue;
        }
        bool read_later = false;
        for (std::size_t k = writer + 1; k < plan.steps.size(); ++k) {
            const std::vector<std::size_t>& in = plan.steps[k].inputs;
            read_later = read_later || std::find(in.begin(), in.end(), leaf) != in.end();
        }
        const Step& step = plan.steps[writer];
        std::vector<std::size_t> positions;
        for (std::size_t k = 0; k < step.inputs.size(); ++k) {
            if (step.inputs[k] == leaf) {
                positions.push_back(k);
            }
        }
        const bool safe = positions.empty() // the leaf's last reader ran before
                          || (step.fused ? step.fused->may_overwrite(slot, positions)
                                         : slot == 0 && may_run_in_place(step));
        if (!read_later && safe) {
            plan.overwrites[i] = leaf;
            overwritten[writer].insert(overwritten[writer].end(), positions.begin(),
                                       positions.end());
        }
    }
    // Fused kernels that now write over inputs may tune their code for it.
    for (std::size_t k = 0; k < plan.steps.size(); ++k) {
        Step& step = plan.steps[k];
        if (step.fused && !overwritten[k].empty()) {
            if (auto tuned = step.fused->overwriting(overwritten[k])) {
                step.fused = std::move(tuned);
            }
        }
    }
}

} // namespace pynn::compiler
