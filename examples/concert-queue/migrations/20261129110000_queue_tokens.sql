-- concert-queue schema, version 1. Runs unchanged on SQLite and
-- PostgreSQL (BIGINT epoch milliseconds, TEXT ids, partial indexes).
-- `IF NOT EXISTS`: a database created by a release before migrations keeps
-- its table and indexes.

-- One row per token. `status` is `waiting`, `active` or `expired`;
-- `record_offset` is the token record's offset on partition 0 of
-- `concert.queue.waiting` (NULL only while the send is in flight);
-- `admission_seq` numbers admissions 1, 2, 3, ... in listener order;
-- `deliveries` counts how many times the record reached the listener.
CREATE TABLE IF NOT EXISTS queue_tokens (
    token_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    record_offset BIGINT,
    admitted_at BIGINT,
    expires_at BIGINT,
    admission_seq BIGINT,
    deliveries BIGINT NOT NULL DEFAULT 0
);

-- A user holds one `waiting` or `active` token at a time.
CREATE UNIQUE INDEX IF NOT EXISTS queue_tokens_one_per_user
    ON queue_tokens (user_id) WHERE status = 'waiting' OR status = 'active';

-- One admission per number.
CREATE UNIQUE INDEX IF NOT EXISTS queue_tokens_admission_seq
    ON queue_tokens (admission_seq);

-- The expiry sweep (`status = 'active' AND expires_at <= now`).
CREATE INDEX IF NOT EXISTS queue_tokens_status ON queue_tokens (status, expires_at);

-- The admissions of the last window, for `GET /queue/stats`.
CREATE INDEX IF NOT EXISTS queue_tokens_admitted_at ON queue_tokens (admitted_at);
