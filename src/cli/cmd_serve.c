/*
 * cmd_serve.c — `silica serve`: load models and serve the OpenAI-compatible
 * HTTP API until SIGINT/SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "base/base.h"
#include "cli/cli.h"
#include "platform/plat_srv.h"
#include "engine/engine.h"
#include "server/server.h"

#define MAX_MODELS SRV_MAX_MODELS

static void serve_usage(FILE *f) {
    fprintf(f,
            "usage: silica serve --model NAME=PATH.gguf [--model ...] [options]\n"
            "  --model NAME=PATH   load PATH as model id NAME (PATH alone: id = file stem)\n"
            "  --host H            listen address (default 127.0.0.1)\n"
            "  --port P            port (default 8080; 0 = any free port)\n"
            "  --threads N         kernel threads per model (default 1)\n"
            "  --ctx N             context length per sequence (default: model's, at most 4096)\n"
            "  --data DIR          data directory (accounts, keys, ledger in DIR/silica.db, SQLite):\n"
            "                      API keys required\n"
            "  --db URL            PostgreSQL instead (postgresql://user:pass@host:port/dbname):\n"
            "                      several nodes may serve the same accounts, keys and ledger;\n"
            "                      default $SILICA_DB when neither --data nor --db is given\n"
            "  --redis URL         rate-limit buckets in Redis, shared by the nodes using it\n"
            "                      (redis://[[user]:pass@]host[:port][/db], unix:///path.sock;\n"
            "                      default $SILICA_REDIS); while it is unreachable each node\n"
            "                      limits by itself\n"
            "  --no-auth           serve without API keys (loopback only)\n"
            "  --no-console        do not serve the web console (GET / and /console/...)\n"
            "  --max-keys N        API keys an account may hold when it creates its own through\n"
            "                      POST /v1/user/keys (default 100; 0 = no cap)\n"
            "  --max-body BYTES    request body limit (default 8388608)\n"
            "  --max-file BYTES    largest file POST /v1/files accepts (default 67108864)\n"
            "  --files-quota BYTES uploaded files an account may keep (default 1073741824)\n"
            "  --batch-price F     batch requests' price as a factor of the model's (default 0.5)\n"
            "  --batch-running N   batch requests running at once, beside interactive ones\n"
            "                      (default 2)\n"
            "  --file-retention D  files are deleted D after their upload or writing, unless a\n"
            "                      batch that is not finished reads them (30d, 12h, 90m, 3600s;\n"
            "                      default 30d; 0 = keep forever)\n"
            "  --batch-retention D finished batches are deleted D after they ended (default 30d;\n"
            "                      0 = keep forever)\n"
            "  --max-conns N       open connections (default 1024)\n"
            "  --max-running N     sequences decoding at once per model (default 16)\n"
            "  --max-queued N      waiting sequences per model before 503 (default 256)\n"
            "  --kv-mem SIZE       KV cache memory per model, e.g. 2G, 512M (default: max-running\n"
            "                      full contexts, at most a quarter of RAM; hybrid models such as\n"
            "                      qwen35 take their max-running recurrent states out of it too)\n"
            "  --kv-type T         KV cache storage: f16 (default), f32, q8_0\n"
            "  --state-ckpt-every N  hybrid models (qwen35...): prompt tokens between recurrent-state\n"
            "                      checkpoints for prefix reuse (default 2048; 0 = only the prompt's\n"
            "                      last full block and the end of generation)\n"
            "  --spec MODE         speculative decoding: ngram (default; prompt lookup, exact output)\n"
            "                      or off\n"
            "  --spec-max K        longest draft per step (default 6, at most 32)\n"
            "  --timeout S         idle connection timeout in seconds (default 300)\n");
}

/* 127.0.0.0/8, ::1, ::ffff:127.x, "localhost". */
static bool is_loopback(const char *host) {
    if (!strcmp(host, "localhost")) return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return false;
}

/* GET /v1/user/info, /v1/user/prices and /v1/user/usage through the platform. */
static int account_route(void *ctx, const char *route, const char *authorization,
                         const char *group_by, char **body, srv_status_t *st) {
    if (!strcmp(route, "info")) return plat_srv_user_info(ctx, authorization, body, st);
    if (!strcmp(route, "prices")) return plat_srv_user_prices(ctx, authorization, body, st);
    return plat_srv_user_usage(ctx, authorization, group_by, body, st);
}

static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* A duration: a whole number with a unit s, m, h or d (seconds alone
 * without one), 0 .. 100 years, into seconds. */
static int parse_duration(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    int64_t unit = 1;
    if (*end == 's') unit = 1, end++;
    else if (*end == 'm') unit = 60, end++;
    else if (*end == 'h') unit = 3600, end++;
    else if (*end == 'd') unit = 86400, end++;
    if (!*s || *end || errno || v < 0 || v > 36500LL * 86400 / unit) return -1;
    *out = (int64_t)v * unit;
    return 0;
}

int cmd_serve(int argc, char **argv) {
    srv_config_t cfg = {0};
    cfg.port = 8080;
    srv_model_spec_t models[MAX_MODELS];
    char *owned[MAX_MODELS] = {0};
    int n_models = 0, rc = 1;
    bool no_auth = false;
    const char *db_url = NULL;
    plat_t *plat = NULL;
    plat_config_t plat_cfg;
    plat_config_default(&plat_cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--no-auth")) {
            no_auth = true;
            continue;
        }
        if (!strcmp(a, "--no-console")) {
            cfg.no_console = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "silica serve: %s needs a value\n", a);
            serve_usage(stderr);
            goto out;
        }
        const char *v = argv[++i];
        long n = 0;
        int bad = 0;
        if (!strcmp(a, "--model") || !strcmp(a, "-m")) {
            if (n_models == MAX_MODELS) {
                fprintf(stderr, "silica serve: at most %d models\n", MAX_MODELS);
                goto out;
            }
            const char *eq = strchr(v, '=');
            char *id;
            const char *path;
            if (eq) {
                id = sl_strndup(v, (size_t)(eq - v));
                path = eq + 1;
            } else {
                const char *base = strrchr(v, '/');
                base = base ? base + 1 : v;
                const char *dot = strrchr(base, '.');
                id = sl_strndup(base, dot && dot != base ? (size_t)(dot - base) : strlen(base));
                path = v;
            }
            if (!id || !*id || !*path) {
                free(id);
                fprintf(stderr, "silica serve: bad --model '%s' (want NAME=PATH.gguf)\n", v);
                goto out;
            }
            owned[n_models] = id;
            models[n_models].id = id;
            models[n_models].path = path;
            n_models++;
        } else if (!strcmp(a, "--host")) {
            cfg.host = v;
        } else if (!strcmp(a, "--port")) {
            bad = parse_int(v, 0, 65535, &n);
            cfg.port = (int)n;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            bad = parse_int(v, 1, 1024, &n);
            cfg.n_threads = (int)n;
        } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            bad = parse_int(v, 16, 1 << 22, &n);
            cfg.n_ctx = (int)n;
        } else if (!strcmp(a, "--data")) {
            cfg.data_dir = v;
        } else if (!strcmp(a, "--db")) {
            db_url = v;
            bad = !plat_is_db_url(v);
        } else if (!strcmp(a, "--redis")) {
            plat_cfg.redis_url = v;
            bad = !*v;
        } else if (!strcmp(a, "--max-body")) {
            bad = parse_int(v, 1024, 1L << 30, &n);
            cfg.max_body = (size_t)n;
        } else if (!strcmp(a, "--max-file")) {
            bad = parse_int(v, 1024, 1L << 30, &n);
            plat_cfg.max_file_bytes = n;
        } else if (!strcmp(a, "--files-quota")) {
            bad = parse_int(v, 1024, INT64_MAX / 2, &n);
            plat_cfg.max_account_file_bytes = n;
        } else if (!strcmp(a, "--batch-price")) {
            int64_t ppm = 0;
            bad = plat_money_parse(v, &ppm) != 0 || ppm < 0 || ppm > PLAT_BATCH_FACTOR_MAX;
            plat_cfg.batch_price_ppm = ppm;
        } else if (!strcmp(a, "--file-retention")) {
            bad = parse_duration(v, &plat_cfg.file_retention_s);
        } else if (!strcmp(a, "--batch-retention")) {
            bad = parse_duration(v, &plat_cfg.batch_retention_s);
        } else if (!strcmp(a, "--batch-running")) {
            bad = parse_int(v, 1, 1024, &n);
            cfg.batch_running = (int)n;
        } else if (!strcmp(a, "--max-conns")) {
            bad = parse_int(v, 1, 1 << 20, &n);
            cfg.max_conns = (int)n;
        } else if (!strcmp(a, "--max-running")) {
            bad = parse_int(v, 1, 4096, &n);
            cfg.max_running = (int)n;
        } else if (!strcmp(a, "--max-queued")) {
            bad = parse_int(v, 1, 1 << 20, &n);
            cfg.max_queued = (int)n;
        } else if (!strcmp(a, "--kv-mem")) {
            bad = eng_parse_mem(v, &cfg.kv_mem) != 0 || cfg.kv_mem == 0;
        } else if (!strcmp(a, "--state-ckpt-every")) {
            bad = parse_int(v, 0, 1 << 30, &n);
            cfg.ckpt_interval = n == 0 ? -1 : (int)n;
        } else if (!strcmp(a, "--spec")) {
            cfg.spec = !strcmp(v, "ngram") ? ENG_SPEC_NGRAM : !strcmp(v, "off") ? ENG_SPEC_OFF : -1;
            bad = cfg.spec < 0;
        } else if (!strcmp(a, "--spec-max")) {
            bad = parse_int(v, 1, ENG_SPEC_MAX_LIMIT, &n);
            cfg.spec_max = (int)n;
        } else if (!strcmp(a, "--kv-type")) {
            cfg.kv_type = eng_kv_from_name(v);
            bad = cfg.kv_type < 0;
        } else if (!strcmp(a, "--max-keys")) {
            bad = parse_int(v, 0, 1000000, &n);
            plat_cfg.max_keys = (int)n;
        } else if (!strcmp(a, "--timeout")) {
            bad = parse_int(v, 1, 86400, &n);
            cfg.timeout_s = (int)n;
        } else {
            fprintf(stderr, "silica serve: unknown option %s\n", a);
            serve_usage(stderr);
            goto out;
        }
        if (bad) {
            fprintf(stderr, "silica serve: bad value '%s' for %s\n", v, a);
            goto out;
        }
    }
    if (n_models == 0) {
        fprintf(stderr, "silica serve: give at least one --model NAME=PATH.gguf\n");
        serve_usage(stderr);
        goto out;
    }
    if (cfg.data_dir && db_url) {
        fprintf(stderr, "silica serve: give --data DIR or --db URL, not both\n");
        goto out;
    }
    if (!cfg.data_dir && !db_url && getenv("SILICA_DB") && *getenv("SILICA_DB")) {
        db_url = getenv("SILICA_DB");
        if (!plat_is_db_url(db_url)) {
            fprintf(stderr, "silica serve: SILICA_DB is not a postgresql:// URL\n");
            goto out;
        }
    }
    if (!plat_cfg.redis_url && getenv("SILICA_REDIS") && *getenv("SILICA_REDIS"))
        plat_cfg.redis_url = getenv("SILICA_REDIS");
    const char *store = db_url ? db_url : cfg.data_dir;
    char err[SL_ERR_MAX];
    const char *host = cfg.host ? cfg.host : "127.0.0.1";
    bool loopback = is_loopback(host);
    if (no_auth && !loopback) {
        fprintf(stderr, "silica serve: --no-auth serves only on a loopback address, not %s\n", host);
        goto out;
    }
    if (!store && !no_auth && !loopback) {
        fprintf(stderr, "silica serve: refusing to serve %s without API keys; give --data DIR "
                        "or --db URL (or --no-auth on 127.0.0.1)\n", host);
        goto out;
    }
    if (plat_cfg.redis_url && (!store || no_auth)) {
        fprintf(stderr, "silica serve: --redis (or SILICA_REDIS) holds the rate limits of API "
                        "keys; it needs --data DIR or --db URL and no --no-auth\n");
        goto out;
    }
    if (store && !no_auth) {
        /* a Redis or PostgreSQL peer gone mid-write is an error to handle,
         * not a signal that ends the process (srv_run sets this too, later) */
        signal(SIGPIPE, SIG_IGN);
        plat = plat_open(store, &plat_cfg, err, sizeof err);
        if (!plat) {
            fprintf(stderr, "silica serve: %s\n", err);
            goto out;
        }
        char key[PLAT_KEY_MAX];
        bool created = false;
        if (plat_bootstrap_if_empty(plat, key, &created, err, sizeof err) != 0) {
            fprintf(stderr, "silica serve: %s\n", err);
            goto out;
        }
        if (created) {
            printf("silica: created account 1 (admin) and its first API key (shown only now):\n  %s\n", key);
            fflush(stdout);
        }
        plat_srv_hooks(plat, &cfg.hooks);
        cfg.hooks.account = account_route;
        /* an upload's multipart body: the file and a little form around it */
        cfg.max_upload = (size_t)plat_cfg.max_file_bytes + ((size_t)64 << 10);
    } else {
        fprintf(stderr, "silica serve: API keys are not checked (%s); serving on %s only\n",
                no_auth ? "--no-auth" : "no --data or --db", host);
    }
    srv_t *s = srv_new(&cfg, models, n_models, err, sizeof err);
    if (!s) {
        fprintf(stderr, "silica serve: %s\n", err);
        goto out;
    }
    rc = srv_run(s);
    srv_free(s);
out:
    plat_close(plat);
    for (int i = 0; i < n_models; i++) free(owned[i]);
    return rc;
}
