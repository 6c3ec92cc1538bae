-- kmeans 0.2.0 -> 0.3.0: kmeans_last_fit(), the timed steps of the session's last fit, and a
-- comment on every column of kmeans_models.
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
