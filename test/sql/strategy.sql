-- strategy => 'aggregate': every pass over the source is an aggregate query (kmeans_step_partial,
-- kmeans_sample_partial) that parallel workers and Citus nodes can run; the partial states hold
-- exact sums, so a fit is the same bits with any number of workers.
CREATE SCHEMA test_strategy;
SET search_path = test_strategy, public;
\i test/sql/include/try.sql

CREATE TABLE pts AS
SELECT i AS id, ARRAY[sin(i) * 100, cos(i * 0.7) * 50, (i % 97)::real / 7]::real[] AS x
FROM generate_series(1, 100000) i;
INSERT INTO pts VALUES (0, NULL);
ANALYZE pts;

-- From the same starting centers, three iterations: the same clusters as the engine's, the
-- centers within float4 rounding (the engine sums centred values in float64 in row order, the
-- aggregate sums exactly).
CREATE TABLE eng AS SELECT * FROM kmeans_fit('pts', 'x', 4, max_iter => 3,
    init_centers => '{{0,0,0},{50,20,5},{-50,-20,10},{80,0,0}}', strategy => 'engine');
CREATE TABLE agg AS SELECT * FROM kmeans_fit('pts', 'x', 4, max_iter => 3,
    init_centers => '{{0,0,0},{50,20,5},{-50,-20,10},{80,0,0}}', strategy => 'aggregate');
SELECT cluster, e.size = a.size AS same_size,
       (SELECT max(abs(ev - av) / greatest(abs(ev), 1))
        FROM unnest(e.center, a.center) u(ev, av)) < 1e-6 AS same_center,
       abs(e.inertia - a.inertia) / e.inertia < 1e-6 AS same_inertia
FROM eng e JOIN agg a USING (cluster) ORDER BY cluster;
SELECT phase, count(*) FROM kmeans_last_fit() GROUP BY phase ORDER BY min(step);

-- Parallel workers: the planner may split every pass; the fit is the same bits with 0 and 2.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF)
SELECT kmeans_step_partial(CAST(x AS real[]), '{{0,0,0}}', 'euclidean')
FROM (SELECT CAST((x) AS pg_catalog.float4[]) FROM test_strategy.pts) AS kmeans_rows(x);
SELECT array_agg(center ORDER BY cluster)::text AS two
FROM kmeans_fit('pts', 'x', 5, strategy => 'aggregate') \gset
SET max_parallel_workers_per_gather = 0;
SELECT array_agg(center ORDER BY cluster)::text AS zero
FROM kmeans_fit('pts', 'x', 5, strategy => 'aggregate') \gset
SELECT :'zero' = :'two' AS same_with_0_and_2_workers;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
-- nor does the order of the rows matter, seeding included (rows are drawn by a hash of their values)
SELECT array_agg(center ORDER BY cluster)::text = :'zero' AS same_in_reverse_order
FROM kmeans_fit('SELECT x FROM test_strategy.pts ORDER BY id DESC', 'x', 5, strategy => 'aggregate');

-- k-means|| (what k-means++ means under this strategy) reads the source a few times: the first
-- pass (counts, sums, the first center), 5 rounds, one pass weighing the candidates, then one
-- per iteration and one for the sizes.  A volatile function in the source counts the rows read.
CREATE SEQUENCE ticks;
CREATE TABLE small AS SELECT id, x FROM pts WHERE id BETWEEN 1 AND 1000;
SELECT count(*) AS clusters FROM kmeans_fit('SELECT x FROM test_strategy.small WHERE nextval(''test_strategy.ticks'') > 0',
                                            'x', 8, strategy => 'aggregate', init => 'k-means||', max_iter => 4);
SELECT currval('ticks') % 1000 AS partial_passes,
       currval('ticks') / 1000 - (SELECT count(*) FROM kmeans_last_fit() WHERE phase = 'iterate') - 1
           AS seeding_passes;
-- random seeding: one pass draws the rows (the first pass, here)
SELECT setval('ticks', 1, false) IS NOT NULL AS reset;
SELECT count(*) AS clusters FROM kmeans_fit('SELECT x FROM test_strategy.small WHERE nextval(''test_strategy.ticks'') > 0',
                                            'x', 8, strategy => 'aggregate', init => 'random', max_iter => 4);
SELECT currval('ticks') / 1000 - (SELECT count(*) FROM kmeans_last_fit() WHERE phase = 'iterate') - 1
    AS seeding_passes;

-- kmeans_labels streams the final labels; they agree with the sizes of the same fit.
SELECT l.cluster, count(*) = f.size AS same_size
FROM kmeans_labels('pts', 'x', 4, id => 'id', strategy => 'aggregate') l
JOIN kmeans_fit('pts', 'x', 4, strategy => 'aggregate') f USING (cluster)
GROUP BY l.cluster, f.size ORDER BY l.cluster;
-- kmeans_elbow: every k's passes share each query
SELECT k, n_iter > 0 AS iterated, inertia < lag(inertia) OVER (ORDER BY k) AS lower,
       silhouette BETWEEN -1 AND 1 AS silhouette_ok
FROM kmeans_elbow('pts', 'x', 2, 5, strategy => 'aggregate') ORDER BY k;

-- The metrics: the same clusters as the engine's from the same start.
SELECT count(*) FILTER (WHERE e.size = a.size) AS same_sizes
FROM kmeans_fit('pts', 'x', 3, metric => 'cosine', max_iter => 5,
                init_centers => '{{1,0,0},{0,1,0},{0,0,1}}', strategy => 'engine') e
JOIN kmeans_fit('pts', 'x', 3, metric => 'cosine', max_iter => 5,
                init_centers => '{{1,0,0},{0,1,0},{0,0,1}}', strategy => 'aggregate') a USING (cluster);
SELECT count(*) FILTER (WHERE e.size = a.size) AS same_sizes
FROM kmeans_fit('SELECT ARRAY[abs(x[1]) + 1, abs(x[2]) + 1] AS b FROM test_strategy.pts WHERE x IS NOT NULL', 'b', 3,
                metric => 'iou', max_iter => 5, init_centers => '{{10,10},{50,20},{90,40}}',
                strategy => 'engine') e
JOIN kmeans_fit('SELECT ARRAY[abs(x[1]) + 1, abs(x[2]) + 1] AS b FROM test_strategy.pts WHERE x IS NOT NULL', 'b', 3,
                metric => 'iou', max_iter => 5, init_centers => '{{10,10},{50,20},{90,40}}',
                strategy => 'aggregate') a USING (cluster);

-- The strategy is chosen by default for a partitioned table (and a foreign or Citus
-- distributed one); a saved model says which it was.
CREATE TABLE parted (id int, x real[]) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (50000);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (50000) TO (200000);
INSERT INTO parted SELECT id, x FROM pts WHERE x IS NOT NULL;
SELECT count(*) FROM kmeans_fit('parted', 'x', 3, model => 'test_strategy_parted');
SELECT count(*) FROM kmeans_fit('pts', 'x', 3, model => 'test_strategy_plain');
SELECT name, options->>'strategy' AS strategy FROM kmeans_models
WHERE name LIKE 'test_strategy_%' ORDER BY name;
DELETE FROM kmeans_models WHERE name LIKE 'test_strategy_%';
-- the same fit over the partitioned table and over the plain one, whatever the order of their rows
SELECT (SELECT array_agg(center ORDER BY cluster) FROM kmeans_fit('parted', 'x', 5))::text = :'zero'
    AS partitioned_same;

-- An empty cluster takes the farthest row of another: the center at 100 gets no row in the
-- first pass, takes 12 (farthest from the other center), and the fit ends at 1 and 11, as the
-- engine's does.
CREATE TABLE line (v real[]);
INSERT INTO line VALUES ('{0}'), ('{1}'), ('{2}'), ('{10}'), ('{11}'), ('{12}');
SELECT e.cluster, e.center AS engine, a.center AS aggregate
FROM kmeans_fit('test_strategy.line', 'v', 2, init_centers => '{{0},{100}}', strategy => 'engine') e
JOIN kmeans_fit('test_strategy.line', 'v', 2, init_centers => '{{0},{100}}', strategy => 'aggregate') a
USING (cluster) ORDER BY cluster;

-- The sampling pass's state, as a worker hands it on: its text form reads back as the same
-- state, and is checked as hostile input.
SELECT kmeans_sample_partial(x, NULL, 'euclidean', 3, 7, 0)::text AS sample FROM small \gset
SELECT :'sample'::kmeans_sample_state::text = :'sample' AS text_round_trip;
SELECT * FROM try($$SELECT 'nonsense'::kmeans_sample_state$$);
SELECT * FROM try(format('SELECT %L::kmeans_sample_state', substr(:'sample', 1, length(:'sample') - 2)));
SELECT * FROM try(format('SELECT %L::kmeans_sample_state',
    '\x' || encode(overlay(decode(substr(:'sample', 3), 'hex') PLACING '\x00000009'::bytea FROM 5 FOR 4), 'hex')));
-- more rows kept (bytes 25..28) than the sample holds
SELECT * FROM try(format('SELECT %L::kmeans_sample_state',
    '\x' || encode(overlay(decode(substr(:'sample', 3), 'hex') PLACING '\x00000009'::bytea FROM 25 FOR 4), 'hex')));

-- Errors.
SELECT * FROM try($$SELECT * FROM kmeans_fit('test_strategy.pts', 'x', 2, strategy => 'cluster')$$);
-- init 'k-means||' runs with the engine's own passes too (test/sql/seeding.sql): state 00000
SELECT * FROM try($$SELECT * FROM kmeans_fit('test_strategy.pts', 'x', 2, init => 'k-means||')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('test_strategy.pts', 'x', 2, strategy => 'aggregate', weight => 'id', device => 'cpu')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('SELECT ARRAY[1, 1]::real[] AS b', 'b', 1, metric => 'iou',
                                            center => 'median', strategy => 'aggregate')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('SELECT x FROM test_strategy.pts WHERE false', 'x', 2, strategy => 'aggregate')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('SELECT x FROM test_strategy.pts WHERE id < 3', 'x', 5, strategy => 'aggregate')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('SELECT ARRAY[id, 1]::real[] AS v FROM test_strategy.pts WHERE id < 5 UNION ALL SELECT ARRAY[1]::real[]', 'v', 2, strategy => 'aggregate')$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 2, '{"init": "k-means||"}') FROM test_strategy.pts$$);

RESET search_path;
DROP SCHEMA test_strategy CASCADE;
