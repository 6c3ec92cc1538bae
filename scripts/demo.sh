#!/usr/bin/env bash
# The main job end to end: build and install kmeans, start a throwaway PostgreSQL, make sample
# depth profiles on a lat/lon grid, fit k-means in one SQL statement, join the labels back to
# lat/lon and print them as a map, and print the elbow curve over a range of k (kmeans_elbow).
#
#   scripts/demo.sh        (as root it installs the packages it needs; as another user it names them)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_lib.sh

echo "== building and installing kmeans"
kmeans_build_install WERROR="${WERROR:-0}"

echo "== starting a throwaway PostgreSQL server"
kmeans_start_server "${KMEANS_DEMO_PORT:-54330}"

psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION kmeans;

-- Sample data: one shear-velocity perturbation profile (percent, 10 depths) per point of a
-- 0.5 degree grid.  Four provinces have their own depth signature; every profile gets its
-- own deterministic noise.
CREATE TABLE profiles AS
WITH grid AS (
    SELECT row_number() OVER (ORDER BY lat DESC, lon) AS id, lat, lon
    FROM generate_series(30.0, 49.5, 0.5) lat, generate_series(-124.0, -100.5, 0.5) lon
), province AS (
    SELECT *, CASE WHEN lon < -118 + 3 * sin(radians(lat * 8)) THEN 0      -- coast
                   WHEN lat > 43 AND lon < -108 THEN 1                      -- plateau
                   WHEN lon < -108 THEN 2                                   -- basin
                   ELSE 3 END AS p                                         -- craton
    FROM grid
)
SELECT id, lat, lon, p AS province,
       ARRAY(SELECT round((CASE p WHEN 0 THEN -3 + 0.03 * z
                                  WHEN 1 THEN -1.5 * exp(-z / 120.0)
                                  WHEN 2 THEN -4 * exp(-(((z - 120) / 80.0) ^ 2))
                                  ELSE 2.5 * exp(-z / 200.0) END
                         + 0.35 * sin(id * 12.9898 + z * 78.233))::numeric, 3)::real
             FROM unnest(ARRAY[60, 90, 125, 160, 195, 230, 270, 310, 350, 395]) z) AS dvs
FROM province;
\echo
\echo == sample data: profiles(id, lat, lon, dvs real[10])
SELECT count(*) AS profiles, min(lat) AS lat_min, max(lat) AS lat_max,
       min(lon) AS lon_min, max(lon) AS lon_max FROM profiles;

\echo
\echo == SELECT * FROM kmeans_fit('profiles', 'dvs', 4, model => 'provinces');
SELECT cluster, size, round(inertia::numeric, 1) AS inertia,
       (SELECT array_agg(round(c::numeric, 2)) FROM unnest(center) c) AS center
FROM kmeans_fit('profiles', 'dvs', 4, model => 'provinces');

\echo
\echo == labels joined back to lat/lon: one character per grid point, one line per latitude
SELECT p.lat, string_agg(chr(65 + l.cluster), '' ORDER BY p.lon) AS "map (west -> east)"
FROM kmeans_labels('profiles', 'dvs', 4, id => 'id') l JOIN profiles p USING (id)
GROUP BY p.lat ORDER BY p.lat DESC;

\echo
\echo == how well the clusters recover the four provinces the data was made from
SELECT l.cluster, count(*) AS profiles, mode() WITHIN GROUP (ORDER BY p.province) AS province,
       round(avg((p.province = m.province)::int) * 100, 1) AS "% in that province"
FROM kmeans_labels('profiles', 'dvs', 4, id => 'id') l JOIN profiles p USING (id)
JOIN (SELECT l2.cluster, mode() WITHIN GROUP (ORDER BY p2.province) AS province
      FROM kmeans_labels('profiles', 'dvs', 4, id => 'id') l2 JOIN profiles p2 USING (id)
      GROUP BY l2.cluster) m USING (cluster)
GROUP BY l.cluster ORDER BY l.cluster;

\echo
\echo == SELECT * FROM kmeans_elbow('profiles', 'dvs', 1, 10);   -- every k in shared passes
\echo    (elbow marks the suggested k: where Calinski-Harabasz peaks inside the range, else the
\echo    knee of the inertia curve; silhouette up and Davies-Bouldin down agree when the clusters
\echo    are clear)
SELECT k, round(mean_inertia::numeric, 3) AS mean_inertia, n_iter,
       round(silhouette::numeric, 3) AS silhouette,
       round(calinski_harabasz::numeric) AS calinski_harabasz,
       round(davies_bouldin::numeric, 3) AS davies_bouldin,
       CASE WHEN elbow THEN '<-- suggested k' ELSE '' END AS elbow,
       repeat('#', (50 * mean_inertia / max(mean_inertia) OVER ())::int) AS curve
FROM kmeans_elbow('profiles', 'dvs', 1, 10) ORDER BY k;

\echo
\echo == the saved model labels new profiles in plain SQL
SELECT kmeans_predict('provinces', dvs) AS cluster, count(*) FROM profiles GROUP BY 1 ORDER BY 1;
SQL
echo
echo "demo done"
