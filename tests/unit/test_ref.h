/*
 * test_ref.h — what the model tests' double-precision references share: a
 * seeded xorshift generator for random weights and vectors, the rounding
 * of a weight row through its storage type (so a reference uses the values
 * the file will hold), the double-precision product of such a weight
 * matrix with a vector, the RMS norm and SiLU the references apply, and the
 * writing of such matrices into a test GGUF file. Include after test.h.
 */
#ifndef SILICA_TEST_REF_H
#define SILICA_TEST_REF_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "kernels/quant.h"

static uint64_t rng_state;
static inline double rnd_uniform(void) { /* [0, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static inline float rnd_sym(float a) {
    return (float)((rnd_uniform() * 2.0 - 1.0) * a);
}
/* n values center ± a, uniform */
static inline double *dvec(int n, double center, double a) {
    double *v = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++)
        v[i] = center + rnd_sym((float)a);
    return v;
}

/* Rounds every row through the storage type, as the file will hold it:
 * to a fixed point, since the file's writer quantizes these floats again
 * (the q2_K / q3_K / q5_K quantizers may move a dequantized row once more;
 * a row that keeps moving is scaled a little and tried again). */
static inline void round_rows(float *w, int n_out, int n_in, sl_type_t t) {
    if (t == SL_TYPE_F32) return;
    void *buf = malloc(sl_row_size(t, n_in));
    float *prev = malloc(sizeof(float) * (size_t)n_in);
    for (int r = 0; r < n_out; r++) {
        float *row = w + (size_t)r * n_in;
        bool fixed = false;
        for (int tries = 0; tries < 8 && !fixed; tries++) {
            if (tries)
                for (int i = 0; i < n_in; i++)
                    row[i] *= 1.001f;
            for (int it = 0; it < 12 && !fixed; it++) {
                memcpy(prev, row, sizeof(float) * (size_t)n_in);
                CHECK(sl_quantize_row(t, row, buf, n_in) == 0);
                sl_dequantize_row(t, buf, row, n_in);
                fixed = it > 0 && !memcmp(prev, row, sizeof(float) * (size_t)n_in);
            }
        }
        CHECK_MSG(fixed, "%s row %d does not settle under requantization", sl_type_name(t), r);
    }
    free(prev);
    free(buf);
}

/* y = w x, w [n_out][n_in] (a weight matrix in HF layout) */
static inline void matvec(double *y, const float *w, const double *x, int n_out, int n_in) {
    for (int o = 0; o < n_out; o++) {
        double s = 0;
        for (int i = 0; i < n_in; i++)
            s += (double)w[(size_t)o * n_in + i] * x[i];
        y[o] = s;
    }
}

/* RMS norm in double (eps 1e-6), each value times plus + w[i] (w NULL:
 * times 1); out may be x */
static inline void ref_rms(double *out, const double *x, int n, const double *w, double plus) {
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    const double r = 1.0 / sqrt(ss / n + 1e-6);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * r * (w ? plus + w[i] : 1.0);
}
static inline double ref_silu(double x) {
    return x / (1 + exp(-x));
}

/* n_mat matrices of n_out rows of n_in floats quantized to t as one tensor:
 * [n_in, n_out] when n_mat is 1, else [n_in, n_out, n_mat] */
static inline void add_mats(gguf_writer_t *w, const char *name, const float *data, int n_out,
                            int n_in, int n_mat, sl_type_t t) {
    const int64_t ne[3] = {n_in, n_out, n_mat};
    const size_t rb = sl_row_size(t, n_in);
    const int rows = n_out * n_mat;
    uint8_t *q = malloc(rb * (size_t)rows);
    for (int r = 0; r < rows; r++)
        CHECK(sl_quantize_row(t, data + (size_t)r * n_in, q + rb * r, n_in) == 0);
    CHECK(gguf_writer_add_tensor(w, name, t, n_mat > 1 ? 3 : 2, ne, q) == 0);
    free(q);
}

#endif
