-- order-saga schema, version 1. Runs unchanged on SQLite and PostgreSQL
-- (BIGINT epoch milliseconds and cents, TEXT ids). Each service owns its
-- tables; they share one database here, but no service writes another's
-- tables. The outboxes (`order_saga_<service>_outbox`) are created by
-- kafka-listener itself, not here.

-- Catalogue and stock (inventory service; the order service reads it to
-- validate requests). The CHECK is the last line of defence: stock is
-- taken by a conditional UPDATE (`stock >= quantity`).
CREATE TABLE IF NOT EXISTS products (
    product_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    initial_stock BIGINT NOT NULL,
    stock BIGINT NOT NULL,
    CHECK (stock >= 0)
);

-- Orders (order service). `status_rank` orders the statuses so that an
-- update never moves an order back (events of one order arrive on several
-- topics, so not necessarily in saga order); `final_at` is set once, by the
-- step that completes or cancels the order.
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    total_cents BIGINT NOT NULL,
    status TEXT NOT NULL,
    status_rank BIGINT NOT NULL,
    failed_step TEXT,
    reason TEXT,
    compensations TEXT,
    created_at BIGINT NOT NULL,
    final_at BIGINT
);

CREATE TABLE IF NOT EXISTS order_items (
    order_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    product_id TEXT NOT NULL,
    name TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    quantity BIGINT NOT NULL,
    PRIMARY KEY (order_id, line)
);

-- One row per step an order went through; the primary key makes a
-- redelivered event a no-op.
CREATE TABLE IF NOT EXISTS order_history (
    order_id TEXT NOT NULL,
    step TEXT NOT NULL,
    step_rank BIGINT NOT NULL,
    at BIGINT NOT NULL,
    detail TEXT,
    PRIMARY KEY (order_id, step)
);

-- Payments (payment service): `CAPTURED`, `FAILED` or `REFUNDED`; one row
-- per order, so a redelivered `orders.created` charges nothing twice.
CREATE TABLE IF NOT EXISTS payments (
    order_id TEXT PRIMARY KEY,
    amount_cents BIGINT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    updated_at BIGINT NOT NULL
);

-- Stock reservations (inventory service): `RESERVED`, `FAILED` or
-- `RELEASED`; one row per order.
CREATE TABLE IF NOT EXISTS reservations (
    order_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS reservation_items (
    order_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

-- Shipments (shipping service): `SHIPPED` or `FAILED`; one row per order.
CREATE TABLE IF NOT EXISTS shipments (
    order_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT,
    updated_at BIGINT NOT NULL
);

-- The analytics service's read model, built from `orders.created`,
-- `orders.completed` and `orders.cancelled` only.
CREATE TABLE IF NOT EXISTS analytics_orders (
    order_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    total_cents BIGINT NOT NULL,
    failed_step TEXT,
    created_at BIGINT NOT NULL,
    final_at BIGINT
);
