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
 *
 * sl_pool_run_elastic() is for jobs that share work through their own atomic
 * counter: a worker that has not joined by the time thread 0 has finished
 * (say, because another process holds its core) is skipped instead of
 * waited for, so a busy machine slows a matmul down to one thread's speed
 * but never to a scheduler time slice.
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

#define EST_CLOSED (1ull << 31)
#define EST_COUNT 0x7fffffffull

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
    atomic_uint gen;       /* changes once per job; low bit set for elastic jobs */
    /* Elastic jobs (sl_pool_run_elastic): gen << 32 | CLOSED | joined count.
     * A worker joins only while the job is open; thread 0 closes it when its
     * own share is done and waits for the joined ones alone. */
    _Atomic uint64_t est;
    atomic_int pending;    /* workers that have not finished the current job */
    atomic_int n_sleeping; /* workers inside (or entering) cond_wait */
    atomic_int caller_sleeping;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv_job;
    pthread_cond_t cv_done;
};

static void wake_caller(struct sl_pool *p) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv_done);
    pthread_mutex_unlock(&p->mu);
}

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
        if (g & 1) { /* elastic: the kind is read from gen itself, never from a field
                        * the caller may already be rewriting for the next job */
            uint64_t st = atomic_load(&p->est);
            bool joined = false;
            while ((unsigned)(st >> 32) == g && !(st & EST_CLOSED)) {
                if (atomic_compare_exchange_weak(&p->est, &st, st + 1)) {
                    joined = true;
                    break;
                }
            }
            if (!joined) continue; /* closed (skip) or a newer job appeared */
            p->fn(p->ctx, arg->ith, p->n);
            if ((atomic_fetch_sub(&p->est, 1) & EST_COUNT) == 1 && atomic_load(&p->caller_sleeping))
                wake_caller(p);
            continue;
        }
        p->fn(p->ctx, arg->ith, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && /* seq_cst: pairs with caller_sleeping */
            atomic_load(&p->caller_sleeping))
            wake_caller(p);
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
    atomic_init(&p->est, 0);
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

/* Waits (spin, then sleep) until *count's masked value reaches zero. */
static void wait_zero(struct sl_pool *p, bool elastic) {
#define DONE() (elastic ? (atomic_load(&p->est) & EST_COUNT) == 0 : atomic_load(&p->pending) == 0)
    if (DONE()) return;
    uint64_t t0 = sl_now_ns();
    for (unsigned i = 1;; i++) {
        cpu_relax();
        if (DONE()) return;
        if ((i & 255) == 0 && sl_now_ns() - t0 > SPIN_NS) break;
    }
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->caller_sleeping, 1);
    while (!DONE()) pthread_cond_wait(&p->cv_done, &p->mu);
    atomic_store(&p->caller_sleeping, 0);
    pthread_mutex_unlock(&p->mu);
#undef DONE
}

static void run_job(struct sl_pool *p, sl_pool_fn fn, void *ctx, bool elastic) {
    p->fn = fn;
    p->ctx = ctx;
    unsigned g = (((atomic_load(&p->gen) >> 1) + 1) << 1) | (elastic ? 1u : 0u);
    if (elastic)
        atomic_store(&p->est, (uint64_t)g << 32);
    else
        atomic_store(&p->pending, p->n - 1);
    atomic_store(&p->gen, g); /* seq_cst: publishes the job, pairs with n_sleeping */
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv_job);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    if (elastic) atomic_fetch_or(&p->est, EST_CLOSED);
    wait_zero(p, elastic);
}

void sl_pool_run(sl_pool_t *p, sl_pool_fn fn, void *ctx) {
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    run_job(p, fn, ctx, false);
}

void sl_pool_run_elastic(sl_pool_t *p, sl_pool_fn fn, void *ctx) {
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    run_job(p, fn, ctx, true);
}
