/*
 * bench_decode_chain.c — the matmuls of one decode step of the
 * Qwen2.5-0.5B shape and nothing else: per layer q/k/v (896 → 1152, fused as
 * the model runs it), o (896 → 896), gate/up (896 → 9728, fused) and down
 * (4864 → 896), 24 distinct layers, then the 151,936-row output matrix —
 * every matrix a distinct x8 panel block in one arena on transparent huge
 * pages, as the model loads them. Its tokens/s is the ceiling the weights'
 * streaming sets for `silica bench` decode; the gap between the two is
 * everything else in the forward pass (norms, rope, attention, pool
 * hand-offs).
 *
 * Build and run (after `make FLAVOR=release BUILD=build/release
 * build/release/libkernels.a build/release/libbase.a`):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -pthread -Isrc bench/bench_decode_chain.c \
 *      build/release/libkernels.a build/release/libbase.a -lm -o build/bench_decode_chain
 *   build/bench_decode_chain [threads (2)] [type: q8_0 | q5_0 | q4_0 (q8_0)] [reps (20)]
 *
 * The weights are random bytes with f16 scales kept finite (the speed of
 * these kernels does not depend on the values).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/base.h"
#include "base/pool.h"
#include "kernels/kernels.h"

enum { LAYERS = 24, MAX_REPS = 200 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const int nth = argc > 1 ? SL_MAX(1, atoi(argv[1])) : 2;
    sl_type_t t = SL_TYPE_Q8_0;
    if (argc > 2 && sl_type_from_name(argv[2], &t) != 0) {
        fprintf(stderr, "bench_decode_chain: unknown type '%s'\n", argv[2]);
        return 2;
    }
    const int reps = argc > 3 ? (int)SL_MIN(MAX_REPS, SL_MAX(3, atoi(argv[3]))) : 20;
    sl_kernels_init();
    /* q/k/v, o, gate/up, down; then the output matrix once */
    const int64_t shape[5][2] = {{896, 1152}, {896, 896}, {896, 9728}, {4864, 896}, {896, 151936}};
    size_t size[5], total = 0;
    for (int i = 0; i < 5; i++) {
        if (!sl_x8_supported(t, shape[i][0], shape[i][1])) {
            fprintf(stderr, "bench_decode_chain: no x8 kernels for %s here\n", sl_type_name(t));
            return 2;
        }
        size[i] = sl_x8_bytes(t, shape[i][0], shape[i][1]);
        total += i < 4 ? LAYERS * size[i] : size[i];
    }
    const size_t huge = (size_t)2 << 20, alloc = (total + huge - 1) & ~(huge - 1);
    uint8_t *arena = aligned_alloc(huge, alloc);
    float *x = malloc(sizeof(float) * 4864), *y = malloc(sizeof(float) * 151936);
    if (!arena || !x || !y) {
        fprintf(stderr, "bench_decode_chain: out of memory\n");
        return 1;
    }
    madvise(arena, alloc, MADV_HUGEPAGE);
    /* random bytes; 0x3bff in every 16-bit word keeps each f16 finite and < 1 */
    uint64_t r = 88172645463325252ull;
    for (size_t i = 0; i < total / 8; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        ((uint64_t *)arena)[i] = r & 0x3bff3bff3bff3bffull;
    }
    for (int i = 0; i < 4864; i++) x[i] = (float)(i % 7) - 3.0f;
    sl_pool_t *pool = nth > 1 ? sl_pool_new(nth) : NULL;
    double ms[MAX_REPS];
    for (int rep = -1; rep < reps; rep++) { /* rep -1: warm-up */
        const double t0 = sl_now();
        const uint8_t *p = arena;
        for (int l = 0; l < LAYERS; l++)
            for (int i = 0; i < 4; i++) {
                sl_matmul_x8(pool, p, t, shape[i][0], shape[i][1], x, 1, y);
                p += size[i];
            }
        sl_matmul_x8(pool, p, t, shape[4][0], shape[4][1], x, 1, y);
        if (rep >= 0) ms[rep] = (sl_now() - t0) * 1e3;
    }
    qsort(ms, (size_t)reps, sizeof ms[0], cmp_double);
    const double med = ms[reps / 2], best = ms[0];
    printf("# bench_decode_chain: %s, %d threads, isa %s, %.1f MB of weights per token\n", sl_type_name(t), nth,
           sl_kernels_desc(), (double)total / 1e6);
    printf("median %.2f ms/token = %.1f tok/s (%.2f GB/s) | best %.2f ms = %.1f tok/s (%.2f GB/s)\n", med,
           1e3 / med, (double)total / med / 1e6, best, 1e3 / best, (double)total / best / 1e6);
    sl_pool_free(pool);
    free(arena);
    free(x);
    free(y);
    return 0;
}
