/*
 * kern_impl.h — private to kernels/: the table of per-type kernels that
 * sl_kernels_init() fills for the chosen ISA, and the scalar helpers the SIMD
 * files reuse.
 *
 * A table starts as the scalar reference (dot.c) and each ISA file overrides
 * the entries it speeds up, so a type without a SIMD kernel still works.
 */
#ifndef SILICA_KERN_IMPL_H
#define SILICA_KERN_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"

/* Dot of one weight row (n elements) with one activation row already in the
 * type's vec_dot_type. */
typedef float (*sl_dot_fn)(int64_t n, const void *w, const void *x);
/* A tile of dots: nr weight rows (any count: sl_matmul passes a chunk),
 * wstride bytes apart, times nc (<= SL_TILE_MAX) activation rows, xstride
 * bytes apart; out[c * ostride + r] (floats) gets the dot of weight row r
 * with activation row c. */
typedef void (*sl_tile_fn)(int64_t n, const void *w, size_t wstride, int nr, const void *x,
                           size_t xstride, int nc, float *out, size_t ostride);
/* Quantizes a row of n floats to an activation type (q8_0, q8_1, q8_K). */
typedef void (*sl_quant_fn)(const float *x, void *y, int64_t n);

#define SL_TILE_MAX 4

/* Prefill activations of the q8_0-dotted weight types (q4_0, q5_0, q8_0) as
 * a panel: 4 tokens interleaved per 32-element block, scales already floats.
 * d[c] = the token's q8_0 block scale, s[c] = d[c] · Σ qs[c] (for the
 * offset of unsigned weight codes). Tokens past the end are zero. */
typedef struct sl_q8x4 {
    float d[4];
    float s[4];
    /* 128 · Σ qs[c]: the s32 offset of q8_0 codes made unsigned (top bit
     * flipped); >> 3, >> 4: the q5_0, q4_0 offsets (16 · Σ, 8 · Σ) */
    int32_t o[4];
    int32_t pad_[4]; /* qs 32-byte aligned in an array of panels (the AVX2 kernels load it so) */
    int8_t qs[4][32];
} sl_q8x4_t;
_Static_assert(sizeof(sl_q8x4_t) % 32 == 0 && offsetof(sl_q8x4_t, qs) % 32 == 0, "sl_q8x4_t: qs 32-aligned");

/* Prefill with many tokens: a chunk of weight rows (a multiple of 8, the
 * last panel padded with zero rows) is first unpacked into 8-row panels of
 * n/32 blocks of SL_U_PANEL_BLOCK bytes — the 8 rows' float scales d, their
 * 8 float offsets m, then 8 groups of 32 code bytes, group g holding
 * elements 4g..4g+3 of row 0, then of row 1, ... row 7 — so the GEMM loop
 * over the token groups does no bit unpacking at all. A weight is d·q + m
 * with q the code (unsigned 0..31 for q4_0/q4_1/q5_0/q5_1, where q4_0's
 * m = −8d; signed for q8_0, m = 0). SL_U_ROW_BYTES is the size per row. */
#define SL_U_PANEL_BLOCK 320
#define SL_U_ROW_BYTES(n) ((size_t)((n) / 32) * (SL_U_PANEL_BLOCK / 8))
typedef void (*sl_unpack_fn)(int64_t n, const void *w, size_t wstride, int nr, uint8_t *dst);
/* GEMM of nr unpacked rows × the 4 tokens of one panel group. */
typedef void (*sl_gemmu_fn)(int64_t n, const uint8_t *u, int nr, const sl_q8x4_t *xp, int nc, float *out,
                            size_t ostride);

/* The k-quants (q4_K, q5_K, q6_K) unpack per 256-element super-block into
 * SL_UK_SB_BYTES: 256 code bytes (unsigned, element order), 8 × 16 int16
 * scales (the scale of each element pair-sum lane of a 32-element chunk),
 * 16 int16 mins (per 16 elements, against q8_K's bsums), float d, float
 * dmin; a weight is d·scale·q − dmin·min. They dot with q8_K rows. */
#define SL_UK_SB_BYTES 552
#define SL_UK_ROW_BYTES(n) ((size_t)((n) / 256) * SL_UK_SB_BYTES)
typedef void (*sl_gemmuk_fn)(int64_t n, const uint8_t *u, int nr, const void *x, size_t xstride, int nc,
                             float *out, size_t ostride);

/* Decode activations of the same types: one token's q8_0 blocks with the
 * scale as a float and s = d · Σ qs. */
typedef struct sl_q8f {
    float d;
    float s;
    int8_t qs[32];
} sl_q8f_t;
/* Dot of one weight row (n elements) with a sl_q8f_t row. */
typedef float (*sl_dotf_fn)(int64_t n, const void *w, const sl_q8f_t *x);

/* GEMM over a panel: nr weight rows (wstride bytes apart) × the 4 tokens of
 * one panel group (n / 32 sl_q8x4_t blocks); out[c * ostride + r] gets the
 * dot of weight row r with token c, for c < nc only. */
typedef void (*sl_gemm_fn)(int64_t n, const void *w, size_t wstride, int nr, const sl_q8x4_t *xp,
                           int nc, float *out, size_t ostride);

/* x8 q8_0 panel of 8 rows × nb blocks, block after block (one stream):
 * block b = the 8 rows' f16 scales (16 bytes), then 8 groups of 32 code
 * bytes, group g holding elements 4g..4g+3 of row 0, then of row 1, ...
 * row 7 — 272 bytes, the same as the 8 rows' GGUF blocks. */
#define SL_X8_Q8_0_BLOCK 272
#define SL_X8_D(panel, b) ((const uint8_t *)(panel) + (size_t)(b) * SL_X8_Q8_0_BLOCK)
#define SL_X8_Q(panel, b) (SL_X8_D(panel, b) + 16)
/* x8 q5_0 block of 8 rows (176 bytes, as their 8 GGUF blocks), with "code
 * j of group g" = element 4g + j % 4 of row j / 4 as above: the 8 f16
 * scales; 32 bytes of high bits, bits 2k, 2k + 1 of byte j = bits 3, 4 of
 * code j of group k + 4; then 4 × 32 bytes, byte j of vector k = code j of
 * group k (bits 0-4) and bits 0-2 of code j of group k + 4 (bits 5-7): a
 * group k is one AND, a group k + 4 a shift and AND of vector k ORed with
 * a shift and AND of the high bits. */
#define SL_X8_Q5_0_BLOCK 176
/* x8 q4_0 block: the 8 f16 scales, then 4 nibble vectors, byte j of
 * vector k = code j of group k (low nibble) and of group k + 4 (high)
 * (144 bytes). iq4_nl's x8 blocks are the same (their codes codebook
 * indices). */
#define SL_X8_Q4_0_BLOCK 144
/* x8 q5_1 / q4_1 blocks: the q5_0 / q4_0 block with the 8 rows' f16 mins m
 * between the scales and the codes (192 / 160 bytes); a weight is d · q + m
 * with the code q unsigned. */
#define SL_X8_Q5_1_BLOCK 192
#define SL_X8_Q4_1_BLOCK 160
/* x8 q4_K super-block of 8 rows (1152 bytes, as their 8 GGUF blocks): the
 * 8 f16 d, the 8 f16 dmin; 64 bytes, byte 8j + r = the low 4 bits of row
 * r's sub-block j scale (bits 0-3) and min (bits 4-7); 32 bytes, byte 8j +
 * r (j < 4) = the top 2 bits of scale j, min j, scale j + 4, min j + 4 (bits
 * 0-1, 2-3, 4-5, 6-7); then per 32-element sub-block j 4 × 32 bytes of
 * nibbles as in x8 q4_0 (code j' of group g = element 32j + 4g + j' % 4 of
 * row j' / 4; groups k low, k + 4 high in vector k). */
#define SL_X8_Q4_K_BLOCK 1152
/* x8 q5_K super-block (1408 bytes, as 8 GGUF blocks): as x8 q4_K, but each
 * sub-block's 4 nibble vectors are followed by a vector of the codes' fifth
 * bits, bit k of byte j' = code j' of group k (k < 4: low nibbles) and bit
 * 4 + k = code j' of group k + 4; codes 0..31. */
#define SL_X8_Q5_K_BLOCK 1408
/* x8 q6_K super-block of 8 rows (1680 bytes, as their 8 GGUF blocks): the
 * 8 f16 d; 8 × 16 bytes of int8 scales, bytes 16j + 2r, 16j + 2r + 1 = row
 * r's scales 2j, 2j + 1 (elements 32j..32j+15, 32j+16..32j+31); then per
 * 32-element sub-block j 192 bytes: 4 nibble vectors as in x8 q4_K (the
 * low 4 bits of the codes; code j' of group g = element 32j + 4g + j' % 4
 * of row j' / 4, groups k low and k + 4 high in vector k), then 2 vectors
 * of top bits, bits 2k, 2k + 1 of byte j' of vector h = bits 4, 5 of code
 * j' of group 4h + k. A weight is d · scale · (code − 32), code 0..63. */
#define SL_X8_Q6_K_BLOCK 1680
/* x8 iq4_xs super-block of 8 rows (1088 bytes, as their 8 GGUF blocks): the
 * 8 f16 d; the 8 rows' scales_h (2 bytes each), then their scales_l (4
 * bytes each); then per 32-element sub-block 4 × 32 bytes of index nibbles
 * as in x8 q4_0 (row r's bytes 4r..4r+3 of vector k = its qs[4k..4k+3]). */
#define SL_X8_IQ4_XS_BLOCK 1088
/* Many tokens over x8 panels of a type without x8_gemm: nr rows (whole
 * panels, the last one possibly padded) expanded into SL_U_PANEL_BLOCK
 * panels for the type's gemmu. */
typedef void (*sl_x8_unpack_fn)(int64_t n, const void *panels, int nr, uint8_t *dst);
/* Decode: the 8 rows of one x8 panel · one token's activations → out[0..7]:
 * a sl_q8f_t row for q8_0 / q5_0 / q4_0, a q8_K row for q4_K / q5_K / q6_K. */
typedef void (*sl_x8_dot_fn)(int64_t n, const void *panel, const void *x, float *out);
/* Many tokens over the x8 panels of a type dotted with q8_K rows: the 8
 * rows of one panel · nc (<= 4) q8_K rows xstride bytes apart, the codes
 * expanded once for all of them; out[t * ostride + r]. */
typedef void (*sl_x8_dot4_fn)(int64_t n, const void *panel, const void *x, size_t xstride, int nc, float *out,
                              size_t ostride);
/* Weight bytes a many-token kernel prefetches while it runs (the rows its
 * thread takes next), a few lines per block so the DRAM reads overlap the
 * arithmetic: step bytes (a multiple of 64) per block, from p to end. */
typedef struct sl_pf {
    const uint8_t *p, *end;
    size_t step;
} sl_pf_t;

/* np consecutive x8 panels × the nc (<= 4) tokens of one sl_q8x4_t group;
 * out[c * ostride + r] for the 8·np rows; pf (may be NULL) advanced per block. */
typedef void (*sl_x8_gemm_fn)(int64_t n, const void *panels, int np, const sl_q8x4_t *xp, int nc, float *out,
                              size_t ostride, sl_pf_t *pf);

/* Activations with float scales (sl_q8f_t rows, a token's slot in a
 * sl_q8x4_t panel): nb q8_0 blocks of x; block b's scale (the f16-rounded
 * q8_0 scale, as a float), d · Σ qs and 32 codes go to byte offset b ·
 * stride from d, s and qs. The same codes and scale as quant[SL_TYPE_Q8_0]
 * of the same table. */
typedef void (*sl_quantf_fn)(const float *x, int64_t nb, float *d, float *s, int8_t *qs, size_t stride);

/* Float weights (f32 / f16 / bf16) in the tiles and dots of every ISA:
 * their kind, and element i of a row as a float (the tails past the last
 * full vector; f16 and bf16 convert exactly). */
enum { SL_FW_F32, SL_FW_F16, SL_FW_BF16 };
static inline float sl_fw_load1(int kind, const void *row, int64_t i) {
    if (kind == SL_FW_F16) return sl_f16_to_f32(((const sl_f16_t *)row)[i]);
    if (kind == SL_FW_BF16) return sl_bf16_to_f32(((const sl_bf16_t *)row)[i]);
    return ((const float *)row)[i];
}

/* The row and token loop of a float-weight tile (f32 / f16 / bf16 against
 * f32 activations; the AVX2 and AVX-512 tiles): ROWS(kind, R, NC, n, w0,
 * ws, xr, s) computes R rows (at most 8) × NC tokens (1 or 4) into
 * s[r][c]; one token goes 8, 4 or 1 rows at a time, several RB (> 1), 2 or
 * 1. Tokens past nc repeat token 0 and are not stored. Expects kind, n, w,
 * ws, nr, x, xs, nc, out, os in scope. */
#define SL_TILE_FW_LOOP(ROWS, RB)                                                                       \
    do {                                                                                                \
        const float *xr[4];                                                                             \
        for (int c = 0; c < 4; c++) xr[c] = (const float *)((const uint8_t *)x + (size_t)(c < nc ? c : 0) * xs); \
        for (int r = 0; r < nr;) {                                                                      \
            const uint8_t *w0 = (const uint8_t *)w + (size_t)r * ws;                                    \
            float s[8][4];                                                                              \
            int R;                                                                                      \
            if (nc == 1) {                                                                              \
                R = nr - r >= 8 ? 8 : nr - r >= 4 ? 4 : 1;                                              \
                if (R == 8)                                                                             \
                    ROWS(kind, 8, 1, n, w0, ws, xr, s);                                                 \
                else if (R == 4)                                                                        \
                    ROWS(kind, 4, 1, n, w0, ws, xr, s);                                                 \
                else                                                                                    \
                    ROWS(kind, 1, 1, n, w0, ws, xr, s);                                                 \
            } else {                                                                                    \
                R = nr - r >= (RB) ? (RB) : nr - r >= 2 ? 2 : 1;                                        \
                if (R == (RB))                                                                          \
                    ROWS(kind, (RB), 4, n, w0, ws, xr, s);                                              \
                else if (R == 2)                                                                        \
                    ROWS(kind, 2, 4, n, w0, ws, xr, s);                                                 \
                else                                                                                    \
                    ROWS(kind, 1, 4, n, w0, ws, xr, s);                                                 \
            }                                                                                           \
            for (int k = 0; k < R; k++)                                                                 \
                for (int c = 0; c < nc; c++) out[(size_t)c * os + (size_t)(r + k)] = s[k][c];           \
            r += R;                                                                                     \
        }                                                                                               \
    } while (0)

typedef struct sl_kern_table {
    sl_dot_fn dot[SL_TYPE_COUNT];
    sl_tile_fn tile[SL_TYPE_COUNT]; /* NULL: sl_matmul builds tiles from dot */
    sl_quant_fn quant[SL_TYPE_COUNT];
    sl_quantf_fn quantf; /* with quant[SL_TYPE_Q8_0] */
    sl_gemm_fn gemm[SL_TYPE_COUNT]; /* q8_0-dotted types; preferred over tile */
    sl_dotf_fn dotf[SL_TYPE_COUNT]; /* q8_0-dotted types, decode; preferred over dot */
    sl_unpack_fn unpack[SL_TYPE_COUNT]; /* with gemmu: many-token prefill */
    sl_gemmu_fn gemmu[SL_TYPE_COUNT];
    sl_gemmuk_fn gemmuk[SL_TYPE_COUNT]; /* k-quants, with unpack */
    sl_x8_dot_fn x8_dot[SL_TYPE_COUNT];   /* x8 panels: both or neither */
    sl_x8_gemm_fn x8_gemm[SL_TYPE_COUNT]; /* or x8_unpack + gemmu */
    /* as x8_gemm, up to 8 tokens: the groups at xp and xp + n / 32 (where set) */
    sl_x8_gemm_fn x8_gemm8[SL_TYPE_COUNT];
    sl_x8_unpack_fn x8_unpack[SL_TYPE_COUNT];
    sl_x8_dot4_fn x8_dot4[SL_TYPE_COUNT]; /* optional, q8_K-dotted x8 types */
    /* optional with x8_dot4: two adjacent panels (16 rows, out[t · os +
     * 0..15]) at once */
    sl_x8_dot4_fn x8_dot4x2[SL_TYPE_COUNT];
} sl_kern_table_t;

/* Fill functions: scalar sets every entry; the others override what they
 * implement and return false (touching nothing) when not built for this CPU
 * architecture. */
void sl_kern_fill_scalar(sl_kern_table_t *t);
bool sl_kern_fill_avx2(sl_kern_table_t *t);
bool sl_kern_fill_avx512(sl_kern_table_t *t);
/* AVX-VNNI (VEX vpdpbusd) x8 / GEMM kernels over an AVX2 table. */
bool sl_kern_fill_avxvnni(sl_kern_table_t *t);
bool sl_kern_fill_neon(sl_kern_table_t *t);
/* Tests only: the VNNI kernels (x8_vnni.h) over an exact AVX2 emulation
 * of vpdpbusd, installed over an AVX2 table; false where AVX2 is not built
 * or t has no AVX2 x8 kernels. */
bool sl_kern_fill_vnni_emul(sl_kern_table_t *t);
/* Tests only: the avx512 level's kernels (avx512_body.h + x8_vnni.h) over
 * AVX2 emulations of their instructions, installed over an AVX2 table as
 * sl_kern_fill_avx512 installs the real ones; false as above. */
bool sl_kern_fill_avx512_emul(sl_kern_table_t *t);
/* Tests only: makes t the current table (NULL: back to the ISA's own);
 * t must outlive its use. */
void sl_kern_use_table(const sl_kern_table_t *t);

bool sl_cpu_has_avx512bf16(void);

/* The table of the current ISA (sl_kernels_init() runs first if needed). */
const sl_kern_table_t *sl_kern_table(void);

/* Scalar references the SIMD files and tests share. */
void sl_quantize_q8_0_ref(const float *x, void *y, int64_t n);
/* iq4_xs sub-block ib's scale ls − 32 (−32..31): low 4 bits in nibble
 * ib % 2 of scales_l[ib / 2], high 2 bits at bits 2·ib of scales_h. */
static inline int sl_iq4xs_scale(const sl_block_iq4_xs *b, int ib) {
    return (((b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) | (((b->scales_h >> (2 * ib)) & 3) << 4)) - 32;
}
void sl_quantize_q8_1_ref(const float *x, void *y, int64_t n);
void sl_quantize_q8_K_ref(const float *x, void *y, int64_t n);
/* Grid i-quants (iquant.c): iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s,
 * iq1_s, iq1_m. */
bool sl_iq_grid_type(sl_type_t t);
void sl_iq_dequantize(sl_type_t t, const void *src, float *dst, int64_t nb);
void sl_iq_quantize(sl_type_t t, const float *src, void *dst, int64_t nb);
/* One super-block as integers: weight e = D · sc[e / 16] · q[e], D the
 * return value. q: the signed grid value (iq2: ±8..43, iq3_xxs: ±4..62,
 * iq3_s: ±1..15), for iq1 8 · grid ± 1 (−9..9); sc: the odd multiplier
 * 2·ls + 1 (1..31). Exact: D is the f16 scale times 1/8 (iq2, iq1), 1/4
 * (iq3_xxs) or 1 (iq3_s). */
float sl_iq_decode(sl_type_t t, const void *blk, int8_t q[SL_QK_K], int16_t sc[16]);
/* Only the multipliers and D of sl_iq_decode. */
float sl_iq_mults(sl_type_t t, const void *blk, int16_t sc[16]);
void sl_k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m);
void sl_q3k_scales(const uint8_t *sc12, int8_t out[16]);

#endif
