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
 * activation quantizers) comes from the AVX2 table. The kernels themselves
 * are in avx512_body.h and x8_vnni.h.
 */
#include "kernels/kern_impl.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && \
    defined(__AVX512VL__) && defined(__AVX512VNNI__) && defined(__F16C__)
#include <immintrin.h>

/* The x8-panel decode and GEMM and the unpacked-row GEMM with vpdpbusd
 * (x8_vnni.h), then this level's own dots and tiles (avx512_body.h);
 * avx2/vnni_emul.c compiles both over AVX2 emulations for the tests. */
#define X8V_DPBUSD(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define X8V_NAME(name) vnni_##name
#include "kernels/x8_vnni.h"

#define A512_NAME(name) a512_##name
#define A512_F __m512
#define A512_ZERO() _mm512_setzero_ps()
#define A512_LOADU(p) _mm512_loadu_ps(p)
#define A512_LOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define A512_LOAD_BF16(p) \
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#define A512_FMADD(a, b, c) _mm512_fmadd_ps(a, b, c)
#define A512_ADD(a, b) _mm512_add_ps(a, b)
#define A512_HSUM(v) _mm512_reduce_add_ps(v)
#define A512_MASKZ_MOV_EPI8(k, v) _mm256_maskz_mov_epi8(k, v)
#define A512_I __m512i
#define A512_I_ZERO() _mm512_setzero_si512()
#define A512_I_LOAD2(p, q) \
    _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p))), \
                       _mm256_loadu_si256((const __m256i *)(q)), 1)
#define A512_I_BCAST4(v) _mm512_set1_epi32((int)(v))
#define A512_I_XOR80(v) _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80))
#define A512_I_ADD(a, b) _mm512_add_epi32(a, b)
#define A512_DPBUSD(acc, u, s) _mm512_dpbusd_epi32(acc, u, s)
#define A512_CVT(i) _mm512_cvtepi32_ps(i)
#define A512_LOAD2_PS(p, q) _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(p)), _mm256_loadu_ps(q), 1)
#define A512_LOAD2_PH(p, q) \
    _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p))), \
                                            _mm_loadu_si128((const __m128i *)(q)), 1))
#define A512_SET1(f) _mm512_set1_ps(f)
#define A512_MUL(a, b) _mm512_mul_ps(a, b)
#define A512_STOREU(p, v) _mm512_storeu_ps(p, v)
#define A512_I_FROM2(lo, hi) _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
#define A512_I_SET1_EPI8(c) _mm512_set1_epi8((char)(c))
#define A512_I_AND(a, b) _mm512_and_si512(a, b)
#define A512_I_OR(a, b) _mm512_or_si512(a, b)
#define A512_I_SUB(a, b) _mm512_sub_epi32(a, b)
#define A512_I_SRLI16(v, k) _mm512_srli_epi16(v, k)
#define A512_I_SLLI16(v, k) _mm512_slli_epi16(v, k)
#define A512_I_SLLI32(v, k) _mm512_slli_epi32(v, k)
#define A512_I_SRAI32(v, k) _mm512_srai_epi32(v, k)
#define A512_I_MULLO(a, b) _mm512_mullo_epi32(a, b)
#define A512_I_MADD16(a, b) _mm512_madd_epi16(a, b)
#include "kernels/avx512_body.h"

bool sl_kern_fill_avx512(sl_kern_table_t *t) {
    a512_fill(t);
    return true;
}

#else
bool sl_kern_fill_avx512(sl_kern_table_t *t) {
    (void)t;
    return false;
}
#endif
