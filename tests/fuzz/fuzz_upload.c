/*
 * fuzz_upload.c — libFuzzer target for what a batch upload feeds the
 * server: the input is a Content-Type header value, a NUL byte, then a
 * multipart/form-data body (mp_boundary + mp_parse, every part checked to
 * lie inside the body); the "file" part, when there is one, is then
 * validated as a batch input file (plat_batch_validate, handing out each
 * request). Must never crash, leak or hang; errors are fine.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "platform/batch.h"
#include "server/multipart.h"

static int each_line(void *ud, int64_t line, const char *custom_id, const char *body) {
    assert(custom_id && body && line > 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size < 512 ? size : 512);
    if (!nul) return 0;
    char ct[512];
    memcpy(ct, data, (size_t)(nul - data) + 1);
    const char *body = (const char *)nul + 1;
    size_t len = size - (size_t)(nul - data) - 1;
    char *copy = malloc(len ? len : 1); /* exact size: overreads are caught */
    memcpy(copy, body, len);
    char boundary[80], err[300];
    mp_part_t parts[MP_MAX_PARTS];
    int n = 0;
    if (mp_boundary(ct, boundary, sizeof boundary, err, sizeof err) == 0 &&
        mp_parse(copy, len, boundary, parts, MP_MAX_PARTS, &n, err, sizeof err) == 0) {
        for (int i = 0; i < n; i++) assert(parts[i].data >= copy && parts[i].data + parts[i].len <= copy + len);
        const mp_part_t *f = mp_find(parts, n, "file");
        if (f) {
            json_t *errors = NULL;
            plat_batch_validate(f->data, f->len, "/v1/chat/completions", NULL, NULL, each_line, NULL, &errors);
            json_decref(errors);
        }
    }
    free(copy);
    return 0;
}
