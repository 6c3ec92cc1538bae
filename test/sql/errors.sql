-- Every bad input is an ERROR with an SQLSTATE, the offending value and a hint; the session
-- and the data stay usable afterwards.
CREATE SCHEMA test_errors;
SET search_path = test_errors, public;
SET extra_float_digits = 0;

\i test/sql/include/try.sql
\x on

CREATE TABLE good (id int, v real[]);
INSERT INTO good VALUES (1, '{1,2}'), (2, '{3,4}'), (3, '{5,6}');

-- bad vectors: the row number, the id when known, the position
CREATE TABLE bad_null_elem (id int, v real[]);
INSERT INTO bad_null_elem VALUES (10, '{1,2}'), (11, '{3,NULL}');
SELECT * FROM try($q$SELECT * FROM kmeans_fit('bad_null_elem', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_labels('bad_null_elem', 'v', 1, id => 'id')$q$);
CREATE TABLE bad_nan (id int, v real[]);
INSERT INTO bad_nan VALUES (1, '{1,2}'), (2, '{3,4}'), (3, '{NaN,4}');
SELECT * FROM try($q$SELECT * FROM kmeans_fit('bad_nan', 'v', 1)$q$);
CREATE TABLE bad_inf (id int, v real[]);
INSERT INTO bad_inf VALUES (1, '{1,Infinity}'), (2, '{1,-Infinity}');
SELECT * FROM try($q$SELECT * FROM kmeans_fit('bad_inf', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('SELECT v FROM bad_inf WHERE id = 2', 'v', 1)$q$);
CREATE TABLE bad_len (id int, v real[]);
INSERT INTO bad_len VALUES (1, '{1,2}'), (2, NULL), (3, '{1,2,3}');
SELECT * FROM try($q$SELECT * FROM kmeans_fit('bad_len', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_labels('bad_len', 'v', 1, id => 'id')$q$);
CREATE TABLE bad_dims (id int, v real[]);
INSERT INTO bad_dims VALUES (1, '{{1,2},{3,4}}');
SELECT * FROM try($q$SELECT * FROM kmeans_fit('bad_dims', 'v', 1)$q$);
CREATE TABLE bad_empty (id int, v real[]);
INSERT INTO bad_empty VALUES (1, '{}');
SELECT * FROM try($q$SELECT * FROM kmeans_fit('bad_empty', 'v', 1)$q$);
-- NULL ids when labelling
CREATE TABLE bad_id (id int, v real[]);
INSERT INTO bad_id VALUES (1, '{1}'), (NULL, '{2}');
SELECT * FROM try($q$SELECT * FROM kmeans_labels('bad_id', 'v', 1, id => 'id')$q$);

-- k
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 0)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', -3)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 4)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('SELECT v FROM good WHERE false', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 2000000)$q$);

-- options
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, max_iter => 0)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, tol => -1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, tol => 'NaN')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, init => 'kmeans')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, init => 'explicit')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, init => 'random', init_centers => '{{1,2}}')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 2, init_centers => '{{1,2}}')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, init_centers => '{1,2}')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, init_centers => '{{1,2,3}}')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, init_centers => '{{1,NaN}}')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, init_centers => '{{1,NULL}}')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, n_init => 0)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, device => 'tpu')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, max_iter => NULL)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit(NULL, 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', NULL)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, model => '')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_labels('good', 'v', 1)$q$);

-- sources and columns
SELECT * FROM try($q$SELECT * FROM kmeans_fit('no_such_table', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('no_such_schema.good', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', '', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'no_such_column', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'id', 1)$q$);
CREATE SEQUENCE a_sequence;
SELECT * FROM try($q$SELECT * FROM kmeans_fit('a_sequence', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, id => 'no_such_id')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v', 1, id => '')$q$);
-- a query source can only read
SELECT * FROM try($q$SELECT * FROM kmeans_fit('WITH d AS (DELETE FROM good RETURNING v) SELECT v FROM d', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('SELECT v FROM good; DROP TABLE good', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('WITH x AS (SELECT 1) DELETE FROM good', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('SELECT v INTO stolen FROM good', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('SELECT v FROM good FOR UPDATE', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('SELECT v FROM good UNION SELECT v FROM good FOR SHARE', 'v', 1)$q$);

-- SQL text cannot smuggle a second statement or a column of another type through source,
-- column_name or id (each of these crashed the server before: a bytea or int read as real[]);
-- the server is checked to have stayed up by test/hostile/check_sentinel.py
SELECT * FROM try($q$SELECT * FROM kmeans_fit('SELECT 1', 'NULL); SELECT 1; SELECT (NULL', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v) FROM good; SELECT ''\x0100''::bytea; SELECT (v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_labels('good', 'v', 1, id => 'id); SELECT 1; SELECT (1')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('SELECT v FROM good; SELECT ''\x0100''::bytea', 'v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v, v', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v FROM good', 1)$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_fit('good', 'v --', 1, id => 'id) AS x, (1')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_elbow('good', 'v) FROM good; SELECT (v', 1, 2)$q$);
\x off
-- a trailing semicolon or comment is fine, and a comment cannot swallow what follows
SELECT center, size FROM kmeans_fit('SELECT v FROM good;', 'v', 1);
SELECT center, size FROM kmeans_fit('SELECT v FROM good -- all of them', 'v -- the vectors', 1);
\x on

-- predicting
SELECT * FROM try($q$SELECT kmeans_predict('no_such_model', '{1,2}')$q$);
SELECT * FROM try($q$SELECT kmeans_predict('{1,2}'::real[], '{1,2}')$q$);
SELECT * FROM try($q$SELECT kmeans_predict('{{1,2},{3,4}}'::real[], '{1,2,3}')$q$);
SELECT * FROM try($q$SELECT kmeans_predict('{{1,2},{3,4}}'::real[], '{1,NULL}')$q$);
SELECT * FROM try($q$SELECT kmeans_predict('{{1,2},{3,4}}'::real[], '{1,NaN}')$q$);
SELECT * FROM try($q$SELECT kmeans_predict('{{1,2},{NULL,4}}'::real[], '{1,2}')$q$);
-- a center that is not a finite number could never be nearest: labels would quietly skip it
SELECT * FROM try($q$SELECT kmeans_predict('{{1,2},{3,-Infinity}}'::real[], '{1,2}')$q$);
SELECT * FROM try($q$SELECT kmeans_predict('{{NaN,2},{3,4}}'::real[], '{1,2}')$q$);
SELECT * FROM try($q$SELECT * FROM kmeans_centers('no_such_model')$q$);

-- the session and the data are intact
\x off
SELECT count(*) FROM good;
SELECT center, size FROM kmeans_fit('good', 'v', 1);

RESET search_path;
DROP SCHEMA test_errors CASCADE;
