/*
 * model.h — a loaded model (hyper-parameters + mmapped weights from GGUF) and
 * its forward pass.
 *
 * Architectures: llama (Llama 2/3, Mistral, DeepSeek-Coder v1), internlm2
 * (the llama layout under its own key prefix), qwen2 (q/k/v biases), qwen3
 * (q/k RMS norm), qwen3moe (qwen3 attention, a routed mixture of experts in
 * place of the dense FFN), qwen2moe (qwen2 attention, routed experts plus
 * a sigmoid-gated shared expert), chatglm and glm4 (fused QKV and gate+up
 * matrices, RoPE over the first half of each head; glm4 adds norms after
 * attention and after the FFN), phi3 (fused QKV and gate+up, LongRoPE
 * factors), gemma, gemma2 and gemma3 (scaled embeddings, GELU FFN;
 * gemma2/3: post norms and sliding-window layers; gemma2: soft-capped
 * attention scores and logits; gemma3: q/k norms, its own RoPE on the
 * window layers), glm4moe (GLM-4.5: sigmoid-routed experts with a
 * selection bias, a shared expert, leading dense layers), granite and
 * granitemoe (embedding, attention, residual and logit scales), smollm3
 * (no RoPE on every 4th layer), olmo2 (post norms only, q/k norms over the
 * whole projection, OLMo 3's window layers), ernie4_5, deepseek2 (multi-head
 * latent attention: one latent KV row per position read by every head, routed
 * experts in groups plus shared experts), gpt-oss (q/k/v/o biases, per-head
 * attention sinks, a 128-position window on even layers, YaRN, routed
 * experts with biases and a clamped SwiGLU), qwen35 and qwen35moe (Gated
 * DeltaNet layers with a per-sequence recurrent state, every 4th a gated
 * attention layer; qwen35moe: routed experts plus a gated shared expert),
 * qwen3next (the same with HF's grouped V heads and fused projections),
 * gemma4 (window and global layers of their own head sizes, head counts
 * and RoPE, q/k/v norms, the last layers reading an earlier layer's KV,
 * per-layer token embeddings, a per-layer output scale; text only),
 * granitehybrid (Mamba-2 layers with a per-sequence recurrent state beside
 * attention layers; dense or routed experts plus a shared expert),
 * nemotron_h (Mamba-2, attention and squared-ReLU MLP layers);
 * tied or untied
 * output. And the encoders bert (BERT, XLM-RoBERTa: embedding models and
 * rerankers) and nomic-bert, run only through model_embed (below).
 *
 * A sequence's attention state lives in an sl_kv_t. model_forward() appends
 * n tokens to it (positions kv_len .. kv_len+n-1) and returns logits.
 */
#ifndef SILICA_MODEL_H
#define SILICA_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"

typedef enum sl_arch {
    SL_ARCH_LLAMA = 0,
    SL_ARCH_QWEN2,
    SL_ARCH_QWEN3,
    SL_ARCH_QWEN3MOE,
    SL_ARCH_QWEN2MOE, /* Qwen1.5-MoE, Qwen2-57B-A14B: routed experts plus a gated shared expert */
    SL_ARCH_CHATGLM,  /* GLM-4-9B-chat, ChatGLM3 */
    SL_ARCH_GLM4,     /* GLM-4-0414 */
    SL_ARCH_PHI3,     /* Phi-3, Phi-3.5, Phi-4 (dense) */
    SL_ARCH_GEMMA,    /* Gemma 1 */
    SL_ARCH_GEMMA2,   /* Gemma 2 */
    SL_ARCH_GEMMA3,   /* Gemma 3 (text) */
    SL_ARCH_GLM4MOE,  /* GLM-4.5, GLM-4.5-Air */
    SL_ARCH_GRANITE,  /* IBM Granite 3.x: the llama layout with four scale factors */
    SL_ARCH_GRANITEMOE,
    SL_ARCH_SMOLLM3,  /* SmolLM3: the llama layout, every 4th layer without RoPE */
    SL_ARCH_OLMO2,    /* OLMo 2 / OLMo 3: norms after attention and FFN only, whole-row q/k norms */
    SL_ARCH_ERNIE4_5, /* ERNIE 4.5 dense: the llama graph, adjacent-pair RoPE on unpermuted rows */
    SL_ARCH_BERT, /* BERT / XLM-RoBERTa encoders (BGE embedding models, BGE rerankers): model_embed
                     only */
    SL_ARCH_NOMIC_BERT, /* nomic-embed-text: the bert encoder with RoPE, fused QKV and a SwiGLU FFN
                         */
    SL_ARCH_DEEPSEEK2, /* DeepSeek-V2 / V2-Lite / V3 / R1, Moonlight: MLA attention, routed + shared
                          experts */
    SL_ARCH_GPT_OSS,   /* OpenAI gpt-oss-20b / 120b: attention sinks, window layers, biased experts,
                          clamped SwiGLU */
    SL_ARCH_QWEN35,    /* Qwen3.5 / 3.6 dense: Gated DeltaNet layers, every 4th a gated attention layer */
    SL_ARCH_QWEN35MOE, /* Qwen3.5 / 3.6 MoE: the same layers, routed experts plus a gated shared expert */
    SL_ARCH_QWEN3NEXT, /* Qwen3-Next, Qwen3-Coder-Next: qwen35moe's layers with grouped V heads, fused b/a (and
                          in older files q/k/v/z) projections, plain NEOX RoPE */
    SL_ARCH_GEMMA4,    /* Gemma 4 (text): per-layer head sizes, window layers, KV shared by the last layers,
                          per-layer embeddings (E2B / E4B) */
    SL_ARCH_GRANITEHYBRID, /* IBM Granite 4.0 H: Mamba-2 layers and attention layers (head_count_kv 0 marks a Mamba-2
                              layer), dense FFN or experts plus a shared expert, Granite's scales */
    SL_ARCH_NEMOTRON_H,    /* NVIDIA Nemotron-H / Nemotron Nano 2: Mamba-2, attention (no RoPE) and squared-ReLU MLP
                              layers, each one sublayer */
    SL_ARCH_NEMOTRON_H_MOE /* NVIDIA Nemotron 3 Nano: nemotron_h with sigmoid-routed squared-ReLU experts and a shared
                              expert in place of the MLP layers */
} sl_arch_t;

/* How an embedding model turns its last hidden states into one vector per
 * sequence ({arch}.pooling_type, llama.cpp's numbering). RANK: the first
 * token's state through the classifier head (cls: dense + tanh, then
 * cls.output) gives n_cls_out relevance logits (a cross-encoder). */
typedef enum sl_pooling {
    SL_POOLING_NONE = 0, /* one vector per token: not served */
    SL_POOLING_MEAN = 1,
    SL_POOLING_CLS = 2,
    SL_POOLING_LAST = 3,
    SL_POOLING_RANK = 4,
} sl_pooling_t;

typedef struct sl_hparams {
    sl_arch_t arch;
    char arch_name[32];
    int n_vocab;
    int n_ctx_train;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;      /* key/value length per head */
    int n_ff;
    /* mixture of experts (qwen3moe; 0 experts for a dense model): each
     * token's FFN is the weighted sum of n_expert_used of n_expert experts
     * of n_ff_exp hidden units, chosen by the router's softmax top-k */
    int n_expert, n_expert_used, n_ff_exp;
    int n_ff_shexp;      /* the shared expert's hidden size (0: none) */
    bool shexp_gated;    /* qwen2moe: the shared expert weighted by sigmoid(ffn_gate_inp_shexp · x) */
    bool expert_sigmoid; /* router probabilities by sigmoid (glm4moe), not softmax */
    int n_dense_lead;    /* glm4moe: the first layers have a dense FFN */
    bool expert_norm;    /* the chosen weights renormalized to sum 1 */
    float expert_scale;  /* then multiplied by this (1 = none) */
    float norm_eps;
    sl_rope_t rope;    /* freq_factors points into the model's weights when present */
    float embd_scale;  /* token embeddings multiplied by this (gemma: sqrt(n_embd)) */
    float attn_scale;  /* attention scores multiplied by this (1/sqrt(head_dim) but for gemma3 27B) */
    bool gelu;         /* FFN gelu(gate) · up (gemma) instead of silu(gate) · up */
    /* sliding-window layers (gemma2/3): layer l attends to its last n_swa
     * positions when swa_period > 0 and l % swa_period < swa_period - 1
     * (with rope_swa when swa_rope); the others see everything */
    int n_swa, swa_period;
    bool swa_rope;      /* the window layers use rope_swa (gemma3), else rope */
    sl_rope_t rope_swa;
    float attn_softcap, logit_softcap; /* gemma2: x → cap · tanh(x / cap) on scores / logits (0: none) */
    float residual_scale; /* granite: attention and FFN outputs × this before each residual add */
    float logit_scale;    /* granite: logits divided by this */
    int nope_period;      /* smollm3: layer l has no RoPE when (l + 1) % nope_period == 0 (0: all have it) */
    /* deepseek2 multi-head latent attention: the cache holds one latent row
     * per position, [kv_lora_rank normed | rope rotated] (head_dim of the
     * one KV head), which every query head reads; n_nope + rope.n_rot is a
     * head's real key size, n_v_mla its value size */
    bool mla;
    int n_lora_q, n_lora_kv, n_nope, n_v_mla;
    int n_group, n_group_used; /* MoE: experts in n_group groups, the best n_group_used kept (0: no groups) */
    bool tied_output;  /* output.weight absent: token_embd is the output matrix */
    /* hybrid Gated DeltaNet models (qwen35, qwen35moe): layer l is a
     * linear-attention (DeltaNet) layer when (l + 1) % full_attn_interval
     * != 0, with a per-sequence recurrent state (a causal conv's last
     * ssm_conv - 1 inputs and an ssm_head_v × ssm_head_k matrix per value
     * head) instead of a KV cache; the others are gated attention layers
     * (the q projection doubled into q and a sigmoid output gate) */
    int full_attn_interval; /* 0: no DeltaNet layers */
    int ssm_conv;           /* conv kernel width ({arch}.ssm.conv_kernel) */
    int ssm_n_k, ssm_head_k; /* key heads (ssm.group_count) of ssm.state_size */
    int ssm_n_v, ssm_head_v; /* value heads (ssm.time_step_rank) of ssm.inner_size / ssm_n_v */
    int n_layer_kv;         /* layers with a KV cache (n_layer but for the DeltaNet ones) */
    /* any model with a per-sequence recurrent state (qwen35 family,
     * granitehybrid); mamba2: its recurrent layers are Mamba-2 layers,
     * whose n_group, d_state, heads and head_dim sit in ssm_n_k,
     * ssm_head_k, ssm_n_v and ssm_head_v (and which layers they are is the
     * model's own per-layer table, not full_attn_interval) */
    bool ssm_hybrid, mamba2;
    bool ssm_v_grouped;     /* qwen3next: value head h reads key head h / (n_v / n_k) (HF's order); qwen35's
                               converter tiles them: key head h mod n_k */
    /* encoders (bert): bidirectional attention over the whole input, absolute
     * position and token-type embeddings, LayerNorm after each residual add;
     * no KV cache, no logits: model_embed is their only forward pass */
    /* gemma4: layer l is a window layer when swa_layers[l] (model-owned;
     * NULL: the swa_period rule); head_dim is the global layers' head size,
     * head_dim_swa the window layers'; n_head, n_head_kv and n_ff are the
     * largest of any layer (each layer has its own). Only the first
     * n_layer_kv layers store K/V; a later layer reads the KV of the last
     * layer of its own kind below n_layer_kv. n_embd_pl: the per-layer
     * embedding size (0: none) */
    const bool *swa_layers;
    int head_dim_swa;
    int n_embd_pl;
    bool encoder;
    sl_pooling_t pooling; /* encoders: {arch}.pooling_type (default CLS) */
    int n_cls_out;        /* RANK: classifier outputs ({arch}.classifier.output_labels; default 1) */
    int n_token_types;    /* rows of token_types.weight (0: none) */
} sl_hparams_t;

typedef struct sl_model sl_model_t;
typedef struct sl_kv sl_kv_t;

/* Loads and validates (every tensor present with the shape the hparams
 * imply). Owns the gguf_file_t. */
sl_model_t *model_load(const char *path, char *err, size_t errlen);
void model_free(sl_model_t *m);
const sl_hparams_t *model_hparams(const sl_model_t *m);
/* The longest context a sequence will be run to. Models with LongRoPE
 * factors (phi3 128k) use their long factors when it exceeds the original
 * training context, their short ones otherwise (the default), as
 * llama.cpp chooses them; other models ignore it. Call before a forward
 * pass, not during one. */
void model_set_ctx(sl_model_t *m, int n_ctx);
const gguf_file_t *model_gguf(const sl_model_t *m);

/* KV cache for one sequence of up to n_ctx positions (F32, F16 or Q8_0 storage). */
sl_kv_t *model_kv_new(const sl_model_t *m, int n_ctx, sl_type_t kv_type, char *err, size_t errlen);
void model_kv_free(sl_kv_t *kv);
int model_kv_len(const sl_kv_t *kv);       /* positions filled */
int model_kv_capacity(const sl_kv_t *kv);
/* Keeps the first n positions. A hybrid model's recurrent state cannot
 * go back: after truncating to 0 < n < len, model_forward refuses until
 * the cache is truncated to 0 (which starts the sequence afresh). */
void model_kv_truncate(sl_kv_t *kv, int n);

/* Feeds tokens[0..n) at the next positions of kv. Writes n_vocab logits of
 * the last token to `logits`, or n × n_vocab when all_logits. Returns 0, or
 * -1 with a message (token id out of range, context full). */
int model_forward(sl_model_t *m, sl_pool_t *pool, sl_kv_t *kv, const int32_t *tokens, int n,
                  float *logits, bool all_logits, char *err, size_t errlen);

/* ---- paged KV cache and batched forward (many sequences per call) ----
 *
 * A pool holds n_blocks blocks of block_size positions of every layer's K and
 * V (F32, F16 or Q8_0). Which block holds which positions of a sequence is
 * the caller's business (the engine's block tables and prefix cache); the
 * model only reads and writes through the tables it is given. */
typedef struct sl_kv_pool sl_kv_pool_t;

/* Bytes of one block (K and V, all layers); 0 when the type or size is not
 * usable with this model (Q8_0 needs head_dim % 32 == 0). */
size_t model_kv_block_bytes(const sl_model_t *m, int block_size, sl_type_t type);
sl_kv_pool_t *model_kv_pool_new(const sl_model_t *m, int n_blocks, int block_size, sl_type_t type,
                                char *err, size_t errlen);
void model_kv_pool_free(sl_kv_pool_t *p);
int model_kv_pool_blocks(const sl_kv_pool_t *p);
int model_kv_pool_block_size(const sl_kv_pool_t *p);
sl_type_t model_kv_pool_type(const sl_kv_pool_t *p);
/* Copies positions 0 .. n_pos-1 of block src into block dst (copy-on-write
 * of a partly filled block shared by several sequences). */
void model_kv_pool_copy(sl_kv_pool_t *p, int dst, int src, int n_pos);
/* The raw bytes of block b: part 0 its K region, part 1 its V region (NULL
 * when the model stores V in the K rows, or b / part out of range); *bytes
 * gets the region's size (model_kv_block_bytes is the sum of the parts).
 * For a block no sequence's table names, whose memory the caller lends to
 * something else (the engine keeps recurrent-state checkpoints in them);
 * the bytes' layout is the caller's. */
void *model_kv_pool_block_data(sl_kv_pool_t *p, int b, int part, size_t *bytes);

/* One sequence's part of a batch: tokens[0..n_tok) go to positions n_past ..
 * n_past+n_tok-1; blocks[i] is the pool block holding positions
 * i*block_size .. (i+1)*block_size-1 and must cover every position up to the
 * last new one. logits: NULL (none wanted), n_vocab floats for the last
 * token, or n_tok × n_vocab with all_logits. */
typedef struct sl_batch_seq {
    const int32_t *tokens;
    int n_tok;
    int n_past;
    const int32_t *blocks;
    float *logits;
    bool all_logits;
    /* hybrid models (model_state_floats > 0): the sequence's recurrent
     * state, model_state_floats floats owned by the caller, holding what
     * the tokens before n_past left in it; zeroed by the model when n_past
     * is 0, updated in place. NULL for other models. */
    float *state;
} sl_batch_seq_t;

/* Floats of one sequence's recurrent state (every DeltaNet or Mamba-2
 * layer's conv inputs and state matrices); 0 for a model without one. The state after
 * n tokens cannot be rebuilt from the KV cache: it is the whole history. */
size_t model_state_floats(const sl_model_t *m);

/* Runs all tokens of all sequences in one pass: each weight matrix is
 * multiplied once with n = sum of n_tok rows; attention is per sequence
 * over its own blocks. Numerically the same as feeding each sequence alone
 * (up to float summation order). The caller bounds the total tokens (the
 * scratch grows to it). Returns 0 or -1 with a message. */
int model_forward_batch(sl_model_t *m, sl_pool_t *pool, sl_kv_pool_t *kv, const sl_batch_seq_t *seqs,
                        int n_seqs, char *err, size_t errlen);

/* ---- embeddings and rerank scores (encoder models) ----
 *
 * One sequence of an embedding batch: token ids (with the model's special
 * tokens already in place, e.g. [CLS] ... [SEP]) and optional token types
 * (segment ids: 0 for the first text of a pair, 1 for the second; NULL:
 * all 0). */
typedef struct sl_embed_seq {
    const int32_t *tokens;
    const int32_t *types;
    int n_tok;
} sl_embed_seq_t;

/* Floats model_embed writes per sequence: n_embd, or n_cls_out for RANK
 * pooling; 0 when the model is not an embedding model. */
int model_embed_dim(const sl_model_t *m);
/* The longest sequence model_embed takes (the position table's length). */
int model_embed_max_tokens(const sl_model_t *m);

/* Runs every sequence whole (each token attends to all tokens of its own
 * sequence), all of them in one batch (each weight matrix multiplied once
 * over the sum of their tokens), and pools each sequence's last hidden
 * states as hp->pooling says into out[i × dim .. (i+1) × dim) — raw, not
 * normalized (RANK: the classifier's logits). Numerically the same as one
 * sequence at a time. The caller bounds the total tokens (the scratch grows
 * to it). Returns 0, or -1 with a message (not an embedding model, a
 * sequence empty or longer than model_embed_max_tokens, a token id or type
 * out of range). */
int model_embed(sl_model_t *m, sl_pool_t *pool, const sl_embed_seq_t *seqs, int n_seqs, float *out, char *err,
                size_t errlen);

#endif
