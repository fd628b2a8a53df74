/*
 * oai_format.c — the structured-output parameters of a generation request
 * (see oai.h): response_format {"type": "text" | "json_object" |
 * "json_schema", "json_schema": {"name", "schema", "strict", "description"}},
 * and the extensions `grammar` (GBNF text), `regex`, and vLLM's spellings
 * `guided_json` (a schema), `guided_regex`, `guided_grammar`.
 *
 * Only the shape is checked here (pure, unit-tested); whether the schema /
 * grammar compiles — and every unsupported keyword — is decided when its
 * index is built (off the I/O thread), which answers 400 before any output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/grammar.h"
#include "server/oai.h"


static int wrong_type(oai_error_t *e, const char *param, const char *want, const json_t *v) {
    return oai_fail(e, 400, NULL, "invalid_type", param, "Invalid type for '%s': expected %s, but got %s instead.",
                    param, want, oai_json_kind(v));
}

/* A schema as the text the grammar cache is keyed by: compact JSON, keys in
 * the order given (jansson keeps insertion order). Sorting the keys would
 * make more equal schemas share an index, but it would also reorder
 * `properties`, whose order is the order the output follows. */
static int set_schema(oai_req_t *r, const json_t *schema, const char *param, oai_error_t *e) {
    if (json_is_true(schema)) { /* the schema `true`: any JSON value */
        r->gram_kind = GRAM_SRC_JSON_ANY;
        snprintf(r->gram_param, sizeof r->gram_param, "%s", param);
        return 0;
    }
    if (json_is_false(schema))
        return oai_fail(e, 400, NULL, "invalid_value", param,
                        "Invalid '%s': the schema false accepts no output at all.", param);
    if (!json_is_object(schema)) return wrong_type(e, param, "a JSON Schema object", schema);
    char *t = json_dumps(schema, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!t) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    r->gram_kind = GRAM_SRC_JSON_SCHEMA;
    r->gram_text = t;
    r->gram_len = strlen(t);
    snprintf(r->gram_param, sizeof r->gram_param, "%s", param);
    return 0;
}

static int set_text(oai_req_t *r, int kind, const json_t *v, const char *param, oai_error_t *e) {
    if (!json_is_string(v)) return wrong_type(e, param, "a string", v);
    if (json_string_length(v) == 0)
        return oai_fail(e, 400, NULL, "invalid_value", param, "Invalid value for '%s': it is empty.", param);
    r->gram_text = sl_strndup(json_string_value(v), json_string_length(v));
    if (!r->gram_text) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    r->gram_kind = kind;
    r->gram_len = json_string_length(v);
    snprintf(r->gram_param, sizeof r->gram_param, "%s", param);
    return 0;
}

static int parse_response_format(const json_t *rf, oai_req_t *r, oai_error_t *e) {
    if (!json_is_object(rf)) return wrong_type(e, "response_format", "an object", rf);
    json_t *type = json_object_get(rf, "type");
    if (!type || json_is_null(type))
        return oai_fail(e, 400, NULL, "missing_required_parameter", "response_format.type",
                        "Missing required parameter: 'response_format.type'.");
    if (!json_is_string(type)) return wrong_type(e, "response_format.type", "a string", type);
    const char *t = json_string_value(type);
    if (!strcmp(t, "text")) return 0;
    if (!strcmp(t, "json_object")) {
        r->gram_kind = GRAM_SRC_JSON_OBJECT;
        snprintf(r->gram_param, sizeof r->gram_param, "response_format");
        return 0;
    }
    if (strcmp(t, "json_schema") != 0)
        return oai_fail(e, 400, NULL, "invalid_value", "response_format.type",
                        "Invalid value: '%.40s'. Supported values are: 'text', 'json_object', and 'json_schema'.",
                        t);
    json_t *js = json_object_get(rf, "json_schema");
    if (!js || json_is_null(js))
        return oai_fail(e, 400, NULL, "missing_required_parameter", "response_format.json_schema",
                        "Missing required parameter: 'response_format.json_schema'.");
    if (!json_is_object(js)) return wrong_type(e, "response_format.json_schema", "an object", js);
    json_t *name = json_object_get(js, "name");
    if (!name || json_is_null(name))
        return oai_fail(e, 400, NULL, "missing_required_parameter", "response_format.json_schema.name",
                        "Missing required parameter: 'response_format.json_schema.name'.");
    if (!json_is_string(name)) return wrong_type(e, "response_format.json_schema.name", "a string", name);
    const char *nm = json_string_value(name);
    size_t nl = json_string_length(name);
    bool ok = nl >= 1 && nl <= 64;
    for (size_t i = 0; ok && i < nl; i++) {
        const char c = nm[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    }
    if (!ok)
        return oai_fail(e, 400, NULL, "invalid_value", "response_format.json_schema.name",
                        "Invalid 'response_format.json_schema.name': '%.80s'. It must be 1 to 64 characters "
                        "of a-z, A-Z, 0-9, underscores and dashes.",
                        nm);
    json_t *strict = json_object_get(js, "strict");
    if (strict && !json_is_null(strict) && !json_is_boolean(strict))
        return wrong_type(e, "response_format.json_schema.strict", "a boolean", strict);
    json_t *desc = json_object_get(js, "description");
    if (desc && !json_is_null(desc) && !json_is_string(desc))
        return wrong_type(e, "response_format.json_schema.description", "a string", desc);
    snprintf(r->gram_name, sizeof r->gram_name, "%s", nm);
    json_t *schema = json_object_get(js, "schema");
    if (!schema || json_is_null(schema)) {
        /* no schema: any JSON value ({} as a schema) */
        r->gram_kind = GRAM_SRC_JSON_ANY;
        snprintf(r->gram_param, sizeof r->gram_param, "response_format.json_schema.schema");
        return 0;
    }
    return set_schema(r, schema, "response_format.json_schema.schema", e);
}

int oai_parse_format(const json_t *b, oai_req_t *r, oai_error_t *e) {
    static const char *const keys[] = {"response_format", "grammar", "regex", "guided_json", "guided_regex",
                                       "guided_grammar"};
    const char *given = NULL;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        json_t *v = json_object_get(b, keys[i]);
        if (!v || json_is_null(v)) continue;
        /* response_format text is no constraint: it combines with nothing else either way */
        if (i == 0 && json_is_object(v) && json_is_string(json_object_get(v, "type")) &&
            !strcmp(json_string_value(json_object_get(v, "type")), "text"))
            continue;
        if (given)
            return oai_fail(e, 400, NULL, "invalid_value", keys[i],
                            "'%s' cannot be combined with '%s': give one output constraint.", keys[i], given);
        given = keys[i];
        int rc;
        switch (i) {
        case 0: rc = parse_response_format(v, r, e); break;
        case 1: rc = set_text(r, GRAM_SRC_GBNF, v, keys[i], e); break;
        case 2: rc = set_text(r, GRAM_SRC_REGEX, v, keys[i], e); break;
        case 3:
            if (json_is_string(v)) { /* vLLM also takes the schema as JSON text */
                json_error_t je;
                json_t *s = json_loads(json_string_value(v), 0, &je);
                if (!s)
                    return oai_fail(e, 400, NULL, "invalid_value", keys[i], "Invalid 'guided_json': %s",
                                    je.text);
                rc = set_schema(r, s, keys[i], e);
                json_decref(s);
            } else {
                rc = set_schema(r, v, keys[i], e);
            }
            break;
        case 4: rc = set_text(r, GRAM_SRC_REGEX, v, keys[i], e); break;
        default: rc = set_text(r, GRAM_SRC_GBNF, v, keys[i], e); break;
        }
        if (rc != 0) return -1;
    }
    return 0;
}
