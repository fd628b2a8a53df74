/*
 * spm.c — SentencePiece BPE (tokenizer.ggml.model "llama": Llama 2,
 * Mistral v1, InternLM2, ...).
 *
 * The fragment's spaces become U+2581 "▁" (and one is put in front when the
 * model's add_space_prefix asks for it at the start / after a special
 * token). Symbols start as single UTF-8 characters; the adjacent pair whose
 * concatenation is the vocab piece with the highest score merges first
 * (ties: leftmost), until no pair forms a piece. A symbol that is not a
 * piece falls back to its bytes as <0xNN> tokens (or <unk> without them).
 *
 * Only normal and user-defined pieces take part in merging: text can never
 * merge into a control, byte or unused token (so "<s>" typed by a user
 * stays text).
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct spm_sym {
    size_t off; /* into the escaped text */
    size_t n;   /* bytes; 0 once merged away */
    int32_t prev, next;
} spm_sym_t;

typedef struct spm_cand {
    float score;
    int32_t left, right;
    size_t size;
} spm_cand_t;

typedef struct spm_heap {
    spm_cand_t *v;
    size_t n, cap;
} spm_heap_t;

static bool cand_before(const spm_cand_t *a, const spm_cand_t *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(spm_heap_t *h, spm_cand_t c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        spm_cand_t *v = realloc(h->v, cap * sizeof(*v));
        if (!v) return -1;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return 0;
}

static spm_cand_t heap_pop(spm_heap_t *h) {
    spm_cand_t top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const spm_cand_t *best = &last;
        if (l < h->n && cand_before(&h->v[l], best)) m = l, best = &h->v[l];
        if (r < h->n && cand_before(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* A piece text can become: normal or user-defined tokens only. */
static int32_t piece_id(const sl_tok_t *t, const char *s, size_t n) {
    int32_t id = tok_lookup(t, s, n);
    if (id < 0) return -1;
    uint8_t ty = t->type[id];
    return ty == TOK_TYPE_NORMAL || ty == TOK_TYPE_USER_DEFINED ? id : -1;
}

static int try_bigram(const sl_tok_t *t, spm_heap_t *h, const spm_sym_t *syms, const char *text, int32_t left,
                      int32_t right) {
    if (left < 0 || right < 0) return 0;
    size_t size = syms[left].n + syms[right].n;
    int32_t id = piece_id(t, text + syms[left].off, size);
    if (id < 0) return 0;
    spm_cand_t c = {t->scores[id], left, right, size};
    return heap_push(h, c);
}

int spm_encode(const sl_tok_t *t, const char *text, size_t len, bool prefix_space, tok_ids_t *out, char *err,
               size_t errlen) {
    sl_buf_t esc = {0};
    spm_sym_t *syms = NULL;
    spm_heap_t heap = {0};
    int rc = -1;
    if (prefix_space && sl_buf_append(&esc, "\xE2\x96\x81", 3) != 0) goto oom;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            if (sl_buf_append(&esc, "\xE2\x96\x81", 3) != 0) goto oom;
        } else if (sl_buf_putc(&esc, text[i]) != 0) {
            goto oom;
        }
    }
    if (esc.len == 0) {
        rc = 0;
        goto done;
    }
    syms = malloc(esc.len * sizeof(spm_sym_t));
    if (!syms) goto oom;
    size_t n = 0;
    for (size_t off = 0; off < esc.len;) {
        size_t k = tok_utf8_len((uint8_t)esc.data[off]);
        if (k > esc.len - off) k = esc.len - off;
        syms[n].off = off;
        syms[n].n = k;
        syms[n].prev = (int32_t)n - 1;
        off += k;
        syms[n].next = off < esc.len ? (int32_t)n + 1 : -1;
        n++;
    }
    for (size_t i = 1; i < n; i++)
        if (try_bigram(t, &heap, syms, esc.data, (int32_t)i - 1, (int32_t)i) != 0) goto oom;
    while (heap.n) {
        spm_cand_t c = heap_pop(&heap);
        spm_sym_t *l = &syms[c.left], *r = &syms[c.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != c.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) syms[r->next].prev = c.left;
        if (try_bigram(t, &heap, syms, esc.data, l->prev, c.left) != 0) goto oom;
        if (try_bigram(t, &heap, syms, esc.data, c.left, l->next) != 0) goto oom;
    }
    for (int32_t i = 0; i >= 0; i = syms[i].next) {
        const char *s = esc.data + syms[i].off;
        int32_t id = piece_id(t, s, syms[i].n);
        if (id >= 0) {
            if (tok_ids_push(out, id) != 0) goto oom;
            continue;
        }
        for (size_t j = 0; j < syms[i].n; j++) {
            int32_t b = t->byte_tok[(uint8_t)s[j]];
            if (b < 0) b = t->unk;
            if (b >= 0 && tok_ids_push(out, b) != 0) goto oom;
            if (t->byte_tok[(uint8_t)s[j]] < 0) break; /* one <unk> per symbol */
        }
    }
    rc = 0;
    goto done;
oom:
    sl_err(err, errlen, "tokenizer: out of memory");
done:
    sl_buf_free(&esc);
    free(syms);
    free(heap.v);
    return rc;
}
