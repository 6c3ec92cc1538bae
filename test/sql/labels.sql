-- kmeans_labels: every row's cluster and distance, from the same fit as kmeans_fit.
CREATE SCHEMA test_labels;
SET search_path = test_labels, public;
SET extra_float_digits = 0;

CREATE TABLE line (id int PRIMARY KEY, v real[], note text);
INSERT INTO line VALUES (1, '{0}', 'a'), (2, '{1}', 'b'), (3, '{2}', 'c'), (4, '{3}', 'd'),
                        (5, '{8}', 'e'), (6, '{9}', 'f'), (7, '{10}', 'g'), (8, '{25}', 'h');

-- Centers 1.5 and 13 (see fit.sql); distances by hand: |x - center|.
SELECT * FROM kmeans_labels('line', 'v', 2, id => 'id', init_centers => '{{2},{3}}') ORDER BY id;

-- Join back to the table.
SELECT l.cluster, string_agg(line.note, '' ORDER BY line.id) AS notes
FROM kmeans_labels('line', 'v', 2, id => 'id', init_centers => '{{2},{3}}') l
JOIN line USING (id)
GROUP BY l.cluster ORDER BY l.cluster;

-- Labels agree with kmeans_fit of the same call: sizes and inertia per cluster.
CREATE TABLE pts AS
SELECT i AS id, ARRAY[(i % 5) * 10 + (i % 7) * 0.5, (i % 3) * 7 + (i % 11) * 0.25]::real[] AS v
FROM generate_series(1, 500) i;
WITH f AS (SELECT * FROM kmeans_fit('pts', 'v', 6, seed => 11)),
     l AS (SELECT cluster, count(*) AS n, sum(distance ^ 2) AS ss
           FROM kmeans_labels('pts', 'v', 6, id => 'id', seed => 11) GROUP BY cluster)
SELECT count(*) AS clusters,
       bool_and(f.size = l.n) AS sizes_agree,
       bool_and(abs(f.inertia - l.ss) <= 1e-4 * (1 + f.inertia)) AS inertia_agrees
FROM f JOIN l USING (cluster);

-- Every row's label is its nearest center (kmeans_predict with the fitted centers,
-- stacked into a k x d array by array_agg).
WITH c AS (SELECT array_agg(center ORDER BY cluster) AS centers
           FROM kmeans_fit('pts', 'v', 6, seed => 11))
SELECT count(*) AS rows,
       count(*) FILTER (WHERE l.cluster = kmeans_predict(c.centers, p.v)) AS nearest
FROM kmeans_labels('pts', 'v', 6, id => 'id', seed => 11) l JOIN pts p USING (id), c;

-- ids may be any expression castable to bigint; rows with NULL vectors get no label.
INSERT INTO line VALUES (9, NULL, 'i');
SELECT count(*), min(id), max(id) FROM kmeans_labels('line', 'v', 2, id => 'id * 100');

RESET search_path;
DROP SCHEMA test_labels CASCADE;
