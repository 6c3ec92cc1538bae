-- kmeans 0.4.0 -> 0.5.0: the aggregate and window forms, and the aggregate strategy.
-- kmeans_step(x, centers [, metric]), one Lloyd iteration as a parallel-safe aggregate with a
-- combine function; kmeans_agg(x, k, options), one model per GROUP BY group, as a kmeans_model;
-- kmeans_cluster(x, k, options) OVER (...), each row's cluster; kmeans_predict and
-- kmeans_save_model for a kmeans_model; kmeans_step_partial and kmeans_sample_partial, the
-- passes of strategy => 'aggregate', which kmeans_fit, kmeans_labels and kmeans_elbow take now.
-- A function's arguments cannot grow in place, so those six are dropped and created again; a
-- view or materialized view over one of them must be dropped before the update and created
-- again after it (the DROP below stops the update and names it).  The result equals a fresh
-- 0.5.0 install (test/sql/upgrade.sql compares the two).

\echo Use "ALTER EXTENSION kmeans UPDATE TO '0.5.0'" to load this file. \quit

DROP FUNCTION kmeans_fit(text, text, integer, integer, double precision, text, real[], integer,
    bigint, text, text, text, text, text, text);
DROP FUNCTION kmeans_labels(text, text, integer, integer, double precision, text, real[], integer,
    bigint, text, text, text, text, text, text);
DROP FUNCTION kmeans_elbow(text, text, integer, integer, integer, integer, double precision, text,
    integer, bigint, text, integer, text, text, text, text);
DROP FUNCTION kmeans_fit(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text);
DROP FUNCTION kmeans_labels(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text);
DROP FUNCTION kmeans_elbow(regclass, text, integer, integer, integer, integer, double precision,
    text, integer, bigint, text, integer, text, text, text, text);

CREATE FUNCTION kmeans_fit(
    source       text,
    column_name  text,
    k            integer,
    max_iter     integer DEFAULT 300,
    tol          double precision DEFAULT 1e-4,
    init         text DEFAULT 'k-means++',
    init_centers real[] DEFAULT NULL,
    n_init       integer DEFAULT 1,
    seed         bigint DEFAULT 0,
    device       text DEFAULT NULL,
    id           text DEFAULT NULL,
    model        text DEFAULT NULL,
    weight       text DEFAULT NULL,
    metric       text DEFAULT 'euclidean',
    center       text DEFAULT 'mean',
    strategy     text DEFAULT NULL)
RETURNS TABLE (cluster integer, center real[], size bigint, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_fit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_fit(text, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text)
IS 'k-means of the vectors in column_name of source: one row per cluster';

CREATE FUNCTION kmeans_labels(
    source       text,
    column_name  text,
    k            integer,
    max_iter     integer DEFAULT 300,
    tol          double precision DEFAULT 1e-4,
    init         text DEFAULT 'k-means++',
    init_centers real[] DEFAULT NULL,
    n_init       integer DEFAULT 1,
    seed         bigint DEFAULT 0,
    device       text DEFAULT NULL,
    id           text DEFAULT NULL,
    model        text DEFAULT NULL,
    weight       text DEFAULT NULL,
    metric       text DEFAULT 'euclidean',
    center       text DEFAULT 'mean',
    strategy     text DEFAULT NULL)
RETURNS TABLE (id bigint, cluster integer, distance double precision)
AS 'MODULE_PATHNAME', 'kmeans_labels'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_labels(text, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text)
IS 'k-means of the vectors in column_name of source: every row''s id, cluster and distance';

CREATE FUNCTION kmeans_elbow(
    source            text,
    column_name       text,
    k_min             integer,
    k_max             integer,
    k_step            integer DEFAULT 1,
    max_iter          integer DEFAULT 300,
    tol               double precision DEFAULT 1e-4,
    init              text DEFAULT 'k-means++',
    n_init            integer DEFAULT 1,
    seed              bigint DEFAULT 0,
    device            text DEFAULT NULL,
    silhouette_sample integer DEFAULT 2000,
    id                text DEFAULT NULL,
    weight            text DEFAULT NULL,
    metric            text DEFAULT 'euclidean',
    center            text DEFAULT 'mean',
    strategy          text DEFAULT NULL)
RETURNS TABLE (k integer, inertia double precision, mean_inertia double precision,
               n_iter integer, silhouette double precision,
               calinski_harabasz double precision, davies_bouldin double precision,
               elbow boolean)
AS 'MODULE_PATHNAME', 'kmeans_elbow'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_elbow(text, text, integer, integer, integer, integer,
    double precision, text, integer, bigint, text, integer, text, text, text, text, text)
IS 'k-means for every k of a range in shared passes: inertia, quality indices, suggested k';

CREATE FUNCTION kmeans_fit(
    source       regclass,
    column_name  text,
    k            integer,
    max_iter     integer DEFAULT 300,
    tol          double precision DEFAULT 1e-4,
    init         text DEFAULT 'k-means++',
    init_centers real[] DEFAULT NULL,
    n_init       integer DEFAULT 1,
    seed         bigint DEFAULT 0,
    device       text DEFAULT NULL,
    id           text DEFAULT NULL,
    model        text DEFAULT NULL,
    weight       text DEFAULT NULL,
    metric       text DEFAULT 'euclidean',
    center       text DEFAULT 'mean',
    strategy     text DEFAULT NULL)
RETURNS TABLE (cluster integer, center real[], size bigint, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_fit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_fit(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text)
IS 'k-means of the vectors in column_name of source: one row per cluster, from a table, view or materialized view named by OID';

CREATE FUNCTION kmeans_labels(
    source       regclass,
    column_name  text,
    k            integer,
    max_iter     integer DEFAULT 300,
    tol          double precision DEFAULT 1e-4,
    init         text DEFAULT 'k-means++',
    init_centers real[] DEFAULT NULL,
    n_init       integer DEFAULT 1,
    seed         bigint DEFAULT 0,
    device       text DEFAULT NULL,
    id           text DEFAULT NULL,
    model        text DEFAULT NULL,
    weight       text DEFAULT NULL,
    metric       text DEFAULT 'euclidean',
    center       text DEFAULT 'mean',
    strategy     text DEFAULT NULL)
RETURNS TABLE (id bigint, cluster integer, distance double precision)
AS 'MODULE_PATHNAME', 'kmeans_labels'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_labels(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text)
IS 'k-means of the vectors in column_name of source: every row''s id, cluster and distance, from a table, view or materialized view named by OID';

CREATE FUNCTION kmeans_elbow(
    source            regclass,
    column_name       text,
    k_min             integer,
    k_max             integer,
    k_step            integer DEFAULT 1,
    max_iter          integer DEFAULT 300,
    tol               double precision DEFAULT 1e-4,
    init              text DEFAULT 'k-means++',
    n_init            integer DEFAULT 1,
    seed              bigint DEFAULT 0,
    device            text DEFAULT NULL,
    silhouette_sample integer DEFAULT 2000,
    id                text DEFAULT NULL,
    weight            text DEFAULT NULL,
    metric            text DEFAULT 'euclidean',
    center            text DEFAULT 'mean',
    strategy          text DEFAULT NULL)
RETURNS TABLE (k integer, inertia double precision, mean_inertia double precision,
               n_iter integer, silhouette double precision,
               calinski_harabasz double precision, davies_bouldin double precision,
               elbow boolean)
AS 'MODULE_PATHNAME', 'kmeans_elbow'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_elbow(regclass, text, integer, integer, integer, integer,
    double precision, text, integer, bigint, text, integer, text, text, text, text, text)
IS 'k-means for every k of a range in shared passes: inertia, quality indices, suggested k, from a table, view or materialized view named by OID';


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
