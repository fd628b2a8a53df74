/*
 * toolcall.h — function calling and reasoning on the model-output side.
 *
 * Four pieces, used by the server around one chat request:
 *
 *   1. tc_detect()            which tool-call syntax a model speaks, decided from
 *                             its chat template text and vocabulary (never from
 *                             the file name). Once per model.
 *   2. tc_request_parse()     validation of the request's tools / tool_choice /
 *                             parallel_tool_calls, with an OpenAI-style message
 *                             and `param` for a 400.
 *   3. tc_build_grammar()     GBNF text forcing the family's call syntax with
 *                             arguments matching each tool's JSON Schema, plus
 *                             tc_trigger() for lazy (tool_choice auto) use.
 *   4. tc_parser_t            a streaming parser fed the decoded text as it is
 *                             generated. It splits it into content, reasoning
 *                             (<think>...</think>) and tool calls, emitting
 *                             events as it goes (for SSE deltas) and a final
 *                             result (for the JSON response). Text that could be
 *                             the start of a marker is held back until decided,
 *                             so markers never leak into content. Malformed or
 *                             truncated calls come back as content (the raw
 *                             text, nothing lost); arguments in results are
 *                             always valid JSON text.
 *
 * Ownership: every _new has a _free. Strings in events are valid only during
 * the callback. Strings in a tc_result_t belong to the parser.
 * Threads: a parser is used by one thread; detection, validation and grammar
 * building are pure functions.
 */
#ifndef SILICA_TOOLCALL_H
#define SILICA_TOOLCALL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* ---- families ---- */

typedef enum tc_family {
    TC_FAMILY_NONE = 0,     /* no known call syntax: all output is content */
    TC_FAMILY_HERMES,       /* Qwen2.5 / Qwen3 / Hermes:
                               <tool_call>\n{"name":..,"arguments":..}\n</tool_call> */
    TC_FAMILY_LLAMA3,       /* Llama 3.1/3.2: {"name":..,"parameters":..} at the start of the
                               output, or after <|python_tag|> (JSON or name.call(k=v, ...)) */
    TC_FAMILY_DEEPSEEK,     /* DeepSeek V2.5 / V3 / R1:
                               <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function
                               <｜tool▁sep｜>NAME\n```json\n{..}\n```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
                             */
    TC_FAMILY_DEEPSEEK_V31, /* DeepSeek V3.1:
                               <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{..}<｜tool▁call▁end｜> */
    TC_FAMILY_GLM4,         /* GLM-4 (glm-4-9b-chat): the whole turn is NAME\n{json} */
    TC_FAMILY_GLM45,        /* GLM-4.5:
                               <tool_call>NAME\n<arg_key>k</arg_key>\n<arg_value>v</arg_value>\n</tool_call>
                             */
    TC_FAMILY_INTERNLM2,    /* InternLM2/2.5:
                               <|action_start|><|plugin|>\n{"name":..,"parameters":..}<|action_end|> */
    TC_FAMILY_MISTRAL,      /* Mistral: [TOOL_CALLS][{"name":..,"arguments":..}, ...] and the newer
                               [TOOL_CALLS]NAME[ARGS]{..} */
    TC_FAMILY_HARMONY,      /* OpenAI gpt-oss (harmony): messages
                               <|channel|>analysis<|message|>..<|end|><|start|>assistant
                               <|channel|>final<|message|>..; a call is a commentary
                               message to=functions.NAME <|constrain|>json<|message|>{..}
                               <|call|>. The channels are always parsed (analysis is
                               reasoning), with or without tools. */
    TC_FAMILY_QWEN3_CODER,  /* Qwen3-Coder, Qwen3-Coder-Next, Qwen3.5 / 3.6 (XML calls):
                               <tool_call>\n<function=NAME>\n<parameter=K>\nV\n</parameter>\n
                               </function>\n</tool_call>; V raw text, converted to JSON by the
                               tool's schema type for K */
    TC_FAMILY_COUNT
} tc_family_t;

const char *tc_family_name(tc_family_t f); /* "hermes", "llama3", ... (static) */

/* has_token(ud, text): true when the vocabulary has a token whose text is
 * exactly `text` (e.g. "<tool_call>"). May be NULL (template only). */
typedef bool (*tc_has_token_fn)(void *ud, const char *text);

/* The tool-call family of a model from its chat template source (len bytes,
 * need not be NUL-terminated; NULL/0 when the file has none) and vocabulary. */
tc_family_t tc_detect(const char *template_src, size_t len, tc_has_token_fn has_token, void *ud);

/* True when the model writes <think>...</think> reasoning (template or
 * vocabulary mentions <think> and </think>). */
bool tc_detect_reasoning(const char *template_src, size_t len, tc_has_token_fn has_token, void *ud);

/* True when a rendered prompt ends inside an open <think> block (the template
 * opened it, e.g. DeepSeek-R1's newer templates or Qwen3 with thinking forced):
 * the output then starts inside reasoning. Pass the result as
 * tc_parser_opts_t.think_open. */
bool tc_prompt_opens_think(const char *prompt, size_t len);

/* ---- request side ---- */

typedef enum tc_choice {
    TC_CHOICE_AUTO = 0, /* free text; a call may appear (lazy grammar from the trigger on) */
    TC_CHOICE_NONE,     /* no calls: do not parse or constrain */
    TC_CHOICE_REQUIRED, /* at least one call, any tool */
    TC_CHOICE_NAMED     /* exactly the named function */
} tc_choice_t;

#define TC_MAX_TOOLS 128
#define TC_MAX_NAME 64

typedef struct tc_request {
    const json_t *tools; /* borrowed from the request; NULL when absent or empty */
    size_t n_tools;
    tc_choice_t
        choice; /* AUTO when tools are given and tool_choice is absent; NONE without tools */
    char forced_name[TC_MAX_NAME + 1]; /* for TC_CHOICE_NAMED */
    bool parallel;                     /* parallel_tool_calls (default true) */
} tc_request_t;

/* Validates `tools`, `tool_choice` and `parallel_tool_calls` of a chat request
 * object. Returns 0, or -1 with a message in err and the offending parameter
 * path (static or copied into param, e.g. "tools[2].function.name") for an
 * OpenAI-style 400 {"error":{"message","type":"invalid_request_error","param"}}. */
int tc_request_parse(const json_t *request, tc_request_t *out, char *err, size_t errlen,
                     char *param, size_t paramlen);

/* ---- constrained generation ---- */

typedef struct tc_trigger {
    const char *words[4];       /* text that starts a call anywhere; NULL-terminated */
    const char *start_words[2]; /* text that starts a call only at the start of the output
                                   (after whitespace and any reasoning); NULL-terminated */
    bool lazy_supported;        /* false: the family has no fixed trigger (GLM-4); with
                                   tool_choice auto generate unconstrained */
} tc_trigger_t;

/* Trigger of the family's call syntax (static data). With tool_choice auto,
 * the server generates freely until the output contains a trigger word, then
 * feeds the matcher the text from the trigger's first byte and constrains the
 * rest with the tc_build_grammar() grammar (whose root begins with the
 * trigger word). */
tc_trigger_t tc_trigger(tc_family_t f);

/* Every marker text the family's call syntax uses (e.g. "<tool_call>",
 * "</tool_call>"; DeepSeek's five; "<|python_tag|>"), NULL-terminated
 * static data. A model's grammar vocabulary must hold these tokens as their
 * text, or a grammar can never produce them (control tokens are otherwise
 * left out of it). */
const char *const *tc_family_markers(tc_family_t f);

/* Appends GBNF text to gbnf_out: the family's call syntax, one alternative per
 * tool (only forced_name's for TC_CHOICE_NAMED), arguments constrained by each
 * tool's `parameters` schema (grammar library, see docs/grammar.md), one call
 * or (parallel) one or more. `tools` is the request's tools array (validated
 * by tc_request_parse). choice NONE is an error (no grammar). Returns 0 or -1
 * with err (e.g. a schema keyword the grammar library does not support). */
int tc_build_grammar(tc_family_t f, const json_t *tools, tc_choice_t choice,
                     const char *forced_name, bool parallel, sl_buf_t *gbnf_out, char *err,
                     size_t errlen);

/* Harmony (gpt-oss): GBNF for a whole assistant turn in the channel syntax:
 * an optional analysis message first (analysis = true; false: none, the
 * turn starts with its answer), then either the final message, its body
 * constrained by final_gbnf (a GBNF grammar with start rule `root`, e.g. a
 * response_format's; NULL: no final message), or one call to one of
 * `tools` (choice REQUIRED / AUTO: any tool, NAMED: forced_name; NONE or no
 * tools: no call) written as tc_build_grammar writes it. So structured
 * output constrains only the final message and the model still writes its
 * reasoning. Appends to out; 0, or -1 with err (e.g. a tool schema the
 * grammar library does not support). */
int tc_harmony_grammar(const char *final_gbnf, const json_t *tools, tc_choice_t choice,
                       const char *forced_name, bool analysis, sl_buf_t *out, char *err,
                       size_t errlen);

/* ---- output parser ---- */

typedef enum tc_event_kind {
    TC_EV_CONTENT,    /* text: content delta */
    TC_EV_REASONING,  /* text: reasoning_content delta */
    TC_EV_CALL_START, /* index, id, name: first delta of a call */
    TC_EV_CALL_ARGS,  /* index, text: arguments delta (append) */
    TC_EV_CALL_END,   /* index: the call is complete and valid */
    TC_EV_CALL_ABORT  /* index: (incremental mode only) a started call turned out malformed or
                         truncated; it is not in the result and its raw text follows as
                         content */
} tc_event_kind_t;

typedef struct tc_event {
    tc_event_kind_t kind;
    int index;        /* tool call index (0, 1, ...) for CALL_* */
    const char *id;   /* CALL_START */
    const char *name; /* CALL_START */
    const char *text; /* CONTENT / REASONING / CALL_ARGS: len bytes of complete UTF-8 */
    size_t len;
} tc_event_t;

/* Return non-zero to report an error from tc_parser_feed/finish (e.g. the
 * client is gone); the parser stays consistent. */
typedef int (*tc_event_fn)(void *ud, const tc_event_t *ev);

typedef struct tc_parser_opts {
    tc_family_t family;   /* TC_FAMILY_NONE: no call parsing (e.g. tool_choice none) */
    bool reasoning;       /* split <think>...</think> into reasoning */
    bool think_open;      /* the prompt left <think> open (tc_prompt_opens_think) */
    bool incremental;     /* stream arguments as they are generated (CALL_START once the
                             name is known, CALL_ARGS deltas, CALL_ABORT if it then
                             fails). false: a call's events are held until the call
                             is complete and valid, so the stream always equals the
                             final result. */
    bool no_calls;        /* harmony with tool_choice none: channels are parsed, a
                             function-call message is content */
    const json_t *tools;  /* request tools (borrowed for the parser's life) or NULL:
                             GLM-4 names and GLM-4.5 / Qwen3-Coder argument types
                             come from it */
    uint64_t id_seed;     /* 0: random call ids; else a deterministic sequence (tests) */
    tc_event_fn on_event; /* may be NULL (non-streaming) */
    void *ud;
} tc_parser_opts_t;

typedef struct tc_call {
    char *id; /* "call_<24 alnum>" (Mistral: 9 alnum, as its templates require) */
    char *name;
    char *arguments; /* compact JSON object text, always valid JSON */
} tc_call_t;

typedef struct tc_result {
    const char *content; /* NUL-terminated, "" when none */
    size_t content_len;
    const char *reasoning; /* "" when none */
    size_t reasoning_len;
    const tc_call_t *calls;
    size_t n_calls;
    bool finish_tool_calls; /* n_calls > 0: finish_reason should be "tool_calls" */
} tc_result_t;

typedef struct tc_parser tc_parser_t;

tc_parser_t *tc_parser_new(const tc_parser_opts_t *o, char *err, size_t errlen);
void tc_parser_free(tc_parser_t *p);

/* Feeds generated text (any split, even inside a UTF-8 sequence). special:
 * the piece is one special/control token's text: a marker the family uses
 * (e.g. "<tool_call>", "<｜tool▁sep｜>", "<think>") is parsed as usual, any
 * other special token (end-of-turn and the like) is dropped. Returns 0, or the
 * callback's non-zero value, or -1 on out-of-memory. */
int tc_parser_feed(tc_parser_t *p, const char *text, size_t len, bool special);

/* End of generation: flushes held text, settles an unfinished call (a
 * truncated call becomes content). Then tc_parser_result is valid. */
int tc_parser_finish(tc_parser_t *p);

/* True while the parser is inside reasoning (e.g. to delay a required-call
 * grammar until the reasoning is over). */
bool tc_parser_in_reasoning(const tc_parser_t *p);

/* Bytes of reasoning text so far (for usage accounting by the caller). */
size_t tc_parser_reasoning_bytes(const tc_parser_t *p);

/* The final message; valid after tc_parser_finish until tc_parser_free. */
const tc_result_t *tc_parser_result(const tc_parser_t *p);

/* OpenAI JSON helpers (new references; NULL on OOM):
 * the assistant message {"role","content","reasoning_content"?,"tool_calls"?}
 * (content null when empty and there are calls), and the `delta` object of a
 * streaming chunk for one event. */
json_t *tc_result_message_json(const tc_result_t *r);
json_t *tc_event_delta_json(const tc_event_t *ev);

#endif
