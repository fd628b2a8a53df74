/*
 * x8_vnni.h — the x8-panel and unpacked-row kernels written for vpdpbusd
 * (AVX-512 VNNI, AVX-VNNI): u8 × s8, four products summed straight into s32 — one
 * instruction where AVX2 needs vpmaddubsw, vpmaddwd and an add, and no s16
 * pair sum that could saturate.
 *
 * Signed q8_0 codes are made unsigned by flipping their top bit, u = w + 128
 * (one XOR per code vector, shared by every token in the GEMM); the extra
 * 128 · Σx comes off once per block through the activation's s = d · Σq, as
 * the 4/5-bit types' offsets already do. q5_0 / q4_0 codes are unsigned as
 * they are.
 *
 * This file is included once per instance, each time after defining
 *   X8V_DPBUSD(acc, u, s)  acc + Σ of each 4 u8 × s8 products, per s32 lane
 *   X8V_NAME(name)         the name of an instance's function
 * by avx512/dot_avx512.c (EVEX vpdpbusd), avxvnni/dot_avxvnni.c (the VEX
 * form of AVX-VNNI) and avx2/vnni_emul.c (an exact AVX2 emulation, so that
 * the kernels' logic is tested against the scalar reference on machines
 * without VNNI). X8V_NAME(fill) installs an instance's kernels in a table.
 */
#include "kernels/kern_impl.h"
#include "kernels/x8_simd.h"

/* Decode, q8_0: the 8 rows of one panel · one token. Two chains of
 * vpdpbusd (even / odd groups) keep two multiplies in flight. */
static void X8V_NAME(x8_dot_q8_0)(int64_t n, const void *panel, const void *vx, float *out) {
    const sl_q8f_t *x = vx;
    const int64_t nb = n / 32;
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    __m256 acc = _mm256_setzero_ps(), cor = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m256i *q = (const __m256i *)SL_X8_Q(panel, b);
        const int8_t *xq = x[b].qs;
        __m256i i0 = _mm256_setzero_si256(), i1 = i0;
#pragma GCC unroll 4
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

/* One 8-row panel × the 4 tokens of a group, into acc[c] (8 rows each).
 * q8: an x8 q8_0 panel — f16 scales, codes made unsigned by flipping the
 * top bit (one XOR per code vector, shared by the 4 tokens), offset
 * −128 · d · s (128 · d is exact: a power of two times the scale); else an
 * unpacked panel (SL_U_PANEL_BLOCK) of unsigned codes — float d, offset
 * m · s. Per code vector and token one vpdpbusd against the token's 4
 * broadcast bytes; per block and token one convert + FMA and the offset. */
static inline __attribute__((always_inline)) void
X8V_NAME(panel4)(bool q8, int64_t nb, const uint8_t *pn, const sl_q8x4_t *x, __m256 acc[4], sl_pf_t *pf) {
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    const size_t bsz = q8 ? SL_X8_Q8_0_BLOCK : SL_U_PANEL_BLOCK;
    __m256 f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pb = pn + (size_t)b * bsz;
        const __m256i *q = (const __m256i *)(pb + (q8 ? 16 : 64));
        const sl_q8x4_t *xb = x + b;
        x8_pf(pf);
        /* even groups into i, odd into j: 8 independent vpdpbusd chains,
         * enough to cover its latency (4 chains left it latency-bound) */
        __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0, j0 = i0, j1 = i0, j2 = i0, j3 = i0;
#pragma GCC unroll 4
        for (int g = 0; g < 8; g += 2) {
            __m256i w = _mm256_loadu_si256(q + g), v = _mm256_loadu_si256(q + g + 1);
            if (q8) w = _mm256_xor_si256(w, flip), v = _mm256_xor_si256(v, flip);
#define X8V_G(i, j, c)                                                                 \
    i = X8V_DPBUSD(i, w, _mm256_set1_epi32(x8_bytes4(xb->qs[c] + 4 * g)));            \
    j = X8V_DPBUSD(j, v, _mm256_set1_epi32(x8_bytes4(xb->qs[c] + 4 * g + 4)))
            X8V_G(i0, j0, 0);
            X8V_G(i1, j1, 1);
            X8V_G(i2, j2, 2);
            X8V_G(i3, j3, 3);
#undef X8V_G
        }
        i0 = _mm256_add_epi32(i0, j0);
        i1 = _mm256_add_epi32(i1, j1);
        i2 = _mm256_add_epi32(i2, j2);
        i3 = _mm256_add_epi32(i3, j3);
        __m256 d, off;
        if (q8) {
            d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)pb));
            off = _mm256_mul_ps(d, _mm256_set1_ps(-128.0f));
        } else {
            d = _mm256_load_ps((const float *)pb);
            off = _mm256_load_ps((const float *)pb + 8);
        }
#define X8V_ACC(f, i, c)                                                                           \
    f = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb->d[c])), _mm256_cvtepi32_ps(i),   \
                        f);                                                                        \
    f = _mm256_fmadd_ps(off, _mm256_broadcast_ss(&xb->s[c]), f)
        X8V_ACC(f0, i0, 0);
        X8V_ACC(f1, i1, 1);
        X8V_ACC(f2, i2, 2);
        X8V_ACC(f3, i3, 3);
#undef X8V_ACC
    }
    acc[0] = f0;
    acc[1] = f1;
    acc[2] = f2;
    acc[3] = f3;
}

/* Many tokens, q8_0: np x8 panels × the nc (<= 4) tokens of one group. */
static void X8V_NAME(x8_gemm_q8_0)(int64_t n, const void *panels, int np, const sl_q8x4_t *x,
                                   int nc, float *out, size_t os, sl_pf_t *pf) {
    const int64_t nb = n / 32;
    for (int p = 0; p < np; p++) {
        __m256 acc[4];
        X8V_NAME(panel4)
        (true, nb, (const uint8_t *)panels + (size_t)p * (size_t)nb * SL_X8_Q8_0_BLOCK, x, acc, pf);
        x8_store_rows(out + (size_t)p * 8, os, 8, acc, nc);
    }
}

/* Decode, q5_0 / q4_0 (x8_dot_q4_with): unsigned codes straight into
 * vpdpbusd, two chains (even / odd groups). */
static inline __m256i X8V_NAME(idot_u8)(const __m256i c[8], const int8_t *xq) {
    __m256i i0 = _mm256_setzero_si256(), i1 = i0;
#pragma GCC unroll 4
    for (int g = 0; g < 8; g += 2) {
        i0 = X8V_DPBUSD(i0, c[g], _mm256_set1_epi32(x8_bytes4(xq + 4 * g)));
        i1 = X8V_DPBUSD(i1, c[g + 1], _mm256_set1_epi32(x8_bytes4(xq + 4 * g + 4)));
    }
    return _mm256_add_epi32(i0, i1);
}
static void X8V_NAME(x8_dot_q5_0)(int64_t n, const void *panel, const void *x, float *out) {
    x8_dot_q4_with(true, false, n, panel, x, out, X8V_NAME(idot_u8));
}
static void X8V_NAME(x8_dot_q4_0)(int64_t n, const void *panel, const void *x, float *out) {
    x8_dot_q4_with(false, false, n, panel, x, out, X8V_NAME(idot_u8));
}

/* Many tokens over unpacked rows (SL_U_PANEL_BLOCK panels) of unsigned
 * codes — q4_0, q4_1, q5_0, q5_1, and x8 q5_0 / q4_0 expanded: nr rows ×
 * the nc (<= 4) tokens of one group, a panel at a time. */
static void X8V_NAME(gemmu_u8)(int64_t n, const uint8_t *u, int nr, const sl_q8x4_t *x, int nc,
                               float *out, size_t os) {
    const int64_t nb = n / 32;
    for (int r = 0; r < nr; r += 8) {
        __m256 acc[4];
        X8V_NAME(panel4)(false, nb, u + (size_t)(r / 8) * (size_t)nb * SL_U_PANEL_BLOCK, x, acc, NULL);
        x8_store_rows(out + (size_t)r, os, SL_MIN(8, nr - r), acc, nc);
    }
}

/* Many tokens over x8 q4_K / q5_K panels (five: 5-bit codes): the 8 rows
 * of one panel · 4 q8_K rows x[t] (x8_dot4). Per 32-element sub-block the
 * 8 code vectors are expanded once for the 4 tokens; each token's 8
 * vpdpbusd (two chains: even / odd groups) give the rows' sums in s32,
 * times the rows' 6-bit scales (vpmulld) — the same integers as the AVX2
 * kernels' vpmaddwd against the scales, so decode (x8_dot, AVX2) and
 * batches agree bit for bit. The mins against the q8_K bsums as there. */
static inline __attribute__((always_inline)) void X8V_NAME(q4k_dots4)(bool five, int64_t n, const uint8_t *panel,
                                                                      const sl_block_q8_K *const x[4],
                                                                      __m256 out[4]) {
    const size_t bsz = five ? SL_X8_Q5_K_BLOCK : SL_X8_Q4_K_BLOCK, sbsz = five ? 160 : 128;
    __m256 acc[4];
    for (int t = 0; t < 4; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *blk = panel + (size_t)i * bsz;
        uint8_t sc[64], mn[64];
        x8k_scales(blk, sc, mn);
        __m256i sumi[4], summ[4];
        for (int t = 0; t < 4; t++) sumi[t] = summ[t] = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int j = 0; j < 8; j++) {
            __m256i c[8];
            x8_nibbles(blk + 128 + sbsz * j, c);
            if (five) x8k_fifth(blk + 128 + sbsz * j + 128, c);
            const __m256i scj = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sc + 8 * j)));
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const int8_t *xq = x[t][i].qs + 32 * j;
                __m256i a = _mm256_setzero_si256(), b = a;
#pragma GCC unroll 4
                for (int g = 0; g < 8; g += 2) {
                    a = X8V_DPBUSD(a, c[g], _mm256_set1_epi32(x8_bytes4(xq + 4 * g)));
                    b = X8V_DPBUSD(b, c[g + 1], _mm256_set1_epi32(x8_bytes4(xq + 4 * g + 4)));
                }
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_mullo_epi32(_mm256_add_epi32(a, b), scj));
            }
            const __m256i mnj = x8k_pairs(mn + 8 * j);
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                int32_t bs;
                memcpy(&bs, x[t][i].bsums + 2 * j, 4);
                summ[t] = _mm256_add_epi32(summ[t], _mm256_madd_epi16(mnj, _mm256_set1_epi32(bs)));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16)));
        for (int t = 0; t < 4; t++) {
            const __m256 dx = _mm256_set1_ps(x[t][i].d);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dm, dx), _mm256_cvtepi32_ps(summ[t]), acc[t]);
        }
    }
    for (int t = 0; t < 4; t++) out[t] = acc[t];
}

static inline __attribute__((always_inline)) void X8V_NAME(k45_dot4)(bool five, int64_t n, const void *panel,
                                                                     const void *vx, size_t xs, int nc, float *out,
                                                                     size_t os) {
    const sl_block_q8_K *x[4];
    x8k_tokens(vx, xs, nc, x);
    __m256 r[4];
    X8V_NAME(q4k_dots4)(five, n, panel, x, r);
    for (int t = 0; t < nc; t++) _mm256_storeu_ps(out + (size_t)t * os, r[t]);
}
static void X8V_NAME(x8_dot4_q4_K)(int64_t n, const void *panel, const void *vx, size_t xs, int nc, float *out,
                                   size_t os) {
    X8V_NAME(k45_dot4)(false, n, panel, vx, xs, nc, out, os);
}
static void X8V_NAME(x8_dot4_q5_K)(int64_t n, const void *panel, const void *vx, size_t xs, int nc, float *out,
                                   size_t os) {
    X8V_NAME(k45_dot4)(true, n, panel, vx, xs, nc, out, os);
}

/* Many tokens over x8 q6_K panels: as q4k_dots4, per 16-element half of
 * a sub-block (its own int8 scale): 4 vpdpbusd per token in two chains,
 * times the rows' scales (vpmulld); the −32 offset against the bsums as
 * the AVX2 kernel — the same integers, so decode and batches agree. */
static void X8V_NAME(x8_dot4_q6_K)(int64_t n, const void *panel, const void *vx, size_t xs, int nc, float *out,
                                   size_t os) {
    const sl_block_q8_K *x[4];
    x8k_tokens(vx, xs, nc, x);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc[4];
    for (int t = 0; t < 4; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SL_QK_K; i++) {
        const uint8_t *blk = (const uint8_t *)panel + (size_t)i * SL_X8_Q6_K_BLOCK;
        __m256i sum[4];
        for (int t = 0; t < 4; t++) sum[t] = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int j = 0; j < 8; j++) {
            /* int16 lanes 2r, 2r + 1: row r's scales 2j, 2j + 1 */
            const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 16 + 16 * j)));
            const uint8_t *cb = blk + 144 + 192 * j;
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m256i hb = _mm256_loadu_si256((const __m256i *)(cb + 128 + 32 * h));
                const __m256i sh = h ? _mm256_srai_epi32(sc, 16) : _mm256_srai_epi32(_mm256_slli_epi32(sc, 16), 16);
                __m256i c[4];
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    const __m256i nb = _mm256_loadu_si256((const __m256i *)(cb + 32 * k));
                    c[k] = _mm256_or_si256(_mm256_and_si256(h ? _mm256_srli_epi16(nb, 4) : nb, m4),
                                           x8_bits_to4(hb, 2 * k, 0x30));
                }
#pragma GCC unroll 4
                for (int t = 0; t < 4; t++) {
                    const int8_t *xq = x[t][i].qs + 32 * j + 16 * h;
                    __m256i a = X8V_DPBUSD(_mm256_setzero_si256(), c[0], _mm256_set1_epi32(x8_bytes4(xq)));
                    __m256i b = X8V_DPBUSD(_mm256_setzero_si256(), c[1], _mm256_set1_epi32(x8_bytes4(xq + 4)));
                    a = X8V_DPBUSD(a, c[2], _mm256_set1_epi32(x8_bytes4(xq + 8)));
                    b = X8V_DPBUSD(b, c[3], _mm256_set1_epi32(x8_bytes4(xq + 12)));
                    sum[t] = _mm256_add_epi32(sum[t], _mm256_mullo_epi32(_mm256_add_epi32(a, b), sh));
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                int32_t bs;
                memcpy(&bs, x[t][i].bsums + 2 * j, 4);
                sum[t] = _mm256_sub_epi32(sum[t], _mm256_slli_epi32(_mm256_madd_epi16(sc, _mm256_set1_epi32(bs)), 5));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        for (int t = 0; t < 4; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[t][i].d)), _mm256_cvtepi32_ps(sum[t]), acc[t]);
    }
    for (int t = 0; t < nc; t++) _mm256_storeu_ps(out + (size_t)t * os, acc[t]);
}

/* Installs these kernels over the table's AVX2 ones (which must be there:
 * the x8 packers and unpackers stay the AVX2 ones). */
static void X8V_NAME(fill)(sl_kern_table_t *t) {
    t->x8_dot[SL_TYPE_Q8_0] = X8V_NAME(x8_dot_q8_0);
    t->x8_gemm[SL_TYPE_Q8_0] = X8V_NAME(x8_gemm_q8_0);
    t->x8_dot[SL_TYPE_Q5_0] = X8V_NAME(x8_dot_q5_0);
    t->x8_dot[SL_TYPE_Q4_0] = X8V_NAME(x8_dot_q4_0);
    t->x8_dot4[SL_TYPE_Q4_K] = X8V_NAME(x8_dot4_q4_K);
    t->x8_dot4[SL_TYPE_Q5_K] = X8V_NAME(x8_dot4_q5_K);
    t->x8_dot4[SL_TYPE_Q6_K] = X8V_NAME(x8_dot4_q6_K);
    const sl_type_t u8[] = {SL_TYPE_Q4_0, SL_TYPE_Q4_1, SL_TYPE_Q5_0, SL_TYPE_Q5_1};
    for (size_t i = 0; i < sizeof u8 / sizeof u8[0]; i++)
        if (t->gemmu[u8[i]]) t->gemmu[u8[i]] = X8V_NAME(gemmu_u8);
}
