/*
 * engine.c — request queue + one engine thread per model, scheduling by
 * continuous batching over a paged KV cache with prefix caching (engine.h,
 * docs/engine.md).
 *
 * Lists: `pending` (FIFO of sequences waiting for admission: new ones at the
 * tail, preempted ones back at the head) and `running` (admitted, oldest
 * first). Both are linked under `mu`, because eng_cancel() walks them to
 * set a sequence's `cancel` flag (atomic: the engine thread reads it between
 * steps without the lock). Only the engine thread moves sequences between
 * the lists, reads `running` without the lock, frees sequences and touches
 * the model, the KV pool, the block manager (kvc) and the samplers.
 * Invariant: a sequence is in exactly one list from eng_submit() until the
 * engine thread unlinks it to emit its FINISH.
 *
 * One step:
 *   1. finish cancelled sequences (their blocks go back first);
 *   2. admit waiting sequences in order while a running slot is free and
 *      the KV blocks its prompt still needs (after prefix-cache reuse) are
 *      available — the head waits rather than being overtaken (FCFS, so
 *      nobody starves);
 *   3. plan the batch: one decode token per running sequence, then prompt
 *      chunks, within max_batch_tokens; each planned sequence gets the
 *      blocks its new positions need, copy-on-write of a shared partial
 *      block; when none are left the youngest running sequence is preempted
 *      (blocks released, tokens kept, recomputed when it is re-admitted);
 *      then speculative drafts for decoding sequences out of what is left;
 *   4. one model_forward_batch over every planned token;
 *   5. publish newly filled blocks to the prefix cache, fork waiting n>1
 *      siblings, sample and emit events (a drafted sequence position by
 *      position while the draft holds), finish what stopped.
 */
#include "engine/engine.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/base.h"
#include "base/pool.h"
#include "engine/kvcache.h"
#include "grammar/grammar.h"

#define ENG_CKPT_MAX 256 /* checkpoints per engine at most (the lookup scans them) */

const double eng_hist_bounds[ENG_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                  1.0,   2.5,  5.0,   10.0, 30.0, 60.0, 120.0};

/* A sequence's grammar (eng_grammar_t, copied) and its matcher. */
typedef struct eng_gram {
    int kind;
    const gram_vocab_t *vocab; /* to index against (the engine's when not given) */
    char *text; /* source, until the worker resolved it to ix */
    size_t len;
    gram_index_t *ix;  /* a reference */
    gram_matcher_t *m; /* created at the first sample (non-lazy) or at the trigger */
    char *err;         /* the worker could not build the index: finish with this */
    char *prefix;
    size_t prefix_len;
    /* lazy */
    bool lazy, off;    /* off: triggered but refused (or failed): unconstrained from then on */
    char **words, **start_words;
    size_t n_words, n_start_words, max_word;
    int32_t *trig_ids;
    size_t n_trig_ids;
    sl_buf_t out;      /* prefix + output bytes so far (lazy, until triggered) */
    bool start_open;   /* a start word may still match at the start */
} eng_gram_t;

/* A recurrent-state checkpoint (hybrid models): the state after the first
 * `pos` tokens (a block boundary) of a prefix whose chained block hash is
 * `key`, kept in ckpt_nb blocks of the KV pool that the store holds a
 * reference on (see "checkpoints" below); the hashes of the prefix's
 * pos / bs blocks (the last is key) are in e->ckpt_chain. */
typedef struct eng_ckpt {
    bool live;
    int pos;
    uint64_t key;
    uint64_t tick; /* last store or restore (LRU) */
} eng_ckpt_t;

typedef struct eng_seq {
    struct eng_seq *next;
    uint64_t id;
    void *user;
    int32_t *toks; /* prompt, then every sampled token */
    int n_toks, cap_toks;
    int n_prompt;
    int n_past;        /* positions whose K/V are in the blocks */
    int n_prompt_done; /* prompt tokens computed or reused so far (usage) */
    int n_cached;      /* prompt tokens reused from the prefix cache at admission */
    bool admitted;     /* admitted at least once (hit statistics count once) */
    int32_t *blocks;   /* block table: blocks[i] holds positions i*bs .. */
    int n_blocks, cap_blocks;
    int slot;          /* hybrid models: its recurrent state slot while running, else -1 */
    int n_hashed;       /* leading full blocks published to / found in the cache */
    /* hybrid models: a prefill checkpoint position chosen at admission (the
     * end of the cached block chain when it reached past the checkpoint
     * restored: likely a shared prefix's end), 0 = none; the checkpoint this
     * sequence keeps at its latest block boundary while generating (an
     * index into e->ckpts and the key it was stored under), -1 = none */
    int ckpt_extra;
    int ckpt_dec;
    uint64_t ckpt_dec_key;
    uint64_t last_hash; /* chained hash of block n_hashed-1 (seed when 0) */
    struct eng_seq *leader; /* n>1: same prompt, still prefilling: fork from it */
    int max_tokens;
    int n_generated;
    int32_t *stop_ids;
    size_t n_stop_ids;
    smp_t *smp;
    atomic_bool cancel;
    uint64_t t_submit, t_last; /* ns: submission, last token */
    int step_n;     /* tokens in the current step's batch (0: not planned) */
    int logit_row;  /* row of e->logits this step, -1 */
    /* prompt scoring (score_prompt requests) */
    bool score;
    int score_top;
    int n_scored;         /* prompt positions reported (starts at 1) */
    float *score_logits;  /* ENG_SCORE_CHUNK x n_vocab, while scoring */
    eng_gram_t *g;        /* grammar, or NULL */
    /* drawn ahead this step (pre_draw), in parallel with the others */
    bool drawn;
    int draw_rc;
    smp_result_t draw;
    /* reasoning budget (eng_request_t.think_*): think_in while a block is
     * open; think_used tokens counted in blocks so far; think_forced ids of
     * think_close emitted (forcing while 0 < think_forced < n_think_close,
     * or when it starts at the budget) */
    int think_budget, think_used;
    bool think_in;
    int32_t think_start, think_end;
    int32_t *think_close;
    size_t n_think_close, think_forced;
    int top_logprobs; /* alternatives a forced token reports */
    /* speculative decoding (see "speculative decoding" below): spec_on
     * when the sequence may draft; spec_hit / spec_seen decayed counts of
     * draft positions accepted / decided (the acceptance estimate);
     * spec_wait decode steps left without drafting, spec_cool the next
     * back-off, spec_probe: draft one token after a back-off; n_draft
     * draft tokens in this step's plan (copied to draft[] and to
     * toks[n_toks ..), which is scratch past n_toks); spec_logits
     * (1 + spec_max) rows for the verification pass */
    bool spec_on, spec_probe;
    double spec_hit, spec_seen;
    int spec_wait, spec_cool;
    int n_draft;
    int32_t *draft;
    float *spec_logits;
    /* n-gram index over toks: key (n, the n tokens) -> the latest index c
     * that followed them (c < n_toks); open addressing, key 0 = empty;
     * ng_done: continuation indexes 1 .. ng_done-1 are in */
    uint64_t *ng_key;
    int32_t *ng_pos;
    size_t ng_cap, ng_used;
    int ng_done;
} eng_seq_t;

/* Work for the grammar worker: resolve a sequence's index before it is
 * queued for admission, or answer an eng_grammar_prepare(). */
typedef struct prep_item {
    struct prep_item *next;
    eng_seq_t *seq;       /* a sequence, or NULL for a prepare request: */
    int kind;
    char *text, *prefix;
    size_t len, prefix_len;
    void *user;
    const gram_vocab_t *vocab;
} prep_item_t;

/* A queued embedding request (eng_embed); linked under mu. */
typedef struct eng_emb {
    struct eng_emb *next;
    uint64_t id;
    eng_embed_req_t r;
    int n_taken;       /* inputs given to model calls so far (engine thread) */
    int last_slot;     /* its last input's place in the current model call (engine thread) */
    int n_tokens_done; /* their tokens */
    atomic_bool cancel;
} eng_emb_t;

struct eng {
    sl_model_t *model;
    bool embeds;       /* an embedding model (model_embed_dim > 0): eng_embed only, no KV cache */
    eng_opts_t o;
    sl_type_t kv_type;
    int n_vocab;
    eng_event_fn fn;
    void *ctx;
    sl_pool_t *pool;
    sl_kv_pool_t *kvp; /* engine thread */
    kvc_t *kvc;        /* engine thread */
    int bs;            /* positions per block */
    size_t block_bytes; /* of one block (K and V, all layers) */
    float *logits;     /* max_running × n_vocab, engine thread */
    float *tmp_logits; /* n_vocab: a copy for a sibling sampling from a shared row */
    eng_seq_t **plan;  /* max_running: the current step's sequences */
    eng_seq_t **draw_seqs; /* max_running: those drawn ahead (pre_draw) */
    sl_batch_seq_t *batch;
    /* hybrid models (model_state_floats > 0): max_running recurrent state
     * slots of state_floats each; slot_free[0..n_slot_free) the free ones
     * (engine thread) */
    size_t state_floats;
    float *states;
    int *slot_free, n_slot_free;
    /* hybrid models: the checkpoint store (engine thread). ckpt_nb pool
     * blocks per checkpoint (0: no checkpoints), ckpt_max entries, entry i's
     * blocks at ckpt_blocks[i × ckpt_nb ..]; prefill checkpoints every
     * ckpt_every tokens (a multiple of bs; INT_MAX: none) */
    int ckpt_nb, ckpt_max, ckpt_every, n_ckpt;
    eng_ckpt_t *ckpts;
    int32_t *ckpt_blocks;
    uint64_t *ckpt_chain;         /* ckpt_max × chain_cap: entry i's block hashes */
    int chain_cap;                /* blocks of a context */
    uint64_t ckpt_seen_evictions; /* the block manager's evictions at the last sweep */
    uint64_t ckpt_tick, ckpt_stored, ckpt_hits, ckpt_evictions;
    /* speculative decoding: on for this engine, longest draft; spec_t[n]
     * the decayed mean seconds of a model pass over n tokens of one
     * decoding sequence alone (the draft cost model), 0 = not measured */
    bool spec;
    int spec_max;
    double spec_t[ENG_SPEC_MAX_LIMIT + 2];
    double spec_ghit, spec_gseen; /* all sequences' decayed draft positions accepted / decided */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool stopping;
    uint64_t next_id;
    eng_seq_t *pending, *pending_tail;
    eng_seq_t *running; /* admission order; linked under mu */
    int n_pending, n_running;
    eng_stats_t st; /* under mu */
    uint64_t win_t0, win_gen; /* tokens/s window (under mu) */
    /* grammars */
    const gram_vocab_t *gv;  /* NULL: no grammars */
    uint32_t *mask;          /* gram_mask_words(gv), engine thread */
    pthread_t prep_thread;
    bool prep_started;
    pthread_cond_t prep_cv;  /* under mu */
    prep_item_t *prep_head, *prep_tail; /* under mu */
    eng_seq_t *prep_cur;     /* the sequence the worker is resolving (under mu) */
    int n_prep;              /* sequences with the worker (queued or in hand), under mu */
    /* embeddings */
    eng_emb_t *emb_head, *emb_tail; /* under mu; only the engine thread unlinks */
    int n_emb;                      /* under mu */
    sl_embed_seq_t *emb_seqs;       /* ENG_EMBED_BATCH each, engine thread */
    eng_emb_t **emb_of;             /* ENG_EMBED_BATCH each: the request of a batch slot, */
    int *emb_idx;                   /* and the input it is */
    float *emb_out;                 /* ENG_EMBED_BATCH × dim */
};

/* ------------------------------------------------------------- helpers */

int eng_kv_from_name(const char *name) {
    if (!name) return -1;
    if (!strcasecmp(name, "f16")) return ENG_KV_F16;
    if (!strcasecmp(name, "f32")) return ENG_KV_F32;
    if (!strcasecmp(name, "q8_0")) return ENG_KV_Q8_0;
    return -1;
}

int eng_parse_mem(const char *s, size_t *out) {
    if (!s || !*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0) || !isfinite(v)) return -1;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (mul > 1 && (*end == 'i' || *end == 'I')) end++;
    if (*end == 'b' || *end == 'B') end++;
    if (*end) return -1;
    v *= mul;
    if (v > 1e18) return -1;
    *out = (size_t)v;
    return 0;
}

static void hist_add(eng_hist_t *h, double sec) {
    int i = 0;
    while (i < ENG_HIST_BUCKETS && sec > eng_hist_bounds[i]) i++;
    h->count[i]++;
    h->sum += sec;
    h->n++;
}

static void gram_state_free(eng_gram_t *g) {
    if (!g) return;
    gram_matcher_free(g->m);
    gram_index_release(g->ix);
    free(g->text);
    free(g->err);
    free(g->prefix);
    for (size_t i = 0; i < g->n_words; i++) free(g->words[i]);
    for (size_t i = 0; i < g->n_start_words; i++) free(g->start_words[i]);
    free(g->words);
    free(g->start_words);
    free(g->trig_ids);
    sl_buf_free(&g->out);
    free(g);
}

static void seq_free(eng_seq_t *s) {
    if (!s) return;
    gram_state_free(s->g);
    free(s->toks);
    free(s->blocks);
    free(s->stop_ids);
    free(s->think_close);
    free(s->score_logits);
    free(s->draft);
    free(s->spec_logits);
    free(s->ng_key);
    free(s->ng_pos);
    smp_free(s->smp);
    free(s);
}

int eng_n_ctx(const eng_t *e) {
    return e->o.n_ctx;
}

int eng_n_vocab(const eng_t *e) {
    return e->n_vocab;
}

/* The recurrent state of a running sequence of a hybrid model, or NULL. */
static float *seq_state(const eng_t *e, const eng_seq_t *s) {
    return s->slot >= 0 ? e->states + (size_t)s->slot * e->state_floats : NULL;
}

/* ------------------------------------------------ state checkpoints
 *
 * A hybrid model's cached KV blocks are useless without the recurrent
 * state at the same position, which is the whole history and cannot be
 * rebuilt from them. So while a sequence runs, the engine copies its state
 * at chosen block boundaries into checkpoints keyed by the prefix cache's
 * chained hash there; a later sequence whose prompt's cached blocks reach a
 * checkpoint restores it and prefills from that position.
 *
 * Memory: a checkpoint's bytes live in ckpt_nb blocks of the KV pool (their
 * K and V regions back to back), taken through the block manager with one
 * reference each, so checkpoints come out of the --kv-mem budget and
 * compete with the blocks: they hold at most half the pool (ckpt_max), a
 * new one evicts the least recently used one when the store is full, and a
 * block allocation that finds no free or cached block evicts checkpoints
 * (LRU) before any sequence is preempted. A checkpoint one of whose
 * prefix's blocks left the cache can never be reached again (the lookup
 * walks the chain from the first block, so it is never restored) and is
 * dropped right after the plan or the store that evicted blocks
 * (ckpt_sweep). Invariants: n_ckpt = live entries; the store holds exactly
 * n_ckpt × ckpt_nb block references. */

static int32_t *ckpt_blocks(const eng_t *e, int i) {
    return e->ckpt_blocks + (size_t)i * (size_t)e->ckpt_nb;
}

/* Copies a state into checkpoint i (save) or out of it. */
static void ckpt_copy(eng_t *e, int i, float *state, bool save) {
    uint8_t *p = (uint8_t *)state;
    size_t left = e->state_floats * sizeof(float);
    const int32_t *bl = ckpt_blocks(e, i);
    for (int k = 0; k < e->ckpt_nb && left; k++)
        for (int part = 0; part < 2 && left; part++) {
            size_t n;
            uint8_t *d = model_kv_pool_block_data(e->kvp, bl[k], part, &n);
            if (!d) continue;
            n = SL_MIN(n, left);
            if (save)
                memcpy(d, p, n);
            else
                memcpy(p, d, n);
            p += n;
            left -= n;
        }
}

static void ckpt_drop(eng_t *e, int i) {
    const int32_t *bl = ckpt_blocks(e, i);
    for (int k = 0; k < e->ckpt_nb; k++)
        kvc_unref(e->kvc, bl[k]);
    e->ckpts[i].live = false;
    e->n_ckpt--;
    e->ckpt_evictions++;
}

/* Drops the least recently used checkpoint; false when there is none. */
static bool ckpt_evict_lru(eng_t *e) {
    int v = -1;
    for (int i = 0; i < e->ckpt_max; i++)
        if (e->ckpts[i].live && (v < 0 || e->ckpts[i].tick < e->ckpts[v].tick)) v = i;
    if (v < 0) return false;
    ckpt_drop(e, v);
    return true;
}

static uint64_t *ckpt_chain(const eng_t *e, int i) {
    return e->ckpt_chain + (size_t)i * (size_t)e->chain_cap;
}

/* After blocks were evicted: drops the checkpoints one of whose prefix's
 * blocks is no longer cached. */
static void ckpt_sweep(eng_t *e) {
    kvc_counts_t kc;
    kvc_counts(e->kvc, &kc);
    if (kc.evictions == e->ckpt_seen_evictions) return;
    e->ckpt_seen_evictions = kc.evictions;
    for (int i = 0; i < e->ckpt_max && e->n_ckpt; i++) {
        if (!e->ckpts[i].live) continue;
        const uint64_t *ch = ckpt_chain(e, i);
        for (int b = 0; b < e->ckpts[i].pos / e->bs; b++)
            if (!kvc_contains(e->kvc, ch[b])) {
                ckpt_drop(e, i);
                break;
            }
    }
}

static int ckpt_find(const eng_t *e, uint64_t key, int pos) {
    for (int i = 0; i < e->ckpt_max && e->n_ckpt; i++)
        if (e->ckpts[i].live && e->ckpts[i].key == key && e->ckpts[i].pos == pos) return i;
    return -1;
}

/* Blocks an allocation can get: free, cached, or held by checkpoints. */
static int blocks_available(const eng_t *e) {
    return kvc_available(e->kvc) + e->n_ckpt * e->ckpt_nb;
}

/* A block for a sequence: free, else the LRU cached one, else one freed by
 * evicting checkpoints; -1 when the pool is all in sequences' tables. */
static int block_alloc(eng_t *e) {
    for (;;) {
        const int b = kvc_alloc(e->kvc);
        if (b >= 0 || !ckpt_evict_lru(e)) return b;
    }
}

/* Restores checkpoint i into s's state slot. */
static void ckpt_restore(eng_t *e, int i, eng_seq_t *s) {
    ckpt_copy(e, i, seq_state(e, s), false);
    e->ckpts[i].tick = ++e->ckpt_tick;
    e->ckpt_hits++;
}

/* Stores s's state at n_past (a block boundary whose block chain is
 * published: last_hash is its key). A decode checkpoint replaces the one
 * s stored at its previous block boundary (only the latest is worth
 * keeping: a resent conversation continues from its end). Best effort:
 * nothing is stored when the blocks cannot be had without taking them from
 * a sequence. */
static void ckpt_save(eng_t *e, eng_seq_t *s, bool decode) {
    const int pos = s->n_past;
    const uint64_t key = s->last_hash;
    const bool own = s->ckpt_dec >= 0 && e->ckpts[s->ckpt_dec].live &&
                     e->ckpts[s->ckpt_dec].key == s->ckpt_dec_key;
    int i = ckpt_find(e, key, pos);
    if (i >= 0) { /* already there (an equal prefix stored it) */
        e->ckpts[i].tick = ++e->ckpt_tick;
        if (decode && own && s->ckpt_dec != i) ckpt_drop(e, s->ckpt_dec);
        if (decode && s->ckpt_dec != i) s->ckpt_dec = -1; /* not ours to move on */
        return;
    }
    if (decode && own) {
        i = s->ckpt_dec; /* the same blocks, the new state */
    } else {
        if (e->n_ckpt >= e->ckpt_max && !ckpt_evict_lru(e)) return;
        i = 0;
        while (e->ckpts[i].live)
            i++; /* a free entry: n_ckpt < ckpt_max */
        int32_t *bl = ckpt_blocks(e, i);
        for (int k = 0; k < e->ckpt_nb; k++) {
            /* free or cached blocks only: sequences' tables are never
             * touched, and other checkpoints only when the pool is full */
            int b = kvc_alloc(e->kvc);
            while (b < 0 && ckpt_evict_lru(e))
                b = kvc_alloc(e->kvc);
            if (b < 0) {
                while (k > 0)
                    kvc_unref(e->kvc, bl[--k]);
                return;
            }
            bl[k] = b;
        }
        e->ckpts[i].live = true;
        e->n_ckpt++;
    }
    e->ckpts[i].pos = pos;
    e->ckpts[i].key = key;
    e->ckpts[i].tick = ++e->ckpt_tick;
    uint64_t *ch = ckpt_chain(e, i), h = KVC_HASH_SEED;
    for (int b = 0; b < pos / e->bs; b++) /* pos ≤ n_ctx: within chain_cap */
        ch[b] = h = kvc_hash(h, s->toks + (size_t)b * (size_t)e->bs, e->bs);
    ckpt_copy(e, i, seq_state(e, s), true);
    e->ckpt_stored++;
    ckpt_sweep(e); /* its blocks may have been others' prefixes */
    if (decode) {
        s->ckpt_dec = i;
        s->ckpt_dec_key = key;
    }
}

/* The prompt's longest block-aligned prefix a later request can reuse
 * (the last prompt token is always computed). */
static int ckpt_last(const eng_t *e, const eng_seq_t *s) {
    return (s->n_prompt - 1) / e->bs * e->bs;
}

/* The next prefill checkpoint position after n_past (where the step's
 * chunk must end), or 0. */
static int ckpt_next(const eng_t *e, const eng_seq_t *s) {
    if (!e->ckpt_nb || s->score || s->slot < 0) return 0;
    const int last = ckpt_last(e, s);
    if (s->n_past >= last) return 0;
    int next = last;
    if (e->ckpt_every < last) next = SL_MIN(next, (s->n_past / e->ckpt_every + 1) * e->ckpt_every);
    if (s->ckpt_extra > s->n_past) next = SL_MIN(next, s->ckpt_extra);
    return next;
}

/* After a step: s's state at n_past is a checkpoint when n_past is one of
 * its prefill positions, or a block boundary past the prompt's last
 * (generation, or recomputing generated tokens after a preemption). */
static void ckpt_after_step(eng_t *e, eng_seq_t *s) {
    if (!e->ckpt_nb || s->score || s->slot < 0 || s->n_past == 0 || s->n_past % e->bs ||
        s->n_hashed * e->bs != s->n_past)
        return;
    const int last = ckpt_last(e, s);
    if (s->n_past > last)
        ckpt_save(e, s, true);
    else if (s->n_past == last || s->n_past % e->ckpt_every == 0 || s->n_past == s->ckpt_extra)
        ckpt_save(e, s, false);
}

/* Drops the sequence's blocks (they become cached or free) and its state
 * slot (every path that ends or suspends a sequence comes here: finish,
 * cancel, error, preemption). */
static void seq_release(eng_t *e, eng_seq_t *s) {
    if (s->slot >= 0) {
        e->slot_free[e->n_slot_free++] = s->slot;
        s->slot = -1;
    }
    for (int i = 0; i < s->n_blocks; i++) kvc_unref(e->kvc, s->blocks[i]);
    s->n_blocks = 0;
    s->n_past = 0;
    s->n_hashed = 0;
    s->last_hash = KVC_HASH_SEED;
}

/* Unlinks s from the running list (engine thread; takes mu). */
static void running_unlink(eng_t *e, eng_seq_t *s) {
    pthread_mutex_lock(&e->mu);
    eng_seq_t **pp = &e->running;
    while (*pp && *pp != s) pp = &(*pp)->next;
    if (*pp) {
        *pp = s->next;
        e->n_running--;
    }
    s->next = NULL;
    pthread_mutex_unlock(&e->mu);
}

/* Reuses the cached full blocks of s's tokens (never all of them: the last
 * token is always computed, its logits are needed). s holds no blocks.
 * A hybrid model's sequence keeps only the blocks up to the longest prefix
 * with a state checkpoint (none without one), whose index is returned for
 * the caller to restore into s's slot (-1: none; s starts at 0). */
static int seq_match_prefix(eng_t *e, eng_seq_t *s) {
    if (e->o.no_prefix_cache) return -1;
    const int max_blocks = (s->n_toks - 1) / e->bs;
    int ck = -1, ck_blocks = 0;
    uint64_t ck_hash = KVC_HASH_SEED;
    while (s->n_blocks < max_blocks) {
        const int b = kvc_lookup(e->kvc, s->last_hash, s->toks + (size_t)s->n_blocks * (size_t)e->bs);
        if (b < 0) break;
        s->last_hash = kvc_hash(s->last_hash, s->toks + (size_t)s->n_blocks * (size_t)e->bs, e->bs);
        s->blocks[s->n_blocks++] = b;
        s->n_hashed = s->n_blocks;
        if (e->state_floats) {
            const int c = ckpt_find(e, s->last_hash, s->n_blocks * e->bs);
            if (c >= 0) {
                ck = c;
                ck_blocks = s->n_blocks;
                ck_hash = s->last_hash;
            }
        }
    }
    if (e->state_floats) {
        /* the cached chain reached past the checkpoint: its end is likely
         * the end of a prefix others share too; checkpoint it this time */
        s->ckpt_extra = s->n_blocks > ck_blocks ? s->n_blocks * e->bs : 0;
        while (s->n_blocks > ck_blocks)
            kvc_unref(e->kvc, s->blocks[--s->n_blocks]);
        s->n_hashed = ck_blocks;
        s->last_hash = ck_hash;
    }
    s->n_past = s->n_blocks * e->bs;
    return ck;
}

/* Siblings waiting to fork from s prefill on their own instead. */
static void detach_followers(eng_t *e, eng_seq_t *s) {
    for (eng_seq_t *f = e->running; f; f = f->next)
        if (f->leader == s) {
            f->leader = NULL;
            const int ck = seq_match_prefix(e, f);
            if (ck >= 0) ckpt_restore(e, ck, f);
        }
}

/* Copies the block counts into the stats (other threads read those). */
static void publish_kv_counts(eng_t *e) {
    kvc_counts_t kc;
    kvc_counts(e->kvc, &kc);
    pthread_mutex_lock(&e->mu);
    e->st.state_slots_used = e->state_floats ? e->o.max_running - e->n_slot_free : 0;
    e->st.kv_blocks_ckpt = e->n_ckpt * e->ckpt_nb;
    e->st.kv_blocks_used = kc.used - e->st.kv_blocks_ckpt;
    e->st.ckpt_count = e->n_ckpt;
    e->st.ckpt_bytes = (uint64_t)e->st.kv_blocks_ckpt * e->block_bytes;
    e->st.ckpt_stored = e->ckpt_stored;
    e->st.ckpt_hits = e->ckpt_hits;
    e->st.ckpt_evictions = e->ckpt_evictions;
    e->st.kv_blocks_cached = kc.cached;
    e->st.kv_blocks_free = kc.free;
    e->st.evictions = kc.evictions;
    pthread_mutex_unlock(&e->mu);
}

/* Emits FINISH and frees s, which is in no list. Blocks are returned
 * before the event: a client that sees FINISH sees the memory free. */
static void seq_emit_finish(eng_t *e, eng_seq_t *s, eng_finish_t why, const char *msg) {
    seq_release(e, s);
    publish_kv_counts(e);
    pthread_mutex_lock(&e->mu);
    e->st.finished++;
    if (why == ENG_FINISH_CANCELLED) e->st.cancelled++;
    pthread_mutex_unlock(&e->mu);
    eng_event_t ev = {0};
    ev.type = ENG_EV_FINISH;
    ev.id = s->id;
    ev.user = s->user;
    ev.t_ns = sl_now_ns();
    ev.finish = why;
    ev.error = msg;
    /* what was computed: a sequence cancelled during prefill reports only
     * the prompt tokens already fed (or found in the cache) */
    ev.usage.prompt_tokens = s->n_prompt_done;
    ev.usage.cached_tokens = SL_MIN(s->n_cached, s->n_prompt_done);
    ev.usage.completion_tokens = s->n_generated;
    e->fn(&ev, e->ctx);
    seq_free(s);
}

/* Finishes a running sequence. */
static void seq_finish(eng_t *e, eng_seq_t *s, eng_finish_t why, const char *msg) {
    running_unlink(e, s);
    detach_followers(e, s);
    seq_emit_finish(e, s, why, msg);
}

/* Moves a running sequence back to the head of the queue without its
 * blocks; it keeps its tokens, sampler and counters and is recomputed
 * (mostly from the prefix cache) when re-admitted. */
static void seq_preempt(eng_t *e, eng_seq_t *s) {
    running_unlink(e, s);
    detach_followers(e, s);
    seq_release(e, s);
    s->leader = NULL;
    s->step_n = 0;
    pthread_mutex_lock(&e->mu);
    s->next = e->pending;
    e->pending = s;
    if (!e->pending_tail) e->pending_tail = s;
    e->n_pending++;
    e->st.preemptions++;
    pthread_mutex_unlock(&e->mu);
}

static bool is_stop(const eng_seq_t *s, int32_t id) {
    for (size_t i = 0; i < s->n_stop_ids; i++)
        if (s->stop_ids[i] == id) return true;
    return false;
}

/* Blocks for positions up to `end` (exclusive), and a private copy of a
 * shared partly filled block about to be written. false when the pool has
 * no block left (what was taken stays with s). */
static bool seq_reserve(eng_t *e, eng_seq_t *s, int end) {
    if (s->n_past % e->bs != 0) {
        const int i = s->n_past / e->bs;
        const int old = s->blocks[i];
        if (kvc_refcount(e->kvc, old) > 1) {
            const int nb = block_alloc(e);
            if (nb < 0) return false;
            model_kv_pool_copy(e->kvp, nb, old, s->n_past % e->bs);
            kvc_unref(e->kvc, old);
            s->blocks[i] = nb;
        }
    }
    while (s->n_blocks * e->bs < end) {
        const int b = block_alloc(e);
        if (b < 0) return false;
        s->blocks[s->n_blocks++] = b;
    }
    return true;
}

static int seq_push_token(eng_seq_t *s, int32_t id) {
    if (s->n_toks == s->cap_toks) {
        const int cap = s->cap_toks * 2;
        int32_t *t = realloc(s->toks, (size_t)cap * sizeof *t);
        if (!t) return -1;
        s->toks = t;
        s->cap_toks = cap;
    }
    s->toks[s->n_toks++] = id;
    return 0;
}

/* ------------------------------------------------ speculative decoding
 *
 * Single-stream decode reads every weight once per token; a pass over
 * 1 + k tokens of one sequence reads them once too. So a decoding
 * sequence that can guess its next tokens feeds its last token plus a
 * draft of k guesses in one step, with logits at each of the 1 + k
 * positions, and then samples position by position exactly as without
 * speculation (seq_sample: grammar, penalties, bias, logprobs, stops,
 * max_tokens): while the token drawn equals the draft token there, the
 * next position's logits are valid and the next draw is made from them;
 * the first draw that differs (or the last position) ends the step.
 *
 * The rule: drawing y from the sampler's distribution p and keeping the
 * draft token x iff y == x accepts x with probability p(x), and on a
 * rejection y is distributed as p with x removed and renormalised — the
 * standard speculative-sampling rule for a point-mass draft, with one
 * draw per emitted token, so the output (even a seeded stream) is the one
 * the sequence would have produced without speculation.
 *
 * The drafter: prompt lookup. The sequence's tokens are indexed by n-gram
 * (n = 1 .. ENG_NGRAM_MAX) -> the latest position that followed it; the
 * draft follows the latest earlier occurrence of the longest suffix found,
 * continuing periodically when that occurrence runs into the suffix
 * itself (a repetition loop). Each new token costs ENG_NGRAM_MAX inserts,
 * a lookup ENG_NGRAM_MAX probes: nothing scales with the prompt.
 */

#define ENG_NGRAM_MAX 3

static uint64_t ngram_hash(const int32_t *t, int n) {
    uint64_t h = 0x9E3779B97F4A7C15ull * (uint64_t)(n + 1);
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)(uint32_t)t[i];
        h *= 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    return h | 1; /* 0 marks an empty slot */
}

/* Slot of key in s's table (its own, or the empty one it would take). */
static size_t ngram_slot(const eng_seq_t *s, uint64_t key) {
    size_t i = (size_t)(key >> 7) & (s->ng_cap - 1);
    while (s->ng_key[i] && s->ng_key[i] != key) i = (i + 1) & (s->ng_cap - 1);
    return i;
}

static int ngram_grow(eng_seq_t *s, size_t need) {
    if (need * 2 <= s->ng_cap) return 0;
    size_t cap = s->ng_cap ? s->ng_cap : 256;
    while (need * 2 > cap) cap *= 2;
    uint64_t *k = calloc(cap, sizeof *k);
    int32_t *p = malloc(cap * sizeof *p);
    if (!k || !p) {
        free(k);
        free(p);
        return -1;
    }
    uint64_t *ok = s->ng_key;
    int32_t *op = s->ng_pos;
    const size_t ocap = s->ng_cap;
    s->ng_key = k;
    s->ng_pos = p;
    s->ng_cap = cap;
    for (size_t i = 0; i < ocap; i++)
        if (ok[i]) {
            const size_t j = ngram_slot(s, ok[i]);
            s->ng_key[j] = ok[i];
            s->ng_pos[j] = op[i];
        }
    free(ok);
    free(op);
    return 0;
}

/* Brings the index up to s's tokens: every n-gram that ends before the
 * last token maps to the index after it (the latest occurrence wins). */
static int ngram_update(eng_seq_t *s) {
    if (s->ng_done < 1) s->ng_done = 1;
    for (; s->ng_done < s->n_toks; s->ng_done++) {
        const int c = s->ng_done;
        if (ngram_grow(s, s->ng_used + ENG_NGRAM_MAX) != 0) return -1;
        for (int n = 1; n <= ENG_NGRAM_MAX && n <= c; n++) {
            const uint64_t key = ngram_hash(s->toks + c - n, n);
            const size_t i = ngram_slot(s, key);
            if (!s->ng_key[i]) {
                s->ng_key[i] = key;
                s->ng_used++;
            }
            s->ng_pos[i] = c;
        }
    }
    return 0;
}

/* Up to max draft tokens after s's tokens (into out); how many. */
static int ngram_draft(eng_seq_t *s, int32_t *out, int max) {
    if (max <= 0 || s->n_toks < 2 || ngram_update(s) != 0 || !s->ng_cap) return 0;
    const int L = s->n_toks;
    for (int n = SL_MIN(ENG_NGRAM_MAX, L - 1); n >= 1; n--) {
        const int32_t *suf = s->toks + L - n;
        const size_t i = ngram_slot(s, ngram_hash(suf, n));
        if (!s->ng_key[i]) continue;
        const int c = s->ng_pos[i]; /* n <= c < L */
        if (memcmp(s->toks + c - n, suf, (size_t)n * sizeof *suf) != 0) continue; /* a hash collision */
        const int period = L - c;
        for (int j = 0; j < max; j++) out[j] = j < period ? s->toks[c + j] : out[j - period];
        return max;
    }
    return 0;
}

/* The policy. A step over 1 + k tokens of one sequence costs cost(k)
 * plain decode steps (measured: spec_cost), and emits 1 + a tokens, a the
 * accepted ones. With a per-position acceptance estimate p (the
 * sequence's decayed counts, with a prior of weight 2 at the engine's
 * recent rate over all sequences, 0.8 before any), the expected tokens are 1 + p + ... + p^k, so the
 * draft length is the k <= kmax that maximises that over cost(k); none
 * when no k beats a plain step by 5 %. Then the sequence waits 4 decode
 * steps (8, 16 ... 256 after each further refusal) and probes with one
 * draft token, whose outcome updates p. A sequence whose drafts never hit
 * thus costs a one-token probe every 256 steps, next to nothing. */
static double spec_cost(const eng_t *e, int k) {
    /* never below 1 + k/10: timing noise (a preempted thread in a plain
     * pass) must not make extra rows look free */
    if (e->spec_t[1] > 0 && e->spec_t[k + 1] > 0) return SL_MAX(e->spec_t[k + 1] / e->spec_t[1], 1.0 + 0.1 * k);
    return 1.0 + 0.5 * k; /* not measured yet: a guess between memory- and compute-bound */
}

static int spec_choose(const eng_t *e, eng_seq_t *s, int kmax) {
    if (e->o.spec_draft && !e->o.spec_draft_policy) return kmax; /* the test hook drafts every step */
    const double m = (e->spec_ghit + 0.8) / (e->spec_gseen + 1.0);
    const double p = (s->spec_hit + 2.0 * m) / (s->spec_seen + 2.0);
    int best = 0;
    double best_v = 1.05, tok = 1.0, pk = 1.0;
    for (int k = 1; k <= kmax; k++) {
        pk *= p;
        tok += pk;
        const double v = tok / spec_cost(e, k);
        if (v > best_v) {
            best_v = v;
            best = k;
        }
    }
    if (best == 0 && s->spec_probe) best = 1;
    s->spec_probe = false;
    if (best == 0) {
        s->spec_wait = s->spec_cool;
        s->spec_cool = SL_MIN(s->spec_cool * 2, 256);
        s->spec_probe = true;
    }
    return best;
}

/* After a verification of k drafted tokens of which acc were accepted:
 * acc positions held, and one failed unless all held. */
static void spec_adapt(eng_t *e, eng_seq_t *s, int k, int acc) {
    s->spec_hit = 0.8 * s->spec_hit + acc;
    s->spec_seen = 0.8 * s->spec_seen + acc + (acc < k);
    e->spec_ghit = 0.99 * e->spec_ghit + acc;
    e->spec_gseen = 0.99 * e->spec_gseen + acc + (acc < k);
    if (acc > 0) s->spec_cool = 4;
}

/* ------------------------------------------------------------ grammars */

/* Creates g's matcher and advances it over bytes (the prefix, or a lazy
 * grammar's output from its trigger). 0, or -1 with err. */
static int gram_start(eng_gram_t *g, const char *bytes, size_t n, char *err, size_t errlen) {
    g->m = gram_matcher_new(g->ix, err, errlen);
    if (!g->m) return -1;
    if (n && gram_matcher_accept_bytes(g->m, bytes, n) != 0) {
        gram_matcher_free(g->m);
        g->m = NULL;
        return sl_err(err, errlen, "the grammar does not accept the text the output continues (%zu bytes)", n);
    }
    return 0;
}

/* Lazy grammar: appends text to the output so far and looks for a trigger
 * (trigger says the text is a trigger id's); on one, the matcher starts from
 * the trigger's first byte. */
static void gram_lazy_feed(eng_gram_t *g, const char *text, size_t n, bool trigger) {
    if (g->m || g->off) return;
    const size_t old = g->out.len;
    if (n && sl_buf_append(&g->out, text, n) != 0) {
        g->off = true;
        return;
    }
    if (g->out.len == 0) return;
    const char *o = g->out.data;
    size_t at = SIZE_MAX;
    if (trigger) at = old;
    if (at == SIZE_MAX && g->start_open) {
        size_t q = 0;
        while (q < g->out.len && (o[q] == ' ' || o[q] == '\t' || o[q] == '\n' || o[q] == '\r')) q++;
        bool maybe = q == g->out.len;
        for (size_t k = 0; k < g->n_start_words && at == SIZE_MAX && q < g->out.len; k++) {
            const size_t wl = strlen(g->start_words[k]), have = g->out.len - q;
            if (memcmp(o + q, g->start_words[k], SL_MIN(wl, have)) != 0) continue;
            if (have >= wl) at = q;
            else maybe = true;
        }
        if (at == SIZE_MAX && !maybe) g->start_open = false;
    }
    if (at == SIZE_MAX && g->n_words) {
        /* a new match ends in the new text */
        const size_t from = old + 1 > g->max_word ? old + 1 - g->max_word : 0;
        for (size_t k = 0; k < g->n_words; k++) {
            const char *hit = memmem(o + from, g->out.len - from, g->words[k], strlen(g->words[k]));
            if (hit && (size_t)(hit - o) < at) at = (size_t)(hit - o);
        }
    }
    if (at == SIZE_MAX) return;
    char err[SL_ERR_MAX];
    if (gram_start(g, o + at, g->out.len - at, err, sizeof err) != 0) g->off = true; /* unconstrained */
    sl_buf_free(&g->out);
}

/* The request's grammar, copied. NULL + err. */
static eng_gram_t *gram_state_new(eng_t *e, const eng_grammar_t *r, char *err, size_t errlen) {
    if (!e->gv) {
        sl_err(err, errlen, "constrained generation is not available for this model (no grammar vocabulary)");
        return NULL;
    }
    if (r->kind < GRAM_SRC_GBNF || r->kind > GRAM_SRC_JSON_OBJECT) {
        sl_err(err, errlen, "unknown grammar kind %d", r->kind);
        return NULL;
    }
    if (r->vocab && gram_vocab_size(r->vocab) != (size_t)e->n_vocab) {
        sl_err(err, errlen, "the grammar vocabulary has %zu tokens, the model %d", gram_vocab_size(r->vocab),
               e->n_vocab);
        return NULL;
    }
    eng_gram_t *g = calloc(1, sizeof *g);
    if (!g) goto oom;
    g->kind = r->kind;
    g->vocab = r->vocab ? r->vocab : e->gv;
    if (r->index) {
        if (gram_index_retain(r->index) != 0) {
            free(g);
            sl_err(err, errlen, "the grammar index was not made by gram_index_cached");
            return NULL;
        }
        g->ix = r->index;
    } else {
        const bool has_text = r->kind != GRAM_SRC_JSON_ANY && r->kind != GRAM_SRC_JSON_OBJECT;
        if (has_text && !r->text) {
            free(g);
            sl_err(err, errlen, "the grammar has no source text");
            return NULL;
        }
        g->len = has_text ? r->len : 0;
        if (!(g->text = malloc(g->len + 1))) goto oom;
        if (g->len) memcpy(g->text, r->text, g->len);
        g->text[g->len] = 0;
    }
    if (r->prefix_len) {
        if (!(g->prefix = malloc(r->prefix_len))) goto oom;
        memcpy(g->prefix, r->prefix, r->prefix_len);
        g->prefix_len = r->prefix_len;
    }
    g->lazy = r->n_trigger_words || r->n_start_words || r->n_trigger_ids;
    if (r->n_trigger_words && !(g->words = calloc(r->n_trigger_words, sizeof *g->words))) goto oom;
    for (size_t i = 0; i < r->n_trigger_words; i++) {
        if (!r->trigger_words[i] || !r->trigger_words[i][0]) continue;
        if (!(g->words[g->n_words] = sl_strdup(r->trigger_words[i]))) goto oom;
        g->max_word = SL_MAX(g->max_word, strlen(g->words[g->n_words]));
        g->n_words++;
    }
    if (r->n_start_words && !(g->start_words = calloc(r->n_start_words, sizeof *g->start_words))) goto oom;
    for (size_t i = 0; i < r->n_start_words; i++) {
        if (!r->start_words[i] || !r->start_words[i][0]) continue;
        if (!(g->start_words[g->n_start_words] = sl_strdup(r->start_words[i]))) goto oom;
        g->n_start_words++;
    }
    g->start_open = g->n_start_words > 0;
    if (r->n_trigger_ids) {
        if (!(g->trig_ids = malloc(r->n_trigger_ids * sizeof *g->trig_ids))) goto oom;
        memcpy(g->trig_ids, r->trigger_ids, r->n_trigger_ids * sizeof *g->trig_ids);
        g->n_trig_ids = r->n_trigger_ids;
    }
    return g;
oom:
    gram_state_free(g);
    sl_err(err, errlen, "out of memory");
    return NULL;
}

/* Whether s's next token is one of think_close (the reasoning budget is
 * spent with the block open, or the close sequence is under way). */
static bool think_forcing(const eng_seq_t *s) {
    if (s->think_budget <= 0 || s->think_forced >= s->n_think_close) return false;
    return s->think_forced > 0 || (s->think_in && s->think_used >= s->think_budget);
}

/* Follows the reasoning block over an emitted token. */
static void think_count(eng_seq_t *s, int32_t id) {
    if (s->think_budget <= 0) return;
    if (s->think_in) {
        if (id == s->think_end) s->think_in = false;
        else s->think_used++;
    } else if (id == s->think_start && s->think_forced == 0) {
        s->think_in = true;
    }
}

static void score_row(const float *row, int n_vocab, int32_t id, int n_top, smp_result_t *out);

/* Samples from logits (modified), emits TOKEN or finishes s; false when
 * s finished (and is freed). */
static bool seq_sample(eng_t *e, eng_seq_t *s, float *logits) {
    eng_event_t ev = {0};
    ev.type = ENG_EV_TOKEN;
    ev.id = s->id;
    ev.user = s->user;
    eng_gram_t *g = s->g;
    if (g && !g->m && !g->off && s->n_generated == 0 && s->n_toks == s->n_prompt) {
        /* first token: the matcher starts after the prefix (a lazy one
         * looks for a trigger in the prefix) */
        char err[SL_ERR_MAX];
        if (g->lazy) {
            gram_lazy_feed(g, g->prefix, g->prefix_len, false);
        } else if (gram_start(g, g->prefix, g->prefix_len, err, sizeof err) != 0) {
            seq_finish(e, s, ENG_FINISH_ERROR, err);
            return false;
        }
    }
    const bool forced = think_forcing(s);
    if (forced) {
        /* the budget is spent: the close ids instead of a draw */
        const int32_t id = s->think_close[s->think_forced++];
        s->drawn = false;
        score_row(logits, e->n_vocab, id, s->top_logprobs, &ev.tok);
        if (g && g->m && gram_matcher_accept_token(g->m, id) != 0) {
            seq_finish(e, s, ENG_FINISH_ERROR, "the grammar does not allow the end of the reasoning block here");
            return false;
        }
        smp_accept(s->smp, id);
    } else if (g && g->m) {
        if (smp_sample_grammar(s->smp, g->m, logits, e->mask, &ev.tok) != 0) {
            if (gram_matcher_is_terminated(g->m)) seq_finish(e, s, ENG_FINISH_STOP, NULL);
            else seq_finish(e, s, ENG_FINISH_ERROR, "no token the grammar allows is left to sample");
            return false;
        }
    } else {
        const int rc = s->drawn ? s->draw_rc : smp_sample(s->smp, logits, &ev.tok);
        if (s->drawn) ev.tok = s->draw;
        s->drawn = false;
        if (rc != 0) {
            seq_finish(e, s, ENG_FINISH_ERROR, "no token left to sample (all logits masked)");
            return false;
        }
        smp_accept(s->smp, ev.tok.id);
    }
    s->n_generated++;
    think_count(s, ev.tok.id);
    /* usage so far, so the server knows cached tokens before FINISH */
    ev.usage.prompt_tokens = s->n_prompt_done;
    ev.usage.cached_tokens = SL_MIN(s->n_cached, s->n_prompt_done);
    ev.usage.completion_tokens = s->n_generated;
    const uint64_t now = sl_now_ns();
    pthread_mutex_lock(&e->mu);
    e->st.tokens_generated++;
    if (s->n_generated == 1) hist_add(&e->st.ttft, (double)(now - s->t_submit) * 1e-9);
    else hist_add(&e->st.itl, (double)(now - s->t_last) * 1e-9);
    pthread_mutex_unlock(&e->mu);
    s->t_last = now;
    if (is_stop(s, ev.tok.id)) {
        seq_finish(e, s, ENG_FINISH_STOP, NULL);
        return false;
    }
    if (seq_push_token(s, ev.tok.id) != 0) {
        seq_finish(e, s, ENG_FINISH_ERROR, "out of memory");
        return false;
    }
    ev.t_ns = now;
    ev.usage.prompt_tokens = s->n_prompt_done;
    ev.usage.cached_tokens = SL_MIN(s->n_cached, s->n_prompt_done);
    ev.usage.completion_tokens = s->n_generated;
    e->fn(&ev, e->ctx);
    if (g && !g->m && g->lazy && !g->off) {
        size_t tl = 0;
        const char *tb = gram_vocab_token(e->gv, ev.tok.id, &tl);
        bool trig = false;
        for (size_t i = 0; i < g->n_trig_ids; i++) trig |= g->trig_ids[i] == ev.tok.id;
        gram_lazy_feed(g, tb, tl, trig);
    }
    if (g && g->m && gram_matcher_is_terminated(g->m)) {
        seq_finish(e, s, ENG_FINISH_STOP, NULL); /* complete */
        return false;
    }
    if (s->n_generated >= s->max_tokens || s->n_past >= e->o.n_ctx) {
        seq_finish(e, s, ENG_FINISH_LENGTH, NULL);
        return false;
    }
    return true;
}

/* f had the same prompt as s and waited; s has just prefilled it: f takes
 * s's blocks (shared; the partly filled last block is copied on f's first
 * write) and samples from the same logits. */
static void seq_fork(eng_t *e, eng_seq_t *f, const eng_seq_t *s, const float *logits) {
    for (int i = 0; i < f->n_blocks; i++) kvc_unref(e->kvc, f->blocks[i]);
    for (int i = 0; i < s->n_blocks; i++) {
        kvc_ref(e->kvc, s->blocks[i]);
        f->blocks[i] = s->blocks[i];
    }
    f->n_blocks = s->n_blocks;
    f->n_past = s->n_past;
    if (f->slot >= 0 && s->slot >= 0) /* the prompt's recurrent state too */
        memcpy(seq_state(e, f), seq_state(e, s), e->state_floats * sizeof(float));
    f->n_hashed = s->n_hashed;
    f->last_hash = s->last_hash;
    f->n_prompt_done = f->n_prompt;
    f->n_cached = s->n_cached;
    f->leader = NULL;
    memcpy(e->tmp_logits, logits, (size_t)e->n_vocab * sizeof *logits);
    seq_sample(e, f, e->tmp_logits);
}

/* ------------------------------------------------------------ one step */

/* Sampling without a grammar only reads the sequence's own sampler and
 * logits row, so a step draws those tokens over the pool before emitting
 * them in order (a temperature / top-p draw over a 150k vocabulary costs
 * about a millisecond; 16 of them in a row would hold the step). */
struct draw_job {
    eng_t *e;
    eng_seq_t **seqs;
    int n;
    atomic_int next;
};

static void draw_worker(void *ctx, int ith, int nth) {
    (void)ith;
    (void)nth;
    struct draw_job *j = ctx;
    for (;;) {
        const int i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= j->n) break;
        eng_seq_t *s = j->seqs[i];
        float *row = j->e->logits + (size_t)s->logit_row * (size_t)j->e->n_vocab;
        s->draw_rc = smp_sample(s->smp, row, &s->draw);
        s->drawn = true;
    }
}

/* Draws ahead for the plan's sequences that sample plainly from their row
 * this step: no grammar, not scoring, not forced, no n>1 sibling forking
 * from it (the fork copies the row before the leader's draw changes it). */
static void pre_draw(eng_t *e, int n_plan) {
    int n = 0;
    for (int i = 0; i < n_plan; i++) {
        eng_seq_t *s = e->plan[i];
        /* logit_row >= 0: it samples; a forced token draws nothing (a draw
         * would move its random stream only when others run beside it) */
        if (s->logit_row < 0 || s->g || e->batch[i].all_logits || think_forcing(s)) continue;
        bool leads = false;
        for (eng_seq_t *f = e->running; f && !leads; f = f->next) leads = f->leader == s;
        if (!leads) e->draw_seqs[n++] = s;
    }
    if (n < 2) return; /* nothing to overlap */
    struct draw_job j = {e, e->draw_seqs, n, 0};
    atomic_init(&j.next, 0);
    sl_pool_run_elastic(e->pool, draw_worker, &j);
}

/* Finishes cancelled sequences; returns after taking the waiting ones out
 * of the queue. */
static void reap_cancelled(eng_t *e) {
    pthread_mutex_lock(&e->mu);
    eng_seq_t *gone = NULL;
    for (eng_seq_t **pp = &e->pending; *pp;) {
        eng_seq_t *s = *pp;
        if (!atomic_load(&s->cancel)) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        e->n_pending--;
        s->next = gone;
        gone = s;
    }
    e->pending_tail = NULL;
    for (eng_seq_t *s = e->pending; s; s = s->next) e->pending_tail = s;
    if (e->stopping)
        for (eng_seq_t *s = e->running; s; s = s->next) atomic_store(&s->cancel, true);
    pthread_mutex_unlock(&e->mu);
    while (gone) {
        eng_seq_t *n = gone->next;
        gone->next = NULL;
        seq_emit_finish(e, gone, ENG_FINISH_CANCELLED, NULL);
        gone = n;
    }
    for (eng_seq_t *s = e->running, *n; s; s = n) {
        n = s->next;
        if (atomic_load(&s->cancel)) {
            seq_finish(e, s, ENG_FINISH_CANCELLED, NULL);
            n = e->running; /* restart: finishing may detach others but never unlinks them */
        }
    }
}

/* A running sequence still prefilling exactly s's tokens, to fork from. */
static eng_seq_t *find_leader(eng_t *e, const eng_seq_t *s) {
    if (s->n_generated > 0 || s->score) return NULL; /* a scoring sequence computes its own prompt */
    for (eng_seq_t *r = e->running; r; r = r->next)
        if (!r->leader && !r->score && r->n_generated == 0 && r->n_toks == s->n_toks && r->n_past < r->n_toks &&
            !memcmp(r->toks, s->toks, (size_t)s->n_toks * sizeof *s->toks))
            return r;
    return NULL;
}

static void admit(eng_t *e) {
    for (;;) {
        pthread_mutex_lock(&e->mu);
        eng_seq_t *s = e->pending;
        if (s && s->g && !s->g->ix) {
            /* its grammar could not be built (the worker said why) */
            e->pending = s->next;
            if (!e->pending) e->pending_tail = NULL;
            e->n_pending--;
            s->next = NULL;
            pthread_mutex_unlock(&e->mu);
            seq_emit_finish(e, s, atomic_load(&s->cancel) ? ENG_FINISH_CANCELLED : ENG_FINISH_ERROR,
                            s->g->err ? s->g->err : "cannot build the grammar");
            continue;
        }
        if (!s || e->n_running >= e->o.max_running || e->stopping) {
            pthread_mutex_unlock(&e->mu);
            return;
        }
        pthread_mutex_unlock(&e->mu);
        eng_seq_t *leader = find_leader(e, s);
        /* a hybrid model's sequence takes a state slot (there are
         * max_running: one is free while n_running < max_running); the
         * model zeroes it at position 0, else a checkpoint is restored */
        if (e->state_floats) {
            if (e->n_slot_free == 0) return;
            s->slot = e->slot_free[--e->n_slot_free];
        }
        const int ck = !leader && !s->score ? seq_match_prefix(e, s) : -1;
        /* blocks the rest of its tokens need, plus one for the first decode
         * steps, must be available now (unless nothing runs: then it runs
         * alone and preemption cannot be needed for it) */
        const int need = leader ? 0 : (s->n_toks + e->bs) / e->bs - s->n_blocks;
        if (need > blocks_available(e) && e->running) {
            seq_release(e, s);
            return;
        }
        if (ck >= 0) ckpt_restore(e, ck, s); /* nothing was allocated since the lookup */
        pthread_mutex_lock(&e->mu);
        e->pending = s->next;
        if (!e->pending) e->pending_tail = NULL;
        e->n_pending--;
        s->next = NULL;
        eng_seq_t **pp = &e->running;
        while (*pp) pp = &(*pp)->next;
        *pp = s;
        e->n_running++;
        if (!s->admitted) {
            e->st.prefix_query_tokens += (uint64_t)s->n_prompt;
            e->st.prefix_hit_tokens += (uint64_t)SL_MIN(s->n_past, s->n_prompt);
        }
        pthread_mutex_unlock(&e->mu);
        if (!s->admitted) s->n_cached = SL_MIN(s->n_past, s->n_prompt);
        s->admitted = true;
        s->n_prompt_done = SL_MAX(s->n_prompt_done, SL_MIN(s->n_past, s->n_prompt));
        s->leader = leader;
    }
}

static eng_seq_t *youngest_running(eng_t *e) {
    eng_seq_t *y = e->running;
    while (y && y->next) y = y->next;
    return y;
}

/* Still has prompt positions to report (this step computes logits for every
 * token of its chunk). */
static bool seq_scoring(const eng_seq_t *s) {
    return s->score && s->n_scored < s->n_prompt && s->n_past < s->n_prompt;
}

/* log-softmax of row at id, and the n_top most likely ids (raw model). */
static void score_row(const float *row, int n_vocab, int32_t id, int n_top, smp_result_t *out) {
    float mx = -INFINITY;
    for (int i = 0; i < n_vocab; i++)
        if (row[i] > mx) mx = row[i];
    double sum = 0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)(row[i] - mx));
    const float lse = mx + (float)log(sum);
    memset(out, 0, sizeof *out);
    out->id = id;
    out->logprob = row[id] - lse;
    n_top = SL_MIN(SL_MAX(n_top, 0), SMP_MAX_TOP_LOGPROBS);
    for (int i = 0; i < n_vocab; i++) {
        if (out->n_top == n_top && (n_top == 0 || row[i] <= out->top[n_top - 1].logprob)) continue;
        int k = out->n_top < n_top ? out->n_top++ : n_top - 1;
        while (k > 0 && out->top[k - 1].logprob < row[i]) {
            out->top[k] = out->top[k - 1];
            k--;
        }
        out->top[k] = (smp_logprob_t){i, row[i]};
    }
    for (int k = 0; k < out->n_top; k++) out->top[k].logprob -= lse;
}

/* Reports the prompt positions this step's chunk scored (rows 0..n-1 hold
 * the logits after positions n_past0 .. n_past0+n-1). */
static void seq_report_prompt(eng_t *e, eng_seq_t *s, int n_past0, int n) {
    for (int r = 0; r < n; r++) {
        const int q = n_past0 + r + 1; /* the token these logits predict */
        if (q >= s->n_prompt) break;
        if (q < s->n_scored) continue; /* recomputed after a preemption */
        eng_event_t ev = {0};
        ev.type = ENG_EV_PROMPT;
        ev.id = s->id;
        ev.user = s->user;
        ev.t_ns = sl_now_ns();
        ev.pos = q;
        score_row(s->score_logits + (size_t)r * (size_t)e->n_vocab, e->n_vocab, s->toks[q], s->score_top,
                  &ev.tok);
        ev.usage.prompt_tokens = s->n_prompt_done;
        e->fn(&ev, e->ctx);
        s->n_scored = q + 1;
    }
}

/* Releases s's blocks past those holding positions < upto (drafted
 * positions that were rejected, or never run). They were allocated for
 * this step only, never shared nor published. */
static void seq_trim_blocks(eng_t *e, eng_seq_t *s, int upto) {
    const int keep = (upto + e->bs - 1) / e->bs;
    while (s->n_blocks > keep) kvc_unref(e->kvc, s->blocks[--s->n_blocks]);
}

/* Publishes s's blocks that became full (all their positions computed
 * from verified tokens) to the prefix cache. */
static void seq_publish(eng_t *e, eng_seq_t *s) {
    while (!e->o.no_prefix_cache && (s->n_hashed + 1) * e->bs <= s->n_past) {
        s->last_hash = kvc_publish(e->kvc, s->blocks[s->n_hashed], s->last_hash,
                                   s->toks + (size_t)s->n_hashed * (size_t)e->bs);
        s->n_hashed++;
    }
}

/* Adds drafts to the plan's decoding sequences out of the step's spare
 * budget: never at the cost of a decode token or a prompt chunk (those are
 * planned first), never by preempting anyone nor evicting a cached block
 * (only free blocks), and
 * not past ENG_SPEC_BATCH tokens in the step (a larger batch is no longer
 * bound by reading the weights, so extra rows are not free). */
static void plan_drafts(eng_t *e, int budget) {
    int planned = 0;
    for (eng_seq_t *s = e->running; s; s = s->next) planned += s->step_n;
    for (eng_seq_t *s = e->running; s; s = s->next) {
        const int spare = SL_MIN(budget, ENG_SPEC_BATCH - planned);
        if (spare <= 0) return;
        /* decoding: one token planned, at least one sampled (so no n>1
         * sibling waits to fork from it) */
        if (!s->spec_on || s->step_n != 1 || s->n_past + 1 != s->n_toks || s->n_generated == 0 || seq_scoring(s))
            continue;
        if (s->spec_wait > 0) {
            s->spec_wait--;
            continue;
        }
        int kmax = SL_MIN(SL_MIN(e->spec_max, spare),
                          SL_MIN(s->max_tokens - s->n_generated - 1, e->o.n_ctx - s->n_toks));
        if (kmax <= 0) continue;
        if (!s->draft && !(s->draft = malloc((size_t)e->spec_max * sizeof *s->draft))) continue;
        if (!s->spec_logits &&
            !(s->spec_logits = malloc((size_t)(e->spec_max + 1) * (size_t)e->n_vocab * sizeof *s->spec_logits)))
            continue;
        int k = e->o.spec_draft ? e->o.spec_draft(e->o.spec_ctx, s->toks, s->n_toks, s->n_prompt, s->draft, kmax)
                                : ngram_draft(s, s->draft, kmax);
        k = SL_MAX(0, SL_MIN(k, kmax));
        if (k > 0) k = SL_MIN(k, spec_choose(e, s, k)); /* only a found draft counts against the policy */
        for (int j = 0; j < k; j++)
            if (s->draft[j] < 0 || s->draft[j] >= e->n_vocab) k = j; /* a hook's bad id ends the draft */
        /* free blocks for positions n_toks .. n_toks + k - 1: a draft
         * never evicts a cached prefix block (its blocks are transient) */
        kvc_counts_t kc;
        kvc_counts(e->kvc, &kc);
        k = SL_MIN(k, (s->n_blocks + kc.free) * e->bs - s->n_toks);
        if (k <= 0) continue;
        if (s->n_toks + k > s->cap_toks) {
            const int cap = s->n_toks + k + 64;
            int32_t *t = realloc(s->toks, (size_t)cap * sizeof *t);
            if (!t) continue;
            s->toks = t;
            s->cap_toks = cap;
        }
        if (!seq_reserve(e, s, s->n_toks + k)) {
            seq_trim_blocks(e, s, s->n_toks);
            continue;
        }
        memcpy(s->toks + s->n_toks, s->draft, (size_t)k * sizeof *s->toks);
        s->n_draft = k;
        s->step_n = 1 + k;
        budget -= k;
        planned += k;
    }
}

/* After the pass over s's last token and its n_draft draft tokens: samples
 * each position in turn (exactly as without a draft) while the draw equals
 * the draft token there; the first other draw, or the position after the
 * last draft token, ends it. The KV of rejected positions is dropped: n_past
 * stops after the last verified token and blocks past it are released
 * (none of them was published: only full blocks of verified positions are). */
static void spec_verify(eng_t *e, eng_seq_t *s) {
    const int k = s->n_draft, p0 = s->n_past;
    s->n_draft = 0;
    s->step_n = 0;
    int acc = 0;
    bool alive = true;
    for (int j = 0; j <= k; j++) {
        s->n_past = p0 + 1 + j; /* the token at p0 + j is verified: its KV is valid */
        seq_publish(e, s);
        alive = seq_sample(e, s, s->spec_logits + (size_t)j * (size_t)e->n_vocab);
        if (!alive || j == k || s->toks[s->n_toks - 1] != s->draft[j]) break;
        acc++;
    }
    pthread_mutex_lock(&e->mu);
    e->st.spec_drafted += (uint64_t)k;
    e->st.spec_accepted += (uint64_t)acc;
    e->st.spec_steps++;
    pthread_mutex_unlock(&e->mu);
    if (!alive) return; /* finished: its blocks are released */
    seq_trim_blocks(e, s, s->n_past + 1);
    spec_adapt(e, s, k, acc);
}

/* Plans this step's batch into e->plan; returns how many sequences. */
static int plan_step(eng_t *e) {
    int n_plan = 0, budget = e->o.max_batch_tokens;
    for (eng_seq_t *s = e->running; s; s = s->next) s->step_n = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (eng_seq_t *s = e->running, *next; s; s = next) {
            next = s->next;
            const int left = s->n_toks - s->n_past;
            if (s->leader || s->step_n || (pass == 0) != (left == 1) || budget <= 0) continue;
            int n = SL_MIN(SL_MIN(left, ENG_PREFILL_CHUNK), budget);
            if (seq_scoring(s)) n = SL_MIN(n, ENG_SCORE_CHUNK);
            if (pass == 1) {
                /* a prompt chunk shrinks to the blocks at hand before anyone
                 * is preempted for it */
                const int room =
                    (s->n_blocks + blocks_available(e)) * e->bs - s->n_past -
                    (s->n_past % e->bs && kvc_refcount(e->kvc, s->blocks[s->n_past / e->bs]) > 1
                         ? e->bs
                         : 0);
                if (room > 0 && room < n) n = room;
                /* the chunk ends at a checkpoint position: the state there
                 * exists only between two steps */
                const int c = ckpt_next(e, s);
                if (c > s->n_past && c - s->n_past < n) n = c - s->n_past;
            }
            bool ok;
            while (!(ok = seq_reserve(e, s, s->n_past + n))) {
                eng_seq_t *v = youngest_running(e);
                if (v == s) break;
                if (v->step_n) budget += v->step_n;
                if (v == next) next = NULL;
                seq_preempt(e, v);
            }
            if (!ok) {
                seq_preempt(e, s);
                break; /* s was the youngest: nothing after it */
            }
            s->step_n = n;
            budget -= n;
        }
    }
    if (e->spec) plan_drafts(e, budget);
    for (eng_seq_t *s = e->running; s; s = s->next)
        if (s->step_n) e->plan[n_plan++] = s;
    return n_plan;
}

static void step(eng_t *e) {
    char err[SL_ERR_MAX];
    const uint64_t t0 = sl_now_ns();
    const int n_plan = plan_step(e);
    if (e->n_ckpt)
        ckpt_sweep(e); /* the plan may have evicted blocks; before any FINISH of this step */
    if (n_plan == 0) return;
    int n_rows = 0, n_tok = 0;
    for (int i = 0; i < n_plan; i++) {
        eng_seq_t *s = e->plan[i];
        const bool samples = s->n_past + s->step_n == s->n_toks;
        s->logit_row = samples ? n_rows++ : -1;
        e->batch[i] = (sl_batch_seq_t){
            .tokens = s->toks + s->n_past,
            .n_tok = s->step_n,
            .n_past = s->n_past,
            .blocks = s->blocks,
            .logits = samples ? e->logits + (size_t)s->logit_row * (size_t)e->n_vocab : NULL,
            .state = seq_state(e, s),
        };
        if (s->n_draft) { /* logits at the last token and every draft token */
            e->batch[i].logits = s->spec_logits;
            e->batch[i].all_logits = true;
        }
        if (seq_scoring(s)) {
            if (!s->score_logits)
                s->score_logits = malloc((size_t)ENG_SCORE_CHUNK * (size_t)e->n_vocab * sizeof *s->score_logits);
            if (s->score_logits) {
                e->batch[i].logits = s->score_logits;
                e->batch[i].all_logits = true;
            }
        }
        n_tok += s->step_n;
    }
    const uint64_t tf0 = sl_now_ns();
    const int rc = model_forward_batch(e->model, e->pool, e->kvp, e->batch, n_plan, err, sizeof err);
    if (rc == 0 && e->spec && n_plan == 1 && e->plan[0]->n_generated > 0 &&
        e->plan[0]->n_past + e->plan[0]->step_n == e->plan[0]->n_toks + e->plan[0]->n_draft) {
        /* one decoding sequence alone: what a pass over 1 + n_draft tokens costs */
        double *t = &e->spec_t[n_tok];
        const double sec = (double)(sl_now_ns() - tf0) * 1e-9;
        *t = *t > 0 ? 0.9 * *t + 0.1 * sec : sec;
    }
    if (rc == 0) pre_draw(e, n_plan);
    pthread_mutex_lock(&e->mu);
    e->st.steps++;
    e->st.batch_tokens += (uint64_t)n_tok;
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < n_plan; i++) {
        eng_seq_t *s = e->plan[i];
        if (rc != 0) {
            s->n_draft = 0;
            seq_finish(e, s, ENG_FINISH_ERROR, err);
            continue;
        }
        if (s->n_draft) {
            spec_verify(e, s);
            continue;
        }
        const bool scored = e->batch[i].all_logits;
        const int n_past0 = s->n_past, n_step = s->step_n;
        s->n_past += s->step_n;
        s->step_n = 0;
        s->n_prompt_done = SL_MAX(s->n_prompt_done, SL_MIN(s->n_past, s->n_prompt));
        seq_publish(e, s);
        ckpt_after_step(e, s);
        if (scored) {
            seq_report_prompt(e, s, n_past0, n_step);
            if (s->logit_row >= 0) /* the chunk's last row is the one to sample from */
                memcpy(e->logits + (size_t)s->logit_row * (size_t)e->n_vocab,
                       s->score_logits + (size_t)(n_step - 1) * (size_t)e->n_vocab,
                       (size_t)e->n_vocab * sizeof *e->logits);
            if (s->n_scored >= s->n_prompt) {
                free(s->score_logits);
                s->score_logits = NULL;
            }
        }
        if (s->logit_row < 0) continue;
        float *row = e->logits + (size_t)s->logit_row * (size_t)e->n_vocab;
        for (eng_seq_t *f = e->running, *fn; f; f = fn) {
            fn = f->next;
            if (f->leader == s) seq_fork(e, f, s, row);
        }
        seq_sample(e, s, row);
    }
    const uint64_t t1 = sl_now_ns();
    publish_kv_counts(e);
    pthread_mutex_lock(&e->mu);
    e->st.busy_ns += t1 - t0;
    if (t1 - e->win_t0 >= 2000000000ull) {
        e->st.tokens_per_s = (double)(e->st.tokens_generated - e->win_gen) * 1e9 / (double)(t1 - e->win_t0);
        e->win_t0 = t1;
        e->win_gen = e->st.tokens_generated;
    }
    pthread_mutex_unlock(&e->mu);
}

/* The grammar worker: builds indexes (gram_index_cached) off the engine
 * thread. A sequence whose grammar it resolves joins the tail of the queue
 * afterwards; a prepare request gets its ENG_EV_GRAMMAR. */
static void *prep_main(void *arg) {
    eng_t *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->prep_head && !e->stopping) pthread_cond_wait(&e->prep_cv, &e->mu);
        prep_item_t *it = e->prep_head;
        if (!it) break; /* stopping, nothing left */
        e->prep_head = it->next;
        if (!e->prep_head) e->prep_tail = NULL;
        e->prep_cur = it->seq;
        const bool skip = e->stopping || (it->seq && atomic_load(&it->seq->cancel));
        pthread_mutex_unlock(&e->mu);
        char err[SL_ERR_MAX] = "the engine is shutting down";
        gram_index_t *ix = NULL;
        if (!skip) {
            if (it->seq) ix = gram_index_cached(it->seq->g->vocab, it->seq->g->kind, it->seq->g->text, it->seq->g->len,
                                                err, sizeof err);
            else ix = gram_index_cached(it->vocab, it->kind, it->text, it->len, err, sizeof err);
        }
        if (it->seq) {
            eng_gram_t *g = it->seq->g;
            g->ix = ix;
            if (!ix && !skip) g->err = sl_strdup(err);
            pthread_mutex_lock(&e->mu);
            eng_seq_t *sq = it->seq;
            if (e->stopping) atomic_store(&sq->cancel, true);
            if (e->pending_tail) e->pending_tail->next = sq;
            else e->pending = sq;
            e->pending_tail = sq;
            e->n_pending++;
            e->n_prep--;
            e->prep_cur = NULL;
            pthread_cond_signal(&e->cv);
        } else {
            if (ix && it->prefix_len) {
                gram_matcher_t *m = gram_matcher_new(ix, err, sizeof err);
                if (!m || gram_matcher_accept_bytes(m, it->prefix, it->prefix_len) != 0) {
                    if (m)
                        sl_err(err, sizeof err,
                               "the output must continue the given prefix, but the prefix does not match the "
                               "grammar / response format");
                    gram_index_release(ix);
                    ix = NULL;
                }
                gram_matcher_free(m);
            }
            eng_event_t ev = {0};
            ev.type = ENG_EV_GRAMMAR;
            ev.user = it->user;
            ev.t_ns = sl_now_ns();
            ev.grammar = ix;
            ev.finish = ix ? ENG_FINISH_STOP : skip ? ENG_FINISH_CANCELLED : ENG_FINISH_ERROR;
            ev.error = ix ? NULL : err;
            e->fn(&ev, e->ctx);
            pthread_mutex_lock(&e->mu);
        }
        free(it->text);
        free(it->prefix);
        free(it);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- embeddings ---- */

static void emb_finish(eng_t *e, eng_emb_t *j, eng_finish_t why, const char *msg) {
    eng_event_t ev = {0};
    ev.type = ENG_EV_FINISH;
    ev.id = j->id;
    ev.user = j->r.user;
    ev.t_ns = sl_now_ns();
    ev.finish = why;
    ev.error = msg;
    ev.usage.prompt_tokens = j->n_tokens_done;
    pthread_mutex_lock(&e->mu);
    eng_emb_t **pp = &e->emb_head;
    while (*pp && *pp != j) pp = &(*pp)->next;
    if (*pp) *pp = j->next;
    e->emb_tail = NULL;
    for (eng_emb_t *t = e->emb_head; t; t = t->next) e->emb_tail = t;
    e->n_emb--;
    e->st.finished++;
    if (why == ENG_FINISH_CANCELLED) e->st.cancelled++;
    pthread_mutex_unlock(&e->mu);
    e->fn(&ev, e->ctx);
    free(j);
}

/* One model call over the queued requests' next inputs, taken round-robin
 * (one input of each request in turn, in queue order) up to
 * ENG_EMBED_BATCH tokens and at least one input, so a small request is
 * not held behind a large one; then the FINISH of every request that is
 * complete, cancelled or failed. */
static void emb_step(eng_t *e) {
    const int dim = model_embed_dim(e->model);
    int n = 0, n_tok = 0;
    eng_emb_t *cancelled = NULL;
    pthread_mutex_lock(&e->mu);
    /* a cancelled request finishes first, before any input is taken */
    for (eng_emb_t *j = e->emb_head; j; j = j->next) {
        if (e->stopping) atomic_store(&j->cancel, true);
        if (!cancelled && atomic_load(&j->cancel)) cancelled = j;
    }
    for (bool took = !cancelled; took && n < ENG_EMBED_BATCH;) {
        took = false;
        for (eng_emb_t *j = e->emb_head; j && n < ENG_EMBED_BATCH; j = j->next) {
            if (j->n_taken == j->r.n_inputs) continue;
            const int i = j->n_taken, len = j->r.n_tokens[i];
            if (n > 0 && n_tok + len > ENG_EMBED_BATCH) continue;
            e->emb_seqs[n] = (sl_embed_seq_t){j->r.tokens[i], j->r.types ? j->r.types[i] : NULL, len};
            e->emb_of[n] = j;
            e->emb_idx[n] = i;
            j->last_slot = n++;
            j->n_taken++;
            n_tok += len;
            took = true;
        }
    }
    pthread_mutex_unlock(&e->mu);
    if (cancelled) {
        emb_finish(e, cancelled, ENG_FINISH_CANCELLED, NULL);
        return;
    }
    if (n == 0) return;
    char err[SL_ERR_MAX];
    const uint64_t t0 = sl_now_ns();
    const int rc = model_embed(e->model, e->pool, e->emb_seqs, n, e->emb_out, err, sizeof err);
    pthread_mutex_lock(&e->mu);
    e->st.steps++;
    e->st.busy_ns += sl_now_ns() - t0;
    if (rc == 0) {
        e->st.prompt_tokens += (uint64_t)n_tok;
        e->st.batch_tokens += (uint64_t)n_tok;
    }
    pthread_mutex_unlock(&e->mu);
    for (int k = 0; k < n; k++) {
        eng_emb_t *j = e->emb_of[k];
        j->n_tokens_done += e->emb_seqs[k].n_tok;
        if (rc == 0)
            memcpy(j->r.out + (size_t)e->emb_idx[k] * (size_t)dim, e->emb_out + (size_t)k * (size_t)dim,
                   (size_t)dim * sizeof(float));
        if (k != j->last_slot) continue; /* the request's last input in this call: it may be done */
        if (rc != 0) {
            j->n_tokens_done = 0;
            emb_finish(e, j, ENG_FINISH_ERROR, err);
        } else if (j->n_taken == j->r.n_inputs) {
            emb_finish(e, j, ENG_FINISH_STOP, NULL);
        }
    }
}

static void *eng_main(void *arg) {
    eng_t *e = arg;
    for (;;) {
        reap_cancelled(e);
        admit(e);
        pthread_mutex_lock(&e->mu);
        const bool emb = e->emb_head != NULL;
        if (!e->running && !emb) {
            if (e->stopping && !e->pending && e->n_prep == 0) {
                pthread_mutex_unlock(&e->mu);
                break;
            }
            /* idle, or stopping while the grammar worker still holds sequences */
            if (!e->pending && (!e->stopping || e->n_prep)) pthread_cond_wait(&e->cv, &e->mu);
            pthread_mutex_unlock(&e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        if (emb) emb_step(e);
        if (e->running) step(e);
    }
    return NULL;
}

/* ------------------------------------------------------------- the API */

static size_t phys_mem(void) {
    const long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psz <= 0) return (size_t)1 << 32;
    return (size_t)pages * (size_t)psz;
}

static void eng_destroy(eng_t *e) {
    kvc_free(e->kvc);
    model_kv_pool_free(e->kvp);
    sl_pool_free(e->pool);
    free(e->logits);
    free(e->states);
    free(e->slot_free);
    free(e->ckpts);
    free(e->ckpt_blocks);
    free(e->ckpt_chain);
    free(e->tmp_logits);
    free(e->plan);
    free(e->draw_seqs);
    free(e->batch);
    free(e->mask);
    free(e->emb_seqs);
    free(e->emb_of);
    free(e->emb_idx);
    free(e->emb_out);
    free(e);
}

static eng_t *eng_start(eng_t *e, char *err, size_t errlen);

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
    model_set_ctx(m, e->o.n_ctx);
    if (e->o.max_running <= 0) e->o.max_running = 8;
    if (e->o.max_queued <= 0) e->o.max_queued = 256;
    if (e->o.kv_block <= 0) e->o.kv_block = ENG_KV_BLOCK;
    if (e->o.max_batch_tokens <= 0) e->o.max_batch_tokens = 512;
    e->o.max_batch_tokens = SL_MAX(e->o.max_batch_tokens, e->o.max_running + 1);
    if (e->o.spec < ENG_SPEC_DEFAULT || e->o.spec > ENG_SPEC_NGRAM || e->o.spec_max < 0) {
        sl_err(err, errlen, "unknown speculative decoding setting (%d, max %d)", e->o.spec, e->o.spec_max);
        free(e);
        return NULL;
    }
    e->gv = e->o.gram_vocab;
    if (e->gv && gram_vocab_size(e->gv) != (size_t)e->n_vocab) {
        sl_err(err, errlen, "the grammar vocabulary has %zu tokens, the model %d", gram_vocab_size(e->gv),
               e->n_vocab);
        free(e);
        return NULL;
    }
    e->embeds = model_embed_dim(m) > 0;
    if (e->embeds) {
        e->o.n_ctx = SL_MIN(e->o.n_ctx, model_embed_max_tokens(m));
        e->next_id = 1;
        e->pool = sl_pool_new(e->o.n_threads);
        e->emb_seqs = malloc(ENG_EMBED_BATCH * sizeof *e->emb_seqs);
        e->emb_of = malloc(ENG_EMBED_BATCH * sizeof *e->emb_of);
        e->emb_idx = malloc(ENG_EMBED_BATCH * sizeof *e->emb_idx);
        e->emb_out = malloc((size_t)ENG_EMBED_BATCH * (size_t)model_embed_dim(m) * sizeof *e->emb_out);
        if (!e->pool || !e->emb_seqs || !e->emb_of || !e->emb_idx || !e->emb_out) {
            eng_destroy(e);
            sl_err(err, errlen, "out of memory");
            return NULL;
        }
        e->gv = NULL; /* no grammars, no grammar worker */
        return eng_start(e, err, errlen);
    }
    e->kv_type = e->o.kv == ENG_KV_F32 ? SL_TYPE_F32 : e->o.kv == ENG_KV_Q8_0 ? SL_TYPE_Q8_0 : SL_TYPE_F16;
    e->bs = e->o.kv_block;
    const size_t bb = model_kv_block_bytes(m, e->bs, e->kv_type);
    e->block_bytes = bb;
    if (bb == 0) {
        sl_err(err, errlen, "KV cache type %s with blocks of %d positions is not usable with this model",
               sl_type_name(e->kv_type), e->bs);
        free(e);
        return NULL;
    }
    const size_t ctx_blocks = (size_t)(e->o.n_ctx + e->bs - 1) / (size_t)e->bs;
    /* hybrid models: a recurrent state slot per running sequence, out of
     * the same memory budget */
    e->state_floats = model_state_floats(m);
    size_t state_mem = 0;
    if (e->state_floats) {
        if (!sl_mul_size(e->state_floats * sizeof(float), (size_t)e->o.max_running, &state_mem)) {
            sl_err(err, errlen, "recurrent state memory overflows");
            free(e);
            return NULL;
        }
    }
    size_t n_blocks;
    if (e->o.kv_mem) {
        if (e->o.kv_mem < state_mem) {
            sl_err(err, errlen,
                   "KV memory of %zu bytes is less than the %zu bytes of recurrent state of %d running sequences "
                   "(%zu bytes each): raise the KV memory or lower max running",
                   e->o.kv_mem, state_mem, e->o.max_running, e->state_floats * sizeof(float));
            free(e);
            return NULL;
        }
        n_blocks = (e->o.kv_mem - state_mem) / bb;
        if (n_blocks < ctx_blocks + 1) {
            sl_err(err, errlen,
                   "KV memory of %zu bytes holds %zu tokens, less than one context of %d tokens (one token "
                   "takes %zu bytes): raise the KV memory or lower the context",
                   e->o.kv_mem, n_blocks * (size_t)e->bs, e->o.n_ctx, bb / (size_t)e->bs);
            free(e);
            return NULL;
        }
    } else {
        n_blocks = ctx_blocks * (size_t)e->o.max_running + 1;
        const size_t quarter = phys_mem() / 4, cap = (quarter > state_mem ? quarter - state_mem : 0) / bb;
        if (n_blocks > cap) n_blocks = SL_MAX(cap, ctx_blocks + 1);
    }
    if (n_blocks > (1u << 30)) n_blocks = 1u << 30;
    e->next_id = 1;
    e->logits = malloc((size_t)e->o.max_running * (size_t)e->n_vocab * sizeof *e->logits);
    e->tmp_logits = malloc((size_t)e->n_vocab * sizeof *e->tmp_logits);
    e->plan = calloc((size_t)e->o.max_running, sizeof *e->plan);
    e->draw_seqs = calloc((size_t)e->o.max_running, sizeof *e->draw_seqs);
    e->batch = calloc((size_t)e->o.max_running, sizeof *e->batch);
    e->pool = sl_pool_new(e->o.n_threads);
    e->kvc = kvc_new((int)n_blocks, e->bs);
    char e2[SL_ERR_MAX] = "out of memory";
    if (e->gv) e->mask = malloc(gram_mask_words(e->gv) * sizeof *e->mask);
    if (e->state_floats) {
        e->states = malloc(state_mem);
        e->slot_free = malloc((size_t)e->o.max_running * sizeof *e->slot_free);
        if (e->slot_free) /* handed out from the end: slot 0 first */
            for (int i = 0; i < e->o.max_running; i++) e->slot_free[i] = e->o.max_running - 1 - i;
        e->n_slot_free = e->o.max_running;
        e->st.state_slots_total = e->o.max_running;
        /* checkpoints: whole blocks each, at most half the pool; none when
         * not even one fits there */
        const size_t sbytes = e->state_floats * sizeof(float);
        e->ckpt_nb = (int)SL_MIN((sbytes + bb - 1) / bb, (size_t)1 << 30);
        e->ckpt_max = e->o.no_prefix_cache
                          ? 0
                          : (int)SL_MIN(n_blocks / 2 / (size_t)e->ckpt_nb, (size_t)ENG_CKPT_MAX);
        if (e->ckpt_max == 0) e->ckpt_nb = 0;
        const int every = e->o.ckpt_interval == 0 ? ENG_CKPT_INTERVAL : e->o.ckpt_interval;
        e->ckpt_every =
            every < 0 || every > (1 << 30) ? INT_MAX : (every + e->bs - 1) / e->bs * e->bs;
        if (e->ckpt_max) {
            e->chain_cap = (int)ctx_blocks;
            e->ckpts = calloc((size_t)e->ckpt_max, sizeof *e->ckpts);
            e->ckpt_blocks =
                malloc((size_t)e->ckpt_max * (size_t)e->ckpt_nb * sizeof *e->ckpt_blocks);
            e->ckpt_chain = malloc((size_t)e->ckpt_max * ctx_blocks * sizeof *e->ckpt_chain);
            if (!e->ckpts || !e->ckpt_blocks || !e->ckpt_chain)
                e->ckpt_nb = e->ckpt_max = 0; /* go without */
        }
    }
    if (e->logits && e->tmp_logits && e->plan && e->draw_seqs && e->batch && e->pool && e->kvc &&
        (!e->gv || e->mask) && (!e->state_floats || (e->states && e->slot_free)))
        e->kvp = model_kv_pool_new(m, (int)n_blocks, e->bs, e->kv_type, e2, sizeof e2);
    if (!e->kvp) {
        eng_destroy(e);
        sl_err(err, errlen, "%s", e2);
        return NULL;
    }
    /* speculative decoding: not for hybrid models (their recurrent state
     * cannot be rolled back past rejected draft tokens) */
    e->spec = e->o.spec != ENG_SPEC_OFF && !e->state_floats;
    e->spec_max = e->o.spec_max <= 0 ? ENG_SPEC_MAX : SL_MIN(e->o.spec_max, ENG_SPEC_MAX_LIMIT);
    e->st.kv_blocks_total = (int)n_blocks;
    e->st.kv_blocks_free = (int)n_blocks;
    e->st.kv_block = e->bs;
    return eng_start(e, err, errlen);
}

/* Starts the threads of an engine whose buffers are ready (freed on failure). */
static eng_t *eng_start(eng_t *e, char *err, size_t errlen) {
    e->win_t0 = sl_now_ns();
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_cond_init(&e->prep_cv, NULL);
    if (e->gv && pthread_create(&e->prep_thread, NULL, prep_main, e) != 0) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        pthread_cond_destroy(&e->prep_cv);
        eng_destroy(e);
        sl_err(err, errlen, "cannot start the grammar thread");
        return NULL;
    }
    e->prep_started = e->gv != NULL;
    if (pthread_create(&e->thread, NULL, eng_main, e) != 0) {
        if (e->prep_started) {
            pthread_mutex_lock(&e->mu);
            e->stopping = true;
            pthread_cond_signal(&e->prep_cv);
            pthread_mutex_unlock(&e->mu);
            pthread_join(e->prep_thread, NULL);
        }
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        pthread_cond_destroy(&e->prep_cv);
        eng_destroy(e);
        sl_err(err, errlen, "cannot start the engine thread");
        return NULL;
    }
    return e;
}

void eng_free(eng_t *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    /* every submitted sequence gets its FINISH (cancelled) */
    for (eng_seq_t *s = e->pending; s; s = s->next) atomic_store(&s->cancel, true);
    pthread_cond_signal(&e->cv);
    pthread_cond_signal(&e->prep_cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    if (e->prep_started) pthread_join(e->prep_thread, NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    pthread_cond_destroy(&e->prep_cv);
    eng_destroy(e);
}

int eng_submit(eng_t *e, const eng_request_t *r, uint64_t *id, char *err, size_t errlen) {
    if (e->embeds) return sl_err(err, errlen, "this is an embedding model: it does not generate text");
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
    s->slot = -1;
    s->ckpt_dec = -1;
    s->smp = smp_new(&r->sampling, e->n_vocab, err, errlen);
    if (!s->smp) {
        free(s);
        return -1;
    }
    const int np = (int)r->n_prompt;
    s->cap_toks = np + SL_MIN(r->max_tokens, 64) + 1;
    s->toks = malloc((size_t)s->cap_toks * sizeof *s->toks);
    s->cap_blocks = (e->o.n_ctx + e->bs - 1) / e->bs + 1;
    s->blocks = malloc((size_t)s->cap_blocks * sizeof *s->blocks);
    s->stop_ids = r->n_stop_ids ? malloc(r->n_stop_ids * sizeof *s->stop_ids) : NULL;
    if (!s->toks || !s->blocks || (r->n_stop_ids && !s->stop_ids) ||
        smp_accept_prompt(s->smp, r->prompt, r->n_prompt) != 0) {
        seq_free(s);
        return sl_err(err, errlen, "out of memory");
    }
    memcpy(s->toks, r->prompt, r->n_prompt * sizeof *s->toks);
    if (r->n_stop_ids) memcpy(s->stop_ids, r->stop_ids, r->n_stop_ids * sizeof *s->stop_ids);
    s->n_toks = s->n_prompt = np;
    s->n_stop_ids = r->n_stop_ids;
    s->max_tokens = r->max_tokens;
    s->user = r->user;
    s->last_hash = KVC_HASH_SEED;
    s->logit_row = -1;
    s->score = r->score_prompt && np > 1;
    s->score_top = r->score_top;
    s->top_logprobs = r->sampling.n_top_logprobs;
    if (r->think_budget > 0 && r->n_think_close > 0) {
        for (size_t i = 0; i < r->n_think_close; i++)
            if (r->think_close[i] < 0 || r->think_close[i] >= e->n_vocab) {
                seq_free(s);
                return sl_err(err, errlen, "think_close id %d is outside the vocabulary", (int)r->think_close[i]);
            }
        if (!(s->think_close = malloc(r->n_think_close * sizeof *s->think_close))) {
            seq_free(s);
            return sl_err(err, errlen, "out of memory");
        }
        memcpy(s->think_close, r->think_close, r->n_think_close * sizeof *s->think_close);
        s->n_think_close = r->n_think_close;
        s->think_budget = r->think_budget;
        s->think_in = r->think_open;
        s->think_start = r->think_start_id;
        s->think_end = r->think_end_id;
    }
    s->n_scored = 1;
    s->spec_on = e->spec && !r->no_spec;
    s->spec_cool = 4;
    atomic_init(&s->cancel, false);
    prep_item_t *it = NULL;
    if (eng_grammar_set(&r->grammar)) {
        if (!(s->g = gram_state_new(e, &r->grammar, err, errlen))) {
            seq_free(s);
            return -1;
        }
        if (!s->g->ix && !(it = calloc(1, sizeof *it))) {
            seq_free(s);
            return sl_err(err, errlen, "out of memory");
        }
        if (it) it->seq = s;
    }

    pthread_mutex_lock(&e->mu);
    if (e->stopping || e->n_pending + e->n_prep >= e->o.max_queued) {
        free(it);
        pthread_mutex_unlock(&e->mu);
        seq_free(s);
        sl_err(err, errlen, "the server is busy: %d requests are waiting; retry shortly", e->o.max_queued);
        return ENG_EBUSY;
    }
    s->id = e->next_id++;
    s->t_submit = sl_now_ns();
    /* the engine thread may finish and free s as soon as mu is released */
    if (id) *id = s->id;
    if (it) { /* to the grammar worker first; it queues s when the index is ready */
        if (e->prep_tail) e->prep_tail->next = it;
        else e->prep_head = it;
        e->prep_tail = it;
        e->n_prep++;
        pthread_cond_signal(&e->prep_cv);
    } else {
        if (e->pending_tail) e->pending_tail->next = s;
        else e->pending = s;
        e->pending_tail = s;
        e->n_pending++;
    }
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
    for (prep_item_t *it = e->prep_head; it; it = it->next)
        if (it->seq && it->seq->id == id) atomic_store(&it->seq->cancel, true);
    if (e->prep_cur && e->prep_cur->id == id) atomic_store(&e->prep_cur->cancel, true);
    for (eng_emb_t *j = e->emb_head; j; j = j->next)
        if (j->id == id) atomic_store(&j->cancel, true);
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

int eng_grammar_prepare(eng_t *e, const eng_grammar_t *g, void *user, char *err, size_t errlen) {
    if (e->embeds) return sl_err(err, errlen, "this is an embedding model: it does not generate text");
    if (!e->gv) return sl_err(err, errlen, "constrained generation is not available for this model (no grammar vocabulary)");
    if (!g || g->kind < GRAM_SRC_GBNF || g->kind > GRAM_SRC_JSON_OBJECT)
        return sl_err(err, errlen, "unknown grammar kind %d", g ? g->kind : 0);
    const bool has_text = g->kind != GRAM_SRC_JSON_ANY && g->kind != GRAM_SRC_JSON_OBJECT;
    if (has_text && !g->text) return sl_err(err, errlen, "the grammar has no source text");
    if (g->vocab && gram_vocab_size(g->vocab) != (size_t)e->n_vocab)
        return sl_err(err, errlen, "the grammar vocabulary has %zu tokens, the model %d", gram_vocab_size(g->vocab),
                      e->n_vocab);
    prep_item_t *it = calloc(1, sizeof *it);
    if (!it) return sl_err(err, errlen, "out of memory");
    it->kind = g->kind;
    it->vocab = g->vocab ? g->vocab : e->gv;
    it->user = user;
    it->len = has_text ? g->len : 0;
    it->text = malloc(it->len + 1);
    it->prefix = g->prefix_len ? malloc(g->prefix_len) : NULL;
    if (!it->text || (g->prefix_len && !it->prefix)) {
        free(it->text);
        free(it);
        return sl_err(err, errlen, "out of memory");
    }
    if (it->len) memcpy(it->text, g->text, it->len);
    it->text[it->len] = 0;
    if (g->prefix_len) memcpy(it->prefix, g->prefix, g->prefix_len);
    it->prefix_len = g->prefix_len;
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        free(it->text);
        free(it->prefix);
        free(it);
        return sl_err(err, errlen, "the engine is shutting down");
    }
    if (e->prep_tail) e->prep_tail->next = it;
    else e->prep_head = it;
    e->prep_tail = it;
    pthread_cond_signal(&e->prep_cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int eng_embed(eng_t *e, const eng_embed_req_t *r, uint64_t *id, char *err, size_t errlen) {
    if (!e->embeds) return sl_err(err, errlen, "this model does not make embeddings");
    if (r->n_inputs < 1 || !r->tokens || !r->n_tokens || !r->out) return sl_err(err, errlen, "no input to embed");
    for (int i = 0; i < r->n_inputs; i++) {
        if (r->n_tokens[i] < 1 || r->n_tokens[i] > e->o.n_ctx)
            return sl_err(err, errlen, "input %d has %d tokens; this model takes 1 to %d", i, r->n_tokens[i],
                          e->o.n_ctx);
        for (int k = 0; k < r->n_tokens[i]; k++)
            if (r->tokens[i][k] < 0 || r->tokens[i][k] >= e->n_vocab)
                return sl_err(err, errlen, "input %d: token id %d is outside the vocabulary (0..%d)", i,
                              (int)r->tokens[i][k], e->n_vocab - 1);
    }
    eng_emb_t *j = calloc(1, sizeof *j);
    if (!j) return sl_err(err, errlen, "out of memory");
    j->r = *r;
    atomic_init(&j->cancel, false);
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        free(j);
        return sl_err(err, errlen, "the engine is shutting down");
    }
    if (e->n_emb >= e->o.max_queued) {
        pthread_mutex_unlock(&e->mu);
        free(j);
        return ENG_EBUSY;
    }
    j->id = e->next_id++;
    if (e->emb_tail) e->emb_tail->next = j;
    else e->emb_head = j;
    e->emb_tail = j;
    e->n_emb++;
    e->st.submitted++;
    *id = j->id;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

void eng_stats(eng_t *e, eng_stats_t *st) {
    pthread_mutex_lock(&e->mu);
    *st = e->st;
    st->running = e->n_running;
    st->queued = e->n_pending + e->n_prep + e->n_emb;
    st->live = e->n_running + e->n_pending + e->n_prep + e->n_emb;
    const uint64_t now = sl_now_ns();
    if (now - e->win_t0 >= 4000000000ull) /* idle: no step closed the window */
        st->tokens_per_s = (double)(e->st.tokens_generated - e->win_gen) * 1e9 / (double)(now - e->win_t0);
    pthread_mutex_unlock(&e->mu);
}

static void hist_write(sl_buf_t *b, const char *name, const char *help, eng_stats_t *sts, const char *const *names,
                       int n, bool itl) {
    sl_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i < n; i++) {
        const eng_hist_t *h = itl ? &sts[i].itl : &sts[i].ttft;
        uint64_t cum = 0;
        for (int k = 0; k <= ENG_HIST_BUCKETS; k++) {
            cum += h->count[k];
            if (k < ENG_HIST_BUCKETS)
                sl_buf_printf(b, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", name, names[i], eng_hist_bounds[k],
                              (unsigned long long)cum);
            else
                sl_buf_printf(b, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", name, names[i],
                              (unsigned long long)cum);
        }
        sl_buf_printf(b, "%s_sum{model=\"%s\"} %.6f\n%s_count{model=\"%s\"} %llu\n", name, names[i], h->sum, name,
                      names[i], (unsigned long long)h->n);
    }
}

void eng_metrics_write(sl_buf_t *b, eng_t *const *engines, const char *const *names, int n) {
    if (n <= 0) return;
    eng_stats_t *sts = calloc((size_t)n, sizeof *sts);
    if (!sts) return;
    for (int i = 0; i < n; i++) eng_stats(engines[i], &sts[i]);
#define GAUGE(name, help, type, fmt, expr)                                                              \
    do {                                                                                               \
        sl_buf_printf(b, "# HELP " name " " help "\n# TYPE " name " " type "\n");                      \
        for (int i = 0; i < n; i++) {                                                                  \
            const eng_stats_t *s = &sts[i];                                                            \
            sl_buf_printf(b, name "{model=\"%s\"} " fmt "\n", names[i], expr);                         \
        }                                                                                              \
    } while (0)
    GAUGE("silica_engine_running_sequences", "sequences admitted (holding KV blocks)", "gauge", "%d", s->running);
    GAUGE("silica_engine_waiting_sequences", "sequences queued for admission", "gauge", "%d", s->queued);
    GAUGE("silica_kv_blocks_total", "KV cache blocks in the pool", "gauge", "%d", s->kv_blocks_total);
    GAUGE("silica_kv_blocks_used", "KV blocks referenced by sequences", "gauge", "%d", s->kv_blocks_used);
    GAUGE("silica_kv_blocks_cached", "unreferenced KV blocks kept for prefix reuse (evictable)", "gauge", "%d",
          s->kv_blocks_cached);
    GAUGE("silica_kv_blocks_free", "empty KV blocks", "gauge", "%d", s->kv_blocks_free);
    GAUGE("silica_kv_block_tokens", "positions per KV block", "gauge", "%d", s->kv_block);
    GAUGE("silica_state_slots_total", "recurrent state slots (hybrid models; 0 for others)", "gauge", "%d",
          s->state_slots_total);
    GAUGE("silica_state_slots_used", "recurrent state slots held by running sequences", "gauge", "%d",
          s->state_slots_used);
    GAUGE("silica_state_checkpoints",
          "recurrent-state checkpoints held for prefix reuse (hybrid models)", "gauge", "%d",
          s->ckpt_count);
    GAUGE("silica_state_checkpoint_bytes", "KV memory held by state checkpoints", "gauge", "%llu",
          (unsigned long long)s->ckpt_bytes);
    GAUGE("silica_state_checkpoints_stored_total", "state checkpoints stored", "counter", "%llu",
          (unsigned long long)s->ckpt_stored);
    GAUGE("silica_state_checkpoint_hits_total", "sequences started from a state checkpoint",
          "counter", "%llu", (unsigned long long)s->ckpt_hits);
    GAUGE("silica_state_checkpoint_evictions_total",
          "state checkpoints dropped (LRU, or their prefix's blocks evicted)", "counter", "%llu",
          (unsigned long long)s->ckpt_evictions);
    GAUGE("silica_prefix_cache_query_tokens_total", "prompt tokens looked up in the prefix cache", "counter",
          "%llu", (unsigned long long)s->prefix_query_tokens);
    GAUGE("silica_prefix_cache_hit_tokens_total", "prompt tokens reused from the prefix cache", "counter", "%llu",
          (unsigned long long)s->prefix_hit_tokens);
    GAUGE("silica_prefix_cache_hit_rate", "hit tokens / query tokens since start", "gauge", "%.6f",
          s->prefix_query_tokens ? (double)s->prefix_hit_tokens / (double)s->prefix_query_tokens : 0.0);
    GAUGE("silica_kv_evictions_total", "cached KV blocks evicted (LRU) for reuse", "counter", "%llu",
          (unsigned long long)s->evictions);
    GAUGE("silica_engine_preemptions_total", "sequences preempted (KV freed, recomputed later)", "counter", "%llu",
          (unsigned long long)s->preemptions);
    GAUGE("silica_engine_batch_tokens_total", "tokens run through the model in batched steps", "counter", "%llu",
          (unsigned long long)s->batch_tokens);
    GAUGE("silica_engine_batch_steps_total", "batched model steps", "counter", "%llu", (unsigned long long)s->steps);
    GAUGE("silica_spec_draft_tokens_total", "speculative draft tokens verified", "counter", "%llu",
          (unsigned long long)s->spec_drafted);
    GAUGE("silica_spec_accepted_tokens_total", "speculative draft tokens accepted (model passes saved)",
          "counter", "%llu", (unsigned long long)s->spec_accepted);
    GAUGE("silica_spec_verify_steps_total", "speculative verification passes", "counter", "%llu",
          (unsigned long long)s->spec_steps);
    GAUGE("silica_spec_acceptance_rate", "accepted / drafted tokens since start", "gauge", "%.6f",
          s->spec_drafted ? (double)s->spec_accepted / (double)s->spec_drafted : 0.0);
    GAUGE("silica_generation_tokens_per_second", "generated tokens per second over the last seconds", "gauge",
          "%.3f", s->tokens_per_s);
#undef GAUGE
    hist_write(b, "silica_time_to_first_token_seconds", "submission to first generated token", sts, names, n,
               false);
    hist_write(b, "silica_inter_token_latency_seconds", "time between consecutive tokens of a sequence", sts, names,
               n, true);
    free(sts);
}
