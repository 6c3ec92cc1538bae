-- kmeans_step(x, centers): one Lloyd iteration as an aggregate with a combine function.  Sums
-- are exact, so the result is the same bits however many parallel workers run it and however
-- its partial states are combined.  Expected values are worked out by hand.
CREATE SCHEMA test_step;
SET search_path = test_step, public;
\i test/sql/include/try.sql

-- (0,0), (1,0), (0,1) go to center (0,0): mean (1/3, 1/3), squared distances 0 + 1 + 1 = 2;
-- (10,10), (11,10) to (10,10): mean (10.5, 10), distances 0 + 1; the NULL vector is skipped.
-- The centers moved by 2 (1/3)^2 + 0.5^2 = 0.47222...
CREATE TABLE six (id int, x real[]);
INSERT INTO six VALUES (1, '{0,0}'), (2, '{1,0}'), (3, '{10,10}'), (4, '{11,10}'), (5, NULL),
    (6, '{0,1}');
SELECT centers, sizes, inertia, cluster_inertia, n_rows,
       abs(center_shift - (2.0 / 9 + 0.25)) < 1e-6 AS shift_ok
FROM (SELECT (kmeans_step(x, '{{0,0},{10,10}}')).* FROM six) s;
-- a center no row is nearest keeps its place; ties go to the lower index (duplicate centers)
SELECT centers, sizes, cluster_inertia
FROM (SELECT (kmeans_step(x, '{{0,0},{10,10},{100,100}}')).* FROM six) s;
SELECT sizes FROM (SELECT (kmeans_step(x, '{{10,10},{0,0},{0,0}}')).* FROM six) s;
-- no rows: no state, no result
SELECT kmeans_step(x, '{{0,0}}') IS NULL AS no_rows FROM six WHERE false;

-- Metrics.  Cosine: (1,0) and (0,2) sit on the unit centers (1,0) and (0,1); (3,3), at 45
-- degrees from both, ties and goes to the first.  The first center becomes the normalised mean
-- of (1,0) and (0.7071,0.7071): (cos 22.5, sin 22.5) = (0.92388, 0.38268); its inertia is
-- 1 - cos 45 = 0.29289.
SELECT centers, sizes, round(inertia::numeric, 5) AS inertia
FROM (SELECT (kmeans_step(v, '{{1,0},{0,1}}', 'cosine')).*
      FROM (VALUES ('{1,0}'::real[]), ('{0,2}'), ('{3,3}')) t(v)) s;
-- IoU: (2,2) overlaps (1,1) by 1/4 and (10,10) by 4/100, so it joins (1,1): the mean box
-- (1.5,1.5), inertia 1 - 1/4.
SELECT centers, sizes, inertia
FROM (SELECT (kmeans_step(v, '{{1,1},{10,10}}', 'iou')).*
      FROM (VALUES ('{1,1}'::real[]), ('{2,2}'), ('{10,10}')) t(v)) s;
SELECT * FROM try($$SELECT kmeans_step(v, '{{1,0}}', 'cosine') FROM (VALUES ('{0,0}'::real[])) t(v)$$);
SELECT * FROM try($$SELECT kmeans_step(v, '{{0,0}}', 'cosine') FROM (VALUES ('{1,0}'::real[])) t(v)$$);
SELECT * FROM try($$SELECT kmeans_step(v, '{{1,1}}', 'iou') FROM (VALUES ('{1,-1}'::real[])) t(v)$$);
SELECT * FROM try($$SELECT kmeans_step(v, '{{1,1,1}}', 'iou') FROM (VALUES ('{1,1,1}'::real[])) t(v)$$);
SELECT * FROM try($$SELECT kmeans_step(v, '{{1,1}}', 'manhattan') FROM (VALUES ('{1,1}'::real[])) t(v)$$);
SELECT * FROM try($$SELECT kmeans_step(v, '{{1,1}}', NULL) FROM (VALUES ('{1,1}'::real[])) t(v)$$);

-- The sums are exact: 1e17 + 1 - 1e17 is 1 (float64 in row order would say 0), so the mean is
-- 1/3.  The squared distances to the center 0 are float4 squares: twice 1e17 * 1e17 in float4,
-- and 1 (lost when the exact sum is read as a float8).
CREATE TABLE cancel (id int, x real[]);
INSERT INTO cancel VALUES (1, '{1e17}'), (2, '{1}'), (3, '{-1e17}');
SELECT centers, sizes, inertia = 2 * (1e17::real * 1e17::real)::float8 AS inertia_exact
FROM (SELECT (kmeans_step(x, '{{0}}' ORDER BY id)).* FROM cancel) s;

-- One Lloyd iteration per GROUP BY group, with each group's own centers from a join: the
-- groups' rows interleave, so the centers change from row to row, and every group still
-- gets its own step (equal to the step over that group alone).
CREATE TABLE pts AS
SELECT i AS id, i % 3 AS g,
       ARRAY[(i % 3) * 100 + (i * 37 % 17), (i * 11 % 13)]::real[] AS x
FROM generate_series(1, 3000) i;
CREATE TABLE starts (g int, centers real[]);
INSERT INTO starts VALUES (0, '{{0,0},{10,10}}'), (1, '{{100,0},{110,10},{105,5}}'),
    (2, '{{200,5}}');
SELECT p.g, (kmeans_step(p.x, s.centers)).sizes,
       kmeans_step(p.x, s.centers) = (SELECT kmeans_step(q.x, s.centers) FROM pts q WHERE q.g = p.g)
           AS same_as_alone
FROM pts p JOIN starts s USING (g) GROUP BY p.g, s.centers ORDER BY p.g;

-- Parallel: the planner splits the step into a Partial Aggregate per worker under a Gather
-- and combines the parts; 0, 1 and 2 workers give the same bits.
CREATE TABLE big AS
SELECT i AS id, ARRAY[sin(i) * 100, cos(i * 0.7) * 50, (i % 97)::real / 7]::real[] AS x
FROM generate_series(1, 200000) i;
ANALYZE big;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF)
SELECT kmeans_step(x, '{{0,0,0},{50,20,5},{-50,-20,10},{80,0,0}}') FROM big;
SELECT kmeans_step(x, '{{0,0,0},{50,20,5},{-50,-20,10},{80,0,0}}')::text AS two FROM big \gset
SET max_parallel_workers_per_gather = 1;
SELECT kmeans_step(x, '{{0,0,0},{50,20,5},{-50,-20,10},{80,0,0}}')::text AS one FROM big \gset
SET max_parallel_workers_per_gather = 0;
SELECT kmeans_step(x, '{{0,0,0},{50,20,5},{-50,-20,10},{80,0,0}}')::text AS zero FROM big \gset
SELECT :'zero' = :'one' AS one_worker_same, :'zero' = :'two' AS two_workers_same;
-- and in another order of the rows
SELECT kmeans_step(x, '{{0,0,0},{50,20,5},{-50,-20,10},{80,0,0}}' ORDER BY id DESC)::text = :'zero'
    AS reversed_same FROM big;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- The partial state, as a worker (or a Citus node) hands it on: the transition without the
-- final function, then states combined as the combine function combines them.  Parts of the
-- table merged in any order give the whole table's step.
CREATE AGGREGATE step_state(real[], real[]) (
    SFUNC = kmeans_step_transfn, STYPE = kmeans_step_state, COMBINEFUNC = kmeans_step_combine);
CREATE AGGREGATE step_merge(kmeans_step_state) (
    SFUNC = kmeans_step_combine, STYPE = kmeans_step_state, FINALFUNC = kmeans_step_final);
CREATE TABLE parts AS
SELECT id % 5 AS part, step_state(x, '{{0,0,0},{50,20,5},{-50,-20,10},{80,0,0}}') AS s
FROM big GROUP BY id % 5;
SELECT step_merge(s ORDER BY part)::text = :'zero' AS merged_same,
       step_merge(s ORDER BY part DESC)::text = :'zero' AS reversed_same
FROM parts;
-- the text form reads back as the same state
SELECT bool_and(s::text::kmeans_step_state::text = s::text) AS text_round_trip FROM parts;
SELECT step_merge(s::text::kmeans_step_state)::text = :'zero' AS through_text FROM parts;

-- A state's input is checked as hostile: header, sizes, counts against rows, normal form.
SELECT * FROM try($$SELECT 'nonsense'::kmeans_step_state$$);
SELECT * FROM try($$SELECT '\x0102'::kmeans_step_state$$);
SELECT s::text AS small FROM (SELECT step_state(x, '{{0,0}}') s FROM six) q \gset
-- the version (bytes 5..8)
SELECT * FROM try(format('SELECT %L::kmeans_step_state',
    '\x' || encode(overlay(decode(substr(:'small', 3), 'hex') PLACING '\x00000002'::bytea FROM 5 FOR 4), 'hex')));
-- rows (bytes 21..28, after magic, version, k, d and metric) no longer the sum of the counts
SELECT * FROM try(format('SELECT %L::kmeans_step_state',
    '\x' || encode(overlay(decode(substr(:'small', 3), 'hex') PLACING '\x0000000000000009'::bytea FROM 21 FOR 8), 'hex')));
-- a center (bytes 29..32) that is NaN
SELECT * FROM try(format('SELECT %L::kmeans_step_state',
    '\x' || encode(overlay(decode(substr(:'small', 3), 'hex') PLACING '\x7fc00000'::bytea FROM 29 FOR 4), 'hex')));
-- the lowest digit of the first sum (bytes 45..52, after 2 centers and 1 count) out of range
SELECT * FROM try(format('SELECT %L::kmeans_step_state',
    '\x' || encode(overlay(decode(substr(:'small', 3), 'hex') PLACING '\xffffffffffffffff'::bytea FROM 45 FOR 8), 'hex')));
-- an unknown metric (bytes 17..20)
SELECT * FROM try(format('SELECT %L::kmeans_step_state',
    '\x' || encode(overlay(decode(substr(:'small', 3), 'hex') PLACING '\x00000007'::bytea FROM 17 FOR 4), 'hex')));
-- the farthest row's distance (the last 4 bytes) of a cluster with rows set to -1, "no row"
SELECT * FROM try(format('SELECT %L::kmeans_step_state',
    '\x' || encode(overlay(decode(substr(:'small', 3), 'hex') PLACING '\xbf800000'::bytea
                            FROM length(decode(substr(:'small', 3), 'hex')) - 3 FOR 4), 'hex')));
-- a byte short
SELECT * FROM try(format('SELECT %L::kmeans_step_state', substr(:'small', 1, length(:'small') - 2)));
-- states of different centers do not combine
SELECT * FROM try($$SELECT step_merge(s) FROM (SELECT step_state(x, '{{0,0}}') s FROM six
                  UNION ALL SELECT step_state(x, '{{1,1}}') FROM six) q$$);

-- Bad rows and centers: an ERROR with an SQLSTATE and the offending value.
SELECT * FROM try($$SELECT kmeans_step(x, NULL) FROM six$$);
SELECT * FROM try($$SELECT kmeans_step(x, '{0,0}') FROM six$$);
SELECT * FROM try($$SELECT kmeans_step(x, '{{0,NULL}}') FROM six$$);
SELECT * FROM try($$SELECT kmeans_step(x, '{{0,NaN}}') FROM six$$);
SELECT * FROM try($$SELECT kmeans_step(x, '{{0,0,0}}') FROM six$$);
SELECT * FROM try($$SELECT kmeans_step(v, '{{0}}') FROM (VALUES ('{1}'::real[]), ('{NULL}')) t(v)$$);
SELECT * FROM try($$SELECT kmeans_step(v, '{{0}}') FROM (VALUES ('{1}'::real[]), ('{Infinity}')) t(v)$$);
SELECT * FROM try($$SELECT kmeans_step(v, '{{0}}') FROM (VALUES ('{1}'::real[]), ('{1,2}')) t(v)$$);
SELECT * FROM try($$SELECT kmeans_step(v, '{{-3e38}}') FROM (VALUES ('{3e38}'::real[])) t(v)$$);
-- the centers must be the same in every row of one aggregate
SELECT * FROM try($$SELECT kmeans_step(x, ARRAY[ARRAY[id, 0]]::real[]) FROM six$$);
-- the state's size is estimated before it is allocated
SET kmeans.max_memory = '64MB';
SELECT * FROM try($$SELECT kmeans_step(x, array_fill(0::real, ARRAY[100000, 10])) FROM six$$);
RESET kmeans.max_memory;
-- the transition and combine functions are the aggregate's own
SELECT * FROM try($$SELECT kmeans_step_transfn(NULL, '{1}', '{{0}}')$$);

RESET search_path;
DROP SCHEMA test_step CASCADE;
