-- kmeans_fit on data small enough to check by hand.
CREATE SCHEMA test_fit;
SET search_path = test_fit, public;
SET extra_float_digits = 0;

\i test/sql/include/line.sql

-- From centers {2} and {3}, Lloyd goes {0,1,2} | {3,8,9,10,25} (means 1, 11), then
-- {0,1,2,3} | {8,9,10,25} (means 1.5, 13), then nothing changes: by hand,
-- inertia 1.25+0.25+0.25+2.25 = 5 and 25+16+9+144 = 194.
SELECT * FROM kmeans_fit('line', 'v', 2, init_centers => '{{2},{3}}');

-- k = 1: the mean 58/8 = 7.25 and the total sum of squares 884 - 8 * 7.25^2 = 463.5.
SELECT * FROM kmeans_fit('line', 'v', 1);

-- k = n: every point is its own center, every inertia 0.
SELECT center, size, inertia FROM kmeans_fit('line', 'v', 8) ORDER BY center;

-- Three well separated blobs: every seeding finds them (centers 1, 11, 21; 3 rows each;
-- inertia 2 each).
CREATE TABLE blobs (id int, v real[]);
INSERT INTO blobs SELECT i, ARRAY[10 * (i % 3) + (i / 3) % 3]::real[] FROM generate_series(0, 8) i;
SELECT center, size, inertia FROM kmeans_fit('blobs', 'v', 3) ORDER BY center;
SELECT center, size, inertia FROM kmeans_fit('blobs', 'v', 3, seed => 7) ORDER BY center;
SELECT center, size, inertia FROM kmeans_fit('blobs', 'v', 3, init => 'random', seed => 3, n_init => 4)
ORDER BY center;

-- The same call twice gives the same answer (fixed default seed).
SELECT (SELECT array_agg(center ORDER BY cluster) FROM kmeans_fit('blobs', 'v', 2)) =
       (SELECT array_agg(center ORDER BY cluster) FROM kmeans_fit('blobs', 'v', 2)) AS repeatable;

-- max_iter stops early: after one iteration from {2},{3} the centers are 1 and 11.
SELECT cluster, center, size FROM kmeans_fit('line', 'v', 2, init_centers => '{{2},{3}}', max_iter => 1);

-- Two dimensions: four corners of two squares, from explicit centers.
CREATE TABLE squares (id int, v double precision[]);
INSERT INTO squares VALUES (1, '{0,0}'), (2, '{0,2}'), (3, '{2,0}'), (4, '{2,2}'),
                           (5, '{10,10}'), (6, '{10,12}'), (7, '{12,10}'), (8, '{12,12}');
-- double precision[] columns are read through a cast to real[]: centers (1,1) and (11,11),
-- inertia 4 * 2 = 8 each.
SELECT * FROM kmeans_fit('squares', 'v', 2, init_centers => '{{0,0},{12,12}}');

-- Data far from the origin clusters as well as data near it (rows are centred first):
-- the same squares shifted by 10000.
SELECT cluster, center, size, inertia
FROM kmeans_fit('SELECT ARRAY[v[1] + 10000, v[2] + 10000]::real[] AS w FROM squares', 'w', 2,
                init_centers => '{{10000,10000},{10012,10012}}');

-- Sources: queries of every form, views, materialized views, quoted and qualified names,
-- partitioned tables, and column expressions.
SELECT size, inertia FROM kmeans_fit('SELECT v FROM line WHERE id <= 4', 'v', 1);
SELECT size, inertia FROM kmeans_fit('  select v from line where id > 4', 'v', 1);
SELECT size, inertia FROM kmeans_fit('WITH t AS (SELECT v FROM line) SELECT v FROM t', 'v', 1);
SELECT size, inertia FROM kmeans_fit('VALUES (ARRAY[1,2]), (ARRAY[3,4])', 'column1', 1);
SELECT size, inertia FROM kmeans_fit('TABLE line', 'v', 1);
CREATE VIEW line_view AS SELECT id, v FROM line WHERE id % 2 = 0;
SELECT size, inertia FROM kmeans_fit('line_view', 'v', 1);
CREATE MATERIALIZED VIEW line_mv AS SELECT id, v FROM line;
SELECT size, inertia FROM kmeans_fit('line_mv', 'v', 1);
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Line Copy" ("Vec" real[]);
INSERT INTO "Odd Schema"."Line Copy" SELECT v FROM line;
SELECT size, inertia FROM kmeans_fit('"Odd Schema"."Line Copy"', '"Vec"', 1);
CREATE TABLE parted (id int, v real[]) PARTITION BY RANGE (id);
CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM (0) TO (5);
CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM (5) TO (100);
INSERT INTO parted SELECT * FROM line;
SELECT size, inertia FROM kmeans_fit('parted', 'v', 1);
-- The first coordinate of the squares: an expression over the column.
SELECT center, size, inertia FROM kmeans_fit('squares', 'v[1:1]', 2, init_centers => '{{0},{12}}');
-- Integer arrays are castable to real[].
SELECT center, size FROM kmeans_fit('SELECT ARRAY[id, id]::int[] AS iv FROM line', 'iv', 1);

-- NULL vectors are skipped and counted.
INSERT INTO line VALUES (9, NULL), (10, NULL);
SELECT size, inertia FROM kmeans_fit('line', 'v', 1);
DELETE FROM line WHERE v IS NULL;

-- Empty clusters are repaired, k never shrinks: all rows equal but one.
CREATE TABLE dupes (v real[]);
INSERT INTO dupes SELECT '{5,5}' FROM generate_series(1, 6);
INSERT INTO dupes VALUES ('{7,5}');
-- From two equal centers every row goes to cluster 0 and cluster 1 is empty; it takes the
-- farthest row, (7,5), so the fit ends with centers (5,5) and (7,5).
SELECT * FROM kmeans_fit('dupes', 'v', 2, init_centers => '{{5,5},{5,5}}');

RESET search_path;
DROP SCHEMA test_fit CASCADE;
