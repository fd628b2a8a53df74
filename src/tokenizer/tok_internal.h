/*
 * tok_internal.h — the tokenizer's private shapes, shared by its files:
 * tokenizer.c (loading, special tokens, decode, streaming detokenizer),
 * bpe.c (byte-level BPE and its pre-tokenizer regexes), spm.c (SentencePiece
 * BPE), wpm.c (WordPiece), ugm.c (Unigram).
 */
#ifndef SILICA_TOK_INTERNAL_H
#define SILICA_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer.h"

enum tok_model { TOK_MODEL_GPT2, TOK_MODEL_LLAMA, TOK_MODEL_BERT, TOK_MODEL_T5, TOK_MODEL_GEMMA4 };

#define TOK_MAX_REGEX 6

/* An id list that grows (the encoder's output). */
typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids_t;

int tok_ids_grow(tok_ids_t *a); /* doubles the capacity: 0 or -1 (OOM) */

static inline int tok_ids_push(tok_ids_t *a, int32_t id) { /* 0 or -1 (OOM) */
    if (a->n == a->cap && tok_ids_grow(a) != 0) return -1;
    a->v[a->n++] = id;
    return 0;
}

/* Node of the special-token trie (first-child / next-sibling). */
typedef struct tok_trie_node {
    int32_t first_child;
    int32_t next_sibling;
    int32_t id; /* token ending here, or -1 */
    uint8_t byte;
} tok_trie_node_t;

/* One BPE merge: (left id, right id) -> rank and merged id. */
typedef struct tok_merge {
    uint64_t key; /* (uint64)left << 32 | right; UINT64_MAX = empty slot */
    int32_t rank;
    int32_t result;
} tok_merge_t;

struct sl_tok {
    enum tok_model model;
    char model_name[16];
    char pre_name[64];

    int32_t n_vocab;
    char *blob;        /* all token texts, each NUL-terminated */
    size_t *text_off;  /* [n_vocab] offset into blob */
    uint32_t *text_len; /* [n_vocab] bytes */
    float *scores;     /* [n_vocab] (0 when the file has none) */
    uint8_t *type;     /* [n_vocab] TOK_TYPE_* */
    uint32_t max_token_len;

    /* text -> id: open addressing over ids, -1 empty, capacity power of 2. */
    int32_t *vhash;
    size_t vhash_cap;

    /* gpt2: merges keyed by id pair. */
    tok_merge_t *merges;
    size_t merges_cap;
    int32_t n_merge_ranks; /* ranks are 0 .. n_merge_ranks-1 (the merge's index in the file) */
    uint64_t *byte_pair;   /* [a << 8 | b]: rank << 32 | result of merging bytes a, b (rank INT32_MAX: none) */
    int32_t byte_tok[256]; /* gpt2: id of each byte's byte-unicode char; spm: <0xNN>; -1 none */
    bool ignore_merges;
    int fast_split; /* gpt2: 0 = PCRE2; 1 / 3 = the Qwen2 / Llama 3 pattern by hand (digits per number) */
    bool fast_marks; /* the hand-written splitter with Qwen3.5's [\p{L}\p{M}]+ words */
    pcre2_code *re[TOK_MAX_REGEX];
    bool re_jit[TOK_MAX_REGEX]; /* JIT-compiled: pcre2_jit_match */
    int n_re;
    uint8_t byte_uni[256][2]; /* gpt2: UTF-8 of each byte's byte-level char (1 or 2 bytes) */
    /* gpt2: per token, whether merging its own text gives just that token
     * (0 not known yet, 1 yes, 2 no). Filled in lazily by encoders on any
     * thread with relaxed atomic byte stores (bpe.c). */
    uint8_t *self_merge;

    /* Special ids (-1 if none). */
    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_sep, add_space_prefix;
    bool bert_lowercase, bert_strip_accents;
    bool clean_spaces; /* tok_decode: transformers' clean_up_tokenization (" ." -> "." ...) */
    double ugm_unk_score; /* t5: the cost of an uncovered character (min normal score - 10) */
    /* t5: SentencePiece's precompiled_charsmap (owned copies): a darts-clone
     * double array of xcda_n units over UTF-8 byte strings whose values are
     * offsets of NUL-terminated replacements in charsmap_str (charsmap_str_n bytes);
     * NULL when the file has none. ugm_ws: remove_extra_whitespaces. */
    uint32_t *xcda;
    size_t xcda_n;
    char *charsmap_str;
    size_t charsmap_str_n;
    bool ugm_ws;
    bool nfc; /* NFC-normalise plain text first (Qwen2: tokenizer.json's NFC normalizer) */

    int32_t *eog; /* sorted */
    size_t n_eog;

    tok_trie_node_t *trie; /* node 0 is the root */
    size_t n_trie, cap_trie;
    int32_t trie_root[256]; /* root child per first byte, -1 none */
    int special_first;      /* the one first byte of all special tokens; -1 several, -2 none */
};

/* BPE merges (gpt2, gemma4): reads tokenizer.ggml.merges into t->merges. */
int bpe_load_merges(sl_tok_t *t, const gguf_file_t *f, char *err, size_t errlen);
/* The merge of the pair (a, b): 0 and its rank / result id, or -1 if none. */
int bpe_merge_of(const sl_tok_t *t, int32_t a, int32_t b, int32_t *rank, int32_t *result);
/* A binary min-heap of u64 keys (bpe.c, bpe_raw.c: the candidate merges as
 * rank << 32 | left symbol). A zeroed struct is empty; the owner frees v.
 * push: -1 when out of memory; pop: the least key, n > 0. */
typedef struct tok_heap {
    uint64_t *v;
    size_t n, cap;
} tok_heap_t;
int tok_heap_push(tok_heap_t *h, uint64_t c);
uint64_t tok_heap_pop(tok_heap_t *h);
/* gemma4 (bpe_raw.c): rank BPE over raw UTF-8 of one plain fragment. */
int g4_encode(const sl_tok_t *t, const char *text, size_t len, tok_ids_t *out, char *err, size_t errlen);

/* Text -> id lookup over the vocab hash; -1 if absent. */
int32_t tok_lookup(const sl_tok_t *t, const char *s, size_t n);
/* The same with the text's FNV-1a state given (tok_fnv_step from
 * TOK_FNV_INIT over s[0..n)), so that growing prefixes hash incrementally. */
#define TOK_FNV_INIT 1469598103934665603ULL
uint64_t tok_fnv_step(uint64_t h, const char *s, size_t n);
int32_t tok_lookup_fnv(const sl_tok_t *t, const char *s, size_t n, uint64_t fnv);

/* gpt2 byte <-> unicode mapping (the byte-level BPE alphabet). */
void tok_byte_to_unicode(uint8_t b, char out[3], size_t *n); /* UTF-8 of the char for byte b */
int tok_unicode_to_byte(uint32_t cp);                         /* byte, or -1 if cp is not in the map */

/* UTF-8 helpers: length of the sequence a lead byte starts (1 for invalid
 * lead bytes), and decode one code point (returns bytes used, *cp = U+FFFD
 * and 1 byte on invalid input). */
size_t tok_utf8_len(uint8_t lead);
size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);

/* Unicode NFC of text (invalid UTF-8 bytes pass through unchanged). When
 * the text is already NFC, *changed is false and out is left untouched;
 * otherwise the normalised text is appended to out. *valid (unless NULL):
 * whether text is valid UTF-8 (what tok_utf8_decode accepts), found on the
 * way; the output is then valid too. 0 or -1 (OOM). */
int tok_nfc(const char *text, size_t len, sl_buf_t *out, bool *changed, bool *valid);
/* Builds NFC's table (once per process, ~ms; tok_nfc does it on first use). */
void tok_nfc_init(void);
/* Whether a code point may change or combine under NFC (not a safe starter). */
bool tok_nfc_unsafe(uint32_t cp);

/* Per-model setup and encoding of one plain-text fragment (no special
 * tokens in it). */
int bpe_init(sl_tok_t *t, const gguf_file_t *f, char *err, size_t errlen);
void bpe_free(sl_tok_t *t);
/* Scratch space of one tok_encode call (buffers, match data, word cache). */
typedef struct bpe_work bpe_work_t;
bpe_work_t *bpe_work_new(const sl_tok_t *t);
void bpe_work_free(bpe_work_t *w);
/* The pre-tokenizer's word end offsets (malloc'd) by the hand-written
 * splitter (fast) or by the PCRE2 regexes; for tests. 0 or -1. */
int bpe_pre_split(const sl_tok_t *t, bpe_work_t *w, const char *text, size_t len, bool fast, size_t **ends,
                  size_t *n, char *err, size_t errlen);
/* utf8_valid: the caller knows text is valid UTF-8 (else it is checked). */
int bpe_encode(const sl_tok_t *t, bpe_work_t *w, const char *text, size_t len, bool utf8_valid, tok_ids_t *out,
               char *err, size_t errlen);

int spm_encode(const sl_tok_t *t, const char *text, size_t len, bool prefix_space, tok_ids_t *out,
               char *err, size_t errlen);
int wpm_encode(const sl_tok_t *t, const char *text, size_t len, tok_ids_t *out, char *err, size_t errlen);
/* Unigram setup (the unknown-character cost) after the vocab is loaded. */
void ugm_init(sl_tok_t *t);
/* Reads tokenizer.ggml.precompiled_charsmap and remove_extra_whitespaces
 * (t5), validating the blob's sizes. 0, or -1 with a message. */
int ugm_load_charsmap(sl_tok_t *t, const gguf_file_t *f, char *err, size_t errlen);
int ugm_encode(const sl_tok_t *t, const char *text, size_t len, bool prefix_space, tok_ids_t *out,
               char *err, size_t errlen);

#endif
