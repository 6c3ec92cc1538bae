-- The database the fuzz target (fuzz/fuzz_sql.c) calls the extension in: small relations of
-- every shape a source can have, a few saved models, and the unprivileged role kmeans_fuzz that
-- may read them and save models, nothing else.  Run by a superuser, on a throwaway server only:
--   psql -X -v ON_ERROR_STOP=1 -d postgres -f fuzz/setup.sql
-- It starts from scratch every time, so that every run sees the same data.
SET client_min_messages = warning;

SELECT 'CREATE ROLE kmeans_fuzz LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kmeans_fuzz') \gexec
DROP DATABASE IF EXISTS kmeans_fuzz;
CREATE DATABASE kmeans_fuzz;
\c kmeans_fuzz
SET client_min_messages = warning;
SET kmeans.device = 'cpu';
CREATE EXTENSION kmeans;
-- The reader and the option parser are done within milliseconds; a call that goes on is
-- computing, which is not what the fuzzer is after, and each one costs it this much time.  The
-- fuzz target's own cancel is the backstop.
ALTER ROLE kmeans_fuzz IN DATABASE kmeans_fuzz SET statement_timeout = '500ms';
-- one compute thread: the machine is shared with the fuzzer itself
ALTER ROLE kmeans_fuzz IN DATABASE kmeans_fuzz SET kmeans.threads = 1;
ALTER ROLE kmeans_fuzz IN DATABASE kmeans_fuzz SET kmeans.device = 'cpu';
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON kmeans_models TO kmeans_fuzz;

-- Three clusters in the plane, with ids.
CREATE TABLE t_real (id bigint, v real[]);
INSERT INTO t_real VALUES
    (1, '{0,0}'), (2, '{0,1}'), (3, '{1,0}'), (4, '{1,1}'),
    (5, '{10,10}'), (6, '{10,11}'), (7, '{11,10}'), (8, '{11,11}'),
    (9, '{-10,5}'), (10, '{-10,6}'), (11, '{-11,5}'), (12, '{-11,6}');

-- Other element types, castable to real[] or not.
CREATE TABLE t_double (id integer, v double precision[]);
INSERT INTO t_double SELECT id, v::double precision[] FROM t_real;
CREATE TABLE t_int (id smallint, v integer[]);
INSERT INTO t_int VALUES (1, '{1,2}'), (2, '{3,4}'), (3, '{5,6}');
CREATE TABLE t_numeric (id numeric, v numeric[]);
INSERT INTO t_numeric VALUES (1.5, '{1.5,2}'), (2, '{1e30,4}'), (3, '{1e40,4}');
CREATE TABLE t_text (id text, v text);
INSERT INTO t_text VALUES ('1', '{1,2}'), ('two', '{3,4}'), ('3', 'not an array');
CREATE TABLE t_bytea (id integer, v bytea);
INSERT INTO t_bytea VALUES (1, '\x0000803f'), (2, '\x00000040');
CREATE TABLE t_json (id integer, v jsonb);
INSERT INTO t_json VALUES (1, '[1, 2]'), (2, '{"a": 1}');
CREATE TABLE t_point (id integer, v point);
INSERT INTO t_point VALUES (1, '(1,2)'), (2, '(3,4)');
CREATE DOMAIN vec2 AS real[] CHECK (array_length(VALUE, 1) = 2);
CREATE TABLE t_domain (id integer, v vec2);
INSERT INTO t_domain VALUES (1, '{1,2}'), (2, '{3,4}');

-- Arrays the reader must refuse: NULLs, shapes, lengths, non-finite values, odd bounds.
CREATE TABLE t_nulls (id bigint, v real[]);
INSERT INTO t_nulls VALUES (1, '{1,2}'), (2, NULL), (3, '{1,NULL}'), (NULL, '{3,4}'), (5, '{5,6}');
CREATE TABLE t_2d (id integer, v real[]);
INSERT INTO t_2d VALUES (1, '{{1,2},{3,4}}'), (2, '{{5,6},{7,8}}');
CREATE TABLE t_empty (id integer, v real[]);
INSERT INTO t_empty VALUES (1, '{}'), (2, '{1,2}');
CREATE TABLE t_ragged (id integer, v real[]);
INSERT INTO t_ragged VALUES (1, '{1,2}'), (2, '{1,2,3}'), (3, '{1}');
CREATE TABLE t_special (id integer, v real[]);
INSERT INTO t_special VALUES (1, '{1,2}'), (2, '{NaN,1}'), (3, '{Infinity,1}'), (4, '{1,-Infinity}');
CREATE TABLE t_huge (id bigint, v double precision[]);
INSERT INTO t_huge VALUES (9223372036854775807, '{3.4e38,-3.4e38}'), (-9223372036854775808, '{1e-45,0}'),
    (3, '{1e300,1}'), (4, '{-0,1.17549435e-38}');
CREATE TABLE t_lbound (id integer, v real[]);
INSERT INTO t_lbound VALUES (1, '[0:1]={1,2}'), (2, '[5:6]={3,4}');

-- Sizes: no rows, one row, wide rows, stored out of line and compressed, many rows.
CREATE TABLE t_none (id integer, v real[]);
CREATE TABLE t_one (id integer, v real[]);
INSERT INTO t_one VALUES (1, '{1,2,3}');
CREATE TABLE t_wide (id integer, v real[]);
INSERT INTO t_wide SELECT i, array_agg(sin(i * j)::real ORDER BY j)
FROM generate_series(1, 30) i, generate_series(1, 300) j GROUP BY i;
CREATE TABLE t_toast (id integer, v real[]);
ALTER TABLE t_toast ALTER COLUMN v SET STORAGE EXTERNAL;
INSERT INTO t_toast SELECT i, array_agg((i * j % 7)::real ORDER BY j)
FROM generate_series(1, 8) i, generate_series(1, 2000) j GROUP BY i;
CREATE TABLE t_compressed (id integer, v real[]);
INSERT INTO t_compressed SELECT i, array_fill(i::real, ARRAY[3000]) FROM generate_series(1, 6) i;
CREATE TABLE t_many (id bigint, v real[]);
INSERT INTO t_many SELECT i, ARRAY[i % 17, i % 5, sin(i), cos(i)]::real[] FROM generate_series(1, 5000) i;

-- Relations of every kind, and names that need quoting or look like SQL.
CREATE VIEW v_real AS SELECT id, v FROM t_real;
CREATE MATERIALIZED VIEW m_real AS SELECT id, v FROM t_real;
CREATE TABLE p_real (id bigint, v real[]) PARTITION BY RANGE (id);
CREATE TABLE p_real_1 PARTITION OF p_real FOR VALUES FROM (0) TO (7);
CREATE TABLE p_real_2 PARTITION OF p_real FOR VALUES FROM (7) TO (100);
INSERT INTO p_real SELECT id, v FROM t_real;
CREATE SEQUENCE s_seq;
CREATE INDEX i_real ON t_real (id);
CREATE TYPE c_type AS (a real[], b integer);
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" ("Vec Col" real[], "ID" integer);
INSERT INTO "Odd Schema"."Mixed Case" SELECT v, id FROM t_real;
CREATE TABLE "select" (v real[], id integer);
INSERT INTO "select" SELECT v, id FROM t_real;
CREATE TABLE "values" (v real[]);
INSERT INTO "values" SELECT v FROM t_real;
CREATE TABLE "t;drop" (v real[]);
INSERT INTO "t;drop" SELECT v FROM t_real;
CREATE TABLE t_secret (id integer, v real[]);
INSERT INTO t_secret SELECT id, v FROM t_real;

GRANT USAGE ON SCHEMA "Odd Schema" TO kmeans_fuzz;
GRANT SELECT ON ALL TABLES IN SCHEMA public, "Odd Schema" TO kmeans_fuzz;
REVOKE SELECT ON t_secret FROM kmeans_fuzz;

-- Saved models: fitted ones, and rows written by hand that a fit would never write.
\o /dev/null
SELECT count(*) FROM kmeans_fit('t_real', 'v', 2, seed => 1, model => 'm2');
SELECT count(*) FROM kmeans_fit('t_real', 'v', 3, seed => 1, model => 'm3');
SELECT count(*) FROM kmeans_fit('t_wide', 'v', 4, seed => 1, model => 'm_wide');
INSERT INTO kmeans_models (name, k, dim, centers, inertia, n_iter, n_rows, source) VALUES
    ('m_big', 2, 2, '{{3.4e38,-3.4e38},{-3.4e38,3.4e38}}', 0, 1, 2, 'by hand'),
    ('m_null', 1, 2, '{{1,NULL}}', 0, 1, 1, 'by hand'),
    ('m_lbound', 1, 2, '[0:0][0:1]={{1,2}}', 0, 1, 1, 'by hand'),
    ('', 1, 1, '{{1}}', 0, 1, 1, 'by hand');
\o
