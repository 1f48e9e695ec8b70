// conv2d, max_pool2d and avg_pool2d: builders with shape rules, kernels and backward rules.
#include "ops/conv.hpp"

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "kernels/conv2d.hpp"
#include "kernels/gemm.hpp"
#include "runtime/parallel.hpp"
#include "ops/builder.hpp"
#include "pynn/math.hpp"

namespace pynn {

namespace {

std::string geo_string(std::size_t stride, std::size_t padding) {
    return "stride=" + std::to_string(stride) + " padding=" + std::to_string(padding);
}

kernels::ConvShape conv_shape(const Shape& x, const Shape& w, const Conv2dGeometry& g) {
    kernels::ConvShape s{x[1], x[2], x[3], w[2], w[3], g.stride, g.padding, 0, 0};
    s.oh = (s.h + 2 * s.pad - s.kh) / s.stride + 1;
    s.ow = (s.w + 2 * s.pad - s.kw) / s.stride + 1;
    return s;
}

// Scratch for im2col columns, reused across calls on this thread.
template <class T>
T* scratch(std::size_t n) {
    thread_local std::vector<T> buffer;
    if (buffer.size() < n) {
        buffer.resize(n);
    }
    return buffer.data();
}

std::vector<Tensor> no_second_order(std::string_view op) {
    throw Error(std::string(op) + ": second-order gradients of convolution and pooling are not "
                                  "supported");
}

} // namespace

// --- conv2d ---
Tensor conv2d(const Tensor& x, const Tensor& w, std::size_t stride, std::size_t padding) {
    constexpr std::string_view name = Conv2d::name;
    check_defined(name, x, "x");
    check_defined(name, w, "weight");
    check_same_dtype(name, x, w, "x", "weight");
    PYNN_CHECK(x.dim() == 4, ShapeError, "conv2d: x ", to_string(x.shape()),
               " must be (batch, channels, height, width)");
    PYNN_CHECK(w.dim() == 4, ShapeError, "conv2d: weight ", to_string(w.shape()),
               " must be (out_channels, in_channels, kernel_h, kernel_w)");
    PYNN_CHECK(x.shape()[1] == w.shape()[1], ShapeError, "conv2d: x ", to_string(x.shape()),
               " and weight ", to_string(w.shape()), ": input channels ", x.shape()[1], " and ",
               w.shape()[1], " differ");
    PYNN_CHECK(stride > 0, ValueError, "conv2d: stride must be positive");
    // The kernels index the padded image with ptrdiff_t, adding padding and stride to positions:
    // the padded size must not wrap around (it did for a padding near 2^63), and the sums must
    // stay far from 2^63.
    constexpr auto max_size =
        static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max() / 4);
    const std::size_t larger = std::min(max_size, std::max(x.shape()[2], x.shape()[3]));
    PYNN_CHECK(padding <= (max_size - larger) / 2, ValueError, "conv2d: padding ", padding,
               " is too large for x ", to_string(x.shape()));
    const std::size_t h = x.shape()[2] + 2 * padding;
    const std::size_t wd = x.shape()[3] + 2 * padding;
    PYNN_CHECK(h >= w.shape()[2] && wd >= w.shape()[3], ShapeError, "conv2d: x ",
               to_string(x.shape()), " with padding ", padding, " is smaller than the kernel of ",
               to_string(w.shape()));
    // A stride past the last window position gives one output row (column), as any larger one
    // does; clamping it there keeps it in that range too (a stride beyond 2^63 read outside x).
    const std::size_t last = std::max(h - w.shape()[2], wd - w.shape()[3]) + 1;
    Conv2dGeometry geo{std::min(stride, last), padding};
    kernels::ConvShape s = conv_shape(x.shape(), w.shape(), geo);
    return make_tensor(Conv2d{geo}, {x, w}, {x.shape()[0], w.shape()[0], s.oh, s.ow}, x.dtype());
}
std::string Conv2d::attributes() const { return geo_string(geo.stride, geo.padding); }
void Conv2d::forward(const KernelArgs& args, const PartSink* sink) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        const Shape& xs = args.in_shape(0);
        const Shape& ws = args.in_shape(1);
        kernels::ConvShape s = conv_shape(xs, ws, geo);
        const std::size_t ckk = s.c * s.kh * s.kw;
        const std::size_t plane = s.oh * s.ow;
        const std::size_t o = ws[0];
        // One image per task; each thread has its own im2col scratch.
        runtime::parallel_for(xs[0], [&](std::size_t n) {
            T* cols = scratch<T>(ckk * plane);
            kernels::im2col<T>(s, args.input<T>(0) + n * s.c * s.h * s.w, cols);
            T* image = sink != nullptr ? static_cast<T*>(sink->out(n, n + 1))
                                       : args.output<T>() + n * o * plane;
            kernels::gemm<T>(false, false, o, plane, ckk, args.input<T>(1), cols, image);
            if (sink != nullptr) {
                sink->done(n, n + 1, image);
            }
        });
    });
}
std::vector<Tensor> Conv2d::backward(const GradArgs& g) const {
    const Tensor& x = g.inputs[0];
    const Tensor& w = g.inputs[1];
    Tensor grad_x = make_tensor(Conv2dGradInput{geo, x.shape()}, {w, g.grad_out}, x.shape(),
                                x.dtype());
    Tensor grad_w = make_tensor(Conv2dGradWeight{geo, w.shape()}, {x, g.grad_out}, w.shape(),
                                w.dtype());
    return {grad_x, grad_w};
}

std::string Conv2dGradInput::attributes() const {
    return geo_string(geo.stride, geo.padding) + " shape=" + to_string(input_shape);
}
void Conv2dGradInput::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        const Shape& ws = args.in_shape(0);
        kernels::ConvShape s = conv_shape(input_shape, ws, geo);
        const std::size_t ckk = s.c * s.kh * s.kw;
        const std::size_t plane = s.oh * s.ow;
        const std::size_t o = ws[0];
        T* out = args.output<T>();
        runtime::parallel_for(input_shape[0], [&](std::size_t n) {
            T* image = out + n * s.c * s.h * s.w;
            std::fill_n(image, s.c * s.h * s.w, T(0));
            // cols (CKK, P) = w^T (CKK, O) @ grad_out[n] (O, P), then fold back into the image.
            T* cols = scratch<T>(ckk * plane);
            kernels::gemm<T>(true, false, ckk, plane, o, args.input<T>(0),
                             args.input<T>(1) + n * o * plane, cols);
            kernels::col2im<T>(s, cols, image);
        });
    });
}
std::vector<Tensor> Conv2dGradInput::backward(const GradArgs&) const {
    return no_second_order(name);
}

std::string Conv2dGradWeight::attributes() const {
    return geo_string(geo.stride, geo.padding) + " shape=" + to_string(weight_shape);
}
void Conv2dGradWeight::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        const Shape& xs = args.in_shape(0);
        kernels::ConvShape s = conv_shape(xs, weight_shape, geo);
        const std::size_t ckk = s.c * s.kh * s.kw;
        const std::size_t plane = s.oh * s.ow;
        const std::size_t o = weight_shape[0];
        T* out = args.output<T>();
        const std::size_t wn = numel(weight_shape);
        // Images in contiguous blocks, one per thread; block 0 sums into out, the others into
        // partial sums added afterwards in block order (the same result every run).
        const std::size_t blocks = std::max<std::size_t>(
            1, std::min(runtime::available_threads(), xs[0]));
        std::vector<T> partial((blocks - 1) * wn);
        std::fill_n(out, wn, T(0));
        runtime::parallel_for(blocks, [&](std::size_t b) {
            T* into = b == 0 ? out : partial.data() + (b - 1) * wn;
            T* cols = scratch<T>(ckk * plane);
            for (std::size_t n = b * xs[0] / blocks; n < (b + 1) * xs[0] / blocks; ++n) {
                kernels::im2col<T>(s, args.input<T>(0) + n * s.c * s.h * s.w, cols);
                // grad_w (O, CKK) += grad_out[n] (O, P) @ cols^T (P, CKK)
                kernels::gemm<T>(false, true, o, ckk, plane, args.input<T>(1) + n * o * plane,
                                 cols, into, /*accumulate=*/true);
            }
        });
        for (std::size_t b = 1; b < blocks; ++b) {
            const T* p = partial.data() + (b - 1) * wn;
            for (std::size_t i = 0; i < wn; ++i) {
                out[i] += p[i];
            }
        }
    });
}
std::vector<Tensor> Conv2dGradWeight::backward(const GradArgs&) const {
    return no_second_order(name);
}

// --- pooling ---
namespace {

Shape pool_shape(std::string_view op, const Tensor& x, const PoolGeometry& g) {
    PYNN_CHECK(x.dim() == 4, ShapeError, op, ": x ", to_string(x.shape()),
               " must be (batch, channels, height, width)");
    PYNN_CHECK(g.kernel > 0 && g.stride > 0, ValueError, op, ": kernel ", g.kernel,
               " and stride ", g.stride, " must be positive");
    PYNN_CHECK(x.shape()[2] >= g.kernel && x.shape()[3] >= g.kernel, ShapeError, op, ": x ",
               to_string(x.shape()), " is smaller than the ", g.kernel, "x", g.kernel, " window");
    return {x.shape()[0], x.shape()[1], (x.shape()[2] - g.kernel) / g.stride + 1,
            (x.shape()[3] - g.kernel) / g.stride + 1};
}

// Calls f(plane_index, oy, ox, window_origin_offset) for every output element.
template <class F>
void for_each_window(const Shape& in, const Shape& out, const PoolGeometry& g, F f) {
    const std::size_t planes = in[0] * in[1];
    for (std::size_t p = 0; p < planes; ++p) {
        for (std::size_t oy = 0; oy < out[2]; ++oy) {
            for (std::size_t ox = 0; ox < out[3]; ++ox) {
                f(p, (p * out[2] + oy) * out[3] + ox,
                  (p * in[2] + oy * g.stride) * in[3] + ox * g.stride);
            }
        }
    }
}

#if defined(__AVX512F__)
// One pair of input rows of the 2x2 pool, 8 windows (16 input columns) per step, for float.
// Lanes 2j and 2j+1 hold window j's left and right column; permute_ps(v, 0xB1) swaps them, so
// every lane sees its window's four values. The short rows of a small image (14 or 28 columns)
// defeat the compiler's vectorizer, hence the intrinsics (xsimd 8 has no lane permutes).
namespace avx512 {
constexpr __mmask16 kEven = 0x5555;
constexpr __mmask16 kOdd = 0xAAAA;

// Windows [j, j + n) of a row pair (n <= 8, the rest of the 16 lanes masked off): each lane's
// window's four values, in the order the generic loop visits them.
struct Window {
    std::size_t n;
    __mmask16 lanes;
    __m512 a, b, c, d;
    Window(const float* row0, const float* row1, std::size_t j, std::size_t ow)
        : n(std::min<std::size_t>(8, ow - j)),
          lanes(static_cast<__mmask16>((1U << (2 * n)) - 1U)) {
        const __m512 r0 = _mm512_maskz_loadu_ps(lanes, row0 + 2 * j);
        const __m512 r1 = _mm512_maskz_loadu_ps(lanes, row1 + 2 * j);
        const __m512 s0 = _mm512_permute_ps(r0, 0xB1);
        const __m512 s1 = _mm512_permute_ps(r1, 0xB1);
        a = _mm512_mask_blend_ps(kOdd, r0, s0);
        b = _mm512_mask_blend_ps(kOdd, s0, r0);
        c = _mm512_mask_blend_ps(kOdd, r1, s1);
        d = _mm512_mask_blend_ps(kOdd, s1, r1);
    }
};

inline void max_pool_rows(const float* r0, const float* r1, float* y, std::size_t ow) {
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0);
    for (std::size_t j = 0; j < ow; j += 8) {
        const Window win(r0, r1, j, ow);
        // std::max(acc, v) is (acc < v) ? v : acc, which is max_ps(v, acc), NaN included.
        __m512 m = _mm512_max_ps(win.a, _mm512_set1_ps(-std::numeric_limits<float>::infinity()));
        m = _mm512_max_ps(win.b, m);
        m = _mm512_max_ps(win.c, m);
        m = _mm512_max_ps(win.d, m);
        _mm512_mask_storeu_ps(y + j, static_cast<__mmask16>((1U << win.n) - 1U),
                              _mm512_permutexvar_ps(evens, m));
    }
}

inline void max_pool_grad_rows(const float* r0, const float* r1, const float* g, float* g0,
                               float* g1, std::size_t ow) {
    const __m512i pairs = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    for (std::size_t j = 0; j < ow; j += 8) {
        const Window win(r0, r1, j, ow);
        // The scalar chain's "first strictly greater wins", per lane (both lanes of a window
        // compute the same masks).
        const __mmask16 bw = _mm512_cmp_ps_mask(win.b, win.a, _CMP_GT_OQ);
        const __m512 ab = _mm512_mask_blend_ps(bw, win.a, win.b);
        const __mmask16 cw = _mm512_cmp_ps_mask(win.c, ab, _CMP_GT_OQ);
        const __m512 abc = _mm512_mask_blend_ps(cw, ab, win.c);
        const __mmask16 dw = _mm512_cmp_ps_mask(win.d, abc, _CMP_GT_OQ);
        const auto keep_ab = static_cast<__mmask16>(~dw & ~cw);
        const auto to_row0 = static_cast<__mmask16>(keep_ab & ((~bw & kEven) | (bw & kOdd)));
        const auto to_row1 = static_cast<__mmask16>((~dw & cw & kEven) | (dw & kOdd));
        const __m512 v = _mm512_permutexvar_ps(
            pairs, _mm512_maskz_loadu_ps(static_cast<__mmask16>((1U << win.n) - 1U), g + j));
        _mm512_mask_storeu_ps(g0 + 2 * j, win.lanes, _mm512_maskz_mov_ps(to_row0, v));
        _mm512_mask_storeu_ps(g1 + 2 * j, win.lanes, _mm512_maskz_mov_ps(to_row1, v));
    }
}
} // namespace avx512
#endif

// The 2x2, stride-2 max-pool of every CNN, without the generic window loop: each output row
// reads two input rows once. Same answers as the generic loop (std::max from -inf).
template <class T>
void max_pool_2x2(const T* x, T* y, const Shape& in, const Shape& out) {
    const std::size_t planes = in[0] * in[1];
    const std::size_t w = in[3];
    for (std::size_t p = 0; p < planes; ++p) {
        for (std::size_t oy = 0; oy < out[2]; ++oy) {
            const T* r0 = x + (p * in[2] + 2 * oy) * w;
            const T* r1 = r0 + w;
            T* yo = y + (p * out[2] + oy) * out[3];
#if defined(__AVX512F__)
            if constexpr (std::is_same_v<T, float>) {
                avx512::max_pool_rows(r0, r1, yo, out[3]);
                continue;
            }
#endif
            for (std::size_t ox = 0; ox < out[3]; ++ox) {
                const T m = std::max(std::max(-std::numeric_limits<T>::infinity(), r0[2 * ox]),
                                     r0[2 * ox + 1]);
                yo[ox] = std::max(std::max(m, r1[2 * ox]), r1[2 * ox + 1]);
            }
        }
    }
}

// Its gradient: windows do not overlap, so every input element is written exactly once (the
// window's first maximum gets the output gradient, the rest 0): no zero-fill pass, no scatter,
// and selects instead of branches so the compiler can vectorize the row.
template <class T>
void max_pool_2x2_grad(const T* x, const T* go, T* gx, const Shape& in, const Shape& out) {
    const std::size_t planes = in[0] * in[1];
    const std::size_t h = in[2];
    const std::size_t w = in[3];
    for (std::size_t p = 0; p < planes; ++p) {
        const T* xp = x + p * h * w;
        T* gp = gx + p * h * w;
        for (std::size_t oy = 0; oy < out[2]; ++oy) {
            const T* __restrict x0 = xp + 2 * oy * w;
            const T* __restrict x1 = x0 + w;
            T* __restrict g0 = gp + 2 * oy * w;
            T* __restrict g1 = g0 + w;
            const T* __restrict g = go + (p * out[2] + oy) * out[3];
            std::size_t ox = 0; // where the scalar loop starts
#if defined(__AVX512F__)
            if constexpr (std::is_same_v<T, float>) {
                avx512::max_pool_grad_rows(x0, x1, g, g0, g1, out[3]);
                ox = out[3];
            }
#endif
            for (; ox < out[3]; ++ox) {
                const T a = x0[2 * ox];
                const T b = x0[2 * ox + 1];
                const T c = x1[2 * ox];
                const T d = x1[2 * ox + 1];
                // The generic loop's "first strictly greater wins", unrolled into selects (a
                // chain of ?: on values, which the compiler vectorizes; && or branches it won't).
                const bool b_wins = b > a;
                const T ab = b_wins ? b : a;
                const bool c_wins = c > ab;
                const T abc = c_wins ? c : ab;
                const bool d_wins = d > abc;
                const T v = g[ox];
                const T z(0);
                const T to_a = b_wins ? z : v;
                const T to_b = b_wins ? v : z;
                const T to_c = c_wins ? v : z;
                g0[2 * ox] = d_wins ? z : (c_wins ? z : to_a);
                g0[2 * ox + 1] = d_wins ? z : (c_wins ? z : to_b);
                g1[2 * ox] = d_wins ? z : to_c;
                g1[2 * ox + 1] = d_wins ? v : z;
            }
            if (w % 2 != 0) { // the column no window covers
                g0[w - 1] = T(0);
                g1[w - 1] = T(0);
            }
        }
        if (h % 2 != 0) { // the row no window covers
            std::fill_n(gp + (h - 1) * w, w, T(0));
        }
    }
}

std::string pool_string(const PoolGeometry& g) {
    return "kernel=" + std::to_string(g.kernel) + " stride=" + std::to_string(g.stride);
}

} // namespace

Tensor max_pool2d(const Tensor& x, std::size_t kernel, std::size_t stride) {
    check_defined(MaxPool2d::name, x);
    PoolGeometry g{kernel, stride == 0 ? kernel : stride};
    Shape shape = pool_shape(MaxPool2d::name, x, g);
    return make_tensor(MaxPool2d{g}, {x}, std::move(shape), x.dtype());
}
std::string MaxPool2d::attributes() const { return pool_string(geo); }
void MaxPool2d::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        const Shape& in = args.in_shape(0);
        const T* x = args.input<T>(0);
        T* y = args.output<T>();
        if (geo.kernel == 2 && geo.stride == 2) {
            runtime::parallel_ranges(in[0] * in[1], 16, [&](std::size_t a, std::size_t b) {
                max_pool_2x2(x + a * in[2] * in[3], y + a * args.out_shape[2] * args.out_shape[3],
                             Shape{b - a, 1, in[2], in[3]},
                             Shape{b - a, 1, args.out_shape[2], args.out_shape[3]});
            });
            return;
        }
        for_each_window(in, args.out_shape, geo, [&](std::size_t, std::size_t o, std::size_t at) {
            T m = -std::numeric_limits<T>::infinity();
            for (std::size_t ky = 0; ky < geo.kernel; ++ky) {
                const T* row = x + at + ky * in[3];
                for (std::size_t kx = 0; kx < geo.kernel; ++kx) {
                    m = std::max(m, row[kx]);
                }
            }
            y[o] = m;
        });
    });
}
std::vector<Tensor> MaxPool2d::backward(const GradArgs& g) const {
    const Tensor& x = g.inputs[0];
    return {make_tensor(MaxPool2dGrad{geo}, {x, g.grad_out}, x.shape(), x.dtype())};
}

std::string MaxPool2dGrad::attributes() const { return pool_string(geo); }
void MaxPool2dGrad::forward(const KernelArgs& args, const PartSink* sink) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        const Shape& in = args.in_shape(0);
        const T* x = args.input<T>(0);
        const T* go = args.input<T>(1);
        const std::size_t planes = in[0] * in[1];
        if (geo.kernel == 2 && geo.stride == 2) {
            const Shape& out = args.in_shape(1);
            // With a sink, blocks of 16 planes (50 KB of a 28x28 gradient): they stay in L2
            // for the epilogue.
            constexpr std::size_t kBlock = 16;
            runtime::parallel_ranges(planes, kBlock, [&](std::size_t a, std::size_t b) {
                for (std::size_t lo = a; lo < b; lo += sink != nullptr ? kBlock : b - a) {
                    const std::size_t hi = sink != nullptr ? std::min(b, lo + kBlock) : b;
                    const std::size_t at = lo * in[2] * in[3];
                    T* gx = sink != nullptr ? static_cast<T*>(sink->out(lo, hi))
                                            : args.output<T>() + at;
                    max_pool_2x2_grad(x + at, go + lo * out[2] * out[3], gx,
                                      Shape{hi - lo, 1, in[2], in[3]},
                                      Shape{hi - lo, 1, out[2], out[3]});
                    if (sink != nullptr) {
                        sink->done(lo, hi, gx);
                    }
                }
            });
            return;
        }
        T* gx = sink != nullptr ? static_cast<T*>(sink->out(0, planes)) : args.output<T>();
        std::fill_n(gx, numel(in), T(0));
        for_each_window(in, args.in_shape(1), geo,
                        [&](std::size_t, std::size_t o, std::size_t at) {
                            std::size_t best = at;
                            for (std::size_t ky = 0; ky < geo.kernel; ++ky) {
                                for (std::size_t kx = 0; kx < geo.kernel; ++kx) {
                                    const std::size_t i = at + ky * in[3] + kx;
                                    if (x[i] > x[best]) {
                                        best = i;
                                    }
                                }
                            }
                            gx[best] += go[o];
                        });
        if (sink != nullptr) {
            sink->done(0, planes, gx);
        }
    });
}
std::vector<Tensor> MaxPool2dGrad::backward(const GradArgs&) const {
    return no_second_order(name);
}

Tensor avg_pool2d(const Tensor& x, std::size_t kernel, std::size_t stride) {
    check_defined(AvgPool2d::name, x);
    PoolGeometry g{kernel, stride == 0 ? kernel : stride};
    Shape shape = pool_shape(AvgPool2d::name, x, g);
    return make_tensor(AvgPool2d{g}, {x}, std::move(shape), x.dtype());
}
std::string AvgPool2d::attributes() const { return pool_string(geo); }
void AvgPool2d::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        const Shape& in = args.in_shape(0);
        const T* x = args.input<T>(0);
        T* y = args.output<T>();
        const T scale = T(1) / static_cast<T>(geo.kernel * geo.kernel);
        for_each_window(in, args.out_shape, geo, [&](std::size_t, std::size_t o, std::size_t at) {
            T acc = 0;
            for (std::size_t ky = 0; ky < geo.kernel; ++ky) {
                for (std::size_t kx = 0; kx < geo.kernel; ++kx) {
                    acc += x[at + ky * in[3] + kx];
                }
            }
            y[o] = acc * scale;
        });
    });
}
std::vector<Tensor> AvgPool2d::backward(const GradArgs& g) const {
    const Tensor& x = g.inputs[0];
    return {make_tensor(AvgPool2dGrad{geo, x.shape()}, {g.grad_out}, x.shape(), x.dtype())};
}

std::string AvgPool2dGrad::attributes() const {
    return pool_string(geo) + " shape=" + to_string(input_shape);
}
void AvgPool2dGrad::forward(const KernelArgs& args) const {
    dispatch_dtype(args.dtype, [&]<class T>() {
        const T* go = args.input<T>(0);
        T* gx = args.output<T>();
        std::fill_n(gx, numel(input_shape), T(0));
        const T scale = T(1) / static_cast<T>(geo.kernel * geo.kernel);
        for_each_window(input_shape, args.in_shape(0), geo,
                        [&](std::size_t, std::size_t o, std::size_t at) {
                            for (std::size_t ky = 0; ky < geo.kernel; ++ky) {
                                for (std::size_t kx = 0; kx < geo.kernel; ++kx) {
                                    gx[at + ky * input_shape[3] + kx] += go[o] * scale;
                                }
                            }
                        });
    });
}
std::vector<Tensor> AvgPool2dGrad::backward(const GradArgs&) const {
    return no_second_order(name);
}

} // namespace pynn
