-- Test migration of another app sharing the database.
CREATE TABLE IF NOT EXISTS u (name TEXT PRIMARY KEY);
