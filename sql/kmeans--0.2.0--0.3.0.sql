-- kmeans 0.2.0 -> 0.3.0: kmeans_last_fit(), the timed steps of the session's last fit; the
-- fitting functions with the source as regclass; a comment on every column of kmeans_models.
-- The result equals a fresh 0.3.0 install (test/sql/upgrade.sql compares the two).

\echo Use "ALTER EXTENSION kmeans UPDATE TO '0.3.0'" to load this file. \quit

CREATE FUNCTION kmeans_last_fit()
RETURNS TABLE (step integer, phase text, run integer, iteration integer, k_running integer,
               seconds double precision, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_last_fit'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION kmeans_last_fit()
IS 'the timed steps (read, seed, iterate, final, quality) of this session''s last fit';

COMMENT ON COLUMN kmeans_models.name IS 'the model''s name, as given to kmeans_fit(..., model => name)';
COMMENT ON COLUMN kmeans_models.k IS 'number of clusters';
COMMENT ON COLUMN kmeans_models.dim IS 'length of every vector fitted and labelled';
COMMENT ON COLUMN kmeans_models.metric IS 'the distance the clusters were fitted with';
COMMENT ON COLUMN kmeans_models.centers IS
    'k x dim cluster centers; row j + 1 is cluster j, as kmeans_predict numbers them';
COMMENT ON COLUMN kmeans_models.inertia IS
    'sum of squared distances of the fitted rows to their centers, from the final assignment';
COMMENT ON COLUMN kmeans_models.n_iter IS 'Lloyd iterations of the kept run';
COMMENT ON COLUMN kmeans_models.n_rows IS 'rows fitted (NULL vectors are skipped and not counted)';
COMMENT ON COLUMN kmeans_models.options IS 'the options of the fit, as jsonb';
COMMENT ON COLUMN kmeans_models.source IS 'the source as given: a table name or a query';
COMMENT ON COLUMN kmeans_models.created_at IS 'when the model was saved (the start of the saving transaction)';

-- The same three with the source as regclass: a view or materialized view over them records
-- its dependency on the table, and pg_dump writes the name schema-qualified, so the view
-- restores under pg_restore's empty search_path.  A quoted literal still means the text form.
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
    model        text DEFAULT NULL)
RETURNS TABLE (cluster integer, center real[], size bigint, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_fit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_fit(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text)
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
    model        text DEFAULT NULL)
RETURNS TABLE (id bigint, cluster integer, distance double precision)
AS 'MODULE_PATHNAME', 'kmeans_labels'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_labels(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text)
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
    id                text DEFAULT NULL)
RETURNS TABLE (k integer, inertia double precision, mean_inertia double precision,
               n_iter integer, silhouette double precision,
               calinski_harabasz double precision, davies_bouldin double precision,
               elbow boolean)
AS 'MODULE_PATHNAME', 'kmeans_elbow'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_elbow(regclass, text, integer, integer, integer, integer,
    double precision, text, integer, bigint, text, integer, text)
IS 'k-means for every k of a range in shared passes: inertia, quality indices, suggested k, from a table, view or materialized view named by OID';
