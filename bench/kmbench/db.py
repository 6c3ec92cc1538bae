"""The bench database: one connection for loading, scans and the timed fits, so that the
engine's step log (kmeans_last_fit, session-local) describes the fit that connection just ran."""

import os
import time

import numpy as np

from .util import cpu_seconds_of_pid, log

try:
    import psycopg2
    import psycopg2.extensions
except ImportError:  # pragma: no cover
    raise SystemExit("bench.py needs psycopg2: apt-get install python3-psycopg2 or pip install psycopg2-binary")


class Database:
    """A connection to `dbname` (created if missing) with the kmeans extension in it."""

    def __init__(self, dbname):
        self.dbname = dbname
        self._create_database_if_missing()
        self.conn = psycopg2.connect(dbname=dbname)
        self.conn.autocommit = True
        self.backend_pid = self.conn.get_backend_pid()
        self.execute("CREATE EXTENSION IF NOT EXISTS kmeans")
        # load the library, so that its settings (kmeans.threads, ...) can be read and set
        self.execute("SELECT kmeans_predict(ARRAY[[0]]::real[], ARRAY[0]::real[])")
        # the step log times the fits; NOTICEs would only cost time
        self.set("kmeans.verbose", "off")

    def _create_database_if_missing(self):
        try:
            psycopg2.connect(dbname=self.dbname).close()
            return
        except psycopg2.OperationalError as e:
            if "does not exist" not in str(e):
                raise
        maint = os.environ.get("PGDATABASE") or "postgres"
        if maint == self.dbname:
            maint = "postgres"
        log("creating database %s" % self.dbname)
        c = psycopg2.connect(dbname=maint)
        c.autocommit = True
        c.cursor().execute("CREATE DATABASE %s" % psycopg2.extensions.quote_ident(self.dbname, c))
        c.close()

    def ensure_function(self, name, why=""):
        """The bench database may hold the extension from an older build of the same version,
        created before `name` existed: recreate it then (the extension's only table,
        kmeans_models, must be empty; otherwise say what to do)."""
        # by name in pg_proc: to_regproc is NULL for an overloaded name (kmeans_fit has two)
        exists = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE proname = %s)"
        if self.scalar(exists, (name,)):
            return
        saved = self.scalar("SELECT count(*) FROM kmeans_models")
        if saved:
            raise SystemExit("function %s is missing in database %s: the extension there is "
                             "older than the installed one, and kmeans_models holds %d saved "
                             "model(s), so the bench will not drop it; run DROP EXTENSION "
                             "kmeans CASCADE; CREATE EXTENSION kmeans there, or use --db"
                             % (name, self.dbname, saved))
        log("function %s is missing in database %s: recreating the extension there, in case "
            "it was created from an older build" % (name, self.dbname))
        self.execute("DROP EXTENSION kmeans")
        self.execute("CREATE EXTENSION kmeans")
        if not self.scalar(exists, (name,)):
            raise SystemExit("the installed kmeans extension has no function %s%s: build and "
                             "install a newer kmeans (scripts/bench.sh does both)" % (name, why))

    def execute(self, sql, params=None):
        cur = self.conn.cursor()
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None

    def scalar(self, sql, params=None):
        return self.execute(sql, params)[0][0]

    def set(self, name, value):
        """A setting for the rest of the session."""
        self.execute("SELECT set_config(%s, %s, false)", (name, str(value)))

    def timed(self, sql, params=None):
        """(rows, wall seconds on the client, CPU seconds of the backend or None) of one
        statement.  The backend's CPU time is read from /proc, so it needs the server on this
        host."""
        cur = self.conn.cursor()
        c0 = cpu_seconds_of_pid(self.backend_pid)
        t0 = time.perf_counter()
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.description else None
        t1 = time.perf_counter()
        c1 = cpu_seconds_of_pid(self.backend_pid)
        return rows, t1 - t0, None if c0 is None or c1 is None else c1 - c0

    # -- tables --------------------------------------------------------------------------

    def table_matches(self, table, n, tag):
        if self.scalar("SELECT to_regclass(%s) IS NOT NULL", (table,)) is False:
            return False
        comment = self.scalar("SELECT obj_description(to_regclass(%s), 'pg_class')", (table,))
        if comment != tag:
            return False
        return self.scalar("SELECT count(*) FROM %s" % table) == n

    def copy_in(self, table, columns, copy_sql, source, tag):
        """(Re)creates `table` with `columns`, fills it by `copy_sql` from the file-like
        `source`, comments it with `tag`, all in one transaction, then VACUUM ANALYZE.
        Returns the seconds it took."""
        t0 = time.perf_counter()
        cur = self.conn.cursor()
        cur.execute("BEGIN")
        try:
            cur.execute("DROP TABLE IF EXISTS %s" % table)
            cur.execute("CREATE TABLE %s (%s)" % (table, columns))
            cur.copy_expert(copy_sql, source, size=1 << 20)
            cur.execute("COMMENT ON TABLE %s IS %%s" % table, (tag,))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        log("  VACUUM ANALYZE %s" % table)
        cur.execute("VACUUM ANALYZE %s" % table)
        return time.perf_counter() - t0

    def check_rows(self, table, X, rows):
        """The table's vectors at the given positions equal X's, bit for bit."""
        got = self.execute("SELECT id, v FROM %s WHERE id = ANY(%%s) ORDER BY id" % table,
                           ([int(r) for r in rows],))
        if len(got) != len(set(int(r) for r in rows)):
            raise RuntimeError("table %s lacks some of the rows %s" % (table, list(rows)))
        for rid, v in got:
            if not np.array_equal(np.asarray(v, dtype=np.float32), X[rid]):
                raise RuntimeError("table %s row %d differs from the generated data" % (table, rid))

    def seqscan(self, table, repeats, expr="v"):
        """Wall seconds of `repeats` plain scans SELECT count(expr), without parallel workers
        (the extension's reader runs without them too)."""
        self.execute("SET max_parallel_workers_per_gather = 0")
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.execute("SELECT count(%s) FROM %s" % (expr, table))
            times.append(time.perf_counter() - t0)
        self.execute("RESET max_parallel_workers_per_gather")
        return times
