/*
 * model_cli.c — shared option handling for logits / generate / bench, and
 * tokenizer loading for tokenize / detokenize.
 */
#include "cli/model_cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "gguf/gguf.h"
#include "tokenizer/hf_import.h"
#include "tokenizer/tokenizer.h"

bool mcli_int(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool mcli_float(const char *s, double *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

static int push_id(mcli_opts_t *o, int32_t id) {
    int32_t *n = realloc(o->ids, (o->n_ids + 1) * sizeof *n);
    if (!n) return -1;
    o->ids = n;
    o->ids[o->n_ids++] = id;
    return 0;
}

int mcli_parse_common(mcli_opts_t *o, int argc, char **argv, int *i, const char *cmd) {
    const char *a = argv[*i];
    const char *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    long v;
    if (!strcmp(a, "--model") || !strcmp(a, "-m")) {
        if (!val) goto missing;
        o->model = val;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--prompt")) {
        if (!val) goto missing;
        o->prompt = val;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        if (!val) goto missing;
        if (!mcli_int(val, 0, 1024, &v)) {
            fprintf(stderr, "silica %s: bad thread count '%s'\n", cmd, val);
            return -1;
        }
        o->threads = (int)v;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--kv-type")) {
        if (!val) goto missing;
        if (!strcmp(val, "f32"))
            o->kv_type = SL_TYPE_F32;
        else if (!strcmp(val, "f16"))
            o->kv_type = SL_TYPE_F16;
        else {
            fprintf(stderr, "silica %s: --kv-type must be f32 or f16\n", cmd);
            return -1;
        }
        (*i)++;
        return 1;
    }
    if (mcli_int(a, 0, INT32_MAX, &v)) {
        if (push_id(o, (int32_t)v)) {
            fprintf(stderr, "silica %s: out of memory\n", cmd);
            return -1;
        }
        return 1;
    }
    return 0;
missing:
    fprintf(stderr, "silica %s: %s needs a value\n", cmd, a);
    return -1;
}

sl_tok_t *mcli_load_tokenizer(const char *model, const char *hfdir, char *err, size_t errlen) {
    if (hfdir) return tok_load_hf_dir(hfdir, err, errlen);
    gguf_file_t *f = gguf_open(model, err, errlen);
    if (!f) return NULL;
    sl_tok_t *t = tok_load(f, err, errlen);
    gguf_close(f);
    return t;
}

int mcli_n_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void mcli_cpu_model(char *buf, size_t len) {
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        c[strcspn(c, "\n")] = '\0';
        snprintf(buf, len, "%s", c);
        break;
    }
    fclose(f);
}

static int tokenize_prompt(mcli_opts_t *o, const sl_model_t *m, const char *cmd) {
    char err[SL_ERR_MAX];
    sl_tok_t *tok = tok_load(model_gguf(m), err, sizeof err);
    if (!tok) {
        fprintf(stderr, "silica %s: --prompt needs the model's tokenizer: %s\n", cmd, err);
        return -1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = tok_encode(tok, o->prompt, strlen(o->prompt), true, false, &ids, &n, err, sizeof err);
    tok_free(tok);
    if (rc) {
        fprintf(stderr, "silica %s: tokenizing the prompt: %s\n", cmd, err);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (push_id(o, ids[i])) {
            free(ids);
            return -1;
        }
    free(ids);
    return 0;
}

int mcli_setup(mcli_opts_t *o, sl_model_t **model, sl_pool_t **pool, const char *cmd) {
    *model = NULL;
    *pool = NULL;
    if (!o->model) {
        fprintf(stderr, "silica %s: --model M.gguf is required\n", cmd);
        return -1;
    }
    char err[SL_ERR_MAX];
    sl_model_t *m = model_load(o->model, err, sizeof err);
    if (!m) {
        fprintf(stderr, "silica %s: %s\n", cmd, err);
        return -1;
    }
    if (o->prompt && tokenize_prompt(o, m, cmd)) {
        model_free(m);
        return -1;
    }
    const int n_vocab = model_hparams(m)->n_vocab;
    for (size_t i = 0; i < o->n_ids; i++)
        if (o->ids[i] >= n_vocab) {
            fprintf(stderr, "silica %s: token id %d is out of range (vocabulary %d)\n", cmd, (int)o->ids[i],
                    n_vocab);
            model_free(m);
            return -1;
        }
    const int nt = o->threads > 0 ? o->threads : mcli_n_cores();
    if (nt > 1 && !(*pool = sl_pool_new(nt))) {
        fprintf(stderr, "silica %s: cannot start %d threads\n", cmd, nt);
        model_free(m);
        return -1;
    }
    *model = m;
    return 0;
}

void mcli_free(mcli_opts_t *o) {
    free(o->ids);
    o->ids = NULL;
    o->n_ids = 0;
}
