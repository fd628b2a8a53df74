/*
 * batch.h — the Files and Batch APIs' books (batch.c): files stored per
 * account in the database, batches and their requests, the batch state
 * machine and the runner's side of it. OpenAI's object shapes are built
 * here as jansson values; the HTTP glue is batch_srv.c.
 *
 * Lifecycle of a batch (statuses as OpenAI names them):
 *
 *   validating --(input file valid: requests stored)--> in_progress
 *   validating --(a line is invalid)--> failed          (errors.data lists why)
 *   in_progress --(every request has a result)--> finalizing --> completed
 *   in_progress --(expires_at passed)--> ... --> expired (unrun requests: batch_expired errors)
 *   validating | in_progress --(cancel)--> cancelling --(nothing running)--> cancelled
 *
 * finalizing writes the output file (the lines of requests answered 2xx, in
 * input order) and the error file (the others); both are purpose
 * batch_output files of the account, and each id is null when its file
 * would be empty. Every transition is one transaction.
 *
 * Exactly once: a request's result row is written in the transaction of
 * its ledger row (plat_finish_item), guarded by state = 0, so a request is
 * billed with its result or not at all. After a crash or restart the
 * requests without a result run again; those that had one are never
 * rerun nor billed again.
 *
 * Several nodes (PostgreSQL) run batches from one database: a node claims
 * a pending request with a lease (its node id and an expiry it renews
 * while the request runs) in a transaction that skips rows another node
 * is claiming (FOR UPDATE SKIP LOCKED), so a request runs on one node
 * while its lease holds, and a dead node's requests run again once their
 * leases run out; still billed once (the state = 0 guard above). Every
 * transition holds the batch row, so one node validates and one
 * finalizes. docs/platform.md has the whole story.
 *
 * Retention: files and finished batches are deleted after
 * plat_config_t.file_retention_s / batch_retention_s (plat_batch_prune).
 */
#ifndef SILICA_PLAT_BATCH_H
#define SILICA_PLAT_BATCH_H

#include <jansson.h>

#include "platform/platform.h"

#define PLAT_BATCH_MAX_REQUESTS 50000 /* requests in one batch (OpenAI's limit) */
#define PLAT_BATCH_MAX_ERRORS 100     /* validation errors listed in a failed batch */
#define PLAT_BATCH_WINDOW_S (24 * 3600) /* completion_window "24h" */
#define PLAT_ID_MAX 64
#define PLAT_PRUNE_CHUNK 256 /* rows the runner's pruning deletes at a time */

/* ---- files ---- */

/* Stores an upload of account_id. purpose "batch" (the only one a client
 * may upload; "batch_output" is the runner's). 201-style object on success
 * (a new reference), NULL with *st (400 purpose or a file that is not
 * UTF-8 text without NUL bytes, 413 size caps, 500). */
json_t *plat_file_create(plat_t *p, int64_t account_id, const char *purpose, const char *filename,
                         const char *data, size_t len, plat_status_t *st);
/* The file object, or NULL with a 404 (unknown or another account's). */
json_t *plat_file_get(plat_t *p, int64_t account_id, const char *id, plat_status_t *st);
/* The file's bytes (heap, caller frees) and *len; NULL with a 404. */
char *plat_file_content(plat_t *p, int64_t account_id, const char *id, size_t *len, plat_status_t *st);
/* {"id","object":"file","deleted":true}, or NULL with a 404. */
json_t *plat_file_delete(plat_t *p, int64_t account_id, const char *id, plat_status_t *st);
/* {"object":"list","data":[...],"first_id","last_id","has_more"}: newest
 * first (order "asc": oldest first), only `purpose` when not NULL/"",
 * those after the file `after` (a cursor; NULL: from the start), at most
 * limit (1..10000). */
json_t *plat_file_list(plat_t *p, int64_t account_id, const char *purpose, const char *after,
                       int limit, bool asc, plat_status_t *st);

/* ---- batches ---- */

/* POST /v1/batches: body {input_file_id, endpoint (/v1/chat/completions,
 * /v1/completions, /v1/embeddings), completion_window, metadata?}; the input file must be the account's, purpose batch. The
 * batch (status validating), or NULL with a 400 / 404 naming the field. */
json_t *plat_batch_create(plat_t *p, int64_t account_id, int64_t key_id, const json_t *body,
                          plat_status_t *st);
json_t *plat_batch_get(plat_t *p, int64_t account_id, const char *id, plat_status_t *st);
/* Newest first; after: a batch id cursor; limit 1..100. */
json_t *plat_batch_list(plat_t *p, int64_t account_id, const char *after, int limit, plat_status_t *st);
/* validating / in_progress -> cancelling (the runner ends it as cancelled);
 * 409 for a batch already ending or ended. */
json_t *plat_batch_cancel(plat_t *p, int64_t account_id, const char *id, plat_status_t *st);

/* Validates a batch input file: every non-blank line a JSON object with a
 * unique custom_id (string), method "POST", url = endpoint and an object
 * body whose model is_model accepts for the endpoint (NULL: any), one model for the whole
 * batch. 0 when valid; -1 with *errors = OpenAI's errors object
 * {"object":"list","data":[{"code","message","param","line"}]} (at most
 * PLAT_BATCH_MAX_ERRORS entries). On success and with each_line set, calls
 * it for each request (line 1-based, custom_id, body text). */
int plat_batch_validate(const char *data, size_t len, const char *endpoint,
                        bool (*is_model)(void *ud, const char *endpoint, const char *model), void *ud,
                        int (*each_line)(void *line_ud, int64_t line, const char *custom_id, const char *body),
                        void *line_ud,
                        json_t **errors);

/* ---- the runner ---- */

/* One request of a batch the runner started. */
typedef struct plat_batch_task {
    char batch_id[PLAT_ID_MAX];
    int64_t line;
    char custom_id[512];
    int64_t account_id, key_id;
    char endpoint[32];
    char *body; /* the request body, JSON text */
    plat_req_t *req; /* set by plat_begin_batch through the runner */
} plat_batch_task_t;

/* Advances every active batch (validation, expiry, cancellation,
 * finalizing) and claims up to `room` pending requests, oldest batch
 * first, that no other task is running: *tasks (heap array of n, the
 * caller frees the array; each task is finished with plat_batch_task_done).
 * is_model: as plat_batch_validate's. 0, or -1 with a message. */
int plat_batch_step(plat_t *p, int room, bool (*is_model)(void *ud, const char *endpoint, const char *model), void *ud,
                    plat_batch_task_t ***tasks, int *n, char *err, size_t errlen);

/* The task's answer: http status and body (JSON text); u and status: what
 * to bill (NULL: nothing computed). status "shutdown", or a 503 with
 * nothing computed (busy, database unreachable): leave the request pending
 * for a later run, unbilled. Records the result (with the ledger row when
 * t->req), frees t. */
void plat_batch_task_done(plat_t *p, plat_batch_task_t *t, int http, const char *body, size_t len,
                          const plat_usage_t *u, const char *status);

/* Retention (plat_config_t.file_retention_s, batch_retention_s): deletes
 * up to max_rows (1..) expired rows — files no unfinished batch reads,
 * finished batches with their requests — and sets *removed (may be NULL)
 * to how many went. plat_batch_step calls it in chunks of
 * PLAT_PRUNE_CHUNK every minute, and every second while there is more.
 * 0, or -1 with a message. */
int plat_batch_prune(plat_t *p, int max_rows, int64_t *removed, char *err, size_t errlen);

/* plat_close: frees tasks still marked running (none after the server
 * stopped); shared, their leases are dropped. */
void plat_batch_forget_running(plat_t *p);

#endif
