/*
 * toolcall_grammar.c — GBNF for a family's call syntax with arguments that
 * match each tool's JSON Schema.
 *
 * Each tool's `parameters` schema goes through the grammar library
 * (gram_json_schema_to_gbnf); its rule names are then prefixed with "tN-" so
 * several schemas live in one grammar. The family's call text wraps the
 * arguments rule, written the way the model's own template writes calls back
 * (so the model is forced into text it knows). GLM-4.5 and Qwen3-Coder write
 * each parameter in its own tags: string parameters as raw text, the others
 * as JSON of their schema. The root begins with the
 * family's trigger word, so the same grammar serves tool_choice required
 * (active from the first token) and auto (activated at the trigger, the
 * trigger text fed first).
 */
#include "chat/toolcall_internal.h"
#include "grammar/grammar.h"

#include <stdlib.h>
#include <string.h>

static bool gname_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Appends src with every rule name prefixed (literals, classes, counts and
 * comments are copied untouched). */
static int gbnf_prefix(sl_buf_t *out, const char *src, const char *prefix) {
    size_t i = 0, n = strlen(src);
    while (i < n) {
        char c = src[i];
        if (c == '"' || c == '[') {
            char close = c == '"' ? '"' : ']';
            size_t j = i + 1;
            while (j < n && src[j] != close)
                j += src[j] == '\\' && j + 1 < n ? 2 : 1;
            j = SL_MIN(j + 1, n);
            if (sl_buf_append(out, src + i, j - i)) return -1;
            i = j;
        } else if (c == '{' || c == '#') {
            char close = c == '{' ? '}' : '\n';
            size_t j = i;
            while (j < n && src[j] != close)
                j++;
            j = SL_MIN(j + 1, n);
            if (sl_buf_append(out, src + i, j - i)) return -1;
            i = j;
        } else if (gname_char(c)) {
            size_t j = i;
            while (j < n && gname_char(src[j]))
                j++;
            if (sl_buf_puts(out, prefix) || sl_buf_append(out, src + i, j - i)) return -1;
            i = j;
        } else {
            if (sl_buf_putc(out, c)) return -1;
            i++;
        }
    }
    return sl_buf_putc(out, '\n');
}

/* A GBNF string literal of text. */
static int gbnf_lit(sl_buf_t *b, const char *text) {
    if (sl_buf_putc(b, '"')) return -1;
    for (const char *s = text; *s; s++) {
        int r;
        if (*s == '"')
            r = sl_buf_puts(b, "\\\"");
        else if (*s == '\\')
            r = sl_buf_puts(b, "\\\\");
        else if (*s == '\n')
            r = sl_buf_puts(b, "\\n");
        else if (*s == '\r')
            r = sl_buf_puts(b, "\\r");
        else if (*s == '\t')
            r = sl_buf_puts(b, "\\t");
        else
            r = sl_buf_putc(b, *s);
        if (r) return -1;
    }
    return sl_buf_puts(b, "\" ");
}

/* Rules for a schema under prefix; the entry rule is <prefix>root.
 * No parameters (absent, as OpenAI documents: "an empty parameter list"),
 * or an object schema with an empty `properties` and no
 * additionalProperties, is the empty object {} (the grammar library's rule
 * for declared properties: absent additionalProperties is false). */
static int schema_rules(sl_buf_t *rules, const json_t *schema, const char *prefix, char *err,
                        size_t errlen) {
    json_t *any = NULL;
    const json_t *props = json_object_get(schema, "properties");
    if (!schema || json_is_null(schema)) {
        schema = any = json_pack("{s:s, s:{}, s:b}", "type", "object", "properties",
                                 "additionalProperties", 0);
    } else if (json_is_object(props) && json_object_size(props) == 0 &&
               !json_object_get(schema, "additionalProperties")) {
        any = json_copy((json_t *)schema);
        if (any) json_object_set_new(any, "additionalProperties", json_false());
        schema = any;
    }
    char *g = schema ? gram_json_schema_to_gbnf(schema, err, errlen) : NULL;
    json_decref(any);
    if (!g) return -1;
    int rc = gbnf_prefix(rules, g, prefix);
    free(g);
    return rc;
}

static bool schema_is_plain_string(const json_t *s) {
    const char *t = json_string_value(json_object_get(s, "type"));
    return t && strcmp(t, "string") == 0 && !json_object_get(s, "enum") &&
           !json_object_get(s, "pattern") && !json_object_get(s, "format") &&
           !json_object_get(s, "const");
}

/* GLM-4.5 argument pairs of tool ti into `call` (rules into `rules`). */
static int glm45_args(sl_buf_t *call, sl_buf_t *rules, const json_t *params, size_t ti, char *err,
                      size_t errlen) {
    const json_t *props = json_object_get(params, "properties");
    const json_t *req = json_object_get(params, "required");
    const char *key;
    const json_t *ps;
    size_t k = 0;
    json_object_foreach((json_t *)props, key, ps) {
        bool required = false;
        size_t i;
        const json_t *r;
        json_array_foreach(req, i, r) if (json_is_string(r) &&
                                          strcmp(json_string_value(r), key) == 0) required = true;
        char prefix[48];
        snprintf(prefix, sizeof prefix, "t%zu-p%zu-", ti, k++);
        if (sl_buf_puts(call, "( ")) return -1;
        sl_buf_t lit = {0};
        int bad = sl_buf_puts(&lit, "<arg_key>") || sl_buf_puts(&lit, key) ||
                  sl_buf_puts(&lit, "</arg_key>\n<arg_value>");
        bad = bad || gbnf_lit(call, lit.data);
        sl_buf_free(&lit);
        if (bad) return -1;
        if (schema_is_plain_string(ps)) {
            if (sl_buf_puts(call, "glm-str ")) return -1;
        } else {
            if (schema_rules(rules, ps, prefix, err, errlen)) return -1;
            if (sl_buf_printf(call, "%sroot ", prefix)) return -1;
        }
        if (gbnf_lit(call, "</arg_value>\n") || sl_buf_puts(call, required ? ") " : ")? "))
            return -1;
    }
    return 0;
}

/* Qwen3-Coder: raw text of a string parameter, any text without
 * "</parameter>" (which would end it). xml-sK has matched the first K bytes
 * of the closing tag; the next byte either continues the match, restarts it
 * ('<') or breaks it. The text cannot end inside a partial match (e.g. with
 * a '<'): the grammar then needs one more byte (documented limit). */
static int xml_str_rules(sl_buf_t *out) {
    const char *const close = TC_XML_PARAM_CLOSE;
    const size_t n = strlen(close);
    int bad = sl_buf_puts(out, "xml-str ::= ( [^<] | \"<\" xml-s1 )*\n");
    for (size_t k = 1; k < n && !bad; k++) {
        char ch = close[k];
        bad = sl_buf_printf(out, "xml-s%zu ::= [^%c<] | \"<\" xml-s1", k, ch);
        if (!bad && k + 1 < n) bad = sl_buf_printf(out, " | \"%c\" xml-s%zu", ch, k + 1);
        bad = bad || sl_buf_putc(out, '\n');
    }
    return bad ? -1 : 0;
}

/* A count keyword (minLength / maxLength) of a string schema: 1 present, 0
 * absent, -1 bad (err filled). */
static int xml_count(const json_t *s, const char *k, long long *out, char *err, size_t errlen) {
    const json_t *v = json_object_get(s, k);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 2000) {
        sl_err(err, errlen, "'%s' must be an integer from 0 to 2000", k);
        return -1;
    }
    *out = json_integer_value(v);
    return 1;
}

/* The raw-text value of a string parameter (schema ps, kinds k) into call:
 * its enum / const values as literals, a length-bounded text (without '<',
 * so that it cannot hold the closing tag), or any text. null (when the
 * schema allows it) is the text "null". */
static int xml_string_value(sl_buf_t *call, const json_t *ps, int kinds, char *err, size_t errlen) {
    const json_t *en = json_object_get(ps, "enum");
    json_t *one = NULL;
    if (!json_is_array(en) && json_object_get(ps, "const"))
        en = one = json_pack("[O]", json_object_get(ps, "const"));
    if (json_is_array(en) && json_array_size(en) > 0) {
        int bad = sl_buf_puts(call, "( "), nalt = 0;
        size_t i;
        const json_t *v;
        json_array_foreach(en, i, v) {
            /* (a value holding the closing tag or a NUL cannot be written) */
            const char *t = json_is_null(v) ? "null" : json_string_value(v);
            size_t tl = json_is_null(v) ? 4 : json_string_length(v);
            if (!t || strstr(t, TC_XML_PARAM_CLOSE) || strlen(t) != tl) continue;
            bad = bad || (nalt++ && sl_buf_puts(call, "| ")) || gbnf_lit(call, t);
        }
        json_decref(one);
        if (!bad && nalt == 0)
            return sl_err(err, errlen,
                          "no enum value of a string parameter can be written as text");
        return bad || sl_buf_puts(call, ") ") ? sl_err(err, errlen, "out of memory") : 0;
    }
    json_decref(one);
    long long mn = 0, mx = -1;
    int r1 = xml_count(ps, "minLength", &mn, err, errlen);
    int r2 = xml_count(ps, "maxLength", &mx, err, errlen);
    if (r1 < 0 || r2 < 0) return -1;
    if (r2 && mx < mn) return sl_err(err, errlen, "maxLength < minLength");
    const char *nul = kinds & TC_XK_NULL ? "| \"null\" " : "";
    int bad;
    if (!r1 && !r2)
        bad = sl_buf_puts(call, "xml-str ");
    else if (r2)
        bad = sl_buf_printf(call, "( [^<]{%lld,%lld} %s) ", mn, mx, nul);
    else
        bad = sl_buf_printf(call, "( [^<]{%lld,} %s) ", mn, nul);
    return bad ? sl_err(err, errlen, "out of memory") : 0;
}

/* Qwen3-Coder parameters of tool ti into `call` (rules into `rules`), in
 * the schema's order, each optional unless required, written as the
 * template writes them back: "<parameter=K>\nV\n</parameter>\n". */
static int xml_args(sl_buf_t *call, sl_buf_t *rules, const json_t *params, size_t ti, char *err,
                    size_t errlen) {
    const json_t *props = json_object_get(params, "properties");
    const json_t *req = json_object_get(params, "required");
    const char *key;
    const json_t *ps;
    size_t k = 0;
    json_object_foreach((json_t *)props, key, ps) {
        if (!key[0] || strpbrk(key, "<>\n"))
            return sl_err(err, errlen,
                          "parameter name '%.64s' cannot be written in <parameter=...>", key);
        bool required = false;
        size_t i;
        const json_t *r;
        json_array_foreach(req, i, r) if (json_is_string(r) &&
                                          strcmp(json_string_value(r), key) == 0) required = true;
        char prefix[48];
        snprintf(prefix, sizeof prefix, "t%zu-p%zu-", ti, k++);
        sl_buf_t lit = {0};
        int bad = sl_buf_puts(call, "( ") || sl_buf_puts(&lit, "<parameter=") ||
                  sl_buf_puts(&lit, key) || sl_buf_puts(&lit, ">\n") || gbnf_lit(call, lit.data);
        sl_buf_free(&lit);
        if (bad) return sl_err(err, errlen, "out of memory");
        int kinds = tc_xml_param_kinds(ps);
        if (tc_xml_is_string(kinds)) {
            if (xml_string_value(call, ps, kinds, err, errlen)) return -1;
        } else {
            if (schema_rules(rules, ps, prefix, err, errlen)) return -1;
            if (sl_buf_printf(call, "%sroot ", prefix)) return sl_err(err, errlen, "out of memory");
        }
        if (gbnf_lit(call, "\n" TC_XML_PARAM_CLOSE "\n") ||
            sl_buf_puts(call, required ? ") " : ")? "))
            return sl_err(err, errlen, "out of memory");
    }
    return 0;
}

int tc_build_grammar(tc_family_t f, const json_t *tools, tc_choice_t choice,
                     const char *forced_name, bool parallel, sl_buf_t *out, char *err,
                     size_t errlen) {
    if (choice == TC_CHOICE_NONE || f == TC_FAMILY_NONE || (unsigned)f >= TC_FAMILY_COUNT)
        return sl_err(err, errlen, "no tool-call grammar for this family or tool_choice");
    if (!json_is_array(tools) || json_array_size(tools) == 0)
        return sl_err(err, errlen, "tool-call grammar: no tools");
    /* one call per turn: GLM-4; harmony (a call ends the turn at <|call|>) */
    if (f == TC_FAMILY_GLM4 || f == TC_FAMILY_HARMONY) parallel = false;
    /* harmony with tool_choice auto: the lazy form, entered at a call's
     * header (tc_trigger); its calls are written in both header orders */
    const bool h_lazy = f == TC_FAMILY_HARMONY && choice == TC_CHOICE_AUTO;
    sl_buf_t rules = {0}, calls = {0}, chans = {0};
    size_t i;
    const json_t *t;
    int rc = -1, nalt = 0;
    json_array_foreach(tools, i, t) {
        const json_t *fn = json_object_get(t, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        if (!name || !tc_name_valid(name, strlen(name))) {
            sl_err(err, errlen, "tool-call grammar: tool %zu has no valid name", i);
            goto done;
        }
        if (choice == TC_CHOICE_NAMED && (!forced_name || strcmp(name, forced_name) != 0)) continue;
        const json_t *params = json_object_get(fn, "parameters");
        char prefix[32], args[48];
        snprintf(prefix, sizeof prefix, "t%zu-", i);
        snprintf(args, sizeof args, "t%zu-root ", i);
        if (f != TC_FAMILY_GLM45 && f != TC_FAMILY_QWEN3_CODER &&
            schema_rules(&rules, params, prefix, err, errlen))
            goto done;
        sl_buf_t call = {0}, lit = {0};
        int bad = sl_buf_printf(&call, "call-%zu ::= ", i) != 0;
#define LIT(...) (sl_buf_clear(&lit), sl_buf_printf(&lit, __VA_ARGS__) || gbnf_lit(&call, lit.data))
        switch (f) {
        case TC_FAMILY_HERMES:
        case TC_FAMILY_LLAMA3:
        case TC_FAMILY_INTERNLM2:
        case TC_FAMILY_MISTRAL: {
            const char *pre = f == TC_FAMILY_HERMES      ? "<tool_call>\n"
                              : f == TC_FAMILY_INTERNLM2 ? "<|action_start|><|plugin|>\n"
                                                         : "";
            const char *key =
                (f == TC_FAMILY_HERMES || f == TC_FAMILY_MISTRAL) ? "arguments" : "parameters";
            const char *post = f == TC_FAMILY_HERMES      ? "}\n</tool_call>"
                               : f == TC_FAMILY_INTERNLM2 ? "}<|action_end|>"
                                                          : "}";
            bad = bad || LIT("%s{\"name\": \"%s\", \"%s\": ", pre, name, key) ||
                  sl_buf_puts(&call, args) || LIT("%s", post);
            break;
        }
        case TC_FAMILY_DEEPSEEK:
            bad = bad || LIT(TC_DS_CALL_BEGIN "function" TC_DS_SEP "%s\n```json\n", name) ||
                  sl_buf_puts(&call, args) || LIT("\n```" TC_DS_CALL_END);
            break;
        case TC_FAMILY_DEEPSEEK_V31:
            bad = bad || LIT(TC_DS_CALL_BEGIN "%s" TC_DS_SEP, name) || sl_buf_puts(&call, args) ||
                  LIT(TC_DS_CALL_END);
            break;
        case TC_FAMILY_GLM4:
            bad = bad || LIT("%s\n", name) || sl_buf_puts(&call, args);
            break;
        case TC_FAMILY_HARMONY:
            if (h_lazy) {
                /* after "to=functions.": the name, then the rest of a
                 * header whose recipient came first (role order, as the
                 * template writes calls back: N<|channel|>commentary json)
                 * or after the channel (chan-N: N <|constrain|>json) */
                bad = bad || LIT("%s" TC_H_CHANNEL, name) ||
                      sl_buf_puts(&call, "h-chn h-type \"" TC_H_MESSAGE "\" ") ||
                      sl_buf_puts(&call, args);
                bad = bad || sl_buf_printf(&call, "\nchan-%zu ::= ", i) || LIT("%s", name) ||
                      sl_buf_puts(&call, "h-type \"" TC_H_MESSAGE "\" ") ||
                      sl_buf_puts(&call, args);
                bad = bad || sl_buf_printf(&chans, "%schan-%zu", nalt ? " | " : "", i);
                break;
            }
            /* the header as the model writes it (harmony docs); the turn
             * then ends with <|call|>, an end-of-generation token */
            bad = bad ||
                  LIT(TC_H_CHANNEL "commentary to=functions.%s " TC_H_CONSTRAIN "json" TC_H_MESSAGE,
                      name) ||
                  sl_buf_puts(&call, args);
            break;
        case TC_FAMILY_GLM45:
            bad = bad || LIT("<tool_call>%s\n", name);
            if (!bad && glm45_args(&call, &rules, params, i, err, errlen)) {
                sl_buf_free(&call);
                sl_buf_free(&lit);
                goto done;
            }
            bad = bad || LIT("</tool_call>");
            break;
        case TC_FAMILY_QWEN3_CODER:
            bad = bad || LIT("<tool_call>\n<function=%s>\n", name);
            if (!bad && xml_args(&call, &rules, params, i, err, errlen)) {
                sl_buf_free(&call);
                sl_buf_free(&lit);
                goto done;
            }
            bad = bad || LIT("</function>\n</tool_call>");
            break;
        default:
            bad = 1;
        }
#undef LIT
        bad = bad || sl_buf_putc(&call, '\n') || sl_buf_append(&rules, call.data, call.len);
        bad = bad || sl_buf_printf(&calls, "%scall-%zu", nalt ? " | " : "", i);
        sl_buf_free(&call);
        sl_buf_free(&lit);
        if (bad) {
            sl_err(err, errlen, "out of memory");
            goto done;
        }
        nalt++;
    }
    if (nalt == 0) {
        sl_err(err, errlen, "tool-call grammar: no function named '%s'",
               forced_name ? forced_name : "");
        goto done;
    }
    /* root: the family's framing around one or more calls */
    const char *open = "", *sep = "\"\\n\"", *close = "";
    switch (f) {
    case TC_FAMILY_LLAMA3:
        open = "\"<|python_tag|>\"? ";
        sep = "\"; \"";
        break;
    case TC_FAMILY_DEEPSEEK:
    case TC_FAMILY_DEEPSEEK_V31:
        open = "\"" TC_DS_CALLS_BEGIN "\" ";
        sep = "\"\\n\"?";
        close = " \"" TC_DS_CALLS_END "\"";
        break;
    case TC_FAMILY_MISTRAL:
        open = "\"[TOOL_CALLS][\" ";
        sep = "\", \"";
        close = " \"]\"";
        break;
    case TC_FAMILY_HARMONY:
        /* the output starts after the prompt's "<|start|>assistant": an
         * optional analysis message, then the call's header */
        open = "( \"" TC_H_CHANNEL "analysis" TC_H_MESSAGE "\" h-text \"" TC_H_END TC_H_START
               "assistant\" )? ";
        break;
    default:
        break;
    }
    int bad;
    if (h_lazy) {
        /* the root begins with each trigger text (tc_trigger): the start
         * word "to=functions.", "<|start|>assistant to=functions." and
         * "<|channel|>commentary|analysis to=functions." */
        bad = sl_buf_puts(out, "root ::= \"" TC_H_START
                               "assistant \"? \"to=functions.\" call | \"" TC_H_CHANNEL
                               "\" h-chn \" to=functions.\" chan\n") ||
              sl_buf_printf(out, "call ::= %s\nchan ::= %s\n", calls.data, chans.data) ||
              sl_buf_puts(out, "h-chn ::= \"commentary\" | \"analysis\"\n"
                               "h-type ::= ( \" \" \"" TC_H_CONSTRAIN "\"? \"json\" )?\n");
    } else {
        bad = sl_buf_printf(out, "root ::= %scall", open);
        if (parallel) bad = bad || sl_buf_printf(out, " ( %s call )*", sep);
        bad = bad || sl_buf_printf(out, "%s\ncall ::= %s\n", close, calls.data);
    }
    if (f == TC_FAMILY_GLM45) bad = bad || sl_buf_puts(out, "glm-str ::= ( [^<] | \"<\" [^/] )*\n");
    if (f == TC_FAMILY_QWEN3_CODER) bad = bad || xml_str_rules(out);
    /* analysis text: no '<' before a '|' (which would begin a marker) */
    if (f == TC_FAMILY_HARMONY && !h_lazy)
        bad = bad || sl_buf_puts(out, "h-text ::= ( [^<] | \"<\" [^|] )*\n");
    bad = bad || sl_buf_append(out, rules.data, rules.len);
    if (bad) {
        sl_err(err, errlen, "out of memory");
        goto done;
    }
    rc = 0;
done:
    sl_buf_free(&rules);
    sl_buf_free(&calls);
    sl_buf_free(&chans);
    return rc;
}

int tc_harmony_grammar(const char *final_gbnf, const json_t *tools, tc_choice_t choice,
                       const char *forced_name, bool analysis, sl_buf_t *out, char *err,
                       size_t errlen) {
    const bool with_calls = choice != TC_CHOICE_NONE && json_array_size(tools) > 0;
    if (!final_gbnf && !with_calls)
        return sl_err(err, errlen, "harmony grammar: neither a final message nor a call");
    sl_buf_t calls = {0};
    int rc = -1;
    if (with_calls &&
        tc_build_grammar(TC_FAMILY_HARMONY, tools,
                         choice == TC_CHOICE_NAMED ? TC_CHOICE_NAMED : TC_CHOICE_REQUIRED,
                         forced_name, false, &calls, err, errlen) != 0)
        goto done;
    /* the output starts after the prompt's "<|start|>assistant": an
     * optional analysis message (its own header; the next message's header
     * then repeats the role), then the final message or a call */
    int bad = sl_buf_puts(out, "root ::= ");
    if (analysis)
        bad = bad || sl_buf_puts(out, "( \"" TC_H_CHANNEL "analysis" TC_H_MESSAGE
                                      "\" h-text \"" TC_H_END TC_H_START "assistant\" )? ");
    bad = bad || sl_buf_puts(out, "( ");
    if (final_gbnf)
        bad = bad || sl_buf_puts(out, "\"" TC_H_CHANNEL "final" TC_H_MESSAGE "\" f-root");
    if (final_gbnf && with_calls) bad = bad || sl_buf_puts(out, " | ");
    if (with_calls) bad = bad || sl_buf_puts(out, "c-call");
    bad = bad || sl_buf_puts(out, " )\nh-text ::= ( [^<] | \"<\" [^|] )*\n");
    if (bad) {
        sl_err(err, errlen, "out of memory");
        goto done;
    }
    /* the final message's grammar and the calls' under their own prefixes
     * (their roots become f-root / c-root) */
    if ((final_gbnf && gbnf_prefix(out, final_gbnf, "f-")) ||
        (with_calls && gbnf_prefix(out, calls.data, "c-"))) {
        sl_err(err, errlen, "out of memory");
        goto done;
    }
    rc = 0;
done:
    sl_buf_free(&calls);
    return rc;
}
