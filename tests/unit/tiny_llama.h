/*
 * tiny_llama.h — writes the one-layer random-weight llama GGUF the engine
 * tests run on (vocab 64, embd 16, 2 heads, 1 KV head, head_dim 8, ffn 32,
 * context 512, F32 weights, norms = 1). The weights depend only on `seed`.
 * Include after test.h.
 */
#ifndef SILICA_TINY_LLAMA_H
#define SILICA_TINY_LLAMA_H

#include <stdint.h>
#include <stdlib.h>

#include "base/base.h"
#include "gguf/gguf.h"

enum { TL_V = 64, TL_E = 16, TL_H = 2, TL_K = 1, TL_D = 8, TL_F = 32, TL_CTX = 512 };

static float tl_rnd(uint64_t *rs) {
    *rs = *rs * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*rs >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* 1-D tensors (n_out == 1) are all ones; matrices uniform in ±scale. */
static void tl_add(gguf_writer_t *w, uint64_t *rs, const char *name, int n_out, int n_in,
                   float scale) {
    size_t n = (size_t)n_out * (size_t)n_in;
    float *d = malloc(n * sizeof *d);
    CHECK(d != NULL);
    if (!d) return;
    for (size_t i = 0; i < n; i++) d[i] = n_out == 1 ? 1.0f : tl_rnd(rs) * scale;
    int64_t ne[2] = {n_in, n_out};
    CHECK(gguf_writer_add_tensor(w, name, SL_TYPE_F32, n_out == 1 ? 1 : 2, ne, d) == 0);
    free(d);
}

static void tiny_llama_write(const char *path, uint64_t seed) {
    uint64_t rs = seed;
    gguf_writer_t *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.context_length", TL_CTX);
    gguf_writer_set_u32(w, "llama.embedding_length", TL_E);
    gguf_writer_set_u32(w, "llama.block_count", 1);
    gguf_writer_set_u32(w, "llama.feed_forward_length", TL_F);
    gguf_writer_set_u32(w, "llama.attention.head_count", TL_H);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", TL_K);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", TL_D);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    tl_add(w, &rs, "token_embd.weight", TL_V, TL_E, 1.0f);
    tl_add(w, &rs, "output_norm.weight", 1, TL_E, 1.0f);
    tl_add(w, &rs, "output.weight", TL_V, TL_E, 1.0f);
    tl_add(w, &rs, "blk.0.attn_norm.weight", 1, TL_E, 1.0f);
    tl_add(w, &rs, "blk.0.ffn_norm.weight", 1, TL_E, 1.0f);
    tl_add(w, &rs, "blk.0.attn_q.weight", TL_H * TL_D, TL_E, 0.5f);
    tl_add(w, &rs, "blk.0.attn_k.weight", TL_K * TL_D, TL_E, 0.5f);
    tl_add(w, &rs, "blk.0.attn_v.weight", TL_K * TL_D, TL_E, 0.5f);
    tl_add(w, &rs, "blk.0.attn_output.weight", TL_E, TL_H * TL_D, 0.5f);
    tl_add(w, &rs, "blk.0.ffn_gate.weight", TL_F, TL_E, 0.5f);
    tl_add(w, &rs, "blk.0.ffn_up.weight", TL_F, TL_E, 0.5f);
    tl_add(w, &rs, "blk.0.ffn_down.weight", TL_E, TL_F, 0.5f);
    char err[SL_ERR_MAX];
    int rc = gguf_writer_write(w, path, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    gguf_writer_free(w);
}

#endif
