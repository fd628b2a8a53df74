/*
 * cmd_generate.c — `silica generate --model M.gguf -n N [--temp T] [--seed S]
 * [--top-k K] [-t THREADS] [--kv-type f32|f16] [--prompt TEXT] [--text]
 * [--stop-eos] ID...`: feeds the prompt ids in one prefill, then decodes N
 * tokens one at a time and prints the generated ids space-separated on one
 * line (with --text: their text instead). Greedy (first largest logit) when
 * the temperature is 0 or absent; otherwise softmax(logits / T), optionally
 * restricted to the top K, sampled with a generator seeded by --seed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/model_cli.h"
#include "tokenizer/tokenizer.h"

static void usage(void) {
    fprintf(stderr, "usage: silica generate --model M.gguf -n N [--temp T] [--seed S] [--top-k K] [-t THREADS]\n"
                    "         [--kv-type f32|f16] [--prompt TEXT] [--text] [--stop-eos] ID...\n");
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Picks the next token from logits (V floats; modified). */
static int32_t pick(float *logits, int V, double temp, int top_k, uint64_t *rng, float *tmp) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temp <= 0.0) return best;
    float cutoff = -INFINITY;
    if (top_k > 0 && top_k < V) {
        memcpy(tmp, logits, sizeof(float) * (size_t)V);
        qsort(tmp, (size_t)V, sizeof(float), cmp_desc);
        cutoff = tmp[top_k - 1];
    }
    double sum = 0;
    const double mx = logits[best];
    for (int i = 0; i < V; i++) {
        double p = logits[i] >= cutoff ? exp((logits[i] - mx) / temp) : 0.0;
        logits[i] = (float)p;
        sum += p;
    }
    double r = (double)(rng_next(rng) >> 11) / 9007199254740992.0 * sum;
    for (int i = 0; i < V; i++) {
        r -= logits[i];
        if (r < 0) return i;
    }
    return best;
}

int cmd_generate(int argc, char **argv) {
    mcli_opts_t o = {.kv_type = SL_TYPE_F32};
    long n_gen = -1, top_k = 0, seed = 0;
    double temp = 0;
    bool text = false, stop_eos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!mcli_int(val, 0, 1 << 20, &n_gen)) goto badval;
            i++;
        } else if (!strcmp(a, "--temp")) {
            if (!mcli_float(val, &temp) || temp < 0) goto badval;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (!mcli_int(val, 0, 0x7fffffffL, &seed)) goto badval;
            i++;
        } else if (!strcmp(a, "--top-k")) {
            if (!mcli_int(val, 0, 1 << 24, &top_k)) goto badval;
            i++;
        } else if (!strcmp(a, "--text")) {
            text = true;
        } else if (!strcmp(a, "--stop-eos")) {
            stop_eos = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            mcli_free(&o);
            return 0;
        } else {
            int r = mcli_parse_common(&o, argc, argv, &i, "generate");
            if (r < 0) goto bad;
            if (r == 0) {
                fprintf(stderr, "silica generate: unknown argument '%s'\n", a);
                usage();
                goto bad;
            }
        }
        continue;
    badval:
        fprintf(stderr, "silica generate: bad or missing value for %s\n", a);
        goto bad;
    }
    if (n_gen < 0) {
        fprintf(stderr, "silica generate: -n N is required\n");
        goto bad;
    }
    sl_model_t *m;
    sl_pool_t *pool;
    if (mcli_setup(&o, &m, &pool, "generate")) goto bad;
    if (o.n_ids == 0) {
        fprintf(stderr, "silica generate: no prompt ids (give IDs or --prompt)\n");
        sl_pool_free(pool);
        model_free(m);
        goto bad;
    }
    char err[SL_ERR_MAX];
    sl_tok_t *tok = NULL;
    if (text || stop_eos) {
        tok = tok_load(model_gguf(m), err, sizeof err);
        if (!tok) {
            fprintf(stderr, "silica generate: %s needs the model's tokenizer: %s\n", text ? "--text" : "--stop-eos",
                    err);
            sl_pool_free(pool);
            model_free(m);
            goto bad;
        }
    }
    int rc = 1;
    const int V = model_hparams(m)->n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)V * 2);
    int32_t *out = malloc(sizeof(int32_t) * (size_t)(n_gen + 1));
    model_set_ctx(m, (int)(o.n_ids + (size_t)n_gen));
    sl_kv_t *kv = model_kv_new(m, (int)(o.n_ids + (size_t)n_gen), o.kv_type, err, sizeof err);
    uint64_t rng = (uint64_t)seed;
    long n_out = 0;
    if (!logits || !out || !kv) {
        fprintf(stderr, "silica generate: %s\n", kv ? "out of memory" : err);
        goto done;
    }
    if (model_forward(m, pool, kv, o.ids, (int)o.n_ids, logits, false, err, sizeof err) != 0) {
        fprintf(stderr, "silica generate: %s\n", err);
        goto done;
    }
    for (n_out = 0; n_out < n_gen;) {
        int32_t id = pick(logits, V, temp, (int)top_k, &rng, logits + V);
        out[n_out++] = id;
        if (stop_eos && tok_is_eog(tok, id)) break;
        if (n_out == n_gen) break;
        if (model_forward(m, pool, kv, &id, 1, logits, false, err, sizeof err) != 0) {
            fprintf(stderr, "silica generate: %s\n", err);
            goto done;
        }
    }
    if (text) {
        sl_buf_t b = {0};
        tok_decode(tok, out, (size_t)n_out, false, &b);
        printf("%s\n", b.data ? b.data : "");
        sl_buf_free(&b);
    } else {
        for (long i = 0; i < n_out; i++) printf("%s%d", i ? " " : "", (int)out[i]);
        printf("\n");
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    free(logits);
    free(out);
    model_kv_free(kv);
    tok_free(tok);
    sl_pool_free(pool);
    model_free(m);
    mcli_free(&o);
    return rc;
bad:
    mcli_free(&o);
    return 2;
}
