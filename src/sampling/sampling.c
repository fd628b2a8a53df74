/*
 * sampling.c — the sampler pipeline described in sampling.h.
 *
 * Cost per call: O(V) for bias/penalties/logprobs plus the candidate
 * selection. top_p without top_k does not sort the whole vocabulary: it
 * partially selects the best 64, 256, ... candidates until their mass
 * reaches top_p (the mass is exact: normalised by the full sum).
 */
#include "sampling/sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "kernels/kernels.h"

/* Token history: open-addressing map id -> (completion count, seen in prompt). */
typedef struct hist_slot {
    int32_t id; /* -1 = empty */
    uint32_t count;
    uint8_t in_prompt;
} hist_slot_t;

typedef struct cand {
    int32_t id;
    float l;
} cand_t;

struct smp {
    smp_params_t p;
    smp_bias_t *bias;
    int n_vocab;
    uint64_t rng[4];
    hist_slot_t *slots;
    size_t cap, used; /* cap is a power of two */
    cand_t *cand;     /* scratch, n_vocab entries */
};

/* ---- random numbers: xoshiro256** seeded through splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

double smp_rand_uniform(smp_t *s) {
    return (double)(rng_next(s->rng) >> 11) * (1.0 / 9007199254740992.0);
}

void smp_params_default(smp_params_t *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->repetition_penalty = 1.0f;
}

int smp_params_check(const smp_params_t *p, int n_vocab, char *err, size_t errlen) {
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return sl_err(err, errlen, "temperature must be >= 0");
    if (p->top_k < 0) return sl_err(err, errlen, "top_k must be >= 0");
    if (!(p->top_p > 0 && p->top_p <= 1)) return sl_err(err, errlen, "top_p must be in (0, 1]");
    if (!(p->min_p >= 0 && p->min_p <= 1)) return sl_err(err, errlen, "min_p must be in [0, 1]");
    if (!isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty))
        return sl_err(err, errlen, "penalties must be finite");
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return sl_err(err, errlen, "repetition_penalty must be > 0");
    if (p->n_top_logprobs < 0 || p->n_top_logprobs > SMP_MAX_TOP_LOGPROBS)
        return sl_err(err, errlen, "top_logprobs must be in 0..%d", SMP_MAX_TOP_LOGPROBS);
    for (size_t i = 0; i < p->n_bias; i++) {
        if (p->bias[i].id < 0 || p->bias[i].id >= n_vocab)
            return sl_err(err, errlen, "logit_bias token id %d is outside the vocabulary (0..%d)",
                          (int)p->bias[i].id, n_vocab - 1);
        if (!isfinite(p->bias[i].bias)) return sl_err(err, errlen, "logit_bias values must be finite");
    }
    return 0;
}

smp_t *smp_new(const smp_params_t *p, int n_vocab, char *err, size_t errlen) {
    if (n_vocab <= 0) {
        sl_err(err, errlen, "empty vocabulary");
        return NULL;
    }
    if (smp_params_check(p, n_vocab, err, errlen) != 0) return NULL;
    smp_t *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->p = *p;
    s->n_vocab = n_vocab;
    if (p->n_bias) {
        s->bias = malloc(p->n_bias * sizeof *s->bias);
        if (!s->bias) goto oom;
        memcpy(s->bias, p->bias, p->n_bias * sizeof *s->bias);
    }
    s->p.bias = s->bias;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    if (!s->cand) goto oom;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    return s;
oom:
    smp_free(s);
    sl_err(err, errlen, "out of memory");
    return NULL;
}

int smp_n_vocab(const smp_t *s) {
    return s->n_vocab;
}

void smp_free(smp_t *s) {
    if (!s) return;
    free(s->bias);
    free(s->slots);
    free(s->cand);
    free(s);
}

static size_t hist_hash(int32_t id, size_t cap) {
    return ((uint32_t)id * 2654435761u) & (cap - 1);
}

static hist_slot_t *hist_get(smp_t *s, int32_t id) {
    if (s->used * 2 >= s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        hist_slot_t *ns = malloc(ncap * sizeof *ns);
        if (!ns) return NULL;
        for (size_t i = 0; i < ncap; i++) ns[i].id = -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (s->slots[i].id < 0) continue;
            size_t h = hist_hash(s->slots[i].id, ncap);
            while (ns[h].id >= 0) h = (h + 1) & (ncap - 1);
            ns[h] = s->slots[i];
        }
        free(s->slots);
        s->slots = ns;
        s->cap = ncap;
    }
    size_t h = hist_hash(id, s->cap);
    while (s->slots[h].id >= 0 && s->slots[h].id != id) h = (h + 1) & (s->cap - 1);
    if (s->slots[h].id < 0) {
        s->slots[h].id = id;
        s->slots[h].count = 0;
        s->slots[h].in_prompt = 0;
        s->used++;
    }
    return &s->slots[h];
}

int smp_accept_prompt(smp_t *s, const int32_t *ids, size_t n) {
    if (s->p.repetition_penalty == 1.0f) return 0; /* only that penalty reads the prompt */
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= s->n_vocab) continue;
        hist_slot_t *h = hist_get(s, ids[i]);
        if (!h) return -1;
        h->in_prompt = 1;
    }
    return 0;
}

int smp_accept(smp_t *s, int32_t id) {
    if (id < 0 || id >= s->n_vocab) return 0;
    if (s->p.repetition_penalty == 1.0f && s->p.frequency_penalty == 0 && s->p.presence_penalty == 0)
        return 0;
    hist_slot_t *h = hist_get(s, id);
    if (!h) return -1;
    h->count++;
    return 0;
}

/* Descending by logit, ties by ascending id (a total order: results do not
 * depend on the sort algorithm). */
static int cand_cmp(const void *a, const void *b) {
    const cand_t *x = a, *y = b;
    if (x->l > y->l) return -1;
    if (x->l < y->l) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

static inline int cand_before(const cand_t *x, const cand_t *y) {
    return x->l > y->l || (x->l == y->l && x->id < y->id);
}

/* Rearranges c[0..n) so that its best k (by cand_before) come first, sorted. */
static void select_top(cand_t *c, size_t n, size_t k) {
    if (k >= n) {
        qsort(c, n, sizeof *c, cand_cmp);
        return;
    }
    size_t lo = 0, hi = n; /* quickselect on [lo, hi) for the k-th position */
    while (hi - lo > 1) {
        cand_t pivot = c[lo + (hi - lo) / 2];
        size_t i = lo, j = hi - 1;
        while (i <= j) {
            while (cand_before(&c[i], &pivot)) i++;
            while (cand_before(&pivot, &c[j])) j--;
            if (i <= j) {
                cand_t t = c[i];
                c[i] = c[j];
                c[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j + 1;
        else if (k >= i) lo = i;
        else break;
    }
    qsort(c, k, sizeof *c, cand_cmp);
}

/* Top-p over many candidates without sorting them all: candidates are
 * bucketed by l (all l <= 0, the best is 0) into NUCLEUS_BUCKETS equal
 * steps down to the lowest; the buckets' masses, from the top, find the one
 * where the running mass reaches top_p of the total, and only that bucket
 * is sorted to place the exact cut. Keeps the same set as sorting
 * everything: every candidate above the cut bucket, then the cut bucket's
 * best until the mass reaches top_p · total. The kept candidates are moved
 * to the front (the cut bucket's in order); returns how many. A flat
 * distribution over a 150k vocabulary (high temperature, or a weakly
 * trained model) made the sort-based search sort the whole vocabulary. */
#define NUCLEUS_SORT_MAX 4096
#define NUCLEUS_BUCKETS 4096
static size_t nucleus_buckets(cand_t *c, size_t n, float top_p) {
    float lmin = 0;
    for (size_t i = 0; i < n; i++) lmin = SL_MIN(lmin, c[i].l);
    if (!(lmin < 0)) {
        /* all equal (every l is 0, weight 1): the best ids first (the
         * sort's tie order), as many as top_p of their count */
        qsort(c, n, sizeof *c, cand_cmp);
        size_t k = (size_t)ceil((double)top_p * (double)n);
        return SL_MAX((size_t)1, SL_MIN(n, k));
    }
    const float scale = (float)(NUCLEUS_BUCKETS - 1) / -lmin;
#define BUCKET(l) SL_MIN(NUCLEUS_BUCKETS - 1, (int)(-(l) * scale))
    double mass[NUCLEUS_BUCKETS] = {0}, total = 0;
    for (size_t i = 0; i < n; i++) mass[BUCKET(c[i].l)] += (double)expf(c[i].l);
    for (int b = 0; b < NUCLEUS_BUCKETS; b++) total += mass[b];
    const double target = (double)top_p * total;
    int cut = 0;
    double above = 0; /* mass of the buckets before cut */
    while (cut < NUCLEUS_BUCKETS - 1 && above + mass[cut] < target) above += mass[cut++];
    /* front: every candidate above the cut bucket; then the cut bucket's */
    size_t front = 0;
    for (size_t i = 0; i < n; i++)
        if (BUCKET(c[i].l) < cut) {
            cand_t t = c[front];
            c[front++] = c[i];
            c[i] = t;
        }
    size_t end = front;
    for (size_t i = front; i < n; i++)
        if (BUCKET(c[i].l) == cut) {
            cand_t t = c[end];
            c[end++] = c[i];
            c[i] = t;
        }
    qsort(c + front, end - front, sizeof *c, cand_cmp);
    double cum = above;
    size_t k = front;
    while (k < end) {
        cum += (double)expf(c[k].l);
        k++;
        if (cum >= target) break;
    }
#undef BUCKET
    return SL_MAX((size_t)1, k);
}

int smp_sample_masked(smp_t *s, float *logits, const uint32_t *allowed, smp_result_t *out) {
    if (allowed) {
        const int V = s->n_vocab;
        for (int w = 0; w * 32 < V; w++) {
            uint32_t bits = allowed[w];
            if (bits == UINT32_MAX) continue;
            int end = SL_MIN(V, w * 32 + 32);
            for (int i = w * 32; i < end; i++)
                if (!((bits >> (i & 31)) & 1u)) logits[i] = -INFINITY;
        }
    }
    return smp_sample(s, logits, out);
}

int smp_sample(smp_t *s, float *logits, smp_result_t *out) {
    const int V = s->n_vocab;
    const smp_params_t *p = &s->p;
    memset(out, 0, sizeof *out);
    out->id = -1;

    for (size_t i = 0; i < p->n_bias; i++) logits[p->bias[i].id] += p->bias[i].bias;
    if (s->used) {
        for (size_t i = 0; i < s->cap; i++) {
            const hist_slot_t *h = &s->slots[i];
            if (h->id < 0) continue;
            float *l = &logits[h->id];
            if (p->repetition_penalty != 1.0f && (h->in_prompt || h->count))
                *l = *l > 0 ? *l / p->repetition_penalty : *l * p->repetition_penalty;
            if (h->count)
                *l -= (float)h->count * p->frequency_penalty + p->presence_penalty;
        }
    }

    /* log-softmax normaliser of the processed logits (temperature 1). */
    for (int i = 0; i < V; i++)
        if (logits[i] != logits[i]) logits[i] = -INFINITY; /* NaN never wins */
    /* the greedy pick (first maximum), vectorised: on the engine thread
     * while the pool waits, every step */
    const int amax = (int)sl_argmax(logits, V);
    const float mx = amax >= 0 ? logits[amax] : -INFINITY;
    if (amax < 0 || mx == -INFINITY) return -1;
    /* expf on the float differences (each term is within float range and
     * reported logprobs are floats), summed in double: a third of the cost
     * of exp on doubles over a 150k vocabulary, paid on every step. */
    /* the normaliser, for whoever reads logprobs */
    const bool want_lse = !p->no_logprob || p->n_top_logprobs > 0;
    double lse = 0;
    if (want_lse) {
        double z = 0;
        for (int i = 0; i < V; i++) z += (double)expf(logits[i] - mx);
        lse = (double)mx + log(z);
    }

    int32_t chosen;
    if (p->temperature <= 0) {
        chosen = amax;
    } else {
        const float inv_t = 1.0f / p->temperature;
        size_t n = 0;
        for (int i = 0; i < V; i++)
            if (logits[i] > -INFINITY) s->cand[n++] = (cand_t){i, (logits[i] - mx) * inv_t};
        /* after the shift the best candidate has l == 0, so exp(l) <= 1 */
        size_t keep = n;
        if (p->top_k > 0 && (size_t)p->top_k < n) {
            keep = (size_t)p->top_k;
            select_top(s->cand, n, keep);
        }
        int sorted = keep < n;
        if (p->top_p < 1.0f && keep > NUCLEUS_SORT_MAX) {
            keep = nucleus_buckets(s->cand, keep, p->top_p);
            sorted = 1;
        } else if (p->top_p < 1.0f) {
            double total = 0;
            for (size_t i = 0; i < keep; i++) total += exp((double)s->cand[i].l);
            size_t k = SL_MIN(keep, (size_t)64);
            for (;;) {
                if (!sorted || k < keep) select_top(s->cand, keep, k);
                double cum = 0;
                size_t i = 0;
                for (; i < k; i++) {
                    cum += exp((double)s->cand[i].l);
                    if (cum >= (double)p->top_p * total) break;
                }
                if (i < k) {
                    keep = i + 1;
                    break;
                }
                if (k == keep) break;
                k = k * 4 < keep ? k * 4 : keep;
            }
            sorted = 1;
        }
        if (p->min_p > 0) {
            /* p_i / p_max = exp(l_i - 0) since the best has l == 0 */
            const double thr = log((double)p->min_p);
            size_t j = 0;
            for (size_t i = 0; i < keep; i++)
                if ((double)s->cand[i].l >= thr) s->cand[j++] = s->cand[i];
            keep = j;
        }
        double sum = 0;
        for (size_t i = 0; i < keep; i++) sum += exp((double)s->cand[i].l);
        double u = smp_rand_uniform(s) * sum, acc = 0;
        chosen = s->cand[keep - 1].id;
        for (size_t i = 0; i < keep; i++) {
            acc += exp((double)s->cand[i].l);
            if (u < acc) {
                chosen = s->cand[i].id;
                break;
            }
        }
    }
    out->id = chosen;
    out->logprob = want_lse ? (float)((double)logits[chosen] - lse) : 0.0f;

    if (p->n_top_logprobs > 0) {
        /* insertion into a small sorted array: O(V * k) with k <= 20 */
        int k = SL_MIN(p->n_top_logprobs, V), m = 0;
        for (int i = 0; i < V; i++) {
            float l = logits[i];
            if (l == -INFINITY) continue; /* impossible (e.g. masked) tokens are not alternatives */
            if (m == k && !(l > out->top[m - 1].logprob)) continue;
            int j = m < k ? m++ : k - 1;
            while (j > 0 && l > out->top[j - 1].logprob) {
                out->top[j] = out->top[j - 1];
                j--;
            }
            out->top[j] = (smp_logprob_t){i, l};
        }
        for (int i = 0; i < m; i++) out->top[i].logprob = (float)((double)out->top[i].logprob - lse);
        out->n_top = m;
    }
    return 0;
}
