-- kmeans_last_fit(): the steps of the session's last fit, in order, with the inertia of each
-- Lloyd pass.  The timings vary; only their sign is shown.
SET extra_float_digits = 0;
CREATE TABLE steplog_line (id int, v real[]);
-- two groups on a line: 0, 1, 2 and 10, 11, 12
INSERT INTO steplog_line VALUES (1, '{0}'), (2, '{1}'), (3, '{2}'), (4, '{10}'), (5, '{11}'), (6, '{12}');
CREATE VIEW steplog AS
SELECT step, phase, run, iteration, k_running, seconds >= 0 AS timed, inertia FROM kmeans_last_fit();

-- Nothing fitted yet in this session: no steps.
SELECT count(*) FROM kmeans_last_fit();

-- From centers 0 and 10: the first pass assigns {0,1,2} and {10,11,12}, inertia
-- (0+1+4) + (0+1+4) = 10; the centers move to 1 and 11; the second pass changes no label,
-- inertia (1+0+1) * 2 = 4, and the fit stops; the final pass measures 4 again.
SELECT * FROM kmeans_fit('steplog_line', 'v', 2, init_centers => '{{0},{10}}');
SELECT * FROM steplog;

-- kmeans_labels with one run reads its labels in the run's own final pass.
SELECT count(*) FROM kmeans_labels('steplog_line', 'v', 2, id => 'id', init_centers => '{{0},{10}}');
SELECT phase, run, iteration FROM steplog ORDER BY step;

-- Three seeding runs: each run its own seed, iterations and final pass.  kmeans_labels then
-- labels the rows with the kept centers in one more final pass, which belongs to no run.
SELECT count(*) FROM kmeans_labels('steplog_line', 'v', 2, id => 'id', n_init => 3);
SELECT phase, run, count(*), min(iteration), max(iteration), bool_and(timed) FROM steplog
GROUP BY phase, run ORDER BY min(step);
-- every run ends at inertia 4, the two groups
SELECT run, inertia FROM steplog WHERE phase = 'final' ORDER BY step;

-- An elbow fits every k together: each step serves the three k.  Final inertia
-- k=1: mean 6, (36+25+16+16+25+36) = 154; k=2: 4; k=3 (one group split): 2.5; 160.5 in all.
SELECT k, inertia FROM kmeans_elbow('steplog_line', 'v', 1, 3);
SELECT phase, k_running, inertia FROM steplog WHERE phase IN ('read', 'final', 'quality')
ORDER BY step;

-- A fit that fails while reading leaves no steps behind it (the log is the failed fit's).
SELECT * FROM kmeans_fit('steplog_line', 'no_such_column', 2);
SELECT count(*) FROM kmeans_last_fit();

DROP VIEW steplog;
DROP TABLE steplog_line;
