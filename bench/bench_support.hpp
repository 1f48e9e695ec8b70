// What bench_models and vs_torch share: the two example models built exactly as
// examples/mnist_mlp.cpp and examples/mnist_cnn.cpp build them, a fixed random batch, the pynn
// training step and inference pass, the GEMMs one step issues (its floor: cblas_sgemm alone on
// the same shapes) and percentiles of per-step samples. Header-only, no Google Benchmark, so the
// torch side-by-side can use it too.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cblas.h>

#include <pynn/pynn.hpp>

namespace pynn_bench {

enum class ModelKind { Mlp, Cnn };

inline std::string model_name(ModelKind kind) { return kind == ModelKind::Mlp ? "mlp" : "cnn"; }

// examples/mnist_mlp.cpp: Dense 784-256-128-32-10, relu, softmax; its loss is
// categorical_cross_entropy against one-hot targets.
inline pynn::models::Model make_mlp(std::size_t batch) {
    using namespace pynn;
    auto x_input = Tensor::randn({batch, 784});
    auto x = layers::Dense(784, 256, relu)(x_input);
    x = layers::Dense(256, 128, relu)(x);
    x = layers::Dense(128, 32, relu)(x);
    x = layers::Dense(32, 10, softmax)(x);
    return models::Model(x_input, x);
}

// examples/mnist_cnn.cpp: Conv2d(1,32,3,pad 1)+relu, MaxPool2, Conv2d(32,64,3,pad 1)+relu,
// MaxPool2, Flatten, Dense(3136,128,relu), Dense(128,10); cross_entropy_with_logits on class ids.
inline pynn::models::Model make_cnn(std::size_t batch) {
    using namespace pynn;
    auto x_input = Tensor::randn({batch, 784});
    auto x = layers::Lambda(
        [](const Tensor& t) {
            return reshape(t, {t.shape()[0], 1, 28, 28});
        },
        "to_nchw")(x_input);
    x = layers::Conv2d(1, 32, 3, 1, 1, relu)(x);
    x = layers::MaxPool2d(2)(x);
    x = layers::Conv2d(32, 64, 3, 1, 1, relu)(x);
    x = layers::MaxPool2d(2)(x);
    x = layers::Flatten()(x);
    x = layers::Dense(3136, 128, relu)(x);
    x = layers::Dense(128, 10)(x);
    return models::Model(x_input, x);
}

// A batch drawn once from a seeded generator: x (batch, 784) standard normal (the examples
// standardise their images), labels uniform in 0..9.
struct Batch {
    xt::xarray<float> x;      // (batch, 784)
    std::vector<int> labels;  // (batch)
    xt::xarray<float> onehot; // (batch, 10)
    xt::xarray<float> ids;    // (batch), the labels as floats (pynn's class-id targets)
};

inline Batch make_batch(std::size_t batch, std::uint64_t seed = 1234) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0F, 1.0F);
    std::uniform_int_distribution<int> label(0, 9);
    Batch b;
    b.x = xt::xarray<float>::from_shape({batch, 784});
    for (float& v : b.x) {
        v = normal(rng);
    }
    b.onehot = xt::zeros<float>({batch, std::size_t{10}});
    b.ids = xt::zeros<float>({batch});
    for (std::size_t i = 0; i < batch; ++i) {
        const int l = label(rng);
        b.labels.push_back(l);
        b.onehot(i, static_cast<std::size_t>(l)) = 1.0F;
        b.ids(i) = static_cast<float>(l);
    }
    return b;
}

// One model with its optimizer and a fixed batch, as the examples' training loops hold them.
struct PynnModel {
    ModelKind kind;
    std::size_t batch;
    pynn::models::Model model;
    pynn::optimizers::Adam optimizer{0.001};
    pynn::Tensor x; // (batch, 784)
    pynn::Tensor y; // MLP: one-hot (batch, 10); CNN: class ids (batch)

    PynnModel(ModelKind k, std::size_t b, const Batch& data)
        : kind(k), batch(b), model(k == ModelKind::Mlp ? make_mlp(b) : make_cnn(b)),
          x(pynn::Tensor::from_values(data.x)),
          y(pynn::Tensor::from_values(k == ModelKind::Mlp ? data.onehot : data.ids)) {}

    pynn::Tensor loss(const pynn::Tensor& out) const {
        return kind == ModelKind::Mlp ? pynn::losses::categorical_cross_entropy(out, y)
                                      : pynn::losses::cross_entropy_with_logits(out, y);
    }

    // The examples' loop body: forward, loss, backward, optimizer update; returns the loss.
    float train_step() {
        pynn::Tensor pred = model(x);
        pynn::Tensor l = loss(pred);
        l.zero_grad();
        l.backward();
        optimizer.update(model.parameters());
        return static_cast<float>(l.item());
    }

    // One inference pass; returns the first output so the caller can sink it.
    float infer() const {
        pynn::NoGradGuard no_grad;
        xt::xarray<float> out = model(x).values<float>();
        return out(0, 0);
    }
};

// --- the floor: the GEMMs of one step, cblas_sgemm alone ---

// c (m, n) = op(a) (m, k) @ op(b) (k, n), row-major, as src/kernels/gemm.cpp calls BLAS;
// `repeat` times (the per-image GEMMs of a convolution), accumulating after the first when
// `accumulate` (a convolution's weight gradient sums over images).
struct GemmShape {
    bool trans_a, trans_b;
    std::size_t m, n, k;
    std::size_t repeat = 1;
    bool accumulate = false;
    double flops() const {
        return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) *
               static_cast<double>(repeat);
    }
};

// Dense (batch, in) -> (batch, out): forward, weight gradient x^T @ grad (TN) and, unless the
// layer reads the model's input, input gradient grad @ W^T (NT).
inline void dense_gemms(std::vector<GemmShape>& out, std::size_t batch, std::size_t in,
                        std::size_t features, bool training, bool first_layer) {
    out.push_back({false, false, batch, features, in});
    if (training) {
        out.push_back({true, false, in, features, batch});
        if (!first_layer) {
            out.push_back({false, true, batch, in, features});
        }
    }
}

// Conv2d 3x3 pad 1 on (batch, c, hw, hw) as src/ops/conv.cpp runs it: one GEMM per image,
// w (O, CKK) @ cols (CKK, P) forward, grad_out (O, P) @ cols^T (P, CKK) for the weight,
// w^T (CKK, O) @ grad_out (O, P) for the input.
inline void conv_gemms(std::vector<GemmShape>& out, std::size_t batch, std::size_t c, std::size_t o,
                       std::size_t hw, bool training, bool first_layer) {
    const std::size_t ckk = c * 9;
    const std::size_t plane = hw * hw;
    out.push_back({false, false, o, plane, ckk, batch});
    if (training) {
        out.push_back({false, true, o, ckk, plane, batch, true});
        if (!first_layer) {
            out.push_back({true, false, ckk, plane, o, batch});
        }
    }
}

inline std::vector<GemmShape> step_gemms(ModelKind kind, std::size_t batch, bool training) {
    std::vector<GemmShape> g;
    if (kind == ModelKind::Mlp) {
        dense_gemms(g, batch, 784, 256, training, true);
        dense_gemms(g, batch, 256, 128, training, false);
        dense_gemms(g, batch, 128, 32, training, false);
        dense_gemms(g, batch, 32, 10, training, false);
    } else {
        conv_gemms(g, batch, 1, 32, 28, training, true);
        conv_gemms(g, batch, 32, 64, 14, training, false);
        dense_gemms(g, batch, 3136, 128, training, false);
        dense_gemms(g, batch, 128, 10, training, false);
    }
    return g;
}

inline double total_flops(const std::vector<GemmShape>& shapes) {
    double f = 0;
    for (const GemmShape& s : shapes) {
        f += s.flops();
    }
    return f;
}

inline void sgemm(const GemmShape& s, const float* a, const float* b, float* c, bool accumulate) {
    const auto lda = static_cast<blasint>(s.trans_a ? s.m : s.k);
    const auto ldb = static_cast<blasint>(s.trans_b ? s.k : s.n);
    cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans,
                s.trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(s.m),
                static_cast<blasint>(s.n), static_cast<blasint>(s.k), 1.0F, a, lda, b, ldb,
                accumulate ? 1.0F : 0.0F, c, static_cast<blasint>(s.n));
}

// OpenBLAS's thread count for a scope, put back afterwards. pynn decides how it uses OpenBLAS
// (it may run it single-threaded under its own pool), so code here that calls OpenBLAS directly
// sets the count it wants and restores pynn's.
class BlasThreads {
public:
    explicit BlasThreads(int threads) : m_saved(openblas_get_num_threads()) {
        openblas_set_num_threads(threads);
    }
    ~BlasThreads() { openblas_set_num_threads(m_saved); }
    BlasThreads(const BlasThreads&) = delete;
    BlasThreads& operator=(const BlasThreads&) = delete;

private:
    int m_saved;
};

// Buffers for a list of GEMMs and a run(threads) that issues them all, in order: the best these
// GEMMs alone do on `threads` cores. A single GEMM is one OpenBLAS call with `threads` threads; a
// repeated one (the per-image GEMMs of a convolution) walks its own slice of a and b per
// repetition and, with several threads, splits the repetitions into one contiguous range per
// thread, each a run of single-threaded OpenBLAS calls (OpenBLAS's own threads do poorly on GEMMs
// this small); accumulating GEMMs then sum into one c per thread. Callers hold a BlasThreads.
class GemmSet {
public:
    explicit GemmSet(std::vector<GemmShape> shapes, int threads = 1)
        : m_shapes(std::move(shapes)), m_threads(std::max(threads, 1)) {
        for (const GemmShape& s : m_shapes) {
            const std::size_t c_count =
                s.accumulate ? static_cast<std::size_t>(m_threads) : s.repeat;
            m_a.emplace_back(s.m * s.k * s.repeat, 0.01F);
            m_b.emplace_back(s.k * s.n * s.repeat, 0.02F);
            m_c.emplace_back(s.m * s.n * c_count, 0.0F);
        }
    }
    void run() {
        for (std::size_t i = 0; i < m_shapes.size(); ++i) {
            const GemmShape& s = m_shapes[i];
            const auto threads = static_cast<std::size_t>(m_threads);
            if (s.repeat == 1 || threads == 1) {
                set_blas(m_threads);
                run_range(i, 0, s.repeat, 0);
                continue;
            }
            set_blas(1);
            std::vector<std::thread> workers;
            const std::size_t per = (s.repeat + threads - 1) / threads;
            for (std::size_t t = 1; t < threads && t * per < s.repeat; ++t) {
                workers.emplace_back(
                    [=, this] { run_range(i, t * per, std::min(s.repeat, (t + 1) * per), t); });
            }
            run_range(i, 0, std::min(s.repeat, per), 0);
            for (std::thread& w : workers) {
                w.join();
            }
        }
    }
    double flops() const { return total_flops(m_shapes); }
    const float* result(std::size_t i) const { return m_c[i].data(); }

private:
    void set_blas(int threads) {
        if (openblas_get_num_threads() != threads) {
            openblas_set_num_threads(threads);
        }
    }
    // Repetitions [begin, end) of GEMM i; an accumulating GEMM sums into thread `slot`'s c.
    void run_range(std::size_t i, std::size_t begin, std::size_t end, std::size_t slot) {
        const GemmShape& s = m_shapes[i];
        for (std::size_t r = begin; r < end; ++r) {
            float* c = m_c[i].data() + (s.accumulate ? slot : r) * s.m * s.n;
            sgemm(s, m_a[i].data() + r * s.m * s.k, m_b[i].data() + r * s.k * s.n, c,
                  s.accumulate && r > begin);
        }
    }

    std::vector<GemmShape> m_shapes;
    int m_threads;
    std::vector<std::vector<float>> m_a, m_b, m_c;
};

// --- timing helpers ---

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The q-quantile (0..1) of `samples` with linear interpolation between order statistics.
inline double quantile(std::vector<double> samples, double q) {
    if (samples.empty()) {
        return 0.0;
    }
    std::sort(samples.begin(), samples.end());
    const double pos = q * static_cast<double>(samples.size() - 1);
    const auto lo = static_cast<std::size_t>(pos);
    const std::size_t hi = std::min(lo + 1, samples.size() - 1);
    const double frac = pos - static_cast<double>(lo);
    return samples[lo] + frac * (samples[hi] - samples[lo]);
}

} // namespace pynn_bench
