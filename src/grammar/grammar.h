/*
 * grammar.h — grammar-constrained decoding: grammars, token masks, matchers.
 *
 * Four objects, from long-lived to per-sequence:
 *
 *   gram_t          a compiled grammar (vocabulary-independent). Built from
 *                   GBNF text (llama.cpp syntax), a regex, a JSON Schema, or
 *                   the built-in "any JSON" grammar. Immutable; share freely.
 *   gram_vocab_t    the model's vocabulary as byte strings + a byte trie.
 *                   Immutable; build once per model and share.
 *   gram_index_t    grammar x vocabulary: the per-position caches of token
 *                   sets that are accepted / rejected whatever the stack
 *                   holds below (the context-independent tokens). Immutable;
 *                   build once per (grammar, model) and share across requests.
 *   gram_matcher_t  the parse state of ONE sequence. Not thread-safe; one per
 *                   sequence (n>1 => n matchers over the same index).
 *
 * Sampling loop:  gram_matcher_fill_mask(m, mask) -> apply the mask to the
 * logits (bit i set = token i allowed) -> sample -> gram_matcher_accept_token.
 * End-of-generation ids are allowed only when the grammar can end here
 * (gram_matcher_can_end). Tokens whose byte string is empty (control tokens
 * the caller wants excluded) are never allowed.
 *
 * Ownership: every _new has a _free; the caller owns what _new returns. An
 * index keeps pointers to its grammar and vocab: free it before them. A
 * matcher keeps a pointer to its index.
 *
 * Errors: NULL / negative status plus a message in err (see base.h). Bad
 * outside input (grammar text, schema) always yields a message, never a
 * crash; unsupported JSON-Schema keywords are errors naming the keyword.
 */
#ifndef SILICA_GRAMMAR_H
#define SILICA_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct gram gram_t;
typedef struct gram_vocab gram_vocab_t;
typedef struct gram_index gram_index_t;
typedef struct gram_matcher gram_matcher_t;

/* ---- grammars ---- */

/* GBNF text (llama.cpp syntax): `name ::= alternatives`, "literals",
 * [character classes] with ^ and ranges, . (any character), ( ), |, *, +, ?,
 * {m}, {m,}, {m,n}, # comments. The start rule is `root`. */
gram_t *gram_from_gbnf(const char *src, char *err, size_t errlen);

/* A regular expression (whole-string match, anchors ^ $ optional). Supported:
 * literals, escapes (\d \w \s \D \W \S \n \t \r \. \uXXXX ...), classes,
 * ., groups (?:...), alternation, * + ? {m} {m,} {m,n} (lazy suffix
 * accepted and ignored: same language). Unsupported (error): backreferences,
 * lookaround, possessive quantifiers. */
gram_t *gram_from_regex(const char *re, char *err, size_t errlen);

/* Any JSON value (object_only=false) or any JSON object (json_object mode).
 * Whitespace is bounded: see docs/grammar.md. */
gram_t *gram_json_any(bool object_only, char *err, size_t errlen);

/* JSON Schema (the subset in docs/grammar.md) -> grammar. Unsupported
 * keywords are an error naming the keyword. */
gram_t *gram_from_json_schema(const json_t *schema, char *err, size_t errlen);

/* The GBNF text a schema / regex compiles to (for debugging and docs).
 * Caller frees with free(). NULL + err on error. */
char *gram_json_schema_to_gbnf(const json_t *schema, char *err, size_t errlen);
char *gram_regex_to_gbnf(const char *re, char *err, size_t errlen);
/* Any JSON value / any JSON object as GBNF text (gram_json_any's grammar). */
char *gram_json_any_to_gbnf(bool object_only, char *err, size_t errlen);
/* The GBNF text of a grammar source (kind GRAM_SRC_*, text[0..len) as for
 * gram_index_cached), start rule `root`: lets a caller embed a request's
 * constraint in a larger grammar (e.g. one message of a chat format).
 * Caller frees with free(). NULL + err (the same errors as compiling it,
 * except GBNF text, which is returned as given and checked when compiled). */
char *gram_source_to_gbnf(int kind, const char *text, size_t len, char *err, size_t errlen);

void gram_free(gram_t *g);

/* ---- vocabulary ---- */

/* tok_bytes[i] / tok_lens[i]: the exact bytes token i decodes to (len 0 =
 * never allowed). eog_ids: end-of-generation token ids. Copies everything. */
gram_vocab_t *gram_vocab_new(const char *const *tok_bytes, const size_t *tok_lens, size_t n_vocab,
                             const int32_t *eog_ids, size_t n_eog, char *err, size_t errlen);
void gram_vocab_free(gram_vocab_t *v);
size_t gram_vocab_size(const gram_vocab_t *v);
/* The byte string of token id (*len bytes; not NUL-terminated; len 0 for
 * excluded tokens), NULL when id is out of range. */
const char *gram_vocab_token(const gram_vocab_t *v, int32_t id, size_t *len);
/* True when id is one of the vocabulary's end-of-generation ids. */
bool gram_vocab_is_eog(const gram_vocab_t *v, int32_t id);
/* Number of uint32 words in a token mask: (n_vocab + 31) / 32. */
size_t gram_mask_words(const gram_vocab_t *v);

/* ---- grammar x vocabulary ---- */

gram_index_t *gram_index_new(const gram_t *g, const gram_vocab_t *v, char *err, size_t errlen);
void gram_index_free(gram_index_t *ix);
/* Statistics: positions indexed up front, distinct caches (shared keys) so
 * far, trie walks done so far (lazy ones included). Any pointer may be NULL. */
void gram_index_stats(const gram_index_t *ix, size_t *positions, size_t *caches, size_t *walks);

/* ---- process-wide index cache ---- */

enum {
    GRAM_SRC_GBNF = 1,
    GRAM_SRC_REGEX = 2,
    GRAM_SRC_JSON_SCHEMA = 3, /* text = the schema as JSON text */
    GRAM_SRC_JSON_ANY = 4,    /* text ignored */
    GRAM_SRC_JSON_OBJECT = 5  /* text ignored */
};

/* The shared index of (v, kind, text[0..len)), compiled and indexed on a
 * miss (errors as for the gram_from_* functions). Thread-safe. The caller
 * holds a reference: give it back with gram_index_release (never
 * gram_index_free). Keyed by the exact text: callers that want equal schemas
 * to hit should pass a canonical form (e.g. json_dumps with JSON_SORT_KEYS).
 * At most gram_cache_set_limit() idle entries are kept (default 64), least
 * recently used dropped first; entries in use are never dropped. */
gram_index_t *gram_index_cached(const gram_vocab_t *v, int kind, const char *text, size_t len,
                                char *err, size_t errlen);
void gram_index_release(gram_index_t *ix);
/* Takes one more reference on an index that gram_index_cached returned
 * (each reference is given back with gram_index_release). Returns 0, or -1
 * when ix is not a cached index (nothing taken then). */
int gram_index_retain(gram_index_t *ix);
void gram_cache_set_limit(size_t max_entries);
size_t gram_cache_size(void); /* listed entries */

/* ---- per-sequence matcher ---- */

gram_matcher_t *gram_matcher_new(const gram_index_t *ix, char *err, size_t errlen);
void gram_matcher_free(gram_matcher_t *m);
/* The vocabulary size of the matcher's index (mask bits). */
size_t gram_matcher_vocab_size(const gram_matcher_t *m);
/* Back to the start state (forgets all history). */
void gram_matcher_reset(gram_matcher_t *m);

/* Writes gram_mask_words() words: bit (id % 32) of word (id / 32) set iff
 * token id may come next. Returns the number of allowed tokens (0 only if
 * the matcher has terminated), or -1 on out-of-memory. */
int gram_matcher_fill_mask(gram_matcher_t *m, uint32_t *mask);

/* Advances by one token. 0 ok; -1 if the token is not allowed here (the
 * state is then unchanged). An end-of-generation id is accepted only when
 * gram_matcher_can_end() and terminates the matcher. */
int gram_matcher_accept_token(gram_matcher_t *m, int32_t id);

/* Advances by raw bytes (not recorded as a token for rollback purposes
 * unless it succeeds: then it counts as one step). 0 ok / -1 rejected. */
int gram_matcher_accept_bytes(gram_matcher_t *m, const char *bytes, size_t len);

/* True when the text so far is a complete sentence of the grammar. */
bool gram_matcher_can_end(const gram_matcher_t *m);
/* True after an end-of-generation token was accepted, or when the grammar
 * can end and nothing else can follow (no token but EOG is allowed). */
bool gram_matcher_is_terminated(const gram_matcher_t *m);

/* Undo the last n accepted steps (tokens or accept_bytes calls). Returns 0,
 * or -1 if n exceeds the history (nothing is undone then). */
int gram_matcher_rollback(gram_matcher_t *m, size_t n);

#endif
