/*
 * engine.h — the per-model generation engine: a request queue and one
 * engine thread that runs the model for every admitted sequence.
 *
 * The API is asynchronous and knows nothing of HTTP:
 *   - eng_submit() queues one sequence (prompt token ids, sampling
 *     parameters with their seed, stop token ids, max tokens) and returns its
 *     id at once; a full queue is ENG_EBUSY (the server answers 503).
 *   - Events come back through the eng_event_fn given to eng_new(), called
 *     on the engine thread: one ENG_EV_TOKEN per generated token (id,
 *     logprob, top alternatives), then exactly one ENG_EV_FINISH (reason and
 *     usage). After the FINISH callback returns the engine never mentions
 *     that sequence again, so the submitter may free what `user` points to.
 *     The callback must be quick and thread-safe (push to a queue and wake
 *     the consumer); it must not call back into the engine.
 *   - eng_cancel(id) may be called from any thread at any time; the
 *     sequence stops before its next model step, its KV cache is freed, and
 *     its FINISH (ENG_FINISH_CANCELLED) follows. Cancelling an id that has
 *     already finished is a no-op.
 *
 * Scheduling (continuous batching, see docs/engine.md): every engine step
 * runs ONE batched model call over the decode token of every running
 * sequence plus chunks (ENG_PREFILL_CHUNK tokens at most) of pending
 * prefills, up to max_batch_tokens tokens, so each weight is read once per
 * step for all sequences. KV lives in a paged pool (blocks of kv_block
 * positions, F16 by default, budget kv_mem bytes); a sequence is admitted
 * (FCFS, at most max_running) when the free blocks cover its prompt; when
 * blocks run out mid-generation the youngest sequence is preempted (its
 * blocks freed, recomputed later from its tokens, first in line). Full
 * blocks are kept in a prefix cache keyed by the chained hash of their
 * tokens: a new sequence reuses every cached full block of its prompt
 * (usage.cached_tokens) and unreferenced blocks are evicted LRU; a hybrid
 * model's sequence reuses them only up to a recurrent-state checkpoint
 * (saved at block boundaries in pool blocks, see docs/engine.md). Sequences
 * submitted with the same prompt while the first is still prefilling (n>1)
 * share its blocks (copy-on-write of the partly filled last block) instead
 * of recomputing. More than max_queued waiting is ENG_EBUSY.
 *
 * Threads: the engine thread alone touches the model, KV caches and
 * samplers. Submit/cancel/stats take the engine mutex briefly.
 */
#ifndef SILICA_ENGINE_H
#define SILICA_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "kernels/quant.h"
#include "model/model.h"
#include "sampling/sampling.h"

#define ENG_EBUSY (-2)
#define ENG_PREFILL_CHUNK 256

typedef struct eng eng_t;

typedef enum eng_finish {
    ENG_FINISH_STOP = 0,   /* a stop token id was sampled (not reported as a token) */
    ENG_FINISH_LENGTH,     /* max_tokens reached, or the context is full */
    ENG_FINISH_CANCELLED,  /* eng_cancel() or engine shutdown */
    ENG_FINISH_ERROR,      /* the model failed; ev->error says why */
} eng_finish_t;

/* ENG_EV_PROMPT (only for requests with score_prompt): the logprob of
 * prompt token `pos` (1 .. n_prompt-1, in order, before any TOKEN) under
 * the model's raw distribution after the tokens before it.
 * ENG_EV_GRAMMAR: the answer to eng_grammar_prepare() (see below); `id` is
 * 0, `user` the pointer given to it. */
typedef enum eng_ev_type { ENG_EV_TOKEN = 0, ENG_EV_FINISH, ENG_EV_PROMPT, ENG_EV_GRAMMAR } eng_ev_type_t;

typedef struct eng_usage {
    int prompt_tokens;     /* prompt tokens prefilled (fewer when cancelled during prefill) */
    int cached_tokens;     /* prompt tokens whose KV was reused, not recomputed */
    int completion_tokens; /* sampled tokens, including a final stop token */
} eng_usage_t;

typedef struct eng_event {
    eng_ev_type_t type;
    uint64_t id;      /* the sequence */
    void *user;       /* as given in the request */
    uint64_t t_ns;    /* sl_now_ns() when the engine produced the event */
    /* ENG_EV_TOKEN, ENG_EV_PROMPT */
    smp_result_t tok; /* id, logprob, top alternatives */
    int pos;          /* ENG_EV_PROMPT: the prompt position of tok.id */
    /* ENG_EV_FINISH (TOKEN events carry the usage so far too) */
    eng_finish_t finish;
    eng_usage_t usage;
    const char *error; /* ENG_FINISH_ERROR: a message; valid during the callback */
    /* ENG_EV_GRAMMAR: the prepared index (a reference the receiver owns:
     * pass it as eng_grammar_t.index, give it back with gram_index_release),
     * or NULL with finish = ENG_FINISH_ERROR and `error` (the grammar does
     * not compile — e.g. an unsupported JSON-Schema keyword, named — or the
     * prefix is not accepted by it), or NULL with ENG_FINISH_CANCELLED when
     * the engine shut down first. */
    struct gram_index *grammar;
} eng_event_t;

typedef void (*eng_event_fn)(const eng_event_t *ev, void *ctx);

/* ---- grammar-constrained generation (structured output, tool calls) ----
 *
 * A sequence may carry a grammar (grammar/grammar.h). The engine gives each
 * sequence its own matcher (n>1 => n matchers over one shared index); at
 * every step the matcher's token mask is applied to the logits before
 * logit_bias, penalties, temperature, top-k/p (smp_sample_grammar), so only
 * tokens the grammar allows can be sampled. End-of-generation ids (those of
 * the vocabulary given in eng_opts_t.gram_vocab) are allowed only where the
 * grammar can end; when the grammar is complete and nothing else may follow
 * (gram_matcher_is_terminated) the sequence finishes with ENG_FINISH_STOP.
 * max_tokens still cuts (ENG_FINISH_LENGTH: the text may then be incomplete).
 *
 * The index: `index` if given (a reference from eng_grammar_prepare or
 * gram_index_cached; the engine takes its own per sequence), else the engine
 * compiles/looks up (kind, text) through gram_index_cached on its grammar
 * worker thread before the sequence is admitted (never on the caller's
 * thread, never inside a model step); a failure then finishes the sequence
 * with ENG_FINISH_ERROR. To answer a bad grammar with a 400 before any
 * response starts, prepare it first (eng_grammar_prepare) and submit with
 * the index.
 *
 * Lazy grammars (tool_choice "auto"): when any trigger is given, the
 * sequence is generated unconstrained until its output text (prefix
 * included) contains a trigger word, starts with a start word (after
 * leading whitespace), or a trigger id is sampled. A matcher is then fed
 * the output from the trigger's first byte and constrains the rest (so the
 * grammar's root must begin with the trigger text). If the grammar refuses
 * those bytes the sequence goes on unconstrained. */
typedef struct eng_grammar {
    int kind;                 /* GRAM_SRC_*; 0 = no grammar */
    const char *text;         /* GBNF / regex / JSON Schema text (copied); unused for JSON_ANY/OBJECT */
    size_t len;
    struct gram_index *index; /* optional prepared index (borrowed; the engine takes a reference) */
    const char *const *trigger_words; /* lazy: anywhere in the output (copied) */
    size_t n_trigger_words;
    const char *const *start_words;   /* lazy: only at the start of the output, after whitespace */
    size_t n_start_words;
    const int32_t *trigger_ids;       /* lazy: sampling one of these ids (its text is fed) */
    size_t n_trigger_ids;
    /* Prefix continuation: the output continues text already in the prompt;
     * the grammar is first advanced over these bytes (copied). */
    const char *prefix;
    size_t prefix_len;
    /* The vocabulary to index (kind, text) against, when not the engine's
     * (eng_opts_t.gram_vocab): same size, e.g. one without the marker
     * tokens a tool-call grammar needs (borrowed; must outlive the engine). */
    const struct gram_vocab *vocab;
} eng_grammar_t;

/* True when g asks for a grammar (kind set). */
static inline bool eng_grammar_set(const eng_grammar_t *g) {
    return g && g->kind != 0;
}

typedef struct eng_request {
    const int32_t *prompt; /* copied */
    size_t n_prompt;       /* >= 1 */
    int max_tokens;        /* >= 1; the sequence also ends when the context is full */
    smp_params_t sampling; /* bias copied */
    const int32_t *stop_ids; /* copied; sampling one ends the sequence (ENG_FINISH_STOP) */
    size_t n_stop_ids;
    void *user;
    /* Prompt scoring (completions echo + logprobs): ENG_EV_PROMPT for every
     * prompt token after the first, with score_top (0..SMP_MAX_TOP_LOGPROBS)
     * alternatives. Such a sequence computes its whole prompt (no prefix
     * cache reuse, no sharing with an identical prompt) in chunks of
     * ENG_SCORE_CHUNK tokens. */
    bool score_prompt;
    int score_top;
    /* Constrained generation (see eng_grammar_t); zero = none. */
    eng_grammar_t grammar;
    /* Reasoning budget (thinking_budget); think_budget 0 = none. The engine
     * counts the tokens sampled inside a reasoning block — open from the
     * first token when think_open, else from a sampled think_start_id, until
     * a sampled think_end_id (the markers themselves are not counted). When
     * think_budget tokens were counted and the block is still open, the
     * next tokens are not sampled: the think_close ids (copied; they should
     * contain think_end_id, e.g. "\n</think>\n\n") are emitted in order as
     * TOKEN events, each with its logprob under the model's distribution,
     * fed to the sampler's penalties and to a grammar like sampled ones;
     * then sampling goes on. They count toward max_tokens. */
    int think_budget;
    bool think_open;
    int32_t think_start_id, think_end_id; /* -1: none */
    const int32_t *think_close;
    size_t n_think_close;
    /* Speculative decoding opt-out for this request (the engine's --spec
     * policy otherwise; see eng_opts_t.spec). */
    bool no_spec;
} eng_request_t;

#define ENG_SCORE_CHUNK 16

typedef struct eng_opts {
    int n_threads;   /* kernel threads; default 1 */
    int n_ctx;       /* positions per sequence; default min(4096, training context) */
    int max_running; /* sequences holding a KV cache; default 8 */
    int max_queued;  /* waiting sequences before ENG_EBUSY; default 256 */
    sl_type_t kv_type; /* legacy: superseded by `kv` (SL_TYPE_F16 still means F16) */
    /* continuous batching (zero values: defaults) */
    size_t kv_mem;        /* bytes of KV blocks (and of hybrid models' recurrent
                           * state slots, max_running of them); default: room for
                           * max_running full contexts, at most a quarter of
                           * physical memory */
    int kv_block;         /* positions per KV block; default ENG_KV_BLOCK */
    int max_batch_tokens; /* tokens per step (decode + prefill chunks); default 512 */
    int kv;               /* ENG_KV_DEFAULT (F16), ENG_KV_F16, ENG_KV_F32, ENG_KV_Q8_0 */
    bool no_prefix_cache; /* do not reuse cached blocks across sequences (nor keep hybrid
                           * models' state checkpoints) */
    /* hybrid models: prompt tokens between recurrent-state checkpoints taken
     * during a prefill (rounded up to whole blocks); 0: ENG_CKPT_INTERVAL;
     * < 0: none but the prompt's last full block and the end of generation
     * (see docs/engine.md, "State checkpoints") */
    int ckpt_interval;
    /* The model's vocabulary as grammar byte strings (borrowed; must outlive
     * the engine; its size must equal the model's n_vocab). NULL: requests
     * with a grammar are refused. */
    const struct gram_vocab *gram_vocab;
    /* Speculative decoding (docs/engine.md, "Speculative decoding"): a
     * decoding sequence proposes up to spec_max tokens from an n-gram
     * lookup in its own prompt + output; one pass verifies them, and the
     * sampler keeps exactly the tokens it would have drawn anyway.
     * ENG_SPEC_DEFAULT (0): ENG_SPEC_NGRAM; ENG_SPEC_OFF; ENG_SPEC_NGRAM.
     * Hybrid recurrent models never speculate (their state cannot be
     * rolled back). spec_max 0: ENG_SPEC_MAX (at most ENG_SPEC_MAX_LIMIT). */
    int spec;
    int spec_max;
    /* Test hook: when set, it replaces the n-gram drafter and (unless
     * spec_draft_policy) the adaptive policy: every decode step of every sequence asks it for up to `max`
     * draft tokens after toks[0..n_toks) (n_prompt of them the prompt) and
     * verifies what it returns (0..max, written to out). */
    int (*spec_draft)(void *ctx, const int32_t *toks, int n_toks, int n_prompt, int32_t *out, int max);
    void *spec_ctx;
    bool spec_draft_policy; /* test hook: the policy sizes (or refuses) the hook's drafts too */
} eng_opts_t;

enum { ENG_SPEC_DEFAULT = 0, ENG_SPEC_OFF, ENG_SPEC_NGRAM };
#define ENG_SPEC_MAX 6        /* default longest draft */
#define ENG_SPEC_MAX_LIMIT 32 /* spec_max's upper bound */
/* A step that already runs this many tokens (decodes + prompt chunks) is
 * past the memory-bound regime on a CPU: no drafts are added beyond it. */
#define ENG_SPEC_BATCH 16

#define ENG_KV_BLOCK 16
#define ENG_CKPT_INTERVAL 2048
enum { ENG_KV_DEFAULT = 0, ENG_KV_F16, ENG_KV_F32, ENG_KV_Q8_0 };
/* "f16", "f32", "q8_0" → ENG_KV_*; -1 when unknown. */
int eng_kv_from_name(const char *name);
/* Parses a memory size: "512M", "2G", "1.5GiB", "300000000"; 0 or -1. */
int eng_parse_mem(const char *s, size_t *out);

#define ENG_HIST_BUCKETS 14 /* latency histogram upper bounds, seconds (see eng_hist_bounds) */
extern const double eng_hist_bounds[ENG_HIST_BUCKETS];
typedef struct eng_hist {
    uint64_t count[ENG_HIST_BUCKETS + 1]; /* per bucket (not cumulative); last: +Inf */
    double sum;                           /* seconds */
    uint64_t n;
} eng_hist_t;

typedef struct eng_stats {
    int live;          /* sequences submitted and not yet finished (queued + running) */
    int running;
    int queued;
    uint64_t submitted, finished, cancelled;
    uint64_t tokens_generated, prompt_tokens;
    uint64_t steps;          /* model calls */
    uint64_t busy_ns;        /* time spent in model calls + sampling */
    /* continuous batching, paged KV, prefix cache */
    int kv_blocks_total, kv_blocks_used, kv_blocks_cached, kv_blocks_free;
    int kv_block;                 /* positions per block */
    /* hybrid models (qwen35): recurrent state slots, one per running sequence (0 / 0 for others) */
    int state_slots_total, state_slots_used;
    /* hybrid models: recurrent-state checkpoints kept for prefix reuse; they
     * live in KV blocks of the pool (kv_blocks_ckpt of them: neither used,
     * cached nor free; used + cached + free + ckpt = total) */
    int kv_blocks_ckpt;
    int ckpt_count;      /* checkpoints held now */
    uint64_t ckpt_bytes; /* KV memory they hold (their blocks' bytes) */
    uint64_t ckpt_stored, ckpt_hits,
        ckpt_evictions;           /* evictions: LRU, or their prefix's blocks evicted */
    uint64_t batch_tokens;        /* tokens run through the model (all steps) */
    uint64_t prefix_query_tokens; /* prompt tokens looked up in the prefix cache */
    uint64_t prefix_hit_tokens;   /* of those, reused from cached blocks */
    uint64_t preemptions, evictions;
    /* speculative decoding: draft tokens verified, of those accepted (each
     * accepted token is one model pass saved), verification passes */
    uint64_t spec_drafted, spec_accepted, spec_steps;
    double tokens_per_s;          /* generated tokens/s over the last few seconds */
    eng_hist_t ttft;              /* submit → first token, seconds */
    eng_hist_t itl;               /* between consecutive tokens of a sequence */
} eng_stats_t;

/* Starts the engine thread for model m (borrowed: it must outlive the
 * engine). `opts` may be NULL for defaults. */
eng_t *eng_new(sl_model_t *m, const eng_opts_t *opts, eng_event_fn fn, void *ctx, char *err,
               size_t errlen);
/* Cancels everything (each sequence still gets its FINISH), joins the thread. */
void eng_free(eng_t *e);

int eng_n_ctx(const eng_t *e);
int eng_n_vocab(const eng_t *e);

/* Returns 0 and *id, ENG_EBUSY when the queue is full, or -1 with a message
 * (invalid request: empty prompt, prompt longer than the context, bad
 * sampling parameters). On success the FINISH event is guaranteed. */
int eng_submit(eng_t *e, const eng_request_t *r, uint64_t *id, char *err, size_t errlen);
void eng_cancel(eng_t *e, uint64_t id);

/* Prepares g's index off the caller's thread: on the engine's grammar worker,
 * gram_index_cached(kind, text) (a cache hit is immediate; a miss compiles
 * and indexes: ~20-30 ms on a 152k vocabulary) and, when g->prefix is set,
 * a check that the grammar accepts the prefix. Then ENG_EV_GRAMMAR with
 * `user` (always exactly one, also at shutdown). Triggers are ignored here.
 * Returns 0, or -1 with a message (no grammar vocabulary, out of memory). */
int eng_grammar_prepare(eng_t *e, const eng_grammar_t *g, void *user, char *err, size_t errlen);
void eng_stats(eng_t *e, eng_stats_t *st);

/* ---- embeddings (embedding models: model_embed_dim(m) > 0) ----
 *
 * An embedding model's engine (an encoder such as bert, or a decoder whose
 * file names a pooling, such as Qwen3-Embedding) takes no generation requests (eng_submit and
 * eng_grammar_prepare refuse them) and keeps no KV cache. eng_embed()
 * queues one request of n_inputs token sequences (special tokens in place)
 * and returns its id at once. The engine thread runs the queued requests'
 * inputs round-robin (one input of each request in turn, so a small
 * request is not held behind a large one), several requests' inputs per
 * model call (up to ENG_EMBED_BATCH tokens, at least one input), writes
 * input i's pooled
 * vector (model_embed_dim floats, raw) to out + i × dim, and then sends
 * exactly one ENG_EV_FINISH: ENG_FINISH_STOP when every input is written,
 * ENG_FINISH_CANCELLED (eng_cancel, shutdown: checked between model calls)
 * or ENG_FINISH_ERROR; usage.prompt_tokens counts the tokens computed. The
 * token arrays and `out` are borrowed: they must stay valid, and out
 * untouched, until the FINISH. More than max_queued waiting requests is
 * ENG_EBUSY. */
#define ENG_EMBED_BATCH 2048

typedef struct eng_embed_req {
    const int32_t *const *tokens; /* n_inputs arrays */
    const int32_t *const *types;  /* NULL, or n_inputs arrays (each NULL: all segment 0) */
    const int *n_tokens;          /* each 1 .. eng_n_ctx (model_embed_max_tokens, capped by the context option) */
    int n_inputs;                 /* >= 1 */
    float *out;                   /* n_inputs × model_embed_dim floats */
    void *user;
} eng_embed_req_t;

int eng_embed(eng_t *e, const eng_embed_req_t *r, uint64_t *id, char *err, size_t errlen);

/* Appends Prometheus text for n engines (label model="names[i]"): running /
 * waiting sequences, KV blocks used/free/cached, prefix-cache hit rate,
 * tokens/s, preemptions, TTFT and inter-token latency histograms. */
void eng_metrics_write(sl_buf_t *b, eng_t *const *engines, const char *const *names, int n);

#endif
