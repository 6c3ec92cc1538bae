-- kmeans: k-means clustering of float arrays inside PostgreSQL.
-- This file is the only SQL source; the Makefile copies it to kmeans--<version>.sql.

\echo Use "CREATE EXTENSION kmeans" to load this file. \quit

-- Saved models: one row per name, written by kmeans_fit(..., model => name).
-- Every expression here (defaults, checks, policies) is stored parsed, with the objects it
-- names resolved now; none is looked up again under a caller's search_path.
CREATE TABLE kmeans_models (
    name        text PRIMARY KEY,
    k           integer NOT NULL CHECK (k >= 1),
    dim         integer NOT NULL CHECK (dim >= 1),
    metric      text NOT NULL DEFAULT 'euclidean',
    centers     real[] NOT NULL,
    inertia     double precision NOT NULL,
    n_iter      integer NOT NULL,
    n_rows      bigint NOT NULL,
    options     jsonb NOT NULL DEFAULT '{}',
    source      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    owner       name NOT NULL DEFAULT current_user,
    version     integer NOT NULL DEFAULT 1,
    CONSTRAINT kmeans_models_centers_shape CHECK (
        array_ndims(centers) = 2
        AND array_length(centers, 1) = k
        AND array_length(centers, 2) = dim),
    -- real's = finds NaN too (PostgreSQL orders NaN as one value, above Infinity)
    CONSTRAINT kmeans_models_centers_finite CHECK (
        NOT (centers && '{NaN,Infinity,-Infinity}'::real[]))
);
COMMENT ON TABLE kmeans_models IS 'k-means models saved by kmeans_fit(..., model => name)';
COMMENT ON COLUMN kmeans_models.name IS 'the model''s name, as given to kmeans_fit(..., model => name)';
COMMENT ON COLUMN kmeans_models.k IS 'number of clusters';
COMMENT ON COLUMN kmeans_models.dim IS 'length of every vector fitted and labelled';
COMMENT ON COLUMN kmeans_models.metric IS 'the distance the clusters were fitted with';
COMMENT ON COLUMN kmeans_models.centers IS
    'k x dim cluster centers; row j + 1 is cluster j, as kmeans_predict numbers them';
COMMENT ON COLUMN kmeans_models.inertia IS
    'sum over the fitted rows of the squared distance to their center (1 - cosine under the cosine metric), each times its weight in a weighted fit, from the final assignment';
COMMENT ON COLUMN kmeans_models.n_iter IS 'Lloyd iterations of the kept run';
COMMENT ON COLUMN kmeans_models.n_rows IS 'rows fitted (NULL vectors are skipped and not counted)';
COMMENT ON COLUMN kmeans_models.options IS 'the options of the fit, as jsonb';
COMMENT ON COLUMN kmeans_models.source IS 'the source as given: a table name or a query';
COMMENT ON COLUMN kmeans_models.created_at IS 'when the model was saved (the start of the saving transaction)';
COMMENT ON COLUMN kmeans_models.owner IS
    'the role whose members may replace, update or delete the model';
COMMENT ON COLUMN kmeans_models.version IS
    'counts the fits saved under this name, from 1; earlier ones are in kmeans_model_versions';
SELECT pg_catalog.pg_extension_config_dump('kmeans_models', '');

-- Models are shared for reading (labelling with kmeans_predict is what they are for) and owned
-- for writing: a role granted SELECT reads every model; a role granted INSERT, UPDATE or
-- DELETE writes only models whose owner is itself or a role it is a member of, and cannot
-- give one to any other role.  The owner is looked up among existing roles, so a model whose
-- owner was dropped is left to the table's owner and superusers, who bypass the policies.
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

-- Earlier versions of every model: a refit (or any UPDATE of a model's row) first copies the
-- row it replaces here, keeping the kmeans.model_versions most recent per name (10 unless
-- set; 0 keeps none), so that a user can see how the clusters drifted.  Readable like the
-- models; written only by the trigger below, which runs as the extension's owner, so a role
-- that may refit a model needs no privilege on this table.  A model's owner may delete its
-- versions.
CREATE TABLE kmeans_model_versions (
    name        text NOT NULL,
    version     integer NOT NULL,
    k           integer NOT NULL,
    dim         integer NOT NULL,
    metric      text NOT NULL,
    centers     real[] NOT NULL,
    inertia     double precision NOT NULL,
    n_iter      integer NOT NULL,
    n_rows      bigint NOT NULL,
    options     jsonb NOT NULL,
    source      text NOT NULL,
    created_at  timestamptz NOT NULL,
    owner       name NOT NULL,
    replaced_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE kmeans_model_versions IS
    'earlier versions of the models in kmeans_models, as each refit replaced them';
COMMENT ON COLUMN kmeans_model_versions.version IS
    'the version number the model had (kmeans_models.version counts from 1)';
COMMENT ON COLUMN kmeans_model_versions.replaced_at IS 'when a newer version replaced this one';
SELECT pg_catalog.pg_extension_config_dump('kmeans_model_versions', '');
ALTER TABLE kmeans_model_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY kmeans_model_versions_read ON kmeans_model_versions FOR SELECT USING (true);
CREATE POLICY kmeans_model_versions_delete ON kmeans_model_versions FOR DELETE
    USING (owner IN (SELECT r.rolname FROM pg_catalog.pg_roles r
                     WHERE pg_catalog.pg_has_role(r.oid, 'MEMBER')));

-- Copies the row an UPDATE replaces into kmeans_model_versions, drops the versions beyond the
-- retention, and numbers the new row one version on.  SECURITY DEFINER with a pinned
-- search_path: it writes the versions table as the extension's owner and resolves nothing
-- under the caller's search_path.
CREATE FUNCTION kmeans_keep_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keep integer := coalesce(nullif(current_setting('kmeans.model_versions', true), '')::integer, 10);
BEGIN
    IF keep > 0 THEN
        INSERT INTO @extschema@.kmeans_model_versions
            (name, version, k, dim, metric, centers, inertia, n_iter, n_rows, options, source,
             created_at, owner)
        VALUES (OLD.name, OLD.version, OLD.k, OLD.dim, OLD.metric, OLD.centers, OLD.inertia,
                OLD.n_iter, OLD.n_rows, OLD.options, OLD.source, OLD.created_at, OLD.owner)
        ON CONFLICT (name, version) DO NOTHING;
    END IF;
    DELETE FROM @extschema@.kmeans_model_versions v
    WHERE v.name = OLD.name AND v.version <= OLD.version - keep;
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION kmeans_keep_version() FROM PUBLIC;
COMMENT ON FUNCTION kmeans_keep_version()
IS 'trigger of kmeans_models: keeps the replaced row in kmeans_model_versions';
CREATE TRIGGER kmeans_models_keep_version BEFORE UPDATE ON kmeans_models
    FOR EACH ROW EXECUTE FUNCTION kmeans_keep_version();

CREATE FUNCTION kmeans_fit(
    source       text,
    column_name  text,
    k            integer,
    max_iter     integer DEFAULT 300,
    tol          double precision DEFAULT NULL,
    init         text DEFAULT NULL,
    init_centers real[] DEFAULT NULL,
    n_init       integer DEFAULT 1,
    seed         bigint DEFAULT 0,
    device       text DEFAULT NULL,
    id           text DEFAULT NULL,
    model        text DEFAULT NULL,
    weight       text DEFAULT NULL,
    metric       text DEFAULT 'euclidean',
    center       text DEFAULT 'mean',
    strategy     text DEFAULT NULL,
    algorithm    text DEFAULT 'lloyd',
    batch_size   integer DEFAULT 1024,
    dtw_band     integer DEFAULT NULL,
    barycenter_iter integer DEFAULT 30,
    gamma        double precision DEFAULT NULL)
RETURNS TABLE (cluster integer, center real[], size bigint, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_fit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_fit(text, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text, text, integer, integer, integer,
    double precision)
IS 'k-means of the vectors in column_name of source: one row per cluster';

CREATE FUNCTION kmeans_labels(
    source       text,
    column_name  text,
    k            integer,
    max_iter     integer DEFAULT 300,
    tol          double precision DEFAULT NULL,
    init         text DEFAULT NULL,
    init_centers real[] DEFAULT NULL,
    n_init       integer DEFAULT 1,
    seed         bigint DEFAULT 0,
    device       text DEFAULT NULL,
    id           text DEFAULT NULL,
    model        text DEFAULT NULL,
    weight       text DEFAULT NULL,
    metric       text DEFAULT 'euclidean',
    center       text DEFAULT 'mean',
    strategy     text DEFAULT NULL,
    algorithm    text DEFAULT 'lloyd',
    batch_size   integer DEFAULT 1024,
    dtw_band     integer DEFAULT NULL,
    barycenter_iter integer DEFAULT 30,
    gamma        double precision DEFAULT NULL)
RETURNS TABLE (id bigint, cluster integer, distance double precision)
AS 'MODULE_PATHNAME', 'kmeans_labels'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_labels(text, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text, text, integer, integer, integer,
    double precision)
IS 'k-means of the vectors in column_name of source: every row''s id, cluster and distance';

CREATE FUNCTION kmeans_predict(model text, x real[])
RETURNS integer
AS 'MODULE_PATHNAME', 'kmeans_predict_model'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION kmeans_predict(text, real[])
IS 'the cluster of a saved model nearest to x';

CREATE FUNCTION kmeans_predict(centers real[], x real[])
RETURNS integer
AS 'MODULE_PATHNAME', 'kmeans_predict_centers'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION kmeans_predict(real[], real[])
IS 'the row of a k x d array of centers nearest to x';

CREATE FUNCTION kmeans_predict(centers real[], x real[], metric text)
RETURNS integer
AS 'MODULE_PATHNAME', 'kmeans_predict_centers'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION kmeans_predict(real[], real[], text)
IS 'the row of a k x d array of centers nearest to x by the metric (''euclidean'', ''cosine'', ''iou'', ''dtw'' or ''softdtw'' with gamma 1)';

CREATE FUNCTION kmeans_dtw(x real[], y real[], band integer DEFAULT NULL)
RETURNS double precision
AS 'MODULE_PATHNAME', 'kmeans_dtw'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION kmeans_dtw(real[], real[], integer)
IS 'the dynamic time warping distance of two series, within a Sakoe-Chiba band of radius band (NULL: none)';

CREATE FUNCTION kmeans_softdtw(x real[], y real[], gamma double precision DEFAULT 1.0,
    band integer DEFAULT NULL)
RETURNS double precision
AS 'MODULE_PATHNAME', 'kmeans_softdtw'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION kmeans_softdtw(real[], real[], double precision, integer)
IS 'the soft-DTW of two series with smoothing gamma (Cuturi and Blondel 2017; tends to DTW squared as gamma tends to 0, and can be negative), within a Sakoe-Chiba band of radius band (NULL: none)';

CREATE FUNCTION kmeans_centers(model text)
RETURNS TABLE (cluster integer, center real[])
AS 'MODULE_PATHNAME', 'kmeans_centers'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION kmeans_centers(text)
IS 'the centers of a saved model, one row per cluster';

CREATE FUNCTION kmeans_elbow(
    source            text,
    column_name       text,
    k_min             integer,
    k_max             integer,
    k_step            integer DEFAULT 1,
    max_iter          integer DEFAULT 300,
    tol               double precision DEFAULT NULL,
    init              text DEFAULT NULL,
    n_init            integer DEFAULT 1,
    seed              bigint DEFAULT 0,
    device            text DEFAULT NULL,
    silhouette_sample integer DEFAULT 2000,
    id                text DEFAULT NULL,
    weight            text DEFAULT NULL,
    metric            text DEFAULT 'euclidean',
    center            text DEFAULT 'mean',
    strategy          text DEFAULT NULL,
    algorithm         text DEFAULT 'lloyd',
    batch_size        integer DEFAULT 1024,
    dtw_band          integer DEFAULT NULL,
    barycenter_iter   integer DEFAULT 30,
    gamma             double precision DEFAULT NULL)
RETURNS TABLE (k integer, inertia double precision, mean_inertia double precision,
               n_iter integer, silhouette double precision,
               calinski_harabasz double precision, davies_bouldin double precision,
               elbow boolean)
AS 'MODULE_PATHNAME', 'kmeans_elbow'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_elbow(text, text, integer, integer, integer, integer,
    double precision, text, integer, bigint, text, integer, text, text, text, text, text, text,
    integer, integer, integer, double precision)
IS 'k-means for every k of a range in shared passes: inertia, quality indices, suggested k';

-- The same three with the source as regclass: a view or materialized view over them records
-- its dependency on the table, and pg_dump writes the name schema-qualified, so the view
-- restores under pg_restore's empty search_path.  A quoted literal still means the text form.
CREATE FUNCTION kmeans_fit(
    source       regclass,
    column_name  text,
    k            integer,
    max_iter     integer DEFAULT 300,
    tol          double precision DEFAULT NULL,
    init         text DEFAULT NULL,
    init_centers real[] DEFAULT NULL,
    n_init       integer DEFAULT 1,
    seed         bigint DEFAULT 0,
    device       text DEFAULT NULL,
    id           text DEFAULT NULL,
    model        text DEFAULT NULL,
    weight       text DEFAULT NULL,
    metric       text DEFAULT 'euclidean',
    center       text DEFAULT 'mean',
    strategy     text DEFAULT NULL,
    algorithm    text DEFAULT 'lloyd',
    batch_size   integer DEFAULT 1024,
    dtw_band     integer DEFAULT NULL,
    barycenter_iter integer DEFAULT 30,
    gamma        double precision DEFAULT NULL)
RETURNS TABLE (cluster integer, center real[], size bigint, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_fit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_fit(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text, text, integer, integer, integer,
    double precision)
IS 'k-means of the vectors in column_name of source: one row per cluster, from a table, view or materialized view named by OID';

CREATE FUNCTION kmeans_labels(
    source       regclass,
    column_name  text,
    k            integer,
    max_iter     integer DEFAULT 300,
    tol          double precision DEFAULT NULL,
    init         text DEFAULT NULL,
    init_centers real[] DEFAULT NULL,
    n_init       integer DEFAULT 1,
    seed         bigint DEFAULT 0,
    device       text DEFAULT NULL,
    id           text DEFAULT NULL,
    model        text DEFAULT NULL,
    weight       text DEFAULT NULL,
    metric       text DEFAULT 'euclidean',
    center       text DEFAULT 'mean',
    strategy     text DEFAULT NULL,
    algorithm    text DEFAULT 'lloyd',
    batch_size   integer DEFAULT 1024,
    dtw_band     integer DEFAULT NULL,
    barycenter_iter integer DEFAULT 30,
    gamma        double precision DEFAULT NULL)
RETURNS TABLE (id bigint, cluster integer, distance double precision)
AS 'MODULE_PATHNAME', 'kmeans_labels'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_labels(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text, text, integer, integer, integer,
    double precision)
IS 'k-means of the vectors in column_name of source: every row''s id, cluster and distance, from a table, view or materialized view named by OID';

CREATE FUNCTION kmeans_elbow(
    source            regclass,
    column_name       text,
    k_min             integer,
    k_max             integer,
    k_step            integer DEFAULT 1,
    max_iter          integer DEFAULT 300,
    tol               double precision DEFAULT NULL,
    init              text DEFAULT NULL,
    n_init            integer DEFAULT 1,
    seed              bigint DEFAULT 0,
    device            text DEFAULT NULL,
    silhouette_sample integer DEFAULT 2000,
    id                text DEFAULT NULL,
    weight            text DEFAULT NULL,
    metric            text DEFAULT 'euclidean',
    center            text DEFAULT 'mean',
    strategy          text DEFAULT NULL,
    algorithm         text DEFAULT 'lloyd',
    batch_size        integer DEFAULT 1024,
    dtw_band          integer DEFAULT NULL,
    barycenter_iter   integer DEFAULT 30,
    gamma             double precision DEFAULT NULL)
RETURNS TABLE (k integer, inertia double precision, mean_inertia double precision,
               n_iter integer, silhouette double precision,
               calinski_harabasz double precision, davies_bouldin double precision,
               elbow boolean)
AS 'MODULE_PATHNAME', 'kmeans_elbow'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_elbow(regclass, text, integer, integer, integer, integer,
    double precision, text, integer, bigint, text, integer, text, text, text, text, text, text,
    integer, integer, integer, double precision)
IS 'k-means for every k of a range in shared passes: inertia, quality indices, suggested k, from a table, view or materialized view named by OID';

-- The engine's own account of the session's last fit, step by step: what benchmarks and
-- tuning read instead of timing NOTICEs.  Session-local, so never run in a parallel worker.
CREATE FUNCTION kmeans_last_fit()
RETURNS TABLE (step integer, phase text, run integer, iteration integer, k_running integer,
               seconds double precision, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_last_fit'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION kmeans_last_fit()
IS 'the timed steps (read, seed, iterate, final, quality) of this session''s last fit';

-- Every running fit of the server, as another connection sees it: kmeans_progress.  Works
-- without shared_preload_libraries (the slots then come from the server's spare shared memory,
-- and the function says so where there was none left).
CREATE FUNCTION kmeans_progress()
RETURNS TABLE (pid integer, userid oid, function text, phase text, k_min integer, k_max integer,
               run integer, n_init integer, iteration integer, rows_done bigint,
               rows_total bigint, inertia double precision, started timestamptz,
               elapsed interval)
AS 'MODULE_PATHNAME', 'kmeans_progress'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION kmeans_progress()
IS 'a row per running fit of the server: phase, k, run, iteration, rows of the current pass, inertia';

CREATE VIEW kmeans_progress AS
SELECT p.pid, pg_catalog.pg_get_userbyid(p.userid) AS usename, p.function, p.phase,
       p.k_min, p.k_max, p.run, p.n_init, p.iteration, p.rows_done, p.rows_total, p.inertia,
       p.started, p.elapsed
FROM @extschema@.kmeans_progress() AS p;

COMMENT ON VIEW kmeans_progress
IS 'the running fits of the server: phase (reading, seeding, iterating, labelling, quality), k, run, iteration (an epoch for mini-batch), rows done of the current pass, inertia, elapsed time';

-- One Lloyd iteration as an ordinary aggregate: kmeans_step(x, centers) assigns every row to
-- its nearest center and sums the clusters; its combine function lets PostgreSQL run it in
-- parallel workers and Citus on its worker nodes.  The state is a type of its own (not
-- internal), whose binary send and receive functions carry it between processes and nodes.
CREATE TYPE kmeans_step_state;
CREATE FUNCTION kmeans_step_state_in(cstring) RETURNS kmeans_step_state
AS 'MODULE_PATHNAME', 'kmeans_step_state_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION kmeans_step_state_out(kmeans_step_state) RETURNS cstring
AS 'MODULE_PATHNAME', 'kmeans_step_state_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION kmeans_step_state_recv(internal) RETURNS kmeans_step_state
AS 'MODULE_PATHNAME', 'kmeans_step_state_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION kmeans_step_state_send(kmeans_step_state) RETURNS bytea
AS 'MODULE_PATHNAME', 'kmeans_step_state_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE kmeans_step_state (
    INPUT = kmeans_step_state_in,
    OUTPUT = kmeans_step_state_out,
    RECEIVE = kmeans_step_state_recv,
    SEND = kmeans_step_state_send,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE kmeans_step_state
IS 'the partial state of kmeans_step: the centers, and per cluster the row count and exact sums';

CREATE TYPE kmeans_step_result AS (
    centers          real[],
    sizes            bigint[],
    inertia          double precision,
    cluster_inertia  double precision[],
    n_rows           bigint,
    center_shift     double precision
);
COMMENT ON TYPE kmeans_step_result
IS 'one Lloyd iteration: the new k x d centers, rows and squared distances per cluster, their totals, and the sum of the centers'' squared movements';

CREATE FUNCTION kmeans_step_transfn(kmeans_step_state, real[], real[]) RETURNS kmeans_step_state
AS 'MODULE_PATHNAME', 'kmeans_step_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION kmeans_step_transfn(kmeans_step_state, real[], real[], text) RETURNS kmeans_step_state
AS 'MODULE_PATHNAME', 'kmeans_step_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION kmeans_step_combine(kmeans_step_state, kmeans_step_state) RETURNS kmeans_step_state
AS 'MODULE_PATHNAME', 'kmeans_step_combine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION kmeans_step_final(kmeans_step_state) RETURNS kmeans_step_result
AS 'MODULE_PATHNAME', 'kmeans_step_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE AGGREGATE kmeans_step(x real[], centers real[]) (
    SFUNC = kmeans_step_transfn,
    STYPE = kmeans_step_state,
    COMBINEFUNC = kmeans_step_combine,
    FINALFUNC = kmeans_step_final,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE kmeans_step(real[], real[])
IS 'one Lloyd iteration over the rows: each row to its nearest of the k x d centers; the new centers, sizes and inertia, the same bits however parallel';
CREATE AGGREGATE kmeans_step(x real[], centers real[], metric text) (
    SFUNC = kmeans_step_transfn,
    STYPE = kmeans_step_state,
    COMBINEFUNC = kmeans_step_combine,
    FINALFUNC = kmeans_step_final,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE kmeans_step(real[], real[], text)
IS 'one Lloyd iteration by a metric (''euclidean'', ''cosine'' or ''iou''): the new centers, sizes and inertia';

-- One model per GROUP BY group: kmeans_agg(x, k [, options jsonb]).  Aggregates take no named
-- arguments, so the options of kmeans_fit (max_iter, tol, init, init_centers, n_init, seed,
-- device, metric, center) come as one jsonb object.  A group's rows are kept in memory
-- (within kmeans.memory_limit) and fitted as kmeans_fit fits them.
CREATE TYPE kmeans_model AS (
    k         integer,
    dim       integer,
    metric    text,
    centers   real[],
    sizes     bigint[],
    inertia   double precision,
    n_iter    integer,
    n_rows    bigint,
    options   jsonb
);
COMMENT ON TYPE kmeans_model
IS 'a fitted k-means model: k x dim centers (row j + 1 is cluster j), rows per cluster, inertia, iterations, rows fitted and the options';

-- SSPACE: a group's state holds its rows, so the planner is told it is large and sorts many
-- groups rather than hashing them all into memory at once.
CREATE FUNCTION kmeans_agg_transfn(internal, real[], integer) RETURNS internal
AS 'MODULE_PATHNAME', 'kmeans_agg_transfn' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
CREATE FUNCTION kmeans_agg_transfn(internal, real[], integer, jsonb) RETURNS internal
AS 'MODULE_PATHNAME', 'kmeans_agg_transfn' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
CREATE FUNCTION kmeans_agg_final(internal) RETURNS kmeans_model
AS 'MODULE_PATHNAME', 'kmeans_agg_final' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
CREATE AGGREGATE kmeans_agg(x real[], k integer) (
    SFUNC = kmeans_agg_transfn,
    STYPE = internal,
    FINALFUNC = kmeans_agg_final,
    FINALFUNC_MODIFY = READ_WRITE,
    SSPACE = 262144,
    PARALLEL = RESTRICTED
);
CREATE AGGREGATE kmeans_agg(x real[], k integer, options jsonb) (
    SFUNC = kmeans_agg_transfn,
    STYPE = internal,
    FINALFUNC = kmeans_agg_final,
    FINALFUNC_MODIFY = READ_WRITE,
    SSPACE = 262144,
    PARALLEL = RESTRICTED
);
COMMENT ON AGGREGATE kmeans_agg(real[], integer)
IS 'k-means of the group''s vectors, as a kmeans_model';
COMMENT ON AGGREGATE kmeans_agg(real[], integer, jsonb)
IS 'k-means of the group''s vectors with options (a jsonb object of kmeans_fit''s options), as a kmeans_model';

-- Each row's cluster inline: kmeans_cluster(x, k [, options]) OVER (PARTITION BY ... ORDER BY ...),
-- one fit per partition, in the partition's order.
CREATE FUNCTION kmeans_cluster(x real[], k integer) RETURNS integer
AS 'MODULE_PATHNAME', 'kmeans_cluster' LANGUAGE C VOLATILE WINDOW PARALLEL RESTRICTED;
CREATE FUNCTION kmeans_cluster(x real[], k integer, options jsonb) RETURNS integer
AS 'MODULE_PATHNAME', 'kmeans_cluster' LANGUAGE C VOLATILE WINDOW PARALLEL RESTRICTED;
COMMENT ON FUNCTION kmeans_cluster(real[], integer)
IS 'window function: the row''s cluster in a k-means fit of its partition (NULL for a NULL vector)';
COMMENT ON FUNCTION kmeans_cluster(real[], integer, jsonb)
IS 'window function: the row''s cluster in a k-means fit of its partition with options (NULL for a NULL vector)';

-- A kmeans_model labels rows and is saved like a fitted model.
CREATE FUNCTION kmeans_predict(model kmeans_model, x real[]) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN @extschema@.kmeans_predict((model).centers, x, (model).metric);
COMMENT ON FUNCTION kmeans_predict(kmeans_model, real[])
IS 'the nearest of the model''s centers to x, by the model''s metric';

-- Saves a kmeans_model (from kmeans_agg) in kmeans_models as kmeans_fit(..., model => name)
-- does, with the caller's privileges, under the table's policies.
CREATE FUNCTION kmeans_save_model(name text, model kmeans_model, source text DEFAULT 'kmeans_agg')
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'model name must not be empty or NULL'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass the name to save the model under.';
    END IF;
    IF model IS NULL OR model.centers IS NULL THEN
        RAISE EXCEPTION 'the model to save as "%" is NULL', name
            USING ERRCODE = 'null_value_not_allowed', HINT = 'kmeans_agg gives NULL for a group of only NULL vectors.';
    END IF;
    INSERT INTO @extschema@.kmeans_models AS m
        (name, k, dim, metric, centers, inertia, n_iter, n_rows, options, source)
    VALUES (kmeans_save_model.name, model.k, model.dim, coalesce(model.metric, 'euclidean'),
            model.centers, model.inertia, model.n_iter, model.n_rows,
            coalesce(model.options, '{}'), coalesce(kmeans_save_model.source, 'kmeans_agg'))
    ON CONFLICT ON CONSTRAINT kmeans_models_pkey DO UPDATE SET
        k = EXCLUDED.k, dim = EXCLUDED.dim, metric = EXCLUDED.metric, centers = EXCLUDED.centers,
        inertia = EXCLUDED.inertia, n_iter = EXCLUDED.n_iter, n_rows = EXCLUDED.n_rows,
        options = EXCLUDED.options, source = EXCLUDED.source, created_at = now();
END
$$;
COMMENT ON FUNCTION kmeans_save_model(text, kmeans_model, text)
IS 'saves a kmeans_model (e.g. from kmeans_agg) in kmeans_models under name, replacing a model of that name';

-- The passes of strategy => 'aggregate', as aggregates that parallel workers and Citus nodes
-- run and combine: kmeans_step_partial is kmeans_step without its final function (the raw
-- state, whose exact sums the engine reads); kmeans_sample_partial draws the seeding sample.
CREATE AGGREGATE kmeans_step_partial(x real[], centers real[], metric text) (
    SFUNC = kmeans_step_transfn,
    STYPE = kmeans_step_state,
    COMBINEFUNC = kmeans_step_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE kmeans_step_partial(real[], real[], text)
IS 'kmeans_step''s state without its final function: what strategy => ''aggregate'' reads from each pass';

CREATE TYPE kmeans_sample_state;
CREATE FUNCTION kmeans_sample_state_in(cstring) RETURNS kmeans_sample_state
AS 'MODULE_PATHNAME', 'kmeans_sample_state_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION kmeans_sample_state_out(kmeans_sample_state) RETURNS cstring
AS 'MODULE_PATHNAME', 'kmeans_sample_state_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION kmeans_sample_state_recv(internal) RETURNS kmeans_sample_state
AS 'MODULE_PATHNAME', 'kmeans_sample_state_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION kmeans_sample_state_send(kmeans_sample_state) RETURNS bytea
AS 'MODULE_PATHNAME', 'kmeans_sample_state_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE kmeans_sample_state (
    INPUT = kmeans_sample_state_in,
    OUTPUT = kmeans_sample_state_out,
    RECEIVE = kmeans_sample_state_recv,
    SEND = kmeans_sample_state_send,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE kmeans_sample_state
IS 'the partial state of kmeans_sample_partial: row statistics and a hash-drawn sample of rows';
CREATE FUNCTION kmeans_sample_transfn(kmeans_sample_state, real[], real[], text, integer, bigint, integer)
RETURNS kmeans_sample_state
AS 'MODULE_PATHNAME', 'kmeans_sample_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION kmeans_sample_combine(kmeans_sample_state, kmeans_sample_state) RETURNS kmeans_sample_state
AS 'MODULE_PATHNAME', 'kmeans_sample_combine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE AGGREGATE kmeans_sample_partial(x real[], centers real[], metric text, m integer,
                                       seed bigint, round integer) (
    SFUNC = kmeans_sample_transfn,
    STYPE = kmeans_sample_state,
    COMBINEFUNC = kmeans_sample_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE kmeans_sample_partial(real[], real[], text, integer, bigint, integer)
IS 'the seeding pass of strategy => ''aggregate'': row statistics and m rows drawn by a hash of their values (by D^2 to centers in a k-means|| round)';
