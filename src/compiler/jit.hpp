// Machine code for a fused elementwise region (float32, x86-64 with AVX-512 or AVX2, via xbyak).
//
// Why: the fused kernel's interpreter (compiler/fuse.cpp) runs a region op by op over 1024-value
// tiles in L1, so every op loads and stores each value once more. On this project's machines
// that costs ~2 cycles per op per 16 floats, three times a hand-written loop that keeps the whole
// chain in registers: Adam's update of the MLP's 784x256 weight took ~0.3 ms against ~0.1 ms.
// compile() turns the same program into a loop over 16-float zmm vectors (8-float ymm vectors
// on CPUs with AVX2 but not AVX-512) that loads each input once, keeps every intermediate in a
// register and stores only the region's outputs. With AVX2 code Adam's update took 101 us
// against 236 us interpreted, in a build for AVX2 (-march=haswell) on this project's machine.
//
// The generated code computes exactly what the interpreter computes, op by op: the same IEEE
// operations (no contraction into FMAs) and the functors' rules for NaN and signed zero
// (ops/elementwise_functors.hpp). Regions it cannot compile (exp, log, tanh, sigmoid, pow, or
// more rows or live values than registers) return nullptr and stay on the interpreter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pynn::compiler::jit {

enum class OpCode : std::uint8_t {
    Copy,
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    Neg,
    Sqrt,
    Abs,
    Sign,
    Relu,
    LeakyRelu,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Where,
    Unsupported,
};

// Where an instruction reads or writes: an input row (or broadcast scalar), a temporary, or
// one of the region's outputs (the interpreter's Ref).
struct Value {
    enum Kind : std::uint8_t { Input, Temp, Output } kind;
    std::size_t index;
};

struct Instr {
    OpCode op;
    float param = 0.0F; // LeakyRelu's slope
    std::vector<Value> args;
    Value dst;
};

struct Program {
    std::vector<bool> scalar_input; // per input: one value broadcast (else a row)
    // Per input (or fewer): a row an output is written over (Plan::overwrites), prefetched for
    // writing. A row another core has read (a weight both threads' GEMM read) and that is only
    // prefetched for reading is fetched shared, then stolen again by the store: Adam's in-place
    // update of a 784x256 weight on 2 threads took 257 us so, 47 us with prefetchw (87 without
    // prefetch; /tmp harness). On 1 thread all three are within 5%.
    std::vector<bool> written_input;
    std::size_t num_outputs = 0;
    std::vector<Instr> instrs;
    std::vector<Value> stores; // values also stored after the program (reduction sources)
};

// A compiled region. run(in, out, n) computes elements [0, n) of a tile: in[k] is input k's row
// (or its scalar), out[o] output o's row for o < num_outputs, and out[num_outputs + s] where
// stores[s] goes. Rows need no alignment; n may be any count (a masked last vector).
enum class Isa : std::uint8_t;

class Kernel {
public:
    using Fn = void (*)(const float* const* in, float* const* out, std::size_t n);
    virtual ~Kernel() = default;
    void run(const float* const* in, float* const* out, std::size_t n) const { m_fn(in, out, n); }
    Isa isa() const { return m_isa; } // the instruction set the code is for

protected:
    Fn m_fn = nullptr;
    Isa m_isa{};
};

// The instruction sets code can be generated for: 16-float zmm vectors with mask registers, or
// 8-float ymm vectors (CPUs without AVX-512). None: no generated code, the interpreter runs.
enum class Isa : std::uint8_t { None, Avx2, Avx512 };

// True when this build has the code generator and the CPU runs `isa` (None: always).
bool supports(Isa isa);

// The instruction set compile() generates for: set_isa()'s, else PYNN_JIT_ISA's (avx512, avx2
// or none, any case) when set, else the widest this machine runs. set_isa() changes it for later
// compiles (tests, benchmarks): regions already compiled keep their code, so clear the plan cache
// after it. Throws ValueError for an instruction set this machine cannot run, and isa() throws
// parse_isa()'s error for a bad PYNN_JIT_ISA until set_isa() is called.
Isa isa();
void set_isa(Isa isa);

// PYNN_JIT_ISA's value as an instruction set; ValueError naming the variable when it is not
// one of the names, or names one this machine cannot run.
Isa parse_isa(const std::string& text);

// True when isa() is not None.
bool available();

// The program as machine code for isa() (or `isa`), or nullptr when it has an op without a
// code template, needs more registers than there are, or the set is None or not supported.
std::shared_ptr<const Kernel> compile(const Program& program);
std::shared_ptr<const Kernel> compile(const Program& program, Isa isa);

} // namespace pynn::compiler::jit
