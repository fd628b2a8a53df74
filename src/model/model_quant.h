/*
 * model_quant.h — choosing the storage type of each tensor of a model (a
 * "file type" such as q8_0 or the q4_K_M mix, with llama.cpp's rules) and
 * converting a GGUF model between types. Used by `silica quantize` and
 * `silica mkmodel`.
 *
 * Rules (as llama.cpp's llama_tensor_get_type for these file types):
 *   - 1-D tensors (norms, biases, rope_freqs) stay F32;
 *   - plain types (f16, q8_0, q4_0, ...): every 2-D weight gets that type;
 *   - q4_K_M / q5_K_M: q4_K / q5_K for most weights; q6_K for output.weight
 *     (or token_embd.weight when the output is tied) and for attn_v / ffn_down
 *     of the layers use_more_bits() picks (first and last eighth, every third
 *     in between);
 *   - a row length that is not a multiple of the block size falls back:
 *     q4_K → q5_0, q5_K → q5_1, q6_K → q8_0, and any 32-block type → f16.
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
    bool k_mix;       /* q4_K_M / q5_K_M rules */
    int ftype;        /* llama_ftype number written to general.file_type */
    int n_layer;
    bool tied;        /* no output.weight: token_embd is the output matrix */
    char name[16];    /* canonical name, e.g. "q4_K_M" */
} model_qplan_t;

/* Parses a file-type name (case-insensitive): f32 f16 bf16 q8_0 q4_0 q4_1
 * q5_0 q5_1 q4_k q5_k q6_k q4_k_m q5_k_m. Returns 0 or -1 with a message. */
int model_qplan_init(model_qplan_t *p, const char *type_name, int n_layer, bool tied, char *err,
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
