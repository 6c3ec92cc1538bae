-- kmeans 0.5.0 -> 0.6.0: mini-batch k-means and the progress of running fits.
-- kmeans_fit, kmeans_labels and kmeans_elbow take algorithm ('lloyd' or 'minibatch') and
-- batch_size, and tol defaults to NULL, the algorithm's own default (1e-4 for Lloyd, 0 for
-- mini-batch); kmeans_progress() and the view kmeans_progress show every running fit.  A
-- function's arguments cannot grow in place, so the six fitting functions are dropped and
-- created again; a view or materialized view over one of them must be dropped before the
-- update and created again after it (the DROP below stops the update and names it).  The
-- result equals a fresh 0.6.0 install (test/sql/upgrade.sql compares the two).

\echo Use "ALTER EXTENSION kmeans UPDATE TO '0.6.0'" to load this file. \quit

DROP FUNCTION kmeans_fit(text, text, integer, integer, double precision, text, real[], integer,
    bigint, text, text, text, text, text, text, text);
DROP FUNCTION kmeans_labels(text, text, integer, integer, double precision, text, real[], integer,
    bigint, text, text, text, text, text, text, text);
DROP FUNCTION kmeans_elbow(text, text, integer, integer, integer, integer, double precision, text,
    integer, bigint, text, integer, text, text, text, text, text);
DROP FUNCTION kmeans_fit(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text);
DROP FUNCTION kmeans_labels(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text);
DROP FUNCTION kmeans_elbow(regclass, text, integer, integer, integer, integer, double precision,
    text, integer, bigint, text, integer, text, text, text, text, text);

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
    batch_size   integer DEFAULT 1024)
RETURNS TABLE (cluster integer, center real[], size bigint, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_fit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_fit(text, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text, text, integer)
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
    batch_size   integer DEFAULT 1024)
RETURNS TABLE (id bigint, cluster integer, distance double precision)
AS 'MODULE_PATHNAME', 'kmeans_labels'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_labels(text, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text, text, integer)
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
    batch_size        integer DEFAULT 1024)
RETURNS TABLE (k integer, inertia double precision, mean_inertia double precision,
               n_iter integer, silhouette double precision,
               calinski_harabasz double precision, davies_bouldin double precision,
               elbow boolean)
AS 'MODULE_PATHNAME', 'kmeans_elbow'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_elbow(text, text, integer, integer, integer, integer,
    double precision, text, integer, bigint, text, integer, text, text, text, text, text, text,
    integer)
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
    batch_size   integer DEFAULT 1024)
RETURNS TABLE (cluster integer, center real[], size bigint, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_fit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_fit(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text, text, integer)
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
    batch_size   integer DEFAULT 1024)
RETURNS TABLE (id bigint, cluster integer, distance double precision)
AS 'MODULE_PATHNAME', 'kmeans_labels'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_labels(regclass, text, integer, integer, double precision, text, real[],
    integer, bigint, text, text, text, text, text, text, text, text, integer)
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
    batch_size        integer DEFAULT 1024)
RETURNS TABLE (k integer, inertia double precision, mean_inertia double precision,
               n_iter integer, silhouette double precision,
               calinski_harabasz double precision, davies_bouldin double precision,
               elbow boolean)
AS 'MODULE_PATHNAME', 'kmeans_elbow'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION kmeans_elbow(regclass, text, integer, integer, integer, integer,
    double precision, text, integer, bigint, text, integer, text, text, text, text, text, text,
    integer)
IS 'k-means for every k of a range in shared passes: inertia, quality indices, suggested k, from a table, view or materialized view named by OID';

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
