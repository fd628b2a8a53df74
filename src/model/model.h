/*
 * model.h — a loaded model (hyper-parameters + mmapped weights from GGUF) and
 * its forward pass.
 *
 * Architectures: llama (Llama 2/3, Mistral, DeepSeek-Coder v1), qwen2 (q/k/v
 * biases), qwen3 (q/k RMS norm); tied or untied output. Weights stay in the
 * file mapping; nothing is copied except what a kernel needs converted.
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

typedef enum sl_arch { SL_ARCH_LLAMA = 0, SL_ARCH_QWEN2, SL_ARCH_QWEN3 } sl_arch_t;

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
    float norm_eps;
    sl_rope_t rope;    /* freq_factors points into the model's weights when present */
    bool tied_output;  /* output.weight absent: token_embd is the output matrix */
} sl_hparams_t;

typedef struct sl_model sl_model_t;
typedef struct sl_kv sl_kv_t;

/* Loads and validates (every tensor present with the shape the hparams
 * imply). Owns the gguf_file_t. */
sl_model_t *model_load(const char *path, char *err, size_t errlen);
void model_free(sl_model_t *m);
const sl_hparams_t *model_hparams(const sl_model_t *m);
const gguf_file_t *model_gguf(const sl_model_t *m);

/* KV cache for one sequence of up to n_ctx positions (F32 or F16 storage). */
sl_kv_t *model_kv_new(const sl_model_t *m, int n_ctx, sl_type_t kv_type, char *err, size_t errlen);
void model_kv_free(sl_kv_t *kv);
int model_kv_len(const sl_kv_t *kv);       /* positions filled */
int model_kv_capacity(const sl_kv_t *kv);
void model_kv_truncate(sl_kv_t *kv, int n); /* keep the first n positions */

/* Feeds tokens[0..n) at the next positions of kv. Writes n_vocab logits of
 * the last token to `logits`, or n × n_vocab when all_logits. Returns 0, or
 * -1 with a message (token id out of range, context full). */
int model_forward(sl_model_t *m, sl_pool_t *pool, sl_kv_t *kv, const int32_t *tokens, int n,
                  float *logits, bool all_logits, char *err, size_t errlen);

#endif
