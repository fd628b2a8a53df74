/*
 * responses.c — stored responses in the platform's database (table
 * `responses`, migration 2): the JSON text the server keeps for GET
 * /v1/responses/{id} and previous_response_id, owned by one account.
 *
 * Every statement names the account, so one account can never read,
 * overwrite or delete another's response (an id taken by another account
 * is refused as if unknown rather than replaced). Retention (platform.h):
 * rows older than PLAT_RESP_DAYS are not returned and are deleted when the
 * account stores another; beyond PLAT_RESP_PER_ACCOUNT rows the oldest go.
 * Runs under p->mu like everything in the platform.
 */
#include "platform/plat_internal.h"

#include <stdlib.h>
#include <string.h>

#define DAY_MS INT64_C(86400000)

static int64_t oldest_kept(plat_t *p) {
    return plat_now_ms(p) - PLAT_RESP_DAYS * DAY_MS;
}

/* Runs sql with the account bound to ?1 and `v` to ?2. */
static int exec2(plat_t *p, const char *sql, int64_t account, int64_t v, char *err, size_t errlen) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(p->db, sql, -1, &s, NULL) != SQLITE_OK)
        return sl_err(err, errlen, "sqlite prepare: %s", sqlite3_errmsg(p->db));
    sqlite3_bind_int64(s, 1, account);
    sqlite3_bind_int64(s, 2, v);
    int rc = plat_step_done(p, s, err, errlen);
    sqlite3_finalize(s);
    return rc;
}

int plat_resp_put(plat_t *p, int64_t account_id, const char *id, const char *text, size_t len,
                  char *err, size_t errlen) {
    if (len > PLAT_RESP_MAX_BYTES)
        return sl_err(err, errlen, "response %s is %zu bytes; at most %zu are stored", id, len,
                      PLAT_RESP_MAX_BYTES);
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    sqlite3_stmt *s = NULL;
    if (plat_tx_begin(p, err, errlen) != 0) goto out;
    if (exec2(p, "DELETE FROM responses WHERE account_id = ?1 AND created_at < ?2", account_id,
              oldest_kept(p), err, errlen) != 0)
        goto out;
    /* the account's newest PLAT_RESP_PER_ACCOUNT - 1 stay, with this one */
    if (exec2(p,
              "DELETE FROM responses WHERE account_id = ?1 AND id NOT IN (SELECT id FROM responses "
              "WHERE account_id = ?1 ORDER BY created_at DESC LIMIT ?2)",
              account_id, PLAT_RESP_PER_ACCOUNT - 1, err, errlen) != 0)
        goto out;
    /* an id held by another account is left alone: the insert fails */
    if (sqlite3_prepare_v2(
            p->db,
            "INSERT INTO responses (id, account_id, created_at, body) VALUES (?1, ?2, ?3, ?4) "
            "ON CONFLICT(id) DO UPDATE SET body = excluded.body, created_at = excluded.created_at "
            "WHERE responses.account_id = excluded.account_id",
            -1, &s, NULL) != SQLITE_OK) {
        sl_err(err, errlen, "sqlite prepare: %s", sqlite3_errmsg(p->db));
        goto out;
    }
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, account_id);
    sqlite3_bind_int64(s, 3, plat_now_ms(p));
    sqlite3_bind_text(s, 4, text, (int)len, SQLITE_TRANSIENT);
    if (plat_step_done(p, s, err, errlen) != 0) goto out;
    if (sqlite3_changes(p->db) != 1) {
        sl_err(err, errlen, "response id %s is taken", id);
        goto out;
    }
    rc = plat_tx_commit(p, err, errlen);
out:
    sqlite3_finalize(s);
    if (rc != 0) plat_tx_rollback(p);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_resp_get(plat_t *p, int64_t account_id, const char *id, char **text, char *err,
                  size_t errlen) {
    *text = NULL;
    pthread_mutex_lock(&p->mu);
    sqlite3_stmt *s;
    int rc = -1;
    if (sqlite3_prepare_v2(
            p->db,
            "SELECT body FROM responses WHERE id = ?1 AND account_id = ?2 AND created_at >= ?3", -1,
            &s, NULL) != SQLITE_OK) {
        sl_err(err, errlen, "sqlite prepare: %s", sqlite3_errmsg(p->db));
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, account_id);
    sqlite3_bind_int64(s, 3, oldest_kept(p));
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        const unsigned char *b = sqlite3_column_text(s, 0);
        const int n = sqlite3_column_bytes(s, 0);
        *text = malloc((size_t)n + 1);
        if (*text) {
            memcpy(*text, b ? (const char *)b : "", (size_t)n);
            (*text)[n] = '\0';
            rc = 0;
        } else {
            sl_err(err, errlen, "out of memory");
        }
    } else if (step == SQLITE_DONE) {
        rc = 1;
    } else {
        sl_err(err, errlen, "sqlite: %s", sqlite3_errmsg(p->db));
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_resp_delete(plat_t *p, int64_t account_id, const char *id, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    sqlite3_stmt *s;
    int rc = -1;
    if (sqlite3_prepare_v2(
            p->db, "DELETE FROM responses WHERE id = ?1 AND account_id = ?2 AND created_at >= ?3",
            -1, &s, NULL) != SQLITE_OK) {
        sl_err(err, errlen, "sqlite prepare: %s", sqlite3_errmsg(p->db));
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, account_id);
    sqlite3_bind_int64(s, 3, oldest_kept(p));
    if (plat_step_done(p, s, err, errlen) == 0) rc = sqlite3_changes(p->db) > 0 ? 0 : 1;
    sqlite3_finalize(s);
    pthread_mutex_unlock(&p->mu);
    return rc;
}
