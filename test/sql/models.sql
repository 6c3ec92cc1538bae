-- Saved models: kmeans_models, kmeans_centers, kmeans_predict.
CREATE SCHEMA test_models;
SET search_path = test_models, public;
SET extra_float_digits = 0;

\i test/sql/include/line.sql

-- Saving: the fit's result plus one row in kmeans_models (centers 1.5 and 13, see fit.sql;
-- 3 iterations: the third changes no label).
SELECT * FROM kmeans_fit('line', 'v', 2, init_centers => '{{2},{3}}', model => 'line2');
-- options names the device asked for, which is the runner's choice (PGOPTIONS): shown apart.
SELECT name, k, dim, metric, centers, inertia, n_iter, n_rows, options - 'device' AS options,
       options->>'device' IN ('auto', 'cpu', 'gpu') AS device_recorded, source,
       created_at <= now() AS created
FROM kmeans_models;

SELECT * FROM kmeans_centers('line2');

-- Labelling new vectors: nearest center, by model name or by an array of centers.
SELECT x, kmeans_predict('line2', ARRAY[x]::real[]) AS by_model,
       kmeans_predict('{{1.5},{13}}'::real[], ARRAY[x]::real[]) AS by_centers
FROM unnest(ARRAY[-5, 0, 7.25, 7.26, 100]::real[]) x;

-- A whole table labelled in plain SQL agrees with kmeans_labels.
SELECT count(*) AS rows, count(*) FILTER (WHERE l.cluster = kmeans_predict('line2', line.v)) AS same
FROM kmeans_labels('line', 'v', 2, id => 'id', init_centers => '{{2},{3}}') l JOIN line USING (id);

-- Saving again under the same name replaces the model.
SELECT count(*) FROM kmeans_fit('line', 'v', 3, init_centers => '{{0},{9},{25}}', model => 'line2');
SELECT name, k, centers, inertia, options->>'init' AS init FROM kmeans_models;

-- The replacement is part of the transaction: rolled back, the old model stays.
BEGIN;
SELECT count(*) FROM kmeans_fit('line', 'v', 1, model => 'line2');
SELECT k FROM kmeans_models WHERE name = 'line2';
ROLLBACK;
SELECT k FROM kmeans_models WHERE name = 'line2';

-- kmeans_labels can save the model it labels with.
SELECT count(*) FROM kmeans_labels('line', 'v', 2, id => 'id', init_centers => '{{2},{3}}',
                                   model => 'from_labels');
SELECT name, k, centers FROM kmeans_models ORDER BY name;

-- The models table is ordinary: it is dumped with the data, and users can be granted it.
SELECT c.relname, e.extname
FROM pg_extension e CROSS JOIN LATERAL unnest(e.extconfig) cfg JOIN pg_class c ON c.oid = cfg
WHERE e.extname = 'kmeans';
DELETE FROM kmeans_models WHERE name = 'from_labels';
SELECT name FROM kmeans_models;

-- The table's checks keep saved centers well formed (the owner is given here so that the
-- failing row shown does not depend on who runs the test).
INSERT INTO kmeans_models (name, k, dim, centers, inertia, n_iter, n_rows, source, created_at, owner)
VALUES ('bad', 2, 1, '{{1},{2},{3}}', 0, 1, 3, 'x', '2026-01-01 00:00:00+00', 'someone');
-- and finite: real's = matches NaN too, so NaN is refused like ±Infinity.
INSERT INTO kmeans_models (name, k, dim, centers, inertia, n_iter, n_rows, source, created_at, owner)
VALUES ('bad', 2, 1, '{{1},{NaN}}', 0, 1, 3, 'x', '2026-01-01 00:00:00+00', 'someone');
INSERT INTO kmeans_models (name, k, dim, centers, inertia, n_iter, n_rows, source, created_at, owner)
VALUES ('bad', 2, 1, '{{-Infinity},{1}}', 0, 1, 3, 'x', '2026-01-01 00:00:00+00', 'someone');
\set VERBOSITY terse
UPDATE kmeans_models SET centers = '{{1.5},{Infinity},{25}}' WHERE name = 'line2';
\set VERBOSITY default

-- A model is checked where it is read, since the table's owner can change the table: here
-- the checks are dropped inside a transaction, and each bad row is refused by name.
\i test/sql/include/try.sql
\x on
BEGIN;
ALTER TABLE kmeans_models DROP CONSTRAINT kmeans_models_centers_finite;
-- line2 is {{1.5},{9},{25}}: the center of cluster 1 becomes NaN, then that of cluster 2 -Inf
UPDATE kmeans_models SET centers = '{{1.5},{NaN},{25}}' WHERE name = 'line2';
SELECT * FROM try($q$SELECT kmeans_predict('line2', '{0}')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_centers('line2')$q$);
UPDATE kmeans_models SET centers = '{{1.5},{9},{-Infinity}}' WHERE name = 'line2';
SELECT * FROM try($q$SELECT kmeans_predict('line2', '{0}')$q$);
ALTER TABLE kmeans_models DROP CONSTRAINT kmeans_models_centers_shape;
UPDATE kmeans_models SET centers = '{1.5,9,25}' WHERE name = 'line2';
SELECT * FROM try($q$SELECT kmeans_predict('line2', '{0}')$q$);
UPDATE kmeans_models SET centers = '{{1.5},{NULL},{25}}' WHERE name = 'line2';
SELECT * FROM try($q$SELECT * FROM kmeans_centers('line2')$q$);
ALTER TABLE kmeans_models ALTER COLUMN centers DROP NOT NULL;
UPDATE kmeans_models SET centers = NULL WHERE name = 'line2';
SELECT * FROM try($q$SELECT kmeans_predict('line2', '{0}')$q$);
ALTER TABLE kmeans_models ALTER COLUMN centers TYPE double precision[];
SELECT * FROM try($q$SELECT kmeans_predict('line2', '{0}')$q$);
ROLLBACK;
\x off
-- all of it rolled back: the model labels again
SELECT kmeans_predict('line2', '{0}') AS cluster_0, kmeans_predict('line2', '{20}') AS cluster_2;

-- A trigger labels new rows with a saved model.  Its cached call lives as long as the
-- transaction, and a refit is seen from the next statement on, also inside one transaction.
-- The points 0, 1, 10, 11 from centers (0, 10) give centers 0.5 and 10.5, so 4 is in cluster 0;
-- from (10, 0) the same centers come numbered the other way, and 4 is in cluster 1 (with
-- kmeans.match_clusters off: matching would keep the numbers, which refit.sql tests).
SET kmeans.match_clusters = off;
CREATE TABLE incoming (n int, v real[], cluster int);
CREATE FUNCTION label_incoming() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.cluster := kmeans_predict('trig_model', NEW.v);
    RETURN NEW;
END $$;
CREATE TRIGGER incoming_label BEFORE INSERT ON incoming
    FOR EACH ROW EXECUTE FUNCTION label_incoming();
CREATE VIEW four AS SELECT ARRAY[x]::real[] AS v FROM unnest(ARRAY[0, 1, 10, 11]) x;
SELECT count(*) FROM kmeans_fit('four', 'v', 2, init_centers => '{{0},{10}}', model => 'trig_model');
INSERT INTO incoming VALUES (1, '{4}');
SELECT count(*) FROM kmeans_fit('four', 'v', 2, init_centers => '{{10},{0}}', model => 'trig_model');
INSERT INTO incoming VALUES (2, '{4}');
BEGIN;
INSERT INTO incoming VALUES (3, '{4}');
SELECT count(*) FROM kmeans_fit('four', 'v', 2, init_centers => '{{0},{10}}', model => 'trig_model');
INSERT INTO incoming VALUES (4, '{4}');
COMMIT;
SELECT n, cluster FROM incoming ORDER BY n;
RESET kmeans.match_clusters;

-- Versions: each refit keeps the row it replaces in kmeans_model_versions (kmeans.model_versions
-- of them per name, 10 by default) and counts kmeans_models.version on.  trig_model was saved
-- three times above: versions 1 and 2 are kept, from centers (0, 10), then (10, 0) numbered
-- the other way; version 3 is the model.
SELECT version, centers FROM kmeans_models WHERE name = 'trig_model';
SELECT version, centers, owner = current_user AS same_owner, replaced_at >= created_at AS in_order
FROM kmeans_model_versions WHERE name = 'trig_model' ORDER BY version;
-- with one version to keep, the next refit keeps only the one it replaces
SET kmeans.model_versions = 1;
SELECT count(*) FROM kmeans_fit('four', 'v', 2, init_centers => '{{0},{10}}', model => 'trig_model');
SELECT version FROM kmeans_model_versions WHERE name = 'trig_model' ORDER BY version;
-- none kept: the next refit drops them
SET kmeans.model_versions = 0;
SELECT count(*) FROM kmeans_fit('four', 'v', 2, init_centers => '{{0},{10}}', model => 'trig_model');
SELECT count(*) AS kept, (SELECT version FROM kmeans_models WHERE name = 'trig_model') AS version
FROM kmeans_model_versions WHERE name = 'trig_model';
RESET kmeans.model_versions;
SELECT count(*) FROM kmeans_fit('four', 'v', 2, init_centers => '{{0},{10}}', model => 'trig_model');
DELETE FROM kmeans_model_versions WHERE name = 'trig_model';
DELETE FROM kmeans_models WHERE name IN ('line2', 'trig_model');
RESET search_path;
DROP SCHEMA test_models CASCADE;
