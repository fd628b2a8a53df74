/* deps: server sampling kernels base */
/*
 * test_structured.c — the structured-output request parameters
 * (server/oai_format.c through oai_parse): which source kind and text each
 * form gives, and a 400 naming the parameter for every malformed shape.
 */
#include <string.h>

#include "grammar/grammar.h"
#include "server/oai.h"
#include "test.h"

static int parse(const char *body, bool chat, oai_req_t *r, oai_error_t *e) {
    return oai_parse(body, strlen(body), chat, r, e);
}

#define CHAT "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
#define CMPL "{\"model\":\"m\",\"prompt\":\"x\","

static void test_kinds(void) {
    oai_req_t r;
    oai_error_t e;
    CHECK(parse(CHAT "\"response_format\":{\"type\":\"json_object\"}}", true, &r, &e) == 0);
    CHECK(r.gram_kind == GRAM_SRC_JSON_OBJECT && strcmp(r.gram_param, "response_format") == 0);
    oai_req_free(&r);
    CHECK(parse(CHAT "\"response_format\":{\"type\":\"text\"}}", true, &r, &e) == 0);
    CHECK(r.gram_kind == 0);
    oai_req_free(&r);
    CHECK(parse(CMPL "\"response_format\":null}", false, &r, &e) == 0);
    CHECK(r.gram_kind == 0);
    oai_req_free(&r);
    /* the schema text keeps the declared key order (it is the output's order), compact */
    CHECK(parse(CMPL "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a_b-1\",\"strict\":true,"
                     "\"schema\":{ \"type\" : \"object\", \"properties\": {\"z\":{\"type\":\"integer\"}, \"a\":{}}}}}}",
                false, &r, &e) == 0);
    CHECK(r.gram_kind == GRAM_SRC_JSON_SCHEMA);
    CHECK_MSG(r.gram_text && strcmp(r.gram_text, "{\"type\":\"object\",\"properties\":{\"z\":{\"type\":\"integer\"},\"a\":{}}}") == 0,
              "%s", r.gram_text ? r.gram_text : "(null)");
    CHECK(r.gram_len == strlen(r.gram_text));
    CHECK(strcmp(r.gram_name, "a_b-1") == 0);
    CHECK(strcmp(r.gram_param, "response_format.json_schema.schema") == 0);
    oai_req_free(&r);
    CHECK(parse(CHAT "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\"}}}", true, &r, &e) == 0);
    CHECK(r.gram_kind == GRAM_SRC_JSON_ANY);
    oai_req_free(&r);
    CHECK(parse(CHAT "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\",\"schema\":true}}}", true, &r, &e) == 0);
    CHECK(r.gram_kind == GRAM_SRC_JSON_ANY);
    oai_req_free(&r);
    CHECK(parse(CMPL "\"grammar\":\"root ::= \\\"a\\\"\"}", false, &r, &e) == 0);
    CHECK(r.gram_kind == GRAM_SRC_GBNF && strcmp(r.gram_text, "root ::= \"a\"") == 0 && strcmp(r.gram_param, "grammar") == 0);
    oai_req_free(&r);
    CHECK(parse(CHAT "\"regex\":\"[0-9]+\"}", true, &r, &e) == 0);
    CHECK(r.gram_kind == GRAM_SRC_REGEX && strcmp(r.gram_text, "[0-9]+") == 0);
    oai_req_free(&r);
    CHECK(parse(CMPL "\"guided_json\":\"{\\\"type\\\":\\\"integer\\\"}\"}", false, &r, &e) == 0);
    CHECK(r.gram_kind == GRAM_SRC_JSON_SCHEMA && strcmp(r.gram_text, "{\"type\":\"integer\"}") == 0);
    oai_req_free(&r);
    CHECK(parse(CMPL "\"guided_json\":{\"type\":\"integer\"}}", false, &r, &e) == 0);
    CHECK(r.gram_kind == GRAM_SRC_JSON_SCHEMA);
    oai_req_free(&r);
    CHECK(parse(CMPL "\"guided_regex\":\"a|b\",\"response_format\":{\"type\":\"text\"}}", false, &r, &e) == 0);
    CHECK(r.gram_kind == GRAM_SRC_REGEX && strcmp(r.gram_param, "guided_regex") == 0);
    oai_req_free(&r);
    CHECK(parse(CMPL "\"guided_grammar\":\"root ::= [a-z]+\"}", false, &r, &e) == 0);
    CHECK(r.gram_kind == GRAM_SRC_GBNF);
    oai_req_free(&r);
}

static void test_errors(void) {
    static const struct {
        const char *extra, *param;
    } bad[] = {
        {"\"response_format\":\"json\"", "response_format"},
        {"\"response_format\":{}", "response_format.type"},
        {"\"response_format\":{\"type\":1}", "response_format.type"},
        {"\"response_format\":{\"type\":\"yaml\"}", "response_format.type"},
        {"\"response_format\":{\"type\":\"json_schema\"}", "response_format.json_schema"},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":[]}", "response_format.json_schema"},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{}}}", "response_format.json_schema.name"},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"\",\"schema\":{}}}", "response_format.json_schema.name"},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a b\",\"schema\":{}}}", "response_format.json_schema.name"},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"schema\":\"{}\"}}", "response_format.json_schema.schema"},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"strict\":1}}", "response_format.json_schema.strict"},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"description\":2}}", "response_format.json_schema.description"},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"schema\":false}}", "response_format.json_schema.schema"},
        {"\"grammar\":5", "grammar"},
        {"\"grammar\":\"\"", "grammar"},
        {"\"regex\":[]", "regex"},
        {"\"guided_json\":\"{not json\"", "guided_json"},
        {"\"guided_json\":7", "guided_json"},
        {"\"grammar\":\"root ::= [a]\",\"regex\":\"a\"", "regex"},
        {"\"response_format\":{\"type\":\"json_object\"},\"guided_regex\":\"a\"", "guided_regex"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        for (int chat = 0; chat < 2; chat++) {
            char body[512];
            snprintf(body, sizeof body, "%s%s}", chat ? CHAT : CMPL, bad[i].extra);
            oai_req_t r;
            oai_error_t e;
            int rc = parse(body, chat, &r, &e);
            CHECK_MSG(rc == -1 && e.status == 400, "%s accepted", body);
            if (rc == -1) CHECK_MSG(strcmp(e.param, bad[i].param) == 0, "%s: param '%s', message %s", body, e.param, e.message);
            oai_req_free(&r);
        }
    }
}

int main(void) {
    RUN(test_kinds);
    RUN(test_errors);
    return test_summary();
}
