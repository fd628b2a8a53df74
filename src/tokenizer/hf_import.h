/*
 * hf_import.h — Hugging Face tokenizer.json (+ tokenizer_config.json) to GGUF
 * tokenizer.ggml.* keys, written the way llama.cpp's convert_hf_to_gguf.py
 * writes them, so that our files are the ecosystem's layout:
 *
 *   byte-level BPE -> model "gpt2", pre from the pre-tokenizer / family
 *     (qwen2, llama-bpe, deepseek-v3, ...), tokens as byte-unicode strings,
 *     merges "a b", token_type 1 normal / 3 control / 4 user-defined;
 *   SentencePiece BPE -> model "llama", tokens with ▁, scores, token_type
 *     1 normal / 2 unknown / 3 control / 4 user-defined / 6 byte;
 *   WordPiece -> model "bert".
 *
 * Also bos/eos/eot/padding/unknown ids, add_bos_token/add_eos_token/
 * add_space_prefix, fim ids when recognisable, and tokenizer.chat_template
 * from tokenizer_config.json. tokenizer_config_json_path may be NULL.
 */
#ifndef SILICA_TOKENIZER_HF_IMPORT_H
#define SILICA_TOKENIZER_HF_IMPORT_H

#include <stddef.h>

#include "gguf/gguf.h"

/* Returns 0, or -1 with a message. The vocabulary size written (number of
 * tokens, padded like the converter when added tokens leave holes) is what
 * the model's embedding must match; read it back with tok_hf_vocab_size. */
int tok_hf_to_gguf(gguf_writer_t *w, const char *tokenizer_json_path,
                   const char *tokenizer_config_json_path, char *err, size_t errlen);

/* Number of tokens tok_hf_to_gguf would write for this tokenizer.json, or -1
 * with a message. */
long tok_hf_vocab_size(const char *tokenizer_json_path, char *err, size_t errlen);

/* Builds a tokenizer straight from a Hugging Face tokenizer directory
 * (tokenizer.json, tokenizer_config.json if present, config.json if
 * present) by way of the GGUF keys above, written to a temporary file.
 * NULL + message on failure. */
struct sl_tok;
struct sl_tok *tok_load_hf_dir(const char *dir, char *err, size_t errlen);

#endif
