/* deps: base kernels */
/*
 * test_quant.c — block formats: sizes, f16/bf16 conversion, dequantization of
 * hand-built blocks (packed here from the format's description, not with the
 * code under test), quantize→dequantize error bounds, and the scalar dot
 * products against a float dot of the dequantized rows.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kern_impl.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float frand(void) { /* uniform [-1, 1) */
    return (float)(rnd() & 0xffffff) / 8388608.0f - 1.0f;
}
static float gauss(void) {
    float s = 0;
    for (int i = 0; i < 6; i++) s += frand();
    return s * 0.7f;
}

static void test_sizes_and_names(void) {
    struct { sl_type_t t; int64_t blck; size_t size; const char *name; } want[] = {
        {SL_TYPE_F32, 1, 4, "f32"},      {SL_TYPE_F16, 1, 2, "f16"},
        {SL_TYPE_BF16, 1, 2, "bf16"},    {SL_TYPE_Q4_0, 32, 18, "q4_0"},
        {SL_TYPE_Q4_1, 32, 20, "q4_1"},  {SL_TYPE_Q5_0, 32, 22, "q5_0"},
        {SL_TYPE_Q5_1, 32, 24, "q5_1"},  {SL_TYPE_Q8_0, 32, 34, "q8_0"},
        {SL_TYPE_Q8_1, 32, 36, "q8_1"},  {SL_TYPE_Q2_K, 256, 84, "q2_K"},
        {SL_TYPE_Q3_K, 256, 110, "q3_K"}, {SL_TYPE_Q4_K, 256, 144, "q4_K"},
        {SL_TYPE_Q5_K, 256, 176, "q5_K"}, {SL_TYPE_Q6_K, 256, 210, "q6_K"},
        {SL_TYPE_Q8_K, 256, 292, "q8_K"}, {SL_TYPE_IQ4_NL, 32, 18, "iq4_nl"},
        {SL_TYPE_IQ4_XS, 256, 136, "iq4_xs"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const sl_type_traits_t *tr = sl_type_traits(want[i].t);
        CHECK(tr != NULL);
        if (!tr) continue;
        CHECK(tr->blck == want[i].blck);
        CHECK(tr->type_size == want[i].size);
        CHECK(tr->supported);
        CHECK(strcmp(sl_type_name(want[i].t), want[i].name) == 0);
        sl_type_t back;
        CHECK(sl_type_from_name(want[i].name, &back) == 0 && back == want[i].t);
        CHECK(sl_row_size(want[i].t, want[i].blck * 7) == want[i].size * 7);
        if (want[i].blck > 1) CHECK(sl_row_size(want[i].t, want[i].blck + 1) == 0);
    }
    CHECK(sl_type_traits((sl_type_t)4) == NULL); /* removed q4_2 */
    CHECK(sl_type_traits((sl_type_t)99) == NULL);
    CHECK(strcmp(sl_type_name((sl_type_t)99), "?") == 0);
    sl_type_t t;
    CHECK(sl_type_from_name("Q4_K", &t) == 0 && t == SL_TYPE_Q4_K);
    CHECK(sl_type_from_name("nope", &t) == -1);
    CHECK(sl_type_traits(SL_TYPE_Q4_K)->vec_dot_type == SL_TYPE_Q8_K);
    CHECK(sl_type_traits(SL_TYPE_Q4_1)->vec_dot_type == SL_TYPE_Q8_1);
    CHECK(sl_type_traits(SL_TYPE_Q5_0)->vec_dot_type == SL_TYPE_Q8_0);
}

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_f16_bf16(void) {
    CHECK(sl_f32_to_f16(1.0f) == 0x3c00);
    CHECK(sl_f32_to_f16(-2.0f) == 0xc000);
    CHECK(sl_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(sl_f32_to_f16(65520.0f) == 0x7c00);          /* rounds to inf */
    CHECK(sl_f32_to_f16(0x1.0p-24f) == 0x0001);        /* smallest subnormal */
    CHECK(sl_f32_to_f16(0x1.0p-26f) == 0x0000);        /* underflow */
    CHECK(sl_f32_to_f16(1.0f + 0x1.0p-11f) == 0x3c00); /* tie to even */
    CHECK(sl_f32_to_f16(1.0f + 3 * 0x1.0p-11f) == 0x3c02);
    CHECK((sl_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (sl_f32_to_f16(NAN) & 0x3ff) != 0);
    CHECK(sl_f16_to_f32(0x3555) == 0x1.554p-2f);
    CHECK(sl_f16_to_f32(0x0001) == 0x1.0p-24f);
    CHECK(isinf(sl_f16_to_f32(0xfc00)) && sl_f16_to_f32(0xfc00) < 0);
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sl_f16_to_f32((sl_f16_t)h);
        if (isnan(f)) continue;
        if (sl_f32_to_f16(f) != h) bad++;
    }
    CHECK_MSG(bad == 0, "%d f16 values do not round-trip", bad);
    CHECK(sl_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(sl_f32_to_bf16(bits_f(0x3f808000u)) == 0x3f80); /* tie to even (down) */
    CHECK(sl_f32_to_bf16(bits_f(0x3f818000u)) == 0x3f82); /* tie to even (up) */
    CHECK(sl_f32_to_bf16(bits_f(0x3f808001u)) == 0x3f81);
    CHECK(sl_bf16_to_f32(0xc040) == -3.0f);
    CHECK(isnan(sl_bf16_to_f32(sl_f32_to_bf16(NAN))));
}

/* ---- hand-built blocks ---- */

static void put_f16(uint8_t *p, float f) {
    sl_f16_t h = sl_f32_to_f16(f);
    memcpy(p, &h, 2);
}

static void test_dequant_q4_0_q4_1_q8_0(void) {
    uint8_t b[20];
    float y[32];
    /* q4_0: d, then 16 bytes; element j = low nibble of byte j, j+16 = high. */
    put_f16(b, 0.5f);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    sl_dequantize_row(SL_TYPE_Q4_0, b, y, 32);
    int bad = 0;
    for (int j = 0; j < 16; j++) {
        bad += y[j] != (j - 8) * 0.5f;
        bad += y[j + 16] != (7 - j) * 0.5f;
    }
    CHECK(bad == 0);
    /* q4_1: d, m, then nibbles; value = q * d + m */
    put_f16(b, 0.25f);
    put_f16(b + 2, -1.0f);
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(j | (3 << 4));
    sl_dequantize_row(SL_TYPE_Q4_1, b, y, 32);
    bad = 0;
    for (int j = 0; j < 16; j++) {
        bad += y[j] != j * 0.25f - 1.0f;
        bad += y[j + 16] != 3 * 0.25f - 1.0f;
    }
    CHECK(bad == 0);
    uint8_t c[34];
    put_f16(c, 2.0f);
    for (int j = 0; j < 32; j++) c[2 + j] = (uint8_t)(int8_t)(j * 8 - 127);
    sl_dequantize_row(SL_TYPE_Q8_0, c, y, 32);
    bad = 0;
    for (int j = 0; j < 32; j++) bad += y[j] != (float)(j * 8 - 127) * 2.0f;
    CHECK(bad == 0);
}

static void test_dequant_q5(void) {
    /* q5_0: d, qh (32 bits, bit j = 5th bit of element j), 16 bytes nibbles */
    int L[32];
    for (int j = 0; j < 32; j++) L[j] = (j * 7 + 3) % 32;
    uint8_t b[24];
    put_f16(b, 0.125f);
    uint32_t qh = 0;
    for (int j = 0; j < 32; j++) qh |= (uint32_t)(L[j] >> 4) << j;
    b[2] = qh & 0xff, b[3] = (qh >> 8) & 0xff, b[4] = (qh >> 16) & 0xff, b[5] = qh >> 24;
    for (int j = 0; j < 16; j++) b[6 + j] = (uint8_t)((L[j] & 15) | ((L[j + 16] & 15) << 4));
    float y[32];
    sl_dequantize_row(SL_TYPE_Q5_0, b, y, 32);
    int bad = 0;
    for (int j = 0; j < 32; j++) bad += y[j] != (L[j] - 16) * 0.125f;
    CHECK(bad == 0);
    /* q5_1: d, m, qh, qs */
    put_f16(b, 0.5f);
    put_f16(b + 2, 3.0f);
    b[4] = qh & 0xff, b[5] = (qh >> 8) & 0xff, b[6] = (qh >> 16) & 0xff, b[7] = qh >> 24;
    for (int j = 0; j < 16; j++) b[8 + j] = (uint8_t)((L[j] & 15) | ((L[j + 16] & 15) << 4));
    sl_dequantize_row(SL_TYPE_Q5_1, b, y, 32);
    bad = 0;
    for (int j = 0; j < 32; j++) bad += y[j] != L[j] * 0.5f + 3.0f;
    CHECK(bad == 0);
}

/* q4_K / q5_K scales: 8 (scale, min) pairs of 6 bits in 12 bytes. */
static void pack_scales_k4(uint8_t s[12], const int sc[8], const int mn[8]) {
    memset(s, 0, 12);
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
}

static void test_dequant_q4_K_q5_K(void) {
    int sc[8] = {1, 17, 33, 63, 5, 40, 18, 63}, mn[8] = {0, 9, 63, 2, 47, 16, 31, 1};
    int L[256];
    for (int i = 0; i < 256; i++) L[i] = (i * 13 + i / 7) % 32;
    /* q4_K: d, dmin, scales[12], qs[128]; the 64-element chunk c uses bytes
     * 32c..32c+31: low nibbles are elements 64c.., high nibbles 64c+32.. */
    sl_block_q4_K b4;
    b4.d = sl_f32_to_f16(0.5f);
    b4.dmin = sl_f32_to_f16(0.25f);
    pack_scales_k4(b4.scales, sc, mn);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b4.qs[32 * c + l] = (uint8_t)((L[64 * c + l] & 15) | ((L[64 * c + 32 + l] & 15) << 4));
    float y[256];
    sl_dequantize_row(SL_TYPE_Q4_K, &b4, y, 256);
    int bad = 0;
    for (int i = 0; i < 256; i++) bad += y[i] != 0.5f * sc[i / 32] * (L[i] & 15) - 0.25f * mn[i / 32];
    CHECK_MSG(bad == 0, "%d q4_K mismatches", bad);
    /* q5_K: as q4_K plus qh[32]: bit 2c of qh[l] is the 5th bit of element
     * 64c + l, bit 2c+1 that of element 64c + 32 + l. */
    sl_block_q5_K b5;
    b5.d = sl_f32_to_f16(0.5f);
    b5.dmin = sl_f32_to_f16(0.25f);
    pack_scales_k4(b5.scales, sc, mn);
    memset(b5.qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            b5.qs[32 * c + l] = (uint8_t)((L[64 * c + l] & 15) | ((L[64 * c + 32 + l] & 15) << 4));
            b5.qh[l] |= (uint8_t)(((L[64 * c + l] >> 4) << (2 * c)) | ((L[64 * c + 32 + l] >> 4) << (2 * c + 1)));
        }
    sl_dequantize_row(SL_TYPE_Q5_K, &b5, y, 256);
    bad = 0;
    for (int i = 0; i < 256; i++) bad += y[i] != 0.5f * sc[i / 32] * L[i] - 0.25f * mn[i / 32];
    CHECK_MSG(bad == 0, "%d q5_K mismatches", bad);
}

static void test_dequant_q6_K(void) {
    /* q6_K: ql[128], qh[64], scales[16] int8, d. Per half h (128 elements):
     * ql[64h + l] low nibble = elem 128h+l, high = elem 128h+64+l;
     * ql[64h + 32 + l] low = elem 128h+32+l, high = elem 128h+96+l;
     * qh[32h + l] bits 0-1,2-3,4-5,6-7 = top 2 bits of elems +0,+32,+64,+96. */
    int L[256];
    for (int i = 0; i < 256; i++) L[i] = (i * 37 + 11) % 64;
    sl_block_q6_K b;
    memset(&b, 0, sizeof b);
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int *e = L + 128 * h;
            b.ql[64 * h + l] = (uint8_t)((e[l] & 15) | ((e[l + 64] & 15) << 4));
            b.ql[64 * h + 32 + l] = (uint8_t)((e[l + 32] & 15) | ((e[l + 96] & 15) << 4));
            b.qh[32 * h + l] = (uint8_t)((e[l] >> 4) | ((e[l + 32] >> 4) << 2) |
                                         ((e[l + 64] >> 4) << 4) | ((e[l + 96] >> 4) << 6));
        }
    for (int g = 0; g < 16; g++) b.scales[g] = (int8_t)(g * 17 - 128);
    b.d = sl_f32_to_f16(0.0625f);
    float y[256];
    sl_dequantize_row(SL_TYPE_Q6_K, &b, y, 256);
    int bad = 0;
    for (int i = 0; i < 256; i++) bad += y[i] != 0.0625f * b.scales[i / 16] * (L[i] - 32);
    CHECK_MSG(bad == 0, "%d q6_K mismatches", bad);
}

static void test_dequant_q2_K_q3_K(void) {
    /* Element order of q2_K/q3_K: for half h, shift s (0..3), element
     * 128h + 32s + l (l < 32) sits in bits 2s..2s+1 of qs[32h + l]; the
     * 16-element group g = i / 16 has scale byte g (q2_K: low nibble scale,
     * high nibble min). */
    int L[256];
    for (int i = 0; i < 256; i++) L[i] = (i * 5 + i / 3) % 4;
    sl_block_q2_K b2;
    memset(&b2, 0, sizeof b2);
    for (int i = 0; i < 256; i++) {
        int h = i / 128, s = (i % 128) / 32, l = i % 32;
        b2.qs[32 * h + l] |= (uint8_t)(L[i] << (2 * s));
    }
    for (int g = 0; g < 16; g++) b2.scales[g] = (uint8_t)((g % 16) | (((15 - g) % 16) << 4));
    b2.d = sl_f32_to_f16(0.5f);
    b2.dmin = sl_f32_to_f16(0.125f);
    float y[256];
    sl_dequantize_row(SL_TYPE_Q2_K, &b2, y, 256);
    int bad = 0;
    for (int i = 0; i < 256; i++) {
        int g = i / 16;
        bad += y[i] != 0.5f * (b2.scales[g] & 15) * L[i] - 0.125f * (b2.scales[g] >> 4);
    }
    CHECK_MSG(bad == 0, "%d q2_K mismatches", bad);
    /* q3_K: 3-bit values v = low2 + 4*hbit - 4; hmask[l] bit (4h + s) is the
     * high bit of element 128h + 32s + l; 16 6-bit scales (offset 32): low
     * 4 bits in scales[0..7] (nibble j/8 of byte j%8), high 2 bits in
     * scales[8 + j%4] bits 2*(j/4). */
    int V[256], S[16];
    for (int i = 0; i < 256; i++) V[i] = (i * 3 + i / 5) % 8 - 4;
    for (int g = 0; g < 16; g++) S[g] = g * 4 - 32;
    sl_block_q3_K b3;
    memset(&b3, 0, sizeof b3);
    for (int i = 0; i < 256; i++) {
        int h = i / 128, s = (i % 128) / 32, l = i % 32, u = V[i] + 4;
        b3.qs[32 * h + l] |= (uint8_t)((u & 3) << (2 * s));
        if (u & 4) b3.hmask[l] |= (uint8_t)(1 << (4 * h + s));
    }
    for (int j = 0; j < 16; j++) {
        int u = S[j] + 32;
        b3.scales[j % 8] |= (uint8_t)((u & 15) << (4 * (j / 8)));
        b3.scales[8 + j % 4] |= (uint8_t)((u >> 4) << (2 * (j / 4)));
    }
    b3.d = sl_f32_to_f16(0.25f);
    sl_dequantize_row(SL_TYPE_Q3_K, &b3, y, 256);
    bad = 0;
    for (int i = 0; i < 256; i++) bad += y[i] != 0.25f * S[i / 16] * V[i];
    CHECK_MSG(bad == 0, "%d q3_K mismatches", bad);
}

/* ---- quantize → dequantize ---- */

static double rel_rmse(const float *a, const float *b, int n) {
    double e = 0, s = 0;
    for (int i = 0; i < n; i++) {
        e += (double)(a[i] - b[i]) * (a[i] - b[i]);
        s += (double)a[i] * a[i];
    }
    return sqrt(e / (s + 1e-30));
}

#define Q3K_MAX 0.17 /* ggml's q3_K reaches ~0.15 on this data */
#define Q2K_MAX 0.32 /* and q2_K ~0.29 */
static void test_roundtrip_error(void) {
    struct { sl_type_t t; double max_rel; } cases[] = {
        {SL_TYPE_F16, 0.001},  {SL_TYPE_BF16, 0.005}, {SL_TYPE_Q8_0, 0.006},
        {SL_TYPE_Q8_1, 0.006}, {SL_TYPE_Q8_K, 0.008}, {SL_TYPE_Q6_K, 0.03},
        {SL_TYPE_Q5_0, 0.06},  {SL_TYPE_Q5_1, 0.05},  {SL_TYPE_Q5_K, 0.045},
        {SL_TYPE_Q4_0, 0.12},  {SL_TYPE_Q4_1, 0.10},  {SL_TYPE_Q4_K, 0.09},
        {SL_TYPE_Q3_K, Q3K_MAX}, {SL_TYPE_Q2_K, Q2K_MAX}, {SL_TYPE_IQ4_NL, 0.085}, {SL_TYPE_IQ4_XS, 0.085},
    };
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    for (int i = 0; i < N; i++) x[i] = gauss() * (1.0f + (float)(i / 256));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        CHECK(sl_can_quantize(cases[c].t));
        CHECK(sl_quantize_row(cases[c].t, x, q, N) == 0);
        sl_dequantize_row(cases[c].t, q, y, N);
        double r = rel_rmse(x, y, N);
        CHECK_MSG(r < cases[c].max_rel, "%s rel rmse %g >= %g", sl_type_name(cases[c].t), r,
                  cases[c].max_rel);
    }
    /* q8_0 rounds to nearest: every element within half a step of its block's scale. */
    sl_quantize_row(SL_TYPE_Q8_0, x, q, N);
    sl_dequantize_row(SL_TYPE_Q8_0, q, y, N);
    int bad = 0;
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        float d = amax / 127, d16 = sl_f16_to_f32(sl_f32_to_f16(d));
        for (int j = 0; j < 32; j++) {
            float level = roundf(y[b * 32 + j] / d16); /* the stored integer */
            bad += fabsf(x[b * 32 + j] / d - level) > 0.5f + 1e-5f;
        }
    }
    CHECK(bad == 0);
    /* An all-zero row stays zero; a constant row is exact for q4_1. */
    float z[256] = {0}, zo[256];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sl_quantize_row(cases[c].t, z, q, 256);
        sl_dequantize_row(cases[c].t, q, zo, 256);
        int nz = 0;
        for (int i = 0; i < 256; i++) nz += zo[i] != 0;
        CHECK_MSG(nz == 0, "%s zero row", sl_type_name(cases[c].t));
    }
    /* The k-quant scale search beats the plain max-abs choice: q4_K's error
     * is below q4_1's even with 6-bit scales. */
    sl_quantize_row(SL_TYPE_Q4_K, x, q, N);
    sl_dequantize_row(SL_TYPE_Q4_K, q, y, N);
    double rk = rel_rmse(x, y, N);
    sl_quantize_row(SL_TYPE_Q4_1, x, q, N);
    sl_dequantize_row(SL_TYPE_Q4_1, q, y, N);
    double r1 = rel_rmse(x, y, N);
    CHECK_MSG(rk < r1, "q4_K %g vs q4_1 %g", rk, r1);
    /* the non-linear codebook (denser near zero) with the scale search
     * beats q4_0's evenly spaced levels at the same 4.5 bits */
    sl_quantize_row(SL_TYPE_IQ4_NL, x, q, N);
    sl_dequantize_row(SL_TYPE_IQ4_NL, q, y, N);
    const double rn = rel_rmse(x, y, N);
    sl_quantize_row(SL_TYPE_Q4_0, x, q, N);
    sl_dequantize_row(SL_TYPE_Q4_0, q, y, N);
    const double r0 = rel_rmse(x, y, N);
    CHECK_MSG(rn < r0, "iq4_nl %g vs q4_0 %g", rn, r0);
    CHECK(sl_quantize_row(SL_TYPE_IQ4_XS, x, q, 100) == -1);
    CHECK(sl_quantize_row(SL_TYPE_Q4_K, x, q, 100) == -1);
    CHECK(sl_quantize_row(SL_TYPE_Q2_K, x, q, 100) == -1);
    CHECK(sl_quantize_row(SL_TYPE_I8, x, q, 256) == -1);
}

/* iq4_nl / iq4_xs blocks built by hand: every index decodes to its
 * codebook value (low nibbles elements 0-15, high nibbles 16-31) times the
 * block's scale; iq4_xs's 6-bit sub-block scales split over scales_l and
 * scales_h. */
static void test_dequant_iq4(void) {
    static const int kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    sl_block_iq4_nl b;
    b.d = sl_f32_to_f16(0.5f);
    for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float y[256];
    sl_dequantize_row(SL_TYPE_IQ4_NL, &b, y, 32);
    int bad = 0;
    for (int j = 0; j < 16; j++) bad += y[j] != 0.5f * (float)kv[j] || y[j + 16] != 0.5f * (float)kv[15 - j];
    CHECK(bad == 0);
    sl_block_iq4_xs x;
    memset(&x, 0, sizeof x);
    x.d = sl_f32_to_f16(0.25f);
    const int ls[8] = {0, 63, 32, 33, 31, 47, 16, 5}; /* scale = ls − 32 */
    for (int ib = 0; ib < 8; ib++) {
        x.scales_l[ib / 2] |= (uint8_t)((ls[ib] & 0xf) << (4 * (ib % 2)));
        x.scales_h |= (uint16_t)((ls[ib] >> 4) << (2 * ib));
    }
    for (int i = 0; i < 128; i++) x.qs[i] = (uint8_t)((i * 7) & 0xff);
    sl_dequantize_row(SL_TYPE_IQ4_XS, &x, y, 256);
    bad = 0;
    for (int ib = 0; ib < 8; ib++)
        for (int j = 0; j < 16; j++) {
            const uint8_t q = x.qs[16 * ib + j];
            const float dl = 0.25f * (float)(ls[ib] - 32);
            bad += y[32 * ib + j] != dl * (float)kv[q & 0xf] || y[32 * ib + j + 16] != dl * (float)kv[q >> 4];
        }
    CHECK(bad == 0);
}

/* q2_K / q3_K: the codes are chosen for the final (stored) group scales, so
 * every value decodes to the level of its 16-value group nearest to the
 * input — checked against the distinct levels the group decodes to, which
 * needs no knowledge of how scales are packed. Fewer bits, more error. */
static void test_q2_K_q3_K_quantizers(void) {
    enum { N = 2048 };
    static float x[N], y[N];
    static uint8_t q[N];
    for (int i = 0; i < N; i++) x[i] = gauss() * (1.0f + (float)(i / 512)) + (i % 97 == 0 ? 4.0f : 0.0f);
    const sl_type_t types[] = {SL_TYPE_Q2_K, SL_TYPE_Q3_K};
    const int max_levels[] = {4, 8};
    double err[2];
    for (int k = 0; k < 2; k++) {
        CHECK(sl_quantize_row(types[k], x, q, N) == 0);
        sl_dequantize_row(types[k], q, y, N);
        err[k] = rel_rmse(x, y, N);
        int bad_levels = 0, not_nearest = 0;
        for (int g = 0; g < N / 16; g++) {
            float lv[16];
            int nl = 0;
            for (int l = 0; l < 16; l++) {
                float v = y[16 * g + l];
                int seen = 0;
                for (int m = 0; m < nl; m++) seen |= lv[m] == v;
                if (!seen) lv[nl++] = v;
            }
            bad_levels += nl > max_levels[k];
            for (int l = 0; l < 16; l++) {
                float xv = x[16 * g + l], e = fabsf(xv - y[16 * g + l]);
                for (int m = 0; m < nl; m++)
                    if (fabsf(xv - lv[m]) < e - 1e-4f * (fabsf(xv) + 1)) not_nearest++;
            }
        }
        CHECK_MSG(bad_levels == 0, "%s: groups with too many levels: %d", sl_type_name(types[k]), bad_levels);
        CHECK_MSG(not_nearest == 0, "%s: values not at their nearest level: %d", sl_type_name(types[k]),
                  not_nearest);
    }
    CHECK_MSG(err[1] < err[0], "q3_K %g vs q2_K %g", err[1], err[0]);
    /* A block whose groups are all zero but one: the other groups stay 0. */
    float z[256] = {0};
    for (int l = 0; l < 16; l++) z[32 + l] = (float)(l - 8);
    for (int k = 0; k < 2; k++) {
        sl_quantize_row(types[k], z, q, 256);
        sl_dequantize_row(types[k], q, y, 256);
        int nz = 0;
        for (int i = 0; i < 256; i++) nz += (i < 32 || i >= 48) && y[i] != 0;
        CHECK_MSG(nz == 0, "%s: zero groups decode to nonzero", sl_type_name(types[k]));
        CHECK_MSG(rel_rmse(z + 32, y + 32, 16) < 0.35, "%s: the live group", sl_type_name(types[k]));
    }
}

/* q8_K: bsums are the sums of 16-element groups; q8_1: s = d * sum(qs). */
static void test_activation_blocks(void) {
    float x[512];
    for (int i = 0; i < 512; i++) x[i] = gauss();
    sl_block_q8_K k[2];
    sl_quantize_row(SL_TYPE_Q8_K, x, k, 512);
    int bad = 0;
    for (int b = 0; b < 2; b++)
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += k[b].qs[g * 16 + l];
            bad += s != k[b].bsums[g];
        }
    CHECK(bad == 0);
    sl_block_q8_1 o[16];
    sl_quantize_row(SL_TYPE_Q8_1, x, o, 512);
    bad = 0;
    for (int b = 0; b < 16; b++) {
        int s = 0;
        for (int l = 0; l < 32; l++) s += o[b].qs[l];
        float want = s * sl_f16_to_f32(o[b].d);
        bad += fabsf(sl_f16_to_f32(o[b].s) - want) > fabsf(want) * 1e-3f + 1e-6f;
    }
    CHECK(bad == 0);
}

/* ---- dot products (scalar reference) against float dots ---- */

static void random_blocks(sl_type_t t, uint8_t *dst, int64_t n) {
    /* Random bytes with small, sane f16 scales at the d/dmin offsets. */
    size_t bytes = sl_row_size(t, n);
    for (size_t i = 0; i < bytes; i++) dst[i] = (uint8_t)rnd();
    size_t bs = sl_type_traits(t)->type_size;
    for (size_t off = 0; off < bytes; off += bs) {
        uint8_t *b = dst + off;
        if (t == SL_TYPE_Q2_K) {
            put_f16(b + 80, 0.01f * (1 + (float)(rnd() % 8)));
            put_f16(b + 82, 0.005f * (float)(rnd() % 8));
        } else if (t == SL_TYPE_Q3_K) {
            put_f16(b + 108, 0.01f * (1 + (float)(rnd() % 8)));
        }
    }
}

static void test_vec_dot_scalar(void) {
    sl_isa_t prev = sl_kernels_set_isa(SL_ISA_SCALAR);
    sl_type_t types[] = {SL_TYPE_F32,  SL_TYPE_F16,  SL_TYPE_BF16, SL_TYPE_Q4_0, SL_TYPE_Q4_1,
                         SL_TYPE_Q5_0, SL_TYPE_Q5_1, SL_TYPE_Q8_0, SL_TYPE_Q2_K, SL_TYPE_Q3_K,
                         SL_TYPE_Q4_K, SL_TYPE_Q5_K, SL_TYPE_Q6_K, SL_TYPE_Q8_K};
    enum { N = 1024 };
    static float w[N], x[N], wd[N], xd[N];
    static uint8_t wq[N * 4], xq[N * 4];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        sl_type_t t = types[ti];
        sl_type_t vt = sl_type_traits(t)->vec_dot_type;
        for (int rep = 0; rep < 3; rep++) {
            for (int i = 0; i < N; i++) {
                w[i] = gauss();
                x[i] = gauss() * (rep == 2 ? 100.0f : 1.0f);
            }
            if (sl_can_quantize(t))
                CHECK(sl_quantize_row(t, w, wq, N) == 0);
            else
                random_blocks(t, wq, N);
            CHECK(sl_quantize_row(vt, x, xq, N) == 0);
            sl_dequantize_row(t, wq, wd, N);
            sl_dequantize_row(vt, xq, xd, N);
            double ref = 0, mag = 0;
            for (int i = 0; i < N; i++) {
                ref += (double)wd[i] * xd[i];
                mag += fabs((double)wd[i] * xd[i]);
            }
            float got = sl_vec_dot(t, N, wq, xq);
            CHECK_MSG(fabs(got - ref) <= 1e-4 * mag + 1e-5, "%s: %g vs %g", sl_type_name(t), got, ref);
        }
    }
    sl_kernels_set_isa(prev);
}

/* A row holding a NaN or an infinity (a hostile file's weights, or what
 * they lead to) quantizes without an undefined float-to-int conversion
 * (clang's -fsanitize=undefined, as the fuzz targets build, stops on one;
 * GCC's does not check it): the non-finite element's code is 0. */
static void test_q8_nonfinite(void) {
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)(i % 7) - 3.0f;
    x[5] = NAN;
    x[40] = INFINITY;
    sl_block_q8_0 q[2];
    sl_quantize_q8_0_ref(x, q, 64);
    CHECK(q[0].qs[5] == 0 && q[0].qs[6] == 127 && q[0].qs[0] == -127);
    for (int j = 0; j < 32; j++) CHECK(q[1].qs[j] == 0); /* amax inf: every code 0 */
}

int main(void) {
    sl_kernels_init();
    RUN(test_sizes_and_names);
    RUN(test_f16_bf16);
    RUN(test_dequant_q4_0_q4_1_q8_0);
    RUN(test_dequant_q5);
    RUN(test_dequant_q4_K_q5_K);
    RUN(test_dequant_q6_K);
    RUN(test_dequant_q2_K_q3_K);
    RUN(test_dequant_iq4);
    RUN(test_roundtrip_error);
    RUN(test_q2_K_q3_K_quantizers);
    RUN(test_activation_blocks);
    RUN(test_vec_dot_scalar);
    RUN(test_q8_nonfinite);
    return test_summary();
}
