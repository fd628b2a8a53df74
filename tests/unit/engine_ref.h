/*
 * engine_ref.h — what the engine tests compare against: the greedy answer
 * of a model run alone through model_forward (prefill, then argmax and
 * feed it back), and a greedy engine request. Needs tiny_llama.h's TL_V /
 * TL_CTX (the tiny models' vocabulary and context) and test.h.
 */
#ifndef SILICA_ENGINE_REF_H
#define SILICA_ENGINE_REF_H

#include "engine/engine.h"
#include "model/model.h"
#include "test.h"
#include "tiny_llama.h"

/* Greedy reference: prefill the prompt, then argmax / feed, n tokens. */
static void reference(sl_model_t *m, const int32_t *prompt, int np, int n, int32_t *out) {
    char err[SL_ERR_MAX];
    sl_kv_t *kv = model_kv_new(m, TL_CTX, SL_TYPE_F32, err, sizeof err);
    float logits[TL_V];
    CHECK(model_forward(m, NULL, kv, prompt, np, logits, false, err, sizeof err) == 0);
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int v = 1; v < TL_V; v++)
            if (logits[v] > logits[best]) best = v;
        out[i] = best;
        int32_t t = best;
        if (i + 1 < n) CHECK(model_forward(m, NULL, kv, &t, 1, logits, false, err, sizeof err) == 0);
    }
    model_kv_free(kv);
}

static eng_request_t greedy_req(const int32_t *prompt, size_t np, int max_tokens, void *user) {
    eng_request_t r = {0};
    r.prompt = prompt;
    r.n_prompt = np;
    r.max_tokens = max_tokens;
    smp_params_default(&r.sampling);
    r.sampling.temperature = 0;
    r.user = user;
    return r;
}

#endif
