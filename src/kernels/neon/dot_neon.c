/*
 * dot_neon.c — placeholder until the neon kernels land.
 */
#include "kernels/kern_impl.h"

bool sl_kern_fill_neon(sl_kern_table_t *t) {
    (void)t;
    return false;
}
