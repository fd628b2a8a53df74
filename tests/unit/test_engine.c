/* deps: engine sampling model kernels gguf base */
/*
 * test_engine.c — the engine against the model API it schedules: a tiny
 * random llama model is written to a temp file; greedy generation through
 * the engine (several sequences at once, chunked prefill) must equal a
 * plain model_forward + argmax loop per sequence; stop ids, max_tokens,
 * cancellation, the queue limit and shutdown must each end a sequence with
 * exactly one FINISH of the right reason, and leave no live sequence.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "test.h"

enum { V = 64, E = 16, L = 1, H = 2, K = 1, D = 8, F = 32, CTX = 512 };

static uint64_t rs = 12345;
static float rnd(void) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rs >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void add(gguf_writer_t *w, const char *name, int n_out, int n_in, float scale) {
    size_t n = (size_t)n_out * (size_t)n_in;
    float *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = scale == 1.0f && n_out == 1 ? 1.0f : rnd() * scale;
    int64_t ne[2] = {n_in, n_out};
    CHECK(gguf_writer_add_tensor(w, name, SL_TYPE_F32, n_out == 1 ? 1 : 2, ne, d) == 0);
    free(d);
}

static char path[256];

static void write_model(void) {
    snprintf(path, sizeof path, "/tmp/silica-test-engine-%d.gguf", (int)getpid());
    gguf_writer_t *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.context_length", CTX);
    gguf_writer_set_u32(w, "llama.embedding_length", E);
    gguf_writer_set_u32(w, "llama.block_count", L);
    gguf_writer_set_u32(w, "llama.feed_forward_length", F);
    gguf_writer_set_u32(w, "llama.attention.head_count", H);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", K);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", D);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    add(w, "token_embd.weight", V, E, 1.0f);
    add(w, "output_norm.weight", 1, E, 1.0f);
    add(w, "output.weight", V, E, 1.0f);
    add(w, "blk.0.attn_norm.weight", 1, E, 1.0f);
    add(w, "blk.0.ffn_norm.weight", 1, E, 1.0f);
    add(w, "blk.0.attn_q.weight", H * D, E, 0.5f);
    add(w, "blk.0.attn_k.weight", K * D, E, 0.5f);
    add(w, "blk.0.attn_v.weight", K * D, E, 0.5f);
    add(w, "blk.0.attn_output.weight", E, H * D, 0.5f);
    add(w, "blk.0.ffn_gate.weight", F, E, 0.5f);
    add(w, "blk.0.ffn_up.weight", F, E, 0.5f);
    add(w, "blk.0.ffn_down.weight", E, F, 0.5f);
    char err[SL_ERR_MAX];
    int rc = gguf_writer_write(w, path, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    gguf_writer_free(w);
}

/* ---- event collection ---- */

#define MAXSEQ 8
#define MAXTOK 600

typedef struct seqlog {
    int32_t toks[MAXTOK];
    int n_tok, n_finish;
    eng_event_t fin;
} seqlog_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static seqlog_t logs[MAXSEQ];
static int n_finished;

static void on_event(const eng_event_t *ev, void *ctx) {
    seqlog_t *l = ev->user;
    pthread_mutex_lock(&mu);
    if (ev->type == ENG_EV_TOKEN) {
        if (l->n_tok < MAXTOK) l->toks[l->n_tok] = ev->tok.id;
        l->n_tok++;
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

/* Greedy reference: prefill the prompt, then argmax / feed, n tokens. */
static void reference(sl_model_t *m, const int32_t *prompt, int np, int n, int32_t *out) {
    char err[SL_ERR_MAX];
    sl_kv_t *kv = model_kv_new(m, CTX, SL_TYPE_F32, err, sizeof err);
    float logits[V];
    CHECK(model_forward(m, NULL, kv, prompt, np, logits, false, err, sizeof err) == 0);
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        out[i] = best;
        int32_t t = best;
        if (i + 1 < n) CHECK(model_forward(m, NULL, kv, &t, 1, logits, false, err, sizeof err) == 0);
    }
    model_kv_free(kv);
}

static eng_request_t greedy_req(const int32_t *prompt, size_t np, int max_tokens, void *user) {
    eng_request_t r = {0};
    r.prompt = prompt;
    r.n_prompt = np;
    r.max_tokens = max_tokens;
    smp_params_default(&r.sampling);
    r.sampling.temperature = 0;
    r.user = user;
    return r;
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
    CHECK(logs[0].n_tok < 50);
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

int main(void) {
    write_model();
    char err[SL_ERR_MAX];
    model = model_load(path, err, sizeof err);
    CHECK_MSG(model != NULL, "%s", err);
    if (model) {
        RUN(test_matches_reference_concurrently);
        RUN(test_stop_ids_and_errors);
        RUN(test_cancel_queue_shutdown);
        model_free(model);
    }
    unlink(path);
    return test_summary();
}
