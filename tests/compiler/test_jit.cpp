// The fused-region code generator (compiler/jit.hpp): compiled regions compute exactly what the
// interpreter computes, on random regions of every op it has code for (ragged lengths, scalar
// and broadcast inputs, several outputs, fused reductions, regions split over threads) and on
// special values (NaN, infinities, signed zeros); regions it cannot compile stay interpreted.
// Each runs once per instruction set the machine has (AVX-512 and AVX2 code on an AVX-512 CPU).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "compiler/jit.hpp"
#include "support/gradcheck.hpp"

using namespace pynn;

namespace {

using compiler::jit::Isa;

// A test case runs once per instruction set (GENERATE over Isa): with code generated for
// it, plans compiled afresh, or with none (the interpreter alone) on a machine without it.
class IsaScope {
public:
    explicit IsaScope(Isa want) : m_saved(compiler::jit::isa()) {
        compiler::jit::set_isa(compiler::jit::supports(want) ? want : Isa::None);
        clear_plan_cache();
    }
    ~IsaScope() {
        compiler::jit::set_isa(m_saved);
        clear_plan_cache();
    }
    IsaScope(const IsaScope&) = delete;
    IsaScope& operator=(const IsaScope&) = delete;

private:
    Isa m_saved;
};

const char* isa_name(Isa isa) {
    return isa == Isa::Avx512 ? "AVX-512" : (isa == Isa::Avx2 ? "AVX2" : "no instruction set");
}

// Direct kernel tests need the code generator; without it they are skipped with a warning.
bool codegen_available() {
    if (!compiler::jit::available()) {
        WARN("no code generator on this machine");
        return false;
    }
    return true;
}

// Inputs (row a, scalar s, row c), two outputs, and first t0 = a * s: the direct kernel tests'
// common start.
compiler::jit::Program row_scalar_row_program() {
    using namespace compiler::jit;
    Program p;
    p.scalar_input = {false, true, false};
    p.num_outputs = 2;
    p.instrs.push_back(
        {OpCode::Mul, 0.0F, {{Value::Input, 0}, {Value::Input, 1}}, {Value::Temp, 0}});
    return p;
}

// Restores the switches a test changes.
struct FlagScope {
    bool jit = Flags::jit();
    int threads = Flags::num_threads();
    FlagScope() = default;
    ~FlagScope() {
        Flags::set_jit(jit);
        Flags::set_num_threads(threads);
    }
    FlagScope(const FlagScope&) = delete;
    FlagScope& operator=(const FlagScope&) = delete;
};

// The same bits, except that any NaN matches any NaN (payloads are not specified).
void require_same(const xt::xarray<float>& got, const xt::xarray<float>& want) {
    REQUIRE(got.shape() == want.shape());
    for (std::size_t i = 0; i < want.size(); ++i) {
        const float a = got.flat(i);
        const float b = want.flat(i);
        if (std::isnan(a) && std::isnan(b)) {
            continue;
        }
        std::uint32_t bits_a = 0;
        std::uint32_t bits_b = 0;
        std::memcpy(&bits_a, &a, sizeof a);
        std::memcpy(&bits_b, &b, sizeof b);
        if (bits_a != bits_b) {
            FAIL("element " << i << ": compiled " << a << ", interpreted " << b);
        }
    }
}

// Runs `outputs` once compiled and once interpreted; returns whether any kernel was compiled.
bool compare_compiled(const std::vector<Tensor>& outputs) {
    Flags::set_jit(true);
    ComputeGraph g(outputs);
    g.run();
    std::vector<xt::xarray<float>> compiled;
    for (const Tensor& t : outputs) {
        compiled.push_back(t.values<float>());
    }
    const std::string plan = g.to_string();
    Flags::set_jit(false);
    g.run();
    INFO(plan);
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        INFO("output " << i);
        require_same(compiled[i], outputs[i].values<float>());
    }
    return plan.find("(compiled)") != std::string::npos;
}

Tensor clamp4(const Tensor& t) { // keeps products of products finite
    return minimum(maximum(t, Tensor::scalar(-4.0)), Tensor::scalar(4.0));
}

// A random region over x, y (rows, cols), a bias (cols) and a scalar s, from every op with a
// code template.
std::vector<Tensor> random_region(std::mt19937_64& rng, const Tensor& x, const Tensor& y,
                                  const Tensor& bias, const Tensor& s) {
    auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    std::vector<Tensor> pool{x, y};
    const std::size_t steps = 3 + pick(10);
    for (std::size_t k = 0; k < steps; ++k) {
        const Tensor a = pool[pick(pool.size())];
        const Tensor b = pool[pick(pool.size())];
        Tensor out;
        switch (pick(16)) {
        case 0: out = a + b; break;
        case 1: out = a - b; break;
        case 2: out = clamp4(a * b); break;
        case 3: out = a / (abs(b) + 0.5); break;
        case 4: out = maximum(a, b); break;
        case 5: out = minimum(a, b); break;
        case 6: out = -a; break;
        case 7: out = sqrt(abs(a)); break;
        case 8: out = sign(a) + a; break;
        case 9: out = relu(a) * s; break;
        case 10: out = leaky_relu(a, 0.1) + bias; break;
        case 11: {
            const Tensor c[] = {eq(a, b), ne(a, b), lt(a, b), le(a, b), gt(a, b), ge(a, b)};
            out = c[pick(6)] + a;
            break;
        }
        case 12: out = where(gt(a, b), a, b * s); break;
        case 13: out = reshape(reshape(a, {a.numel()}) * 2.0, a.shape()); break;
        case 14: out = a * s + bias; break;
        default: out = abs(a) - b; break;
        }
        pool.push_back(out);
    }
    std::vector<Tensor> outputs;
    outputs.reserve(3);
    outputs.push_back(pool.back());
    if (pick(2) == 0) { // a second output from inside the region
        outputs.push_back(pool[2 + pick(pool.size() - 2)]);
    }
    if (pick(2) == 0) { // a reduction fused after it (its source is stored by the code)
        outputs.push_back(sum(pool.back() * pool.back(), {1}));
    }
    return outputs;
}

} // namespace

TEST_CASE("compiled regions equal the interpreter on random regions", "[compiler][jit]") {
    FlagScope scope;
    const Isa isa = GENERATE(Isa::Avx512, Isa::Avx2);
    const IsaScope isa_scope(isa);
    INFO("generated for " << isa_name(compiler::jit::isa()));
    // Ragged lengths (a masked last vector), whole vectors, several tiles, and regions large
    // enough to be split over two threads.
    const std::vector<Shape> shapes{{1, 1}, {1, 15}, {3, 7}, {4, 16}, {2, 1031}, {33, 1000}};
    std::size_t compiled = 0;
    for (std::uint64_t seed = 1; seed <= 300; ++seed) {
        const Shape& shape = shapes[seed % shapes.size()];
        Flags::set_num_threads(seed % 2 == 0 ? 2 : 1);
        manual_seed(seed);
        const Tensor x = Tensor::randn(shape);
        const Tensor y = Tensor::randn(shape);
        const Tensor bias = Tensor::randn({shape[1]});
        const Tensor s = Tensor::scalar(0.75);
        std::mt19937_64 rng(seed);
        const std::vector<Tensor> outputs = random_region(rng, x, y, bias, s);
        INFO("seed " << seed << ", shape " << pynn::to_string(shape));
        compiled += compare_compiled(outputs) ? 1 : 0;
    }
    clear_plan_cache();
    if (compiler::jit::available()) {
        CHECK(compiled > 250); // the rest: single ops, which run unfused
    } else {
        WARN("no code generator on this machine: only the interpreter ran");
    }
}

TEST_CASE("compiled regions equal the interpreter on NaN, infinities and signed zeros",
          "[compiler][jit]") {
    FlagScope scope;
    const Isa isa = GENERATE(Isa::Avx512, Isa::Avx2);
    const IsaScope isa_scope(isa);
    INFO("generated for " << isa_name(compiler::jit::isa()));
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> special{nan,  -nan,  inf,    -inf,   0.0F,  -0.0F, 1.0F,   -1.0F,
                                     0.5F, -2.0F, 1e-30F, -3e38F, 3e38F, 7.0F,  -0.25F, 2.0F};
    // 64 values, and 69: its last 5 go through the interpreter's scalar tail.
    const std::size_t n = GENERATE(std::size_t{64}, std::size_t{69});
    xt::xarray<float> xv = xt::zeros<float>({n});
    xt::xarray<float> yv = xt::zeros<float>({n});
    for (std::size_t i = 0; i < n; ++i) {
        xv(i) = special[i % 16];
        yv(i) = special[(i / 16 + i * 5) % 16]; // every pair of specials meets
    }
    const Tensor x = Tensor::from_values(xv);
    const Tensor y = Tensor::from_values(yv);
    const Tensor half = Tensor::scalar(0.5);
    // Each op between two others, so it is inside a fused region.
    const std::vector<std::pair<const char*, Tensor>> cases{
        {"add", (x + y) * half},
        {"sub", (x - y) * half},
        {"mul", (x * y) * half},
        {"div", (x / y) * half},
        {"maximum", maximum(x, y) * half},
        {"minimum", minimum(x, y) * half},
        {"neg", -(x * half)},
        {"1 / neg", half / -(x * half)}, // the sign of -0 shows
        {"sqrt", sqrt(x * half)},
        {"abs", abs(x * half)},
        {"sign", sign(x * half)},
        {"relu", relu(x * half)},
        {"leaky_relu", leaky_relu(x * half, 0.2)},
        {"eq", eq(x * half, y)},
        {"ne", ne(x * half, y)},
        {"lt", lt(x * half, y)},
        {"le", le(x * half, y)},
        {"gt", gt(x * half, y)},
        {"ge", ge(x * half, y)},
        {"where", where(x * half, y, x) * half},
        {"maximum of a scalar", maximum(x * half, half)},
        {"where on a scalar condition", where(half, x, y) * half},
    };
    for (const auto& [name, out] : cases) {
        INFO(name << ", n = " << n);
        const bool compiled = compare_compiled({out});
        if (compiler::jit::available()) {
            CHECK(compiled);
        }
    }
}

TEST_CASE("regions the code generator cannot take stay interpreted and correct",
          "[compiler][jit]") {
    FlagScope scope;
    const Isa isa = GENERATE(Isa::Avx512, Isa::Avx2);
    const IsaScope isa_scope(isa);
    INFO("generated for " << isa_name(compiler::jit::isa()));
    manual_seed(3);
    const Tensor x = Tensor::randn({5, 40});
    SECTION("an op without a code template (tanh)") {
        const Tensor out = tanh(x * 2.0) + x;
        CHECK_FALSE(compare_compiled({out}));
    }
    SECTION("more rows than the code keeps pointers for") {
        std::vector<Tensor> inputs;
        Tensor out = x * 0.5;
        for (int k = 0; k < 12; ++k) {
            inputs.push_back(Tensor::randn({5, 40}));
            out = out + inputs.back();
        }
        CHECK_FALSE(compare_compiled({out}));
    }
}

TEST_CASE("PYNN_JIT's switch changes how a plan runs, not the plan", "[compiler][jit]") {
    FlagScope scope;
    manual_seed(4);
    const Tensor x = Tensor::randn({64, 100});
    const Tensor y = relu(x * 2.0 + 1.0) - x;
    Flags::set_jit(false);
    ComputeGraph off({y});
    Flags::set_jit(true);
    ComputeGraph on({y});
    // One cached plan: whether its code is used is decided each run.
    CHECK(off.to_string() == on.to_string());
    CHECK(compare_compiled({y}) == compiler::jit::available());
}

TEST_CASE("generated code reads and writes exactly n elements of each row", "[compiler][jit]") {
    using namespace compiler::jit;
    const Isa isa = GENERATE(Isa::Avx512, Isa::Avx2);
    const IsaScope isa_scope(isa);
    INFO("generated for " << isa_name(compiler::jit::isa()));
    if (!codegen_available()) {
        return;
    }
    // out0 = relu(a * s) + c, out1 = a - c, and the temporary a * s stored for a reduction.
    Program p = row_scalar_row_program();
    p.instrs.push_back({OpCode::Relu, 0.0F, {{Value::Temp, 0}}, {Value::Temp, 1}});
    p.instrs.push_back(
        {OpCode::Add, 0.0F, {{Value::Temp, 1}, {Value::Input, 2}}, {Value::Output, 0}});
    p.instrs.push_back(
        {OpCode::Sub, 0.0F, {{Value::Input, 0}, {Value::Input, 2}}, {Value::Output, 1}});
    p.stores.push_back({Value::Temp, 0});
    const std::shared_ptr<const Kernel> kernel = compile(p);
    REQUIRE(kernel != nullptr);

    // Inputs end where an inaccessible page begins: reading past n would fault.
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    void* mem = mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    auto* base = static_cast<char*>(mem);
    REQUIRE(mprotect(base + page, page, PROT_NONE) == 0);     // after the first input
    REQUIRE(mprotect(base + 2 * page, page, PROT_READ) == 0); // c, read-only, ends the mapping
    const float s = -1.5F;
    for (std::size_t n = 0; n <= 40; ++n) {
        INFO("n = " << n);
        float* a = reinterpret_cast<float*>(base + page) - n;
        REQUIRE(mprotect(base + 2 * page, page, PROT_READ | PROT_WRITE) == 0);
        float* c = reinterpret_cast<float*>(base + 3 * page) - n;
        for (std::size_t i = 0; i < n; ++i) {
            a[i] = static_cast<float>(i) - 7.25F;
            c[i] = 0.5F * static_cast<float>(i % 5);
        }
        REQUIRE(mprotect(base + 2 * page, page, PROT_READ) == 0);
        // Outputs followed by sentinels that must survive.
        std::vector<float> out0(n + 32, 99.0F), out1(n + 32, 99.0F), stored(n + 32, 99.0F);
        const float* in[] = {a, &s, c};
        float* out[] = {out0.data(), out1.data(), stored.data()};
        kernel->run(in, out, n);
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(out0[i] == std::max(a[i] * s, 0.0F) + c[i]);
            CHECK(out1[i] == a[i] - c[i]);
            CHECK(stored[i] == a[i] * s);
        }
        for (std::size_t i = n; i < n + 32; ++i) {
            CHECK(out0[i] == 99.0F);
            CHECK(out1[i] == 99.0F);
            CHECK(stored[i] == 99.0F);
        }
    }
    munmap(mem, 3 * page);
}

TEST_CASE("PYNN_JIT_ISA names an instruction set this machine runs", "[compiler][jit]") {
    using compiler::jit::parse_isa;
    using compiler::jit::supports;
    CHECK(parse_isa("none") == Isa::None);
    CHECK_THROWS_WITH(parse_isa("sse9"), "PYNN_JIT_ISA=sse9: expected avx512, avx2 or none");
    CHECK_THROWS_AS(parse_isa(""), ValueError);
    for (const Isa isa : {Isa::Avx512, Isa::Avx2}) {
        const std::string upper = isa == Isa::Avx512 ? "AVX512" : "AVX2"; // any case
        if (supports(isa)) {
            CHECK(parse_isa(upper) == isa);
            const IsaScope scope(isa);
            CHECK(compiler::jit::isa() == isa);
        } else {
            CHECK_THROWS_WITH(parse_isa(upper), Catch::Contains("cannot run"));
            CHECK_THROWS_WITH(compiler::jit::set_isa(isa), Catch::Contains("cannot run"));
        }
    }
}

TEST_CASE("ops that write before their last read get a register of their own, or no code",
          "[compiler][jit]") {
    // maximum, minimum and leaky_relu write their destination before their last read of the
    // first operand. Here that operand dies at the op while `live` other values wait for a later
    // sum: from some count on every register is taken. The kernel must then be refused (nullptr,
    // the interpreter runs), never computed in the dying operand's register. out0 = op(-a, t0)
    // or leaky_relu(-a), out1 = t0 + ... + t_{live-1} with t0 = a + a, t_k = t_{k-1} + a.
    using namespace compiler::jit;
    const Isa isa = GENERATE(Isa::Avx512, Isa::Avx2);
    const IsaScope isa_scope(isa);
    if (!codegen_available()) {
        return;
    }
    INFO("generated for " << isa_name(compiler::jit::isa()));
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> a{2.0F, -3.0F, nan, 0.5F, -0.0F, 7.0F, -1.25F, 1e-3F, 4.0F, -8.0F, 3.0F};
    const std::size_t n = a.size();
    auto check = [](float got, float want) {
        if (std::isnan(want)) {
            CHECK(std::isnan(got));
        } else {
            CHECK(got == want);
        }
    };
    std::size_t compiled_at_most_pressure = 0;
    for (const OpCode op : {OpCode::Maximum, OpCode::Minimum, OpCode::LeakyRelu}) {
        for (std::size_t live = 1; live <= 32; ++live) {
            INFO("op " << static_cast<int>(op) << ", live " << live);
            Program p;
            p.scalar_input = {false};
            p.num_outputs = 2;
            const Value in{Value::Input, 0};
            auto temp = [](std::size_t k) { return Value{Value::Temp, k}; };
            p.instrs.push_back({OpCode::Add, 0.0F, {in, in}, temp(0)});
            for (std::size_t k = 1; k < live; ++k) {
                p.instrs.push_back({OpCode::Add, 0.0F, {temp(k - 1), in}, temp(k)});
            }
            const Value neg = temp(live);
            p.instrs.push_back({OpCode::Neg, 0.0F, {in}, neg});
            if (op == OpCode::LeakyRelu) {
                p.instrs.push_back({op, 0.5F, {neg}, {Value::Output, 0}});
            } else {
                p.instrs.push_back({op, 0.0F, {neg, temp(0)}, {Value::Output, 0}});
            }
            Value sum = temp(0);
            for (std::size_t k = 1; k < live; ++k) {
                const Value next = k + 1 == live ? Value{Value::Output, 1} : temp(live + k);
                p.instrs.push_back({OpCode::Add, 0.0F, {sum, temp(k)}, next});
                sum = next;
            }
            if (live == 1) {
                p.instrs.push_back({OpCode::Copy, 0.0F, {temp(0)}, {Value::Output, 1}});
            }
            const std::shared_ptr<const Kernel> kernel = compile(p);
            if (kernel == nullptr) {
                continue; // refused: the interpreter takes it
            }
            compiled_at_most_pressure = std::max(compiled_at_most_pressure, live);
            std::vector<float> out0(n, 99.0F), out1(n, 99.0F);
            const float* ins[] = {a.data()};
            float* outs[] = {out0.data(), out1.data()};
            kernel->run(ins, outs, n);
            for (std::size_t i = 0; i < n; ++i) {
                std::vector<float> t{a[i] + a[i]};
                for (std::size_t k = 1; k < live; ++k) {
                    t.push_back(t.back() + a[i]);
                }
                float total = t[0];
                for (std::size_t k = 1; k < live; ++k) {
                    total += t[k];
                }
                const float x = -a[i];
                float want = 0.0F;
                if (op == OpCode::LeakyRelu) {
                    want = x > 0.0F ? x : x * 0.5F;
                } else if (std::isnan(x) || std::isnan(t[0])) {
                    want = nan;
                } else {
                    want = op == OpCode::Maximum ? std::max(x, t[0]) : std::min(x, t[0]);
                }
                INFO("element " << i);
                check(out0[i], want);
                check(out1[i], total);
            }
        }
    }
    // The counts where registers run out were reached and passed (AVX2 has 11 for values,
    // AVX-512 28): the refusal, not a small program, is what is tested.
    CHECK(compiled_at_most_pressure >= 8);
    CHECK(compiled_at_most_pressure < 32);
}

TEST_CASE("generated code writes outputs over the input rows they replace", "[compiler][jit]") {
    // Note [Writing into a leaf]: out0 = a * s + c goes over a, out1 = c * s over c (each row's
    // last read is at or before the instruction writing over it), with the rows prefetched for
    // writing (Program::written_input). Lengths past the 2 KB prefetch distance and ragged ones.
    using namespace compiler::jit;
    const Isa isa = GENERATE(Isa::Avx512, Isa::Avx2);
    const IsaScope isa_scope(isa);
    INFO("generated for " << isa_name(compiler::jit::isa()));
    if (!codegen_available()) {
        return;
    }
    Program p = row_scalar_row_program();
    p.written_input = {true, false, true};
    p.instrs.push_back(
        {OpCode::Add, 0.0F, {{Value::Temp, 0}, {Value::Input, 2}}, {Value::Output, 0}});
    p.instrs.push_back(
        {OpCode::Mul, 0.0F, {{Value::Input, 2}, {Value::Input, 1}}, {Value::Output, 1}});
    const std::shared_ptr<const Kernel> kernel = compile(p);
    REQUIRE(kernel != nullptr);
    const float s = 0.75F;
    for (const std::size_t n : {0, 1, 15, 16, 17, 33, 511, 512, 513, 5000}) {
        INFO("n = " << n);
        std::vector<float> a(n), c(n);
        for (std::size_t i = 0; i < n; ++i) {
            a[i] = static_cast<float>(i % 97) - 40.5F;
            c[i] = 0.25F * static_cast<float>(i % 13);
        }
        const std::vector<float> a0 = a, c0 = c;
        const float* in[] = {a.data(), &s, c.data()};
        float* out[] = {a.data(), c.data()};
        kernel->run(in, out, n);
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(a[i] == a0[i] * s + c0[i]);
            CHECK(c[i] == c0[i] * s);
        }
    }
}

TEST_CASE("producer epilogues and streaming regions run the same compiled and interpreted",
          "[compiler][jit]") {
    FlagScope scope;
    const Isa isa = GENERATE(Isa::Avx512, Isa::Avx2);
    const IsaScope isa_scope(isa);
    INFO("generated for " << isa_name(compiler::jit::isa()));
    const bool can = compiler::jit::available();
    for (const int threads : {1, 3}) {
        Flags::set_num_threads(threads);
        INFO("threads " << threads);
        manual_seed(7);
        SECTION("a GEMM's epilogue, on blocks of rows") { // 300 rows: ragged blocks and parts
            const Tensor a = Tensor::randn({300, 120});
            const Tensor b = Tensor::randn({120, 70});
            const Tensor bias = Tensor::randn({70});
            CHECK(compare_compiled({relu(matmul(a, b) + bias) * 0.5}) == can);
        }
        SECTION("a convolution's epilogue, image by image") {
            const Tensor x = Tensor::randn({3, 2, 9, 9});
            const Tensor w = Tensor::randn({5, 2, 3, 3});
            const Tensor bias = reshape(Tensor::randn({5}), {5, 1, 1});
            CHECK(compare_compiled({leaky_relu(conv2d(x, w, 1, 1) + bias, 0.1) - 1.0}) == can);
        }
        SECTION("a region of 16 MB and more, written with streaming stores") {
            const Tensor x = Tensor::randn({4 * 1024 * 1024 + 37});
            CHECK(compare_compiled({maximum(x * 2.0 + 1.0, -x)}) == can);
        }
    }
}

TEST_CASE("a region with more scalars than AVX-512 registers is interpreted there",
          "[compiler][jit]") {
    FlagScope scope;
    const Isa isa = GENERATE(Isa::Avx512, Isa::Avx2);
    const IsaScope isa_scope(isa);
    INFO("generated for " << isa_name(compiler::jit::isa()));
    manual_seed(8);
    Tensor out = Tensor::randn({50});
    for (int k = 0; k < 30; ++k) { // 30 distinct scalar leaves, each read once
        out = out * Tensor::scalar(1.0 + 0.01 * k) + Tensor::scalar(0.001 * k);
    }
    // AVX2 code keeps scalars in stack slots, not registers: it compiles them all.
    CHECK(compare_compiled({out}) == (compiler::jit::isa() == Isa::Avx2));
}
