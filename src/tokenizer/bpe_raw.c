/*
 * bpe_raw.c — rank BPE over raw UTF-8 (tokenizer.ggml.model "gemma4":
 * Gemma 4), as llama.cpp's loader runs that model:
 *  1. every space (U+0020) becomes "▁" (U+2581); no space is prefixed;
 *  2. the text is cut into runs of '\n' and runs of anything else (the
 *     reference's only pre-split: its merge table holds no newline pair);
 *     a newline run that is itself a token is that token;
 *  3. each run starts as one symbol per UTF-8 character (an invalid byte is
 *     a symbol of its own) and merges (tokenizer.ggml.merges) apply lowest
 *     rank first, leftmost on ties, through a binary heap of (rank,
 *     position) keys with lazy invalidation: O(n log n) per run;
 *  4. a symbol that is no token (a character outside the vocabulary, an
 *     invalid byte) becomes its bytes' <0xNN> tokens; where one of them is
 *     missing, the symbol is one <unk> when the file has it (Hugging Face's
 *     fallback), else nothing (as llama.cpp).
 * Special tokens were split out before (tokenizer.c); decoding is
 * SentencePiece's (▁ -> space, <0xNN> -> byte) in tokenizer.c.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct rsym {
    uint32_t start, len; /* bytes of the escaped text */
    int32_t id;          /* token, or -1 */
    int32_t prev, next;  /* -1 at the ends; len 0 once merged away */
} rsym_t;

/* Queues the pair that symbol l starts, if the merge table has it. */
static int queue_pair(const sl_tok_t *t, tok_heap_t *h, const rsym_t *sy, int32_t l) {
    if (l < 0 || sy[l].next < 0) return 0;
    int32_t rank, res;
    if (bpe_merge_of(t, sy[l].id, sy[sy[l].next].id, &rank, &res) != 0) return 0;
    return tok_heap_push(h, (uint64_t)(uint32_t)rank << 32 | (uint32_t)l);
}

/* A symbol that is no token: its <0xNN> tokens, or one <unk> when a byte
 * has none (Hugging Face's fallback; nothing without an <unk>). */
static int emit_bytes(const sl_tok_t *t, const uint8_t *s, size_t n, tok_ids_t *out) {
    for (size_t i = 0; i < n; i++)
        if (t->byte_tok[s[i]] < 0) return t->unk >= 0 ? tok_ids_push(out, t->unk) : 0;
    for (size_t i = 0; i < n; i++)
        if (tok_ids_push(out, t->byte_tok[s[i]]) != 0) return -1;
    return 0;
}

/* One run (no '\n' inside, or only '\n'): merge and emit. */
static int encode_run(const sl_tok_t *t, const uint8_t *s, size_t n, rsym_t **syms, size_t *cap, tok_heap_t *h,
                      tok_ids_t *out) {
    if (s[0] == '\n') {
        int32_t id = tok_lookup(t, (const char *)s, n);
        if (id >= 0) return tok_ids_push(out, id);
    }
    if (n > *cap) {
        rsym_t *v = realloc(*syms, n * sizeof *v);
        if (!v) return -1;
        *syms = v;
        *cap = n;
    }
    rsym_t *sy = *syms;
    int32_t m = 0;
    for (size_t i = 0; i < n; m++) {
        uint32_t cp;
        size_t k = tok_utf8_decode(s + i, n - i, &cp); /* 1 for an invalid byte */
        sy[m] = (rsym_t){(uint32_t)i, (uint32_t)k, tok_lookup(t, (const char *)s + i, k), m - 1, -1};
        if (m > 0) sy[m - 1].next = m;
        i += k;
    }
    h->n = 0;
    for (int32_t i = 0; i + 1 < m; i++)
        if (queue_pair(t, h, sy, i) != 0) return -1;
    while (h->n) {
        uint64_t key = tok_heap_pop(h);
        int32_t l = (int32_t)(uint32_t)key, rank = (int32_t)(key >> 32), r = sy[l].next;
        if (sy[l].len == 0 || r < 0) continue;
        int32_t cur, res;
        if (bpe_merge_of(t, sy[l].id, sy[r].id, &cur, &res) != 0 || cur != rank) continue; /* stale */
        sy[l].len += sy[r].len;
        sy[l].id = res;
        sy[r].len = 0;
        sy[l].next = sy[r].next;
        if (sy[r].next >= 0) sy[sy[r].next].prev = l;
        if (queue_pair(t, h, sy, sy[l].prev) != 0 || queue_pair(t, h, sy, l) != 0) return -1;
    }
    for (int32_t i = 0; i >= 0 && m > 0; i = sy[i].next) {
        if (sy[i].id >= 0) {
            if (tok_ids_push(out, sy[i].id) != 0) return -1;
        } else if (emit_bytes(t, s + sy[i].start, sy[i].len, out) != 0) {
            return -1;
        }
    }
    return 0;
}

int g4_encode(const sl_tok_t *t, const char *text, size_t len, tok_ids_t *out, char *err, size_t errlen) {
    if (len == 0) return 0;
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    if (len > (SIZE_MAX - 1) / 3 || len > UINT32_MAX / 3) return sl_err(err, errlen, "tokenizer: text too long");
    size_t n = len + 2 * spaces;
    uint8_t *s = malloc(n);
    if (!s) return sl_err(err, errlen, "tokenizer: out of memory");
    for (size_t i = 0, j = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s + j, "\xE2\x96\x81", 3);
            j += 3;
        } else {
            s[j++] = (uint8_t)text[i];
        }
    }
    rsym_t *syms = NULL;
    size_t cap = 0;
    tok_heap_t h = {0};
    int rc = 0;
    for (size_t p = 0; p < n && rc == 0;) {
        bool nl = s[p] == '\n';
        size_t q = p + 1;
        while (q < n && (s[q] == '\n') == nl) q++;
        rc = encode_run(t, s + p, q - p, &syms, &cap, &h, out);
        p = q;
    }
    free(s);
    free(syms);
    free(h.v);
    return rc == 0 ? 0 : sl_err(err, errlen, "tokenizer: out of memory");
}
