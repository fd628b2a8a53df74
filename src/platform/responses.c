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

/* Runs statement `which` with the account bound to ?1 and `v` to ?2. */
static int exec2(plat_t *p, int which, int64_t account, int64_t v, char *err, size_t errlen) {
    db_stmt_t *s = db_stmt(p->db, which, err, errlen);
    if (!s) return -1;
    db_bind_int64(s, 1, account);
    db_bind_int64(s, 2, v);
    int rc = db_step_done(s, err, errlen);
    db_release(s);
    return rc;
}

int plat_resp_put(plat_t *p, int64_t account_id, const char *id, const char *text, size_t len,
                  char *err, size_t errlen) {
    if (len > PLAT_RESP_MAX_BYTES)
        return sl_err(err, errlen, "response %s is %zu bytes; at most %zu are stored", id, len,
                      PLAT_RESP_MAX_BYTES);
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    db_stmt_t *s = NULL;
    if (db_begin(p->db, err, errlen) != 0) goto out;
    if (exec2(p, ST_RESP_EXPIRE, account_id, oldest_kept(p), err, errlen) != 0) goto out;
    /* the account's newest PLAT_RESP_PER_ACCOUNT - 1 stay, with this one */
    if (exec2(p, ST_RESP_TRIM, account_id, PLAT_RESP_PER_ACCOUNT - 1, err, errlen) != 0) goto out;
    /* an id held by another account is left alone: the insert changes nothing */
    if (!(s = db_stmt(p->db, ST_RESP_PUT, err, errlen))) goto out;
    db_bind_text(s, 1, id);
    db_bind_int64(s, 2, account_id);
    db_bind_int64(s, 3, plat_now_ms(p));
    db_bind_textn(s, 4, text, len);
    if (db_step_done(s, err, errlen) != 0) goto out;
    if (db_changes(p->db) != 1) {
        sl_err(err, errlen, "response id %s is taken", id);
        goto out;
    }
    rc = db_commit(p->db, err, errlen);
out:
    db_release(s);
    if (rc != 0) db_rollback(p->db);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_resp_get(plat_t *p, int64_t account_id, const char *id, char **text, char *err,
                  size_t errlen) {
    *text = NULL;
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    db_stmt_t *s = db_stmt(p->db, ST_RESP_GET, err, errlen);
    if (!s) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    db_bind_text(s, 1, id);
    db_bind_int64(s, 2, account_id);
    db_bind_int64(s, 3, oldest_kept(p));
    int step = db_step(s);
    if (step == DB_ROW) {
        const char *b = db_col_text(s, 0);
        const size_t n = db_col_bytes(s, 0);
        *text = malloc(n + 1);
        if (*text) {
            memcpy(*text, b, n);
            (*text)[n] = '\0';
            rc = 0;
        } else {
            sl_err(err, errlen, "out of memory");
        }
    } else if (step == DB_DONE) {
        rc = 1;
    } else {
        sl_err(err, errlen, "database: %s", db_errmsg(p->db));
    }
    db_release(s);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int plat_resp_delete(plat_t *p, int64_t account_id, const char *id, char *err, size_t errlen) {
    pthread_mutex_lock(&p->mu);
    int rc = -1;
    db_stmt_t *s = db_stmt(p->db, ST_RESP_DELETE, err, errlen);
    if (!s) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    db_bind_text(s, 1, id);
    db_bind_int64(s, 2, account_id);
    db_bind_int64(s, 3, oldest_kept(p));
    if (db_step_done(s, err, errlen) == 0) rc = db_changes(p->db) > 0 ? 0 : 1;
    db_release(s);
    pthread_mutex_unlock(&p->mu);
    return rc;
}
