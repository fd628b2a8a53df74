/*
 * iquant.c — ggml's grid i-quants (iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s,
 * iq1_s, iq1_m): the scalar dequantizers, the integer form of a super-block
 * the dot products work on, and a quantizer.
 *
 * The layouts are in quant.h, the codebooks in iq_grids.c. A weight is
 * always (block scale) · (odd sub-block multiplier 2·ls + 1) · (a grid
 * value with its sign), so sl_iq_decode turns any of these super-blocks into
 * 256 small signed integers q, 16 multipliers (one per 16 elements) and one
 * float D with weight e = D · sc[e / 16] · q[e] — exactly, as q holds the
 * grid value itself (iq1: 8 · (grid ± 1/8), D then carrying the 1/8). The
 * scalar dot (dot.c) and the AVX2 prefill unpacking read that form; the
 * dequantizers below follow the format description directly instead, so
 * that the tests comparing the two check one against the other.
 *
 * Quantizer: straightforward, not ggml's importance-weighted search. Per
 * sub-block (the elements sharing one multiplier) a scale is chosen by
 * trying 16 candidates against the per-element nearest grid level (ignoring
 * which combinations the codebook holds) plus a least-squares refit; the
 * super-block scale maps the largest of them to the largest multiplier;
 * each sub-block's multiplier is the nearest odd one (iq2 / iq3: or a
 * neighbour of it, whichever fits best), and every group of 8 (4 for iq3)
 * takes the codebook entry of least squared error at that scale, found
 * exhaustively (with early exit). Signs are those of the
 * input; where a group's 8th sign is implied by parity and the input has an
 * odd number of negatives, the search also prices flipping each element and
 * takes the cheapest flip with its best entry (ggml does the same). iq1_s
 * tries both delta signs per 32 elements, iq1_m per 8. docs/kernels.md has
 * the resulting errors next to q2_K / q3_K.
 */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "kernels/iq_grids.h"
#include "kernels/kern_impl.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "grid entries are read as bytes");

static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static void wr32(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}
static void wr16(uint8_t *p, uint16_t v) {
    memcpy(p, &v, 2);
}

/* value j (0..7) of a 64-bit grid entry, (0..3) of a 32-bit one */
static int g8(uint64_t e, int j) {
    return (int)((e >> (8 * j)) & 0xff);
}
static int g4(uint32_t e, int j) {
    return (int)((e >> (8 * j)) & 0xff);
}
static float sgnf(unsigned bits, int j) {
    return (bits >> j) & 1 ? -1.0f : 1.0f;
}

bool sl_iq_grid_type(sl_type_t t) {
    return t == SL_TYPE_IQ2_XXS || t == SL_TYPE_IQ2_XS || t == SL_TYPE_IQ2_S ||
           t == SL_TYPE_IQ3_XXS || t == SL_TYPE_IQ3_S || t == SL_TYPE_IQ1_S || t == SL_TYPE_IQ1_M;
}

/* iq1_m's super-block scale: an f16 whose 4 nibbles are the top nibbles of
 * the 4 little-endian uint16 scale words. */
static float iq1m_d(const sl_block_iq1_m *b) {
    uint16_t s[4];
    for (int k = 0; k < 4; k++)
        s[k] = rd16(b->scales + 2 * k);
    const uint16_t h = (uint16_t)((s[0] >> 12) | ((s[1] >> 8) & 0x00f0) | ((s[2] >> 4) & 0x0f00) |
                                  (s[3] & 0xf000));
    return sl_f16_to_f32(h);
}
static int iq1m_ls(const sl_block_iq1_m *b, int k) { /* elements 16k..16k+15 */
    return (rd16(b->scales + 2 * (k / 4)) >> (3 * (k % 4))) & 7;
}

/* ---- dequantization (straight from the format description) ---- */

static void deq_iq2_xxs(const sl_block_iq2_xxs *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = sl_f16_to_f32(x[i].d);
        const uint8_t *q = (const uint8_t *)x[i].qs;
        for (int ib = 0; ib < 8; ib++) {
            const uint32_t a0 = rd32(q + 8 * ib), a1 = rd32(q + 8 * ib + 4);
            const float db = d * (float)(2 * (a1 >> 28) + 1) * 0.125f;
            for (int l = 0; l < 4; l++) {
                const uint64_t e = sl_iq2xxs_grid[(a0 >> (8 * l)) & 0xff];
                const unsigned s = sl_ksigns_iq2xs[(a1 >> (7 * l)) & 127];
                for (int j = 0; j < 8; j++)
                    *y++ = db * (float)g8(e, j) * sgnf(s, j);
            }
        }
    }
}

static void deq_iq2_xs(const sl_block_iq2_xs *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = sl_f16_to_f32(x[i].d);
        for (int ib = 0; ib < 8; ib++)
            for (int l = 0; l < 4; l++) {
                const float db =
                    d * (float)(2 * ((x[i].scales[ib] >> (4 * (l / 2))) & 0xf) + 1) * 0.125f;
                const uint16_t v = x[i].qs[4 * ib + l];
                const uint64_t e = sl_iq2xs_grid[v & 511];
                const unsigned s = sl_ksigns_iq2xs[v >> 9];
                for (int j = 0; j < 8; j++)
                    *y++ = db * (float)g8(e, j) * sgnf(s, j);
            }
    }
}

static void deq_iq2_s(const sl_block_iq2_s *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = sl_f16_to_f32(x[i].d);
        for (int ib = 0; ib < 8; ib++)
            for (int l = 0; l < 4; l++) {
                const float db =
                    d * (float)(2 * ((x[i].scales[ib] >> (4 * (l / 2))) & 0xf) + 1) * 0.125f;
                const int idx = x[i].qs[4 * ib + l] | (((x[i].qh[ib] >> (2 * l)) & 3) << 8);
                const uint64_t e = sl_iq2s_grid[idx];
                const unsigned s = x[i].qs[32 + 4 * ib + l];
                for (int j = 0; j < 8; j++)
                    *y++ = db * (float)g8(e, j) * sgnf(s, j);
            }
    }
}

static void deq_iq3_xxs(const sl_block_iq3_xxs *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = sl_f16_to_f32(x[i].d);
        for (int ib = 0; ib < 8; ib++) {
            const uint32_t aux = rd32(x[i].qs + 64 + 4 * ib);
            const float db = d * (float)(2 * (aux >> 28) + 1) * 0.25f;
            for (int l = 0; l < 4; l++) {
                const unsigned s = sl_ksigns_iq2xs[(aux >> (7 * l)) & 127];
                for (int j = 0; j < 8; j++) {
                    const uint32_t e = sl_iq3xxs_grid[x[i].qs[8 * ib + 2 * l + j / 4]];
                    *y++ = db * (float)g4(e, j % 4) * sgnf(s, j);
                }
            }
        }
    }
}

static void deq_iq3_s(const sl_block_iq3_s *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = sl_f16_to_f32(x[i].d);
        for (int ib = 0; ib < 8; ib++) {
            const float db = d * (float)(2 * ((x[i].scales[ib / 2] >> (4 * (ib % 2))) & 0xf) + 1);
            for (int l = 0; l < 4; l++) {
                const unsigned s = x[i].signs[4 * ib + l];
                for (int j = 0; j < 8; j++) {
                    const int k = 2 * l + j / 4;
                    const int idx = x[i].qs[8 * ib + k] | (((x[i].qh[ib] >> k) & 1) << 8);
                    *y++ = db * (float)g4(sl_iq3s_grid[idx], j % 4) * sgnf(s, j);
                }
            }
        }
    }
}

static void deq_iq1_s(const sl_block_iq1_s *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = sl_f16_to_f32(x[i].d);
        for (int ib = 0; ib < 8; ib++) {
            const unsigned h = x[i].qh[ib];
            const float dl = d * (float)(2 * ((h >> 12) & 7) + 1);
            const float delta = h & 0x8000 ? -SL_IQ1_DELTA : SL_IQ1_DELTA;
            for (int l = 0; l < 4; l++) {
                const uint64_t e = sl_iq1s_grid[x[i].qs[4 * ib + l] | (((h >> (3 * l)) & 7) << 8)];
                for (int j = 0; j < 8; j++)
                    *y++ = dl * ((float)(int8_t)g8(e, j) + delta);
            }
        }
    }
}

static void deq_iq1_m(const sl_block_iq1_m *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = iq1m_d(&x[i]);
        for (int g = 0; g < 32; g++) { /* group of 8: sub-block g / 4, half g % 4 / 2 */
            const int ib = g / 4, l = g % 4;
            const float dl = d * (float)(2 * iq1m_ls(&x[i], 2 * ib + l / 2) + 1);
            const unsigned h = x[i].qh[2 * ib + l / 2] >> (4 * (l % 2));
            const float delta = h & 8 ? -SL_IQ1_DELTA : SL_IQ1_DELTA;
            const uint64_t e = sl_iq1s_grid[x[i].qs[4 * ib + l] | ((h & 7) << 8)];
            for (int j = 0; j < 8; j++)
                *y++ = dl * ((float)(int8_t)g8(e, j) + delta);
        }
    }
}

void sl_iq_dequantize(sl_type_t t, const void *src, float *dst, int64_t nb) {
    switch (t) {
    case SL_TYPE_IQ2_XXS:
        deq_iq2_xxs(src, dst, nb);
        break;
    case SL_TYPE_IQ2_XS:
        deq_iq2_xs(src, dst, nb);
        break;
    case SL_TYPE_IQ2_S:
        deq_iq2_s(src, dst, nb);
        break;
    case SL_TYPE_IQ3_XXS:
        deq_iq3_xxs(src, dst, nb);
        break;
    case SL_TYPE_IQ3_S:
        deq_iq3_s(src, dst, nb);
        break;
    case SL_TYPE_IQ1_S:
        deq_iq1_s(src, dst, nb);
        break;
    case SL_TYPE_IQ1_M:
        deq_iq1_m(src, dst, nb);
        break;
    default:
        break;
    }
}

/* ---- integer form ---- */

float sl_iq_decode(sl_type_t t, const void *blk, int8_t q[SL_QK_K], int16_t sc[16]) {
    switch (t) {
    case SL_TYPE_IQ2_XXS: {
        const sl_block_iq2_xxs *b = blk;
        const uint8_t *p = (const uint8_t *)b->qs;
        for (int ib = 0; ib < 8; ib++) {
            const uint32_t a0 = rd32(p + 8 * ib), a1 = rd32(p + 8 * ib + 4);
            sc[2 * ib] = sc[2 * ib + 1] = (int16_t)(2 * (a1 >> 28) + 1);
            for (int l = 0; l < 4; l++) {
                const uint64_t e = sl_iq2xxs_grid[(a0 >> (8 * l)) & 0xff];
                const unsigned s = sl_ksigns_iq2xs[(a1 >> (7 * l)) & 127];
                for (int j = 0; j < 8; j++)
                    q[32 * ib + 8 * l + j] = (int8_t)((s >> j) & 1 ? -g8(e, j) : g8(e, j));
            }
        }
        return sl_f16_to_f32(b->d) * 0.125f;
    }
    case SL_TYPE_IQ2_XS:
    case SL_TYPE_IQ2_S: {
        const bool xs = t == SL_TYPE_IQ2_XS;
        const sl_block_iq2_xs *bx = blk;
        const sl_block_iq2_s *bs = blk;
        const uint8_t *scales = xs ? bx->scales : bs->scales;
        for (int ib = 0; ib < 8; ib++) {
            sc[2 * ib] = (int16_t)(2 * (scales[ib] & 0xf) + 1);
            sc[2 * ib + 1] = (int16_t)(2 * (scales[ib] >> 4) + 1);
            for (int l = 0; l < 4; l++) {
                uint64_t e;
                unsigned s;
                if (xs) {
                    const uint16_t v = bx->qs[4 * ib + l];
                    e = sl_iq2xs_grid[v & 511], s = sl_ksigns_iq2xs[v >> 9];
                } else {
                    e = sl_iq2s_grid[bs->qs[4 * ib + l] | (((bs->qh[ib] >> (2 * l)) & 3) << 8)];
                    s = bs->qs[32 + 4 * ib + l];
                }
                for (int j = 0; j < 8; j++)
                    q[32 * ib + 8 * l + j] = (int8_t)((s >> j) & 1 ? -g8(e, j) : g8(e, j));
            }
        }
        return sl_f16_to_f32(xs ? bx->d : bs->d) * 0.125f;
    }
    case SL_TYPE_IQ3_XXS: {
        const sl_block_iq3_xxs *b = blk;
        for (int ib = 0; ib < 8; ib++) {
            const uint32_t aux = rd32(b->qs + 64 + 4 * ib);
            sc[2 * ib] = sc[2 * ib + 1] = (int16_t)(2 * (aux >> 28) + 1);
            for (int l = 0; l < 4; l++) {
                const unsigned s = sl_ksigns_iq2xs[(aux >> (7 * l)) & 127];
                for (int j = 0; j < 8; j++) {
                    const int v = g4(sl_iq3xxs_grid[b->qs[8 * ib + 2 * l + j / 4]], j % 4);
                    q[32 * ib + 8 * l + j] = (int8_t)((s >> j) & 1 ? -v : v);
                }
            }
        }
        return sl_f16_to_f32(b->d) * 0.25f;
    }
    case SL_TYPE_IQ3_S: {
        const sl_block_iq3_s *b = blk;
        for (int ib = 0; ib < 8; ib++) {
            sc[2 * ib] = sc[2 * ib + 1] =
                (int16_t)(2 * ((b->scales[ib / 2] >> (4 * (ib % 2))) & 0xf) + 1);
            for (int k = 0; k < 8; k++) {
                const uint32_t e = sl_iq3s_grid[b->qs[8 * ib + k] | (((b->qh[ib] >> k) & 1) << 8)];
                const unsigned s = b->signs[4 * ib + k / 2] >> (4 * (k % 2));
                for (int j = 0; j < 4; j++)
                    q[32 * ib + 4 * k + j] = (int8_t)((s >> j) & 1 ? -g4(e, j) : g4(e, j));
            }
        }
        return sl_f16_to_f32(b->d);
    }
    case SL_TYPE_IQ1_S: {
        const sl_block_iq1_s *b = blk;
        for (int ib = 0; ib < 8; ib++) {
            const unsigned h = b->qh[ib];
            sc[2 * ib] = sc[2 * ib + 1] = (int16_t)(2 * ((h >> 12) & 7) + 1);
            const int delta = h & 0x8000 ? -1 : 1;
            for (int l = 0; l < 4; l++) {
                const uint64_t e = sl_iq1s_grid[b->qs[4 * ib + l] | (((h >> (3 * l)) & 7) << 8)];
                for (int j = 0; j < 8; j++)
                    q[32 * ib + 8 * l + j] = (int8_t)(8 * (int8_t)g8(e, j) + delta);
            }
        }
        return sl_f16_to_f32(b->d) * 0.125f;
    }
    case SL_TYPE_IQ1_M: {
        const sl_block_iq1_m *b = blk;
        for (int k = 0; k < 16; k++)
            sc[k] = (int16_t)(2 * iq1m_ls(b, k) + 1);
        for (int g = 0; g < 32; g++) {
            const int ib = g / 4, l = g % 4;
            const unsigned h = b->qh[2 * ib + l / 2] >> (4 * (l % 2));
            const int delta = h & 8 ? -1 : 1;
            const uint64_t e = sl_iq1s_grid[b->qs[4 * ib + l] | ((h & 7) << 8)];
            for (int j = 0; j < 8; j++)
                q[8 * g + j] = (int8_t)(8 * (int8_t)g8(e, j) + delta);
        }
        return iq1m_d(b) * 0.125f;
    }
    default:
        memset(q, 0, SL_QK_K);
        memset(sc, 0, 16 * sizeof sc[0]);
        return 0.0f;
    }
}

float sl_iq_mults(sl_type_t t, const void *blk, int16_t sc[16]) {
    const uint8_t *b = blk;
    float d = 0.0f;
    for (int ib = 0; ib < 8; ib++) {
        int lo = 0, hi = 0;
        switch (t) {
        case SL_TYPE_IQ2_XXS:
            lo = hi = (int)(rd32(b + 2 + 8 * ib + 4) >> 28), d = 0.125f;
            break;
        case SL_TYPE_IQ2_XS:
            lo = b[66 + ib] & 15, hi = b[66 + ib] >> 4, d = 0.125f;
            break;
        case SL_TYPE_IQ2_S:
            lo = b[74 + ib] & 15, hi = b[74 + ib] >> 4, d = 0.125f;
            break;
        case SL_TYPE_IQ3_XXS:
            lo = hi = (int)(rd32(b + 2 + 64 + 4 * ib) >> 28), d = 0.25f;
            break;
        case SL_TYPE_IQ3_S:
            lo = hi = (b[106 + ib / 2] >> (4 * (ib % 2))) & 15, d = 1.0f;
            break;
        case SL_TYPE_IQ1_S:
            lo = hi = (rd16(b + 34 + 2 * ib) >> 12) & 7, d = 0.125f;
            break;
        case SL_TYPE_IQ1_M:
            lo = iq1m_ls(blk, 2 * ib), hi = iq1m_ls(blk, 2 * ib + 1), d = 0.125f;
            break;
        default:
            break;
        }
        sc[2 * ib] = (int16_t)(2 * lo + 1), sc[2 * ib + 1] = (int16_t)(2 * hi + 1);
    }
    if (t == SL_TYPE_IQ1_M) return iq1m_d(blk) * d;
    sl_f16_t h;
    memcpy(&h, b, 2);
    return sl_f16_to_f32(h) * d;
}

/* ---- quantization ---- */

/* The distinct values a codebook's entries hold (magnitudes for iq2 / iq3,
 * signed bytes for iq1). */
static const uint8_t lv_iq2[] = {0x08, 0x19, 0x2b};
static const uint8_t lv_iq3xxs[] = {4, 12, 20, 28, 36, 44, 52, 62};
static const uint8_t lv_iq3s[] = {1, 3, 5, 7, 9, 11, 13, 15};
static const uint8_t lv_iq1[] = {0x00, 0x01, 0xff};

typedef struct iq_kind {
    const uint8_t *grid; /* entry e's values: bytes e·w .. e·w + w − 1 */
    int n, w;            /* entries, values per entry (8 or 4) */
    const uint8_t *lv;
    int nlv;
    int gsize;   /* elements per multiplier: 16 or 32 */
    int mmax;    /* largest multiplier 2·ls + 1 */
    float c;     /* weight = f16 d · c · multiplier · value */
    bool parity; /* 7-bit sign codes: even number of minus signs per 8 */
    bool iq1;
} iq_kind_t;

static iq_kind_t iq_kind(sl_type_t t) {
    switch (t) {
    case SL_TYPE_IQ2_XXS:
        return (iq_kind_t){
            (const uint8_t *)sl_iq2xxs_grid, 256, 8, lv_iq2, 3, 32, 31, 0.125f, true, false};
    case SL_TYPE_IQ2_XS:
        return (iq_kind_t){
            (const uint8_t *)sl_iq2xs_grid, 512, 8, lv_iq2, 3, 16, 31, 0.125f, true, false};
    case SL_TYPE_IQ2_S:
        return (iq_kind_t){
            (const uint8_t *)sl_iq2s_grid, 1024, 8, lv_iq2, 3, 16, 31, 0.125f, false, false};
    case SL_TYPE_IQ3_XXS:
        return (iq_kind_t){
            (const uint8_t *)sl_iq3xxs_grid, 256, 4, lv_iq3xxs, 8, 32, 31, 0.25f, true, false};
    case SL_TYPE_IQ3_S:
        return (iq_kind_t){
            (const uint8_t *)sl_iq3s_grid, 512, 4, lv_iq3s, 8, 32, 31, 1.0f, false, false};
    case SL_TYPE_IQ1_S:
        return (iq_kind_t){
            (const uint8_t *)sl_iq1s_grid, 2048, 8, lv_iq1, 3, 32, 15, 1.0f, false, true};
    default:
        return (iq_kind_t){
            (const uint8_t *)sl_iq1s_grid, 2048, 8, lv_iq1, 3, 16, 15, 1.0f, false, true};
    }
}

/* cost[j][b]: squared error of element j taking value byte b (only the
 * kind's level bytes are filled in and read). */
typedef float iq_cost_t[8][256];

/* The codebook search. Entries are sorted as integers, so those sharing
 * their top bytes (the last elements) are contiguous: costs are summed from
 * the last element down, and once the partial sum plus the least possible
 * cost of the remaining elements (lb) cannot win, every following entry
 * with the same top bytes is skipped at once. */
static bool same_top(const iq_kind_t *k, int e, int f,
                     int j) { /* entries e, f agree in bytes j.. */
    const uint8_t *a = k->grid + (size_t)e * (size_t)k->w, *b = k->grid + (size_t)f * (size_t)k->w;
    return !memcmp(a + j, b + j, (size_t)(k->w - j));
}
static void lower_bounds(const iq_kind_t *k, const iq_cost_t cost, int off, float lb[9]) {
    lb[0] = 0; /* lb[j]: least cost of elements 0..j-1 */
    for (int j = 0; j < k->w; j++) {
        float m = INFINITY;
        for (int l = 0; l < k->nlv; l++)
            m = fminf(m, cost[off + j][k->lv[l]]);
        lb[j + 1] = lb[j] + m;
    }
}

/* The entry of least total cost over w elements. */
static int grid_best(const iq_kind_t *k, const iq_cost_t cost, int off, float *err) {
    float lb[9], best = INFINITY;
    lower_bounds(k, cost, off, lb);
    int bi = 0;
    for (int e = 0; e < k->n;) {
        const uint8_t *b = k->grid + (size_t)e * (size_t)k->w;
        float s = 0;
        int j = k->w - 1;
        for (; j >= 0; j--) {
            s += cost[off + j][b[j]];
            if (s + lb[j] >= best) break;
        }
        const int e0 = e++;
        if (j < 0) {
            best = s, bi = e0;
            continue;
        }
        while (e < k->n && same_top(k, e, e0, j))
            e++;
    }
    *err = best;
    return bi;
}

/* As grid_best, and also the best entry with the sign of one element
 * flipped (flip[j][b]: the extra cost of that, >= 0): entry *ef, element
 * *jf. */
static void grid_best_flip(const iq_kind_t *k, const iq_cost_t cost, const iq_cost_t flip, int off,
                           int *ep, float *errp, int *ef, int *jf, float *errf) {
    float lb[9], bp = INFINITY, bf = INFINITY;
    lower_bounds(k, cost, off, lb);
    *ep = *ef = *jf = 0;
    for (int e = 0; e < k->n;) {
        const uint8_t *b = k->grid + (size_t)e * (size_t)k->w;
        float s = 0;
        int j = k->w - 1;
        for (; j >= 0; j--) {
            s += cost[off + j][b[j]];
            if (s + lb[j] >= bp && s + lb[j] >= bf) break;
        }
        const int e0 = e++;
        if (j >= 0) {
            while (e < k->n && same_top(k, e, e0, j))
                e++;
            continue;
        }
        if (s < bp) bp = s, *ep = e0;
        int jm = 0;
        for (j = 1; j < k->w; j++)
            if (flip[off + j][b[j]] < flip[off + jm][b[jm]]) jm = j;
        if (s + flip[off + jm][b[jm]] < bf) bf = s + flip[off + jm][b[jm]], *ef = e0, *jf = jm;
    }
    *errp = bp, *errf = bf;
}

/* The codes of one multiplier's elements (16 or 32). */
typedef struct iq_codes {
    uint16_t idx[8]; /* grid index per entry, in element order */
    uint8_t sgn[4];  /* per group of 8: bit j = element j negative */
    uint8_t dneg[4]; /* iq1, per group of 8: delta negative */
} iq_codes_t;

static float iq1_group(const iq_kind_t *k, const float *x, float s, float delta, int *idx) {
    iq_cost_t cost;
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < k->nlv; l++) {
            const float r = x[j] - s * ((float)(int8_t)k->lv[l] + delta);
            cost[j][k->lv[l]] = r * r;
        }
    float err;
    *idx = grid_best(k, cost, 0, &err);
    return err;
}

/* Best codes for n elements at scale s (weight = s · value); the squared
 * error. */
static float iq_fit(const iq_kind_t *k, const float *x, int n, float s, iq_codes_t *c) {
    memset(c, 0, sizeof *c);
    float total = 0;
    if (k->iq1) {
        if (n == 32) { /* iq1_s: one delta sign for all 4 groups */
            int ip[4], in[4];
            float ep = 0, en = 0;
            for (int g = 0; g < 4; g++) {
                ep += iq1_group(k, x + 8 * g, s, SL_IQ1_DELTA, &ip[g]);
                en += iq1_group(k, x + 8 * g, s, -SL_IQ1_DELTA, &in[g]);
            }
            for (int g = 0; g < 4; g++)
                c->idx[g] = (uint16_t)(en < ep ? in[g] : ip[g]), c->dneg[g] = en < ep;
            return en < ep ? en : ep;
        }
        for (int g = 0; g < n / 8; g++) {
            int ip, in;
            const float ep = iq1_group(k, x + 8 * g, s, SL_IQ1_DELTA, &ip);
            const float en = iq1_group(k, x + 8 * g, s, -SL_IQ1_DELTA, &in);
            c->idx[g] = (uint16_t)(en < ep ? in : ip), c->dneg[g] = en < ep;
            total += en < ep ? en : ep;
        }
        return total;
    }
    for (int g = 0; g < n / 8; g++) {
        const float *xg = x + 8 * g;
        iq_cost_t cost, flip;
        unsigned neg = 0;
        for (int j = 0; j < 8; j++) {
            const float a = fabsf(xg[j]);
            if (xg[j] < 0) neg |= 1u << j;
            for (int l = 0; l < k->nlv; l++) {
                const float v = s * (float)k->lv[l], r = a - v;
                cost[j][k->lv[l]] = r * r;
                flip[j][k->lv[l]] = 4.0f * a * v;
            }
        }
        const bool odd = __builtin_popcount(neg) & 1;
        const int per = 8 / k->w; /* entries per group: 1 (iq2) or 2 (iq3) */
        if (!k->parity || !odd) {
            for (int h = 0; h < per; h++) {
                float err;
                c->idx[per * g + h] = (uint16_t)grid_best(k, cost, h * k->w, &err);
                total += err;
            }
            c->sgn[g] = (uint8_t)neg;
            continue;
        }
        /* odd number of negatives under a parity code: exactly one element
         * changes sign; the entry (or pair of entries) and element of least
         * total cost */
        int ep[2], ef[2], jf[2];
        float errp[2], errf[2];
        for (int h = 0; h < per; h++)
            grid_best_flip(k, cost, flip, h * k->w, &ep[h], &errp[h], &ef[h], &jf[h], &errf[h]);
        int hf = 0; /* the entry that carries the flip */
        if (per == 2 && errf[1] + errp[0] < errf[0] + errp[1]) hf = 1;
        for (int h = 0; h < per; h++) {
            c->idx[per * g + h] = (uint16_t)(h == hf ? ef[h] : ep[h]);
            total += h == hf ? errf[h] : errp[h];
        }
        c->sgn[g] = (uint8_t)(neg ^ (1u << (hf * k->w + jf[hf])));
    }
    return total;
}

/* Squared error of n elements at scale s with every element at its nearest
 * level (the codebook's combinations ignored); iq1 takes the better delta
 * sign per group of 8 (per 32 elements for iq1_s). Σ x·v and Σ v·v of that
 * assignment go to *xv, *vv for a least-squares refit. */
static float iq_level_err(const iq_kind_t *k, const float *x, int n, float s, float *xv,
                          float *vv) {
    float total = 0, sxv = 0, svv = 0;
    const int span = k->iq1 && n == 32 ? 32 : 8;
    for (int g = 0; g < n / span; g++) {
        float best = INFINITY, bxv = 0, bvv = 0;
        for (int sd = 0; sd < (k->iq1 ? 2 : 1); sd++) {
            const float delta = k->iq1 ? (sd ? -SL_IQ1_DELTA : SL_IQ1_DELTA) : 0.0f;
            float e = 0, pxv = 0, pvv = 0;
            for (int j = 0; j < span; j++) {
                const float xj = x[span * g + j], a = k->iq1 ? xj : fabsf(xj);
                float bd = INFINITY, bv = 0;
                for (int l = 0; l < k->nlv; l++) {
                    const float v = (k->iq1 ? (float)(int8_t)k->lv[l] : (float)k->lv[l]) + delta,
                                r = a - s * v;
                    if (r * r < bd) bd = r * r, bv = v;
                }
                e += bd, pxv += a * bv, pvv += bv * bv;
            }
            if (e < best) best = e, bxv = pxv, bvv = pvv;
        }
        total += best, sxv += bxv, svv += bvv;
    }
    *xv = sxv, *vv = svv;
    return total;
}

/* A scale for n elements: the best of 16 candidates around amax / (largest
 * value), then a least-squares refit of that one's assignment. */
static float iq_pick_scale(const iq_kind_t *k, const float *x, int n) {
    float amax = 0;
    for (int j = 0; j < n; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    if (amax == 0) return 0;
    float vmax = 0;
    for (int l = 0; l < k->nlv; l++)
        vmax = fmaxf(vmax, k->iq1 ? 1.0f + SL_IQ1_DELTA : (float)k->lv[l]);
    float best = INFINITY, bs = amax / vmax, xv, vv, bxv = 0, bvv = 0;
    for (int c = 0; c < 16; c++) {
        const float s = amax / vmax * (0.45f + 0.05f * (float)c);
        const float e = iq_level_err(k, x, n, s, &xv, &vv);
        if (e < best) best = e, bs = s, bxv = xv, bvv = vv;
    }
    if (bvv > 0 && bxv > 0) {
        const float s = bxv / bvv;
        if (iq_level_err(k, x, n, s, &xv, &vv) < best) bs = s;
    }
    return bs;
}

static void iq_pack(sl_type_t t, int g, int ls, const iq_codes_t *c, void *blk) {
    switch (t) {
    case SL_TYPE_IQ2_XXS: { /* g = sub-block */
        uint8_t *p = (uint8_t *)((sl_block_iq2_xxs *)blk)->qs + 8 * g;
        uint32_t a0 = 0, a1 = (uint32_t)ls << 28;
        for (int l = 0; l < 4; l++)
            a0 |= (uint32_t)c->idx[l] << (8 * l), a1 |= (uint32_t)(c->sgn[l] & 127) << (7 * l);
        wr32(p, a0);
        wr32(p + 4, a1);
        break;
    }
    case SL_TYPE_IQ2_XS: { /* g = half sub-block */
        sl_block_iq2_xs *b = blk;
        for (int h = 0; h < 2; h++)
            b->qs[2 * g + h] = (uint16_t)(c->idx[h] | (c->sgn[h] & 127) << 9);
        b->scales[g / 2] |= (uint8_t)(ls << (4 * (g % 2)));
        break;
    }
    case SL_TYPE_IQ2_S: {
        sl_block_iq2_s *b = blk;
        for (int h = 0; h < 2; h++) {
            const int l = 2 * (g % 2) + h;
            b->qs[2 * g + h] = (uint8_t)(c->idx[h] & 0xff);
            b->qh[g / 2] |= (uint8_t)((c->idx[h] >> 8) << (2 * l));
            b->qs[32 + 2 * g + h] = c->sgn[h];
        }
        b->scales[g / 2] |= (uint8_t)(ls << (4 * (g % 2)));
        break;
    }
    case SL_TYPE_IQ3_XXS: {
        sl_block_iq3_xxs *b = blk;
        uint32_t aux = (uint32_t)ls << 28;
        for (int e = 0; e < 8; e++)
            b->qs[8 * g + e] = (uint8_t)c->idx[e];
        for (int l = 0; l < 4; l++)
            aux |= (uint32_t)(c->sgn[l] & 127) << (7 * l);
        wr32(b->qs + 64 + 4 * g, aux);
        break;
    }
    case SL_TYPE_IQ3_S: {
        sl_block_iq3_s *b = blk;
        for (int e = 0; e < 8; e++) {
            b->qs[8 * g + e] = (uint8_t)(c->idx[e] & 0xff);
            b->qh[g] |= (uint8_t)((c->idx[e] >> 8) << e);
        }
        memcpy(b->signs + 4 * g, c->sgn, 4);
        b->scales[g / 2] |= (uint8_t)(ls << (4 * (g % 2)));
        break;
    }
    case SL_TYPE_IQ1_S: {
        sl_block_iq1_s *b = blk;
        uint16_t h = (uint16_t)(ls << 12 | (c->dneg[0] ? 0x8000 : 0));
        for (int l = 0; l < 4; l++) {
            b->qs[4 * g + l] = (uint8_t)(c->idx[l] & 0xff);
            h = (uint16_t)(h | (c->idx[l] >> 8) << (3 * l));
        }
        b->qh[g] = h;
        break;
    }
    case SL_TYPE_IQ1_M: { /* g = 16-element half of sub-block g / 2 */
        sl_block_iq1_m *b = blk;
        uint8_t h = 0;
        for (int e = 0; e < 2; e++) {
            b->qs[2 * g + e] = (uint8_t)(c->idx[e] & 0xff);
            h = (uint8_t)(h | ((c->idx[e] >> 8) | (c->dneg[e] ? 8 : 0)) << (4 * e));
        }
        b->qh[g] = h;
        uint16_t s = rd16(b->scales + 2 * (g / 4));
        wr16(b->scales + 2 * (g / 4), (uint16_t)(s | ls << (3 * (g % 4))));
        break;
    }
    default:
        break;
    }
}

static void iq_quant_block(sl_type_t t, const iq_kind_t *k, const float *x, void *blk) {
    const int ng = SL_QK_K / k->gsize;
    float s[16], smax = 0;
    for (int g = 0; g < ng; g++)
        s[g] = iq_pick_scale(k, x + g * k->gsize, k->gsize), smax = fmaxf(smax, s[g]);
    /* d · c · mmax = the largest sub-block scale; d as stored (f16) */
    const float dmax = 65504.0f;
    const sl_f16_t d16 = sl_f32_to_f16(fminf(smax / (float)k->mmax / k->c, dmax));
    const float D = sl_f16_to_f32(d16) * k->c;
    memset(blk, 0, sl_type_traits(t)->type_size);
    for (int g = 0; g < ng; g++) {
        /* the wanted multiplier m = 2·ls + 1 lies between two odd ones:
         * iq1 takes the nearer, iq2 / iq3 the one whose codes fit best
         * (2–4 % less error for about twice the time; iq1's 2048-entry
         * search is slow already) */
        const int lmax = (k->mmax - 1) / 2;
        float h = D > 0 ? (s[g] / D - 1.0f) * 0.5f : 0.0f;
        h = h > 0 ? fminf(h, (float)lmax) : 0.0f; /* also NaN → 0: only then to int */
        int lo = (int)floorf(h), hi = lo < lmax ? lo + 1 : lmax;
        if (k->iq1 || D == 0) lo = hi = (int)lrintf(h);
        iq_codes_t c, best;
        memset(&best, 0, sizeof best);
        float be = INFINITY;
        int bls = lo;
        for (int l = lo; l <= hi; l++) {
            const float e = iq_fit(k, x + g * k->gsize, k->gsize, D * (float)(2 * l + 1), &c);
            if (e < be) be = e, best = c, bls = l;
        }
        iq_pack(t, g, bls, &best, blk);
    }
    if (t == SL_TYPE_IQ1_M) { /* d's 4 nibbles to the top of the scale words */
        sl_block_iq1_m *b = blk;
        for (int w = 0; w < 4; w++) {
            const uint16_t v = rd16(b->scales + 2 * w);
            wr16(b->scales + 2 * w, (uint16_t)((v & 0x0fff) | ((d16 >> (4 * w)) & 0xf) << 12));
        }
    } else {
        memcpy(blk, &d16, sizeof d16); /* d leads every other block */
    }
}

void sl_iq_quantize(sl_type_t t, const float *src, void *dst, int64_t nb) {
    if (!sl_iq_grid_type(t)) return;
    const iq_kind_t k = iq_kind(t);
    const size_t bs = sl_type_traits(t)->type_size;
    for (int64_t i = 0; i < nb; i++)
        iq_quant_block(t, &k, src + i * SL_QK_K, (uint8_t *)dst + (size_t)i * bs);
}
