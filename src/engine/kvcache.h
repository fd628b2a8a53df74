/*
 * kvcache.h — the KV block manager of one engine: which blocks of the
 * model's KV pool are free, which are used by how many sequences, and which
 * hold a cached prompt prefix (automatic prefix caching).
 *
 * A block is in exactly one of three states:
 *   used      refcount > 0 (in one or more sequences' block tables);
 *   cached    refcount 0, but it holds a full block of tokens under its
 *             chained hash and may be reused; kept in LRU order;
 *   free      refcount 0 and no hash.
 * Allocation takes a free block, else evicts the least recently used
 * cached block. A full block is identified by the hash of its own tokens
 * and of every token before it (hash of the previous block chained in), so
 * equal hashes mean equal prefixes; the block's tokens and parent hash are
 * kept and compared as well, so a hash collision never reuses wrong KV.
 *
 * Engine thread only (no locking); kvc_counts() is what other threads see
 * through the engine's stats.
 */
#ifndef SILICA_ENGINE_KVCACHE_H
#define SILICA_ENGINE_KVCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kvc kvc_t;

#define KVC_HASH_SEED 0x9e3779b97f4a7c15ull

/* n_blocks blocks of block_size tokens; NULL when out of memory. */
kvc_t *kvc_new(int n_blocks, int block_size);
void kvc_free(kvc_t *c);

/* A block with refcount 1 (free, or the LRU cached one evicted), or -1. */
int kvc_alloc(kvc_t *c);
void kvc_ref(kvc_t *c, int b);
/* Drops one reference; at 0 the block becomes cached (if it has a hash) or
 * free. */
void kvc_unref(kvc_t *c, int b);
int kvc_refcount(const kvc_t *c, int b);

/* Blocks kvc_alloc can still hand out (free + cached). */
int kvc_available(const kvc_t *c);

/* Chained hash of a full block: parent is the previous block's hash
 * (KVC_HASH_SEED for the first). */
uint64_t kvc_hash(uint64_t parent, const int32_t *tokens, int n);

/* The cached or used block holding exactly these block_size tokens after
 * the prefix whose hash is parent: returned with one more reference (and
 * out of the LRU list), or -1. */
int kvc_lookup(kvc_t *c, uint64_t parent, const int32_t *tokens);

/* Records that block b (in use, full) holds these tokens after `parent`,
 * so later lookups find it. A cached (unreferenced) block holding the same
 * prefix is freed in its favour; no-op when a block in use already holds
 * that prefix or b already has a hash. Returns the block's hash. */
uint64_t kvc_publish(kvc_t *c, int b, uint64_t parent, const int32_t *tokens);

/* Whether some block (used or cached) is published under hash h: a
 * quick check that a prefix ending there may still be found (a lookup
 * compares the tokens as well). */
bool kvc_contains(const kvc_t *c, uint64_t h);

typedef struct kvc_counts {
    int total, used, cached, free;
    uint64_t evictions;
} kvc_counts_t;
void kvc_counts(const kvc_t *c, kvc_counts_t *out);

#endif
