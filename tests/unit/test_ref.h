/*
 * test_ref.h — what the model tests' double-precision references share: a
 * seeded xorshift generator for random weights and vectors, the rounding
 * of a weight row through its storage type (so a reference uses the values
 * the file will hold), and the double-precision product of such a weight
 * matrix with a vector. Include after test.h.
 */
#ifndef SILICA_TEST_REF_H
#define SILICA_TEST_REF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

#endif
