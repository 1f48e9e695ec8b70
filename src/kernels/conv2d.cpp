// im2col and col2im. With stride 1 and a small padding (the CNN's 3x3 convolutions) they go
// through a zero-bordered copy of the image, so each row of cols is a plain copy of ow values;
// otherwise the inner loop walks one output row, clipping it to the image.
#include "kernels/conv2d.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace pynn::kernels {

namespace {
// Output columns [lo, hi) of a row read input columns inside [0, w) for kernel column kx.
void valid_range(const ConvShape& s, std::size_t kx, std::size_t& lo, std::size_t& hi) {
    // iw = ow*stride - pad + kx must be in [0, w).
    const auto pad = static_cast<std::ptrdiff_t>(s.pad);
    const auto st = static_cast<std::ptrdiff_t>(s.stride);
    const auto off = static_cast<std::ptrdiff_t>(kx) - pad;
    std::ptrdiff_t first = off >= 0 ? 0 : (-off + st - 1) / st;
    std::ptrdiff_t last = (static_cast<std::ptrdiff_t>(s.w) - 1 - off) / st + 1; // exclusive
    if (static_cast<std::ptrdiff_t>(s.w) - 1 - off < 0) {
        last = 0;
    }
    first = std::clamp<std::ptrdiff_t>(first, 0, static_cast<std::ptrdiff_t>(s.ow));
    last = std::clamp<std::ptrdiff_t>(last, first, static_cast<std::ptrdiff_t>(s.ow));
    lo = static_cast<std::size_t>(first);
    hi = static_cast<std::size_t>(last);
}

// The padded path: the bordered image is small next to cols (C*(H+2p)*(W+2p) against
// C*KH*KW*OH*OW values). For a 14x14 image the generic path's per-row clipping and memcpy calls
// took most of the convolution's time (4032 rows of 14 values per image).
bool use_padded(const ConvShape& s) { return s.stride == 1 && s.pad <= 4; }

// out[0..n) = src[0..n) (Add: +=). The runs are short (14 values for a 14x14 image): with
// AVX-512 a masked load/store does the ragged end in one step instead of a scalar tail
// (xsimd 8 has no masked memory operations, hence the intrinsics).
template <bool Add, class T>
inline void run_copy(T* out, const T* src, std::size_t n) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
        std::size_t i = 0;
        for (; i + 16 <= n; i += 16) {
            __m512 v = _mm512_loadu_ps(src + i);
            if constexpr (Add) {
                v = _mm512_add_ps(v, _mm512_loadu_ps(out + i));
            }
            _mm512_storeu_ps(out + i, v);
        }
        if (i < n) {
            const auto mask = static_cast<__mmask16>((1U << (n - i)) - 1U);
            __m512 v = _mm512_maskz_loadu_ps(mask, src + i);
            if constexpr (Add) {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, out + i));
            }
            _mm512_mask_storeu_ps(out + i, mask, v);
        }
        return;
    }
#endif
    for (std::size_t i = 0; i < n; ++i) {
        if constexpr (Add) {
            out[i] += src[i];
        } else {
            out[i] = src[i];
        }
    }
}

// The image (C, H, W) with `pad` zeros around each channel: (C, H + 2 pad, W + 2 pad).
template <class T>
const T* pad_image(const ConvShape& s, const T* x, std::vector<T>& buf) {
    const std::size_t hp = s.h + 2 * s.pad;
    const std::size_t wp = s.w + 2 * s.pad;
    buf.assign(s.c * hp * wp, T(0));
    for (std::size_t c = 0; c < s.c; ++c) {
        for (std::size_t y = 0; y < s.h; ++y) {
            run_copy<false>(buf.data() + (c * hp + y + s.pad) * wp + s.pad, x + (c * s.h + y) * s.w,
                            s.w);
        }
    }
    return buf.data();
}
} // namespace

template <class T>
void im2col(const ConvShape& s, const T* x, T* cols) {
    const std::size_t plane = s.oh * s.ow;
    if (use_padded(s)) {
        thread_local std::vector<T> buf;
        const T* padded = pad_image(s, x, buf);
        const std::size_t hp = s.h + 2 * s.pad;
        const std::size_t wp = s.w + 2 * s.pad;
        for (std::size_t c = 0; c < s.c; ++c) {
            for (std::size_t ky = 0; ky < s.kh; ++ky) {
                for (std::size_t kx = 0; kx < s.kw; ++kx) {
                    T* row = cols + ((c * s.kh + ky) * s.kw + kx) * plane;
                    for (std::size_t oy = 0; oy < s.oh; ++oy) {
                        run_copy<false>(row + oy * s.ow, padded + (c * hp + oy + ky) * wp + kx,
                                        s.ow);
                    }
                }
            }
        }
        return;
    }
    for (std::size_t c = 0; c < s.c; ++c) {
        for (std::size_t ky = 0; ky < s.kh; ++ky) {
            for (std::size_t kx = 0; kx < s.kw; ++kx) {
                T* row = cols + ((c * s.kh + ky) * s.kw + kx) * plane;
                std::size_t lo = 0, hi = 0;
                valid_range(s, kx, lo, hi);
                for (std::size_t oy = 0; oy < s.oh; ++oy) {
                    T* out = row + oy * s.ow;
                    const auto iy = static_cast<std::ptrdiff_t>(oy * s.stride + ky) -
                                    static_cast<std::ptrdiff_t>(s.pad);
                    if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(s.h)) {
                        std::fill_n(out, s.ow, T(0));
                        continue;
                    }
                    const T* in = x + (c * s.h + static_cast<std::size_t>(iy)) * s.w;
                    std::fill_n(out, lo, T(0));
                    const std::ptrdiff_t base = static_cast<std::ptrdiff_t>(kx) -
                                                static_cast<std::ptrdiff_t>(s.pad);
                    if (s.stride == 1) {
                        std::memcpy(out + lo, in + base + static_cast<std::ptrdiff_t>(lo),
                                    (hi - lo) * sizeof(T));
                    } else {
                        for (std::size_t ox = lo; ox < hi; ++ox) {
                            out[ox] = in[static_cast<std::ptrdiff_t>(ox * s.stride) + base];
                        }
                    }
                    std::fill(out + hi, out + s.ow, T(0));
                }
            }
        }
    }
}

template <class T>
void col2im(const ConvShape& s, const T* cols, T* x) {
    const std::size_t plane = s.oh * s.ow;
    if (use_padded(s)) {
        const std::size_t hp = s.h + 2 * s.pad;
        const std::size_t wp = s.w + 2 * s.pad;
        thread_local std::vector<T> buf;
        buf.assign(s.c * hp * wp, T(0));
        for (std::size_t c = 0; c < s.c; ++c) {
            for (std::size_t ky = 0; ky < s.kh; ++ky) {
                for (std::size_t kx = 0; kx < s.kw; ++kx) {
                    const T* row = cols + ((c * s.kh + ky) * s.kw + kx) * plane;
                    for (std::size_t oy = 0; oy < s.oh; ++oy) {
                        run_copy<true>(buf.data() + (c * hp + oy + ky) * wp + kx, row + oy * s.ow,
                                       s.ow);
                    }
                }
            }
        }
        for (std::size_t c = 0; c < s.c; ++c) { // the border held what fell on the padding
            for (std::size_t y = 0; y < s.h; ++y) {
                run_copy<true>(x + (c * s.h + y) * s.w, buf.data() + (c * hp + y + s.pad) * wp + s.pad,
                               s.w);
            }
        }
        return;
    }
    for (std::size_t c = 0; c < s.c; ++c) {
        for (std::size_t ky = 0; ky < s.kh; ++ky) {
            for (std::size_t kx = 0; kx < s.kw; ++kx) {
                const T* row = cols + ((c * s.kh + ky) * s.kw + kx) * plane;
                std::size_t lo = 0, hi = 0;
                valid_range(s, kx, lo, hi);
                const std::ptrdiff_t base =
                    static_cast<std::ptrdiff_t>(kx) - static_cast<std::ptrdiff_t>(s.pad);
                for (std::size_t oy = 0; oy < s.oh; ++oy) {
                    const auto iy = static_cast<std::ptrdiff_t>(oy * s.stride + ky) -
                                    static_cast<std::ptrdiff_t>(s.pad);
                    if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(s.h)) {
                        continue;
                    }
                    const T* in = row + oy * s.ow;
                    T* out = x + (c * s.h + static_cast<std::size_t>(iy)) * s.w;
                    for (std::size_t ox = lo; ox < hi; ++ox) {
                        out[static_cast<std::ptrdiff_t>(ox * s.stride) + base] += in[ox];
                    }
                }
            }
        }
    }
}

template <class T>
void conv2d_reference(std::size_t n, std::size_t o, const ConvShape& s, const T* x, const T* w,
                      T* y) {
    for (std::size_t b = 0; b < n; ++b) {
        for (std::size_t oc = 0; oc < o; ++oc) {
            for (std::size_t oy = 0; oy < s.oh; ++oy) {
                for (std::size_t ox = 0; ox < s.ow; ++ox) {
                    T acc = 0;
                    for (std::size_t c = 0; c < s.c; ++c) {
                        for (std::size_t ky = 0; ky < s.kh; ++ky) {
                            for (std::size_t kx = 0; kx < s.kw; ++kx) {
                                const auto iy = static_cast<std::ptrdiff_t>(oy * s.stride + ky) -
                                                static_cast<std::ptrdiff_t>(s.pad);
                                const auto ix = static_cast<std::ptrdiff_t>(ox * s.stride + kx) -
                                                static_cast<std::ptrdiff_t>(s.pad);
                                if (iy < 0 || ix < 0 || iy >= static_cast<std::ptrdiff_t>(s.h) ||
                                    ix >= static_cast<std::ptrdiff_t>(s.w)) {
                                    continue;
                                }
                                acc += x[((b * s.c + c) * s.h + static_cast<std::size_t>(iy)) *
                                             s.w +
                                         static_cast<std::size_t>(ix)] *
                                       w[((oc * s.c + c) * s.kh + ky) * s.kw + kx];
                            }
                        }
                    }
                    y[((b * o + oc) * s.oh + oy) * s.ow + ox] = acc;
                }
            }
        }
    }
}

template void im2col<float>(const ConvShape&, const float*, float*);
template void im2col<double>(const ConvShape&, const double*, double*);
template void col2im<float>(const ConvShape&, const float*, float*);
template void col2im<double>(const ConvShape&, const double*, double*);
template void conv2d_reference<float>(std::size_t, std::size_t, const ConvShape&, const float*,
                                      const float*, float*);
template void conv2d_reference<double>(std::size_t, std::size_t, const ConvShape&, const double*,
                                       const double*, double*);

} // namespace pynn::kernels
