-- Weights: weight => 'column or expression' in kmeans_fit, kmeans_labels and kmeans_elbow.  A
-- row of weight w counts w times in its center's mean and in the inertia, and k-means++ draws
-- rows in proportion to w times the squared distance.  Expected values are worked out by hand.
CREATE SCHEMA test_weights;
SET search_path = test_weights, public;
SET extra_float_digits = 0;
-- weighted fits run on the CPU (the GPU backend does not weigh rows yet), also where the suite
-- runs with kmeans.device = 'gpu'
SET kmeans.device = 'auto';
\i test/sql/include/try.sql

-- 0, 1 and 10 with weights 1, 3 and 1, from centers 0 and 10: 0 and 1 go to the first, whose
-- mean is (0*1 + 1*3) / 4 = 0.75; the labels then stay.  Its inertia is
-- 1*0.75^2 + 3*0.25^2 = 0.5625 + 0.1875 = 0.75; size counts rows, not weight.
CREATE TABLE three (id int, v real[], w float8);
INSERT INTO three VALUES (1, '{0}', 1), (2, '{1}', 3), (3, '{10}', 1);
SELECT * FROM kmeans_fit('three', 'v', 2, init_centers => '{{0},{10}}', weight => 'w');
-- unweighted, the first center is the plain mean 0.5, inertia 0.25 + 0.25
SELECT * FROM kmeans_fit('three', 'v', 2, init_centers => '{{0},{10}}');
-- distances stay unweighted: row 2 is 0.25 from its center
SELECT * FROM kmeans_labels('three', 'v', 2, id => 'id', init_centers => '{{0},{10}}',
                            weight => 'w') ORDER BY id;
-- the weight may be an expression: w * 2 changes no mean and doubles the inertia
SELECT cluster, center, inertia FROM kmeans_fit('three', 'v', 2, init_centers => '{{0},{10}}',
                                                weight => 'w * 2');
-- k = 1: the weighted mean (0 + 3 + 10) / 5 = 2.6, inertia 6.76 + 3*2.56 + 54.76 = 69.2 (here
-- from the float32 center 2.6); the regclass form takes weights too
SELECT * FROM kmeans_fit('three'::regclass, 'v', 1, weight => 'w');

-- A weight of 2 is the row twice: the same centers and inertia as the table with row 2 doubled.
CREATE TABLE doubled AS SELECT id, v, 1::float8 AS w FROM three UNION ALL SELECT 4, '{1}', 1;
UPDATE three SET w = CASE id WHEN 2 THEN 2 ELSE 1 END;
SELECT a.cluster, a.center = b.center AS same_center, a.inertia = b.inertia AS same_inertia
FROM kmeans_fit('three', 'v', 2, init_centers => '{{0},{10}}', weight => 'w') a
JOIN kmeans_fit('doubled', 'v', 2, init_centers => '{{0},{10}}') b USING (cluster)
ORDER BY cluster;

-- A row of weight 0 is labelled but moves no center: 0 and 2 weigh 1, 100 weighs 0, so k = 1
-- gives center 1 and inertia 1 + 1 (+ 0 * 99^2); size counts all three rows.
CREATE TABLE zero (id int, v real[], w float8);
INSERT INTO zero VALUES (1, '{0}', 1), (2, '{2}', 1), (3, '{100}', 0);
SELECT * FROM kmeans_fit('zero', 'v', 1, weight => 'w');
SELECT * FROM kmeans_labels('zero', 'v', 1, id => 'id', weight => 'w') ORDER BY id;
-- k-means++ and random seeding never start from a row of weight 0: two groups around 0.1 and
-- 10.1, and far rows of weight 0 that unweighted k-means++ would pick first.  Every seed ends at
-- the two groups' means (tol => 0: the far rows make the data's variance, which tol scales,
-- large enough to stop a fit after one step).
CREATE TABLE outliers (v real[], w float8);
INSERT INTO outliers VALUES ('{0}', 1), ('{0.1}', 1), ('{0.2}', 1), ('{10}', 1), ('{10.1}', 1),
    ('{10.2}', 1), ('{1000}', 0), ('{2000}', 0), ('{-3000}', 0);
SELECT init, count(*) AS fits,
       count(*) FILTER (WHERE centers = '{0.1,10.1}') AS at_the_groups
FROM (SELECT init, seed, array_agg(round(center[1]::numeric, 3) ORDER BY center[1]) AS centers
      FROM generate_series(0, 19) seed, unnest(ARRAY['k-means++', 'random']) init,
           kmeans_fit('outliers', 'v', 2, init => init, seed => seed, tol => 0, weight => 'w')
      GROUP BY init, seed) f
GROUP BY init ORDER BY init;
-- unweighted, some seeds do start from the far rows
SELECT count(*) FILTER (WHERE c > 100) > 0 AS some_far_center
FROM generate_series(0, 19) seed,
     LATERAL (SELECT max(abs(center[1])) AS c FROM kmeans_fit('outliers', 'v', 2, seed => seed,
                                                              max_iter => 1)) f;

-- kmeans_elbow: weighted inertia per k (k = 1 is 69.2 as above with weights 1, 3, 1; k = 2 is
-- 0.75; k = 3 is 0); the quality indices weigh every row alike, as scikit-learn's do.
UPDATE three SET w = CASE id WHEN 2 THEN 3 ELSE 1 END;
SELECT k, round(inertia::numeric, 4) AS inertia, calinski_harabasz IS NOT NULL AS ch
FROM kmeans_elbow('three', 'v', 1, 2, weight => 'w', silhouette_sample => 0) ORDER BY k;

-- A saved model records its weight.
SELECT count(*) FROM kmeans_fit('three', 'v', 2, weight => 'w', model => 'weighted');
SELECT options->>'weight' AS weight, inertia FROM kmeans_models WHERE name = 'weighted';
DELETE FROM kmeans_models WHERE name = 'weighted';

-- Bad weights: NULL, NaN, negative, infinite, beyond float4, each naming the row and its id.
CREATE TABLE bad (id int, v real[], w float8);
INSERT INTO bad VALUES (1, '{0}', 1), (2, '{1}', 1), (3, '{2}', 1);
SELECT * FROM try($$SELECT * FROM kmeans_fit('bad', 'v', 2, weight => 'CASE id WHEN 2 THEN NULL ELSE w END')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('bad', 'v', 2, id => 'id', weight => 'CASE id WHEN 3 THEN ''NaN'' ELSE w END')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('bad', 'v', 2, weight => '-w')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('bad', 'v', 2, weight => 'CASE id WHEN 1 THEN ''Infinity'' ELSE w END')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('bad', 'v', 2, weight => 'w * 1e300')$$);
-- weights whose products with the squared distances overflow float32
SELECT * FROM try($$SELECT * FROM kmeans_fit('bad', 'v', 2, weight => 'w * 1e38')$$);
-- a NULL vector's row is skipped with its weight, whatever the weight
INSERT INTO bad VALUES (4, NULL, NULL);
SELECT count(*) FROM kmeans_fit('bad', 'v', 2, weight => 'w');
-- k beyond the rows of positive weight
SELECT * FROM try($$SELECT * FROM kmeans_fit('bad', 'v', 3, weight => 'CASE id WHEN 2 THEN 0 ELSE w END')$$);
SELECT * FROM try($$SELECT * FROM kmeans_elbow('bad', 'v', 1, 3, weight => '0')$$);
-- not one expression, empty, of a type that is not a number
SELECT * FROM try($$SELECT * FROM kmeans_fit('bad', 'v', 2, weight => 'w) FROM bad; SELECT (1')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('bad', 'v', 2, weight => '')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('bad', 'v', 2, weight => 'v')$$);
-- the GPU does not weigh rows yet: asked for explicitly, it is an error
SELECT * FROM try($$SELECT * FROM kmeans_fit('bad', 'v', 2, weight => 'w', device => 'gpu')$$);

DROP SCHEMA test_weights CASCADE;
