/*
 * cmd_tokenize.c — `silica tokenize (--model M.gguf | --hf DIR) [--special]
 * [--no-add-special] [FILE]`: prints the token ids of FILE (stdin without
 * one) space-separated on one line. BOS/EOS are added as the model's
 * add_bos/add_eos flags say (--no-add-special turns that off); --special
 * lets special-token text in the input become special tokens.
 *
 * --bench [--runs N]: encodes the whole input N times (default 7) on one
 * thread and prints the time of each run and the median throughput in MB/s
 * (tokenizer loading not included), instead of the ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/model_cli.h"
#include "tokenizer/tokenizer.h"

static char *read_stream(FILE *fp, size_t *len) {
    sl_buf_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        if (sl_buf_append(&b, chunk, n) != 0) {
            sl_buf_free(&b);
            return NULL;
        }
    }
    if (ferror(fp)) {
        sl_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    if (!b.data) return calloc(1, 1);
    return sl_buf_steal(&b);
}

static int cmp_double(const void *a, const void *b);

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Encodes text runs times; prints the command, the machine, each run and
 * the median MB/s (1 MB = 10^6 bytes of input), by wall time and by the
 * thread's CPU time (the latter does not count time the thread waited for
 * a core on a busy machine). */
static int bench(const sl_tok_t *t, const char *text, size_t len, int runs, bool add_special, bool parse_special,
                 int argc, char **argv) {
    char cpu[256];
    mcli_cpu_model(cpu, sizeof cpu);
    printf("command: silica");
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\nmachine: %s, %ld cores online; tokenizer %s/%s, 1 thread\n", cpu, sysconf(_SC_NPROCESSORS_ONLN),
           tok_model_name(t), tok_pre_name(t));
    double *secs = calloc(2 * (size_t)runs, sizeof(double));
    if (!secs) return 1;
    double *cpu_secs = secs + runs;
    char err[SL_ERR_MAX];
    size_t n_tok = 0;
    for (int r = 0; r < runs; r++) {
        int32_t *ids = NULL;
        double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        if (tok_encode(t, text, len, add_special, parse_special, &ids, &n_tok, err, sizeof err) != 0) {
            fprintf(stderr, "silica tokenize: %s\n", err);
            free(secs);
            return 1;
        }
        cpu_secs[r] = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        secs[r] = clock_s(CLOCK_MONOTONIC) - t0;
        free(ids);
        printf("run %d: %.4f s wall (%.2f MB/s), %.4f s cpu (%.2f MB/s)\n", r + 1, secs[r],
               (double)len / 1e6 / secs[r], cpu_secs[r], (double)len / 1e6 / cpu_secs[r]);
    }
    double med = median(secs, runs), cmed = median(cpu_secs, runs);
    printf("%zu bytes -> %zu tokens (%.2f bytes/token); median of %d runs: %.4f s wall = %.2f MB/s, "
           "%.4f s cpu = %.2f MB/s (1 thread)\n",
           len, n_tok, n_tok ? (double)len / (double)n_tok : 0.0, runs, med, (double)len / 1e6 / med, cmed,
           (double)len / 1e6 / cmed);
    free(secs);
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: silica tokenize (--model M.gguf | --hf DIR) [--special] [--no-add-special] [FILE]\n"
                    "  prints the token ids of FILE (or stdin) on one line\n"
                    "  --hf DIR          use DIR/tokenizer.json (+ tokenizer_config.json) instead of a GGUF\n"
                    "  --special         parse special-token text (e.g. <|im_start|>) into special tokens\n"
                    "  --no-add-special  do not add BOS/EOS even if the model asks for them\n"
                    "  --null-separated  the input holds NUL-separated texts: one line of ids for each\n"
                    "  --bench           time encoding the whole input (--runs N times, default 7), print MB/s\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *hfdir = NULL, *file = NULL;
    bool parse_special = false, add_special = true, split0 = false, do_bench = false;
    int runs = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") || !strcmp(argv[i], "-m")) {
            if (++i >= argc) return usage(), 2;
            model = argv[i];
        } else if (!strcmp(argv[i], "--hf")) {
            if (++i >= argc) return usage(), 2;
            hfdir = argv[i];
        } else if (!strcmp(argv[i], "--special")) {
            parse_special = true;
        } else if (!strcmp(argv[i], "--no-add-special")) {
            add_special = false;
        } else if (!strcmp(argv[i], "--null-separated")) {
            split0 = true;
        } else if (!strcmp(argv[i], "--bench")) {
            do_bench = true;
        } else if (!strcmp(argv[i], "--runs")) {
            if (++i >= argc) return usage(), 2;
            runs = atoi(argv[i]);
            if (runs < 1 || runs > 1000) return usage(), 2;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "silica tokenize: unknown option %s\n", argv[i]);
            return 2;
        } else if (!file) {
            file = argv[i];
        } else {
            return usage(), 2;
        }
    }
    if (!model == !hfdir) return usage(), 2;

    char err[SL_ERR_MAX];
    size_t len = 0;
    char *text;
    if (file && strcmp(file, "-") != 0) {
        text = sl_read_file(file, &len, err, sizeof err);
        if (!text) {
            fprintf(stderr, "silica tokenize: %s\n", err);
            return 1;
        }
    } else {
        text = read_stream(stdin, &len);
        if (!text) {
            fprintf(stderr, "silica tokenize: cannot read stdin\n");
            return 1;
        }
    }
    sl_tok_t *t = mcli_load_tokenizer(model, hfdir, err, sizeof err);
    if (!t) {
        fprintf(stderr, "silica tokenize: %s: %s\n", model ? model : hfdir, err);
        free(text);
        return 1;
    }
    if (do_bench) {
        int brc = bench(t, text, len, runs, add_special, parse_special, argc, argv);
        free(text);
        tok_free(t);
        return brc;
    }
    int rc = 0;
    sl_buf_t out = {0};
    /* One text, or (--null-separated) each NUL-separated text on its own line. */
    for (size_t start = 0; rc == 0;) {
        size_t end = len;
        if (split0) {
            const char *z = memchr(text + start, '\0', len - start);
            if (z) end = (size_t)(z - text);
        }
        int32_t *ids = NULL;
        size_t n = 0;
        if (tok_encode(t, text + start, end - start, add_special, parse_special, &ids, &n, err, sizeof err) != 0) {
            fprintf(stderr, "silica tokenize: %s\n", err);
            rc = 1;
            break;
        }
        for (size_t i = 0; i < n && rc == 0; i++)
            if (sl_buf_printf(&out, i ? " %d" : "%d", ids[i]) != 0) rc = 1;
        if (sl_buf_putc(&out, '\n') != 0) rc = 1;
        free(ids);
        if (end >= len) break;
        start = end + 1;
    }
    if (rc == 0 && out.len) fwrite(out.data, 1, out.len, stdout);
    sl_buf_free(&out);
    free(text);
    tok_free(t);
    if (fflush(stdout) != 0) rc = 1;
    return rc;
}
