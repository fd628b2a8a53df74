/* deps: chat base */
/*
 * test_chat.c — building prompts from OpenAI chat requests: the variables a
 * template sees (normalised messages, tools, bos/eos, kwargs), the ChatML
 * fallback, request-shape errors.
 */
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "test.h"

static char *render_req(const char *tmpl, const char *req_json, const chat_render_opts_t *o, char *err, size_t errlen) {
    chat_tmpl_t *t = tmpl ? chat_tmpl_new(tmpl, strlen(tmpl), err, errlen) : chat_tmpl_new_chatml(err, errlen);
    if (!t) return NULL;
    json_t *req = json_loads(req_json, 0, NULL);
    sl_buf_t out = {0};
    int rc = req ? chat_render(t, req, o, &out, err, errlen) : -1;
    json_decref(req);
    chat_tmpl_free(t);
    if (rc) {
        sl_buf_free(&out);
        return NULL;
    }
    return out.data ? sl_buf_steal(&out) : calloc(1, 1);
}

/* Each limit of chat_render_opts_t stops its own kind of runaway, with the
 * message naming the limit, and a limit above the need changes nothing. */
static void test_limits(void) {
    char err[SL_ERR_MAX];
    const char *grow = "{% set ns = namespace(l=[]) %}{% for i in range(10000000) %}{% set ns.l = ns.l + [i] %}{% endfor %}";
    chat_render_opts_t o = {.max_steps = (size_t)1 << 40, .max_memory = 1 << 20};
    char *s = render_req(grow, "{\"messages\":[]}", &o, err, sizeof err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err, "too much memory (limit 1048576 bytes)") != NULL, "%s", err);
    free(s);

    o = (chat_render_opts_t){.max_steps = 1000};
    s = render_req("{% for i in range(100000) %}x{% endfor %}", "{\"messages\":[]}", &o, err, sizeof err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err, "step limit (1000 steps)") != NULL, "%s", err);
    free(s);

    o = (chat_render_opts_t){.max_output = 100};
    s = render_req("{% for i in range(1000) %}x{% endfor %}", "{\"messages\":[]}", &o, err, sizeof err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err, "limit of 100 bytes") != NULL, "%s", err);
    free(s);

    o = (chat_render_opts_t){.max_output = 100, .max_steps = 1000, .max_memory = 1 << 20};
    s = render_req("{% for i in range(50) %}x{% endfor %}", "{\"messages\":[]}", &o, err, sizeof err);
    CHECK_MSG(s && strlen(s) == 50, "%s", s ? s : err);
    free(s);
}

static void test_chatml_fallback(void) {
    char err[SL_ERR_MAX];
    chat_render_opts_t o = {.add_generation_prompt = true};
    char *p = render_req(NULL, "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"Hi\"}]}", &o, err,
                         sizeof err);
    CHECK_MSG(p && !strcmp(p, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), "[%s] %s",
              p ? p : "", err);
    free(p);
    o.add_generation_prompt = false;
    p = render_req(NULL, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &o, err, sizeof err);
    CHECK(p && !strcmp(p, "<|im_start|>user\nHi<|im_end|>\n"));
    free(p);
}

static void test_parts_and_tool_calls(void) {
    char err[SL_ERR_MAX];
    const char *tmpl =
        "{% for m in messages %}{{ m.role }}:{{ m.content }}|{% for tc in m.tool_calls or [] %}"
        "{{ tc.function.name }}{{ tc.function.arguments.city }}{{ tc.function.arguments|tojson }}{% endfor %};{% endfor %}"
        "{{ tools is none }}{{ documents is none }}{{ add_generation_prompt }}{{ bos_token }}{{ eos_token }}{{ enable_thinking }}";
    const char *req =
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{\\\"city\\\": \\\"Oslo\\\", \\\"n\\\": 2}\"}}]},"
        "{\"role\":\"assistant\",\"content\":\"x\",\"tool_calls\":[{\"function\":{\"name\":\"g\",\"arguments\":\"not json\"}}]}]}";
    json_t *kw = json_loads("{\"enable_thinking\": false}", 0, NULL);
    chat_render_opts_t o = {.bos_token = "<s>", .eos_token = "</s>", .add_generation_prompt = true, .kwargs = kw};
    char *p = render_req(tmpl, req, &o, err, sizeof err);
    /* null content stays None, as transformers passes it (jinja2 prints None) */
    const char *want = "user:a\nb|;assistant:None|fOslo{\"city\": \"Oslo\", \"n\": 2};assistant:x|g\"not json\";TrueTrueTrue<s></s>False";
    CHECK_MSG(p && !strcmp(p, want), "\n got  [%s]\n want [%s] %s", p ? p : "", want, err);
    free(p);
    json_decref(kw);
    /* tools present: passed as given */
    p = render_req("{{ tools|length }}{{ tools[0].function.name }}",
                   "{\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"w\"}}]}", NULL, err, sizeof err);
    CHECK(p && !strcmp(p, "1w"));
    free(p);
}

/* An assistant tool-call turn's reasoning_content is also its `thinking`
 * (gpt-oss's template reads that field); a given thinking wins; turns
 * without calls and other roles are left alone. */
static void test_reasoning_as_thinking(void) {
    char err[SL_ERR_MAX];
    const char *tmpl = "{% for m in messages %}{{ m.role }}={{ m.thinking }};{% endfor %}";
    const char *req =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"q\",\"reasoning_content\":\"u\"},"
        "{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"r1\",\"tool_calls\":[{\"id\":\"1\","
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"r2\",\"thinking\":\"t2\",\"tool_calls\":[{"
        "\"id\":\"2\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"assistant\",\"content\":\"a\",\"reasoning_content\":\"r3\"}]}";
    char *p = render_req(tmpl, req, NULL, err, sizeof err);
    const char *want = "user=;assistant=r1;assistant=t2;assistant=;";
    CHECK_MSG(p && !strcmp(p, want), "\n got  [%s]\n want [%s] %s", p ? p : "", want, err);
    free(p);
}

/* Null content and tool-call arguments: the transformers form (None, parsed
 * arguments) first; when it fails to render, arguments as the JSON string
 * (DeepSeek's templates concatenate them), then null content as "" (Qwen3's
 * searches it), then both. The first error is reported when all fail. */
static void test_null_content_fallbacks(void) {
    char err[SL_ERR_MAX];
    const char *req =
        "{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]}]}";
    /* DeepSeek style: `content is none` branch, arguments concatenated */
    char *p = render_req("{% for m in messages %}{% if m.content is none %}{{ 'call:' + m.tool_calls[0].function.arguments }}"
                         "{% else %}text:{{ m.content }}{% endif %}{% endfor %}",
                         req, NULL, err, sizeof err);
    CHECK_MSG(p && !strcmp(p, "call:{\"a\":1}"), "[%s] %s", p ? p : "", err);
    free(p);
    /* parsed arguments render first when they can */
    p = render_req("{% for m in messages %}{{ m.content is none }}{{ m.tool_calls[0].function.arguments.a }}{% endfor %}", req,
                   NULL, err, sizeof err);
    CHECK_MSG(p && !strcmp(p, "True1"), "[%s] %s", p ? p : "", err);
    free(p);
    /* Qwen3 style: `'x' in content` fails on None -> "" */
    p = render_req("{% for m in messages %}{{ '</think>' in m.content }}{{ m.tool_calls[0].function.arguments|tojson }}{% endfor %}",
                   req, NULL, err, sizeof err);
    CHECK_MSG(p && !strcmp(p, "False{\"a\": 1}"), "[%s] %s", p ? p : "", err);
    free(p);
    /* every variant fails: the first error (line:col of the first render) */
    p = render_req("{% for m in messages %}{{ raise_exception('no ' ~ m.role) }}{% endfor %}", req, NULL, err, sizeof err);
    CHECK_MSG(!p && strstr(err, "template error at 1:") && strstr(err, "no assistant"), "%s", err);
}

/* A function without a description (optional in OpenAI's API): a template
 * that only prints the tools sees them as given; one that concatenates the
 * description (gpt-oss's) fails on the undefined value, and the fallback
 * gives it "" (messages' variants kept). */
static void test_tool_without_description(void) {
    char err[SL_ERR_MAX];
    const char *req =
        "{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"type\":"
        "\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"g\",\"description\":\"G.\"}}]}";
    char *p = render_req("{{ tools|tojson }}", req, NULL, err, sizeof err);
    const char *want =
        "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}, "
        "{\"type\": \"function\", \"function\": {\"name\": \"g\", \"description\": \"G.\"}}]";
    CHECK_MSG(p && !strcmp(p, want), "\n got  [%s]\n want [%s] %s", p ? p : "", want, err);
    free(p);
    /* concatenated, and null content searched (gpt-oss does both) */
    p = render_req("{% for t in tools %}{{ '// ' + t.function.description + '\\n' }}{% endfor %}"
                   "{% for m in messages %}{{ 'x' in m.content }}{% endfor %}",
                   req, NULL, err, sizeof err);
    CHECK_MSG(p && !strcmp(p, "// \n// G.\nFalse"), "[%s] %s", p ? p : "", err);
    free(p);
}

/* Harmony: an assistant tool-call turn with both text and reasoning reaches
 * the template as harmony writes the turn (the analysis, then the text as a
 * commentary preamble, in `thinking`; content ""), because gpt-oss's
 * template takes only one of the two. Other turns and other models: as
 * given. */
static void test_harmony_preamble(void) {
    char err[SL_ERR_MAX];
    const char *tmpl =
        "{% for m in messages %}{{ m.role }}:[{{ m.content }}][{{ m.thinking }}];{% endfor %}";
    const char *req = "{\"messages\":[{\"role\":\"user\",\"content\":\"q\",\"thinking\":\"u\"},"
                      "{\"role\":\"assistant\",\"content\":\"Let me "
                      "check.\",\"reasoning_content\":\"Need time.\","
                      "\"tool_calls\":[{\"id\":\"1\",\"type\":\"function\",\"function\":{\"name\":"
                      "\"f\",\"arguments\":\"{}\"}}]},"
                      "{\"role\":\"assistant\",\"content\":\"Only "
                      "text.\",\"tool_calls\":[{\"id\":\"2\",\"type\":\"function\","
                      "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                      "{\"role\":\"assistant\",\"content\":\"Answer.\",\"thinking\":\"t\"}]}";
    chat_render_opts_t o = {.harmony = true};
    char *p = render_req(tmpl, req, &o, err, sizeof err);
    const char *want = "user:[q][u];assistant:[][Need "
                       "time.<|end|><|start|>assistant<|channel|>commentary<|message|>"
                       "Let me check.];assistant:[Only text.][];assistant:[Answer.][t];";
    CHECK_MSG(p && !strcmp(p, want), "\n got  [%s]\n want [%s] %s", p ? p : "", want, err);
    free(p);
    p = render_req(tmpl, req, NULL, err, sizeof err);
    want = "user:[q][u];assistant:[Let me check.][Need time.];assistant:[Only "
           "text.][];assistant:[Answer.][t];";
    CHECK_MSG(p && !strcmp(p, want), "\n got  [%s]\n want [%s] %s", p ? p : "", want, err);
    free(p);
}

static void test_request_errors(void) {
    char err[SL_ERR_MAX];
    char *p = render_req("x", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}", NULL, err,
                         sizeof err);
    CHECK_MSG(!p && strstr(err, "only text parts"), "%s", err);
    p = render_req("x", "{\"messages\":{}}", NULL, err, sizeof err);
    CHECK_MSG(!p && strstr(err, "messages"), "%s", err);
    p = render_req("x", "{\"messages\":[{\"content\":\"no role\"}]}", NULL, err, sizeof err);
    CHECK_MSG(!p && strstr(err, "role"), "%s", err);
    p = render_req("{{ raise_exception('System role not supported') }}", "{\"messages\":[]}", NULL, err, sizeof err);
    CHECK_MSG(!p && strstr(err, "template error at 1:4: System role not supported"), "%s", err);
    chat_tmpl_t *t = chat_tmpl_new("{% if %}", 8, err, sizeof err);
    CHECK_MSG(!t && strstr(err, "syntax error at 1:"), "%s", err);
}

static void test_uses_var(void) {
    char err[SL_ERR_MAX];
    const char *src = "{% if tools %}{{ tools|tojson }}{% endif %}{% if enable_thinking is defined %}x{% endif %}";
    chat_tmpl_t *t = chat_tmpl_new(src, strlen(src), err, sizeof err);
    CHECK(t && chat_tmpl_uses_var(t, "tools") && chat_tmpl_uses_var(t, "enable_thinking") && !chat_tmpl_uses_var(t, "documents"));
    chat_tmpl_free(t);
}

static void test_strftime_now(void) {
    char err[SL_ERR_MAX];
    setenv("TZ", "UTC", 1);
    chat_render_opts_t o = {.now = 1700000000}; /* 2023-11-14 22:13:20 UTC */
    char *p = render_req("{{ strftime_now('%Y-%m-%d') }}", "{\"messages\":[]}", &o, err, sizeof err);
    CHECK_MSG(p && !strcmp(p, "2023-11-14"), "[%s] %s", p ? p : "", err);
    free(p);
}

int main(void) {
    RUN(test_limits);
    RUN(test_chatml_fallback);
    RUN(test_parts_and_tool_calls);
    RUN(test_null_content_fallbacks);
    RUN(test_reasoning_as_thinking);
    RUN(test_tool_without_description);
    RUN(test_harmony_preamble);
    RUN(test_request_errors);
    RUN(test_uses_var);
    RUN(test_strftime_now);
    return test_summary();
}
