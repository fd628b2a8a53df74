/* deps: engine base */
/*
 * test_kvcache.c — the KV block manager and prefix cache: reference
 * counting, the free/cached/used accounting, chained-hash lookup (a block
 * is found only after the same prefix), LRU eviction order when the pool
 * is exhausted, and that a lookup never returns a block whose tokens or
 * parent differ.
 */
#include <string.h>

#include "engine/kvcache.h"
#include "test.h"

enum { BS = 4 };

static void counts(kvc_t *c, int used, int cached, int freeb) {
    kvc_counts_t k;
    kvc_counts(c, &k);
    CHECK_MSG(k.used == used && k.cached == cached && k.free == freeb, "used %d cached %d free %d, want %d %d %d",
              k.used, k.cached, k.free, used, cached, freeb);
    CHECK(k.total == k.used + k.cached + k.free);
}

static void test_refcounts(void) {
    kvc_t *c = kvc_new(3, BS);
    int a = kvc_alloc(c), b = kvc_alloc(c), d = kvc_alloc(c);
    CHECK(a >= 0 && b >= 0 && d >= 0 && a != b && b != d && a != d);
    CHECK(kvc_alloc(c) == -1); /* exhausted, nothing cached */
    counts(c, 3, 0, 0);
    kvc_ref(c, a);
    CHECK(kvc_refcount(c, a) == 2);
    kvc_unref(c, a);
    counts(c, 3, 0, 0);
    kvc_unref(c, a);
    counts(c, 2, 0, 1);
    CHECK(kvc_available(c) == 1);
    CHECK(kvc_alloc(c) == a); /* the freed block comes back */
    kvc_unref(c, a);
    kvc_unref(c, b);
    kvc_unref(c, d);
    kvc_unref(c, d); /* extra unref is ignored */
    counts(c, 0, 0, 3);
    kvc_free(c);
}

static void test_prefix_chain(void) {
    kvc_t *c = kvc_new(8, BS);
    int32_t t[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    int b0 = kvc_alloc(c), b1 = kvc_alloc(c);
    uint64_t h0 = kvc_publish(c, b0, KVC_HASH_SEED, t);
    uint64_t h1 = kvc_publish(c, b1, h0, t + 4);
    CHECK(h0 == kvc_hash(KVC_HASH_SEED, t, BS) && h1 == kvc_hash(h0, t + 4, BS));
    CHECK(h0 != h1);
    /* used blocks are found too (a running sequence's prompt) */
    CHECK(kvc_lookup(c, KVC_HASH_SEED, t) == b0);
    CHECK(kvc_refcount(c, b0) == 2);
    kvc_unref(c, b0);
    kvc_unref(c, b0);
    kvc_unref(c, b1);
    counts(c, 0, 2, 6);
    /* the second block is only found after the first */
    CHECK(kvc_lookup(c, KVC_HASH_SEED, t + 4) == -1);
    int32_t other[4] = {1, 2, 3, 5};
    CHECK(kvc_lookup(c, KVC_HASH_SEED, other) == -1);
    CHECK(kvc_lookup(c, h0 ^ 1, t + 4) == -1);
    int x = kvc_lookup(c, KVC_HASH_SEED, t), y = kvc_lookup(c, h0, t + 4);
    CHECK(x == b0 && y == b1);
    counts(c, 2, 0, 6);
    /* publishing the same prefix in another block keeps the first */
    int z = kvc_alloc(c);
    kvc_publish(c, z, KVC_HASH_SEED, t);
    kvc_unref(c, z);
    counts(c, 2, 0, 6); /* z had no hash: free again */
    kvc_unref(c, x);
    kvc_unref(c, y);
    counts(c, 0, 2, 6);
    /* ... but an unreferenced copy gives way to the block in use: the old
     * one is freed, the new one found (and cached when released) */
    int w = kvc_alloc(c);
    CHECK(kvc_publish(c, w, KVC_HASH_SEED, t) == h0);
    counts(c, 1, 1, 6); /* b1 cached; b0 freed */
    CHECK(kvc_lookup(c, KVC_HASH_SEED, t) == w);
    kvc_unref(c, w);
    kvc_unref(c, w);
    counts(c, 0, 2, 6);
    CHECK(kvc_lookup(c, h0, t + 4) == b1); /* the chain goes on through w */
    kvc_unref(c, b1);
    kvc_free(c);
}

static void test_lru_eviction(void) {
    kvc_t *c = kvc_new(3, BS);
    int32_t t[3][4] = {{1, 1, 1, 1}, {2, 2, 2, 2}, {3, 3, 3, 3}};
    int b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = kvc_alloc(c);
        kvc_publish(c, b[i], KVC_HASH_SEED, t[i]);
    }
    /* released in order 1, 0, 2: LRU is 1 */
    kvc_unref(c, b[1]);
    kvc_unref(c, b[0]);
    kvc_unref(c, b[2]);
    counts(c, 0, 3, 0);
    CHECK(kvc_available(c) == 3);
    /* touching 1 makes 0 the least recently used */
    int r = kvc_lookup(c, KVC_HASH_SEED, t[1]);
    CHECK(r == b[1]);
    kvc_unref(c, r);
    const uint64_t h0 = kvc_hash(KVC_HASH_SEED, t[0], BS), h1 = kvc_hash(KVC_HASH_SEED, t[1], BS);
    CHECK(kvc_contains(c, h0) && kvc_contains(c, h1));
    CHECK(!kvc_contains(c, kvc_hash(h0, t[1], BS))); /* never published */
    int n = kvc_alloc(c);
    CHECK_MSG(n == b[0], "evicted %d, want %d", n, b[0]);
    CHECK(kvc_lookup(c, KVC_HASH_SEED, t[0]) == -1); /* gone from the cache */
    CHECK(!kvc_contains(c, h0) && kvc_contains(c, h1));
    kvc_counts_t k;
    kvc_counts(c, &k);
    CHECK(k.evictions == 1);
    int n2 = kvc_alloc(c);
    CHECK(n2 == b[2]);
    int n3 = kvc_alloc(c);
    CHECK(n3 == b[1]);
    CHECK(kvc_alloc(c) == -1);
    counts(c, 3, 0, 0);
    kvc_free(c);
}

int main(void) {
    RUN(test_refcounts);
    RUN(test_prefix_chain);
    RUN(test_lru_eviction);
    return test_summary();
}
