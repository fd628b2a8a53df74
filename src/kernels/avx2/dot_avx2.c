/*
 * dot_avx2.c — AVX2 + FMA + F16C kernels: dot products of every common
 * weight type with its activation type, the activation quantizers, and 4×4
 * GEMM tiles for prefill.
 *
 * Integer blocks use the byte multiply-add (vpmaddubsw, u8 × s8 → s16 pairs)
 * followed by vpmaddwd with ones (→ s32), one float FMA per 32-element block
 * with the product of the two block scales. vpmaddubsw needs one unsigned
 * operand: 4/5-bit weights are naturally unsigned (their offset is folded in
 * afterwards), signed pairs use |w| and sign(x, w). No pair sum can saturate
 * s16: 2 × 127 × 127 < 32767 and 2 × 63 × 128 < 32767.
 *
 * Compiled with -mavx2 -mfma -mf16c (Makefile); only reached after cpu.c
 * found those features.
 */
#include "kernels/kern_impl.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/iq_grids.h"
#include "kernels/x8_simd.h"

/* 32 nibbles → 32 bytes: low nibbles of the 16 bytes (elements 0-15) in the
 * low lane, high nibbles (elements 16-31) in the high lane. */
static inline __m256i nibbles32(const uint8_t *p) {
    __m128i lo = _mm_loadu_si128((const __m128i *)p);
    __m128i hi = _mm_srli_epi16(lo, 4);
    return _mm256_and_si256(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(0x0f));
}

/* 32 bits → 32 bytes of 0xff (bit set) or 0x00. */
static inline __m256i bits32(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

/* sum of s8 × s8 over 32 bytes, as 8 floats */
static inline __m256 dot_i8(__m256i w, __m256i x) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* sum of u8 × s8 over 32 bytes (u ≤ 63), as 8 floats */
static inline __m256 dot_u8(__m256i u, __m256i x) {
    __m256i p = _mm256_maddubs_epi16(u, x);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* ---- float weights ---- */

static float dot_f32(int64_t n, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += w[i] * x[i];
    return s;
}

static float dot_f16(int64_t n, const void *vw, const void *vx) {
    const sl_f16_t *w = vw;
    const float *x = vx;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
#define LDH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(LDH(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(LDH(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(LDH(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(LDH(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LDH(w + i), _mm256_loadu_ps(x + i), a0);
#undef LDH
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += f16(w[i]) * x[i];
    return s;
}

static float dot_bf16(int64_t n, const void *vw, const void *vx) {
    const sl_bf16_t *w = vw;
    const float *x = vx;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int64_t i = 0;
#define LDB(p)                                                                                      \
    _mm256_castsi256_ps(                                                                           \
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(LDB(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(LDB(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LDB(w + i), _mm256_loadu_ps(x + i), a0);
#undef LDB
    float s = hsum8(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += sl_bf16_to_f32(w[i]) * x[i];
    return s;
}

/* ---- float weights (f32 / f16 / bf16) × f32 activations, many tokens ----
 *
 * A chunk of rows against 4 tokens, three rows at a time (12 accumulators:
 * the FMA latency × throughput of the core needs more than 8 chains), so
 * each weight vector is loaded (and converted from f16 / bf16) once per 4
 * tokens instead of once per token, and each activation vector serves
 * three rows. Tokens past nc repeat token 0 and are not stored. */
static inline __attribute__((always_inline)) __m256 fw_load8(int kind, const uint8_t *row, int64_t i) {
    if (kind == SL_FW_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * i)));
    if (kind == SL_FW_BF16)
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + 2 * i))), 16));
    return _mm256_loadu_ps((const float *)row + i);
}

/* The 4 sums of a0..a3 in one 128-bit vector. */
static inline __m128 fw_hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* R rows against NC (1 or 4) tokens: R·NC accumulators, one FMA chain per
 * row and token over 8-element steps, then the same reduction tree for
 * every row and token — so a row's dot with a token comes out bit for bit
 * the same whatever the tile's shape, and a decode step (NC 1) matches the
 * same token inside a batch. */
static inline __attribute__((always_inline)) void tile_fw_rows(int kind, const int R, const int NC, int64_t n,
                                                               const uint8_t *w0, size_t ws,
                                                               const float *const xr[4], float s[8][4]) {
    __m256 a[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) a[r][c] = _mm256_setzero_ps();
    int64_t i = 0;
    /* one token: the R rows are read as R streams; the next R rows (one
     * contiguous span) are prefetched meanwhile, at the pace this block is
     * consumed, which keeps decode at the DRAM rate of a single stream */
    const size_t esz = kind == SL_FW_F32 ? 4 : 2;
    const uint8_t *pf = w0 + (size_t)R * ws;
    for (; i + 8 <= n; i += 8) {
        if (NC == 1) {
            const uint8_t *p = pf + (size_t)i * esz * (size_t)R;
            for (size_t o = 0; o < 8 * esz * (size_t)R; o += 64) _mm_prefetch((const char *)(p + o), _MM_HINT_T0);
        }
        __m256 v[8];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) v[r] = fw_load8(kind, w0 + (size_t)r * ws, i);
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) {
            const __m256 xv = _mm256_loadu_ps(xr[c] + i);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) a[r][c] = _mm256_fmadd_ps(v[r], xv, a[r][c]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        if (NC == 4)
            _mm_storeu_ps(s[r], fw_hsum4(a[r][0], a[r][1], a[r][2], a[r][3]));
        else
            _mm_storeu_ps(s[r], fw_hsum4(a[r][0], a[r][0], a[r][0], a[r][0]));
    }
    for (; i < n; i++)
        for (int r = 0; r < R; r++) {
            const float u = sl_fw_load1(kind, w0 + (size_t)r * ws, i);
            for (int c = 0; c < NC; c++) s[r][c] += u * xr[c][i];
        }
}

/* Float-weight tiles (also the decode matmul of these types: nc 1 goes 8
 * rows at a time). */
static inline __attribute__((always_inline)) void tile_fw(int kind, int64_t n, const void *w, size_t ws, int nr,
                                                          const void *x, size_t xs, int nc, float *out, size_t os) {
    SL_TILE_FW_LOOP(tile_fw_rows, 3);
}
static void tile_f32(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nc, float *out,
                     size_t os) {
    tile_fw(SL_FW_F32, n, w, ws, nr, x, xs, nc, out, os);
}
static void tile_f16(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nc, float *out,
                     size_t os) {
    tile_fw(SL_FW_F16, n, w, ws, nr, x, xs, nc, out, os);
}
static void tile_bf16(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nc, float *out,
                      size_t os) {
    tile_fw(SL_FW_BF16, n, w, ws, nr, x, xs, nc, out, os);
}

/* ---- iq4_nl / iq4_xs: 4-bit indices into a 16-value codebook ----
 *
 * One vpshufb maps 32 indices to their codebook bytes (−127..113); the
 * products with the q8 activations then go as q8_0's do: |v| · sign(x, v)
 * through vpmaddubsw. iq4_xs applies each 32-element sub-block's scale
 * with the widening vpmaddwd. */
static inline __m256i cb_values32(const int8_t *cb, const uint8_t *qs) {
    const __m256i kv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)cb));
    return _mm256_shuffle_epi8(kv, nibbles32(qs));
}
static inline __m256i iq4_values32(const uint8_t *qs) {
    return cb_values32(sl_kvalues_iq4nl, qs);
}
static inline __m256i iq4_pairs(__m256i v, const int8_t *x) {
    return _mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)x), v));
}

/* iq4_nl against q8_0 blocks, or (fscale) a float-scale q8_0 row
 * (sl_q8f_t, decode: no f16 conversion of the activation scales). */
static inline __attribute__((always_inline)) float iq4nl_dot(bool fscale, int64_t n, const void *vw,
                                                             const void *vx) {
    const sl_block_iq4_nl *w = vw;
    const __m256i ones = _mm256_set1_epi16(1);
#define IQ4NL_X(b) (fscale ? ((const sl_q8f_t *)vx)[b].qs : ((const sl_block_q8_0 *)vx)[b].qs)
#define IQ4NL_D(b) (fscale ? ((const sl_q8f_t *)vx)[b].d : f16(((const sl_block_q8_0 *)vx)[b].d))
#define IQ4NL_STEP(a, b)                                                                                \
    a = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * IQ4NL_D(b)),                                       \
                        _mm256_cvtepi32_ps(_mm256_madd_epi16(iq4_pairs(iq4_values32(w[b].qs), IQ4NL_X(b)), ones)), a)
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int64_t b = 0;
    for (; b + 2 <= n / 32; b += 2) {
        IQ4NL_STEP(a0, b);
        IQ4NL_STEP(a1, b + 1);
    }
    if (b < n / 32) IQ4NL_STEP(a0, b);
#undef IQ4NL_STEP
#undef IQ4NL_D
#undef IQ4NL_X
    return hsum8(_mm256_add_ps(a0, a1));
}
static float dot_iq4_nl(int64_t n, const void *w, const void *x) {
    return iq4nl_dot(false, n, w, x);
}

/* One iq4_xs row against NC (1 or 4) q8_0 rows (Silica dots iq4_xs with
 * 32-blocks of activations, as iq4_nl: the same products with a finer
 * activation scale, and the 32-block GEMM for many tokens): each
 * sub-block's values looked up once for all of them. */
static inline __attribute__((always_inline)) void iq4xs_row(const int NC, int64_t n, const sl_block_iq4_xs *w,
                                                            const sl_block_q8_0 *const xr[4], float out[4]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4];
    for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const float d = f16(w[i].d);
#pragma GCC unroll 8
        for (int ib = 0; ib < 8; ib++) {
            const float dl = d * (float)sl_iq4xs_scale(&w[i], ib);
            const __m256i v = iq4_values32(w[i].qs + 16 * ib);
            const int64_t b = 8 * i + ib;
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++)
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dl * f16(xr[c][b].d)),
                                         _mm256_cvtepi32_ps(_mm256_madd_epi16(iq4_pairs(v, xr[c][b].qs), ones)),
                                         acc[c]);
        }
    }
    for (int c = 0; c < NC; c++) out[c] = hsum8(acc[c]);
}

static float dot_iq4_xs(int64_t n, const void *w, const void *x) {
    const sl_block_q8_0 *xr[4] = {x, x, x, x};
    float out[4];
    iq4xs_row(1, n, w, xr, out);
    return out[0];
}

static float dotf_iq4_nl(int64_t n, const void *w, const sl_q8f_t *x) {
    return iq4nl_dot(true, n, w, x);
}

/* mxfp4: iq4_nl's products with ggml's doubled E2M1 codebook (−12..12) and
 * the block scale 2^(e − 128); q8_0 blocks, or (fscale) a float-scale row. */
static inline __attribute__((always_inline)) float mxfp4_dot(bool fscale, int64_t n, const void *vw,
                                                             const void *vx) {
    const sl_block_mxfp4 *w = vw;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (int64_t b = 0; b < n / 32; b++) {
        const int8_t *xq = fscale ? ((const sl_q8f_t *)vx)[b].qs : ((const sl_block_q8_0 *)vx)[b].qs;
        const float dx = fscale ? ((const sl_q8f_t *)vx)[b].d : f16(((const sl_block_q8_0 *)vx)[b].d);
        const __m256 p = _mm256_cvtepi32_ps(
            _mm256_madd_epi16(iq4_pairs(cb_values32(sl_kvalues_mxfp4, w[b].qs), xq), ones));
        if (b & 1)
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(sl_e8m0_half(w[b].e) * dx), p, a1);
        else
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(sl_e8m0_half(w[b].e) * dx), p, a0);
    }
    return hsum8(_mm256_add_ps(a0, a1));
}
static float dot_mxfp4(int64_t n, const void *w, const void *x) {
    return mxfp4_dot(false, n, w, x);
}
static float dotf_mxfp4(int64_t n, const void *w, const sl_q8f_t *x) {
    return mxfp4_dot(true, n, w, x);
}

/* iq4_xs against a float-scale q8_0 row (decode). */
static float dotf_iq4_xs(int64_t n, const void *vw, const sl_q8f_t *x) {
    const sl_block_iq4_xs *w = vw;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const float d = f16(w[i].d);
        const sl_q8f_t *xb = x + 8 * i;
#pragma GCC unroll 4
        for (int ib = 0; ib < 8; ib += 2) {
            const __m256i p0 = _mm256_madd_epi16(iq4_pairs(iq4_values32(w[i].qs + 16 * ib), xb[ib].qs), ones);
            const __m256i p1 = _mm256_madd_epi16(iq4_pairs(iq4_values32(w[i].qs + 16 * ib + 16), xb[ib + 1].qs), ones);
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)sl_iq4xs_scale(&w[i], ib) * xb[ib].d), _mm256_cvtepi32_ps(p0), a0);
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)sl_iq4xs_scale(&w[i], ib + 1) * xb[ib + 1].d),
                                 _mm256_cvtepi32_ps(p1), a1);
        }
    }
    return hsum8(_mm256_add_ps(a0, a1));
}

static void tile_iq4_xs(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nc, float *out,
                        size_t os) {
    const sl_block_q8_0 *xr[4];
    for (int c = 0; c < 4; c++) xr[c] = (const void *)((const uint8_t *)x + (size_t)(c < nc ? c : 0) * xs);
    for (int r = 0; r < nr; r++) {
        const sl_block_iq4_xs *wr = (const void *)((const uint8_t *)w + (size_t)r * ws);
        float o[4];
        if (nc == 4) {
            iq4xs_row(4, n, wr, xr, o);
        } else {
            for (int c = 0; c < nc; c++) {
                const sl_block_q8_0 *x1[4] = {xr[c], xr[c], xr[c], xr[c]};
                iq4xs_row(1, n, wr, x1, o + c);
            }
        }
        for (int c = 0; c < nc; c++) out[(size_t)c * os + (size_t)r] = o[c];
    }
}

/* ---- 32-element blocks against q8_0 / q8_1 ---- */

/* Signed weight bytes of one block, for the q8_0-dotted types. */
static inline __m256i unpack_q4_0(const sl_block_q4_0 *b) {
    return _mm256_sub_epi8(nibbles32(b->qs), _mm256_set1_epi8(8));
}
static inline __m256i unpack_q5_0(const sl_block_q5_0 *b) {
    /* value = nibble | 16·bit − 16: OR 0xf0 (= −16 + nibble) where the bit is clear */
    __m256i hi = _mm256_andnot_si256(bits32(b->qh), _mm256_set1_epi8((char)0xf0));
    return _mm256_or_si256(nibbles32(b->qs), hi);
}
static inline __m256i unpack_q8_0(const sl_block_q8_0 *b) {
    return _mm256_loadu_si256((const __m256i *)b->qs);
}

#define DEF_DOT_Q0(name, btype, unpack)                                                            \
    static float name(int64_t n, const void *vw, const void *vx) {                                 \
        const btype *w = vw;                                                                       \
        const sl_block_q8_0 *x = vx;                                                               \
        const int64_t nb = n / 32;                                                                 \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                             \
        int64_t i = 0;                                                                             \
        for (; i + 2 <= nb; i += 2) {                                                              \
            __m256 p0 = dot_i8(unpack(&w[i]), _mm256_loadu_si256((const __m256i *)x[i].qs));       \
            __m256 p1 = dot_i8(unpack(&w[i + 1]), _mm256_loadu_si256((const __m256i *)x[i + 1].qs)); \
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[i].d) * f16(x[i].d)), p0, acc0);           \
            acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[i + 1].d) * f16(x[i + 1].d)), p1, acc1);   \
        }                                                                                          \
        for (; i < nb; i++) {                                                                      \
            __m256 p0 = dot_i8(unpack(&w[i]), _mm256_loadu_si256((const __m256i *)x[i].qs));       \
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[i].d) * f16(x[i].d)), p0, acc0);           \
        }                                                                                          \
        return hsum8(_mm256_add_ps(acc0, acc1));                                                   \
    }

DEF_DOT_Q0(dot_q4_0, sl_block_q4_0, unpack_q4_0)
DEF_DOT_Q0(dot_q5_0, sl_block_q5_0, unpack_q5_0)
DEF_DOT_Q0(dot_q8_0, sl_block_q8_0, unpack_q8_0)

static float dot_q4_1(int64_t n, const void *vw, const void *vx) {
    const sl_block_q4_1 *w = vw;
    const sl_block_q8_1 *x = vx;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int64_t i = 0; i < n / 32; i++) {
        summs += f16(w[i].m) * f16(x[i].s);
        __m256 p = dot_u8(nibbles32(w[i].qs), _mm256_loadu_si256((const __m256i *)x[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[i].d) * f16(x[i].d)), p, acc);
    }
    return hsum8(acc) + summs;
}

static float dot_q5_1(int64_t n, const void *vw, const void *vx) {
    const sl_block_q5_1 *w = vw;
    const sl_block_q8_1 *x = vx;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int64_t i = 0; i < n / 32; i++) {
        summs += f16(w[i].m) * f16(x[i].s);
        __m256i u = _mm256_or_si256(nibbles32(w[i].qs),
                                    _mm256_and_si256(bits32(w[i].qh), _mm256_set1_epi8(0x10)));
        __m256 p = dot_u8(u, _mm256_loadu_si256((const __m256i *)x[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[i].d) * f16(x[i].d)), p, acc);
    }
    return hsum8(acc) + summs;
}

/* ---- k-quants against q8_K ---- */

/* The 12 scale bytes of q4_K/q5_K as 8 scales (bytes 0-7) and 8 mins (8-15). */
static inline __m256i k4_scales_mins16(const uint8_t *s12) {
    uint32_t u[4];
    memcpy(u, s12, 12);
    const uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
    u[3] = ((u[2] >> 4) & k2) | (((u[1] >> 6) & k3) << 4);
    uint32_t aux = u[1] & k1;
    u[1] = (u[2] & k2) | (((u[0] >> 6) & k3) << 4);
    u[2] = aux;
    u[0] &= k1;
    return _mm256_cvtepu8_epi16(_mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]));
}

/* shuffle that broadcasts the 16-bit scale i over a 256-bit vector */
static inline __m256i k4_scale_shuffle(int i) {
    return _mm256_set1_epi16((short)((2 * i) | ((2 * i + 1) << 8)));
}

static inline float k_min_term(__m256i mins_and_scales, const int16_t *bsums) {
    /* mins (high 8 int16) · (sums of 32 activations = pairs of bsums) */
    __m256i q8sums = _mm256_loadu_si256((const __m256i *)bsums);
    __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1));
    __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
    prod = _mm_add_epi32(prod, _mm_shuffle_epi32(prod, 0x4e));
    prod = _mm_add_epi32(prod, _mm_shuffle_epi32(prod, 0xb1));
    return (float)_mm_cvtsi128_si32(prod);
}

static float dot_q4_K(int64_t n, const void *vw, const void *vx) {
    const sl_block_q4_K *w = vw;
    const sl_block_q8_K *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0xf);
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const float d = x[i].d * f16(w[i].d), dmin = x[i].d * f16(w[i].dmin);
        __m256i ms = k4_scales_mins16(w[i].scales);
        accm += dmin * k_min_term(ms, x[i].bsums);
        __m128i sc128 = _mm256_castsi256_si128(ms);
        __m256i scales = _mm256_set_m128i(sc128, sc128);
        const uint8_t *q4 = w[i].qs;
        const int8_t *q8 = x[i].qs;
        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m256i sl = _mm256_shuffle_epi8(scales, k4_scale_shuffle(2 * j));
            __m256i sh = _mm256_shuffle_epi8(scales, k4_scale_shuffle(2 * j + 1));
            __m256i bits = _mm256_loadu_si256((const __m256i *)q4);
            q4 += 32;
            __m256i ql = _mm256_and_si256(bits, m4);
            __m256i qh = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            __m256i pl = _mm256_maddubs_epi16(ql, _mm256_loadu_si256((const __m256i *)q8));
            __m256i ph = _mm256_maddubs_epi16(qh, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
            q8 += 64;
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(sl, pl), _mm256_madd_epi16(sh, ph)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc) - accm;
}

static float dot_q5_K(int64_t n, const void *vw, const void *vx) {
    const sl_block_q5_K *w = vw;
    const sl_block_q8_K *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0xf);
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const float d = x[i].d * f16(w[i].d), dmin = x[i].d * f16(w[i].dmin);
        __m256i ms = k4_scales_mins16(w[i].scales);
        accm += dmin * k_min_term(ms, x[i].bsums);
        __m128i sc128 = _mm256_castsi256_si128(ms);
        __m256i scales = _mm256_set_m128i(sc128, sc128);
        const uint8_t *q5 = w[i].qs;
        const int8_t *q8 = x[i].qs;
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)w[i].qh);
        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m256i sl = _mm256_shuffle_epi8(scales, k4_scale_shuffle(2 * j));
            __m256i sh = _mm256_shuffle_epi8(scales, k4_scale_shuffle(2 * j + 1));
            __m256i bits = _mm256_loadu_si256((const __m256i *)q5);
            q5 += 32;
            /* bit 2j / 2j+1 of each qh byte, moved to bit 4 */
            __m256i hl = _mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), _mm256_set1_epi8(1));
            __m256i hh = _mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), _mm256_set1_epi8(1));
            __m256i ql = _mm256_or_si256(_mm256_and_si256(bits, m4), _mm256_slli_epi16(hl, 4));
            __m256i qh = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                         _mm256_slli_epi16(hh, 4));
            __m256i pl = _mm256_maddubs_epi16(ql, _mm256_loadu_si256((const __m256i *)q8));
            __m256i ph = _mm256_maddubs_epi16(qh, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
            q8 += 64;
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(sl, pl), _mm256_madd_epi16(sh, ph)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc) - accm;
}

/* q6_K scales g and g + 1 of a super-block's 16 (sc, loaded once), each
 * broadcast over 8 int16 lanes: one vpshufb with a constant mask (g is a
 * constant once the callers' loops unroll) and one widening. */
static inline __m256i q6_scales16(__m128i sc, int g) {
    const __m128i pick = _mm_set_epi64x((long long)(0x0101010101010101ULL * (uint64_t)(g + 1)),
                                        (long long)(0x0101010101010101ULL * (uint64_t)g));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, pick));
}

/* q6_K: the 4 × 32 codes (0..63) of one 128-element half of a
 * super-block from its 64 ql bytes and 32 qh bytes; q[k] = elements
 * 32k..32k+31 of the half. */
static inline __attribute__((always_inline)) void q6_codes128(const uint8_t *ql, const uint8_t *qh, __m256i q[4]) {
    const __m256i m4 = _mm256_set1_epi8(0xf), m2 = _mm256_set1_epi8(3);
    const __m256i b1 = _mm256_loadu_si256((const __m256i *)ql);
    const __m256i b2 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    const __m256i bh = _mm256_loadu_si256((const __m256i *)qh);
    q[0] = _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(bh, m2), 4));
    q[1] = _mm256_or_si256(_mm256_and_si256(b2, m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m2), 4));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m2), 4));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m2), 4));
}

static float dot_q6_K(int64_t n, const void *vw, const void *vx) {
    const sl_block_q6_K *w = vw;
    const sl_block_q8_K *x = vx;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const float d = x[i].d * f16(w[i].d);
        const uint8_t *ql = w[i].ql, *qh = w[i].qh;
        const int8_t *q8 = x[i].qs;
        const __m128i sc = _mm_loadu_si128((const __m128i *)w[i].scales);
        /* the −32 offset once per super-block: 32 · Σ_s scale_s · (Σx over
         * sub-block s), from q8_K's bsums */
        __m256i sumi = _mm256_sub_epi32(
            _mm256_setzero_si256(),
            _mm256_slli_epi32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(sc), _mm256_loadu_si256((const __m256i *)x[i].bsums)),
                              5));
#pragma GCC unroll 2
        for (int j = 0; j < 2; j++) {
            __m256i q[4];
            q6_codes128(ql, qh, q);
            ql += 64;
            qh += 32;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m256i xv = _mm256_loadu_si256((const __m256i *)(q8 + 32 * k));
                __m256i p = _mm256_maddubs_epi16(q[k], xv);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(q6_scales16(sc, 8 * j + 2 * k), p));
            }
            q8 += 128;
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

/* ---- GEMM tiles (prefill) ----
 *
 * One weight row against 4 activation rows at a time: the weight block is
 * loaded and unpacked once and used 4 times from registers (4 accumulators,
 * the unpacked weights and a few temporaries fit the 16 ymm registers). The
 * tile function walks its nr weight rows; the activation rows stay in L1
 * across them. Fewer than 4 tokens fall back to the dot product.
 */

#define DEF_TILE_Q0(name, btype, unpack, dotfn)                                                    \
    static void name(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs,        \
                     int nc, float *out, size_t os) {                                              \
        const int64_t nb = n / 32;                                                                 \
        for (int r = 0; r < nr; r++) {                                                             \
            const btype *wr = (const btype *)((const uint8_t *)w + (size_t)r * ws);                \
            if (nc < 4) {                                                                          \
                for (int c = 0; c < nc; c++)                                                       \
                    out[(size_t)c * os + (size_t)r] = dotfn(n, wr, (const uint8_t *)x + (size_t)c * xs); \
                continue;                                                                          \
            }                                                                                      \
            const sl_block_q8_0 *x0 = x, *x1 = (const void *)((const uint8_t *)x + xs),            \
                                *x2 = (const void *)((const uint8_t *)x + 2 * xs),                 \
                                *x3 = (const void *)((const uint8_t *)x + 3 * xs);                 \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                            \
            const __m256i ones = _mm256_set1_epi16(1);                                             \
            for (int64_t i = 0; i < nb; i++) {                                                     \
                __m256i wv = unpack(&wr[i]);                                                       \
                __m256i aw = _mm256_sign_epi8(wv, wv);                                             \
                const float dw = f16(wr[i].d);                                                     \
                __m256i p;                                                                         \
                p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)x0[i].qs), wv)); \
                a0 = _mm256_fmadd_ps(_mm256_set1_ps(dw * f16(x0[i].d)), _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones)), a0); \
                p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)x1[i].qs), wv)); \
                a1 = _mm256_fmadd_ps(_mm256_set1_ps(dw * f16(x1[i].d)), _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones)), a1); \
                p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)x2[i].qs), wv)); \
                a2 = _mm256_fmadd_ps(_mm256_set1_ps(dw * f16(x2[i].d)), _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones)), a2); \
                p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)x3[i].qs), wv)); \
                a3 = _mm256_fmadd_ps(_mm256_set1_ps(dw * f16(x3[i].d)), _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones)), a3); \
            }                                                                                      \
            out[r] = hsum8(a0);                                                                    \
            out[os + (size_t)r] = hsum8(a1);                                                       \
            out[2 * os + (size_t)r] = hsum8(a2);                                                   \
            out[3 * os + (size_t)r] = hsum8(a3);                                                   \
        }                                                                                          \
    }

DEF_TILE_Q0(tile_q4_0, sl_block_q4_0, unpack_q4_0, dot_q4_0)
DEF_TILE_Q0(tile_q5_0, sl_block_q5_0, unpack_q5_0, dot_q5_0)
DEF_TILE_Q0(tile_q8_0, sl_block_q8_0, unpack_q8_0, dot_q8_0)

static void tile_q4_K(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nc,
                      float *out, size_t os) {
    const __m256i m4 = _mm256_set1_epi8(0xf);
    const int64_t nb = n / SL_QK_K;
    for (int r = 0; r < nr; r++) {
        const sl_block_q4_K *wr = (const void *)((const uint8_t *)w + (size_t)r * ws);
        if (nc < 4) {
            for (int c = 0; c < nc; c++)
                out[(size_t)c * os + (size_t)r] = dot_q4_K(n, wr, (const uint8_t *)x + (size_t)c * xs);
            continue;
        }
        const sl_block_q8_K *xr[4];
        for (int c = 0; c < 4; c++) xr[c] = (const void *)((const uint8_t *)x + (size_t)c * xs);
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        float accm[4] = {0, 0, 0, 0};
        for (int64_t i = 0; i < nb; i++) {
            const float dw = f16(wr[i].d), dmw = f16(wr[i].dmin);
            __m256i ms = k4_scales_mins16(wr[i].scales);
            __m128i sc128 = _mm256_castsi256_si128(ms);
            __m256i scales = _mm256_set_m128i(sc128, sc128);
            __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
            const uint8_t *q4 = wr[i].qs;
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                __m256i sl = _mm256_shuffle_epi8(scales, k4_scale_shuffle(2 * j));
                __m256i sh = _mm256_shuffle_epi8(scales, k4_scale_shuffle(2 * j + 1));
                __m256i bits = _mm256_loadu_si256((const __m256i *)(q4 + 32 * j));
                __m256i ql = _mm256_and_si256(bits, m4);
                __m256i qh = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
#define K4_STEP(sv, c)                                                                             \
    do {                                                                                           \
        const int8_t *q8 = xr[c][i].qs + 64 * j;                                                   \
        __m256i pl = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(ql, _mm256_loadu_si256((const __m256i *)q8))); \
        __m256i ph = _mm256_madd_epi16(sh, _mm256_maddubs_epi16(qh, _mm256_loadu_si256((const __m256i *)(q8 + 32)))); \
        sv = _mm256_add_epi32(sv, _mm256_add_epi32(pl, ph));                                       \
    } while (0)
                K4_STEP(s0, 0);
                K4_STEP(s1, 1);
                K4_STEP(s2, 2);
                K4_STEP(s3, 3);
#undef K4_STEP
            }
            acc[0] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xr[0][i].d), _mm256_cvtepi32_ps(s0), acc[0]);
            acc[1] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xr[1][i].d), _mm256_cvtepi32_ps(s1), acc[1]);
            acc[2] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xr[2][i].d), _mm256_cvtepi32_ps(s2), acc[2]);
            acc[3] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xr[3][i].d), _mm256_cvtepi32_ps(s3), acc[3]);
            for (int c = 0; c < 4; c++) accm[c] += dmw * xr[c][i].d * k_min_term(ms, xr[c][i].bsums);
        }
        for (int c = 0; c < 4; c++) out[(size_t)c * os + (size_t)r] = hsum8(acc[c]) - accm[c];
    }
}

/* q6_K tile: the −32 offset is taken out with the activation's bsums
 * (32 · Σ scale_g · bsum_g) instead of a second byte multiply per token. */
static void tile_q6_K(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nc,
                      float *out, size_t os) {
    const int64_t nb = n / SL_QK_K;
    for (int r = 0; r < nr; r++) {
        const sl_block_q6_K *wr = (const void *)((const uint8_t *)w + (size_t)r * ws);
        if (nc < 4) {
            for (int c = 0; c < nc; c++)
                out[(size_t)c * os + (size_t)r] = dot_q6_K(n, wr, (const uint8_t *)x + (size_t)c * xs);
            continue;
        }
        const sl_block_q8_K *xr[4];
        for (int c = 0; c < 4; c++) xr[c] = (const void *)((const uint8_t *)x + (size_t)c * xs);
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t i = 0; i < nb; i++) {
            const float dw = f16(wr[i].d);
            const uint8_t *ql = wr[i].ql, *qh = wr[i].qh;
            __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
            /* offset term: 16 scales · 16 bsums per token */
            const __m128i sc8 = _mm_loadu_si128((const __m128i *)wr[i].scales);
            __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
            int off[4];
            for (int c = 0; c < 4; c++) {
                __m256i pr = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)xr[c][i].bsums));
                __m128i t = _mm_add_epi32(_mm256_castsi256_si128(pr), _mm256_extracti128_si256(pr, 1));
                t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
                t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
                off[c] = 32 * _mm_cvtsi128_si32(t);
            }
#pragma GCC unroll 2
            for (int j = 0; j < 2; j++) {
                __m256i qv[4];
                q6_codes128(ql + 64 * j, qh + 32 * j, qv);
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    const __m256i q = qv[k];
                    __m256i sc = q6_scales16(sc8, 8 * j + 2 * k);
                    const int64_t o = 128 * j + 32 * k;
#define Q6_STEP(sv, c) sv = _mm256_add_epi32(sv, _mm256_madd_epi16(sc, _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)(xr[c][i].qs + o)))))
                    Q6_STEP(s0, 0);
                    Q6_STEP(s1, 1);
                    Q6_STEP(s2, 2);
                    Q6_STEP(s3, 3);
#undef Q6_STEP
                }
            }
            s0 = _mm256_sub_epi32(s0, _mm256_setr_epi32(off[0], 0, 0, 0, 0, 0, 0, 0));
            s1 = _mm256_sub_epi32(s1, _mm256_setr_epi32(off[1], 0, 0, 0, 0, 0, 0, 0));
            s2 = _mm256_sub_epi32(s2, _mm256_setr_epi32(off[2], 0, 0, 0, 0, 0, 0, 0));
            s3 = _mm256_sub_epi32(s3, _mm256_setr_epi32(off[3], 0, 0, 0, 0, 0, 0, 0));
            acc[0] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xr[0][i].d), _mm256_cvtepi32_ps(s0), acc[0]);
            acc[1] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xr[1][i].d), _mm256_cvtepi32_ps(s1), acc[1]);
            acc[2] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xr[2][i].d), _mm256_cvtepi32_ps(s2), acc[2]);
            acc[3] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xr[3][i].d), _mm256_cvtepi32_ps(s3), acc[3]);
        }
        for (int c = 0; c < 4; c++) out[(size_t)c * os + (size_t)r] = hsum8(acc[c]);
    }
}

/* ---- panel GEMM for q4_0 / q5_0 / q8_0 (prefill) ----
 *
 * Two weight rows × the 4 tokens of a sl_q8x4_t panel per pass: 8 float
 * accumulators. The panel's scales are floats, so the 8 scale products of a
 * block are one multiply; they go through a small stack array and come back
 * as broadcast loads (load ports, not ALU). q4_0/q5_0 codes are used
 * unsigned (0..15 / 0..31) so one vpmaddubsw per token needs no sign fix-up;
 * their −8 / −16 offset is Σ_b dw·(dx·Σx), kept per row and token in one
 * vector beside the accumulators. q8_0 uses |w| and sign(x, w).
 */
enum { G_Q4_0, G_Q5_0, G_Q8_0 };

static inline __attribute__((always_inline)) __m256i g_unpack(int kind, const uint8_t *wr, int64_t b) {
    if (kind == G_Q4_0) return nibbles32(((const sl_block_q4_0 *)wr)[b].qs);
    if (kind == G_Q5_0) {
        const sl_block_q5_0 *blk = (const sl_block_q5_0 *)wr + b;
        return _mm256_or_si256(nibbles32(blk->qs), _mm256_and_si256(bits32(blk->qh), _mm256_set1_epi8(0x10)));
    }
    return _mm256_loadu_si256((const __m256i *)((const sl_block_q8_0 *)wr)[b].qs);
}

static inline __attribute__((always_inline)) float g_scale(int kind, const uint8_t *wr, int64_t b) {
    if (kind == G_Q4_0) return f16(((const sl_block_q4_0 *)wr)[b].d);
    if (kind == G_Q5_0) return f16(((const sl_block_q5_0 *)wr)[b].d);
    return f16(((const sl_block_q8_0 *)wr)[b].d);
}

/* integer dot of one unpacked weight block with one token's 32 bytes, as 8 floats */
static inline __attribute__((always_inline)) __m256 g_pdot(int kind, __m256i wv, __m256i aw, const int8_t *xq) {
    __m256i xv = _mm256_load_si256((const __m256i *)xq);
    __m256i p = kind == G_Q8_0 ? _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv)) : _mm256_maddubs_epi16(wv, xv);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

static inline __attribute__((always_inline)) void gemm_q0(int kind, int64_t n, const void *vw, size_t ws, int nr,
                                                          const sl_q8x4_t *x, int nc, float *out, size_t os) {
    const int64_t nb = n / 32;
    const float off = kind == G_Q4_0 ? 8.0f : kind == G_Q5_0 ? 16.0f : 0.0f;
    const uint8_t *w = vw;
    float sc[8] __attribute__((aligned(32)));
    float cr[8] __attribute__((aligned(32)));
    int r = 0;
    for (; r + 2 <= nr; r += 2) {
        const uint8_t *w0 = w + (size_t)r * ws, *w1 = w0 + ws;
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
        __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00, corr = a00;
        for (int64_t b = 0; b < nb; b++) {
            const sl_q8x4_t *xb = x + b;
            __m256 dw = _mm256_set_m128(_mm_set1_ps(g_scale(kind, w1, b)), _mm_set1_ps(g_scale(kind, w0, b)));
            __m128 xd = _mm_load_ps(xb->d);
            _mm256_store_ps(sc, _mm256_mul_ps(dw, _mm256_set_m128(xd, xd)));
            if (kind != G_Q8_0) {
                __m128 xs = _mm_load_ps(xb->s);
                corr = _mm256_fmadd_ps(dw, _mm256_set_m128(xs, xs), corr);
            }
            __m256i v0 = g_unpack(kind, w0, b), v1 = g_unpack(kind, w1, b);
            __m256i s0 = v0, s1 = v1;
            if (kind == G_Q8_0) {
                s0 = _mm256_sign_epi8(v0, v0);
                s1 = _mm256_sign_epi8(v1, v1);
            }
            a00 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + 0), g_pdot(kind, v0, s0, xb->qs[0]), a00);
            a10 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + 4), g_pdot(kind, v1, s1, xb->qs[0]), a10);
            a01 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + 1), g_pdot(kind, v0, s0, xb->qs[1]), a01);
            a11 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + 5), g_pdot(kind, v1, s1, xb->qs[1]), a11);
            a02 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + 2), g_pdot(kind, v0, s0, xb->qs[2]), a02);
            a12 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + 6), g_pdot(kind, v1, s1, xb->qs[2]), a12);
            a03 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + 3), g_pdot(kind, v0, s0, xb->qs[3]), a03);
            a13 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + 7), g_pdot(kind, v1, s1, xb->qs[3]), a13);
        }
        _mm256_store_ps(cr, corr);
        const __m256 a[8] = {a00, a01, a02, a03, a10, a11, a12, a13};
        for (int c = 0; c < nc; c++) {
            out[(size_t)c * os + (size_t)r] = hsum8(a[c]) - off * cr[c];
            out[(size_t)c * os + (size_t)r + 1] = hsum8(a[4 + c]) - off * cr[4 + c];
        }
    }
    for (; r < nr; r++) {
        const uint8_t *w0 = w + (size_t)r * ws;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        __m128 corr = _mm_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const sl_q8x4_t *xb = x + b;
            __m128 dw = _mm_set1_ps(g_scale(kind, w0, b));
            _mm_store_ps(sc, _mm_mul_ps(dw, _mm_load_ps(xb->d)));
            if (kind != G_Q8_0) corr = _mm_fmadd_ps(dw, _mm_load_ps(xb->s), corr);
            __m256i v0 = g_unpack(kind, w0, b), s0 = v0;
            if (kind == G_Q8_0) s0 = _mm256_sign_epi8(v0, v0);
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + 0), g_pdot(kind, v0, s0, xb->qs[0]), a0);
            a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + 1), g_pdot(kind, v0, s0, xb->qs[1]), a1);
            a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + 2), g_pdot(kind, v0, s0, xb->qs[2]), a2);
            a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + 3), g_pdot(kind, v0, s0, xb->qs[3]), a3);
        }
        _mm_store_ps(cr, corr);
        const __m256 a[4] = {a0, a1, a2, a3};
        for (int c = 0; c < nc; c++) out[(size_t)c * os + (size_t)r] = hsum8(a[c]) - off * cr[c];
    }
}

static void gemm_q4_0(int64_t n, const void *w, size_t ws, int nr, const sl_q8x4_t *x, int nc, float *out, size_t os) {
    gemm_q0(G_Q4_0, n, w, ws, nr, x, nc, out, os);
}
static void gemm_q5_0(int64_t n, const void *w, size_t ws, int nr, const sl_q8x4_t *x, int nc, float *out, size_t os) {
    gemm_q0(G_Q5_0, n, w, ws, nr, x, nc, out, os);
}
static void gemm_q8_0(int64_t n, const void *w, size_t ws, int nr, const sl_q8x4_t *x, int nc, float *out, size_t os) {
    gemm_q0(G_Q8_0, n, w, ws, nr, x, nc, out, os);
}

/* ---- unpacked-row GEMM (prefill with many tokens) ----
 *
 * A chunk of rows is unpacked once into 8-row panels (SL_U_PANEL layout,
 * kern_impl.h) and then reused by every 4-token group. In a panel, the codes
 * of one block are stored 4 elements × 8 rows per 32-byte vector, so one
 * vpmaddubsw against 4 broadcast activation bytes leaves each row's partial
 * dot in its own lane: the block dots of 8 rows × 1 token sum vertically
 * (no horizontal adds), and one convert + FMA per block and token applies
 * the 8 rows' scales at once; the result is 8 consecutive outputs.
 * q4_1/q5_1 (whose activations would be q8_1 in the dot path) use the same
 * q8_0-style panel: their offset is m · (dx · Σx) from the panel's s. */
static inline void u_put(uint8_t *u, int64_t nb, int r, int64_t b, float d, float m, __m256i q) {
    uint8_t *pb = u + (size_t)(r / 8) * (size_t)nb * SL_U_PANEL_BLOCK + (size_t)b * SL_U_PANEL_BLOCK;
    const int lane = r % 8;
    ((float *)pb)[lane] = d;
    ((float *)pb)[8 + lane] = m;
    uint32_t c[8];
    _mm256_storeu_si256((__m256i *)c, q);
    for (int g = 0; g < 8; g++) memcpy(pb + 64 + 32 * g + 4 * lane, &c[g], 4);
}

/* rows nr..7 of the last panel: zero scales, offsets and codes */
static void u_pad(uint8_t *u, int64_t nb, int nr) {
    for (int r = nr; r % 8; r++)
        for (int64_t b = 0; b < nb; b++) u_put(u, nb, r, b, 0.0f, 0.0f, _mm256_setzero_si256());
}

static void urows_q4_0(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t nb = n / 32;
    for (int r = 0; r < nr; r++) {
        const sl_block_q4_0 *x = (const void *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t b = 0; b < nb; b++) {
            float d = f16(x[b].d);
            u_put(dst, nb, r, b, d, -8.0f * d, nibbles32(x[b].qs));
        }
    }
    u_pad(dst, nb, nr);
}
static void urows_q5_0(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t nb = n / 32;
    for (int r = 0; r < nr; r++) {
        const sl_block_q5_0 *x = (const void *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t b = 0; b < nb; b++) {
            float d = f16(x[b].d);
            __m256i q = _mm256_or_si256(nibbles32(x[b].qs), _mm256_and_si256(bits32(x[b].qh), _mm256_set1_epi8(0x10)));
            u_put(dst, nb, r, b, d, -16.0f * d, q);
        }
    }
    u_pad(dst, nb, nr);
}
static void urows_q4_1(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t nb = n / 32;
    for (int r = 0; r < nr; r++) {
        const sl_block_q4_1 *x = (const void *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t b = 0; b < nb; b++) u_put(dst, nb, r, b, f16(x[b].d), f16(x[b].m), nibbles32(x[b].qs));
    }
    u_pad(dst, nb, nr);
}
static void urows_q5_1(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t nb = n / 32;
    for (int r = 0; r < nr; r++) {
        const sl_block_q5_1 *x = (const void *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t b = 0; b < nb; b++) {
            __m256i q = _mm256_or_si256(nibbles32(x[b].qs), _mm256_and_si256(bits32(x[b].qh), _mm256_set1_epi8(0x10)));
            u_put(dst, nb, r, b, f16(x[b].d), f16(x[b].m), q);
        }
    }
    u_pad(dst, nb, nr);
}
static void urows_q8_0(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t nb = n / 32;
    for (int r = 0; r < nr; r++) {
        const sl_block_q8_0 *x = (const void *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t b = 0; b < nb; b++)
            u_put(dst, nb, r, b, f16(x[b].d), 0.0f, _mm256_loadu_si256((const __m256i *)x[b].qs));
    }
    u_pad(dst, nb, nr);
}

/* iq4_xs rows the same way, a sub-block's d · (ls − 32) as its block scale */
static void urows_iq4_xs(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t nb = n / 32;
    for (int r = 0; r < nr; r++) {
        const sl_block_iq4_xs *x = (const void *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t b = 0; b < nb; b++) {
            const sl_block_iq4_xs *sb = x + b / 8;
            const int ib = (int)(b % 8);
            u_put(dst, nb, r, b, f16(sb->d) * (float)sl_iq4xs_scale(sb, ib), 0.0f, iq4_values32(sb->qs + 16 * ib));
        }
    }
    u_pad(dst, nb, nr);
}

/* iq4_nl rows: their codebook bytes, signed like q8_0's (gemmu_s8) */
static void urows_iq4_nl(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t nb = n / 32;
    for (int r = 0; r < nr; r++) {
        const sl_block_iq4_nl *x = (const void *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t b = 0; b < nb; b++) u_put(dst, nb, r, b, f16(x[b].d), 0.0f, iq4_values32(x[b].qs));
    }
    u_pad(dst, nb, nr);
}

/* mxfp4 rows: their (doubled) E2M1 codebook bytes, signed (gemmu_s8) */
static void urows_mxfp4(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t nb = n / 32;
    for (int r = 0; r < nr; r++) {
        const sl_block_mxfp4 *x = (const void *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t b = 0; b < nb; b++)
            u_put(dst, nb, r, b, sl_e8m0_half(x[b].e), 0.0f, cb_values32(sl_kvalues_mxfp4, x[b].qs));
    }
    u_pad(dst, nb, nr);
}

/* One 8-row panel × the nc (<= 4) tokens of a group; out gets 8 columns.
 * Signed codes (q8_0) use |w| and sign(x, w) and widen every vpmaddubsw to
 * int32 (a pair sum reaches 32258); unsigned codes (<= 31, pair sums <=
 * 7874) add four vpmaddubsw results in int16 before one vpmaddwd. */
static inline __attribute__((always_inline)) void gemmu_panel(bool sgn, int64_t nb, const uint8_t *pn,
                                                              const sl_q8x4_t *x, __m256 acc[4]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pb = pn + (size_t)b * SL_U_PANEL_BLOCK;
        const int8_t *q = (const int8_t *)pb + 64;
        const sl_q8x4_t *xb = x + b;
        __m256i i0, i1, i2, i3;
        i0 = i1 = i2 = i3 = _mm256_setzero_si256();
        if (sgn) {
            for (int g = 0; g < 8; g++) {
                const __m256i w = _mm256_load_si256((const __m256i *)(q + 32 * g));
                const __m256i aw = _mm256_sign_epi8(w, w);
#define S_T(acc, c)                                                                                    \
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(            \
                                                      _mm256_set1_epi32(x8_bytes4(xb->qs[c] + 4 * g)), w)), \
                                                  ones))
                S_T(i0, 0);
                S_T(i1, 1);
                S_T(i2, 2);
                S_T(i3, 3);
#undef S_T
            }
        } else {
#pragma GCC unroll 2
            for (int hf = 0; hf < 2; hf++) {
                __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
#pragma GCC unroll 4
                for (int g = 4 * hf; g < 4 * hf + 4; g++) {
                    const __m256i w = _mm256_load_si256((const __m256i *)(q + 32 * g));
#define U_T(acc, c) acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(w, _mm256_set1_epi32(x8_bytes4(xb->qs[c] + 4 * g))))
                    U_T(s0, 0);
                    U_T(s1, 1);
                    U_T(s2, 2);
                    U_T(s3, 3);
#undef U_T
                }
                /* each half's int16 sums (<= 4 · 7874) widen on their own */
                i0 = _mm256_add_epi32(i0, _mm256_madd_epi16(s0, ones));
                i1 = _mm256_add_epi32(i1, _mm256_madd_epi16(s1, ones));
                i2 = _mm256_add_epi32(i2, _mm256_madd_epi16(s2, ones));
                i3 = _mm256_add_epi32(i3, _mm256_madd_epi16(s3, ones));
            }
            const __m256 m = _mm256_load_ps((const float *)pb + 8);
            f0 = _mm256_fmadd_ps(m, _mm256_broadcast_ss(&xb->s[0]), f0);
            f1 = _mm256_fmadd_ps(m, _mm256_broadcast_ss(&xb->s[1]), f1);
            f2 = _mm256_fmadd_ps(m, _mm256_broadcast_ss(&xb->s[2]), f2);
            f3 = _mm256_fmadd_ps(m, _mm256_broadcast_ss(&xb->s[3]), f3);
        }
        const __m256 d = _mm256_load_ps((const float *)pb);
        f0 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb->d[0])), _mm256_cvtepi32_ps(i0), f0);
        f1 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb->d[1])), _mm256_cvtepi32_ps(i1), f1);
        f2 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb->d[2])), _mm256_cvtepi32_ps(i2), f2);
        f3 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb->d[3])), _mm256_cvtepi32_ps(i3), f3);
    }
    acc[0] = f0;
    acc[1] = f1;
    acc[2] = f2;
    acc[3] = f3;
}

static inline __attribute__((always_inline)) void gemmu_impl(bool sgn, int64_t n, const uint8_t *u, int nr,
                                                             const sl_q8x4_t *x, int nc, float *out, size_t os) {
    const int64_t nb = n / 32;
    for (int r = 0; r < nr; r += 8) {
        __m256 acc[4];
        gemmu_panel(sgn, nb, u + (size_t)(r / 8) * (size_t)nb * SL_U_PANEL_BLOCK, x, acc);
        x8_store_rows(out + (size_t)r, os, SL_MIN(8, nr - r), acc, nc);
    }
}

static void gemmu_u8(int64_t n, const uint8_t *u, int nr, const sl_q8x4_t *x, int nc, float *out, size_t os) {
    gemmu_impl(false, n, u, nr, x, nc, out, os);
}
static void gemmu_s8(int64_t n, const uint8_t *u, int nr, const sl_q8x4_t *x, int nc, float *out, size_t os) {
    gemmu_impl(true, n, u, nr, x, nc, out, os);
}

/* ---- x8 panels (q8_0 weights repacked at load, kern_impl.h) ----
 *
 * Each 32-byte code vector holds 4 elements of 8 rows, so one vpmaddubsw
 * against the 4 matching activation bytes (broadcast) leaves every row's
 * partial dot in its own lane; a block's 8 row dots sum vertically and one
 * convert + FMA applies the 8 f16 scales (one vcvtph2ps) at once. Signed
 * × signed: |x| and sign(w, x) for decode, |w| and sign(x, w) for the GEMM
 * (there the weight vector is shared by 4 tokens). */

static void x8_dot_q8_0(int64_t n, const void *panel, const void *vx, float *out) {
    const sl_q8f_t *x = vx;
    const int64_t nb = n / 32;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m256i *q = (const __m256i *)SL_X8_Q(panel, b);
        const int8_t *xq = x[b].qs;
        __m256i i0 = _mm256_setzero_si256(), i1 = i0;
#pragma GCC unroll 4
        for (int g = 0; g < 8; g += 2) {
            const __m256i x0 = _mm256_set1_epi32(x8_bytes4(xq + 4 * g)), x1 = _mm256_set1_epi32(x8_bytes4(xq + 4 * g + 4));
            const __m256i p0 = _mm256_maddubs_epi16(_mm256_sign_epi8(x0, x0),
                                                    _mm256_sign_epi8(_mm256_loadu_si256(q + g), x0));
            const __m256i p1 = _mm256_maddubs_epi16(_mm256_sign_epi8(x1, x1),
                                                    _mm256_sign_epi8(_mm256_loadu_si256(q + g + 1), x1));
            i0 = _mm256_add_epi32(i0, _mm256_madd_epi16(p0, ones));
            i1 = _mm256_add_epi32(i1, _mm256_madd_epi16(p1, ones));
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)SL_X8_D(panel, b)));
        acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[b].d)), _mm256_cvtepi32_ps(_mm256_add_epi32(i0, i1)),
                              acc);
    }
    _mm256_storeu_ps(out, acc);
}

static void x8_gemm_q8_0(int64_t n, const void *panels, int np, const sl_q8x4_t *x, int nc, float *out,
                         size_t os, sl_pf_t *pf) {
    const int64_t nb = n / 32;
    const size_t pbytes = (size_t)nb * SL_X8_Q8_0_BLOCK;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int p = 0; p < np; p++) {
        const uint8_t *pn = (const uint8_t *)panels + (size_t)p * pbytes;
        __m256 f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0;
        for (int64_t b = 0; b < nb; b++) {
            const __m256i *q = (const __m256i *)SL_X8_Q(pn, b);
            const sl_q8x4_t *xb = x + b;
            x8_pf(pf);
            __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
            for (int g = 0; g < 8; g++) {
                const __m256i w = _mm256_loadu_si256(q + g);
                const __m256i aw = _mm256_sign_epi8(w, w);
#define X8_T(acc, c)                                                                                    \
    acc = _mm256_add_epi32(                                                                             \
        acc, _mm256_madd_epi16(                                                                         \
                 _mm256_maddubs_epi16(aw, _mm256_sign_epi8(_mm256_set1_epi32(x8_bytes4(xb->qs[c] + 4 * g)), w)), \
                 ones))
                X8_T(i0, 0);
                X8_T(i1, 1);
                X8_T(i2, 2);
                X8_T(i3, 3);
#undef X8_T
            }
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)SL_X8_D(pn, b)));
            f0 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb->d[0])), _mm256_cvtepi32_ps(i0), f0);
            f1 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb->d[1])), _mm256_cvtepi32_ps(i1), f1);
            f2 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb->d[2])), _mm256_cvtepi32_ps(i2), f2);
            f3 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb->d[3])), _mm256_cvtepi32_ps(i3), f3);
        }
        const __m256 acc[4] = {f0, f1, f2, f3};
        x8_store_rows(out + (size_t)p * 8, os, 8, acc, nc);
    }
}

/* 8 unsigned code vectors (<= 31) · the token's 32 bytes, each row's two
 * halves (4 vpmaddubsw summed in int16: <= 4 · 7874) widened by one
 * vpmaddwd against sc — ones, or a per-row scale in both int16 halves of
 * the row's lane (q4_K) — and added: the 8 rows' sums as s32. */
static inline __m256i x8_idot_u8_scaled(const __m256i c[8], const int8_t *xq, __m256i sc) {
#define Q5P(g) _mm256_maddubs_epi16(c[g], _mm256_set1_epi32(x8_bytes4(xq + 4 * (g))))
    const __m256i s0 = _mm256_add_epi16(_mm256_add_epi16(Q5P(0), Q5P(1)), _mm256_add_epi16(Q5P(2), Q5P(3)));
    const __m256i s1 = _mm256_add_epi16(_mm256_add_epi16(Q5P(4), Q5P(5)), _mm256_add_epi16(Q5P(6), Q5P(7)));
#undef Q5P
    return _mm256_add_epi32(_mm256_madd_epi16(s0, sc), _mm256_madd_epi16(s1, sc));
}

/* One q5_0 / q4_0 x8 block's integer dot for x8_dot_q4_with (unit scales). */
static inline __m256i x8_idot_u8(const __m256i c[8], const int8_t *xq) {
    return x8_idot_u8_scaled(c, xq, _mm256_set1_epi16(1));
}
static void x8_dot_q5_0(int64_t n, const void *panel, const void *x, float *out) {
    x8_dot_q4_with(true, false, n, panel, x, out, x8_idot_u8);
}
static void x8_dot_q4_0(int64_t n, const void *panel, const void *x, float *out) {
    x8_dot_q4_with(false, false, n, panel, x, out, x8_idot_u8);
}
static void x8_dot_q5_1(int64_t n, const void *panel, const void *x, float *out) {
    x8_dot_q4_with(true, true, n, panel, x, out, x8_idot_u8);
}
static void x8_dot_q4_1(int64_t n, const void *panel, const void *x, float *out) {
    x8_dot_q4_with(false, true, n, panel, x, out, x8_idot_u8);
}

/* q5_0 / q4_0 (q5_1 / q4_1: mins) x8 panels → SL_U_PANEL_BLOCK panels for
 * gemmu_u8 (nr whole panels) */
static inline __attribute__((always_inline)) void x8_unpack_q4(bool five, bool mins, int64_t n, const void *panels,
                                                               int nr, uint8_t *dst) {
    const int64_t nb = n / 32;
    const size_t bsz = (five ? SL_X8_Q5_0_BLOCK : SL_X8_Q4_0_BLOCK) + (mins ? 16 : 0);
    for (int p = 0; p < (nr + 7) / 8; p++) { /* a partial last panel is zero-padded */
        const uint8_t *pn = (const uint8_t *)panels + (size_t)p * (size_t)nb * bsz;
        uint8_t *un = dst + (size_t)p * (size_t)nb * SL_U_PANEL_BLOCK;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = pn + (size_t)b * bsz;
            uint8_t *ub = un + (size_t)b * SL_U_PANEL_BLOCK;
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
            _mm256_store_ps((float *)ub, d);
            _mm256_store_ps((float *)ub + 8, mins ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16)))
                                                  : _mm256_mul_ps(d, _mm256_set1_ps(five ? -16.0f : -8.0f)));
            __m256i c[8];
            x8_q4_block(five, blk + (mins ? 16 : 0), c);
            for (int g = 0; g < 8; g++) _mm256_store_si256((__m256i *)(ub + 64) + g, c[g]);
        }
    }
}
static void x8_unpack_q5_0(int64_t n, const void *panels, int nr, uint8_t *dst) {
    x8_unpack_q4(true, false, n, panels, nr, dst);
}
static void x8_unpack_q4_0(int64_t n, const void *panels, int nr, uint8_t *dst) {
    x8_unpack_q4(false, false, n, panels, nr, dst);
}
/* x8 iq4_xs (SL_X8_IQ4_XS_BLOCK): the 8 rows' sub-block scales d · (ls −
 * 32) as floats, from d and the scale bits regrouped per row (lane r =
 * row r's scales_l as one u32, its scales_h widened to u32). */
static inline __m256 x8_iq4xs_scales(const uint8_t *blk, __m256 d8, int ib) {
    const __m256i l = _mm256_loadu_si256((const __m256i *)(blk + 32));
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(blk + 16)));
    const __m256i ls = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(l, 4 * ib), _mm256_set1_epi32(0xf)),
                                       _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2 * ib), _mm256_set1_epi32(3)), 4));
    return _mm256_mul_ps(d8, _mm256_cvtepi32_ps(_mm256_sub_epi32(ls, _mm256_set1_epi32(32))));
}

/* One 32-element block of 8 x8 iq4 rows (the 4 index-nibble vectors at
 * nib, laid out as x8 q4_0's) · the token's 32 bytes: the indices become
 * codebook bytes (one vpshufb each) and go as x8 q8_0's, |x| · sign(v, x);
 * the 8 rows' sums as s32. */
static inline __m256i x8_iq4_idot(const uint8_t *nib, const int8_t *xq) {
    const __m256i kv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)sl_kvalues_iq4nl));
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i c[8];
    x8_nibbles(nib, c);
    __m256i i0 = _mm256_setzero_si256(), i1 = i0;
#pragma GCC unroll 4
    for (int g = 0; g < 8; g += 2) {
        const __m256i v0 = _mm256_shuffle_epi8(kv, c[g]), v1 = _mm256_shuffle_epi8(kv, c[g + 1]);
        const __m256i x0 = _mm256_set1_epi32(x8_bytes4(xq + 4 * g)), x1 = _mm256_set1_epi32(x8_bytes4(xq + 4 * g + 4));
        i0 = _mm256_add_epi32(i0, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(x0, x0), _mm256_sign_epi8(v0, x0)), ones));
        i1 = _mm256_add_epi32(i1, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(x1, x1), _mm256_sign_epi8(v1, x1)), ones));
    }
    return _mm256_add_epi32(i0, i1);
}

/* The same block as SL_U_PANEL_BLOCK bytes for gemmu_s8: scales d8, no
 * offset, the codebook bytes. */
static inline void x8_iq4_unpack_block(const uint8_t *nib, __m256 d8, uint8_t *ub) {
    const __m256i kv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)sl_kvalues_iq4nl));
    _mm256_store_ps((float *)ub, d8);
    _mm256_store_ps((float *)ub + 8, _mm256_setzero_ps());
    __m256i c[8];
    x8_nibbles(nib, c);
    for (int g = 0; g < 8; g++) _mm256_store_si256((__m256i *)(ub + 64) + g, _mm256_shuffle_epi8(kv, c[g]));
}

/* Decode over x8 iq4_xs panels against a float-scale q8_0 row. */
static void x8_dot_iq4_xs(int64_t n, const void *panel, const void *vx, float *out) {
    const sl_q8f_t *x = vx;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *blk = (const uint8_t *)panel + (size_t)i * SL_X8_IQ4_XS_BLOCK;
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        for (int ib = 0; ib < 8; ib++) {
            const __m256i s = x8_iq4_idot(blk + 64 + 128 * ib, x[8 * i + ib].qs);
            acc = _mm256_fmadd_ps(_mm256_mul_ps(x8_iq4xs_scales(blk, d8, ib), _mm256_set1_ps(x[8 * i + ib].d)),
                                  _mm256_cvtepi32_ps(s), acc);
        }
    }
    _mm256_storeu_ps(out, acc);
}

/* x8 iq4_nl: x8 q4_0's layout (the same 18-byte GGUF blocks). */
static void x8_dot_iq4_nl(int64_t n, const void *panel, const void *vx, float *out) {
    const sl_q8f_t *x = vx;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *blk = (const uint8_t *)panel + (size_t)b * SL_X8_Q4_0_BLOCK;
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        acc = _mm256_fmadd_ps(_mm256_mul_ps(d8, _mm256_set1_ps(x[b].d)), _mm256_cvtepi32_ps(x8_iq4_idot(blk + 16, x[b].qs)),
                              acc);
    }
    _mm256_storeu_ps(out, acc);
}

/* x8 iq4_xs / iq4_nl panels → SL_U_PANEL_BLOCK panels for gemmu_s8 (iq4_xs:
 * a sub-block's d · (ls − 32) as its block scale). */
static void x8_unpack_iq4_xs(int64_t n, const void *panels, int nr, uint8_t *dst) {
    const int64_t nbk = n / SL_QK_K;
    for (int p = 0; p < (nr + 7) / 8; p++) {
        const uint8_t *pn = (const uint8_t *)panels + (size_t)p * (size_t)nbk * SL_X8_IQ4_XS_BLOCK;
        uint8_t *un = dst + (size_t)p * (size_t)(n / 32) * SL_U_PANEL_BLOCK;
        for (int64_t i = 0; i < nbk; i++) {
            const uint8_t *blk = pn + (size_t)i * SL_X8_IQ4_XS_BLOCK;
            const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
            for (int ib = 0; ib < 8; ib++)
                x8_iq4_unpack_block(blk + 64 + 128 * ib, x8_iq4xs_scales(blk, d8, ib),
                                    un + (size_t)(8 * i + ib) * SL_U_PANEL_BLOCK);
        }
    }
}
static void x8_unpack_iq4_nl(int64_t n, const void *panels, int nr, uint8_t *dst) {
    const int64_t nb = n / 32;
    for (int p = 0; p < (nr + 7) / 8; p++) {
        const uint8_t *pn = (const uint8_t *)panels + (size_t)p * (size_t)nb * SL_X8_Q4_0_BLOCK;
        uint8_t *un = dst + (size_t)p * (size_t)nb * SL_U_PANEL_BLOCK;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = pn + (size_t)b * SL_X8_Q4_0_BLOCK;
            x8_iq4_unpack_block(blk + 16, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk)),
                                un + (size_t)b * SL_U_PANEL_BLOCK);
        }
    }
}

static void x8_unpack_q5_1(int64_t n, const void *panels, int nr, uint8_t *dst) {
    x8_unpack_q4(true, true, n, panels, nr, dst);
}
static void x8_unpack_q4_1(int64_t n, const void *panels, int nr, uint8_t *dst) {
    x8_unpack_q4(false, true, n, panels, nr, dst);
}

/* ---- unpacked k-quant GEMM (prefill with many tokens) ----
 *
 * Super-blocks unpacked once per chunk (SL_UK_SB_BYTES layout): per 32
 * weights and token the loop is vpmaddubsw, vpmaddwd with the stored scale
 * vector, and an add; the mins (q6_K: its −32 offset, as 32·scale) come off
 * per super-block with one vpmaddwd against the activation's bsums. */
static inline void uk_put(uint8_t *sb, int k, __m256i q, __m256i sc16) {
    _mm256_storeu_si256((__m256i *)(sb + 32 * k), q);
    _mm256_storeu_si256((__m256i *)(sb + 256 + 32 * k), sc16);
}
static inline void uk_tail(uint8_t *sb, __m256i mins16, float d, float dmin) {
    _mm256_storeu_si256((__m256i *)(sb + 512), mins16);
    memcpy(sb + 544, &d, 4);
    memcpy(sb + 548, &dmin, 4);
}

static void urows_k4(bool five, int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t nbk = n / SL_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0xf);
    for (int r = 0; r < nr; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * ws;
        for (int64_t i = 0; i < nbk; i++, dst += SL_UK_SB_BYTES) {
            const uint8_t *scales, *qs, *qh = NULL;
            sl_f16_t d, dmin;
            if (five) {
                const sl_block_q5_K *b = (const sl_block_q5_K *)row + i;
                scales = b->scales, qs = b->qs, qh = b->qh, d = b->d, dmin = b->dmin;
            } else {
                const sl_block_q4_K *b = (const sl_block_q4_K *)row + i;
                scales = b->scales, qs = b->qs, d = b->d, dmin = b->dmin;
            }
            int16_t ms[16];
            _mm256_storeu_si256((__m256i *)ms, k4_scales_mins16(scales));
            __m256i hbits = five ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
                __m256i ql = _mm256_and_si256(bits, m4);
                __m256i qq = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
                if (five) {
                    __m256i hl = _mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j), _mm256_set1_epi8(1));
                    __m256i hh = _mm256_and_si256(_mm256_srli_epi16(hbits, 2 * j + 1), _mm256_set1_epi8(1));
                    ql = _mm256_or_si256(ql, _mm256_slli_epi16(hl, 4));
                    qq = _mm256_or_si256(qq, _mm256_slli_epi16(hh, 4));
                }
                uk_put(dst, 2 * j, ql, _mm256_set1_epi16(ms[2 * j]));
                uk_put(dst, 2 * j + 1, qq, _mm256_set1_epi16(ms[2 * j + 1]));
            }
            int16_t mn[16];
            for (int g = 0; g < 16; g++) mn[g] = ms[8 + g / 2];
            uk_tail(dst, _mm256_loadu_si256((const __m256i *)mn), f16(d), f16(dmin));
        }
    }
}
static void urows_q4_K(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    urows_k4(false, n, w, ws, nr, dst);
}

/* ---- x8 q4_K (kern_impl.h, SL_X8_Q4_K_BLOCK) ----
 *
 * Decode against a q8_K row: per 32-element sub-block the 8 rows' codes
 * come from 4 nibble vectors as in q4_0; 4 vpmaddubsw (unsigned codes,
 * pair sums <= 3810) are added in int16 and one vpmaddwd against the 8
 * rows' scales (each row's 6-bit scale in both int16 halves of its lane,
 * one vpshufb of the 8 scale bytes) widens and scales them at once. The
 * min term is the same with the mins against the sub-block's pair of q8_K
 * bsums. One float FMA each per super-block (the block helpers are in
 * x8_simd.h). */

/* The 8 rows of one x8 q4_K panel · NT q8_K rows x[t], each sub-block's
 * nibbles expanded once (one 16-element half at a time) for all NT tokens;
 * out[t] gets the 8 rows' dots with token t. For 4 tokens (x8_dot4_q4_K):
 * 94-147 against 77-112 GFLOP/s for x8_dot_q4_K once per token (128
 * tokens, 1 thread); one token is faster through x8_dot_q4_K's whole-
 * sub-block form (111-115 vs 101-104). */
static inline __attribute__((always_inline)) void x8q4k_dots(bool five, int NT, int64_t n, const uint8_t *panel,
                                                             const sl_block_q8_K *const x[4], __m256 out[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const size_t bsz = five ? SL_X8_Q5_K_BLOCK : SL_X8_Q4_K_BLOCK, sbsz = five ? 160 : 128;
    __m256 acc[4];
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *blk = panel + (size_t)i * bsz;
        uint8_t sc[64], mn[64];
        x8k_scales(blk, sc, mn);
        __m256i sumi[4], summ[4];
        for (int t = 0; t < NT; t++) sumi[t] = summ[t] = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int j = 0; j < 8; j++) {
            const __m256i scj = x8k_pairs(sc + 8 * j);
            const uint8_t *v = blk + 128 + sbsz * j;
            const __m256i hb = five ? _mm256_loadu_si256((const __m256i *)(v + 128)) : _mm256_setzero_si256();
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256i c[4];
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    const __m256i nib = _mm256_loadu_si256((const __m256i *)(v + 32 * k));
                    c[k] = _mm256_and_si256(h ? _mm256_srli_epi16(nib, 4) : nib, m4);
                    if (five) c[k] = _mm256_or_si256(c[k], x8_bits_to4(hb, 4 * h + k, 0x10));
                }
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) {
                    const int8_t *xq = x[t][i].qs + 32 * j + 16 * h;
                    /* unsigned codes <= 15 (31): four pair sums <= 4 · 3810 (7874) in int16 */
#define Q4KP(k) _mm256_maddubs_epi16(c[k], _mm256_set1_epi32(x8_bytes4(xq + 4 * (k))))
                    const __m256i s16 = _mm256_add_epi16(_mm256_add_epi16(Q4KP(0), Q4KP(1)), _mm256_add_epi16(Q4KP(2), Q4KP(3)));
#undef Q4KP
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(s16, scj));
                }
            }
            const __m256i mnj = x8k_pairs(mn + 8 * j);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                int32_t bs;
                memcpy(&bs, x[t][i].bsums + 2 * j, 4);
                summ[t] = _mm256_add_epi32(summ[t], _mm256_madd_epi16(mnj, _mm256_set1_epi32(bs)));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16)));
        for (int t = 0; t < NT; t++) {
            const __m256 dx = _mm256_set1_ps(x[t][i].d);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dm, dx), _mm256_cvtepi32_ps(summ[t]), acc[t]);
        }
    }
    for (int t = 0; t < NT; t++) out[t] = acc[t];
}

/* q4_K, or q5_K (five: 5-bit codes, pair sums <= 7874, four in int16 <=
 * 31496 as for q5_0) */
static inline __attribute__((always_inline)) void x8_dot_k45(bool five, int64_t n, const void *panel, const void *vx,
                                                             float *out) {
    const sl_block_q8_K *x = vx;
    const size_t bsz = five ? SL_X8_Q5_K_BLOCK : SL_X8_Q4_K_BLOCK, sbsz = five ? 160 : 128;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *blk = (const uint8_t *)panel + (size_t)i * bsz;
        uint8_t sc[64], mn[64];
        x8k_scales(blk, sc, mn);
        const int8_t *xq = x[i].qs;
        __m256i sumi = _mm256_setzero_si256(), summ = sumi;
#pragma GCC unroll 2
        for (int j = 0; j < 8; j++) {
            __m256i c[8];
            x8_nibbles(blk + 128 + sbsz * j, c);
            if (five) x8k_fifth(blk + 128 + sbsz * j + 128, c);
            sumi = _mm256_add_epi32(sumi, x8_idot_u8_scaled(c, xq + 32 * j, x8k_pairs(sc + 8 * j)));
            int32_t bs;
            memcpy(&bs, x[i].bsums + 2 * j, 4);
            summ = _mm256_add_epi32(summ, _mm256_madd_epi16(x8k_pairs(mn + 8 * j), _mm256_set1_epi32(bs)));
        }
        const __m256 dx = _mm256_set1_ps(x[i].d);
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk)), dx);
        const __m256 dm = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16))), dx);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        acc = _mm256_fnmadd_ps(dm, _mm256_cvtepi32_ps(summ), acc);
    }
    _mm256_storeu_ps(out, acc);
}
static void x8_dot_q4_K(int64_t n, const void *panel, const void *vx, float *out) {
    x8_dot_k45(false, n, panel, vx, out);
}
static void x8_dot_q5_K(int64_t n, const void *panel, const void *vx, float *out) {
    x8_dot_k45(true, n, panel, vx, out);
}

/* ---- x8 q6_K (kern_impl.h, SL_X8_Q6_K_BLOCK) ----
 *
 * Decode against a q8_K row. Per 32-element sub-block: the 8 codes vectors
 * (0..63: nibble | top bits << 4), 8 vpmaddubsw against the token's
 * broadcast bytes; each 16-element half's four pair-sum vectors (<= 16002
 * each) are added two by two in int16 and widened by vpmaddwd against the
 * half's scales (each row's scale in both int16 halves of its lane: one
 * vpshufb of the sub-block's sign-extended scale pairs). The −32 offset
 * comes off per super-block as 32 · Σ scale · bsum (the scale pairs
 * against the two q8_K bsums of the sub-block: one vpmaddwd). */
/* The 8 rows of one x8 q6_K panel · NT (1 or 4) q8_K rows x[t]: each
 * sub-block's codes are expanded once for all NT tokens. out[t] gets the
 * 8 rows' dots with token t. */
static inline __attribute__((always_inline)) void x8q6_dots(int NT, int64_t n, const uint8_t *panel,
                                                            const sl_block_q8_K *const x[4], __m256 out[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    /* lane r = (scale 2j, scale 2j) or (scale 2j + 1, scale 2j + 1) of row r */
    const __m256i lo2 = _mm256_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5, 8,
                                         9, 8, 9, 12, 13, 12, 13);
    const __m256i hi2 = _mm256_add_epi8(lo2, _mm256_set1_epi8(2));
    __m256 acc[4];
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *blk = panel + (size_t)i * SL_X8_Q6_K_BLOCK;
        __m256i sum[4];
        for (int t = 0; t < NT; t++) sum[t] = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int j = 0; j < 8; j++) {
            const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 16 + 16 * j)));
            const __m256i s0 = _mm256_shuffle_epi8(sc, lo2), s1 = _mm256_shuffle_epi8(sc, hi2);
            const uint8_t *cb = blk + 144 + 192 * j;
            /* the two 16-element halves one after the other: 4 code vectors live at a time */
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m256i hb = _mm256_loadu_si256((const __m256i *)(cb + 128 + 32 * h));
                const __m256i sh = h ? s1 : s0;
                __m256i c[4];
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    const __m256i nb = _mm256_loadu_si256((const __m256i *)(cb + 32 * k));
                    c[k] = _mm256_or_si256(_mm256_and_si256(h ? _mm256_srli_epi16(nb, 4) : nb, m4), x8_bits_to4(hb, 2 * k, 0x30));
                }
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) {
                    const int8_t *xq = x[t][i].qs + 32 * j + 16 * h;
#define Q6P(k) _mm256_maddubs_epi16(c[k], _mm256_set1_epi32(x8_bytes4(xq + 4 * (k))))
                    const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(_mm256_add_epi16(Q6P(0), Q6P(1)), sh),
                                                       _mm256_madd_epi16(_mm256_add_epi16(Q6P(2), Q6P(3)), sh));
#undef Q6P
                    sum[t] = _mm256_add_epi32(sum[t], p);
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                /* − 32 · Σ scale · bsum over the sub-block's two halves */
                int32_t bs;
                memcpy(&bs, x[t][i].bsums + 2 * j, 4);
                sum[t] = _mm256_sub_epi32(sum[t], _mm256_slli_epi32(_mm256_madd_epi16(sc, _mm256_set1_epi32(bs)), 5));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        for (int t = 0; t < NT; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[t][i].d)), _mm256_cvtepi32_ps(sum[t]), acc[t]);
    }
    for (int t = 0; t < NT; t++) out[t] = acc[t];
}

static void x8_dot_q6_K(int64_t n, const void *panel, const void *vx, float *out) {
    const sl_block_q8_K *const x[4] = {vx, vx, vx, vx};
    __m256 r[4];
    x8q6_dots(1, n, panel, x, r);
    _mm256_storeu_ps(out, r[0]);
}

/* x8_dot4 of the k-quants (kind 4: q4_K, 5: q5_K, 6: q6_K): up to 4
 * tokens (q8_K rows xs bytes apart) at once, a short group padded with its
 * last token; out[t · os + r]. */
static inline __attribute__((always_inline)) void x8k_dot4(int kind, int64_t n, const void *panel, const void *vx,
                                                           size_t xs, int nc, float *out, size_t os) {
    const sl_block_q8_K *x[4];
    x8k_tokens(vx, xs, nc, x);
    __m256 r[4];
    if (kind == 6)
        x8q6_dots(4, n, panel, x, r);
    else
        x8q4k_dots(kind == 5, 4, n, panel, x, r);
    for (int t = 0; t < nc; t++) _mm256_storeu_ps(out + (size_t)t * os, r[t]);
}
static void x8_dot4_q4_K(int64_t n, const void *panel, const void *vx, size_t xs, int nc, float *out, size_t os) {
    x8k_dot4(4, n, panel, vx, xs, nc, out, os);
}
static void x8_dot4_q5_K(int64_t n, const void *panel, const void *vx, size_t xs, int nc, float *out, size_t os) {
    x8k_dot4(5, n, panel, vx, xs, nc, out, os);
}
static void x8_dot4_q6_K(int64_t n, const void *panel, const void *vx, size_t xs, int nc, float *out, size_t os) {
    x8k_dot4(6, n, panel, vx, xs, nc, out, os);
}

static void urows_q5_K(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    urows_k4(true, n, w, ws, nr, dst);
}

static void urows_q6_K(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t nbk = n / SL_QK_K;
    for (int r = 0; r < nr; r++) {
        const sl_block_q6_K *row = (const void *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t i = 0; i < nbk; i++, dst += SL_UK_SB_BYTES) {
            const sl_block_q6_K *b = row + i;
            const uint8_t *ql = b->ql, *qh = b->qh;
            const __m128i sc8 = _mm_loadu_si128((const __m128i *)b->scales);
#pragma GCC unroll 2
            for (int j = 0; j < 2; j++) {
                __m256i q[4];
                q6_codes128(ql + 64 * j, qh + 32 * j, q);
                for (int k = 0; k < 4; k++) uk_put(dst, 4 * j + k, q[k], q6_scales16(sc8, 8 * j + 2 * k));
            }
            __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
            const float d = f16(b->d);
            uk_tail(dst, _mm256_slli_epi16(sc16, 5), d, d);
        }
    }
}

/* q2_K / q3_K: chunk k (32 elements) is the 2-bit field k%4 of the 32 qs
 * bytes of half k/4; its lanes use the 4-bit (q2_K) or 6-bit signed (q3_K)
 * scales of groups 2k and 2k+1. */
static inline __m256i pair_scales16(int a, int b) {
    return _mm256_setr_epi16((short)a, (short)a, (short)a, (short)a, (short)a, (short)a, (short)a, (short)a,
                             (short)b, (short)b, (short)b, (short)b, (short)b, (short)b, (short)b, (short)b);
}

static void urows_q2_K(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t nbk = n / SL_QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int r = 0; r < nr; r++) {
        const sl_block_q2_K *row = (const void *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t i = 0; i < nbk; i++, dst += SL_UK_SB_BYTES) {
            const sl_block_q2_K *b = row + i;
            for (int h = 0; h < 2; h++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
                for (int sh = 0; sh < 4; sh++) {
                    const int k = 4 * h + sh;
                    uk_put(dst, k, _mm256_and_si256(_mm256_srli_epi16(q, 2 * sh), m3),
                           pair_scales16(b->scales[2 * k] & 0xf, b->scales[2 * k + 1] & 0xf));
                }
            }
            int16_t mn[16];
            for (int g = 0; g < 16; g++) mn[g] = (int16_t)(b->scales[g] >> 4);
            uk_tail(dst, _mm256_loadu_si256((const __m256i *)mn), f16(b->d), f16(b->dmin));
        }
    }
}

/* The 16 6-bit q3_K scales (minus 32) from their 12 packed bytes, as
 * sl_q3k_scales: low 4 bits from bytes 0-7 (low nibbles for groups 0-7,
 * high nibbles for 8-15), top 2 bits from bytes 8-11. */
static inline __m128i q3k_scales_sse(const uint8_t *p) {
    uint32_t a[3];
    memcpy(a, p, 12);
    const __m128i lo = _mm_and_si128(_mm_srlv_epi32(_mm_setr_epi32((int)a[0], (int)a[1], (int)a[0], (int)a[1]),
                                                    _mm_setr_epi32(0, 0, 4, 4)),
                                     _mm_set1_epi8(0x0f));
    const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32((int)a[2]), _mm_setr_epi32(0, 2, 4, 6)),
                                     _mm_set1_epi8(0x03));
    return _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi32(hi, 4)), _mm_set1_epi8(32));
}

static void urows_q3_K(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {
    const int64_t nbk = n / SL_QK_K;
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    for (int r = 0; r < nr; r++) {
        const sl_block_q3_K *row = (const void *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t i = 0; i < nbk; i++, dst += SL_UK_SB_BYTES) {
            const sl_block_q3_K *b = row + i;
            int8_t sc[16];
            _mm_storeu_si128((__m128i *)sc, q3k_scales_sse(b->scales));
            const __m256i hm = _mm256_loadu_si256((const __m256i *)b->hmask);
            for (int h = 0; h < 2; h++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
                for (int sh = 0; sh < 4; sh++) {
                    const int k = 4 * h + sh;
                    /* code = 2 low bits + 4 · high bit (0..7); weight = d·sc·(code − 4) */
                    __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, k), one);
                    __m256i u = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * sh), m3),
                                                _mm256_slli_epi16(hb, 2));
                    uk_put(dst, k, u, pair_scales16(sc[2 * k], sc[2 * k + 1]));
                }
            }
            int16_t mn[16];
            for (int g = 0; g < 16; g++) mn[g] = (int16_t)(4 * sc[g]);
            const float d = f16(b->d);
            uk_tail(dst, _mm256_loadu_si256((const __m256i *)mn), d, d);
        }
    }
}

static inline int hsum_i32(__m256i v) {
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    return _mm_cvtsi128_si32(t);
}

/* one unpacked row × 4 q8_K tokens (tokens past nc repeat token 0, not stored) */
static void gemmuk(int64_t n, const uint8_t *u, int nr, const void *x, size_t xs, int nc, float *out, size_t os) {
    const int64_t nbk = n / SL_QK_K;
    const sl_block_q8_K *xr[4];
    for (int c = 0; c < 4; c++) xr[c] = (const void *)((const uint8_t *)x + (size_t)(c < nc ? c : 0) * xs);
    for (int r = 0; r < nr; r++) {
        const uint8_t *row = u + (size_t)r * SL_UK_ROW_BYTES(n);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < nbk; i++) {
            const uint8_t *sb = row + (size_t)i * SL_UK_SB_BYTES;
            __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
            const int8_t *x0 = xr[0][i].qs, *x1 = xr[1][i].qs, *x2 = xr[2][i].qs, *x3 = xr[3][i].qs;
            for (int k = 0; k < 8; k++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(sb + 32 * k));
                __m256i sc = _mm256_loadu_si256((const __m256i *)(sb + 256 + 32 * k));
#define UK_STEP(sv, xp) sv = _mm256_add_epi32(sv, _mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)((xp) + 32 * k))), sc))
                UK_STEP(s0, x0);
                UK_STEP(s1, x1);
                UK_STEP(s2, x2);
                UK_STEP(s3, x3);
#undef UK_STEP
            }
            float d, dmin;
            memcpy(&d, sb + 544, 4);
            memcpy(&dmin, sb + 548, 4);
            /* the min term stays a vector (8 partial sums, exact in float:
             * each < 2^24) until the row's one horizontal sum */
            const __m256i mn = _mm256_loadu_si256((const __m256i *)(sb + 512));
#define UK_ACC(a, sv, c)                                                                                   \
    a = _mm256_fmadd_ps(_mm256_set1_ps(d * xr[c][i].d), _mm256_cvtepi32_ps(sv), a);                        \
    a = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * xr[c][i].d),                                                \
                         _mm256_cvtepi32_ps(_mm256_madd_epi16(mn, _mm256_loadu_si256((const __m256i *)xr[c][i].bsums))), a)
            UK_ACC(a0, s0, 0);
            UK_ACC(a1, s1, 1);
            UK_ACC(a2, s2, 2);
            UK_ACC(a3, s3, 3);
#undef UK_ACC
        }
        const __m256 a[4] = {a0, a1, a2, a3};
        for (int c = 0; c < nc; c++) out[(size_t)c * os + (size_t)r] = hsum8(a[c]);
    }
}

/* Decode dots of q2_K / q3_K straight from the GGUF blocks: per 32-code
 * step k of a super-block (one 2-bit plane of a 32-byte half) a shift and
 * mask give the unsigned codes, vpmaddubsw against the q8_K bytes, and one
 * vpmaddwd applies the step's two 16-element group scales — scv holds the
 * 16 scales as int16, even groups in the low lane and odd ones in the high
 * lane, so one byte shuffle picks group 2k for the low lane and 2k + 1 for
 * the high one. The offsets (q2_K's mins, q3_K's −4) come off once per
 * super-block against the q8_K group sums. */
static inline __m256i kq_scales16(__m128i sc8, bool sign) {
    const __m128i deint = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m128i v = _mm_shuffle_epi8(sc8, deint);
    return sign ? _mm256_cvtepi8_epi16(v) : _mm256_cvtepu8_epi16(v);
}
static inline __m256i kq_step_scales(__m256i scv, int k) {
    return _mm256_shuffle_epi8(scv, _mm256_set1_epi16((int16_t)(0x0100 + 0x0202 * k)));
}

/* A q2_K / q3_K super-block's 8 steps: Σ scale · code · x as 8 int32 lanes
 * (q3_K: codes + 4, the high-mask bit k moved to bit 2). */
static inline __attribute__((always_inline)) __m256i k23_steps(bool three, const uint8_t *qs, __m256i hm, __m256i scv,
                                                               const int8_t *xq) {
    const __m256i m3 = _mm256_set1_epi8(3), b2 = _mm256_set1_epi8(4);
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
#pragma GCC unroll 4
        for (int sh = 0; sh < 4; sh++) {
            const int k = 4 * h + sh;
            __m256i u = _mm256_and_si256(_mm256_srli_epi16(q, 2 * sh), m3);
            if (three) {
                const __m256i hb = k >= 2 ? _mm256_srli_epi16(hm, k - 2) : _mm256_slli_epi16(hm, 2 - k);
                u = _mm256_or_si256(u, _mm256_and_si256(hb, b2));
            }
            const __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)(xq + 32 * k)));
            if (sh & 1)
                s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p, kq_step_scales(scv, k)));
            else
                s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p, kq_step_scales(scv, k)));
        }
    }
    return _mm256_add_epi32(s0, s1);
}

static float dot_q2_K(int64_t n, const void *vw, const void *vx) {
    const sl_block_q2_K *w = vw;
    const sl_block_q8_K *x = vx;
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)w[i].scales);
        const __m256i scv = kq_scales16(_mm_and_si128(sc8, m4), false);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), m4));
        const int summ = hsum_i32(_mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)x[i].bsums)));
        const float dx = x[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[i].d) * dx),
                              _mm256_cvtepi32_ps(k23_steps(false, w[i].qs, _mm256_setzero_si256(), scv, x[i].qs)), acc);
        accm += f16(w[i].dmin) * dx * (float)summ;
    }
    return hsum8(acc) - accm;
}

static float dot_q3_K(int64_t n, const void *vw, const void *vx) {
    const sl_block_q3_K *w = vw;
    const sl_block_q8_K *x = vx;
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const __m128i sc8 = q3k_scales_sse(w[i].scales);
        const __m256i scv = kq_scales16(sc8, true);
        /* Σ_g sc_g · (group sum of x): the −4 offset of every code */
        const int summ = hsum_i32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8),
                                                    _mm256_loadu_si256((const __m256i *)x[i].bsums)));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)w[i].hmask);
        const float dd = f16(w[i].d) * x[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dd), _mm256_cvtepi32_ps(k23_steps(true, w[i].qs, hm, scv, x[i].qs)), acc);
        accm += dd * 4.0f * (float)summ;
    }
    return hsum8(acc) - accm;
}

/* ---- decode dots against sl_q8f_t (float activation scales) ----
 *
 * Same unsigned-code trick as the GEMM for q4_0/q5_0: the offset comes off
 * once per block as dw · s with s = dx · Σx from the activation row. Two
 * blocks per iteration, two accumulators. */
static inline __m256i nib32b(const uint8_t *p) {
    /* 16 bytes to both lanes, the high lane shifted right by 4 */
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    v = _mm256_srlv_epi64(v, _mm256_set_epi64x(4, 4, 0, 0));
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

static inline __attribute__((always_inline)) __m256i f_unpack(int kind, const uint8_t *wr, int64_t b) {
    if (kind == G_Q4_0) return nib32b(((const sl_block_q4_0 *)wr)[b].qs);
    if (kind == G_Q5_0) {
        const sl_block_q5_0 *blk = (const sl_block_q5_0 *)wr + b;
        return _mm256_or_si256(nib32b(blk->qs), _mm256_and_si256(bits32(blk->qh), _mm256_set1_epi8(0x10)));
    }
    return _mm256_loadu_si256((const __m256i *)((const sl_block_q8_0 *)wr)[b].qs);
}

static inline __attribute__((always_inline)) __m256 f_block(int kind, const uint8_t *wr, int64_t b, const sl_q8f_t *xb,
                                                            __m256 acc, float *corr) {
    const float dw = g_scale(kind, wr, b);
    __m256i wv = f_unpack(kind, wr, b);
    __m256i xv = _mm256_loadu_si256((const __m256i *)xb->qs);
    __m256i p;
    if (kind == G_Q8_0) {
        p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
    } else {
        p = _mm256_maddubs_epi16(wv, xv);
        *corr += dw * xb->s;
    }
    return _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1))), acc);
}

static inline __attribute__((always_inline)) float dotf_q0(int kind, int64_t n, const void *vw, const sl_q8f_t *x) {
    const uint8_t *w = vw;
    const int64_t nb = n / 32;
    const float off = kind == G_Q4_0 ? 8.0f : kind == G_Q5_0 ? 16.0f : 0.0f;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    float c0 = 0, c1 = 0;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        a0 = f_block(kind, w, b, x + b, a0, &c0);
        a1 = f_block(kind, w, b + 1, x + b + 1, a1, &c1);
    }
    if (b < nb) a0 = f_block(kind, w, b, x + b, a0, &c0);
    return hsum8(_mm256_add_ps(a0, a1)) - off * (c0 + c1);
}

static float dotf_q4_0(int64_t n, const void *w, const sl_q8f_t *x) {
    return dotf_q0(G_Q4_0, n, w, x);
}
static float dotf_q5_0(int64_t n, const void *w, const sl_q8f_t *x) {
    return dotf_q0(G_Q5_0, n, w, x);
}
static float dotf_q8_0(int64_t n, const void *w, const sl_q8f_t *x) {
    return dotf_q0(G_Q8_0, n, w, x);
}

/* ---- activation quantizers ---- */

/* 32 floats → rounded int8 (×id), in element order. */
static inline __m256i round_pack32(const float *x, __m256 id) {
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    i0 = _mm256_packs_epi32(i0, i1);
    i2 = _mm256_packs_epi32(i2, i3);
    i0 = _mm256_packs_epi16(i0, i2);
    /* packs work per 128-bit lane: restore order */
    return _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline float amax32(const float *x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_andnot_ps(sign, _mm256_loadu_ps(x));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8)));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 16)));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 24)));
    __m128 r = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static void quant_q8_0(const float *x, void *vy, int64_t n) {
    sl_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float d = amax32(x) / 127.f;
        y[i].d = sl_f32_to_f16(d);
        __m256i q = round_pack32(x, _mm256_set1_ps(d ? 1.0f / d : 0.0f));
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
    }
}

/* Σ of 32 int8 codes */
static inline int sum_i8x32(__m256i q) {
    const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0x4e));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0xb1));
    return _mm_cvtsi128_si32(r);
}

/* quant_q8_0's blocks with float scales and d · Σ qs (kern_impl.h) */
static void quantf_q8(const float *x, int64_t nb, float *d, float *s, int8_t *qs, size_t stride) {
    for (int64_t b = 0; b < nb; b++, x += 32) {
        const float dd = amax32(x) / 127.f;
        const __m256i q = round_pack32(x, _mm256_set1_ps(dd ? 1.0f / dd : 0.0f));
        const size_t o = (size_t)b * stride;
        float *db = (float *)((uint8_t *)d + o), *sb = (float *)((uint8_t *)s + o);
        _mm256_storeu_si256((__m256i *)((uint8_t *)qs + o), q);
        *db = sl_f16_to_f32(sl_f32_to_f16(dd));
        *sb = *db * (float)sum_i8x32(q);
    }
}

static void quant_q8_1(const float *x, void *vy, int64_t n) {
    sl_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float d = amax32(x) / 127.f;
        y[i].d = sl_f32_to_f16(d);
        __m256i q = round_pack32(x, _mm256_set1_ps(d ? 1.0f / d : 0.0f));
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
        y[i].s = sl_f32_to_f16(d * (float)sum_i8x32(q));
    }
}

static void quant_q8_K(const float *x, void *vy, int64_t n) {
    sl_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / SL_QK_K; i++, x += SL_QK_K) {
        float amax = 0;
        for (int j = 0; j < SL_QK_K; j += 32) amax = fmaxf(amax, amax32(x + j));
        if (amax == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* the signed value of largest magnitude (first one, as the reference) */
        float max = 0;
        for (int j = 0; j < SL_QK_K; j++)
            if (x[j] == amax || x[j] == -amax) {
                max = x[j];
                break;
            }
        float iscale = -127.f / max;
        for (int j = 0; j < SL_QK_K; j += 32) {
            __m256i q = round_pack32(x + j, _mm256_set1_ps(iscale));
            /* iscale·max = -127 exactly can round past 127 only for +128 */
            q = _mm256_min_epi8(q, _mm256_set1_epi8(127));
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), q);
            __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q); /* pair sums */
            /* 16 pair sums → 2 sums of 16 elements */
            __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1)); /* 8 sums of 4 */
            __m256i h = _mm256_hadd_epi32(s32, s32); /* per lane: [a0+a1, a2+a3, ...] */
            h = _mm256_hadd_epi32(h, h);
            y[i].bsums[j / 16] = (int16_t)_mm256_extract_epi32(h, 0);
            y[i].bsums[j / 16 + 1] = (int16_t)_mm256_extract_epi32(h, 4);
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- grid i-quants (iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m) ----
 *
 * A super-block goes 32 elements a step: the step's codebook entries (4 of
 * 8 values, or 8 of 4 for iq3) are gathered into one vector of unsigned
 * magnitudes, the 32 sign bits (7-bit codes through sl_ksigns_iq2xs, or
 * plain bytes) become a vector of ±1 bytes, vpsignb puts the signs on the
 * q8_K activations, vpmaddubsw multiplies, and vpmaddwd applies the step's
 * two 16-element multipliers 2·ls + 1 (low lane: elements 0-15). iq1's
 * values are 8·grid ± 1 (grid −1/0/1, never 0), their own sign vector with
 * |v| as the magnitude. Bounds: magnitudes ≤ 62 and q8_K ≤ 127 in size, so a
 * pair sum ≤ 15748; · 31 · 2 per int32 lane per step, 8 steps: < 2^23.
 * Weight e = D · sc · v exactly as sl_iq_decode (D: the f16 scale times
 * 1/8, 1/4 or 1). Prefill unpacks rows into the k-quants' layout (codes v +
 * the type's largest magnitude, unsigned; that offset times the multiplier
 * as the min) for gemmuk. */
static inline __m256i iq_pm1(uint32_t bits) { /* bit j set → byte j = −1, else +1 */
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    b = _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
    return _mm256_or_si256(b, _mm256_set1_epi8(1));
}
static inline uint32_t iq_rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
/* 4 sign codes of 7 bits (code l at bit 7l of c) → ±1 bytes */
static inline __m256i iq_ksigns4(uint32_t c) {
    const uint64_t *t = sl_ksigns_pm1;
    return _mm256_set_epi64x((long long)t[(c >> 21) & 127], (long long)t[(c >> 14) & 127], (long long)t[(c >> 7) & 127],
                             (long long)t[c & 127]);
}
static inline __m256i iq_g4(const uint64_t *grid, int a, int b, int c, int d) {
    return _mm256_set_epi64x((long long)grid[d], (long long)grid[c], (long long)grid[b], (long long)grid[a]);
}
/* iq1: 8 · grid + delta (delta ±1 per byte) */
static inline __m256i iq1_vals(__m256i g, __m256i delta) {
    const __m256i g2 = _mm256_add_epi8(g, g), g4 = _mm256_add_epi8(g2, g2);
    return _mm256_add_epi8(_mm256_add_epi8(g4, g4), delta);
}

/* The super-block's 16 multipliers 2·ls + 1 as kq_step_scales reads them:
 * the even 16-element groups in the low lane, the odd ones in the high. */
static inline __attribute__((always_inline)) __m256i iq_scales(sl_type_t t, const uint8_t *b) {
    int16_t v[16];
#define IQ_SC(g, ls) v[((g) & 1) * 8 + (g) / 2] = (int16_t)(2 * (ls) + 1)
    for (int ib = 0; ib < 8; ib++) {
        switch (t) {
        case SL_TYPE_IQ2_XXS: {
            const int ls = (int)(iq_rd32(b + 2 + 8 * ib + 4) >> 28);
            IQ_SC(2 * ib, ls), IQ_SC(2 * ib + 1, ls);
            break;
        }
        case SL_TYPE_IQ2_XS:
        case SL_TYPE_IQ2_S: {
            const int sc = b[t == SL_TYPE_IQ2_XS ? 66 + ib : 74 + ib];
            IQ_SC(2 * ib, sc & 15), IQ_SC(2 * ib + 1, sc >> 4);
            break;
        }
        case SL_TYPE_IQ3_XXS: {
            const int ls = (int)(iq_rd32(b + 2 + 64 + 4 * ib) >> 28);
            IQ_SC(2 * ib, ls), IQ_SC(2 * ib + 1, ls);
            break;
        }
        case SL_TYPE_IQ3_S: {
            const int ls = (b[106 + ib / 2] >> (4 * (ib % 2))) & 15;
            IQ_SC(2 * ib, ls), IQ_SC(2 * ib + 1, ls);
            break;
        }
        case SL_TYPE_IQ1_S: {
            const int ls = (((const sl_block_iq1_s *)b)->qh[ib] >> 12) & 7;
            IQ_SC(2 * ib, ls), IQ_SC(2 * ib + 1, ls);
            break;
        }
        default: { /* SL_TYPE_IQ1_M: 3 bits per 16 elements, 4 to a scale word */
            uint16_t sw;
            memcpy(&sw, ((const sl_block_iq1_m *)b)->scales + 2 * (ib / 2), 2);
            const int sh = 6 * (ib % 2);
            IQ_SC(2 * ib, (sw >> sh) & 7), IQ_SC(2 * ib + 1, (sw >> (sh + 3)) & 7);
            break;
        }
        }
    }
#undef IQ_SC
    return _mm256_loadu_si256((const __m256i *)v);
}

/* Step k (elements 32k..32k+31) of super-block b: magnitudes and ±1 signs. */
static inline __attribute__((always_inline)) void iq_step(sl_type_t t, const uint8_t *b, int k, __m256i *mag,
                                                           __m256i *sgn) {
    switch (t) {
    case SL_TYPE_IQ2_XXS: {
        const uint8_t *q = b + 2 + 8 * k;
        *mag = iq_g4(sl_iq2xxs_grid, q[0], q[1], q[2], q[3]);
        *sgn = iq_ksigns4(iq_rd32(q + 4));
        break;
    }
    case SL_TYPE_IQ2_XS: {
        const sl_block_iq2_xs *x = (const sl_block_iq2_xs *)b;
        const uint16_t *v = x->qs + 4 * k;
        *mag = iq_g4(sl_iq2xs_grid, v[0] & 511, v[1] & 511, v[2] & 511, v[3] & 511);
        const uint64_t *t64 = sl_ksigns_pm1;
        *sgn = _mm256_set_epi64x((long long)t64[v[3] >> 9], (long long)t64[v[2] >> 9], (long long)t64[v[1] >> 9],
                                 (long long)t64[v[0] >> 9]);
        break;
    }
    case SL_TYPE_IQ2_S: {
        const sl_block_iq2_s *x = (const sl_block_iq2_s *)b;
        const uint8_t *q = x->qs + 4 * k;
        const int h = x->qh[k];
        *mag = iq_g4(sl_iq2s_grid, q[0] | (h & 3) << 8, q[1] | (h & 12) << 6, q[2] | (h & 48) << 4, q[3] | (h & 192) << 2);
        *sgn = iq_pm1(iq_rd32(x->qs + 32 + 4 * k));
        break;
    }
    case SL_TYPE_IQ3_XXS: {
        const sl_block_iq3_xxs *x = (const sl_block_iq3_xxs *)b;
        const uint8_t *q = x->qs + 8 * k;
        const uint32_t *g = sl_iq3xxs_grid; /* 8 loads: faster here than vpgatherdd */
        *mag = _mm256_set_epi32((int)g[q[7]], (int)g[q[6]], (int)g[q[5]], (int)g[q[4]], (int)g[q[3]], (int)g[q[2]],
                                (int)g[q[1]], (int)g[q[0]]);
        *sgn = iq_ksigns4(iq_rd32(x->qs + 64 + 4 * k));
        break;
    }
    case SL_TYPE_IQ3_S: {
        const sl_block_iq3_s *x = (const sl_block_iq3_s *)b;
        const __m256i hi = _mm256_and_si256(
            _mm256_srlv_epi32(_mm256_set1_epi32(x->qh[k]), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), _mm256_set1_epi32(1));
        const __m256i idx = _mm256_or_si256(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x->qs + 8 * k))),
                                            _mm256_slli_epi32(hi, 8));
        *mag = _mm256_i32gather_epi32((const int *)sl_iq3s_grid, idx, 4); /* the 9-bit indices: vector-built */
        *sgn = iq_pm1(iq_rd32(x->signs + 4 * k));
        break;
    }
    case SL_TYPE_IQ1_S: {
        const sl_block_iq1_s *x = (const sl_block_iq1_s *)b;
        const uint8_t *q = x->qs + 4 * k;
        const int h = x->qh[k];
        const __m256i g = iq_g4(sl_iq1s_grid, q[0] | (h & 7) << 8, q[1] | (h & 0x38) << 5, q[2] | (h & 0x1c0) << 2,
                                q[3] | (h & 0xe00) >> 1);
        const __m256i v = iq1_vals(g, _mm256_set1_epi8(h & 0x8000 ? -1 : 1));
        *mag = _mm256_abs_epi8(v);
        *sgn = v;
        break;
    }
    default: { /* SL_TYPE_IQ1_M */
        const sl_block_iq1_m *x = (const sl_block_iq1_m *)b;
        const uint8_t *q = x->qs + 4 * k;
        const int h0 = x->qh[2 * k], h1 = x->qh[2 * k + 1];
        const __m256i g = iq_g4(sl_iq1s_grid, q[0] | (h0 & 7) << 8, q[1] | (h0 & 0x70) << 4, q[2] | (h1 & 7) << 8,
                                q[3] | (h1 & 0x70) << 4);
        /* the delta signs: bit 3 / 7 of qh byte 2k (groups 0, 1, low lane)
         * and 2k + 1 (groups 2, 3, high lane) → −1 / +1 bytes */
        const __m256i hv = _mm256_shuffle_epi8(_mm256_set1_epi16((short)(h0 | h1 << 8)),
                                               _mm256_set_epi64x(0x0101010101010101, 0x0101010101010101, 0, 0));
        const __m256i m = _mm256_set_epi64x((long long)0x8080808080808080ull, 0x0808080808080808,
                                            (long long)0x8080808080808080ull, 0x0808080808080808);
        const __m256i delta = _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hv, m), m), _mm256_set1_epi8(1));
        const __m256i v = iq1_vals(g, delta);
        *mag = _mm256_abs_epi8(v);
        *sgn = v;
        break;
    }
    }
}

/* D of a super-block (weight = D · multiplier · value) */
static inline __attribute__((always_inline)) float iq_scale(sl_type_t t, const uint8_t *b) {
    if (t == SL_TYPE_IQ1_M) {
        uint16_t s[4];
        memcpy(s, ((const sl_block_iq1_m *)b)->scales, 8);
        const uint16_t h = (uint16_t)((s[0] >> 12) | ((s[1] >> 8) & 0x00f0) | ((s[2] >> 4) & 0x0f00) | (s[3] & 0xf000));
        return f16(h) * 0.125f;
    }
    sl_f16_t d;
    memcpy(&d, b, 2);
    return f16(d) * (t == SL_TYPE_IQ3_S ? 1.0f : t == SL_TYPE_IQ3_XXS ? 0.25f : 0.125f);
}

static inline __attribute__((always_inline)) float iq_dot(sl_type_t t, int64_t n, const void *vw, const void *vx) {
    const size_t bs = sl_type_traits(t)->type_size;
    const sl_block_q8_K *x = vx;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *b = (const uint8_t *)vw + (size_t)i * bs;
        const __m256i scv = iq_scales(t, b);
        __m256i s0 = _mm256_setzero_si256(), s1 = s0;
#pragma GCC unroll 2
        for (int k = 0; k < 8; k++) {
            __m256i mag, sgn;
            iq_step(t, b, k, &mag, &sgn);
            const __m256i xs = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * k)), sgn);
            const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(mag, xs), kq_step_scales(scv, k));
            if (k & 1)
                s1 = _mm256_add_epi32(s1, p);
            else
                s0 = _mm256_add_epi32(s0, p);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(iq_scale(t, b) * x[i].d), _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)),
                              acc);
    }
    return hsum8(acc);
}

/* Rows into the k-quants' unpacked super-blocks: code = value + off
 * (0..2·off), scale lanes the multipliers, min = off · multiplier per 16
 * elements, d = dmin = D. */
static inline __attribute__((always_inline)) void iq_urows(sl_type_t t, int off, int64_t n, const void *w, size_t ws,
                                                            int nr, uint8_t *dst) {
    const size_t bs = sl_type_traits(t)->type_size;
    const __m256i voff = _mm256_set1_epi8((char)off);
    for (int r = 0; r < nr; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * ws;
        for (int64_t i = 0; i < n / SL_QK_K; i++, dst += SL_UK_SB_BYTES) {
            const uint8_t *b = row + (size_t)i * bs;
            const __m256i scv = iq_scales(t, b);
            int16_t sv[16], mn[16];
            _mm256_storeu_si256((__m256i *)sv, scv);
            for (int k = 0; k < 8; k++) {
                __m256i mag, sgn;
                iq_step(t, b, k, &mag, &sgn);
                uk_put(dst, k, _mm256_add_epi8(_mm256_sign_epi8(mag, sgn), voff), kq_step_scales(scv, k));
                mn[2 * k] = (int16_t)(off * sv[k]);
                mn[2 * k + 1] = (int16_t)(off * sv[8 + k]);
            }
            const float d = iq_scale(t, b);
            uk_tail(dst, _mm256_loadu_si256((const __m256i *)mn), d, d);
        }
    }
}

#define DEF_IQ(T, name, off)                                                                                     \
    static float dot_##name(int64_t n, const void *w, const void *x) {                                          \
        return iq_dot(T, n, w, x);                                                                               \
    }                                                                                                            \
    static void urows_##name(int64_t n, const void *w, size_t ws, int nr, uint8_t *dst) {                       \
        iq_urows(T, off, n, w, ws, nr, dst);                                                                     \
    }
DEF_IQ(SL_TYPE_IQ2_XXS, iq2_xxs, 43)
DEF_IQ(SL_TYPE_IQ2_XS, iq2_xs, 43)
DEF_IQ(SL_TYPE_IQ2_S, iq2_s, 43)
DEF_IQ(SL_TYPE_IQ3_XXS, iq3_xxs, 62)
DEF_IQ(SL_TYPE_IQ3_S, iq3_s, 15)
DEF_IQ(SL_TYPE_IQ1_S, iq1_s, 9)
DEF_IQ(SL_TYPE_IQ1_M, iq1_m, 9)
#undef DEF_IQ

bool sl_kern_fill_avx2(sl_kern_table_t *t) {
    t->dot[SL_TYPE_F32] = dot_f32;
    t->dot[SL_TYPE_F16] = dot_f16;
    t->dot[SL_TYPE_BF16] = dot_bf16;
    t->dot[SL_TYPE_Q4_0] = dot_q4_0;
    t->dot[SL_TYPE_Q4_1] = dot_q4_1;
    t->dot[SL_TYPE_Q5_0] = dot_q5_0;
    t->dot[SL_TYPE_Q5_1] = dot_q5_1;
    t->dot[SL_TYPE_Q8_0] = dot_q8_0;
    t->dot[SL_TYPE_Q4_K] = dot_q4_K;
    t->dot[SL_TYPE_Q5_K] = dot_q5_K;
    t->dot[SL_TYPE_Q6_K] = dot_q6_K;
    t->tile[SL_TYPE_F32] = tile_f32;
    t->tile[SL_TYPE_F16] = tile_f16;
    t->tile[SL_TYPE_BF16] = tile_bf16;
    t->tile[SL_TYPE_Q4_0] = tile_q4_0;
    t->tile[SL_TYPE_Q5_0] = tile_q5_0;
    t->tile[SL_TYPE_Q8_0] = tile_q8_0;
    t->tile[SL_TYPE_Q4_K] = tile_q4_K;
    t->tile[SL_TYPE_Q6_K] = tile_q6_K;
    t->unpack[SL_TYPE_Q4_0] = urows_q4_0;
    t->unpack[SL_TYPE_Q4_1] = urows_q4_1;
    t->unpack[SL_TYPE_Q5_0] = urows_q5_0;
    t->unpack[SL_TYPE_Q5_1] = urows_q5_1;
    t->unpack[SL_TYPE_Q8_0] = urows_q8_0;
    t->dot[SL_TYPE_IQ4_NL] = dot_iq4_nl;
    t->unpack[SL_TYPE_IQ4_NL] = urows_iq4_nl;
    t->gemmu[SL_TYPE_IQ4_NL] = gemmu_s8;
    t->dot[SL_TYPE_MXFP4] = dot_mxfp4;
    t->dotf[SL_TYPE_MXFP4] = dotf_mxfp4;
    t->unpack[SL_TYPE_MXFP4] = urows_mxfp4;
    t->gemmu[SL_TYPE_MXFP4] = gemmu_s8;
    t->dot[SL_TYPE_IQ4_XS] = dot_iq4_xs;
    t->tile[SL_TYPE_IQ4_XS] = tile_iq4_xs;
    t->unpack[SL_TYPE_IQ4_XS] = urows_iq4_xs;
    t->gemmu[SL_TYPE_IQ4_XS] = gemmu_s8;
    t->gemmu[SL_TYPE_Q4_0] = gemmu_u8;
    t->gemmu[SL_TYPE_Q4_1] = gemmu_u8;
    t->gemmu[SL_TYPE_Q5_0] = gemmu_u8;
    t->gemmu[SL_TYPE_Q5_1] = gemmu_u8;
    t->gemmu[SL_TYPE_Q8_0] = gemmu_s8;
    t->x8_dot[SL_TYPE_Q8_0] = x8_dot_q8_0;
    t->x8_gemm[SL_TYPE_Q8_0] = x8_gemm_q8_0;
    t->x8_dot[SL_TYPE_Q5_0] = x8_dot_q5_0;
    t->x8_unpack[SL_TYPE_Q5_0] = x8_unpack_q5_0;
    t->x8_dot[SL_TYPE_Q4_0] = x8_dot_q4_0;
    t->x8_unpack[SL_TYPE_Q4_0] = x8_unpack_q4_0;
    t->x8_dot[SL_TYPE_Q5_1] = x8_dot_q5_1;
    t->x8_unpack[SL_TYPE_Q5_1] = x8_unpack_q5_1;
    t->x8_dot[SL_TYPE_Q4_1] = x8_dot_q4_1;
    t->x8_dot[SL_TYPE_IQ4_XS] = x8_dot_iq4_xs;
    t->x8_unpack[SL_TYPE_IQ4_XS] = x8_unpack_iq4_xs;
    t->x8_dot[SL_TYPE_IQ4_NL] = x8_dot_iq4_nl;
    t->x8_unpack[SL_TYPE_IQ4_NL] = x8_unpack_iq4_nl;
    t->x8_unpack[SL_TYPE_Q4_1] = x8_unpack_q4_1;
    t->x8_dot[SL_TYPE_Q4_K] = x8_dot_q4_K;
    t->x8_dot4[SL_TYPE_Q4_K] = x8_dot4_q4_K;
    t->x8_dot[SL_TYPE_Q5_K] = x8_dot_q5_K;
    t->x8_dot4[SL_TYPE_Q5_K] = x8_dot4_q5_K;
    t->x8_dot[SL_TYPE_Q6_K] = x8_dot_q6_K;
    t->x8_dot4[SL_TYPE_Q6_K] = x8_dot4_q6_K;
    t->dot[SL_TYPE_Q2_K] = dot_q2_K;
    t->dot[SL_TYPE_Q3_K] = dot_q3_K;
    t->unpack[SL_TYPE_Q2_K] = urows_q2_K;
    t->unpack[SL_TYPE_Q3_K] = urows_q3_K;
    t->gemmuk[SL_TYPE_Q2_K] = gemmuk;
    t->gemmuk[SL_TYPE_Q3_K] = gemmuk;
    t->unpack[SL_TYPE_Q4_K] = urows_q4_K;
    t->unpack[SL_TYPE_Q5_K] = urows_q5_K;
    t->unpack[SL_TYPE_Q6_K] = urows_q6_K;
    t->gemmuk[SL_TYPE_Q4_K] = gemmuk;
    t->gemmuk[SL_TYPE_Q5_K] = gemmuk;
    t->gemmuk[SL_TYPE_Q6_K] = gemmuk;
#define FILL_IQ(T, name) t->dot[T] = dot_##name, t->unpack[T] = urows_##name, t->gemmuk[T] = gemmuk
    FILL_IQ(SL_TYPE_IQ2_XXS, iq2_xxs);
    FILL_IQ(SL_TYPE_IQ2_XS, iq2_xs);
    FILL_IQ(SL_TYPE_IQ2_S, iq2_s);
    FILL_IQ(SL_TYPE_IQ3_XXS, iq3_xxs);
    FILL_IQ(SL_TYPE_IQ3_S, iq3_s);
    FILL_IQ(SL_TYPE_IQ1_S, iq1_s);
    FILL_IQ(SL_TYPE_IQ1_M, iq1_m);
#undef FILL_IQ
    t->dotf[SL_TYPE_Q4_0] = dotf_q4_0;
    t->dotf[SL_TYPE_Q5_0] = dotf_q5_0;
    t->dotf[SL_TYPE_Q8_0] = dotf_q8_0;
    t->dotf[SL_TYPE_IQ4_NL] = dotf_iq4_nl;
    t->dotf[SL_TYPE_IQ4_XS] = dotf_iq4_xs;
    t->gemm[SL_TYPE_Q4_0] = gemm_q4_0;
    t->gemm[SL_TYPE_Q5_0] = gemm_q5_0;
    t->gemm[SL_TYPE_Q8_0] = gemm_q8_0;
    t->quant[SL_TYPE_Q8_0] = quant_q8_0;
    t->quantf = quantf_q8;
    t->quant[SL_TYPE_Q8_1] = quant_q8_1;
    t->quant[SL_TYPE_Q8_K] = quant_q8_K;
    return true;
}

#else
bool sl_kern_fill_avx2(sl_kern_table_t *t) {
    (void)t;
    return false;
}
#endif
