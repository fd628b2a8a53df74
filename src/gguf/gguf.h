/*
 * gguf.h — reading and writing GGUF v2/v3 files.
 *
 * The reader maps the file read-only (mmap) and validates every count,
 * length, offset and size against the file before anything else looks at it:
 * after gguf_open() succeeds, every accessor below is safe, and every tensor's
 * data range lies inside the mapping. A hostile file yields NULL and a message
 * naming what is wrong (which key / tensor, which offset), never a crash.
 *
 * Layout (little-endian): magic "GGUF", u32 version (2 or 3), u64 n_tensors,
 * u64 n_kv, then n_kv × (string key, u32 type, value), then n_tensors ×
 * (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset), then
 * padding to `general.alignment` (default 32), then the tensor data. Offsets
 * are relative to the start of the data section and must be aligned.
 * Strings are u64 length + bytes (not NUL-terminated on disk).
 */
#ifndef SILICA_GGUF_H
#define SILICA_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/quant.h" /* sl_type_t: the ggml tensor types */

typedef enum gguf_vtype {
    GGUF_VT_UINT8 = 0,
    GGUF_VT_INT8 = 1,
    GGUF_VT_UINT16 = 2,
    GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4,
    GGUF_VT_INT32 = 5,
    GGUF_VT_FLOAT32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8,
    GGUF_VT_ARRAY = 9,
    GGUF_VT_UINT64 = 10,
    GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12,
    GGUF_VT_COUNT
} gguf_vtype_t;

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

typedef struct gguf_file gguf_file_t; /* opaque */

/* A string view into the mapping (not NUL-terminated). */
typedef struct gguf_str {
    const char *ptr;
    size_t len;
} gguf_str_t;

typedef struct gguf_tensor {
    const char *name;       /* NUL-terminated copy owned by the gguf_file_t */
    sl_type_t type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the innermost (contiguous) dim; unused dims = 1 */
    uint64_t offset;        /* from the start of the data section */
    size_t nbytes;          /* validated: offset + nbytes <= data section size */
    const void *data;       /* points into the mapping */
} gguf_tensor_t;

/* Open and validate. Returns NULL with a message in err on any problem. */
gguf_file_t *gguf_open(const char *path, char *err, size_t errlen);
/* Same over a caller-owned buffer (must outlive the handle); used by the fuzzer. */
gguf_file_t *gguf_open_mem(const void *data, size_t size, char *err, size_t errlen);
void gguf_close(gguf_file_t *f);
/* True when the tensor data lies in a private read-only mapping of the file
 * (gguf_open), whose pages the caller may release with MADV_DONTNEED: they
 * read back from the file. False for gguf_open_mem. */
bool gguf_is_mapped(const gguf_file_t *f);

uint32_t gguf_version(const gguf_file_t *f);
size_t gguf_alignment(const gguf_file_t *f);
size_t gguf_file_size(const gguf_file_t *f);

/* ---- metadata ---- */
size_t gguf_n_kv(const gguf_file_t *f);
int64_t gguf_find_key(const gguf_file_t *f, const char *key); /* index or -1 */
const char *gguf_key(const gguf_file_t *f, size_t i);         /* NUL-terminated */
gguf_vtype_t gguf_kv_type(const gguf_file_t *f, size_t i);
/* For arrays: element type and count. */
gguf_vtype_t gguf_arr_type(const gguf_file_t *f, size_t i);
size_t gguf_arr_len(const gguf_file_t *f, size_t i);
/* Raw pointer to the elements of a non-string array (little-endian, packed). */
const void *gguf_arr_data(const gguf_file_t *f, size_t i);
/* j-th string of a string array. */
gguf_str_t gguf_arr_str(const gguf_file_t *f, size_t i, size_t j);
/* Scalar accessors by index; value of any integer type widened. */
gguf_str_t gguf_kv_str(const gguf_file_t *f, size_t i);

/* Convenience lookups by key. Return 0 on success; -1 if absent or of a type
 * that cannot be converted without loss (the message says which). Integer
 * getters accept any integer type whose value fits; float getters accept
 * float32/float64 and integers. */
int gguf_get_u32(const gguf_file_t *f, const char *key, uint32_t *out, char *err, size_t errlen);
int gguf_get_i64(const gguf_file_t *f, const char *key, int64_t *out, char *err, size_t errlen);
int gguf_get_f32(const gguf_file_t *f, const char *key, float *out, char *err, size_t errlen);
int gguf_get_bool(const gguf_file_t *f, const char *key, bool *out, char *err, size_t errlen);
int gguf_get_str(const gguf_file_t *f, const char *key, gguf_str_t *out, char *err, size_t errlen);
/* Like the above, but when the key is absent: store `def` and return 0. */
uint32_t gguf_get_u32_or(const gguf_file_t *f, const char *key, uint32_t def);
float gguf_get_f32_or(const gguf_file_t *f, const char *key, float def);
bool gguf_get_bool_or(const gguf_file_t *f, const char *key, bool def);

/* ---- tensors ---- */
size_t gguf_n_tensors(const gguf_file_t *f);
const gguf_tensor_t *gguf_tensor(const gguf_file_t *f, size_t i);
const gguf_tensor_t *gguf_find_tensor(const gguf_file_t *f, const char *name); /* NULL if absent */

/* ---- writer ----
 * Build in memory (metadata and tensor descriptors), then write the file in
 * one pass; tensor data is taken from caller pointers at write time or
 * copied at add time (see gguf_writer_add_tensor). */
typedef struct gguf_writer gguf_writer_t;

gguf_writer_t *gguf_writer_new(void);
void gguf_writer_free(gguf_writer_t *w);
/* Each setter replaces an earlier value of the same key. Return 0 / -1 (OOM). */
int gguf_writer_set_u32(gguf_writer_t *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer_t *w, const char *key, int32_t v);
int gguf_writer_set_u64(gguf_writer_t *w, const char *key, uint64_t v);
int gguf_writer_set_f32(gguf_writer_t *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer_t *w, const char *key, bool v);
int gguf_writer_set_str(gguf_writer_t *w, const char *key, const char *v);
/* Arrays: elements are copied. For strings, `strs` holds n NUL-terminated
 * pointers (lens NULL) or n pointers with explicit lengths. */
int gguf_writer_set_arr(gguf_writer_t *w, const char *key, gguf_vtype_t elem_type,
                        const void *data, size_t n);
int gguf_writer_set_arr_str(gguf_writer_t *w, const char *key, const char *const *strs,
                            const size_t *lens, size_t n);
/* Copies every key/value of an open file (e.g. for `silica quantize`). */
int gguf_writer_copy_kv(gguf_writer_t *w, const gguf_file_t *src);
/* Adds a tensor; `data` (nbytes as implied by type and ne) is copied. */
int gguf_writer_add_tensor(gguf_writer_t *w, const char *name, sl_type_t type, uint32_t n_dims,
                           const int64_t *ne, const void *data);
/* Writes version 3 with general.alignment (default 32). */
int gguf_writer_write(gguf_writer_t *w, const char *path, char *err, size_t errlen);

const char *gguf_vtype_name(gguf_vtype_t t);

/* ---- additions ---- */
/* File offset where the tensor data section starts (aligned). */
size_t gguf_data_offset(const gguf_file_t *f);
/* Bytes of one value of a fixed-size type; 0 for string, array and unknown. */
size_t gguf_vtype_size(gguf_vtype_t t);
/* Raw little-endian bytes of a fixed-size scalar value (u8..f64, bool: one
 * byte, validated 0 or 1); NULL for strings, arrays and bad indices. Like
 * gguf_arr_data, the pointer may be unaligned: read it with memcpy. */
const void *gguf_kv_data(const gguf_file_t *f, size_t i);
/* Any scalar of a fixed-size type, by its vtype (value points to
 * gguf_vtype_size(type) bytes; bool as one byte). Replaces like the setters. */
int gguf_writer_set_val(gguf_writer_t *w, const char *key, gguf_vtype_t type, const void *value);
/* Like gguf_writer_add_tensor, but `data` is NOT copied: it must stay valid
 * until gguf_writer_write returns (e.g. a tensor of an open gguf_file_t). */
int gguf_writer_add_tensor_ref(gguf_writer_t *w, const char *name, sl_type_t type,
                               uint32_t n_dims, const int64_t *ne, const void *data);
/* Message of the last failed writer call ("" if none). */
const char *gguf_writer_error(const gguf_writer_t *w);

#endif
