/*
 * wpm.c — WordPiece (tokenizer.ggml.model "bert", e.g. BGE embeddings).
 *
 * As GGUF stores a BERT vocabulary, a word-initial piece carries a leading
 * "▁" and a continuation piece is bare (the converter turned "##x" into
 * "x" and "x" into "▁x"). Encoding, like BERT's BasicTokenizer + WordPiece:
 *  - normalise: NFD + drop combining marks when strip_accents, lowercase
 *    when lowercase (utf8proc), drop NUL / U+FFFD / control characters;
 *  - split on whitespace; every punctuation character, ASCII symbol and CJK
 *    ideograph is a word of its own;
 *  - each word ("▁" + word) is cut greedily into the longest vocab pieces
 *    from the left; a word with any unmatched rest becomes one [UNK].
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static bool is_ws(uint32_t c) {
    return c == ' ' || (c >= 9 && c <= 13) || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int put_cp(sl_buf_t *b, uint32_t cp) {
    utf8proc_uint8_t tmp[4];
    utf8proc_ssize_t k = utf8proc_encode_char((utf8proc_int32_t)cp, tmp);
    return k > 0 ? sl_buf_append(b, tmp, (size_t)k) : 0;
}

/* BERT's max_input_chars_per_word: a longer word is one [UNK]. */
#define WPM_MAX_WORD_CHARS 100

static int word_pieces(const sl_tok_t *t, const sl_buf_t *w, tok_ids_t *out) {
    size_t start = out->n, i = 0, n = w->len, chars = 0;
    for (size_t k = 3; k < n; k++) chars += ((uint8_t)w->data[k] & 0xC0) != 0x80;
    if (chars > WPM_MAX_WORD_CHARS) return t->unk >= 0 ? tok_ids_push(out, t->unk) : 0;
    while (i < n) {
        size_t max = SL_MIN(n, i + t->max_token_len);
        int32_t id = -1;
        size_t j = i;
        /* a piece starting with "▁" is word-initial: a "▁" inside the word
         * matches no continuation (the reference's vocab has no "##▁...") */
        if (i > 0 && n - i >= 3 && memcmp(w->data + i, "\xE2\x96\x81", 3) == 0) max = i;
        for (j = max; j > i; j--) {
            id = tok_lookup(t, w->data + i, j - i);
            if (id >= 0) break;
        }
        if (id < 0) {
            out->n = start; /* discard the word's pieces */
            break;
        }
        if (tok_ids_push(out, id) != 0) return -1;
        i = j;
    }
    if (out->n == start && t->unk >= 0) return tok_ids_push(out, t->unk);
    return 0;
}

int wpm_encode(const sl_tok_t *t, const char *text, size_t len, tok_ids_t *out, char *err, size_t errlen) {
    sl_buf_t word = {0};
    int rc = -1;
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0;
    bool oom = false;
#define FLUSH()                                                                                                  \
    do {                                                                                                         \
        if (word.len > 3 && word_pieces(t, &word, out) != 0) oom = true;                                         \
        sl_buf_clear(&word);                                                                                     \
    } while (0)
#define START()                                                                                                  \
    do {                                                                                                         \
        if (word.len == 0 && sl_buf_append(&word, "\xE2\x96\x81", 3) != 0) oom = true;                          \
    } while (0)
    while (i < len && !oom) {
        uint32_t cp;
        size_t k = tok_utf8_decode(s + i, len - i, &cp);
        i += k;
        utf8proc_int32_t dec[8];
        utf8proc_ssize_t nd = 1;
        dec[0] = (utf8proc_int32_t)cp;
        if (t->bert_strip_accents) {
            int boundclass = 0;
            nd = utf8proc_decompose_char((utf8proc_int32_t)cp, dec, 8, UTF8PROC_DECOMPOSE, &boundclass);
            if (nd < 1 || nd > 8) nd = 1, dec[0] = (utf8proc_int32_t)cp;
        }
        for (utf8proc_ssize_t d = 0; d < nd && !oom; d++) {
            uint32_t c = (uint32_t)dec[d];
            utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
            /* clean_text drops NUL, U+FFFD and "other" characters (VT, FF,
             * U+0085 among them) before it maps whitespace to a space; tab,
             * LF and CR count as whitespace */
            bool tnr = c == '\t' || c == '\n' || c == '\r';
            if (c == 0 || c == 0xFFFD ||
                (!tnr && (cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO ||
                          cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CN)))
                continue;
            if (is_ws(c)) {
                FLUSH();
                continue;
            }
            if (t->bert_strip_accents && cat == UTF8PROC_CATEGORY_MN) continue;
            uint32_t lc = t->bert_lowercase ? (uint32_t)utf8proc_tolower((utf8proc_int32_t)c) : c;
            bool punct = cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
            bool sym = c < 0x7F && cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO;
            if (punct || sym || is_cjk(c)) {
                FLUSH();
                START();
                if (put_cp(&word, lc) != 0) oom = true;
                FLUSH();
            } else {
                START();
                if (put_cp(&word, lc) != 0) oom = true;
            }
        }
    }
    if (!oom) FLUSH();
#undef FLUSH
#undef START
    if (oom) {
        sl_err(err, errlen, "tokenizer: out of memory");
        goto done;
    }
    rc = 0;
done:
    sl_buf_free(&word);
    return rc;
}
