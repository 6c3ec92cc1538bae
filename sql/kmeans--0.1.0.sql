-- kmeans: k-means clustering of float arrays inside PostgreSQL.
-- This file is the only SQL source; the Makefile copies it to kmeans--<version>.sql.

\echo Use "CREATE EXTENSION kmeans" to load this file. \quit

-- Saved models: one row per name, written by kmeans_fit(..., model => name).
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
    CONSTRAINT kmeans_models_centers_shape CHECK (
        array_ndims(centers) = 2
        AND array_length(centers, 1) = k
        AND array_length(centers, 2) = dim)
);
COMMENT ON TABLE kmeans_models IS 'k-means models saved by kmeans_fit(..., model => name)';
SELECT pg_catalog.pg_extension_config_dump('kmeans_models', '');

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
    model        text DEFAULT NULL)
RETURNS TABLE (cluster integer, center real[], size bigint, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_fit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_fit(text, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text)
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
    model        text DEFAULT NULL)
RETURNS TABLE (id bigint, cluster integer, distance double precision)
AS 'MODULE_PATHNAME', 'kmeans_labels'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_labels(text, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text)
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
    tol               double precision DEFAULT 1e-4,
    init              text DEFAULT 'k-means++',
    n_init            integer DEFAULT 1,
    seed              bigint DEFAULT 0,
    device            text DEFAULT NULL,
    silhouette_sample integer DEFAULT 2000,
    id                text DEFAULT NULL)
RETURNS TABLE (k integer, inertia double precision, mean_inertia double precision,
               n_iter integer, silhouette double precision,
               calinski_harabasz double precision, davies_bouldin double precision,
               elbow boolean)
AS 'MODULE_PATHNAME', 'kmeans_elbow'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_elbow(text, text, integer, integer, integer, integer,
    double precision, text, integer, bigint, text, integer, text)
IS 'k-means for every k of a range in shared passes: inertia, quality indices, suggested k';
