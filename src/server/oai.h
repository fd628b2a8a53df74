/*
 * oai.h — the OpenAI request schema: parsing and validating the JSON body of
 * POST /v1/chat/completions and /v1/completions into an oai_req_t, and
 * OpenAI-shaped errors. Pure functions (no HTTP, no model): unit-tested
 * directly.
 *
 * Policy: a known parameter with the wrong type or an out-of-range value is
 * a 400 naming the parameter; parameters this server does not know are
 * ignored (SDKs send vendor extras); null means "not given".
 */
#ifndef SILICA_SERVER_OAI_H
#define SILICA_SERVER_OAI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "sampling/sampling.h"

#define OAI_MAX_STOP 4
#define OAI_MAX_N 128
#define OAI_MAX_PROMPTS 64

typedef struct oai_error {
    int status;        /* HTTP status */
    char type[40];     /* "invalid_request_error", ... */
    char code[40];     /* "" = null */
    char param[48];    /* "" = null */
    char message[480];
} oai_error_t;

/* Fills e and returns -1. */
int oai_fail(oai_error_t *e, int status, const char *type, const char *code, const char *param,
             const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* {"error":{"message","type","param","code"}}; caller frees. */
char *oai_error_json(const oai_error_t *e);
/* Routes translated onto the chat request (Responses, Anthropic Messages)
 * name parameters in their own words. oai_param_map renames e->param by
 * the first pair of map (n pairs {chat name, route name}) whose chat name
 * begins it as a whole name (followed by its end, "." or "["); false when
 * none does. oai_param_renamed then makes the message, which named the
 * parameter as `before`, name it as e->param now does (unchanged when it
 * would not fit). */
bool oai_param_map(oai_error_t *e, const char *const (*map)[2], size_t n);
void oai_param_renamed(oai_error_t *e, const char *before);
/* "an object", "an array", "a string", "an integer", "a number", "a
 * boolean" or "null": how error messages name the JSON value v. */
const char *oai_json_kind(const json_t *v);

typedef struct oai_prompt {
    char *text;     /* a text prompt (malloc'd), or NULL when ids are given */
    int32_t *ids;   /* token ids (malloc'd) when the prompt was given as ids */
    size_t n_ids;
} oai_prompt_t;

typedef struct oai_req {
    bool chat;
    json_t *body;          /* the parsed body (owned; chat templates read messages/tools) */
    const char *model;     /* points into body */
    bool stream;
    bool include_usage;    /* stream_options.include_usage */
    int n;                 /* 1..OAI_MAX_N */
    int max_tokens;        /* 0 = not given */
    bool has_seed;
    uint64_t seed;
    smp_params_t smp;      /* bias points into `bias` */
    smp_bias_t *bias;
    size_t n_bias;
    bool logprobs;         /* chat: logprobs:true; completions: logprobs given */
    int top_logprobs;      /* alternatives per token */
    bool echo;             /* completions */
    bool score_only;       /* completions: echo with max_tokens 0 (score the prompt, generate nothing) */
    char *stop[OAI_MAX_STOP];
    int n_stop;
    oai_prompt_t *prompts; /* completions: 1..OAI_MAX_PROMPTS */
    int n_prompts;
    const char *user;
    /* Prefix continuation and fill-in-the-middle (point into body):
     *   chat, `prefix` alone: the answer continues after this text;
     *   chat, last message {"role":"assistant","content":C,"prefix":true}:
     *     the same with C (assistant_prefix; messages exclude it when rendered);
     *   chat, `prefix` + `suffix`: FIM; messages may be absent and are not used;
     *   completions, `suffix`: FIM with each prompt as the prefix. */
    const char *prefix, *suffix;
    size_t prefix_len, suffix_len;
    bool assistant_prefix;
    bool fim;
    bool fim_spm;          /* fim_order "spm": suffix before prefix */
    bool return_token_ids; /* non-stream choices carry prompt_token_ids and token_ids */
    bool no_spec;          /* "speculative": false: no speculative decoding for this request */
    int thinking_budget;   /* chat: most reasoning tokens before </think> is forced; 0 = none */
    /* Structured output (oai_format.c): response_format json_object /
     * json_schema, or the `grammar` / `regex` extensions (and vLLM's
     * guided_json / guided_regex / guided_grammar). gram_kind GRAM_SRC_*
     * (grammar/grammar.h), 0 = unconstrained; gram_text the source (schema:
     * compact JSON), malloc'd; gram_param names the parameter in errors. */
    int gram_kind;
    char *gram_text;
    size_t gram_len;
    char gram_param[48];
    char gram_name[72]; /* json_schema.name */
} oai_req_t;

/* Parses and validates a request body (len bytes). 0, or -1 with *e. */
int oai_parse(const char *body, size_t len, bool chat, oai_req_t *r, oai_error_t *e);
/* The same over a parsed body, which r takes (freed by oai_req_free). */
int oai_parse_json(json_t *body, bool chat, oai_req_t *r, oai_error_t *e);
/* A request body as JSON (duplicate keys refused), or NULL with a 400 in *e. */
json_t *oai_load_body(const char *body, size_t len, oai_error_t *e);
void oai_req_free(oai_req_t *r);
/* The structured-output parameters of body (called by oai_parse). 0 / -1. */
int oai_parse_format(const json_t *body, oai_req_t *r, oai_error_t *e);

/* Appends s as a JSON-safe UTF-8 string value: invalid byte sequences
 * become U+FFFD. Returns a new jansson string (NULL on OOM). */
json_t *oai_string_lossy(const char *s, size_t len);

/* Appends s (len bytes) to b as a JSON string literal, quotes included,
 * exactly as json_dumps(oai_string_lossy(s, len), JSON_ENCODE_ANY) would
 * write it (invalid UTF-8 -> U+FFFD, control characters escaped, the rest
 * verbatim), without building a jansson value. Returns 0 or -1 (OOM). */
int oai_json_str(sl_buf_t *b, const char *s, size_t len);

#endif
