/*
 * dot_neon.c — arm64 NEON kernels: f32 / f16 / bf16 weights, the
 * q8_0-dotted block types (q4_0, q5_0, q8_0, iq4_nl, iq4_xs: a table
 * lookup per 16 indices), q4_1 / q5_1 (q8_1) and the k-quants q2_K, q3_K,
 * q4_K, q5_K, q6_K, the grid i-quants (iq2_xxs .. iq1_m: codebook
 * entries and ±1 signs per 16 values, then the same s8 dots) and mxfp4;
 * dots, and tiles of one row × up to 4 tokens. Integer
 * products use SDOT (vdotq_s32) when the compiler targets the dot-product
 * extension, and widening multiplies (vmull_s8 + pairwise accumulate)
 * otherwise; both are exact in s32.
 *
 * On other architectures the file compiles to a fill function that reports
 * "not available".
 */
#include "kernels/kern_impl.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

#include "kernels/iq_grids.h"

static inline float f16(sl_f16_t h) {
    return sl_f16_to_f32(h);
}

/* sum over 16 s8 × s8 products, accumulated into 4 s32 lanes */
static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    int16x8_t hi = vmull_s8(vget_high_s8(a), vget_high_s8(b));
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

/* f32 / f16 / bf16 weights against f32 activations: 4 weights as floats */
static inline __attribute__((always_inline)) float32x4_t fw_load4(int kind, const void *w, int64_t i) {
    if (kind == SL_FW_F16) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)w + i)));
    if (kind == SL_FW_BF16) return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)w + i), 16));
    return vld1q_f32((const float *)w + i);
}
/* One weight row · NT tokens (xs[t]), each token its own two chains of 4
 * lanes, then the same reduction and tail: a token's sum is the same
 * whatever NT, so decode (NT 1) matches the token inside a batch tile. */
static inline __attribute__((always_inline)) void fw_rows(int kind, const int NT, int64_t n, const void *w,
                                                          const float *const xs[4], float out[4]) {
    float32x4_t a0[4], a1[4];
    for (int t = 0; t < NT; t++) a0[t] = a1[t] = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t w0 = fw_load4(kind, w, i), w1 = fw_load4(kind, w, i + 4);
        for (int t = 0; t < NT; t++) {
            a0[t] = vfmaq_f32(a0[t], w0, vld1q_f32(xs[t] + i));
            a1[t] = vfmaq_f32(a1[t], w1, vld1q_f32(xs[t] + i + 4));
        }
    }
    for (int t = 0; t < NT; t++) out[t] = vaddvq_f32(vaddq_f32(a0[t], a1[t]));
    for (; i < n; i++) {
        const float u = sl_fw_load1(kind, w, i);
        for (int t = 0; t < NT; t++) out[t] += u * xs[t][i];
    }
}
/* 32 bits → 32 bytes of 0x10 (bit set) or 0: lanes 0-15 in lo, 16-31 in hi */
static inline void bits_to_0x10(uint32_t qh, uint8x16_t *lo, uint8x16_t *hi) {
    static const uint8_t bitsel[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t sel = vld1q_u8(bitsel), b10 = vdupq_n_u8(0x10);
    uint8x16_t v0 = vcombine_u8(vdup_n_u8((uint8_t)qh), vdup_n_u8((uint8_t)(qh >> 8)));
    uint8x16_t v1 = vcombine_u8(vdup_n_u8((uint8_t)(qh >> 16)), vdup_n_u8((uint8_t)(qh >> 24)));
    *lo = vandq_u8(vtstq_u8(v0, sel), b10);
    *hi = vandq_u8(vtstq_u8(v1, sel), b10);
}

/* Block i of a q8_0-dotted 32-block row (q8_0, q4_0, q5_0, iq4_nl, iq4_xs) as
 * signed values: elements 0-15 in *lo, 16-31 in *hi; returns its scale. */
static inline __attribute__((always_inline)) float q0_block(sl_type_t t, const void *w, int64_t i, int8x16_t *lo,
                                                            int8x16_t *hi) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    if (t == SL_TYPE_Q8_0) {
        const sl_block_q8_0 *b = (const sl_block_q8_0 *)w + i;
        *lo = vld1q_s8(b->qs), *hi = vld1q_s8(b->qs + 16);
        return f16(b->d);
    }
    if (t == SL_TYPE_Q4_0) {
        const sl_block_q4_0 *b = (const sl_block_q4_0 *)w + i;
        const uint8x16_t v = vld1q_u8(b->qs);
        *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), vdupq_n_s8(8));
        *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vdupq_n_s8(8));
        return f16(b->d);
    }
    if (t == SL_TYPE_Q5_0) {
        const sl_block_q5_0 *b = (const sl_block_q5_0 *)w + i;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        uint8x16_t hl, hh;
        bits_to_0x10(qh, &hl, &hh);
        const uint8x16_t v = vld1q_u8(b->qs);
        *lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, m4), hl)), vdupq_n_s8(16));
        *hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), hh)), vdupq_n_s8(16));
        return f16(b->d);
    }
    /* iq4_nl, iq4_xs (32-block i of super-block i / 8, its own scale): the
     * codebook value of each index, one table lookup per 16 */
    const int8x16_t kv = vld1q_s8(sl_kvalues_iq4nl);
    const uint8_t *qs;
    float d;
    if (t == SL_TYPE_IQ4_XS) {
        const sl_block_iq4_xs *b = (const sl_block_iq4_xs *)w + i / 8;
        qs = b->qs + 16 * (i % 8), d = f16(b->d) * (float)sl_iq4xs_scale(b, (int)(i % 8));
    } else {
        const sl_block_iq4_nl *b = (const sl_block_iq4_nl *)w + i;
        qs = b->qs, d = f16(b->d);
    }
    const uint8x16_t v = vld1q_u8(qs);
    *lo = vqtbl1q_s8(kv, vandq_u8(v, m4));
    *hi = vqtbl1q_s8(kv, vshrq_n_u8(v, 4));
    return d;
}

/* One such row · NT q8_0 rows xs[t]: each block unpacked once, then per
 * token two dot16 and one multiply-add of the two scales — the same
 * operations in the same order whatever NT (decode = a batch's token). */
static inline __attribute__((always_inline)) void q0_rows(sl_type_t t, const int NT, int64_t n, const void *w,
                                                          const sl_block_q8_0 *const xs[4], float out[4]) {
    float32x4_t acc[4];
    for (int c = 0; c < NT; c++) acc[c] = vdupq_n_f32(0);
    for (int64_t i = 0; i < n / 32; i++) {
        int8x16_t lo, hi;
        const float d = q0_block(t, w, i, &lo, &hi);
        for (int c = 0; c < NT; c++) {
            int32x4_t p = dot16(vdupq_n_s32(0), lo, vld1q_s8(xs[c][i].qs));
            p = dot16(p, hi, vld1q_s8(xs[c][i].qs + 16));
            acc[c] = vmlaq_n_f32(acc[c], vcvtq_f32_s32(p), d * f16(xs[c][i].d));
        }
    }
    for (int c = 0; c < NT; c++) out[c] = vaddvq_f32(acc[c]);
}

/* ---- k-quants against q8_K ---- */

/* q4_K / q5_K: 4 chunks of 64 elements; low nibbles are elements 0-31 of a
 * chunk (scale 2j), high nibbles 32-63 (scale 2j+1). q5_K adds bit 2j / 2j+1
 * of qh[l] as bit 4. */
static inline __attribute__((always_inline)) void k4_rows(bool five, const int NT, int64_t n, const void *vw,
                                                          const sl_block_q8_K *const xs[4], float out[4]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f), b10 = vdupq_n_u8(0x10);
    const size_t bsize = five ? sizeof(sl_block_q5_K) : sizeof(sl_block_q4_K);
    for (int c = 0; c < NT; c++) out[c] = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *blk = (const uint8_t *)vw + (size_t)i * bsize;
        const uint8_t *scales, *qs, *qh = NULL;
        sl_f16_t d, dmin;
        if (five) {
            const sl_block_q5_K *b = (const sl_block_q5_K *)blk;
            scales = b->scales, qs = b->qs, qh = b->qh, d = b->d, dmin = b->dmin;
        } else {
            const sl_block_q4_K *b = (const sl_block_q4_K *)blk;
            scales = b->scales, qs = b->qs, d = b->d, dmin = b->dmin;
        }
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; j++) sl_k4_scale_min(j, scales, &sc[j], &mn[j]);
        int32_t summ[4], sumi[4];
        for (int c = 0; c < NT; c++) {
            summ[c] = sumi[c] = 0;
            for (int j = 0; j < 8; j++) summ[c] += mn[j] * (xs[c][i].bsums[2 * j] + xs[c][i].bsums[2 * j + 1]);
        }
        uint8x16_t h0 = vdupq_n_u8(0), h1 = h0;
        if (five) {
            h0 = vld1q_u8(qh);
            h1 = vld1q_u8(qh + 16);
        }
        for (int j = 0; j < 4; j++, qs += 32) {
            const uint8x16_t b0 = vld1q_u8(qs), b1 = vld1q_u8(qs + 16);
            uint8x16_t l0 = vandq_u8(b0, m4), l1 = vandq_u8(b1, m4);
            uint8x16_t u0 = vshrq_n_u8(b0, 4), u1 = vshrq_n_u8(b1, 4);
            if (five) {
                const uint8x16_t ml = vdupq_n_u8((uint8_t)(1u << (2 * j))), mh = vdupq_n_u8((uint8_t)(2u << (2 * j)));
                l0 = vorrq_u8(l0, vandq_u8(vtstq_u8(h0, ml), b10));
                l1 = vorrq_u8(l1, vandq_u8(vtstq_u8(h1, ml), b10));
                u0 = vorrq_u8(u0, vandq_u8(vtstq_u8(h0, mh), b10));
                u1 = vorrq_u8(u1, vandq_u8(vtstq_u8(h1, mh), b10));
            }
            for (int c = 0; c < NT; c++) {
                const int8_t *q8 = xs[c][i].qs + 64 * j;
                int32x4_t pl = vdupq_n_s32(0), ph = pl;
                pl = dot16(pl, vreinterpretq_s8_u8(l0), vld1q_s8(q8));
                pl = dot16(pl, vreinterpretq_s8_u8(l1), vld1q_s8(q8 + 16));
                ph = dot16(ph, vreinterpretq_s8_u8(u0), vld1q_s8(q8 + 32));
                ph = dot16(ph, vreinterpretq_s8_u8(u1), vld1q_s8(q8 + 48));
                sumi[c] += vaddvq_s32(pl) * sc[2 * j] + vaddvq_s32(ph) * sc[2 * j + 1];
            }
        }
        for (int c = 0; c < NT; c++)
            out[c] += xs[c][i].d * (f16(d) * (float)sumi[c] - f16(dmin) * (float)summ[c]);
    }
}

/* q6_K: two halves of 128; for l < 32 the four values of a half are
 * ql[l] & 15, ql[l+32] & 15, ql[l] >> 4, ql[l+32] >> 4, each with 2 bits of
 * qh[l] on top, minus 32; 16 int8 scales, one per 16 elements. */
static inline __attribute__((always_inline)) void q6k_rows(const int NT, int64_t n, const void *vw,
                                                           const sl_block_q8_K *const xs[4], float out[4]) {
    const sl_block_q6_K *w = vw;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);
    const int8x16_t s32 = vdupq_n_s8(32);
    for (int c = 0; c < NT; c++) out[c] = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *ql = w[i].ql, *qh = w[i].qh;
        int32_t sumi[4] = {0, 0, 0, 0};
        for (int j = 0; j < 2; j++, ql += 64, qh += 32) {
            for (int h = 0; h < 2; h++) {
                uint8x16_t a = vld1q_u8(ql + 16 * h), b = vld1q_u8(ql + 32 + 16 * h), hb = vld1q_u8(qh + 16 * h);
                uint8x16_t q[4];
                q[0] = vorrq_u8(vandq_u8(a, m4), vshlq_n_u8(vandq_u8(hb, m3), 4));
                q[1] = vorrq_u8(vandq_u8(b, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4));
                q[2] = vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4));
                q[3] = vorrq_u8(vshrq_n_u8(b, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
                for (int k = 0; k < 4; k++) {
                    const int8x16_t v = vsubq_s8(vreinterpretq_s8_u8(q[k]), s32);
                    const int sc = w[i].scales[8 * j + 2 * k + h];
                    for (int c = 0; c < NT; c++) {
                        const int32x4_t p = dot16(vdupq_n_s32(0), v, vld1q_s8(xs[c][i].qs + 128 * j + 32 * k + 16 * h));
                        sumi[c] += vaddvq_s32(p) * sc;
                    }
                }
            }
        }
        for (int c = 0; c < NT; c++) out[c] += xs[c][i].d * f16(w[i].d) * (float)sumi[c];
    }
}

/* q4_1 / q5_1 (five) against q8_1 rows: unsigned codes (q5_1: the fifth
 * bit from qh), a weight d · q + m; per token Σ q·x (two dot16) times d · dx
 * plus m · s, s = dx · Σ x of the q8_1 block. */
static inline __attribute__((always_inline)) void q1_rows(bool five, const int NT, int64_t n, const void *vw,
                                                          const sl_block_q8_1 *const xs[4], float out[4]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    const size_t bsize = five ? sizeof(sl_block_q5_1) : sizeof(sl_block_q4_1);
    float32x4_t acc[4];
    float mins[4];
    for (int c = 0; c < NT; c++) acc[c] = vdupq_n_f32(0), mins[c] = 0;
    for (int64_t i = 0; i < n / 32; i++) {
        const uint8_t *blk = (const uint8_t *)vw + (size_t)i * bsize;
        uint8x16_t lo, hi, v;
        float d, m;
        if (five) {
            const sl_block_q5_1 *b = (const sl_block_q5_1 *)blk;
            uint32_t qh;
            memcpy(&qh, b->qh, 4);
            uint8x16_t hl, hh;
            bits_to_0x10(qh, &hl, &hh);
            v = vld1q_u8(b->qs);
            lo = vorrq_u8(vandq_u8(v, m4), hl), hi = vorrq_u8(vshrq_n_u8(v, 4), hh);
            d = f16(b->d), m = f16(b->m);
        } else {
            const sl_block_q4_1 *b = (const sl_block_q4_1 *)blk;
            v = vld1q_u8(b->qs);
            lo = vandq_u8(v, m4), hi = vshrq_n_u8(v, 4);
            d = f16(b->d), m = f16(b->m);
        }
        for (int c = 0; c < NT; c++) {
            int32x4_t p = dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(lo), vld1q_s8(xs[c][i].qs));
            p = dot16(p, vreinterpretq_s8_u8(hi), vld1q_s8(xs[c][i].qs + 16));
            acc[c] = vmlaq_n_f32(acc[c], vcvtq_f32_s32(p), d * f16(xs[c][i].d));
            mins[c] += m * f16(xs[c][i].s);
        }
    }
    for (int c = 0; c < NT; c++) out[c] = vaddvq_f32(acc[c]) + mins[c];
}

/* q2_K / q3_K: per 128-element half, 32 code bytes hold 4 groups of 32
 * (2 bits each, shift 2k); 16 sub-blocks of 16, each with its scale. q2_K:
 * code · (scale & 15) − the min (scale >> 4) against the q8_K bsums; q3_K:
 * code − 4 where its hmask bit is clear, times the 6-bit signed scale.
 * Integer sums as the scalar reference, so the same floats come out. */
static inline __attribute__((always_inline)) void k23_rows(bool three, const int NT, int64_t n, const void *vw,
                                                           const sl_block_q8_K *const xs[4], float out[4]) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    const size_t bsize = three ? sizeof(sl_block_q3_K) : sizeof(sl_block_q2_K);
    for (int c = 0; c < NT; c++) out[c] = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *blk = (const uint8_t *)vw + (size_t)i * bsize;
        const uint8_t *qs;
        int8_t sc[16];
        uint8x16_t hm0 = vdupq_n_u8(0), hm1 = hm0;
        int32_t sumi[4] = {0, 0, 0, 0}, summ[4] = {0, 0, 0, 0};
        float d, dmin = 0;
        if (three) {
            const sl_block_q3_K *b = (const sl_block_q3_K *)blk;
            sl_q3k_scales(b->scales, sc);
            qs = b->qs, d = f16(b->d);
            hm0 = vld1q_u8(b->hmask), hm1 = vld1q_u8(b->hmask + 16);
        } else {
            const sl_block_q2_K *b = (const sl_block_q2_K *)blk;
            for (int g = 0; g < 16; g++) sc[g] = (int8_t)(b->scales[g] & 0xf);
            for (int c = 0; c < NT; c++)
                for (int g = 0; g < 16; g++) summ[c] += (b->scales[g] >> 4) * xs[c][i].bsums[g];
            qs = b->qs, d = f16(b->d), dmin = f16(b->dmin);
        }
        for (int hf = 0; hf < 2; hf++, qs += 32) {
            const uint8x16_t b0 = vld1q_u8(qs), b1 = vld1q_u8(qs + 16);
            for (int k = 0; k < 4; k++) {
                const int sh = 2 * k, g = 8 * hf + 2 * k;
                uint8x16_t v0 = vandq_u8(vshlq_u8(b0, vdupq_n_s8((int8_t)-sh)), m3);
                uint8x16_t v1 = vandq_u8(vshlq_u8(b1, vdupq_n_s8((int8_t)-sh)), m3);
                if (three) {
                    const uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << (4 * hf + k))), four = vdupq_n_u8(4);
                    v0 = vsubq_u8(v0, vbicq_u8(four, vtstq_u8(hm0, bit)));
                    v1 = vsubq_u8(v1, vbicq_u8(four, vtstq_u8(hm1, bit)));
                }
                for (int c = 0; c < NT; c++) {
                    const int8_t *q8 = xs[c][i].qs + 128 * hf + 32 * k;
                    const int32x4_t p0 = dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(v0), vld1q_s8(q8));
                    const int32x4_t p1 = dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(v1), vld1q_s8(q8 + 16));
                    sumi[c] += vaddvq_s32(p0) * sc[g] + vaddvq_s32(p1) * sc[g + 1];
                }
            }
        }
        for (int c = 0; c < NT; c++)
            out[c] += three ? xs[c][i].d * d * (float)sumi[c]
                            : xs[c][i].d * (d * (float)sumi[c] - dmin * (float)summ[c]);
    }
}

/* Grid i-quants: step k (elements 32k..32k+31) of a super-block as two
 * vectors of 16 signed values — codebook magnitudes times ±1 signs (the
 * 7-bit codes through sl_ksigns_pm1, plain sign bytes by vtst), iq1's 8 ·
 * grid ± 1 — dotted with the q8_K bytes and scaled per 16 by the
 * multiplier (sums < 2^26 in s32); D · d_x once per super-block. */
static inline int8x16_t iq_u64x2(uint64_t lo, uint64_t hi) {
    return vreinterpretq_s8_u64(vcombine_u64(vcreate_u64(lo), vcreate_u64(hi)));
}
static inline int8x16_t iq_u32x4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    const uint32_t v[4] = {a, b, c, d};
    return vreinterpretq_s8_u32(vld1q_u32(v));
}
static inline int8x16_t iq_pm1_bytes(uint8_t s0, uint8_t s1) { /* bit j of s0 / s1: −1, else +1 */
    static const uint8_t bitsel[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t m = vtstq_u8(vcombine_u8(vdup_n_u8(s0), vdup_n_u8(s1)), vld1q_u8(bitsel));
    return vreinterpretq_s8_u8(vorrq_u8(m, vdupq_n_u8(1)));
}
static inline int8x16_t iq1_v(int8x16_t g, int8_t d0, int8_t d1) {
    return vaddq_s8(vshlq_n_s8(g, 3), vcombine_s8(vdup_n_s8(d0), vdup_n_s8(d1)));
}
static inline __attribute__((always_inline)) void iq_vals(sl_type_t t, const uint8_t *b, int k, int8x16_t v[2]) {
    const uint64_t *ks = sl_ksigns_pm1;
    switch (t) {
    case SL_TYPE_IQ2_XXS: {
        const uint8_t *q = b + 2 + 8 * k;
        uint32_t a;
        memcpy(&a, q + 4, 4);
        const uint64_t *g = sl_iq2xxs_grid;
        v[0] = vmulq_s8(iq_u64x2(g[q[0]], g[q[1]]), iq_u64x2(ks[a & 127], ks[(a >> 7) & 127]));
        v[1] = vmulq_s8(iq_u64x2(g[q[2]], g[q[3]]), iq_u64x2(ks[(a >> 14) & 127], ks[(a >> 21) & 127]));
        break;
    }
    case SL_TYPE_IQ2_XS: {
        const uint16_t *q = ((const sl_block_iq2_xs *)b)->qs + 4 * k;
        const uint64_t *g = sl_iq2xs_grid;
        v[0] = vmulq_s8(iq_u64x2(g[q[0] & 511], g[q[1] & 511]), iq_u64x2(ks[q[0] >> 9], ks[q[1] >> 9]));
        v[1] = vmulq_s8(iq_u64x2(g[q[2] & 511], g[q[3] & 511]), iq_u64x2(ks[q[2] >> 9], ks[q[3] >> 9]));
        break;
    }
    case SL_TYPE_IQ2_S: {
        const sl_block_iq2_s *x = (const sl_block_iq2_s *)b;
        const uint8_t *q = x->qs + 4 * k, *s = x->qs + 32 + 4 * k;
        const int h = x->qh[k];
        const uint64_t *g = sl_iq2s_grid;
        v[0] = vmulq_s8(iq_u64x2(g[q[0] | (h & 3) << 8], g[q[1] | (h & 12) << 6]), iq_pm1_bytes(s[0], s[1]));
        v[1] = vmulq_s8(iq_u64x2(g[q[2] | (h & 48) << 4], g[q[3] | (h & 192) << 2]), iq_pm1_bytes(s[2], s[3]));
        break;
    }
    case SL_TYPE_IQ3_XXS: {
        const sl_block_iq3_xxs *x = (const sl_block_iq3_xxs *)b;
        const uint8_t *q = x->qs + 8 * k;
        uint32_t a;
        memcpy(&a, x->qs + 64 + 4 * k, 4);
        const uint32_t *g = sl_iq3xxs_grid;
        v[0] = vmulq_s8(iq_u32x4(g[q[0]], g[q[1]], g[q[2]], g[q[3]]), iq_u64x2(ks[a & 127], ks[(a >> 7) & 127]));
        v[1] = vmulq_s8(iq_u32x4(g[q[4]], g[q[5]], g[q[6]], g[q[7]]), iq_u64x2(ks[(a >> 14) & 127], ks[(a >> 21) & 127]));
        break;
    }
    case SL_TYPE_IQ3_S: {
        const sl_block_iq3_s *x = (const sl_block_iq3_s *)b;
        const uint8_t *q = x->qs + 8 * k, *s = x->signs + 4 * k;
        const int h = x->qh[k];
        const uint32_t *g = sl_iq3s_grid;
#define IQ3S_E(e) g[q[e] | ((h >> (e)) & 1) << 8]
        v[0] = vmulq_s8(iq_u32x4(IQ3S_E(0), IQ3S_E(1), IQ3S_E(2), IQ3S_E(3)), iq_pm1_bytes(s[0], s[1]));
        v[1] = vmulq_s8(iq_u32x4(IQ3S_E(4), IQ3S_E(5), IQ3S_E(6), IQ3S_E(7)), iq_pm1_bytes(s[2], s[3]));
#undef IQ3S_E
        break;
    }
    case SL_TYPE_IQ1_S: {
        const sl_block_iq1_s *x = (const sl_block_iq1_s *)b;
        const uint8_t *q = x->qs + 4 * k;
        const int h = x->qh[k];
        const int8_t d = h & 0x8000 ? -1 : 1;
        const uint64_t *g = sl_iq1s_grid;
        v[0] = iq1_v(iq_u64x2(g[q[0] | (h & 7) << 8], g[q[1] | (h & 0x38) << 5]), d, d);
        v[1] = iq1_v(iq_u64x2(g[q[2] | (h & 0x1c0) << 2], g[q[3] | (h & 0xe00) >> 1]), d, d);
        break;
    }
    default: { /* SL_TYPE_IQ1_M */
        const sl_block_iq1_m *x = (const sl_block_iq1_m *)b;
        const uint8_t *q = x->qs + 4 * k;
        const int h0 = x->qh[2 * k], h1 = x->qh[2 * k + 1];
        const uint64_t *g = sl_iq1s_grid;
        v[0] = iq1_v(iq_u64x2(g[q[0] | (h0 & 7) << 8], g[q[1] | (h0 & 0x70) << 4]), h0 & 8 ? -1 : 1, h0 & 0x80 ? -1 : 1);
        v[1] = iq1_v(iq_u64x2(g[q[2] | (h1 & 7) << 8], g[q[3] | (h1 & 0x70) << 4]), h1 & 8 ? -1 : 1, h1 & 0x80 ? -1 : 1);
        break;
    }
    }
}
static inline __attribute__((always_inline)) void iq_rows(sl_type_t t, const int NT, int64_t n, const void *vw,
                                                          const sl_block_q8_K *const xs[4], float out[4]) {
    const size_t bs = sl_type_traits(t)->type_size;
    for (int c = 0; c < NT; c++) out[c] = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *b = (const uint8_t *)vw + (size_t)i * bs;
        int16_t sc[16];
        const float d = sl_iq_mults(t, b, sc);
        int32x4_t s[4];
        for (int c = 0; c < NT; c++) s[c] = vdupq_n_s32(0);
        for (int k = 0; k < 8; k++) {
            int8x16_t v[2];
            iq_vals(t, b, k, v);
            for (int c = 0; c < NT; c++) {
                const int8_t *xq = xs[c][i].qs + 32 * k;
                s[c] = vmlaq_n_s32(s[c], dot16(vdupq_n_s32(0), v[0], vld1q_s8(xq)), sc[2 * k]);
                s[c] = vmlaq_n_s32(s[c], dot16(vdupq_n_s32(0), v[1], vld1q_s8(xq + 16)), sc[2 * k + 1]);
            }
        }
        for (int c = 0; c < NT; c++) out[c] += d * xs[c][i].d * (float)vaddvq_s32(s[c]);
    }
}

/* mxfp4 (q8_0 blocks): the doubled E2M1 codebook by table lookup, as
 * iq4_nl, and the block scale 2^(e − 128). */
static inline __attribute__((always_inline)) void mxfp4_rows(const int NT, int64_t n, const void *vw,
                                                             const sl_block_q8_0 *const xs[4], float out[4]) {
    const sl_block_mxfp4 *w = vw;
    const int8x16_t kv = vld1q_s8(sl_kvalues_mxfp4);
    for (int c = 0; c < NT; c++) out[c] = 0;
    for (int64_t i = 0; i < n / 32; i++) {
        const uint8x16_t q = vld1q_u8(w[i].qs);
        const int8x16_t lo = vqtbl1q_s8(kv, vandq_u8(q, vdupq_n_u8(0x0f))), hi = vqtbl1q_s8(kv, vshrq_n_u8(q, 4));
        const float d = sl_e8m0_half(w[i].e);
        for (int c = 0; c < NT; c++) {
            const int32x4_t s = dot16(dot16(vdupq_n_s32(0), lo, vld1q_s8(xs[c][i].qs)), hi, vld1q_s8(xs[c][i].qs + 16));
            out[c] += d * f16(xs[c][i].d) * (float)vaddvq_s32(s);
        }
    }
}

/* Dots (NT 1) and tiles (a row at a time × nc <= 4 tokens, xstride bytes
 * apart) from the same row functions. KIND: an sl_type_t. */
static inline __attribute__((always_inline)) void rows_of(int kind, const int NT, int64_t n, const void *w,
                                                          const void *const xs[4], float out[4]) {
    switch (kind) {
    case SL_TYPE_F32: fw_rows(SL_FW_F32, NT, n, w, (const float *const *)xs, out); break;
    case SL_TYPE_F16: fw_rows(SL_FW_F16, NT, n, w, (const float *const *)xs, out); break;
    case SL_TYPE_BF16: fw_rows(SL_FW_BF16, NT, n, w, (const float *const *)xs, out); break;
    case SL_TYPE_Q4_K: k4_rows(false, NT, n, w, (const sl_block_q8_K *const *)xs, out); break;
    case SL_TYPE_Q5_K: k4_rows(true, NT, n, w, (const sl_block_q8_K *const *)xs, out); break;
    case SL_TYPE_Q6_K: q6k_rows(NT, n, w, (const sl_block_q8_K *const *)xs, out); break;
    case SL_TYPE_Q4_1: q1_rows(false, NT, n, w, (const sl_block_q8_1 *const *)xs, out); break;
    case SL_TYPE_Q5_1: q1_rows(true, NT, n, w, (const sl_block_q8_1 *const *)xs, out); break;
    case SL_TYPE_Q2_K: k23_rows(false, NT, n, w, (const sl_block_q8_K *const *)xs, out); break;
    case SL_TYPE_Q3_K: k23_rows(true, NT, n, w, (const sl_block_q8_K *const *)xs, out); break;
    case SL_TYPE_IQ2_XXS:
    case SL_TYPE_IQ2_XS:
    case SL_TYPE_IQ2_S:
    case SL_TYPE_IQ3_XXS:
    case SL_TYPE_IQ3_S:
    case SL_TYPE_IQ1_S:
    case SL_TYPE_IQ1_M: iq_rows((sl_type_t)kind, NT, n, w, (const sl_block_q8_K *const *)xs, out); break;
    case SL_TYPE_MXFP4: mxfp4_rows(NT, n, w, (const sl_block_q8_0 *const *)xs, out); break;
    default: q0_rows((sl_type_t)kind, NT, n, w, (const sl_block_q8_0 *const *)xs, out); break;
    }
}
static inline __attribute__((always_inline)) void tile_of(int kind, int64_t n, const void *w, size_t ws, int nr,
                                                          const void *x, size_t xs, int nc, float *out, size_t os) {
    const void *xr[4];
    for (int c = 0; c < 4; c++) xr[c] = (const uint8_t *)x + (size_t)(c < nc ? c : 0) * xs;
    for (int r = 0; r < nr; r++) {
        const void *wr = (const uint8_t *)w + (size_t)r * ws;
        float s[4];
        if (nc >= 4)
            rows_of(kind, 4, n, wr, xr, s);
        else if (nc == 3)
            rows_of(kind, 3, n, wr, xr, s);
        else if (nc == 2)
            rows_of(kind, 2, n, wr, xr, s);
        else
            rows_of(kind, 1, n, wr, xr, s);
        for (int c = 0; c < nc; c++) out[(size_t)c * os + (size_t)r] = s[c];
    }
}
#define DEF_DOT_TILE(T, name)                                                                                  \
    static float dot_##name(int64_t n, const void *w, const void *x) {                                        \
        const void *const xs[4] = {x, x, x, x};                                                               \
        float r[4];                                                                                           \
        rows_of(T, 1, n, w, xs, r);                                                                           \
        return r[0];                                                                                          \
    }                                                                                                         \
    static void tile_##name(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, int nc,    \
                            float *out, size_t os) {                                                          \
        tile_of(T, n, w, ws, nr, x, xs, nc, out, os);                                                         \
    }
DEF_DOT_TILE(SL_TYPE_F32, f32)
DEF_DOT_TILE(SL_TYPE_F16, f16)
DEF_DOT_TILE(SL_TYPE_BF16, bf16)
DEF_DOT_TILE(SL_TYPE_Q8_0, q8_0)
DEF_DOT_TILE(SL_TYPE_Q4_0, q4_0)
DEF_DOT_TILE(SL_TYPE_Q5_0, q5_0)
DEF_DOT_TILE(SL_TYPE_IQ4_NL, iq4_nl)
DEF_DOT_TILE(SL_TYPE_IQ4_XS, iq4_xs)
DEF_DOT_TILE(SL_TYPE_Q4_K, q4_K)
DEF_DOT_TILE(SL_TYPE_Q5_K, q5_K)
DEF_DOT_TILE(SL_TYPE_Q6_K, q6_K)
DEF_DOT_TILE(SL_TYPE_Q2_K, q2_K)
DEF_DOT_TILE(SL_TYPE_Q4_1, q4_1)
DEF_DOT_TILE(SL_TYPE_Q5_1, q5_1)
DEF_DOT_TILE(SL_TYPE_Q3_K, q3_K)
DEF_DOT_TILE(SL_TYPE_IQ2_XXS, iq2_xxs)
DEF_DOT_TILE(SL_TYPE_IQ2_XS, iq2_xs)
DEF_DOT_TILE(SL_TYPE_IQ2_S, iq2_s)
DEF_DOT_TILE(SL_TYPE_IQ3_XXS, iq3_xxs)
DEF_DOT_TILE(SL_TYPE_IQ3_S, iq3_s)
DEF_DOT_TILE(SL_TYPE_IQ1_S, iq1_s)
DEF_DOT_TILE(SL_TYPE_IQ1_M, iq1_m)
DEF_DOT_TILE(SL_TYPE_MXFP4, mxfp4)
#undef DEF_DOT_TILE

bool sl_kern_fill_neon(sl_kern_table_t *t) {
    t->dot[SL_TYPE_F32] = dot_f32;
    t->dot[SL_TYPE_F16] = dot_f16;
    t->dot[SL_TYPE_BF16] = dot_bf16;
    t->dot[SL_TYPE_IQ4_NL] = dot_iq4_nl;
    t->dot[SL_TYPE_IQ4_XS] = dot_iq4_xs;
    t->dot[SL_TYPE_Q4_0] = dot_q4_0;
    t->dot[SL_TYPE_Q8_0] = dot_q8_0;
    t->dot[SL_TYPE_Q5_0] = dot_q5_0;
    t->dot[SL_TYPE_Q4_K] = dot_q4_K;
    t->dot[SL_TYPE_Q5_K] = dot_q5_K;
    t->dot[SL_TYPE_Q6_K] = dot_q6_K;
    /* many tokens: each weight block unpacked once for up to 4 tokens */
    t->tile[SL_TYPE_F32] = tile_f32;
    t->tile[SL_TYPE_F16] = tile_f16;
    t->tile[SL_TYPE_BF16] = tile_bf16;
    t->tile[SL_TYPE_Q8_0] = tile_q8_0;
    t->tile[SL_TYPE_Q4_0] = tile_q4_0;
    t->tile[SL_TYPE_Q5_0] = tile_q5_0;
    t->tile[SL_TYPE_IQ4_NL] = tile_iq4_nl;
    t->tile[SL_TYPE_IQ4_XS] = tile_iq4_xs;
    t->tile[SL_TYPE_Q4_K] = tile_q4_K;
    t->tile[SL_TYPE_Q5_K] = tile_q5_K;
    t->tile[SL_TYPE_Q6_K] = tile_q6_K;
    t->dot[SL_TYPE_Q4_1] = dot_q4_1;
    t->dot[SL_TYPE_Q5_1] = dot_q5_1;
    t->tile[SL_TYPE_Q4_1] = tile_q4_1;
    t->tile[SL_TYPE_Q5_1] = tile_q5_1;
    t->dot[SL_TYPE_Q2_K] = dot_q2_K;
    t->dot[SL_TYPE_Q3_K] = dot_q3_K;
    t->tile[SL_TYPE_Q2_K] = tile_q2_K;
    t->tile[SL_TYPE_Q3_K] = tile_q3_K;
#define FILL_NEON(T, name) t->dot[T] = dot_##name, t->tile[T] = tile_##name
    FILL_NEON(SL_TYPE_IQ2_XXS, iq2_xxs);
    FILL_NEON(SL_TYPE_IQ2_XS, iq2_xs);
    FILL_NEON(SL_TYPE_IQ2_S, iq2_s);
    FILL_NEON(SL_TYPE_IQ3_XXS, iq3_xxs);
    FILL_NEON(SL_TYPE_IQ3_S, iq3_s);
    FILL_NEON(SL_TYPE_IQ1_S, iq1_s);
    FILL_NEON(SL_TYPE_IQ1_M, iq1_m);
    FILL_NEON(SL_TYPE_MXFP4, mxfp4);
#undef FILL_NEON
    return true;
}

#else
bool sl_kern_fill_neon(sl_kern_table_t *t) {
    (void)t;
    return false;
}
#endif
