-- Test migration of example-support: one table.
CREATE TABLE IF NOT EXISTS t (id BIGINT PRIMARY KEY);
