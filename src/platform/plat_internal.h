/*
 * plat_internal.h — what the platform's .c files share: the handle, its
 * statement cache and the in-memory state (balance reservations and
 * rate-limit buckets). Not for use outside src/platform/.
 */
#ifndef SILICA_PLAT_INTERNAL_H
#define SILICA_PLAT_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

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
 * balance reservation. Chained hash table owned by plat_t, guarded by mu. */
typedef struct plat_slot {
    struct plat_slot *next;
    int64_t account_id;
    char *model;
    int64_t reserved;                /* model "": micro-yuan held by running requests */
    plat_bucket_t b[PLAT_LIM_N];     /* model != "": rate-limit buckets */
    int64_t last_ms;                 /* last refill time of b */
} plat_slot_t;

enum {
    ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
    ST_KEY_LOOKUP, ST_PRICE_GET, ST_LIMITS_GET,
    ST_ACCT_BAL, ST_ACCT_SPEND, ST_LEDGER_INSERT,
    ST_N
};

struct plat {
    sqlite3 *db;
    pthread_mutex_t mu;
    plat_config_t cfg;
    sqlite3_stmt *stmts[ST_N];
    plat_slot_t **slots;
    size_t nslots; /* buckets in the table, a power of two */
    size_t nused;
};

struct plat_req {
    char id[PLAT_REQ_ID_MAX];
    int64_t account_id, key_id;
    char *model;
    plat_price_t price;   /* the price when the request began; billed at it */
    int64_t reserved;     /* micro-yuan held from the balance */
    int64_t est_tokens;   /* tokens taken from the TPM/TPD buckets */
    int64_t started_ms;
};

int64_t plat_now_ms(plat_t *p);
/* The cached statement for slot `which`, reset and with bindings cleared;
 * NULL (and an error message) when it cannot be prepared. */
sqlite3_stmt *plat_stmt(plat_t *p, int which, char *err, size_t errlen);
/* Runs a prepared statement with no result rows to the end. */
int plat_step_done(plat_t *p, sqlite3_stmt *s, char *err, size_t errlen);
int plat_tx_begin(plat_t *p, char *err, size_t errlen);
int plat_tx_commit(plat_t *p, char *err, size_t errlen);
void plat_tx_rollback(plat_t *p);

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
