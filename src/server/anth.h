/*
 * anth.h — the Anthropic Messages API (POST /v1/messages and
 * /v1/messages/count_tokens, also under /anthropic) on top of the chat
 * machinery, the way hosted platforms serve it beside their OpenAI routes.
 * Pure functions over jansson values (no HTTP, no model), unit-tested
 * directly (tests/unit/test_anth.c) and fuzzed (tests/fuzz/fuzz_anth.c):
 *
 *   - anth_translate: validates a Messages request and writes the chat
 *     completions request it means (system -> a system message, content
 *     blocks -> messages, tool_use -> tool_calls, tool_result -> tool
 *     messages, thinking blocks -> reasoning_content, tools / tool_choice /
 *     thinking / stop_sequences / max_tokens -> their chat parameters).
 *     gen.c then runs that chat request through the one generation path.
 *   - anth_out_t: the output side. It is fed what the output parser finds
 *     (text, reasoning, tool calls) in order and keeps the content blocks
 *     (thinking, text, tool_use); when streaming it also writes the SSE
 *     events (`event:` + `data:` lines) the Anthropic SDK's MessageStream
 *     accumulates.
 *   - anth_message: the message object; anth_error_*: errors in
 *     Anthropic's shape and statuses.
 *
 * Ownership: every json_t * a function returns is a new reference the
 * caller owns; arguments are borrowed unless said otherwise.
 */
#ifndef SILICA_SERVER_ANTH_H
#define SILICA_SERVER_ANTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "server/oai.h"
#include "server/server.h"

#define ANTH_MAX_MESSAGES 100000 /* Anthropic's limit on messages in one request */

typedef struct anth_req {
    json_t *chat; /* the chat completions request it translates to */
    bool stream;
} anth_req_t;

/* Validates a Messages request body and translates it (r is zeroed
 * first). count: a count_tokens body (no max_tokens, no stream). 0, or -1
 * with a 4xx in *e (param named as the Messages request names it). */
int anth_translate(const json_t *body, bool count, anth_req_t *r, oai_error_t *e);
void anth_req_free(anth_req_t *r);

/* Errors raised while running the translated chat request name chat
 * parameters ("max_completion_tokens", "stop", "tools[0].function.name");
 * this renames e->param (and the message's mentions) to the Messages
 * request's ("max_tokens", "stop_sequences", "tools[0].name"). */
void anth_error_param(oai_error_t *e);

/* The HTTP status and Anthropic error type of an error: 400
 * invalid_request_error, 401 authentication_error, 402 billing_error (an
 * insufficient balance), 403 permission_error, 404 not_found_error, 413
 * request_too_large, 429 rate_limit_error, 529 overloaded_error (a full
 * queue, shutting down), other 5xx api_error. */
int anth_error_status(const oai_error_t *e);
const char *anth_error_type(const oai_error_t *e);
/* {"type":"error","error":{"type","message"},"request_id"}: request_id
 * may be NULL (null). Caller frees. */
char *anth_error_json(const oai_error_t *e, const char *request_id);

/* ---- output ---- */

enum { ANTH_BLOCK_TEXT = 1, ANTH_BLOCK_THINKING, ANTH_BLOCK_TOOL_USE };

typedef struct anth_out {
    json_t *content; /* the content blocks so far, in order */
    int open;        /* index of the block being written, -1 when none */
    int open_kind;   /* ANTH_BLOCK_* of that block */
    sl_buf_t text;   /* its text, thinking or input JSON text so far */
    bool stream;     /* write events into ev */
    sl_buf_t ev;     /* SSE text written and not yet taken by the caller */
    uint64_t rng;    /* tool_use ids */
} anth_out_t;

/* stream: also write the SSE events. seed: the tool_use ids. */
void anth_out_init(anth_out_t *o, bool stream, uint64_t seed);
void anth_out_free(anth_out_t *o);
/* message_start (the message with empty content and the usage known so
 * far) and a ping. */
void anth_out_start(anth_out_t *o, const char *id, const char *model, const srv_usage_t *u);
/* Answer text (reasoning false) or thinking: continues the open block of
 * that kind or closes the open one and starts a new block. */
void anth_out_text(anth_out_t *o, bool reasoning, const char *s, size_t n);
/* A tool call starts (a tool_use block with a new "toolu_" id), its input
 * grows by pieces of JSON text, it ends. ok false: the call turned out
 * malformed; its block keeps the input parsed so far ({} when none). */
void anth_out_call_start(anth_out_t *o, const char *name);
void anth_out_call_args(anth_out_t *o, const char *s, size_t n);
void anth_out_call_end(anth_out_t *o, bool ok);
/* The end: closes the open block; streaming writes message_delta (stop
 * reason, stop sequence, the whole usage) and message_stop. */
void anth_out_finish(anth_out_t *o, const char *stop_reason, const char *stop_sequence,
                     const srv_usage_t *u);
/* Streaming: an `error` event (the stream ends after it). */
void anth_out_error(anth_out_t *o, const char *type, const char *message);

/* The stop reason of a finished output: finish "length" -> "max_tokens",
 * "tool_calls" -> "tool_use", a stop string -> "stop_sequence", else
 * "end_turn". */
const char *anth_stop_reason(const char *finish, const char *stop_string);
/* Anthropic's usage: input_tokens (the prompt less what the prefix cache
 * served), cache_read_input_tokens (that), cache_creation_input_tokens
 * (0), output_tokens. */
json_t *anth_usage(const srv_usage_t *u);
/* The message object; content NULL: []. */
json_t *anth_message(const char *id, const char *model, const json_t *content,
                     const char *stop_reason, const char *stop_sequence, const srv_usage_t *u);

#endif
