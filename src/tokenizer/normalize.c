/*
 * normalize.c — Unicode NFC for the tokenizers whose tokenizer.json asks for
 * it (Qwen2/Qwen3: "normalizer": {"type": "NFC"}).
 *
 * GGUF has no key for the normalizer and the reference converter writes
 * none, so the need is decided by tokenizer.ggml.pre: "qwen2" normalises
 * (see tok_load). NFC is applied to each plain fragment between special
 * tokens, as Hugging Face applies the normalizer after splitting out the
 * added tokens.
 *
 * Most text is already NFC, so the work is done only around code points that
 * can change: a table built once per process marks every code point that is
 * not a "safe starter" — combining class 0, unchanged by NFC, and never the
 * second part of a canonical composition (Hangul V/T jamo, U+0B3E, ...).
 * A safe starter can neither move nor combine with what precedes it, so the
 * text splits before each one into segments that normalise independently;
 * only a segment holding an unsafe code point (from the safe starter before
 * it up to the next safe starter) goes through utf8proc. Invalid UTF-8
 * bytes are copied as they are and end segments.
 */
#include "tokenizer/tok_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define NFC_MAX_CP 0x110000

static uint8_t nfc_unsafe[NFC_MAX_CP / 8];
/* Per block of 64 code points U+0000..U+FFFF (the 3-byte UTF-8 forms share
 * their first two bytes within a block): whether any of them is unsafe. */
static uint8_t nfc_block_unsafe[0x10000 / 64];
static pthread_once_t nfc_once = PTHREAD_ONCE_INIT;

static void mark(uint32_t cp) { nfc_unsafe[cp >> 3] |= (uint8_t)(1u << (cp & 7)); }

static void nfc_build(void) {
    for (uint32_t cp = 0x80; cp < NFC_MAX_CP; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
        if (p->combining_class != 0 || p->comp_exclusion) {
            mark(cp);
            continue;
        }
        bool hangul = cp >= 0xAC00 && cp <= 0xD7A3; /* decomposed algorithmically */
        if (!hangul && (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0))
            continue; /* no canonical decomposition */
        utf8proc_int32_t d[32];
        int bound = 0;
        utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)cp, d, 32, UTF8PROC_DECOMPOSE, &bound);
        if (n <= 0 || n > 32) continue;
        if (n == 1 && (uint32_t)d[0] == cp) continue;
        /* the later parts of a decomposition may compose with what precedes them */
        for (utf8proc_ssize_t i = 1; i < n; i++) mark((uint32_t)d[i]);
        /* a character that NFC changes (singletons, exclusions) is unsafe itself */
        utf8proc_ssize_t m = utf8proc_normalize_utf32(d, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (m != 1 || (uint32_t)d[0] != cp) mark(cp);
    }
    for (uint32_t cp = 0; cp < 0x10000; cp++)
        if (nfc_unsafe[cp >> 3] >> (cp & 7) & 1) nfc_block_unsafe[cp >> 6] = 1;
}

void tok_nfc_init(void) { pthread_once(&nfc_once, nfc_build); }

bool tok_nfc_unsafe(uint32_t cp) {
    pthread_once(&nfc_once, nfc_build);
    return cp < NFC_MAX_CP && (nfc_unsafe[cp >> 3] >> (cp & 7) & 1);
}

/* Valid UTF-8 code point at s (bytes used, 0 if invalid). */
static size_t next_cp(const uint8_t *s, size_t n, uint32_t *cp) {
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t k = tok_utf8_decode(s, n, cp);
    return k == 1 ? 0 : k; /* a non-ASCII single byte is invalid */
}

int tok_nfc(const char *text, size_t len, sl_buf_t *out, bool *changed, bool *valid) {
    const uint8_t *s = (const uint8_t *)text;
    pthread_once(&nfc_once, nfc_build);
    *changed = false;
    if (valid) *valid = true;
    size_t copied = 0;     /* bytes of text already in out */
    size_t last_safe = 0;  /* start of the last safe starter (or boundary) */
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) { /* ASCII: always a safe starter; skip 8 at a time */
            uint64_t v;
            while (i + 9 <= len && (memcpy(&v, s + i + 1, 8), (v & 0x8080808080808080ULL) == 0)) i += 8;
            last_safe = i++;
            continue;
        }
        /* quick paths: U+0080..U+02FF are all safe (nothing below U+0300
         * is unsafe), other 2-byte characters are decoded in place, and
         * most 3-byte characters lie in blocks with no unsafe code point */
        if (s[i] >= 0xC2 && s[i] < 0xE0 && i + 1 < len && (s[i + 1] & 0xC0) == 0x80) {
            uint32_t cp2 = (uint32_t)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3Fu);
            if (s[i] < 0xCC || !(nfc_unsafe[cp2 >> 3] >> (cp2 & 7) & 1)) {
                last_safe = i;
                i += 2;
                continue;
            }
        }
        if ((s[i] & 0xF0) == 0xE0 && i + 2 < len && (s[i + 1] & 0xC0) == 0x80 && (s[i + 2] & 0xC0) == 0x80 &&
            !(s[i] == 0xE0 && s[i + 1] < 0xA0) && !(s[i] == 0xED && s[i + 1] > 0x9F) &&
            !nfc_block_unsafe[(s[i] & 0x0F) << 6 | (s[i + 1] & 0x3F)]) {
            last_safe = i;
            i += 3;
            continue;
        }
        uint32_t cp;
        size_t k = next_cp(s + i, len - i, &cp);
        if (k == 0) { /* invalid byte: a boundary of its own */
            if (valid) *valid = false;
            i++;
            last_safe = i;
            continue;
        }
        if (!(nfc_unsafe[cp >> 3] >> (cp & 7) & 1)) {
            last_safe = i;
            i += k;
            continue;
        }
        /* segment [last_safe, end): up to the next safe starter or invalid byte */
        size_t end = i + k;
        while (end < len) {
            uint32_t c2;
            size_t k2 = next_cp(s + end, len - end, &c2);
            if (k2 == 0 || !(nfc_unsafe[c2 >> 3] >> (c2 & 7) & 1)) break;
            end += k2;
        }
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t m = utf8proc_map(s + last_safe, (utf8proc_ssize_t)(end - last_safe), &dst,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (m < 0) { /* cannot happen on valid UTF-8; keep the text as it is */
            free(dst);
            i = end;
            last_safe = end;
            continue;
        }
        if ((size_t)m != end - last_safe || memcmp(dst, s + last_safe, (size_t)m) != 0) {
            if (sl_buf_append(out, s + copied, last_safe - copied) != 0 || sl_buf_append(out, dst, (size_t)m) != 0) {
                free(dst);
                return -1;
            }
            copied = end;
            *changed = true;
        }
        free(dst);
        i = end;
        last_safe = end;
    }
    if (*changed && sl_buf_append(out, s + copied, len - copied) != 0) return -1;
    return 0;
}
