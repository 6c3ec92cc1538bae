-- init => 'k-means||' (Bahmani et al. 2012) with the engine's own passes: a fixed number of
-- passes over a streamed source whatever k is, the same centers resident and streamed, and
-- centers as good as greedy k-means++'s.
CREATE SCHEMA test_seeding;
SET search_path = test_seeding, public;
SET extra_float_digits = 0;
CREATE TABLE pts AS
SELECT i AS id, ARRAY[(i % 9) * 5 + sin(i * 1.7), (i % 9 / 3) * 7 + cos(i * 0.9)]::real[] AS v
FROM generate_series(1, 6000) i;

-- Every row the source returns moves a sequence on, so its value counts the rows read; the
-- memory limit makes the fit read the source again on every pass.
CREATE SEQUENCE reads;
CREATE FUNCTION counted(v real[]) RETURNS real[] LANGUAGE sql VOLATILE
AS $$ SELECT v FROM (SELECT nextval('test_seeding.reads')) s $$;
SET kmeans.memory_limit = '64kB';
SET kmeans.batch_rows = 1024;
-- max_iter 1: the first read, the seeding, one iteration and the final pass
SELECT count(*) AS clusters, sum(size) AS rows
FROM kmeans_fit('SELECT test_seeding.counted(v) AS v FROM test_seeding.pts', 'v', 40,
                init => 'k-means||', max_iter => 1);
-- passes over the 6,000 rows: 1 read + 7 seeding (the first row, 5 rounds, the weighing) +
-- 1 iteration + 1 final = 10, whatever k is
SELECT last_value / 6000 AS passes, last_value % 6000 AS stray_rows FROM reads;
SELECT setval('reads', 1, false);
SELECT count(*) FROM kmeans_fit('SELECT test_seeding.counted(v) AS v FROM test_seeding.pts', 'v', 400,
                                init => 'k-means||', max_iter => 1);
SELECT last_value / 6000 AS passes_k400 FROM reads;
-- greedy k-means++ reads a streamed source several times per center
SELECT setval('reads', 1, false);
SELECT count(*) FROM kmeans_fit('SELECT test_seeding.counted(v) AS v FROM test_seeding.pts', 'v', 40,
                                init => 'k-means++', max_iter => 1);
SELECT last_value / 6000 > 40 AS plusplus_reads_more FROM reads;
-- Without an init, rows read again on every pass are seeded by k-means||: the same 10 passes,
-- the saved model says so, and the centers are those of init => 'k-means||'.
SELECT setval('reads', 1, false);
CREATE TABLE streamed_default AS
SELECT cluster, center, size, inertia
FROM kmeans_fit('SELECT test_seeding.counted(v) AS v FROM test_seeding.pts', 'v', 40, max_iter => 1,
                model => 'streamed_default');
SELECT last_value / 6000 AS passes_default, last_value % 6000 AS stray_rows FROM reads;
SELECT options->>'init' AS saved_init FROM kmeans_models WHERE name = 'streamed_default';
SELECT count(*) AS differences_from_kmeans_parallel FROM
  (SELECT * FROM streamed_default EXCEPT
   SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 40, init => 'k-means||',
                                                        max_iter => 1)) d;
-- the elbow's too, every k, and mini-batch's
SELECT count(*) AS elbow_differences_from_kmeans_parallel FROM
  (SELECT k, inertia FROM kmeans_elbow('pts', 'v', 8, 10, silhouette_sample => 0, max_iter => 1) EXCEPT
   SELECT k, inertia FROM kmeans_elbow('pts', 'v', 8, 10, init => 'k-means||', silhouette_sample => 0,
                                       max_iter => 1)) d;
SELECT count(*) AS minibatch_differences_from_kmeans_parallel FROM
  (SELECT center, size FROM kmeans_fit('pts', 'v', 40, algorithm => 'minibatch', max_iter => 1) EXCEPT
   SELECT center, size FROM kmeans_fit('pts', 'v', 40, algorithm => 'minibatch', max_iter => 1,
                                       init => 'k-means||')) d;
-- (which k-means++ would not have given: the comparisons above can fail)
SELECT count(*) > 0 AS plusplus_differs FROM
  (SELECT * FROM streamed_default EXCEPT
   SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 40, init => 'k-means++',
                                                        max_iter => 1)) d;
SELECT count(*) > 0 AS elbow_plusplus_differs FROM
  (SELECT k, inertia FROM kmeans_elbow('pts', 'v', 8, 10, silhouette_sample => 0, max_iter => 1) EXCEPT
   SELECT k, inertia FROM kmeans_elbow('pts', 'v', 8, 10, init => 'k-means++', silhouette_sample => 0,
                                       max_iter => 1)) d;
SELECT count(*) > 0 AS minibatch_plusplus_differs FROM
  (SELECT center, size FROM kmeans_fit('pts', 'v', 40, algorithm => 'minibatch', max_iter => 1) EXCEPT
   SELECT center, size FROM kmeans_fit('pts', 'v', 40, algorithm => 'minibatch', max_iter => 1,
                                       init => 'k-means++')) d;

-- Mini-batch keeps nothing per row, so its k-means|| keeps D^2 only while it fits
-- kmeans.memory_limit (4 bytes a row); beyond, each round assigns every row to all the
-- candidates so far, where Lloyd lowers its kept D^2 by the round's new ones.  The candidates
-- are the same either way: a mini-batch epoch of one batch is Lloyd's first iteration
-- (minibatch.sql), and it equals a one-iteration Lloyd fit bit for bit, streamed, with D^2 kept
-- (6,000 rows: 24 kB) and recomputed (20,000 rows: 80 kB, over the 64 kB limit), with the
-- direct kernel (2-D) and with the matrix product (64-D).  The rounds take one pass each
-- either way: 10 passes, as above.
SELECT setval('reads', 1, false);
SELECT count(*) AS minibatch_kept_d2_differences FROM
  (SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 40, init => 'k-means||', max_iter => 1) EXCEPT
   SELECT cluster, center, size, inertia
   FROM kmeans_fit('SELECT test_seeding.counted(v) AS v FROM test_seeding.pts', 'v', 40,
                   init => 'k-means||', max_iter => 1, algorithm => 'minibatch', batch_size => 6000)) d;
SELECT last_value / 6000 AS minibatch_passes, last_value % 6000 AS stray_rows FROM reads;
CREATE TABLE pts20k AS
SELECT i AS id, ARRAY[(i % 9) * 5 + sin(i * 1.7), (i % 9 / 3) * 7 + cos(i * 0.9)]::real[] AS v
FROM generate_series(1, 20000) i;
SELECT setval('reads', 1, false);
SELECT count(*) AS minibatch_recomputed_d2_differences FROM
  (SELECT cluster, center, size, inertia FROM kmeans_fit('pts20k', 'v', 40, init => 'k-means||', max_iter => 1) EXCEPT
   SELECT cluster, center, size, inertia
   FROM kmeans_fit('SELECT test_seeding.counted(v) AS v FROM test_seeding.pts20k', 'v', 40,
                   init => 'k-means||', max_iter => 1, algorithm => 'minibatch', batch_size => 20000)) d;
SELECT last_value / 20000 AS minibatch_recomputed_passes, last_value % 20000 AS stray_rows FROM reads;
CREATE TABLE wide AS
SELECT i AS id, (SELECT array_agg((i % 23) * 0.5 + sin(i * 0.37 + j * 1.1) + cos(i * j * 0.01))::real[]
                 FROM generate_series(1, 64) j) AS v
FROM generate_series(1, 20000) i;
SELECT count(*) AS minibatch_recomputed_d2_differences_64d FROM
  (SELECT cluster, center, size, inertia FROM kmeans_fit('wide', 'v', 10, init => 'k-means||', max_iter => 1) EXCEPT
   SELECT cluster, center, size, inertia FROM kmeans_fit('wide', 'v', 10, init => 'k-means||', max_iter => 1,
                                                        algorithm => 'minibatch', batch_size => 20000)) d;
-- (another seed draws other candidates, so the comparison can fail)
SELECT count(*) > 0 AS minibatch_another_seed_differs FROM
  (SELECT cluster, center, size, inertia FROM kmeans_fit('wide', 'v', 10, init => 'k-means||', max_iter => 1) EXCEPT
   SELECT cluster, center, size, inertia FROM kmeans_fit('wide', 'v', 10, init => 'k-means||', max_iter => 1,
                                                        algorithm => 'minibatch', batch_size => 20000,
                                                        seed => 1)) d;

-- Streamed and resident: the same centers, bit for bit.
CREATE TABLE streamed AS
SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 9, init => 'k-means||', seed => 5);
RESET kmeans.memory_limit;
RESET kmeans.batch_rows;
-- rows kept in memory: without an init, greedy k-means++, and the saved model says so
CREATE TABLE resident_default AS
SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 40, max_iter => 1,
                                                     model => 'resident_default');
SELECT options->>'init' AS saved_init FROM kmeans_models WHERE name = 'resident_default';
SELECT count(*) AS resident_default_differences_from_plusplus FROM
  (SELECT * FROM resident_default EXCEPT
   SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 40, init => 'k-means++',
                                                        max_iter => 1)) d;
SELECT count(*) > 0 AS resident_parallel_differs FROM
  (SELECT * FROM resident_default EXCEPT
   SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 40, init => 'k-means||',
                                                        max_iter => 1)) d;
SELECT count(*) AS differences_resident FROM
  (SELECT * FROM streamed EXCEPT
   SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 9, init => 'k-means||', seed => 5)) d;
-- two threads too
SET kmeans.threads = 2;
SELECT count(*) AS differences_two_threads FROM
  (SELECT * FROM streamed EXCEPT
   SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 9, init => 'k-means||', seed => 5)) d;
RESET kmeans.threads;
-- and another seed draws other candidates
SELECT count(*) > 0 AS another_seed_differs FROM
  (SELECT * FROM streamed EXCEPT
   SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 9, init => 'k-means||', seed => 6,
                                                        max_iter => 1)) d;

-- The nine groups are found from the seeding alone (one iteration): each center within 1 of a
-- group's middle ((g % 9) * 5, (g % 9 / 3) * 7), as greedy k-means++ finds them.
SELECT count(DISTINCT (round(center[1] / 5), round(center[2] / 7))) AS groups_found
FROM kmeans_fit('pts', 'v', 9, init => 'k-means||', max_iter => 1);
SELECT count(DISTINCT (round(center[1] / 5), round(center[2] / 7))) AS groups_found_plusplus
FROM kmeans_fit('pts', 'v', 9, max_iter => 1);

-- Fewer distinct rows than candidates wanted, and k as large as the distinct rows.
CREATE TABLE few AS SELECT ARRAY[i % 4, 0]::real[] AS v FROM generate_series(1, 100) i;
SELECT cluster, center, size FROM kmeans_fit('few', 'v', 4, init => 'k-means||') ORDER BY center[1];
-- weights: rows of weight 0 hold no center
SELECT count(*) FILTER (WHERE center[1] = 3) AS centers_on_weight_0
FROM kmeans_fit('SELECT v, CASE WHEN v[1] = 3 THEN 0 ELSE 1 END AS w FROM test_seeding.few', 'v', 3,
                init => 'k-means||', weight => 'w', max_iter => 1, device => 'cpu');
-- in the elbow and the aggregate form too
SELECT k, inertia > 0 AS fitted FROM kmeans_elbow('pts', 'v', 8, 10, init => 'k-means||', silhouette_sample => 0)
ORDER BY k;
SELECT (m).k FROM (SELECT kmeans_agg(v, 9, '{"init": "k-means||"}') AS m FROM pts) s;

-- The memory estimate counts k-means||'s 4 bytes of D^2 per row for a streamed fit without an
-- init; the aggregate strategy seeds by aggregate queries, which keep nothing per row, so its
-- estimate has no such term.  Both refused (53200) by kmeans.max_memory = 1MB over 200,000
-- rows, their terms compared.
CREATE TABLE many AS SELECT ARRAY[i % 7, i % 11]::real[] AS v FROM generate_series(1, 200000) i;
CREATE FUNCTION estimate_terms(how text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    PERFORM count(*) FROM kmeans_fit('test_seeding.many', 'v', 3, strategy => how);
    RETURN 'fitted';
EXCEPTION WHEN out_of_memory THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN CASE WHEN detail LIKE '%k-means|| seeding%' THEN 'counts k-means||'
                ELSE 'no k-means|| term' END;
END $$;
SET kmeans.memory_limit = '64kB';
SET kmeans.max_memory = '1MB';
SELECT estimate_terms('aggregate') AS aggregate, estimate_terms('engine') AS engine_streamed;
RESET kmeans.max_memory;
RESET kmeans.memory_limit;
DELETE FROM kmeans_models WHERE name IN ('streamed_default', 'resident_default');
RESET search_path;
DROP SCHEMA test_seeding CASCADE;
