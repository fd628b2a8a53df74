/*
 * structured.h — structured output on the server side (structured.c): the
 * per-model grammar vocabulary and a request's grammar (docs/server.md,
 * "Structured output").
 */
#ifndef SILICA_SERVER_STRUCTURED_H
#define SILICA_SERVER_STRUCTURED_H

#include "engine/engine.h"
#include "grammar/grammar.h"
#include "server/oai.h"
#include "tokenizer/tokenizer.h"

/* The model's vocabulary as grammar byte strings: n_vocab entries (the
 * model's; ids past the tokenizer's are empty), each the bytes the token
 * decodes to in the output (tok_token_to_piece without special rendering:
 * control tokens are empty, so a grammar never allows them); the
 * end-of-generation ids are tok_is_eog's. Built once per model at load. */
gram_vocab_t *srv_gram_vocab_new(const sl_tok_t *tok, int n_vocab, char *err, size_t errlen);
/* The same, except that control tokens whose text is one of `keep`
 * (NULL-terminated; e.g. a tool-call syntax's markers such as
 * "<|python_tag|>", tc_family_markers) are in it as that text, so a
 * grammar can produce them. keep NULL: srv_gram_vocab_new. */
gram_vocab_t *srv_gram_vocab_new_keep(const sl_tok_t *tok, int n_vocab, const char *const *keep, char *err,
                                      size_t errlen);

/* The engine grammar of a request's structured-output parameters (kind 0
 * when none): points into r. prefix/prefix_len: the text the answer
 * continues (prefix continuation), which the grammar is advanced over
 * first; NULL/0 when none. */
void srv_request_grammar(const oai_req_t *r, const char *prefix, size_t prefix_len, eng_grammar_t *g);

#endif
