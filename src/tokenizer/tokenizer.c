/*
 * tokenizer.c — loading a tokenizer from GGUF tokenizer.ggml.* keys, special
 * (added) token splitting, decoding and the streaming detokenizer.
 *
 * The behaviour follows llama.cpp's llama-vocab (the reference the GGUF
 * format comes from) and Hugging Face tokenizers (the reference the models
 * were trained with), which agree on everything tested here:
 *  - text is first split on special-token texts (leftmost, longest match);
 *    user-defined tokens are always split out, control and unknown tokens
 *    only when the caller asks (parse_special), so user text cannot inject
 *    control tokens;
 *  - each plain fragment is encoded by the model's algorithm (bpe.c, spm.c,
 *    wpm.c, ugm.c);
 *  - BOS/EOS are added when the model's add_bos/add_eos flags say so.
 *
 * Everything read from the file is validated here: array types and lengths,
 * token types, special ids in range, duplicate tokens. After tok_load the
 * tokenizer is immutable and needs no locks.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

#define KEY(k) "tokenizer.ggml." k

/* ---------------------------------------------------------------- utils -- */

int tok_ids_grow(tok_ids_t *a) {
    size_t cap = a->cap ? a->cap * 2 : 64;
    if (cap > SIZE_MAX / sizeof(int32_t)) return -1;
    int32_t *v = realloc(a->v, cap * sizeof(int32_t));
    if (!v) return -1;
    a->v = v;
    a->cap = cap;
    return 0;
}

size_t tok_utf8_len(uint8_t c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}

size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    *cp = 0xFFFD;
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 1;
    }
    if (n < len) return 1;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 1;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 1;
    *cp = v;
    return len;
}

/* GPT-2's byte-level alphabet: printable Latin-1 bytes stand for
 * themselves, the other 68 bytes map to U+0100.. in byte order. */
static bool byte_is_direct(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

static uint32_t byte_to_cp(uint8_t b) {
    if (byte_is_direct(b)) return b;
    unsigned n = 0;
    for (unsigned i = 0; i < b; i++)
        if (!byte_is_direct(i)) n++;
    return 256 + n;
}

void tok_byte_to_unicode(uint8_t b, char out[3], size_t *n) {
    uint32_t cp = byte_to_cp(b);
    if (cp < 0x80) {
        out[0] = (char)cp;
        *n = 1;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        *n = 2;
    }
}

int tok_unicode_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_direct(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    unsigned k = cp - 256, n = 0;
    for (unsigned i = 0; i < 256; i++) {
        if (byte_is_direct(i)) continue;
        if (n == k) return (int)i;
        n++;
    }
    return -1;
}

uint64_t tok_fnv_step(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = tok_fnv_step(TOK_FNV_INIT, s, n);
    return h ^ (h >> 29);
}

int32_t tok_lookup(const sl_tok_t *t, const char *s, size_t n) {
    return tok_lookup_fnv(t, s, n, tok_fnv_step(TOK_FNV_INIT, s, n));
}

int32_t tok_lookup_fnv(const sl_tok_t *t, const char *s, size_t n, uint64_t fnv) {
    if (!t->vhash) return -1;
    size_t mask = t->vhash_cap - 1;
    for (size_t i = (fnv ^ (fnv >> 29)) & mask;; i = (i + 1) & mask) {
        int32_t id = t->vhash[i];
        if (id < 0) return -1;
        if (t->text_len[id] == n && memcmp(t->blob + t->text_off[id], s, n) == 0) return id;
    }
}

/* ------------------------------------------------------------- loading -- */

static int get_str_key(const gguf_file_t *f, const char *key, char *out, size_t outlen, bool required,
                       char *err, size_t errlen) {
    out[0] = '\0';
    int64_t i = gguf_find_key(f, key);
    if (i < 0) return required ? sl_err(err, errlen, "tokenizer: missing key %s", key) : 0;
    if (gguf_kv_type(f, (size_t)i) != GGUF_VT_STRING)
        return sl_err(err, errlen, "tokenizer: %s must be a string", key);
    gguf_str_t s = gguf_kv_str(f, (size_t)i);
    if (s.len >= outlen || memchr(s.ptr, '\0', s.len))
        return sl_err(err, errlen, "tokenizer: %s value is too long or malformed", key);
    memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
    return 0;
}

/* Optional token-id key: absent keeps *id; present must be an integer in
 * [0, n_vocab). */
static int get_id_key(const sl_tok_t *t, const gguf_file_t *f, const char *key, int32_t *id, char *err,
                      size_t errlen) {
    if (gguf_find_key(f, key) < 0) return 0;
    int64_t v;
    char e2[SL_ERR_MAX];
    if (gguf_get_i64(f, key, &v, e2, sizeof e2) != 0)
        return sl_err(err, errlen, "tokenizer: %s: %s", key, e2);
    if (v < 0 || v >= t->n_vocab)
        return sl_err(err, errlen, "tokenizer: %s = %lld is outside the vocabulary (%d tokens)", key,
                      (long long)v, t->n_vocab);
    *id = (int32_t)v;
    return 0;
}

static int get_bool_key(const gguf_file_t *f, const char *key, bool *out, char *err, size_t errlen) {
    if (gguf_find_key(f, key) < 0) return 0;
    char e2[SL_ERR_MAX];
    if (gguf_get_bool(f, key, out, e2, sizeof e2) != 0) return sl_err(err, errlen, "tokenizer: %s", e2);
    return 0;
}

static int load_vocab(sl_tok_t *t, const gguf_file_t *f, char *err, size_t errlen) {
    int64_t ki = gguf_find_key(f, KEY("tokens"));
    if (ki < 0) return sl_err(err, errlen, "tokenizer: missing key " KEY("tokens"));
    size_t k = (size_t)ki;
    if (gguf_kv_type(f, k) != GGUF_VT_ARRAY || gguf_arr_type(f, k) != GGUF_VT_STRING)
        return sl_err(err, errlen, "tokenizer: " KEY("tokens") " must be an array of strings");
    size_t n = gguf_arr_len(f, k);
    if (n == 0 || n > (size_t)INT32_MAX / 2)
        return sl_err(err, errlen, "tokenizer: vocabulary size %zu is out of range", n);
    t->n_vocab = (int32_t)n;

    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        gguf_str_t s = gguf_arr_str(f, k, i);
        if (s.len == 0) return sl_err(err, errlen, "tokenizer: token %zu is empty", i);
        if (s.len > 1u << 20) return sl_err(err, errlen, "tokenizer: token %zu is too long", i);
        if (!sl_add_size(total, s.len + 1, &total)) return sl_err(err, errlen, "tokenizer: vocab too large");
    }
    t->blob = malloc(total);
    t->text_off = malloc(n * sizeof(size_t));
    t->text_len = malloc(n * sizeof(uint32_t));
    t->scores = calloc(n, sizeof(float));
    t->type = malloc(n);
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    t->vhash = malloc(cap * sizeof(int32_t));
    t->vhash_cap = cap;
    if (!t->blob || !t->text_off || !t->text_len || !t->scores || !t->type || !t->vhash)
        return sl_err(err, errlen, "tokenizer: out of memory");
    memset(t->vhash, 0xFF, cap * sizeof(int32_t));

    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        gguf_str_t s = gguf_arr_str(f, k, i);
        memcpy(t->blob + off, s.ptr, s.len);
        t->blob[off + s.len] = '\0';
        t->text_off[i] = off;
        t->text_len[i] = (uint32_t)s.len;
        if (s.len > t->max_token_len) t->max_token_len = (uint32_t)s.len;
        off += s.len + 1;
        size_t mask = cap - 1, j = hash_bytes(s.ptr, s.len) & mask;
        for (;; j = (j + 1) & mask) {
            int32_t o = t->vhash[j];
            if (o < 0) break;
            if (t->text_len[o] == s.len && memcmp(t->blob + t->text_off[o], s.ptr, s.len) == 0)
                return sl_err(err, errlen, "tokenizer: duplicate token: ids %d and %zu have the same text", o, i);
        }
        t->vhash[j] = (int32_t)i;
    }

    /* scores: f32 (or i32) array of exactly n_vocab elements. */
    int64_t si = gguf_find_key(f, KEY("scores"));
    if (si >= 0) {
        size_t s = (size_t)si;
        gguf_vtype_t at = gguf_kv_type(f, s) == GGUF_VT_ARRAY ? gguf_arr_type(f, s) : GGUF_VT_COUNT;
        if (at != GGUF_VT_FLOAT32 && at != GGUF_VT_INT32)
            return sl_err(err, errlen, "tokenizer: " KEY("scores") " must be an array of float32");
        if (gguf_arr_len(f, s) != n)
            return sl_err(err, errlen, "tokenizer: " KEY("scores") " has %zu entries for %zu tokens",
                          gguf_arr_len(f, s), n);
        const uint8_t *p = gguf_arr_data(f, s);
        for (size_t i = 0; i < n; i++) {
            if (at == GGUF_VT_FLOAT32) {
                memcpy(&t->scores[i], p + 4 * i, 4);
                if (t->scores[i] != t->scores[i]) t->scores[i] = -1e30f; /* NaN: never preferred */
            } else {
                int32_t v;
                memcpy(&v, p + 4 * i, 4);
                t->scores[i] = (float)v;
            }
        }
    }

    /* token types: i32 array of n_vocab values in 0..6. */
    memset(t->type, TOK_TYPE_NORMAL, n);
    int64_t ti = gguf_find_key(f, KEY("token_type"));
    if (ti >= 0) {
        size_t s = (size_t)ti;
        if (gguf_kv_type(f, s) != GGUF_VT_ARRAY || gguf_arr_type(f, s) != GGUF_VT_INT32)
            return sl_err(err, errlen, "tokenizer: " KEY("token_type") " must be an array of int32");
        if (gguf_arr_len(f, s) != n)
            return sl_err(err, errlen, "tokenizer: " KEY("token_type") " has %zu entries for %zu tokens",
                          gguf_arr_len(f, s), n);
        const uint8_t *p = gguf_arr_data(f, s);
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            if (v < 0 || v > TOK_TYPE_BYTE)
                return sl_err(err, errlen, "tokenizer: token %zu has unknown type %d", i, v);
            t->type[i] = (uint8_t)v;
        }
    }
    return 0;
}

/* Byte tokens "<0xNN>" (SentencePiece byte fallback). */
static void find_byte_tokens(sl_tok_t *t) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        int32_t id = tok_lookup(t, buf, 6);
        if (id < 0) {
            char c = (char)b;
            id = tok_lookup(t, &c, 1);
        }
        t->byte_tok[b] = id;
    }
}

static const char *const EOT_TEXTS[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                        "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
                                        "<｜end▁of▁sentence｜>", NULL};
static const char *const EOG_TEXTS[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                        "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
                                        "<|end_of_text|>", "<｜end▁of▁sentence｜>", NULL};
static const char *const FIM_PRE_TEXTS[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                                            "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", NULL};
static const char *const FIM_SUF_TEXTS[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                                            "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", NULL};
static const char *const FIM_MID_TEXTS[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                                            "<｜fim▁end｜>", "<MID>", "▁<MID>", NULL};
static const char *const FIM_PAD_TEXTS[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", NULL};
static const char *const FIM_REP_TEXTS[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                            "<reponame>", NULL};
static const char *const FIM_SEP_TEXTS[] = {"<|file_sep|>", NULL};

/* Auto-detects one special id by its text (like the reference loader does
 * for files that lack the key), marking the token control. */
static void detect_special(sl_tok_t *t, int32_t *id, const char *const *texts) {
    if (*id >= 0) return;
    for (const char *const *p = texts; *p; p++) {
        int32_t i = tok_lookup(t, *p, strlen(*p));
        if (i >= 0) {
            *id = i;
            if (t->type[i] == TOK_TYPE_NORMAL || t->type[i] == TOK_TYPE_UNDEFINED) t->type[i] = TOK_TYPE_CONTROL;
            return;
        }
    }
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int build_eog(sl_tok_t *t) {
    int32_t extra[] = {t->eos, t->eot, t->eom, t->fim_pad, t->fim_rep, t->fim_sep};
    size_t cap = SL_ARRAY_LEN(extra) + 16, n = 0;
    int32_t *v = malloc(cap * sizeof(int32_t));
    if (!v) return -1;
    for (size_t i = 0; i < SL_ARRAY_LEN(extra); i++)
        if (extra[i] >= 0) v[n++] = extra[i];
    for (const char *const *p = EOG_TEXTS; *p; p++) {
        int32_t id = tok_lookup(t, *p, strlen(*p));
        if (id < 0) continue;
        if (n == cap) {
            cap *= 2;
            int32_t *nv = realloc(v, cap * sizeof(int32_t));
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[n++] = id;
        if (t->type[id] == TOK_TYPE_NORMAL || t->type[id] == TOK_TYPE_UNDEFINED) t->type[id] = TOK_TYPE_CONTROL;
    }
    /* Harmony (gpt-oss, o200k_harmony): a turn ends at <|return|> (final
     * answer) or <|call|> (a tool call); <|end|> only closes one message
     * (e.g. the analysis before the answer) and must not end generation.
     * Same rule as llama.cpp: with both, <|end|> leaves the EOG set. */
    int32_t h_ret = tok_lookup(t, "<|return|>", 10), h_call = tok_lookup(t, "<|call|>", 8);
    if (h_ret >= 0 && h_call >= 0) {
        int32_t h_end = tok_lookup(t, "<|end|>", 7);
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
            if (v[i] != h_end) v[w++] = v[i];
        n = w;
        if (n + 2 > cap) {
            int32_t *nv = realloc(v, (n + 2) * sizeof(int32_t));
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[n++] = h_ret;
        v[n++] = h_call;
        for (int k = 0; k < 2; k++) {
            int32_t id = k ? h_call : h_ret;
            if (t->type[id] == TOK_TYPE_NORMAL || t->type[id] == TOK_TYPE_UNDEFINED) t->type[id] = TOK_TYPE_CONTROL;
        }
    }
    qsort(v, n, sizeof(int32_t), cmp_i32);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || v[u - 1] != v[i]) v[u++] = v[i];
    t->eog = v;
    t->n_eog = u;
    return 0;
}

static int32_t trie_new_node(sl_tok_t *t, uint8_t byte) {
    if (t->n_trie == t->cap_trie) {
        size_t cap = t->cap_trie ? t->cap_trie * 2 : 256;
        tok_trie_node_t *nn = realloc(t->trie, cap * sizeof(*nn));
        if (!nn) return -1;
        t->trie = nn;
        t->cap_trie = cap;
    }
    tok_trie_node_t *nd = &t->trie[t->n_trie];
    nd->first_child = nd->next_sibling = nd->id = -1;
    nd->byte = byte;
    return (int32_t)t->n_trie++;
}

static bool is_special_type(uint8_t ty) {
    return ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNKNOWN;
}

/* Trie of every control / user-defined / unknown token's text. */
static int build_trie(sl_tok_t *t) {
    for (int b = 0; b < 256; b++) t->trie_root[b] = -1;
    if (trie_new_node(t, 0) < 0) return -1; /* root placeholder */
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!is_special_type(t->type[id])) continue;
        const uint8_t *s = (const uint8_t *)t->blob + t->text_off[id];
        size_t n = t->text_len[id];
        int32_t node = t->trie_root[s[0]];
        if (node < 0) {
            node = trie_new_node(t, s[0]);
            if (node < 0) return -1;
            t->trie_root[s[0]] = node;
        }
        for (size_t i = 1; i < n; i++) {
            int32_t c = t->trie[node].first_child;
            while (c >= 0 && t->trie[c].byte != s[i]) c = t->trie[c].next_sibling;
            if (c < 0) {
                c = trie_new_node(t, s[i]);
                if (c < 0) return -1;
                t->trie[c].next_sibling = t->trie[node].first_child;
                t->trie[node].first_child = c;
            }
            node = c;
        }
        if (t->trie[node].id < 0) t->trie[node].id = id;
    }
    /* the byte every special token starts with, when they share one (Qwen:
     * '<'), so that encoding finds candidates with memchr */
    t->special_first = -2;
    for (int b = 0; b < 256; b++)
        if (t->trie_root[b] >= 0) t->special_first = t->special_first == -2 ? b : -1;
    return 0;
}

sl_tok_t *tok_load(const gguf_file_t *f, char *err, size_t errlen) {
    sl_tok_t *t = calloc(1, sizeof(*t));
    if (!t) {
        sl_err(err, errlen, "tokenizer: out of memory");
        return NULL;
    }
    for (int b = 0; b < 256; b++) t->byte_tok[b] = -1;
    t->bos = t->eos = t->eot = t->eom = t->unk = t->sep = t->pad = t->mask = -1;
    t->fim_pre = t->fim_suf = t->fim_mid = t->fim_pad = t->fim_rep = t->fim_sep = -1;

    if (get_str_key(f, KEY("model"), t->model_name, sizeof t->model_name, true, err, errlen) != 0) goto fail;
    if (get_str_key(f, KEY("pre"), t->pre_name, sizeof t->pre_name, false, err, errlen) != 0) goto fail;
    if (strcmp(t->model_name, "gpt2") == 0 &&
        (strcmp(t->pre_name, "gemma4") == 0 || strcmp(t->pre_name, "granite-embed-multi-311m") == 0)) {
        t->model = TOK_MODEL_GEMMA4; /* llama.cpp's gemma4 pre type: raw UTF-8, spaces as "▁" */
    } else if (strcmp(t->model_name, "gpt2") == 0) {
        t->model = TOK_MODEL_GPT2;
    } else if (strcmp(t->model_name, "llama") == 0) {
        t->model = TOK_MODEL_LLAMA;
    } else if (strcmp(t->model_name, "bert") == 0) {
        t->model = TOK_MODEL_BERT;
    } else if (strcmp(t->model_name, "t5") == 0) {
        t->model = TOK_MODEL_T5;
    } else if (strcmp(t->model_name, "gemma4") == 0) {
        t->model = TOK_MODEL_GEMMA4; /* its pre-tokenizer is implied (llama.cpp sets "gemma4") */
    } else {
        sl_err(err, errlen, "tokenizer: unsupported tokenizer model '%s' (supported: gpt2, llama, bert, t5, gemma4)",
               t->model_name);
        goto fail;
    }
    if (load_vocab(t, f, err, errlen) != 0) goto fail;

    /* Defaults by model, as the reference loader sets them. */
    switch (t->model) {
    case TOK_MODEL_LLAMA:
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_bos = true, t->add_space_prefix = true;
        break;
    case TOK_MODEL_BERT:
        t->bos = 101, t->unk = 100, t->sep = 102, t->pad = 0, t->mask = 103;
        t->add_bos = true, t->add_sep = true;
        break;
    case TOK_MODEL_T5:
        t->eos = 1, t->unk = 2, t->pad = 0;
        t->add_eos = true, t->add_space_prefix = true;
        break;
    case TOK_MODEL_GPT2:
    case TOK_MODEL_GEMMA4: /* special ids only from the file */
        break;
    }
    int32_t *defaults[] = {&t->bos, &t->eos, &t->unk, &t->sep, &t->pad, &t->mask};
    for (size_t i = 0; i < SL_ARRAY_LEN(defaults); i++)
        if (*defaults[i] >= t->n_vocab) *defaults[i] = -1;

    if (t->model == TOK_MODEL_GPT2 && bpe_init(t, f, err, errlen) != 0) goto fail;
    if (t->model == TOK_MODEL_GEMMA4 && bpe_load_merges(t, f, err, errlen) != 0) goto fail;
    if (t->model == TOK_MODEL_T5) {
        ugm_init(t);
        if (ugm_load_charsmap(t, f, err, errlen) != 0) goto fail;
    }
    /* Qwen2/Qwen3's tokenizer.json normalises to NFC; GGUF has no key for the
     * normalizer, so it follows from the pre-tokenizer name (normalize.c). */
    t->nfc = t->model == TOK_MODEL_GPT2 && (strcmp(t->pre_name, "qwen2") == 0 || strcmp(t->pre_name, "qwen35") == 0);
    if (t->nfc) tok_nfc_init();

    struct {
        const char *key;
        int32_t *id;
    } ids[] = {
        {KEY("bos_token_id"), &t->bos},         {KEY("eos_token_id"), &t->eos},
        {KEY("eot_token_id"), &t->eot},         {KEY("eom_token_id"), &t->eom},
        {KEY("unknown_token_id"), &t->unk},     {KEY("seperator_token_id"), &t->sep},
        {KEY("padding_token_id"), &t->pad},     {KEY("mask_token_id"), &t->mask},
        {KEY("prefix_token_id"), &t->fim_pre},  {KEY("suffix_token_id"), &t->fim_suf},
        {KEY("middle_token_id"), &t->fim_mid},  {KEY("fim_pre_token_id"), &t->fim_pre},
        {KEY("fim_suf_token_id"), &t->fim_suf}, {KEY("fim_mid_token_id"), &t->fim_mid},
        {KEY("fim_pad_token_id"), &t->fim_pad}, {KEY("fim_rep_token_id"), &t->fim_rep},
        {KEY("fim_sep_token_id"), &t->fim_sep},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(ids); i++)
        if (get_id_key(t, f, ids[i].key, ids[i].id, err, errlen) != 0) goto fail;
    if (get_bool_key(f, KEY("add_bos_token"), &t->add_bos, err, errlen) != 0) goto fail;
    if (get_bool_key(f, KEY("add_eos_token"), &t->add_eos, err, errlen) != 0) goto fail;
    if (get_bool_key(f, KEY("add_sep_token"), &t->add_sep, err, errlen) != 0) goto fail;
    if (get_bool_key(f, KEY("clean_spaces"), &t->clean_spaces, err, errlen) != 0) goto fail;
    if (t->model != TOK_MODEL_GPT2 &&
        get_bool_key(f, KEY("add_space_prefix"), &t->add_space_prefix, err, errlen) != 0)
        goto fail;
    if (t->add_bos && t->bos < 0) {
        sl_err(err, errlen, "tokenizer: add_bos_token is true but there is no bos_token_id");
        goto fail;
    }
    if (t->add_eos && t->eos < 0) {
        sl_err(err, errlen, "tokenizer: add_eos_token is true but there is no eos_token_id");
        goto fail;
    }
    if (t->model == TOK_MODEL_BERT) {
        t->bert_lowercase = true;
        if (get_bool_key(f, KEY("normalizer.lowercase"), &t->bert_lowercase, err, errlen) != 0) goto fail;
        t->bert_strip_accents = t->bert_lowercase;
        if (get_bool_key(f, KEY("normalizer.strip_accents"), &t->bert_strip_accents, err, errlen) != 0)
            goto fail;
        if (t->add_sep && t->sep < 0) t->add_sep = false;
    }

    detect_special(t, &t->eot, EOT_TEXTS);
    {
        static const char *const eom[] = {"<|eom_id|>", NULL};
        detect_special(t, &t->eom, eom);
    }
    detect_special(t, &t->fim_pre, FIM_PRE_TEXTS);
    detect_special(t, &t->fim_suf, FIM_SUF_TEXTS);
    detect_special(t, &t->fim_mid, FIM_MID_TEXTS);
    detect_special(t, &t->fim_pad, FIM_PAD_TEXTS);
    detect_special(t, &t->fim_rep, FIM_REP_TEXTS);
    detect_special(t, &t->fim_sep, FIM_SEP_TEXTS);
    if (build_eog(t) != 0 || build_trie(t) != 0) {
        sl_err(err, errlen, "tokenizer: out of memory");
        goto fail;
    }
    if (t->model != TOK_MODEL_GPT2) find_byte_tokens(t);
    return t;
fail:
    tok_free(t);
    return NULL;
}

void tok_free(sl_tok_t *t) {
    if (!t) return;
    bpe_free(t);
    free(t->blob);
    free(t->text_off);
    free(t->text_len);
    free(t->scores);
    free(t->type);
    free(t->vhash);
    free(t->eog);
    free(t->trie);
    free(t->charsmap_str);
    free(t->xcda);
    free(t);
}

/* ------------------------------------------------------------ accessors -- */

int tok_n_vocab(const sl_tok_t *t) { return t->n_vocab; }
int32_t tok_bos(const sl_tok_t *t) { return t->bos; }
int32_t tok_eos(const sl_tok_t *t) { return t->eos; }
int32_t tok_eot(const sl_tok_t *t) { return t->eot; }
int32_t tok_pad(const sl_tok_t *t) { return t->pad; }
int32_t tok_unk(const sl_tok_t *t) { return t->unk; }
int32_t tok_sep(const sl_tok_t *t) { return t->sep; }
int32_t tok_fim_pre(const sl_tok_t *t) { return t->fim_pre; }
int32_t tok_fim_suf(const sl_tok_t *t) { return t->fim_suf; }
int32_t tok_fim_mid(const sl_tok_t *t) { return t->fim_mid; }
bool tok_add_bos(const sl_tok_t *t) { return t->add_bos; }
bool tok_add_eos(const sl_tok_t *t) { return t->add_eos; }
const char *tok_model_name(const sl_tok_t *t) { return t->model_name; }
const char *tok_pre_name(const sl_tok_t *t) { return t->pre_name; }

bool tok_is_eog(const sl_tok_t *t, int32_t id) {
    if (id < 0) return false;
    return bsearch(&id, t->eog, t->n_eog, sizeof(int32_t), cmp_i32) != NULL;
}

bool tok_is_control(const sl_tok_t *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return false;
    return t->type[id] == TOK_TYPE_CONTROL || t->type[id] == TOK_TYPE_UNKNOWN;
}

const char *tok_token_text(const sl_tok_t *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->text_len[id];
    return t->blob + t->text_off[id];
}

int tok_token_type(const sl_tok_t *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return -1;
    return t->type[id];
}

int32_t tok_find(const sl_tok_t *t, const char *text, size_t len) { return tok_lookup(t, text, len); }

/* ------------------------------------------------------------- encoding -- */

/* Longest special token starting at s (allowed types only), or -1. */
static int32_t match_special(const sl_tok_t *t, const uint8_t *s, size_t n, bool parse_special, size_t *mlen) {
    int32_t node = t->trie_root[s[0]];
    int32_t best = -1;
    size_t i = 1;
    while (node >= 0) {
        int32_t id = t->trie[node].id;
        if (id >= 0 && (parse_special || t->type[id] == TOK_TYPE_USER_DEFINED)) {
            best = id;
            *mlen = i;
        }
        if (i == n) break;
        int32_t c = t->trie[node].first_child;
        while (c >= 0 && t->trie[c].byte != s[i]) c = t->trie[c].next_sibling;
        node = c;
        i++;
    }
    return best;
}

static int encode_fragment(const sl_tok_t *t, bpe_work_t **work, const char *s, size_t n, bool prev_special,
                           tok_ids_t *out, char *err, size_t errlen) {
    switch (t->model) {
    case TOK_MODEL_GPT2:
        if (!*work && !(*work = bpe_work_new(t))) return sl_err(err, errlen, "tokenizer: out of memory");
        if (t->nfc) {
            sl_buf_t norm = {0};
            bool changed = false, valid = false;
            if (tok_nfc(s, n, &norm, &changed, &valid) != 0) {
                sl_buf_free(&norm);
                return sl_err(err, errlen, "tokenizer: out of memory");
            }
            int rc = changed ? bpe_encode(t, *work, norm.data, norm.len, valid, out, err, errlen)
                             : bpe_encode(t, *work, s, n, valid, out, err, errlen);
            sl_buf_free(&norm);
            return rc;
        }
        return bpe_encode(t, *work, s, n, false, out, err, errlen);
    case TOK_MODEL_LLAMA:
        return spm_encode(t, s, n, t->add_space_prefix && prev_special, out, err, errlen);
    case TOK_MODEL_BERT:
        return wpm_encode(t, s, n, out, err, errlen);
    case TOK_MODEL_T5:
        return ugm_encode(t, s, n, t->add_space_prefix, out, err, errlen);
    case TOK_MODEL_GEMMA4:
        return g4_encode(t, s, n, out, err, errlen);
    }
    return sl_err(err, errlen, "tokenizer: bad model");
}

int tok_encode(const sl_tok_t *t, const char *text, size_t len, bool add_special, bool parse_special,
               int32_t **ids, size_t *n_ids, char *err, size_t errlen) {
    tok_ids_t out = {0};
    bpe_work_t *work = NULL; /* gpt2 scratch, made on first use */
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return sl_err(err, errlen, "tokenizer: NULL text");
    /* room for a typical text's ids at once (2 to 4 bytes per token), not
     * a doubling per size; the pushes grow it further where needed */
    if (len / 4 < SIZE_MAX / sizeof(int32_t) - 16 && (out.v = malloc((len / 4 + 16) * sizeof(int32_t))))
        out.cap = len / 4 + 16;
    const uint8_t *s = (const uint8_t *)text;
    bool oom = false;
    if (add_special && t->add_bos) oom |= tok_ids_push(&out, t->bos) != 0;

    bool prev_special = true; /* SentencePiece: a space is prefixed at the start and after a special token */
    size_t start = 0, i = 0;
    while (i < len && !oom) {
        /* to the next byte that starts a special token */
        if (t->special_first >= 0) {
            const uint8_t *p = memchr(s + i, t->special_first, len - i);
            if (!p) break;
            i = (size_t)(p - s);
        } else if (t->special_first == -2) {
            break;
        } else {
            while (i < len && t->trie_root[s[i]] < 0) i++;
            if (i == len) break;
        }
        size_t mlen = 0;
        int32_t id = match_special(t, s + i, len - i, parse_special, &mlen);
        if (id < 0) {
            i++;
            continue;
        }
        if (i > start) {
            if (encode_fragment(t, &work, text + start, i - start, prev_special, &out, err, errlen) != 0) goto fail;
        }
        oom |= tok_ids_push(&out, id) != 0;
        prev_special = true;
        i += mlen;
        start = i;
        continue;
    }
    if (!oom && start < len) {
        if (encode_fragment(t, &work, text + start, len - start, prev_special, &out, err, errlen) != 0) goto fail;
        prev_special = false;
    }
    if (add_special && t->add_eos) oom |= tok_ids_push(&out, t->eos) != 0;
    if (add_special && t->model == TOK_MODEL_BERT && t->add_sep) oom |= tok_ids_push(&out, t->sep) != 0;
    if (oom) {
        sl_err(err, errlen, "tokenizer: out of memory");
        goto fail;
    }
    bpe_work_free(work);
    *ids = out.v;
    *n_ids = out.n;
    if (!*ids) *ids = malloc(sizeof(int32_t)); /* a valid pointer even for zero tokens */
    if (!*ids) return sl_err(err, errlen, "tokenizer: out of memory");
    return 0;
fail:
    bpe_work_free(work);
    free(out.v);
    return -1;
}

/* ------------------------------------------------------------- decoding -- */

static int append_gpt2_text(sl_buf_t *out, const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = tok_utf8_decode(s + i, n - i, &cp);
        int b = k > 1 || s[i] < 0x80 ? tok_unicode_to_byte(cp) : -1;
        if (b >= 0) {
            if (sl_buf_putc(out, (char)b) != 0) return -1;
        } else if (sl_buf_append(out, s + i, k) != 0) {
            return -1; /* not in the byte alphabet: pass it through */
        }
        i += k;
    }
    return 0;
}

static int append_spm_text(sl_buf_t *out, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 3 <= n && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
            if (sl_buf_putc(out, ' ') != 0) return -1;
            i += 3;
        } else {
            if (sl_buf_putc(out, s[i]) != 0) return -1;
            i++;
        }
    }
    return 0;
}

static int byte_of_token(const char *s, size_t n) {
    if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>') {
        int v = 0;
        for (int i = 3; i < 5; i++) {
            char c = s[i];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) return -1;
            v = v * 16 + d;
        }
        return v;
    }
    if (n == 1) return (uint8_t)s[0];
    return -1;
}

int tok_token_to_piece(const sl_tok_t *t, int32_t id, bool render_special, sl_buf_t *out) {
    if (id < 0 || id >= t->n_vocab) return -1;
    const char *s = t->blob + t->text_off[id];
    size_t n = t->text_len[id];
    switch (t->type[id]) {
    case TOK_TYPE_CONTROL:
    case TOK_TYPE_UNKNOWN:
        return render_special ? sl_buf_append(out, s, n) : 0;
    case TOK_TYPE_USER_DEFINED:
        return sl_buf_append(out, s, n);
    case TOK_TYPE_BYTE: {
        int b = byte_of_token(s, n);
        if (b < 0) return sl_buf_append(out, s, n);
        return sl_buf_putc(out, (char)b);
    }
    case TOK_TYPE_NORMAL:
        switch (t->model) {
        case TOK_MODEL_GPT2:
            return append_gpt2_text(out, (const uint8_t *)s, n);
        default: /* SentencePiece / WordPiece as GGUF stores it: "▁" is a space */
            return append_spm_text(out, s, n);
        }
    default:
        return 0; /* unused / undefined render as nothing */
    }
}

/* Decoding state shared by tok_decode and the streaming detokenizer: with
 * add_space_prefix (SentencePiece), the encoder put a space before the
 * text at the start and after each special token, so the decoder takes one
 * leading space off the first piece there. */
typedef struct dec_state {
    bool strip_next; /* next text piece loses one leading space */
} dec_state_t;

static int decode_one(const sl_tok_t *t, dec_state_t *st, int32_t id, bool render_special, sl_buf_t *out) {
    if (id < 0 || id >= t->n_vocab) return -1;
    uint8_t ty = t->type[id];
    bool special = ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN || ty == TOK_TYPE_USER_DEFINED;
    size_t before = out->len;
    if (tok_token_to_piece(t, id, render_special, out) != 0) return -1;
    if (special) {
        if (t->add_space_prefix && t->model == TOK_MODEL_LLAMA) st->strip_next = true;
        return 0;
    }
    if (st->strip_next && out->len > before) {
        if (out->data[before] == ' ') {
            memmove(out->data + before, out->data + before + 1, out->len - before - 1);
            out->len--;
            out->data[out->len] = '\0';
        }
        st->strip_next = false;
    } else if (out->len > before) {
        st->strip_next = false;
    }
    return 0;
}

static bool strips_first_space(const sl_tok_t *t) {
    return (t->model == TOK_MODEL_LLAMA && t->add_space_prefix) || t->model == TOK_MODEL_BERT ||
           (t->model == TOK_MODEL_T5 && t->add_space_prefix);
}

/* Replaces every non-overlapping `from` (left to right) in b[start..) by
 * `to`, which is never longer. */
static void replace_all(sl_buf_t *b, size_t start, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to), r = start, w = start;
    while (r < b->len) {
        if (b->len - r >= fl && memcmp(b->data + r, from, fl) == 0) {
            memmove(b->data + w, to, tl);
            w += tl, r += fl;
        } else {
            b->data[w++] = b->data[r++];
        }
    }
    b->len = w;
    if (b->data) b->data[w] = '\0';
}

/* transformers' clean_up_tokenization, on the text decoded from start on:
 * the same replacements in the same order. */
static void clean_up_spaces(sl_buf_t *b, size_t start) {
    static const char *const rules[][2] = {{" .", "."},   {" ?", "?"},   {" !", "!"},     {" ,", ","},     {" ' ", "'"},
                                           {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t i = 0; i < SL_ARRAY_LEN(rules); i++) replace_all(b, start, rules[i][0], rules[i][1]);
}

int tok_decode(const sl_tok_t *t, const int32_t *ids, size_t n, bool render_special, sl_buf_t *out) {
    dec_state_t st = {.strip_next = strips_first_space(t)};
    size_t start = out->len;
    for (size_t i = 0; i < n; i++)
        if (decode_one(t, &st, ids[i], render_special, out) != 0) return -1;
    if (t->clean_spaces) clean_up_spaces(out, start);
    return 0;
}

/* --------------------------------------------------- streaming decoding -- */

struct sl_detok {
    const sl_tok_t *t;
    bool render_special;
    dec_state_t st;
    sl_buf_t pend;   /* bytes not yet emitted: an incomplete UTF-8 sequence at the end */
    sl_buf_t tmp;
};

sl_detok_t *detok_new(const sl_tok_t *t, bool render_special) {
    sl_detok_t *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->t = t;
    d->render_special = render_special;
    d->st.strip_next = strips_first_space(t);
    return d;
}

/* Length of the complete-UTF-8 prefix of s that can be emitted now: stops
 * before a trailing sequence that is valid so far but unfinished. */
static size_t complete_prefix(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = tok_utf8_decode(s + i, n - i, &cp);
        if (k == 1 && s[i] >= 0x80) {
            /* invalid here; is it a valid but truncated start? */
            size_t want = tok_utf8_len(s[i]);
            if (want > 1 && i + want > n && s[i] >= 0xC2 && s[i] <= 0xF4) {
                bool ok = true;
                for (size_t j = i + 1; j < n; j++)
                    if ((s[j] & 0xC0) != 0x80) ok = false;
                if (ok && n - i >= 2) {
                    /* second byte range checks for E0/ED/F0/F4 */
                    uint8_t c0 = s[i], c1 = s[i + 1];
                    if ((c0 == 0xE0 && c1 < 0xA0) || (c0 == 0xED && c1 > 0x9F) || (c0 == 0xF0 && c1 < 0x90) ||
                        (c0 == 0xF4 && c1 > 0x8F))
                        ok = false;
                }
                if (ok) return i;
            }
        }
        i += k;
    }
    return n;
}

/* Appends s[0..n) with every invalid byte replaced by U+FFFD. */
static int append_sanitized(sl_buf_t *out, const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = tok_utf8_decode(s + i, n - i, &cp);
        if (cp == 0xFFFD && k == 1) {
            if (sl_buf_append(out, "\xEF\xBF\xBD", 3) != 0) return -1;
        } else if (sl_buf_append(out, s + i, k) != 0) {
            return -1;
        }
        i += k;
    }
    return 0;
}

int detok_push(sl_detok_t *d, int32_t id, sl_buf_t *out) {
    const sl_tok_t *t = d->t;
    if (id < 0 || id >= t->n_vocab) return -1;
    if (decode_one(t, &d->st, id, d->render_special, &d->pend) != 0) return -1;
    size_t k = complete_prefix((const uint8_t *)d->pend.data, d->pend.len);
    if (k == 0) return 0;
    if (append_sanitized(out, (const uint8_t *)d->pend.data, k) != 0) return -1;
    memmove(d->pend.data, d->pend.data + k, d->pend.len - k);
    d->pend.len -= k;
    d->pend.data[d->pend.len] = '\0';
    return 0;
}

int detok_flush(sl_detok_t *d, sl_buf_t *out) {
    if (d->pend.len == 0) return 0;
    int rc = append_sanitized(out, (const uint8_t *)d->pend.data, d->pend.len);
    sl_buf_clear(&d->pend);
    return rc;
}

void detok_free(sl_detok_t *d) {
    if (!d) return;
    sl_buf_free(&d->pend);
    sl_buf_free(&d->tmp);
    free(d);
}
