/*
 * pool.h — a persistent thread pool for data-parallel kernels.
 *
 * sl_pool_run(pool, fn, ctx) calls fn(ctx, ith, nth) on nth threads (the
 * caller is thread 0) and returns when all have finished. Workers spin
 * briefly then sleep between jobs, so back-to-back runs (one per matmul) are
 * cheap. One caller at a time per pool.
 */
#ifndef SILICA_POOL_H
#define SILICA_POOL_H

typedef struct sl_pool sl_pool_t;
typedef void (*sl_pool_fn)(void *ctx, int ith, int nth);

sl_pool_t *sl_pool_new(int n_threads); /* n_threads >= 1; NULL on failure */
void sl_pool_free(sl_pool_t *p);
int sl_pool_size(const sl_pool_t *p);  /* 1 for NULL */
void sl_pool_run(sl_pool_t *p, sl_pool_fn fn, void *ctx); /* p may be NULL: runs fn(ctx,0,1) */
/* Like sl_pool_run, but a worker that has not started by the time thread 0
 * returns from fn is skipped for this job: fn runs on thread 0 and on at most
 * nth-1 others, each ith at most once. For jobs that hand out work through a
 * shared counter (every ith loops "claim a chunk until none left"). */
void sl_pool_run_elastic(sl_pool_t *p, sl_pool_fn fn, void *ctx);

#endif
