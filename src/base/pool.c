/*
 * pool.c — the persistent thread pool behind every data-parallel kernel.
 *
 * A decode step runs ~170 matmuls of a few hundred microseconds each, so a
 * job must start and finish in microseconds: workers wait for the next job
 * by spinning on a generation counter for a short while (SPIN_NS), and only
 * then sleep on a condition variable. The caller likewise spins on the
 * count of unfinished workers before sleeping.
 *
 * Sleeping without lost wake-ups (both directions use the same pattern):
 * the sleeper, holding the mutex, announces itself (n_sleeping / caller_
 * sleeping, seq_cst) and re-checks the condition before waiting; the waker
 * changes the condition (seq_cst) and then reads the announcement. With
 * sequentially consistent atomics one of the two must see the other; a waker
 * that sees a sleeper takes the mutex (so the sleeper is inside its wait)
 * and broadcasts.
 */
#include "base/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "base/base.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* How long an idle thread spins before it sleeps. */
#define SPIN_NS 200000u

struct worker_arg {
    struct sl_pool *pool;
    int ith;
};

struct sl_pool {
    int n;
    pthread_t *threads;
    struct worker_arg *args;
    /* The job: written by the caller before gen is bumped (release), read by
     * workers after they see the new gen (acquire). */
    sl_pool_fn fn;
    void *ctx;
    atomic_uint gen;       /* bumped once per job */
    atomic_int pending;    /* workers that have not finished the current job */
    atomic_int n_sleeping; /* workers inside (or entering) cond_wait */
    atomic_int caller_sleeping;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv_job;
    pthread_cond_t cv_done;
};

static void *worker_main(void *varg) {
    struct worker_arg *arg = varg;
    struct sl_pool *p = arg->pool;
    unsigned seen = 0;
    for (;;) {
        /* spin, then sleep, until a new generation (or stop) appears */
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g == seen && !atomic_load(&p->stop)) {
            uint64_t t0 = sl_now_ns();
            for (unsigned i = 1;; i++) {
                cpu_relax();
                g = atomic_load_explicit(&p->gen, memory_order_acquire);
                if (g != seen || atomic_load(&p->stop)) break;
                if ((i & 255) == 0 && sl_now_ns() - t0 > SPIN_NS) {
                    pthread_mutex_lock(&p->mu);
                    atomic_fetch_add(&p->n_sleeping, 1);
                    while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop))
                        pthread_cond_wait(&p->cv_job, &p->mu);
                    atomic_fetch_sub(&p->n_sleeping, 1);
                    pthread_mutex_unlock(&p->mu);
                    break;
                }
            }
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = g;
        p->fn(p->ctx, arg->ith, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && /* seq_cst: pairs with caller_sleeping */
            atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_broadcast(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

sl_pool_t *sl_pool_new(int n_threads) {
    if (n_threads < 1 || n_threads > 1024) return NULL;
    struct sl_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->caller_sleeping, 0);
    atomic_init(&p->stop, false);
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    pthread_cond_init(&p->cv_job, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads, sizeof *p->threads);
        p->args = calloc((size_t)n_threads, sizeof *p->args);
        if (!p->threads || !p->args) {
            p->n = 1;
            sl_pool_free(p);
            return NULL;
        }
        for (int i = 1; i < n_threads; i++) {
            p->args[i].pool = p;
            p->args[i].ith = i;
            if (pthread_create(&p->threads[i], NULL, worker_main, &p->args[i]) != 0) {
                p->n = i; /* join only the ones that started */
                sl_pool_free(p);
                return NULL;
            }
        }
    }
    return p;
}

void sl_pool_free(sl_pool_t *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cv_job);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv_job);
    pthread_cond_destroy(&p->cv_done);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p->args);
    free(p);
}

int sl_pool_size(const sl_pool_t *p) {
    return p ? p->n : 1;
}

void sl_pool_run(sl_pool_t *p, sl_pool_fn fn, void *ctx) {
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes fn/ctx, pairs with n_sleeping */
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv_job);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) return;
    uint64_t t0 = sl_now_ns();
    for (unsigned i = 1;; i++) {
        cpu_relax();
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) return;
        if ((i & 255) == 0 && sl_now_ns() - t0 > SPIN_NS) break;
    }
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->caller_sleeping, 1);
    while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->cv_done, &p->mu);
    atomic_store(&p->caller_sleeping, 0);
    pthread_mutex_unlock(&p->mu);
}
