/* deps: engine sampling grammar model kernels gguf base */
/*
 * test_engine_embed.c — an encoder model's engine (eng_embed): requests
 * batched across each other must give every input the vector model_embed
 * gives it alone; each request gets exactly one FINISH (stop, cancelled,
 * shutdown) with its token count; the queue limit answers ENG_EBUSY;
 * generation requests are refused on an encoder and embeddings on a
 * decoder.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "test.h"
#include "tiny_llama.h"

enum { BV = 97, BE = 32, BH = 4, BF = 64, BL = 2, BCTX = 128 };

static char bert_path[256], llama_path[256];

/* A tiny random bert (mean pooling, 2 token types). */
static void write_bert(const char *p) {
    uint64_t rs = 777;
    gguf_writer_t *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "bert");
    gguf_writer_set_u32(w, "bert.context_length", BCTX);
    gguf_writer_set_u32(w, "bert.embedding_length", BE);
    gguf_writer_set_u32(w, "bert.block_count", BL);
    gguf_writer_set_u32(w, "bert.feed_forward_length", BF);
    gguf_writer_set_u32(w, "bert.attention.head_count", BH);
    gguf_writer_set_f32(w, "bert.attention.layer_norm_epsilon", 1e-12f);
    gguf_writer_set_bool(w, "bert.attention.causal", false);
    gguf_writer_set_u32(w, "bert.pooling_type", 1);
    tl_add(w, &rs, "token_embd.weight", BV, BE, 1.0f);
    tl_add(w, &rs, "token_types.weight", 2, BE, 1.0f);
    tl_add(w, &rs, "position_embd.weight", BCTX, BE, 1.0f);
    tl_add(w, &rs, "token_embd_norm.weight", 1, BE, 1.0f);
    tl_add(w, &rs, "token_embd_norm.bias", 1, BE, 1.0f);
    static const char *const mats[] = {"attn_q", "attn_k", "attn_v", "attn_output"};
    for (int l = 0; l < BL; l++) {
        char n[64];
        for (size_t i = 0; i < SL_ARRAY_LEN(mats); i++) {
            snprintf(n, sizeof n, "blk.%d.%s.weight", l, mats[i]);
            tl_add(w, &rs, n, BE, BE, 0.3f);
            snprintf(n, sizeof n, "blk.%d.%s.bias", l, mats[i]);
            tl_add(w, &rs, n, 1, BE, 1.0f);
        }
        static const char *const norms[] = {"attn_output_norm", "layer_output_norm"};
        for (size_t i = 0; i < 2; i++) {
            snprintf(n, sizeof n, "blk.%d.%s.weight", l, norms[i]);
            tl_add(w, &rs, n, 1, BE, 1.0f);
            snprintf(n, sizeof n, "blk.%d.%s.bias", l, norms[i]);
            tl_add(w, &rs, n, 1, BE, 1.0f);
        }
        snprintf(n, sizeof n, "blk.%d.ffn_up.weight", l);
        tl_add(w, &rs, n, BF, BE, 0.3f);
        snprintf(n, sizeof n, "blk.%d.ffn_down.weight", l);
        tl_add(w, &rs, n, BE, BF, 0.3f);
    }
    char err[SL_ERR_MAX];
    CHECK_MSG(gguf_writer_write(w, p, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
}

/* ---- events ---- */

#define MAXREQ 64

typedef struct {
    int n_finish;
    eng_finish_t finish;
    int prompt_tokens;
    int order; /* 1 + the FINISH events before this one */
} reqlog_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static reqlog_t logs[MAXREQ];
static int n_finished, n_other;

static void on_event(const eng_event_t *ev, void *ctx) {
    (void)ctx;
    pthread_mutex_lock(&mu);
    if (ev->type == ENG_EV_FINISH) {
        reqlog_t *l = ev->user;
        l->n_finish++;
        l->finish = ev->finish;
        l->prompt_tokens = ev->usage.prompt_tokens;
        l->order = ++n_finished;
        pthread_cond_broadcast(&cv);
    } else {
        n_other++;
    }
    pthread_mutex_unlock(&mu);
}

static void reset_logs(void) {
    pthread_mutex_lock(&mu);
    memset(logs, 0, sizeof logs);
    n_finished = n_other = 0;
    pthread_mutex_unlock(&mu);
}

/* Waits for n FINISH events; a request the engine never finishes fails
 * the test after 60 s instead of hanging it. */
static void wait_finished(int n) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&mu);
    int rc = 0;
    while (n_finished < n && rc == 0) rc = pthread_cond_timedwait(&cv, &mu, &until);
    CHECK_MSG(n_finished >= n, "%d of %d requests finished", n_finished, n);
    pthread_mutex_unlock(&mu);
}

/* ---- inputs ---- */

typedef struct {
    int n;                  /* inputs */
    int32_t *toks[200];
    int32_t *types[200];
    int len[200];
    float *out;
} req_inputs_t;

static void make_inputs(req_inputs_t *r, int n, uint64_t seed, int max_len) {
    memset(r, 0, sizeof *r);
    r->n = n;
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        r->len[i] = 1 + (int)((seed >> 33) % (uint64_t)max_len);
        r->toks[i] = malloc((size_t)r->len[i] * sizeof(int32_t));
        r->types[i] = malloc((size_t)r->len[i] * sizeof(int32_t));
        for (int k = 0; k < r->len[i]; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            r->toks[i][k] = (int32_t)((seed >> 33) % BV);
            r->types[i][k] = k >= r->len[i] / 2;
        }
    }
    r->out = calloc((size_t)n * BE, sizeof(float));
}

static void free_inputs(req_inputs_t *r) {
    for (int i = 0; i < r->n; i++) {
        free(r->toks[i]);
        free(r->types[i]);
    }
    free(r->out);
}

static eng_embed_req_t embed_req(req_inputs_t *r, void *user) {
    return (eng_embed_req_t){(const int32_t *const *)r->toks, (const int32_t *const *)r->types, r->len, r->n, r->out,
                             user};
}

static int total_tokens(const req_inputs_t *r) {
    int t = 0;
    for (int i = 0; i < r->n; i++) t += r->len[i];
    return t;
}

/* ---- tests ---- */

/* Several requests at once (more tokens than one model call takes): each
 * vector equals model_embed of its input alone. */
static void test_batched_equals_alone(void) {
    char err[SL_ERR_MAX];
    sl_model_t *m = model_load(bert_path, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (!m) return;
    reset_logs();
    eng_opts_t o = {.n_threads = 2};
    eng_t *e = eng_new(m, &o, on_event, NULL, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    enum { NR = 6 };
    static req_inputs_t in[NR];
    int all = 0;
    for (int r = 0; r < NR; r++) {
        /* the first the largest (about 6 model calls alone), the others 5 to 26 inputs */
        make_inputs(&in[r], r == 0 ? 200 : 5 + 7 * (NR - 1 - r), 1000 + (uint64_t)r, BCTX);
        all += total_tokens(&in[r]);
    }
    CHECK_MSG(all > ENG_EMBED_BATCH, "the requests must need several model calls (%d tokens)", all);
    for (int r = 0; r < NR; r++) {
        uint64_t id;
        const eng_embed_req_t q = embed_req(&in[r], &logs[r]);
        CHECK_MSG(eng_embed(e, &q, &id, err, sizeof err) == 0, "%s", err);
    }
    wait_finished(NR);
    eng_stats_t st;
    eng_stats(e, &st);
    CHECK(st.live == 0);
    CHECK(st.steps >= 2);
    eng_free(e);
    sl_pool_t *pool = sl_pool_new(1);
    float alone[BE];
    double worst = 0.0;
    for (int r = 0; r < NR; r++) {
        CHECK(logs[r].n_finish == 1 && logs[r].finish == ENG_FINISH_STOP);
        CHECK(logs[r].prompt_tokens == total_tokens(&in[r]));
        for (int i = 0; i < in[r].n; i++) {
            const sl_embed_seq_t s = {in[r].toks[i], in[r].types[i], in[r].len[i]};
            CHECK(model_embed(m, pool, &s, 1, alone, err, sizeof err) == 0);
            for (int k = 0; k < BE; k++) {
                const double d = fabs((double)alone[k] - in[r].out[(size_t)i * BE + k]);
                if (d > worst) worst = d;
            }
        }
        free_inputs(&in[r]);
    }
    CHECK_MSG(worst < 1e-4, "batched vs alone: %g", worst);
    /* round-robin: the last, smallest request finishes before the first,
     * largest one, which needs several model calls (in order of arrival
     * the first would finish first; the engine may start on it before the
     * others arrive, a head start of a call or two) */
    CHECK_MSG(logs[NR - 1].order < logs[0].order, "the first request finished %d, the last %d of %d", logs[0].order,
              logs[NR - 1].order, NR);
    CHECK(n_other == 0);
    sl_pool_free(pool);
    model_free(m);
}

/* Cancellation, the queue limit, shutdown, and the requests an encoder
 * (or a decoder) refuses. */
static void test_cancel_busy_shutdown_refusals(void) {
    char err[SL_ERR_MAX];
    sl_model_t *m = model_load(bert_path, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (!m) return;
    reset_logs();
    eng_opts_t o = {.n_threads = 1, .max_queued = 3};
    eng_t *e = eng_new(m, &o, on_event, NULL, err, sizeof err);
    CHECK_MSG(e != NULL, "%s", err);
    CHECK(eng_n_ctx(e) == BCTX);

    /* generation and grammars are refused on an encoder */
    const int32_t p[2] = {1, 2};
    eng_request_t gr = {.prompt = p, .n_prompt = 2, .max_tokens = 1};
    uint64_t id;
    CHECK(eng_submit(e, &gr, &id, err, sizeof err) == -1 && strstr(err, "embedding"));
    eng_grammar_t g = {.kind = 1, .text = "root ::= \"a\"", .len = 12};
    CHECK(eng_grammar_prepare(e, &g, NULL, err, sizeof err) == -1);

    /* bad inputs: empty, too long, id out of range */
    static req_inputs_t bad;
    make_inputs(&bad, 1, 5, 8);
    int saved = bad.len[0];
    bad.len[0] = 0;
    eng_embed_req_t q = embed_req(&bad, &logs[0]);
    CHECK(eng_embed(e, &q, &id, err, sizeof err) == -1);
    bad.len[0] = BCTX + 1;
    CHECK(eng_embed(e, &q, &id, err, sizeof err) == -1 && strstr(err, "tokens"));
    bad.len[0] = saved;
    bad.toks[0][0] = BV;
    CHECK(eng_embed(e, &q, &id, err, sizeof err) == -1 && strstr(err, "vocabulary"));
    free_inputs(&bad);

    /* a long request cancelled at once finishes CANCELLED, having
     * computed at most what it had; the queue holds max_queued */
    static req_inputs_t big[5];
    for (int r = 0; r < 5; r++) make_inputs(&big[r], 40, 50 + (uint64_t)r, BCTX);
    uint64_t ids[5];
    int accepted = 0, busy = 0;
    for (int r = 0; r < 5; r++) {
        q = embed_req(&big[r], &logs[r]);
        const int rc = eng_embed(e, &q, &ids[r], err, sizeof err);
        if (rc == 0) accepted++;
        else if (rc == ENG_EBUSY) busy++;
    }
    CHECK_MSG(accepted >= 3 && busy >= 1, "accepted %d busy %d", accepted, busy);
    eng_cancel(e, ids[0]);
    wait_finished(accepted);
    CHECK(logs[0].n_finish == 1);
    CHECK(logs[0].finish == ENG_FINISH_CANCELLED || logs[0].finish == ENG_FINISH_STOP);
    CHECK(logs[0].prompt_tokens <= total_tokens(&big[0]));
    for (int r = 1; r < accepted; r++) CHECK(logs[r].n_finish == 1 && logs[r].finish == ENG_FINISH_STOP);

    /* cancelling a request queued before another, again and again, at
     * different points of its work: the other one always completes */
    for (int round = 0; round < 6; round++) {
        reset_logs();
        uint64_t a, b;
        q = embed_req(&big[0], &logs[0]);
        CHECK(eng_embed(e, &q, &a, err, sizeof err) == 0);
        q = embed_req(&big[1], &logs[1]);
        CHECK(eng_embed(e, &q, &b, err, sizeof err) == 0);
        if (round) usleep((useconds_t)(round * 2000));
        eng_cancel(e, a);
        wait_finished(2);
        CHECK(logs[0].n_finish == 1 && logs[1].n_finish == 1 && logs[1].finish == ENG_FINISH_STOP);
        CHECK(logs[1].prompt_tokens == total_tokens(&big[1]));
    }

    /* shutdown with requests queued: every one gets its FINISH */
    reset_logs();
    for (int r = 0; r < 3; r++) {
        q = embed_req(&big[r], &logs[r]);
        CHECK(eng_embed(e, &q, &ids[r], err, sizeof err) == 0);
    }
    eng_free(e);
    for (int r = 0; r < 3; r++) CHECK(logs[r].n_finish == 1);
    for (int r = 0; r < 5; r++) free_inputs(&big[r]);
    model_free(m);

    /* a decoder makes no embeddings */
    sl_model_t *lm = model_load(llama_path, err, sizeof err);
    CHECK_MSG(lm != NULL, "%s", err);
    if (!lm) return;
    eng_t *le = eng_new(lm, NULL, on_event, NULL, err, sizeof err);
    CHECK_MSG(le != NULL, "%s", err);
    static req_inputs_t one;
    make_inputs(&one, 1, 9, 8);
    q = embed_req(&one, &logs[0]);
    CHECK(eng_embed(le, &q, &id, err, sizeof err) == -1 && strstr(err, "embeddings"));
    free_inputs(&one);
    eng_free(le);
    model_free(lm);
}

int main(void) {
    snprintf(bert_path, sizeof bert_path, "/tmp/silica-test-engine-embed-%d.gguf", (int)getpid());
    snprintf(llama_path, sizeof llama_path, "/tmp/silica-test-engine-embed-llama-%d.gguf", (int)getpid());
    write_bert(bert_path);
    tiny_llama_write(llama_path, 99);
    RUN(test_batched_equals_alone);
    RUN(test_cancel_busy_shutdown_refusals);
    unlink(bert_path);
    unlink(llama_path);
    return test_summary();
}
