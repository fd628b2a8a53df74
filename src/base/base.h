/*
 * base.h — small things every part of Silica uses: error messages, checked
 * size arithmetic, a growable byte buffer, monotonic time.
 *
 * Error convention (see STYLE.md): a function that can fail returns an int
 * status (0 ok, negative error) or NULL, and writes a human-readable message
 * into a caller-given buffer `char *err, size_t errlen` (errlen may be 0 and
 * err NULL when the caller does not care). SL_ERR_MAX is a good size for it.
 */
#ifndef SILICA_BASE_H
#define SILICA_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_ERR_MAX 512

#define SL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Formats a message into err (when err != NULL && errlen > 0); returns -1 so
 * callers can write `return sl_err(err, errlen, "...", ...);`. */
int sl_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Checked size arithmetic: return false (and leave *out unspecified) on
 * overflow. Use for every size derived from outside input. */
static inline bool sl_add_size(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
static inline bool sl_mul_size(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

/* murmur3's 64-bit finalizer: full avalanche (every input bit flips each
 * output bit with probability 1/2) — hash-table slots, rendezvous weights. */
static inline uint64_t sl_mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Growable byte buffer. Owns `data` (NUL-terminated after every append, the
 * NUL not counted in len). A zeroed struct is an empty buffer. */
typedef struct sl_buf {
    char *data;
    size_t len;
    size_t cap;
} sl_buf_t;

int sl_buf_reserve(sl_buf_t *b, size_t extra);      /* 0 or -1 (out of memory) */
int sl_buf_append(sl_buf_t *b, const void *p, size_t n);
int sl_buf_puts(sl_buf_t *b, const char *s);
int sl_buf_putc(sl_buf_t *b, char c);
int sl_buf_printf(sl_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sl_buf_clear(sl_buf_t *b);                      /* len = 0, keeps memory */
void sl_buf_free(sl_buf_t *b);                       /* frees and zeroes */
char *sl_buf_steal(sl_buf_t *b);                     /* caller frees; b becomes empty */

/* Monotonic time in seconds / nanoseconds. */
double sl_now(void);
uint64_t sl_now_ns(void);

/* strdup that returns NULL on failure (C11 has no strdup guarantee). */
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);

/* Reads a whole file into a NUL-terminated heap buffer; *len gets the size. */
char *sl_read_file(const char *path, size_t *len, char *err, size_t errlen);

/* Log to stderr with a level prefix; SILICA_LOG=debug enables debug lines. */
void sl_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define sl_info(...) sl_log("info", __VA_ARGS__)
#define sl_warn(...) sl_log("warn", __VA_ARGS__)

#endif
