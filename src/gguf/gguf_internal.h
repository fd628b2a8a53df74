/*
 * gguf_internal.h — shared between the reader (gguf.c) and the writer
 * (gguf_write.c); not part of the public API.
 */
#ifndef SILICA_GGUF_INTERNAL_H
#define SILICA_GGUF_INTERNAL_H

#include "gguf/gguf.h"

/* The value of metadata entry i exactly as stored after its u32 type field
 * (for arrays: u32 element type, u64 count, elements). i must be valid. */
void gguf_kv_raw_(const gguf_file_t *f, size_t i, const void **raw, size_t *len);

#endif
