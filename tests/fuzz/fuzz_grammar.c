/*
 * fuzz_grammar.c — libFuzzer target for the grammar parsers: GBNF, regex
 * (PCRE2-validated subset) and JSON Schema. The first input byte picks the
 * parser, the rest is the source text. A grammar that compiles is indexed
 * against a small byte vocabulary and driven for a few steps (mask, accept
 * the first allowed token) so the matcher runs on hostile grammars too.
 * Must never crash, leak or hang; errors are fine.
 */
#include "grammar/grammar.h"

#include <stdlib.h>
#include <string.h>

static gram_vocab_t *VOC;

static void make_vocab(void) {
    static char bytes[256];
    static const char *extra[] = {"{\"", "\":", "ab", "12", "\\n", "é", "true", "  ", NULL};
    const char *toks[300];
    size_t lens[300];
    size_t n = 0;
    for (int i = 0; i < 256; i++) {
        bytes[i] = (char)i;
        toks[n] = &bytes[i];
        lens[n++] = 1;
    }
    for (int i = 0; extra[i]; i++) {
        toks[n] = extra[i];
        lens[n++] = strlen(extra[i]);
    }
    toks[n] = "";
    lens[n] = 0;
    int32_t eog = (int32_t)n++;
    char err[256];
    VOC = gram_vocab_new(toks, lens, n, &eog, 1, err, sizeof err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!VOC) make_vocab();
    if (!VOC || size < 1 || size > 8192) return 0;
    char *src = malloc(size);
    if (!src) return 0;
    memcpy(src, data + 1, size - 1);
    src[size - 1] = 0;
    char err[256];
    gram_t *g = NULL;
    switch (data[0] % 3) {
    case 0: g = gram_from_gbnf(src, err, sizeof err); break;
    case 1: g = gram_from_regex(src, err, sizeof err); break;
    default: {
        json_t *s = json_loads(src, 0, NULL);
        if (s) g = gram_from_json_schema(s, err, sizeof err);
        json_decref(s);
    }
    }
    if (g) {
        gram_index_t *ix = gram_index_new(g, VOC, err, sizeof err);
        gram_matcher_t *m = ix ? gram_matcher_new(ix, err, sizeof err) : NULL;
        uint32_t mask[16];
        for (int step = 0; m && step < 16; step++) {
            if (gram_matcher_fill_mask(m, mask) <= 0) break;
            int32_t pick = -1;
            for (int w = 0; w < 9 && pick < 0; w++)
                if (mask[w]) pick = w * 32 + __builtin_ctz(mask[w]);
            if (pick < 0 || gram_matcher_accept_token(m, pick) != 0) abort(); /* mask lied */
        }
        if (m && gram_matcher_rollback(m, 1) == 0) gram_matcher_fill_mask(m, mask);
        gram_matcher_free(m);
        gram_index_free(ix);
        gram_free(g);
    }
    free(src);
    return 0;
}
