/*
 * platform.h — accounts, API keys, model prices, balances, the usage ledger
 * and rate limits: what turns an inference server into a model cloud.
 *
 * Storage (db.h) is either one SQLite database in WAL mode at
 * DATA_DIR/silica.db, or a PostgreSQL database that several nodes (silica
 * processes, on any machines) share; both carry the same versioned
 * migrations. On SQLite one process serves requests (`silica admin` may
 * write the same database at the same time) and balance reservations live
 * in its memory. On PostgreSQL reservations are rows in the database,
 * checked and written in one transaction with the account row locked, so
 * the nodes together never hold more than a balance; each carries a lease
 * its node renews while the request runs, and a node that dies holds the
 * money at most cfg.lease_ms (its unfinished requests are not billed: no
 * node can say what they computed). Rate-limit buckets likewise live in
 * the process on SQLite and in rows shared by the nodes on PostgreSQL, or,
 * with cfg.redis_url, in Redis (either backend; rl_redis.h), each check
 * and take one atomic script on Redis's clock; while Redis is away each
 * node falls back to its own in-process buckets.
 *
 * Money is exact: every amount is an int64 count of micro-yuan (1e-6 yuan,
 * PLAT_MONEY_UNIT per yuan). Prices are micro-yuan per million tokens.
 *
 * The request path, as the HTTP server calls it:
 *
 *     plat_req_t *r; plat_status_t st;
 *     if (plat_begin(p, auth_header, model, prompt_tokens, max_tokens, &r, &st) != 0)
 *         -> reply st.http with {"error":{"message":st.message,"type":st.type,
 *            "code":st.code}} (+ "Retry-After: st.retry_after_s" on 429)
 *     ... run; send header "x-request-id: plat_req_id(r)" ...
 *     plat_finish(p, r, &usage, "ok" | "error" | "cancelled");   // frees r
 *
 * plat_begin authenticates the key, checks the account and model, reserves
 * the request's largest possible cost from the balance (403 when the balance
 * cannot cover it; free models need no balance) and takes the request and
 * its tokens from the rate-limit buckets (429 naming the limit). plat_finish
 * writes one ledger row and the balance change in one transaction and
 * releases the reservation. Every plat_begin that returns 0 must be matched by
 * exactly one plat_finish (or plat_abort when nothing ran at all).
 *
 * Billing rule: a request is billed for what was computed, whatever its
 * status — the prompt tokens actually prefilled (cached ones at the cached
 * price) plus the tokens actually generated. A request rejected before any
 * compute (plat_abort) costs nothing and leaves no ledger row.
 * A request whose process dies before plat_finish commits leaves no ledger
 * row and costs nothing.
 *
 * Threads: every function takes one internal mutex, so any thread may call
 * any function (the server's I/O thread begins, an engine thread may finish).
 */
#ifndef SILICA_PLATFORM_H
#define SILICA_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define PLAT_MONEY_UNIT INT64_C(1000000) /* micro-yuan per yuan */
#define PLAT_KEY_MAX 64           /* bytes for a key string incl. NUL */
#define PLAT_REQ_ID_MAX 40        /* bytes for a request id incl. NUL */
#define PLAT_MAX_KEYS_DEFAULT 100 /* plat_config_t.max_keys by default */
#define PLAT_LEASE_MS_DEFAULT 60000 /* plat_config_t.lease_ms by default */

/* Error codes beside -1 (which is "failed, see err"). */
#define PLAT_ELIMIT (-2)          /* a cap was reached (plat_key_create_capped) */
#define PLAT_ENOTFOUND (-3)       /* no such row for that account (plat_key_revoke) */
#define PLAT_EDUP (-4)            /* the batch request already has a result (plat_finish_item) */

/* The Files and Batch APIs' defaults (plat_config_t). The batch price
 * factor is in parts per million of the interactive price. */
#define PLAT_BATCH_FACTOR_DEFAULT INT64_C(500000)      /* 0.5: batch requests cost half */
#define PLAT_BATCH_FACTOR_MAX INT64_C(10000000)        /* 10 */
#define PLAT_MAX_FILE_DEFAULT ((int64_t)64 << 20)      /* bytes per uploaded file */
#define PLAT_MAX_ACCOUNT_FILES_DEFAULT ((int64_t)1 << 30) /* bytes of uploads per account */
#define PLAT_RETENTION_DEFAULT_S (30 * 86400) /* files and finished batches are kept 30 days */

typedef struct plat plat_t;
typedef struct plat_req plat_req_t;

/* Rate limits; 0 means unlimited. Per account per model. */
typedef struct plat_limits {
    int64_t rpm, tpm, rpd, tpd;
} plat_limits_t;

typedef struct plat_config {
    int64_t signup_gift;      /* gift credited to a new account (micro-yuan) */
    int64_t referral_gift;    /* gift to the referrer and to the new account each */
    plat_limits_t paid_limits;  /* default limits for priced models */
    plat_limits_t free_limits;  /* fixed limits for free models (price 0) */
    bool sync_normal;         /* PRAGMA synchronous=NORMAL instead of FULL */
    int64_t lease_ms;         /* PostgreSQL: how long a reservation outlives a node that
                                 stopped renewing it (died); 0 = PLAT_LEASE_MS_DEFAULT */
    int max_keys;             /* live keys an account may hold when it creates its own
                                 (plat_key_create_capped); 0 = no cap */
    int64_t batch_price_ppm;  /* batch requests' price: ppm of the interactive price
                                 (500000 = 0.5); 0 = free; outside 0..PLAT_BATCH_FACTOR_MAX
                                 the default */
    int64_t max_file_bytes;   /* largest uploaded file; <= 0 = PLAT_MAX_FILE_DEFAULT */
    int64_t max_account_file_bytes; /* an account's uploads together; <= 0 = the default */
    /* Retention (seconds; 0 = keep forever; < 0 = PLAT_RETENTION_DEFAULT_S):
     * a file is deleted file_retention_s after its upload (or, for a
     * batch's output, its writing) unless a batch that is not finished
     * reads it; a finished batch (its object and requests) batch_retention_s
     * after it ended. The runner deletes them in bounded chunks. */
    int64_t file_retention_s;
    int64_t batch_retention_s;
    /* Rate-limit buckets in Redis, shared by every node using the same
     * server (redis://[[user]:pass@]host[:port][/db] or unix:///path.sock);
     * NULL = in the process (SQLite) or in rate_buckets rows (PostgreSQL).
     * While Redis is unreachable each node limits by itself (see
     * docs/platform.md). */
    const char *redis_url;
    /* Clock in unix milliseconds; NULL = the real clock. Tests inject one. */
    int64_t (*clock_ms)(void *ctx);
    void *clock_ctx;
} plat_config_t;

/* The defaults: 14 yuan sign-up gift, 14 yuan referral gift each side,
 * paid models 1000 RPM / 1M TPM, free models 100 RPM / 100k TPM, 100 live
 * keys per account through self-service. */
void plat_config_default(plat_config_t *cfg);

/* Result of a request-path call, shaped for an OpenAI error body. */
typedef struct plat_status {
    int http;               /* 200, 401, 403, 404, 429, 500 */
    char type[40];          /* OpenAI error type, e.g. "authentication_error" */
    char code[40];          /* e.g. "invalid_api_key", "insufficient_quota", "rate_limit_exceeded" */
    char message[320];      /* what happened and what to change */
    int retry_after_s;      /* > 0 on 429 */
    char limit[8];          /* on 429: "rpm", "tpm", "rpd" or "tpd" */
    char param[48];         /* the request field at fault, "" = none */
} plat_status_t;

typedef struct plat_usage {
    int64_t prompt_tokens;     /* prompt tokens actually prefilled, cached included */
    int64_t cached_tokens;     /* of prompt_tokens, those served from the prefix cache */
    int64_t completion_tokens; /* tokens generated, reasoning included */
    int64_t reasoning_tokens;  /* of completion_tokens, those inside <think> */
    int64_t ttft_ms;           /* time to first token; -1 unknown */
} plat_usage_t;

/* Opens the store and migrates it to the current schema: `where` is a data
 * directory (DIR/silica.db, SQLite, created when missing) or a PostgreSQL
 * URL (postgresql://... or postgres://..., see plat_is_db_url). cfg may be
 * NULL for the defaults. Free with plat_close. */
plat_t *plat_open(const char *where, const plat_config_t *cfg, char *err, size_t errlen);
/* The platform's Prometheus lines for GET /metrics (the Redis rate-limit
 * store's state when one is configured): a heap string the caller frees,
 * "" when there is nothing to report, NULL when out of memory. */
char *plat_metrics_text(plat_t *p);

/* True when `where` is a PostgreSQL URL rather than a data directory. */
bool plat_is_db_url(const char *where);
void plat_close(plat_t *p);

/* ---- request path ---- */

/* authorization: the "Authorization" header value ("Bearer sk-..."), or NULL
 * when absent. On success returns 0 and *out is a request the caller owns
 * until plat_finish/plat_abort. On refusal returns -1 and fills *st. */
int plat_begin(plat_t *p, const char *authorization, const char *model,
               int64_t est_prompt_tokens, int64_t max_completion_tokens, plat_req_t **out,
               plat_status_t *st);

/* Records usage (see the billing rule above), releases the reservation and
 * the rate-limit tokens not used, frees r. status: "ok", "error",
 * "cancelled" (any short word is kept). Returns 0, or -1 when the ledger
 * could not be written (logged; r is freed either way). */
int plat_finish(plat_t *p, plat_req_t *r, const plat_usage_t *u, const char *status);

/* A request of a batch (batch.c's runner) for account_id, made with key_id
 * when the batch was created: no key is checked (the batch was
 * authorized when created) but the account must still be normal and its
 * balance cover the request; the interactive rate limits are not drawn
 * from; the price is the model's times cfg.batch_price_ppm; the ledger row
 * carries batch_id. Finished with plat_finish_item (or plat_abort). */
int plat_begin_batch(plat_t *p, int64_t account_id, int64_t key_id, const char *batch_id,
                     const char *model, int64_t est_prompt_tokens, int64_t max_completion_tokens,
                     plat_req_t **out, plat_status_t *st);

/* A batch request's result line, recorded in the commit of its ledger row. */
typedef struct plat_item_result {
    int64_t line;       /* the batch_items row (batch: the request's batch_id) */
    bool failed;        /* goes to the error file */
    const char *result; /* the JSONL line, without its newline */
} plat_item_result_t;

/* plat_finish, and with item the result of a batch's request in the same
 * transaction. PLAT_EDUP (nothing recorded, nothing billed) when the
 * request already has a result. Frees r. */
int plat_finish_item(plat_t *p, plat_req_t *r, const plat_usage_t *u, const char *status,
                     const plat_item_result_t *item);

/* price * ppm / 1e6 rounded up (saturating): a price at a factor. */
int64_t plat_price_scale(int64_t price, int64_t ppm);

/* Gives back everything plat_begin took; no ledger row. Frees r. */
void plat_abort(plat_t *p, plat_req_t *r);

const char *plat_req_id(const plat_req_t *r);   /* "req-" + 32 hex; valid until finish */
int64_t plat_req_account(const plat_req_t *r);
int64_t plat_req_key(const plat_req_t *r);

/* Authenticates without a model (e.g. GET /v1/user/info): 0 and
 * *account_id, or -1 with a 401/403 in *st. */
int plat_auth(plat_t *p, const char *authorization, int64_t *account_id, int64_t *key_id,
              plat_status_t *st);

/* GET /v1/user/info body, the hosted platform's shape:
 * {"code":20000,"message":"OK","status":true,"data":{"id","name","image",
 *  "email","isAdmin","balance","status","introduction","role",
 *  "chargeBalance","totalBalance"}} with money as decimal yuan strings.
 * Returns a heap string the caller frees, NULL on error. */
char *plat_user_info_json(plat_t *p, int64_t account_id, char *err, size_t errlen);

/* ---- stored responses (POST /v1/responses with store) ---- */

/* Retention: a stored response is kept PLAT_RESP_DAYS days; an account
 * keeps at most PLAT_RESP_PER_ACCOUNT of them (the oldest go first) and
 * each is at most PLAT_RESP_MAX_BYTES of JSON text. Expired rows of the
 * account are removed when it stores another one, and never returned. */
#define PLAT_RESP_DAYS 30
#define PLAT_RESP_PER_ACCOUNT 10000
#define PLAT_RESP_MAX_BYTES ((size_t)16 << 20)

/* Stores (or replaces) the JSON text of response `id` for account_id.
 * 0, or -1 (too large, database error) with a message. */
int plat_resp_put(plat_t *p, int64_t account_id, const char *id, const char *text, size_t len, char *err,
                  size_t errlen);
/* 0 and *text (heap, NUL-terminated, caller frees) when account_id has a
 * live response `id`; 1 when it has none (unknown, expired or another
 * account's); -1 on a database error. */
int plat_resp_get(plat_t *p, int64_t account_id, const char *id, char **text, char *err, size_t errlen);
/* 0 deleted, 1 not there (as plat_resp_get), -1 error. */
int plat_resp_delete(plat_t *p, int64_t account_id, const char *id, char *err, size_t errlen);

/* ---- administration (also used by `silica admin`) ---- */

typedef struct plat_account {
    int64_t id;
    char name[128];
    char status[16];          /* "normal" or "disabled" */
    int64_t gift_balance;     /* micro-yuan; spent first */
    int64_t charge_balance;   /* micro-yuan; may go below 0 only by a usage larger than estimated */
    int64_t referrer_id;      /* 0 none */
    int64_t created_at_ms;
} plat_account_t;

/* Creates an account credited with the sign-up gift; with referrer_id > 0
 * both accounts get the referral gift. Returns 0 and *id. */
int plat_account_create(plat_t *p, const char *name, int64_t referrer_id, int64_t *id, char *err,
                        size_t errlen);
int plat_account_get(plat_t *p, int64_t id, plat_account_t *out, char *err, size_t errlen);
/* Adds gift and/or charged balance (may be negative for corrections); one
 * credits row. note may be NULL. */
int plat_account_credit(plat_t *p, int64_t id, int64_t gift, int64_t charge, const char *note,
                        char *err, size_t errlen);
int plat_account_set_status(plat_t *p, int64_t id, const char *status, char *err, size_t errlen);
/* Calls fn for each account in id order; fn returns nonzero to stop. */
int plat_account_each(plat_t *p, int (*fn)(const plat_account_t *, void *), void *ctx, char *err,
                      size_t errlen);

typedef struct plat_key_info {
    int64_t id, account_id;
    char name[128];
    char prefix[16];          /* "sk-" + first 8 characters */
    bool enabled;
    int64_t expires_at_ms;    /* 0 never */
    int64_t created_at_ms;
} plat_key_info_t;

/* Creates a key; key_out (PLAT_KEY_MAX bytes) receives the secret, which is
 * never stored and cannot be shown again. expires_at_ms 0 = never. */
int plat_key_create(plat_t *p, int64_t account_id, const char *name, int64_t expires_at_ms,
                    char key_out[PLAT_KEY_MAX], int64_t *key_id, char *err, size_t errlen);
/* As plat_key_create, for an account making its own key: the account's
 * live keys (enabled and not expired) are counted and the key inserted in
 * one transaction, and PLAT_ELIMIT (with a message) is returned when the
 * account already holds cfg.max_keys of them. */
int plat_key_create_capped(plat_t *p, int64_t account_id, const char *name, int64_t expires_at_ms,
                           char key_out[PLAT_KEY_MAX], int64_t *key_id, char *err, size_t errlen);
/* Revokes key_id (disables it; the row stays for the ledger). account_id
 * 0: any account (the operator); otherwise only a key of that account, in
 * the same statement, so another account's key is PLAT_ENOTFOUND exactly as
 * a key that does not exist. Revoking a revoked key succeeds and keeps its
 * first revocation time. */
int plat_key_revoke(plat_t *p, int64_t account_id, int64_t key_id, char *err, size_t errlen);
/* account_id 0 = every account. */
int plat_key_each(plat_t *p, int64_t account_id, int (*fn)(const plat_key_info_t *, void *),
                  void *ctx, char *err, size_t errlen);

typedef struct plat_price {
    int64_t input, cached_input, output; /* micro-yuan per million tokens */
} plat_price_t;

int plat_price_set(plat_t *p, const char *model, const plat_price_t *price, char *err,
                   size_t errlen);
/* A model with no price row is free (price 0). Returns 0; *found says which. */
int plat_price_get(plat_t *p, const char *model, plat_price_t *out, bool *found, char *err,
                   size_t errlen);
int plat_price_each(plat_t *p, int (*fn)(const char *model, const plat_price_t *, void *),
                    void *ctx, char *err, size_t errlen);

/* Limits for (account, model); account_id 0 = every account, model "*" =
 * every model. The most specific row wins: (acct, model), (acct, *),
 * (0, model), (0, *), then the config's paid/free defaults. */
int plat_limits_set(plat_t *p, int64_t account_id, const char *model, const plat_limits_t *l,
                    char *err, size_t errlen);
int plat_limits_get(plat_t *p, int64_t account_id, const char *model, plat_limits_t *out,
                    char *err, size_t errlen);

/* Cost in micro-yuan of a usage at a price: ceil(sum(tokens * price) / 1e6),
 * with cached tokens at the cached price. Exact integer arithmetic. */
int64_t plat_cost(const plat_price_t *price, const plat_usage_t *u);

/* Usage report, grouped by "day", "model", "key", "account", "status" or
 * "request" (one row per ledger entry); comma lists allowed: "day,model"; for one account (0 = all) and a [from, to) time range in
 * unix ms (0 = unbounded). format: "csv", "table" or "json". Appends to out. */
typedef struct plat_report_opts {
    const char *group_by;
    int64_t account_id;
    int64_t from_ms, to_ms;
    const char *format;
} plat_report_opts_t;
int plat_usage_report(plat_t *p, const plat_report_opts_t *o, sl_buf_t *out, char *err,
                      size_t errlen);

/* On a data dir with no account: creates account "admin" and key "default"
 * and copies the key into key_out; *created = true. Otherwise *created =
 * false and nothing changes. */
int plat_bootstrap_if_empty(plat_t *p, char key_out[PLAT_KEY_MAX], bool *created, char *err,
                            size_t errlen);

/* Checks the books: for every account, gift and charged balances equal
 * their credits minus their ledger spending. 0 when they all agree, else -1
 * naming the first account that does not. */
int plat_verify(plat_t *p, char *err, size_t errlen);

/* Money text: "14", "0.5", "-3.000001" <-> micro-yuan. parse returns 0 or -1
 * (more than 6 decimals, overflow, junk). format writes at least 2 decimals
 * ("14.00", "0.000125") into buf (>= 32 bytes). */
int plat_money_parse(const char *s, int64_t *out);
void plat_money_format(int64_t micro, char *buf, size_t cap);

#endif
