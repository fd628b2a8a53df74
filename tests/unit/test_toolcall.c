/* deps: chat grammar base */
/*
 * test_toolcall.c — tool-call family detection, the streaming output parser
 * on recorded model outputs of each family (well-formed, parallel, zero-arg,
 * reasoning, malformed, truncated), request validation and tool grammars.
 *
 * Independent references: the expected results are written out by hand from
 * the formats; every streamed run (random piece sizes, both streaming modes)
 * is reassembled from its events the way an OpenAI client does (content and
 * argument deltas appended per index) and must equal the one-shot result;
 * jansson parses every arguments string.
 */
#include "chat/toolcall_internal.h"
#include "grammar/grammar.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

#define DS_CALLS_BEGIN "<｜tool▁calls▁begin｜>"
#define DS_CALLS_END "<｜tool▁calls▁end｜>"
#define DS_CALL_BEGIN "<｜tool▁call▁begin｜>"
#define DS_CALL_END "<｜tool▁call▁end｜>"
#define DS_SEP "<｜tool▁sep｜>"

static const char *TOOLS_JSON =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather of a "
    "city\",\"parameters\":{\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\"},"
    "\"unit\":{\"type\":\"string\",\"enum\":[\"celsius\",\"fahrenheit\"]},\"days\":{\"type\":"
    "\"integer\"}},\"required\":[\"location\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":{\"type\":"
    "\"object\","
    "\"properties\":{}}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"brave_search\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"query\":{\"type\":\"string\"}},\"required\":[\"query\"]}}}]";

static json_t *g_tools;

/* ---- reassembly of a stream, as a client does it ---- */

typedef struct {
    sl_buf_t content, reasoning;
    struct {
        char id[64], name[80];
        sl_buf_t args;
        bool ended, aborted;
    } calls[16];
    int n_calls;
    int bad; /* protocol violations seen */
} stream_t;

static int on_event(void *ud, const tc_event_t *ev) {
    stream_t *s = ud;
    switch (ev->kind) {
    case TC_EV_CONTENT:
        sl_buf_append(&s->content, ev->text, ev->len);
        break;
    case TC_EV_REASONING:
        sl_buf_append(&s->reasoning, ev->text, ev->len);
        break;
    case TC_EV_CALL_START:
        if (ev->index != s->n_calls || ev->index >= 16) {
            s->bad++;
            break;
        }
        snprintf(s->calls[ev->index].id, 64, "%s", ev->id);
        snprintf(s->calls[ev->index].name, 80, "%s", ev->name);
        s->n_calls++;
        break;
    case TC_EV_CALL_ARGS:
        if (ev->index != s->n_calls - 1 || s->calls[ev->index].ended)
            s->bad++;
        else
            sl_buf_append(&s->calls[ev->index].args, ev->text, ev->len);
        break;
    case TC_EV_CALL_END:
        if (ev->index != s->n_calls - 1)
            s->bad++;
        else
            s->calls[ev->index].ended = true;
        break;
    case TC_EV_CALL_ABORT:
        if (ev->index != s->n_calls - 1)
            s->bad++;
        else
            s->calls[ev->index].aborted = true;
        break;
    }
    /* every text delta must be complete UTF-8 that jansson accepts */
    if (ev->kind == TC_EV_CONTENT || ev->kind == TC_EV_REASONING || ev->kind == TC_EV_CALL_ARGS) {
        json_t *j = json_stringn(ev->text, ev->len);
        if (!j) s->bad++;
        json_decref(j);
    }
    return 0;
}

static void stream_free(stream_t *s) {
    sl_buf_free(&s->content);
    sl_buf_free(&s->reasoning);
    for (int i = 0; i < 16; i++)
        sl_buf_free(&s->calls[i].args);
}

typedef struct {
    tc_family_t fam;
    bool reasoning, think_open;
    const json_t *tools;
} cfg_t;

static bool g_no_calls; /* harmony with tool_choice none (opts.no_calls) */

/* Feeds text in pieces (sizes from rng: 0 = one piece) and checks the stream
 * against the parser's own result. Returns the result as a message JSON. */
static json_t *run_parse(const cfg_t *cfg, const char *text, unsigned seed, bool incremental,
                         stream_t *st) {
    tc_parser_opts_t o = {.family = cfg->fam,
                          .reasoning = cfg->reasoning,
                          .think_open = cfg->think_open,
                          .incremental = incremental,
                          .tools = cfg->tools,
                          .no_calls = g_no_calls,
                          .id_seed = 42,
                          .on_event = on_event,
                          .ud = st};
    char err[256];
    tc_parser_t *p = tc_parser_new(&o, err, sizeof err);
    if (!p) return NULL;
    size_t n = strlen(text), i = 0;
    unsigned r = seed;
    while (i < n) {
        size_t k = n - i;
        if (seed) {
            r = r * 1103515245u + 12345u;
            k = SL_MIN(k, 1 + (r >> 16) % 7);
        }
        CHECK(tc_parser_feed(p, text + i, k, false) == 0);
        i += k;
    }
    CHECK(tc_parser_finish(p) == 0);
    const tc_result_t *res = tc_parser_result(p);
    json_t *m = res ? tc_result_message_json(res) : NULL;
    /* arguments are always JSON objects */
    for (size_t c = 0; res && c < res->n_calls; c++) {
        json_t *a = json_loads(res->calls[c].arguments, 0, NULL);
        CHECK_MSG(json_is_object(a), "arguments not an object: %s", res->calls[c].arguments);
        json_decref(a);
    }
    tc_parser_free(p);
    return m;
}

/* The message a stream reassembles to (only ended, non-aborted calls). */
static json_t *stream_message(const stream_t *s) {
    json_t *calls = json_array();
    for (int i = 0; i < s->n_calls; i++) {
        if (!s->calls[i].ended || s->calls[i].aborted) continue;
        json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", s->calls[i].id,
                                               "type", "function", "function", "name",
                                               s->calls[i].name, "arguments",
                                               s->calls[i].args.data ? s->calls[i].args.data : ""));
    }
    json_t *m = json_pack("{s:s}", "role", "assistant");
    if (s->content.len || json_array_size(calls) == 0)
        json_object_set_new(m, "content",
                            json_stringn(s->content.data ? s->content.data : "", s->content.len));
    else
        json_object_set_new(m, "content", json_null());
    if (s->reasoning.len)
        json_object_set_new(m, "reasoning_content",
                            json_stringn(s->reasoning.data, s->reasoning.len));
    if (json_array_size(calls))
        json_object_set_new(m, "tool_calls", calls);
    else
        json_decref(calls);
    return m;
}

static char *dump(const json_t *j) {
    return j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : strdup("(null)");
}

/* Expected message: content (NULL = null), reasoning (NULL = absent), then
 * name/args pairs. Checks one-shot, 40 random splits in hold mode (stream
 * must equal result) and in incremental mode (equal when well_formed). */
static void expect_parse(const char *what, const cfg_t *cfg, const char *text, const char *content,
                         const char *reasoning, int ncalls, const char *const *name_args,
                         bool well_formed) {
    json_t *want = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(want, "content", content ? json_string(content) : json_null());
    if (reasoning) json_object_set_new(want, "reasoning_content", json_string(reasoning));
    stream_t st0 = {0};
    json_t *got0 = run_parse(cfg, text, 0, false, &st0);
    /* compare everything but ids against the expectation */
    json_t *cmp = json_deep_copy(got0);
    json_t *tcs = json_object_get(cmp, "tool_calls");
    CHECK_MSG((int)json_array_size(tcs) == ncalls, "%s: %zu calls, want %d", what,
              json_array_size(tcs), ncalls);
    for (int i = 0; i < ncalls && i < (int)json_array_size(tcs); i++) {
        json_t *fn = json_object_get(json_array_get(tcs, i), "function");
        const char *nm = json_string_value(json_object_get(fn, "name"));
        const char *ar = json_string_value(json_object_get(fn, "arguments"));
        CHECK_MSG(nm && strcmp(nm, name_args[2 * i]) == 0, "%s: call %d name %s", what, i, nm);
        CHECK_MSG(ar && strcmp(ar, name_args[2 * i + 1]) == 0, "%s: call %d args %s want %s", what,
                  i, ar, name_args[2 * i + 1]);
        const char *id = json_string_value(json_object_get(json_array_get(tcs, i), "id"));
        CHECK_MSG(id && (cfg->fam == TC_FAMILY_MISTRAL
                             ? strlen(id) == 9
                             : strncmp(id, "call_", 5) == 0 && strlen(id) == 29),
                  "%s: id %s", what, id);
    }
    json_object_del(cmp, "tool_calls");
    char *a = dump(cmp), *b = dump(want);
    CHECK_MSG(strcmp(a, b) == 0, "%s:\n    got  %s\n    want %s", what, a, b);
    free(a);
    free(b);
    json_decref(cmp);
    json_decref(want);

    char *ref = dump(got0);
    json_t *sm0 = stream_message(&st0);
    char *s0 = dump(sm0);
    CHECK_MSG(strcmp(ref, s0) == 0, "%s: one-shot stream differs\n    result %s\n    stream %s",
              what, ref, s0);
    CHECK(st0.bad == 0);
    free(s0);
    json_decref(sm0);
    stream_free(&st0);
    for (unsigned seed = 1; seed <= 40; seed++) {
        for (int inc = 0; inc < 2; inc++) {
            stream_t st = {0};
            json_t *got = run_parse(cfg, text, seed, inc, &st);
            char *g = dump(got);
            CHECK_MSG(strcmp(g, ref) == 0, "%s: seed %u inc %d result differs\n    %s\n    %s",
                      what, seed, inc, g, ref);
            if (!inc || well_formed) {
                json_t *sm = stream_message(&st);
                char *sd = dump(sm);
                CHECK_MSG(strcmp(sd, ref) == 0, "%s: seed %u inc %d stream differs\n    %s\n    %s",
                          what, seed, inc, sd, ref);
                free(sd);
                json_decref(sm);
            }
            CHECK_MSG(st.bad == 0, "%s: protocol violation (seed %u inc %d)", what, seed, inc);
            free(g);
            json_decref(got);
            stream_free(&st);
        }
    }
    free(ref);
    json_decref(got0);
}

#define CALLS(...) ((const char *const[]){__VA_ARGS__})

/* ---- Hermes / Qwen ---- */

static void test_hermes(void) {
    cfg_t c = {TC_FAMILY_HERMES, true, false, g_tools};
    expect_parse(
        "hermes single", &c,
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\", "
        "\"unit\": \"celsius\"}}\n</tool_call>",
        NULL, NULL, 1, CALLS("get_weather", "{\"location\":\"Paris\",\"unit\":\"celsius\"}"), true);
    expect_parse(
        "hermes parallel + content", &c,
        "Let me check both.\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
        "{\"location\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", "
        "\"arguments\": {\"location\": \"東京\", \"days\": 3}}\n</tool_call>",
        "Let me check both.", NULL, 2,
        CALLS("get_weather", "{\"location\":\"Paris\"}", "get_weather",
              "{\"location\":\"東京\",\"days\":3}"),
        true);
    expect_parse("hermes zero-arg", &c,
                 "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>", NULL,
                 NULL, 1, CALLS("get_time", "{}"), true);
    expect_parse("hermes arguments before name, nested, escapes", &c,
                 "<tool_call>\n{\"arguments\": {\"q\": [1, 2.5e3, {\"a\": null}], \"s\": "
                 "\"a\\\"b\\u00e9\"}, "
                 "\"name\": \"brave_search\"}\n</tool_call>",
                 NULL, NULL, 1,
                 CALLS("brave_search", "{\"q\":[1,2.5e3,{\"a\":null}],\"s\":\"a\\\"b\\u00e9\"}"),
                 true);
    expect_parse("hermes string arguments", &c,
                 "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \"{\\\"location\\\": "
                 "\\\"Rome\\\"}\"}\n</tool_call>",
                 NULL, NULL, 1, CALLS("get_weather", "{\"location\":\"Rome\"}"), true);
    expect_parse("hermes missing close at end", &c,
                 "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}", NULL, NULL, 1,
                 CALLS("get_time", "{}"), true);
    expect_parse(
        "qwen3 reasoning then call", &c,
        "<think>\nThe user wants the weather.\nCall the tool.\n</think>\n\n<tool_call>\n{\"name\": "
        "\"get_weather\", \"arguments\": {\"location\": \"Paris\"}}\n</tool_call>",
        NULL, "The user wants the weather.\nCall the tool.", 1,
        CALLS("get_weather", "{\"location\":\"Paris\"}"), true);
    expect_parse("qwen3 reasoning then content", &c,
                 "<think>\nsimple greeting\n</think>\n\nHello! How can I help?",
                 "Hello! How can I help?", "simple greeting", 0, NULL, true);
    cfg_t open = {TC_FAMILY_HERMES, true, true, g_tools};
    expect_parse("think opened by the prompt", &open, "I should greet.\n</think>\n\nHi there.",
                 "Hi there.", "I should greet.", 0, NULL, true);
    expect_parse("think opened, truncated inside reasoning", &open, "Still thinking about </thi",
                 "", "Still thinking about </thi", 0, NULL, true);
    cfg_t noreason = {TC_FAMILY_HERMES, false, false, g_tools};
    expect_parse("reasoning off: think tags are content", &noreason, "<think>x</think>y",
                 "<think>x</think>y", NULL, 0, NULL, true);
    expect_parse("plain content with marker-like text", &c, "Use a < b and <tool for this. <tool_c",
                 "Use a < b and <tool for this. <tool_c", NULL, 0, NULL, true);
    expect_parse("content whitespace kept inside, trailing kept without calls", &c,
                 "\n\nLine one.\n\n  Line two.  ", "Line one.\n\n  Line two.  ", NULL, 0, NULL,
                 true);
    /* malformed and truncated: the raw text is content */
    const char *bad =
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": }}\n</tool_call>";
    expect_parse("hermes malformed json", &c, bad, bad, NULL, 0, NULL, false);
    const char *trunc = "Sure.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"locat";
    expect_parse("hermes truncated", &c, trunc, trunc, NULL, 0, NULL, false);
    const char *noname = "<tool_call>\n{\"arguments\": {}}\n</tool_call>";
    expect_parse("hermes call without name", &c, noname, noname, NULL, 0, NULL, false);
    const char *badname =
        "<tool_call>\n{\"name\": \"get weather!\", \"arguments\": {}}\n</tool_call>";
    expect_parse("hermes invalid name", &c, badname, badname, NULL, 0, NULL, false);
    expect_parse(
        "hermes good call after a malformed one", &c,
        "<tool_call>\n{oops}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": "
        "{}}\n</tool_call>",
        "<tool_call>\n{oops}\n</tool_call>", NULL, 1, CALLS("get_time", "{}"), false);
    expect_parse("hermes truncated in marker", &c,
                 "ok <tool_call>\n{\"name\": \"get_time\", "
                 "\"arguments\": {}}\n</tool_call>\n<tool_ca",
                 "ok\n<tool_ca", NULL, 1, CALLS("get_time", "{}"), true);
}

/* ---- Llama 3.x ---- */

static void test_llama3(void) {
    cfg_t c = {TC_FAMILY_LLAMA3, false, false, g_tools};
    expect_parse("llama3 json", &c,
                 "{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\"}}", NULL,
                 NULL, 1, CALLS("get_weather", "{\"location\":\"Paris\"}"), true);
    expect_parse("llama3 json with type", &c,
                 "\n{\"type\": \"function\", \"name\": \"get_time\", \"parameters\": {}}", NULL,
                 NULL, 1, CALLS("get_time", "{}"), true);
    expect_parse(
        "llama3 python_tag json", &c,
        "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Oslo\"}}", NULL,
        NULL, 1, CALLS("get_weather", "{\"location\":\"Oslo\"}"), true);
    expect_parse("llama3 builtin call", &c,
                 "<|python_tag|>brave_search.call(query=\"weather in Paris\")", NULL, NULL, 1,
                 CALLS("brave_search", "{\"query\":\"weather in Paris\"}"), true);
    expect_parse("llama3 builtin two args", &c, "<|python_tag|>brave_search.call(query=\"x\", n=5)",
                 NULL, NULL, 1, CALLS("brave_search", "{\"query\":\"x\",\"n\":5}"), true);
    expect_parse("llama3 parallel with ;", &c,
                 "{\"name\": \"get_time\", \"parameters\": {}}; {\"name\": \"get_weather\", "
                 "\"parameters\": {\"location\": \"Rome\"}}",
                 NULL, NULL, 2, CALLS("get_time", "{}", "get_weather", "{\"location\":\"Rome\"}"),
                 true);
    expect_parse("llama3 JSON content is not a call", &c, "{\"result\": 5}", "{\"result\": 5}",
                 NULL, 0, NULL, true);
    expect_parse("llama3 text", &c, "The weather is {probably} fine.",
                 "The weather is {probably} fine.", NULL, 0, NULL, true);
    const char *tr = "{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Par";
    expect_parse("llama3 truncated", &c, tr, tr, NULL, 0, NULL, false);
    /* special tokens: the python tag as a special token, end-of-turn dropped */
    tc_parser_opts_t o = {.family = TC_FAMILY_LLAMA3, .id_seed = 1};
    tc_parser_t *p = tc_parser_new(&o, NULL, 0);
    CHECK(tc_parser_feed(p, "<|python_tag|>", 14, true) == 0);
    const char *body = "{\"name\": \"get_time\", \"parameters\": {}}";
    CHECK(tc_parser_feed(p, body, strlen(body), false) == 0);
    CHECK(tc_parser_feed(p, "<|eom_id|>", 10, true) == 0);
    CHECK(tc_parser_finish(p) == 0);
    const tc_result_t *r = tc_parser_result(p);
    CHECK(r->n_calls == 1 && r->content_len == 0 && r->finish_tool_calls);
    tc_parser_free(p);
}

/* ---- DeepSeek ---- */

static void test_deepseek(void) {
    cfg_t c = {TC_FAMILY_DEEPSEEK, true, false, g_tools};
    const char *two = DS_CALLS_BEGIN DS_CALL_BEGIN
        "function" DS_SEP "get_weather\n```json\n{\"location\": "
        "\"Paris\"}\n```" DS_CALL_END "\n" DS_CALL_BEGIN "function" DS_SEP
        "get_time\n```json\n{}\n```" DS_CALL_END DS_CALLS_END;
    expect_parse("deepseek two calls", &c, two, NULL, NULL, 2,
                 CALLS("get_weather", "{\"location\":\"Paris\"}", "get_time", "{}"), true);
    char buf[2048];
    snprintf(buf, sizeof buf, "<think>\nNeed the weather.\n</think>\n\nChecking.%s", two);
    expect_parse("deepseek r1 reasoning + content + calls", &c, buf, "Checking.",
                 "Need the weather.", 2,
                 CALLS("get_weather", "{\"location\":\"Paris\"}", "get_time", "{}"), true);
    expect_parse("deepseek without fences", &c,
                 DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP
                                              "get_time\n{}" DS_CALL_END DS_CALLS_END,
                 NULL, NULL, 1, CALLS("get_time", "{}"), true);
    const char *tr =
        "Ok." DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n{\"loc";
    expect_parse("deepseek truncated", &c, tr, tr, NULL, 0, NULL, false);
    const char *tr2 = DS_CALLS_BEGIN DS_CALL_BEGIN
        "function" DS_SEP "get_time\n```json\n{}\n```" DS_CALL_END DS_CALL_BEGIN "function" DS_SEP
        "get_wea";
    expect_parse("deepseek second call truncated", &c, tr2,
                 DS_CALL_BEGIN "function" DS_SEP "get_wea", NULL, 1, CALLS("get_time", "{}"),
                 false);
    cfg_t v31 = {TC_FAMILY_DEEPSEEK_V31, true, false, g_tools};
    expect_parse("deepseek v3.1", &v31,
                 DS_CALLS_BEGIN DS_CALL_BEGIN "get_weather" DS_SEP
                                              "{\"location\": \"Paris\"}" DS_CALL_END DS_CALL_BEGIN
                                              "get_time" DS_SEP "{}" DS_CALL_END DS_CALLS_END,
                 NULL, NULL, 2, CALLS("get_weather", "{\"location\":\"Paris\"}", "get_time", "{}"),
                 true);
    const char *bad = DS_CALLS_BEGIN DS_CALL_BEGIN
        "get_weather" DS_SEP "{\"location\" \"Paris\"}" DS_CALL_END DS_CALLS_END;
    /* the malformed call's raw text is content; scanning resumes after the
     * failing byte, so the block's closing marker is content too */
    expect_parse("deepseek v3.1 malformed", &v31, bad, bad, NULL, 0, NULL, false);
}

/* ---- GLM ---- */

static void test_glm(void) {
    cfg_t c = {TC_FAMILY_GLM4, false, false, g_tools};
    expect_parse("glm4 call", &c, "get_weather\n{\"location\": \"Beijing\"}", NULL, NULL, 1,
                 CALLS("get_weather", "{\"location\":\"Beijing\"}"), true);
    expect_parse("glm4 content", &c, "\nHello, I am GLM-4.", "Hello, I am GLM-4.", NULL, 0, NULL,
                 true);
    expect_parse("glm4 unknown name is content", &c, "Sure\n{\"a\": 1}", "Sure\n{\"a\": 1}", NULL,
                 0, NULL, true);
    expect_parse("glm4 truncated", &c, "get_weather\n{\"location\": \"Bei",
                 "get_weather\n{\"location\": \"Bei", NULL, 0, NULL, false);
    cfg_t g = {TC_FAMILY_GLM45, true, false, g_tools};
    expect_parse("glm45 call with typed args", &g,
                 "<think>Weather needed.</think>I'll "
                 "check.<tool_call>get_weather\n<arg_key>location</arg_key>\n"
                 "<arg_value>Beijing</arg_value>\n<arg_key>days</arg_key>\n<arg_value>3</"
                 "arg_value>\n</tool_call>",
                 "I'll check.", "Weather needed.", 1,
                 CALLS("get_weather", "{\"location\":\"Beijing\",\"days\":3}"), true);
    expect_parse("glm45 string param stays a string", &g,
                 "<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>123</"
                 "arg_value>\n</tool_call>",
                 NULL, NULL, 1, CALLS("get_weather", "{\"location\":\"123\"}"), true);
    expect_parse(
        "glm45 zero-arg + second call", &g,
        "<tool_call>get_time\n</tool_call>\n<tool_call>brave_search\n<arg_key>query</arg_key>"
        "<arg_value>a \"quoted\" </b> text</arg_value></tool_call>",
        NULL, NULL, 2,
        CALLS("get_time", "{}", "brave_search", "{\"query\":\"a \\\"quoted\\\" </b> text\"}"),
        true);
    const char *tr = "<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Bei";
    expect_parse("glm45 truncated", &g, tr, tr, NULL, 0, NULL, false);
}

/* ---- InternLM2, Mistral ---- */

static void test_internlm_mistral(void) {
    cfg_t c = {TC_FAMILY_INTERNLM2, false, false, g_tools};
    expect_parse(
        "internlm2 call", &c,
        "I'll look it up.<|action_start|><|plugin|>\n{\"name\": \"get_weather\", \"parameters\": "
        "{\"location\": \"Shanghai\"}}<|action_end|>\n",
        "I'll look it up.", NULL, 1, CALLS("get_weather", "{\"location\":\"Shanghai\"}"), true);
    const char *interp = "<|action_start|><|interpreter|>\nprint(1)<|action_end|>";
    expect_parse("internlm2 interpreter is content", &c, interp, interp, NULL, 0, NULL, true);
    cfg_t m = {TC_FAMILY_MISTRAL, false, false, g_tools};
    expect_parse("mistral list", &m,
                 "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"location\": "
                 "\"Paris\"}, \"id\": "
                 "\"abc123def\"}, {\"name\": \"get_time\", \"arguments\": {}}]",
                 NULL, NULL, 2, CALLS("get_weather", "{\"location\":\"Paris\"}", "get_time", "{}"),
                 true);
    expect_parse(
        "mistral v11 name[ARGS]", &m,
        "[TOOL_CALLS]get_weather[ARGS]{\"location\": \"Paris\"}[TOOL_CALLS]get_time[ARGS]{}", NULL,
        NULL, 2, CALLS("get_weather", "{\"location\":\"Paris\"}", "get_time", "{}"), true);
    const char *tr = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"location\": "
                     "\"Paris\"}}, {\"name";
    expect_parse("mistral truncated second", &m, tr, "{\"name", NULL, 1,
                 CALLS("get_weather", "{\"location\":\"Paris\"}"), false);
    cfg_t none = {TC_FAMILY_NONE, false, false, NULL};
    expect_parse("family none", &none, "<tool_call>{}</tool_call>", "<tool_call>{}</tool_call>",
                 NULL, 0, NULL, true);
}


/* ---- harmony (gpt-oss) ---- */

#define H_ANALYSIS "<|channel|>analysis<|message|>"
#define H_NEXT "<|start|>assistant"
#define H_CALL(name) "<|channel|>commentary to=functions." name " <|constrain|>json<|message|>"

static void test_harmony(void) {
    cfg_t c = {TC_FAMILY_HARMONY, false, false, g_tools};
    expect_parse("harmony analysis then final", &c,
                 H_ANALYSIS "Let me think.<|end|>" H_NEXT
                            "<|channel|>final<|message|>The answer is 4.<|return|>",
                 "The answer is 4.", "Let me think.", 0, NULL, true);
    expect_parse("harmony final only, no <|return|>", &c,
                 "<|channel|>final<|message|>Hi there!", "Hi there!", NULL, 0, NULL, true);
    expect_parse("harmony call after analysis", &c,
                 H_ANALYSIS "Need the weather.<|end|>" H_NEXT H_CALL(
                     "get_weather") "{\"location\": \"Paris\", \"unit\": \"celsius\"}<|call|>",
                 NULL, "Need the weather.", 1,
                 CALLS("get_weather", "{\"location\":\"Paris\",\"unit\":\"celsius\"}"), true);
    expect_parse("harmony call, <|call|> not fed (end of generation)", &c,
                 H_CALL("get_weather") "{\"location\":\"Oslo\"}", NULL, NULL, 1,
                 CALLS("get_weather", "{\"location\":\"Oslo\"}"), true);
    expect_parse("harmony recipient before the channel (as the template writes it)", &c,
                 " to=functions.get_weather<|channel|>commentary json<|message|>{\"location\": "
                 "\"Rome\"}<|call|>",
                 NULL, NULL, 1, CALLS("get_weather", "{\"location\":\"Rome\"}"), true);
    expect_parse("harmony preamble is content, then a call", &c,
                 "<|channel|>commentary<|message|>Checking the clock.<|end|>" H_NEXT H_CALL(
                     "get_time") "{}<|call|>",
                 "Checking the clock.", NULL, 1, CALLS("get_time", "{}"), true);
    expect_parse("harmony two calls", &c,
                 H_CALL("get_time") "{}<|call|>" H_NEXT H_CALL(
                     "get_weather") "{\"location\": \"Rome\", \"days\": 2}<|call|>",
                 NULL, NULL, 2,
                 CALLS("get_time", "{}", "get_weather", "{\"location\":\"Rome\",\"days\":2}"),
                 true);
    expect_parse("harmony analysis messages joined", &c,
                 H_ANALYSIS "First.<|end|>" H_NEXT H_ANALYSIS "Second.<|end|>" H_NEXT
                            "<|channel|>final<|message|>Done.",
                 "Done.", "First.\n\nSecond.", 0, NULL, true);
    expect_parse("harmony truncated analysis", &c, H_ANALYSIS "Still thinking", "",
                 "Still thinking", 0, NULL, true);
    expect_parse("harmony final with a content type", &c,
                 "<|channel|>final <|constrain|>json<|message|>{\"a\": 1}<|return|>",
                 "{\"a\": 1}", NULL, 0, NULL, true);
    expect_parse("harmony builtin tool recipient is content", &c,
                 "<|channel|>analysis to=browser.search <|constrain|>json<|message|>{\"query\": "
                 "\"x\"}<|call|>",
                 "{\"query\": \"x\"}", NULL, 0, NULL, true);
    expect_parse("harmony plain text without headers is content", &c, "Hello, world.",
                 "Hello, world.", NULL, 0, NULL, true);
    expect_parse("harmony truncated header is content", &c, "<|channel|>fin", "<|channel|>fin",
                 NULL, 0, NULL, true);
    expect_parse("harmony malformed arguments are content", &c,
                 H_CALL("get_weather") "{\"location\": oops}<|call|>",
                 H_CALL("get_weather") "{\"location\": oops}", NULL, 0, NULL, false);
    expect_parse("harmony truncated arguments are content", &c,
                 H_ANALYSIS "Hmm.<|end|>" H_NEXT H_CALL("get_weather") "{\"location\": \"Par",
                 "assistant" H_CALL("get_weather") "{\"location\": \"Par", "Hmm.", 0, NULL,
                 false);
    expect_parse("harmony text after the arguments is content", &c,
                 H_CALL("get_time") "{} trailing", H_CALL("get_time") "{} trailing", NULL, 0, NULL,
                 false);
    expect_parse("harmony over-long header is content", &c,
                 "<|channel|>commentary to=functions.get_time "
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "<|message|>{}",
                 "<|channel|>commentary to=functions.get_time "
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "<|message|>{}",
                 NULL, 0, NULL, false);
    g_no_calls = true;
    expect_parse("harmony tool_choice none: channels parsed, a call is content", &c,
                 H_ANALYSIS "Hmm.<|end|>" H_NEXT H_CALL("get_time") "{}<|call|>", "{}", "Hmm.", 0,
                 NULL, true);
    g_no_calls = false;

    /* special tokens: markers are parsed, <|call|>/<|return|> end a message,
     * unrelated control tokens are dropped */
    tc_parser_opts_t o = {.family = TC_FAMILY_HARMONY, .tools = g_tools, .id_seed = 1};
    tc_parser_t *p = tc_parser_new(&o, NULL, 0);
    const char *pieces[] = {"<|channel|>", "analysis", "<|message|>", "Think", "<|end|>",
                            "<|start|>",   "assistant", "<|channel|>", "final",  "<|message|>",
                            "Answer",      "<|endoftext|>"};
    for (size_t i = 0; i < SL_ARRAY_LEN(pieces); i++) {
        bool special = pieces[i][0] == '<';
        CHECK(tc_parser_feed(p, pieces[i], strlen(pieces[i]), special) == 0);
        if (i == 3) CHECK(tc_parser_in_reasoning(p));
    }
    CHECK(!tc_parser_in_reasoning(p));
    CHECK(tc_parser_finish(p) == 0);
    const tc_result_t *res = tc_parser_result(p);
    CHECK(strcmp(res->content, "Answer") == 0 && strcmp(res->reasoning, "Think") == 0);
    tc_parser_free(p);

    /* every prefix and corrupted copies, held and incremental: no crash,
     * arguments always a JSON object (sanitizers watch memory) */
    const char *samples[] = {
        H_ANALYSIS "Think.<|end|>" H_NEXT H_CALL("get_weather") "{\"location\": \"Paris\"}<|call|>",
        " to=functions.get_time<|channel|>commentary json<|message|>{}<|call|>",
        H_ANALYSIS "A<|end|>" H_NEXT "<|channel|>final<|message|>B<|return|>",
    };
    unsigned r = 11;
    for (size_t si = 0; si < SL_ARRAY_LEN(samples); si++) {
        size_t n = strlen(samples[si]);
        for (size_t cut = 0; cut <= n; cut++) {
            char *t = strndup(samples[si], cut);
            for (int variant = 0; variant < 2; variant++) {
                if (variant && cut) {
                    r = r * 1103515245u + 12345u;
                    t[(r >> 8) % cut] = (char)(r >> 20);
                }
                tc_parser_opts_t ro = {
                    .family = TC_FAMILY_HARMONY, .incremental = variant, .tools = g_tools, .id_seed = 3};
                tc_parser_t *q = tc_parser_new(&ro, NULL, 0);
                tc_parser_feed(q, t, cut, false);
                tc_parser_finish(q);
                const tc_result_t *rr = tc_parser_result(q);
                for (size_t i = 0; i < rr->n_calls; i++) {
                    json_t *a = json_loads(rr->calls[i].arguments, 0, NULL);
                    CHECK(json_is_object(a));
                    json_decref(a);
                }
                json_t *m = tc_result_message_json(rr);
                CHECK(m != NULL);
                json_decref(m);
                tc_parser_free(q);
            }
            free(t);
        }
    }
}

/* ---- fuzz-ish: random bytes and cut points never crash, text never lost ---- */

static void test_robustness(void) {
    const char *samples[] = {
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": "
        "\"Paris\"}}\n</tool_call>",
        DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP
                                     "get_time\n```json\n{}\n```" DS_CALL_END DS_CALLS_END,
        "[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {}}]",
        "<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>X</arg_value>\n</"
        "tool_call>",
        "<|action_start|><|plugin|>\n{\"name\": \"get_time\", \"parameters\": {}}<|action_end|>",
        "{\"name\": \"get_time\", \"parameters\": {}}",
        "<think>a</think>b",
        "<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n"
        "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
        "x <function=get_time>\n</function> y",
    };
    tc_family_t fams[] = {TC_FAMILY_HERMES,      TC_FAMILY_DEEPSEEK,   TC_FAMILY_MISTRAL,
                          TC_FAMILY_GLM45,       TC_FAMILY_INTERNLM2,  TC_FAMILY_LLAMA3,
                          TC_FAMILY_HERMES,      TC_FAMILY_QWEN3_CODER, TC_FAMILY_QWEN3_CODER};
    unsigned r = 7;
    int lost = 0;
    for (size_t s = 0; s < SL_ARRAY_LEN(samples); s++) {
        size_t n = strlen(samples[s]);
        for (size_t cut = 0; cut <= n; cut++) {
            /* every prefix (truncation at any byte) and a corrupted copy */
            char *t = strndup(samples[s], cut);
            for (int variant = 0; variant < 2; variant++) {
                if (variant && cut) {
                    r = r * 1103515245u + 12345u;
                    t[(r >> 8) % cut] = (char)(r >> 20);
                }
                tc_parser_opts_t o = {
                    .family = fams[s], .reasoning = true, .tools = g_tools, .id_seed = 3};
                tc_parser_t *p = tc_parser_new(&o, NULL, 0);
                tc_parser_feed(p, t, cut, false);
                tc_parser_finish(p);
                const tc_result_t *res = tc_parser_result(p);
                /* nothing lost: without calls, every non-space byte of the
                 * input appears in content or reasoning (markers included) */
                if (res->n_calls == 0) {
                    size_t nonws = 0, outn = 0;
                    for (size_t i = 0; i < cut; i++)
                        nonws += t[i] != ' ' && t[i] != '\n' && t[i] != '\t' && t[i] != '\r';
                    for (size_t i = 0; i < res->content_len; i++)
                        outn += res->content[i] != ' ' && res->content[i] != '\n';
                    for (size_t i = 0; i < res->reasoning_len; i++)
                        outn += res->reasoning[i] != ' ' && res->reasoning[i] != '\n';
                    if (variant == 0 && outn < nonws && strstr(t, "<think>") == NULL) {
                        lost++;
                        fprintf(stderr, "  lost: [%s] -> [%s]\n", t, res->content);
                    }
                }
                for (size_t i = 0; i < res->n_calls; i++) {
                    json_t *a = json_loads(res->calls[i].arguments, 0, NULL);
                    CHECK(json_is_object(a));
                    json_decref(a);
                }
                json_t *m = tc_result_message_json(res);
                CHECK(m != NULL);
                json_decref(m);
                tc_parser_free(p);
            }
            free(t);
        }
    }
    CHECK_MSG(lost == 0, "%d truncations lost text", lost);
}

/* ---- inputs the fuzzer found: an empty output, a NUL in a GLM-4.5 key ---- */

static void test_fuzz_findings(void) {
    for (int f = 0; f < TC_FAMILY_COUNT; f++) {
        tc_parser_opts_t o = {.family = (tc_family_t)f, .reasoning = true, .tools = g_tools};
        tc_parser_t *p = tc_parser_new(&o, NULL, 0);
        CHECK(tc_parser_finish(p) == 0);
        const tc_result_t *r = tc_parser_result(p);
        CHECK(r && r->content_len == 0 && r->n_calls == 0 && r->reasoning_len == 0);
        tc_parser_free(p);
    }
    static const char glm[] = "<tool_call>get_time\n<arg_key>a\0b</arg_key>\n<arg_value>1"
                              "</arg_value>\n</tool_call>";
    tc_parser_opts_t o = {.family = TC_FAMILY_GLM45, .tools = g_tools};
    tc_parser_t *p = tc_parser_new(&o, NULL, 0);
    CHECK(tc_parser_feed(p, glm, sizeof glm - 1, false) == 0);
    CHECK(tc_parser_finish(p) == 0);
    CHECK(tc_parser_result(p)->n_calls == 0); /* malformed: content */
    tc_parser_free(p);
    /* a NUL byte in an XML string value is the escape \u0000 */
    static const char xml[] = "<tool_call>\n<function=get_weather>\n<parameter=location>\na\0b\n"
                              "</parameter>\n</function>\n</tool_call>";
    o.family = TC_FAMILY_QWEN3_CODER;
    p = tc_parser_new(&o, NULL, 0);
    CHECK(tc_parser_feed(p, xml, sizeof xml - 1, false) == 0);
    CHECK(tc_parser_finish(p) == 0);
    const tc_result_t *r = tc_parser_result(p);
    CHECK(r->n_calls == 1 && strcmp(r->calls[0].arguments, "{\"location\":\"a\\u0000b\"}") == 0);
    tc_parser_free(p);
}

/* ---- detection ---- */

static bool has_tok(void *ud, const char *t) {
    for (const char *const *v = ud; *v; v++)
        if (strcmp(*v, t) == 0) return true;
    return false;
}

static void test_detect(void) {
    struct {
        const char *tmpl;
        const char *toks[4];
        tc_family_t want;
        bool reasoning;
    } cases[] = {
        {"{%- if tools %}<|im_start|>system\n# Tools\n<tools>{{ tool | tojson }}</tools>\nFor each "
         "function "
         "call, return a json object within <tool_call></tool_call> XML tags{% endif %}",
         {NULL},
         TC_FAMILY_HERMES,
         false},
        {"{{- '<tool_call>\\n{\"name\": \"' }}...{%- if enable_thinking is defined "
         "%}<think>\\n\\n</think>",
         {NULL},
         TC_FAMILY_HERMES,
         true},
        {"<|start_header_id|>ipython<|end_header_id|>\\n\\n{{ message.content }}<|eot_id|>",
         {NULL},
         TC_FAMILY_LLAMA3,
         false},
        {"{{- \"<|start|>assistant to=\" }}{{- \"functions.\" + tool_call.name + "
         "\"<|channel|>commentary \" }}{{- \"json<|message|>\" }}",
         {NULL},
         TC_FAMILY_HARMONY,
         false},
        {"", {"<|channel|>", "<|message|>", "<|call|>"}, TC_FAMILY_HARMONY, false},
        {"{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + "
         "'<｜tool▁sep｜>' + "
         "tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + "
         "'\\n' + "
         "'```' + '<｜tool▁call▁end｜>'}}<think>",
         {NULL},
         TC_FAMILY_DEEPSEEK,
         true},
        {"{{'<｜tool▁call▁begin｜>'+ tool['function']['name'] + '<｜tool▁sep｜>' + "
         "tool['function']['arguments'] "
         "+ '<｜tool▁call▁end｜>'}}",
         {NULL},
         TC_FAMILY_DEEPSEEK_V31,
         false},
        {"[gMASK]<sop>{% for item in messages %}<|system|>\n# 可用工具...{% elif item['role'] == "
         "'assistant' "
         "%}<|assistant|>{{ item.metadata }}\n{{ item.content }}{% elif item['role'] == "
         "'observation' "
         "%}<|observation|>",
         {NULL},
         TC_FAMILY_GLM4,
         false},
        {"[gMASK]<sop>...<tool_call>{{ tc.name }}\n{% for k, v in tc.arguments.items() "
         "%}<arg_key>{{ k "
         "}}</arg_key>\n<arg_value>{{ v }}</arg_value>{% endfor %}</tool_call><think></think>",
         {NULL},
         TC_FAMILY_GLM45,
         true},
        {"{{ bos_token }}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
         "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
         {"<|action_start|>", "<|plugin|>", "<|action_end|>", NULL},
         TC_FAMILY_INTERNLM2,
         false},
        {"{%- if message.tool_calls %}[TOOL_CALLS][{% for tc in message.tool_calls %}...",
         {NULL},
         TC_FAMILY_MISTRAL,
         false},
        {"{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
         {NULL},
         TC_FAMILY_NONE,
         false},
        {NULL, {"<tool_call>", "<think>", "</think>", NULL}, TC_FAMILY_HERMES, true},
        {"{{- '\\n<tool_call>\\n<function=' + tool_call.name + '>\\n' }}{%- for args_name, "
         "args_value in tool_call.arguments|items %}{{- '<parameter=' + args_name + '>\\n' }}",
         {"<tool_call>", "<think>", "</think>", NULL},
         TC_FAMILY_QWEN3_CODER,
         false}, /* (Qwen3's vocabulary, no reasoning: Qwen3-Coder) */
        /* Llama-style <function=name>{json}</function> is no XML call */
        {"<|start_header_id|>ipython<|end_header_id|> ... <function=example_function_name>{...}"
         "</function>",
         {NULL},
         TC_FAMILY_LLAMA3,
         false},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        const char *t = cases[i].tmpl;
        size_t n = t ? strlen(t) : 0;
        tc_family_t f = tc_detect(t, n, has_tok, (void *)cases[i].toks);
        CHECK_MSG(f == cases[i].want, "case %zu: %s want %s", i, tc_family_name(f),
                  tc_family_name(cases[i].want));
        CHECK_MSG(tc_detect_reasoning(t, n, has_tok, (void *)cases[i].toks) == cases[i].reasoning,
                  "case %zu reasoning", i);
    }
    CHECK(tc_prompt_opens_think("<|im_start|>assistant\n<think>\n", 30));
    CHECK(!tc_prompt_opens_think("<think>\n\n</think>\n\n", 19));
}

/* ---- wire helpers ---- */

static void test_json_shapes(void) {
    tc_event_t ev = {.kind = TC_EV_CALL_START, .index = 1, .id = "call_x", .name = "f"};
    json_t *d = tc_event_delta_json(&ev);
    char *s = dump(d);
    CHECK_MSG(
        strcmp(
            s,
            "{\"tool_calls\":[{\"function\":{\"arguments\":\"\",\"name\":\"f\"},\"id\":\"call_x\","
            "\"index\":1,\"type\":\"function\"}]}") == 0,
        "%s", s);
    free(s);
    json_decref(d);
    ev = (tc_event_t){.kind = TC_EV_CALL_ARGS, .index = 1, .text = "{\"a\"", .len = 4};
    d = tc_event_delta_json(&ev);
    s = dump(d);
    CHECK_MSG(
        strcmp(s, "{\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"a\\\"\"},\"index\":1}]}") ==
            0,
        "%s", s);
    free(s);
    json_decref(d);
    ev = (tc_event_t){.kind = TC_EV_REASONING, .text = "hm", .len = 2};
    d = tc_event_delta_json(&ev);
    s = dump(d);
    CHECK(strcmp(s, "{\"reasoning_content\":\"hm\"}") == 0);
    free(s);
    json_decref(d);
}

/* ---- request validation ---- */

static void test_request(void) {
    struct {
        const char *req;
        const char *param; /* NULL = valid */
        tc_choice_t choice;
        bool parallel;
    } cases[] = {
        {"{}", NULL, TC_CHOICE_NONE, true},
        {"{\"tools\": null}", NULL, TC_CHOICE_NONE, true},
        {"{\"tools\": "
         "[{\"type\":\"function\",\"function\":{\"name\":\"a_b-1\",\"description\":\"d\","
         "\"parameters\":{\"type\":\"object\",\"properties\":{}},\"strict\":true}}]}",
         NULL, TC_CHOICE_AUTO, true},
        {"{\"tools\": [{\"type\":\"function\",\"function\":{\"name\":\"f\"}}], \"tool_choice\": "
         "\"required\", "
         "\"parallel_tool_calls\": false}",
         NULL, TC_CHOICE_REQUIRED, false},
        {"{\"tools\": [{\"type\":\"function\",\"function\":{\"name\":\"f\"}}], \"tool_choice\": "
         "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}}",
         NULL, TC_CHOICE_NAMED, true},
        {"{\"tools\": [{\"type\":\"function\",\"function\":{\"name\":\"f\"}}], \"tool_choice\": "
         "\"none\"}",
         NULL, TC_CHOICE_NONE, true},
        {"{\"tool_choice\": \"none\"}", NULL, TC_CHOICE_NONE, true},
        {"{\"tools\": {}}", "tools", 0, 0},
        {"{\"tools\": []}", "tools", 0, 0},
        {"{\"tools\": [{\"type\":\"retrieval\"}]}", "tools[0].type", 0, 0},
        {"{\"tools\": [{\"type\":\"function\"}]}", "tools[0].function", 0, 0},
        {"{\"tools\": [{\"type\":\"function\",\"function\":{}}]}", "tools[0].function.name", 0, 0},
        {"{\"tools\": [{\"type\":\"function\",\"function\":{\"name\":\"get weather\"}}]}",
         "tools[0].function.name", 0, 0},
        {"{\"tools\": "
         "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},{\"type\":\"function\","
         "\"function\":{\"name\":\"f\"}}]}",
         "tools[1].function.name", 0, 0},
        {"{\"tools\": [{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":5}}]}",
         "tools[0].function.description", 0, 0},
        {"{\"tools\": "
         "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":\"x\"}}]}",
         "tools[0].function.parameters", 0, 0},
        {"{\"tools\": "
         "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"array\"}}"
         "}]}",
         "tools[0].function.parameters", 0, 0},
        {"{\"tools\": [{\"type\":\"function\",\"function\":{\"name\":\"f\",\"strict\":\"yes\"}}]}",
         "tools[0].function.strict", 0, 0},
        {"{\"tools\": [{\"type\":\"function\",\"function\":{\"name\":\"f\"}}], \"tool_choice\": "
         "\"always\"}",
         "tool_choice", 0, 0},
        {"{\"tools\": [{\"type\":\"function\",\"function\":{\"name\":\"f\"}}], \"tool_choice\": "
         "{\"type\":\"function\",\"function\":{\"name\":\"g\"}}}",
         "tool_choice", 0, 0},
        {"{\"tools\": [{\"type\":\"function\",\"function\":{\"name\":\"f\"}}], \"tool_choice\": "
         "{\"type\":\"function\"}}",
         "tool_choice.function.name", 0, 0},
        {"{\"tool_choice\": \"required\"}", "tool_choice", 0, 0},
        {"{\"tools\": [{\"type\":\"function\",\"function\":{\"name\":\"f\"}}], "
         "\"parallel_tool_calls\": 1}",
         "parallel_tool_calls", 0, 0},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        json_t *req = json_loads(cases[i].req, 0, NULL);
        CHECK_MSG(req != NULL, "case %zu json", i);
        tc_request_t r;
        char err[512] = "", param[96] = "";
        int rc = tc_request_parse(req, &r, err, sizeof err, param, sizeof param);
        if (cases[i].param) {
            CHECK_MSG(rc < 0 && strcmp(param, cases[i].param) == 0 && err[0],
                      "case %zu: rc %d param '%s' want '%s'", i, rc, param, cases[i].param);
        } else {
            CHECK_MSG(rc == 0, "case %zu: %s (%s)", i, err, param);
            CHECK_MSG(r.choice == cases[i].choice && r.parallel == cases[i].parallel,
                      "case %zu: choice %d", i, r.choice);
        }
        json_decref(req);
    }
    /* 129 tools is too many, 128 is fine; the message says so */
    for (int n = 128; n <= 129; n++) {
        json_t *tools = json_array();
        for (int k = 0; k < n; k++) {
            char nm[16];
            snprintf(nm, sizeof nm, "f%d", k);
            json_array_append_new(
                tools, json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name", nm));
        }
        json_t *req = json_pack("{s:o}", "tools", tools);
        tc_request_t r;
        char err[512] = "", param[96] = "";
        int rc = tc_request_parse(req, &r, err, sizeof err, param, sizeof param);
        CHECK(n == 128 ? rc == 0 && r.n_tools == 128
                       : rc < 0 && strcmp(param, "tools") == 0 && strstr(err, "128"));
        json_decref(req);
    }
    /* the forced name is kept */
    json_t *req = json_loads(
        "{\"tools\": [{\"type\":\"function\",\"function\":{\"name\":\"a\"}},{\"type\":\"function\","
        "\"function\":{\"name\":\"b\"}}], \"tool_choice\": "
        "{\"type\":\"function\",\"function\":{\"name\":\"b\"}}}",
        0, NULL);
    tc_request_t r;
    CHECK(tc_request_parse(req, &r, NULL, 0, NULL, 0) == 0 && strcmp(r.forced_name, "b") == 0);
    json_decref(req);
}

/* ---- grammars ---- */

static gram_vocab_t *byte_vocab(void) {
    static char bytes[256];
    const char *toks[256];
    size_t lens[256];
    for (int i = 0; i < 256; i++) {
        bytes[i] = (char)i;
        toks[i] = &bytes[i];
        lens[i] = i == 0 ? 0 : 1;
    }
    int32_t eog = 0;
    return gram_vocab_new(toks, lens, 256, &eog, 1, NULL, 0);
}

/* 1: text is a complete sentence of the grammar; 0: not. */
static int grammar_accepts(const char *gbnf, const gram_vocab_t *v, const char *text) {
    char err[512];
    gram_t *g = gram_from_gbnf(gbnf, err, sizeof err);
    CHECK_MSG(g != NULL, "gbnf does not compile: %s\n%s", err, gbnf);
    if (!g) return -1;
    gram_index_t *ix = gram_index_new(g, v, err, sizeof err);
    gram_matcher_t *m = ix ? gram_matcher_new(ix, err, sizeof err) : NULL;
    int ok = m && gram_matcher_accept_bytes(m, text, strlen(text)) == 0 && gram_matcher_can_end(m);
    gram_matcher_free(m);
    gram_index_free(ix);
    gram_free(g);
    return ok;
}

static void test_grammar(void) {
    gram_vocab_t *v = byte_vocab();
    CHECK(v != NULL);
    struct {
        tc_family_t f;
        const char *good;        /* a recorded call the grammar must accept */
        const char *bad;         /* a wrong one it must reject */
        const char *name, *args; /* what the parser makes of `good` */
    } cases[] = {
        {TC_FAMILY_HERMES,
         "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\", "
         "\"unit\": \"celsius\"}}\n</tool_call>",
         "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": 5}}\n</tool_call>",
         "get_weather", "{\"location\":\"Paris\",\"unit\":\"celsius\"}"},
        {TC_FAMILY_LLAMA3,
         "{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\", \"days\": 3}}",
         "{\"name\": \"get_weather\", \"parameters\": {\"days\": 3}}", "get_weather",
         "{\"location\":\"Paris\",\"days\":3}"},
        {TC_FAMILY_DEEPSEEK,
         DS_CALLS_BEGIN DS_CALL_BEGIN
         "function" DS_SEP
         "get_weather\n```json\n{\"location\": \"Paris\"}\n```" DS_CALL_END DS_CALLS_END,
         DS_CALLS_BEGIN DS_CALL_BEGIN
         "function" DS_SEP
         "get_weather\n```json\n{\"location\": \"Paris\", \"unit\": \"kelvin\"}\n```" DS_CALL_END
             DS_CALLS_END,
         "get_weather", "{\"location\":\"Paris\"}"},
        {TC_FAMILY_DEEPSEEK_V31,
         DS_CALLS_BEGIN DS_CALL_BEGIN "get_time" DS_SEP "{}" DS_CALL_END DS_CALLS_END,
         DS_CALLS_BEGIN DS_CALL_BEGIN "get_date" DS_SEP "{}" DS_CALL_END DS_CALLS_END, "get_time",
         "{}"},
        {TC_FAMILY_GLM4, "get_weather\n{\"location\": \"Beijing\"}",
         "get_weather\n{\"city\": \"Beijing\"}", "get_weather", "{\"location\":\"Beijing\"}"},
        {TC_FAMILY_GLM45,
         "<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Beijing</"
         "arg_value>\n<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n</tool_call>",
         "<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Beijing</"
         "arg_value>\n<arg_key>days</arg_key>\n<arg_value>three</arg_value>\n</tool_call>",
         "get_weather", "{\"location\":\"Beijing\",\"days\":3}"},
        {TC_FAMILY_INTERNLM2,
         "<|action_start|><|plugin|>\n{\"name\": \"brave_search\", \"parameters\": {\"query\": "
         "\"x\"}}<|action_end|>",
         "<|action_start|><|plugin|>\n{\"name\": \"brave_search\", \"parameters\": "
         "{}}<|action_end|>",
         "brave_search", "{\"query\":\"x\"}"},
        {TC_FAMILY_MISTRAL, "[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {}}]",
         "[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {}}", "get_time", "{}"},
        {TC_FAMILY_HARMONY,
         "<|channel|>analysis<|message|>The user wants Paris.<|end|><|start|>assistant"
         "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
         "{\"location\": \"Paris\"}",
         "<|channel|>analysis<|message|>a <|x|><|end|><|start|>assistant"
         "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
         "{\"location\": \"Paris\"}",
         "get_weather", "{\"location\":\"Paris\"}"},
        {TC_FAMILY_QWEN3_CODER,
         "<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n"
         "<parameter=unit>\ncelsius\n</parameter>\n<parameter=days>\n3\n</parameter>\n"
         "</function>\n</tool_call>",
         "<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n"
         "<parameter=days>\nthree\n</parameter>\n</function>\n</tool_call>",
         "get_weather", "{\"location\":\"Paris\",\"unit\":\"celsius\",\"days\":3}"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        sl_buf_t g = {0};
        char err[512];
        int rc = tc_build_grammar(cases[i].f, g_tools, TC_CHOICE_REQUIRED, NULL, false, &g, err,
                                  sizeof err);
        CHECK_MSG(rc == 0, "%s: %s", tc_family_name(cases[i].f), err);
        if (rc == 0) {
            CHECK_MSG(grammar_accepts(g.data, v, cases[i].good) == 1, "%s rejects its call\n%s",
                      tc_family_name(cases[i].f), g.data);
            CHECK_MSG(grammar_accepts(g.data, v, cases[i].bad) == 0, "%s accepts a wrong call",
                      tc_family_name(cases[i].f));
        }
        sl_buf_free(&g);
        /* the parser reads what the grammar forces */
        cfg_t c = {cases[i].f, false, false, g_tools};
        expect_parse(tc_family_name(cases[i].f), &c, cases[i].good, NULL,
                     cases[i].f == TC_FAMILY_HARMONY ? "The user wants Paris." : NULL, 1,
                     CALLS(cases[i].name, cases[i].args), true);
    }
    /* markers: every trigger is one (harmony's: a marker, then header
     * text); each marker of a recorded call is listed */
    for (int f = 0; f < TC_FAMILY_COUNT; f++) {
        const char *const *mk = tc_family_markers((tc_family_t)f);
        tc_trigger_t tr = tc_trigger((tc_family_t)f);
        for (int k = 0; k < 4 && tr.words[k]; k++) {
            bool listed = false;
            for (size_t q = 0; mk[q]; q++)
                listed |= f == TC_FAMILY_HARMONY ? strncmp(mk[q], tr.words[k], strlen(mk[q])) == 0
                                                 : strcmp(mk[q], tr.words[k]) == 0;
            CHECK_MSG(listed, "%s: trigger %s is not a marker", tc_family_name((tc_family_t)f), tr.words[k]);
        }
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        const char *const *mk = tc_family_markers(cases[i].f);
        size_t found = 0, n = 0;
        for (; mk[n]; n++) found += strstr(cases[i].good, mk[n]) != NULL;
        /* (Mistral's recorded call is the [TOOL_CALLS][...] form, without [ARGS]) */
        CHECK_MSG(cases[i].f == TC_FAMILY_GLM4 || cases[i].f == TC_FAMILY_LLAMA3 ? n <= 1 : found >= (n > 2 ? 2 : 1),
                  "%s: %zu of %zu markers in its call", tc_family_name(cases[i].f), found, n);
    }
    /* named: only that tool; parallel: several calls */
    sl_buf_t g = {0};
    CHECK(tc_build_grammar(TC_FAMILY_HERMES, g_tools, TC_CHOICE_NAMED, "get_time", true, &g, NULL,
                           0) == 0);
    const char *t1 = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
    const char *t2 = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": "
                     "\"Paris\"}}\n</tool_call>";
    char both[512];
    snprintf(both, sizeof both, "%s\n%s", t1, t1);
    CHECK(grammar_accepts(g.data, v, t1) == 1);
    CHECK(grammar_accepts(g.data, v, t2) == 0);
    CHECK(grammar_accepts(g.data, v, both) == 1);
    /* empty `properties` (and no parameters at all): only {} */
    CHECK(grammar_accepts(g.data, v, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"x\": 1}}\n</tool_call>") == 0);
    sl_buf_free(&g);
    json_t *bare = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"ping\"}}]", 0, NULL);
    CHECK(tc_build_grammar(TC_FAMILY_HERMES, bare, TC_CHOICE_REQUIRED, NULL, false, &g, NULL, 0) == 0);
    CHECK(grammar_accepts(g.data, v, "<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>") == 1);
    CHECK(grammar_accepts(g.data, v, "<tool_call>\n{\"name\": \"ping\", \"arguments\": {\"a\": \"b\"}}\n</tool_call>") == 0);
    json_decref(bare);
    sl_buf_free(&g);
    CHECK(tc_build_grammar(TC_FAMILY_HERMES, g_tools, TC_CHOICE_REQUIRED, NULL, false, &g, NULL,
                           0) == 0);
    CHECK(grammar_accepts(g.data, v, both) == 0); /* not parallel: one call */
    sl_buf_free(&g);
    CHECK(tc_build_grammar(TC_FAMILY_HERMES, g_tools, TC_CHOICE_NAMED, "nope", true, &g, NULL, 0) <
          0);
    CHECK(tc_build_grammar(TC_FAMILY_HERMES, g_tools, TC_CHOICE_NONE, NULL, true, &g, NULL, 0) < 0);
    /* an unsupported schema keyword is an error naming it */
    json_t *weird = json_loads(
        "[{\"type\":\"function\",\"function\":{\"name\":\"w\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"x\":{\"type\":\"string\",\"contentEncoding\":\"base64\"}}}}}]",
        0, NULL);
    char err[512] = "";
    CHECK(tc_build_grammar(TC_FAMILY_HERMES, weird, TC_CHOICE_REQUIRED, NULL, true, &g, err,
                           sizeof err) < 0);
    CHECK_MSG(strstr(err, "contentEncoding") != NULL, "%s", err);
    json_decref(weird);
    sl_buf_free(&g);
    /* triggers */
    tc_trigger_t tr = tc_trigger(TC_FAMILY_HERMES);
    CHECK(tr.words[0] && strcmp(tr.words[0], "<tool_call>") == 0 && !tr.words[1] &&
          tr.lazy_supported);
    tr = tc_trigger(TC_FAMILY_LLAMA3);
    CHECK(strcmp(tr.words[0], "<|python_tag|>") == 0 && strcmp(tr.start_words[0], "{") == 0);
    CHECK(!tc_trigger(TC_FAMILY_GLM4).lazy_supported);
    gram_vocab_free(v);
}

/* ---- harmony grammars: tool_choice auto (lazy) and structured output ---- */

/* The lazy grammar of tool_choice auto is entered at a call header's
 * trigger; each trigger word begins one accepted call, in the header
 * orders gpt-oss writes, and the parser reads the same text as a call. */
static void test_harmony_lazy(void) {
    gram_vocab_t *v = byte_vocab();
    tc_trigger_t tr = tc_trigger(TC_FAMILY_HARMONY);
    CHECK(tr.lazy_supported);
    CHECK(tr.words[0] && strcmp(tr.words[0], "<|channel|>commentary to=functions.") == 0);
    CHECK(tr.words[1] && strcmp(tr.words[1], "<|channel|>analysis to=functions.") == 0);
    CHECK(tr.words[2] && strcmp(tr.words[2], "<|start|>assistant to=functions.") == 0 &&
          !tr.words[3]);
    CHECK(tr.start_words[0] && strcmp(tr.start_words[0], "to=functions.") == 0 &&
          !tr.start_words[1]);
    sl_buf_t g = {0};
    char err[512] = "";
    CHECK_MSG(tc_build_grammar(TC_FAMILY_HARMONY, g_tools, TC_CHOICE_AUTO, NULL, true, &g, err,
                               sizeof err) == 0,
              "%s", err);
    static const struct {
        const char *call;   /* from its trigger on, as the engine feeds the matcher */
        const char *before; /* output before the trigger, for the parser */
        const char *name, *args;
    } good[] = {
        {"to=functions.get_weather<|channel|>commentary json<|message|>{\"location\": \"Paris\"}",
         " ", "get_weather", "{\"location\":\"Paris\"}"},
        {"to=functions.get_time<|channel|>analysis<|message|>{}", "", "get_time", "{}"},
        {"<|start|>assistant to=functions.get_time<|channel|>commentary "
         "<|constrain|>json<|message|>{}",
         H_ANALYSIS "Time?<|end|>", "get_time", "{}"},
        {"<|channel|>commentary to=functions.get_weather "
         "<|constrain|>json<|message|>{\"location\": \"Oslo\", "
         "\"days\": 2}",
         "", "get_weather", "{\"location\":\"Oslo\",\"days\":2}"},
        {"<|channel|>analysis to=functions.brave_search<|message|>{\"query\": \"x\"}", "",
         "brave_search", "{\"query\":\"x\"}"},
        {"<|channel|>commentary to=functions.get_time json<|message|>{}",
         H_ANALYSIS "A.<|end|><|start|>assistant", "get_time", "{}"},
    };
    bool begins[4] = {false};
    for (size_t i = 0; i < SL_ARRAY_LEN(good); i++) {
        CHECK_MSG(grammar_accepts(g.data, v, good[i].call) == 1, "lazy harmony rejects %s\n%s",
                  good[i].call, g.data);
        for (int k = 0; k < 3; k++)
            begins[k] |= strncmp(good[i].call, tr.words[k], strlen(tr.words[k])) == 0;
        begins[3] |= strncmp(good[i].call, tr.start_words[0], strlen(tr.start_words[0])) == 0;
        char text[512];
        snprintf(text, sizeof text, "%s%s<|call|>", good[i].before, good[i].call);
        cfg_t c = {TC_FAMILY_HARMONY, false, false, g_tools};
        const char *reasoning = strstr(good[i].before, "Time?") ? "Time?"
                                : strstr(good[i].before, "A.")  ? "A."
                                                                : NULL;
        expect_parse(good[i].call, &c, text, NULL, reasoning, 1, CALLS(good[i].name, good[i].args),
                     true);
    }
    for (int k = 0; k < 4; k++)
        CHECK_MSG(begins[k], "trigger %d begins no accepted call", k);
    static const char *const bad[] =
        {
            "to=functions.get_date<|channel|>commentary json<|message|>{}", /* no such tool */
            "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"days\": "
            "2}",                                                  /* required */
            "<|channel|>final to=functions.get_time<|message|>{}", /* not a call channel */
            "to=functions.get_time<|message|>{}",                  /* no channel */
            "to=functions.get_time<|channel|>commentary json<|message|>{} and more", /* one call,
                                                                                        then the end
                                                                                      */
            "<|channel|>commentary<|message|>Let me check.", /* a preamble: no trigger */
        };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        CHECK_MSG(grammar_accepts(g.data, v, bad[i]) == 0, "lazy harmony accepts %s", bad[i]);
    sl_buf_free(&g);
    gram_vocab_free(v);
}

/* Structured output on harmony: the constraint applies to the final
 * message; an analysis message may come first (reasoning on) or not; with
 * tools the turn may instead be a call; the parsed content is exactly the
 * constrained text. */
static void test_harmony_final(void) {
    gram_vocab_t *v = byte_vocab();
    char err[512] = "";
    json_t *schema =
        json_loads("{\"type\":\"object\",\"properties\":{\"answer\":{\"type\":\"integer\"}},"
                   "\"required\":[\"answer\"],\"additionalProperties\":false}",
                   0, NULL);
    char *inner = gram_json_schema_to_gbnf(schema, err, sizeof err);
    CHECK_MSG(inner != NULL, "%s", err);
    json_decref(schema);
    const char *fin = "<|channel|>final<|message|>{\"answer\": 42}";
    const char *think_fin = H_ANALYSIS
        "Think. 2<3 |x|<|end|><|start|>assistant<|channel|>final<|message|>{\"answer\":1}";
    const char *call = H_CALL("get_time") "{}";
    const char *think_call = H_ANALYSIS
        "Call.<|end|><|start|>assistant" H_CALL("get_weather") "{\"location\": \"Rome\"}";
    sl_buf_t g = {0};
    /* reasoning on, no tools */
    CHECK_MSG(tc_harmony_grammar(inner, NULL, TC_CHOICE_AUTO, NULL, true, &g, err, sizeof err) == 0,
              "%s", err);
    CHECK(grammar_accepts(g.data, v, fin) == 1);
    CHECK(grammar_accepts(g.data, v, think_fin) == 1);
    CHECK(grammar_accepts(g.data, v, "{\"answer\": 42}") == 0); /* no header */
    CHECK(grammar_accepts(g.data, v, "<|channel|>final<|message|>{\"answer\": \"x\"}") ==
          0); /* schema */
    CHECK(grammar_accepts(g.data, v, "<|channel|>final<|message|>{\"answer\": 4} ok") ==
          0); /* after it */
    CHECK(grammar_accepts(g.data, v, "<|channel|>commentary<|message|>{\"answer\": 4}") ==
          0);                                     /* channel */
    CHECK(grammar_accepts(g.data, v, call) == 0); /* no tools */
    sl_buf_clear(&g);
    /* reasoning off: the final message first */
    CHECK(tc_harmony_grammar(inner, NULL, TC_CHOICE_AUTO, NULL, false, &g, err, sizeof err) == 0);
    CHECK(grammar_accepts(g.data, v, fin) == 1);
    CHECK(grammar_accepts(g.data, v, think_fin) == 0);
    sl_buf_clear(&g);
    /* tool_choice auto with tools: the answer or one call */
    CHECK(tc_harmony_grammar(inner, g_tools, TC_CHOICE_AUTO, NULL, true, &g, err, sizeof err) == 0);
    CHECK(grammar_accepts(g.data, v, fin) == 1 && grammar_accepts(g.data, v, think_fin) == 1);
    CHECK(grammar_accepts(g.data, v, call) == 1 && grammar_accepts(g.data, v, think_call) == 1);
    CHECK(grammar_accepts(g.data, v, H_CALL("get_weather") "{\"days\": 1}") == 0);
    sl_buf_clear(&g);
    /* a required / named call without a final message (reasoning on, off) */
    CHECK(tc_harmony_grammar(NULL, g_tools, TC_CHOICE_NAMED, "get_time", true, &g, err,
                             sizeof err) == 0);
    CHECK(grammar_accepts(g.data, v, call) == 1 && grammar_accepts(g.data, v, fin) == 0);
    CHECK(grammar_accepts(g.data, v,
                          H_ANALYSIS "x<|end|><|start|>assistant" H_CALL("get_time") "{}") == 1);
    CHECK(grammar_accepts(g.data, v, think_call) == 0); /* not the named one */
    sl_buf_clear(&g);
    CHECK(tc_harmony_grammar(NULL, g_tools, TC_CHOICE_REQUIRED, NULL, false, &g, err, sizeof err) ==
          0);
    CHECK(grammar_accepts(g.data, v, call) == 1 && grammar_accepts(g.data, v, think_call) == 0);
    sl_buf_clear(&g);
    CHECK(tc_harmony_grammar(NULL, NULL, TC_CHOICE_AUTO, NULL, true, &g, err, sizeof err) < 0);
    CHECK(tc_harmony_grammar(NULL, g_tools, TC_CHOICE_NONE, NULL, true, &g, err, sizeof err) < 0);
    free(inner);
    /* the other sources: a GBNF whose rule names are ours too, a regex, json_object */
    static const struct {
        int kind;
        const char *src, *good, *bad;
    } srcs[] = {
        {GRAM_SRC_GBNF, "root ::= h-text c-call\nh-text ::= \"yes\" | \"no\"\nc-call ::= \"!\"",
         "yes!", "maybe!"},
        {GRAM_SRC_REGEX, "[0-9]{3}", "123", "12a"},
        {GRAM_SRC_JSON_OBJECT, NULL, "{\"k\": [1, 2]}", "[1, 2]"},
        {GRAM_SRC_JSON_ANY, NULL, "[1, 2]", "[1, 2"},
        {GRAM_SRC_JSON_SCHEMA, "{\"enum\":[\"a\",\"b\"]}", "\"b\"", "\"c\""},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(srcs); i++) {
        char *src = gram_source_to_gbnf(srcs[i].kind, srcs[i].src,
                                        srcs[i].src ? strlen(srcs[i].src) : 0, err, sizeof err);
        CHECK_MSG(src != NULL, "source %zu: %s", i, err);
        if (!src) continue;
        CHECK(tc_harmony_grammar(src, g_tools, TC_CHOICE_AUTO, NULL, true, &g, err, sizeof err) ==
              0);
        char text[256];
        snprintf(text, sizeof text, "<|channel|>final<|message|>%s", srcs[i].good);
        CHECK_MSG(grammar_accepts(g.data, v, text) == 1, "source %zu rejects %s\n%s", i, text,
                  g.data);
        snprintf(text, sizeof text, "<|channel|>final<|message|>%s", srcs[i].bad);
        CHECK_MSG(grammar_accepts(g.data, v, text) == 0, "source %zu accepts %s", i, text);
        CHECK(grammar_accepts(g.data, v, call) == 1);
        sl_buf_clear(&g);
        free(src);
    }
    CHECK(gram_source_to_gbnf(GRAM_SRC_REGEX, "(a", 2, err, sizeof err) == NULL);
    CHECK(gram_source_to_gbnf(GRAM_SRC_JSON_SCHEMA, "{\"not\":{}}", 10, err, sizeof err) == NULL &&
          strstr(err, "not"));
    CHECK(gram_source_to_gbnf(99, "", 0, err, sizeof err) == NULL);
    sl_buf_free(&g);
    /* the parser: content is exactly the final message, reasoning the analysis */
    cfg_t c = {TC_FAMILY_HARMONY, false, false, g_tools};
    expect_parse("harmony structured final", &c, think_fin, "{\"answer\":1}", "Think. 2<3 |x|", 0,
                 NULL, true);
    expect_parse("harmony structured final, reasoning off", &c, fin, "{\"answer\": 42}", NULL, 0,
                 NULL, true);
    gram_vocab_free(v);
}

/* ---- Qwen3-Coder / Qwen3.5 (XML calls) ---- */

static const char *XML_TOOLS_JSON =
    "[{\"type\":\"function\",\"function\":{\"name\":\"write_file\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{"
    "\"path\":{\"type\":\"string\"},"
    "\"content\":{\"type\":\"string\",\"description\":\"text\"},"
    "\"overwrite\":{\"type\":\"boolean\"},"
    "\"mode\":{\"type\":\"integer\"},"
    "\"ratio\":{\"type\":\"number\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"meta\":{\"type\":\"object\"},"
    "\"note\":{\"type\":[\"string\",\"null\"]},"
    "\"opt\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]},"
    "\"level\":{\"enum\":[\"low\",\"high\"]},"
    "\"either\":{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\"}]},"
    "\"nothing\":{\"type\":\"null\"},"
    "\"free\":{\"description\":\"no type\"}},"
    "\"required\":[\"path\",\"content\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}]";

#define XC(name) "<tool_call>\n<function=" name ">\n"
#define XP(k, v) "<parameter=" k ">\n" v "\n</parameter>\n"
#define XE "</function>\n</tool_call>"

static void test_qwen3_coder(void) {
    json_t *xt = json_loads(XML_TOOLS_JSON, 0, NULL);
    CHECK(xt != NULL);
    cfg_t c = {TC_FAMILY_QWEN3_CODER, true, false, g_tools};
    expect_parse("xml single call (the template's layout)", &c,
                 XC("get_weather") XP("location", "Paris") XP("days", "3") XE, NULL, NULL, 1,
                 CALLS("get_weather", "{\"location\":\"Paris\",\"days\":3}"), true);
    expect_parse("xml reasoning, content, two calls", &c,
                 "<think>\nThe user wants two cities.\n</think>\n\nLet me check both.\n\n" XC(
                     "get_weather") XP("location", "Paris") XE "\n" XC("get_weather")
                     XP("location", "東京") XP("unit", "celsius") XE,
                 "Let me check both.", "The user wants two cities.", 2,
                 CALLS("get_weather", "{\"location\":\"Paris\"}", "get_weather",
                       "{\"location\":\"東京\",\"unit\":\"celsius\"}"),
                 true);
    expect_parse("xml zero-arg", &c, XC("get_time") XE, NULL, NULL, 1, CALLS("get_time", "{}"),
                 true);
    expect_parse("xml compact layout: no newlines to trim", &c,
                 "<tool_call><function=get_weather><parameter=location>Paris</parameter>"
                 "<parameter=days> 4 </parameter></function></tool_call>",
                 NULL, NULL, 1, CALLS("get_weather", "{\"location\":\"Paris\",\"days\":4}"), true);
    expect_parse("xml bare <function=> without <tool_call>", &c,
                 "Sure. <function=get_time>\n</function>", "Sure.", NULL, 1,
                 CALLS("get_time", "{}"), true);
    expect_parse("xml missing </tool_call> at the end is forgiven", &c,
                 XC("get_weather") XP("location", "Rome") "</function>", NULL, NULL, 1,
                 CALLS("get_weather", "{\"location\":\"Rome\"}"), true);
    expect_parse("xml tool unknown to the request: every value a string", &c,
                 XC("lookup") XP("id", "42") XE, NULL, NULL, 1, CALLS("lookup", "{\"id\":\"42\"}"),
                 true);
    expect_parse("xml nested tag text is the value", &c,
                 XC("get_weather") XP("location", "<parameter=x>\nParis") XE, NULL, NULL, 1,
                 CALLS("get_weather", "{\"location\":\"<parameter=x>\\nParis\"}"), true);
    cfg_t open = {TC_FAMILY_QWEN3_CODER, true, true, g_tools};
    expect_parse("xml think opened by the prompt (Qwen3.5)", &open,
                 "The user asks for the time.\n</think>\n\n" XC("get_time") XE, NULL,
                 "The user asks for the time.", 1, CALLS("get_time", "{}"), true);

    /* conversion by the schema's type */
    cfg_t t = {TC_FAMILY_QWEN3_CODER, false, false, xt};
    expect_parse(
        "xml typed parameters", &t,
        XC("write_file") XP("path", "a/b.py") XP("content",
                                                 "def f():\n\treturn \"</param>\" + '\\\\' < 3\n")
            XP("overwrite", "True") XP("mode", "420") XP("ratio", "2.50") XP(
                "tags", "[\"x\", \"y\"]") XP("meta", "{\"k\": {\"n\": [1, 2e3]}}")
                XP("note", "null") XP("opt", "text") XP("level", "high") XP("either", "7")
                    XP("nothing", "null") XP("free", "{\"a\": 1}") XE,
        NULL, NULL, 1,
        CALLS("write_file",
              "{\"path\":\"a/b.py\",\"content\":\"def f():\\n\\treturn \\\"</param>\\\" + "
              "'\\\\\\\\' < 3\\n\",\"overwrite\":true,\"mode\":420,\"ratio\":2.50,\"tags\":[\"x\","
              "\"y\"],\"meta\":{\"k\":{\"n\":[1,2e3]}},\"note\":null,\"opt\":\"text\",\"level\":"
              "\"high\",\"either\":7,\"nothing\":null,\"free\":\"{\\\"a\\\": 1}\"}"),
        true);
    expect_parse("xml values that do not parse stay strings; strings never parse", &t,
                 XC("write_file") XP("path", "null") XP("content", "123") XP("mode", "forty")
                     XP("overwrite", "yes") XP("tags", "[1, 2") XP("either", "x y")
                         XP("opt", "null") XP("undeclared", "{}") XE,
                 NULL, NULL, 1,
                 CALLS("write_file",
                       "{\"path\":\"null\",\"content\":\"123\",\"mode\":\"forty\",\"overwrite\":"
                       "\"yes\",\"tags\":\"[1, 2\",\"either\":\"x y\",\"opt\":null,"
                       "\"undeclared\":\"{}\"}"),
                 true);
    expect_parse("xml exactly one newline trimmed on each side", &t,
                 XC("write_file") XP("path", "\n x \n") XP("content", "") "<parameter=note>\n"
                     "</parameter>\n" XE,
                 NULL, NULL, 1,
                 CALLS("write_file", "{\"path\":\"\\n x \\n\",\"content\":\"\",\"note\":\"\"}"),
                 true);
    expect_parse("xml invalid UTF-8 in a value is replaced", &t,
                 XC("write_file") XP("path", "a\xff\xc3") XP("content", "\xe6\x9d\xb1") XE, NULL,
                 NULL, 1,
                 CALLS("write_file",
                       "{\"path\":\"a\xef\xbf\xbd\xef\xbf\xbd\",\"content\":\"\xe6\x9d\xb1\"}"),
                 true);
    expect_parse("xml control characters escaped", &t,
                 XC("write_file") XP("path", "\x01\x1f") XP("content", "\r") XE, NULL, NULL, 1,
                 CALLS("write_file", "{\"path\":\"\\u0001\\u001f\",\"content\":\"\\r\"}"), true);

    /* malformed, truncated, hostile: the raw text is content */
    const char *bad[] = {
        /* no </parameter> before </function>: the value never ends */
        XC("get_weather") "<parameter=location>\nParis\n</function>\n</tool_call>",
        XC("get_weather") XP("location", "Paris") XP("location", "Rome") XE, /* given twice */
        "<tool_call>\n<function=get weather>\n</function>\n</tool_call>",    /* bad name */
        "<tool_call>\n<function=>\n</function>\n</tool_call>",               /* no name */
        "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>", /* Hermes */
        XC("get_weather") "<parameter=a<b>\nx\n</parameter>\n" XE,           /* '<' in a name */
        XC("get_weather") "<parameter=>\nx\n</parameter>\n" XE,              /* empty name */
        XC("get_weather") "<parameter=a\nb>\nx\n</parameter>\n" XE,         /* newline in name */
        XC("get_weather") "text\n" XE,                                       /* stray text */
        XC("get_weather") XP("location", "Paris"),                         /* truncated */
        XC("get_weather") "<parameter=location>\nPar",                     /* truncated */
        "<tool_call>\n<function=get_wea",                                    /* truncated */
        "<tool_call>\n",                                                     /* truncated */
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        char what[64];
        snprintf(what, sizeof what, "xml malformed %zu", i);
        expect_parse(what, &c, bad[i], bad[i], NULL, 0, NULL, false);
    }
    /* a huge parameter name (over TC_XML_MAX_PNAME) */
    sl_buf_t huge = {0};
    sl_buf_puts(&huge, XC("get_weather") "<parameter=");
    for (int i = 0; i < 3000; i++)
        sl_buf_putc(&huge, 'k');
    sl_buf_puts(&huge, ">\nx\n</parameter>\n" XE);
    expect_parse("xml huge parameter name", &c, huge.data, huge.data, NULL, 0, NULL, false);
    sl_buf_free(&huge);
    expect_parse("xml a good call after a malformed one", &c,
                 "<tool_call>\n<function=get weather>\n</function>\n</tool_call>\n" XC(
                     "get_time") XE,
                 "<tool_call>\n<function=get weather>\n</function>\n</tool_call>", NULL, 1,
                 CALLS("get_time", "{}"), true);
    expect_parse("xml marker-like content", &c, "Use <function> and <tool_ and <param tags. <fun",
                 "Use <function> and <tool_ and <param tags. <fun", NULL, 0, NULL, true);
    expect_parse("xml text after a call is content", &c,
                 XC("get_time") XE "\nDone.", "Done.", NULL, 1, CALLS("get_time", "{}"), true);

    /* every split point, both streaming modes: the same result, and the
     * reassembled stream equals it (no marker byte ever sent as content);
     * every truncation: arguments stay JSON objects, held streams still equal */
    {
        const char *text =
            "<think>\nplan\n</think>\n\nChecking <now>.\n\n" XC("write_file")
                XP("path", "p") XP("content", "a\n</param>\n\"q\"\n") XP("mode", "7")
                    XP("tags", "[\"t\"]") XE "\n" XC("get_time") XE;
        cfg_t tc = {TC_FAMILY_QWEN3_CODER, true, false, xt};
        stream_t st0 = {0};
        json_t *ref = run_parse(&tc, text, 0, false, &st0);
        char *refs = dump(ref);
        CHECK_MSG(json_array_size(json_object_get(ref, "tool_calls")) == 2 &&
                      strcmp(json_string_value(json_object_get(ref, "content")), "Checking <now>.") == 0,
                  "%s", refs);
        size_t n = strlen(text);
        for (size_t cut = 0; cut <= n; cut++) {
            for (int inc = 0; inc < 2; inc++) {
                for (int trunc = 0; trunc < 2; trunc++) {
                    stream_t st = {0};
                    tc_parser_opts_t o = {.family = TC_FAMILY_QWEN3_CODER, .reasoning = true,
                                          .incremental = inc, .tools = xt, .id_seed = 42,
                                          .on_event = on_event, .ud = &st};
                    tc_parser_t *p = tc_parser_new(&o, NULL, 0);
                    CHECK(tc_parser_feed(p, text, cut, false) == 0);
                    if (!trunc) CHECK(tc_parser_feed(p, text + cut, n - cut, false) == 0);
                    CHECK(tc_parser_finish(p) == 0);
                    const tc_result_t *r = tc_parser_result(p);
                    json_t *m = tc_result_message_json(r);
                    char *ms = dump(m);
                    for (size_t i = 0; i < r->n_calls; i++) {
                        json_t *a = json_loads(r->calls[i].arguments, 0, NULL);
                        CHECK(json_is_object(a));
                        json_decref(a);
                    }
                    if (!trunc) CHECK_MSG(strcmp(ms, refs) == 0, "cut %zu inc %d: %s", cut, inc, ms);
                    if (!trunc || !inc) {
                        json_t *sm = stream_message(&st);
                        char *ss = dump(sm);
                        CHECK_MSG(strcmp(ss, ms) == 0, "cut %zu inc %d trunc %d: stream %s\n  result %s",
                                  cut, inc, trunc, ss, ms);
                        free(ss);
                        json_decref(sm);
                    }
                    CHECK(st.bad == 0);
                    free(ms);
                    json_decref(m);
                    tc_parser_free(p);
                    stream_free(&st);
                }
            }
        }
        free(refs);
        json_decref(ref);
        stream_free(&st0);
    }
    /* incremental mode streams a long string argument as it is generated:
     * argument deltas arrive before its </parameter> */
    {
        stream_t st = {0};
        tc_parser_opts_t o = {.family = TC_FAMILY_QWEN3_CODER, .incremental = true,
                              .tools = xt, .id_seed = 9, .on_event = on_event, .ud = &st};
        tc_parser_t *p = tc_parser_new(&o, NULL, 0);
        const char *head = XC("write_file") XP("path", "x.txt") "<parameter=content>\n";
        CHECK(tc_parser_feed(p, head, strlen(head), false) == 0);
        size_t before = st.calls[0].args.len;
        for (int i = 0; i < 50; i++)
            CHECK(tc_parser_feed(p, "line \"é\"\n", 10, false) == 0);
        CHECK_MSG(st.n_calls == 1 && st.calls[0].args.len > before + 400,
                  "string argument not streamed: %zu bytes", st.calls[0].args.len);
        /* the held trailing newline is the format's */
        const char *tail = "</parameter>\n" XE;
        CHECK(tc_parser_feed(p, tail, strlen(tail), false) == 0);
        CHECK(tc_parser_finish(p) == 0);
        const tc_result_t *r = tc_parser_result(p);
        CHECK(r->n_calls == 1 && st.calls[0].ended && st.bad == 0);
        CHECK(r->n_calls == 1 && strcmp(r->calls[0].arguments, st.calls[0].args.data) == 0);
        json_t *a = r->n_calls ? json_loads(r->calls[0].arguments, 0, NULL) : NULL;
        const char *s = json_string_value(json_object_get(a, "content"));
        CHECK(s && strlen(s) == 50 * 10 - 1 && strncmp(s, "line \"é\"\nline", 14) == 0);
        json_decref(a);
        tc_parser_free(p);
        stream_free(&st);
    }
    /* special tokens: <tool_call> as a control token is parsed, <|im_end|> dropped */
    {
        tc_parser_opts_t o = {.family = TC_FAMILY_QWEN3_CODER, .tools = g_tools, .id_seed = 1};
        tc_parser_t *p = tc_parser_new(&o, NULL, 0);
        const char *body = "\n<function=get_time>\n</function>\n";
        CHECK(tc_parser_feed(p, "<tool_call>", 11, true) == 0);
        CHECK(tc_parser_feed(p, body, strlen(body), false) == 0);
        CHECK(tc_parser_feed(p, "</tool_call>", 12, true) == 0);
        CHECK(tc_parser_feed(p, "<|im_end|>", 10, true) == 0);
        CHECK(tc_parser_finish(p) == 0);
        const tc_result_t *r = tc_parser_result(p);
        CHECK(r->n_calls == 1 && r->content_len == 0);
        tc_parser_free(p);
    }
    /* parameter kinds */
    struct {
        const char *schema;
        bool is_string;
    } kinds[] = {
        {"{\"type\":\"string\"}", true},
        {"{\"type\":[\"string\",\"null\"]}", true},
        {"{\"anyOf\":[{\"type\":\"string\",\"maxLength\":3},{\"type\":\"null\"}]}", true},
        {"{\"enum\":[\"a\",\"b\"]}", true},
        {"{\"const\":\"a\"}", true},
        {"{\"description\":\"anything\"}", true},
        {"{}", true},
        {"{\"type\":\"integer\"}", false},
        {"{\"type\":\"boolean\"}", false},
        {"{\"type\":[\"string\",\"integer\"]}", false},
        {"{\"enum\":[\"a\",1]}", false},
        {"{\"anyOf\":[{\"type\":\"string\"},{}]}", false},
        {"{\"properties\":{}}", false},
        {"{\"$ref\":\"#/$defs/x\"}", false},
        {"{\"items\":{\"type\":\"string\"}}", false},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(kinds); i++) {
        json_t *sc = json_loads(kinds[i].schema, 0, NULL);
        int k = tc_xml_param_kinds(sc);
        CHECK_MSG(tc_xml_is_string(k) == kinds[i].is_string, "%s: kinds %d", kinds[i].schema, k);
        json_decref(sc);
    }
    CHECK(tc_xml_is_string(tc_xml_param_kinds(NULL))); /* undeclared parameter */
    json_decref(xt);
}

/* The call grammar of the XML family accepts exactly the calls the parser
 * reads back as written: string values are raw text (checked byte for byte
 * against random texts built from the closing tag's pieces), the others
 * JSON of their schema, in the schema's order, required ones present. */
static const char *XG_TOOLS_JSON =
    "[{\"type\":\"function\",\"function\":{\"name\":\"edit\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"code\":{\"type\":\"string\"},"
    "\"short\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":5},"
    "\"note\":{\"type\":[\"string\",\"null\"]},\"flag\":{\"type\":\"boolean\"},"
    "\"opts\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}},\"required\":"
    "[\"n\"]},\"kind\":{\"const\":\"diff\"},\"level\":{\"enum\":[\"lo\",\"hi\"]}},"
    "\"required\":[\"code\",\"flag\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}]";

/* The one call the parser makes of text (NULL unless exactly one call and
 * no content); caller frees. */
static char *xml_parse_one(const json_t *tools, const char *text) {
    tc_parser_opts_t o = {.family = TC_FAMILY_QWEN3_CODER, .tools = tools, .id_seed = 5};
    tc_parser_t *p = tc_parser_new(&o, NULL, 0);
    tc_parser_feed(p, text, strlen(text), false);
    tc_parser_finish(p);
    const tc_result_t *r = tc_parser_result(p);
    char *out = r->n_calls == 1 && r->content_len == 0 ? strdup(r->calls[0].arguments) : NULL;
    tc_parser_free(p);
    return out;
}

static void test_xml_grammar(void) {
    gram_vocab_t *v = byte_vocab();
    json_t *tools = json_loads(XG_TOOLS_JSON, 0, NULL);
    CHECK(v && tools);
    sl_buf_t g = {0};
    char err[512] = "";
    CHECK_MSG(tc_build_grammar(TC_FAMILY_QWEN3_CODER, tools, TC_CHOICE_NAMED, "edit", false, &g,
                               err, sizeof err) == 0,
              "%s", err);
    struct {
        const char *text, *args; /* args NULL: the grammar must reject text */
    } cases[] = {
        {XC("edit") XP("code", "x") XP("flag", "true") XE, "{\"code\":\"x\",\"flag\":true}"},
        {XC("edit") XP("code", "\nline <a> </b>\n") XP("flag", "false") XE,
         "{\"code\":\"\\nline <a> </b>\\n\",\"flag\":false}"},
        {XC("edit") XP("code", "a</param> << </parameter x") XP("flag", "true") XE,
         "{\"code\":\"a</param> << </parameter x\",\"flag\":true}"},
        {XC("edit") XP("code", "y") XP("short", "abcde") XP("note", "null") XP("flag", "true")
             XP("opts", "{\"n\": 2}") XP("kind", "diff") XP("level", "hi") XE,
         "{\"code\":\"y\",\"short\":\"abcde\",\"note\":null,\"flag\":true,\"opts\":{\"n\":2},"
         "\"kind\":\"diff\",\"level\":\"hi\"}"},
        {XC("edit") XP("code", "y") XP("note", "text") XP("flag", "true") XE,
         "{\"code\":\"y\",\"note\":\"text\",\"flag\":true}"},
        {XC("edit") XP("code", "a</parameter>b") XP("flag", "true") XE, NULL},
        {XC("edit") XP("code", "x") XP("flag", "yes") XE, NULL},
        {XC("edit") XP("code", "x") XP("flag", "True") XE, NULL},
        {XC("edit") XP("code", "x") XE, NULL},                           /* flag required */
        {XC("edit") XP("flag", "true") XP("code", "x") XE, NULL},        /* schema order */
        {XC("edit") XP("code", "x") XP("short", "abcdef") XP("flag", "true") XE, NULL},
        {XC("edit") XP("code", "x") XP("short", "") XP("flag", "true") XE, NULL},
        {XC("edit") XP("code", "x") XP("flag", "true") XP("opts", "{}") XE, NULL},
        {XC("edit") XP("code", "x") XP("flag", "true") XP("kind", "patch") XE, NULL},
        {XC("edit") XP("code", "x") XP("flag", "true") XP("level", "\"hi\"") XE, NULL},
        {XC("edit") XP("code", "x") XP("flag", "true") XP("extra", "1") XE, NULL},
        {XC("get_time") XE, NULL}, /* named: only edit */
        {"<tool_call>\n<function=edit>\n" XP("code", "x") XP("flag", "true") "</function>", NULL},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        int acc = grammar_accepts(g.data, v, cases[i].text);
        CHECK_MSG(acc == (cases[i].args != NULL), "case %zu: grammar %s\n%s", i,
                  acc ? "accepts" : "rejects", cases[i].text);
        if (cases[i].args) {
            char *a = xml_parse_one(tools, cases[i].text);
            CHECK_MSG(a && strcmp(a, cases[i].args) == 0, "case %zu: parsed %s", i, a);
            free(a);
        }
    }
    /* string values: random texts from pieces of the closing tag. The
     * grammar accepts V exactly when it holds no "</parameter>" and does not
     * end inside a partial one (the documented limit); the parser then reads
     * V back unchanged. */
    static const char *const pieces[] = {"a", "<", "/", "</", "</param", "</parameter",
                                         "</parameter>", ">", "\n", "<parameter=x>",
                                         "</function>", "é", " ", "p", "<tool_call>"};
    unsigned r = 99;
    int accepted = 0, rejected = 0;
    for (int it = 0; it < 400; it++) {
        char val[256] = "";
        r = r * 1103515245u + 12345u;
        int n = 1 + (int)((r >> 16) % 6);
        for (int k = 0; k < n; k++) {
            r = r * 1103515245u + 12345u;
            strcat(val, pieces[(r >> 16) % SL_ARRAY_LEN(pieces)]);
        }
        char text[512];
        snprintf(text, sizeof text, XC("edit") "<parameter=code>\n%s\n</parameter>\n" XP("flag", "true") XE, val);
        size_t vl = strlen(val), pl = strlen(TC_XML_PARAM_CLOSE), part = 0;
        for (size_t m = SL_MIN(vl, pl - 1); m > 0 && !part; m--)
            if (memcmp(val + vl - m, TC_XML_PARAM_CLOSE, m) == 0) part = m;
        bool want = !strstr(val, TC_XML_PARAM_CLOSE) && part == 0;
        int acc = grammar_accepts(g.data, v, text);
        CHECK_MSG(acc == want, "value [%s]: grammar %s", val, acc ? "accepts" : "rejects");
        if (acc == 1) {
            accepted++;
            char *a = xml_parse_one(tools, text);
            json_t *o = a ? json_loads(a, 0, NULL) : NULL;
            const char *code = json_string_value(json_object_get(o, "code"));
            CHECK_MSG(code && strcmp(code, val) == 0, "value [%s] parsed as %s", val, a);
            json_decref(o);
            free(a);
        } else {
            rejected++;
        }
    }
    CHECK(accepted > 50 && rejected > 50);
    sl_buf_free(&g);
    /* parallel: calls joined by "\n"; required: any tool */
    CHECK(tc_build_grammar(TC_FAMILY_QWEN3_CODER, tools, TC_CHOICE_REQUIRED, NULL, true, &g, err,
                           sizeof err) == 0);
    CHECK(grammar_accepts(g.data, v, XC("get_time") XE "\n" XC("edit") XP("code", "x") XP("flag", "true") XE) == 1);
    CHECK(grammar_accepts(g.data, v, XC("get_time") XE XC("get_time") XE) == 0);
    sl_buf_free(&g);
    CHECK(tc_build_grammar(TC_FAMILY_QWEN3_CODER, tools, TC_CHOICE_REQUIRED, NULL, false, &g, err,
                           sizeof err) == 0);
    CHECK(grammar_accepts(g.data, v, XC("get_time") XE "\n" XC("get_time") XE) == 0);
    CHECK(grammar_accepts(g.data, v, XC("get_time") XE) == 1);
    sl_buf_free(&g);
    /* parameter names the format cannot carry, bad lengths: errors */
    const char *bad[] = {
        "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"a>b\":{\"type\":\"string\"}}}}}]",
        "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"\":{\"type\":\"string\"}}}}}]",
        "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"s\":{\"type\":\"string\",\"minLength\":3,\"maxLength\":2}}}}}]",
        "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"s\":{\"type\":\"string\",\"maxLength\":100000}}}}}]",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        json_t *bt = json_loads(bad[i], 0, NULL);
        err[0] = 0;
        CHECK_MSG(tc_build_grammar(TC_FAMILY_QWEN3_CODER, bt, TC_CHOICE_REQUIRED, NULL, false, &g,
                                   err, sizeof err) < 0 && err[0],
                  "bad tools %zu accepted", i);
        json_decref(bt);
        sl_buf_free(&g);
    }
    /* an empty enum string, and one with quotes and a newline: literals */
    json_t *et = json_loads(
        "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":"
        "\"object\",\"properties\":{\"e\":{\"enum\":[\"\",\"a \\\"b\\\"\\nc\"]}},"
        "\"required\":[\"e\"]}}}]",
        0, NULL);
    CHECK(et && tc_build_grammar(TC_FAMILY_QWEN3_CODER, et, TC_CHOICE_REQUIRED, NULL, false, &g,
                                 err, sizeof err) == 0);
    CHECK(grammar_accepts(g.data, v, XC("f") XP("e", "") XE) == 1);
    CHECK(grammar_accepts(g.data, v, XC("f") XP("e", "a \"b\"\nc") XE) == 1);
    CHECK(grammar_accepts(g.data, v, XC("f") XP("e", "a") XE) == 0);
    char *ea = xml_parse_one(et, XC("f") XP("e", "a \"b\"\nc") XE);
    CHECK_MSG(ea && strcmp(ea, "{\"e\":\"a \\\"b\\\"\\nc\"}") == 0, "%s", ea);
    free(ea);
    json_decref(et);
    sl_buf_free(&g);
    /* the lazy trigger is <tool_call> (a bare <function= is only parsed) */
    tc_trigger_t tr = tc_trigger(TC_FAMILY_QWEN3_CODER);
    CHECK(tr.lazy_supported && strcmp(tr.words[0], "<tool_call>") == 0 && !tr.words[1]);
    json_decref(tools);
    gram_vocab_free(v);
}

/* Every template of the conformance set keeps its family. */
static void test_detect_templates(void) {
    struct {
        const char *file;
        tc_family_t fam;
        bool reasoning;
    } t[] = {
        {"Qwen2.5", TC_FAMILY_HERMES, false},         {"Qwen3", TC_FAMILY_HERMES, true},
        {"Llama-3.1", TC_FAMILY_LLAMA3, false},       {"DeepSeek-V3", TC_FAMILY_DEEPSEEK, false},
        {"DeepSeek-R1", TC_FAMILY_DEEPSEEK, true},        {"DeepSeek-V2.5", TC_FAMILY_NONE, false},
        {"GLM-4", TC_FAMILY_NONE, false}, /* (glm4 by its vocabulary) */             {"InternLM2.5", TC_FAMILY_NONE, false},
        {"Mistral-Nemo", TC_FAMILY_MISTRAL, false},   {"Llama-2", TC_FAMILY_NONE, false},
        {"gpt-oss", TC_FAMILY_HARMONY, false},        {"Qwen3-Coder", TC_FAMILY_QWEN3_CODER, false},
        {"Qwen3.5", TC_FAMILY_QWEN3_CODER, true},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(t); i++) {
        char path[128], err[256];
        snprintf(path, sizeof path, "tests/data/templates/%s.jinja", t[i].file);
        size_t n = 0;
        char *src = sl_read_file(path, &n, err, sizeof err);
        CHECK_MSG(src != NULL, "%s", err);
        if (!src) continue;
        tc_family_t f = tc_detect(src, n, NULL, NULL);
        CHECK_MSG(f == t[i].fam, "%s: %s, want %s", t[i].file, tc_family_name(f),
                  tc_family_name(t[i].fam));
        CHECK_MSG(tc_detect_reasoning(src, n, NULL, NULL) == t[i].reasoning, "%s reasoning",
                  t[i].file);
        free(src);
    }
}

int main(void) {
    g_tools = json_loads(TOOLS_JSON, 0, NULL);
    CHECK(g_tools != NULL);
    RUN(test_detect);
    RUN(test_hermes);
    RUN(test_llama3);
    RUN(test_deepseek);
    RUN(test_glm);
    RUN(test_internlm_mistral);
    RUN(test_harmony);
    RUN(test_qwen3_coder);
    RUN(test_robustness);
    RUN(test_fuzz_findings);
    RUN(test_json_shapes);
    RUN(test_request);
    RUN(test_grammar);
    RUN(test_harmony_lazy);
    RUN(test_harmony_final);
    RUN(test_xml_grammar);
    RUN(test_detect_templates);
    json_decref(g_tools);
    return test_summary();
}
