-- Sources named by regclass: the same fit as by name, a dependency that a view records, and a
-- name looked up when the call runs (renames, schemas, quoting, an empty search_path).
CREATE SCHEMA test_sources;
SET search_path = test_sources, public;
SET extra_float_digits = 0;

-- two groups on a line: 0, 1, 2 and 10, 11, 12, whose means are 1 and 11
CREATE TABLE line (id int, v real[]);
INSERT INTO line VALUES (1, '{0}'), (2, '{1}'), (3, '{2}'), (4, '{10}'), (5, '{11}'), (6, '{12}');

-- The same result by text and by regclass.  A quoted literal still takes the text form, and a
-- text or varchar value too: the regclass form is for values of type regclass.
SELECT * FROM kmeans_fit('line', 'v', 2, init_centers => '{{0},{10}}');
SELECT * FROM kmeans_fit('line'::regclass, 'v', 2, init_centers => '{{0},{10}}');
SELECT count(*) FROM kmeans_fit('line'::varchar, 'v', 2);
SELECT * FROM kmeans_labels('line'::regclass, 'v', 2, id => 'id', init_centers => '{{0},{10}}')
ORDER BY id;
SELECT k, inertia FROM kmeans_elbow('line'::regclass, 'v', 1, 2);
-- a saved model records the name as it was looked up: schema-qualified
SELECT count(*) FROM kmeans_fit('line'::regclass, 'v', 2, model => 'by_oid');
SELECT name, source FROM kmeans_models WHERE name = 'by_oid';
DELETE FROM kmeans_models WHERE name = 'by_oid';

-- A materialized view over the regclass form depends on the table ...
CREATE MATERIALIZED VIEW line_clusters AS
SELECT cluster, center, size FROM kmeans_fit('line'::regclass, 'v', 2, init_centers => '{{0},{10}}');
SELECT * FROM line_clusters ORDER BY cluster;
SELECT pg_describe_object(refclassid, refobjid, 0) AS depends_on
FROM pg_depend
WHERE classid = 'pg_rewrite'::regclass
  AND objid = (SELECT oid FROM pg_rewrite WHERE ev_class = 'line_clusters'::regclass)
  AND refclassid = 'pg_class'::regclass AND refobjid = 'line'::regclass
GROUP BY 1;
DROP TABLE line;
-- ... follows a rename, and refreshes under an empty search_path, as pg_restore runs it
ALTER TABLE line RENAME TO line_renamed;
INSERT INTO line_renamed VALUES (7, '{100}');
SET search_path = '';
REFRESH MATERIALIZED VIEW test_sources.line_clusters;
SELECT * FROM test_sources.line_clusters ORDER BY cluster;
SET search_path = test_sources, public;
-- the text form, by contrast, finds no "line" under an empty search_path
CREATE MATERIALIZED VIEW by_name AS
SELECT count(*) FROM kmeans_fit('line_renamed', 'v', 2);
SET search_path = '';
REFRESH MATERIALIZED VIEW test_sources.by_name;
SET search_path = test_sources, public;

-- Schema and table names that need quotes
CREATE SCHEMA "Quoted Schema";
CREATE TABLE "Quoted Schema"."Mixed Case" AS SELECT * FROM line_renamed;
SELECT cluster, size FROM kmeans_fit('"Quoted Schema"."Mixed Case"'::regclass, 'v', 2,
                                     init_centers => '{{0},{10}}') ORDER BY cluster;
-- a view is a source like a table
CREATE VIEW small AS SELECT * FROM line_renamed WHERE id <= 6;
SELECT cluster, center FROM kmeans_fit('small'::regclass, 'v', 2, init_centers => '{{0},{10}}');
-- a relation that holds no rows to read is refused as by name
CREATE INDEX line_renamed_id ON line_renamed (id);
SELECT * FROM kmeans_fit('line_renamed_id'::regclass, 'v', 2);
SELECT * FROM kmeans_fit(0::regclass, 'v', 2);

RESET search_path;
DROP SCHEMA "Quoted Schema" CASCADE;
DROP SCHEMA test_sources CASCADE;
