/*
 * resp_store.h — stored responses kept in memory, for a server without the
 * platform (--no-auth, or no --data): a bounded LRU of (account, id) ->
 * JSON text. With the platform, stored responses live in its SQLite
 * database instead (srv_hooks_t.store_*, docs/platform.md).
 *
 * Bounds: at most max_entries responses and max_bytes of text; putting one
 * more evicts the least recently used (read or written) first. A single
 * text larger than max_bytes is refused. I/O thread only (no lock).
 */
#ifndef SILICA_SERVER_RESP_STORE_H
#define SILICA_SERVER_RESP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESP_STORE_ENTRIES 1024
#define RESP_STORE_BYTES ((size_t)64 << 20)

typedef struct resp_store resp_store_t;

resp_store_t *resp_store_new(size_t max_entries, size_t max_bytes);
void resp_store_free(resp_store_t *st);
/* Copies text (len bytes) under (account, id), replacing an entry with the
 * same key. 0, or -1 (too large, out of memory). */
int resp_store_put(resp_store_t *st, int64_t account, const char *id, const char *text, size_t len);
/* A heap copy of the text (NUL-terminated; the caller frees), or NULL when
 * (account, id) is not stored. Marks the entry as used. */
char *resp_store_get(resp_store_t *st, int64_t account, const char *id);
/* true when it was there. */
bool resp_store_delete(resp_store_t *st, int64_t account, const char *id);
size_t resp_store_count(const resp_store_t *st);

#endif
