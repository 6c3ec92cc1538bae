-- metric => 'softdtw': series clustered by soft-DTW (Cuturi & Blondel 2017) with gamma, centers
-- the soft-DTW barycenters found by L-BFGS.  Expected values are worked out by hand in the
-- comments; tslearn's TimeSeriesKMeans is the reference in test/reference/check_softdtw_tslearn.py.
CREATE SCHEMA test_softdtw;
SET search_path = test_softdtw, public;
SET extra_float_digits = 0;
\i test/sql/include/try.sql

-- Values by hand, with R(i, j) = (x_i - y_j)^2 + softmin(R(i-1, j), R(i, j-1), R(i-1, j-1)) and
-- softmin(a, b, c) = -gamma ln(e^(-a/gamma) + e^(-b/gamma) + e^(-c/gamma)):
-- [0,0] against [0,0]: R(0,0) = 0, R(0,1) = R(1,0) = 0 (one finite neighbour, 0), and
-- R(1,1) = 0 + softmin(0, 0, 0) = -gamma ln 3.  With radius 0, equal lengths keep the
-- diagonal, a single path: [0,1] against [0,0] costs 0 + 1 = 1, and [1,2,3] against [1,3,5]
-- 0 + 1 + 4 = 5, whatever gamma.  As gamma falls soft-DTW tends to DTW^2 from below.
SELECT kmeans_softdtw('{0,0}', '{0,0}') = -ln(3::float8) AS minus_ln3,
       kmeans_softdtw('{0,0}', '{0,0}', 2) = -2 * ln(3::float8) AS minus_2ln3,
       kmeans_softdtw('{0,1}', '{0,0}', 1, 0) AS band0_one,
       kmeans_softdtw('{1,2,3}', '{1,3,5}', 1, 0) AS five,
       kmeans_softdtw('{1,2,3}', '{1,3,5}', 0.5, 0) AS five_again,
       kmeans_softdtw(NULL, '{1,2}') IS NULL AS null_in_null_out;
SELECT abs(kmeans_softdtw('{1,2,3,4,5}', '{5,4,3,2,1}', 0.001) - kmeans_dtw('{1,2,3,4,5}', '{5,4,3,2,1}') ^ 2) < 0.01 AS near_dtw2,
       kmeans_softdtw('{1,2,3,4,5}', '{5,4,3,2,1}', 0.001) <= kmeans_dtw('{1,2,3,4,5}', '{5,4,3,2,1}') ^ 2 AS below_dtw2,
       kmeans_softdtw('{0,0,1}', '{0,1,1,1}') = kmeans_softdtw('{0,1,1,1}', '{0,0,1}') AS symmetric;
SELECT * FROM try($$SELECT kmeans_softdtw('{1,2}', '{1,2}', 0)$$);
SELECT * FROM try($$SELECT kmeans_softdtw('{1,2}', '{1,2}', -1)$$);
SELECT * FROM try($$SELECT kmeans_softdtw('{1,2}', '{1,2}', 'NaN')$$);
SELECT * FROM try($$SELECT kmeans_softdtw('{1,2}', '{1,2}', 'Infinity')$$);
SELECT * FROM try($$SELECT kmeans_softdtw('{1,2}', '{1,2}', NULL)$$);
SELECT * FROM try($$SELECT kmeans_softdtw('{1,2}', '{1,2}', 1, -1)$$);
SELECT * FROM try($$SELECT kmeans_softdtw('{1}', '{1,2}')$$);
SELECT * FROM try($$SELECT kmeans_softdtw('{1,NaN}', '{1,2}')$$);

-- A barycenter by hand.  With radius 0 two series of one length have a single warping path,
-- so soft-DTW is the squared Euclidean distance and the barycenter is the (weighted) mean:
-- [0,0] and [2,2] give the center [1,1] and inertia 2 + 2 = 4; weighted 3 : 1, the center
-- [0.5,0.5] and inertia 3 (0.25 + 0.25) + 1 (2.25 + 2.25) = 6.  L-BFGS finds them to its
-- tolerance, well within the rounding shown.
CREATE TABLE pair (id int, v real[], w float8);
INSERT INTO pair VALUES (1, '{0,0}', 3), (2, '{2,2}', 1);
SELECT cluster, round(center[1]::numeric, 4) AS c1, round(center[2]::numeric, 4) AS c2, size,
       round(inertia::numeric, 4) AS inertia
FROM kmeans_fit('pair', 'v', 1, metric => 'softdtw', dtw_band => 0, init_centers => '{{0,0}}');
SELECT cluster, round(center[1]::numeric, 4) AS c1, round(center[2]::numeric, 4) AS c2, size,
       round(inertia::numeric, 4) AS inertia
FROM kmeans_fit('pair', 'v', 1, metric => 'softdtw', dtw_band => 0, weight => 'w', init_centers => '{{0,0}}');

-- Two groups of warped copies of [0,1,2] and [10,11,12], of three lengths: every row's soft-DTW
-- to a center of its own group is far below its value to the other group's (about 100 per
-- sample apart), so the groups are the clusters from any seeds; labels, the saved model's
-- predictions and the distances (soft-DTW values, which can be negative) agree.
CREATE TABLE warped (id int, v real[]);
INSERT INTO warped VALUES (1, '{0,1,1,2}'), (2, '{0,1,2}'), (3, '{0,0,1,2,2}'),
    (4, '{10,11,12}'), (5, '{10,10,11,12}'), (6, '{10,11,11,12,12}');
SELECT count(DISTINCT cluster) FILTER (WHERE id <= 3) AS a, count(DISTINCT cluster) FILTER (WHERE id > 3) AS b,
       count(DISTINCT cluster) AS clusters
FROM kmeans_labels('warped', 'v', 2, id => 'id', metric => 'softdtw');
SELECT cluster, array_length(center, 1) AS len, size
FROM kmeans_fit('warped', 'v', 2, metric => 'softdtw', gamma => 0.5, model => 'warped_soft',
                init_centers => '{{0,0,1,2,2},{10,11,11,12,12}}');
SELECT metric, dim, options->'gamma' AS gamma, options->'barycenter_iter' AS barycenter_iter
FROM kmeans_models WHERE name = 'warped_soft';
SELECT (SELECT count(*) FROM warped WHERE kmeans_predict('warped_soft', v) <> (id > 3)::int) AS mislabelled,
       kmeans_predict('warped_soft', '{0,1,2,2,2,2,2,2}') AS a, kmeans_predict('warped_soft', '{11,12}') AS b;
-- each row's distance is its soft-DTW to its center: the fit's inertia is their sum
SELECT abs(sum(l.distance) - (SELECT sum(inertia) FROM kmeans_fit('warped', 'v', 2, metric => 'softdtw', gamma => 0.5,
                                                                   init_centers => '{{0,0,1,2,2},{10,11,11,12,12}}')))
       < 1e-4 AS distances_sum_to_inertia
FROM kmeans_labels('warped', 'v', 2, id => 'id', metric => 'softdtw', gamma => 0.5,
                   init_centers => '{{0,0,1,2,2},{10,11,11,12,12}}') l;
-- the model's gamma labels: [0,0,1] against centers [0,1,1] and [0.6,0.6,0.6] is 0 against 0.88
-- by DTW^2, but soft-DTW with a large gamma counts every path, which favours the flat center
INSERT INTO kmeans_models (name, k, dim, metric, centers, inertia, n_iter, n_rows, options, source)
VALUES ('soft_small', 2, 3, 'softdtw', '{{0,1,1},{0.6,0.6,0.6}}', 0, 1, 1, '{"gamma": 0.01}', 'hand'),
       ('soft_large', 2, 3, 'softdtw', '{{0,1,1},{0.6,0.6,0.6}}', 0, 1, 1, '{"gamma": 10}', 'hand'),
       ('soft_bad', 2, 3, 'softdtw', '{{0,1,1},{0.6,0.6,0.6}}', 0, 1, 1, '{"gamma": -1}', 'hand'),
       ('soft_none', 2, 3, 'softdtw', '{{0,1,1},{0.6,0.6,0.6}}', 0, 1, 1, '{}', 'hand');
SELECT kmeans_predict('soft_small', '{0,0,1}') AS small, kmeans_predict('soft_large', '{0,0,1}') AS large,
       kmeans_softdtw('{0,0,1}', '{0,1,1}', 10) > kmeans_softdtw('{0,0,1}', '{0.6,0.6,0.6}', 10) AS flat_nearer;
SELECT * FROM try($$SELECT kmeans_predict('soft_bad', '{0,0,1}')$$);
SELECT * FROM try($$SELECT kmeans_predict('soft_none', '{0,0,1}')$$);
SELECT kmeans_predict('{{0,1,1},{0.6,0.6,0.6}}', '{0,0,1}', 'softdtw') AS gamma1;

-- The same bits on one thread and on two (200 noisy sines, lengths 30 to 45).
CREATE TABLE waves AS
SELECT i AS id, (SELECT array_agg((sin(t * (0.2 + (i % 5) * 0.07) + i) +
                                   0.1 * sin(t * 7.3 + i * 1.7))::real ORDER BY t)
                 FROM generate_series(1, 30 + i % 16) t) AS v
FROM generate_series(1, 200) i;
SET kmeans.threads = 1;
CREATE TABLE one AS SELECT * FROM kmeans_fit('waves', 'v', 5, metric => 'softdtw', max_iter => 3, dtw_band => 4);
SET kmeans.threads = 2;
CREATE TABLE two AS SELECT * FROM kmeans_fit('waves', 'v', 5, metric => 'softdtw', max_iter => 3, dtw_band => 4);
RESET kmeans.threads;
SELECT count(*) AS clusters, count(*) FILTER (WHERE o.center IS DISTINCT FROM t.center
                                                OR o.inertia IS DISTINCT FROM t.inertia
                                                OR o.size IS DISTINCT FROM t.size) AS differ
FROM one o FULL JOIN two t USING (cluster);

-- The elbow under soft-DTW: the silhouette by tslearn's normalised soft-DTW; no Calinski-Harabasz
-- and no Davies-Bouldin (soft-DTW is no distance).  The two shapes of 'shapes' are far apart and
-- each row is close to its own group, so the silhouette at k = 2 is near 1.
CREATE TABLE shapes (id int, v real[]);
INSERT INTO shapes VALUES (1, '{0,0,1,2,2}'), (2, '{0,1,1,2,2}'), (3, '{0,1,2,2,2}'),
    (4, '{10,10,11,12,12}'), (5, '{10,11,11,12,12}'), (6, '{10,11,12,12,12}');
SELECT k, silhouette > 0.9 AS separated, calinski_harabasz IS NULL AS no_ch, davies_bouldin IS NULL AS no_db
FROM kmeans_elbow('shapes', 'v', 2, 3, metric => 'softdtw', gamma => 0.1, silhouette_sample => 6) ORDER BY k;

-- Bad input: SQLSTATEs and the offending value.
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'softdtw', gamma => 0)$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'softdtw', gamma => 'NaN')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'dtw', gamma => 1)$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, gamma => 1)$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'softdtw', dtw_band => -1)$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'softdtw', barycenter_iter => 0)$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('SELECT 1 AS id, ''{1}''::real[] AS v', 'v', 1, id => 'id', metric => 'softdtw')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'softdtw', algorithm => 'minibatch')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'softdtw', strategy => 'aggregate')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'softdtw', init => 'k-means||')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('warped', 'v', 2, metric => 'softdtw', device => 'gpu')$$);
SELECT * FROM try($$SELECT kmeans_step(v, '{{0,1,2}}', 'softdtw') FROM warped$$);
SELECT * FROM try($$SELECT kmeans_agg(v, 2, '{"metric": "softdtw"}') FROM warped$$);
SELECT * FROM try($$SELECT kmeans_agg(v, 2, '{"gamma": 1}') FROM warped$$);

-- Cancellation: a long soft-DTW fit stops at statement_timeout, and the session goes on.
CREATE TABLE long_series AS
SELECT i AS id, (SELECT array_agg(sin(t * 0.05 * (1 + i % 7) + i)::real) FROM generate_series(1, 300) t) AS v
FROM generate_series(1, 1000) i;
SET statement_timeout = '500ms';
SELECT count(*) FROM kmeans_fit('long_series', 'v', 10, metric => 'softdtw');
RESET statement_timeout;
SELECT count(*) FROM kmeans_fit('warped', 'v', 2, metric => 'softdtw');

RESET search_path;
DROP SCHEMA test_softdtw CASCADE;
