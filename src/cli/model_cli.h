/*
 * model_cli.h — what the model-running subcommands (logits, generate, bench)
 * share: the options naming a model and its input, turning them into a
 * loaded model, a pool and prompt token ids, and describing the machine;
 * and the tokenizer loading of tokenize / detokenize.
 */
#ifndef SILICA_MODEL_CLI_H
#define SILICA_MODEL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"
#include "kernels/quant.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

typedef struct mcli_opts {
    const char *model;
    const char *prompt;   /* --prompt TEXT: tokenized with the model's tokenizer */
    int threads;          /* -t; 0 = all cores */
    sl_type_t kv_type;    /* --kv-type f32|f16 */
    int32_t *ids;         /* positional token ids (then the prompt's, when given) */
    size_t n_ids;
} mcli_opts_t;

/* Tries to consume the option at argv[*i] (and its value). Returns 1 when
 * consumed, 0 when the option is not a common one, -1 on a bad value (a
 * message has been printed). Bare numbers are collected as token ids. */
int mcli_parse_common(mcli_opts_t *o, int argc, char **argv, int *i, const char *cmd);

/* Loads the model, makes the pool and resolves the prompt into o->ids.
 * Prints a message and returns -1 on failure. */
int mcli_setup(mcli_opts_t *o, sl_model_t **model, sl_pool_t **pool, const char *cmd);
void mcli_free(mcli_opts_t *o);

int mcli_n_cores(void);
/* "AMD EPYC 7B13" or "unknown" */
void mcli_cpu_model(char *buf, size_t len);

/* The tokenizer of a GGUF file (model), or of a Hugging Face tokenizer
 * directory when hfdir is given. NULL with a message in err on failure;
 * free with tok_free. */
sl_tok_t *mcli_load_tokenizer(const char *model, const char *hfdir, char *err, size_t errlen);

/* Strict integer / float parsing for option values. */
bool mcli_int(const char *s, long lo, long hi, long *out);
bool mcli_float(const char *s, double *out);

#endif
