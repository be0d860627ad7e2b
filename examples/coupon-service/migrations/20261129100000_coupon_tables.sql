-- coupon-service schema, version 1. Runs unchanged on SQLite and
-- PostgreSQL (BIGINT epoch milliseconds, TEXT ids). `IF NOT EXISTS`: a
-- database created by a release before migrations keeps its tables.
--
-- The framework's tables (`kafka_outbox`, `kafka_dead_letters`) are created
-- by kafka-listener itself, not here.

-- One row per coupon. `issued` is bumped by a conditional UPDATE
-- (`issued < stock`); the CHECKs are the last line of defence.
CREATE TABLE IF NOT EXISTS coupons (
    coupon_id TEXT PRIMARY KEY,
    stock BIGINT NOT NULL,
    issued BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    CHECK (stock >= 0),
    CHECK (issued >= 0 AND issued <= stock)
);

-- One row per coupon issued; the primary key gives a user one coupon at
-- most. The source partition and offset are the request record's.
CREATE TABLE IF NOT EXISTS coupon_issues (
    coupon_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    source_partition BIGINT NOT NULL,
    source_offset BIGINT NOT NULL,
    PRIMARY KEY (coupon_id, user_id)
);

-- One row per (coupon, user) request: what the status route reads.
-- `status` is `pending`, `issued`, `sold_out` or `failed`.
CREATE TABLE IF NOT EXISTS coupon_requests (
    coupon_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    decided_at BIGINT,
    detail TEXT,
    PRIMARY KEY (coupon_id, user_id)
);
