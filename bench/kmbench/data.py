"""The data: deterministic generators, the seed profiles read from ../shared/data, and the
tables that hold them (loaded by COPY, reused while a comment with the data's SHA-1 matches).

Every generator is deterministic; embed draws rows in fixed chunks with one seed per chunk, so
the first n rows are the same whatever n is (--quick uses a prefix).
"""

import hashlib
import io
import os
import struct

import numpy as np

from .util import log

DATA_VERSION = 1        # bump when a generator changes, so stale tables are reloaded
SEED_FILE = "wus_sh_2010_dvs_profiles.tsv"


class DataMissing(Exception):
    """A workload's data is not on this machine: the workload is skipped."""


def gen_uniform(n, d, seed):
    return np.random.default_rng(seed).random((n, d), dtype=np.float32)


def gen_blobs(n, d, nblobs, seed, noise=0.35, background=0.05, chunk=100_000):
    """nblobs gaussian blobs (centers N(0,1), spread `noise`) plus `background` of the rows
    uniform in [-3, 3)^d."""
    centers = np.random.default_rng([seed, 0]).standard_normal((nblobs, d), dtype=np.float32)
    X = np.empty((n, d), dtype=np.float32)
    for c, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        rng = np.random.default_rng([seed, 1, c])
        lab = rng.integers(0, nblobs, m)
        rows = centers[lab] + rng.standard_normal((m, d), dtype=np.float32) * np.float32(noise)
        bg = rng.random(m) < background
        rows[bg] = rng.random((int(bg.sum()), d), dtype=np.float32) * 6 - 3
        X[start:start + m] = rows
    return X


def gen_profiles(n, d, families, seed):
    """n smooth 'depth profiles' of d samples in `families` latent families.  A family's shape
    is three low-frequency sinusoids plus two gaussian bumps over depth; a row is its family's
    shape times an amplitude 1 + 0.15 N(0,1), plus one row-specific low-frequency sinusoid
    (amplitude 0.3 N(0,1)) and white noise 0.1 N(0,1)."""
    z = np.linspace(0.0, 1.0, d)
    rng = np.random.default_rng([seed, 0])
    shapes = np.zeros((families, d))
    for f in range(families):
        for _ in range(3):
            shapes[f] += rng.uniform(0.5, 1.5) * np.sin(2 * np.pi * rng.uniform(0.3, 2.5) * z
                                                       + rng.uniform(0, 2 * np.pi))
        for _ in range(2):
            shapes[f] += (rng.choice([-1, 1]) * rng.uniform(1, 2)
                          * np.exp(-0.5 * ((z - rng.uniform(0.1, 0.9)) / rng.uniform(0.04, 0.15)) ** 2))
    rng = np.random.default_rng([seed, 1])
    fam = rng.integers(0, families, n)
    amp = 1 + 0.15 * rng.standard_normal(n)
    wig = (0.3 * rng.standard_normal(n))[:, None] * np.sin(
        2 * np.pi * rng.uniform(0.2, 1.5, n)[:, None] * z[None, :] + rng.uniform(0, 2 * np.pi, n)[:, None])
    X = amp[:, None] * shapes[fam] + wig + 0.1 * rng.standard_normal((n, d))
    return X.astype(np.float32)


def initial_rows(n, k, seed=12345):
    """The k distinct row positions every engine starts from (as centers), ascending."""
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def real_array_literal(C):
    """A k x d float32 array as a PostgreSQL real[] literal that reads back bit-exactly: nine
    significant digits identify a float32, and float4in rounds correctly."""
    txt = np.char.mod("%.9g", np.asarray(C, dtype=np.float32).astype(np.float64))
    return "{" + ",".join("{" + ",".join(row) + "}" for row in txt.tolist()) + "}"


class BinaryCopySource(io.RawIOBase):
    """A file-like object that produces COPY BINARY data for (id bigint, v real[]) from a
    float32 array, a chunk of rows at a time (never the whole table in memory as text)."""

    def __init__(self, X, label, chunk_rows=20_000):
        self.X, self.label, self.chunk_rows = X, label, chunk_rows
        n, d = X.shape
        self.n, self.d = n, d
        self.dtype = np.dtype([
            ("nf", ">i2"), ("idlen", ">i4"), ("id", ">i8"), ("vlen", ">i4"),
            ("ndim", ">i4"), ("flags", ">i4"), ("oid", ">i4"), ("dim", ">i4"), ("lb", ">i4"),
            ("el", [("len", ">i4"), ("x", ">f4")], (d,))])
        self.next_row = 0
        self.buf = memoryview(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
        self.pos = 0
        self.done = False
        self.last_pct = -1

    def readable(self):
        return True

    def _refill(self):
        if self.next_row >= self.n:
            self.buf = memoryview(b"" if self.done else struct.pack(">h", -1))
            self.done = True
            self.pos = 0
            return
        s = self.next_row
        e = min(self.n, s + self.chunk_rows)
        rec = np.empty(e - s, dtype=self.dtype)
        rec["nf"] = 2
        rec["idlen"] = 8
        rec["id"] = np.arange(s, e, dtype=np.int64)
        rec["vlen"] = 20 + 8 * self.d
        rec["ndim"] = 1
        rec["flags"] = 0
        rec["oid"] = 700            # float4
        rec["dim"] = self.d
        rec["lb"] = 1
        rec["el"]["len"] = 4
        rec["el"]["x"] = self.X[s:e]
        self.buf = memoryview(rec.tobytes())
        self.pos = 0
        self.next_row = e
        pct = 100 * e // self.n
        if pct // 10 != self.last_pct // 10:
            self.last_pct = pct
            log("  loading %s: %d of %d rows (%d%%)" % (self.label, e, self.n, pct))

    def read(self, size=-1):
        if self.pos >= len(self.buf):
            self._refill()
        if size is None or size < 0:
            size = len(self.buf) - self.pos
        out = self.buf[self.pos:self.pos + size].tobytes()
        self.pos += len(out)
        return out


def _reuse_or_load(db, name, table, n, tag, reload, what, load):
    """Reuses `table` when its comment is `tag` and it has n rows, else calls load(); returns
    the load time in seconds, or None when the table was reused."""
    if not reload and db.table_matches(table, n, tag):
        log("%s: reusing table %s (%d rows)" % (name, table, n))
        return None
    log("%s: loading %s into %s" % (name, what, table))
    load_s = load()
    log("%s: loaded in %.2f s" % (name, load_s))
    return load_s


def array_table(db, name, X, reload=False):
    """A table kmbench_<name>_n<n>_d<d> (id bigint, v real[]) that holds exactly X, by binary
    COPY; three of its rows are read back and compared bit for bit.  (table, load seconds)."""
    n, d = X.shape
    table = "kmbench_%s_n%d_d%d" % (name, n, d)
    tag = "kmeans bench data v%d %s sha1 %s" % (DATA_VERSION, name, hashlib.sha1(X.tobytes()).hexdigest())
    load_s = _reuse_or_load(db, name, table, n, tag, reload, "%d x %d" % (n, d), lambda: db.copy_in(
        table, "id bigint NOT NULL, v real[] NOT NULL",
        "COPY %s (id, v) FROM STDIN (FORMAT binary)" % table, BinaryCopySource(X, table), tag))
    db.check_rows(table, X, [0, n // 2, n - 1])
    return table, load_s


def shared_data_dir():
    """$KMEANS_DATA_DIR, else ../shared/data relative to the repository root (this file is
    bench/kmbench/data.py)."""
    if os.environ.get("KMEANS_DATA_DIR"):
        return os.environ["KMEANS_DATA_DIR"]
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         "..", "..", "..", "shared", "data"))


def read_seed_file(path):
    """(ids, lat, lon, dvs n x 19 float32) of the TSV: id, lat, lon, {v1,...,v19}."""
    ids, lat, lon, vals = [], [], [], []
    with open(path) as f:
        for line in f:
            a, b, c, v = line.rstrip("\n").split("\t")
            ids.append(int(a))
            lat.append(float(b))
            lon.append(float(c))
            vals.append(v.strip("{}").split(","))
    # float32 straight from the decimal strings, as float4in reads them
    dvs = np.array(vals, dtype=np.float32)
    return np.array(ids, dtype=np.int64), np.array(lat), np.array(lon), dvs


def seed_table(db, name, column, dims, reload=False):
    """The seismic profiles, loaded by COPY of the file itself (text format, as the file is)
    into (id, lat, lon, dvs real[]), reused while the file's SHA-1 matches.  The whole `column`
    is read back and compared bit for bit with the first `dims` depths, the array the peers
    get.  (X, table, load seconds)."""
    path = os.path.join(shared_data_dir(), SEED_FILE)
    if not os.path.exists(path):
        raise DataMissing("%s not found (the seed profiles live outside the repository, in "
                          "../shared/data)" % path)
    with open(path, "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()
    ids, _, _, dvs = read_seed_file(path)
    n, depths = dvs.shape
    table = "kmbench_seed_n%d_d%d" % (n, depths)
    tag = "kmeans bench data %s sha1 %s" % (SEED_FILE, digest)

    def load():
        with open(path, "rb") as f:
            return db.copy_in(table, "id bigint NOT NULL, lat double precision NOT NULL, "
                                     "lon double precision NOT NULL, dvs real[] NOT NULL",
                              "COPY %s (id, lat, lon, dvs) FROM STDIN" % table, f, tag)

    load_s = _reuse_or_load(db, name, table, n, tag, reload, path, load)
    X = np.ascontiguousarray(dvs[:, :dims])
    got = db.execute("SELECT id, %s FROM %s ORDER BY id" % (column, table))
    order = np.argsort(ids)
    if len(got) != n or not np.array_equal(np.array([r[0] for r in got]), ids[order]) \
            or not np.array_equal(np.array([r[1] for r in got], dtype=np.float32), X[order]):
        raise RuntimeError("table %s does not hold the file's values" % table)
    return X, table, load_s
