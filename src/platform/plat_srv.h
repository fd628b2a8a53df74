/*
 * plat_srv.h — the platform as the HTTP server's request-path hooks
 * (server/server.h srv_hooks_t), and the GET /v1/user/info handler body.
 * Kept apart from platform.h so the platform library itself does not depend
 * on the server's types.
 *
 * Wiring in `silica serve` (cmd_serve.c):
 *     plat_t *p = plat_open(data_dir, NULL, err, sizeof err);
 *     char key[PLAT_KEY_MAX]; bool created;
 *     plat_bootstrap_if_empty(p, key, &created, err, sizeof err);
 *     if (created) printf("first API key (shown once): %s\n", key);
 *     plat_srv_hooks(p, &cfg.hooks);
 *     ... srv_new / srv_run / srv_free ...; plat_close(p);
 */
#ifndef SILICA_PLAT_SRV_H
#define SILICA_PLAT_SRV_H

#include "platform/platform.h"
#include "server/server.h"

/* Fills *h so every request goes key -> account -> balance -> limits
 * through p, and finishes with one ledger row. p must outlive the server. */
void plat_srv_hooks(plat_t *p, srv_hooks_t *h);

/* GET /v1/user/info: authenticates `authorization` (the header value, NULL
 * when absent) and returns 0 with *body (heap JSON, caller frees) for the
 * key's own account only, or -1 with *st (401/403/500). */
int plat_srv_user_info(plat_t *p, const char *authorization, char **body, srv_status_t *st);

/* GET /v1/user/usage (a Silica extension): the key's own account's usage
 * grouped by `group_by` ("day", "model", "key", comma lists) as JSON. */
int plat_srv_user_usage(plat_t *p, const char *authorization, const char *group_by, char **body,
                        srv_status_t *st);

/* GET /v1/user/prices (a Silica extension): the price list, for any valid
 * key: {"object":"list","unit":"yuan per million tokens","data":[{"model",
 * "input","cached_input","output"}]} with prices as decimal yuan text; a
 * model not listed is free. */
int plat_srv_user_prices(plat_t *p, const char *authorization, char **body, srv_status_t *st);

/* The caller's own API keys (a Silica extension; the keys hook of
 * srv_hooks_t, which plat_srv_hooks fills with it):
 *   GET    /v1/user/keys       -> 200 {"object":"list","data":[key...]}
 *   POST   /v1/user/keys       {"name": "...", "expires_at": unix s | null}
 *                              -> 201 key + "key": the secret, shown once
 *   DELETE /v1/user/keys/{id}  -> 200 {"id","object":"api_key","deleted":true}
 * key: {"id","object":"api_key","name","prefix","enabled","expired",
 * "expires_at" (unix s or null),"created_at" (unix s),"current" (the key
 * making this request)}. Only keys of the key's own account are listed or
 * revoked: another account's id is the same 404 as an id that does not
 * exist. A key cannot revoke itself (400): revoking goes through another
 * key of the account, so no request can lock the account out. Names are 1
 * to 64 of letters, digits, space, '.', '_', '-'; expires_at is in the
 * future; creating beyond plat_config_t.max_keys live keys is a 409. */
int plat_srv_user_keys(void *plat, const char *method, const char *authorization,
                       const char *key_id, const char *in, size_t in_len, int *http, char **body,
                       srv_status_t *st);

/* The Files and Batch APIs (srv_hooks_t.files; batch.h has the books):
 *   POST   /v1/files                 multipart file + purpose "batch" -> file
 *   GET    /v1/files[?purpose=&limit=&order=&after=] -> list, newest first
 *   GET    /v1/files/{id}            -> file;  GET /v1/files/{id}/content -> its bytes
 *   DELETE /v1/files/{id}            -> {"id","object":"file","deleted":true}
 *   POST   /v1/batches               {input_file_id, endpoint, completion_window, metadata}
 *   GET    /v1/batches[?after=&limit=], GET /v1/batches/{id}, POST /v1/batches/{id}/cancel
 * Every object belongs to the key's account: another account's id is the
 * same 404 as an unknown one. */
int plat_srv_files(void *plat, const srv_files_req_t *in, int *http, char **body, size_t *len, bool *raw,
                   srv_status_t *st);

/* The batch runner (srv_hooks_t.batch_poll): advances the batches and
 * starts up to `room` of their requests through ops->run, each admitted
 * by plat_begin_batch and recorded by plat_batch_task_done. */
void plat_srv_batch_poll(void *plat, int room, const srv_batch_ops_t *ops);

#endif
