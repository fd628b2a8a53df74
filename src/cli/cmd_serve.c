/*
 * cmd_serve.c — `silica serve`: load models and serve the OpenAI-compatible
 * HTTP API until SIGINT/SIGTERM.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "cli/cli.h"
#include "server/server.h"

#define MAX_MODELS 16

static void serve_usage(FILE *f) {
    fprintf(f,
            "usage: silica serve --model NAME=PATH.gguf [--model ...] [options]\n"
            "  --model NAME=PATH   load PATH as model id NAME (PATH alone: id = file stem)\n"
            "  --host H            listen address (default 127.0.0.1)\n"
            "  --port P            port (default 8080; 0 = any free port)\n"
            "  --threads N         kernel threads per model (default 1)\n"
            "  --ctx N             context length per sequence (default: model's, at most 4096)\n"
            "  --data DIR          data directory (accounts, ledger)\n"
            "  --max-body BYTES    request body limit (default 8388608)\n"
            "  --max-conns N       open connections (default 1024)\n"
            "  --max-running N     sequences decoding at once per model (default 16)\n"
            "  --max-queued N      waiting sequences per model before 503 (default 256)\n"
            "  --timeout S         idle connection timeout in seconds (default 300)\n");
}

static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cmd_serve(int argc, char **argv) {
    srv_config_t cfg = {0};
    cfg.port = 8080;
    srv_model_spec_t models[MAX_MODELS];
    char *owned[MAX_MODELS] = {0};
    int n_models = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_usage(stdout);
            return 0;
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
        } else if (!strcmp(a, "--max-body")) {
            bad = parse_int(v, 1024, 1L << 30, &n);
            cfg.max_body = (size_t)n;
        } else if (!strcmp(a, "--max-conns")) {
            bad = parse_int(v, 1, 1 << 20, &n);
            cfg.max_conns = (int)n;
        } else if (!strcmp(a, "--max-running")) {
            bad = parse_int(v, 1, 4096, &n);
            cfg.max_running = (int)n;
        } else if (!strcmp(a, "--max-queued")) {
            bad = parse_int(v, 1, 1 << 20, &n);
            cfg.max_queued = (int)n;
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
    if (cfg.data_dir) mkdir(cfg.data_dir, 0755);
    char err[SL_ERR_MAX];
    srv_t *s = srv_new(&cfg, models, n_models, err, sizeof err);
    if (!s) {
        fprintf(stderr, "silica serve: %s\n", err);
        goto out;
    }
    rc = srv_run(s);
    srv_free(s);
out:
    for (int i = 0; i < n_models; i++) free(owned[i]);
    return rc;
}
