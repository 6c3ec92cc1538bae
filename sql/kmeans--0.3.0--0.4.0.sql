-- kmeans 0.3.0 -> 0.4.0: weights and metrics.  kmeans_fit, kmeans_labels and kmeans_elbow
-- (text and regclass sources) take weight => 'column or expression', a non-negative weight per
-- row, metric => 'euclidean' | 'cosine' | 'iou' and, for iou, center => 'median';
-- kmeans_predict(centers, x, metric) labels by a metric.
-- A function's arguments cannot grow in place, so the six are dropped and created again; a
-- view or materialized view over one of them must be dropped before the update and created
-- again after it (the DROP below stops the update and names it).  The result equals a fresh
-- 0.4.0 install (test/sql/upgrade.sql compares the two).

\echo Use "ALTER EXTENSION kmeans UPDATE TO '0.4.0'" to load this file. \quit

DROP FUNCTION kmeans_fit(text, text, integer, integer, double precision, text, real[], integer,
    bigint, text, text, text);
DROP FUNCTION kmeans_labels(text, text, integer, integer, double precision, text, real[], integer,
    bigint, text, text, text);
DROP FUNCTION kmeans_elbow(text, text, integer, integer, integer, integer, double precision, text,
    integer, bigint, text, integer, text);
DROP FUNCTION kmeans_fit(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text);
DROP FUNCTION kmeans_labels(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text);
DROP FUNCTION kmeans_elbow(regclass, text, integer, integer, integer, integer, double precision,
    text, integer, bigint, text, integer, text);

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
    center       text DEFAULT 'mean')
RETURNS TABLE (cluster integer, center real[], size bigint, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_fit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_fit(text, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text)
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
    center       text DEFAULT 'mean')
RETURNS TABLE (id bigint, cluster integer, distance double precision)
AS 'MODULE_PATHNAME', 'kmeans_labels'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_labels(text, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text)
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
    center            text DEFAULT 'mean')
RETURNS TABLE (k integer, inertia double precision, mean_inertia double precision,
               n_iter integer, silhouette double precision,
               calinski_harabasz double precision, davies_bouldin double precision,
               elbow boolean)
AS 'MODULE_PATHNAME', 'kmeans_elbow'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_elbow(text, text, integer, integer, integer, integer,
    double precision, text, integer, bigint, text, integer, text, text, text, text)
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
    center       text DEFAULT 'mean')
RETURNS TABLE (cluster integer, center real[], size bigint, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_fit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_fit(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text)
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
    center       text DEFAULT 'mean')
RETURNS TABLE (id bigint, cluster integer, distance double precision)
AS 'MODULE_PATHNAME', 'kmeans_labels'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_labels(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text)
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
    center            text DEFAULT 'mean')
RETURNS TABLE (k integer, inertia double precision, mean_inertia double precision,
               n_iter integer, silhouette double precision,
               calinski_harabasz double precision, davies_bouldin double precision,
               elbow boolean)
AS 'MODULE_PATHNAME', 'kmeans_elbow'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_elbow(regclass, text, integer, integer, integer, integer,
    double precision, text, integer, bigint, text, integer, text, text, text, text)
IS 'k-means for every k of a range in shared passes: inertia, quality indices, suggested k, from a table, view or materialized view named by OID';

CREATE FUNCTION kmeans_predict(centers real[], x real[], metric text)
RETURNS integer
AS 'MODULE_PATHNAME', 'kmeans_predict_centers'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION kmeans_predict(real[], real[], text)
IS 'the row of a k x d array of centers nearest to x by the metric (''euclidean'', ''cosine'' or ''iou'')';

COMMENT ON COLUMN kmeans_models.inertia IS
    'sum over the fitted rows of the squared distance to their center (1 - cosine under the cosine metric), each times its weight in a weighted fit, from the final assignment';
