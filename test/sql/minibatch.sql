-- algorithm => 'minibatch': mini-batch k-means (Sculley 2010) with per-center counts as
-- learning rates, as scikit-learn's MiniBatchKMeans.  The expected values are worked out by
-- hand below; the comparison with scikit-learn itself is test/reference/check_minibatch_sklearn.py.
CREATE SCHEMA test_minibatch;
SET search_path = test_minibatch, public;
SET extra_float_digits = 0;

-- Four points on a line, 0 2 4 10, from the centers 0 and 3, one batch holding every row.
-- Step 1 (epoch 1): 0 -> c0; 2 -> c1 (|2-3| = 1 < 2); 4 and 10 -> c1.  c0 = 0 (W0 = 1),
--   c1 = (2 + 4 + 10) / 3 = 16/3 (W1 = 3): the batch means, as Lloyd's first iteration.
-- Step 2 (epoch 2): 0 and 2 -> c0 (|2 - 0| = 2 < 10/3); 4 and 10 -> c1.
--   c0 = (1 * 0 + 0 + 2) / (1 + 2) = 2/3;  c1 = (3 * 16/3 + 4 + 10) / (3 + 2) = 6.
--   Lloyd's second iteration would give the means 1 and 7 instead.
-- The final pass: 0 and 2 -> 2/3 (inertia 4/9 + 16/9 = 20/9 = 2.2222), 4 and 10 -> 6 (4 + 16 = 20).
CREATE TABLE line (id int, v real[]);
INSERT INTO line VALUES (1, '{0}'), (2, '{2}'), (3, '{4}'), (4, '{10}');
SELECT cluster, round(center[1]::numeric, 5) AS center, size, round(inertia::numeric, 4) AS inertia
FROM kmeans_fit('line', 'v', 2, init_centers => '{{0},{3}}', algorithm => 'minibatch',
                batch_size => 4, max_iter => 2)
ORDER BY cluster;
-- Lloyd from the same start: 1 and 7 after its second iteration
SELECT cluster, round(center[1]::numeric, 5) AS center, size
FROM kmeans_fit('line', 'v', 2, init_centers => '{{0},{3}}', max_iter => 2, tol => 0)
ORDER BY cluster;
-- One epoch of one batch is Lloyd's first iteration: 0 and 16/3
SELECT cluster, round(center[1]::numeric, 5) AS center
FROM kmeans_fit('line', 'v', 2, init_centers => '{{0},{3}}', algorithm => 'minibatch',
                batch_size => 1000, max_iter => 1)
ORDER BY cluster;

-- A bigger table: five groups of 1,600 points in 3-D, in an order that is not the groups'.
CREATE TABLE pts AS
SELECT i AS id,
       ARRAY[(i % 5) * 10 + sin(i * 1.3), (i % 5) * 4 + cos(i * 0.7), sin(i * 0.11)]::real[] AS v
FROM generate_series(1, 8000) i;

-- With batch_size >= n, one epoch is one batch in row order: Lloyd's first iteration, bit for bit.
SELECT count(*) AS differences FROM
  (SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 5, max_iter => 1, seed => 3)
   EXCEPT
   SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 5, max_iter => 1, seed => 3,
                                                        algorithm => 'minibatch', batch_size => 8000)) d;

-- The same call gives the same answer; so do two threads, and rows streamed from the table on
-- every epoch instead of kept: the batches depend on the rows, their order and the seed only.
CREATE TABLE ref AS
SELECT cluster, center, size, inertia
FROM kmeans_fit('pts', 'v', 5, algorithm => 'minibatch', batch_size => 300, max_iter => 5, seed => 7);
SELECT count(*) AS clusters, sum(size) AS rows FROM ref;
SELECT count(*) AS differences_again FROM
  (SELECT * FROM ref EXCEPT
   SELECT cluster, center, size, inertia
   FROM kmeans_fit('pts', 'v', 5, algorithm => 'minibatch', batch_size => 300, max_iter => 5, seed => 7)) d;
SET kmeans.threads = 2;
SELECT count(*) AS differences_two_threads FROM
  (SELECT * FROM ref EXCEPT
   SELECT cluster, center, size, inertia
   FROM kmeans_fit('pts', 'v', 5, algorithm => 'minibatch', batch_size => 300, max_iter => 5, seed => 7)) d;
RESET kmeans.threads;
-- streamed: the same bits from the same seeding (without an init, streamed rows are seeded by
-- k-means||: seeding.sql)
SET kmeans.memory_limit = '64kB';
SET kmeans.batch_rows = 1024;
SELECT count(*) AS differences_streamed FROM
  (SELECT * FROM ref EXCEPT
   SELECT cluster, center, size, inertia
   FROM kmeans_fit('pts', 'v', 5, algorithm => 'minibatch', batch_size => 300, max_iter => 5, seed => 7,
                   init => 'k-means++')) d;
-- A fit that stops inside an epoch stops reading the source there.  A volatile function in the
-- source counts the rows read: 8,000 for the first pass, then epoch 1 (batches of 100 rows,
-- windows of 16 batches) ends early by scikit-learn's rule, then 8,000 for the final pass;
-- explicit centers, so no seeding pass.  The result is the resident fit's, bit for bit.
CREATE SEQUENCE reads;
CREATE FUNCTION counted(v real[]) RETURNS real[] LANGUAGE sql VOLATILE
AS $$ SELECT v FROM (SELECT nextval('test_minibatch.reads')) s $$;
CREATE TABLE early AS
SELECT cluster, center, size, inertia
FROM kmeans_fit('SELECT test_minibatch.counted(v) AS v FROM test_minibatch.pts', 'v', 5,
                algorithm => 'minibatch', batch_size => 100, max_iter => 50, seed => 7,
                init_centers => '{{1,1,0},{9,3,0},{21,9,0},{29,11,0},{41,17,0}}');
SELECT count(*) FILTER (WHERE phase = 'iterate') AS epochs FROM kmeans_last_fit();
SELECT last_value - 2 * 8000 < 8000 AS epoch_cut_short, last_value - 2 * 8000 > 0 AS epoch_read
FROM reads;
RESET kmeans.memory_limit;
RESET kmeans.batch_rows;
SELECT count(*) AS early_differences_resident FROM
  (SELECT * FROM early EXCEPT
   SELECT cluster, center, size, inertia
   FROM kmeans_fit('pts', 'v', 5, algorithm => 'minibatch', batch_size => 100, max_iter => 50, seed => 7,
                   init_centers => '{{1,1,0},{9,3,0},{21,9,0},{29,11,0},{41,17,0}}')) d;
-- Nothing per row: a streamed mini-batch fit holds a window, a batch and the centers, and its
-- final pass and k-means|| seeding keep no label, distance or D^2 per row.  kmeans.max_memory =
-- 1MB refuses Lloyd on 200,000 rows (its labels and distances, 8 bytes a row, no longer fit
-- once some 45,000 rows are counted) and lets mini-batch fit them all, with the result of the
-- rows kept in memory.
CREATE TABLE many AS
SELECT i AS id, ARRAY[(i % 5) * 10 + sin(i * 1.3), (i % 5) * 4 + cos(i * 0.7)]::real[] AS v
FROM generate_series(1, 200000) i;
CREATE FUNCTION fit_or_refusal(alg text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    PERFORM count(*) FROM kmeans_fit('test_minibatch.many', 'v', 5, algorithm => alg, max_iter => 2,
                                     batch_size => 2048, init => 'k-means||');
    RETURN 'fitted';
EXCEPTION WHEN out_of_memory THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN CASE WHEN detail LIKE '%per-row labels and distances%' THEN 'refused for its per-row labels'
                ELSE detail END;
END $$;
SET kmeans.memory_limit = '64kB';
SET kmeans.max_memory = '1MB';
SET kmeans.batch_rows = 1024;
SELECT fit_or_refusal('lloyd') AS lloyd, fit_or_refusal('minibatch') AS minibatch;
CREATE TABLE many_streamed AS
SELECT cluster, center, size, inertia
FROM kmeans_fit('many', 'v', 5, algorithm => 'minibatch', max_iter => 2, batch_size => 2048,
                init => 'k-means||');
RESET kmeans.max_memory;
RESET kmeans.memory_limit;
RESET kmeans.batch_rows;
SELECT count(*) AS clusters, sum(size) AS rows FROM many_streamed;
SELECT count(*) AS many_differences_resident FROM
  (SELECT * FROM many_streamed EXCEPT
   SELECT cluster, center, size, inertia
   FROM kmeans_fit('many', 'v', 5, algorithm => 'minibatch', max_iter => 2, batch_size => 2048,
                   init => 'k-means||')) d;
-- kmeans_labels streams its labels out of the final pass too: sum(distance^2) is the inertia
SET kmeans.memory_limit = '64kB';
SET kmeans.max_memory = '1MB';
SET kmeans.batch_rows = 1024;
SELECT count(*) AS labelled, abs(sum(distance ^ 2) / (SELECT sum(inertia) FROM many_streamed) - 1) < 1e-9 AS inertia_agrees
FROM kmeans_labels('many', 'v', 5, id => 'id', algorithm => 'minibatch', max_iter => 2,
                   batch_size => 2048, init => 'k-means||');
RESET kmeans.max_memory;
RESET kmeans.memory_limit;
RESET kmeans.batch_rows;

-- another seed deals other batches
SELECT count(*) > 0 AS another_seed_differs FROM
  (SELECT * FROM ref EXCEPT
   SELECT cluster, center, size, inertia
   FROM kmeans_fit('pts', 'v', 5, algorithm => 'minibatch', batch_size => 300, max_iter => 5, seed => 8)) d;
-- the five groups are found: every center within 0.1 of a group's mean
SELECT count(*) AS centers_near_a_group FROM ref
WHERE EXISTS (SELECT 1 FROM (SELECT i % 5 AS g, avg((i % 5) * 10 + sin(i * 1.3)) AS mx,
                                    avg((i % 5) * 4 + cos(i * 0.7)) AS my
                             FROM generate_series(1, 8000) i GROUP BY 1) m
              WHERE abs(center[1] - mx) < 0.1 AND abs(center[2] - my) < 0.1);

-- kmeans_labels and kmeans_elbow take it too; labels come from the final pass over all rows.
SELECT count(*) AS rows, count(DISTINCT cluster) AS clusters FROM
  kmeans_labels('pts', 'v', 5, id => 'id', algorithm => 'minibatch', batch_size => 300, max_iter => 5, seed => 7);
SELECT count(*) AS label_sizes_differ FROM
  (SELECT cluster, count(*) FROM kmeans_labels('pts', 'v', 5, id => 'id', algorithm => 'minibatch',
                                               batch_size => 300, max_iter => 5, seed => 7) GROUP BY 1
   EXCEPT SELECT cluster, size FROM ref) d;
SELECT k, n_iter <= 5 AS within_max_iter, inertia > 0 AS has_inertia
FROM kmeans_elbow('pts', 'v', 3, 6, algorithm => 'minibatch', batch_size => 500, max_iter => 5)
ORDER BY k;
-- the elbow's k = 5 equals kmeans_fit's k = 5 from the same seeding
SELECT abs(e.inertia - (SELECT sum(inertia) FROM kmeans_fit('pts', 'v', 5, algorithm => 'minibatch', batch_size => 500, max_iter => 5))) < 1e-6 * e.inertia AS elbow_k5_equals_fit
FROM kmeans_elbow('pts', 'v', 5, 5, algorithm => 'minibatch', batch_size => 500, max_iter => 5) e;

-- The aggregate form takes the same options in its jsonb, with the same result.
SELECT count(*) AS agg_differs FROM
  (SELECT unnest((m).sizes) AS size
   FROM (SELECT kmeans_agg(v, 5, '{"algorithm": "minibatch", "batch_size": 300, "max_iter": 5, "seed": 7}') AS m
         FROM (SELECT v FROM pts ORDER BY id) s) a
   EXCEPT SELECT size FROM ref) d;

-- Stopping: with tol > 0 a step that moves the centers little ends the fit early.
SELECT n_iter < 50 AS stopped_early FROM kmeans_elbow('pts', 'v', 5, 5, algorithm => 'minibatch',
                                                      batch_size => 300, max_iter => 50, tol => 0.01);
-- A saved model records the algorithm.
SELECT count(*) FROM kmeans_fit('pts', 'v', 5, algorithm => 'minibatch', batch_size => 300, model => 'mb_model');
SELECT options->>'algorithm' AS algorithm, options->>'batch_size' AS batch_size
FROM kmeans_models WHERE name = 'mb_model';
DELETE FROM kmeans_models WHERE name = 'mb_model';

-- Weights: a row of weight 3 counts three times in the update; from centers 0 and 3 with weights
-- 1 1 1 3, one batch: c1 = (2 + 4 + 3 * 10) / 5 = 7.2.  (The GPU backend weighs no rows yet.)
SELECT cluster, round(center[1]::numeric, 5) AS center
FROM kmeans_fit('SELECT v, CASE WHEN id = 4 THEN 3 ELSE 1 END AS w FROM test_minibatch.line', 'v', 2,
                init_centers => '{{0},{3}}', algorithm => 'minibatch', batch_size => 4, max_iter => 1,
                weight => 'w', device => 'cpu')
ORDER BY cluster;

-- Errors.
\set VERBOSITY default
SELECT * FROM kmeans_fit('pts', 'v', 5, algorithm => 'mini-batch');
SELECT * FROM kmeans_fit('pts', 'v', 5, algorithm => 'minibatch', batch_size => 0);
SELECT * FROM kmeans_fit('pts', 'v', 5, algorithm => 'minibatch', batch_size => NULL);
SELECT * FROM kmeans_fit('pts', 'v', 5, algorithm => NULL);
SELECT * FROM kmeans_fit('pts', 'v', 5, algorithm => 'minibatch', strategy => 'aggregate');
SELECT * FROM kmeans_fit('SELECT ARRAY[1 + id % 3, 2]::real[] AS b FROM test_minibatch.line', 'b', 2,
                         metric => 'iou', center => 'median', algorithm => 'minibatch');
SELECT kmeans_agg(v, 2, '{"batch_size": "10"}') FROM line;
-- tol => NULL is the algorithm's default
SELECT count(*) FROM kmeans_fit('line', 'v', 2, tol => NULL);

RESET search_path;
DROP SCHEMA test_minibatch CASCADE;
