/*
 * dot_avx512.c — AVX-512 (F/BW/VL/DQ + VNNI) kernels layered over the AVX2
 * table: 512-bit float dots for f32/f16/bf16 weights, and the q8_0-dotted
 * block types (q4_0, q5_0, q8_0) with vpdpbusd, which multiplies u8 × s8 and
 * accumulates 4 products straight into s32 — no s16 intermediate to
 * saturate and one instruction where AVX2 needs two.
 *
 * cpu.c selects this level only when CPUID reports all of F, BW, VL, DQ and
 * VNNI and the OS saves the ZMM state (the Makefile builds this folder with
 * those features enabled). Everything not overridden here (k-quants, the
 * activation quantizers) comes from the AVX2 table.
 */
#include "kernels/kern_impl.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && \
    defined(__AVX512VL__) && defined(__AVX512VNNI__) && defined(__F16C__)
#include <immintrin.h>
#include <string.h>

static inline float f16(sl_f16_t h) {
    return _cvtsh_ss(h);
}

static inline float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static float dot_f32(int64_t n, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (; i < n; i++) s += w[i] * x[i];
    return s;
}

static float dot_f16(int64_t n, const void *vw, const void *vx) {
    const sl_f16_t *w = vw;
    const float *x = vx;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i))),
                             _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 16))),
                             _mm512_loadu_ps(x + i + 16), a1);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (; i < n; i++) s += f16(w[i]) * x[i];
    return s;
}

static float dot_bf16(int64_t n, const void *vw, const void *vx) {
    const sl_bf16_t *w = vw;
    const float *x = vx;
    __m512 a0 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i wi = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i))), 16);
        a0 = _mm512_fmadd_ps(_mm512_castsi512_ps(wi), _mm512_loadu_ps(x + i), a0);
    }
    float s = _mm512_reduce_add_ps(a0);
    for (; i < n; i++) s += sl_bf16_to_f32(w[i]) * x[i];
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
    __m256i hi = _mm256_maskz_mov_epi8(~(__mmask32)qh, _mm256_set1_epi8((char)0xf0));
    return _mm256_or_si256(nibbles32(b->qs), hi);
}
static inline __m256i unpack_q8_0(const sl_block_q8_0 *b) {
    return _mm256_loadu_si256((const __m256i *)b->qs);
}

/* s8 · s8 over 32 bytes via |w| · sign(x, w), as 8 floats */
static inline __m256 dot_i8(__m256i w, __m256i x) {
    __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
    return _mm256_cvtepi32_ps(p);
}

#define DEF_DOT_Q0(name, btype, unpack)                                                            \
    static float name(int64_t n, const void *vw, const void *vx) {                                 \
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
    static void name(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs,        \
                     int nc, float *out, size_t os) {                                              \
        for (int r = 0; r < nr; r++) {                                                             \
            const btype *wr = (const btype *)((const uint8_t *)w + (size_t)r * ws);                \
            if (nc < 4) {                                                                          \
                for (int c = 0; c < nc; c++)                                                       \
                    out[(size_t)c * os + (size_t)r] = dotfn(n, wr, (const uint8_t *)x + (size_t)c * xs); \
                continue;                                                                          \
            }                                                                                      \
            const sl_block_q8_0 *xr[4];                                                            \
            for (int c = 0; c < 4; c++) xr[c] = (const void *)((const uint8_t *)x + (size_t)c * xs); \
            __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),          \
                           _mm256_setzero_ps()};                                                   \
            for (int64_t i = 0; i < n / 32; i++) {                                                 \
                __m256i wv = unpack(&wr[i]);                                                       \
                __m256i aw = _mm256_abs_epi8(wv);                                                  \
                const float dw = f16(wr[i].d);                                                     \
                for (int c = 0; c < 4; c++) {                                                      \
                    __m256i xv = _mm256_loadu_si256((const __m256i *)xr[c][i].qs);                 \
                    __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, _mm256_sign_epi8(xv, wv)); \
                    a[c] = _mm256_fmadd_ps(_mm256_set1_ps(dw * f16(xr[c][i].d)), _mm256_cvtepi32_ps(p), a[c]); \
                }                                                                                  \
            }                                                                                      \
            for (int c = 0; c < 4; c++) out[(size_t)c * os + (size_t)r] = hsum8(a[c]);             \
        }                                                                                          \
    }

DEF_TILE_Q0(tile_q4_0, sl_block_q4_0, unpack_q4_0, dot_q4_0)
DEF_TILE_Q0(tile_q5_0, sl_block_q5_0, unpack_q5_0, dot_q5_0)
DEF_TILE_Q0(tile_q8_0, sl_block_q8_0, unpack_q8_0, dot_q8_0)

/* The x8-panel decode and GEMM and the unpacked-row GEMM with vpdpbusd
 * (x8_vnni.h; avx2/vnni_emul.c tests the same source on any AVX2 CPU). */
#define X8V_DPBUSD(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define X8V_NAME(name) vnni_##name
#include "kernels/x8_vnni.h"

bool sl_kern_fill_avx512(sl_kern_table_t *t) {
    t->dot[SL_TYPE_F32] = dot_f32;
    t->dot[SL_TYPE_F16] = dot_f16;
    t->dot[SL_TYPE_BF16] = dot_bf16;
    t->dot[SL_TYPE_Q4_0] = dot_q4_0;
    t->dot[SL_TYPE_Q5_0] = dot_q5_0;
    t->dot[SL_TYPE_Q8_0] = dot_q8_0;
    t->tile[SL_TYPE_Q4_0] = tile_q4_0;
    t->tile[SL_TYPE_Q5_0] = tile_q5_0;
    t->tile[SL_TYPE_Q8_0] = tile_q8_0;
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
    vnni_fill(t);
    return true;
}

#else
bool sl_kern_fill_avx512(sl_kern_table_t *t) {
    (void)t;
    return false;
}
#endif
