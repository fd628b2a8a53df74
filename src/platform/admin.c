/*
 * admin.c — accounts, API keys, prices and limits: the operator's side of
 * the platform (used by `silica admin` and by the server at first start).
 *
 * Every balance change other than usage is a row in `credits`, so at all
 * times, per account:
 *     gift_balance   = sum(credits.gift)   - sum(usage_ledger.gift_spent)
 *     charge_balance = sum(credits.charge) - sum(usage_ledger.charge_spent)
 * plat_verify checks exactly this. All SQL binds its values.
 */
#include "platform/plat_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* Prepares a one-off statement. */
static sqlite3_stmt *prep(plat_t *p, const char *sql, char *err, size_t errlen) {
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(p->db, sql, -1, &s, NULL) != SQLITE_OK) {
        sl_err(err, errlen, "sqlite prepare: %s", sqlite3_errmsg(p->db));
        return NULL;
    }
    return s;
}

/* Runs a one-off statement to the end and finalizes it. */
static int run_done(plat_t *p, sqlite3_stmt *s, char *err, size_t errlen) {
    int rc = plat_step_done(p, s, err, errlen);
    sqlite3_finalize(s);
    return rc;
}

/* How a walk over a statement's rows ended: at a row (the caller stopped
 * it) or at the end is success; any other step result is an sqlite error. */
static int rows_end(plat_t *p, int step, char *err, size_t errlen) {
    if (step == SQLITE_ROW || step == SQLITE_DONE) return 0;
    return sl_err(err, errlen, "sqlite: %s", sqlite3_errmsg(p->db));
}

static int add_credit(plat_t *p, int64_t account, const char *kind, int64_t gift, int64_t charge,
                      const char *note, char *err, size_t errlen) {
    sqlite3_stmt *s = prep(p,
                           "INSERT INTO credits (account_id, kind, gift, charge, note, created_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           err, errlen);
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, account);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, gift);
    sqlite3_bind_int64(s, 4, charge);
    sqlite3_bind_text(s, 5, note ? note : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 6, plat_now_ms(p));
    if (run_done(p, s, err, errlen) != 0) return -1;
    s = prep(p,
             "UPDATE accounts SET gift_balance = gift_balance + ?2, "
             "charge_balance = charge_balance + ?3 WHERE id = ?1",
             err, errlen);
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, account);
    sqlite3_bind_int64(s, 2, gift);
    sqlite3_bind_int64(s, 3, charge);
    if (run_done(p, s, err, errlen) != 0) return -1;
    if (sqlite3_changes(p->db) != 1)
        return sl_err(err, errlen, "no account %" PRId64, account);
    return 0;
}

/* ---- accounts ---- */

static bool account_exists(plat_t *p, int64_t id) {
    sqlite3_stmt *s = prep(p, "SELECT 1 FROM accounts WHERE id = ?1", NULL, 0);
    if (!s) return false;
    sqlite3_bind_int64(s, 1, id);
    bool found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return found;
}

int plat_account_create_locked(plat_t *p, const char *name, int64_t referrer_id, int64_t *id,
                               char *err, size_t errlen) {
    if (!name || !*name || strlen(name) >= sizeof(((plat_account_t *)0)->name))
        return sl_err(err, errlen, "an account needs a name of 1 to 127 bytes");
    if (plat_tx_begin(p, err, errlen) != 0) return -1;
    if (referrer_id > 0 && !account_exists(p, referrer_id)) {
        sl_err(err, errlen, "referrer account %" PRId64 " does not exist", referrer_id);
        goto fail;
    }
    sqlite3_stmt *s = prep(p,
                           "INSERT INTO accounts (name, referrer_id, created_at) "
                           "VALUES (?1, ?2, ?3)",
                           err, errlen);
    if (!s) goto fail;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
    if (referrer_id > 0)
        sqlite3_bind_int64(s, 2, referrer_id);
    else
        sqlite3_bind_null(s, 2);
    sqlite3_bind_int64(s, 3, plat_now_ms(p));
    if (run_done(p, s, err, errlen) != 0) goto fail;
    int64_t new_id = sqlite3_last_insert_rowid(p->db);
    if (p->cfg.signup_gift != 0 &&
        add_credit(p, new_id, "signup", p->cfg.signup_gift, 0, "sign-up gift", err, errlen) != 0)
        goto fail;
    if (referrer_id > 0 && p->cfg.referral_gift != 0) {
        char note[64];
        snprintf(note, sizeof note, "referred account %" PRId64, new_id);
        if (add_credit(p, referrer_id, "referral", p->cfg.referral_gift, 0, note, err, errlen) != 0)
            goto fail;
        snprintf(note, sizeof note, "referred by account %" PRId64, referrer_id);
        if (add_credit(p, new_id, "referral", p->cfg.referral_gift, 0, note, err, errlen) != 0)
            goto fail;
    }
    if (plat_tx_commit(p, err, errlen) != 0) goto fail;
    if (id) *id = new_id;
    return 0;
fail:
    plat_tx_rollback(p);
    return -1;
}

int plat_account_create(plat_t *p, const char *name, int64_t referrer_id, int64_t *id, char *err,
                        size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = plat_account_create_locked(p, name, referrer_id, id, err, errlen);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static void account_from_row(sqlite3_stmt *s, plat_account_t *a) {
    memset(a, 0, sizeof *a);
    a->id = sqlite3_column_int64(s, 0);
    snprintf(a->name, sizeof a->name, "%s", (const char *)sqlite3_column_text(s, 1));
    snprintf(a->status, sizeof a->status, "%s", (const char *)sqlite3_column_text(s, 2));
    a->gift_balance = sqlite3_column_int64(s, 3);
    a->charge_balance = sqlite3_column_int64(s, 4);
    a->referrer_id = sqlite3_column_int64(s, 5);
    a->created_at_ms = sqlite3_column_int64(s, 6);
}

#define ACCOUNT_COLS "id, name, status, gift_balance, charge_balance, ifnull(referrer_id, 0), created_at"

int plat_account_get(plat_t *p, int64_t id, plat_account_t *out, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    sqlite3_stmt *s = prep(p, "SELECT " ACCOUNT_COLS " FROM accounts WHERE id = ?1", err, errlen);
    if (s) {
        sqlite3_bind_int64(s, 1, id);
        int step = sqlite3_step(s);
        if (step == SQLITE_ROW) {
            account_from_row(s, out);
            rc = 0;
        } else if (step == SQLITE_DONE) {
            sl_err(err, errlen, "no account %" PRId64, id);
        } else {
            sl_err(err, errlen, "sqlite: %s", sqlite3_errmsg(p->db));
        }
        sqlite3_finalize(s);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_account_each(plat_t *p, int (*fn)(const plat_account_t *, void *), void *ctx, char *err,
                      size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    sqlite3_stmt *s = prep(p, "SELECT " ACCOUNT_COLS " FROM accounts ORDER BY id", err, errlen);
    if (s) {
        int step;
        plat_account_t a;
        while ((step = sqlite3_step(s)) == SQLITE_ROW) {
            account_from_row(s, &a);
            if (fn(&a, ctx)) break;
        }
        rc = rows_end(p, step, err, errlen);
        sqlite3_finalize(s);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Largest single credit: one billion yuan. Keeps every balance far from
 * int64 overflow (SQLite would silently turn an overflowing sum into REAL). */
#define CREDIT_MAX (INT64_C(1000000000) * PLAT_MONEY_UNIT)

int plat_account_credit(plat_t *p, int64_t id, int64_t gift, int64_t charge, const char *note,
                        char *err, size_t errlen) {
    if (gift > CREDIT_MAX || gift < -CREDIT_MAX || charge > CREDIT_MAX || charge < -CREDIT_MAX)
        return sl_err(err, errlen, "a single credit is at most 1000000000 yuan");
    pthread_mutex_lock(&p->mu);
    int rc = plat_tx_begin(p, err, errlen);
    if (rc == 0) rc = add_credit(p, id, "credit", gift, charge, note, err, errlen);
    if (rc == 0) rc = plat_tx_commit(p, err, errlen);
    if (rc != 0) plat_tx_rollback(p);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_account_set_status(plat_t *p, int64_t id, const char *status, char *err, size_t errlen) {
    if (!status || (strcmp(status, "normal") != 0 && strcmp(status, "disabled") != 0))
        return sl_err(err, errlen, "account status is 'normal' or 'disabled'");
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    sqlite3_stmt *s = prep(p, "UPDATE accounts SET status = ?2 WHERE id = ?1", err, errlen);
    if (s) {
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_text(s, 2, status, -1, SQLITE_STATIC);
        rc = run_done(p, s, err, errlen);
        if (rc == 0 && sqlite3_changes(p->db) != 1)
            rc = sl_err(err, errlen, "no account %" PRId64, id);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* ---- keys ---- */

int plat_key_create_locked(plat_t *p, int64_t account_id, const char *name,
                           int64_t expires_at_ms, char key_out[PLAT_KEY_MAX], int64_t *key_id,
                           char *err, size_t errlen) {
    if (!name) name = "";
    if (strlen(name) >= sizeof(((plat_key_info_t *)0)->name))
        return sl_err(err, errlen, "key name longer than 127 bytes");
    if (!account_exists(p, account_id))
        return sl_err(err, errlen, "no account %" PRId64, account_id);
    /* 48 characters of base62 by rejection sampling (bytes >= 248 are
     * dropped so every character is equally likely): ~285 bits. */
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    char key[PLAT_KEY_MAX];
    memcpy(key, "sk-", 3);
    size_t n = 3;
    unsigned char rnd[64];
    while (n < 3 + 48) {
        if (plat_random(rnd, sizeof rnd) != 0) return sl_err(err, errlen, "no randomness");
        for (size_t i = 0; i < sizeof rnd && n < 3 + 48; i++)
            if (rnd[i] < 248) key[n++] = alphabet[rnd[i] % 62];
    }
    key[n] = '\0';
    OPENSSL_cleanse(rnd, sizeof rnd);
    char hash[65], prefix[16];
    if (plat_sha256_hex(key, hash) != 0) return sl_err(err, errlen, "hashing failed");
    snprintf(prefix, sizeof prefix, "%.11s", key);
    sqlite3_stmt *s = prep(p,
                           "INSERT INTO api_keys (account_id, name, prefix, hash, expires_at, "
                           "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           err, errlen);
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, account_id);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, prefix, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 4, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 5, expires_at_ms > 0 ? expires_at_ms : 0);
    sqlite3_bind_int64(s, 6, plat_now_ms(p));
    if (run_done(p, s, err, errlen) != 0) {
        OPENSSL_cleanse(key, sizeof key);
        return -1;
    }
    if (key_id) *key_id = sqlite3_last_insert_rowid(p->db);
    memcpy(key_out, key, n + 1);
    OPENSSL_cleanse(key, sizeof key);
    return 0;
}

int plat_key_create(plat_t *p, int64_t account_id, const char *name, int64_t expires_at_ms,
                    char key_out[PLAT_KEY_MAX], int64_t *key_id, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = plat_key_create_locked(p, account_id, name, expires_at_ms, key_out, key_id, err,
                                    errlen);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_key_create_capped(plat_t *p, int64_t account_id, const char *name, int64_t expires_at_ms,
                           char key_out[PLAT_KEY_MAX], int64_t *key_id, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    /* BEGIN IMMEDIATE: the count and the insert see and write one state,
     * also against `silica admin` in another process */
    int rc = plat_tx_begin(p, err, errlen);
    if (rc != 0) goto out;
    if (p->cfg.max_keys > 0) {
        sqlite3_stmt *s = prep(p,
                               "SELECT count(*) FROM api_keys WHERE account_id = ?1 AND enabled = 1 "
                               "AND (expires_at = 0 OR expires_at > ?2)",
                               err, errlen);
        if (!s) {
            rc = -1;
            goto out;
        }
        sqlite3_bind_int64(s, 1, account_id);
        sqlite3_bind_int64(s, 2, plat_now_ms(p));
        int step = sqlite3_step(s);
        const int64_t live = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
        sqlite3_finalize(s);
        if (live < 0) {
            rc = sl_err(err, errlen, "sqlite: %s", sqlite3_errmsg(p->db));
            goto out;
        }
        if (live >= p->cfg.max_keys) {
            sl_err(err, errlen,
                   "the account already has %" PRId64 " active API keys, the most allowed is %d; "
                   "revoke one before creating another",
                   live, p->cfg.max_keys);
            rc = PLAT_ELIMIT;
            goto out;
        }
    }
    rc = plat_key_create_locked(p, account_id, name, expires_at_ms, key_out, key_id, err, errlen);
    if (rc == 0) rc = plat_tx_commit(p, err, errlen);
out:
    if (rc != 0) {
        plat_tx_rollback(p);
        OPENSSL_cleanse(key_out, PLAT_KEY_MAX); /* a key that was not stored is no key */
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_key_revoke(plat_t *p, int64_t account_id, int64_t key_id, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    /* the owner is part of the WHERE: checking it and revoking are one step */
    sqlite3_stmt *s = prep(p,
                           "UPDATE api_keys SET enabled = 0, "
                           "revoked_at = CASE WHEN enabled = 1 THEN ?2 ELSE revoked_at END "
                           "WHERE id = ?1 AND (?3 = 0 OR account_id = ?3)",
                           err, errlen);
    if (s) {
        sqlite3_bind_int64(s, 1, key_id);
        sqlite3_bind_int64(s, 2, plat_now_ms(p));
        sqlite3_bind_int64(s, 3, account_id);
        rc = run_done(p, s, err, errlen);
        if (rc == 0 && sqlite3_changes(p->db) != 1) {
            sl_err(err, errlen, "no key %" PRId64, key_id);
            rc = PLAT_ENOTFOUND;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_key_each(plat_t *p, int64_t account_id, int (*fn)(const plat_key_info_t *, void *),
                  void *ctx, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    sqlite3_stmt *s = prep(p,
                           "SELECT id, account_id, name, prefix, enabled, expires_at, created_at "
                           "FROM api_keys WHERE ?1 = 0 OR account_id = ?1 ORDER BY id",
                           err, errlen);
    if (s) {
        sqlite3_bind_int64(s, 1, account_id);
        int step;
        while ((step = sqlite3_step(s)) == SQLITE_ROW) {
            plat_key_info_t k;
            memset(&k, 0, sizeof k);
            k.id = sqlite3_column_int64(s, 0);
            k.account_id = sqlite3_column_int64(s, 1);
            snprintf(k.name, sizeof k.name, "%s", (const char *)sqlite3_column_text(s, 2));
            snprintf(k.prefix, sizeof k.prefix, "%s", (const char *)sqlite3_column_text(s, 3));
            k.enabled = sqlite3_column_int(s, 4) != 0;
            k.expires_at_ms = sqlite3_column_int64(s, 5);
            k.created_at_ms = sqlite3_column_int64(s, 6);
            if (fn(&k, ctx)) break;
        }
        rc = rows_end(p, step, err, errlen);
        sqlite3_finalize(s);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* ---- prices ---- */

static bool model_name_ok(const char *m) {
    return m && *m && strlen(m) <= 256;
}

int plat_price_set(plat_t *p, const char *model, const plat_price_t *pr, char *err,
                   size_t errlen) {
    if (!model_name_ok(model) || !strcmp(model, "*"))
        return sl_err(err, errlen, "a price needs a model name of 1 to 256 bytes");
    if (pr->input < 0 || pr->cached_input < 0 || pr->output < 0)
        return sl_err(err, errlen, "prices cannot be negative");
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    sqlite3_stmt *s = prep(p,
                           "INSERT INTO model_prices (model, input, cached_input, output, "
                           "updated_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(model) DO UPDATE "
                           "SET input = ?2, cached_input = ?3, output = ?4, updated_at = ?5",
                           err, errlen);
    if (s) {
        sqlite3_bind_text(s, 1, model, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 2, pr->input);
        sqlite3_bind_int64(s, 3, pr->cached_input);
        sqlite3_bind_int64(s, 4, pr->output);
        sqlite3_bind_int64(s, 5, plat_now_ms(p));
        rc = run_done(p, s, err, errlen);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_price_get_locked(plat_t *p, const char *model, plat_price_t *out, bool *found,
                          char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    *found = false;
    sqlite3_stmt *s = plat_stmt(p, ST_PRICE_GET, err, errlen);
    if (!s) return -1;
    sqlite3_bind_text(s, 1, model, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        out->input = sqlite3_column_int64(s, 0);
        out->cached_input = sqlite3_column_int64(s, 1);
        out->output = sqlite3_column_int64(s, 2);
        *found = true;
    }
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sl_err(err, errlen, "sqlite: %s", sqlite3_errmsg(p->db));
    return 0;
}

int plat_price_get(plat_t *p, const char *model, plat_price_t *out, bool *found, char *err,
                   size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = plat_price_get_locked(p, model, out, found, err, errlen);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_price_each(plat_t *p, int (*fn)(const char *model, const plat_price_t *, void *),
                    void *ctx, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    sqlite3_stmt *s = prep(p, "SELECT model, input, cached_input, output FROM model_prices "
                              "ORDER BY model",
                           err, errlen);
    if (s) {
        int step;
        while ((step = sqlite3_step(s)) == SQLITE_ROW) {
            plat_price_t pr = {sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2),
                               sqlite3_column_int64(s, 3)};
            if (fn((const char *)sqlite3_column_text(s, 0), &pr, ctx)) break;
        }
        rc = rows_end(p, step, err, errlen);
        sqlite3_finalize(s);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* ---- limits ---- */

int plat_limits_set(plat_t *p, int64_t account_id, const char *model, const plat_limits_t *l,
                    char *err, size_t errlen) {
    if (!model_name_ok(model)) return sl_err(err, errlen, "limits need a model name or '*'");
    if (account_id < 0 || l->rpm < 0 || l->tpm < 0 || l->rpd < 0 || l->tpd < 0)
        return sl_err(err, errlen, "limits cannot be negative (0 means unlimited)");
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    if (account_id > 0 && !account_exists(p, account_id)) {
        rc = sl_err(err, errlen, "no account %" PRId64, account_id);
    } else {
        sqlite3_stmt *s = prep(p,
                               "INSERT INTO rate_limits (account_id, model, rpm, tpm, rpd, tpd) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(account_id, model) DO "
                               "UPDATE SET rpm = ?3, tpm = ?4, rpd = ?5, tpd = ?6",
                               err, errlen);
        if (s) {
            sqlite3_bind_int64(s, 1, account_id);
            sqlite3_bind_text(s, 2, model, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(s, 3, l->rpm);
            sqlite3_bind_int64(s, 4, l->tpm);
            sqlite3_bind_int64(s, 5, l->rpd);
            sqlite3_bind_int64(s, 6, l->tpd);
            rc = run_done(p, s, err, errlen);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_limits_get_locked(plat_t *p, int64_t account_id, const char *model, bool is_free,
                           plat_limits_t *out, char *err, size_t errlen) {
    sqlite3_stmt *s = plat_stmt(p, ST_LIMITS_GET, err, errlen);
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, account_id);
    sqlite3_bind_text(s, 2, model, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        out->rpm = sqlite3_column_int64(s, 0);
        out->tpm = sqlite3_column_int64(s, 1);
        out->rpd = sqlite3_column_int64(s, 2);
        out->tpd = sqlite3_column_int64(s, 3);
    } else {
        *out = is_free ? p->cfg.free_limits : p->cfg.paid_limits;
    }
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sl_err(err, errlen, "sqlite: %s", sqlite3_errmsg(p->db));
    return 0;
}

int plat_limits_get(plat_t *p, int64_t account_id, const char *model, plat_limits_t *out,
                    char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    plat_price_t pr;
    bool found;
    int rc = plat_price_get_locked(p, model, &pr, &found, err, errlen);
    if (rc == 0)
        rc = plat_limits_get_locked(p, account_id, model,
                                    pr.input == 0 && pr.cached_input == 0 && pr.output == 0, out,
                                    err, errlen);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* ---- bootstrap and verification ---- */

int plat_bootstrap_if_empty(plat_t *p, char key_out[PLAT_KEY_MAX], bool *created, char *err,
                            size_t errlen) {
    *created = false;
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    sqlite3_stmt *s = prep(p, "SELECT count(*) FROM accounts", err, errlen);
    if (s) {
        int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
        sqlite3_finalize(s);
        if (n < 0) {
            rc = sl_err(err, errlen, "sqlite: %s", sqlite3_errmsg(p->db));
        } else if (n > 0) {
            rc = 0;
        } else {
            int64_t id;
            rc = plat_account_create_locked(p, "admin", 0, &id, err, errlen);
            if (rc == 0) rc = plat_key_create_locked(p, id, "default", 0, key_out, NULL, err, errlen);
            if (rc == 0) *created = true;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_verify(plat_t *p, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    sqlite3_stmt *s = prep(
        p,
        "SELECT a.id, a.gift_balance, a.charge_balance, "
        "  (SELECT ifnull(sum(gift), 0) FROM credits c WHERE c.account_id = a.id) - "
        "  (SELECT ifnull(sum(gift_spent), 0) FROM usage_ledger u WHERE u.account_id = a.id), "
        "  (SELECT ifnull(sum(charge), 0) FROM credits c WHERE c.account_id = a.id) - "
        "  (SELECT ifnull(sum(charge_spent), 0) FROM usage_ledger u WHERE u.account_id = a.id), "
        "  (SELECT count(*) FROM usage_ledger u WHERE u.account_id = a.id AND "
        "     u.cost != u.gift_spent + u.charge_spent) "
        "FROM accounts a ORDER BY a.id",
        err, errlen);
    if (s) {
        int step;
        rc = 0;
        while ((step = sqlite3_step(s)) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(s, 0);
            int64_t g = sqlite3_column_int64(s, 1), c = sqlite3_column_int64(s, 2);
            int64_t g2 = sqlite3_column_int64(s, 3), c2 = sqlite3_column_int64(s, 4);
            int64_t bad = sqlite3_column_int64(s, 5);
            if (g != g2 || c != c2 || bad != 0) {
                rc = sl_err(err, errlen,
                            "account %" PRId64 ": balances gift %" PRId64 " charge %" PRId64
                            " but credits - ledger give gift %" PRId64 " charge %" PRId64
                            " (%" PRId64 " rows with cost != gift + charge)",
                            id, g, c, g2, c2, bad);
                break;
            }
        }
        if (rc == 0) rc = rows_end(p, step, err, errlen);
        sqlite3_finalize(s);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}
