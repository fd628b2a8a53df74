/*
 * model.c — llama-family models (llama, internlm2, qwen2, qwen3, qwen2moe,
 * qwen3moe, chatglm, glm4, glm4moe, phi3, gemma, gemma2, gemma3, granite,
 * granitemoe, smollm3, olmo2, ernie4_5, deepseek2, gpt-oss, qwen35, qwen35moe, qwen3next, gemma4) from GGUF:
 * loading and validating
 * hyper-parameters and weights, the KV cache, and the forward pass over a
 * batch of tokens; and the bert encoder's whole-sequence pass with pooling
 * (model_embed, at the end of the file).
 *
 * Weights stay in the file's mapping; only the small 1-D tensors (norm
 * weights, biases, rope_freqs) are copied into F32 arrays. Every weight
 * matrix W has GGUF shape ne = [n_in, n_out] and is used as y = W x through
 * sl_matmul, which takes any type it supports. Matrices the kernels have an
 * x8 panel layout for (q8_0, q5_0, q4_0, q5_1, q4_1, q4_K, q5_K, q6_K on AVX2 and up; see
 * sl_x8_supported) are repacked once at load,
 * and the other streamed matrices copied as they are, into one anonymous arena (transparent huge pages where the kernel allows:
 * decode streams every weight per token), slice by slice, each slice's file
 * pages released right after (MADV_DONTNEED), so the resident size stays
 * about the file's; token_embd keeps its file rows for the embedding lookup
 * (when the output is tied, the output matrix is the packed copy).
 * SILICA_X8=0 turns the repacking off.
 *
 * One layer, for a batch of n tokens (E = n_embd, H = n_head, K = n_head_kv,
 * D = head_dim):
 *
 *   xn = rmsnorm(x) * attn_norm                        n × E
 *   q = Wq xn (+bq), k = Wk xn (+bk), v = Wv xn (+bv)  n × H·D, n × K·D, n × K·D
 *   qwen3: q, k = per-head rmsnorm * attn_{q,k}_norm
 *   q, k = rope(q, k, position)                        NORM (llama) / NEOX (qwen)
 *   cache[pos] = k, v;  a = causal GQA attention       n × H·D
 *                       (gpt-oss: + a sink logit per head in each softmax's denominator)
 *   x += Wo a                                          (glm4: rmsnorm(Wo a) * post_attention_norm)
 *   xn = rmsnorm(x) * ffn_norm
 *   x += Wdown (silu(Wgate xn) * Wup xn)                (glm4: rmsnorm(...) * post_ffw_norm)
 *   (qwen3moe: x += Σ over the token's top-k experts e of the router's
 *    softmax, renormalized: w_e · Wdown_e (silu(Wgate_e xn) * Wup_e xn);
 *    qwen2moe: not renormalized, + sigmoid(g · xn) · the shared expert;
 *    gpt-oss: router and experts biased, swiglu_oai (clamped) for silu)
 *
 * and at the end logits = Wout rmsnorm(x) * output_norm (Wout = token_embd
 * when the output is tied). qwen35's DeltaNet layers replace attention with
 * a recurrence over each sequence's own state (deltanet_layer, below); its
 * attention layers gate their output by sigmoid of a second q projection.
 * gemma4 gives each layer its own head size, head counts and RoPE (window
 * or global layer), RMS-norms V without a weight, lets its last layers
 * read the KV of an earlier layer, and adds a per-layer embedding branch
 * after the FFN (gemma4_ple) and a per-layer output scale.
 *
 * Threading: matmuls and attention split over the pool; the element-wise
 * steps split over tokens (prefill) or elements (swiglu). The scratch
 * buffers belong to the model, so one model_forward runs at a time per
 * model (the engine has one engine thread per model).
 */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"

/* Tokens per internal step of a long prefill: bounds the scratch memory. */
#define MODEL_MAX_BATCH 256
/* Refuse absurd hyper-parameters before they turn into allocations. */
#define MODEL_DIM_LIMIT (1 << 20)
#define MODEL_MAX_EXPERTS 1024
#define MODEL_MAX_EXPERTS_USED 64
/* gpt-oss's SwiGLU constants (llama.cpp's LLM_FFN_SWIGLU_OAI_MOE) */
#define MODEL_OAI_ALPHA 1.702f
#define MODEL_OAI_LIMIT 7.0f

typedef struct sl_wt {
    const void *data;
    sl_type_t type;
    int64_t n_in, n_out;
    size_t row_bytes;
    void *x8; /* x8 panel copy (sl_x8_pack, in the model's arena) the matmuls use, or NULL */
} sl_wt_t;

typedef struct sl_layer {
    float *attn_norm, *ffn_norm;
    float *post_attn_norm, *post_ffn_norm; /* glm4: on the attention / FFN output before the residual add */
    float *shexp_gate;                     /* qwen2moe: n_embd; the shared expert's weight is sigmoid(this · xn) */
    float *expert_bias;                    /* glm4moe: n_expert, added to the probabilities to choose experts */
    float *q_norm, *k_norm;     /* qwen3: per head (head_dim); olmo2: over the whole q / k row */
    float *bq, *bk, *bv, *bo;   /* optional biases */
    float *sinks;               /* gpt-oss: n_head attention-sink logits */
    /* gpt-oss: the router's bias (n_expert) and the experts' biases, expert
     * e's at e × n_ff_exp (gate, up) and e × n_embd (down) */
    float *router_b, *xgate_b, *xup_b, *xdown_b;
    /* bert: attn_norm / ffn_norm are the LayerNorms after the attention and
     * FFN residual adds (attn_output_norm, layer_output_norm), with these
     * biases; the FFN is down(gelu(up x + bup)) + bdown */
    float *attn_norm_b, *ffn_norm_b, *bup, *bdown;
    /* deepseek2 (MLA): q from wq, or wq_b(rmsnorm(wq_a x) · q_a_norm); the
     * latent row from wkv_a, its first n_lora_kv normed by kv_a_norm; per
     * head, wk_b[h] takes q_nope to the latent space and wv_b[h] the
     * attention output back to the head's values */
    sl_wt_t wq_a, wq_b, wkv_a;
    float *q_a_norm, *kv_a_norm;
    sl_wt_t *wk_b, *wv_b; /* n_head each */
    sl_wt_t wq, wk, wv, wo;
    sl_wt_t gate, up, down;       /* dense FFN */
    sl_wt_t router;               /* MoE: ffn_gate_inp, n_embd → n_expert */
    sl_wt_t *xgate, *xup, *xdown; /* MoE: n_expert each, views of the 3-D expert tensors */
    /* qwen35: a DeltaNet layer (recurrent) has wqkv (n_embd → C = 2·H_k·Dk +
     * H_v·Dv, the conv's input channels: q, k, then v), wz (the output
     * gate, → H_v·Dv), wbeta and walpha (→ H_v), ssm_out (H_v·Dv → n_embd),
     * the conv weights transposed to [tap][channel] (conv_w, ssm_conv × C),
     * dt_bias and ssm_a (= -exp(A_log), H_v each) and the gated norm
     * (ssm_norm, Dv); an attention layer has wq of 2·n_head·head_dim rows,
     * head h's q then its gate (gated_q) */
    bool recurrent, gated_q;
    sl_wt_t wqkv, wz, wbeta, walpha, ssm_out;
    /* qwen3next: wba (n_embd → 2·H_v: per key head its value heads' b, then
     * their a) for wbeta / walpha; in older files wqkvz (n_embd → C + H_v·Dv:
     * per key head q, k, its value heads' v, then their z) for wqkv / wz */
    sl_wt_t wba, wqkvz;
    float *conv_w, *dt_bias, *ssm_a, *ssm_norm;
    /* Mamba-2 (granitehybrid): ssm_in (n_embd → d_inner z, C conv inputs
     * xBC, heads dt), the conv's bias (C), the D skip (heads); ssm_norm is
     * then d_inner (one weight per group of d_inner / n_group), conv_w,
     * dt_bias, ssm_a (= -exp(A_log)) and ssm_out as above */
    sl_wt_t ssm_in;
    float *conv_b, *ssm_d;
    /* nemotron_h: each layer is one sublayer after attn_norm — a Mamba-2 or
     * attention mixer (no_ffn) or an MLP (ffn_only: up, relu², down, with
     * the optional biases bup / bdown) */
    bool ffn_only, no_ffn;
    /* hybrid models: a recurrent layer's place among the recurrent ones
     * (its part of the sequence state); their kv_l (below) counts the
     * attention layers only */
    int rec_l;
    /* attention shape of this layer (every architecture: the model's; gemma4: the window or global
     * layer's own), its FFN width, and the KV-cache layer its attention reads (gemma4: a layer
     * without K/V of its own, has_kv false, reads an earlier layer's) */
    int n_head, n_head_kv, head_dim, n_ff, kv_l;
    bool has_kv;
    /* gemma4: the per-layer embedding branch (inp_gate: n_embd → n_embd_pl, proj: back, post_norm)
     * and the layer's output scale (layer_output_scale, 1 when absent) */
    sl_wt_t pl_gate, pl_proj;
    float *pl_post_norm;
    float out_scale;
    /* gemma4 26B-A4B: the router's input scale (n_embd), each expert's output scale (n_expert, NULL:
     * 1), and the norms of the two FFN branches (the experts' input, the dense MLP's and the
     * experts' outputs) */
    float *router_s, *xdown_s, *pre_norm_2, *post_norm_1, *post_norm_2;
} sl_layer_t;

struct sl_scratch {
    int cap_tok;     /* tokens the per-token buffers hold */
    size_t cap_scores; /* floats in scores */
    float *x, *xn, *q, *k, *v, *att, *gate, *up;
    float *scores;
    int32_t *tok_pos;            /* cap_tok: position of each batch token */
    int32_t *seq_t0;             /* cap_tok: first batch token of each sequence (after tok_pos) */
    const int32_t **tok_blocks;  /* cap_tok: block table of each batch token's sequence */
    int cap_out;                 /* rows of out_logits */
    float *out_logits;           /* cap_out × n_vocab: logits of several sequences */
    /* mixture of experts, cap_tok rows each (NE = n_expert, KU = n_expert_used,
     * FE = n_ff_exp): router logits (× NE), each token's chosen experts and
     * weights (× KU), the batch's (token, weight) pairs grouped by expert
     * (× KU, with NE + 1 group starts), one expert's gathered inputs,
     * hidden units and outputs (× E, × FE twice, × E), the FFN sum (× E) */
    float *moe_logits, *moe_w, *moe_gw, *moe_x, *moe_g, *moe_u, *moe_y, *moe_sum;
    /* MLA, cap_tok rows each: q (n_head × (n_nope + n_rot)), the latent
     * rows (head_dim), q's LoRA (n_lora_q), the heads' values (n_head ×
     * n_v_mla), two per-head gather buffers (the largest of n_nope,
     * n_lora_kv, n_v_mla) */
    float *mla_q, *mla_kv, *mla_qa, *mla_o, *mla_g1, *mla_g2;
    int32_t *moe_e, *moe_tok, *moe_start;
    /* hybrid (qwen35), cap_tok rows each: the gated attention's q + gate
     * projection (× 2·H·D) and gate (× H·D); the DeltaNet's conv input and
     * output (× C each), output gate z and output o (× H_v·Dv each), beta
     * and decay (× H_v each) */
    float *qg, *qgate, *dn_in, *dn_conv, *dn_z, *dn_o, *dn_b, *dn_g;
    float *dn_mix; /* qwen3next: the fused projections' outputs (× C + H_v·Dv + 2·H_v) */
    /* gemma4's per-layer embeddings, cap_tok rows each: every layer's input (× n_layer·n_embd_pl),
     * a token-table row (× n_layer·n_embd_pl), the branch's gated hidden units (× n_embd_pl) */
    float *ple, *ple_tok, *ple_g;
    float *g4_mlp, *g4_rin; /* gemma4 with experts: the dense MLP's output, the router's input (× n_embd) */
};

struct sl_model {
    gguf_file_t *gf;
    sl_hparams_t hp;
    sl_wt_t tok_embd;
    sl_wt_t output; /* = tok_embd when tied */
    void *x8_arena; /* the x8 copies of the matrices that have one */
    float *output_norm;
    float *rope_freqs;
    float *rope_long, *rope_short; /* phi3 LongRoPE factors (both or neither) */
    float *rope_mask; /* qwen35's IMROPE on text: 1, or infinity for the pairs it leaves unrotated */
    bool *mamba_rec;  /* granitehybrid, nemotron_h: n_layer flags, true for a Mamba-2 layer */
    uint32_t *layer_ff; /* nemotron_h: n_layer FFN sizes, > 0 for an MLP layer */
    /* bert: absolute positions and token types added to the token
     * embeddings, LayerNorm'ed (embd_norm, embd_norm_b); RANK's classifier
     * head (cls + cls_b, tanh, cls_out + cls_out_b) */
    sl_wt_t pos_embd, type_embd, cls, cls_out;
    float *embd_norm, *embd_norm_b, *cls_b, *cls_out_b;
    sl_layer_t *layers;
    /* gemma4: which layers are window layers (hp.swa_layers points here); the per-layer token
     * table ([n_layer·n_embd_pl, n_vocab]), the model projection (n_embd → n_layer·n_embd_pl) and
     * its norm (n_embd_pl) */
    bool *swa_layers;
    sl_wt_t pl_tok, pl_model_proj;
    float *pl_proj_norm;
    struct sl_scratch s;
};

/* Both caches share one layout: blocks of block_size positions; inside a
 * block [layer][kv head][slot][head_dim row of row_bytes]. The
 * single-sequence sl_kv_t is one block of n_ctx positions (so its layout is
 * [layer][kv head][position][head_dim]); the paged pool has many blocks of a
 * few positions each, shared out by the engine through block tables. */
typedef struct sl_kv_layout {
    int n_layer, n_head_kv, head_dim;
    int block_size;      /* positions per block */
    sl_type_t type;      /* F32, F16 or Q8_0 */
    size_t row_bytes;    /* one head_dim row */
    size_t layer_bytes;  /* one layer of one block: n_head_kv × block_size rows */
    size_t block_bytes;  /* n_layer × layer_bytes */
    bool v_is_k;         /* deepseek2: the V rows are the K rows (the latent row), stored once */
    uint8_t *k, *v;      /* v == k when v_is_k */
    /* gemma4: layers of different KV widths (window layers: n_head_kv × head_dim_swa, global ones:
     * their own), each packed at its own offset in a block (so a block holds exactly what its
     * layers store: no layer padded to the widest); NULL: every layer is n_head_kv × head_dim at
     * l × layer_bytes */
    struct sl_kv_lspec {
        size_t off, row_bytes;
        int n_head_kv, head_dim;
    } *ls;
} sl_kv_layout_t;

/* The byte offset of KV layer kl in a block, its row size, its heads and head size. */
static size_t lay_off(const sl_kv_layout_t *lay, int kl) {
    return lay->ls ? lay->ls[kl].off : (size_t)kl * lay->layer_bytes;
}
static size_t lay_row(const sl_kv_layout_t *lay, int kl) { return lay->ls ? lay->ls[kl].row_bytes : lay->row_bytes; }
static int lay_heads(const sl_kv_layout_t *lay, int kl) { return lay->ls ? lay->ls[kl].n_head_kv : lay->n_head_kv; }

struct sl_kv {
    sl_kv_layout_t lay; /* one block of n_ctx positions */
    int n_ctx, len;
    float *state; /* hybrid models: the sequence's recurrent state, which has seen state_len tokens */
    int state_len;
};

struct sl_kv_pool {
    sl_kv_layout_t lay;
    int n_blocks;
};

/* ---------------------------------------------------------------- loading */

static int key_u32(const gguf_file_t *f, const char *arch, const char *suffix, bool required,
                   uint32_t def, uint32_t *out, char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (gguf_find_key(f, key) < 0) {
        if (required) return sl_err(err, errlen, "missing metadata key '%s'", key);
        *out = def;
        return 0;
    }
    char e[256];
    if (gguf_get_u32(f, key, out, e, sizeof e) != 0)
        return sl_err(err, errlen, "metadata key '%s': %s", key, e);
    return 0;
}

static int key_f32(const gguf_file_t *f, const char *arch, const char *suffix, bool required,
                   float def, float *out, char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (gguf_find_key(f, key) < 0) {
        if (required) return sl_err(err, errlen, "missing metadata key '%s'", key);
        *out = def;
        return 0;
    }
    char e[256];
    if (gguf_get_f32(f, key, out, e, sizeof e) != 0)
        return sl_err(err, errlen, "metadata key '%s': %s", key, e);
    if (!isfinite(*out)) return sl_err(err, errlen, "metadata key '%s' is not finite", key);
    return 0;
}

static int dim_ok(uint32_t v, const char *what, char *err, size_t errlen) {
    if (v == 0 || v > MODEL_DIM_LIMIT)
        return sl_err(err, errlen, "hyper-parameter %s = %u is out of range", what, v);
    return 0;
}

/* The mixture-of-experts keys (qwen3moe, qwen2moe, glm4moe, granitemoe,
 * and llama when it has expert_count: Mixtral): expert_count,
 * expert_used_count, expert_feed_forward_length (default n_ff /
 * n_expert_used, as llama.cpp reads it; Mixtral's and Granite MoE's
 * experts are n_ff wide), expert_weights_scale (optional);
 * qwen2moe's expert_shared_feed_forward_length (default n_ff); glm4moe's
 * expert_shared_count (shared hidden size = that × n_ff_exp),
 * leading_dense_block_count, expert_weights_norm and expert_gating_func
 * (1 softmax, 2 sigmoid; default sigmoid). Qwen3-MoE, Granite MoE and
 * Mixtral renormalize the chosen experts' weights, Qwen2-MoE does not. Dense architectures keep 0
 * experts. */
/* nemotron_h and its MoE variant nemotron_h_moe (Nemotron 3 Nano) */
static bool is_nemotron(const sl_hparams_t *hp) {
    return hp->arch == SL_ARCH_NEMOTRON_H || hp->arch == SL_ARCH_NEMOTRON_H_MOE;
}
static int key_u32_max(const gguf_file_t *f, const char *arch, const char *suffix, bool required, uint32_t def,
                       uint32_t *out, char *err, size_t errlen);

static int load_experts(const gguf_file_t *f, sl_hparams_t *hp, char *err, size_t errlen) {
    hp->expert_scale = 1.0f;
    const char *arch = hp->arch_name;
    /* llama with experts: Mixtral (llama.expert_count > 0) */
    char ekey[128];
    snprintf(ekey, sizeof ekey, "%s.expert_count", arch);
    const bool llama_moe = hp->arch == SL_ARCH_LLAMA && gguf_get_u32_or(f, ekey, 0) > 0;
    /* granitehybrid: Granite 4.0 H Tiny / Small have experts, H Micro a dense FFN */
    const bool granite_moe = hp->arch == SL_ARCH_GRANITEMOE ||
                             (hp->arch == SL_ARCH_GRANITEHYBRID && gguf_find_key(f, ekey) >= 0);
    /* gemma4: the 26B-A4B has experts beside its dense MLP */
    const bool g4_moe = hp->arch == SL_ARCH_GEMMA4 && gguf_find_key(f, ekey) >= 0;
    if (hp->arch != SL_ARCH_QWEN3MOE && hp->arch != SL_ARCH_QWEN2MOE && !g4_moe &&
        hp->arch != SL_ARCH_GLM4MOE && !granite_moe &&
        hp->arch != SL_ARCH_DEEPSEEK2 && hp->arch != SL_ARCH_GPT_OSS && hp->arch != SL_ARCH_QWEN35MOE &&
        hp->arch != SL_ARCH_QWEN3NEXT && hp->arch != SL_ARCH_NEMOTRON_H_MOE && !llama_moe)
        return 0;
    uint32_t ne, nu, ffe;
    if (key_u32(f, arch, "expert_count", true, 0, &ne, err, errlen) ||
        key_u32(f, arch, "expert_used_count", true, 0, &nu, err, errlen))
        return -1;
    if (ne == 0 || ne > MODEL_MAX_EXPERTS)
        return sl_err(err, errlen, "%s.expert_count = %u must be 1 .. %d", arch, ne, MODEL_MAX_EXPERTS);
    if (nu == 0 || nu > ne || nu > MODEL_MAX_EXPERTS_USED)
        return sl_err(err, errlen, "%s.expert_used_count = %u must be 1 .. min(expert_count %u, %d)", arch, nu,
                      ne, MODEL_MAX_EXPERTS_USED);
    /* Mixtral and Granite MoE experts have feed_forward_length rows (llama.cpp
     * reads no other key for them) */
    if (llama_moe || granite_moe)
        ffe = (uint32_t)hp->n_ff;
    else if ((g4_moe ? key_u32_max : key_u32)(f, arch, "expert_feed_forward_length",
                                               hp->arch == SL_ARCH_GPT_OSS || hp->arch == SL_ARCH_QWEN35MOE || g4_moe ||
                                                   hp->arch == SL_ARCH_NEMOTRON_H_MOE,
                                               (uint32_t)hp->n_ff / nu, &ffe, err, errlen))
        return -1;
    if (dim_ok(ffe, "expert_feed_forward_length", err, errlen)) return -1;
    float scale;
    if (key_f32(f, arch, "expert_weights_scale", false, 0.0f, &scale, err, errlen)) return -1;
    if (!(scale >= 0.0f) || !isfinite(scale))
        return sl_err(err, errlen, "%s.expert_weights_scale must be a finite number >= 0", arch);
    hp->n_expert = (int)ne;
    hp->n_expert_used = (int)nu;
    hp->n_ff_exp = (int)ffe;
    /* gpt-oss: llama.cpp's SOFTMAX_WEIGHT gating, the top k of the (biased)
     * router logits weighted by a softmax over those k — the same as the
     * softmax over all renormalized over the k */
    hp->expert_norm = hp->arch == SL_ARCH_QWEN3MOE || granite_moe || llama_moe ||
                      hp->arch == SL_ARCH_GPT_OSS || hp->arch == SL_ARCH_QWEN35MOE || hp->arch == SL_ARCH_QWEN3NEXT ||
                      g4_moe;
    if (hp->arch == SL_ARCH_NEMOTRON_H_MOE) {
        /* llama.cpp's graph: sigmoid gating with the selection bias
         * (exp_probs_b), expert_weights_norm, expert_weights_scale; relu²
         * experts of up and down only; an ungated relu² shared expert */
        uint32_t fsh;
        char key[128];
        if (key_u32(f, arch, "expert_shared_feed_forward_length", true, 0, &fsh, err, errlen) ||
            dim_ok(fsh, "expert_shared_feed_forward_length", err, errlen))
            return -1;
        hp->n_ff_shexp = (int)fsh;
        hp->expert_sigmoid = true;
        snprintf(key, sizeof key, "%s.expert_weights_norm", arch);
        hp->expert_norm = gguf_get_bool_or(f, key, false);
        if (scale > 0.0f) hp->expert_scale = scale;
    }
    if (granite_moe) { /* Granite MoE Shared: an ungated shared expert */
        uint32_t fsh;
        if (key_u32(f, arch, "expert_shared_feed_forward_length", false, 0, &fsh, err, errlen) ||
            (fsh && dim_ok(fsh, "expert_shared_feed_forward_length", err, errlen)))
            return -1;
        hp->n_ff_shexp = (int)fsh;
    }
    if (hp->arch == SL_ARCH_QWEN2MOE || hp->arch == SL_ARCH_QWEN35MOE || hp->arch == SL_ARCH_QWEN3NEXT) {
        /* qwen35moe: the shared expert as qwen2moe's (llama.cpp's
         * qwen35moe graph: sigmoid(ffn_gate_inp_shexp · x) · shared) */
        uint32_t fsh;
        if (key_u32(f, arch, "expert_shared_feed_forward_length", false, (uint32_t)hp->n_ff, &fsh, err, errlen) ||
            dim_ok(fsh, "expert_shared_feed_forward_length", err, errlen))
            return -1;
        hp->n_ff_shexp = (int)fsh;
        hp->shexp_gated = true;
    }
    if (hp->arch == SL_ARCH_GLM4MOE || hp->arch == SL_ARCH_DEEPSEEK2) {
        /* deepseek2: DeepSeek-V2's softmax gating unless the file says
         * (V3: sigmoid with a selection bias), experts in groups of which
         * the best expert_group_used_count are kept (V3) */
        const bool ds = hp->arch == SL_ARCH_DEEPSEEK2;
        uint32_t nsh, lead, gating, ng, ngu;
        char key[128];
        if (key_u32(f, arch, "expert_shared_count", false, 0, &nsh, err, errlen) ||
            key_u32(f, arch, "leading_dense_block_count", false, 0, &lead, err, errlen) ||
            key_u32(f, arch, "expert_gating_func", false, ds ? 1 : 2, &gating, err, errlen) ||
            key_u32(f, arch, "expert_group_count", false, 0, &ng, err, errlen) ||
            key_u32(f, arch, "expert_group_used_count", false, 0, &ngu, err, errlen))
            return -1;
        if (ng > 1 && ngu > 0 && ngu < ng) {
            if (ne % ng != 0 || ne / ng < 2 || (uint64_t)ngu * (ne / ng) < nu)
                return sl_err(err, errlen,
                              "%s.expert_group_count = %u must split %u experts into groups of 2 or more, of which "
                              "%u hold at least expert_used_count = %u",
                              arch, ng, ne, ngu, nu);
            hp->n_group = (int)ng;
            hp->n_group_used = (int)ngu;
        }
        if (nsh > 64) return sl_err(err, errlen, "%s.expert_shared_count = %u is too large", arch, nsh);
        if (lead > (uint32_t)hp->n_layer)
            return sl_err(err, errlen, "%s.leading_dense_block_count = %u exceeds the %d layers", arch, lead,
                          hp->n_layer);
        if (gating != 1 && gating != 2)
            return sl_err(err, errlen, "%s.expert_gating_func = %u (1 softmax, 2 sigmoid)", arch, gating);
        snprintf(key, sizeof key, "%s.expert_weights_norm", arch);
        hp->expert_norm = gguf_get_bool_or(f, key, false);
        hp->expert_sigmoid = gating == 2;
        hp->n_ff_shexp = (int)(nsh * ffe);
        hp->n_dense_lead = (int)lead;
    }
    hp->expert_scale = scale > 0.0f ? scale : 1.0f;
    return 0;
}

/* The window layers' own RoPE (gemma3, OLMo 3): the model's, with this
 * base, unscaled and without frequency factors. */
static void swa_rope_unscaled(sl_hparams_t *hp, float base) {
    sl_rope_t *r = &hp->rope_swa;
    *r = hp->rope;
    r->freq_base = base;
    r->scaling = SL_ROPE_SCALING_NONE;
    r->freq_scale = 1.0f;
    r->ext_factor = 0.0f;
    r->attn_factor = 1.0f;
    r->freq_factors = NULL;
    hp->swa_rope = true;
}

/* gpt-oss's window layers, as llama.cpp reads them: attention.sliding_window
 * (required) on the layers l % attention.sliding_window_pattern (default 2:
 * the even layers) < pattern - 1, with the model's RoPE and its scaling
 * (YaRN) unless rope.freq_base_swa gives them another base. */
static int load_gpt_oss_swa(const gguf_file_t *f, sl_hparams_t *hp, char *err, size_t errlen) {
    uint32_t swa, period;
    if (key_u32(f, hp->arch_name, "attention.sliding_window", true, 0, &swa, err, errlen) ||
        dim_ok(swa, "attention.sliding_window", err, errlen) ||
        key_u32(f, hp->arch_name, "attention.sliding_window_pattern", false, 2, &period, err,
                errlen))
        return -1;
    if (period < 1 || period > (uint32_t)MODEL_DIM_LIMIT)
        return sl_err(err, errlen, "%s.attention.sliding_window_pattern = %u must be >= 1",
                      hp->arch_name, period);
    float base;
    if (key_f32(f, hp->arch_name, "rope.freq_base_swa", false, hp->rope.freq_base, &base, err,
                errlen))
        return -1;
    if (!(base > 1.0f)) return sl_err(err, errlen, "rope.freq_base_swa must be > 1");
    hp->n_swa = (int)swa;
    hp->swa_period = (int)period;
    if (base != hp->rope.freq_base) {
        hp->rope_swa = hp->rope;
        hp->rope_swa.freq_base = base;
        hp->swa_rope = true;
    }
    return 0;
}

/* Gemma's own hyper-parameters, as llama.cpp sets them: embeddings scaled
 * by sqrt(n_embd), a tanh-GELU FFN. gemma2: even layers attend to their
 * last attention.sliding_window positions, attention scores and final
 * logits soft-capped (attn_logit_softcapping, default 50;
 * final_logit_softcapping, default 30), query scale 1/sqrt(n_embd /
 * n_head) for the 27B (46 layers). gemma3: every 6th layer global, the
 * other five windowed with RoPE base 10000 unscaled, the 27B (62 layers)
 * scaled likewise. Otherwise 1/sqrt(head_dim). Other architectures: no
 * scaling, SiLU, 1/sqrt(head_dim), no windows. */
static int load_gemma(const gguf_file_t *f, sl_hparams_t *hp, char *err, size_t errlen) {
    hp->embd_scale = 1.0f;
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    if (hp->arch != SL_ARCH_GEMMA && hp->arch != SL_ARCH_GEMMA2 && hp->arch != SL_ARCH_GEMMA3 &&
        hp->arch != SL_ARCH_GEMMA4)
        return 0;
    hp->embd_scale = sqrtf((float)hp->n_embd);
    hp->gelu = true;
    if (hp->arch == SL_ARCH_GEMMA || hp->arch == SL_ARCH_GEMMA4) return 0; /* gemma4: load_gemma4 */
    uint32_t swa;
    if (key_u32(f, hp->arch_name, "attention.sliding_window", true, 0, &swa, err, errlen) ||
        dim_ok(swa, "attention.sliding_window", err, errlen))
        return -1;
    hp->n_swa = (int)swa;
    const bool gemma2 = hp->arch == SL_ARCH_GEMMA2;
    hp->swa_period = gemma2 ? 2 : 6;
    if (hp->n_layer == (gemma2 ? 46 : 62)) hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    if (gemma2) {
        if (key_f32(f, hp->arch_name, "attn_logit_softcapping", false, 50.0f, &hp->attn_softcap, err, errlen) ||
            key_f32(f, hp->arch_name, "final_logit_softcapping", false, 30.0f, &hp->logit_softcap, err, errlen))
            return -1;
        if (!(hp->attn_softcap >= 0.0f) || !(hp->logit_softcap >= 0.0f) || !isfinite(hp->attn_softcap) ||
            !isfinite(hp->logit_softcap))
            return sl_err(err, errlen, "%s soft-capping values must be finite and >= 0", hp->arch_name);
        return 0; /* the window layers share the RoPE */
    }
    swa_rope_unscaled(hp, 10000.0f);
    return 0;
}

/* OLMo 3's sliding windows (absent in OLMo 2): attention.sliding_window
 * positions on the layers l % sliding_window_pattern (default 4) <
 * pattern - 1, whose RoPE is unscaled with rope.freq_base_swa (default
 * the model's base). */
static int load_olmo_swa(const gguf_file_t *f, sl_hparams_t *hp, char *err, size_t errlen) {
    uint32_t swa, period;
    if (key_u32(f, hp->arch_name, "attention.sliding_window", false, 0, &swa, err, errlen) ||
        key_u32(f, hp->arch_name, "attention.sliding_window_pattern", false, 4, &period, err, errlen))
        return -1;
    if (swa == 0) return 0;
    if (dim_ok(swa, "attention.sliding_window", err, errlen)) return -1;
    if (period < 1 || period > 1024)
        return sl_err(err, errlen, "%s.attention.sliding_window_pattern = %u is out of range", hp->arch_name, period);
    float base;
    if (key_f32(f, hp->arch_name, "rope.freq_base_swa", false, hp->rope.freq_base, &base, err, errlen)) return -1;
    if (!(base > 1.0f)) return sl_err(err, errlen, "rope.freq_base_swa must be > 1");
    hp->n_swa = (int)swa;
    hp->swa_period = (int)period;
    swa_rope_unscaled(hp, base);
    return 0;
}

/* Granite's scale factors (llama.cpp's names): embedding_scale (× the
 * token embeddings), attention.scale (the query scale; 0 or absent:
 * 1/sqrt(head_dim)), residual_scale (× each attention and FFN output),
 * logit_scale (required: logits ÷ it); rope.scaling.finetuned false turns
 * RoPE off. Other architectures: 1. */
static int load_granite(const gguf_file_t *f, sl_hparams_t *hp, char *err, size_t errlen) {
    hp->residual_scale = 1.0f;
    hp->logit_scale = 1.0f;
    if (hp->arch == SL_ARCH_SMOLLM3) hp->nope_period = 4; /* as llama.cpp fixes it */
    if (hp->arch == SL_ARCH_OLMO2 && load_olmo_swa(f, hp, err, errlen)) return -1;
    if (hp->arch == SL_ARCH_GPT_OSS && load_gpt_oss_swa(f, hp, err, errlen)) return -1;
    if (hp->arch != SL_ARCH_GRANITE && hp->arch != SL_ARCH_GRANITEMOE && hp->arch != SL_ARCH_GRANITEHYBRID) return 0;
    const char *arch = hp->arch_name;
    const bool hybrid = hp->arch == SL_ARCH_GRANITEHYBRID; /* llama.cpp requires none of its scales */
    float es, as, rs;
    if (key_f32(f, arch, "embedding_scale", false, 0.0f, &es, err, errlen) ||
        key_f32(f, arch, "attention.scale", false, 0.0f, &as, err, errlen) ||
        key_f32(f, arch, "residual_scale", false, 0.0f, &rs, err, errlen) ||
        key_f32(f, arch, "logit_scale", !hybrid, 1.0f, &hp->logit_scale, err, errlen))
        return -1;
    if (!isfinite(es) || !isfinite(as) || !isfinite(rs) || !isfinite(hp->logit_scale) || hp->logit_scale == 0.0f)
        return sl_err(err, errlen, "%s scale factors must be finite (logit_scale non-zero)", arch);
    if (es != 0.0f) hp->embd_scale = es;
    if (as != 0.0f) hp->attn_scale = as;
    if (rs != 0.0f) hp->residual_scale = rs;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.finetuned", arch);
    if (!gguf_get_bool_or(f, key, true)) hp->rope.n_rot = 0;
    return 0;
}

static bool layer_swa(const sl_hparams_t *hp, int l) {
    if (hp->swa_layers) return hp->swa_layers[l];
    return hp->swa_period > 0 && l % hp->swa_period < hp->swa_period - 1;
}

/* A classifier's outputs: the length of {arch}.classifier.output_labels
 * (an array of strings), 1 when absent. */
static int load_cls_labels(const gguf_file_t *f, sl_hparams_t *hp, uint32_t embd, char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof key, "%s.classifier.output_labels", hp->arch_name);
    hp->n_cls_out = 1;
    const int64_t ki = gguf_find_key(f, key);
    if (ki < 0) return 0;
    if (gguf_kv_type(f, (size_t)ki) != GGUF_VT_ARRAY || gguf_arr_type(f, (size_t)ki) != GGUF_VT_STRING)
        return sl_err(err, errlen, "%s must be an array of strings", key);
    const size_t n = gguf_arr_len(f, (size_t)ki);
    if (n == 0 || n > embd) return sl_err(err, errlen, "%s has %zu labels (1 .. %u)", key, n, embd);
    hp->n_cls_out = (int)n;
    return 0;
}

/* bert (BERT, XLM-RoBERTa as the converter writes them): the usual size
 * keys, attention.layer_norm_epsilon, attention.causal (must be false),
 * pooling_type (default CLS) and, for a classifier, output_labels (one per
 * output; default 1). Every head is its own KV head; no RoPE. */
static int load_bert_hparams(const gguf_file_t *f, sl_hparams_t *hp, char *err, size_t errlen) {
    const char *arch = hp->arch_name;
    uint32_t ctx, embd, nl, ff, nh, pooling;
    if (key_u32(f, arch, "context_length", true, 0, &ctx, err, errlen) ||
        key_u32(f, arch, "embedding_length", true, 0, &embd, err, errlen) ||
        key_u32(f, arch, "block_count", true, 0, &nl, err, errlen) ||
        key_u32(f, arch, "feed_forward_length", true, 0, &ff, err, errlen) ||
        key_u32(f, arch, "attention.head_count", true, 0, &nh, err, errlen) ||
        dim_ok(ctx, "context_length", err, errlen) || dim_ok(embd, "embedding_length", err, errlen) ||
        dim_ok(nl, "block_count", err, errlen) || dim_ok(ff, "feed_forward_length", err, errlen) ||
        dim_ok(nh, "attention.head_count", err, errlen))
        return -1;
    if (embd % nh != 0)
        return sl_err(err, errlen, "embedding_length (%u) is not a multiple of attention.head_count (%u)", embd, nh);
    char key[128];
    snprintf(key, sizeof key, "%s.attention.causal", arch);
    if (gguf_get_bool_or(f, key, false))
        return sl_err(err, errlen, "%s = true: a causal %s model is not supported", key, arch);
    if (key_f32(f, arch, "attention.layer_norm_epsilon", true, 0, &hp->norm_eps, err, errlen)) return -1;
    if (!(hp->norm_eps >= 0.0f)) return sl_err(err, errlen, "attention.layer_norm_epsilon must be >= 0");
    if (key_u32(f, arch, "pooling_type", false, SL_POOLING_CLS, &pooling, err, errlen)) return -1;
    if (pooling < SL_POOLING_MEAN || pooling > SL_POOLING_RANK)
        return sl_err(err, errlen,
                      "%s.pooling_type = %u is not supported (1 mean, 2 cls, 3 last, 4 rank; 0 gives a vector per "
                      "token)",
                      arch, pooling);
    hp->pooling = (sl_pooling_t)pooling;
    if (load_cls_labels(f, hp, embd, err, errlen)) return -1;
    hp->encoder = true;
    hp->n_ctx_train = (int)ctx;
    hp->n_embd = (int)embd;
    hp->n_layer = (int)nl;
    hp->n_ff = (int)ff;
    hp->n_head = hp->n_head_kv = (int)nh;
    hp->head_dim = (int)(embd / nh);
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = hp->residual_scale = hp->logit_scale = hp->expert_scale = 1.0f;
    if (hp->arch == SL_ARCH_NOMIC_BERT) { /* rotate-halves RoPE over the heads, no position table */
        sl_rope_t *r = &hp->rope;
        uint32_t nrot;
        if (key_u32(f, arch, "rope.dimension_count", false, (uint32_t)hp->head_dim, &nrot, err, errlen) ||
            key_f32(f, arch, "rope.freq_base", false, 10000.0f, &r->freq_base, err, errlen))
            return -1;
        if (nrot == 0 || nrot > (uint32_t)hp->head_dim || (nrot & 1))
            return sl_err(err, errlen, "rope.dimension_count = %u must be even and at most the head size %d", nrot,
                          hp->head_dim);
        if (!(r->freq_base > 1.0f)) return sl_err(err, errlen, "rope.freq_base must be > 1");
        r->style = SL_ROPE_NEOX;
        r->n_rot = (int)nrot;
        r->scaling = SL_ROPE_SCALING_NONE;
        r->freq_scale = r->attn_factor = 1.0f;
        r->beta_fast = 32.0f;
        r->beta_slow = 1.0f;
        r->n_ctx_orig = (int)ctx;
    }
    return 0;
}

/* deepseek2's MLA keys (the layout of the current converter: the per-head
 * attn_k_b / attn_v_b, one latent KV head of kv_lora_rank + rope values)
 * and its attention scale: HF's softmax scale (nope + rope)^-1/2 · m² with
 * m = 1 + 0.1 · mscale_all_dim · ln(YaRN factor), the converter writing
 * 0.1 · mscale_all_dim as rope.scaling.yarn_log_multiplier; the YaRN cos
 * and sin keep magnitude 1 (HF's mscale / mscale_all_dim ratio, 1 as the
 * converter assumes), so rope_yarn's own 1 + 0.1 ln(factor) is divided out. */
static int load_mla(const gguf_file_t *f, sl_hparams_t *hp, uint32_t vl, float factor, char *err, size_t errlen) {
    const char *arch = hp->arch_name;
    uint32_t kmla, vmla, ql, kvl;
    if (key_u32(f, arch, "attention.kv_lora_rank", true, 0, &kvl, err, errlen) ||
        key_u32(f, arch, "attention.q_lora_rank", false, 0, &ql, err, errlen) ||
        key_u32(f, arch, "attention.key_length_mla", false, 0, &kmla, err, errlen) ||
        key_u32(f, arch, "attention.value_length_mla", false, 0, &vmla, err, errlen))
        return -1;
    if (kmla == 0 || vmla == 0)
        return sl_err(err, errlen,
                      "%s has no attention.key_length_mla / value_length_mla: a file of an older converter "
                      "(attn_kv_b); convert the model again",
                      arch);
    const int nrot = hp->rope.n_rot;
    if (hp->n_head_kv != 1 || dim_ok(kvl, "attention.kv_lora_rank", err, errlen) ||
        (uint32_t)hp->head_dim != kvl + (uint32_t)nrot || vl != kvl)
        return sl_err(err, errlen,
                      "%s: the latent KV head must have key_length = kv_lora_rank + rope (%u + %d) and value_length "
                      "= kv_lora_rank, head_count_kv 1 (got %d, %u, %d)",
                      arch, kvl, nrot, hp->head_dim, vl, hp->n_head_kv);
    if (kmla <= (uint32_t)nrot || kmla > MODEL_DIM_LIMIT || dim_ok(vmla, "attention.value_length_mla", err, errlen) ||
        (ql && dim_ok(ql, "attention.q_lora_rank", err, errlen)))
        return sl_err(err, errlen, "%s: attention.key_length_mla (%u) must exceed the rope dimensions (%d)", arch, kmla,
                      nrot);
    hp->mla = true;
    hp->n_lora_q = (int)ql;
    hp->n_lora_kv = (int)kvl;
    hp->n_nope = (int)(kmla - (uint32_t)nrot);
    hp->n_v_mla = (int)vmla;
    float log_mul;
    if (key_f32(f, arch, "rope.scaling.yarn_log_multiplier", false, 0.0f, &log_mul, err, errlen)) return -1;
    float m = 1.0f;
    if (hp->rope.scaling == SL_ROPE_SCALING_YARN && factor > 1.0f) {
        m = 1.0f + log_mul * logf(factor);
        hp->rope.attn_factor = 1.0f / (1.0f + 0.1f * logf(factor));
    }
    hp->attn_scale = m * m / sqrtf((float)kmla);
    return 0;
}

static bool layer_recurrent(const sl_hparams_t *hp, int l) {
    return hp->full_attn_interval > 0 && (l + 1) % hp->full_attn_interval != 0;
}

/* The KV cache's layer of attention layer l: hybrid models keep K/V only
 * for their attention layers (kv_l counts them); gemma4's shared layers
 * read an earlier one's. */
static int kv_layer(const sl_model_t *m, int l) {
    const sl_hparams_t *hp = &m->hp;
    return hp->arch == SL_ARCH_GEMMA4 || hp->ssm_hybrid ? m->layers[l].kv_l : l;
}

/* qwen35 / qwen35moe, as llama.cpp's converter writes them: ssm.conv_kernel,
 * ssm.state_size (the key head size Dk, also the value head size),
 * ssm.group_count (key heads H_k), ssm.time_step_rank (value heads H_v),
 * ssm.inner_size (H_v · Dv), full_attention_interval (default 4: layers
 * 3, 7, … attend) and rope.dimension_sections. llama.cpp runs the
 * attention layers' RoPE as IMROPE: pair i of the rotated dims turns by
 * the position of axis t, h or w (i mod sum(sections) mod 3, while below
 * 3 × that axis's section), else by axis e's. For text every token has
 * t = h = w = its position and e = 0, so IMROPE is NEOX RoPE over those
 * pairs and leaves the e pairs unturned (rope_mask: their divisor is
 * infinite, so their angle is 0). */
static int load_hybrid(sl_model_t *m, char *err, size_t errlen) {
    const gguf_file_t *f = m->gf;
    sl_hparams_t *hp = &m->hp;
    const char *arch = hp->arch_name;
    uint32_t conv, ds, ng, dtr, inner, every;
    if (key_u32(f, arch, "ssm.conv_kernel", true, 0, &conv, err, errlen) ||
        key_u32(f, arch, "ssm.state_size", true, 0, &ds, err, errlen) ||
        key_u32(f, arch, "ssm.group_count", true, 0, &ng, err, errlen) ||
        key_u32(f, arch, "ssm.time_step_rank", true, 0, &dtr, err, errlen) ||
        key_u32(f, arch, "ssm.inner_size", true, 0, &inner, err, errlen) ||
        key_u32(f, arch, "full_attention_interval", false, 4, &every, err, errlen))
        return -1;
    if (conv == 0 || conv > 64) return sl_err(err, errlen, "%s.ssm.conv_kernel = %u must be 1 .. 64", arch, conv);
    if (dim_ok(ds, "ssm.state_size", err, errlen) || dim_ok(ng, "ssm.group_count", err, errlen) ||
        dim_ok(dtr, "ssm.time_step_rank", err, errlen) || dim_ok(inner, "ssm.inner_size", err, errlen))
        return -1;
    if (ds > 4096 || dtr % ng != 0 || inner % dtr != 0 || inner / dtr != ds)
        return sl_err(err, errlen,
                      "%s: ssm.time_step_rank (%u value heads) must be a multiple of ssm.group_count (%u key "
                      "heads), and ssm.inner_size (%u) value heads of ssm.state_size (%u, at most 4096) each",
                      arch, dtr, ng, inner, ds);
    if (2 * (uint64_t)ng * ds + inner > MODEL_DIM_LIMIT)
        return sl_err(err, errlen, "%s: the DeltaNet conv channels (2 × %u × %u + %u) are out of range", arch, ng, ds,
                      inner);
    if (every == 0 || every > (uint32_t)hp->n_layer)
        return sl_err(err, errlen, "%s.full_attention_interval = %u must be 1 .. block_count (%d)", arch, every,
                      hp->n_layer);
    if (hp->pooling != SL_POOLING_NONE)
        return sl_err(err, errlen, "%s: a pooling (embedding) model with DeltaNet layers is not supported", arch);
    hp->full_attn_interval = (int)every;
    hp->ssm_hybrid = true;
    hp->ssm_conv = (int)conv;
    hp->ssm_n_k = (int)ng;
    hp->ssm_head_k = (int)ds;
    hp->ssm_n_v = (int)dtr;
    hp->ssm_head_v = (int)(inner / dtr);
    hp->n_layer_kv = hp->n_layer / (int)every;
    /* qwen3next: HF's grouped V heads and plain NEOX RoPE (llama.cpp's rope type for it) */
    hp->ssm_v_grouped = hp->arch == SL_ARCH_QWEN3NEXT;
    if (hp->ssm_v_grouped) return 0;

    char key[128];
    snprintf(key, sizeof key, "%s.rope.dimension_sections", arch);
    const int64_t ki = gguf_find_key(f, key);
    if (ki < 0) return sl_err(err, errlen, "missing metadata key '%s'", key);
    const gguf_vtype_t at = gguf_kv_type(f, (size_t)ki) == GGUF_VT_ARRAY ? gguf_arr_type(f, (size_t)ki) : GGUF_VT_ARRAY;
    const size_t na = gguf_kv_type(f, (size_t)ki) == GGUF_VT_ARRAY ? gguf_arr_len(f, (size_t)ki) : 0;
    if ((at != GGUF_VT_INT32 && at != GGUF_VT_UINT32) || na < 3 || na > 4)
        return sl_err(err, errlen, "%s must be an array of 3 or 4 integers", key);
    int64_t sec[4] = {0, 0, 0, 0}, sum = 0;
    const uint8_t *ad = gguf_arr_data(f, (size_t)ki);
    for (size_t i = 0; i < na; i++) {
        int32_t v;
        memcpy(&v, ad + 4 * i, 4);
        if (v < 0 || v > MODEL_DIM_LIMIT) return sl_err(err, errlen, "%s[%zu] = %d is out of range", key, i, (int)v);
        sec[i] = at == GGUF_VT_UINT32 ? (int64_t)(uint32_t)v : v;
        sum += sec[i];
    }
    if (sum == 0) return sl_err(err, errlen, "%s sums to 0", key);
    const int pairs = hp->rope.n_rot / 2;
    bool all = true;
    for (int i = 0; i < pairs; i++) {
        const int64_t sc = i % sum, ax = sc % 3;
        all = all && sc < 3 * sec[ax];
    }
    if (!all) {
        m->rope_mask = malloc(sizeof(float) * (size_t)pairs);
        if (!m->rope_mask) return sl_err(err, errlen, "out of memory");
        for (int i = 0; i < pairs; i++) {
            const int64_t sc = i % sum, ax = sc % 3;
            m->rope_mask[i] = sc < 3 * sec[ax] ? 1.0f : INFINITY;
        }
    }
    return 0;
}


/* ---- Mamba-2 hybrids (granitehybrid, nemotron_h): loading ----
 *
 * A per-layer array key ({arch}.attention.head_count_kv, nemotron_h's
 * feed_forward_length): block_count non-negative integers into *out (a new
 * array owned by the model). */
static int key_layer_array(const gguf_file_t *f, const char *arch, const char *suffix, uint32_t nl, uint32_t **out,
                           char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    const int64_t ki = gguf_find_key(f, key);
    if (ki < 0) return sl_err(err, errlen, "missing metadata key '%s'", key);
    const bool arr = gguf_kv_type(f, (size_t)ki) == GGUF_VT_ARRAY;
    const gguf_vtype_t at = arr ? gguf_arr_type(f, (size_t)ki) : GGUF_VT_ARRAY;
    if (!arr || (at != GGUF_VT_INT32 && at != GGUF_VT_UINT32) || gguf_arr_len(f, (size_t)ki) != nl)
        return sl_err(err, errlen, "%s must be an array of block_count (%u) integers, one per layer", key, nl);
    uint32_t *v = calloc(nl, sizeof *v);
    if (!v) return sl_err(err, errlen, "out of memory");
    const uint8_t *ad = gguf_arr_data(f, (size_t)ki);
    for (uint32_t i = 0; i < nl; i++) {
        memcpy(&v[i], ad + 4 * (size_t)i, 4);
        if (v[i] > MODEL_DIM_LIMIT) {
            const uint32_t bad = v[i];
            free(v);
            return sl_err(err, errlen, "%s[%u] = %u is out of range", key, i, bad);
        }
    }
    *out = v;
    return 0;
}

/* nemotron_h: feed_forward_length per layer, > 0 for an MLP layer
 * (m->layer_ff); *ff gets the largest (the scratch's width), 1 if none. */
static int load_nemotron_ff(sl_model_t *m, uint32_t nl, uint32_t *ff, char *err, size_t errlen) {
    if (nl == 0 || nl > MODEL_DIM_LIMIT) return sl_err(err, errlen, "block_count = %u is out of range", nl);
    if (key_layer_array(m->gf, m->hp.arch_name, "feed_forward_length", nl, &m->layer_ff, err, errlen)) return -1;
    *ff = 1;
    for (uint32_t i = 0; i < nl; i++) *ff = SL_MAX(*ff, m->layer_ff[i]);
    return 0;
}

/* Which layers are Mamba-2 layers (llama.cpp's rule):
 * {arch}.attention.head_count_kv is an array of block_count entries, 0 for
 * a layer without attention; granitehybrid: such a layer is a Mamba-2
 * layer; nemotron_h: a Mamba-2 layer when its feed_forward_length is 0
 * too, else an MLP layer. Every attention layer must have the same KV
 * heads (one KV layout), and there must be one. Fills m->mamba_rec
 * (block_count flags), *nkv and n_layer_kv. */
static int load_mamba2_kinds(sl_model_t *m, uint32_t nl, uint32_t *nkv, char *err, size_t errlen) {
    uint32_t *kvs = NULL;
    if (key_layer_array(m->gf, m->hp.arch_name, "attention.head_count_kv", nl, &kvs, err, errlen)) return -1;
    m->mamba_rec = calloc(nl, sizeof *m->mamba_rec);
    if (!m->mamba_rec) {
        free(kvs);
        return sl_err(err, errlen, "out of memory");
    }
    uint32_t kv = 0;
    int n_attn = 0;
    for (uint32_t i = 0; i < nl; i++) {
        const uint32_t v = kvs[i], ffl = m->layer_ff ? m->layer_ff[i] : 0;
        if (v && ffl) {
            free(kvs);
            return sl_err(err, errlen, "layer %u has both attention.head_count_kv and feed_forward_length", i);
        }
        if (v == 0) {
            m->mamba_rec[i] = ffl == 0;
            continue;
        }
        if (kv && v != kv) {
            free(kvs);
            return sl_err(err, errlen, "%s.attention.head_count_kv[%u] = %u: the attention layers' KV heads must all "
                          "be one value (%u)", m->hp.arch_name, i, v, kv);
        }
        kv = v;
        n_attn++;
    }
    free(kvs);
    if (n_attn == 0) /* a pure Mamba-2 model is another architecture (mamba2) */
        return sl_err(err, errlen, "%s.attention.head_count_kv: no attention layer (every entry 0)", m->hp.arch_name);
    *nkv = kv;
    m->hp.n_layer_kv = n_attn;
    return 0;
}

/* The Mamba-2 mixer's keys as llama.cpp's converter writes them:
 * ssm.conv_kernel (d_conv), ssm.state_size (d_state), ssm.group_count
 * (n_group: B and C are shared by the heads of a group), ssm.inner_size
 * (d_inner = heads × head_dim), ssm.time_step_rank (the heads). They go to
 * the DeltaNet fields of the same shape: n_group → ssm_n_k, d_state →
 * ssm_head_k, heads → ssm_n_v, head_dim → ssm_head_v, so the conv's
 * channels (d_inner + 2·n_group·d_state) and the state's size are the
 * same formulas. */
static int load_mamba2(sl_model_t *m, char *err, size_t errlen) {
    const gguf_file_t *f = m->gf;
    sl_hparams_t *hp = &m->hp;
    const char *arch = hp->arch_name;
    uint32_t conv, ds, ng, nh, inner;
    if (key_u32(f, arch, "ssm.conv_kernel", true, 0, &conv, err, errlen) ||
        key_u32(f, arch, "ssm.state_size", true, 0, &ds, err, errlen) ||
        key_u32(f, arch, "ssm.group_count", true, 0, &ng, err, errlen) ||
        key_u32(f, arch, "ssm.time_step_rank", true, 0, &nh, err, errlen) ||
        key_u32(f, arch, "ssm.inner_size", true, 0, &inner, err, errlen))
        return -1;
    if (conv == 0 || conv > 64) return sl_err(err, errlen, "%s.ssm.conv_kernel = %u must be 1 .. 64", arch, conv);
    if (dim_ok(ds, "ssm.state_size", err, errlen) || dim_ok(ng, "ssm.group_count", err, errlen) ||
        dim_ok(nh, "ssm.time_step_rank", err, errlen) || dim_ok(inner, "ssm.inner_size", err, errlen))
        return -1;
    if (ds > 4096 || nh % ng != 0 || inner % nh != 0 || inner % ng != 0)
        return sl_err(err, errlen,
                      "%s: ssm.time_step_rank (%u heads) must be a multiple of ssm.group_count (%u), "
                      "ssm.inner_size (%u) a multiple of both, ssm.state_size (%u) at most 4096",
                      arch, nh, ng, inner, ds);
    if (2 * (uint64_t)ng * ds + inner > MODEL_DIM_LIMIT || (uint64_t)inner * ds > ((uint64_t)1 << 32))
        return sl_err(err, errlen, "%s: the Mamba-2 sizes (inner %u, groups %u, state %u) are out of range", arch,
                      inner, ng, ds);
    if (hp->pooling != SL_POOLING_NONE)
        return sl_err(err, errlen, "%s: a pooling (embedding) model with Mamba-2 layers is not supported", arch);
    hp->ssm_hybrid = hp->mamba2 = true;
    if (is_nemotron(hp)) hp->rope.n_rot = 0; /* llama.cpp: rope type none */
    hp->ssm_conv = (int)conv;
    hp->ssm_n_k = (int)ng;
    hp->ssm_head_k = (int)ds;
    hp->ssm_n_v = (int)nh;
    hp->ssm_head_v = (int)(inner / nh);
    return 0;
}

/* {arch}.suffix as one integer or an array of n (u32 / i32, one per
 * layer): out[0..n). Absent and not required: def everywhere. */
static int key_u32_layers(const gguf_file_t *f, const char *arch, const char *suffix, bool required, uint32_t def,
                          uint32_t n, uint32_t *out, char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    const int64_t ki = gguf_find_key(f, key);
    if (ki < 0 || gguf_kv_type(f, (size_t)ki) != GGUF_VT_ARRAY) {
        uint32_t v;
        if (key_u32(f, arch, suffix, required, def, &v, err, errlen)) return -1;
        for (uint32_t i = 0; i < n; i++) out[i] = v;
        return 0;
    }
    const gguf_vtype_t at = gguf_arr_type(f, (size_t)ki);
    if ((at != GGUF_VT_UINT32 && at != GGUF_VT_INT32) || gguf_arr_len(f, (size_t)ki) != n)
        return sl_err(err, errlen, "%s must be an integer or an array of %u integers (one per layer)", key, n);
    const uint8_t *d = gguf_arr_data(f, (size_t)ki);
    for (uint32_t i = 0; i < n; i++) {
        int32_t v;
        memcpy(&v, d + 4 * (size_t)i, 4);
        if (at == GGUF_VT_INT32 && v < 0) return sl_err(err, errlen, "%s[%u] = %d is negative", key, i, (int)v);
        out[i] = (uint32_t)v;
    }
    return 0;
}

/* The largest value of key_u32_layers (gemma4's per-layer sizes: the
 * scratch and the KV cache's checks use it). */
static int key_u32_max(const gguf_file_t *f, const char *arch, const char *suffix, bool required, uint32_t def,
                       uint32_t *out, char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    const int64_t ki = gguf_find_key(f, key);
    if (ki < 0 || gguf_kv_type(f, (size_t)ki) != GGUF_VT_ARRAY) return key_u32(f, arch, suffix, required, def, out, err, errlen);
    const size_t n = gguf_arr_len(f, (size_t)ki);
    if (n == 0 || n > MODEL_DIM_LIMIT) return sl_err(err, errlen, "%s has %zu values", key, n);
    uint32_t *v = malloc(n * sizeof *v);
    if (!v) return sl_err(err, errlen, "out of memory");
    const int rc = key_u32_layers(f, arch, suffix, required, def, (uint32_t)n, v, err, errlen);
    *out = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) *out = SL_MAX(*out, v[i]);
    free(v);
    return rc;
}

/* Gemma 4 (text), as llama.cpp reads it: attention.sliding_window_pattern
 * (one bool per layer: a window layer of attention.sliding_window
 * positions), the global layers' head size key_length (= value_length)
 * and rotary dims rope.dimension_count with base rope.freq_base and the
 * rope_freqs divisors (proportional RoPE: 1e30 on the pairs left
 * unturned), the window layers' key_length_swa (= value_length_swa),
 * rope.dimension_count_swa (default, as llama.cpp's, the global layers'
 * rope.dimension_count, which must then fit the window head) and
 * rope.freq_base_swa (default the global base) without divisors;
 * head_count, head_count_kv and feed_forward_length one per layer or one
 * for all; attention.shared_kv_layers (default 0): the last that many
 * layers keep no K/V and read the KV of layer n_kv - 2 (window) or
 * n_kv - 1 (global), n_kv the layers that have it — llama.cpp's rule,
 * which must name a layer of the same kind and shape; embedding_length_
 * per_layer_input (0: no per-layer embeddings), final_logit_softcapping
 * (default 30). Queries and keys are RMS-normed, so the attention scale
 * is 1 (attention.scale, absent in converted files, may say otherwise). */
static int load_gemma4(sl_model_t *m, uint32_t kl, char *err, size_t errlen) {
    const gguf_file_t *f = m->gf;
    sl_hparams_t *hp = &m->hp;
    const char *arch = hp->arch_name;
    const uint32_t nl = (uint32_t)hp->n_layer;
    if (hp->pooling != SL_POOLING_NONE)
        return sl_err(err, errlen, "%s: a pooling (embedding) model is not supported", arch);
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", arch);
    const int64_t ki = gguf_find_key(f, key);
    if (ki < 0) return sl_err(err, errlen, "missing metadata key '%s'", key);
    if (gguf_kv_type(f, (size_t)ki) != GGUF_VT_ARRAY || gguf_arr_type(f, (size_t)ki) != GGUF_VT_BOOL ||
        gguf_arr_len(f, (size_t)ki) != nl)
        return sl_err(err, errlen, "%s must be an array of %u bools (one per layer)", key, nl);
    uint32_t swa, kls, vls, nrs, shared, npl;
    float base_swa, scale;
    if (key_u32(f, arch, "attention.sliding_window", true, 0, &swa, err, errlen) ||
        dim_ok(swa, "attention.sliding_window", err, errlen) ||
        key_u32(f, arch, "attention.key_length_swa", true, 0, &kls, err, errlen) ||
        dim_ok(kls, "attention.key_length_swa", err, errlen) ||
        key_u32(f, arch, "attention.value_length_swa", true, 0, &vls, err, errlen) ||
        key_u32(f, arch, "rope.dimension_count_swa", false, (uint32_t)hp->rope.n_rot, &nrs, err, errlen) ||
        key_f32(f, arch, "rope.freq_base_swa", false, hp->rope.freq_base, &base_swa, err, errlen) ||
        key_u32(f, arch, "attention.shared_kv_layers", false, 0, &shared, err, errlen) ||
        key_u32(f, arch, "embedding_length_per_layer_input", true, 0, &npl, err, errlen) ||
        key_f32(f, arch, "final_logit_softcapping", false, 30.0f, &hp->logit_softcap, err, errlen) ||
        key_f32(f, arch, "attention.scale", false, 1.0f, &scale, err, errlen))
        return -1;
    if (vls != kls)
        return sl_err(err, errlen, "%s: attention.value_length_swa (%u) must equal key_length_swa (%u)", arch, vls,
                      kls);
    if (nrs == 0 || nrs > kls || (nrs & 1))
        return sl_err(err, errlen, "%s.rope.dimension_count_swa = %u must be even and at most the head size %u", arch,
                      nrs, kls);
    if (!(base_swa > 1.0f)) return sl_err(err, errlen, "rope.freq_base_swa must be > 1");
    if (shared >= nl)
        return sl_err(err, errlen, "%s.attention.shared_kv_layers = %u leaves no layer of %u with its own KV", arch,
                      shared, nl);
    if ((uint64_t)npl * nl > MODEL_DIM_LIMIT)
        return sl_err(err, errlen, "%s.embedding_length_per_layer_input = %u is out of range", arch, npl);
    if (!(hp->logit_softcap >= 0.0f)) return sl_err(err, errlen, "%s.final_logit_softcapping must be >= 0", arch);
    if (!(scale > 0.0f)) return sl_err(err, errlen, "%s.attention.scale must be > 0", arch);

    m->layers = calloc(nl, sizeof *m->layers);
    m->swa_layers = malloc(nl * sizeof *m->swa_layers);
    uint32_t *v = malloc(3 * (size_t)nl * sizeof *v);
    if (!m->layers || !m->swa_layers || !v) {
        free(v);
        return sl_err(err, errlen, "out of memory");
    }
    const uint8_t *pat = gguf_arr_data(f, (size_t)ki);
    for (uint32_t l = 0; l < nl; l++) m->swa_layers[l] = pat[l] != 0;
    hp->swa_layers = m->swa_layers;
    if (key_u32_layers(f, arch, "attention.head_count", true, 0, nl, v, err, errlen) ||
        key_u32_layers(f, arch, "attention.head_count_kv", false, 0, nl, v + nl, err, errlen) ||
        key_u32_layers(f, arch, "feed_forward_length", true, 0, nl, v + 2 * nl, err, errlen)) {
        free(v);
        return -1;
    }
    const int n_kv = (int)(nl - shared);
    int rc = 0;
    for (int l = 0; l < (int)nl && rc == 0; l++) {
        sl_layer_t *L = &m->layers[l];
        const uint32_t h = v[l], k = v[nl + l] ? v[nl + l] : h, ff = v[2 * nl + l];
        if (dim_ok(h, "attention.head_count", err, errlen) || dim_ok(k, "attention.head_count_kv", err, errlen) ||
            dim_ok(ff, "feed_forward_length", err, errlen)) {
            rc = -1;
            break;
        }
        L->head_dim = (int)(m->swa_layers[l] ? kls : kl);
        if (h % k != 0 || (uint64_t)h * (uint64_t)L->head_dim > MODEL_DIM_LIMIT)
            rc = sl_err(err, errlen, "%s layer %d: %u heads of %d over %u KV heads is not a valid shape", arch, l, h,
                        L->head_dim, k);
        L->n_head = (int)h;
        L->n_head_kv = (int)k;
        L->n_ff = (int)ff;
        L->has_kv = l < n_kv;
        L->kv_l = l;
        L->out_scale = 1.0f;
        if (!L->has_kv) { /* llama.cpp's rule: the last window / global layer with a KV */
            const int src = n_kv - (m->swa_layers[l] ? 2 : 1);
            if (rc == 0 && (src < 0 || m->swa_layers[src] != m->swa_layers[l] ||
                            m->layers[src].n_head_kv != L->n_head_kv))
                rc = sl_err(err, errlen,
                            "%s: layer %d shares the KV of layer %d, which is not a %s layer of %d KV heads (with "
                            "%u shared layers, layer %d must be a window layer and %d a global one)",
                            arch, l, src, m->swa_layers[l] ? "window" : "global", L->n_head_kv, shared, n_kv - 2,
                            n_kv - 1);
            L->kv_l = src;
        }
    }
    free(v);
    if (rc) return -1;
    hp->n_layer_kv = n_kv;
    hp->head_dim_swa = (int)kls;
    hp->n_embd_pl = (int)npl;
    hp->n_swa = (int)swa;
    hp->swa_period = 0;
    hp->attn_scale = scale;
    hp->attn_softcap = 0.0f;
    /* the window layers: the model's RoPE (its scaling too, as llama.cpp
     * defaults it) with their own base and dims, no divisors */
    hp->rope_swa = hp->rope;
    hp->rope_swa.freq_base = base_swa;
    hp->rope_swa.n_rot = (int)nrs;
    hp->rope_swa.freq_factors = NULL;
    hp->swa_rope = true;
    return 0;
}

static int load_hparams(sl_model_t *m, char *err, size_t errlen) {
    const gguf_file_t *f = m->gf;
    sl_hparams_t *hp = &m->hp;
    gguf_str_t a;
    char e[256];
    if (gguf_get_str(f, "general.architecture", &a, e, sizeof e) != 0)
        return sl_err(err, errlen, "general.architecture: %s", e);
    if (a.len == 0 || a.len >= sizeof hp->arch_name)
        return sl_err(err, errlen, "general.architecture has a bad length (%zu)", a.len);
    memcpy(hp->arch_name, a.ptr, a.len);
    hp->arch_name[a.len] = '\0';
    const char *arch = hp->arch_name;
    static const struct {
        const char *name;
        sl_arch_t arch;
    } archs[] = {{"llama", SL_ARCH_LLAMA},       {"internlm2", SL_ARCH_LLAMA},   {"qwen2", SL_ARCH_QWEN2},
                 {"qwen3", SL_ARCH_QWEN3},       {"qwen2moe", SL_ARCH_QWEN2MOE}, {"qwen3moe", SL_ARCH_QWEN3MOE},
                 {"chatglm", SL_ARCH_CHATGLM},   {"glm4", SL_ARCH_GLM4},         {"phi3", SL_ARCH_PHI3},
                 {"gemma", SL_ARCH_GEMMA},       {"gemma2", SL_ARCH_GEMMA2},     {"gemma3", SL_ARCH_GEMMA3},
                 {"glm4moe", SL_ARCH_GLM4MOE},   {"granite", SL_ARCH_GRANITE},   {"granitemoe", SL_ARCH_GRANITEMOE},
                 {"smollm3", SL_ARCH_SMOLLM3},   {"olmo2", SL_ARCH_OLMO2},       {"ernie4_5", SL_ARCH_ERNIE4_5},
                 {"bert", SL_ARCH_BERT},         {"nomic-bert", SL_ARCH_NOMIC_BERT},
                 {"deepseek2", SL_ARCH_DEEPSEEK2}, {"gpt-oss", SL_ARCH_GPT_OSS},
                 {"qwen35", SL_ARCH_QWEN35},     {"qwen35moe", SL_ARCH_QWEN35MOE},
                 {"qwen3next", SL_ARCH_QWEN3NEXT}, {"gemma4", SL_ARCH_GEMMA4},
                 {"granitehybrid", SL_ARCH_GRANITEHYBRID}, {"nemotron_h", SL_ARCH_NEMOTRON_H},
                 {"nemotron_h_moe", SL_ARCH_NEMOTRON_H_MOE}};
    size_t ai = 0;
    while (ai < SL_ARRAY_LEN(archs) && strcmp(arch, archs[ai].name) != 0) ai++;
    if (ai == SL_ARRAY_LEN(archs)) {
        char list[512] = "";
        for (size_t i = 0; i < SL_ARRAY_LEN(archs); i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", archs[i].name);
        return sl_err(err, errlen, "unsupported architecture '%s' (supported: %s)", arch, list);
    }
    hp->arch = archs[ai].arch;
    if (hp->arch == SL_ARCH_BERT || hp->arch == SL_ARCH_NOMIC_BERT) return load_bert_hparams(f, hp, err, errlen);

    uint32_t ctx, embd, nl, ff, nh, nkv, kl, vl, nrot;
    /* gemma4: per-layer head counts and FFN sizes; the largest here, each layer's in load_gemma4 */
    const bool g4 = hp->arch == SL_ARCH_GEMMA4;
    int (*const key_sz)(const gguf_file_t *, const char *, const char *, bool, uint32_t, uint32_t *, char *,
                        size_t) = g4 ? key_u32_max : key_u32;
    if (key_u32(f, arch, "context_length", true, 0, &ctx, err, errlen) ||
        key_u32(f, arch, "embedding_length", true, 0, &embd, err, errlen) ||
        key_u32(f, arch, "block_count", true, 0, &nl, err, errlen) ||
        /* qwen35moe: only the experts' sizes are required (0: n_ff_exp) */
        (is_nemotron(hp) ? load_nemotron_ff(m, nl, &ff, err, errlen)
                         : key_sz(f, arch, "feed_forward_length",
                                  hp->arch != SL_ARCH_QWEN35MOE && hp->arch != SL_ARCH_QWEN3NEXT, 0, &ff, err, errlen)) ||
        key_sz(f, arch, "attention.head_count", true, 0, &nh, err, errlen))
        return -1;
    if (dim_ok(ctx, "context_length", err, errlen) || dim_ok(embd, "embedding_length", err, errlen) ||
        dim_ok(nl, "block_count", err, errlen) ||
        ((ff || (hp->arch != SL_ARCH_QWEN35MOE && hp->arch != SL_ARCH_QWEN3NEXT)) &&
         dim_ok(ff, "feed_forward_length", err, errlen)) ||
        dim_ok(nh, "attention.head_count", err, errlen))
        return -1;
    if (hp->arch == SL_ARCH_GRANITEHYBRID || is_nemotron(hp)) {
        if (load_mamba2_kinds(m, nl, &nkv, err, errlen)) return -1;
    } else if (key_sz(f, arch, "attention.head_count_kv", false, nh, &nkv, err, errlen) ||
               dim_ok(nkv, "attention.head_count_kv", err, errlen))
        return -1;
    if (nh % nkv != 0 && !g4) /* gemma4: checked per layer */
        return sl_err(err, errlen, "attention.head_count (%u) is not a multiple of head_count_kv (%u)",
                      nh, nkv);
    if (key_u32(f, arch, "attention.key_length", false, nh ? embd / nh : 0, &kl, err, errlen) ||
        dim_ok(kl, "attention.key_length", err, errlen))
        return -1;
    if (key_u32(f, arch, "attention.value_length", false, kl, &vl, err, errlen)) return -1;
    /* deepseek2's latent rows: key_length = kv_lora_rank + rope, value_length = kv_lora_rank */
    if (vl != kl && hp->arch != SL_ARCH_DEEPSEEK2)
        return sl_err(err, errlen, "attention.value_length (%u) differs from key_length (%u): not supported",
                      vl, kl);
    if (key_u32(f, arch, "rope.dimension_count", false, kl, &nrot, err, errlen)) return -1;
    if (nrot == 0 || nrot > kl || (nrot & 1))
        return sl_err(err, errlen, "rope.dimension_count = %u must be even and at most the head size %u",
                      nrot, kl);

    /* glm4, qwen35: trailing multi-token-prediction layers the forward pass skips */
    uint32_t nextn = 0;
    if ((hp->arch == SL_ARCH_GLM4 || hp->arch == SL_ARCH_GLM4MOE || hp->arch == SL_ARCH_QWEN35 ||
         hp->arch == SL_ARCH_QWEN35MOE) &&
        key_u32(f, arch, "nextn_predict_layers", false, 0, &nextn, err, errlen))
        return -1;
    if (nextn >= nl)
        return sl_err(err, errlen, "%s.nextn_predict_layers = %u leaves no layer of %u", arch, nextn, nl);
    if (is_nemotron(hp) && gguf_get_u32_or(f, (snprintf(e, sizeof e, "%s.nextn_predict_layers", arch), e), 0) > 0)
        return sl_err(err, errlen, "%s: multi-token-prediction layers (nextn_predict_layers) are not supported", arch);
    nl -= nextn;
    hp->n_ctx_train = (int)ctx;
    hp->n_embd = (int)embd;
    hp->n_layer = (int)nl;
    hp->n_ff = (int)ff;
    hp->n_head = (int)nh;
    hp->n_head_kv = (int)nkv;
    hp->head_dim = (int)kl;

    if (load_experts(f, hp, err, errlen)) return -1;
    if (hp->n_ff == 0) hp->n_ff = hp->n_ff_exp; /* qwen35moe without feed_forward_length */
    if (!m->mamba_rec) hp->n_layer_kv = hp->n_layer; /* granitehybrid: its attention layers, counted above */
    if (key_f32(f, arch, "attention.layer_norm_rms_epsilon", true, 0, &hp->norm_eps, err, errlen))
        return -1;
    if (!(hp->norm_eps >= 0.0f))
        return sl_err(err, errlen, "attention.layer_norm_rms_epsilon must be >= 0");

    sl_rope_t *r = &hp->rope;
    memset(r, 0, sizeof *r);
    /* llama: Q/K rows permuted by the converter; GLM rotates adjacent pairs itself */
    r->style = hp->arch == SL_ARCH_LLAMA || hp->arch == SL_ARCH_CHATGLM || hp->arch == SL_ARCH_GLM4 ||
                       hp->arch == SL_ARCH_GRANITE || hp->arch == SL_ARCH_GRANITEMOE || hp->arch == SL_ARCH_SMOLLM3 ||
                       hp->arch == SL_ARCH_GRANITEHYBRID ||
                       hp->arch == SL_ARCH_ERNIE4_5 || hp->arch == SL_ARCH_DEEPSEEK2
                   ? SL_ROPE_NORM
                   : SL_ROPE_NEOX;
    r->n_rot = (int)nrot;
    if (key_f32(f, arch, "rope.freq_base", false, 10000.0f, &r->freq_base, err, errlen)) return -1;
    if (!(r->freq_base > 1.0f)) return sl_err(err, errlen, "rope.freq_base must be > 1");

    /* Scaling: rope.scaling.type (none|linear|yarn) + rope.scaling.factor,
     * or the older rope.scale_linear. */
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    r->scaling = SL_ROPE_SCALING_NONE;
    float factor = 0.0f;
    if (gguf_find_key(f, key) >= 0) {
        gguf_str_t st;
        if (gguf_get_str(f, key, &st, e, sizeof e) != 0) return sl_err(err, errlen, "%s: %s", key, e);
        if (st.len == 4 && !memcmp(st.ptr, "none", 4))
            r->scaling = SL_ROPE_SCALING_NONE;
        else if (st.len == 6 && !memcmp(st.ptr, "linear", 6))
            r->scaling = SL_ROPE_SCALING_LINEAR;
        else if (st.len == 4 && !memcmp(st.ptr, "yarn", 4))
            r->scaling = SL_ROPE_SCALING_YARN;
        else
            return sl_err(err, errlen, "%s = '%.*s' is not supported (none, linear, yarn)", key,
                          (int)SL_MIN(st.len, 32), st.ptr);
        if (key_f32(f, arch, "rope.scaling.factor", false, 0.0f, &factor, err, errlen)) return -1;
    } else {
        if (key_f32(f, arch, "rope.scale_linear", false, 0.0f, &factor, err, errlen)) return -1;
        if (factor != 0.0f && factor != 1.0f) r->scaling = SL_ROPE_SCALING_LINEAR;
    }
    if (factor < 0.0f) return sl_err(err, errlen, "rope scaling factor must be positive");
    r->freq_scale = (r->scaling != SL_ROPE_SCALING_NONE && factor > 0.0f) ? 1.0f / factor : 1.0f;

    uint32_t orig;
    if (key_u32(f, arch, "rope.scaling.original_context_length", false, ctx, &orig, err, errlen))
        return -1;
    r->n_ctx_orig = (int)SL_MIN(orig, (uint32_t)MODEL_DIM_LIMIT);
    r->ext_factor = 0.0f;
    r->attn_factor = 1.0f;
    r->beta_fast = 32.0f;
    r->beta_slow = 1.0f;
    /* phi3 LongRoPE: cos and sin scaled by sqrt(1 + ln(s) / ln(original ctx)),
     * which the converter writes as rope.scaling.attn_factor */
    if (hp->arch == SL_ARCH_PHI3) {
        if (key_f32(f, arch, "rope.scaling.attn_factor", false, 1.0f, &r->attn_factor, err, errlen)) return -1;
        if (!(r->attn_factor > 0.0f) || !isfinite(r->attn_factor))
            return sl_err(err, errlen, "%s.rope.scaling.attn_factor must be a positive number", arch);
    }
    if (r->scaling == SL_ROPE_SCALING_YARN) {
        if (key_f32(f, arch, "rope.scaling.yarn_ext_factor", false, 1.0f, &r->ext_factor, err, errlen) ||
            key_f32(f, arch, "rope.scaling.yarn_attn_factor", false, 1.0f, &r->attn_factor, err, errlen) ||
            key_f32(f, arch, "rope.scaling.yarn_beta_fast", false, 32.0f, &r->beta_fast, err, errlen) ||
            key_f32(f, arch, "rope.scaling.yarn_beta_slow", false, 1.0f, &r->beta_slow, err, errlen))
            return -1;
        if (r->n_ctx_orig <= 0) return sl_err(err, errlen, "yarn needs rope.scaling.original_context_length");
    }
    /* an embedding model made from a decoder (Qwen3-Embedding: last) */
    uint32_t pooling;
    if (key_u32(f, arch, "pooling_type", false, SL_POOLING_NONE, &pooling, err, errlen)) return -1;
    if (pooling > SL_POOLING_RANK)
        return sl_err(err, errlen,
                      "%s.pooling_type = %u is not supported for a decoder (0 none, 1 mean, 2 cls, 3 last, 4 rank)",
                      arch, pooling);
    hp->pooling = (sl_pooling_t)pooling;
    /* rank (Qwen3-Reranker): the last position's state through cls.output */
    if (hp->pooling == SL_POOLING_RANK && load_cls_labels(f, hp, embd, err, errlen)) return -1;
    if (load_gemma(f, hp, err, errlen) || load_granite(f, hp, err, errlen)) return -1;
    if ((hp->arch == SL_ARCH_QWEN35 || hp->arch == SL_ARCH_QWEN35MOE || hp->arch == SL_ARCH_QWEN3NEXT) &&
        load_hybrid(m, err, errlen))
        return -1;
    if ((hp->arch == SL_ARCH_GRANITEHYBRID || is_nemotron(hp)) && load_mamba2(m, err, errlen)) return -1;
    if (g4 && load_gemma4(m, kl, err, errlen)) return -1;
    return hp->arch == SL_ARCH_DEEPSEEK2 ? load_mla(f, hp, vl, factor, err, errlen) : 0; /* its own attention scale */
}

static const char *dims_str(const gguf_tensor_t *t, char *buf, size_t len) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (uint32_t i = 0; i < t->n_dims && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)t->ne[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
    return buf;
}

/* Checks that a tensor has exactly the shape [ne0] or [ne0, ne1] (trailing
 * dims of 1 allowed). */
static int check_shape(const gguf_tensor_t *t, int n_dims, int64_t ne0, int64_t ne1, const char *what,
                       char *err, size_t errlen) {
    bool ok = t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS && t->ne[0] == ne0 &&
              (n_dims == 1 ? t->ne[1] == 1 : t->ne[1] == ne1);
    for (uint32_t i = 2; ok && i < t->n_dims; i++) ok = t->ne[i] == 1;
    if (!ok) {
        char b[96];
        if (n_dims == 1)
            return sl_err(err, errlen, "tensor '%s' has shape %s, expected [%lld] (%s)", t->name,
                          dims_str(t, b, sizeof b), (long long)ne0, what);
        return sl_err(err, errlen, "tensor '%s' has shape %s, expected [%lld, %lld] (%s)", t->name,
                      dims_str(t, b, sizeof b), (long long)ne0, (long long)ne1, what);
    }
    return 0;
}

/* A tensor already found and shaped as n_rows rows of n_in: of a type
 * sl_matmul computes with, rows a whole number of blocks, and data for all
 * of them. Its row size in *rb. */
static int check_rows(const gguf_tensor_t *t, int64_t n_in, int64_t n_rows, size_t *rb, char *err, size_t errlen) {
    const sl_type_traits_t *tr = sl_type_traits(t->type);
    if (!tr || !tr->supported)
        return sl_err(err, errlen, "tensor '%s' has type %s, which Silica cannot compute with", t->name,
                      sl_type_name(t->type));
    size_t total;
    *rb = sl_row_size(t->type, n_in);
    if (*rb == 0)
        return sl_err(err, errlen, "tensor '%s': row length %lld is not a multiple of the %s block size %lld",
                      t->name, (long long)n_in, tr->name, (long long)tr->blck);
    if (!sl_mul_size(*rb, (size_t)n_rows, &total) || total > t->nbytes)
        return sl_err(err, errlen, "tensor '%s': data size %zu is smaller than its shape needs", t->name,
                      t->nbytes);
    return 0;
}

/* A weight matrix of ne = [n_in, n_out] of any type sl_matmul supports. */
static int get_matrix(sl_model_t *m, const char *name, int64_t n_in, int64_t n_out, const char *what,
                      bool required, sl_wt_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const gguf_tensor_t *t = gguf_find_tensor(m->gf, name);
    if (!t) {
        if (!required) return 0;
        return sl_err(err, errlen, "missing tensor '%s' (%s)", name, what);
    }
    size_t rb;
    if (check_shape(t, 2, n_in, n_out, what, err, errlen) || check_rows(t, n_in, n_out, &rb, err, errlen))
        return -1;
    *out = (sl_wt_t){t->data, t->type, n_in, n_out, rb, NULL};
    return 0;
}

/* The matrices of a 3-D tensor ne = [n_in, n_out, ne] (the experts of a
 * MoE layer, deepseek2's per-head k_b / v_b): out[e] views matrix e's
 * n_out rows (a new array of ne, owned by the layer). */
static int get_stack(sl_model_t *m, const char *name, int64_t n_in, int64_t n_out, int64_t ne, const char *what,
                     sl_wt_t **out, char *err, size_t errlen) {
    const gguf_tensor_t *t = gguf_find_tensor(m->gf, name);
    if (!t) {
        /* older converters wrote Mixtral's experts one 2-D tensor each */
        char old[128];
        const char *suffix = strstr(name, "_exps.weight");
        if (suffix && (size_t)(suffix - name) < 100) {
            snprintf(old, sizeof old, "%.*s.0.weight", (int)(suffix - name), name);
            if (gguf_find_tensor(m->gf, old))
                return sl_err(err, errlen,
                              "tensor '%s' holds one expert: per-expert tensors of older converters are not "
                              "supported (expected '%s'); convert the model again",
                              old, name);
        }
        return sl_err(err, errlen, "missing tensor '%s' (%s)", name, what);
    }
    bool ok = t->n_dims >= 3 && t->ne[0] == n_in && t->ne[1] == n_out && t->ne[2] == ne;
    for (uint32_t i = 3; ok && i < t->n_dims; i++) ok = t->ne[i] == 1;
    if (!ok) {
        char b[96];
        return sl_err(err, errlen, "tensor '%s' has shape %s, expected [%lld, %lld, %lld] (%s)", name,
                      dims_str(t, b, sizeof b), (long long)n_in, (long long)n_out, (long long)ne, what);
    }
    size_t rb;
    if (check_rows(t, n_in, n_out * ne, &rb, err, errlen)) return -1; /* ≤ 2^20 rows × 1024 experts */
    sl_wt_t *w = calloc((size_t)ne, sizeof *w);
    if (!w) return sl_err(err, errlen, "out of memory loading '%s'", name);
    for (int64_t e = 0; e < ne; e++)
        w[e] = (sl_wt_t){(const uint8_t *)t->data + (size_t)e * (size_t)n_out * rb, t->type, n_in, n_out, rb, NULL};
    *out = w;
    return 0;
}

/* Rows [r0, r0 + n) of w as a matrix of its own (a fused QKV or gate+up
 * matrix split into its parts). */
static sl_wt_t wt_rows(const sl_wt_t *w, int64_t r0, int64_t n) {
    return (sl_wt_t){(const uint8_t *)w->data + (size_t)r0 * w->row_bytes, w->type, w->n_in, n, w->row_bytes, NULL};
}

/* The n values of t (F32, F16 or BF16, all finite) as a new F32 array. */
static int copy_values(const gguf_tensor_t *t, int64_t n, const char *name, float **out, char *err,
                       size_t errlen) {
    if (t->type != SL_TYPE_F32 && t->type != SL_TYPE_F16 && t->type != SL_TYPE_BF16)
        return sl_err(err, errlen, "tensor '%s' has type %s; expected f32, f16 or bf16", name,
                      sl_type_name(t->type));
    size_t need = (size_t)n * (t->type == SL_TYPE_F32 ? 4 : 2);
    if (t->nbytes < need) return sl_err(err, errlen, "tensor '%s': data too small", name);
    float *v = malloc((size_t)n * sizeof(float));
    if (!v) return sl_err(err, errlen, "out of memory loading '%s'", name);
    const uint8_t *p = t->data;
    for (int64_t i = 0; i < n; i++) {
        if (t->type == SL_TYPE_F32) {
            memcpy(&v[i], p + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            v[i] = t->type == SL_TYPE_F16 ? sl_f16_to_f32(h) : sl_bf16_to_f32(h);
        }
        if (!isfinite(v[i])) {
            free(v);
            return sl_err(err, errlen, "tensor '%s' holds a non-finite value at %lld", name, (long long)i);
        }
    }
    *out = v;
    return 0;
}

/* A 1-D tensor of n elements (F32, F16 or BF16), copied into a new F32
 * array (*out, owned by the model). Absent and not required: *out = NULL. */
static int get_vector(sl_model_t *m, const char *name, int64_t n, const char *what, bool required,
                      float **out, char *err, size_t errlen) {
    *out = NULL;
    const gguf_tensor_t *t = gguf_find_tensor(m->gf, name);
    if (!t) {
        if (!required) return 0;
        return sl_err(err, errlen, "missing tensor '%s' (%s)", name, what);
    }
    if (check_shape(t, 1, n, 1, what, err, errlen)) return -1;
    return copy_values(t, n, name, out, err, errlen);
}

/* A 2-D tensor [n, ne] of F32/F16/BF16 (gpt-oss's expert biases: one row
 * of n per expert), copied into a new F32 array of n × ne (*out, owned by
 * the model). Required. */
static int get_vector_stack(sl_model_t *m, const char *name, int64_t n, int64_t ne,
                            const char *what, float **out, char *err, size_t errlen) {
    *out = NULL;
    const gguf_tensor_t *t = gguf_find_tensor(m->gf, name);
    if (!t) return sl_err(err, errlen, "missing tensor '%s' (%s)", name, what);
    if (check_shape(t, 2, n, ne, what, err, errlen)) return -1;
    return copy_values(t, n * ne, name, out, err, errlen);
}

/* A recurrent layer's ssm_conv1d.weight [d_conv, C] (d_conv taps per
 * channel) into L->conv_w as [tap][channel]: the conv runs along channels. */
static int get_conv1d(sl_model_t *m, const char *name, int64_t C, sl_layer_t *L, char *err, size_t errlen) {
    const int K = m->hp.ssm_conv;
    float *conv;
    if (get_vector_stack(m, name, K, C, "conv_kernel × conv channels", &conv, err, errlen)) return -1;
    L->conv_w = malloc(sizeof(float) * (size_t)C * (size_t)K);
    if (!L->conv_w) {
        free(conv);
        return sl_err(err, errlen, "out of memory");
    }
    for (int64_t c = 0; c < C; c++)
        for (int k = 0; k < K; k++) L->conv_w[(size_t)k * (size_t)C + (size_t)c] = conv[c * K + k];
    free(conv);
    return 0;
}

/* Repacking runs in slices of rows of about X8_SLICE bytes, spread over a
 * few threads; after each slice the whole file pages it read are
 * released, so at no point are both copies of a large matrix resident. */
#define X8_SLICE (4u << 20)
#define X8_THREADS 8

struct x8_slice {
    const sl_wt_t *w;
    uint8_t *dst; /* the matrix's place in the arena */
    int64_t r0, r1;
};

struct x8_job {
    const struct x8_slice *sl;
    int n;
    bool release;
    long page;
    atomic_int next;
};

static void *x8_pack_worker(void *arg) {
    struct x8_job *j = arg;
    for (;;) {
        const int i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= j->n) break;
        const struct x8_slice *s = &j->sl[i];
        const sl_wt_t *w = s->w;
        if (sl_x8_supported(w->type, w->n_in, w->n_out))
            sl_x8_pack(w->type, w->n_in, w->data, s->dst, s->r0, s->r1);
        else /* no x8 layout: the GGUF rows, copied */
            memcpy(s->dst + (size_t)s->r0 * w->row_bytes, (const uint8_t *)w->data + (size_t)s->r0 * w->row_bytes,
                   (size_t)(s->r1 - s->r0) * w->row_bytes);
        if (j->release) {
            /* the pages wholly inside this slice's rows (no other slice
             * reads them) */
            uintptr_t a = (uintptr_t)w->data + (size_t)s->r0 * w->row_bytes;
            uintptr_t b = (uintptr_t)w->data + (size_t)s->r1 * w->row_bytes;
            a = (a + (uintptr_t)j->page - 1) & ~((uintptr_t)j->page - 1);
            b &= ~((uintptr_t)j->page - 1);
            if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
        }
    }
    return NULL;
}

/* Arena bytes of w's x8 (or plain) copy (64-byte aligned after it) and
 * rows per packing slice (a multiple of 8). */
static size_t x8_span(const sl_wt_t *w) {
    const size_t b = sl_x8_supported(w->type, w->n_in, w->n_out) ? sl_x8_bytes(w->type, w->n_in, w->n_out)
                                                                 : w->row_bytes * (size_t)w->n_out;
    return (b + 63) & ~(size_t)63;
}
static int64_t x8_slice_rows(const sl_wt_t *w) {
    return SL_MAX(8, (int64_t)(X8_SLICE / w->row_bytes) & ~(int64_t)7);
}

/* Every matrix the forward pass streams, in the order it reads them (the
 * arena then streams in that order). */
static int x8_list(sl_model_t *m, sl_wt_t **out, int cap) {
    int n = 0;
    for (int l = 0; l < m->hp.n_layer; l++) {
        sl_layer_t *L = &m->layers[l];
        sl_wt_t *ws[] = {&L->wq_a,   &L->wq_b, &L->wkv_a,   &L->wqkvz, &L->wqkv, &L->wz,      &L->wba,
                         &L->wbeta,  &L->walpha, &L->wq,    &L->wk,    &L->wv,   &L->wo, &L->ssm_out,
                         &L->router, &L->gate, &L->up,      &L->down,  &L->pl_gate, &L->pl_proj};
        for (size_t i = 0; i < SL_ARRAY_LEN(ws) && n < cap; i++)
            if (ws[i]->data) out[n++] = ws[i];
        for (int h = 0; L->wk_b && h < m->hp.n_head && n + 2 <= cap; h++) { /* MLA's per-head matrices */
            out[n++] = &L->wk_b[h];
            out[n++] = &L->wv_b[h];
        }
        for (int e = 0; L->xgate && e < m->hp.n_expert && n + 3 <= cap; e++) {
            out[n++] = &L->xgate[e];
            out[n++] = &L->xup[e];
            out[n++] = &L->xdown[e];
        }
    }
    if (n < cap && m->output.data) out[n++] = &m->output; /* encoders have none */
    if (n < cap && m->pl_model_proj.data) out[n++] = &m->pl_model_proj;
    return n;
}

/* Matrices x8_list can name. */
static int64_t x8_list_cap(const sl_model_t *m) {
    return (int64_t)m->hp.n_layer * (20 + 3 * (int64_t)m->hp.n_expert + 2 * (int64_t)m->hp.n_head) + 2;
}

/* Repacks what the kernels can read as x8 into one arena; out of memory
 * keeps the file layout. */
static void pack_model_x8(sl_model_t *m) {
    if (x8_list_cap(m) > INT32_MAX / 2) return;
    const int cap = (int)x8_list_cap(m);
    sl_wt_t **ws = malloc(sizeof *ws * (size_t)cap);
    if (!ws) return;
    const int n = x8_list(m, ws, cap);
    size_t total = 0;
    int n_slices = 0;
    for (int i = 0; i < n; i++) {
        total += x8_span(ws[i]);
        n_slices += (int)((ws[i]->n_out + x8_slice_rows(ws[i]) - 1) / x8_slice_rows(ws[i]));
    }
    const size_t huge = (size_t)2 << 20;
    const size_t alloc = (total + huge - 1) & ~(huge - 1);
    uint8_t *arena = n ? aligned_alloc(huge, alloc) : NULL;
    struct x8_slice *sl = n ? malloc(sizeof *sl * (size_t)n_slices) : NULL;
    if (arena && sl) {
        madvise(arena, alloc, MADV_HUGEPAGE);
        uint8_t *at = arena;
        int k = 0;
        for (int i = 0; i < n; i++) {
            const int64_t rows = x8_slice_rows(ws[i]);
            for (int64_t r0 = 0; r0 < ws[i]->n_out; r0 += rows)
                sl[k++] = (struct x8_slice){ws[i], at, r0, SL_MIN(ws[i]->n_out, r0 + rows)};
            at += x8_span(ws[i]);
        }
        struct x8_job job = {sl, k, gguf_is_mapped(m->gf), sysconf(_SC_PAGESIZE), 0};
        job.release = job.release && job.page > 0;
        atomic_init(&job.next, 0);
        long nt = sysconf(_SC_NPROCESSORS_ONLN);
        nt = SL_MAX(1, SL_MIN(X8_THREADS, SL_MIN(nt, k)));
        pthread_t th[X8_THREADS];
        int started = 0;
        for (long t = 1; t < nt; t++)
            if (pthread_create(&th[started], NULL, x8_pack_worker, &job) == 0) started++;
        x8_pack_worker(&job); /* this thread too; it alone if none started */
        for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
        /* the matmuls read the copies from now on */
        at = arena;
        for (int i = 0; i < n; i++) {
            if (sl_x8_supported(ws[i]->type, ws[i]->n_in, ws[i]->n_out))
                ws[i]->x8 = at;
            else
                ws[i]->data = at;
            at += x8_span(ws[i]);
        }
        m->x8_arena = arena;
    } else {
        free(arena);
    }
    free(sl);
    free(ws);
}

static bool x8_enabled(void) {
    const char *e = getenv("SILICA_X8");
    return !e || strcmp(e, "0") != 0;
}

/* The fused attn_qkv [n_embd, q + k + v rows] of GLM and Phi-3 (and its optional bias),
 * split into the three matrices as row views and the bias into copies. */
static int get_fused_qkv(sl_model_t *m, int l, sl_layer_t *L, char *err, size_t errlen) {
    const sl_hparams_t *hp = &m->hp;
    const int64_t E = hp->n_embd, QD = (int64_t)hp->n_head * hp->head_dim, KD = (int64_t)hp->n_head_kv * hp->head_dim;
    char n[96];
    sl_wt_t w;
    float *b = NULL;
    snprintf(n, sizeof n, "blk.%d.attn_qkv.weight", l);
    if (get_matrix(m, n, E, QD + 2 * KD, "n_embd × (n_head + 2·n_head_kv)·head_dim", true, &w, err, errlen))
        return -1;
    L->wq = wt_rows(&w, 0, QD);
    L->wk = wt_rows(&w, QD, KD);
    L->wv = wt_rows(&w, QD + KD, KD);
    snprintf(n, sizeof n, "blk.%d.attn_qkv.bias", l);
    if (get_vector(m, n, QD + 2 * KD, "(n_head + 2·n_head_kv)·head_dim", false, &b, err, errlen)) return -1;
    if (!b) return 0;
    L->bq = malloc(sizeof(float) * (size_t)QD);
    L->bk = malloc(sizeof(float) * (size_t)KD);
    L->bv = malloc(sizeof(float) * (size_t)KD);
    if (!L->bq || !L->bk || !L->bv) {
        free(b);
        return sl_err(err, errlen, "out of memory loading '%s'", n);
    }
    memcpy(L->bq, b, sizeof(float) * (size_t)QD);
    memcpy(L->bk, b + QD, sizeof(float) * (size_t)KD);
    memcpy(L->bv, b + QD + KD, sizeof(float) * (size_t)KD);
    free(b);
    return 0;
}

/* GLM's and Phi-3's FFN: ffn_up [n_embd, 2·n_ff] holds the gate rows then the up rows
 * (silu of the first half times the second), ffn_down [n_ff, n_embd]. */
static int get_fused_gate_up(sl_model_t *m, int l, sl_layer_t *L, char *err, size_t errlen) {
    const int64_t E = m->hp.n_embd, F = m->hp.n_ff;
    char n[96];
    sl_wt_t w;
    snprintf(n, sizeof n, "blk.%d.ffn_up.weight", l);
    if (get_matrix(m, n, E, 2 * F, "n_embd × 2·n_ff (gate, then up)", true, &w, err, errlen)) return -1;
    L->gate = wt_rows(&w, 0, F);
    L->up = wt_rows(&w, F, F);
    snprintf(n, sizeof n, "blk.%d.ffn_down.weight", l);
    return get_matrix(m, n, F, E, "n_ff × n_embd", true, &L->down, err, errlen);
}

/* The classifier of RANK pooling: cls.weight + cls.bias (dense, then
 * tanh; an encoder's cross-encoder head has them, a decoder reranker's
 * need not), cls.output.weight and an optional cls.output.bias. */
static int get_cls_head(sl_model_t *m, bool dense, char *err, size_t errlen) {
    const sl_hparams_t *hp = &m->hp;
    const int64_t E = hp->n_embd;
    if (get_matrix(m, "cls.weight", E, E, "n_embd × n_embd (classifier dense)", dense, &m->cls, err, errlen) ||
        (m->cls.data && get_vector(m, "cls.bias", E, "n_embd", true, &m->cls_b, err, errlen)) ||
        get_matrix(m, "cls.output.weight", E, hp->n_cls_out, "n_embd × classifier outputs", true, &m->cls_out, err,
                   errlen) ||
        get_vector(m, "cls.output.bias", hp->n_cls_out, "classifier outputs", dense, &m->cls_out_b, err, errlen))
        return -1;
    return 0;
}

/* bert's tensors (token_embd already loaded): position and token-type
 * tables, the embedding LayerNorm, per layer Q/K/V/O with biases, the two
 * LayerNorms and the biased GELU FFN; RANK's classifier head. */
static int load_bert_tensors(sl_model_t *m, char *err, size_t errlen) {
    sl_hparams_t *hp = &m->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff;
    const gguf_tensor_t *tt = gguf_find_tensor(m->gf, "token_types.weight");
    if (tt) {
        if (tt->n_dims != 2 || tt->ne[1] < 1 || tt->ne[1] > 1024)
            return sl_err(err, errlen, "tensor 'token_types.weight' must be [n_embd, 1 .. 1024 types]");
        hp->n_token_types = (int)tt->ne[1];
        if (get_matrix(m, "token_types.weight", E, hp->n_token_types, "n_embd × token types", true, &m->type_embd,
                       err, errlen))
            return -1;
    }
    const bool nomic = hp->arch == SL_ARCH_NOMIC_BERT; /* RoPE instead of a position table */
    if (!nomic && gguf_find_tensor(m->gf, "blk.0.attn_qkv.weight"))
        return sl_err(err, errlen, "a fused attn_qkv in a bert file is not supported");
    if ((!nomic && get_matrix(m, "position_embd.weight", E, hp->n_ctx_train, "n_embd × context_length", true,
                              &m->pos_embd, err, errlen)) ||
        get_vector(m, "token_embd_norm.weight", E, "n_embd", true, &m->embd_norm, err, errlen) ||
        get_vector(m, "token_embd_norm.bias", E, "n_embd", true, &m->embd_norm_b, err, errlen))
        return -1;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return sl_err(err, errlen, "out of memory");
    for (int l = 0; l < hp->n_layer; l++) {
        sl_layer_t *L = &m->layers[l];
        char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", l, s), n)
        sl_wt_t qkv;
        if (nomic) { /* one [n_embd, 3 n_embd] matrix: Q, K, V rows */
            if (get_matrix(m, NAME("attn_qkv.weight"), E, 3 * E, "n_embd × 3·n_embd", true, &qkv, err, errlen))
                return -1;
            L->wq = wt_rows(&qkv, 0, E);
            L->wk = wt_rows(&qkv, E, E);
            L->wv = wt_rows(&qkv, 2 * E, E);
        }
        if ((!nomic && (get_matrix(m, NAME("attn_q.weight"), E, E, "n_embd × n_embd", true, &L->wq, err, errlen) ||
                        get_matrix(m, NAME("attn_k.weight"), E, E, "n_embd × n_embd", true, &L->wk, err, errlen) ||
                        get_matrix(m, NAME("attn_v.weight"), E, E, "n_embd × n_embd", true, &L->wv, err, errlen))) ||
            (nomic && get_matrix(m, NAME("ffn_gate.weight"), E, F, "n_embd × n_ff", true, &L->gate, err, errlen)) ||
            get_matrix(m, NAME("attn_output.weight"), E, E, "n_embd × n_embd", true, &L->wo, err, errlen) ||
            get_vector(m, NAME("attn_q.bias"), E, "n_embd", false, &L->bq, err, errlen) ||
            get_vector(m, NAME("attn_k.bias"), E, "n_embd", false, &L->bk, err, errlen) ||
            get_vector(m, NAME("attn_v.bias"), E, "n_embd", false, &L->bv, err, errlen) ||
            get_vector(m, NAME("attn_output.bias"), E, "n_embd", false, &L->bo, err, errlen) ||
            get_vector(m, NAME("attn_output_norm.weight"), E, "n_embd", true, &L->attn_norm, err, errlen) ||
            get_vector(m, NAME("attn_output_norm.bias"), E, "n_embd", true, &L->attn_norm_b, err, errlen) ||
            get_matrix(m, NAME("ffn_up.weight"), E, F, "n_embd × n_ff", true, &L->up, err, errlen) ||
            get_vector(m, NAME("ffn_up.bias"), F, "n_ff", false, &L->bup, err, errlen) ||
            get_matrix(m, NAME("ffn_down.weight"), F, E, "n_ff × n_embd", true, &L->down, err, errlen) ||
            get_vector(m, NAME("ffn_down.bias"), E, "n_embd", false, &L->bdown, err, errlen) ||
            get_vector(m, NAME("layer_output_norm.weight"), E, "n_embd", true, &L->ffn_norm, err, errlen) ||
            get_vector(m, NAME("layer_output_norm.bias"), E, "n_embd", true, &L->ffn_norm_b, err, errlen))
            return -1;
        if (!nomic && gguf_find_tensor(m->gf, NAME("ffn_gate.weight")))
            return sl_err(err, errlen, "tensor '%s': a gated bert FFN is not supported", n);
#undef NAME
    }
    if (hp->pooling == SL_POOLING_RANK && get_cls_head(m, true, err, errlen)) return -1;
    if (x8_enabled()) pack_model_x8(m); /* the layers' matrices; the tables keep their file rows */
    return 0;
}

/* deepseek2's attention tensors of layer l (MLA, see load_mla). */
static int get_mla_layer(sl_model_t *m, int l, sl_layer_t *L, char *err, size_t errlen) {
    const sl_hparams_t *hp = &m->hp;
    const int64_t E = hp->n_embd, H = hp->n_head, QK = hp->n_nope + hp->rope.n_rot, R = hp->n_lora_kv;
    const int64_t KD = hp->head_dim, QL = hp->n_lora_q, VH = hp->n_v_mla;
    char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", l, s), n)
    if (gguf_find_tensor(m->gf, NAME("attn_kv_b.weight")) && !gguf_find_tensor(m->gf, NAME("attn_k_b.weight")))
        return sl_err(err, errlen, "tensor '%s' of an older converter: attn_k_b / attn_v_b expected; convert the model "
                                   "again", n);
    if ((QL == 0 && get_matrix(m, NAME("attn_q.weight"), E, H * QK, "n_embd × n_head·(nope + rope)", true, &L->wq,
                               err, errlen)) ||
        (QL > 0 &&
         (get_matrix(m, NAME("attn_q_a.weight"), E, QL, "n_embd × q_lora_rank", true, &L->wq_a, err, errlen) ||
          get_vector(m, NAME("attn_q_a_norm.weight"), QL, "q_lora_rank", true, &L->q_a_norm, err, errlen) ||
          get_matrix(m, NAME("attn_q_b.weight"), QL, H * QK, "q_lora_rank × n_head·(nope + rope)", true, &L->wq_b,
                     err, errlen))) ||
        get_matrix(m, NAME("attn_kv_a_mqa.weight"), E, KD, "n_embd × kv_lora_rank + rope", true, &L->wkv_a, err,
                   errlen) ||
        get_vector(m, NAME("attn_kv_a_norm.weight"), R, "kv_lora_rank", true, &L->kv_a_norm, err, errlen) ||
        get_stack(m, NAME("attn_k_b.weight"), hp->n_nope, R, H, "nope × kv_lora_rank × n_head", &L->wk_b, err,
                  errlen) ||
        get_stack(m, NAME("attn_v_b.weight"), R, VH, H, "kv_lora_rank × v_head × n_head", &L->wv_b, err, errlen) ||
        get_matrix(m, NAME("attn_output.weight"), H * VH, E, "n_head·v_head × n_embd", true, &L->wo, err, errlen))
        return -1;
#undef NAME
    return 0;
}

/* One layer of qwen35 / qwen35moe as llama.cpp's converter writes it:
 * attn_norm and post_attention_norm (the FFN's input norm); a DeltaNet
 * layer's attn_qkv, attn_gate, ssm_conv1d ([ssm_conv, C]), ssm_dt.bias,
 * ssm_a, ssm_beta, ssm_alpha, ssm_norm, ssm_out, or an attention layer's
 * attn_q (2·n_head·head_dim rows: per head q then gate), attn_k, attn_v,
 * attn_output, attn_q_norm, attn_k_norm; then the dense FFN (qwen35) or
 * the router, experts and gated shared expert (qwen35moe). */
static int load_hybrid_layer(sl_model_t *m, int l, sl_layer_t *L, char *err, size_t errlen) {
    const sl_hparams_t *hp = &m->hp;
    const int64_t E = hp->n_embd, D = hp->head_dim, QD = (int64_t)hp->n_head * D, KD = (int64_t)hp->n_head_kv * D;
    const int64_t HV = hp->ssm_n_v, VD = HV * hp->ssm_head_v, C = 2 * (int64_t)hp->ssm_n_k * hp->ssm_head_k + VD;
    const int64_t F = hp->n_ff, NE = hp->n_expert, FE = hp->n_ff_exp, FS = hp->n_ff_shexp;
    char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", l, s), n)
    L->recurrent = layer_recurrent(hp, l);
    L->gated_q = !L->recurrent;
    if (get_vector(m, NAME("attn_norm.weight"), E, "n_embd", true, &L->attn_norm, err, errlen) ||
        get_vector(m, NAME("post_attention_norm.weight"), E, "n_embd", true, &L->ffn_norm, err, errlen))
        return -1;
    const bool next = hp->ssm_v_grouped;
    if (L->recurrent) {
        /* qwen3next files of older converters: one ssm_in for q, k, v and z */
        const bool legacy = next && !gguf_find_tensor(m->gf, NAME("attn_qkv.weight")) &&
                            gguf_find_tensor(m->gf, NAME("ssm_in.weight")) != NULL;
        if ((legacy && get_matrix(m, NAME("ssm_in.weight"), E, C + VD,
                                  "n_embd × (2·group_count·state_size + 2·inner_size)", true, &L->wqkvz, err, errlen)) ||
            (!legacy && (get_matrix(m, NAME("attn_qkv.weight"), E, C,
                                    "n_embd × (2·group_count·state_size + inner_size)", true, &L->wqkv, err, errlen) ||
                         get_matrix(m, NAME("attn_gate.weight"), E, VD, "n_embd × inner_size", true, &L->wz, err,
                                    errlen))) ||
            (next && get_matrix(m, NAME("ssm_ba.weight"), E, 2 * HV, "n_embd × 2·time_step_rank", true, &L->wba, err,
                                errlen)) ||
            (!next && (get_matrix(m, NAME("ssm_beta.weight"), E, HV, "n_embd × time_step_rank", true, &L->wbeta, err,
                                  errlen) ||
                       get_matrix(m, NAME("ssm_alpha.weight"), E, HV, "n_embd × time_step_rank", true, &L->walpha,
                                  err, errlen))) ||
            get_matrix(m, NAME("ssm_out.weight"), VD, E, "inner_size × n_embd", true, &L->ssm_out, err, errlen) ||
            get_vector(m, NAME("ssm_dt.bias"), HV, "time_step_rank", true, &L->dt_bias, err, errlen) ||
            get_vector(m, NAME("ssm_a"), HV, "time_step_rank", true, &L->ssm_a, err, errlen) ||
            get_vector(m, NAME("ssm_norm.weight"), hp->ssm_head_v, "inner_size / time_step_rank", true, &L->ssm_norm,
                       err, errlen) ||
            get_conv1d(m, NAME("ssm_conv1d.weight"), C, L, err, errlen))
            return -1;
    } else if (gguf_find_tensor(m->gf, NAME("attn_qkv.weight"))) { /* q (and gate), k, v fused: row views */
        sl_wt_t f;
        if (get_matrix(m, n, E, 2 * QD + 2 * KD, "n_embd × (2·n_head + 2·n_head_kv)·head_dim", true, &f, err, errlen))
            return -1;
        L->wq = wt_rows(&f, 0, 2 * QD);
        L->wk = wt_rows(&f, 2 * QD, KD);
        L->wv = wt_rows(&f, 2 * QD + KD, KD);
        if (get_matrix(m, NAME("attn_output.weight"), QD, E, "n_head·head_dim × n_embd", true, &L->wo, err, errlen) ||
            get_vector(m, NAME("attn_q_norm.weight"), D, "head_dim", true, &L->q_norm, err, errlen) ||
            get_vector(m, NAME("attn_k_norm.weight"), D, "head_dim", true, &L->k_norm, err, errlen))
            return -1;
    } else if (get_matrix(m, NAME("attn_q.weight"), E, 2 * QD, "n_embd × 2·n_head·head_dim (q and gate)", true,
                          &L->wq, err, errlen) ||
               get_matrix(m, NAME("attn_k.weight"), E, KD, "n_embd × n_head_kv·head_dim", true, &L->wk, err, errlen) ||
               get_matrix(m, NAME("attn_v.weight"), E, KD, "n_embd × n_head_kv·head_dim", true, &L->wv, err, errlen) ||
               get_matrix(m, NAME("attn_output.weight"), QD, E, "n_head·head_dim × n_embd", true, &L->wo, err,
                          errlen) ||
               get_vector(m, NAME("attn_q_norm.weight"), D, "head_dim", true, &L->q_norm, err, errlen) ||
               get_vector(m, NAME("attn_k_norm.weight"), D, "head_dim", true, &L->k_norm, err, errlen)) {
        return -1;
    }
    if (NE == 0)
        return get_matrix(m, NAME("ffn_gate.weight"), E, F, "n_embd × n_ff", true, &L->gate, err, errlen) ||
                       get_matrix(m, NAME("ffn_up.weight"), E, F, "n_embd × n_ff", true, &L->up, err, errlen) ||
                       get_matrix(m, NAME("ffn_down.weight"), F, E, "n_ff × n_embd", true, &L->down, err, errlen)
                   ? -1
                   : 0;
    if (get_matrix(m, NAME("ffn_gate_inp.weight"), E, NE, "n_embd × n_expert", true, &L->router, err, errlen) ||
        get_stack(m, NAME("ffn_gate_exps.weight"), E, FE, NE, "n_embd × n_ff_exp × n_expert", &L->xgate, err,
                  errlen) ||
        get_stack(m, NAME("ffn_up_exps.weight"), E, FE, NE, "n_embd × n_ff_exp × n_expert", &L->xup, err, errlen) ||
        get_stack(m, NAME("ffn_down_exps.weight"), FE, E, NE, "n_ff_exp × n_embd × n_expert", &L->xdown, err,
                  errlen) ||
        get_vector(m, NAME("ffn_gate_inp_shexp.weight"), E, "n_embd", true, &L->shexp_gate, err, errlen) ||
        get_matrix(m, NAME("ffn_gate_shexp.weight"), E, FS, "n_embd × n_ff_shexp", true, &L->gate, err, errlen) ||
        get_matrix(m, NAME("ffn_up_shexp.weight"), E, FS, "n_embd × n_ff_shexp", true, &L->up, err, errlen) ||
        get_matrix(m, NAME("ffn_down_shexp.weight"), FS, E, "n_ff_shexp × n_embd", true, &L->down, err, errlen))
        return -1;
#undef NAME
    return 0;
}

/* A Mamba-2 layer's tensors (llama.cpp's names and shapes): ssm_in [E,
 * d_inner + C + heads] (z, then xBC, then dt), ssm_conv1d.weight [d_conv,
 * C] and .bias [C], ssm_dt.bias, ssm_a (= -exp(A_log)) and ssm_d, each [1,
 * heads] (a vector of heads), ssm_norm.weight [d_inner / n_group, n_group]
 * and ssm_out [d_inner, E]. */
static int load_mamba2_mixer(sl_model_t *m, int l, sl_layer_t *L, char *err, size_t errlen) {
    const sl_hparams_t *hp = &m->hp;
    const int64_t E = hp->n_embd, HV = hp->ssm_n_v, VD = HV * hp->ssm_head_v;
    const int64_t C = 2 * (int64_t)hp->ssm_n_k * hp->ssm_head_k + VD;
    char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", l, s), n)
    if (get_matrix(m, NAME("ssm_in.weight"), E, VD + C + HV, "n_embd × (2·inner_size + 2·group_count·state_size + heads)",
                   true, &L->ssm_in, err, errlen) ||
        get_conv1d(m, NAME("ssm_conv1d.weight"), C, L, err, errlen) ||
        get_vector(m, NAME("ssm_conv1d.bias"), C, "conv channels", hp->arch == SL_ARCH_GRANITEHYBRID, &L->conv_b, err,
                   errlen) ||
        get_vector(m, NAME("ssm_dt.bias"), HV, "time_step_rank", true, &L->dt_bias, err, errlen) ||
        get_vector_stack(m, NAME("ssm_a"), 1, HV, "1 × time_step_rank", &L->ssm_a, err, errlen) ||
        get_vector_stack(m, NAME("ssm_d"), 1, HV, "1 × time_step_rank", &L->ssm_d, err, errlen) ||
        get_vector_stack(m, NAME("ssm_norm.weight"), VD / hp->ssm_n_k, hp->ssm_n_k,
                         "inner_size / group_count × group_count", &L->ssm_norm, err, errlen) ||
        get_matrix(m, NAME("ssm_out.weight"), VD, E, "inner_size × n_embd", true, &L->ssm_out, err, errlen))
        return -1;
#undef NAME
    return 0;
}

/* A granitehybrid layer: attn_norm, then a Mamba-2 mixer (mamba_rec) or
 * attention (attn_q/k/v/output, optional biases; the q/k rows in llama's
 * permuted order), then ffn_norm and a dense SwiGLU FFN (Granite 4.0 H
 * Micro) or softmax-routed experts plus an ungated shared expert
 * (H Tiny / Small). */
static int load_mamba2_layer(sl_model_t *m, int l, sl_layer_t *L, char *err, size_t errlen) {
    const sl_hparams_t *hp = &m->hp;
    const int64_t E = hp->n_embd, QD = (int64_t)hp->n_head * hp->head_dim, KD = (int64_t)hp->n_head_kv * hp->head_dim;
    const int64_t F = hp->n_ff, NE = hp->n_expert, FE = hp->n_ff_exp, FS = hp->n_ff_shexp;
    char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", l, s), n)
    L->recurrent = m->mamba_rec[l];
    const bool nemotron = is_nemotron(hp);
    if (get_vector(m, NAME("attn_norm.weight"), E, "n_embd", true, &L->attn_norm, err, errlen) ||
        (!nemotron && get_vector(m, NAME("ffn_norm.weight"), E, "n_embd", true, &L->ffn_norm, err, errlen)))
        return -1;
    if (nemotron && m->layer_ff[l] && NE) { /* nemotron_h_moe: a MoE layer */
        L->ffn_only = true;
        if (gguf_find_tensor(m->gf, NAME("ffn_latent_down.weight")))
            return sl_err(err, errlen, "%s: latent MoE projections (ffn_latent_down / up) are not supported",
                          hp->arch_name);
        return get_matrix(m, NAME("ffn_gate_inp.weight"), E, NE, "n_embd × n_expert", true, &L->router, err,
                          errlen) ||
                       get_vector(m, NAME("exp_probs_b.bias"), NE, "n_expert", true, &L->expert_bias, err, errlen) ||
                       get_stack(m, NAME("ffn_up_exps.weight"), E, FE, NE, "n_embd × n_ff_exp × n_expert", &L->xup,
                                 err, errlen) ||
                       get_stack(m, NAME("ffn_down_exps.weight"), FE, E, NE, "n_ff_exp × n_embd × n_expert",
                                 &L->xdown, err, errlen) ||
                       get_matrix(m, NAME("ffn_up_shexp.weight"), E, FS, "n_embd × n_ff_shexp", true, &L->up, err,
                                  errlen) ||
                       get_matrix(m, NAME("ffn_down_shexp.weight"), FS, E, "n_ff_shexp × n_embd", true, &L->down,
                                  err, errlen)
                   ? -1
                   : 0;
    }
    if (nemotron && m->layer_ff[l]) { /* an MLP layer: down(relu(up x)²), optional biases */
        const int64_t FL = m->layer_ff[l];
        L->ffn_only = true;
        return get_matrix(m, NAME("ffn_up.weight"), E, FL, "n_embd × feed_forward_length[l]", true, &L->up, err,
                          errlen) ||
                       get_matrix(m, NAME("ffn_down.weight"), FL, E, "feed_forward_length[l] × n_embd", true, &L->down,
                                  err, errlen) ||
                       get_vector(m, NAME("ffn_up.bias"), FL, "feed_forward_length[l]", false, &L->bup, err, errlen) ||
                       get_vector(m, NAME("ffn_down.bias"), E, "n_embd", false, &L->bdown, err, errlen)
                   ? -1
                   : 0;
    }
    L->no_ffn = nemotron; /* nemotron_h: a mixer layer has no FFN of its own */
    if (L->recurrent) {
        if (load_mamba2_mixer(m, l, L, err, errlen)) return -1;
    } else if (get_matrix(m, NAME("attn_q.weight"), E, QD, "n_embd × n_head·head_dim", true, &L->wq, err, errlen) ||
               get_matrix(m, NAME("attn_k.weight"), E, KD, "n_embd × n_head_kv·head_dim", true, &L->wk, err, errlen) ||
               get_matrix(m, NAME("attn_v.weight"), E, KD, "n_embd × n_head_kv·head_dim", true, &L->wv, err, errlen) ||
               get_matrix(m, NAME("attn_output.weight"), QD, E, "n_head·head_dim × n_embd", true, &L->wo, err,
                          errlen) ||
               get_vector(m, NAME("attn_q.bias"), QD, "n_head·head_dim", false, &L->bq, err, errlen) ||
               get_vector(m, NAME("attn_k.bias"), KD, "n_head_kv·head_dim", false, &L->bk, err, errlen) ||
               get_vector(m, NAME("attn_v.bias"), KD, "n_head_kv·head_dim", false, &L->bv, err, errlen) ||
               get_vector(m, NAME("attn_output.bias"), E, "n_embd", false, &L->bo, err, errlen)) {
        return -1;
    }
    if (nemotron) return 0;
    if (NE == 0)
        return get_matrix(m, NAME("ffn_gate.weight"), E, F, "n_embd × n_ff", true, &L->gate, err, errlen) ||
                       get_matrix(m, NAME("ffn_up.weight"), E, F, "n_embd × n_ff", true, &L->up, err, errlen) ||
                       get_matrix(m, NAME("ffn_down.weight"), F, E, "n_ff × n_embd", true, &L->down, err, errlen)
                   ? -1
                   : 0;
    if (get_matrix(m, NAME("ffn_gate_inp.weight"), E, NE, "n_embd × n_expert", true, &L->router, err, errlen) ||
        get_stack(m, NAME("ffn_gate_exps.weight"), E, FE, NE, "n_embd × n_ff_exp × n_expert", &L->xgate, err,
                  errlen) ||
        get_stack(m, NAME("ffn_up_exps.weight"), E, FE, NE, "n_embd × n_ff_exp × n_expert", &L->xup, err, errlen) ||
        get_stack(m, NAME("ffn_down_exps.weight"), FE, E, NE, "n_ff_exp × n_embd × n_expert", &L->xdown, err,
                  errlen))
        return -1;
    if (FS && (get_matrix(m, NAME("ffn_gate_shexp.weight"), E, FS, "n_embd × n_ff_shexp", true, &L->gate, err,
                          errlen) ||
               get_matrix(m, NAME("ffn_up_shexp.weight"), E, FS, "n_embd × n_ff_shexp", true, &L->up, err, errlen) ||
               get_matrix(m, NAME("ffn_down_shexp.weight"), FS, E, "n_ff_shexp × n_embd", true, &L->down, err,
                          errlen)))
        return -1;
#undef NAME
    return 0;
}

/* One gemma4 layer, as llama.cpp loads it: attn_norm, attn_q, attn_k and
 * attn_k_norm (only on the layers with a KV), attn_v optional (absent:
 * V is K's projection, the 26B / 31B global layers' attention_k_eq_v),
 * attn_output, attn_q_norm, post_attention_norm, ffn_norm, ffn_gate /
 * ffn_up / ffn_down of the layer's own width, post_ffw_norm, an optional
 * layer_output_scale ([1]), and with per-layer embeddings inp_gate, proj
 * and post_norm. */
static int load_gemma4_layer(sl_model_t *m, int l, sl_layer_t *L, char *err, size_t errlen) {
    const sl_hparams_t *hp = &m->hp;
    const int64_t E = hp->n_embd, D = L->head_dim, QD = (int64_t)L->n_head * D, KD = (int64_t)L->n_head_kv * D,
                  F = L->n_ff, P = hp->n_embd_pl;
    char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", l, s), n)
    if (get_vector(m, NAME("attn_norm.weight"), E, "n_embd", true, &L->attn_norm, err, errlen) ||
        get_matrix(m, NAME("attn_q.weight"), E, QD, "n_embd × n_head·head_dim", true, &L->wq, err, errlen) ||
        get_matrix(m, NAME("attn_k.weight"), E, KD, "n_embd × n_head_kv·head_dim", L->has_kv, &L->wk, err, errlen) ||
        get_matrix(m, NAME("attn_v.weight"), E, KD, "n_embd × n_head_kv·head_dim", false, &L->wv, err, errlen) ||
        get_matrix(m, NAME("attn_output.weight"), QD, E, "n_head·head_dim × n_embd", true, &L->wo, err, errlen) ||
        get_vector(m, NAME("attn_q_norm.weight"), D, "head_dim", true, &L->q_norm, err, errlen) ||
        get_vector(m, NAME("attn_k_norm.weight"), D, "head_dim", L->has_kv, &L->k_norm, err, errlen) ||
        get_vector(m, NAME("post_attention_norm.weight"), E, "n_embd", true, &L->post_attn_norm, err, errlen) ||
        get_vector(m, NAME("ffn_norm.weight"), E, "n_embd", true, &L->ffn_norm, err, errlen) ||
        get_matrix(m, NAME("ffn_gate.weight"), E, F, "n_embd × n_ff", true, &L->gate, err, errlen) ||
        get_matrix(m, NAME("ffn_up.weight"), E, F, "n_embd × n_ff", true, &L->up, err, errlen) ||
        get_matrix(m, NAME("ffn_down.weight"), F, E, "n_ff × n_embd", true, &L->down, err, errlen) ||
        get_vector(m, NAME("post_ffw_norm.weight"), E, "n_embd", true, &L->post_ffn_norm, err, errlen) ||
        (P && (get_matrix(m, NAME("inp_gate.weight"), E, P, "n_embd × n_embd_per_layer", true, &L->pl_gate, err,
                          errlen) ||
               get_matrix(m, NAME("proj.weight"), P, E, "n_embd_per_layer × n_embd", true, &L->pl_proj, err,
                          errlen) ||
               get_vector(m, NAME("post_norm.weight"), E, "n_embd", true, &L->pl_post_norm, err, errlen))))
        return -1;
    if (!L->has_kv && (L->wk.data || L->wv.data))
        return sl_err(err, errlen, "blk.%d has attn_k / attn_v but is one of the shared-KV layers", l);
    if (gguf_find_tensor(m->gf, NAME("ffn_gate_inp.weight")) && !hp->n_expert)
        return sl_err(err, errlen, "blk.%d has experts (ffn_gate_inp) but %s.expert_count is absent", l,
                      hp->arch_name);
    const int64_t NE = hp->n_expert, FE = hp->n_ff_exp;
    if (NE) { /* the 26B-A4B: experts beside the dense MLP in every layer */
        const bool fused = gguf_find_tensor(m->gf, NAME("ffn_gate_up_exps.weight")) != NULL;
        sl_wt_t *gu = NULL;
        if (get_matrix(m, NAME("ffn_gate_inp.weight"), E, NE, "n_embd × n_expert", true, &L->router, err, errlen) ||
            get_vector(m, NAME("ffn_gate_inp.scale"), E, "n_embd", true, &L->router_s, err, errlen) ||
            get_vector(m, NAME("pre_ffw_norm_2.weight"), E, "n_embd", true, &L->pre_norm_2, err, errlen) ||
            get_vector(m, NAME("post_ffw_norm_1.weight"), E, "n_embd", true, &L->post_norm_1, err, errlen) ||
            get_vector(m, NAME("post_ffw_norm_2.weight"), E, "n_embd", true, &L->post_norm_2, err, errlen) ||
            (fused && get_stack(m, NAME("ffn_gate_up_exps.weight"), E, 2 * FE, NE,
                                "n_embd × 2·n_ff_exp × n_expert", &gu, err, errlen)))
            return -1;
        if (gu) { /* expert e's rows: its gate, then its up */
            L->xgate = calloc((size_t)NE, sizeof *L->xgate);
            L->xup = calloc((size_t)NE, sizeof *L->xup);
            for (int64_t e = 0; L->xgate && L->xup && e < NE; e++) {
                L->xgate[e] = wt_rows(&gu[e], 0, FE);
                L->xup[e] = wt_rows(&gu[e], FE, FE);
            }
            free(gu);
            if (!L->xgate || !L->xup) return sl_err(err, errlen, "out of memory");
        }
        if ((!fused && (get_stack(m, NAME("ffn_gate_exps.weight"), E, FE, NE, "n_embd × n_ff_exp × n_expert",
                                  &L->xgate, err, errlen) ||
                        get_stack(m, NAME("ffn_up_exps.weight"), E, FE, NE, "n_embd × n_ff_exp × n_expert",
                                  &L->xup, err, errlen))) ||
            get_stack(m, NAME("ffn_down_exps.weight"), FE, E, NE, "n_ff_exp × n_embd × n_expert", &L->xdown, err,
                      errlen) ||
            get_vector(m, NAME("ffn_down_exps.scale"), NE, "n_expert", false, &L->xdown_s, err, errlen))
            return -1;
    }
    float *sc = NULL;
    if (get_vector(m, NAME("layer_output_scale.weight"), 1, "1", false, &sc, err, errlen)) return -1;
#undef NAME
    if (sc) {
        L->out_scale = sc[0];
        free(sc);
    }
    return 0;
}

/* gemma4's model-wide tensors: rope_freqs (head_dim / 2 divisors, for the
 * global layers only; required when there is one) and with per-layer
 * embeddings per_layer_token_embd ([n_layer·n_embd_pl, n_vocab]),
 * per_layer_model_proj ([n_embd, n_layer·n_embd_pl]), per_layer_proj_norm. */
static int load_gemma4_globals(sl_model_t *m, char *err, size_t errlen) {
    sl_hparams_t *hp = &m->hp;
    bool global = false;
    for (int l = 0; l < hp->n_layer; l++) global = global || !hp->swa_layers[l];
    if (get_vector(m, "rope_freqs.weight", hp->head_dim / 2, "the global layers' head_dim / 2", global,
                   &m->rope_freqs, err, errlen))
        return -1;
    hp->rope.freq_factors = m->rope_freqs;
    const int64_t P = hp->n_embd_pl, LP = P * hp->n_layer;
    if (!P) {
        if (gguf_find_tensor(m->gf, "per_layer_token_embd.weight"))
            return sl_err(err, errlen, "per_layer_token_embd is present but embedding_length_per_layer_input is 0");
        return 0;
    }
    return get_matrix(m, "per_layer_token_embd.weight", LP, hp->n_vocab, "n_layer·n_embd_per_layer × n_vocab", true,
                      &m->pl_tok, err, errlen) ||
                   get_matrix(m, "per_layer_model_proj.weight", hp->n_embd, LP, "n_embd × n_layer·n_embd_per_layer",
                              true, &m->pl_model_proj, err, errlen) ||
                   get_vector(m, "per_layer_proj_norm.weight", P, "n_embd_per_layer", true, &m->pl_proj_norm, err,
                              errlen)
               ? -1
               : 0;
}

static int load_tensors(sl_model_t *m, char *err, size_t errlen) {
    sl_hparams_t *hp = &m->hp;
    const int64_t E = hp->n_embd, D = hp->head_dim, H = hp->n_head, K = hp->n_head_kv, F = hp->n_ff;
    const int64_t QD = H * D, KD = K * D;

    const gguf_tensor_t *te = gguf_find_tensor(m->gf, "token_embd.weight");
    if (!te) return sl_err(err, errlen, "missing tensor 'token_embd.weight' (token embeddings)");
    if (te->n_dims < 2 || te->ne[1] <= 0 || te->ne[1] > INT32_MAX)
        return sl_err(err, errlen, "tensor 'token_embd.weight' must be 2-D [n_embd, n_vocab]");
    hp->n_vocab = (int)te->ne[1];
    {
        uint32_t vs;
        if (key_u32(m->gf, hp->arch_name, "vocab_size", false, (uint32_t)hp->n_vocab, &vs, err, errlen))
            return -1;
        if ((int64_t)vs != hp->n_vocab)
            return sl_err(err, errlen, "%s.vocab_size = %u but token_embd.weight has %d rows",
                          hp->arch_name, vs, hp->n_vocab);
    }
    if (get_matrix(m, "token_embd.weight", E, hp->n_vocab, "n_embd × n_vocab", true, &m->tok_embd, err,
                   errlen))
        return -1;
    if (hp->encoder) return load_bert_tensors(m, err, errlen);
    if (get_vector(m, "output_norm.weight", E, "n_embd", true, &m->output_norm, err, errlen)) return -1;
    if (get_matrix(m, "output.weight", E, hp->n_vocab, "n_embd × n_vocab", false, &m->output, err,
                   errlen))
        return -1;
    hp->tied_output = m->output.data == NULL;
    if (hp->tied_output) m->output = m->tok_embd;

    if (hp->arch == SL_ARCH_GEMMA4) {
        if (load_gemma4_globals(m, err, errlen)) return -1;
        for (int l = 0; l < hp->n_layer; l++)
            if (load_gemma4_layer(m, l, &m->layers[l], err, errlen)) return -1;
        if (x8_enabled()) pack_model_x8(m);
        return 0;
    }
    if (get_vector(m, "rope_freqs.weight", hp->rope.n_rot / 2, "rope dimension_count / 2", false,
                   &m->rope_freqs, err, errlen))
        return -1;
    hp->rope.freq_factors = m->rope_freqs;
    if (get_vector(m, "rope_factors_long.weight", hp->rope.n_rot / 2, "rope dimension_count / 2", false,
                   &m->rope_long, err, errlen) ||
        get_vector(m, "rope_factors_short.weight", hp->rope.n_rot / 2, "rope dimension_count / 2", false,
                   &m->rope_short, err, errlen))
        return -1;
    if ((m->rope_long == NULL) != (m->rope_short == NULL))
        return sl_err(err, errlen, "rope_factors_long and rope_factors_short must come together");
    if (m->rope_short) {
        if (m->rope_freqs) return sl_err(err, errlen, "rope_freqs and LongRoPE factors cannot both be present");
        hp->rope.freq_factors = m->rope_short;
    }
    if (m->rope_mask) {
        if (hp->rope.freq_factors) return sl_err(err, errlen, "rope_freqs cannot come with rope.dimension_sections");
        hp->rope.freq_factors = m->rope_mask;
    }

    if ((hp->arch == SL_ARCH_GRANITE || hp->arch == SL_ARCH_GRANITEMOE) &&
        (gguf_find_tensor(m->gf, "blk.0.ffn_up.bias") || gguf_find_tensor(m->gf, "blk.0.ffn_down.bias")))
        return sl_err(err, errlen, "FFN biases (granite mlp_bias) are not supported");
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return sl_err(err, errlen, "out of memory");
    const bool olmo2 = hp->arch == SL_ARCH_OLMO2;
    const bool gemma3 = hp->arch == SL_ARCH_GEMMA3, post = gemma3 || hp->arch == SL_ARCH_GEMMA2 || olmo2;
    const bool qwen2 = hp->arch == SL_ARCH_QWEN2,
               qwen3 = hp->arch == SL_ARCH_QWEN3 || hp->arch == SL_ARCH_QWEN3MOE || gemma3;
    const bool moe = hp->n_expert > 0;
    const bool glm4 = hp->arch == SL_ARCH_GLM4, glm = glm4 || hp->arch == SL_ARCH_CHATGLM;
    const bool phi3 = hp->arch == SL_ARCH_PHI3, glm4moe = hp->arch == SL_ARCH_GLM4MOE, mla = hp->mla;
    const bool oss =
        hp->arch == SL_ARCH_GPT_OSS; /* biases everywhere, sinks; FFN norm named as glm4moe's */
    const int64_t NE = hp->n_expert, FE = hp->n_ff_exp, FS = hp->n_ff_shexp;
    for (int l = 0, n_rec = 0, n_kv = 0; l < hp->n_layer; l++) {
        sl_layer_t *L = &m->layers[l];
        /* the attention layers before l (KV layer), the recurrent ones (state part) */
        L->kv_l = n_kv;
        L->rec_l = n_rec;
        if (hp->mamba2 || hp->full_attn_interval) {
            if (hp->mamba2 ? load_mamba2_layer(m, l, L, err, errlen) : load_hybrid_layer(m, l, L, err, errlen))
                return -1;
            n_rec += L->recurrent;
            n_kv += !L->recurrent && !L->ffn_only;
            continue;
        }
        n_kv++;
        char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", l, s), n)
        const bool fused = (glm || phi3) && gguf_find_tensor(m->gf, NAME("attn_qkv.weight")) != NULL;
        const bool lmoe = moe && l >= hp->n_dense_lead; /* glm4moe's first layers are dense */
        /* glm4moe's and gpt-oss's FFN input norm is named post_attention_norm (HF's
         * post_attention_layernorm) */
        if ((!olmo2 && get_vector(m, NAME("attn_norm.weight"), E, "n_embd", true, &L->attn_norm,
                                  err, errlen)) ||
            (!olmo2 &&
             get_vector(m, NAME(glm4moe || oss ? "post_attention_norm.weight" : "ffn_norm.weight"),
                        E, "n_embd", true, &L->ffn_norm, err, errlen)) ||
            (olmo2 && (get_vector(m, NAME("attn_q_norm.weight"), QD, "n_head·head_dim", true,
                                  &L->q_norm, err, errlen) ||
                       get_vector(m, NAME("attn_k_norm.weight"), KD, "n_head_kv·head_dim", true,
                                  &L->k_norm, err, errlen))) ||
            (mla && get_mla_layer(m, l, L, err, errlen)) ||
            (fused && get_fused_qkv(m, l, L, err, errlen)) ||
            (!fused && !mla &&
             (get_matrix(m, NAME("attn_q.weight"), E, QD, "n_embd × n_head·head_dim", true, &L->wq,
                         err, errlen) ||
              get_matrix(m, NAME("attn_k.weight"), E, KD, "n_embd × n_head_kv·head_dim", true,
                         &L->wk, err, errlen) ||
              get_matrix(m, NAME("attn_v.weight"), E, KD, "n_embd × n_head_kv·head_dim", true,
                         &L->wv, err, errlen) ||
              get_vector(m, NAME("attn_q.bias"), QD, "n_head·head_dim", qwen2 || oss, &L->bq, err,
                         errlen) ||
              get_vector(m, NAME("attn_k.bias"), KD, "n_head_kv·head_dim", qwen2 || oss, &L->bk,
                         err, errlen) ||
              get_vector(m, NAME("attn_v.bias"), KD, "n_head_kv·head_dim", qwen2 || oss, &L->bv,
                         err, errlen))) ||
            (oss &&
             get_vector(m, NAME("attn_sinks.weight"), H, "n_head", true, &L->sinks, err, errlen)) ||
            (!mla && get_matrix(m, NAME("attn_output.weight"), QD, E, "n_head·head_dim × n_embd",
                                true, &L->wo, err, errlen)) ||
            ((glm || phi3) && get_fused_gate_up(m, l, L, err, errlen)) ||
            (!lmoe && !glm && !phi3 &&
             (get_matrix(m, NAME("ffn_gate.weight"), E, F, "n_embd × n_ff", true, &L->gate, err,
                         errlen) ||
              get_matrix(m, NAME("ffn_up.weight"), E, F, "n_embd × n_ff", true, &L->up, err,
                         errlen) ||
              get_matrix(m, NAME("ffn_down.weight"), F, E, "n_ff × n_embd", true, &L->down, err,
                         errlen))) ||
            /* the selection bias of sigmoid routing (glm4moe, DeepSeek-V3) */
            (lmoe && (glm4moe || (mla && hp->expert_sigmoid)) &&
             get_vector(m, NAME("exp_probs_b.bias"), NE, "n_expert", true, &L->expert_bias, err,
                        errlen)) ||
            (lmoe && (get_matrix(m, NAME("ffn_gate_inp.weight"), E, NE, "n_embd × n_expert", true,
                                 &L->router, err, errlen) ||
                      get_stack(m, NAME("ffn_gate_exps.weight"), E, FE, NE,
                                "n_embd × n_ff_exp × n_expert", &L->xgate, err, errlen) ||
                      get_stack(m, NAME("ffn_up_exps.weight"), E, FE, NE,
                                "n_embd × n_ff_exp × n_expert", &L->xup, err, errlen) ||
                      get_stack(m, NAME("ffn_down_exps.weight"), FE, E, NE,
                                "n_ff_exp × n_embd × n_expert", &L->xdown, err, errlen))) ||
            (lmoe && oss &&
             (get_vector(m, NAME("ffn_gate_inp.bias"), NE, "n_expert", true, &L->router_b, err,
                         errlen) ||
              get_vector_stack(m, NAME("ffn_gate_exps.bias"), FE, NE, "n_ff_exp × n_expert",
                               &L->xgate_b, err, errlen) ||
              get_vector_stack(m, NAME("ffn_up_exps.bias"), FE, NE, "n_ff_exp × n_expert",
                               &L->xup_b, err, errlen) ||
              get_vector_stack(m, NAME("ffn_down_exps.bias"), E, NE, "n_embd × n_expert",
                               &L->xdown_b, err, errlen))) ||
            (FS && lmoe && hp->shexp_gated &&
             get_vector(m, NAME("ffn_gate_inp_shexp.weight"), E, "n_embd", true, &L->shexp_gate,
                        err, errlen)) ||
            (FS && lmoe &&
             (get_matrix(m, NAME("ffn_gate_shexp.weight"), E, FS, "n_embd × n_ff_shexp", true,
                         &L->gate, err, errlen) ||
              get_matrix(m, NAME("ffn_up_shexp.weight"), E, FS, "n_embd × n_ff_shexp", true, &L->up,
                         err, errlen) ||
              get_matrix(m, NAME("ffn_down_shexp.weight"), FS, E, "n_ff_shexp × n_embd", true,
                         &L->down, err, errlen))) ||
            get_vector(m, NAME("attn_output.bias"), E, "n_embd", oss, &L->bo, err, errlen) ||
            (!olmo2 && (get_vector(m, NAME("attn_q_norm.weight"), D, "head_dim", qwen3, &L->q_norm,
                                   err, errlen) ||
                        get_vector(m, NAME("attn_k_norm.weight"), D, "head_dim", qwen3, &L->k_norm,
                                   err, errlen))) ||
            (!glm4moe && !oss &&
             get_vector(m, NAME("post_attention_norm.weight"), E, "n_embd", glm4 || post,
                        &L->post_attn_norm, err, errlen)) ||
            get_vector(m, NAME("post_ffw_norm.weight"), E, "n_embd", glm4 || post,
                       &L->post_ffn_norm, err, errlen))
            return -1;
#undef NAME
        if ((L->q_norm == NULL) != (L->k_norm == NULL))
            return sl_err(err, errlen, "blk.%d: attn_q_norm and attn_k_norm must come together", l);
    }
    if (hp->pooling == SL_POOLING_RANK && get_cls_head(m, false, err, errlen)) return -1; /* a decoder reranker */
    if (x8_enabled()) pack_model_x8(m); /* tok_embd keeps its rows for lookups */
    return 0;
}

static void scratch_free(struct sl_scratch *s) {
    free(s->x);
    free(s->moe_e);
    free(s->scores);
    free(s->tok_pos);
    free(s->tok_blocks);
    free(s->out_logits);
    memset(s, 0, sizeof *s);
}

void model_free(sl_model_t *m) {
    if (!m) return;
    if (m->layers) {
        for (int l = 0; l < m->hp.n_layer; l++) {
            sl_layer_t *L = &m->layers[l];
            free(L->attn_norm);
            free(L->ffn_norm);
            free(L->q_norm);
            free(L->k_norm);
            free(L->bq);
            free(L->bk);
            free(L->bv);
            free(L->bo);
            free(L->shexp_gate);
            free(L->expert_bias);
            free(L->sinks);
            free(L->router_b);
            free(L->xgate_b);
            free(L->xup_b);
            free(L->xdown_b);
            free(L->post_attn_norm);
            free(L->post_ffn_norm);
            free(L->attn_norm_b);
            free(L->ffn_norm_b);
            free(L->bup);
            free(L->bdown);
            free(L->q_a_norm);
            free(L->kv_a_norm);
            free(L->wk_b);
            free(L->wv_b);
            free(L->xgate);
            free(L->xup);
            free(L->xdown);
            free(L->conv_w);
            free(L->dt_bias);
            free(L->ssm_a);
            free(L->ssm_norm);
            free(L->conv_b);
            free(L->ssm_d);
            free(L->pl_post_norm);
            free(L->router_s);
            free(L->xdown_s);
            free(L->pre_norm_2);
            free(L->post_norm_1);
            free(L->post_norm_2);
        }
        free(m->layers);
    }
    free(m->x8_arena);
    free(m->output_norm);
    free(m->rope_freqs);
    free(m->rope_long);
    free(m->rope_short);
    free(m->rope_mask);
    free(m->mamba_rec);
    free(m->layer_ff);
    free(m->embd_norm);
    free(m->embd_norm_b);
    free(m->cls_b);
    free(m->cls_out_b);
    free(m->swa_layers);
    free(m->pl_proj_norm);
    scratch_free(&m->s);
    gguf_close(m->gf);
    free(m);
}

sl_model_t *model_load(const char *path, char *err, size_t errlen) {
    sl_kernels_init();
    sl_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    char e[SL_ERR_MAX];
    m->gf = gguf_open(path, e, sizeof e);
    if (!m->gf) {
        sl_err(err, errlen, "%s", e);
        free(m);
        return NULL;
    }
    if (load_hparams(m, e, sizeof e) || load_tensors(m, e, sizeof e)) {
        sl_err(err, errlen, "%s: %s", path, e);
        model_free(m);
        return NULL;
    }
    if (m->hp.arch != SL_ARCH_GEMMA4) /* every layer of the model's one shape (gemma4: each its own) */
        for (int l = 0; m->layers && l < m->hp.n_layer; l++) {
            sl_layer_t *L = &m->layers[l];
            L->n_head = m->hp.n_head, L->n_head_kv = m->hp.n_head_kv, L->head_dim = m->hp.head_dim;
            L->n_ff = m->hp.n_ff, L->has_kv = true, L->out_scale = 1.0f;
            if (!m->hp.ssm_hybrid) L->kv_l = l; /* hybrids: load_tensors counted their attention layers */
        }
    return m;
}

const sl_hparams_t *model_hparams(const sl_model_t *m) { return &m->hp; }

void model_set_ctx(sl_model_t *m, int n_ctx) {
    if (m->rope_long) m->hp.rope.freq_factors = n_ctx > m->hp.rope.n_ctx_orig ? m->rope_long : m->rope_short;
}
const gguf_file_t *model_gguf(const sl_model_t *m) { return m->gf; }

/* --------------------------------------------------------------- KV cache */

static void layout_free(sl_kv_layout_t *lay);

/* Fills the sizes of a layout of blocks of block_size positions (gemma4:
 * allocates its per-layer table; layout_free frees it). */
static int layout_init(sl_kv_layout_t *lay, const sl_model_t *m, int block_size, sl_type_t type, char *err,
                       size_t errlen) {
    memset(lay, 0, sizeof *lay);
    if (type != SL_TYPE_F32 && type != SL_TYPE_F16 && type != SL_TYPE_Q8_0)
        return sl_err(err, errlen, "KV cache type must be f32, f16 or q8_0");
    if (type == SL_TYPE_Q8_0 && m->hp.head_dim % 32 != 0)
        return sl_err(err, errlen, "a q8_0 KV cache needs a head size that is a multiple of 32 (it is %d)",
                      m->hp.head_dim);
    if (block_size <= 0 || block_size > MODEL_DIM_LIMIT)
        return sl_err(err, errlen, "KV block size %d is out of range", block_size);
    lay->n_layer = m->hp.ssm_hybrid ? m->hp.n_layer_kv : m->hp.n_layer; /* attention layers only */
    lay->v_is_k = m->hp.mla;
    lay->n_head_kv = m->hp.n_head_kv;
    lay->head_dim = m->hp.head_dim;
    lay->block_size = block_size;
    lay->type = type;
    lay->row_bytes = sl_row_size(type, m->hp.head_dim);
    size_t rows;
    if (lay->row_bytes == 0 || !sl_mul_size((size_t)block_size, (size_t)lay->n_head_kv, &rows) ||
        !sl_mul_size(rows, lay->row_bytes, &lay->layer_bytes) ||
        !sl_mul_size(lay->layer_bytes, (size_t)lay->n_layer, &lay->block_bytes))
        return sl_err(err, errlen, "KV cache size overflows");
    if (m->hp.arch != SL_ARCH_GEMMA4) return 0;
    /* gemma4: the layers with a KV, each n_head_kv × head_dim of its own, one after another */
    lay->n_layer = m->hp.n_layer_kv;
    lay->ls = calloc((size_t)lay->n_layer, sizeof *lay->ls);
    if (!lay->ls) return sl_err(err, errlen, "out of memory");
    size_t off = 0;
    for (int l = 0; l < lay->n_layer; l++) {
        const sl_layer_t *L = &m->layers[l];
        struct sl_kv_lspec *q = &lay->ls[l];
        size_t lb;
        if (type == SL_TYPE_Q8_0 && L->head_dim % 32 != 0) {
            layout_free(lay);
            return sl_err(err, errlen, "a q8_0 KV cache needs head sizes that are multiples of 32 (layer %d: %d)", l,
                          L->head_dim);
        }
        q->off = off, q->n_head_kv = L->n_head_kv, q->head_dim = L->head_dim;
        q->row_bytes = sl_row_size(type, L->head_dim);
        if (q->row_bytes == 0 || !sl_mul_size((size_t)block_size, (size_t)L->n_head_kv, &rows) ||
            !sl_mul_size(rows, q->row_bytes, &lb) || off > SIZE_MAX - lb) {
            layout_free(lay);
            return sl_err(err, errlen, "KV cache size overflows");
        }
        off += lb;
    }
    lay->block_bytes = off;
    return 0;
}

/* calloc'd K and V areas of n_blocks blocks: pages become resident only as
 * positions fill. */
static void layout_free(sl_kv_layout_t *lay) {
    if (lay->v != lay->k) free(lay->v);
    free(lay->k);
    free(lay->ls);
    lay->k = lay->v = NULL;
    lay->ls = NULL;
}

static int layout_alloc(sl_kv_layout_t *lay, size_t n_blocks, char *err, size_t errlen) {
    size_t bytes;
    if (!sl_mul_size(lay->block_bytes, n_blocks, &bytes))
        return sl_err(err, errlen, "KV cache size overflows");
    lay->k = calloc(1, bytes);
    lay->v = lay->v_is_k ? lay->k : calloc(1, bytes);
    if (!lay->k || !lay->v) {
        layout_free(lay);
        return sl_err(err, errlen, "out of memory for a KV cache of %zu bytes", (lay->v_is_k ? 1 : 2) * bytes);
    }
    return 0;
}

sl_kv_t *model_kv_new(const sl_model_t *m, int n_ctx, sl_type_t kv_type, char *err, size_t errlen) {
    if (n_ctx <= 0 || n_ctx > MODEL_DIM_LIMIT) {
        sl_err(err, errlen, "KV cache size %d is out of range", n_ctx);
        return NULL;
    }
    sl_kv_t *kv = calloc(1, sizeof *kv);
    if (!kv) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    if (layout_init(&kv->lay, m, n_ctx, kv_type, err, errlen) || layout_alloc(&kv->lay, 1, err, errlen)) {
        layout_free(&kv->lay);
        free(kv);
        return NULL;
    }
    const size_t sf = model_state_floats(m);
    if (sf && !(kv->state = calloc(sf, sizeof(float)))) {
        sl_err(err, errlen, "out of memory for a recurrent state of %zu floats", sf);
        model_kv_free(kv);
        return NULL;
    }
    kv->n_ctx = n_ctx;
    return kv;
}

void model_kv_free(sl_kv_t *kv) {
    if (!kv) return;
    layout_free(&kv->lay);
    free(kv->state);
    free(kv);
}

/* Per DeltaNet layer: the conv's last ssm_conv - 1 inputs (C channels
 * each, oldest first), then H_v matrices of Dv rows × Dk (row i: value
 * dim i over the key dims). */
static size_t state_conv_floats(const sl_hparams_t *hp) {
    const size_t C = 2 * (size_t)hp->ssm_n_k * (size_t)hp->ssm_head_k + (size_t)hp->ssm_n_v * (size_t)hp->ssm_head_v;
    return (size_t)(hp->ssm_conv - 1) * C;
}
static size_t state_layer_floats(const sl_hparams_t *hp) {
    return state_conv_floats(hp) + (size_t)hp->ssm_n_v * (size_t)hp->ssm_head_v * (size_t)hp->ssm_head_k;
}

size_t model_state_floats(const sl_model_t *m) {
    const sl_hparams_t *hp = &m->hp;
    if (!hp->ssm_hybrid) return 0;
    return (size_t)(hp->n_layer - hp->n_layer_kv) * state_layer_floats(hp); /* ≤ 2^20 layers × 2^12 · 2^32 */
}

int model_kv_len(const sl_kv_t *kv) { return kv->len; }
int model_kv_capacity(const sl_kv_t *kv) { return kv->n_ctx; }
void model_kv_truncate(sl_kv_t *kv, int n) {
    if (n < 0) n = 0;
    if (n < kv->len) kv->len = n;
}

size_t model_kv_block_bytes(const sl_model_t *m, int block_size, sl_type_t type) {
    sl_kv_layout_t lay;
    char e[64];
    if (layout_init(&lay, m, block_size, type, e, sizeof e)) return 0;
    layout_free(&lay);
    return (lay.v_is_k ? 1 : 2) * lay.block_bytes;
}

sl_kv_pool_t *model_kv_pool_new(const sl_model_t *m, int n_blocks, int block_size, sl_type_t type,
                                char *err, size_t errlen) {
    if (n_blocks <= 0 || n_blocks > (1 << 30)) {
        sl_err(err, errlen, "KV block count %d is out of range", n_blocks);
        return NULL;
    }
    sl_kv_pool_t *p = calloc(1, sizeof *p);
    if (!p) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    if (layout_init(&p->lay, m, block_size, type, err, errlen) ||
        layout_alloc(&p->lay, (size_t)n_blocks, err, errlen)) {
        layout_free(&p->lay);
        free(p);
        return NULL;
    }
    p->n_blocks = n_blocks;
    return p;
}

void model_kv_pool_free(sl_kv_pool_t *p) {
    if (!p) return;
    layout_free(&p->lay);
    free(p);
}

int model_kv_pool_blocks(const sl_kv_pool_t *p) { return p->n_blocks; }
int model_kv_pool_block_size(const sl_kv_pool_t *p) { return p->lay.block_size; }
sl_type_t model_kv_pool_type(const sl_kv_pool_t *p) { return p->lay.type; }

void model_kv_pool_copy(sl_kv_pool_t *p, int dst, int src, int n_pos) {
    const sl_kv_layout_t *lay = &p->lay;
    if (dst == src || dst < 0 || src < 0 || dst >= p->n_blocks || src >= p->n_blocks) return;
    if (n_pos > lay->block_size) n_pos = lay->block_size;
    if (n_pos <= 0) return;
    for (int l = 0; l < lay->n_layer; l++)
        for (int h = 0; h < lay_heads(lay, l); h++) {
            const size_t in = lay_off(lay, l) + (size_t)h * (size_t)lay->block_size * lay_row(lay, l);
            const size_t n = (size_t)n_pos * lay_row(lay, l);
            memcpy(lay->k + (size_t)dst * lay->block_bytes + in, lay->k + (size_t)src * lay->block_bytes + in, n);
            if (!lay->v_is_k)
                memcpy(lay->v + (size_t)dst * lay->block_bytes + in, lay->v + (size_t)src * lay->block_bytes + in, n);
        }
}

void *model_kv_pool_block_data(sl_kv_pool_t *p, int b, int part, size_t *bytes) {
    const sl_kv_layout_t *lay = &p->lay;
    *bytes = 0;
    if (b < 0 || b >= p->n_blocks || part < 0 || part > 1 || (part == 1 && lay->v_is_k))
        return NULL;
    *bytes = lay->block_bytes;
    return (part ? lay->v : lay->k) + (size_t)b * lay->block_bytes;
}

/* ----------------------------------------------------------- forward pass */

static int scratch_reserve(sl_model_t *m, int n_tok, size_t n_scores, int n_out, char *err, size_t errlen) {
    struct sl_scratch *s = &m->s;
    const sl_hparams_t *hp = &m->hp;
    if (n_tok > s->cap_tok) {
        size_t QD = (size_t)hp->n_head * (size_t)hp->head_dim, KD = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
        if (hp->arch == SL_ARCH_GEMMA4) { /* the widest layer's */
            QD = KD = 0;
            for (int l = 0; l < hp->n_layer; l++) {
                const sl_layer_t *L = &m->layers[l];
                QD = SL_MAX(QD, (size_t)L->n_head * (size_t)L->head_dim);
                KD = SL_MAX(KD, (size_t)L->n_head_kv * (size_t)L->head_dim);
            }
        }
        const size_t E = (size_t)hp->n_embd, F = (size_t)SL_MAX(hp->n_ff, hp->n_ff_shexp);
        const size_t LP = (size_t)hp->n_embd_pl * (size_t)hp->n_layer;
        /* gemma4: the per-layer inputs; with experts the dense MLP's output and the router's input */
        const size_t ple = (LP ? 2 * LP + (size_t)hp->n_embd_pl : 0) +
                           (hp->arch == SL_ARCH_GEMMA4 && hp->n_expert ? 2 * (size_t)hp->n_embd : 0);
        const size_t NE = (size_t)hp->n_expert, KU = (size_t)hp->n_expert_used, FE = (size_t)hp->n_ff_exp;
        const size_t MH = (size_t)hp->n_head, MG = (size_t)SL_MAX(hp->n_lora_kv, SL_MAX(hp->n_nope, hp->n_v_mla));
        const size_t mla = hp->mla ? MH * (size_t)(hp->n_nope + hp->rope.n_rot) + KD + (size_t)hp->n_lora_q +
                                         MH * (size_t)hp->n_v_mla + 2 * MG
                                   : 0;
        const size_t HV = (size_t)hp->ssm_n_v, VD = HV * (size_t)hp->ssm_head_v,
                     C = 2 * (size_t)hp->ssm_n_k * (size_t)hp->ssm_head_k + VD;
        const size_t hyb =
            hp->ssm_hybrid ? 3 * QD + 2 * C + 2 * VD + 2 * HV + (hp->ssm_v_grouped || hp->mamba2 ? C + VD + 2 * HV : 0)
                           : 0;
        const size_t per_tok =
            2 * E + 2 * QD + 2 * KD + 2 * F + (NE ? NE + 2 * KU + 3 * E + 2 * FE : 0) + mla + hyb + ple;
        float *b = malloc(per_tok * (size_t)n_tok * sizeof(float));
        int32_t *tp = malloc(2 * (size_t)n_tok * sizeof *tp);
        const int32_t **tb = malloc((size_t)n_tok * sizeof *tb);
        int32_t *mi = NE ? malloc((2 * KU * (size_t)n_tok + NE + 1) * sizeof *mi) : NULL;
        if (!b || !tp || !tb || (NE && !mi)) {
            free(b);
            free(tp);
            free(tb);
            free(mi);
            return sl_err(err, errlen, "out of memory for a batch of %d tokens", n_tok);
        }
        free(s->x);
        free(s->tok_pos);
        free(s->tok_blocks);
        free(s->moe_e);
        const size_t n = (size_t)n_tok;
        s->x = b;
        s->xn = s->x + n * E;
        s->q = s->xn + n * E;
        s->att = s->q + n * QD;
        s->k = s->att + n * QD;
        s->v = s->k + n * KD;
        s->gate = s->v + n * KD;
        s->up = s->gate + n * F;
        if (NE) {
            s->moe_logits = s->up + n * F;
            s->moe_w = s->moe_logits + n * NE;
            s->moe_gw = s->moe_w + n * KU;
            s->moe_x = s->moe_gw + n * KU;
            s->moe_y = s->moe_x + n * E;
            s->moe_sum = s->moe_y + n * E;
            s->moe_g = s->moe_sum + n * E;
            s->moe_u = s->moe_g + n * FE;
            s->moe_e = mi;
            s->moe_tok = mi + n * KU;
            s->moe_start = s->moe_tok + n * KU;
        }
        if (hp->mla) { /* after the dense buffers and the MoE ones */
            float *at = s->up + n * F + (NE ? n * (NE + 2 * KU + 3 * E + 2 * FE) : 0);
            s->mla_q = at;
            s->mla_kv = s->mla_q + n * MH * (size_t)(hp->n_nope + hp->rope.n_rot);
            s->mla_qa = s->mla_kv + n * KD;
            s->mla_o = s->mla_qa + n * (size_t)hp->n_lora_q;
            s->mla_g1 = s->mla_o + n * MH * (size_t)hp->n_v_mla;
            s->mla_g2 = s->mla_g1 + n * MG;
        }
        if (hyb) { /* last */
            float *at = s->up + n * F + (NE ? n * (NE + 2 * KU + 3 * E + 2 * FE) : 0) + n * mla;
            s->qg = at;
            s->qgate = s->qg + n * 2 * QD;
            s->dn_in = s->qgate + n * QD;
            s->dn_conv = s->dn_in + n * C;
            s->dn_z = s->dn_conv + n * C;
            s->dn_o = s->dn_z + n * VD;
            s->dn_b = s->dn_o + n * VD;
            s->dn_g = s->dn_b + n * HV;
            s->dn_mix = hp->ssm_v_grouped || hp->mamba2 ? s->dn_g + n * HV : NULL;
        }
        if (ple) { /* gemma4 (no MLA or DeltaNet buffers) */
            s->ple = s->up + n * F + (NE ? n * (NE + 2 * KU + 3 * E + 2 * FE) : 0);
            s->ple_tok = s->ple + n * LP;
            s->ple_g = s->ple_tok + LP;
            s->g4_mlp = s->ple_g + n * (size_t)hp->n_embd_pl;
            s->g4_rin = s->g4_mlp + n * E;
        }
        s->tok_pos = tp;
        s->seq_t0 = tp + n_tok;
        s->tok_blocks = tb;
        s->cap_tok = n_tok;
    }
    if (n_scores > s->cap_scores) {
        float *sc = malloc(n_scores * sizeof(float));
        if (!sc) return sl_err(err, errlen, "out of memory for attention scores");
        free(s->scores);
        s->scores = sc;
        s->cap_scores = n_scores;
    }
    if (n_out > s->cap_out) {
        size_t nf;
        float *lg = NULL;
        if (sl_mul_size((size_t)n_out, (size_t)hp->n_vocab, &nf)) lg = malloc(nf * sizeof(float));
        if (!lg) return sl_err(err, errlen, "out of memory for the logits of %d sequences", n_out);
        free(s->out_logits);
        s->out_logits = lg;
        s->cap_out = n_out;
    }
    return 0;
}

/* Splits [0, n) into nth nearly equal ranges. */
static void split_range(int n, int ith, int nth, int *lo, int *hi) {
    const int per = n / nth, rem = n % nth;
    *lo = ith * per + SL_MIN(ith, rem);
    *hi = *lo + per + (ith < rem ? 1 : 0);
}

struct norm_job {
    float *out;
    const float *x;
    const float *w;
    int n_rows;
    int64_t n;
    float eps;
};

static void norm_worker(void *ctx, int ith, int nth) {
    const struct norm_job *j = ctx;
    int lo, hi;
    split_range(j->n_rows, ith, nth, &lo, &hi);
    for (int r = lo; r < hi; r++)
        sl_rmsnorm(j->out + (size_t)r * (size_t)j->n, j->x + (size_t)r * (size_t)j->n, j->w, j->n, j->eps);
}

/* Rows of length n, each normalized; threaded when there are several rows. */
static void rmsnorm_rows(sl_pool_t *pool, float *out, const float *x, const float *w, int n_rows,
                         int64_t n, float eps) {
    struct norm_job j = {out, x, w, n_rows, n, eps};
    if (n_rows >= 4)
        sl_pool_run(pool, norm_worker, &j);
    else
        norm_worker(&j, 0, 1);
}

/* A branch's input: x normed by w, or x itself where the layer has no norm
 * before the branch (olmo2). */
static void pre_norm(sl_pool_t *pool, float *out, const float *x, const float *w, int n_rows, int64_t n,
                     float eps) {
    if (w)
        rmsnorm_rows(pool, out, x, w, n_rows, n, eps);
    else
        memcpy(out, x, sizeof(float) * (size_t)n_rows * (size_t)n);
}

/* Per-token work between the QKV projections and attention: biases, qwen3
 * q/k norms, rope at the token's own position, and the K/V store into the
 * block its sequence's table names for that position. */
struct qkv_job {
    const sl_model_t *m;
    const sl_layer_t *L;
    const sl_rope_t *rope; /* the layer's, or NULL (smollm3's no-RoPE layers) */
    const sl_kv_layout_t *lay;
    int layer;
    int n_tok;
};

static void add_bias(float *x, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += b[i];
}

static void kv_store_row(sl_type_t type, uint8_t *dst, const float *src, int n) {
    if (type == SL_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else if (type == SL_TYPE_F16) {
        sl_f16_t *d = (sl_f16_t *)dst;
        for (int i = 0; i < n; i++) d[i] = sl_f32_to_f16(src[i]);
    } else {
        sl_quantize_row(type, src, dst, n);
    }
}

static void qkv_worker(void *ctx, int ith, int nth) {
    const struct qkv_job *j = ctx;
    const sl_hparams_t *hp = &j->m->hp;
    const struct sl_scratch *s = &j->m->s;
    const sl_layer_t *L = j->L;
    const sl_kv_layout_t *lay = j->lay;
    const int D = L->head_dim, H = L->n_head, K = L->n_head_kv;
    const size_t QD = (size_t)H * (size_t)D, KD = (size_t)K * (size_t)D;
    const bool g4 = hp->arch == SL_ARCH_GEMMA4;
    int lo, hi;
    split_range(j->n_tok, ith, nth, &lo, &hi);
    for (int t = lo; t < hi; t++) {
        float *q = s->q + (size_t)t * QD, *k = s->k + (size_t)t * KD, *v = s->v + (size_t)t * KD;
        const int pos = s->tok_pos[t];
        if (g4) { /* q, k normed per head with their weights, v without one; a layer without a KV: q only */
            for (int h = 0; h < H; h++) sl_rmsnorm(q + (size_t)h * D, q + (size_t)h * D, L->q_norm, D, hp->norm_eps);
            sl_rope_apply(q, H, D, pos, j->rope);
            if (!L->has_kv) continue;
            if (!L->wv.data) memcpy(v, k, KD * sizeof(float)); /* attention_k_eq_v: V is K's projection */
            for (int h = 0; h < K; h++) {
                sl_rmsnorm(k + (size_t)h * D, k + (size_t)h * D, L->k_norm, D, hp->norm_eps);
                sl_rmsnorm(v + (size_t)h * D, v + (size_t)h * D, NULL, D, hp->norm_eps);
            }
            sl_rope_apply(k, K, D, pos, j->rope);
        }
        if (L->bq) add_bias(q, L->bq, (int64_t)QD);
        if (L->bk) add_bias(k, L->bk, (int64_t)KD);
        if (L->bv) add_bias(v, L->bv, (int64_t)KD);
        if (g4) {
            /* normed and turned above */
        } else if (L->q_norm && hp->arch == SL_ARCH_OLMO2) { /* one norm over all heads */
            sl_rmsnorm(q, q, L->q_norm, (int64_t)QD, hp->norm_eps);
            sl_rmsnorm(k, k, L->k_norm, (int64_t)KD, hp->norm_eps);
        } else if (L->q_norm) {
            for (int h = 0; h < H; h++) sl_rmsnorm(q + (size_t)h * D, q + (size_t)h * D, L->q_norm, D, hp->norm_eps);
            for (int h = 0; h < K; h++) sl_rmsnorm(k + (size_t)h * D, k + (size_t)h * D, L->k_norm, D, hp->norm_eps);
        }
        if (j->rope && !g4) {
            sl_rope_apply(q, H, D, pos, j->rope);
            sl_rope_apply(k, K, D, pos, j->rope);
        }
        const int blk = s->tok_blocks[t][pos / lay->block_size], slot = pos % lay->block_size;
        const size_t rb = lay_row(lay, j->layer);
        for (int h = 0; h < K; h++) {
            const size_t off = (size_t)blk * lay->block_bytes + lay_off(lay, j->layer) +
                               ((size_t)h * (size_t)lay->block_size + (size_t)slot) * rb;
            kv_store_row(lay->type, lay->k + off, k + (size_t)h * D, D);
            kv_store_row(lay->type, lay->v + off, v + (size_t)h * D, D);
        }
    }
}

/* x += y (n floats), optionally adding a bias of period `period`. */
struct add_job {
    float *x;
    const float *y;
    const float *bias;
    size_t n, period;
    float scale; /* x += scale · (y + bias) */
};

static void add_worker(void *ctx, int ith, int nth) {
    const struct add_job *j = ctx;
    const size_t per = (j->n + (size_t)nth - 1) / (size_t)nth;
    const size_t lo = SL_MIN(j->n, per * (size_t)ith), hi = SL_MIN(j->n, lo + per);
    for (size_t i = lo; i < hi; i++) j->x[i] += j->scale * (j->y[i] + (j->bias ? j->bias[i % j->period] : 0.0f));
}

struct swiglu_job {
    float *gate;
    const float *up;
    size_t n;
    size_t next; /* next chunk start to claim (atomic) */
    bool gelu;   /* gelu(gate) · up instead */
};

#define SWIGLU_CHUNK 1024

/* Chunks claimed from a shared counter; run elastic, so a worker that is
 * slow to wake does not hold up a small decode step. */
static void swiglu_worker(void *ctx, int ith, int nth) {
    struct swiglu_job *j = ctx;
    (void)ith, (void)nth;
    for (;;) {
        const size_t lo = __atomic_fetch_add(&j->next, SWIGLU_CHUNK, __ATOMIC_RELAXED);
        if (lo >= j->n) break;
        const size_t hi = SL_MIN(j->n, lo + SWIGLU_CHUNK);
        (j->gelu ? sl_geglu : sl_swiglu)(j->gate + lo, j->gate + lo, j->up + lo, (int64_t)(hi - lo));
    }
}

/* the matmul operand of w (its x8 copy when it has one) */
static sl_mm_t mm_of(const sl_wt_t *w, float *y) {
    return (sl_mm_t){w->x8 ? w->x8 : w->data, w->type, w->n_out, y, w->x8 != NULL};
}

static void matmul_w(sl_pool_t *pool, const sl_wt_t *w, const float *x, int n_tok, float *y) {
    const sl_mm_t mm = mm_of(w, y);
    sl_matmul_multi(pool, &mm, 1, w->n_in, x, n_tok);
}

/* The router's probabilities from its n logits (softmax, or sigmoid for
 * glm4moe; in place), the k largest (plus the selection bias where there
 * is one; ties to the lower index) weighted by their probabilities,
 * renormalized and scaled as the model says: e[0..k), w[0..k). */
static void moe_route(const sl_hparams_t *hp, const float *bias, float *logits, int32_t *e, float *w) {
    const int n = hp->n_expert, k = hp->n_expert_used;
    /* the router's probabilities, in place: softmax, or sigmoid (glm4moe) */
    if (hp->expert_sigmoid) {
        for (int i = 0; i < n; i++) logits[i] = 1.0f / (1.0f + expf(-logits[i]));
    } else {
        float mx = logits[0];
        for (int i = 1; i < n; i++) mx = fmaxf(mx, logits[i]);
        double z = 0;
        for (int i = 0; i < n; i++) z += exp((double)(logits[i] - mx));
        for (int i = 0; i < n; i++) logits[i] = (float)(exp((double)(logits[i] - mx)) / z);
    }
    /* deepseek2 with groups: each group scored by the sum of its two best
     * selection scores, the best n_group_used groups kept (ties to the
     * lower group), the other experts out of the choice */
    bool out[MODEL_MAX_EXPERTS] = {false};
    if (hp->n_group > 0) {
        const int per = n / hp->n_group;
        float gs[MODEL_MAX_EXPERTS];
        for (int g = 0; g < hp->n_group; g++) {
            float b1 = -INFINITY, b2 = -INFINITY;
            for (int i = g * per; i < (g + 1) * per; i++) {
                const float v = logits[i] + (bias ? bias[i] : 0.0f);
                if (v > b1) b2 = b1, b1 = v;
                else if (v > b2) b2 = v;
            }
            gs[g] = b1 + b2;
        }
        bool keep[MODEL_MAX_EXPERTS] = {false};
        for (int j = 0; j < hp->n_group_used; j++) {
            int best = -1;
            for (int g = 0; g < hp->n_group; g++)
                if (!keep[g] && (best < 0 || gs[g] > gs[best])) best = g;
            keep[best] = true;
        }
        for (int i = 0; i < n; i++) out[i] = !keep[i / per];
    }
    /* the top k by probability (+ the selection bias), weighted by the
     * unbiased probability */
    for (int j = 0; j < k; j++) {
        int best = -1;
        float bv = 0.0f;
        for (int i = 0; i < n; i++) {
            bool taken = out[i];
            for (int q = 0; q < j && !taken; q++) taken = e[q] == i;
            const float v = logits[i] + (bias ? bias[i] : 0.0f);
            if (!taken && (best < 0 || v > bv)) best = i, bv = v;
        }
        e[j] = best;
        w[j] = logits[best];
    }
    double sum = 0;
    for (int j = 0; j < k; j++) sum += w[j];
    for (int j = 0; j < k; j++)
        w[j] = (float)((hp->expert_norm && sum > 0 ? w[j] / sum : w[j]) * hp->expert_scale);
}

/* The mixture-of-experts FFN of n_tok tokens: s->xn (normed) in, the sum of
 * every token's chosen experts, weighted, added to s->x. The batch's
 * tokens are grouped by expert, so each chosen expert's three matrices run
 * once per step over all the tokens that chose it; a token's sum adds its
 * experts in expert order whatever else is in the batch. */
static void moe_ffn(sl_model_t *m, sl_pool_t *pool, const sl_layer_t *L, int n_tok, const float *router_in) {
    const sl_hparams_t *hp = &m->hp;
    struct sl_scratch *s = &m->s;
    const int NE = hp->n_expert, KU = hp->n_expert_used, E = hp->n_embd, FE = hp->n_ff_exp;
    matmul_w(pool, &L->router, router_in, n_tok, s->moe_logits);
    if (L->router_b)
        for (int t = 0; t < n_tok; t++)
            add_bias(s->moe_logits + (size_t)t * NE, L->router_b, NE);
    int32_t *start = s->moe_start;
    memset(start, 0, sizeof *start * (size_t)(NE + 1));
    for (int t = 0; t < n_tok; t++) {
        moe_route(hp, L->expert_bias, s->moe_logits + (size_t)t * NE, s->moe_e + (size_t)t * KU,
                  s->moe_w + (size_t)t * KU);
        for (int j = 0; j < KU; j++) start[s->moe_e[(size_t)t * KU + j] + 1]++;
    }
    for (int e = 0; e < NE; e++) start[e + 1] += start[e];
    /* counting sort of the (token, weight) pairs by expert, tokens in order */
    for (int t = 0; t < n_tok; t++)
        for (int j = 0; j < KU; j++) {
            const int e = s->moe_e[(size_t)t * KU + j];
            const int at = start[e]++;
            s->moe_tok[at] = t;
            s->moe_gw[at] = s->moe_w[(size_t)t * KU + j];
        }
    for (int e = NE; e > 0; e--) start[e] = start[e - 1];
    start[0] = 0;
    memset(s->moe_sum, 0, sizeof(float) * (size_t)n_tok * (size_t)E);
    for (int e = 0; e < NE; e++) {
        const int lo = start[e], c = start[e + 1] - lo;
        if (c == 0) continue;
        for (int i = 0; i < c; i++)
            memcpy(s->moe_x + (size_t)i * E, s->xn + (size_t)s->moe_tok[lo + i] * E, sizeof(float) * (size_t)E);
        const sl_mm_t gu[2] = {mm_of(&L->xgate[e], s->moe_g), mm_of(&L->xup[e], s->moe_u)};
        sl_matmul_multi(pool, gu, 2, E, s->moe_x, c);
        if (L->xgate_b) /* gpt-oss: biased experts, the clamped SwiGLU */
            for (int i = 0; i < c; i++) {
                float *g = s->moe_g + (size_t)i * FE, *u = s->moe_u + (size_t)i * FE;
                add_bias(g, L->xgate_b + (size_t)e * FE, FE);
                add_bias(u, L->xup_b + (size_t)e * FE, FE);
                sl_swiglu_oai(g, g, u, FE, MODEL_OAI_ALPHA, MODEL_OAI_LIMIT);
            }
        else { /* gemma4's experts: gelu */
            struct swiglu_job sj = {s->moe_g, s->moe_u, (size_t)c * (size_t)FE, 0, hp->gelu};
            if (sj.n > SWIGLU_CHUNK)
                sl_pool_run_elastic(pool, swiglu_worker, &sj);
            else
                (hp->gelu ? sl_geglu : sl_swiglu)(sj.gate, sj.gate, sj.up, (int64_t)sj.n);
        }
        matmul_w(pool, &L->xdown[e], s->moe_g, c, s->moe_y);
        if (L->xdown_b)
            for (int i = 0; i < c; i++)
                add_bias(s->moe_y + (size_t)i * E, L->xdown_b + (size_t)e * E, E);
        const float ds = L->xdown_s ? L->xdown_s[e] : 1.0f; /* gemma4's per-expert output scale */
        for (int i = 0; i < c; i++) {
            float *acc = s->moe_sum + (size_t)s->moe_tok[lo + i] * E;
            const float *y = s->moe_y + (size_t)i * E, w = s->moe_gw[lo + i] * ds;
            for (int d = 0; d < E; d++) acc[d] += w * y[d];
        }
    }
    if (L->gate.data && hp->arch != SL_ARCH_GEMMA4) { /* the shared expert; qwen2moe weights it by sigmoid(g · xn)
                                                       * (gemma4's dense MLP: gemma4_moe_ffn) */
        const sl_mm_t gu[2] = {mm_of(&L->gate, s->gate), mm_of(&L->up, s->up)};
        sl_matmul_multi(pool, gu, 2, E, s->xn, n_tok);
        struct swiglu_job sj = {s->gate, s->up, (size_t)n_tok * (size_t)hp->n_ff_shexp, 0, false};
        sl_pool_run_elastic(pool, swiglu_worker, &sj);
        matmul_w(pool, &L->down, s->gate, n_tok, s->moe_y);
        for (int t = 0; t < n_tok; t++) {
            const float *xt = s->xn + (size_t)t * E, *y = s->moe_y + (size_t)t * E;
            float g = 1.0f;
            if (L->shexp_gate) {
                g = 0.0f;
                for (int d = 0; d < E; d++) g += L->shexp_gate[d] * xt[d];
                g = 1.0f / (1.0f + expf(-g));
            }
            float *acc = s->moe_sum + (size_t)t * E;
            for (int d = 0; d < E; d++) acc[d] += g * y[d];
        }
    }
    if (hp->arch == SL_ARCH_GEMMA4) return; /* gemma4_moe_ffn combines s->moe_sum with its dense MLP */
    struct add_job aj = {s->x, s->moe_sum, NULL, (size_t)n_tok * (size_t)E, (size_t)E, hp->residual_scale};
    add_worker(&aj, 0, 1);
}

/* gemma4's FFN with experts (26B-A4B), as llama.cpp's gemma4 graph: the
 * dense MLP and the experts side by side on the post-attention stream x,
 *   mlp = rmsnorm(MLP(rmsnorm(x) · ffn_norm)) · post_ffw_norm_1
 *   router logits = Wr (rmsnorm(x) / sqrt(E) · ffn_gate_inp.scale); softmax, top k, renormalized
 *   moe = rmsnorm(Σ w_e · down_scale_e · Wdown_e (gelu(Wgate_e h) · Wup_e h)) · post_ffw_norm_2,
 *         h = rmsnorm(x) · pre_ffw_norm_2
 *   x += rmsnorm(mlp + moe) · post_ffw_norm */
static void gemma4_moe_ffn(sl_model_t *m, sl_pool_t *pool, const sl_layer_t *L, int n_tok) {
    const sl_hparams_t *hp = &m->hp;
    struct sl_scratch *s = &m->s;
    const int E = hp->n_embd;
    const size_t n = (size_t)n_tok * (size_t)E;
    rmsnorm_rows(pool, s->xn, s->x, L->ffn_norm, n_tok, E, hp->norm_eps);
    {
        const sl_mm_t gu[2] = {mm_of(&L->gate, s->gate), mm_of(&L->up, s->up)};
        sl_matmul_multi(pool, gu, 2, E, s->xn, n_tok);
    }
    struct swiglu_job sj = {s->gate, s->up, (size_t)n_tok * (size_t)L->n_ff, 0, true};
    sl_pool_run_elastic(pool, swiglu_worker, &sj);
    matmul_w(pool, &L->down, s->gate, n_tok, s->g4_mlp);
    rmsnorm_rows(pool, s->g4_mlp, s->g4_mlp, L->post_norm_1, n_tok, E, hp->norm_eps);
    rmsnorm_rows(pool, s->g4_rin, s->x, NULL, n_tok, E, hp->norm_eps);
    const float rs = 1.0f / sqrtf((float)E);
    for (int t = 0; t < n_tok; t++) {
        float *r = s->g4_rin + (size_t)t * (size_t)E;
        for (int i = 0; i < E; i++) r[i] *= rs * L->router_s[i];
    }
    rmsnorm_rows(pool, s->xn, s->x, L->pre_norm_2, n_tok, E, hp->norm_eps);
    moe_ffn(m, pool, L, n_tok, s->g4_rin);
    rmsnorm_rows(pool, s->moe_sum, s->moe_sum, L->post_norm_2, n_tok, E, hp->norm_eps);
    for (size_t i = 0; i < n; i++) s->g4_mlp[i] += s->moe_sum[i];
    rmsnorm_rows(pool, s->g4_mlp, s->g4_mlp, L->post_ffn_norm, n_tok, E, hp->norm_eps);
    struct add_job aj = {s->x, s->g4_mlp, NULL, n, (size_t)E, 1.0f};
    add_worker(&aj, 0, 1);
}

/* n_rows rows of logits as the model ends them: granite's 1 / logit_scale,
 * gemma2's soft-capping. */
static void finish_logits(const sl_hparams_t *hp, float *logits, int n_rows) {
    const size_t n = (size_t)n_rows * (size_t)hp->n_vocab;
    if (hp->logit_scale != 1.0f) {
        const float inv = 1.0f / hp->logit_scale;
        for (size_t i = 0; i < n; i++) logits[i] *= inv;
    }
    const float cap = hp->logit_softcap;
    if (cap > 0.0f)
        for (size_t i = 0; i < n; i++) logits[i] = cap * tanhf(logits[i] / cap);
}

/* Paged attention of layer l over the batch (s->q -> s->att): n_head query
 * heads over n_head_kv KV heads of head_dim in lay, causal (each token up
 * to its position, within `window` when > 0) or, with tok_keys, over the
 * first tok_keys[t] positions of its sequence (encoders). */
static void layer_attention(sl_model_t *m, sl_pool_t *pool, const sl_kv_layout_t *lay, int l, int n_tok,
                            int n_head_kv, int head_dim, int window, const int32_t *tok_keys, int max_keys) {
    const sl_hparams_t *hp = &m->hp;
    struct sl_scratch *s = &m->s;
    const int kl = kv_layer(m, l);
    const size_t loff = lay_off(lay, kl);
    const sl_attn_paged_t a = {
        .n_tok = n_tok,
        .n_head = m->layers[l].n_head,
        .n_head_kv = n_head_kv,
        .head_dim = head_dim,
        .q = s->q,
        .out = s->att,
        .tok_pos = s->tok_pos,
        .tok_blocks = s->tok_blocks,
        .tok_keys = tok_keys,
        .k = lay->k + loff,
        .v = lay->v + loff,
        .block_stride = lay->block_bytes,
        .block_size = lay->block_size,
        .row_bytes = lay_row(lay, kl),
        .kv_type = lay->type,
        .scale = hp->attn_scale,
        .window = window,
        .softcap = hp->attn_softcap,
        .scratch = s->scores,
        .max_keys = max_keys,
        .sinks = m->layers[l].sinks,
    };
    sl_attention_paged(pool, &a);
}

/* deepseek2's per-token work between the projections and attention: the
 * latent row normed (its first n_lora_kv) and its rope part rotated, the
 * query heads' rope parts rotated, the latent row stored as the position's
 * K row, which the attention also reads as its V row (v_is_k: the output's
 * first n_lora_kv values are the ones used). */
struct mla_job {
    const sl_model_t *m;
    const sl_layer_t *L;
    const sl_kv_layout_t *lay;
    int layer, n_tok;
};

static void mla_worker(void *ctx, int ith, int nth) {
    const struct mla_job *j = ctx;
    const sl_hparams_t *hp = &j->m->hp;
    const struct sl_scratch *s = &j->m->s;
    const sl_kv_layout_t *lay = j->lay;
    const int H = hp->n_head, R = hp->n_lora_kv, NR = hp->rope.n_rot, QK = hp->n_nope + NR, KD = hp->head_dim;
    int lo, hi;
    split_range(j->n_tok, ith, nth, &lo, &hi);
    for (int t = lo; t < hi; t++) {
        float *kv = s->mla_kv + (size_t)t * (size_t)KD, *q = s->mla_q + (size_t)t * (size_t)H * (size_t)QK;
        const int pos = s->tok_pos[t];
        sl_rmsnorm(kv, kv, j->L->kv_a_norm, R, hp->norm_eps);
        sl_rope_apply(kv + R, 1, NR, pos, &hp->rope);
        for (int h = 0; h < H; h++) sl_rope_apply(q + (size_t)h * (size_t)QK + hp->n_nope, 1, NR, pos, &hp->rope);
        const int blk = s->tok_blocks[t][pos / lay->block_size], slot = pos % lay->block_size;
        const size_t off = (size_t)blk * lay->block_bytes + (size_t)j->layer * lay->layer_bytes +
                           (size_t)slot * lay->row_bytes;
        kv_store_row(lay->type, lay->k + off, kv, KD); /* also the V row: v_is_k */
    }
}

/* Column block [c0, c0 + w) of n rows of stride `from` into n rows of w
 * (gather), or back (scatter). */
static void cols_gather(float *dst, const float *src, int n, size_t stride, size_t c0, size_t w) {
    for (int t = 0; t < n; t++) memcpy(dst + (size_t)t * w, src + (size_t)t * stride + c0, w * sizeof(float));
}
static void cols_scatter(float *dst, const float *src, int n, size_t stride, size_t c0, size_t w) {
    for (int t = 0; t < n; t++) memcpy(dst + (size_t)t * stride + c0, src + (size_t)t * w, w * sizeof(float));
}

/* deepseek2's attention for n_tok tokens (input s->xn, output s->xn), in
 * the absorbed form: head h's query for the latent rows is [wk_b[h] ·
 * q_nope | q_pe] (so q · k = q_nope · k_nope + q_pe · k_pe of the
 * decompressed form), one KV head of latent rows, and wv_b[h] turns the
 * head's attention over the latent rows into its values. */
static void mla_attention(sl_model_t *m, sl_pool_t *pool, const sl_kv_layout_t *lay, const sl_layer_t *L, int l,
                          int n_tok, int max_keys) {
    const sl_hparams_t *hp = &m->hp;
    struct sl_scratch *s = &m->s;
    const int H = hp->n_head, R = hp->n_lora_kv, NR = hp->rope.n_rot, NOPE = hp->n_nope, VH = hp->n_v_mla;
    const size_t QK = (size_t)(NOPE + NR), KD = (size_t)hp->head_dim;
    if (L->wq_a.data) {
        matmul_w(pool, &L->wq_a, s->xn, n_tok, s->mla_qa);
        rmsnorm_rows(pool, s->mla_qa, s->mla_qa, L->q_a_norm, n_tok, hp->n_lora_q, hp->norm_eps);
        matmul_w(pool, &L->wq_b, s->mla_qa, n_tok, s->mla_q);
    } else {
        matmul_w(pool, &L->wq, s->xn, n_tok, s->mla_q);
    }
    matmul_w(pool, &L->wkv_a, s->xn, n_tok, s->mla_kv);
    struct mla_job mj = {m, L, lay, l, n_tok};
    if (n_tok >= 2)
        sl_pool_run(pool, mla_worker, &mj);
    else
        mla_worker(&mj, 0, 1);
    for (int h = 0; h < H; h++) { /* the absorbed queries: n_tok × [R | NR] per head */
        cols_gather(s->mla_g1, s->mla_q, n_tok, (size_t)H * QK, (size_t)h * QK, (size_t)NOPE);
        matmul_w(pool, &L->wk_b[h], s->mla_g1, n_tok, s->mla_g2);
        cols_scatter(s->q, s->mla_g2, n_tok, (size_t)H * KD, (size_t)h * KD, (size_t)R);
        for (int t = 0; t < n_tok; t++)
            memcpy(s->q + ((size_t)t * (size_t)H + (size_t)h) * KD + R,
                   s->mla_q + ((size_t)t * (size_t)H + (size_t)h) * QK + NOPE, (size_t)NR * sizeof(float));
    }
    layer_attention(m, pool, lay, l, n_tok, 1, (int)KD, 0, NULL, max_keys);
    for (int h = 0; h < H; h++) { /* each head's latent output through wv_b[h] */
        cols_gather(s->mla_g1, s->att, n_tok, (size_t)H * KD, (size_t)h * KD, (size_t)R);
        matmul_w(pool, &L->wv_b[h], s->mla_g1, n_tok, s->mla_g2);
        cols_scatter(s->mla_o, s->mla_g2, n_tok, (size_t)H * (size_t)VH, (size_t)h * (size_t)VH, (size_t)VH);
    }
    matmul_w(pool, &L->wo, s->mla_o, n_tok, s->xn);
}

/* ---- qwen35's Gated DeltaNet layer ----
 *
 * For each sequence, token by token (H_k key heads, H_v value heads of
 * Dk = Dv; value head h reads key head h mod H_k — the converter orders
 * the value heads so, "tiled", for ggml's broadcast):
 *
 *   [q | k | v] = silu(causal conv over the last ssm_conv inputs of Wqkv xn)
 *   q, k = per head q / max(|q|, eps), k / max(|k|, eps);  q /= sqrt(Dk)
 *   g = ssm_a · softplus(Walpha xn + dt_bias);  beta = sigmoid(Wbeta xn)
 *   per value head:  M = exp(g) M;  M += k ⊗ beta (v - M k)  (row i += k · d_i);  o = M q
 *   o = rmsnorm(o per head) · ssm_norm · silu(Wz xn);  out = Wssm_out o
 *
 * The state (conv inputs and M) is the sequence's own; its layout is
 * state_layer_floats per DeltaNet layer. */
struct dn_job {
    const sl_model_t *m;
    const sl_layer_t *L;
    const sl_batch_seq_t *seqs;
    const int32_t *seq_t0; /* first batch token of each sequence */
    int n_seqs, n_tok;
    size_t state_off; /* this layer's part of each sequence's state */
    atomic_int next;  /* next (sequence, value head) item */
};

/* The causal conv and SiLU over a channel range of every sequence, and the
 * conv state moved on to each sequence's last ssm_conv - 1 inputs. */
static void dn_conv_worker(void *ctx, int ith, int nth) {
    struct dn_job *j = ctx;
    const sl_hparams_t *hp = &j->m->hp;
    const struct sl_scratch *s = &j->m->s;
    const int KW = hp->ssm_conv;
    const size_t C = 2 * (size_t)hp->ssm_n_k * (size_t)hp->ssm_head_k + (size_t)hp->ssm_n_v * (size_t)hp->ssm_head_v;
    int lo, hi;
    split_range((int)C, ith, nth, &lo, &hi);
    const size_t c0 = (size_t)lo, nc = (size_t)(hi - lo);
    if (nc == 0) return;
    for (int i = 0; i < j->n_seqs; i++) {
        float *cs = j->seqs[i].state + j->state_off; /* (KW - 1) rows of C, oldest first */
        const int n = j->seqs[i].n_tok, t0 = j->seq_t0[i];
        for (int t = 0; t < n; t++) {
            float *out = s->dn_conv + (size_t)(t0 + t) * C + c0;
            if (j->L->conv_b) /* Mamba-2's conv has a bias */
                memcpy(out, j->L->conv_b + c0, nc * sizeof(float));
            else
                memset(out, 0, nc * sizeof(float));
            for (int k = 0; k < KW; k++) {
                const int p = t - (KW - 1) + k; /* input position; < 0: the state's row KW - 1 + p */
                const float *in = p < 0 ? cs + (size_t)(KW - 1 + p) * C + c0 : s->dn_in + (size_t)(t0 + p) * C + c0;
                const float *w = j->L->conv_w + (size_t)k * C + c0;
                for (size_t c = 0; c < nc; c++) out[c] += w[c] * in[c];
            }
            for (size_t c = 0; c < nc; c++) out[c] = out[c] / (1.0f + expf(-out[c]));
        }
        /* row r becomes input n - (KW - 1) + r; rows read (n + r) are ahead of rows written */
        for (int r = 0; r < KW - 1; r++) {
            const int p = n - (KW - 1) + r;
            const float *in = p < 0 ? cs + (size_t)(KW - 1 + p) * C + c0 : s->dn_in + (size_t)(t0 + p) * C + c0;
            memmove(cs + (size_t)r * C + c0, in, nc * sizeof(float));
        }
    }
}

static float l2_scale(const float *x, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    return 1.0f / fmaxf(sqrtf((float)ss), eps);
}

/* Per token: q and k L2-normed per key head (q also scaled by Dk^-1/2),
 * the decay g and beta per value head. */
static void dn_prep_worker(void *ctx, int ith, int nth) {
    struct dn_job *j = ctx;
    const sl_hparams_t *hp = &j->m->hp;
    const struct sl_scratch *s = &j->m->s;
    const int HK = hp->ssm_n_k, DK = hp->ssm_head_k, HV = hp->ssm_n_v;
    const size_t C = 2 * (size_t)HK * (size_t)DK + (size_t)HV * (size_t)hp->ssm_head_v;
    const float qs = 1.0f / sqrtf((float)DK);
    int lo, hi;
    split_range(j->n_tok, ith, nth, &lo, &hi);
    for (int t = lo; t < hi; t++) {
        float *q = s->dn_conv + (size_t)t * C, *k = q + (size_t)HK * DK;
        for (int h = 0; h < HK; h++) {
            float *qh = q + (size_t)h * DK, *kh = k + (size_t)h * DK;
            const float a = l2_scale(qh, DK, hp->norm_eps) * qs, b = l2_scale(kh, DK, hp->norm_eps);
            for (int d = 0; d < DK; d++) qh[d] *= a, kh[d] *= b;
        }
        float *g = s->dn_g + (size_t)t * HV, *beta = s->dn_b + (size_t)t * HV;
        for (int h = 0; h < HV; h++) {
            const float x = g[h] + j->L->dt_bias[h];
            const float sp = x > 20.0f ? x : log1pf(expf(x)); /* ggml's softplus */
            g[h] = sp * j->L->ssm_a[h];
            beta[h] = 1.0f / (1.0f + expf(-beta[h]));
        }
    }
}

/* The delta rule of one (sequence, value head) over its tokens in order;
 * items claimed from a counter. */
static void dn_delta_worker(void *ctx, int ith, int nth) {
    struct dn_job *j = ctx;
    (void)ith, (void)nth;
    const sl_hparams_t *hp = &j->m->hp;
    const struct sl_scratch *s = &j->m->s;
    const int HK = hp->ssm_n_k, DK = hp->ssm_head_k, HV = hp->ssm_n_v, DV = hp->ssm_head_v;
    const size_t C = 2 * (size_t)HK * (size_t)DK + (size_t)HV * (size_t)DV, VD = (size_t)HV * (size_t)DV;
    const size_t sc = state_conv_floats(hp);
    for (;;) {
        const int it = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (it >= j->n_seqs * HV) break;
        const int i = it / HV, h = it % HV, kh = hp->ssm_v_grouped ? h / (HV / HK) : h % HK;
        float *M = j->seqs[i].state + j->state_off + sc + (size_t)h * (size_t)DV * (size_t)DK;
        for (int tt = 0; tt < j->seqs[i].n_tok; tt++) {
            const size_t t = (size_t)(j->seq_t0[i] + tt);
            const float *q = s->dn_conv + t * C + (size_t)kh * DK, *k = q + (size_t)HK * DK;
            const float *v = s->dn_conv + t * C + 2 * (size_t)HK * DK + (size_t)h * DV;
            const float decay = expf(s->dn_g[t * (size_t)HV + (size_t)h]), beta = s->dn_b[t * (size_t)HV + (size_t)h];
            float *o = s->dn_o + t * VD + (size_t)h * DV;
            for (int r = 0; r < DV; r++) {
                float *row = M + (size_t)r * DK;
                float sk = 0.0f;
                for (int d = 0; d < DK; d++) {
                    row[d] *= decay;
                    sk += row[d] * k[d];
                }
                const float dr = beta * (v[r] - sk);
                float acc = 0.0f;
                for (int d = 0; d < DK; d++) {
                    row[d] += k[d] * dr;
                    acc += row[d] * q[d];
                }
                o[r] = acc;
            }
        }
    }
}

/* Per token and value head: o = rmsnorm(o) · ssm_norm · silu(z). */
static void dn_out_worker(void *ctx, int ith, int nth) {
    struct dn_job *j = ctx;
    const sl_hparams_t *hp = &j->m->hp;
    const struct sl_scratch *s = &j->m->s;
    const int HV = hp->ssm_n_v, DV = hp->ssm_head_v;
    int lo, hi;
    split_range(j->n_tok * HV, ith, nth, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        float *o = s->dn_o + (size_t)r * DV;
        const float *z = s->dn_z + (size_t)r * DV;
        sl_rmsnorm(o, o, j->L->ssm_norm, DV, hp->norm_eps);
        for (int d = 0; d < DV; d++) o[d] *= z[d] / (1.0f + expf(-z[d]));
    }
}

/* DeltaNet layer l over the batch: s->xn (normed) in, its output in s->xn. */
static void deltanet_layer(sl_model_t *m, sl_pool_t *pool, const sl_layer_t *L, int l, const sl_batch_seq_t *seqs,
                           const int32_t *seq_t0, int n_seqs, int n_tok) {
    const sl_hparams_t *hp = &m->hp;
    struct sl_scratch *s = &m->s;
    if (!L->wba.data) {
        const sl_mm_t mm[4] = {mm_of(&L->wqkv, s->dn_in), mm_of(&L->wz, s->dn_z), mm_of(&L->wbeta, s->dn_b),
                               mm_of(&L->walpha, s->dn_g)};
        sl_matmul_multi(pool, mm, 4, hp->n_embd, s->xn, n_tok);
    } else { /* qwen3next's fused projections, split per key head (r = H_v / H_k value heads each) */
        const size_t HK = (size_t)hp->ssm_n_k, DK = (size_t)hp->ssm_head_k, HV = (size_t)hp->ssm_n_v,
                     R = HV / HK, RV = R * (size_t)hp->ssm_head_v, VD = HV * (size_t)hp->ssm_head_v,
                     C = 2 * HK * DK + VD, n = (size_t)n_tok;
        float *ba = s->dn_mix + n * (C + VD);
        if (L->wqkvz.data) {
            const sl_mm_t mm[2] = {mm_of(&L->wqkvz, s->dn_mix), mm_of(&L->wba, ba)};
            sl_matmul_multi(pool, mm, 2, hp->n_embd, s->xn, n_tok);
            for (size_t t = 0; t < n; t++)
                for (size_t g = 0; g < HK; g++) { /* [q | k | v of its R heads | z of them] */
                    const float *src = s->dn_mix + t * (C + VD) + g * (2 * DK + 2 * RV);
                    float *in = s->dn_in + t * C;
                    memcpy(in + g * DK, src, DK * sizeof(float));
                    memcpy(in + HK * DK + g * DK, src + DK, DK * sizeof(float));
                    memcpy(in + 2 * HK * DK + g * RV, src + 2 * DK, RV * sizeof(float));
                    memcpy(s->dn_z + t * VD + g * RV, src + 2 * DK + RV, RV * sizeof(float));
                }
        } else {
            const sl_mm_t mm[3] = {mm_of(&L->wqkv, s->dn_in), mm_of(&L->wz, s->dn_z), mm_of(&L->wba, ba)};
            sl_matmul_multi(pool, mm, 3, hp->n_embd, s->xn, n_tok);
        }
        for (size_t t = 0; t < n; t++) /* per key head: its R heads' b, then their a */
            for (size_t g = 0; g < HK; g++)
                for (size_t j = 0; j < R; j++) {
                    s->dn_b[t * HV + g * R + j] = ba[t * 2 * HV + g * 2 * R + j];
                    s->dn_g[t * HV + g * R + j] = ba[t * 2 * HV + g * 2 * R + R + j];
                }
    }
    /* DeltaNet layers before l, each one state_layer_floats */
    struct dn_job j = {m, L, seqs, seq_t0, n_seqs, n_tok, (size_t)L->rec_l * state_layer_floats(hp), 0};
    atomic_init(&j.next, 0);
    if (n_tok >= 2) {
        sl_pool_run(pool, dn_conv_worker, &j);
        sl_pool_run(pool, dn_prep_worker, &j);
    } else {
        dn_conv_worker(&j, 0, 1);
        dn_prep_worker(&j, 0, 1);
    }
    sl_pool_run_elastic(pool, dn_delta_worker, &j);
    if (n_tok >= 2)
        sl_pool_run(pool, dn_out_worker, &j);
    else
        dn_out_worker(&j, 0, 1);
    matmul_w(pool, &L->ssm_out, s->dn_o, n_tok, s->xn);
}

/* nemotron_h's MLP layer on s->xn (normed): x += down(relu(up xn + bup)²) + bdown. */
static void relu2_ffn(sl_model_t *m, sl_pool_t *pool, const sl_layer_t *L, int n_tok) {
    struct sl_scratch *s = &m->s;
    const size_t F = (size_t)L->up.n_out, E = (size_t)m->hp.n_embd;
    matmul_w(pool, &L->up, s->xn, n_tok, s->gate);
    for (size_t t = 0; t < (size_t)n_tok; t++) {
        float *g = s->gate + t * F;
        for (size_t i = 0; i < F; i++) {
            const float v = fmaxf(g[i] + (L->bup ? L->bup[i] : 0.0f), 0.0f);
            g[i] = v * v;
        }
    }
    matmul_w(pool, &L->down, s->gate, n_tok, s->xn);
    struct add_job aj = {s->x, s->xn, L->bdown, (size_t)n_tok * E, E, m->hp.residual_scale};
    add_worker(&aj, 0, 1);
}

/* nemotron_h_moe's MoE layer on s->xn (normed): each token's chosen
 * experts down(relu(up xn)²), weighted as moe_route says (sigmoid, the
 * selection bias, norm, scale), plus the shared expert
 * down_shexp(relu(up_shexp xn)²), added to s->x. Tokens grouped by expert
 * as in moe_ffn, so each chosen expert's two matrices run once per step. */
static void relu2_moe_ffn(sl_model_t *m, sl_pool_t *pool, const sl_layer_t *L, int n_tok) {
    const sl_hparams_t *hp = &m->hp;
    struct sl_scratch *s = &m->s;
    const int NE = hp->n_expert, KU = hp->n_expert_used, E = hp->n_embd, FE = hp->n_ff_exp;
    matmul_w(pool, &L->router, s->xn, n_tok, s->moe_logits);
    int32_t *start = s->moe_start;
    memset(start, 0, sizeof *start * (size_t)(NE + 1));
    for (int t = 0; t < n_tok; t++) {
        moe_route(hp, L->expert_bias, s->moe_logits + (size_t)t * NE, s->moe_e + (size_t)t * KU,
                  s->moe_w + (size_t)t * KU);
        for (int j = 0; j < KU; j++) start[s->moe_e[(size_t)t * KU + j] + 1]++;
    }
    for (int e = 0; e < NE; e++) start[e + 1] += start[e];
    for (int t = 0; t < n_tok; t++)
        for (int j = 0; j < KU; j++) {
            const int e = s->moe_e[(size_t)t * KU + j], at = start[e]++;
            s->moe_tok[at] = t;
            s->moe_gw[at] = s->moe_w[(size_t)t * KU + j];
        }
    for (int e = NE; e > 0; e--) start[e] = start[e - 1];
    start[0] = 0;
    memset(s->moe_sum, 0, sizeof(float) * (size_t)n_tok * (size_t)E);
    for (int e = 0; e < NE; e++) {
        const int lo = start[e], c = start[e + 1] - lo;
        if (c == 0) continue;
        for (int i = 0; i < c; i++)
            memcpy(s->moe_x + (size_t)i * E, s->xn + (size_t)s->moe_tok[lo + i] * E, sizeof(float) * (size_t)E);
        matmul_w(pool, &L->xup[e], s->moe_x, c, s->moe_u);
        for (size_t i = 0; i < (size_t)c * (size_t)FE; i++) {
            const float v = fmaxf(s->moe_u[i], 0.0f);
            s->moe_u[i] = v * v;
        }
        matmul_w(pool, &L->xdown[e], s->moe_u, c, s->moe_y);
        for (int i = 0; i < c; i++) {
            float *acc = s->moe_sum + (size_t)s->moe_tok[lo + i] * E;
            const float *y = s->moe_y + (size_t)i * E, w = s->moe_gw[lo + i];
            for (int d = 0; d < E; d++) acc[d] += w * y[d];
        }
    }
    const size_t FS = (size_t)hp->n_ff_shexp;
    matmul_w(pool, &L->up, s->xn, n_tok, s->gate);
    for (size_t i = 0; i < (size_t)n_tok * FS; i++) {
        const float v = fmaxf(s->gate[i], 0.0f);
        s->gate[i] = v * v;
    }
    matmul_w(pool, &L->down, s->gate, n_tok, s->moe_y);
    for (size_t i = 0; i < (size_t)n_tok * (size_t)E; i++) s->moe_sum[i] += s->moe_y[i];
    struct add_job aj = {s->x, s->moe_sum, NULL, (size_t)n_tok * (size_t)E, (size_t)E, hp->residual_scale};
    add_worker(&aj, 0, 1);
}

/* ---- Mamba-2 hybrids (granitehybrid): the mixer's forward pass ----
 *
 * Per token: zxBCdt = ssm_in · x; xBC through the causal conv (with the
 * sequence's last d_conv - 1 inputs, plus bias) and SiLU; xBC = [x (heads ×
 * head_dim) | B (n_group × d_state) | C (n_group × d_state)]; per head h
 * of group g = h / (heads / n_group) (B and C repeat_interleave'd over a
 * group's heads, as HF and ggml do):
 *   dt = softplus(dt_raw + dt_bias[h]),  a = exp(dt · A[h])
 *   S[i][n] = a · S[i][n] + dt · x[i] · B[n]   (i < head_dim, n < d_state)
 *   y[i] = Σ_n S[i][n] · C[n] + D[h] · x[i]
 * then y · silu(z), RMS-normed per group of d_inner / n_group channels
 * (× ssm_norm), and ssm_out. The state per layer is the conv's inputs and
 * heads × head_dim × d_state floats (state_layer_floats: the DeltaNet
 * formula with the same fields). Reuses the DeltaNet job and its conv. */

/* The scan of one (sequence, head) over its tokens in order; items claimed
 * from a counter. Writes y + D·x into s->dn_o. */
static void m2_scan_worker(void *ctx, int ith, int nth) {
    struct dn_job *j = ctx;
    (void)ith, (void)nth;
    const sl_hparams_t *hp = &j->m->hp;
    const struct sl_scratch *s = &j->m->s;
    const int NG = hp->ssm_n_k, DS = hp->ssm_head_k, NH = hp->ssm_n_v, HD = hp->ssm_head_v;
    const size_t VD = (size_t)NH * (size_t)HD, C = VD + 2 * (size_t)NG * (size_t)DS;
    const size_t sc = state_conv_floats(hp);
    for (;;) {
        const int it = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (it >= j->n_seqs * NH) break;
        const int i = it / NH, h = it % NH, g = h / (NH / NG);
        float *S = j->seqs[i].state + j->state_off + sc + (size_t)h * (size_t)HD * (size_t)DS;
        const float A = j->L->ssm_a[h], D = j->L->ssm_d[h], bias = j->L->dt_bias[h];
        for (int tt = 0; tt < j->seqs[i].n_tok; tt++) {
            const size_t t = (size_t)(j->seq_t0[i] + tt);
            const float *x = s->dn_conv + t * C + (size_t)h * HD;
            const float *B = s->dn_conv + t * C + VD + (size_t)g * DS, *Cm = B + (size_t)NG * DS;
            const float xr = s->dn_g[t * (size_t)NH + (size_t)h] + bias;
            const float dt = xr > 20.0f ? xr : log1pf(expf(xr)); /* ggml's softplus */
            const float a = expf(dt * A);
            float *o = s->dn_o + t * VD + (size_t)h * HD;
            for (int r = 0; r < HD; r++) {
                float *row = S + (size_t)r * DS;
                const float dx = dt * x[r];
                float acc = 0.0f;
                for (int n = 0; n < DS; n++) {
                    row[n] = row[n] * a + dx * B[n];
                    acc += row[n] * Cm[n];
                }
                o[r] = acc + D * x[r];
            }
        }
    }
}

/* Per token and group: y = rmsnorm(y · silu(z)) · ssm_norm's group part. */
static void m2_out_worker(void *ctx, int ith, int nth) {
    struct dn_job *j = ctx;
    const sl_hparams_t *hp = &j->m->hp;
    const struct sl_scratch *s = &j->m->s;
    const int NG = hp->ssm_n_k, GD = hp->ssm_n_v * hp->ssm_head_v / NG;
    int lo, hi;
    split_range(j->n_tok * NG, ith, nth, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        float *o = s->dn_o + (size_t)r * GD;
        const float *z = s->dn_z + (size_t)r * GD;
        for (int d = 0; d < GD; d++) o[d] *= z[d] / (1.0f + expf(-z[d]));
        sl_rmsnorm(o, o, j->L->ssm_norm + (size_t)(r % NG) * GD, GD, hp->norm_eps);
    }
}

/* Mamba-2 layer over the batch: s->xn (normed) in, its output in s->xn. */
static void mamba2_layer(sl_model_t *m, sl_pool_t *pool, const sl_layer_t *L, const sl_batch_seq_t *seqs,
                         const int32_t *seq_t0, int n_seqs, int n_tok) {
    const sl_hparams_t *hp = &m->hp;
    struct sl_scratch *s = &m->s;
    const size_t NH = (size_t)hp->ssm_n_v, VD = NH * (size_t)hp->ssm_head_v,
                 C = VD + 2 * (size_t)hp->ssm_n_k * (size_t)hp->ssm_head_k, W = VD + C + NH;
    matmul_w(pool, &L->ssm_in, s->xn, n_tok, s->dn_mix);
    for (size_t t = 0; t < (size_t)n_tok; t++) { /* [z | xBC | dt] */
        const float *src = s->dn_mix + t * W;
        memcpy(s->dn_z + t * VD, src, VD * sizeof(float));
        memcpy(s->dn_in + t * C, src + VD, C * sizeof(float));
        memcpy(s->dn_g + t * NH, src + VD + C, NH * sizeof(float));
    }
    struct dn_job j = {m, L, seqs, seq_t0, n_seqs, n_tok, (size_t)L->rec_l * state_layer_floats(hp), 0};
    atomic_init(&j.next, 0);
    if (n_tok >= 2)
        sl_pool_run(pool, dn_conv_worker, &j);
    else
        dn_conv_worker(&j, 0, 1);
    sl_pool_run_elastic(pool, m2_scan_worker, &j);
    if (n_tok >= 2)
        sl_pool_run(pool, m2_out_worker, &j);
    else
        m2_out_worker(&j, 0, 1);
    matmul_w(pool, &L->ssm_out, s->dn_o, n_tok, s->xn);
}

/* Row i of an embedding table (tokens, positions, token types) as n_in
 * floats into x; added to x with a scratch row tmp. */
static void table_row(const sl_wt_t *w, int64_t i, float *x) {
    sl_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)i * w->row_bytes, x, w->n_in);
}
static void add_table_row(const sl_wt_t *w, int64_t i, float *x, float *tmp) {
    table_row(w, i, tmp);
    for (int64_t e = 0; e < w->n_in; e++) x[e] += tmp[e];
}

/* gemma4's per-layer inputs of the batch's tokens (s->ple: per token,
 * n_layer rows of n_embd_pl), from the token's row of the per-layer table
 * and a projection of its scaled embedding (s->x), as llama.cpp makes them:
 *   ple[l] = (rmsnorm(Wproj x / sqrt(E))[l] · proj_norm + tok_pl[l] · sqrt(P)) / sqrt(2) */
static void gemma4_ple_inputs(sl_model_t *m, sl_pool_t *pool, const sl_batch_seq_t *seqs, int n_seqs, int n_tok) {
    const sl_hparams_t *hp = &m->hp;
    struct sl_scratch *s = &m->s;
    const int P = hp->n_embd_pl;
    const size_t LP = (size_t)P * (size_t)hp->n_layer;
    matmul_w(pool, &m->pl_model_proj, s->x, n_tok, s->ple);
    const float ps = 1.0f / sqrtf((float)hp->n_embd), ts = sqrtf((float)P), is = 1.0f / sqrtf(2.0f);
    for (int i = 0, t = 0; i < n_seqs; i++)
        for (int k = 0; k < seqs[i].n_tok; k++, t++) {
            float *p = s->ple + (size_t)t * LP, *tok = s->ple_tok;
            table_row(&m->pl_tok, seqs[i].tokens[k], tok);
            for (size_t j = 0; j < LP; j++) p[j] *= ps;
            for (int l = 0; l < hp->n_layer; l++) {
                float *r = p + (size_t)l * (size_t)P;
                sl_rmsnorm(r, r, m->pl_proj_norm, P, hp->norm_eps);
                for (int j = 0; j < P; j++) r[j] = (r[j] + tok[(size_t)l * (size_t)P + (size_t)j] * ts) * is;
            }
        }
}

/* gemma4's per-layer embedding branch after layer l's FFN:
 *   x += rmsnorm(Wproj (gelu(Wgate x) · ple[l])) · post_norm */
static void gemma4_ple_layer(sl_model_t *m, sl_pool_t *pool, const sl_layer_t *L, int l, int n_tok) {
    const sl_hparams_t *hp = &m->hp;
    struct sl_scratch *s = &m->s;
    const int P = hp->n_embd_pl, E = hp->n_embd;
    const size_t LP = (size_t)P * (size_t)hp->n_layer;
    matmul_w(pool, &L->pl_gate, s->x, n_tok, s->ple_g);
    for (int t = 0; t < n_tok; t++) {
        float *g = s->ple_g + (size_t)t * (size_t)P;
        const float *in = s->ple + (size_t)t * LP + (size_t)l * (size_t)P;
        sl_gelu(g, P);
        for (int j = 0; j < P; j++) g[j] *= in[j];
    }
    matmul_w(pool, &L->pl_proj, s->ple_g, n_tok, s->xn);
    rmsnorm_rows(pool, s->xn, s->xn, L->pl_post_norm, n_tok, E, hp->norm_eps);
    struct add_job aj = {s->x, s->xn, NULL, (size_t)n_tok * (size_t)E, (size_t)E, 1.0f};
    add_worker(&aj, 0, 1);
}

/* One step over the tokens of several sequences (scratch already sized):
 * every matmul runs once over all n_tok rows, so each weight is read once
 * per step whatever the number of sequences; only the RoPE position, the KV
 * store and attention look at which sequence a token belongs to (through
 * s->tok_pos and s->tok_blocks, filled by the caller). Logits are written
 * for the sequences that ask (all tokens or the last). */
static void forward_batch(sl_model_t *m, sl_pool_t *pool, const sl_kv_layout_t *lay, const sl_batch_seq_t *seqs,
                          int n_seqs, int n_tok, int max_keys, bool hidden) {
    const sl_hparams_t *hp = &m->hp;
    struct sl_scratch *s = &m->s;
    const int E = hp->n_embd, D = hp->head_dim;

    for (int i = 0, t = 0; i < n_seqs; i++) {
        s->seq_t0[i] = t;
        for (int k = 0; k < seqs[i].n_tok; k++, t++)
            table_row(&m->tok_embd, seqs[i].tokens[k], s->x + (size_t)t * (size_t)E);
        if (hp->ssm_hybrid && seqs[i].n_past == 0) /* a new sequence: an empty recurrent state */
            memset(seqs[i].state, 0, model_state_floats(m) * sizeof(float));
    }
    if (hp->embd_scale != 1.0f)
        for (size_t i = 0; i < (size_t)n_tok * (size_t)E; i++) s->x[i] *= hp->embd_scale;
    if (m->pl_tok.data) gemma4_ple_inputs(m, pool, seqs, n_seqs, n_tok);

    for (int l = 0; l < hp->n_layer; l++) {
        const sl_layer_t *L = &m->layers[l];
        pre_norm(pool, s->xn, s->x, L->attn_norm, n_tok, E, hp->norm_eps);
        if (L->ffn_only) { /* nemotron_h: an MLP layer; nemotron_h_moe: a MoE layer */
            if (L->xup)
                relu2_moe_ffn(m, pool, L, n_tok);
            else
                relu2_ffn(m, pool, L, n_tok);
            continue;
        }
        if (L->wkv_a.data) { /* deepseek2: multi-head latent attention */
            mla_attention(m, pool, lay, L, l, n_tok, max_keys);
        } else if (L->recurrent && hp->mamba2) { /* granitehybrid: Mamba-2 */
            mamba2_layer(m, pool, L, seqs, s->seq_t0, n_seqs, n_tok);
        } else if (L->recurrent) { /* qwen35: Gated DeltaNet */
            deltanet_layer(m, pool, L, l, seqs, s->seq_t0, n_seqs, n_tok);
        } else {
            if (L->gated_q) { /* qwen35: head h's q then its output gate */
                const sl_mm_t qkv[3] = {mm_of(&L->wq, s->qg), mm_of(&L->wk, s->k), mm_of(&L->wv, s->v)};
                sl_matmul_multi(pool, qkv, 3, E, s->xn, n_tok);
                for (size_t th = 0; th < (size_t)n_tok * (size_t)hp->n_head; th++) {
                    memcpy(s->q + th * (size_t)D, s->qg + 2 * th * (size_t)D, (size_t)D * sizeof(float));
                    memcpy(s->qgate + th * (size_t)D, s->qg + (2 * th + 1) * (size_t)D, (size_t)D * sizeof(float));
                }
            } else { /* gemma4: no k without a KV of the layer's own, no v where V is K */
                sl_mm_t qkv[3] = {mm_of(&L->wq, s->q), mm_of(&L->wk, s->k), mm_of(&L->wv, s->v)};
                int nm = 1;
                if (L->wk.data) qkv[nm++] = qkv[1];
                if (L->wv.data) qkv[nm++] = qkv[2];
                sl_matmul_multi(pool, qkv, nm, E, s->xn, n_tok);
            }

            const bool nope = hp->nope_period > 0 && (l + 1) % hp->nope_period == 0;
            const sl_rope_t *rope = nope ? NULL : hp->swa_rope && layer_swa(hp, l) ? &hp->rope_swa : &hp->rope;
            struct qkv_job qj = {m, L, rope, lay, kv_layer(m, l), n_tok};
            if (n_tok >= 2)
                sl_pool_run(pool, qkv_worker, &qj);
            else
                qkv_worker(&qj, 0, 1);

            layer_attention(m, pool, lay, l, n_tok, L->n_head_kv, L->head_dim, layer_swa(hp, l) ? hp->n_swa : 0,
                            NULL, max_keys);
            if (L->gated_q)
                for (size_t i = 0; i < (size_t)n_tok * (size_t)hp->n_head * (size_t)D; i++)
                    s->att[i] /= 1.0f + expf(-s->qgate[i]);

            matmul_w(pool, &L->wo, s->att, n_tok, s->xn);
        }
        if (L->post_attn_norm) rmsnorm_rows(pool, s->xn, s->xn, L->post_attn_norm, n_tok, E, hp->norm_eps);
        struct add_job aj = {s->x, s->xn, L->bo, (size_t)n_tok * (size_t)E, (size_t)E, hp->residual_scale};
        add_worker(&aj, 0, 1);
        if (L->no_ffn) continue; /* nemotron_h: the mixer was the whole layer */

        if (L->router_s) { /* gemma4 with experts */
            gemma4_moe_ffn(m, pool, L, n_tok);
            if (L->pl_gate.data) gemma4_ple_layer(m, pool, L, l, n_tok);
            if (L->out_scale != 1.0f)
                for (size_t i = 0; i < (size_t)n_tok * (size_t)E; i++) s->x[i] *= L->out_scale;
            continue;
        }
        pre_norm(pool, s->xn, s->x, L->ffn_norm, n_tok, E, hp->norm_eps);
        if (L->xgate) {
            moe_ffn(m, pool, L, n_tok, s->xn);
            continue;
        }
        {
            const sl_mm_t gu[2] = {mm_of(&L->gate, s->gate), mm_of(&L->up, s->up)};
            sl_matmul_multi(pool, gu, 2, E, s->xn, n_tok);
        }
        struct swiglu_job sj = {s->gate, s->up, (size_t)n_tok * (size_t)L->n_ff, 0, hp->gelu};
        sl_pool_run_elastic(pool, swiglu_worker, &sj);
        matmul_w(pool, &L->down, s->gate, n_tok, s->xn);
        if (L->post_ffn_norm) rmsnorm_rows(pool, s->xn, s->xn, L->post_ffn_norm, n_tok, E, hp->norm_eps);
        struct add_job dj = {s->x, s->xn, NULL, (size_t)n_tok * (size_t)E, (size_t)E, hp->residual_scale};
        add_worker(&dj, 0, 1);
        if (L->pl_gate.data) gemma4_ple_layer(m, pool, L, l, n_tok);
        if (L->out_scale != 1.0f) /* gemma4's layer_output_scale: the whole residual stream */
            for (size_t i = 0; i < (size_t)n_tok * (size_t)E; i++) s->x[i] *= L->out_scale;
    }

    if (hidden) { /* embeddings: every token's final normed state, in place */
        rmsnorm_rows(pool, s->x, s->x, m->output_norm, n_tok, E, hp->norm_eps);
        return;
    }
    /* Output rows: every token of an all_logits sequence, the last token of
     * the others that want logits; gathered so Wout is read once. */
    int n_rows = 0, only = -1;
    for (int i = 0, t = 0; i < n_seqs; t += seqs[i].n_tok, i++) {
        if (!seqs[i].logits) continue;
        const int first = seqs[i].all_logits ? t : t + seqs[i].n_tok - 1;
        for (int r = first; r < t + seqs[i].n_tok; r++, n_rows++)
            if (r != n_rows) memcpy(s->x + (size_t)n_rows * E, s->x + (size_t)r * E, (size_t)E * sizeof(float));
        only = only == -1 ? i : -2;
    }
    if (n_rows == 0) return;
    rmsnorm_rows(pool, s->xn, s->x, m->output_norm, n_rows, E, hp->norm_eps);
    if (only >= 0) { /* one sequence: straight into its buffer */
        matmul_w(pool, &m->output, s->xn, n_rows, seqs[only].logits);
        finish_logits(hp, seqs[only].logits, n_rows);
        return;
    }
    matmul_w(pool, &m->output, s->xn, n_rows, s->out_logits);
    finish_logits(hp, s->out_logits, n_rows);
    const size_t V = (size_t)hp->n_vocab;
    int r = 0;
    for (int i = 0; i < n_seqs; i++) {
        if (!seqs[i].logits) continue;
        const int n = seqs[i].all_logits ? seqs[i].n_tok : 1;
        memcpy(seqs[i].logits, s->out_logits + (size_t)r * V, (size_t)n * V * sizeof(float));
        r += n;
    }
}

static int check_tokens(const sl_model_t *m, const int32_t *tokens, int n, char *err, size_t errlen) {
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab)
            return sl_err(err, errlen, "token id %d at index %d is out of range (vocabulary %d)",
                          (int)tokens[i], i, m->hp.n_vocab);
    return 0;
}

static int scores_size(const sl_model_t *m, sl_pool_t *pool, size_t *out, char *err, size_t errlen) {
    const sl_hparams_t *hp = &m->hp;
    size_t per = sl_attention_paged_scratch(hp->n_head, hp->n_head_kv, hp->head_dim);
    if (hp->arch == SL_ARCH_GEMMA4) /* the largest any layer needs */
        for (int l = 0; l < hp->n_layer; l++) {
            const sl_layer_t *L = &m->layers[l];
            per = SL_MAX(per, sl_attention_paged_scratch(L->n_head, L->n_head_kv, L->head_dim));
        }
    if (!sl_mul_size((size_t)sl_pool_size(pool), per, out))
        return sl_err(err, errlen, "attention scratch size overflows");
    return 0;
}

int model_forward(sl_model_t *m, sl_pool_t *pool, sl_kv_t *kv, const int32_t *tokens, int n,
                  float *logits, bool all_logits, char *err, size_t errlen) {
    const sl_hparams_t *hp = &m->hp;
    if (hp->encoder) return sl_err(err, errlen, "a %s model has no logits: it embeds (model_embed)", hp->arch_name);
    if (n <= 0) return sl_err(err, errlen, "no tokens to process");
    if (kv->lay.n_layer != hp->n_layer_kv || kv->lay.n_head_kv != hp->n_head_kv || kv->lay.head_dim != hp->head_dim)
        return sl_err(err, errlen, "KV cache was made for another model");
    if (n > kv->n_ctx - kv->len)
        return sl_err(err, errlen, "context full: %d positions used, %d more requested, capacity %d",
                      kv->len, n, kv->n_ctx);
    if (check_tokens(m, tokens, n, err, errlen)) return -1;
    if (kv->state && kv->len != 0 && kv->len != kv->state_len)
        return sl_err(err, errlen,
                      "the recurrent state has seen %d tokens, the KV cache keeps %d: a DeltaNet state cannot be "
                      "rewound (truncate to 0 to start again)",
                      kv->state_len, kv->len);
    const int step = SL_MIN(n, MODEL_MAX_BATCH);
    size_t n_scores;
    if (scores_size(m, pool, &n_scores, err, errlen) ||
        scratch_reserve(m, step, n_scores, 0, err, errlen))
        return -1;
    static const int32_t block0[1] = {0};
    for (int done = 0; done < n; done += step) {
        const int nt = SL_MIN(step, n - done);
        const bool last = done + nt == n;
        sl_batch_seq_t bs = {
            .tokens = tokens + done,
            .n_tok = nt,
            .n_past = kv->len,
            .blocks = block0,
            .logits = all_logits ? logits + (size_t)done * (size_t)hp->n_vocab : last ? logits : NULL,
            .all_logits = all_logits,
            .state = kv->state,
        };
        for (int t = 0; t < nt; t++) {
            m->s.tok_pos[t] = kv->len + t;
            m->s.tok_blocks[t] = block0;
        }
        forward_batch(m, pool, &kv->lay, &bs, 1, nt, kv->len + nt, false);
        kv->len += nt;
        kv->state_len = kv->len;
    }
    return 0;
}

int model_forward_batch(sl_model_t *m, sl_pool_t *pool, sl_kv_pool_t *kv, const sl_batch_seq_t *seqs,
                        int n_seqs, char *err, size_t errlen) {
    const sl_hparams_t *hp = &m->hp;
    const sl_kv_layout_t *lay = &kv->lay;
    if (hp->encoder) return sl_err(err, errlen, "a %s model has no logits: it embeds (model_embed)", hp->arch_name);
    if (n_seqs <= 0) return sl_err(err, errlen, "no sequences to process");
    if (lay->n_layer != hp->n_layer_kv || lay->n_head_kv != hp->n_head_kv || lay->head_dim != hp->head_dim)
        return sl_err(err, errlen, "KV cache was made for another model");
    int n_tok = 0, max_keys = 1, n_out = 0;
    for (int i = 0; i < n_seqs; i++) {
        const sl_batch_seq_t *q = &seqs[i];
        if (q->n_tok <= 0 || q->n_past < 0 || q->n_tok > MODEL_DIM_LIMIT - q->n_past || !q->blocks)
            return sl_err(err, errlen, "sequence %d of the batch is malformed", i);
        const int end = q->n_past + q->n_tok;
        for (int b = 0; b < (end + lay->block_size - 1) / lay->block_size; b++)
            if (q->blocks[b] < 0 || q->blocks[b] >= kv->n_blocks)
                return sl_err(err, errlen, "sequence %d: block %d of its table (%d) is outside the pool", i, b,
                              (int)q->blocks[b]);
        if (check_tokens(m, q->tokens, q->n_tok, err, errlen)) return -1;
        if (hp->ssm_hybrid && !q->state)
            return sl_err(err, errlen, "sequence %d: a %s model needs the sequence's recurrent state", i, hp->arch_name);
        if (n_tok > MODEL_DIM_LIMIT - q->n_tok) return sl_err(err, errlen, "batch too large");
        n_tok += q->n_tok;
        max_keys = SL_MAX(max_keys, end);
        if (q->logits) n_out += q->all_logits ? q->n_tok : 1;
    }
    size_t n_scores;
    if (scores_size(m, pool, &n_scores, err, errlen) ||
        scratch_reserve(m, n_tok, n_scores, n_out > 1 ? n_out : 0, err, errlen))
        return -1;
    for (int i = 0, t = 0; i < n_seqs; i++)
        for (int k = 0; k < seqs[i].n_tok; k++, t++) {
            m->s.tok_pos[t] = seqs[i].n_past + k;
            m->s.tok_blocks[t] = seqs[i].blocks;
        }
    forward_batch(m, pool, lay, seqs, n_seqs, n_tok, max_keys, false);
    return 0;
}

/* ---------------------------------------------------------------- encoders
 *
 * bert, for a batch of whole sequences (E = n_embd, H heads of D):
 *
 *   x = LayerNorm(tok[id] + type[segment] + pos[i]) · embd_norm + b
 *   per layer:
 *     q, k, v = W x + b                      (K/V of all positions stored first)
 *     a = attention of each token over every token of its own sequence
 *     x = LayerNorm(x + Wo a + bo) · attn_output_norm + b
 *     x = LayerNorm(x + Wdown gelu(Wup x + bup) + bdown) · layer_output_norm + b
 *   pooled: CLS x[0], LAST x[n-1], MEAN the average, RANK
 *   cls_out tanh(cls x[0] + b) + b.
 *
 * GELU is the exact erf form, as the Hugging Face models define it. The
 * K/V rows go to a temporary F32 layout of one block per sequence (the
 * paged attention kernel in its bidirectional mode reads them). */

int model_embed_dim(const sl_model_t *m) {
    const sl_hparams_t *hp = &m->hp;
    if (hp->pooling == SL_POOLING_NONE) return 0;
    return hp->pooling == SL_POOLING_RANK ? hp->n_cls_out : hp->n_embd;
}

int model_embed_max_tokens(const sl_model_t *m) { return model_embed_dim(m) ? m->hp.n_ctx_train : 0; }

/* Rows r of n floats: x_r = LayerNorm(x_r + y_r + b) · w + wb (y NULL: x_r alone). */
struct ln_job {
    float *x;
    const float *y, *b, *w, *wb;
    int n_rows;
    int64_t n;
    float eps;
};

static void ln_worker(void *ctx, int ith, int nth) {
    const struct ln_job *j = ctx;
    int lo, hi;
    split_range(j->n_rows, ith, nth, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        float *x = j->x + (size_t)r * (size_t)j->n;
        if (j->y) {
            const float *y = j->y + (size_t)r * (size_t)j->n;
            for (int64_t i = 0; i < j->n; i++) x[i] += y[i] + (j->b ? j->b[i] : 0.0f);
        }
        sl_layernorm(x, x, j->w, j->wb, j->n, j->eps);
    }
}

static void ln_rows(sl_pool_t *pool, float *x, const float *y, const float *b, const float *w, const float *wb,
                    int n_rows, int64_t n, float eps) {
    struct ln_job j = {x, y, b, w, wb, n_rows, n, eps};
    if (n_rows >= 4)
        sl_pool_run(pool, ln_worker, &j);
    else
        ln_worker(&j, 0, 1);
}

/* Rows of n floats: x_r = gelu(x_r + b) (erf GELU). */
struct gelu_job {
    float *x;
    const float *b;
    int n_rows;
    int64_t n;
};

static void gelu_worker(void *ctx, int ith, int nth) {
    const struct gelu_job *j = ctx;
    int lo, hi;
    split_range(j->n_rows, ith, nth, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        float *x = j->x + (size_t)r * (size_t)j->n;
        if (j->b) add_bias(x, j->b, j->n);
        sl_gelu_erf(x, j->n);
    }
}

static int embed_check(const sl_model_t *m, const sl_embed_seq_t *seqs, int n_seqs, int *n_tok, int *max_len,
                       char *err, size_t errlen) {
    const sl_hparams_t *hp = &m->hp;
    if (!model_embed_dim(m)) return sl_err(err, errlen, "a %s model is not an embedding model", hp->arch_name);
    if (n_seqs <= 0) return sl_err(err, errlen, "no sequences to embed");
    const int n_types = SL_MAX(hp->n_token_types, 1);
    *n_tok = 0;
    *max_len = 1;
    for (int i = 0; i < n_seqs; i++) {
        const sl_embed_seq_t *q = &seqs[i];
        if (q->n_tok <= 0 || q->n_tok > hp->n_ctx_train)
            return sl_err(err, errlen, "sequence %d has %d tokens; this model takes 1 to %d", i, q->n_tok,
                          hp->n_ctx_train);
        if (!q->tokens) return sl_err(err, errlen, "sequence %d has no tokens", i);
        char e2[160];
        if (check_tokens(m, q->tokens, q->n_tok, e2, sizeof e2)) return sl_err(err, errlen, "sequence %d: %s", i, e2);
        for (int k = 0; q->types && k < q->n_tok; k++)
            if (q->types[k] < 0 || q->types[k] >= n_types)
                return sl_err(err, errlen, "token type %d at index %d of sequence %d is out of range (%d types)",
                              (int)q->types[k], k, i, n_types);
        if (*n_tok > MODEL_DIM_LIMIT - q->n_tok) return sl_err(err, errlen, "batch too large");
        *n_tok += q->n_tok;
        *max_len = SL_MAX(*max_len, q->n_tok);
    }
    return 0;
}

/* The pooled vectors (or RANK's classifier logits) of every sequence from
 * the last hidden states in s->x. */
static void embed_pool(sl_model_t *m, sl_pool_t *pool, const sl_embed_seq_t *seqs, int n_seqs, float *out) {
    const sl_hparams_t *hp = &m->hp;
    struct sl_scratch *s = &m->s;
    const size_t E = (size_t)hp->n_embd;
    const int dim = model_embed_dim(m);
    const bool rank = hp->pooling == SL_POOLING_RANK;
    for (int i = 0, t = 0; i < n_seqs; t += seqs[i].n_tok, i++) {
        const float *h = s->x + (size_t)t * E;
        const int n = seqs[i].n_tok;
        float *o = rank ? s->xn + (size_t)i * E : out + (size_t)i * (size_t)dim;
        if (hp->pooling == SL_POOLING_MEAN) {
            for (size_t e = 0; e < E; e++) {
                double acc = 0.0;
                for (int r = 0; r < n; r++) acc += h[(size_t)r * E + e];
                o[e] = (float)(acc / n);
            }
        } else { /* CLS: the first position; LAST, and a decoder's RANK: the last */
            const bool last = hp->pooling == SL_POOLING_LAST || (rank && !hp->encoder);
            memcpy(o, h + (last ? (size_t)(n - 1) * E : 0), E * sizeof(float));
        }
    }
    if (!rank) return;
    /* n_seqs ≤ n_tok rows fit q and att (n_cls_out ≤ n_embd) */
    const float *in = s->xn;
    if (m->cls.data) { /* the cross-encoder's dense layer and tanh */
        matmul_w(pool, &m->cls, s->xn, n_seqs, s->q);
        for (size_t i = 0; i < (size_t)n_seqs * E; i++) s->q[i] = tanhf(s->q[i] + m->cls_b[i % E]);
        in = s->q;
    }
    matmul_w(pool, &m->cls_out, in, n_seqs, s->att);
    for (size_t i = 0; i < (size_t)n_seqs * (size_t)dim; i++)
        out[i] = s->att[i] + (m->cls_out_b ? m->cls_out_b[i % (size_t)dim] : 0.0f);
}

/* bert's layers over the batch (s->tok_pos / tok_blocks set, K/V in lay,
 * keys[t]: the length of token t's sequence); the last states in s->x. */
static void bert_layers(sl_model_t *m, sl_pool_t *pool, const sl_embed_seq_t *seqs, int n_seqs, int n_tok,
                        const sl_kv_layout_t *lay, const int32_t *keys) {
    const sl_hparams_t *hp = &m->hp;
    struct sl_scratch *s = &m->s;
    const int E = hp->n_embd, H = hp->n_head, D = hp->head_dim;
    for (int i = 0, t = 0; i < n_seqs; i++)
        for (int k = 0; k < seqs[i].n_tok; k++, t++) {
            float *x = s->x + (size_t)t * (size_t)E, *tmp = s->xn;
            table_row(&m->tok_embd, seqs[i].tokens[k], x);
            if (m->pos_embd.data) add_table_row(&m->pos_embd, k, x, tmp);
            if (m->type_embd.data) add_table_row(&m->type_embd, seqs[i].types ? seqs[i].types[k] : 0, x, tmp);
        }
    ln_rows(pool, s->x, NULL, NULL, m->embd_norm, m->embd_norm_b, n_tok, E, hp->norm_eps);
    for (int l = 0; l < hp->n_layer; l++) {
        const sl_layer_t *L = &m->layers[l];
        const sl_mm_t qkv[3] = {mm_of(&L->wq, s->q), mm_of(&L->wk, s->k), mm_of(&L->wv, s->v)};
        sl_matmul_multi(pool, qkv, 3, E, s->x, n_tok);
        /* biases, RoPE (nomic-bert), then the K/V store */
        struct qkv_job qj = {m, L, hp->arch == SL_ARCH_NOMIC_BERT ? &hp->rope : NULL, lay, l, n_tok};
        if (n_tok >= 2)
            sl_pool_run(pool, qkv_worker, &qj);
        else
            qkv_worker(&qj, 0, 1);
        layer_attention(m, pool, lay, l, n_tok, H, D, 0, keys, lay->block_size);
        matmul_w(pool, &L->wo, s->att, n_tok, s->xn);
        ln_rows(pool, s->x, s->xn, L->bo, L->attn_norm, L->attn_norm_b, n_tok, E, hp->norm_eps);
        if (L->gate.data) { /* nomic-bert: down(silu(gate x) · up x) */
            const sl_mm_t gu[2] = {mm_of(&L->gate, s->gate), mm_of(&L->up, s->up)};
            sl_matmul_multi(pool, gu, 2, E, s->x, n_tok);
            struct swiglu_job sj = {s->gate, s->up, (size_t)n_tok * (size_t)hp->n_ff, 0, false};
            sl_pool_run_elastic(pool, swiglu_worker, &sj);
        } else {
            matmul_w(pool, &L->up, s->x, n_tok, s->gate);
            struct gelu_job gj = {s->gate, L->bup, n_tok, hp->n_ff};
            if (n_tok >= 2)
                sl_pool_run(pool, gelu_worker, &gj);
            else
                gelu_worker(&gj, 0, 1);
        }
        matmul_w(pool, &L->down, s->gate, n_tok, s->xn);
        ln_rows(pool, s->x, s->xn, L->bdown, L->ffn_norm, L->ffn_norm_b, n_tok, E, hp->norm_eps);
    }
}

int model_embed(sl_model_t *m, sl_pool_t *pool, const sl_embed_seq_t *seqs, int n_seqs, float *out, char *err,
                size_t errlen) {
    const sl_hparams_t *hp = &m->hp;
    int n_tok = 0, max_len = 1;
    size_t n_scores, per_seq, n_kv;
    if (embed_check(m, seqs, n_seqs, &n_tok, &max_len, err, errlen) ||
        scores_size(m, pool, &n_scores, err, errlen) || scratch_reserve(m, n_tok, n_scores, 0, err, errlen))
        return -1;
    const size_t KD = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    if (!sl_mul_size(KD, (size_t)max_len, &per_seq) || !sl_mul_size(per_seq, 2 * (size_t)n_seqs, &n_kv) ||
        n_kv > SIZE_MAX / sizeof(float))
        return sl_err(err, errlen, "batch too large");
    float *kv = malloc(n_kv * sizeof(float));
    int32_t *ids = malloc((size_t)n_seqs * sizeof *ids), *keys = malloc((size_t)n_tok * sizeof *keys);
    sl_batch_seq_t *bs = hp->encoder ? NULL : malloc((size_t)n_seqs * sizeof *bs);
    if (!kv || !ids || !keys || (!hp->encoder && !bs)) {
        free(kv);
        free(ids);
        free(keys);
        free(bs);
        return sl_err(err, errlen, "out of memory for a batch of %d tokens", n_tok);
    }
    struct sl_scratch *s = &m->s;
    for (int i = 0, t = 0; i < n_seqs; i++) {
        ids[i] = i;
        if (bs) bs[i] = (sl_batch_seq_t){seqs[i].tokens, seqs[i].n_tok, 0, &ids[i], NULL, false, NULL};
        for (int k = 0; k < seqs[i].n_tok; k++, t++) {
            s->tok_pos[t] = k;
            s->tok_blocks[t] = &ids[i];
            keys[t] = seqs[i].n_tok;
        }
    }
    /* K/V of one layer, F32, one block per sequence: every layer stores
     * its K/V there and its attention reads them before the next layer
     * overwrites them (layer_bytes 0) */
    const sl_kv_layout_t lay = {
        .n_layer = 1,
        .n_head_kv = hp->n_head_kv,
        .head_dim = hp->head_dim,
        .block_size = max_len,
        .type = SL_TYPE_F32,
        .row_bytes = (size_t)hp->head_dim * sizeof(float),
        .layer_bytes = 0,
        .block_bytes = per_seq * sizeof(float),
        .v_is_k = hp->mla,
        .k = (uint8_t *)kv,
        .v = hp->mla ? (uint8_t *)kv : (uint8_t *)(kv + per_seq * (size_t)n_seqs),
    };
    if (hp->encoder)
        bert_layers(m, pool, seqs, n_seqs, n_tok, &lay, keys);
    else /* a decoder: causal, its final normed states */
        forward_batch(m, pool, &lay, bs, n_seqs, n_tok, max_len, true);
    embed_pool(m, pool, seqs, n_seqs, out);
    free(kv);
    free(ids);
    free(keys);
    free(bs);
    return 0;
}
