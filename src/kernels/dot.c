/*
 * dot.c — scalar reference dot products: each weight type against its
 * vec_dot_type (q8_0 for q4_0/q5_0/q8_0, q8_1 for q4_1/q5_1, q8_K for the
 * k-quants and the grid i-quants, f32 for f32/f16/bf16).
 *
 * The integer parts are summed exactly in int32 and scaled once per block,
 * the way the SIMD kernels do it, so SIMD and scalar results differ only by
 * float rounding of the per-block scaling.
 */
#include <string.h>

#include "kernels/kern_impl.h"

static float dot_f32(int64_t n, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)w[i] * x[i];
    return (float)s;
}

static float dot_f16(int64_t n, const void *vw, const void *vx) {
    const sl_f16_t *w = vw;
    const float *x = vx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)sl_f16_to_f32(w[i]) * x[i];
    return (float)s;
}

static float dot_bf16(int64_t n, const void *vw, const void *vx) {
    const sl_bf16_t *w = vw;
    const float *x = vx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)sl_bf16_to_f32(w[i]) * x[i];
    return (float)s;
}

static float dot_q4_0(int64_t n, const void *vw, const void *vx) {
    const sl_block_q4_0 *w = vw;
    const sl_block_q8_0 *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / 32; i++) {
        int sum = 0;
        for (int j = 0; j < 16; j++)
            sum += ((w[i].qs[j] & 0xf) - 8) * x[i].qs[j] + ((w[i].qs[j] >> 4) - 8) * x[i].qs[j + 16];
        s += sl_f16_to_f32(w[i].d) * sl_f16_to_f32(x[i].d) * (float)sum;
    }
    return s;
}

static float dot_q4_1(int64_t n, const void *vw, const void *vx) {
    const sl_block_q4_1 *w = vw;
    const sl_block_q8_1 *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / 32; i++) {
        int sum = 0;
        for (int j = 0; j < 16; j++)
            sum += (w[i].qs[j] & 0xf) * x[i].qs[j] + (w[i].qs[j] >> 4) * x[i].qs[j + 16];
        s += sl_f16_to_f32(w[i].d) * sl_f16_to_f32(x[i].d) * (float)sum +
             sl_f16_to_f32(w[i].m) * sl_f16_to_f32(x[i].s);
    }
    return s;
}

static float dot_q5_0(int64_t n, const void *vw, const void *vx) {
    const sl_block_q5_0 *w = vw;
    const sl_block_q8_0 *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / 32; i++) {
        uint32_t qh;
        memcpy(&qh, w[i].qh, 4);
        int sum = 0;
        for (int j = 0; j < 16; j++) {
            int a = ((w[i].qs[j] & 0xf) | (int)(((qh >> j) & 1) << 4)) - 16;
            int b = ((w[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16;
            sum += a * x[i].qs[j] + b * x[i].qs[j + 16];
        }
        s += sl_f16_to_f32(w[i].d) * sl_f16_to_f32(x[i].d) * (float)sum;
    }
    return s;
}

static float dot_q5_1(int64_t n, const void *vw, const void *vx) {
    const sl_block_q5_1 *w = vw;
    const sl_block_q8_1 *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / 32; i++) {
        uint32_t qh;
        memcpy(&qh, w[i].qh, 4);
        int sum = 0;
        for (int j = 0; j < 16; j++) {
            int a = (w[i].qs[j] & 0xf) | (int)(((qh >> j) & 1) << 4);
            int b = (w[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            sum += a * x[i].qs[j] + b * x[i].qs[j + 16];
        }
        s += sl_f16_to_f32(w[i].d) * sl_f16_to_f32(x[i].d) * (float)sum +
             sl_f16_to_f32(w[i].m) * sl_f16_to_f32(x[i].s);
    }
    return s;
}

static float dot_q8_0(int64_t n, const void *vw, const void *vx) {
    const sl_block_q8_0 *w = vw;
    const sl_block_q8_0 *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / 32; i++) {
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += w[i].qs[j] * x[i].qs[j];
        s += sl_f16_to_f32(w[i].d) * sl_f16_to_f32(x[i].d) * (float)sum;
    }
    return s;
}

static float dot_q8_1(int64_t n, const void *vw, const void *vx) {
    const sl_block_q8_1 *w = vw;
    const sl_block_q8_1 *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / 32; i++) {
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += w[i].qs[j] * x[i].qs[j];
        s += sl_f16_to_f32(w[i].d) * sl_f16_to_f32(x[i].d) * (float)sum;
    }
    return s;
}

/* k-quants: the weight super-block is unpacked into 256 small integers q and
 * per-group integer scales; sum = d_w * d_x * sum_g sc_g * dot(q_g, x_g),
 * minus the min term which uses the activation's 16-element bsums. */

static float dot_q2_K(int64_t n, const void *vw, const void *vx) {
    const sl_block_q2_K *w = vw;
    const sl_block_q8_K *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        int8_t q[SL_QK_K];
        const uint8_t *qs = w[i].qs;
        int8_t *a = q;
        for (int nn = 0; nn < SL_QK_K; nn += 128) {
            for (int shift = 0; shift < 8; shift += 2)
                for (int l = 0; l < 32; l++) *a++ = (int8_t)((qs[l] >> shift) & 3);
            qs += 32;
        }
        int sumi = 0, summ = 0;
        for (int g = 0; g < 16; g++) {
            int dot = 0;
            for (int l = 0; l < 16; l++) dot += q[g * 16 + l] * x[i].qs[g * 16 + l];
            sumi += (w[i].scales[g] & 0xf) * dot;
            summ += (w[i].scales[g] >> 4) * x[i].bsums[g];
        }
        s += x[i].d * (sl_f16_to_f32(w[i].d) * (float)sumi - sl_f16_to_f32(w[i].dmin) * (float)summ);
    }
    return s;
}

static float dot_q3_K(int64_t n, const void *vw, const void *vx) {
    const sl_block_q3_K *w = vw;
    const sl_block_q8_K *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        int8_t q[SL_QK_K], sc[16];
        sl_q3k_scales(w[i].scales, sc);
        const uint8_t *qs = w[i].qs, *hm = w[i].hmask;
        int8_t *a = q;
        uint8_t m = 1;
        for (int nn = 0; nn < SL_QK_K; nn += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int l = 0; l < 32; l++)
                    *a++ = (int8_t)(((qs[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                m = (uint8_t)(m << 1);
            }
            qs += 32;
        }
        int sumi = 0;
        for (int g = 0; g < 16; g++) {
            int dot = 0;
            for (int l = 0; l < 16; l++) dot += q[g * 16 + l] * x[i].qs[g * 16 + l];
            sumi += sc[g] * dot;
        }
        s += x[i].d * sl_f16_to_f32(w[i].d) * (float)sumi;
    }
    return s;
}

/* Σ codebook value · x over one iq4 32-block (16 bytes of nibbles). */
static int iq4_idot32(const uint8_t *qs, const int8_t *x) {
    int sum = 0;
    for (int j = 0; j < 16; j++)
        sum += sl_kvalues_iq4nl[qs[j] & 0xf] * x[j] + sl_kvalues_iq4nl[qs[j] >> 4] * x[j + 16];
    return sum;
}

static float dot_iq4_nl(int64_t n, const void *vw, const void *vx) {
    const sl_block_iq4_nl *w = vw;
    const sl_block_q8_0 *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / 32; i++)
        s += sl_f16_to_f32(w[i].d) * sl_f16_to_f32(x[i].d) * (float)iq4_idot32(w[i].qs, x[i].qs);
    return s;
}

static float dot_mxfp4(int64_t n, const void *vw, const void *vx) {
    const sl_block_mxfp4 *w = vw;
    const sl_block_q8_0 *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / 32; i++) {
        int sum = 0;
        for (int j = 0; j < 16; j++)
            sum += sl_kvalues_mxfp4[w[i].qs[j] & 0xf] * x[i].qs[j] + sl_kvalues_mxfp4[w[i].qs[j] >> 4] * x[i].qs[j + 16];
        s += sl_e8m0_half(w[i].e) * sl_f16_to_f32(x[i].d) * (float)sum;
    }
    return s;
}

static float dot_iq4_xs(int64_t n, const void *vw, const void *vx) {
    const sl_block_iq4_xs *w = vw;
    const sl_block_q8_0 *x = vx; /* iq4_xs is dotted with q8_0 blocks */
    float s = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const float d = sl_f16_to_f32(w[i].d);
        for (int ib = 0; ib < 8; ib++) {
            const sl_block_q8_0 *xb = &x[8 * i + ib];
            s += d * (float)sl_iq4xs_scale(&w[i], ib) * sl_f16_to_f32(xb->d) *
                 (float)iq4_idot32(w[i].qs + 16 * ib, xb->qs);
        }
    }
    return s;
}

/* Grid i-quants: the super-block as integers (sl_iq_decode), Σ over the
 * 16-element groups of multiplier · Σ q·x, scaled once. */
static float dot_iq(sl_type_t t, int64_t n, const void *vw, const void *vx) {
    const size_t bs = sl_type_traits(t)->type_size;
    const sl_block_q8_K *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        int8_t q[SL_QK_K];
        int16_t sc[16];
        const float d = sl_iq_decode(t, (const uint8_t *)vw + (size_t)i * bs, q, sc);
        int sumi = 0;
        for (int g = 0; g < 16; g++) {
            int dot = 0;
            for (int l = 0; l < 16; l++) dot += q[16 * g + l] * x[i].qs[16 * g + l];
            sumi += sc[g] * dot;
        }
        s += d * x[i].d * (float)sumi;
    }
    return s;
}
#define DEF_DOT_IQ(T, name) \
    static float dot_##name(int64_t n, const void *w, const void *x) { return dot_iq(T, n, w, x); }
DEF_DOT_IQ(SL_TYPE_IQ2_XXS, iq2_xxs)
DEF_DOT_IQ(SL_TYPE_IQ2_XS, iq2_xs)
DEF_DOT_IQ(SL_TYPE_IQ2_S, iq2_s)
DEF_DOT_IQ(SL_TYPE_IQ3_XXS, iq3_xxs)
DEF_DOT_IQ(SL_TYPE_IQ3_S, iq3_s)
DEF_DOT_IQ(SL_TYPE_IQ1_S, iq1_s)
DEF_DOT_IQ(SL_TYPE_IQ1_M, iq1_m)
#undef DEF_DOT_IQ

static float dot_q4_K(int64_t n, const void *vw, const void *vx) {
    const sl_block_q4_K *w = vw;
    const sl_block_q8_K *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *qs = w[i].qs;
        const int8_t *xq = x[i].qs;
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j += 2) {
            uint8_t sc1, m1, sc2, m2;
            sl_k4_scale_min(j, w[i].scales, &sc1, &m1);
            sl_k4_scale_min(j + 1, w[i].scales, &sc2, &m2);
            int d1 = 0, d2 = 0;
            for (int l = 0; l < 32; l++) {
                d1 += (qs[l] & 0xf) * xq[l];
                d2 += (qs[l] >> 4) * xq[l + 32];
            }
            sumi += sc1 * d1 + sc2 * d2;
            summ += m1 * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]) +
                    m2 * (x[i].bsums[2 * j + 2] + x[i].bsums[2 * j + 3]);
            qs += 32;
            xq += 64;
        }
        s += x[i].d * (sl_f16_to_f32(w[i].d) * (float)sumi - sl_f16_to_f32(w[i].dmin) * (float)summ);
    }
    return s;
}

static float dot_q5_K(int64_t n, const void *vw, const void *vx) {
    const sl_block_q5_K *w = vw;
    const sl_block_q8_K *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *ql = w[i].qs, *qh = w[i].qh;
        const int8_t *xq = x[i].qs;
        int sumi = 0, summ = 0;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 8; j += 2) {
            uint8_t sc1, m1, sc2, m2;
            sl_k4_scale_min(j, w[i].scales, &sc1, &m1);
            sl_k4_scale_min(j + 1, w[i].scales, &sc2, &m2);
            int d1 = 0, d2 = 0;
            for (int l = 0; l < 32; l++) {
                d1 += ((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) * xq[l];
                d2 += ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) * xq[l + 32];
            }
            sumi += sc1 * d1 + sc2 * d2;
            summ += m1 * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]) +
                    m2 * (x[i].bsums[2 * j + 2] + x[i].bsums[2 * j + 3]);
            ql += 32;
            xq += 64;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
        s += x[i].d * (sl_f16_to_f32(w[i].d) * (float)sumi - sl_f16_to_f32(w[i].dmin) * (float)summ);
    }
    return s;
}

static float dot_q6_K(int64_t n, const void *vw, const void *vx) {
    const sl_block_q6_K *w = vw;
    const sl_block_q8_K *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        int8_t q[SL_QK_K];
        const uint8_t *ql = w[i].ql, *qh = w[i].qh;
        for (int nn = 0; nn < SL_QK_K; nn += 128) {
            for (int l = 0; l < 32; l++) {
                q[nn + l] = (int8_t)(((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32);
                q[nn + l + 32] = (int8_t)(((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
                q[nn + l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                q[nn + l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
            ql += 64;
            qh += 32;
        }
        int sumi = 0;
        for (int g = 0; g < 16; g++) {
            int dot = 0;
            for (int l = 0; l < 16; l++) dot += q[g * 16 + l] * x[i].qs[g * 16 + l];
            sumi += w[i].scales[g] * dot;
        }
        s += x[i].d * sl_f16_to_f32(w[i].d) * (float)sumi;
    }
    return s;
}

static float dot_q8_K(int64_t n, const void *vw, const void *vx) {
    const sl_block_q8_K *w = vw;
    const sl_block_q8_K *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        int sum = 0;
        for (int j = 0; j < SL_QK_K; j++) sum += w[i].qs[j] * x[i].qs[j];
        s += w[i].d * x[i].d * (float)sum;
    }
    return s;
}

static void quant_f32_copy(const float *x, void *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

static void quantf_ref(const float *x, int64_t nb, float *d, float *s, int8_t *qs, size_t stride) {
    for (int64_t b = 0; b < nb; b++, x += 32) {
        sl_block_q8_0 blk;
        sl_quantize_q8_0_ref(x, &blk, 32);
        int sum = 0;
        for (int i = 0; i < 32; i++) sum += blk.qs[i];
        const size_t o = (size_t)b * stride;
        float *db = (float *)((uint8_t *)d + o), *sb = (float *)((uint8_t *)s + o);
        *db = sl_f16_to_f32(blk.d);
        *sb = *db * (float)sum;
        memcpy((uint8_t *)qs + o, blk.qs, 32);
    }
}

void sl_kern_fill_scalar(sl_kern_table_t *t) {
    memset(t, 0, sizeof *t);
    t->dot[SL_TYPE_F32] = dot_f32;
    t->dot[SL_TYPE_F16] = dot_f16;
    t->dot[SL_TYPE_BF16] = dot_bf16;
    t->dot[SL_TYPE_Q4_0] = dot_q4_0;
    t->dot[SL_TYPE_Q4_1] = dot_q4_1;
    t->dot[SL_TYPE_Q5_0] = dot_q5_0;
    t->dot[SL_TYPE_Q5_1] = dot_q5_1;
    t->dot[SL_TYPE_Q8_0] = dot_q8_0;
    t->dot[SL_TYPE_Q8_1] = dot_q8_1;
    t->dot[SL_TYPE_Q2_K] = dot_q2_K;
    t->dot[SL_TYPE_Q3_K] = dot_q3_K;
    t->dot[SL_TYPE_Q4_K] = dot_q4_K;
    t->dot[SL_TYPE_Q5_K] = dot_q5_K;
    t->dot[SL_TYPE_Q6_K] = dot_q6_K;
    t->dot[SL_TYPE_Q8_K] = dot_q8_K;
    t->dot[SL_TYPE_IQ4_NL] = dot_iq4_nl;
    t->dot[SL_TYPE_IQ4_XS] = dot_iq4_xs;
    t->dot[SL_TYPE_MXFP4] = dot_mxfp4;
    t->dot[SL_TYPE_IQ2_XXS] = dot_iq2_xxs;
    t->dot[SL_TYPE_IQ2_XS] = dot_iq2_xs;
    t->dot[SL_TYPE_IQ2_S] = dot_iq2_s;
    t->dot[SL_TYPE_IQ3_XXS] = dot_iq3_xxs;
    t->dot[SL_TYPE_IQ3_S] = dot_iq3_s;
    t->dot[SL_TYPE_IQ1_S] = dot_iq1_s;
    t->dot[SL_TYPE_IQ1_M] = dot_iq1_m;
    t->quant[SL_TYPE_F32] = quant_f32_copy;
    t->quant[SL_TYPE_Q8_0] = sl_quantize_q8_0_ref;
    t->quantf = quantf_ref;
    t->quant[SL_TYPE_Q8_1] = sl_quantize_q8_1_ref;
    t->quant[SL_TYPE_Q8_K] = sl_quantize_q8_K_ref;
}

float sl_vec_dot(sl_type_t t, int64_t n, const void *wrow, const void *xq) {
    const sl_type_traits_t *tr = sl_type_traits(t);
    if (!tr || n <= 0 || n % tr->blck) return 0.0f;
    sl_dot_fn f = sl_kern_table()->dot[t];
    return f ? f(n, wrow, xq) : 0.0f;
}
