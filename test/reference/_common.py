"""Shared pieces of the reference checks: pass/fail counting, a session in a schema of its own,
loading a float32 array into a table, and the seismic profiles from ../shared/data when they
are there.  test/engine/check_quality_sklearn.py uses the counting and the profiles too."""
import io
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILES = os.path.join(HERE, "..", "..", "..", "shared", "data", "wus_sh_2010_dvs_profiles.tsv")


class Checks:
    """Counts checks and prints the failing ones."""

    def __init__(self):
        self.passed = self.failed = 0

    def __call__(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}")

    def summary(self):
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


def connect(schema):
    """A cursor of an autocommit session (the libpq environment names the server) with the
    extension created and a fresh schema first on the search path."""
    import psycopg2

    conn = psycopg2.connect("")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION IF NOT EXISTS kmeans")
    cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    cur.execute(f"SET search_path = {schema}, public")
    return cur


def pg_array(rows):
    """A real[] literal for a 1-D or 2-D array; repr() of a float32 widened to float64 is exact."""
    rows = np.asarray(rows)
    if rows.ndim == 1:
        return "{" + ",".join(repr(float(v)) for v in rows) + "}"
    return "{" + ",".join(pg_array(r) for r in rows) + "}"


def load_table(cur, name, x):
    """(Re)creates table name (id bigint, v real[]) in the session's own schema (never a table
    of that name elsewhere on the search path) holding the rows of x, ids from 0."""
    cur.execute("SELECT current_schema()")
    schema = cur.fetchone()[0]
    cur.execute(f"DROP TABLE IF EXISTS {schema}.{name}; CREATE TABLE {schema}.{name} (id bigint, v real[])")
    buf = io.StringIO("".join(f"{i}\t{pg_array(r)}\n" for i, r in enumerate(x)))
    cur.copy_expert(f"COPY {name} FROM STDIN", buf)


def read_profiles(depths=10):
    """The first depths values of every seismic profile as float32, or None when absent."""
    if not os.path.exists(PROFILES):
        print(f"skipped the seismic profiles: {PROFILES} not found")
        return None
    with open(PROFILES) as f:
        rows = [[float(v) for v in line.split("\t")[3].strip().strip("{}").split(",")[:depths]]
                for line in f]
    return np.array(rows, dtype=np.float32)


def relocate_empty(cost, lab, k):
    """The extension's documented repair of empty clusters (README, kmeans_fit), for the
    reference implementations: each empty cluster, in order, takes the farthest row (largest
    cost to its own center, the earlier row on ties) among the k farthest whose cluster keeps a
    row without it.  cost is n x k; returns the labels the new centers are the means of."""
    counts = np.bincount(lab, minlength=k)
    if counts.min() > 0:
        return lab
    own = cost[np.arange(len(lab)), lab]
    cand = sorted(range(len(lab)), key=lambda i: (-own[i], i))[:k]
    moved, nxt = lab.copy(), 0
    for j in range(k):
        if counts[j]:
            continue
        while nxt < len(cand) and counts[lab[cand[nxt]]] <= 1:
            nxt += 1
        if nxt == len(cand):
            break
        i = cand[nxt]
        nxt += 1
        counts[lab[i]] -= 1
        counts[j] = 1
        moved[i] = j
    return moved
