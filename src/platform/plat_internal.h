/*
 * plat_internal.h — what the platform's .c files share: the handle, the
 * ids of its SQL statements (their text is in sql.c, the storage interface
 * in db.h) and the in-memory state (balance reservations and rate-limit
 * buckets). Not for use outside src/platform/.
 */
#ifndef SILICA_PLAT_INTERNAL_H
#define SILICA_PLAT_INTERNAL_H

#include <pthread.h>

#include "platform/db.h"
#include "platform/rl_redis.h"
#include "platform/platform.h"

/* One token bucket: `level` units available of `cap`, refilled at cap per
 * window. level may go below 0 (a request used more tokens than it said). */
typedef struct plat_bucket {
    double level;
    int64_t cap;      /* 0 = unlimited */
    int64_t window_ms;
} plat_bucket_t;

enum { PLAT_LIM_RPM, PLAT_LIM_TPM, PLAT_LIM_RPD, PLAT_LIM_TPD, PLAT_LIM_N };

/* In-memory state per (account, model); model "" holds the account's
 * balance reservation. Chained hash table owned by plat_t, guarded by mu.
 * With shared state (plat.shared) the database holds both; a slot's
 * buckets are then a scratch copy of the locked rate_buckets row. With
 * Redis the buckets are there, and a slot's are the node-local fallback
 * used while Redis is away. */
typedef struct plat_slot {
    struct plat_slot *next;
    int64_t account_id;
    char *model;
    int64_t reserved;                /* model "": micro-yuan held by running requests */
    plat_bucket_t b[PLAT_LIM_N];     /* model != "": rate-limit buckets */
    int64_t last_ms;                 /* last refill time of b */
} plat_slot_t;

/* The platform's statements (sql.c holds their text). */
enum {
    ST_KEY_LOOKUP, ST_PRICE_GET, ST_LIMITS_GET,
    ST_ACCT_BAL, ST_ACCT_SPEND, ST_LEDGER_INSERT, ST_ITEM_DONE,
    ST_CREDIT_INSERT, ST_ACCT_ADD, ST_ACCT_EXISTS, ST_ACCT_LOCK, ST_ACCT_INSERT, ST_ACCT_GET,
    ST_ACCT_LIST, ST_ACCT_COUNT, ST_ACCTS_LOCK, ST_ACCT_SET_STATUS,
    ST_KEY_INSERT, ST_KEY_LIVE_COUNT, ST_KEY_REVOKE, ST_KEY_LIST,
    ST_PRICE_SET, ST_PRICE_LIST, ST_LIMITS_SET, ST_VERIFY,
    ST_RESP_EXPIRE, ST_RESP_TRIM, ST_RESP_PUT, ST_RESP_GET, ST_RESP_DELETE,
    ST_RESV_SWEEP_ACCT, ST_RESV_SUM, ST_RESV_INSERT, ST_RESV_DELETE, ST_RESV_RENEW, ST_RESV_SWEEP,
    ST_BUCKET_ENSURE, ST_BUCKET_GET, ST_BUCKET_PUT,
    ST_FILE_INSERT, ST_FILE_GET, ST_FILE_BODY, ST_FILE_DELETE, ST_FILE_USED, ST_FILE_LIST,
    ST_BATCH_INSERT, ST_BATCH_GET, ST_BATCH_LIST, ST_BATCH_ACTIVE, ST_BATCH_START, ST_BATCH_FAIL,
    ST_BATCH_CANCEL, ST_BATCH_FINISH,
    ST_ITEM_INSERT, ST_ITEM_COUNTS, ST_ITEM_PENDING, ST_ITEM_RESULTS,
    ST_BATCH_LOCK, ST_BATCH_SHARE, ST_ITEM_CLAIM, ST_ITEM_LEASE, ST_ITEM_RENEW, ST_ITEM_UNLEASE,
    ST_ITEM_CLAIMED, ST_FILE_REF,
    ST_FILE_PRUNE_PICK, ST_FILE_PRUNE, ST_BATCH_RETIRE, ST_BATCH_DELETED, ST_ITEM_PURGE,
    ST_BATCH_PURGE,
    ST_N
};
extern const db_sql_t plat_sql[ST_N];
extern const char *const plat_migrations[];
extern const int plat_nmigrations;

struct plat {
    db_t *db;
    pthread_mutex_t mu;
    plat_config_t cfg;
    /* Reservations and rate-limit buckets in the database (PostgreSQL:
     * shared by every node) rather than in slots (which then only hold a
     * copy of a bucket row while it is locked). `running` lists this node's
     * requests that hold a reservation, and the lease thread renews their
     * leases every lease_ms / 4 and sweeps expired ones (a dead node's). */
    bool shared;
    char node[96];            /* this process: "host/pid/random" */
    struct plat_req *running; /* doubly linked through next/prev; under mu */
    pthread_t lease_thread;
    bool lease_running, lease_stop; /* lease_stop under mu */
    pthread_cond_t lease_cv;
    /* batch requests started and not done (batch.c); under mu. Shared:
     * each holds a lease on its batch_items row, renewed by lease_tick */
    struct plat_batch_run *batch_running;
    int64_t prune_next_ms; /* when the runner next prunes expired files and batches; under mu */
    plat_slot_t **slots;
    size_t nslots; /* buckets in the table, a power of two */
    size_t nused;
    /* cfg.redis_url: the shared buckets (then the rate_buckets rows are
     * not used, and slots hold the node-local fallback buckets). */
    rl_redis_t *redis;
    uint64_t rl_local; /* admissions limited locally because Redis was away; under mu */
};

/* Where a request's rate-limit tokens were taken, so they go back there. */
enum { PLAT_RL_LOCAL, PLAT_RL_ROWS, PLAT_RL_REDIS };

struct plat_req {
    char id[PLAT_REQ_ID_MAX];
    int64_t account_id, key_id;
    char *model;
    plat_price_t price;   /* the price when the request began; billed at it */
    int64_t reserved;     /* micro-yuan held from the balance */
    int64_t est_tokens;   /* tokens taken from the TPM/TPD buckets */
    int64_t started_ms;
    char *batch_id;       /* a batch's request: its batch (ledger column batch_id); else NULL */
    plat_limits_t lim;    /* the limits it was admitted under (the caps of its give-back) */
    int rl_at;            /* PLAT_RL_*: where its rate-limit tokens were taken */
    bool held;                       /* shared: a reservations row exists for it */
    struct plat_req *next, *prev;    /* shared: in plat.running while held */
};

int64_t plat_now_ms(plat_t *p);
/* Locked, shared: renews the leases of this node's running batch requests
 * to until_ms (batch.c). */
void plat_batch_renew_locked(plat_t *p, int64_t until_ms);
/* Whether the database is unreachable now (PostgreSQL outage); takes p->mu. */
bool plat_db_down(plat_t *p);

/* Callers hold p->mu. */
int plat_price_get_locked(plat_t *p, const char *model, plat_price_t *out, bool *found,
                          char *err, size_t errlen);
int plat_limits_get_locked(plat_t *p, int64_t account_id, const char *model, bool is_free,
                           plat_limits_t *out, char *err, size_t errlen);
int plat_key_create_locked(plat_t *p, int64_t account_id, const char *name,
                           int64_t expires_at_ms, char key_out[PLAT_KEY_MAX], int64_t *key_id,
                           char *err, size_t errlen);
int plat_account_create_locked(plat_t *p, const char *name, int64_t referrer_id, int64_t *id,
                               char *err, size_t errlen);

/* SHA-256 of s as 64 lowercase hex characters + NUL. */
int plat_sha256_hex(const char *s, char out[65]);
/* n random bytes from the OS CSPRNG; 0 or -1. */
int plat_random(void *buf, size_t n);

#endif
