/*
 * tools.h — the server side of function calling and reasoning output
 * (chat/toolcall.h does the family-specific work; docs/toolcall.md).
 *
 * Per model (at load): which call syntax the model speaks and whether it
 * writes <think> reasoning (tools_model_detect).
 * Per chat request: tools_prepare validates tools / tool_choice /
 * parallel_tool_calls (400s named like OpenAI's) and decides what the
 * output parser must do; tools_set_prompt looks at the rendered prompt
 * (a <think> left open); tools_grammar builds the constraint that forces
 * the call syntax (tool_choice required / named: the whole output; auto:
 * lazily, from the family's trigger on); tools_parser_new makes one
 * streaming parser per choice.
 * I/O thread only.
 */
#ifndef SILICA_SERVER_TOOLS_H
#define SILICA_SERVER_TOOLS_H

#include <jansson.h>
#include <stdbool.h>

#include "base/base.h"
#include "chat/toolcall.h"
#include "engine/engine.h"
#include "server/oai.h"

struct srv_model;

typedef struct srv_tools {
    tc_request_t req;   /* validated tools / tool_choice / parallel_tool_calls */
    tc_family_t family; /* the parser's family: TC_FAMILY_NONE = no call parsing */
    bool reasoning;     /* split <think>...</think> into reasoning_content */
    bool think_open;    /* the prompt leaves <think> open */
    bool parse;         /* a parser is needed (calls or reasoning) */
    bool no_calls;      /* harmony with tool_choice none: calls are content */
    bool analysis;      /* harmony: a grammar allows an analysis message first (reasoning on) */
    bool constrained;   /* a grammar constrains the calls (they come out well-formed) */
    sl_buf_t gbnf;      /* the grammar text while the request lives */
    sl_buf_t fmt_gbnf;  /* harmony: the structured-output grammar of the whole turn */
    const char *trig_words[8], *start_words[4];
    int32_t trig_ids[8];
    size_t n_trig_words, n_start_words, n_trig_ids;
    /* thinking_budget: the ids of <think> and </think> (single tokens on
     * this model, else n_think_close is 0 and a budget cannot be kept) and
     * of the text forced when the budget is spent */
    int32_t think_start, think_end;
    int32_t think_close[16];
    size_t n_think_close;
} srv_tools_t;

/* Sets m->tc_family and m->tc_reasoning from the chat template source
 * (NULL/0 when the file has none) and the vocabulary. */
void tools_model_detect(struct srv_model *m, const char *tmpl_src, size_t len);

/* The marker texts (NULL-terminated, at most cap - 1) a grammar must be able
 * to produce on this model: its call syntax's markers, and <think> /
 * </think> for a reasoning model. Control tokens with these texts go into
 * the grammar vocabulary as their text (srv_gram_vocab_new_keep). */
void tools_vocab_keep(const struct srv_model *m, const char **keep, size_t cap);

/* Validates the request's tool fields and decides what the parser does.
 * 0, or -1 with a 400 in *e. */
int tools_prepare(const struct srv_model *m, const json_t *body, srv_tools_t *t, oai_error_t *e);

/* The rendered prompt text (with any answer prefix): notes a <think> the
 * template (or prefix) left open. */
void tools_set_prompt(srv_tools_t *t, const char *prompt, size_t len);

/* Fills g (which must be zero) with the tool-call grammar when the request
 * asks for one: tool_choice required / named (whole output) or auto (lazy,
 * from the family's trigger). Leaves g zero otherwise. `prefix` is the
 * answer prefix (continuation), if any. 0, or -1 with a 400 in *e (e.g. a
 * parameters schema the grammar library cannot express). */
int tools_grammar(const struct srv_model *m, srv_tools_t *t, const char *prefix, size_t prefix_len,
                  eng_grammar_t *g, oai_error_t *e);

/* Harmony (gpt-oss): rewrites g, a request's structured-output grammar
 * (response_format, grammar, regex; from srv_request_grammar), into GBNF
 * for the whole turn: an optional analysis message (t->analysis), then the
 * final message constrained by g — or, with tool_choice auto and tools, a
 * call (tc_harmony_grammar). g's text then points into t; its vocabulary
 * is the model's, which keeps the harmony markers. Other families: g is
 * left as it is. 0, or -1 with a 400 in *e naming r's parameter (a schema
 * keyword or regex the grammar library does not support, a bad GBNF). */
int tools_format_grammar(srv_tools_t *t, const oai_req_t *r, eng_grammar_t *g, oai_error_t *e);

/* Fills the engine request's reasoning budget (eng_request_t.think_*)
 * when the request gave thinking_budget and reasoning is on with
 * single-token markers; leaves it unset otherwise (the budget is ignored,
 * as where the template has no thinking switch). Call after
 * tools_set_prompt. */
void tools_think_budget(const srv_tools_t *t, int budget, eng_request_t *er);

/* A parser for one choice; on_event may be NULL (non-streaming). */
tc_parser_t *tools_parser_new(const srv_tools_t *t, tc_event_fn on_event, void *ud);

void tools_free(srv_tools_t *t);

#endif
