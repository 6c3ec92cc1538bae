-- ALTER EXTENSION kmeans UPDATE from 0.1.0, through 0.2.0, 0.3.0 and 0.4.0, gives what a fresh install of the
-- default version gives, and keeps the saved models.  The files run alphabetically in one
-- database: this one leaves a fresh default install behind, as it found one.
CREATE SCHEMA test_upgrade;
SET search_path = test_upgrade, public;
SET extra_float_digits = 0;

-- An install described without OIDs: its member objects, the models table's columns,
-- constraints, indexes, policies, settings and comments, and every function's definition.
CREATE FUNCTION kmeans_catalog() RETURNS TABLE (kind text, object text, definition text)
LANGUAGE sql AS $$
    WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'kmeans'),
    members AS (
        SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
        WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid
          AND d.deptype = 'e'),
    models AS (SELECT 'public.kmeans_models'::regclass AS rel)
    SELECT 'member', pg_describe_object(classid, objid, objsubid), '' FROM members
    UNION ALL
    SELECT 'config', extconfig::regclass[]::text, extcondition::text FROM ext
    UNION ALL
    SELECT 'table', c.relname,
           format('kind %s, rls %s, forced %s, acl %s, comment %s', c.relkind, c.relrowsecurity,
                  c.relforcerowsecurity, c.relacl, obj_description(c.oid, 'pg_class'))
    FROM pg_class c, models WHERE c.oid = models.rel
    UNION ALL
    SELECT 'column', a.attname,
           format('%s %s%s default %s, comment %s', a.attnum,
                  format_type(a.atttypid, a.atttypmod),
                  CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
                  pg_get_expr(ad.adbin, ad.adrelid), col_description(a.attrelid, a.attnum))
    FROM models JOIN pg_attribute a ON a.attrelid = models.rel
         LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'constraint', con.conname, pg_get_constraintdef(con.oid)
    FROM pg_constraint con, models WHERE con.conrelid = models.rel
    UNION ALL
    SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
    FROM pg_index i, models WHERE i.indrelid = models.rel
    UNION ALL
    SELECT 'policy', pol.polname,
           format('%s %s to %s using %s with check %s', pol.polcmd,
                  CASE WHEN pol.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                  pol.polroles::regrole[], pg_get_expr(pol.polqual, pol.polrelid),
                  pg_get_expr(pol.polwithcheck, pol.polrelid))
    FROM pg_policy pol, models WHERE pol.polrelid = models.rel
    UNION ALL
    SELECT 'trigger', t.tgname, pg_get_triggerdef(t.oid)
    FROM pg_trigger t, models WHERE t.tgrelid = models.rel
    UNION ALL
    SELECT 'function', p.oid::regprocedure::text,
           format('returns %s, %s %s, volatility %s, strict %s, parallel %s, security definer %s, '
                  'config %s, acl %s, defaults %s, comment %s',
                  pg_get_function_result(p.oid), p.probin, p.prosrc, p.provolatile,
                  p.proisstrict, p.proparallel, p.prosecdef, p.proconfig, p.proacl,
                  pg_get_expr(p.proargdefaults, 0), obj_description(p.oid, 'pg_proc'))
    FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
$$;

-- A fresh install of the default version.
DROP EXTENSION kmeans;
CREATE EXTENSION kmeans SCHEMA public;
SELECT extversion FROM pg_extension WHERE extname = 'kmeans';
CREATE TABLE fresh AS SELECT * FROM kmeans_catalog();
SELECT kind, count(*) FROM fresh GROUP BY kind ORDER BY kind;

-- 0.1.0, with a model saved by it; the table is given another owner than the role that will
-- update the extension, to show whose the old models become.
DROP EXTENSION kmeans;
CREATE EXTENSION kmeans SCHEMA public VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'kmeans';
CREATE TABLE line (id int, v real[]);
INSERT INTO line VALUES (1, '{0}'), (2, '{1}'), (3, '{2}'), (4, '{10}'), (5, '{11}'), (6, '{12}');
-- centers 1 and 11, the means of 0..2 and 10..12
SELECT * FROM kmeans_fit('line', 'v', 2, init_centers => '{{0},{10}}', model => 'old_model');
CREATE ROLE regress_kmeans_table_owner;
ALTER TABLE kmeans_models OWNER TO regress_kmeans_table_owner;

-- What the update is to change: everything the two versions' catalogs do not share.
SELECT kind, object FROM fresh EXCEPT SELECT kind, object FROM kmeans_catalog()
ORDER BY kind, object;
SELECT kind, object FROM (SELECT * FROM fresh EXCEPT SELECT * FROM kmeans_catalog()) changed
WHERE (kind, object) IN (SELECT kind, object FROM kmeans_catalog())
ORDER BY kind, object;

-- A saved model with a NaN center, which 0.1.0 let an UPDATE store, stops the update, which
-- changes nothing then; the model has to be deleted or fitted again first.
INSERT INTO kmeans_models (name, k, dim, centers, inertia, n_iter, n_rows, source)
VALUES ('nan_model', 1, 1, '{{NaN}}', 0, 1, 1, 'line');
ALTER EXTENSION kmeans UPDATE TO '0.2.0';
SELECT extversion FROM pg_extension WHERE extname = 'kmeans';
DELETE FROM kmeans_models WHERE name = 'nan_model';

ALTER EXTENSION kmeans UPDATE TO '0.2.0';
SELECT extversion FROM pg_extension WHERE extname = 'kmeans';
ALTER EXTENSION kmeans UPDATE TO '0.3.0';
-- 0.4.0 gives the fitting functions weight and metric arguments, which means dropping and creating them
-- again: a view over one of them stops the update, which names it and changes nothing, and
-- goes once the view is dropped (to be created again after the update).
CREATE VIEW line_fit AS SELECT * FROM kmeans_fit('line'::regclass, 'v', 2);
ALTER EXTENSION kmeans UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'kmeans';
DROP VIEW line_fit;
ALTER EXTENSION kmeans UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'kmeans';
SELECT cluster, center FROM kmeans_fit('line', 'v', 2, init_centers => '{{0},{10}}',
                                       weight => 'CASE WHEN id IN (1, 4) THEN 0 ELSE 1 END',
                                       device => 'cpu')
ORDER BY cluster;
-- the same catalog as a fresh install, both ways
SELECT 'only after the update' AS "where", * FROM
    (SELECT * FROM kmeans_catalog() EXCEPT SELECT * FROM fresh) u
UNION ALL
SELECT 'only in a fresh install', * FROM
    (SELECT * FROM fresh EXCEPT SELECT * FROM kmeans_catalog()) f;

-- The model survived, and belongs to the table's owner.
SELECT name, k, dim, centers, n_rows, source, owner FROM kmeans_models;
SELECT * FROM kmeans_centers('old_model');
SELECT kmeans_predict('old_model', '{4}') AS near_1, kmeans_predict('old_model', '{7}') AS near_11;
-- A superuser (who runs this) is not bound by the policies: replacing the model keeps its
-- owner; a new model is the saving role's.
SELECT count(*) FROM kmeans_fit('line', 'v', 1, model => 'old_model');
SELECT count(*) FROM kmeans_fit('line', 'v', 1, model => 'new_model');
SELECT name, k, centers, CASE WHEN owner = current_user THEN 'the saving role' ELSE owner END AS owner
FROM kmeans_models ORDER BY name;

-- Back to a fresh default install, through 0.8.0: 0.9.0 changes only the defaults of init, so
-- a view over a fitting function survives that update (the centers 1 and 11 whatever the
-- seeding: Lloyd from any two of these rows ends there).
DROP EXTENSION kmeans;
CREATE EXTENSION kmeans SCHEMA public VERSION '0.8.0';
CREATE VIEW line_fit AS SELECT center FROM kmeans_fit('line', 'v', 2, device => 'cpu');
ALTER EXTENSION kmeans UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'kmeans';
SELECT center FROM line_fit ORDER BY center[1];
DROP VIEW line_fit;
DROP EXTENSION kmeans;
CREATE EXTENSION kmeans SCHEMA public;
SELECT extversion FROM pg_extension WHERE extname = 'kmeans';
DROP ROLE regress_kmeans_table_owner;
RESET search_path;
DROP SCHEMA test_upgrade CASCADE;
