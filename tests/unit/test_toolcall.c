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
#include "chat/toolcall.h"
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
    };
    tc_family_t fams[] = {TC_FAMILY_HERMES, TC_FAMILY_DEEPSEEK,  TC_FAMILY_MISTRAL,
                          TC_FAMILY_GLM45,  TC_FAMILY_INTERNLM2, TC_FAMILY_LLAMA3,
                          TC_FAMILY_HERMES};
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
    RUN(test_robustness);
    RUN(test_json_shapes);
    RUN(test_request);
    RUN(test_grammar);
    RUN(test_harmony_lazy);
    RUN(test_harmony_final);
    json_decref(g_tools);
    return test_summary();
}
