/*
 * report.c — reading the books: usage reports grouped by day / model / key /
 * account (CSV, aligned table or JSON), and the GET /v1/user/info body.
 *
 * The GROUP BY columns come from a fixed whitelist, never from the caller's
 * text; the account and time range are bound parameters.
 */
#include "platform/plat_internal.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct group_col {
    const char *name;  /* as the caller writes it, and the column header */
    const char *expr;  /* SQL expression over usage_ledger u, api_keys k */
} group_col_t;

static const group_col_t group_cols[] = {
    {"day", "DAY_UTC(u.finished_at)"}, /* db.h: each engine's date text */
    {"model", "u.model"},
    {"key", "coalesce(k.prefix, '?') || '#' || u.key_id"},
    {"account", "CAST(u.account_id AS TEXT)"},
    {"status", "u.status"},
    {"request", "u.request_id"},
    {"batch", "coalesce(u.batch_id, '')"}, /* '' for interactive requests */
};

#define NUM_COLS 7
static const char *const num_names[NUM_COLS] = {"requests",          "prompt_tokens",
                                                "cached_tokens",     "completion_tokens",
                                                "reasoning_tokens",  "total_tokens",
                                                "cost"};

typedef struct report_row {
    char **cells; /* ngroup text cells then NUM_COLS formatted numbers */
} report_row_t;

static void csv_cell(sl_buf_t *b, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        sl_buf_puts(b, s);
        return;
    }
    sl_buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"') sl_buf_putc(b, '"');
        sl_buf_putc(b, *s);
    }
    sl_buf_putc(b, '"');
}

int plat_usage_report(plat_t *p, const plat_report_opts_t *o, sl_buf_t *out, char *err,
                      size_t errlen) {
    const char *format = o->format && *o->format ? o->format : "table";
    if (strcmp(format, "csv") && strcmp(format, "table") && strcmp(format, "json"))
        return sl_err(err, errlen, "report format is csv, table or json, not '%s'", format);
    /* Parse group_by into whitelist indexes. */
    int groups[SL_ARRAY_LEN(group_cols)];
    int ngroup = 0;
    const char *g = o->group_by && *o->group_by ? o->group_by : "day";
    while (*g) {
        size_t n = strcspn(g, ",");
        int found = -1;
        for (size_t i = 0; i < SL_ARRAY_LEN(group_cols); i++)
            if (strlen(group_cols[i].name) == n && !strncmp(g, group_cols[i].name, n))
                found = (int)i;
        if (found < 0 || ngroup >= (int)SL_ARRAY_LEN(group_cols))
            return sl_err(err, errlen,
                          "cannot group by '%.*s': use day, model, key, account, status, request or batch",
                          (int)n, g);
        groups[ngroup++] = found;
        g += n;
        if (*g == ',') g++;
    }
    sl_buf_t sql = {0};
    sl_buf_puts(&sql, "SELECT ");
    for (int i = 0; i < ngroup; i++) sl_buf_printf(&sql, "%s, ", group_cols[groups[i]].expr);
    sl_buf_puts(&sql,
                "count(*), sum(u.prompt_tokens), sum(u.cached_tokens), "
                "sum(u.completion_tokens), sum(u.reasoning_tokens), "
                "sum(u.prompt_tokens + u.completion_tokens), sum(u.cost) "
                "FROM usage_ledger u LEFT JOIN api_keys k ON k.id = u.key_id "
                "WHERE (?1 = 0 OR u.account_id = ?1) AND (?2 = 0 OR u.finished_at >= ?2) "
                "AND (?3 = 0 OR u.finished_at < ?3) GROUP BY ");
    for (int i = 0; i < ngroup; i++) sl_buf_printf(&sql, "%s%d", i ? ", " : "", i + 1);
    sl_buf_puts(&sql, " ORDER BY ");
    for (int i = 0; i < ngroup; i++) sl_buf_printf(&sql, "%s%d", i ? ", " : "", i + 1);
    if (!sql.data) return sl_err(err, errlen, "out of memory");

    const int ncols = ngroup + NUM_COLS;
    report_row_t *rows = NULL;
    size_t nrows = 0, caprows = 0;
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    db_stmt_t *s = db_prepare(p->db, sql.data, err, errlen);
    if (!s) {
        rc = -1;
    } else {
        db_bind_int64(s, 1, o->account_id);
        db_bind_int64(s, 2, o->from_ms);
        db_bind_int64(s, 3, o->to_ms);
        int step;
        while ((step = db_step(s)) == DB_ROW) {
            if (nrows == caprows) {
                size_t nc = caprows ? caprows * 2 : 16;
                report_row_t *t = realloc(rows, nc * sizeof *t);
                if (!t) {
                    rc = sl_err(err, errlen, "out of memory");
                    break;
                }
                rows = t;
                caprows = nc;
            }
            char **cells = calloc((size_t)ncols, sizeof *cells);
            if (!cells) {
                rc = sl_err(err, errlen, "out of memory");
                break;
            }
            rows[nrows++].cells = cells;
            for (int c = 0; c < ncols; c++) {
                char tmp[64];
                const char *v;
                if (c < ngroup) {
                    v = db_col_text(s, c);
                } else if (c == ncols - 1) {
                    plat_money_format(db_col_int64(s, c), tmp, sizeof tmp);
                    v = tmp;
                } else {
                    snprintf(tmp, sizeof tmp, "%" PRId64, db_col_int64(s, c));
                    v = tmp;
                }
                if (!(cells[c] = sl_strdup(v))) {
                    rc = sl_err(err, errlen, "out of memory");
                    break;
                }
            }
            if (rc) break;
        }
        if (rc == 0 && step != DB_DONE)
            rc = sl_err(err, errlen, "database: %s", db_errmsg(p->db));
    }
    db_release(s);
    pthread_mutex_unlock(&p->mu);
    sl_buf_free(&sql);

    if (rc == 0) {
        const char *head[SL_ARRAY_LEN(group_cols) + NUM_COLS];
        for (int c = 0; c < ncols; c++)
            head[c] = c < ngroup ? group_cols[groups[c]].name : num_names[c - ngroup];
        if (!strcmp(format, "csv")) {
            for (int c = 0; c < ncols; c++) {
                if (c) sl_buf_putc(out, ',');
                csv_cell(out, head[c]);
            }
            sl_buf_putc(out, '\n');
            for (size_t r = 0; r < nrows; r++) {
                for (int c = 0; c < ncols; c++) {
                    if (c) sl_buf_putc(out, ',');
                    csv_cell(out, rows[r].cells[c]);
                }
                sl_buf_putc(out, '\n');
            }
        } else if (!strcmp(format, "table")) {
            size_t width[SL_ARRAY_LEN(group_cols) + NUM_COLS];
            for (int c = 0; c < ncols; c++) {
                width[c] = strlen(head[c]);
                for (size_t r = 0; r < nrows; r++)
                    width[c] = SL_MAX(width[c], strlen(rows[r].cells[c]));
            }
            for (int c = 0; c < ncols; c++)
                sl_buf_printf(out, "%s%-*s", c ? "  " : "", (int)width[c], head[c]);
            sl_buf_putc(out, '\n');
            for (size_t r = 0; r < nrows; r++) {
                for (int c = 0; c < ncols; c++) /* text left, numbers right */
                    sl_buf_printf(out, c < ngroup ? "%s%-*s" : "%s%*s", c ? "  " : "",
                                  (int)width[c], rows[r].cells[c]);
                sl_buf_putc(out, '\n');
            }
        } else {
            json_t *arr = json_array();
            for (size_t r = 0; arr && r < nrows; r++) {
                json_t *obj = json_object();
                for (int c = 0; obj && c < ncols; c++) {
                    json_t *v = c < ngroup || c == ncols - 1
                                    ? json_string(rows[r].cells[c])
                                    : json_integer(strtoll(rows[r].cells[c], NULL, 10));
                    json_object_set_new(obj, head[c], v);
                }
                json_array_append_new(arr, obj);
            }
            char *txt = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
            if (txt) {
                sl_buf_puts(out, txt);
                free(txt);
            } else {
                rc = sl_err(err, errlen, "out of memory");
            }
            json_decref(arr);
        }
    }
    for (size_t r = 0; r < nrows; r++) {
        for (int c = 0; c < ncols; c++) free(rows[r].cells[c]);
        free(rows[r].cells);
    }
    free(rows);
    return rc;
}

char *plat_user_info_json(plat_t *p, int64_t account_id, char *err, size_t errlen) {
    plat_account_t a;
    if (plat_account_get(p, account_id, &a, err, errlen) != 0) return NULL;
    char id[24], gift[32], charge[32], total[32];
    snprintf(id, sizeof id, "%" PRId64, a.id);
    plat_money_format(a.gift_balance, gift, sizeof gift);
    plat_money_format(a.charge_balance, charge, sizeof charge);
    plat_money_format(a.gift_balance + a.charge_balance, total, sizeof total);
    json_t *doc = json_pack("{s:i, s:s, s:b, s:{s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s, "
                            "s:s, s:s}}",
                            "code", 20000, "message", "OK", "status", 1, "data", "id", id, "name",
                            a.name, "image", "", "email", "", "isAdmin", 0, "balance", gift,
                            "status", a.status, "introduction", "", "role", "", "chargeBalance",
                            charge, "totalBalance", total);
    char *txt = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!txt) sl_err(err, errlen, "out of memory (or a name that is not UTF-8)");
    return txt;
}
