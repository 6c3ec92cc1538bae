"""Hostile SQL text against a live server, with a sentinel connection that must survive.

Each case is a call that once crashed the server or read its memory (a smuggled statement whose
columns the reader took for real[] and bigint).  A case passes when it ends in an ERROR with a
proper SQLSTATE (not XX000, not a lost connection); at the end the sentinel connection, opened
before any case, must still answer and the postmaster must not have restarted: a backend crash
would have ended every session.  Needs psycopg2 and a server (PGHOST etc.) with kmeans
installed; skips cleanly without psycopg2."""
import sys

try:
    import psycopg2
except ImportError:
    print("skipped: psycopg2 not installed")
    print("0 passed, 0 failed")
    sys.exit(0)

DB = "kmeans_hostile"

# (function call, what it smuggles); every one must be refused
CASES = [
    ("kmeans_fit('SELECT 1', 'NULL); SELECT 1; SELECT (NULL', 1)",
     "a second statement through column_name"),
    ("kmeans_fit('SELECT 1', 'NULL); SELECT ''\\x01000000000000000000000000100000''::bytea; SELECT (NULL', 1)",
     "a bytea with a forged array header through column_name"),
    ("kmeans_fit('SELECT v FROM pts; SELECT ''\\x0100000000000000bc02000000400000''::bytea', 'v', 1)",
     "a forged array through a second statement in source"),
    ("kmeans_labels('pts', 'v', 1, id => 'id); SELECT v, 1::text FROM pts; SELECT (1')",
     "a text read as bigint through id"),
    ("kmeans_labels('pts', 'v', 1, id => 'id); SELECT v, pg_catalog.now() FROM pts; SELECT (1')",
     "a timestamp read as an id"),
    ("kmeans_elbow('pts', 'v) FROM pts; SELECT 1; SELECT (v', 1, 2)",
     "a second statement in kmeans_elbow"),
    ("kmeans_fit('pts', 'v) AS pg_catalog.float4[]) FROM pts; SELECT (1', 1)",
     "closing the cast early"),
    ("kmeans_fit('(SELECT v FROM pts)) AS a; SELECT 1 FROM (SELECT 1', 'v', 1)",
     "closing the subquery early"),
    ("kmeans_fit('SELECT v FROM pts; COMMIT', 'v', 1)", "a COMMIT in the source"),
]


def connect(dbname):
    conn = psycopg2.connect(dbname=dbname)
    conn.autocommit = True
    return conn


def main():
    admin = connect("postgres")
    cur = admin.cursor()
    cur.execute(f"DROP DATABASE IF EXISTS {DB}")
    cur.execute(f"CREATE DATABASE {DB}")
    admin.close()

    setup = connect(DB)
    setup.cursor().execute(
        "CREATE EXTENSION kmeans; SET kmeans.device = 'cpu';"
        "CREATE TABLE pts (id int, v real[]);"
        "INSERT INTO pts VALUES (1, '{1,2}'), (2, '{3,4}'), (3, '{5,6}')")
    sentinel = connect(DB)
    scur = sentinel.cursor()
    scur.execute("SELECT pg_postmaster_start_time(), pg_backend_pid()")
    started, pid = scur.fetchone()

    passed = failed = 0
    for call, what in CASES:
        conn = connect(DB)
        c = conn.cursor()
        c.execute("SET kmeans.device = 'cpu'")
        try:
            c.execute(f"SELECT * FROM {call}")
            ok, why = False, f"returned {c.fetchall()!r}"
        except psycopg2.OperationalError as e:
            ok, why = False, f"connection lost: {e}"
        except psycopg2.Error as e:
            ok = e.pgcode is not None and e.pgcode != "XX000"
            why = f"{e.pgcode}: {str(e).splitlines()[0]}"
        if ok:
            passed += 1
            print(f"ok: {what}: {why}")
        else:
            failed += 1
            print(f"FAIL {what}: {why}")
        if not conn.closed:
            conn.close()

    try:
        scur.execute("SELECT pg_postmaster_start_time(), pg_backend_pid()")
        alive = scur.fetchone() == (started, pid)
    except psycopg2.Error as e:
        alive = False
        print(f"sentinel: {e}")
    if alive:
        passed += 1
        print("ok: the sentinel connection survived and the server did not restart")
    else:
        failed += 1
        print("FAIL the sentinel connection did not survive: the server crashed")
    sentinel.close()
    setup.close()
    admin = connect("postgres")
    admin.cursor().execute(f"DROP DATABASE IF EXISTS {DB}")
    admin.close()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
