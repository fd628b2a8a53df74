/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader.
 *
 * Opens the input with gguf_open_mem() and, when it is accepted, walks every
 * accessor and touches every byte the handle exposes (keys, strings, arrays,
 * tensor data; the walk is tests/unit/gguf_walk.h, shared with the unit
 * test), runs the typed getters on every key, and copies all metadata
 * into a writer, so any range the parser validated wrongly is read here
 * under ASan. A rejected input must come with a message.
 * Built and run by tests/fuzz/build.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "gguf/gguf.h"
#include "../unit/gguf_walk.h"

static volatile uint64_t sink;

/* Every accessor and every byte (gguf_walk.h), then the typed getters on
 * every key and a copy of all metadata into a writer. */
static void walk(const gguf_file_t *f) {
    uint64_t h = 0;
    char why[256];
    if (gguf_walk(f, &h, why, sizeof why) != 0) {
        fprintf(stderr, "fuzz_gguf: %s\n", why);
        abort();
    }
    char err[SL_ERR_MAX];
    for (size_t i = 0; i < gguf_n_kv(f); i++) {
        const char *k = gguf_key(f, i);
        uint32_t u;
        int64_t s;
        float x;
        bool b;
        gguf_str_t str;
        if (gguf_get_u32(f, k, &u, err, sizeof err) == 0) h += u;
        if (gguf_get_i64(f, k, &s, err, sizeof err) == 0) h += (uint64_t)s;
        if (gguf_get_f32(f, k, &x, err, sizeof err) == 0) h += x == x;
        if (gguf_get_bool(f, k, &b, err, sizeof err) == 0) h += b;
        if (gguf_get_str(f, k, &str, err, sizeof err) == 0) h += str.len;
        /* The *_or getters warn on stderr for a present key of the wrong
         * type; call them only where the plain getter succeeded. */
        if (gguf_get_u32(f, k, &u, err, sizeof err) == 0) h += gguf_get_u32_or(f, k, 1);
        if (gguf_get_f32(f, k, &x, err, sizeof err) == 0) h += gguf_get_f32_or(f, k, 0.0f) > 0;
        if (gguf_get_bool(f, k, &b, err, sizeof err) == 0) h += gguf_get_bool_or(f, k, false);
    }
    h += gguf_get_u32_or(f, "fuzz.absent", 1) + gguf_get_bool_or(f, "fuzz.absent", true);
    gguf_writer_t *w = gguf_writer_new();
    if (w) {
        if (gguf_writer_copy_kv(w, f) == 0) h++;
        gguf_writer_free(w);
    }
    sink += h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy, so reading one byte past the end is caught. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    char err[SL_ERR_MAX] = "";
    gguf_file_t *f = gguf_open_mem(copy, size, err, sizeof err);
    if (f) {
        walk(f);
        gguf_close(f);
    } else if (!err[0]) {
        abort(); /* every refusal names its reason */
    }
    free(copy);
    return 0;
}
