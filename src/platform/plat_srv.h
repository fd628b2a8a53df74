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

#endif
