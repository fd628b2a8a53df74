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
 * Not implemented: the precompiled_charsmap normalisation some Unigram
 * models carry (tokenizer.ggml.precompiled_charsmap); text is used as is.
 */
#include "tokenizer/tok_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

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

int ugm_encode(const sl_tok_t *t, const char *text, size_t len, bool prefix_space, tok_ids_t *out, char *err,
               size_t errlen) {
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
