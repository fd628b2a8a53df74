/*
 * platform.c — opening the database (WAL, versioned migrations) and the
 * request path: key -> account -> balance reservation -> rate limits ->
 * (the request runs) -> one ledger row with the balance change.
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
 *  - Everything below runs under p->mu; the SQLite connection is used by
 *    one thread at a time.
 */
#include "platform/plat_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

/* ---- schema ---- */

/* Migration i (0-based) takes the schema from user_version i to i + 1.
 * Append only: a shipped migration never changes. */
static const char *const migrations[] = {
    /* 1: accounts, keys, prices, limits, credits, ledger */
    "CREATE TABLE accounts ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  status TEXT NOT NULL DEFAULT 'normal',"
    "  gift_balance INTEGER NOT NULL DEFAULT 0,"   /* micro-yuan */
    "  charge_balance INTEGER NOT NULL DEFAULT 0," /* micro-yuan */
    "  referrer_id INTEGER,"
    "  created_at INTEGER NOT NULL);"              /* unix ms */
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL DEFAULT '',"
    "  prefix TEXT NOT NULL,"
    "  hash TEXT NOT NULL UNIQUE,"                 /* sha-256 hex of the whole key */
    "  enabled INTEGER NOT NULL DEFAULT 1,"
    "  expires_at INTEGER NOT NULL DEFAULT 0,"     /* unix ms, 0 never */
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX api_keys_account ON api_keys(account_id);"
    "CREATE TABLE model_prices ("                  /* micro-yuan per million tokens */
    "  model TEXT PRIMARY KEY,"
    "  input INTEGER NOT NULL,"
    "  cached_input INTEGER NOT NULL,"
    "  output INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE rate_limits ("                   /* account 0 = all; model '*' = all; 0 = unlimited */
    "  account_id INTEGER NOT NULL,"
    "  model TEXT NOT NULL,"
    "  rpm INTEGER NOT NULL, tpm INTEGER NOT NULL,"
    "  rpd INTEGER NOT NULL, tpd INTEGER NOT NULL,"
    "  PRIMARY KEY (account_id, model));"
    "CREATE TABLE credits ("                       /* every addition to a balance */
    "  id INTEGER PRIMARY KEY,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id),"
    "  kind TEXT NOT NULL,"                        /* signup, referral, credit */
    "  gift INTEGER NOT NULL,"
    "  charge INTEGER NOT NULL,"
    "  note TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX credits_account ON credits(account_id);"
    "CREATE TABLE usage_ledger ("                  /* one row per finished request */
    "  id INTEGER PRIMARY KEY,"
    "  request_id TEXT NOT NULL UNIQUE,"
    "  account_id INTEGER NOT NULL,"
    "  key_id INTEGER NOT NULL,"
    "  model TEXT NOT NULL,"
    "  prompt_tokens INTEGER NOT NULL,"
    "  cached_tokens INTEGER NOT NULL,"
    "  completion_tokens INTEGER NOT NULL,"
    "  reasoning_tokens INTEGER NOT NULL,"
    "  cost INTEGER NOT NULL,"                     /* micro-yuan = gift_spent + charge_spent */
    "  gift_spent INTEGER NOT NULL,"
    "  charge_spent INTEGER NOT NULL,"
    "  status TEXT NOT NULL,"
    "  started_at INTEGER NOT NULL,"
    "  finished_at INTEGER NOT NULL,"
    "  ttft_ms INTEGER NOT NULL DEFAULT -1);"
    "CREATE INDEX usage_ledger_account_time ON usage_ledger(account_id, finished_at);",
    /* 2: stored responses (POST /v1/responses with store; responses.c) */
    "CREATE TABLE responses ("
    "  id TEXT PRIMARY KEY,"                       /* "resp_..." */
    "  account_id INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"               /* unix ms */
    "  body TEXT NOT NULL);"                       /* {response, input, context} JSON */
    "CREATE INDEX responses_account_time ON responses(account_id, created_at);",
};

static const char *const stmt_sql[ST_N] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_KEY_LOOKUP] = "SELECT k.id, k.account_id, k.enabled, k.expires_at, a.status, "
                      "a.gift_balance, a.charge_balance FROM api_keys k "
                      "JOIN accounts a ON a.id = k.account_id WHERE k.hash = ?1",
    [ST_PRICE_GET] = "SELECT input, cached_input, output FROM model_prices WHERE model = ?1",
    [ST_LIMITS_GET] = "SELECT rpm, tpm, rpd, tpd FROM rate_limits "
                      "WHERE account_id IN (?1, 0) AND model IN (?2, '*') "
                      "ORDER BY account_id = 0, model = '*' LIMIT 1",
    [ST_ACCT_BAL] = "SELECT gift_balance, charge_balance FROM accounts WHERE id = ?1",
    [ST_ACCT_SPEND] = "UPDATE accounts SET gift_balance = gift_balance - ?2, "
                      "charge_balance = charge_balance - ?3 WHERE id = ?1",
    [ST_LEDGER_INSERT] = "INSERT INTO usage_ledger (request_id, account_id, key_id, model, "
                         "prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, "
                         "cost, gift_spent, charge_spent, status, started_at, finished_at, "
                         "ttft_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                         "?13, ?14, ?15)",
};

/* ---- small helpers ---- */

void plat_config_default(plat_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->signup_gift = 14 * PLAT_MONEY_UNIT;
    cfg->referral_gift = 14 * PLAT_MONEY_UNIT;
    cfg->paid_limits = (plat_limits_t){.rpm = 1000, .tpm = 1000000, .rpd = 0, .tpd = 0};
    cfg->free_limits = (plat_limits_t){.rpm = 100, .tpm = 100000, .rpd = 0, .tpd = 0};
    cfg->max_keys = PLAT_MAX_KEYS_DEFAULT;
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

sqlite3_stmt *plat_stmt(plat_t *p, int which, char *err, size_t errlen) {
    sqlite3_stmt *s = p->stmts[which];
    if (!s) {
        if (sqlite3_prepare_v3(p->db, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) !=
            SQLITE_OK) {
            sl_err(err, errlen, "sqlite prepare: %s", sqlite3_errmsg(p->db));
            return NULL;
        }
        p->stmts[which] = s;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

int plat_step_done(plat_t *p, sqlite3_stmt *s, char *err, size_t errlen) {
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return sl_err(err, errlen, "sqlite: %s", sqlite3_errmsg(p->db));
    return 0;
}

static int exec_slot(plat_t *p, int which, char *err, size_t errlen) {
    sqlite3_stmt *s = plat_stmt(p, which, err, errlen);
    if (!s) return -1;
    return plat_step_done(p, s, err, errlen);
}

int plat_tx_begin(plat_t *p, char *err, size_t errlen) {
    return exec_slot(p, ST_BEGIN, err, errlen);
}
int plat_tx_commit(plat_t *p, char *err, size_t errlen) {
    return exec_slot(p, ST_COMMIT, err, errlen);
}
void plat_tx_rollback(plat_t *p) {
    if (!sqlite3_get_autocommit(p->db)) exec_slot(p, ST_ROLLBACK, NULL, 0);
}

/* ---- open / migrate / close ---- */

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        sl_err(err, errlen, "sqlite: %s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int user_version(sqlite3 *db, int *v) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK) return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* Each migration runs in its own IMMEDIATE transaction together with the
 * user_version bump, re-reading the version inside it so two processes
 * opening a fresh data dir at once do not both migrate. */
static int migrate(sqlite3 *db, char *err, size_t errlen) {
    const int target = (int)SL_ARRAY_LEN(migrations);
    for (;;) {
        if (exec_sql(db, "BEGIN IMMEDIATE", err, errlen) != 0) return -1;
        int v = 0;
        if (user_version(db, &v) != 0) {
            exec_sql(db, "ROLLBACK", NULL, 0);
            return sl_err(err, errlen, "sqlite: cannot read user_version: %s", sqlite3_errmsg(db));
        }
        if (v > target) {
            exec_sql(db, "ROLLBACK", NULL, 0);
            return sl_err(err, errlen,
                          "database schema version %d is newer than this silica (%d); upgrade "
                          "silica",
                          v, target);
        }
        if (v == target) return exec_sql(db, "COMMIT", err, errlen);
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
        if (exec_sql(db, migrations[v], err, errlen) != 0 || exec_sql(db, bump, err, errlen) != 0 ||
            exec_sql(db, "COMMIT", err, errlen) != 0) {
            exec_sql(db, "ROLLBACK", NULL, 0);
            return -1;
        }
    }
}

plat_t *plat_open(const char *data_dir, const plat_config_t *cfg, char *err, size_t errlen) {
    if (!data_dir || !*data_dir) {
        sl_err(err, errlen, "no data directory given");
        return NULL;
    }
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        sl_err(err, errlen, "cannot create data directory %s: %s", data_dir, strerror(errno));
        return NULL;
    }
    plat_t *p = calloc(1, sizeof *p);
    if (!p) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    if (cfg)
        p->cfg = *cfg;
    else
        plat_config_default(&p->cfg);
    pthread_mutex_init(&p->mu, NULL);
    p->nslots = 64;
    p->slots = calloc(p->nslots, sizeof *p->slots);
    char *path = NULL;
    if (!p->slots || asprintf(&path, "%s/silica.db", data_dir) < 0) {
        path = NULL;
        sl_err(err, errlen, "out of memory");
        goto fail;
    }
    /* The connection is used under p->mu only, so SQLite's own mutex is
     * not needed. */
    if (sqlite3_open_v2(path, &p->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        sl_err(err, errlen, "cannot open %s: %s", path, p->db ? sqlite3_errmsg(p->db) : "?");
        goto fail;
    }
    sqlite3_busy_timeout(p->db, 10000);
    if (exec_sql(p->db, "PRAGMA journal_mode = WAL", err, errlen) != 0) goto fail;
    if (exec_sql(p->db, p->cfg.sync_normal ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL",
                 err, errlen) != 0)
        goto fail;
    if (exec_sql(p->db, "PRAGMA foreign_keys = ON", err, errlen) != 0) goto fail;
    if (migrate(p->db, err, errlen) != 0) goto fail;
    free(path);
    return p;
fail:
    free(path);
    plat_close(p);
    return NULL;
}

void plat_close(plat_t *p) {
    if (!p) return;
    for (int i = 0; i < ST_N; i++) sqlite3_finalize(p->stmts[i]);
    if (p->db) sqlite3_close(p->db);
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
    while (*authorization == ' ' || *authorization == '\t') authorization++;
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
    while (*k == ' ' || *k == '\t') k++;
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
    sqlite3_stmt *s = plat_stmt(p, ST_KEY_LOOKUP, err, sizeof err);
    if (!s) return deny(st, 500, "server_error", "internal_error", "%s", err);
    sqlite3_bind_text(s, 1, hash, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            return deny(st, 500, "server_error", "internal_error", "ledger database: %s",
                        sqlite3_errmsg(p->db));
        return deny(st, 401, "invalid_request_error", "invalid_api_key",
                    "Incorrect API key provided: %.11s... is not a known key.", k);
    }
    row->key_id = sqlite3_column_int64(s, 0);
    row->account_id = sqlite3_column_int64(s, 1);
    int enabled = sqlite3_column_int(s, 2);
    int64_t expires = sqlite3_column_int64(s, 3);
    char status[16];
    snprintf(status, sizeof status, "%s", (const char *)sqlite3_column_text(s, 4));
    row->gift = sqlite3_column_int64(s, 5);
    row->charge = sqlite3_column_int64(s, 6);
    sqlite3_reset(s);
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

int plat_begin(plat_t *p, const char *authorization, const char *model,
               int64_t est_prompt_tokens, int64_t max_completion_tokens, plat_req_t **out,
               plat_status_t *st) {
    *out = NULL;
    if (!model || !*model || strlen(model) > 256)
        return deny(st, 400, "invalid_request_error", "invalid_model",
                    "The 'model' field is missing or too long.");
    est_prompt_tokens = clamp0(est_prompt_tokens);
    max_completion_tokens = clamp0(max_completion_tokens);
    char err[SL_ERR_MAX];
    pthread_mutex_lock(&p->mu);
    key_row_t row;
    int rc = authenticate(p, authorization, &row, st);
    if (rc != 0) goto out;

    plat_price_t price;
    bool priced;
    if (plat_price_get_locked(p, model, &price, &priced, err, sizeof err) != 0) {
        rc = deny(st, 500, "server_error", "internal_error", "%s", err);
        goto out;
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
        int64_t available = row.gift + row.charge - acct->reserved;
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
    if (plat_limits_get_locked(p, row.account_id, model, is_free, &lim, err, sizeof err) != 0) {
        rc = deny(st, 500, "server_error", "internal_error", "%s", err);
        goto out;
    }
    plat_slot_t *rl = slot_get(p, row.account_id, model);
    if (!rl) {
        rc = deny(st, 500, "server_error", "internal_error", "out of memory");
        goto out;
    }
    int64_t now = plat_now_ms(p);
    buckets_refresh(rl, &lim, now);
    int64_t tokens = est_prompt_tokens + max_completion_tokens;
    int worst_i = -1;
    double worst_wait_ms = 0;
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
    if (worst_i >= 0) {
        int retry = (int)SL_MIN(ceil(worst_wait_ms / 1000.0), 86400.0);
        if (retry < 1) retry = 1;
        rc = deny(st, 429, "rate_limit_error", "rate_limit_exceeded",
                  "Rate limit reached for %s: %" PRId64 " %s (%s). Retry after %d s.", model,
                  rl->b[worst_i].cap, limit_words[worst_i], limit_names[worst_i], retry);
        st->retry_after_s = retry;
        snprintf(st->limit, sizeof st->limit, "%s", limit_names[worst_i]);
        goto out;
    }

    plat_req_t *r = calloc(1, sizeof *r);
    unsigned char rnd[16];
    if (!r || !(r->model = sl_strdup(model)) || plat_random(rnd, sizeof rnd) != 0) {
        if (r) free(r->model);
        free(r);
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
    acct->reserved += est_cost;
    rl->b[PLAT_LIM_RPM].level -= rl->b[PLAT_LIM_RPM].cap ? 1 : 0;
    rl->b[PLAT_LIM_RPD].level -= rl->b[PLAT_LIM_RPD].cap ? 1 : 0;
    rl->b[PLAT_LIM_TPM].level -= rl->b[PLAT_LIM_TPM].cap ? (double)tokens : 0;
    rl->b[PLAT_LIM_TPD].level -= rl->b[PLAT_LIM_TPD].cap ? (double)tokens : 0;
    *out = r;
    status_ok(st);
    rc = 0;
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Locked. Gives back the reservation and `unused_tokens` (may be negative:
 * tokens used beyond the estimate are taken now); with whole_request the
 * request's RPM/RPD slot too. */
static void release(plat_t *p, plat_req_t *r, int64_t unused_tokens, bool whole_request) {
    plat_slot_t *acct = slot_find(p, r->account_id, "");
    if (acct) acct->reserved -= r->reserved;
    plat_slot_t *rl = slot_find(p, r->account_id, r->model);
    if (rl) {
        bucket_give(&rl->b[PLAT_LIM_TPM], (double)unused_tokens);
        bucket_give(&rl->b[PLAT_LIM_TPD], (double)unused_tokens);
        if (whole_request) {
            bucket_give(&rl->b[PLAT_LIM_RPM], 1);
            bucket_give(&rl->b[PLAT_LIM_RPD], 1);
        }
    }
}

static void req_free(plat_req_t *r) {
    if (!r) return;
    free(r->model);
    free(r);
}

void plat_abort(plat_t *p, plat_req_t *r) {
    if (!r) return;
    pthread_mutex_lock(&p->mu);
    release(p, r, r->est_tokens, true);
    pthread_mutex_unlock(&p->mu);
    req_free(r);
}

/* Locked: one transaction with the ledger row and the balance change. */
static int record(plat_t *p, plat_req_t *r, const plat_usage_t *u, int64_t cost, const char *status,
                  char *err, size_t errlen) {
    if (plat_tx_begin(p, err, errlen) != 0) return -1;
    sqlite3_stmt *s = plat_stmt(p, ST_ACCT_BAL, err, errlen);
    if (!s) goto fail;
    sqlite3_bind_int64(s, 1, r->account_id);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sl_err(err, errlen, "account %" PRId64 " vanished: %s", r->account_id,
               sqlite3_errmsg(p->db));
        sqlite3_reset(s);
        goto fail;
    }
    int64_t gift = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    /* Gift balance is spent first and never below zero; the rest is charged. */
    int64_t gift_spent = SL_MIN(cost, gift > 0 ? gift : 0);
    int64_t charge_spent = cost - gift_spent;

    s = plat_stmt(p, ST_ACCT_SPEND, err, errlen);
    if (!s) goto fail;
    sqlite3_bind_int64(s, 1, r->account_id);
    sqlite3_bind_int64(s, 2, gift_spent);
    sqlite3_bind_int64(s, 3, charge_spent);
    if (plat_step_done(p, s, err, errlen) != 0) goto fail;

    s = plat_stmt(p, ST_LEDGER_INSERT, err, errlen);
    if (!s) goto fail;
    sqlite3_bind_text(s, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, r->account_id);
    sqlite3_bind_int64(s, 3, r->key_id);
    sqlite3_bind_text(s, 4, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, u->prompt_tokens);
    sqlite3_bind_int64(s, 6, u->cached_tokens);
    sqlite3_bind_int64(s, 7, u->completion_tokens);
    sqlite3_bind_int64(s, 8, u->reasoning_tokens);
    sqlite3_bind_int64(s, 9, cost);
    sqlite3_bind_int64(s, 10, gift_spent);
    sqlite3_bind_int64(s, 11, charge_spent);
    sqlite3_bind_text(s, 12, status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 13, r->started_ms);
    sqlite3_bind_int64(s, 14, plat_now_ms(p));
    sqlite3_bind_int64(s, 15, u->ttft_ms);
    if (plat_step_done(p, s, err, errlen) != 0) goto fail;
    if (plat_tx_commit(p, err, errlen) != 0) goto fail;
    return 0;
fail:
    plat_tx_rollback(p);
    return -1;
}

int plat_finish(plat_t *p, plat_req_t *r, const plat_usage_t *u_in, const char *status) {
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
        rc = record(p, r, &u, cost, st, err, sizeof err);
        if (rc == 0) break;
    }
    if (rc != 0)
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
