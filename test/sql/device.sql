-- Where a fit runs: device => 'cpu' | 'gpu' | 'auto', the kmeans.device setting, kmeans.gpu_id.
-- The outcome depends on the build and the machine, so this file has one expected output per
-- case: device.out (a build without nvcc), device_1.out (the GPU backend built, no usable GPU),
-- device_2.out (a usable GPU).  Messages are terse: the CUDA reason in the detail varies.
CREATE SCHEMA test_device;
SET search_path = test_device, public;
SET extra_float_digits = 0;
\set VERBOSITY terse

-- Two groups of three points on a line: centers 1 and 11, whatever the device.
CREATE TABLE pts (id int, v real[]);
INSERT INTO pts VALUES (1, '{0}'), (2, '{1}'), (3, '{2}'), (4, '{10}'), (5, '{11}'), (6, '{12}');

-- The CPU is always there.
SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 2, device => 'cpu', init_centers => '{{0},{10}}') ORDER BY cluster;

-- auto: the GPU when it can be used, else the CPU, silently at the default message levels
-- (every pg_cron job is a new session: a NOTICE would be logged on every run).
SET kmeans.device = 'auto';
SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 2, init_centers => '{{0},{10}}') ORDER BY cluster;
SELECT cluster, center, size FROM kmeans_fit('pts', 'v', 2, init_centers => '{{0},{10}}') ORDER BY cluster;

-- gpu: runs there, or is an ERROR saying why not; the session goes on either way.
SELECT cluster, center, size, inertia FROM kmeans_fit('pts', 'v', 2, device => 'gpu', init_centers => '{{0},{10}}') ORDER BY cluster;
SET kmeans.device = 'gpu';
SELECT id, cluster, distance FROM kmeans_labels('pts', 'v', 2, id => 'id', init_centers => '{{0},{10}}') ORDER BY id;
SELECT k, inertia FROM kmeans_elbow('pts', 'v', 1, 3) ORDER BY k;

-- A device too small to keep the rows' labels of a whole elbow (1 MB; the rows streamed in
-- batches of 1,024): the labels stay on the host, and every k ends as on the CPU.
SET kmeans.gpu_memory_limit = '1MB';
SET kmeans.memory_limit = '64kB';
SET kmeans.batch_rows = 1024;
CREATE TABLE grid AS SELECT i AS id, ARRAY[(i % 97)::real, (i % 13)::real] AS v FROM generate_series(1, 3000) i;
SELECT count(*) AS ks, bool_and(abs(g.inertia - c.inertia) <= 1e-9 * c.inertia AND g.n_iter = c.n_iter) AS same_as_cpu
FROM kmeans_elbow('grid', 'v', 1, 50, device => 'auto', silhouette_sample => 0) g
JOIN kmeans_elbow('grid', 'v', 1, 50, device => 'cpu', silhouette_sample => 0) c USING (k);
RESET kmeans.gpu_memory_limit;
RESET kmeans.memory_limit;
RESET kmeans.batch_rows;
DROP TABLE grid;

-- A GPU number that no machine here has.
SET kmeans.gpu_id = 1000;
SELECT count(*) FROM kmeans_fit('pts', 'v', 2, device => 'gpu');
-- The fallback's reason is there at DEBUG1, in a build with the GPU backend, on every fit.
SET client_min_messages = debug1;
SELECT count(*) FROM kmeans_fit('pts', 'v', 2, device => 'auto');
RESET client_min_messages;
RESET kmeans.gpu_id;
RESET kmeans.device;
SELECT 1 AS session_still_usable;

\set VERBOSITY default
DROP SCHEMA test_device CASCADE;
RESET search_path;
