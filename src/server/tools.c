/*
 * tools.c — function calling and reasoning for chat requests: detection at
 * model load, request validation, the call grammar handed to the engine,
 * and the per-choice output parser (see tools.h, docs/toolcall.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/grammar.h"
#include "server/server_int.h"
#include "server/tools.h"

static bool has_token(void *ud, const char *text) {
    const srv_model_t *m = ud;
    return tok_find(m->tok, text, strlen(text)) >= 0;
}

void tools_model_detect(srv_model_t *m, const char *src, size_t len) {
    m->tc_family = tc_detect(src, len, has_token, m);
    m->tc_reasoning = tc_detect_reasoning(src, len, has_token, m);
}

void tools_vocab_keep(const srv_model_t *m, const char **keep, size_t cap) {
    size_t n = 0;
    const char *const *mk = tc_family_markers(m->tc_family);
    for (size_t i = 0; mk[i] && n + 1 < cap; i++) keep[n++] = mk[i];
    if (m->tc_reasoning && n + 3 <= cap) {
        keep[n++] = "<think>";
        keep[n++] = "</think>";
    }
    if (cap) keep[n] = NULL;
}

/* chat_template_kwargs.enable_thinking == false turns reasoning off (the
 * template then closes the think block itself, e.g. Qwen3). */
static void think_close_ids(const srv_model_t *m, srv_tools_t *t);

static bool thinking_enabled(const json_t *body) {
    const json_t *kw = json_object_get(body, "chat_template_kwargs");
    const json_t *v = json_object_get(kw, "enable_thinking");
    return !json_is_false(v);
}

/* Harmony: whether a grammar lets the turn begin with an analysis message.
 * Reasoning is off (the answer or call comes first) with enable_thinking
 * false (also what the Responses and Anthropic routes set for effort none /
 * thinking disabled) or reasoning_effort "none" (the template has no such
 * level and says "low"; the grammar keeps the answer free of analysis). */
static bool harmony_analysis(const json_t *body) {
    const char *ef = json_string_value(json_object_get(body, "reasoning_effort"));
    return thinking_enabled(body) && !(ef && strcmp(ef, "none") == 0);
}

int tools_prepare(const srv_model_t *m, const json_t *body, srv_tools_t *t, oai_error_t *e) {
    memset(t, 0, sizeof *t);
    char err[SL_ERR_MAX], param[96];
    if (tc_request_parse(body, &t->req, err, sizeof err, param, sizeof param) != 0)
        return oai_fail(e, 400, NULL, NULL, param[0] ? param : NULL, "%s", err);
    if ((t->req.choice == TC_CHOICE_REQUIRED || t->req.choice == TC_CHOICE_NAMED) &&
        m->tc_family == TC_FAMILY_NONE)
        return oai_fail(e, 400, NULL, "tools_not_supported", "tool_choice",
                        "The model '%.100s' has no known tool-call format (its chat template and "
                        "vocabulary name none), so tool_choice '%s' cannot be honoured.",
                        m->id, t->req.choice == TC_CHOICE_REQUIRED ? "required" : "function");
    t->family = t->req.choice == TC_CHOICE_NONE ? TC_FAMILY_NONE : m->tc_family;
    if (m->tc_family == TC_FAMILY_HARMONY) {
        /* harmony channels are always parsed (analysis is reasoning); with
         * tool_choice none a function-call message is content */
        t->family = TC_FAMILY_HARMONY;
        t->no_calls = t->req.choice == TC_CHOICE_NONE;
        t->analysis = harmony_analysis(body);
    }
    t->reasoning = m->tc_reasoning && thinking_enabled(body);
    t->parse = t->family != TC_FAMILY_NONE || t->reasoning;
    think_close_ids(m, t);
    return 0;
}

/* The text forced when a reasoning budget is spent: the reasoning ends on
 * its own line and the answer starts after a blank line, as these models'
 * templates write a finished think block. */
#define THINK_CLOSE_TEXT "\n</think>\n\n"

static void think_close_ids(const srv_model_t *m, srv_tools_t *t) {
    t->n_think_close = 0;
    if (!t->reasoning) return;
    t->think_start = tok_find(m->tok, "<think>", 7);
    t->think_end = tok_find(m->tok, "</think>", 8);
    if (t->think_start < 0 || t->think_end < 0) return;
    int32_t *ids = NULL;
    size_t n = 0;
    char err[SL_ERR_MAX];
    if (tok_encode(m->tok, THINK_CLOSE_TEXT, strlen(THINK_CLOSE_TEXT), false, true, &ids, &n, err, sizeof err) != 0)
        return;
    bool has_end = false;
    for (size_t i = 0; i < n; i++) has_end |= ids[i] == t->think_end;
    if (has_end && n <= SL_ARRAY_LEN(t->think_close)) {
        memcpy(t->think_close, ids, n * sizeof *ids);
        t->n_think_close = n;
    }
    free(ids);
}

void tools_think_budget(const srv_tools_t *t, int budget, eng_request_t *er) {
    if (budget <= 0 || !t->reasoning || t->n_think_close == 0) return;
    er->think_budget = budget;
    er->think_open = t->think_open;
    er->think_start_id = t->think_start;
    er->think_end_id = t->think_end;
    er->think_close = t->think_close;
    er->n_think_close = t->n_think_close;
}

void tools_set_prompt(srv_tools_t *t, const char *prompt, size_t len) {
    t->think_open = t->reasoning && tc_prompt_opens_think(prompt, len);
}

/* Text of a think block up to (not including) "</think>". A "<" right
 * before the closing tag is not expressible (documented limit). */
static const char THINK_RULES[] =
    "think-body ::= ( [^<] | \"<\" [^/] | \"</\" [^t] | \"</t\" [^h] | \"</th\" [^i] | "
    "\"</thi\" [^n] | \"</thin\" [^k] | \"</think\" [^>] )*\n";

int tools_grammar(const srv_model_t *m, srv_tools_t *t, const char *prefix, size_t prefix_len,
                  eng_grammar_t *g, oai_error_t *e) {
    const tc_choice_t ch = t->req.choice;
    if (t->family == TC_FAMILY_NONE || ch == TC_CHOICE_NONE || !t->req.tools) return 0;
    const bool lazy = ch == TC_CHOICE_AUTO;
    tc_trigger_t trig = tc_trigger(t->family);
    if (lazy && !trig.lazy_supported) return 0; /* no fixed trigger: free text, parsed after */
    char err[SL_ERR_MAX];
    sl_buf_t calls = {0};
    /* harmony required / named: the whole turn (an optional analysis
     * message, then the call); auto: the lazy call grammar */
    const int built = t->family == TC_FAMILY_HARMONY && !lazy
                          ? tc_harmony_grammar(NULL, t->req.tools, ch, t->req.forced_name,
                                               t->analysis, &calls, err, sizeof err)
                          : tc_build_grammar(t->family, t->req.tools, ch, t->req.forced_name,
                                             t->req.parallel, &calls, err, sizeof err);
    if (built != 0) {
        sl_buf_free(&calls);
        return oai_fail(e, 400, NULL, "invalid_value", "tools",
                        "Cannot constrain the output to these tools: %s", err);
    }
    sl_buf_clear(&t->gbnf);
    int bad = 0;
    if (!lazy && t->reasoning) {
        /* the call grammar does not describe <think>: a required call comes
         * after the reasoning (open in the prompt, or optional at the start) */
        if (calls.len < 8 || memcmp(calls.data, "root ::=", 8) != 0) {
            sl_buf_free(&calls);
            return oai_fail(e, 500, "server_error", NULL, NULL, "tool-call grammar without a root");
        }
        bad |= sl_buf_puts(&t->gbnf, t->think_open ? "root ::= think-body \"</think>\" think-ws tc-root\n"
                                                  : "root ::= ( \"<think>\" think-body \"</think>\" think-ws )? tc-root\n");
        bad |= sl_buf_puts(&t->gbnf, "think-ws ::= [ \\t\\n]{0,4}\n");
        bad |= sl_buf_puts(&t->gbnf, THINK_RULES);
        bad |= sl_buf_puts(&t->gbnf, "tc-");
    }
    bad |= sl_buf_append(&t->gbnf, calls.data, calls.len);
    sl_buf_free(&calls);
    if (bad) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    /* compile once here so a grammar problem is a 400 before any response
     * (the engine compiles and indexes it again through its cache) */
    gram_t *gr = gram_from_gbnf(t->gbnf.data, err, sizeof err);
    if (!gr)
        return oai_fail(e, 400, NULL, "invalid_value", "tools",
                        "Cannot constrain the output to these tools: %s", err);
    gram_free(gr);
    g->kind = GRAM_SRC_GBNF;
    g->text = t->gbnf.data;
    g->len = t->gbnf.len;
    g->prefix = prefix;
    g->prefix_len = prefix ? prefix_len : 0;
    if (lazy) {
        for (int i = 0; i < 4 && trig.words[i] && t->n_trig_words < SL_ARRAY_LEN(t->trig_words); i++) {
            t->trig_words[t->n_trig_words++] = trig.words[i];
            int32_t id = tok_find(m->tok, trig.words[i], strlen(trig.words[i]));
            if (id >= 0 && t->n_trig_ids < SL_ARRAY_LEN(t->trig_ids)) t->trig_ids[t->n_trig_ids++] = id;
        }
        for (int i = 0; i < 2 && trig.start_words[i] && t->n_start_words < SL_ARRAY_LEN(t->start_words); i++)
            t->start_words[t->n_start_words++] = trig.start_words[i];
        g->trigger_words = t->trig_words;
        g->n_trigger_words = t->n_trig_words;
        g->start_words = t->start_words;
        g->n_start_words = t->n_start_words;
        g->trigger_ids = t->trig_ids;
        g->n_trigger_ids = t->n_trig_ids;
    }
    t->constrained = true;
    return 0;
}

int tools_format_grammar(srv_tools_t *t, const oai_req_t *r, eng_grammar_t *g, oai_error_t *e) {
    if (t->family != TC_FAMILY_HARMONY || !eng_grammar_set(g)) return 0;
    char err[SL_ERR_MAX];
    char *inner = gram_source_to_gbnf(g->kind, g->text, g->len, err, sizeof err);
    if (inner && g->kind == GRAM_SRC_GBNF) {
        /* a GBNF grammar's own errors, before its rules are renamed */
        gram_t *gr = gram_from_gbnf(inner, err, sizeof err);
        if (!gr) {
            free(inner);
            inner = NULL;
        }
        gram_free(gr);
    }
    if (!inner) {
        if (r->gram_kind == GRAM_SRC_JSON_SCHEMA && r->gram_name[0])
            return oai_fail(e, 400, NULL, "invalid_value", r->gram_param,
                            "Invalid schema for response_format '%s': %s", r->gram_name, err);
        return oai_fail(e, 400, NULL, "invalid_value", r->gram_param, "Invalid '%s': %s",
                        r->gram_param, err);
    }
    /* with tool_choice auto the turn may also be a call (as on OpenAI: a
     * call, or the answer in the format); required / named calls replace
     * this grammar (gen.c) */
    const bool calls = !t->no_calls && t->req.choice == TC_CHOICE_AUTO && t->req.tools;
    sl_buf_clear(&t->fmt_gbnf);
    const int rc = tc_harmony_grammar(inner, calls ? t->req.tools : NULL, TC_CHOICE_AUTO, NULL,
                                      t->analysis, &t->fmt_gbnf, err, sizeof err);
    free(inner);
    if (rc != 0)
        return oai_fail(e, 400, NULL, "invalid_value", "tools",
                        "Cannot constrain the output to these tools: %s", err);
    g->kind = GRAM_SRC_GBNF;
    g->text = t->fmt_gbnf.data;
    g->len = t->fmt_gbnf.len;
    g->vocab = NULL; /* the model's grammar vocabulary, with the harmony markers */
    if (calls) t->constrained = true;
    return 0;
}

tc_parser_t *tools_parser_new(const srv_tools_t *t, tc_event_fn on_event, void *ud) {
    tc_parser_opts_t o;
    memset(&o, 0, sizeof o);
    o.family = t->family;
    o.reasoning = t->reasoning;
    o.think_open = t->think_open;
    o.no_calls = t->no_calls;
    /* with a grammar the calls cannot be malformed (only cut by max_tokens):
     * stream their arguments as they come */
    o.incremental = t->constrained;
    o.tools = t->req.tools;
    o.on_event = on_event;
    o.ud = ud;
    char err[SL_ERR_MAX];
    return tc_parser_new(&o, err, sizeof err);
}

void tools_free(srv_tools_t *t) {
    sl_buf_free(&t->gbnf);
    sl_buf_free(&t->fmt_gbnf);
}
