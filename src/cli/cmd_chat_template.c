/*
 * cmd_chat_template.c — `silica chat-template`: render an OpenAI chat request
 * into the prompt text a model would see, with the model's own template.
 *
 *   silica chat-template --model M.gguf REQUEST.json
 *   silica chat-template --template FILE [--bos TEXT] [--eos TEXT] REQUEST.json
 *
 * REQUEST.json ("-" = stdin) is a chat request: {"messages": [...],
 * "tools": [...]}; like vLLM, it may also carry "add_generation_prompt"
 * (default true) and "chat_template_kwargs" (e.g. {"enable_thinking":
 * false}). The prompt is written to stdout exactly, with no added newline.
 * With --model, the template is the GGUF key tokenizer.chat_template (ChatML
 * when absent) and bos/eos are the text of the model's BOS/EOS tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            "  --now EPOCH                  clock for strftime_now (for reproducible output)\n");
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
    int gen = -1;
    long long now = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--model") && has) model = argv[++i];
        else if (!strcmp(a, "--template") && has) tmpl_path = argv[++i];
        else if (!strcmp(a, "--bos") && has) bos = sl_strdup(argv[++i]);
        else if (!strcmp(a, "--eos") && has) eos = sl_strdup(argv[++i]);
        else if (!strcmp(a, "--kwargs") && has) kwargs_s = argv[++i];
        else if (!strcmp(a, "--now") && has) now = atoll(argv[++i]);
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
    if ((!model == !tmpl_path) || !req_path) {
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
        .bos_token = bos, .eos_token = eos, .add_generation_prompt = gen == 1, .kwargs = kwargs, .now = (time_t)now};
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
