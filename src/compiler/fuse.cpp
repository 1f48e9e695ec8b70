// The fusion pass. Runs of elementwise steps that share an output shape and dtype and are
// neighbours in the schedule become one FusedElementwise kernel: a small per-tile program. For
// each tile of the region (1024 elements, a few KiB per temporary, so the working set stays in
// L1) it applies each op's functor (ops/elementwise_functors.hpp) with xsimd, reading the
// region's inputs and writing only the values used outside the region. A run is contiguous in
// the schedule, so fusing it can never create a cycle.
#include "compiler/fuse.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "kernels/elementwise.hpp"
#include "ops/builder.hpp"
#include "ops/elementwise_functors.hpp"

namespace pynn::compiler {

namespace {

// Elementwise primitives whose kernel is kernels::map over a functor. Listed by type so the
// compiler checks every name.
template <class O>
constexpr bool is_elementwise_v =
    std::is_same_v<O, Add> || std::is_same_v<O, Sub> || std::is_same_v<O, Mul> ||
    std::is_same_v<O, Div> || std::is_same_v<O, Pow> || std::is_same_v<O, Maximum> ||
    std::is_same_v<O, Minimum> || std::is_same_v<O, Neg> || std::is_same_v<O, Exp> ||
    std::is_same_v<O, Log> || std::is_same_v<O, Sqrt> || std::is_same_v<O, Abs> ||
    std::is_same_v<O, Sign> || std::is_same_v<O, Tanh> || std::is_same_v<O, Sigmoid> ||
    std::is_same_v<O, Relu> || std::is_same_v<O, LeakyRelu> || std::is_same_v<O, Compare> ||
    std::is_same_v<O, Where>;

// Data movement a region absorbs as a load: broadcast_to reads its input with broadcast strides,
// reshape reads it flat. Both then cost nothing but the load.
template <class O>
constexpr bool is_absorbed_copy_v = std::is_same_v<O, BroadcastTo> || std::is_same_v<O, Reshape>;

bool is_fusable(const Step& s) {
    if (s.fused) {
        return s.fused->name() == "fused_elementwise";
    }
    return std::visit(
        [](const auto& o) {
            using O = std::decay_t<decltype(o)>;
            return is_elementwise_v<O> || is_absorbed_copy_v<O>;
        },
        s.op);
}

bool reads_flat(const Step& s) { return !s.fused && std::holds_alternative<Reshape>(s.op); }

// One instruction's row function: out[0..n) = f(in_k[...]) with in strides 0 or 1.
template <class T>
using RowFn = std::function<void(T*, const T* const*, const std::ptrdiff_t*, std::size_t)>;

template <class T, std::size_t N, class F>
RowFn<T> row_fn(F f) {
    return [f](T* out, const T* const* in, const std::ptrdiff_t* inc, std::size_t n) {
        std::array<const T*, N> a;
        std::array<std::ptrdiff_t, N> i;
        for (std::size_t k = 0; k < N; ++k) {
            a[k] = in[k];
            i[k] = inc[k];
        }
        kernels::detail::map_row<T, N>(out, a, i, n, f, std::make_index_sequence<N>{});
    };
}

template <class T>
RowFn<T> compare_fn(CompareKind kind) {
    switch (kind) {
    case CompareKind::Eq: return row_fn<T, 2>(functors::EqF{});
    case CompareKind::Ne: return row_fn<T, 2>(functors::NeF{});
    case CompareKind::Lt: return row_fn<T, 2>(functors::LtF{});
    case CompareKind::Le: return row_fn<T, 2>(functors::LeF{});
    case CompareKind::Gt: return row_fn<T, 2>(functors::GtF{});
    case CompareKind::Ge: return row_fn<T, 2>(functors::GeF{});
    }
    return {};
}

template <class T>
RowFn<T> make_row_fn(const Op& op) {
    using namespace functors;
    return std::visit(
        [](const auto& o) -> RowFn<T> {
            using O = std::decay_t<decltype(o)>;
            if constexpr (std::is_same_v<O, Add>) return row_fn<T, 2>(AddF{});
            else if constexpr (std::is_same_v<O, Sub>) return row_fn<T, 2>(SubF{});
            else if constexpr (std::is_same_v<O, Mul>) return row_fn<T, 2>(MulF{});
            else if constexpr (std::is_same_v<O, Div>) return row_fn<T, 2>(DivF{});
            else if constexpr (std::is_same_v<O, Pow>) return row_fn<T, 2>(PowF{});
            else if constexpr (std::is_same_v<O, Maximum>) return row_fn<T, 2>(MaximumF{});
            else if constexpr (std::is_same_v<O, Minimum>) return row_fn<T, 2>(MinimumF{});
            else if constexpr (std::is_same_v<O, Neg>) return row_fn<T, 1>(NegF{});
            else if constexpr (std::is_same_v<O, Exp>) return row_fn<T, 1>(ExpF{});
            else if constexpr (std::is_same_v<O, Log>) return row_fn<T, 1>(LogF{});
            else if constexpr (std::is_same_v<O, Sqrt>) return row_fn<T, 1>(SqrtF{});
            else if constexpr (std::is_same_v<O, Abs>) return row_fn<T, 1>(AbsF{});
            else if constexpr (std::is_same_v<O, Sign>) return row_fn<T, 1>(SignF{});
            else if constexpr (std::is_same_v<O, Tanh>) return row_fn<T, 1>(TanhF{});
            else if constexpr (std::is_same_v<O, Sigmoid>) return row_fn<T, 1>(SigmoidF{});
            else if constexpr (std::is_same_v<O, Relu>) return row_fn<T, 1>(ReluF{});
            else if constexpr (std::is_same_v<O, LeakyRelu>)
                return row_fn<T, 1>(LeakyReluF<T>{static_cast<T>(o.negative_slope)});
            else if constexpr (std::is_same_v<O, Compare>) return compare_fn<T>(o.kind);
            else if constexpr (std::is_same_v<O, Where>) return row_fn<T, 3>(WhereF{});
            else if constexpr (is_absorbed_copy_v<O>) return row_fn<T, 1>(CopyF{});
            else {
                static_assert(!is_elementwise_v<O>, "an elementwise op has no row function");
                PYNN_ASSERT(false, "fusion: ", O::name, " is not elementwise");
                return {};
            }
        },
        op);
}

// Copies elements [start, start + len) of `src` broadcast to `shape` (strides st) into dst.
template <class T>
void gather(const T* src, const kernels::Strides& st, const Shape& shape, std::size_t start,
            std::size_t len, T* dst) {
    const std::size_t rank = shape.size();
    std::vector<std::size_t> coord(rank);
    std::size_t rest = start;
    std::ptrdiff_t offset = 0;
    for (std::size_t d = rank; d-- > 0;) {
        coord[d] = rest % shape[d];
        rest /= shape[d];
        offset += static_cast<std::ptrdiff_t>(coord[d]) * st[d];
    }
    std::size_t k = 0;
    while (k < len) {
        const std::size_t run = std::min(shape[rank - 1] - coord[rank - 1], len - k);
        const std::ptrdiff_t inner = st[rank - 1];
        if (inner == 0) {
            std::fill_n(dst + k, run, src[offset]);
        } else {
            for (std::size_t j = 0; j < run; ++j) {
                dst[k + j] = src[offset + static_cast<std::ptrdiff_t>(j) * inner];
            }
        }
        k += run;
        // Advance the coordinates by `run` along the last axis, carrying into outer axes.
        offset += static_cast<std::ptrdiff_t>(run) * inner;
        coord[rank - 1] += run;
        for (std::size_t d = rank - 1; d > 0 && coord[d] == shape[d]; --d) {
            offset -= static_cast<std::ptrdiff_t>(shape[d]) * st[d];
            coord[d] = 0;
            ++coord[d - 1];
            offset += st[d - 1];
        }
    }
}

// Where an instruction reads from or writes to.
struct Ref {
    enum Kind : std::uint8_t { Input, Temp, Output } kind;
    std::size_t index;
};

template <class T>
class FusedElementwise final : public FusedKernel {
public:
    static constexpr std::size_t kTile = 1024;

    struct Instr {
        RowFn<T> fn;
        std::string op;
        std::vector<Ref> args;
        Ref dst;
    };
    enum class Mode : std::uint8_t { Full, Scalar, Gather };

    // flat[k]: input k is read in memory order (through a reshape), not broadcast.
    FusedElementwise(Shape shape, std::vector<Instr> program, std::size_t num_temps,
                     std::vector<Shape> input_shapes, const std::vector<bool>& flat)
        : m_shape(std::move(shape)), m_program(std::move(program)), m_num_temps(num_temps),
          m_input_shapes(std::move(input_shapes)) {
        for (std::size_t k = 0; k < m_input_shapes.size(); ++k) {
            const Shape& s = m_input_shapes[k];
            if (flat[k] || s == m_shape) {
                m_modes.push_back(Mode::Full);
            } else if (numel(s) == 1) {
                m_modes.push_back(Mode::Scalar);
            } else {
                m_modes.push_back(Mode::Gather);
            }
            m_strides.push_back(m_modes.back() == Mode::Gather
                                    ? kernels::broadcast_strides(s, m_shape)
                                    : kernels::Strides{});
        }
    }

    std::string name() const override { return "fused_elementwise"; }
    std::vector<std::string> ops() const override {
        std::vector<std::string> names;
        for (const Instr& i : m_program) {
            names.push_back(i.op);
        }
        return names;
    }

    void run(const KernelArgs& args) const override {
        const std::size_t n = numel(m_shape);
        std::vector<T*> outs{args.output<T>()};
        for (void* p : args.extra_out) {
            outs.push_back(static_cast<T*>(p));
        }
        std::size_t gathers = 0;
        for (Mode m : m_modes) {
            gathers += m == Mode::Gather ? 1 : 0;
        }
        thread_local std::vector<T> scratch;
        scratch.resize((m_num_temps + gathers) * kTile);
        std::vector<const T*> input_at(m_modes.size());
        std::vector<std::ptrdiff_t> input_inc(m_modes.size());
        std::vector<const T*> src;
        std::vector<std::ptrdiff_t> inc;
        for (std::size_t start = 0; start < n; start += kTile) {
            const std::size_t len = std::min(kTile, n - start);
            std::size_t g = 0;
            for (std::size_t k = 0; k < m_modes.size(); ++k) {
                const T* base = args.input<T>(k);
                switch (m_modes[k]) {
                case Mode::Full: input_at[k] = base + start; input_inc[k] = 1; break;
                case Mode::Scalar: input_at[k] = base; input_inc[k] = 0; break;
                case Mode::Gather: {
                    T* buf = scratch.data() + (m_num_temps + g++) * kTile;
                    gather(base, m_strides[k], m_shape, start, len, buf);
                    input_at[k] = buf;
                    input_inc[k] = 1;
                    break;
                }
                }
            }
            auto where = [&](const Ref& r) -> T* {
                return r.kind == Ref::Temp ? scratch.data() + r.index * kTile
                                           : outs[r.index] + start;
            };
            for (const Instr& instr : m_program) {
                src.clear();
                inc.clear();
                for (const Ref& r : instr.args) {
                    if (r.kind == Ref::Input) {
                        src.push_back(input_at[r.index]);
                        inc.push_back(input_inc[r.index]);
                    } else {
                        src.push_back(where(r));
                        inc.push_back(1);
                    }
                }
                instr.fn(where(instr.dst), src.data(), inc.data(), len);
            }
        }
    }

private:
    Shape m_shape;
    std::vector<Instr> m_program;
    std::size_t m_num_temps;
    std::vector<Shape> m_input_shapes;
    std::vector<Mode> m_modes;
    std::vector<kernels::Strides> m_strides;
};

// Builds the fused step for steps [first, last) of `plan`, all elementwise with one shape.
template <class T>
Step fuse_run(const Plan& plan, std::size_t first, std::size_t last,
              const std::vector<std::size_t>& readers_outside_or_kept) {
    std::unordered_map<std::size_t, Ref> produced; // buffer -> where the region keeps it
    std::vector<std::size_t> inputs;
    std::vector<bool> flat;
    std::map<std::pair<std::size_t, bool>, std::size_t> input_index; // (buffer, flat) -> input
    std::vector<std::size_t> outputs;
    std::size_t temps = 0;
    std::vector<typename FusedElementwise<T>::Instr> program;
    for (std::size_t i = first; i < last; ++i) {
        const Step& s = plan.steps[i];
        typename FusedElementwise<T>::Instr instr;
        instr.fn = make_row_fn<T>(s.op);
        instr.op = std::string(op_name(s.op));
        for (std::size_t b : s.inputs) {
            auto it = produced.find(b);
            if (it != produced.end()) {
                instr.args.push_back(it->second);
                continue;
            }
            auto [slot, inserted] = input_index.try_emplace({b, reads_flat(s)}, inputs.size());
            if (inserted) {
                inputs.push_back(b);
                flat.push_back(reads_flat(s));
            }
            instr.args.push_back({Ref::Input, slot->second});
        }
        const bool escapes = readers_outside_or_kept[s.output] != 0;
        if (escapes) {
            instr.dst = {Ref::Output, outputs.size()};
            outputs.push_back(s.output);
        } else {
            instr.dst = {Ref::Temp, temps++};
        }
        produced[s.output] = instr.dst;
        program.push_back(std::move(instr));
    }
    std::vector<Shape> input_shapes;
    for (std::size_t b : inputs) {
        input_shapes.push_back(plan.buffers[b].shape);
    }
    Step step;
    step.op = plan.steps[last - 1].op;
    step.inputs = inputs;
    step.output = outputs.front();
    step.extra_outputs.assign(outputs.begin() + 1, outputs.end());
    step.fused = std::make_shared<FusedElementwise<T>>(plan.buffers[step.output].shape,
                                                       std::move(program), temps,
                                                       std::move(input_shapes), flat);
    return step;
}

std::string describe(const Plan& plan, const Step& s) {
    return s.name() + " " + pynn::to_string(plan.buffers[s.output].shape);
}

} // namespace

void fuse(Plan& plan) {
    const std::size_t count = plan.steps.size();
    // How each step's output is used: readers by step, and whether the plan keeps it.
    std::vector<std::vector<std::size_t>> readers(plan.buffers.size());
    for (std::size_t i = 0; i < count; ++i) {
        for (std::size_t b : plan.steps[i].inputs) {
            readers[b].push_back(i);
        }
    }
    std::vector<bool> kept(plan.buffers.size(), false);
    for (std::size_t b : plan.outputs) {
        kept[b] = true;
    }
    for (const auto& g : plan.grads) {
        kept[g.second] = true;
    }
    // Split the schedule into runs of fusable neighbours with one output shape and dtype.
    auto joins = [&](const Step& prev, const Step& cur) {
        const BufferInfo& po = plan.buffers[prev.output];
        const BufferInfo& co = plan.buffers[cur.output];
        return is_fusable(prev) && is_fusable(cur) && po.shape == co.shape &&
               po.dtype == co.dtype;
    };
    std::vector<std::pair<std::size_t, std::size_t>> runs;
    std::size_t begin = 0;
    for (std::size_t i = 1; i <= count; ++i) {
        if (i == count || !joins(plan.steps[i - 1], plan.steps[i])) {
            runs.emplace_back(begin, i);
            begin = i;
        }
    }
    // Which buffers a region must write: read by a step outside it, or kept by the plan.
    std::vector<Step> steps;
    for (const auto& [first, last] : runs) {
        if (last - first < 2) {
            steps.push_back(plan.steps[first]);
            continue;
        }
        std::vector<std::size_t> escapes(plan.buffers.size(), 0);
        for (std::size_t i = first; i < last; ++i) {
            const std::size_t b = plan.steps[i].output;
            bool outside = kept[b];
            for (std::size_t r : readers[b]) {
                outside = outside || r < first || r >= last;
            }
            escapes[b] = outside ? 1 : 0;
        }
        // The last step's value always leaves the region (it has a reader or is kept).
        escapes[plan.steps[last - 1].output] = 1;
        if (plan.buffers[plan.steps[first].output].dtype == DType::Float32) {
            steps.push_back(fuse_run<float>(plan, first, last, escapes));
        } else {
            steps.push_back(fuse_run<double>(plan, first, last, escapes));
        }
    }
    // Explain every boundary left between neighbouring kernels.
    std::vector<std::string> notes;
    for (std::size_t i = 1; i < steps.size(); ++i) {
        const Step& prev = steps[i - 1];
        const Step& cur = steps[i];
        const BufferInfo& po = plan.buffers[prev.output];
        const BufferInfo& co = plan.buffers[cur.output];
        std::string reason;
        if (!is_fusable(prev) || !is_fusable(cur)) {
            const Step& other = is_fusable(prev) ? cur : prev;
            reason = other.name() + " is not elementwise" +
                     (std::holds_alternative<ReduceSum>(other.op) ||
                              std::holds_alternative<ReduceMax>(other.op)
                          ? " (a reduction)"
                          : "");
        } else if (po.shape != co.shape) {
            reason = "the shape changes from " + pynn::to_string(po.shape) + " to " +
                     pynn::to_string(co.shape);
        } else {
            reason = "the dtype changes";
        }
        notes.push_back("#" + std::to_string(i - 1) + " " + describe(plan, prev) + " | #" +
                        std::to_string(i) + " " + describe(plan, cur) + ": " + reason);
    }
    plan.steps = std::move(steps);
    plan.fusion_notes = std::move(notes);
}

} // namespace pynn::compiler
