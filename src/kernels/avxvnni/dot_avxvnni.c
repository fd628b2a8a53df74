/*
 * dot_avxvnni.c — the x8_vnni.h kernels with the VEX-encoded vpdpbusd of
 * AVX-VNNI (Alder Lake and later client cores, the E-core Xeons), for CPUs
 * that have it without AVX-512. cpu.c lays them over the AVX2 table when
 * CPUID reports AVX-VNNI; everything else stays AVX2. Built with -mavx2
 * -mfma -mf16c -mbmi2 -mavxvnni (Makefile); avx2/vnni_emul.c tests the same
 * source on any AVX2 CPU.
 */
#include "kernels/kern_impl.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__AVXVNNI__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#define X8V_DPBUSD(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#define X8V_NAME(name) avxvnni_##name
#include "kernels/x8_vnni.h"

bool sl_kern_fill_avxvnni(sl_kern_table_t *t) {
    if (!t->x8_dot[SL_TYPE_Q8_0]) return false; /* not an AVX2 table */
    avxvnni_fill(t);
    return true;
}

#else
bool sl_kern_fill_avxvnni(sl_kern_table_t *t) {
    (void)t;
    return false;
}
#endif
