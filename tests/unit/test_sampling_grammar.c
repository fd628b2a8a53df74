/* deps: sampling grammar kernels base */
/*
 * test_sampling_grammar.c — the sampler applying a real grammar matcher's
 * token mask: a chosen token is always allowed by the grammar (checked
 * against the matcher's own byte walk of the token, independent of the mask
 * path), even when logit_bias pushes a forbidden one; end-of-generation is
 * chosen only where the grammar can end; generated JSON parses (jansson);
 * logprobs are those of the constrained distribution.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/grammar.h"
#include "sampling/sampling.h"
#include "test.h"

bool gram_matcher_token_ok_slow(gram_matcher_t *m, int32_t t);

static const char *TOKS[] = {"{", "}", "[", "]", "\"", ":", ",", " ", "\n", "a", "b", "1", "2",
                             "true", "false", "null", "{\"", "\":", "\": ", "\"}", "ab", "12",
                             "x", "<eos>", "", NULL};
static int n_tok, eos_id, x_id, ctrl_id;
static gram_vocab_t *VOC;

static uint64_t rs = 88172645463325252ULL;
static float rnd_logit(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((rs >> 40) % 1000) / 100.0f - 5.0f;
}

static void setup(void) {
    size_t lens[64];
    while (TOKS[n_tok]) {
        lens[n_tok] = strlen(TOKS[n_tok]);
        if (!strcmp(TOKS[n_tok], "<eos>")) eos_id = n_tok;
        if (!strcmp(TOKS[n_tok], "x")) x_id = n_tok;
        if (!TOKS[n_tok][0]) ctrl_id = n_tok;
        n_tok++;
    }
    char err[256];
    int32_t eog = eos_id;
    VOC = gram_vocab_new(TOKS, lens, (size_t)n_tok, &eog, 1, err, sizeof err);
    if (!VOC) fprintf(stderr, "vocab: %s\n", err);
}

/* Generates with random logits; checks every step. Returns the text or NULL. */
static char *generate(gram_matcher_t *m, const smp_params_t *p, int *violations, int max_steps) {
    char err[256];
    smp_t *s = smp_new(p, n_tok, err, sizeof err);
    if (!s) return NULL;
    uint32_t mask[4];
    float logits[64];
    char *out = calloc(1, 4096);
    size_t n = 0;
    bool ended = false;
    for (int step = 0; step < max_steps && !ended; step++) {
        for (int i = 0; i < n_tok; i++) logits[i] = rnd_logit();
        logits[1] += 3.0f; /* lean towards closing so that most generations end */
        logits[3] += 3.0f;
        logits[eos_id] += 3.0f;
        /* independent reference: which tokens does the grammar allow here? */
        bool ok[64];
        bool can_end = gram_matcher_can_end(m);
        for (int i = 0; i < n_tok; i++) ok[i] = gram_matcher_token_ok_slow(m, i);
        smp_result_t r;
        if (smp_sample_grammar(s, m, logits, mask, &r) != 0) {
            (*violations)++;
            break;
        }
        if (!ok[r.id]) (*violations)++;
        if (r.id == eos_id) {
            if (!can_end) (*violations)++;
            ended = true;
        } else if (n + strlen(TOKS[r.id]) < 4000) {
            memcpy(out + n, TOKS[r.id], strlen(TOKS[r.id]));
            n += strlen(TOKS[r.id]);
        }
    }
    smp_free(s);
    if (!ended) {
        free(out);
        return NULL;
    }
    return out;
}

static void test_json_object_sampling(void) {
    char err[256];
    gram_t *g = gram_json_any(true, err, sizeof err);
    gram_index_t *ix = gram_index_new(g, VOC, err, sizeof err);
    gram_matcher_t *m = gram_matcher_new(ix, err, sizeof err);
    CHECK(m != NULL);
    smp_bias_t bias[2] = {{x_id, 100.0f}, {ctrl_id, 100.0f}}; /* push forbidden tokens hard */
    int violations = 0, done = 0;
    for (int run = 0; run < 60 && m; run++) {
        smp_params_t p;
        smp_params_default(&p);
        p.seed = (uint64_t)run;
        p.bias = bias;
        p.n_bias = 2;
        p.temperature = run % 3 == 0 ? 0.0f : 1.0f;
        if (run % 3 == 2) p.top_p = 0.8f;
        if (run % 4 == 1) p.top_k = 3;
        gram_matcher_reset(m);
        char *txt = generate(m, &p, &violations, 400);
        if (!txt) continue;
        done++;
        json_t *x = json_loads(txt, 0, NULL);
        CHECK_MSG(json_is_object(x), "not a JSON object: %s", txt);
        CHECK(strchr(txt, 'x') == NULL);
        json_decref(x);
        free(txt);
    }
    CHECK_MSG(violations == 0, "%d steps chose a token the grammar forbids", violations);
    CHECK_MSG(done >= 10, "only %d generations ended", done);
    gram_matcher_free(m);
    gram_index_free(ix);
    gram_free(g);
}

static void test_masked_distribution(void) {
    char err[256];
    /* only "a" or "b" first, then end */
    gram_t *g = gram_from_gbnf("root ::= [ab]", err, sizeof err);
    gram_index_t *ix = gram_index_new(g, VOC, err, sizeof err);
    gram_matcher_t *m = gram_matcher_new(ix, err, sizeof err);
    smp_params_t p;
    smp_params_default(&p);
    p.n_top_logprobs = 5;
    smp_bias_t bias = {x_id, 100.0f};
    p.bias = &bias;
    p.n_bias = 1;
    smp_t *s = smp_new(&p, n_tok, err, sizeof err);
    float logits[64];
    uint32_t mask[4];
    int cnt[2] = {0, 0};
    for (int k = 0; k < 4000; k++) {
        for (int i = 0; i < n_tok; i++) logits[i] = 3.0f;
        logits[9] = 1.0f;  /* "a" */
        logits[10] = 0.0f; /* "b" */
        gram_matcher_reset(m);
        smp_result_t r;
        CHECK(smp_sample_grammar(s, m, logits, mask, &r) == 0);
        CHECK(r.id == 9 || r.id == 10);
        if (r.id == 9 || r.id == 10) cnt[r.id - 9]++;
        if (k == 0) {
            /* constrained distribution: p(a) = e / (e + 1) */
            double pa = exp(1.0) / (exp(1.0) + 1.0);
            double want = r.id == 9 ? log(pa) : log(1 - pa);
            CHECK_NEAR(r.logprob, want, 1e-4);
            CHECK(r.n_top == 2); /* forbidden ids are not alternatives */
        }
        /* after one char only EOS is allowed */
        if (r.id == 9 || r.id == 10) {
            for (int i = 0; i < n_tok; i++) logits[i] = 0.0f;
            smp_result_t r2;
            CHECK(smp_sample_grammar(s, m, logits, mask, &r2) == 0 && r2.id == eos_id);
            CHECK(smp_sample_grammar(s, m, logits, mask, &r2) != 0); /* terminated */
        }
    }
    double pa = exp(1.0) / (exp(1.0) + 1.0);
    CHECK_NEAR(cnt[0] / 4000.0, pa, 0.03);
    /* no mask = plain sampling; a mask with nothing finite = error */
    for (int i = 0; i < n_tok; i++) logits[i] = 0.0f;
    logits[3] = -INFINITY;
    uint32_t only3[1] = {1u << 3};
    smp_result_t r;
    CHECK(smp_sample_masked(s, logits, only3, &r) != 0);
    for (int i = 0; i < n_tok; i++) logits[i] = 0.0f;
    CHECK(smp_sample_masked(s, logits, NULL, &r) == 0);
    smp_free(s);
    /* vocabulary size mismatch is refused */
    smp_params_default(&p);
    s = smp_new(&p, n_tok + 1, err, sizeof err);
    float big[65] = {0};
    CHECK(smp_sample_grammar(s, m, big, mask, &r) != 0);
    smp_free(s);
    gram_matcher_free(m);
    gram_index_free(ix);
    gram_free(g);
}

int main(void) {
    setup();
    if (!VOC) return 1;
    RUN(test_json_object_sampling);
    RUN(test_masked_distribution);
    gram_vocab_free(VOC);
    return test_summary();
}
