/*
 * bench_matmul.c — throughput of sl_matmul per weight type on the shapes of
 * a Qwen2.5-0.5B-sized model: decode (1 token) and prefill (128 tokens).
 *
 * Build and run (after `make FLAVOR=release BUILD=build/release
 * build/release/libkernels.a build/release/libbase.a`):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -pthread -Isrc bench/bench_matmul.c \
 *      build/release/libkernels.a build/release/libbase.a -lm -o build/bench_matmul
 *   build/bench_matmul [threads] [decode|prefill] [type ...]
 *   BENCH_SHAPE=896,512,1 build/bench_matmul 1 q8_0     (one shape only)
 *
 * Prints, per case, the median of several timed runs: milliseconds, GB/s of
 * weights streamed, and GFLOP/s counting 2 flops per multiply-add.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "base/pool.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* CPU time of the calling thread: with 1 thread (no pool) this leaves out the
 * time other processes held the core, which wall time on a shared machine
 * does not. */
static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Where the weights live (BENCH_MEM): "malloc" (default), "huge" (anonymous
 * memory with MADV_HUGEPAGE), "file" (written to a temporary file and mapped
 * read-only and private, as the GGUF reader maps a model). */
static const char *mem_mode = "malloc";

static uint8_t *weights_alloc(size_t bytes) {
    if (!strcmp(mem_mode, "huge")) {
        size_t al = (bytes + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
        uint8_t *p = aligned_alloc(2u << 20, al);
        if (p) madvise(p, al, MADV_HUGEPAGE);
        return p;
    }
    return malloc(bytes);
}

/* For "file": the filled buffer goes to a file, which replaces it by a map. */
static uint8_t *weights_place(uint8_t *w, size_t bytes) {
    if (strcmp(mem_mode, "file")) return w;
    char path[] = "/tmp/bench_matmul_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return w;
    unlink(path);
    size_t off = 0;
    while (off < bytes) {
        ssize_t k = write(fd, w + off, bytes - off);
        if (k <= 0) break;
        off += (size_t)k;
    }
    void *m = off == bytes ? mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (m == MAP_FAILED) return w;
    free(w);
    return m;
}

static void weights_free(uint8_t *w, size_t bytes) {
    if (!strcmp(mem_mode, "file"))
        munmap(w, bytes);
    else
        free(w);
}

static void bench(sl_pool_t *pool, sl_type_t t, int64_t n_in, int64_t n_out, int64_t n_tok) {
    size_t rs = sl_row_size(t, n_in);
    if (!rs) return;
    uint8_t *w = weights_alloc(rs * (size_t)n_out);
    float *row = malloc(sizeof(float) * (size_t)n_in);
    float *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
    float *y = malloc(sizeof(float) * (size_t)(n_out * n_tok));
    if (!w || !row || !x || !y) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    /* quantize a few distinct rows and repeat them: quantizing 150k rows
     * with the k-quant search would take longer than the benchmark */
    for (int64_t r = 0; r < n_out; r++) {
        if (r < 64) {
            for (int64_t i = 0; i < n_in; i++) row[i] = frand();
            sl_quantize_row(t, row, w + (size_t)r * rs, n_in);
        } else {
            /* a copy made distinct (one code byte per block changed), so no
             * page of the matrix repeats another */
            uint8_t *dst = w + (size_t)r * rs;
            memcpy(dst, w + (size_t)(r % 64) * rs, rs);
            const sl_type_traits_t *tt = sl_type_traits(t);
            size_t bs = tt->type_size, off = tt->blck > 1 ? bs / 2 : 0;
            for (size_t b = 0; b + bs <= rs; b += bs) dst[b + off] ^= (uint8_t)(1 + (r & 0x7f));
        }
    }
    /* BENCH_X8=1: the matrix repacked into x8 panels (as the model loads it) */
    const bool x8 = getenv("BENCH_X8") && atoi(getenv("BENCH_X8")) && sl_x8_supported(t, n_in, n_out);
    if (x8) {
        uint8_t *wp = weights_alloc(sl_x8_bytes(t, n_in, n_out));
        if (!wp) exit(1);
        sl_x8_pack(t, n_in, w, wp, 0, n_out);
        free(w); /* not placed yet: always a heap buffer here */
        w = wp;
    }
    const size_t wbytes = x8 ? sl_x8_bytes(t, n_in, n_out) : rs * (size_t)n_out;
    w = weights_place(w, wbytes);
    for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = frand();
    double bytes = (double)rs * (double)n_out;
    int reps = n_tok > 1 ? 9 : (int)SL_MAX(5, SL_MIN(200, 2e9 / bytes));
    double times[200], cpu[200];
    void (*mm)(sl_pool_t *, const void *, sl_type_t, int64_t, int64_t, const float *, int64_t, float *) =
        x8 ? sl_matmul_x8 : sl_matmul;
    mm(pool, w, t, n_in, n_out, x, n_tok, y); /* warm */
    for (int r = 0; r < reps; r++) {
        double t0 = sl_now(), c0 = thread_cpu();
        mm(pool, w, t, n_in, n_out, x, n_tok, y);
        times[r] = sl_now() - t0;
        cpu[r] = thread_cpu() - c0;
    }
    qsort(times, (size_t)reps, sizeof(double), cmp_double);
    qsort(cpu, (size_t)reps, sizeof(double), cmp_double);
    /* 1 thread: the median of the thread's CPU time; else the best wall time */
    double med = times[reps / 2], best = pool ? times[0] : cpu[reps / 2];
    /* median, and the best run (the machine's capability when it is shared) */
    printf("%-5s%s %4lld x %6lld x %6lld  %9.3f ms  %7.2f GB/s  %7.1f GFLOP/s  %8.1f tok/s-equiv"
           "  | %s %7.2f GB/s %7.1f GFLOP/s\n",
           sl_type_name(t), x8 ? "x8" : "  ", (long long)n_tok, (long long)n_in, (long long)n_out, med * 1e3,
           bytes / med / 1e9, 2.0 * (double)n_in * (double)n_out * (double)n_tok / med / 1e9,
           (double)n_tok / med, pool ? "best" : "cpu ", bytes / best / 1e9,
           2.0 * (double)n_in * (double)n_out * (double)n_tok / best / 1e9);
    weights_free(w, wbytes);
    free(row);
    free(x);
    free(y);
}

int main(int argc, char **argv) {
    int nth = argc > 1 ? atoi(argv[1]) : 2;
    if (nth < 1) nth = 1;
    sl_kernels_init();
    char cpu[256] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) snprintf(cpu, sizeof cpu, "%s", c + 2);
                cpu[strcspn(cpu, "\n")] = 0;
                break;
            }
        fclose(f);
    }
    if (getenv("BENCH_MEM")) mem_mode = getenv("BENCH_MEM");
    printf("# bench_matmul: cpu \"%s\", %ld cores online, %d threads, isa %s, weights in %s\n", cpu,
           sysconf(_SC_NPROCESSORS_ONLN), nth, sl_kernels_desc(), mem_mode);
    sl_pool_t *pool = nth > 1 ? sl_pool_new(nth) : NULL;
    sl_type_t types[16];
    int nt = 0;
    bool do_decode = true, do_prefill = true;
    for (int i = 2; i < argc && nt < 16; i++) {
        sl_type_t t;
        if (!strcmp(argv[i], "decode"))
            do_prefill = false;
        else if (!strcmp(argv[i], "prefill"))
            do_decode = false;
        else if (sl_type_from_name(argv[i], &t) == 0)
            types[nt++] = t;
    }
    if (nt == 0) {
        sl_type_t def[] = {SL_TYPE_Q8_0, SL_TYPE_Q4_0, SL_TYPE_Q5_0, SL_TYPE_Q4_K,
                           SL_TYPE_Q6_K, SL_TYPE_F16};
        memcpy(types, def, sizeof def);
        nt = (int)(sizeof def / sizeof def[0]);
    }
    /* BENCH_SHAPE=N_IN,N_OUT,N_TOK: only that shape (e.g. one that fits in
     * L2, to see a kernel's compute rate apart from DRAM) */
    long long sh_in = 0, sh_out = 0, sh_tok = 0;
    if (getenv("BENCH_SHAPE") && sscanf(getenv("BENCH_SHAPE"), "%lld,%lld,%lld", &sh_in, &sh_out, &sh_tok) == 3 &&
        sh_in > 0 && sh_out > 0 && sh_tok > 0) {
        for (int i = 0; i < nt; i++) bench(pool, types[i], sh_in, sh_out, sh_tok);
        return 0;
    }
    for (int i = 0; i < nt; i++) {
        sl_type_t t = types[i];
        bool k = sl_type_traits(t)->blck == 256;
        /* 896-wide rows do not fit 256-element super-blocks: k-quants use the
         * ffn_down shape (4864 → 896) for decode instead. */
        if (do_decode) {
            if (!k) {
                bench(pool, t, 896, 4864, 1);
                bench(pool, t, 896, 151936, 1);
            }
            bench(pool, t, 4864, 896, 1);
        }
        if (do_prefill) {
            if (!k) bench(pool, t, 896, 4864, 128);
            bench(pool, t, 4864, 896, 128);
        }
    }
    sl_pool_free(pool);
    return 0;
}
