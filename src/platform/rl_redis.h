/*
 * rl_redis.h — rate-limit token buckets kept in Redis, shared by every node
 * that points at the same server (`silica serve --redis URL`).
 *
 * A bucket is one Redis hash {l: level, c: cap, t: last refill in unix ms
 * by Redis's clock} under a key the caller names (the platform uses
 * "silica:rl:{a<account>:<model>}:rpm", one key per limit). Every check and
 * take, and every give-back of tokens reserved but not used, is one Lua
 * script run atomically on the server (EVALSHA; EVAL when the server has
 * forgotten the script), reading the time with Redis's own TIME, so node
 * clocks do not matter and no two nodes interleave inside a bucket update.
 * Each write sets a TTL of (time to refill to full) + 1 s, so an idle bucket
 * expires exactly when it would be full anyway: a missing key is a full
 * bucket.
 *
 * Outage: calls never wait longer than the command timeout. A failed call
 * (connection lost, timeout) marks the connection down and returns -1; the
 * caller limits by itself (the platform's node-local buckets). A thread
 * reconnects in the background with exponential backoff, so no request
 * ever waits for a connect. A reply of the wrong shape (every reply is
 * checked for type and size, and hiredis may build none larger than 16
 * elements or 64 KiB) also returns -1 and counts as an error.
 *
 * Threads: any thread may call any function; calls on one handle are
 * serialised by its mutex. Not for use outside src/platform/ (and its tests).
 */
#ifndef SILICA_RL_REDIS_H
#define SILICA_RL_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rl_redis rl_redis_t;

#define RL_REDIS_MAX_BUCKETS 8

/* rl_redis_take results besides -1 (Redis unavailable or a bad reply). */
#define RL_REDIS_TAKEN 0
#define RL_REDIS_DENIED 1

typedef struct rl_redis_opts {
    int connect_timeout_ms; /* 0 = 1000 (only the background thread connects) */
    int command_timeout_ms; /* 0 = 250: the longest a request waits on Redis */
    int backoff_min_ms;     /* 0 = 100: first wait before a reconnect */
    int backoff_max_ms;     /* 0 = 2000: the wait doubles up to this */
} rl_redis_opts_t;

/* One bucket of a take / give: cap > 0 units per window_ms; amount units
 * taken (the check asks for min(amount, cap): a request larger than the
 * whole bucket may run when it is full) or given back (may be negative:
 * used beyond the estimate, taken now). */
typedef struct rl_redis_bucket {
    const char *key; /* Redis key, any bytes but NUL */
    int64_t cap;
    int64_t window_ms;
    double amount;
} rl_redis_bucket_t;

typedef struct rl_redis_stats {
    bool up;             /* connected now */
    uint64_t outages;    /* times the connection was lost (or never made at start) */
    uint64_t reconnects; /* times the background thread brought it back */
    uint64_t errors;     /* replies of the wrong type or size, script errors */
    uint64_t calls;      /* scripts run to completion */
} rl_redis_stats_t;

/* Parses `url` (redis://[[user]:password@]host[:port][/db][?opts] or
 * unix:///path/to.sock[?opts]; opts: db=N, password=P, user=U,
 * timeout_ms=N, connect_timeout_ms=N), then connects, authenticates,
 * selects the database and loads the script (its SHA-1 checked against
 * the one computed here). A bad URL, or a server that answers but refuses
 * (wrong password, no such db, not a Redis with scripting), is an error:
 * NULL and a message. A server that cannot be reached is not: the handle
 * starts down (logged) and the background thread keeps trying. `o` may be
 * NULL. Free with rl_redis_close. */
rl_redis_t *rl_redis_open(const char *url, const rl_redis_opts_t *o, char *err, size_t errlen);
void rl_redis_close(rl_redis_t *r);

/* Checks the n buckets (1..RL_REDIS_MAX_BUCKETS) and, when every one holds
 * min(amount, cap), takes amount from each, atomically. RL_REDIS_TAKEN;
 * RL_REDIS_DENIED with *denied (index of the bucket with the longest wait)
 * and *wait_ms (how long until it holds enough); -1 with a message when
 * Redis is down or answered something unexpected (nothing is known to be
 * taken; the caller limits locally). */
int rl_redis_take(rl_redis_t *r, const rl_redis_bucket_t *b, int n, int *denied, int64_t *wait_ms,
                  char *err, size_t errlen);
/* Gives amount back to each bucket (clipped at its cap), atomically. 0 or
 * -1 (down or a bad reply: the tokens stay taken and refill with time). */
int rl_redis_give(rl_redis_t *r, const rl_redis_bucket_t *b, int n, char *err, size_t errlen);

void rl_redis_stats(rl_redis_t *r, rl_redis_stats_t *out);
/* The endpoint for messages: "host:port/db" or the socket path. */
const char *rl_redis_where(const rl_redis_t *r);

#endif
