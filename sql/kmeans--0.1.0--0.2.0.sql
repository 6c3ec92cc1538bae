-- kmeans 0.1.0 -> 0.2.0: models have owners, and their centers must be finite.
-- The result equals a fresh 0.2.0 install (test/sql/upgrade.sql compares the two).

\echo Use "ALTER EXTENSION kmeans UPDATE TO '0.2.0'" to load this file. \quit

-- Models saved before 0.2.0 have no known author: they go to the role that owns the table
-- (the one that created the extension), the one role that could always change them.  It can
-- hand each on with UPDATE kmeans_models SET owner = ... WHERE name = ....
ALTER TABLE kmeans_models ADD COLUMN owner name;
UPDATE kmeans_models
SET owner = (SELECT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c
             WHERE c.oid = 'kmeans_models'::pg_catalog.regclass);
ALTER TABLE kmeans_models
    ALTER COLUMN owner SET DEFAULT current_user,
    ALTER COLUMN owner SET NOT NULL;
COMMENT ON COLUMN kmeans_models.owner IS
    'the role whose members may replace, update or delete the model';

-- A saved model with a NaN or infinite center makes this fail: such a model labelled
-- vectors wrongly.  Delete or fit it again first (see the README).
ALTER TABLE kmeans_models ADD CONSTRAINT kmeans_models_centers_finite CHECK (
    NOT (centers && '{NaN,Infinity,-Infinity}'::real[]));

ALTER TABLE kmeans_models ENABLE ROW LEVEL SECURITY;
CREATE POLICY kmeans_models_read ON kmeans_models FOR SELECT USING (true);
CREATE POLICY kmeans_models_insert ON kmeans_models FOR INSERT
    WITH CHECK (owner IN (SELECT r.rolname FROM pg_catalog.pg_roles r
                          WHERE pg_catalog.pg_has_role(r.oid, 'MEMBER')));
CREATE POLICY kmeans_models_update ON kmeans_models FOR UPDATE
    USING (owner IN (SELECT r.rolname FROM pg_catalog.pg_roles r
                     WHERE pg_catalog.pg_has_role(r.oid, 'MEMBER')))
    WITH CHECK (owner IN (SELECT r.rolname FROM pg_catalog.pg_roles r
                          WHERE pg_catalog.pg_has_role(r.oid, 'MEMBER')));
CREATE POLICY kmeans_models_delete ON kmeans_models FOR DELETE
    USING (owner IN (SELECT r.rolname FROM pg_catalog.pg_roles r
                     WHERE pg_catalog.pg_has_role(r.oid, 'MEMBER')));
