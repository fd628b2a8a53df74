/*
 * x8_simd.h — AVX2 helpers shared by the x8-panel kernels of
 * avx2/dot_avx2.c and x8_vnni.h (included by the AVX2 and AVX-512 files,
 * which are both compiled with AVX2 enabled): an f16 scale as a float, the
 * sum of 8 lanes, reading 4 activation bytes as one 32-bit lane value, and
 * expanding a q5_0 / q4_0 x8 block into its 8
 * vectors of unsigned codes. Layouts: kern_impl.h.
 */
#ifndef SL_KERNELS_X8_SIMD_H
#define SL_KERNELS_X8_SIMD_H

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kern_impl.h"

/* one f16 as a float (F16C) */
static inline float f16(sl_f16_t h) {
    return _cvtsh_ss(h);
}

/* the sum of the 8 lanes */
static inline float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* the next step of a prefetch range (kern_impl.h: sl_pf_t), into L2 */
static inline void x8_pf(sl_pf_t *pf) {
    if (!pf) return;
    const uint8_t *p = pf->p, *e = p + pf->step < pf->end ? p + pf->step : pf->end;
    for (; p < e; p += 64) _mm_prefetch((const char *)p, _MM_HINT_T1);
    pf->p = p;
}

/* 4 consecutive activation bytes as one int32 (for a broadcast to all 8
 * lanes, one lane per row of the panel) */
static inline int32_t x8_bytes4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The 8-row results of a panel for nc (<= 4) tokens: acc[c] → out[c * os
 * + 0..k-1] (k < 8 for a padded last panel: only its real rows). */
static inline void x8_store_rows(float *out, size_t os, int k, const __m256 acc[4], int nc) {
    for (int c = 0; c < nc; c++) {
        float *o = out + (size_t)c * os;
        if (k == 8) {
            _mm256_storeu_ps(o, acc[c]);
        } else {
            float tmp[8];
            _mm256_storeu_ps(tmp, acc[c]);
            memcpy(o, tmp, sizeof(float) * (size_t)k);
        }
    }
}

/* 4 nibble vectors (groups k low, k + 4 high in vector k: q4_0, q4_K) →
 * the 8 groups of 32 codes (0..15). */
static inline __attribute__((always_inline)) void x8_nibbles(const uint8_t *v, __m256i c[8]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        const __m256i nib = _mm256_loadu_si256((const __m256i *)(v + 32 * k));
        c[k] = _mm256_and_si256(nib, m4);
        c[k + 4] = _mm256_and_si256(_mm256_srli_epi16(nib, 4), m4);
    }
}

/* q5_0 (five) / q4_0 x8 block → its 8 groups of 32 codes, c[g] (0..31 or
 * 0..15). Layouts: kern_impl.h. q5_0's group k + 4 takes bits 0-2 from
 * bits 5-7 of vector k and bits 3-4 from bits 2k, 2k + 1 of the high-bit
 * vector; the 16-bit shifts move no bit into a byte's kept bits across the
 * byte boundary. */
static inline __attribute__((always_inline)) void x8_q4_block(bool five, const uint8_t *blk,
                                                              __m256i c[8]) {
    const uint8_t *v = blk + (five ? 48 : 16);
    if (five) {
        const __m256i m5 = _mm256_set1_epi8(0x1f), m3 = _mm256_set1_epi8(0x07), m18 = _mm256_set1_epi8(0x18);
        const __m256i hb = _mm256_loadu_si256((const __m256i *)(blk + 16));
        const __m256i h[4] = {_mm256_slli_epi16(hb, 3), _mm256_slli_epi16(hb, 1), _mm256_srli_epi16(hb, 1),
                              _mm256_srli_epi16(hb, 3)};
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)(v + 32 * k));
            c[k] = _mm256_and_si256(b, m5);
            c[k + 4] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 5), m3), _mm256_and_si256(h[k], m18));
        }
        return;
    }
    x8_nibbles(v, c);
}

/* Decode over q5_0 / q4_0 (five = false) x8 panels, or q5_1 / q4_1
 * (mins), around an ISA's integer dot of one block — idot(c, xq): the 8
 * code vectors against the token's 32 bytes, the 8 rows' sums as s32. The
 * −16 / −8 offset (or the mins m) comes off once per block as d · (dx ·
 * Σx) (m · (dx · Σx)). idot must be a static inline function (it is
 * inlined here). */
typedef __m256i (*x8_idot_fn)(const __m256i c[8], const int8_t *xq);
static inline __attribute__((always_inline)) void x8_dot_q4_with(bool five, bool mins, int64_t n,
                                                                 const void *panel,
                                                                 const sl_q8f_t *x, float *out,
                                                                 x8_idot_fn idot) {
    const int64_t nb = n / 32;
    const size_t bsz = (five ? SL_X8_Q5_0_BLOCK : SL_X8_Q4_0_BLOCK) + (mins ? 16 : 0);
    __m256 acc = _mm256_setzero_ps(), cor = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = (const uint8_t *)panel + (size_t)b * bsz;
        __m256i c[8];
        x8_q4_block(five, blk + (mins ? 16 : 0), c);
        const __m256i i = idot(c, x[b].qs);
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[b].d)), _mm256_cvtepi32_ps(i), acc);
        /* the offset's per-row factor: m, or d (times −16 / −8 below) */
        const __m256 o = mins ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16))) : d;
        cor = _mm256_fmadd_ps(o, _mm256_set1_ps(x[b].s), cor);
    }
    _mm256_storeu_ps(out, mins ? _mm256_add_ps(acc, cor)
                               : _mm256_fnmadd_ps(_mm256_set1_ps(five ? 16.0f : 8.0f), cor, acc));
}


/* ---- x8 k-quant helpers (AVX2 and the VNNI kernels) ---- */

/* The 4 q8_K rows of a many-token k-quant call (x8_dot4): nc (<= 4) rows
 * xs bytes apart, a short group padded with its last row. */
static inline void x8k_tokens(const void *vx, size_t xs, int nc, const sl_block_q8_K *x[4]) {
    for (int t = 0; t < 4; t++) x[t] = (const void *)((const uint8_t *)vx + (size_t)SL_MIN(t, nc - 1) * xs);
}

/* lane r = (b8[r], b8[r]) as two int16 */
static inline __m256i x8k_pairs(const uint8_t *b8) {
    const __m256i pick = _mm256_setr_epi8(0, -1, 0, -1, 1, -1, 1, -1, 2, -1, 2, -1, 3, -1, 3, -1, 4, -1, 4, -1, 5, -1,
                                          5, -1, 6, -1, 6, -1, 7, -1, 7, -1);
    uint64_t v;
    memcpy(&v, b8, 8);
    return _mm256_shuffle_epi8(_mm256_set1_epi64x((long long)v), pick);
}

/* The 8 rows' 6-bit scales and mins of an x8 q4_K super-block, byte 8j + r. */
static inline void x8k_scales(const uint8_t *blk, uint8_t sc[64], uint8_t mn[64]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk + 32));
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk + 64));
    const __m256i hb = _mm256_loadu_si256((const __m256i *)(blk + 96));
    _mm256_storeu_si256((__m256i *)sc,
                        _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30)));
    _mm256_storeu_si256((__m256i *)(sc + 32), _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(hb, m30)));
    _mm256_storeu_si256((__m256i *)mn, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                                       _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30)));
    _mm256_storeu_si256((__m256i *)(mn + 32), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                                              _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30)));
}

/* The bits of each byte of hb from bit pos on moved to bit 4 and kept
 * where mask is set (0x10: one bit, 0x30: two): a 16-bit shift left by
 * 4 − pos or right by pos − 4, the bits crossing a byte boundary never
 * landing in the mask. pos is a constant once the callers' loops unroll. */
static inline __attribute__((always_inline)) __m256i x8_bits_to4(__m256i hb, int pos, uint8_t mask) {
    const __m256i b = pos < 4 ? _mm256_slli_epi16(hb, 4 - pos) : _mm256_srli_epi16(hb, pos - 4);
    return _mm256_and_si256(b, _mm256_set1_epi8((char)mask));
}

/* The fifth bits of an x8 q5_K sub-block (its vector after the nibbles)
 * ORed into the 8 code vectors as bit 4. */
static inline __attribute__((always_inline)) void x8k_fifth(const uint8_t *hb, __m256i c[8]) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)hb);
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++) c[g] = _mm256_or_si256(c[g], x8_bits_to4(h, g, 0x10));
}


#endif
