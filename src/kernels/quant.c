/*
 * quant.c — the block formats of GGUF: type traits, f16/bf16 conversion, and
 * the scalar reference dequantizers and quantizers.
 *
 * Every layout here is ggml's, byte for byte (the sizes are asserted below),
 * so a tensor read from any GGUF file decodes the same as in the reference
 * implementation, and a tensor we write decodes the same elsewhere. The
 * quantizers follow ggml's reference ("_ref") rules: the same scale choice
 * and nearest rounding, and for the k-quants the same weighted search for
 * scale and min (make_qkx2_quants / make_qx_quants) — not a naive max-abs.
 *
 * This file is the scalar reference; SIMD code in kernels/<isa>/ only speeds
 * up the activation quantizers and the dot products, and is tested against
 * the functions here.
 */
#include "kernels/quant.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernels/kern_impl.h"

static_assert(sizeof(sl_block_q4_0) == 18, "q4_0 block size");
static_assert(sizeof(sl_block_q4_1) == 20, "q4_1 block size");
static_assert(sizeof(sl_block_q5_0) == 22, "q5_0 block size");
static_assert(sizeof(sl_block_q5_1) == 24, "q5_1 block size");
static_assert(sizeof(sl_block_q8_0) == 34, "q8_0 block size");
static_assert(sizeof(sl_block_q8_1) == 36, "q8_1 block size");
static_assert(sizeof(sl_block_q2_K) == 84, "q2_K block size");
static_assert(sizeof(sl_block_q3_K) == 110, "q3_K block size");
static_assert(sizeof(sl_block_q4_K) == 144, "q4_K block size");
static_assert(sizeof(sl_block_q5_K) == 176, "q5_K block size");
static_assert(sizeof(sl_block_iq4_nl) == 18, "iq4_nl block size");
static_assert(sizeof(sl_block_iq4_xs) == 136, "iq4_xs block size");
static_assert(SL_X8_IQ4_XS_BLOCK == 8 * sizeof(sl_block_iq4_xs), "x8 iq4_xs block: the 8 GGUF blocks' bytes");
static_assert(sizeof(sl_block_iq2_xxs) == 66, "iq2_xxs block size");
static_assert(sizeof(sl_block_iq2_xs) == 74, "iq2_xs block size");
static_assert(sizeof(sl_block_iq2_s) == 82, "iq2_s block size");
static_assert(sizeof(sl_block_iq3_xxs) == 98, "iq3_xxs block size");
static_assert(sizeof(sl_block_iq3_s) == 110, "iq3_s block size");
static_assert(sizeof(sl_block_iq1_s) == 50, "iq1_s block size");
static_assert(sizeof(sl_block_iq1_m) == 56, "iq1_m block size");
static_assert(sizeof(sl_block_mxfp4) == 17, "mxfp4 block size");
static_assert(sizeof(sl_block_q6_K) == 210, "q6_K block size");
static_assert(sizeof(sl_block_q8_K) == 292, "q8_K block size");

/* ---- traits ---- */

#define T(id, nm, bl, sz, sup, vdt) [id] = {nm, bl, sz, sup, vdt}
/* Types Silica cannot compute with still get their sizes, so a file holding
 * them can be walked and its tensors reported by name. */
static const sl_type_traits_t traits_table[SL_TYPE_COUNT] = {
    T(SL_TYPE_F32, "f32", 1, 4, true, SL_TYPE_F32),
    T(SL_TYPE_F16, "f16", 1, 2, true, SL_TYPE_F32),
    T(SL_TYPE_Q4_0, "q4_0", 32, 18, true, SL_TYPE_Q8_0),
    T(SL_TYPE_Q4_1, "q4_1", 32, 20, true, SL_TYPE_Q8_1),
    T(SL_TYPE_Q5_0, "q5_0", 32, 22, true, SL_TYPE_Q8_0),
    T(SL_TYPE_Q5_1, "q5_1", 32, 24, true, SL_TYPE_Q8_1),
    T(SL_TYPE_Q8_0, "q8_0", 32, 34, true, SL_TYPE_Q8_0),
    T(SL_TYPE_Q8_1, "q8_1", 32, 36, true, SL_TYPE_Q8_1),
    T(SL_TYPE_Q2_K, "q2_K", 256, 84, true, SL_TYPE_Q8_K),
    T(SL_TYPE_Q3_K, "q3_K", 256, 110, true, SL_TYPE_Q8_K),
    T(SL_TYPE_Q4_K, "q4_K", 256, 144, true, SL_TYPE_Q8_K),
    T(SL_TYPE_Q5_K, "q5_K", 256, 176, true, SL_TYPE_Q8_K),
    T(SL_TYPE_Q6_K, "q6_K", 256, 210, true, SL_TYPE_Q8_K),
    T(SL_TYPE_Q8_K, "q8_K", 256, 292, true, SL_TYPE_Q8_K),
    T(SL_TYPE_IQ2_XXS, "iq2_xxs", 256, 66, true, SL_TYPE_Q8_K),
    T(SL_TYPE_IQ2_XS, "iq2_xs", 256, 74, true, SL_TYPE_Q8_K),
    T(SL_TYPE_IQ3_XXS, "iq3_xxs", 256, 98, true, SL_TYPE_Q8_K),
    T(SL_TYPE_IQ1_S, "iq1_s", 256, 50, true, SL_TYPE_Q8_K),
    T(SL_TYPE_IQ4_NL, "iq4_nl", 32, 18, true, SL_TYPE_Q8_0),
    T(SL_TYPE_IQ3_S, "iq3_s", 256, 110, true, SL_TYPE_Q8_K),
    T(SL_TYPE_IQ2_S, "iq2_s", 256, 82, true, SL_TYPE_Q8_K),
    /* iq4_xs dotted with q8_0 blocks (ggml: q8_K): its 32-element sub-blocks
     * go through the 32-block kernels, GEMM included */
    T(SL_TYPE_IQ4_XS, "iq4_xs", 256, 136, true, SL_TYPE_Q8_0),
    T(SL_TYPE_I8, "i8", 1, 1, false, SL_TYPE_I8),
    T(SL_TYPE_I16, "i16", 1, 2, false, SL_TYPE_I16),
    T(SL_TYPE_I32, "i32", 1, 4, false, SL_TYPE_I32),
    T(SL_TYPE_I64, "i64", 1, 8, false, SL_TYPE_I64),
    T(SL_TYPE_F64, "f64", 1, 8, false, SL_TYPE_F64),
    T(SL_TYPE_IQ1_M, "iq1_m", 256, 56, true, SL_TYPE_Q8_K),
    T(SL_TYPE_BF16, "bf16", 1, 2, true, SL_TYPE_F32),
    T(34, "tq1_0", 256, 54, false, SL_TYPE_Q8_K),
    T(35, "tq2_0", 256, 66, false, SL_TYPE_Q8_K),
    T(SL_TYPE_MXFP4, "mxfp4", 32, 17, true, SL_TYPE_Q8_0),
};
#undef T

const sl_type_traits_t *sl_type_traits(sl_type_t t) {
    if ((unsigned)t >= SL_TYPE_COUNT || !traits_table[t].name) return NULL;
    return &traits_table[t];
}

const char *sl_type_name(sl_type_t t) {
    const sl_type_traits_t *tr = sl_type_traits(t);
    return tr ? tr->name : "?";
}

int sl_type_from_name(const char *name, sl_type_t *out) {
    if (!name) return -1;
    for (int i = 0; i < SL_TYPE_COUNT; i++) {
        if (traits_table[i].name && strcasecmp(traits_table[i].name, name) == 0) {
            *out = (sl_type_t)i;
            return 0;
        }
    }
    return -1;
}

size_t sl_row_size(sl_type_t t, int64_t n) {
    const sl_type_traits_t *tr = sl_type_traits(t);
    if (!tr || n < 0 || n % tr->blck != 0) return 0;
    size_t bytes;
    if (!sl_mul_size((size_t)(n / tr->blck), tr->type_size, &bytes)) return 0;
    return bytes;
}

/* ---- f16 / bf16 ---- */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float sl_f16_to_f32(sl_f16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in f32 */
        float f = (float)man * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (man << 13));
    return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

/* Round-to-nearest-even f32 -> f16 with overflow to inf and correct
 * subnormals (the FP16 library's bit trick ggml also uses). */
sl_f16_t sl_f32_to_f16(float f) {
    const float scale_to_inf = 0x1.0p+112f;
    const float scale_to_zero = 0x1.0p-110f;
    float base = (fabsf(f) * scale_to_inf) * scale_to_zero;
    uint32_t w = f32_bits(f);
    uint32_t shl1_w = w + w;
    uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xff000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
    uint32_t bits = f32_bits(base);
    uint32_t exp_bits = (bits >> 13) & 0x00007c00u;
    uint32_t man_bits = bits & 0x00000fffu;
    uint32_t nonsign = exp_bits + man_bits;
    return (sl_f16_t)((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

float sl_bf16_to_f32(sl_bf16_t h) {
    return f32_from_bits((uint32_t)h << 16);
}

sl_bf16_t sl_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (sl_bf16_t)((u >> 16) | 64); /* quiet NaN */
    return (sl_bf16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

/* ---- helpers shared with the quantizers ---- */

/* Round to nearest (ties to even), valid for |f| <= 4194303. */
static inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

#define MAXI(a, b) ((a) > (b) ? (a) : (b))
#define MINI(a, b) ((a) < (b) ? (a) : (b))

/* The 12 scale bytes of q4_K/q5_K hold 8 (6-bit scale, 6-bit min) pairs:
 * bytes 0-3 scales 0-3 (low 6 bits), bytes 4-7 mins 0-3 (low 6 bits),
 * bytes 8-11 low nibble scale 4-7 / high nibble min 4-7, the top 2 bits of
 * bytes 0-3 / 4-7 the high bits of scales / mins 4-7. */
void sl_k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* q3_K's 16 6-bit scales (stored offset by 32) unpacked to signed values. */
void sl_q3k_scales(const uint8_t *sc12, int8_t out[16]) {
    const uint32_t kmask1 = 0x03030303u, kmask2 = 0x0f0f0f0fu;
    uint32_t aux[4];
    memcpy(aux, sc12, 12);
    uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    memcpy(out, aux, 16);
    for (int i = 0; i < 16; i++) out[i] = (int8_t)(out[i] - 32);
}

/* ---- dequantization ---- */

static void deq_q4_0(const sl_block_q4_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float d = sl_f16_to_f32(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[i * 32 + j] = ((x[i].qs[j] & 0xf) - 8) * d;
            y[i * 32 + j + 16] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_1(const sl_block_q4_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float d = sl_f16_to_f32(x[i].d), m = sl_f16_to_f32(x[i].m);
        for (int j = 0; j < 16; j++) {
            y[i * 32 + j] = (x[i].qs[j] & 0xf) * d + m;
            y[i * 32 + j + 16] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* q5: bit j of the little-endian 32-bit qh is the 5th bit of element j. */
static void deq_q5_0(const sl_block_q5_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float d = sl_f16_to_f32(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[i * 32 + j] = (((x[i].qs[j] & 0xf) | h0) - 16) * d;
            y[i * 32 + j + 16] = (((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

static void deq_q5_1(const sl_block_q5_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float d = sl_f16_to_f32(x[i].d), m = sl_f16_to_f32(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[i * 32 + j] = ((x[i].qs[j] & 0xf) | h0) * d + m;
            y[i * 32 + j + 16] = ((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

static void deq_q8_0(const sl_block_q8_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float d = sl_f16_to_f32(x[i].d);
        for (int j = 0; j < 32; j++) y[i * 32 + j] = x[i].qs[j] * d;
    }
}

static void deq_q8_1(const sl_block_q8_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float d = sl_f16_to_f32(x[i].d);
        for (int j = 0; j < 32; j++) y[i * 32 + j] = x[i].qs[j] * d;
    }
}

static void deq_q2_K(const sl_block_q2_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float d = sl_f16_to_f32(x[i].d), dmin = sl_f16_to_f32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int n = 0; n < SL_QK_K; n += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    uint8_t sc = x[i].scales[is++];
                    float dl = d * (sc & 0xf), ml = dmin * (sc >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
                }
            }
            q += 32;
        }
    }
}

static void deq_q3_K(const sl_block_q3_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float d = sl_f16_to_f32(x[i].d);
        int8_t sc[16];
        sl_q3k_scales(x[i].scales, sc);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int n = 0; n < SL_QK_K; n += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    float dl = d * sc[is++];
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        *y++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
                m = (uint8_t)(m << 1);
            }
            q += 32;
        }
    }
}

static void deq_q4_K(const sl_block_q4_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q = x[i].qs;
        float d = sl_f16_to_f32(x[i].d), dmin = sl_f16_to_f32(x[i].dmin);
        for (int j = 0; j < 8; j += 2) {
            uint8_t sc, m;
            sl_k4_scale_min(j, x[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            sl_k4_scale_min(j + 1, x[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xf) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
        }
    }
}

static void deq_q5_K(const sl_block_q5_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        float d = sl_f16_to_f32(x[i].d), dmin = sl_f16_to_f32(x[i].dmin);
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 8; j += 2) {
            uint8_t sc, m;
            sl_k4_scale_min(j, x[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            sl_k4_scale_min(j + 1, x[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

static void deq_q6_K(const sl_block_q6_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float d = sl_f16_to_f32(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < SL_QK_K; n += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

const int8_t sl_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* 32 elements of one iq4 block: codebook values of the 16 bytes' nibbles. */
static void deq_iq4_32(const uint8_t *qs, float d, float *y) {
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)sl_kvalues_iq4nl[qs[j] & 0xf];
        y[j + 16] = d * (float)sl_kvalues_iq4nl[qs[j] >> 4];
    }
}

static void deq_iq4_nl(const sl_block_iq4_nl *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) deq_iq4_32(x[i].qs, sl_f16_to_f32(x[i].d), y + 32 * i);
}

/* ggml's kvalues_mxfp4: the E2M1 values doubled */
const int8_t sl_kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

static void deq_mxfp4(const sl_block_mxfp4 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const float d = sl_e8m0_half(x[i].e);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)sl_kvalues_mxfp4[x[i].qs[j] & 0xf];
            y[j + 16] = d * (float)sl_kvalues_mxfp4[x[i].qs[j] >> 4];
        }
    }
}

static void deq_iq4_xs(const sl_block_iq4_xs *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = sl_f16_to_f32(x[i].d);
        for (int ib = 0; ib < 8; ib++)
            deq_iq4_32(x[i].qs + 16 * ib, d * (float)sl_iq4xs_scale(&x[i], ib), y + 256 * i + 32 * ib);
    }
}

static void deq_q8_K(const sl_block_q8_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++)
        for (int j = 0; j < SL_QK_K; j++) *y++ = x[i].d * x[i].qs[j];
}

void sl_dequantize_row(sl_type_t t, const void *src, float *dst, int64_t n) {
    const sl_type_traits_t *tr = sl_type_traits(t);
    if (!tr || !tr->supported || n <= 0 || n % tr->blck) return;
    int64_t nb = n / tr->blck;
    switch (t) {
    case SL_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case SL_TYPE_F16: {
        const sl_f16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = sl_f16_to_f32(h[i]);
        break;
    }
    case SL_TYPE_BF16: {
        const sl_bf16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = sl_bf16_to_f32(h[i]);
        break;
    }
    case SL_TYPE_Q4_0: deq_q4_0(src, dst, nb); break;
    case SL_TYPE_Q4_1: deq_q4_1(src, dst, nb); break;
    case SL_TYPE_Q5_0: deq_q5_0(src, dst, nb); break;
    case SL_TYPE_Q5_1: deq_q5_1(src, dst, nb); break;
    case SL_TYPE_Q8_0: deq_q8_0(src, dst, nb); break;
    case SL_TYPE_Q8_1: deq_q8_1(src, dst, nb); break;
    case SL_TYPE_Q2_K: deq_q2_K(src, dst, nb); break;
    case SL_TYPE_Q3_K: deq_q3_K(src, dst, nb); break;
    case SL_TYPE_Q4_K: deq_q4_K(src, dst, nb); break;
    case SL_TYPE_Q5_K: deq_q5_K(src, dst, nb); break;
    case SL_TYPE_Q6_K: deq_q6_K(src, dst, nb); break;
    case SL_TYPE_Q8_K: deq_q8_K(src, dst, nb); break;
    case SL_TYPE_IQ4_NL: deq_iq4_nl(src, dst, nb); break;
    case SL_TYPE_MXFP4: deq_mxfp4(src, dst, nb); break;
    case SL_TYPE_IQ4_XS: deq_iq4_xs(src, dst, nb); break;
    default: sl_iq_dequantize(t, src, dst, nb); break;
    }
}

/* ---- quantization (reference rules) ---- */

static void quant_q4_0(const float *x, sl_block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -8, id = d ? 1.0f / d : 0.0f;
        y[i].d = sl_f32_to_f16(d);
        for (int j = 0; j < 16; j++) {
            int a = MINI(15, (int)(int8_t)(x[j] * id + 8.5f));
            int b = MINI(15, (int)(int8_t)(x[j + 16] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(a | (b << 4));
        }
    }
}

static void quant_q4_1(const float *x, sl_block_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        float d = (max - min) / 15, id = d ? 1.0f / d : 0.0f;
        y[i].d = sl_f32_to_f16(d);
        y[i].m = sl_f32_to_f16(min);
        for (int j = 0; j < 16; j++) {
            int a = MINI(15, (int)(int8_t)((x[j] - min) * id + 0.5f));
            int b = MINI(15, (int)(int8_t)((x[j + 16] - min) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(a | (b << 4));
        }
    }
}

static void quant_q5_0(const float *x, sl_block_q5_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -16, id = d ? 1.0f / d : 0.0f;
        y[i].d = sl_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int a = MINI(31, (int)(int8_t)(x[j] * id + 16.5f));
            int b = MINI(31, (int)(int8_t)(x[j + 16] * id + 16.5f));
            y[i].qs[j] = (uint8_t)((a & 0xf) | ((b & 0xf) << 4));
            qh |= (uint32_t)((a >> 4) & 1) << j;
            qh |= (uint32_t)((b >> 4) & 1) << (j + 16);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void quant_q5_1(const float *x, sl_block_q5_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        float d = (max - min) / 31, id = d ? 1.0f / d : 0.0f;
        y[i].d = sl_f32_to_f16(d);
        y[i].m = sl_f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int a = MINI(31, (int)(int8_t)((x[j] - min) * id + 0.5f));
            int b = MINI(31, (int)(int8_t)((x[j + 16] - min) * id + 0.5f));
            y[i].qs[j] = (uint8_t)((a & 0xf) | ((b & 0xf) << 4));
            qh |= (uint32_t)((a >> 4) & 1) << j;
            qh |= (uint32_t)((b >> 4) & 1) << (j + 16);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

/* A code of x·id, |x·id| <= 127 when finite: NaN (a NaN or infinite input
 * in the row) becomes 0 instead of an undefined conversion. */
static inline int8_t q8_code(float v) {
    return v == v ? (int8_t)roundf(v) : 0;
}

void sl_quantize_q8_0_ref(const float *x, void *vy, int64_t n) {
    sl_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        y[i].d = sl_f32_to_f16(d);
        for (int j = 0; j < 32; j++) y[i].qs[j] = q8_code(x[j] * id);
    }
}

void sl_quantize_q8_1_ref(const float *x, void *vy, int64_t n) {
    sl_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        y[i].d = sl_f32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            y[i].qs[j] = q8_code(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = sl_f32_to_f16(sum * d);
    }
}

void sl_quantize_q8_K_ref(const float *x, void *vy, int64_t n) {
    sl_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / SL_QK_K; i++, x += SL_QK_K) {
        float amax = 0, max = 0;
        for (int j = 0; j < SL_QK_K; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        if (amax == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float iscale = -127.f / max;
        for (int j = 0; j < SL_QK_K; j++) y[i].qs[j] = (int8_t)MINI(127, nearest_int(iscale * x[j]));
        for (int j = 0; j < SL_QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[j * 16 + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* Best scale and min for n values quantized to 0..nmax, minimizing the
 * weighted error; tries nstep+1 scales around the plain (max-min)/nmax one
 * and solves least squares for scale and min at each (ggml's make_qkx2). */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)MAXI(0, MINI(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = MAXI(0, MINI(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                err += weights[i] * diff;
            }
            if (err < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Best symmetric scale for values quantized to -nmax..nmax-1 (stored +nmax),
 * weighted by x^2; tries 19 scales around nmax/max (ggml's make_qx_quants,
 * rmse_type 1). */
/* The first fit both symmetric searches start from: levels l =
 * round(−nmax/max · x) in −nmax..nmax−1 (max: the value of largest
 * magnitude), stored in L as l + off, with Σ w·x·l and Σ w·l² (w = x²).
 * False, with L zeroed, when every |x| < 1e-15. */
static bool qx_first_fit(int n, int nmax, const float *x, int8_t *L, int off, float *pmax, float *psumlx,
                         float *psuml2) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return false;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = MAXI(-nmax, MINI(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + off);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    *pmax = max;
    *psumlx = sumlx;
    *psuml2 = suml2;
    return true;
}

static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max, sumlx, suml2;
    if (!qx_first_fit(n, nmax, x, L, nmax, &max, &sumlx, &suml2)) return 0.f;
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        const float iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = MAXI(-nmax, MINI(nmax - 1, nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + MAXI(-nmax, MINI(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Packs 8 6-bit scales and mins into the 12 bytes of q4_K / q5_K. */
static void pack_k4_scales(uint8_t *s, const uint8_t *ls, const uint8_t *lm) {
    memset(s, 0, SL_K_SCALE_SIZE);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0xf) | ((lm[j] & 0xf) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Shared by q4_K (nmax 15) and q5_K (nmax 31): 8 sub-blocks of 32 with a
 * 6-bit scale and min each; writes d, dmin, scales and the levels L. */
static void quant_k4_common(const float *x, int nmax, sl_f16_t *pd, sl_f16_t *pdmin,
                            uint8_t *scales, uint8_t L[SL_QK_K]) {
    uint8_t Laux[32];
    float weights[32], mins[8], scl[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scl[j] = nmax == 15 ? make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j],
                                               Laux, -1.f, 0.1f, 20, false)
                            : make_qkx2_quants(32, 31, x + 32 * j, weights, L + 32 * j, &mins[j],
                                               Laux, -0.5f, 0.1f, 15, false);
        if (scl[j] > max_scale) max_scale = scl[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)MINI(63, nearest_int(inv_scale * scl[j]));
        lm[j] = (uint8_t)MINI(63, nearest_int(inv_min * mins[j]));
    }
    pack_k4_scales(scales, ls, lm);
    *pd = sl_f32_to_f16(max_scale / 63.f);
    *pdmin = sl_f32_to_f16(max_min / 63.f);
    float d = sl_f16_to_f32(*pd), dmin = sl_f16_to_f32(*pdmin);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        sl_k4_scale_min(j, scales, &sc, &m);
        float dd = d * sc;
        if (!dd) continue;
        float dm = dmin * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = nearest_int((x[32 * j + ii] + dm) / dd);
            L[32 * j + ii] = (uint8_t)MAXI(0, MINI(nmax, l));
        }
    }
}

static void quant_q4_K(const float *x, sl_block_q4_K *y, int64_t nb) {
    uint8_t L[SL_QK_K];
    for (int64_t i = 0; i < nb; i++, x += SL_QK_K) {
        quant_k4_common(x, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < SL_QK_K; j += 64) {
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
    }
}

static void quant_q5_K(const float *x, sl_block_q5_K *y, int64_t nb) {
    uint8_t L[SL_QK_K];
    for (int64_t i = 0; i < nb; i++, x += SL_QK_K) {
        quant_k4_common(x, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *qh = y[i].qh, *ql = y[i].qs;
        memset(qh, 0, SL_QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < SL_QK_K; n += 64) {
            for (int j = 0; j < 32; j++) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
            ql += 32;
        }
    }
}

static void quant_q6_K(const float *x, sl_block_q6_K *y, int64_t nb) {
    int8_t L[SL_QK_K];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += SL_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ib++) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < 1e-15f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = sl_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < 16; ib++)
            y[i].scales[ib] = (int8_t)MINI(127, nearest_int(iscale * scales[ib]));
        float d0 = sl_f16_to_f32(y[i].d);
        for (int j = 0; j < 16; j++) {
            float d = d0 * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = MAXI(-32, MINI(31, nearest_int(x[16 * j + ii] / d)));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < SL_QK_K; j += 128) {
            for (int l = 0; l < 32; l++) {
                int q1 = L[j + l] & 0xf, q2 = L[j + l + 32] & 0xf;
                int q3 = L[j + l + 64] & 0xf, q4 = L[j + l + 96] & 0xf;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
    }
}

/* Symmetric 3-bit (nmax = 4: -4..3) levels for a 16-value group, weighted
 * by x², refined by moving single levels while that improves the fit
 * (ggml's make_q3_quants with do_rmse). L gets level + nmax. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max, sumlx, suml2;
    if (!qx_first_fit(n, nmax, x, L, 0, &max, &sumlx, &suml2)) return 0.f;
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int nl = MAXI(-nmax, MINI(nmax - 1, nearest_int(x[i] * sl2 / slx)));
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0 ? sumlx / suml2 : 0.0f;
}

/* 2-bit codes of 256 values into qs: element j + l (l < 32) of each 128
 * half sits in byte j/4 + l at bit 2·(l-group). */
static void pack_2bit(uint8_t *qs, const uint8_t *L) {
    for (int j = 0; j < SL_QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* q2_K: 16 groups of 16, each with its own scale and min (weighted search),
 * the 16 scales and 16 mins then quantized to 4 bits against d and dmin;
 * the codes are chosen again for the final scales (ggml's reference). */
static void quant_q2_K(const float *x, sl_block_q2_K *y, int64_t nb) {
    uint8_t L[SL_QK_K], Laux[16];
    float weights[16], mins[16], scales[16];
    for (int64_t i = 0; i < nb; i++, x += SL_QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = 15.f / max_scale;
            for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = sl_f32_to_f16(max_scale / 15.f);
        } else {
            memset(y[i].scales, 0, 16);
            y[i].d = sl_f32_to_f16(0.f);
        }
        if (max_min > 0) {
            float iscale = 15.f / max_min;
            for (int j = 0; j < 16; j++) y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = sl_f32_to_f16(max_min / 15.f);
        } else {
            y[i].dmin = sl_f32_to_f16(0.f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = sl_f16_to_f32(y[i].d) * (y[i].scales[j] & 0xf);
            if (!d) continue;
            const float dm = sl_f16_to_f32(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)MAXI(0, MINI(3, nearest_int((x[16 * j + l] + dm) / d)));
        }
        pack_2bit(y[i].qs, L);
    }
}

/* q3_K: 16 groups of 16 with a signed 6-bit scale each (against d), codes
 * -4..3 as 2 low bits in qs plus a high bit in hmask (set: no -4 offset). */
static void quant_q3_K(const float *x, sl_block_q3_K *y, int64_t nb) {
    int8_t L[SL_QK_K];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += SL_QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, 12);
        if (max_scale != 0) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int l = MAXI(-32, MINI(31, nearest_int(iscale * scales[j]))) + 32;
                if (j < 8)
                    y[i].scales[j] = (uint8_t)(l & 0xf);
                else
                    y[i].scales[j - 8] |= (uint8_t)((l & 0xf) << 4);
                y[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = sl_f32_to_f16(1 / iscale);
        } else {
            y[i].d = sl_f32_to_f16(0.f);
        }
        int8_t sc[16];
        sl_q3k_scales(y[i].scales, sc);
        for (int j = 0; j < 16; j++) {
            const float d = sl_f16_to_f32(y[i].d) * sc[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(MAXI(-4, MINI(3, nearest_int(x[16 * j + l] / d))) + 4);
        }
        memset(y[i].hmask, 0, SL_QK_K / 8);
        uint8_t Lu[SL_QK_K];
        for (int j = 0; j < SL_QK_K; j++) {
            int l = L[j];
            if (l > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                l -= 4;
            }
            Lu[j] = (uint8_t)l;
        }
        pack_2bit(y[i].qs, Lu);
    }
}

/* ---- iq4_nl / iq4_xs quantization ----
 *
 * Per 32 elements: the codebook index nearest x / d for a scale d, d chosen
 * among scales that put the largest-magnitude element on the codebook's
 * end (−127) or a step inside it, each refit by least squares to its
 * indices; the one with the least squared error wins (llama.cpp's search,
 * without an importance matrix). */
static int iq4_nearest(float v) {
    int lo = 0, hi = 15; /* the codebook is sorted */
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < (float)sl_kvalues_iq4nl[mid]) hi = mid;
        else lo = mid;
    }
    return v - (float)sl_kvalues_iq4nl[lo] <= (float)sl_kvalues_iq4nl[hi] - v ? lo : hi;
}

/* Best scale for x[0..32) with its indices in idx; 0 for an all-zero block. */
static float iq4_fit32(const float *x, uint8_t idx[32]) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    if (amax < 1e-30f) {
        memset(idx, iq4_nearest(0.0f), 32);
        return 0.0f;
    }
    float best_d = 0, best_err = INFINITY;
    uint8_t cand[32];
    for (int itry = -7; itry <= 7; itry++) {
        const float id = ((float)itry + (float)sl_kvalues_iq4nl[0]) / max;
        float sxk = 0, skk = 0;
        for (int j = 0; j < 32; j++) {
            cand[j] = (uint8_t)iq4_nearest(id * x[j]);
            const float k = (float)sl_kvalues_iq4nl[cand[j]];
            sxk += x[j] * k;
            skk += k * k;
        }
        const float d = skk > 0 ? sxk / skk : 0.0f;
        float err = 0;
        for (int j = 0; j < 32; j++) {
            const float e = x[j] - d * (float)sl_kvalues_iq4nl[cand[j]];
            err += e * e;
        }
        if (err < best_err) {
            best_err = err;
            best_d = d;
            memcpy(idx, cand, 32);
        }
    }
    return best_d;
}

static void iq4_pack32(const uint8_t idx[32], uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(idx[j] | (idx[j + 16] << 4));
}

/* indices of x for the stored scale d (0: all zero) */
static void iq4_assign32(const float *x, float d, uint8_t idx[32]) {
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) idx[j] = (uint8_t)iq4_nearest(x[j] * id);
}

/* mxfp4, ggml's reference rule: e = floor(log2 amax) − 2 + 127, so that
 * amax / 2^(e − 128) lies in [8, 16), at the top of the doubled codebook (8,
 * 12); every element takes the code of the nearest value (the first on
 * ties, so 0 is code 0). */
static int mxfp4_nearest(float x, float d) {
    int best = 0;
    float be = fabsf((float)sl_kvalues_mxfp4[0] * d - x);
    for (int i = 1; i < 16; i++) {
        const float e = fabsf((float)sl_kvalues_mxfp4[i] * d - x);
        if (e < be) be = e, best = i;
    }
    return best;
}

static void quant_mxfp4(const float *x, sl_block_mxfp4 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        /* e within 0..255 before any conversion (subnormal or infinite
         * inputs; NaNs are skipped by fmaxf) */
        const float ef = amax > 0 ? floorf(log2f(amax)) - 2 + 127 : 0;
        y[i].e = (uint8_t)(ef < 0 ? 0 : ef > 255 ? 255 : ef);
        const float d = sl_e8m0_half(y[i].e);
        for (int j = 0; j < 16; j++)
            y[i].qs[j] = (uint8_t)(mxfp4_nearest(x[j], d) | mxfp4_nearest(x[j + 16], d) << 4);
    }
}

static void quant_iq4_nl(const float *x, sl_block_iq4_nl *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        uint8_t idx[32];
        const float d = iq4_fit32(x, idx);
        y[i].d = sl_f32_to_f16(d);
        iq4_assign32(x, sl_f16_to_f32(y[i].d), idx); /* against the f16 scale as stored */
        iq4_pack32(idx, y[i].qs);
    }
}

static void quant_iq4_xs(const float *x, sl_block_iq4_xs *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 256) {
        float ds[8], amax = 0, max = 0;
        uint8_t idx[32];
        for (int ib = 0; ib < 8; ib++) {
            ds[ib] = iq4_fit32(x + 32 * ib, idx);
            if (fabsf(ds[ib]) > amax) {
                amax = fabsf(ds[ib]);
                max = ds[ib];
            }
        }
        /* sub-block scales as d · (ls − 32), ls in 0..63: the largest one on −32 */
        const float d = max / -32.0f;
        y[i].d = sl_f32_to_f16(d);
        const float dq = sl_f16_to_f32(y[i].d), id = dq != 0.0f ? 1.0f / dq : 0.0f;
        y[i].scales_h = 0;
        memset(y[i].scales_l, 0, sizeof y[i].scales_l);
        for (int ib = 0; ib < 8; ib++) {
            int l = (int)lrintf(ds[ib] * id);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            const int ls = l + 32;
            y[i].scales_l[ib / 2] |= (uint8_t)((ls & 0xf) << (4 * (ib % 2)));
            y[i].scales_h |= (uint16_t)((ls >> 4) << (2 * ib));
            iq4_assign32(x + 32 * ib, dq * (float)l, idx);
            iq4_pack32(idx, y[i].qs + 16 * ib);
        }
    }
}

bool sl_can_quantize(sl_type_t t) {
    switch (t) {
    case SL_TYPE_F32:
    case SL_TYPE_F16:
    case SL_TYPE_BF16:
    case SL_TYPE_Q4_0:
    case SL_TYPE_Q4_1:
    case SL_TYPE_Q5_0:
    case SL_TYPE_Q5_1:
    case SL_TYPE_Q8_0:
    case SL_TYPE_Q8_1:
    case SL_TYPE_Q2_K:
    case SL_TYPE_Q3_K:
    case SL_TYPE_Q4_K:
    case SL_TYPE_Q5_K:
    case SL_TYPE_Q6_K:
    case SL_TYPE_Q8_K:
    case SL_TYPE_IQ4_NL:
    case SL_TYPE_IQ4_XS:
    case SL_TYPE_MXFP4: return true;
    default: return sl_iq_grid_type(t);
    }
}

int sl_quantize_row(sl_type_t t, const float *src, void *dst, int64_t n) {
    const sl_type_traits_t *tr = sl_type_traits(t);
    if (!tr || !sl_can_quantize(t) || n < 0 || n % tr->blck) return -1;
    int64_t nb = n / tr->blck;
    switch (t) {
    case SL_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case SL_TYPE_F16: {
        sl_f16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = sl_f32_to_f16(src[i]);
        break;
    }
    case SL_TYPE_BF16: {
        sl_bf16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = sl_f32_to_bf16(src[i]);
        break;
    }
    case SL_TYPE_Q4_0: quant_q4_0(src, dst, nb); break;
    case SL_TYPE_Q4_1: quant_q4_1(src, dst, nb); break;
    case SL_TYPE_Q5_0: quant_q5_0(src, dst, nb); break;
    case SL_TYPE_Q5_1: quant_q5_1(src, dst, nb); break;
    case SL_TYPE_Q8_0: sl_quantize_q8_0_ref(src, dst, n); break;
    case SL_TYPE_Q8_1: sl_quantize_q8_1_ref(src, dst, n); break;
    case SL_TYPE_Q2_K: quant_q2_K(src, dst, nb); break;
    case SL_TYPE_Q3_K: quant_q3_K(src, dst, nb); break;
    case SL_TYPE_Q4_K: quant_q4_K(src, dst, nb); break;
    case SL_TYPE_Q5_K: quant_q5_K(src, dst, nb); break;
    case SL_TYPE_Q6_K: quant_q6_K(src, dst, nb); break;
    case SL_TYPE_Q8_K: sl_quantize_q8_K_ref(src, dst, n); break;
    case SL_TYPE_IQ4_NL: quant_iq4_nl(src, dst, nb); break;
    case SL_TYPE_MXFP4: quant_mxfp4(src, dst, nb); break;
    case SL_TYPE_IQ4_XS: quant_iq4_xs(src, dst, nb); break;
    default:
        if (!sl_iq_grid_type(t)) return -1;
        sl_iq_quantize(t, src, dst, nb);
        break;
    }
    return 0;
}
