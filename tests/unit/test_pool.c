/* deps: base */
/*
 * test_pool.c — the persistent thread pool: every thread index runs exactly
 * once per job, jobs never overlap, and back-to-back runs (with and without
 * the workers falling asleep in between) all complete.
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "base/pool.h"
#include "test.h"

struct count_ctx {
    atomic_int hits[8];
    atomic_int bad_nth;
    atomic_int running; /* threads inside fn now */
    int want_nth;
    long sum; /* written by thread 0 only */
};

static void count_fn(void *vctx, int ith, int nth) {
    struct count_ctx *c = vctx;
    atomic_fetch_add(&c->running, 1);
    if (nth != c->want_nth || ith < 0 || ith >= nth) atomic_fetch_add(&c->bad_nth, 1);
    else atomic_fetch_add(&c->hits[ith], 1);
    if (ith == 0) c->sum += nth;
    atomic_fetch_sub(&c->running, 1);
}

static void test_each_index_once_per_run(void) {
    for (int n = 1; n <= 4; n++) {
        sl_pool_t *p = sl_pool_new(n);
        CHECK(p != NULL);
        if (!p) continue;
        CHECK(sl_pool_size(p) == n);
        struct count_ctx c;
        memset(&c, 0, sizeof c);
        c.want_nth = n;
        const int runs = 2000;
        int overlap = 0;
        for (int r = 0; r < runs; r++) {
            sl_pool_run(p, count_fn, &c);
            /* After run returns, no thread may still be inside fn. */
            if (atomic_load(&c.running) != 0) overlap++;
        }
        CHECK(overlap == 0);
        CHECK(atomic_load(&c.bad_nth) == 0);
        for (int i = 0; i < n; i++) CHECK_MSG(atomic_load(&c.hits[i]) == runs, "n=%d ith=%d hits=%d", n, i, atomic_load(&c.hits[i]));
        for (int i = n; i < 8; i++) CHECK(atomic_load(&c.hits[i]) == 0);
        CHECK(c.sum == (long)runs * n);
        sl_pool_free(p);
    }
}

static void test_runs_after_sleep(void) {
    /* Workers go to sleep after a short spin; a run after a pause must wake
     * them (a lost wake-up would hang here). */
    sl_pool_t *p = sl_pool_new(3);
    CHECK(p != NULL);
    if (!p) return;
    struct count_ctx c;
    memset(&c, 0, sizeof c);
    c.want_nth = 3;
    for (int r = 0; r < 5; r++) {
        struct timespec ts = {0, 2000000}; /* 2 ms, longer than the spin */
        nanosleep(&ts, NULL);
        sl_pool_run(p, count_fn, &c);
    }
    for (int i = 0; i < 3; i++) CHECK(atomic_load(&c.hits[i]) == 5);
    sl_pool_free(p);
}

struct slow_ctx {
    atomic_int done[4];
};
static void slow_fn(void *vctx, int ith, int nth) {
    (void)nth;
    struct slow_ctx *c = vctx;
    if (ith == 1) { /* a slow worker: the caller must wait (and sleep) for it */
        struct timespec ts = {0, 3000000};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&c->done[ith], 1);
}

static void test_caller_waits_for_slow_worker(void) {
    sl_pool_t *p = sl_pool_new(2);
    CHECK(p != NULL);
    if (!p) return;
    struct slow_ctx c;
    memset(&c, 0, sizeof c);
    for (int r = 0; r < 3; r++) {
        sl_pool_run(p, slow_fn, &c);
        CHECK(atomic_load(&c.done[1]) == r + 1);
    }
    sl_pool_free(p);
}

struct share_ctx {
    atomic_int next;
    atomic_int items[1000];
    atomic_int calls[4];
};
static void share_fn(void *vctx, int ith, int nth) {
    (void)nth;
    struct share_ctx *c = vctx;
    atomic_fetch_add(&c->calls[ith], 1);
    for (;;) {
        int i = atomic_fetch_add(&c->next, 1);
        if (i >= 1000) break;
        atomic_fetch_add(&c->items[i], 1);
    }
}

static void test_elastic_runs_share_work(void) {
    /* Elastic jobs: thread 0 always runs, others at most once per job, every
     * work item is done exactly once, and strict jobs in between still see
     * every thread exactly once. */
    for (int n = 1; n <= 4; n++) {
        sl_pool_t *p = sl_pool_new(n);
        CHECK(p != NULL);
        if (!p) continue;
        static struct share_ctx c;
        int bad_items = 0, bad_calls = 0;
        for (int r = 0; r < 300; r++) {
            memset(&c, 0, sizeof c);
            sl_pool_run_elastic(p, share_fn, &c);
            for (int i = 0; i < 1000; i++) bad_items += atomic_load(&c.items[i]) != 1;
            bad_calls += atomic_load(&c.calls[0]) != 1;
            for (int i = 1; i < 4; i++) bad_calls += atomic_load(&c.calls[i]) > (i < n ? 1 : 0);
            if (r % 3 == 0) {
                struct count_ctx cc;
                memset(&cc, 0, sizeof cc);
                cc.want_nth = n;
                sl_pool_run(p, count_fn, &cc);
                for (int i = 0; i < n; i++) bad_calls += atomic_load(&cc.hits[i]) != 1;
            }
        }
        CHECK_MSG(bad_items == 0, "n=%d: %d items not done exactly once", n, bad_items);
        CHECK_MSG(bad_calls == 0, "n=%d: %d bad call counts", n, bad_calls);
        sl_pool_free(p);
    }
}

static void test_null_pool(void) {
    struct count_ctx c;
    memset(&c, 0, sizeof c);
    c.want_nth = 1;
    sl_pool_run(NULL, count_fn, &c);
    CHECK(atomic_load(&c.hits[0]) == 1);
    CHECK(sl_pool_size(NULL) == 1);
    CHECK(sl_pool_new(0) == NULL);
    sl_pool_free(NULL);
}

int main(void) {
    RUN(test_each_index_once_per_run);
    RUN(test_runs_after_sleep);
    RUN(test_caller_waits_for_slow_worker);
    RUN(test_elastic_runs_share_work);
    RUN(test_null_pool);
    return test_summary();
}
