#!/usr/bin/env python3
"""A materialized view over kmeans_fit with a regclass source survives pg_dump and pg_restore.

Against a live server (libpq variables; pg_dump and pg_restore from $KMEANS_PG_BINDIR, else
PATH): a database with a table of two known groups, the extension, a saved model and two
materialized views over kmeans_fit and kmeans_labels with the source given as regclass; then
`pg_dump -Fc` and `pg_restore` into a new database, where pg_restore refreshes the views under an
empty search_path.  The restored views must hold the same rows, the means of the two groups
(worked out here in plain Python), and the model must label as before.  Prints
"N passed, M failed".
"""
import os
import subprocess
import sys
import tempfile

import psycopg2

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s" % what)


def tool(name):
    bindir = os.environ.get("KMEANS_PG_BINDIR")
    path = os.path.join(bindir, name) if bindir else name
    return path if not bindir or os.path.exists(path) else name


def connect(db):
    conn = psycopg2.connect(dbname=db)
    conn.autocommit = True
    return conn


def main():
    src, dst = "kmeans_dump_src", "kmeans_dump_dst"
    admin = connect(os.environ.get("PGDATABASE", "postgres"))
    cur = admin.cursor()
    for db in (src, dst):
        cur.execute("DROP DATABASE IF EXISTS %s" % db)
    cur.execute("CREATE DATABASE %s" % src)

    # two groups whose means are known: x in 0..9 around 0, and 100 + x around 100
    group_a = [float(x) for x in range(10)]
    group_b = [100.0 + x for x in range(10)]
    means = sorted([sum(group_a) / 10, sum(group_b) / 10])   # 4.5, 104.5

    s = connect(src)
    c = s.cursor()
    c.execute("CREATE EXTENSION kmeans")
    c.execute("CREATE SCHEMA field")
    c.execute("CREATE TABLE field.points (id int PRIMARY KEY, v real[])")
    # named as a user would, through the search_path: a text name would not restore
    c.execute("SET search_path = field, public")
    for i, x in enumerate(group_a + group_b):
        c.execute("INSERT INTO field.points VALUES (%s, %s)", (i + 1, [x, 2.0 * x]))
    c.execute("""CREATE MATERIALIZED VIEW centers AS
                 SELECT cluster, center, size
                 FROM kmeans_fit('points'::regclass, 'v', 2, init_centers => '{{0,0},{100,200}}')""")
    c.execute("""CREATE MATERIALIZED VIEW labels AS
                 SELECT id, cluster
                 FROM kmeans_labels('points'::regclass, 'v', 2, id => 'id',
                                    init_centers => '{{0,0},{100,200}}')""")
    c.execute("SELECT count(*) FROM kmeans_fit('field.points'::regclass, 'v', 2, "
              "init_centers => '{{0,0},{100,200}}', model => 'field_model')")
    c.execute("SELECT cluster, center, size FROM field.centers ORDER BY cluster")
    before_centers = c.fetchall()
    c.execute("SELECT id, cluster FROM field.labels ORDER BY id")
    before_labels = c.fetchall()
    check([round(r[1][0], 4) for r in before_centers] == means,
          "centers before the dump: %r, expected x means %r" % (before_centers, means))
    s.close()

    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "src.dump")
        r = subprocess.run([tool("pg_dump"), "-Fc", "-f", dump, src], capture_output=True, text=True)
        check(r.returncode == 0, "pg_dump: %s" % r.stderr.strip())
        cur.execute("CREATE DATABASE %s" % dst)
        r = subprocess.run([tool("pg_restore"), "--exit-on-error", "-d", dst, dump],
                           capture_output=True, text=True)
        check(r.returncode == 0, "pg_restore: %s" % r.stderr.strip())

    d = connect(dst)
    c = d.cursor()
    c.execute("SELECT cluster, center, size FROM field.centers ORDER BY cluster")
    check(c.fetchall() == before_centers, "restored centers differ")
    c.execute("SELECT id, cluster FROM field.labels ORDER BY id")
    check(c.fetchall() == before_labels, "restored labels differ")
    # the restored view still depends on the restored table
    try:
        c.execute("DROP TABLE field.points")
        check(False, "the restored view does not depend on the table")
    except psycopg2.Error as e:
        check(e.pgcode == "2BP01", "DROP TABLE: %s %s" % (e.pgcode, e))
    c.execute("SELECT kmeans_predict('field_model', '{3,6}'), kmeans_predict('field_model', '{99,198}')")
    check(c.fetchone() == (0, 1), "the restored model labels differently")
    d.close()

    for db in (src, dst):
        cur.execute("DROP DATABASE IF EXISTS %s" % db)
    admin.close()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
