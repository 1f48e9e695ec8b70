// im2col / col2im for NCHW convolution, and a direct convolution kept as the reference.
#pragma once

#include <cstddef>

namespace pynn::kernels {

struct ConvShape {
    std::size_t c, h, w;      // input channels and size
    std::size_t kh, kw;       // kernel
    std::size_t stride, pad;
    std::size_t oh, ow;       // output size
};

// One image x (C, H, W) -> cols (C*KH*KW, OH*OW); zero where the window hangs over the padding.
template <class T>
void im2col(const ConvShape& s, const T* x, T* cols);
// The adjoint: adds cols (C*KH*KW, OH*OW) back into x (C, H, W) (x must start zeroed).
template <class T>
void col2im(const ConvShape& s, const T* cols, T* x);

// y (N, O, OH, OW) by the definition, for tests.
template <class T>
void conv2d_reference(std::size_t n, std::size_t o, const ConvShape& s, const T* x, const T* w,
                      T* y);

} // namespace pynn::kernels
