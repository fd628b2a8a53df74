/*
 * cmd_bench.c — `silica bench --model M.gguf [-t THREADS] [-p PROMPT_LEN]
 * [-n GEN_LEN] [-r REPS] [--kv-type f32|f16]`: measures prefill (one
 * model_forward of PROMPT_LEN tokens) and decode (GEN_LEN single-token steps
 * after it, greedy) in tokens per second, the median of REPS runs with the KV
 * cache cleared between runs. A short untimed warm-up touches every weight
 * page first. Prints the command, the model and the machine.
 *
 * --verify K: also times GEN_LEN speculative verification steps that all
 * fail — each runs the last token and K draft tokens with logits at every
 * position, then the KV goes back K positions (one token kept) — as the
 * engine's worst case per step, against the plain decode step.
 *
 * An embedding / rerank model has no decode: it measures
 * model_embed over GEN_LEN sequences of PROMPT_LEN tokens in one batch (as
 * the engine runs a request of many inputs), in tokens per second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/model_cli.h"
#include "kernels/kernels.h"

static void usage(void) {
    fprintf(stderr, "usage: silica bench --model M.gguf [-t THREADS] [-p PROMPT_LEN] [-n GEN_LEN] [-r REPS]\n"
                    "         [--kv-type f32|f16] [--verify K]\n");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Dominant weight type, e.g. "q8_0", from the bytes of 2-D tensors. */
static const char *main_type(const gguf_file_t *f) {
    size_t bytes[SL_TYPE_COUNT] = {0};
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        if (t->n_dims >= 2 && (int)t->type < SL_TYPE_COUNT) bytes[t->type] += t->nbytes;
    }
    int best = 0;
    for (int t = 1; t < SL_TYPE_COUNT; t++)
        if (bytes[t] > bytes[best]) best = t;
    return sl_type_name((sl_type_t)best);
}

/* n pseudo-random token ids below n_vocab (a fixed sequence: runs compare). */
static void random_tokens(int32_t *t, size_t n, int n_vocab) {
    uint64_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)((s >> 33) % (uint64_t)n_vocab);
    }
}

/* The "machine:" line every benchmark prints. */
static void print_machine(sl_pool_t *pool) {
    char cpu[256];
    mcli_cpu_model(cpu, sizeof cpu);
    printf("machine: %s, %d cores, %d threads, isa %s\n", cpu, mcli_n_cores(), sl_pool_size(pool), sl_kernels_desc());
}

/* Embedding models: n_seq sequences of p_len tokens per model_embed call. */
static int bench_embed(sl_model_t *m, sl_pool_t *pool, const mcli_opts_t *o, long p_len, long n_seq, long reps) {
    const sl_hparams_t *hp = model_hparams(m);
    if (p_len > model_embed_max_tokens(m) || n_seq < 1) {
        fprintf(stderr, "silica bench: an embedding model takes -p 1 .. %d tokens per sequence and -n >= 1 sequences\n",
                model_embed_max_tokens(m));
        return 2;
    }
    const size_t n_tok = (size_t)p_len * (size_t)n_seq;
    int32_t *toks = malloc(n_tok * sizeof *toks);
    sl_embed_seq_t *seqs = malloc((size_t)n_seq * sizeof *seqs);
    float *out = malloc((size_t)n_seq * (size_t)model_embed_dim(m) * sizeof *out);
    double *rate = calloc((size_t)reps, sizeof *rate);
    char err[SL_ERR_MAX] = "out of memory";
    int rc = 1;
    if (!toks || !seqs || !out || !rate) goto fail;
    random_tokens(toks, n_tok, hp->n_vocab);
    for (long i = 0; i < n_seq; i++) seqs[i] = (sl_embed_seq_t){toks + (size_t)i * (size_t)p_len, NULL, (int)p_len};
    printf("command: silica bench --model %s -t %d -p %ld -n %ld -r %ld\n", o->model, sl_pool_size(pool), p_len,
           n_seq, reps);
    printf("model: %s, %s (embeddings), %d layers, n_embd %d, %s, %.1f MiB\n", o->model, hp->arch_name, hp->n_layer,
           hp->n_embd, main_type(model_gguf(m)), (double)gguf_file_size(model_gguf(m)) / 1048576.0);
    print_machine(pool);
    fflush(stdout);
    if (model_embed(m, pool, seqs, 1, out, err, sizeof err)) goto fail; /* warm-up */
    for (long r = 0; r < reps; r++) {
        const double t0 = sl_now();
        if (model_embed(m, pool, seqs, (int)n_seq, out, err, sizeof err)) goto fail;
        rate[r] = (double)n_tok / (sl_now() - t0);
        fprintf(stderr, "rep %ld: embed %.2f tok/s\n", r + 1, rate[r]);
    }
    printf("embed: %.2f tok/s (median of %ld, %ld sequences of %ld tokens per call)\n", median(rate, (int)reps),
           reps, n_seq, p_len);
    rc = fflush(stdout) == 0 ? 0 : 1;
    goto done;
fail:
    fprintf(stderr, "silica bench: %s\n", err);
done:
    free(toks);
    free(seqs);
    free(out);
    free(rate);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    mcli_opts_t o = {.kv_type = SL_TYPE_F32};
    long p_len = 128, n_gen = 64, reps = 3, verify = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        long *dst = !strcmp(a, "-p")         ? &p_len
                    : !strcmp(a, "-n")       ? &n_gen
                    : !strcmp(a, "-r")       ? &reps
                    : !strcmp(a, "--verify") ? &verify
                                             : NULL;
        if (dst) {
            if (!mcli_int(val, dst == &reps ? 1 : 0, dst == &verify ? 64 : 1 << 16, dst)) {
                fprintf(stderr, "silica bench: bad or missing value for %s\n", a);
                goto bad;
            }
            i++;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            mcli_free(&o);
            return 0;
        }
        int r = mcli_parse_common(&o, argc, argv, &i, "bench");
        if (r < 0) goto bad;
        if (r == 0 || o.n_ids) {
            fprintf(stderr, "silica bench: unknown argument '%s'\n", a);
            usage();
            goto bad;
        }
    }
    if (p_len < 1) {
        fprintf(stderr, "silica bench: -p must be at least 1\n");
        goto bad;
    }
    sl_model_t *m;
    sl_pool_t *pool;
    if (mcli_setup(&o, &m, &pool, "bench")) goto bad;
    const sl_hparams_t *hp = model_hparams(m);
    if (model_embed_dim(m) > 0) {
        const int erc = bench_embed(m, pool, &o, p_len, n_gen, reps);
        sl_pool_free(pool);
        model_free(m);
        mcli_free(&o);
        return erc;
    }
    const int V = hp->n_vocab;
    char err[SL_ERR_MAX];
    int rc = 1;
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)p_len);
    float *logits = malloc(sizeof(float) * (size_t)V * (size_t)(verify + 1));
    double *pre = calloc((size_t)reps, sizeof(double)), *dec = calloc((size_t)reps, sizeof(double));
    double *ver = calloc((size_t)reps, sizeof(double));
    model_set_ctx(m, (int)(p_len + n_gen + verify));
    sl_kv_t *kv = model_kv_new(m, (int)(p_len + n_gen + verify), o.kv_type, err, sizeof err);
    if (!prompt || !logits || !pre || !dec || !ver || !kv) {
        fprintf(stderr, "silica bench: %s\n", kv ? "out of memory" : err);
        goto done;
    }
    random_tokens(prompt, (size_t)p_len, V);

    const int nt = sl_pool_size(pool);
    printf("command: silica bench --model %s -t %d -p %ld -n %ld -r %ld --kv-type %s", o.model, nt, p_len, n_gen,
           reps, sl_type_name(o.kv_type));
    if (verify) printf(" --verify %ld", verify);
    printf("\n");
    printf("model: %s, %s, %d layers, n_embd %d, vocab %d, %s, %.1f MiB\n", o.model, hp->arch_name, hp->n_layer,
           hp->n_embd, V, main_type(model_gguf(m)), (double)gguf_file_size(model_gguf(m)) / 1048576.0);
    print_machine(pool);
    fflush(stdout);

    /* Warm-up: page in the weights, size the scratch buffers. */
    if (model_forward(m, pool, kv, prompt, (int)SL_MIN(p_len, 8L), logits, false, err, sizeof err)) goto fail;
    for (long r = 0; r < reps; r++) {
        model_kv_truncate(kv, 0);
        double t0 = sl_now();
        if (model_forward(m, pool, kv, prompt, (int)p_len, logits, false, err, sizeof err)) goto fail;
        double t1 = sl_now();
        for (long i = 0; i < n_gen; i++) {
            int32_t id = (int32_t)SL_MAX(0, sl_argmax(logits, V));
            if (model_forward(m, pool, kv, &id, 1, logits, false, err, sizeof err)) goto fail;
        }
        double t2 = sl_now();
        pre[r] = (double)p_len / (t1 - t0);
        dec[r] = n_gen > 0 ? (double)n_gen / (t2 - t1) : 0.0;
        fprintf(stderr, "rep %ld: prefill %.2f tok/s, decode %.2f tok/s\n", r + 1, pre[r], dec[r]);
        if (verify && n_gen > 0) {
            /* the same positions again, each step 1 + K tokens, K rejected */
            model_kv_truncate(kv, (int)p_len);
            int32_t step[65];
            const double t3 = sl_now();
            for (long i = 0; i < n_gen; i++) {
                step[0] = (int32_t)SL_MAX(0, sl_argmax(logits, V));
                for (long k = 1; k <= verify; k++) step[k] = (step[0] + (int32_t)k) % V;
                if (model_forward(m, pool, kv, step, (int)verify + 1, logits, true, err, sizeof err)) goto fail;
                model_kv_truncate(kv, model_kv_len(kv) - (int)verify);
            }
            ver[r] = (double)n_gen / (sl_now() - t3);
            fprintf(stderr, "rep %ld: verify 1+%ld (all rejected) %.2f steps/s\n", r + 1, verify, ver[r]);
        }
    }
    printf("prefill: %.2f tok/s (median of %ld, %ld tokens)\n", median(pre, (int)reps), reps, p_len);
    printf("decode: %.2f tok/s (median of %ld, %ld tokens)\n", median(dec, (int)reps), reps, n_gen);
    if (verify) {
        const double d = median(dec, (int)reps), v = median(ver, (int)reps);
        printf("verify 1+%ld, all rejected: %.2f tok/s (median of %ld; %.2fx the decode step's time)\n", verify, v,
               reps, v > 0 ? d / v : 0.0);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
    goto done;
fail:
    fprintf(stderr, "silica bench: %s\n", err);
done:
    free(prompt);
    free(logits);
    free(pre);
    free(dec);
    free(ver);
    model_kv_free(kv);
    sl_pool_free(pool);
    model_free(m);
    mcli_free(&o);
    return rc;
bad:
    mcli_free(&o);
    return 2;
}
