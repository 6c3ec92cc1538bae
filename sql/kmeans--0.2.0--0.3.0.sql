-- kmeans 0.2.0 -> 0.3.0: kmeans_last_fit(), the timed steps of the session's last fit.
-- The result equals a fresh 0.3.0 install (test/sql/upgrade.sql compares the two).

\echo Use "ALTER EXTENSION kmeans UPDATE TO '0.3.0'" to load this file. \quit

CREATE FUNCTION kmeans_last_fit()
RETURNS TABLE (step integer, phase text, run integer, iteration integer, k_running integer,
               seconds double precision, inertia double precision)
AS 'MODULE_PATHNAME', 'kmeans_last_fit'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION kmeans_last_fit()
IS 'the timed steps (read, seed, iterate, final, quality) of this session''s last fit';
