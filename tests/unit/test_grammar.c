/* deps: grammar base */
/*
 * test_grammar.c — grammars, matcher, token masks, JSON and JSON Schema.
 *
 * References used (independent of the code under test): jansson parses every
 * completed output; a small JSON-Schema validator written here (PCRE2 for
 * `pattern`) checks it against its schema; and for mask soundness every
 * token's fate is recomputed by walking its bytes one at a time.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "grammar/grammar.h"
#include "base/base.h"
#include "test.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

bool gram_matcher_token_ok_slow(gram_matcher_t *m, int32_t t);

/* ---- a synthetic byte-level vocabulary ---- */

static const char *EXTRA_TOKENS[] = {
    "{\"", "\":", "\": ", "\", \"", "\",", "\"}", "\"]", "}", "},", "}]", "[{", "[\"", "true",
    "false", "null", "\n  ", "\n    ", "  ", ", ", "name", "abc", "12", "345", "0.", "-1", "e+",
    "\\n", "\\\"", "\\u00e9", "é", "日本", "2024-", "-01", "T12:", "00:00Z", "@example.com",
    "id", "\"id", "value", "\"\n}", "true}", ",\"", "\":\"", "\":[", "\":{", "0", ".5", "ab\"",
    "\"a", "xyz", " {", "[]", "{}", "\"\"", "00000000-", "0000-", "user", "\"name\":", NULL};

typedef struct {
    char **tok;
    size_t *len;
    size_t n;
    int32_t eog;
} tvocab_t;

static void tvocab_make(tvocab_t *v) {
    size_t n_extra = 0;
    while (EXTRA_TOKENS[n_extra]) n_extra++;
    v->n = 256 + n_extra + 2;
    v->tok = calloc(v->n, sizeof *v->tok);
    v->len = calloc(v->n, sizeof *v->len);
    for (int i = 0; i < 256; i++) {
        v->tok[i] = malloc(1);
        v->tok[i][0] = (char)i;
        v->len[i] = 1;
    }
    for (size_t i = 0; i < n_extra; i++) {
        v->tok[256 + i] = strdup(EXTRA_TOKENS[i]);
        v->len[256 + i] = strlen(EXTRA_TOKENS[i]);
    }
    v->tok[256 + n_extra] = strdup("<|im_end|>"); /* EOG with text */
    v->len[256 + n_extra] = 10;
    v->eog = (int32_t)(256 + n_extra);
    v->tok[257 + n_extra] = strdup(""); /* a control token: never allowed */
    v->len[257 + n_extra] = 0;
}

static void tvocab_free(tvocab_t *v) {
    for (size_t i = 0; i < v->n; i++) free(v->tok[i]);
    free(v->tok);
    free(v->len);
}

static tvocab_t TV;
static gram_vocab_t *VOC;

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Accept a whole string byte-wise through a fresh matcher. */
static bool accepts(const gram_t *g, const char *s, bool must_end) {
    char err[256];
    gram_index_t *ix = gram_index_new(g, VOC, err, sizeof err);
    gram_matcher_t *m = ix ? gram_matcher_new(ix, err, sizeof err) : NULL;
    bool ok = m && gram_matcher_accept_bytes(m, s, strlen(s)) == 0 &&
              (!must_end || gram_matcher_can_end(m));
    gram_matcher_free(m);
    gram_index_free(ix);
    return ok;
}

static void test_gbnf_basics(void) {
    char err[256];
    gram_t *g = gram_from_gbnf("root ::= \"a\" b{2,3} ( \"x\" | [0-9]+ ) # c\nb ::= [b-c]", err,
                               sizeof err);
    CHECK_MSG(g != NULL, "%s", err);
    CHECK(accepts(g, "abbx", true));
    CHECK(accepts(g, "abcb123", true));
    CHECK(!accepts(g, "abx", true));
    CHECK(!accepts(g, "abbbbx", false));
    CHECK(accepts(g, "abbb", false)); /* prefix */
    CHECK(!accepts(g, "abbb", true));
    gram_free(g);
    /* unicode classes, negation, any */
    g = gram_from_gbnf("root ::= [α-ω]+ [^a-z] .", err, sizeof err);
    CHECK_MSG(g != NULL, "%s", err);
    CHECK(accepts(g, "αβγ日x", true));
    CHECK(accepts(g, "ω9é", true));
    CHECK(!accepts(g, "αbx", true));
    CHECK(!accepts(g, "a", false));
    gram_free(g);
    /* recursion */
    g = gram_from_gbnf("root ::= p\np ::= \"(\" p* \")\"", err, sizeof err);
    CHECK(accepts(g, "(()(()))", true));
    CHECK(!accepts(g, "(()", true));
    CHECK(!accepts(g, "())", false));
    gram_free(g);
    /* errors */
    const char *bad[] = {"root ::= x", "root ::= \"a", "root ::= [a-", "foo ::= \"a\"",
                         "root ::= root \"a\"", "root ::= a\na ::= b? root", "root ::= \"a\"{3,1}",
                         "root ::= (\"a\"", "root ::= *", "root ::= [z-a]", NULL};
    for (int i = 0; bad[i]; i++) {
        err[0] = 0;
        g = gram_from_gbnf(bad[i], err, sizeof err);
        CHECK_MSG(g == NULL && err[0], "accepted bad grammar %s", bad[i]);
        gram_free(g);
    }
}

static void test_regex(void) {
    char err[256];
    struct {
        const char *re, *s;
        bool ok;
    } cases[] = {
        {"^[a-z]+@[a-z]+\\.com$", "bob@x.com", true}, {"[a-z]+@[a-z]+\\.com", "bob@x.org", false},
        {"\\d{3}-\\d{4}", "555-1234", true},          {"\\d{3}-\\d{4}", "55-1234", false},
        {"(ab|cd)*e?", "ababcde", true},              {"(?:x|y){2,}", "x", false},
        {"a.c", "a\xc3\xa9" "c", true},               {"\\w+\\s\\W", "ab_9 !", true},
        {"[^0-9]+", "abc", true},                     {"[^0-9]+", "ab1", false},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        gram_t *g = gram_from_regex(cases[i].re, err, sizeof err);
        CHECK_MSG(g != NULL, "%s: %s", cases[i].re, err);
        if (g) CHECK_MSG(accepts(g, cases[i].s, true) == cases[i].ok, "%s vs %s", cases[i].re, cases[i].s);
        gram_free(g);
    }
    const char *bad[] = {"(a", "a(?=b)", "(a)\\1", "a++", "[b-a]", NULL};
    for (int i = 0; bad[i]; i++) {
        err[0] = 0;
        gram_t *g = gram_from_regex(bad[i], err, sizeof err);
        CHECK_MSG(g == NULL && err[0], "regex %s", bad[i]);
        gram_free(g);
    }
}

static void test_json_corpus(void) {
    char err[256];
    gram_t *g = gram_json_any(false, err, sizeof err);
    CHECK_MSG(g != NULL, "%s", err);
    const char *good[] = {"{}", "[]", "0", "-0.5e+10", "\"\"", "\"a\\u00e9\\n\\\"\"", "true",
                          "null", "{\"a\": [1, 2, {\"b\": null}], \"c\": \"日本\"}",
                          "{\n  \"a\": 1,\n  \"b\": [\n    true\n  ]\n}", "[[[[[]]]]]",
                          "123456789", "\"\xc3\xa9\"", NULL};
    const char *badj[] = {"{", "[1,]", "01", "\"\\x\"", "{\"a\" 1}", "{1: 2}", "tru", "[1  ]",
                          "{\"a\":1}}", "\"a\nb\"", "1.", "- 1", "nul", "[\n\n]", NULL};
    for (int i = 0; good[i]; i++) CHECK_MSG(accepts(g, good[i], true), "good %s", good[i]);
    for (int i = 0; badj[i]; i++) CHECK_MSG(!accepts(g, badj[i], true), "bad %s", badj[i]);
    gram_free(g);
    g = gram_json_any(true, err, sizeof err);
    CHECK(accepts(g, "{\"x\": 1}", true));
    CHECK(!accepts(g, "[1]", true));
    CHECK(!accepts(g, "1", false));
    gram_free(g);
}

/* ---- an independent validator for the schema subset ---- */

static bool re_search(const char *pat, const char *s, bool anchored) {
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | (anchored ? PCRE2_ANCHORED | PCRE2_ENDANCHORED : 0), &ec, &eo, NULL);
    if (!c) return false;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
    int rc = pcre2_match(c, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(c);
    return rc >= 0;
}

static size_t utf8_len(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool valid(const json_t *root, const json_t *s, const json_t *x, int depth);

static bool valid_type(const char *t, const json_t *x) {
    if (!strcmp(t, "string")) return json_is_string(x);
    if (!strcmp(t, "integer")) return json_is_integer(x) || (json_is_real(x) && json_real_value(x) == (double)(long long)json_real_value(x));
    if (!strcmp(t, "number")) return json_is_number(x);
    if (!strcmp(t, "boolean")) return json_is_boolean(x);
    if (!strcmp(t, "null")) return json_is_null(x);
    if (!strcmp(t, "object")) return json_is_object(x);
    if (!strcmp(t, "array")) return json_is_array(x);
    return false;
}

static bool valid_format(const char *f, const char *s) {
    if (!strcmp(f, "date") || !strcmp(f, "date-time")) {
        int y, mo, d;
        if (sscanf(s, "%4d-%2d-%2d", &y, &mo, &d) != 3 || !re_search("^\\d{4}-\\d{2}-\\d{2}", s, false)) return false;
        static const int dim[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (mo < 1 || mo > 12 || d < 1 || d > dim[mo - 1] || (mo == 2 && d == 29 && !leap)) return false;
        if (!strcmp(f, "date")) return strlen(s) == 10;
        return re_search("^\\d{4}-\\d{2}-\\d{2}T([01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(\\.\\d+)?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$", s, false);
    }
    if (!strcmp(f, "time")) return re_search("^([01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(\\.\\d+)?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$", s, false);
    if (!strcmp(f, "uuid")) return re_search("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", s, false);
    if (!strcmp(f, "email")) return re_search("^[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}$", s, false) && !strstr(s, "..");
    return false;
}

static const json_t *deref(const json_t *root, const char *ref) {
    if (!strcmp(ref, "#")) return root;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ref + 2);
    const json_t *cur = root;
    for (char *tok = strtok(buf, "/"); tok && cur; tok = strtok(NULL, "/")) cur = json_object_get(cur, tok);
    return cur;
}

static bool valid(const json_t *root, const json_t *s, const json_t *x, int depth) {
    if (depth > 200) return false;
    if (json_is_true(s)) return true;
    if (!json_is_object(s)) return false;
    json_t *v;
    if (json_is_true(json_object_get(s, "nullable")) && json_is_null(x)) return true;
    if ((v = json_object_get(s, "$ref"))) return valid(root, deref(root, json_string_value(v)), x, depth + 1);
    if ((v = json_object_get(s, "const")) && !json_equal(v, x)) return false;
    if ((v = json_object_get(s, "enum"))) {
        bool f = false;
        for (size_t i = 0; i < json_array_size(v); i++) f |= json_equal(json_array_get(v, i), (json_t *)x);
        if (!f) return false;
    }
    if ((v = json_object_get(s, "anyOf"))) {
        bool f = false;
        for (size_t i = 0; i < json_array_size(v); i++) f |= valid(root, json_array_get(v, i), x, depth + 1);
        if (!f) return false;
    }
    if ((v = json_object_get(s, "oneOf"))) {
        int f = 0;
        for (size_t i = 0; i < json_array_size(v); i++) f += valid(root, json_array_get(v, i), x, depth + 1);
        if (f != 1) return false;
    }
    if ((v = json_object_get(s, "allOf")))
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!valid(root, json_array_get(v, i), x, depth + 1)) return false;
    if ((v = json_object_get(s, "type"))) {
        bool f = false;
        if (json_is_string(v)) f = valid_type(json_string_value(v), x);
        for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) f |= valid_type(json_string_value(json_array_get(v, i)), x);
        if (!f) return false;
    }
    if (json_is_string(x)) {
        const char *str = json_string_value(x);
        if ((v = json_object_get(s, "minLength")) && utf8_len(str) < (size_t)json_integer_value(v)) return false;
        if ((v = json_object_get(s, "maxLength")) && utf8_len(str) > (size_t)json_integer_value(v)) return false;
        if ((v = json_object_get(s, "pattern")) && !re_search(json_string_value(v), str, false)) return false;
        if ((v = json_object_get(s, "format")) && !valid_format(json_string_value(v), str)) return false;
    }
    if (json_is_number(x)) {
        double d = json_number_value(x);
        if ((v = json_object_get(s, "minimum")) && d < json_number_value(v)) return false;
        if ((v = json_object_get(s, "maximum")) && d > json_number_value(v)) return false;
        if ((v = json_object_get(s, "exclusiveMinimum")) && d <= json_number_value(v)) return false;
        if ((v = json_object_get(s, "exclusiveMaximum")) && d >= json_number_value(v)) return false;
    }
    if (json_is_array(x)) {
        size_t n = json_array_size(x);
        if ((v = json_object_get(s, "minItems")) && n < (size_t)json_integer_value(v)) return false;
        if ((v = json_object_get(s, "maxItems")) && n > (size_t)json_integer_value(v)) return false;
        json_t *pi = json_object_get(s, "prefixItems"), *it = json_object_get(s, "items");
        for (size_t i = 0; i < n; i++) {
            const json_t *sub = i < json_array_size(pi) ? json_array_get(pi, i) : it;
            if (sub && !valid(root, sub, json_array_get(x, i), depth + 1)) return false;
        }
    }
    if (json_is_object(x)) {
        json_t *props = json_object_get(s, "properties"), *ap = json_object_get(s, "additionalProperties");
        if ((v = json_object_get(s, "required")))
            for (size_t i = 0; i < json_array_size(v); i++)
                if (!json_object_get(x, json_string_value(json_array_get(v, i)))) return false;
        const char *k;
        json_t *val;
        json_object_foreach((json_t *)x, k, val) {
            json_t *ps = props ? json_object_get(props, k) : NULL;
            if (ps) {
                if (!valid(root, ps, val, depth + 1)) return false;
            } else if (ap) {
                if (json_is_false(ap)) return false;
                if (json_is_object(ap) && !valid(root, ap, val, depth + 1)) return false;
            }
        }
    }
    return true;
}

/* ---- random walks ---- */

static const char *PREFER[] = {"}", "]", "\"", "0", "1", "a", "e", "l", "n", "u", "2", ",", "-", ":", NULL};

/* Generates by sampling uniformly (with a bias towards closing) among the
 * tokens the mask allows; also checks mask soundness on the way. Returns
 * the text when the walk ended with EOG (caller frees), else NULL. */
static char *random_walk(gram_matcher_t *m, uint32_t *mask, size_t nw, int max_steps, int *sound_fail) {
    sl_buf_t out = {0};
    for (int step = 0; step < max_steps; step++) {
        int cnt = gram_matcher_fill_mask(m, mask);
        if (cnt <= 0) break;
        /* soundness against the byte walk, every few steps (it is slow) */
        if (step % 7 == 0)
            for (size_t t = 0; t < TV.n; t++) {
                bool in = (mask[t >> 5] >> (t & 31)) & 1;
                if (in != gram_matcher_token_ok_slow(m, (int32_t)t)) {
                    (*sound_fail)++;
                    if (*sound_fail < 5) fprintf(stderr, "  mask mismatch token %zu '%.*s' mask=%d after '%s'\n", t, (int)TV.len[t], TV.tok[t], in, out.data ? out.data : "");
                }
            }
        int32_t pick = -1;
        if ((mask[TV.eog >> 5] >> (TV.eog & 31)) & 1) pick = TV.eog;
        if (pick < 0 && step > 25 && rnd() % 10 < 8)
            for (int i = 0; PREFER[i] && pick < 0; i++) {
                unsigned char c = (unsigned char)PREFER[i][0];
                if ((mask[c >> 5] >> (c & 31)) & 1) pick = c;
            }
        if (pick < 0) {
            int k = (int)(rnd() % (uint32_t)cnt);
            for (size_t w = 0; w < nw && pick < 0; w++)
                for (int b = 0; b < 32; b++)
                    if ((mask[w] >> b) & 1 && k-- == 0) {
                        pick = (int32_t)(w * 32 + (size_t)b);
                        break;
                    }
        }
        if (gram_matcher_accept_token(m, pick) != 0) {
            (*sound_fail)++;
            break;
        }
        if (pick == TV.eog) return sl_buf_steal(&out);
        sl_buf_append(&out, TV.tok[pick], TV.len[pick]);
    }
    sl_buf_free(&out);
    return NULL;
}

/* random schema generator */
static const char *PATTERNS[] = {"^[a-z]{2,6}$", "^\\d{3}-\\d{2}$", "^(red|green|blue)$", "^[A-Z][a-z]+( [A-Z][a-z]+)?$", "abc", "^x+y*$"};
static const char *FORMATS[] = {"date", "date-time", "uuid", "email", "time"};

static json_t *rand_schema(int depth) {
    int k = (int)(rnd() % (depth > 2 ? 8 : 12));
    json_t *s = json_object();
    switch (k) {
    case 0: {
        json_object_set_new(s, "type", json_string("string"));
        int r = (int)(rnd() % 4);
        if (r == 1) {
            json_object_set_new(s, "minLength", json_integer(rnd() % 3));
            json_object_set_new(s, "maxLength", json_integer(3 + rnd() % 5));
        } else if (r == 2) {
            json_object_set_new(s, "pattern", json_string(PATTERNS[rnd() % SL_ARRAY_LEN(PATTERNS)]));
        } else if (r == 3) {
            json_object_set_new(s, "format", json_string(FORMATS[rnd() % SL_ARRAY_LEN(FORMATS)]));
        }
        break;
    }
    case 1: {
        json_object_set_new(s, "type", json_string("integer"));
        long long lo = (long long)(rnd() % 2000) - 1000;
        if (rnd() % 2) json_object_set_new(s, "minimum", json_integer(lo));
        if (rnd() % 2) json_object_set_new(s, "maximum", json_integer(lo + (long long)(rnd() % 5000)));
        if (rnd() % 4 == 0) json_object_set_new(s, "exclusiveMinimum", json_integer(lo - 1));
        break;
    }
    case 2: {
        json_object_set_new(s, "type", json_string("number"));
        double lo = ((int)(rnd() % 200) - 100) / 4.0;
        if (rnd() % 2) json_object_set_new(s, "minimum", json_real(lo));
        if (rnd() % 2) json_object_set_new(s, "maximum", json_real(lo + (rnd() % 40) / 3.0 + 1));
        break;
    }
    case 3: json_object_set_new(s, "type", json_string(rnd() % 2 ? "boolean" : "null")); break;
    case 4: {
        json_t *e = json_array();
        json_array_append_new(e, json_string("alpha"));
        json_array_append_new(e, json_integer(42));
        json_array_append_new(e, json_string("al\"pha"));
        if (rnd() % 2) json_array_append_new(e, json_null());
        json_object_set_new(s, "enum", e);
        break;
    }
    case 5: json_object_set_new(s, "const", rnd() % 2 ? json_string("fixed") : json_pack("{s:i}", "k", 1)); break;
    case 6: {
        json_t *t = json_array();
        json_array_append_new(t, json_string("string"));
        json_array_append_new(t, json_string(rnd() % 2 ? "integer" : "null"));
        json_object_set_new(s, "type", t);
        json_object_set_new(s, "maxLength", json_integer(5));
        break;
    }
    case 7: json_object_set_new(s, "type", json_string("string")); json_object_set_new(s, "nullable", json_true()); break;
    case 8: case 9: {
        json_object_set_new(s, "type", json_string("object"));
        json_t *props = json_object(), *req = json_array();
        int np = 1 + (int)(rnd() % 4);
        for (int i = 0; i < np; i++) {
            char key[16];
            snprintf(key, sizeof key, "%s%d", i % 2 ? "id" : "name", i);
            json_object_set_new(props, key, rand_schema(depth + 1));
            if (rnd() % 2) json_array_append_new(req, json_string(key));
        }
        json_object_set_new(s, "properties", props);
        json_object_set_new(s, "required", req);
        int ap = (int)(rnd() % 4);
        if (ap == 0) json_object_set_new(s, "additionalProperties", json_false());
        if (ap == 1) json_object_set_new(s, "additionalProperties", json_true());
        if (ap == 2) json_object_set_new(s, "additionalProperties", json_pack("{s:s}", "type", "integer"));
        break;
    }
    case 10: {
        json_object_set_new(s, "type", json_string("array"));
        json_object_set_new(s, "items", rand_schema(depth + 1));
        if (rnd() % 2) json_object_set_new(s, "minItems", json_integer(rnd() % 2));
        if (rnd() % 2) json_object_set_new(s, "maxItems", json_integer(2 + rnd() % 3));
        if (rnd() % 3 == 0) json_object_set_new(s, "prefixItems", json_pack("[{s:s},{s:s}]", "type", "boolean", "type", "integer"));
        break;
    }
    default: {
        json_t *a = json_array();
        json_array_append_new(a, rand_schema(depth + 1));
        json_array_append_new(a, json_pack("{s:s}", "type", "null"));
        json_object_set_new(s, "anyOf", a);
        break;
    }
    }
    return s;
}

static const char *FIXED_SCHEMAS[] = {
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"children\":{\"type\":\"array\",\"items\":{\"$ref\":\"#\"},\"maxItems\":2}},\"required\":[\"name\"]}",
    "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9},\"next\":{\"anyOf\":[{\"$ref\":\"#/$defs/node\"},{\"type\":\"null\"}]}},\"required\":[\"v\",\"next\"],\"additionalProperties\":false}},\"$ref\":\"#/$defs/node\"}",
    "{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"number\"}],\"items\":false,\"minItems\":1}",
    "{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]},{\"properties\":{\"b\":{\"type\":\"boolean\"}},\"required\":[\"b\"]}]}",
    "{\"oneOf\":[{\"type\":\"integer\",\"minimum\":-50,\"maximum\":-10},{\"type\":\"string\",\"format\":\"uuid\"}]}",
    "{\"type\":\"integer\",\"minimum\":-123456,\"maximum\":987654}",
    "{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1}",
    "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\",\"maxLength\":3}}",
    "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"}},\"additionalProperties\":true}",
    "{\"enum\":[\"a\",\"b\",{\"x\":[1,2]},[true],null,1.5]}",
    "{\"type\":\"string\",\"format\":\"date\"}",
};

static void test_schemas_random_walks(void) {
    char err[512];
    uint32_t *mask = malloc(gram_mask_words(VOC) * sizeof *mask);
    int n_schemas = 0, n_done = 0, n_valid = 0, sound_fail = 0;
    size_t n_fixed = SL_ARRAY_LEN(FIXED_SCHEMAS);
    for (int si = 0; si < 130; si++) {
        json_t *schema;
        if ((size_t)si < n_fixed) {
            schema = json_loads(FIXED_SCHEMAS[si], 0, NULL);
        } else {
            schema = rand_schema(0);
        }
        gram_t *g = gram_from_json_schema(schema, err, sizeof err);
        char *dump = json_dumps(schema, JSON_COMPACT);
        CHECK_MSG(g != NULL, "schema %s: %s", dump, err);
        if (!g) {
            free(dump);
            json_decref(schema);
            continue;
        }
        n_schemas++;
        gram_index_t *ix = gram_index_new(g, VOC, err, sizeof err);
        gram_matcher_t *m = ix ? gram_matcher_new(ix, err, sizeof err) : NULL;
        CHECK(m != NULL);
        for (int walk = 0; m && walk < 4; walk++) {
            gram_matcher_reset(m);
            char *txt = random_walk(m, mask, gram_mask_words(VOC), 300, &sound_fail);
            if (!txt) continue;
            n_done++;
            json_error_t je;
            json_t *x = json_loads(txt, JSON_DECODE_ANY, &je);
            CHECK_MSG(x != NULL, "output does not parse: %s (schema %s)", txt, dump);
            bool ok = x && valid(schema, schema, x, 0);
            CHECK_MSG(ok, "output %s does not validate against %s", txt, dump);
            n_valid += ok;
            json_decref(x);
            free(txt);
        }
        gram_matcher_free(m);
        gram_index_free(ix);
        gram_free(g);
        free(dump);
        json_decref(schema);
    }
    CHECK_MSG(sound_fail == 0, "%d mask/byte-walk disagreements", sound_fail);
    CHECK_MSG(n_schemas >= 100, "only %d schemas compiled", n_schemas);
    CHECK_MSG(n_done >= 200, "only %d walks completed", n_done);
    fprintf(stderr, "  schemas %d, completed walks %d, valid %d\n", n_schemas, n_done, n_valid);
    free(mask);
}

/* Every token's mask bit against the byte walk, from the matcher's state. */
static int mask_mismatches(gram_matcher_t *m, uint32_t *mask) {
    int bad = 0;
    if (gram_matcher_fill_mask(m, mask) < 0) return 1000000;
    for (size_t t = 0; t < TV.n; t++) {
        bool in = (mask[t >> 5] >> (t & 31)) & 1;
        if (in != gram_matcher_token_ok_slow(m, (int32_t)t)) bad++;
    }
    return bad;
}

/* Long bounded repetitions: links deeper than the longest token share one
 * cache, the links near the chain's end are indexed lazily — masks must stay
 * exact at every length, with the exact bound. */
static void test_bounded_chains(void) {
    char err[256];
    const char *src[] = {
        "root ::= \"<\" [a-z\\xe9]{0,40} \">\"",
        "root ::= \"<\" [a-z]{3,30} ( \",\" [a-z]{1,20} ){0,3} \">\"",
        "root ::= \"{\" ( \"\\\"\" [^\"]{0,25} \"\\\"\" ){2} \"}\"",
        NULL};
    uint32_t *mask = malloc(gram_mask_words(VOC) * sizeof *mask);
    for (int i = 0; src[i]; i++) {
        gram_t *g = gram_from_gbnf(src[i], err, sizeof err);
        CHECK_MSG(g != NULL, "%s: %s", src[i], err);
        if (!g) continue;
        gram_index_t *ix = gram_index_new(g, VOC, err, sizeof err);
        gram_matcher_t *m = ix ? gram_matcher_new(ix, err, sizeof err) : NULL;
        CHECK(m != NULL);
        /* byte by byte along increasing lengths; check the mask each step */
        int bad = 0;
        for (int len = 0; m && len <= 42; len += 1 + len / 4) {
            gram_matcher_reset(m);
            const char *open = i == 2 ? "{\"" : "<";
            CHECK(gram_matcher_accept_bytes(m, open, strlen(open)) == 0);
            bad += mask_mismatches(m, mask);
            int ok = 1;
            for (int k = 0; k < len && ok; k++) {
                ok = gram_matcher_accept_bytes(m, "q", 1) == 0;
                bad += mask_mismatches(m, mask);
            }
            int limit = i == 0 ? 40 : i == 1 ? 30 : 25;
            CHECK_MSG(ok == (len <= limit), "grammar %d length %d accepted=%d", i, len, ok);
        }
        CHECK_MSG(bad == 0, "grammar %d: %d mask/byte-walk disagreements", i, bad);
        gram_matcher_free(m);
        gram_index_free(ix);
        gram_free(g);
    }
    /* random walks through the same grammars */
    int sound_fail = 0;
    for (int i = 0; src[i]; i++) {
        gram_t *g = gram_from_gbnf(src[i], err, sizeof err);
        gram_index_t *ix = g ? gram_index_new(g, VOC, err, sizeof err) : NULL;
        gram_matcher_t *m = ix ? gram_matcher_new(ix, err, sizeof err) : NULL;
        for (int w = 0; m && w < 10; w++) {
            gram_matcher_reset(m);
            free(random_walk(m, mask, gram_mask_words(VOC), 120, &sound_fail));
        }
        gram_matcher_free(m);
        gram_index_free(ix);
        gram_free(g);
    }
    CHECK_MSG(sound_fail == 0, "%d disagreements in random walks", sound_fail);
    free(mask);
}

static void test_index_cache(void) {
    char err[256];
    const char *sch = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]}";
    gram_cache_set_limit(2);
    gram_index_t *a = gram_index_cached(VOC, GRAM_SRC_JSON_SCHEMA, sch, strlen(sch), err, sizeof err);
    CHECK_MSG(a != NULL, "%s", err);
    gram_index_t *b = gram_index_cached(VOC, GRAM_SRC_JSON_SCHEMA, sch, strlen(sch), err, sizeof err);
    CHECK(a == b); /* same text: shared */
    gram_index_t *c = gram_index_cached(VOC, GRAM_SRC_JSON_OBJECT, NULL, 0, err, sizeof err);
    gram_index_t *c2 = gram_index_cached(VOC, GRAM_SRC_JSON_OBJECT, "ignored", 7, err, sizeof err);
    CHECK(c != NULL && c == c2 && c != a);
    /* the cached index works like any other */
    gram_matcher_t *m = gram_matcher_new(a, err, sizeof err);
    CHECK(m && gram_matcher_accept_bytes(m, "{\"a\": 12}", 9) == 0 && gram_matcher_can_end(m));
    CHECK(m && gram_matcher_accept_bytes(m, "x", 1) != 0);
    gram_matcher_free(m);
    /* errors are reported, nothing is cached */
    size_t before = gram_cache_size();
    CHECK(gram_index_cached(VOC, GRAM_SRC_JSON_SCHEMA, "{\"not\":{}}", 10, err, sizeof err) == NULL &&
          strstr(err, "not"));
    CHECK(gram_index_cached(VOC, GRAM_SRC_GBNF, "root ::= x", 10, err, sizeof err) == NULL);
    CHECK(gram_cache_size() == before);
    /* in-use entries survive a limit of 0; idle ones go */
    gram_cache_set_limit(0);
    CHECK(gram_cache_size() == 2);
    gram_index_release(b);
    gram_index_release(c2);
    CHECK(gram_cache_size() == 2);
    gram_index_release(a);
    CHECK(gram_cache_size() == 1);
    gram_index_release(c);
    CHECK(gram_cache_size() == 0);
    gram_cache_set_limit(64);
    /* regex and GBNF sources; a new vocabulary never hits an old entry */
    gram_index_t *r = gram_index_cached(VOC, GRAM_SRC_REGEX, "[a-c]{2}", 8, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    gram_vocab_t *v2 = gram_vocab_new((const char *const *)TV.tok, TV.len, TV.n, &TV.eog, 1, err, sizeof err);
    gram_index_t *r2 = gram_index_cached(v2, GRAM_SRC_REGEX, "[a-c]{2}", 8, err, sizeof err);
    CHECK(r2 != NULL && r2 != r);
    gram_index_release(r2);
    gram_vocab_free(v2); /* drops its entries */
    CHECK(gram_cache_size() == 1);
    gram_index_release(r);
    gram_cache_set_limit(0);
    CHECK(gram_cache_size() == 0);
    gram_cache_set_limit(64);
}

static void test_json_object_walks(void) {
    char err[256];
    gram_t *g = gram_json_any(true, err, sizeof err);
    gram_index_t *ix = gram_index_new(g, VOC, err, sizeof err);
    gram_matcher_t *m = gram_matcher_new(ix, err, sizeof err);
    uint32_t *mask = malloc(gram_mask_words(VOC) * sizeof *mask);
    int done = 0, sound_fail = 0;
    for (int w = 0; w < 40; w++) {
        gram_matcher_reset(m);
        char *txt = random_walk(m, mask, gram_mask_words(VOC), 400, &sound_fail);
        if (!txt) continue;
        done++;
        json_t *x = json_loads(txt, 0, NULL);
        CHECK_MSG(json_is_object(x), "json_object output: %s", txt);
        json_decref(x);
        free(txt);
    }
    CHECK(done >= 20);
    CHECK(sound_fail == 0);
    /* whitespace is bounded: after "{" at most one ws token then no space */
    gram_matcher_reset(m);
    CHECK(gram_matcher_accept_bytes(m, "{ ", 2) == 0);
    CHECK(gram_matcher_accept_bytes(m, " ", 1) != 0);
    CHECK(gram_matcher_accept_bytes(m, "\n", 1) != 0);
    /* EOG only when complete; empty token never; rollback */
    gram_matcher_reset(m);
    gram_matcher_fill_mask(m, mask);
    CHECK(!((mask[TV.eog >> 5] >> (TV.eog & 31)) & 1));
    CHECK(!((mask[(TV.n - 1) >> 5] >> ((TV.n - 1) & 31)) & 1));
    CHECK(gram_matcher_accept_token(m, TV.eog) != 0);
    CHECK(gram_matcher_accept_token(m, '{') == 0);
    CHECK(gram_matcher_accept_token(m, '}') == 0);
    CHECK(gram_matcher_can_end(m));
    gram_matcher_fill_mask(m, mask);
    CHECK((mask[TV.eog >> 5] >> (TV.eog & 31)) & 1);
    CHECK(gram_matcher_rollback(m, 1) == 0);
    CHECK(!gram_matcher_can_end(m));
    CHECK(gram_matcher_accept_token(m, '"') == 0);
    CHECK(gram_matcher_rollback(m, 5) != 0);
    CHECK(gram_matcher_rollback(m, 2) == 0);
    CHECK(gram_matcher_accept_token(m, '[') != 0);
    CHECK(gram_matcher_accept_token(m, '{') == 0);
    free(mask);
    gram_matcher_free(m);
    gram_index_free(ix);
    gram_free(g);
}

/* Re-check results are shared between the matchers of one index (keyed by
 * the full stack): fresh matchers, in sequence and on several threads at
 * once, must still give exact masks at every step, nested strings included. */
typedef struct {
    gram_index_t *ix;
    uint64_t seed;
    int bad, steps, done;
} shared_walk_t;

static void *shared_walk_thread(void *arg) {
    shared_walk_t *a = arg;
    char err[256];
    uint32_t *mask = malloc(gram_mask_words(VOC) * sizeof *mask);
    uint64_t r = a->seed;
    for (int w = 0; w < 6 && mask; w++) {
        gram_matcher_t *m = gram_matcher_new(a->ix, err, sizeof err);
        if (!m) {
            a->bad++;
            break;
        }
        for (int step = 0; step < 120; step++) {
            a->bad += mask_mismatches(m, mask);
            a->steps++;
            int cnt = gram_matcher_fill_mask(m, mask);
            if (cnt <= 0) break;
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            int k = (int)((r >> 11) % (uint64_t)cnt);
            int32_t pick = -1;
            /* prefer closing / string tokens late so walks end */
            if (step > 60 && ((mask[TV.eog >> 5] >> (TV.eog & 31)) & 1)) pick = TV.eog;
            for (size_t t = 0; t < TV.n && pick < 0; t++)
                if ((mask[t >> 5] >> (t & 31)) & 1 && k-- == 0) pick = (int32_t)t;
            if (pick < 0 || gram_matcher_accept_token(m, pick) != 0) {
                a->bad++;
                break;
            }
            if (pick == TV.eog) {
                a->done++;
                break;
            }
        }
        gram_matcher_free(m);
    }
    free(mask);
    return NULL;
}

static void test_shared_rechecks(void) {
    char err[256];
    gram_t *g = gram_json_any(false, err, sizeof err);
    gram_index_t *ix = gram_index_new(g, VOC, err, sizeof err);
    CHECK(ix != NULL);
    if (!ix) return;
    /* the same nested text through fresh matchers: the 2nd.. reuse results */
    const char *doc = "{\"a\": [\"x\\\"y\", {\"b\": \"ab\"}], \"c\": \"\\u00e9\"}";
    uint32_t *mask = malloc(gram_mask_words(VOC) * sizeof *mask);
    for (int rep = 0; rep < 3; rep++) {
        gram_matcher_t *m = gram_matcher_new(ix, err, sizeof err);
        int bad = 0;
        for (size_t i = 0; doc[i] && m; i++) {
            bad += mask_mismatches(m, mask);
            CHECK(gram_matcher_accept_bytes(m, doc + i, 1) == 0);
        }
        CHECK(m && gram_matcher_can_end(m));
        CHECK_MSG(bad == 0, "pass %d: %d mismatches", rep, bad);
        gram_matcher_free(m);
    }
    free(mask);
    /* four threads of fresh matchers on the one index */
    shared_walk_t w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (shared_walk_t){ix, 0x1234567ULL * (uint64_t)(i + 1), 0, 0, 0};
        CHECK(pthread_create(&th[i], NULL, shared_walk_thread, &w[i]) == 0);
    }
    int bad = 0, steps = 0, done = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad += w[i].bad;
        steps += w[i].steps;
        done += w[i].done;
    }
    CHECK_MSG(bad == 0, "%d mismatches over %d steps", bad, steps);
    CHECK(steps > 200);
    fprintf(stderr, "  shared re-checks: %d steps, %d walks ended\n", steps, done);
    gram_index_free(ix);
    gram_free(g);
}

static void test_schema_errors(void) {
    char err[512];
    struct {
        const char *schema, *needle;
    } cases[] = {
        {"{\"type\":\"string\",\"minProperties\":1}", "minProperties"},
        {"{\"type\":\"object\",\"patternProperties\":{}}", "patternProperties"},
        {"{\"not\":{}}", "not"},
        {"{\"type\":\"integer\",\"multipleOf\":3}", "multipleOf"},
        {"{\"type\":\"string\",\"format\":\"hostname\"}", "hostname"},
        {"{\"$ref\":\"#/$defs/missing\"}", "missing"},
        {"{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}", "recursion"},
        {"{\"type\":\"string\",\"pattern\":\"(a\"}", "regex"},
        {"{\"type\":\"string\",\"pattern\":\"a(?=b)\"}", "lookaround"},
        {"{\"type\":\"integer\",\"minimum\":5,\"maximum\":1}", "no possible value"},
        {"{\"type\":\"bogus\"}", "bogus"},
        {"{\"$ref\":\"http://example.com/s.json\"}", "$ref"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        json_t *s = json_loads(cases[i].schema, 0, NULL);
        err[0] = 0;
        gram_t *g = gram_from_json_schema(s, err, sizeof err);
        CHECK_MSG(g == NULL && strstr(err, cases[i].needle), "%s -> '%s'", cases[i].schema, err);
        gram_free(g);
        json_decref(s);
    }
    /* hostile: deep nesting */
    sl_buf_t b = {0};
    for (int i = 0; i < 500; i++) sl_buf_puts(&b, "{\"type\":\"array\",\"items\":");
    sl_buf_puts(&b, "{}");
    for (int i = 0; i < 500; i++) sl_buf_puts(&b, "}");
    json_t *s = json_loads(b.data, 0, NULL);
    gram_t *g = gram_from_json_schema(s, err, sizeof err);
    CHECK_MSG(g == NULL && strstr(err, "deep"), "deep: %s", err);
    json_decref(s);
    sl_buf_free(&b);
    /* hostile: huge enum is bounded */
    json_t *e = json_array();
    for (int i = 0; i < 20000; i++) json_array_append_new(e, json_integer(i));
    s = json_pack("{s:o}", "enum", e);
    g = gram_from_json_schema(s, err, sizeof err);
    CHECK(g == NULL);
    json_decref(s);
    /* a large but allowed enum works */
    e = json_array();
    for (int i = 0; i < 2000; i++) json_array_append_new(e, json_integer(i * 7));
    s = json_pack("{s:o}", "enum", e);
    g = gram_from_json_schema(s, err, sizeof err);
    CHECK_MSG(g != NULL, "%s", err);
    if (g) CHECK(accepts(g, "13993", true) && !accepts(g, "13994", true));
    gram_free(g);
    json_decref(s);
    /* hostile GBNF: huge repetition */
    g = gram_from_gbnf("root ::= (\"ab\" [c-d]){99999}", err, sizeof err);
    gram_free(g); /* may fail or succeed; must not crash */
    g = gram_from_gbnf("root ::= \"a\"{1000000}", err, sizeof err);
    CHECK(g == NULL);
}

int main(void) {
    char err[256];
    tvocab_make(&TV);
    VOC = gram_vocab_new((const char *const *)TV.tok, TV.len, TV.n, &TV.eog, 1, err, sizeof err);
    if (!VOC) {
        fprintf(stderr, "vocab: %s\n", err);
        return 1;
    }
    RUN(test_gbnf_basics);
    RUN(test_regex);
    RUN(test_json_corpus);
    RUN(test_json_object_walks);
    RUN(test_bounded_chains);
    RUN(test_index_cache);
    RUN(test_shared_rechecks);
    RUN(test_schema_errors);
    RUN(test_schemas_random_walks);
    gram_vocab_free(VOC);
    tvocab_free(&TV);
    return test_summary();
}
