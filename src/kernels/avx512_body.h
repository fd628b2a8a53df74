/*
 * avx512_body.h — the AVX-512 level's own kernels (dot_avx512.c): 512-bit
 * float dots for f32/f16/bf16 weights, and dots and tiles of the
 * q8_0-dotted block types (q4_0, q5_0, q8_0) with vpdpbusd.
 *
 * Written against a few macros so that the same source compiles twice:
 * with the real instructions in avx512/dot_avx512.c, and in
 * avx2/vnni_emul.c over exact AVX2 emulations of them, so that the tests
 * check these kernels' logic (tails, the q5_0 high-bit mask, tiles) against
 * the scalar reference on CPUs without AVX-512. The includer defines, after
 * <immintrin.h>:
 *   A512_NAME(name)        the name of an instance's function
 *   A512_F                 a vector of 16 floats
 *   A512_ZERO()            16 zeros
 *   A512_LOADU(p)          16 floats from p (unaligned)
 *   A512_LOAD_F16(p)       16 f16 from p, as floats
 *   A512_LOAD_BF16(p)      16 bf16 from p, as floats
 *   A512_FMADD(a, b, c)    a · b + c
 *   A512_ADD(a, b)         a + b
 *   A512_HSUM(v)           the sum of the 16 lanes
 *   A512_MASKZ_MOV_EPI8(k, v)  byte j of the 256-bit v where bit j of k is
 *                          set, else 0 (vmovdqu8 with zero-masking)
 *   X8V_DPBUSD(acc, u, s)  as for x8_vnni.h (256-bit vpdpbusd)
 * and for the 16-row panel GEMM (two x8 panels side by side in one vector:
 * lanes 0-7 the first panel's rows, 8-15 the second's):
 *   A512_I                 a vector of 16 s32
 *   A512_I_ZERO()          16 zeros
 *   A512_I_LOAD2(p, q)     32 bytes from p (lanes 0-7), 32 from q (8-15)
 *   A512_I_BCAST4(v)       the u32 v in every lane
 *   A512_I_XOR80(v)        v with every byte's top bit flipped
 *   A512_I_ADD(a, b)       a + b per s32 lane
 *   A512_DPBUSD(acc, u, s) 512-bit vpdpbusd
 *   A512_CVT(i)            the 16 s32 as floats
 *   A512_LOAD2_PS(p, q)    8 floats from p, 8 from q
 *   A512_LOAD2_PH(p, q)    8 f16 from p, 8 from q, as floats
 *   A512_SET1(f)           f in every lane
 *   A512_MUL(a, b)         a · b
 *   A512_STOREU(p, v)      the 16 floats to p
 * and for the k-quants' 16-row kernels:
 *   A512_I_FROM2(lo, hi)   two 256-bit vectors as lanes 0-7 and 8-15
 *   A512_I_SET1_EPI8(c)    the byte c everywhere
 *   A512_I_AND(a, b), A512_I_OR(a, b), A512_I_SUB(a, b) (s32 lanes)
 *   A512_I_SRLI16(v, k), A512_I_SLLI16(v, k)   shifts of the 16-bit lanes
 *   A512_I_SLLI32(v, k), A512_I_SRAI32(v, k)   shifts of the 32-bit lanes
 *   A512_I_MULLO(a, b)     the low 32 bits of a · b per s32 lane
 *   A512_I_MADD16(a, b)    vpmaddwd
 * A512_NAME(fill) installs the kernels over an AVX2 table, the x8_vnni.h
 * instance (X8V_NAME(fill)) included before this file among them.
 */
#include <string.h>

#include "kernels/kern_impl.h"
#include "kernels/x8_simd.h"


static float A512_NAME(dot_f32)(int64_t n, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    A512_F a0 = A512_ZERO(), a1 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = A512_FMADD(A512_LOADU(w + i), A512_LOADU(x + i), a0);
        a1 = A512_FMADD(A512_LOADU(w + i + 16), A512_LOADU(x + i + 16), a1);
    }
    for (; i + 16 <= n; i += 16)
        a0 = A512_FMADD(A512_LOADU(w + i), A512_LOADU(x + i), a0);
    float s = A512_HSUM(A512_ADD(a0, a1));
    for (; i < n; i++)
        s += w[i] * x[i];
    return s;
}

static float A512_NAME(dot_f16)(int64_t n, const void *vw, const void *vx) {
    const sl_f16_t *w = vw;
    const float *x = vx;
    A512_F a0 = A512_ZERO(), a1 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = A512_FMADD(A512_LOAD_F16(w + i), A512_LOADU(x + i), a0);
        a1 = A512_FMADD(A512_LOAD_F16(w + i + 16), A512_LOADU(x + i + 16), a1);
    }
    float s = A512_HSUM(A512_ADD(a0, a1));
    for (; i < n; i++)
        s += f16(w[i]) * x[i];
    return s;
}

static float A512_NAME(dot_bf16)(int64_t n, const void *vw, const void *vx) {
    const sl_bf16_t *w = vw;
    const float *x = vx;
    A512_F a0 = A512_ZERO();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        a0 = A512_FMADD(A512_LOAD_BF16(w + i), A512_LOADU(x + i), a0);
    float s = A512_HSUM(a0);
    for (; i < n; i++)
        s += sl_bf16_to_f32(w[i]) * x[i];
    return s;
}

static inline __m256i nibbles32(const uint8_t *p) {
    __m128i lo = _mm_loadu_si128((const __m128i *)p);
    __m128i hi = _mm_srli_epi16(lo, 4);
    return _mm256_and_si256(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(0x0f));
}

static inline __m256i unpack_q4_0(const sl_block_q4_0 *b) {
    return _mm256_sub_epi8(nibbles32(b->qs), _mm256_set1_epi8(8));
}
static inline __m256i unpack_q5_0(const sl_block_q5_0 *b) {
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    /* mask bit j set → element j has its 5th bit; clear → subtract 16 */
    __m256i hi = A512_MASKZ_MOV_EPI8(~(__mmask32)qh, _mm256_set1_epi8((char)0xf0));
    return _mm256_or_si256(nibbles32(b->qs), hi);
}
static inline __m256i unpack_q8_0(const sl_block_q8_0 *b) {
    return _mm256_loadu_si256((const __m256i *)b->qs);
}

/* s8 · s8 over 32 bytes via |w| · sign(x, w), as 8 floats */
static inline __m256 dot_i8(__m256i w, __m256i x) {
    __m256i p = X8V_DPBUSD(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
    return _mm256_cvtepi32_ps(p);
}

#define DEF_DOT_Q0(name, btype, unpack)                                                            \
    static float A512_NAME(name)(int64_t n, const void *vw, const void *vx) {                      \
        const btype *w = vw;                                                                       \
        const sl_block_q8_0 *x = vx;                                                               \
        __m256 acc = _mm256_setzero_ps();                                                          \
        for (int64_t i = 0; i < n / 32; i++) {                                                     \
            __m256 p = dot_i8(unpack(&w[i]), _mm256_loadu_si256((const __m256i *)x[i].qs));        \
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[i].d) * f16(x[i].d)), p, acc);              \
        }                                                                                          \
        return hsum8(acc);                                                                         \
    }

DEF_DOT_Q0(dot_q4_0, sl_block_q4_0, unpack_q4_0)
DEF_DOT_Q0(dot_q5_0, sl_block_q5_0, unpack_q5_0)
DEF_DOT_Q0(dot_q8_0, sl_block_q8_0, unpack_q8_0)

/* one weight row × 4 tokens, as the AVX2 tiles */
#define DEF_TILE_Q0(name, btype, unpack, dotfn)                                                    \
    static void A512_NAME(name)(int64_t n, const void *w, size_t ws, int nr, const void *x,        \
                                size_t xs, int nc, float *out, size_t os) {                        \
        for (int r = 0; r < nr; r++) {                                                             \
            const btype *wr = (const btype *)((const uint8_t *)w + (size_t)r * ws);                \
            if (nc < 4) {                                                                          \
                for (int c = 0; c < nc; c++)                                                       \
                    out[(size_t)c * os + (size_t)r] =                                              \
                        A512_NAME(dotfn)(n, wr, (const uint8_t *)x + (size_t)c * xs);              \
                continue;                                                                          \
            }                                                                                      \
            const sl_block_q8_0 *xr[4];                                                            \
            for (int c = 0; c < 4; c++)                                                            \
                xr[c] = (const void *)((const uint8_t *)x + (size_t)c * xs);                       \
            __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),          \
                           _mm256_setzero_ps()};                                                   \
            for (int64_t i = 0; i < n / 32; i++) {                                                 \
                __m256i wv = unpack(&wr[i]);                                                       \
                __m256i aw = _mm256_abs_epi8(wv);                                                  \
                const float dw = f16(wr[i].d);                                                     \
                for (int c = 0; c < 4; c++) {                                                      \
                    __m256i xv = _mm256_loadu_si256((const __m256i *)xr[c][i].qs);                 \
                    __m256i p = X8V_DPBUSD(_mm256_setzero_si256(), aw, _mm256_sign_epi8(xv, wv));  \
                    a[c] = _mm256_fmadd_ps(_mm256_set1_ps(dw * f16(xr[c][i].d)),                   \
                                           _mm256_cvtepi32_ps(p), a[c]);                           \
                }                                                                                  \
            }                                                                                      \
            for (int c = 0; c < 4; c++)                                                            \
                out[(size_t)c * os + (size_t)r] = hsum8(a[c]);                                     \
        }                                                                                          \
    }

DEF_TILE_Q0(tile_q4_0, sl_block_q4_0, unpack_q4_0, dot_q4_0)
DEF_TILE_Q0(tile_q5_0, sl_block_q5_0, unpack_q5_0, dot_q5_0)
DEF_TILE_Q0(tile_q8_0, sl_block_q8_0, unpack_q8_0, dot_q8_0)

/* ---- float weights (f32 / f16 / bf16) × f32 activations: tiles ----
 *
 * As the AVX2 tiles (avx2/dot_avx2.c), 16 elements per step: 4 rows × 4
 * tokens (16 accumulators) for many tokens, 8 rows × 1 token for decode,
 * each row and token one FMA chain reduced the same way whatever the
 * shape (then the same scalar tail), so a token's logits come out bit for
 * bit the same alone or in a batch. Tokens past nc repeat token 0 and are
 * not stored. */
static inline __attribute__((always_inline)) A512_F A512_NAME(fw_load16)(int kind, const uint8_t *row, int64_t i) {
    if (kind == SL_FW_F16) return A512_LOAD_F16((const sl_f16_t *)row + i);
    if (kind == SL_FW_BF16) return A512_LOAD_BF16((const sl_bf16_t *)row + i);
    return A512_LOADU((const float *)row + i);
}

static inline __attribute__((always_inline)) void A512_NAME(tile_fw_rows)(int kind, const int R, const int NC,
                                                                          int64_t n, const uint8_t *w0, size_t ws,
                                                                          const float *const xr[4],
                                                                          float s[8][4]) {
    A512_F a[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) a[r][c] = A512_ZERO();
    int64_t i = 0;
    const size_t esz = kind == SL_FW_F32 ? 4 : 2;
    const uint8_t *pf = w0 + (size_t)R * ws; /* decode: the next R rows, at this block's pace */
    for (; i + 16 <= n; i += 16) {
        if (NC == 1) {
            const uint8_t *p = pf + (size_t)i * esz * (size_t)R;
            for (size_t o = 0; o < 16 * esz * (size_t)R; o += 64) _mm_prefetch((const char *)(p + o), _MM_HINT_T0);
        }
        A512_F v[8];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) v[r] = A512_NAME(fw_load16)(kind, w0 + (size_t)r * ws, i);
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) {
            const A512_F xv = A512_LOADU(xr[c] + i);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) a[r][c] = A512_FMADD(v[r], xv, a[r][c]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) s[r][c] = A512_HSUM(a[r][c]);
    for (; i < n; i++)
        for (int r = 0; r < R; r++) {
            const float u = sl_fw_load1(kind, w0 + (size_t)r * ws, i);
            for (int c = 0; c < NC; c++) s[r][c] += u * xr[c][i];
        }
}

static inline __attribute__((always_inline)) void A512_NAME(tile_fw)(int kind, int64_t n, const void *w, size_t ws,
                                                                     int nr, const void *x, size_t xs, int nc,
                                                                     float *out, size_t os) {
    SL_TILE_FW_LOOP(A512_NAME(tile_fw_rows), 4);
}
static void A512_NAME(tile_f32)(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nc,
                                float *out, size_t os) {
    A512_NAME(tile_fw)(SL_FW_F32, n, w, ws, nr, x, xs, nc, out, os);
}
static void A512_NAME(tile_f16)(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nc,
                                float *out, size_t os) {
    A512_NAME(tile_fw)(SL_FW_F16, n, w, ws, nr, x, xs, nc, out, os);
}
static void A512_NAME(tile_bf16)(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nc,
                                 float *out, size_t os) {
    A512_NAME(tile_fw)(SL_FW_BF16, n, w, ws, nr, x, xs, nc, out, os);
}

/* Two adjacent 8-row panels (pn0, pn1: 16 rows) × the 4 tokens of a
 * group, as X8V_NAME(panel4) does one: q8 — x8 q8_0 panels (f16 scales,
 * codes made unsigned by the top-bit flip, offset −128 · d · s); else
 * unpacked SL_U_PANEL_BLOCK panels (float d, offset m · s). Each 512-bit
 * vpdpbusd covers both panels' code vectors against one broadcast of the
 * token's 4 bytes; even and odd groups go into separate chains. */
static inline __attribute__((always_inline)) void A512_NAME(panel4x2)(bool q8, int64_t nb, const uint8_t *pn0,
                                                                      const uint8_t *pn1, const sl_q8x4_t *x,
                                                                      A512_F acc[4], sl_pf_t *pf) {
    const size_t bsz = q8 ? SL_X8_Q8_0_BLOCK : SL_U_PANEL_BLOCK, co = q8 ? 16 : 64;
    A512_F f0 = A512_ZERO(), f1 = f0, f2 = f0, f3 = f0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p0 = pn0 + (size_t)b * bsz, *p1 = pn1 + (size_t)b * bsz;
        const sl_q8x4_t *xb = x + b;
        x8_pf(pf);
        A512_I i0 = A512_I_ZERO(), i1 = i0, i2 = i0, i3 = i0, j0 = i0, j1 = i0, j2 = i0, j3 = i0;
#pragma GCC unroll 4
        for (int g = 0; g < 8; g += 2) {
            A512_I w = A512_I_LOAD2(p0 + co + 32 * g, p1 + co + 32 * g);
            A512_I v = A512_I_LOAD2(p0 + co + 32 * g + 32, p1 + co + 32 * g + 32);
            if (q8) w = A512_I_XOR80(w), v = A512_I_XOR80(v);
#define A512_G(i, j, c)                                                  \
    i = A512_DPBUSD(i, w, A512_I_BCAST4(x8_bytes4(xb->qs[c] + 4 * g))); \
    j = A512_DPBUSD(j, v, A512_I_BCAST4(x8_bytes4(xb->qs[c] + 4 * g + 4)))
            A512_G(i0, j0, 0);
            A512_G(i1, j1, 1);
            A512_G(i2, j2, 2);
            A512_G(i3, j3, 3);
#undef A512_G
        }
        A512_F d, off;
        if (q8) {
            d = A512_LOAD2_PH(p0, p1);
            off = A512_MUL(d, A512_SET1(-128.0f));
        } else {
            d = A512_LOAD2_PS((const float *)p0, (const float *)p1);
            off = A512_LOAD2_PS((const float *)p0 + 8, (const float *)p1 + 8);
        }
#define A512_ACC(f, i, j, c)                                                                    \
    f = A512_FMADD(A512_MUL(d, A512_SET1(xb->d[c])), A512_CVT(A512_I_ADD(i, j)), f); \
    f = A512_FMADD(off, A512_SET1(xb->s[c]), f)
        A512_ACC(f0, i0, j0, 0);
        A512_ACC(f1, i1, j1, 1);
        A512_ACC(f2, i2, j2, 2);
        A512_ACC(f3, i3, j3, 3);
#undef A512_ACC
    }
    acc[0] = f0;
    acc[1] = f1;
    acc[2] = f2;
    acc[3] = f3;
}

/* Many tokens, x8 q8_0: np panels × the nc (<= 4) tokens of one group,
 * two panels at a time (the 16 rows' outputs are adjacent), an odd last
 * one by the 8-row kernel. */
static void A512_NAME(x8_gemm_q8_0)(int64_t n, const void *panels, int np, const sl_q8x4_t *x, int nc,
                                    float *out, size_t os, sl_pf_t *pf) {
    const int64_t nb = n / 32;
    const size_t pbytes = (size_t)nb * SL_X8_Q8_0_BLOCK;
    const uint8_t *pn = panels;
    int p = 0;
    for (; p + 2 <= np; p += 2) {
        A512_F acc[4];
        A512_NAME(panel4x2)(true, nb, pn + (size_t)p * pbytes, pn + (size_t)(p + 1) * pbytes, x, acc, pf);
        for (int c = 0; c < nc; c++) A512_STOREU(out + (size_t)c * os + (size_t)p * 8, acc[c]);
    }
    if (p < np) X8V_NAME(x8_gemm_q8_0)(n, pn + (size_t)p * pbytes, 1, x, nc, out + (size_t)p * 8, os, pf);
}

/* Two adjacent x8 q8_0 panels (16 rows) × the 8 tokens of two groups (x,
 * x + nb). The codes are made unsigned by the top-bit flip, as above, but
 * the extra 128 · Σx comes off in s32 (o[c]): the exact integer dot, then
 * one multiply and one FMA per token and block. Per code vector (8 rows ×
 * 4 bytes of each panel) one vpdpbusd per token, one chain per token (8
 * chains cover its latency); each code vector is loaded and flipped once
 * for 8 tokens, half as often per product as with 4. */
static inline __attribute__((always_inline)) void A512_NAME(q8_tile8)(int64_t nb, const uint8_t *pn0,
                                                                      const uint8_t *pn1, const sl_q8x4_t *x,
                                                                      A512_F acc[8], sl_pf_t *pf) {
    A512_F f0 = A512_ZERO(), f1 = f0, f2 = f0, f3 = f0, f4 = f0, f5 = f0, f6 = f0, f7 = f0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p0 = pn0 + (size_t)b * SL_X8_Q8_0_BLOCK, *p1 = pn1 + (size_t)b * SL_X8_Q8_0_BLOCK;
        const sl_q8x4_t *xa = x + b, *xb = x + nb + b;
        x8_pf(pf);
        A512_I i0 = A512_I_ZERO(), i1 = i0, i2 = i0, i3 = i0, i4 = i0, i5 = i0, i6 = i0, i7 = i0;
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            const A512_I w = A512_I_XOR80(A512_I_LOAD2(p0 + 16 + 32 * g, p1 + 16 + 32 * g));
            i0 = A512_DPBUSD(i0, w, A512_I_BCAST4(x8_bytes4(xa->qs[0] + 4 * g)));
            i1 = A512_DPBUSD(i1, w, A512_I_BCAST4(x8_bytes4(xa->qs[1] + 4 * g)));
            i2 = A512_DPBUSD(i2, w, A512_I_BCAST4(x8_bytes4(xa->qs[2] + 4 * g)));
            i3 = A512_DPBUSD(i3, w, A512_I_BCAST4(x8_bytes4(xa->qs[3] + 4 * g)));
            i4 = A512_DPBUSD(i4, w, A512_I_BCAST4(x8_bytes4(xb->qs[0] + 4 * g)));
            i5 = A512_DPBUSD(i5, w, A512_I_BCAST4(x8_bytes4(xb->qs[1] + 4 * g)));
            i6 = A512_DPBUSD(i6, w, A512_I_BCAST4(x8_bytes4(xb->qs[2] + 4 * g)));
            i7 = A512_DPBUSD(i7, w, A512_I_BCAST4(x8_bytes4(xb->qs[3] + 4 * g)));
        }
        const A512_F d = A512_LOAD2_PH(p0, p1);
#define A512_ACC8(f, i, xt, c) \
    f = A512_FMADD(A512_MUL(d, A512_SET1(xt->d[c])), A512_CVT(A512_I_SUB(i, A512_I_BCAST4((uint32_t)xt->o[c]))), f)
        A512_ACC8(f0, i0, xa, 0);
        A512_ACC8(f1, i1, xa, 1);
        A512_ACC8(f2, i2, xa, 2);
        A512_ACC8(f3, i3, xa, 3);
        A512_ACC8(f4, i4, xb, 0);
        A512_ACC8(f5, i5, xb, 1);
        A512_ACC8(f6, i6, xb, 2);
        A512_ACC8(f7, i7, xb, 3);
#undef A512_ACC8
    }
    acc[0] = f0;
    acc[1] = f1;
    acc[2] = f2;
    acc[3] = f3;
    acc[4] = f4;
    acc[5] = f5;
    acc[6] = f6;
    acc[7] = f7;
}

/* Many tokens, x8 q8_0, up to 8 a call (more than 4: two groups, the
 * padding tokens of the second zero): np panels, two at a time; an odd
 * last one by the 8-row kernel, once per group. */
static void A512_NAME(x8_gemm8_q8_0)(int64_t n, const void *panels, int np, const sl_q8x4_t *x, int nc,
                                     float *out, size_t os, sl_pf_t *pf) {
    const int64_t nb = n / 32;
    const size_t pbytes = (size_t)nb * SL_X8_Q8_0_BLOCK;
    const uint8_t *pn = panels;
    if (nc <= 4) {
        A512_NAME(x8_gemm_q8_0)(n, panels, np, x, nc, out, os, pf);
        return;
    }
    int p = 0;
    for (; p + 2 <= np; p += 2) {
        A512_F acc[8];
        A512_NAME(q8_tile8)(nb, pn + (size_t)p * pbytes, pn + (size_t)(p + 1) * pbytes, x, acc, pf);
        for (int c = 0; c < nc; c++) A512_STOREU(out + (size_t)c * os + (size_t)p * 8, acc[c]);
    }
    if (p < np) {
        X8V_NAME(x8_gemm_q8_0)(n, pn + (size_t)p * pbytes, 1, x, 4, out + (size_t)p * 8, os, pf);
        X8V_NAME(x8_gemm_q8_0)(n, pn + (size_t)p * pbytes, 1, x + nb, nc - 4, out + 4 * os + (size_t)p * 8, os, pf);
    }
}

/* Two adjacent x8 q5_0 (five) / q4_0 panels (16 rows) × the NT (4 or 8)
 * tokens of one or two groups (x, x + nb), straight from the panels: each
 * code vector expanded once per block (x8_q4_block's steps on both panels'
 * vectors at once) and used unsigned by NT vpdpbusd, one chain per token;
 * the −16 / −8 offset comes off in s32 (o >> 3 = 16 · Σx, o >> 4 = 8 · Σx),
 * then one multiply and one FMA per token and block. pn1 may equal pn0 (a
 * lone panel: the caller keeps lanes 0-7). */
static inline __attribute__((always_inline)) void A512_NAME(q45_tile)(bool five, int nt, int64_t nb,
                                                                      const uint8_t *pn0, const uint8_t *pn1,
                                                                      const sl_q8x4_t *x, A512_F acc[8],
                                                                      sl_pf_t *pf) {
    const size_t bsz = five ? SL_X8_Q5_0_BLOCK : SL_X8_Q4_0_BLOCK;
    const int sh = five ? 3 : 4;
    const A512_I m4 = A512_I_SET1_EPI8(0x0f), m5 = A512_I_SET1_EPI8(0x1f), m3 = A512_I_SET1_EPI8(0x07),
                 m18 = A512_I_SET1_EPI8(0x18);
    A512_F f[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) f[t] = A512_ZERO();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p0 = pn0 + (size_t)b * bsz, *p1 = pn1 + (size_t)b * bsz;
        const sl_q8x4_t *xg[2] = {x + b, x + nb + b};
        x8_pf(pf);
        A512_I i[8];
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) i[t] = A512_I_ZERO();
        const A512_I hb = five ? A512_I_LOAD2(p0 + 16, p1 + 16) : A512_I_ZERO();
        const uint8_t *v0 = p0 + (five ? 48 : 16), *v1 = p1 + (five ? 48 : 16);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const A512_I w = A512_I_LOAD2(v0 + 32 * k, v1 + 32 * k);
            A512_I lo, hi;
            if (five) {
                /* group k + 4: bits 0-2 from bits 5-7, bits 3-4 from bits 2k, 2k + 1 of hb */
                const A512_I h = k == 0 ? A512_I_SLLI16(hb, 3)
                                 : k == 1 ? A512_I_SLLI16(hb, 1)
                                 : k == 2 ? A512_I_SRLI16(hb, 1)
                                          : A512_I_SRLI16(hb, 3);
                lo = A512_I_AND(w, m5);
                hi = A512_I_OR(A512_I_AND(A512_I_SRLI16(w, 5), m3), A512_I_AND(h, m18));
            } else {
                lo = A512_I_AND(w, m4);
                hi = A512_I_AND(A512_I_SRLI16(w, 4), m4);
            }
#pragma GCC unroll 8
            for (int t = 0; t < nt; t++)
                i[t] = A512_DPBUSD(i[t], lo, A512_I_BCAST4(x8_bytes4(xg[t / 4]->qs[t % 4] + 4 * k)));
#pragma GCC unroll 8
            for (int t = 0; t < nt; t++)
                i[t] = A512_DPBUSD(i[t], hi, A512_I_BCAST4(x8_bytes4(xg[t / 4]->qs[t % 4] + 4 * (k + 4))));
        }
        const A512_F d = A512_LOAD2_PH(p0, p1);
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const sl_q8x4_t *xt = xg[t / 4];
            f[t] = A512_FMADD(A512_MUL(d, A512_SET1(xt->d[t % 4])),
                              A512_CVT(A512_I_SUB(i[t], A512_I_BCAST4((uint32_t)(xt->o[t % 4] >> sh)))), f[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) acc[t] = f[t];
}

/* Many tokens, x8 q5_0 / q4_0: np panels × nc (<= 8; more than 4: two
 * groups, the second's padding tokens zero) tokens, two panels at a time,
 * an odd last one paired with itself (its 8 rows kept). */
static inline __attribute__((always_inline)) void A512_NAME(x8_gemm_q45)(bool five, int64_t n, const void *panels,
                                                                         int np, const sl_q8x4_t *x, int nc,
                                                                         float *out, size_t os, sl_pf_t *pf) {
    const int64_t nb = n / 32;
    const size_t pbytes = (size_t)nb * (five ? SL_X8_Q5_0_BLOCK : SL_X8_Q4_0_BLOCK);
    const uint8_t *pn = panels;
    for (int p = 0; p < np; p += 2) {
        const uint8_t *a = pn + (size_t)p * pbytes, *b = p + 1 < np ? a + pbytes : a;
        A512_F acc[8];
        if (nc > 4)
            A512_NAME(q45_tile)(five, 8, nb, a, b, x, acc, pf);
        else
            A512_NAME(q45_tile)(five, 4, nb, a, b, x, acc, pf);
        for (int c = 0; c < nc; c++) {
            if (p + 1 < np) {
                A512_STOREU(out + (size_t)c * os + (size_t)p * 8, acc[c]);
            } else {
                float tmp[16];
                A512_STOREU(tmp, acc[c]);
                memcpy(out + (size_t)c * os + (size_t)p * 8, tmp, 8 * sizeof(float));
            }
        }
    }
}
static void A512_NAME(x8_gemm_q5_0)(int64_t n, const void *panels, int np, const sl_q8x4_t *x, int nc, float *out,
                                    size_t os, sl_pf_t *pf) {
    A512_NAME(x8_gemm_q45)(true, n, panels, np, x, nc, out, os, pf);
}
static void A512_NAME(x8_gemm_q4_0)(int64_t n, const void *panels, int np, const sl_q8x4_t *x, int nc, float *out,
                                    size_t os, sl_pf_t *pf) {
    A512_NAME(x8_gemm_q45)(false, n, panels, np, x, nc, out, os, pf);
}

/* Many tokens over unpacked rows of unsigned codes (as X8V_NAME(gemmu_u8)):
 * 16 rows at a time, the rest (< 16 rows) by the 8-row kernel. */
static void A512_NAME(gemmu_u8)(int64_t n, const uint8_t *u, int nr, const sl_q8x4_t *x, int nc, float *out,
                                size_t os) {
    const int64_t nb = n / 32;
    const size_t pbytes = (size_t)nb * SL_U_PANEL_BLOCK;
    int r = 0;
    for (; r + 16 <= nr; r += 16) {
        A512_F acc[4];
        A512_NAME(panel4x2)(false, nb, u + (size_t)(r / 8) * pbytes, u + (size_t)(r / 8 + 1) * pbytes, x, acc, NULL);
        for (int c = 0; c < nc; c++) A512_STOREU(out + (size_t)c * os + (size_t)r, acc[c]);
    }
    if (r < nr) X8V_NAME(gemmu_u8)(n, u + (size_t)(r / 8) * pbytes, nr - r, x, nc, out + r, os);
}

/* ---- k-quants, many tokens: two adjacent x8 panels (16 rows) ----
 *
 * As the VNNI x8_dot4 kernels of x8_vnni.h (the same integers, so the
 * same floats: decode and batches agree), with both panels' code vectors
 * in one 512-bit register, so each vpdpbusd and each broadcast of a
 * token's 4 bytes serve 16 rows. A short group of tokens repeats its last
 * one (x8k_tokens; not stored). */

/* q4_K, or q5_K (five: each sub-block's fifth-bit vector after its
 * nibbles, bit g of a byte → bit 4 of group g's code) */
static inline __attribute__((always_inline)) void A512_NAME(k45_dot4x2)(bool five, int64_t n, const void *panel,
                                                                        const void *vx, size_t xs, int nc,
                                                                        float *out, size_t os) {
    const sl_block_q8_K *x[4];
    x8k_tokens(vx, xs, nc, x);
    const int64_t nb = n / SL_QK_K;
    const size_t bsz = five ? SL_X8_Q5_K_BLOCK : SL_X8_Q4_K_BLOCK, sbsz = five ? 160 : 128;
    const uint8_t *pa = panel, *pb = pa + (size_t)nb * bsz;
    const A512_I m4 = A512_I_SET1_EPI8(0x0f), m10 = A512_I_SET1_EPI8(0x10);
    A512_F acc[4] = {A512_ZERO(), A512_ZERO(), A512_ZERO(), A512_ZERO()};
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ba = pa + (size_t)i * bsz, *bb = pb + (size_t)i * bsz;
        uint8_t sca[64], mna[64], scb[64], mnb[64];
        x8k_scales(ba, sca, mna);
        x8k_scales(bb, scb, mnb);
        A512_I sumi[4], summ[4];
        for (int t = 0; t < 4; t++) sumi[t] = summ[t] = A512_I_ZERO();
#pragma GCC unroll 1
        for (int j = 0; j < 8; j++) {
            A512_I c[8];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const A512_I nib = A512_I_LOAD2(ba + 128 + sbsz * j + 32 * k, bb + 128 + sbsz * j + 32 * k);
                c[k] = A512_I_AND(nib, m4);
                c[k + 4] = A512_I_AND(A512_I_SRLI16(nib, 4), m4);
            }
            if (five) {
                const A512_I hb = A512_I_LOAD2(ba + 128 + sbsz * j + 128, bb + 128 + sbsz * j + 128);
                /* bit g to bit 4 (x8_bits_to4): left by 4 − g, or right by g − 4 */
                c[0] = A512_I_OR(c[0], A512_I_AND(A512_I_SLLI16(hb, 4), m10));
                c[1] = A512_I_OR(c[1], A512_I_AND(A512_I_SLLI16(hb, 3), m10));
                c[2] = A512_I_OR(c[2], A512_I_AND(A512_I_SLLI16(hb, 2), m10));
                c[3] = A512_I_OR(c[3], A512_I_AND(A512_I_SLLI16(hb, 1), m10));
                c[4] = A512_I_OR(c[4], A512_I_AND(hb, m10));
                c[5] = A512_I_OR(c[5], A512_I_AND(A512_I_SRLI16(hb, 1), m10));
                c[6] = A512_I_OR(c[6], A512_I_AND(A512_I_SRLI16(hb, 2), m10));
                c[7] = A512_I_OR(c[7], A512_I_AND(A512_I_SRLI16(hb, 3), m10));
            }
            const A512_I scj = A512_I_FROM2(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sca + 8 * j))),
                                            _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(scb + 8 * j))));
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const int8_t *xq = x[t][i].qs + 32 * j;
                A512_I a = A512_I_ZERO(), b = a;
#pragma GCC unroll 4
                for (int g = 0; g < 8; g += 2) {
                    a = A512_DPBUSD(a, c[g], A512_I_BCAST4(x8_bytes4(xq + 4 * g)));
                    b = A512_DPBUSD(b, c[g + 1], A512_I_BCAST4(x8_bytes4(xq + 4 * g + 4)));
                }
                sumi[t] = A512_I_ADD(sumi[t], A512_I_MULLO(A512_I_ADD(a, b), scj));
            }
            const A512_I mnj = A512_I_FROM2(x8k_pairs(mna + 8 * j), x8k_pairs(mnb + 8 * j));
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                int32_t bs;
                memcpy(&bs, x[t][i].bsums + 2 * j, 4);
                summ[t] = A512_I_ADD(summ[t], A512_I_MADD16(mnj, A512_I_BCAST4((uint32_t)bs)));
            }
        }
        const A512_F d = A512_LOAD2_PH(ba, bb), dm = A512_LOAD2_PH(ba + 16, bb + 16);
        for (int t = 0; t < 4; t++) {
            acc[t] = A512_FMADD(A512_MUL(d, A512_SET1(x[t][i].d)), A512_CVT(sumi[t]), acc[t]);
            /* − dm · dx · Σ: the product negated exactly, then the same FMA */
            acc[t] = A512_FMADD(A512_MUL(dm, A512_SET1(-x[t][i].d)), A512_CVT(summ[t]), acc[t]);
        }
    }
    for (int t = 0; t < nc; t++) A512_STOREU(out + (size_t)t * os, acc[t]);
}
static void A512_NAME(x8_dot4x2_q4_K)(int64_t n, const void *panel, const void *vx, size_t xs, int nc, float *out,
                                      size_t os) {
    A512_NAME(k45_dot4x2)(false, n, panel, vx, xs, nc, out, os);
}
static void A512_NAME(x8_dot4x2_q5_K)(int64_t n, const void *panel, const void *vx, size_t xs, int nc, float *out,
                                      size_t os) {
    A512_NAME(k45_dot4x2)(true, n, panel, vx, xs, nc, out, os);
}

static void A512_NAME(x8_dot4x2_q6_K)(int64_t n, const void *panel, const void *vx, size_t xs, int nc, float *out,
                                      size_t os) {
    const sl_block_q8_K *x[4];
    x8k_tokens(vx, xs, nc, x);
    const int64_t nb = n / SL_QK_K;
    const uint8_t *pa = panel, *pb = pa + (size_t)nb * SL_X8_Q6_K_BLOCK;
    const A512_I m4 = A512_I_SET1_EPI8(0x0f), m30 = A512_I_SET1_EPI8(0x30);
    A512_F acc[4] = {A512_ZERO(), A512_ZERO(), A512_ZERO(), A512_ZERO()};
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ba = pa + (size_t)i * SL_X8_Q6_K_BLOCK, *bb = pb + (size_t)i * SL_X8_Q6_K_BLOCK;
        A512_I sum[4];
        for (int t = 0; t < 4; t++) sum[t] = A512_I_ZERO();
#pragma GCC unroll 1
        for (int j = 0; j < 8; j++) {
            /* int16 lanes 2r, 2r + 1: row r's scales 2j, 2j + 1 */
            const A512_I sc =
                A512_I_FROM2(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(ba + 16 + 16 * j))),
                             _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(bb + 16 + 16 * j))));
            const uint8_t *ca = ba + 144 + 192 * j, *cb = bb + 144 + 192 * j;
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const A512_I hb = A512_I_LOAD2(ca + 128 + 32 * h, cb + 128 + 32 * h);
                const A512_I sh = h ? A512_I_SRAI32(sc, 16) : A512_I_SRAI32(A512_I_SLLI32(sc, 16), 16);
                /* bits 2k, 2k + 1 of hb to bits 4, 5 (x8_bits_to4) */
                const A512_I hi[4] = {A512_I_AND(A512_I_SLLI16(hb, 4), m30), A512_I_AND(A512_I_SLLI16(hb, 2), m30),
                                      A512_I_AND(hb, m30), A512_I_AND(A512_I_SRLI16(hb, 2), m30)};
                A512_I c[4];
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    const A512_I nbv = A512_I_LOAD2(ca + 32 * k, cb + 32 * k);
                    c[k] = A512_I_OR(A512_I_AND(h ? A512_I_SRLI16(nbv, 4) : nbv, m4), hi[k]);
                }
#pragma GCC unroll 4
                for (int t = 0; t < 4; t++) {
                    const int8_t *xq = x[t][i].qs + 32 * j + 16 * h;
                    A512_I a = A512_DPBUSD(A512_I_ZERO(), c[0], A512_I_BCAST4(x8_bytes4(xq)));
                    A512_I b = A512_DPBUSD(A512_I_ZERO(), c[1], A512_I_BCAST4(x8_bytes4(xq + 4)));
                    a = A512_DPBUSD(a, c[2], A512_I_BCAST4(x8_bytes4(xq + 8)));
                    b = A512_DPBUSD(b, c[3], A512_I_BCAST4(x8_bytes4(xq + 12)));
                    sum[t] = A512_I_ADD(sum[t], A512_I_MULLO(A512_I_ADD(a, b), sh));
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                int32_t bs;
                memcpy(&bs, x[t][i].bsums + 2 * j, 4);
                sum[t] = A512_I_SUB(sum[t], A512_I_SLLI32(A512_I_MADD16(sc, A512_I_BCAST4((uint32_t)bs)), 5));
            }
        }
        const A512_F d = A512_LOAD2_PH(ba, bb);
        for (int t = 0; t < 4; t++)
            acc[t] = A512_FMADD(A512_MUL(d, A512_SET1(x[t][i].d)), A512_CVT(sum[t]), acc[t]);
    }
    for (int t = 0; t < nc; t++) A512_STOREU(out + (size_t)t * os, acc[t]);
}

static void A512_NAME(fill)(sl_kern_table_t *t) {
    t->dot[SL_TYPE_F32] = A512_NAME(dot_f32);
    t->dot[SL_TYPE_F16] = A512_NAME(dot_f16);
    t->dot[SL_TYPE_BF16] = A512_NAME(dot_bf16);
    t->dot[SL_TYPE_Q4_0] = A512_NAME(dot_q4_0);
    t->dot[SL_TYPE_Q5_0] = A512_NAME(dot_q5_0);
    t->dot[SL_TYPE_Q8_0] = A512_NAME(dot_q8_0);
    t->tile[SL_TYPE_F32] = A512_NAME(tile_f32);
    t->tile[SL_TYPE_F16] = A512_NAME(tile_f16);
    t->tile[SL_TYPE_BF16] = A512_NAME(tile_bf16);
    t->tile[SL_TYPE_Q4_0] = A512_NAME(tile_q4_0);
    t->tile[SL_TYPE_Q5_0] = A512_NAME(tile_q5_0);
    t->tile[SL_TYPE_Q8_0] = A512_NAME(tile_q8_0);
    /* Decode and small batches of these types in GGUF rows take the VNNI
     * dots and tiles above, not the AVX2 float-scale dots and panel GEMM
     * inherited from the AVX2 table. */
    const sl_type_t own[] = {SL_TYPE_Q4_0, SL_TYPE_Q5_0, SL_TYPE_Q8_0};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        t->dotf[own[i]] = NULL;
        t->gemm[own[i]] = NULL;
    }
    /* x8 panels (the model packs q8_0 / q5_0 / q4_0 at load) and 16+
     * token batches: VNNI versions of the AVX2 kernels */
    X8V_NAME(fill)(t);
    /* their many-token GEMMs 16 rows at a time in 512-bit vectors */
    t->x8_gemm[SL_TYPE_Q8_0] = A512_NAME(x8_gemm_q8_0);
    t->x8_gemm8[SL_TYPE_Q8_0] = A512_NAME(x8_gemm8_q8_0);
    /* q5_0 / q4_0 x8 panels: straight from the panels, 4 or 8 tokens a call,
     * in place of expanding each chunk for gemmu (a quarter of a 16-token
     * step went to that expansion) */
    t->x8_gemm[SL_TYPE_Q5_0] = t->x8_gemm8[SL_TYPE_Q5_0] = A512_NAME(x8_gemm_q5_0);
    t->x8_gemm[SL_TYPE_Q4_0] = t->x8_gemm8[SL_TYPE_Q4_0] = A512_NAME(x8_gemm_q4_0);
    t->x8_dot4x2[SL_TYPE_Q4_K] = A512_NAME(x8_dot4x2_q4_K);
    t->x8_dot4x2[SL_TYPE_Q5_K] = A512_NAME(x8_dot4x2_q5_K);
    t->x8_dot4x2[SL_TYPE_Q6_K] = A512_NAME(x8_dot4x2_q6_K);
    const sl_type_t u8[] = {SL_TYPE_Q4_0, SL_TYPE_Q4_1, SL_TYPE_Q5_0, SL_TYPE_Q5_1};
    for (size_t i = 0; i < sizeof u8 / sizeof u8[0]; i++)
        if (t->gemmu[u8[i]]) t->gemmu[u8[i]] = A512_NAME(gemmu_u8);
}
