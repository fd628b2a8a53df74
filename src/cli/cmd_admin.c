/*
 * cmd_admin.c — `silica admin`: the operator's console for accounts, API
 * keys, model prices and limits, and usage reports. Works on the same
 * database a running server uses (SQLite WAL allows it); changes such as a
 * revoked key or a credit take effect on the server's next request.
 *
 * Money on the command line is decimal yuan ("14", "0.35"); prices are yuan
 * per million tokens. Inside, everything is micro-yuan integers.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "platform/platform.h"

static const char *usage_text =
    "usage: silica admin [--data DIR | --db URL] COMMAND ...\n"
    "\n"
    "  accounts create NAME [--referrer ID]\n"
    "  accounts list [--format table|csv]\n"
    "  accounts show ID\n"
    "  accounts credit ID [--gift YUAN] [--charge YUAN] [--note TEXT]\n"
    "  accounts disable ID | accounts enable ID\n"
    "  accounts usage ID [--by day|model|key|status[,..]] [--format table|csv|json]\n"
    "                    [--from DATE] [--to DATE]\n"
    "  keys create --account ID [--name NAME] [--expires DATE|+30d|+12h]\n"
    "  keys list [--account ID]\n"
    "  keys revoke KEY_ID\n"
    "  models set-price MODEL --input YUAN --output YUAN [--cached YUAN]   (per 1M tokens)\n"
    "  models prices\n"
    "  models set-limits ACCOUNT|all MODEL|'*' [--rpm N] [--tpm N] [--rpd N] [--tpd N]\n"
    "                    (0 = unlimited; unnamed limits keep their current value)\n"
    "  models limits ACCOUNT MODEL\n"
    "  usage [--by day,model,key,account,status,request,batch] [--account ID] [--format table|csv|json]\n"
    "        [--from DATE] [--to DATE]\n"
    "  verify                      check every balance against credits and the ledger\n"
    "\n"
    "DIR defaults to $SILICA_DATA, else ./data (SQLite, DIR/silica.db). --db URL (default\n"
    "$SILICA_DB when set and no --data is given) is a PostgreSQL database\n"
    "(postgresql://user:pass@host:port/dbname) that several `silica serve --db` nodes share.\n"
    "DATE is YYYY-MM-DD[THH:MM[:SS]] (UTC).\n";

/* Positional arguments and --name value options of one command line. */
typedef struct args {
    const char *pos[8];
    int npos;
    const char *opt_name[16];
    const char *opt_val[16];
    int nopt;
} args_t;

static int parse_args(int argc, char **argv, args_t *a) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "--", 2) && argv[i][2]) {
            if (i + 1 >= argc) {
                fprintf(stderr, "silica admin: %s needs a value\n", argv[i]);
                return -1;
            }
            if (a->nopt >= 16) return -1;
            a->opt_name[a->nopt] = argv[i] + 2;
            a->opt_val[a->nopt++] = argv[++i];
        } else {
            if (a->npos >= 8) return -1;
            a->pos[a->npos++] = argv[i];
        }
    }
    return 0;
}

static const char *opt(const args_t *a, const char *name) {
    for (int i = a->nopt - 1; i >= 0; i--)
        if (!strcmp(a->opt_name[i], name)) return a->opt_val[i];
    return NULL;
}

static int check_opts(const args_t *a, const char *const *allowed) {
    for (int i = 0; i < a->nopt; i++) {
        bool ok = false;
        for (const char *const *x = allowed; *x; x++)
            if (!strcmp(a->opt_name[i], *x)) ok = true;
        if (!ok) {
            fprintf(stderr, "silica admin: unknown option --%s\n", a->opt_name[i]);
            return -1;
        }
    }
    return 0;
}

static int parse_id(const char *s, int64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v < 0) return -1;
    *out = v;
    return 0;
}

/* "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS]" (UTC), "+Nd" / "+Nh" from now. */
static int parse_date_ms(const char *s, int64_t *out) {
    if (s[0] == '+') {
        char *end;
        long long n = strtoll(s + 1, &end, 10);
        int64_t unit = !strcmp(end, "d") ? 86400000 : !strcmp(end, "h") ? 3600000 : 0;
        if (n <= 0 || !unit || n > 36500) return -1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        *out = (int64_t)ts.tv_sec * 1000 + n * unit;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3) return -1;
    if (s[n] == 'T' || s[n] == ' ') {
        int m2 = 0;
        if (sscanf(s + n + 1, "%2d:%2d%n", &h, &mi, &m2) != 2) return -1;
        n += 1 + m2;
        if (s[n] == ':') {
            int m3 = 0;
            if (sscanf(s + n + 1, "%2d%n", &sec, &m3) != 1) return -1;
            n += 1 + m3;
        }
        if (s[n] == 'Z') n++;
    }
    if (s[n] || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return -1;
    *out = (int64_t)t * 1000;
    return 0;
}

static void fmt_time(int64_t ms, char *buf, size_t cap) {
    if (ms <= 0) {
        snprintf(buf, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- accounts ---- */

typedef struct list_ctx {
    bool csv;
} list_ctx_t;

/* A CSV field, quoted with inner quotes doubled. */
static void put_csv_text(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static int print_account(const plat_account_t *a, void *vctx) {
    list_ctx_t *ctx = vctx;
    char g[32], c[32], t[32], when[32];
    plat_money_format(a->gift_balance, g, sizeof g);
    plat_money_format(a->charge_balance, c, sizeof c);
    plat_money_format(a->gift_balance + a->charge_balance, t, sizeof t);
    fmt_time(a->created_at_ms, when, sizeof when);
    if (ctx->csv) {
        printf("%" PRId64 ",", a->id);
        put_csv_text(a->name);
        printf(",%s,%s,%s,%s,%" PRId64 ",%s\n", a->status, g, c, t, a->referrer_id, when);
    } else
        printf("%-6" PRId64 " %-20s %-9s %14s %14s %14s %8" PRId64 "  %s\n", a->id, a->name,
               a->status, g, c, t, a->referrer_id, when);
    return 0;
}

static int report(plat_t *p, const args_t *a, int64_t account_id) {
    plat_report_opts_t o = {.group_by = opt(a, "by") ? opt(a, "by") : "day",
                            .account_id = account_id,
                            .format = opt(a, "format") ? opt(a, "format") : "table"};
    if (opt(a, "from") && parse_date_ms(opt(a, "from"), &o.from_ms) != 0) {
        fprintf(stderr, "silica admin: bad --from date\n");
        return 2;
    }
    if (opt(a, "to") && parse_date_ms(opt(a, "to"), &o.to_ms) != 0) {
        fprintf(stderr, "silica admin: bad --to date\n");
        return 2;
    }
    sl_buf_t out = {0};
    char err[SL_ERR_MAX];
    if (plat_usage_report(p, &o, &out, err, sizeof err) != 0) {
        fprintf(stderr, "silica admin: %s\n", err);
        sl_buf_free(&out);
        return 1;
    }
    if (out.data) fputs(out.data, stdout);
    if (!strcmp(o.format, "json")) putchar('\n');
    sl_buf_free(&out);
    return 0;
}

static int cmd_accounts(plat_t *p, const args_t *a) {
    char err[SL_ERR_MAX];
    const char *sub = a->npos > 1 ? a->pos[1] : "";
    int64_t id = 0;
    if (!strcmp(sub, "create")) {
        static const char *const ok[] = {"referrer", NULL};
        if (check_opts(a, ok) || a->npos != 3) goto usage;
        int64_t ref = 0;
        if (opt(a, "referrer") && parse_id(opt(a, "referrer"), &ref) != 0) goto usage;
        if (plat_account_create(p, a->pos[2], ref, &id, err, sizeof err) != 0) goto fail;
        printf("account %" PRId64 " created\n", id);
        return 0;
    }
    if (!strcmp(sub, "list")) {
        static const char *const ok[] = {"format", NULL};
        if (check_opts(a, ok) || a->npos != 2) goto usage;
        list_ctx_t ctx = {.csv = opt(a, "format") && !strcmp(opt(a, "format"), "csv")};
        if (ctx.csv)
            printf("id,name,status,balance,charge_balance,total_balance,referrer,created\n");
        else
            printf("%-6s %-20s %-9s %14s %14s %14s %8s  %s\n", "id", "name", "status", "gift",
                   "charged", "total", "referrer", "created");
        return plat_account_each(p, print_account, &ctx, err, sizeof err) == 0 ? 0 : 1;
    }
    if (a->npos < 3 || parse_id(a->pos[2], &id) != 0) goto usage;
    if (!strcmp(sub, "show")) {
        plat_account_t acc;
        if (a->nopt || plat_account_get(p, id, &acc, err, sizeof err) != 0) goto fail;
        char *js = plat_user_info_json(p, id, err, sizeof err);
        if (!js) goto fail;
        printf("%s\n", js);
        free(js);
        return 0;
    }
    if (!strcmp(sub, "credit")) {
        static const char *const ok[] = {"gift", "charge", "note", NULL};
        if (check_opts(a, ok)) goto usage;
        int64_t gift = 0, charge = 0;
        if ((opt(a, "gift") && plat_money_parse(opt(a, "gift"), &gift) != 0) ||
            (opt(a, "charge") && plat_money_parse(opt(a, "charge"), &charge) != 0)) {
            fprintf(stderr, "silica admin: amounts are yuan with at most 6 decimals\n");
            return 2;
        }
        if (!gift && !charge) goto usage;
        if (plat_account_credit(p, id, gift, charge, opt(a, "note"), err, sizeof err) != 0)
            goto fail;
        plat_account_t acc;
        if (plat_account_get(p, id, &acc, err, sizeof err) != 0) goto fail;
        list_ctx_t ctx = {false};
        print_account(&acc, &ctx);
        return 0;
    }
    if (!strcmp(sub, "disable") || !strcmp(sub, "enable")) {
        if (plat_account_set_status(p, id, sub[0] == 'd' ? "disabled" : "normal", err,
                                    sizeof err) != 0)
            goto fail;
        printf("account %" PRId64 " %s\n", id, sub[0] == 'd' ? "disabled" : "enabled");
        return 0;
    }
    if (!strcmp(sub, "usage")) {
        static const char *const ok[] = {"by", "format", "from", "to", NULL};
        if (check_opts(a, ok)) goto usage;
        return report(p, a, id);
    }
usage:
    fputs(usage_text, stderr);
    return 2;
fail:
    fprintf(stderr, "silica admin: %s\n", err);
    return 1;
}

/* ---- keys ---- */

static int print_key(const plat_key_info_t *k, void *ctx) {
    (void)ctx;
    char exp[32], when[32];
    fmt_time(k->expires_at_ms, exp, sizeof exp);
    fmt_time(k->created_at_ms, when, sizeof when);
    printf("%-6" PRId64 " %-8" PRId64 " %-16s %-14s %-8s %-21s %s\n", k->id, k->account_id,
           k->name, k->prefix, k->enabled ? "enabled" : "revoked", exp, when);
    return 0;
}

static int cmd_keys(plat_t *p, const args_t *a) {
    char err[SL_ERR_MAX];
    const char *sub = a->npos > 1 ? a->pos[1] : "";
    int64_t account = 0;
    if (!strcmp(sub, "create")) {
        static const char *const ok[] = {"account", "name", "expires", NULL};
        if (check_opts(a, ok) || a->npos != 2 || parse_id(opt(a, "account"), &account) != 0)
            goto usage;
        int64_t expires = 0;
        if (opt(a, "expires") && parse_date_ms(opt(a, "expires"), &expires) != 0) {
            fprintf(stderr, "silica admin: bad --expires (YYYY-MM-DD, +30d or +12h)\n");
            return 2;
        }
        char key[PLAT_KEY_MAX];
        int64_t kid;
        if (plat_key_create(p, account, opt(a, "name"), expires, key, &kid, err, sizeof err) != 0)
            goto fail;
        printf("%s\n", key);
        fprintf(stderr,
                "key %" PRId64 " for account %" PRId64
                " created. This is the only time the key is shown; store it now.\n",
                kid, account);
        return 0;
    }
    if (!strcmp(sub, "list")) {
        static const char *const ok[] = {"account", NULL};
        if (check_opts(a, ok) || a->npos != 2) goto usage;
        if (opt(a, "account") && parse_id(opt(a, "account"), &account) != 0) goto usage;
        printf("%-6s %-8s %-16s %-14s %-8s %-21s %s\n", "id", "account", "name", "prefix",
               "state", "expires", "created");
        return plat_key_each(p, account, print_key, NULL, err, sizeof err) == 0 ? 0 : 1;
    }
    if (!strcmp(sub, "revoke")) {
        int64_t kid;
        if (a->nopt || a->npos != 3 || parse_id(a->pos[2], &kid) != 0) goto usage;
        if (plat_key_revoke(p, 0, kid, err, sizeof err) != 0) goto fail;
        printf("key %" PRId64 " revoked\n", kid);
        return 0;
    }
usage:
    fputs(usage_text, stderr);
    return 2;
fail:
    fprintf(stderr, "silica admin: %s\n", err);
    return 1;
}

/* ---- models ---- */

static int print_price(const char *model, const plat_price_t *pr, void *ctx) {
    (void)ctx;
    char in[32], ca[32], out[32];
    plat_money_format(pr->input, in, sizeof in);
    plat_money_format(pr->cached_input, ca, sizeof ca);
    plat_money_format(pr->output, out, sizeof out);
    printf("%-32s %12s %12s %12s\n", model, in, ca, out);
    return 0;
}

static int parse_count(const char *s, int64_t *out) {
    return parse_id(s, out);
}

static int cmd_models(plat_t *p, const args_t *a) {
    char err[SL_ERR_MAX];
    const char *sub = a->npos > 1 ? a->pos[1] : "";
    if (!strcmp(sub, "set-price")) {
        static const char *const ok[] = {"input", "output", "cached", NULL};
        if (check_opts(a, ok) || a->npos != 3 || !opt(a, "input") || !opt(a, "output"))
            goto usage;
        plat_price_t pr;
        if (plat_money_parse(opt(a, "input"), &pr.input) != 0 ||
            plat_money_parse(opt(a, "output"), &pr.output) != 0 ||
            plat_money_parse(opt(a, "cached") ? opt(a, "cached") : opt(a, "input"),
                             &pr.cached_input) != 0) {
            fprintf(stderr, "silica admin: prices are yuan per million tokens, at most 6 "
                            "decimals\n");
            return 2;
        }
        if (plat_price_set(p, a->pos[2], &pr, err, sizeof err) != 0) goto fail;
        printf("%-32s %12s %12s %12s\n", "model", "input", "cached", "output");
        print_price(a->pos[2], &pr, NULL);
        return 0;
    }
    if (!strcmp(sub, "prices")) {
        if (a->nopt || a->npos != 2) goto usage;
        printf("%-32s %12s %12s %12s   (yuan per million tokens)\n", "model", "input", "cached",
               "output");
        return plat_price_each(p, print_price, NULL, err, sizeof err) == 0 ? 0 : 1;
    }
    if (!strcmp(sub, "set-limits") || !strcmp(sub, "limits")) {
        bool set = sub[0] == 's';
        static const char *const ok_set[] = {"rpm", "tpm", "rpd", "tpd", NULL};
        static const char *const ok_get[] = {NULL};
        if (check_opts(a, set ? ok_set : ok_get) || a->npos != 4) goto usage;
        int64_t account = 0;
        if (strcmp(a->pos[2], "all") != 0 && parse_id(a->pos[2], &account) != 0) goto usage;
        plat_limits_t l;
        if (plat_limits_get(p, account, a->pos[3], &l, err, sizeof err) != 0) goto fail;
        if (set) {
            const char *names[4] = {"rpm", "tpm", "rpd", "tpd"};
            int64_t *fields[4] = {&l.rpm, &l.tpm, &l.rpd, &l.tpd};
            for (int i = 0; i < 4; i++)
                if (opt(a, names[i]) && parse_count(opt(a, names[i]), fields[i]) != 0) {
                    fprintf(stderr, "silica admin: --%s takes a count (0 = unlimited)\n",
                            names[i]);
                    return 2;
                }
            if (plat_limits_set(p, account, a->pos[3], &l, err, sizeof err) != 0) goto fail;
        }
        printf("account %s model %s: rpm %" PRId64 " tpm %" PRId64 " rpd %" PRId64
               " tpd %" PRId64 " (0 = unlimited)\n",
               account ? a->pos[2] : "all", a->pos[3], l.rpm, l.tpm, l.rpd, l.tpd);
        return 0;
    }
usage:
    fputs(usage_text, stderr);
    return 2;
fail:
    fprintf(stderr, "silica admin: %s\n", err);
    return 1;
}

int cmd_admin(int argc, char **argv) {
    const char *data = getenv("SILICA_DATA");
    if (!data || !*data) data = "data";
    const char *db_url = getenv("SILICA_DB");
    if (db_url && !*db_url) db_url = NULL;
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "-", 1); i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) {
            data = argv[++i];
            db_url = NULL;
        } else if (!strcmp(argv[i], "--db") && i + 1 < argc) {
            db_url = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else {
            fprintf(stderr, "silica admin: unknown option %s\n", argv[i]);
            fputs(usage_text, stderr);
            return 2;
        }
    }
    args_t a;
    if (i >= argc || parse_args(argc - i, argv + i, &a) != 0 || a.npos == 0) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (db_url && !plat_is_db_url(db_url)) {
        fprintf(stderr, "silica admin: '%s' is not a postgresql:// URL\n", db_url);
        return 2;
    }
    char err[SL_ERR_MAX];
    plat_t *p = plat_open(db_url ? db_url : data, NULL, err, sizeof err);
    if (!p) {
        fprintf(stderr, "silica admin: %s\n", err);
        return 1;
    }
    int rc;
    const char *what = a.pos[0];
    if (!strcmp(what, "accounts") || !strcmp(what, "account")) {
        rc = cmd_accounts(p, &a);
    } else if (!strcmp(what, "keys") || !strcmp(what, "key")) {
        rc = cmd_keys(p, &a);
    } else if (!strcmp(what, "models") || !strcmp(what, "model")) {
        rc = cmd_models(p, &a);
    } else if (!strcmp(what, "usage")) {
        static const char *const ok[] = {"by", "format", "from", "to", "account", NULL};
        int64_t account = 0;
        if (check_opts(&a, ok) || a.npos != 1 ||
            (opt(&a, "account") && parse_id(opt(&a, "account"), &account) != 0)) {
            fputs(usage_text, stderr);
            rc = 2;
        } else {
            rc = report(p, &a, account);
        }
    } else if (!strcmp(what, "verify")) {
        rc = plat_verify(p, err, sizeof err) == 0 ? 0 : 1;
        if (rc)
            fprintf(stderr, "silica admin: %s\n", err);
        else
            printf("ok: every balance equals its credits minus its ledger\n");
    } else {
        fprintf(stderr, "silica admin: unknown command '%s'\n", what);
        fputs(usage_text, stderr);
        rc = 2;
    }
    plat_close(p);
    return rc;
}
