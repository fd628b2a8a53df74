/*
 * gguf_write.c — building a GGUF v3 file in memory and writing it in one pass.
 *
 * Metadata values are kept already serialized (the bytes that follow the u32
 * type field on disk), so writing is a straight copy and gguf_writer_copy_kv
 * can take values verbatim from an open file. Keys keep the position of
 * their first insertion; setting a key again replaces its value there.
 *
 * Layout written: header, metadata in insertion order, tensor infos in
 * insertion order, zero padding to the alignment, then each tensor's data
 * padded to the alignment. The alignment is general.alignment (uint32, a
 * power of two) when set, else 32. The file is written to "<path>.tmp" and
 * renamed, so a failed write never leaves a half file under the real name.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "gguf/gguf.h"
#include "gguf/gguf_internal.h"

struct wkv {
    char *key;
    gguf_vtype_t type;
    sl_buf_t val; /* serialized value */
};

struct wtensor {
    char *name;
    sl_type_t type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    size_t nbytes;
    const void *data; /* owned or borrowed */
    void *owned;
};

struct gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wtensor *t;
    size_t n_t, cap_t;
    char err[SL_ERR_MAX];
};

gguf_writer_t *gguf_writer_new(void) {
    return calloc(1, sizeof(gguf_writer_t));
}

void gguf_writer_free(gguf_writer_t *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        sl_buf_free(&w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].owned);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

const char *gguf_writer_error(const gguf_writer_t *w) {
    return w->err;
}

/* Returns the entry for key (new, appended, with an empty value) or NULL. */
static struct wkv *kv_slot(gguf_writer_t *w, const char *key, gguf_vtype_t type) {
    if (!key || !*key) {
        sl_err(w->err, sizeof w->err, "empty metadata key");
        return NULL;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            sl_buf_clear(&w->kv[i].val);
            w->kv[i].type = type;
            return &w->kv[i];
        }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        struct wkv *p = realloc(w->kv, cap * sizeof *p);
        if (!p) goto oom;
        w->kv = p;
        w->cap_kv = cap;
    }
    struct wkv *kv = &w->kv[w->n_kv];
    memset(kv, 0, sizeof *kv);
    if (!(kv->key = sl_strdup(key))) goto oom;
    kv->type = type;
    w->n_kv++;
    return kv;
oom:
    sl_err(w->err, sizeof w->err, "out of memory");
    return NULL;
}

/* On failure after kv_slot, the entry stays with an empty value; drop it so
 * a later write does not emit a malformed entry. */
static int kv_fail(gguf_writer_t *w, struct wkv *kv) {
    size_t i = (size_t)(kv - w->kv);
    free(kv->key);
    sl_buf_free(&kv->val);
    memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - i - 1) * sizeof *w->kv);
    w->n_kv--;
    return sl_err(w->err, sizeof w->err, "out of memory");
}

int gguf_writer_set_val(gguf_writer_t *w, const char *key, gguf_vtype_t type, const void *value) {
    size_t n = gguf_vtype_size(type);
    if (n == 0)
        return sl_err(w->err, sizeof w->err, "key '%s': type %s is not a fixed-size scalar",
                      key ? key : "", gguf_vtype_name(type));
    uint8_t b;
    if (type == GGUF_VT_BOOL) {
        b = *(const uint8_t *)value != 0;
        value = &b;
    }
    struct wkv *kv = kv_slot(w, key, type);
    if (!kv) return -1;
    if (sl_buf_append(&kv->val, value, n)) return kv_fail(w, kv);
    return 0;
}

int gguf_writer_set_u32(gguf_writer_t *w, const char *key, uint32_t v) {
    return gguf_writer_set_val(w, key, GGUF_VT_UINT32, &v);
}
int gguf_writer_set_i32(gguf_writer_t *w, const char *key, int32_t v) {
    return gguf_writer_set_val(w, key, GGUF_VT_INT32, &v);
}
int gguf_writer_set_u64(gguf_writer_t *w, const char *key, uint64_t v) {
    return gguf_writer_set_val(w, key, GGUF_VT_UINT64, &v);
}
int gguf_writer_set_f32(gguf_writer_t *w, const char *key, float v) {
    return gguf_writer_set_val(w, key, GGUF_VT_FLOAT32, &v);
}
int gguf_writer_set_bool(gguf_writer_t *w, const char *key, bool v) {
    uint8_t b = v;
    return gguf_writer_set_val(w, key, GGUF_VT_BOOL, &b);
}

static int put_u32(sl_buf_t *b, uint32_t v) {
    return sl_buf_append(b, &v, 4);
}
static int put_u64(sl_buf_t *b, uint64_t v) {
    return sl_buf_append(b, &v, 8);
}
static int put_str(sl_buf_t *b, const char *s, size_t n) {
    return put_u64(b, n) || sl_buf_append(b, s, n);
}

int gguf_writer_set_str(gguf_writer_t *w, const char *key, const char *v) {
    if (!v) return sl_err(w->err, sizeof w->err, "key '%s': NULL string", key ? key : "");
    struct wkv *kv = kv_slot(w, key, GGUF_VT_STRING);
    if (!kv) return -1;
    if (put_str(&kv->val, v, strlen(v))) return kv_fail(w, kv);
    return 0;
}

int gguf_writer_set_arr(gguf_writer_t *w, const char *key, gguf_vtype_t elem_type, const void *data,
                        size_t n) {
    size_t esz = gguf_vtype_size(elem_type), bytes;
    if (esz == 0)
        return sl_err(w->err, sizeof w->err,
                      "key '%s': array elements of type %s need gguf_writer_set_arr_str or are "
                      "not supported",
                      key ? key : "", gguf_vtype_name(elem_type));
    if (!sl_mul_size(n, esz, &bytes))
        return sl_err(w->err, sizeof w->err, "key '%s': array too large", key ? key : "");
    if (n && !data) return sl_err(w->err, sizeof w->err, "key '%s': NULL data", key ? key : "");
    struct wkv *kv = kv_slot(w, key, GGUF_VT_ARRAY);
    if (!kv) return -1;
    if (put_u32(&kv->val, elem_type) || put_u64(&kv->val, n) || sl_buf_reserve(&kv->val, bytes))
        return kv_fail(w, kv);
    if (elem_type == GGUF_VT_BOOL) {
        const uint8_t *p = data;
        for (size_t i = 0; i < n; i++)
            sl_buf_putc(&kv->val, (char)(p[i] != 0)); /* reserved */
    } else {
        sl_buf_append(&kv->val, data, bytes); /* reserved above */
    }
    return 0;
}

int gguf_writer_set_arr_str(gguf_writer_t *w, const char *key, const char *const *strs,
                            const size_t *lens, size_t n) {
    if (n && !strs) return sl_err(w->err, sizeof w->err, "key '%s': NULL strings", key ? key : "");
    for (size_t i = 0; i < n; i++)
        if (!strs[i] && (!lens || lens[i]))
            return sl_err(w->err, sizeof w->err, "key '%s': string %zu is NULL", key ? key : "", i);
    struct wkv *kv = kv_slot(w, key, GGUF_VT_ARRAY);
    if (!kv) return -1;
    if (put_u32(&kv->val, GGUF_VT_STRING) || put_u64(&kv->val, n)) return kv_fail(w, kv);
    for (size_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(strs[i]);
        if (put_str(&kv->val, strs[i] ? strs[i] : "", len)) return kv_fail(w, kv);
    }
    return 0;
}

int gguf_writer_copy_kv(gguf_writer_t *w, const gguf_file_t *src) {
    for (size_t i = 0; i < gguf_n_kv(src); i++) {
        const void *raw;
        size_t len;
        gguf_kv_raw_(src, i, &raw, &len);
        struct wkv *kv = kv_slot(w, gguf_key(src, i), gguf_kv_type(src, i));
        if (!kv) return -1;
        if (sl_buf_append(&kv->val, raw, len)) return kv_fail(w, kv);
    }
    return 0;
}

static int add_tensor(gguf_writer_t *w, const char *name, sl_type_t type, uint32_t n_dims,
                      const int64_t *ne, const void *data, bool copy) {
    if (!name || !*name) return sl_err(w->err, sizeof w->err, "empty tensor name");
    if (n_dims > GGUF_MAX_DIMS || (n_dims && !ne))
        return sl_err(w->err, sizeof w->err, "tensor '%s': n_dims %" PRIu32 " (max %d)", name,
                      n_dims, GGUF_MAX_DIMS);
    const sl_type_traits_t *tr = sl_type_traits(type);
    if (!tr || tr->blck <= 0 || !tr->type_size)
        return sl_err(w->err, sizeof w->err, "tensor '%s': unknown type %d", name, (int)type);
    struct wtensor t = {.type = type, .n_dims = n_dims};
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        t.ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0)
            return sl_err(w->err, sizeof w->err, "tensor '%s': negative dimension", name);
        t.ne[d] = ne[d];
    }
    if (t.ne[0] % tr->blck)
        return sl_err(w->err, sizeof w->err,
                      "tensor '%s': ne[0] = %" PRId64
                      " is not a multiple of %s's block size %" PRId64,
                      name, t.ne[0], tr->name ? tr->name : "?", tr->blck);
    bool ok = sl_mul_size((size_t)(t.ne[0] / tr->blck), tr->type_size, &t.nbytes);
    for (int d = 1; ok && d < GGUF_MAX_DIMS; d++)
        ok = sl_mul_size(t.nbytes, (size_t)t.ne[d], &t.nbytes);
    if (!ok) return sl_err(w->err, sizeof w->err, "tensor '%s': too large", name);
    if (t.nbytes && !data) return sl_err(w->err, sizeof w->err, "tensor '%s': NULL data", name);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return sl_err(w->err, sizeof w->err, "duplicate tensor name '%s'", name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        struct wtensor *p = realloc(w->t, cap * sizeof *p);
        if (!p) return sl_err(w->err, sizeof w->err, "out of memory");
        w->t = p;
        w->cap_t = cap;
    }
    if (!(t.name = sl_strdup(name))) return sl_err(w->err, sizeof w->err, "out of memory");
    if (copy && t.nbytes) {
        if (!(t.owned = malloc(t.nbytes))) {
            free(t.name);
            return sl_err(w->err, sizeof w->err, "out of memory (tensor '%s', %zu bytes)", name,
                          t.nbytes);
        }
        memcpy(t.owned, data, t.nbytes);
        t.data = t.owned;
    } else {
        t.data = data;
    }
    w->t[w->n_t++] = t;
    return 0;
}

int gguf_writer_add_tensor(gguf_writer_t *w, const char *name, sl_type_t type, uint32_t n_dims,
                           const int64_t *ne, const void *data) {
    return add_tensor(w, name, type, n_dims, ne, data, true);
}

int gguf_writer_add_tensor_ref(gguf_writer_t *w, const char *name, sl_type_t type, uint32_t n_dims,
                               const int64_t *ne, const void *data) {
    return add_tensor(w, name, type, n_dims, ne, data, false);
}

static size_t pad_to(size_t n, size_t align) {
    return (align - n % align) % align;
}

/* Writes n bytes or records an error. */
static int out_write(FILE *fp, const void *p, size_t n) {
    return n == 0 || fwrite(p, 1, n, fp) == n ? 0 : -1;
}

static int out_zeros(FILE *fp, size_t n) {
    static const uint8_t zeros[64];
    while (n) {
        size_t k = SL_MIN(n, sizeof zeros);
        if (out_write(fp, zeros, k)) return -1;
        n -= k;
    }
    return 0;
}

int gguf_writer_write(gguf_writer_t *w, const char *path, char *err, size_t errlen) {
    size_t align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") != 0) continue;
        uint32_t a = 0;
        if (w->kv[i].type != GGUF_VT_UINT32)
            return sl_err(err, errlen, "general.alignment must be uint32, not %s",
                          gguf_vtype_name(w->kv[i].type));
        memcpy(&a, w->kv[i].val.data, 4);
        if (a == 0 || (a & (a - 1)) || a > (1u << 30))
            return sl_err(err, errlen, "general.alignment = %" PRIu32 " is not a power of two", a);
        align = a;
    }

    /* Serialize everything before the data section into one buffer. */
    sl_buf_t h = {0};
    bool ok = sl_buf_append(&h, "GGUF", 4) == 0 && put_u32(&h, 3) == 0 &&
              put_u64(&h, w->n_t) == 0 && put_u64(&h, w->n_kv) == 0;
    for (size_t i = 0; ok && i < w->n_kv; i++)
        ok = put_str(&h, w->kv[i].key, strlen(w->kv[i].key)) == 0 &&
             put_u32(&h, w->kv[i].type) == 0 &&
             sl_buf_append(&h, w->kv[i].val.data, w->kv[i].val.len) == 0;
    uint64_t off = 0;
    for (size_t i = 0; ok && i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        ok = put_str(&h, t->name, strlen(t->name)) == 0 && put_u32(&h, t->n_dims) == 0;
        for (uint32_t d = 0; ok && d < t->n_dims; d++)
            ok = put_u64(&h, (uint64_t)t->ne[d]) == 0;
        ok = ok && put_u32(&h, (uint32_t)t->type) == 0 && put_u64(&h, off) == 0;
        size_t padded = t->nbytes + pad_to(t->nbytes, align); /* nbytes < SIZE_MAX - 2^30 */
        if (__builtin_add_overflow(off, padded, &off)) {
            sl_buf_free(&h);
            return sl_err(err, errlen, "tensor data too large");
        }
    }
    if (!ok) {
        sl_buf_free(&h);
        return sl_err(err, errlen, "out of memory");
    }

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        sl_buf_free(&h);
        return sl_err(err, errlen, "out of memory");
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        sl_err(err, errlen, "%s: %s", tmp, strerror(errno));
        sl_buf_free(&h);
        free(tmp);
        return -1;
    }
    int rc = out_write(fp, h.data, h.len) || out_zeros(fp, pad_to(h.len, align)) ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < w->n_t; i++)
        if (out_write(fp, w->t[i].data, w->t[i].nbytes) ||
            out_zeros(fp, pad_to(w->t[i].nbytes, align)))
            rc = -1;
    int saved = errno;
    if (fclose(fp) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -1;
        saved = errno;
    }
    if (rc != 0) {
        sl_err(err, errlen, "writing %s: %s", path, strerror(saved));
        remove(tmp);
    }
    sl_buf_free(&h);
    free(tmp);
    return rc;
}
