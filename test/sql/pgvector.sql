-- pgvector's vector and halfvec columns are read in their own binary form, without a cast to
-- real[], and give the same fits bit for bit as the same values in real[].  Skips (the
-- pgvector_1.out output) where pgvector is not installed: no Debian package of it exists for
-- bookworm, so it is there only where someone built it.
SELECT NOT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'vector') AS skip \gset
\if :skip
\echo 'skipped: pgvector is not installed'
\quit
\endif
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vector;
RESET client_min_messages;
CREATE SCHEMA test_pgvector;
SET search_path = test_pgvector, public;
SET extra_float_digits = 0;

-- 3 and 20 dimensions (the direct and the grouped sums), values exact in binary16 (multiples
-- of 1/4 below 64), so real[], vector and halfvec hold the same floats.
CREATE TABLE pv AS
SELECT i, a, a::vector AS v, a::halfvec AS h
FROM (SELECT i, ARRAY[i % 7, (i / 7) % 31, ((i * 3) % 5) * 0.25]::real[] AS a
      FROM generate_series(0, 999) i) s;
CREATE TABLE pv20 AS
SELECT i, a, a::vector AS v, a::halfvec AS h
FROM (SELECT i, array_agg(((i * (t + 3) + t * t) % 17) * 0.5 ORDER BY t)::real[] AS a
      FROM generate_series(0, 999) i, generate_series(1, 20) t GROUP BY i) s;

-- The same centers, sizes and inertia, bit for bit (extra_float_digits 3 prints every bit of a
-- double), and the same labels and distances.
SET extra_float_digits = 3;
SELECT t, col, (SELECT array_agg(ROW(center, size, inertia)::text ORDER BY cluster)
                FROM kmeans_fit(t, col, 6, seed => 3)) =
               (SELECT array_agg(ROW(center, size, inertia)::text ORDER BY cluster)
                FROM kmeans_fit(t, 'a', 6, seed => 3)) AS same_fit,
       (SELECT array_agg(ROW(id, cluster, distance)::text ORDER BY id)
        FROM kmeans_labels(t, col, 6, id => 'i', seed => 3)) =
       (SELECT array_agg(ROW(id, cluster, distance)::text ORDER BY id)
        FROM kmeans_labels(t, 'a', 6, id => 'i', seed => 3)) AS same_labels,
       (SELECT array_agg(e::text ORDER BY k) FROM kmeans_elbow(t, col, 2, 5, seed => 3) e) =
       (SELECT array_agg(e::text ORDER BY k) FROM kmeans_elbow(t, 'a', 2, 5, seed => 3) e) AS same_elbow
FROM unnest(ARRAY['pv', 'pv20']) t, unnest(ARRAY['v', 'h']) col ORDER BY t, col;
-- read again every pass (streamed), the same as kept in memory
SET kmeans.memory_limit = '64kB';
SELECT col, (SELECT array_agg(ROW(center, size, inertia)::text ORDER BY cluster)
             FROM kmeans_fit('pv20', col, 6, seed => 3)) =
            (SELECT array_agg(ROW(center, size, inertia)::text ORDER BY cluster)
             FROM kmeans_fit('pv20', 'a', 6, seed => 3)) AS same_streamed
FROM unnest(ARRAY['v', 'h']) col ORDER BY col;
RESET kmeans.memory_limit;
SET extra_float_digits = 0;

-- binary16 values as floats, against pgvector's own halfvec -> real[] cast: the largest
-- (65504), the smallest normal (2^-14) and subnormal (2^-24) values, signs, zero
CREATE TABLE halves AS SELECT '[65504, -65504, 0.00006103515625, 0.000000059604645, -0.000000059604645, 0, -2.5, 1]'::halfvec AS h;
SELECT center = (SELECT h::vector::real[] FROM halves) AS exact, center
FROM kmeans_fit('halves', 'h', 1);

-- an expression of type vector is read directly too; rows of other lengths are refused as for
-- real[], naming the row
SELECT count(*) FROM kmeans_fit('pv', 'v + v', 2);
CREATE TABLE ragged (v vector);
INSERT INTO ragged VALUES ('[1,2]'), ('[3,4]'), ('[5,6,7]');
SELECT * FROM kmeans_fit('ragged', 'v', 2);

-- a type of the user's called vector is not pgvector's: it is cast to real[] like any other
CREATE DOMAIN vector AS real[];
CREATE TABLE own (v test_pgvector.vector);
INSERT INTO own VALUES ('{0}'), ('{1}'), ('{10}'), ('{11}');
SELECT * FROM kmeans_fit('own', 'v', 2, init_centers => '{{0},{10}}');

DROP SCHEMA test_pgvector CASCADE;
DROP EXTENSION vector;
