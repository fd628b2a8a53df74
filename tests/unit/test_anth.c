/* deps: server sampling kernels base */
/*
 * test_anth.c — the Anthropic Messages API's pure parts: a request
 * translated into the chat request it means (system, content blocks,
 * tool_use / tool_result / thinking, prefill, tools, tool_choice, thinking,
 * output_config, scalars), every refused request a 400 naming the field,
 * chat parameter names mapped back, errors in Anthropic's statuses and
 * types, and the output side: content blocks, the SSE events written for
 * them (order, indexes, deltas), the message object and its usage.
 */
#include <stdlib.h>
#include <string.h>

#include "server/anth.h"
#include "test.h"
#include "test_json.h"

static int tr(const char *body, bool count, anth_req_t *r, oai_error_t *e) {
    json_t *b = J(body);
    int rc = anth_translate(b, count, r, e);
    json_decref(b);
    return rc;
}

/* The translated chat request parses as the chat route parses one. */
static bool chat_parses(const anth_req_t *r) {
    oai_req_t q;
    oai_error_t e;
    int rc = oai_parse_json(json_incref(r->chat), true, &q, &e);
    if (rc != 0) fprintf(stderr, "    chat request refused: %s (%s)\n", e.message, e.param);
    oai_req_free(&q);
    return rc == 0;
}

static void test_translate_basic(void) {
    anth_req_t r;
    oai_error_t e;
    CHECK(tr("{\"model\":\"m\",\"max_tokens\":7,\"system\":\"Be "
             "brief\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"Hi\"}],\"temperature\":0.5,\"top_p\":0.9,\"top_k\":5,\"stream\":true,"
             "\"stop_sequences\":[\"END\"],\"metadata\":{\"user_id\":\"u1\"},\"seed\":3,"
             "\"service_tier\":\"auto\",\"container\":null,\"mcp_servers\":[]}",
             false, &r, &e) == 0);
    CHECK(json_eq_text(r.chat, "{\"model\":\"m\",\"seed\":3,\"max_completion_tokens\":7,"
                               "\"temperature\":0.5,\"top_p\":0.9,\"top_k\":5,\"stream\":true,"
                               "\"stop\":[\"END\"],\"user\":\"u1\",\"messages\":[{\"role\":"
                               "\"system\",\"content\":\"Be brief\"},{\"role\":\"user\","
                               "\"content\":\"Hi\"}]}"));
    CHECK(r.stream);
    CHECK(chat_parses(&r));
    anth_req_free(&r);
    /* system as text blocks (cache_control ignored), user text blocks joined with "\n" */
    CHECK(tr("{\"model\":\"m\",\"max_tokens\":1,\"system\":[{\"type\":\"text\",\"text\":\"A\","
             "\"cache_control\":{\"type\":\"ephemeral\"}},{\"type\":\"text\",\"text\":\"B\"}],"
             "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"},"
             "{\"type\":\"text\",\"text\":\"y\"}]}]}",
             false, &r, &e) == 0);
    CHECK(json_eq_text(json_object_get(r.chat, "messages"),
                       "[{\"role\":\"system\",\"content\":\"A\\nB\"},{\"role\":\"user\","
                       "\"content\":\"x\\ny\"}]"));
    CHECK(!r.stream);
    anth_req_free(&r);
    /* count_tokens: no max_tokens, no stream */
    CHECK(tr("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":"
             "true}",
             true, &r, &e) == 0);
    CHECK(!json_object_get(r.chat, "max_completion_tokens") && !r.stream);
    anth_req_free(&r);
}

static void test_translate_tool_turns(void) {
    anth_req_t r;
    oai_error_t e;
    CHECK(
        tr("{\"model\":\"m\",\"max_tokens\":9,\"messages\":["
           "{\"role\":\"user\",\"content\":\"Weather?\"},"
           "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"t1\","
           "\"signature\":\"s\"},{\"type\":\"redacted_thinking\",\"data\":\"zz\"},"
           "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get\",\"input\":{\"city\":"
           "\"Paris\",\"n\":1}},{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"ping\","
           "\"input\":{}}]},"
           "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
           "\"content\":\"21C\"},{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\","
           "\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}],"
           "\"is_error\":true},{\"type\":\"text\",\"text\":\"Thanks\"}]}]}",
           false, &r, &e) == 0);
    CHECK(json_eq_text(
        json_object_get(r.chat, "messages"),
        "[{\"role\":\"user\",\"content\":\"Weather?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"t1\",\"tool_calls\":["
        "{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":"
        "\"{\\\"city\\\":\\\"Paris\\\",\\\"n\\\":1}\"}},"
        "{\"id\":\"toolu_2\",\"type\":\"function\",\"function\":{\"name\":\"ping\",\"arguments\":"
        "\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\",\"content\":\"21C\",\"name\":\"get\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_2\",\"content\":\"Error: a\\nb\",\"name\":"
        "\"ping\"},"
        "{\"role\":\"user\",\"content\":\"Thanks\"}]"));
    CHECK(chat_parses(&r));
    anth_req_free(&r);
    /* an assistant message with text and a call; a role system message */
    CHECK(tr("{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"system\",\"content\":"
             "[{\"type\":\"text\",\"text\":\"S\"}]},{\"role\":\"user\",\"content\":\"q\"},"
             "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Let me look.\"},"
             "{\"type\":\"tool_use\",\"id\":\"c\",\"name\":\"f\",\"input\":{}}]},"
             "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"c\"}]}]}",
             false, &r, &e) == 0);
    CHECK(json_eq_text(
        json_object_get(r.chat, "messages"),
        "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":\"Let me look.\",\"tool_calls\":[{\"id\":"
        "\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
        "\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"\","
        "\"name\":\"f\"}]"));
    anth_req_free(&r);
}

static void test_translate_prefill(void) {
    anth_req_t r;
    oai_error_t e;
    /* a last assistant message is the answer's start: prefix continuation */
    CHECK(
        tr("{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
           "{\"role\":\"assistant\",\"content\":\"The answer is\"}]}",
           false, &r, &e) == 0);
    CHECK(json_eq_text(json_array_get(json_object_get(r.chat, "messages"), 1),
                       "{\"role\":\"assistant\",\"content\":\"The answer is\",\"prefix\":true}"));
    CHECK(chat_parses(&r));
    anth_req_free(&r);
    /* an empty one is dropped */
    CHECK(
        tr("{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
           "{\"role\":\"assistant\",\"content\":[]}]}",
           false, &r, &e) == 0);
    CHECK(json_array_size(json_object_get(r.chat, "messages")) == 1);
    anth_req_free(&r);
}

static void test_translate_tools_thinking(void) {
    anth_req_t r;
    oai_error_t e;
    CHECK(
        tr("{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
           "\"tools\":[{\"input_schema\":{\"type\":\"object\"},\"name\":\"f\",\"description\":"
           "\"d\","
           "\"cache_control\":{\"type\":\"ephemeral\"}},{\"type\":\"custom\",\"name\":\"g\","
           "\"input_schema\":{\"type\":\"object\"},\"strict\":true}],"
           "\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":true},"
           "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024},"
           "\"output_config\":{\"effort\":\"high\",\"format\":{\"type\":\"json_schema\",\"schema\":"
           "{\"type\":\"object\"}}}}",
           false, &r, &e) == 0);
    /* the keys in the clients' order: templates print tools as JSON */
    char *tools = json_dumps(json_object_get(r.chat, "tools"), JSON_COMPACT);
    CHECK(tools &&
          !strcmp(tools, "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":"
                         "\"d\",\"parameters\":{\"type\":\"object\"}}},{\"type\":\"function\","
                         "\"function\":{\"name\":\"g\",\"parameters\":{\"type\":\"object\"},"
                         "\"strict\":true}}]"));
    free(tools);
    CHECK(json_eq_text(json_object_get(r.chat, "tool_choice"), "\"required\""));
    CHECK(json_is_false(json_object_get(r.chat, "parallel_tool_calls")));
    CHECK(json_integer_value(json_object_get(r.chat, "thinking_budget")) == 1024);
    CHECK(json_eq_text(json_object_get(r.chat, "chat_template_kwargs"),
                       "{\"enable_thinking\":true}"));
    CHECK(json_eq_text(json_object_get(r.chat, "response_format"),
                       "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"output\",\"schema\":{"
                       "\"type\":\"object\"}}}"));
    CHECK(chat_parses(&r));
    anth_req_free(&r);
    static const struct {
        const char *choice, *want;
    } tc[] = {
        {"{\"type\":\"auto\"}", "\"auto\""},
        {"{\"type\":\"none\"}", "\"none\""},
        {"{\"type\":\"tool\",\"name\":\"f\"}",
         "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(tc); i++) {
        char body[400];
        snprintf(body, sizeof body,
                 "{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":"
                 "\"q\"}],"
                 "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}],\"tool_"
                 "choice\":%s}",
                 tc[i].choice);
        CHECK(tr(body, false, &r, &e) == 0);
        CHECK(json_eq_text(json_object_get(r.chat, "tool_choice"), tc[i].want));
        CHECK(!json_object_get(r.chat, "parallel_tool_calls"));
        CHECK(chat_parses(&r));
        anth_req_free(&r);
    }
    /* thinking disabled: the template's switch off; an explicit kwarg wins */
    CHECK(
        tr("{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
           "\"thinking\":{\"type\":\"disabled\"}}",
           false, &r, &e) == 0);
    CHECK(json_eq_text(json_object_get(r.chat, "chat_template_kwargs"),
                       "{\"enable_thinking\":false}"));
    CHECK(!json_object_get(r.chat, "thinking_budget"));
    anth_req_free(&r);
    CHECK(
        tr("{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
           "\"thinking\":{\"type\":\"adaptive\"},\"chat_template_kwargs\":{\"enable_thinking\":"
           "false,"
           "\"x\":1}}",
           false, &r, &e) == 0);
    CHECK(json_eq_text(json_object_get(r.chat, "chat_template_kwargs"),
                       "{\"enable_thinking\":false,\"x\":1}"));
    anth_req_free(&r);
}

static void test_translate_errors(void) {
    static const struct {
        const char *body, *param;
    } bad[] = {
        {"[]", ""},
        {"{\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", "model"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
         "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":1.5,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]"
         "}",
         "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":1}", "messages"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[]}", "messages"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":{}}", "messages"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[7]}", "messages[0]"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"tool\",\"content\":\"q\"}]}",
         "messages[0].role"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"content\":\"q\"}]}",
         "messages[0].role"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\"}]}",
         "messages[0].content"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":5}]}",
         "messages[0].content"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"image\","
         "\"source\":{}}]}]}",
         "messages[0].content[0]"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"text\","
         "\"text\":\"a\"},{\"type\":\"document\",\"source\":{}}]}]}",
         "messages[0].content[1]"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"tool_result\","
         "\"tool_use_id\":\"c\",\"content\":[{\"type\":\"image\",\"source\":{}}]}]}]}",
         "messages[0].content[0].content[0]"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"tool_result\"}]}]}",
         "messages[0].content[0].tool_use_id"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"tool_result\","
         "\"tool_use_id\":\"c\",\"is_error\":1}]}]}",
         "messages[0].content[0].is_error"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"tool_use\","
         "\"id\":\"c\",\"name\":\"f\",\"input\":{}}]}]}",
         "messages[0].content[0].type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"text\":\"a\"}]}]}",
         "messages[0].content[0].type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"text\"}]}]}",
         "messages[0].content[0].text"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"assistant\",\"content\":[{"
         "\"type\":\"tool_use\","
         "\"name\":\"f\",\"input\":{}}]}]}",
         "messages[0].content[0].id"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"assistant\",\"content\":[{"
         "\"type\":\"tool_use\","
         "\"id\":\"c\",\"name\":\"f\",\"input\":\"{}\"}]}]}",
         "messages[0].content[0].input"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"assistant\",\"content\":[{"
         "\"type\":"
         "\"server_tool_use\",\"id\":\"c\",\"name\":\"web_search\",\"input\":{}}]}]}",
         "messages[0].content[0].type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"system\",\"content\":[{"
         "\"type\":\"tool_result\","
         "\"tool_use_id\":\"c\"}]}]}",
         "messages[0].content[0].type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"system\":[{\"type\":\"image\"}],\"messages\":[{"
         "\"role\":\"user\","
         "\"content\":\"q\"}]}",
         "system[0]"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"system\":5,\"messages\":[{\"role\":\"user\","
         "\"content\":\"q\"}]}",
         "system"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"bogus\":1}",
         "bogus"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"temperature\":1.5}",
         "temperature"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"top_k\":-1}",
         "top_k"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"stream\":1}",
         "stream"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"stop_sequences\":[1]}",
         "stop_sequences"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"metadata\":{"
         "\"user_id\":3}}",
         "metadata.user_id"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"mcp_servers\":[{}]}",
         "mcp_servers"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"context_management\":{}}",
         "context_management"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"tools\":[{\"type\":"
         "\"web_search_20250305\",\"name\":\"web_search\"}]}",
         "tools[0].type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"tools\":[{\"name\":\"f\"}]}",
         "tools[0].input_schema"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"tools\":[{"
         "\"input_schema\":{}}]}",
         "tools[0].name"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"tool_choice\":\"any\"}",
         "tool_choice"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"tool_choice\":{"
         "\"type\":\"required\"}}",
         "tool_choice.type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"tool_choice\":{"
         "\"type\":\"tool\"}}",
         "tool_choice.name"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"tool_choice\":{"
         "\"type\":\"auto\",\"disable_parallel_tool_use\":\"yes\"}}",
         "tool_choice.disable_parallel_tool_use"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"thinking\":{"
         "\"type\":\"on\"}}",
         "thinking.type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"thinking\":{"
         "\"type\":\"enabled\"}}",
         "thinking.budget_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"thinking\":{"
         "\"type\":\"enabled\",\"budget_tokens\":0}}",
         "thinking.budget_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"output_config\":{"
         "\"format\":{\"type\":\"text\"}}}",
         "output_config.format.type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
         "\"output_config\":{"
         "\"effort\":\"huge\"}}",
         "output_config.effort"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        anth_req_t r;
        oai_error_t e;
        memset(&e, 0, sizeof e);
        int rc = tr(bad[i].body, false, &r, &e);
        CHECK_MSG(rc == -1 && e.status == 400 && !strcmp(e.param, bad[i].param),
                  "%s: rc %d status %d param '%s'", bad[i].body, rc, e.status, e.param);
        CHECK_MSG(rc == 0 || strlen(e.message) > 10, "%s: message '%s'", bad[i].body, e.message);
        anth_req_free(&r);
    }
}

static void test_errors(void) {
    oai_error_t e;
    /* chat parameter names -> the Messages request's, in the message too */
    static const struct {
        const char *from, *to;
    } names[] = {
        {"max_completion_tokens", "max_tokens"},
        {"stop", "stop_sequences"},
        {"tools[2].function.name", "tools[2].name"},
        {"tools[0].function.parameters", "tools[0].input_schema"},
        {"tools[1].function.parameters.properties", "tools[1].input_schema.properties"},
        {"response_format.json_schema.schema", "output_config.format.schema"},
        {"thinking_budget", "thinking.budget_tokens"},
        {"tool_choice.function.name", "tool_choice.name"},
        {"messages", "messages"},
        {"temperature", "temperature"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++) {
        oai_fail(&e, 400, NULL, NULL, names[i].from, "Invalid '%s': no.", names[i].from);
        anth_error_param(&e);
        char want[200];
        snprintf(want, sizeof want, "Invalid '%s': no.", names[i].to);
        CHECK_MSG(!strcmp(e.param, names[i].to) && !strcmp(e.message, want), "%s -> %s / %s",
                  names[i].from, e.param, e.message);
    }
    /* statuses and types */
    static const struct {
        int status;
        const char *code;
        int want;
        const char *type;
    } st[] = {
        {400, "", 400, "invalid_request_error"},
        {401, "invalid_api_key", 401, "authentication_error"},
        {403, "insufficient_balance", 402, "billing_error"},
        {403, "account_disabled", 403, "permission_error"},
        {404, "model_not_found", 404, "not_found_error"},
        {405, "", 405, "invalid_request_error"},
        {413, "", 413, "request_too_large"},
        {429, "rate_limit_exceeded", 429, "rate_limit_error"},
        {500, "", 500, "api_error"},
        {503, "server_busy", 529, "overloaded_error"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(st); i++) {
        oai_fail(&e, st[i].status, NULL, st[i].code, NULL, "m");
        CHECK(anth_error_status(&e) == st[i].want);
        CHECK_MSG(!strcmp(anth_error_type(&e), st[i].type), "%d %s -> %s", st[i].status, st[i].code,
                  anth_error_type(&e));
    }
    oai_fail(&e, 401, NULL, "invalid_api_key", NULL, "Bad \"key\"");
    char *s = anth_error_json(&e, "req-1");
    json_t *v = s ? J(s) : NULL;
    CHECK(json_eq_text(
        v, "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":"
           "\"Bad \\\"key\\\"\"},\"request_id\":\"req-1\"}"));
    json_decref(v);
    free(s);
    s = anth_error_json(&e, NULL);
    v = s ? J(s) : NULL;
    CHECK(json_is_null(json_object_get(v, "request_id")));
    json_decref(v);
    free(s);
}

/* The events in o->ev (parsed, see sse_events); clears o->ev. */
static json_t *events(anth_out_t *o) {
    json_t *all = sse_events(&o->ev);
    sl_buf_clear(&o->ev);
    return all;
}

static void test_output(void) {
    anth_out_t o;
    anth_out_init(&o, true, 1);
    srv_usage_t u = {.prompt_tokens = 20, .cached_tokens = 16, .completion_tokens = 9};
    anth_out_start(&o, "msg_1", "m", &u);
    json_t *ev = events(&o);
    CHECK(json_eq_text(
        ev, "[{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
            "\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,"
            "\"stop_sequence\":null,\"usage\":{\"input_tokens\":4,"
            "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":16,"
            "\"output_tokens\":9}}},{\"type\":\"ping\"}]"));
    json_decref(ev);
    anth_out_text(&o, true, "hm", 2);
    anth_out_text(&o, true, "m", 1);
    anth_out_text(&o, false, "", 0); /* nothing */
    anth_out_text(&o, false, "Hi", 2);
    anth_out_call_start(&o, "get");
    anth_out_call_args(&o, "{\"a\":", 5);
    anth_out_call_args(&o, "1}", 2);
    anth_out_call_end(&o, true);
    anth_out_call_start(&o, "bad");
    anth_out_call_args(&o, "{\"a\"", 4);
    anth_out_call_end(&o, false);
    anth_out_finish(&o, "tool_use", NULL, &u);
    ev = events(&o);
    /* thinking, text, tool_use, tool_use: start / deltas / stop with indexes 0..3 */
    static const char *const want[] = {
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",  "content_block_start",
        "content_block_delta", "content_block_delta", "content_block_stop",  "content_block_start",
        "content_block_delta", "content_block_stop",  "message_delta",       "message_stop",
    };
    CHECK(json_array_size(ev) == SL_ARRAY_LEN(want));
    for (size_t i = 0; i < SL_ARRAY_LEN(want) && i < json_array_size(ev); i++)
        CHECK_MSG(
            !strcmp(json_string_value(json_object_get(json_array_get(ev, i), "type")), want[i]),
            "event %zu", i);
    CHECK(json_eq_text(json_array_get(ev, 0),
                       "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{"
                       "\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}"));
    CHECK(json_eq_text(json_array_get(ev, 2),
                       "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                       "\"thinking_delta\",\"thinking\":\"m\"}}"));
    CHECK(json_eq_text(json_array_get(ev, 5),
                       "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
                       "\"text_delta\",\"text\":\"Hi\"}}"));
    const json_t *tu = json_object_get(json_array_get(ev, 7), "content_block");
    CHECK(json_object_get(json_array_get(ev, 7), "index") &&
          json_integer_value(json_object_get(json_array_get(ev, 7), "index")) == 2);
    const char *id = json_string_value(json_object_get(tu, "id"));
    CHECK(id && strlen(id) == 30 && !strncmp(id, "toolu_", 6));
    CHECK(json_eq_text(json_object_get(tu, "input"), "{}") &&
          !strcmp(json_string_value(json_object_get(tu, "name")), "get"));
    CHECK(json_eq_text(json_array_get(ev, 9),
                       "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
                       "\"input_json_delta\",\"partial_json\":\"1}\"}}"));
    CHECK(json_eq_text(json_array_get(ev, 14),
                       "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_"
                       "sequence\":null},"
                       "\"usage\":{\"input_tokens\":4,\"cache_creation_input_tokens\":0,"
                       "\"cache_read_input_tokens\":16,\"output_tokens\":9}}"));
    json_decref(ev);
    /* the blocks as the message shows them; a malformed call keeps {} */
    CHECK(json_array_size(o.content) == 4);
    CHECK(json_eq_text(json_array_get(o.content, 0),
                       "{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"\"}"));
    CHECK(json_eq_text(json_array_get(o.content, 1), "{\"type\":\"text\",\"text\":\"Hi\"}"));
    CHECK(json_eq_text(json_object_get(json_array_get(o.content, 2), "input"), "{\"a\":1}"));
    CHECK(json_eq_text(json_object_get(json_array_get(o.content, 3), "input"), "{}"));
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(o.content, 2), "id")),
                 json_string_value(json_object_get(json_array_get(o.content, 3), "id"))) != 0);
    json_t *msg = anth_message("msg_1", "m", o.content, "tool_use", NULL, &u);
    CHECK(json_eq_text(json_object_get(msg, "usage"),
                       "{\"input_tokens\":4,\"cache_creation_input_tokens\":0,"
                       "\"cache_read_input_tokens\":16,\"output_tokens\":9}"));
    CHECK(json_equal(json_object_get(msg, "content"), o.content));
    CHECK(!strcmp(json_string_value(json_object_get(msg, "stop_reason")), "tool_use"));
    CHECK(json_is_null(json_object_get(msg, "stop_sequence")));
    json_decref(msg);
    anth_out_error(&o, "api_error", "boom");
    ev = events(&o);
    CHECK(json_eq_text(
        ev, "[{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}]"));
    json_decref(ev);
    anth_out_free(&o);

    /* not streaming: no events, the same blocks */
    anth_out_init(&o, false, 2);
    anth_out_text(&o, false, "a", 1);
    anth_out_text(&o, false, "b", 1);
    anth_out_finish(&o, "stop_sequence", "END", &u);
    CHECK(o.ev.len == 0);
    CHECK(json_eq_text(o.content, "[{\"type\":\"text\",\"text\":\"ab\"}]"));
    anth_out_free(&o);

    /* stop reasons */
    CHECK(!strcmp(anth_stop_reason("length", NULL), "max_tokens"));
    CHECK(!strcmp(anth_stop_reason("length", "x"), "max_tokens"));
    CHECK(!strcmp(anth_stop_reason("tool_calls", NULL), "tool_use"));
    CHECK(!strcmp(anth_stop_reason("stop", "x"), "stop_sequence"));
    CHECK(!strcmp(anth_stop_reason("stop", NULL), "end_turn"));
    /* cached never exceeds the prompt */
    srv_usage_t odd = {.prompt_tokens = 3, .cached_tokens = 5};
    json_t *us = anth_usage(&odd);
    CHECK(json_integer_value(json_object_get(us, "input_tokens")) == 0 &&
          json_integer_value(json_object_get(us, "cache_read_input_tokens")) == 3);
    json_decref(us);
}

int main(void) {
    RUN(test_translate_basic);
    RUN(test_translate_tool_turns);
    RUN(test_translate_prefill);
    RUN(test_translate_tools_thinking);
    RUN(test_translate_errors);
    RUN(test_errors);
    RUN(test_output);
    return test_summary();
}
