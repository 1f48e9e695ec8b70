// The code generator behind jit.hpp. Hand-written on purpose: xbyak (Debian's libxbyak-dev) is
// the assembler, and what is ours is only the mapping from the fused program to instructions.
//
// Generated function, System V ABI: rdi = in, rsi = out, rdx = n.
//   r8  element index j          r10 n            r11 n rounded down to whole vectors
//   up to 10 row pointers (input rows, output rows, stored values)
// AVX-512 (16 floats per vector):
//   k1  the last vector's mask
//   zmm28 0.0, zmm29 1.0, zmm30 sign bits, zmm31 scratch; broadcast scalars next, from zmm27 down;
//   program values in the rest, from zmm0 up, each freed after its last use.
// AVX2 (8 floats per vector; for CPUs without AVX-512, or PYNN_JIT_ISA=avx2):
//   ymm11 the last vector's mask (all ones in its valid lanes), ymm12 0.0, ymm13 1.0, ymm14 sign
//   bits, ymm15 scratch (compare results); program values in ymm0-10. Scalars wait in a stack
//   slot and are broadcast into a value register where an instruction reads them: with 16
//   registers, keeping Adam's six scalars in registers would leave too few for its values.
// The loop body is emitted twice: once for whole vectors, once masked for the last n % width.
#include "compiler/jit.hpp"

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>

#include "pynn/error.hpp"

#if defined(PYNN_HAVE_XBYAK)
#include <xbyak/xbyak.h>
#include <xbyak/xbyak_util.h>
#endif

namespace pynn::compiler::jit {

#if defined(PYNN_HAVE_XBYAK)

namespace {

// The reserved registers of each instruction set (see the layout above).
struct Layout {
    int zero;
    int one;
    int sign;
    int scratch;
    int values;         // registers [0, values) hold program values (and, on AVX-512, scalars)
    std::size_t vector; // floats per register
};
constexpr Layout kAvx512{28, 29, 30, 31, 28, 16};
constexpr Layout kAvx2{12, 13, 14, 15, 11, 8};
constexpr int kAvx2Mask = 11;
constexpr int kPrefetchBytes = 2048; // how far ahead input rows are prefetched

// AVX-512 comparison predicates: the ones xsimd's batch operators use, except not-equal.
constexpr std::uint8_t kEqOQ = 0x00;
constexpr std::uint8_t kLtOQ = 0x11;
constexpr std::uint8_t kLeOQ = 0x12;
constexpr std::uint8_t kNeqUQ = 0x04;  // true for NaN, as IEEE and the functors (NeF)
constexpr std::uint8_t kUnordQ = 0x03; // either operand NaN
constexpr std::uint8_t kGeOQ = 0x1D;
constexpr std::uint8_t kGtOQ = 0x1E;

// The comparison ops' predicates (a lane is 1.0F where it holds), or none for other ops.
std::optional<std::uint8_t> comparison(OpCode op) {
    switch (op) {
    case OpCode::Eq: return kEqOQ;
    case OpCode::Ne: return kNeqUQ;
    case OpCode::Lt: return kLtOQ;
    case OpCode::Le: return kLeOQ;
    case OpCode::Gt: return kGtOQ;
    case OpCode::Ge: return kGeOQ;
    default: return std::nullopt;
    }
}

std::size_t arity(OpCode op) {
    switch (op) {
    case OpCode::Copy:
    case OpCode::Neg:
    case OpCode::Sqrt:
    case OpCode::Abs:
    case OpCode::Sign:
    case OpCode::Relu:
    case OpCode::LeakyRelu: return 1;
    case OpCode::Where: return 3;
    case OpCode::Unsupported: return 0;
    default: return 2;
    }
}

// Templates that write their destination before their last read of an operand: their
// destination is taken while the operands still hold their registers.
bool needs_own_destination(OpCode op) {
    return op == OpCode::Maximum || op == OpCode::Minimum || op == OpCode::LeakyRelu;
}

// The program in SSA form: every instruction defines a new value; inputs are values too.
struct Ssa {
    std::vector<std::vector<std::size_t>> args; // per instruction
    std::vector<std::size_t> last_use;          // per value: instruction index, or SIZE_MAX
    std::vector<std::size_t> stores;            // values stored after the program
    std::size_t inputs = 0;                     // values [0, inputs) are the inputs
};

Ssa to_ssa(const Program& p) {
    Ssa s;
    s.inputs = p.scalar_input.size();
    s.last_use.assign(s.inputs, 0);
    std::map<std::pair<Value::Kind, std::size_t>, std::size_t> bound; // temp/output -> value
    auto lookup = [&](const Value& v) -> std::size_t {
        if (v.kind == Value::Input) {
            return v.index;
        }
        return bound.at({v.kind, v.index}); // a program writes a temp before it reads it
    };
    for (std::size_t i = 0; i < p.instrs.size(); ++i) {
        std::vector<std::size_t> a;
        for (const Value& v : p.instrs[i].args) {
            a.push_back(lookup(v));
            s.last_use[a.back()] = i;
        }
        s.args.push_back(std::move(a));
        bound[{p.instrs[i].dst.kind, p.instrs[i].dst.index}] = s.last_use.size();
        s.last_use.push_back(i); // dead unless read later
    }
    for (const Value& v : p.stores) {
        s.stores.push_back(lookup(v));
        s.last_use[s.stores.back()] = SIZE_MAX;
    }
    return s;
}

// PREFETCHW (Broadwell and later, every AMD64 CPU of the AVX era); older CPUs get prefetcht0.
bool has_prefetchw() {
    static const bool yes = Xbyak::util::Cpu().has(Xbyak::util::Cpu::tPREFETCHW);
    return yes;
}

class Generator final : public Xbyak::CodeGenerator, public Kernel {
public:
    Generator(const Program& p, Isa isa)
        : Xbyak::CodeGenerator(4096 + 512 * p.instrs.size(), Xbyak::DontSetProtectRWE),
          m_program(p), m_ssa(to_ssa(p)), m_avx2(isa == Isa::Avx2),
          m_reg(m_avx2 ? kAvx2 : kAvx512) {
        m_isa = isa;
    }

    // Emits the function; false when it needs more registers than there are.
    bool generate() {
        using namespace Xbyak;
        const Reg64 pool[] = {rax, rbx, rbp, rcx, rdx, r9, r12, r13, r14, r15};
        // Row pointers: inputs read as rows, then outputs, then stored values.
        std::vector<std::pair<bool, std::size_t>> rows; // (is output slot, index)
        for (std::size_t k = 0; k < m_program.scalar_input.size(); ++k) {
            if (!m_program.scalar_input[k]) {
                m_input_row[k] = rows.size();
                rows.emplace_back(false, k);
            }
        }
        for (const Instr& in : m_program.instrs) {
            if (in.dst.kind == Value::Output && !m_output_row.contains(in.dst.index)) {
                m_output_row[in.dst.index] = rows.size();
                rows.emplace_back(true, in.dst.index);
            }
        }
        for (std::size_t s = 0; s < m_program.stores.size(); ++s) {
            m_store_row.push_back(rows.size());
            rows.emplace_back(true, m_program.num_outputs + s);
        }
        std::size_t scalars = 0;
        for (bool s : m_program.scalar_input) {
            scalars += s ? 1 : 0;
        }
        // Too many rows for the pointer registers, or (AVX-512) scalars leaving too few
        // registers for values: the interpreter takes it (register allocation below may still
        // give up too).
        if (rows.size() > std::size(pool) ||
            (!m_avx2 && scalars + 4 > static_cast<std::size_t>(m_reg.values))) {
            return false;
        }
        m_free_limit = m_avx2 ? m_reg.values : m_reg.values - static_cast<int>(scalars);

        for (const Reg64& r : {rbx, rbp, r12, r13, r14, r15}) {
            push(r);
        }
        const int vector = static_cast<int>(m_reg.vector);
        mov(r10, rdx);
        mov(r11, rdx);
        and_(r11, -vector);
        mov(rcx, rdx);
        and_(ecx, vector - 1); // n % vector
        if (m_avx2) {
            // ymm11 lane i = n % 8 > i ? all ones : 0. The scalars' slots (4 bytes each from
            // rsp, read only by vbroadcastss) need no alignment; no call is made.
            vmovd(Xmm(kAvx2Mask), ecx);
            vpbroadcastd(Ymm(kAvx2Mask), Xmm(kAvx2Mask));
            vpcmpgtd(Ymm(kAvx2Mask), Ymm(kAvx2Mask), ptr[rip + m_lanes]);
            vxorps(Ymm(m_reg.zero), Ymm(m_reg.zero), Ymm(m_reg.zero));
            mov(eax, 0x3F800000); // 1.0F
            vmovd(Xmm(m_reg.one), eax);
            vbroadcastss(Ymm(m_reg.one), Xmm(m_reg.one));
            mov(eax, 0x80000000U);
            vmovd(Xmm(m_reg.sign), eax);
            vbroadcastss(Ymm(m_reg.sign), Xmm(m_reg.sign));
            m_stack_bytes = static_cast<int>((4 * scalars + 15) / 16 * 16);
            if (m_stack_bytes > 0) {
                sub(rsp, m_stack_bytes);
            }
            int slot = 0;
            for (std::size_t k = 0; k < m_program.scalar_input.size(); ++k) {
                if (m_program.scalar_input[k]) {
                    m_scalar_slot[k] = slot;
                    mov(rax, ptr[rdi + 8 * k]);
                    mov(eax, dword[rax]);
                    mov(dword[rsp + 4 * slot], eax);
                    ++slot;
                }
            }
        } else {
            mov(eax, 1); // k1 = the low n % 16 bits
            shl(eax, cl);
            dec(eax);
            kmovw(k1, eax);
            vpxord(Zmm(m_reg.zero), Zmm(m_reg.zero), Zmm(m_reg.zero));
            mov(eax, 0x3F800000); // 1.0F
            vpbroadcastd(Zmm(m_reg.one), eax);
            mov(eax, 0x80000000U);
            vpbroadcastd(Zmm(m_reg.sign), eax);
            int next_scalar = m_reg.values - 1;
            for (std::size_t k = 0; k < m_program.scalar_input.size(); ++k) {
                if (m_program.scalar_input[k]) {
                    m_scalar_reg[k] = next_scalar--;
                    mov(rax, ptr[rdi + 8 * k]);
                    vbroadcastss(Zmm(m_scalar_reg[k]), ptr[rax]);
                }
            }
        }
        for (std::size_t r = 0; r < rows.size(); ++r) {
            const Reg64& base = rows[r].first ? rsi : rdi;
            mov(pool[r], ptr[base + 8 * rows[r].second]);
            m_row_reg.push_back(pool[r]);
        }
        xor_(r8, r8);
        Label loop;
        Label tail;
        Label done;
        L(loop);
        cmp(r8, r11);
        jae(tail, T_NEAR);
        if (!body(false)) {
            return false;
        }
        add(r8, vector);
        jmp(loop, T_NEAR);
        L(tail);
        cmp(r8, r10);
        jae(done, T_NEAR);
        if (!body(true)) {
            return false;
        }
        L(done);
        vzeroupper();
        if (m_stack_bytes > 0) {
            add(rsp, m_stack_bytes);
        }
        for (const Reg64& r : {r15, r14, r13, r12, rbp, rbx}) {
            pop(r);
        }
        ret();
        if (m_avx2) { // 0, 1, ..., 7: compared with n % 8 for the last vector's mask
            align(32);
            L(m_lanes);
            for (std::uint32_t i = 0; i < 8; ++i) {
                dd(i);
            }
        }
        for (std::size_t i = 0; i < m_slopes.size(); ++i) { // LeakyRelu's slopes, as data
            align(4);
            L(*m_slopes[i].second);
            std::uint32_t bits = 0;
            std::memcpy(&bits, &m_slopes[i].first, sizeof bits);
            dd(bits);
        }
        ready();            // every label resolved
        setProtectModeRE(); // executable, no longer writable
        m_fn = getCode<Fn>();
        return true;
    }

private:
    Xbyak::Address row_at(std::size_t row) { return ptr[m_row_reg[row] + r8 * 4]; }

    // Register i as this instruction set's vector register.
    Xbyak::Xmm vec(int i) const {
        return m_avx2 ? Xbyak::Xmm(Xbyak::Ymm(i)) : Xbyak::Xmm(Xbyak::Zmm(i));
    }

    // One pass of the program over the vector at r8 (masked by k1 for the last one).
    bool body(bool masked) {
        using namespace Xbyak;
        std::vector<int> reg(m_ssa.last_use.size(), -1);
        std::vector<int> free_regs;
        for (int r = m_free_limit - 1; r >= 0; --r) {
            free_regs.push_back(r);
        }
        auto take = [&]() -> std::optional<int> {
            if (free_regs.empty()) {
                return std::nullopt;
            }
            const int r = free_regs.back();
            free_regs.pop_back();
            return r;
        };
        auto store = [&](std::size_t row, int r) {
            if (!masked) {
                vmovups(row_at(row), vec(r));
            } else if (m_avx2) {
                vmaskmovps(row_at(row), Ymm(kAvx2Mask), Ymm(r));
            } else {
                vmovups(row_at(row) | k1, Zmm(r));
            }
        };
        for (std::size_t i = 0; i < m_program.instrs.size(); ++i) {
            const Instr& in = m_program.instrs[i];
            if (in.op == OpCode::Unsupported || in.args.size() != arity(in.op)) {
                return false;
            }
            std::vector<int> a;
            std::vector<int> broadcasts; // AVX2: registers this instruction's scalars were put in
            for (std::size_t v : m_ssa.args[i]) {
                if (v < m_ssa.inputs && m_program.scalar_input[v] && !m_avx2) {
                    a.push_back(m_scalar_reg.at(v));
                    continue;
                }
                if (v < m_ssa.inputs && m_program.scalar_input[v]) {
                    const std::optional<int> r = take();
                    if (!r) {
                        return false;
                    }
                    vbroadcastss(Ymm(*r), dword[rsp + 4 * m_scalar_slot.at(v)]);
                    broadcasts.push_back(*r);
                    a.push_back(*r);
                    continue;
                }
                if (reg[v] < 0) { // an input row, loaded at its first use
                    const std::optional<int> r = take();
                    if (!r) {
                        return false;
                    }
                    reg[v] = *r;
                    const Address at = row_at(m_input_row.at(v));
                    if (masked && m_avx2) {
                        vmaskmovps(Ymm(*r), Ymm(kAvx2Mask), at); // masked lanes read as 0
                    } else if (masked) {
                        vmovups(Zmm(*r) | k1 | T_z, at);
                    } else {
                        vmovups(vec(*r), at);
                        // Rows streamed from memory: the 8-op chain over 16M floats 9.7 -> 5.9
                        // ms (1024 bytes ahead: 7.4; 4096: 6.2); in cache and L3 (Adam) no
                        // change. A prefetch past the row's end is only a hint, never a fault.
                        const Address ahead =
                            ptr[m_row_reg[m_input_row.at(v)] + r8 * 4 + kPrefetchBytes];
                        if (v < m_program.written_input.size() && m_program.written_input[v] &&
                            has_prefetchw()) {
                            prefetchw(ahead);
                        } else {
                            prefetcht0(ahead);
                        }
                    }
                }
                a.push_back(reg[v]);
            }
            std::optional<int> d;
            if (needs_own_destination(in.op)) {
                // Not an operand's register even when one dies here: these templates write
                // their destination before their last read. None free: the interpreter runs.
                d = take();
                if (!d) {
                    return false;
                }
            }
            // Registers of values read for the last time are free for the result: the other
            // templates read their operands before they write their destination.
            for (std::size_t v : m_ssa.args[i]) {
                const bool scalar = v < m_ssa.inputs && m_program.scalar_input[v];
                if (!scalar && reg[v] >= 0 && m_ssa.last_use[v] == i) {
                    free_regs.push_back(reg[v]);
                    reg[v] = -2; // freed once, even when an instruction reads it twice
                }
            }
            free_regs.insert(free_regs.end(), broadcasts.begin(), broadcasts.end());
            if (!d) {
                d = take();
            }
            if (!d) {
                return false;
            }
            emit(in, *d, a);
            const std::size_t value = m_ssa.inputs + i;
            reg[value] = *d;
            if (in.dst.kind == Value::Output) {
                store(m_output_row.at(in.dst.index), *d);
            }
            if (m_ssa.last_use[value] == i) { // nobody reads it (an output, or dead)
                free_regs.push_back(*d);
                reg[value] = -2;
            }
        }
        for (std::size_t s = 0; s < m_ssa.stores.size(); ++s) {
            const std::size_t v = m_ssa.stores[s];
            if (v < m_ssa.inputs) {
                return false; // a reduction of an input directly: the caller reads it itself
            }
            store(m_store_row[s], reg[v]);
        }
        return true;
    }

    // The ops both instruction sets write alike: copy, arithmetic, sqrt, relu.
    bool emit_common(const Instr& in, const Xbyak::Xmm& z, const std::vector<int>& a) {
        auto x = [&](std::size_t k) { return vec(a[k]); };
        switch (in.op) {
        case OpCode::Copy: vmovaps(z, x(0)); return true;
        case OpCode::Add: vaddps(z, x(0), x(1)); return true;
        case OpCode::Sub: vsubps(z, x(0), x(1)); return true;
        case OpCode::Mul: vmulps(z, x(0), x(1)); return true;
        case OpCode::Div: vdivps(z, x(0), x(1)); return true;
        case OpCode::Sqrt: vsqrtps(z, x(0)); return true;
        case OpCode::Relu: vmaxps(z, vec(m_reg.zero), x(0)); return true; // 0 > x ? 0 : x
        default: return false;
        }
    }

    void emit(const Instr& in, int d, const std::vector<int>& a) {
        if (emit_common(in, vec(d), a)) {
            return;
        }
        if (m_avx2) {
            emit_avx2(in, d, a);
            return;
        }
        using namespace Xbyak;
        const Zmm z(d);
        const Zmm s(m_reg.scratch);
        const Zmm one(m_reg.one);
        const Zmm zero(m_reg.zero);
        auto x = [&](std::size_t k) { return Zmm(a[k]); };
        if (const std::optional<std::uint8_t> predicate = comparison(in.op)) {
            vcmpps(k2, x(0), x(1), *predicate);
            vmovaps(z | k2 | T_z, one);
            return;
        }
        switch (in.op) {
        case OpCode::Maximum: // maxps: a > b ? a : b; then a NaN a is kept (MaximumF)
        case OpCode::Minimum:
            if (in.op == OpCode::Maximum) {
                vmaxps(z, x(0), x(1));
            } else {
                vminps(z, x(0), x(1));
            }
            vcmpps(k2, x(0), x(0), kUnordQ);
            vmovaps(z | k2, x(0));
            break;
        case OpCode::Neg: vpxord(z, x(0), Zmm(m_reg.sign)); break;
        case OpCode::Abs: vpandnd(z, Zmm(m_reg.sign), x(0)); break;
        case OpCode::Sign: // (x > 0) - (x < 0)
            vcmpps(k2, x(0), zero, kGtOQ);
            vcmpps(k3, x(0), zero, kLtOQ);
            vmovaps(s | k2 | T_z, one);
            vmovaps(z | k3 | T_z, one);
            vsubps(z, s, z);
            break;
        case OpCode::LeakyRelu: { // x > 0 ? x : x * slope
            vcmpps(k2, x(0), zero, kGtOQ);
            vmulps(z, x(0), ptr_b[rip + slope(in.param)]);
            vmovaps(z | k2, x(0));
            break;
        }
        case OpCode::Where: // cond != 0 ? a : b
            vcmpps(k2, x(0), zero, kNeqUQ);
            vblendmps(z | k2, x(2), x(1));
            break;
        default: break;
        }
    }

    // The same templates without mask registers: a comparison leaves all ones or zeros in each
    // lane of a vector, which vandps turns into 1.0F or 0.0F and vblendvps selects with.
    void emit_avx2(const Instr& in, int d, const std::vector<int>& a) {
        using namespace Xbyak;
        const Ymm z(d);
        const Ymm s(m_reg.scratch);
        const Ymm one(m_reg.one);
        const Ymm zero(m_reg.zero);
        auto x = [&](std::size_t k) { return Ymm(a[k]); };
        if (const std::optional<std::uint8_t> predicate = comparison(in.op)) {
            vcmpps(z, x(0), x(1), *predicate);
            vandps(z, z, one);
            return;
        }
        switch (in.op) {
        case OpCode::Maximum: // z is not an operand (needs_own_destination)
        case OpCode::Minimum:
            if (in.op == OpCode::Maximum) {
                vmaxps(z, x(0), x(1));
            } else {
                vminps(z, x(0), x(1));
            }
            vcmpps(s, x(0), x(0), kUnordQ);
            vblendvps(z, z, x(0), s);
            break;
        case OpCode::Neg: vxorps(z, x(0), Ymm(m_reg.sign)); break;
        case OpCode::Abs: vandnps(z, Ymm(m_reg.sign), x(0)); break;
        case OpCode::Sign:
            vcmpps(s, x(0), zero, kGtOQ);
            vandps(s, s, one);
            vcmpps(z, x(0), zero, kLtOQ);
            vandps(z, z, one);
            vsubps(z, s, z);
            break;
        case OpCode::LeakyRelu:
            vcmpps(s, x(0), zero, kGtOQ);
            vbroadcastss(z, dword[rip + slope(in.param)]);
            vmulps(z, z, x(0));
            vblendvps(z, z, x(0), s);
            break;
        case OpCode::Where:
            vcmpps(s, x(0), zero, kNeqUQ);
            vblendvps(z, x(2), x(1), s);
            break;
        default: break;
        }
    }

    // A label for a LeakyRelu slope, emitted as data after the code.
    const Xbyak::Label& slope(float value) {
        m_slopes.emplace_back(value, std::make_unique<Xbyak::Label>());
        return *m_slopes.back().second;
    }

    Program m_program;
    Ssa m_ssa;
    int m_free_limit = 0;
    std::map<std::size_t, std::size_t> m_input_row;  // input -> row
    std::map<std::size_t, std::size_t> m_output_row; // output -> row
    std::vector<std::size_t> m_store_row;            // store -> row
    bool m_avx2;
    Layout m_reg;
    int m_stack_bytes = 0;                            // AVX2: the scalars' stack slots
    Xbyak::Label m_lanes;                             // AVX2: 0..7, for the last vector's mask
    std::map<std::size_t, int> m_scalar_reg;         // AVX-512: input -> zmm
    std::map<std::size_t, int> m_scalar_slot;        // AVX2: input -> stack slot (4 bytes)
    std::vector<Xbyak::Reg64> m_row_reg;
    std::vector<std::pair<float, std::unique_ptr<Xbyak::Label>>> m_slopes;
};

} // namespace

bool supports(Isa isa) {
    static const Xbyak::util::Cpu cpu;
    switch (isa) {
    case Isa::Avx512: return cpu.has(Xbyak::util::Cpu::tAVX512F);
    case Isa::Avx2: return cpu.has(Xbyak::util::Cpu::tAVX2);
    case Isa::None: return true;
    }
    return false;
}

std::shared_ptr<const Kernel> compile(const Program& program, Isa isa) {
    if (isa == Isa::None || !supports(isa) || program.instrs.empty()) {
        return nullptr;
    }
    try {
        auto gen = std::make_shared<Generator>(program, isa);
        if (!gen->generate()) {
            return nullptr;
        }
        return gen;
    } catch (const Xbyak::Error&) { // e.g. no executable memory: the interpreter runs instead
        return nullptr;
    }
}

#else // no code generator in this build

bool supports(Isa isa) { return isa == Isa::None; }
std::shared_ptr<const Kernel> compile(const Program&, Isa) { return nullptr; }

#endif

namespace {

const char* name_of(Isa isa) {
    switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::None: return "none";
    }
    return "?";
}

Isa widest() {
    for (Isa isa : {Isa::Avx512, Isa::Avx2}) {
        if (supports(isa)) {
            return isa;
        }
    }
    return Isa::None;
}

constexpr int kUnset = -1;

std::atomic<int>& chosen() { // an Isa, or kUnset until set_isa()
    static std::atomic<int> isa{kUnset};
    return isa;
}

} // namespace

Isa parse_isa(const std::string& text) {
    std::string want;
    for (const char c : text) {
        want += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    for (Isa isa : {Isa::Avx512, Isa::Avx2, Isa::None}) {
        if (want == name_of(isa)) {
            if (!supports(isa)) {
                throw ValueError("PYNN_JIT_ISA=" + text + ": this CPU (or this build, without " +
                                 "xbyak) cannot run " + name_of(isa) + " code; the widest it " +
                                 "runs is " + name_of(widest()));
            }
            return isa;
        }
    }
    throw ValueError("PYNN_JIT_ISA=" + text + ": expected avx512, avx2 or none");
}

Isa isa() {
    const int set = chosen().load(std::memory_order_relaxed);
    if (set != kUnset) {
        return static_cast<Isa>(set);
    }
    // A bad value throws at every compile, where the user sees it, until set_isa().
    static const char* const env = std::getenv("PYNN_JIT_ISA");
    if (env == nullptr || *env == '\0') {
        return widest();
    }
    return parse_isa(env);
}

void set_isa(Isa isa) {
    if (!supports(isa)) {
        throw ValueError(std::string("jit::set_isa(") + name_of(isa) + "): this CPU (or build) " +
                         "cannot run that code; the widest it runs is " + name_of(widest()));
    }
    chosen().store(static_cast<int>(isa), std::memory_order_relaxed);
}

bool available() { return isa() != Isa::None; }

std::shared_ptr<const Kernel> compile(const Program& program) { return compile(program, isa()); }

} // namespace pynn::compiler::jit
