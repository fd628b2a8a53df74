/*
 * x8_vnni.h — the x8-panel and unpacked-row kernels written for vpdpbusd
 * (AVX-512 VNNI): u8 × s8, four products summed straight into s32 — one
 * instruction where AVX2 needs vpmaddubsw, vpmaddwd and an add, and no s16
 * pair sum that could saturate.
 *
 * Signed q8_0 codes are made unsigned by flipping their top bit, u = w + 128
 * (one XOR per code vector, shared by every token in the GEMM); the extra
 * 128 · Σx comes off once per block through the activation's s = d · Σq, as
 * the 4/5-bit types' offsets already do. q5_0 / q4_0 codes are unsigned as
 * they are.
 *
 * This file is included twice, each time after defining
 *   X8V_DPBUSD(acc, u, s)  acc + Σ of each 4 u8 × s8 products, per s32 lane
 *   X8V_NAME(name)         the name of an instance's function
 * by avx512/dot_avx512.c with the real instruction, and by
 * avx2/vnni_emul.c with an exact AVX2 emulation, so that the kernels' logic
 * is tested against the scalar reference on machines without VNNI.
 * X8V_FILL installs the kernels in a table.
 */
#include "kernels/kern_impl.h"
#include "kernels/x8_simd.h"

/* Decode, q8_0: the 8 rows of one panel · one token. Two chains of
 * vpdpbusd (even / odd groups) keep two multiplies in flight. */
static void X8V_NAME(x8_dot_q8_0)(int64_t n, const void *panel, const sl_q8f_t *x, float *out) {
    const int64_t nb = n / 32;
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    __m256 acc = _mm256_setzero_ps(), cor = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m256i *q = (const __m256i *)SL_X8_Q(panel, b);
        const int8_t *xq = x[b].qs;
        __m256i i0 = _mm256_setzero_si256(), i1 = i0;
        for (int g = 0; g < 8; g += 2) {
            i0 = X8V_DPBUSD(i0, _mm256_xor_si256(_mm256_loadu_si256(q + g), flip),
                            _mm256_set1_epi32(x8_bytes4(xq + 4 * g)));
            i1 = X8V_DPBUSD(i1, _mm256_xor_si256(_mm256_loadu_si256(q + g + 1), flip),
                            _mm256_set1_epi32(x8_bytes4(xq + 4 * g + 4)));
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)SL_X8_D(panel, b)));
        acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[b].d)),
                              _mm256_cvtepi32_ps(_mm256_add_epi32(i0, i1)), acc);
        cor = _mm256_fmadd_ps(d, _mm256_set1_ps(x[b].s), cor);
    }
    _mm256_storeu_ps(out, _mm256_fnmadd_ps(_mm256_set1_ps(128.0f), cor, acc));
}

/* Many tokens, q8_0: np panels × the nc (<= 4) tokens of one group. Per
 * code vector one XOR, then one vpdpbusd per token against its broadcast 4
 * bytes; per block and token one convert + FMA, and the 128 · d · s offset
 * (128 · d is exact: a power of two times the scale). */
static void X8V_NAME(x8_gemm_q8_0)(int64_t n, const void *panels, int np, const sl_q8x4_t *x,
                                   int nc, float *out, size_t os) {
    const int64_t nb = n / 32;
    const size_t pbytes = (size_t)nb * SL_X8_Q8_0_BLOCK;
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (int p = 0; p < np; p++) {
        const uint8_t *pn = (const uint8_t *)panels + (size_t)p * pbytes;
        __m256 f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0;
        for (int64_t b = 0; b < nb; b++) {
            const __m256i *q = (const __m256i *)SL_X8_Q(pn, b);
            const sl_q8x4_t *xb = x + b;
            __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
            for (int g = 0; g < 8; g++) {
                const __m256i u = _mm256_xor_si256(_mm256_loadu_si256(q + g), flip);
                i0 = X8V_DPBUSD(i0, u, _mm256_set1_epi32(x8_bytes4(xb->qs[0] + 4 * g)));
                i1 = X8V_DPBUSD(i1, u, _mm256_set1_epi32(x8_bytes4(xb->qs[1] + 4 * g)));
                i2 = X8V_DPBUSD(i2, u, _mm256_set1_epi32(x8_bytes4(xb->qs[2] + 4 * g)));
                i3 = X8V_DPBUSD(i3, u, _mm256_set1_epi32(x8_bytes4(xb->qs[3] + 4 * g)));
            }
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)SL_X8_D(pn, b)));
            const __m256 d128 = _mm256_mul_ps(d, _mm256_set1_ps(128.0f));
#define X8V_ACC(f, i, c)                                                                           \
    f = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb->d[c])), _mm256_cvtepi32_ps(i),   \
                        f);                                                                        \
    f = _mm256_fnmadd_ps(d128, _mm256_broadcast_ss(&xb->s[c]), f)
            X8V_ACC(f0, i0, 0);
            X8V_ACC(f1, i1, 1);
            X8V_ACC(f2, i2, 2);
            X8V_ACC(f3, i3, 3);
#undef X8V_ACC
        }
        const __m256 acc[4] = {f0, f1, f2, f3};
        for (int c = 0; c < nc; c++)
            _mm256_storeu_ps(out + (size_t)c * os + (size_t)p * 8, acc[c]);
    }
}

/* Decode, q5_0 / q4_0: unsigned codes straight into vpdpbusd; the −16 / −8
 * offset once per block as d · (dx · Σx). */
static inline __attribute__((always_inline)) void
X8V_NAME(x8_dot_q4)(bool five, int64_t n, const void *panel, const sl_q8f_t *x, float *out) {
    const int64_t nb = n / 32;
    const size_t bsz = five ? SL_X8_Q5_0_BLOCK : SL_X8_Q4_0_BLOCK;
    __m256 acc = _mm256_setzero_ps(), cor = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = (const uint8_t *)panel + (size_t)b * bsz;
        const int8_t *xq = x[b].qs;
        __m256i c[8];
        x8_q4_block(five, blk, c);
        __m256i i0 = _mm256_setzero_si256(), i1 = i0;
        for (int g = 0; g < 8; g += 2) {
            i0 = X8V_DPBUSD(i0, c[g], _mm256_set1_epi32(x8_bytes4(xq + 4 * g)));
            i1 = X8V_DPBUSD(i1, c[g + 1], _mm256_set1_epi32(x8_bytes4(xq + 4 * g + 4)));
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[b].d)),
                              _mm256_cvtepi32_ps(_mm256_add_epi32(i0, i1)), acc);
        cor = _mm256_fmadd_ps(d, _mm256_set1_ps(x[b].s), cor);
    }
    _mm256_storeu_ps(out, _mm256_fnmadd_ps(_mm256_set1_ps(five ? 16.0f : 8.0f), cor, acc));
}
static void X8V_NAME(x8_dot_q5_0)(int64_t n, const void *panel, const sl_q8f_t *x, float *out) {
    X8V_NAME(x8_dot_q4)(true, n, panel, x, out);
}
static void X8V_NAME(x8_dot_q4_0)(int64_t n, const void *panel, const sl_q8f_t *x, float *out) {
    X8V_NAME(x8_dot_q4)(false, n, panel, x, out);
}

/* Many tokens over unpacked rows (SL_U_PANEL_BLOCK panels) of unsigned
 * codes — q4_0, q4_1, q5_0, q5_1, and x8 q5_0 / q4_0 expanded: 8 rows × the
 * nc (<= 4) tokens of one group per pass; per block and token the float
 * scale d and offset m · s. */
static void X8V_NAME(gemmu_u8)(int64_t n, const uint8_t *u, int nr, const sl_q8x4_t *x, int nc,
                               float *out, size_t os) {
    const int64_t nb = n / 32;
    for (int r = 0; r < nr; r += 8) {
        const uint8_t *pn = u + (size_t)(r / 8) * (size_t)nb * SL_U_PANEL_BLOCK;
        __m256 f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *pb = pn + (size_t)b * SL_U_PANEL_BLOCK;
            const __m256i *q = (const __m256i *)(pb + 64);
            const sl_q8x4_t *xb = x + b;
            __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
            for (int g = 0; g < 8; g++) {
                const __m256i w = _mm256_load_si256(q + g);
                i0 = X8V_DPBUSD(i0, w, _mm256_set1_epi32(x8_bytes4(xb->qs[0] + 4 * g)));
                i1 = X8V_DPBUSD(i1, w, _mm256_set1_epi32(x8_bytes4(xb->qs[1] + 4 * g)));
                i2 = X8V_DPBUSD(i2, w, _mm256_set1_epi32(x8_bytes4(xb->qs[2] + 4 * g)));
                i3 = X8V_DPBUSD(i3, w, _mm256_set1_epi32(x8_bytes4(xb->qs[3] + 4 * g)));
            }
            const __m256 d = _mm256_load_ps((const float *)pb),
                         m = _mm256_load_ps((const float *)pb + 8);
#define X8V_ACC(f, i, c)                                                                           \
    f = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb->d[c])), _mm256_cvtepi32_ps(i),   \
                        f);                                                                        \
    f = _mm256_fmadd_ps(m, _mm256_broadcast_ss(&xb->s[c]), f)
            X8V_ACC(f0, i0, 0);
            X8V_ACC(f1, i1, 1);
            X8V_ACC(f2, i2, 2);
            X8V_ACC(f3, i3, 3);
#undef X8V_ACC
        }
        const __m256 acc[4] = {f0, f1, f2, f3};
        const int k = SL_MIN(8, nr - r);
        for (int c = 0; c < nc; c++) {
            float *o = out + (size_t)c * os + (size_t)r;
            if (k == 8) {
                _mm256_storeu_ps(o, acc[c]);
            } else {
                float tmp[8];
                _mm256_storeu_ps(tmp, acc[c]);
                memcpy(o, tmp, sizeof(float) * (size_t)k);
            }
        }
    }
}

/* Installs these kernels over the table's AVX2 ones (which must be there:
 * the x8 packers and unpackers stay the AVX2 ones). */
static void X8V_NAME(fill)(sl_kern_table_t *t) {
    t->x8_dot[SL_TYPE_Q8_0] = X8V_NAME(x8_dot_q8_0);
    t->x8_gemm[SL_TYPE_Q8_0] = X8V_NAME(x8_gemm_q8_0);
    t->x8_dot[SL_TYPE_Q5_0] = X8V_NAME(x8_dot_q5_0);
    t->x8_dot[SL_TYPE_Q4_0] = X8V_NAME(x8_dot_q4_0);
    const sl_type_t u8[] = {SL_TYPE_Q4_0, SL_TYPE_Q4_1, SL_TYPE_Q5_0, SL_TYPE_Q5_1};
    for (size_t i = 0; i < sizeof u8 / sizeof u8[0]; i++)
        if (t->gemmu[u8[i]]) t->gemmu[u8[i]] = X8V_NAME(gemmu_u8);
}
