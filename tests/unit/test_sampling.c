/* deps: sampling kernels base */
/*
 * test_sampling.c — the sampler against hand-computed distributions:
 * empirical frequencies over many seeded draws must match the expected
 * probabilities of each filter, logprobs must equal log-softmax values
 * computed here by hand, and the same seed must give the same draws.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/sampling.h"
#include "test.h"

#define NDRAW 40000

/* Draws NDRAW tokens from fixed logits (re-copied each time) and returns
 * the frequencies in freq[0..V). */
static void draw_freq_n(const smp_params_t *p, const float *logits, int V, double *freq, int ndraw) {
    char err[256];
    smp_t *s = smp_new(p, V, err, sizeof err);
    CHECK_MSG(s != NULL, "%s", err);
    if (!s) return;
    float *l = malloc((size_t)V * sizeof *l);
    for (int i = 0; i < V; i++) freq[i] = 0;
    for (int n = 0; n < ndraw; n++) {
        memcpy(l, logits, (size_t)V * sizeof *l);
        smp_result_t r;
        CHECK(smp_sample(s, l, &r) == 0);
        if (r.id >= 0 && r.id < V) freq[r.id] += 1.0 / ndraw;
    }
    free(l);
    smp_free(s);
}

/* Every draw fell on ids below cut: their frequencies sum to 1 (within tol)
 * and no id from cut on was drawn. */
static void check_drawn_below(const double *f, int n, int cut, double tol) {
    double lo = 0, hi = 0;
    for (int i = 0; i < n; i++) *(i < cut ? &lo : &hi) += f[i];
    CHECK_NEAR(lo, 1.0, tol);
    CHECK(hi == 0);
}

static void draw_freq(const smp_params_t *p, const float *logits, int V, double *freq) {
    draw_freq_n(p, logits, V, freq, NDRAW);
}

static const float P4[4] = {0.1f, 0.2f, 0.3f, 0.4f};

static void logits_of(const float *p, int V, float *l) {
    for (int i = 0; i < V; i++) l[i] = logf(p[i]) + 3.0f; /* shift: softmax ignores it */
}

static void test_greedy_and_ties(void) {
    smp_params_t p;
    smp_params_default(&p);
    p.temperature = 0;
    smp_t *s = smp_new(&p, 5, NULL, 0);
    float l[5] = {1, 7, 3, 7, -2};
    smp_result_t r;
    CHECK(smp_sample(s, l, &r) == 0);
    CHECK(r.id == 1); /* tie between 1 and 3: lowest id */
    smp_free(s);
}

static void test_logprobs_hand(void) {
    smp_params_t p;
    smp_params_default(&p);
    p.temperature = 0;
    p.n_top_logprobs = 3;
    smp_t *s = smp_new(&p, 3, NULL, 0);
    float l[3] = {1, 2, 3};
    smp_result_t r;
    CHECK(smp_sample(s, l, &r) == 0);
    double lse = log(exp(1.0) + exp(2.0) + exp(3.0));
    CHECK(r.id == 2);
    CHECK_NEAR(r.logprob, 3.0 - lse, 1e-5);
    CHECK(r.n_top == 3);
    CHECK(r.top[0].id == 2 && r.top[1].id == 1 && r.top[2].id == 0);
    CHECK_NEAR(r.top[1].logprob, 2.0 - lse, 1e-5);
    CHECK_NEAR(r.top[2].logprob, 1.0 - lse, 1e-5);
    smp_free(s);
}

static void test_plain_distribution(void) {
    smp_params_t p;
    smp_params_default(&p);
    p.seed = 42;
    float l[4];
    double f[4];
    logits_of(P4, 4, l);
    draw_freq(&p, l, 4, f);
    for (int i = 0; i < 4; i++) CHECK_NEAR(f[i], P4[i], 0.015);
}

static void test_temperature(void) {
    smp_params_t p;
    smp_params_default(&p);
    p.seed = 7;
    p.temperature = 0.5f; /* p_i ∝ p_i^2 = .01 .04 .09 .16 over .30 */
    float l[4];
    double f[4];
    logits_of(P4, 4, l);
    draw_freq(&p, l, 4, f);
    const double want[4] = {.01 / .30, .04 / .30, .09 / .30, .16 / .30};
    for (int i = 0; i < 4; i++) CHECK_NEAR(f[i], want[i], 0.015);
}

static void test_top_k(void) {
    smp_params_t p;
    smp_params_default(&p);
    p.seed = 9;
    p.top_k = 2; /* keep .4 and .3 -> 4/7, 3/7 */
    float l[4];
    double f[4];
    logits_of(P4, 4, l);
    draw_freq(&p, l, 4, f);
    CHECK(f[0] == 0 && f[1] == 0);
    CHECK_NEAR(f[3], 4.0 / 7, 0.015);
    CHECK_NEAR(f[2], 3.0 / 7, 0.015);
}

static void test_top_p(void) {
    smp_params_t p;
    smp_params_default(&p);
    p.seed = 11;
    p.top_p = 0.75f; /* sorted .4 .3 (.7 < .75) .2 (.9 >= .75): keep three -> /.9 */
    float l[4];
    double f[4];
    logits_of(P4, 4, l);
    draw_freq(&p, l, 4, f);
    CHECK(f[0] == 0);
    CHECK_NEAR(f[3], .4 / .9, 0.015);
    CHECK_NEAR(f[2], .3 / .9, 0.015);
    CHECK_NEAR(f[1], .2 / .9, 0.015);
}

static void test_min_p(void) {
    smp_params_t p;
    smp_params_default(&p);
    p.seed = 13;
    p.min_p = 0.6f; /* threshold .6 * .4 = .24: keep .4 and .3 */
    float l[4];
    double f[4];
    logits_of(P4, 4, l);
    draw_freq(&p, l, 4, f);
    CHECK(f[0] == 0 && f[1] == 0);
    CHECK_NEAR(f[3], 4.0 / 7, 0.015);
}

static void test_top_p_large_vocab(void) {
    /* 1000 equal logits: top_p .5 keeps exactly ids 0..499 (ties by id),
     * which needs the partial selection to grow past its first window. */
    enum { V = 1000 };
    static float l[V];
    static double f[V];
    for (int i = 0; i < V; i++) l[i] = 0.5f;
    smp_params_t p;
    smp_params_default(&p);
    p.seed = 5;
    p.top_p = 0.5f;
    draw_freq_n(&p, l, V, f, 1000);
    check_drawn_below(f, V, 500, 1e-6);
    /* top_k on a large vocab: only the k best (distinct logits) survive */
    for (int i = 0; i < V; i++) l[i] = (float)((i * 7919) % V) / 100.0f;
    smp_params_default(&p);
    p.top_k = 10;
    draw_freq_n(&p, l, V, f, 1000);
    for (int i = 0; i < V; i++)
        if ((i * 7919) % V < V - 10) CHECK(f[i] == 0);
}


/* top_p over more candidates than the sort-based search takes (the
 * bucketed nucleus): exactly the sorted nucleus survives — distinct
 * logits, and all-equal logits (ties kept by id). */
static void test_top_p_bucketed(void) {
    enum { V = 20000 };
    static float l[V];
    static double f[V];
    static int order[V];
    for (int i = 0; i < V; i++) l[i] = -(float)((i * 7919) % V) / 2000.0f; /* distinct, 0 .. -10 */
    /* the expected nucleus, by sorting (ids with equal logits: lower first) */
    /* l is a bijection of i onto -k/2000 for k = (i*7919) % V: rank k */
    for (int i = 0; i < V; i++) order[(i * 7919) % V] = i;
    double total = 0;
    for (int i = 0; i < V; i++) total += exp((double)l[i]);
    double cum = 0;
    int keep = 0;
    while (keep < V) {
        cum += exp((double)l[order[keep]]);
        keep++;
        if (cum >= 0.7 * total) break;
    }
    static bool in[V];
    for (int k = 0; k < keep; k++) in[order[k]] = true;
    smp_params_t p;
    smp_params_default(&p);
    p.seed = 9;
    p.top_p = 0.7f;
    draw_freq_n(&p, l, V, f, 20000);
    double mass_in = 0;
    int outside = 0;
    for (int i = 0; i < V; i++) {
        if (in[i]) mass_in += f[i];
        else outside += f[i] > 0;
    }
    CHECK_MSG(outside == 0, "%d tokens outside the nucleus of %d drawn", outside, keep);
    CHECK_NEAR(mass_in, 1.0, 1e-9);
    CHECK(f[order[0]] > 0); /* the best is drawn (p ≈ 4.6e-4 · 20000 draws) */
    /* equal logits: ids 0 .. 0.3·V − 1 */
    for (int i = 0; i < V; i++) l[i] = 1.0f;
    p.top_p = 0.3f;
    draw_freq_n(&p, l, V, f, 4000);
    check_drawn_below(f, V, 6000, 1e-9);
}

static void test_penalties(void) {
    smp_params_t p;
    smp_params_default(&p);
    p.temperature = 0;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    p.n_top_logprobs = 4;
    smp_t *s = smp_new(&p, 4, NULL, 0);
    smp_accept(s, 3);
    smp_accept(s, 3);
    smp_accept(s, 1);
    float l[4] = {0, 1, 2, 3};
    smp_result_t r;
    CHECK(smp_sample(s, l, &r) == 0);
    /* processed: 0, 1-.5-.25=.25, 2, 3-1-.25=1.75 */
    CHECK_NEAR(l[3], 1.75, 1e-6);
    CHECK_NEAR(l[1], 0.25, 1e-6);
    CHECK(r.id == 2);
    double lse = log(exp(0.0) + exp(0.25) + exp(2.0) + exp(1.75));
    CHECK_NEAR(r.logprob, 2.0 - lse, 1e-5);
    smp_free(s);

    smp_params_default(&p);
    p.temperature = 0;
    p.repetition_penalty = 2.0f;
    s = smp_new(&p, 4, NULL, 0);
    int32_t prompt[2] = {0, 3};
    smp_accept_prompt(s, prompt, 2);
    smp_accept(s, 3);
    float l2[4] = {-1, 1, 2, 3};
    CHECK(smp_sample(s, l2, &r) == 0);
    CHECK_NEAR(l2[0], -2, 1e-6); /* negative: multiplied */
    CHECK_NEAR(l2[3], 1.5, 1e-6); /* positive: divided, once even though seen twice */
    CHECK_NEAR(l2[1], 1, 1e-6);
    CHECK(r.id == 2);
    smp_free(s);
}

static void test_logit_bias(void) {
    smp_params_t p;
    smp_params_default(&p);
    p.seed = 3;
    smp_bias_t b[2] = {{0, 100.0f}, {3, -100.0f}};
    p.bias = b;
    p.n_bias = 2;
    float l[4];
    double f[4];
    logits_of(P4, 4, l);
    draw_freq(&p, l, 4, f);
    CHECK_NEAR(f[0], 1.0, 1e-9);
    b[0].id = 4; /* out of range */
    char err[128] = "";
    CHECK(smp_new(&p, 4, err, sizeof err) == NULL);
    CHECK(strstr(err, "logit_bias") != NULL);
}

static void test_seed_determinism(void) {
    enum { V = 50, N = 200 };
    float base[V];
    for (int i = 0; i < V; i++) base[i] = sinf((float)i) * 2;
    int32_t a[N], b[N], c[N];
    uint64_t seeds[3] = {1234, 1234, 1235};
    int32_t *outs[3] = {a, b, c};
    for (int k = 0; k < 3; k++) {
        smp_params_t p;
        smp_params_default(&p);
        p.seed = seeds[k];
        p.top_p = 0.9f;
        p.frequency_penalty = 0.3f;
        smp_t *s = smp_new(&p, V, NULL, 0);
        for (int n = 0; n < N; n++) {
            float l[V];
            memcpy(l, base, sizeof l);
            smp_result_t r;
            smp_sample(s, l, &r);
            smp_accept(s, r.id);
            outs[k][n] = r.id;
        }
        smp_free(s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
}

/* no_logprob skips only the normaliser: the same seeded draws (greedy and
 * top-p with penalties), logprob reported as 0, top logprobs still exact. */
static void test_no_logprob_same_draws(void) {
    enum { V = 300, N = 100 };
    float base[V];
    for (int i = 0; i < V; i++) base[i] = sinf((float)i * 0.37f) * 3;
    for (int greedy = 0; greedy < 2; greedy++) {
        int32_t ids[2][N];
        for (int k = 0; k < 2; k++) {
            smp_params_t p;
            smp_params_default(&p);
            p.seed = 77;
            p.top_p = 0.8f;
            p.frequency_penalty = 0.4f;
            if (greedy) p.temperature = 0;
            p.no_logprob = k == 1;
            smp_t *s = smp_new(&p, V, NULL, 0);
            for (int n = 0; n < N; n++) {
                float l[V];
                memcpy(l, base, sizeof l);
                smp_result_t r;
                CHECK(smp_sample(s, l, &r) == 0);
                if (k == 1) CHECK(r.logprob == 0.0f);
                smp_accept(s, r.id);
                ids[k][n] = r.id;
            }
            smp_free(s);
        }
        CHECK_MSG(memcmp(ids[0], ids[1], sizeof ids[0]) == 0, "greedy %d: draws differ", greedy);
    }
    smp_params_t p;
    smp_params_default(&p);
    p.temperature = 0;
    p.no_logprob = true;
    p.n_top_logprobs = 2; /* asked for alternatives: the normaliser runs */
    smp_t *s = smp_new(&p, 3, NULL, 0);
    float l[3] = {1, 2, 3};
    smp_result_t r;
    CHECK(smp_sample(s, l, &r) == 0);
    CHECK_NEAR(r.top[1].logprob, 2.0 - log(exp(1.0) + exp(2.0) + exp(3.0)), 1e-5);
    smp_free(s);
}

static void test_all_masked(void) {
    smp_params_t p;
    smp_params_default(&p);
    smp_t *s = smp_new(&p, 3, NULL, 0);
    float l[3] = {-INFINITY, NAN, -INFINITY};
    smp_result_t r;
    CHECK(smp_sample(s, l, &r) == -1);
    smp_free(s);
    p.top_p = 0;
    CHECK(smp_new(&p, 3, NULL, 0) == NULL);
}

int main(void) {
    RUN(test_greedy_and_ties);
    RUN(test_logprobs_hand);
    RUN(test_plain_distribution);
    RUN(test_temperature);
    RUN(test_top_k);
    RUN(test_top_p);
    RUN(test_min_p);
    RUN(test_top_p_large_vocab);
    RUN(test_top_p_bucketed);
    RUN(test_penalties);
    RUN(test_logit_bias);
    RUN(test_seed_determinism);
    RUN(test_all_masked);
    RUN(test_no_logprob_same_draws);
    return test_summary();
}
