-- kmeans_elbow: every k of a range in shared passes, with quality indices and a suggested k.
CREATE SCHEMA test_elbow;
SET search_path = test_elbow, public;
SET extra_float_digits = 0;

-- Four points, two obvious pairs: {0,1} and {10,11}.  By hand, for k = 2:
--   inertia 0.25 * 4 = 1, mean 0.25;
--   silhouette: point 0 has a = 1 and b = (10 + 11) / 2 = 10.5, so (10.5 - 1) / 10.5;
--     point 1 has a = 1, b = (9 + 10) / 2 = 9.5, so 8.5 / 9.5; 10 and 11 mirror them:
--     mean (9.5 / 10.5 + 8.5 / 9.5) / 2 = 0.899749373...;
--   Calinski-Harabasz: between-group 2 * 5^2 * 2 = 100 over k - 1 = 1, within 1 over
--     n - k = 2: 100 / 0.5 = 200;
--   Davies-Bouldin: spread 0.5 in each cluster, centers 10 apart: (0.5 + 0.5) / 10 = 0.1.
-- For k = 1 the indices are undefined (NULL); for k = 3 the silhouette needs k < n.
CREATE TABLE pairs (v real[]);
INSERT INTO pairs VALUES ('{0}'), ('{1}'), ('{10}'), ('{11}');
SELECT k, inertia, mean_inertia, n_iter, round(silhouette::numeric, 9) AS silhouette,
       calinski_harabasz, davies_bouldin
FROM kmeans_elbow('pairs', 'v', 1, 3) ORDER BY k;

-- The seed shape on synthetic profiles: three provinces of smooth depth profiles.
CREATE TABLE profiles AS
SELECT i AS id,
       ARRAY(SELECT (CASE i % 3 WHEN 0 THEN -2 + z / 100.0
                                WHEN 1 THEN 2 * exp(-z / 150.0)
                                ELSE -3 * exp(-(((z - 200) / 90.0) ^ 2)) END
                     + 0.3 * sin(i * 12.9898 + z * 78.233))::real
             FROM generate_series(60, 400, 40) z) AS v
FROM generate_series(1, 3000) i;

-- Every k of the curve is exactly the fit kmeans_fit gives for that k with the same options:
-- inertia and n_iter equal, for each seeding method and with a step.
CREATE TABLE fit_curve AS
SELECT k, sum(f.inertia) AS inertia
FROM generate_series(2, 12) k, LATERAL kmeans_fit('profiles', 'v', k, model => 'elbow_k' || k) f
GROUP BY k;
ALTER TABLE fit_curve ADD n_iter int;
UPDATE fit_curve f SET n_iter = m.n_iter FROM kmeans_models m WHERE m.name = 'elbow_k' || f.k;
SELECT e.k, e.inertia = f.inertia AS same_inertia, e.n_iter = f.n_iter AS same_n_iter, e.elbow
FROM kmeans_elbow('profiles', 'v', 2, 12) e JOIN fit_curve f USING (k) ORDER BY k;
DELETE FROM kmeans_models WHERE name LIKE 'elbow_k%';

SELECT count(*) AS ks,
       count(*) FILTER (WHERE e.inertia = (SELECT sum(inertia) FROM kmeans_fit('profiles', 'v', e.k,
                                               init => 'random', seed => 4, max_iter => 5))) AS same
FROM kmeans_elbow('profiles', 'v', 3, 9, init => 'random', seed => 4, max_iter => 5) e;

SELECT array_agg(k ORDER BY k) AS ks,
       bool_and(e.inertia = (SELECT sum(inertia) FROM kmeans_fit('profiles', 'v', e.k, seed => 9))) AS same
FROM kmeans_elbow('profiles', 'v', 2, 20, k_step => 6, seed => 9) e;

-- With several seeding runs each k keeps its best run, the one kmeans_fit keeps.
CREATE TABLE fit_curve3 AS
SELECT k, sum(f.inertia) AS inertia
FROM generate_series(3, 9) k,
     LATERAL kmeans_fit('profiles', 'v', k, n_init => 3, seed => 6, max_iter => 4, model => 'n_init_k' || k) f
GROUP BY k;
ALTER TABLE fit_curve3 ADD n_iter int;
UPDATE fit_curve3 f SET n_iter = m.n_iter FROM kmeans_models m WHERE m.name = 'n_init_k' || f.k;
SELECT count(*) AS ks, count(*) FILTER (WHERE e.inertia = f.inertia AND e.n_iter = f.n_iter) AS same
FROM kmeans_elbow('profiles', 'v', 3, 9, n_init => 3, seed => 6, max_iter => 4) e JOIN fit_curve3 f USING (k);
DELETE FROM kmeans_models WHERE name LIKE 'n_init_k%';

-- Exactly one elbow, at the three provinces the data was made from.
SELECT count(*) FILTER (WHERE elbow) AS elbows, min(k) FILTER (WHERE elbow) AS suggested_k
FROM kmeans_elbow('profiles', 'v', 1, 10);

-- The suggested k is where Calinski-Harabasz peaks inside the range.  Four provinces, each
-- separated from the others: CH peaks at 4, where the knee of the inertia curve alone says 3
-- (worked out below).
CREATE TABLE provinces4 AS
SELECT i AS id,
       ARRAY(SELECT (CASE i % 4 WHEN 0 THEN -2 + z / 100.0
                                WHEN 1 THEN 2 * exp(-z / 150.0)
                                WHEN 2 THEN -3 * exp(-(((z - 200) / 90.0) ^ 2))
                                ELSE 1.5 END
                     + 0.3 * sin(i * 12.9898 + z * 78.233))::real
             FROM generate_series(60, 400, 40) z) AS v
FROM generate_series(1, 4000) i;
CREATE TABLE curve4 AS SELECT * FROM kmeans_elbow('provinces4', 'v', 1, 10, silhouette_sample => 0);
SELECT (SELECT k FROM curve4 WHERE elbow) AS suggested_k,
       (SELECT k FROM curve4 ORDER BY calinski_harabasz DESC NULLS LAST LIMIT 1) AS ch_peak;
-- Kneedle on the same curve (km_knee: k and inertia scaled to [0, 1], the k farthest below
-- the chord), worked out here in SQL: what the rule falls back to.
SELECT k AS kneedle_k FROM (
    SELECT k, (1 - (inertia - min(inertia) OVER ()) / (max(inertia) OVER () - min(inertia) OVER ()))
              - (k - 1) / 9.0 AS below_chord
    FROM curve4) c
ORDER BY below_chord DESC, k LIMIT 1;
-- A peak at an end of the range is no peak: from k = 4 on, CH is highest at 4, its first k,
-- and the suggestion is the knee instead.
CREATE TABLE curve4b AS SELECT * FROM kmeans_elbow('provinces4', 'v', 4, 12, silhouette_sample => 0);
SELECT (SELECT k FROM curve4b WHERE elbow) AS suggested_k,
       (SELECT k FROM curve4b ORDER BY calinski_harabasz DESC NULLS LAST LIMIT 1) AS ch_peak,
       (SELECT k FROM (SELECT k, (1 - (inertia - min(inertia) OVER ()) / (max(inertia) OVER () - min(inertia) OVER ()))
                                 - (k - 4) / 8.0 AS below_chord FROM curve4b) c
        ORDER BY below_chord DESC, k LIMIT 1) AS kneedle_k;

-- Inertia falls with k; the indices are in their ranges.
SELECT bool_and(silhouette BETWEEN -1 AND 1) AS silhouette_in_range,
       bool_and(calinski_harabasz > 0) AS ch_positive, bool_and(davies_bouldin >= 0) AS db_nonnegative
FROM kmeans_elbow('profiles', 'v', 2, 10);

-- The silhouette on a deterministic sample: the same sample every call, and 0 skips it.
SELECT (SELECT array_agg(silhouette ORDER BY k) FROM kmeans_elbow('profiles', 'v', 2, 4, silhouette_sample => 500)) =
       (SELECT array_agg(silhouette ORDER BY k) FROM kmeans_elbow('profiles', 'v', 2, 4, silhouette_sample => 500))
       AS repeatable_sample;
SELECT k, silhouette IS NULL AS skipped FROM kmeans_elbow('profiles', 'v', 2, 3, silhouette_sample => 0);

-- Streamed data gives the same curve as resident data, from the same seeding (without an init,
-- streamed rows are seeded by k-means||: seeding.sql).
CREATE TABLE resident AS SELECT * FROM kmeans_elbow('profiles', 'v', 2, 8, silhouette_sample => 300, init => 'k-means++');
SET kmeans.memory_limit = '64kB';
SELECT count(*) AS ks, count(*) FILTER (WHERE r.inertia = s.inertia AND r.n_iter = s.n_iter
                                         AND r.silhouette = s.silhouette
                                         AND r.calinski_harabasz = s.calinski_harabasz
                                         AND r.davies_bouldin = s.davies_bouldin) AS same
FROM resident r JOIN kmeans_elbow('profiles', 'v', 2, 8, silhouette_sample => 300, init => 'k-means++') s USING (k);
RESET kmeans.memory_limit;

-- Errors.
SELECT * FROM kmeans_elbow('profiles', 'v', 5, 3);
SELECT * FROM kmeans_elbow('profiles', 'v', 0, 3);
SELECT * FROM kmeans_elbow('profiles', 'v', 4990, 5000);
SELECT * FROM kmeans_elbow('profiles', 'v', 2, 5, init => 'explicit');
SELECT * FROM kmeans_elbow('profiles', 'v', 2, 5, k_step => 0);
SELECT * FROM kmeans_elbow('profiles', 'v', 2, 5, silhouette_sample => -1);
SELECT * FROM kmeans_elbow('profiles', 'v', 2, 5, init => 'bogus');
SELECT * FROM kmeans_elbow('profiles', 'v', 2, 5, n_init => 0);
SELECT * FROM kmeans_elbow('profiles', 'v', NULL, 5);

RESET search_path;
DROP SCHEMA test_elbow CASCADE;
