/*
 * anth.c — the Anthropic Messages API as a translation onto chat requests,
 * and its content blocks / SSE events / message object (see anth.h).
 *
 * Policy (Anthropic's own, unlike the chat route's): an unknown top-level
 * field is a 400 naming it. Fields the official SDK and coding agents send
 * that cannot change the answer here are accepted and ignored (service_tier,
 * container, inference_geo, speed, diagnostics, cache_control,
 * user_profile_id, workspace_id, metadata keys other than user_id,
 * cache_control / citations on blocks). What would change the answer and
 * cannot be honoured is refused naming it: image and document blocks,
 * server tools (web search, code execution, ...), mcp_servers,
 * context_management. Extensions the chat route takes (seed, min_p,
 * penalties, logit_bias, chat_template_kwargs) pass through unchanged and
 * are checked there.
 */
#include "server/anth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- request ---- */

static int bad_type(oai_error_t *e, const char *param, const char *want, const json_t *v) {
    return oai_fail(e, 400, NULL, "invalid_type", param, "%s: expected %s, but got %s.", param,
                    want, oai_json_kind(v));
}

static int missing(oai_error_t *e, const char *param) {
    return oai_fail(e, 400, NULL, "missing_required_parameter", param, "%s: Field required.",
                    param);
}

static int oom(oai_error_t *e) {
    return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
}

static bool given(const json_t *v) {
    return v && !json_is_null(v);
}

static bool in_list(const char *k, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, list[i])) return true;
    return false;
}

/* Anthropic's fields, the chat route's extensions, and what clients send
 * that changes nothing here (accepted and ignored). */
static const char *const FIELDS[] = {
    "model",          "messages",      "max_tokens",  "system",
    "stop_sequences", "temperature",   "top_p",       "top_k",
    "stream",         "tools",         "tool_choice", "thinking",
    "metadata",       "output_config", "mcp_servers", "context_management",
};
static const char *const IGNORED[] = {
    "service_tier", "container",     "inference_geo",   "speed",
    "diagnostics",  "cache_control", "user_profile_id", "workspace_id",
};
static const char *const EXTENSIONS[] = {
    "seed",
    "min_p",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "logit_bias",
    "chat_template_kwargs",
    "speculative",
};

/* Content blocks this server cannot read: a 400 naming the block. */
static int refuse_block(oai_error_t *e, const char *param, const char *type) {
    return oai_fail(
        e, 400, NULL, "unsupported_content", param,
        "%s: '%.40s' blocks are not supported: this server serves text-only models, which "
        "cannot read images, documents or files; send the content as 'text' blocks.",
        param, type);
}

/* The text of a string or an array of text blocks (system, tool_result
 * content), blocks joined with "\n" as the chat route joins text parts. */
static int text_of(const json_t *c, const char *where, sl_buf_t *out, oai_error_t *e) {
    char param[96];
    if (json_is_string(c))
        return sl_buf_append(out, json_string_value(c), json_string_length(c)) ? oom(e) : 0;
    if (!json_is_array(c)) return bad_type(e, where, "a string or an array of text blocks", c);
    for (size_t k = 0; k < json_array_size(c); k++) {
        const json_t *b = json_array_get(c, k);
        snprintf(param, sizeof param, "%s[%zu]", where, k);
        if (!json_is_object(b)) return bad_type(e, param, "an object", b);
        const json_t *t = json_object_get(b, "type");
        const char *ty = json_string_value(t);
        if (!ty) {
            snprintf(param, sizeof param, "%s[%zu].type", where, k);
            return given(t) ? bad_type(e, param, "a string", t) : missing(e, param);
        }
        if (strcmp(ty, "text") != 0) {
            if (!strcmp(ty, "image") || !strcmp(ty, "document") || !strcmp(ty, "search_result"))
                return refuse_block(e, param, ty);
            snprintf(param, sizeof param, "%s[%zu].type", where, k);
            return oai_fail(e, 400, NULL, "invalid_value", param,
                            "%s: '%.40s' is not a text block; only 'text' blocks are allowed here.",
                            param, ty);
        }
        const json_t *tx = json_object_get(b, "text");
        snprintf(param, sizeof param, "%s[%zu].text", where, k);
        if (!json_is_string(tx))
            return given(tx) ? bad_type(e, param, "a string", tx) : missing(e, param);
        if ((k > 0 && sl_buf_putc(out, '\n') != 0) ||
            sl_buf_append(out, json_string_value(tx), json_string_length(tx)) != 0)
            return oom(e);
    }
    return 0;
}

/* The function name of a tool_use id among the chat messages so far (tool
 * messages carry it: some templates print it). */
static const char *call_name(const json_t *msgs, const char *id) {
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *calls = json_object_get(json_array_get(msgs, i), "tool_calls");
        for (size_t k = 0; k < json_array_size(calls); k++) {
            const json_t *c = json_array_get(calls, k);
            const char *cid = json_string_value(json_object_get(c, "id"));
            if (cid && !strcmp(cid, id))
                return json_string_value(json_object_get(json_object_get(c, "function"), "name"));
        }
    }
    return NULL;
}

static int push(json_t *msgs, json_t *m, oai_error_t *e) {
    return m && json_array_append_new(msgs, m) == 0 ? 0 : oom(e);
}

/* An assistant message's blocks -> one chat assistant message: its text,
 * its tool_use blocks as tool_calls (input as compact JSON arguments), its
 * thinking as reasoning_content. */
static int assistant_blocks(const json_t *c, size_t i, json_t *msgs, oai_error_t *e) {
    char param[96];
    sl_buf_t text = {0}, think = {0};
    json_t *calls = json_array();
    int rc = calls ? 0 : oom(e);
    bool have_text = false, have_think = false;
    for (size_t k = 0; rc == 0 && k < json_array_size(c); k++) {
        const json_t *b = json_array_get(c, k);
        snprintf(param, sizeof param, "messages[%zu].content[%zu]", i, k);
        if (!json_is_object(b)) {
            rc = bad_type(e, param, "an object", b);
            break;
        }
        const json_t *t = json_object_get(b, "type");
        const char *ty = json_string_value(t);
        if (!ty) {
            snprintf(param, sizeof param, "messages[%zu].content[%zu].type", i, k);
            rc = given(t) ? bad_type(e, param, "a string", t) : missing(e, param);
        } else if (!strcmp(ty, "text") || !strcmp(ty, "thinking")) {
            const bool th = ty[1] == 'h';
            const char *key = th ? "thinking" : "text";
            const json_t *tx = json_object_get(b, key);
            snprintf(param, sizeof param, "messages[%zu].content[%zu].%s", i, k, key);
            sl_buf_t *dst = th ? &think : &text;
            bool *have = th ? &have_think : &have_text;
            if (!json_is_string(tx)) {
                rc = given(tx) ? bad_type(e, param, "a string", tx) : missing(e, param);
            } else if ((*have && sl_buf_putc(dst, '\n') != 0) ||
                       sl_buf_append(dst, json_string_value(tx), json_string_length(tx)) != 0) {
                rc = oom(e);
            }
            *have = true;
        } else if (!strcmp(ty, "redacted_thinking")) {
            /* encrypted by another provider: nothing a model here can read */
        } else if (!strcmp(ty, "tool_use")) {
            static const char *const req[] = {"id", "name"};
            for (size_t q = 0; rc == 0 && q < 2; q++) {
                const json_t *v = json_object_get(b, req[q]);
                snprintf(param, sizeof param, "messages[%zu].content[%zu].%s", i, k, req[q]);
                if (!json_is_string(v))
                    rc = given(v) ? bad_type(e, param, "a string", v) : missing(e, param);
            }
            const json_t *in = json_object_get(b, "input");
            snprintf(param, sizeof param, "messages[%zu].content[%zu].input", i, k);
            if (rc == 0 && !json_is_object(in))
                rc = given(in) ? bad_type(e, param, "an object", in) : missing(e, param);
            if (rc != 0) break;
            char *args = json_dumps(in, JSON_COMPACT);
            json_t *call = args
                               ? json_pack("{s:O, s:s, s:{s:O, s:s}}", "id",
                                           json_object_get(b, "id"), "type", "function", "function",
                                           "name", json_object_get(b, "name"), "arguments", args)
                               : NULL;
            free(args);
            if (!call || json_array_append_new(calls, call) != 0) rc = oom(e);
        } else if (!strcmp(ty, "image") || !strcmp(ty, "document") ||
                   !strcmp(ty, "search_result")) {
            rc = refuse_block(e, param, ty);
        } else {
            snprintf(param, sizeof param, "messages[%zu].content[%zu].type", i, k);
            rc =
                oai_fail(e, 400, NULL, "invalid_value", param,
                         "%s: '%.40s' blocks are not supported in an assistant message; supported: "
                         "'text', 'thinking', 'redacted_thinking' and 'tool_use'.",
                         param, ty);
        }
    }
    if (rc == 0) {
        const bool has_calls = json_array_size(calls) > 0;
        json_t *m =
            json_pack("{s:s, s:o}", "role", "assistant", "content",
                      have_text || !has_calls ? json_stringn(text.data ? text.data : "", text.len)
                                              : json_null());
        if (m && has_calls) json_object_set(m, "tool_calls", calls);
        if (m && have_think)
            json_object_set_new(m, "reasoning_content",
                                json_stringn(think.data ? think.data : "", think.len));
        rc = push(msgs, m, e);
    }
    json_decref(calls);
    sl_buf_free(&text);
    sl_buf_free(&think);
    return rc;
}

/* A user (or system) message's blocks -> chat messages in order: runs of
 * text blocks are one message of the role (joined with "\n"), each
 * tool_result a tool message (is_error: its content starts "Error: "). */
static int user_blocks(const json_t *c, size_t i, const char *role, json_t *msgs, oai_error_t *e) {
    char param[96];
    sl_buf_t text = {0}, res = {0};
    bool have_text = false;
    int rc = 0;
    for (size_t k = 0; rc == 0 && k <= json_array_size(c); k++) {
        const json_t *b = json_array_get(c, k); /* NULL past the end: flush */
        const char *ty = json_string_value(json_object_get(b, "type"));
        if (have_text && (!b || !ty || strcmp(ty, "text") != 0)) {
            rc = push(msgs,
                      json_pack("{s:s, s:s%}", "role", role, "content", text.data ? text.data : "",
                                text.len),
                      e);
            sl_buf_clear(&text);
            have_text = false;
            if (rc) break;
        }
        if (!b) break;
        snprintf(param, sizeof param, "messages[%zu].content[%zu]", i, k);
        if (!json_is_object(b)) {
            rc = bad_type(e, param, "an object", b);
            break;
        }
        if (!ty) {
            const json_t *t = json_object_get(b, "type");
            snprintf(param, sizeof param, "messages[%zu].content[%zu].type", i, k);
            rc = given(t) ? bad_type(e, param, "a string", t) : missing(e, param);
        } else if (!strcmp(ty, "text")) {
            const json_t *tx = json_object_get(b, "text");
            snprintf(param, sizeof param, "messages[%zu].content[%zu].text", i, k);
            if (!json_is_string(tx))
                rc = given(tx) ? bad_type(e, param, "a string", tx) : missing(e, param);
            else if ((have_text && sl_buf_putc(&text, '\n') != 0) ||
                     sl_buf_append(&text, json_string_value(tx), json_string_length(tx)) != 0)
                rc = oom(e);
            have_text = true;
        } else if (!strcmp(ty, "tool_result") && strcmp(role, "system") != 0) {
            const json_t *id = json_object_get(b, "tool_use_id"),
                         *err = json_object_get(b, "is_error");
            const json_t *body = json_object_get(b, "content");
            snprintf(param, sizeof param, "messages[%zu].content[%zu].tool_use_id", i, k);
            if (!json_is_string(id)) {
                rc = given(id) ? bad_type(e, param, "a string", id) : missing(e, param);
                break;
            }
            snprintf(param, sizeof param, "messages[%zu].content[%zu].is_error", i, k);
            if (given(err) && !json_is_boolean(err)) {
                rc = bad_type(e, param, "a boolean", err);
                break;
            }
            sl_buf_clear(&res);
            if (json_is_true(err) && sl_buf_puts(&res, "Error: ") != 0) rc = oom(e);
            snprintf(param, sizeof param, "messages[%zu].content[%zu].content", i, k);
            if (rc == 0 && given(body)) rc = text_of(body, param, &res, e);
            if (rc) break;
            json_t *m = json_pack("{s:s, s:O, s:s%}", "role", "tool", "tool_call_id", id, "content",
                                  res.data ? res.data : "", res.len);
            const char *name = call_name(msgs, json_string_value(id));
            if (m && name) json_object_set_new(m, "name", json_string(name));
            rc = push(msgs, m, e);
        } else if (!strcmp(ty, "image") || !strcmp(ty, "document") ||
                   !strcmp(ty, "search_result")) {
            rc = refuse_block(e, param, ty);
        } else {
            snprintf(param, sizeof param, "messages[%zu].content[%zu].type", i, k);
            rc = oai_fail(
                e, 400, NULL, "invalid_value", param,
                "%s: '%.40s' blocks are not supported in a %s message; supported: 'text'%s.", param,
                ty, role, strcmp(role, "system") ? " and 'tool_result'" : "");
        }
    }
    sl_buf_free(&text);
    sl_buf_free(&res);
    return rc;
}

static int translate_messages(const json_t *ms, const json_t *system, json_t *chat,
                              oai_error_t *e) {
    if (!given(ms)) return missing(e, "messages");
    if (!json_is_array(ms)) return bad_type(e, "messages", "an array", ms);
    if (json_array_size(ms) == 0)
        return oai_fail(e, 400, NULL, "invalid_value", "messages",
                        "messages: at least one message is required.");
    if (json_array_size(ms) > ANTH_MAX_MESSAGES)
        return oai_fail(e, 400, NULL, "invalid_value", "messages",
                        "messages: at most %d messages are allowed; got %zu.", ANTH_MAX_MESSAGES,
                        json_array_size(ms));
    json_t *msgs = json_array();
    if (!msgs) return oom(e);
    json_object_set_new(chat, "messages", msgs);
    if (given(system)) {
        sl_buf_t b = {0};
        int rc = text_of(system, "system", &b, e);
        if (rc == 0)
            rc = push(
                msgs,
                json_pack("{s:s, s:s%}", "role", "system", "content", b.data ? b.data : "", b.len),
                e);
        sl_buf_free(&b);
        if (rc) return rc;
    }
    char param[64];
    for (size_t i = 0; i < json_array_size(ms); i++) {
        const json_t *m = json_array_get(ms, i);
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m)) return bad_type(e, param, "an object", m);
        const json_t *rv = json_object_get(m, "role"), *c = json_object_get(m, "content");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(rv))
            return given(rv) ? bad_type(e, param, "a string", rv) : missing(e, param);
        const char *role = json_string_value(rv);
        if (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0 &&
            strcmp(role, "system") != 0)
            return oai_fail(e, 400, NULL, "invalid_value", param,
                            "%s: '%.40s' is not a role; use 'user' or 'assistant'.", param, role);
        snprintf(param, sizeof param, "messages[%zu].content", i);
        if (!given(c)) return missing(e, param);
        if (json_is_string(c)) {
            if (push(msgs, json_pack("{s:s, s:O}", "role", role, "content", c), e) != 0) return -1;
            continue;
        }
        if (!json_is_array(c))
            return bad_type(e, param, "a string or an array of content blocks", c);
        int rc = !strcmp(role, "assistant") ? assistant_blocks(c, i, msgs, e)
                                            : user_blocks(c, i, role, msgs, e);
        if (rc) return rc;
    }
    /* A last assistant message is the start of the answer (Anthropic's
     * prefill): the chat route's prefix continuation, whose output is the
     * continuation only. */
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    const json_t *lc = json_object_get(last, "content");
    const char *lrole = json_string_value(json_object_get(last, "role"));
    if (lrole && !strcmp(lrole, "assistant") && !json_object_get(last, "tool_calls") &&
        json_is_string(lc)) {
        if (json_string_length(lc) == 0)
            json_array_remove(msgs, json_array_size(msgs) - 1);
        else
            json_object_set_new(last, "prefix", json_true());
    }
    return 0;
}

/* tools: [{name, description, input_schema}] -> chat function tools;
 * server tools (a type other than "custom") are refused. */
static int translate_tools(const json_t *tools, json_t *chat, oai_error_t *e) {
    char param[48];
    if (!json_is_array(tools)) return bad_type(e, "tools", "an array", tools);
    json_t *ct = json_array();
    if (!ct) return oom(e);
    json_object_set_new(chat, "tools", ct);
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const json_t *t = json_array_get(tools, i);
        snprintf(param, sizeof param, "tools[%zu]", i);
        if (!json_is_object(t)) return bad_type(e, param, "an object", t);
        const json_t *ty = json_object_get(t, "type");
        snprintf(param, sizeof param, "tools[%zu].type", i);
        if (given(ty) && !json_is_string(ty)) return bad_type(e, param, "a string", ty);
        if (given(ty) && strcmp(json_string_value(ty), "custom") != 0)
            return oai_fail(
                e, 400, NULL, "unsupported_tool", param,
                "%s: tool type '%.60s' is not supported: this server runs no server "
                "tools (web search, code execution, ...); only client tools ({\"name\", "
                "\"description\", \"input_schema\"}) are.",
                param, json_string_value(ty));
        const json_t *name = json_object_get(t, "name"),
                     *schema = json_object_get(t, "input_schema");
        snprintf(param, sizeof param, "tools[%zu].name", i);
        if (!json_is_string(name))
            return given(name) ? bad_type(e, param, "a string", name) : missing(e, param);
        snprintf(param, sizeof param, "tools[%zu].input_schema", i);
        if (!json_is_object(schema))
            return given(schema) ? bad_type(e, param, "an object", schema) : missing(e, param);
        /* the keys in the order clients write them (templates print the
         * tools as JSON): name, description, parameters, strict */
        json_t *fn = json_pack("{s:O}", "name", name);
        const json_t *d = json_object_get(t, "description"), *st = json_object_get(t, "strict");
        if (fn && given(d)) json_object_set(fn, "description", (json_t *)d);
        if (fn) json_object_set(fn, "parameters", (json_t *)schema);
        if (fn && given(st)) json_object_set(fn, "strict", (json_t *)st);
        if (push(ct, json_pack("{s:s, s:o}", "type", "function", "function", fn), e) != 0)
            return -1;
    }
    return 0;
}

/* tool_choice {type: auto | any | tool | none, name, disable_parallel_tool_use}. */
static int translate_tool_choice(const json_t *tc, json_t *chat, oai_error_t *e) {
    if (!json_is_object(tc)) return bad_type(e, "tool_choice", "an object", tc);
    const json_t *ty = json_object_get(tc, "type"),
                 *dp = json_object_get(tc, "disable_parallel_tool_use");
    if (!json_is_string(ty))
        return given(ty) ? bad_type(e, "tool_choice.type", "a string", ty)
                         : missing(e, "tool_choice.type");
    const char *t = json_string_value(ty);
    if (!strcmp(t, "auto") || !strcmp(t, "none")) {
        json_object_set_new(chat, "tool_choice", json_string(t));
    } else if (!strcmp(t, "any")) {
        json_object_set_new(chat, "tool_choice", json_string("required"));
    } else if (!strcmp(t, "tool")) {
        const json_t *name = json_object_get(tc, "name");
        if (!json_is_string(name))
            return given(name) ? bad_type(e, "tool_choice.name", "a string", name)
                               : missing(e, "tool_choice.name");
        json_object_set_new(
            chat, "tool_choice",
            json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name", name));
    } else {
        return oai_fail(
            e, 400, NULL, "invalid_value", "tool_choice.type",
            "tool_choice.type: '%.40s' is not supported; use 'auto', 'any', 'tool' or 'none'.", t);
    }
    if (given(dp)) {
        if (!json_is_boolean(dp))
            return bad_type(e, "tool_choice.disable_parallel_tool_use", "a boolean", dp);
        json_object_set_new(chat, "parallel_tool_calls", json_boolean(!json_is_true(dp)));
    }
    return 0;
}

/* chat_template_kwargs.enable_thinking = on, unless the request set it. */
static void set_thinking(json_t *chat, bool on) {
    json_t *kw = json_object_get(chat, "chat_template_kwargs");
    if (!json_is_object(kw)) {
        kw = json_object();
        json_object_set_new(chat, "chat_template_kwargs", kw);
    }
    if (kw && !json_object_get(kw, "enable_thinking"))
        json_object_set_new(kw, "enable_thinking", json_boolean(on));
}

/* thinking {type: enabled, budget_tokens} | {type: disabled} | {type:
 * adaptive}: the template's thinking switch and the chat route's
 * thinking_budget. */
static int translate_thinking(const json_t *th, json_t *chat, oai_error_t *e) {
    if (!json_is_object(th)) return bad_type(e, "thinking", "an object", th);
    const json_t *ty = json_object_get(th, "type");
    if (!json_is_string(ty))
        return given(ty) ? bad_type(e, "thinking.type", "a string", ty)
                         : missing(e, "thinking.type");
    const char *t = json_string_value(ty);
    if (!strcmp(t, "disabled")) {
        set_thinking(chat, false);
        return 0;
    }
    if (!strcmp(t, "adaptive")) {
        set_thinking(chat, true);
        return 0;
    }
    if (strcmp(t, "enabled") != 0)
        return oai_fail(
            e, 400, NULL, "invalid_value", "thinking.type",
            "thinking.type: '%.40s' is not supported; use 'enabled', 'disabled' or 'adaptive'.", t);
    const json_t *b = json_object_get(th, "budget_tokens");
    if (!given(b)) return missing(e, "thinking.budget_tokens");
    if (!json_is_integer(b)) return bad_type(e, "thinking.budget_tokens", "an integer", b);
    if (json_integer_value(b) < 1)
        return oai_fail(e, 400, NULL, "invalid_value", "thinking.budget_tokens",
                        "thinking.budget_tokens: must be at least 1; got %lld.",
                        (long long)json_integer_value(b));
    json_object_set(chat, "thinking_budget", (json_t *)b);
    set_thinking(chat, true);
    return 0;
}

/* output_config {effort, format: {type: json_schema, schema}}: the format
 * is the chat route's json_schema response_format; effort changes nothing. */
static int translate_output_config(const json_t *oc, json_t *chat, oai_error_t *e) {
    if (!json_is_object(oc)) return bad_type(e, "output_config", "an object", oc);
    static const char *const efforts[] = {"low", "medium", "high", "xhigh", "max"};
    const json_t *ef = json_object_get(oc, "effort"), *f = json_object_get(oc, "format");
    if (given(ef) &&
        (!json_is_string(ef) || !in_list(json_string_value(ef), efforts, SL_ARRAY_LEN(efforts))))
        return oai_fail(e, 400, NULL, "invalid_value", "output_config.effort",
                        "output_config.effort: use 'low', 'medium', 'high', 'xhigh' or 'max'.");
    if (!given(f)) return 0;
    if (!json_is_object(f)) return bad_type(e, "output_config.format", "an object", f);
    const json_t *ty = json_object_get(f, "type"), *schema = json_object_get(f, "schema");
    if (!json_is_string(ty) || strcmp(json_string_value(ty), "json_schema") != 0)
        return oai_fail(e, 400, NULL, "invalid_value", "output_config.format.type",
                        "output_config.format.type: only 'json_schema' is supported.");
    if (!json_is_object(schema))
        return given(schema) ? bad_type(e, "output_config.format.schema", "an object", schema)
                             : missing(e, "output_config.format.schema");
    json_object_set_new(chat, "response_format",
                        json_pack("{s:s, s:{s:s, s:O}}", "type", "json_schema", "json_schema",
                                  "name", "output", "schema", schema));
    return 0;
}

/* Scalars: types here, Anthropic's ranges where they differ from the
 * chat route's (temperature 0..1), the rest checked by the chat request. */
static int translate_scalars(const json_t *b, bool count, json_t *chat, anth_req_t *r,
                             oai_error_t *e) {
    const json_t *v = json_object_get(b, "max_tokens");
    if (!count) {
        if (!given(v)) return missing(e, "max_tokens");
        if (!json_is_integer(v)) return bad_type(e, "max_tokens", "an integer", v);
        if (json_integer_value(v) < 1)
            return oai_fail(e, 400, NULL, "invalid_value", "max_tokens",
                            "max_tokens: must be at least 1; got %lld.",
                            (long long)json_integer_value(v));
        json_object_set(chat, "max_completion_tokens", (json_t *)v);
    }
    if (given(v = json_object_get(b, "temperature"))) {
        if (!json_is_number(v)) return bad_type(e, "temperature", "a number", v);
        if (!(json_number_value(v) >= 0 && json_number_value(v) <= 1))
            return oai_fail(e, 400, NULL, "invalid_value", "temperature",
                            "temperature: %g is outside Anthropic's range [0, 1].",
                            json_number_value(v));
        json_object_set(chat, "temperature", (json_t *)v);
    }
    if (given(v = json_object_get(b, "top_p"))) {
        if (!json_is_number(v)) return bad_type(e, "top_p", "a number", v);
        json_object_set(chat, "top_p", (json_t *)v);
    }
    if (given(v = json_object_get(b, "top_k"))) {
        if (!json_is_integer(v)) return bad_type(e, "top_k", "an integer", v);
        if (json_integer_value(v) < 0)
            return oai_fail(e, 400, NULL, "invalid_value", "top_k", "top_k: must be at least 0.");
        json_object_set(chat, "top_k", (json_t *)v);
    }
    if (given(v = json_object_get(b, "stream"))) {
        if (!json_is_boolean(v)) return bad_type(e, "stream", "a boolean", v);
        r->stream = !count && json_is_true(v);
        if (r->stream) json_object_set_new(chat, "stream", json_true());
    }
    if (given(v = json_object_get(b, "stop_sequences"))) {
        if (!json_is_array(v)) return bad_type(e, "stop_sequences", "an array of strings", v);
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!json_is_string(json_array_get(v, i)))
                return bad_type(e, "stop_sequences", "an array of strings", json_array_get(v, i));
        if (json_array_size(v) > 0) json_object_set(chat, "stop", (json_t *)v);
    }
    if (given(v = json_object_get(b, "metadata"))) {
        if (!json_is_object(v)) return bad_type(e, "metadata", "an object", v);
        const json_t *u = json_object_get(v, "user_id");
        if (given(u) && !json_is_string(u)) return bad_type(e, "metadata.user_id", "a string", u);
        if (given(u)) json_object_set(chat, "user", (json_t *)u);
    }
    if (given(v = json_object_get(b, "mcp_servers"))) {
        if (!json_is_array(v)) return bad_type(e, "mcp_servers", "an array", v);
        if (json_array_size(v) > 0)
            return oai_fail(
                e, 400, NULL, "unsupported_parameter", "mcp_servers",
                "mcp_servers: this server connects to no MCP servers; give their tools as "
                "client tools in 'tools' instead.");
    }
    if (given(json_object_get(b, "context_management")))
        return oai_fail(e, 400, NULL, "unsupported_parameter", "context_management",
                        "context_management: context editing is not supported; send the messages "
                        "the model should see.");
    return 0;
}

int anth_translate(const json_t *b, bool count, anth_req_t *r, oai_error_t *e) {
    memset(r, 0, sizeof *r);
    if (!json_is_object(b))
        return oai_fail(e, 400, NULL, "invalid_json", NULL,
                        "The request body must be a JSON object.");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)b, k, v) {
        if (!in_list(k, FIELDS, SL_ARRAY_LEN(FIELDS)) &&
            !in_list(k, IGNORED, SL_ARRAY_LEN(IGNORED)) &&
            !in_list(k, EXTENSIONS, SL_ARRAY_LEN(EXTENSIONS))) {
            char param[48];
            snprintf(param, sizeof param, "%.47s", k);
            return oai_fail(e, 400, NULL, "unknown_parameter", param,
                            "%.200s: Extra inputs are not permitted (unknown parameter).", k);
        }
    }
    const json_t *model = json_object_get(b, "model");
    if (!given(model)) return missing(e, "model");
    if (!json_is_string(model)) return bad_type(e, "model", "a string", model);
    r->chat = json_pack("{s:O}", "model", model);
    if (!r->chat) return oom(e);
    for (size_t i = 0; i < SL_ARRAY_LEN(EXTENSIONS); i++)
        if ((v = json_object_get(b, EXTENSIONS[i]))) json_object_set(r->chat, EXTENSIONS[i], v);
    if (translate_scalars(b, count, r->chat, r, e) != 0) return -1;
    if (translate_messages(json_object_get(b, "messages"), json_object_get(b, "system"), r->chat,
                           e) != 0)
        return -1;
    if (given(v = json_object_get(b, "tools")) && translate_tools(v, r->chat, e) != 0) return -1;
    if (given(v = json_object_get(b, "tool_choice")) && translate_tool_choice(v, r->chat, e) != 0)
        return -1;
    if (given(v = json_object_get(b, "thinking")) && translate_thinking(v, r->chat, e) != 0)
        return -1;
    if (given(v = json_object_get(b, "output_config")) &&
        translate_output_config(v, r->chat, e) != 0)
        return -1;
    return 0;
}

void anth_req_free(anth_req_t *r) {
    json_decref(r->chat);
    memset(r, 0, sizeof *r);
}

/* ---- errors ---- */

void anth_error_param(oai_error_t *e) {
    static const char *const map[][2] = {
        {"max_completion_tokens", "max_tokens"},
        {"stop", "stop_sequences"},
        {"response_format.json_schema.schema", "output_config.format.schema"},
        {"response_format", "output_config.format"},
        {"tool_choice.function", "tool_choice"},
        {"parallel_tool_calls", "tool_choice.disable_parallel_tool_use"},
        {"thinking_budget", "thinking.budget_tokens"},
        {"user", "metadata.user_id"},
    };
    char before[sizeof e->param];
    memcpy(before, e->param, sizeof before);
    char *f;
    if (!strncmp(e->param, "tools[", 6) && (f = strstr(e->param, "].function"))) {
        /* tools[i].function.name -> tools[i].name, .parameters -> .input_schema */
        const bool params = !strncmp(f + 10, ".parameters", 11);
        char tail[sizeof e->param];
        snprintf(tail, sizeof tail, "%s", params ? f + 21 : f + 10);
        snprintf(f + 1, sizeof e->param - (size_t)(f + 1 - e->param), "%s%s",
                 params ? ".input_schema" : "", tail);
    } else if (!oai_param_map(e, map, SL_ARRAY_LEN(map))) {
        return;
    }
    oai_param_renamed(e, before); /* the message names the parameter the same way */
}

int anth_error_status(const oai_error_t *e) {
    if (e->status == 403 && !strcmp(e->code, "insufficient_balance")) return 402;
    if (e->status == 503) return 529;
    return e->status;
}

const char *anth_error_type(const oai_error_t *e) {
    switch (anth_error_status(e)) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 402:
        return "billing_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 529:
        return "overloaded_error";
    default:
        return e->status >= 500 ? "api_error" : "invalid_request_error";
    }
}

char *anth_error_json(const oai_error_t *e, const char *request_id) {
    json_t *root =
        json_pack("{s:s, s:{s:s, s:o}, s:o}", "type", "error", "error", "type", anth_error_type(e),
                  "message", oai_string_lossy(e->message, strlen(e->message)), "request_id",
                  request_id ? json_string(request_id) : json_null());
    char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return s;
}

/* ---- output ---- */

/* Writes event `type` with the fields of ev (stolen), type first. */
static void emit(anth_out_t *o, const char *type, json_t *ev) {
    if (!o->stream || !ev) {
        json_decref(ev);
        return;
    }
    json_t *full = json_pack("{s:s}", "type", type);
    if (full) json_object_update(full, ev);
    json_decref(ev);
    char *s = full ? json_dumps(full, JSON_COMPACT) : NULL;
    json_decref(full);
    if (!s) return;
    sl_buf_printf(&o->ev, "event: %s\ndata: %s\n\n", type, s);
    free(s);
}

void anth_out_init(anth_out_t *o, bool stream, uint64_t seed) {
    memset(o, 0, sizeof *o);
    o->content = json_array();
    o->open = -1;
    o->stream = stream;
    o->rng = seed;
}

void anth_out_free(anth_out_t *o) {
    json_decref(o->content);
    sl_buf_free(&o->text);
    sl_buf_free(&o->ev);
    memset(o, 0, sizeof *o);
}

json_t *anth_usage(const srv_usage_t *u) {
    const int64_t cached =
        u->cached_tokens < u->prompt_tokens ? u->cached_tokens : u->prompt_tokens;
    return json_pack("{s:I, s:I, s:I, s:I}", "input_tokens",
                     (json_int_t)(u->prompt_tokens - cached), "cache_creation_input_tokens",
                     (json_int_t)0, "cache_read_input_tokens", (json_int_t)cached, "output_tokens",
                     (json_int_t)u->completion_tokens);
}

json_t *anth_message(const char *id, const char *model, const json_t *content,
                     const char *stop_reason, const char *stop_sequence, const srv_usage_t *u) {
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "id", id, "type", "message", "role",
        "assistant", "model", model, "content", content ? json_deep_copy(content) : json_array(),
        "stop_reason", stop_reason ? json_string(stop_reason) : json_null(), "stop_sequence",
        stop_sequence ? json_string(stop_sequence) : json_null(), "usage", anth_usage(u));
}

void anth_out_start(anth_out_t *o, const char *id, const char *model, const srv_usage_t *u) {
    emit(o, "message_start",
         json_pack("{s:o}", "message", anth_message(id, model, NULL, NULL, NULL, u)));
    emit(o, "ping", json_object());
}

/* The block as content_block_start shows it: empty text / thinking / input. */
static json_t *empty_block(int kind, const char *id, const char *name) {
    if (kind == ANTH_BLOCK_TEXT) return json_pack("{s:s, s:s}", "type", "text", "text", "");
    if (kind == ANTH_BLOCK_THINKING)
        return json_pack("{s:s, s:s, s:s}", "type", "thinking", "thinking", "", "signature", "");
    return json_pack("{s:s, s:s, s:s, s:{}}", "type", "tool_use", "id", id, "name", name, "input");
}

static void start_block(anth_out_t *o, int kind, json_t *block) {
    json_array_append_new(o->content, block);
    o->open = (int)json_array_size(o->content) - 1;
    o->open_kind = kind;
    sl_buf_clear(&o->text);
    emit(o, "content_block_start",
         json_pack("{s:i, s:O}", "index", o->open, "content_block", block));
}

static void close_block(anth_out_t *o) {
    if (o->open < 0) return;
    json_t *b = json_array_get(o->content, (size_t)o->open);
    const char *t = o->text.data ? o->text.data : "";
    if (o->open_kind == ANTH_BLOCK_TOOL_USE) {
        json_t *in = json_loadb(t, o->text.len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(in)) {
            json_decref(in);
            in = json_object();
        }
        json_object_set_new(b, "input", in);
    } else {
        json_object_set_new(b, o->open_kind == ANTH_BLOCK_TEXT ? "text" : "thinking",
                            oai_string_lossy(t, o->text.len));
    }
    emit(o, "content_block_stop", json_pack("{s:i}", "index", o->open));
    o->open = -1;
    sl_buf_clear(&o->text);
}

void anth_out_text(anth_out_t *o, bool reasoning, const char *s, size_t n) {
    if (!n) return;
    const int kind = reasoning ? ANTH_BLOCK_THINKING : ANTH_BLOCK_TEXT;
    if (o->open >= 0 && o->open_kind != kind) close_block(o);
    if (o->open < 0) start_block(o, kind, empty_block(kind, NULL, NULL));
    sl_buf_append(&o->text, s, n);
    emit(o, "content_block_delta",
         json_pack("{s:i, s:{s:s, s:o}}", "index", o->open, "delta", "type",
                   reasoning ? "thinking_delta" : "text_delta", reasoning ? "thinking" : "text",
                   oai_string_lossy(s, n)));
}

void anth_out_call_start(anth_out_t *o, const char *name) {
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    char id[32] = "toolu_";
    for (int i = 0; i < 24; i++) {
        o->rng = o->rng * 6364136223846793005ull + 1442695040888963407ull;
        id[6 + i] = digits[(o->rng >> 33) % 62];
    }
    id[30] = '\0';
    close_block(o);
    start_block(o, ANTH_BLOCK_TOOL_USE, empty_block(ANTH_BLOCK_TOOL_USE, id, name));
}

void anth_out_call_args(anth_out_t *o, const char *s, size_t n) {
    if (o->open < 0 || o->open_kind != ANTH_BLOCK_TOOL_USE || !n) return;
    sl_buf_append(&o->text, s, n);
    emit(o, "content_block_delta",
         json_pack("{s:i, s:{s:s, s:o}}", "index", o->open, "delta", "type", "input_json_delta",
                   "partial_json", oai_string_lossy(s, n)));
}

void anth_out_call_end(anth_out_t *o, bool ok) {
    (void)ok; /* a malformed call keeps what parsed: the stream already showed it */
    if (o->open >= 0 && o->open_kind == ANTH_BLOCK_TOOL_USE) close_block(o);
}

void anth_out_finish(anth_out_t *o, const char *stop_reason, const char *stop_sequence,
                     const srv_usage_t *u) {
    close_block(o);
    json_t *usage = anth_usage(u);
    emit(o, "message_delta",
         json_pack("{s:{s:s, s:o}, s:o}", "delta", "stop_reason", stop_reason, "stop_sequence",
                   stop_sequence ? json_string(stop_sequence) : json_null(), "usage", usage));
    emit(o, "message_stop", json_object());
}

void anth_out_error(anth_out_t *o, const char *type, const char *message) {
    emit(o, "error",
         json_pack("{s:{s:s, s:o}}", "error", "type", type, "message",
                   oai_string_lossy(message, strlen(message))));
}

const char *anth_stop_reason(const char *finish, const char *stop_string) {
    if (finish && !strcmp(finish, "length")) return "max_tokens";
    if (finish && !strcmp(finish, "tool_calls")) return "tool_use";
    if (stop_string) return "stop_sequence";
    return "end_turn";
}
