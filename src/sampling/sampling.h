/*
 * sampling.h — turning one position's logits into the next token.
 *
 * A sampler (smp_t) belongs to one sequence: it holds the request's sampling
 * parameters, its own random generator (seeded per request, so the same seed
 * and the same logits give the same tokens) and the token history the
 * penalties need. It is not thread-safe; the engine thread alone uses it.
 *
 * The pipeline, in order, on the logits of the vocabulary:
 *   1. logit_bias:          l[id] += bias                     (OpenAI, -100..100)
 *   2. repetition_penalty:  for ids seen in prompt or completion,
 *                           l > 0 ? l / r : l * r              (r = 1: off)
 *   3. frequency/presence:  l -= count*frequency + (count>0)*presence
 *                           over completion tokens only (OpenAI's definition)
 *   4. logprobs:            log-softmax of these logits (temperature 1) —
 *                           what `logprobs`/`top_logprobs` report
 *   5. temperature 0:       argmax (ties: lowest id), else
 *      l /= temperature, top_k, softmax, top_p (smallest prefix of the sorted
 *      distribution whose mass >= top_p), min_p (drop p < min_p * p_max),
 *      then one draw from the renormalised remainder.
 */
#ifndef SILICA_SAMPLING_H
#define SILICA_SAMPLING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMP_MAX_TOP_LOGPROBS 20

typedef struct smp_bias {
    int32_t id;
    float bias;
} smp_bias_t;

typedef struct smp_params {
    float temperature;        /* 0 = greedy */
    int top_k;                /* 0 = off */
    float top_p;              /* 1 = off */
    float min_p;              /* 0 = off */
    float frequency_penalty;  /* 0 = off */
    float presence_penalty;   /* 0 = off */
    float repetition_penalty; /* 1 = off */
    const smp_bias_t *bias;   /* copied by smp_new */
    size_t n_bias;
    uint64_t seed;
    int n_top_logprobs; /* 0..SMP_MAX_TOP_LOGPROBS alternatives to report */
    bool no_logprob;    /* nobody reads logprob: skip the O(V) normaliser (result logprob 0) */
} smp_params_t;

typedef struct smp_logprob {
    int32_t id;
    float logprob;
} smp_logprob_t;

typedef struct smp_result {
    int32_t id;      /* the chosen token */
    float logprob;   /* its log-probability (step 4 above) */
    int n_top;       /* entries in top, most likely first */
    smp_logprob_t top[SMP_MAX_TOP_LOGPROBS];
} smp_result_t;

typedef struct smp smp_t;

/* Defaults: temperature 1, everything else off, seed 0. */
void smp_params_default(smp_params_t *p);
/* Checks ranges (temperature 0..2 is not enforced here: the server does the
 * OpenAI checks; this checks what would break the math). */
int smp_params_check(const smp_params_t *p, int n_vocab, char *err, size_t errlen);

smp_t *smp_new(const smp_params_t *p, int n_vocab, char *err, size_t errlen);
void smp_free(smp_t *s);
int smp_n_vocab(const smp_t *s);

/* History for the penalties: prompt tokens count for repetition_penalty
 * only; accepted (generated) tokens count for all three. Return 0 or -1 (OOM). */
int smp_accept_prompt(smp_t *s, const int32_t *ids, size_t n);
int smp_accept(smp_t *s, int32_t id);

/* Samples from logits[0..n_vocab) (modified in place). Does not accept the
 * token: call smp_accept() with it. Returns 0, or -1 when no token is left
 * (all logits -inf / NaN). */
int smp_sample(smp_t *s, float *logits, smp_result_t *out);

/* Constrained sampling: as smp_sample, but only ids whose bit is set in
 * `allowed` (bit id % 32 of word id / 32; (n_vocab + 31) / 32 words; NULL =
 * all allowed) can be chosen. Disallowed logits become -inf BEFORE step 1,
 * so no logit_bias or penalty can revive them, and the reported logprobs
 * are those of the constrained distribution. Returns -1 when no allowed
 * token has a finite logit. */
int smp_sample_masked(smp_t *s, float *logits, const uint32_t *allowed, smp_result_t *out);

/* Grammar-constrained step (sampling/smp_grammar.c; links the grammar part):
 * fills m's token mask into mask_buf (gram_mask_words() words), samples
 * with it, then accepts the chosen token into the matcher and into the
 * sampler's history. End-of-generation ids are in the mask only where the
 * grammar can end. Returns 0; -1 when the matcher has terminated, no
 * allowed token is left, the vocabulary sizes differ, or out of memory. */
struct gram_matcher;
int smp_sample_grammar(smp_t *s, struct gram_matcher *m, float *logits, uint32_t *mask_buf,
                       smp_result_t *out);

/* The sampler's generator, exposed for tests: uniform double in [0, 1). */
double smp_rand_uniform(smp_t *s);

#endif
