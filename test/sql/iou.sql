-- metric => 'iou': boxes (w, h) clustered by 1 - IoU of boxes at a common corner, as anchor
-- boxes are chosen for detectors (Redmon & Farhadi 2017).  Centers are the mean width and
-- height of their boxes, numbered by area; distances and inertia are in 1 - IoU.  Expected
-- values are worked out by hand below.
CREATE SCHEMA test_iou;
SET search_path = test_iou, public;
SET extra_float_digits = 0;
\i test/sql/include/try.sql

-- IoU distances by hand, read off kmeans_labels: the one center is (2, 2), the only row of
-- positive weight (weights run on the CPU, also where the suite runs on the GPU).  (1,1) is nested in it: intersection 1, union 4, 1 - 1/4 = 0.75; an equal
-- box: 0; (4,1) and (1,4): intersection 2 x 1 = 2, union 4 + 4 - 2 = 6, 1 - 1/3 = 0.666667.
CREATE TABLE boxes (id int, v real[], w float8);
INSERT INTO boxes VALUES (1, '{2,2}', 1), (2, '{1,1}', 0), (3, '{2,2}', 0), (4, '{4,1}', 0),
    (5, '{1,4}', 0);
SELECT id, cluster, round(distance::numeric, 6) AS distance
FROM kmeans_labels('boxes', 'v', 1, id => 'id', weight => 'w', metric => 'iou', device => 'cpu')
ORDER BY id;
-- boxes of different aspect: (4,1) against (1,4) share 1 x 1 of a union 4 + 4 - 1 = 7: 6/7
SELECT id, round(distance::numeric, 6) AS distance
FROM kmeans_labels('SELECT * FROM boxes WHERE id IN (4, 5)', 'v', 1, id => 'id',
                   weight => 'CASE id WHEN 4 THEN 1 ELSE 0 END', metric => 'iou', device => 'cpu')
ORDER BY id;

-- A fit: (1,1), (1,2) and (10,10), (12,10), started from (10,10) and (1,1).  The means are
-- (1, 1.5) and (11, 10); by area, (1, 1.5) is anchor 0 whatever the start.  Inertia: (1,1) to
-- (1,1.5) is 1 - 1/1.5 = 1/3, (1,2) is 1 - 1.5/2 = 0.25, together 0.583333; (10,10) to (11,10)
-- is 1 - 100/110 = 0.090909, (12,10) is 1 - 110/120 = 0.083333, together 0.174242.
CREATE TABLE two (id int, v real[]);
INSERT INTO two VALUES (1, '{1,1}'), (2, '{1,2}'), (3, '{10,10}'), (4, '{12,10}');
SELECT cluster, center, size, round(inertia::numeric, 6) AS inertia
FROM kmeans_fit('two', 'v', 2, init_centers => '{{10,10},{1,1}}', metric => 'iou');
SELECT id, cluster FROM kmeans_labels('two', 'v', 2, id => 'id', init_centers => '{{10,10},{1,1}}',
                                      metric => 'iou') ORDER BY id;
-- k-means++ finds the same anchors; a saved model labels new boxes by the largest IoU: (5,5)
-- overlaps (11,10) by 25 / 110 and (1,1.5) by 1.5 / 25, so anchor 1
SELECT cluster, center FROM kmeans_fit('two', 'v', 2, metric => 'iou', model => 'anchors');
SELECT metric, kmeans_predict('anchors', '{5,5}') AS big, kmeans_predict('anchors', '{1,1}') AS small
FROM kmeans_models WHERE name = 'anchors';
-- and an array of anchors by name: (3,3) is nearer (1,1) than (6,1) by Euclidean distance
-- (sqrt 8 < sqrt 13) and nearer (6,1) by IoU (3 / (9 + 6 - 3) = 0.25 > 1/9 = 0.111)
SELECT kmeans_predict('{{1,1},{6,1}}'::real[], '{3,3}') AS euclidean,
       kmeans_predict('{{1,1},{6,1}}'::real[], '{3,3}', 'iou') AS iou;
-- the elbow's inertia in 1 - IoU, and the silhouette with it: k = 2 of the four boxes
SELECT k, round(inertia::numeric, 6) AS inertia, silhouette > 0.5 AS separated
FROM kmeans_elbow('two', 'v', 1, 2, metric => 'iou') ORDER BY k;

-- center => 'median': each anchor the median width and height of its boxes.  From (1,1) and
-- (20,20): (1,1), (1,2), (1,10) give the median (1, 2) where the mean is (1, 4.33); (20,20),
-- (21,22), (40,20), (30,25) give widths 20, 21, 30, 40 and heights 20, 20, 22, 25, whose
-- medians are the means of the middle two: (25.5, 21).  The labels then stay.
CREATE TABLE med (v real[]);
INSERT INTO med VALUES ('{1,1}'), ('{1,2}'), ('{1,10}'), ('{20,20}'), ('{21,22}'), ('{40,20}'),
    ('{30,25}');
SELECT cluster, center, size FROM kmeans_fit('med', 'v', 2, init_centers => '{{1,1},{20,20}}',
                                             metric => 'iou', center => 'median');
SELECT cluster, center, size FROM kmeans_fit('med', 'v', 2, init_centers => '{{1,1},{20,20}}',
                                             metric => 'iou');
SELECT * FROM try($$SELECT * FROM kmeans_fit('med', 'v', 2, center => 'median')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('med', 'v', 2, metric => 'iou', center => 'mode')$$);
SELECT * FROM try($$SELECT * FROM kmeans_fit('med', 'v', 2, metric => 'iou', center => 'median', weight => '1')$$);

-- Errors: rows that are not boxes (3 values; a width of 0; a negative height), named with
-- their ids; starting centers and vectors to label that are not boxes.
SELECT * FROM try($$SELECT * FROM kmeans_fit('SELECT 1 AS id, ''{1,2,3}''::real[] AS v', 'v', 1, id => 'id', metric => 'iou')$$);
INSERT INTO two VALUES (5, '{0,3}');
SELECT * FROM try($$SELECT * FROM kmeans_fit('two', 'v', 2, id => 'id', metric => 'iou')$$);
UPDATE two SET v = '{3,-1}' WHERE id = 5;
SELECT * FROM try($$SELECT * FROM kmeans_fit('two', 'v', 2, id => 'id', metric => 'iou')$$);
DELETE FROM two WHERE id = 5;
SELECT * FROM try($$SELECT * FROM kmeans_fit('two', 'v', 2, init_centers => '{{1,1},{0,1}}', metric => 'iou')$$);
SELECT * FROM try($$SELECT kmeans_predict('anchors', '{0,1}')$$);
SELECT * FROM try($$SELECT kmeans_predict('{{1,1},{6,1}}'::real[], '{1,1,1}', 'iou')$$);

DELETE FROM kmeans_models WHERE name = 'anchors';
DROP SCHEMA test_iou CASCADE;
