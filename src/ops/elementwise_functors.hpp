// The math of each elementwise primitive, written once for scalars and xsimd batches. The map
// kernel calls them row by row; a fused kernel will call them tile by tile.
#pragma once

#include <cmath>
#include <type_traits>

#include <xsimd/xsimd.hpp>

namespace pynn::functors {

// select() for both scalars (bool) and batches (batch_bool).
template <class T>
T pick(bool cond, const T& a, const T& b) {
    return cond ? a : b;
}
template <class T, class A>
xsimd::batch<T, A> pick(const xsimd::batch_bool<T, A>& cond, const xsimd::batch<T, A>& a,
                        const xsimd::batch<T, A>& b) {
    return xsimd::select(cond, a, b);
}

// Scalar math functions next to xsimd's batch ones, so `fn(x)` resolves for both.
using std::abs;
using std::exp;
using std::isnan;
using std::log;
using std::max;
using std::min;
using std::pow;
using std::sqrt;
using std::tanh;
using xsimd::abs;
using xsimd::exp;
using xsimd::isnan;
using xsimd::log;
using xsimd::max;
using xsimd::min;
using xsimd::pow;
using xsimd::sqrt;
using xsimd::tanh;

struct CopyF {
    template <class V>
    V operator()(const V& x) const {
        return x;
    }
};
struct AddF {
    template <class V>
    V operator()(const V& a, const V& b) const {
        return a + b;
    }
};
struct SubF {
    template <class V>
    V operator()(const V& a, const V& b) const {
        return a - b;
    }
};
struct MulF {
    template <class V>
    V operator()(const V& a, const V& b) const {
        return a * b;
    }
};
struct DivF {
    template <class V>
    V operator()(const V& a, const V& b) const {
        return a / b;
    }
};
struct PowF {
    template <class V>
    V operator()(const V& a, const V& b) const {
        return pow(a, b);
    }
};
// maximum/minimum propagate NaN from either operand, as torch.maximum/minimum do; otherwise
// a > b ? a : b, which is x86's maxps rule (the second operand on a tie, so max(+0, -0) is -0)
// in SIMD bodies and scalar tails alike. (std::max orders NaN and ties the other way.)
struct MaximumF {
    template <class V>
    V operator()(const V& a, const V& b) const {
        return pick(isnan(a), a, pick(a > b, a, b));
    }
};
struct MinimumF {
    template <class V>
    V operator()(const V& a, const V& b) const {
        return pick(isnan(a), a, pick(a < b, a, b));
    }
};
struct NegF {
    template <class V>
    V operator()(const V& x) const {
        if constexpr (std::is_floating_point_v<V>) {
            return -x;
        } else { // flips the sign bit as -x does on scalars (xsimd's AVX-512 -x is 0 - x: +0)
            return x ^ V(-0.0);
        }
    }
};
struct ExpF {
    template <class V>
    V operator()(const V& x) const {
        return exp(x);
    }
};
struct LogF {
    template <class V>
    V operator()(const V& x) const {
        return log(x);
    }
};
struct SqrtF {
    template <class V>
    V operator()(const V& x) const {
        return sqrt(x);
    }
};
struct AbsF {
    template <class V>
    V operator()(const V& x) const {
        return abs(x);
    }
};
struct SignF {
    template <class V>
    V operator()(const V& x) const {
        const V zero(0), one(1);
        return pick(x > zero, one, zero) - pick(x < zero, one, zero);
    }
};
struct TanhF {
    template <class V>
    V operator()(const V& x) const {
        return tanh(x);
    }
};
struct SigmoidF {
    template <class V>
    V operator()(const V& x) const {
        const V one(1);
        return one / (one + exp(-x));
    }
};
struct ReluF { // 0 > x ? 0 : x, i.e. maxps(0, x) as torch.relu: NaN stays NaN, -0 stays -0
    template <class V>
    V operator()(const V& x) const {
        return pick(V(0) > x, V(0), x);
    }
};
template <class T>
struct LeakyReluF {
    T slope;
    template <class V>
    V operator()(const V& x) const {
        return pick(x > V(0), x, x * V(slope));
    }
};
// Comparisons give 1 or 0 in the operands' type.
#define PYNN_COMPARE_FUNCTOR(NAME, OP)                                                             \
    struct NAME {                                                                                  \
        template <class V>                                                                         \
        V operator()(const V& a, const V& b) const {                                               \
            return pick(a OP b, V(1), V(0));                                                       \
        }                                                                                          \
    };
PYNN_COMPARE_FUNCTOR(EqF, ==)
// Not equal is "not ==", so NaN != x holds as in IEEE and PyTorch: xsimd's AVX-512 `!=` is an
// ordered compare (false for NaN), its SSE/AVX one and scalar C++ are not.
struct NeF {
    template <class V>
    V operator()(const V& a, const V& b) const {
        return pick(a == b, V(0), V(1));
    }
};
PYNN_COMPARE_FUNCTOR(LtF, <)
PYNN_COMPARE_FUNCTOR(LeF, <=)
PYNN_COMPARE_FUNCTOR(GtF, >)
PYNN_COMPARE_FUNCTOR(GeF, >=)
#undef PYNN_COMPARE_FUNCTOR
struct WhereF {
    template <class V>
    V operator()(const V& cond, const V& a, const V& b) const {
        return pick(cond == V(0), b, a); // NaN counts as nonzero (see NeF)
    }
};

} // namespace pynn::functors
