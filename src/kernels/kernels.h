/*
 * kernels.h — the math the forward pass is made of.
 *
 * Every kernel has a scalar reference; SIMD variants (kernels/avx2,
 * kernels/avx512, kernels/neon) are chosen once by sl_kernels_init() from the
 * CPU's features and are tested against the scalar one.
 *
 * Shapes are in elements; matrices are row-major. A weight matrix W of
 * n_out rows × n_in columns is n_out rows of sl_row_size(type, n_in) bytes,
 * exactly as a GGUF tensor with ne[0] = n_in, ne[1] = n_out lies in the file.
 */
#ifndef SILICA_KERNELS_H
#define SILICA_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"
#include "kernels/quant.h"

typedef enum sl_isa {
    SL_ISA_SCALAR = 0,
    SL_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    SL_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ (+VNNI, +BF16 where present) */
    SL_ISA_NEON = 3,
} sl_isa_t;

/* Detects the CPU once and selects kernels (idempotent, thread-safe).
 * SILICA_ISA=scalar|avx2|avx512 in the environment caps the choice. */
void sl_kernels_init(void);
sl_isa_t sl_kernels_isa(void);
const char *sl_isa_name(sl_isa_t isa);
/* The current level as it runs here: its name, with "+avx-vnni" when the
 * AVX2 level carries the AVX-VNNI kernels (benchmarks print this). */
const char *sl_kernels_desc(void);
bool sl_isa_supported(sl_isa_t isa); /* this CPU can run it */
/* Forces a level (tests use it to compare a SIMD path with scalar). Returns
 * the previous one. Not thread-safe: call between kernel invocations. */
sl_isa_t sl_kernels_set_isa(sl_isa_t isa);

/* y[t][o] = sum_i W[o][i] * x[t][i]   for t < n_tok, o < n_out.
 * x is n_tok × n_in floats, y is n_tok × n_out floats. The activations are
 * quantized to the weight type's vec_dot_type where that is the fast path.
 * Splits the work over the pool (pool may be NULL: single-threaded). */
void sl_matmul(sl_pool_t *pool, const void *w, sl_type_t wtype, int64_t n_in, int64_t n_out,
               const float *x, int64_t n_tok, float *y);
/* Several matrices over the same input x (n_tok × n_in): y_i = x · W_iᵀ
 * for each (n_tok × n_out_i). Where their weight types read the same
 * activation layout, x is quantized once and all of them run in one pool
 * job (fewer barriers, e.g. q/k/v or gate/up); otherwise one by one. */
typedef struct sl_mm {
    const void *w;
    sl_type_t type;
    int64_t n_out;
    float *y;
    bool x8; /* w is in the x8 panel layout (sl_x8_pack) */
} sl_mm_t;
void sl_matmul_multi(sl_pool_t *pool, const sl_mm_t *mats, int n_mats, int64_t n_in, const float *x,
                     int64_t n_tok);

/* Weights repacked once at load ("x8"): rows in panels of 8, block by
 * block, the layout every matmul path of the type reads directly — decode
 * dots 8 rows against one broadcast activation, prefill and batches run
 * the panel GEMM with no per-call unpacking. A panel holds the same bytes
 * as its 8 GGUF rows; a last panel of n_out % 8 rows is padded with zero
 * rows. Available where sl_x8_supported: the ISA has the kernels (AVX2 and
 * up) and whole blocks (n_in % 32 == 0; % 256 for the k-quants); q8_0,
 * q5_0, q4_0, q5_1, q4_1, q4_K, q5_K and q6_K. */
bool sl_x8_supported(sl_type_t t, int64_t n_in, int64_t n_out);
/* Bytes of the x8 copy of an n_out-row matrix (whole panels; 0 if none). */
size_t sl_x8_bytes(sl_type_t t, int64_t n_in, int64_t n_out);
/* Packs GGUF rows [r0, r1) of the matrix src into the same rows of dst
 * (sl_x8_bytes); r0 is a multiple of 8, r1 too unless it is n_out, whose
 * last panel is then completed with zero rows. */
void sl_x8_pack(sl_type_t t, int64_t n_in, const void *src, void *dst, int64_t r0, int64_t r1);
/* Row r of an x8 matrix back in GGUF block form (sl_row_size bytes). */
void sl_x8_row(sl_type_t t, int64_t n_in, const void *w, int64_t r, void *row);
/* sl_matmul over an x8 matrix. */
void sl_matmul_x8(sl_pool_t *pool, const void *w, sl_type_t wtype, int64_t n_in, int64_t n_out,
                  const float *x, int64_t n_tok, float *y);

/* Dot product of one weight row (type t, n elements) with a row of
 * activations already converted to traits(t)->vec_dot_type. */
float sl_vec_dot(sl_type_t t, int64_t n, const void *wrow, const void *xq);

/* ---- element-wise and small ops (scalar is fine; they are not the bottleneck) ---- */
void sl_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps);
/* LayerNorm of one row of n floats (BERT-style encoders):
 *   out[i] = (x[i] - mean) / sqrt(var + eps) * w[i] + b[i]
 * with the mean and the biased variance (divided by n) taken in double.
 * w == NULL means 1, b == NULL means 0; out may be x (in place). */
void sl_layernorm(float *out, const float *x, const float *w, const float *b, int64_t n, float eps);
void sl_softmax(float *x, int64_t n);
void sl_silu(float *x, int64_t n);
void sl_gelu(float *x, int64_t n); /* tanh approximation (ggml_gelu) */
/* Exact GELU, x · 0.5 · (1 + erf(x / √2)), in place: Hugging Face's "gelu"
 * (BERT), where sl_gelu is "gelu_new"/"gelu_pytorch_tanh". */
void sl_gelu_erf(float *x, int64_t n);
/* out[i] = silu(gate[i]) * up[i] */
void sl_swiglu(float *out, const float *gate, const float *up, int64_t n);
/* out = gelu(gate) * up (tanh GELU, as ggml_geglu: the Gemma FFN) */
void sl_geglu(float *out, const float *gate, const float *up, int64_t n);
/* gpt-oss's clamped SwiGLU (ggml_swiglu_oai): with g = min(gate, limit) and
 * u = clamp(up, -limit, limit), out = g · sigmoid(alpha · g) · (u + 1).
 * gpt-oss: alpha 1.702, limit 7. out may be gate. */
void sl_swiglu_oai(float *out, const float *gate, const float *up, int64_t n, float alpha,
                   float limit);
/* Index of the largest value of x[0..n) (the first on ties), NaNs never
 * chosen; -1 when n <= 0 or every value is NaN. Greedy decoding runs it
 * over a whole vocabulary per token, on one thread. */
int64_t sl_argmax(const float *x, int64_t n);

/* RoPE. */
typedef enum sl_rope_style { SL_ROPE_NORM = 0, SL_ROPE_NEOX = 2 } sl_rope_style_t;
typedef enum sl_rope_scaling { SL_ROPE_SCALING_NONE = 0, SL_ROPE_SCALING_LINEAR, SL_ROPE_SCALING_YARN } sl_rope_scaling_t;
typedef struct sl_rope {
    sl_rope_style_t style;  /* NORM: pairs (2i, 2i+1) (llama); NEOX: pairs (i, i + n_rot/2) (qwen2/3) */
    int n_rot;              /* rotated dims per head (<= head_dim) */
    float freq_base;        /* theta */
    float freq_scale;       /* 1 / linear factor */
    sl_rope_scaling_t scaling;
    /* YaRN parameters (as ggml's rope_yarn). */
    float ext_factor, attn_factor, beta_fast, beta_slow;
    int n_ctx_orig;
    const float *freq_factors; /* llama3 `rope_freqs` (n_rot/2 divisors) or NULL */
} sl_rope_t;
/* Rotates x: n_heads heads of head_dim floats, at position pos. */
void sl_rope_apply(float *x, int n_heads, int head_dim, int32_t pos, const sl_rope_t *r);

/* Causal multi-head attention with grouped KV heads (GQA) over a KV cache.
 *   q:   n_tok × n_head × head_dim floats (already rotated)
 *   k,v: n_head_kv blocks, kv_head_stride elements apart; block h holds
 *        positions 0 .. pos0+n_tok-1 of head_dim elements each (F32 or F16)
 *   out: n_tok × n_head × head_dim floats
 * Query token t sits at position pos0 + t and attends to keys 0 .. pos0+t;
 * query head h reads KV head h / (n_head / n_head_kv). scale is usually
 * 1/sqrt(head_dim). scratch holds sl_pool_size(pool) × (pos0 + n_tok) floats.
 * Work is split over (token, head) pairs. */
typedef struct sl_attn {
    int n_tok, n_head, n_head_kv, head_dim;
    int pos0;
    const float *q;
    const void *k, *v;
    sl_type_t kv_type;
    size_t kv_head_stride; /* elements */
    float scale;
    float *out;
    float *scratch;
} sl_attn_t;
void sl_attention(sl_pool_t *pool, const sl_attn_t *a);

/* Paged attention over a batch of tokens from many sequences, causal by
 * default, bidirectional with tok_keys (encoders).
 * The KV cache is a pool of blocks of block_size positions; in one layer,
 * block b's row of KV head h at slot p lies at
 *   k + b * block_stride + (h * block_size + p) * row_bytes
 * (same for v). Token t of the batch sits at position tok_pos[t] of its
 * sequence, whose block table is tok_blocks[t] (position j is in block
 * tok_blocks[t][j / block_size]), and attends to keys 0 .. tok_pos[t] —
 * with window > 0 (sliding-window layers), to the last `window` of them
 * only: tok_pos[t] - window + 1 .. tok_pos[t].
 * Non-causal (tok_keys != NULL): token t attends to keys 0 .. tok_keys[t]-1
 * of its block table whatever its position — an encoder gives every token
 * of a sequence the sequence's length, so each sees the whole sequence.
 * tok_keys[t] >= 1, those keys must be in the cache, and window must be 0
 * (asserted; a bidirectional window is not implemented). Runs of tokens
 * with different tok_keys values are never tiled together, so the value
 * is honoured per token.
 * kv_type is F32, F16 or Q8_0 (head_dim a multiple of 32); row_bytes =
 * sl_row_size(kv_type, head_dim). q and out are n_tok × n_head × head_dim.
 * scratch holds sl_pool_size(pool) × sl_attention_paged_scratch(n_head,
 * n_head_kv, head_dim) floats, whatever the number of keys (max_keys is
 * not used; tok_keys values need no bound from it). Work is split over
 * (KV head, run of up to ~64/group consecutive tokens of one sequence). */
typedef struct sl_attn_paged {
    int n_tok, n_head, n_head_kv, head_dim;
    const float *q;
    float *out;
    const int32_t *tok_pos;
    const int32_t *const *tok_blocks;
    const void *k, *v;
    size_t block_stride; /* bytes */
    int block_size;
    size_t row_bytes;
    sl_type_t kv_type;
    float scale;
    float *scratch;
    int max_keys;
    int window;    /* 0: every earlier key */
    float softcap; /* > 0: scores (after scale) become softcap · tanh(score / softcap) (Gemma 2) */
    const int32_t *tok_keys; /* NULL: causal; else n_tok key counts (non-causal, window 0) */
    /* NULL, or n_head attention-sink logits (gpt-oss): query head h's
     * softmax denominator gains exp(sinks[h]) — a key whose value is zero,
     * so the weights of the real keys sum to less than 1. Not scaled by
     * `scale` nor soft-capped (as ggml_soft_max_ext's sinks). */
    const float *sinks;
} sl_attn_paged_t;
void sl_attention_paged(sl_pool_t *pool, const sl_attn_paged_t *a);
/* Floats of scratch one thread of sl_attention_paged needs. */
size_t sl_attention_paged_scratch(int n_head, int n_head_kv, int head_dim);

#endif
