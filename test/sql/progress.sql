-- kmeans_progress: a row per running fit.  Another connection watching a fit advance is
-- test/workflow/check_progress.py; here a fit's own source query looks at the view while the
-- fit reads it, and the slot is given back after a fit that ends, fails or is cancelled.
CREATE SCHEMA test_progress;
SET search_path = test_progress, public;
CREATE TABLE pts AS SELECT i AS id, ARRAY[i % 7, i % 3]::real[] AS v FROM generate_series(1, 5000) i;

-- nothing runs
SELECT count(*) AS running FROM kmeans_progress;

-- The source sees its own fit, reading, with the function and k range of the call.
CREATE TABLE seen AS SELECT * FROM kmeans_progress WHERE false;
CREATE FUNCTION look() RETURNS boolean LANGUAGE sql VOLATILE AS $$
    INSERT INTO test_progress.seen SELECT * FROM public.kmeans_progress WHERE pid = pg_backend_pid();
    SELECT true $$;
SELECT k, n_iter > 0 AS iterated
FROM kmeans_elbow('SELECT v FROM test_progress.pts WHERE id > 1 OR test_progress.look()', 'v', 2, 4, silhouette_sample => 0)
ORDER BY k;
SELECT usename = current_user AS mine, function, phase, k_min, k_max, run, n_init, iteration,
       rows_done, rows_total, inertia, elapsed >= interval '0' AS elapsed_ok
FROM seen;
-- and once the fit has ended, nothing again
SELECT count(*) AS running FROM kmeans_progress;

-- A fit that fails gives its slot back.
SELECT count(*) FROM kmeans_fit('SELECT v FROM test_progress.pts WHERE 1 / (id - 4000) IS NOT NULL', 'v', 3);
SELECT count(*) AS running_after_error FROM kmeans_progress;
-- so does one stopped by statement_timeout
SET statement_timeout = '300ms';
SELECT count(*) FROM kmeans_fit('SELECT v FROM test_progress.pts, generate_series(1, 200)', 'v', 500, tol => 0, max_iter => 100000);
RESET statement_timeout;
SELECT count(*) AS running_after_cancel FROM kmeans_progress;

RESET search_path;
DROP SCHEMA test_progress CASCADE;
