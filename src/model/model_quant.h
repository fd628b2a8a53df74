/*
 * model_quant.h — choosing the storage type of each tensor of a model (a
 * "file type" such as q8_0 or the q4_K_M mix, with llama.cpp's rules) and
 * converting a GGUF model between types. Used by `silica quantize` and
 * `silica mkmodel`.
 *
 * Rules (as llama.cpp's llama_tensor_get_type for these file types, dense
 * models):
 *   - 1-D tensors (norms, biases, rope_freqs) stay F32; f32 / f16 / bf16
 *     give every 2-D weight that type, and so do the pure q4_K / q5_K;
 *   - the quantized file types: the output matrix (output.weight, or
 *     token_embd.weight when the output is tied) is q6_K (q8_0 for q8_0,
 *     and q8_0 when its rows are not whole blocks of the base type);
 *   - q2_K: attn_v q3_K (q4_K with 4+ query heads per KV head), ffn_down and
 *     attn_output q3_K; q3_K_M: attn_v q5_K in layers 0-1 then q4_K,
 *     ffn_down q5_K in the first 1/16 of the layers then q4_K, attn_output
 *     q4_K; q3_K_L: attn_v, ffn_down and attn_output q5_K; q4_K_S: attn_v
 *     q5_K in layers 0-3, ffn_down q5_K in the first eighth; q4_K_M /
 *     q5_K_M: attn_v and ffn_down q6_K in the layers use_more_bits() picks
 *     (first and last eighth, every third in between); iq4_nl / iq4_xs:
 *     attn_v q5_K with 4+ query heads per KV head, ffn_down q5_K in the
 *     first eighth (llama.cpp's rules without an importance matrix);
 *     q3_K_S, q5_K_S, q6_K and the 32-blocks: the base type elsewhere;
 *   - the grid i-quant file types (llama.cpp's, as without an importance
 *     matrix): main type iq1_s, iq1_m, iq2_xxs, iq2_xs, iq2_xs (sic: the
 *     iq2_s file type), iq2_s (iq2_m), iq3_xxs, iq3_s (iq3_xs, iq3_s,
 *     iq3_m); the output matrix q5_K for the 1-2 bit ones and iq3_xxs; an
 *     untied token_embd q2_K (iq1_*, iq2_xxs, iq2_xs) or iq3_s (iq2_s,
 *     iq2_m, iq3_xxs). iq1_s / iq1_m / iq2_xxs / iq2_xs / iq2_s / iq2_m:
 *     attn_v q4_K with 4+ query heads per KV head, else q2_K (iq3_s for
 *     iq2_s / iq2_m), ffn_down in the first eighth of the layers the same
 *     q2_K / iq3_s, attn_output iq2_xxs (iq1_*) or iq3_s (iq2_s / iq2_m);
 *     iq3_xxs: attn_v q4_K (4+ query heads per KV head) or iq3_s, attn_q /
 *     attn_k iq2_s, ffn_down q4_K in the first eighth then q3_K,
 *     attn_output iq3_s; iq3_xs: attn_v q4_K with 4+ query heads per KV
 *     head, attn_q / attn_k iq3_xxs, ffn_gate / ffn_up iq3_xxs between the
 *     first and the last eighth; iq3_s: attn_v q4_K with 4+ query heads per
 *     KV head; iq3_m: attn_v, attn_output, attn_qkv q4_K, ffn_down q4_K in
 *     the first eighth;
 *   - mxfp4_moe (gpt-oss's files): the expert stacks (*_exps) mxfp4,
 *     every other matrix q8_0, the output matrix included;
 *   - a row length that is not a multiple of the block size falls back:
 *     q2_K / q3_K → q4_0, iq4_xs and the grid i-quants → iq4_nl, q4_K →
 *     q5_0, q5_K → q5_1, q6_K → q8_0, and any 32-block type → f16.
 */
#ifndef SILICA_MODEL_QUANT_H
#define SILICA_MODEL_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"
#include "kernels/quant.h"

typedef struct model_qplan {
    sl_type_t base;   /* type of ordinary weights */
    bool mixed;       /* llama.cpp's per-tensor rules of the file type */
    int ftype;        /* llama_ftype number written to general.file_type */
    int n_layer;
    int n_gqa;        /* query heads per KV head */
    bool tied;        /* no output.weight: token_embd is the output matrix */
    char name[16];    /* canonical name, e.g. "q4_K_M" */
} model_qplan_t;

/* Parses a file-type name (case-insensitive): f32 f16 bf16 q8_0 q4_0 q4_1
 * q5_0 q5_1 q2_k q3_k_s q3_k_m q3_k_l q4_k q4_k_s q4_k_m q5_k q5_k_s q5_k_m
 * q6_k iq4_nl iq4_xs iq1_s iq1_m iq2_xxs iq2_xs iq2_s iq2_m iq3_xxs iq3_xs
 * iq3_s iq3_m mxfp4_moe. Returns 0 or -1 with a message. */
int model_qplan_init(model_qplan_t *p, const char *type_name, int n_layer, int n_gqa, bool tied, char *err,
                     size_t errlen);

/* The type a tensor named `name` with n_dims dims and rows of n_in elements
 * gets under the plan. */
sl_type_t model_qplan_type(const model_qplan_t *p, const char *name, uint32_t n_dims, int64_t n_in);

/* Converts n_rows rows of n_in floats to type t into dst (n_rows ×
 * sl_row_size(t, n_in) bytes), split over the pool. Returns 0 or -1. */
int model_quantize_rows(sl_pool_t *pool, sl_type_t t, const float *src, int64_t n_in, int64_t n_rows,
                        void *dst);

/* `silica quantize IN OUT TYPE`: copies every metadata key of IN (setting
 * general.file_type), converts each 2-D weight by the plan, keeps the other
 * tensors as they are. Returns 0 or -1 with a message. */
int model_quantize_file(const char *in_path, const char *out_path, const char *type_name, sl_pool_t *pool,
                        bool verbose, char *err, size_t errlen);

#endif
