-- The statements the extension issues itself (reading and saving models) are immune to the
-- caller's search_path (CVE-2018-1058): a schema put ahead of pg_catalog, with its own
-- operator, function and type of the names those statements use, is never called.  The user's
-- own text (source, column) keeps the caller's search_path, as a query of theirs would.
CREATE SCHEMA test_security;
CREATE SCHEMA attacker;
SET search_path = test_security, public;
SET extra_float_digits = 0;

-- Everything the attacker's objects run leaves a row here.
CREATE TABLE attacker.trace (what text);
CREATE FUNCTION attacker.traced(what text) RETURNS boolean
LANGUAGE sql AS $$ INSERT INTO attacker.trace VALUES (what) RETURNING true $$;

-- Look-alikes of what the extension's statements name: the = of text, now() and jsonb in
-- its queries; the = of name and pg_has_role in the table's policies.
CREATE FUNCTION attacker.text_eq(a text, b text) RETURNS boolean
LANGUAGE sql AS $$ SELECT attacker.traced('=(text, text)') AND pg_catalog.texteq(a, b) $$;
CREATE OPERATOR attacker.= (LEFTARG = text, RIGHTARG = text, FUNCTION = attacker.text_eq);
CREATE FUNCTION attacker.name_eq(a name, b name) RETURNS boolean
LANGUAGE sql AS $$ SELECT attacker.traced('=(name, name)') AND pg_catalog.nameeq(a, b) $$;
CREATE OPERATOR attacker.= (LEFTARG = name, RIGHTARG = name, FUNCTION = attacker.name_eq);
CREATE FUNCTION attacker.now() RETURNS timestamptz
LANGUAGE sql AS $$ SELECT CASE WHEN attacker.traced('now()') THEN pg_catalog.now() END $$;
CREATE DOMAIN attacker.jsonb AS pg_catalog.jsonb CHECK (attacker.traced('jsonb'));
CREATE FUNCTION attacker.pg_has_role(r oid, how text) RETURNS boolean
LANGUAGE sql AS $$ SELECT attacker.traced('pg_has_role') AND pg_catalog.pg_has_role(r, how) $$;
GRANT USAGE ON SCHEMA attacker TO PUBLIC;
GRANT INSERT ON attacker.trace TO PUBLIC;

-- The look-alikes do work where they are picked: this is what the attack relies on.
SET search_path = attacker, pg_catalog, test_security, public;
SELECT 'a'::text = 'a'::text AS text_eq, 'a'::name = 'a'::name AS name_eq,
       now() IS NOT NULL AS now, '{}'::jsonb AS jsonb,
       pg_has_role('pg_monitor'::regrole, 'MEMBER') IS NOT NULL AS pg_has_role;
SELECT what FROM attacker.trace ORDER BY what;
TRUNCATE attacker.trace;
RESET search_path;

CREATE TABLE test_security.points (id int, tag text, v real[]);
INSERT INTO test_security.points VALUES
    (1, 'a', '{0}'), (2, 'a', '{1}'), (3, 'a', '{2}'),
    (4, 'b', '{10}'), (5, 'b', '{11}'), (6, 'b', '{12}');

SET search_path = attacker, pg_catalog, test_security, public;

-- Saving a new model: the INSERT.  Centers 1 and 11 (the means of 0..2 and 10..12).
SELECT * FROM kmeans_fit('points', 'v', 2, init_centers => '{{0},{10}}', model => 'sec');
SELECT what FROM attacker.trace;

-- Reading it: kmeans_predict and kmeans_centers.
SELECT kmeans_predict('sec', '{4}') AS near_1, kmeans_predict('sec', '{7}') AS near_11;
SELECT * FROM kmeans_centers('sec');
SELECT what FROM attacker.trace;

-- Replacing it: the ON CONFLICT path.  From {0}, {3}, {11}: 0 and 1 go to the first, 2 to the
-- second, 10..12 to the third; centers 0.5, 2 and 11, and nothing moves after that.
SELECT * FROM kmeans_fit('points', 'v', 3, init_centers => '{{0},{3},{11}}', model => 'sec');
SELECT kmeans_predict('sec', '{1.4}') AS near_2;
SELECT what FROM attacker.trace;
-- (this query is the test's own: it qualifies its = itself)
SELECT name, k, centers, options->>'init' AS init, source FROM public.kmeans_models
WHERE name OPERATOR(pg_catalog.=) 'sec';

-- kmeans_labels saves before its final pass, which reads the source again when the data is
-- streamed: that read still resolves 'points' with the caller's search_path.
SET kmeans.memory_limit = '64kB';
SELECT id, cluster, distance
FROM kmeans_labels('points', 'v', 2, id => 'id', init_centers => '{{0},{10}}', model => 'sec_labels')
ORDER BY id;
RESET kmeans.memory_limit;
SELECT what FROM attacker.trace;

-- The extension's statements run with search_path pinned to pg_catalog, pg_temp, so that one
-- which forgets to qualify a name is still safe, and the caller's is back afterwards: a
-- trigger on the table sees the pinned one.
RESET search_path;
CREATE TABLE test_security.seen (search_path text);
CREATE FUNCTION test_security.note_path() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_security.seen VALUES (pg_catalog.current_setting('search_path'));
    RETURN NEW;
END $$;
CREATE TRIGGER note_path BEFORE INSERT ON public.kmeans_models
    FOR EACH ROW EXECUTE FUNCTION test_security.note_path();
SET search_path = attacker, pg_catalog, test_security, public;
SELECT count(*) FROM kmeans_fit('points', 'v', 2, init_centers => '{{0},{10}}', model => 'sec');
SHOW search_path;
SELECT * FROM test_security.seen;
DROP TRIGGER note_path ON public.kmeans_models;
SELECT what FROM attacker.trace;

-- The same as a role that row-level security applies to: the save first looks up the owner
-- of a model of that name.
RESET search_path;
CREATE ROLE regress_kmeans_security;
GRANT USAGE ON SCHEMA test_security TO regress_kmeans_security;
GRANT SELECT ON test_security.points TO regress_kmeans_security;
GRANT SELECT, INSERT, UPDATE ON public.kmeans_models TO regress_kmeans_security;
SET ROLE regress_kmeans_security;
SET search_path = attacker, pg_catalog, test_security, public;
SELECT count(*) FROM kmeans_fit('points', 'v', 2, init_centers => '{{0},{10}}', model => 'sec_role');
SELECT count(*) FROM kmeans_fit('points', 'v', 1, model => 'sec_role');
SELECT kmeans_predict('sec_role', '{100}') AS only_one;
RESET ROLE;
SELECT what FROM attacker.trace;

-- The user's own text is theirs: a source that writes = picks the caller's =, as it would
-- anywhere else.  Three points are tagged 'a': their mean is 1.
SELECT * FROM kmeans_fit($q$SELECT v FROM points WHERE tag = 'a'$q$, 'v', 1);
SELECT DISTINCT what FROM attacker.trace;

RESET search_path;
DELETE FROM kmeans_models WHERE name IN ('sec', 'sec_labels', 'sec_role');
REVOKE ALL ON kmeans_models FROM regress_kmeans_security;
DROP SCHEMA test_security CASCADE;
DROP SCHEMA attacker CASCADE;
DROP ROLE regress_kmeans_security;
