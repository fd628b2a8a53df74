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

/* Runs table statement `which`, whose parameters are the n int64 values
 * v (?1..?n), to the end; *changes (may be NULL) gets the rows it changed. */
static int exec_ints(plat_t *p, int which, const int64_t *v, int n, int64_t *changes, char *err,
                     size_t errlen) {
    db_stmt_t *s = db_stmt(p->db, which, err, errlen);
    if (!s) return -1;
    for (int i = 0; i < n; i++)
        db_bind_int64(s, i + 1, v[i]);
    int rc = db_step_done(s, err, errlen);
    db_release(s);
    if (rc == 0 && changes) *changes = db_changes(p->db);
    return rc;
}

/* Runs a statement to the end and releases it. */
static int run_done(db_stmt_t *s, char *err, size_t errlen) {
    int rc = db_step_done(s, err, errlen);
    db_release(s);
    return rc;
}

/* How a walk over a statement's rows ended: at a row (the caller stopped
 * it) or at the end is success; anything else is a database error. */
static int rows_end(plat_t *p, int step, char *err, size_t errlen) {
    if (step == DB_ROW || step == DB_DONE) return 0;
    return sl_err(err, errlen, "database: %s", db_errmsg(p->db));
}

static int add_credit(plat_t *p, int64_t account, const char *kind, int64_t gift, int64_t charge,
                      const char *note, char *err, size_t errlen) {
    db_stmt_t *s = db_stmt(p->db, ST_CREDIT_INSERT, err, errlen);
    if (!s) return -1;
    db_bind_int64(s, 1, account);
    db_bind_text(s, 2, kind);
    db_bind_int64(s, 3, gift);
    db_bind_int64(s, 4, charge);
    db_bind_text(s, 5, note ? note : "");
    db_bind_int64(s, 6, plat_now_ms(p));
    if (run_done(s, err, errlen) != 0) return -1;
    int64_t changed = 0;
    if (exec_ints(p, ST_ACCT_ADD, (int64_t[]){account, gift, charge}, 3, &changed, err, errlen) !=
        0)
        return -1;
    if (changed != 1) return sl_err(err, errlen, "no account %" PRId64, account);
    return 0;
}

/* ---- accounts ---- */

/* `which` is ST_ACCT_EXISTS, or ST_ACCT_LOCK to also lock the row until
 * the transaction ends (PostgreSQL). */
static bool account_exists(plat_t *p, int which, int64_t id) {
    db_stmt_t *s = db_stmt(p->db, which, NULL, 0);
    if (!s) return false;
    db_bind_int64(s, 1, id);
    bool found = db_step(s) == DB_ROW;
    db_release(s);
    return found;
}

int plat_account_create_locked(plat_t *p, const char *name, int64_t referrer_id, int64_t *id,
                               char *err, size_t errlen) {
    if (!name || !*name || strlen(name) >= sizeof(((plat_account_t *)0)->name))
        return sl_err(err, errlen, "an account needs a name of 1 to 127 bytes");
    /* inside the caller's transaction (plat_bootstrap_if_empty) or its own */
    const bool own = !db_in_tx(p->db);
    if (own && db_begin(p->db, err, errlen) != 0) return -1;
    if (referrer_id > 0 && !account_exists(p, ST_ACCT_EXISTS, referrer_id)) {
        sl_err(err, errlen, "referrer account %" PRId64 " does not exist", referrer_id);
        goto fail;
    }
    db_stmt_t *s = db_stmt(p->db, ST_ACCT_INSERT, err, errlen);
    if (!s) goto fail;
    db_bind_text(s, 1, name);
    if (referrer_id > 0)
        db_bind_int64(s, 2, referrer_id);
    else
        db_bind_null(s, 2);
    db_bind_int64(s, 3, plat_now_ms(p));
    int64_t new_id = db_step(s) == DB_ROW ? db_col_int64(s, 0) : 0; /* RETURNING id */
    if (new_id <= 0 || run_done(s, err, errlen) != 0) {
        if (new_id <= 0) {
            sl_err(err, errlen, "database: %s", db_errmsg(p->db));
            db_release(s);
        }
        goto fail;
    }
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
    if (own && db_commit(p->db, err, errlen) != 0) goto fail;
    if (id) *id = new_id;
    return 0;
fail:
    if (own) db_rollback(p->db);
    return -1;
}

int plat_account_create(plat_t *p, const char *name, int64_t referrer_id, int64_t *id, char *err,
                        size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = plat_account_create_locked(p, name, referrer_id, id, err, errlen);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static void account_from_row(db_stmt_t *s, plat_account_t *a) {
    memset(a, 0, sizeof *a);
    a->id = db_col_int64(s, 0);
    snprintf(a->name, sizeof a->name, "%s", db_col_text(s, 1));
    snprintf(a->status, sizeof a->status, "%s", db_col_text(s, 2));
    a->gift_balance = db_col_int64(s, 3);
    a->charge_balance = db_col_int64(s, 4);
    a->referrer_id = db_col_int64(s, 5);
    a->created_at_ms = db_col_int64(s, 6);
}

int plat_account_get(plat_t *p, int64_t id, plat_account_t *out, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    db_stmt_t *s = db_stmt(p->db, ST_ACCT_GET, err, errlen);
    if (s) {
        db_bind_int64(s, 1, id);
        int step = db_step(s);
        if (step == DB_ROW) {
            account_from_row(s, out);
            rc = 0;
        } else if (step == DB_DONE) {
            sl_err(err, errlen, "no account %" PRId64, id);
        } else {
            sl_err(err, errlen, "database: %s", db_errmsg(p->db));
        }
        db_release(s);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_account_each(plat_t *p, int (*fn)(const plat_account_t *, void *), void *ctx, char *err,
                      size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    db_stmt_t *s = db_stmt(p->db, ST_ACCT_LIST, err, errlen);
    if (s) {
        int step;
        plat_account_t a;
        while ((step = db_step(s)) == DB_ROW) {
            account_from_row(s, &a);
            if (fn(&a, ctx)) break;
        }
        rc = rows_end(p, step, err, errlen);
        db_release(s);
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
    int rc = db_begin(p->db, err, errlen);
    if (rc == 0) rc = add_credit(p, id, "credit", gift, charge, note, err, errlen);
    if (rc == 0) rc = db_commit(p->db, err, errlen);
    if (rc != 0) db_rollback(p->db);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_account_set_status(plat_t *p, int64_t id, const char *status, char *err, size_t errlen) {
    if (!status || (strcmp(status, "normal") != 0 && strcmp(status, "disabled") != 0))
        return sl_err(err, errlen, "account status is 'normal' or 'disabled'");
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    db_stmt_t *s = db_stmt(p->db, ST_ACCT_SET_STATUS, err, errlen);
    if (s) {
        db_bind_int64(s, 1, id);
        db_bind_text(s, 2, status);
        rc = run_done(s, err, errlen);
        if (rc == 0 && db_changes(p->db) != 1) rc = sl_err(err, errlen, "no account %" PRId64, id);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* ---- keys ---- */

int plat_key_create_locked(plat_t *p, int64_t account_id, const char *name, int64_t expires_at_ms,
                           char key_out[PLAT_KEY_MAX], int64_t *key_id, char *err, size_t errlen) {
    if (!name) name = "";
    if (strlen(name) >= sizeof(((plat_key_info_t *)0)->name))
        return sl_err(err, errlen, "key name longer than 127 bytes");
    if (!account_exists(p, ST_ACCT_EXISTS, account_id))
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
    db_stmt_t *s = db_stmt(p->db, ST_KEY_INSERT, err, errlen);
    if (!s) {
        OPENSSL_cleanse(key, sizeof key);
        return -1;
    }
    db_bind_int64(s, 1, account_id);
    db_bind_text(s, 2, name);
    db_bind_text(s, 3, prefix);
    db_bind_text(s, 4, hash);
    db_bind_int64(s, 5, expires_at_ms > 0 ? expires_at_ms : 0);
    db_bind_int64(s, 6, plat_now_ms(p));
    const int64_t new_id = db_step(s) == DB_ROW ? db_col_int64(s, 0) : 0; /* RETURNING id */
    if (new_id <= 0) sl_err(err, errlen, "database: %s", db_errmsg(p->db));
    if (new_id <= 0 || db_step_done(s, err, errlen) != 0) {
        db_release(s);
        OPENSSL_cleanse(key, sizeof key);
        return -1;
    }
    db_release(s);
    if (key_id) *key_id = new_id;
    memcpy(key_out, key, n + 1);
    OPENSSL_cleanse(key, sizeof key);
    return 0;
}

int plat_key_create(plat_t *p, int64_t account_id, const char *name, int64_t expires_at_ms,
                    char key_out[PLAT_KEY_MAX], int64_t *key_id, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc =
        plat_key_create_locked(p, account_id, name, expires_at_ms, key_out, key_id, err, errlen);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_key_create_capped(plat_t *p, int64_t account_id, const char *name, int64_t expires_at_ms,
                           char key_out[PLAT_KEY_MAX], int64_t *key_id, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    /* One transaction, with the account row locked (SQLite: BEGIN
     * IMMEDIATE; PostgreSQL: FOR UPDATE): the count and the insert see and
     * write one state, also against `silica admin` or another node. */
    int rc = db_begin(p->db, err, errlen);
    if (rc != 0) goto out;
    if (p->cfg.max_keys > 0) {
        if (!account_exists(p, ST_ACCT_LOCK, account_id)) {
            rc = sl_err(err, errlen, "no account %" PRId64, account_id);
            goto out;
        }
        db_stmt_t *s = db_stmt(p->db, ST_KEY_LIVE_COUNT, err, errlen);
        if (!s) {
            rc = -1;
            goto out;
        }
        db_bind_int64(s, 1, account_id);
        db_bind_int64(s, 2, plat_now_ms(p));
        int step = db_step(s);
        const int64_t live = step == DB_ROW ? db_col_int64(s, 0) : -1;
        db_release(s);
        if (live < 0) {
            rc = sl_err(err, errlen, "database: %s", db_errmsg(p->db));
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
    if (rc == 0) rc = db_commit(p->db, err, errlen);
out:
    if (rc != 0) {
        db_rollback(p->db);
        OPENSSL_cleanse(key_out, PLAT_KEY_MAX); /* a key that was not stored is no key */
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_key_revoke(plat_t *p, int64_t account_id, int64_t key_id, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    /* the owner is part of the WHERE: checking it and revoking are one step */
    int64_t changed = 0;
    rc = exec_ints(p, ST_KEY_REVOKE, (int64_t[]){key_id, plat_now_ms(p), account_id}, 3, &changed,
                   err, errlen);
    if (rc == 0 && changed != 1) {
        sl_err(err, errlen, "no key %" PRId64, key_id);
        rc = PLAT_ENOTFOUND;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_key_each(plat_t *p, int64_t account_id, int (*fn)(const plat_key_info_t *, void *),
                  void *ctx, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    db_stmt_t *s = db_stmt(p->db, ST_KEY_LIST, err, errlen);
    if (s) {
        db_bind_int64(s, 1, account_id);
        int step;
        while ((step = db_step(s)) == DB_ROW) {
            plat_key_info_t k;
            memset(&k, 0, sizeof k);
            k.id = db_col_int64(s, 0);
            k.account_id = db_col_int64(s, 1);
            snprintf(k.name, sizeof k.name, "%s", db_col_text(s, 2));
            snprintf(k.prefix, sizeof k.prefix, "%s", db_col_text(s, 3));
            k.enabled = db_col_int64(s, 4) != 0;
            k.expires_at_ms = db_col_int64(s, 5);
            k.created_at_ms = db_col_int64(s, 6);
            if (fn(&k, ctx)) break;
        }
        rc = rows_end(p, step, err, errlen);
        db_release(s);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* ---- prices ---- */

static bool model_name_ok(const char *m) {
    return m && *m && strlen(m) <= 256;
}

int plat_price_set(plat_t *p, const char *model, const plat_price_t *pr, char *err, size_t errlen) {
    if (!model_name_ok(model) || !strcmp(model, "*"))
        return sl_err(err, errlen, "a price needs a model name of 1 to 256 bytes");
    if (pr->input < 0 || pr->cached_input < 0 || pr->output < 0)
        return sl_err(err, errlen, "prices cannot be negative");
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    db_stmt_t *s = db_stmt(p->db, ST_PRICE_SET, err, errlen);
    if (s) {
        db_bind_text(s, 1, model);
        db_bind_int64(s, 2, pr->input);
        db_bind_int64(s, 3, pr->cached_input);
        db_bind_int64(s, 4, pr->output);
        db_bind_int64(s, 5, plat_now_ms(p));
        rc = run_done(s, err, errlen);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_price_get_locked(plat_t *p, const char *model, plat_price_t *out, bool *found, char *err,
                          size_t errlen) {
    memset(out, 0, sizeof *out);
    *found = false;
    db_stmt_t *s = db_stmt(p->db, ST_PRICE_GET, err, errlen);
    if (!s) return -1;
    db_bind_text(s, 1, model);
    int step = db_step(s);
    if (step == DB_ROW) {
        out->input = db_col_int64(s, 0);
        out->cached_input = db_col_int64(s, 1);
        out->output = db_col_int64(s, 2);
        *found = true;
    }
    db_release(s);
    return rows_end(p, step, err, errlen);
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
    db_stmt_t *s = db_stmt(p->db, ST_PRICE_LIST, err, errlen);
    if (s) {
        int step;
        while ((step = db_step(s)) == DB_ROW) {
            plat_price_t pr = {db_col_int64(s, 1), db_col_int64(s, 2), db_col_int64(s, 3)};
            if (fn(db_col_text(s, 0), &pr, ctx)) break;
        }
        rc = rows_end(p, step, err, errlen);
        db_release(s);
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
    if (account_id > 0 && !account_exists(p, ST_ACCT_EXISTS, account_id)) {
        rc = sl_err(err, errlen, "no account %" PRId64, account_id);
    } else {
        db_stmt_t *s = db_stmt(p->db, ST_LIMITS_SET, err, errlen);
        if (s) {
            db_bind_int64(s, 1, account_id);
            db_bind_text(s, 2, model);
            db_bind_int64(s, 3, l->rpm);
            db_bind_int64(s, 4, l->tpm);
            db_bind_int64(s, 5, l->rpd);
            db_bind_int64(s, 6, l->tpd);
            rc = run_done(s, err, errlen);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_limits_get_locked(plat_t *p, int64_t account_id, const char *model, bool is_free,
                           plat_limits_t *out, char *err, size_t errlen) {
    db_stmt_t *s = db_stmt(p->db, ST_LIMITS_GET, err, errlen);
    if (!s) return -1;
    db_bind_int64(s, 1, account_id);
    db_bind_text(s, 2, model);
    int step = db_step(s);
    if (step == DB_ROW) {
        out->rpm = db_col_int64(s, 0);
        out->tpm = db_col_int64(s, 1);
        out->rpd = db_col_int64(s, 2);
        out->tpd = db_col_int64(s, 3);
    } else {
        *out = is_free ? p->cfg.free_limits : p->cfg.paid_limits;
    }
    db_release(s);
    return rows_end(p, step, err, errlen);
}

int plat_limits_get(plat_t *p, int64_t account_id, const char *model, plat_limits_t *out, char *err,
                    size_t errlen) {
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
    /* One transaction with the accounts table locked: of several nodes
     * starting at once on an empty database, one creates the account. */
    int rc = db_begin(p->db, err, errlen);
    if (rc == 0) rc = exec_ints(p, ST_ACCTS_LOCK, NULL, 0, NULL, err, errlen);
    int64_t n = -1;
    if (rc == 0) {
        db_stmt_t *s = db_stmt(p->db, ST_ACCT_COUNT, err, errlen);
        if (s && db_step(s) == DB_ROW) n = db_col_int64(s, 0);
        if (s && n < 0) sl_err(err, errlen, "database: %s", db_errmsg(p->db));
        db_release(s);
        if (n < 0) rc = -1;
    }
    if (rc == 0 && n == 0) {
        int64_t id;
        rc = plat_account_create_locked(p, "admin", 0, &id, err, errlen);
        if (rc == 0) rc = plat_key_create_locked(p, id, "default", 0, key_out, NULL, err, errlen);
    }
    if (rc == 0) rc = db_commit(p->db, err, errlen);
    if (rc == 0 && n == 0) *created = true;
    if (rc != 0) {
        db_rollback(p->db);
        OPENSSL_cleanse(key_out, PLAT_KEY_MAX);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_verify(plat_t *p, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    db_stmt_t *s = db_stmt(p->db, ST_VERIFY, err, errlen);
    if (s) {
        int step;
        rc = 0;
        while ((step = db_step(s)) == DB_ROW) {
            int64_t id = db_col_int64(s, 0);
            int64_t g = db_col_int64(s, 1), c = db_col_int64(s, 2);
            int64_t g2 = db_col_int64(s, 3), c2 = db_col_int64(s, 4);
            int64_t bad = db_col_int64(s, 5);
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
        db_release(s);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}
