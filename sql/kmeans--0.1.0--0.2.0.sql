-- kmeans 0.1.0 -> 0.2.0: saved centers must be finite.
-- The result equals a fresh 0.2.0 install (test/sql/upgrade.sql compares the two).

\echo Use "ALTER EXTENSION kmeans UPDATE TO '0.2.0'" to load this file. \quit

-- A saved model with a NaN or infinite center makes this fail: such a model labelled
-- vectors wrongly.  Delete or fit it again first (see the README).
ALTER TABLE kmeans_models ADD CONSTRAINT kmeans_models_centers_finite CHECK (
    NOT (centers && '{NaN,Infinity,-Infinity}'::real[]));
