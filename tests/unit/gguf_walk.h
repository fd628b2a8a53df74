/*
 * gguf_walk.h — walks every accessor of an open GGUF file and touches every
 * byte it exposes (keys, strings, arrays, scalar values, tensor data), so a
 * range the reader validated wrongly is read under ASan. Shared by the unit
 * test (tests/unit/test_gguf.c) and the fuzz target (tests/fuzz/fuzz_gguf.c),
 * which treat a broken invariant their own way (CHECK / abort).
 *
 * Returns 0 and adds a hash of what it read to *hash (so the reads cannot be
 * optimised away), or -1 at the first broken invariant with why[] saying
 * which: a key or tensor that its own name does not find, a fixed-size value
 * without data, a tensor offset off the file's alignment.
 */
#ifndef SILICA_TESTS_GGUF_WALK_H
#define SILICA_TESTS_GGUF_WALK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gguf/gguf.h"

static inline uint64_t gguf_walk_bytes(const void *p, size_t n) {
    const uint8_t *d = p;
    uint64_t h = 0;
    for (size_t j = 0; j < n; j++)
        h += d[j];
    return h;
}

static inline int gguf_walk(const gguf_file_t *f, uint64_t *hash, char *why, size_t whylen) {
    uint64_t h = gguf_version(f) + gguf_alignment(f) + gguf_file_size(f) + gguf_data_offset(f);
    for (size_t i = 0; i < gguf_n_kv(f); i++) {
        const char *k = gguf_key(f, i);
        h += strlen(k);
        if (gguf_find_key(f, k) != (int64_t)i) {
            snprintf(why, whylen, "key %zu '%s' is not found by its name", i, k);
            return -1;
        }
        gguf_vtype_t t = gguf_kv_type(f, i);
        if (t == GGUF_VT_STRING) {
            gguf_str_t s = gguf_kv_str(f, i);
            h += gguf_walk_bytes(s.ptr, s.len);
        } else if (t == GGUF_VT_ARRAY) {
            size_t n = gguf_arr_len(f, i);
            if (gguf_arr_type(f, i) == GGUF_VT_STRING) {
                for (size_t j = 0; j < n; j++) {
                    gguf_str_t s = gguf_arr_str(f, i, j);
                    h += gguf_walk_bytes(s.ptr, s.len);
                }
            } else {
                h += gguf_walk_bytes(gguf_arr_data(f, i), n * gguf_vtype_size(gguf_arr_type(f, i)));
            }
        } else {
            const void *d = gguf_kv_data(f, i);
            if (!d) {
                snprintf(why, whylen, "key '%s' (%s) has no value data", k, gguf_vtype_name(t));
                return -1;
            }
            h += gguf_walk_bytes(d, gguf_vtype_size(t));
        }
    }
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        if (gguf_find_tensor(f, t->name) != t) {
            snprintf(why, whylen, "tensor %zu '%s' is not found by its name", i, t->name);
            return -1;
        }
        if (t->offset % gguf_alignment(f) != 0) {
            snprintf(why, whylen, "tensor '%s' offset %llu is not aligned to %zu", t->name,
                     (unsigned long long)t->offset, gguf_alignment(f));
            return -1;
        }
        h += gguf_walk_bytes(t->data, t->nbytes);
    }
    *hash += h;
    return 0;
}

#endif
