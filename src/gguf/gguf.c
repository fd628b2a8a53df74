/*
 * gguf.c — the GGUF v2/v3 reader (over mmap or a caller's buffer).
 *
 * The file is outside input: it may be truncated, lie about its counts, or be
 * built to make us read out of bounds or allocate the world. So parsing is one
 * forward pass with a cursor that checks every read against the bytes left,
 * and every count is bounded by those bytes before anything is allocated
 * (a metadata entry takes at least 13 bytes, a tensor info at least 24, a
 * string at least 8), which caps our memory at a small multiple of the file
 * size. After gguf_open*() returns a handle, all of it has been validated:
 * accessors only index arrays built here and never re-check the file.
 *
 * v2 and v3 share one layout (v3 only added big-endian files, which we
 * reject: Silica runs on little-endian hosts). v1 used 32-bit counts and is
 * rejected with a message saying so.
 *
 * The writer lives in gguf_write.c.
 */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "gguf/gguf_internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "Silica's GGUF code assumes a little-endian host"
#endif

/* One metadata entry. `raw` spans the value as stored after the u32 type
 * field (for arrays: elem type, count, elements), so the writer can copy it
 * verbatim. */
struct gguf_kv {
    size_t key_off; /* into names arena, until pointers are fixed up */
    const char *key;
    gguf_vtype_t type;
    gguf_vtype_t arr_type; /* arrays only */
    uint64_t arr_len;      /* arrays only */
    const uint8_t *val;    /* scalar bytes / string bytes / first array element */
    size_t val_len;        /* string length (strings); total element bytes (arrays) */
    const uint8_t *raw;
    size_t raw_len;
    uint64_t *str_offs; /* string arrays: file offset of each string's length field */
};

struct gguf_file {
    const uint8_t *base;
    size_t size;
    void *map; /* non-NULL when we mmap'ed the file */
    size_t map_len;
    uint32_t version;
    size_t alignment;
    size_t data_offset;
    size_t data_size;
    size_t n_kv;
    struct gguf_kv *kv;
    size_t n_tensors;
    gguf_tensor_t *tensors;
    char *names;     /* arena of NUL-terminated keys and tensor names */
    size_t *kv_hash; /* open addressing, index + 1, 0 = empty; cap is a power of two */
    size_t kv_hash_cap;
    size_t *t_hash;
    size_t t_hash_cap;
};

/* Fixed lower bounds on the on-disk size of one item (see top comment). */
#define MIN_KV_BYTES 13     /* u64 key len + u32 type + 1 byte value */
#define MIN_TENSOR_BYTES 24 /* u64 name len + u32 n_dims + u32 type + u64 offset */
#define MAX_NAME_LEN 65535  /* the GGUF spec's bound on keys */

/* ---------------------------------------------------------------- cursor */

typedef struct rd {
    const uint8_t *p;
    size_t size;
    size_t pos;
    char *err;
    size_t errlen;
} rd_t;

static size_t rd_left(const rd_t *r) {
    return r->size - r->pos;
}

static int rd_need(rd_t *r, size_t n, const char *what) {
    if (n > rd_left(r))
        return sl_err(r->err, r->errlen,
                      "truncated file: %s at offset %zu needs %zu bytes but only %zu remain "
                      "(file size %zu)",
                      what, r->pos, n, rd_left(r), r->size);
    return 0;
}

static int rd_u32(rd_t *r, uint32_t *v, const char *what) {
    if (rd_need(r, 4, what)) return -1;
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(rd_t *r, uint64_t *v, const char *what) {
    if (rd_need(r, 8, what)) return -1;
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* Reads a u64 length and checks the bytes are there; returns the bytes. */
static int rd_str(rd_t *r, gguf_str_t *s, const char *what) {
    size_t at = r->pos;
    uint64_t len;
    if (rd_u64(r, &len, what)) return -1;
    if (len > rd_left(r))
        return sl_err(r->err, r->errlen,
                      "%s: string length %" PRIu64 " (length field at offset %zu) exceeds the "
                      "%zu bytes left in the file",
                      what, len, at, rd_left(r));
    s->ptr = (const char *)r->p + r->pos;
    s->len = (size_t)len;
    r->pos += (size_t)len;
    return 0;
}

/* ------------------------------------------------------------- helpers */

size_t gguf_vtype_size(gguf_vtype_t t) {
    switch (t) {
    case GGUF_VT_UINT8:
    case GGUF_VT_INT8:
    case GGUF_VT_BOOL:
        return 1;
    case GGUF_VT_UINT16:
    case GGUF_VT_INT16:
        return 2;
    case GGUF_VT_UINT32:
    case GGUF_VT_INT32:
    case GGUF_VT_FLOAT32:
        return 4;
    case GGUF_VT_UINT64:
    case GGUF_VT_INT64:
    case GGUF_VT_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

const char *gguf_vtype_name(gguf_vtype_t t) {
    static const char *const names[GGUF_VT_COUNT] = {
        "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
        "bool",  "string", "array",  "uint64", "int64",  "float64",
    };
    if ((unsigned)t >= GGUF_VT_COUNT) return "?";
    return names[t];
}

/* FNV-1a over a NUL-terminated string. */
static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static size_t hash_cap_for(size_t n) {
    size_t cap = 8;
    while (cap < n * 2)
        cap *= 2; /* n is bounded by file size / 13, no overflow */
    return cap;
}

/* Inserts index i (name names[i]); returns the earlier index holding the same
 * name, or SIZE_MAX when inserted. */
static size_t hash_insert(size_t *tab, size_t cap, const char *name, size_t i,
                          const char *(*name_of)(const void *, size_t), const void *ctx) {
    size_t mask = cap - 1;
    size_t h = (size_t)hash_str(name) & mask;
    while (tab[h]) {
        if (strcmp(name_of(ctx, tab[h] - 1), name) == 0) return tab[h] - 1;
        h = (h + 1) & mask;
    }
    tab[h] = i + 1;
    return SIZE_MAX;
}

static size_t hash_find(const size_t *tab, size_t cap, const char *name,
                        const char *(*name_of)(const void *, size_t), const void *ctx) {
    if (!tab || !name) return SIZE_MAX;
    size_t mask = cap - 1;
    size_t h = (size_t)hash_str(name) & mask;
    while (tab[h]) {
        if (strcmp(name_of(ctx, tab[h] - 1), name) == 0) return tab[h] - 1;
        h = (h + 1) & mask;
    }
    return SIZE_MAX;
}

static const char *kv_name_of(const void *ctx, size_t i) {
    return ((const gguf_file_t *)ctx)->kv[i].key;
}

static const char *t_name_of(const void *ctx, size_t i) {
    return ((const gguf_file_t *)ctx)->tensors[i].name;
}

/* Copies a name (key or tensor name) into the arena after checking it. */
static int add_name(sl_buf_t *arena, gguf_str_t s, size_t *off, const char *what, size_t at,
                    char *err, size_t errlen) {
    if (s.len == 0) return sl_err(err, errlen, "%s at offset %zu: empty name", what, at);
    if (s.len > MAX_NAME_LEN)
        return sl_err(err, errlen, "%s at offset %zu: name of %zu bytes is longer than %d", what,
                      at, s.len, MAX_NAME_LEN);
    if (memchr(s.ptr, '\0', s.len))
        return sl_err(err, errlen, "%s at offset %zu: name contains a NUL byte", what, at);
    *off = arena->len;
    if (sl_buf_append(arena, s.ptr, s.len) || sl_buf_putc(arena, '\0'))
        return sl_err(err, errlen, "out of memory");
    return 0;
}

/* Prints a name for messages: at most 64 bytes, non-printables as '?'. */
static void safe_name(char *out, size_t outlen, const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < outlen; i++) {
        if (n >= 64) {
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[n] = '\0';
}

/* -------------------------------------------------------------- values */

static int check_bools(const uint8_t *p, size_t n, const char *key, char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++)
        if (p[i] > 1)
            return sl_err(err, errlen,
                          "metadata key '%s': bool value %u (element %zu) is not 0 or 1", key, p[i],
                          i);
    return 0;
}

/* Parses the value of kv (type already read) at the cursor. */
static int parse_value(rd_t *r, struct gguf_kv *kv, const char *key) {
    char what[160];
    snprintf(what, sizeof what, "value of metadata key '%s'", key);
    size_t start = r->pos;
    kv->raw = r->p + start;
    if (kv->type == GGUF_VT_STRING) {
        gguf_str_t s;
        if (rd_str(r, &s, what)) return -1;
        kv->val = (const uint8_t *)s.ptr;
        kv->val_len = s.len;
    } else if (kv->type == GGUF_VT_ARRAY) {
        uint32_t et;
        uint64_t n;
        if (rd_u32(r, &et, what) || rd_u64(r, &n, what)) return -1;
        if (et >= GGUF_VT_COUNT)
            return sl_err(r->err, r->errlen,
                          "metadata key '%s': unknown array element type %" PRIu32 " at offset %zu",
                          key, et, start);
        if (et == GGUF_VT_ARRAY)
            return sl_err(r->err, r->errlen,
                          "metadata key '%s': nested arrays (array of arrays) are not supported",
                          key);
        kv->arr_type = (gguf_vtype_t)et;
        kv->arr_len = n;
        kv->val = r->p + r->pos;
        if (et == GGUF_VT_STRING) {
            /* Each string takes at least its 8-byte length: bound n before
             * allocating the offsets table. */
            if (n > rd_left(r) / 8)
                return sl_err(r->err, r->errlen,
                              "metadata key '%s': array of %" PRIu64
                              " strings at offset %zu cannot fit in the %zu bytes left in the file",
                              key, n, start, rd_left(r));
            if (n) {
                kv->str_offs = malloc((size_t)n * sizeof *kv->str_offs);
                if (!kv->str_offs) return sl_err(r->err, r->errlen, "out of memory");
            }
            for (size_t j = 0; j < (size_t)n; j++) {
                gguf_str_t s;
                kv->str_offs[j] = r->pos;
                snprintf(what, sizeof what, "string %zu of array '%s'", j, key);
                if (rd_str(r, &s, what)) return -1;
            }
            kv->val_len = (size_t)(r->pos - (size_t)(kv->val - r->p));
        } else {
            size_t esz = gguf_vtype_size(kv->arr_type), bytes;
            if (n > SIZE_MAX || !sl_mul_size((size_t)n, esz, &bytes) || bytes > rd_left(r))
                return sl_err(r->err, r->errlen,
                              "metadata key '%s': array of %" PRIu64
                              " %s at offset %zu needs more than the %zu bytes left in the file",
                              key, n, gguf_vtype_name(kv->arr_type), start, rd_left(r));
            if (kv->arr_type == GGUF_VT_BOOL &&
                check_bools(r->p + r->pos, bytes, key, r->err, r->errlen))
                return -1;
            kv->val_len = bytes;
            r->pos += bytes;
        }
    } else {
        size_t esz = gguf_vtype_size(kv->type);
        if (rd_need(r, esz, what)) return -1;
        kv->val = r->p + r->pos;
        kv->val_len = esz;
        if (kv->type == GGUF_VT_BOOL && check_bools(kv->val, 1, key, r->err, r->errlen)) return -1;
        r->pos += esz;
    }
    kv->raw_len = r->pos - start;
    return 0;
}

/* Reads an integer scalar of any width as sign + magnitude (so every uint64
 * and int64 value is exact): returns 0, or -1 if kv is not an integer scalar. */
static int kv_int(const struct gguf_kv *kv, bool *neg, uint64_t *mag) {
    const uint8_t *p = kv->val;
    int64_t s = 0;
    uint64_t u = 0;
    bool is_signed = true;
    switch (kv->type) {
    case GGUF_VT_UINT8:
        u = p[0];
        is_signed = false;
        break;
    case GGUF_VT_INT8:
        s = (int8_t)p[0];
        break;
    case GGUF_VT_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        u = v;
        is_signed = false;
        break;
    }
    case GGUF_VT_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        s = v;
        break;
    }
    case GGUF_VT_UINT32: {
        uint32_t v;
        memcpy(&v, p, 4);
        u = v;
        is_signed = false;
        break;
    }
    case GGUF_VT_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        s = v;
        break;
    }
    case GGUF_VT_UINT64:
        memcpy(&u, p, 8);
        is_signed = false;
        break;
    case GGUF_VT_INT64:
        memcpy(&s, p, 8);
        break;
    default:
        return -1;
    }
    if (is_signed) {
        *neg = s < 0;
        *mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    } else {
        *neg = false;
        *mag = u;
    }
    return 0;
}

/* -------------------------------------------------------------- parse */

static void file_free(gguf_file_t *f) {
    if (!f) return;
    if (f->kv)
        for (size_t i = 0; i < f->n_kv; i++)
            free(f->kv[i].str_offs);
    free(f->kv);
    free(f->tensors);
    free(f->names);
    free(f->kv_hash);
    free(f->t_hash);
    if (f->map) munmap(f->map, f->map_len);
    free(f);
}

struct span {
    uint64_t off, end;
    size_t idx;
};

static int span_cmp(const void *a, const void *b) {
    const struct span *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int parse(gguf_file_t *f, char *err, size_t errlen) {
    rd_t r = {.p = f->base, .size = f->size, .pos = 0, .err = err, .errlen = errlen};
    sl_buf_t arena = {0};
    size_t *t_name_off = NULL; /* arena offsets of tensor names until pointers are fixed */
    struct span *spans = NULL;
    int rc = -1;
    char nm[80];

    if (f->size < 4 || memcmp(f->base, "GGUF", 4) != 0)
        return sl_err(err, errlen, "not a GGUF file (the first 4 bytes are not \"GGUF\")");
    r.pos = 4;
    uint32_t version;
    if (rd_u32(&r, &version, "version")) return -1;
    if (version == 1)
        return sl_err(err, errlen,
                      "GGUF version 1 is not supported (it used 32-bit counts); convert the "
                      "model again with a current tool");
    if (version != 2 && version != 3) {
        uint32_t sw = __builtin_bswap32(version);
        if (sw >= 1 && sw <= 3)
            return sl_err(err, errlen,
                          "big-endian GGUF file (version field reads %" PRIu32
                          " byte-swapped); only little-endian files are supported",
                          sw);
        return sl_err(err, errlen, "unsupported GGUF version %" PRIu32 " (expected 2 or 3)",
                      version);
    }
    f->version = version;
    uint64_t n_tensors, n_kv;
    if (rd_u64(&r, &n_tensors, "tensor count") || rd_u64(&r, &n_kv, "metadata count")) return -1;
    if (n_kv > rd_left(&r) / MIN_KV_BYTES)
        return sl_err(err, errlen,
                      "metadata count %" PRIu64 " at offset 16 cannot fit in the %zu bytes left "
                      "in the file",
                      n_kv, rd_left(&r));
    if (n_tensors > rd_left(&r) / MIN_TENSOR_BYTES)
        return sl_err(err, errlen,
                      "tensor count %" PRIu64 " at offset 8 cannot fit in the %zu bytes left in "
                      "the file",
                      n_tensors, rd_left(&r));

    /* ---- metadata ---- */
    f->n_kv = (size_t)n_kv;
    if (n_kv && !(f->kv = calloc((size_t)n_kv, sizeof *f->kv)))
        return sl_err(err, errlen, "out of memory");
    for (size_t i = 0; i < f->n_kv; i++) {
        struct gguf_kv *kv = &f->kv[i];
        char what[64];
        snprintf(what, sizeof what, "metadata key #%zu", i);
        size_t at = r.pos;
        gguf_str_t key;
        if (rd_str(&r, &key, what)) goto out;
        if (add_name(&arena, key, &kv->key_off, what, at, err, errlen)) goto out;
        safe_name(nm, sizeof nm, key.ptr, key.len);
        uint32_t type;
        size_t type_at = r.pos;
        snprintf(what, sizeof what, "type of metadata key #%zu", i);
        if (rd_u32(&r, &type, what)) goto out;
        if (type >= GGUF_VT_COUNT) {
            sl_err(err, errlen, "metadata key '%s': unknown value type %" PRIu32 " at offset %zu",
                   nm, type, type_at);
            goto out;
        }
        kv->type = (gguf_vtype_t)type;
        if (parse_value(&r, kv, nm)) goto out;
    }

    /* ---- tensor infos ---- */
    f->n_tensors = (size_t)n_tensors;
    if (n_tensors && !(f->tensors = calloc((size_t)n_tensors, sizeof *f->tensors))) {
        sl_err(err, errlen, "out of memory");
        goto out;
    }
    if (n_tensors && !(t_name_off = calloc((size_t)n_tensors, sizeof *t_name_off))) {
        sl_err(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor_t *t = &f->tensors[i];
        char what[64];
        snprintf(what, sizeof what, "tensor info #%zu", i);
        size_t at = r.pos;
        gguf_str_t name;
        if (rd_str(&r, &name, what) ||
            add_name(&arena, name, &t_name_off[i], what, at, err, errlen)) {
            goto out;
        }
        safe_name(nm, sizeof nm, name.ptr, name.len);
        snprintf(what, sizeof what, "tensor '%.40s'", nm);
        uint32_t n_dims, type;
        size_t dims_at = r.pos;
        if (rd_u32(&r, &n_dims, what)) {
            goto out;
        }
        if (n_dims > GGUF_MAX_DIMS) {
            sl_err(err, errlen, "tensor '%s': n_dims %" PRIu32 " at offset %zu exceeds %d", nm,
                   n_dims, dims_at, GGUF_MAX_DIMS);
            goto out;
        }
        t->n_dims = n_dims;
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            uint64_t ne;
            size_t ne_at = r.pos;
            if (rd_u64(&r, &ne, what)) {
                goto out;
            }
            if (ne > (uint64_t)INT64_MAX) {
                sl_err(err, errlen, "tensor '%s': dimension %" PRIu32 " at offset %zu is negative",
                       nm, d, ne_at);
                goto out;
            }
            t->ne[d] = (int64_t)ne;
        }
        size_t type_at = r.pos;
        if (rd_u32(&r, &type, what) || rd_u64(&r, &t->offset, what)) {
            goto out;
        }
        const sl_type_traits_t *tr = type < 1024 ? sl_type_traits((sl_type_t)type) : NULL;
        if (!tr || tr->blck <= 0 || tr->type_size == 0) {
            sl_err(err, errlen, "tensor '%s': unknown tensor type id %" PRIu32 " at offset %zu", nm,
                   type, type_at);
            goto out;
        }
        t->type = (sl_type_t)type;
        /* Size: elements must not overflow int64, ne[0] must be whole blocks. */
        int64_t nel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            if (__builtin_mul_overflow(nel, t->ne[d], &nel)) {
                sl_err(err, errlen,
                       "tensor '%s': shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                       "] has too many elements",
                       nm, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
                goto out;
            }
        if (t->ne[0] % tr->blck != 0) {
            sl_err(err, errlen,
                   "tensor '%s': ne[0] = %" PRId64 " is not a multiple of the block size %" PRId64
                   " of type %s",
                   nm, t->ne[0], tr->blck, tr->name ? tr->name : "?");
            goto out;
        }
        size_t bytes = 0;
        bool ok = (uint64_t)(t->ne[0] / tr->blck) <= SIZE_MAX &&
                  sl_mul_size((size_t)(t->ne[0] / tr->blck), tr->type_size, &bytes);
        for (int d = 1; ok && d < GGUF_MAX_DIMS; d++)
            ok = (uint64_t)t->ne[d] <= SIZE_MAX && sl_mul_size(bytes, (size_t)t->ne[d], &bytes);
        if (!ok || bytes > f->size) {
            sl_err(err, errlen,
                   "tensor '%s': shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                   "] of type %s needs more bytes than the file has (%zu)",
                   nm, t->ne[0], t->ne[1], t->ne[2], t->ne[3], tr->name ? tr->name : "?", f->size);
            goto out;
        }
        t->nbytes = bytes;
    }

    /* ---- names: fix pointers into the arena, then check duplicates ---- */
    f->names = arena.data ? arena.data : calloc(1, 1);
    arena.data = NULL;
    if (!f->names) {
        sl_err(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < f->n_kv; i++)
        f->kv[i].key = f->names + f->kv[i].key_off;
    for (size_t i = 0; i < f->n_tensors; i++)
        f->tensors[i].name = f->names + t_name_off[i];

    f->kv_hash_cap = hash_cap_for(f->n_kv);
    f->t_hash_cap = hash_cap_for(f->n_tensors);
    f->kv_hash = calloc(f->kv_hash_cap, sizeof *f->kv_hash);
    f->t_hash = calloc(f->t_hash_cap, sizeof *f->t_hash);
    if (!f->kv_hash || !f->t_hash) {
        sl_err(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < f->n_kv; i++) {
        size_t prev = hash_insert(f->kv_hash, f->kv_hash_cap, f->kv[i].key, i, kv_name_of, f);
        if (prev != SIZE_MAX) {
            safe_name(nm, sizeof nm, f->kv[i].key, strlen(f->kv[i].key));
            sl_err(err, errlen, "duplicate metadata key '%s' (entries #%zu and #%zu)", nm, prev, i);
            goto out;
        }
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        size_t prev = hash_insert(f->t_hash, f->t_hash_cap, f->tensors[i].name, i, t_name_of, f);
        if (prev != SIZE_MAX) {
            safe_name(nm, sizeof nm, f->tensors[i].name, strlen(f->tensors[i].name));
            sl_err(err, errlen, "duplicate tensor name '%s' (tensors #%zu and #%zu)", nm, prev, i);
            goto out;
        }
    }

    /* ---- alignment ---- */
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    size_t ai = hash_find(f->kv_hash, f->kv_hash_cap, "general.alignment", kv_name_of, f);
    if (ai != SIZE_MAX) {
        bool neg;
        uint64_t a;
        if (kv_int(&f->kv[ai], &neg, &a) != 0) {
            sl_err(err, errlen, "general.alignment has type %s, expected an integer",
                   gguf_vtype_name(f->kv[ai].type));
            goto out;
        }
        if (neg || a == 0 || (a & (a - 1)) != 0 || a > (1u << 30)) {
            sl_err(err, errlen,
                   "general.alignment = %s%" PRIu64 " is not a power of two between 1 and 2^30",
                   neg ? "-" : "", a);
            goto out;
        }
        f->alignment = (size_t)a;
    }

    /* ---- data section ---- */
    size_t info_end = r.pos, pad = (f->alignment - info_end % f->alignment) % f->alignment;
    f->data_offset = info_end + pad; /* info_end <= size, pad < 2^30: no overflow */
    f->data_size = f->data_offset <= f->size ? f->size - f->data_offset : 0;
    const uint8_t *data = f->base + SL_MIN(f->data_offset, f->size);
    size_t n_spans = 0;
    if (f->n_tensors && !(spans = malloc(f->n_tensors * sizeof *spans))) {
        sl_err(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor_t *t = &f->tensors[i];
        safe_name(nm, sizeof nm, t->name, strlen(t->name));
        if (t->offset % f->alignment != 0) {
            sl_err(err, errlen,
                   "tensor '%s': data offset %" PRIu64 " is not a multiple of the alignment %zu",
                   nm, t->offset, f->alignment);
            goto out;
        }
        if (t->offset > f->data_size) {
            sl_err(err, errlen,
                   "tensor '%s': data offset %" PRIu64 " is past the end of the data section "
                   "(file offset %zu, %zu bytes)",
                   nm, t->offset, f->data_offset, f->data_size);
            goto out;
        }
        if (t->nbytes > f->data_size - t->offset) {
            sl_err(err, errlen,
                   "tensor '%s': data [%" PRIu64 ", %" PRIu64 ") (relative to the data section at "
                   "file offset %zu) ends past the data section of %zu bytes",
                   nm, t->offset, t->offset + (uint64_t)t->nbytes, f->data_offset, f->data_size);
            goto out;
        }
        t->data = data + t->offset;
        if (t->nbytes) spans[n_spans++] = (struct span){t->offset, t->offset + t->nbytes, i};
    }
    if (n_spans > 1) qsort(spans, n_spans, sizeof *spans, span_cmp);
    for (size_t i = 1; i < n_spans; i++)
        if (spans[i].off < spans[i - 1].end) {
            char nm2[80];
            const char *a = f->tensors[spans[i - 1].idx].name, *b = f->tensors[spans[i].idx].name;
            safe_name(nm, sizeof nm, a, strlen(a));
            safe_name(nm2, sizeof nm2, b, strlen(b));
            sl_err(err, errlen,
                   "tensor '%s' data [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%s' data [%" PRIu64
                   ", %" PRIu64 ")",
                   nm, spans[i - 1].off, spans[i - 1].end, nm2, spans[i].off, spans[i].end);
            goto out;
        }
    rc = 0;
out:
    free(spans);
    free(t_name_off);
    sl_buf_free(&arena);
    return rc;
}

gguf_file_t *gguf_open_mem(const void *data, size_t size, char *err, size_t errlen) {
    if (!data && size) {
        sl_err(err, errlen, "no data");
        return NULL;
    }
    gguf_file_t *f = calloc(1, sizeof *f);
    if (!f) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    f->base = data ? data : (const uint8_t *)"";
    f->size = size;
    if (parse(f, err, errlen) != 0) {
        file_free(f);
        return NULL;
    }
    return f;
}

gguf_file_t *gguf_open(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sl_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        sl_err(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        sl_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size <= 0 || (uint64_t)st.st_size > SIZE_MAX) {
        sl_err(err, errlen, "%s: %s", path, st.st_size <= 0 ? "file is empty" : "file too large");
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) {
        sl_err(err, errlen, "%s: mmap: %s", path, strerror(map_errno));
        return NULL;
    }
    char tmp[SL_ERR_MAX];
    gguf_file_t *f = gguf_open_mem(map, size, tmp, sizeof tmp);
    if (!f) {
        sl_err(err, errlen, "%s: %s", path, tmp);
        munmap(map, size);
        return NULL;
    }
    f->map = map;
    f->map_len = size;
    return f;
}

void gguf_close(gguf_file_t *f) {
    file_free(f);
}

/* ----------------------------------------------------------- accessors */

uint32_t gguf_version(const gguf_file_t *f) {
    return f->version;
}
size_t gguf_alignment(const gguf_file_t *f) {
    return f->alignment;
}
size_t gguf_file_size(const gguf_file_t *f) {
    return f->size;
}
bool gguf_is_mapped(const gguf_file_t *f) {
    return f->map != NULL;
}
size_t gguf_data_offset(const gguf_file_t *f) {
    return f->data_offset;
}
size_t gguf_n_kv(const gguf_file_t *f) {
    return f->n_kv;
}

int64_t gguf_find_key(const gguf_file_t *f, const char *key) {
    size_t i = hash_find(f->kv_hash, f->kv_hash_cap, key, kv_name_of, f);
    return i == SIZE_MAX ? -1 : (int64_t)i;
}

const char *gguf_key(const gguf_file_t *f, size_t i) {
    return i < f->n_kv ? f->kv[i].key : NULL;
}

gguf_vtype_t gguf_kv_type(const gguf_file_t *f, size_t i) {
    return i < f->n_kv ? f->kv[i].type : GGUF_VT_COUNT;
}

gguf_vtype_t gguf_arr_type(const gguf_file_t *f, size_t i) {
    return i < f->n_kv && f->kv[i].type == GGUF_VT_ARRAY ? f->kv[i].arr_type : GGUF_VT_COUNT;
}

size_t gguf_arr_len(const gguf_file_t *f, size_t i) {
    return i < f->n_kv && f->kv[i].type == GGUF_VT_ARRAY ? (size_t)f->kv[i].arr_len : 0;
}

const void *gguf_arr_data(const gguf_file_t *f, size_t i) {
    if (i >= f->n_kv || f->kv[i].type != GGUF_VT_ARRAY || f->kv[i].arr_type == GGUF_VT_STRING)
        return NULL;
    return f->kv[i].val;
}

gguf_str_t gguf_arr_str(const gguf_file_t *f, size_t i, size_t j) {
    gguf_str_t s = {NULL, 0};
    if (i >= f->n_kv || f->kv[i].type != GGUF_VT_ARRAY || f->kv[i].arr_type != GGUF_VT_STRING ||
        j >= f->kv[i].arr_len)
        return s;
    uint64_t off = f->kv[i].str_offs[j], len;
    memcpy(&len, f->base + off, 8); /* validated by the parser */
    s.ptr = (const char *)f->base + off + 8;
    s.len = (size_t)len;
    return s;
}

gguf_str_t gguf_kv_str(const gguf_file_t *f, size_t i) {
    gguf_str_t s = {NULL, 0};
    if (i < f->n_kv && f->kv[i].type == GGUF_VT_STRING) {
        s.ptr = (const char *)f->kv[i].val;
        s.len = f->kv[i].val_len;
    }
    return s;
}

const void *gguf_kv_data(const gguf_file_t *f, size_t i) {
    if (i >= f->n_kv || gguf_vtype_size(f->kv[i].type) == 0) return NULL;
    return f->kv[i].val;
}

void gguf_kv_raw_(const gguf_file_t *f, size_t i, const void **raw, size_t *len) {
    *raw = f->kv[i].raw;
    *len = f->kv[i].raw_len;
}

/* ------------------------------------------------------- typed lookups */

static const struct gguf_kv *lookup(const gguf_file_t *f, const char *key, char *err,
                                    size_t errlen) {
    int64_t i = gguf_find_key(f, key);
    if (i < 0) {
        sl_err(err, errlen, "metadata key '%s' not found", key);
        return NULL;
    }
    return &f->kv[i];
}

static int get_int(const gguf_file_t *f, const char *key, bool *neg, uint64_t *mag, char *err,
                   size_t errlen) {
    const struct gguf_kv *kv = lookup(f, key, err, errlen);
    if (!kv) return -1;
    if (kv_int(kv, neg, mag) != 0)
        return sl_err(err, errlen, "metadata key '%s' has type %s, expected an integer", key,
                      gguf_vtype_name(kv->type));
    return 0;
}

int gguf_get_u32(const gguf_file_t *f, const char *key, uint32_t *out, char *err, size_t errlen) {
    bool neg;
    uint64_t mag;
    if (get_int(f, key, &neg, &mag, err, errlen)) return -1;
    if (neg || mag > UINT32_MAX)
        return sl_err(err, errlen, "metadata key '%s' = %s%" PRIu64 " does not fit in uint32", key,
                      neg ? "-" : "", mag);
    *out = (uint32_t)mag;
    return 0;
}

int gguf_get_i64(const gguf_file_t *f, const char *key, int64_t *out, char *err, size_t errlen) {
    bool neg;
    uint64_t mag;
    if (get_int(f, key, &neg, &mag, err, errlen)) return -1;
    if (!neg && mag > (uint64_t)INT64_MAX)
        return sl_err(err, errlen, "metadata key '%s' = %" PRIu64 " does not fit in int64", key,
                      mag);
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag; /* two's complement; INT64_MIN ok */
    return 0;
}

int gguf_get_f32(const gguf_file_t *f, const char *key, float *out, char *err, size_t errlen) {
    const struct gguf_kv *kv = lookup(f, key, err, errlen);
    if (!kv) return -1;
    if (kv->type == GGUF_VT_FLOAT32) {
        memcpy(out, kv->val, 4);
        return 0;
    }
    if (kv->type == GGUF_VT_FLOAT64) {
        double d;
        memcpy(&d, kv->val, 8);
        if (isfinite(d) && fabs(d) > FLT_MAX)
            return sl_err(err, errlen, "metadata key '%s' = %g does not fit in float32", key, d);
        *out = (float)d;
        return 0;
    }
    bool neg;
    uint64_t mag;
    if (kv_int(kv, &neg, &mag) != 0)
        return sl_err(err, errlen, "metadata key '%s' has type %s, expected a number", key,
                      gguf_vtype_name(kv->type));
    *out = neg ? -(float)mag : (float)mag;
    return 0;
}

int gguf_get_bool(const gguf_file_t *f, const char *key, bool *out, char *err, size_t errlen) {
    const struct gguf_kv *kv = lookup(f, key, err, errlen);
    if (!kv) return -1;
    if (kv->type != GGUF_VT_BOOL)
        return sl_err(err, errlen, "metadata key '%s' has type %s, expected bool", key,
                      gguf_vtype_name(kv->type));
    *out = kv->val[0] != 0;
    return 0;
}

int gguf_get_str(const gguf_file_t *f, const char *key, gguf_str_t *out, char *err, size_t errlen) {
    const struct gguf_kv *kv = lookup(f, key, err, errlen);
    if (!kv) return -1;
    if (kv->type != GGUF_VT_STRING)
        return sl_err(err, errlen, "metadata key '%s' has type %s, expected string", key,
                      gguf_vtype_name(kv->type));
    out->ptr = (const char *)kv->val;
    out->len = kv->val_len;
    return 0;
}

/* The *_or getters return `def` when the key is absent; a key that is present
 * with an unusable type is a broken file, so it is logged (and `def` used). */
uint32_t gguf_get_u32_or(const gguf_file_t *f, const char *key, uint32_t def) {
    char err[SL_ERR_MAX];
    uint32_t v;
    if (gguf_find_key(f, key) < 0) return def;
    if (gguf_get_u32(f, key, &v, err, sizeof err) == 0) return v;
    sl_warn("%s; using %" PRIu32, err, def);
    return def;
}

float gguf_get_f32_or(const gguf_file_t *f, const char *key, float def) {
    char err[SL_ERR_MAX];
    float v;
    if (gguf_find_key(f, key) < 0) return def;
    if (gguf_get_f32(f, key, &v, err, sizeof err) == 0) return v;
    sl_warn("%s; using %g", err, (double)def);
    return def;
}

bool gguf_get_bool_or(const gguf_file_t *f, const char *key, bool def) {
    char err[SL_ERR_MAX];
    bool v;
    if (gguf_find_key(f, key) < 0) return def;
    if (gguf_get_bool(f, key, &v, err, sizeof err) == 0) return v;
    sl_warn("%s; using %s", err, def ? "true" : "false");
    return def;
}

/* ------------------------------------------------------------- tensors */

size_t gguf_n_tensors(const gguf_file_t *f) {
    return f->n_tensors;
}

const gguf_tensor_t *gguf_tensor(const gguf_file_t *f, size_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor_t *gguf_find_tensor(const gguf_file_t *f, const char *name) {
    size_t i = hash_find(f->t_hash, f->t_hash_cap, name, t_name_of, f);
    return i == SIZE_MAX ? NULL : &f->tensors[i];
}
