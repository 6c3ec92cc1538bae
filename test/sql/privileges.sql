-- Every function runs with the caller's privileges: a role reads only what it may read, and
-- saves models only where it may write.
CREATE SCHEMA test_privileges;
SET search_path = test_privileges, public;
SET extra_float_digits = 0;

CREATE TABLE secret (id int, v real[]);
INSERT INTO secret VALUES (1, '{0}'), (2, '{1}'), (3, '{10}');
CREATE TABLE shared_points (id int, v real[]);
INSERT INTO shared_points VALUES (1, '{0}'), (2, '{2}');

CREATE ROLE regress_kmeans_analyst;
GRANT USAGE ON SCHEMA test_privileges TO regress_kmeans_analyst;
GRANT SELECT ON shared_points TO regress_kmeans_analyst;

SET ROLE regress_kmeans_analyst;
-- a table the role may not read, by name and inside a query
SELECT * FROM kmeans_fit('secret', 'v', 1);
SELECT * FROM kmeans_fit('SELECT v FROM test_privileges.secret', 'v', 1);
-- a table it may read
SELECT cluster, center, size, inertia FROM kmeans_fit('shared_points', 'v', 1);
-- but it may not save models until granted
SELECT * FROM kmeans_fit('shared_points', 'v', 1, model => 'analyst_model');
RESET ROLE;

GRANT SELECT, INSERT, UPDATE ON kmeans_models TO regress_kmeans_analyst;
SET ROLE regress_kmeans_analyst;
SELECT count(*) FROM kmeans_fit('shared_points', 'v', 1, model => 'analyst_model');
SELECT kmeans_predict('analyst_model', '{5}');
RESET ROLE;
SELECT name, k, centers FROM kmeans_models WHERE name = 'analyst_model';

DELETE FROM kmeans_models WHERE name = 'analyst_model';
REVOKE ALL ON kmeans_models FROM regress_kmeans_analyst;
RESET search_path;
DROP SCHEMA test_privileges CASCADE;
DROP ROLE regress_kmeans_analyst;
