/*
 * cpu.c — run-time CPU detection and the choice of kernel table.
 *
 * sl_kernels_init() builds one table per ISA level this CPU can run (scalar,
 * then AVX2 over it, then AVX-512 over that; NEON over scalar on arm64) and
 * selects the best, capped by SILICA_ISA=scalar|avx2|avx512|neon. Tests
 * switch levels with sl_kernels_set_isa() to compare SIMD with scalar.
 *
 * x86 detection reads CPUID and XGETBV directly: a feature counts only when
 * the CPU has it and the OS saves its registers (XCR0).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernels/kern_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static sl_kern_table_t tables[4];
static bool isa_ok[4];
static const sl_kern_table_t *current = &tables[SL_ISA_SCALAR];
static sl_isa_t current_isa = SL_ISA_SCALAR;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool avxvnni_on; /* the AVX2 table carries the AVX-VNNI kernels */

#if defined(__x86_64__) || defined(__i386__)
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect_x86(bool *avx2, bool *avx512, bool *avxvnni) {
    unsigned a, b, c, d;
    *avx2 = *avx512 = *avxvnni = false;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29),
         avx = c & (1u << 28);
    if (!osxsave || !avx) return;
    uint64_t xcr0 = xgetbv0();
    bool ymm_os = (xcr0 & 0x6) == 0x6;            /* SSE + AVX state */
    bool zmm_os = (xcr0 & 0xe6) == 0xe6;          /* + opmask, ZMM_Hi256, Hi16_ZMM */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    bool has_avx2 = b & (1u << 5), bmi2 = b & (1u << 8);
    bool f512 = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    bool vnni = c & (1u << 11);
    *avx2 = ymm_os && has_avx2 && fma && f16c && bmi2;
    /* The avx512/ files are built with VNNI enabled, so the level needs it. */
    *avx512 = *avx2 && zmm_os && f512 && dq && bw && vl && vnni;
    /* AVX-VNNI: CPUID.(7,1):EAX bit 4; VEX-encoded, YMM state only */
    if (*avx2 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) *avxvnni = (a & (1u << 4)) != 0;
}

bool sl_cpu_has_avx512bf16(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return (a & (1u << 5)) != 0;
}
#else
bool sl_cpu_has_avx512bf16(void) {
    return false;
}
#endif

static sl_isa_t isa_from_env(void) {
    const char *e = getenv("SILICA_ISA");
    if (!e || !*e) return (sl_isa_t)-1;
    if (!strcasecmp(e, "scalar")) return SL_ISA_SCALAR;
    if (!strcasecmp(e, "avx2")) return SL_ISA_AVX2;
    if (!strcasecmp(e, "avx512")) return SL_ISA_AVX512;
    if (!strcasecmp(e, "neon")) return SL_ISA_NEON;
    return (sl_isa_t)-1;
}

static void do_init(void) {
    sl_kern_fill_scalar(&tables[SL_ISA_SCALAR]);
    isa_ok[SL_ISA_SCALAR] = true;
    sl_isa_t best = SL_ISA_SCALAR;
#if defined(__x86_64__) || defined(__i386__)
    bool avx2, avx512, avxvnni;
    detect_x86(&avx2, &avx512, &avxvnni);
    if (avx2) {
        tables[SL_ISA_AVX2] = tables[SL_ISA_SCALAR];
        isa_ok[SL_ISA_AVX2] = sl_kern_fill_avx2(&tables[SL_ISA_AVX2]);
        if (isa_ok[SL_ISA_AVX2]) best = SL_ISA_AVX2;
        /* the AVX2 level takes the vpdpbusd kernels where AVX-VNNI exists */
        if (isa_ok[SL_ISA_AVX2] && avxvnni) avxvnni_on = sl_kern_fill_avxvnni(&tables[SL_ISA_AVX2]);
    }
    if (avx512 && isa_ok[SL_ISA_AVX2]) {
        tables[SL_ISA_AVX512] = tables[SL_ISA_AVX2];
        isa_ok[SL_ISA_AVX512] = sl_kern_fill_avx512(&tables[SL_ISA_AVX512]);
        if (isa_ok[SL_ISA_AVX512]) best = SL_ISA_AVX512;
    }
#elif defined(__aarch64__)
    tables[SL_ISA_NEON] = tables[SL_ISA_SCALAR];
    isa_ok[SL_ISA_NEON] = sl_kern_fill_neon(&tables[SL_ISA_NEON]);
    if (isa_ok[SL_ISA_NEON]) best = SL_ISA_NEON;
#endif
    sl_isa_t cap = isa_from_env();
    if (cap != (sl_isa_t)-1) {
        if (cap == SL_ISA_NEON || best == SL_ISA_NEON) {
            if (cap == SL_ISA_SCALAR) best = SL_ISA_SCALAR;
        } else if (cap < best) {
            best = cap;
        }
    }
    current_isa = best;
    current = &tables[best];
}

void sl_kernels_init(void) {
    pthread_once(&init_once, do_init);
}

void sl_kern_use_table(const sl_kern_table_t *t) {
    sl_kernels_init();
    current = t ? t : &tables[current_isa];
}

const char *sl_kernels_desc(void) {
    const sl_isa_t isa = sl_kernels_isa();
    return isa == SL_ISA_AVX2 && avxvnni_on ? "avx2+avx-vnni" : sl_isa_name(isa);
}

const sl_kern_table_t *sl_kern_table(void) {
    sl_kernels_init();
    return current;
}

sl_isa_t sl_kernels_isa(void) {
    sl_kernels_init();
    return current_isa;
}

const char *sl_isa_name(sl_isa_t isa) {
    switch (isa) {
    case SL_ISA_SCALAR: return "scalar";
    case SL_ISA_AVX2: return "avx2";
    case SL_ISA_AVX512: return "avx512";
    case SL_ISA_NEON: return "neon";
    }
    return "?";
}

bool sl_isa_supported(sl_isa_t isa) {
    sl_kernels_init();
    return (unsigned)isa < 4 && isa_ok[isa];
}

sl_isa_t sl_kernels_set_isa(sl_isa_t isa) {
    sl_kernels_init();
    sl_isa_t prev = current_isa;
    if (sl_isa_supported(isa)) {
        current_isa = isa;
        current = &tables[isa];
    }
    return prev;
}
