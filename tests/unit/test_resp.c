/* deps: server sampling kernels base */
/*
 * test_resp.c — the Responses API's pure parts: a request translated into
 * the chat request it means (messages, tools, formats, the echo), every
 * refused field a 400 naming it, chat parameter names mapped back, the
 * output items and the SSE events written for them (order, fields,
 * sequence numbers), input_items pagination, and the in-memory LRU store.
 */
#include <stdlib.h>
#include <string.h>

#include "server/resp.h"
#include "server/resp_store.h"
#include "test.h"
#include "test_json.h"

/* Translates body (JSON text) with prev (JSON text or NULL); the chat
 * request as compact JSON into out (cap bytes). 0 or -1 with *e. */
static int tr(const char *body, const char *prev, resp_req_t *r, oai_error_t *e) {
    json_t *b = J(body), *p = prev ? J(prev) : NULL;
    int rc = resp_translate(b, p, 42, r, e);
    json_decref(b);
    json_decref(p);
    return rc;
}

static void test_translate_basic(void) {
    resp_req_t r;
    oai_error_t e;
    CHECK(tr("{\"model\":\"m\",\"input\":\"Hi\",\"instructions\":\"Be "
             "brief\",\"max_output_tokens\":7,"
             "\"temperature\":0.5,\"top_p\":0.9,\"user\":\"u1\",\"seed\":3,\"stream\":true,"
             "\"metadata\":{\"k\":\"v\"}}",
             NULL, &r, &e) == 0);
    CHECK(json_eq_text(
        json_object_get(r.chat, "messages"),
        "[{\"role\":\"system\",\"content\":\"Be brief\"},{\"role\":\"user\",\"content\":\"Hi\"}]"));
    CHECK(json_integer_value(json_object_get(r.chat, "max_completion_tokens")) == 7);
    CHECK(json_integer_value(json_object_get(r.chat, "seed")) ==
          3); /* an extension passes through */
    CHECK(json_is_true(json_object_get(r.chat, "stream")) && r.stream);
    CHECK(r.store); /* the default */
    CHECK(!json_object_get(r.chat, "max_output_tokens") &&
          !json_object_get(r.chat, "instructions"));
    /* the echo: the given fields, OpenAI's defaults for the rest */
    CHECK(json_eq_text(json_object_get(r.echo, "metadata"), "{\"k\":\"v\"}"));
    CHECK(!strcmp(json_string_value(json_object_get(r.echo, "instructions")), "Be brief"));
    CHECK(json_eq_text(json_object_get(r.echo, "text"), "{\"format\":{\"type\":\"text\"}}"));
    CHECK(!strcmp(json_string_value(json_object_get(r.echo, "tool_choice")), "auto"));
    CHECK(json_is_true(json_object_get(r.echo, "store")));
    CHECK(json_is_null(json_object_get(r.echo, "previous_response_id")));
    /* the input as one user message item with an id */
    CHECK(json_array_size(r.input) == 1 && json_array_size(r.context) == 1);
    const json_t *it = json_array_get(r.input, 0);
    CHECK(!strncmp(json_string_value(json_object_get(it, "id")), "msg_", 4));
    CHECK(json_eq_text(json_object_get(it, "content"),
                       "[{\"type\":\"input_text\",\"text\":\"Hi\"}]"));
    resp_req_free(&r);
}

static void test_translate_items(void) {
    resp_req_t r;
    oai_error_t e;
    /* parts joined; developer is system; an assistant message and the call
     * after it make one assistant message; the call output is a tool
     * message carrying the function's name; reasoning is the assistant
     * message's reasoning_content */
    CHECK(tr("{\"model\":\"m\",\"input\":["
             "{\"role\":\"developer\",\"content\":\"Rules\"},"
             "{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\","
             "\"text\":\"a\"},"
             "{\"type\":\"input_text\",\"text\":\"b\"}]},"
             "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[],\"content\":[{\"type\":"
             "\"reasoning_text\","
             "\"text\":\"hmm\"}]},"
             "{\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Let me "
             "look.\"}]},"
             "{\"type\":\"function_call\",\"call_id\":\"call_1\",\"name\":\"get_weather\","
             "\"arguments\":\"{}\"},"
             "{\"type\":\"function_call\",\"call_id\":\"call_2\",\"name\":\"get_time\","
             "\"arguments\":\"{}\"},"
             "{\"type\":\"function_call_output\",\"call_id\":\"call_1\",\"output\":\"sunny\"}]}",
             NULL, &r, &e) == 0);
    CHECK(json_eq_text(
        json_object_get(r.chat, "messages"),
        "[{\"role\":\"system\",\"content\":\"Rules\"},{\"role\":\"user\",\"content\":\"ab\"},"
        "{\"role\":\"assistant\",\"content\":\"Let me "
        "look.\",\"reasoning_content\":\"hmm\",\"tool_calls\":["
        "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{}\"}},"
        "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"get_time\","
        "\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny\",\"name\":\"get_"
        "weather\"}]"));
    CHECK(json_array_size(r.input) == 7);
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(r.input, 2), "id")),
                  "rs_1")); /* ids kept */
    resp_req_free(&r);

    /* a call with no message before it is an assistant message of its own
     * (with the reasoning before it); reasoning with no assistant turn
     * after it is dropped */
    CHECK(tr("{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":\"q\"},"
             "{\"type\":\"reasoning\",\"summary\":[],\"content\":[{\"type\":\"reasoning_text\","
             "\"text\":\"r1\"}]},"
             "{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":\"{"
             "\\\"a\\\":1}\"},"
             "{\"type\":\"reasoning\",\"summary\":[],\"content\":[{\"type\":\"reasoning_text\","
             "\"text\":\"r2\"}]},"
             "{\"role\":\"user\",\"content\":\"next\"}]}",
             NULL, &r, &e) == 0);
    CHECK(json_eq_text(
        json_object_get(r.chat, "messages"),
        "[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"r1\",\"tool_calls\":[{"
        "\"id\":\"c\","
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},"
        "{\"role\":\"user\",\"content\":\"next\"}]"));
    resp_req_free(&r);
}

/* previous_response_id: the stored conversation comes first; its
 * instructions do not carry over; the input items are only this request's. */
static void test_translate_previous(void) {
    resp_req_t r;
    oai_error_t e;
    const char *prev = "[{\"type\":\"message\",\"id\":\"msg_1\",\"role\":\"user\",\"content\":[{"
                       "\"type\":\"input_text\","
                       "\"text\":\"one\"}]},{\"type\":\"message\",\"id\":\"msg_2\",\"role\":"
                       "\"assistant\",\"status\":"
                       "\"completed\",\"content\":[{\"type\":\"output_text\",\"text\":\"two\","
                       "\"annotations\":[]}]}]";
    CHECK(tr("{\"model\":\"m\",\"input\":\"three\",\"previous_response_id\":\"resp_x\","
             "\"instructions\":\"I\"}",
             prev, &r, &e) == 0);
    CHECK(json_eq_text(
        json_object_get(r.chat, "messages"),
        "[{\"role\":\"system\",\"content\":\"I\"},{\"role\":\"user\",\"content\":\"one\"},"
        "{\"role\":\"assistant\",\"content\":\"two\"},{\"role\":\"user\",\"content\":\"three\"}]"));
    CHECK(json_array_size(r.input) == 1 && json_array_size(r.context) == 3);
    CHECK(!strcmp(json_string_value(json_object_get(r.echo, "previous_response_id")), "resp_x"));
    resp_req_free(&r);
    /* with a previous response, input may be left out */
    CHECK(tr("{\"model\":\"m\",\"previous_response_id\":\"resp_x\"}", prev, &r, &e) == 0);
    CHECK(json_array_size(json_object_get(r.chat, "messages")) == 2);
    resp_req_free(&r);
}

static void test_translate_tools_formats(void) {
    resp_req_t r;
    oai_error_t e;
    CHECK(tr("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\","
             "\"description\":\"d\","
             "\"parameters\":{\"type\":\"object\"}}],\"tool_choice\":{\"type\":\"function\","
             "\"name\":\"f\"},"
             "\"parallel_tool_calls\":false,\"text\":{\"format\":{\"type\":\"json_schema\","
             "\"name\":\"s\",\"schema\":"
             "{\"type\":\"object\"},\"strict\":true}},\"reasoning\":{\"effort\":\"none\"}}",
             NULL, &r, &e) == 0);
    CHECK(json_eq_text(
        json_object_get(r.chat, "tools"),
        "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"d\",\"parameters\":"
        "{\"type\":\"object\"}}}]"));
    CHECK(json_eq_text(json_object_get(r.chat, "tool_choice"),
                       "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}"));
    CHECK(json_is_false(json_object_get(r.chat, "parallel_tool_calls")));
    CHECK(json_eq_text(json_object_get(r.chat, "response_format"),
                       "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"s\",\"schema\":{"
                       "\"type\":\"object\"},"
                       "\"strict\":true}}"));
    CHECK(json_eq_text(json_object_get(r.chat, "chat_template_kwargs"),
                       "{\"enable_thinking\":false}"));
    /* the echo keeps the Responses shapes, strict defaulting to true */
    CHECK(json_eq_text(
        json_object_get(r.echo, "tools"),
        "[{\"type\":\"function\",\"name\":\"f\",\"description\":\"d\",\"parameters\":{\"type\":"
        "\"object\"},\"strict\":true}]"));
    CHECK(json_eq_text(json_object_get(r.echo, "tool_choice"),
                       "{\"type\":\"function\",\"name\":\"f\"}"));
    CHECK(json_eq_text(json_object_get(r.echo, "reasoning"),
                       "{\"effort\":\"none\",\"summary\":null}"));
    resp_req_free(&r);
    CHECK(tr("{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_object\"}},"
             "\"store\":false}",
             NULL, &r, &e) == 0);
    CHECK(json_eq_text(json_object_get(r.chat, "response_format"), "{\"type\":\"json_object\"}"));
    CHECK(!r.store && json_is_false(json_object_get(r.echo, "store")));
    resp_req_free(&r);
}

/* Every refused request: status, param, code. */
static void test_translate_errors(void) {
    static const struct {
        const char *body;
        int status;
        const char *param, *code;
    } cases[] = {
        {"{\"model\":\"m\",\"input\":\"x\",\"foo\":1}", 400, "foo", "unknown_parameter"},
        {"{\"model\":\"m\",\"input\":\"x\",\"messages\":[]}", 400, "messages", "unknown_parameter"},
        {"{\"input\":\"x\"}", 400, "model", "missing_required_parameter"},
        {"{\"model\":\"m\"}", 400, "input", "missing_required_parameter"},
        {"{\"model\":\"m\",\"input\":[]}", 400, "input", "invalid_value"},
        {"{\"model\":\"m\",\"input\":5}", 400, "input", "invalid_type"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\","
         "\"image_url\":\"u\"}]}]}",
         400, "input[0].content[0]", "unsupported_content"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\","
         "\"content\":[{\"type\":"
         "\"input_text\",\"text\":\"t\"},{\"type\":\"input_file\",\"file_id\":\"f\"}]}]}",
         400, "input[1].content[1]", "unsupported_content"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"tool\",\"content\":\"a\"}]}", 400,
         "input[0].role", "invalid_value"},
        {"{\"model\":\"m\",\"input\":[{\"content\":\"a\"}]}", 400, "input[0].role",
         "missing_required_parameter"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"item_reference\",\"id\":\"x\"}]}", 400,
         "input[0].type", "invalid_value"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\"}"
         "]}",
         400, "input[0].arguments", "missing_required_parameter"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"function_call_output\",\"call_id\":\"c\","
         "\"output\":7}]}",
         400, "input[0].output", "invalid_type"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"web_search\"}]}", 400,
         "tools[0].type", "unsupported_tool"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\"}]}", 400,
         "tools[0].name", "missing_required_parameter"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":{\"type\":\"web_search_preview\"}}", 400,
         "tool_choice.type", "unsupported_tool"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":\"always\"}", 400, "tool_choice",
         "invalid_value"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":"
         "\"s\"}}}",
         400, "text.format.schema", "missing_required_parameter"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"xml\"}}}", 400,
         "text.format.type", "invalid_value"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"fmt\":{}}}", 400, "text.fmt",
         "unknown_parameter"},
        {"{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":0}", 400, "max_output_tokens",
         "integer_below_min_value"},
        {"{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":\"5\"}", 400, "max_output_tokens",
         "invalid_type"},
        {"{\"model\":\"m\",\"input\":\"x\",\"temperature\":\"hot\"}", 400, "temperature",
         "invalid_type"},
        {"{\"model\":\"m\",\"input\":\"x\",\"store\":1}", 400, "store", "invalid_type"},
        {"{\"model\":\"m\",\"input\":\"x\",\"metadata\":{\"a\":1}}", 400, "metadata",
         "invalid_type"},
        {"{\"model\":\"m\",\"input\":\"x\",\"previous_response_id\":7}", 400,
         "previous_response_id", "invalid_type"},
        {"{\"model\":\"m\",\"input\":\"x\",\"background\":true}", 400, "background",
         "unsupported_parameter"},
        {"{\"model\":\"m\",\"input\":\"x\",\"conversation\":\"conv_1\"}", 400, "conversation",
         "unsupported_parameter"},
        {"{\"model\":\"m\",\"input\":\"x\",\"include\":[\"message.output_text.logprobs\"]}", 400,
         "include[0]", "unsupported_parameter"},
        {"{\"model\":\"m\",\"input\":\"x\",\"reasoning\":{\"effort\":\"max\"}}", 400,
         "reasoning.effort", "invalid_value"},
        {"{\"model\":\"m\",\"input\":\"x\",\"stream_options\":{}}", 400, "stream_options",
         "invalid_value"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        resp_req_t r;
        oai_error_t e;
        memset(&e, 0, sizeof e);
        int rc = tr(cases[i].body, NULL, &r, &e);
        CHECK_MSG(rc == -1 && e.status == cases[i].status && !strcmp(e.param, cases[i].param) &&
                      !strcmp(e.code, cases[i].code),
                  "case %zu: rc %d status %d param '%s' code '%s' (%s)", i, rc, e.status, e.param,
                  e.code, e.message);
        resp_req_free(&r);
    }
    /* 17 metadata pairs, a 65-character key, a 513-character value */
    json_t *b = J("{\"model\":\"m\",\"input\":\"x\"}");
    json_t *md = json_object();
    for (int k = 0; k < 17; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        json_object_set_new(md, key, json_string("v"));
    }
    json_object_set_new(b, "metadata", md);
    resp_req_t r;
    oai_error_t e;
    CHECK(resp_translate(b, NULL, 1, &r, &e) == -1 && !strcmp(e.param, "metadata"));
    resp_req_free(&r);
    char big[600];
    memset(big, 'a', sizeof big);
    big[513] = '\0';
    json_object_set_new(b, "metadata", json_pack("{s:s}", "k", big));
    CHECK(resp_translate(b, NULL, 1, &r, &e) == -1 && !strcmp(e.param, "metadata"));
    resp_req_free(&r);
    big[512] = '\0';
    json_object_set_new(b, "metadata", json_pack("{s:s}", "k", big));
    CHECK(resp_translate(b, NULL, 1, &r, &e) == 0);
    resp_req_free(&r);
    big[65] = '\0';
    json_object_set_new(b, "metadata", json_pack("{s:s}", big, "v"));
    CHECK(resp_translate(b, NULL, 1, &r, &e) == -1 && !strcmp(e.param, "metadata"));
    resp_req_free(&r);
    json_decref(b);
}

static void test_error_param(void) {
    static const char *const map[][2] = {
        {"messages", "input"},
        {"messages[2].content", "input[2].content"},
        {"max_completion_tokens", "max_output_tokens"},
        {"max_tokens", "max_output_tokens"},
        {"tools[3].function.parameters", "tools[3].parameters"},
        {"tools[0].function.name", "tools[0].name"},
        {"response_format.json_schema.schema", "text.format.schema"},
        {"response_format", "text.format"},
        {"tool_choice.function.name", "tool_choice.name"},
        {"temperature", "temperature"},
        {"messages_x", "messages_x"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(map); i++) {
        oai_error_t e;
        oai_fail(&e, 400, NULL, NULL, map[i][0], "Invalid '%s': no.", map[i][0]);
        resp_error_param(&e);
        char want[160];
        snprintf(want, sizeof want, "Invalid '%s': no.", map[i][1]);
        CHECK_MSG(!strcmp(e.param, map[i][1]) && !strcmp(e.message, want), "%s -> %s / %s",
                  map[i][0], e.param, e.message);
    }
}

static const char *type_of(const json_t *evs, size_t i) {
    return json_string_value(json_object_get(json_array_get(evs, i), "type"));
}

static void test_output_events(void) {
    resp_out_t o;
    resp_out_init(&o, true, 9);
    resp_out_lifecycle(&o, "response.created", json_pack("{s:s}", "id", "resp_1"));
    resp_out_text(&o, true, "think", 5);
    resp_out_text(&o, true, "ing", 3);
    resp_out_text(&o, false, "Hello", 5);
    resp_out_text(&o, false, " world", 6);
    resp_out_call_start(&o, "call_abc", "get_weather");
    resp_out_call_args(&o, "{\"city\":", 8);
    resp_out_call_args(&o, "\"Paris\"}", 8);
    resp_out_call_end(&o, true);
    resp_out_finish(&o, false);
    json_t *evs = sse_events(&o.ev);
    static const char *const want[] = {
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    };
    CHECK(json_array_size(evs) == SL_ARRAY_LEN(want));
    for (size_t i = 0; i < SL_ARRAY_LEN(want) && i < json_array_size(evs); i++) {
        CHECK_MSG(!strcmp(type_of(evs, i), want[i]), "event %zu: %s, want %s", i, type_of(evs, i),
                  want[i]);
        CHECK(json_integer_value(json_object_get(json_array_get(evs, i), "sequence_number")) ==
              (json_int_t)i);
    }
    /* the items: reasoning, message, call, with ids and the whole text */
    CHECK(json_array_size(o.items) == 3);
    const json_t *rs = json_array_get(o.items, 0), *msg = json_array_get(o.items, 1),
                 *fc = json_array_get(o.items, 2);
    CHECK(!strncmp(json_string_value(json_object_get(rs, "id")), "rs_", 3));
    CHECK(json_eq_text(json_object_get(rs, "content"),
                       "[{\"type\":\"reasoning_text\",\"text\":\"thinking\"}]"));
    CHECK(json_eq_text(json_object_get(rs, "summary"), "[]"));
    CHECK(!strncmp(json_string_value(json_object_get(msg, "id")), "msg_", 4));
    CHECK(!strcmp(json_string_value(json_object_get(msg, "status")), "completed"));
    CHECK(!strcmp(json_string_value(json_object_get(msg, "role")), "assistant"));
    CHECK(json_eq_text(json_object_get(msg, "content"),
                       "[{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":"
                       "\"Hello world\"}]"));
    CHECK(!strncmp(json_string_value(json_object_get(fc, "id")), "fc_", 3));
    CHECK(!strcmp(json_string_value(json_object_get(fc, "call_id")), "call_abc"));
    CHECK(!strcmp(json_string_value(json_object_get(fc, "arguments")), "{\"city\":\"Paris\"}"));
    CHECK(!strcmp(json_string_value(json_object_get(fc, "status")), "completed"));
    /* deltas name their item and index; the done events carry the whole text */
    const json_t *d = json_array_get(evs, 10);
    CHECK(!strcmp(json_string_value(json_object_get(d, "item_id")),
                  json_string_value(json_object_get(msg, "id"))));
    CHECK(json_integer_value(json_object_get(d, "output_index")) == 1);
    CHECK(json_integer_value(json_object_get(d, "content_index")) == 0);
    CHECK(!strcmp(json_string_value(json_object_get(d, "delta")), "Hello"));
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(evs, 12), "text")),
                  "Hello world"));
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(evs, 18), "arguments")),
                  "{\"city\":\"Paris\"}"));
    CHECK(json_equal(json_object_get(json_array_get(evs, 19), "item"), (json_t *)fc));
    /* an added item is the in-progress shape (empty content / arguments) */
    CHECK(json_eq_text(json_object_get(json_object_get(json_array_get(evs, 8), "item"), "content"),
                       "[]"));
    CHECK(!strcmp(json_string_value(json_object_get(
                      json_object_get(json_array_get(evs, 15), "item"), "arguments")),
                  ""));
    json_decref(evs);
    resp_out_free(&o);

    /* nothing written: one empty message; cut short: incomplete; not
     * streaming: items without events */
    resp_out_init(&o, false, 1);
    resp_out_finish(&o, true);
    CHECK(json_array_size(o.items) == 1 && o.ev.len == 0);
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(o.items, 0), "status")),
                  "incomplete"));
    CHECK(json_eq_text(
        json_object_get(json_array_get(o.items, 0), "content"),
        "[{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":\"\"}]"));
    resp_out_free(&o);

    /* a call that turns out malformed stays, incomplete; its text follows */
    resp_out_init(&o, false, 1);
    resp_out_call_start(&o, "call_x", "f");
    resp_out_call_args(&o, "{", 1);
    resp_out_call_end(&o, false);
    resp_out_text(&o, false, "<tool_call>{", 12);
    resp_out_finish(&o, false);
    CHECK(json_array_size(o.items) == 2);
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(o.items, 0), "status")),
                  "incomplete"));
    CHECK(
        !strcmp(json_string_value(json_object_get(json_array_get(o.items, 1), "type")), "message"));
    resp_out_free(&o);
}

static void test_response_object(void) {
    json_t *echo = J("{\"instructions\":null,\"store\":true,\"tools\":[]}");
    json_t *out = J("[{\"type\":\"message\",\"id\":\"msg_1\"}]");
    srv_usage_t u = {
        .prompt_tokens = 10, .cached_tokens = 4, .completion_tokens = 5, .reasoning_tokens = 2};
    json_t *r =
        resp_object("resp_1", 123, "tiny", "incomplete", echo, out, &u, "max_output_tokens", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(r, "object")), "response"));
    CHECK(json_integer_value(json_object_get(r, "created_at")) == 123);
    CHECK(json_eq_text(json_object_get(r, "incomplete_details"),
                       "{\"reason\":\"max_output_tokens\"}"));
    CHECK(json_is_null(json_object_get(r, "error")));
    CHECK(json_equal(json_object_get(r, "output"), out));
    CHECK(json_is_true(json_object_get(r, "store")));
    CHECK(json_eq_text(
        json_object_get(r, "usage"),
        "{\"input_tokens\":10,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":5,"
        "\"output_tokens_details\":{\"reasoning_tokens\":2},\"total_tokens\":15}"));
    json_decref(r);
    r = resp_object("resp_1", 123, "tiny", "failed", echo, NULL, NULL, NULL, "boom");
    CHECK(json_eq_text(json_object_get(r, "error"),
                       "{\"code\":\"server_error\",\"message\":\"boom\"}"));
    CHECK(json_is_null(json_object_get(r, "usage")) &&
          json_array_size(json_object_get(r, "output")) == 0);
    json_decref(r);
    json_decref(echo);
    json_decref(out);
}

static void test_list_items(void) {
    json_t *items = json_array();
    for (int i = 0; i < 25; i++) {
        char id[16];
        snprintf(id, sizeof id, "msg_%02d", i);
        json_array_append_new(items, json_pack("{s:s}", "id", id));
    }
    oai_error_t e;
    json_t *l = resp_list_items(items, NULL, NULL, NULL, &e); /* desc, 20 */
    CHECK(!strcmp(json_string_value(json_object_get(l, "object")), "list"));
    CHECK(json_array_size(json_object_get(l, "data")) == 20);
    CHECK(!strcmp(json_string_value(json_object_get(l, "first_id")), "msg_24"));
    CHECK(!strcmp(json_string_value(json_object_get(l, "last_id")), "msg_05"));
    CHECK(json_is_true(json_object_get(l, "has_more")));
    json_decref(l);
    l = resp_list_items(items, "desc", "msg_05", NULL, &e); /* the next page */
    CHECK(json_array_size(json_object_get(l, "data")) == 5 &&
          json_is_false(json_object_get(l, "has_more")));
    CHECK(!strcmp(json_string_value(json_object_get(l, "first_id")), "msg_04"));
    json_decref(l);
    l = resp_list_items(items, "asc", "msg_01", "2", &e);
    CHECK(!strcmp(json_string_value(json_object_get(l, "first_id")), "msg_02"));
    CHECK(!strcmp(json_string_value(json_object_get(l, "last_id")), "msg_03"));
    json_decref(l);
    CHECK(!resp_list_items(items, "up", NULL, NULL, &e) && !strcmp(e.param, "order"));
    CHECK(!resp_list_items(items, NULL, NULL, "101", &e) && !strcmp(e.param, "limit"));
    CHECK(!resp_list_items(items, NULL, NULL, "x", &e) && !strcmp(e.param, "limit"));
    CHECK(!resp_list_items(items, NULL, "msg_99", NULL, &e) && !strcmp(e.param, "after"));
    json_decref(items);
    json_t *none = json_array();
    l = resp_list_items(none, NULL, NULL, NULL, &e);
    CHECK(json_is_null(json_object_get(l, "first_id")) &&
          json_array_size(json_object_get(l, "data")) == 0);
    json_decref(l);
    json_decref(none);
}

static void test_store_lru(void) {
    resp_store_t *st = resp_store_new(3, 100);
    CHECK(resp_store_put(st, 1, "a", "AAAA", 4) == 0);
    CHECK(resp_store_put(st, 1, "b", "BBBB", 4) == 0);
    CHECK(resp_store_put(st, 2, "c", "CCCC", 4) == 0);
    char *t = resp_store_get(st, 1, "a"); /* a is now the most recent */
    CHECK(t && !strcmp(t, "AAAA"));
    free(t);
    CHECK(!resp_store_get(st, 2, "a")); /* another account's id */
    CHECK(!resp_store_delete(st, 2, "a"));
    CHECK(resp_store_put(st, 1, "d", "DDDD", 4) == 0); /* evicts b, the least recently used */
    CHECK(resp_store_count(st) == 3);
    CHECK(!resp_store_get(st, 1, "b"));
    t = resp_store_get(st, 1, "a");
    CHECK(t != NULL);
    free(t);
    CHECK(resp_store_put(st, 1, "a", "A2", 2) == 0); /* replaced, not doubled */
    CHECK(resp_store_count(st) == 3);
    t = resp_store_get(st, 1, "a");
    CHECK(t && !strcmp(t, "A2"));
    free(t);
    /* the byte bound: 99 bytes next to the 10 stored push them all out;
     * one text over the bound is refused */
    char big[101];
    memset(big, 'x', sizeof big);
    CHECK(resp_store_put(st, 1, "e", big, 99) == 0);
    CHECK(resp_store_count(st) == 1);
    CHECK(resp_store_put(st, 1, "f", big, 101) == -1);
    CHECK(resp_store_delete(st, 1, "e") && resp_store_count(st) == 0);
    resp_store_free(st);
}

int main(void) {
    RUN(test_translate_basic);
    RUN(test_translate_items);
    RUN(test_translate_previous);
    RUN(test_translate_tools_formats);
    RUN(test_translate_errors);
    RUN(test_error_param);
    RUN(test_output_events);
    RUN(test_response_object);
    RUN(test_list_items);
    RUN(test_store_lru);
    return test_summary();
}
