// The fusion pass. Runs of elementwise steps that share an output shape and dtype and are
// neighbours in the schedule become one FusedElementwise kernel: a small per-tile program. For
// each tile of the region (1024 elements, a few KiB per temporary, so the working set stays in
// L1) it applies each op's functor (ops/elementwise_functors.hpp) with xsimd, reading the
// region's inputs and writing only the values used outside the region. A run is contiguous in
// the schedule, so fusing it can never create a cycle.
#include "compiler/fuse.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "compiler/jit.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/gemm.hpp"
#include "ops/builder.hpp"
#include "ops/elementwise_functors.hpp"
#include "pynn/flags.hpp"
#include "runtime/parallel.hpp"

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

// How a region runs one op: its row function for the interpreter, and its code template in the
// region compiler (compiler/jit.hpp; Unsupported: regions with it stay interpreted).
template <class T>
struct RowOp {
    RowFn<T> fn;
    jit::OpCode code = jit::OpCode::Unsupported;
    float param = 0.0F; // LeakyRelu's slope
};

template <class T>
RowOp<T> compare_op(CompareKind kind) {
    using jit::OpCode;
    switch (kind) {
    case CompareKind::Eq: return {row_fn<T, 2>(functors::EqF{}), OpCode::Eq};
    case CompareKind::Ne: return {row_fn<T, 2>(functors::NeF{}), OpCode::Ne};
    case CompareKind::Lt: return {row_fn<T, 2>(functors::LtF{}), OpCode::Lt};
    case CompareKind::Le: return {row_fn<T, 2>(functors::LeF{}), OpCode::Le};
    case CompareKind::Gt: return {row_fn<T, 2>(functors::GtF{}), OpCode::Gt};
    case CompareKind::Ge: return {row_fn<T, 2>(functors::GeF{}), OpCode::Ge};
    }
    return {};
}

template <class T>
RowOp<T> make_row_op(const Op& op) {
    using namespace functors;
    using jit::OpCode;
    return std::visit(
        [](const auto& o) -> RowOp<T> {
            using O = std::decay_t<decltype(o)>;
            if constexpr (std::is_same_v<O, Add>)
                return {row_fn<T, 2>(AddF{}), OpCode::Add};
            else if constexpr (std::is_same_v<O, Sub>)
                return {row_fn<T, 2>(SubF{}), OpCode::Sub};
            else if constexpr (std::is_same_v<O, Mul>)
                return {row_fn<T, 2>(MulF{}), OpCode::Mul};
            else if constexpr (std::is_same_v<O, Div>)
                return {row_fn<T, 2>(DivF{}), OpCode::Div};
            else if constexpr (std::is_same_v<O, Pow>)
                return {row_fn<T, 2>(PowF{})};
            else if constexpr (std::is_same_v<O, Maximum>)
                return {row_fn<T, 2>(MaximumF{}), OpCode::Maximum};
            else if constexpr (std::is_same_v<O, Minimum>)
                return {row_fn<T, 2>(MinimumF{}), OpCode::Minimum};
            else if constexpr (std::is_same_v<O, Neg>)
                return {row_fn<T, 1>(NegF{}), OpCode::Neg};
            else if constexpr (std::is_same_v<O, Exp>)
                return {row_fn<T, 1>(ExpF{})};
            else if constexpr (std::is_same_v<O, Log>)
                return {row_fn<T, 1>(LogF{})};
            else if constexpr (std::is_same_v<O, Sqrt>)
                return {row_fn<T, 1>(SqrtF{}), OpCode::Sqrt};
            else if constexpr (std::is_same_v<O, Abs>)
                return {row_fn<T, 1>(AbsF{}), OpCode::Abs};
            else if constexpr (std::is_same_v<O, Sign>)
                return {row_fn<T, 1>(SignF{}), OpCode::Sign};
            else if constexpr (std::is_same_v<O, Tanh>)
                return {row_fn<T, 1>(TanhF{})};
            else if constexpr (std::is_same_v<O, Sigmoid>)
                return {row_fn<T, 1>(SigmoidF{})};
            else if constexpr (std::is_same_v<O, Relu>)
                return {row_fn<T, 1>(ReluF{}), OpCode::Relu};
            else if constexpr (std::is_same_v<O, LeakyRelu>)
                return {row_fn<T, 1>(LeakyReluF<T>{static_cast<T>(o.negative_slope)}),
                        OpCode::LeakyRelu, static_cast<float>(o.negative_slope)};
            else if constexpr (std::is_same_v<O, Compare>)
                return compare_op<T>(o.kind);
            else if constexpr (std::is_same_v<O, Where>)
                return {row_fn<T, 3>(WhereF{}), OpCode::Where};
            else if constexpr (is_absorbed_copy_v<O>)
                return {row_fn<T, 1>(CopyF{}), OpCode::Copy};
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

// Where an instruction reads from or writes to (the region compiler's type: the same program).
using Ref = jit::Value;

// How a region reads an input buffer: as `shape`, broadcast to the region's shape. The shape is
// the buffer's own, or a view's (an absorbed reshape/broadcast_to), or the region's shape for a
// flat read through an in-region reshape.
struct ReadSpec {
    std::size_t buffer;
    Shape shape;
    bool broadcast = false; // the view came from broadcast_to (no flat reads through it)
    bool operator<(const ReadSpec& o) const {
        return std::tie(buffer, shape) < std::tie(o.buffer, o.shape);
    }
};

// A reduction fused onto the end of a region: folds a region value over leading (prefix) or
// trailing (suffix) axes into an output.
struct Epilogue {
    Ref src;
    std::size_t out_index; // into the kernel's outputs
    bool is_max;
    bool suffix;       // reduce trailing axes: element i goes to i / group
    std::size_t group; // suffix: reduced size; prefix: kept size (element i goes to i % group)
    std::size_t out_numel;
    std::string name;
};

template <class T>
class FusedElementwise final : public FusedKernel {
public:
    static constexpr std::size_t kTile = 1024;
    // At least this many tiles per thread (16K elements): below that, handing work to a
    // spinning worker costs more than the pass over memory it saves. 64 tiles before the pool's
    // workers spun long enough to be awake between kernels; with them awake, 16 made the MLP's
    // 2-thread step 5% faster (Adam's update of the 256x128 weight now splits) and left the
    // CNN's unchanged.
    static constexpr std::size_t kParallelTiles = 16;

    struct Instr {
        RowFn<T> fn;
        std::string op;
        std::vector<Ref> args;
        Ref dst;
        std::pair<jit::OpCode, float> code{jit::OpCode::Unsupported, 0.0F};
    };
    enum class Mode : std::uint8_t { Full, Scalar, Gather };

    FusedElementwise(Shape shape, std::vector<Instr> program, std::size_t num_temps,
                     std::vector<Shape> read_shapes, std::vector<Epilogue> epilogues)
        : m_shape(std::move(shape)), m_program(std::move(program)), m_num_temps(num_temps),
          m_epilogues(std::move(epilogues)) {
        for (const Instr& instr : m_program) {
            if (instr.dst.kind == Ref::Output &&
                std::find(m_written.begin(), m_written.end(), instr.dst.index) == m_written.end()) {
                m_written.push_back(instr.dst.index);
            }
        }
        for (const Shape& s : read_shapes) {
            if (s == m_shape || numel(s) == numel(m_shape)) {
                m_modes.push_back(Mode::Full); // same elements in the same order
            } else if (numel(s) == 1) {
                m_modes.push_back(Mode::Scalar);
            } else {
                m_modes.push_back(Mode::Gather);
            }
            GatherView view;
            if (m_modes.back() == Mode::Gather) {
                view = collapse(m_shape, kernels::broadcast_strides(s, m_shape));
            }
            m_gathers.push_back(std::move(view));
        }
        if constexpr (std::is_same_v<T, float>) {
            compile_region();
        }
    }

    std::string name() const override { return "fused_elementwise"; }
    std::vector<std::string> ops() const override {
        std::vector<std::string> names;
        for (const Instr& i : m_program) {
            names.push_back(i.op);
        }
        for (const Epilogue& e : m_epilogues) {
            names.push_back(e.name);
        }
        return names;
    }

    void run(const KernelArgs& args) const override {
        const std::size_t n = numel(m_shape);
        const std::vector<T*> outs = outputs(args);
        for (const Epilogue& e : m_epilogues) {
            std::fill_n(outs[e.out_index], e.out_numel,
                        e.is_max ? -std::numeric_limits<T>::infinity() : T(0));
        }
        // Large regions without reductions are split over the threads in whole tiles (a
        // reduction epilogue folds tiles in order into one output, so those stay serial).
        const std::size_t tiles = (n + kTile - 1) / kTile;
        if (m_epilogues.empty()) {
            runtime::parallel_ranges(tiles, kParallelTiles, [&](std::size_t a, std::size_t b) {
                run_tiles(args, outs, a * kTile, std::min(n, b * kTile));
            });
        } else {
            run_tiles(args, outs, 0, n);
        }
    }

    // Runs elements [first, last) only, on this thread: a producer fused in front of the
    // region (GEMM rows, one image of a convolution) hands it each part while in cache.
    bool runs_in_parts() const override { return m_epilogues.empty(); }
    bool compiled() const override { return m_jit != nullptr; }
    void run_part(const KernelArgs& args, std::size_t first, std::size_t last,
                  const PartInput* local) const override {
        PYNN_ASSERT(runs_in_parts(), "fused_elementwise: a region with reductions runs whole");
        PYNN_ASSERT(local == nullptr || m_modes[local->input] == Mode::Full,
                    "fused_elementwise: a part's own input must be read element by element");
        run_tiles(args, outputs(args), first, last, local);
    }

    // Interpreted, an instruction reads the inputs it names from memory and stores an output
    // as it computes it; compiled, each input is loaded at its first use and each output stored
    // at its instruction. Both read element i of every input before storing element i of an
    // output, so an input read element by element may share memory with an output if no
    // instruction after the one writing that output, and no reduction, reads it.
    bool may_overwrite(std::size_t slot, const std::vector<std::size_t>& inputs) const override {
        const auto writes = [&](const Instr& in) {
            return in.dst.kind == Ref::Output && in.dst.index == slot;
        };
        const auto first = std::find_if(m_program.begin(), m_program.end(), writes);
        if (first == m_program.end()) {
            return false; // a reduction's output, or not written by the program
        }
        for (std::size_t k : inputs) {
            const auto reads = [&](const Ref& r) { return r.kind == Ref::Input && r.index == k; };
            if (m_modes.at(k) != Mode::Full) {
                return false;
            }
            for (auto it = first + 1; it != m_program.end(); ++it) {
                if (std::any_of(it->args.begin(), it->args.end(), reads)) {
                    return false;
                }
            }
            for (const Epilogue& e : m_epilogues) {
                if (reads(e.src)) {
                    return false;
                }
            }
        }
        return true;
    }

    std::shared_ptr<const FusedKernel> overwriting(
        const std::vector<std::size_t>& inputs) const override {
        if (m_jit == nullptr) {
            return nullptr; // the interpreter prefetches nothing it would write
        }
        auto kernel = std::make_shared<FusedElementwise>(*this);
        kernel->m_written_inputs.assign(m_modes.size(), false);
        for (std::size_t k : inputs) {
            kernel->m_written_inputs.at(k) = true;
        }
        kernel->compile_region(m_jit->isa()); // as this region's code, whatever isa() is now
        return kernel;
    }

private:
    static std::vector<T*> outputs(const KernelArgs& args) {
        std::vector<T*> outs{args.output<T>()};
        for (void* p : args.extra_out) {
            outs.push_back(static_cast<T*>(p));
        }
        return outs;
    }

    // Outputs of at least this size are written with streaming (non-temporal) stores: they
    // cannot stay in cache anyway, and a normal store first reads each line it writes (a third
    // more memory traffic for a one-input chain). Smaller outputs, which the next kernel reads
    // from cache, are stored normally. memcpy makes the same choice for large copies.
    static constexpr std::size_t kStreamBytes = std::size_t{16} << 20;

    bool streams(const std::vector<T*>& outs) const {
        if (numel(m_shape) * sizeof(T) < kStreamBytes || m_written.empty()) {
            return false;
        }
        for (std::size_t i : m_written) { // whole tiles start on cache lines
            if (reinterpret_cast<std::uintptr_t>(outs[i]) % 64 != 0) {
                return false;
            }
        }
        return true;
    }

    void prefetch_tile(const KernelArgs& args, std::size_t start, std::size_t last) const {
        constexpr std::size_t kLine = 64 / sizeof(T);
        for (std::size_t k = 0; k < m_modes.size() && start < last; ++k) {
            if (m_modes[k] == Mode::Full) {
                const T* base = args.input<T>(k) + start;
                for (std::size_t i = 0; i < std::min(kTile, last - start); i += kLine) {
                    __builtin_prefetch(base + i, 0, 0);
                }
            }
        }
    }

    void run_tiles(const KernelArgs& args, const std::vector<T*>& outs, std::size_t first,
                   std::size_t last, const PartInput* local = nullptr) const {
        std::size_t gathers = 0;
        for (Mode m : m_modes) {
            gathers += m == Mode::Gather ? 1 : 0;
        }
        // Streaming: the program writes its outputs into tile rows after the temporaries and
        // gathers, copied out with streaming stores once the tile is done.
        const bool stream = streams(outs);
        const std::size_t stream_rows = m_num_temps + gathers;
        thread_local std::vector<T, xsimd::aligned_allocator<T, 64>> scratch;
        scratch.resize((stream_rows + (stream ? outs.size() : 0)) * kTile);
        std::vector<const T*> input_at(m_modes.size());
        std::vector<std::ptrdiff_t> input_inc(m_modes.size());
        std::array<const T*, 3> src{};
        std::array<std::ptrdiff_t, 3> inc{};
        // The region's machine code, when it has some and it is switched on.
        const jit::Kernel* jit = std::is_same_v<T, float> && Flags::jit() ? m_jit.get() : nullptr;
        std::vector<T*> jit_out(jit != nullptr ? m_jit_outputs + m_jit_stores.size() : 0);
        if constexpr (std::is_same_v<T, float>) {
            // Nothing to gather, fold or stream per tile: the code runs over the whole range
            // in one call (its values live in registers, so tiles buy nothing).
            if (jit != nullptr && gathers == 0 && !stream && m_epilogues.empty()) {
                for (std::size_t k = 0; k < m_modes.size(); ++k) {
                    const T* base = args.input<T>(k);
                    input_at[k] = m_modes[k] == Mode::Scalar ? base
                                  : local != nullptr && local->input == k
                                      ? static_cast<const T*>(local->data)
                                      : base + first;
                }
                for (std::size_t o = 0; o < m_jit_outputs; ++o) {
                    jit_out[o] = written(o) ? outs[o] + first : nullptr;
                }
                jit->run(input_at.data(), jit_out.data(), last - first);
                return;
            }
        }
        for (std::size_t start = first; start < last; start += kTile) {
            const std::size_t len = std::min(kTile, last - start);
            if (stream) { // memory-bound: keep loads in flight while the tile is computed
                prefetch_tile(args, start + 2 * kTile, last);
            }
            std::size_t g = 0;
            for (std::size_t k = 0; k < m_modes.size(); ++k) {
                const T* base = args.input<T>(k);
                switch (m_modes[k]) {
                case Mode::Full:
                    input_at[k] = local != nullptr && local->input == k
                                      ? static_cast<const T*>(local->data) + (start - first)
                                      : base + start;
                    input_inc[k] = 1;
                    break;
                case Mode::Scalar:
                    input_at[k] = base;
                    input_inc[k] = 0;
                    break;
                case Mode::Gather: {
                    T* buf = scratch.data() + (m_num_temps + g++) * kTile;
                    gather(base, m_gathers[k].strides, m_gathers[k].shape, start, len, buf);
                    input_at[k] = buf;
                    input_inc[k] = 1;
                    break;
                }
                }
            }
            auto where = [&](const Ref& r) -> T* {
                if (r.kind == Ref::Temp) {
                    return scratch.data() + r.index * kTile;
                }
                return stream ? scratch.data() + (stream_rows + r.index) * kTile
                              : outs[r.index] + start;
            };
            if constexpr (std::is_same_v<T, float>) {
                if (jit != nullptr) {
                    for (std::size_t o = 0; o < m_jit_outputs; ++o) {
                        jit_out[o] = written(o) ? where({Ref::Output, o}) : nullptr;
                    }
                    for (std::size_t e = 0; e < m_jit_stores.size(); ++e) {
                        jit_out[m_jit_outputs + e] = where(m_jit_stores[e]);
                    }
                    jit->run(input_at.data(), jit_out.data(), len);
                }
            }
            for (std::size_t i = 0; jit == nullptr && i < m_program.size(); ++i) {
                const Instr& instr = m_program[i];
                for (std::size_t a = 0; a < instr.args.size(); ++a) { // at most 3 (where)
                    const Ref& r = instr.args[a];
                    src[a] = r.kind == Ref::Input ? input_at[r.index] : where(r);
                    inc[a] = r.kind == Ref::Input ? input_inc[r.index] : 1;
                }
                instr.fn(where(instr.dst), src.data(), inc.data(), len);
            }
            for (const Epilogue& e : m_epilogues) {
                const T* v = e.src.kind == Ref::Input ? input_at[e.src.index] : where(e.src);
                fold(e, v, start, len, outs[e.out_index]);
            }
            for (std::size_t i = 0; stream && i < m_written.size(); ++i) {
                const std::size_t out = m_written[i];
                kernels::stream_copy(outs[out] + start,
                                     scratch.data() + (stream_rows + out) * kTile, len);
            }
        }
        if (stream) {
            kernels::stream_fence();
        }
    }

    bool written(std::size_t output) const {
        return std::find(m_written.begin(), m_written.end(), output) != m_written.end();
    }

    // The program as machine code (float32 only; see compiler/jit.hpp). Reductions fused after
    // the program read their source from memory, so a temporary one reads is stored too.
    void compile_region(jit::Isa isa = jit::isa()) {
        m_jit_stores.clear(); // a copy (overwriting()) compiles again
        jit::Program p;
        for (Mode m : m_modes) {
            p.scalar_input.push_back(m == Mode::Scalar);
        }
        p.written_input = m_written_inputs;
        for (const Instr& instr : m_program) {
            p.instrs.push_back({instr.code.first, instr.code.second, instr.args, instr.dst});
            if (instr.dst.kind == Ref::Output) {
                p.num_outputs = std::max(p.num_outputs, instr.dst.index + 1);
            }
        }
        for (const Epilogue& e : m_epilogues) {
            p.num_outputs = std::max(p.num_outputs, e.out_index + 1);
            if (e.src.kind == Ref::Temp) {
                m_jit_stores.push_back(e.src);
                p.stores.push_back(e.src);
            }
        }
        m_jit_outputs = p.num_outputs;
        m_jit = jit::compile(p, isa);
    }

    static void fold(const Epilogue& e, const T* v, std::size_t start, std::size_t len, T* out) {
        if (e.is_max) {
            fold_with(e, v, start, len, out, [](auto a, auto b) { return functors::max(a, b); });
        } else {
            fold_with(e, v, start, len, out, [](auto a, auto b) { return a + b; });
        }
    }

    // Suffix: each run of `group` consecutive values collapses into one output (a SIMD
    // horizontal fold); prefix: value i folds into output i % group (a SIMD vertical fold).
    template <class Op>
    static void fold_with(const Epilogue& e, const T* v, std::size_t start, std::size_t len, T* out,
                          Op op) {
        using B = xsimd::batch<T>;
        constexpr std::size_t W = B::size;
        std::size_t i = 0;
        while (i < len) {
            if (e.suffix) {
                const std::size_t at = (start + i) / e.group;
                const std::size_t run = std::min(len - i, (at + 1) * e.group - (start + i));
                T acc = out[at];
                std::size_t j = 0;
                if (run >= 2 * W) {
                    B vacc = B::load_unaligned(v + i);
                    for (j = W; j + W <= run; j += W) {
                        vacc = op(vacc, B::load_unaligned(v + i + j));
                    }
                    alignas(64) T lanes[W];
                    vacc.store_aligned(lanes);
                    for (std::size_t l = 0; l < W; ++l) {
                        acc = op(acc, lanes[l]);
                    }
                }
                for (; j < run; ++j) {
                    acc = op(acc, v[i + j]);
                }
                out[at] = acc;
                i += run;
            } else {
                const std::size_t at = (start + i) % e.group;
                const std::size_t run = std::min(len - i, e.group - at);
                T* o = out + at;
                std::size_t j = 0;
                for (; j + W <= run; j += W) {
                    op(B::load_unaligned(o + j), B::load_unaligned(v + i + j))
                        .store_unaligned(o + j);
                }
                for (; j < run; ++j) {
                    o[j] = op(o[j], v[i + j]);
                }
                i += run;
            }
        }
    }

    Shape m_shape;
    std::vector<Instr> m_program;
    std::size_t m_num_temps;
    std::vector<Epilogue> m_epilogues;
    std::vector<std::size_t> m_written; // outputs the program writes (not reduction epilogues)
    std::vector<Mode> m_modes;
    std::shared_ptr<const jit::Kernel> m_jit; // null: interpreted
    std::size_t m_jit_outputs = 0;
    std::vector<Ref> m_jit_stores; // temporaries the machine code also stores (reduction sources)
    std::vector<bool> m_written_inputs; // inputs the plan writes outputs over (overwriting())
    // A gathered input's shape and strides with mergeable axes merged: a bias of (C, 1, 1) read
    // over (N, C, H, W) copies runs of H*W values, not of W (14 for the CNN's second layer).
    struct GatherView {
        Shape shape;
        kernels::Strides strides;
    };
    static GatherView collapse(const Shape& shape, const kernels::Strides& strides) {
        GatherView v;
        for (std::size_t d = 0; d < shape.size(); ++d) {
            const bool merges =
                !v.shape.empty() &&
                v.strides.back() == strides[d] * static_cast<std::ptrdiff_t>(shape[d]);
            if (merges) {
                v.shape.back() *= shape[d];
                v.strides.back() = strides[d];
            } else {
                v.shape.push_back(shape[d]);
                v.strides.push_back(strides[d]);
            }
        }
        return v;
    }
    std::vector<GatherView> m_gathers;
};

// A matmul, convolution or max-pool gradient whose result only feeds one fused elementwise
// region: both run as one kernel, the region (bias add, activation, ...) reading the result while
// it is still in cache, and the result itself never reaching the arena. Without reductions in the
// region it runs on each part the producer finishes (GEMM: a block of rows, kernels::RowsDone;
// convolution: an image), so the result is read from L1/L2 instead of memory.
class ProducerEpilogue final : public FusedKernel {
public:
    using Producer = std::variant<Matmul, Conv2d, MaxPool2dGrad>;
    ProducerEpilogue(Producer producer, Shape result_shape, DType dtype,
                     std::shared_ptr<const FusedKernel> region, std::size_t result_input,
                     std::size_t region_inputs)
        : m_producer(std::move(producer)), m_result_shape(std::move(result_shape)), m_dtype(dtype),
          m_region(std::move(region)), m_result_input(result_input),
          m_region_inputs(region_inputs) {}

    std::string name() const override {
        return std::holds_alternative<Matmul>(m_producer) ? "gemm_epilogue"
                                                          : producer_name() + "_epilogue";
    }
    std::vector<std::string> ops() const override {
        std::vector<std::string> names{producer_name()};
        for (std::string& n : m_region->ops()) {
            names.push_back(std::move(n));
        }
        return names;
    }

    bool compiled() const override { return m_region->compiled(); }

    std::string producer_name() const {
        return std::visit([](const auto& p) { return std::string(p.name); }, m_producer);
    }

    // args.in: the producer's two operands, then the region's inputs without its result.
    void run(const KernelArgs& args) const override {
        // Parts line up only when the region walks the result's elements in order (not a
        // broadcast of it to a larger shape).
        const bool in_parts = m_region->runs_in_parts() && numel(m_result_shape) > 0 &&
                              numel(args.out_shape) == numel(m_result_shape);
        const bool by_image = in_parts && !std::holds_alternative<Matmul>(m_producer);
        // The full-size result, except when run through a PartSink (see below).
        thread_local std::vector<double> scratch; // double: aligned for either dtype
        const std::size_t bytes = numel(m_result_shape) * dtype_size(m_dtype);
        scratch.resize(by_image ? 0 : (bytes + sizeof(double) - 1) / sizeof(double));
        const KernelArgs produce{m_dtype, args.in.subspan(0, 2), scratch.data(), m_result_shape};
        std::vector<Operand> operands;
        for (std::size_t k = 0; k < m_region_inputs; ++k) {
            if (k == m_result_input) {
                operands.push_back({scratch.data(), &m_result_shape});
            } else {
                operands.push_back(args.in[2 + (k < m_result_input ? k : k - 1)]);
            }
        }
        const KernelArgs region{args.dtype, operands, args.out, args.out_shape, args.extra_out};
        if (!in_parts) {
            std::visit([&](const auto& p) { p.forward(produce); }, m_producer);
            m_region->run(region);
            return;
        }
        if (const auto* matmul = std::get_if<Matmul>(&m_producer)) {
            // Parts: blocks of rows of the GEMM's result, in the full-size scratch.
            const std::size_t row = m_result_shape.back();
            const kernels::RowsDone done = [&](std::size_t begin, std::size_t end) {
                m_region->run_part(region, begin * row, end * row);
            };
            matmul->forward(produce, &done);
            return;
        }
        // Parts: images (conv2d) or blocks of planes (max_pool2d_grad). Each goes to its
        // thread's part-sized buffer, which stays in cache from one part to the next; the
        // full-size result is never written.
        const std::size_t units = std::holds_alternative<Conv2d>(m_producer)
                                      ? m_result_shape[0]
                                      : m_result_shape[0] * m_result_shape[1];
        const std::size_t unit = numel(m_result_shape) / units;
        const std::size_t unit_bytes = unit * dtype_size(m_dtype);
        PartSink sink;
        sink.out = [unit_bytes](std::size_t begin, std::size_t end) -> void* {
            thread_local std::vector<double> buffer;
            buffer.resize(((end - begin) * unit_bytes + sizeof(double) - 1) / sizeof(double));
            return buffer.data();
        };
        sink.done = [&](std::size_t begin, std::size_t end, const void* data) {
            const PartInput local{m_result_input, data};
            m_region->run_part(region, begin * unit, end * unit, &local);
        };
        if (const auto* conv = std::get_if<Conv2d>(&m_producer)) {
            conv->forward(produce, &sink);
        } else {
            std::get<MaxPool2dGrad>(m_producer).forward(produce, &sink);
        }
    }

private:
    Producer m_producer;
    Shape m_result_shape;
    DType m_dtype;
    std::shared_ptr<const FusedKernel> m_region;
    std::size_t m_result_input;
    std::size_t m_region_inputs;
};

// A region: steps (by index into the plan) run as one kernel, and reductions fused after it.
struct Region {
    std::vector<std::size_t> steps;
    std::vector<std::size_t> reductions;
};

bool is_reduction(const Step& s) {
    return !s.fused &&
           (std::holds_alternative<ReduceSum>(s.op) || std::holds_alternative<ReduceMax>(s.op));
}
const std::vector<int>& reduction_axes(const Step& s) {
    return std::holds_alternative<ReduceSum>(s.op) ? std::get<ReduceSum>(s.op).axes
                                                   : std::get<ReduceMax>(s.op).axes;
}

// Builds the fused step for `region` of `plan`. `escapes[b]`: the region must write buffer b.
template <class T>
Step fuse_region(const Plan& plan, const Region& region, const std::vector<char>& escapes,
                 const std::unordered_map<std::size_t, ReadSpec>& views) {
    const Shape& shape = plan.buffers[plan.steps[region.steps.front()].output].shape;
    std::unordered_map<std::size_t, Ref> produced; // buffer -> where the region keeps it
    std::vector<ReadSpec> inputs;
    std::map<ReadSpec, std::size_t> input_index;
    std::vector<std::size_t> outputs;
    std::size_t temps = 0;
    // Temporaries are tile-sized scratch rows; one is recycled once its last reader has run, so
    // a long chain needs two or three of them and its working set stays in L1.
    std::unordered_map<std::size_t, std::size_t> last_read; // buffer -> instruction index
    for (std::size_t k = 0; k < region.steps.size(); ++k) {
        for (std::size_t b : plan.steps[region.steps[k]].inputs) {
            last_read[b] = k;
        }
    }
    for (std::size_t r : region.reductions) {
        last_read[plan.steps[r].inputs[0]] = SIZE_MAX; // read after the whole program
    }
    std::vector<std::size_t> free_temps;
    std::vector<typename FusedElementwise<T>::Instr> program;
    for (std::size_t k = 0; k < region.steps.size(); ++k) {
        const std::size_t i = region.steps[k];
        const Step& s = plan.steps[i];
        typename FusedElementwise<T>::Instr instr;
        RowOp<T> row_op = make_row_op<T>(s.op);
        instr.fn = std::move(row_op.fn);
        instr.code = {row_op.code, row_op.param};
        instr.op = std::string(op_name(s.op));
        for (std::size_t b : s.inputs) {
            auto it = produced.find(b);
            if (it != produced.end()) {
                instr.args.push_back(it->second);
                continue;
            }
            auto v = views.find(b);
            ReadSpec spec = v != views.end() ? v->second : ReadSpec{b, plan.buffers[b].shape};
            if (reads_flat(s)) {
                spec.shape = shape;
            }
            auto [slot, inserted] = input_index.try_emplace(spec, inputs.size());
            if (inserted) {
                inputs.push_back(spec);
            }
            instr.args.push_back({Ref::Input, slot->second});
        }
        for (std::size_t b : s.inputs) { // temps read for the last time here are free again
            auto it = produced.find(b);
            if (it != produced.end() && it->second.kind == Ref::Temp && last_read[b] == k &&
                std::find(free_temps.begin(), free_temps.end(), it->second.index) ==
                    free_temps.end()) {
                free_temps.push_back(it->second.index);
            }
        }
        if (escapes[s.output]) {
            instr.dst = {Ref::Output, outputs.size()};
            outputs.push_back(s.output);
        } else if (!free_temps.empty()) { // in place over a dead temp is safe: map_row loads
            instr.dst = {Ref::Temp, free_temps.back()}; // a batch before storing it
            free_temps.pop_back();
        } else {
            instr.dst = {Ref::Temp, temps++};
        }
        produced[s.output] = instr.dst;
        program.push_back(std::move(instr));
    }
    std::vector<Epilogue> epilogues;
    for (std::size_t r : region.reductions) {
        const Step& s = plan.steps[r];
        const std::vector<int>& axes = reduction_axes(s);
        const bool suffix = static_cast<std::size_t>(axes.back()) + 1 == shape.size();
        std::size_t reduced = 1;
        for (int a : axes) {
            reduced *= shape[static_cast<std::size_t>(a)];
        }
        const std::size_t total = numel(shape);
        Epilogue e{produced.at(s.inputs[0]),
                   outputs.size(),
                   std::holds_alternative<ReduceMax>(s.op),
                   suffix,
                   suffix ? reduced : total / std::max<std::size_t>(reduced, 1),
                   numel(plan.buffers[s.output].shape),
                   std::string(op_name(s.op))};
        outputs.push_back(s.output);
        epilogues.push_back(e);
    }
    std::vector<Shape> read_shapes;
    Step step;
    for (const ReadSpec& spec : inputs) {
        step.inputs.push_back(spec.buffer);
        read_shapes.push_back(spec.shape);
    }
    step.op = plan.steps[region.steps.back()].op;
    step.output = outputs.front();
    step.extra_outputs.assign(outputs.begin() + 1, outputs.end());
    step.fused = std::make_shared<FusedElementwise<T>>(
        shape, std::move(program), temps, std::move(read_shapes), std::move(epilogues));
    return step;
}

std::string describe(const Plan& plan, const Step& s) {
    return s.name() + " " + pynn::to_string(plan.buffers[s.output].shape);
}

// Axes {0..k-1} or {k..rank-1} of a rank-`rank` shape, i.e. a fold a tile can do in order.
bool prefix_or_suffix(const std::vector<int>& axes, std::size_t rank) {
    if (axes.empty()) {
        return false;
    }
    for (std::size_t i = 1; i < axes.size(); ++i) {
        if (axes[i] != axes[i - 1] + 1) {
            return false;
        }
    }
    return axes.front() == 0 || static_cast<std::size_t>(axes.back()) + 1 == rank;
}

} // namespace

void fuse(Plan& plan) {
    const std::size_t count = plan.steps.size();
    std::vector<std::vector<std::size_t>> readers(plan.buffers.size());
    for (std::size_t i = 0; i < count; ++i) {
        for (std::size_t b : plan.steps[i].inputs) {
            readers[b].push_back(i);
        }
    }
    std::vector<char> kept(plan.buffers.size(), 0);
    for (std::size_t b : plan.outputs) {
        kept[b] = 1;
    }
    for (const auto& g : plan.grads) {
        kept[g.second] = 1;
    }
    auto elementwise_op = [&](std::size_t i) {
        const Step& s = plan.steps[i];
        return !s.fused &&
               std::visit([](const auto& o) { return is_elementwise_v<std::decay_t<decltype(o)>>; },
                          s.op);
    };

    // 1. Views: a reshape or broadcast_to read only by elementwise ops costs no kernel; its
    //    readers load its input through the view's shape instead.
    std::vector<char> absorbed(count, 0);
    std::unordered_map<std::size_t, ReadSpec> views;
    for (std::size_t i = 0; i < count; ++i) {
        const Step& s = plan.steps[i];
        const bool reshape = !s.fused && std::holds_alternative<Reshape>(s.op);
        const bool broadcast = !s.fused && std::holds_alternative<BroadcastTo>(s.op);
        if ((!reshape && !broadcast) || kept[s.output] || readers[s.output].empty()) {
            continue;
        }
        bool all_elementwise = true;
        for (std::size_t r : readers[s.output]) {
            all_elementwise = all_elementwise && elementwise_op(r);
        }
        const std::size_t src = s.inputs[0];
        auto v = views.find(src);
        ReadSpec spec = v != views.end() ? v->second : ReadSpec{src, plan.buffers[src].shape};
        if (!all_elementwise || (reshape && spec.broadcast)) {
            continue;
        }
        if (reshape) {
            spec.shape = plan.buffers[s.output].shape; // same bytes, read as the new shape
        } else {
            spec.broadcast = true; // the source's shape broadcasts on to the reader's
        }
        views[s.output] = spec;
        absorbed[i] = 1;
    }
    auto reads_view = [&](std::size_t i) {
        for (std::size_t b : plan.steps[i].inputs) {
            if (views.contains(b)) {
                return true;
            }
        }
        return false;
    };

    // 2. Regions: runs of neighbouring fusable steps with one output shape and dtype.
    std::vector<std::size_t> live; // the steps that remain, in order
    for (std::size_t i = 0; i < count; ++i) {
        if (!absorbed[i]) {
            live.push_back(i);
        }
    }
    auto joins = [&](std::size_t a, std::size_t b) {
        const BufferInfo& po = plan.buffers[plan.steps[a].output];
        const BufferInfo& co = plan.buffers[plan.steps[b].output];
        return is_fusable(plan.steps[a]) && is_fusable(plan.steps[b]) && po.shape == co.shape &&
               po.dtype == co.dtype;
    };
    std::vector<Region> regions; // one per kernel of the result
    std::vector<char> is_region; // regions[k] is a fused region (else a single step)
    std::unordered_map<std::size_t, std::size_t> region_of_buffer;
    // A step that reads, through a view, a value its region would make must start a new
    // region: the region would read from memory what it has not written yet (a cycle).
    auto reads_view_of = [&](std::size_t i, const std::unordered_set<std::size_t>& made) {
        for (std::size_t b : plan.steps[i].inputs) {
            auto v = views.find(b);
            if (v != views.end() && made.contains(v->second.buffer)) {
                return true;
            }
        }
        return false;
    };
    for (std::size_t k = 0; k < live.size();) {
        std::size_t end = k + 1;
        std::unordered_set<std::size_t> made{plan.steps[live[k]].output};
        while (end < live.size() && joins(live[end - 1], live[end]) &&
               !reads_view_of(live[end], made)) {
            made.insert(plan.steps[live[end]].output);
            ++end;
        }
        Region r;
        r.steps.assign(live.begin() + static_cast<std::ptrdiff_t>(k),
                       live.begin() + static_cast<std::ptrdiff_t>(end));
        const bool fusable = is_fusable(plan.steps[r.steps.front()]);
        // A lone elementwise step is worth wrapping when it reads a view or can become the
        // epilogue of the matmul right before it.
        const Step& first = plan.steps[r.steps.front()];
        const bool after_matmul = k > 0 && !plan.steps[live[k - 1]].fused &&
                                  std::holds_alternative<Matmul>(plan.steps[live[k - 1]].op) &&
                                  std::find(first.inputs.begin(), first.inputs.end(),
                                            plan.steps[live[k - 1]].output) != first.inputs.end();
        const bool fused =
            fusable && (r.steps.size() > 1 || reads_view(r.steps.front()) || after_matmul);
        if (fused) {
            for (std::size_t i : r.steps) {
                region_of_buffer[plan.steps[i].output] = regions.size();
            }
        }
        regions.push_back(std::move(r));
        is_region.push_back(fused ? 1 : 0);
        k = end;
    }

    // 3. Epilogues: a sum or max over leading or trailing axes of a value a region makes joins
    //    that region (it only needs the value, so it can run as early as the region does).
    std::vector<char> removed(regions.size(), 0);
    for (std::size_t k = 0; k < regions.size(); ++k) {
        if (is_region[k] || regions[k].steps.size() != 1) {
            continue;
        }
        const Step& s = plan.steps[regions[k].steps.front()];
        if (!is_reduction(s)) {
            continue;
        }
        auto owner = region_of_buffer.find(s.inputs[0]);
        const Shape& in_shape = plan.buffers[s.inputs[0]].shape;
        if (owner == region_of_buffer.end() ||
            !prefix_or_suffix(reduction_axes(s), in_shape.size())) {
            continue;
        }
        regions[owner->second].reductions.push_back(regions[k].steps.front());
        removed[k] = 1;
    }

    // 4. Build the kernels. A buffer made in a region escapes when a step outside the region
    //    reads it or the plan keeps it.
    std::vector<std::size_t> step_region(count, SIZE_MAX);
    for (std::size_t k = 0; k < regions.size(); ++k) {
        if (removed[k]) { // a reduction now owned by the region it reads from (set below)
            continue;
        }
        for (std::size_t i : regions[k].steps) {
            step_region[i] = k;
        }
        for (std::size_t i : regions[k].reductions) {
            step_region[i] = k;
        }
    }
    std::vector<Step> steps;
    for (std::size_t k = 0; k < regions.size(); ++k) {
        if (removed[k]) {
            continue;
        }
        if (!is_region[k]) {
            steps.push_back(plan.steps[regions[k].steps.front()]);
            continue;
        }
        std::vector<char> escapes(plan.buffers.size(), 0);
        for (std::size_t i : regions[k].steps) {
            const std::size_t b = plan.steps[i].output;
            bool outside = kept[b] != 0;
            for (std::size_t r : readers[b]) {
                outside = outside || step_region[r] != k;
            }
            // A value nobody reads (dead code the simplifier left) still gets written.
            escapes[b] = outside || (readers[b].empty() && !kept[b]) ? 1 : 0;
        }
        if (plan.buffers[plan.steps[regions[k].steps.front()].output].dtype == DType::Float32) {
            steps.push_back(fuse_region<float>(plan, regions[k], escapes, views));
        } else {
            steps.push_back(fuse_region<double>(plan, regions[k], escapes, views));
        }
    }

    // 5. Producer epilogues: a matmul, conv2d or max_pool2d_grad right before a region that is
    //    the only reader of its result.
    std::vector<Step> merged;
    for (std::size_t i = 0; i < steps.size(); ++i) {
        Step& cur = steps[i];
        if (merged.empty() || !cur.fused || cur.fused->name() != "fused_elementwise") {
            merged.push_back(std::move(cur));
            continue;
        }
        Step& prev = merged.back();
        const std::size_t result = prev.output;
        auto at = std::find(cur.inputs.begin(), cur.inputs.end(), result);
        std::size_t readers_of_result = 0;
        for (const Step& s : steps) {
            readers_of_result += std::count(s.inputs.begin(), s.inputs.end(), result) > 0 ? 1 : 0;
        }
        const bool producer = std::holds_alternative<Matmul>(prev.op) ||
                              std::holds_alternative<Conv2d>(prev.op) ||
                              std::holds_alternative<MaxPool2dGrad>(prev.op);
        if (prev.fused || !producer || at == cur.inputs.end() || kept[result] ||
            readers_of_result != 1 ||
            std::count(cur.inputs.begin(), cur.inputs.end(), result) != 1) {
            merged.push_back(std::move(cur));
            continue;
        }
        Step step;
        step.op = cur.op;
        step.inputs = prev.inputs;
        const auto position = static_cast<std::size_t>(at - cur.inputs.begin());
        for (std::size_t k = 0; k < cur.inputs.size(); ++k) {
            if (k != position) {
                step.inputs.push_back(cur.inputs[k]);
            }
        }
        step.output = cur.output;
        step.extra_outputs = cur.extra_outputs;
        ProducerEpilogue::Producer made;
        if (std::holds_alternative<Matmul>(prev.op)) {
            made = std::get<Matmul>(prev.op);
        } else if (std::holds_alternative<Conv2d>(prev.op)) {
            made = std::get<Conv2d>(prev.op);
        } else {
            made = std::get<MaxPool2dGrad>(prev.op);
        }
        step.fused = std::make_shared<ProducerEpilogue>(made, plan.buffers[result].shape,
                                                        plan.buffers[result].dtype, cur.fused,
                                                        position, cur.inputs.size());
        merged.back() = std::move(step);
    }
    plan.steps = std::move(merged);
}

void explain_boundaries(Plan& plan) {
    const std::vector<Step>& steps = plan.steps;
    std::vector<std::string> notes;
    for (std::size_t i = 1; i < steps.size(); ++i) {
        const Step& prev = steps[i - 1];
        const Step& cur = steps[i];
        const BufferInfo& po = plan.buffers[prev.output];
        const BufferInfo& co = plan.buffers[cur.output];
        std::string reason;
        // A GEMM epilogue ends in an elementwise region, so only a shape or dtype change or a
        // non-elementwise neighbour keeps what follows out of it.
        auto elementwise_like = [](const Step& x) {
            return is_fusable(x) || (x.fused && x.fused->name() != "fused_elementwise" &&
                                     x.fused->name().ends_with("_epilogue"));
        };
        const bool prev_reduces = prev.fused && !prev.fused->ops().empty() &&
                                  (prev.fused->ops().back() == ReduceSum::name ||
                                   prev.fused->ops().back() == ReduceMax::name);
        if (prev_reduces && elementwise_like(cur)) {
            reason = "#" + std::to_string(i - 1) + " ends in a reduction (" +
                     prev.fused->ops().back() + "), which closes its region";
        } else if (!elementwise_like(prev) || !elementwise_like(cur)) {
            const Step& other = elementwise_like(prev) ? cur : prev;
            reason = other.name() + " is not elementwise";
            if (is_reduction(other)) {
                reason += " (a reduction that is not the end of an elementwise region)";
            }
        } else if (po.shape != co.shape) {
            reason = "the shape changes from " + pynn::to_string(po.shape) + " to " +
                     pynn::to_string(co.shape);
        } else if (po.dtype != co.dtype) {
            reason = "the dtype changes";
        } else {
            reason = "they were not neighbours when fusion ran (the memory-aware schedule moved "
                     "them together afterwards)";
        }
        notes.push_back("#" + std::to_string(i - 1) + " " + describe(plan, prev) + " | #" +
                        std::to_string(i) + " " + describe(plan, cur) + ": " + reason);
    }
    plan.fusion_notes = std::move(notes);
}

} // namespace pynn::compiler
