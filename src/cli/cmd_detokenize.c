/*
 * cmd_detokenize.c — `silica detokenize --model M.gguf [--no-special] ID...`:
 * prints the text of token ids (no newline added). Special tokens render as
 * their text unless --no-special. With no IDs on the command line, reads
 * whitespace-separated ids from stdin; with --lines, each stdin line of ids
 * is decoded on its own and printed followed by a NUL byte.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "cli/model_cli.h"
#include "tokenizer/tokenizer.h"

static int parse_id(const char *s, int32_t *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < INT32_MIN || v > INT32_MAX) return -1;
    *out = (int32_t)v;
    return 0;
}

static int push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        int32_t *p = realloc(*ids, nc * sizeof(int32_t));
        if (!p) return -1;
        *ids = p;
        *cap = nc;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

int cmd_detokenize(int argc, char **argv) {
    const char *model = NULL, *hfdir = NULL;
    bool render_special = true, lines = false;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") || !strcmp(argv[i], "-m")) {
            if (++i >= argc) goto usage;
            model = argv[i];
        } else if (!strcmp(argv[i], "--hf")) {
            if (++i >= argc) goto usage;
            hfdir = argv[i];
        } else if (!strcmp(argv[i], "--no-special")) {
            render_special = false;
        } else if (!strcmp(argv[i], "--lines")) {
            lines = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: silica detokenize (--model M.gguf | --hf DIR) [--no-special] [--lines] [ID...]\n");
            rc = 0;
            goto done;
        } else {
            int32_t id;
            if (parse_id(argv[i], &id) != 0) {
                fprintf(stderr, "silica detokenize: not a token id: %s\n", argv[i]);
                goto done;
            }
            if (push_id(&ids, &n, &cap, id) != 0) goto done;
        }
    }
    if (!model == !hfdir) goto usage;
    char err[SL_ERR_MAX];
    if (lines) { /* each stdin line of ids -> its text followed by a NUL */
        sl_tok_t *t = mcli_load_tokenizer(model, hfdir, err, sizeof err);
        if (!t) {
            fprintf(stderr, "silica detokenize: %s: %s\n", model ? model : hfdir, err);
            goto done;
        }
        char *line = NULL;
        size_t cap_line = 0;
        ssize_t got;
        rc = 0;
        while (rc == 0 && (got = getline(&line, &cap_line, stdin)) >= 0) {
            n = 0;
            for (char *tokp = strtok(line, " \t\r\n"); tokp && rc == 0; tokp = strtok(NULL, " \t\r\n")) {
                int32_t id;
                if (parse_id(tokp, &id) != 0 || push_id(&ids, &n, &cap, id) != 0) rc = 1;
            }
            sl_buf_t out = {0};
            if (rc == 0 && tok_decode(t, ids, n, render_special, &out) != 0) rc = 1;
            if (rc == 0) {
                if (out.len) fwrite(out.data, 1, out.len, stdout);
                fputc('\0', stdout);
            }
            sl_buf_free(&out);
        }
        if (rc) fprintf(stderr, "silica detokenize: bad token id in input\n");
        free(line);
        tok_free(t);
        if (fflush(stdout) != 0) rc = 1;
        goto done;
    }
    if (n == 0) {
        char word[32];
        while (scanf("%31s", word) == 1) {
            int32_t id;
            if (parse_id(word, &id) != 0) {
                fprintf(stderr, "silica detokenize: not a token id: %s\n", word);
                goto done;
            }
            if (push_id(&ids, &n, &cap, id) != 0) goto done;
        }
    }
    sl_tok_t *t = mcli_load_tokenizer(model, hfdir, err, sizeof err);
    if (!t) {
        fprintf(stderr, "silica detokenize: %s: %s\n", model ? model : hfdir, err);
        goto done;
    }
    sl_buf_t out = {0};
    if (tok_decode(t, ids, n, render_special, &out) != 0) {
        fprintf(stderr, "silica detokenize: a token id is outside the vocabulary (%d tokens)\n", tok_n_vocab(t));
    } else {
        if (out.len) fwrite(out.data, 1, out.len, stdout);
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    sl_buf_free(&out);
    tok_free(t);
    goto done;
usage:
    fprintf(stderr, "usage: silica detokenize (--model M.gguf | --hf DIR) [--no-special] [--lines] [ID...]\n");
    rc = 2;
done:
    free(ids);
    return rc;
}
