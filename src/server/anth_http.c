/*
 * anth_http.c — POST /v1/messages and /v1/messages/count_tokens (also
 * under /anthropic) as a generation format of gen.c (server_int.h): the
 * request translated by anth.c into the chat request it means, the output
 * kept and written by anth_out_t, every error in Anthropic's shape. I/O
 * thread only.
 */
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "server/anth.h"
#include "server/server_int.h"

typedef struct anth_job {
    anth_req_t ar;
    anth_out_t ao;
} anth_job_t;

/* count_tokens costs nothing and reaches no begin hook, so the key is
 * checked here (the auth hook, when the platform has one). */
static int fmt_parse(srv_t *s, struct evhttp_request *req, const char *body, size_t len, bool count,
                     uint64_t seed, void **st, json_t **chat, oai_error_t *e) {
    anth_job_t *aj = calloc(1, sizeof *aj);
    if (!aj) return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    *st = aj;
    int64_t account;
    if (count && resp_auth(s, req, &account, e) != 0) return -1;
    json_t *b = oai_load_body(body, len, e);
    if (!b) return -1;
    int rc = anth_translate(b, count, &aj->ar, e);
    json_decref(b);
    if (rc != 0) return -1;
    anth_out_init(&aj->ao, aj->ar.stream, seed);
    *chat = json_incref(aj->ar.chat);
    return 0;
}

static void fmt_free(void *st) {
    anth_job_t *aj = st;
    if (!aj) return;
    anth_req_free(&aj->ar);
    anth_out_free(&aj->ao);
    free(aj);
}

/* {"type":"error","error":{type, message},"request_id"} with Anthropic's
 * status for it (402 for a balance too low, 529 when overloaded). */
static void fmt_send_error(srv_t *s, struct evhttp_request *req, oai_error_t *e, bool chat_names) {
    if (chat_names) anth_error_param(e);
    if (e->status >= 500) sl_warn("http %d: %s", e->status, e->message);
    const char *rid = evhttp_find_header(evhttp_request_get_output_headers(req), "request-id");
    char *body = anth_error_json(e, rid);
    const int status = anth_error_status(e);
    if (body)
        srv_send_json(s, req, status, body, strlen(body));
    else
        srv_send_json(s, req, status, "{}", 2);
    free(body);
}

static void fmt_text(void *st, bool reasoning, const char *t, size_t n) {
    anth_out_text(&((anth_job_t *)st)->ao, reasoning, t, n);
}

static void fmt_call_start(void *st, const char *call_id, const char *name) {
    (void)call_id; /* tool_use blocks have their own "toolu_" ids */
    anth_out_call_start(&((anth_job_t *)st)->ao, name);
}

static void fmt_call_args(void *st, const char *t, size_t n) {
    anth_out_call_args(&((anth_job_t *)st)->ao, t, n);
}

static void fmt_call_end(void *st, bool ok) {
    anth_out_call_end(&((anth_job_t *)st)->ao, ok);
}

static void fmt_stream_start(void *st, const gen_fmt_info_t *in) {
    anth_out_start(&((anth_job_t *)st)->ao, in->id, in->model, &in->usage);
}

/* The message, or the stream's message_delta + message_stop; a failed
 * generation is an api_error (a 500, or the stream's `error` event). */
static json_t *fmt_finish(void *st, const gen_fmt_info_t *in, int *status) {
    anth_job_t *aj = st;
    if (in->error) {
        if (aj->ar.stream) {
            anth_out_error(&aj->ao, "api_error", in->error);
            return NULL;
        }
        *status = 500;
        return json_pack("{s:s, s:{s:s, s:s}, s:n}", "type", "error", "error", "type", "api_error",
                         "message", in->error, "request_id");
    }
    const char *reason = anth_stop_reason(in->finish, in->stop_string);
    const char *seq = !strcmp(reason, "stop_sequence") ? in->stop_string : NULL;
    anth_out_finish(&aj->ao, reason, seq, &in->usage);
    *status = 200;
    return aj->ar.stream ? NULL
                         : anth_message(in->id, in->model, aj->ao.content, reason, seq, &in->usage);
}

static sl_buf_t *fmt_events(void *st) {
    return &((anth_job_t *)st)->ao.ev;
}

const gen_fmt_t anth_gen_fmt = {
    .id_prefix = "msg_",
    .input_param = "messages",
    .parse = fmt_parse,
    .free = fmt_free,
    .send_error = fmt_send_error,
    .text = fmt_text,
    .call_start = fmt_call_start,
    .call_args = fmt_call_args,
    .call_end = fmt_call_end,
    .stream_start = fmt_stream_start,
    .finish = fmt_finish,
    .events = fmt_events,
};
