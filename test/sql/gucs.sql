-- The kmeans.* settings: threads, memory_limit (resident or streamed data), batch_rows,
-- trace (and its old name verbose), device, gpu_id, gpu_memory_limit.  Results do not depend
-- on threads, batch size or residency.  The suite runs with kmeans.device from PGOPTIONS (make
-- installcheck sets it to REGRESS_DEVICE, cpu unless told otherwise).
CREATE SCHEMA test_gucs;
SET search_path = test_gucs, public;
SET extra_float_digits = 0;

-- The settings exist once the library is loaded (any kmeans call loads it).
LOAD 'kmeans';
-- kmeans.device's value is the runner's (PGOPTIONS); its default is auto.
SELECT boot_val FROM pg_settings WHERE name = 'kmeans.device';
SHOW kmeans.threads;
SHOW kmeans.batch_rows;
SHOW kmeans.memory_limit;
SHOW kmeans.gpu_id;
SHOW kmeans.gpu_memory_limit;
SHOW kmeans.trace;
-- kmeans.trace's old name: VERBOSE is an SQL keyword, so it is quoted in SET and SHOW.
SHOW kmeans."verbose";

-- Enough rows for several chunks and batches: 40,000 points in 3 dimensions.
CREATE TABLE cloud AS
SELECT i AS id,
       ARRAY[sin(i * 0.37) * 10 + (i % 7), cos(i * 0.11) * 5 + (i % 13) * 0.3, (i % 101) * 0.01]::real[] AS v
FROM generate_series(1, 40000) i;

CREATE TABLE results (setting text, centers real[], sizes bigint[], inertia float8[]);
CREATE FUNCTION record_fit(setting text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO results
    SELECT setting, array_agg(center ORDER BY cluster), array_agg(size ORDER BY cluster),
           array_agg(inertia ORDER BY cluster)
    FROM kmeans_fit('cloud', 'v', 12, seed => 5, max_iter => 50, init => 'k-means++');
$$;

SELECT record_fit('default');
SET kmeans.threads = 1;
SELECT record_fit('1 thread');
SET kmeans.threads = 3;
SELECT record_fit('3 threads');
RESET kmeans.threads;
-- 64 kB holds fewer rows than one chunk: every pass reads the table again.
SET kmeans.memory_limit = '64kB';
SELECT record_fit('streamed');
SET kmeans.batch_rows = 3000;
SELECT record_fit('streamed, batches of 3072 rows');
SET kmeans.threads = 1;
SELECT record_fit('streamed, 1 thread');
RESET ALL;
SET search_path = test_gucs, public;
SET extra_float_digits = 0;

-- Bit-identical in every setting (init is given: without one, streamed rows are seeded by
-- k-means||, seeding.sql).
SELECT setting, centers = (SELECT centers FROM results WHERE setting = 'default') AS same_centers,
       sizes = (SELECT sizes FROM results WHERE setting = 'default') AS same_sizes,
       inertia = (SELECT inertia FROM results WHERE setting = 'default') AS same_inertia
FROM results ORDER BY setting;

-- Labels too: streamed labels equal resident ones.
CREATE TABLE resident_labels AS SELECT * FROM kmeans_labels('cloud', 'v', 12, id => 'id', seed => 5, init => 'k-means++');
SET kmeans.memory_limit = '64kB';
SELECT count(*) AS rows, count(*) FILTER (WHERE r.cluster = s.cluster AND r.distance = s.distance) AS same
FROM resident_labels r JOIN kmeans_labels('cloud', 'v', 12, id => 'id', seed => 5, init => 'k-means++') s USING (id);
RESET kmeans.memory_limit;

-- A source that changes between passes is caught (only possible when streamed): the
-- sequence lets all 40,000 rows through the first pass and 100 through the second.
CREATE SEQUENCE pass_counter;
SET kmeans.memory_limit = '64kB';
SELECT count(*) FROM kmeans_fit('SELECT v FROM cloud WHERE nextval(''pass_counter'') <= 40100', 'v', 3);
RESET kmeans.memory_limit;

-- trace: one NOTICE per iteration; by hand (see fit.sql): inertia 599, 216, 199,
-- labels changed 8, 1, 0, center shift (1-2)^2 + (11-3)^2 = 65, then 0.25 + 4 = 4.25, then 0.
-- Without pruning, so that the CPU and the GPU say the same (prune.sql checks the pruned
-- trace's counts).
CREATE TABLE line (v real[]);
INSERT INTO line VALUES ('{0}'), ('{1}'), ('{2}'), ('{3}'), ('{8}'), ('{9}'), ('{10}'), ('{25}');
SET kmeans.prune = off;
SET kmeans.trace = on;
SELECT cluster, center FROM kmeans_fit('line', 'v', 2, init_centers => '{{2},{3}}');
RESET kmeans.trace;
-- the old name does the same
SET kmeans."verbose" = on;
SELECT count(*) FROM kmeans_fit('line', 'v', 2, init_centers => '{{2},{3}}');
RESET kmeans."verbose";
RESET kmeans.prune;
-- and with both off, a fit is silent
SELECT count(*) FROM kmeans_fit('line', 'v', 2, init_centers => '{{2},{3}}');

-- device: a setting of its own, which the device => option overrides (device.sql tests the
-- GPU choices, whose outcome depends on the build and the machine).
SET kmeans.device = 'cpu';
SELECT count(*) FROM kmeans_fit('line', 'v', 2);
SELECT count(*) FROM kmeans_fit('line', 'v', 2, device => 'cpu');
-- the option is case-insensitive like the setting, and stored in lower case
SELECT count(*) FROM kmeans_fit('line', 'v', 2, device => 'CPU');
SET kmeans.device = 'CPU';
SHOW kmeans.device;
SET kmeans.device = 'tpu';
RESET kmeans.device;

-- Out-of-range settings are refused by the setting itself.
SET kmeans.threads = -1;
SET kmeans.gpu_id = -1;
SET kmeans.gpu_memory_limit = -1;
SET kmeans.gpu_memory_limit = '2GB';
SHOW kmeans.gpu_memory_limit;
-- below 1MB is refused rather than rounded to 0, which means "what the device has free"
SET kmeans.gpu_memory_limit = '512kB';
SET kmeans.gpu_memory_limit = 0;
SHOW kmeans.gpu_memory_limit;
RESET kmeans.gpu_memory_limit;
-- a thread count a backend cannot sensibly start
SET kmeans.threads = 257;
SET kmeans.batch_rows = 10;
SET kmeans.memory_limit = '1kB';
SET kmeans.no_such_setting = 1;

RESET search_path;
DROP SCHEMA test_gucs CASCADE;
