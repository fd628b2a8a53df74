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
 *  3. merges are applied lowest rank first (ties: leftmost). Long words
 *     queue their candidate pairs in one bucket per rank (O(1) per pair when
 *     the merge list is in training order, see merge_long) or else a binary
 *     heap with lazy invalidation (O(n log n)), so a 1 MB word of 'a' is fine.
 * With ignore_merges (Llama 3), a word that is itself a vocab entry is
 * emitted as that token without merging, like the reference.
 *
 * Merges are stored by (left id, right id) -> (rank, merged id); merges
 * whose parts or result are not in the vocabulary can never apply and are
 * skipped at load; a merge string without a separating space is an error.
 */
#include "tokenizer/tok_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

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

/* Qwen3.5: Qwen2's shape with combining marks (\p{M}) inside words and out
 * of the punctuation runs */
#define RE_QWEN35                                                                                                \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| " \
    "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* o200k-style cased words (gpt-4o, tekken, tiny_aya, granite-embed-multi) */
#define RE_CASED_WORDS(contr)                                                                                    \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" contr     \
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" contr
#define RE_CONTR_OPT "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
#define RE_O200K                                                                                                 \
    RE_CASED_WORDS(RE_CONTR_OPT) "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

static const char PRE_QWEN2_RE[] = RE_QWEN2;
static const char PRE_QWEN35_RE[] = RE_QWEN35;
static const char PRE_LLAMA3_RE[] = RE_LLAMA3;

static const pre_def_t PRE_DEFS[] = {
    {"default|",
     false,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano|dbrx|smaug-bpe",
     true,
     {PRE_LLAMA3_RE}},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|megrez|stablelm2|hunyuan|solar-open|grok-2", false, {PRE_QWEN2_RE}},
    {"qwen35", false, {PRE_QWEN35_RE}},
    {"gpt-2|gpt2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|mpt|olmo|jais|"
     "roberta-bpe|jina-v1-en|jina-v2-code|exaone4|trillion|granite-docling",
     false,
     {RE_GPT2}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b|mellum2", false, {"\\p{N}", RE_GPT2}},
    {"falcon",
     false,
     {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}},
    /* the letters of deepseek-llm's class are written as they are, except
     * those NFC would change (an editor may normalise this file): escaped */
    {"deepseek-llm",
     false,
     {"[\\r\\n]",
      "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-"
      "\\x{1F7D}ᾀ-ᾴᾶ-ᾼ\\x{1FBE}ῂ-ῄῆ-ῌῐ-\\x{1FD3}ῖ-\\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\\x{2126}ℨ\\x{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-"
      "𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
      "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"}},
    {"deepseek-coder",
     false,
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"}},
    {"deepseek-v3|hunyuan-dense|joyai-llm|hy_v4",
     false,
     {"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
      "?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"spark2_5",
     false,
     {"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
      "?[\\p{P}\\p{S}]+|[\\r\\n]|\\s+(?!\\S)|\\s+",
      "\\p{N}"}},
    {"chatglm-bpe|glm4", false, {PRE_LLAMA3_RE}},
    {"gpt-4o|llama4|kanana2|talkie|minimax-m2", false, {RE_O200K}},
    /* Mistral's tekken: o200k words without contractions, single digits */
    {"tekken",
     true,
     {RE_CASED_WORDS("") "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"tiny_aya|cohere2moe", false, {"\\d{1,3}(?=(?:\\d{3})*\\b)", RE_O200K}},
    {"granite-embed-multi-97m", true, {RE_O200K}},
    {"youtu",
     true,
     {"[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+",
      RE_CASED_WORDS(RE_CONTR_OPT) "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"jais-2",
     false,
     {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|"
      "\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}"}},
    {"bailingmoe|bailingmoe2|llada-moe",
     false,
     {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"}},
    {"seed-coder",
     false,
     {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| "
      "?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"ufakzeka",
     false,
     {"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"laguna", false, {"[^\\n]+|[\\n]+", RE_QWEN2}},
    {"exaone-moe",
     false,
     {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: "
      "\\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"}},
    {"minicpm5", true, {"\\p{N}{1,3}", "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"poro-chat|bloom|gpt3-finnish", false, {" ?[^(\\s|.,!?…。，、।۔،)]+"}},
    {"viking", false, {" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"}},
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

static void split_fast_init(void);

/* The merge of a key, or NULL. t->merges exists once bpe_init has run. */
static tok_merge_t *merge_find(const sl_tok_t *t, uint64_t key) {
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
    /* the Qwen2 / Llama 3 pattern alone: split by hand (split_fast) */
    if (!def->re[1] && def->re[0] == PRE_QWEN2_RE) t->fast_split = 1;
    if (!def->re[1] && def->re[0] == PRE_LLAMA3_RE) t->fast_split = 3;
    if (!def->re[1] && def->re[0] == PRE_QWEN35_RE) t->fast_split = 1, t->fast_marks = true;
    if (t->fast_split) split_fast_init();
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
        /* JIT is a speed-up only; without it the interpreter runs */
        t->re_jit[i] = pcre2_jit_compile(t->re[i], PCRE2_JIT_COMPLETE) == 0;
        t->n_re = i + 1;
    }

    /* byte alphabet ids */
    for (int b = 0; b < 256; b++) {
        char u[3];
        size_t n;
        tok_byte_to_unicode((uint8_t)b, u, &n);
        t->byte_tok[b] = tok_lookup(t, u, n);
        t->byte_uni[b][0] = (uint8_t)u[0];
        t->byte_uni[b][1] = n > 1 ? (uint8_t)u[1] : 0;
    }
    t->self_merge = calloc((size_t)t->n_vocab, 1);
    if (!t->self_merge) return sl_err(err, errlen, "tokenizer: out of memory");
    if (bpe_load_merges(t, f, err, errlen) != 0) return -1;
    /* the merge of every byte pair: a word's first pairs without hashing */
    t->byte_pair = malloc(256 * 256 * sizeof(uint64_t));
    if (!t->byte_pair) return sl_err(err, errlen, "tokenizer: out of memory");
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b++) {
            const tok_merge_t *m = t->byte_tok[a] >= 0 && t->byte_tok[b] >= 0
                                       ? merge_find(t, (uint64_t)(uint32_t)t->byte_tok[a] << 32 |
                                                           (uint32_t)t->byte_tok[b])
                                       : NULL;
            t->byte_pair[a << 8 | b] = m ? (uint64_t)(uint32_t)m->rank << 32 | (uint32_t)m->result
                                         : (uint64_t)INT32_MAX << 32 | UINT32_MAX;
        }
    return 0;
}

int bpe_merge_of(const sl_tok_t *t, int32_t a, int32_t b, int32_t *rank, int32_t *result) {
    if (a < 0 || b < 0 || !t->merges) return -1;
    const tok_merge_t *m = merge_find(t, (uint64_t)(uint32_t)a << 32 | (uint32_t)b);
    if (!m) return -1;
    *rank = m->rank;
    *result = m->result;
    return 0;
}

int bpe_load_merges(sl_tok_t *t, const gguf_file_t *f, char *err, size_t errlen) {
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
    t->n_merge_ranks = (int32_t)n;
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
    free(t->self_merge);
    t->self_merge = NULL;
    free(t->byte_pair);
    t->byte_pair = NULL;
}

/* ---- merging one word ----
 *
 * Per tok_encode call one bpe_work_t holds every buffer (symbols, heap,
 * spans, PCRE2 match data, the word cache), so a text costs no allocation
 * per piece. Three shortcuts come before merging:
 *  - a word that is itself a vocab entry whose own merging gives back just
 *    that token (remembered per token in t->self_merge, see below) is that
 *    token;
 *  - the ids of recent multi-token words are kept in a per-call cache;
 *  - words of up to BPE_SHORT symbols merge by a linear scan for the lowest
 *    rank (cheaper than a heap at that size); longer ones use rank buckets
 *    (merge_long), or the heap.
 */

#define BPE_SHORT 48      /* symbols: linear-scan merging up to this length */
#define CACHE_SLOTS 4096  /* word cache entries (power of 2) */
#define CACHE_MAX_WORD 64 /* bytes: longer words are not cached */
#define CACHE_MIN_TEXT 2048 /* bytes: shorter texts do without the cache (its table is ~100 KB) */

/* A symbol of a long word (bucket or heap merging): a doubly linked list; rank/res
 * describe the pair this symbol starts (rank INT32_MAX: none). */
typedef struct sym {
    int32_t id; /* -2 once merged away */
    int32_t prev, next; /* -1 at the ends */
    int32_t rank, res;
} sym_t;

/* The heap of candidate pairs holds (rank << 32 | left symbol): the lowest
 * rank first, then the leftmost. An entry is stale when its symbol died or
 * the pair it starts now has another rank; equal rank means the same merge. */
int tok_heap_push(tok_heap_t *h, uint64_t c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        uint64_t *v = realloc(h->v, cap * sizeof(uint64_t));
        if (!v) return -1;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (c >= h->v[p]) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return 0;
}

uint64_t tok_heap_pop(tok_heap_t *h) {
    uint64_t top = h->v[0], last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t m = l + 1 < n && h->v[l + 1] < h->v[l] ? l + 1 : l;
        if (h->v[m] >= last) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (n) h->v[i] = last;
    return top;
}

/* Rank and result of merging a, b (rank INT32_MAX: none). */
static inline void pair_rank(const sl_tok_t *t, int32_t a, int32_t b, int32_t *rank, int32_t *res) {
    const tok_merge_t *m = merge_find(t, (uint64_t)(uint32_t)a << 32 | (uint32_t)b);
    *rank = m ? m->rank : INT32_MAX;
    *res = m ? m->result : -1;
}

/* The same for the byte-level symbols of bytes a, b (t->byte_pair). */
static inline void byte_pair_rank(const sl_tok_t *t, uint8_t a, uint8_t b, int32_t *rank, int32_t *res) {
    uint64_t v = t->byte_pair[a << 8 | b];
    *rank = (int32_t)(v >> 32);
    *res = (int32_t)(uint32_t)v;
}

/* Recomputes the pair that symbol i starts and queues it. */
static int set_pair(const sl_tok_t *t, tok_heap_t *h, sym_t *syms, int32_t i) {
    if (i < 0) return 0;
    sym_t *l = &syms[i];
    if (l->next < 0) {
        l->rank = INT32_MAX;
        return 0;
    }
    pair_rank(t, l->id, syms[l->next].id, &l->rank, &l->res);
    return l->rank == INT32_MAX ? 0 : tok_heap_push(h, (uint64_t)(uint32_t)l->rank << 32 | (uint32_t)i);
}

typedef struct cache_slot {
    uint32_t word_off, word_len; /* into bpe_work_t.cache_words; word_len 0 = empty */
    uint32_t ids_off, ids_n;     /* into bpe_work_t.cache_ids */
    uint64_t hash;
} cache_slot_t;

typedef struct rb_node {
    int32_t pos;  /* left symbol of the pair */
    int32_t next; /* next node of the same rank's bucket, -1 at the end */
} rb_node_t;

typedef struct bpe_work {
    sym_t *syms;
    size_t cap;
    tok_heap_t heap;
    int32_t *lin_ids, *lin_rank, *lin_res; /* linear merging, BPE_SHORT entries each */
    sl_buf_t enc;                          /* byte-level encoded word */
    size_t *spans[2];
    size_t spans_cap[2];
    pcre2_match_data *md;
    bool use_cache;      /* the text is long enough for the cache to pay off */
    cache_slot_t *cache; /* CACHE_SLOTS, allocated on first use */
    size_t cache_used;
    sl_buf_t cache_words;
    tok_ids_t cache_ids;
    /* long words (merge_long): rank buckets, allocated on first use */
    uint64_t *rb_bits, *rb_sum; /* bit per rank; rb_sum: bit per non-zero rb_bits word */
    size_t rb_words;            /* words of rb_bits */
    int32_t *rb_head;           /* [n_merge_ranks] newest node of each bucket */
    rb_node_t *rb_nodes;        /* rb_n used of rb_cap */
    int32_t *rb_tmp;            /* one bucket's positions, rb_tmp_cap entries */
    size_t rb_n, rb_cap, rb_tmp_cap;
} bpe_work_t;

bpe_work_t *bpe_work_new(const sl_tok_t *t) {
    bpe_work_t *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->lin_ids = malloc(3 * BPE_SHORT * sizeof(int32_t));
    w->md = pcre2_match_data_create(16, NULL);
    if (!w->lin_ids || !w->md) {
        bpe_work_free(w);
        return NULL;
    }
    w->lin_rank = w->lin_ids + BPE_SHORT;
    w->lin_res = w->lin_rank + BPE_SHORT;
    (void)t;
    return w;
}

void bpe_work_free(bpe_work_t *w) {
    if (!w) return;
    free(w->syms);
    free(w->heap.v);
    free(w->lin_ids);
    sl_buf_free(&w->enc);
    free(w->spans[0]);
    free(w->spans[1]);
    pcre2_match_data_free(w->md);
    free(w->cache);
    sl_buf_free(&w->cache_words);
    free(w->cache_ids.v);
    free(w->rb_bits);
    free(w->rb_head);
    free(w->rb_nodes);
    free(w->rb_tmp);
    free(w);
}

/* Heap merging of the live symbols (the list from syms[0]), whose rank/res
 * already describe the pair each starts: the fallback of merge_long. */
/* Merges symbol li with the one after it: li takes the merged id, the
 * right one leaves the list (id −2, no pair rank). */
static inline void merge_next(sym_t *syms, int32_t li) {
    sym_t *l = &syms[li], *r = &syms[l->next];
    l->id = l->res;
    l->next = r->next;
    if (r->next >= 0) syms[r->next].prev = li;
    r->id = -2;
    r->rank = INT32_MAX;
}

static int merge_heap(const sl_tok_t *t, bpe_work_t *w, size_t n) {
    sym_t *syms = w->syms;
    tok_heap_t *h = &w->heap;
    if (h->cap < n) {
        uint64_t *v = realloc(h->v, n * sizeof(uint64_t));
        if (!v) return -1;
        h->v = v;
        h->cap = n;
    }
    /* every live pair at once, then heapify bottom-up: O(n) */
    h->n = 0;
    for (int32_t i = 0; i >= 0; i = syms[i].next)
        if (syms[i].rank != INT32_MAX) h->v[h->n++] = (uint64_t)(uint32_t)syms[i].rank << 32 | (uint32_t)i;
    for (size_t k = h->n / 2; k-- > 0;) {
        uint64_t x = h->v[k];
        size_t i = k;
        for (;;) {
            size_t l = 2 * i + 1;
            if (l >= h->n) break;
            size_t m = l + 1 < h->n && h->v[l + 1] < h->v[l] ? l + 1 : l;
            if (h->v[m] >= x) break;
            h->v[i] = h->v[m];
            i = m;
        }
        h->v[i] = x;
    }
    while (w->heap.n) {
        uint64_t c = tok_heap_pop(&w->heap);
        int32_t li = (int32_t)(uint32_t)c, rank = (int32_t)(c >> 32);
        sym_t *l = &syms[li];
        if (l->id < 0 || l->rank != rank || l->next < 0) continue; /* stale */
        merge_next(syms, li);
        if (l->prev >= 0 && syms[l->prev].id >= 0 && set_pair(t, &w->heap, syms, l->prev) != 0) return -1;
        if (l->next >= 0 && syms[l->next].id >= 0) {
            if (set_pair(t, &w->heap, syms, li) != 0) return -1;
        } else {
            l->rank = INT32_MAX;
        }
    }
    return 0;
}

/* ---- long words: rank buckets ----
 *
 * With a merge list in training order, a merge that uses a token comes
 * after the merge that made it, so every pair a merge creates ranks above
 * the merge just applied: ranks are applied in increasing order. Long words
 * exploit that: the pairs wait in one bucket per rank (lists of left symbol
 * positions), a two-level bitmap finds the next non-empty rank, and a
 * bucket is applied leftmost first (sorted by position) — the same order as
 * the heap's (rank, position) minimum, at O(1) per pair instead of
 * O(log n). Should a merge create a pair ranked at or below the current
 * one (a merge list not in that order), the word continues on the heap from
 * exactly that state, so the result is the reference's either way.
 *
 * Invariant between words: every bitmap bit is clear (each bucket used is
 * consumed, or all bits are cleared on the fallback); rb_head[r] means
 * something only while bit r is set, so it needs no initialisation. */

static int rb_reserve(const sl_tok_t *t, bpe_work_t *w, size_t n) {
    if (!w->rb_bits) {
        size_t nr = t->n_merge_ranks > 0 ? (size_t)t->n_merge_ranks : 1;
        w->rb_words = (nr + 63) / 64;
        w->rb_bits = calloc(w->rb_words + (w->rb_words + 63) / 64, sizeof(uint64_t));
        w->rb_head = malloc(nr * sizeof(int32_t));
        if (!w->rb_bits || !w->rb_head) return -1;
        w->rb_sum = w->rb_bits + w->rb_words;
    }
    /* pairs queued per word: n-1 at first, at most 2 per merge after that */
    if (w->rb_cap < 3 * n) {
        rb_node_t *nodes = realloc(w->rb_nodes, 3 * n * sizeof(rb_node_t));
        if (!nodes) return -1;
        w->rb_nodes = nodes;
        w->rb_cap = 3 * n;
    }
    return 0;
}

static inline void rb_push(bpe_work_t *w, int32_t rank, int32_t pos) {
    size_t wi = (size_t)rank >> 6;
    uint64_t bit = 1ULL << (rank & 63);
    rb_node_t *node = &w->rb_nodes[w->rb_n];
    node->pos = pos;
    if (w->rb_bits[wi] & bit) {
        node->next = w->rb_head[rank];
    } else {
        node->next = -1;
        w->rb_bits[wi] |= bit;
        w->rb_sum[wi >> 6] |= 1ULL << (wi & 63);
    }
    w->rb_head[rank] = (int32_t)w->rb_n++;
}

/* The lowest rank >= from with a non-empty bucket, or -1. */
static int32_t rb_next(const bpe_work_t *w, int32_t from) {
    size_t wi = (size_t)from >> 6;
    if (wi >= w->rb_words) return -1;
    uint64_t word = w->rb_bits[wi] & (~0ULL << (from & 63));
    if (!word) {
        size_t s = wi + 1, n_sum = (w->rb_words + 63) / 64;
        if (s >= w->rb_words) return -1;
        size_t si = s >> 6;
        uint64_t sw = w->rb_sum[si] & (~0ULL << (s & 63));
        while (!sw) {
            if (++si >= n_sum) return -1;
            sw = w->rb_sum[si];
        }
        wi = si * 64 + (size_t)__builtin_ctzll(sw);
        word = w->rb_bits[wi];
    }
    return (int32_t)(wi * 64 + (size_t)__builtin_ctzll(word));
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Recomputes the pair symbol i starts (its right neighbour exists and is a
 * known byte); queues it. False when it ranks at or below cur. */
static inline bool rb_set_pair(const sl_tok_t *t, bpe_work_t *w, sym_t *syms, int32_t i, int32_t cur) {
    sym_t *l = &syms[i];
    pair_rank(t, l->id, syms[l->next].id, &l->rank, &l->res);
    if (l->rank == INT32_MAX) return true;
    if (l->rank <= cur) return false;
    rb_push(w, l->rank, i);
    return true;
}

/* Merges syms[0..n) (linked list, ids set), for long words. */
static int merge_long(const sl_tok_t *t, bpe_work_t *w, const uint8_t *s, size_t n) {
    if (rb_reserve(t, w, n) != 0) return -1;
    sym_t *syms = w->syms;
    w->rb_n = 0;
    for (size_t i = 0; i < n; i++) {
        syms[i].rank = INT32_MAX;
        if (i + 1 < n && syms[i].id >= 0 && syms[i + 1].id >= 0) {
            byte_pair_rank(t, s[i], s[i + 1], &syms[i].rank, &syms[i].res);
            if (syms[i].rank != INT32_MAX) rb_push(w, syms[i].rank, (int32_t)i);
        }
    }
    for (int32_t cur = rb_next(w, 0); cur >= 0; cur = rb_next(w, cur + 1)) {
        /* take the bucket: clear its bit, its positions in queued order */
        size_t wi = (size_t)cur >> 6;
        w->rb_bits[wi] &= ~(1ULL << (cur & 63));
        if (!w->rb_bits[wi]) w->rb_sum[wi >> 6] &= ~(1ULL << (wi & 63));
        int32_t *pos = w->rb_tmp;
        size_t k = 0;
        for (int32_t j = w->rb_head[cur]; j >= 0; j = w->rb_nodes[j].next) {
            if (k == w->rb_tmp_cap) { /* at most rb_n entries */
                size_t cap = w->rb_tmp_cap ? 2 * w->rb_tmp_cap : 256;
                int32_t *tmp = realloc(w->rb_tmp, cap * sizeof(int32_t));
                if (!tmp) return -1;
                w->rb_tmp = pos = tmp;
                w->rb_tmp_cap = cap;
            }
            pos[k++] = w->rb_nodes[j].pos;
        }
        bool sorted = true;
        for (size_t i = 0; i < k / 2; i++) { /* the list is newest first */
            int32_t x = pos[i];
            pos[i] = pos[k - 1 - i];
            pos[k - 1 - i] = x;
        }
        for (size_t i = 1; i < k && sorted; i++) sorted = pos[i - 1] <= pos[i];
        if (!sorted) qsort(pos, k, sizeof(int32_t), cmp_i32);
        for (size_t i = 0; i < k; i++) {
            int32_t li = pos[i];
            sym_t *l = &syms[li];
            if (l->id < 0 || l->rank != cur || l->next < 0) continue; /* stale */
            merge_next(syms, li);
            bool in_order = true;
            if (l->prev >= 0 && syms[l->prev].id >= 0) in_order = rb_set_pair(t, w, syms, l->prev, cur);
            if (l->next >= 0 && syms[l->next].id >= 0) {
                in_order = rb_set_pair(t, w, syms, li, cur) && in_order;
            } else {
                l->rank = INT32_MAX;
            }
            if (!in_order) { /* the rest on the heap, from this state */
                memset(w->rb_bits, 0, (w->rb_words + (w->rb_words + 63) / 64) * sizeof(uint64_t));
                return merge_heap(t, w, n);
            }
        }
    }
    return 0;
}

/* Linear merging of ids[0..n) in place, the byte symbols of s (n <= BPE_SHORT): lowest rank first,
 * leftmost on ties, as the heap does. Returns the new length. */
static size_t merge_linear(const sl_tok_t *t, bpe_work_t *w, const uint8_t *s, size_t n) {
    int32_t *ids = w->lin_ids, *rank = w->lin_rank, *res = w->lin_res;
    for (size_t i = 0; i + 1 < n; i++) byte_pair_rank(t, s[i], s[i + 1], &rank[i], &res[i]);
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == INT32_MAX) break;
        ids[best] = res[best];
        /* drop symbol best+1 and pair best+1 */
        memmove(ids + best + 1, ids + best + 2, (n - best - 2) * sizeof(int32_t));
        if (best + 2 < n) {
            memmove(rank + best + 1, rank + best + 2, (n - best - 3) * sizeof(int32_t));
            memmove(res + best + 1, res + best + 2, (n - best - 3) * sizeof(int32_t));
        }
        n--;
        if (best > 0) pair_rank(t, ids[best - 1], ids[best], &rank[best - 1], &res[best - 1]);
        if (best + 1 < n) pair_rank(t, ids[best], ids[best + 1], &rank[best], &res[best]);
    }
    return n;
}

/* Merges the bytes s[0..n) and appends the ids to out. */
static int merge_word(const sl_tok_t *t, bpe_work_t *w, const uint8_t *s, size_t n, tok_ids_t *out) {
    if (n <= BPE_SHORT) {
        for (size_t i = 0; i < n; i++) w->lin_ids[i] = t->byte_tok[s[i]];
        size_t m = merge_linear(t, w, s, n);
        for (size_t i = 0; i < m; i++)
            if (w->lin_ids[i] >= 0 && tok_ids_push(out, w->lin_ids[i]) != 0) return -1;
        return 0;
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
    if (merge_long(t, w, s, n) != 0) return -1;
    for (int32_t i = 0; i >= 0; i = syms[i].next)
        if (syms[i].id >= 0 && tok_ids_push(out, syms[i].id) != 0) return -1;
    return 0;
}

static uint64_t word_hash(const uint8_t *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001B3ULL;
    return h ^ (h >> 31);
}

static cache_slot_t *cache_find(bpe_work_t *w, const uint8_t *s, size_t n, uint64_t h, bool *found) {
    size_t mask = CACHE_SLOTS - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        cache_slot_t *c = &w->cache[i];
        if (c->word_len == 0) {
            *found = false;
            return c;
        }
        if (c->hash == h && c->word_len == n && memcmp(w->cache_words.data + c->word_off, s, n) == 0) {
            *found = true;
            return c;
        }
    }
}

static int bpe_word(const sl_tok_t *t, bpe_work_t *w, const uint8_t *s, size_t n, tok_ids_t *out) {
    if (n == 0) return 0;
    if (n == 1) return t->byte_tok[s[0]] >= 0 ? tok_ids_push(out, t->byte_tok[s[0]]) : 0;
    if (n <= t->max_token_len) {
        /* the word as one vocab entry? */
        if (sl_buf_reserve(&w->enc, 2 * n) != 0) return -1;
        char *e = w->enc.data;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *u = t->byte_uni[s[i]];
            e[k++] = (char)u[0];
            if (u[0] >= 0x80) e[k++] = (char)u[1];
        }
        int32_t id = tok_lookup(t, e, k);
        if (id >= 0) {
            if (t->ignore_merges) return tok_ids_push(out, id);
            /* self_merge[id]: 0 unknown, 1 merging the token's own text gives
             * just id, 2 it does not. Threads may race to fill it in; they
             * compute the same value, and relaxed atomics keep the byte
             * accesses well defined. */
            uint8_t known = __atomic_load_n(&t->self_merge[id], __ATOMIC_RELAXED);
            if (known == 1) return tok_ids_push(out, id);
            if (known == 0) {
                size_t before = out->n;
                if (merge_word(t, w, s, n, out) != 0) return -1;
                bool self = out->n == before + 1 && out->v[before] == id;
                __atomic_store_n(&t->self_merge[id], (uint8_t)(self ? 1 : 2), __ATOMIC_RELAXED);
                return 0;
            }
        }
    }
    if (n > CACHE_MAX_WORD || !w->use_cache) return merge_word(t, w, s, n, out);
    if (!w->cache) {
        w->cache = calloc(CACHE_SLOTS, sizeof(cache_slot_t));
        if (!w->cache) return -1;
    }
    uint64_t h = word_hash(s, n);
    bool found;
    cache_slot_t *c = cache_find(w, s, n, h, &found);
    if (found) {
        for (uint32_t i = 0; i < c->ids_n; i++)
            if (tok_ids_push(out, w->cache_ids.v[c->ids_off + i]) != 0) return -1;
        return 0;
    }
    size_t before = out->n;
    if (merge_word(t, w, s, n, out) != 0) return -1;
    if (w->cache_used < CACHE_SLOTS / 2) { /* keep the table at most half full */
        size_t woff = w->cache_words.len, ioff = w->cache_ids.n;
        if (sl_buf_append(&w->cache_words, s, n) != 0) return -1;
        for (size_t i = before; i < out->n; i++)
            if (tok_ids_push(&w->cache_ids, out->v[i]) != 0) return -1;
        c->word_off = (uint32_t)woff;
        c->word_len = (uint32_t)n;
        c->ids_off = (uint32_t)ioff;
        c->ids_n = (uint32_t)(out->n - before);
        c->hash = h;
        w->cache_used++;
    }
    return 0;
}

/* Splits [start, end) of text with regex re: match and gap end offsets
 * (relative to text) are appended to v[*n]. */
static int spans_push(size_t **v, size_t *cap, size_t *n, size_t end) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        size_t *nv = realloc(*v, c * sizeof(size_t));
        if (!nv) return -1;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = end;
    return 0;
}

static int split_piece(const pcre2_code *re, bool jit, pcre2_match_data *md, const char *text, size_t start,
                       size_t end, size_t **v, size_t *cap, size_t *nv, char *err, size_t errlen) {
    const PCRE2_SPTR subj = (PCRE2_SPTR)(text + start);
    size_t len = end - start, pos = 0, last = 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    while (pos <= len) {
        int rc = jit ? pcre2_jit_match(re, subj, len, pos, 0, md, NULL) : pcre2_match(re, subj, len, pos, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) rc = pcre2_match(re, subj, len, pos, PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return sl_err(err, errlen, "tokenizer: pre-tokenizer regex failed: %s", (char *)msg);
        }
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* empty match: step one character */
            pos = me + 1;
            while (pos < len && (subj[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        if (ms > last && spans_push(v, cap, nv, start + ms) != 0) return sl_err(err, errlen, "tokenizer: out of memory");
        if (spans_push(v, cap, nv, start + me) != 0) return sl_err(err, errlen, "tokenizer: out of memory");
        last = pos = me;
    }
    if (last < len && spans_push(v, cap, nv, end) != 0) return sl_err(err, errlen, "tokenizer: out of memory");
    return 0;
}

/* ---- the Qwen2 / Llama 3 pre-tokenizer by hand ----
 *
 *   (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])
 *   | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}  (Llama 3: \p{N}{1,3})
 *   |  ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 *
 * The alternatives are tried in order at each position, as the regex
 * engine does; on valid UTF-8 one of them always matches, so the words
 * tile the text. Letters and numbers are Unicode general categories L* and
 * N* (utf8proc); \s is Unicode White_Space. A text with invalid UTF-8 goes
 * through PCRE2 instead (there invalid bytes match nothing). */

enum { CC_L = 1, CC_N = 2, CC_S = 4, CC_NL = 8, CC_M = 16 };

static unsigned char_class(uint32_t c) {
    if (c < 0x80) {
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return CC_L;
        if (c >= '0' && c <= '9') return CC_N;
        if (c == '\n' || c == '\r') return CC_S | CC_NL;
        if (c == ' ' || (c >= 9 && c <= 13)) return CC_S;
        return 0;
    }
    if (c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
        c == 0x202F || c == 0x205F || c == 0x3000)
        return CC_S;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return CC_L;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return CC_N;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
        return CC_M;
    default:
        return 0;
    }
}

/* Class of every code point below U+10000 (char_class), built once per
 * process by bpe_init for the hand-written splitter: a table read instead
 * of a category lookup per character. */
static uint8_t cc_bmp[0x10000];
static pthread_once_t cc_once = PTHREAD_ONCE_INIT;

static void cc_build(void) {
    for (uint32_t c = 0; c < 0x10000; c++) cc_bmp[c] = (uint8_t)char_class(c);
}

static void split_fast_init(void) { pthread_once(&cc_once, cc_build); }

/* Code point at s[i]: its class and length. The text is valid UTF-8
 * (valid_utf8 ran first), so the sequence is complete and well formed. */
static inline unsigned class_at(const uint8_t *s, size_t i, size_t *k) {
    uint8_t c = s[i];
    if (c < 0x80) {
        *k = 1;
        return cc_bmp[c];
    }
    if (c < 0xE0) {
        *k = 2;
        return cc_bmp[(uint32_t)(c & 0x1F) << 6 | (s[i + 1] & 0x3Fu)];
    }
    if (c < 0xF0) {
        *k = 3;
        return cc_bmp[(uint32_t)(c & 0x0F) << 12 | (s[i + 1] & 0x3Fu) << 6 | (s[i + 2] & 0x3Fu)];
    }
    *k = 4;
    return char_class((uint32_t)(c & 0x07) << 18 | (s[i + 1] & 0x3Fu) << 12 | (s[i + 2] & 0x3Fu) << 6 |
                      (s[i + 3] & 0x3Fu));
}

/* Whether s[0..n) is valid UTF-8 (what tok_utf8_decode accepts: no
 * overlong forms, surrogates or code points above U+10FFFF). */
static bool valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint64_t v;
        while (i + 8 <= n && (memcpy(&v, s + i, 8), (v & 0x8080808080808080ULL) == 0)) i += 8;
        if (i >= n) break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c < 0xC2) {
            return false;
        } else if (c < 0xE0) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return false;
            i += 2;
        } else if (c < 0xF0) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return false;
            if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] >= 0xA0)) return false;
            i += 3;
        } else if (c <= 0xF4) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
                return false;
            if ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] >= 0x90)) return false;
            i += 4;
        } else {
            return false;
        }
    }
    return true;
}

static bool is_contraction_letter(uint8_t c) {
    c |= 0x20;
    return c == 's' || c == 't' || c == 'm' || c == 'd';
}

/* End of the word that starts at p (p < n). word is the class of a word's
 * characters: CC_L, or CC_L | CC_M for Qwen3.5 ([\p{L}\p{M}]+, and marks
 * out of the punctuation runs). */
static size_t split_fast_word(const uint8_t *s, size_t n, size_t p, int max_digits, unsigned word) {
    size_t k0, k1 = 0;
    unsigned c0 = class_at(s, p, &k0);
    size_t p1 = p + k0;
    unsigned c1 = p1 < n ? class_at(s, p1, &k1) : 0;
    if (s[p] == '\'' && p1 < n) {
        uint8_t a = s[p1] | 0x20, b = p1 + 1 < n ? s[p1 + 1] | 0x20 : 0;
        if (is_contraction_letter(s[p1])) return p1 + 1;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return p1 + 2;
    }
    size_t q, k;
    if (c0 & word || (!(c0 & (CC_L | CC_N | CC_NL)) && p1 < n && c1 & word)) { /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        q = c0 & word ? p1 : p1 + k1;
        while (q < n && class_at(s, q, &k) & word) q += k;
        return q;
    }
    if (c0 & CC_N) { /* \p{N} or \p{N}{1,3} */
        q = p1;
        for (int d = 1; d < max_digits && q < n && class_at(s, q, &k) & CC_N; d++) q += k;
        return q;
    }
    bool other0 = !(c0 & (CC_S | word | CC_N));
    if (other0 || (s[p] == ' ' && p1 < n && !(c1 & (CC_S | word | CC_N)))) { /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
        q = other0 ? p1 : p1 + k1;
        while (q < n && !(class_at(s, q, &k) & (CC_S | word | CC_N))) q += k;
        while (q < n && (s[q] == '\r' || s[q] == '\n')) q++;
        return q;
    }
    /* c0 is whitespace: the run [p, end) */
    size_t end = p, last_nl = SIZE_MAX, last_start = p;
    while (end < n) {
        unsigned c = class_at(s, end, &k);
        if (!(c & CC_S)) break;
        if (c & CC_NL) last_nl = end;
        last_start = end;
        end += k;
    }
    if (last_nl != SIZE_MAX) return last_nl + 1; /* \s*[\r\n]+ */
    if (end == n || last_start == p) return end; /* \s+(?!\S) to the end, or \s+ */
    return last_start;                          /* \s+(?!\S): all but the last */
}

static int split_fast(const sl_tok_t *t, bpe_work_t *w, const uint8_t *s, size_t n, tok_ids_t *out) {
    for (size_t p = 0; p < n;) {
        size_t q = split_fast_word(s, n, p, t->fast_split, t->fast_marks ? CC_L | CC_M : CC_L);
        if (bpe_word(t, w, s + p, q - p, out) != 0) return -1;
        p = q;
    }
    return 0;
}

/* PCRE2 split of text: word end offsets in w->spans[*which][0..*n). */
static int split_regex(const sl_tok_t *t, bpe_work_t *w, const char *text, size_t len, int *which, size_t *n,
                       char *err, size_t errlen) {
    size_t na = 0, nb = 0;
    int cur = 0;
    if (spans_push(&w->spans[0], &w->spans_cap[0], &na, len) != 0) return sl_err(err, errlen, "tokenizer: out of memory");
    for (int r = 0; r < t->n_re; r++) {
        int nxt = 1 - cur;
        nb = 0;
        size_t start = 0;
        for (size_t i = 0; i < na; i++) {
            size_t end = w->spans[cur][i];
            if (split_piece(t->re[r], t->re_jit[r], w->md, text, start, end, &w->spans[nxt], &w->spans_cap[nxt],
                            &nb, err, errlen) != 0)
                return -1;
            start = end;
        }
        cur = nxt;
        na = nb;
    }
    *which = cur;
    *n = na;
    return 0;
}

int bpe_pre_split(const sl_tok_t *t, bpe_work_t *w, const char *text, size_t len, bool fast, size_t **ends,
                  size_t *n, char *err, size_t errlen) {
    *ends = NULL;
    *n = 0;
    if (len == 0) return 0;
    size_t cap = 0;
    if (fast) {
        if (!t->fast_split || !valid_utf8((const uint8_t *)text, len))
            return sl_err(err, errlen, "tokenizer: no hand-written splitter for this text");
        for (size_t p = 0; p < len;) {
            p = split_fast_word((const uint8_t *)text, len, p, t->fast_split, t->fast_marks ? CC_L | CC_M : CC_L);
            if (spans_push(ends, &cap, n, p) != 0) return sl_err(err, errlen, "tokenizer: out of memory");
        }
        return 0;
    }
    int which;
    size_t m;
    if (split_regex(t, w, text, len, &which, &m, err, errlen) != 0) return -1;
    for (size_t i = 0; i < m; i++)
        if (spans_push(ends, &cap, n, w->spans[which][i]) != 0) return sl_err(err, errlen, "tokenizer: out of memory");
    return 0;
}

int bpe_encode(const sl_tok_t *t, bpe_work_t *w, const char *text, size_t len, bool utf8_valid, tok_ids_t *out,
               char *err, size_t errlen) {
    if (len == 0) return 0;
    w->use_cache = w->use_cache || len >= CACHE_MIN_TEXT;
    if (t->fast_split && (utf8_valid || valid_utf8((const uint8_t *)text, len)))
        return split_fast(t, w, (const uint8_t *)text, len, out) == 0 ? 0 : sl_err(err, errlen, "tokenizer: out of memory");
    int which;
    size_t na;
    if (split_regex(t, w, text, len, &which, &na, err, errlen) != 0) return -1;
    size_t start = 0;
    for (size_t i = 0; i < na; i++) {
        size_t end = w->spans[which][i];
        if (bpe_word(t, w, (const uint8_t *)text + start, end - start, out) != 0)
            return sl_err(err, errlen, "tokenizer: out of memory");
        start = end;
    }
    return 0;
}
