/*
 * fuzz_model.c — libFuzzer target for a GGUF model's hyper-parameters and
 * tensors: the input is written to a temporary file and loaded with
 * model_load (every architecture's keys, shapes, types and sizes are
 * validated there); an accepted model runs a short forward pass — logits
 * of two tokens through a KV cache, or model_embed for an embedding model
 * — so any shape the loader let through wrongly is used here under ASan.
 * A rejected input must come with a message. Seeds: tiny models of several
 * architectures written by `silica mkmodel` (tests/fuzz/build.sh,
 * FUZZ_TARGET=model).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "model/model.h"

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    setenv("SILICA_X8", "0", 1); /* no packing threads per input */
    snprintf(path, sizeof path, "/tmp/silica-fuzz-model-%d.gguf", (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    const bool ok = fwrite(data, 1, size, fp) == size;
    fclose(fp);
    if (!ok) return 0;
    char err[SL_ERR_MAX] = "";
    sl_model_t *m = model_load(path, err, sizeof err);
    if (!m) {
        if (!err[0]) abort();
        return 0;
    }
    const sl_hparams_t *hp = model_hparams(m);
    const int32_t toks[3] = {0, (int32_t)(1 % hp->n_vocab), (int32_t)(2 % hp->n_vocab)};
    /* bounded work: tiny seeds grow, but not into gigabytes of activations */
    const bool small = (int64_t)hp->n_embd * hp->n_layer <= (1 << 16) && hp->n_vocab <= (1 << 16);
    if (small && model_embed_dim(m) > 0) {
        float *out = malloc((size_t)model_embed_dim(m) * sizeof *out);
        const sl_embed_seq_t seq = {toks, NULL, 3};
        err[0] = '\0';
        if (out && model_embed(m, NULL, &seq, 1, out, err, sizeof err) != 0 && !err[0]) abort();
        free(out);
    } else if (small && !hp->encoder) {
        sl_kv_t *kv = model_kv_new(m, 8, SL_TYPE_F16, err, sizeof err);
        float *logits = malloc((size_t)hp->n_vocab * sizeof *logits);
        err[0] = '\0';
        if (kv && logits && model_forward(m, NULL, kv, toks, 2, logits, false, err, sizeof err) != 0 && !err[0])
            abort();
        free(logits);
        model_kv_free(kv);
    }
    model_free(m);
    return 0;
}
