/*
 * chat.c — chat templates: parse once (chat_tmpl_new), render an OpenAI chat
 * request into a prompt (chat_render), the ChatML fallback.
 *
 * Request normalisation (what the template sees), chosen to match what
 * OpenAI-compatible servers built on transformers do for text models:
 *   - content given as an array of parts: text parts are joined with "\n"
 *     (vLLM's behaviour); any other part type is a request error;
 *   - null content stays None (transformers passes it through; templates
 *     such as DeepSeek's test `content is none` to find tool-call turns);
 *   - tool_calls[].function.arguments, a JSON string on the wire, is parsed
 *     into a mapping (templates iterate it or run |tojson on it; vLLM);
 *   - fallbacks, only when a render fails: arguments kept as the JSON string
 *     (DeepSeek's templates concatenate them), then null content as ""
 *     (templates that search or concatenate content, e.g. Qwen3's), then
 *     both; the first variant that renders wins, else the first error.
 *   - `tools` and `documents` are None when the request has none, as
 *     transformers' apply_chat_template passes them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "chat/jinja.h"

static size_t max_memory(const chat_render_opts_t *o) {
    return o && o->max_memory ? o->max_memory : CHAT_DEFAULT_MAX_MEMORY;
}

struct chat_tmpl {
    jz_arena_t arena;
    jnode_t *root;
};

static const char CHATML[] =
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}\n"
    "{%- if message['content'] is string -%}{{- message['content'] }}{%- endif -%}\n"
    "{%- if message['tool_calls'] is defined and message['tool_calls'] -%}\n"
    "{%- for tc in message['tool_calls'] -%}\n"
    "{{- '\\n<tool_call>\\n' + (tc['function'] | tojson) + '\\n</tool_call>' }}\n"
    "{%- endfor -%}\n"
    "{%- endif -%}\n"
    "{{- '<|im_end|>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' }}{%- endif -%}\n";

const char *chat_tmpl_chatml_source(void) { return CHATML; }

chat_tmpl_t *chat_tmpl_new(const char *source, size_t len, char *err, size_t errlen) {
    chat_tmpl_t *t = calloc(1, sizeof *t);
    if (!t) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    jtok_t *toks;
    size_t ntoks;
    char e[SL_ERR_MAX];
    if (jinja_lex(&t->arena, source ? source : "", source ? len : 0, &toks, &ntoks, e, sizeof e) ||
        jinja_parse(&t->arena, toks, ntoks, &t->root, e, sizeof e)) {
        sl_err(err, errlen, "template syntax error at %s", e);
        chat_tmpl_free(t);
        return NULL;
    }
    return t;
}

chat_tmpl_t *chat_tmpl_new_chatml(char *err, size_t errlen) {
    return chat_tmpl_new(CHATML, sizeof CHATML - 1, err, errlen);
}

void chat_tmpl_free(chat_tmpl_t *t) {
    if (!t) return;
    jz_arena_free(&t->arena);
    free(t);
}

static bool uses_var(const jnode_t *n, const char *name, int depth) {
    if (!n || depth > 400) return false;
    if (n->kind == JN_NAME && !strcmp(n->str, name)) return true;
    if (uses_var(n->a, name, depth + 1) || uses_var(n->b, name, depth + 1) || uses_var(n->c, name, depth + 1) ||
        uses_var(n->d, name, depth + 1))
        return true;
    for (size_t i = 0; i < n->nkids; i++)
        if (uses_var(n->kids[i], name, depth + 1)) return true;
    for (size_t i = 0; i < n->nkids2; i++)
        if (uses_var(n->kids2[i], name, depth + 1)) return true;
    return false;
}

bool chat_tmpl_uses_var(const chat_tmpl_t *t, const char *name) { return t && uses_var(t->root, name, 0); }

static int render_dict(const chat_tmpl_t *t, jz_arena_t *arena, jdict_t *vars, const chat_render_opts_t *o,
                       sl_buf_t *out, char *err, size_t errlen) {
    jinja_limits_t lim = {
        .max_steps = o && o->max_steps ? o->max_steps : CHAT_DEFAULT_MAX_STEPS,
        .max_output = o && o->max_output ? o->max_output : CHAT_DEFAULT_MAX_OUTPUT,
        .max_memory = max_memory(o),
        .max_depth = CHAT_MAX_DEPTH * 3,
        .now = o ? o->now : 0,
    };
    char e[SL_ERR_MAX];
    if (jinja_render(t->root, arena, vars, &lim, out, e, sizeof e))
        return sl_err(err, errlen, "template error at %s", e);
    return 0;
}

static int set_json_vars(jz_arena_t *a, jdict_t *vars, const json_t *obj, char *err, size_t errlen) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        jv_t x;
        size_t kl = strlen(k);
        char *kp = jz_strndup(a, k, kl);
        if (!kp || jv_from_json(a, v, &x, 0) || jdict_set(a, vars, jv_strn(kp, kl), x))
            return sl_err(err, errlen, "out of memory (or value nested too deeply) in template variables");
    }
    return 0;
}

int chat_render_vars(const chat_tmpl_t *t, const json_t *vars, const chat_render_opts_t *o, sl_buf_t *out, char *err,
                     size_t errlen) {
    if (!t || !json_is_object(vars)) return sl_err(err, errlen, "template variables must be an object");
    jz_arena_t arena = {.limit = max_memory(o)};
    jdict_t *d = jdict_new(&arena, 0);
    int rc = d ? set_json_vars(&arena, d, vars, err, errlen) : sl_err(err, errlen, "out of memory");
    if (!rc) rc = render_dict(t, &arena, d, o, out, err, errlen);
    jz_arena_free(&arena);
    return rc;
}

/* Normalisation variants (see the top), tried in the order of `modes` in
 * chat_render when a render fails: NORM_NULL_EMPTY turns null content into "", NORM_ARGS_STRING keeps
 * tool-call arguments as their JSON string. */
enum { NORM_NULL_EMPTY = 1, NORM_ARGS_STRING = 2 };

/* Harmony (gpt-oss): the header that opens a commentary message (a
 * preamble) after the analysis message of the same turn. */
#define HARMONY_PREAMBLE "<|end|><|start|>assistant<|channel|>commentary<|message|>"

/* Harmony: an assistant tool-call turn with both text (content) and
 * reasoning (thinking) is what the model writes as an analysis message, a
 * commentary preamble, then the call. gpt-oss's template takes one of them
 * (it raises on both, its own rule) and renders it as the analysis
 * message; so the preamble follows the reasoning in `thinking` after the
 * commentary header, and content becomes "": the template then writes the
 * turn as OpenAI's harmony renderer does. 0, or -1 on out of memory. */
static int harmony_preamble(json_t *m) {
    const json_t *content = json_object_get(m, "content"),
                 *thinking = json_object_get(m, "thinking");
    if (json_array_size(json_object_get(m, "tool_calls")) == 0 || !json_is_string(content) ||
        !json_is_string(thinking) || json_string_length(content) == 0 ||
        json_string_length(thinking) == 0)
        return 0;
    const char *role = json_string_value(json_object_get(m, "role"));
    if (!role || strcmp(role, "assistant") != 0) return 0;
    sl_buf_t b = {0};
    int bad = sl_buf_append(&b, json_string_value(thinking), json_string_length(thinking)) ||
              sl_buf_puts(&b, HARMONY_PREAMBLE) ||
              sl_buf_append(&b, json_string_value(content), json_string_length(content));
    json_t *joined = bad ? NULL : json_stringn(b.data, b.len);
    sl_buf_free(&b);
    if (!joined || json_object_set_new(m, "thinking", joined) ||
        json_object_set_new(m, "content", json_string("")))
        return -1;
    return 0;
}

/* The tools as the template sees them (a copy; None when the request has
 * none; NULL on out of memory). A function without a description (optional
 * in OpenAI's API) gets "" when fill is set: the fallback variants, tried
 * when a template that concatenates it (gpt-oss's) fails on the undefined
 * value. *has_bare: some function lacks a description. */
static json_t *normalise_tools(const json_t *tools, bool fill, bool *has_bare) {
    if (!json_is_array(tools)) return json_null();
    json_t *out = json_deep_copy(tools);
    size_t i;
    json_t *t;
    json_array_foreach(out, i, t) {
        json_t *f = json_object_get(t, "function");
        if (!json_is_object(f) || json_object_get(f, "description")) continue;
        *has_bare = true;
        if (fill && json_object_set_new(f, "description", json_string(""))) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* Returns a normalised deep copy of the messages array (see the top).
 * *has_null: some content is null; *has_args: some arguments string was
 * parsed into a mapping (so the variants would differ). */
static json_t *normalise_messages(const json_t *msgs, int mode, bool harmony, bool *has_null,
                                  bool *has_args, char *err, size_t errlen) {
    json_t *out = json_deep_copy(msgs);
    if (!out) {
        sl_err(err, errlen, "out of memory");
        return NULL;
    }
    size_t i;
    json_t *m;
    json_array_foreach(out, i, m) {
        if (!json_is_object(m)) {
            sl_err(err, errlen, "messages[%zu] must be an object", i);
            goto fail;
        }
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role)) {
            sl_err(err, errlen, "messages[%zu].role must be a string", i);
            goto fail;
        }
        json_t *content = json_object_get(m, "content");
        if (json_is_array(content)) {
            sl_buf_t b = {0};
            size_t j;
            json_t *part;
            json_array_foreach(content, j, part) {
                const char *type = json_string_value(json_object_get(part, "type"));
                json_t *text = json_object_get(part, "text");
                if (!type || strcmp(type, "text") || !json_is_string(text)) {
                    sl_buf_free(&b);
                    sl_err(err, errlen, "messages[%zu].content[%zu]: only text parts are supported by this model%s%s", i, j,
                           type ? ", got " : "", type ? type : "");
                    goto fail;
                }
                if ((j && sl_buf_putc(&b, '\n')) || sl_buf_append(&b, json_string_value(text), json_string_length(text))) {
                    sl_buf_free(&b);
                    sl_err(err, errlen, "out of memory");
                    goto fail;
                }
            }
            json_t *s = json_stringn(b.data ? b.data : "", b.len);
            sl_buf_free(&b);
            if (!s || json_object_set_new(m, "content", s)) {
                sl_err(err, errlen, "invalid UTF-8 in messages[%zu].content", i);
                goto fail;
            }
        } else if (json_is_null(content)) {
            /* null (assistant turns with tool_calls): None, as transformers
             * passes it; "" in the fallback variants */
            *has_null = true;
            if (mode & NORM_NULL_EMPTY) json_object_set_new(m, "content", json_string(""));
        } else if (!json_is_string(content)) {
            sl_err(err, errlen, "messages[%zu].content must be a string, an array of parts or null", i);
            goto fail;
        }
        json_t *calls = json_object_get(m, "tool_calls");
        if (calls && !json_is_array(calls) && !json_is_null(calls)) {
            sl_err(err, errlen, "messages[%zu].tool_calls must be an array", i);
            goto fail;
        }
        size_t k;
        json_t *call;
        json_array_foreach(calls, k, call) {
            json_t *fn = json_object_get(call, "function");
            json_t *args = json_object_get(fn, "arguments");
            if (json_is_string(args)) {
                json_t *parsed = json_loadb(json_string_value(args), json_string_length(args),
                                            JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
                if (json_is_object(parsed)) {
                    *has_args = true;
                    if (mode & NORM_ARGS_STRING) json_decref(parsed);
                    else json_object_set_new(fn, "arguments", parsed);
                } else {
                    json_decref(parsed);
                }
            }
        }
        /* An assistant tool-call turn's reasoning_content is also passed
         * as `thinking`, the field gpt-oss's template reads (it keeps the
         * analysis before a call; llama.cpp passes it the same way). */
        json_t *rc = json_object_get(m, "reasoning_content");
        if (json_array_size(calls) > 0 && json_is_string(rc) && !json_object_get(m, "thinking") &&
            !strcmp(json_string_value(role), "assistant") &&
            json_object_set(m, "thinking", rc)) {
            sl_err(err, errlen, "out of memory");
            goto fail;
        }
        if (harmony && harmony_preamble(m) != 0) {
            sl_err(err, errlen, "out of memory");
            goto fail;
        }
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

int chat_render(const chat_tmpl_t *t, const json_t *request, const chat_render_opts_t *o, sl_buf_t *out, char *err,
                size_t errlen) {
    if (!t) return sl_err(err, errlen, "no template");
    if (!json_is_object(request)) return sl_err(err, errlen, "request must be a JSON object");
    const json_t *msgs = json_object_get(request, "messages");
    if (!json_is_array(msgs)) return sl_err(err, errlen, "'messages' must be an array");
    const json_t *tools = json_object_get(request, "tools");
    if (tools && !json_is_array(tools) && !json_is_null(tools)) return sl_err(err, errlen, "'tools' must be an array");
    if (o && o->kwargs && !json_is_object(o->kwargs)) return sl_err(err, errlen, "chat_template_kwargs must be an object");

    json_t *vars = json_object();
    if (!vars) return sl_err(err, errlen, "out of memory");
    json_object_set_new(vars, "documents", json_null());
    json_object_set_new(vars, "add_generation_prompt", json_boolean(o && o->add_generation_prompt));
    json_object_set_new(vars, "bos_token", json_string(o && o->bos_token ? o->bos_token : ""));
    json_object_set_new(vars, "eos_token", json_string(o && o->eos_token ? o->eos_token : ""));
    if (o && o->kwargs) json_object_update(vars, (json_t *)o->kwargs);
    /* the transformers form first; the fallback variants only when it fails
     * and they differ from it (see the top) */
    const size_t start = out->len;
    bool has_null = false, has_args = false, has_bare = false;
    char first_err[SL_ERR_MAX] = "";
    int rc = -1;
    /* the message variants, then the same with "" for missing tool
     * descriptions (NORM_TOOL_DESC) */
    enum { NORM_TOOL_DESC = 4 };
    static const int modes[8] = {0,
                                 NORM_ARGS_STRING,
                                 NORM_NULL_EMPTY,
                                 NORM_NULL_EMPTY | NORM_ARGS_STRING,
                                 NORM_TOOL_DESC,
                                 NORM_TOOL_DESC | NORM_ARGS_STRING,
                                 NORM_TOOL_DESC | NORM_NULL_EMPTY,
                                 NORM_TOOL_DESC | NORM_NULL_EMPTY | NORM_ARGS_STRING};
    for (int k = 0; k < 8; k++) {
        const int mode = modes[k];
        if (mode &&
            (((mode & NORM_NULL_EMPTY) && !has_null) || ((mode & NORM_ARGS_STRING) && !has_args) ||
             ((mode & NORM_TOOL_DESC) && !has_bare)))
            continue;
        json_t *norm =
            normalise_messages(msgs, mode, o && o->harmony, &has_null, &has_args, err, errlen);
        json_t *tv = norm ? normalise_tools(tools, mode & NORM_TOOL_DESC, &has_bare) : NULL;
        if (!norm || !tv) {
            if (norm) sl_err(err, errlen, "out of memory");
            json_decref(norm);
            json_decref(vars);
            return -1;
        }
        json_object_set_new(vars, "messages", norm);
        json_object_set_new(vars, "tools", tv);
        out->len = start;
        if (out->data) out->data[start] = '\0';
        rc = chat_render_vars(t, vars, o, out, err, errlen);
        if (rc == 0) break;
        if (mode == 0 && err && errlen) snprintf(first_err, sizeof first_err, "%s", err);
    }
    if (rc != 0) {
        out->len = start;
        if (out->data) out->data[start] = '\0';
        if (err && errlen) snprintf(err, errlen, "%s", first_err);
    }
    json_decref(vars);
    return rc;
}
