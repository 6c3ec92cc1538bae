"""A fit's memory does not grow with n_init: only the best run so far and the current one are kept.

Measures the peak resident memory (VmHWM in /proc) of the server backend that runs a fit with
n_init = 1 and with n_init = 40, each in a fresh connection.  With k = 1000 centers of 64 values a
run's model set is about 1 MB, so keeping every run would add some 40 MB; the two peaks must stay
within 8 MB of each other.  Needs psycopg2, a server (PGHOST etc.) with kmeans installed, and
/proc of the server's processes (the same machine); skips cleanly otherwise."""
import os
import sys

try:
    import psycopg2
except ImportError:
    print("skipped: psycopg2 not installed")
    print("0 passed, 0 failed")
    sys.exit(0)

DB = "kmeans_memory"


def connect(dbname):
    conn = psycopg2.connect(dbname=dbname)
    conn.autocommit = True
    return conn


def peak_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def fit_peak(n_init):
    """Peak resident kB of a fresh backend that runs one fit with n_init runs."""
    conn = connect(DB)
    cur = conn.cursor()
    cur.execute("SET kmeans.device = 'cpu'; SET kmeans.threads = 2; SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM pts")     # the table's pages, touched before the baseline
    before = peak_kb(pid)
    cur.execute("SELECT count(*) FROM kmeans_fit('pts', 'v', 1000, init => 'random', "
                "max_iter => 2, n_init => %s)", (n_init,))
    count = cur.fetchone()[0]
    after = peak_kb(pid)
    conn.close()
    return count, after - before


def main():
    admin = connect("postgres")
    cur = admin.cursor()
    cur.execute("SELECT pg_backend_pid()")
    if not os.path.exists(f"/proc/{cur.fetchone()[0]}/status"):
        print("skipped: the server's processes are not visible here")
        print("0 passed, 0 failed")
        return 0
    cur.execute(f"DROP DATABASE IF EXISTS {DB}")
    cur.execute(f"CREATE DATABASE {DB}")
    setup = connect(DB)
    setup.cursor().execute(
        "CREATE EXTENSION kmeans;"
        "CREATE TABLE pts AS SELECT i AS id, ARRAY(SELECT sin(i * 0.37 + j * 1.3) "
        "FROM generate_series(1, 64) j)::real[] AS v FROM generate_series(1, 5000) i")
    setup.close()

    passed = failed = 0
    c1, one = fit_peak(1)
    c40, forty = fit_peak(40)
    ok = c1 == c40 == 1000 and forty - one < 8 * 1024
    print(f"{'ok' if ok else 'FAIL'}: peak memory of the fit: n_init = 1 {one} kB, "
          f"n_init = 40 {forty} kB (must differ by less than 8192 kB)")
    passed, failed = (1, 0) if ok else (0, 1)

    cur.execute(f"DROP DATABASE IF EXISTS {DB}")
    admin.close()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
