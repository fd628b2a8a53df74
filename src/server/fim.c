/*
 * fim.c — fill-in-the-middle prompt layout (see fim.h).
 */
#include "server/fim.h"

#include <stdlib.h>
#include <string.h>

int fim_layout(const fim_ids_t *f, bool spm, const int32_t *prefix, size_t n_prefix,
               const int32_t *suffix, size_t n_suffix, int32_t **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!fim_supported(f)) return -1;
    if (n_prefix > SIZE_MAX / 8 || n_suffix > SIZE_MAX / 8) return -1;
    size_t n = n_prefix + n_suffix + 3 + (f->bos >= 0);
    int32_t *p = malloc(n * sizeof *p);
    if (!p) return -1;
    size_t k = 0;
    if (f->bos >= 0) p[k++] = f->bos;
    if (spm) {
        p[k++] = f->suf;
        if (n_suffix) memcpy(p + k, suffix, n_suffix * sizeof *p);
        k += n_suffix;
        p[k++] = f->pre;
        if (n_prefix) memcpy(p + k, prefix, n_prefix * sizeof *p);
        k += n_prefix;
    } else {
        p[k++] = f->pre;
        if (n_prefix) memcpy(p + k, prefix, n_prefix * sizeof *p);
        k += n_prefix;
        p[k++] = f->suf;
        if (n_suffix) memcpy(p + k, suffix, n_suffix * sizeof *p);
        k += n_suffix;
    }
    p[k++] = f->mid;
    *out = p;
    *n_out = k;
    return 0;
}
