/* deps: base kernels */
/*
 * test_ops.c — the small kernels of kernels/ops.c against plain formulas in
 * double precision: rmsnorm, layernorm, softmax, silu/gelu (tanh and
 * erf)/swiglu, RoPE (NORM and NEOX styles; no scaling, linear, YaRN, llama3
 * frequency divisors, partial rotation), causal GQA attention (F32 and F16
 * cache, one and several threads, scalar and SIMD) and paged attention,
 * causal and non-causal (encoders).
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

/* LayerNorm against the formula in double: rows of 1 (out = b), 7 and
 * BERT widths, with and without weight and bias, out of place and in
 * place, rows centred on 0 and rows whose mean dwarfs their spread (a
 * one-pass E[x²] - mean² in float would lose the variance there). */
static void test_layernorm(void) {
    enum { MAXN = 1024 };
    static float x[MAXN], w[MAXN], b[MAXN], out[MAXN], y[MAXN];
    static double want[MAXN];
    const int ns[] = {1, 7, 384, 1024};
    const float offs[] = {0.0f, 1000.0f}, spreads[] = {3.0f, 0.01f}, epss[] = {1e-12f, 1e-5f};
    for (size_t ni = 0; ni < SL_ARRAY_LEN(ns); ni++)
        for (int wb = 0; wb < 4; wb++) /* bit 0: weight, bit 1: bias */
            for (size_t oi = 0; oi < SL_ARRAY_LEN(offs); oi++) {
                const int n = ns[ni];
                const float eps = epss[(ni + (size_t)wb) % 2];
                for (int i = 0; i < n; i++)
                    x[i] = offs[oi] + rnd() * spreads[oi], w[i] = 1 + rnd() * 0.5f, b[i] = rnd();
                const float *wp = wb & 1 ? w : NULL, *bp = wb & 2 ? b : NULL;
                double mean = 0, v = 0;
                for (int i = 0; i < n; i++) mean += x[i];
                mean /= n;
                for (int i = 0; i < n; i++) v += (x[i] - mean) * (x[i] - mean);
                v /= n;
                for (int i = 0; i < n; i++)
                    want[i] = (x[i] - mean) / sqrt(v + (double)eps) * (wp ? wp[i] : 1) + (bp ? bp[i] : 0);
                sl_layernorm(out, x, wp, bp, n, eps);
                memcpy(y, x, sizeof(float) * (size_t)n);
                sl_layernorm(y, y, wp, bp, n, eps);
                double worst = 0, worst_in = 0;
                for (int i = 0; i < n; i++) {
                    const double sc = fmax(1.0, fabs(want[i]));
                    worst = fmax(worst, fabs(out[i] - want[i]) / sc);
                    worst_in = fmax(worst_in, fabs(y[i] - want[i]) / sc);
                }
                CHECK_MSG(worst <= 1e-5, "layernorm n %d w %d b %d offset %g: %.3g", n, wb & 1, wb >> 1,
                          offs[oi], worst);
                CHECK_MSG(worst_in <= 1e-5, "layernorm in place n %d w %d b %d offset %g: %.3g", n, wb & 1,
                          wb >> 1, offs[oi], worst_in);
            }
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
    /* gpt-oss's clamped SwiGLU: gate and up past the limit of 7 on both
     * sides (gate clamped from above only) */
    float go[N], gu[N];
    for (int i = 0; i < N; i++)
        go[i] = (float)rnd() * 12, gu[i] = (float)rnd() * 12;
    sl_swiglu_oai(o, go, gu, N, 1.702f, 7.0f);
    int clamped = 0;
    for (int i = 0; i < N; i++) {
        const double gg = fmin(go[i], 7.0), uu = fmax(fmin(gu[i], 7.0), -7.0);
        clamped += go[i] > 7 || fabs(gu[i]) > 7;
        CHECK_NEAR(o[i], gg / (1 + exp(-1.702 * gg)) * (uu + 1), 1e-5 * (1 + fabs(o[i])));
    }
    CHECK(clamped > 0);
}

/* Exact GELU against 0.5·x·(1 + erf(x/√2)) in double, written as
 * 0.5·x·erfc(-x/√2) so the reference itself keeps its digits for negative
 * x: a dense sweep of [-20, 20], signed zeros, tiny and huge values and
 * the infinities. Error at most 1e-6 absolute below 1 and relative above;
 * and within 2e-5 relative on [-5, 0), where 1 + erf in float would lose
 * most digits to cancellation (float's own rounding of x/√2, amplified by
 * the slope x² of log gelu, is ~1.5e-6 there). */
static void test_gelu_erf(void) {
    enum { NS = 4001, NX = 24 };
    static float x[NS + NX], g[NS + NX];
    const float extra[NX] = {0.0f,  -0.0f,  1e-30f, -1e-30f, 1e-8f, -1e-8f, 1e-40f, -1e-40f,
                             0.5f,  -0.5f,  3.0f,   -3.0f,   5.0f,  -5.0f,  10.0f,  -10.0f,
                             30.0f, -30.0f, 1e4f,   -1e4f,   3e38f, -3e38f, 1.25f,  -1.25f};
    for (int i = 0; i < NS; i++) x[i] = -20.0f + 40.0f * (float)i / (NS - 1);
    for (int i = 0; i < NX; i++) x[NS + i] = extra[i];
    memcpy(g, x, sizeof g);
    sl_gelu_erf(g, NS + NX);
    double worst = 0, worst_neg = 0;
    int bad_sign = 0;
    for (int i = 0; i < NS + NX; i++) {
        const double v = x[i], want = 0.5 * v * erfc(-v / sqrt(2.0));
        const double err = fabs(g[i] - want);
        worst = fmax(worst, err / fmax(1.0, fabs(want)));
        if (v >= -5 && v < 0) worst_neg = fmax(worst_neg, err / fabs(want));
        bad_sign += g[i] != 0 && (g[i] < 0) != (v < 0); /* gelu keeps the sign */
    }
    CHECK_MSG(worst <= 1e-6, "gelu_erf: worst error %.3g", worst);
    CHECK_MSG(worst_neg <= 2e-5, "gelu_erf on [-5, 0): worst relative error %.3g", worst_neg);
    CHECK_MSG(bad_sign == 0, "gelu_erf: %d results of the wrong sign", bad_sign);
    CHECK(signbit(g[NS]) == 0 && g[NS] == 0.0f);         /* +0 */
    CHECK(signbit(g[NS + 1]) != 0 && g[NS + 1] == 0.0f); /* -0 */
    float sp[3] = {INFINITY, -INFINITY, NAN};
    sl_gelu_erf(sp, 3);
    CHECK(isinf(sp[0]) && sp[0] > 0);
    CHECK(sp[1] == 0.0f); /* the limit, not -inf · 0 */
    CHECK(isnan(sp[2]));
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

/* Which keys the tokens of a paged case see. */
typedef enum paged_keys {
    PAGED_CAUSAL = 0, /* tok_keys NULL: keys 0 .. pos */
    PAGED_ALL,        /* tok_keys = the sequence's length: every key of it (encoders) */
    PAGED_POS1,       /* tok_keys = pos + 1: causal again, one value per token */
} paged_keys_t;

/* Paged attention: several sequences, each with its own block table into a
 * shared pool of blocks (shuffled), sequence q holding past[q] cached
 * positions and ntok[q] tokens of the batch (a batch mixing prefill runs and
 * single decode tokens), F32/F16/Q8_0 storage; against a double reference
 * that reads the same (dequantized) cache rows through the block tables. */
static void paged_case_seqs(int bsz, int H, int K, int D, sl_type_t kt, int threads, sl_isa_t isa,
                            int nseq, const int *past, const int *ntok, int window, float cap,
                            paged_keys_t keys, bool sinks) {
    enum { MAXSEQ = 8, MAXTOK = 256 };
    const size_t rb = sl_row_size(kt, D);
    int n_pos = 0, n_tok = 0, need = 0, most = 0; /* positions, tokens, blocks used, most per sequence */
    for (int q = 0; q < nseq && q < MAXSEQ; q++) {
        const int nb = (past[q] + ntok[q] + bsz - 1) / bsz;
        n_pos += past[q] + ntok[q], n_tok += ntok[q], need += nb, most = nb > most ? nb : most;
    }
    const int n_blocks = 8 + n_pos / bsz + 3; /* and unused ones */
    if (nseq > MAXSEQ || n_tok > MAXTOK || need > n_blocks || n_blocks > 128 || most > 64) {
        CHECK_MSG(0, "paged case of %d sequences, %d tokens, %d blocks of %d does not fit", nseq, n_tok, need, bsz);
        return;
    }
    const size_t layer = (size_t)K * bsz * rb, blk = layer; /* one layer */
    uint8_t *kc = calloc((size_t)n_blocks, blk), *vc = calloc((size_t)n_blocks, blk);
    int32_t tables[MAXSEQ][64];
    int perm[128];
    for (int i = 0; i < n_blocks; i++) perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = (int)((rnd() * 0.5 + 0.5) * (i + 1)) % (i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int used = 0;
    for (int q = 0; q < nseq; q++) {
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
    int32_t pos[MAXTOK], nkey[MAXTOK], max_keys = 1;
    const int32_t *tb[MAXTOK];
    for (int q = 0, t = 0; q < nseq; q++)
        for (int k = 0; k < ntok[q]; k++, t++) {
            pos[t] = past[q] + k, tb[t] = tables[q];
            nkey[t] = keys == PAGED_ALL ? past[q] + ntok[q] : pos[t] + 1;
            max_keys = nkey[t] > max_keys ? nkey[t] : max_keys;
        }
    const size_t nq = (size_t)n_tok * H * D;
    float *qv = malloc(nq * 4), *out = malloc(nq * 4);
    for (size_t i = 0; i < nq; i++) qv[i] = rnd();
    /* sink logits from -2 to 4: some below every score of a row, some above
     * its largest (the running max moves to the sink at the end) */
    float sink[64];
    for (int h = 0; h < H && h < 64; h++)
        sink[h] = 1.0f + 3.0f * (float)rnd();
    sl_pool_t *pool = threads > 1 ? sl_pool_new(threads) : NULL;
    float *scratch = malloc(sizeof(float) * (size_t)sl_pool_size(pool) * sl_attention_paged_scratch(H, K, D));
    sl_attn_paged_t a = {.n_tok = n_tok,
                         .n_head = H,
                         .n_head_kv = K,
                         .head_dim = D,
                         .q = qv,
                         .out = out,
                         .tok_pos = pos,
                         .tok_blocks = tb,
                         .k = kc,
                         .v = vc,
                         .block_stride = blk,
                         .block_size = bsz,
                         .row_bytes = rb,
                         .kv_type = kt,
                         .scale = 1.0f / sqrtf((float)D),
                         .scratch = scratch,
                         .max_keys = max_keys,
                         .window = window,
                         .softcap = cap,
                         .tok_keys = keys == PAGED_CAUSAL ? NULL : nkey,
                         .sinks = sinks ? sink : NULL};
    sl_isa_t prev = sl_kernels_set_isa(isa);
    sl_attention_paged(pool, &a);
    sl_kernels_set_isa(prev);
    double md = 0;
    /* the reference reads every cache row dequantized once, as floats */
    const size_t n_rows = (size_t)n_blocks * (size_t)K * (size_t)bsz;
    float *kd = malloc(n_rows * (size_t)D * sizeof(float)), *vd = malloc(n_rows * (size_t)D * sizeof(float));
    for (size_t r = 0; r < n_rows; r++) {
        sl_dequantize_row(kt, kc + r * rb, kd + r * (size_t)D, D);
        sl_dequantize_row(kt, vc + r * rb, vd + r * (size_t)D, D);
    }
    double p[256];
    const int grp = H / K;
    for (int t = 0; t < n_tok; t++)
        for (int h = 0; h < H; h++) {
            const float *qr = qv + ((size_t)t * H + h) * D;
            const int n = nkey[t], j_lo = window > 0 && n > window ? n - window : 0;
            double mx = -1e300, sum = 0;
            for (int j = 0; j < n; j++) p[j] = 0;
            for (int j = j_lo; j < n; j++) {
                const float *kf = kd + (((size_t)tb[t][j / bsz] * K + h / grp) * bsz + j % bsz) * D;
                double d = 0;
                for (int i = 0; i < D; i++) d += (double)qr[i] * kf[i];
                p[j] = d * a.scale;
                if (cap > 0) p[j] = cap * tanh(p[j] / cap);
                mx = fmax(mx, p[j]);
            }
            if (sinks) mx = fmax(mx, sink[h]);
            for (int j = j_lo; j < n; j++) sum += (p[j] = exp(p[j] - mx));
            if (sinks) sum += exp((double)sink[h] - mx); /* the denominator only */
            double o[256] = {0};
            for (int j = j_lo; j < n; j++) {
                const float *vf = vd + (((size_t)tb[t][j / bsz] * K + h / grp) * bsz + j % bsz) * D;
                const double pj = p[j] / sum;
                for (int i = 0; i < D; i++) o[i] += pj * vf[i];
            }
            for (int i = 0; i < D; i++) md = fmax(md, fabs(out[((size_t)t * H + h) * D + i] - o[i]));
        }
    CHECK_MSG(md<2e-5,
                  "paged attention bs %d H %d K %d D %d %s t%d isa %s seqs %d past[1] %d window %d "
                  "cap %g keys %d sinks %d: "
                  "%.3g",
                  bsz, H, K, D, sl_type_name(kt), threads, sl_isa_name(isa), nseq, nseq> 1
                  ? past[1]
                  : 0,
              window, cap, (int)keys, (int)sinks, md);
    sl_pool_free(pool);
    free(kc), free(vc), free(kd), free(vd), free(qv), free(out), free(scratch);
}

/* The mixed batch: a 23-token prefill, one decode token after past1
 * positions, 9 tokens after 5. */
static void paged_case_k(int bsz, int H, int K, int D, sl_type_t kt, int threads, sl_isa_t isa, int past1,
                         int window, float cap, paged_keys_t keys) {
    const int past[3] = {0, past1, 5}, ntok[3] = {23, 1, 9};
    paged_case_seqs(bsz, H, K, D, kt, threads, isa, 3, past, ntok, window, cap, keys, false);
}

/* The mixed batch with attention sinks (gpt-oss). */
static void paged_case_sinks(int bsz, int H, int K, int D, sl_type_t kt, int threads, sl_isa_t isa,
                             int past1, int window) {
    const int past[3] = {0, past1, 5}, ntok[3] = {23, 1, 9};
    paged_case_seqs(bsz, H, K, D, kt, threads, isa, 3, past, ntok, window, 0.0f, PAGED_CAUSAL,
                    true);
}

static void paged_case_wc(int bsz, int H, int K, int D, sl_type_t kt, int threads, sl_isa_t isa, int past1,
                          int window, float cap) {
    paged_case_k(bsz, H, K, D, kt, threads, isa, past1, window, cap, PAGED_CAUSAL);
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
            /* attention sinks: the 3-, 2- and 1-row paths (GQA 8 = 3 + 3 +
             * 2, GQA 1), several chunks, a window (gpt-oss's layers) */
            paged_case_sinks(16, 16, 2, 64, types[t], 2, isas[i], 201, 0);
            paged_case_sinks(16, 8, 2, 64, types[t], 2, isas[i], 150, 5);
            paged_case_sinks(5, 4, 4, 32, types[t], 1, isas[i], 37, 12);
            if (types[t] != SL_TYPE_Q8_0)
                paged_case_sinks(7, 6, 3, 12, types[t], 3, isas[i], 37, 0);
        }
    }
}

/* Non-causal (encoder) paged attention: every token sees every key of its
 * own sequence whatever its position. Sequences of 1, 5, 17, 40 and 70
 * tokens in one batch cross the F32 chunk (16 keys) and the F16/Q8_0 chunk
 * (64), with partial chunks, and span several tiles (64 / group tokens:
 * a later tile starts past position 0 yet sees every key of its sequence);
 * GQA groups 1, 2, 3, 4 and 7 (rows 1, 2, 3 at a time);
 * head_dim 32, 64 and 40 (not a multiple of 32: no 2- and 3-row path);
 * blocks of 16 and one block holding a whole sequence. Then the mixed batch
 * (a prefill, a decode token after a long prefix, a run after a short one)
 * seeing whole sequences, and with tok_keys = pos + 1, the causal answer
 * given one key count per token. */
static void test_attention_paged_noncausal(void) {
    const int past[5] = {0, 0, 0, 0, 0}, ntok[5] = {1, 5, 17, 40, 70};
    static const struct {
        int H, K, D;
    } shapes[] = {{4, 4, 64}, {3, 3, 40}, {8, 4, 32}, {6, 2, 40}, {12, 3, 32}, {14, 2, 64}, {7, 1, 40}};
    sl_isa_t isas[] = {SL_ISA_SCALAR, sl_kernels_isa()};
    const sl_type_t types[] = {SL_TYPE_F32, SL_TYPE_F16, SL_TYPE_Q8_0};
    for (size_t i = 0; i < SL_ARRAY_LEN(isas); i++)
        for (size_t t = 0; t < SL_ARRAY_LEN(types); t++) {
            for (size_t s = 0; s < SL_ARRAY_LEN(shapes); s++) {
                if (types[t] == SL_TYPE_Q8_0 && shapes[s].D % 32 != 0) continue;
                /* engine blocks on 2 threads, a block per sequence on 1 */
                paged_case_seqs(16, shapes[s].H, shapes[s].K, shapes[s].D, types[t], 2, isas[i], 5,
                                past, ntok, 0, 0.0f, PAGED_ALL, false);
                paged_case_seqs(70, shapes[s].H, shapes[s].K, shapes[s].D, types[t], 1, isas[i], 5,
                                past, ntok, 0, 0.0f, PAGED_ALL, false);
            }
            paged_case_k(16, 14, 2, 64, types[t], 2, isas[i], 37, 0, 0.0f, PAGED_ALL);
            paged_case_k(5, 8, 2, 32, types[t], 1, isas[i], 201, 0, 0.0f, PAGED_ALL);
            paged_case_k(16, 6, 3, 64, types[t], 2, isas[i], 150, 0, 2.0f, PAGED_ALL); /* soft-capped */
            paged_case_k(16, 14, 2, 64, types[t], 2, isas[i], 37, 0, 0.0f, PAGED_POS1);
            paged_case_k(5, 6, 3, 32, types[t], 1, isas[i], 201, 0, 0.0f, PAGED_POS1);
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
    /* after the others, so that their random inputs stay as they were */
    RUN(test_layernorm);
    RUN(test_gelu_erf);
    RUN(test_attention_paged_noncausal);
    return test_summary();
}
