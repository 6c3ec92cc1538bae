-- kmeans 0.7.0 -> 0.8.0: the softdtw metric for series.
-- kmeans_fit, kmeans_labels and kmeans_elbow take gamma (soft-DTW's smoothing, 1.0 under
-- metric 'softdtw' when NULL), and kmeans_softdtw(x, y [, gamma [, band]]) gives the soft-DTW
-- of two series.  A function's arguments cannot grow in place, so the six fitting functions
-- are dropped and created again; a view or materialized view over one of them must be dropped
-- before the update and created again after it (the DROP below stops the update and names
-- it).  The result equals a fresh 0.8.0 install (test/sql/upgrade.sql compares the two).

\echo Use "ALTER EXTENSION kmeans UPDATE TO '0.8.0'" to load this file. \quit

DROP FUNCTION kmeans_fit(text, text, integer, integer, double precision, text, real[], integer,
    bigint, text, text, text, text, text, text, text, text, integer, integer, integer);
DROP FUNCTION kmeans_labels(text, text, integer, integer, double precision, text, real[], integer,
    bigint, text, text, text, text, text, text, text, text, integer, integer, integer);
DROP FUNCTION kmeans_elbow(text, text, integer, integer, integer, integer, double precision, text,
    integer, bigint, text, integer, text, text, text, text, text, text, integer, integer, integer);
DROP FUNCTION kmeans_fit(regclass, text, integer, integer, double precision, text, real[], integer,
    bigint, text, text, text, text, text, text, text, text, integer, integer, integer);
DROP FUNCTION kmeans_labels(regclass, text, integer, integer, double precision, text, real[], integer,
    bigint, text, text, text, text, text, text, text, text, integer, integer, integer);
DROP FUNCTION kmeans_elbow(regclass, text, integer, integer, integer, integer, double precision, text,
    integer, bigint, text, integer, text, text, text, text, text, text, integer, integer, integer);

CREATE FUNCTION kmeans_fit(
    source       text,
    column_name  text,
    k            integer,
    max_iter     integer DEFAULT 300,
    tol          double precision DEFAULT NULL,
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

CREATE FUNCTION kmeans_elbow(
    source            text,
    column_name       text,
    k_min             integer,
    k_max             integer,
    k_step            integer DEFAULT 1,
    max_iter          integer DEFAULT 300,
    tol               double precision DEFAULT NULL,
    init              text DEFAULT 'k-means++',
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

CREATE FUNCTION kmeans_fit(
    source       regclass,
    column_name  text,
    k            integer,
    max_iter     integer DEFAULT 300,
    tol          double precision DEFAULT NULL,
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
    init              text DEFAULT 'k-means++',
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

CREATE FUNCTION kmeans_softdtw(x real[], y real[], gamma double precision DEFAULT 1.0,
    band integer DEFAULT NULL)
RETURNS double precision
AS 'MODULE_PATHNAME', 'kmeans_softdtw'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION kmeans_softdtw(real[], real[], double precision, integer)
IS 'the soft-DTW of two series with smoothing gamma (Cuturi and Blondel 2017; tends to DTW squared as gamma tends to 0, and can be negative), within a Sakoe-Chiba band of radius band (NULL: none)';

COMMENT ON FUNCTION kmeans_predict(real[], real[], text)
IS 'the row of a k x d array of centers nearest to x by the metric (''euclidean'', ''cosine'', ''iou'', ''dtw'' or ''softdtw'' with gamma 1)';
