-- Two statements in one migration file, both applied once.
INSERT INTO t (id) VALUES (7);
INSERT INTO t (id) VALUES (8);
