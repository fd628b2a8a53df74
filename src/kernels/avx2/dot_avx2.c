/*
 * dot_avx2.c — placeholder until the avx2 kernels land.
 */
#include "kernels/kern_impl.h"

bool sl_kern_fill_avx2(sl_kern_table_t *t) {
    (void)t;
    return false;
}
