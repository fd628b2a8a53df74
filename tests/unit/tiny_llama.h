/*
 * tiny_llama.h — writes the one-layer random-weight llama GGUF the engine
 * tests run on (vocab 64, embd 16, 2 heads, 1 KV head, head_dim 8, ffn 32,
 * context 512, F32 weights, norms = 1), and a tiny qwen35 and a tiny
 * granitehybrid beside it. The
 * weights depend only on `seed`.
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

/* A tiny qwen35 (hybrid Gated DeltaNet) of the same vocabulary, width and
 * context: 4 layers, layers 1 and 3 gated attention (2 heads of 8, 1 KV
 * head, RoPE over 2 dims), layers 0 and 2 DeltaNet (1 key head, 2 value
 * heads of 4, conv width 4; ssm_a = -0.3 so the state decays slowly). */
static inline void tiny_qwen35_write(const char *path, uint64_t seed) {
    uint64_t rs = seed;
    gguf_writer_t *w = gguf_writer_new();
    const int DK = 4, HK = 1, HV = 2, CK = 4, C = 2 * HK * DK + HV * DK;
    const int32_t sections[4] = {11, 11, 10, 0};
    gguf_writer_set_str(w, "general.architecture", "qwen35");
    gguf_writer_set_u32(w, "qwen35.context_length", TL_CTX);
    gguf_writer_set_u32(w, "qwen35.embedding_length", TL_E);
    gguf_writer_set_u32(w, "qwen35.block_count", 4);
    gguf_writer_set_u32(w, "qwen35.feed_forward_length", TL_F);
    gguf_writer_set_u32(w, "qwen35.attention.head_count", TL_H);
    gguf_writer_set_u32(w, "qwen35.attention.head_count_kv", TL_K);
    gguf_writer_set_u32(w, "qwen35.attention.key_length", TL_D);
    gguf_writer_set_u32(w, "qwen35.attention.value_length", TL_D);
    gguf_writer_set_u32(w, "qwen35.rope.dimension_count", 2);
    gguf_writer_set_arr(w, "qwen35.rope.dimension_sections", GGUF_VT_INT32, sections, 4);
    gguf_writer_set_f32(w, "qwen35.attention.layer_norm_rms_epsilon", 1e-6f);
    gguf_writer_set_f32(w, "qwen35.rope.freq_base", 10000000.0f);
    gguf_writer_set_u32(w, "qwen35.ssm.conv_kernel", (uint32_t)CK);
    gguf_writer_set_u32(w, "qwen35.ssm.state_size", (uint32_t)DK);
    gguf_writer_set_u32(w, "qwen35.ssm.group_count", (uint32_t)HK);
    gguf_writer_set_u32(w, "qwen35.ssm.time_step_rank", (uint32_t)HV);
    gguf_writer_set_u32(w, "qwen35.ssm.inner_size", (uint32_t)(HV * DK));
    gguf_writer_set_u32(w, "qwen35.full_attention_interval", 2);
    tl_add(w, &rs, "token_embd.weight", TL_V, TL_E, 1.0f);
    tl_add(w, &rs, "output_norm.weight", 1, TL_E, 1.0f);
    tl_add(w, &rs, "output.weight", TL_V, TL_E, 1.0f);
    for (int l = 0; l < 4; l++) {
        char n[64];
#define TQ(x) (snprintf(n, sizeof n, "blk.%d.%s", l, x), n)
        tl_add(w, &rs, TQ("attn_norm.weight"), 1, TL_E, 1.0f);
        tl_add(w, &rs, TQ("post_attention_norm.weight"), 1, TL_E, 1.0f);
        if (l % 2 == 0) {
            tl_add(w, &rs, TQ("attn_qkv.weight"), C, TL_E, 0.5f);
            tl_add(w, &rs, TQ("attn_gate.weight"), HV * DK, TL_E, 0.5f);
            tl_add(w, &rs, TQ("ssm_beta.weight"), HV, TL_E, 0.5f);
            tl_add(w, &rs, TQ("ssm_alpha.weight"), HV, TL_E, 0.5f);
            tl_add(w, &rs, TQ("ssm_out.weight"), TL_E, HV * DK, 0.5f);
            tl_add(w, &rs, TQ("ssm_conv1d.weight"), C, CK, 0.5f);
            tl_add(w, &rs, TQ("ssm_dt.bias"), 1, HV, 1.0f);
            tl_add(w, &rs, TQ("ssm_norm.weight"), 1, DK, 1.0f);
            const float a[2] = {-0.3f, -0.1f};
            const int64_t ne[1] = {HV};
            CHECK(gguf_writer_add_tensor(w, TQ("ssm_a"), SL_TYPE_F32, 1, ne, a) == 0);
        } else {
            tl_add(w, &rs, TQ("attn_q.weight"), 2 * TL_H * TL_D, TL_E, 0.5f);
            tl_add(w, &rs, TQ("attn_k.weight"), TL_K * TL_D, TL_E, 0.5f);
            tl_add(w, &rs, TQ("attn_v.weight"), TL_K * TL_D, TL_E, 0.5f);
            tl_add(w, &rs, TQ("attn_output.weight"), TL_E, TL_H * TL_D, 0.5f);
            tl_add(w, &rs, TQ("attn_q_norm.weight"), 1, TL_D, 1.0f);
            tl_add(w, &rs, TQ("attn_k_norm.weight"), 1, TL_D, 1.0f);
        }
        tl_add(w, &rs, TQ("ffn_gate.weight"), TL_F, TL_E, 0.5f);
        tl_add(w, &rs, TQ("ffn_up.weight"), TL_F, TL_E, 0.5f);
        tl_add(w, &rs, TQ("ffn_down.weight"), TL_E, TL_F, 0.5f);
#undef TQ
    }
    char err[SL_ERR_MAX];
    int rc = gguf_writer_write(w, path, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    gguf_writer_free(w);
}

/* A tiny granitehybrid (Mamba-2 hybrid) of the same vocabulary, width and
 * context, its state as small as the tiny qwen35's (the engine tests size
 * their pools by it): 4 layers, layers 1 and 3 attention (2 heads of 8, 1
 * KV head, no RoPE), layers 0 and 2 Mamba-2 (2 groups of state 2, 2 heads
 * of 4 over d_inner 8, conv width 4; A = -exp(A_log) small so the state
 * decays slowly), Granite's scales. */
static inline void tiny_granitehybrid_write(const char *path, uint64_t seed) {
    uint64_t rs = seed;
    gguf_writer_t *w = gguf_writer_new();
    enum { NG = 2, DS = 2, NH = 2, VD = 8, CK = 4, C = VD + 2 * NG * DS };
    const int32_t kv[4] = {0, TL_K, 0, TL_K};
    gguf_writer_set_str(w, "general.architecture", "granitehybrid");
    gguf_writer_set_u32(w, "granitehybrid.context_length", TL_CTX);
    gguf_writer_set_u32(w, "granitehybrid.embedding_length", TL_E);
    gguf_writer_set_u32(w, "granitehybrid.block_count", 4);
    gguf_writer_set_u32(w, "granitehybrid.feed_forward_length", TL_F);
    gguf_writer_set_u32(w, "granitehybrid.attention.head_count", TL_H);
    gguf_writer_set_arr(w, "granitehybrid.attention.head_count_kv", GGUF_VT_INT32, kv, 4);
    gguf_writer_set_u32(w, "granitehybrid.attention.key_length", TL_D);
    gguf_writer_set_u32(w, "granitehybrid.attention.value_length", TL_D);
    gguf_writer_set_bool(w, "granitehybrid.rope.scaling.finetuned", false);
    gguf_writer_set_f32(w, "granitehybrid.attention.layer_norm_rms_epsilon", 1e-6f);
    gguf_writer_set_f32(w, "granitehybrid.embedding_scale", 2.0f);
    gguf_writer_set_f32(w, "granitehybrid.residual_scale", 0.5f);
    gguf_writer_set_f32(w, "granitehybrid.logit_scale", 2.0f);
    gguf_writer_set_u32(w, "granitehybrid.ssm.conv_kernel", CK);
    gguf_writer_set_u32(w, "granitehybrid.ssm.state_size", DS);
    gguf_writer_set_u32(w, "granitehybrid.ssm.group_count", NG);
    gguf_writer_set_u32(w, "granitehybrid.ssm.time_step_rank", NH);
    gguf_writer_set_u32(w, "granitehybrid.ssm.inner_size", VD);
    tl_add(w, &rs, "token_embd.weight", TL_V, TL_E, 1.0f);
    tl_add(w, &rs, "output_norm.weight", 1, TL_E, 1.0f);
    tl_add(w, &rs, "output.weight", TL_V, TL_E, 1.0f);
    for (int l = 0; l < 4; l++) {
        char n[64];
#define TG(x) (snprintf(n, sizeof n, "blk.%d.%s", l, x), n)
        tl_add(w, &rs, TG("attn_norm.weight"), 1, TL_E, 1.0f);
        tl_add(w, &rs, TG("ffn_norm.weight"), 1, TL_E, 1.0f);
        if (kv[l] == 0) {
            tl_add(w, &rs, TG("ssm_in.weight"), VD + C + NH, TL_E, 0.5f);
            tl_add(w, &rs, TG("ssm_conv1d.weight"), C, CK, 0.5f);
            tl_add(w, &rs, TG("ssm_conv1d.bias"), 1, C, 1.0f);
            tl_add(w, &rs, TG("ssm_dt.bias"), 1, NH, 1.0f);
            tl_add(w, &rs, TG("ssm_norm.weight"), NG, VD / NG, 1.0f);
            tl_add(w, &rs, TG("ssm_out.weight"), TL_E, VD, 0.5f);
            const float a[NH] = {-0.3f, -0.1f}, d[NH] = {1.0f, 0.5f};
            const int64_t ne[2] = {1, NH};
            CHECK(gguf_writer_add_tensor(w, TG("ssm_a"), SL_TYPE_F32, 2, ne, a) == 0);
            CHECK(gguf_writer_add_tensor(w, TG("ssm_d"), SL_TYPE_F32, 2, ne, d) == 0);
        } else {
            tl_add(w, &rs, TG("attn_q.weight"), TL_H * TL_D, TL_E, 0.5f);
            tl_add(w, &rs, TG("attn_k.weight"), TL_K * TL_D, TL_E, 0.5f);
            tl_add(w, &rs, TG("attn_v.weight"), TL_K * TL_D, TL_E, 0.5f);
            tl_add(w, &rs, TG("attn_output.weight"), TL_E, TL_H * TL_D, 0.5f);
        }
        tl_add(w, &rs, TG("ffn_gate.weight"), TL_F, TL_E, 0.5f);
        tl_add(w, &rs, TG("ffn_up.weight"), TL_F, TL_E, 0.5f);
        tl_add(w, &rs, TG("ffn_down.weight"), TL_E, TL_F, 0.5f);
#undef TG
    }
    char err[SL_ERR_MAX];
    int rc = gguf_writer_write(w, path, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    gguf_writer_free(w);
}

#endif
