/*
 * dot_neon.c — arm64 NEON kernels: f32 weights and the q8_0-dotted block
 * types (q4_0, q8_0). Integer products use SDOT (vdotq_s32) when the compiler
 * targets the dot-product extension, and widening multiplies (vmull_s8 +
 * pairwise accumulate) otherwise; both are exact in s32.
 *
 * On other architectures the file compiles to a fill function that reports
 * "not available".
 */
#include "kernels/kern_impl.h"

#if defined(__aarch64__)
#include <arm_neon.h>

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

static float dot_f32(int64_t n, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, vld1q_f32(w + i + 4), vld1q_f32(x + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++) s += w[i] * x[i];
    return s;
}

static float dot_q8_0(int64_t n, const void *vw, const void *vx) {
    const sl_block_q8_0 *w = vw;
    const sl_block_q8_0 *x = vx;
    float32x4_t acc = vdupq_n_f32(0);
    for (int64_t i = 0; i < n / 32; i++) {
        int32x4_t p = vdupq_n_s32(0);
        p = dot16(p, vld1q_s8(w[i].qs), vld1q_s8(x[i].qs));
        p = dot16(p, vld1q_s8(w[i].qs + 16), vld1q_s8(x[i].qs + 16));
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), f16(w[i].d) * f16(x[i].d));
    }
    return vaddvq_f32(acc);
}

static float dot_q4_0(int64_t n, const void *vw, const void *vx) {
    const sl_block_q4_0 *w = vw;
    const sl_block_q8_0 *x = vx;
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    const int8x16_t s8 = vdupq_n_s8(8);
    float32x4_t acc = vdupq_n_f32(0);
    for (int64_t i = 0; i < n / 32; i++) {
        uint8x16_t b = vld1q_u8(w[i].qs);
        int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(b, m4)), s8); /* elements 0-15 */
        int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(b, 4)), s8); /* elements 16-31 */
        int32x4_t p = vdupq_n_s32(0);
        p = dot16(p, lo, vld1q_s8(x[i].qs));
        p = dot16(p, hi, vld1q_s8(x[i].qs + 16));
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), f16(w[i].d) * f16(x[i].d));
    }
    return vaddvq_f32(acc);
}

bool sl_kern_fill_neon(sl_kern_table_t *t) {
    t->dot[SL_TYPE_F32] = dot_f32;
    t->dot[SL_TYPE_Q4_0] = dot_q4_0;
    t->dot[SL_TYPE_Q8_0] = dot_q8_0;
    return true;
}

#else
bool sl_kern_fill_neon(sl_kern_table_t *t) {
    (void)t;
    return false;
}
#endif
