/*
 * dot_avx512.c — placeholder until the avx512 kernels land.
 */
#include "kernels/kern_impl.h"

bool sl_kern_fill_avx512(sl_kern_table_t *t) {
    (void)t;
    return false;
}
