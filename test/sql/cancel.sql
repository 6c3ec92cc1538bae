-- A long fit stops within a fraction of a second on statement_timeout or cancel, and the
-- session stays usable.
CREATE SCHEMA test_cancel;
SET search_path = test_cancel, public;
CREATE TABLE big AS
SELECT i AS id, ARRAY[sin(i), cos(i), sin(i * 0.5), cos(i * 0.3), sin(i * 0.7), cos(i * 0.9),
                      sin(i * 1.1), cos(i * 1.3)]::real[] AS v
FROM generate_series(1, 100000) i;

-- Without a timeout this runs for many seconds (k = 2000, no tolerance).  The timeout stops
-- it, and the time from the start of the statement to the error is measured.
-- Where the cancel lands (our loop or the source's scan) varies, and with it the CONTEXT line.
\set SHOW_CONTEXT never
CREATE TABLE t0 (t timestamptz);
SET statement_timeout = '400ms';
INSERT INTO t0 VALUES (clock_timestamp());
SELECT count(*) FROM kmeans_fit('big', 'v', 2000, tol => 0, max_iter => 1000);
RESET statement_timeout;
SELECT clock_timestamp() - t < interval '1.4 s' AS stopped_within_a_second FROM t0;

-- The same with the data streamed from the table on every pass.
SET kmeans.memory_limit = '64kB';
TRUNCATE t0;
SET statement_timeout = '400ms';
INSERT INTO t0 VALUES (clock_timestamp());
SELECT count(*) FROM kmeans_fit('big', 'v', 2000, tol => 0, max_iter => 1000, init => 'random');
RESET statement_timeout;
SELECT clock_timestamp() - t < interval '1.4 s' AS stopped_within_a_second FROM t0;
RESET kmeans.memory_limit;

-- A mini-batch epoch: 8,000 centers and batches of every row make each step some 10^10
-- multiply-adds, and the fit runs for many seconds.  Its steps are cut into calls that a
-- cancel waits for at most one of; kmeans_last_fit() keeps the steps a cancelled fit finished,
-- and says where it stopped: seeded, not yet in its final pass.
TRUNCATE t0;
SET statement_timeout = '400ms';
INSERT INTO t0 VALUES (clock_timestamp());
SELECT count(*) FROM kmeans_fit('big', 'v', 8000, algorithm => 'minibatch', batch_size => 100000,
                                max_iter => 1000, init => 'random');
RESET statement_timeout;
SELECT clock_timestamp() - t < interval '1.4 s' AS stopped_within_a_second FROM t0;
SELECT count(*) FILTER (WHERE phase = 'seed') = 1 AND count(*) FILTER (WHERE phase = 'final') = 0
       AS cancelled_in_the_epochs
FROM kmeans_last_fit();

-- A k-means|| round over rows streamed from the table: 2,000 centers draw 4,000 candidates a
-- round.  The cancel lands after the first read and before the seeding ends.
SET kmeans.memory_limit = '64kB';
TRUNCATE t0;
SET statement_timeout = '400ms';
INSERT INTO t0 VALUES (clock_timestamp());
SELECT count(*) FROM kmeans_fit('big', 'v', 2000, init => 'k-means||');
RESET statement_timeout;
SELECT clock_timestamp() - t < interval '1.4 s' AS stopped_within_a_second FROM t0;
SELECT count(*) FILTER (WHERE phase = 'read') = 1 AND count(*) FILTER (WHERE phase = 'seed') = 0
       AS cancelled_while_seeding
FROM kmeans_last_fit();
RESET kmeans.memory_limit;

-- The silhouette of kmeans_elbow on a large sample (each row a pass over the whole sample:
-- minutes for 100,000 rows) stops as quickly; everything before it takes about 0.2 s here.
TRUNCATE t0;
SET statement_timeout = '400ms';
INSERT INTO t0 VALUES (clock_timestamp());
SELECT count(*) FROM kmeans_elbow('big', 'v', 2, 40, max_iter => 1, silhouette_sample => 100000);
RESET statement_timeout;
SELECT clock_timestamp() - t < interval '1.4 s' AS stopped_within_a_second FROM t0;

-- Many wide centers: 8,000 centers of 1,024 values against 16,384 rows is 1.3 * 10^11
-- multiply-adds per pass.  Interrupts are checked between backend calls, and a call takes as
-- many rows as fit in 8.6 * 10^9 multiply-adds (here 1024 rows), so a cancel lands within a
-- fraction of a second (with 16,384-row calls it took seconds).  The rows are rotations of two
-- halves, 16,384 distinct vectors.
CREATE TABLE wide AS
WITH base AS (SELECT array_agg(sin(j * 0.11))::real[] AS b, array_agg(cos(j * 0.07))::real[] AS c
              FROM generate_series(1, 512) j)
SELECT i AS id, b[i % 512 + 1:512] || b[1:i % 512] || c[i / 512 + 1:512] || c[1:i / 512] AS v
FROM base, generate_series(0, 16383) i;
-- The timeout (2 s) lands in the Lloyd passes, after the reading and the seeding; with
-- 16,384-row calls the error came after 9 s.
TRUNCATE t0;
SET statement_timeout = '2s';
INSERT INTO t0 VALUES (clock_timestamp());
SELECT count(*) FROM kmeans_fit('wide', 'v', 8000, init => 'random', tol => 0);
RESET statement_timeout;
SELECT clock_timestamp() - t < interval '3 s' AS stopped_within_a_second FROM t0;

-- The session is usable and a fit still works.
SELECT count(*) FROM big;
SELECT count(*) FROM kmeans_fit('big', 'v', 4, max_iter => 5);

RESET search_path;
DROP SCHEMA test_cancel CASCADE;
