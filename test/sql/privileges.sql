-- Every function runs with the caller's privileges: a role reads only what it may read, and
-- saves models only where it may write, and only models it owns.
CREATE SCHEMA test_privileges;
SET search_path = test_privileges, public;
SET extra_float_digits = 0;

\i test/sql/include/try.sql

CREATE TABLE secret (id int, v real[]);
INSERT INTO secret VALUES (1, '{0}'), (2, '{1}'), (3, '{10}');
CREATE TABLE shared_points (id int, v real[]);
INSERT INTO shared_points VALUES (1, '{0}'), (2, '{2}');

CREATE ROLE regress_kmeans_analyst;
GRANT USAGE ON SCHEMA test_privileges TO regress_kmeans_analyst;
GRANT SELECT ON shared_points TO regress_kmeans_analyst;

SET ROLE regress_kmeans_analyst;
-- a table the role may not read, by name and inside a query
SELECT * FROM kmeans_fit('secret', 'v', 1);
SELECT * FROM kmeans_fit('SELECT v FROM test_privileges.secret', 'v', 1);
-- a table it may read
SELECT cluster, center, size, inertia FROM kmeans_fit('shared_points', 'v', 1);
-- But it may not save models until granted, and it is told so before any row is read: the
-- error is not the one about secret, which it may not read either.
\x on
SELECT * FROM try($q$SELECT * FROM kmeans_fit('secret', 'v', 1, model => 'analyst_model')$q$);
RESET ROLE;
GRANT SELECT ON kmeans_models TO regress_kmeans_analyst;
SET ROLE regress_kmeans_analyst;
SELECT * FROM try($q$SELECT * FROM kmeans_fit('secret', 'v', 1, model => 'analyst_model')$q$);
RESET ROLE;
GRANT INSERT ON kmeans_models TO regress_kmeans_analyst;
SET ROLE regress_kmeans_analyst;
SELECT * FROM try($q$SELECT * FROM kmeans_fit('secret', 'v', 1, model => 'analyst_model')$q$);
\x off
RESET ROLE;

GRANT UPDATE ON kmeans_models TO regress_kmeans_analyst;
SET ROLE regress_kmeans_analyst;
SELECT count(*) FROM kmeans_fit('shared_points', 'v', 1, model => 'analyst_model');
SELECT kmeans_predict('analyst_model', '{5}');
RESET ROLE;
-- the model belongs to the role that saved it
SELECT name, k, centers, owner FROM kmeans_models WHERE name = 'analyst_model';

-- Models are shared for reading and owned for writing: another role granted the table reads
-- the analyst's model and labels with it, but does not replace, update or delete it.
CREATE ROLE regress_kmeans_other;
GRANT USAGE ON SCHEMA test_privileges TO regress_kmeans_other;
GRANT SELECT ON shared_points TO regress_kmeans_other;
GRANT SELECT, INSERT, UPDATE, DELETE ON kmeans_models
    TO regress_kmeans_analyst, regress_kmeans_other;
SET ROLE regress_kmeans_other;
SELECT name, k, centers, owner FROM kmeans_models WHERE name = 'analyst_model';
SELECT kmeans_predict('analyst_model', '{5}');
SELECT * FROM kmeans_centers('analyst_model');
-- A save over it is refused before the fit: here the source does not even exist, and the
-- error is still the model's.
\x on
SELECT * FROM try($q$SELECT * FROM kmeans_fit('no_such_table', 'v', 1, model => 'analyst_model')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_labels('no_such_table', 'v', 1, id => 'id',
                                                  model => 'analyst_model')$q$);
\x off
-- UPDATE and DELETE do not see the rows they may not write
WITH u AS (UPDATE kmeans_models SET centers = '{{7}}' WHERE name = 'analyst_model' RETURNING name)
SELECT count(*) AS updated FROM u;
WITH d AS (DELETE FROM kmeans_models WHERE name = 'analyst_model' RETURNING name)
SELECT count(*) AS deleted FROM d;
-- a model cannot be written in another role's name
INSERT INTO kmeans_models (name, k, dim, centers, inertia, n_iter, n_rows, source, owner)
VALUES ('forged', 1, 1, '{{7}}', 0, 1, 2, 'shared_points', 'regress_kmeans_analyst');
-- the role's own model is its own, and it cannot give it to a role it is not a member of
SELECT count(*) FROM kmeans_fit('shared_points', 'v', 1, model => 'other_model');
UPDATE kmeans_models SET owner = 'regress_kmeans_analyst' WHERE name = 'other_model';
RESET ROLE;
-- the analyst's model is as it was
SELECT name, k, centers, owner FROM kmeans_models
WHERE name IN ('analyst_model', 'other_model') ORDER BY name;

-- A member of the owner role acts as the owner: it replaces the model, which keeps its
-- owner, and it may give its own model to that role.  Centers 0 and 2: the two points.
GRANT regress_kmeans_analyst TO regress_kmeans_other;
SET ROLE regress_kmeans_other;
SELECT count(*) FROM kmeans_fit('shared_points', 'v', 2, init_centers => '{{0},{2}}',
                                model => 'analyst_model');
UPDATE kmeans_models SET owner = 'regress_kmeans_analyst' WHERE name = 'other_model';
RESET ROLE;
REVOKE regress_kmeans_analyst FROM regress_kmeans_other;
SELECT name, k, centers, owner FROM kmeans_models
WHERE name IN ('analyst_model', 'other_model') ORDER BY name;

-- The replaced versions were kept, though neither role has any privilege on
-- kmeans_model_versions: the models table's trigger writes it as the extension's owner.  A role
-- reads them once granted SELECT, and cannot write them itself.
SELECT name, version, k, centers, owner FROM kmeans_model_versions
WHERE name = 'analyst_model' ORDER BY version;
SET ROLE regress_kmeans_other;
\x on
SELECT * FROM try($q$SELECT count(*) FROM kmeans_model_versions$q$);
RESET ROLE;
GRANT SELECT ON kmeans_model_versions TO regress_kmeans_other;
SET ROLE regress_kmeans_other;
SELECT * FROM try($q$INSERT INTO kmeans_model_versions (name, version, k, dim, metric, centers,
    inertia, n_iter, n_rows, options, source, created_at, owner)
    VALUES ('forged', 1, 1, 1, 'euclidean', '{{0}}', 0, 1, 1, '{}', 'x', now(), 'regress_kmeans_other')$q$);
SELECT * FROM try($q$DELETE FROM kmeans_model_versions WHERE name = 'analyst_model'$q$);
\x off
SELECT count(*) AS versions_seen FROM kmeans_model_versions WHERE name = 'analyst_model';
RESET ROLE;
REVOKE SELECT ON kmeans_model_versions FROM regress_kmeans_other;

-- A model whose owner role was dropped is left to the table's owner and superusers, who are
-- not bound by the policies (this file runs as one).
CREATE ROLE regress_kmeans_gone;
GRANT USAGE ON SCHEMA test_privileges TO regress_kmeans_gone;
GRANT SELECT ON shared_points TO regress_kmeans_gone;
GRANT SELECT, INSERT, UPDATE ON kmeans_models TO regress_kmeans_gone;
SET ROLE regress_kmeans_gone;
SELECT count(*) FROM kmeans_fit('shared_points', 'v', 1, model => 'gone_model');
RESET ROLE;
REVOKE ALL ON kmeans_models, shared_points FROM regress_kmeans_gone;
REVOKE ALL ON SCHEMA test_privileges FROM regress_kmeans_gone;
DROP ROLE regress_kmeans_gone;
SET ROLE regress_kmeans_other;
\x on
SELECT * FROM try($q$SELECT * FROM kmeans_fit('shared_points', 'v', 1, model => 'gone_model')$q$);
\x off
WITH d AS (DELETE FROM kmeans_models WHERE name = 'gone_model' RETURNING name)
SELECT count(*) AS deleted FROM d;
RESET ROLE;
UPDATE kmeans_models SET owner = 'regress_kmeans_other' WHERE name = 'gone_model';
SET ROLE regress_kmeans_other;
SELECT count(*) FROM kmeans_fit('shared_points', 'v', 1, model => 'gone_model');
WITH d AS (DELETE FROM kmeans_models WHERE name = 'gone_model' RETURNING name, owner)
SELECT * FROM d;
RESET ROLE;

-- The README's SECURITY DEFINER wrapper: a role fits a table it may not read, through a
-- function that fixes the source and the column and takes only k.  secret holds 0, 1 and 10:
-- one cluster at 11/3 with inertia 0 + 1 + 100 - 3 (11/3)^2 = 182/3.
CREATE FUNCTION fit_secret(k integer)
RETURNS TABLE (cluster integer, center real[], size bigint, inertia double precision)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM public.kmeans_fit('test_privileges.secret', 'v', k, max_iter => 100) $$;
REVOKE ALL ON FUNCTION fit_secret(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fit_secret(integer) TO regress_kmeans_analyst;
SET ROLE regress_kmeans_analyst;
SELECT cluster, center, size, round(inertia::numeric, 4) AS inertia FROM fit_secret(1);
SELECT count(*) FROM secret;
RESET ROLE;
SET ROLE regress_kmeans_other;
SELECT * FROM fit_secret(1);
RESET ROLE;

DELETE FROM kmeans_models WHERE name IN ('analyst_model', 'other_model');
REVOKE ALL ON kmeans_models FROM regress_kmeans_analyst, regress_kmeans_other;
RESET search_path;
DROP SCHEMA test_privileges CASCADE;
DROP ROLE regress_kmeans_analyst;
DROP ROLE regress_kmeans_other;
