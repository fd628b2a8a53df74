/*
 * ugm.c — Unigram (tokenizer.ggml.model "t5"): the best-scoring
 * segmentation by Viterbi over the vocab pieces.
 *
 * Spaces become "▁" (with add_space_prefix one is put in front unless the
 * text starts with one, as Metaspace's prepend_scheme "always"). At each
 * character boundary every vocab piece starting there is tried; a piece's
 * score is its log-probability (user-defined pieces score 0); a character
 * no piece covers costs min_score - 10 as <unk>, and runs of <unk> collapse
 * into one, like SentencePiece. Scores are summed in double, as the
 * reference does, so ties resolve the same way.
 *
 * Normalisation first, as SentencePiece does: with a precompiled_charsmap
 * (XLM-R, T5: NFKC-like folding, control characters dropped, odd spaces
 * made plain) the longest byte prefix the charsmap's double array knows is
 * replaced by its string, any other character kept (an invalid UTF-8 byte
 * becomes U+FFFD); with remove_extra_whitespaces, leading and trailing
 * spaces go and runs of them become one.
 */
#include "tokenizer/tok_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"

typedef struct best {
    double score;
    size_t from;
    int32_t id;
} best_t;

static bool ugm_piece(const sl_tok_t *t, int32_t id) {
    uint8_t ty = t->type[id];
    return ty == TOK_TYPE_NORMAL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNUSED;
}

void ugm_init(sl_tok_t *t) {
    float min_score = FLT_MAX;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->type[id] == TOK_TYPE_NORMAL && t->scores[id] < min_score) min_score = t->scores[id];
    if (min_score == FLT_MAX) min_score = 0;
    t->ugm_unk_score = (double)min_score - 10.0;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int ugm_load_charsmap(sl_tok_t *t, const gguf_file_t *f, char *err, size_t errlen) {
    t->ugm_ws = gguf_get_bool_or(f, "tokenizer.ggml.remove_extra_whitespaces", false);
    const int64_t k = gguf_find_key(f, "tokenizer.ggml.precompiled_charsmap");
    if (k < 0) return 0;
    if (gguf_kv_type(f, (size_t)k) != GGUF_VT_ARRAY ||
        (gguf_arr_type(f, (size_t)k) != GGUF_VT_UINT8 && gguf_arr_type(f, (size_t)k) != GGUF_VT_INT8))
        return sl_err(err, errlen, "tokenizer: precompiled_charsmap must be an array of bytes");
    const size_t n = gguf_arr_len(f, (size_t)k);
    if (n == 0) return 0;
    if (n < 4) return sl_err(err, errlen, "tokenizer: precompiled_charsmap is %zu bytes, too short", n);
    const uint8_t *d = gguf_arr_data(f, (size_t)k);
    const uint32_t blob = le32(d); /* little-endian in the file, as the units */
    if (blob % 4 != 0 || (size_t)blob >= n - 4)
        return sl_err(err, errlen, "tokenizer: precompiled_charsmap's double array (%u bytes) does not fit its %zu bytes",
                      blob, n);
    t->xcda_n = blob / 4;
    t->charsmap_str_n = n - 4 - blob;
    t->xcda = malloc((t->xcda_n ? t->xcda_n : 1) * sizeof *t->xcda);
    t->charsmap_str = malloc(t->charsmap_str_n);
    if (!t->xcda || !t->charsmap_str) return sl_err(err, errlen, "tokenizer: out of memory");
    for (size_t i = 0; i < t->xcda_n; i++) t->xcda[i] = le32(d + 4 + 4 * i);
    memcpy(t->charsmap_str, d + 4 + blob, t->charsmap_str_n);
    return 0;
}

/* darts-clone unit fields */
static uint32_t xcda_base(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static uint32_t xcda_label(uint32_t u) { return u & ((1u << 31) | 0xFFu); }
static bool xcda_leaf(uint32_t u) { return (u >> 8) & 1u; }
static uint32_t xcda_value(uint32_t u) { return u & ((1u << 31) - 1); }

/* The longest prefix of s[0..n) the charsmap maps: its length (0: none)
 * and replacement offset. Units outside the array end the walk. */
static size_t charsmap_match(const sl_tok_t *t, const char *s, size_t n, uint32_t *value) {
    size_t best = 0;
    if (t->xcda_n == 0) return 0;
    size_t node = xcda_base(t->xcda[0]);
    for (size_t i = 0; i < n; i++) {
        const uint8_t c = (uint8_t)s[i];
        if (c == 0) break;
        node ^= c;
        if (node >= t->xcda_n || xcda_label(t->xcda[node]) != c) break;
        const bool leaf = xcda_leaf(t->xcda[node]);
        node ^= xcda_base(t->xcda[node]);
        if (node >= t->xcda_n) break;
        if (leaf) {
            best = i + 1;
            *value = xcda_value(t->xcda[node]);
        }
    }
    return best;
}

static int ugm_encode_normalized(const sl_tok_t *t, const char *text, size_t len, bool prefix_space, tok_ids_t *out,
                                 char *err, size_t errlen);

/* SentencePiece's normalisation of text into out (see the top). */
static int ugm_normalize(const sl_tok_t *t, const char *text, size_t len, sl_buf_t *out, char *err, size_t errlen) {
    for (size_t i = 0; i < len;) {
        uint32_t v = 0;
        const size_t m = t->xcda ? charsmap_match(t, text + i, len - i, &v) : 0;
        if (m > 0) {
            if (v >= t->charsmap_str_n)
                return sl_err(err, errlen, "tokenizer: precompiled_charsmap names a replacement outside its strings");
            const char *r = t->charsmap_str + v;
            const void *z = memchr(r, 0, t->charsmap_str_n - v);
            if (!z) return sl_err(err, errlen, "tokenizer: precompiled_charsmap has an unterminated replacement");
            if (sl_buf_append(out, r, (size_t)((const char *)z - r)) != 0) goto oom;
            i += m;
            continue;
        }
        uint32_t cp;
        const size_t cl = tok_utf8_decode((const uint8_t *)text + i, len - i, &cp);
        if (cp == 0xFFFD && cl == 1) { /* an invalid byte: U+FFFD */
            if (sl_buf_append(out, "\xEF\xBF\xBD", 3) != 0) goto oom;
            i++;
        } else {
            if (sl_buf_append(out, text + i, cl) != 0) goto oom;
            i += cl;
        }
    }
    if (t->ugm_ws) { /* trim, and runs of spaces become one */
        size_t w = 0;
        bool space = true; /* drops leading spaces */
        for (size_t r = 0; r < out->len; r++) {
            if (out->data[r] == ' ') {
                if (space) continue;
                space = true;
            } else {
                space = false;
            }
            out->data[w++] = out->data[r];
        }
        if (w > 0 && out->data[w - 1] == ' ') w--;
        out->len = w;
        if (out->data) out->data[w] = '\0';
    }
    return 0;
oom:
    return sl_err(err, errlen, "tokenizer: out of memory");
}

int ugm_encode(const sl_tok_t *t, const char *text, size_t len, bool prefix_space, tok_ids_t *out, char *err,
               size_t errlen) {
    sl_buf_t norm = {0};
    if (t->xcda || t->ugm_ws) {
        if (ugm_normalize(t, text, len, &norm, err, errlen) != 0) {
            sl_buf_free(&norm);
            return -1;
        }
        /* nothing left (only spaces or dropped characters): no pieces */
        int rc = norm.len ? ugm_encode_normalized(t, norm.data, norm.len, prefix_space, out, err, errlen) : 0;
        sl_buf_free(&norm);
        return rc;
    }
    return ugm_encode_normalized(t, text, len, prefix_space, out, err, errlen);
}

static int ugm_encode_normalized(const sl_tok_t *t, const char *text, size_t len, bool prefix_space, tok_ids_t *out,
                                 char *err, size_t errlen) {
    sl_buf_t s = {0};
    best_t *b = NULL;
    int32_t *rev = NULL;
    int rc = -1;
    /* Metaspace: "▁" goes in front unless the text already starts with one
     * (a space, or a literal "▁") */
    bool starts_ws = len > 0 && (text[0] == ' ' || (len >= 3 && memcmp(text, "\xE2\x96\x81", 3) == 0));
    if (prefix_space && !starts_ws && sl_buf_append(&s, "\xE2\x96\x81", 3) != 0) goto oom;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            if (sl_buf_append(&s, "\xE2\x96\x81", 3) != 0) goto oom;
        } else if (sl_buf_putc(&s, text[i]) != 0) {
            goto oom;
        }
    }
    size_t n = s.len;
    if (n == 0) {
        rc = 0;
        goto done;
    }
    double unk_score = t->ugm_unk_score;

    b = malloc((n + 1) * sizeof(best_t));
    if (!b) goto oom;
    for (size_t i = 0; i <= n; i++) b[i] = (best_t){-DBL_MAX, 0, -1};
    b[0].score = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = tok_utf8_len((uint8_t)s.data[i]);
        if (cl > n - i) cl = n - i;
        bool single = false;
        if (b[i].score > -DBL_MAX) {
            size_t maxl = SL_MIN(n - i, t->max_token_len);
            uint64_t h = TOK_FNV_INIT; /* hash of s[i..i+l), grown a byte at a time */
            for (size_t l = 1; l <= maxl; l++) {
                h = tok_fnv_step(h, s.data + i + l - 1, 1);
                /* pieces are whole characters: skip ends inside one */
                if (i + l < n && ((uint8_t)s.data[i + l] & 0xC0) == 0x80) continue;
                int32_t id = tok_lookup_fnv(t, s.data + i, l, h);
                if (id < 0 || !ugm_piece(t, id)) continue;
                if (l == cl) single = true;
                double sc = b[i].score + (t->type[id] == TOK_TYPE_USER_DEFINED ? 0.0 : (double)t->scores[id]);
                if (sc > b[i + l].score) b[i + l] = (best_t){sc, i, id};
            }
            if (!single) {
                double sc = b[i].score + unk_score;
                if (sc > b[i + cl].score) b[i + cl] = (best_t){sc, i, t->unk};
            }
        }
        i += cl;
    }
    /* backtrack, collapsing runs of <unk> */
    rev = malloc((n + 1) * sizeof(int32_t));
    if (!rev) goto oom;
    size_t m = 0;
    bool prev_unk = false;
    for (size_t p = n; p > 0; p = b[p].from) {
        bool unk = b[p].id == t->unk;
        if (!(prev_unk && unk)) rev[m++] = b[p].id;
        prev_unk = unk;
    }
    while (m > 0) {
        int32_t id = rev[--m];
        if (id >= 0 && tok_ids_push(out, id) != 0) goto oom;
    }
    rc = 0;
    goto done;
oom:
    sl_err(err, errlen, "tokenizer: out of memory");
done:
    sl_buf_free(&s);
    free(b);
    free(rev);
    return rc;
}
