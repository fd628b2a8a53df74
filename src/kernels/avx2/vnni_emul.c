/*
 * vnni_emul.c — the VNNI and AVX-512 kernels over exact AVX2 emulations of
 * their instructions. Never part of a table that cpu.c selects: they are
 * slower than the AVX2 kernels. Tests install them over a copy of the AVX2
 * table to check the kernels' logic — layouts, offsets, masks, tails —
 * against the scalar reference on CPUs that lack the instructions:
 *   sl_kern_fill_vnni_emul    x8_vnni.h (as AVX-VNNI CPUs run it)
 *   sl_kern_fill_avx512_emul  x8_vnni.h + avx512_body.h (the avx512 level)
 * avx512/ and avxvnni/ compile the same sources with the real
 * instructions.
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

/* 16 floats as two AVX2 halves (lanes 0-7, 8-15) */
typedef struct {
    __m256 lo, hi;
} emu_f512;

static inline emu_f512 emu_zero(void) {
    return (emu_f512){_mm256_setzero_ps(), _mm256_setzero_ps()};
}
static inline emu_f512 emu_loadu(const float *p) {
    return (emu_f512){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
}
static inline emu_f512 emu_load_f16(const sl_f16_t *p) {
    return (emu_f512){_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)),
                      _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 8)))};
}
/* bf16 → f32 is the 16 bits moved to the top of the word */
static inline __m256 emu_bf16x8(const sl_bf16_t *p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
static inline emu_f512 emu_load_bf16(const sl_bf16_t *p) {
    return (emu_f512){emu_bf16x8(p), emu_bf16x8(p + 8)};
}
static inline emu_f512 emu_fmadd(emu_f512 a, emu_f512 b, emu_f512 c) {
    return (emu_f512){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
static inline emu_f512 emu_add(emu_f512 a, emu_f512 b) {
    return (emu_f512){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)};
}
static inline float emu_hsum(emu_f512 v) {
    return hsum8(_mm256_add_ps(v.lo, v.hi));
}
/* byte j of v where bit j of k is set, else 0: each byte's mask bit moved
 * to its top bit (the byte's own bit of the broadcast mask, shifted) */
static inline __m256i emu_maskz_mov_epi8(uint32_t k, __m256i v) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i kb = _mm256_shuffle_epi8(_mm256_set1_epi32((int)k), shuf);
    const __m256i sel = _mm256_cmpeq_epi8(_mm256_and_si256(kb, bit), bit);
    return _mm256_and_si256(sel, v);
}

/* 16 s32 as two AVX2 halves */
typedef struct {
    __m256i lo, hi;
} emu_i512;

static inline emu_i512 emu_i_load2(const void *p, const void *q) {
    return (emu_i512){_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)q)};
}
static inline emu_i512 emu_i_bcast4(uint32_t v) {
    return (emu_i512){_mm256_set1_epi32((int)v), _mm256_set1_epi32((int)v)};
}
static inline emu_i512 emu_i_xor80(emu_i512 v) {
    const __m256i f = _mm256_set1_epi8((char)0x80);
    return (emu_i512){_mm256_xor_si256(v.lo, f), _mm256_xor_si256(v.hi, f)};
}
static inline emu_i512 emu_i_add(emu_i512 a, emu_i512 b) {
    return (emu_i512){_mm256_add_epi32(a.lo, b.lo), _mm256_add_epi32(a.hi, b.hi)};
}
static inline emu_i512 emu_dpbusd512(emu_i512 acc, emu_i512 u, emu_i512 s) {
    return (emu_i512){dpbusd_avx2(acc.lo, u.lo, s.lo), dpbusd_avx2(acc.hi, u.hi, s.hi)};
}
static inline emu_f512 emu_cvt(emu_i512 i) {
    return (emu_f512){_mm256_cvtepi32_ps(i.lo), _mm256_cvtepi32_ps(i.hi)};
}
static inline emu_f512 emu_load2_ps(const float *p, const float *q) {
    return (emu_f512){_mm256_loadu_ps(p), _mm256_loadu_ps(q)};
}
static inline emu_f512 emu_load2_ph(const void *p, const void *q) {
    return (emu_f512){_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)),
                      _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)q))};
}
static inline emu_f512 emu_set1(float f) {
    return (emu_f512){_mm256_set1_ps(f), _mm256_set1_ps(f)};
}
static inline emu_f512 emu_mul(emu_f512 a, emu_f512 b) {
    return (emu_f512){_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)};
}
static inline void emu_storeu(float *p, emu_f512 v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}

#define EMU_I2(op) \
    static inline emu_i512 emu_i_##op(emu_i512 a, emu_i512 b) { \
        return (emu_i512){_mm256_##op(a.lo, b.lo), _mm256_##op(a.hi, b.hi)}; \
    }
EMU_I2(and_si256)
EMU_I2(or_si256)
EMU_I2(sub_epi32)
EMU_I2(mullo_epi32)
EMU_I2(madd_epi16)
#undef EMU_I2
#define EMU_SH(v, op, k) ((emu_i512){_mm256_##op((v).lo, k), _mm256_##op((v).hi, k)})

#define A512_NAME(name) emul512_##name
#define A512_F emu_f512
#define A512_ZERO() emu_zero()
#define A512_LOADU(p) emu_loadu(p)
#define A512_LOAD_F16(p) emu_load_f16(p)
#define A512_LOAD_BF16(p) emu_load_bf16(p)
#define A512_FMADD(a, b, c) emu_fmadd(a, b, c)
#define A512_ADD(a, b) emu_add(a, b)
#define A512_HSUM(v) emu_hsum(v)
#define A512_MASKZ_MOV_EPI8(k, v) emu_maskz_mov_epi8(k, v)
#define A512_I emu_i512
#define A512_I_ZERO() ((emu_i512){_mm256_setzero_si256(), _mm256_setzero_si256()})
#define A512_I_LOAD2(p, q) emu_i_load2(p, q)
#define A512_I_BCAST4(v) emu_i_bcast4(v)
#define A512_I_XOR80(v) emu_i_xor80(v)
#define A512_I_ADD(a, b) emu_i_add(a, b)
#define A512_DPBUSD(acc, u, s) emu_dpbusd512(acc, u, s)
#define A512_CVT(i) emu_cvt(i)
#define A512_LOAD2_PS(p, q) emu_load2_ps(p, q)
#define A512_LOAD2_PH(p, q) emu_load2_ph(p, q)
#define A512_SET1(f) emu_set1(f)
#define A512_MUL(a, b) emu_mul(a, b)
#define A512_STOREU(p, v) emu_storeu(p, v)
#define A512_I_FROM2(l, h) ((emu_i512){l, h})
#define A512_I_SET1_EPI8(c) ((emu_i512){_mm256_set1_epi8((char)(c)), _mm256_set1_epi8((char)(c))})
#define A512_I_AND(a, b) emu_i_and_si256(a, b)
#define A512_I_OR(a, b) emu_i_or_si256(a, b)
#define A512_I_SUB(a, b) emu_i_sub_epi32(a, b)
#define A512_I_SRLI16(v, k) EMU_SH(v, srli_epi16, k)
#define A512_I_SLLI16(v, k) EMU_SH(v, slli_epi16, k)
#define A512_I_SLLI32(v, k) EMU_SH(v, slli_epi32, k)
#define A512_I_SRAI32(v, k) EMU_SH(v, srai_epi32, k)
#define A512_I_MULLO(a, b) emu_i_mullo_epi32(a, b)
#define A512_I_MADD16(a, b) emu_i_madd_epi16(a, b)
#include "kernels/avx512_body.h"

bool sl_kern_fill_vnni_emul(sl_kern_table_t *t) {
    if (!t->x8_dot[SL_TYPE_Q8_0]) return false; /* not an AVX2 table */
    emul_fill(t);
    return true;
}

bool sl_kern_fill_avx512_emul(sl_kern_table_t *t) {
    if (!t->x8_dot[SL_TYPE_Q8_0]) return false;
    emul512_fill(t);
    return true;
}

#else
bool sl_kern_fill_vnni_emul(sl_kern_table_t *t) {
    (void)t;
    return false;
}
bool sl_kern_fill_avx512_emul(sl_kern_table_t *t) {
    (void)t;
    return false;
}
#endif
