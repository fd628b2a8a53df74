/*
 * quant.h — the tensor element types of GGUF (numbering as ggml defines it)
 * and their block layouts, byte for byte.
 *
 * A row of n elements of a block type is n / blck consecutive blocks; n must
 * be a multiple of the block size. Sizes are asserted at compile time in
 * quant.c so a layout can never drift from the file format.
 */
#ifndef SILICA_QUANT_H
#define SILICA_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sl_type {
    SL_TYPE_F32 = 0,
    SL_TYPE_F16 = 1,
    SL_TYPE_Q4_0 = 2,
    SL_TYPE_Q4_1 = 3,
    SL_TYPE_Q5_0 = 6,
    SL_TYPE_Q5_1 = 7,
    SL_TYPE_Q8_0 = 8,
    SL_TYPE_Q8_1 = 9,
    SL_TYPE_Q2_K = 10,
    SL_TYPE_Q3_K = 11,
    SL_TYPE_Q4_K = 12,
    SL_TYPE_Q5_K = 13,
    SL_TYPE_Q6_K = 14,
    SL_TYPE_Q8_K = 15,
    SL_TYPE_IQ2_XXS = 16,
    SL_TYPE_IQ2_XS = 17,
    SL_TYPE_IQ3_XXS = 18,
    SL_TYPE_IQ1_S = 19,
    SL_TYPE_IQ4_NL = 20,
    SL_TYPE_IQ3_S = 21,
    SL_TYPE_IQ2_S = 22,
    SL_TYPE_IQ4_XS = 23,
    SL_TYPE_I8 = 24,
    SL_TYPE_I16 = 25,
    SL_TYPE_I32 = 26,
    SL_TYPE_I64 = 27,
    SL_TYPE_F64 = 28,
    SL_TYPE_IQ1_M = 29,
    SL_TYPE_BF16 = 30,
    SL_TYPE_MXFP4 = 39,
    SL_TYPE_COUNT = 40
} sl_type_t;

typedef uint16_t sl_f16_t;  /* IEEE half, raw bits */
typedef uint16_t sl_bf16_t; /* bfloat16, raw bits */

#define SL_QK4_0 32
#define SL_QK4_1 32
#define SL_QK5_0 32
#define SL_QK5_1 32
#define SL_QK8_0 32
#define SL_QK8_1 32
#define SL_QK_K 256
#define SL_K_SCALE_SIZE 12

typedef struct { sl_f16_t d; uint8_t qs[SL_QK4_0 / 2]; } sl_block_q4_0;
typedef struct { sl_f16_t d; sl_f16_t m; uint8_t qs[SL_QK4_1 / 2]; } sl_block_q4_1;
typedef struct { sl_f16_t d; uint8_t qh[4]; uint8_t qs[SL_QK5_0 / 2]; } sl_block_q5_0;
typedef struct { sl_f16_t d; sl_f16_t m; uint8_t qh[4]; uint8_t qs[SL_QK5_1 / 2]; } sl_block_q5_1;
typedef struct { sl_f16_t d; int8_t qs[SL_QK8_0]; } sl_block_q8_0;
typedef struct { sl_f16_t d; sl_f16_t s; int8_t qs[SL_QK8_1]; } sl_block_q8_1; /* s = d * sum(qs) */
typedef struct {
    sl_f16_t d;    /* super-block scale for quantized scales */
    sl_f16_t dmin; /* super-block scale for quantized mins */
    uint8_t scales[SL_K_SCALE_SIZE]; /* 8 × (6-bit scale, 6-bit min) packed */
    uint8_t qs[SL_QK_K / 2];
} sl_block_q4_K;
typedef struct {
    sl_f16_t d;
    sl_f16_t dmin;
    uint8_t scales[SL_K_SCALE_SIZE];
    uint8_t qh[SL_QK_K / 8];
    uint8_t qs[SL_QK_K / 2];
} sl_block_q5_K;
typedef struct {
    uint8_t ql[SL_QK_K / 2];      /* lower 4 bits */
    uint8_t qh[SL_QK_K / 4];      /* upper 2 bits */
    int8_t scales[SL_QK_K / 16];  /* 8-bit scales */
    sl_f16_t d;
} sl_block_q6_K;
typedef struct {
    float d;
    int8_t qs[SL_QK_K];
    int16_t bsums[SL_QK_K / 16]; /* sum of qs in groups of 16 */
} sl_block_q8_K;
typedef struct {
    uint8_t scales[SL_QK_K / 16];
    uint8_t qs[SL_QK_K / 4];
    sl_f16_t d;
    sl_f16_t dmin;
} sl_block_q2_K;
typedef struct {
    uint8_t hmask[SL_QK_K / 8];
    uint8_t qs[SL_QK_K / 4];
    uint8_t scales[12];
    sl_f16_t d;
} sl_block_q3_K;

/* iq4_nl / iq4_xs: 4-bit indices into the non-linear codebook
 * sl_kvalues_iq4nl (ggml's kvalues_iq4nl); iq4_nl scales a 32-block by d,
 * iq4_xs each 32-element sub-block of a super-block by d · (ls − 32), ls a
 * 6-bit value: low 4 bits in scales_l (nibble ib % 2 of byte ib / 2), high
 * 2 bits at bits 2·ib of scales_h. Within a 32-block the low nibbles of the
 * 16 bytes are elements 0-15, the high nibbles 16-31. */
#define SL_QK4_NL 32
typedef struct { sl_f16_t d; uint8_t qs[SL_QK4_NL / 2]; } sl_block_iq4_nl;
typedef struct {
    sl_f16_t d;
    uint16_t scales_h;
    uint8_t scales_l[SL_QK_K / 64];
    uint8_t qs[SL_QK_K / 2];
} sl_block_iq4_xs;
extern const int8_t sl_kvalues_iq4nl[16];

/* The grid i-quants (ggml's iq2_xxs .. iq1_m): each group of 8 (iq2, iq1)
 * or 4 (iq3) elements is one entry of a fixed codebook (kernels/iq_grids.h),
 * its values unsigned magnitudes with separate sign bits (iq2, iq3) or
 * signed −1/0/1 (iq1). Sub-block scales are odd multiples 2·ls + 1 of the
 * super-block scale. Where a group's signs are a 7-bit code (iq2_xxs,
 * iq2_xs, iq3_xxs), the 8th sign is the parity of the 7 (sl_ksigns_iq2xs):
 * a group always has an even number of minus signs.
 *
 * iq2_xxs (2.06 bits/weight): per 32-element sub-block ib, qs[4ib..4ib+3]
 * read as two little-endian uint32 a0, a1: byte l of a0 = the grid index
 * (iq2xxs_grid) of elements 8l..8l+7; bits 7l..7l+6 of a1 their sign code;
 * bits 28-31 of a1 = ls. Weight = d · (2·ls + 1) / 8 · grid · sign. */
typedef struct { sl_f16_t d; uint16_t qs[SL_QK_K / 8]; } sl_block_iq2_xxs;
/* iq2_xs (2.31): qs[4ib + l] = 9-bit grid index (iq2xs_grid) | 7-bit sign
 * code << 9 for elements 32ib + 8l..; scales[ib] = ls of elements
 * 32ib..+15 (low nibble) and 32ib+16..+31 (high). Weight = d · (2·ls + 1) /
 * 8 · grid · sign. */
typedef struct { sl_f16_t d; uint16_t qs[SL_QK_K / 8]; uint8_t scales[SL_QK_K / 32]; } sl_block_iq2_xs;
/* iq2_s (2.56): qs[0..31] the low 8 bits of the grid index (iq2s_grid) of
 * each group of 8, bits 2l, 2l + 1 of qh[ib] bits 8-9 of group 4ib + l's;
 * qs[32..63] the groups' 8 sign bits (bit j: element j negative); scales
 * as iq2_xs. */
typedef struct {
    sl_f16_t d;
    uint8_t qs[SL_QK_K / 4];
    uint8_t qh[SL_QK_K / 32];
    uint8_t scales[SL_QK_K / 32];
} sl_block_iq2_s;
/* iq3_xxs (3.06): qs[0..63] grid indices (iq3xxs_grid), one per 4
 * elements; then per sub-block ib a little-endian uint32 at qs[64 + 4ib]:
 * 4 sign codes of 7 bits (one per group of 8) and ls in bits 28-31.
 * Weight = d · (2·ls + 1) / 4 · grid · sign. */
typedef struct { sl_f16_t d; uint8_t qs[3 * SL_QK_K / 8]; } sl_block_iq3_xxs;
/* iq3_s (3.44): qs[8ib + k] the low 8 bits of the grid index (iq3s_grid)
 * of elements 32ib + 4k..+3, bit k of qh[ib] its 9th bit; signs[4ib + l]
 * the 8 sign bits of elements 32ib + 8l..; scales[ib / 2] nibble ib % 2 =
 * ls. Weight = d · (2·ls + 1) · grid · sign. */
typedef struct {
    sl_f16_t d;
    uint8_t qs[SL_QK_K / 4];
    uint8_t qh[SL_QK_K / 32];
    uint8_t signs[SL_QK_K / 8];
    uint8_t scales[SL_QK_K / 64];
} sl_block_iq3_s;
/* iq1_s (1.56): qs[4ib + l] the low 8 bits of the 11-bit grid index
 * (iq1s_grid) of elements 32ib + 8l..; qh[ib] bits 3l..3l+2 the high 3,
 * bits 12-14 ls, bit 15 the sign of the delta. Weight = d · (2·ls + 1) ·
 * (grid ± 1/8). */
typedef struct { sl_f16_t d; uint8_t qs[SL_QK_K / 8]; uint16_t qh[SL_QK_K / 32]; } sl_block_iq1_s;
/* iq1_m (1.75): qs as iq1_s; qh[2ib + h] holds groups 4ib + 2h (bits 0-2:
 * index bits 8-10, bit 3: delta negative) and 4ib + 2h + 1 (bits 4-6, 7);
 * scales read as 4 little-endian uint16 s[0..3]: 3-bit ls of elements
 * 16k..16k+15 at bits 3·(k % 4) of s[k / 4], and the f16 d split over their
 * top nibbles (s[0] bits 12-15 = d bits 0-3, ... s[3] = d bits 12-15).
 * Weight = d · (2·ls + 1) · (grid ± 1/8). */
typedef struct {
    uint8_t qs[SL_QK_K / 8];
    uint8_t qh[SL_QK_K / 16];
    uint8_t scales[SL_QK_K / 32];
} sl_block_iq1_m;

/* mxfp4 (OCP microscaling FP4, gpt-oss's type): 32-element blocks of 4-bit
 * E2M1 codes, in ggml's doubled form sl_kvalues_mxfp4 (0, ±0.5·2, ±1·2, ...
 * ±6·2), and an E8M0 exponent e: weight = 2^(e − 128) · kvalues[code]
 * (sl_e8m0_half: the block scale halved to undo the doubling). Nibbles as
 * iq4_nl: low = elements 0-15, high = 16-31. */
#define SL_QK_MXFP4 32
typedef struct { uint8_t e; uint8_t qs[SL_QK_MXFP4 / 2]; } sl_block_mxfp4;
extern const int8_t sl_kvalues_mxfp4[16];
static inline float sl_e8m0_half(uint8_t e) {
    /* 2^(e − 128): the float of exponent field e − 1, or for e < 2 the
     * subnormals 2^-128, 2^-127 */
    const union { uint32_t u; float f; } v = {e >= 2 ? (uint32_t)(e - 1) << 23 : 0x00200000u << e};
    return v.f;
}

typedef struct sl_type_traits {
    const char *name;      /* "q4_K", as GGUF tools print it */
    int64_t blck;          /* elements per block (1 for plain types) */
    size_t type_size;      /* bytes per block */
    bool supported;        /* Silica can dequantize it */
    sl_type_t vec_dot_type; /* what activations are quantized to for dot products */
} sl_type_traits_t;

/* Traits of a type; NULL for numbers that are not ggml types. */
const sl_type_traits_t *sl_type_traits(sl_type_t t);
const char *sl_type_name(sl_type_t t);           /* "?" for unknown */
int sl_type_from_name(const char *name, sl_type_t *out); /* case-insensitive; 0 or -1 */
/* Bytes of a row of n elements; 0 if n is not a multiple of the block size
 * or the type is unknown. */
size_t sl_row_size(sl_type_t t, int64_t n);

float sl_f16_to_f32(sl_f16_t h);
sl_f16_t sl_f32_to_f16(float f);
float sl_bf16_to_f32(sl_bf16_t h);
sl_bf16_t sl_f32_to_bf16(float f); /* round to nearest even */

/* Scalar reference conversions (also used by the SIMD paths for tails).
 * n must be a multiple of the type's block size. */
void sl_dequantize_row(sl_type_t t, const void *src, float *dst, int64_t n);
/* Quantize a row; returns 0, or -1 when the type cannot be produced. */
int sl_quantize_row(sl_type_t t, const float *src, void *dst, int64_t n);
bool sl_can_quantize(sl_type_t t);

#endif
