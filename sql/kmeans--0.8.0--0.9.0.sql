-- kmeans 0.8.0 -> 0.9.0: init defaults to NULL in kmeans_fit, kmeans_labels and kmeans_elbow.
-- Without an init a fit seeds by k-means++ as before, unless the engine reads the rows again on
-- every pass (they do not fit kmeans.memory_limit): then by k-means||, a few passes over the
-- source instead of two or three per center.  Only the defaults change, so the six fitting
-- functions are replaced in place, and views over them survive the update.  The result equals
-- a fresh 0.9.0 install (test/sql/upgrade.sql compares the two).

\echo Use "ALTER EXTENSION kmeans UPDATE TO '0.9.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION kmeans_fit(
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

CREATE OR REPLACE FUNCTION kmeans_labels(
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

CREATE OR REPLACE FUNCTION kmeans_elbow(
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

CREATE OR REPLACE FUNCTION kmeans_fit(
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

CREATE OR REPLACE FUNCTION kmeans_labels(
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

CREATE OR REPLACE FUNCTION kmeans_elbow(
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
