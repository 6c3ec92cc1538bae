-- A refit of a saved model numbers its clusters after the model it replaces
-- (kmeans.match_clusters), so labels stored from the old model keep their meaning.
CREATE SCHEMA test_refit;
SET search_path = test_refit, public;
SET extra_float_digits = 0;

-- Three groups of ten: around (0,0), (50,0) and (0,50), each point 1 from its group's center.
CREATE TABLE pts (id int, g int, v real[]);
INSERT INTO pts
SELECT g * 10 + i, g,
       ARRAY[CASE g WHEN 1 THEN 50 ELSE 0 END + cos(i * 0.6283185307),
             CASE g WHEN 2 THEN 50 ELSE 0 END + sin(i * 0.6283185307)]::real[]
FROM generate_series(0, 2) g, generate_series(0, 9) i;

-- The first fit, from explicit centers in the order (0,50), (0,0), (50,0): groups 2, 0, 1 get
-- clusters 0, 1, 2.  The labels are stored with the rows.
SELECT count(*) FROM kmeans_fit('pts', 'v', 3, init_centers => '{{0,50},{0,0},{50,0}}',
                                model => 'groups');
ALTER TABLE pts ADD COLUMN label int;
UPDATE pts SET label = kmeans_predict('groups', v);
SELECT g, array_agg(DISTINCT label) AS labels FROM pts GROUP BY g ORDER BY g;

-- Without matching, a refit from other starting centers numbers the clusters its own way:
-- here (50,0), (0,50), (0,0).
SET kmeans.match_clusters = off;
SELECT count(*) FROM kmeans_fit('pts', 'v', 3, init_centers => '{{50,0},{0,50},{0,0}}',
                                model => 'groups_unmatched');
SELECT g, array_agg(DISTINCT kmeans_predict('groups_unmatched', v)) FROM pts GROUP BY g ORDER BY g;
RESET kmeans.match_clusters;

-- With matching (the default), two refits of 'groups' over the rows in another order, from
-- those other starting centers and from k-means++, keep every stored label.
CREATE TABLE pts_shuffled AS SELECT * FROM pts ORDER BY (id * 7) % 30;
SELECT cluster, center, size FROM kmeans_fit('pts_shuffled', 'v', 3,
    init_centers => '{{50,0},{0,50},{0,0}}', model => 'groups') ORDER BY cluster;
SELECT count(*) FILTER (WHERE label <> kmeans_predict('groups', v)) AS moved FROM pts;
SELECT count(*) FROM kmeans_fit('pts_shuffled', 'v', 3, seed => 11, model => 'groups');
SELECT count(*) FILTER (WHERE label <> kmeans_predict('groups', v)) AS moved FROM pts;
-- kmeans_labels saving a refit hands out the matched numbers too
SELECT count(*) FILTER (WHERE l.cluster <> p.label) AS moved
FROM kmeans_labels('pts_shuffled', 'v', 3, id => 'id', seed => 5, model => 'groups') l
JOIN pts p ON p.id = l.id;

-- The matching is optimal, not greedy.  Old centers 0 and 3; the new fit finds 5 and 2, in
-- that order.  Squared distances: 0-5 25, 0-2 4, 3-5 4, 3-2 1.  A greedy pairing takes 3-2
-- (1) first and leaves 0-5 (25), 26 in all; the optimum is 0-2 and 3-5, 8 in all, so the new
-- center 2 becomes cluster 0 and 5 cluster 1.
CREATE TABLE old_line (v real[]);
INSERT INTO old_line VALUES ('{-1}'), ('{0}'), ('{1}'), ('{2}'), ('{3}'), ('{4}');
SELECT cluster, center FROM kmeans_fit('old_line', 'v', 2, init_centers => '{{0},{3}}',
                                       model => 'optimal') ORDER BY cluster;
CREATE TABLE new_line (v real[]);
INSERT INTO new_line VALUES ('{1}'), ('{2}'), ('{3}'), ('{4.5}'), ('{5}'), ('{5.5}');
SELECT cluster, center, size, inertia FROM kmeans_fit('new_line', 'v', 2,
    init_centers => '{{5},{2}}', model => 'optimal') ORDER BY cluster;
SELECT centers FROM kmeans_models WHERE name = 'optimal';

-- A refit with another k or dimension has nothing to match and keeps its own numbering.
SELECT cluster, center FROM kmeans_fit('new_line', 'v', 3, init_centers => '{{5},{3},{1}}',
                                       model => 'optimal') ORDER BY cluster;

DELETE FROM kmeans_models WHERE name IN ('groups', 'groups_unmatched', 'optimal');
RESET search_path;
DROP SCHEMA test_refit CASCADE;
