/*
 * cmd_info.c — `silica info FILE.gguf`: print a GGUF file's header, every
 * metadata key with its type and value, and the tensor table with totals.
 *
 * Output is for people: long arrays show their first elements and their
 * count, strings longer than 200 bytes are cut (at a UTF-8 boundary) with
 * their full length noted, control bytes are escaped. A file the reader
 * refuses is reported on stderr with exit status 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "kernels/quant.h"

#define STR_MAX 200     /* bytes of a string value shown */
#define ARR_STR_MAX 40  /* bytes of each string shown inside an array */
#define ARR_NUM_SHOWN 8 /* numeric array elements shown */
#define ARR_STR_SHOWN 5 /* string array elements shown */

/* Prints s as a quoted string, escaping control bytes, cut to `max` bytes. */
static void print_str(FILE *out, const char *s, size_t len, size_t max) {
    size_t n = len;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* no half characters */
    }
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(out, "\\x%02x", c);
            else
                fputc(c, out);
        }
    }
    fputc('"', out);
    if (n < len) fprintf(out, "... (%zu bytes)", len);
}

/* Prints one fixed-size value of type t stored (little-endian) at p. */
static void print_scalar(FILE *out, gguf_vtype_t t, const void *p) {
    switch (t) {
    case GGUF_VT_UINT8: {
        uint8_t v;
        memcpy(&v, p, 1);
        fprintf(out, "%" PRIu8, v);
        break;
    }
    case GGUF_VT_INT8: {
        int8_t v;
        memcpy(&v, p, 1);
        fprintf(out, "%" PRId8, v);
        break;
    }
    case GGUF_VT_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        fprintf(out, "%" PRIu16, v);
        break;
    }
    case GGUF_VT_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        fprintf(out, "%" PRId16, v);
        break;
    }
    case GGUF_VT_UINT32: {
        uint32_t v;
        memcpy(&v, p, 4);
        fprintf(out, "%" PRIu32, v);
        break;
    }
    case GGUF_VT_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        fprintf(out, "%" PRId32, v);
        break;
    }
    case GGUF_VT_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        fprintf(out, "%" PRIu64, v);
        break;
    }
    case GGUF_VT_INT64: {
        int64_t v;
        memcpy(&v, p, 8);
        fprintf(out, "%" PRId64, v);
        break;
    }
    case GGUF_VT_FLOAT32: {
        float v;
        memcpy(&v, p, 4);
        fprintf(out, "%.9g", (double)v);
        break;
    }
    case GGUF_VT_FLOAT64: {
        double v;
        memcpy(&v, p, 8);
        fprintf(out, "%.17g", v);
        break;
    }
    case GGUF_VT_BOOL:
        fputs(*(const uint8_t *)p ? "true" : "false", out);
        break;
    default:
        fputs("?", out);
    }
}

static void print_kv(FILE *out, const gguf_file_t *f, size_t i) {
    gguf_vtype_t t = gguf_kv_type(f, i);
    char type[32];
    if (t == GGUF_VT_ARRAY)
        snprintf(type, sizeof type, "[%s]", gguf_vtype_name(gguf_arr_type(f, i)));
    else
        snprintf(type, sizeof type, "%s", gguf_vtype_name(t));
    fprintf(out, "  %-40s %-9s ", gguf_key(f, i), type);
    if (t == GGUF_VT_STRING) {
        gguf_str_t s = gguf_kv_str(f, i);
        print_str(out, s.ptr, s.len, STR_MAX);
    } else if (t == GGUF_VT_ARRAY) {
        gguf_vtype_t et = gguf_arr_type(f, i);
        size_t n = gguf_arr_len(f, i);
        size_t shown = SL_MIN(n, et == GGUF_VT_STRING ? ARR_STR_SHOWN : ARR_NUM_SHOWN);
        size_t esz = gguf_vtype_size(et);
        const uint8_t *data = gguf_arr_data(f, i);
        fputc('[', out);
        for (size_t j = 0; j < shown; j++) {
            if (j) fputs(", ", out);
            if (et == GGUF_VT_STRING) {
                gguf_str_t s = gguf_arr_str(f, i, j);
                print_str(out, s.ptr, s.len, ARR_STR_MAX);
            } else {
                print_scalar(out, et, data + j * esz);
            }
        }
        if (shown < n) fputs(", ...", out);
        fprintf(out, "] (%zu items)", n);
    } else {
        print_scalar(out, t, gguf_kv_data(f, i));
    }
    fputc('\n', out);
}

static void usage(FILE *out) {
    fprintf(out, "usage: silica info FILE.gguf\n"
                 "Prints the GGUF version, alignment, every metadata key (type and value)\n"
                 "and the tensor table (name, type, shape, offset, bytes) with totals.\n");
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "silica info: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        if (path) {
            fprintf(stderr, "silica info: one file at a time\n");
            return 2;
        }
        path = argv[i];
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    char err[SL_ERR_MAX];
    gguf_file_t *f = gguf_open(path, err, sizeof err);
    if (!f) {
        fprintf(stderr, "silica info: %s\n", err);
        return 1;
    }
    FILE *out = stdout;
    fprintf(out, "file:        %s\n", path);
    fprintf(out, "version:     %" PRIu32 "\n", gguf_version(f));
    fprintf(out, "alignment:   %zu\n", gguf_alignment(f));
    fprintf(out, "file size:   %zu bytes\n", gguf_file_size(f));
    fprintf(out, "data offset: %zu\n", gguf_data_offset(f));

    fprintf(out, "\nmetadata: %zu keys\n", gguf_n_kv(f));
    for (size_t i = 0; i < gguf_n_kv(f); i++)
        print_kv(out, f, i);

    size_t nt = gguf_n_tensors(f), name_w = 4;
    for (size_t i = 0; i < nt; i++)
        name_w = SL_MAX(name_w, strlen(gguf_tensor(f, i)->name));
    name_w = SL_MIN(name_w, 64);
    fprintf(out, "\ntensors: %zu\n", nt);
    fprintf(out, "  %5s  %-*s  %-7s  %-26s  %12s  %12s\n", "#", (int)name_w, "name", "type",
            "shape", "offset", "bytes");
    uint64_t total_bytes = 0, total_elems = 0;
    for (size_t i = 0; i < nt; i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        char shape[128];
        int n = snprintf(shape, sizeof shape, "[");
        for (uint32_t d = 0; d < t->n_dims; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%" PRId64, d ? ", " : "",
                          t->ne[d]);
        snprintf(shape + n, sizeof shape - (size_t)n, "]");
        fprintf(out, "  %5zu  %-*s  %-7s  %-26s  %12" PRIu64 "  %12zu\n", i, (int)name_w, t->name,
                sl_type_name(t->type), shape, t->offset, t->nbytes);
        total_bytes += t->nbytes;
        total_elems += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    fprintf(out, "\ntotal: %zu tensors, %" PRIu64 " elements, %" PRIu64 " bytes (%.2f MiB)\n", nt,
            total_elems, total_bytes, (double)total_bytes / (1024.0 * 1024.0));
    gguf_close(f);
    if (fflush(out) != 0) {
        perror("silica info");
        return 1;
    }
    return 0;
}
