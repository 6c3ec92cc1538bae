-- The aggregate and window forms: kmeans_agg(x, k [, options]) per GROUP BY group, as a
-- kmeans_model, and kmeans_cluster(x, k [, options]) OVER (...), each row's cluster.  Each
-- group is compared with kmeans_fit / kmeans_labels over a query returning the same rows in
-- the same order, which must agree exactly.
CREATE SCHEMA test_groups;
SET search_path = test_groups, public;
\i test/sql/include/try.sql

CREATE TABLE pts AS
SELECT i AS id, i % 3 AS g,
       ARRAY[(i % 3) * 10 + (i % 7), (i * 7919 % 101)::real / 10]::real[] AS x
FROM generate_series(1, 3000) i;
INSERT INTO pts VALUES (3001, 1, NULL);

-- Every group's model equals kmeans_fit's on that group's rows in the same order: centers,
-- sizes, inertia and iterations (the NULL vector of group 1 is skipped by both).
CREATE TABLE models AS
SELECT g, kmeans_agg(x, 3 ORDER BY id) AS m FROM pts GROUP BY g;
SET client_min_messages = warning;	-- kmeans_fit's NOTICE of the NULL vector
SELECT g, (m).k, (m).dim, (m).metric, (m).n_rows, (m).sizes,
       (m).centers = (SELECT array_agg(center ORDER BY cluster)
                      FROM kmeans_fit(format('SELECT x FROM test_groups.pts WHERE g = %s ORDER BY id', g),
                                      'x', 3)) AS same_centers,
       (m).inertia = (SELECT sum(inertia)
                      FROM kmeans_fit(format('SELECT x FROM test_groups.pts WHERE g = %s ORDER BY id', g),
                                      'x', 3)) AS same_inertia
FROM models ORDER BY g;
-- with options, as kmeans_fit's named arguments
SELECT g, (m).n_iter, (m).options->>'init' AS init, (m).options->>'max_iter' AS max_iter,
       (m).centers = (SELECT array_agg(center ORDER BY cluster)
                      FROM kmeans_fit(format('SELECT x FROM test_groups.pts WHERE g = %s ORDER BY id', g),
                                      'x', 4, init => 'random', max_iter => 2, seed => 7)) AS same_centers
FROM (SELECT g, kmeans_agg(x, 4, '{"init": "random", "max_iter": 2, "seed": 7}' ORDER BY id) AS m
      FROM pts GROUP BY g) q ORDER BY g;
RESET client_min_messages;
-- explicit starting centers: one step from (0,0) and (10,10) over four points, by hand
SELECT (kmeans_agg(v, 2, '{"init_centers": [[0, 0], [10, 10]], "max_iter": 1}')).centers
FROM (VALUES ('{0,0}'::real[]), ('{2,0}'), ('{10,10}'), ('{10,12}')) t(v);
-- anchor boxes (metric iou) come numbered by area, as from kmeans_fit
SELECT (m).metric, (m).centers
FROM (SELECT kmeans_agg(v, 2, '{"metric": "iou", "init_centers": [[10, 10], [1, 1]]}') m
      FROM (VALUES ('{1,1}'::real[]), ('{1,2}'), ('{10,10}'), ('{12,10}')) t(v)) q;

-- A model labels rows (its own rows as the fit labelled them) and is saved like a fit's.
SET client_min_messages = warning;	-- kmeans_labels' NOTICE of the NULL vector
CREATE TABLE labels AS
SELECT g, l.* FROM generate_series(0, 2) g,
    LATERAL kmeans_labels(format('SELECT id, x FROM test_groups.pts WHERE g = %s ORDER BY id', g),
                          'x', 3, id => 'id') l;
RESET client_min_messages;
SELECT g, count(*) AS rows, count(*) FILTER (WHERE kmeans_predict(m, x) = l.cluster) AS same_label
FROM models JOIN pts USING (g) JOIN labels l USING (g, id)
GROUP BY g ORDER BY g;
SELECT kmeans_save_model('group_' || g, m) FROM models ORDER BY g;
SELECT name, k, dim, metric, n_rows, source, centers = (SELECT (m).centers FROM models WHERE g = 1) AS same
FROM kmeans_models WHERE name LIKE 'group_%' ORDER BY name;
SELECT kmeans_predict('group_1', '{12,5}') = kmeans_predict((SELECT m FROM models WHERE g = 1), '{12,5}')
    AS saved_predicts_the_same;
SELECT * FROM try($$SELECT kmeans_save_model('', (SELECT m FROM test_groups.models WHERE g = 0))$$);
SELECT * FROM try($$SELECT kmeans_save_model('none', NULL)$$);
DELETE FROM kmeans_models WHERE name LIKE 'group_%';

-- Groups of only NULL vectors, and no rows at all, have no model.
SELECT kmeans_agg(x, 2) IS NULL AS no_model FROM pts WHERE x IS NULL;
SELECT kmeans_agg(x, 2) IS NULL AS no_model FROM pts WHERE false;

-- The window form: every row's cluster equals kmeans_labels' on its partition; the NULL
-- vector gets a NULL cluster.
SELECT w.g, count(*) AS rows, count(l.cluster) AS labelled,
       count(*) FILTER (WHERE w.c = l.cluster) AS same_cluster,
       count(*) FILTER (WHERE w.c IS NULL) AS null_cluster
FROM (SELECT id, g, kmeans_cluster(x, 3) OVER (PARTITION BY g ORDER BY id) AS c FROM pts) w
LEFT JOIN labels l USING (g, id)
GROUP BY w.g ORDER BY w.g;
-- with options, and over the whole table
SELECT count(DISTINCT c) AS clusters, count(*) FILTER (WHERE c IS NULL) AS nulls
FROM (SELECT kmeans_cluster(x, 5, '{"n_init": 2, "seed": 3}') OVER (ORDER BY id) c FROM pts) w;
SELECT id, kmeans_cluster(v, 2, '{"init_centers": [[0, 0], [10, 10]]}') OVER (ORDER BY id)
FROM (VALUES (1, '{0,0}'::real[]), (2, NULL), (3, '{10,11}'), (4, '{1,0}')) t(id, v) ORDER BY id;

-- Options and errors: as kmeans_fit's, with the option named.
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '{"maxiter": 5}') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '{"max_iter": 2.5}') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '{"max_iter": "5"}') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '{"max_iter": 0}') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '{"tol": -1}') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '{"seed": null}') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '{"init": "nope"}') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '{"metric": "manhattan"}') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '{"device": "tpu"}') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '{"weight": "w"}') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '{"init_centers": [[0, 0], [1]]}') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '{"init_centers": [[0, 0], [1, 1]]}') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 3, '[1, 2]') FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, NULL) FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 0) FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_agg(x, 5) FROM test_groups.pts WHERE id <= 4$$);
SELECT * FROM try($$SELECT kmeans_agg(x, (id % 2 + 2)::int) FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_cluster(x, (id % 2 + 2)::int) OVER () FROM test_groups.pts$$);
SELECT * FROM try($$SELECT kmeans_cluster(x, NULL) OVER () FROM test_groups.pts$$);
-- bad rows name the row within the group
SELECT * FROM try($$SELECT kmeans_agg(v, 1) FROM (VALUES ('{1,2}'::real[]), ('{1,NULL}')) t(v)$$);
SELECT * FROM try($$SELECT kmeans_agg(v, 1) FROM (VALUES ('{1,2}'::real[]), ('{1}')) t(v)$$);
SELECT * FROM try($$SELECT kmeans_agg(v, 1) FROM (VALUES ('{1,2}'::real[]), ('{1,NaN}')) t(v)$$);
SELECT * FROM try($$SELECT kmeans_agg(v, 1, '{"metric": "cosine"}') FROM (VALUES ('{1,2}'::real[]), ('{0,0}')) t(v)$$);
-- a group's rows are kept within kmeans.memory_limit: over it, an ERROR with the sizes
SET kmeans.memory_limit = '1MB';
SELECT * FROM try($$SELECT kmeans_agg(ARRAY[i, i]::real[], 2) FROM generate_series(1, 200000) i$$);
RESET kmeans.memory_limit;
-- the aggregate is not a window function (the window form is kmeans_cluster)
SELECT * FROM try($$SELECT kmeans_agg(x, 3) OVER () FROM test_groups.pts$$);

RESET search_path;
DROP SCHEMA test_groups CASCADE;
