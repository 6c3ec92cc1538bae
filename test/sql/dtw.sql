-- metric => 'dtw': series clustered by dynamic time warping, centers by DTW Barycenter
-- Averaging, series of any length from 2 samples.  Expected values are worked out by hand in
-- the comments; tslearn's TimeSeriesKMeans is the reference in test/reference/check_dtw_tslearn.py.
CREATE SCHEMA test_dtw;
SET search_path = test_dtw, public;
SET extra_float_digits = 0;
\i test/sql/include/try.sql

-- Distances by hand.  [1,2,3] warps onto [1,2,2,3] with every sample matched: 0.  Every path of
-- a 3 x 2 matrix has at least 3 cells, each (0 - 1)^2 here: sqrt(3).  With radius 0 equal
-- lengths keep the diagonal: [1..5] against [5..1] costs 16 + 4 + 0 + 4 + 16, sqrt(40).
-- [0,0,1] against [0,1,1]: 0 by (0,0),(1,0),(2,1),(2,2), but 1 on the diagonal (radius 0).
-- Lengths 2 and 3 with radius 0 keep a connected band, (0,0),(0,1),(1,2): 0.
SELECT kmeans_dtw('{1,2,3}', '{1,2,2,3}') AS zero,
       kmeans_dtw('{0,0,0}', '{1,1}') = sqrt(3::float8) AS sqrt3,
       kmeans_dtw('{1,2,3,4,5}', '{5,4,3,2,1}', 0) = sqrt(40::float8) AS sqrt40,
       kmeans_dtw('{0,0,1}', '{0,1,1}') AS free, kmeans_dtw('{0,0,1}', '{0,1,1}', 0) AS band0,
       kmeans_dtw('{0,0,1}', '{0,1,1}', 1) AS band1, kmeans_dtw('{0,1}', '{0,0,1}', 0) AS ragged,
       kmeans_dtw('{0,1}', '{0,0,1}', 0) = kmeans_dtw('{0,0,1}', '{0,1}', 0) AS symmetric,
       kmeans_dtw(NULL, '{1,2}') IS NULL AS null_in_null_out;
-- a band wider than both series is no band, up to the largest integer: (3 - 4)^2 = 1 either way
SELECT kmeans_dtw('{1,2,3}', '{1,2,3,4}', 2147483647) AS widest,
       kmeans_dtw('{1,2,3,4}', '{1,2,3}', 4) AS wide, kmeans_dtw('{1,2,3}', '{1,2,3,4}') AS none;
SELECT * FROM try($$SELECT kmeans_dtw('{1,2}', '{1,2}', -1)$$);
SELECT * FROM try($$SELECT kmeans_dtw('{1}', '{1,2}')$$);
SELECT * FROM try($$SELECT kmeans_dtw('{1,2}', '{{1,2},{3,4}}')$$);
SELECT * FROM try($$SELECT kmeans_dtw('{1,NaN}', '{1,2}')$$);
SELECT * FROM try($$SELECT kmeans_dtw('{1,NULL}', '{1,2}')$$);

-- Two groups of warped copies, of three lengths: [0,1,1,2], [0,1,2], [0,0,1,2,2] are all
-- [0,1,2] stretched, so each is at DTW 0 from [0,0,1,2,2]; the same for 10, 11, 12.  Started from
-- rows 3 and 6, every row meets its center at distance 0 and every DBA step keeps the centers
-- (each center sample averages only samples equal to it): the centers are the two rows, of the
-- longest length, sizes 3 and 3, inertia 0, after 2 iterations (the mean squared DTW is 0 twice).
CREATE TABLE warped (id int, v real[]);
INSERT INTO warped VALUES (1, '{0,1,1,2}'), (2, '{0,1,2}'), (3, '{0,0,1,2,2}'),
    (4, '{10,11,12}'), (5, '{10,10,11,12}'), (6, '{10,11,11,12,12}');
SELECT cluster, center, size, inertia
FROM kmeans_fit('warped', 'v', 2, metric => 'dtw', init_centers => '{{0,0,1,2,2},{10,11,11,12,12}}');
SELECT phase, iteration FROM kmeans_last_fit() WHERE phase = 'iterate' ORDER BY step;
SELECT id, cluster, distance
FROM kmeans_labels('warped', 'v', 2, id => 'id', metric => 'dtw',
                   init_centers => '{{0,0,1,2,2},{10,11,11,12,12}}') ORDER BY id;
-- k-means++ separates the groups too: within a group D^2 is 0, so no second seed comes from it
SELECT count(DISTINCT cluster) FILTER (WHERE id <= 3) AS a, count(DISTINCT cluster) FILTER (WHERE id > 3) AS b,
       count(DISTINCT cluster) AS clusters
FROM kmeans_labels('warped', 'v', 2, id => 'id', metric => 'dtw');
-- the Euclidean metric still refuses rows of different lengths
SELECT state FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2)$$);

-- One cluster of [0,0] and [2,2] from [0,0]: the first assignment costs 0 + 8 (mean 4); DBA
-- aligns both on the diagonal and moves the center to [1,1] (its cost falls 4, 2, 2: three
-- steps); then 2 + 2 twice: stopped after 3 iterations with center [1,1], inertia 4, each row at
-- distance sqrt(2).
CREATE TABLE pair (id int, v real[], w float8);
INSERT INTO pair VALUES (1, '{0,0}', 3), (2, '{2,2}', 1);
SELECT cluster, center, size, inertia FROM kmeans_fit('pair', 'v', 1, metric => 'dtw', init_centers => '{{0,0}}');
SELECT max(iteration) AS n_iter FROM kmeans_last_fit() WHERE phase = 'iterate';
SELECT id, distance = sqrt(2::float8) AS sqrt2 FROM kmeans_labels('pair', 'v', 1, id => 'id', metric => 'dtw') ORDER BY id;
-- Weighted 3 : 1 the center is [0.5, 0.5] and the inertia 3 (0.25 + 0.25) + 1 (2.25 + 2.25) = 6,
-- as three copies of [0,0] beside one [2,2] give
SELECT center, size, inertia FROM kmeans_fit('pair', 'v', 1, metric => 'dtw', weight => 'w');
SELECT center, size, inertia
FROM kmeans_fit('SELECT v FROM pair, generate_series(1, w::int)', 'v', 1, metric => 'dtw');

-- Ragged rows [0,0] and [2,2,2]: centers take the longest length, 3.  Whichever row seeds
-- (resampled to 3 samples), DBA gives [1,1,1]: [0,0] then costs 3 cells of 1 and [2,2,2] 3,
-- inertia 6.  From init_centers of width 4, centers have 4 samples: [1,1,1,1], inertia 4 + 4.
CREATE TABLE ragged (id int, v real[]);
INSERT INTO ragged VALUES (1, '{0,0}'), (2, '{2,2,2}');
SELECT center, inertia FROM kmeans_fit('ragged', 'v', 1, metric => 'dtw');
SELECT center, inertia FROM kmeans_fit('ragged', 'v', 1, metric => 'dtw', init_centers => '{{0,0,0,0}}');

-- The elbow: silhouette and Davies-Bouldin under DTW, no Calinski-Harabasz (no means).  Rows of
-- one length, each group warpings of one shape: at k = 2 every row is at DTW 0 from its center
-- and from its group, and far from the other: inertia 0, silhouette 1, Davies-Bouldin 0.
CREATE TABLE shapes (id int, v real[]);
INSERT INTO shapes VALUES (1, '{0,0,1,2,2}'), (2, '{0,1,1,2,2}'), (3, '{0,1,2,2,2}'),
    (4, '{10,10,11,12,12}'), (5, '{10,11,11,12,12}'), (6, '{10,11,12,12,12}');
SELECT k, inertia, silhouette, calinski_harabasz IS NULL AS no_ch, davies_bouldin
FROM kmeans_elbow('shapes', 'v', 2, 2, metric => 'dtw', silhouette_sample => 6);

-- Pruning never changes a result: the same fits with kmeans.prune off and on are bit-identical,
-- labels, distances, centers and inertia, with and without a band (300 noisy sines of 24 to 40
-- samples, k = 40 so that whole 16-lane groups of centers are skipped by LB_Keogh, and k-means++
-- whose D^2 updates prune too).
CREATE TABLE waves AS
SELECT i AS id, (SELECT array_agg((sin(t * (0.2 + (i % 5) * 0.07) + i) +
                                   0.1 * sin(t * 7.3 + i * 1.7))::real ORDER BY t)
                 FROM generate_series(1, 24 + i % 17) t) AS v
FROM generate_series(1, 300) i;
SET kmeans.prune = off;
CREATE TABLE unpruned AS SELECT * FROM kmeans_labels('waves', 'v', 40, id => 'id', metric => 'dtw');
CREATE TABLE unpruned_fit AS SELECT * FROM kmeans_fit('waves', 'v', 40, metric => 'dtw', dtw_band => 3);
-- the DTWs pruning skips, on the CPU (the GPU computes all of them)
SET kmeans.trace = on;
SELECT * FROM try($$SELECT * FROM kmeans_fit('waves', 'v', 40, metric => 'dtw', max_iter => 1, device => 'cpu')$$);
RESET kmeans.prune;
SELECT * FROM try($$SELECT * FROM kmeans_fit('waves', 'v', 40, metric => 'dtw', max_iter => 1, device => 'cpu')$$);
RESET kmeans.trace;
CREATE TABLE pruned AS SELECT * FROM kmeans_labels('waves', 'v', 40, id => 'id', metric => 'dtw');
CREATE TABLE pruned_fit AS SELECT * FROM kmeans_fit('waves', 'v', 40, metric => 'dtw', dtw_band => 3);
SELECT count(*) AS rows, count(*) FILTER (WHERE u.cluster IS DISTINCT FROM p.cluster
                                            OR u.distance IS DISTINCT FROM p.distance) AS differ,
       count(DISTINCT p.cluster) AS clusters
FROM unpruned u FULL JOIN pruned p USING (id);
SELECT count(*) AS clusters, count(*) FILTER (WHERE u.center IS DISTINCT FROM p.center
                                                OR u.inertia IS DISTINCT FROM p.inertia) AS differ
FROM unpruned_fit u FULL JOIN pruned_fit p USING (cluster);

-- The GPU assigns by the same DTW^2: device => 'auto' (the GPU where one is usable, else the
-- CPU) gives device => 'cpu''s labels, distances, centers, sizes and inertia bit for bit, with
-- and without a band, for short series (the GPU's thread-per-pair kernel) and for long ones,
-- 30 series of 70 to 100 samples (its block-per-pair kernel).  Under the emulated GPU
-- (scripts/test.sh) every fit of this file but the two above assigns on the GPU.
CREATE TABLE long_waves AS
SELECT i AS id, (SELECT array_agg(sin(t * (0.05 + (i % 3) * 0.03) + i)::real ORDER BY t)
                 FROM generate_series(1, 70 + i % 31) t) AS v
FROM generate_series(1, 30) i;
CREATE TABLE labels_by_device AS
SELECT dev, src, band, l.*
FROM (VALUES ('cpu'), ('auto')) d(dev), (VALUES ('waves', 40), ('long_waves', 4)) s(src, k),
     (VALUES (-1), (3)) b(band),  -- -1: no band
     LATERAL kmeans_labels(src, 'v', k, id => 'id', metric => 'dtw', dtw_band => nullif(band, -1),
                           device => dev) l;
SELECT src, band, count(*) AS rows,
       count(*) FILTER (WHERE c.cluster IS DISTINCT FROM a.cluster OR c.distance IS DISTINCT FROM a.distance) AS differ,
       count(DISTINCT c.cluster) AS clusters
FROM labels_by_device c JOIN labels_by_device a USING (src, band, id)
WHERE c.dev = 'cpu' AND a.dev = 'auto' GROUP BY src, band ORDER BY src, band;
CREATE TABLE fit_by_device AS
SELECT dev, src, band, f.*
FROM (VALUES ('cpu'), ('auto')) d(dev), (VALUES ('waves', 40), ('long_waves', 4)) s(src, k),
     (VALUES (-1), (3)) b(band),
     LATERAL kmeans_fit(src, 'v', k, metric => 'dtw', dtw_band => nullif(band, -1), device => dev) f;
SELECT src, band, count(*) AS clusters,
       count(*) FILTER (WHERE c.center IS DISTINCT FROM a.center OR c.size IS DISTINCT FROM a.size
                              OR c.inertia IS DISTINCT FROM a.inertia) AS differ
FROM fit_by_device c JOIN fit_by_device a USING (src, band, cluster)
WHERE c.dev = 'cpu' AND a.dev = 'auto' GROUP BY src, band ORDER BY src, band;

-- A saved model labels series of any length from 2 samples, with the band it was fitted with.
SELECT cluster, center FROM kmeans_fit('warped', 'v', 2, metric => 'dtw', model => 'warped_dtw',
                                       init_centers => '{{0,0,1,2,2},{10,11,11,12,12}}');
SELECT metric, dim, options->'dtw_band' AS band, options->'barycenter_iter' AS barycenter_iter
FROM kmeans_models WHERE name = 'warped_dtw';
SELECT kmeans_predict('warped_dtw', '{0,1,2,2,2,2,2,2}') AS a, kmeans_predict('warped_dtw', '{11,12}') AS b,
       (SELECT count(*) FROM warped WHERE kmeans_predict('warped_dtw', v) <> (id > 3)::int) AS mislabelled;
SELECT * FROM try($$SELECT kmeans_predict('warped_dtw', '{1}')$$);
-- [0,0,1] against [0,1,1] and [0.6,0.6,0.6]: 0 and 0.88 without a band (cluster 0), but 1 and
-- 0.36 + 0.36 + 0.16 = 0.88 on the diagonal (radius 0: cluster 1)
SELECT kmeans_predict('{{0,1,1},{0.6,0.6,0.6}}', '{0,0,1}', 'dtw') AS free;
INSERT INTO kmeans_models (name, k, dim, metric, centers, inertia, n_iter, n_rows, options, source)
VALUES ('band0', 2, 3, 'dtw', '{{0,1,1},{0.6,0.6,0.6}}', 0, 1, 1, '{"dtw_band": 0}', 'hand'),
       ('badband', 2, 3, 'dtw', '{{0,1,1},{0.6,0.6,0.6}}', 0, 1, 1, '{"dtw_band": "wide"}', 'hand');
SELECT kmeans_predict('band0', '{0,0,1}') AS band0;
SELECT * FROM try($$SELECT kmeans_predict('badband', '{0,0,1}')$$);

-- Bad input: SQLSTATEs and the offending value.
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'dtw', dtw_band => -1)$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, dtw_band => 2)$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'dtw', barycenter_iter => 0)$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('SELECT 1 AS id, ''{1}''::real[] AS v', 'v', 1, id => 'id', metric => 'dtw')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('SELECT 1 AS id, ''{1,Infinity}''::real[] AS v', 'v', 1, id => 'id', metric => 'dtw')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'dtw', algorithm => 'minibatch')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'dtw', strategy => 'aggregate')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'dtw', init => 'k-means||')$$);
-- device => 'gpu' takes DTW fits: the fit runs, or fails only where no GPU is usable
SELECT state = '00000' OR (state = '0A000' AND message = 'device "gpu" is not available') AS gpu_or_none
FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'dtw', device => 'gpu')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'dtw', init_centers => '{{0,1},{2,3},{4,5}}')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 7, metric => 'dtw')$$);
SELECT * FROM try($$SELECT kmeans_step(v, '{{0,1,2}}', 'dtw') FROM warped$$);
SELECT * FROM try($$SELECT kmeans_agg(v, 2, '{"metric": "dtw"}') FROM warped$$);
SELECT * FROM try($$SELECT kmeans_cluster(v, 2, '{"metric": "dtw"}') OVER () FROM warped$$);

-- Cancellation: a long DTW fit stops at statement_timeout, and the session goes on.
CREATE TABLE long_series AS
SELECT i AS id, (SELECT array_agg(sin(t * 0.05 * (1 + i % 7) + i)::real) FROM generate_series(1, 400) t) AS v
FROM generate_series(1, 2000) i;
SET statement_timeout = '500ms';
SELECT count(*) FROM kmeans_fit('long_series', 'v', 20, metric => 'dtw');
RESET statement_timeout;
SELECT count(*) FROM kmeans_fit('warped', 'v', 2, metric => 'dtw');

DROP SCHEMA test_dtw CASCADE;
DELETE FROM kmeans_models WHERE name IN ('warped_dtw', 'band0', 'badband');
