/*
 * rl_redis.c — token buckets in Redis (rl_redis.h): the URL, the
 * connection with its timeouts and background reconnection, and the one
 * Lua script that checks-and-takes or gives back, atomically, on Redis's
 * clock.
 *
 * Invariants:
 *  - r->ctx is used only under r->mu; NULL means "down": callers get -1 at
 *    once and only the reconnect thread dials (outside the mutex), so a
 *    request waits on Redis at most one command timeout, and only when the
 *    connection dies under it.
 *  - Every reply is checked for type and size before a field is read; an
 *    unexpected one is an error (-1), never trusted.
 *  - The script's SHA-1 is computed here, and the server's SCRIPT LOAD
 *    answer must equal it: a server that is not a Redis with scripting is
 *    refused at open.
 */
#include "platform/rl_redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"

/* One bucket per key: a hash {l = level, c = cap, t = last refill, ms by
 * Redis's TIME}. ARGV[1] is "take" or "give"; then for key i: cap,
 * window (ms), amount. A missing key is a full bucket. A cap that changed
 * clips the level to the new cap (a raised cap keeps the level). "take"
 * checks every bucket first (need = min(amount, cap)) and writes nothing
 * unless all pass; it answers {1,0,0} (taken) or {0, i, wait_ms} (the
 * bucket with the longest wait). "give" adds amount (clipped at cap).
 * Each write sets the TTL to the time to refill to full plus 1 s, at most
 * ten windows. */
static const char rl_script[] =
    "if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
    "local tm = redis.call('TIME')\n"
    "local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)\n"
    "local give = ARGV[1] == 'give'\n"
    "local n = #KEYS\n"
    "local lv = {}\n"
    "local worst, worst_wait = 0, -1\n"
    "for i = 1, n do\n"
    "  local cap = tonumber(ARGV[3 * i - 1])\n"
    "  local win = tonumber(ARGV[3 * i])\n"
    "  local amt = tonumber(ARGV[3 * i + 1])\n"
    "  local h = redis.call('HMGET', KEYS[i], 'l', 'c', 't')\n"
    "  local l, c, t = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])\n"
    "  if l == nil or c == nil or t == nil then\n"
    "    l = cap\n"
    "  else\n"
    "    if c ~= cap and l > cap then l = cap end\n"
    "    if now > t then l = l + (now - t) * cap / win end\n"
    "    if l > cap then l = cap end\n"
    "  end\n"
    "  lv[i] = l\n"
    "  if not give then\n"
    "    local need = math.min(amt, cap)\n"
    "    if l < need then\n"
    "      local w = math.ceil((need - l) * win / cap)\n"
    "      if w > worst_wait then worst, worst_wait = i, w end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if worst > 0 then return {0, worst, worst_wait} end\n"
    "for i = 1, n do\n"
    "  local cap = tonumber(ARGV[3 * i - 1])\n"
    "  local win = tonumber(ARGV[3 * i])\n"
    "  local amt = tonumber(ARGV[3 * i + 1])\n"
    "  local l\n"
    "  if give then l = math.min(lv[i] + amt, cap) else l = lv[i] - amt end\n"
    "  redis.call('HSET', KEYS[i], 'l', string.format('%.17g', l), 'c', string.format('%d', cap),"
    " 't', string.format('%d', now))\n"
    "  local ttl = math.min(math.ceil((cap - l) * win / cap), 10 * win) + 1000\n"
    "  redis.call('PEXPIRE', KEYS[i], string.format('%d', ttl))\n"
    "end\n"
    "return {1, 0, 0}\n";

struct rl_redis {
    /* from the URL; read-only after open */
    bool unix_sock;
    char host[256]; /* or the socket path */
    int port;
    int db;
    char user[128], password[256];
    char where[300];
    rl_redis_opts_t o;
    char sha[41]; /* SHA-1 of rl_script, hex */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the reconnect thread (CLOCK_MONOTONIC) */
    redisContext *ctx; /* under mu; NULL = down */
    bool stop;         /* under mu */
    bool thread_running;
    pthread_t thread;
    int64_t down_since_ms; /* monotonic, while down */
    bool bad_reply_logged; /* one log line per run of bad replies */
    rl_redis_stats_t st;   /* under mu (st.up derived from ctx) */
};

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the URL ---- */

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes with the NUL); -1 when it
 * does not fit, a %XX is broken or decodes to NUL. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = h * 16 + l;
            if (c == 0) return -1;
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

static int parse_uint(const char *s, size_t n, long lo, long hi, long *out) {
    if (n == 0 || n > 9) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* key=value&... */
static int parse_query(rl_redis_t *r, const char *q, char *err, size_t errlen) {
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        if (!eq) return sl_err(err, errlen, "Redis URL: option '%.*s' has no value", (int)n, q);
        size_t kn = (size_t)(eq - q), vn = n - kn - 1;
        const char *v = eq + 1;
        long x;
        if (kn == 2 && !memcmp(q, "db", 2)) {
            if (parse_uint(v, vn, 0, INT_MAX, &x) != 0)
                return sl_err(err, errlen, "Redis URL: db must be a number");
            r->db = (int)x;
        } else if (kn == 8 && !memcmp(q, "password", 8)) {
            if (pct_decode(v, vn, r->password, sizeof r->password) != 0)
                return sl_err(err, errlen, "Redis URL: bad password");
        } else if (kn == 4 && !memcmp(q, "user", 4)) {
            if (pct_decode(v, vn, r->user, sizeof r->user) != 0)
                return sl_err(err, errlen, "Redis URL: bad user");
        } else if (kn == 10 && !memcmp(q, "timeout_ms", 10)) {
            if (parse_uint(v, vn, 1, 60000, &x) != 0)
                return sl_err(err, errlen, "Redis URL: timeout_ms must be 1..60000");
            r->o.command_timeout_ms = (int)x;
        } else if (kn == 18 && !memcmp(q, "connect_timeout_ms", 18)) {
            if (parse_uint(v, vn, 1, 60000, &x) != 0)
                return sl_err(err, errlen, "Redis URL: connect_timeout_ms must be 1..60000");
            r->o.connect_timeout_ms = (int)x;
        } else {
            return sl_err(err, errlen,
                          "Redis URL: unknown option '%.*s' (db, password, user, timeout_ms, "
                          "connect_timeout_ms)",
                          (int)SL_MIN(kn, 40), q);
        }
        q += n + (amp ? 1 : 0);
    }
    return 0;
}

static int parse_url(rl_redis_t *r, const char *url, char *err, size_t errlen) {
    static const char usage[] =
        "give redis://[[user]:password@]host[:port][/db] or unix:///path/to.sock";
    if (strlen(url) > 1000) return sl_err(err, errlen, "Redis URL too long");
    r->port = 6379;
    const char *q = strchr(url, '?');
    size_t len = q ? (size_t)(q - url) : strlen(url);
    if (!strncmp(url, "unix://", 7)) {
        r->unix_sock = true;
        const char *p = url + 7;
        size_t n = len - 7;
        if (n == 0 || p[0] != '/')
            return sl_err(err, errlen, "Redis URL: the socket path must be absolute (%s)", usage);
        if (pct_decode(p, n, r->host, sizeof r->host) != 0)
            return sl_err(err, errlen, "Redis URL: bad or too long socket path");
    } else if (!strncmp(url, "redis://", 8)) {
        const char *p = url + 8, *end = url + len;
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *auth_end = slash ? slash : end;
        const char *at = NULL;
        for (const char *c = p; c < auth_end; c++)
            if (*c == '@') at = c;
        if (at) {
            const char *colon = memchr(p, ':', (size_t)(at - p));
            if (!colon)
                return sl_err(err, errlen,
                              "Redis URL: write the password as :PASSWORD@ or "
                              "USER:PASSWORD@");
            if (pct_decode(p, (size_t)(colon - p), r->user, sizeof r->user) != 0 ||
                pct_decode(colon + 1, (size_t)(at - colon - 1), r->password, sizeof r->password) !=
                    0)
                return sl_err(err, errlen, "Redis URL: bad user or password");
            p = at + 1;
        }
        const char *hend = auth_end, *port = NULL;
        if (p < hend && *p == '[') {
            const char *rb = memchr(p, ']', (size_t)(hend - p));
            if (!rb) return sl_err(err, errlen, "Redis URL: unclosed [ in the host");
            if ((size_t)(rb - p - 1) >= sizeof r->host || rb == p + 1)
                return sl_err(err, errlen, "Redis URL: bad host");
            memcpy(r->host, p + 1, (size_t)(rb - p - 1));
            r->host[rb - p - 1] = '\0';
            if (rb + 1 < hend) {
                if (rb[1] != ':') return sl_err(err, errlen, "Redis URL: bad host");
                port = rb + 2;
            }
        } else {
            const char *colon = memchr(p, ':', (size_t)(hend - p));
            const char *he = colon ? colon : hend;
            if (he == p || (size_t)(he - p) >= sizeof r->host)
                return sl_err(err, errlen, "Redis URL: no host (%s)", usage);
            memcpy(r->host, p, (size_t)(he - p));
            r->host[he - p] = '\0';
            if (colon) port = colon + 1;
        }
        long x;
        if (port && parse_uint(port, (size_t)(hend - port), 1, 65535, &x) != 0)
            return sl_err(err, errlen, "Redis URL: the port must be 1..65535");
        if (port) r->port = (int)x;
        if (slash && slash + 1 < end) {
            if (parse_uint(slash + 1, (size_t)(end - slash - 1), 0, INT_MAX, &x) != 0)
                return sl_err(err, errlen, "Redis URL: the path must be a database number");
            r->db = (int)x;
        }
    } else if (!strncmp(url, "rediss://", 9)) {
        return sl_err(err, errlen, "Redis URL: TLS (rediss://) is not supported; %s", usage);
    } else {
        return sl_err(err, errlen, "not a Redis URL: %s", usage);
    }
    if (q && parse_query(r, q + 1, err, errlen) != 0) return -1;
    if (r->user[0] && !r->password[0])
        return sl_err(err, errlen, "Redis URL: a user needs a password");
    if (r->unix_sock)
        snprintf(r->where, sizeof r->where, "unix:%s/%d", r->host, r->db);
    else
        snprintf(r->where, sizeof r->where, strchr(r->host, ':') ? "[%s]:%d/%d" : "%s:%d/%d",
                 r->host, r->port, r->db);
    return 0;
}

/* ---- bounded replies ----
 *
 * hiredis builds any reply the server describes: "*4000000000" makes it
 * allocate an array of that many pointers before one element arrives. No
 * answer of ours is larger than a few hundred bytes or three elements, so
 * every context's reader builds replies through hiredis's own functions
 * behind these bounds; a refused one fails the call (hiredis then reports
 * out of memory on the context), and the connection is dropped as for any
 * reply that leaves the stream in doubt. */
#define RL_REPLY_MAX_ELEMENTS 16
#define RL_REPLY_MAX_BYTES 65536

static pthread_mutex_t fns_mu = PTHREAD_MUTEX_INITIALIZER;
static redisReplyObjectFunctions hiredis_fns, bounded_fns; /* set once, under fns_mu */
static bool fns_ready;

#if HIREDIS_MAJOR >= 1
typedef size_t rl_nelem_t; /* hiredis 1.x counts elements in size_t */
#else
typedef int rl_nelem_t; /* 0.14 (Debian 12) in int */
#endif

static void *bounded_array(const redisReadTask *t, rl_nelem_t n) {
    const long long v = (long long)n; /* a huge size_t turns negative: refused too */
    if (v < 0 || v > RL_REPLY_MAX_ELEMENTS) return NULL;
    return hiredis_fns.createArray(t, n);
}

static void *bounded_string(const redisReadTask *t, char *s, size_t len) {
    if (len > RL_REPLY_MAX_BYTES) return NULL;
    return hiredis_fns.createString(t, s, len);
}

/* Puts the bounds on c's reader. -1 when hiredis has no functions to wrap. */
static int bound_replies(redisContext *c) {
    pthread_mutex_lock(&fns_mu);
    if (!fns_ready && c->reader && c->reader->fn && c->reader->fn->createArray &&
        c->reader->fn->createString) {
        hiredis_fns = *c->reader->fn; /* hiredis's defaults, the same for every context */
        bounded_fns = hiredis_fns;
        bounded_fns.createArray = bounded_array;
        bounded_fns.createString = bounded_string;
        fns_ready = true;
    }
    pthread_mutex_unlock(&fns_mu);
    if (!fns_ready || !c->reader) return -1;
    c->reader->fn = &bounded_fns;
    return 0;
}

/* ---- the connection ---- */

static struct timeval tv_ms(int ms) {
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* Copies a server's error text into err, printable ASCII only, cut short. */
static void reply_text(char *out, size_t cap, const redisReply *rp) {
    size_t o = 0;
    for (size_t i = 0; rp->str && i < rp->len && i < 200 && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)rp->str[i];
        out[o++] = c >= 32 && c < 127 ? (char)c : '?';
    }
    if (cap) out[o] = '\0';
}

/* Runs one command during the handshake and wants a status "OK" (or, for
 * SCRIPT LOAD, the script's SHA-1). 0, or -1 with *refused set when the
 * server answered with something else (a configuration problem), clear
 * when the connection failed. */
static int handshake_cmd(redisContext *c, int argc, const char **argv, const size_t *lens,
                         const char *want_sha, bool *refused, char *err, size_t errlen) {
    redisReply *rp = redisCommandArgv(c, argc, argv, lens);
    if (!rp) {
        *refused = false;
        return sl_err(err, errlen, "%s", c->errstr[0] ? c->errstr : "connection lost");
    }
    int rc = 0;
    char text[210];
    if (rp->type == REDIS_REPLY_ERROR) {
        reply_text(text, sizeof text, rp);
        rc = sl_err(err, errlen, "%s refused: %s", argv[0], text);
    } else if (want_sha) {
        if (rp->type != REDIS_REPLY_STRING || rp->len != 40 || memcmp(rp->str, want_sha, 40) != 0)
            rc = sl_err(err, errlen,
                        "SCRIPT LOAD answered an unexpected reply (not a Redis with Lua "
                        "scripting?)");
    } else if (rp->type != REDIS_REPLY_STATUS || rp->len != 2 || memcmp(rp->str, "OK", 2) != 0) {
        rc = sl_err(err, errlen, "%s answered an unexpected reply", argv[0]);
    }
    freeReplyObject(rp);
    if (rc) *refused = true;
    return rc;
}

/* Connects, authenticates, selects the db, loads the script. NULL with a
 * message; *refused tells a server that answered "no" from one that did
 * not answer. */
static redisContext *dial(rl_redis_t *r, bool *refused, char *err, size_t errlen) {
    *refused = false;
    const struct timeval ct = tv_ms(r->o.connect_timeout_ms);
    redisContext *c = r->unix_sock ? redisConnectUnixWithTimeout(r->host, ct)
                                   : redisConnectWithTimeout(r->host, r->port, ct);
    if (!c) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    if (c->err) {
        sl_err(err, errlen, "%s", c->errstr);
        redisFree(c);
        return NULL;
    }
    if (bound_replies(c) != 0) {
        sl_err(err, errlen, "cannot bound the size of Redis replies");
        redisFree(c);
        return NULL;
    }
    /* the connect timeout covers the handshake too; then the command timeout */
    if (redisSetTimeout(c, ct) != REDIS_OK) {
        sl_err(err, errlen, "cannot set the socket timeout");
        redisFree(c);
        return NULL;
    }
    if (r->password[0]) {
        const char *argv[3] = {"AUTH", r->user, r->password};
        size_t lens[3] = {4, strlen(r->user), strlen(r->password)};
        int rc = r->user[0] ? handshake_cmd(c, 3, argv, lens, NULL, refused, err, errlen)
                            : handshake_cmd(c, 2, (const char *[]){"AUTH", r->password},
                                            (size_t[]){4, lens[2]}, NULL, refused, err, errlen);
        if (rc) goto fail;
    }
    if (r->db != 0) {
        char dbs[16];
        snprintf(dbs, sizeof dbs, "%d", r->db);
        const char *argv[2] = {"SELECT", dbs};
        size_t lens[2] = {6, strlen(dbs)};
        if (handshake_cmd(c, 2, argv, lens, NULL, refused, err, errlen)) goto fail;
    }
    {
        const char *argv[3] = {"SCRIPT", "LOAD", rl_script};
        size_t lens[3] = {6, 4, sizeof rl_script - 1};
        if (handshake_cmd(c, 3, argv, lens, r->sha, refused, err, errlen)) goto fail;
    }
    if (redisSetTimeout(c, tv_ms(r->o.command_timeout_ms)) != REDIS_OK) {
        sl_err(err, errlen, "cannot set the socket timeout");
        goto fail;
    }
    return c;
fail:
    redisFree(c);
    return NULL;
}

/* Under mu: the connection failed (`what`: "unreachable", or how the
 * server broke the protocol); drop it and wake the reconnect thread. */
static void mark_down(rl_redis_t *r, const char *what, const char *why) {
    if (r->ctx) redisFree(r->ctx);
    r->ctx = NULL;
    r->st.outages++;
    r->down_since_ms = mono_ms();
    sl_warn("rate limits: Redis at %s %s (%s); each node limits by itself until it is back",
            r->where, what, why);
    pthread_cond_signal(&r->cv);
}

static void *reconnect_main(void *arg) {
    rl_redis_t *r = arg;
    int backoff = r->o.backoff_min_ms;
    char last_err[SL_ERR_MAX] = "";
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        if (r->ctx) {
            backoff = r->o.backoff_min_ms;
            last_err[0] = '\0';
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        int64_t ns = (int64_t)t.tv_nsec + (int64_t)backoff * 1000000;
        t.tv_sec += (time_t)(ns / 1000000000);
        t.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&r->cv, &r->mu, &t);
        if (r->stop || r->ctx) continue;
        pthread_mutex_unlock(&r->mu);
        char err[SL_ERR_MAX];
        bool refused;
        redisContext *c = dial(r, &refused, err, sizeof err);
        pthread_mutex_lock(&r->mu);
        if (c && r->stop) {
            redisFree(c);
        } else if (c) {
            r->ctx = c;
            r->st.reconnects++;
            r->bad_reply_logged = false;
            sl_info("rate limits: Redis at %s is back after %.1f s; limits are shared again",
                    r->where, (double)(mono_ms() - r->down_since_ms) / 1000.0);
        } else {
            if (refused && strcmp(err, last_err) != 0) /* e.g. the password changed */
                sl_warn("rate limits: Redis at %s: %s", r->where, err);
            snprintf(last_err, sizeof last_err, "%s", err);
            backoff = backoff > r->o.backoff_max_ms / 2 ? r->o.backoff_max_ms : backoff * 2;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

rl_redis_t *rl_redis_open(const char *url, const rl_redis_opts_t *o, char *err, size_t errlen) {
    rl_redis_t *r = calloc(1, sizeof *r);
    if (!r) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    if (o) r->o = *o;
    if (parse_url(r, url, err, errlen) != 0) {
        free(r);
        return NULL;
    }
    if (r->o.connect_timeout_ms <= 0) r->o.connect_timeout_ms = 1000;
    if (r->o.command_timeout_ms <= 0) r->o.command_timeout_ms = 250;
    if (r->o.backoff_min_ms <= 0) r->o.backoff_min_ms = 100;
    if (r->o.backoff_max_ms < r->o.backoff_min_ms)
        r->o.backoff_max_ms = SL_MAX(2000, r->o.backoff_min_ms);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(rl_script, sizeof rl_script - 1, md, &mdlen, EVP_sha1(), NULL) != 1 ||
        mdlen != 20) {
        free(r);
        sl_err(err, errlen, "SHA-1 unavailable");
        return NULL;
    }
    for (unsigned i = 0; i < 20; i++)
        snprintf(r->sha + 2 * i, 3, "%02x", md[i]);
    bool refused;
    char why[SL_ERR_MAX];
    r->ctx = dial(r, &refused, why, sizeof why);
    if (!r->ctx && refused) {
        sl_err(err, errlen, "Redis at %s: %s", r->where, why);
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!r->ctx) {
        r->st.outages = 1;
        r->down_since_ms = mono_ms();
        sl_warn("rate limits: Redis at %s unreachable at start (%s); each node limits by itself "
                "until it is reachable",
                r->where, why);
    }
    if (pthread_create(&r->thread, NULL, reconnect_main, r) != 0) {
        sl_err(err, errlen, "cannot start the Redis reconnect thread");
        rl_redis_close(r);
        return NULL;
    }
    r->thread_running = true;
    return r;
}

void rl_redis_close(rl_redis_t *r) {
    if (!r) return;
    if (r->thread_running) {
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    if (r->ctx) redisFree(r->ctx);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

const char *rl_redis_where(const rl_redis_t *r) {
    return r->where;
}

void rl_redis_stats(rl_redis_t *r, rl_redis_stats_t *out) {
    pthread_mutex_lock(&r->mu);
    *out = r->st;
    out->up = r->ctx != NULL;
    pthread_mutex_unlock(&r->mu);
}

/* ---- the script ---- */

/* Under mu: a reply that is not what the script returns. */
static int bad_reply(rl_redis_t *r, char *err, size_t errlen, const char *what) {
    r->st.errors++;
    if (!r->bad_reply_logged) {
        r->bad_reply_logged = true;
        sl_warn("rate limits: Redis at %s: %s; limiting on this node for these requests", r->where,
                what);
    }
    return sl_err(err, errlen, "Redis at %s: %s", r->where, what);
}

/* Whether the script's answer v is one it can give: "taken" {1,0,0}, or
 * for a take "denied" {0, bucket 1..n, wait >= 0}. */
static bool answer_ok(const long long v[3], bool take, int n) {
    if (v[0] == 1 && v[1] == 0 && v[2] == 0) return true;
    return take && v[0] == 0 && v[1] >= 1 && v[1] <= n && v[2] >= 0 && v[2] <= INT64_MAX / 4;
}

/* Runs the script on n buckets; 0 and *st3 = the script's three integers
 * (checked by answer_ok), or -1. */
static int run_script(rl_redis_t *r, const char *mode, const rl_redis_bucket_t *b, int n,
                      long long st3[3], char *err, size_t errlen) {
    if (n < 1 || n > RL_REDIS_MAX_BUCKETS) return sl_err(err, errlen, "bad bucket count %d", n);
    enum { MAXARGS = 4 + RL_REDIS_MAX_BUCKETS * 4 };
    const char *argv[MAXARGS];
    size_t lens[MAXARGS];
    char nums[RL_REDIS_MAX_BUCKETS * 3 + 1][32];
    int a = 0, k = 0;
    argv[a++] = "EVALSHA";
    argv[a++] = r->sha;
    snprintf(nums[k], sizeof nums[k], "%d", n);
    argv[a++] = nums[k++];
    for (int i = 0; i < n; i++) {
        if (!b[i].key || !b[i].key[0] || b[i].cap <= 0 || b[i].window_ms <= 0 ||
            !(b[i].amount == b[i].amount) || b[i].amount > 1e15 || b[i].amount < -1e15)
            return sl_err(err, errlen, "bad bucket %d", i);
        argv[a++] = b[i].key;
    }
    argv[a++] = mode;
    for (int i = 0; i < n; i++) {
        snprintf(nums[k], sizeof nums[k], "%" PRId64, b[i].cap);
        argv[a++] = nums[k++];
        snprintf(nums[k], sizeof nums[k], "%" PRId64, b[i].window_ms);
        argv[a++] = nums[k++];
        snprintf(nums[k], sizeof nums[k], "%.17g", b[i].amount);
        argv[a++] = nums[k++];
    }
    for (int i = 0; i < a; i++)
        lens[i] = strlen(argv[i]);

    pthread_mutex_lock(&r->mu);
    int rc = -1;
    if (!r->ctx) {
        sl_err(err, errlen, "Redis at %s is unreachable", r->where);
        goto out;
    }
    redisReply *rp = redisCommandArgv(r->ctx, a, argv, lens);
    if (rp && rp->type == REDIS_REPLY_ERROR && rp->len >= 8 && !memcmp(rp->str, "NOSCRIPT", 8)) {
        /* the server forgot it (restart, SCRIPT FLUSH): EVAL loads it again */
        freeReplyObject(rp);
        argv[0] = "EVAL";
        argv[1] = rl_script;
        lens[0] = 4;
        lens[1] = sizeof rl_script - 1;
        rp = redisCommandArgv(r->ctx, a, argv, lens);
    }
    if (!rp) {
        char why[200];
        const bool bad = r->ctx->err == REDIS_ERR_OOM || r->ctx->err == REDIS_ERR_PROTOCOL;
        if (bad) {
            /* a reply beyond the bounds above, or not RESP at all */
            r->st.errors++;
            snprintf(why, sizeof why, "a reply too large or malformed (%s)", r->ctx->errstr);
        } else {
            snprintf(why, sizeof why, "%s", r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
        }
        mark_down(r, bad ? "answered outside the protocol; connection dropped" : "unreachable",
                  why);
        sl_err(err, errlen, "Redis at %s: %s", r->where, why);
        goto out;
    }
    if (rp->type == REDIS_REPLY_ERROR) {
        char text[210], what[260];
        reply_text(text, sizeof text, rp);
        snprintf(what, sizeof what, "the script failed: %s", text);
        bad_reply(r, err, errlen, what);
    } else if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 3) {
        bad_reply(r, err, errlen, "the script answered a reply of the wrong type or size");
    } else {
        rc = 0;
        for (int i = 0; i < 3; i++) {
            if (!rp->element[i] || rp->element[i]->type != REDIS_REPLY_INTEGER) {
                rc = bad_reply(r, err, errlen, "the script answered a non-integer");
                break;
            }
            st3[i] = rp->element[i]->integer;
        }
        if (rc == 0 && !answer_ok(st3, !strcmp(mode, "take"), n))
            rc = bad_reply(r, err, errlen, "the script answered values out of range");
        if (rc == 0) {
            r->st.calls++;
            r->bad_reply_logged = false;
        }
    }
    freeReplyObject(rp);
out:
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int rl_redis_take(rl_redis_t *r, const rl_redis_bucket_t *b, int n, int *denied, int64_t *wait_ms,
                  char *err, size_t errlen) {
    long long v[3];
    if (run_script(r, "take", b, n, v, err, errlen) != 0) return -1;
    if (v[0] == 1) return RL_REDIS_TAKEN;
    *denied = (int)(v[1] - 1);
    *wait_ms = v[2];
    return RL_REDIS_DENIED;
}

int rl_redis_give(rl_redis_t *r, const rl_redis_bucket_t *b, int n, char *err, size_t errlen) {
    long long v[3];
    return run_script(r, "give", b, n, v, err, errlen);
}
