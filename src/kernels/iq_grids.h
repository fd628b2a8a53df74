/*
 * iq_grids.h — ggml's i-quant codebooks (iq_grids.c says where they are
 * defined and how an entry packs its values) and the 7-bit sign table.
 */
#ifndef SILICA_IQ_GRIDS_H
#define SILICA_IQ_GRIDS_H

#include <stdint.h>

/* ksigns: the 8 sign bits of a group of 8 from a 7-bit code i — i itself
 * in bits 0-6, the parity of i in bit 7, so every pattern has an even
 * number of minus signs (ggml's ksigns_iq2xs). Bit j set: element j is
 * negative. */
extern const uint8_t sl_ksigns_iq2xs[128];
/* The same patterns as 8 bytes each: −1 (0xff) for a set bit, +1 (0x01)
 * otherwise (derived in iq_grids.c, for the SIMD dots). */
extern const uint64_t sl_ksigns_pm1[128];

extern const uint64_t sl_iq2xxs_grid[256]; /* 8 values each: 8, 25, 43 */
extern const uint64_t sl_iq2xs_grid[512];
extern const uint64_t sl_iq2s_grid[1024];
extern const uint32_t sl_iq3xxs_grid[256]; /* 4 values each: 4 .. 62 */
extern const uint32_t sl_iq3s_grid[512];   /* 4 values each: 1 .. 15, odd */
extern const uint64_t sl_iq1s_grid[2048];  /* 8 signed bytes each: −1, 0, 1 */

/* iq1_s / iq1_m: every value is grid + delta or grid − delta (ggml's
 * IQ1S_DELTA and IQ1M_DELTA, both 0.125). */
#define SL_IQ1_DELTA 0.125f

#endif
