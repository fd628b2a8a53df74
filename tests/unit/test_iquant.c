/* deps: base kernels */
/*
 * test_iquant.c — the grid i-quants (iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s,
 * iq1_s, iq1_m): the structure of the transcribed codebooks; dequantization
 * of hand-built blocks against values worked out by hand, and of random
 * blocks against a reference written here (in double, element by element,
 * from the format description — not from the code under test); the dot
 * products of every ISA level against dequantize-then-dot and against
 * scalar; the quantizer's error and its sign-parity rule.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/iq_grids.h"
#include "kernels/kern_impl.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "test.h"

static uint64_t rng_state = 0x853c49e6748fea9bull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float gauss(void) {
    float s = 0;
    for (int i = 0; i < 6; i++)
        s += (float)(rnd() & 0xffffff) / 8388608.0f - 1.0f;
    return s * 0.7f;
}

static const sl_type_t iq_types[] = {SL_TYPE_IQ2_XXS, SL_TYPE_IQ2_XS, SL_TYPE_IQ2_S,
                                     SL_TYPE_IQ3_XXS, SL_TYPE_IQ3_S,  SL_TYPE_IQ1_S,
                                     SL_TYPE_IQ1_M};
#define N_IQ (sizeof iq_types / sizeof iq_types[0])

/* ---- codebooks ---- */

static bool in_set(unsigned v, const unsigned *set, int n) {
    for (int i = 0; i < n; i++)
        if (set[i] == v) return true;
    return false;
}

/* A table of n entries of w bytes: strictly ascending (as integers; with
 * every byte's top bit flipped first when the bytes are signed, which is
 * the order of the values read as signed digits, most significant first),
 * every byte one of set. */
static void check_grid(const char *name, const void *tab, int n, int w, bool signed_bytes,
                       const unsigned *set, int nset) {
    int bad_order = 0, bad_value = 0;
    uint64_t prev = 0;
    for (int e = 0; e < n; e++) {
        uint64_t v;
        if (w == 8)
            v = ((const uint64_t *)tab)[e];
        else
            v = ((const uint32_t *)tab)[e];
        for (int j = 0; j < w; j++)
            bad_value += !in_set((unsigned)((v >> (8 * j)) & 0xff), set, nset);
        const uint64_t key = signed_bytes ? v ^ 0x8080808080808080ull : v;
        if (e > 0 && !(key > prev)) bad_order++;
        prev = key;
    }
    CHECK_MSG(bad_order == 0, "%s: %d entries out of order", name, bad_order);
    CHECK_MSG(bad_value == 0, "%s: %d bytes outside the value set", name, bad_value);
}

static void test_codebooks(void) {
    CHECK(sizeof sl_iq2xxs_grid / sizeof sl_iq2xxs_grid[0] == 256);
    CHECK(sizeof sl_iq2xs_grid / sizeof sl_iq2xs_grid[0] == 512);
    CHECK(sizeof sl_iq2s_grid / sizeof sl_iq2s_grid[0] == 1024);
    CHECK(sizeof sl_iq3xxs_grid / sizeof sl_iq3xxs_grid[0] == 256);
    CHECK(sizeof sl_iq3s_grid / sizeof sl_iq3s_grid[0] == 512);
    CHECK(sizeof sl_iq1s_grid / sizeof sl_iq1s_grid[0] == 2048);
    static const unsigned v2[] = {0x08, 0x19, 0x2b};
    static const unsigned v3xxs[] = {0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3e};
    static const unsigned v3s[] = {0x01, 0x03, 0x05, 0x07, 0x09, 0x0b, 0x0d, 0x0f};
    static const unsigned v1[] = {0x00, 0x01, 0xff};
    check_grid("iq2xxs", sl_iq2xxs_grid, 256, 8, false, v2, 3);
    check_grid("iq2xs", sl_iq2xs_grid, 512, 8, false, v2, 3);
    check_grid("iq2s", sl_iq2s_grid, 1024, 8, false, v2, 3);
    check_grid("iq3xxs", sl_iq3xxs_grid, 256, 4, false, v3xxs, 8);
    check_grid("iq3s", sl_iq3s_grid, 512, 4, false, v3s, 8);
    check_grid("iq1s", sl_iq1s_grid, 2048, 8, true, v1, 3);
    /* a few entries as ggml lists them */
    CHECK(sl_iq2xxs_grid[0] == 0x0808080808080808ull &&
          sl_iq2xxs_grid[255] == 0x2b2b2b1908081908ull);
    CHECK(sl_iq2xs_grid[511] == 0x2b2b2b2b2b2b2b2bull &&
          sl_iq2s_grid[1023] == 0x2b2b2b2b2b2b2b2bull);
    CHECK(sl_iq3xxs_grid[255] == 0x3e341c04u && sl_iq3s_grid[511] == 0x0f0f0101u);
    CHECK(sl_iq1s_grid[0] == 0xffffffffffffffffull && sl_iq1s_grid[2047] == 0x0101010101010101ull);
    /* the sign codes: 7 bits, the 8th their parity */
    int bad = 0;
    for (int i = 0; i < 128; i++)
        bad += sl_ksigns_iq2xs[i] != (i | ((__builtin_popcount((unsigned)i) & 1) << 7));
    CHECK(bad == 0);
}

static void test_traits(void) {
    struct {
        sl_type_t t;
        int num;
        size_t size;
        const char *name;
    } want[] = {
        {SL_TYPE_IQ2_XXS, 16, 66, "iq2_xxs"}, {SL_TYPE_IQ2_XS, 17, 74, "iq2_xs"},
        {SL_TYPE_IQ3_XXS, 18, 98, "iq3_xxs"}, {SL_TYPE_IQ1_S, 19, 50, "iq1_s"},
        {SL_TYPE_IQ3_S, 21, 110, "iq3_s"},    {SL_TYPE_IQ2_S, 22, 82, "iq2_s"},
        {SL_TYPE_IQ1_M, 29, 56, "iq1_m"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(want); i++) {
        const sl_type_traits_t *tr = sl_type_traits(want[i].t);
        CHECK((int)want[i].t == want[i].num);
        CHECK(tr && tr->supported && tr->blck == 256 && tr->type_size == want[i].size);
        CHECK(tr && tr->vec_dot_type == SL_TYPE_Q8_K);
        CHECK(strcmp(sl_type_name(want[i].t), want[i].name) == 0);
        sl_type_t back;
        CHECK(sl_type_from_name(want[i].name, &back) == 0 && back == want[i].t);
        CHECK(sl_row_size(want[i].t, 512) == 2 * want[i].size && sl_row_size(want[i].t, 300) == 0);
        CHECK(sl_can_quantize(want[i].t));
    }
}

/* ---- reference dequantization, element by element ---- */

static double f16d(const uint8_t *p) {
    sl_f16_t h;
    memcpy(&h, p, 2);
    return sl_f16_to_f32(h);
}
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static unsigned le16(const uint8_t *p) {
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}
static int byte_of(uint64_t v, int j) {
    return (int)((v >> (8 * j)) & 0xff);
}
/* the 8 sign bits a 7-bit code stands for: the code, and its parity on top */
static unsigned signs_of_code(unsigned code) {
    return code | (unsigned)(__builtin_popcount(code) & 1) << 7;
}

/* Element e (0..255) of the super-block b, as the format describes it. */
static double ref_weight(sl_type_t t, const uint8_t *b, int e) {
    const int ib = e / 32, l = e % 32 / 8,
              j = e % 8; /* sub-block, group of 8 in it, element in the group */
    switch (t) {
    case SL_TYPE_IQ2_XXS: {
        const uint8_t *q = b + 2 + 8 * ib;
        const uint32_t a1 = le32(q + 4);
        const double mag = byte_of(sl_iq2xxs_grid[q[l]], j);
        const bool neg = signs_of_code((a1 >> (7 * l)) & 127) >> j & 1;
        return f16d(b) * (0.5 + (a1 >> 28)) * 0.25 * mag * (neg ? -1 : 1);
    }
    case SL_TYPE_IQ2_XS: {
        const unsigned v = le16(b + 2 + 2 * (4 * ib + l));
        const unsigned ls = (b[66 + ib] >> (l < 2 ? 0 : 4)) & 15;
        const bool neg = signs_of_code(v >> 9) >> j & 1;
        return f16d(b) * (0.5 + ls) * 0.25 * byte_of(sl_iq2xs_grid[v & 511], j) * (neg ? -1 : 1);
    }
    case SL_TYPE_IQ2_S: {
        const unsigned idx = b[2 + 4 * ib + l] | ((b[66 + ib] >> (2 * l)) & 3) << 8;
        const unsigned ls = (b[74 + ib] >> (l < 2 ? 0 : 4)) & 15;
        const bool neg = b[2 + 32 + 4 * ib + l] >> j & 1;
        return f16d(b) * (0.5 + ls) * 0.25 * byte_of(sl_iq2s_grid[idx], j) * (neg ? -1 : 1);
    }
    case SL_TYPE_IQ3_XXS: {
        const uint32_t aux = le32(b + 2 + 64 + 4 * ib);
        const unsigned idx = b[2 + 8 * ib + 2 * l + j / 4];
        const bool neg = signs_of_code((aux >> (7 * l)) & 127) >> j & 1;
        return f16d(b) * (0.5 + (aux >> 28)) * 0.5 * byte_of(sl_iq3xxs_grid[idx], j % 4) *
               (neg ? -1 : 1);
    }
    case SL_TYPE_IQ3_S: {
        const int k = e % 32 / 4; /* group of 4 */
        const unsigned idx = b[2 + 8 * ib + k] | ((b[66 + ib] >> k) & 1) << 8;
        const unsigned ls = (b[106 + ib / 2] >> (ib % 2 ? 4 : 0)) & 15;
        const bool neg = b[74 + 4 * ib + l] >> j & 1;
        return f16d(b) * (1 + 2 * ls) * byte_of(sl_iq3s_grid[idx], j % 4) * (neg ? -1 : 1);
    }
    case SL_TYPE_IQ1_S: {
        const unsigned qh = le16(b + 34 + 2 * ib);
        const unsigned idx = b[2 + 4 * ib + l] | ((qh >> (3 * l)) & 7) << 8;
        const double delta = qh & 0x8000 ? -0.125 : 0.125;
        return f16d(b) * (2 * ((qh >> 12) & 7) + 1) *
               ((int8_t)byte_of(sl_iq1s_grid[idx], j) + delta);
    }
    case SL_TYPE_IQ1_M: {
        const uint8_t *qs = b, *qh = b + 32, *sc = b + 48;
        unsigned s[4];
        for (int k = 0; k < 4; k++)
            s[k] = le16(sc + 2 * k);
        const uint16_t dh =
            (uint16_t)((s[0] >> 12) | (s[1] >> 12) << 4 | (s[2] >> 12) << 8 | (s[3] >> 12) << 12);
        const int half = e / 16; /* the 3-bit scale's 16 elements */
        const unsigned ls = (s[half / 4] >> (3 * (half % 4))) & 7;
        const unsigned h = qh[2 * ib + l / 2] >> (l % 2 ? 4 : 0);
        const unsigned idx = qs[4 * ib + l] | (h & 7) << 8;
        const double delta = h & 8 ? -0.125 : 0.125;
        return sl_f16_to_f32(dh) * (2 * ls + 1) * ((int8_t)byte_of(sl_iq1s_grid[idx], j) + delta);
    }
    default:
        return NAN;
    }
}

static void put_f16(uint8_t *p, float f) {
    const sl_f16_t h = sl_f32_to_f16(f);
    memcpy(p, &h, 2);
}

/* A block of random bytes with a sane scale d. */
static void random_block(sl_type_t t, uint8_t *b, float d) {
    const size_t bs = sl_type_traits(t)->type_size;
    for (size_t i = 0; i < bs; i++)
        b[i] = (uint8_t)rnd();
    if (t == SL_TYPE_IQ1_M) { /* d's nibbles on top of the 4 scale words */
        const sl_f16_t h = sl_f32_to_f16(d);
        for (int k = 0; k < 4; k++)
            b[48 + 2 * k + 1] = (uint8_t)((b[48 + 2 * k + 1] & 0x0f) | ((h >> (4 * k)) & 0xf) << 4);
    } else {
        put_f16(b, d);
    }
}

static void test_dequant_random_blocks(void) {
    for (size_t ti = 0; ti < N_IQ; ti++) {
        const sl_type_t t = iq_types[ti];
        uint8_t b[128];
        float y[256];
        int bad = 0;
        for (int rep = 0; rep < 200; rep++) {
            random_block(t, b, 0.001f * (float)(1 + rep % 17));
            sl_dequantize_row(t, b, y, 256);
            for (int e = 0; e < 256; e++) {
                const double r = ref_weight(t, b, e);
                if (!(fabs(y[e] - r) <= 1e-6 * fabs(r) + 1e-12)) {
                    if (bad < 3)
                        fprintf(stderr, "    %s rep %d [%d]: %g vs %g\n", sl_type_name(t), rep, e,
                                y[e], r);
                    bad++;
                }
            }
        }
        CHECK_MSG(bad == 0, "%s: %d elements differ from the reference", sl_type_name(t), bad);
    }
}

/* sl_iq_mults (the NEON dots' multipliers and D) agrees with sl_iq_decode,
 * and the decoded integers times them are the dequantized floats. */
static void test_integer_form(void) {
    for (size_t ti = 0; ti < N_IQ; ti++) {
        const sl_type_t t = iq_types[ti];
        uint8_t b[128];
        int bad = 0;
        for (int rep = 0; rep < 100; rep++) {
            random_block(t, b, 0.01f * (float)(1 + rep % 7));
            int8_t q[256];
            int16_t sc[16], sc2[16];
            float y[256];
            const float d = sl_iq_decode(t, b, q, sc), d2 = sl_iq_mults(t, b, sc2);
            bad += d != d2 || memcmp(sc, sc2, sizeof sc) != 0;
            sl_dequantize_row(t, b, y, 256);
            for (int e = 0; e < 256; e++)
                bad += !(fabsf(y[e] - d * (float)sc[e / 16] * (float)q[e]) <= 1e-6f * fabsf(y[e]));
        }
        CHECK_MSG(bad == 0, "%s: %d mismatches", sl_type_name(t), bad);
    }
}

/* Hand-built blocks; the expected values are worked out by hand from the
 * codebook entries named in the comments. */
static void test_dequant_hand_built(void) {
    float y[256];
    /* iq2_xxs, d = 1. Sub-block 0: entries 0, 1, 2, 255 (bytes of a0), sign
     * codes 0, 1, 3, 127, ls = 3 (multiplier 7, 7/8 per unit). entry 1 =
     * 0x080808080808082b with code 1 → signs 0x81: elements 8 and 15
     * negative (the parity bit); entry 2 = ..1919 with code 3 (even: no
     * parity bit); entry 255 = 0x2b2b2b1908081908 with code 127 → all 8
     * negative. Other sub-blocks all-zero: entry 0, ls 0 → 1/8 · 8 = 1. */
    {
        sl_block_iq2_xxs b;
        memset(&b, 0, sizeof b);
        b.d = sl_f32_to_f16(1.0f);
        const uint32_t a0 = 0 | 1u << 8 | 2u << 16 | 255u << 24;
        const uint32_t a1 = 0 | 1u << 7 | 3u << 14 | 127u << 21 | 3u << 28;
        memcpy((uint8_t *)b.qs, &a0, 4);
        memcpy((uint8_t *)b.qs + 4, &a1, 4);
        sl_dequantize_row(SL_TYPE_IQ2_XXS, &b, y, 256);
        static const float want[32] = {
            7, 7, 7,  7,        7,  7,        7,        7,        -37.625f, 7,       7,
            7, 7, 7,  7,        -7, -21.875f, -21.875f, 7,        7,        7,       7,
            7, 7, -7, -21.875f, -7, -7,       -21.875f, -37.625f, -37.625f, -37.625f};
        int bad = 0;
        for (int e = 0; e < 32; e++)
            bad += y[e] != want[e];
        for (int e = 32; e < 256; e++)
            bad += y[e] != 1.0f;
        CHECK_MSG(bad == 0, "iq2_xxs hand-built: %d wrong", bad);
    }
    /* iq2_xs, d = 0.5: qs[0] = index 256 (0x190808080808192b) | code 1 << 9;
     * scales[0] = 0x52: elements 0-15 ls 2 (×5/8), 16-31 ls 5 (×11/8);
     * qs[2] = index 511 (all 43) | code 127 (all negative). */
    {
        sl_block_iq2_xs b;
        memset(&b, 0, sizeof b);
        b.d = sl_f32_to_f16(0.5f);
        b.qs[0] = (uint16_t)(256 | 1 << 9);
        b.qs[2] = (uint16_t)(511 | 127 << 9);
        b.scales[0] = 0x52;
        sl_dequantize_row(SL_TYPE_IQ2_XS, &b, y, 256);
        static const float want[8] = {-13.4375f, 7.8125f, 2.5f, 2.5f, 2.5f, 2.5f, 2.5f, -7.8125f};
        int bad = 0;
        for (int e = 0; e < 8; e++)
            bad += y[e] != want[e];
        for (int e = 16; e < 24; e++)
            bad += y[e] != -29.5625f;
        bad += y[8] != 2.5f || y[24] != 5.5f; /* entry 0, all 8s */
        CHECK_MSG(bad == 0, "iq2_xs hand-built: %d wrong", bad);
    }
    /* iq2_s, d = 2, scales[0] = 3 (×7/8 → 1.75 per unit): group 0 index 5
     * (0x0808080808190819), no signs; group 1 index 5 | 3 << 8 = 773
     * (0x192b08082b190808) from qh[0] bits 2-3, signs 0xa5 (elements 0, 2,
     * 5, 7 of the group negative). */
    {
        sl_block_iq2_s b;
        memset(&b, 0, sizeof b);
        b.d = sl_f32_to_f16(2.0f);
        b.qs[0] = 5, b.qs[1] = 5;
        b.qh[0] = 3 << 2;
        b.qs[32 + 1] = 0xa5;
        b.scales[0] = 3;
        sl_dequantize_row(SL_TYPE_IQ2_S, &b, y, 256);
        static const float want[16] = {43.75f, 14, 43.75f,  14,     14, 14,  14,     14,
                                       -14,    14, -43.75f, 75.25f, 14, -14, 75.25f, -43.75f};
        int bad = 0;
        for (int e = 0; e < 16; e++)
            bad += y[e] != want[e];
        CHECK_MSG(bad == 0, "iq2_s hand-built: %d wrong", bad);
    }
    /* iq3_xxs, d = 1: qs[0] = 255 (0x3e341c04: 4 28 52 62), qs[1] = 1
     * (0x04040414: 20 4 4 4); sub-block 0's word: code 1 for group 0 (signs
     * 0x81), ls 2 (×5/4). */
    {
        sl_block_iq3_xxs b;
        memset(&b, 0, sizeof b);
        b.d = sl_f32_to_f16(1.0f);
        b.qs[0] = 255, b.qs[1] = 1;
        const uint32_t aux = 1u | 2u << 28;
        memcpy(b.qs + 64, &aux, 4);
        sl_dequantize_row(SL_TYPE_IQ3_XXS, &b, y, 256);
        static const float want[8] = {-5, 35, 65, 77.5f, 25, 5, 5, -5};
        int bad = 0;
        for (int e = 0; e < 8; e++)
            bad += y[e] != want[e];
        CHECK_MSG(bad == 0, "iq3_xxs hand-built: %d wrong", bad);
    }
    /* iq3_s, d = 0.5: sub-block 1's first group of 4: qs[8] = 1 with qh[1]
     * bit 0 → index 257 (0x05090705: 5 7 9 5), signs[4] = 0x0f (all four
     * negative), scales[0] high nibble 4 (×9 → 4.5 per unit). */
    {
        sl_block_iq3_s b;
        memset(&b, 0, sizeof b);
        b.d = sl_f32_to_f16(0.5f);
        b.qs[8] = 1;
        b.qh[1] = 1;
        b.signs[4] = 0x0f;
        b.scales[0] = 4 << 4;
        sl_dequantize_row(SL_TYPE_IQ3_S, &b, y, 256);
        int bad = y[32] != -22.5f || y[33] != -31.5f || y[34] != -40.5f || y[35] != -22.5f;
        bad += y[36] != 4.5f || y[0] != 0.5f; /* index 0: 1 1 1 1; sub-block 0 ls 0 */
        CHECK_MSG(bad == 0, "iq3_s hand-built");
    }
    /* iq1_s, d = 0.25: qh[0] = 5 (group 0 high bits: index 0x5a3 with qs[0]
     * = 0xa3 → 0x01ffffff01ffffff) | 4 << 3 (group 1: index 0x400 with
     * qs[1] = 0 → 0x0000000000ff0100) | ls 6 << 12 (×13) | delta negative. */
    {
        sl_block_iq1_s b;
        memset(&b, 0, sizeof b);
        b.d = sl_f32_to_f16(0.25f);
        b.qs[0] = 0xa3;
        b.qh[0] = (uint16_t)(5 | 4 << 3 | 6 << 12 | 0x8000);
        sl_dequantize_row(SL_TYPE_IQ1_S, &b, y, 256);
        static const float want[16] = {
            -3.65625f, -3.65625f, -3.65625f, 2.84375f,  -3.65625f, -3.65625f, -3.65625f, 2.84375f,
            -0.40625f, 2.84375f,  -3.65625f, -0.40625f, -0.40625f, -0.40625f, -0.40625f, -0.40625f};
        int bad = 0;
        for (int e = 0; e < 16; e++)
            bad += y[e] != want[e];
        bad += y[32] != 0.25f * (-1 + 0.125f); /* sub-block 1: index 0 (all −1), ls 0, delta + */
        CHECK_MSG(bad == 0, "iq1_s hand-built: %d wrong", bad);
    }
    /* iq1_m, d = 0.5 = f16 0x3800: nibbles 0, 0, 8, 3 on top of scale words
     * 0..3. Word 0 = 3 | 1 << 3: elements 0-15 ls 3 (×7 → 3.5), 16-31 ls 1
     * (×3 → 1.5). Group 0: qs[0] = 0xa3, qh[0] bits 0-2 = 5 → 0x5a3, delta
     * +; group 1: qs[1] = 0, bits 4-6 = 4 → 0x400, bit 7: delta −; group 2:
     * index 0 (all −1), delta +. */
    {
        sl_block_iq1_m b;
        memset(&b, 0, sizeof b);
        b.qs[0] = 0xa3;
        b.qh[0] = 5 | 4 << 4 | 0x80;
        const uint16_t s[4] = {3 | 1 << 3, 0, 0x8000, 0x3000};
        memcpy(b.scales, s, 8);
        sl_dequantize_row(SL_TYPE_IQ1_M, &b, y, 256);
        static const float want[24] = {-3.0625f, -3.0625f, -3.0625f, 3.9375f,  -3.0625f, -3.0625f,
                                       -3.0625f, 3.9375f,  -0.4375f, 3.0625f,  -3.9375f, -0.4375f,
                                       -0.4375f, -0.4375f, -0.4375f, -0.4375f, -1.3125f, -1.3125f,
                                       -1.3125f, -1.3125f, -1.3125f, -1.3125f, -1.3125f, -1.3125f};
        int bad = 0;
        for (int e = 0; e < 24; e++)
            bad += y[e] != want[e];
        bad += y[32] != 0.5f * -0.875f; /* ls 0 */
        CHECK_MSG(bad == 0, "iq1_m hand-built: %d wrong", bad);
    }
}

/* ---- dot products ---- */

static const sl_isa_t isas[] = {SL_ISA_SCALAR, SL_ISA_AVX2, SL_ISA_AVX512, SL_ISA_NEON};

/* Every level this CPU runs: the dot of random blocks with a q8_K row equals
 * the double dot of the dequantized rows (to float rounding), and the SIMD
 * levels equal scalar up to summation order. */
static void test_dots(void) {
    for (size_t ti = 0; ti < N_IQ; ti++) {
        const sl_type_t t = iq_types[ti];
        const size_t bs = sl_type_traits(t)->type_size;
        int bad_ref = 0, bad_scalar = 0;
        for (int rep = 0; rep < 60; rep++) {
            const int64_t n = 256 * (1 + (int64_t)(rnd() % 6));
            uint8_t *w = malloc(bs * (size_t)(n / 256));
            float *x = malloc(sizeof(float) * (size_t)n), *wd = malloc(sizeof(float) * (size_t)n),
                  *xd = malloc(sizeof(float) * (size_t)n);
            uint8_t *xq = malloc(sl_row_size(SL_TYPE_Q8_K, n));
            for (int64_t i = 0; i < n / 256; i++)
                random_block(t, w + (size_t)i * bs, 0.01f * (float)(1 + rnd() % 9));
            const float xs = rep % 3 ? 1.0f : 40.0f;
            for (int64_t i = 0; i < n; i++)
                x[i] = gauss() * xs;
            sl_dequantize_row(t, w, wd, n);
            const sl_isa_t prev = sl_kernels_set_isa(SL_ISA_SCALAR);
            sl_kern_table()->quant[SL_TYPE_Q8_K](x, xq, n);
            const float scalar = sl_vec_dot(t, n, w, xq);
            sl_dequantize_row(SL_TYPE_Q8_K, xq, xd, n);
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < n; i++)
                ref += (double)wd[i] * xd[i], mag += fabs((double)wd[i] * xd[i]);
            for (size_t ii = 0; ii < SL_ARRAY_LEN(isas); ii++) {
                if (!sl_isa_supported(isas[ii])) continue;
                sl_kernels_set_isa(isas[ii]);
                const float got = sl_vec_dot(t, n, w, xq);
                if (!(fabs(got - ref) <= 2e-5 * mag + 1e-6)) {
                    if (bad_ref < 3)
                        fprintf(stderr, "    %s %s n=%lld: %g vs reference %g\n",
                                sl_isa_name(isas[ii]), sl_type_name(t), (long long)n, got, ref);
                    bad_ref++;
                }
                if (!(fabs(got - scalar) <= 1e-5 * mag + 1e-6)) bad_scalar++;
            }
            sl_kernels_set_isa(prev);
            free(w), free(x), free(wd), free(xd), free(xq);
        }
        CHECK_MSG(bad_ref == 0, "%s dot vs dequantized reference", sl_type_name(t));
        CHECK_MSG(bad_scalar == 0, "%s SIMD dot vs scalar", sl_type_name(t));
    }
}

/* ---- quantizer ---- */

static double rel_rmse(const float *a, const float *b, int n) {
    double e = 0, s = 0;
    for (int i = 0; i < n; i++)
        e += (double)(a[i] - b[i]) * (a[i] - b[i]), s += (double)a[i] * a[i];
    return sqrt(e / (s + 1e-30));
}

/* Relative RMSE on normal data with varying spread (the data of
 * test_quant.c's round trips), bounded per type; q2_K / q3_K for scale. */
static void test_quantizer_error(void) {
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t q[N * 2];
    for (int i = 0; i < N; i++)
        x[i] = gauss() * (1.0f + (float)(i / 256));
    struct {
        sl_type_t t;
        double max_rel;
    } cases[] = {
        /* measured 0.448, 0.415, 0.324, 0.301, 0.245, 0.182, 0.132; q2_K
         * 0.303, q3_K 0.148 */
        {SL_TYPE_IQ1_S, 0.50},  {SL_TYPE_IQ1_M, 0.47}, {SL_TYPE_IQ2_XXS, 0.38},
        {SL_TYPE_IQ2_XS, 0.34}, {SL_TYPE_IQ2_S, 0.29}, {SL_TYPE_IQ3_XXS, 0.21},
        {SL_TYPE_IQ3_S, 0.16},  {SL_TYPE_Q2_K, 1},     {SL_TYPE_Q3_K, 1},
    };
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        CHECK(sl_quantize_row(cases[c].t, x, q, N) == 0);
        sl_dequantize_row(cases[c].t, q, y, N);
        const double r = rel_rmse(x, y, N);
        fprintf(stderr, "  %-8s rel rmse %.4f\n", sl_type_name(cases[c].t), r);
        CHECK_MSG(r < cases[c].max_rel, "%s rel rmse %g >= %g", sl_type_name(cases[c].t), r,
                  cases[c].max_rel);
    }
    /* zeros stay zeros; a row that is not whole super-blocks is refused */
    static float z[256], zo[256];
    for (size_t ti = 0; ti < N_IQ; ti++) {
        CHECK(sl_quantize_row(iq_types[ti], z, q, 256) == 0);
        sl_dequantize_row(iq_types[ti], q, zo, 256);
        int nz = 0;
        for (int i = 0; i < 256; i++)
            nz += zo[i] != 0;
        CHECK_MSG(nz == 0, "%s zero row", sl_type_name(iq_types[ti]));
        CHECK(sl_quantize_row(iq_types[ti], x, q, 300) == -1);
    }
    /* non-finite and tiny inputs quantize to something (no conversion of
     * an out-of-range float to int on the way) */
    static float odd[512];
    for (int i = 0; i < 512; i++)
        odd[i] = i % 3 ? 1e-30f * (float)i : (i % 2 ? INFINITY : NAN);
    for (size_t ti = 0; ti < N_IQ; ti++)
        CHECK(sl_quantize_row(iq_types[ti], odd, q, 512) == 0);
    CHECK(sl_quantize_row(SL_TYPE_MXFP4, odd, q, 512) == 0);
}

/* Under a 7-bit sign code a group holds an even number of minus signs: with
 * one negative input the quantizer flips the element whose flip costs
 * least — the smallest one — and keeps every other sign. */
static void test_sign_parity(void) {
    const sl_type_t par[] = {SL_TYPE_IQ2_XXS, SL_TYPE_IQ2_XS, SL_TYPE_IQ3_XXS};
    for (size_t pi = 0; pi < SL_ARRAY_LEN(par); pi++) {
        float x[256], y[256];
        uint8_t q[128];
        for (int i = 0; i < 256; i++)
            x[i] = 0.8f + 0.2f * (float)(rnd() % 5) / 4; /* all positive, 0.8..1 */
        x[3] = -1.0f;                                    /* the one negative */
        x[5] = 0.05f;                                    /* the cheapest to flip */
        sl_quantize_row(par[pi], x, q, 256);
        sl_dequantize_row(par[pi], q, y, 256);
        int wrong = 0;
        for (int i = 0; i < 256; i++) {
            const bool want_neg = i == 3 || i == 5;
            wrong += (y[i] < 0) != want_neg;
        }
        CHECK_MSG(wrong == 0, "%s: %d signs unexpected", sl_type_name(par[pi]), wrong);
        /* and a free-sign type keeps them all */
        sl_quantize_row(SL_TYPE_IQ2_S, x, q, 256);
        sl_dequantize_row(SL_TYPE_IQ2_S, q, y, 256);
        wrong = 0;
        for (int i = 0; i < 256; i++)
            wrong += (y[i] < 0) != (x[i] < 0);
        CHECK(wrong == 0);
    }
}

/* mxfp4 (32-blocks of E2M1 codes under an E8M0 exponent, ggml's doubled
 * codebook): a hand-built block, the scale at the extremes, random blocks
 * against the format, dots against q8_0 on every level, and ggml's
 * quantization rule (e from the largest magnitude, nearest code). */
static void test_mxfp4(void) {
    static const int kv[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    const sl_type_traits_t *tr = sl_type_traits(SL_TYPE_MXFP4);
    CHECK(tr && tr->supported && tr->blck == 32 && tr->type_size == 17 &&
          tr->vec_dot_type == SL_TYPE_Q8_0);
    CHECK(strcmp(sl_type_name(SL_TYPE_MXFP4), "mxfp4") == 0 && (int)SL_TYPE_MXFP4 == 39);
    /* e = 130: 2^(130 − 128) = 4 per unit of the doubled codes; byte j = j
     * (low nibble, element j) | (15 − j) << 4 (element 16 + j) */
    sl_block_mxfp4 b;
    b.e = 130;
    for (int j = 0; j < 16; j++)
        b.qs[j] = (uint8_t)(j | (15 - j) << 4);
    float y[64];
    sl_dequantize_row(SL_TYPE_MXFP4, &b, y, 32);
    int bad = 0;
    for (int j = 0; j < 16; j++)
        bad += y[j] != 4.0f * (float)kv[j] || y[16 + j] != 4.0f * (float)kv[15 - j];
    CHECK(y[7] == 48.0f && y[16] == -48.0f && y[1] == 4.0f);
    CHECK(bad == 0);
    /* the exponent's ends: 2^-128 and 2^-127 (subnormal floats), 2^127 */
    b.e = 0;
    sl_dequantize_row(SL_TYPE_MXFP4, &b, y, 32);
    CHECK(y[1] == ldexpf(1.0f, -128) && y[7] == 12.0f * ldexpf(1.0f, -128));
    b.e = 1;
    sl_dequantize_row(SL_TYPE_MXFP4, &b, y, 32);
    CHECK(y[1] == ldexpf(1.0f, -127));
    b.e = 255;
    sl_dequantize_row(SL_TYPE_MXFP4, &b, y, 32);
    CHECK(y[2] == ldexpf(1.0f, 128));
    /* random blocks (exponents near 127) and dots on every level */
    int bad_deq = 0, bad_dot = 0;
    for (int rep = 0; rep < 50; rep++) {
        const int64_t n = 32 * (1 + (int64_t)(rnd() % 40));
        uint8_t *w = malloc(17 * (size_t)(n / 32));
        float *x = malloc(sizeof(float) * (size_t)n), *wd = malloc(sizeof(float) * (size_t)n),
              *xd = malloc(sizeof(float) * (size_t)n);
        uint8_t *xq = malloc(sl_row_size(SL_TYPE_Q8_0, n));
        for (int64_t i = 0; i < 17 * (n / 32); i++)
            w[i] = (uint8_t)rnd();
        for (int64_t i = 0; i < n / 32; i++)
            w[17 * i] = (uint8_t)(120 + rnd() % 12);
        sl_dequantize_row(SL_TYPE_MXFP4, w, wd, n);
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *blk = w + 17 * (i / 32);
            const int k = (int)(i % 32), code = k < 16 ? blk[1 + k] & 15 : blk[1 + k - 16] >> 4;
            bad_deq += wd[i] != (float)(ldexp(1.0, blk[0] - 128) * kv[code]);
            x[i] = gauss();
        }
        const sl_isa_t prev = sl_kernels_set_isa(SL_ISA_SCALAR);
        sl_kern_table()->quant[SL_TYPE_Q8_0](x, xq, n);
        sl_dequantize_row(SL_TYPE_Q8_0, xq, xd, n);
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < n; i++)
            ref += (double)wd[i] * xd[i], mag += fabs((double)wd[i] * xd[i]);
        for (size_t ii = 0; ii < SL_ARRAY_LEN(isas); ii++) {
            if (!sl_isa_supported(isas[ii])) continue;
            sl_kernels_set_isa(isas[ii]);
            bad_dot += !(fabs(sl_vec_dot(SL_TYPE_MXFP4, n, w, xq) - ref) <= 2e-5 * mag + 1e-6);
        }
        sl_kernels_set_isa(prev);
        free(w), free(x), free(wd), free(xd), free(xq);
    }
    CHECK(bad_deq == 0);
    CHECK(bad_dot == 0);
    /* quantization: amax 5.5 → floor(log2 5.5) − 2 + 127 = 127, d = 0.5;
     * 5.5 → 6.0 (code 7, 12); −0.8 → −1.0 (code 10, −2); 0.3 → 0.5 (code
     * 1); 0 → code 0; 2.9 → 3.0 (code 5, 6) */
    float q[32] = {0};
    q[0] = 5.5f, q[1] = -0.8f, q[2] = 0.3f, q[17] = 2.9f;
    sl_block_mxfp4 o;
    CHECK(sl_quantize_row(SL_TYPE_MXFP4, q, &o, 32) == 0);
    CHECK(o.e == 127);
    CHECK((o.qs[0] & 15) == 7 && (o.qs[1] & 15) == 10 && (o.qs[2] & 15) == 1 &&
          (o.qs[3] & 15) == 0);
    CHECK((o.qs[1] >> 4) == 5 && (o.qs[0] >> 4) == 0);
    q[0] = 5.0f; /* a tie between 4 (code 6) and 6 (code 7): the first */
    sl_quantize_row(SL_TYPE_MXFP4, q, &o, 32);
    CHECK(o.e == 127 && (o.qs[0] & 15) == 6);
    /* error bound on normal data (4.25 bits; q4_0's is ~0.084 here) */
    enum { N = 4096 };
    static float xs[N], ys[N];
    static uint8_t qq[N];
    for (int i = 0; i < N; i++)
        xs[i] = gauss() * (1.0f + (float)(i / 256));
    CHECK(sl_quantize_row(SL_TYPE_MXFP4, xs, qq, N) == 0);
    sl_dequantize_row(SL_TYPE_MXFP4, qq, ys, N);
    const double r = rel_rmse(xs, ys, N);
    fprintf(stderr, "  mxfp4    rel rmse %.4f\n", r);
    CHECK_MSG(r < 0.13, "mxfp4 rel rmse %g", r);
}

int main(void) {
    sl_kernels_init();
    RUN(test_codebooks);
    RUN(test_traits);
    RUN(test_dequant_random_blocks);
    RUN(test_dequant_hand_built);
    RUN(test_integer_form);
    RUN(test_dots);
    RUN(test_quantizer_error);
    RUN(test_sign_parity);
    RUN(test_mxfp4);
    return test_summary();
}
