/*
 * hf_import.c — a Hugging Face tokenizer.json (+ tokenizer_config.json, +
 * config.json beside tokenizer.json when present) written as GGUF
 * tokenizer.ggml.* keys in the layout llama.cpp's convert_hf_to_gguf.py
 * writes, so that files we make read like files from the wider ecosystem.
 *
 * What is written, by tokenizer.json model type:
 *  - byte-level BPE -> "gpt2": tokens as stored (byte-level unicode),
 *    merges "a b", types 1 normal / 3 control (special added tokens, and
 *    added tokens that look special: <|...|>, <｜...｜>) / 4 user-defined /
 *    5 unused ("[PAD<i>]" holes up to config.json's vocab_size); `pre` from
 *    the pre-tokenizer regexes.
 *  - BPE with byte fallback / "▁" normaliser -> "llama" (SentencePiece):
 *    types 6 for <0xNN>, 2 for the unk token, 3 special, 4 other added;
 *    scores derived from the merge ranks (a piece made by an earlier merge
 *    scores higher), which makes SentencePiece's score-driven merging pick
 *    the same pairs as the BPE merge list; add_space_prefix from the
 *    normaliser / pre-tokenizer (Prepend "▁" or Metaspace).
 *  - BPE with byte fallback and Metaspace (prepend_scheme never, split
 *    false) -> "gemma4" (Gemma 4): tokens as stored ("▁" for spaces),
 *    merges "a b", types 6 for <0xNN>, 2 unk, 3 special, 4 other added;
 *    add_space_prefix false; no pre (the model implies it).
 *  - WordPiece -> "bert": "##x" -> "x", other pieces get a leading "▁",
 *    control tokens (the special added ones) kept; pre "default";
 *    BertNormalizer's lowercase / strip_accents as
 *    tokenizer.ggml.normalizer.* (Silica's keys), clean_spaces.
 *  - Unigram -> "t5": pieces and their scores, pre "default", types 2 for
 *    the unk piece, 3 special, 4 other added; add_space_prefix from
 *    Metaspace, clean_spaces.
 * Plus bos/eos/unknown/seperator/padding ids (tokenizer_config.json, then
 * config.json), add_bos_token/add_eos_token (tokenizer_config.json, else the
 * post-processor template), and tokenizer.chat_template.
 */
#include "tokenizer/hf_import.h"

#include <jansson.h>
#include <stdio.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "tokenizer/tokenizer.h"

typedef struct hf {
    json_t *tj, *cfg, *mcfg; /* tokenizer.json, tokenizer_config.json, config.json */
    const char *kind;        /* "gpt2", "llama", "bert", "t5" */
    size_t n;                /* tokens written */
    char **text;             /* [n] owned */
    int32_t *type;
    float *score;
    bool has_scores;
} hf_t;

static void hf_free(hf_t *h) {
    if (h->text)
        for (size_t i = 0; i < h->n; i++) free(h->text[i]);
    free(h->text);
    free(h->type);
    free(h->score);
    json_decref(h->tj);
    json_decref(h->cfg);
    json_decref(h->mcfg);
}

/* Reads a JSON object file. jansson cannot hold NUL in object keys, and a
 * vocabulary may have a "\u0000" token: such escapes are read as U+FDD0 (a
 * noncharacter no real text holds), so that token is kept under that name. */
static json_t *load_json(const char *path, bool required, char *err, size_t errlen, int *rc) {
    json_error_t je;
    size_t len;
    char e2[SL_ERR_MAX];
    *rc = 0;
    char *text = sl_read_file(path, &len, e2, sizeof e2);
    if (!text) {
        if (!required) return NULL;
        *rc = sl_err(err, errlen, "%s", e2);
        return NULL;
    }
    for (char *p = text; (p = strstr(p, "\\u0000")) != NULL; p += 6) {
        size_t bs = 0; /* an escaped backslash before it means it is literal text */
        for (char *q = p; q > text && q[-1] == '\\'; q--) bs++;
        if (bs % 2 == 0) memcpy(p, "\\uFDD0", 6);
    }
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &je);
    free(text);
    if (!j) {
        *rc = sl_err(err, errlen, "%s: line %d: %s", path, je.line, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        *rc = sl_err(err, errlen, "%s: not a JSON object", path);
    }
    return j;
}

/* Does the pre_tokenizer / normalizer / decoder tree contain an object with
 * "type": type (searching Sequence members)? Returns it or NULL. */
static json_t *find_typed(json_t *node, const char *type) {
    if (!json_is_object(node)) return NULL;
    const char *ty = json_string_value(json_object_get(node, "type"));
    if (ty && !strcmp(ty, type)) return node;
    const char *lists[] = {"pretokenizers", "normalizers", "decoders", "processors"};
    for (size_t l = 0; l < SL_ARRAY_LEN(lists); l++) {
        json_t *arr = json_object_get(node, lists[l]);
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) {
            json_t *r = find_typed(v, type);
            if (r) return r;
        }
    }
    return NULL;
}

/* The regexes of the Split pre-tokenizers, in order (up to max). */
static size_t split_regexes(json_t *node, const char **out, size_t max) {
    size_t n = 0;
    if (!json_is_object(node)) return 0;
    const char *ty = json_string_value(json_object_get(node, "type"));
    if (ty && !strcmp(ty, "Split")) {
        const char *re = json_string_value(json_object_get(json_object_get(node, "pattern"), "Regex"));
        if (re && n < max) out[n++] = re;
        return n;
    }
    json_t *arr = json_object_get(node, "pretokenizers");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) n += split_regexes(v, out + n, max - n);
    return n;
}

static const char *detect_pre(hf_t *h, char *err, size_t errlen) {
    json_t *pt = json_object_get(h->tj, "pre_tokenizer");
    const char *re[8];
    size_t n = split_regexes(pt, re, 8);
    json_t *model = json_object_get(h->tj, "model");
    bool ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    const char *llama3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                         "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    const char *qwen2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    if (n == 1 && !strcmp(re[0], llama3)) return ignore_merges ? "llama-bpe" : "glm4";
    if (n == 1 && !strcmp(re[0], qwen2)) return "qwen2";
    /* Qwen3.5 / 3.6: Qwen2's with combining marks in words (llama.cpp "qwen35") */
    const char *qwen35 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "
                         "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    if (n == 1 && !strcmp(re[0], qwen35)) return "qwen35";
    /* o200k (GPT-4o, gpt-oss): llama.cpp's "gpt-4o" pre type, same regex
     * with the contractions written (?i:...) */
    const char *o200k =
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
        "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| "
        "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    if (n == 1 && !strcmp(re[0], o200k)) return "gpt-4o";
    if (n == 3 && !strcmp(re[0], "\\p{N}{1,3}") && strstr(re[1], "\xE4\xB8\x80-") &&
        strstr(re[2], "[\\p{L}\\p{M}]+"))
        return "deepseek-v3";
    if (n == 0) {
        json_t *bl = find_typed(pt, "ByteLevel");
        if (bl && !json_is_false(json_object_get(bl, "use_regex"))) return "gpt-2";
    }
    sl_err(err, errlen, "tokenizer.json: unrecognised pre-tokenizer (%zu split regexes%s%s)", n, n ? ": " : "",
           n ? re[0] : "");
    return NULL;
}

/* An integral JSON number (files are read with big integers as reals). */
static bool json_int_val(json_t *v, int64_t *out) {
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= -9e15 && d <= 9e15 && d == (double)(int64_t)d) {
            *out = (int64_t)d;
            return true;
        }
    }
    return false;
}

static const char *cfg_token_text(json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static int64_t find_text(const hf_t *h, const char *s) {
    if (!s) return -1;
    for (size_t i = 0; i < h->n; i++)
        if (h->text[i] && !strcmp(h->text[i], s)) return (int64_t)i;
    return -1;
}

static bool looks_special(const char *s) {
    size_t n = strlen(s);
    if (!strcmp(s, "<pad>") || !strcmp(s, "<mask>")) return true;
    if (n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>")) return true;
    if (n >= 8 && !strncmp(s, "<\xEF\xBD\x9C", 4) && !strcmp(s + n - 4, "\xEF\xBD\x9C>")) return true;
    if (!strncmp(s, "<unused", 7) && s[n - 1] == '>') return true;
    return false;
}

static bool is_byte_piece(const char *s) {
    static const char hex[] = "0123456789ABCDEFabcdef";
    return strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>' && strchr(hex, s[3]) && strchr(hex, s[4]);
}

static int set_token(hf_t *h, int64_t id, const char *s, char *err, size_t errlen) {
    if (id < 0 || (size_t)id >= h->n) return sl_err(err, errlen, "tokenizer.json: token id %lld out of range", (long long)id);
    free(h->text[id]);
    h->text[id] = sl_strdup(s);
    return h->text[id] ? 0 : sl_err(err, errlen, "out of memory");
}

/* Is the text among tokenizer_config's special tokens (bos/eos/unk/sep/pad/
 * cls/mask/additional_special_tokens)? */
static bool cfg_is_special(const hf_t *h, const char *s) {
    const char *keys[] = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++) {
        const char *v = cfg_token_text(json_object_get(h->cfg, keys[i]));
        if (v && !strcmp(v, s)) return true;
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(h->cfg, "additional_special_tokens"), i, v) {
        const char *t = cfg_token_text(v);
        if (t && !strcmp(t, s)) return true;
    }
    return false;
}

static int build_vocab(hf_t *h, char *err, size_t errlen) {
    json_t *model = json_object_get(h->tj, "model");
    json_t *vocab = json_object_get(model, "vocab");
    json_t *added = json_object_get(h->tj, "added_tokens");
    int64_t maxid = -1;
    if (json_is_object(vocab)) {
        const char *k;
        json_t *v;
        json_object_foreach(vocab, k, v) {
            int64_t id;
            if (!json_int_val(v, &id) || id < 0 || id > INT32_MAX / 2)
                return sl_err(err, errlen, "tokenizer.json: bad id for token '%s'", k);
            if (id > maxid) maxid = id;
        }
    } else if (json_is_array(vocab)) {
        maxid = (int64_t)json_array_size(vocab) - 1;
    } else {
        return sl_err(err, errlen, "tokenizer.json: model.vocab missing");
    }
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a) {
        int64_t id;
        if (!json_int_val(json_object_get(a, "id"), &id) || id < 0 || id > INT32_MAX / 2)
            return sl_err(err, errlen, "tokenizer.json: added token %zu has a bad id", i);
        if (id > maxid) maxid = id;
    }
    size_t n = (size_t)(maxid + 1);
    int64_t vs;
    if (json_int_val(json_object_get(h->mcfg, "vocab_size"), &vs) && vs > maxid && vs < INT32_MAX / 2) n = (size_t)vs;
    if (n == 0) return sl_err(err, errlen, "tokenizer.json: empty vocabulary");
    h->n = n;
    h->text = calloc(n, sizeof(char *));
    h->type = calloc(n, sizeof(int32_t));
    h->score = calloc(n, sizeof(float));
    if (!h->text || !h->type || !h->score) return sl_err(err, errlen, "out of memory");

    if (json_is_object(vocab)) {
        const char *k;
        json_t *v;
        json_object_foreach(vocab, k, v) {
            int64_t id = 0;
            (void)json_int_val(v, &id);
            if (set_token(h, id, k, err, errlen) != 0) return -1;
            h->type[id] = TOK_TYPE_NORMAL;
        }
    } else {
        json_t *v;
        json_array_foreach(vocab, i, v) {
            const char *s = json_string_value(json_array_get(v, 0));
            if (!s) return sl_err(err, errlen, "tokenizer.json: bad unigram piece %zu", i);
            if (set_token(h, (int64_t)i, s, err, errlen) != 0) return -1;
            h->type[i] = TOK_TYPE_NORMAL;
            h->score[i] = (float)json_number_value(json_array_get(v, 1));
        }
        h->has_scores = true;
    }
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    json_t *unk_id = json_object_get(model, "unk_id");
    json_array_foreach(added, i, a) {
        const char *s = json_string_value(json_object_get(a, "content"));
        if (!s || !*s) return sl_err(err, errlen, "tokenizer.json: added token %zu has no content", i);
        int64_t id = 0;
        (void)json_int_val(json_object_get(a, "id"), &id);
        bool special = json_is_true(json_object_get(a, "special"));
        if (set_token(h, id, s, err, errlen) != 0) return -1;
        if (!strcmp(h->kind, "gpt2") || !strcmp(h->kind, "bert")) {
            h->type[id] = special || looks_special(s) ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
        } else {
            h->type[id] = special || cfg_is_special(h, s) ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
        }
    }
    int64_t uid;
    for (size_t k = 0; k < n; k++) {
        if (!h->text[k]) {
            char buf[32];
            snprintf(buf, sizeof buf, "[PAD%zu]", k);
            if (set_token(h, (int64_t)k, buf, err, errlen) != 0) return -1;
            h->type[k] = TOK_TYPE_UNUSED;
            continue;
        }
        if (!strcmp(h->kind, "llama") || !strcmp(h->kind, "t5") || !strcmp(h->kind, "gemma4")) {
            if (is_byte_piece(h->text[k])) h->type[k] = TOK_TYPE_BYTE;
            if ((unk && !strcmp(h->text[k], unk)) || (json_int_val(unk_id, &uid) && uid == (int64_t)k))
                h->type[k] = TOK_TYPE_UNKNOWN;
        }
    }
    if (!strcmp(h->kind, "bert")) {
        for (size_t k = 0; k < n; k++) {
            char *s = h->text[k];
            size_t len = strlen(s);
            /* as the converter: control tokens keep their text */
            if (h->type[k] == TOK_TYPE_UNUSED || h->type[k] == TOK_TYPE_CONTROL) continue;
            char *ns;
            if (len >= 2 && s[0] == '#' && s[1] == '#') {
                ns = sl_strdup(s + 2);
            } else {
                ns = malloc(len + 4);
                if (ns) memcpy(ns, "\xE2\x96\x81", 3), memcpy(ns + 3, s, len + 1);
            }
            if (!ns) return sl_err(err, errlen, "out of memory");
            free(s);
            h->text[k] = ns;
        }
    }
    return 0;
}

/* "a b" strings of model.merges (either form: strings, or [a, b] pairs). */
static int merges_list(hf_t *h, char ***out, size_t *n_out, char *err, size_t errlen) {
    json_t *merges = json_object_get(json_object_get(h->tj, "model"), "merges");
    size_t n = json_array_size(merges), i;
    char **m = calloc(n ? n : 1, sizeof(char *));
    if (!m) return sl_err(err, errlen, "out of memory");
    json_t *v;
    json_array_foreach(merges, i, v) {
        if (json_is_string(v)) {
            m[i] = sl_strdup(json_string_value(v));
        } else if (json_is_array(v) && json_array_size(v) == 2 && json_is_string(json_array_get(v, 0)) &&
                   json_is_string(json_array_get(v, 1))) {
            const char *a = json_string_value(json_array_get(v, 0)), *b = json_string_value(json_array_get(v, 1));
            size_t la = strlen(a), lb = strlen(b);
            m[i] = malloc(la + lb + 2);
            if (m[i]) memcpy(m[i], a, la), m[i][la] = ' ', memcpy(m[i] + la + 1, b, lb + 1);
        } else {
            for (size_t k = 0; k < i; k++) free(m[k]);
            free(m);
            return sl_err(err, errlen, "tokenizer.json: merge %zu is malformed", i);
        }
        if (!m[i]) {
            for (size_t k = 0; k < i; k++) free(m[k]);
            free(m);
            return sl_err(err, errlen, "out of memory");
        }
    }
    *out = m;
    *n_out = n;
    return 0;
}

/* SentencePiece scores from merge ranks: the piece a merge of rank r makes
 * scores -(r+1); pieces no merge makes score -1e9 - id (never preferred),
 * single characters and special pieces 0. */
static int spm_scores(hf_t *h, char **merges, size_t n_merges) {
    for (size_t k = 0; k < h->n; k++) {
        const char *s = h->text[k];
        size_t len = strlen(s), cl = 1;
        unsigned char c = (unsigned char)s[0];
        cl = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        h->score[k] = h->type[k] == TOK_TYPE_NORMAL && len > cl ? -1e9f - (float)k : 0.0f;
    }
    /* text -> id via a temporary sorted index would be faster; a hash keeps it simple */
    size_t cap = 16;
    while (cap < h->n * 2) cap *= 2;
    int32_t *tab = malloc(cap * sizeof(int32_t));
    if (!tab) return -1;
    memset(tab, 0xFF, cap * sizeof(int32_t));
    for (size_t k = 0; k < h->n; k++) {
        uint64_t x = 1469598103934665603ULL;
        for (const char *p = h->text[k]; *p; p++) x = (x ^ (uint8_t)*p) * 1099511628211ULL;
        size_t j = x & (cap - 1);
        while (tab[j] >= 0) j = (j + 1) & (cap - 1);
        tab[j] = (int32_t)k;
    }
    for (size_t r = n_merges; r-- > 0;) {
        char *m = merges[r];
        char *sp = strchr(m + (m[0] ? 1 : 0), ' ');
        if (!sp) continue;
        /* the merged text is m without the separating space */
        size_t la = (size_t)(sp - m), lb = strlen(sp + 1);
        char *joined = malloc(la + lb + 1);
        if (!joined) {
            free(tab);
            return -1;
        }
        memcpy(joined, m, la), memcpy(joined + la, sp + 1, lb + 1);
        uint64_t x = 1469598103934665603ULL;
        for (const char *p = joined; *p; p++) x = (x ^ (uint8_t)*p) * 1099511628211ULL;
        for (size_t j = x & (cap - 1); tab[j] >= 0; j = (j + 1) & (cap - 1)) {
            if (!strcmp(h->text[tab[j]], joined)) {
                if (h->type[tab[j]] == TOK_TYPE_NORMAL) h->score[tab[j]] = -(float)(r + 1);
                break;
            }
        }
        free(joined);
    }
    free(tab);
    h->has_scores = true;
    return 0;
}

static int write_id(gguf_writer_t *w, const hf_t *h, const char *key, const char *text, json_t *fallback) {
    int64_t id = find_text(h, text);
    int64_t v;
    if (id < 0 && json_int_val(fallback, &v) && v >= 0 && (size_t)v < h->n) id = v;
    if (id < 0) return 0;
    return gguf_writer_set_u32(w, key, (uint32_t)id);
}

/* add_bos / add_eos from the post-processor's single template. */
static void template_flags(const hf_t *h, const char *bos, const char *eos, int *add_bos, int *add_eos) {
    json_t *tp = find_typed(json_object_get(h->tj, "post_processor"), "TemplateProcessing");
    json_t *single = json_object_get(tp, "single");
    if (!json_is_array(single) || json_array_size(single) == 0) return;
    const char *first = json_string_value(json_object_get(json_object_get(json_array_get(single, 0), "SpecialToken"), "id"));
    const char *last = json_string_value(
        json_object_get(json_object_get(json_array_get(single, json_array_size(single) - 1), "SpecialToken"), "id"));
    *add_bos = first && bos && !strcmp(first, bos);
    *add_eos = last && eos && !strcmp(last, eos);
}

static int dirname_join(const char *path, const char *name, char *out, size_t outlen) {
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path + 1) : 0;
    int k = snprintf(out, outlen, "%.*s%s", (int)dl, path, name);
    return k > 0 && (size_t)k < outlen ? 0 : -1;
}

static int prepare(hf_t *h, const char *tj_path, const char *cfg_path, char *err, size_t errlen) {
    int rc;
    h->tj = load_json(tj_path, true, err, errlen, &rc);
    if (rc) return -1;
    if (cfg_path) {
        h->cfg = load_json(cfg_path, true, err, errlen, &rc);
        if (rc) return -1;
    }
    char mc[4096];
    if (dirname_join(tj_path, "config.json", mc, sizeof mc) == 0) {
        h->mcfg = load_json(mc, false, err, errlen, &rc);
        if (rc) return -1;
    }
    json_t *model = json_object_get(h->tj, "model");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!type) {
        /* older files omit model.type: merges mean BPE */
        type = json_object_get(model, "merges") ? "BPE" : NULL;
    }
    if (!type) return sl_err(err, errlen, "%s: model.type missing", tj_path);
    if (!strcmp(type, "BPE")) {
        json_t *norm = json_object_get(h->tj, "normalizer"), *pt = json_object_get(h->tj, "pre_tokenizer");
        bool spm = json_is_true(json_object_get(model, "byte_fallback")) || find_typed(pt, "Metaspace") ||
                   (find_typed(norm, "Replace") &&
                    !strcmp(json_string_value(json_object_get(find_typed(norm, "Replace"), "content")) ?: "", "\xE2\x96\x81"));
        /* Gemma 4: rank BPE over raw UTF-8, spaces as "▁" and nothing
         * prefixed (Metaspace never, no split), byte fallback: what
         * llama.cpp's converter writes as "gemma4" */
        json_t *meta = find_typed(pt, "Metaspace");
        const char *scheme = json_string_value(json_object_get(meta, "prepend_scheme"));
        bool g4 = json_is_true(json_object_get(model, "byte_fallback")) && meta && scheme && !strcmp(scheme, "never") &&
                  json_is_false(json_object_get(meta, "split"));
        h->kind = g4 ? "gemma4" : spm ? "llama" : "gpt2";
    } else if (!strcmp(type, "WordPiece")) {
        h->kind = "bert";
    } else if (!strcmp(type, "Unigram")) {
        h->kind = "t5";
    } else {
        return sl_err(err, errlen, "%s: unsupported tokenizer model type '%s'", tj_path, type);
    }
    return build_vocab(h, err, errlen);
}

long tok_hf_vocab_size(const char *tokenizer_json_path, char *err, size_t errlen) {
    hf_t h = {0};
    long n = -1;
    if (prepare(&h, tokenizer_json_path, NULL, err, errlen) == 0) n = (long)h.n;
    hf_free(&h);
    return n;
}

int tok_hf_to_gguf(gguf_writer_t *w, const char *tj_path, const char *cfg_path, char *err, size_t errlen) {
    hf_t h = {0};
    char **merges = NULL;
    size_t n_merges = 0;
    int rc = -1;
    bool oom = false;
    if (prepare(&h, tj_path, cfg_path, err, errlen) != 0) goto done;

    oom |= gguf_writer_set_str(w, "tokenizer.ggml.model", h.kind) != 0;
    if (!strcmp(h.kind, "gpt2")) {
        const char *pre = detect_pre(&h, err, errlen);
        if (!pre) goto done;
        oom |= gguf_writer_set_str(w, "tokenizer.ggml.pre", pre) != 0;
    } else if (!strcmp(h.kind, "bert") || !strcmp(h.kind, "t5")) {
        oom |= gguf_writer_set_str(w, "tokenizer.ggml.pre", "default") != 0;
    }
    oom |= gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)h.text, NULL, h.n) != 0;
    if (!strcmp(h.kind, "llama") || !strcmp(h.kind, "gpt2") || !strcmp(h.kind, "gemma4")) {
        if (merges_list(&h, &merges, &n_merges, err, errlen) != 0) goto done;
    }
    if (!strcmp(h.kind, "llama") && spm_scores(&h, merges, n_merges) != 0) {
        sl_err(err, errlen, "out of memory");
        goto done;
    }
    if (h.has_scores) oom |= gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, h.score, h.n) != 0;
    oom |= gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, h.type, h.n) != 0;
    if (!strcmp(h.kind, "gpt2") || !strcmp(h.kind, "gemma4"))
        oom |= gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, NULL, n_merges) != 0;

    const char *bos = cfg_token_text(json_object_get(h.cfg, "bos_token"));
    const char *eos = cfg_token_text(json_object_get(h.cfg, "eos_token"));
    const char *unk = cfg_token_text(json_object_get(h.cfg, "unk_token"));
    const char *sep = cfg_token_text(json_object_get(h.cfg, "sep_token"));
    const char *pad = cfg_token_text(json_object_get(h.cfg, "pad_token"));
    const char *cls = cfg_token_text(json_object_get(h.cfg, "cls_token"));
    const char *mask = cfg_token_text(json_object_get(h.cfg, "mask_token"));
    if (!unk) unk = json_string_value(json_object_get(json_object_get(h.tj, "model"), "unk_token"));
    if (!strcmp(h.kind, "bert") && !bos) bos = cls;
    oom |= write_id(w, &h, "tokenizer.ggml.bos_token_id", bos, json_object_get(h.mcfg, "bos_token_id")) != 0;
    oom |= write_id(w, &h, "tokenizer.ggml.eos_token_id", eos, json_object_get(h.mcfg, "eos_token_id")) != 0;
    oom |= write_id(w, &h, "tokenizer.ggml.unknown_token_id", unk, NULL) != 0;
    oom |= write_id(w, &h, "tokenizer.ggml.seperator_token_id", sep, NULL) != 0;
    oom |= write_id(w, &h, "tokenizer.ggml.padding_token_id", pad, json_object_get(h.mcfg, "pad_token_id")) != 0;
    if (!strcmp(h.kind, "bert")) {
        oom |= write_id(w, &h, "tokenizer.ggml.cls_token_id", cls, NULL) != 0;
        oom |= write_id(w, &h, "tokenizer.ggml.mask_token_id", mask, NULL) != 0;
    }

    int add_bos = -1, add_eos = -1;
    template_flags(&h, bos, eos, &add_bos, &add_eos);
    json_t *ab = json_object_get(h.cfg, "add_bos_token"), *ae = json_object_get(h.cfg, "add_eos_token");
    if (json_is_boolean(ab)) add_bos = json_is_true(ab);
    if (json_is_boolean(ae)) add_eos = json_is_true(ae);
    if (add_bos >= 0 || add_eos >= 0) {
        oom |= gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos > 0) != 0;
        oom |= gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos > 0) != 0;
    }
    if (!strcmp(h.kind, "llama") || !strcmp(h.kind, "t5")) {
        json_t *norm = json_object_get(h.tj, "normalizer"), *pt = json_object_get(h.tj, "pre_tokenizer");
        json_t *prep = find_typed(norm, "Prepend"), *meta = find_typed(pt, "Metaspace");
        const char *scheme = json_string_value(json_object_get(meta, "prepend_scheme"));
        bool prefix = (prep && !strcmp(json_string_value(json_object_get(prep, "prepend")) ?: "", "\xE2\x96\x81")) ||
                      (meta && (scheme ? strcmp(scheme, "never") != 0 : json_is_true(json_object_get(meta, "add_prefix_space"))));
        oom |= gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", prefix) != 0;
    }
    if (!strcmp(h.kind, "gemma4")) oom |= gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", false) != 0;

    if (!strcmp(h.kind, "bert")) {
        /* BertNormalizer's flags (llama.cpp has no keys for them and always
         * lowercases); strip_accents null follows lowercase */
        json_t *bn = find_typed(json_object_get(h.tj, "normalizer"), "BertNormalizer");
        bool lower = bn ? !json_is_false(json_object_get(bn, "lowercase")) : true;
        json_t *sa = json_object_get(bn, "strip_accents");
        bool strip = json_is_boolean(sa) ? json_is_true(sa) : lower;
        oom |= gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.lowercase", lower) != 0;
        oom |= gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.strip_accents", strip) != 0;
    }
    if (!strcmp(h.kind, "t5")) {
        /* SentencePiece's normalizer: the Precompiled charsmap (base64 in
         * tokenizer.json), and remove_extra_whitespaces where the
         * normalizer also collapses runs of spaces (XLM-R's Replace(" {2,}", " ")) */
        json_t *norm = json_object_get(h.tj, "normalizer");
        json_t *pc = find_typed(norm, "Precompiled");
        const char *b64 = json_string_value(json_object_get(pc, "precompiled_charsmap"));
        if (b64 && *b64) {
            const size_t bl = strlen(b64);
            unsigned char *bin = bl < (size_t)INT32_MAX ? malloc(bl / 4 * 3 + 3) : NULL;
            const int got = bin ? EVP_DecodeBlock(bin, (const unsigned char *)b64, (int)bl) : -1;
            if (got < 0 || bl % 4 != 0) {
                free(bin);
                sl_err(err, errlen, "%s: normalizer.precompiled_charsmap is not valid base64", tj_path);
                goto done;
            }
            /* EVP_DecodeBlock counts the '=' padding as zero bytes */
            const size_t n = (size_t)got - (bl >= 1 && b64[bl - 1] == '=') - (bl >= 2 && b64[bl - 2] == '=');
            oom |= gguf_writer_set_arr(w, "tokenizer.ggml.precompiled_charsmap", GGUF_VT_UINT8, bin, n) != 0;
            free(bin);
        }
        json_t *rp = find_typed(norm, "Replace");
        const char *rx = json_string_value(json_object_get(json_object_get(rp, "pattern"), "Regex"));
        oom |= gguf_writer_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", rx && !strcmp(rx, " {2,}")) != 0;
    }
    if (!strcmp(h.kind, "bert") || !strcmp(h.kind, "t5")) {
        /* decoding's clean-up of spaces before punctuation: tokenizer_config's
         * clean_up_tokenization_spaces, else the WordPiece decoder's cleanup */
        json_t *cu = json_object_get(h.cfg, "clean_up_tokenization_spaces");
        json_t *dec = find_typed(json_object_get(h.tj, "decoder"), "WordPiece");
        bool clean = json_is_boolean(cu) ? json_is_true(cu) : dec && json_is_true(json_object_get(dec, "cleanup"));
        oom |= gguf_writer_set_bool(w, "tokenizer.ggml.clean_spaces", clean) != 0;
    }

    json_t *tmpl = json_object_get(h.cfg, "chat_template");
    if (json_is_array(tmpl)) { /* [{name, template}, ...]: the default one */
        size_t i;
        json_t *v, *pick = NULL;
        json_array_foreach(tmpl, i, v) {
            const char *nm = json_string_value(json_object_get(v, "name"));
            if (nm && !strcmp(nm, "default")) pick = json_object_get(v, "template");
        }
        tmpl = pick;
    }
    if (json_is_string(tmpl)) oom |= gguf_writer_set_str(w, "tokenizer.chat_template", json_string_value(tmpl)) != 0;

    if (oom) {
        sl_err(err, errlen, "out of memory writing tokenizer keys");
        goto done;
    }
    rc = 0;
done:
    for (size_t i = 0; i < n_merges; i++) free(merges[i]);
    free(merges);
    hf_free(&h);
    return rc;
}

sl_tok_t *tok_load_hf_dir(const char *dir, char *err, size_t errlen) {
    char tj[4096], tc[4096], tmp[] = "/tmp/silica-tok-XXXXXX";
    if (snprintf(tj, sizeof tj, "%s/tokenizer.json", dir) >= (int)sizeof tj ||
        snprintf(tc, sizeof tc, "%s/tokenizer_config.json", dir) >= (int)sizeof tc) {
        sl_err(err, errlen, "path too long: %s", dir);
        return NULL;
    }
    FILE *fp = fopen(tc, "rb");
    if (fp) fclose(fp);
    gguf_writer_t *w = gguf_writer_new();
    if (!w) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    sl_tok_t *t = NULL;
    int fd = -1;
    if (tok_hf_to_gguf(w, tj, fp ? tc : NULL, err, errlen) != 0) goto done;
    fd = mkstemp(tmp);
    if (fd < 0) {
        sl_err(err, errlen, "cannot create a temporary file");
        goto done;
    }
    if (gguf_writer_write(w, tmp, err, errlen) == 0) {
        gguf_file_t *f = gguf_open(tmp, err, errlen);
        if (f) {
            t = tok_load(f, err, errlen);
            gguf_close(f);
        }
    }
    unlink(tmp);
    close(fd);
done:
    gguf_writer_free(w);
    return t;
}
