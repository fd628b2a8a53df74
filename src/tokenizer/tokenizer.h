/*
 * tokenizer.h — text <-> token ids, identical to each model's reference
 * tokenizer.
 *
 * All data comes from the GGUF `tokenizer.ggml.*` keys (model, pre, tokens,
 * token_type, scores, merges, bos/eos/eot/... ids, add_bos_token,
 * add_eos_token, add_space_prefix). Supported models: "gpt2" (byte-level BPE
 * with the pre-tokenizer regexes named by tokenizer.ggml.pre), "llama"
 * (SentencePiece BPE with byte fallback), "bert" (WordPiece), "t5" (Unigram).
 *
 * A loaded sl_tok_t is immutable and may be shared by any number of threads;
 * every function below is thread-safe on it. The tokenizer copies what it
 * needs: the gguf_file_t may be closed after tok_load().
 */
#ifndef SILICA_TOKENIZER_H
#define SILICA_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "gguf/gguf.h"

typedef struct sl_tok sl_tok_t;

/* Token types as stored in tokenizer.ggml.token_type (llama.cpp's values). */
enum {
    TOK_TYPE_UNDEFINED = 0,
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6,
};

/* Loads and validates the tokenizer of a GGUF file. NULL + message on any
 * problem (unknown model or pre-tokenizer, ids out of range, array lengths
 * that disagree, malformed merges). */
sl_tok_t *tok_load(const gguf_file_t *f, char *err, size_t errlen);
void tok_free(sl_tok_t *t);

int tok_n_vocab(const sl_tok_t *t);

/* Encodes text (len bytes, need not be NUL-terminated, may hold invalid
 * UTF-8). *ids is malloc'd (caller frees), *n_ids its count.
 * add_special: add BOS/EOS as the model's add_bos/add_eos flags say.
 * parse_special: recognise the text of control and user-defined tokens
 * (longest match); off by default so user text cannot inject control tokens
 * (user-defined "added" tokens are still matched, like the reference).
 * Returns 0 or -1 with a message. */
int tok_encode(const sl_tok_t *t, const char *text, size_t len, bool add_special,
               bool parse_special, int32_t **ids, size_t *n_ids, char *err, size_t errlen);

/* Appends the text of ids to out. render_special: include the text of
 * control tokens (otherwise they render as nothing). Returns 0 or -1 (an id
 * out of range or out of memory). Invalid UTF-8 is passed through as bytes;
 * use the streaming detokenizer for display-safe output. */
int tok_decode(const sl_tok_t *t, const int32_t *ids, size_t n, bool render_special, sl_buf_t *out);

/* The raw vocab entry of id (as stored: byte-unicode for gpt2, with ▁ for
 * SentencePiece), NULL if out of range. Not NUL-terminated in general. */
const char *tok_token_text(const sl_tok_t *t, int32_t id, size_t *len);
/* The token's type (TOK_TYPE_*), or -1 if out of range. */
int tok_token_type(const sl_tok_t *t, int32_t id);
/* The bytes id decodes to (byte tokens and gpt2 byte-unicode mapped back,
 * ▁ -> space for SPM) appended to out; render_special as in tok_decode. */
int tok_token_to_piece(const sl_tok_t *t, int32_t id, bool render_special, sl_buf_t *out);

int32_t tok_bos(const sl_tok_t *t); /* -1 if none */
int32_t tok_eos(const sl_tok_t *t);
int32_t tok_eot(const sl_tok_t *t);
int32_t tok_pad(const sl_tok_t *t);
int32_t tok_unk(const sl_tok_t *t);
int32_t tok_sep(const sl_tok_t *t); /* separator ([SEP], </s>); -1 if none */
int32_t tok_fim_pre(const sl_tok_t *t); /* fill-in-the-middle ids; -1 if none */
int32_t tok_fim_suf(const sl_tok_t *t);
int32_t tok_fim_mid(const sl_tok_t *t);
bool tok_add_bos(const sl_tok_t *t);
bool tok_add_eos(const sl_tok_t *t);
/* End of generation: eos, eot, eom and the like (<|im_end|>, <|eot_id|>, ...). */
bool tok_is_eog(const sl_tok_t *t, int32_t id);
/* Control (or other special-type) token: not normal text. */
bool tok_is_control(const sl_tok_t *t, int32_t id);
/* Exact vocab entry (raw stored text) or -1. */
int32_t tok_find(const sl_tok_t *t, const char *text, size_t len);
/* "gpt2", "llama", "bert", "t5" and the pre-tokenizer name ("" if none). */
const char *tok_model_name(const sl_tok_t *t);
const char *tok_pre_name(const sl_tok_t *t);

/* Streaming detokenizer: push ids one at a time, get text that is complete
 * UTF-8; bytes of a character split across tokens are held back until the
 * character completes. Bound to t (t must outlive it). Not thread-safe
 * itself: one per sequence. */
typedef struct sl_detok sl_detok_t;
sl_detok_t *detok_new(const sl_tok_t *t, bool render_special);
/* Appends complete text to out; returns 0 or -1 (id out of range / OOM). */
int detok_push(sl_detok_t *d, int32_t id, sl_buf_t *out);
/* At the end: leftover incomplete bytes are appended as U+FFFD. */
int detok_flush(sl_detok_t *d, sl_buf_t *out);
void detok_free(sl_detok_t *d);

#endif
