/*
 * oai.c — OpenAI request validation (see oai.h). Messages match OpenAI's
 * wording where it helps users search ("Invalid type for 'temperature'...").
 */
#include "server/oai.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

int oai_fail(oai_error_t *e, int status, const char *type, const char *code, const char *param,
             const char *fmt, ...) {
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type ? type : "invalid_request_error");
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

bool oai_param_map(oai_error_t *e, const char *const (*map)[2], size_t n) {
    for (size_t i = 0; i < n; i++) {
        const size_t fl = strlen(map[i][0]);
        const char *rest = e->param + fl;
        if (strncmp(e->param, map[i][0], fl) != 0 || (*rest && *rest != '.' && *rest != '['))
            continue;
        char tmp[sizeof e->param];
        if (snprintf(tmp, sizeof tmp, "%s%s", map[i][1], rest) >= (int)sizeof tmp) return false;
        memcpy(e->param, tmp, sizeof tmp);
        return true;
    }
    return false;
}

void oai_param_renamed(oai_error_t *e, const char *before) {
    if (!strcmp(before, e->param)) return;
    char *at = strstr(e->message, before);
    if (!at) return;
    char tail[sizeof e->message];
    const size_t off = (size_t)(at - e->message), bl = strlen(before), pl = strlen(e->param);
    snprintf(tail, sizeof tail, "%s", at + bl);
    if (off + pl + strlen(tail) + 1 > sizeof e->message) return;
    memcpy(at, e->param, pl);
    memcpy(at + pl, tail, strlen(tail) + 1);
}

char *oai_error_json(const oai_error_t *e) {
    json_t *err = json_object();
    json_object_set_new(err, "message", oai_string_lossy(e->message, strlen(e->message)));
    json_object_set_new(err, "type", json_string(e->type));
    json_object_set_new(err, "param", e->param[0] ? json_string(e->param) : json_null());
    json_object_set_new(err, "code", e->code[0] ? json_string(e->code) : json_null());
    json_t *root = json_object();
    json_object_set_new(root, "error", err);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

json_t *oai_string_lossy(const char *s, size_t len) {
    json_t *j = json_stringn(s, len);
    if (j) return j;
    /* replace each invalid sequence by U+FFFD (EF BF BD) */
    sl_buf_t b = {0};
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = n > 0 && i + n <= len;
        for (size_t k = 1; ok && k < n; k++) ok = ((unsigned char)s[i + k] >> 6) == 2;
        if (ok && n > 1) {
            /* reject overlongs, surrogates and > U+10FFFF the way jansson does */
            uint32_t cp = n == 2 ? (c & 0x1fu) : n == 3 ? (c & 0x0fu) : (c & 0x07u);
            for (size_t k = 1; k < n; k++) cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3fu);
            ok = !(n == 2 && cp < 0x80) && !(n == 3 && cp < 0x800) && !(n == 4 && cp < 0x10000) &&
                 !(cp >= 0xD800 && cp <= 0xDFFF) && cp <= 0x10FFFF;
        }
        if (ok) {
            sl_buf_append(&b, s + i, n);
            i += n;
        } else {
            sl_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    j = json_stringn(b.data ? b.data : "", b.len);
    sl_buf_free(&b);
    return j;
}

/* Length of the valid UTF-8 sequence at s[i] (1..4), or 0 when invalid
 * (bad lead or continuation byte, truncated, overlong, surrogate, > U+10FFFF). */
static size_t utf8_valid_len(const unsigned char *s, size_t i, size_t len) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n <= 1) return n;
    if (i + n > len) return 0;
    uint32_t cp = n == 2 ? (c & 0x1fu) : n == 3 ? (c & 0x0fu) : (c & 0x07u);
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] >> 6) != 2) return 0;
        cp = (cp << 6) | (s[i + k] & 0x3fu);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return n;
}

int oai_json_str(sl_buf_t *b, const char *str, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str;
    if (sl_buf_reserve(b, len + 2) != 0) return -1;
    int rc = sl_buf_putc(b, '"');
    size_t i = 0, run = 0; /* s[run..i) is pending verbatim text */
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        size_t n = c < 0x80 ? 1 : utf8_valid_len(s, i, len);
        if (n > 1) {
            i += n;
            continue;
        }
        if (i > run) rc |= sl_buf_append(b, s + run, i - run);
        if (n == 0) {
            rc |= sl_buf_append(b, "\xEF\xBF\xBD", 3);
        } else {
            char esc[7] = {'\\', 0};
            size_t el = 2;
            switch (c) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            default:
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                el = 6;
            }
            rc |= sl_buf_append(b, esc, el);
        }
        i++;
        run = i;
    }
    if (i > run) rc |= sl_buf_append(b, s + run, i - run);
    rc |= sl_buf_putc(b, '"');
    return rc ? -1 : 0;
}

const char *oai_json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int bad_type(oai_error_t *e, const char *param, const char *want, const json_t *v) {
    return oai_fail(e, 400, NULL, "invalid_type", param,
                    "Invalid type for '%s': expected %s, but got %s instead.", param, want,
                    oai_json_kind(v));
}

/* Optional number in [lo, hi]; returns 1 when present, 0 absent, -1 error. */
static int get_num(const json_t *body, const char *key, double lo, double hi, double *out,
                   oai_error_t *e) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return bad_type(e, key, "a number", v);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return oai_fail(e, 400, NULL, "invalid_value", key,
                        "Invalid value for '%s': %g is outside the allowed range [%g, %g].", key, d, lo,
                        hi);
    *out = d;
    return 1;
}

static int get_int(const json_t *body, const char *key, long long lo, long long hi, long long *out,
                   oai_error_t *e) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) {
        /* 2.0 is accepted as 2 (some clients send floats) */
        if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
            fabs(json_real_value(v)) < 9e15) {
            *out = (long long)json_real_value(v);
        } else {
            return bad_type(e, key, "an integer", v);
        }
    } else {
        *out = json_integer_value(v);
    }
    if (*out < lo || *out > hi)
        return oai_fail(e, 400, NULL, "invalid_value", key,
                        "Invalid value for '%s': %lld is outside the allowed range [%lld, %lld].", key,
                        *out, lo, hi);
    return 1;
}

static int get_bool(const json_t *body, const char *key, bool *out, oai_error_t *e) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return bad_type(e, key, "a boolean", v);
    *out = json_is_true(v);
    return 1;
}

static int parse_ids(const json_t *arr, const char *param, oai_prompt_t *p, oai_error_t *e) {
    size_t n = json_array_size(arr);
    p->ids = malloc((n ? n : 1) * sizeof *p->ids);
    if (!p->ids) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    p->n_ids = n;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            return oai_fail(e, 400, NULL, "invalid_type", param,
                            "Invalid '%s': token ids must be non-negative integers.", param);
        p->ids[i] = (int32_t)json_integer_value(v);
    }
    return 0;
}

static int parse_prompt(const json_t *body, oai_req_t *r, oai_error_t *e) {
    json_t *v = json_object_get(body, "prompt");
    if (!v || json_is_null(v))
        return oai_fail(e, 400, NULL, "missing_required_parameter", "prompt",
                        "you must provide a 'prompt' parameter (a string, an array of strings, an "
                        "array of token ids, or an array of such arrays)");
    size_t count = 1;
    bool ids_list = false, many = false;
    if (json_is_string(v)) {
    } else if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n == 0) return oai_fail(e, 400, NULL, "invalid_value", "prompt", "'prompt' must not be empty.");
        json_t *first = json_array_get(v, 0);
        if (json_is_integer(first)) ids_list = true;
        else if (json_is_string(first) || json_is_array(first)) many = true, count = n;
        else return bad_type(e, "prompt", "a string, array of strings or array of token ids", first);
    } else {
        return bad_type(e, "prompt", "a string or an array", v);
    }
    if (count > OAI_MAX_PROMPTS)
        return oai_fail(e, 400, NULL, "invalid_value", "prompt",
                        "At most %d prompts per request; got %zu.", OAI_MAX_PROMPTS, count);
    r->prompts = calloc(count, sizeof *r->prompts);
    if (!r->prompts) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    r->n_prompts = (int)count;
    for (size_t i = 0; i < count; i++) {
        json_t *p = many ? json_array_get(v, i) : v;
        if (json_is_string(p)) {
            r->prompts[i].text = sl_strndup(json_string_value(p), json_string_length(p));
            if (!r->prompts[i].text) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        } else if (json_is_array(p) && (ids_list || many)) {
            if (many && json_array_size(p) == 0)
                return oai_fail(e, 400, NULL, "invalid_value", "prompt", "'prompt' must not hold an empty array.");
            if (parse_ids(p, "prompt", &r->prompts[i], e) != 0) return -1;
        } else {
            return bad_type(e, "prompt", "a string or an array of token ids", p);
        }
    }
    return 0;
}

/* optional: messages may be absent or empty (chat FIM, which does not use them) */
static int parse_messages(const json_t *body, oai_req_t *r, bool optional, oai_error_t *e) {
    json_t *m = json_object_get(body, "messages");
    if (optional && (!m || json_is_null(m))) return 0;
    if (!m || json_is_null(m))
        return oai_fail(e, 400, NULL, "missing_required_parameter", "messages",
                        "Missing required parameter: 'messages'.");
    if (!json_is_array(m)) return bad_type(e, "messages", "an array", m);
    if (json_array_size(m) == 0 && !optional)
        return oai_fail(e, 400, NULL, "invalid_value", "messages",
                        "Invalid 'messages': empty array. Expected an array with minimum length 1.");
    static const char *roles[] = {"system", "developer", "user", "assistant", "tool", "function"};
    for (size_t i = 0; i < json_array_size(m); i++) {
        json_t *msg = json_array_get(m, i);
        char param[48];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(msg)) return bad_type(e, param, "an object", msg);
        json_t *role = json_object_get(msg, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!role) return oai_fail(e, 400, NULL, "missing_required_parameter", param,
                                   "Missing required parameter: '%s'.", param);
        if (!json_is_string(role)) return bad_type(e, param, "a string", role);
        bool known = false;
        for (size_t k = 0; k < SL_ARRAY_LEN(roles); k++) known |= !strcmp(json_string_value(role), roles[k]);
        if (!known)
            return oai_fail(e, 400, NULL, "invalid_value", param,
                            "Invalid value: '%s'. Supported values are: 'system', 'developer', 'user', "
                            "'assistant', 'tool' and 'function'.", json_string_value(role));
        json_t *content = json_object_get(msg, "content");
        snprintf(param, sizeof param, "messages[%zu].content", i);
        if (content && !json_is_null(content) && !json_is_string(content) && !json_is_array(content))
            return bad_type(e, param, "a string or an array of content parts", content);
        if (!content && strcmp(json_string_value(role), "assistant") != 0)
            return oai_fail(e, 400, NULL, "missing_required_parameter", param,
                            "Missing required parameter: '%s'.", param);
        /* DeepSeek's prefix completion: the last message is a partial
         * assistant answer for the model to continue */
        json_t *pf = json_object_get(msg, "prefix");
        snprintf(param, sizeof param, "messages[%zu].prefix", i);
        if (pf && !json_is_null(pf) && !json_is_boolean(pf)) return bad_type(e, param, "a boolean", pf);
        if (json_is_true(pf)) {
            if (strcmp(json_string_value(role), "assistant") != 0 || i + 1 != json_array_size(m))
                return oai_fail(e, 400, NULL, "invalid_value", param,
                                "Only the last message may have 'prefix': true, and it must be an "
                                "assistant message (the start of the answer to continue).");
            if (!json_is_string(content))
                return oai_fail(e, 400, NULL, "invalid_value", param,
                                "The prefix message's 'content' must be a string (the start of the answer).");
            r->assistant_prefix = true;
            r->prefix = json_string_value(content);
            r->prefix_len = json_string_length(content);
        }
    }
    return 0;
}

static int get_text(const json_t *body, const char *key, const char **out, size_t *len, oai_error_t *e) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return bad_type(e, key, "a string", v);
    *out = json_string_value(v);
    *len = json_string_length(v);
    return 1;
}

/* prefix / suffix / fim_order / return_token_ids (extensions) */
static int parse_infill(const json_t *b, bool chat, oai_req_t *r, oai_error_t *e) {
    const char *pre = NULL;
    size_t pre_len = 0;
    int has_pre = 0, has_suf;
    if (chat && (has_pre = get_text(b, "prefix", &pre, &pre_len, e)) < 0) return -1;
    if ((has_suf = get_text(b, "suffix", &r->suffix, &r->suffix_len, e)) < 0) return -1;
    if (chat) {
        if (has_suf && !has_pre)
            return oai_fail(e, 400, NULL, "missing_required_parameter", "prefix",
                            "'suffix' needs 'prefix': fill-in-the-middle takes the text before "
                            "('prefix') and after ('suffix') the part to write.");
        if (has_pre && r->assistant_prefix)
            return oai_fail(e, 400, NULL, "invalid_value", "prefix",
                            "Give the answer's start either as 'prefix' or as a last assistant message "
                            "with 'prefix': true, not both.");
        if (has_pre) {
            r->prefix = pre;
            r->prefix_len = pre_len;
        }
    } else if (has_suf && r->echo) {
        return oai_fail(e, 400, NULL, "invalid_value", "echo",
                        "'echo' cannot be combined with 'suffix' (fill-in-the-middle).");
    }
    r->fim = has_suf > 0;
    json_t *order = json_object_get(b, "fim_order");
    if (order && !json_is_null(order)) {
        if (!json_is_string(order)) return bad_type(e, "fim_order", "a string", order);
        const char *o = json_string_value(order);
        if (strcmp(o, "psm") != 0 && strcmp(o, "spm") != 0)
            return oai_fail(e, 400, NULL, "invalid_value", "fim_order",
                            "Invalid 'fim_order': '%.40s'. Supported values are 'psm' "
                            "(prefix, suffix, middle) and 'spm' (suffix, prefix, middle).", o);
        r->fim_spm = o[0] == 's';
    }
    if (get_bool(b, "return_token_ids", &r->return_token_ids, e) < 0) return -1;
    return 0;
}

static int parse_stop(const json_t *body, oai_req_t *r, oai_error_t *e) {
    json_t *v = json_object_get(body, "stop");
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        if (json_string_length(v) == 0) return 0;
        r->stop[0] = sl_strndup(json_string_value(v), json_string_length(v));
        r->n_stop = 1;
        return r->stop[0] ? 0 : oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (!json_is_array(v)) return bad_type(e, "stop", "a string or an array of strings", v);
    if (json_array_size(v) > OAI_MAX_STOP)
        return oai_fail(e, 400, NULL, "invalid_value", "stop",
                        "Invalid 'stop': at most %d stop sequences are allowed; got %zu.", OAI_MAX_STOP,
                        json_array_size(v));
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) return bad_type(e, "stop", "an array of strings", s);
        if (json_string_length(s) == 0) continue;
        r->stop[r->n_stop] = sl_strndup(json_string_value(s), json_string_length(s));
        if (!r->stop[r->n_stop]) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        r->n_stop++;
    }
    return 0;
}

static int parse_bias(const json_t *body, oai_req_t *r, oai_error_t *e) {
    json_t *v = json_object_get(body, "logit_bias");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v)) return bad_type(e, "logit_bias", "an object", v);
    size_t n = json_object_size(v);
    if (n > 1024)
        return oai_fail(e, 400, NULL, "invalid_value", "logit_bias", "At most 1024 logit_bias entries are allowed.");
    r->bias = calloc(n ? n : 1, sizeof *r->bias);
    if (!r->bias) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        char *end;
        long id = strtol(key, &end, 10);
        if (!*key || *end || id < 0 || id > INT32_MAX)
            return oai_fail(e, 400, NULL, "invalid_value", "logit_bias",
                            "Invalid key in 'logit_bias': '%s' is not a token id.", key);
        if (!json_is_number(val)) return bad_type(e, "logit_bias", "numbers as values", val);
        double b = json_number_value(val);
        if (!(b >= -100 && b <= 100))
            return oai_fail(e, 400, NULL, "invalid_value", "logit_bias",
                            "Invalid value in 'logit_bias' for token %ld: %g is outside [-100, 100].", id, b);
        r->bias[r->n_bias++] = (smp_bias_t){(int32_t)id, (float)b};
    }
    return 0;
}

json_t *oai_load_body(const char *body, size_t len, oai_error_t *e) {
    json_error_t je;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!v)
        oai_fail(e, 400, NULL, "invalid_json", NULL,
                 "We could not parse the JSON body of your request: %s (line %d, column %d). "
                 "The body must be a JSON object.", je.text, je.line, je.column);
    return v;
}

int oai_parse(const char *body, size_t len, bool chat, oai_req_t *r, oai_error_t *e) {
    json_t *v = oai_load_body(body, len, e);
    if (!v) {
        memset(r, 0, sizeof *r);
        return -1;
    }
    return oai_parse_json(v, chat, r, e);
}

int oai_parse_json(json_t *body, bool chat, oai_req_t *r, oai_error_t *e) {
    memset(r, 0, sizeof *r);
    r->chat = chat;
    r->n = 1;
    smp_params_default(&r->smp);
    r->body = body;
    json_t *b = r->body;
    if (!json_is_object(b))
        return oai_fail(e, 400, NULL, "invalid_json", NULL,
                        "The request body must be a JSON object, not %s.", oai_json_kind(b));
    json_t *model = json_object_get(b, "model");
    if (!model || json_is_null(model))
        return oai_fail(e, 400, NULL, "missing_required_parameter", "model",
                        "You must provide a model parameter.");
    if (!json_is_string(model)) return bad_type(e, "model", "a string", model);
    r->model = json_string_value(model);
    if (chat) {
        /* chat FIM (prefix + suffix) does not need messages */
        json_t *pv = json_object_get(b, "prefix"), *sv = json_object_get(b, "suffix");
        bool fim = json_is_string(pv) && json_is_string(sv);
        if (parse_messages(b, r, fim, e)) return -1;
    } else if (parse_prompt(b, r, e)) {
        return -1;
    }

    double d;
    long long ll;
    int rc;
    if ((rc = get_bool(b, "stream", &r->stream, e)) < 0) return -1;
    bool spec = true; /* Silica extension: "speculative": false opts out of speculative decoding */
    if (get_bool(b, "speculative", &spec, e) < 0) return -1;
    r->no_spec = !spec;
    json_t *so = json_object_get(b, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) return bad_type(e, "stream_options", "an object", so);
        if (!r->stream)
            return oai_fail(e, 400, NULL, "invalid_value", "stream_options",
                            "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
        if (get_bool(so, "include_usage", &r->include_usage, e) < 0) {
            snprintf(e->param, sizeof e->param, "stream_options.include_usage");
            return -1;
        }
    }
    if ((rc = get_num(b, "temperature", 0, 2, &d, e)) < 0) return -1;
    if (rc) r->smp.temperature = (float)d;
    if ((rc = get_num(b, "top_p", 0, 1, &d, e)) < 0) return -1;
    if (rc) r->smp.top_p = d <= 0 ? 1e-6f : (float)d;
    if ((rc = get_num(b, "min_p", 0, 1, &d, e)) < 0) return -1;
    if (rc) r->smp.min_p = (float)d;
    if ((rc = get_int(b, "top_k", -1, 1 << 30, &ll, e)) < 0) return -1;
    if (rc) r->smp.top_k = ll < 0 ? 0 : (int)ll; /* -1: off (vLLM's convention) */
    if ((rc = get_num(b, "frequency_penalty", -2, 2, &d, e)) < 0) return -1;
    if (rc) r->smp.frequency_penalty = (float)d;
    if ((rc = get_num(b, "presence_penalty", -2, 2, &d, e)) < 0) return -1;
    if (rc) r->smp.presence_penalty = (float)d;
    if ((rc = get_num(b, "repetition_penalty", 0.01, 10, &d, e)) < 0) return -1;
    if (rc) r->smp.repetition_penalty = (float)d;
    if ((rc = get_int(b, "n", 1, OAI_MAX_N, &ll, e)) < 0) return -1;
    if (rc) r->n = (int)ll;
    long long mt = 0, mct = 0;
    /* completions: max_tokens 0 with echo scores the prompt only (checked below) */
    if ((rc = get_int(b, "max_tokens", chat ? 1 : 0, INT32_MAX, &mt, e)) < 0) return -1;
    bool zero_max = rc > 0 && mt == 0;
    if (get_int(b, "max_completion_tokens", 1, INT32_MAX, &mct, e) < 0) return -1;
    r->max_tokens = (int)(mct ? mct : mt);
    if ((rc = get_int(b, "seed", INT64_MIN, INT64_MAX, &ll, e)) < 0) return -1;
    if (rc) {
        r->has_seed = true;
        r->seed = (uint64_t)ll;
    }
    if (parse_stop(b, r, e) || parse_bias(b, r, e)) return -1;
    r->smp.bias = r->bias;
    r->smp.n_bias = r->n_bias;
    if (chat) {
        if (get_bool(b, "logprobs", &r->logprobs, e) < 0) return -1;
        if ((rc = get_int(b, "thinking_budget", 1, INT32_MAX, &ll, e)) < 0) return -1;
        if (rc) r->thinking_budget = (int)ll;
        if ((rc = get_int(b, "top_logprobs", 0, 20, &ll, e)) < 0) return -1;
        if (rc) {
            if (!r->logprobs)
                return oai_fail(e, 400, NULL, "invalid_value", "top_logprobs",
                                "Using 'top_logprobs' requires 'logprobs' to be true.");
            r->top_logprobs = (int)ll;
        }
    } else {
        if ((rc = get_int(b, "logprobs", 0, 5, &ll, e)) < 0) return -1;
        if (rc) {
            r->logprobs = true;
            r->top_logprobs = (int)ll;
        }
        if (get_bool(b, "echo", &r->echo, e) < 0) return -1;
        if (zero_max && !mct) {
            if (!r->echo)
                return oai_fail(e, 400, NULL, "invalid_value", "max_tokens",
                                "'max_tokens' 0 is only allowed with 'echo': true (scoring the prompt).");
            r->score_only = true;
        }
        if ((rc = get_int(b, "best_of", 1, OAI_MAX_N, &ll, e)) < 0) return -1;
        if (rc && ll != r->n && ll != 1)
            return oai_fail(e, 400, NULL, "invalid_value", "best_of",
                            "'best_of' other than 1 or n is not supported.");
    }
    if (parse_infill(b, chat, r, e) != 0) return -1;
    if (oai_parse_format(b, r, e) != 0) return -1;
    r->smp.n_top_logprobs = r->top_logprobs;
    r->smp.no_logprob = !r->logprobs; /* no reader: greedy/sampled steps skip the softmax normaliser */
    json_t *user = json_object_get(b, "user");
    if (user && !json_is_null(user)) {
        if (!json_is_string(user)) return bad_type(e, "user", "a string", user);
        r->user = json_string_value(user);
    }
    /* OpenAI's routing hint for its prompt caches: accepted (a string, as
     * OpenAI checks) and left to `silica route`, which reads it (docs/router.md) */
    const json_t *pck = json_object_get(b, "prompt_cache_key");
    if (pck && !json_is_null(pck) && !json_is_string(pck)) return bad_type(e, "prompt_cache_key", "a string", pck);
    return 0;
}

void oai_req_free(oai_req_t *r) {
    for (int i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].ids);
    }
    free(r->prompts);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->bias);
    free(r->gram_text);
    json_decref(r->body);
    memset(r, 0, sizeof *r);
}
