/* deps: base */
/*
 * test_base.c — growable buffer and checked arithmetic.
 */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "test.h"

static void test_buf_grows_and_terminates(void) {
    sl_buf_t b = {0};
    for (int i = 0; i < 1000; i++) CHECK(sl_buf_printf(&b, "%d,", i) == 0);
    CHECK(b.len == strlen(b.data));
    CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    size_t before = b.len;
    CHECK(sl_buf_printf(&b, "%s", big) == 0);
    CHECK(b.len == before + 599);
    sl_buf_free(&b);
}

static void test_checked_size_math(void) {
    size_t out;
    CHECK(sl_add_size(1, 2, &out) && out == 3);
    CHECK(!sl_add_size(SIZE_MAX, 1, &out));
    CHECK(!sl_mul_size(SIZE_MAX / 2, 3, &out));
    CHECK(sl_mul_size(1000, 1000, &out) && out == 1000000);
}

static void test_err_formats(void) {
    char err[SL_ERR_MAX];
    CHECK(sl_err(err, sizeof err, "bad %s at %d", "thing", 7) == -1);
    CHECK(strcmp(err, "bad thing at 7") == 0);
    CHECK(sl_err(NULL, 0, "ignored") == -1);
}

int main(void) {
    RUN(test_buf_grows_and_terminates);
    RUN(test_checked_size_math);
    RUN(test_err_formats);
    return test_summary();
}
