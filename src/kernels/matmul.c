/*
 * matmul.c — y = x · Wᵀ for a quantized weight matrix, split over the pool.
 *
 * Steps of one call:
 *   1. the n_tok activation rows are quantized once to the weight type's
 *      vec_dot_type (in parallel over tokens when there are many);
 *   2. the n_out weight rows are handed out in chunks through an atomic
 *      counter, and the pool runs the job "elastic": a thread slowed by
 *      another process neither holds up the rest nor is waited for if it
 *      has not started by the time the work is gone;
 *   3. decode (n_tok == 1) is bound by memory bandwidth: each weight row is
 *      streamed once and dotted with the single activation row;
 *      prefill (n_tok > 1) is a cache-blocked GEMM: a chunk of weight rows
 *      (a few tens of KB) stays in L1/L2 while every token group passes over
 *      it, and the ISA's tile kernel computes up to 4 weight rows × 4 tokens
 *      at once, so each loaded weight block is used 4 times from registers.
 *
 * Output layout: y[t * n_out + o], one row of n_out floats per token.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "kernels/kern_impl.h"

/* Below this many multiply-adds a call is not worth waking threads for. */
#define MIN_PARALLEL_MACS 65536
/* Weight rows per chunk in the GEMM path: 16 rows of q8_0 × 4864 = 82 KB,
 * comfortably inside L2 while the token groups stream past. The float
 * types' tiles take rows 3 at a time: 24 (f16 × 4864: 233 KB). */
#define GEMM_ROW_CHUNK 16
#define GEMM_ROW_CHUNK_F 24
#define STACK_XQ_BYTES 32768
/* From this many tokens on, weight rows are unpacked per chunk (the cost is
 * spread over the token groups); chunks of unpacked rows stay within this. */
#define GEMMU_MIN_TOK 16
#define GEMMU_CHUNK_BYTES (128 * 1024)
/* Decode prefetch distance. Measured on the 2-core Zen3 for q8_0 896 →
 * 151936 (DRAM): 1–16 KB all beat none by ~25% (median of interleaved
 * runs); 4 KB is one page ahead. */
#ifndef PF_AHEAD
#define PF_AHEAD 4096
#endif

/* The x8 layout: q8_0, q5_0, q4_0, q5_1, q4_1, iq4_nl (q4_0's: the same
 * 18-byte blocks), q4_K, q5_K, q6_K or iq4_xs, whole
 * blocks, and a row that the kernel-less fallback can unpack on the stack. A last panel of fewer
 * than 8 rows is padded with zero rows. */
#define X8_ROW_MAX 65536
static const uint8_t x8_zero_row[X8_ROW_MAX];
/* GGUF row r of src (rs bytes each) for packing, or zeros past the last
 * row r1 (a padded last panel) */
static const uint8_t *x8_src_row(const void *src, size_t rs, int64_t r, int64_t r1) {
    return r < r1 ? (const uint8_t *)src + (size_t)r * rs : x8_zero_row;
}
static bool x8_layout(sl_type_t t, int64_t n_in, int64_t n_out) {
    const bool kq = t == SL_TYPE_Q4_K || t == SL_TYPE_Q5_K || t == SL_TYPE_Q6_K || t == SL_TYPE_IQ4_XS;
    const int64_t blck = kq ? SL_QK_K : 32;
    return (t == SL_TYPE_Q8_0 || t == SL_TYPE_Q5_0 || t == SL_TYPE_Q4_0 || t == SL_TYPE_Q5_1 || t == SL_TYPE_Q4_1 ||
            t == SL_TYPE_IQ4_NL || kq) &&
           n_in > 0 &&
           n_in % blck == 0 && sl_row_size(t, n_in) <= X8_ROW_MAX && n_out > 0 && n_out <= INT64_MAX - 7;
}

/* Decode splits the rows into one contiguous run per thread (up to this many
 * threads; more take the shared counter): each thread then streams its run
 * front to back as one sequential read, and steals from the back of the
 * others' runs when done (or when a thread never starts). */
#define MM_RANGES 16

struct mm_job {
    const uint8_t *w;
    size_t wrs; /* bytes per weight row */
    int64_t n_in, n_out;
    const uint8_t *xq;
    size_t xrs; /* bytes per quantized activation row */
    int64_t n_tok;
    float *y;
    sl_dot_fn dot;
    sl_tile_fn tile;
    bool tile1;             /* the tile for one token too (float weights: decode = batch, bit for bit) */
    sl_gemm_fn gemm;        /* with a sl_q8x4_t panel in xq instead of rows */
    sl_dotf_fn dotf;        /* decode with a sl_q8f_t row in xq */
    sl_unpack_fn unpack;    /* with gemmu: chunks unpacked into scratch, panel in xq */
    sl_x8_unpack_fn x8_unpack; /* or, over x8 panels, this */
    sl_gemmu_fn gemmu;
    sl_gemmuk_fn gemmuk;    /* k-quants: unpacked chunks against q8_K rows */
    sl_x8_dot_fn x8_dot;    /* x8 panels, decode (the type's activation row in xq) */
    sl_x8_dot4_fn x8_dot4;  /* or, many tokens of a q8_K-dotted type, 4 at a time */
    sl_x8_dot4_fn x8_dot4x2; /* optional: x8_dot4 over two full panels */
    sl_x8_gemm_fn x8_gemm;  /* x8 panels, many tokens (panel in xq) */
    sl_x8_gemm_fn x8_gemm8; /* the same, 8 tokens a call (NULL: 4) */
    bool x8_rows;           /* x8 panels without their kernels: row by row */
    sl_type_t wtype;
    size_t urs;             /* bytes per unpacked row */
    uint8_t *scratch;       /* per thread: chunk rows × urs */
    int64_t chunk;
    atomic_llong next;
    /* decode: each thread's own run of chunks, front (owner) << 32 | back
     * (thieves), in chunk numbers; nrange 0 = one shared counter (next) */
    int nrange;
    atomic_ullong range[MM_RANGES];
};

/* Prefetches slice k of n of the weight rows [r0, r1) (none when r0 is past
 * the end): the unpacked-row paths spread the next chunk's loads over the
 * token groups of the current one, so DRAM reads overlap the GEMM instead
 * of stalling the next unpack. */
static void prefetch_rows(const struct mm_job *j, int64_t r0, int64_t r1, int64_t k, int64_t n) {
    if (r0 >= j->n_out) return;
    const uint8_t *p = j->w + (size_t)r0 * j->wrs;
    const size_t len = (size_t)(SL_MIN(r1, j->n_out) - r0) * j->wrs;
    const size_t a = len * (size_t)k / (size_t)n, b = len * (size_t)(k + 1) / (size_t)n;
    for (size_t o = a & ~(size_t)63; o < b; o += 64) __builtin_prefetch(p + o, 0, 2);
}

/* The rows of the chunk at nxt as a prefetch range spread over iters
 * kernel blocks (p NULL: no next chunk). A few lines per block, so the
 * DRAM reads overlap the arithmetic: measured +50 % on a 16-token GEMM
 * from DRAM against whole slices at the start of each call, which stall
 * the core while the misses queue (docs/kernels.md). */
static sl_pf_t next_chunk_pf(const struct mm_job *j, int64_t nxt, size_t iters) {
    sl_pf_t pf = {NULL, NULL, 0};
    if (nxt >= j->n_out) return pf;
    pf.p = j->w + (size_t)nxt * j->wrs;
    pf.end = j->w + (size_t)SL_MIN(nxt + j->chunk, j->n_out) * j->wrs;
    pf.step = ((size_t)(pf.end - pf.p) / SL_MAX(iters, (size_t)1) + 64) & ~(size_t)63;
    return pf;
}

/* nxt: the first row of the chunk this thread does next (n_out if none) */
static void mm_rows(struct mm_job *j, int ith, int64_t r0, int64_t r1, int64_t nxt) {
    const int64_t n_out = j->n_out, n_tok = j->n_tok;
    if (j->x8_gemm) {
        const int64_t nb = j->n_in / 32, groups = (n_tok + 3) / 4;
        const uint8_t *pw = j->w + (size_t)r0 * j->wrs;
        const int full = (int)((r1 - r0) / 8), rest = (int)((r1 - r0) % 8); /* rest: the padded last panel */
        /* the next chunk's rows prefetched over all the kernel calls of this one */
        const int64_t calls = j->x8_gemm8 ? (n_tok + 7) / 8 : groups; /* kernel calls per chunk */
        sl_pf_t pf = next_chunk_pf(j, nxt, (size_t)nb * (size_t)calls * (size_t)SL_MAX(1, full / 2));
        for (int64_t t0 = 0; t0 < n_tok;) {
            const sl_q8x4_t *xg = (const sl_q8x4_t *)j->xq + (t0 / 4) * nb;
            /* two groups at once where the kernel takes them (the second
             * exists: its padding tokens are zero) */
            const bool two = j->x8_gemm8 && n_tok - t0 > 4;
            const sl_x8_gemm_fn fn = two ? j->x8_gemm8 : j->x8_gemm;
            const int nc = (int)SL_MIN(two ? 8 : 4, n_tok - t0);
            if (full) fn(j->n_in, pw, full, xg, nc, j->y + t0 * n_out + r0, (size_t)n_out, pf.p ? &pf : NULL);
            if (rest) {
                float tmp[8 * 8];
                fn(j->n_in, pw + (size_t)full * 8 * j->wrs, 1, xg, nc, tmp, 8, NULL);
                for (int c = 0; c < nc; c++)
                    memcpy(j->y + (t0 + c) * n_out + r0 + 8 * full, tmp + 8 * c, sizeof(float) * (size_t)rest);
            }
            t0 += two ? 8 : 4;
        }
        return;
    }
    if (j->x8_dot) {
        for (int64_t o = r0; o < r1; o += 8) {
            const uint8_t *pw = j->w + (size_t)o * j->wrs;
            if (j->x8_dot4) {
                const bool pair = j->x8_dot4x2 && r1 - o >= 16; /* 16 rows at once */
                /* the next panel (pair) prefetched a slice per token group: +8 %
                 * on a 16-token q4_K / q6_K step from DRAM (docs/kernels.md) */
                const int64_t step = pair ? 16 : 8, ng = (n_tok + 3) / 4;
                for (int64_t t = 0; t < n_tok; t += 4) {
                    const int nc = (int)SL_MIN(4, n_tok - t);
                    if (o + step < j->n_out) {
                        const size_t len = (size_t)SL_MIN(step, j->n_out - o - step) * j->wrs;
                        const size_t a = len * (size_t)(t / 4) / (size_t)ng, b = len * (size_t)(t / 4 + 1) / (size_t)ng;
                        for (size_t q = a & ~(size_t)63; q < b; q += 64)
                            __builtin_prefetch(pw + step * j->wrs + q, 0, 2);
                    }
                    const uint8_t *xt = j->xq + (size_t)t * j->xrs;
                    if (pair) {
                        j->x8_dot4x2(j->n_in, pw, xt, j->xrs, nc, j->y + t * n_out + o, (size_t)n_out);
                    } else if (r1 - o >= 8) {
                        j->x8_dot4(j->n_in, pw, xt, j->xrs, nc, j->y + t * n_out + o, (size_t)n_out);
                    } else { /* the padded last panel */
                        float tmp[4 * 8];
                        j->x8_dot4(j->n_in, pw, xt, j->xrs, nc, tmp, 8);
                        for (int c = 0; c < nc; c++)
                            memcpy(j->y + (t + c) * n_out + o, tmp + 8 * c, sizeof(float) * (size_t)(r1 - o));
                    }
                }
                if (pair) o += 8;
                continue;
            }
            /* one token at a time (decode, a few tokens: the panel stays in
             * cache): no software prefetch — a panel is one sequential
             * stream, which the hardware prefetcher follows (measured:
             * prefetching ahead made the 151936-row decode slower) */
            for (int64_t t = 0; t < n_tok; t++) {
                const uint8_t *xt = j->xq + (size_t)t * j->xrs;
                float *yt = j->y + t * n_out + o;
                if (r1 - o >= 8) {
                    j->x8_dot(j->n_in, pw, xt, yt);
                } else { /* the padded last panel */
                    float tmp[8];
                    j->x8_dot(j->n_in, pw, xt, tmp);
                    memcpy(yt, tmp, sizeof(float) * (size_t)(r1 - o));
                }
            }
        }
        return;
    }
    if (j->x8_rows) {
        uint8_t row[X8_ROW_MAX] __attribute__((aligned(32)));
        for (int64_t o = r0; o < r1; o++) {
            sl_x8_row(j->wtype, j->n_in, j->w, o, row);
            for (int64_t t = 0; t < n_tok; t++)
                j->y[t * n_out + o] = j->dot(j->n_in, row, j->xq + (size_t)t * j->xrs);
        }
        return;
    }
    if (j->gemmuk || j->gemmu) {
        uint8_t *u = j->scratch + (size_t)ith * (size_t)j->chunk * j->urs;
        const int64_t nb = j->n_in / 32, groups = (n_tok + 3) / 4;
        if (j->x8_unpack)
            j->x8_unpack(j->n_in, j->w + (size_t)r0 * j->wrs, (int)(r1 - r0), u);
        else
            j->unpack(j->n_in, j->w + (size_t)r0 * j->wrs, j->wrs, (int)(r1 - r0), u);
        for (int64_t t0 = 0; t0 < n_tok; t0 += 4) {
            prefetch_rows(j, nxt, nxt + j->chunk, t0 / 4, groups);
            if (j->gemmuk)
                j->gemmuk(j->n_in, u, (int)(r1 - r0), j->xq + (size_t)t0 * j->xrs, j->xrs,
                          (int)SL_MIN(4, n_tok - t0), j->y + t0 * n_out + r0, (size_t)n_out);
            else
                j->gemmu(j->n_in, u, (int)(r1 - r0), (const sl_q8x4_t *)j->xq + (t0 / 4) * nb,
                         (int)SL_MIN(4, n_tok - t0), j->y + t0 * n_out + r0, (size_t)n_out);
        }
        return;
    }
    if (j->gemm) {
        const sl_q8x4_t *xp = (const sl_q8x4_t *)j->xq;
        const int64_t nb = j->n_in / 32;
        for (int64_t t0 = 0; t0 < n_tok; t0 += 4)
            j->gemm(j->n_in, j->w + (size_t)r0 * j->wrs, j->wrs, (int)(r1 - r0), xp + (t0 / 4) * nb,
                    (int)SL_MIN(4, n_tok - t0), j->y + t0 * n_out + r0, (size_t)n_out);
        return;
    }
    if (j->tile && (n_tok > 1 || j->tile1)) {
        /* the chunk's rows against each group of up to SL_TILE_MAX tokens */
        for (int64_t t0 = 0; t0 < n_tok; t0 += SL_TILE_MAX)
            j->tile(j->n_in, j->w + (size_t)r0 * j->wrs, j->wrs, (int)(r1 - r0), j->xq + (size_t)t0 * j->xrs, j->xrs,
                    (int)SL_MIN(SL_TILE_MAX, n_tok - t0), j->y + t0 * n_out + r0, (size_t)n_out);
        return;
    }
    if (n_tok == 1) {
        /* Decode streams the matrix from DRAM once. The hardware prefetcher
         * stops at 4 KB page boundaries; prefetching PF_AHEAD bytes past
         * the row in hand keeps misses (and page walks) in flight across
         * them. */
        const uint8_t *end = j->w + (size_t)n_out * j->wrs;
        for (int64_t o = r0; o < r1; o++) {
            const uint8_t *wr = j->w + (size_t)o * j->wrs;
            if (PF_AHEAD > 0 && (size_t)(end - wr) > PF_AHEAD) {
                const uint8_t *pf = wr + PF_AHEAD;
                const uint8_t *pe = (size_t)(end - pf) > j->wrs ? pf + j->wrs : end;
                for (; pf < pe; pf += 64) __builtin_prefetch(pf, 0, 3);
            }
            j->y[o] = j->dotf ? j->dotf(j->n_in, wr, (const sl_q8f_t *)j->xq) : j->dot(j->n_in, wr, j->xq);
        }
        return;
    }
    for (int64_t t = 0; t < n_tok; t++) {
        const uint8_t *xr = j->xq + (size_t)t * j->xrs;
        float *yr = j->y + t * n_out;
        for (int64_t o = r0; o < r1; o++) yr[o] = j->dot(j->n_in, j->w + (size_t)o * j->wrs, xr);
    }
}

/* Takes the next chunk from the front (owner) or back (thief) of a run. */
static bool run_claim(atomic_ullong *r, bool front, int64_t *chunk) {
    unsigned long long v = atomic_load_explicit(r, memory_order_relaxed), nv;
    do {
        const unsigned long long f = v >> 32, b = v & 0xffffffffull;
        if (f >= b) return false;
        *chunk = (int64_t)(front ? f : b - 1);
        nv = front ? ((f + 1) << 32) | b : (f << 32) | (b - 1);
    } while (!atomic_compare_exchange_weak_explicit(r, &v, nv, memory_order_relaxed, memory_order_relaxed));
    return true;
}

static void mm_worker(void *ctx, int ith, int nth) {
    (void)nth;
    struct mm_job *j = ctx;
    if (j->nrange) {
        int64_t c;
        if (ith < j->nrange)
            while (run_claim(&j->range[ith], true, &c))
                mm_rows(j, ith, c * j->chunk, SL_MIN((c + 1) * j->chunk, j->n_out), j->n_out);
        for (int k = 1; k <= j->nrange; k++) {
            const int o = (ith + k) % j->nrange;
            while (run_claim(&j->range[o], false, &c))
                mm_rows(j, ith, c * j->chunk, SL_MIN((c + 1) * j->chunk, j->n_out), j->n_out);
        }
        return;
    }
    /* The unpacked-row paths claim the next chunk before the current one
     * runs, so its rows can be prefetched meanwhile; the others claim one
     * at a time (a descheduled thread then holds back at most one chunk). */
    const bool ahead = j->gemmu || j->gemmuk || j->x8_gemm;
    int64_t r0 = atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
    while (r0 < j->n_out) {
        const int64_t nxt = ahead ? atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed) : j->n_out;
        mm_rows(j, ith, r0, SL_MIN(r0 + j->chunk, j->n_out), SL_MIN(nxt, j->n_out));
        r0 = ahead ? nxt : atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
    }
}

struct q_job {
    sl_quant_fn quant;
    sl_quantf_fn quantf; /* sl_q8x4_t panels */
    const float *x;
    int64_t n_in, n_tok;
    uint8_t *xq;
    size_t xrs;
    atomic_llong next; /* next token row to quantize */
};

static void q_worker(void *ctx, int ith, int nth) {
    (void)ith;
    (void)nth;
    struct q_job *q = ctx;
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&q->next, 1, memory_order_relaxed);
        if (t >= q->n_tok) break;
        q->quant(q->x + t * q->n_in, q->xq + (size_t)t * q->xrs, q->n_in);
    }
}

/* Token t of a sl_q8x4_t panel: quantized straight into its slot of the
 * 4-token group. */
static void q_panel_worker(void *ctx, int ith, int nth) {
    (void)ith;
    (void)nth;
    struct q_job *q = ctx;
    const int64_t nb = q->n_in / 32;
    sl_q8x4_t *panel = (sl_q8x4_t *)q->xq;
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&q->next, 1, memory_order_relaxed);
        if (t >= q->n_tok) break;
        sl_q8x4_t *g = panel + (t / 4) * nb;
        const int c = (int)(t % 4);
        const float *xr = q->x + t * q->n_in;
        q->quantf(xr, nb, &g->d[c], &g->s[c], g->qs[c], sizeof *g);
        /* s = d · Σq is exact in float (an f16 scale's 11 bits times a
         * sum of 12), so s / d gives Σq back exactly */
        for (int64_t b = 0; b < nb; b++)
            g[b].o[c] = g[b].d[c] != 0.0f ? 128 * (int32_t)lrintf(g[b].s[c] / g[b].d[c]) : 0;
    }
}

/* Activation layouts; matrices with the same one share the quantized x. */
enum { XF_NONE = -1, XF_F32 = 0, XF_PANEL, XF_FROW, XF_ROWS };

/* Rows per unpacked chunk: up to 16 within GEMMU_CHUNK_BYTES of unpacked
 * rows (urs bytes each), a multiple of align (a power of two). */
static int64_t unpack_chunk(size_t urs, int64_t align) {
    return SL_MAX(align, SL_MIN(16, (int64_t)(GEMMU_CHUNK_BYTES / urs)) & ~(align - 1));
}

/* Chooses the path for one matrix and fills its job (all but xq, scratch
 * and y). Returns the activation layout (XF_ROWS + vec_dot_type for plain
 * rows), or XF_NONE for a shape or type that cannot be computed. */
static int mm_plan(const sl_kern_table_t *K, const void *w, sl_type_t wtype, bool x8, int64_t n_in, int64_t n_out,
                   int64_t n_tok, struct mm_job *j, size_t *scratch_bytes) {
    if (x8) {
        *scratch_bytes = 0;
        if (!x8_layout(wtype, n_in, n_out)) return XF_NONE;
        const size_t wrs = sl_row_size(wtype, n_in);
        /* the k-quants read q8_K rows (as their GGUF-row kernels do), the
         * others the q8_0 float-scale row (decode) or panel (many tokens) */
        const sl_type_t vt = sl_type_traits(wtype)->vec_dot_type;
        const bool kq = vt == SL_TYPE_Q8_K;
        if (!sl_x8_supported(wtype, n_in, n_out)) {
            /* the ISA was switched after packing (tests do): row by row,
             * each row taken out of its panel, through the plain dot */
            *j = (struct mm_job){
                .w = w, .wrs = wrs, .n_in = n_in, .n_out = n_out, .n_tok = n_tok,
                .xrs = sl_row_size(vt, n_in), .dot = K->dot[wtype], .x8_rows = true,
                .wtype = wtype,
            };
            atomic_init(&j->next, 0);
            return XF_ROWS + (int)vt;
        }
        /* many tokens: the x8 GEMM, else chunks expanded for the gemmu,
         * else (the k-quants: q8_K rows) x8_dot4 over 4 tokens at a time,
         * or the decode kernel once per token, the panel in cache meanwhile
         * (measured faster than unpacking for gemmuk at 128 tokens) */
        const bool gemm = n_tok > 1 && K->x8_gemm[wtype];
        const bool unp = n_tok > 1 && !gemm && K->x8_unpack[wtype];
        const bool dot4 = n_tok > 1 && !gemm && !unp; /* the q8_K-dotted types' many-token kernels */
        const int64_t u_chunk = unpack_chunk(SL_U_ROW_BYTES(n_in), 8);
        *j = (struct mm_job){
            .w = w, .wrs = wrs, .n_in = n_in, .n_out = n_out, .n_tok = n_tok,
            .xrs = sl_row_size(vt, n_in),
            .x8_dot = gemm || unp ? NULL : K->x8_dot[wtype],
            .x8_dot4 = dot4 ? K->x8_dot4[wtype] : NULL,
            .x8_dot4x2 = dot4 ? K->x8_dot4x2[wtype] : NULL,
            .x8_gemm = gemm ? K->x8_gemm[wtype] : NULL,
            .x8_gemm8 = gemm ? K->x8_gemm8[wtype] : NULL,
            .x8_unpack = unp ? K->x8_unpack[wtype] : NULL,
            .gemmu = unp ? K->gemmu[wtype] : NULL,
            .urs = unp ? SL_U_ROW_BYTES(n_in) : 0,
            .chunk = unp ? u_chunk : gemm ? GEMM_ROW_CHUNK : 0,
        };
        if (unp) *scratch_bytes = (size_t)u_chunk * SL_U_ROW_BYTES(n_in);
        atomic_init(&j->next, 0);
        if (kq) return XF_ROWS + (int)vt;
        return n_tok == 1 ? XF_FROW : XF_PANEL;
    }
    const sl_type_traits_t *tr = sl_type_traits(wtype);
    const sl_type_traits_t *vtr = tr ? sl_type_traits(tr->vec_dot_type) : NULL;
    const size_t wrs = sl_row_size(wtype, n_in);
    const size_t xrs = vtr ? sl_row_size(tr->vec_dot_type, n_in) : 0;
    *scratch_bytes = 0;
    if (n_out <= 0 || !tr || !tr->supported || !K->dot[wtype] || wrs == 0 || xrs == 0 ||
        (tr->vec_dot_type != SL_TYPE_F32 && !K->quant[tr->vec_dot_type]))
        return XF_NONE;
    const bool q8 = tr->vec_dot_type == SL_TYPE_Q8_0 && n_in % 32 == 0;
    const bool kq = tr->blck == 256 && K->gemmuk[wtype];
    /* many tokens: unpack chunks of rows once, reuse them for every group */
    const bool unp = n_tok >= GEMMU_MIN_TOK && n_in % 32 == 0 && K->unpack[wtype] && (K->gemmu[wtype] || kq);
    size_t urs = 0;
    int64_t u_chunk = 0;
    if (unp) {
        urs = kq ? SL_UK_ROW_BYTES(n_in) : SL_U_ROW_BYTES(n_in);
        u_chunk = unpack_chunk(urs, kq ? 2 : 8); /* k-quant rows in pairs, the others in 8-row panels */
        *scratch_bytes = (size_t)u_chunk * urs;
    }
    const bool panel = n_tok > 1 && !kq && (unp || (q8 && K->gemm[wtype]));
    const bool frow = n_tok == 1 && q8 && K->dotf[wtype];
    *j = (struct mm_job){
        .w = w, .wrs = wrs, .n_in = n_in, .n_out = n_out, .xrs = xrs, .n_tok = n_tok,
        .dot = K->dot[wtype], .tile = K->tile[wtype],
        .tile1 = tr->vec_dot_type == SL_TYPE_F32 && K->tile[wtype],
        .gemm = panel && !unp ? K->gemm[wtype] : NULL,
        .dotf = frow ? K->dotf[wtype] : NULL,
        .unpack = unp ? K->unpack[wtype] : NULL,
        .gemmu = unp && !kq ? K->gemmu[wtype] : NULL,
        .gemmuk = unp && kq ? K->gemmuk[wtype] : NULL,
        .urs = urs,
    };
    atomic_init(&j->next, 0);
    if (unp) {
        j->chunk = u_chunk;
    } else if (n_tok > 1 && (j->tile || j->gemm)) {
        j->chunk = tr->vec_dot_type == SL_TYPE_F32 ? GEMM_ROW_CHUNK_F : GEMM_ROW_CHUNK;
    } else {
        /* ~8 chunks per thread balances load; multiples of 4 rows. Filled
         * in by the caller, which knows the thread count. */
        j->chunk = 0;
    }
    if (tr->vec_dot_type == SL_TYPE_F32) return XF_F32;
    if (panel) return XF_PANEL;
    if (frow) return XF_FROW;
    return XF_ROWS + (int)tr->vec_dot_type;
}

/* Several matrices in one pool run: each thread claims chunks of the first
 * matrix, then of the next, and so on. */
struct mm_multi {
    struct mm_job *jobs;
    int n;
};

static void mm_multi_worker(void *ctx, int ith, int nth) {
    struct mm_multi *mm = ctx;
    for (int i = 0; i < mm->n; i++) mm_worker(&mm->jobs[i], ith, nth);
}

#define MM_MULTI_MAX 8

/* Quantizes x once into the layout xf (for the weight type wtype) and runs
 * the n planned jobs; false when out of memory (nothing written). */
static bool mm_run(sl_pool_t *pool, const sl_kern_table_t *K, int xf, sl_type_t wtype, const float *x,
                   int64_t n_in, int64_t n_tok, struct mm_job *jobs, int n, size_t scratch_bytes, int64_t macs) {
    const int nth = sl_pool_size(pool);
    const bool parallel = nth > 1 && macs >= MIN_PARALLEL_MACS;
    uint8_t stack_buf[STACK_XQ_BYTES] __attribute__((aligned(64)));
    uint8_t *heap = NULL, *scratch = NULL;
    const uint8_t *xq;
    if (scratch_bytes) {
        scratch = aligned_alloc(64, ((size_t)nth * scratch_bytes + 63) & ~(size_t)63);
        if (!scratch) return false;
    }
    if (xf == XF_F32) {
        xq = (const uint8_t *)x;
    } else {
        const sl_type_traits_t *tr = sl_type_traits(wtype);
        const int64_t n_groups = (n_tok + 3) / 4;
        const size_t xrs = jobs[0].xrs;
        size_t need = xf == XF_PANEL  ? (size_t)(n_groups * (n_in / 32)) * sizeof(sl_q8x4_t)
                      : xf == XF_FROW ? (size_t)(n_in / 32) * sizeof(sl_q8f_t)
                                      : xrs * (size_t)n_tok;
        uint8_t *buf = stack_buf;
        if (need > sizeof stack_buf) {
            heap = aligned_alloc(64, (need + 63) & ~(size_t)63);
            if (!heap) {
                free(scratch);
                return false;
            }
            buf = heap;
        }
        struct q_job q = {K->quant[tr->vec_dot_type], K->quantf, x, n_in, n_tok, buf, xrs, 0};
        atomic_init(&q.next, 0);
        sl_pool_fn qfn = q_worker;
        if (xf == XF_PANEL) {
            /* the padding tokens of the last group stay zero */
            size_t gbytes = (size_t)(n_in / 32) * sizeof(sl_q8x4_t);
            if (n_tok % 4) memset(buf + (size_t)(n_groups - 1) * gbytes, 0, gbytes);
            qfn = q_panel_worker; /* q8_0 codes for q4_1/q5_1 too: the panel has s */
        }
        if (xf == XF_FROW) {
            sl_q8f_t *xf_row = (sl_q8f_t *)buf;
            K->quantf(x, n_in / 32, &xf_row->d, &xf_row->s, xf_row->qs, sizeof *xf_row);
        } else if (parallel && n_tok > 1) {
            sl_pool_run_elastic(pool, qfn, &q);
        } else {
            qfn(&q, 0, 1);
        }
        xq = buf;
    }
    for (int i = 0; i < n; i++) {
        jobs[i].xq = xq;
        jobs[i].scratch = scratch;
        if (jobs[i].chunk == 0) {
            /* multiples of 4 rows (of 8 for x8 panels, 16 where two
             * panels go at once) */
            const int64_t align = jobs[i].x8_dot4x2 ? 16 : jobs[i].x8_dot ? 8 : 4;
            int64_t c = jobs[i].n_out / (nth * 8);
            jobs[i].chunk = SL_MAX(align, SL_MIN(256, c & ~(align - 1)));
        }
        if (jobs[i].n_tok == 1 && parallel && nth <= MM_RANGES) {
            const int64_t nc = (jobs[i].n_out + jobs[i].chunk - 1) / jobs[i].chunk;
            jobs[i].nrange = nth;
            for (int t = 0; t < nth; t++)
                atomic_init(&jobs[i].range[t], ((unsigned long long)(nc * t / nth) << 32) |
                                                   (unsigned long long)(nc * (t + 1) / nth));
        }
    }
    struct mm_multi mm = {jobs, n};
    if (parallel)
        sl_pool_run_elastic(pool, mm_multi_worker, &mm);
    else
        mm_multi_worker(&mm, 0, 1);
    free(heap);
    free(scratch);
    return true;
}

void sl_matmul_multi(sl_pool_t *pool, const sl_mm_t *mats, int n_mats, int64_t n_in, const float *x,
                     int64_t n_tok) {
    if (n_tok <= 0 || n_mats <= 0) return;
    const sl_kern_table_t *K = sl_kern_table();
    struct mm_job jobs[MM_MULTI_MAX];
    int xf0 = XF_NONE, n = 0;
    size_t scratch_bytes = 0;
    int64_t macs = 0;
    bool shared = n_mats <= MM_MULTI_MAX;
    for (int i = 0; shared && i < n_mats; i++) {
        size_t sb;
        const int xf = mm_plan(K, mats[i].w, mats[i].type, mats[i].x8, n_in, mats[i].n_out, n_tok, &jobs[n], &sb);
        if (xf == XF_NONE || (n > 0 && xf != xf0)) {
            shared = false;
            break;
        }
        jobs[n].y = mats[i].y;
        xf0 = xf;
        scratch_bytes = SL_MAX(scratch_bytes, sb);
        macs += n_in * mats[i].n_out * n_tok;
        n++;
    }
    if (shared && mm_run(pool, K, xf0, mats[0].type, x, n_in, n_tok, jobs, n, scratch_bytes, macs)) return;
    /* different activation layouts (or out of memory): one matrix at a time */
    for (int i = 0; i < n_mats; i++) {
        if (n_mats > 1) {
            sl_matmul_multi(pool, &mats[i], 1, n_in, x, n_tok);
            continue;
        }
        struct mm_job j;
        size_t sb;
        const int xf = mm_plan(K, mats[i].w, mats[i].type, mats[i].x8, n_in, mats[i].n_out, n_tok, &j, &sb);
        const int64_t n_out = mats[i].n_out;
        float *y = mats[i].y;
        if (n_out <= 0) continue;
        if (xf == XF_NONE) {
            /* A shape or type the loader should have refused; never read out
             * of bounds, leave a defined result. */
            memset(y, 0, (size_t)(n_tok * n_out) * sizeof(float));
            continue;
        }
        /* out of memory: token by token (the activations then fit the stack) */
        if (n_tok > 1 && j.xrs <= STACK_XQ_BYTES) {
            for (int64_t t = 0; t < n_tok; t++) {
                sl_mm_t one = mats[i];
                one.y = y + t * n_out;
                sl_matmul_multi(pool, &one, 1, n_in, x + t * n_in, 1);
            }
        } else {
            memset(y, 0, (size_t)(n_tok * n_out) * sizeof(float));
        }
    }
}

void sl_matmul(sl_pool_t *pool, const void *w, sl_type_t wtype, int64_t n_in, int64_t n_out,
               const float *x, int64_t n_tok, float *y) {
    const sl_mm_t m = {w, wtype, n_out, y, false};
    sl_matmul_multi(pool, &m, 1, n_in, x, n_tok);
}

void sl_matmul_x8(sl_pool_t *pool, const void *w, sl_type_t wtype, int64_t n_in, int64_t n_out,
                  const float *x, int64_t n_tok, float *y) {
    const sl_mm_t m = {w, wtype, n_out, y, true};
    sl_matmul_multi(pool, &m, 1, n_in, x, n_tok);
}

/* ---- x8 panels ---- */

bool sl_x8_supported(sl_type_t t, int64_t n_in, int64_t n_out) {
    const sl_kern_table_t *K = sl_kern_table();
    /* many tokens: x8_gemm, x8_unpack + gemmu, or (types dotted with q8_K
     * rows) x8_dot4 or x8_dot per token */
    return x8_layout(t, n_in, n_out) && K->x8_dot[t] &&
           (K->x8_gemm[t] || (K->x8_unpack[t] && K->gemmu[t]) || sl_type_traits(t)->vec_dot_type == SL_TYPE_Q8_K);
}

/* q4_0 / q5_0 (five): code j of group g ↔ element 4g + j % 4 of row j / 4
 * (kern_impl.h). q4_0: group k's low nibbles and group k + 4's high
 * nibbles are elements 4k..4k+3 and 16+4k..16+4k+3, i.e. exactly the GGUF
 * bytes qs[4k..4k+3]: a row's 4 bytes of nibble vector k are a copy. q5_0:
 * byte j of vector k = code j of group k (5 bits) | the low 3 bits of code
 * j of group k + 4 at bit 5; the high 2 bits of the latter go to bits 2k,
 * 2k + 1 of byte j of the vector before them. The same for q4_1 / q5_1
 * (mins): their GGUF blocks are d, then m, then qh (five), then 16 bytes
 * of nibbles; their x8 blocks the _0 layout with the 8 f16 m after the 8
 * f16 d. */
static sl_type_t q4_type(bool five, bool mins) {
    return five ? (mins ? SL_TYPE_Q5_1 : SL_TYPE_Q5_0) : (mins ? SL_TYPE_Q4_1 : SL_TYPE_Q4_0);
}
static size_t x8_q4_bsz(bool five, bool mins) {
    return (five ? SL_X8_Q5_0_BLOCK : SL_X8_Q4_0_BLOCK) + (mins ? 16 : 0);
}

static int q5_code(const uint8_t *qs, uint32_t qh, int e) {
    const int nib = e < 16 ? qs[e] & 0x0f : qs[e - 16] >> 4;
    return nib | (int)((qh >> e) & 1u) << 4;
}

static void x8_pack_q4(bool five, bool mins, int64_t n_in, const void *src, void *dst, int64_t r0, int64_t r1) {
    const sl_type_t t = q4_type(five, mins);
    const size_t bsz = x8_q4_bsz(five, mins), gsz = sl_type_traits(t)->type_size;
    const size_t qso = 2 + (mins ? 2 : 0) + (five ? 4 : 0); /* nibbles in the GGUF block */
    const size_t nib = (five ? 48 : 16) + (mins ? 16 : 0), hbo = mins ? 32 : 16; /* codes, high bits in x8 */
    const int64_t nb = n_in / 32;
    const size_t rs = sl_row_size(t, n_in);
    for (int64_t p = r0 / 8; p < (r1 + 7) / 8; p++) {
        uint8_t *pn = (uint8_t *)dst + (size_t)p * 8 * rs;
        for (int r = 0; r < 8; r++) {
            const uint8_t *row = x8_src_row(src, rs, p * 8 + r, r1);
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *gb = row + (size_t)b * gsz, *qs = gb + qso;
                uint8_t *blk = pn + (size_t)b * bsz;
                memcpy(blk + 2 * r, gb, 2);
                if (mins) memcpy(blk + 16 + 2 * r, gb + 2, 2);
                if (five) {
                    uint32_t qh;
                    memcpy(&qh, gb + (mins ? 4 : 2), 4);
                    for (int tt = 0; tt < 4; tt++) {
                        uint8_t hi = 0;
                        for (int k = 0; k < 4; k++) {
                            const int lo = q5_code(qs, qh, 4 * k + tt), up = q5_code(qs, qh, 16 + 4 * k + tt);
                            blk[nib + 32 * k + 4 * r + tt] = (uint8_t)(lo | (up & 7) << 5);
                            hi |= (uint8_t)((up >> 3) << (2 * k));
                        }
                        blk[hbo + 4 * r + tt] = hi;
                    }
                } else {
                    for (int k = 0; k < 4; k++) memcpy(blk + nib + 32 * k + 4 * r, qs + 4 * k, 4);
                }
            }
        }
    }
}

static void x8_row_q4(bool five, bool mins, int64_t n_in, const void *w, int64_t r, void *vrow) {
    const sl_type_t t = q4_type(five, mins);
    const size_t bsz = x8_q4_bsz(five, mins), gsz = sl_type_traits(t)->type_size;
    const size_t qso = 2 + (mins ? 2 : 0) + (five ? 4 : 0);
    const size_t nib = (five ? 48 : 16) + (mins ? 16 : 0), hbo = mins ? 32 : 16;
    const int64_t nb = n_in / 32;
    const size_t rs = sl_row_size(t, n_in);
    const uint8_t *pn = (const uint8_t *)w + (size_t)(r / 8) * 8 * rs;
    const int k = (int)(r % 8);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = pn + (size_t)b * bsz;
        uint8_t *gb = (uint8_t *)vrow + (size_t)b * gsz, *qs = gb + qso;
        memcpy(gb, blk + 2 * k, 2);
        if (mins) memcpy(gb + 2, blk + 16 + 2 * k, 2);
        if (five) {
            uint32_t qh = 0;
            for (int tt = 0; tt < 4; tt++) {
                const uint8_t hi = blk[hbo + 4 * k + tt];
                for (int v = 0; v < 4; v++) {
                    const uint8_t c = blk[nib + 32 * v + 4 * k + tt];
                    const int e = 4 * v + tt, lo = c & 0x1f, up = c >> 5 | ((hi >> (2 * v)) & 3) << 3;
                    qs[e] = (uint8_t)((lo & 0x0f) | (up & 0x0f) << 4);
                    qh |= (uint32_t)(lo >> 4) << e | (uint32_t)(up >> 4) << (e + 16);
                }
            }
            memcpy(gb + (mins ? 4 : 2), &qh, 4);
        } else {
            for (int v = 0; v < 4; v++) memcpy(qs + 4 * v, blk + nib + 32 * v + 4 * k, 4);
        }
    }
}

/* q4_K / q5_K (kern_impl.h, SL_X8_Q4_K_BLOCK, SL_X8_Q5_K_BLOCK): the low
 * 4 bits of element e of a GGUF super-block's qs — chunk e / 64, low
 * nibbles the first 32 elements; q5_K's fifth bit is bit 2 (e / 64) +
 * (e % 64 >= 32) of qh[e % 32]. */
static int q4k_code(const uint8_t *qs, int e) {
    const int c = e / 64, l = e % 64;
    return l < 32 ? qs[32 * c + l] & 0x0f : qs[32 * c + l - 32] >> 4;
}
static int q5k_bit(const uint8_t *qh, int e) {
    return qh[e % 32] >> (2 * (e / 64) + (e % 64 >= 32)) & 1;
}

/* q4_K and q5_K (five) share the block layout but for q5_K's fifth-bit
 * vector after each sub-block's nibbles (SL_X8_Q5_K_BLOCK). */
static void x8_pack_k45(bool five, int64_t n_in, const void *src, void *dst, int64_t r0, int64_t r1) {
    const int64_t nsb = n_in / SL_QK_K;
    const size_t rs = sl_row_size(five ? SL_TYPE_Q5_K : SL_TYPE_Q4_K, n_in);
    const size_t bsz = five ? SL_X8_Q5_K_BLOCK : SL_X8_Q4_K_BLOCK, sbsz = five ? 160 : 128;
    for (int64_t p = r0 / 8; p < (r1 + 7) / 8; p++) {
        uint8_t *pn = (uint8_t *)dst + (size_t)p * 8 * rs;
        if (five) memset(pn, 0, 8 * rs); /* the fifth bits are ORed in */
        for (int r = 0; r < 8; r++) {
            const uint8_t *row = x8_src_row(src, rs, p * 8 + r, r1);
            for (int64_t i = 0; i < nsb; i++) {
                const sl_block_q4_K *x4 = (const sl_block_q4_K *)row + i;
                const sl_block_q5_K *x5 = (const sl_block_q5_K *)row + i;
                const uint8_t *qs = five ? x5->qs : x4->qs, *scales = five ? x5->scales : x4->scales;
                uint8_t *blk = pn + (size_t)i * bsz;
                memcpy(blk + 2 * r, five ? &x5->d : &x4->d, 2);
                memcpy(blk + 16 + 2 * r, five ? &x5->dmin : &x4->dmin, 2);
                uint8_t sc[8], mn[8];
                for (int j = 0; j < 8; j++) sl_k4_scale_min(j, scales, &sc[j], &mn[j]);
                for (int j = 0; j < 8; j++) blk[32 + 8 * j + r] = (uint8_t)((sc[j] & 0x0f) | (mn[j] & 0x0f) << 4);
                for (int j = 0; j < 4; j++)
                    blk[96 + 8 * j + r] = (uint8_t)(sc[j] >> 4 | (mn[j] >> 4) << 2 | (sc[j + 4] >> 4) << 4 |
                                                    (mn[j + 4] >> 4) << 6);
                for (int j = 0; j < 8; j++)
                    for (int k = 0; k < 4; k++)
                        for (int u = 0; u < 4; u++) {
                            const int e0 = 32 * j + 4 * k + u, e1 = e0 + 16;
                            uint8_t *sb = blk + 128 + sbsz * (size_t)j;
                            sb[32 * k + 4 * r + u] = (uint8_t)(q4k_code(qs, e0) | q4k_code(qs, e1) << 4);
                            if (five)
                                sb[128 + 4 * r + u] |= (uint8_t)(q5k_bit(x5->qh, e0) << k | q5k_bit(x5->qh, e1) << (4 + k));
                        }
            }
        }
    }
}

static void x8_row_k45(bool five, int64_t n_in, const void *w, int64_t r, void *vrow) {
    const int64_t nsb = n_in / SL_QK_K;
    const size_t rs = sl_row_size(five ? SL_TYPE_Q5_K : SL_TYPE_Q4_K, n_in);
    const size_t bsz = five ? SL_X8_Q5_K_BLOCK : SL_X8_Q4_K_BLOCK, sbsz = five ? 160 : 128;
    const uint8_t *pn = (const uint8_t *)w + (size_t)(r / 8) * 8 * rs;
    const int k8 = (int)(r % 8);
    for (int64_t i = 0; i < nsb; i++) {
        const uint8_t *blk = pn + (size_t)i * bsz;
        sl_block_q4_K *x4 = (sl_block_q4_K *)vrow + i;
        sl_block_q5_K *x5 = (sl_block_q5_K *)vrow + i;
        uint8_t *qs = five ? x5->qs : x4->qs, *scales = five ? x5->scales : x4->scales;
        memcpy(five ? &x5->d : &x4->d, blk + 2 * k8, 2);
        memcpy(five ? &x5->dmin : &x4->dmin, blk + 16 + 2 * k8, 2);
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; j++) {
            const uint8_t lo = blk[32 + 8 * j + k8], hi = blk[96 + 8 * (j % 4) + k8] >> (j < 4 ? 0 : 4);
            sc[j] = (uint8_t)((lo & 0x0f) | (hi & 3) << 4);
            mn[j] = (uint8_t)((lo >> 4) | ((hi >> 2) & 3) << 4);
        }
        /* the GGUF packing of 8 × (6-bit scale, 6-bit min) in 12 bytes */
        for (int j = 0; j < 4; j++) {
            scales[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
            scales[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
            scales[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | (mn[j + 4] & 0x0f) << 4);
        }
        if (five) memset(x5->qh, 0, sizeof x5->qh);
        for (int j = 0; j < 8; j++)
            for (int k = 0; k < 4; k++)
                for (int u = 0; u < 4; u++) {
                    const uint8_t *sb = blk + 128 + sbsz * (size_t)j;
                    const uint8_t c = sb[32 * k + 4 * k8 + u];
                    for (int h = 0; h < 2; h++) {
                        const int e = 32 * j + 16 * h + 4 * k + u, ch = e / 64, l = e % 64;
                        const int v = h ? c >> 4 : c & 0x0f;
                        uint8_t *q = &qs[32 * ch + (l < 32 ? l : l - 32)];
                        *q = l < 32 ? (uint8_t)((*q & 0xf0) | v) : (uint8_t)((*q & 0x0f) | v << 4);
                        if (five && (sb[128 + 4 * k8 + u] >> (4 * h + k) & 1))
                            x5->qh[e % 32] |= (uint8_t)(1u << (2 * (e / 64) + (e % 64 >= 32)));
                    }
                }
    }
}

/* q6_K (kern_impl.h, SL_X8_Q6_K_BLOCK): a GGUF super-block's 256 codes
 * (0..63) in element order, and back — ggml's dequantize_row_q6_K walk:
 * per 128-element half and l < 32, elements l, l + 32, l + 64, l + 96 take
 * the low / low / high / high nibble of ql[l], ql[l + 32], ql[l], ql[l + 32]
 * and bits 0-1 / 2-3 / 4-5 / 6-7 of qh[l]. */
static void q6k_codes(const sl_block_q6_K *x, uint8_t code[SL_QK_K]) {
    for (int half = 0; half < 2; half++)
        for (int l = 0; l < 32; l++) {
            const uint8_t a = x->ql[64 * half + l], b = x->ql[64 * half + 32 + l], h = x->qh[32 * half + l];
            uint8_t *c = code + 128 * half + l;
            c[0] = (uint8_t)((a & 0x0f) | (h & 3) << 4);
            c[32] = (uint8_t)((b & 0x0f) | (h >> 2 & 3) << 4);
            c[64] = (uint8_t)((a >> 4) | (h >> 4 & 3) << 4);
            c[96] = (uint8_t)((b >> 4) | (h >> 6 & 3) << 4);
        }
}
static void q6k_put_codes(const uint8_t code[SL_QK_K], sl_block_q6_K *x) {
    for (int half = 0; half < 2; half++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *c = code + 128 * half + l;
            x->ql[64 * half + l] = (uint8_t)((c[0] & 0x0f) | (c[64] & 0x0f) << 4);
            x->ql[64 * half + 32 + l] = (uint8_t)((c[32] & 0x0f) | (c[96] & 0x0f) << 4);
            x->qh[32 * half + l] = (uint8_t)(c[0] >> 4 | (c[32] >> 4) << 2 | (c[64] >> 4) << 4 | (c[96] >> 4) << 6);
        }
}

/* Row r's bytes of sub-block j in an x8 q6_K super-block: code vector k
 * holds elements 32j + 4k + t (low nibble) and 32j + 16 + 4k + t (high)
 * at byte t; the top-bit vectors at +128 (first 16 elements) and +160
 * (last 16), bits 2k, 2k + 1. */
static size_t x8_q6k_sub(int j, int r) {
    return 144 + 192 * (size_t)j + 4 * (size_t)r;
}

static void x8_pack_q6K(int64_t n_in, const void *src, void *dst, int64_t r0, int64_t r1) {
    const int64_t nsb = n_in / SL_QK_K;
    const size_t rs = sl_row_size(SL_TYPE_Q6_K, n_in);
    for (int64_t p = r0 / 8; p < (r1 + 7) / 8; p++) {
        uint8_t *pn = (uint8_t *)dst + (size_t)p * 8 * rs;
        memset(pn, 0, 8 * rs); /* the top-bit bytes are ORed in */
        for (int r = 0; r < 8; r++) {
            const uint8_t *row = x8_src_row(src, rs, p * 8 + r, r1);
            for (int64_t i = 0; i < nsb; i++) {
                const sl_block_q6_K *x = (const sl_block_q6_K *)row + i;
                uint8_t *blk = pn + (size_t)i * SL_X8_Q6_K_BLOCK;
                memcpy(blk + 2 * r, &x->d, 2);
                uint8_t code[SL_QK_K];
                q6k_codes(x, code);
                for (int j = 0; j < 8; j++) {
                    blk[16 + 16 * j + 2 * r] = (uint8_t)x->scales[2 * j];
                    blk[16 + 16 * j + 2 * r + 1] = (uint8_t)x->scales[2 * j + 1];
                    uint8_t *sb = blk + x8_q6k_sub(j, r);
                    for (int k = 0; k < 4; k++)
                        for (int t = 0; t < 4; t++) {
                            const int c0 = code[32 * j + 4 * k + t], c1 = code[32 * j + 16 + 4 * k + t];
                            sb[32 * k + t] = (uint8_t)((c0 & 0x0f) | (c1 & 0x0f) << 4);
                            sb[128 + t] |= (uint8_t)((c0 >> 4) << 2 * k);
                            sb[160 + t] |= (uint8_t)((c1 >> 4) << 2 * k);
                        }
                }
            }
        }
    }
}

static void x8_row_q6K(int64_t n_in, const void *w, int64_t r, void *vrow) {
    const int64_t nsb = n_in / SL_QK_K;
    const size_t rs = sl_row_size(SL_TYPE_Q6_K, n_in);
    const uint8_t *pn = (const uint8_t *)w + (size_t)(r / 8) * 8 * rs;
    const int k8 = (int)(r % 8);
    for (int64_t i = 0; i < nsb; i++) {
        const uint8_t *blk = pn + (size_t)i * SL_X8_Q6_K_BLOCK;
        sl_block_q6_K *x = (sl_block_q6_K *)vrow + i;
        memcpy(&x->d, blk + 2 * k8, 2);
        uint8_t code[SL_QK_K];
        for (int j = 0; j < 8; j++) {
            x->scales[2 * j] = (int8_t)blk[16 + 16 * j + 2 * k8];
            x->scales[2 * j + 1] = (int8_t)blk[16 + 16 * j + 2 * k8 + 1];
            const uint8_t *sb = blk + x8_q6k_sub(j, k8);
            for (int k = 0; k < 4; k++)
                for (int t = 0; t < 4; t++) {
                    const uint8_t nb = sb[32 * k + t];
                    code[32 * j + 4 * k + t] = (uint8_t)((nb & 0x0f) | (sb[128 + t] >> 2 * k & 3) << 4);
                    code[32 * j + 16 + 4 * k + t] = (uint8_t)((nb >> 4) | (sb[160 + t] >> 2 * k & 3) << 4);
                }
        }
        q6k_put_codes(code, x);
    }
}

/* iq4_xs (SL_X8_IQ4_XS_BLOCK): d, scales_h, scales_l regrouped per row,
 * the 16 index bytes of each sub-block as x8 q4_0's nibble vectors. to_x8:
 * GGUF block → panel slot of row r; else back. */
static void iq4xs_move(bool to_x8, uint8_t *blk, uint8_t *gb, int r) {
    sl_block_iq4_xs *g = (sl_block_iq4_xs *)gb;
#define IQ4_MOVE(x8p, gp, n) (to_x8 ? memcpy((x8p), (gp), (n)) : memcpy((gp), (x8p), (n)))
    IQ4_MOVE(blk + 2 * r, &g->d, 2);
    IQ4_MOVE(blk + 16 + 2 * r, &g->scales_h, 2);
    IQ4_MOVE(blk + 32 + 4 * r, g->scales_l, 4);
    for (int ib = 0; ib < 8; ib++)
        for (int k = 0; k < 4; k++) IQ4_MOVE(blk + 64 + 128 * ib + 32 * k + 4 * r, g->qs + 16 * ib + 4 * k, 4);
#undef IQ4_MOVE
}

static void x8_pack_iq4xs(int64_t n_in, const void *src, void *dst, int64_t r0, int64_t r1) {
    const int64_t nb = n_in / SL_QK_K;
    const size_t rs = sl_row_size(SL_TYPE_IQ4_XS, n_in);
    for (int64_t p = r0 / 8; p < (r1 + 7) / 8; p++) {
        uint8_t *pn = (uint8_t *)dst + (size_t)p * 8 * rs;
        for (int r = 0; r < 8; r++) {
            const uint8_t *row = x8_src_row(src, rs, p * 8 + r, r1);
            for (int64_t i = 0; i < nb; i++) {
                sl_block_iq4_xs g;
                memcpy(&g, row + (size_t)i * sizeof g, sizeof g);
                iq4xs_move(true, pn + (size_t)i * SL_X8_IQ4_XS_BLOCK, (uint8_t *)&g, r);
            }
        }
    }
}

static void x8_row_iq4xs(int64_t n_in, const void *w, int64_t r, void *vrow) {
    const int64_t nb = n_in / SL_QK_K;
    const size_t rs = sl_row_size(SL_TYPE_IQ4_XS, n_in);
    uint8_t *pn = (uint8_t *)w + (size_t)(r / 8) * 8 * rs;
    for (int64_t i = 0; i < nb; i++) {
        sl_block_iq4_xs g;
        iq4xs_move(false, pn + (size_t)i * SL_X8_IQ4_XS_BLOCK, (uint8_t *)&g, (int)(r % 8));
        memcpy((uint8_t *)vrow + (size_t)i * sizeof g, &g, sizeof g);
    }
}

size_t sl_x8_bytes(sl_type_t t, int64_t n_in, int64_t n_out) {
    if (!x8_layout(t, n_in, n_out)) return 0;
    return sl_row_size(t, n_in) * (size_t)((n_out + 7) & ~(int64_t)7);
}

void sl_x8_pack(sl_type_t t, int64_t n_in, const void *src, void *dst, int64_t r0, int64_t r1) {
    if (n_in % 32 || r0 % 8 || r1 < r0 || sl_row_size(t, n_in) > X8_ROW_MAX) return;
    if (t == SL_TYPE_Q4_K || t == SL_TYPE_Q5_K) {
        if (n_in % SL_QK_K == 0) x8_pack_k45(t == SL_TYPE_Q5_K, n_in, src, dst, r0, r1);
        return;
    }
    if (t == SL_TYPE_Q6_K) {
        if (n_in % SL_QK_K == 0) x8_pack_q6K(n_in, src, dst, r0, r1);
        return;
    }
    if (t == SL_TYPE_IQ4_XS) {
        if (n_in % SL_QK_K == 0) x8_pack_iq4xs(n_in, src, dst, r0, r1);
        return;
    }
    if (t == SL_TYPE_Q5_0 || t == SL_TYPE_Q4_0 || t == SL_TYPE_Q5_1 || t == SL_TYPE_Q4_1 || t == SL_TYPE_IQ4_NL) {
        x8_pack_q4(t == SL_TYPE_Q5_0 || t == SL_TYPE_Q5_1, t == SL_TYPE_Q4_1 || t == SL_TYPE_Q5_1, n_in, src, dst, r0,
                   r1);
        return;
    }
    if (t != SL_TYPE_Q8_0) return;
    const int64_t nb = n_in / 32;
    const size_t rs = sl_row_size(t, n_in);
    for (int64_t p = r0 / 8; p < (r1 + 7) / 8; p++) {
        uint8_t *pn = (uint8_t *)dst + (size_t)p * 8 * rs;
        for (int r = 0; r < 8; r++) {
            const sl_block_q8_0 *row = (const void *)x8_src_row(src, rs, p * 8 + r, r1);
            for (int64_t b = 0; b < nb; b++) {
                uint8_t *d = (uint8_t *)SL_X8_D(pn, b), *q = (uint8_t *)SL_X8_Q(pn, b);
                memcpy(d + 2 * r, &row[b].d, 2);
                for (int g = 0; g < 8; g++) memcpy(q + 32 * g + 4 * r, row[b].qs + 4 * g, 4);
            }
        }
    }
}

void sl_x8_row(sl_type_t t, int64_t n_in, const void *w, int64_t r, void *vrow) {
    if (n_in % 32) return;
    if (t == SL_TYPE_Q4_K || t == SL_TYPE_Q5_K) {
        if (n_in % SL_QK_K == 0) x8_row_k45(t == SL_TYPE_Q5_K, n_in, w, r, vrow);
        return;
    }
    if (t == SL_TYPE_Q6_K) {
        if (n_in % SL_QK_K == 0) x8_row_q6K(n_in, w, r, vrow);
        return;
    }
    if (t == SL_TYPE_IQ4_XS) {
        if (n_in % SL_QK_K == 0) x8_row_iq4xs(n_in, w, r, vrow);
        return;
    }
    if (t == SL_TYPE_Q5_0 || t == SL_TYPE_Q4_0 || t == SL_TYPE_Q5_1 || t == SL_TYPE_Q4_1 || t == SL_TYPE_IQ4_NL) {
        x8_row_q4(t == SL_TYPE_Q5_0 || t == SL_TYPE_Q5_1, t == SL_TYPE_Q4_1 || t == SL_TYPE_Q5_1, n_in, w, r, vrow);
        return;
    }
    if (t != SL_TYPE_Q8_0) return;
    const int64_t nb = n_in / 32;
    const size_t rs = sl_row_size(t, n_in);
    const uint8_t *pn = (const uint8_t *)w + (size_t)(r / 8) * 8 * rs;
    sl_block_q8_0 *row = vrow;
    const int k = (int)(r % 8);
    for (int64_t b = 0; b < nb; b++) {
        memcpy(&row[b].d, SL_X8_D(pn, b) + 2 * k, 2);
        for (int g = 0; g < 8; g++) memcpy(row[b].qs + 4 * g, SL_X8_Q(pn, b) + 32 * g + 4 * k, 4);
    }
}
