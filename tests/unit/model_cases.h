/*
 * model_cases.h — the cases the architecture tests built on a double-
 * precision reference (test_qwen35, test_mamba, test_gemma4) run alike:
 * the model's logits at every position against the reference (prefill at
 * once, token by token, in chunks), mutated references the model must be
 * far from, a batch of three sequences over the paged KV pool = each
 * alone, a file that must fail to load with a clear error, `silica
 * quantize` to q8_0 then the reference again, a prefill longer than the
 * model's 256-token step. A model with a recurrent state
 * (model_state_floats > 0) is also checked to refuse what it cannot do: a
 * rewind, a batch sequence without its state.
 *
 * Include after test.h and the test's reference, which defines
 *   spec_t (with V, the vocabulary, and wtype, the weights' type),
 *   variant_t (the reference's variants), ref_t (with the spec s and the
 *   variant var), write_opts_t (the file writer's options),
 *   ref_init(ref_t *, const spec_t *, uint64_t seed), ref_free(ref_t *),
 *   ref_forward(const ref_t *, const int32_t *toks, int n, double *out)
 *   (n × V logits), write_model(ref_t *, const char *path,
 *   const write_opts_t *) (0 on success),
 *   check_hparams(const sl_model_t *, const spec_t *) (CHECKs that the
 *   loaded model's hyperparameters are the spec's),
 * and MODEL_CASES_NAME, the name in the test's temporary file.
 */
#ifndef SILICA_MODEL_CASES_H
#define SILICA_MODEL_CASES_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "base/pool.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/model_quant.h"
#include "test.h"

#define N_TOK 13

static char model_path_buf_[256];
static inline const char *model_path(void) {
    snprintf(model_path_buf_, sizeof model_path_buf_, "/tmp/silica-test-%s-%d.gguf",
             MODEL_CASES_NAME, (int)getpid());
    return model_path_buf_;
}

static inline void make_tokens(int32_t *t, int n, int V, int salt) {
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)((i * 37 + 5 + salt * 11) % V);
}

/* rm made from s and seed, written to model_path() and loaded (NULL, with
 * a failed check, when it does not load); the caller frees rm */
static inline sl_model_t *load_ref(ref_t *rm, const spec_t *s, uint64_t seed) {
    ref_init(rm, s, seed);
    CHECK(write_model(rm, model_path(), NULL) == 0);
    char err[SL_ERR_MAX] = "";
    sl_model_t *m = model_load(model_path(), err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    return m;
}

/* the model's logits at every position vs the reference: prefill at once,
 * token by token, in chunks of 1..3 (smaller than a conv width), each
 * within tol of max |logit|; a recurrent state then cannot be rewound */
static inline void run_case(const char *label, const spec_t *s, double tol, int threads) {
    ref_t rm;
    sl_model_t *m = load_ref(&rm, s, (uint64_t)strlen(label) * 97 + (uint64_t)s->wtype);
    if (!m) {
        ref_free(&rm);
        return;
    }
    check_hparams(m, s);
    int32_t toks[N_TOK];
    make_tokens(toks, N_TOK, s->V, 0);
    double *want = malloc(sizeof(double) * N_TOK * s->V);
    ref_forward(&rm, toks, N_TOK, want);
    float *got = malloc(sizeof(float) * N_TOK * s->V), *last = malloc(sizeof(float) * s->V);
    sl_pool_t *pool = threads > 1 ? sl_pool_new(threads) : NULL;
    char err[SL_ERR_MAX] = "";
    sl_kv_t *kv = model_kv_new(m, N_TOK + 4, SL_TYPE_F32, err, sizeof err);
    CHECK_MSG(kv != NULL, "%s", err);

    CHECK_MSG(model_forward(m, pool, kv, toks, N_TOK, got, true, err, sizeof err) == 0, "%s", err);
    const double e = test_rel_err(got, want, (size_t)N_TOK * s->V);
    CHECK_MSG(e <= tol, "%s prefill: rel err %.3g > %.3g", label, e, tol);

    model_kv_truncate(kv, 0); /* starts afresh (a recurrent state is zeroed) */
    double worst = 0;
    for (int t = 0; t < N_TOK; t++) {
        CHECK_MSG(model_forward(m, pool, kv, &toks[t], 1, last, false, err, sizeof err) == 0, "%s",
                  err);
        worst = fmax(worst, test_rel_err(last, want + (size_t)t * s->V, (size_t)s->V));
    }
    CHECK_MSG(worst <= tol, "%s decode: rel err %.3g > %.3g", label, worst, tol);

    model_kv_truncate(kv, 0);
    double wc = 0;
    for (int t = 0, c = 1; t < N_TOK; t += c, c = c % 3 + 1) {
        const int nt = SL_MIN(c, N_TOK - t);
        CHECK_MSG(model_forward(m, pool, kv, toks + t, nt, got, true, err, sizeof err) == 0, "%s",
                  err);
        wc = fmax(wc, test_rel_err(got, want + (size_t)t * s->V, (size_t)nt * s->V));
    }
    CHECK_MSG(wc <= tol, "%s chunks: rel err %.3g > %.3g", label, wc, tol);

    if (model_state_floats(m) > 0) {
        /* a recurrent state cannot be rewound: truncating to a middle position is refused */
        model_kv_truncate(kv, 5);
        CHECK_MSG(model_forward(m, pool, kv, toks, 1, last, false, err, sizeof err) != 0,
                  "%s: rewound", label);
        CHECK_MSG(strstr(err, "rewound") != NULL, "%s: %s", label, err);
    }

    model_kv_free(kv);
    sl_pool_free(pool);
    model_free(m);
    free(want), free(got), free(last);
    ref_free(&rm);
    unlink(model_path());
    fprintf(stderr, "     %-32s max rel err %.2e\n", label, fmax(e, fmax(worst, wc)));
}

typedef struct {
    variant_t v;
    const char *name;
} mutation_t;

/* The model matches the reference made from s and seed over N_TOK tokens
 * (salt: make_tokens'), and each mutated reference is far from it. */
static inline void check_mutations(const spec_t *s, uint64_t seed, int salt, const mutation_t *muts,
                                   size_t n_muts) {
    ref_t rm;
    sl_model_t *m = load_ref(&rm, s, seed);
    if (!m) {
        ref_free(&rm);
        return;
    }
    int32_t toks[N_TOK];
    make_tokens(toks, N_TOK, s->V, salt);
    float *got = malloc(sizeof(float) * N_TOK * s->V);
    double *want = malloc(sizeof(double) * N_TOK * s->V);
    char err[SL_ERR_MAX] = "";
    sl_kv_t *kv = model_kv_new(m, N_TOK, SL_TYPE_F32, err, sizeof err);
    CHECK(model_forward(m, NULL, kv, toks, N_TOK, got, true, err, sizeof err) == 0);
    ref_forward(&rm, toks, N_TOK, want);
    CHECK(test_rel_err(got, want, (size_t)N_TOK * s->V) <= 1e-4);
    for (size_t i = 0; i < n_muts; i++) {
        rm.var = muts[i].v;
        ref_forward(&rm, toks, N_TOK, want);
        const double e = test_rel_err(got, want, (size_t)N_TOK * s->V);
        CHECK_MSG(e > 1e-3, "mutation '%s' not detected: rel err %.3g", muts[i].name, e);
        fprintf(stderr, "     mutation %-32s rel err %.2e\n", muts[i].name, e);
    }
    model_kv_free(kv);
    model_free(m);
    free(got), free(want);
    ref_free(&rm);
    unlink(model_path());
}

/* Sequences at different positions in one model_forward_batch over a
 * paged F16 cache (blocks interleaved), each with its own state where the
 * model keeps one, give what each gives alone. check_model (NULL: none)
 * checks the loaded model first, given the pool's block size. A recurrent
 * model refuses a sequence without its state. */
static inline void check_batch(const spec_t *s, const char *label,
                               void (*check_model)(sl_model_t *, const spec_t *, int)) {
    enum { NS = 3, BS = 4, CTX = 24 };
    ref_t rm;
    sl_model_t *m = load_ref(&rm, s, 777);
    ref_free(&rm);
    if (!m) return;
    if (check_model) check_model(m, s, BS);
    const int V = s->V;
    char err[SL_ERR_MAX] = "";
    sl_pool_t *pool = sl_pool_new(3);
    sl_kv_pool_t *kp = model_kv_pool_new(m, NS * CTX / BS, BS, SL_TYPE_F16, err, sizeof err);
    CHECK_MSG(kp != NULL, "%s", err);
    sl_kv_t *kv[NS];
    int32_t toks[NS][CTX], tables[NS][CTX / BS];
    float *state[NS];
    const size_t sf = model_state_floats(m);
    for (int i = 0; i < NS; i++) {
        make_tokens(toks[i], CTX, V, i + 1);
        kv[i] = model_kv_new(m, CTX, SL_TYPE_F16, err, sizeof err);
        state[i] = sf ? malloc(sizeof(float) * sf) : NULL;
        for (int b = 0; b < CTX / BS; b++)
            tables[i][b] = (int32_t)(b * NS + (NS - 1 - i)); /* interleaved */
    }
    /* steps: how many tokens each sequence feeds (0: not in this step) */
    static const int steps[][NS] = {{5, 3, 0}, {1, 4, 6}, {1, 1, 1}, {7, 1, 2}, {1, 0, 5}};
    int past[NS] = {0, 0, 0};
    float *lb = malloc(sizeof(float) * NS * V), *la = malloc(sizeof(float) * V);
    double worst = 0;
    for (size_t st = 0; st < sizeof steps / sizeof steps[0]; st++) {
        sl_batch_seq_t b[NS];
        int nb = 0, who[NS];
        for (int i = 0; i < NS; i++) {
            if (!steps[st][i]) continue;
            b[nb] = (sl_batch_seq_t){.tokens = toks[i] + past[i],
                                     .n_tok = steps[st][i],
                                     .n_past = past[i],
                                     .blocks = tables[i],
                                     .logits = lb + (size_t)nb * V,
                                     .state = state[i]};
            who[nb++] = i;
        }
        CHECK_MSG(model_forward_batch(m, pool, kp, b, nb, err, sizeof err) == 0, "%s", err);
        for (int k = 0; k < nb; k++) {
            const int i = who[k];
            CHECK(model_forward(m, NULL, kv[i], toks[i] + past[i], steps[st][i], la, false, err,
                                sizeof err) == 0);
            double md = 0, mx = 1e-30;
            for (int v = 0; v < V; v++) {
                md = fmax(md, fabs((double)lb[(size_t)k * V + v] - la[v]));
                mx = fmax(mx, fabs((double)la[v]));
            }
            worst = fmax(worst, md / mx);
            past[i] += steps[st][i];
        }
    }
    CHECK_MSG(worst <= 1e-5, "%s: rel err %.3g", label, worst);
    fprintf(stderr, "     %-32s max rel err %.2e\n", label, worst);
    if (sf) { /* a hybrid batch without a state is refused */
        sl_batch_seq_t bad = {
            .tokens = toks[0], .n_tok = 1, .n_past = 0, .blocks = tables[0], .logits = lb};
        CHECK(model_forward_batch(m, pool, kp, &bad, 1, err, sizeof err) != 0);
        CHECK_MSG(strstr(err, "recurrent state") != NULL, "%s", err);
    }
    for (int i = 0; i < NS; i++)
        model_kv_free(kv[i]), free(state[i]);
    free(lb), free(la);
    model_kv_pool_free(kp);
    sl_pool_free(pool);
    model_free(m);
    unlink(model_path());
}

/* The file made from s (seed 99) as o says does not load, and the error
 * names needle. */
static inline void expect_load_error(const spec_t *s, const write_opts_t *o, const char *needle) {
    ref_t rm;
    ref_init(&rm, s, 99);
    write_model(&rm, model_path(), o);
    ref_free(&rm);
    char err[SL_ERR_MAX] = "";
    sl_model_t *m = model_load(model_path(), err, sizeof err);
    CHECK_MSG(m == NULL && strstr(err, needle) != NULL, "expected '%s', got '%s'", needle,
              m ? "(loaded)" : err);
    model_free(m);
    unlink(model_path());
}

/* silica quantize: rm written as a file, converted to q8_0 and loaded; the
 * tensors named in f32 stay F32, the one named q8 becomes q8_0, and the
 * logits over N_TOK tokens (with a kvt KV cache) stay within 5e-2 of the
 * reference's. The caller frees rm. */
static inline void check_quantize(ref_t *rm, const char *const *f32, size_t n_f32, const char *q8,
                                  sl_type_t kvt, const char *label) {
    const spec_t *s = &rm->s;
    char qpath[300], err[SL_ERR_MAX] = "";
    snprintf(qpath, sizeof qpath, "%s.q8", model_path());
    CHECK(write_model(rm, model_path(), NULL) == 0);
    sl_pool_t *pool = sl_pool_new(2);
    CHECK_MSG(model_quantize_file(model_path(), qpath, "q8_0", pool, false, err, sizeof err) == 0,
              "%s", err);
    sl_model_t *m = model_load(qpath, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (m) {
        gguf_file_t *f = gguf_open(qpath, err, sizeof err);
        for (size_t i = 0; i < n_f32; i++) {
            const gguf_tensor_t *t = f ? gguf_find_tensor(f, f32[i]) : NULL;
            CHECK_MSG(t && t->type == SL_TYPE_F32, "%s not F32", f32[i]);
        }
        const gguf_tensor_t *t = f ? gguf_find_tensor(f, q8) : NULL;
        CHECK_MSG(t && t->type == SL_TYPE_Q8_0, "%s not q8_0", q8);
        gguf_close(f);
        int32_t toks[N_TOK];
        make_tokens(toks, N_TOK, s->V, 2);
        float *got = malloc(sizeof(float) * N_TOK * s->V);
        double *want = malloc(sizeof(double) * N_TOK * s->V);
        sl_kv_t *kv = model_kv_new(m, N_TOK, kvt, err, sizeof err);
        CHECK_MSG(kv != NULL, "%s", err);
        CHECK(model_forward(m, pool, kv, toks, N_TOK, got, true, err, sizeof err) == 0);
        ref_forward(rm, toks, N_TOK, want);
        const double e = test_rel_err(got, want, (size_t)N_TOK * s->V);
        CHECK_MSG(e < 5e-2, "%s: rel err %.3g", label, e);
        fprintf(stderr, "     %-32s rel err %.2e\n", label, e);
        model_kv_free(kv);
        free(got), free(want);
        model_free(m);
    }
    sl_pool_free(pool);
    unlink(model_path());
    unlink(qpath);
}

/* A prefill of 300 tokens, longer than the model's internal step (256
 * tokens), carries what the model keeps from step to step: the logits
 * (every position's when all, else the last one's) equal the reference's. */
static inline void check_long_prefill(const spec_t *s, bool all) {
    ref_t rm;
    sl_model_t *m = load_ref(&rm, s, 2024);
    if (m) {
        enum { N = 300 };
        int32_t toks[N];
        make_tokens(toks, N, s->V, 9);
        const size_t n_out = all ? (size_t)N * s->V : (size_t)s->V;
        double *want = malloc(sizeof(double) * N * s->V);
        float *got = malloc(sizeof(float) * n_out);
        ref_forward(&rm, toks, N, want);
        sl_pool_t *pool = sl_pool_new(2);
        char err[SL_ERR_MAX] = "";
        sl_kv_t *kv = model_kv_new(m, N, SL_TYPE_F32, err, sizeof err);
        CHECK(model_forward(m, pool, kv, toks, N, got, all, err, sizeof err) == 0);
        const double e = test_rel_err(got, want + (size_t)N * s->V - n_out, n_out);
        CHECK_MSG(e <= 1e-4, "300-token prefill: rel err %.3g", e);
        fprintf(stderr, "     %-32s rel err %.2e\n", "300-token prefill", e);
        model_kv_free(kv);
        sl_pool_free(pool);
        free(want), free(got);
        model_free(m);
    }
    ref_free(&rm);
    unlink(model_path());
}

#endif
