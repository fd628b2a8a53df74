/*
 * bpe.c — byte-level BPE (tokenizer.ggml.model "gpt2").
 *
 * Encoding one plain-text fragment:
 *  1. pre-tokenize: the regexes named by tokenizer.ggml.pre split the text
 *     into words. Several regexes apply in sequence; each one splits every
 *     piece left by the previous one into matches and the gaps between them
 *     (Hugging Face's Split with "Isolated" behaviour), matching inside that
 *     piece only (its ends are the subject's ends). PCRE2 with UTF + UCP
 *     gives \p{L}, \p{N}, \s their Unicode meaning; invalid UTF-8 is allowed
 *     and simply never matches, so those bytes end up in gaps.
 *  2. each word's bytes become the byte-level alphabet's characters, one
 *     symbol per byte (the vocab holds all 256 of them);
 *  3. merges are applied lowest rank first (ties: leftmost). A binary heap of
 *     candidate pairs with lazy invalidation keeps this O(n log n) per word,
 *     so a 1 MB word of 'a' is fine.
 * With ignore_merges (Llama 3), a word that is itself a vocab entry is
 * emitted as that token without merging, like the reference.
 *
 * Merges are stored by (left id, right id) -> (rank, merged id); merges
 * whose parts or result are not in the vocabulary can never apply and are
 * skipped at load; a merge string without a separating space is an error.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* The split regexes of each pre-tokenizer (those of llama.cpp's llama-vocab,
 * which reproduce the models' tokenizer.json pre-tokenizers). */
typedef struct pre_def {
    const char *names; /* '|'-separated names of tokenizer.ggml.pre */
    bool ignore_merges;
    const char *re[TOK_MAX_REGEX];
} pre_def_t;

#define RE_LLAMA3                                                                                                \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "      \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                                 \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "           \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"

static const pre_def_t PRE_DEFS[] = {
    {"default|",
     false,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"llama3|llama-v3|llama-bpe|falcon3|pixtral|dbrx|smaug-bpe", true, {RE_LLAMA3}},
    {"qwen2|deepseek-r1-qwen|megrez|stablelm2|hunyuan", false, {RE_QWEN2}},
    {"gpt-2|gpt2|phi-2|mpt|olmo|jais|roberta-bpe|jina-v1-en|exaone4", false, {RE_GPT2}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", false, {"\\p{N}", RE_GPT2}},
    {"falcon",
     false,
     {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}},
    {"deepseek-llm",
     false,
     {"[\\r\\n]",
      "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-"
      "ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-"
      "𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
      "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"}},
    {"deepseek-coder",
     false,
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"}},
    {"deepseek-v3|hunyuan-dense",
     false,
     {"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
      "?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"chatglm-bpe|glm4", false, {RE_LLAMA3}},
    {"gpt-4o|llama4",
     false,
     {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?:'[sS]|'[tT]|'["
      "rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{"
      "Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
};

static bool name_in_list(const char *name, const char *list) {
    size_t n = strlen(name);
    const char *p = list;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) return true;
        if (!bar) return false;
        p = bar + 1;
    }
}

static tok_merge_t *merge_find(const sl_tok_t *t, uint64_t key) {
    if (!t->merges) return NULL;
    size_t mask = t->merges_cap - 1;
    uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    for (size_t i = (size_t)(h >> 20) & mask;; i = (i + 1) & mask) {
        tok_merge_t *m = &t->merges[i];
        if (m->key == UINT64_MAX) return NULL;
        if (m->key == key) return m;
    }
}

int bpe_init(sl_tok_t *t, const gguf_file_t *f, char *err, size_t errlen) {
    const char *pre = t->pre_name[0] ? t->pre_name : "default";
    const pre_def_t *def = NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(PRE_DEFS); i++)
        if (name_in_list(pre, PRE_DEFS[i].names)) def = &PRE_DEFS[i];
    if (!def) return sl_err(err, errlen, "tokenizer: unknown pre-tokenizer '%s' (tokenizer.ggml.pre)", pre);
    t->ignore_merges = def->ignore_merges;
    for (int i = 0; i < TOK_MAX_REGEX && def->re[i]; i++) {
        int ec;
        PCRE2_SIZE eo;
        t->re[i] = pcre2_compile((PCRE2_SPTR)def->re[i], PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY, &ec,
                                 &eo, NULL);
        if (!t->re[i]) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return sl_err(err, errlen, "tokenizer: pre-tokenizer regex %d of '%s': %s at %zu", i, pre,
                          (char *)msg, (size_t)eo);
        }
        (void)pcre2_jit_compile(t->re[i], PCRE2_JIT_COMPLETE); /* optional speed-up */
        t->n_re = i + 1;
    }

    /* byte alphabet ids */
    for (int b = 0; b < 256; b++) {
        char u[3];
        size_t n;
        tok_byte_to_unicode((uint8_t)b, u, &n);
        t->byte_tok[b] = tok_lookup(t, u, n);
    }

    int64_t mi = gguf_find_key(f, "tokenizer.ggml.merges");
    if (mi < 0) return sl_err(err, errlen, "tokenizer: missing key tokenizer.ggml.merges");
    size_t k = (size_t)mi;
    if (gguf_kv_type(f, k) != GGUF_VT_ARRAY || gguf_arr_type(f, k) != GGUF_VT_STRING)
        return sl_err(err, errlen, "tokenizer: tokenizer.ggml.merges must be an array of strings");
    size_t n = gguf_arr_len(f, k);
    if (n > (size_t)INT32_MAX / 4) return sl_err(err, errlen, "tokenizer: too many merges (%zu)", n);
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    t->merges = malloc(cap * sizeof(tok_merge_t));
    if (!t->merges) return sl_err(err, errlen, "tokenizer: out of memory");
    t->merges_cap = cap;
    for (size_t i = 0; i < cap; i++) t->merges[i].key = UINT64_MAX;

    char *tmp = malloc(t->max_token_len * 2 + 2);
    if (!tmp) return sl_err(err, errlen, "tokenizer: out of memory");
    for (size_t i = 0; i < n; i++) {
        gguf_str_t s = gguf_arr_str(f, k, i);
        /* "left right": split at the first space after the first byte */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp) {
            free(tmp);
            return sl_err(err, errlen, "tokenizer: merge %zu is not of the form \"left right\"", i);
        }
        size_t ll = (size_t)(sp - s.ptr), rl = s.len - ll - 1;
        int32_t a = tok_lookup(t, s.ptr, ll), b = tok_lookup(t, sp + 1, rl);
        if (a < 0 || b < 0 || ll + rl > t->max_token_len) continue; /* can never apply */
        memcpy(tmp, s.ptr, ll);
        memcpy(tmp + ll, sp + 1, rl);
        int32_t r = tok_lookup(t, tmp, ll + rl);
        if (r < 0) continue;
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        size_t mask = cap - 1;
        uint64_t h = key * 0x9E3779B97F4A7C15ULL;
        size_t j = (size_t)(h >> 20) & mask;
        while (t->merges[j].key != UINT64_MAX && t->merges[j].key != key) j = (j + 1) & mask;
        if (t->merges[j].key == key) continue; /* duplicate: the first (lowest rank) wins */
        t->merges[j].key = key;
        t->merges[j].rank = (int32_t)i;
        t->merges[j].result = r;
    }
    free(tmp);
    return 0;
}

void bpe_free(sl_tok_t *t) {
    for (int i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i]);
    t->n_re = 0;
    free(t->merges);
    t->merges = NULL;
}

/* ---- merging one word ---- */

typedef struct sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
} sym_t;

typedef struct cand {
    int32_t rank;
    int32_t left; /* symbol index */
    int32_t lid, rid, result;
} cand_t;

typedef struct heap {
    cand_t *v;
    size_t n, cap;
} heap_t;

static bool cand_less(const cand_t *a, const cand_t *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(heap_t *h, cand_t c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        cand_t *v = realloc(h->v, cap * sizeof(cand_t));
        if (!v) return -1;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return 0;
}

static cand_t heap_pop(heap_t *h) {
    cand_t top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand_t *best = &last;
        if (l < h->n && cand_less(&h->v[l], best)) m = l, best = &h->v[l];
        if (r < h->n && cand_less(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static int try_pair(const sl_tok_t *t, heap_t *h, const sym_t *syms, int32_t left) {
    if (left < 0) return 0;
    int32_t right = syms[left].next;
    if (right < 0 || syms[left].id < 0 || syms[right].id < 0) return 0;
    uint64_t key = (uint64_t)(uint32_t)syms[left].id << 32 | (uint32_t)syms[right].id;
    const tok_merge_t *m = merge_find(t, key);
    if (!m) return 0;
    cand_t c = {m->rank, left, syms[left].id, syms[right].id, m->result};
    return heap_push(h, c);
}

typedef struct bpe_work {
    sym_t *syms;
    size_t cap;
    heap_t heap;
    sl_buf_t enc; /* byte-level encoded word (ignore_merges lookup) */
} bpe_work_t;

static int bpe_word(const sl_tok_t *t, bpe_work_t *w, const uint8_t *s, size_t n, tok_ids_t *out) {
    if (n == 0) return 0;
    if (t->ignore_merges) {
        sl_buf_clear(&w->enc);
        for (size_t i = 0; i < n; i++) {
            char u[3];
            size_t k;
            tok_byte_to_unicode(s[i], u, &k);
            if (sl_buf_append(&w->enc, u, k) != 0) return -1;
        }
        int32_t id = tok_lookup(t, w->enc.data, w->enc.len);
        if (id >= 0) return tok_ids_push(out, id);
    }
    if (n > w->cap) {
        sym_t *ns = realloc(w->syms, n * sizeof(sym_t));
        if (!ns) return -1;
        w->syms = ns;
        w->cap = n;
    }
    sym_t *syms = w->syms;
    for (size_t i = 0; i < n; i++) {
        syms[i].id = t->byte_tok[s[i]];
        syms[i].prev = (int32_t)i - 1;
        syms[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->heap.n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (try_pair(t, &w->heap, syms, (int32_t)i) != 0) return -1;
    while (w->heap.n) {
        cand_t c = heap_pop(&w->heap);
        sym_t *l = &syms[c.left];
        if (l->id != c.lid || l->next < 0) continue; /* stale */
        sym_t *r = &syms[l->next];
        if (r->id != c.rid) continue;
        /* merge r into l */
        int32_t ri = l->next;
        l->id = c.result;
        l->next = r->next;
        if (r->next >= 0) syms[r->next].prev = c.left;
        r->id = -2; /* dead */
        (void)ri;
        if (try_pair(t, &w->heap, syms, l->prev) != 0) return -1;
        if (try_pair(t, &w->heap, syms, c.left) != 0) return -1;
    }
    for (int32_t i = 0; i >= 0; i = syms[i].next)
        if (syms[i].id >= 0 && tok_ids_push(out, syms[i].id) != 0) return -1;
    return 0;
}

/* Splits [s, s+n) with regex `re`, appending piece boundaries (end offsets
 * relative to s) into *ends. */
typedef struct spans {
    size_t *v;
    size_t n, cap;
} spans_t;

static int spans_push(spans_t *a, size_t end) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        size_t *v = realloc(a->v, cap * sizeof(size_t));
        if (!v) return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = end;
    return 0;
}

static int split_piece(const pcre2_code *re, pcre2_match_data *md, const char *text, size_t start, size_t end,
                       spans_t *outp, char *err, size_t errlen) {
    const PCRE2_SPTR subj = (PCRE2_SPTR)(text + start);
    size_t len = end - start, pos = 0, last = 0;
    while (pos <= len) {
        int rc = pcre2_match(re, subj, len, pos, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) rc = pcre2_match(re, subj, len, pos, PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return sl_err(err, errlen, "tokenizer: pre-tokenizer regex failed: %s", (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* empty match: step one character */
            pos = me + 1;
            while (pos < len && (subj[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        if (ms > last && spans_push(outp, start + ms) != 0) return sl_err(err, errlen, "tokenizer: out of memory");
        if (spans_push(outp, start + me) != 0) return sl_err(err, errlen, "tokenizer: out of memory");
        last = pos = me;
    }
    if (last < len && spans_push(outp, end) != 0) return sl_err(err, errlen, "tokenizer: out of memory");
    return 0;
}

int bpe_encode(const sl_tok_t *t, const char *text, size_t len, tok_ids_t *out, char *err, size_t errlen) {
    int rc = -1;
    spans_t a = {0}, b = {0};
    bpe_work_t w = {0};
    pcre2_match_data *md = NULL;
    if (len == 0) return 0;
    if (spans_push(&a, len) != 0) goto oom;
    for (int r = 0; r < t->n_re; r++) {
        md = pcre2_match_data_create_from_pattern(t->re[r], NULL);
        if (!md) goto oom;
        b.n = 0;
        size_t start = 0;
        for (size_t i = 0; i < a.n; i++) {
            if (split_piece(t->re[r], md, text, start, a.v[i], &b, err, errlen) != 0) goto done;
            start = a.v[i];
        }
        pcre2_match_data_free(md);
        md = NULL;
        spans_t tmp = a;
        a = b;
        b = tmp;
    }
    size_t start = 0;
    for (size_t i = 0; i < a.n; i++) {
        if (bpe_word(t, &w, (const uint8_t *)text + start, a.v[i] - start, out) != 0) goto oom;
        start = a.v[i];
    }
    rc = 0;
    goto done;
oom:
    sl_err(err, errlen, "tokenizer: out of memory");
done:
    pcre2_match_data_free(md);
    free(a.v);
    free(b.v);
    free(w.syms);
    free(w.heap.v);
    sl_buf_free(&w.enc);
    return rc;
}
