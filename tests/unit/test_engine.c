/* deps: engine sampling grammar model kernels gguf base */
/*
 * test_engine.c — the engine against the model API it schedules: a tiny
 * random llama model is written to a temp file; greedy generation through
 * the engine (several sequences at once, chunked prefill) must equal a
 * plain model_forward + argmax loop per sequence; stop ids, max_tokens,
 * cancellation, the queue limit and shutdown must each end a sequence with
 * exactly one FINISH of the right reason, and leave no live sequence.
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

enum { V = TL_V, E = TL_E, H = TL_H, K = TL_K, D = TL_D, F = TL_F, CTX = TL_CTX };

static char path[256];

static void write_model(void) {
    snprintf(path, sizeof path, "/tmp/silica-test-engine-%d.gguf", (int)getpid());
    tiny_llama_write(path, 12345);
}

/* ---- event collection ---- */

#define MAXSEQ 8
#define MAXTOK 600

typedef struct seqlog {
    int32_t toks[MAXTOK];
    float lp[MAXTOK]; /* the TOKEN events' logprobs */
    int n_tok, n_finish;
    eng_event_t fin;
    /* ENG_EV_PROMPT */
    int n_prompt_ev, last_pos, bad_order;
    smp_result_t plp[MAXTOK];
} seqlog_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static seqlog_t logs[MAXSEQ];
static int n_finished;

static void on_event(const eng_event_t *ev, void *ctx) {
    seqlog_t *l = ev->user;
    pthread_mutex_lock(&mu);
    if (ev->type == ENG_EV_TOKEN) {
        if (l->n_tok < MAXTOK) {
            l->toks[l->n_tok] = ev->tok.id;
            l->lp[l->n_tok] = ev->tok.logprob;
        }
        l->n_tok++;
    } else if (ev->type == ENG_EV_PROMPT) {
        if (ev->pos != l->last_pos + 1 || l->n_tok > 0) l->bad_order++;
        l->last_pos = ev->pos;
        if (ev->pos >= 0 && ev->pos < MAXTOK) l->plp[ev->pos] = ev->tok;
        l->n_prompt_ev++;
    } else {
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

static sl_model_t *model;

static void test_matches_reference_concurrently(void) {
    eng_opts_t o = {.n_ctx = CTX, .max_running = 3, .kv = ENG_KV_F32};
    char err[SL_ERR_MAX];
    eng_t *e = eng_new(model, &o, on_event, NULL, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    reset_logs();
    enum { NS = 5, NT = 12 };
    static int32_t prompts[NS][300];
    int lens[NS] = {1, 7, 300, 40, 3}; /* 300 > ENG_PREFILL_CHUNK: prefilled in two chunks */
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < lens[s]; i++) prompts[s][i] = (int32_t)((s * 31 + i * 7) % V);
    for (int s = 0; s < NS; s++) {
        eng_request_t r = greedy_req(prompts[s], (size_t)lens[s], NT, &logs[s]);
        uint64_t id;
        CHECK_MSG(eng_submit(e, &r, &id, err, sizeof err) == 0, "%s", err);
    }
    wait_finished(NS);
    for (int s = 0; s < NS; s++) {
        int32_t ref[NT];
        reference(model, prompts[s], lens[s], NT, ref);
        CHECK(logs[s].n_tok == NT);
        CHECK_MSG(memcmp(logs[s].toks, ref, sizeof ref) == 0, "sequence %d differs from the reference", s);
        CHECK(logs[s].n_finish == 1);
        CHECK(logs[s].fin.finish == ENG_FINISH_LENGTH);
        CHECK(logs[s].fin.usage.prompt_tokens == lens[s]);
        CHECK(logs[s].fin.usage.completion_tokens == NT);
    }
    eng_stats_t st;
    eng_stats(e, &st);
    CHECK(st.live == 0 && st.submitted == NS && st.finished == NS);
    CHECK(st.tokens_generated == NS * NT);
    eng_free(e);
}

static void test_stop_ids_and_errors(void) {
    char err[SL_ERR_MAX];
    eng_t *e = eng_new(model, &(eng_opts_t){.n_ctx = 64, .kv = ENG_KV_F32}, on_event, NULL, err, sizeof err);
    reset_logs();
    int32_t prompt[3] = {5, 9, 2};
    int32_t ref[6];
    reference(model, prompt, 3, 6, ref);
    /* the first position where the greedy token is new: stop on it */
    int k = 1;
    while (k < 6) {
        bool seen = false;
        for (int i = 0; i < k; i++) seen |= ref[i] == ref[k];
        if (!seen) break;
        k++;
    }
    eng_request_t r = greedy_req(prompt, 3, 6, &logs[0]);
    int32_t stop = ref[k < 6 ? k : 0];
    r.stop_ids = &stop;
    r.n_stop_ids = 1;
    uint64_t id;
    CHECK(eng_submit(e, &r, &id, err, sizeof err) == 0);
    wait_finished(1);
    int want = k < 6 ? k : 0;
    CHECK_MSG(logs[0].n_tok == want, "%d tokens before the stop id, want %d", logs[0].n_tok, want);
    CHECK(logs[0].fin.finish == ENG_FINISH_STOP);
    CHECK(logs[0].fin.usage.completion_tokens == want + 1); /* the stop token counts */
    /* invalid requests: nothing queued, no event */
    int32_t big[64] = {0};
    r = greedy_req(big, 64, 1, &logs[1]);
    CHECK(eng_submit(e, &r, &id, err, sizeof err) == -1);
    CHECK(strstr(err, "64 tokens") != NULL);
    int32_t bad = V;
    r = greedy_req(&bad, 1, 1, &logs[1]);
    CHECK(eng_submit(e, &r, &id, err, sizeof err) == -1);
    r = greedy_req(prompt, 3, 1000, &logs[1]); /* max_tokens beyond the context: ends at the context */
    CHECK(eng_submit(e, &r, &id, err, sizeof err) == 0);
    wait_finished(2);
    CHECK(logs[1].fin.finish == ENG_FINISH_LENGTH);
    /* 61 positions after the prompt are fed; the token sampled from the last
     * one needs no position of its own */
    CHECK_MSG(logs[1].n_tok == 64 - 3 + 1, "%d tokens", logs[1].n_tok);
    eng_free(e);
}

static void test_cancel_queue_shutdown(void) {
    char err[SL_ERR_MAX];
    eng_t *e = eng_new(model, &(eng_opts_t){.n_ctx = CTX, .max_running = 1, .max_queued = 2}, on_event,
                       NULL, err, sizeof err);
    reset_logs();
    int32_t prompt[2] = {1, 2};
    uint64_t ids[6];
    int accepted = 0, busy = 0;
    for (int s = 0; s < 6; s++) {
        eng_request_t r = greedy_req(prompt, 2, CTX - 2, &logs[s]);
        int rc = eng_submit(e, &r, &ids[s], err, sizeof err);
        if (rc == 0) accepted++;
        else if (rc == ENG_EBUSY) busy++;
        else ids[s] = 0;
        if (rc != 0) ids[s] = 0;
    }
    CHECK(accepted >= 2 && accepted <= 3);
    CHECK(busy == 6 - accepted);
    /* wait for the running one to produce a token, then cancel everything */
    pthread_mutex_lock(&mu);
    while (logs[0].n_tok < 1) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    eng_cancel(e, ids[0]);
    eng_cancel(e, ids[1]); /* waiting: finishes without running */
    wait_finished(2);
    CHECK(logs[0].fin.finish == ENG_FINISH_CANCELLED);
    CHECK(logs[0].n_tok < CTX - 2); /* stopped before its max_tokens */
    CHECK(logs[1].fin.finish == ENG_FINISH_CANCELLED);
    CHECK(logs[1].n_tok == 0);
    /* usage reports what was computed: the running one prefilled its whole
     * prompt, the waiting one nothing */
    CHECK(logs[0].fin.usage.prompt_tokens == 2);
    CHECK_MSG(logs[1].fin.usage.prompt_tokens == 0, "cancelled before prefill reports %d prompt tokens",
              logs[1].fin.usage.prompt_tokens);
    eng_cancel(e, ids[0]); /* already finished: no-op */
    /* shutdown with work left: the rest still get exactly one FINISH */
    eng_free(e);
    int fin = 0;
    for (int s = 0; s < 6; s++) {
        CHECK(logs[s].n_finish <= 1);
        fin += logs[s].n_finish;
    }
    CHECK(fin == accepted);
}

/* Greedy through the engine: each prompt's tokens into logs[i]. */
static void run_greedy(eng_t *e, int32_t (*prompts)[300], const int *lens, int ns, int nt) {
    char err[SL_ERR_MAX];
    reset_logs();
    for (int s = 0; s < ns; s++) {
        eng_request_t r = greedy_req(prompts[s], (size_t)lens[s], nt, &logs[s]);
        uint64_t id;
        CHECK_MSG(eng_submit(e, &r, &id, err, sizeof err) == 0, "%s", err);
    }
    wait_finished(ns);
}

static void check_blocks_released(eng_t *e) {
    eng_stats_t st;
    eng_stats(e, &st);
    CHECK_MSG(st.kv_blocks_used == 0, "%d KV blocks still used", st.kv_blocks_used);
    CHECK(st.kv_blocks_used + st.kv_blocks_cached + st.kv_blocks_free + st.kv_blocks_ckpt ==
          st.kv_blocks_total);
    CHECK(st.kv_blocks_ckpt >= 0 && st.ckpt_count >= 0 && st.kv_blocks_ckpt >= st.ckpt_count);
    CHECK(st.live == 0);
}

/* A shared 70-token prefix: the second wave reuses its full blocks
 * (cached_tokens = 64 with blocks of 16), generates exactly what the
 * reference (no cache) does, and computes fewer tokens. */
static void test_prefix_cache_reuse(void) {
    char err[SL_ERR_MAX];
    enum { NS = 3, NT = 10 };
    static int32_t prompts[NS][300];
    int lens[NS] = {75, 80, 71};
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < lens[s]; i++) prompts[s][i] = (int32_t)(i < 70 ? (i * 13 + 5) % V : (s * 7 + i) % V);
    int32_t ref[NS][NT];
    for (int s = 0; s < NS; s++) reference(model, prompts[s], lens[s], NT, ref[s]);
    for (int cache = 0; cache < 2; cache++) {
        eng_t *e = eng_new(model, &(eng_opts_t){.n_ctx = CTX, .max_running = 4, .kv = ENG_KV_F32,
                                                .no_prefix_cache = !cache},
                           on_event, NULL, err, sizeof err);
        /* warm: the first prompt alone */
        run_greedy(e, prompts, lens, 1, NT);
        CHECK(logs[0].fin.usage.cached_tokens == 0);
        eng_stats_t st0, st1;
        eng_stats(e, &st0);
        run_greedy(e, prompts, lens, NS, NT);
        eng_stats(e, &st1);
        for (int s = 0; s < NS; s++) {
            CHECK_MSG(memcmp(logs[s].toks, ref[s], sizeof ref[s]) == 0, "cache %d: sequence %d differs", cache, s);
            CHECK(logs[s].fin.usage.prompt_tokens == lens[s]);
            const int want = cache ? 64 : 0;
            CHECK_MSG(logs[s].fin.usage.cached_tokens == want, "cache %d seq %d: cached %d, want %d", cache, s,
                      logs[s].fin.usage.cached_tokens, want);
        }
        /* speculative drafts (on by default) run extra rows: the rejected
         * ones are counted out, an accepted one stands for a decode pass */
        const uint64_t computed = st1.batch_tokens - st0.batch_tokens - (st1.spec_drafted - st0.spec_drafted) +
                                  (st1.spec_accepted - st0.spec_accepted);
        const uint64_t all = 75 + 80 + 71 + NS * (NT - 1);
        CHECK_MSG(computed == (cache ? all - 3 * 64 : all), "cache %d: %llu tokens computed", cache,
                  (unsigned long long)computed);
        CHECK(!cache || st1.prefix_hit_tokens - st0.prefix_hit_tokens == 3 * 64);
        check_blocks_released(e);
        eng_free(e);
    }
}

/* A pool far smaller than the running sequences need: sequences are
 * preempted and recomputed, cached blocks are evicted, and every output
 * still equals the reference. */
static void test_preemption_and_eviction(void) {
    char err[SL_ERR_MAX];
    enum { NS = 6, NT = 40 };
    static int32_t prompts[NS][300];
    int lens[NS];
    for (int s = 0; s < NS; s++) {
        lens[s] = 20 + 9 * s;
        for (int i = 0; i < lens[s]; i++) prompts[s][i] = (int32_t)((s * 17 + i * 5 + 1) % V);
    }
    int32_t ref[NS][NT];
    for (int s = 0; s < NS; s++) reference(model, prompts[s], lens[s], NT, ref[s]);
    const size_t bb = model_kv_block_bytes(model, 8, SL_TYPE_F32);
    /* 128-position context = 16 blocks; 26 blocks for 6 sequences of up to 105 */
    eng_t *e = eng_new(model, &(eng_opts_t){.n_ctx = 128, .max_running = 6, .kv = ENG_KV_F32, .kv_block = 8,
                                            .kv_mem = 26 * bb},
                       on_event, NULL, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    if (!e) return;
    run_greedy(e, prompts, lens, NS, NT);
    for (int s = 0; s < NS; s++) {
        CHECK_MSG(logs[s].n_tok == NT && memcmp(logs[s].toks, ref[s], sizeof ref[s]) == 0,
                  "sequence %d differs from the reference after preemption", s);
        CHECK(logs[s].fin.finish == ENG_FINISH_LENGTH);
        CHECK(logs[s].fin.usage.prompt_tokens == lens[s] && logs[s].fin.usage.completion_tokens == NT);
    }
    eng_stats_t st;
    eng_stats(e, &st);
    CHECK_MSG(st.preemptions > 0, "no preemption happened (%llu)", (unsigned long long)st.preemptions);
    CHECK_MSG(st.evictions > 0, "no eviction happened");
    CHECK(st.kv_blocks_total == 26);
    check_blocks_released(e);
    /* a budget below one context is refused with a message */
    eng_t *e2 = eng_new(model, &(eng_opts_t){.n_ctx = 128, .kv = ENG_KV_F32, .kv_block = 8, .kv_mem = 10 * bb}, on_event, NULL, err,
                        sizeof err);
    CHECK(e2 == NULL && strstr(err, "less than one context") != NULL);
    eng_free(e);
}

/* Cancelling mid-prefill and mid-decode returns every block. */
static void test_cancel_frees_blocks(void) {
    char err[SL_ERR_MAX];
    eng_t *e = eng_new(model, &(eng_opts_t){.n_ctx = CTX, .max_running = 4, .no_prefix_cache = true}, on_event,
                       NULL, err, sizeof err);
    reset_logs();
    static int32_t p[3][300];
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 300; i++) p[s][i] = (int32_t)((i * 3 + s) % V);
    uint64_t ids[3];
    for (int s = 0; s < 3; s++) {
        eng_request_t r = greedy_req(p[s], (size_t)(s == 0 ? 300 : 20), CTX - 300, &logs[s]);
        CHECK(eng_submit(e, &r, &ids[s], err, sizeof err) == 0);
    }
    pthread_mutex_lock(&mu);
    while (logs[1].n_tok < 3) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    eng_stats_t st;
    eng_stats(e, &st);
    CHECK(st.kv_blocks_used > 0);
    for (int s = 0; s < 3; s++) eng_cancel(e, ids[s]);
    wait_finished(3);
    for (int s = 0; s < 3; s++) CHECK(logs[s].fin.finish == ENG_FINISH_CANCELLED);
    check_blocks_released(e);
    eng_stats(e, &st);
    CHECK(st.kv_blocks_free == st.kv_blocks_total); /* no cache: all free */
    eng_free(e);
}

/* n>1: the same prompt submitted several times at once is prefilled once;
 * greedy choices are identical to the reference. */
static void test_shared_prompt_fork(void) {
    char err[SL_ERR_MAX];
    /* a prompt of two prefill chunks: the siblings are submitted while the
     * first is still prefilling even when this thread is descheduled for a
     * whole engine step */
    enum { NS = 4, NT = 12, PL = ENG_PREFILL_CHUNK + 44 };
    static int32_t prompts[NS][300];
    int lens[NS];
    for (int s = 0; s < NS; s++) {
        lens[s] = PL;
        for (int i = 0; i < PL; i++) prompts[s][i] = (int32_t)((i * 11 + 2) % V);
    }
    int32_t ref[NT];
    reference(model, prompts[0], PL, NT, ref);
    eng_t *e = eng_new(model, &(eng_opts_t){.n_ctx = CTX, .max_running = 8, .kv = ENG_KV_F32}, on_event, NULL, err,
                       sizeof err);
    run_greedy(e, prompts, lens, NS, NT);
    for (int s = 0; s < NS; s++) {
        CHECK_MSG(memcmp(logs[s].toks, ref, sizeof ref) == 0, "choice %d differs", s);
        CHECK(logs[s].fin.usage.prompt_tokens == PL);
    }
    eng_stats_t st;
    eng_stats(e, &st);
    /* the prompt once, then NT-1 decode tokens per choice (speculative
     * drafts counted as the passes they stand for) */
    const uint64_t computed = st.batch_tokens - st.spec_drafted + st.spec_accepted;
    CHECK_MSG(computed == PL + NS * (NT - 1), "%llu tokens computed", (unsigned long long)computed);
    check_blocks_released(e);
    eng_free(e);
}

/* Many sequences decode in the same steps: steps ≈ tokens per sequence,
 * not their sum. */
static void test_batched_steps(void) {
    char err[SL_ERR_MAX];
    enum { NS = 8, NT = 20 };
    static int32_t prompts[NS][300];
    int lens[NS];
    for (int s = 0; s < NS; s++) {
        lens[s] = 5 + s;
        for (int i = 0; i < lens[s]; i++) prompts[s][i] = (int32_t)((s * 29 + i * 3) % V);
    }
    eng_t *e = eng_new(model, &(eng_opts_t){.n_ctx = CTX, .max_running = 8, .kv = ENG_KV_F32}, on_event, NULL, err,
                       sizeof err);
    run_greedy(e, prompts, lens, NS, NT);
    for (int s = 0; s < NS; s++) {
        int32_t ref[NT];
        reference(model, prompts[s], lens[s], NT, ref);
        CHECK_MSG(memcmp(logs[s].toks, ref, sizeof ref) == 0, "sequence %d differs", s);
    }
    eng_stats_t st;
    eng_stats(e, &st);
    CHECK_MSG(st.steps < 3 * NT, "%llu steps for %d sequences of %d tokens", (unsigned long long)st.steps, NS, NT);
    CHECK(st.ttft.n == NS && st.itl.n == NS * (NT - 1));
    sl_buf_t b = {0};
    const char *name = "m";
    eng_metrics_write(&b, &e, &name, 1);
    CHECK(b.data && strstr(b.data, "silica_kv_blocks_used{model=\"m\"} 0\n"));
    CHECK(b.data && strstr(b.data, "silica_time_to_first_token_seconds_count{model=\"m\"} 8\n"));
    CHECK(b.data && strstr(b.data, "silica_inter_token_latency_seconds_bucket{model=\"m\",le=\"+Inf\"} 152\n"));
    sl_buf_free(&b);
    eng_free(e);
}

/* Prompt scoring: every position after the first, in order, before any
 * token, equal to a log-softmax of plain model_forward logits, also when
 * the same prompt is in the prefix cache or scored twice at once. */
static void test_prompt_scoring(void) {
    enum { NP = 40, TOP = 3 };
    static int32_t prompt[NP];
    for (int i = 0; i < NP; i++) prompt[i] = (int32_t)((i * 13 + 5) % V);
    /* reference: all logits of the prompt */
    char err[SL_ERR_MAX];
    sl_kv_t *kv = model_kv_new(model, CTX, SL_TYPE_F32, err, sizeof err);
    static float all[NP * V];
    CHECK(model_forward(model, NULL, kv, prompt, NP, all, true, err, sizeof err) == 0);
    model_kv_free(kv);
    eng_t *e = eng_new(model, &(eng_opts_t){.n_ctx = CTX, .max_running = 4, .kv = ENG_KV_F32}, on_event, NULL,
                       err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    reset_logs();
    uint64_t id;
    /* a plain run first puts the prompt's blocks in the prefix cache */
    eng_request_t r0 = greedy_req(prompt, NP, 2, &logs[0]);
    CHECK(eng_submit(e, &r0, &id, err, sizeof err) == 0);
    wait_finished(1);
    CHECK(logs[0].n_prompt_ev == 0);
    for (int k = 1; k <= 2; k++) {
        eng_request_t r = greedy_req(prompt, NP, 3, &logs[k]);
        r.score_prompt = true;
        r.score_top = TOP;
        CHECK(eng_submit(e, &r, &id, err, sizeof err) == 0);
    }
    wait_finished(3);
    int32_t ref[3];
    reference(model, prompt, NP, 3, ref);
    for (int k = 1; k <= 2; k++) {
        seqlog_t *l = &logs[k];
        CHECK_MSG(l->n_prompt_ev == NP - 1, "%d prompt events", l->n_prompt_ev);
        CHECK(l->bad_order == 0 && l->last_pos == NP - 1);
        CHECK(l->n_tok == 3 && memcmp(l->toks, ref, sizeof ref) == 0);
        CHECK(l->fin.usage.cached_tokens == 0); /* scoring computes the whole prompt */
        double max_err = 0;
        for (int q = 1; q < NP; q++) {
            const float *row = all + (size_t)(q - 1) * V;
            double mx = row[0], sum = 0;
            for (int v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
            for (int v = 0; v < V; v++) sum += exp(row[v] - mx);
            const double lse = mx + log(sum);
            const smp_result_t *t = &l->plp[q];
            CHECK(t->id == prompt[q] && t->n_top == TOP);
            max_err = fmax(max_err, fabs(t->logprob - (row[prompt[q]] - lse)));
            for (int j = 0; j < t->n_top; j++) {
                int better = 0; /* ids with a higher logit than the j-th */
                for (int v = 0; v < V; v++) better += row[v] > row[t->top[j].id];
                CHECK_MSG(better == j, "position %d: top %d is rank %d", q, j, better);
                max_err = fmax(max_err, fabs(t->top[j].logprob - (row[t->top[j].id] - lse)));
            }
        }
        CHECK_MSG(max_err < 1e-4, "prompt logprobs differ from the reference by %g", max_err);
    }
    eng_free(e);
}

/* The first index i >= from whose id appears nowhere in ids[0..limit) other
 * than at i itself, or -1. */
static int fresh_index(const int32_t *ids, int from, int limit) {
    for (int i = from; i < limit; i++) {
        bool seen = false;
        for (int k = 0; k < limit; k++) seen |= k != i && ids[k] == ids[i];
        if (!seen) return i;
    }
    return -1;
}

/* Runs one greedy request with a reasoning budget alone and returns its
 * log (logs[0]). */
static void run_think(eng_t *e, const int32_t *prompt, int np, int max_tokens, int budget, bool open,
                      int32_t start_id, int32_t end_id, const int32_t *close, size_t n_close) {
    reset_logs();
    eng_request_t r = greedy_req(prompt, (size_t)np, max_tokens, &logs[0]);
    r.sampling.n_top_logprobs = 2;
    r.think_budget = budget;
    r.think_open = open;
    r.think_start_id = start_id;
    r.think_end_id = end_id;
    r.think_close = close;
    r.n_think_close = n_close;
    uint64_t id;
    char err[SL_ERR_MAX];
    CHECK_MSG(eng_submit(e, &r, &id, err, sizeof err) == 0, "%s", err);
    wait_finished(1);
}

/* thinking_budget: after `budget` tokens inside an open reasoning block the
 * close ids are emitted instead of sampled (with the model's logprob of
 * each), then generation goes on from them; a block the model closes in
 * time forces nothing; a block opened by a sampled start id is counted
 * from there. */
static void test_think_budget(void) {
    char err[SL_ERR_MAX];
    eng_t *e = eng_new(model, &(eng_opts_t){.n_ctx = CTX, .kv = ENG_KV_F32}, on_event, NULL, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    enum { NT = 16 };
    int32_t prompt[4] = {3, 14, 15, 9};
    int32_t ref[NT];
    reference(model, prompt, 4, NT, ref);
    /* close ids: three ids that the greedy output never produces */
    int32_t close[3];
    int nc = 0;
    for (int32_t v = 0; v < V && nc < 3; v++) {
        bool used = false;
        for (int i = 0; i < NT; i++) used |= ref[i] == v;
        if (!used) close[nc++] = v;
    }
    CHECK(nc == 3);
    const int32_t end_id = close[1];

    /* 1. open from the start, budget 4: ref[0..3], the close ids, then the
     * greedy continuation of that text */
    run_think(e, prompt, 4, NT, 4, true, -1, end_id, close, 3);
    int32_t p2[4 + 4 + 3];
    memcpy(p2, prompt, sizeof prompt);
    memcpy(p2 + 4, ref, 4 * sizeof *ref);
    memcpy(p2 + 8, close, sizeof close);
    int32_t cont[NT - 7];
    reference(model, p2, 11, NT - 7, cont);
    CHECK_MSG(logs[0].n_tok == NT, "%d tokens", logs[0].n_tok);
    CHECK(memcmp(logs[0].toks, ref, 4 * sizeof *ref) == 0);
    CHECK_MSG(memcmp(logs[0].toks + 4, close, sizeof close) == 0, "close ids not forced after the budget");
    CHECK_MSG(memcmp(logs[0].toks + 7, cont, sizeof cont) == 0, "generation after the forced close differs");
    CHECK(logs[0].fin.usage.completion_tokens == NT);
    /* the forced ids' logprobs are the model's: log-softmax at that point */
    {
        sl_kv_t *kv = model_kv_new(model, CTX, SL_TYPE_F32, err, sizeof err);
        float logits[V];
        CHECK(model_forward(model, NULL, kv, p2, 8, logits, false, err, sizeof err) == 0);
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, logits[v]);
        for (int v = 0; v < V; v++) sum += exp(logits[v] - mx);
        const double want = logits[close[0]] - mx - log(sum);
        CHECK_MSG(fabs(logs[0].lp[4] - want) < 1e-4, "forced logprob %g, want %g", logs[0].lp[4], want);
        model_kv_free(kv);
    }

    /* 2. the model closes the block itself before the budget: nothing forced */
    const int k = fresh_index(ref, 1, 6);
    CHECK(k > 0);
    if (k > 0) {
        run_think(e, prompt, 4, NT, 10, true, -1, ref[k], close, 3);
        CHECK_MSG(logs[0].n_tok == NT && memcmp(logs[0].toks, ref, sizeof ref) == 0,
                  "a block closed within the budget changed the output");
    }

    /* 3. opened by a sampled start id (ref[s], first occurrence), budget 2:
     * the close follows the 2 tokens after it */
    const int st = fresh_index(ref, 0, 8);
    CHECK(st >= 0 && st + 3 < NT);
    if (st >= 0) {
        run_think(e, prompt, 4, st + 1 + 2 + 3, 2, false, ref[st], end_id, close, 3);
        CHECK(logs[0].n_tok == st + 6);
        CHECK(memcmp(logs[0].toks, ref, (size_t)(st + 3) * sizeof *ref) == 0);
        CHECK_MSG(memcmp(logs[0].toks + st + 3, close, sizeof close) == 0, "close not forced after a sampled start");
    }

    /* 4. seeded sampling: the same tokens alone and beside another sequence
     * (a forced token must not move the random stream when drawn ahead) */
    int32_t alone[NT];
    for (int pass = 0; pass < 2; pass++) {
        reset_logs();
        eng_request_t r = greedy_req(prompt, 4, NT, &logs[0]);
        r.sampling.temperature = 1.5f;
        r.sampling.seed = 77;
        r.think_budget = 3;
        r.think_open = true;
        r.think_start_id = -1;
        r.think_end_id = end_id;
        r.think_close = close;
        r.n_think_close = 3;
        uint64_t id;
        CHECK(eng_submit(e, &r, &id, err, sizeof err) == 0);
        if (pass == 1) {
            eng_request_t o = greedy_req(prompt, 4, NT, &logs[1]);
            o.sampling.temperature = 1.0f;
            o.sampling.seed = 5;
            CHECK(eng_submit(e, &o, &id, err, sizeof err) == 0);
        }
        wait_finished(pass + 1);
        CHECK(logs[0].n_tok == NT);
        if (pass == 0) memcpy(alone, logs[0].toks, sizeof alone);
        else CHECK_MSG(memcmp(alone, logs[0].toks, sizeof alone) == 0, "seeded output changed beside another sequence");
    }
    /* a close id outside the vocabulary is refused */
    eng_request_t r = greedy_req(prompt, 4, 4, &logs[2]);
    int32_t bad = V;
    r.think_budget = 1;
    r.think_close = &bad;
    r.n_think_close = 1;
    uint64_t id;
    CHECK(eng_submit(e, &r, &id, err, sizeof err) == -1);
    eng_free(e);
}

/* ---- hybrid models (qwen35, granitehybrid): recurrent state slots ---- */

static void check_slots_released(eng_t *e) {
    eng_stats_t st;
    eng_stats(e, &st);
    CHECK_MSG(st.state_slots_used == 0, "%d state slots still used", st.state_slots_used);
    check_blocks_released(e);
}

/* Concurrent sequences (a prompt of several prefill chunks among them)
 * equal the plain greedy loop; the same prompts again start from the state
 * checkpoints of their prompts' last full blocks (cached_tokens) and still
 * match; n>1 forks prefill once and copy the state; cancelling frees the
 * slots. */
static void test_hybrid(sl_model_t *hm) {
    char err[SL_ERR_MAX];
    sl_model_t *saved = model;
    model = hm;
    enum { NS = 5, NT = 12 };
    static int32_t prompts[NS][300];
    int lens[NS] = {1, 7, 300, 40, 3};
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < lens[s]; i++) prompts[s][i] = (int32_t)((s * 31 + i * 7) % V);
    int32_t ref[NS][NT];
    for (int s = 0; s < NS; s++) reference(hm, prompts[s], lens[s], NT, ref[s]);
    eng_t *e = eng_new(hm, &(eng_opts_t){.n_ctx = CTX, .max_running = 3, .kv = ENG_KV_F32}, on_event, NULL, err,
                       sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    if (!e) {
        model = saved;
        return;
    }
    eng_stats_t st;
    eng_stats(e, &st);
    CHECK(st.state_slots_total == 3 && st.state_slots_used == 0);
    /* the second time, each prompt's last full block (16 × (len-1)/16) comes
     * from a checkpoint */
    const int hit[NS] = {0, 0, 288, 32, 0};
    for (int round = 0; round < 2; round++) {
        run_greedy(e, prompts, lens, NS, NT);
        for (int s = 0; s < NS; s++) {
            CHECK_MSG(logs[s].n_tok == NT && memcmp(logs[s].toks, ref[s], sizeof ref[s]) == 0,
                      "round %d: sequence %d differs from the reference", round, s);
            CHECK_MSG(logs[s].fin.usage.prompt_tokens == lens[s] &&
                          logs[s].fin.usage.cached_tokens == (round ? hit[s] : 0),
                      "round %d seq %d: cached %d", round, s, logs[s].fin.usage.cached_tokens);
        }
        check_slots_released(e);
    }
    eng_stats(e, &st);
    CHECK_MSG(st.prefix_hit_tokens == 288 + 32, "%llu hit tokens",
              (unsigned long long)st.prefix_hit_tokens);
    CHECK(st.ckpt_hits == 2 && st.ckpt_count > 0);

    /* n>1: one prefill, the siblings take a copy of the state */
    enum { NF = 4, PL = ENG_PREFILL_CHUNK + 44 };
    static int32_t same[NF][300];
    int flens[NF];
    for (int s = 0; s < NF; s++) {
        flens[s] = PL;
        for (int i = 0; i < PL; i++) same[s][i] = (int32_t)((i * 11 + 2) % V);
    }
    int32_t fref[NT];
    reference(hm, same[0], PL, NT, fref);
    eng_t *ef = eng_new(hm, &(eng_opts_t){.n_ctx = CTX, .max_running = 8, .kv = ENG_KV_F32}, on_event, NULL, err,
                        sizeof err);
    run_greedy(ef, same, flens, NF, NT);
    for (int s = 0; s < NF; s++) CHECK_MSG(memcmp(logs[s].toks, fref, sizeof fref) == 0, "choice %d differs", s);
    eng_stats(ef, &st);
    CHECK_MSG(st.batch_tokens == PL + NF * (NT - 1), "%llu tokens computed", (unsigned long long)st.batch_tokens);
    check_slots_released(ef);
    eng_free(ef);

    /* cancel mid-prefill and mid-decode: every slot comes back */
    reset_logs();
    static int32_t p[3][300];
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 300; i++) p[s][i] = (int32_t)((i * 3 + s) % V);
    uint64_t ids[3];
    for (int s = 0; s < 3; s++) {
        eng_request_t r = greedy_req(p[s], (size_t)(s == 0 ? 300 : 20), CTX - 300, &logs[s]);
        CHECK(eng_submit(e, &r, &ids[s], err, sizeof err) == 0);
    }
    pthread_mutex_lock(&mu);
    while (logs[1].n_tok < 3) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    eng_stats(e, &st);
    CHECK_MSG(st.state_slots_used == 3, "%d slots used while 3 run", st.state_slots_used);
    for (int s = 0; s < 3; s++) eng_cancel(e, ids[s]);
    wait_finished(3);
    for (int s = 0; s < 3; s++) CHECK(logs[s].fin.finish == ENG_FINISH_CANCELLED);
    check_slots_released(e);
    sl_buf_t b = {0};
    const char *name = "h";
    eng_metrics_write(&b, &e, &name, 1);
    CHECK(b.data && strstr(b.data, "silica_state_slots_total{model=\"h\"} 3\n"));
    CHECK(b.data && strstr(b.data, "silica_state_slots_used{model=\"h\"} 0\n"));
    sl_buf_free(&b);
    eng_free(e);
    model = saved;
}

/* A KV pool far too small: sequences are preempted, their state slots
 * freed, and recomputed from position 0 (state zeroed) when re-admitted;
 * every greedy output still equals the reference. The state slots come
 * out of the same memory budget. */
static void test_hybrid_preemption(sl_model_t *hm) {
    char err[SL_ERR_MAX];
    sl_model_t *saved = model;
    model = hm;
    enum { NS = 6, NT = 40 };
    static int32_t prompts[NS][300];
    int lens[NS];
    for (int s = 0; s < NS; s++) {
        lens[s] = 20 + 9 * s;
        for (int i = 0; i < lens[s]; i++) prompts[s][i] = (int32_t)((s * 17 + i * 5 + 1) % V);
    }
    int32_t ref[NS][NT];
    for (int s = 0; s < NS; s++) reference(hm, prompts[s], lens[s], NT, ref[s]);
    const size_t bb = model_kv_block_bytes(hm, 8, SL_TYPE_F32), sb = model_state_floats(hm) * sizeof(float);
    CHECK(sb > 0);
    eng_t *e = eng_new(hm, &(eng_opts_t){.n_ctx = 128, .max_running = 6, .kv = ENG_KV_F32, .kv_block = 8,
                                         .kv_mem = 26 * bb + 6 * sb},
                       on_event, NULL, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    if (e) {
        run_greedy(e, prompts, lens, NS, NT);
        for (int s = 0; s < NS; s++)
            CHECK_MSG(logs[s].n_tok == NT && memcmp(logs[s].toks, ref[s], sizeof ref[s]) == 0,
                      "sequence %d differs from the reference after preemption", s);
        eng_stats_t st;
        eng_stats(e, &st);
        CHECK_MSG(st.preemptions > 0, "no preemption happened");
        CHECK(st.kv_blocks_total == 26);
        check_slots_released(e);
        eng_free(e);
    }
    /* a budget below the state slots is refused with a message */
    eng_t *e2 = eng_new(hm, &(eng_opts_t){.n_ctx = 128, .max_running = 6, .kv = ENG_KV_F32, .kv_mem = 6 * sb - 1},
                        on_event, NULL, err, sizeof err);
    CHECK(e2 == NULL && strstr(err, "recurrent state") != NULL);
    model = saved;
}

/* Runs one greedy prompt alone; its tokens in logs[0]. */
static void run_one(eng_t *e, const int32_t *prompt, int np, int nt) {
    static int32_t buf[1][300];
    memcpy(buf[0], prompt, (size_t)np * sizeof *prompt);
    run_greedy(e, buf, &np, 1, nt);
}

/* State checkpoints: prompts sharing prefixes of different lengths with a
 * first one give the plain greedy loop's output with and without the
 * cache, and reuse exactly the longest prefix whose blocks are cached and
 * which has a checkpoint (every 32 tokens, the prompt's last full block,
 * the end of the cached chain, the generation's last block boundary). */
static void test_hybrid_ckpt(sl_model_t *hm) {
    char err[SL_ERR_MAX];
    sl_model_t *saved = model;
    model = hm;
    enum { NT = 10, NP = 9 };
    static int32_t base[130];
    for (int i = 0; i < 130; i++)
        base[i] = (int32_t)((i * 13 + 5) % V);
    int32_t p0ref[NT];
    reference(hm, base, 120, NT, p0ref);
    static int32_t ps[NP][300];
    int lens[NP];
    /* 0: the first prompt (120 tokens; checkpoints at 32, 64, 96 and 112) */
    lens[0] = 120;
    memcpy(ps[0], base, 120 * sizeof *base);
    /* 1: its first 65 tokens (the chain reaches 64 = a checkpoint), 2: 66
     * (one token past it), 3: 64 (the chain reaches 48, the checkpoint 32),
     * 4: the same 64 again (48 was checkpointed as the chain's end) */
    const int cut[4] = {65, 66, 64, 64};
    for (int k = 0; k < 4; k++) {
        lens[1 + k] = cut[k];
        memcpy(ps[1 + k], base, (size_t)cut[k] * sizeof *base);
    }
    /* 5: the first 100 tokens then others (the chain reaches 96) */
    lens[5] = 130;
    memcpy(ps[5], base, 100 * sizeof *base);
    for (int i = 100; i < 130; i++)
        ps[5][i] = (int32_t)((i * 7 + 3) % V);
    /* 6: unrelated */
    lens[6] = 50;
    for (int i = 0; i < 50; i++)
        ps[6][i] = (int32_t)((i * 5 + 11) % V);
    /* 7: the conversation resent: the first prompt, its answer, more
     * tokens (the decode checkpoint at 128 = 120 + 8 generated) */
    lens[7] = 135;
    memcpy(ps[7], base, 120 * sizeof *base);
    memcpy(ps[7] + 120, p0ref, NT * sizeof *p0ref);
    for (int i = 130; i < 135; i++)
        ps[7][i] = (int32_t)((i * 3 + 1) % V);
    /* 8: prompt 5 again: its own last full block (128) */
    lens[8] = 130;
    memcpy(ps[8], ps[5], 130 * sizeof *base);
    const int want[NP] = {0, 64, 64, 32, 48, 96, 0, 128, 128};
    int32_t ref[NP][NT];
    for (int k = 0; k < NP; k++)
        reference(hm, ps[k], lens[k], NT, ref[k]);
    for (int cache = 0; cache < 2; cache++) {
        eng_t *e = eng_new(hm,
                           &(eng_opts_t){.n_ctx = CTX,
                                         .max_running = 4,
                                         .kv = ENG_KV_F32,
                                         .no_prefix_cache = !cache,
                                         .ckpt_interval = 32},
                           on_event, NULL, err, sizeof err);
        CHECK_MSG(e != NULL, "%s", err);
        if (!e) break;
        uint64_t computed = 0;
        for (int k = 0; k < NP; k++) {
            eng_stats_t st0, st1;
            eng_stats(e, &st0);
            run_one(e, ps[k], lens[k], NT);
            eng_stats(e, &st1);
            CHECK_MSG(logs[0].n_tok == NT && memcmp(logs[0].toks, ref[k], sizeof ref[k]) == 0,
                      "cache %d: prompt %d differs from the reference", cache, k);
            const int w = cache ? want[k] : 0;
            CHECK_MSG(logs[0].fin.usage.cached_tokens == w &&
                          logs[0].fin.usage.prompt_tokens == lens[k],
                      "cache %d prompt %d: cached %d, want %d", cache, k,
                      logs[0].fin.usage.cached_tokens, w);
            CHECK_MSG(st1.batch_tokens - st0.batch_tokens == (uint64_t)(lens[k] - w + NT - 1),
                      "cache %d prompt %d: %llu tokens computed", cache, k,
                      (unsigned long long)(st1.batch_tokens - st0.batch_tokens));
            CHECK(st1.ckpt_hits - st0.ckpt_hits == (w > 0));
            computed += st1.batch_tokens - st0.batch_tokens;
            check_slots_released(e);
        }
        eng_stats_t st;
        eng_stats(e, &st);
        if (!cache) CHECK(st.ckpt_stored == 0 && st.ckpt_count == 0 && st.kv_blocks_ckpt == 0);
        if (cache) {
            CHECK(st.ckpt_count > 0 && st.kv_blocks_ckpt >= st.ckpt_count && st.ckpt_bytes > 0);
            sl_buf_t b = {0};
            const char *name = "h";
            eng_metrics_write(&b, &e, &name, 1);
            char line[128];
            snprintf(line, sizeof line, "silica_state_checkpoints{model=\"h\"} %d\n",
                     st.ckpt_count);
            CHECK(b.data && strstr(b.data, line));
            snprintf(line, sizeof line, "silica_state_checkpoint_hits_total{model=\"h\"} %llu\n",
                     (unsigned long long)st.ckpt_hits);
            CHECK(b.data && strstr(b.data, line));
            CHECK(b.data && strstr(b.data, "silica_state_checkpoints_stored_total{model=\"h\"}"));
            CHECK(b.data && strstr(b.data, "silica_state_checkpoint_evictions_total{model=\"h\"}"));
            CHECK(b.data && strstr(b.data, "silica_state_checkpoint_bytes{model=\"h\"}"));
            sl_buf_free(&b);
        }

        /* n>1 on a cached prefix: the leader restores the checkpoint, the
         * siblings fork from it */
        enum { NF = 4 };
        static int32_t same[NF][300];
        int flens[NF];
        for (int f = 0; f < NF; f++) {
            flens[f] = lens[5];
            memcpy(same[f], ps[5], (size_t)lens[5] * sizeof *base);
        }
        eng_stats_t st0;
        eng_stats(e, &st0);
        run_greedy(e, same, flens, NF, NT);
        eng_stats(e, &st);
        for (int f = 0; f < NF; f++) {
            CHECK_MSG(memcmp(logs[f].toks, ref[5], sizeof ref[5]) == 0,
                      "cache %d: choice %d differs", cache, f);
            CHECK(logs[f].fin.usage.cached_tokens == (cache ? 128 : 0));
        }
        /* the prompt once (siblings fork from the leader) plus the decode
         * tokens; a sibling submitted after the leader already finished its
         * short prefill prefills on its own (it cannot fork any more), so
         * up to NF - 1 more prompt remainders, never more */
        const uint64_t rest = (uint64_t)(lens[5] - (cache ? 128 : 0)), got = st.batch_tokens - st0.batch_tokens;
        CHECK_MSG(got >= rest + NF * (NT - 1) && got <= NF * rest + NF * (NT - 1) && (got - NF * (NT - 1)) % rest == 0,
                  "cache %d: n>1 computed %llu", cache, (unsigned long long)got);
        check_slots_released(e);
        eng_free(e);
    }
    model = saved;
}

/* A pool of a few blocks beyond one context: evicting the first block of a
 * prompt drops its checkpoints (none can be reached: the chain misses its
 * first block) and it is computed again from 0; an unrelated long prompt
 * evicts blocks and checkpoints rather than preempting; then shared
 * prefixes under preemption: every output equals the reference and all
 * blocks, slots and checkpoints are accounted for. */
static void test_hybrid_ckpt_pressure(sl_model_t *hm) {
    char err[SL_ERR_MAX];
    sl_model_t *saved = model;
    model = hm;
    enum { NT = 4 };
    const size_t bb = model_kv_block_bytes(hm, 8, SL_TYPE_F32),
                 sb = model_state_floats(hm) * sizeof(float);
    const int cb = (int)((sb + bb - 1) / bb); /* blocks per checkpoint */
    /* 128 positions = 16 blocks of 8; a pool of 17 + 2 checkpoints */
    eng_t *e = eng_new(hm,
                       &(eng_opts_t){.n_ctx = 128,
                                     .max_running = 2,
                                     .kv = ENG_KV_F32,
                                     .kv_block = 8,
                                     .ckpt_interval = 16,
                                     .kv_mem = (size_t)(17 + 2 * cb) * bb + 2 * sb},
                       on_event, NULL, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    if (!e) {
        model = saved;
        return;
    }
    static int32_t p0[60], q[120];
    for (int i = 0; i < 60; i++)
        p0[i] = (int32_t)((i * 13 + 5) % V);
    for (int i = 0; i < 120; i++)
        q[i] = (int32_t)((i * 7 + 2) % V);
    int32_t r0[NT], rq[NT];
    reference(hm, p0, 60, NT, r0);
    reference(hm, q, 120, NT, rq);
    run_one(e, p0, 60, NT);
    CHECK(memcmp(logs[0].toks, r0, sizeof r0) == 0);
    run_one(e, p0, 60, NT); /* hits its last full block (56) */
    CHECK(memcmp(logs[0].toks, r0, sizeof r0) == 0);
    CHECK_MSG(logs[0].fin.usage.cached_tokens == 56, "cached %d", logs[0].fin.usage.cached_tokens);
    eng_stats_t st0, st;
    eng_stats(e, &st0);
    CHECK_MSG(st0.ckpt_count == 4 && st0.kv_blocks_ckpt == 4 * cb && st0.kv_blocks_cached == 7,
              "%d checkpoints (16, 32, 48, 56 expected), %d cached blocks", st0.ckpt_count,
              st0.kv_blocks_cached);
    /* a prompt-scoring request (it stores no checkpoint) of 70 tokens takes
     * the 8 free blocks and one cached: the least recently used, the first
     * prompt's first block; none of its 4 checkpoints can be reached now,
     * and all are dropped */
    {
        static int32_t sp[70];
        for (int i = 0; i < 70; i++)
            sp[i] = (int32_t)((i * 3 + 7) % V);
        reset_logs();
        eng_request_t r = greedy_req(sp, 70, 1, &logs[0]);
        r.score_prompt = true;
        uint64_t id;
        CHECK(eng_submit(e, &r, &id, err, sizeof err) == 0);
        wait_finished(1);
        CHECK(logs[0].n_prompt_ev == 69);
    }
    eng_stats(e, &st);
    CHECK_MSG(st.evictions == st0.evictions + 1, "%llu blocks evicted",
              (unsigned long long)(st.evictions - st0.evictions));
    CHECK_MSG(st.ckpt_count == 0 && st.kv_blocks_ckpt == 0 &&
                  st.ckpt_evictions == st0.ckpt_evictions + 4,
              "%d checkpoints left", st.ckpt_count);
    check_slots_released(e);
    run_one(e, p0, 60, NT);
    CHECK(memcmp(logs[0].toks, r0, sizeof r0) == 0);
    CHECK_MSG(logs[0].fin.usage.cached_tokens == 0, "cached %d without the first block",
              logs[0].fin.usage.cached_tokens);
    eng_stats(e, &st0);
    CHECK(st0.ckpt_count == 4);
    run_one(e, q, 120, NT); /* 16 blocks: the first prompt's go */
    CHECK(memcmp(logs[0].toks, rq, sizeof rq) == 0);
    eng_stats(e, &st);
    CHECK_MSG(st.evictions > st0.evictions, "no block evicted");
    CHECK_MSG(st.ckpt_evictions > st0.ckpt_evictions, "no checkpoint evicted");
    CHECK(st.preemptions == 0);
    check_slots_released(e);
    run_one(e, p0, 60, NT);
    CHECK(memcmp(logs[0].toks, r0, sizeof r0) == 0);
    CHECK_MSG(logs[0].fin.usage.cached_tokens == 0,
              "a checkpoint without its blocks was used (%d cached)",
              logs[0].fin.usage.cached_tokens);
    check_slots_released(e);
    eng_free(e);

    /* 6 sequences with a shared 24-token prefix in a pool far too small:
     * preemption, block and checkpoint eviction; twice */
    enum { NS = 6, NT2 = 30 };
    static int32_t prompts[NS][300];
    int lens[NS];
    for (int s = 0; s < NS; s++) {
        lens[s] = 30 + 7 * s;
        for (int i = 0; i < lens[s]; i++)
            prompts[s][i] = (int32_t)(i < 24 ? (i * 11 + 3) % V : (s * 17 + i * 5 + 1) % V);
    }
    int32_t ref[NS][NT2];
    for (int s = 0; s < NS; s++)
        reference(hm, prompts[s], lens[s], NT2, ref[s]);
    e = eng_new(hm,
                &(eng_opts_t){.n_ctx = 128,
                              .max_running = 6,
                              .kv = ENG_KV_F32,
                              .kv_block = 8,
                              .ckpt_interval = 8,
                              .kv_mem = 26 * bb + 6 * sb},
                on_event, NULL, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    if (e) {
        for (int round = 0; round < 2; round++) {
            run_greedy(e, prompts, lens, NS, NT2);
            for (int s = 0; s < NS; s++)
                CHECK_MSG(logs[s].n_tok == NT2 && memcmp(logs[s].toks, ref[s], sizeof ref[s]) == 0,
                          "round %d: sequence %d differs from the reference under pressure", round,
                          s);
            check_slots_released(e);
        }
        eng_stats(e, &st);
        CHECK_MSG(st.preemptions > 0, "no preemption happened");
        CHECK_MSG(st.ckpt_evictions > 0 && st.ckpt_stored > 0, "stored %llu evicted %llu",
                  (unsigned long long)st.ckpt_stored, (unsigned long long)st.ckpt_evictions);
        fprintf(stderr,
                "  pressure: %llu preemptions, %llu checkpoints stored, %llu hits, %llu evicted\n",
                (unsigned long long)st.preemptions, (unsigned long long)st.ckpt_stored,
                (unsigned long long)st.ckpt_hits, (unsigned long long)st.ckpt_evictions);
        /* cancel mid-prefill and mid-decode with checkpoints around */
        reset_logs();
        uint64_t ids[3];
        for (int s = 0; s < 3; s++) {
            eng_request_t r = greedy_req(prompts[s], (size_t)lens[s], 60, &logs[s]);
            CHECK(eng_submit(e, &r, &ids[s], err, sizeof err) == 0);
        }
        pthread_mutex_lock(&mu);
        while (logs[0].n_tok < 2)
            pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
        for (int s = 0; s < 3; s++)
            eng_cancel(e, ids[s]);
        wait_finished(3);
        check_slots_released(e);
        eng_free(e);
    }
    model = saved;
}

int main(void) {
    write_model();
    char err[SL_ERR_MAX];
    model = model_load(path, err, sizeof err);
    CHECK_MSG(model != NULL, "%s", err);
    if (model) {
        RUN(test_matches_reference_concurrently);
        RUN(test_stop_ids_and_errors);
        RUN(test_cancel_queue_shutdown);
        RUN(test_prompt_scoring);
        RUN(test_prefix_cache_reuse);
        RUN(test_preemption_and_eviction);
        RUN(test_cancel_frees_blocks);
        RUN(test_shared_prompt_fork);
        RUN(test_batched_steps);
        RUN(test_think_budget);
        model_free(model);
    }
    unlink(path);
/* RUN for the hybrid cases, which take the model: ok / FAIL by the
 * failures this case added */
#define RUN_HM(fn, name)                                                                            \
    do {                                                                                           \
        int before_ = test_failures_;                                                              \
        fn(hm);                                                                                    \
        fprintf(stderr, "%s %s\n", test_failures_ > before_ ? "FAIL" : "ok  ", name);            \
    } while (0)
    tiny_qwen35_write(path, 777);
    sl_model_t *hm = model_load(path, err, sizeof err);
    CHECK_MSG(hm != NULL, "%s", err);
    if (hm) {
        RUN_HM(test_hybrid, "test_hybrid");
        RUN_HM(test_hybrid_preemption, "test_hybrid_preemption");
        RUN_HM(test_hybrid_ckpt, "test_hybrid_ckpt");
        RUN_HM(test_hybrid_ckpt_pressure, "test_hybrid_ckpt_pressure");
        model_free(hm);
    }
    unlink(path);
    /* the same hybrid cases on a Mamba-2 hybrid (its own state layout) */
    tiny_granitehybrid_write(path, 778);
    hm = model_load(path, err, sizeof err);
    CHECK_MSG(hm != NULL, "%s", err);
    if (hm) {
        RUN_HM(test_hybrid, "test_hybrid (granitehybrid)");
        RUN_HM(test_hybrid_preemption, "test_hybrid_preemption (granitehybrid)");
        RUN_HM(test_hybrid_ckpt, "test_hybrid_ckpt (granitehybrid)");
        RUN_HM(test_hybrid_ckpt_pressure, "test_hybrid_ckpt_pressure (granitehybrid)");
        model_free(hm);
    }
    unlink(path);
    return test_summary();
}
