/*
 * resp.c — the Responses API as a translation onto chat requests, and its
 * output items / events / response object (see resp.h).
 *
 * Policy (OpenAI's, unlike the chat route's): an unknown top-level field is
 * a 400 `unknown_parameter` naming it. Known fields this server cannot
 * honour (background, conversation, prompt templates, hosted tools, image
 * and file inputs, logprobs) are a 400 naming them rather than silently
 * ignored. Extensions the chat route takes (seed, top_k, stop, ...) pass
 * through to the chat request unchanged and are checked there.
 */
#include "server/resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ids ---- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* prefix + 48 hex characters, as OpenAI's ids look. */
static json_t *new_id(uint64_t *rng, const char *prefix) {
    char id[RESP_ID_MAX];
    snprintf(id, sizeof id, "%s%016llx%016llx%016llx", prefix, (unsigned long long)splitmix(rng),
             (unsigned long long)splitmix(rng), (unsigned long long)splitmix(rng));
    return json_string(id);
}

/* ---- request ---- */

static int bad_type(oai_error_t *e, const char *param, const char *want, const json_t *v) {
    return oai_fail(e, 400, NULL, "invalid_type", param,
                    "Invalid type for '%s': expected %s, but got %s instead.", param, want,
                    oai_json_kind(v));
}

static int missing(oai_error_t *e, const char *param) {
    return oai_fail(e, 400, NULL, "missing_required_parameter", param,
                    "Missing required parameter: '%s'.", param);
}

static int unsupported(oai_error_t *e, const char *param, const char *what) {
    return oai_fail(e, 400, NULL, "unsupported_parameter", param, "Unsupported value for '%s': %s",
                    param, what);
}

static bool given(const json_t *v) {
    return v && !json_is_null(v);
}

/* Top-level fields: OpenAI's, then the chat route's extensions (passed
 * through to the chat request). */
static const char *const OPENAI_FIELDS[] = {
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "stream",
    "stream_options",
    "store",
    "previous_response_id",
    "metadata",
    "user",
    "reasoning",
    "include",
    "truncation",
    "background",
    "conversation",
    "prompt",
    "max_tool_calls",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "top_logprobs",
};
static const char *const EXTENSIONS[] = {
    "seed",
    "top_k",
    "min_p",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "stop",
    "logit_bias",
    "chat_template_kwargs",
    "thinking_budget",
    "speculative",
};

static bool in_list(const char *k, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, list[i])) return true;
    return false;
}

/* The text of a content part list (or string) of input item i; images,
 * files and audio are refused: this server serves text models. */
static int content_text(const json_t *c, const char *where, sl_buf_t *out, oai_error_t *e) {
    char param[64];
    if (json_is_string(c))
        return sl_buf_append(out, json_string_value(c), json_string_length(c)) ? -1 : 0;
    if (!json_is_array(c)) return bad_type(e, where, "a string or an array of content parts", c);
    for (size_t k = 0; k < json_array_size(c); k++) {
        const json_t *p = json_array_get(c, k);
        snprintf(param, sizeof param, "%s[%zu]", where, k);
        if (!json_is_object(p)) return bad_type(e, param, "an object", p);
        const json_t *t = json_object_get(p, "type");
        if (!json_is_string(t)) {
            snprintf(param, sizeof param, "%s[%zu].type", where, k);
            return given(t) ? bad_type(e, param, "a string", t) : missing(e, param);
        }
        const char *ty = json_string_value(t);
        const char *key = !strcmp(ty, "refusal") ? "refusal" : "text";
        if (!strcmp(ty, "input_text") || !strcmp(ty, "output_text") || !strcmp(ty, "text") ||
            !strcmp(ty, "refusal")) {
            const json_t *tx = json_object_get(p, key);
            snprintf(param, sizeof param, "%s[%zu].%s", where, k, key);
            if (!json_is_string(tx))
                return given(tx) ? bad_type(e, param, "a string", tx) : missing(e, param);
            if (sl_buf_append(out, json_string_value(tx), json_string_length(tx)) != 0)
                return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        } else if (!strcmp(ty, "input_image") || !strcmp(ty, "input_file") ||
                   !strcmp(ty, "input_audio")) {
            return oai_fail(
                e, 400, NULL, "unsupported_content", param,
                "Invalid content part '%s' (%s): this server serves text-only models, which "
                "cannot read images, files or audio; send the content as 'input_text'.",
                param, ty);
        } else {
            snprintf(param, sizeof param, "%s[%zu].type", where, k);
            return oai_fail(
                e, 400, NULL, "invalid_value", param,
                "Invalid value for '%s': '%.60s'. Supported content parts: 'input_text', "
                "'output_text' and 'refusal'.",
                param, ty);
        }
    }
    return 0;
}

static json_t *text_parts(const char *role, const char *s, size_t n) {
    const bool out = !strcmp(role, "assistant");
    json_t *part =
        json_pack("{s:s, s:s%}", "type", out ? "output_text" : "input_text", "text", s, n);
    if (part && out) json_object_set_new(part, "annotations", json_array());
    return json_pack("[o]", part);
}

static const char *const ROLES[] = {"user", "system", "developer", "assistant"};

/* Input item i -> its normalised form (appended to items): a message
 * {type, id, role, content:[parts], status}, function_call {type, id,
 * call_id, name, arguments, status}, function_call_output {type, id,
 * call_id, output}, or a reasoning item as given. */
static int norm_item(const json_t *it, size_t i, uint64_t *rng, json_t *items, oai_error_t *e) {
    char param[64], p2[80];
    snprintf(param, sizeof param, "input[%zu]", i);
    if (!json_is_object(it)) return bad_type(e, param, "an object", it);
    const json_t *t = json_object_get(it, "type");
    const char *type = json_is_string(t) ? json_string_value(t) : NULL;
    if (given(t) && !type) {
        snprintf(p2, sizeof p2, "%s.type", param);
        return bad_type(e, p2, "a string", t);
    }
    const json_t *idv = json_object_get(it, "id");
    if (given(idv) && !json_is_string(idv)) {
        snprintf(p2, sizeof p2, "%s.id", param);
        return bad_type(e, p2, "a string", idv);
    }
    if (!type || !strcmp(type, "message")) {
        const json_t *role = json_object_get(it, "role");
        snprintf(p2, sizeof p2, "%s.role", param);
        if (!given(role)) return missing(e, p2);
        if (!json_is_string(role)) return bad_type(e, p2, "a string", role);
        if (!in_list(json_string_value(role), ROLES, SL_ARRAY_LEN(ROLES)))
            return oai_fail(
                e, 400, NULL, "invalid_value", p2,
                "Invalid value for '%s': '%.40s'. Supported values are: 'user', 'system', "
                "'developer' and 'assistant'.",
                p2, json_string_value(role));
        const json_t *c = json_object_get(it, "content");
        snprintf(p2, sizeof p2, "%s.content", param);
        if (!given(c)) return missing(e, p2);
        sl_buf_t text = {0};
        if (content_text(c, p2, &text, e) != 0) {
            sl_buf_free(&text);
            return -1;
        }
        const char *r = json_string_value(role);
        json_t *n = json_pack("{s:s, s:o, s:s, s:o, s:s}", "type", "message", "id",
                              given(idv) ? json_copy((json_t *)idv) : new_id(rng, "msg_"), "role",
                              r, "content", text_parts(r, text.data ? text.data : "", text.len),
                              "status", "completed");
        sl_buf_free(&text);
        return n && json_array_append_new(items, n) == 0
                   ? 0
                   : oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (!strcmp(type, "function_call")) {
        static const char *const req[] = {"call_id", "name", "arguments"};
        for (size_t k = 0; k < SL_ARRAY_LEN(req); k++) {
            const json_t *v = json_object_get(it, req[k]);
            snprintf(p2, sizeof p2, "%s.%s", param, req[k]);
            if (!given(v)) return missing(e, p2);
            if (!json_is_string(v)) return bad_type(e, p2, "a string", v);
        }
        json_t *n = json_pack("{s:s, s:o, s:O, s:O, s:O, s:s}", "type", "function_call", "id",
                              given(idv) ? json_copy((json_t *)idv) : new_id(rng, "fc_"), "call_id",
                              json_object_get(it, "call_id"), "name", json_object_get(it, "name"),
                              "arguments", json_object_get(it, "arguments"), "status", "completed");
        return n && json_array_append_new(items, n) == 0
                   ? 0
                   : oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (!strcmp(type, "function_call_output")) {
        const json_t *cid = json_object_get(it, "call_id"), *out = json_object_get(it, "output");
        snprintf(p2, sizeof p2, "%s.call_id", param);
        if (!given(cid)) return missing(e, p2);
        if (!json_is_string(cid)) return bad_type(e, p2, "a string", cid);
        snprintf(p2, sizeof p2, "%s.output", param);
        if (!given(out)) return missing(e, p2);
        sl_buf_t text = {0};
        if (content_text(out, p2, &text, e) != 0) {
            sl_buf_free(&text);
            return -1;
        }
        json_t *n =
            json_pack("{s:s, s:o, s:O, s:s%, s:s}", "type", "function_call_output", "id",
                      given(idv) ? json_copy((json_t *)idv) : new_id(rng, "fco_"), "call_id", cid,
                      "output", text.data ? text.data : "", text.len, "status", "completed");
        sl_buf_free(&text);
        return n && json_array_append_new(items, n) == 0
                   ? 0
                   : oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (!strcmp(type, "reasoning")) {
        /* a reasoning item sent back: kept in the conversation; its text is
         * the next assistant message's reasoning_content */
        json_t *n = json_copy((json_t *)it);
        if (n && !given(idv)) json_object_set_new(n, "id", new_id(rng, "rs_"));
        return n && json_array_append_new(items, n) == 0
                   ? 0
                   : oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    snprintf(p2, sizeof p2, "%s.type", param);
    return oai_fail(
        e, 400, NULL, "invalid_value", p2,
        "Invalid value for '%s': '%.60s'. Supported input items: 'message', 'function_call', "
        "'function_call_output' and 'reasoning'.",
        p2, type);
}

/* The text of a normalised message item's parts. */
static void item_text(const json_t *it, sl_buf_t *b) {
    const json_t *c = json_object_get(it, "content");
    for (size_t k = 0; k < json_array_size(c); k++) {
        const json_t *p = json_array_get(c, k);
        const json_t *t = json_object_get(p, "text");
        if (!json_is_string(t)) t = json_object_get(p, "refusal");
        if (json_is_string(t)) sl_buf_append(b, json_string_value(t), json_string_length(t));
    }
}

/* The function name of call_id among the conversation's calls (for tool
 * messages: some templates print it). */
static const char *call_name(const json_t *items, const char *call_id) {
    for (size_t i = 0; call_id && i < json_array_size(items); i++) {
        const json_t *it = json_array_get(items, i);
        const char *type = json_string_value(json_object_get(it, "type"));
        const char *cid = json_string_value(json_object_get(it, "call_id"));
        if (type && cid && !strcmp(type, "function_call") && !strcmp(cid, call_id))
            return json_string_value(json_object_get(it, "name"));
    }
    return NULL;
}

/* A reasoning item's text goes with the assistant message after it, as
 * the chat route's reasoning_content (templates such as Qwen3's show it
 * for the turns after the last user message, i.e. inside a tool loop). */
static void take_reasoning(json_t *assistant, sl_buf_t *rs, bool *have) {
    if (*have && assistant && !json_object_get(assistant, "reasoning_content"))
        json_object_set_new(assistant, "reasoning_content",
                            json_stringn(rs->data ? rs->data : "", rs->len));
    sl_buf_clear(rs);
    *have = false;
}

/* Chat messages from instructions + the conversation: developer is
 * system; consecutive function calls join the assistant message before
 * them (text, then calls, as the model wrote them); call outputs are tool
 * messages; a reasoning item is the reasoning_content of the assistant
 * message that follows it (dropped when none does). The items are
 * normalised (norm_item, or a stored conversation of such); one that is
 * not (a damaged store) is skipped rather than trusted. */
static json_t *chat_messages(const char *instructions, const json_t *items) {
    json_t *msgs = json_array();
    if (!msgs) return NULL;
    if (instructions)
        json_array_append_new(msgs,
                              json_pack("{s:s, s:s}", "role", "system", "content", instructions));
    sl_buf_t b = {0}, rs = {0};
    bool have_rs = false;
    for (size_t i = 0; i < json_array_size(items); i++) {
        const json_t *it = json_array_get(items, i);
        const char *type = json_string_value(json_object_get(it, "type"));
        if (!type) continue;
        if (!strcmp(type, "reasoning")) {
            const json_t *c = json_object_get(it, "content");
            for (size_t k = 0; k < json_array_size(c); k++) {
                const json_t *t = json_object_get(json_array_get(c, k), "text");
                if (json_is_string(t))
                    sl_buf_append(&rs, json_string_value(t), json_string_length(t));
            }
            have_rs = true;
        } else if (!strcmp(type, "message")) {
            const char *role = json_string_value(json_object_get(it, "role"));
            if (!role) continue;
            if (!strcmp(role, "developer")) role = "system";
            sl_buf_clear(&b);
            item_text(it, &b);
            json_t *m =
                json_pack("{s:s, s:s%}", "role", role, "content", b.data ? b.data : "", b.len);
            take_reasoning(!strcmp(role, "assistant") ? m : NULL, &rs, &have_rs);
            json_array_append_new(msgs, m);
        } else if (!strcmp(type, "function_call")) {
            json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
            const char *lr = json_string_value(json_object_get(last, "role"));
            if (!last || !lr || strcmp(lr, "assistant") != 0) {
                last = json_pack("{s:s, s:n}", "role", "assistant", "content");
                json_array_append_new(msgs, last);
            }
            take_reasoning(last, &rs, &have_rs);
            json_t *calls = json_object_get(last, "tool_calls");
            if (!calls) {
                calls = json_array();
                json_object_set_new(last, "tool_calls", calls);
            }
            json_array_append_new(calls,
                                  json_pack("{s:O, s:s, s:{s:O, s:O}}", "id",
                                            json_object_get(it, "call_id"), "type", "function",
                                            "function", "name", json_object_get(it, "name"),
                                            "arguments", json_object_get(it, "arguments")));
        } else if (!strcmp(type, "function_call_output")) {
            take_reasoning(NULL, &rs, &have_rs);
            const char *cid = json_string_value(json_object_get(it, "call_id"));
            json_t *m = json_pack("{s:s, s:s, s:O}", "role", "tool", "tool_call_id", cid, "content",
                                  json_object_get(it, "output"));
            const char *name = call_name(items, cid);
            if (m && name) json_object_set_new(m, "name", json_string(name));
            json_array_append_new(msgs, m);
        }
    }
    sl_buf_free(&b);
    sl_buf_free(&rs);
    return msgs;
}

/* tools: the flat function tools -> chat tools (and the echo, with
 * OpenAI's defaults filled in). */
static int translate_tools(const json_t *tools, json_t *chat, json_t *echo, oai_error_t *e) {
    char param[48];
    if (!json_is_array(tools)) return bad_type(e, "tools", "an array", tools);
    json_t *ct = json_array(), *et = json_array();
    json_object_set_new(chat, "tools", ct);
    json_object_set_new(echo, "tools", et);
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const json_t *t = json_array_get(tools, i);
        snprintf(param, sizeof param, "tools[%zu]", i);
        if (!json_is_object(t)) return bad_type(e, param, "an object", t);
        const json_t *ty = json_object_get(t, "type");
        snprintf(param, sizeof param, "tools[%zu].type", i);
        if (!given(ty)) return missing(e, param);
        if (!json_is_string(ty)) return bad_type(e, param, "a string", ty);
        if (strcmp(json_string_value(ty), "function") != 0)
            return oai_fail(
                e, 400, NULL, "unsupported_tool", param,
                "Tool type '%.60s' is not supported: this server runs no hosted tools; only "
                "function tools ({\"type\": \"function\", \"name\", \"parameters\"}) are.",
                json_string_value(ty));
        const json_t *name = json_object_get(t, "name");
        snprintf(param, sizeof param, "tools[%zu].name", i);
        if (!given(name)) return missing(e, param);
        if (!json_is_string(name)) return bad_type(e, param, "a string", name);
        json_t *fn = json_object();
        json_object_set(fn, "name", (json_t *)name);
        static const char *const keys[] = {"description", "parameters", "strict"};
        for (size_t k = 0; k < SL_ARRAY_LEN(keys); k++) {
            const json_t *v = json_object_get(t, keys[k]);
            if (given(v)) json_object_set(fn, keys[k], (json_t *)v);
        }
        json_array_append_new(ct, json_pack("{s:s, s:o}", "type", "function", "function", fn));
        const json_t *d = json_object_get(t, "description"), *p = json_object_get(t, "parameters"),
                     *s = json_object_get(t, "strict");
        json_array_append_new(et, json_pack("{s:s, s:O, s:O, s:O, s:O}", "type", "function", "name",
                                            name, "description", given(d) ? d : json_null(),
                                            "parameters", given(p) ? p : json_null(), "strict",
                                            given(s) ? s : json_true()));
    }
    return 0;
}

static int translate_tool_choice(const json_t *tc, json_t *chat, json_t *echo, oai_error_t *e) {
    if (json_is_string(tc)) {
        const char *v = json_string_value(tc);
        if (strcmp(v, "auto") != 0 && strcmp(v, "none") != 0 && strcmp(v, "required") != 0)
            return oai_fail(
                e, 400, NULL, "invalid_value", "tool_choice",
                "Invalid value for 'tool_choice': '%.40s'. Supported values are 'auto', 'none', "
                "'required' or {\"type\": \"function\", \"name\": ...}.",
                v);
        json_object_set(chat, "tool_choice", (json_t *)tc);
        json_object_set(echo, "tool_choice", (json_t *)tc);
        return 0;
    }
    if (!json_is_object(tc)) return bad_type(e, "tool_choice", "a string or an object", tc);
    const json_t *ty = json_object_get(tc, "type");
    if (!json_is_string(ty))
        return given(ty) ? bad_type(e, "tool_choice.type", "a string", ty)
                         : missing(e, "tool_choice.type");
    if (strcmp(json_string_value(ty), "function") != 0)
        return oai_fail(e, 400, NULL, "unsupported_tool", "tool_choice.type",
                        "tool_choice type '%.60s' is not supported: only function tools are.",
                        json_string_value(ty));
    const json_t *name = json_object_get(tc, "name");
    if (!json_is_string(name))
        return given(name) ? bad_type(e, "tool_choice.name", "a string", name)
                           : missing(e, "tool_choice.name");
    json_object_set_new(chat, "tool_choice",
                        json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name", name));
    json_object_set_new(echo, "tool_choice",
                        json_pack("{s:s, s:O}", "type", "function", "name", name));
    return 0;
}

/* text: {format: {type: text | json_object | json_schema, name, schema,
 * strict, description}, verbosity} -> response_format. */
static int translate_text(const json_t *text, json_t *chat, json_t *echo, oai_error_t *e) {
    if (!json_is_object(text)) return bad_type(e, "text", "an object", text);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)text, k, v) {
        if (strcmp(k, "format") != 0 && strcmp(k, "verbosity") != 0) {
            char param[72];
            snprintf(param, sizeof param, "text.%.60s", k);
            return oai_fail(e, 400, NULL, "unknown_parameter", param, "Unknown parameter: '%s'.",
                            param);
        }
    }
    const json_t *verb = json_object_get(text, "verbosity");
    if (given(verb) && !json_is_string(verb))
        return bad_type(e, "text.verbosity", "a string", verb);
    json_t *et = json_pack("{s:{s:s}}", "format", "type", "text");
    json_object_set_new(echo, "text", et);
    if (given(verb)) json_object_set(et, "verbosity", (json_t *)verb);
    const json_t *f = json_object_get(text, "format");
    if (!given(f)) return 0;
    if (!json_is_object(f)) return bad_type(e, "text.format", "an object", f);
    const json_t *ty = json_object_get(f, "type");
    if (!json_is_string(ty))
        return given(ty) ? bad_type(e, "text.format.type", "a string", ty)
                         : missing(e, "text.format.type");
    const char *t = json_string_value(ty);
    if (!strcmp(t, "text")) return 0;
    json_object_set(et, "format", (json_t *)f);
    if (!strcmp(t, "json_object")) {
        json_object_set_new(chat, "response_format", json_pack("{s:s}", "type", "json_object"));
        return 0;
    }
    if (strcmp(t, "json_schema") != 0)
        return oai_fail(
            e, 400, NULL, "invalid_value", "text.format.type",
            "Invalid value for 'text.format.type': '%.40s'. Supported values are 'text', "
            "'json_object' and 'json_schema'.",
            t);
    const json_t *name = json_object_get(f, "name"), *schema = json_object_get(f, "schema");
    if (!given(name)) return missing(e, "text.format.name");
    if (!json_is_string(name)) return bad_type(e, "text.format.name", "a string", name);
    if (!given(schema)) return missing(e, "text.format.schema");
    if (!json_is_object(schema)) return bad_type(e, "text.format.schema", "an object", schema);
    json_t *js = json_pack("{s:O, s:O}", "name", name, "schema", schema);
    static const char *const opt[] = {"strict", "description"};
    for (size_t i = 0; i < SL_ARRAY_LEN(opt); i++) {
        const json_t *v2 = json_object_get(f, opt[i]);
        if (given(v2)) json_object_set(js, opt[i], (json_t *)v2);
    }
    json_object_set_new(chat, "response_format",
                        json_pack("{s:s, s:o}", "type", "json_schema", "json_schema", js));
    return 0;
}

/* Characters (code points) of UTF-8 text: the bytes that do not continue one. */
static size_t utf8_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0u) != 0x80u;
    return c;
}

static int check_metadata(const json_t *md, oai_error_t *e) {
    if (!json_is_object(md)) return bad_type(e, "metadata", "an object", md);
    if (json_object_size(md) > RESP_MAX_METADATA)
        return oai_fail(e, 400, NULL, "invalid_value", "metadata",
                        "Invalid 'metadata': at most %d key-value pairs are allowed; got %zu.",
                        RESP_MAX_METADATA, json_object_size(md));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)md, k, v) {
        if (utf8_chars(k, strlen(k)) > RESP_METADATA_KEY)
            return oai_fail(e, 400, NULL, "invalid_value", "metadata",
                            "Invalid 'metadata': keys are at most %d characters.",
                            RESP_METADATA_KEY);
        if (!json_is_string(v))
            return oai_fail(e, 400, NULL, "invalid_type", "metadata",
                            "Invalid 'metadata': values must be strings; '%.64s' is %s.", k,
                            oai_json_kind(v));
        if (utf8_chars(json_string_value(v), json_string_length(v)) > RESP_METADATA_VALUE)
            return oai_fail(
                e, 400, NULL, "invalid_value", "metadata",
                "Invalid 'metadata': values are at most %d characters ('%.64s' is longer).",
                RESP_METADATA_VALUE, k);
    }
    return 0;
}

/* reasoning: {effort, summary}; the effort goes to the chat request as
 * reasoning_effort (a template variable, e.g. gpt-oss's "Reasoning:"
 * line); effort "none" also turns a thinking model's reasoning off
 * (chat_template_kwargs.enable_thinking false). */
static int translate_reasoning(const json_t *rs, json_t *chat, json_t *echo, oai_error_t *e) {
    if (!json_is_object(rs)) return bad_type(e, "reasoning", "an object", rs);
    static const char *const efforts[] = {"none", "minimal", "low", "medium", "high", "xhigh"};
    static const char *const summaries[] = {"auto", "concise", "detailed"};
    const json_t *ef = json_object_get(rs, "effort"), *su = json_object_get(rs, "summary");
    if (!given(su)) su = json_object_get(rs, "generate_summary");
    if (given(ef) &&
        (!json_is_string(ef) || !in_list(json_string_value(ef), efforts, SL_ARRAY_LEN(efforts))))
        return oai_fail(
            e, 400, NULL, "invalid_value", "reasoning.effort",
            "Invalid value for 'reasoning.effort'. Supported values are 'none', 'minimal', 'low', "
            "'medium', 'high' and 'xhigh'.");
    if (given(su) && (!json_is_string(su) ||
                      !in_list(json_string_value(su), summaries, SL_ARRAY_LEN(summaries))))
        return oai_fail(
            e, 400, NULL, "invalid_value", "reasoning.summary",
            "Invalid value for 'reasoning.summary'. Supported values are 'auto', 'concise' and "
            "'detailed'.");
    json_object_set_new(echo, "reasoning",
                        json_pack("{s:O, s:O}", "effort", given(ef) ? ef : json_null(), "summary",
                                  given(su) ? su : json_null()));
    /* the effort reaches the chat template as reasoning_effort (gpt-oss) */
    if (given(ef) && !json_object_get(chat, "reasoning_effort"))
        json_object_set(chat, "reasoning_effort", (json_t *)ef);
    if (given(ef) && !strcmp(json_string_value(ef), "none")) {
        json_t *kw = json_object_get(chat, "chat_template_kwargs");
        if (!json_is_object(kw)) {
            kw = json_object();
            json_object_set_new(chat, "chat_template_kwargs", kw);
        }
        if (!json_object_get(kw, "enable_thinking"))
            json_object_set_new(kw, "enable_thinking", json_false());
    }
    return 0;
}

static int check_include(const json_t *inc, oai_error_t *e) {
    if (!json_is_array(inc)) return bad_type(e, "include", "an array", inc);
    for (size_t i = 0; i < json_array_size(inc); i++) {
        const json_t *v = json_array_get(inc, i);
        char param[32];
        snprintf(param, sizeof param, "include[%zu]", i);
        if (!json_is_string(v)) return bad_type(e, param, "a string", v);
        /* reasoning is never encrypted here: the items carry it as text */
        if (strcmp(json_string_value(v), "reasoning.encrypted_content") != 0)
            return unsupported(
                e, param,
                "only 'reasoning.encrypted_content' can be included (reasoning items carry "
                "their text); logprobs and hosted tools' results are not available.");
    }
    return 0;
}

/* Scalar fields: type checks here (ranges are the chat request's). */
static int check_scalars(const json_t *b, json_t *chat, json_t *echo, resp_req_t *r,
                         oai_error_t *e) {
    static const struct {
        const char *key;
        json_type type; /* JSON_REAL: any number; JSON_INTEGER: integer */
    } f[] = {
        {"instructions", JSON_STRING},
        {"max_output_tokens", JSON_INTEGER},
        {"temperature", JSON_REAL},
        {"top_p", JSON_REAL},
        {"parallel_tool_calls", JSON_TRUE},
        {"stream", JSON_TRUE},
        {"store", JSON_TRUE},
        {"user", JSON_STRING},
        {"truncation", JSON_STRING},
        {"background", JSON_TRUE},
        {"max_tool_calls", JSON_INTEGER},
        {"service_tier", JSON_STRING},
        {"safety_identifier", JSON_STRING},
        {"prompt_cache_key", JSON_STRING},
        {"prompt_cache_retention", JSON_STRING},
        {"top_logprobs", JSON_INTEGER},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(f); i++) {
        const json_t *v = json_object_get(b, f[i].key);
        if (!given(v)) continue;
        const bool ok = f[i].type == JSON_STRING    ? json_is_string(v)
                        : f[i].type == JSON_INTEGER ? json_is_integer(v)
                        : f[i].type == JSON_REAL    ? json_is_number(v)
                                                    : json_is_boolean(v);
        if (!ok)
            return bad_type(e, f[i].key,
                            f[i].type == JSON_STRING    ? "a string"
                            : f[i].type == JSON_INTEGER ? "an integer"
                            : f[i].type == JSON_REAL    ? "a number"
                                                        : "a boolean",
                            v);
    }
    const json_t *v;
    if (given(v = json_object_get(b, "max_output_tokens"))) {
        if (json_integer_value(v) < 1)
            return oai_fail(
                e, 400, NULL, "integer_below_min_value", "max_output_tokens",
                "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 1, "
                "but got %lld instead.",
                (long long)json_integer_value(v));
        json_object_set(chat, "max_completion_tokens", (json_t *)v);
    }
    if (given(v = json_object_get(b, "max_tool_calls")) && json_integer_value(v) < 1)
        return oai_fail(e, 400, NULL, "invalid_value", "max_tool_calls",
                        "Invalid 'max_tool_calls': must be >= 1.");
    if (given(v = json_object_get(b, "top_logprobs")) && json_integer_value(v) != 0)
        return unsupported(
            e, "top_logprobs",
            "logprobs are not available on /v1/responses; use /v1/chat/completions.");
    if (json_is_true(json_object_get(b, "background")))
        return unsupported(e, "background",
                           "background responses are not supported; send the request without it.");
    if (given(v = json_object_get(b, "truncation")) && strcmp(json_string_value(v), "auto") != 0 &&
        strcmp(json_string_value(v), "disabled") != 0)
        return oai_fail(
            e, 400, NULL, "invalid_value", "truncation",
            "Invalid value for 'truncation': supported values are 'auto' and 'disabled'.");
    static const char *const pass[] = {"temperature", "top_p", "parallel_tool_calls", "stream",
                                       "user"};
    for (size_t i = 0; i < SL_ARRAY_LEN(pass); i++)
        if (given(v = json_object_get(b, pass[i]))) json_object_set(chat, pass[i], (json_t *)v);
    static const char *const echoed[] = {"instructions",
                                         "max_output_tokens",
                                         "max_tool_calls",
                                         "temperature",
                                         "top_p",
                                         "parallel_tool_calls",
                                         "user",
                                         "truncation",
                                         "service_tier",
                                         "safety_identifier",
                                         "prompt_cache_key",
                                         "prompt_cache_retention"};
    for (size_t i = 0; i < SL_ARRAY_LEN(echoed); i++)
        if (given(v = json_object_get(b, echoed[i]))) json_object_set(echo, echoed[i], (json_t *)v);
    r->stream = json_is_true(json_object_get(b, "stream"));
    v = json_object_get(b, "store");
    r->store = !json_is_false(v);
    json_object_set_new(echo, "store", json_boolean(r->store));
    return 0;
}

static json_t *echo_defaults(void) {
    return json_pack(
        "{s:n, s:n, s:n, s:o, s:b, s:n, s:{s:n, s:n}, s:b, s:f, s:{s:{s:s}}, s:s, s:[], s:f, "
        "s:s, s:n, s:b, s:s, s:i}",
        "instructions", "max_output_tokens", "max_tool_calls", "metadata", json_object(),
        "parallel_tool_calls", 1, "previous_response_id", "reasoning", "effort", "summary", "store",
        1, "temperature", 1.0, "text", "format", "type", "text", "tool_choice", "auto", "tools",
        "top_p", 1.0, "truncation", "disabled", "user", "background", 0, "service_tier", "default",
        "top_logprobs", 0);
}

int resp_previous_id(const json_t *body, const char **id, oai_error_t *e) {
    *id = NULL;
    const json_t *v = json_object_get(body, "previous_response_id");
    if (!given(v)) return 0;
    if (!json_is_string(v)) return bad_type(e, "previous_response_id", "a string", v);
    *id = json_string_value(v);
    return 0;
}

int resp_translate(const json_t *b, const json_t *prev, uint64_t seed, resp_req_t *r,
                   oai_error_t *e) {
    memset(r, 0, sizeof *r);
    uint64_t rng = seed;
    if (!json_is_object(b))
        return oai_fail(e, 400, NULL, "invalid_json", NULL,
                        "The request body must be a JSON object.");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)b, k, v) {
        if (!in_list(k, OPENAI_FIELDS, SL_ARRAY_LEN(OPENAI_FIELDS)) &&
            !in_list(k, EXTENSIONS, SL_ARRAY_LEN(EXTENSIONS))) {
            char param[48];
            snprintf(param, sizeof param, "%.47s", k);
            return oai_fail(e, 400, NULL, "unknown_parameter", param,
                            "Unknown parameter: '%.200s'.", k);
        }
    }
    const json_t *model = json_object_get(b, "model");
    if (!given(model)) return missing(e, "model");
    if (!json_is_string(model)) return bad_type(e, "model", "a string", model);
    if (given(json_object_get(b, "conversation")))
        return unsupported(e, "conversation",
                           "conversations are not supported; chain responses with "
                           "'previous_response_id' instead.");
    if (given(json_object_get(b, "prompt")))
        return unsupported(e, "prompt",
                           "prompt templates are not supported; send 'instructions' and 'input'.");
    const char *prev_id = NULL;
    if (resp_previous_id(b, &prev_id, e) != 0) return -1;

    r->chat = json_pack("{s:O}", "model", model);
    r->echo = echo_defaults();
    r->input = json_array();
    r->context = prev ? json_deep_copy(prev) : json_array();
    if (!r->chat || !r->echo || !r->input || !r->context)
        return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < SL_ARRAY_LEN(EXTENSIONS); i++)
        if ((v = json_object_get(b, EXTENSIONS[i]))) json_object_set(r->chat, EXTENSIONS[i], v);
    if (check_scalars(b, r->chat, r->echo, r, e) != 0) return -1;
    if (prev_id) json_object_set_new(r->echo, "previous_response_id", json_string(prev_id));

    const json_t *in = json_object_get(b, "input");
    if (json_is_string(in)) {
        json_array_append_new(
            r->input, json_pack("{s:s, s:o, s:s, s:o, s:s}", "type", "message", "id",
                                new_id(&rng, "msg_"), "role", "user", "content",
                                text_parts("user", json_string_value(in), json_string_length(in)),
                                "status", "completed"));
    } else if (json_is_array(in)) {
        if (json_array_size(in) > RESP_MAX_ITEMS)
            return oai_fail(e, 400, NULL, "invalid_value", "input",
                            "Invalid 'input': at most %d items; got %zu.", RESP_MAX_ITEMS,
                            json_array_size(in));
        for (size_t i = 0; i < json_array_size(in); i++)
            if (norm_item(json_array_get(in, i), i, &rng, r->input, e) != 0) return -1;
    } else if (given(in)) {
        return bad_type(e, "input", "a string or an array of input items", in);
    }
    if (json_array_size(r->input) == 0 && !prev)
        return given(in) ? oai_fail(e, 400, NULL, "invalid_value", "input",
                                    "Invalid 'input': empty array. Expected "
                                    "at least one input item.")
                         : missing(e, "input");
    if (json_array_size(r->context) + json_array_size(r->input) > RESP_MAX_ITEMS)
        return oai_fail(e, 400, NULL, "invalid_value", "previous_response_id",
                        "The conversation would hold more than %d items; start a new one.",
                        RESP_MAX_ITEMS);
    json_array_extend(r->context, r->input);

    if ((v = json_object_get(b, "tools")) && given(v) &&
        translate_tools(v, r->chat, r->echo, e) != 0)
        return -1;
    if ((v = json_object_get(b, "tool_choice")) && given(v) &&
        translate_tool_choice(v, r->chat, r->echo, e) != 0)
        return -1;
    if ((v = json_object_get(b, "text")) && given(v) && translate_text(v, r->chat, r->echo, e) != 0)
        return -1;
    if ((v = json_object_get(b, "metadata")) && given(v)) {
        if (check_metadata(v, e) != 0) return -1;
        json_object_set(r->echo, "metadata", v);
    }
    if ((v = json_object_get(b, "reasoning")) && given(v) &&
        translate_reasoning(v, r->chat, r->echo, e) != 0)
        return -1;
    if ((v = json_object_get(b, "include")) && given(v) && check_include(v, e) != 0) return -1;
    const json_t *so = json_object_get(b, "stream_options");
    if (given(so)) {
        if (!json_is_object(so)) return bad_type(e, "stream_options", "an object", so);
        if (!r->stream)
            return oai_fail(
                e, 400, NULL, "invalid_value", "stream_options",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
    }
    const json_t *ins = json_object_get(b, "instructions");
    json_t *msgs = chat_messages(json_is_string(ins) ? json_string_value(ins) : NULL, r->context);
    if (!msgs) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    json_object_set_new(r->chat, "messages", msgs);
    return 0;
}

void resp_req_free(resp_req_t *r) {
    json_decref(r->chat);
    json_decref(r->input);
    json_decref(r->context);
    json_decref(r->echo);
    memset(r, 0, sizeof *r);
}

void resp_error_param(oai_error_t *e) {
    static const char *const map[][2] = {
        {"messages", "input"},
        {"max_completion_tokens", "max_output_tokens"},
        {"max_tokens", "max_output_tokens"},
        {"response_format.json_schema", "text.format"},
        {"response_format", "text.format"},
        {"tool_choice.function", "tool_choice"},
    };
    char before[sizeof e->param];
    memcpy(before, e->param, sizeof before);
    char *f;
    if (!strncmp(e->param, "tools[", 6) && (f = strstr(e->param, "].function"))) {
        memmove(f + 1, f + 10, strlen(f + 10) + 1); /* tools[i].function.name -> tools[i].name */
    } else if (!oai_param_map(e, map, SL_ARRAY_LEN(map))) {
        return;
    }
    oai_param_renamed(e, before); /* the message names the parameter the same way */
}

/* ---- output ---- */

/* Writes event `type` with fields ev (stolen): type first, then the
 * fields, then sequence_number. */
static void emit(resp_out_t *o, const char *type, json_t *ev) {
    if (!o->stream || !ev) {
        json_decref(ev);
        return;
    }
    json_t *full = json_pack("{s:s}", "type", type);
    json_object_update(full, ev);
    json_object_set_new(full, "sequence_number", json_integer(o->seq++));
    json_decref(ev);
    char *s = json_dumps(full, JSON_COMPACT);
    json_decref(full);
    if (!s) return;
    sl_buf_printf(&o->ev, "event: %s\ndata: %s\n\n", type, s);
    free(s);
}

void resp_out_init(resp_out_t *o, bool stream, uint64_t seed) {
    memset(o, 0, sizeof *o);
    o->items = json_array();
    o->open = -1;
    o->stream = stream;
    o->rng = seed;
}

void resp_out_free(resp_out_t *o) {
    json_decref(o->items);
    sl_buf_free(&o->text);
    sl_buf_free(&o->ev);
    memset(o, 0, sizeof *o);
}

static json_t *open_item(const resp_out_t *o) {
    return json_array_get(o->items, (size_t)o->open);
}

static json_t *item_id(const resp_out_t *o) {
    return json_object_get(open_item(o), "id");
}

static json_t *text_part(const resp_out_t *o, int kind) {
    const char *t = o->text.data ? o->text.data : "";
    if (kind == RESP_ITEM_REASONING)
        return json_pack("{s:s, s:s%}", "type", "reasoning_text", "text", t, o->text.len);
    return json_pack("{s:s, s:[], s:[], s:s%}", "type", "output_text", "annotations", "logprobs",
                     "text", t, o->text.len);
}

static void start_item(resp_out_t *o, int kind, json_t *item) {
    json_array_append_new(o->items, item);
    o->open = (int)json_array_size(o->items) - 1;
    o->open_kind = kind;
    sl_buf_clear(&o->text);
    emit(o, "response.output_item.added",
         json_pack("{s:i, s:O}", "output_index", o->open, "item", item));
    if (kind != RESP_ITEM_CALL) {
        o->text.len = 0;
        emit(o, "response.content_part.added",
             json_pack("{s:O, s:i, s:i, s:o}", "item_id", item_id(o), "output_index", o->open,
                       "content_index", 0, "part", text_part(o, kind)));
    }
}

static void close_item(resp_out_t *o, const char *status) {
    if (o->open < 0) return;
    json_t *it = open_item(o);
    const char *t = o->text.data ? o->text.data : "";
    if (o->open_kind == RESP_ITEM_CALL) {
        json_object_set_new(it, "arguments", json_stringn(t, o->text.len));
        json_object_set_new(it, "status", json_string(status));
        emit(o, "response.function_call_arguments.done",
             json_pack("{s:O, s:i, s:O, s:s%}", "item_id", item_id(o), "output_index", o->open,
                       "name", json_object_get(it, "name"), "arguments", t, o->text.len));
    } else {
        const bool rs = o->open_kind == RESP_ITEM_REASONING;
        emit(o, rs ? "response.reasoning_text.done" : "response.output_text.done",
             rs ? json_pack("{s:O, s:i, s:i, s:s%}", "item_id", item_id(o), "output_index", o->open,
                            "content_index", 0, "text", t, o->text.len)
                : json_pack("{s:O, s:i, s:i, s:s%, s:[]}", "item_id", item_id(o), "output_index",
                            o->open, "content_index", 0, "text", t, o->text.len, "logprobs"));
        json_t *part = text_part(o, o->open_kind);
        emit(o, "response.content_part.done",
             json_pack("{s:O, s:i, s:i, s:O}", "item_id", item_id(o), "output_index", o->open,
                       "content_index", 0, "part", part));
        json_object_set_new(it, "content", json_pack("[o]", part));
        if (!rs) json_object_set_new(it, "status", json_string(status));
    }
    emit(o, "response.output_item.done",
         json_pack("{s:i, s:O}", "output_index", o->open, "item", it));
    o->open = -1;
    sl_buf_clear(&o->text);
}

void resp_out_text(resp_out_t *o, bool reasoning, const char *s, size_t n) {
    if (!n) return;
    const int kind = reasoning ? RESP_ITEM_REASONING : RESP_ITEM_MESSAGE;
    if (o->open >= 0 && o->open_kind != kind) close_item(o, "completed");
    if (o->open < 0) {
        json_t *it = reasoning ? json_pack("{s:o, s:s, s:[], s:[]}", "id", new_id(&o->rng, "rs_"),
                                           "type", "reasoning", "summary", "content")
                               : json_pack("{s:o, s:s, s:s, s:[], s:s}", "id",
                                           new_id(&o->rng, "msg_"), "type", "message", "status",
                                           "in_progress", "content", "role", "assistant");
        start_item(o, kind, it);
    }
    sl_buf_append(&o->text, s, n);
    emit(o, reasoning ? "response.reasoning_text.delta" : "response.output_text.delta",
         reasoning ? json_pack("{s:O, s:i, s:i, s:s%}", "item_id", item_id(o), "output_index",
                               o->open, "content_index", 0, "delta", s, n)
                   : json_pack("{s:O, s:i, s:i, s:s%, s:[]}", "item_id", item_id(o), "output_index",
                               o->open, "content_index", 0, "delta", s, n, "logprobs"));
}

void resp_out_call_start(resp_out_t *o, const char *call_id, const char *name) {
    close_item(o, "completed");
    start_item(o, RESP_ITEM_CALL,
               json_pack("{s:o, s:s, s:s, s:s, s:s, s:s}", "id", new_id(&o->rng, "fc_"), "type",
                         "function_call", "status", "in_progress", "arguments", "", "call_id",
                         call_id, "name", name));
}

void resp_out_call_args(resp_out_t *o, const char *s, size_t n) {
    if (o->open < 0 || o->open_kind != RESP_ITEM_CALL || !n) return;
    sl_buf_append(&o->text, s, n);
    emit(o, "response.function_call_arguments.delta",
         json_pack("{s:O, s:i, s:s%}", "item_id", item_id(o), "output_index", o->open, "delta", s,
                   n));
}

void resp_out_call_end(resp_out_t *o, bool ok) {
    if (o->open >= 0 && o->open_kind == RESP_ITEM_CALL)
        close_item(o, ok ? "completed" : "incomplete");
}

void resp_out_finish(resp_out_t *o, bool incomplete) {
    close_item(o, incomplete ? "incomplete" : "completed");
    bool answer = false;
    for (size_t i = 0; i < json_array_size(o->items); i++) {
        const char *t = json_string_value(json_object_get(json_array_get(o->items, i), "type"));
        answer |= t && (!strcmp(t, "message") || !strcmp(t, "function_call"));
    }
    if (answer) return;
    start_item(o, RESP_ITEM_MESSAGE,
               json_pack("{s:o, s:s, s:s, s:[], s:s}", "id", new_id(&o->rng, "msg_"), "type",
                         "message", "status", "in_progress", "content", "role", "assistant"));
    close_item(o, incomplete ? "incomplete" : "completed");
}

void resp_out_lifecycle(resp_out_t *o, const char *type, json_t *response) {
    emit(o, type, json_pack("{s:o}", "response", response));
}

json_t *resp_object(const char *id, int64_t created_at, const char *model, const char *status,
                    const json_t *echo, const json_t *output, const srv_usage_t *u,
                    const char *incomplete_reason, const char *error_msg) {
    json_t *r =
        json_pack("{s:s, s:s, s:I, s:s, s:n, s:n}", "id", id, "object", "response", "created_at",
                  (json_int_t)created_at, "status", status, "error", "incomplete_details");
    if (!r) return NULL;
    if (incomplete_reason)
        json_object_set_new(r, "incomplete_details",
                            json_pack("{s:s}", "reason", incomplete_reason));
    if (error_msg)
        json_object_set_new(r, "error",
                            json_pack("{s:s, s:s}", "code", "server_error", "message", error_msg));
    json_object_set_new(r, "model", json_string(model));
    json_object_set_new(r, "output", output ? json_deep_copy(output) : json_array());
    json_object_update(r, (json_t *)echo);
    if (u)
        json_object_set_new(r, "usage",
                            json_pack("{s:I, s:{s:I}, s:I, s:{s:I}, s:I}", "input_tokens",
                                      (json_int_t)u->prompt_tokens, "input_tokens_details",
                                      "cached_tokens", (json_int_t)u->cached_tokens,
                                      "output_tokens", (json_int_t)u->completion_tokens,
                                      "output_tokens_details", "reasoning_tokens",
                                      (json_int_t)u->reasoning_tokens, "total_tokens",
                                      (json_int_t)(u->prompt_tokens + u->completion_tokens)));
    else
        json_object_set_new(r, "usage", json_null());
    return r;
}

json_t *resp_list_items(const json_t *items, const char *order, const char *after,
                        const char *limit, oai_error_t *e) {
    bool asc = false;
    if (order && *order) {
        if (strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
            oai_fail(e, 400, NULL, "invalid_value", "order",
                     "Invalid 'order': supported values are 'asc' and 'desc'.");
            return NULL;
        }
        asc = order[0] == 'a';
    }
    long lim = 20;
    if (limit && *limit) {
        char *end;
        lim = strtol(limit, &end, 10);
        if (*end || lim < 1 || lim > 100) {
            oai_fail(e, 400, NULL, "invalid_value", "limit",
                     "Invalid 'limit': an integer from 1 to 100.");
            return NULL;
        }
    }
    const size_t n = json_array_size(items);
    size_t start = 0; /* position in the chosen order */
    if (after && *after) {
        size_t k = 0;
        for (; k < n; k++) {
            const json_t *it = json_array_get(items, asc ? k : n - 1 - k);
            const char *id = json_string_value(json_object_get(it, "id"));
            if (id && !strcmp(id, after)) break;
        }
        if (k == n) {
            oai_fail(e, 400, NULL, "invalid_value", "after",
                     "Invalid 'after': no input item '%.80s' in this response.", after);
            return NULL;
        }
        start = k + 1;
    }
    json_t *data = json_array();
    size_t k = start;
    for (; k < n && json_array_size(data) < (size_t)lim; k++)
        json_array_append(data, json_array_get(items, asc ? k : n - 1 - k));
    const size_t m = json_array_size(data);
    json_t *first = m ? json_object_get(json_array_get(data, 0), "id") : NULL;
    json_t *last = m ? json_object_get(json_array_get(data, m - 1), "id") : NULL;
    return json_pack("{s:s, s:o, s:O, s:O, s:b}", "object", "list", "data", data, "first_id",
                     first ? first : json_null(), "last_id", last ? last : json_null(), "has_more",
                     k < n);
}
