// pynn's float32 GEMM (why it exists: sgemm.hpp). Blocking, in BLIS's terms:
//  - the micro-kernel keeps a kRows x kCols tile of c in registers and adds one rank-1 update
//    per step of k: kRows broadcasts of a, kVecs vector loads of b, kRows * kVecs FMAs;
//  - a is read where it lies (its broadcasts come from L1 after the first panel), in slivers of
//    kRows rows; only a ragged last sliver is packed;
//  - b is read where it lies when there is one row block, b is not transposed and a panel is
//    whole vectors wide (rows ldb apart, prefetched a few rows ahead); otherwise its panels are
//    packed (contiguous, transposed and/or zero-padded).
// Loop order: depth block, row sliver, column panel. After the last depth block a sliver's rows
// are final, so rows_done runs on them while they are in L1.
#include "kernels/sgemm.hpp"

#include <algorithm>
#include <vector>

#include <xsimd/xsimd.hpp>

#if defined(__AVX512F__)
#include <immintrin.h> // the transposing pack (xsimd 8 has no transpose)
#endif

namespace pynn::kernels {

namespace {

using Batch = xsimd::batch<float>;
constexpr std::size_t W = Batch::size;
// 24 accumulators on AVX-512 (32 registers), 12 on AVX2 (16 registers), 8 on SSE: enough
// independent FMA chains to cover the FMA latency, with registers left for b and a broadcast.
constexpr std::size_t kRows = W >= 16 ? 8 : (W >= 8 ? 6 : 4);
constexpr std::size_t kVecs = W >= 16 ? 3 : 2;
constexpr std::size_t kCols = kVecs * W;
// Depth block and row block: a panel of b (kDepth x kCols) is reused by the kBlockRows / kRows
// slivers of a row block, the row block of a (kBlockRows x kDepth) by every panel. Depths of
// 128 to 1024 measured within noise of each other at the MLP's and CNN's shapes (1024 slightly
// ahead: fewer passes over c); 8 slivers as good as 16.
constexpr std::size_t kDepth = 1024;
constexpr std::size_t kBlockRows = kRows * 8;
// How far ahead (in rows of b) an unpacked panel is prefetched; measured best of 2..16.
constexpr std::size_t kPrefetchRows = 4;
// Largest depth block of b (kc x n floats, 256 KB) whose panels are all packed up front when
// there are several row blocks.
constexpr std::size_t kPackFloats = std::size_t{64} * 1024;

// Where a sliver of kRows rows of op(a) is read from: element (r, p) is at
// a[r * row_stride + p * depth_stride]. Either stride may be 1: a stored row-major (rows lda
// apart), stored transposed (k-major, rows adjacent) or packed (k-major, kRows per step).
struct Sliver {
    const float* a;
    std::size_t row_stride;
    std::size_t depth_stride;
};

// c (kRows x V*W, row stride ldc) (+)= sliver (kRows x kc) @ panel (kc x V*W, rows ldb apart).
// Always inlined so the accumulators live in registers; KMajor picks the addressing of a (one
// pointer stepping by depth_stride, or kRows row pointers stepping by 1).
template <std::size_t V, bool KMajor>
[[gnu::always_inline]] inline void micro_tile(std::size_t kc, Sliver sl, const float* __restrict bp,
                                              std::size_t ldb, float* c, std::size_t ldc,
                                              bool load_c) {
    Batch acc[kRows][V];
    for (std::size_t r = 0; r < kRows; ++r) {
        for (std::size_t v = 0; v < V; ++v) {
            acc[r][v] = load_c ? Batch::load_unaligned(c + r * ldc + v * W) : Batch(0.0F);
        }
    }
    const float* rows[kRows];
    for (std::size_t r = 0; r < kRows; ++r) {
        rows[r] = sl.a + r * sl.row_stride;
    }
    // Unrolled twice: the loop's counter, compare and pointer steps otherwise compete with the
    // FMAs for issue slots (3% at the MLP's shapes; 4 and 8 measured no better).
#pragma GCC unroll 2
    for (std::size_t p = 0; p < kc; ++p) {
        const float* row = bp + p * ldb;
        for (std::size_t v = 0; v < V; ++v) {
            // Past the end of b this only hints at an address that is never loaded.
            __builtin_prefetch(row + kPrefetchRows * ldb + v * W, 0, 3);
        }
        Batch bv[V];
        for (std::size_t v = 0; v < V; ++v) {
            bv[v] = Batch::load_unaligned(row + v * W);
        }
        for (std::size_t r = 0; r < kRows; ++r) {
            const Batch av(KMajor ? sl.a[p * sl.depth_stride + r] : rows[r][p]);
            for (std::size_t v = 0; v < V; ++v) {
                acc[r][v] = xsimd::fma(av, bv[v], acc[r][v]);
            }
        }
    }
    for (std::size_t r = 0; r < kRows; ++r) {
        for (std::size_t v = 0; v < V; ++v) {
            acc[r][v].store_unaligned(c + r * ldc + v * W);
        }
    }
}

template <bool KMajor>
void micro_tile(std::size_t vecs, std::size_t kc, Sliver sl, const float* bp, std::size_t ldb,
                float* c, std::size_t ldc, bool load_c) {
    static_assert(kVecs <= 3);
    switch (vecs) {
    case 1: micro_tile<1, KMajor>(kc, sl, bp, ldb, c, ldc, load_c); break;
    case 2: micro_tile<2, KMajor>(kc, sl, bp, ldb, c, ldc, load_c); break;
    default: micro_tile<kVecs, KMajor>(kc, sl, bp, ldb, c, ldc, load_c); break;
    }
}

void micro_tile(std::size_t vecs, std::size_t kc, Sliver sl, const float* bp, std::size_t ldb,
                float* c, std::size_t ldc, bool load_c) {
    if (sl.row_stride == 1) {
        micro_tile<true>(vecs, kc, sl, bp, ldb, c, ldc, load_c);
    } else {
        micro_tile<false>(vecs, kc, sl, bp, ldb, c, ldc, load_c);
    }
}

#if defined(__AVX512F__)
// GCC 12's unpack intrinsics pass _mm512_undefined_ps() as the (unused) merge source, which
// -Wuninitialized reports once inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// out[t * ldo + r] = in[r * lda + t] for a 16x16 block: unpack pairs of floats, then of
// doubles, then shuffle 128-bit lanes twice (the usual in-register transpose).
inline void transpose16(const float* in, std::size_t lda, float* out, std::size_t ldo) {
    __m512 r[16];
    __m512 t[16];
    for (std::size_t i = 0; i < 16; ++i) {
        r[i] = _mm512_loadu_ps(in + i * lda);
    }
    for (std::size_t i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    auto lo = [](__m512 a, __m512 b) {
        return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
    };
    auto hi = [](__m512 a, __m512 b) {
        return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
    };
    for (std::size_t i = 0; i < 16; i += 4) {
        r[i] = lo(t[i], t[i + 2]);
        r[i + 1] = hi(t[i], t[i + 2]);
        r[i + 2] = lo(t[i + 1], t[i + 3]);
        r[i + 3] = hi(t[i + 1], t[i + 3]);
    }
    for (std::size_t i = 0; i < 16; i += 8) {
        for (std::size_t j = 0; j < 4; ++j) {
            t[i + j] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0x88);
            t[i + j + 4] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0xdd);
        }
    }
    for (std::size_t j = 0; j < 8; ++j) {
        _mm512_storeu_ps(out + j * ldo, _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88));
        _mm512_storeu_ps(out + (j + 8) * ldo, _mm512_shuffle_f32x4(t[j], t[j + 8], 0xdd));
    }
}
#pragma GCC diagnostic pop
#endif

// Where a column panel's b is read from.
struct Panel {
    std::size_t col = 0;   // first column of c
    std::size_t width = 0; // columns of c it covers
    std::size_t vecs = 0;  // SIMD vectors per row (width rounded up)
    const float* b = nullptr;
    std::size_t ldb = 0;
};

// out[p * ldo + x] = b[x * ldb + p] for x < width, p < depth: b's rows become a panel's
// columns. With AVX-512, 16x16 blocks are transposed in registers (4 rounds of shuffles, a
// quarter of an instruction per value); the ragged edges, and other targets, go one by one.
void pack_transposed(const float* b, std::size_t ldb, std::size_t width, std::size_t depth,
                     float* out, std::size_t ldo) {
    std::size_t x0 = 0;
    std::size_t p_done = 0;
#if defined(__AVX512F__)
    p_done = depth / 16 * 16;
    for (; x0 + 16 <= width; x0 += 16) {
        for (std::size_t p0 = 0; p0 < p_done; p0 += 16) {
            transpose16(b + x0 * ldb + p0, ldb, out + p0 * ldo + x0, ldo);
        }
    }
#endif
    for (std::size_t x = 0; x < width; ++x) {
        const float* row = b + x * ldb;
        // Blocks done above: columns [0, x0) up to depth p_done.
        for (std::size_t p = x < x0 ? p_done : 0; p < depth; ++p) {
            out[p * ldo + x] = row[p];
        }
    }
}

struct Scratch {
    std::vector<float> a;
    // 64-byte aligned: the transposing pack stores whole cache lines.
    std::vector<float, xsimd::aligned_allocator<float, 64>> b;
    std::vector<Panel> panels;
};

} // namespace

bool sgemm_suits(bool trans_a, bool /*trans_b*/, std::size_t m, std::size_t n, std::size_t k) {
    // Measured against OpenBLAS at the MLP's and CNN's shapes (bench_kernels, and sgemm
    // against cblas_sgemm alone): b as stored 0.75-0.9x its time, transposed b (packed by
    // transpose16) 0.7-0.8x; with k < 16 loading and storing the c tile dominates (conv1's
    // k = 9: 1.4x), and with n < 16 most of each register tile is padding (conv1's weight
    // gradient: 2.9x); a transposed a is 0.9-0.98x up to k = 64, and with k > 128 it stays
    // ahead only while op(a) is at most 128K elements (m x k; 0.71-0.97x at m <= 256 and
    // k = 256-2048, 1.0-1.18x from 256K elements: the MLP's 784 x 256 weight gradient at batch
    // 256 stays with BLAS, its 256 x 128 one comes here, 0.83x; packing a did not help). op(b)
    // is streamed from L2 once per row block: larger problems go to BLAS, whose packing into
    // cache-sized blocks pays off there (the CNN's 3136 x 128, 1.6 MB, still 0.74x).
    const bool large_transposed_a = trans_a && k > 128 && m * k > std::size_t{128} * 1024;
    return k >= 16 && n >= 16 && !large_transposed_a && k * n <= std::size_t{512} * 1024;
}

void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, const float* a,
           std::size_t lda, const float* b, std::size_t ldb, float* c, std::size_t ldc,
           bool accumulate, const RowsDone* rows_done) {
    if (m == 0 || n == 0) {
        return;
    }
    if (k == 0) { // an empty sum
        for (std::size_t i = 0; i < m && !accumulate; ++i) {
            std::fill(c + i * ldc, c + i * ldc + n, 0.0F);
        }
        if (rows_done != nullptr) {
            (*rows_done)(0, m);
        }
        return;
    }
    thread_local Scratch scratch;
    std::vector<Panel>& panels = scratch.panels; // no allocation per call (conv: per image)
    panels.clear();
    for (std::size_t col = 0; col < n; col += kCols) {
        const std::size_t width = std::min(kCols, n - col);
        panels.push_back({col, width, (width + W - 1) / W, nullptr, 0});
    }
    for (std::size_t pc = 0; pc < k; pc += kDepth) {
        const std::size_t kc = std::min(kDepth, k - pc);
        const bool last_depth = pc + kc == k;
        const bool load_c = accumulate || pc > 0;

        // a is read where it lies, except a last sliver with fewer than kRows rows, which is
        // packed k-major and zero-padded so the micro-kernel never reads past op(a).
        const std::size_t ragged_rows = m % kRows;
        if (ragged_rows != 0) {
            scratch.a.assign(kRows * kc, 0.0F);
            for (std::size_t r = 0; r < ragged_rows; ++r) {
                const std::size_t i = m - ragged_rows + r;
                for (std::size_t p = 0; p < kc; ++p) {
                    scratch.a[p * kRows + r] =
                        trans_a ? a[(pc + p) * lda + i] : a[i * lda + pc + p];
                }
            }
        }
        auto sliver = [&](std::size_t s) -> Sliver {
            const std::size_t i = s * kRows;
            if (i + kRows > m) {
                return {scratch.a.data(), 1, kRows};
            }
            return trans_a ? Sliver{a + pc * lda + i, 1, lda} : Sliver{a + i * lda + pc, lda, 1};
        };

        // Panels of b: in place when possible, else packed (transposed and/or zero-padded).
        // With one row block each packed panel is used once, so it is packed right before use
        // into one L1-sized buffer. With several row blocks and a small depth block of b (kc x n
        // at most kPackFloats), every panel is packed up front and reused per block: a
        // contiguous panel has no L1 set conflicts (rows of b 1 KB apart share a set every 4 rows).
        // The MLP's weight gradient (784x256, k = 64): 0.75-0.90x its in-place time (min of 3 runs,
        // warm and cold L2). A large b stays in place: a packed copy of the MLP's 784x256 weight
        // next to the weight itself and the batch overflows L2, and made batch-256 inference ~8%
        // slower.
        const bool one_block = m <= kBlockRows;
        const bool pack_all = !one_block && kc * n <= kPackFloats;
        auto packs = [&](const Panel& pn) {
            return pack_all || trans_b || pn.width != pn.vecs * W;
        };
        std::size_t packed_floats = 0;
        for (const Panel& pn : panels) {
            if (packs(pn)) {
                packed_floats = one_block ? std::max(packed_floats, kc * pn.vecs * W)
                                          : packed_floats + kc * pn.vecs * W;
            }
        }
        scratch.b.resize(packed_floats);
        auto pack = [&](Panel& pn, float* into) {
            const std::size_t stride = pn.vecs * W;
            if (pn.width != stride) { // the columns past width are padding: zeros
                std::fill(into, into + kc * stride, 0.0F);
            }
            if (trans_b) {
                pack_transposed(b + pn.col * ldb + pc, ldb, pn.width, kc, into, stride);
            } else {
                for (std::size_t p = 0; p < kc; ++p) {
                    std::copy_n(b + (pc + p) * ldb + pn.col, pn.width, into + p * stride);
                }
            }
            pn.b = into;
            pn.ldb = stride;
        };
        float* next = scratch.b.data();
        for (Panel& pn : panels) {
            if (!packs(pn)) {
                pn.b = b + pc * ldb + pn.col;
                pn.ldb = ldb;
            } else if (!one_block) {
                pack(pn, next);
                next += kc * pn.vecs * W;
            }
        }

        // A block of rows reuses each panel (kc x kCols, in L1) for all its slivers, and the
        // block's a (in L2) for every panel. Its rows are final after its last panel.
        for (std::size_t block = 0; block < m; block += kBlockRows) {
            const std::size_t block_end = std::min(m, block + kBlockRows);
            for (Panel& pn : panels) {
                if (one_block && packs(pn)) {
                    pack(pn, scratch.b.data());
                }
                for (std::size_t row = block; row < block_end; row += kRows) {
                    const Sliver sl = sliver(row / kRows);
                    const std::size_t rows = std::min(kRows, m - row);
                    float* ct = c + row * ldc + pn.col;
                    if (rows == kRows && pn.width == pn.vecs * W) {
                        micro_tile(pn.vecs, kc, sl, pn.b, pn.ldb, ct, ldc, load_c);
                        continue;
                    }
                    // A ragged tile: computed in a full-size buffer, its valid part copied.
                    alignas(64) float tile[kRows * kCols] = {};
                    const std::size_t stride = pn.vecs * W;
                    for (std::size_t r = 0; r < rows && load_c; ++r) {
                        std::copy(ct + r * ldc, ct + r * ldc + pn.width, tile + r * stride);
                    }
                    micro_tile(pn.vecs, kc, sl, pn.b, pn.ldb, tile, stride, load_c);
                    for (std::size_t r = 0; r < rows; ++r) {
                        std::copy(tile + r * stride, tile + r * stride + pn.width, ct + r * ldc);
                    }
                }
            }
            if (rows_done != nullptr && last_depth) {
                (*rows_done)(block, block_end);
            }
        }
    }
}

} // namespace pynn::kernels
