/*
 * fuzz_tokenizer.c — libFuzzer target for a GGUF's tokenizer data (tokens,
 * scores, types, merges, special ids, flags, a Unigram model's
 * precompiled_charsmap): the input is opened as a GGUF; when tok_load
 * accepts it, a few fixed texts (ASCII, accents, CJK, spaces, control and
 * invalid bytes, special-token texts) and the input's own first bytes are
 * encoded with and without special tokens, and the ids decoded and streamed
 * back, so any table or offset the loader validated wrongly is read here
 * under ASan. A rejected input must come with a message.
 * Built and run by tests/fuzz/build.sh (FUZZ_TARGET=tokenizer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static void exercise(const sl_tok_t *t, const char *text, size_t len) {
    char err[SL_ERR_MAX];
    for (int mode = 0; mode < 2; mode++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tok_encode(t, text, len, mode, mode, &ids, &n, err, sizeof err) != 0) {
            if (!err[0]) abort(); /* a refusal names its reason */
            continue;
        }
        sl_buf_t out = {0};
        tok_decode(t, ids, n, mode, &out);
        sl_detok_t *d = detok_new(t, mode);
        for (size_t i = 0; d && i < n; i++) detok_push(d, ids[i], &out);
        if (d) detok_flush(d, &out);
        detok_free(d);
        sl_buf_free(&out);
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[SL_ERR_MAX] = "";
    gguf_file_t *f = gguf_open_mem(data, size, err, sizeof err);
    if (!f) {
        if (!err[0]) abort();
        return 0;
    }
    err[0] = '\0';
    sl_tok_t *t = tok_load(f, err, sizeof err);
    if (!t) {
        if (!err[0]) abort();
        gguf_close(f);
        return 0;
    }
    static const char *const texts[] = {
        "Hello, world! The quick brown fox.", "  leading and   many   spaces  ", "caf\xC3\xA9 na\xC3\xAFve \xEF\xBC\xA1\xEF\xBC\xA2",
        "\xE4\xB8\xAD\xE6\x96\x87 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "\x07\x01tab\there\nnew\r", "\xFF\xFE\xC3 bad utf8 \xE2\x82",
        "<s> [CLS] <|im_start|>user<|im_end|> </s>", ""};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) exercise(t, texts[i], strlen(texts[i]));
    exercise(t, (const char *)data, size < 256 ? size : 256);
    tok_free(t);
    gguf_close(f);
    return 0;
}
