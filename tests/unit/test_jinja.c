/* deps: chat base */
/*
 * test_jinja.c — the Jinja interpreter, feature by feature. Expected strings
 * are what Python's jinja2 (as transformers configures it) prints for the
 * same template; the e2e test compares against jinja2 live.
 */
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "test.h"

static const char *VARS =
    "{\"s\":\"Hello World\",\"n\":7,\"f\":2.5,\"t\":true,\"no\":null,\"lst\":[3,1,2],"
    "\"d\":{\"b\":1,\"a\":2},\"msgs\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\"}],"
    "\"u\":\"h\\u00e9llo\"}";

/* Renders src with VARS; returns malloc'd output or NULL (error in err). */
static char *render_opts(const char *src, const chat_render_opts_t *o, char *err, size_t errlen) {
    chat_tmpl_t *t = chat_tmpl_new(src, strlen(src), err, errlen);
    if (!t) return NULL;
    json_t *vars = json_loads(VARS, 0, NULL);
    sl_buf_t out = {0};
    int rc = chat_render_vars(t, vars, o, &out, err, errlen);
    json_decref(vars);
    chat_tmpl_free(t);
    if (rc) {
        sl_buf_free(&out);
        return NULL;
    }
    if (!out.data) return calloc(1, 1);
    return sl_buf_steal(&out);
}

static char *render(const char *src, char *err, size_t errlen) { return render_opts(src, NULL, err, errlen); }

#define EXPECT(src, want)                                                                          \
    do {                                                                                           \
        char err_[SL_ERR_MAX] = "";                                                                \
        char *got_ = render(src, err_, sizeof err_);                                               \
        CHECK_MSG(got_ && !strcmp(got_, want), "%s\n    got  [%s]\n    want [%s] %s", src,         \
                  got_ ? got_ : "(null)", want, err_);                                             \
        free(got_);                                                                                \
    } while (0)

#define EXPECT_ERR(src, substr)                                                                    \
    do {                                                                                           \
        char err_[SL_ERR_MAX] = "";                                                                \
        char *got_ = render(src, err_, sizeof err_);                                               \
        CHECK_MSG(!got_ && strstr(err_, substr), "%s: want error containing '%s', got [%s] err [%s]", \
                  src, substr, got_ ? got_ : "(null)", err_);                                      \
        free(got_);                                                                                \
    } while (0)

static void test_output_and_literals(void) {
    EXPECT("{{ s }}|{{ n }}|{{ f }}|{{ t }}|{{ no }}|{{ missing }}|", "Hello World|7|2.5|True|None||");
    EXPECT("{{ 1.0 }} {{ 0.1 }} {{ 1e-5 }} {{ 1e20 }} {{ 1/3 }} {{ 10/2 }}", "1.0 0.1 1e-05 1e+20 0.3333333333333333 5.0");
    EXPECT("{{ [1, 'a', none, true] }}{{ (1,) }}{{ {'k': [1.5]} }}{{ [\"it's\"] }}", "[1, 'a', None, True](1,){'k': [1.5]}[\"it's\"]");
    EXPECT("{{ 'a' 'b' }}{{ '\\n'|length }}{{ '\\u00e9' }}", "ab1\xc3\xa9");
}

static void test_whitespace(void) {
    EXPECT("a  {{- 1 -}}  b", "a1b");
    EXPECT("  {% if t %}\n    yes\n  {% endif %}\nend\n", "    yes\nend");
    EXPECT("{% for x in lst %}\n{{ x }}\n{% endfor %}\n", "3\n1\n2\n");
    EXPECT("x {% if t %}y{% endif %}", "x y");
    EXPECT("{# c #}\nz", "z");
    EXPECT("{% raw %}{{ x }}{% endraw %}", "{{ x }}");
    EXPECT("a\r\nb\n", "a\nb");
}

static void test_operators(void) {
    EXPECT("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 2 ** -1 }}", "3 -4 2 64 4 0.5");
    EXPECT("{{ 'ab' * 2 }}{{ [1] + [2] }}{{ 1 == 1.0 }}{{ 1 < 2 < 3 }}{{ true + 1 }}", "abab[1, 2]TrueTrue2");
    EXPECT("{{ 1 in lst }}{{ 'ell' in s }}{{ 'a' in d }}{{ 5 not in lst }}{{ no or 'x' }}{{ t and n }}", "TrueTrueTrueTruex7");
    EXPECT("{{ s ~ n ~ missing }}{{ 'y' if no else 'n' }}[{{ 'y' if no }}]", "Hello World7n[]");
    EXPECT_ERR("{{ 1 / 0 }}", "division by zero");
    EXPECT_ERR("{{ 'a' + 1 }}", "unsupported operand");
    EXPECT_ERR("{{ missing + 1 }}", "'missing' is undefined");
}

static void test_access(void) {
    EXPECT("{{ msgs[0].role }}{{ msgs[-1]['role'] }}[{{ msgs[1].content }}]{{ msgs[1].content is defined }}", "userassistant[]False");
    EXPECT("{{ s[0] }}{{ s[-1] }}{{ s[1:4] }}{{ s[::-1] }}{{ lst[::-1] }}{{ u[1] }}{{ u[::-1] }}", "HdelldlroW olleH[2, 1, 3]\xc3\xa9oll\xc3\xa9h");
    EXPECT_ERR("{{ missing.attr }}", "'missing' is undefined");
    EXPECT_ERR("{{ msgs[1].content.x }}", "has no attribute 'content'");
}

static void test_control(void) {
    EXPECT("{% for m in msgs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }};{% endfor %}",
           "10TrueFalse22;21FalseTrue21;");
    EXPECT("{% for x in lst if x > 1 %}{{ x }}{{ loop.length }}{% else %}none{% endfor %}{% for x in [] %}{% else %}E{% endfor %}", "3222E");
    EXPECT("{% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}{% for k in d %}{{ k }}{% endfor %}", "b1a2ba");
    EXPECT("{% for x in lst %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% if x == 3 %}{% break %}{% endif %}{% endfor %}", "3");
    EXPECT("{% if n > 10 %}a{% elif n > 5 %}b{% else %}c{% endif %}", "b");
    EXPECT("{% set x = 1 %}{% for i in lst %}{% set x = i %}{% endfor %}{{ x }}", "1");
    EXPECT("{% set ns = namespace(v=0) %}{% for i in lst %}{% set ns.v = ns.v + i %}{% endfor %}{{ ns.v }}", "6");
    EXPECT("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set blk %}[{{ n }}]{% endset %}{{ blk }}", "12[7]");
    EXPECT("{% macro g(x, p='!') %}{{ x }}{{ p }}{% endmacro %}{{ g('a') }}{{ g('b', p='?') }}", "a!b?");
    EXPECT("{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}in{% endcall %}", "<in>");
    EXPECT("{% filter upper %}ab{% endfilter %}{% with q = 3 %}{{ q }}{% endwith %}", "AB3");
    EXPECT_ERR("{% for a, b in [[1, 2, 3]] %}{% endfor %}", "too many values to unpack");
}

static void test_filters(void) {
    EXPECT("{{ d|tojson }}|{{ u|tojson }}|{{ [1.0, none]|tojson }}|{{ 'q\"'|tojson }}", "{\"b\": 1, \"a\": 2}|\"h\xc3\xa9llo\"|[1.0, null]|\"q\\\"\"");
    EXPECT("{{ d|tojson(indent=2) }}", "{\n  \"b\": 1,\n  \"a\": 2\n}");
    EXPECT("{{ u|tojson(ensure_ascii=true) }}{{ d|tojson(sort_keys=true) }}", "\"h\\u00e9llo\"{\"a\": 2, \"b\": 1}");
    EXPECT("{{ '  x '|trim }}{{ s|length }}{{ u|length }}{{ s|upper }}{{ s|lower }}{{ 'a-b c'|title }}{{ 'aB'|capitalize }}", "x115HELLO WORLDhello worldA-B CAb");
    EXPECT("{{ s|replace('o', '0') }}{{ lst|join(',') }}{{ missing|default('d') }}{{ ''|default('e', true) }}", "Hell0 W0rld3,1,2de");
    EXPECT("{{ lst|first }}{{ lst|last }}{{ lst|sort }}{{ d|dictsort }}{{ d|items|list }}", "32[1, 2, 3][('a', 2), ('b', 1)][('b', 1), ('a', 2)]");
    EXPECT("{{ msgs|map(attribute='role')|list }}{{ msgs|selectattr('role', 'eq', 'user')|list|length }}{{ lst|select('odd')|list }}",
           "['user', 'assistant']1[3, 1]");
    EXPECT("{{ '3'|int + 1 }}{{ 'x'|int }}{{ f|int }}{{ 2.5|round }}{{ 3.5|round }}{{ -3|abs }}{{ n|string }}{{ [1,1,2]|unique|list }}", "4022.04.037[1, 2]");
    EXPECT("{{ 'a\\nb'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}", "a\n  b|  a\n  b");
    EXPECT_ERR("{{ missing|tojson }}", "not JSON serializable");
    EXPECT_ERR("{{ n|nosuch }}", "no filter named 'nosuch'");
}

static void test_tests_and_methods(void) {
    EXPECT("{{ n is defined }}{{ x is undefined }}{{ no is none }}{{ s is string }}{{ d is mapping }}{{ lst is sequence }}{{ n is number }}",
           "TrueTrueTrueTrueTrueTrueTrue");
    EXPECT("{{ n is odd }}{{ n is even }}{{ 9 is divisibleby 3 }}{{ n is eq 7 }}{{ n is not none }}{{ t is true }}{{ 'ab' is lower }}", "TrueFalseTrueTrueTrueTrueTrue");
    EXPECT("{{ s.startswith('He') }}{{ s.endswith('x') }}{{ ' a '.strip() }}{{ 'xax'.strip('x') }}{{ 'a,b'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.split(' ', 1) }}",
           "TrueFalseaa['a', 'b']['a', 'b']['a', 'b c']");
    EXPECT("{{ s.find('o') }}{{ s.count('l') }}{{ '{} {}'.format(1, 'x') }}{{ '-'.join(['a', 'b']) }}{{ d.get('zz', 0) }}{{ d.keys()|list }}", "431 xa-b0['b', 'a']");
    EXPECT("{{ range(3)|list }}{{ range(5, 0, -2)|list }}{{ dict(a=1) }}", "[0, 1, 2][5, 3, 1]{'a': 1}");
    EXPECT("[{{ lst.append }}]", "[]"); /* unsafe in the immutable sandbox: an undefined */
    EXPECT_ERR("{{ lst.append(4) }}", "unsafe");
}

static void test_errors_have_position(void) {
    char err[SL_ERR_MAX];
    char *got = render("line1\n{% if t %}\n  {{ 1 + }}\n{% endif %}", err, sizeof err);
    CHECK(!got);
    CHECK_MSG(strstr(err, "3:") != NULL, "%s", err);
    got = render("a\nb {{ raise_exception('bad role') }}", err, sizeof err);
    CHECK(!got);
    CHECK_MSG(strstr(err, "2:") && strstr(err, "bad role"), "%s", err);
    const char *bad[] = {"{% if t %}x", "{% endfor %}", "{{ 'abc }}", "{{ (1, }}", "{% for %}", "{% set %}", "{{ a.0x }}",
                         "{% macro m( %}", "{{ }}}", "{% break %}", "{% include 'x' %}", "{# open", "{{ 1 ] }}"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        got = render(bad[i], err, sizeof err);
        CHECK_MSG(!got && strstr(err, "syntax error at 1:"), "%s -> %s", bad[i], err);
        free(got);
    }
}

static void test_limits(void) {
    char err[SL_ERR_MAX];
    chat_render_opts_t o = {.max_steps = 10000};
    char *got = render_opts("{% for i in range(100000) %}{{ i }}{% endfor %}", &o, err, sizeof err);
    CHECK_MSG(!got && strstr(err, "step limit"), "%s", err);
    chat_render_opts_t o2 = {.max_output = 1000};
    got = render_opts("{% for i in range(1000) %}xxxxxxxx{% endfor %}", &o2, err, sizeof err);
    CHECK_MSG(!got && strstr(err, "output exceeded"), "%s", err);
    got = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", err, sizeof err);
    CHECK_MSG(!got && strstr(err, "nested too deeply"), "%s", err);
    /* deep nesting in the source is a syntax error, not a stack overflow */
    char deep[5000];
    strcpy(deep, "{{ ");
    for (int i = 0; i < 1000; i++) strcat(deep, "(");
    got = render(deep, err, sizeof err);
    CHECK(!got);
    free(got);
}

/* Random mutations of a real-looking template must never crash. */
static void test_garbage_is_safe(void) {
    const char *seed = "{%- for m in messages if m.role != 'x' -%}{{ '<|' ~ m['role'] | upper ~ '|>' }}{% if loop.last and t %}"
                       "{{ m.content|tojson(indent=2) }}{% set ns = namespace(a=[1,2][::-1]) %}{% endif %}{% endfor %}";
    size_t n = strlen(seed);
    char buf[512];
    uint32_t rng = 12345;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, seed, n + 1);
        for (int k = 0; k < 4; k++) {
            rng = rng * 1103515245u + 12345u;
            size_t pos = (rng >> 8) % n;
            rng = rng * 1103515245u + 12345u;
            buf[pos] = "{}%#()[]|.-+~'\"ax 0\n"[(rng >> 8) % 20];
        }
        char err[SL_ERR_MAX];
        chat_render_opts_t o = {.max_steps = 100000};
        free(render_opts(buf, &o, err, sizeof err));
    }
    CHECK(1);
}

int main(void) {
    RUN(test_output_and_literals);
    RUN(test_whitespace);
    RUN(test_operators);
    RUN(test_access);
    RUN(test_control);
    RUN(test_filters);
    RUN(test_tests_and_methods);
    RUN(test_errors_have_position);
    RUN(test_limits);
    RUN(test_garbage_is_safe);
    return test_summary();
}
