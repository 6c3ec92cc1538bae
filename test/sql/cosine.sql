-- metric => 'cosine': spherical k-means.  Rows count by direction only, centers are the
-- normalised means of their rows' unit vectors, a row's distance is 1 - cos, and the inertia
-- sums it.  Expected values are worked out by hand below.
CREATE SCHEMA test_cosine;
SET search_path = test_cosine, public;
SET extra_float_digits = 0;
\i test/sql/include/try.sql

-- (1,0) and (10,0) point the same way; so do (0,2) and (0,5); (2,1) is 26.6 degrees from the
-- first axis.  From centers (1,0) and (0,1): (1,0), (10,0), (2,1) go to the first, whose unit
-- rows (1,0), (1,0), (2,1)/sqrt(5) have the mean ((2 + 2/sqrt(5)) / 3, (1/sqrt(5)) / 3) =
-- (0.964809, 0.149071), normalised (0.988273, 0.152697); the labels then stay.  Distances:
-- 1 - 0.988273 = 0.011727 for (1,0) and (10,0), 1 - (2*0.988273 + 0.152697)/sqrt(5) = 0.047774
-- for (2,1); inertia 2*0.011727 + 0.047774 = 0.071227.  The second center is (0,1), inertia 0.
CREATE TABLE dirs (id int, v real[]);
INSERT INTO dirs VALUES (1, '{1,0}'), (2, '{10,0}'), (3, '{0,2}'), (4, '{0,5}'), (5, '{2,1}');
SELECT cluster, center, size, round(inertia::numeric, 6) AS inertia
FROM kmeans_fit('dirs', 'v', 2, init_centers => '{{1,0},{0,1}}', metric => 'cosine');
SELECT id, cluster, round(distance::numeric, 6) AS distance
FROM kmeans_labels('dirs', 'v', 2, id => 'id', init_centers => '{{1,0},{0,1}}', metric => 'cosine')
ORDER BY id;
-- starting centers are taken for their direction: {{5,0},{0,0.5}} is the same start
SELECT cluster, center FROM kmeans_fit('dirs', 'v', 2, init_centers => '{{5,0},{0,0.5}}',
                                       metric => 'cosine');
-- Euclidean, the same rows fall otherwise: (10,0) is far from everything
SELECT cluster, center, size FROM kmeans_fit('dirs', 'v', 2, init_centers => '{{1,0},{0,1}}');
-- k-means++ finds the two directions too, and the model remembers its metric
SELECT cluster, size FROM kmeans_fit('dirs', 'v', 2, metric => 'cosine', model => 'dirs_cos')
ORDER BY size;
SELECT metric, options->>'metric' AS option FROM kmeans_models WHERE name = 'dirs_cos';

-- kmeans_predict labels by the largest cosine under a cosine model: (3,4) is nearer (1,0) than
-- (0,10) by Euclidean distance (sqrt 20 < sqrt 45), and nearer (0,10) by angle (cos 0.8 > 0.6)
SELECT kmeans_predict('{{1,0},{0,10}}'::real[], '{3,4}') AS euclidean,
       kmeans_predict('{{1,0},{0,10}}'::real[], '{3,4}', 'euclidean') AS euclidean_named,
       kmeans_predict('{{1,0},{0,10}}'::real[], '{3,4}', 'cosine') AS cosine;
SELECT id, kmeans_predict('dirs_cos', v) = l.cluster AS agrees
FROM dirs JOIN kmeans_labels('dirs', 'v', 2, id => 'id', metric => 'cosine') l USING (id)
ORDER BY id;

-- kmeans_elbow: inertia in 1 - cos, silhouette with the cosine distance.  Rows at angles 0 and
-- 0.1 (p1, p2) and pi/2 and pi/2 + 0.1 (q1, q2).  k = 1: the center bisects them at pi/4 + 0.05,
-- so two rows are pi/4 + 0.05 away and two pi/4 - 0.05: inertia
-- 2 (1 - cos(0.835398)) + 2 (1 - cos(0.735398)) = 2 (0.329118) + 2 (0.258436) = 1.175108.  k = 2: each row is 0.05 from its
-- pair's bisector: 4 (1 - cos 0.05) = 0.004999.  Silhouette: a = 1 - cos 0.1 = 0.004996 for every
-- row; b for p1 and q2 is (1 + (1 + sin 0.1)) / 2 = 1.049917, for p2 and q1 (1 + (1 - sin 0.1)) / 2
-- = 0.950083; the mean of (b - a) / b is 0.994992 (scikit-learn's silhouette_score with
-- metric='cosine' gives the same).
CREATE TABLE pairs (v real[]);
INSERT INTO pairs VALUES (ARRAY[1, 0]), (ARRAY[cos(0.1), sin(0.1)]), (ARRAY[0, 1]),
    (ARRAY[-sin(0.1), cos(0.1)]);
SELECT k, round(inertia::numeric, 6) AS inertia, round(silhouette::numeric, 6) AS silhouette
FROM kmeans_elbow('pairs', 'v', 1, 2, metric => 'cosine') ORDER BY k;

-- Errors: a row of length 0 (named, with its id), a starting center of length 0, unknown and
-- NULL metrics, a vector of length 0 to label.
INSERT INTO dirs VALUES (6, '{0,0}');
SELECT * FROM try($$SELECT * FROM kmeans_fit('dirs', 'v', 2, id => 'id', metric => 'cosine')$$);
DELETE FROM dirs WHERE id = 6;
SELECT * FROM try($$SELECT * FROM kmeans_fit('dirs', 'v', 2, init_centers => '{{1,0},{0,0}}', metric => 'cosine')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('dirs', 'v', 2, metric => 'manhattan')$$);
SELECT * FROM try($$SELECT * FROM kmeans_elbow('dirs', 'v', 1, 2, metric => NULL)$$);
SELECT * FROM try($$SELECT kmeans_predict('{{1,0},{0,1}}', '{0,0}', 'cosine')$$);
SELECT * FROM try($$SELECT kmeans_predict('{{1,0},{0,1}}', '{1,0}', 'Cosine')$$);
SELECT * FROM try($$SELECT kmeans_predict('dirs_cos', '{0,0}')$$);

DELETE FROM kmeans_models WHERE name = 'dirs_cos';
DROP SCHEMA test_cosine CASCADE;
