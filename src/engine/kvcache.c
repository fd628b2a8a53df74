/*
 * kvcache.c — KV block manager and prefix cache (see kvcache.h).
 *
 * Data: per block its refcount, hash state, tokens (for verification), a
 * link in a hash bucket chain, and links in the LRU list (cached blocks
 * only, least recently used at the head). Free blocks are a stack, so the
 * most recently freed block (whose pages are resident) is reused first.
 * Invariants: free ⇔ refcount 0 && !hashed; in LRU ⇔ refcount 0 && hashed;
 * in a bucket chain ⇔ hashed.
 */
#include "engine/kvcache.h"

#include <stdlib.h>
#include <string.h>

typedef struct kvc_block {
    int ref;
    bool hashed;
    uint64_t hash, parent;
    int hnext;            /* next block in the same bucket, -1 */
    int lprev, lnext;     /* LRU links, -1 */
} kvc_block_t;

struct kvc {
    int n, bs;
    kvc_block_t *b;
    int32_t *toks;        /* n × bs: tokens of hashed blocks */
    int *freestk, n_free;
    int *bucket;          /* n_bucket heads, -1 */
    uint64_t mask;
    int lru_head, lru_tail, n_cached;
    uint64_t evictions;
};

kvc_t *kvc_new(int n_blocks, int block_size) {
    if (n_blocks <= 0 || block_size <= 0) return NULL;
    kvc_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    size_t nb = 1;
    while (nb < (size_t)n_blocks * 2) nb <<= 1;
    c->n = n_blocks;
    c->bs = block_size;
    c->b = calloc((size_t)n_blocks, sizeof *c->b);
    c->toks = calloc((size_t)n_blocks * (size_t)block_size, sizeof *c->toks);
    c->freestk = malloc((size_t)n_blocks * sizeof *c->freestk);
    c->bucket = malloc(nb * sizeof *c->bucket);
    if (!c->b || !c->toks || !c->freestk || !c->bucket) {
        kvc_free(c);
        return NULL;
    }
    c->mask = nb - 1;
    for (size_t i = 0; i < nb; i++) c->bucket[i] = -1;
    /* block 0 on top of the stack: low blocks first */
    for (int i = 0; i < n_blocks; i++) {
        c->freestk[i] = n_blocks - 1 - i;
        c->b[i].hnext = c->b[i].lprev = c->b[i].lnext = -1;
    }
    c->n_free = n_blocks;
    c->lru_head = c->lru_tail = -1;
    return c;
}

void kvc_free(kvc_t *c) {
    if (!c) return;
    free(c->b);
    free(c->toks);
    free(c->freestk);
    free(c->bucket);
    free(c);
}

uint64_t kvc_hash(uint64_t parent, const int32_t *tokens, int n) {
    /* FNV-1a over the parent hash and the token bytes, then a 64-bit
     * finalizer (splitmix) so nearby prefixes spread over the buckets */
    uint64_t h = 0xcbf29ce484222325ull ^ parent;
    for (int i = 0; i < n; i++) {
        uint32_t t = (uint32_t)tokens[i];
        for (int k = 0; k < 4; k++) {
            h ^= (t >> (8 * k)) & 0xff;
            h *= 0x100000001b3ull;
        }
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static void lru_remove(kvc_t *c, int i) {
    kvc_block_t *b = &c->b[i];
    if (b->lprev >= 0) c->b[b->lprev].lnext = b->lnext;
    else c->lru_head = b->lnext;
    if (b->lnext >= 0) c->b[b->lnext].lprev = b->lprev;
    else c->lru_tail = b->lprev;
    b->lprev = b->lnext = -1;
    c->n_cached--;
}

static void lru_push(kvc_t *c, int i) {
    kvc_block_t *b = &c->b[i];
    b->lnext = -1;
    b->lprev = c->lru_tail;
    if (c->lru_tail >= 0) c->b[c->lru_tail].lnext = i;
    else c->lru_head = i;
    c->lru_tail = i;
    c->n_cached++;
}

static void unhash(kvc_t *c, int i) {
    kvc_block_t *b = &c->b[i];
    int *pp = &c->bucket[b->hash & c->mask];
    while (*pp != i) pp = &c->b[*pp].hnext;
    *pp = b->hnext;
    b->hnext = -1;
    b->hashed = false;
}

int kvc_alloc(kvc_t *c) {
    int i;
    if (c->n_free > 0) {
        i = c->freestk[--c->n_free];
    } else if (c->lru_head >= 0) {
        i = c->lru_head;
        lru_remove(c, i);
        unhash(c, i);
        c->evictions++;
    } else {
        return -1;
    }
    c->b[i].ref = 1;
    return i;
}

void kvc_ref(kvc_t *c, int b) {
    if (c->b[b].ref == 0 && c->b[b].hashed) lru_remove(c, b);
    c->b[b].ref++;
}

void kvc_unref(kvc_t *c, int b) {
    kvc_block_t *k = &c->b[b];
    if (k->ref <= 0) return;
    if (--k->ref > 0) return;
    if (k->hashed) lru_push(c, b);
    else c->freestk[c->n_free++] = b;
}

int kvc_refcount(const kvc_t *c, int b) { return c->b[b].ref; }

int kvc_available(const kvc_t *c) { return c->n_free + c->n_cached; }

static int find(const kvc_t *c, uint64_t h, uint64_t parent, const int32_t *tokens) {
    for (int i = c->bucket[h & c->mask]; i >= 0; i = c->b[i].hnext) {
        const kvc_block_t *b = &c->b[i];
        if (b->hash == h && b->parent == parent &&
            !memcmp(c->toks + (size_t)i * (size_t)c->bs, tokens, (size_t)c->bs * sizeof *tokens))
            return i;
    }
    return -1;
}

int kvc_lookup(kvc_t *c, uint64_t parent, const int32_t *tokens) {
    const int i = find(c, kvc_hash(parent, tokens, c->bs), parent, tokens);
    if (i >= 0) kvc_ref(c, i);
    return i;
}

uint64_t kvc_publish(kvc_t *c, int b, uint64_t parent, const int32_t *tokens) {
    const uint64_t h = kvc_hash(parent, tokens, c->bs);
    kvc_block_t *k = &c->b[b];
    if (k->hashed) return h;
    const int old = find(c, h, parent, tokens);
    if (old >= 0) {
        if (c->b[old].ref > 0) return h; /* in use too: both stay, the first keeps the hash */
        /* an unreferenced copy: b, in use, takes its place (else b's copy
         * would be freed unhashed at release while the stale one ages out
         * of the LRU, and the prefix with it) */
        lru_remove(c, old);
        unhash(c, old);
        c->freestk[c->n_free++] = old;
    }
    k->hashed = true;
    k->hash = h;
    k->parent = parent;
    memcpy(c->toks + (size_t)b * (size_t)c->bs, tokens, (size_t)c->bs * sizeof *tokens);
    int *head = &c->bucket[h & c->mask];
    k->hnext = *head;
    *head = b;
    return h;
}

bool kvc_contains(const kvc_t *c, uint64_t h) {
    for (int i = c->bucket[h & c->mask]; i >= 0; i = c->b[i].hnext)
        if (c->b[i].hash == h) return true;
    return false;
}

void kvc_counts(const kvc_t *c, kvc_counts_t *out) {
    out->total = c->n;
    out->free = c->n_free;
    out->cached = c->n_cached;
    out->used = c->n - c->n_free - c->n_cached;
    out->evictions = c->evictions;
}
