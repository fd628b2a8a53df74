/* deps: server sampling kernels base */
/*
 * test_http.c — the server's pure parts: OpenAI request validation (status,
 * param and code of each error; defaults and ranges of accepted values),
 * error JSON shape, lossy UTF-8 strings, and the stop-string matcher
 * (nothing of a stop string is ever emitted, whatever the token split),
 * prefix / FIM request fields, and the FIM prompt layout.
 */
#include <stdlib.h>
#include <string.h>

#include "server/fim.h"
#include "server/oai.h"
#include "server/stopstr.h"
#include "test.h"

static int parse(const char *body, bool chat, oai_req_t *r, oai_error_t *e) {
    memset(e, 0, sizeof *e);
    return oai_parse(body, strlen(body), chat, r, e);
}

/* Expects a failure with this status and param. */
static void expect_err(const char *body, bool chat, int status, const char *param) {
    oai_req_t r;
    oai_error_t e;
    int rc = parse(body, chat, &r, &e);
    CHECK_MSG(rc == -1, "accepted: %s", body);
    CHECK_MSG(e.status == status, "%s: status %d", body, e.status);
    CHECK_MSG(strcmp(e.param, param) == 0, "%s: param '%s' want '%s'", body, e.param, param);
    CHECK(e.message[0] != '\0');
    oai_req_free(&r);
}

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_chat_ok_defaults(void) {
    oai_req_t r;
    oai_error_t e;
    CHECK(parse("{\"model\":\"m\"," MSGS "}", true, &r, &e) == 0);
    CHECK(strcmp(r.model, "m") == 0);
    CHECK(r.n == 1 && !r.stream && r.max_tokens == 0 && !r.logprobs && r.n_stop == 0);
    CHECK_NEAR(r.smp.temperature, 1.0, 0);
    CHECK_NEAR(r.smp.top_p, 1.0, 0);
    oai_req_free(&r);
    CHECK(parse("{\"model\":\"m\"," MSGS ",\"temperature\":0,\"top_p\":0.5,\"top_k\":40,\"min_p\":0.1,"
                "\"n\":3,\"max_completion_tokens\":7,\"max_tokens\":99,\"seed\":-5,\"stop\":\"##\","
                "\"logprobs\":true,\"top_logprobs\":4,\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                "\"logit_bias\":{\"12\":-100,\"7\":2.5},\"frequency_penalty\":-2,\"presence_penalty\":2,"
                "\"repetition_penalty\":1.1,\"user\":\"u1\",\"unknown_vendor_extra\":{\"x\":1}}",
                true, &r, &e) == 0);
    CHECK(r.smp.temperature == 0 && r.smp.top_k == 40 && r.n == 3);
    CHECK(r.max_tokens == 7); /* max_completion_tokens wins */
    CHECK(r.has_seed && r.seed == (uint64_t)-5);
    CHECK(r.n_stop == 1 && strcmp(r.stop[0], "##") == 0);
    CHECK(r.logprobs && r.top_logprobs == 4 && r.smp.n_top_logprobs == 4);
    CHECK(r.stream && r.include_usage);
    CHECK(r.n_bias == 2 && r.smp.n_bias == 2);
    CHECK_NEAR(r.smp.frequency_penalty, -2, 1e-6);
    CHECK(strcmp(r.user, "u1") == 0);
    oai_req_free(&r);
}

static void test_chat_errors(void) {
    expect_err("{not json", true, 400, "");
    expect_err("[]", true, 400, "");
    expect_err("{" MSGS "}", true, 400, "model");
    expect_err("{\"model\":5," MSGS "}", true, 400, "model");
    expect_err("{\"model\":\"m\"}", true, 400, "messages");
    expect_err("{\"model\":\"m\",\"messages\":[]}", true, 400, "messages");
    expect_err("{\"model\":\"m\",\"messages\":\"hi\"}", true, 400, "messages");
    expect_err("{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", true, 400, "messages[0].role");
    expect_err("{\"model\":\"m\",\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}", true, 400, "messages[0].role");
    expect_err("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", true, 400, "messages[0].content");
    expect_err("{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", true, 400, "messages[0].content");
    expect_err("{\"model\":\"m\"," MSGS ",\"temperature\":\"hot\"}", true, 400, "temperature");
    expect_err("{\"model\":\"m\"," MSGS ",\"temperature\":2.5}", true, 400, "temperature");
    expect_err("{\"model\":\"m\"," MSGS ",\"top_p\":1.5}", true, 400, "top_p");
    expect_err("{\"model\":\"m\"," MSGS ",\"n\":0}", true, 400, "n");
    expect_err("{\"model\":\"m\"," MSGS ",\"n\":1.5}", true, 400, "n");
    expect_err("{\"model\":\"m\"," MSGS ",\"max_tokens\":0}", true, 400, "max_tokens");
    expect_err("{\"model\":\"m\"," MSGS ",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", true, 400, "stop");
    expect_err("{\"model\":\"m\"," MSGS ",\"stop\":[1]}", true, 400, "stop");
    expect_err("{\"model\":\"m\"," MSGS ",\"logit_bias\":{\"x\":1}}", true, 400, "logit_bias");
    expect_err("{\"model\":\"m\"," MSGS ",\"logit_bias\":{\"5\":101}}", true, 400, "logit_bias");
    expect_err("{\"model\":\"m\"," MSGS ",\"top_logprobs\":3}", true, 400, "top_logprobs");
    expect_err("{\"model\":\"m\"," MSGS ",\"logprobs\":true,\"top_logprobs\":21}", true, 400, "top_logprobs");
    expect_err("{\"model\":\"m\"," MSGS ",\"stream_options\":{\"include_usage\":true}}", true, 400, "stream_options");
    expect_err("{\"model\":\"m\"," MSGS ",\"stream\":\"yes\"}", true, 400, "stream");
    expect_err("{\"model\":\"m\"," MSGS ",\"frequency_penalty\":3}", true, 400, "frequency_penalty");
    expect_err("{\"model\":\"m\"," MSGS ",\"seed\":\"1\"}", true, 400, "seed");
    expect_err("{\"model\":\"m\"," MSGS ",\"user\":1}", true, 400, "user");
    expect_err("{\"model\":\"m\",\"model\":\"n\"," MSGS "}", true, 400, ""); /* duplicate key */
}

static void test_completions(void) {
    oai_req_t r;
    oai_error_t e;
    CHECK(parse("{\"model\":\"m\",\"prompt\":\"abc\",\"logprobs\":2,\"echo\":true}", false, &r, &e) == 0);
    CHECK(r.n_prompts == 1 && strcmp(r.prompts[0].text, "abc") == 0);
    CHECK(r.logprobs && r.top_logprobs == 2 && r.echo);
    oai_req_free(&r);
    CHECK(parse("{\"model\":\"m\",\"prompt\":[\"a\",\"b\",[1,2,3]]}", false, &r, &e) == 0);
    CHECK(r.n_prompts == 3 && r.prompts[2].n_ids == 3 && r.prompts[2].ids[2] == 3);
    oai_req_free(&r);
    CHECK(parse("{\"model\":\"m\",\"prompt\":[5,6]}", false, &r, &e) == 0);
    CHECK(r.n_prompts == 1 && r.prompts[0].n_ids == 2 && r.prompts[0].ids[0] == 5);
    oai_req_free(&r);
    expect_err("{\"model\":\"m\"}", false, 400, "prompt");
    expect_err("{\"model\":\"m\",\"prompt\":[]}", false, 400, "prompt");
    expect_err("{\"model\":\"m\",\"prompt\":5}", false, 400, "prompt");
    expect_err("{\"model\":\"m\",\"prompt\":[1,-2]}", false, 400, "prompt");
    expect_err("{\"model\":\"m\",\"prompt\":[\"a\",{}]}", false, 400, "prompt");
    expect_err("{\"model\":\"m\",\"prompt\":\"a\",\"logprobs\":6}", false, 400, "logprobs");
    expect_err("{\"model\":\"m\",\"prompt\":\"a\",\"echo\":1}", false, 400, "echo");
}

static void test_error_json(void) {
    oai_error_t e;
    oai_fail(&e, 404, "invalid_request_error", "model_not_found", "model", "no %s", "x\xff");
    char *s = oai_error_json(&e);
    CHECK(s != NULL);
    json_t *j = json_loads(s, 0, NULL);
    CHECK(j != NULL);
    json_t *er = json_object_get(j, "error");
    CHECK(strcmp(json_string_value(json_object_get(er, "message")), "no x\xEF\xBF\xBD") == 0);
    CHECK(strcmp(json_string_value(json_object_get(er, "code")), "model_not_found") == 0);
    CHECK(strcmp(json_string_value(json_object_get(er, "param")), "model") == 0);
    CHECK(strcmp(json_string_value(json_object_get(er, "type")), "invalid_request_error") == 0);
    json_decref(j);
    free(s);
    oai_fail(&e, 400, NULL, NULL, NULL, "plain");
    s = oai_error_json(&e);
    j = json_loads(s, 0, NULL);
    CHECK(json_is_null(json_object_get(json_object_get(j, "error"), "param")));
    CHECK(json_is_null(json_object_get(json_object_get(j, "error"), "code")));
    json_decref(j);
    free(s);
    /* lossy strings: a split 3-byte character and an overlong become U+FFFD */
    json_t *v = oai_string_lossy("a\xE4\xBD", 3);
    CHECK(strcmp(json_string_value(v), "a\xEF\xBF\xBD\xEF\xBF\xBD") == 0);
    json_decref(v);
    v = oai_string_lossy("\xC0\xAF\xE4\xBD\xA0", 5);
    CHECK(strcmp(json_string_value(v), "\xEF\xBF\xBD\xEF\xBF\xBD\xE4\xBD\xA0") == 0);
    json_decref(v);
}

/* Feeds `text` cut into pieces at every position set in `cuts` (bitmask)
 * and returns what the matcher emitted; *hit gets the stop flag. */
static char *run_stop(char *const *stops, int n, const char *text, unsigned cuts, int *hit) {
    stop_matcher_t m;
    stop_init(&m, stops, n);
    sl_buf_t out = {0};
    size_t len = strlen(text), start = 0;
    *hit = 0;
    for (size_t i = 1; i <= len && !*hit; i++) {
        if (i == len || (cuts >> (i - 1)) & 1) {
            *hit = stop_feed(&m, text + start, i - start, &out) == 1;
            start = i;
        }
    }
    if (!*hit) stop_flush(&m, &out);
    stop_free(&m);
    sl_buf_putc(&out, '\0');
    return sl_buf_steal(&out);
}

static void test_stop_strings(void) {
    char *stops[] = {"END", "xyz"};
    const char *text = "abcENxEND tail";
    /* every way of cutting the text into pieces gives the same result */
    for (unsigned cuts = 0; cuts < (1u << 13); cuts++) {
        int hit;
        char *o = run_stop(stops, 2, text, cuts, &hit);
        CHECK_MSG(hit && strcmp(o, "abcENx") == 0, "cuts %x: '%s'", cuts, o);
        free(o);
    }
    /* a held-back prefix that never completes is emitted at the end */
    int hit;
    char *o = run_stop(stops, 2, "abEN", 0x3, &hit);
    CHECK(!hit && strcmp(o, "abEN") == 0);
    free(o);
    /* nothing of a possible stop prefix is emitted early */
    stop_matcher_t m;
    stop_init(&m, stops, 2);
    sl_buf_t out = {0};
    CHECK(stop_feed(&m, "hello E", 7, &out) == 0);
    CHECK(out.len == 6 && memcmp(out.data, "hello ", 6) == 0);
    CHECK(stop_feed(&m, "N", 1, &out) == 0);
    CHECK(out.len == 6);
    CHECK(stop_feed(&m, "X", 1, &out) == 0);
    CHECK(out.len == 9 && memcmp(out.data, "hello ENX", 9) == 0);
    CHECK(stop_feed(&m, "xyEND", 5, &out) == 1); /* earliest stop wins: END at 2, not xyz */
    CHECK(out.len == 11 && memcmp(out.data, "hello ENXxy", 11) == 0);
    CHECK(m.hit && m.hit_index == 0); /* which one: Anthropic's stop_sequence names it */
    sl_buf_free(&out);
    stop_free(&m);
    stop_init(&m, stops, 2);
    CHECK(stop_feed(&m, "a xyz END", 9, &out) == 1 && m.hit_index == 1);
    sl_buf_free(&out);
    stop_free(&m);
    /* no stops: everything passes straight through */
    o = run_stop(NULL, 0, "abc", 0x1, &hit);
    CHECK(!hit && strcmp(o, "abc") == 0);
    free(o);
}


static void test_prefix_and_fim_fields(void) {
    oai_req_t r;
    oai_error_t e;
    /* top-level prefix: continuation, not FIM */
    CHECK(parse("{\"model\":\"m\"," MSGS ",\"prefix\":\"def f\"}", true, &r, &e) == 0);
    CHECK(r.prefix && r.prefix_len == 5 && !memcmp(r.prefix, "def f", 5));
    CHECK(!r.fim && !r.assistant_prefix && !r.suffix);
    oai_req_free(&r);
    /* DeepSeek form */
    CHECK(parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
                "{\"role\":\"assistant\",\"content\":\"ab\\u00e9\",\"prefix\":true}]}", true, &r, &e) == 0);
    CHECK(r.assistant_prefix && r.prefix_len == 4 && !memcmp(r.prefix, "ab\xc3\xa9", 4) && !r.fim);
    oai_req_free(&r);
    /* chat FIM: messages optional; fim_order; return_token_ids */
    CHECK(parse("{\"model\":\"m\",\"prefix\":\"a\",\"suffix\":\"\",\"fim_order\":\"spm\",\"return_token_ids\":true}",
                true, &r, &e) == 0);
    CHECK(r.fim && r.fim_spm && r.return_token_ids && r.suffix && r.suffix_len == 0);
    oai_req_free(&r);
    CHECK(parse("{\"model\":\"m\",\"messages\":[],\"prefix\":\"a\",\"suffix\":\"b\"}", true, &r, &e) == 0);
    CHECK(r.fim && !r.fim_spm);
    oai_req_free(&r);
    /* completions FIM */
    CHECK(parse("{\"model\":\"m\",\"prompt\":\"x\",\"suffix\":\"y\"}", false, &r, &e) == 0);
    CHECK(r.fim && r.suffix_len == 1 && !r.prefix);
    oai_req_free(&r);
    CHECK(parse("{\"model\":\"m\",\"prompt\":\"x\",\"suffix\":null}", false, &r, &e) == 0);
    CHECK(!r.fim);
    oai_req_free(&r);
    /* echo + max_tokens 0: score the prompt only */
    CHECK(parse("{\"model\":\"m\",\"prompt\":\"x\",\"echo\":true,\"max_tokens\":0,\"logprobs\":2}", false, &r, &e) == 0);
    CHECK(r.score_only && r.echo && r.logprobs && r.top_logprobs == 2);
    oai_req_free(&r);
    expect_err("{\"model\":\"m\",\"prompt\":\"x\",\"max_tokens\":0}", false, 400, "max_tokens");
    expect_err("{\"model\":\"m\"," MSGS ",\"max_tokens\":0}", true, 400, "max_tokens");
    /* errors */
    expect_err("{\"model\":\"m\",\"prompt\":\"x\",\"suffix\":1}", false, 400, "suffix");
    expect_err("{\"model\":\"m\",\"prompt\":\"x\",\"suffix\":\"y\",\"echo\":true}", false, 400, "echo");
    expect_err("{\"model\":\"m\",\"prompt\":\"x\",\"suffix\":\"y\",\"fim_order\":\"pms\"}", false, 400, "fim_order");
    expect_err("{\"model\":\"m\",\"prompt\":\"x\",\"fim_order\":1}", false, 400, "fim_order");
    expect_err("{\"model\":\"m\"," MSGS ",\"suffix\":\"y\"}", true, 400, "prefix");
    expect_err("{\"model\":\"m\",\"prefix\":\"a\"}", true, 400, "messages");
    expect_err("{\"model\":\"m\"," MSGS ",\"prefix\":[1]}", true, 400, "prefix");
    expect_err("{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":\"a\",\"prefix\":true},"
               "{\"role\":\"user\",\"content\":\"b\"}]}", true, 400, "messages[0].prefix");
    expect_err("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"b\",\"prefix\":true}]}", true, 400,
               "messages[0].prefix");
    expect_err("{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":null,\"prefix\":true}]}", true, 400,
               "messages[0].prefix");
    expect_err("{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":\"a\",\"prefix\":1}]}", true, 400,
               "messages[0].prefix");
    expect_err("{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":\"a\",\"prefix\":true}],"
               "\"prefix\":\"b\"}", true, 400, "prefix");
    expect_err("{\"model\":\"m\"," MSGS ",\"return_token_ids\":\"yes\"}", true, 400, "return_token_ids");
}

static void check_ids(const int32_t *got, size_t n, const int32_t *want, size_t nw, const char *what) {
    bool same = n == nw && (n == 0 || memcmp(got, want, n * sizeof *got) == 0);
    CHECK_MSG(same, "%s: layout differs (%zu ids, want %zu)", what, n, nw);
}

static void test_fim_layout(void) {
    /* Qwen2.5-Coder ids, no BOS */
    fim_ids_t q = {151659, 151661, 151660, -1};
    int32_t pre[] = {750, 282}, suf[] = {470, 220, 16};
    int32_t *out;
    size_t n;
    CHECK(fim_layout(&q, false, pre, 2, suf, 3, &out, &n) == 0);
    int32_t psm[] = {151659, 750, 282, 151661, 470, 220, 16, 151660};
    check_ids(out, n, psm, SL_ARRAY_LEN(psm), "psm");
    free(out);
    CHECK(fim_layout(&q, true, pre, 2, suf, 3, &out, &n) == 0);
    int32_t spm[] = {151661, 470, 220, 16, 151659, 750, 282, 151660};
    check_ids(out, n, spm, SL_ARRAY_LEN(spm), "spm");
    free(out);
    /* DeepSeek-Coder ids with BOS; empty prefix and suffix */
    fim_ids_t d = {128801, 128800, 128802, 0};
    CHECK(fim_layout(&d, false, NULL, 0, NULL, 0, &out, &n) == 0);
    int32_t empty[] = {0, 128801, 128800, 128802};
    check_ids(out, n, empty, SL_ARRAY_LEN(empty), "empty");
    free(out);
    /* no FIM tokens */
    fim_ids_t none = {-1, -1, -1, 1};
    CHECK(!fim_supported(&none));
    CHECK(fim_layout(&none, false, pre, 2, suf, 3, &out, &n) == -1 && out == NULL && n == 0);
    fim_ids_t partial = {5, -1, 7, -1};
    CHECK(!fim_supported(&partial));
    CHECK(fim_layout(&partial, false, pre, 2, suf, 3, &out, &n) == -1);
}

/* oai_json_str must write exactly what jansson writes for the lossy string. */
static void test_json_str_matches_jansson(void) {
    uint64_t x = 0x9E3779B97F4A7C15ull;
    static const char *fixed[] = {"", "plain", "q\"uote\\back/slash", "\n\r\t\b\f\x01\x1f\x7f",
                                  "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80", "\xc3", "\xed\xa0\x80",
                                  "\xc0\xaf", "\xf4\x90\x80\x80", "\xff\xfe", "a\xe2\x82"};
    int bad = 0;
    for (int t = 0; t < 3000; t++) {
        char buf[64];
        size_t n;
        if (t < (int)SL_ARRAY_LEN(fixed)) {
            n = strlen(fixed[t]);
            memcpy(buf, fixed[t], n);
        } else {
            n = (size_t)(t % 40);
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                /* mostly text, some controls, some high bytes */
                unsigned r = (unsigned)(x >> 32);
                buf[i] = (char)(r % 4 == 0 ? (r >> 8) & 0xff : r % 4 == 1 ? (r >> 8) % 32 : 'a' + (r >> 8) % 26);
            }
        }
        json_t *v = oai_string_lossy(buf, n);
        char *want = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(v);
        sl_buf_t b = {0};
        CHECK(oai_json_str(&b, buf, n) == 0);
        if (!want || b.len != strlen(want) || memcmp(b.data, want, b.len) != 0) {
            if (bad++ < 3) CHECK_MSG(0, "case %d: got %.*s want %s", t, (int)b.len, b.data, want ? want : "?");
        }
        free(want);
        sl_buf_free(&b);
    }
    CHECK_MSG(bad == 0, "%d strings differ from jansson", bad);
}

int main(void) {
    RUN(test_chat_ok_defaults);
    RUN(test_chat_errors);
    RUN(test_completions);
    RUN(test_error_json);
    RUN(test_stop_strings);
    RUN(test_prefix_and_fim_fields);
    RUN(test_fim_layout);
    RUN(test_json_str_matches_jansson);
    return test_summary();
}
