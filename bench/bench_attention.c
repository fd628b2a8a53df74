/*
 * bench_attention.c — paged causal attention (sl_attention_paged) of the
 * Qwen2.5-0.5B shape (14 query heads, 2 KV heads, head_dim 64) for one
 * sequence: a prefill of N_TOK tokens after CTX cached positions, or (N_TOK
 * 1) one decode token at position CTX. Prints ms per call and GFLOP/s (2
 * FLOP per multiply-add of q·k and p·v over the keys each query sees).
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -pthread -Isrc bench/bench_attention.c \
 *      build/release/libkernels.a build/release/libbase.a -lm -o build/bench_attention
 *   build/bench_attention [threads (2)] [kv type: f32 | f16 | q8_0 (f16)] [ctx (2000)] [n_tok (1)] [reps (20)]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/pool.h"
#include "kernels/kernels.h"

enum { H = 14, HKV = 2, HD = 64, BS = 16, MAX_REPS = 200 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const int nth = argc > 1 ? SL_MAX(1, atoi(argv[1])) : 2;
    sl_type_t t = SL_TYPE_F16;
    if (argc > 2 && (sl_type_from_name(argv[2], &t) != 0 ||
                     (t != SL_TYPE_F32 && t != SL_TYPE_F16 && t != SL_TYPE_Q8_0))) {
        fprintf(stderr, "bench_attention: kv type must be f32, f16 or q8_0\n");
        return 2;
    }
    const int ctx = argc > 3 ? SL_MAX(0, atoi(argv[3])) : 2000;
    const int n_tok = argc > 4 ? SL_MAX(1, atoi(argv[4])) : 1;
    const int reps = argc > 5 ? (int)SL_MIN(MAX_REPS, SL_MAX(3, atoi(argv[5]))) : 20;
    sl_kernels_init();
    const int n_pos = ctx + n_tok, n_blocks = (n_pos + BS - 1) / BS;
    const size_t row_bytes = sl_row_size(t, HD), block_stride = (size_t)HKV * BS * row_bytes;
    uint8_t *k = malloc((size_t)n_blocks * block_stride), *v = malloc((size_t)n_blocks * block_stride);
    float *q = malloc(sizeof(float) * (size_t)n_tok * H * HD), *out = malloc(sizeof(float) * (size_t)n_tok * H * HD);
    float *row = malloc(sizeof(float) * HD);
    int32_t *blocks = malloc(sizeof(int32_t) * (size_t)n_blocks), *pos = malloc(sizeof(int32_t) * (size_t)n_tok);
    const int32_t **tb = malloc(sizeof(*tb) * (size_t)n_tok);
    sl_pool_t *pool = nth > 1 ? sl_pool_new(nth) : NULL;
    const size_t per = sl_attention_paged_scratch(H, HKV, HD);
    float *scratch = malloc(sizeof(float) * per * (size_t)nth);
    if (!k || !v || !q || !out || !row || !blocks || !pos || !tb || !scratch) {
        fprintf(stderr, "bench_attention: out of memory\n");
        return 1;
    }
    uint64_t r = 88172645463325252ull;
#define RND() (r ^= r << 13, r ^= r >> 7, r ^= r << 17, (float)(r % 2001) / 1000.0f - 1.0f)
    for (int b = 0; b < n_blocks; b++) blocks[b] = n_blocks - 1 - b; /* scattered, as a paged cache is */
    for (int b = 0; b < n_blocks; b++)
        for (int h = 0; h < HKV; h++)
            for (int p = 0; p < BS; p++) {
                const size_t off = (size_t)b * block_stride + ((size_t)h * BS + (size_t)p) * row_bytes;
                for (int i = 0; i < HD; i++) row[i] = RND();
                sl_quantize_row(t, row, k + off, HD);
                for (int i = 0; i < HD; i++) row[i] = RND();
                sl_quantize_row(t, row, v + off, HD);
            }
    for (size_t i = 0; i < (size_t)n_tok * H * HD; i++) q[i] = RND();
    for (int i = 0; i < n_tok; i++) {
        pos[i] = ctx + i;
        tb[i] = blocks;
    }
    const sl_attn_paged_t a = {
        .n_tok = n_tok, .n_head = H, .n_head_kv = HKV, .head_dim = HD, .q = q, .out = out,
        .tok_pos = pos, .tok_blocks = tb, .k = k, .v = v, .block_stride = block_stride, .block_size = BS,
        .row_bytes = row_bytes, .kv_type = t, .scale = 0.125f, .scratch = scratch, .max_keys = n_pos,
    };
    double ms[MAX_REPS];
    for (int rep = -1; rep < reps; rep++) {
        const double t0 = sl_now();
        sl_attention_paged(pool, &a);
        if (rep >= 0) ms[rep] = (sl_now() - t0) * 1e3;
    }
    qsort(ms, (size_t)reps, sizeof ms[0], cmp_double);
    double keys = 0; /* keys seen, summed over the batch's tokens */
    for (int i = 0; i < n_tok; i++) keys += ctx + i + 1;
    const double flop = keys * H * HD * 4.0;
    printf("# bench_attention: kv %s, %d threads, ctx %d, %d tokens, isa %s, checksum %.6g\n", sl_type_name(t), nth,
           ctx, n_tok, sl_kernels_desc(), (double)out[0] + out[(size_t)n_tok * H * HD - 1]);
    printf("median %.3f ms (%.1f GFLOP/s) | best %.3f ms (%.1f GFLOP/s)\n", ms[reps / 2],
           flop / ms[reps / 2] / 1e6, ms[0], flop / ms[0] / 1e6);
    sl_pool_free(pool);
    free(k);
    free(v);
    free(q);
    free(out);
    free(row);
    free(blocks);
    free(pos);
    free(tb);
    free(scratch);
    return 0;
}
