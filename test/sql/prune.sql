-- kmeans.prune: Lloyd passes that skip the rows whose bounds prove they keep their cluster
-- (kernels/km_bounds.c) give the same bits as passes that compare every row with every center:
-- centers, sizes, inertia, labels, iterations and the elbow's indices, resident and streamed,
-- on one thread and on two.  The engine tests (test/engine/test_bounds.c) check the same pass by
-- pass, with planted faults, and that the bounds do skip work; here the whole SQL surface.  The
-- trace's count of rows compared with every center is checked by hand in gucs.sql.
CREATE SCHEMA test_prune;
SET search_path = test_prune, public;
SET extra_float_digits = 3;

-- 12,000 points in 3 dimensions around 9 centers, in an order that mixes them
CREATE TABLE blobs AS
SELECT i AS id,
       ARRAY[(i % 9 / 3) * 4 + sin(i * 0.7) * 1.3,
             (i % 9 % 3) * 4 + cos(i * 1.3) * 1.3,
             sin(i * 0.11) * 0.5]::real[] AS v
FROM generate_series(1, 12000) i;

-- every result of a fit, labels and an elbow, as rows to compare (init given: without one,
-- streamed rows are seeded by k-means||, seeding.sql)
CREATE FUNCTION results(label text) RETURNS TABLE (what text, key text, val text)
LANGUAGE sql AS $$
    SELECT label || ' fit', cluster::text, format('%s %s %s', center, size, inertia)
    FROM kmeans_fit('test_prune.blobs', 'v', 12, init => 'k-means++', seed => 3, tol => 0)
    UNION ALL
    SELECT label || ' fit iterations', '', (SELECT count(*) FROM kmeans_last_fit() WHERE phase = 'iterate')::text
    UNION ALL
    SELECT label || ' fit n_init', cluster::text, format('%s %s %s', center, size, inertia)
    FROM kmeans_fit('test_prune.blobs', 'v', 7, init => 'k-means++', n_init => 3, seed => 5)
    UNION ALL
    SELECT label || ' cosine', cluster::text, format('%s %s %s', center, size, inertia)
    FROM kmeans_fit('test_prune.blobs', 'v', 5, init => 'k-means++', metric => 'cosine', seed => 2)
    UNION ALL
    SELECT label || ' labels', id::text, cluster::text
    FROM kmeans_labels('test_prune.blobs', 'v', 9, init => 'k-means++', id => 'id', seed => 1)
    UNION ALL
    SELECT label || ' elbow', k::text, format('%s %s %s %s', inertia, n_iter, silhouette, calinski_harabasz)
    FROM kmeans_elbow('test_prune.blobs', 'v', 32, 36, init => 'k-means++', seed => 4, silhouette_sample => 2000)
    UNION ALL
    -- an elbow with a k below 32 keeps no bounds (km_bounds.h, KM_BOUNDS_MIN_K): the same too
    SELECT label || ' small elbow', k::text, format('%s %s %s', inertia, n_iter, silhouette)
    FROM kmeans_elbow('test_prune.blobs', 'v', 2, 6, init => 'k-means++', seed => 4, silhouette_sample => 500)
$$;

-- on unless set (the setting exists once the library is loaded)
LOAD 'kmeans';
SHOW kmeans.prune;
SET kmeans.prune = off;
CREATE TABLE unpruned AS SELECT * FROM results('x');
SET kmeans.prune = on;
CREATE TABLE pruned AS SELECT * FROM results('x');
SET kmeans.threads = 2;
CREATE TABLE pruned_two AS SELECT * FROM results('x');
-- streamed: the rows are read again on every pass, the bounds kept for every row between them
SET kmeans.memory_limit = '64kB';
SET kmeans.batch_rows = 2048;
CREATE TABLE pruned_streamed AS SELECT * FROM results('x');
RESET kmeans.memory_limit;
RESET kmeans.batch_rows;
RESET kmeans.threads;

-- the same rows, each compared: no difference either way
SELECT what, count(*) AS results FROM unpruned GROUP BY what ORDER BY what;
-- the first fit ran to convergence (tol 0: until no label changed) over many iterations
SELECT val::int > 5 AS several_iterations FROM unpruned WHERE what = 'x fit iterations';
SELECT 'pruned' AS run, count(*) AS differences
FROM ((TABLE unpruned EXCEPT TABLE pruned) UNION ALL (TABLE pruned EXCEPT TABLE unpruned)) d
UNION ALL
SELECT 'pruned, two threads', count(*)
FROM ((TABLE unpruned EXCEPT TABLE pruned_two) UNION ALL (TABLE pruned_two EXCEPT TABLE unpruned)) d
UNION ALL
SELECT 'pruned, streamed', count(*)
FROM ((TABLE unpruned EXCEPT TABLE pruned_streamed) UNION ALL (TABLE pruned_streamed EXCEPT TABLE unpruned)) d;

-- The trace says how many rows each pass compared with every center.  By hand, for the eight
-- points 0, 1, 2, 3, 8, 9, 10, 25 from centers 2 and 3 (the inertia, changes and shifts are
-- worked out in gucs.sql): pass 1 compares all 8 and keeps each row's distance to the other
-- center as its bound (0: 3, 1: 2, 2: 1, 3: 1, 8: 6, 9: 7, 10: 8, 25: 23).  The centers move to 1
-- and 11 (by 1 and 8), 10 apart.  Pass 2: a row of center 1 has bound max(l - 8, 10 - |x - 1|),
-- and one of center 11 max(l - 1, 10 - |x - 11|).  For 0, 1, 2 that is 9, 10, 9, above their
-- distances 1, 0, 1; for 8, 9, 10, 25 it is 7, 8, 9, 22 against 3, 2, 1, 14.  Only 3 (bound
-- max(0, 10 - 8) = 2 against its distance 8) is compared, and moves to center 1: 1 of 8.
-- The centers move to 1.5 and 13 (by 0.5 and 2), 11.5 apart.  Pass 3: every bound holds, for
-- example 3 at max(8 - 2, 11.5 - 1.5) = 10 against 1.5, and 8 at max(7 - 0.5, 11.5 - 5) = 6.5
-- against 5: 0 of 8.
CREATE TABLE line (v real[]);
INSERT INTO line VALUES ('{0}'), ('{1}'), ('{2}'), ('{3}'), ('{8}'), ('{9}'), ('{10}'), ('{25}');
SET kmeans.trace = on;
SELECT cluster, center FROM kmeans_fit('line', 'v', 2, init_centers => '{{2},{3}}', device => 'cpu');
RESET kmeans.trace;

-- and the comparison can fail: another seed's labels differ from these
SELECT count(*) > 0 AS another_fit_differs
FROM (SELECT id::text, cluster::text FROM kmeans_labels('blobs', 'v', 9, id => 'id', seed => 2)
      EXCEPT SELECT key, val FROM unpruned WHERE what = 'x labels') d;

-- a bad value is refused as for any boolean setting
SET kmeans.prune = 'sometimes';

DROP SCHEMA test_prune CASCADE;
