/*
 * sql.c — every SQL statement of the platform, in one table indexed by
 * the ST_* ids of plat_internal.h, and the schema's migrations.
 *
 * The text is the dialect SQLite and PostgreSQL share (db.h): ?N
 * placeholders, coalesce() rather than ifnull(), RETURNING id rather than
 * last_insert_rowid(). A `.pg` variant exists only where PostgreSQL must
 * lock a row that SQLite's single writer (BEGIN IMMEDIATE) already keeps
 * others from changing: the balance read before a ledger insert and the
 * account a key count belongs to.
 */
#include "platform/plat_internal.h"

/* Migration i (0-based) takes the schema from version i to i + 1.
 * Append only: a shipped migration never changes. Types are SQLite's;
 * db.c turns INTEGER into BIGINT (and INTEGER PRIMARY KEY into an identity
 * column) for PostgreSQL. */
const char *const plat_migrations[] = {
    /* 1: accounts, keys, prices, limits, credits, ledger */
    "CREATE TABLE accounts ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  status TEXT NOT NULL DEFAULT 'normal',"
    "  gift_balance INTEGER NOT NULL DEFAULT 0,"   /* micro-yuan */
    "  charge_balance INTEGER NOT NULL DEFAULT 0," /* micro-yuan */
    "  referrer_id INTEGER,"
    "  created_at INTEGER NOT NULL);" /* unix ms */
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL DEFAULT '',"
    "  prefix TEXT NOT NULL,"
    "  hash TEXT NOT NULL UNIQUE," /* sha-256 hex of the whole key */
    "  enabled INTEGER NOT NULL DEFAULT 1,"
    "  expires_at INTEGER NOT NULL DEFAULT 0," /* unix ms, 0 never */
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX api_keys_account ON api_keys(account_id);"
    "CREATE TABLE model_prices (" /* micro-yuan per million tokens */
    "  model TEXT PRIMARY KEY,"
    "  input INTEGER NOT NULL,"
    "  cached_input INTEGER NOT NULL,"
    "  output INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE rate_limits (" /* account 0 = all; model '*' = all; 0 = unlimited */
    "  account_id INTEGER NOT NULL,"
    "  model TEXT NOT NULL,"
    "  rpm INTEGER NOT NULL, tpm INTEGER NOT NULL,"
    "  rpd INTEGER NOT NULL, tpd INTEGER NOT NULL,"
    "  PRIMARY KEY (account_id, model));"
    "CREATE TABLE credits (" /* every addition to a balance */
    "  id INTEGER PRIMARY KEY,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id),"
    "  kind TEXT NOT NULL," /* signup, referral, credit */
    "  gift INTEGER NOT NULL,"
    "  charge INTEGER NOT NULL,"
    "  note TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX credits_account ON credits(account_id);"
    "CREATE TABLE usage_ledger (" /* one row per finished request */
    "  id INTEGER PRIMARY KEY,"
    "  request_id TEXT NOT NULL UNIQUE,"
    "  account_id INTEGER NOT NULL,"
    "  key_id INTEGER NOT NULL,"
    "  model TEXT NOT NULL,"
    "  prompt_tokens INTEGER NOT NULL,"
    "  cached_tokens INTEGER NOT NULL,"
    "  completion_tokens INTEGER NOT NULL,"
    "  reasoning_tokens INTEGER NOT NULL,"
    "  cost INTEGER NOT NULL," /* micro-yuan = gift_spent + charge_spent */
    "  gift_spent INTEGER NOT NULL,"
    "  charge_spent INTEGER NOT NULL,"
    "  status TEXT NOT NULL,"
    "  started_at INTEGER NOT NULL,"
    "  finished_at INTEGER NOT NULL,"
    "  ttft_ms INTEGER NOT NULL DEFAULT -1);"
    "CREATE INDEX usage_ledger_account_time ON usage_ledger(account_id, finished_at);",
    /* 2: stored responses (POST /v1/responses with store; responses.c) */
    "CREATE TABLE responses ("
    "  id TEXT PRIMARY KEY," /* "resp_..." */
    "  account_id INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL," /* unix ms */
    "  body TEXT NOT NULL);"         /* {response, input, context} JSON */
    "CREATE INDEX responses_account_time ON responses(account_id, created_at);",
    /* 3: balance reservations of running requests, shared by every node on
     * PostgreSQL (platform.c; SQLite keeps them in the process) */
    "CREATE TABLE reservations ("
    "  request_id TEXT PRIMARY KEY,"
    "  account_id INTEGER NOT NULL,"
    "  amount INTEGER NOT NULL,"      /* micro-yuan held */
    "  node TEXT NOT NULL,"           /* the node running the request */
    "  expires_at INTEGER NOT NULL);" /* unix ms; the node renews it while it runs */
    "CREATE INDEX reservations_account ON reservations(account_id);",
    /* 4: rate-limit token buckets shared by every node (platform.c,
     * PostgreSQL; SQLite keeps them in the process) */
    "CREATE TABLE rate_buckets ("
    "  account_id INTEGER NOT NULL,"
    "  model TEXT NOT NULL,"
    "  rpm_level DOUBLE PRECISION NOT NULL, rpm_cap INTEGER NOT NULL," /* level: units left */
    "  tpm_level DOUBLE PRECISION NOT NULL, tpm_cap INTEGER NOT NULL," /* cap: 0 = unlimited */
    "  rpd_level DOUBLE PRECISION NOT NULL, rpd_cap INTEGER NOT NULL,"
    "  tpd_level DOUBLE PRECISION NOT NULL, tpd_cap INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"               /* unix ms of the last refill; -1 new */
    "  PRIMARY KEY (account_id, model));",
    /* 5: the Files and Batch APIs (batch.c): uploaded and produced files,
     * batches, and each batch's requests with their results; ledger rows
     * of batch requests name their batch */
    "ALTER TABLE usage_ledger ADD COLUMN batch_id TEXT;"
    "CREATE TABLE files ("
    "  id TEXT PRIMARY KEY," /* "file-..." */
    "  account_id INTEGER NOT NULL,"
    "  purpose TEXT NOT NULL,"
    "  filename TEXT NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL," /* unix ms */
    "  body TEXT NOT NULL);"
    "CREATE INDEX files_account ON files(account_id, created_at);"
    "CREATE TABLE batches ("
    "  id TEXT PRIMARY KEY," /* "batch_..." */
    "  account_id INTEGER NOT NULL,"
    "  key_id INTEGER NOT NULL,"
    "  endpoint TEXT NOT NULL,"
    "  input_file_id TEXT NOT NULL,"
    "  completion_window TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  output_file_id TEXT NOT NULL DEFAULT '',"
    "  error_file_id TEXT NOT NULL DEFAULT '',"
    "  metadata TEXT NOT NULL DEFAULT 'null',"
    "  errors TEXT NOT NULL DEFAULT 'null',"
    /* unix s; 0 = not reached */
    "  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
    "  in_progress_at INTEGER NOT NULL DEFAULT 0, finalizing_at INTEGER NOT NULL DEFAULT 0,"
    "  completed_at INTEGER NOT NULL DEFAULT 0, failed_at INTEGER NOT NULL DEFAULT 0,"
    "  expired_at INTEGER NOT NULL DEFAULT 0, cancelling_at INTEGER NOT NULL DEFAULT 0,"
    "  cancelled_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX batches_account ON batches(account_id, created_at);"
    "CREATE INDEX batches_status ON batches(status);"
    "CREATE TABLE batch_items ("
    "  batch_id TEXT NOT NULL,"
    "  line INTEGER NOT NULL," /* 1-based line of the input file */
    "  custom_id TEXT NOT NULL,"
    "  body TEXT NOT NULL,"                /* the request body, JSON */
    "  state INTEGER NOT NULL DEFAULT 0,"  /* 0 pending, 1 succeeded, 2 failed */
    "  result TEXT NOT NULL DEFAULT '',"   /* the output or error file line */
    "  PRIMARY KEY (batch_id, line));",
    /* 6: batches run by several nodes (PostgreSQL): a pending request's
     * claim — the node running it and the lease it renews (unix ms; 0 =
     * nobody) — and the indexes the pruning of expired files and batches
     * reads (batch.c) */
    "ALTER TABLE batch_items ADD COLUMN node TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE batch_items ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX files_created ON files(created_at);"
    "CREATE INDEX batches_input_file ON batches(input_file_id);",
};
const int plat_nmigrations = (int)SL_ARRAY_LEN(plat_migrations);

#define ACCOUNT_COLS                                                                               \
    "id, name, status, gift_balance, charge_balance, coalesce(referrer_id, 0), created_at"

const db_sql_t plat_sql[ST_N] = {
    /* ---- request path (platform.c) ---- */
    [ST_KEY_LOOKUP] = {"SELECT k.id, k.account_id, k.enabled, k.expires_at, a.status, "
                       "a.gift_balance, a.charge_balance FROM api_keys k "
                       "JOIN accounts a ON a.id = k.account_id WHERE k.hash = ?1"},
    [ST_PRICE_GET] = {"SELECT input, cached_input, output FROM model_prices WHERE model = ?1"},
    [ST_LIMITS_GET] = {"SELECT rpm, tpm, rpd, tpd FROM rate_limits "
                       "WHERE account_id IN (?1, 0) AND model IN (?2, '*') "
                       "ORDER BY account_id = 0, model = '*' LIMIT 1"},
    [ST_ACCT_BAL] = {"SELECT gift_balance, charge_balance FROM accounts WHERE id = ?1",
                     "SELECT gift_balance, charge_balance FROM accounts WHERE id = ?1 FOR UPDATE"},
    [ST_ACCT_SPEND] = {"UPDATE accounts SET gift_balance = gift_balance - ?2, "
                       "charge_balance = charge_balance - ?3 WHERE id = ?1"},
    [ST_LEDGER_INSERT] = {"INSERT INTO usage_ledger (request_id, account_id, key_id, model, "
                          "prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, "
                          "cost, gift_spent, charge_spent, status, started_at, finished_at, "
                          "ttft_ms, batch_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                          "?12, ?13, ?14, ?15, ?16)"},
    /* a batch request's result lands with its ledger row; state 0 guards
     * against recording one twice */
    [ST_ITEM_DONE] = {"UPDATE batch_items SET state = ?3, result = ?4 "
                      "WHERE batch_id = ?1 AND line = ?2 AND state = 0"},

    /* ---- accounts, keys, prices, limits (admin.c) ---- */
    [ST_CREDIT_INSERT] = {"INSERT INTO credits (account_id, kind, gift, charge, note, created_at) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
    [ST_ACCT_ADD] = {"UPDATE accounts SET gift_balance = gift_balance + ?2, "
                     "charge_balance = charge_balance + ?3 WHERE id = ?1"},
    [ST_ACCT_EXISTS] = {"SELECT 1 FROM accounts WHERE id = ?1"},
    [ST_ACCT_LOCK] = {"SELECT 1 FROM accounts WHERE id = ?1",
                      "SELECT 1 FROM accounts WHERE id = ?1 FOR UPDATE"},
    [ST_ACCT_INSERT] = {"INSERT INTO accounts (name, referrer_id, created_at) VALUES (?1, ?2, ?3) "
                        "RETURNING id"},
    [ST_ACCT_GET] = {"SELECT " ACCOUNT_COLS " FROM accounts WHERE id = ?1"},
    [ST_ACCT_LIST] = {"SELECT " ACCOUNT_COLS " FROM accounts ORDER BY id"},
    [ST_ACCT_COUNT] = {"SELECT count(*) FROM accounts"},
    /* the first start of several nodes at once: one creates the first account */
    [ST_ACCTS_LOCK] = {"SELECT 1", "LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE"},
    [ST_ACCT_SET_STATUS] = {"UPDATE accounts SET status = ?2 WHERE id = ?1"},
    [ST_KEY_INSERT] = {"INSERT INTO api_keys (account_id, name, prefix, hash, expires_at, "
                       "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id"},
    [ST_KEY_LIVE_COUNT] = {"SELECT count(*) FROM api_keys WHERE account_id = ?1 AND enabled = 1 "
                           "AND (expires_at = 0 OR expires_at > ?2)"},
    /* the owner is part of the WHERE: checking it and revoking are one step */
    [ST_KEY_REVOKE] = {"UPDATE api_keys SET enabled = 0, "
                       "revoked_at = CASE WHEN enabled = 1 THEN ?2 ELSE revoked_at END "
                       "WHERE id = ?1 AND (?3 = 0 OR account_id = ?3)"},
    [ST_KEY_LIST] = {"SELECT id, account_id, name, prefix, enabled, expires_at, created_at "
                     "FROM api_keys WHERE ?1 = 0 OR account_id = ?1 ORDER BY id"},
    [ST_PRICE_SET] = {"INSERT INTO model_prices (model, input, cached_input, output, updated_at) "
                      "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(model) DO UPDATE "
                      "SET input = ?2, cached_input = ?3, output = ?4, updated_at = ?5"},
    [ST_PRICE_LIST] =
        {"SELECT model, input, cached_input, output FROM model_prices ORDER BY model"},
    [ST_LIMITS_SET] = {"INSERT INTO rate_limits (account_id, model, rpm, tpm, rpd, tpd) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(account_id, model) DO "
                       "UPDATE SET rpm = ?3, tpm = ?4, rpd = ?5, tpd = ?6"},
    [ST_VERIFY] =
        {"SELECT a.id, a.gift_balance, a.charge_balance, "
         "  (SELECT coalesce(sum(gift), 0) FROM credits c WHERE c.account_id = a.id) - "
         "  (SELECT coalesce(sum(gift_spent), 0) FROM usage_ledger u WHERE u.account_id = a.id), "
         "  (SELECT coalesce(sum(charge), 0) FROM credits c WHERE c.account_id = a.id) - "
         "  (SELECT coalesce(sum(charge_spent), 0) FROM usage_ledger u WHERE u.account_id = a.id), "
         "  (SELECT count(*) FROM usage_ledger u WHERE u.account_id = a.id AND "
         "     u.cost != u.gift_spent + u.charge_spent) "
         "FROM accounts a ORDER BY a.id"},

    /* ---- reservations shared by the nodes (platform.c, PostgreSQL) ---- */
    [ST_RESV_SWEEP_ACCT] = {"DELETE FROM reservations WHERE account_id = ?1 AND expires_at < ?2"},
    [ST_RESV_SUM] = {"SELECT coalesce(sum(amount), 0) FROM reservations WHERE account_id = ?1"},
    [ST_RESV_INSERT] = {"INSERT INTO reservations (request_id, account_id, amount, node, "
                        "expires_at) VALUES (?1, ?2, ?3, ?4, ?5)"},
    [ST_RESV_DELETE] = {"DELETE FROM reservations WHERE request_id = ?1"},
    [ST_RESV_RENEW] = {"UPDATE reservations SET expires_at = ?2 WHERE request_id = ?1"},
    [ST_RESV_SWEEP] = {"DELETE FROM reservations WHERE expires_at < ?1"},

    /* ---- rate-limit buckets shared by the nodes (platform.c, PostgreSQL) ---- */
    [ST_BUCKET_ENSURE] = {"INSERT INTO rate_buckets (account_id, model, rpm_level, rpm_cap, "
                          "tpm_level, tpm_cap, rpd_level, rpd_cap, tpd_level, tpd_cap, "
                          "updated_at) VALUES (?1, ?2, 0, 0, 0, 0, 0, 0, 0, 0, -1) "
                          "ON CONFLICT (account_id, model) DO NOTHING"},
    [ST_BUCKET_GET] = {"SELECT rpm_level, rpm_cap, tpm_level, tpm_cap, rpd_level, rpd_cap, "
                       "tpd_level, tpd_cap, updated_at FROM rate_buckets "
                       "WHERE account_id = ?1 AND model = ?2",
                       "SELECT rpm_level, rpm_cap, tpm_level, tpm_cap, rpd_level, rpd_cap, "
                       "tpd_level, tpd_cap, updated_at FROM rate_buckets "
                       "WHERE account_id = ?1 AND model = ?2 FOR UPDATE"},
    [ST_BUCKET_PUT] = {"UPDATE rate_buckets SET rpm_level = ?3, rpm_cap = ?4, tpm_level = ?5, "
                       "tpm_cap = ?6, rpd_level = ?7, rpd_cap = ?8, tpd_level = ?9, tpd_cap = ?10, "
                       "updated_at = ?11 WHERE account_id = ?1 AND model = ?2"},

    /* ---- files and batches (batch.c); every read names the account ---- */
    [ST_FILE_INSERT] = {"INSERT INTO files (id, account_id, purpose, filename, bytes, created_at, "
                        "body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
    [ST_FILE_GET] = {"SELECT id, purpose, filename, bytes, created_at FROM files "
                     "WHERE id = ?1 AND account_id = ?2"},
    [ST_FILE_BODY] = {"SELECT body, bytes FROM files WHERE id = ?1 AND account_id = ?2"},
    [ST_FILE_DELETE] = {"DELETE FROM files WHERE id = ?1 AND account_id = ?2"},
    [ST_FILE_USED] = {"SELECT coalesce(sum(bytes), 0) FROM files WHERE account_id = ?1 "
                      "AND purpose != 'batch_output'"},
    [ST_FILE_LIST] = {"SELECT id, purpose, filename, bytes, created_at FROM files "
                      "WHERE account_id = ?1 AND (?2 = '' OR purpose = ?2) "
                      "ORDER BY created_at DESC, id DESC"},
    [ST_BATCH_INSERT] = {"INSERT INTO batches (id, account_id, key_id, endpoint, input_file_id, "
                         "completion_window, status, metadata, created_at, expires_at) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'validating', ?7, ?8, ?9)"},
#define BATCH_COLS                                                                                 \
    "id, endpoint, input_file_id, completion_window, status, output_file_id, error_file_id, "     \
    "metadata, errors, created_at, expires_at, in_progress_at, finalizing_at, completed_at, "     \
    "failed_at, expired_at, cancelling_at, cancelled_at, account_id, key_id"
    /* status 'deleted': past its retention, its rows going (prune_locked);
     * never shown */
    [ST_BATCH_GET] = {"SELECT " BATCH_COLS " FROM batches WHERE id = ?1 AND account_id = ?2 "
                      "AND status != 'deleted'"},
    [ST_BATCH_LIST] = {"SELECT " BATCH_COLS " FROM batches WHERE account_id = ?1 "
                       "AND status != 'deleted' ORDER BY created_at DESC, id DESC"},
    [ST_BATCH_ACTIVE] = {"SELECT " BATCH_COLS " FROM batches WHERE status IN ('validating', "
                         "'in_progress', 'finalizing', 'cancelling') ORDER BY created_at, id"},
    [ST_BATCH_START] = {"UPDATE batches SET status = 'in_progress', in_progress_at = ?2 "
                        "WHERE id = ?1 AND status = 'validating'"},
    [ST_BATCH_FAIL] = {"UPDATE batches SET status = 'failed', failed_at = ?2, errors = ?3 "
                       "WHERE id = ?1 AND status = 'validating'"},
    [ST_BATCH_CANCEL] = {"UPDATE batches SET status = 'cancelling', cancelling_at = ?2 "
                         "WHERE id = ?1 AND account_id = ?3 AND status IN ('validating', "
                         "'in_progress')"},
    [ST_BATCH_FINISH] = {"UPDATE batches SET status = ?2, finalizing_at = ?3, completed_at = ?4, "
                         "expired_at = ?5, cancelled_at = ?6, output_file_id = ?7, "
                         "error_file_id = ?8 WHERE id = ?1"},
    [ST_ITEM_INSERT] = {"INSERT INTO batch_items (batch_id, line, custom_id, body) "
                        "VALUES (?1, ?2, ?3, ?4)"},
    [ST_ITEM_COUNTS] = {"SELECT count(*), coalesce(sum(CASE WHEN state = 1 THEN 1 ELSE 0 END), 0), "
                        "coalesce(sum(CASE WHEN state = 2 THEN 1 ELSE 0 END), 0) "
                        "FROM batch_items WHERE batch_id = ?1"},
    [ST_ITEM_PENDING] = {"SELECT line, custom_id, body FROM batch_items "
                         "WHERE batch_id = ?1 AND state = 0 ORDER BY line LIMIT ?2"},
    [ST_ITEM_RESULTS] = {"SELECT state, result FROM batch_items WHERE batch_id = ?1 "
                         "AND state != 0 ORDER BY line"},
    /* a transition holds the batch row (PostgreSQL): validating and
     * finalizing exclusively, claiming shared, so a batch never ends while
     * a node is claiming its requests, and one node moves it */
    [ST_BATCH_LOCK] = {"SELECT status FROM batches WHERE id = ?1",
                       "SELECT status FROM batches WHERE id = ?1 FOR UPDATE"},
    [ST_BATCH_SHARE] = {"SELECT status FROM batches WHERE id = ?1",
                        "SELECT status FROM batches WHERE id = ?1 FOR SHARE"},
    /* pending requests nobody holds a live lease on; on PostgreSQL the rows
     * another node is claiming at this moment are skipped, not waited for */
    [ST_ITEM_CLAIM] = {"SELECT line, custom_id, body FROM batch_items WHERE batch_id = ?1 "
                       "AND state = 0 AND lease_until < ?2 ORDER BY line LIMIT ?3",
                       "SELECT line, custom_id, body FROM batch_items WHERE batch_id = ?1 "
                       "AND state = 0 AND lease_until < ?2 ORDER BY line LIMIT ?3 "
                       "FOR UPDATE SKIP LOCKED"},
    [ST_ITEM_LEASE] = {"UPDATE batch_items SET node = ?3, lease_until = ?4 "
                       "WHERE batch_id = ?1 AND line = ?2 AND state = 0"},
    [ST_ITEM_RENEW] = {"UPDATE batch_items SET lease_until = ?4 "
                       "WHERE batch_id = ?1 AND line = ?2 AND node = ?3 AND state = 0"},
    [ST_ITEM_UNLEASE] = {"UPDATE batch_items SET node = '', lease_until = 0 "
                         "WHERE batch_id = ?1 AND line = ?2 AND node = ?3 AND state = 0"},
    [ST_ITEM_CLAIMED] = {"SELECT count(*) FROM batch_items WHERE batch_id = ?1 AND state = 0 "
                         "AND lease_until >= ?2"},
    /* a batch's input file, held (PostgreSQL) until the batch row commits
     * so the pruning cannot delete it in between */
    [ST_FILE_REF] = {"SELECT purpose FROM files WHERE id = ?1 AND account_id = ?2",
                     "SELECT purpose FROM files WHERE id = ?1 AND account_id = ?2 FOR SHARE"},

    /* ---- retention (batch.c, prune_locked) ---- */
#define UNREAD_BY_ACTIVE                                                                           \
    " AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.input_file_id = files.id AND b.status IN "  \
    "('validating', 'in_progress', 'finalizing', 'cancelling'))"
    [ST_FILE_PRUNE_PICK] = {"SELECT id FROM files WHERE created_at < ?1" UNREAD_BY_ACTIVE
                            " ORDER BY created_at LIMIT ?2",
                            "SELECT id FROM files WHERE created_at < ?1" UNREAD_BY_ACTIVE
                            " ORDER BY created_at LIMIT ?2 FOR UPDATE SKIP LOCKED"},
    /* checked again after the row lock: a batch committed since counts */
    [ST_FILE_PRUNE] = {"DELETE FROM files WHERE id = ?1" UNREAD_BY_ACTIVE},
    /* finished batches ended before ?1 (unix s; one of the four is set) */
    [ST_BATCH_RETIRE] = {"UPDATE batches SET status = 'deleted' WHERE id IN (SELECT id FROM "
                         "batches WHERE status IN ('completed', 'failed', 'expired', "
                         "'cancelled') AND completed_at + failed_at + expired_at + cancelled_at "
                         "< ?1 LIMIT ?2)"},
    [ST_BATCH_DELETED] = {"SELECT id FROM batches WHERE status = 'deleted' LIMIT ?1"},
    [ST_ITEM_PURGE] = {"DELETE FROM batch_items WHERE batch_id = ?1 AND line IN (SELECT line FROM "
                       "batch_items WHERE batch_id = ?1 ORDER BY line LIMIT ?2)"},
    [ST_BATCH_PURGE] = {"DELETE FROM batches WHERE id = ?1 AND status = 'deleted' AND NOT EXISTS "
                        "(SELECT 1 FROM batch_items WHERE batch_id = ?1)"},

    /* ---- stored responses (responses.c) ---- */
    [ST_RESP_EXPIRE] = {"DELETE FROM responses WHERE account_id = ?1 AND created_at < ?2"},
    /* the account's newest ?2 stay */
    [ST_RESP_TRIM] = {"DELETE FROM responses WHERE account_id = ?1 AND id NOT IN (SELECT id FROM "
                      "responses WHERE account_id = ?1 ORDER BY created_at DESC LIMIT ?2)"},
    /* an id held by another account is left alone: nothing changes */
    [ST_RESP_PUT] = {"INSERT INTO responses (id, account_id, created_at, body) VALUES (?1, ?2, ?3, "
                     "?4) ON CONFLICT(id) DO UPDATE SET body = excluded.body, created_at = "
                     "excluded.created_at WHERE responses.account_id = excluded.account_id"},
    [ST_RESP_GET] = {"SELECT body FROM responses WHERE id = ?1 AND account_id = ?2 AND "
                     "created_at >= ?3"},
    [ST_RESP_DELETE] = {"DELETE FROM responses WHERE id = ?1 AND account_id = ?2 AND "
                        "created_at >= ?3"},
};
