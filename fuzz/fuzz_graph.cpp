// libFuzzer target for the graph builder, the compiler and the runtime. The input is read as a
// program: each step either makes a leaf (random small shape, float32 or float64, random values
// with the odd NaN and infinity), applies an op of pynn/math.hpp to tensors picked from a pool
// (so shapes and dtypes often do not fit), or evaluates, differentiates or runs a ComputeGraph.
// An op that does not fit must throw pynn::Error from its builder; anything else (a crash, a
// sanitizer report, another exception, an "internal error", a value of the wrong shape) is a bug.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>
#include <xtensor/xarray.hpp>

#include <pynn/compute_graph.hpp>
#include <pynn/error.hpp>
#include <pynn/flags.hpp>
#include <pynn/math.hpp>
#include <pynn/tensor.hpp>

#include "fuzz_support.hpp"

namespace {

using pynn::DType;
using pynn::Shape;
using pynn::Tensor;

// Bounds that keep one input to milliseconds: tensors that may be evaluated hold at most
// max_numel values and have at most max_rank axes. Builders still see larger shapes (reshape,
// broadcast_to and the geometry of conv and pooling get the odd huge number); results beyond the
// bounds are only checked, never evaluated.
constexpr std::size_t max_numel = 4096;
constexpr std::size_t max_rank = 6;
constexpr std::size_t max_pool = 16;
constexpr std::size_t max_steps = 48;
constexpr std::size_t max_plan_cache_entries = 256;

// PYNN_FUZZ_TRACE=1 prints each step, its operands and its result: how a reproducer is read.
bool g_trace = false;

void trace(const char* format, const std::string& a, const std::string& b = {}) {
    if (g_trace) {
        std::fprintf(stderr, format, a.c_str(), b.c_str());
    }
}

std::string describe(const Tensor& t) {
    return t.defined() ? pynn::to_string(t.shape()) + " " + pynn::to_string(t.dtype()) +
                             (t.requires_grad() ? " grad" : "")
                       : "undefined";
}

[[noreturn]] void bug(const std::string& what) {
    std::fprintf(stderr, "fuzz_graph: %s\n", what.c_str());
    std::abort();
}

// The product of the dimensions, saturating at SIZE_MAX; zero dimensions count as one, which is
// what strides are made of.
std::size_t extent(const Shape& s) {
    std::size_t n = 1;
    for (std::size_t d : s) {
        const std::size_t f = std::max<std::size_t>(d, 1);
        if (n > std::numeric_limits<std::size_t>::max() / f) {
            return std::numeric_limits<std::size_t>::max();
        }
        n *= f;
    }
    return n;
}

std::size_t checked_numel(const Shape& s) {
    return std::any_of(s.begin(), s.end(), [](std::size_t d) { return d == 0; }) ? 0 : extent(s);
}

class Program {
public:
    explicit Program(FuzzedDataProvider& in) : m_in(in) {}

    void run() {
        const std::uint8_t switches = m_in.ConsumeIntegral<std::uint8_t>();
        pynn::Flags::set_fusion((switches & 1) == 0);
        pynn::Flags::set_simplify((switches & 2) == 0);
        pynn::Flags::set_memory_reuse((switches & 4) == 0);
        m_dtype = (switches & 8) != 0 ? DType::Float64 : DType::Float32;
        trace("switches: %s, %s\n",
              std::string("fusion ") + (pynn::Flags::fusion() ? "on" : "off") + ", simplify " +
                  (pynn::Flags::simplify() ? "on" : "off") + ", memory reuse " +
                  (pynn::Flags::memory_reuse() ? "on" : "off"),
              pynn::to_string(m_dtype) + ((switches & 0x70) == 0x70 ? ", no grad" : ""));
        std::optional<pynn::NoGradGuard> no_grad;
        if ((switches & 0x70) == 0x70) {
            no_grad.emplace();
        }
        add_leaf();
        for (std::size_t step = 0; step < max_steps && m_in.remaining_bytes() > 0; ++step) {
            try {
                one_step();
            } catch (const pynn::Error& e) {
                trace("  throws: %s%s\n", e.what());
                pynn_fuzz::check_user_error(e);
            }
        }
        // Whatever was built last is evaluated, so every input runs the compiler at least once.
        try {
            trace("final: evaluate %s%s\n", describe(m_pool.back()));
            evaluate(m_pool.back());
        } catch (const pynn::Error& e) {
            trace("  throws: %s%s\n", e.what());
            pynn_fuzz::check_user_error(e);
        }
    }

private:
    // --- random parameters ---

    DType dtype() {
        // Mostly the program's dtype (also once the input is used up, when every value read is
        // its range's minimum); the other one now and then, to hit the dtype checks.
        if (m_in.ConsumeIntegralInRange<int>(0, 9) == 9) {
            return m_dtype == DType::Float32 ? DType::Float64 : DType::Float32;
        }
        return m_dtype;
    }

    std::size_t small_dim() {
        switch (m_in.ConsumeIntegralInRange<int>(0, 15)) {
        case 0: return 0;
        case 1:
        case 2:
        case 3:
        case 4: return 1;
        case 13: return m_in.ConsumeIntegralInRange<std::size_t>(5, 16);
        case 14: return m_in.ConsumeIntegralInRange<std::size_t>(17, 64);
        case 15: return m_in.ConsumeIntegralInRange<std::size_t>(65, 4096);
        default: return m_in.ConsumeIntegralInRange<std::size_t>(2, 4);
        }
    }

    // A dimension for a shape argument: like small_dim, but sometimes anything at all.
    std::size_t any_dim() {
        if (m_in.ConsumeIntegralInRange<int>(0, 15) == 0) {
            static constexpr std::size_t huge[] = {std::size_t{1} << 31, std::size_t{1} << 32,
                                                   std::size_t{1} << 62, std::size_t{1} << 63,
                                                   std::numeric_limits<std::size_t>::max()};
            return m_in.ConsumeBool() ? m_in.PickValueInArray(huge)
                                      : m_in.ConsumeIntegral<std::size_t>();
        }
        return small_dim();
    }

    Shape leaf_shape() {
        Shape s(m_in.ConsumeIntegralInRange<std::size_t>(0, max_rank));
        for (auto& d : s) {
            d = small_dim();
        }
        // Shrink to the element bound (counting zero-sized axes as one), from the first axis on.
        for (std::size_t i = 0; i < s.size() && extent(s) > max_numel; ++i) {
            s[i] = std::min<std::size_t>(s[i], 2);
        }
        for (std::size_t i = 0; i < s.size() && extent(s) > max_numel; ++i) {
            s[i] = 1;
        }
        return s;
    }

    Shape any_shape() {
        Shape s(m_in.ConsumeIntegralInRange<std::size_t>(0, max_rank + 1));
        for (auto& d : s) {
            d = any_dim();
        }
        return s;
    }

    int axis() {
        const int a = m_in.ConsumeIntegralInRange<int>(0, 31) == 0
                          ? m_in.ConsumeIntegral<int>()
                          : m_in.ConsumeIntegralInRange<int>(-7, 7);
        trace("  axis %s%s\n", std::to_string(a));
        return a;
    }

    std::vector<int> axes() {
        std::vector<int> a(m_in.ConsumeIntegralInRange<std::size_t>(0, 4));
        for (auto& v : a) {
            v = axis();
        }
        return a;
    }

    std::int64_t bound() {
        std::int64_t b = 0;
        switch (m_in.ConsumeIntegralInRange<int>(0, 9)) {
        case 0: b = std::numeric_limits<std::int64_t>::min(); break;
        case 1: b = std::numeric_limits<std::int64_t>::max(); break;
        case 2: b = m_in.ConsumeIntegral<std::int64_t>(); break;
        default: b = m_in.ConsumeIntegralInRange<std::int64_t>(-6, 6); break;
        }
        trace("  bound %s%s\n", std::to_string(b));
        return b;
    }

    std::size_t geometry(std::size_t low, std::size_t high) {
        std::size_t g = 0;
        if (m_in.ConsumeIntegralInRange<int>(0, 15) == 0) {
            g = m_in.ConsumeBool() ? std::numeric_limits<std::size_t>::max() - 1
                                   : m_in.ConsumeIntegral<std::size_t>();
        } else {
            g = m_in.ConsumeIntegralInRange<std::size_t>(low, high);
        }
        trace("  geometry %s%s\n", std::to_string(g));
        return g;
    }

    double number() {
        static constexpr double specials[] = {0.0,
                                              -0.0,
                                              1.0,
                                              -1.0,
                                              0.5,
                                              2.0,
                                              1e-30,
                                              1e30,
                                              1e300,
                                              -1e300,
                                              std::numeric_limits<double>::infinity(),
                                              -std::numeric_limits<double>::infinity(),
                                              std::numeric_limits<double>::quiet_NaN(),
                                              std::numeric_limits<double>::denorm_min()};
        const double v = m_in.ConsumeBool() ? m_in.PickValueInArray(specials)
                                            : m_in.ConsumeFloatingPointInRange<double>(-8.0, 8.0);
        trace("  number %s%s\n", std::to_string(v));
        return v;
    }

    // --- the pool ---

    const Tensor& pick() {
        const std::size_t i = m_in.ConsumeIntegralInRange<std::size_t>(0, m_pool.size() - 1);
        trace("  operand #%s: %s\n", std::to_string(i), describe(m_pool[i]));
        return m_pool[i];
    }

    // Every op's result passes here: its shape must be one that strides can address (an op that
    // builds anything larger should have thrown), and it joins the pool if it is small enough to
    // evaluate.
    void keep(const Tensor& t) {
        if (!t.defined()) {
            bug("an op returned an undefined tensor");
        }
        const Shape& s = t.shape();
        if (extent(s) > static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max())) {
            bug("an op built a tensor of shape " + pynn::to_string(s) + ", whose strides overflow");
        }
        if (checked_numel(s) > max_numel || s.size() > max_rank + 2 || extent(s) > (1U << 24)) {
            trace("  -> %s (too large to keep)\n", describe(t));
            return;
        }
        if (m_pool.size() < max_pool) {
            m_pool.push_back(t);
        } else {
            m_pool[m_in.ConsumeIntegralInRange<std::size_t>(0, max_pool - 1)] = t;
        }
        trace("  -> %s\n", describe(t));
    }

    void add_leaf() { keep(make_leaf(leaf_shape(), dtype())); }

    Tensor make_leaf(const Shape& shape, DType dt) {
        const std::size_t n = checked_numel(shape);
        std::mt19937 gen(m_in.ConsumeIntegral<std::uint32_t>());
        std::normal_distribution<double> normal(0.0, 2.0);
        const int special_rate = m_in.ConsumeIntegralInRange<int>(0, 3); // 0: none
        const double special = number();
        std::vector<double> v(n);
        for (auto& x : v) {
            x = special_rate > 0 && gen() % (16U >> special_rate) == 0 ? special : normal(gen);
        }
        Tensor t;
        if (dt == DType::Float32) {
            std::vector<float> f(v.begin(), v.end());
            t = Tensor::from_values(f.data(), shape);
        } else {
            t = Tensor::from_values(v.data(), shape);
        }
        if (m_in.ConsumeBool()) {
            t.set_requires_grad();
        }
        return t;
    }

    // A leaf that fits `x` for a matmul or convolution, so that those ops also get valid operands.
    Tensor fitting_matmul_operand(const Tensor& x) {
        Shape s{x.dim() >= 1 ? x.shape().back() : 1, small_dim()};
        if (x.dim() > 2 && m_in.ConsumeBool()) {
            s.insert(s.begin(), x.shape()[x.dim() - 3]);
        }
        return make_leaf(checked_numel(s) <= max_numel ? s : Shape{1, 1}, dtype());
    }

    Tensor fitting_conv_weight(const Tensor& x) {
        const std::size_t c = x.dim() == 4 ? x.shape()[1] : small_dim();
        Shape s{m_in.ConsumeIntegralInRange<std::size_t>(1, 4), c,
                m_in.ConsumeIntegralInRange<std::size_t>(1, 3),
                m_in.ConsumeIntegralInRange<std::size_t>(1, 3)};
        return make_leaf(checked_numel(s) <= max_numel ? s : Shape{1, 1, 1, 1}, dtype());
    }

    // A shape with x's number of elements (a valid reshape), or sometimes any shape at all.
    Shape reshape_target(const Tensor& x) {
        if (m_in.ConsumeIntegralInRange<int>(0, 3) == 0) {
            return any_shape();
        }
        std::size_t n = x.numel();
        Shape s;
        while (s.size() < max_rank && m_in.ConsumeBool()) {
            const std::size_t d = small_dim();
            if (d != 0 && n % d == 0) {
                s.push_back(d);
                n /= d;
            } else if (n == 0) {
                s.push_back(d);
            }
        }
        if (n != 1 || s.empty() || m_in.ConsumeBool()) {
            s.insert(s.begin() + static_cast<std::ptrdiff_t>(
                                     m_in.ConsumeIntegralInRange<std::size_t>(0, s.size())),
                     n);
        }
        return s;
    }

    // x's shape with axes prepended and some size-1 axes grown (valid), or any shape.
    Shape broadcast_target(const Tensor& x) {
        if (m_in.ConsumeIntegralInRange<int>(0, 3) == 0) {
            return any_shape();
        }
        Shape s = x.shape();
        for (auto& d : s) {
            if (d == 1 && m_in.ConsumeBool()) {
                d = small_dim();
            }
        }
        while (s.size() < max_rank + 1 && m_in.ConsumeBool()) {
            s.insert(s.begin(), small_dim());
        }
        return s;
    }

    std::vector<Tensor> several() {
        std::vector<Tensor> xs(m_in.ConsumeIntegralInRange<std::size_t>(1, 4));
        for (auto& x : xs) {
            x = pick();
        }
        return xs;
    }

    // --- running ---

    template <class T>
    void check_values(const Tensor& t) {
        const xt::xarray<T> v = t.values<T>();
        if (!std::equal(v.shape().begin(), v.shape().end(), t.shape().begin(), t.shape().end())) {
            bug("values() of a tensor of shape " + pynn::to_string(t.shape()) +
                " have another shape");
        }
    }

    void evaluate(const Tensor& t) {
        // values<T>() for the tensor's dtype, now and then for the other one (a DTypeError).
        const bool as_double = (t.dtype() == DType::Float64) != (dtype() != m_dtype);
        if (as_double) {
            check_values<double>(t);
        } else {
            check_values<float>(t);
        }
    }

    void differentiate(const Tensor& t) {
        const Tensor loss = m_in.ConsumeBool() ? pynn::sum(t) : pynn::mean(t);
        loss.backward();
        for (const Tensor& x : m_pool) {
            if (x.is_leaf() && x.has_grad()) {
                const Tensor g = x.grad();
                if (g.shape() != x.shape() || g.dtype() != x.dtype()) {
                    bug("the gradient of a leaf " + pynn::to_string(x.shape()) + " " +
                        pynn::to_string(x.dtype()) + " is " + pynn::to_string(g.shape()) + " " +
                        pynn::to_string(g.dtype()));
                }
                evaluate(g);
            }
        }
        if (m_in.ConsumeBool()) {
            loss.zero_grad();
        }
    }

    void one_step() {
        using namespace pynn;
        constexpr int op_count = 40;
        const int op = m_in.ConsumeIntegralInRange<int>(0, op_count - 1);
        // clang-format off
        static constexpr const char* names[] = {
            "leaf", "scalar leaf", "add", "sub", "mul", "div", "pow", "maximum/minimum",
            "compare", "with a scalar", "unary", "where", "sum", "mean", "max", "min", "argmax",
            "matmul", "conv2d", "pool", "reshape", "flatten", "transpose", "permute",
            "broadcast_to", "slice", "concat", "stack", "(log_)softmax", "one_hot", "detach",
            "Tensor::sum/mean", "Tensor::slice", "evaluate", "evaluate", "backward",
            "ComputeGraph", "item", "backward(seed)", "assign"};
        // clang-format on
        static_assert(std::size(names) == op_count, "one name per case below");
        trace("step: %s%s\n", names[op]);
        const Tensor a = pick(); // a copy: keep() may replace the pool's slot
        switch (op) {
        case 0: add_leaf(); break;
        case 1: keep(make_leaf({}, dtype())); break;
        case 2: keep(add(a, pick())); break;
        case 3: keep(sub(a, pick())); break;
        case 4: keep(mul(a, pick())); break;
        case 5: keep(div(a, pick())); break;
        case 6: keep(m_in.ConsumeBool() ? pow(a, pick()) : pow(a, number())); break;
        case 7: keep(m_in.ConsumeBool() ? maximum(a, pick()) : minimum(a, pick())); break;
        case 8: {
            const Tensor b = pick();
            switch (m_in.ConsumeIntegralInRange<int>(0, 5)) {
            case 0: keep(eq(a, b)); break;
            case 1: keep(ne(a, b)); break;
            case 2: keep(lt(a, b)); break;
            case 3: keep(le(a, b)); break;
            case 4: keep(gt(a, b)); break;
            default: keep(ge(a, b)); break;
            }
            break;
        }
        case 9: {
            const double s = number();
            switch (m_in.ConsumeIntegralInRange<int>(0, 5)) {
            case 0: keep(a + s); break;
            case 1: keep(s - a); break;
            case 2: keep(a * s); break;
            case 3: keep(s / a); break;
            case 4: keep(a > s); break;
            default: keep(a <= s); break;
            }
            break;
        }
        case 10: {
            const int kind = m_in.ConsumeIntegralInRange<int>(0, 13);
            trace("  unary kind %s (neg exp log sqrt square abs sign tanh sigmoid relu leaky_relu "
                  "gelu - clip)%s\n",
                  std::to_string(kind));
            switch (kind) {
            case 0: keep(neg(a)); break;
            case 1: keep(exp(a)); break;
            case 2: keep(log(a)); break;
            case 3: keep(sqrt(a)); break;
            case 4: keep(square(a)); break;
            case 5: keep(abs(a)); break;
            case 6: keep(sign(a)); break;
            case 7: keep(tanh(a)); break;
            case 8: keep(sigmoid(a)); break;
            case 9: keep(relu(a)); break;
            case 10: keep(leaky_relu(a, number())); break;
            case 11: keep(gelu(a)); break;
            case 12: keep(-a); break;
            default: {
                const double lo = number();
                keep(clip(a, lo, number()));
                break;
            }
            }
            break;
        }
        case 11: {
            const Tensor b = pick();
            keep(where(m_in.ConsumeBool() ? gt(a, b) : pick(), a, b));
            break;
        }
        case 12: keep(sum(a, axes(), m_in.ConsumeBool())); break;
        case 13: keep(mean(a, axes(), m_in.ConsumeBool())); break;
        case 14: keep(max(a, axes(), m_in.ConsumeBool())); break;
        case 15: keep(min(a, axes(), m_in.ConsumeBool())); break;
        case 16: keep(argmax(a, axis(), m_in.ConsumeBool())); break;
        case 17: keep(matmul(a, m_in.ConsumeBool() ? fitting_matmul_operand(a) : pick())); break;
        case 18: {
            const Tensor w = m_in.ConsumeBool() ? fitting_conv_weight(a) : pick();
            const std::size_t stride = geometry(1, 3);
            keep(conv2d(a, w, stride, geometry(0, 2)));
            break;
        }
        case 19: {
            const std::size_t kernel = geometry(1, 3);
            const std::size_t stride = geometry(0, 3);
            keep(m_in.ConsumeBool() ? max_pool2d(a, kernel, stride)
                                    : avg_pool2d(a, kernel, stride));
            break;
        }
        case 20: {
            const Shape target = reshape_target(a);
            trace("  to %s%s\n", pynn::to_string(target));
            keep(reshape(a, target));
            break;
        }
        case 21: keep(flatten(a, axis())); break;
        case 22: {
            const int a0 = axis();
            keep(m_in.ConsumeBool() ? transpose(a) : transpose(a, a0, axis()));
            break;
        }
        case 23: {
            std::vector<int> perm(a.dim());
            for (std::size_t i = 0; i < perm.size(); ++i) {
                perm[i] = static_cast<int>(i);
            }
            std::shuffle(perm.begin(), perm.end(),
                         std::mt19937(m_in.ConsumeIntegral<std::uint32_t>()));
            if (m_in.ConsumeIntegralInRange<int>(0, 3) == 0) {
                perm = axes(); // usually not a permutation
            } else if (!perm.empty() && m_in.ConsumeBool()) {
                perm[0] -= static_cast<int>(a.dim()); // a negative spelling of the same axis
            }
            keep(permute(a, perm));
            break;
        }
        case 24: {
            const Shape target = broadcast_target(a);
            trace("  to %s%s\n", pynn::to_string(target));
            keep(broadcast_to(a, target));
            break;
        }
        case 25: {
            const int ax = axis();
            const std::int64_t b = bound();
            const std::int64_t e = bound();
            const std::int64_t step = m_in.ConsumeIntegralInRange<int>(0, 7) == 0
                                          ? bound()
                                          : m_in.ConsumeIntegralInRange<std::int64_t>(1, 3);
            keep(slice(a, ax, b, e, step));
            break;
        }
        case 26: keep(concat(several(), axis())); break;
        case 27: keep(stack(several(), axis())); break;
        case 28: keep(m_in.ConsumeBool() ? softmax(a, axis()) : log_softmax(a, axis())); break;
        case 29: keep(one_hot(a, m_in.ConsumeIntegralInRange<std::size_t>(0, 12))); break;
        case 30: keep(a.detach()); break;
        case 31: keep(m_in.ConsumeBool() ? a.sum() : a.mean()); break;
        case 32: keep(a.slice(bound(), bound())); break;
        case 33:
        case 34: evaluate(a); break;
        case 35: differentiate(a); break;
        case 36: {
            ComputeGraph g(several());
            g.run();
            if (m_in.ConsumeBool()) {
                (void)g.to_string();
            }
            break;
        }
        case 37: {
            const double v = a.item();
            (void)v;
            break;
        }
        case 38: {
            // backward with an explicit seed, possibly of the wrong shape or dtype
            const Tensor seed = m_in.ConsumeBool() ? make_leaf(a.shape(), dtype()) : pick();
            a.backward(seed);
            break;
        }
        default: {
            // assign into a leaf, possibly from a mismatched source
            Tensor target = a;
            target.assign(pick());
            break;
        }
        }
    }

    FuzzedDataProvider& m_in;
    DType m_dtype = DType::Float32;
    std::vector<Tensor> m_pool;
};

} // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    const char* trace = std::getenv("PYNN_FUZZ_TRACE");
    g_trace = trace != nullptr && std::string(trace) == "1";
    pynn::Flags::set_num_threads(1); // one thread: reproducible, and no BLAS thread pool to spin
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    Program(in).run();
    // The plan cache keeps one plan per graph structure; the fuzzer makes endless structures.
    if (pynn::plan_cache_stats().entries > max_plan_cache_entries) {
        pynn::clear_plan_cache();
    }
    return 0;
}
