/*
 * fim.h — the token layout of a fill-in-the-middle prompt (pure; unit-tested).
 *
 * PSM (prefix, suffix, middle; the default, what Qwen2.5-Coder, DeepSeek-Coder,
 * StarCoder and Code Llama are trained on):
 *     [BOS] FIM_PRE prefix… FIM_SUF suffix… FIM_MID
 * SPM (suffix first, llama.cpp's --spm-infill layout):
 *     [BOS] FIM_SUF suffix… FIM_PRE prefix… FIM_MID
 * The model then writes the middle and ends it with an end-of-generation token.
 * The three FIM ids come from the GGUF (tokenizer.ggml.fim_*_token_id) or are
 * recognised by their text (tokenizer.h: tok_fim_pre/suf/mid), e.g.
 *     Qwen2.5-Coder   <|fim_prefix|> <|fim_suffix|> <|fim_middle|>
 *     DeepSeek-Coder  <｜fim▁begin｜> <｜fim▁hole｜>  <｜fim▁end｜>
 *     StarCoder       <fim_prefix>   <fim_suffix>   <fim_middle>
 *     Code Llama      ▁<PRE>         ▁<SUF>         ▁<MID>
 */
#ifndef SILICA_SERVER_FIM_H
#define SILICA_SERVER_FIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fim_ids {
    int32_t pre, suf, mid; /* all >= 0 for a model that supports FIM */
    int32_t bos;           /* >= 0: put first (the model adds BOS to its inputs) */
} fim_ids_t;

static inline bool fim_supported(const fim_ids_t *f) {
    return f->pre >= 0 && f->suf >= 0 && f->mid >= 0;
}

/* Builds the prompt into *out (malloc'd, caller frees) and *n_out. Returns
 * 0, or -1 when the model has no FIM ids or memory runs out. */
int fim_layout(const fim_ids_t *f, bool spm, const int32_t *prefix, size_t n_prefix,
               const int32_t *suffix, size_t n_suffix, int32_t **out, size_t *n_out);

#endif
