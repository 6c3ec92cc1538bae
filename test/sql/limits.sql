-- What a fit refuses before it allocates, and what it handles that it once did not: memory
-- estimated against kmeans.max_memory (refused with 53200 and the sizes), wide vectors, and
-- values whose float32 distances would overflow or vanish (22003 with the row).
CREATE SCHEMA test_limits;
SET search_path = test_limits, public;
SET extra_float_digits = 0;
-- the estimate counts per-thread scratch and the CPU's batch sizes: fix the thread count and the
-- device so the sizes below are stable (on the GPU, batches are 2^20 rows and the sizes differ)
SET kmeans.threads = 2;
SET kmeans.device = 'cpu';

-- Centers alone: every k of 2..20000 is 2 * 10^8 centers.  Refused at the first row, before
-- the rows are counted (there are only five, which would be the next error).
CREATE TABLE five AS SELECT i AS id, ARRAY[i, -i]::real[] AS v FROM generate_series(1, 5) i;
SELECT * FROM kmeans_elbow('five', 'v', 2, 20000, silhouette_sample => 0);
-- k = 1..10^6 is 5 * 10^11 centers, more than the engine numbers whatever the memory limit
SELECT * FROM kmeans_elbow('five', 'v', 1, 1000000);

-- Per-row state: 20,000 rows x 199 k of labels and distances (8 bytes each, 30 MB), the final
-- labels (4 bytes, 15 MB) and a batch's labels, distances and their grouping (20 bytes per row
-- and k) exceed 32 MB long before the last row.  Refused while the first pass reads, at the
-- first multiple of 1024 rows where the estimate is over: at 5120 rows, 7.8 + 3.9 MB of
-- per-row state, 2.4 MB of centers (20,099 of them) and 19.4 MB of batch buffers (5120 rows);
-- each term is shown rounded up to whole MB.
CREATE TABLE many AS
SELECT i AS id, ARRAY[sin(i), cos(i)]::real[] AS v FROM generate_series(1, 20000) i;
SET kmeans.max_memory = '32MB';
SELECT * FROM kmeans_elbow('many', 'v', 2, 200, silhouette_sample => 0);
-- the same range in steps of 10 needs a tenth of that and runs
SELECT count(*), bool_and(inertia > 0) FROM kmeans_elbow('many', 'v', 2, 200, k_step => 10,
                                                          silhouette_sample => 0);
RESET kmeans.max_memory;
-- A limit the cached rows do not fit in beside the fit's state: 20,000 rows of 8 values
-- (640 kB, and their norms) with 16,384-row chunks (330 kB of batch buffers) exceed 1 MB,
-- while streaming them in batches of 1024 rows needs about 450 kB.  The rows are then read
-- again on every pass (counted by a sequence) and the answer is the same.
CREATE TABLE many8 AS
SELECT i AS id, ARRAY[sin(i), cos(i), sin(2 * i), cos(2 * i), sin(3 * i), cos(3 * i),
                      sin(4 * i), cos(4 * i)]::real[] AS v
FROM generate_series(1, 20000) i;
CREATE SEQUENCE many8_reads;
-- (init given: without one, streamed rows would be seeded by k-means||)
CREATE TABLE kept AS SELECT * FROM kmeans_fit('many8', 'v', 3, max_iter => 4, init => 'k-means++');
SET kmeans.batch_rows = 1024;
SET kmeans.max_memory = '1MB';
CREATE TABLE streamed AS
SELECT * FROM kmeans_fit('SELECT v FROM test_limits.many8 WHERE nextval(''test_limits.many8_reads'') > 0',
                         'v', 3, max_iter => 4, init => 'k-means++');
RESET kmeans.max_memory;
RESET kmeans.batch_rows;
SELECT last_value > 20000 AS read_on_every_pass FROM many8_reads;
SELECT k.cluster, k.size = s.size AS same_size, k.center = s.center AS same_center,
       k.inertia = s.inertia AS same_inertia
FROM kept k JOIN streamed s USING (cluster) ORDER BY 1;
-- only superusers may raise the limit
CREATE ROLE regress_kmeans_limits;
SET ROLE regress_kmeans_limits;
SET kmeans.max_memory = '100GB';
RESET ROLE;
DROP ROLE regress_kmeans_limits;

-- Wide vectors: 20 rows of 100,000 values (8 MB) are kept in memory and read once.  Ten rows
-- are all 0 and ten all 1: two clusters of ten with centers of sum 0 and 100,000, inertia 0.
CREATE SEQUENCE wide_reads;
CREATE TABLE wide AS
SELECT i AS id, array_fill((i % 2)::real, ARRAY[100000]) AS v FROM generate_series(1, 20) i;
SELECT cluster, size, inertia,
       (SELECT sum(x) FROM unnest(center) x) AS center_sum, array_length(center, 1) AS d
FROM kmeans_fit('SELECT v FROM test_limits.wide WHERE nextval(''test_limits.wide_reads'') > 0',
                'v', 2, init => 'random', seed => 3)
ORDER BY center_sum;
-- 20 rows read: one pass for the whole fit
SELECT last_value AS rows_read FROM wide_reads;

-- Overflow: values near 1e19 that differ by up to 2e19 would square past float32's range.
-- The row of the value farthest from its dimension's mean is named.
CREATE TABLE huge AS SELECT i AS id, ARRAY[1e19 * sin(i), 1e19 * cos(i)]::real[] AS v
FROM generate_series(1, 500) i;
\set VERBOSITY default
SELECT * FROM kmeans_fit('huge', 'v', 4);
SELECT * FROM kmeans_labels('huge', 'v', 4, id => 'id');
-- values near 1e19 whose spread is small enough are centred first and clustered exactly:
-- 1e19 + 1e17 * (0, 1, 2, 10, 11, 12) in float32 forms two clusters of three
CREATE TABLE offset_rows AS SELECT i AS id, ARRAY[1e19 + 1e17 * i]::real[] AS v
FROM unnest(ARRAY[0, 1, 2, 10, 11, 12]) i;
SELECT cluster, size, round((center[1] / 1e17 - 100)::numeric, 3) AS center_offset
FROM kmeans_fit('offset_rows', 'v', 2) ORDER BY 3;
-- Underflow: rows that differ by about 1e-25 have squared distances near 1e-50, below
-- float32's smallest normal number.
CREATE TABLE dust AS SELECT i AS id, ARRAY[1e-25 * sin(i), 1e-25 * cos(i)]::real[] AS v
FROM generate_series(1, 500) i;
SELECT * FROM kmeans_fit('dust', 'v', 4);
-- a streamed source whose later pass leaves the first pass's ranges
CREATE SEQUENCE drift;
SET kmeans.memory_limit = '64kB';
SET kmeans.batch_rows = 1024;
SELECT * FROM kmeans_fit('SELECT ARRAY[nextval(''test_limits.drift'')]::real[] AS v FROM generate_series(1, 20000)',
                         'v', 2, init => 'random');
RESET kmeans.memory_limit;
RESET kmeans.batch_rows;

RESET kmeans.threads;
RESET kmeans.device;
RESET search_path;
DROP SCHEMA test_limits CASCADE;
