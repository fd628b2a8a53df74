/* deps: engine sampling grammar model kernels gguf base */
/*
 * test_spec.c — speculative decoding in the engine, on the tiny random
 * llama model of tiny_llama.h:
 *   - greedy output with n-gram drafts (repetitive prompts) equals a plain
 *     model_forward + argmax reference, and equals the engine without
 *     speculation; the drafter proposed and had tokens accepted;
 *   - drafts forced through the test hook every step (all right, all
 *     wrong, half right): output still equals the reference, the accept
 *     counts are what the drafts make them, max_tokens and stop ids are
 *     exact, no block is leaked, and blocks the prefix cache kept after
 *     rejections hold the right KV (a prompt continuing the output
 *     reuses them and still matches the reference);
 *   - seeded sampling (temperature, top-p, penalties, bias) with forced
 *     drafts gives the same stream as without speculation;
 *   - the acceptance rule, statistically: the joint distribution of two
 *     sampled tokens, the second verified against a forced draft, against
 *     the exact softmax computed here in double (chi-square);
 *   - cancellation in the middle of speculating sequences frees every block;
 *   - the policy: drafts that never hit are soon not run (a probe now and
 *     then), drafts that always hit are run.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "test.h"
#include "tiny_llama.h"
#include "engine_ref.h"

enum { V = TL_V, CTX = TL_CTX };

static char path[256];
static sl_model_t *model;

/* ---- events ---- */

#define MAXSEQ 16
#define MAXTOK 400

typedef struct seqlog {
    int32_t toks[MAXTOK];
    float lp[MAXTOK];
    int n_tok, n_finish;
    eng_event_t fin;
} seqlog_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static seqlog_t logs[MAXSEQ];
static int n_finished;

static void on_event(const eng_event_t *ev, void *ctx) {
    (void)ctx;
    seqlog_t *l = ev->user;
    pthread_mutex_lock(&mu);
    if (ev->type == ENG_EV_TOKEN) {
        if (l->n_tok < MAXTOK) {
            l->toks[l->n_tok] = ev->tok.id;
            l->lp[l->n_tok] = ev->tok.logprob;
        }
        l->n_tok++;
    } else if (ev->type == ENG_EV_FINISH) {
        l->fin = *ev;
        l->fin.error = NULL;
        l->n_finish++;
        n_finished++;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void reset_logs(void) {
    pthread_mutex_lock(&mu);
    memset(logs, 0, sizeof logs);
    n_finished = 0;
    pthread_mutex_unlock(&mu);
}

static void wait_finished(int n) {
    pthread_mutex_lock(&mu);
    while (n_finished < n) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void check_blocks_released(eng_t *e) {
    eng_stats_t st;
    eng_stats(e, &st);
    CHECK_MSG(st.kv_blocks_used == 0, "%d KV blocks still used", st.kv_blocks_used);
    CHECK(st.kv_blocks_used + st.kv_blocks_cached + st.kv_blocks_free == st.kv_blocks_total);
    CHECK(st.live == 0);
}

/* ---- the forced-draft hook ---- */

enum { MODE_RIGHT, MODE_WRONG, MODE_HALF };
#define NSEQ 3
#define NT 60

static struct {
    int mode;
    const int32_t *prompt[NSEQ];
    int np[NSEQ];
    int32_t ref[NSEQ][MAXTOK];
    int n_ref;
    int calls;
} hk;

/* Drafts from the reference continuation: right, off by one, or right for
 * the first half of the draft only. Runs on the engine thread. */
static int hook_draft(void *ctx, const int32_t *toks, int n_toks, int n_prompt, int32_t *out, int max) {
    (void)ctx;
    int s = -1;
    for (int i = 0; i < NSEQ && s < 0; i++)
        if (hk.prompt[i] && hk.np[i] == n_prompt && !memcmp(hk.prompt[i], toks, (size_t)n_prompt * sizeof *toks))
            s = i;
    if (s < 0) return 0;
    hk.calls++;
    const int g = n_toks - n_prompt; /* tokens generated: the draft predicts ref[g ..] */
    int n = 0;
    for (int j = 0; j < max && g + j < hk.n_ref; j++) {
        const int32_t right = hk.ref[s][g + j];
        const bool ok = hk.mode == MODE_RIGHT || (hk.mode == MODE_HALF && j < (max + 1) / 2);
        out[n++] = ok ? right : (right + 1) % V;
    }
    return n;
}

/* A repetitive prompt: a short pattern repeated, then a tail. */
static void rep_prompt(int32_t *p, int n, int seed) {
    for (int i = 0; i < n; i++) p[i] = (int32_t)((seed * 7 + (i % (5 + seed)) * 11) % V);
}

static void test_greedy_ngram_matches_reference(void) {
    char err[SL_ERR_MAX];
    static int32_t prompts[4][120];
    const int lens[4] = {120, 37, 64, 9};
    for (int s = 0; s < 4; s++) rep_prompt(prompts[s], lens[s], s);
    int32_t ref[4][NT];
    for (int s = 0; s < 4; s++) reference(model, prompts[s], lens[s], NT, ref[s]);
    for (int spec = 0; spec < 2; spec++) {
        eng_opts_t o = {.n_ctx = CTX, .max_running = 3, .kv = ENG_KV_F32,
                        .spec = spec ? ENG_SPEC_NGRAM : ENG_SPEC_OFF, .spec_max = 5};
        eng_t *e = eng_new(model, &o, on_event, NULL, err, sizeof err);
        CHECK_MSG(e != NULL, "%s", err);
        if (!e) return;
        reset_logs();
        for (int s = 0; s < 4; s++) {
            eng_request_t r = greedy_req(prompts[s], (size_t)lens[s], NT, &logs[s]);
            uint64_t id;
            CHECK_MSG(eng_submit(e, &r, &id, err, sizeof err) == 0, "%s", err);
        }
        wait_finished(4);
        for (int s = 0; s < 4; s++) {
            CHECK(logs[s].n_tok == NT && logs[s].n_finish == 1 && logs[s].fin.finish == ENG_FINISH_LENGTH);
            CHECK_MSG(memcmp(logs[s].toks, ref[s], sizeof ref[s]) == 0, "spec %d: sequence %d differs", spec, s);
            CHECK(logs[s].fin.usage.completion_tokens == NT);
        }
        eng_stats_t st;
        eng_stats(e, &st);
        CHECK(st.tokens_generated == 4 * NT);
        if (spec) {
            CHECK_MSG(st.spec_drafted > 0 && st.spec_accepted > 0, "drafted %llu accepted %llu",
                      (unsigned long long)st.spec_drafted, (unsigned long long)st.spec_accepted);
            CHECK(st.spec_accepted <= st.spec_drafted);
            /* accepted tokens are passes saved: fewer steps than tokens */
            fprintf(stderr, "    ngram: drafted %llu accepted %llu in %llu verifications, %llu steps\n",
                    (unsigned long long)st.spec_drafted, (unsigned long long)st.spec_accepted,
                    (unsigned long long)st.spec_steps, (unsigned long long)st.steps);
        } else {
            CHECK(st.spec_drafted == 0 && st.spec_steps == 0);
        }
        check_blocks_released(e);
        eng_free(e);
    }
}

/* Forced drafts in each mode: output, accept counts, blocks, prefix cache. */
static void test_forced_drafts(void) {
    char err[SL_ERR_MAX];
    static int32_t prompts[NSEQ][100];
    const int lens[NSEQ] = {21, 50, 100};
    for (int s = 0; s < NSEQ; s++)
        for (int i = 0; i < lens[s]; i++) prompts[s][i] = (int32_t)((s * 13 + i * 5 + i * i) % V);
    memset(&hk, 0, sizeof hk);
    hk.n_ref = NT + 20;
    for (int s = 0; s < NSEQ; s++) {
        hk.prompt[s] = prompts[s];
        hk.np[s] = lens[s];
        reference(model, prompts[s], lens[s], hk.n_ref, hk.ref[s]);
    }
    for (int mode = MODE_RIGHT; mode <= MODE_HALF; mode++) {
        hk.mode = mode;
        hk.calls = 0;
        eng_opts_t o = {.n_ctx = CTX, .max_running = 4, .kv = ENG_KV_F32, .spec = ENG_SPEC_NGRAM,
                        .spec_max = 4, .spec_draft = hook_draft};
        eng_t *e = eng_new(model, &o, on_event, NULL, err, sizeof err);
        CHECK_MSG(e != NULL, "%s", err);
        if (!e) return;
        reset_logs();
        /* sequence 0 twice (n>1: the second forks from the first's prefill),
         * then sequence 1 with a stop id at its 30th token, sequence 2 */
        int32_t stop = hk.ref[1][29];
        int first_stop = 0;
        while (hk.ref[1][first_stop] != stop) first_stop++;
        for (int q = 0; q < 4; q++) {
            const int s = q == 0 ? 0 : q - 1;
            eng_request_t r = greedy_req(prompts[s], (size_t)lens[s], NT, &logs[q]);
            if (s == 1) {
                r.stop_ids = &stop;
                r.n_stop_ids = 1;
            }
            uint64_t id;
            CHECK_MSG(eng_submit(e, &r, &id, err, sizeof err) == 0, "%s", err);
        }
        wait_finished(4);
        for (int q = 0; q < 4; q++) {
            const int s = q == 0 ? 0 : q - 1;
            const int want = s == 1 ? first_stop : NT;
            CHECK_MSG(logs[q].n_tok == want, "mode %d seq %d: %d tokens, want %d", mode, q, logs[q].n_tok, want);
            CHECK_MSG(memcmp(logs[q].toks, hk.ref[s], (size_t)want * sizeof(int32_t)) == 0,
                      "mode %d: sequence %d differs from the reference", mode, q);
            CHECK(logs[q].fin.finish == (s == 1 ? ENG_FINISH_STOP : ENG_FINISH_LENGTH));
            CHECK(logs[q].fin.usage.completion_tokens == want + (s == 1));
        }
        eng_stats_t st;
        eng_stats(e, &st);
        CHECK(hk.calls > 0 && st.spec_drafted > 0);
        /* all right: only the stop id's verification may end with drafts
         * unused (its stop token was drafted too) */
        if (mode == MODE_RIGHT)
            CHECK_MSG(st.spec_accepted + 4 >= st.spec_drafted, "accepted %llu of %llu",
                      (unsigned long long)st.spec_accepted, (unsigned long long)st.spec_drafted);
        if (mode == MODE_WRONG) CHECK(st.spec_accepted == 0);
        if (mode == MODE_HALF) CHECK(st.spec_accepted > 0 && st.spec_accepted < st.spec_drafted);
        /* all right: each verification emits the draft + 1 */
        if (mode == MODE_RIGHT) CHECK(st.steps < (uint64_t)(3 * NT) / 2);
        check_blocks_released(e);
        /* the cached blocks hold the verified tokens' KV: a prompt that
         * continues sequence 2's output reuses them and goes on like the
         * reference (no speculation for this one) */
        static int32_t cont[100 + NT];
        memcpy(cont, prompts[2], (size_t)lens[2] * sizeof *cont);
        memcpy(cont + lens[2], hk.ref[2], NT * sizeof *cont);
        reset_logs();
        eng_request_t r = greedy_req(cont, (size_t)(lens[2] + NT), 20, &logs[0]);
        r.no_spec = true;
        uint64_t id;
        CHECK(eng_submit(e, &r, &id, err, sizeof err) == 0);
        wait_finished(1);
        CHECK_MSG(logs[0].fin.usage.cached_tokens >= (lens[2] + NT - 1) / 16 * 16 - 16,
                  "cached %d", logs[0].fin.usage.cached_tokens);
        CHECK(logs[0].n_tok == 20 && memcmp(logs[0].toks, hk.ref[2] + NT, 20 * sizeof(int32_t)) == 0);
        check_blocks_released(e);
        eng_free(e);
    }
}

/* Seeded sampling: the same stream with forced drafts as without. */
static void test_seeded_sampling_unchanged(void) {
    char err[SL_ERR_MAX];
    static int32_t prompt[40];
    for (int i = 0; i < 40; i++) prompt[i] = (int32_t)((i * 9 + 4) % V);
    const smp_bias_t bias[2] = {{3, 2.0f}, {17, -1.5f}};
    int32_t out[2][4][NT];
    memset(&hk, 0, sizeof hk);
    for (int spec = 0; spec < 2; spec++) {
        /* the hook drafts the first stream's tokens (half right) */
        eng_opts_t o = {.n_ctx = CTX, .max_running = 4, .kv = ENG_KV_F32,
                        .spec = spec ? ENG_SPEC_NGRAM : ENG_SPEC_OFF, .spec_max = 4,
                        .spec_draft = spec ? hook_draft : NULL};
        eng_t *e = eng_new(model, &o, on_event, NULL, err, sizeof err);
        CHECK_MSG(e != NULL, "%s", err);
        if (!e) return;
        reset_logs();
        for (int q = 0; q < 4; q++) {
            eng_request_t r = greedy_req(prompt, 40, NT, &logs[q]);
            r.sampling.temperature = 0.7f + 0.2f * (float)q;
            r.sampling.top_p = q == 1 ? 0.9f : 1.0f;
            r.sampling.top_k = q == 2 ? 10 : 0;
            r.sampling.min_p = q == 3 ? 0.05f : 0.0f;
            r.sampling.frequency_penalty = q == 2 ? 0.5f : 0.0f;
            r.sampling.presence_penalty = q == 3 ? 0.3f : 0.0f;
            r.sampling.repetition_penalty = q == 1 ? 1.2f : 1.0f;
            r.sampling.bias = bias;
            r.sampling.n_bias = 2;
            r.sampling.seed = 1000 + (uint64_t)q;
            r.sampling.n_top_logprobs = 2;
            uint64_t id;
            CHECK_MSG(eng_submit(e, &r, &id, err, sizeof err) == 0, "%s", err);
        }
        wait_finished(4);
        for (int q = 0; q < 4; q++) {
            CHECK(logs[q].n_tok == NT);
            memcpy(out[spec][q], logs[q].toks, sizeof out[spec][q]);
        }
        if (!spec) { /* the streams become the hook's drafts */
            hk.mode = MODE_HALF;
            hk.prompt[0] = prompt;
            hk.np[0] = 40;
            hk.n_ref = NT;
            memcpy(hk.ref[0], out[0][0], sizeof out[0][0]);
        } else {
            eng_stats_t st;
            eng_stats(e, &st);
            CHECK(st.spec_drafted > 0 && st.spec_accepted > 0);
        }
        check_blocks_released(e);
        eng_free(e);
    }
    for (int q = 0; q < 4; q++)
        CHECK_MSG(memcmp(out[0][q], out[1][q], sizeof out[0][q]) == 0, "seeded stream %d changed", q);
}

/* The acceptance rule: t1 sampled after the prompt, then t2 verified
 * against a forced one-token draft (the most likely t2 for that t1, so
 * both outcomes are frequent). The pairs' frequencies must follow
 * p(t1) p(t2 | t1) of the softmax at temperature T, computed here. */
static const int32_t st_prompt[3] = {5, 9, 2};
static int32_t st_argmax[V];

static int hook_argmax(void *ctx, const int32_t *toks, int n_toks, int n_prompt, int32_t *out, int max) {
    (void)ctx;
    (void)n_prompt;
    if (max < 1 || n_toks != 4) return 0;
    out[0] = st_argmax[toks[3]];
    return 1;
}

static void softmax_t(const float *l, double t, double *p) {
    double mx = -INFINITY, z = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, (double)l[v] / t);
    for (int v = 0; v < V; v++) z += (p[v] = exp((double)l[v] / t - mx));
    for (int v = 0; v < V; v++) p[v] /= z;
}

static void test_acceptance_statistics(void) {
    char err[SL_ERR_MAX];
    const double T = 3.0; /* flat enough that many pairs occur */
    static double p1[V], p2[V][V];
    float lg[V];
    sl_kv_t *kv = model_kv_new(model, CTX, SL_TYPE_F32, err, sizeof err);
    CHECK(model_forward(model, NULL, kv, st_prompt, 3, lg, false, err, sizeof err) == 0);
    softmax_t(lg, T, p1);
    model_kv_free(kv);
    for (int a = 0; a < V; a++) {
        int32_t seq[4] = {st_prompt[0], st_prompt[1], st_prompt[2], a};
        kv = model_kv_new(model, CTX, SL_TYPE_F32, err, sizeof err);
        CHECK(model_forward(model, NULL, kv, seq, 4, lg, false, err, sizeof err) == 0);
        model_kv_free(kv);
        softmax_t(lg, T, p2[a]);
        st_argmax[a] = 0;
        for (int v = 1; v < V; v++)
            if (p2[a][v] > p2[a][st_argmax[a]]) st_argmax[a] = v;
    }
    eng_opts_t o = {.n_ctx = 64, .max_running = 8, .max_queued = 4096, .kv = ENG_KV_F32,
                    .spec = ENG_SPEC_NGRAM, .spec_max = 1, .spec_draft = hook_argmax, .no_prefix_cache = true};
    eng_t *e = eng_new(model, &o, on_event, NULL, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    if (!e) return;
    enum { N = 12000, BATCH = MAXSEQ };
    static int count[V][V];
    memset(count, 0, sizeof count);
    int done = 0;
    while (done < N) {
        reset_logs();
        for (int q = 0; q < BATCH; q++) {
            /* 3 tokens: after t1 a draft of one (a draft leaves room for
             * the token after it) */
            eng_request_t r = greedy_req(st_prompt, 3, 3, &logs[q]);
            r.sampling.temperature = (float)T;
            r.sampling.seed = 77 + (uint64_t)(done + q);
            uint64_t id;
            CHECK(eng_submit(e, &r, &id, err, sizeof err) == 0);
        }
        wait_finished(BATCH);
        for (int q = 0; q < BATCH; q++)
            if (logs[q].n_tok == 3) count[logs[q].toks[0]][logs[q].toks[1]]++;
        done += BATCH;
    }
    eng_stats_t st;
    eng_stats(e, &st);
    /* nearly every second token was drafted (a step crowded by other
     * sequences' prompts past ENG_SPEC_BATCH adds no draft; those draws
     * are plain samples, with the same distribution) */
    CHECK_MSG(st.spec_drafted >= (uint64_t)done * 3 / 4 && st.spec_drafted <= (uint64_t)done, "drafted %llu",
              (unsigned long long)st.spec_drafted);
    /* acceptance rate: E[p(draft)] */
    double want_acc = 0;
    for (int a = 0; a < V; a++) want_acc += p1[a] * p2[a][st_argmax[a]];
    const double got_acc = (double)st.spec_accepted / (double)st.spec_drafted;
    CHECK_MSG(fabs(got_acc - want_acc) < 5 * sqrt(want_acc * (1 - want_acc) / (double)st.spec_drafted) + 1e-3,
              "acceptance %.4f, expected %.4f", got_acc, want_acc);
    /* chi-square over pairs; cells expected below 5 pooled into one */
    double chi = 0, pool_e = 0;
    int pool_o = 0, df = 0;
    for (int a = 0; a < V; a++)
        for (int b = 0; b < V; b++) {
            const double ex = p1[a] * p2[a][b] * done;
            if (ex < 5) {
                pool_e += ex;
                pool_o += count[a][b];
                continue;
            }
            chi += (count[a][b] - ex) * (count[a][b] - ex) / ex;
            df++;
        }
    if (pool_e > 0) {
        chi += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        df++;
    }
    df--;
    /* far beyond the 99.9th percentile of chi-square(df) */
    const double bound = df + 5 * sqrt(2.0 * df) + 10;
    fprintf(stderr, "    acceptance %.4f (expected %.4f), chi-square %.1f, df %d, bound %.1f\n", got_acc, want_acc,
            chi, df, bound);
    CHECK_MSG(df > 10 && chi < bound, "chi-square %.1f with %d degrees of freedom", chi, df);
    check_blocks_released(e);
    eng_free(e);
}

/* Cancelling sequences while they speculate returns every block. */
static void test_cancel_mid_speculation(void) {
    char err[SL_ERR_MAX];
    static int32_t prompts[NSEQ][100];
    memset(&hk, 0, sizeof hk);
    hk.mode = MODE_HALF;
    hk.n_ref = 300;
    for (int s = 0; s < NSEQ; s++) {
        for (int i = 0; i < 30; i++) prompts[s][i] = (int32_t)((s * 3 + i * 7) % V);
        hk.prompt[s] = prompts[s];
        hk.np[s] = 30;
        reference(model, prompts[s], 30, hk.n_ref, hk.ref[s]);
    }
    eng_opts_t o = {.n_ctx = CTX, .max_running = 4, .kv = ENG_KV_F32, .spec = ENG_SPEC_NGRAM, .spec_max = 8,
                    .spec_draft = hook_draft};
    eng_t *e = eng_new(model, &o, on_event, NULL, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    if (!e) return;
    reset_logs();
    uint64_t ids[NSEQ];
    for (int s = 0; s < NSEQ; s++) {
        eng_request_t r = greedy_req(prompts[s], 30, 290, &logs[s]);
        CHECK(eng_submit(e, &r, &ids[s], err, sizeof err) == 0);
    }
    pthread_mutex_lock(&mu);
    while (logs[NSEQ - 1].n_tok < 20) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    for (int s = 0; s < NSEQ; s++) eng_cancel(e, ids[s]);
    wait_finished(NSEQ);
    for (int s = 0; s < NSEQ; s++) {
        CHECK(logs[s].fin.finish == ENG_FINISH_CANCELLED || logs[s].fin.finish == ENG_FINISH_LENGTH);
        const int n = SL_MIN(logs[s].n_tok, MAXTOK);
        CHECK(memcmp(logs[s].toks, hk.ref[s], (size_t)n * sizeof(int32_t)) == 0);
    }
    check_blocks_released(e);
    eng_free(e);
}

/* The policy: drafts that never hit stop being run (a probe now and then),
 * drafts that always hit are run at length; output unchanged either way. */
static void test_policy_backs_off(void) {
    char err[SL_ERR_MAX];
    static int32_t prompt[30];
    for (int i = 0; i < 30; i++) prompt[i] = (int32_t)((i * 11 + 3) % V);
    memset(&hk, 0, sizeof hk);
    hk.prompt[0] = prompt;
    hk.np[0] = 30;
    hk.n_ref = 300;
    reference(model, prompt, 30, hk.n_ref, hk.ref[0]);
    enum { N = 280 };
    for (int mode = MODE_RIGHT; mode <= MODE_WRONG; mode++) {
        hk.mode = mode;
        eng_opts_t o = {.n_ctx = CTX, .max_running = 2, .kv = ENG_KV_F32, .spec = ENG_SPEC_NGRAM, .spec_max = 4,
                        .spec_draft = hook_draft, .spec_draft_policy = true};
        eng_t *e = eng_new(model, &o, on_event, NULL, err, sizeof err);
        CHECK_MSG(e != NULL, "%s", err);
        if (!e) return;
        reset_logs();
        eng_request_t r = greedy_req(prompt, 30, N, &logs[0]);
        uint64_t id;
        CHECK(eng_submit(e, &r, &id, err, sizeof err) == 0);
        wait_finished(1);
        CHECK(logs[0].n_tok == N && memcmp(logs[0].toks, hk.ref[0], N * sizeof(int32_t)) == 0);
        eng_stats_t st;
        eng_stats(e, &st);
        fprintf(stderr, "    %s drafts: drafted %llu, accepted %llu, %llu steps for %d tokens\n",
                mode == MODE_RIGHT ? "right" : "wrong", (unsigned long long)st.spec_drafted,
                (unsigned long long)st.spec_accepted, (unsigned long long)st.steps, N);
        if (mode == MODE_WRONG) /* a few probes, most steps plain */
            CHECK_MSG(st.spec_drafted <= 24 && st.spec_accepted == 0, "drafted %llu",
                      (unsigned long long)st.spec_drafted);
        else /* the cost model's guess or this machine's timing decides K; they paid */
            CHECK_MSG(st.spec_accepted >= N / 2 && st.steps < (uint64_t)N * 2 / 3, "accepted %llu in %llu steps",
                      (unsigned long long)st.spec_accepted, (unsigned long long)st.steps);
        check_blocks_released(e);
        eng_free(e);
    }
}

int main(void) {
    snprintf(path, sizeof path, "/tmp/silica-test-spec-%d.gguf", (int)getpid());
    tiny_llama_write(path, 4242);
    char err[SL_ERR_MAX];
    model = model_load(path, err, sizeof err);
    CHECK_MSG(model != NULL, "%s", err);
    if (model) {
        RUN(test_greedy_ngram_matches_reference);
        RUN(test_forced_drafts);
        RUN(test_seeded_sampling_unchanged);
        RUN(test_acceptance_statistics);
        RUN(test_cancel_mid_speculation);
        RUN(test_policy_backs_off);
        model_free(model);
    }
    unlink(path);
    return test_summary();
}
