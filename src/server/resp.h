/*
 * resp.h — the OpenAI Responses API (POST /v1/responses) on top of the chat
 * machinery. Pure functions over jansson values (no HTTP, no model), so
 * they are unit-tested directly (tests/unit/test_resp.c):
 *
 *   - resp_translate: validates a Responses request and writes the chat
 *     completions request it means (messages from instructions + the
 *     conversation items, flat function tools -> chat tools, text.format ->
 *     response_format, max_output_tokens -> max_completion_tokens). gen.c
 *     then runs that chat request through the one generation path.
 *   - resp_out_t: the output side. It is fed what the output parser finds
 *     (text, reasoning, tool calls) in order and keeps the output items
 *     (reasoning, message, function_call); when streaming it also writes
 *     the SSE events (`event:` + `data:` lines, each with `type` and an
 *     increasing `sequence_number`) the OpenAI SDK's stream helper expects.
 *   - resp_object: the response object (status, output, usage, and the
 *     request fields OpenAI echoes back).
 *   - resp_list_items: GET /v1/responses/{id}/input_items pagination.
 *
 * Ownership: every json_t * a function returns is a new reference the
 * caller owns; arguments are borrowed unless said otherwise.
 */
#ifndef SILICA_SERVER_RESP_H
#define SILICA_SERVER_RESP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "server/oai.h"
#include "server/server.h"

#define RESP_ID_MAX 80       /* bytes for an id ("resp_" + hex) incl. NUL; longer ids are unknown */
#define RESP_MAX_ITEMS 4096  /* items in one conversation (previous context + input) */
#define RESP_MAX_METADATA 16 /* metadata pairs (OpenAI's limits) */
#define RESP_METADATA_KEY 64 /* characters */
#define RESP_METADATA_VALUE 512 /* characters */

typedef struct resp_req {
    json_t *chat;    /* the chat completions request it translates to */
    json_t *input;   /* this request's input items, normalised, each with an id */
    json_t *context; /* what the prompt renders: the previous context, then the input */
    json_t *echo;    /* the request fields the response object repeats */
    bool store;      /* default true */
    bool stream;
} resp_req_t;

/* previous_response_id of a request body: *id NULL when absent / null.
 * 0, or -1 with a 400 when it is not a string. */
int resp_previous_id(const json_t *body, const char **id, oai_error_t *e);

/* Validates a Responses request body and translates it (r is zeroed
 * first). prev: the stored conversation of previous_response_id (its
 * context items followed by its output items), or NULL. seed makes the
 * ids given to input items that carry none. 0, or -1 with a 4xx in *e
 * (param named as the Responses request names it). */
int resp_translate(const json_t *body, const json_t *prev, uint64_t seed, resp_req_t *r,
                   oai_error_t *e);
void resp_req_free(resp_req_t *r);

/* Errors raised while running the translated chat request name chat
 * parameters ("messages", "max_completion_tokens", "tools[0].function.name",
 * "response_format"); this renames e->param (and the message's mentions) to
 * the Responses request's ("input", "max_output_tokens", "tools[0].name",
 * "text.format"). */
void resp_error_param(oai_error_t *e);

/* ---- output ---- */

typedef struct resp_out {
    json_t *items; /* the output items so far, in order */
    int open;      /* index of the item being written, -1 when none */
    int open_kind; /* RESP_ITEM_* of that item */
    sl_buf_t text; /* its text (message, reasoning) or arguments (function_call) so far */
    int64_t seq;   /* sequence_number of the next event */
    bool stream;   /* write events into ev */
    sl_buf_t ev;   /* SSE text written and not yet taken by the caller */
    uint64_t rng;  /* item ids */
} resp_out_t;

enum { RESP_ITEM_MESSAGE = 1, RESP_ITEM_REASONING, RESP_ITEM_CALL };

/* stream: also write the SSE events. seed: ids of the items (msg_, rs_, fc_). */
void resp_out_init(resp_out_t *o, bool stream, uint64_t seed);
void resp_out_free(resp_out_t *o);
/* Answer text (reasoning false) or reasoning text: continues the open
 * item of that kind or closes the open one and starts a new item. */
void resp_out_text(resp_out_t *o, bool reasoning, const char *s, size_t n);
/* A function call starts (call_id "call_...", the function's name), its
 * arguments grow by pieces of JSON text, it ends (ok) or turns out
 * malformed (!ok: the item is kept with status "incomplete"; its raw text
 * follows as message text). */
void resp_out_call_start(resp_out_t *o, const char *call_id, const char *name);
void resp_out_call_args(resp_out_t *o, const char *s, size_t n);
void resp_out_call_end(resp_out_t *o, bool ok);
/* The end of the output: closes the open item ("incomplete" when the
 * output was cut); an output with no message and no call gets an empty
 * message, so every finished response has one. */
void resp_out_finish(resp_out_t *o, bool incomplete);
/* Writes one SSE event of `type` (a lifecycle event: created, in_progress,
 * completed, incomplete, failed) holding `response` (stolen). */
void resp_out_lifecycle(resp_out_t *o, const char *type, json_t *response);

/* The response object. status "in_progress" | "completed" | "incomplete" |
 * "failed"; output may be NULL ([]); u NULL: usage null; incomplete_reason
 * (e.g. "max_output_tokens") with status incomplete; error_msg with status
 * failed. */
json_t *resp_object(const char *id, int64_t created_at, const char *model, const char *status,
                    const json_t *echo, const json_t *output, const srv_usage_t *u,
                    const char *incomplete_reason, const char *error_msg);

/* GET /v1/responses/{id}/input_items: OpenAI's list object over items
 * (stored oldest first). order "asc" | "desc" (NULL: desc); after: an item
 * id (NULL: from the start); limit 1..100 (0: 20). NULL with a 400 in *e. */
json_t *resp_list_items(const json_t *items, const char *order, const char *after,
                        const char *limit, oai_error_t *e);

#endif
