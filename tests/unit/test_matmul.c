/* deps: base kernels */
/*
 * test_matmul.c — sl_matmul and the per-ISA dot kernels.
 *
 * References are computed here in double from dequantized rows: the weights
 * dequantized with sl_dequantize_row and the activations quantized to the
 * type's vec_dot_type and dequantized back (that is the product the kernels
 * are defined to compute). Every ISA this CPU supports is checked against
 * the reference and against scalar on many sizes; ISAs the CPU lacks are
 * skipped with a note.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "kernels/kern_impl.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "test.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float gauss(void) {
    float s = 0;
    for (int i = 0; i < 6; i++) s += (float)(rnd() & 0xffffff) / 8388608.0f - 1.0f;
    return s * 0.7f;
}

static void put_f16(uint8_t *p, float f) {
    sl_f16_t h = sl_f32_to_f16(f);
    memcpy(p, &h, 2);
}

static const sl_type_t all_types[] = {
    SL_TYPE_F32,  SL_TYPE_F16,  SL_TYPE_BF16, SL_TYPE_Q4_0, SL_TYPE_Q4_1,
    SL_TYPE_Q5_0, SL_TYPE_Q5_1, SL_TYPE_Q8_0, SL_TYPE_Q2_K, SL_TYPE_Q3_K,
    SL_TYPE_Q4_K, SL_TYPE_Q5_K, SL_TYPE_Q6_K, SL_TYPE_IQ4_NL, SL_TYPE_IQ4_XS,
    SL_TYPE_IQ2_XXS, SL_TYPE_IQ2_XS, SL_TYPE_IQ2_S, SL_TYPE_IQ3_XXS, SL_TYPE_IQ3_S,
    SL_TYPE_IQ1_S, SL_TYPE_IQ1_M, SL_TYPE_MXFP4,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* Fills a weight matrix of rows × n: quantized from random floats where we
 * can quantize, random bytes with sane scales otherwise — and for the grid
 * i-quants, whose every bit pattern is a valid block and whose quantizer
 * (searching codebooks) is slow under the sanitizers. */
static void make_weights(sl_type_t t, uint8_t *w, int64_t rows, int64_t n, float *tmp) {
    size_t rs = sl_row_size(t, n);
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = w + (size_t)r * rs;
        if (sl_can_quantize(t) && !sl_iq_grid_type(t)) {
            for (int64_t i = 0; i < n; i++) tmp[i] = gauss();
            sl_quantize_row(t, tmp, row, n);
        } else if (sl_iq_grid_type(t)) {
            for (size_t i = 0; i < rs; i++) row[i] = (uint8_t)rnd();
            const size_t bs = sl_type_traits(t)->type_size;
            for (size_t off = 0; off < rs; off += bs) {
                if (t == SL_TYPE_IQ1_M) { /* d in the scale words' top nibbles */
                    const sl_f16_t d = sl_f32_to_f16(0.01f);
                    for (int k = 0; k < 4; k++)
                        row[off + 48 + 2 * k + 1] =
                            (uint8_t)((row[off + 48 + 2 * k + 1] & 0x0f) | ((d >> (4 * k)) & 0xf) << 4);
                } else {
                    put_f16(row + off, 0.01f);
                }
            }
        } else {
            for (size_t i = 0; i < rs; i++) row[i] = (uint8_t)rnd();
            for (size_t off = 0; off < rs; off += sl_type_traits(t)->type_size) {
                if (t == SL_TYPE_Q2_K) {
                    put_f16(row + off + 80, 0.01f);
                    put_f16(row + off + 82, 0.004f);
                } else {
                    put_f16(row + off + 108, 0.01f);
                }
            }
        }
    }
}

/* y_ref[t][o] in double from dequantized weights and activations. The
 * activations go through the current ISA's quantizer, as in sl_matmul: SIMD
 * quantizers may round a tie the other way than the scalar one (checked
 * separately to within one step), which would otherwise show here as a
 * 1e-4-sized error on an unlucky draw. */
static void reference(sl_type_t t, const uint8_t *w, int64_t n_in, int64_t n_out, const float *x,
                      int64_t n_tok, double *yref, double *ymag) {
    sl_type_t vt = sl_type_traits(t)->vec_dot_type;
    const sl_quant_fn quant = sl_kern_table()->quant[vt];
    float *wd = malloc(sizeof(float) * (size_t)n_in);
    float *xd = malloc(sizeof(float) * (size_t)(n_in * n_tok));
    uint8_t *xq = malloc(sl_row_size(vt, n_in) + 64);
    for (int64_t k = 0; k < n_tok; k++) {
        if (quant)
            quant(x + k * n_in, xq, n_in);
        else
            sl_quantize_row(vt, x + k * n_in, xq, n_in);
        sl_dequantize_row(vt, xq, xd + k * n_in, n_in);
    }
    size_t rs = sl_row_size(t, n_in);
    for (int64_t o = 0; o < n_out; o++) {
        sl_dequantize_row(t, w + (size_t)o * rs, wd, n_in);
        for (int64_t k = 0; k < n_tok; k++) {
            double s = 0, m = 0;
            for (int64_t i = 0; i < n_in; i++) {
                s += (double)wd[i] * xd[k * n_in + i];
                m += fabs((double)wd[i] * xd[k * n_in + i]);
            }
            yref[k * n_out + o] = s;
            ymag[k * n_out + o] = m;
        }
    }
    free(wd);
    free(xd);
    free(xq);
}

static int check_against(const float *y, const double *yref, const double *ymag, int64_t count,
                         double rel) {
    int bad = 0;
    for (int64_t i = 0; i < count; i++)
        if (!(fabs(y[i] - yref[i]) <= rel * ymag[i] + 1e-4)) {
            if (bad < 3)
                fprintf(stderr, "    [%lld] got %g want %g (mag %g)\n", (long long)i, y[i], yref[i],
                        ymag[i]);
            bad++;
        }
    return bad;
}

static void run_matmul_cases(sl_isa_t isa, sl_pool_t *pool) {
    /* 100: rows the float types alone take (not a multiple of 8) */
    static const int64_t n_ins[] = {256, 512, 1280, 100};
    static const int64_t n_outs[] = {1, 7, 33};
    static const int64_t n_toks[] = {1, 2, 5, 9, 17}; /* 17: the unpacked-row GEMM */
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        sl_type_t t = all_types[ti];
        int bad = 0;
        for (size_t a = 0; a < 4; a++)
            for (size_t b = 0; b < 3; b++)
                for (size_t c = 0; c < 5; c++) {
                    int64_t n_in = n_ins[a], n_out = n_outs[b], n_tok = n_toks[c];
                    if (sl_row_size(t, n_in) == 0) continue;
                    uint8_t *w = malloc(sl_row_size(t, n_in) * (size_t)n_out);
                    float *tmp = malloc(sizeof(float) * (size_t)n_in);
                    float *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
                    float *y = malloc(sizeof(float) * (size_t)(n_out * n_tok));
                    double *yr = malloc(sizeof(double) * (size_t)(n_out * n_tok));
                    double *ym = malloc(sizeof(double) * (size_t)(n_out * n_tok));
                    make_weights(t, w, n_out, n_in, tmp);
                    for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = gauss() * (1 + (float)(i % 7));
                    reference(t, w, n_in, n_out, x, n_tok, yr, ym);
                    sl_matmul(pool, w, t, n_in, n_out, x, n_tok, y);
                    /* q8_1's s = d * sum(qs) is stored as f16, so types dotted
                     * with q8_1 carry that rounding (as in ggml). */
                    double tol = sl_type_traits(t)->vec_dot_type == SL_TYPE_Q8_1 ? 1e-3 : 2e-4;
                    int e = check_against(y, yr, ym, n_out * n_tok, tol);
                    if (e)
                        fprintf(stderr, "    %s %s n_in=%lld n_out=%lld n_tok=%lld: %d bad\n",
                                sl_isa_name(isa), sl_type_name(t), (long long)n_in,
                                (long long)n_out, (long long)n_tok, e);
                    bad += e;
                    free(w);
                    free(tmp);
                    free(x);
                    free(y);
                    free(yr);
                    free(ym);
                }
        CHECK_MSG(bad == 0, "%s %s threads=%d", sl_isa_name(isa), sl_type_name(t),
                  sl_pool_size(pool));
    }
}

static const sl_isa_t isas[] = {SL_ISA_SCALAR, SL_ISA_AVX2, SL_ISA_AVX512, SL_ISA_NEON};

static void test_matmul_all_isas(void) {
    sl_pool_t *pool = sl_pool_new(2);
    CHECK(pool != NULL);
    for (size_t i = 0; i < 4; i++) {
        if (!sl_isa_supported(isas[i])) {
            fprintf(stderr, "  note: %s not supported on this CPU, skipped\n", sl_isa_name(isas[i]));
            continue;
        }
        sl_isa_t prev = sl_kernels_set_isa(isas[i]);
        run_matmul_cases(isas[i], NULL);
        run_matmul_cases(isas[i], pool);
        sl_kernels_set_isa(prev);
    }
    sl_pool_free(pool);
}

/* Every SIMD dot against scalar on random rows of many lengths, and every
 * SIMD activation quantizer against the scalar one. */
static void test_simd_dots_match_scalar(void) {
    for (size_t ii = 1; ii < 4; ii++) {
        if (!sl_isa_supported(isas[ii])) continue;
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            sl_type_t t = all_types[ti];
            sl_type_t vt = sl_type_traits(t)->vec_dot_type;
            int64_t blck = SL_MAX(sl_type_traits(t)->blck, 32);
            int bad = 0, badq = 0;
            for (int rep = 0; rep < 40; rep++) {
                int64_t n = blck * (1 + (int64_t)(rnd() % (blck == 256 ? 12 : 80)));
                size_t xrs = sl_row_size(vt, n);
                float *tmp = malloc(sizeof(float) * (size_t)n);
                float *wd = malloc(sizeof(float) * (size_t)n), *xd = malloc(sizeof(float) * (size_t)n);
                float *xd2 = malloc(sizeof(float) * (size_t)n);
                uint8_t *w = malloc(sl_row_size(t, n));
                uint8_t *xq = malloc(xrs), *xq2 = malloc(xrs);
                make_weights(t, w, 1, n, tmp);
                float scale = rep % 3 == 0 ? 50.0f : 1.0f;
                for (int64_t i = 0; i < n; i++) tmp[i] = gauss() * scale;
                sl_isa_t prev = sl_kernels_set_isa(SL_ISA_SCALAR);
                sl_kern_table()->quant[vt](tmp, xq, n);
                float ref = sl_vec_dot(t, n, w, xq);
                sl_dequantize_row(t, w, wd, n);
                sl_dequantize_row(vt, xq, xd, n);
                double mag = 0;
                for (int64_t i = 0; i < n; i++) mag += fabs((double)wd[i] * xd[i]);
                sl_kernels_set_isa(isas[ii]);
                float got = sl_vec_dot(t, n, w, xq);
                sl_kern_table()->quant[vt](tmp, xq2, n);
                sl_kernels_set_isa(prev);
                if (!(fabs(got - ref) <= 2e-5 * mag + 1e-5)) {
                    if (bad < 3)
                        fprintf(stderr, "    %s %s n=%lld: %g vs scalar %g\n", sl_isa_name(isas[ii]),
                                sl_type_name(t), (long long)n, got, ref);
                    bad++;
                }
                /* SIMD quantizers may round exact ties differently: allow
                 * one step, nothing more. */
                sl_dequantize_row(vt, xq2, xd2, n);
                for (int64_t i = 0; i < n; i++) {
                    float step = fabsf(tmp[i]) * 0.02f + scale * 0.05f;
                    if (!(fabsf(xd[i] - xd2[i]) <= step)) badq++;
                }
                if (vt == SL_TYPE_F32 && memcmp(xq, xq2, xrs) != 0) badq++;
                free(tmp);
                free(wd);
                free(xd);
                free(xd2);
                free(w);
                free(xq);
                free(xq2);
            }
            CHECK_MSG(bad == 0, "%s %s dot vs scalar", sl_isa_name(isas[ii]), sl_type_name(t));
            CHECK_MSG(badq == 0, "%s %s activation quantizer vs scalar", sl_isa_name(isas[ii]),
                      sl_type_name(vt));
        }
    }
}

/* Where a level's many-token tiles share their arithmetic with its dots —
 * the float-weight tiles of AVX2 / AVX-512, every NEON type — each token
 * of a batch comes out bit for bit as when it is multiplied alone. */
static void test_tiles_match_single_tokens(void) {
    sl_pool_t *pool = sl_pool_new(2);
    const int64_t n_in = 512, n_out = 37, nt = 6;
    for (size_t ii = 1; ii < 4; ii++) {
        if (!sl_isa_supported(isas[ii])) continue;
        const sl_isa_t prev = sl_kernels_set_isa(isas[ii]);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            const sl_type_t t = all_types[ti];
            const bool fw = t == SL_TYPE_F32 || t == SL_TYPE_F16 || t == SL_TYPE_BF16;
            if (!fw && isas[ii] != SL_ISA_NEON) continue;
            float *tmp = malloc(sizeof(float) * (size_t)n_in), *x = malloc(sizeof(float) * (size_t)(n_in * nt));
            float *yb = malloc(sizeof(float) * (size_t)(n_out * nt)), *y1 = malloc(sizeof(float) * (size_t)n_out);
            uint8_t *w = malloc(sl_row_size(t, n_in) * (size_t)n_out);
            make_weights(t, w, n_out, n_in, tmp);
            for (int64_t i = 0; i < n_in * nt; i++) x[i] = gauss();
            int same = 0;
            for (int p = 0; p < 2; p++) {
                sl_matmul(p ? pool : NULL, w, t, n_in, n_out, x, nt, yb);
                for (int64_t k = 0; k < nt; k++) {
                    sl_matmul(p ? pool : NULL, w, t, n_in, n_out, x + k * n_in, 1, y1);
                    same += !memcmp(y1, yb + k * n_out, sizeof(float) * (size_t)n_out);
                }
            }
            CHECK_MSG(same == 2 * nt, "%s %s: %d of %lld tokens as alone", sl_isa_name(isas[ii]), sl_type_name(t), same,
                      (long long)(2 * nt));
            free(tmp), free(x), free(yb), free(y1), free(w);
        }
        sl_kernels_set_isa(prev);
    }
    sl_pool_free(pool);
}

static void test_bad_shapes_are_safe(void) {
    float x[300], y[4] = {1, 2, 3, 4};
    uint8_t w[4 * 300 * 4];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 300; i++) x[i] = 1;
    /* n_in not a multiple of the block: defined zeros, no reads past w. */
    sl_matmul(NULL, w, SL_TYPE_Q4_K, 300, 4, x, 1, y);
    CHECK(y[0] == 0 && y[3] == 0);
    CHECK(sl_vec_dot(SL_TYPE_Q8_0, 33, w, w) == 0.0f);
}

/* sl_matmul_multi gives exactly what separate sl_matmul calls give: sets of
 * types sharing an activation layout (one pool job) and mixed ones (one by
 * one), decode, small and large batches, with and without threads. */
static void test_matmul_multi(void) {
    const int64_t n = 512;
    const sl_type_t sets[][3] = {
        {SL_TYPE_Q8_0, SL_TYPE_Q5_0, SL_TYPE_Q8_0}, /* q/k/v of a Q4_K_M file */
        {SL_TYPE_Q4_0, SL_TYPE_Q4_1, SL_TYPE_Q5_1},
        {SL_TYPE_Q4_K, SL_TYPE_Q6_K, SL_TYPE_Q4_K},
        {SL_TYPE_Q8_0, SL_TYPE_Q4_K, SL_TYPE_F16}, /* mixed layouts */
    };
    const int64_t outs[3] = {96, 20, 36};
    const int64_t toks[] = {1, 3, 17};
    sl_pool_t *pool2 = sl_pool_new(2);
    float *tmp = malloc(sizeof(float) * (size_t)n);
    float *x = malloc(sizeof(float) * (size_t)(n * 17));
    for (int64_t i = 0; i < n * 17; i++) x[i] = gauss();
    for (size_t si = 0; si < SL_ARRAY_LEN(sets); si++) {
        uint8_t *w[3];
        float *ya[3], *yb[3];
        for (int k = 0; k < 3; k++) {
            w[k] = malloc(sl_row_size(sets[si][k], n) * (size_t)outs[k]);
            make_weights(sets[si][k], w[k], outs[k], n, tmp);
            ya[k] = malloc(sizeof(float) * (size_t)(outs[k] * 17));
            yb[k] = malloc(sizeof(float) * (size_t)(outs[k] * 17));
        }
        for (size_t ti = 0; ti < SL_ARRAY_LEN(toks); ti++)
            for (int p = 0; p < 2; p++) {
                sl_pool_t *pool = p ? pool2 : NULL;
                sl_mm_t mm[3];
                for (int k = 0; k < 3; k++) {
                    sl_matmul(pool, w[k], sets[si][k], n, outs[k], x, toks[ti], ya[k]);
                    mm[k] = (sl_mm_t){w[k], sets[si][k], outs[k], yb[k], false};
                }
                sl_matmul_multi(pool, mm, 3, n, x, toks[ti]);
                for (int k = 0; k < 3; k++)
                    CHECK_MSG(!memcmp(ya[k], yb[k], sizeof(float) * (size_t)(outs[k] * toks[ti])),
                              "multi set %zu matrix %d (%s) n_tok %lld pool %d differs", si, k,
                              sl_type_name(sets[si][k]), (long long)toks[ti], p);
            }
        for (int k = 0; k < 3; k++) free(w[k]), free(ya[k]), free(yb[k]);
    }
    free(tmp);
    free(x);
    sl_pool_free(pool2);
}

/* x8 panels: packing round-trips every row exactly, and the panel kernels
 * (decode dot, GEMM for 2..many tokens, mixed with GGUF-layout matrices in
 * one multi call) give the GGUF-row results up to summation order. */
static void x8_panels_cases(const sl_kern_table_t *installed);
static void test_x8_panels(void) {
    x8_panels_cases(NULL);
}

/* installed: a table put in place with sl_kern_use_table (kept across the
 * scalar-fallback switch inside), or NULL for the ISA's own */
static void x8_panels_cases(const sl_kern_table_t *installed) {
    if (!sl_x8_supported(SL_TYPE_Q8_0, 256, 8)) {
        printf("  (x8 panels not available on this ISA: skipped)\n");
        CHECK(!sl_x8_supported(SL_TYPE_Q8_0, 256, 8));
        return;
    }
    CHECK(sl_x8_supported(SL_TYPE_Q8_0, 256, 12)); /* a padded last panel */
    CHECK(sl_x8_bytes(SL_TYPE_Q8_0, 256, 12) == 16 * sl_row_size(SL_TYPE_Q8_0, 256));
    CHECK(!sl_x8_supported(SL_TYPE_Q3_K, 256, 16)); /* no x8 layout */
    CHECK(!sl_x8_supported(SL_TYPE_Q8_0, 0, 16));
    CHECK(!sl_x8_supported(SL_TYPE_Q4_K, 896, 16)); /* q4_K: whole super-blocks only */
    const int64_t n_ins[] = {64, 896}, n_ins_k[] = {256, 1024};
    const int64_t n_outs[] = {8, 40, 13, 37}; /* 13, 37: padded last panels */
    const int64_t toks[] = {1, 2, 5, 8, 12, 17, 33}; /* 5-8, 12: the 8-token GEMMs */
    const sl_type_t types[] = {SL_TYPE_Q8_0, SL_TYPE_Q5_0, SL_TYPE_Q4_0, SL_TYPE_Q5_1, SL_TYPE_Q4_1,
                               SL_TYPE_Q4_K, SL_TYPE_Q5_K, SL_TYPE_Q6_K, SL_TYPE_IQ4_XS, SL_TYPE_IQ4_NL};
    sl_pool_t *pool2 = sl_pool_new(2);
    for (size_t ty = 0; ty < SL_ARRAY_LEN(types); ty++)
    for (size_t a = 0; a < SL_ARRAY_LEN(n_ins); a++)
        for (size_t b = 0; b < SL_ARRAY_LEN(n_outs); b++) {
            const sl_type_t T = types[ty];
            const int64_t n_in = sl_type_traits(T)->blck == 256 ? n_ins_k[a] : n_ins[a], n_out = n_outs[b];
            const size_t rs = sl_row_size(T, n_in), bytes = rs * (size_t)n_out;
            uint8_t *w = malloc(bytes), *wp = malloc(sl_x8_bytes(T, n_in, n_out)), *row = malloc(rs);
            float *tmp = malloc(sizeof(float) * (size_t)n_in);
            make_weights(T, w, n_out, n_in, tmp);
            sl_x8_pack(T, n_in, w, wp, 0, n_out);
            int rows_ok = 0;
            for (int64_t r = 0; r < n_out; r++) {
                sl_x8_row(T, n_in, wp, r, row);
                rows_ok += !memcmp(row, w + (size_t)r * rs, rs);
            }
            CHECK_MSG(rows_ok == n_out, "x8 %s row round trip n_in %lld: %d of %lld rows", sl_type_name(T), (long long)n_in, rows_ok,
                      (long long)n_out);
            float *x = malloc(sizeof(float) * (size_t)(n_in * 33));
            float *ya = malloc(sizeof(float) * (size_t)(n_out * 33)), *yb = malloc(sizeof(float) * (size_t)(n_out * 33));
            float *yc = malloc(sizeof(float) * (size_t)(n_out * 33));
            double *yr = malloc(sizeof(double) * (size_t)(n_out * 33)), *ym = malloc(sizeof(double) * (size_t)(n_out * 33));
            for (int64_t i = 0; i < n_in * 33; i++) x[i] = gauss() * (1 + (float)(i % 5));
            for (size_t ti = 0; ti < SL_ARRAY_LEN(toks); ti++)
                for (int p = 0; p < 2; p++) {
                    sl_pool_t *pool = p ? pool2 : NULL;
                    const int64_t nt = toks[ti];
                    sl_matmul(pool, w, T, n_in, n_out, x, nt, ya);
                    sl_matmul_x8(pool, wp, T, n_in, n_out, x, nt, yb);
                    /* an x8 and a GGUF-layout matrix sharing one quantized x */
                    const sl_mm_t mm[2] = {{wp, T, n_out, yc, true}, {w, T, n_out, ya, false}};
                    sl_matmul_multi(pool, mm, 2, n_in, x, nt);
                    /* against the f64 reference like every path (the
                     * summation order differs from the GGUF-row kernels) */
                    reference(T, w, n_in, n_out, x, nt, yr, ym);
                    int bad = check_against(yb, yr, ym, n_out * nt, 2e-4);
                    for (int64_t i = 0; i < n_out * nt; i++) bad += !(yb[i] == yc[i]);
                    CHECK_MSG(bad == 0, "x8 %s n_in %lld n_out %lld n_tok %lld pool %d: %d differ", sl_type_name(T), (long long)n_in,
                              (long long)n_out, (long long)nt, p, bad);
                    /* the k-quants' many-token kernels (AVX2, VNNI, two
                     * panels at once) sum the same integers as their decode
                     * dot: each token bit for bit as when it runs alone */
                    if (sl_type_traits(T)->blck == 256 && nt > 1) {
                        int same = 0;
                        for (int64_t t = 0; t < nt; t++) {
                            sl_matmul_x8(pool, wp, T, n_in, n_out, x + t * n_in, 1, yc);
                            same += !memcmp(yc, yb + t * n_out, sizeof(float) * (size_t)n_out);
                        }
                        CHECK_MSG(same == nt, "x8 %s n_out %lld n_tok %lld: %d of %lld tokens as decoded alone",
                                  sl_type_name(T), (long long)n_out, (long long)nt, same, (long long)nt);
                    }
                    /* panels packed under one ISA still compute after a
                     * switch to one without x8 kernels (row fallback) */
                    const sl_isa_t prev = sl_kernels_set_isa(SL_ISA_SCALAR);
                    sl_matmul_x8(pool, wp, T, n_in, n_out, x, nt, yb);
                    sl_matmul(pool, w, T, n_in, n_out, x, nt, yc);
                    sl_kernels_set_isa(prev);
                    if (installed) sl_kern_use_table(installed);
                    CHECK_MSG(!memcmp(yb, yc, sizeof(float) * (size_t)(n_out * nt)),
                              "x8 %s scalar fallback n_in %lld n_tok %lld differs", sl_type_name(T), (long long)n_in, (long long)nt);
                }
            free(w), free(wp), free(row), free(tmp), free(x), free(ya), free(yb), free(yc), free(yr), free(ym);
        }
    sl_pool_free(pool2);
}

/* The matmul and x8 suites with t installed in place of the ISA's table
 * (emulated levels), then the ISA's own table back. */
static void run_suites_installed(const sl_kern_table_t *t) {
    sl_kern_use_table(t);
    sl_pool_t *pool = sl_pool_new(2);
    run_matmul_cases(SL_ISA_AVX2, NULL);
    run_matmul_cases(SL_ISA_AVX2, pool);
    sl_pool_free(pool);
    x8_panels_cases(t);
    sl_kern_use_table(NULL);
}

/* The VNNI kernels (x8_vnni.h: x8 decode and GEMM for q8_0, x8 decode for
 * q5_0 / q4_0, the unpacked-row GEMM of q4_0/q4_1/q5_0/q5_1) run on
 * AVX-512 VNNI CPUs only; the same source over an exact AVX2 emulation of
 * vpdpbusd is checked here against the reference on every AVX2 CPU. */
static void test_vnni_kernels_emulated(void) {
    if (!sl_isa_supported(SL_ISA_AVX2)) {
        printf("  (no AVX2: VNNI kernel emulation skipped)\n");
        return;
    }
    const sl_isa_t prev = sl_kernels_set_isa(SL_ISA_AVX2);
    static sl_kern_table_t t;
    t = *sl_kern_table();
    CHECK(sl_kern_fill_vnni_emul(&t));
    CHECK(t.x8_gemm[SL_TYPE_Q8_0] != sl_kern_table()->x8_gemm[SL_TYPE_Q8_0]);
    CHECK(t.gemmu[SL_TYPE_Q5_1] != sl_kern_table()->gemmu[SL_TYPE_Q5_1]);
    run_suites_installed(&t);
    sl_kernels_set_isa(prev);
}

/* The avx512 level (avx512_body.h over x8_vnni.h) runs on AVX-512 VNNI
 * CPUs only; the same sources over AVX2 emulations of the instructions
 * (avx2/vnni_emul.c) go through every matmul path here, and their dots
 * through lengths that are not whole vectors: the f32/f16/bf16 tails after
 * the 32- and 16-float loops, and every q5_0 high-bit pattern's mask. */
static void test_avx512_kernels_emulated(void) {
    if (!sl_isa_supported(SL_ISA_AVX2)) {
        printf("  (no AVX2: AVX-512 kernel emulation skipped)\n");
        return;
    }
    const sl_isa_t prev = sl_kernels_set_isa(SL_ISA_SCALAR);
    const sl_kern_table_t *scalar = sl_kern_table();
    sl_kernels_set_isa(SL_ISA_AVX2);
    static sl_kern_table_t t;
    t = *sl_kern_table();
    CHECK(sl_kern_fill_avx512_emul(&t));
    CHECK(t.dot[SL_TYPE_BF16] != sl_kern_table()->dot[SL_TYPE_BF16]);
    CHECK(t.tile[SL_TYPE_Q5_0] != sl_kern_table()->tile[SL_TYPE_Q5_0]);
    CHECK(t.dotf[SL_TYPE_Q8_0] == NULL && t.gemm[SL_TYPE_Q8_0] == NULL); /* the VNNI dots and tiles instead */
    CHECK(t.x8_gemm[SL_TYPE_Q8_0] != sl_kern_table()->x8_gemm[SL_TYPE_Q8_0]);
    const sl_type_t dtypes[] = {SL_TYPE_F32, SL_TYPE_F16, SL_TYPE_BF16, SL_TYPE_Q4_0, SL_TYPE_Q5_0, SL_TYPE_Q8_0};
    for (size_t ti = 0; ti < SL_ARRAY_LEN(dtypes); ti++) {
        const sl_type_t T = dtypes[ti], vt = sl_type_traits(T)->vec_dot_type;
        const int64_t blck = sl_type_traits(T)->blck;
        int bad = 0;
        for (int64_t len = 1; len <= 100; len++) {
            const int64_t n = len * blck; /* floats: 1..100; blocks: 32..3200 */
            float *tmp = malloc(sizeof(float) * (size_t)n), *wd = malloc(sizeof(float) * (size_t)n);
            float *xd = malloc(sizeof(float) * (size_t)n);
            uint8_t *w = malloc(sl_row_size(T, n)), *xq = malloc(sl_row_size(vt, n));
            make_weights(T, w, 1, n, tmp);
            for (int64_t i = 0; i < n; i++) tmp[i] = gauss() * (1 + (float)(i % 3));
            scalar->quant[vt](tmp, xq, n);
            sl_dequantize_row(T, w, wd, n);
            sl_dequantize_row(vt, xq, xd, n);
            double mag = 0;
            for (int64_t i = 0; i < n; i++) mag += fabs((double)wd[i] * xd[i]);
            const float ref = scalar->dot[T](n, w, xq), got = t.dot[T](n, w, xq);
            if (!(fabs(got - ref) <= 2e-5 * mag + 1e-5)) {
                if (bad < 3)
                    fprintf(stderr, "    emulated avx512 %s n=%lld: %g vs scalar %g\n", sl_type_name(T), (long long)n, got,
                            ref);
                bad++;
            }
            free(tmp), free(wd), free(xd), free(w), free(xq);
        }
        CHECK_MSG(bad == 0, "emulated avx512 %s dot vs scalar: %d lengths differ", sl_type_name(T), bad);
    }
    run_suites_installed(&t);
    sl_kernels_set_isa(prev);
}

/* Each ISA's quantf gives exactly what its quant[SL_TYPE_Q8_0] gives (codes,
 * the f16 scale as a float, d · Σ qs), written at the stride asked for: a
 * sl_q8f_t row and a token's slot of a sl_q8x4_t panel. Blocks of zeros,
 * of large and of tiny values included. */
static void test_quantf_matches_quant(void) {
    enum { NB = 29 };
    float *x = malloc(sizeof(float) * NB * 32);
    sl_block_q8_0 ref[NB];
    sl_q8f_t rows[NB];
    sl_q8x4_t panel[NB];
    for (size_t ii = 0; ii < 4; ii++) {
        if (!sl_isa_supported(isas[ii])) continue;
        sl_isa_t prev = sl_kernels_set_isa(isas[ii]);
        const sl_kern_table_t *K = sl_kern_table();
        int bad = 0;
        for (int rep = 0; rep < 20; rep++) {
            for (int b = 0; b < NB; b++) {
                const float scale = b == 3 ? 0.0f : b == 5 ? 1e4f : b == 7 ? 1e-3f : (float)(1 + rep);
                for (int i = 0; i < 32; i++) x[b * 32 + i] = gauss() * scale;
            }
            K->quant[SL_TYPE_Q8_0](x, ref, NB * 32);
            K->quantf(x, NB, &rows->d, &rows->s, rows->qs, sizeof *rows);
            const int c = rep % 4;
            K->quantf(x, NB, &panel->d[c], &panel->s[c], panel->qs[c], sizeof *panel);
            for (int b = 0; b < NB; b++) {
                int sum = 0;
                for (int i = 0; i < 32; i++) sum += ref[b].qs[i];
                const float d = sl_f16_to_f32(ref[b].d), s = d * (float)sum;
                if (memcmp(rows[b].qs, ref[b].qs, 32) || rows[b].d != d || rows[b].s != s) bad++;
                if (memcmp(panel[b].qs[c], ref[b].qs, 32) || panel[b].d[c] != d || panel[b].s[c] != s) bad++;
            }
        }
        sl_kernels_set_isa(prev);
        CHECK_MSG(bad == 0, "%s quantf vs quant: %d blocks differ", sl_isa_name(isas[ii]), bad);
    }
    free(x);
}

int main(void) {
    sl_kernels_init();
    fprintf(stderr, "  isa: %s\n", sl_isa_name(sl_kernels_isa()));
    RUN(test_matmul_all_isas);
    RUN(test_simd_dots_match_scalar);
    RUN(test_quantf_matches_quant);
    RUN(test_tiles_match_single_tokens);
    RUN(test_bad_shapes_are_safe);
    RUN(test_matmul_multi);
    RUN(test_x8_panels);
    RUN(test_vnni_kernels_emulated);
    RUN(test_avx512_kernels_emulated);
    return test_summary();
}
