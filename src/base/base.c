/*
 * base.c — implementation of the helpers declared in base.h.
 */
#include "base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int sl_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int sl_buf_reserve(sl_buf_t *b, size_t extra) {
    size_t need;
    if (!sl_add_size(b->len, extra, &need) || !sl_add_size(need, 1, &need)) return -1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int sl_buf_append(sl_buf_t *b, const void *p, size_t n) {
    if (sl_buf_reserve(b, n) != 0) return -1;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sl_buf_puts(sl_buf_t *b, const char *s) {
    return sl_buf_append(b, s, strlen(s));
}

int sl_buf_putc(sl_buf_t *b, char c) {
    return sl_buf_append(b, &c, 1);
}

int sl_buf_printf(sl_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n < sizeof tmp) return sl_buf_append(b, tmp, (size_t)n);
    if (sl_buf_reserve(b, (size_t)n) != 0) return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void sl_buf_clear(sl_buf_t *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void sl_buf_free(sl_buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *sl_buf_steal(sl_buf_t *b) {
    char *p = b->data;
    if (!p) p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

double sl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t sl_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

char *sl_strdup(const char *s) {
    return sl_strndup(s, strlen(s));
}

char *sl_strndup(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sl_read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        sl_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    sl_buf_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (sl_buf_append(&b, chunk, n) != 0) {
            fclose(f);
            sl_buf_free(&b);
            sl_err(err, errlen, "out of memory reading %s", path);
            return NULL;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        sl_buf_free(&b);
        sl_err(err, errlen, "read error on %s", path);
        return NULL;
    }
    if (len) *len = b.len;
    return sl_buf_steal(&b);
}

void sl_log(const char *level, const char *fmt, ...) {
    if (strcmp(level, "debug") == 0) {
        const char *e = getenv("SILICA_LOG");
        if (!e || strcmp(e, "debug") != 0) return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "silica %s: %s\n", level, msg);
}
