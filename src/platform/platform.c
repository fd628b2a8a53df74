/*
 * platform.c — opening the database (db.h: SQLite or PostgreSQL, versioned
 * migrations) and the request path: key -> account -> balance reservation
 * -> rate limits -> (the request runs) -> one ledger row with the balance
 * change.
 *
 * Invariants kept here:
 *  - A ledger row and the balance change it causes are one transaction, and
 *    request_id is UNIQUE, so a finished request is in the ledger exactly
 *    once or (if the process dies before COMMIT) not at all and unbilled.
 *  - For every account, the money held by running requests (slot
 *    "reserved") plus the balance they may still spend never exceeds the
 *    balance: plat_begin admits a request only when balance - reserved
 *    covers its largest cost, and plat_finish charges at most that when the
 *    caller's usage stays within what it announced.
 *  - Everything below runs under p->mu; the database connection is used
 *    by one thread at a time.
 */
#include "platform/plat_internal.h"
#include "platform/batch.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

/* ---- small helpers ---- */

void plat_config_default(plat_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->signup_gift = 14 * PLAT_MONEY_UNIT;
    cfg->referral_gift = 14 * PLAT_MONEY_UNIT;
    cfg->paid_limits = (plat_limits_t){.rpm = 1000, .tpm = 1000000, .rpd = 0, .tpd = 0};
    cfg->free_limits = (plat_limits_t){.rpm = 100, .tpm = 100000, .rpd = 0, .tpd = 0};
    cfg->max_keys = PLAT_MAX_KEYS_DEFAULT;
    cfg->batch_price_ppm = PLAT_BATCH_FACTOR_DEFAULT;
    cfg->max_file_bytes = PLAT_MAX_FILE_DEFAULT;
    cfg->max_account_file_bytes = PLAT_MAX_ACCOUNT_FILES_DEFAULT;
    cfg->file_retention_s = PLAT_RETENTION_DEFAULT_S;
    cfg->batch_retention_s = PLAT_RETENTION_DEFAULT_S;
}

int64_t plat_now_ms(plat_t *p) {
    if (p->cfg.clock_ms) return p->cfg.clock_ms(p->cfg.clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int plat_random(void *buf, size_t n) {
    if (n > INT32_MAX) return -1;
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

int plat_sha256_hex(const char *s, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) return -1;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

/* ---- shared reservations (PostgreSQL) ----
 *
 * Every node checks and writes an account's reservations in one
 * transaction that holds the account row (FOR UPDATE), so across all
 * nodes: sum(reservations.amount) for an account never exceeds its balance
 * at admission, the same invariant the slots keep inside one process.
 * A reservation carries a lease: its node renews it every lease_ms / 4
 * while the request runs; a node that dies stops renewing, and once
 * expired the row is swept (by any node's next admission on that account
 * and by every node's lease thread), so a dead node holds no money longer
 * than lease_ms. Its requests leave no ledger row: they are not billed. */

/* Runs one-parameter-pair statement `which` (?1 text or int64, ?2 int64). */
static int resv_exec(plat_t *p, int which, const char *id, int64_t a, int64_t b, char *err,
                     size_t errlen) {
    db_stmt_t *s = db_stmt(p->db, which, err, errlen);
    if (!s) return -1;
    if (id)
        db_bind_text(s, 1, id);
    else
        db_bind_int64(s, 1, a);
    if (which != ST_RESV_DELETE && which != ST_RESV_SWEEP) db_bind_int64(s, 2, b);
    int rc = db_step_done(s, err, errlen);
    db_release(s);
    return rc;
}

static void running_add(plat_t *p, plat_req_t *r) {
    r->prev = NULL;
    r->next = p->running;
    if (p->running) p->running->prev = r;
    p->running = r;
}

static void running_remove(plat_t *p, plat_req_t *r) {
    if (r->prev)
        r->prev->next = r->next;
    else if (p->running == r)
        p->running = r->next;
    if (r->next) r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

/* Renews this node's leases and sweeps expired ones; under mu. */
static void lease_tick(plat_t *p) {
    char err[SL_ERR_MAX];
    const int64_t now = plat_now_ms(p);
    for (plat_req_t *r = p->running; r; r = r->next)
        if (resv_exec(p, ST_RESV_RENEW, r->id, 0, now + p->cfg.lease_ms, err, sizeof err) != 0)
            break; /* the database is away; the next tick tries again */
    resv_exec(p, ST_RESV_SWEEP, NULL, now, 0, err, sizeof err);
    plat_batch_renew_locked(p, now + p->cfg.lease_ms); /* the batch requests it runs */
}

static void *lease_main(void *arg) {
    plat_t *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->lease_stop) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        const int64_t ns = (int64_t)t.tv_nsec + p->cfg.lease_ms / 4 * 1000000;
        t.tv_sec += (time_t)(ns / 1000000000);
        t.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&p->lease_cv, &p->mu, &t);
        if (!p->lease_stop) lease_tick(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Shared buckets: the (account, model) row, created when missing and
 * locked (FOR UPDATE) until the transaction ends, copied into s. */
static int buckets_load(plat_t *p, plat_slot_t *s, int64_t account, const char *model, char *err,
                        size_t errlen) {
    static const int64_t windows[PLAT_LIM_N] = {60000, 60000, 86400000, 86400000};
    db_stmt_t *q = db_stmt(p->db, ST_BUCKET_ENSURE, err, errlen);
    if (!q) return -1;
    db_bind_int64(q, 1, account);
    db_bind_text(q, 2, model);
    int rc = db_step_done(q, err, errlen);
    db_release(q);
    if (rc != 0) return -1;
    if (!(q = db_stmt(p->db, ST_BUCKET_GET, err, errlen))) return -1;
    db_bind_int64(q, 1, account);
    db_bind_text(q, 2, model);
    if (db_step(q) != DB_ROW) {
        sl_err(err, errlen, "rate buckets: %s", db_errmsg(p->db));
        db_release(q);
        return -1;
    }
    for (int i = 0; i < PLAT_LIM_N; i++) {
        s->b[i].level = db_col_double(q, 2 * i);
        s->b[i].cap = db_col_int64(q, 2 * i + 1);
        s->b[i].window_ms = windows[i];
    }
    s->last_ms = db_col_int64(q, 8);
    db_release(q);
    return 0;
}

/* Shared buckets: writes s back to its locked row. */
static int buckets_store(plat_t *p, const plat_slot_t *s, int64_t account, const char *model,
                         char *err, size_t errlen) {
    db_stmt_t *q = db_stmt(p->db, ST_BUCKET_PUT, err, errlen);
    if (!q) return -1;
    db_bind_int64(q, 1, account);
    db_bind_text(q, 2, model);
    for (int i = 0; i < PLAT_LIM_N; i++) {
        db_bind_double(q, 3 + 2 * i, s->b[i].level);
        db_bind_int64(q, 4 + 2 * i, s->b[i].cap);
    }
    db_bind_int64(q, 11, s->last_ms);
    int rc = db_step_done(q, err, errlen);
    db_release(q);
    return rc;
}

/* Begins the admission transaction for account `id`: locks its row,
 * re-reads the balance, sweeps its expired reservations and sums the live
 * ones into *held. The transaction stays open on success. */
static int resv_begin(plat_t *p, int64_t id, int64_t *gift, int64_t *charge, int64_t *held,
                      char *err, size_t errlen) {
    if (db_begin(p->db, err, errlen) != 0) return -1;
    db_stmt_t *s = db_stmt(p->db, ST_ACCT_BAL, err, errlen); /* FOR UPDATE */
    if (!s) goto fail;
    db_bind_int64(s, 1, id);
    if (db_step(s) != DB_ROW) {
        sl_err(err, errlen, "account %" PRId64 ": %s", id, db_errmsg(p->db));
        db_release(s);
        goto fail;
    }
    *gift = db_col_int64(s, 0);
    *charge = db_col_int64(s, 1);
    db_release(s);
    if (resv_exec(p, ST_RESV_SWEEP_ACCT, NULL, id, plat_now_ms(p), err, errlen) != 0) goto fail;
    s = db_stmt(p->db, ST_RESV_SUM, err, errlen);
    if (!s) goto fail;
    db_bind_int64(s, 1, id);
    if (db_step(s) != DB_ROW) {
        sl_err(err, errlen, "reservations: %s", db_errmsg(p->db));
        db_release(s);
        goto fail;
    }
    *held = db_col_int64(s, 0);
    db_release(s);
    return 0;
fail:
    db_rollback(p->db);
    return -1;
}

plat_t *plat_open(const char *where, const plat_config_t *cfg, char *err, size_t errlen) {
    plat_t *p = calloc(1, sizeof *p);
    if (!p) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    if (cfg)
        p->cfg = *cfg;
    else
        plat_config_default(&p->cfg);
    if (p->cfg.batch_price_ppm < 0 || p->cfg.batch_price_ppm > PLAT_BATCH_FACTOR_MAX)
        p->cfg.batch_price_ppm = PLAT_BATCH_FACTOR_DEFAULT;
    if (p->cfg.max_file_bytes <= 0) p->cfg.max_file_bytes = PLAT_MAX_FILE_DEFAULT;
    if (p->cfg.max_account_file_bytes <= 0)
        p->cfg.max_account_file_bytes = PLAT_MAX_ACCOUNT_FILES_DEFAULT;
    if (p->cfg.file_retention_s < 0) p->cfg.file_retention_s = PLAT_RETENTION_DEFAULT_S;
    if (p->cfg.batch_retention_s < 0) p->cfg.batch_retention_s = PLAT_RETENTION_DEFAULT_S;
    pthread_mutex_init(&p->mu, NULL);
    p->nslots = 64;
    p->slots = calloc(p->nslots, sizeof *p->slots);
    if (!p->slots) {
        sl_err(err, errlen, "out of memory");
        goto fail;
    }
    if (p->cfg.lease_ms <= 0) p->cfg.lease_ms = PLAT_LEASE_MS_DEFAULT;
    pthread_cond_init(&p->lease_cv, NULL);
    p->db = db_open(where, p->cfg.sync_normal, plat_sql, ST_N, err, errlen);
    if (!p->db) goto fail;
    if (db_migrate(p->db, plat_migrations, plat_nmigrations, err, errlen) != 0) goto fail;
    if (db_kind(p->db) == DB_PG) {
        /* several nodes may serve this database: reservations live in it */
        p->shared = true;
        unsigned char rnd[4];
        char host[64] = "?";
        gethostname(host, sizeof host - 1);
        if (plat_random(rnd, sizeof rnd) != 0) memset(rnd, 0, sizeof rnd);
        snprintf(p->node, sizeof p->node, "%s/%d/%02x%02x%02x%02x", host, (int)getpid(), rnd[0],
                 rnd[1], rnd[2], rnd[3]);
        if (pthread_create(&p->lease_thread, NULL, lease_main, p) != 0) {
            sl_err(err, errlen, "cannot start the reservation lease thread");
            goto fail;
        }
        p->lease_running = true;
    }
    if (p->cfg.redis_url) {
        p->redis = rl_redis_open(p->cfg.redis_url, NULL, err, errlen);
        if (!p->redis) goto fail;
    }
    return p;
fail:
    plat_close(p);
    return NULL;
}

bool plat_is_db_url(const char *where) {
    return db_is_url(where);
}

void plat_close(plat_t *p) {
    if (!p) return;
    if (p->lease_running) {
        pthread_mutex_lock(&p->mu);
        p->lease_stop = true;
        pthread_cond_signal(&p->lease_cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->lease_thread, NULL);
    }
    pthread_cond_destroy(&p->lease_cv);
    plat_batch_forget_running(p);
    rl_redis_close(p->redis);
    db_close(p->db);
    for (size_t i = 0; p->slots && i < p->nslots; i++) {
        plat_slot_t *s = p->slots[i];
        while (s) {
            plat_slot_t *n = s->next;
            free(s->model);
            free(s);
            s = n;
        }
    }
    free(p->slots);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---- in-memory slots ---- */

static size_t slot_hash(int64_t account, const char *model) {
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)account;
    h *= 1099511628211ULL;
    for (const unsigned char *c = (const unsigned char *)model; *c; c++) {
        h ^= *c;
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 29));
}

static plat_slot_t *slot_find(plat_t *p, int64_t account, const char *model) {
    for (plat_slot_t *s = p->slots[slot_hash(account, model) & (p->nslots - 1)]; s; s = s->next)
        if (s->account_id == account && !strcmp(s->model, model)) return s;
    return NULL;
}

/* Finds or adds; NULL when out of memory. */
static plat_slot_t *slot_get(plat_t *p, int64_t account, const char *model) {
    plat_slot_t *s = slot_find(p, account, model);
    if (s) return s;
    if (p->nused >= p->nslots) { /* grow to keep chains short */
        size_t n = p->nslots * 2;
        plat_slot_t **t = calloc(n, sizeof *t);
        if (t) {
            for (size_t i = 0; i < p->nslots; i++) {
                plat_slot_t *c = p->slots[i];
                while (c) {
                    plat_slot_t *next = c->next;
                    size_t h = slot_hash(c->account_id, c->model) & (n - 1);
                    c->next = t[h];
                    t[h] = c;
                    c = next;
                }
            }
            free(p->slots);
            p->slots = t;
            p->nslots = n;
        }
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->model = sl_strdup(model))) {
        free(s);
        return NULL;
    }
    s->account_id = account;
    s->last_ms = -1;
    size_t h = slot_hash(account, model) & (p->nslots - 1);
    s->next = p->slots[h];
    p->slots[h] = s;
    p->nused++;
    return s;
}

/* Brings the buckets up to time `now` and to the current limits. A new or
 * newly-limited bucket starts full; a lowered cap clips the level. */
static void buckets_refresh(plat_slot_t *s, const plat_limits_t *l, int64_t now) {
    const int64_t caps[PLAT_LIM_N] = {l->rpm, l->tpm, l->rpd, l->tpd};
    const int64_t windows[PLAT_LIM_N] = {60000, 60000, 86400000, 86400000};
    int64_t dt = s->last_ms < 0 || now < s->last_ms ? 0 : now - s->last_ms;
    for (int i = 0; i < PLAT_LIM_N; i++) {
        plat_bucket_t *b = &s->b[i];
        int64_t cap = caps[i] > 0 ? caps[i] : 0;
        if (b->cap != cap || s->last_ms < 0) {
            if (b->cap == 0 || s->last_ms < 0)
                b->level = (double)cap;
            else if (b->level > (double)cap)
                b->level = (double)cap;
            b->cap = cap;
            b->window_ms = windows[i];
        }
        if (cap > 0) {
            b->level += (double)dt * (double)cap / (double)b->window_ms;
            if (b->level > (double)cap) b->level = (double)cap;
        }
    }
    s->last_ms = now;
}

static void bucket_give(plat_bucket_t *b, double n) {
    if (b->cap == 0) return;
    b->level += n;
    if (b->level > (double)b->cap) b->level = (double)b->cap;
}

static void req_free(plat_req_t *r) {
    if (!r) return;
    free(r->model);
    free(r->batch_id);
    free(r);
}

/* ---- statuses ---- */

static int deny(plat_status_t *st, int http, const char *type, const char *code, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));
static int deny(plat_status_t *st, int http, const char *type, const char *code, const char *fmt,
                ...) {
    if (!st) return -1;
    memset(st, 0, sizeof *st);
    st->http = http;
    snprintf(st->type, sizeof st->type, "%s", type);
    snprintf(st->code, sizeof st->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->message, sizeof st->message, fmt, ap);
    va_end(ap);
    return -1;
}

bool plat_db_down(plat_t *p) {
    pthread_mutex_lock(&p->mu);
    const bool down = db_unreachable(p->db);
    pthread_mutex_unlock(&p->mu);
    return down;
}

/* A database failure: 503 when the database is unreachable (an outage the
 * client may retry), else 500. */
static int db_deny(plat_t *p, plat_status_t *st, const char *err) {
    if (db_unreachable(p->db))
        return deny(st, 503, "server_error", "database_unavailable",
                    "The platform's database is unreachable; retry later. (%s)", err);
    return deny(st, 500, "server_error", "internal_error", "%s", err);
}

static void status_ok(plat_status_t *st) {
    if (!st) return;
    memset(st, 0, sizeof *st);
    st->http = 200;
}

/* ---- authentication ---- */

#define KEY_BODY_LEN 48 /* base62 characters after "sk-": ~285 bits */

static bool key_well_formed(const char *k, size_t n) {
    if (n != 3 + KEY_BODY_LEN || strncmp(k, "sk-", 3) != 0) return false;
    for (size_t i = 3; i < n; i++)
        if (!isalnum((unsigned char)k[i])) return false;
    return true;
}

typedef struct key_row {
    int64_t key_id, account_id;
    int64_t gift, charge;
} key_row_t;

/* Locked. 0 and *row, or -1 with a 401/403/500 in *st. */
static int authenticate(plat_t *p, const char *authorization, key_row_t *row, plat_status_t *st) {
    if (!authorization) authorization = "";
    while (*authorization == ' ' || *authorization == '\t')
        authorization++;
    if (!*authorization)
        return deny(st, 401, "invalid_request_error", "missing_api_key",
                    "You didn't provide an API key. Send it in the Authorization header as "
                    "'Authorization: Bearer sk-...' (or, from Anthropic SDKs, as 'x-api-key: "
                    "sk-...').");
    if (strncasecmp(authorization, "Bearer", 6) != 0 ||
        (authorization[6] != ' ' && authorization[6] != '\t'))
        return deny(st, 401, "invalid_request_error", "invalid_api_key",
                    "Malformed Authorization header: expected 'Bearer sk-...'.");
    const char *k = authorization + 6;
    while (*k == ' ' || *k == '\t')
        k++;
    size_t n = strlen(k);
    while (n > 0 && (k[n - 1] == ' ' || k[n - 1] == '\t' || k[n - 1] == '\r' || k[n - 1] == '\n'))
        n--;
    if (!key_well_formed(k, n))
        return deny(st, 401, "invalid_request_error", "invalid_api_key",
                    "Malformed API key: a key is 'sk-' followed by %d letters and digits.",
                    KEY_BODY_LEN);
    char key[PLAT_KEY_MAX], hash[65];
    memcpy(key, k, n);
    key[n] = '\0';
    int rc = plat_sha256_hex(key, hash);
    OPENSSL_cleanse(key, sizeof key);
    if (rc != 0) return deny(st, 500, "server_error", "internal_error", "hashing failed");
    char err[SL_ERR_MAX];
    db_stmt_t *s = db_stmt(p->db, ST_KEY_LOOKUP, err, sizeof err);
    if (!s) return db_deny(p, st, err);
    db_bind_text(s, 1, hash);
    rc = db_step(s);
    if (rc != DB_ROW) {
        db_release(s);
        if (rc != DB_DONE) {
            snprintf(err, sizeof err, "ledger database: %s", db_errmsg(p->db));
            return db_deny(p, st, err);
        }
        return deny(st, 401, "invalid_request_error", "invalid_api_key",
                    "Incorrect API key provided: %.11s... is not a known key.", k);
    }
    row->key_id = db_col_int64(s, 0);
    row->account_id = db_col_int64(s, 1);
    int64_t enabled = db_col_int64(s, 2);
    int64_t expires = db_col_int64(s, 3);
    char status[16];
    snprintf(status, sizeof status, "%s", db_col_text(s, 4));
    row->gift = db_col_int64(s, 5);
    row->charge = db_col_int64(s, 6);
    db_release(s);
    if (!enabled)
        return deny(st, 401, "invalid_request_error", "invalid_api_key",
                    "API key %.11s... has been revoked; create a new key.", k);
    if (expires > 0 && plat_now_ms(p) >= expires)
        return deny(st, 401, "invalid_request_error", "invalid_api_key",
                    "API key %.11s... has expired; create a new key.", k);
    if (strcmp(status, "normal") != 0)
        return deny(st, 403, "permission_denied", "account_disabled",
                    "Account %" PRId64 " is %s; contact the operator.", row->account_id, status);
    return 0;
}

int plat_auth(plat_t *p, const char *authorization, int64_t *account_id, int64_t *key_id,
              plat_status_t *st) {
    key_row_t row;
    pthread_mutex_lock(&p->mu);
    int rc = authenticate(p, authorization, &row, st);
    pthread_mutex_unlock(&p->mu);
    if (rc != 0) return -1;
    if (account_id) *account_id = row.account_id;
    if (key_id) *key_id = row.key_id;
    status_ok(st);
    return 0;
}

/* ---- request path ---- */

static const char *const limit_names[PLAT_LIM_N] = {"rpm", "tpm", "rpd", "tpd"};
static const char *const limit_words[PLAT_LIM_N] = {"requests per minute", "tokens per minute",
                                                    "requests per day", "tokens per day"};

static int64_t clamp0(int64_t v) {
    return v < 0 ? 0 : v;
}

/* price * ppm / 1e6, rounded up, without overflow for any int64 price
 * (saturates). ppm <= PLAT_BATCH_FACTOR_MAX. */
int64_t plat_price_scale(int64_t price, int64_t ppm) {
    if (price <= 0 || ppm <= 0) return 0;
    int64_t q = price / 1000000, r = price % 1000000;
    if (q > INT64_MAX / ppm - 1) return INT64_MAX;
    return q * ppm + (r * ppm + 999999) / 1000000;
}

/* Locked. Admits a request of the account in row: balance, then (not for a
 * batch's request, batch_id set) the rate limits. */
static int admit(plat_t *p, key_row_t row, const char *model, int64_t est_prompt_tokens,
                 int64_t max_completion_tokens, const char *batch_id, plat_req_t **out,
                 plat_status_t *st);
/* ---- rate limits in Redis ----
 *
 * One key per (account, model, limit): "silica:rl:{a<account>:<model>}:rpm"
 * (the braces keep an account-model's keys in one Redis Cluster slot, as
 * one script touching several keys needs). Only limited buckets (cap > 0)
 * have keys. */

static const int64_t limit_windows[PLAT_LIM_N] = {60000, 60000, 86400000, 86400000};

/* Fills b (and keys, their storage) with the limited buckets of (account,
 * model) and the amount each takes or gets back: `requests` for RPM/RPD,
 * `tokens` for TPM/TPD; buckets whose amount is 0 are left out when
 * skip_zero. Returns how many. */
static int redis_buckets(int64_t account, const char *model, const plat_limits_t *l,
                         double requests, double tokens, bool skip_zero,
                         rl_redis_bucket_t b[PLAT_LIM_N], char keys[PLAT_LIM_N][320],
                         int idx[PLAT_LIM_N]) {
    const int64_t caps[PLAT_LIM_N] = {l->rpm, l->tpm, l->rpd, l->tpd};
    int n = 0;
    for (int i = 0; i < PLAT_LIM_N; i++) {
        const double amount = i == PLAT_LIM_TPM || i == PLAT_LIM_TPD ? tokens : requests;
        if (caps[i] <= 0 || (skip_zero && amount == 0)) continue;
        snprintf(keys[n], sizeof keys[n], "silica:rl:{a%" PRId64 ":%s}:%s", account, model,
                 limit_names[i]);
        b[n] = (rl_redis_bucket_t){
            .key = keys[n], .cap = caps[i], .window_ms = limit_windows[i], .amount = amount};
        idx[n++] = i;
    }
    return n;
}

/* Locked. Check-and-take in Redis: RL_REDIS_TAKEN; RL_REDIS_DENIED with
 * *worst (PLAT_LIM_*) and *wait_ms; -1 when Redis is away (nothing taken;
 * the caller limits locally). */
static int redis_take(plat_t *p, int64_t account, const char *model, const plat_limits_t *l,
                      int64_t tokens, int *worst, int64_t *wait_ms) {
    rl_redis_bucket_t b[PLAT_LIM_N];
    char keys[PLAT_LIM_N][320];
    int idx[PLAT_LIM_N];
    int n = redis_buckets(account, model, l, 1, (double)tokens, false, b, keys, idx);
    if (n == 0) return RL_REDIS_TAKEN; /* unlimited */
    char err[SL_ERR_MAX];
    int denied = 0;
    int rc = rl_redis_take(p->redis, b, n, &denied, wait_ms, err, sizeof err);
    if (rc == RL_REDIS_DENIED) *worst = idx[denied];
    return rc;
}

/* Locked. Gives back `tokens` (may be negative) and, with whole_request,
 * the request's RPM/RPD slot. When Redis cannot take them (away, or a bad
 * reply; rl_redis logs that once per outage or run of bad replies) they
 * stay taken and refill with time. */
static void redis_give(plat_t *p, int64_t account, const char *model, const plat_limits_t *l,
                       int64_t tokens, bool whole_request) {
    rl_redis_bucket_t b[PLAT_LIM_N];
    char keys[PLAT_LIM_N][320];
    int idx[PLAT_LIM_N];
    int n =
        redis_buckets(account, model, l, whole_request ? 1 : 0, (double)tokens, true, b, keys, idx);
    char err[SL_ERR_MAX];
    if (n > 0) rl_redis_give(p->redis, b, n, err, sizeof err);
}

char *plat_metrics_text(plat_t *p) {
    if (!p->redis) return sl_strdup("");
    rl_redis_stats_t rs;
    rl_redis_stats(p->redis, &rs);
    pthread_mutex_lock(&p->mu);
    const uint64_t local = p->rl_local;
    pthread_mutex_unlock(&p->mu);
    sl_buf_t b = {0};
    sl_buf_printf(&b,
                  "# HELP silica_ratelimit_redis_up 1 while the shared rate-limit store (Redis) "
                  "is connected\n"
                  "# TYPE silica_ratelimit_redis_up gauge\n"
                  "silica_ratelimit_redis_up %d\n"
                  "# HELP silica_ratelimit_redis_outages_total times the connection to Redis was "
                  "lost (or not made at start)\n"
                  "# TYPE silica_ratelimit_redis_outages_total counter\n"
                  "silica_ratelimit_redis_outages_total %llu\n"
                  "# TYPE silica_ratelimit_redis_reconnects_total counter\n"
                  "silica_ratelimit_redis_reconnects_total %llu\n"
                  "# HELP silica_ratelimit_redis_errors_total Redis replies of the wrong shape "
                  "and script errors\n"
                  "# TYPE silica_ratelimit_redis_errors_total counter\n"
                  "silica_ratelimit_redis_errors_total %llu\n"
                  "# HELP silica_ratelimit_local_total admissions limited by this node alone "
                  "because Redis could not answer\n"
                  "# TYPE silica_ratelimit_local_total counter\n"
                  "silica_ratelimit_local_total %llu\n",
                  rs.up ? 1 : 0, (unsigned long long)rs.outages, (unsigned long long)rs.reconnects,
                  (unsigned long long)rs.errors, (unsigned long long)local);
    if (!b.data) return NULL;
    return b.data;
}

int plat_begin(plat_t *p, const char *authorization, const char *model, int64_t est_prompt_tokens,
               int64_t max_completion_tokens, plat_req_t **out, plat_status_t *st) {
    *out = NULL;
    if (!model || !*model || strlen(model) > 256)
        return deny(st, 400, "invalid_request_error", "invalid_model",
                    "The 'model' field is missing or too long.");
    pthread_mutex_lock(&p->mu);
    key_row_t row;
    int rc = authenticate(p, authorization, &row, st);
    if (rc == 0) rc = admit(p, row, model, est_prompt_tokens, max_completion_tokens, NULL, out, st);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_begin_batch(plat_t *p, int64_t account_id, int64_t key_id, const char *batch_id,
                     const char *model, int64_t est_prompt_tokens, int64_t max_completion_tokens,
                     plat_req_t **out, plat_status_t *st) {
    *out = NULL;
    if (!model || !*model || strlen(model) > 256)
        return deny(st, 400, "invalid_request_error", "invalid_model",
                    "The 'model' field is missing or too long.");
    char err[SL_ERR_MAX];
    pthread_mutex_lock(&p->mu);
    key_row_t row = {.key_id = key_id, .account_id = account_id};
    int rc = -1;
    db_stmt_t *s = db_stmt(p->db, ST_ACCT_GET, err, sizeof err);
    if (!s) {
        db_deny(p, st, err);
        goto out;
    }
    db_bind_int64(s, 1, account_id);
    if (db_step(s) != DB_ROW) {
        db_release(s);
        deny(st, 403, "permission_denied", "account_disabled",
             "Account %" PRId64 " no longer exists.", account_id);
        goto out;
    }
    char status[16];
    snprintf(status, sizeof status, "%s", db_col_text(s, 2));
    row.gift = db_col_int64(s, 3);
    row.charge = db_col_int64(s, 4);
    db_release(s);
    if (strcmp(status, "normal") != 0) {
        deny(st, 403, "permission_denied", "account_disabled",
             "Account %" PRId64 " is %s; contact the operator.", account_id, status);
        goto out;
    }
    rc = admit(p, row, model, est_prompt_tokens, max_completion_tokens, batch_id, out, st);
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int admit(plat_t *p, key_row_t row, const char *model, int64_t est_prompt_tokens,
                 int64_t max_completion_tokens, const char *batch_id, plat_req_t **out,
                 plat_status_t *st) {
    est_prompt_tokens = clamp0(est_prompt_tokens);
    max_completion_tokens = clamp0(max_completion_tokens);
    char err[SL_ERR_MAX];
    bool in_tx = false; /* shared: the admission transaction is open */
    int rc;
    plat_price_t price;
    bool priced;
    if (plat_price_get_locked(p, model, &price, &priced, err, sizeof err) != 0) {
        rc = db_deny(p, st, err);
        goto out;
    }
    if (batch_id) { /* batch requests are billed at the batch price */
        int64_t f = p->cfg.batch_price_ppm;
        price.input = plat_price_scale(price.input, f);
        price.cached_input = plat_price_scale(price.cached_input, f);
        price.output = plat_price_scale(price.output, f);
    }
    plat_usage_t worst = {.prompt_tokens = est_prompt_tokens,
                          .completion_tokens = max_completion_tokens};
    int64_t est_cost = plat_cost(&price, &worst);
    bool is_free = price.input == 0 && price.cached_input == 0 && price.output == 0;

    /* Balance: the largest cost must fit in what running requests have not
     * already claimed. Free models need no balance. */
    plat_slot_t *acct = slot_get(p, row.account_id, "");
    if (!acct) {
        rc = deny(st, 500, "server_error", "internal_error", "out of memory");
        goto out;
    }
    if (est_cost > 0) {
        int64_t held = acct->reserved;
        if (p->shared) { /* what every node holds, in a transaction kept open below */
            if (resv_begin(p, row.account_id, &row.gift, &row.charge, &held, err, sizeof err) !=
                0) {
                rc = db_deny(p, st, err);
                goto out;
            }
            in_tx = true;
        }
        int64_t available = row.gift + row.charge - held;
        if (available < est_cost) {
            char have[32], need[32];
            plat_money_format(available < 0 ? 0 : available, have, sizeof have);
            plat_money_format(est_cost, need, sizeof need);
            rc = deny(st, 403, "insufficient_quota", "insufficient_balance",
                      "Insufficient balance: %s yuan available, but this request may cost up to "
                      "%s yuan (%" PRId64 " prompt tokens + max_tokens %" PRId64
                      " on %s). Top up the account or lower max_tokens.",
                      have, need, est_prompt_tokens, max_completion_tokens, model);
            goto out;
        }
    }

    /* Rate limits: all four buckets must allow it; report the one with the
     * longest wait. Nothing is taken unless every check passed. */
    plat_limits_t lim;
    if (batch_id) { /* the runner's concurrency paces a batch, not the interactive limits */
        lim = (plat_limits_t){0};
    } else if (plat_limits_get_locked(p, row.account_id, model, is_free, &lim, err, sizeof err) != 0) {
        rc = db_deny(p, st, err);
        goto out;
    }
    int64_t tokens = est_prompt_tokens + max_completion_tokens;
    int64_t now = plat_now_ms(p);
    int worst_i = -1;
    double worst_wait_ms = 0;
    /* Redis when configured and reachable (one atomic script for every
     * node); else this node's buckets, or on PostgreSQL without Redis the
     * shared rate_buckets row. */
    int rl_at = p->redis ? PLAT_RL_REDIS : p->shared ? PLAT_RL_ROWS : PLAT_RL_LOCAL;
    if (rl_at == PLAT_RL_REDIS) {
        int64_t wait_ms = 0;
        int taken = redis_take(p, row.account_id, model, &lim, tokens, &worst_i, &wait_ms);
        if (taken < 0) {
            rl_at = PLAT_RL_LOCAL; /* Redis is away: limit on this node alone */
            p->rl_local++;
        }
        worst_wait_ms = (double)wait_ms;
    }
    plat_slot_t *rl = NULL;
    if (rl_at != PLAT_RL_REDIS) {
        rl = slot_get(p, row.account_id, model);
        if (!rl) {
            rc = deny(st, 500, "server_error", "internal_error", "out of memory");
            goto out;
        }
    }
    if (rl_at == PLAT_RL_ROWS) { /* every node's counts: the row, locked until commit */
        if (!in_tx && db_begin(p->db, err, sizeof err) != 0) {
            rc = db_deny(p, st, err);
            goto out;
        }
        in_tx = true;
        if (buckets_load(p, rl, row.account_id, model, err, sizeof err) != 0) {
            rc = db_deny(p, st, err);
            goto out;
        }
    }
    if (rl) {
        buckets_refresh(rl, &lim, now);
        for (int i = 0; i < PLAT_LIM_N; i++) {
            plat_bucket_t *b = &rl->b[i];
            if (b->cap == 0) continue;
            bool per_token = i == PLAT_LIM_TPM || i == PLAT_LIM_TPD;
            /* A request larger than the whole bucket may run when it is full. */
            double need = per_token ? (double)SL_MIN(tokens, b->cap) : 1.0;
            if (b->level >= need) continue;
            double wait_ms = (need - b->level) * (double)b->window_ms / (double)b->cap;
            if (worst_i < 0 || wait_ms > worst_wait_ms) {
                worst_i = i;
                worst_wait_ms = wait_ms;
            }
        }
    }
    if (worst_i >= 0) {
        const int64_t caps[PLAT_LIM_N] = {lim.rpm, lim.tpm, lim.rpd, lim.tpd};
        int retry = (int)SL_MIN(ceil(worst_wait_ms / 1000.0), 86400.0);
        if (retry < 1) retry = 1;
        rc = deny(st, 429, "rate_limit_error", "rate_limit_exceeded",
                  "Rate limit reached for %s: %" PRId64 " %s (%s). Retry after %d s.", model,
                  caps[worst_i], limit_words[worst_i], limit_names[worst_i], retry);
        st->retry_after_s = retry;
        snprintf(st->limit, sizeof st->limit, "%s", limit_names[worst_i]);
        goto out;
    }

    plat_req_t *r = calloc(1, sizeof *r);
    unsigned char rnd[16];
    if (!r || !(r->model = sl_strdup(model)) || (batch_id && !(r->batch_id = sl_strdup(batch_id))) ||
        plat_random(rnd, sizeof rnd) != 0) {
        req_free(r);
        if (rl_at == PLAT_RL_REDIS) redis_give(p, row.account_id, model, &lim, tokens, true);
        rc = deny(st, 500, "server_error", "internal_error", "out of memory or randomness");
        goto out;
    }
    static const char hex[] = "0123456789abcdef";
    memcpy(r->id, "req-", 4);
    for (int i = 0; i < 16; i++) {
        r->id[4 + 2 * i] = hex[rnd[i] >> 4];
        r->id[5 + 2 * i] = hex[rnd[i] & 15];
    }
    r->id[36] = '\0';
    r->account_id = row.account_id;
    r->key_id = row.key_id;
    r->price = price;
    r->reserved = est_cost;
    r->est_tokens = tokens;
    r->started_ms = now;
    r->lim = lim;
    r->rl_at = rl_at;
    if (rl) {
        rl->b[PLAT_LIM_RPM].level -= rl->b[PLAT_LIM_RPM].cap ? 1 : 0;
        rl->b[PLAT_LIM_RPD].level -= rl->b[PLAT_LIM_RPD].cap ? 1 : 0;
        rl->b[PLAT_LIM_TPM].level -= rl->b[PLAT_LIM_TPM].cap ? (double)tokens : 0;
        rl->b[PLAT_LIM_TPD].level -= rl->b[PLAT_LIM_TPD].cap ? (double)tokens : 0;
    }
    if (in_tx) {
        /* the buckets and the reservation row commit with the checks that
         * admitted the request */
        int ok = rl_at != PLAT_RL_ROWS ||
                 buckets_store(p, rl, r->account_id, r->model, err, sizeof err) == 0;
        if (ok && est_cost > 0) {
            db_stmt_t *s = db_stmt(p->db, ST_RESV_INSERT, err, sizeof err);
            ok = s != NULL;
            if (s) {
                db_bind_text(s, 1, r->id);
                db_bind_int64(s, 2, r->account_id);
                db_bind_int64(s, 3, est_cost);
                db_bind_text(s, 4, p->node);
                db_bind_int64(s, 5, now + p->cfg.lease_ms);
                ok = db_step_done(s, err, sizeof err) == 0;
                db_release(s);
            }
        }
        if (!ok || db_commit(p->db, err, sizeof err) != 0) {
            if (rl_at == PLAT_RL_REDIS) redis_give(p, r->account_id, r->model, &lim, tokens, true);
            req_free(r);
            rc = db_deny(p, st, err);
            goto out;
        }
        in_tx = false;
        if (est_cost > 0) {
            r->held = true;
            running_add(p, r);
        }
    } else {
        acct->reserved += est_cost;
    }
    *out = r;
    status_ok(st);
    rc = 0;
out:
    if (in_tx) db_rollback(p->db);
    return rc;
}

/* Locked. Gives back the reservation and `unused_tokens` (may be negative:
 * tokens used beyond the estimate are taken now); with whole_request the
 * request's RPM/RPD slot too. */
static void release(plat_t *p, plat_req_t *r, int64_t unused_tokens, bool whole_request) {
    if (r->held) {
        /* shared: the row went with the ledger insert, or plat_abort deleted
         * it; if that failed, it is no longer renewed and expires */
        running_remove(p, r);
        r->held = false;
    } else if (!p->shared) {
        plat_slot_t *acct = slot_find(p, r->account_id, "");
        if (acct) acct->reserved -= r->reserved;
    }
    if (unused_tokens == 0 && !whole_request) return;
    if (r->rl_at == PLAT_RL_REDIS) {
        redis_give(p, r->account_id, r->model, &r->lim, unused_tokens, whole_request);
        return;
    }
    const bool rows = r->rl_at == PLAT_RL_ROWS;
    plat_slot_t *rl = slot_find(p, r->account_id, r->model);
    if (!rl) return;
    char err[SL_ERR_MAX];
    /* shared: into the locked row, in a transaction of its own */
    if (rows && (db_begin(p->db, err, sizeof err) != 0 ||
                 buckets_load(p, rl, r->account_id, r->model, err, sizeof err) != 0)) {
        db_rollback(p->db);
        sl_warn("platform: rate-limit tokens of %s not given back: %s", r->id, err);
        return;
    }
    bucket_give(&rl->b[PLAT_LIM_TPM], (double)unused_tokens);
    bucket_give(&rl->b[PLAT_LIM_TPD], (double)unused_tokens);
    if (whole_request) {
        bucket_give(&rl->b[PLAT_LIM_RPM], 1);
        bucket_give(&rl->b[PLAT_LIM_RPD], 1);
    }
    if (rows && (buckets_store(p, rl, r->account_id, r->model, err, sizeof err) != 0 ||
                 db_commit(p->db, err, sizeof err) != 0)) {
        db_rollback(p->db);
        sl_warn("platform: rate-limit tokens of %s not given back: %s", r->id, err);
    }
}

void plat_abort(plat_t *p, plat_req_t *r) {
    if (!r) return;
    pthread_mutex_lock(&p->mu);
    if (r->held) {
        char err[SL_ERR_MAX];
        if (resv_exec(p, ST_RESV_DELETE, r->id, 0, 0, err, sizeof err) != 0)
            sl_warn("platform: reservation of %s not released (%s); it expires", r->id, err);
    }
    release(p, r, r->est_tokens, true);
    pthread_mutex_unlock(&p->mu);
    req_free(r);
}

/* Locked: one transaction with the ledger row and the balance change. */
static int record(plat_t *p, plat_req_t *r, const plat_usage_t *u, int64_t cost, const char *status,
                  const plat_item_result_t *item, char *err, size_t errlen) {
    if (db_begin(p->db, err, errlen) != 0) return -1;
    /* on PostgreSQL the read locks the account row (FOR UPDATE) */
    db_stmt_t *s = db_stmt(p->db, ST_ACCT_BAL, err, errlen);
    if (!s) goto fail;
    db_bind_int64(s, 1, r->account_id);
    if (db_step(s) != DB_ROW) {
        sl_err(err, errlen, "account %" PRId64 " vanished: %s", r->account_id, db_errmsg(p->db));
        db_release(s);
        goto fail;
    }
    int64_t gift = db_col_int64(s, 0);
    db_release(s);
    /* Gift balance is spent first and never below zero; the rest is charged. */
    int64_t gift_spent = SL_MIN(cost, gift > 0 ? gift : 0);
    int64_t charge_spent = cost - gift_spent;

    s = db_stmt(p->db, ST_ACCT_SPEND, err, errlen);
    if (!s) goto fail;
    db_bind_int64(s, 1, r->account_id);
    db_bind_int64(s, 2, gift_spent);
    db_bind_int64(s, 3, charge_spent);
    int rc = db_step_done(s, err, errlen);
    db_release(s);
    if (rc != 0) goto fail;

    s = db_stmt(p->db, ST_LEDGER_INSERT, err, errlen);
    if (!s) goto fail;
    db_bind_text(s, 1, r->id);
    db_bind_int64(s, 2, r->account_id);
    db_bind_int64(s, 3, r->key_id);
    db_bind_text(s, 4, r->model);
    db_bind_int64(s, 5, u->prompt_tokens);
    db_bind_int64(s, 6, u->cached_tokens);
    db_bind_int64(s, 7, u->completion_tokens);
    db_bind_int64(s, 8, u->reasoning_tokens);
    db_bind_int64(s, 9, cost);
    db_bind_int64(s, 10, gift_spent);
    db_bind_int64(s, 11, charge_spent);
    db_bind_text(s, 12, status);
    db_bind_int64(s, 13, r->started_ms);
    db_bind_int64(s, 14, plat_now_ms(p));
    db_bind_int64(s, 15, u->ttft_ms);
    if (r->batch_id) db_bind_text(s, 16, r->batch_id);
    else db_bind_null(s, 16);
    rc = db_step_done(s, err, errlen);
    db_release(s);
    if (rc != 0) goto fail;
    if (item) { /* the batch request's result, in the same commit as its charge */
        s = db_stmt(p->db, ST_ITEM_DONE, err, errlen);
        if (!s) goto fail;
        db_bind_text(s, 1, r->batch_id ? r->batch_id : "");
        db_bind_int64(s, 2, item->line);
        db_bind_int64(s, 3, item->failed ? 2 : 1);
        db_bind_text(s, 4, item->result);
        rc = db_step_done(s, err, errlen);
        db_release(s);
        if (rc != 0) goto fail;
        if (db_changes(p->db) != 1) { /* recorded already: never bill it twice */
            sl_err(err, errlen, "batch %s line %" PRId64 " already has a result",
                   r->batch_id ? r->batch_id : "?", item->line);
            db_rollback(p->db);
            return PLAT_EDUP;
        }
    }
    /* shared: the reservation ends with the charge, in the same commit */
    if (r->held && resv_exec(p, ST_RESV_DELETE, r->id, 0, 0, err, errlen) != 0) goto fail;
    if (db_commit(p->db, err, errlen) != 0) goto fail;
    return 0;
fail:
    db_rollback(p->db);
    return -1;
}

int plat_finish(plat_t *p, plat_req_t *r, const plat_usage_t *u_in, const char *status) {
    return plat_finish_item(p, r, u_in, status, NULL);
}

int plat_finish_item(plat_t *p, plat_req_t *r, const plat_usage_t *u_in, const char *status,
                     const plat_item_result_t *item) {
    if (!r) return -1;
    /* Normalize: counts are >= 0, cached <= prompt, reasoning <= completion. */
    plat_usage_t u = u_in ? *u_in : (plat_usage_t){.ttft_ms = -1};
    u.prompt_tokens = clamp0(u.prompt_tokens);
    u.completion_tokens = clamp0(u.completion_tokens);
    u.cached_tokens = SL_MIN(clamp0(u.cached_tokens), u.prompt_tokens);
    u.reasoning_tokens = SL_MIN(clamp0(u.reasoning_tokens), u.completion_tokens);
    if (u.ttft_ms < 0) u.ttft_ms = -1;
    char st[24];
    snprintf(st, sizeof st, "%s", status && *status ? status : "ok");
    int64_t cost = plat_cost(&r->price, &u);
    char err[SL_ERR_MAX];
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = record(p, r, &u, cost, st, item, err, sizeof err);
        if (rc == 0 || rc == PLAT_EDUP) break;
    }
    if (rc != 0 && rc != PLAT_EDUP)
        sl_warn("platform: could not record request %s (account %" PRId64 ", %" PRId64
                " micro-yuan): %s",
                r->id, r->account_id, cost, err);
    release(p, r, r->est_tokens - (u.prompt_tokens + u.completion_tokens), false);
    pthread_mutex_unlock(&p->mu);
    req_free(r);
    return rc;
}

const char *plat_req_id(const plat_req_t *r) {
    return r->id;
}
int64_t plat_req_account(const plat_req_t *r) {
    return r->account_id;
}
int64_t plat_req_key(const plat_req_t *r) {
    return r->key_id;
}
