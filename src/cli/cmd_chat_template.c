/*
 * cmd_chat_template.c — `silica chat-template`: render an OpenAI chat request
 * into the prompt text a model would see, with the model's own template.
 *
 *   silica chat-template --model M.gguf REQUEST.json
 *   silica chat-template --template FILE [--bos TEXT] [--eos TEXT] REQUEST.json
 *   silica chat-template --batch JOBS.jsonl
 *   silica chat-template (--model M.gguf | --template FILE) --bench N REQUEST.json
 *
 * REQUEST.json ("-" = stdin) is a chat request: {"messages": [...],
 * "tools": [...]}; like vLLM, it may also carry "add_generation_prompt"
 * (default true) and "chat_template_kwargs" (e.g. {"enable_thinking":
 * false}). The prompt is written to stdout exactly, with no added newline.
 * With --model, the template is the GGUF key tokenizer.chat_template (ChatML
 * when absent) and bos/eos are the text of the model's BOS/EOS tokens.
 *
 * --batch renders many requests in one process (tests compare thousands of
 * renders against jinja2 without paying a process start each). Each input
 * line is a JSON object {"template": FILE | "source": TEXT, "request": {...},
 * "bos", "eos", "now", "max_steps", "max_output", "max_memory"}; each output line is
 * {"ok": true, "out": PROMPT} or {"ok": false, "error": MESSAGE}, in input
 * order. A template file is parsed once per batch.
 *
 * --bench N renders the request N times (after a warm-up) and prints the
 * median, minimum and 90th-percentile time of one render (parse excluded,
 * plus the parse time once).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "chat/chat.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static void usage(void) {
    fprintf(stderr,
            "usage: silica chat-template (--model M.gguf | --template FILE) [options] REQUEST.json\n"
            "  --bos TEXT / --eos TEXT      token text for bos_token / eos_token (--template mode)\n"
            "  --no-generation-prompt      add_generation_prompt=false (default: true, or the request's)\n"
            "  --kwargs JSON                chat_template_kwargs, e.g. '{\"enable_thinking\":false}'\n"
            "  --now EPOCH                  clock for strftime_now (for reproducible output)\n"
            "  --max-steps N / --max-output BYTES / --max-memory BYTES   sandbox limits\n"
            "  --batch JOBS.jsonl           render one JSON job per line, write one JSON result per line\n"
            "  --bench N                    time N renders of REQUEST.json; print median/min/p90\n");
}

/* ---- batch mode ---- */

typedef struct tmpl_cache {
    char **keys; /* "f:" + path or "s:" + source */
    chat_tmpl_t **tmpls;
    char **errs; /* parse error (tmpl NULL) */
    size_t n, cap;
} tmpl_cache_t;

static void cache_free(tmpl_cache_t *c) {
    for (size_t i = 0; i < c->n; i++) {
        free(c->keys[i]);
        chat_tmpl_free(c->tmpls[i]);
        free(c->errs[i]);
    }
    free(c->keys);
    free(c->tmpls);
    free(c->errs);
}

/* Returns the parsed template for a job, or NULL with the reason in err. */
static const chat_tmpl_t *cache_get(tmpl_cache_t *c, const char *path, const char *source, size_t source_len,
                                    char *err, size_t errlen) {
    sl_buf_t key = {0};
    if (sl_buf_puts(&key, path ? "f:" : "s:") ||
        (path ? sl_buf_puts(&key, path) : sl_buf_append(&key, source, source_len)) || sl_buf_putc(&key, 0)) {
        sl_buf_free(&key);
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    size_t klen = key.len;
    for (size_t i = 0; i < c->n; i++) {
        if (!memcmp(c->keys[i], key.data, klen)) {
            sl_buf_free(&key);
            if (!c->tmpls[i]) sl_err(err, errlen, "%s", c->errs[i]);
            return c->tmpls[i];
        }
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        char **k = realloc(c->keys, cap * sizeof *k);
        if (k) c->keys = k;
        chat_tmpl_t **t = realloc(c->tmpls, cap * sizeof *t);
        if (t) c->tmpls = t;
        char **e = realloc(c->errs, cap * sizeof *e);
        if (e) c->errs = e;
        if (!k || !t || !e) {
            sl_buf_free(&key);
            sl_err(err, errlen, "out of memory");
            return NULL;
        }
        c->cap = cap;
    }
    char e[SL_ERR_MAX] = "";
    chat_tmpl_t *t = NULL;
    if (path) {
        size_t len = 0;
        char *src = sl_read_file(path, &len, e, sizeof e);
        if (src) t = chat_tmpl_new(src, len, e, sizeof e);
        free(src);
    } else {
        t = chat_tmpl_new(source, source_len, e, sizeof e);
    }
    c->keys[c->n] = sl_buf_steal(&key);
    c->tmpls[c->n] = t;
    c->errs[c->n] = t ? NULL : sl_strdup(e);
    c->n++;
    if (!t) sl_err(err, errlen, "%s", e);
    return t;
}

static int write_result(FILE *out, bool ok, const char *text, size_t len) {
    json_t *r = json_object();
    json_t *s = json_stringn(text ? text : "", text ? len : 0);
    if (!s) { /* not valid UTF-8 */
        s = json_string(ok ? "rendered prompt is not valid UTF-8" : "error message is not valid UTF-8");
        ok = false;
    }
    if (!r || !s) {
        json_decref(r);
        json_decref(s);
        return -1;
    }
    json_object_set_new(r, "ok", json_boolean(ok));
    json_object_set_new(r, ok ? "out" : "error", s);
    char *line = json_dumps(r, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(r);
    if (!line) return -1;
    fputs(line, out);
    fputc('\n', out);
    free(line);
    return 0;
}

static int run_batch(const char *path) {
    FILE *in = !strcmp(path, "-") ? stdin : fopen(path, "r");
    if (!in) {
        fprintf(stderr, "chat-template: cannot open %s\n", path);
        return 1;
    }
    tmpl_cache_t cache = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    long lineno = 0;
    while ((n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (n == 0 || strspn(line, " \t\r\n") == (size_t)n) continue;
        json_error_t je;
        json_t *job = json_loadb(line, (size_t)n, 0, &je);
        char err[SL_ERR_MAX] = "";
        sl_buf_t out = {0};
        bool ok = false;
        if (!json_is_object(job)) {
            sl_err(err, sizeof err, "line %ld: not a JSON object (%s)", lineno, je.text);
        } else {
            const char *tpath = json_string_value(json_object_get(job, "template"));
            json_t *src = json_object_get(job, "source");
            const chat_tmpl_t *t = NULL;
            if (tpath) t = cache_get(&cache, tpath, NULL, 0, err, sizeof err);
            else if (json_is_string(src))
                t = cache_get(&cache, NULL, json_string_value(src), json_string_length(src), err, sizeof err);
            else sl_err(err, sizeof err, "line %ld: job needs \"template\" or \"source\"", lineno);
            if (t) {
                json_t *req = json_object_get(job, "request");
                json_t *kw = json_object_get(req, "chat_template_kwargs");
                json_t *g = json_object_get(req, "add_generation_prompt");
                chat_render_opts_t o = {
                    .bos_token = json_string_value(json_object_get(job, "bos")),
                    .eos_token = json_string_value(json_object_get(job, "eos")),
                    .add_generation_prompt = g ? json_is_true(g) : true,
                    .kwargs = json_is_object(kw) ? kw : NULL,
                    .now = (time_t)json_integer_value(json_object_get(job, "now")),
                    .max_steps = (size_t)json_integer_value(json_object_get(job, "max_steps")),
                    .max_output = (size_t)json_integer_value(json_object_get(job, "max_output")),
                    .max_memory = (size_t)json_integer_value(json_object_get(job, "max_memory")),
                };
                ok = chat_render(t, req, &o, &out, err, sizeof err) == 0;
            }
        }
        json_decref(job);
        if (ok ? write_result(stdout, true, out.data, out.len) : write_result(stdout, false, err, strlen(err))) {
            fprintf(stderr, "chat-template: out of memory writing a result\n");
            rc = 1;
        }
        sl_buf_free(&out);
        if (rc) break;
    }
    free(line);
    cache_free(&cache);
    if (in != stdin) fclose(in);
    fflush(stdout);
    return rc;
}

/* ---- bench mode ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_bench(const char *src, size_t src_len, const chat_tmpl_t *t, const json_t *req,
                     const chat_render_opts_t *o, long iters) {
    char err[SL_ERR_MAX];
    double t0 = sl_now();
    chat_tmpl_t *tp = src ? chat_tmpl_new(src, src_len, err, sizeof err) : NULL;
    double parse_s = sl_now() - t0;
    chat_tmpl_free(tp);
    double *times = malloc((size_t)iters * sizeof *times);
    if (!times) return 1;
    sl_buf_t out = {0};
    size_t out_len = 0;
    for (long i = -iters / 10 - 1; i < iters; i++) { /* negative i: warm-up */
        sl_buf_clear(&out);
        double a = sl_now();
        if (chat_render(t, req, o, &out, err, sizeof err)) {
            fprintf(stderr, "chat-template: %s\n", err);
            free(times);
            sl_buf_free(&out);
            return 1;
        }
        double d = sl_now() - a;
        if (i >= 0) times[i] = d;
        out_len = out.len;
    }
    qsort(times, (size_t)iters, sizeof *times, cmp_double);
    printf("renders: %ld  prompt: %zu bytes  parse: %.1f us\n", iters, out_len, parse_s * 1e6);
    printf("render median: %.1f us  min: %.1f us  p90: %.1f us\n", times[iters / 2] * 1e6, times[0] * 1e6,
           times[(size_t)((double)iters * 0.9)] * 1e6);
    free(times);
    sl_buf_free(&out);
    return 0;
}

static char *token_text(const sl_tok_t *tok, int32_t id) {
    if (id < 0) return NULL;
    size_t n;
    const char *s = tok_token_text(tok, id, &n);
    return s ? sl_strndup(s, n) : NULL;
}

int cmd_chat_template(int argc, char **argv) {
    const char *model = NULL, *tmpl_path = NULL, *req_path = NULL, *kwargs_s = NULL;
    char *bos = NULL, *eos = NULL;
    const char *batch = NULL;
    int gen = -1;
    long long now = 0, max_steps = 0, max_output = 0, max_memory = 0;
    long bench = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--model") && has) model = argv[++i];
        else if (!strcmp(a, "--template") && has) tmpl_path = argv[++i];
        else if (!strcmp(a, "--bos") && has) bos = sl_strdup(argv[++i]);
        else if (!strcmp(a, "--eos") && has) eos = sl_strdup(argv[++i]);
        else if (!strcmp(a, "--kwargs") && has) kwargs_s = argv[++i];
        else if (!strcmp(a, "--now") && has) now = atoll(argv[++i]);
        else if (!strcmp(a, "--max-steps") && has) max_steps = atoll(argv[++i]);
        else if (!strcmp(a, "--max-output") && has) max_output = atoll(argv[++i]);
        else if (!strcmp(a, "--max-memory") && has) max_memory = atoll(argv[++i]);
        else if (!strcmp(a, "--batch") && has) batch = argv[++i];
        else if (!strcmp(a, "--bench") && has) bench = atol(argv[++i]);
        else if (!strcmp(a, "--no-generation-prompt")) gen = 0;
        else if (!strcmp(a, "--add-generation-prompt")) gen = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "chat-template: unknown option '%s'\n", a);
            usage();
            return 2;
        } else req_path = a;
    }
    if (batch) {
        free(bos);
        free(eos);
        return run_batch(batch);
    }
    if ((!model == !tmpl_path) || !req_path || bench < 0 || max_steps < 0 || max_output < 0 || max_memory < 0) {
        usage();
        free(bos);
        free(eos);
        return 2;
    }

    char err[SL_ERR_MAX];
    int rc = 1;
    char *src = NULL;
    size_t src_len = 0;
    chat_tmpl_t *t = NULL;
    json_t *req = NULL, *kwargs = NULL;
    sl_buf_t out = {0};

    if (model) {
        gguf_file_t *f = gguf_open(model, err, sizeof err);
        if (!f) {
            fprintf(stderr, "chat-template: %s\n", err);
            goto done;
        }
        gguf_str_t s;
        if (gguf_get_str(f, "tokenizer.chat_template", &s, NULL, 0) == 0) {
            src = sl_strndup(s.ptr, s.len);
            src_len = s.len;
        }
        sl_tok_t *tok = tok_load(f, err, sizeof err);
        if (tok) {
            if (!bos) bos = token_text(tok, tok_bos(tok));
            if (!eos) eos = token_text(tok, tok_eos(tok));
            tok_free(tok);
        } else {
            fprintf(stderr, "chat-template: warning: no tokenizer (%s); bos/eos are empty\n", err);
        }
        gguf_close(f);
        if (src) t = chat_tmpl_new(src, src_len, err, sizeof err);
        else t = chat_tmpl_new_chatml(err, sizeof err);
    } else {
        src = sl_read_file(tmpl_path, &src_len, err, sizeof err);
        if (!src) {
            fprintf(stderr, "chat-template: %s\n", err);
            goto done;
        }
        t = chat_tmpl_new(src, src_len, err, sizeof err);
    }
    if (!t) {
        fprintf(stderr, "chat-template: %s\n", err);
        goto done;
    }

    json_error_t je;
    req = !strcmp(req_path, "-") ? json_loadf(stdin, 0, &je) : json_load_file(req_path, 0, &je);
    if (!req) {
        fprintf(stderr, "chat-template: %s:%d:%d: %s\n", req_path, je.line, je.column, je.text);
        goto done;
    }
    if (kwargs_s) {
        kwargs = json_loads(kwargs_s, 0, &je);
        if (!json_is_object(kwargs)) {
            fprintf(stderr, "chat-template: --kwargs must be a JSON object\n");
            goto done;
        }
    } else if (json_is_object(json_object_get(req, "chat_template_kwargs"))) {
        kwargs = json_incref(json_object_get(req, "chat_template_kwargs"));
    }
    if (gen < 0) {
        json_t *g = json_object_get(req, "add_generation_prompt");
        gen = g ? json_is_true(g) : 1;
    }
    chat_render_opts_t o = {
        .bos_token = bos, .eos_token = eos, .add_generation_prompt = gen == 1, .kwargs = kwargs, .now = (time_t)now,
        .max_steps = (size_t)max_steps, .max_output = (size_t)max_output, .max_memory = (size_t)max_memory};
    if (bench > 0) {
        rc = run_bench(src, src_len, t, req, &o, bench);
        goto done;
    }
    if (chat_render(t, req, &o, &out, err, sizeof err)) {
        fprintf(stderr, "chat-template: %s\n", err);
        goto done;
    }
    if (out.len) fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    rc = 0;
done:
    sl_buf_free(&out);
    json_decref(req);
    json_decref(kwargs);
    chat_tmpl_free(t);
    free(src);
    free(bos);
    free(eos);
    return rc;
}
