/*
 * cmd_route.c — `silica route`: the prefix-affinity router in front of
 * several `silica serve` nodes (src/router, docs/router.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "router/router.h"

static void route_usage(FILE *f) {
    fprintf(
        f,
        "usage: silica route --listen HOST:PORT --backend http://HOST:PORT [--backend ...] "
        "[options]\n"
        "  --listen HOST:PORT     address to serve on (default 127.0.0.1:8080; port 0 = any free\n"
        "                         port; IPv6 as [::1]:PORT)\n"
        "  --backend URL          a `silica serve` node, http://HOST:PORT (1 to %d of them)\n"
        "  --key-bytes N          prompt bytes in the affinity key (default 1024): a shared\n"
        "                         prefix at least this long sends requests to one node\n"
        "  --spill N              pass over the affinity node when it has N more requests in\n"
        "                         flight than the least busy node (1.., default 16; -1 never)\n"
        "  --health-interval S    seconds between health checks of each node (default 2)\n"
        "  --health-timeout S     seconds a health check may take (default 2)\n"
        "  --health-fails N       failed checks in a row (no answer in time, or not 200) that\n"
        "                         mark a node down (default 2; a refused connection: at once)\n"
        "  --timeout S            idle read/write timeout, client and node side (default 300)\n"
        "  --drain S              on SIGTERM/SIGINT, stop listening and let requests in flight\n"
        "                         finish for up to S seconds (default 30; 0 = exit at once;\n"
        "                         a second signal exits at once)\n"
        "  --max-body BYTES       request body limit (default 8388608)\n"
        "  --no-backend-header    do not name the node that answered (X-Silica-Backend)\n",
        RT_MAX_BACKENDS);
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= 0.05 && v <= 3600)) return -1;
    *out = v;
    return 0;
}

/* HOST:PORT or [V6]:PORT into host (in buf) and port. */
static int parse_listen(const char *s, char *buf, size_t cap, const char **host, int *port) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -1;
    size_t hl = (size_t)(colon - s);
    const char *h = s;
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']') return -1;
        h++;
        hl -= 2;
    }
    if (hl + 1 > cap) return -1;
    memcpy(buf, h, hl);
    buf[hl] = '\0';
    long p;
    if (parse_long(colon + 1, 0, 65535, &p) != 0) return -1;
    *host = buf;
    *port = (int)p;
    return 0;
}

int cmd_route(int argc, char **argv) {
    rt_config_t cfg = {0};
    cfg.port = 8080;
    char host[256];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            route_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--no-backend-header")) {
            cfg.no_backend_header = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "silica route: %s needs a value\n", a);
            route_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        long n = 0;
        int bad = 0;
        if (!strcmp(a, "--listen")) {
            bad = parse_listen(v, host, sizeof host, &cfg.host, &cfg.port);
        } else if (!strcmp(a, "--backend")) {
            if (cfg.n_backends >= RT_MAX_BACKENDS) {
                fprintf(stderr, "silica route: at most %d backends\n", RT_MAX_BACKENDS);
                return 2;
            }
            cfg.backends[cfg.n_backends++] = v;
        } else if (!strcmp(a, "--key-bytes")) {
            bad = parse_long(v, 16, 1L << 20, &n);
            cfg.key_bytes = (size_t)n;
        } else if (!strcmp(a, "--spill")) {
            bad = parse_long(v, -1, 1000000, &n) || n == 0;
            cfg.spill = (int)n;
        } else if (!strcmp(a, "--health-interval")) {
            bad = parse_seconds(v, &cfg.health_interval_s);
        } else if (!strcmp(a, "--health-fails")) {
            bad = parse_long(v, 1, 100, &n);
            cfg.health_fails = (int)n;
        } else if (!strcmp(a, "--health-timeout")) {
            bad = parse_seconds(v, &cfg.health_timeout_s);
        } else if (!strcmp(a, "--drain")) {
            char *end;
            cfg.drain_s = strtod(v, &end);
            bad = !*v || *end || !(cfg.drain_s >= 0 && cfg.drain_s <= 86400);
            if (cfg.drain_s == 0) cfg.drain_s = -1; /* none: 0 in the config means the default */
        } else if (!strcmp(a, "--timeout")) {
            bad = parse_long(v, 1, 86400, &n);
            cfg.timeout_s = (int)n;
        } else if (!strcmp(a, "--max-body")) {
            bad = parse_long(v, 1024, 1L << 30, &n);
            cfg.max_body = (size_t)n;
        } else {
            fprintf(stderr, "silica route: unknown option %s\n", a);
            route_usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "silica route: bad value for %s: '%s'\n", a, v);
            return 2;
        }
    }
    if (cfg.n_backends == 0) {
        fprintf(stderr, "silica route: no backend given (--backend http://HOST:PORT)\n");
        route_usage(stderr);
        return 2;
    }
    char err[SL_ERR_MAX];
    rt_t *r = rt_new(&cfg, err, sizeof err);
    if (!r) {
        fprintf(stderr, "silica route: %s\n", err);
        return 1;
    }
    rt_run(r);
    rt_free(r);
    return 0;
}
