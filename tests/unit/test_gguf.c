/* deps: base gguf kernels */
/*
 * test_gguf.c — the GGUF reader and writer.
 *
 * The reference for the format is a small byte builder in this file that
 * lays out GGUF by hand (independent of gguf_write.c): the writer must
 * produce exactly its bytes, and the reader must parse what it builds. The
 * builder also makes the hostile files: lying counts, oversized strings,
 * overflowing arrays, bad alignment, bad tensor infos. Every hostile file must
 * be refused with a message naming the problem, never read out of bounds
 * (each input sits in an exact-size heap block, so ASan sees any overrun).
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "gguf/gguf.h"
#include "gguf_walk.h"
#include "test.h"

/* ------------------------------------------------------------ builder */

typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb_t;

static void bb_raw(bb_t *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void bb_u8(bb_t *b, uint8_t v) {
    bb_raw(b, &v, 1);
}
static void bb_u32(bb_t *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    bb_raw(b, x, 4);
}
static void bb_u64(bb_t *b, uint64_t v) {
    bb_u32(b, (uint32_t)v);
    bb_u32(b, (uint32_t)(v >> 32));
}
static void bb_str(bb_t *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_raw(b, s, strlen(s));
}
static void bb_pad(bb_t *b, size_t align) {
    while (b->n % align)
        bb_u8(b, 0);
}
static void bb_head(bb_t *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_raw(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_kv_u32(bb_t *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_u32(b, GGUF_VT_UINT32);
    bb_u32(b, v);
}
static void bb_kv_str(bb_t *b, const char *key, const char *v) {
    bb_str(b, key);
    bb_u32(b, GGUF_VT_STRING);
    bb_str(b, v);
}
/* Tensor info with 1..4 dims. */
static void bb_tinfo(bb_t *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                     uint64_t off) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        bb_u64(b, ne[i]);
    bb_u32(b, type);
    bb_u64(b, off);
}

/* Opens a copy in an exact-size heap block (ASan catches any overrun); the
 * handle borrows the copy, so close such handles with close_copy(). */
static struct {
    gguf_file_t *f;
    void *buf;
} held[8];

static gguf_file_t *open_copy(const void *p, size_t n, char *err, size_t errlen) {
    void *copy = malloc(n ? n : 1);
    if (!copy) abort();
    if (n) memcpy(copy, p, n);
    gguf_file_t *f = gguf_open_mem(copy, n, err, errlen);
    if (!f) {
        free(copy);
        return NULL;
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(held); i++)
        if (!held[i].f) {
            held[i].f = f;
            held[i].buf = copy;
            return f;
        }
    abort(); /* the tests never hold more than a few */
}

static void close_copy(gguf_file_t *f) {
    for (size_t i = 0; i < SL_ARRAY_LEN(held); i++)
        if (held[i].f == f) {
            gguf_close(f);
            free(held[i].buf);
            held[i].f = NULL;
            held[i].buf = NULL;
            return;
        }
    gguf_close(f);
}

/* Same key, type and value bytes. */
static bool kv_equal(const gguf_file_t *f, size_t i, const gguf_file_t *g, size_t j) {
    if (strcmp(gguf_key(f, i), gguf_key(g, j)) != 0) return false;
    gguf_vtype_t t = gguf_kv_type(f, i);
    if (t != gguf_kv_type(g, j)) return false;
    if (t == GGUF_VT_STRING) {
        gguf_str_t a = gguf_kv_str(f, i), b = gguf_kv_str(g, j);
        return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
    }
    if (t != GGUF_VT_ARRAY)
        return memcmp(gguf_kv_data(f, i), gguf_kv_data(g, j), gguf_vtype_size(t)) == 0;
    gguf_vtype_t et = gguf_arr_type(f, i);
    size_t n = gguf_arr_len(f, i);
    if (et != gguf_arr_type(g, j) || n != gguf_arr_len(g, j)) return false;
    if (et != GGUF_VT_STRING)
        return n == 0 ||
               memcmp(gguf_arr_data(f, i), gguf_arr_data(g, j), n * gguf_vtype_size(et)) == 0;
    for (size_t k = 0; k < n; k++) {
        gguf_str_t a = gguf_arr_str(f, i, k), b = gguf_arr_str(g, j, k);
        if (a.len != b.len || memcmp(a.ptr, b.ptr, a.len) != 0) return false;
    }
    return true;
}

/* Walks every accessor of an open file, touching every byte it exposes
 * (gguf_walk.h); a broken invariant fails the test. */
static void walk(const gguf_file_t *f) {
    uint64_t h = 0;
    char why[256] = "";
    CHECK_MSG(gguf_walk(f, &h, why, sizeof why) == 0, "walk: %s", why);
}

/* Expects failure with a message containing `want`. */
#define EXPECT_FAIL(bytes, len, want)                                                              \
    do {                                                                                           \
        char err_[SL_ERR_MAX] = "";                                                                \
        gguf_file_t *f_ = open_copy((bytes), (len), err_, sizeof err_);                            \
        CHECK_MSG(f_ == NULL, "expected failure '%s'", (want));                                    \
        if (f_) close_copy(f_);                                                                    \
        CHECK_MSG(strstr(err_, (want)) != NULL, "message '%s' lacks '%s'", err_, (want));          \
    } while (0)

/* A per-process temporary path; each call returns a new buffer (free it). */
static char *tmp_path(const char *name) {
    char buf[256];
    const char *dir = getenv("TMPDIR");
    snprintf(buf, sizeof buf, "%s/silica-test-gguf-%d-%s", dir && *dir ? dir : "/tmp",
             (int)getpid(), name);
    return sl_strdup(buf);
}

/* --------------------------------------------------------- round trip */

static void test_roundtrip_all_types(void) {
    gguf_writer_t *w = gguf_writer_new();
    CHECK(w != NULL);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = INT64_MIN + 5;
    double f64 = -1.0 / 3.0;
    CHECK(gguf_writer_set_val(w, "t.u8", GGUF_VT_UINT8, &u8) == 0);
    CHECK(gguf_writer_set_val(w, "t.i8", GGUF_VT_INT8, &i8) == 0);
    CHECK(gguf_writer_set_val(w, "t.u16", GGUF_VT_UINT16, &u16) == 0);
    CHECK(gguf_writer_set_val(w, "t.i16", GGUF_VT_INT16, &i16) == 0);
    CHECK(gguf_writer_set_u32(w, "t.u32", 4000000000u) == 0);
    CHECK(gguf_writer_set_i32(w, "t.i32", -2000000000) == 0);
    CHECK(gguf_writer_set_f32(w, "t.f32", 1.5e-3f) == 0);
    CHECK(gguf_writer_set_bool(w, "t.bool", true) == 0);
    CHECK(gguf_writer_set_str(w, "t.str", "héllo") == 0);
    CHECK(gguf_writer_set_u64(w, "t.u64", UINT64_MAX - 1) == 0);
    CHECK(gguf_writer_set_val(w, "t.i64", GGUF_VT_INT64, &i64) == 0);
    CHECK(gguf_writer_set_val(w, "t.f64", GGUF_VT_FLOAT64, &f64) == 0);
    CHECK(gguf_writer_set_str(w, "t.empty", "") == 0);
    CHECK(gguf_writer_set_val(w, "t.bad", GGUF_VT_STRING, "x") != 0);
    CHECK(strstr(gguf_writer_error(w), "t.bad") != NULL);

    int32_t ai32[5] = {1, -2, 3, -4, 5};
    float af32[3] = {0.5f, -0.25f, 1e30f};
    uint8_t abool[4] = {1, 0, 1, 1};
    double af64[2] = {1e300, -2.5};
    uint64_t au64[2] = {0, UINT64_MAX};
    int16_t ai16[3] = {-1, 0, 1};
    CHECK(gguf_writer_set_arr(w, "a.i32", GGUF_VT_INT32, ai32, 5) == 0);
    CHECK(gguf_writer_set_arr(w, "a.f32", GGUF_VT_FLOAT32, af32, 3) == 0);
    CHECK(gguf_writer_set_arr(w, "a.bool", GGUF_VT_BOOL, abool, 4) == 0);
    CHECK(gguf_writer_set_arr(w, "a.f64", GGUF_VT_FLOAT64, af64, 2) == 0);
    CHECK(gguf_writer_set_arr(w, "a.u64", GGUF_VT_UINT64, au64, 2) == 0);
    CHECK(gguf_writer_set_arr(w, "a.i16", GGUF_VT_INT16, ai16, 3) == 0);
    CHECK(gguf_writer_set_arr(w, "a.empty", GGUF_VT_UINT8, NULL, 0) == 0);
    const char *strs[4] = {"alpha", "", "γάμμα", "d"};
    CHECK(gguf_writer_set_arr_str(w, "a.str", strs, NULL, 4) == 0);
    const char *bin[2] = {"a\0b", "xyz"};
    size_t binlen[2] = {3, 2};
    CHECK(gguf_writer_set_arr_str(w, "a.bin", bin, binlen, 2) == 0);
    /* Replacing keeps the first position. */
    CHECK(gguf_writer_set_u32(w, "t.u32", 7) == 0);
    CHECK(gguf_writer_set_arr(w, "a.nested", GGUF_VT_ARRAY, ai32, 1) != 0);

    float tf32[12];
    for (int i = 0; i < 12; i++)
        tf32[i] = (float)i * 0.5f - 1.0f;
    uint16_t tf16[8] = {0x3c00, 0xbc00, 0, 0x7bff, 1, 2, 3, 4};
    uint8_t tq8[2 * 34];
    for (int i = 0; i < 68; i++)
        tq8[i] = (uint8_t)(i * 7);
    uint8_t tq4k[144];
    for (int i = 0; i < 144; i++)
        tq4k[i] = (uint8_t)(255 - i);
    int64_t ne_f32[2] = {4, 3}, ne_f16[1] = {8}, ne_q8[2] = {32, 2}, ne_q4k[1] = {256};
    CHECK(gguf_writer_add_tensor(w, "w.f32", SL_TYPE_F32, 2, ne_f32, tf32) == 0);
    CHECK(gguf_writer_add_tensor(w, "w.f16", SL_TYPE_F16, 1, ne_f16, tf16) == 0);
    CHECK(gguf_writer_add_tensor(w, "w.q8", SL_TYPE_Q8_0, 2, ne_q8, tq8) == 0);
    CHECK(gguf_writer_add_tensor_ref(w, "w.q4k", SL_TYPE_Q4_K, 1, ne_q4k, tq4k) == 0);
    CHECK(gguf_writer_add_tensor(w, "w.empty", SL_TYPE_F32, 2, (int64_t[]){0, 5}, NULL) == 0);
    /* Refused: duplicate, ne[0] not whole blocks, too many dims, unknown type. */
    CHECK(gguf_writer_add_tensor(w, "w.f32", SL_TYPE_F32, 2, ne_f32, tf32) != 0);
    CHECK(strstr(gguf_writer_error(w), "duplicate") != NULL);
    CHECK(gguf_writer_add_tensor(w, "w.bad", SL_TYPE_Q8_0, 1, (int64_t[]){33}, tq8) != 0);
    CHECK(gguf_writer_add_tensor(w, "w.bad", SL_TYPE_F32, 5, (int64_t[]){1, 1, 1, 1, 1}, tf32) !=
          0);
    CHECK(gguf_writer_add_tensor(w, "w.bad", (sl_type_t)4, 1, (int64_t[]){1}, tf32) != 0);

    char err[SL_ERR_MAX] = "";
    char *path = tmp_path("rt.gguf");
    CHECK_MSG(gguf_writer_write(w, path, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);

    gguf_file_t *f = gguf_open(path, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (!f) {
        free(path);
        return;
    }
    CHECK(gguf_version(f) == 3);
    CHECK(gguf_alignment(f) == 32);
    CHECK(gguf_data_offset(f) % 32 == 0);
    CHECK(gguf_n_kv(f) == 22);
    CHECK(strcmp(gguf_key(f, 0), "t.u8") == 0);
    CHECK(strcmp(gguf_key(f, 4), "t.u32") == 0);
    CHECK(strcmp(gguf_key(f, 21), "a.bin") == 0);
    CHECK(gguf_key(f, 22) == NULL);
    CHECK(gguf_find_key(f, "nope") == -1);

    uint8_t b1;
    memcpy(&b1, gguf_kv_data(f, (size_t)gguf_find_key(f, "t.u8")), 1);
    CHECK(b1 == 200);
    CHECK(gguf_kv_type(f, (size_t)gguf_find_key(f, "t.i8")) == GGUF_VT_INT8);
    int16_t s16;
    memcpy(&s16, gguf_kv_data(f, (size_t)gguf_find_key(f, "t.i16")), 2);
    CHECK(s16 == -30000);
    uint32_t v32;
    CHECK(gguf_get_u32(f, "t.u32", &v32, err, sizeof err) == 0 && v32 == 7);
    CHECK(gguf_get_u32(f, "t.u16", &v32, err, sizeof err) == 0 && v32 == 60000);
    CHECK(gguf_get_u32(f, "t.u8", &v32, err, sizeof err) == 0 && v32 == 200);
    CHECK(gguf_get_u32(f, "t.i8", &v32, err, sizeof err) != 0);
    CHECK(strstr(err, "does not fit") != NULL);
    CHECK(gguf_get_u32(f, "t.u64", &v32, err, sizeof err) != 0);
    CHECK(gguf_get_u32(f, "t.str", &v32, err, sizeof err) != 0);
    CHECK(strstr(err, "string") != NULL);
    CHECK(gguf_get_u32(f, "missing.key", &v32, err, sizeof err) != 0);
    CHECK(strstr(err, "missing.key") != NULL && strstr(err, "not found") != NULL);
    int64_t v64;
    CHECK(gguf_get_i64(f, "t.i64", &v64, err, sizeof err) == 0 && v64 == INT64_MIN + 5);
    CHECK(gguf_get_i64(f, "t.i32", &v64, err, sizeof err) == 0 && v64 == -2000000000);
    CHECK(gguf_get_i64(f, "t.i16", &v64, err, sizeof err) == 0 && v64 == -30000);
    CHECK(gguf_get_i64(f, "t.u64", &v64, err, sizeof err) != 0);
    float fv;
    CHECK(gguf_get_f32(f, "t.f32", &fv, err, sizeof err) == 0 && fv == 1.5e-3f);
    CHECK(gguf_get_f32(f, "t.f64", &fv, err, sizeof err) == 0 && fv == (float)(-1.0 / 3.0));
    CHECK(gguf_get_f32(f, "t.i8", &fv, err, sizeof err) == 0 && fv == -100.0f);
    CHECK(gguf_get_f32(f, "t.str", &fv, err, sizeof err) != 0);
    double dv;
    memcpy(&dv, gguf_kv_data(f, (size_t)gguf_find_key(f, "t.f64")), 8);
    CHECK(dv == -1.0 / 3.0);
    bool bv = false;
    CHECK(gguf_get_bool(f, "t.bool", &bv, err, sizeof err) == 0 && bv);
    CHECK(gguf_get_bool(f, "t.u8", &bv, err, sizeof err) != 0);
    gguf_str_t s;
    CHECK(gguf_get_str(f, "t.str", &s, err, sizeof err) == 0 && s.len == 6 &&
          memcmp(s.ptr, "héllo", 6) == 0);
    CHECK(gguf_get_str(f, "t.empty", &s, err, sizeof err) == 0 && s.len == 0);
    CHECK(gguf_get_u32_or(f, "missing", 42) == 42);
    CHECK(gguf_get_u32_or(f, "t.u32", 42) == 7);
    CHECK(gguf_get_f32_or(f, "missing", 2.5f) == 2.5f);
    CHECK(gguf_get_bool_or(f, "missing", true) == true);
    CHECK(gguf_get_bool_or(f, "t.bool", false) == true);
    CHECK(gguf_get_u32_or(f, "t.str", 9) == 9); /* wrong type: default, with a warning */
    CHECK(gguf_get_f32_or(f, "t.f32", 0) == 1.5e-3f && gguf_get_f32_or(f, "t.str", 3) == 3);
    CHECK(gguf_get_bool_or(f, "t.u8", true) == true);

    size_t i = (size_t)gguf_find_key(f, "a.i32");
    CHECK(gguf_kv_type(f, i) == GGUF_VT_ARRAY && gguf_arr_type(f, i) == GGUF_VT_INT32);
    CHECK(gguf_arr_len(f, i) == 5 && memcmp(gguf_arr_data(f, i), ai32, sizeof ai32) == 0);
    CHECK(gguf_kv_data(f, i) == NULL);
    i = (size_t)gguf_find_key(f, "a.f32");
    CHECK(gguf_arr_len(f, i) == 3 && memcmp(gguf_arr_data(f, i), af32, sizeof af32) == 0);
    i = (size_t)gguf_find_key(f, "a.bool");
    CHECK(gguf_arr_type(f, i) == GGUF_VT_BOOL && memcmp(gguf_arr_data(f, i), abool, 4) == 0);
    i = (size_t)gguf_find_key(f, "a.f64");
    CHECK(memcmp(gguf_arr_data(f, i), af64, sizeof af64) == 0);
    i = (size_t)gguf_find_key(f, "a.u64");
    CHECK(memcmp(gguf_arr_data(f, i), au64, sizeof au64) == 0);
    i = (size_t)gguf_find_key(f, "a.i16");
    CHECK(memcmp(gguf_arr_data(f, i), ai16, sizeof ai16) == 0);
    i = (size_t)gguf_find_key(f, "a.empty");
    CHECK(gguf_arr_len(f, i) == 0 && gguf_arr_type(f, i) == GGUF_VT_UINT8);
    i = (size_t)gguf_find_key(f, "a.str");
    CHECK(gguf_arr_type(f, i) == GGUF_VT_STRING && gguf_arr_len(f, i) == 4);
    CHECK(gguf_arr_data(f, i) == NULL);
    for (size_t j = 0; j < 4; j++) {
        s = gguf_arr_str(f, i, j);
        CHECK(s.len == strlen(strs[j]) && memcmp(s.ptr, strs[j], s.len) == 0);
    }
    CHECK(gguf_arr_str(f, i, 4).ptr == NULL);
    i = (size_t)gguf_find_key(f, "a.bin");
    s = gguf_arr_str(f, i, 0);
    CHECK(s.len == 3 && memcmp(s.ptr, "a\0b", 3) == 0);
    s = gguf_arr_str(f, i, 1);
    CHECK(s.len == 2 && memcmp(s.ptr, "xy", 2) == 0);

    CHECK(gguf_n_tensors(f) == 5);
    const gguf_tensor_t *t = gguf_find_tensor(f, "w.f32");
    CHECK(t && t->type == SL_TYPE_F32 && t->n_dims == 2 && t->ne[0] == 4 && t->ne[1] == 3 &&
          t->ne[2] == 1 && t->ne[3] == 1 && t->nbytes == 48 && t->offset == 0);
    CHECK(t && memcmp(t->data, tf32, 48) == 0);
    t = gguf_find_tensor(f, "w.f16");
    CHECK(t && t->nbytes == 16 && t->offset == 64 && memcmp(t->data, tf16, 16) == 0);
    t = gguf_find_tensor(f, "w.q8");
    CHECK(t && t->type == SL_TYPE_Q8_0 && t->nbytes == 68 && t->offset == 96 &&
          memcmp(t->data, tq8, 68) == 0);
    t = gguf_find_tensor(f, "w.q4k");
    CHECK(t && t->nbytes == 144 && t->offset % 32 == 0 && memcmp(t->data, tq4k, 144) == 0);
    t = gguf_find_tensor(f, "w.empty");
    CHECK(t && t->nbytes == 0 && t->ne[0] == 0 && t->ne[1] == 5);
    CHECK(gguf_find_tensor(f, "w.none") == NULL);
    CHECK(gguf_tensor(f, 5) == NULL);
    CHECK(strcmp(gguf_tensor(f, 0)->name, "w.f32") == 0);
    walk(f);

    /* copy_kv into a new writer with a 64-byte alignment: same metadata. */
    w = gguf_writer_new();
    CHECK(gguf_writer_copy_kv(w, f) == 0);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 64) == 0);
    for (size_t k = 0; k < gguf_n_tensors(f); k++) {
        const gguf_tensor_t *tt = gguf_tensor(f, k);
        CHECK(gguf_writer_add_tensor_ref(w, tt->name, tt->type, tt->n_dims, tt->ne, tt->data) == 0);
    }
    char *path2 = tmp_path("rt64.gguf");
    CHECK_MSG(gguf_writer_write(w, path2, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
    gguf_file_t *g = gguf_open(path2, err, sizeof err);
    CHECK_MSG(g != NULL, "%s", err);
    if (g) {
        CHECK(gguf_alignment(g) == 64 && gguf_data_offset(g) % 64 == 0);
        CHECK(gguf_n_kv(g) == gguf_n_kv(f) + 1);
        for (size_t k = 0; k < gguf_n_kv(f); k++)
            CHECK_MSG(kv_equal(f, k, g, k), "key #%zu", k);
        for (size_t k = 0; k < gguf_n_tensors(f); k++) {
            const gguf_tensor_t *a = gguf_tensor(f, k), *b = gguf_tensor(g, k);
            CHECK(b->offset % 64 == 0 && a->nbytes == b->nbytes &&
                  memcmp(a->data, b->data, a->nbytes) == 0);
        }
        gguf_close(g);
    }
    close_copy(f);
    remove(path);
    remove(path2);

    /* A bad general.alignment is refused at write time. */
    w = gguf_writer_new();
    gguf_writer_set_u32(w, "general.alignment", 48);
    CHECK(gguf_writer_write(w, path, err, sizeof err) != 0 && strstr(err, "power of two"));
    gguf_writer_free(w);
    CHECK(access(path, F_OK) != 0);
    free(path);
    free(path2);
}

/* The writer's bytes equal the hand-built layout. */
static void test_writer_matches_builder(void) {
    bb_t b = {0};
    bb_head(&b, 3, 2, 3);
    bb_kv_str(&b, "general.architecture", "llama");
    bb_kv_u32(&b, "llama.block_count", 2);
    bb_str(&b, "tokenizer.ggml.tokens");
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u32(&b, GGUF_VT_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "<s>");
    bb_str(&b, "hi");
    bb_tinfo(&b, "a", 2, (uint64_t[]){2, 3}, SL_TYPE_F32, 0);
    bb_tinfo(&b, "b", 1, (uint64_t[]){3}, SL_TYPE_F16, 32);
    bb_pad(&b, 32);
    size_t data_at = b.n;
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t bv[3] = {0x3c00, 0x4000, 0x4200};
    bb_raw(&b, a, 24);
    bb_pad(&b, 32);
    bb_raw(&b, bv, 6);
    bb_pad(&b, 32);

    gguf_writer_t *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", 2);
    const char *toks[2] = {"<s>", "hi"};
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 2);
    gguf_writer_add_tensor(w, "a", SL_TYPE_F32, 2, (int64_t[]){2, 3}, a);
    gguf_writer_add_tensor(w, "b", SL_TYPE_F16, 1, (int64_t[]){3}, bv);
    char err[SL_ERR_MAX] = "";
    char *path = tmp_path("wb.gguf");
    CHECK_MSG(gguf_writer_write(w, path, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
    size_t len = 0;
    char *got = sl_read_file(path, &len, err, sizeof err);
    CHECK_MSG(got && len == b.n && memcmp(got, b.p, b.n) == 0, "writer bytes differ (%zu vs %zu)",
              len, b.n);
    free(got);
    remove(path);
    free(path);

    /* And the reader reads the hand-built file. */
    gguf_file_t *f = open_copy(b.p, b.n, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (f) {
        CHECK(gguf_data_offset(f) == data_at);
        gguf_str_t s;
        CHECK(gguf_get_str(f, "general.architecture", &s, err, sizeof err) == 0 && s.len == 5 &&
              memcmp(s.ptr, "llama", 5) == 0);
        const gguf_tensor_t *t = gguf_find_tensor(f, "b");
        CHECK(t && (const uint8_t *)t->data == (const uint8_t *)gguf_tensor(f, 0)->data + 32);
        close_copy(f);
    }
    free(b.p);
}

/* ---------------------------------------------------------- truncation */

/* A small valid file with a bit of everything; the caller frees b.p. */
static bb_t sample_file(void) {
    bb_t b = {0};
    bb_head(&b, 3, 3, 5);
    bb_kv_str(&b, "general.architecture", "qwen3");
    bb_kv_u32(&b, "general.alignment", 16);
    bb_str(&b, "a.f32");
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u32(&b, GGUF_VT_FLOAT32);
    bb_u64(&b, 3);
    bb_u32(&b, 0x3f800000);
    bb_u32(&b, 0x40000000);
    bb_u32(&b, 0xbf800000);
    bb_str(&b, "a.str");
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u32(&b, GGUF_VT_STRING);
    bb_u64(&b, 3);
    bb_str(&b, "x");
    bb_str(&b, "");
    bb_str(&b, "yz");
    bb_str(&b, "b");
    bb_u32(&b, GGUF_VT_BOOL);
    bb_u8(&b, 1);
    bb_tinfo(&b, "t0", 2, (uint64_t[]){4, 2}, SL_TYPE_F32, 0);
    bb_tinfo(&b, "t1", 1, (uint64_t[]){32}, SL_TYPE_Q8_0, 32);
    bb_tinfo(&b, "t2", 1, (uint64_t[]){3}, SL_TYPE_F16, 80);
    bb_pad(&b, 16);
    for (int i = 0; i < 86; i++)
        bb_u8(&b, (uint8_t)(i * 3 + 1));
    return b;
}

static void test_truncation_every_length(void) {
    bb_t b = sample_file();
    char err[SL_ERR_MAX];
    gguf_file_t *f = open_copy(b.p, b.n, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (!f) return;
    CHECK(gguf_alignment(f) == 16 && gguf_n_tensors(f) == 3);
    CHECK(gguf_find_tensor(f, "t2")->nbytes == 6);
    size_t data_at = gguf_data_offset(f);
    close_copy(f);
    int bad = 0;
    for (size_t n = 0; n < b.n; n++) {
        err[0] = '\0';
        f = open_copy(b.p, n, err, sizeof err);
        if (f || !err[0]) bad++;
        if (f) close_copy(f);
    }
    CHECK_MSG(bad == 0, "%d truncated lengths were not refused with a message", bad);
    /* The message of a cut inside the tensor data names the tensor. */
    EXPECT_FAIL(b.p, b.n - 1, "tensor 't2'");
    EXPECT_FAIL(b.p, data_at - 18, "truncated file: tensor 't2' at offset");
    EXPECT_FAIL(b.p, 30, "metadata count 5 at offset 16 cannot fit");
    free(b.p);
}

/* ------------------------------------------------------------- hostile */

static void test_hostile_header(void) {
    bb_t b = {0};
    EXPECT_FAIL("", 0, "not a GGUF");
    EXPECT_FAIL("GGUX\3\0\0\0", 8, "not a GGUF");
    EXPECT_FAIL("GGUF\3\0", 6, "truncated");
    bb_head(&b, 1, 0, 0);
    EXPECT_FAIL(b.p, b.n, "version 1");
    b.n = 0;
    bb_raw(&b, "GGUF\0\0\0\3", 8);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    EXPECT_FAIL(b.p, b.n, "big-endian");
    b.n = 0;
    bb_head(&b, 4, 0, 0);
    EXPECT_FAIL(b.p, b.n, "unsupported GGUF version 4");
    /* Minimal valid files: v2 and v3 with nothing in them. */
    char err[SL_ERR_MAX];
    for (uint32_t v = 2; v <= 3; v++) {
        b.n = 0;
        bb_head(&b, v, 0, 0);
        gguf_file_t *f = open_copy(b.p, b.n, err, sizeof err);
        CHECK_MSG(f != NULL, "%s", err);
        if (f) {
            CHECK(gguf_version(f) == v && gguf_n_kv(f) == 0 && gguf_n_tensors(f) == 0);
            close_copy(f);
        }
    }
    uint64_t huge[] = {1ull << 63, UINT64_MAX, 1ull << 32, 3};
    for (size_t i = 0; i < SL_ARRAY_LEN(huge); i++) {
        b.n = 0;
        bb_head(&b, 3, 0, huge[i]);
        EXPECT_FAIL(b.p, b.n, "metadata count");
        b.n = 0;
        bb_head(&b, 3, huge[i], 0);
        EXPECT_FAIL(b.p, b.n, "tensor count");
    }
    free(b.p);
}

static void test_hostile_metadata(void) {
    bb_t b = {0};
    /* Key length bigger than the file. */
    bb_head(&b, 3, 0, 1);
    bb_u64(&b, 1000);
    bb_raw(&b, "abcdefghijklmn", 14);
    EXPECT_FAIL(b.p, b.n, "string length 1000");
    b.n = 0;
    bb_head(&b, 3, 0, 1);
    bb_u64(&b, UINT64_MAX);
    bb_raw(&b, "abcdefghijklmn", 14);
    EXPECT_FAIL(b.p, b.n, "metadata key #0");
    /* String value longer than the file. */
    b.n = 0;
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k.s");
    bb_u32(&b, GGUF_VT_STRING);
    bb_u64(&b, 1ull << 62);
    bb_raw(&b, "abc", 3);
    EXPECT_FAIL(b.p, b.n, "value of metadata key 'k.s'");
    /* Array lengths that overflow n * size or exceed the file. */
    uint64_t lens[] = {(1ull << 61) + 1, 1ull << 63, UINT64_MAX, 1000};
    for (size_t i = 0; i < SL_ARRAY_LEN(lens); i++) {
        b.n = 0;
        bb_head(&b, 3, 0, 1);
        bb_str(&b, "k.arr");
        bb_u32(&b, GGUF_VT_ARRAY);
        bb_u32(&b, GGUF_VT_UINT64);
        bb_u64(&b, lens[i]);
        bb_u64(&b, 1);
        bb_u64(&b, 2);
        EXPECT_FAIL(b.p, b.n, "metadata key 'k.arr': array of");
        b.n = 0;
        bb_head(&b, 3, 0, 1);
        bb_str(&b, "k.sarr");
        bb_u32(&b, GGUF_VT_ARRAY);
        bb_u32(&b, GGUF_VT_STRING);
        bb_u64(&b, lens[i]);
        bb_str(&b, "a");
        bb_str(&b, "b");
        EXPECT_FAIL(b.p, b.n, "k.sarr");
    }
    /* A string inside a string array lies about its length. */
    b.n = 0;
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k.sarr");
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u32(&b, GGUF_VT_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "a");
    bb_u64(&b, 5000);
    bb_raw(&b, "xyz", 3);
    EXPECT_FAIL(b.p, b.n, "string 1 of array 'k.sarr'");
    /* Unknown value type, nested array, unknown element type, bad bool. */
    b.n = 0;
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k.t");
    bb_u32(&b, 13);
    bb_u32(&b, 0);
    EXPECT_FAIL(b.p, b.n, "unknown value type 13");
    b.n = 0;
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k.n");
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u64(&b, 1);
    bb_u32(&b, GGUF_VT_UINT8);
    bb_u64(&b, 1);
    bb_u8(&b, 1);
    EXPECT_FAIL(b.p, b.n, "nested arrays");
    b.n = 0;
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k.e");
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u32(&b, 99);
    bb_u64(&b, 0);
    EXPECT_FAIL(b.p, b.n, "unknown array element type 99");
    b.n = 0;
    bb_head(&b, 3, 0, 1);
    bb_str(&b, "k.b");
    bb_u32(&b, GGUF_VT_BOOL);
    bb_u8(&b, 2);
    EXPECT_FAIL(b.p, b.n, "bool value 2");
    /* Duplicate keys, empty key, key with a NUL. */
    b.n = 0;
    bb_head(&b, 3, 0, 3);
    bb_kv_u32(&b, "k.a", 1);
    bb_kv_u32(&b, "k.b", 1);
    bb_kv_u32(&b, "k.a", 2);
    EXPECT_FAIL(b.p, b.n, "duplicate metadata key 'k.a' (entries #0 and #2)");
    b.n = 0;
    bb_head(&b, 3, 0, 1);
    bb_kv_u32(&b, "", 1);
    EXPECT_FAIL(b.p, b.n, "empty name");
    b.n = 0;
    bb_head(&b, 3, 0, 1);
    bb_u64(&b, 3);
    bb_raw(&b, "a\0b", 3);
    bb_u32(&b, GGUF_VT_UINT8);
    bb_u8(&b, 1);
    EXPECT_FAIL(b.p, b.n, "NUL");
    /* A key longer than the spec's 65535 bytes. */
    b.n = 0;
    bb_head(&b, 3, 0, 1);
    bb_u64(&b, 70000);
    for (int i = 0; i < 70000; i++)
        bb_u8(&b, 'k');
    bb_u32(&b, GGUF_VT_UINT8);
    bb_u8(&b, 1);
    EXPECT_FAIL(b.p, b.n, "name of 70000 bytes is longer than 65535");
    /* Alignment: zero, not a power of two, wrong type. */
    uint32_t aligns[] = {0, 3, 48, 0x80000000u};
    for (size_t i = 0; i < SL_ARRAY_LEN(aligns); i++) {
        b.n = 0;
        bb_head(&b, 3, 0, 1);
        bb_kv_u32(&b, "general.alignment", aligns[i]);
        EXPECT_FAIL(b.p, b.n, "general.alignment");
    }
    b.n = 0;
    bb_head(&b, 3, 0, 1);
    bb_kv_str(&b, "general.alignment", "32");
    EXPECT_FAIL(b.p, b.n, "general.alignment has type string");
    /* Alignment 1 and 64 are fine. */
    char err[SL_ERR_MAX];
    b.n = 0;
    bb_head(&b, 3, 0, 1);
    bb_kv_u32(&b, "general.alignment", 1);
    gguf_file_t *f = open_copy(b.p, b.n, err, sizeof err);
    CHECK_MSG(f && gguf_alignment(f) == 1, "%s", err);
    if (f) close_copy(f);
    free(b.p);
}

/* One tensor info after a one-key header; data section of `data_bytes`. */
static void one_tensor(bb_t *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off,
                       size_t data_bytes) {
    b->n = 0;
    bb_head(b, 3, 1, 1);
    bb_kv_str(b, "general.architecture", "x");
    bb_tinfo(b, "blk.0.w", n_dims, ne, type, off);
    bb_pad(b, 32);
    for (size_t i = 0; i < data_bytes; i++)
        bb_u8(b, (uint8_t)i);
}

static void test_hostile_tensors(void) {
    bb_t b = {0};
    char err[SL_ERR_MAX];
    one_tensor(&b, 2, (uint64_t[]){8, 2}, SL_TYPE_F32, 0, 64);
    gguf_file_t *f = open_copy(b.p, b.n, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (f) close_copy(f);

    one_tensor(&b, 2, (uint64_t[]){8, 2}, SL_TYPE_F32, 0, 63);
    EXPECT_FAIL(b.p, b.n, "tensor 'blk.0.w': data [0, 64)");
    one_tensor(&b, 2, (uint64_t[]){8, 2}, SL_TYPE_F32, 32, 64);
    EXPECT_FAIL(b.p, b.n, "ends past the data section of 64 bytes");
    one_tensor(&b, 2, (uint64_t[]){8, 2}, SL_TYPE_F32, 1ull << 40, 64);
    EXPECT_FAIL(b.p, b.n, "offset 1099511627776 is past the end of the data section");
    one_tensor(&b, 2, (uint64_t[]){8, 2}, SL_TYPE_F32, UINT64_MAX - 31, 64);
    EXPECT_FAIL(b.p, b.n, "is past the end of the data section");
    one_tensor(&b, 2, (uint64_t[]){8, 2}, SL_TYPE_F32, 4, 128);
    EXPECT_FAIL(b.p, b.n, "offset 4 is not a multiple of the alignment 32");
    one_tensor(&b, 5, (uint64_t[]){1, 1, 1, 1, 1}, SL_TYPE_F32, 0, 64);
    EXPECT_FAIL(b.p, b.n, "n_dims 5");
    uint32_t bad_types[] = {4, 5, 31, 40, 1000, UINT32_MAX};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad_types); i++) {
        one_tensor(&b, 1, (uint64_t[]){8}, bad_types[i], 0, 64);
        EXPECT_FAIL(b.p, b.n, "unknown tensor type id");
    }
    one_tensor(&b, 1, (uint64_t[]){33}, SL_TYPE_Q8_0, 0, 64);
    EXPECT_FAIL(b.p, b.n, "not a multiple of the block size 32");
    one_tensor(&b, 2, (uint64_t[]){8, (uint64_t)-1}, SL_TYPE_F32, 0, 64);
    EXPECT_FAIL(b.p, b.n, "negative");
    one_tensor(&b, 4, (uint64_t[]){1ull << 20, 1ull << 20, 1ull << 20, 1ull << 20}, SL_TYPE_F32, 0,
               64);
    EXPECT_FAIL(b.p, b.n, "too many elements");
    one_tensor(&b, 2, (uint64_t[]){1ull << 31, 1ull << 31}, SL_TYPE_F32, 0, 64);
    EXPECT_FAIL(b.p, b.n, "needs more bytes than the file has");
    one_tensor(&b, 1, (uint64_t[]){1ull << 62}, SL_TYPE_F64, 0, 64);
    EXPECT_FAIL(b.p, b.n, "needs more bytes");
    /* Zero-sized tensor at offset 0 of an empty data section is fine. */
    one_tensor(&b, 2, (uint64_t[]){0, 7}, SL_TYPE_F32, 0, 0);
    f = open_copy(b.p, b.n, err, sizeof err);
    CHECK_MSG(f && gguf_tensor(f, 0)->nbytes == 0, "%s", err);
    if (f) close_copy(f);

    /* Duplicate tensor names; overlapping tensors. */
    b.n = 0;
    bb_head(&b, 3, 2, 0);
    bb_tinfo(&b, "w", 1, (uint64_t[]){8}, SL_TYPE_F32, 0);
    bb_tinfo(&b, "w", 1, (uint64_t[]){8}, SL_TYPE_F32, 32);
    bb_pad(&b, 32);
    for (int i = 0; i < 64; i++)
        bb_u8(&b, 0);
    EXPECT_FAIL(b.p, b.n, "duplicate tensor name 'w'");
    b.n = 0;
    bb_head(&b, 3, 2, 0);
    bb_tinfo(&b, "w1", 1, (uint64_t[]){16}, SL_TYPE_F32, 0);
    bb_tinfo(&b, "w2", 1, (uint64_t[]){8}, SL_TYPE_F32, 32);
    bb_pad(&b, 32);
    for (int i = 0; i < 64; i++)
        bb_u8(&b, 0);
    EXPECT_FAIL(b.p, b.n, "tensor 'w1' data [0, 64) overlaps tensor 'w2' data [32, 64)");
    /* Tensor name longer than the file. */
    b.n = 0;
    bb_head(&b, 3, 1, 0);
    bb_u64(&b, 1ull << 40);
    bb_raw(&b, "abcdefghijklmnopqrstuvwxyz", 26);
    EXPECT_FAIL(b.p, b.n, "tensor info #0");
    free(b.p);
}

/* Deterministic mutations of a valid file: each must open cleanly or fail
 * with a message; what opens is walked in full. Covers in CI what the
 * libFuzzer target (tests/fuzz/fuzz_gguf.c) explores at length. */
static void test_mutations(void) {
    bb_t b = sample_file();
    uint8_t *m = malloc(b.n);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int opened = 0, silent = 0;
    static const uint64_t interesting[] = {0,          1,          0x7f,       0xff,
                                           0xffff,     0x7fffffff, 0xffffffff, 1ull << 32,
                                           1ull << 62, 1ull << 63, UINT64_MAX};
    for (int iter = 0; iter < 4000; iter++) {
        memcpy(m, b.p, b.n);
        int n_mut = 1 + iter % 4;
        for (int k = 0; k < n_mut; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t pos = (size_t)(rng % b.n);
            switch ((rng >> 32) % 4) {
            case 0:
                m[pos] ^= (uint8_t)(1u << ((rng >> 40) % 8));
                break;
            case 1:
                m[pos] = (uint8_t)(rng >> 48);
                break;
            default: {
                uint64_t v = interesting[(rng >> 40) % SL_ARRAY_LEN(interesting)];
                size_t w = (rng >> 56) % 2 ? 8 : 4;
                if (pos + w <= b.n) memcpy(m + pos, &v, w);
            }
            }
        }
        size_t len = b.n - (iter % 7 == 0 ? (size_t)(rng % 16) : 0);
        char err[SL_ERR_MAX] = "";
        gguf_file_t *f = open_copy(m, len, err, sizeof err);
        if (f) {
            opened++;
            walk(f);
            close_copy(f);
        } else if (!err[0]) {
            silent++;
        }
    }
    CHECK_MSG(silent == 0, "%d mutants failed without a message", silent);
    CHECK(opened > 0); /* some mutations only touch data bytes */
    free(m);
    free(b.p);
}

/* ------------------------------------------------------------ fixtures */

#define FIXTURES "/work/shared/fixtures"

static void check_fixture(const char *path, bool copy_roundtrip) {
    char err[SL_ERR_MAX];
    gguf_file_t *f = gguf_open(path, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (!f) return;
    gguf_str_t arch;
    CHECK(gguf_get_str(f, "general.architecture", &arch, err, sizeof err) == 0);
    bool known = (arch.len == 5 && !memcmp(arch.ptr, "llama", 5)) ||
                 (arch.len == 5 && !memcmp(arch.ptr, "qwen2", 5)) ||
                 (arch.len == 5 && !memcmp(arch.ptr, "qwen3", 5));
    CHECK_MSG(known, "%s: architecture '%.*s'", path, (int)arch.len, arch.ptr);
    int64_t ti = gguf_find_key(f, "tokenizer.ggml.tokens");
    CHECK(ti >= 0 && gguf_arr_type(f, (size_t)ti) == GGUF_VT_STRING);
    size_t vocab = ti >= 0 ? gguf_arr_len(f, (size_t)ti) : 0;
    CHECK(vocab > 1000);
    const gguf_tensor_t *emb = gguf_find_tensor(f, "token_embd.weight");
    CHECK_MSG(emb && emb->n_dims == 2 && emb->ne[0] == 64 && (size_t)emb->ne[1] == vocab,
              "%s: token_embd.weight", path);
    char key[64];
    snprintf(key, sizeof key, "%.*s.embedding_length", (int)arch.len, arch.ptr);
    uint32_t n_embd = 0;
    CHECK(gguf_get_u32(f, key, &n_embd, err, sizeof err) == 0 && n_embd == 64);
    snprintf(key, sizeof key, "%.*s.block_count", (int)arch.len, arch.ptr);
    CHECK(gguf_get_u32_or(f, key, 0) == 2);
    CHECK(gguf_find_tensor(f, "blk.1.attn_q.weight") != NULL);
    CHECK(gguf_find_tensor(f, "blk.2.attn_q.weight") == NULL);
    size_t total = 0;
    for (size_t i = 0; i < gguf_n_tensors(f); i++)
        total += gguf_tensor(f, i)->nbytes;
    CHECK(total <= gguf_file_size(f) - gguf_data_offset(f));

    if (copy_roundtrip) {
        /* copy_kv + all tensors by reference: the same file back, byte for byte. */
        gguf_writer_t *w = gguf_writer_new();
        CHECK(gguf_writer_copy_kv(w, f) == 0);
        for (size_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor_t *t = gguf_tensor(f, i);
            CHECK(gguf_writer_add_tensor_ref(w, t->name, t->type, t->n_dims, t->ne, t->data) == 0);
        }
        char *out = tmp_path("fixture-copy.gguf");
        CHECK_MSG(gguf_writer_write(w, out, err, sizeof err) == 0, "%s", err);
        gguf_writer_free(w);
        gguf_file_t *g = gguf_open(out, err, sizeof err);
        CHECK_MSG(g != NULL, "%s", err);
        if (g) {
            CHECK(gguf_n_kv(g) == gguf_n_kv(f) && gguf_n_tensors(g) == gguf_n_tensors(f));
            CHECK(gguf_data_offset(g) == gguf_data_offset(f) || gguf_version(f) != 3);
            bool same = true;
            for (size_t i = 0; i < gguf_n_tensors(f); i++) {
                const gguf_tensor_t *a = gguf_tensor(f, i), *c = gguf_tensor(g, i);
                same = same && strcmp(a->name, c->name) == 0 && a->nbytes == c->nbytes &&
                       memcmp(a->data, c->data, a->nbytes) == 0;
            }
            CHECK(same);
            for (size_t i = 0; i < gguf_n_kv(f); i++)
                CHECK_MSG(kv_equal(f, i, g, i), "key #%zu", i);
            gguf_close(g);
        }
        remove(out);
        free(out);
    }
    close_copy(f);
}

static void test_fixtures(void) {
    DIR *d = opendir(FIXTURES);
    if (!d) {
        fprintf(stderr, "  fixtures: skipped (%s absent)\n", FIXTURES);
        return;
    }
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf") != 0) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", FIXTURES, e->d_name);
        check_fixture(path, n == 0);
        n++;
    }
    closedir(d);
    fprintf(stderr, "  fixtures: %d files checked\n", n);
}

static void test_open_errors(void) {
    char err[SL_ERR_MAX];
    CHECK(gguf_open("/nonexistent/x.gguf", err, sizeof err) == NULL);
    CHECK(strstr(err, "/nonexistent/x.gguf") != NULL);
    CHECK(gguf_open("/tmp", err, sizeof err) == NULL);
    char *p = tmp_path("empty.gguf");
    FILE *fp = fopen(p, "wb");
    if (fp) fclose(fp);
    CHECK(gguf_open(p, err, sizeof err) == NULL && strstr(err, "empty"));
    remove(p);
    free(p);
    CHECK(strcmp(gguf_vtype_name(GGUF_VT_FLOAT64), "float64") == 0);
    CHECK(strcmp(gguf_vtype_name((gguf_vtype_t)77), "?") == 0);
}

int main(void) {
    RUN(test_roundtrip_all_types);
    RUN(test_writer_matches_builder);
    RUN(test_truncation_every_length);
    RUN(test_hostile_header);
    RUN(test_hostile_metadata);
    RUN(test_hostile_tensors);
    RUN(test_mutations);
    RUN(test_open_errors);
    RUN(test_fixtures);
    return test_summary();
}
