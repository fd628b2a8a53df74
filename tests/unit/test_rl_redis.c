/* deps: platform base */
/*
 * test_rl_redis.c — rate-limit buckets in Redis (platform/rl_redis.h) and
 * the platform using them (plat_config_t.redis_url), against a real Redis
 * server (SILICA_TEST_REDIS, which tests/redis.sh sets; its DIR in
 * SILICA_TEST_REDIS_DIR lets the outage tests stop and restart it) and
 * against a fake server written here that answers the handshake as Redis
 * does and then whatever reply a test asks for.
 *
 * What is checked: the URL forms and their errors; a limit holds exactly
 * with many connections (nodes) taking at once; refunds; refill timing and
 * TTLs on Redis's clock (a node's clock does not matter); script errors and
 * replies of the wrong type, size or range are errors, never trusted;
 * NOSCRIPT is answered with EVAL; a dead or silent server costs a request
 * at most the command timeout, the node limits locally, and the handle
 * reconnects by itself; two platform handles (nodes) on one store share an
 * account's RPM/TPM through Redis, with the same 429 as the local limiter.
 * The platform part runs on SQLite and, when SILICA_TEST_PG is set, on
 * PostgreSQL too.
 */
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "platform/db.h"
#include "platform/platform.h"
#include "platform/rl_redis.h"
#include "test.h"
#include "test_pg.h"

static const char *redis_base; /* SILICA_TEST_REDIS, or NULL: real-server tests skipped */
static const char *redis_dir;  /* SILICA_TEST_REDIS_DIR: for down / up */
static char redis_url[600];    /* redis_base + "/9": the tests' own database */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* A plain hiredis connection to the test database, to look at what the
 * limiter wrote (and to break it). */
static redisContext *raw(void) {
    const char *hp = redis_base + strlen("redis://");
    char host[64];
    int port = 0;
    if (sscanf(hp, "%63[^:]:%d", host, &port) != 2) abort();
    redisContext *c = redisConnect(host, port);
    if (!c || c->err) abort();
    redisReply *rp = redisCommand(c, "SELECT 9");
    if (!rp) abort();
    freeReplyObject(rp);
    return c;
}

static long long raw_int(redisContext *c, const char *fmt, const char *arg) {
    redisReply *rp = redisCommand(c, fmt, arg);
    long long v = rp && rp->type == REDIS_REPLY_INTEGER ? rp->integer : LLONG_MIN;
    if (rp) freeReplyObject(rp);
    return v;
}

static double raw_level(redisContext *c, const char *key) {
    redisReply *rp = redisCommand(c, "HGET %s l", key);
    double v = rp && rp->type == REDIS_REPLY_STRING ? strtod(rp->str, NULL) : -1e300;
    if (rp) freeReplyObject(rp);
    return v;
}

static void raw_do(redisContext *c, const char *cmd) {
    redisReply *rp = redisCommand(c, cmd);
    if (rp) freeReplyObject(rp);
}

static rl_redis_t *open_fast(const char *url) {
    rl_redis_opts_t o = {.backoff_min_ms = 20, .backoff_max_ms = 100, .command_timeout_ms = 200};
    char err[SL_ERR_MAX];
    rl_redis_t *r = rl_redis_open(url, &o, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    return r;
}

static rl_redis_bucket_t bucket(const char *key, int64_t cap, int64_t window_ms, double amount) {
    return (rl_redis_bucket_t){.key = key, .cap = cap, .window_ms = window_ms, .amount = amount};
}

/* ---- URLs (no server needed) ---- */

static void test_urls(void) {
    static const struct {
        const char *url, *msg;
    } bad[] = {
        {"http://localhost:6379", "not a Redis URL"},
        {"rediss://localhost:6380", "TLS"},
        {"redis://", "no host"},
        {"redis://localhost:0", "port"},
        {"redis://localhost:70000", "port"},
        {"redis://localhost:63x9", "port"},
        {"redis://localhost/abc", "database number"},
        {"redis://secret@localhost", ":PASSWORD@"},
        {"redis://user:@localhost", "needs a password"},
        {"redis://:p%zzass@localhost", "bad user or password"},
        {"redis://[::1:6379", "unclosed"},
        {"redis://localhost?timeout_ms=0", "timeout_ms"},
        {"redis://localhost?bogus=1", "unknown option"},
        {"redis://localhost?db", "no value"},
        {"unix://relative.sock", "absolute"},
        {"unix://", "absolute"},
    };
    char err[SL_ERR_MAX];
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        rl_redis_t *r = rl_redis_open(bad[i].url, NULL, err, sizeof err);
        CHECK_MSG(r == NULL && strstr(err, bad[i].msg), "%s: %s", bad[i].url, err);
        rl_redis_close(r);
    }
    /* Well-formed but nobody listens: the handle opens down, answers -1 at
     * once, and counts the outage. Port 1 on loopback refuses. */
    const char *good[] = {"redis://127.0.0.1:1", "redis://:pa%40ss@127.0.0.1:1/3?timeout_ms=50",
                          "redis://u:p@[::1]:1/0", "unix:///nonexistent/dir/r.sock?db=2"};
    for (size_t i = 0; i < SL_ARRAY_LEN(good); i++) {
        rl_redis_t *r = open_fast(good[i]);
        if (!r) continue;
        rl_redis_stats_t st;
        rl_redis_stats(r, &st);
        CHECK(!st.up && st.outages == 1);
        rl_redis_bucket_t b = bucket("k", 10, 60000, 1);
        int denied;
        int64_t wait, t0 = now_ms();
        CHECK(rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == -1);
        CHECK_MSG(strstr(err, "unreachable"), "%s", err);
        CHECK(now_ms() - t0 < 50);
        rl_redis_close(r);
    }
    rl_redis_t *r = open_fast("redis://:pa%40ss@127.0.0.1:1/3");
    CHECK(r && !strcmp(rl_redis_where(r), "127.0.0.1:1/3"));
    rl_redis_close(r);
}

/* ---- a fake server ---- */

enum { FAKE_OK, FAKE_AUTH_REFUSED, FAKE_BAD_SHA, FAKE_SILENT };

typedef struct fake {
    int mode;
    const char *const *replies; /* to EVALSHA / EVAL, in order; then a valid "taken" */
    int nreplies;
    int lfd, port;
    atomic_bool stop;
    atomic_int evals, evalshas;
    pthread_t th;
} fake_t;

static void put(int fd, const char *s, size_t n) {
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* Parses one RESP command from buf[0..len): its argument count, pointers
 * and lengths; returns the bytes it used, 0 when incomplete. */
static size_t parse_cmd(const char *buf, size_t len, int *argc, const char **argv, size_t *lens,
                        int maxargs) {
    size_t i = 0;
    if (len < 4 || buf[0] != '*') return 0;
    char *end;
    long n = strtol(buf + 1, &end, 10);
    if ((size_t)(end - buf) + 2 > len || n < 1 || n > maxargs) return 0;
    i = (size_t)(end - buf) + 2;
    for (long k = 0; k < n; k++) {
        if (i + 4 > len || buf[i] != '$') return 0;
        long l = strtol(buf + i + 1, &end, 10);
        size_t hdr = (size_t)(end - buf) + 2;
        if (hdr > len || l < 0 || hdr + (size_t)l + 2 > len) return 0;
        argv[k] = buf + hdr;
        lens[k] = (size_t)l;
        i = hdr + (size_t)l + 2;
    }
    *argc = (int)n;
    return i;
}

static void *fake_main(void *arg) {
    fake_t *f = arg;
    static char buf[1 << 16];
    int next = 0;
    while (!atomic_load(&f->stop)) {
        struct pollfd pl = {.fd = f->lfd, .events = POLLIN};
        if (poll(&pl, 1, 20) <= 0) continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0) continue;
        size_t len = 0;
        while (!atomic_load(&f->stop)) {
            struct pollfd pc = {.fd = fd, .events = POLLIN};
            if (poll(&pc, 1, 20) <= 0) continue;
            ssize_t n = read(fd, buf + len, sizeof buf - len);
            if (n <= 0) break;
            len += (size_t)n;
            int argc;
            const char *argv[64];
            size_t lens[64], used;
            while ((used = parse_cmd(buf, len, &argc, argv, lens, 64)) > 0) {
                char out[256];
                if (lens[0] == 4 && !strncasecmp(argv[0], "AUTH", 4)) {
                    put(fd,
                        f->mode == FAKE_AUTH_REFUSED ? "-WRONGPASS invalid password\r\n"
                                                     : "+OK\r\n",
                        f->mode == FAKE_AUTH_REFUSED ? 29 : 5);
                } else if (lens[0] == 6 && !strncasecmp(argv[0], "SELECT", 6)) {
                    put(fd, "+OK\r\n", 5);
                } else if (lens[0] == 6 && !strncasecmp(argv[0], "SCRIPT", 6) && argc == 3) {
                    /* as Redis: the SHA-1 of the script it was given */
                    unsigned char md[EVP_MAX_MD_SIZE];
                    unsigned int ml = 0;
                    EVP_Digest(argv[2], lens[2], md, &ml, EVP_sha1(), NULL);
                    if (f->mode == FAKE_BAD_SHA) md[0] ^= 1;
                    int o = snprintf(out, sizeof out, "$40\r\n");
                    for (int i = 0; i < 20; i++)
                        o += snprintf(out + o, sizeof out - (size_t)o, "%02x", md[i]);
                    o += snprintf(out + o, sizeof out - (size_t)o, "\r\n");
                    put(fd, out, (size_t)o);
                } else if (f->mode == FAKE_SILENT) {
                    /* never answers */
                } else {
                    if (lens[0] == 4)
                        atomic_fetch_add(&f->evals, 1);
                    else
                        atomic_fetch_add(&f->evalshas, 1);
                    const char *rp =
                        next < f->nreplies ? f->replies[next++] : "*3\r\n:1\r\n:0\r\n:0\r\n";
                    put(fd, rp, strlen(rp));
                }
                memmove(buf, buf + used, len - used);
                len -= used;
            }
        }
        close(fd);
    }
    return NULL;
}

static void fake_start(fake_t *f, int mode, const char *const *replies, int n) {
    memset(f, 0, sizeof *f);
    f->mode = mode;
    f->replies = replies;
    f->nreplies = n;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(f->lfd, 4) != 0 || getsockname(f->lfd, (struct sockaddr *)&a, &al) != 0)
        abort();
    f->port = ntohs(a.sin_port);
    if (pthread_create(&f->th, NULL, fake_main, f) != 0) abort();
}

static void fake_stop(fake_t *f) {
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
    close(f->lfd);
}

static void test_fake_handshake_refusals(void) {
    fake_t f;
    char url[128], err[SL_ERR_MAX];
    fake_start(&f, FAKE_AUTH_REFUSED, NULL, 0);
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", f.port);
    CHECK(rl_redis_open(url, NULL, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "AUTH refused") && strstr(err, "WRONGPASS"), "%s", err);
    fake_stop(&f);
    fake_start(&f, FAKE_BAD_SHA, NULL, 0);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/2", f.port);
    CHECK(rl_redis_open(url, NULL, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "SCRIPT LOAD"), "%s", err);
    fake_stop(&f);
}

/* Every reply that is not the script's {int, int, int} within range is
 * an error (counted, the connection kept); a good one after them works. */
static void test_fake_bad_replies(void) {
    static const char *const replies[] = {
        "+OK\r\n",
        ":1\r\n",
        "$3\r\nabc\r\n",
        "$-1\r\n",
        "*-1\r\n",
        "*2\r\n:1\r\n:0\r\n",
        "*4\r\n:1\r\n:0\r\n:0\r\n:0\r\n",
        "*3\r\n:1\r\n:0\r\n$1\r\n0\r\n",
        "*3\r\n*1\r\n:1\r\n:0\r\n:0\r\n",
        "*3\r\n:0\r\n:9\r\n:5\r\n",  /* bucket index out of range */
        "*3\r\n:0\r\n:0\r\n:5\r\n",  /* index 0 */
        "*3\r\n:0\r\n:1\r\n:-5\r\n", /* negative wait */
        "*3\r\n:7\r\n:0\r\n:0\r\n",  /* unknown status */
        "*3\r\n:1\r\n:1\r\n:0\r\n",  /* "taken" with junk */
        "-ERR Error running script: boom\r\n",
        "-NOSCRIPT No matching script\r\n", /* then EVAL: the next reply */
        "*3\r\n:0\r\n:2\r\n:1500\r\n",      /* a valid denial of bucket 2 */
    };
    const int nbad = 15;
    fake_t f;
    fake_start(&f, FAKE_OK, replies, (int)SL_ARRAY_LEN(replies));
    char url[128], err[SL_ERR_MAX];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", f.port);
    rl_redis_t *r = open_fast(url);
    if (!r) {
        fake_stop(&f);
        return;
    }
    rl_redis_bucket_t b[2] = {bucket("a", 10, 60000, 1), bucket("b", 100, 60000, 40)};
    int denied = -1;
    int64_t wait = -1;
    for (int i = 0; i < nbad; i++) {
        err[0] = '\0';
        int rc = rl_redis_take(r, b, 2, &denied, &wait, err, sizeof err);
        CHECK_MSG(rc == -1 && strlen(err) > 0, "reply %d: rc %d", i, rc);
    }
    rl_redis_stats_t st;
    rl_redis_stats(r, &st);
    CHECK_MSG(st.up && st.errors == (uint64_t)nbad && st.outages == 0, "up %d errors %" PRIu64,
              st.up, st.errors);
    CHECK(rl_redis_take(r, b, 2, &denied, &wait, err, sizeof err) == RL_REDIS_DENIED);
    CHECK(denied == 1 && wait == 1500);
    CHECK(atomic_load(&f.evals) == 1); /* NOSCRIPT answered with EVAL */
    CHECK(rl_redis_take(r, b, 2, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    CHECK(rl_redis_give(r, b, 2, err, sizeof err) == 0);
    rl_redis_close(r);
    fake_stop(&f);
}

/* Replies beyond any size the script answers (an array header of a
 * billion elements, a 70 kB string) are refused before hiredis builds
 * them: an error, the connection dropped and made again. */
static void test_fake_oversized(void) {
    static char big[70100];
    int o = snprintf(big, sizeof big, "$70000\r\n");
    memset(big + o, 'x', 70000);
    memcpy(big + o + 70000, "\r\n", 3);
    const char *const replies[] = {"*1000000000\r\n", big, "*3\r\n:1\r\n:0\r\n:0\r\n"};
    fake_t f;
    fake_start(&f, FAKE_OK, replies, 3);
    char url[128], err[SL_ERR_MAX];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", f.port);
    rl_redis_t *r = open_fast(url);
    if (!r) {
        fake_stop(&f);
        return;
    }
    rl_redis_bucket_t b = bucket("a", 10, 60000, 1);
    int denied;
    int64_t wait;
    rl_redis_stats_t st = {0};
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 200; k++) { /* reconnected within the 20..100 ms backoff */
            rl_redis_stats(r, &st);
            if (st.up) break;
            sleep_ms(10);
        }
        CHECK(st.up);
        err[0] = '\0';
        int rc = rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err);
        if (i < 2)
            CHECK_MSG(rc == -1 && strstr(err, "too large or malformed"), "reply %d: %d %s", i, rc,
                      err);
        else
            CHECK_MSG(rc == RL_REDIS_TAKEN, "%d %s", rc, err);
    }
    rl_redis_stats(r, &st);
    CHECK_MSG(st.errors == 2 && st.outages == 2 && st.reconnects == 2,
              "errors %" PRIu64 " outages %" PRIu64 " reconnects %" PRIu64, st.errors, st.outages,
              st.reconnects);
    rl_redis_close(r);
    fake_stop(&f);
}

/* A server that accepts but never answers costs one call the command
 * timeout; the handle is then down and later calls return at once. */
static void test_fake_silent(void) {
    fake_t f;
    fake_start(&f, FAKE_SILENT, NULL, 0);
    char url[128], err[SL_ERR_MAX];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d?timeout_ms=150", f.port);
    rl_redis_opts_t o = {.backoff_min_ms = 5000, .backoff_max_ms = 5000, .connect_timeout_ms = 300};
    rl_redis_t *r = rl_redis_open(url, &o, err, sizeof err);
    /* the handshake's SCRIPT LOAD is answered; the script never is */
    CHECK_MSG(r != NULL, "%s", err);
    if (r) {
        rl_redis_bucket_t b = bucket("a", 10, 60000, 1);
        int denied;
        int64_t wait, t0 = now_ms();
        CHECK(rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == -1);
        int64_t dt = now_ms() - t0;
        CHECK_MSG(dt >= 100 && dt < 600, "%" PRId64 " ms", dt);
        rl_redis_stats_t st;
        rl_redis_stats(r, &st);
        CHECK(!st.up && st.outages == 1);
        t0 = now_ms();
        CHECK(rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == -1);
        CHECK(now_ms() - t0 < 20);
        rl_redis_close(r);
    }
    fake_stop(&f);
}

/* ---- a real Redis ---- */

static void test_take_deny_give(void) {
    if (!redis_base) return;
    redisContext *c = raw();
    raw_do(c, "FLUSHDB");
    rl_redis_t *r = open_fast(redis_url);
    if (!r) return;
    char err[SL_ERR_MAX];
    int denied = -1;
    int64_t wait = -1;
    /* RPM 5 and TPM 1000, one minute windows */
    rl_redis_bucket_t b[2] = {bucket("t:rpm", 5, 60000, 1), bucket("t:tpm", 1000, 60000, 100)};
    for (int i = 0; i < 5; i++)
        CHECK_MSG(rl_redis_take(r, b, 2, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN, "%s",
                  err);
    CHECK(rl_redis_take(r, b, 2, &denied, &wait, err, sizeof err) == RL_REDIS_DENIED);
    /* one request per 12 s; a few ms of refill may have passed */
    CHECK_MSG(denied == 0 && wait > 11000 && wait <= 12000, "%d %" PRId64, denied, wait);
    CHECK_NEAR(raw_level(c, "t:tpm"), 500, 0.5);
    /* a denial takes nothing */
    CHECK_NEAR(raw_level(c, "t:rpm"), 0, 0.01);

    /* refunds: unused tokens go back (clipped at the cap) */
    rl_redis_bucket_t give = bucket("t:tpm", 1000, 60000, 300);
    CHECK(rl_redis_give(r, &give, 1, err, sizeof err) == 0);
    CHECK_NEAR(raw_level(c, "t:tpm"), 800, 2);
    give.amount = 5000;
    CHECK(rl_redis_give(r, &give, 1, err, sizeof err) == 0);
    CHECK_NEAR(raw_level(c, "t:tpm"), 1000, 1e-9);
    /* used beyond the estimate: taken at give time */
    give.amount = -1200;
    CHECK(rl_redis_give(r, &give, 1, err, sizeof err) == 0);
    CHECK_NEAR(raw_level(c, "t:tpm"), -200, 2);
    rl_redis_bucket_t tb = bucket("t:tpm", 1000, 60000, 1);
    CHECK(rl_redis_take(r, &tb, 1, &denied, &wait, err, sizeof err) == RL_REDIS_DENIED);
    CHECK_MSG(wait > 12000 && wait <= 12060, "%" PRId64, wait); /* 201 tokens at 1000/min */
    /* a request larger than the whole bucket runs when it is full */
    rl_redis_bucket_t big = bucket("t:big", 100, 60000, 250);
    CHECK(rl_redis_take(r, &big, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    CHECK_NEAR(raw_level(c, "t:big"), -150, 0.01);
    /* a lowered cap clips the level; a raised one keeps it */
    rl_redis_bucket_t cl = bucket("t:cap", 50, 86400000, 10);
    CHECK(rl_redis_take(r, &cl, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    CHECK_NEAR(raw_level(c, "t:cap"), 40, 0.01);
    cl.cap = 20;
    CHECK(rl_redis_take(r, &cl, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    CHECK_NEAR(raw_level(c, "t:cap"), 10, 0.01);
    cl.cap = 100;
    CHECK(rl_redis_take(r, &cl, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    CHECK_NEAR(raw_level(c, "t:cap"), 0, 0.01);

    /* the script's errors are errors: a bucket key of another type */
    raw_do(c, "SET t:str x");
    rl_redis_bucket_t sb = bucket("t:str", 10, 60000, 1);
    CHECK(rl_redis_take(r, &sb, 1, &denied, &wait, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "WRONGTYPE"), "%s", err);
    rl_redis_stats_t st;
    rl_redis_stats(r, &st);
    CHECK(st.up && st.errors == 1);
    CHECK(rl_redis_take(r, &big, 1, &denied, &wait, err, sizeof err) == RL_REDIS_DENIED);

    /* the server forgets the script: EVAL loads it again */
    raw_do(c, "SCRIPT FLUSH");
    rl_redis_bucket_t nb = bucket("t:new", 100, 86400000, 10);
    CHECK(rl_redis_take(r, &nb, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    CHECK(rl_redis_take(r, &nb, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    CHECK_NEAR(raw_level(c, "t:new"), 80, 0.01);
    rl_redis_stats(r, &st);
    CHECK(st.up && st.errors == 1 && st.outages == 0);
    rl_redis_close(r);
    redisFree(c);
}

/* The URL's other forms against the real server: the unix socket with
 * ?db=, a password (AUTH pass), an ACL user with a percent-encoded
 * password; a wrong password, none at all, and a database out of range are
 * refused at open with the server's reason. */
static void test_auth_db_socket(void) {
    if (!redis_base) return;
    redisContext *c = raw();
    raw_do(c, "FLUSHDB");
    char url[700], err[SL_ERR_MAX];
    int denied;
    int64_t wait;
    rl_redis_bucket_t b = bucket("a:k", 10, 86400000, 3);
    if (redis_dir) {
        snprintf(url, sizeof url, "unix://%s/redis.sock?db=9", redis_dir);
        rl_redis_t *r = open_fast(url);
        CHECK(r && rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
        CHECK_NEAR(raw_level(c, "a:k"), 7, 0.01); /* in db 9, where raw() looks */
        rl_redis_close(r);
    }
    const char *hp = redis_base + strlen("redis://");
    redisReply *rp = redisCommand(c, "ACL SETUSER silica_t on >s3cr@t ~* +@all");
    CHECK(rp && rp->type == REDIS_REPLY_STATUS);
    if (rp) freeReplyObject(rp);
    rp = redisCommand(c, "CONFIG SET requirepass %s", "topsecret");
    CHECK(rp && rp->type == REDIS_REPLY_STATUS);
    if (rp) freeReplyObject(rp);
    snprintf(url, sizeof url, "redis://:topsecret@%s/9", hp);
    rl_redis_t *r = open_fast(url);
    CHECK(r && rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    rl_redis_close(r);
    snprintf(url, sizeof url, "redis://silica_t:s3cr%%40t@%s/9?timeout_ms=500", hp);
    r = open_fast(url);
    CHECK(r && rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    rl_redis_close(r);
    CHECK_NEAR(raw_level(c, "a:k"), redis_dir ? 1 : 4, 0.01);
    static const struct {
        const char *fmt, *why;
    } refused[] = {
        {"redis://:wrong@%s/9", "AUTH refused"},
        {"redis://silica_t:wrong@%s/9", "AUTH refused"},
        {"redis://%s/9", "SELECT refused"}, /* NOAUTH */
        {"redis://:topsecret@%s/99999", "SELECT refused"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(refused); i++) {
        snprintf(url, sizeof url, refused[i].fmt, hp);
        err[0] = '\0';
        r = rl_redis_open(url, NULL, err, sizeof err);
        CHECK_MSG(r == NULL && strstr(err, refused[i].why), "%s: %s", url, err);
        CHECK_MSG(!strstr(err, "topsecret") && !strstr(err, "wrong"), "a password in: %s", err);
        rl_redis_close(r);
    }
    rp = redisCommand(c, "CONFIG SET requirepass %s", "");
    if (rp) freeReplyObject(rp);
    raw_do(c, "ACL DELUSER silica_t");
    redisFree(c);
}

/* Refill and expiry follow Redis's clock: a 1-second window refills a
 * tenth of a 10-cap bucket every 100 ms; the key expires once it would be
 * full (+ 1 s). */
static void test_refill_and_ttl(void) {
    if (!redis_base) return;
    redisContext *c = raw();
    raw_do(c, "FLUSHDB");
    rl_redis_t *r = open_fast(redis_url);
    if (!r) return;
    char err[SL_ERR_MAX];
    int denied;
    int64_t wait;
    rl_redis_bucket_t b = bucket("ttl:k", 10, 1000, 10);
    CHECK(rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    long long ttl = raw_int(c, "PTTL %s", "ttl:k");
    CHECK_MSG(ttl > 1500 && ttl <= 2000, "%lld", ttl); /* 1 s to refill + 1 s */
    b.amount = 1;
    CHECK(rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == RL_REDIS_DENIED);
    CHECK_MSG(wait > 50 && wait <= 100, "%" PRId64, wait);
    sleep_ms((int)wait + 20);
    CHECK(rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    /* The last refill time is Redis's TIME, not this process's clock. */
    redisReply *tm = redisCommand(c, "TIME");
    redisReply *t = redisCommand(c, "HGET ttl:k t");
    CHECK(tm && tm->type == REDIS_REPLY_ARRAY && tm->elements == 2 && t &&
          t->type == REDIS_REPLY_STRING);
    if (tm && t && tm->elements == 2 && t->type == REDIS_REPLY_STRING) {
        long long redis_ms = atoll(tm->element[0]->str) * 1000 + atoll(tm->element[1]->str) / 1000;
        CHECK_MSG(llabs(redis_ms - atoll(t->str)) < 1000, "%lld vs %s", redis_ms, t->str);
    }
    if (tm) freeReplyObject(tm);
    if (t) freeReplyObject(t);
    /* idle: the key goes once the bucket would be full */
    sleep_ms(2100);
    CHECK(raw_int(c, "EXISTS %s", "ttl:k") == 0);
    b.amount = 10;
    CHECK(rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    rl_redis_close(r);
    redisFree(c);
}

/* Many connections (as many nodes) taking at once: exactly the cap is
 * admitted, and the tokens left are exactly the cap minus what was taken. */
typedef struct hammer {
    int seed, taken, tokens, errors;
} hammer_t;

static void *hammer_main(void *arg) {
    hammer_t *h = arg;
    rl_redis_t *r = open_fast(redis_url);
    if (!r) return NULL;
    char err[SL_ERR_MAX];
    unsigned s = (unsigned)h->seed;
    for (int i = 0; i < 150; i++) {
        s = s * 1103515245u + 12345u;
        int amount = 1 + (int)((s >> 16) % 50);
        rl_redis_bucket_t b[2] = {bucket("h:rpd", 600, 86400000, 1),
                                  bucket("h:tpd", 20000, 86400000, amount)};
        int denied;
        int64_t wait;
        int rc = rl_redis_take(r, b, 2, &denied, &wait, err, sizeof err);
        if (rc == RL_REDIS_TAKEN) {
            h->taken++;
            h->tokens += amount;
        } else if (rc != RL_REDIS_DENIED) {
            h->errors++;
        }
    }
    rl_redis_close(r);
    return NULL;
}

static void test_many_threads(void) {
    if (!redis_base) return;
    redisContext *c = raw();
    raw_do(c, "FLUSHDB");
    enum { NT = 8 };
    pthread_t th[NT];
    hammer_t h[NT];
    for (int i = 0; i < NT; i++) {
        h[i] = (hammer_t){.seed = i + 1};
        pthread_create(&th[i], NULL, hammer_main, &h[i]);
    }
    int taken = 0, tokens = 0, errors = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        taken += h[i].taken;
        tokens += h[i].tokens;
        errors += h[i].errors;
    }
    CHECK(errors == 0);
    /* 1200 tries of ~25 tokens: the 20000 TPD runs out before the 600 RPD
     * or the RPD does first; either way the books are exact. */
    double rpd = raw_level(c, "h:rpd"), tpd = raw_level(c, "h:tpd");
    /* refill over the test: at most 600 * 3 s / 1 day = 0.02 requests */
    CHECK_MSG(fabs(rpd - (600 - taken)) < 0.05, "rpd level %g, %d taken", rpd, taken);
    CHECK_MSG(fabs(tpd - (20000 - tokens)) < 1, "tpd level %g, %d tokens", tpd, tokens);
    CHECK_MSG(taken <= 600 && tokens <= 20000, "%d taken, %d tokens", taken, tokens);
    CHECK_MSG(taken == 600 || tokens > 20000 - 50, "%d taken, %d tokens: a limit was reached",
              taken, tokens);
    redisFree(c);
}

static int redis_ctl(const char *what) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "sh tests/redis.sh %s '%s' >/dev/null 2>&1", what, redis_dir);
    return system(cmd);
}

/* Redis stopped mid-test: calls fail fast (the node limits locally),
 * the outage is counted once; started again: the handle reconnects by
 * itself and takes from Redis again. */
static void test_outage_and_reconnect(void) {
    if (!redis_base || !redis_dir) {
        printf("   (outage test SKIPPED: SILICA_TEST_REDIS_DIR not set)\n");
        return;
    }
    rl_redis_t *r = open_fast(redis_url);
    if (!r) return;
    char err[SL_ERR_MAX];
    int denied;
    int64_t wait;
    rl_redis_bucket_t b = bucket("o:rpm", 1000, 60000, 1);
    CHECK(rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    CHECK(redis_ctl("down") == 0);
    int64_t t0 = now_ms();
    CHECK(rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == -1);
    CHECK(rl_redis_give(r, &b, 1, err, sizeof err) == -1);
    for (int i = 0; i < 100; i++)
        rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err);
    CHECK_MSG(now_ms() - t0 < 400, "%" PRId64 " ms for 102 calls on a dead Redis", now_ms() - t0);
    rl_redis_stats_t st;
    rl_redis_stats(r, &st);
    CHECK(!st.up && st.outages == 1 && st.reconnects == 0);
    sleep_ms(300); /* several failed reconnects */
    CHECK(redis_ctl("up") == 0);
    for (int i = 0; i < 100; i++) {
        rl_redis_stats(r, &st);
        if (st.up) break;
        sleep_ms(20);
    }
    CHECK_MSG(st.up && st.reconnects == 1 && st.outages == 1, "up %d reconnects %" PRIu64, st.up,
              st.reconnects);
    CHECK(rl_redis_take(r, &b, 1, &denied, &wait, err, sizeof err) == RL_REDIS_TAKEN);
    redisContext *c = raw();
    CHECK_NEAR(raw_level(c, "o:rpm"), 999, 0.1); /* the restarted server is empty */
    redisFree(c);
    rl_redis_close(r);
}

/* ---- the platform on Redis ---- */

static int64_t clock_a = 1700000000000LL, clock_b = 1700000000000LL + 3600 * 1000;
static int64_t fake_clock(void *ctx) {
    return *(int64_t *)ctx;
}

static const char *pg_base;
static char store_dirs[16][512];
static int nstores;

/* A fresh store: a temp dir (SQLite) or a new database on SILICA_TEST_PG. */
static const char *fresh_store(void) {
    char *d = store_dirs[nstores++];
    test_fresh_store(pg_base, "/tmp/silica-rlr-XXXXXX", "silica_rlr", d, sizeof store_dirs[0]);
    return d;
}

static plat_t *open_node(const char *store, int64_t *clock) {
    plat_config_t cfg;
    plat_config_default(&cfg);
    cfg.sync_normal = true;
    cfg.redis_url = redis_url;
    cfg.clock_ms = fake_clock;
    cfg.clock_ctx = clock;
    char err[SL_ERR_MAX];
    plat_t *p = plat_open(store, &cfg, err, sizeof err);
    CHECK_MSG(p != NULL, "%s", err);
    return p;
}

static int64_t new_account(plat_t *p, const char *name, char key[PLAT_KEY_MAX], char *auth) {
    char err[SL_ERR_MAX];
    int64_t id = 0;
    CHECK_MSG(plat_account_create(p, name, 0, &id, err, sizeof err) == 0, "%s", err);
    CHECK(plat_account_credit(p, id, 100 * PLAT_MONEY_UNIT, 0, "t", err, sizeof err) == 0);
    CHECK_MSG(plat_key_create(p, id, "k", 0, key, NULL, err, sizeof err) == 0, "%s", err);
    snprintf(auth, 128, "Bearer %s", key);
    return id;
}

/* Two nodes with clocks an hour apart share an RPM of 10 and a TPM: what
 * one takes the other cannot, the tokens one gives back the other may
 * use, and the 429 reads as the local limiter's. */
static void test_plat_two_nodes(void) {
    if (!redis_base) return;
    redisContext *c = raw();
    raw_do(c, "FLUSHDB");
    const char *store = fresh_store();
    plat_t *p1 = open_node(store, &clock_a), *p2 = open_node(store, &clock_b);
    if (!p1 || !p2) {
        plat_close(p1);
        plat_close(p2);
        redisFree(c);
        return;
    }
    char key[PLAT_KEY_MAX], auth[128], err[SL_ERR_MAX];
    int64_t acct = new_account(p1, "shared", key, auth);
    plat_price_t pr = {1000000, 500000, 2000000};
    CHECK(plat_price_set(p1, "paid", &pr, err, sizeof err) == 0);
    plat_limits_t l = {.rpm = 10, .tpm = 100000};
    CHECK(plat_limits_set(p2, acct, "paid", &l, err, sizeof err) == 0);
    plat_req_t *r;
    plat_status_t st;
    plat_usage_t u = {.prompt_tokens = 10, .completion_tokens = 10, .ttft_ms = -1};
    int ok = 0, limited = 0, other = 0;
    for (int i = 0; i < 30; i++) {
        plat_t *p = i % 2 ? p2 : p1;
        clock_a += 60000; /* the nodes' clocks race ahead: Redis's is the one that counts */
        clock_b += 60000;
        if (plat_begin(p, auth, "paid", 10, 10, &r, &st) == 0) {
            ok++;
            CHECK(plat_finish(p, r, &u, "ok") == 0);
        } else if (st.http == 429 && !strcmp(st.limit, "rpm") &&
                   !strcmp(st.code, "rate_limit_exceeded") &&
                   !strcmp(st.type, "rate_limit_error") && st.retry_after_s >= 5 &&
                   st.retry_after_s <= 6 &&
                   strstr(st.message, "Rate limit reached for paid: 10 requests per minute (rpm). "
                                      "Retry after ")) {
            limited++;
        } else {
            other++;
            fprintf(stderr, "  unexpected: %d %s\n", st.http, st.message);
        }
    }
    CHECK_MSG(ok == 10 && limited == 20 && other == 0, "%d admitted, %d limited", ok, limited);
    char k[128];
    snprintf(k, sizeof k, "silica:rl:{a%" PRId64 ":paid}:rpm", acct);
    CHECK(raw_int(c, "EXISTS %s", k) == 1);
    /* TPM: a request holds max_tokens until it finishes; what it did not
     * use goes back, and the other node may take it */
    l = (plat_limits_t){.tpm = 3000};
    CHECK(plat_limits_set(p1, acct, "paid", &l, err, sizeof err) == 0);
    raw_do(c, "FLUSHDB");
    plat_req_t *r1, *r2;
    CHECK(plat_begin(p1, auth, "paid", 1000, 1000, &r1, &st) == 0);
    CHECK(plat_begin(p2, auth, "paid", 1000, 1000, &r2, &st) == -1 && st.http == 429 &&
          !strcmp(st.limit, "tpm") && strstr(st.message, "3000 tokens per minute (tpm)"));
    u = (plat_usage_t){.prompt_tokens = 100, .completion_tokens = 100, .ttft_ms = -1};
    CHECK(plat_finish(p1, r1, &u, "ok") == 0);
    CHECK_MSG(plat_begin(p2, auth, "paid", 1000, 1000, &r2, &st) == 0, "%d %s", st.http,
              st.message);
    /* an abort gives back the whole request */
    plat_abort(p2, r2);
    snprintf(k, sizeof k, "silica:rl:{a%" PRId64 ":paid}:tpm", acct);
    double lv = raw_level(c, k); /* + what refilled meanwhile: 50 tokens a second */
    CHECK_MSG(lv >= 2799.5 && lv <= 2850, "%g", lv);
    CHECK_MSG(plat_verify(p2, err, sizeof err) == 0, "%s", err);
    /* the PostgreSQL bucket rows are not used */
    if (pg_base) {
        db_t *db = db_open(store, true, NULL, 0, err, sizeof err);
        db_stmt_t *s =
            db ? db_prepare(db, "SELECT count(*) FROM rate_buckets", err, sizeof err) : NULL;
        CHECK(s && db_step(s) == DB_ROW && db_col_int64(s, 0) == 0);
        db_release(s);
        db_close(db);
    }
    char *m = plat_metrics_text(p1);
    CHECK(m && strstr(m, "silica_ratelimit_redis_up 1\n") &&
          strstr(m, "silica_ratelimit_local_total 0\n"));
    free(m);
    plat_close(p1);
    plat_close(p2);
    redisFree(c);
}

/* Threads on two nodes beginning at once: the RPM holds exactly. */
typedef struct node_hammer {
    plat_t *p;
    const char *auth;
    int ok, limited, other;
} node_hammer_t;

static void *node_hammer_main(void *arg) {
    node_hammer_t *h = arg;
    for (int i = 0; i < 40; i++) {
        plat_req_t *r;
        plat_status_t st;
        if (plat_begin(h->p, h->auth, "free-m", 5, 5, &r, &st) == 0) {
            h->ok++;
            plat_usage_t u = {.prompt_tokens = 5, .completion_tokens = 5, .ttft_ms = -1};
            plat_finish(h->p, r, &u, "ok");
        } else if (st.http == 429) {
            h->limited++;
        } else {
            h->other++;
        }
    }
    return NULL;
}

static void test_plat_threads(void) {
    if (!redis_base) return;
    redisContext *c = raw();
    raw_do(c, "FLUSHDB");
    const char *store = fresh_store();
    plat_t *p1 = open_node(store, &clock_a), *p2 = open_node(store, &clock_b);
    if (!p1 || !p2) {
        plat_close(p1);
        plat_close(p2);
        redisFree(c);
        return;
    }
    char key[PLAT_KEY_MAX], auth[128], err[SL_ERR_MAX];
    int64_t acct = new_account(p1, "threads", key, auth);
    plat_limits_t l = {.rpm = 50, .tpm = 0, .rpd = 0, .tpd = 0};
    CHECK(plat_limits_set(p1, acct, "free-m", &l, err, sizeof err) == 0);
    enum { NT = 6 };
    pthread_t th[NT];
    node_hammer_t h[NT];
    int64_t t0 = now_ms();
    for (int i = 0; i < NT; i++) {
        h[i] = (node_hammer_t){.p = i % 2 ? p2 : p1, .auth = auth};
        pthread_create(&th[i], NULL, node_hammer_main, &h[i]);
    }
    int ok = 0, limited = 0, other = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        ok += h[i].ok;
        limited += h[i].limited;
        other += h[i].other;
    }
    /* 240 tries: the 50 of the full bucket, plus one per 1.2 s they took */
    const int64_t refilled = (now_ms() - t0) / 1200 + 1;
    CHECK_MSG(ok >= 50 && ok <= 50 + refilled && limited == 240 - ok && other == 0,
              "%d ok, %d limited in %" PRId64 " ms", ok, limited, now_ms() - t0);
    plat_close(p1);
    plat_close(p2);
    redisFree(c);
}

/* Redis down: the nodes keep serving under their own buckets (each the
 * whole limit), count it, and share again once Redis is back. */
static void test_plat_outage(void) {
    if (!redis_base || !redis_dir) return;
    redisContext *c = raw();
    raw_do(c, "FLUSHDB");
    redisFree(c);
    const char *store = fresh_store();
    plat_t *p1 = open_node(store, &clock_a), *p2 = open_node(store, &clock_b);
    if (!p1 || !p2) {
        plat_close(p1);
        plat_close(p2);
        return;
    }
    char key[PLAT_KEY_MAX], auth[128], err[SL_ERR_MAX];
    int64_t acct = new_account(p1, "outage", key, auth);
    plat_limits_t l = {.rpm = 4};
    CHECK(plat_limits_set(p1, acct, "m", &l, err, sizeof err) == 0);
    plat_req_t *r;
    plat_status_t st;
    plat_usage_t u = {.prompt_tokens = 1, .completion_tokens = 1, .ttft_ms = -1};
    /* shared: 4 over both */
    int ok = 0;
    for (int i = 0; i < 10; i++) {
        plat_t *p = i % 2 ? p2 : p1;
        if (plat_begin(p, auth, "m", 1, 1, &r, &st) == 0) {
            ok++;
            plat_finish(p, r, &u, "ok");
        }
    }
    CHECK_MSG(ok == 4, "%d", ok);
    CHECK(redis_ctl("down") == 0);
    /* local: each node its own 4 (its buckets start full), none blocked long */
    ok = 0;
    int64_t t0 = now_ms();
    for (int i = 0; i < 20; i++) {
        plat_t *p = i % 2 ? p2 : p1;
        if (plat_begin(p, auth, "m", 1, 1, &r, &st) == 0) {
            ok++;
            plat_finish(p, r, &u, "ok"); /* its give-back stays local */
        } else {
            CHECK(st.http == 429 && !strcmp(st.limit, "rpm"));
        }
    }
    CHECK_MSG(now_ms() - t0 < 1500, "%" PRId64 " ms", now_ms() - t0);
    CHECK_MSG(ok == 8, "%d admitted by the two nodes' local limits", ok);
    char *m = plat_metrics_text(p1);
    CHECK_MSG(m && strstr(m, "silica_ratelimit_redis_up 0\n") &&
                  strstr(m, "silica_ratelimit_redis_outages_total 1\n") &&
                  strstr(m, "silica_ratelimit_local_total 10\n"),
              "%s", m ? m : "");
    free(m);
    CHECK(redis_ctl("up") == 0);
    /* back within the backoff (at most 2 s by default) */
    bool up = false;
    for (int i = 0; i < 150 && !up; i++) {
        m = plat_metrics_text(p1);
        up = m && strstr(m, "silica_ratelimit_redis_up 1\n");
        free(m);
        m = plat_metrics_text(p2);
        up = up && m && strstr(m, "silica_ratelimit_redis_up 1\n");
        free(m);
        if (!up) sleep_ms(20);
    }
    CHECK(up);
    ok = 0;
    for (int i = 0; i < 10; i++) {
        plat_t *p = i % 2 ? p2 : p1;
        if (plat_begin(p, auth, "m", 1, 1, &r, &st) == 0) {
            ok++;
            plat_finish(p, r, &u, "ok");
        }
    }
    CHECK_MSG(ok == 4, "%d admitted once shared again", ok);
    CHECK_MSG(plat_verify(p1, err, sizeof err) == 0, "%s", err);
    plat_close(p1);
    plat_close(p2);
}

/* A Redis that refuses at open is a start-up error; one that is down is
 * not (the node starts, limits locally and reconnects). */
static void test_plat_open(void) {
    char err[SL_ERR_MAX];
    const char *store = fresh_store();
    plat_config_t cfg;
    plat_config_default(&cfg);
    cfg.redis_url = "redis://127.0.0.1:99999";
    CHECK(plat_open(store, &cfg, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "port"), "%s", err);
    cfg.redis_url = "redis://127.0.0.1:1";
    plat_t *p = plat_open(store, &cfg, err, sizeof err);
    CHECK_MSG(p != NULL, "%s", err);
    if (p) {
        char key[PLAT_KEY_MAX], auth[128];
        new_account(p, "down", key, auth);
        plat_req_t *r;
        plat_status_t st;
        CHECK(plat_begin(p, auth, "m", 1, 1, &r, &st) == 0);
        plat_abort(p, r);
        char *m = plat_metrics_text(p);
        CHECK(m && strstr(m, "silica_ratelimit_redis_up 0\n") &&
              strstr(m, "silica_ratelimit_local_total 1\n"));
        free(m);
        plat_close(p);
    }
}

static void run_plat(void) {
    RUN(test_plat_open);
    RUN(test_plat_two_nodes);
    RUN(test_plat_threads);
    RUN(test_plat_outage);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an error, not a signal */
    const char *u = getenv("SILICA_TEST_REDIS");
    if (u && *u && !strncmp(u, "redis://", 8)) {
        redis_base = u;
        snprintf(redis_url, sizeof redis_url, "%s/9", u);
    }
    const char *d = getenv("SILICA_TEST_REDIS_DIR");
    if (d && *d) redis_dir = d;
    RUN(test_urls);
    RUN(test_fake_handshake_refusals);
    RUN(test_fake_bad_replies);
    RUN(test_fake_oversized);
    RUN(test_fake_silent);
    if (!redis_base) {
        printf("-- on Redis: SKIPPED (SILICA_TEST_REDIS is not set; tests/redis.sh sets it when it "
               "can start a server)\n");
        fflush(stdout);
    } else {
        printf("-- on Redis (%s)\n", redis_url);
        fflush(stdout);
        RUN(test_take_deny_give);
        RUN(test_auth_db_socket);
        RUN(test_refill_and_ttl);
        RUN(test_many_threads);
        RUN(test_outage_and_reconnect);
        printf("-- the platform on Redis, SQLite ledger\n");
        fflush(stdout);
        run_plat();
        const char *pg = getenv("SILICA_TEST_PG");
        if (pg && *pg) {
            printf("-- the platform on Redis, PostgreSQL ledger\n");
            fflush(stdout);
            pg_base = pg;
            run_plat();
        }
    }
    for (int i = 0; i < nstores; i++) {
        if (db_is_url(store_dirs[i])) continue;
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", store_dirs[i]);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", store_dirs[i]);
    }
    return test_summary();
}
