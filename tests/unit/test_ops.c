/* deps: base kernels */
/*
 * test_ops.c — the small kernels of kernels/ops.c against plain formulas in
 * double precision: rmsnorm, softmax, silu/gelu/swiglu, RoPE (NORM and NEOX
 * styles; no scaling, linear, YaRN, llama3 frequency divisors, partial
 * rotation) and causal GQA attention (F32 and F16 cache, one and several
 * threads, scalar and SIMD).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/pool.h"
#include "kernels/kernels.h"
#include "test.h"

static uint64_t rs = 88172645463325252ull;
static float rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((double)(rs >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void test_rmsnorm(void) {
    enum { N = 77 };
    float x[N], w[N], out[N];
    for (int i = 0; i < N; i++) x[i] = rnd() * 3, w[i] = 1 + rnd() * 0.5f;
    sl_rmsnorm(out, x, w, N, 1e-6f);
    double ss = 0;
    for (int i = 0; i < N; i++) ss += (double)x[i] * x[i];
    double sc = 1 / sqrt(ss / N + 1e-6);
    for (int i = 0; i < N; i++) CHECK_NEAR(out[i], x[i] * sc * w[i], 1e-5);
    /* in place, no weight */
    float y[N];
    memcpy(y, x, sizeof y);
    sl_rmsnorm(y, y, NULL, N, 1e-6f);
    for (int i = 0; i < N; i++) CHECK_NEAR(y[i], x[i] * sc, 1e-5);
}

static void test_softmax(void) {
    enum { N = 50 };
    float x[N];
    double e[N], s = 0;
    for (int i = 0; i < N; i++) x[i] = rnd() * 20 + 500; /* large: needs max subtraction */
    for (int i = 0; i < N; i++) s += (e[i] = exp((double)x[i] - 500));
    sl_softmax(x, N);
    double tot = 0;
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(x[i], e[i] / s, 1e-6);
        tot += x[i];
    }
    CHECK_NEAR(tot, 1.0, 1e-5);
    float one = -3;
    sl_softmax(&one, 1);
    CHECK_NEAR(one, 1.0, 0);
}

static void test_activations(void) {
    enum { N = 40 };
    float x[N], g[N], u[N], o[N], s[N], ge[N];
    for (int i = 0; i < N; i++) x[i] = rnd() * 6, g[i] = rnd() * 6, u[i] = rnd() * 2;
    memcpy(s, x, sizeof s);
    memcpy(ge, x, sizeof ge);
    sl_silu(s, N);
    sl_gelu(ge, N);
    sl_swiglu(o, g, u, N);
    for (int i = 0; i < N; i++) {
        double v = x[i];
        CHECK_NEAR(s[i], v / (1 + exp(-v)), 1e-5);
        CHECK_NEAR(ge[i], 0.5 * v * (1 + erf(v / sqrt(2.0))), 2e-3); /* tanh approximation */
        CHECK_NEAR(o[i], g[i] / (1 + exp(-(double)g[i])) * u[i], 1e-5);
    }
}

/* RoPE from the formulas: pair (a, b) of dimension pair i rotates by
 * theta_i = pos * base^(-2i/n_rot) (scaled), magnitudes times mscale. */
static void ref_rope(double *v, int n_heads, int hd, int pos, const sl_rope_t *r, double factor) {
    const int n = r->n_rot, half = n / 2;
    double lo = 0, hi = 0;
    if (r->scaling == SL_ROPE_SCALING_YARN) {
        lo = floor(n * log(r->n_ctx_orig / (r->beta_fast * 2 * M_PI)) / (2 * log(r->freq_base)));
        hi = ceil(n * log(r->n_ctx_orig / (r->beta_slow * 2 * M_PI)) / (2 * log(r->freq_base)));
        lo = fmax(lo, 0);
        hi = fmin(hi, n - 1);
    }
    for (int i = 0; i < half; i++) {
        double inv = pow(r->freq_base, -2.0 * i / n), m = r->attn_factor;
        if (r->freq_factors) inv /= r->freq_factors[i];
        if (r->scaling == SL_ROPE_SCALING_LINEAR) inv /= factor;
        if (r->scaling == SL_ROPE_SCALING_YARN) {
            double ramp = (i - lo) / fmax(0.001, hi - lo);
            ramp = fmin(1, fmax(0, ramp));
            /* low dims (fast rotation) extrapolate, high dims interpolate */
            inv = inv * (1 - ramp) + inv / factor * ramp;
            m *= 1 + 0.1 * log(factor);
        }
        double th = pos * inv, c = cos(th) * m, s = sin(th) * m;
        for (int h = 0; h < n_heads; h++) {
            double *x = v + (size_t)h * hd;
            int a = r->style == SL_ROPE_NEOX ? i : 2 * i, b = r->style == SL_ROPE_NEOX ? i + half : 2 * i + 1;
            double x0 = x[a], x1 = x[b];
            x[a] = x0 * c - x1 * s;
            x[b] = x0 * s + x1 * c;
        }
    }
}

static void rope_case(const char *label, sl_rope_t r, double factor, int hd, int pos) {
    enum { NH = 3, MAXD = 128 };
    float x[NH * MAXD];
    double want[NH * MAXD];
    for (int i = 0; i < NH * hd; i++) want[i] = x[i] = rnd();
    sl_rope_apply(x, NH, hd, pos, &r);
    ref_rope(want, NH, hd, pos, &r, factor);
    double md = 0;
    for (int i = 0; i < NH * hd; i++) md = fmax(md, fabs(x[i] - want[i]));
    /* float angles at large positions: ~pos * 1e-7 rad */
    double tol = 2e-5 + pos * 2e-7;
    CHECK_MSG(md <= tol, "%s pos %d: max diff %.3g", label, pos, md);
}

/* swiglu, scalar and SIMD, over a wide range (the SIMD path has its own exp). */
/* sl_argmax against a plain loop (first maximum, NaNs skipped) on every
 * ISA: lengths around the vector width, ties, NaNs, -inf, a vocabulary. */
static int64_t argmax_naive(const float *x, int64_t n) {
    int64_t b = -1;
    for (int64_t i = 0; i < n; i++)
        if (x[i] == x[i] && (b < 0 || x[i] > x[b])) b = i;
    return b;
}

static void test_argmax(void) {
    enum { V = 151936 };
    static float x[V];
    sl_isa_t isas[] = {SL_ISA_SCALAR, sl_kernels_isa()};
    int bad = 0, cases = 0;
    for (size_t k = 0; k < SL_ARRAY_LEN(isas); k++) {
        sl_isa_t prev = sl_kernels_set_isa(isas[k]);
        for (int64_t n = 0; n <= 40; n++)
            for (int rep = 0; rep < 30; rep++) {
                for (int64_t i = 0; i < n; i++) {
                    const float r = rnd();
                    /* few distinct values: ties are common */
                    x[i] = rep % 3 == 0 ? (float)(int)(r * 4) : r * 100 - 50;
                    if (rep % 5 == 1 && r < 0.2f) x[i] = NAN;
                    if (rep % 7 == 2 && r > 0.8f) x[i] = -INFINITY;
                    if (rep == 29) x[i] = NAN; /* all NaN */
                }
                cases++;
                bad += sl_argmax(x, n) != argmax_naive(x, n);
            }
        for (int rep = 0; rep < 4; rep++) {
            for (int64_t i = 0; i < V; i++) x[i] = rnd() * 20 - 10;
            x[V - 1 - rep * 1000] = 11.0f, x[V - 3 - rep * 1000] = 11.0f; /* a tie near the end */
            if (rep == 1) x[5] = NAN;
            if (rep == 2) x[V - 1] = 12.0f; /* the maximum in the tail lanes */
            cases++;
            bad += sl_argmax(x, V) != argmax_naive(x, V);
        }
        sl_kernels_set_isa(prev);
    }
    CHECK_MSG(bad == 0, "argmax: %d of %d cases differ", bad, cases);
}

static void test_swiglu_range(void) {
    enum { N = 1003 };
    static float g[N], u[N], o[N];
    for (int i = 0; i < N; i++) g[i] = -100.0f + 200.0f * (float)i / (N - 1), u[i] = 1.0f + rnd() * 0.5f;
    g[7] = 0.0f, g[8] = -0.0f, g[9] = 1e-8f;
    sl_isa_t isas[] = {SL_ISA_SCALAR, sl_kernels_isa()};
    for (size_t k = 0; k < SL_ARRAY_LEN(isas); k++) {
        sl_isa_t prev = sl_kernels_set_isa(isas[k]);
        sl_swiglu(o, g, u, N);
        sl_kernels_set_isa(prev);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            double want = (double)g[i] / (1 + exp(-(double)g[i])) * u[i];
            double err = fabs(o[i] - want) / fmax(fabs(want), 1e-30);
            if (fabs(want) < 1e-30) err = fabs(o[i]);
            worst = fmax(worst, err);
        }
        CHECK_MSG(worst < 2e-6, "swiglu isa %s: worst relative error %.3g", sl_isa_name(isas[k]), worst);
    }
}

static void test_rope(void) {
    sl_rope_t r = {.style = SL_ROPE_NORM, .n_rot = 64, .freq_base = 10000, .freq_scale = 1,
                   .attn_factor = 1, .beta_fast = 32, .beta_slow = 1, .n_ctx_orig = 4096};
    int poss[] = {0, 1, 7, 300, 4000};
    for (size_t p = 0; p < SL_ARRAY_LEN(poss); p++) {
        r.style = SL_ROPE_NORM;
        rope_case("norm", r, 1, 64, poss[p]);
        r.style = SL_ROPE_NEOX;
        rope_case("neox", r, 1, 64, poss[p]);
        /* partial rotation: dims >= n_rot untouched */
        sl_rope_t pr = r;
        pr.n_rot = 32;
        rope_case("neox partial", pr, 1, 64, poss[p]);
        pr.style = SL_ROPE_NORM;
        rope_case("norm partial", pr, 1, 64, poss[p]);
        sl_rope_t lin = r;
        lin.scaling = SL_ROPE_SCALING_LINEAR;
        lin.freq_scale = 0.25f;
        rope_case("linear", lin, 4, 64, poss[p]);
        sl_rope_t y = r;
        y.scaling = SL_ROPE_SCALING_YARN;
        y.freq_scale = 0.25f;
        y.ext_factor = 1;
        y.freq_base = 1000000;
        y.n_ctx_orig = 2048;
        rope_case("yarn neox", y, 4, 64, poss[p]);
        y.style = SL_ROPE_NORM;
        y.n_rot = 128;
        rope_case("yarn norm 128", y, 4, 128, poss[p]);
        sl_rope_t l3 = r;
        float ff[32];
        for (int i = 0; i < 32; i++) ff[i] = i < 10 ? 1.0f : i < 20 ? 1.0f + (float)(i - 10) : 8.0f;
        l3.freq_factors = ff;
        l3.freq_base = 500000;
        rope_case("llama3 freqs", l3, 1, 64, poss[p]);
    }
    /* A rotation keeps each pair's norm (no scaling). */
    float v[64], n0 = 0, n1 = 0;
    for (int i = 0; i < 64; i++) v[i] = rnd(), n0 += v[i] * v[i];
    sl_rope_apply(v, 1, 64, 12345, &r);
    for (int i = 0; i < 64; i++) n1 += v[i] * v[i];
    CHECK_NEAR(n0, n1, 1e-4);
}

/* Naive causal GQA attention in double. */
static void ref_attention(const sl_attn_t *a, const float *kf, const float *vf, double *out) {
    const int D = a->head_dim, grp = a->n_head / a->n_head_kv, nk = a->pos0 + a->n_tok;
    double *p = malloc(sizeof(double) * (size_t)nk);
    for (int t = 0; t < a->n_tok; t++)
        for (int h = 0; h < a->n_head; h++) {
            const float *q = a->q + ((size_t)t * a->n_head + h) * D;
            const size_t ko = (size_t)(h / grp) * a->kv_head_stride;
            int n = a->pos0 + t + 1;
            double mx = -1e300, s = 0;
            for (int j = 0; j < n; j++) {
                double d = 0;
                for (int i = 0; i < D; i++) d += (double)q[i] * kf[ko + (size_t)j * D + i];
                p[j] = d * a->scale;
                mx = fmax(mx, p[j]);
            }
            for (int j = 0; j < n; j++) s += (p[j] = exp(p[j] - mx));
            for (int i = 0; i < D; i++) {
                double acc = 0;
                for (int j = 0; j < n; j++) acc += p[j] / s * vf[ko + (size_t)j * D + i];
                out[((size_t)t * a->n_head + h) * D + i] = acc;
            }
        }
    (void)nk;
    free(p);
}

static void attn_case(int n_tok, int pos0, int H, int K, int D, sl_type_t kt, int threads, sl_isa_t isa) {
    const int cap = pos0 + n_tok + 3;
    const size_t hs = (size_t)cap * D, nkv = hs * K;
    float *kf = malloc(nkv * 4), *vf = malloc(nkv * 4);
    sl_f16_t *kh = malloc(nkv * 2), *vh = malloc(nkv * 2);
    for (size_t i = 0; i < nkv; i++) {
        kh[i] = sl_f32_to_f16(rnd() * 2);
        vh[i] = sl_f32_to_f16(rnd());
        kf[i] = sl_f16_to_f32(kh[i]); /* same values in both storages */
        vf[i] = sl_f16_to_f32(vh[i]);
    }
    const size_t nq = (size_t)n_tok * H * D;
    float *q = malloc(nq * 4), *out = malloc(nq * 4);
    double *want = malloc(nq * sizeof(double));
    for (size_t i = 0; i < nq; i++) q[i] = rnd();
    sl_pool_t *pool = threads > 1 ? sl_pool_new(threads) : NULL;
    float *scratch = malloc(sizeof(float) * (size_t)sl_pool_size(pool) * (size_t)(pos0 + n_tok));
    sl_attn_t a = {.n_tok = n_tok, .n_head = H, .n_head_kv = K, .head_dim = D, .pos0 = pos0, .q = q,
                   .k = kt == SL_TYPE_F16 ? (const void *)kh : (const void *)kf,
                   .v = kt == SL_TYPE_F16 ? (const void *)vh : (const void *)vf, .kv_type = kt,
                   .kv_head_stride = hs, .scale = 1.0f / sqrtf((float)D), .out = out, .scratch = scratch};
    sl_isa_t prev = sl_kernels_set_isa(isa);
    sl_attention(pool, &a);
    sl_kernels_set_isa(prev);
    ref_attention(&a, kf, vf, want);
    double md = 0;
    for (size_t i = 0; i < nq; i++) md = fmax(md, fabs(out[i] - want[i]));
    CHECK_MSG(md < 1e-5, "attention n_tok %d pos0 %d H %d K %d D %d %s t%d isa %s: %.3g", n_tok, pos0, H, K, D,
              sl_type_name(kt), threads, sl_isa_name(isa), md);
    sl_pool_free(pool);
    free(kf), free(vf), free(kh), free(vh), free(q), free(out), free(want), free(scratch);
}

static void test_attention(void) {
    sl_isa_t isas[] = {SL_ISA_SCALAR, sl_kernels_isa()};
    for (size_t i = 0; i < SL_ARRAY_LEN(isas); i++) {
        sl_type_t types[] = {SL_TYPE_F32, SL_TYPE_F16};
        for (size_t t = 0; t < 2; t++) {
            attn_case(1, 0, 4, 2, 16, types[t], 1, isas[i]);      /* first token */
            attn_case(1, 37, 14, 2, 64, types[t], 2, isas[i]);    /* decode, GQA 7 */
            attn_case(9, 0, 4, 4, 12, types[t], 3, isas[i]);      /* prefill, MHA, odd D */
            attn_case(5, 11, 8, 2, 64, types[t], 2, isas[i]);     /* chunk after a prefix */
        }
    }
}

/* Paged attention: several sequences, each with its own block table into a
 * shared pool of blocks (shuffled), a batch mixing prefill runs and single
 * decode tokens, F32/F16/Q8_0 storage; against a double reference that
 * reads the same (dequantized) cache rows through the block tables. */
static void paged_case_wc(int bsz, int H, int K, int D, sl_type_t kt, int threads, sl_isa_t isa, int past1,
                          int window, float cap) {
    enum { NSEQ = 3 };
    const int past[NSEQ] = {0, past1, 5}, ntok[NSEQ] = {23, 1, 9};
    const size_t rb = sl_row_size(kt, D);
    const int n_blocks = 8 + (23 + past1 + 1 + 14) / bsz + 3;
    const size_t layer = (size_t)K * bsz * rb, blk = layer; /* one layer */
    uint8_t *kc = calloc((size_t)n_blocks, blk), *vc = calloc((size_t)n_blocks, blk);
    int32_t tables[NSEQ][64];
    int perm[128];
    for (int i = 0; i < n_blocks; i++) perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = (int)((rnd() * 0.5 + 0.5) * (i + 1)) % (i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int used = 0;
    for (int q = 0; q < NSEQ; q++) {
        const int nb = (past[q] + ntok[q] + bsz - 1) / bsz;
        for (int b = 0; b < nb; b++) tables[q][b] = perm[used++];
    }
    /* fill every slot of every used block with random rows */
    float row[256];
    for (int b = 0; b < n_blocks; b++)
        for (size_t r = 0; r < (size_t)K * bsz; r++) {
            for (int i = 0; i < D; i++) row[i] = rnd() * 2;
            sl_quantize_row(kt, row, kc + (size_t)b * blk + r * rb, D);
            for (int i = 0; i < D; i++) row[i] = rnd();
            sl_quantize_row(kt, row, vc + (size_t)b * blk + r * rb, D);
        }
    int n_tok = 0;
    for (int q = 0; q < NSEQ; q++) n_tok += ntok[q];
    int32_t pos[64];
    const int32_t *tb[64];
    for (int q = 0, t = 0; q < NSEQ; q++)
        for (int k = 0; k < ntok[q]; k++, t++) pos[t] = past[q] + k, tb[t] = tables[q];
    const size_t nq = (size_t)n_tok * H * D;
    float *qv = malloc(nq * 4), *out = malloc(nq * 4);
    for (size_t i = 0; i < nq; i++) qv[i] = rnd();
    sl_pool_t *pool = threads > 1 ? sl_pool_new(threads) : NULL;
    float *scratch = malloc(sizeof(float) * (size_t)sl_pool_size(pool) * sl_attention_paged_scratch(H, K, D));
    sl_attn_paged_t a = {.n_tok = n_tok, .n_head = H, .n_head_kv = K, .head_dim = D, .q = qv, .out = out,
                         .tok_pos = pos, .tok_blocks = tb, .k = kc, .v = vc, .block_stride = blk,
                         .block_size = bsz, .row_bytes = rb, .kv_type = kt, .scale = 1.0f / sqrtf((float)D),
                         .scratch = scratch, .max_keys = 64, .window = window, .softcap = cap};
    sl_isa_t prev = sl_kernels_set_isa(isa);
    sl_attention_paged(pool, &a);
    sl_kernels_set_isa(prev);
    double md = 0;
    float kf[256], vf[256];
    double p[256];
    const int grp = H / K;
    for (int t = 0; t < n_tok; t++)
        for (int h = 0; h < H; h++) {
            const float *qr = qv + ((size_t)t * H + h) * D;
            const int n = pos[t] + 1, j_lo = window > 0 && n > window ? n - window : 0;
            double mx = -1e300, sum = 0;
            for (int j = 0; j < n; j++) p[j] = 0;
            for (int j = j_lo; j < n; j++) {
                const size_t off = (size_t)tb[t][j / bsz] * blk + ((size_t)(h / grp) * bsz + j % bsz) * rb;
                sl_dequantize_row(kt, kc + off, kf, D);
                double d = 0;
                for (int i = 0; i < D; i++) d += (double)qr[i] * kf[i];
                p[j] = d * a.scale;
                if (cap > 0) p[j] = cap * tanh(p[j] / cap);
                mx = fmax(mx, p[j]);
            }
            for (int j = j_lo; j < n; j++) sum += (p[j] = exp(p[j] - mx));
            double o[256] = {0};
            for (int j = j_lo; j < n; j++) {
                const size_t off = (size_t)tb[t][j / bsz] * blk + ((size_t)(h / grp) * bsz + j % bsz) * rb;
                sl_dequantize_row(kt, vc + off, vf, D);
                for (int i = 0; i < D; i++) o[i] += p[j] / sum * vf[i];
            }
            for (int i = 0; i < D; i++) md = fmax(md, fabs(out[((size_t)t * H + h) * D + i] - o[i]));
        }
    CHECK_MSG(md < 2e-5, "paged attention bs %d H %d K %d D %d %s t%d isa %s past %d window %d cap %g: %.3g", bsz, H,
              K, D, sl_type_name(kt), threads, sl_isa_name(isa), past1, window, cap, md);
    sl_pool_free(pool);
    free(kc), free(vc), free(qv), free(out), free(scratch);
}

static void paged_case_w(int bsz, int H, int K, int D, sl_type_t kt, int threads, sl_isa_t isa, int past1,
                         int window) {
    paged_case_wc(bsz, H, K, D, kt, threads, isa, past1, window, 0.0f);
}

static void paged_case(int bsz, int H, int K, int D, sl_type_t kt, int threads, sl_isa_t isa, int past1) {
    paged_case_w(bsz, H, K, D, kt, threads, isa, past1, 0);
}

static void test_attention_paged(void) {
    sl_isa_t isas[] = {SL_ISA_SCALAR, sl_kernels_isa()};
    for (size_t i = 0; i < SL_ARRAY_LEN(isas); i++) {
        sl_type_t types[] = {SL_TYPE_F32, SL_TYPE_F16, SL_TYPE_Q8_0};
        for (size_t t = 0; t < 3; t++) {
            paged_case(16, 14, 2, 64, types[t], 2, isas[i], 37); /* engine blocks, GQA 7 */
            paged_case(5, 8, 2, 32, types[t], 3, isas[i], 37);   /* blocks shorter than a key chunk */
            paged_case(64, 4, 4, 96, types[t], 1, isas[i], 37);  /* long blocks, MHA */
            if (types[t] != SL_TYPE_Q8_0) paged_case(7, 6, 3, 12, types[t], 2, isas[i], 37); /* D % 8 != 0 */
            /* several key chunks (online softmax across them), key counts
             * not a multiple of 4; rows of a token 3 + 2 (GQA 5) and 3 (GQA
             * 3, D 128) at a time */
            paged_case(16, 10, 2, 64, types[t], 2, isas[i], 201);
            paged_case(16, 6, 2, 128, types[t], 1, isas[i], 150);
            paged_case(16, 14, 2, 64, types[t], 2, isas[i], 200);
            /* sliding windows: shorter than a chunk (the first visible key
             * inside a chunk, differing per token of a prefill run), longer
             * than one, and as long as the longest sequence (no effect) */
            paged_case_w(16, 8, 2, 64, types[t], 2, isas[i], 201, 5);
            paged_case_w(5, 6, 2, 32, types[t], 1, isas[i], 150, 70);
            paged_case_w(16, 6, 3, 64, types[t], 3, isas[i], 37, 12);
            paged_case_w(16, 4, 2, 32, types[t], 2, isas[i], 37, 64);
            /* soft-capped scores (a cap of 2 bends these scores hard; the
             * 1-, 2- and 3-row paths, a window on top) */
            paged_case_wc(16, 14, 2, 64, types[t], 2, isas[i], 201, 0, 2.0f);
            paged_case_wc(16, 3, 3, 32, types[t], 1, isas[i], 150, 9, 2.0f);
            if (types[t] != SL_TYPE_Q8_0) paged_case_wc(7, 6, 3, 12, types[t], 2, isas[i], 37, 0, 1.5f);
        }
    }
}

int main(void) {
    sl_kernels_init();
    RUN(test_rmsnorm);
    RUN(test_softmax);
    RUN(test_activations);
    RUN(test_swiglu_range);
    RUN(test_argmax);
    RUN(test_rope);
    RUN(test_attention);
    RUN(test_attention_paged);
    return test_summary();
}
