/*
 * engine.c — request queue + one engine thread per model (see engine.h).
 *
 * State: `pending` (FIFO of submitted sequences without a KV cache) and
 * `running` (sequences with a KV cache) are lists guarded by `mu`; the
 * engine thread moves sequences between them and is the only thread that
 * frees a sequence. eng_cancel() finds a live sequence by id under `mu` and
 * sets its `cancel` flag (atomic: the engine thread reads it without the
 * lock between model steps). Invariant: a sequence is in exactly one list
 * from eng_submit() until the engine thread unlinks it to emit its FINISH.
 */
#include "engine/engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/pool.h"

typedef struct eng_seq {
    struct eng_seq *next;
    uint64_t id;
    void *user;
    int32_t *prompt;
    size_t n_prompt;
    size_t n_fed;       /* prompt tokens already in the KV cache */
    int max_tokens;
    int n_generated;
    int32_t last;       /* last sampled token, fed at the next step */
    int32_t *stop_ids;
    size_t n_stop_ids;
    smp_t *smp;
    sl_kv_t *kv;
    atomic_bool cancel;
} eng_seq_t;

struct eng {
    sl_model_t *model;
    eng_opts_t o;
    int n_vocab;
    eng_event_fn fn;
    void *ctx;
    sl_pool_t *pool;
    float *logits; /* n_vocab, engine thread only */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool stopping;
    uint64_t next_id;
    eng_seq_t *pending, *pending_tail;
    eng_seq_t *running; /* engine thread order; linked under mu */
    int n_pending, n_running;
    eng_stats_t st; /* counters, under mu */
};

static void seq_free(eng_seq_t *s) {
    if (!s) return;
    free(s->prompt);
    free(s->stop_ids);
    smp_free(s->smp);
    model_kv_free(s->kv);
    free(s);
}

int eng_n_ctx(const eng_t *e) {
    return e->o.n_ctx;
}

int eng_n_vocab(const eng_t *e) {
    return e->n_vocab;
}

/* Unlinks s from `running` (engine thread, takes mu), emits FINISH, frees. */
static void seq_finish(eng_t *e, eng_seq_t *s, eng_finish_t why, const char *msg) {
    pthread_mutex_lock(&e->mu);
    eng_seq_t **pp = &e->running;
    while (*pp && *pp != s) pp = &(*pp)->next;
    if (*pp) {
        *pp = s->next;
        e->n_running--;
    }
    e->st.finished++;
    if (why == ENG_FINISH_CANCELLED) e->st.cancelled++;
    pthread_mutex_unlock(&e->mu);
    /* free the KV cache before telling anyone: a client that sees FINISH
     * sees the memory already returned */
    model_kv_free(s->kv);
    s->kv = NULL;
    eng_event_t ev = {0};
    ev.type = ENG_EV_FINISH;
    ev.id = s->id;
    ev.user = s->user;
    ev.t_ns = sl_now_ns();
    ev.finish = why;
    ev.error = msg;
    /* what was computed: a sequence cancelled during prefill reports only
     * the prompt tokens already fed */
    ev.usage.prompt_tokens = (int)SL_MIN(s->n_fed, s->n_prompt);
    ev.usage.cached_tokens = 0;
    ev.usage.completion_tokens = s->n_generated;
    e->fn(&ev, e->ctx);
    seq_free(s);
}

static bool is_stop(const eng_seq_t *s, int32_t id) {
    for (size_t i = 0; i < s->n_stop_ids; i++)
        if (s->stop_ids[i] == id) return true;
    return false;
}

/* One step of one running sequence: a prompt chunk or the last token, then
 * (when the prompt is done) a sample. Returns after emitting events. */
static void seq_step(eng_t *e, eng_seq_t *s) {
    char err[SL_ERR_MAX];
    if (atomic_load(&s->cancel)) {
        seq_finish(e, s, ENG_FINISH_CANCELLED, NULL);
        return;
    }
    uint64_t t0 = sl_now_ns();
    if (!s->kv) {
        int cap = e->o.n_ctx;
        size_t want = s->n_prompt + (size_t)s->max_tokens;
        if (want < (size_t)cap) cap = (int)want;
        s->kv = model_kv_new(e->model, cap, e->o.kv_type, err, sizeof err);
        if (!s->kv) {
            seq_finish(e, s, ENG_FINISH_ERROR, err);
            return;
        }
    }
    int rc;
    if (s->n_fed < s->n_prompt) {
        size_t n = SL_MIN(s->n_prompt - s->n_fed, (size_t)ENG_PREFILL_CHUNK);
        rc = model_forward(e->model, e->pool, s->kv, s->prompt + s->n_fed, (int)n, e->logits, false,
                           err, sizeof err);
        s->n_fed += n;
        if (rc == 0 && s->n_fed < s->n_prompt) {
            pthread_mutex_lock(&e->mu);
            e->st.steps++;
            e->st.busy_ns += sl_now_ns() - t0;
            pthread_mutex_unlock(&e->mu);
            return; /* more prompt to feed next step */
        }
    } else {
        rc = model_forward(e->model, e->pool, s->kv, &s->last, 1, e->logits, false, err, sizeof err);
    }
    if (rc != 0) {
        seq_finish(e, s, ENG_FINISH_ERROR, err);
        return;
    }
    eng_event_t ev = {0};
    ev.type = ENG_EV_TOKEN;
    ev.id = s->id;
    ev.user = s->user;
    if (smp_sample(s->smp, e->logits, &ev.tok) != 0) {
        seq_finish(e, s, ENG_FINISH_ERROR, "no token left to sample (all logits masked)");
        return;
    }
    smp_accept(s->smp, ev.tok.id);
    s->n_generated++;
    s->last = ev.tok.id;
    uint64_t t1 = sl_now_ns();
    pthread_mutex_lock(&e->mu);
    e->st.steps++;
    e->st.busy_ns += t1 - t0;
    e->st.tokens_generated++;
    pthread_mutex_unlock(&e->mu);
    if (is_stop(s, ev.tok.id)) {
        seq_finish(e, s, ENG_FINISH_STOP, NULL);
        return;
    }
    ev.t_ns = t1;
    e->fn(&ev, e->ctx);
    if (s->n_generated >= s->max_tokens || model_kv_len(s->kv) >= model_kv_capacity(s->kv))
        seq_finish(e, s, ENG_FINISH_LENGTH, NULL);
}

static void *eng_main(void *arg) {
    eng_t *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        /* cancelled waiting sequences skip the queue: they are finished at
         * once and stop holding a queue slot */
        for (eng_seq_t **pp = &e->pending; *pp;) {
            eng_seq_t *s = *pp;
            if (!atomic_load(&s->cancel)) {
                pp = &s->next;
                continue;
            }
            *pp = s->next;
            e->n_pending--;
            s->next = e->running;
            e->running = s;
            e->n_running++;
        }
        e->pending_tail = NULL;
        for (eng_seq_t *s = e->pending; s; s = s->next) e->pending_tail = s;
        while (e->pending && e->n_running < e->o.max_running) {
            eng_seq_t *s = e->pending;
            e->pending = s->next;
            if (!e->pending) e->pending_tail = NULL;
            e->n_pending--;
            /* append to running: keeps round-robin order stable */
            s->next = NULL;
            eng_seq_t **pp = &e->running;
            while (*pp) pp = &(*pp)->next;
            *pp = s;
            e->n_running++;
        }
        if (e->stopping) {
            for (eng_seq_t *s = e->running; s; s = s->next) atomic_store(&s->cancel, true);
        }
        if (!e->running) {
            if (e->stopping) break;
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        /* snapshot the running list: only this thread unlinks from it, and
         * new sequences are appended at the tail, so walking by a saved
         * `next` taken before each step is safe */
        eng_seq_t *s = e->running;
        pthread_mutex_unlock(&e->mu);
        while (s) {
            pthread_mutex_lock(&e->mu);
            eng_seq_t *next = s->next;
            pthread_mutex_unlock(&e->mu);
            seq_step(e, s);
            s = next;
        }
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

eng_t *eng_new(sl_model_t *m, const eng_opts_t *opts, eng_event_fn fn, void *ctx, char *err,
               size_t errlen) {
    eng_t *e = calloc(1, sizeof *e);
    if (!e) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    const sl_hparams_t *hp = model_hparams(m);
    e->model = m;
    e->fn = fn;
    e->ctx = ctx;
    e->n_vocab = hp->n_vocab;
    if (opts) e->o = *opts;
    if (e->o.n_threads <= 0) e->o.n_threads = 1;
    if (e->o.n_ctx <= 0) e->o.n_ctx = hp->n_ctx_train > 0 ? SL_MIN(hp->n_ctx_train, 4096) : 4096;
    if (e->o.max_running <= 0) e->o.max_running = 8;
    if (e->o.max_queued <= 0) e->o.max_queued = 256;
    if (e->o.kv_type != SL_TYPE_F16) e->o.kv_type = SL_TYPE_F32;
    e->next_id = 1;
    e->logits = malloc((size_t)e->n_vocab * sizeof *e->logits);
    e->pool = sl_pool_new(e->o.n_threads);
    if (!e->logits || !e->pool) {
        sl_pool_free(e->pool);
        free(e->logits);
        free(e);
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->thread, NULL, eng_main, e) != 0) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        sl_pool_free(e->pool);
        free(e->logits);
        free(e);
        sl_err(err, errlen, "cannot start the engine thread");
        return NULL;
    }
    return e;
}

void eng_free(eng_t *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    /* waiting sequences move to running so the thread finishes them as
     * cancelled: every submitted sequence gets its FINISH */
    for (eng_seq_t *s = e->pending; s; s = s->next) atomic_store(&s->cancel, true);
    e->o.max_running = 1 << 30;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    sl_pool_free(e->pool);
    free(e->logits);
    free(e);
}

int eng_submit(eng_t *e, const eng_request_t *r, uint64_t *id, char *err, size_t errlen) {
    if (r->n_prompt == 0) return sl_err(err, errlen, "the prompt is empty");
    if (r->n_prompt >= (size_t)e->o.n_ctx)
        return sl_err(err, errlen,
                      "the prompt is %zu tokens long but the context holds %d tokens (including at least "
                      "one generated token)",
                      r->n_prompt, e->o.n_ctx);
    if (r->max_tokens < 1) return sl_err(err, errlen, "max_tokens must be at least 1");
    for (size_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= e->n_vocab)
            return sl_err(err, errlen, "prompt token id %d is outside the vocabulary (0..%d)",
                          (int)r->prompt[i], e->n_vocab - 1);
    eng_seq_t *s = calloc(1, sizeof *s);
    if (!s) return sl_err(err, errlen, "out of memory");
    s->smp = smp_new(&r->sampling, e->n_vocab, err, errlen);
    if (!s->smp) {
        free(s);
        return -1;
    }
    s->prompt = malloc(r->n_prompt * sizeof *s->prompt);
    s->stop_ids = r->n_stop_ids ? malloc(r->n_stop_ids * sizeof *s->stop_ids) : NULL;
    if (!s->prompt || (r->n_stop_ids && !s->stop_ids) ||
        smp_accept_prompt(s->smp, r->prompt, r->n_prompt) != 0) {
        seq_free(s);
        return sl_err(err, errlen, "out of memory");
    }
    memcpy(s->prompt, r->prompt, r->n_prompt * sizeof *s->prompt);
    if (r->n_stop_ids) memcpy(s->stop_ids, r->stop_ids, r->n_stop_ids * sizeof *s->stop_ids);
    s->n_prompt = r->n_prompt;
    s->n_stop_ids = r->n_stop_ids;
    s->max_tokens = r->max_tokens;
    s->user = r->user;
    atomic_init(&s->cancel, false);

    pthread_mutex_lock(&e->mu);
    if (e->stopping || e->n_pending >= e->o.max_queued) {
        pthread_mutex_unlock(&e->mu);
        seq_free(s);
        sl_err(err, errlen, "the server is busy: %d requests are waiting; retry shortly", e->o.max_queued);
        return ENG_EBUSY;
    }
    s->id = e->next_id++;
    /* the engine thread may finish and free s as soon as mu is released */
    if (id) *id = s->id;
    if (e->pending_tail) e->pending_tail->next = s;
    else e->pending = s;
    e->pending_tail = s;
    e->n_pending++;
    e->st.submitted++;
    e->st.prompt_tokens += r->n_prompt;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

void eng_cancel(eng_t *e, uint64_t id) {
    pthread_mutex_lock(&e->mu);
    for (eng_seq_t *s = e->running; s; s = s->next)
        if (s->id == id) atomic_store(&s->cancel, true);
    for (eng_seq_t *s = e->pending; s; s = s->next)
        if (s->id == id) atomic_store(&s->cancel, true);
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void eng_stats(eng_t *e, eng_stats_t *st) {
    pthread_mutex_lock(&e->mu);
    *st = e->st;
    st->running = e->n_running;
    st->queued = e->n_pending;
    st->live = e->n_running + e->n_pending;
    pthread_mutex_unlock(&e->mu);
}
