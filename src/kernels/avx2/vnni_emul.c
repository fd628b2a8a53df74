/*
 * vnni_emul.c — the x8_vnni.h kernels over an exact AVX2 emulation of
 * vpdpbusd (each byte widened to s16, two vpmaddwd). Never part of a table
 * that cpu.c selects: it is slower than the AVX2 kernels. Tests install it
 * (sl_kern_fill_vnni_emul over a copy of the AVX2 table) to check the VNNI
 * kernels' layout, offsets and tails against the scalar reference on CPUs
 * that lack VNNI; the AVX-512 file compiles the same source with the real
 * instruction.
 */
#include "kernels/kern_impl.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

/* acc + Σ u[4i+k] · s[4i+k] over k < 4, per s32 lane i: u unsigned, s
 * signed bytes. Each product fits s16 (255 · 128), each vpmaddwd pair sum
 * s32 — exact, as vpdpbusd is. */
static inline __m256i dpbusd_avx2(__m256i acc, __m256i u, __m256i s) {
    const __m256i lo = _mm256_set1_epi16(0x00ff);
    const __m256i ue = _mm256_and_si256(u, lo), uo = _mm256_srli_epi16(u, 8);
    const __m256i se = _mm256_srai_epi16(_mm256_slli_epi16(s, 8), 8), so = _mm256_srai_epi16(s, 8);
    return _mm256_add_epi32(acc,
                            _mm256_add_epi32(_mm256_madd_epi16(ue, se), _mm256_madd_epi16(uo, so)));
}

#define X8V_DPBUSD(acc, u, s) dpbusd_avx2(acc, u, s)
#define X8V_NAME(name) emul_##name
#include "kernels/x8_vnni.h"

bool sl_kern_fill_vnni_emul(sl_kern_table_t *t) {
    if (!t->x8_dot[SL_TYPE_Q8_0]) return false; /* not an AVX2 table */
    emul_fill(t);
    return true;
}

#else
bool sl_kern_fill_vnni_emul(sl_kern_table_t *t) {
    (void)t;
    return false;
}
#endif
