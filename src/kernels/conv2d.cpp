// im2col and col2im. The inner loop walks one output row; with stride 1 it is a contiguous copy
// of an input row segment, which the compiler vectorises.
#include "kernels/conv2d.hpp"

#include <algorithm>
#include <cstring>

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
} // namespace

template <class T>
void im2col(const ConvShape& s, const T* x, T* cols) {
    const std::size_t plane = s.oh * s.ow;
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
