/*
 * toolcall_request.c — validation of a chat request's tools, tool_choice and
 * parallel_tool_calls, with OpenAI-style messages naming the parameter.
 *
 * The platform's rules: at most 128 functions, names [a-zA-Z0-9_-]{1,64},
 * unique; type "function"; description a string; parameters a JSON Schema
 * object; strict a boolean; tool_choice auto | none | required |
 * {"type":"function","function":{"name"}} naming a given tool.
 */
#include "chat/toolcall_internal.h"

#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t errlen, char *param, size_t paramlen, const char *pname,
                const char *msg) {
    if (param && paramlen) snprintf(param, paramlen, "%s", pname);
    return sl_err(err, errlen, "%s", msg);
}

int tc_request_parse(const json_t *req, tc_request_t *out, char *err, size_t errlen, char *param,
                     size_t paramlen) {
    char pn[96], msg[256];
    memset(out, 0, sizeof *out);
    out->parallel = true;
    out->choice = TC_CHOICE_NONE;
    if (param && paramlen) param[0] = 0;

    const json_t *tools = json_object_get(req, "tools");
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools))
            return fail(err, errlen, param, paramlen, "tools",
                        "Invalid type for 'tools': expected an array of tool objects.");
        size_t n = json_array_size(tools);
        if (n == 0)
            return fail(err, errlen, param, paramlen, "tools",
                        "Invalid 'tools': empty array. Expected an array with minimum length 1.");
        if (n > TC_MAX_TOOLS) {
            snprintf(msg, sizeof msg,
                     "Invalid 'tools': array too long. Expected an array with maximum length %d, "
                     "but got an array with length %zu instead.",
                     TC_MAX_TOOLS, n);
            return fail(err, errlen, param, paramlen, "tools", msg);
        }
        for (size_t i = 0; i < n; i++) {
            const json_t *t = json_array_get(tools, i);
            if (!json_is_object(t)) {
                snprintf(pn, sizeof pn, "tools[%zu]", i);
                snprintf(msg, sizeof msg, "Invalid type for '%s': expected an object.", pn);
                return fail(err, errlen, param, paramlen, pn, msg);
            }
            const char *type = json_string_value(json_object_get(t, "type"));
            if (!type || strcmp(type, "function") != 0) {
                snprintf(pn, sizeof pn, "tools[%zu].type", i);
                snprintf(msg, sizeof msg, "Invalid value for '%s': expected 'function'.", pn);
                return fail(err, errlen, param, paramlen, pn, msg);
            }
            const json_t *fn = json_object_get(t, "function");
            if (!json_is_object(fn)) {
                snprintf(pn, sizeof pn, "tools[%zu].function", i);
                snprintf(msg, sizeof msg, "Missing required parameter: '%s'.", pn);
                return fail(err, errlen, param, paramlen, pn, msg);
            }
            const json_t *name = json_object_get(fn, "name");
            snprintf(pn, sizeof pn, "tools[%zu].function.name", i);
            if (!json_is_string(name)) {
                snprintf(msg, sizeof msg, "Missing required parameter: '%s'.", pn);
                return fail(err, errlen, param, paramlen, pn, msg);
            }
            const char *nm = json_string_value(name);
            if (!tc_name_valid(nm, json_string_length(name))) {
                snprintf(msg, sizeof msg,
                         "Invalid '%s': string does not match pattern. Expected a string that "
                         "matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
                         pn);
                return fail(err, errlen, param, paramlen, pn, msg);
            }
            for (size_t k = 0; k < i; k++) {
                const char *other = json_string_value(
                    json_object_get(json_object_get(json_array_get(tools, k), "function"), "name"));
                if (other && strcmp(other, nm) == 0) {
                    snprintf(msg, sizeof msg, "Invalid 'tools': duplicate function name '%s'.", nm);
                    return fail(err, errlen, param, paramlen, pn, msg);
                }
            }
            const json_t *d = json_object_get(fn, "description");
            if (d && !json_is_string(d) && !json_is_null(d)) {
                snprintf(pn, sizeof pn, "tools[%zu].function.description", i);
                snprintf(msg, sizeof msg, "Invalid type for '%s': expected a string.", pn);
                return fail(err, errlen, param, paramlen, pn, msg);
            }
            const json_t *ps = json_object_get(fn, "parameters");
            if (ps && !json_is_object(ps) && !json_is_null(ps)) {
                snprintf(pn, sizeof pn, "tools[%zu].function.parameters", i);
                snprintf(msg, sizeof msg, "Invalid type for '%s': expected a JSON Schema object.",
                         pn);
                return fail(err, errlen, param, paramlen, pn, msg);
            }
            const char *ptype = json_string_value(json_object_get(ps, "type"));
            if (ptype && strcmp(ptype, "object") != 0) {
                snprintf(pn, sizeof pn, "tools[%zu].function.parameters", i);
                snprintf(msg, sizeof msg,
                         "Invalid schema for function '%s': schema must be a JSON Schema of "
                         "'type: \"object\"', got 'type: \"%s\"'.",
                         nm, ptype);
                return fail(err, errlen, param, paramlen, pn, msg);
            }
            const json_t *strict = json_object_get(fn, "strict");
            if (strict && !json_is_boolean(strict) && !json_is_null(strict)) {
                snprintf(pn, sizeof pn, "tools[%zu].function.strict", i);
                snprintf(msg, sizeof msg, "Invalid type for '%s': expected a boolean.", pn);
                return fail(err, errlen, param, paramlen, pn, msg);
            }
        }
        out->tools = tools;
        out->n_tools = n;
        out->choice = TC_CHOICE_AUTO;
    }

    const json_t *tc = json_object_get(req, "tool_choice");
    if (tc && !json_is_null(tc)) {
        if (json_is_string(tc)) {
            const char *s = json_string_value(tc);
            if (strcmp(s, "none") == 0)
                out->choice = TC_CHOICE_NONE;
            else if (strcmp(s, "auto") == 0)
                out->choice = TC_CHOICE_AUTO;
            else if (strcmp(s, "required") == 0)
                out->choice = TC_CHOICE_REQUIRED;
            else
                return fail(
                    err, errlen, param, paramlen, "tool_choice",
                    "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
                    "an object {\"type\": \"function\", \"function\": {\"name\": ...}}.");
        } else if (json_is_object(tc)) {
            const char *type = json_string_value(json_object_get(tc, "type"));
            const char *nm =
                json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
            if (!type || strcmp(type, "function") != 0)
                return fail(err, errlen, param, paramlen, "tool_choice.type",
                            "Invalid value for 'tool_choice.type': expected 'function'.");
            if (!nm)
                return fail(err, errlen, param, paramlen, "tool_choice.function.name",
                            "Missing required parameter: 'tool_choice.function.name'.");
            if (!out->tools)
                return fail(err, errlen, param, paramlen, "tool_choice",
                            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                            "'tools' are specified.");
            size_t i;
            const json_t *t;
            bool found = false;
            json_array_foreach(out->tools, i, t) {
                const char *x =
                    json_string_value(json_object_get(json_object_get(t, "function"), "name"));
                if (x && strcmp(x, nm) == 0) found = true;
            }
            if (!found) {
                snprintf(msg, sizeof msg,
                         "Invalid value for 'tool_choice': no function named '%.64s' was specified "
                         "in the 'tools' parameter.",
                         nm);
                return fail(err, errlen, param, paramlen, "tool_choice", msg);
            }
            if (strlen(nm) > TC_MAX_NAME)
                return fail(err, errlen, param, paramlen, "tool_choice",
                            "Invalid 'tool_choice' name.");
            out->choice = TC_CHOICE_NAMED;
            snprintf(out->forced_name, sizeof out->forced_name, "%s", nm);
        } else {
            return fail(err, errlen, param, paramlen, "tool_choice",
                        "Invalid type for 'tool_choice': expected a string or an object.");
        }
        if (!out->tools && out->choice != TC_CHOICE_NONE)
            return fail(
                err, errlen, param, paramlen, "tool_choice",
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                "are specified.");
    }

    const json_t *par = json_object_get(req, "parallel_tool_calls");
    if (par && !json_is_null(par)) {
        if (!json_is_boolean(par))
            return fail(err, errlen, param, paramlen, "parallel_tool_calls",
                        "Invalid type for 'parallel_tool_calls': expected a boolean.");
        out->parallel = json_is_true(par);
    }
    return 0;
}
