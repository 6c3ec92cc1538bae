"""pgvector: reading embeddings from pgvector's vector and halfvec columns against real[].

The embed workload's rows (n x 128, the same generator and seed) in three tables: real[],
vector and halfvec.  Ours reads each column in its own form (src/pgvector.c); the cast that
users wrote before (v::real[]) is timed too.  Each case is one kmeans_fit with max_iter 1 and
k = 8 from the same rows, whose first pass over the source (the 'read' step of kmeans_last_fit:
validating, converting and keeping every row) is the number compared; with the rows not kept
(kmeans.memory_limit 64 kB) every pass reads the source again, so the whole fit of 5 iterations
is timed there.  A plain scan (SELECT count(v)) of each table is the floor.  The target: the
vector column read within 1.1x of real[].  Skips where pgvector is not installed."""

from ..data import array_table, gen_blobs, initial_rows, real_array_literal
from ..report import fmt_table
from ..util import log, median
from . import Workload, register


def pg_n(args):
    return 200_000 if args.quick else 1_000_000


def derived_table(db, base, kind, n):
    """kmbench_<kind>_n<n>_d128 (id, v <kind>) from the real[] table, reused when it matches."""
    table = "kmbench_%s_n%d_d128" % (kind, n)
    tag = "from %s" % base
    if not db.table_matches(table, n, tag):
        log("pgvector: making %s from %s" % (table, base))
        db.execute("DROP TABLE IF EXISTS %s" % table)
        db.execute("CREATE TABLE %s AS SELECT id, v::%s AS v FROM %s ORDER BY id" % (table, kind, base))
        db.execute("COMMENT ON TABLE %s IS %%s" % table, (tag,))
        db.execute("VACUUM ANALYZE %s" % table)
    return table


def read_step(db, table, column, init, k, max_iter):
    """(the fit's wall seconds, its 'read' step's seconds, the centers) of one kmeans_fit."""
    rows, wall, _ = db.timed("SELECT center FROM kmeans_fit(%%s, %%s, %d, max_iter => %d, "
                             "init_centers => %%s::real[]) ORDER BY cluster" % (k, max_iter),
                             (table, column, init))
    read = db.scalar("SELECT sum(seconds) FROM kmeans_last_fit() WHERE phase = 'read'")
    return wall, read, [r[0] for r in rows]


def run_pgvector(bench, w):
    args, db = bench.args, bench.db
    res = {"workload": w.name, "describe": w.describe}
    if not db.scalar("SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'vector')"):
        res["skipped"] = "pgvector is not installed on the server"
        log("pgvector: skipped: %s" % res["skipped"])
        return res
    db.execute("CREATE EXTENSION IF NOT EXISTS vector")
    X = gen_blobs(pg_n(args), 128, 1024, 1)
    n = len(X)
    base, load_s = array_table(db, "embed", X, args.reload)
    tables = {"real[]": base, "vector": derived_table(db, base, "vector", n),
              "halfvec": derived_table(db, base, "halfvec", n)}
    k = w.k
    init = real_array_literal(X[initial_rows(n, k)])
    cases = [("real[]", tables["real[]"], "v"), ("vector", tables["vector"], "v"),
             ("vector::real[] (the cast)", tables["vector"], "v::real[]"),
             ("halfvec", tables["halfvec"], "v"),
             ("halfvec::real[] (the cast)", tables["halfvec"], "v::real[]")]
    repeats = args.repeats or 3
    res.update({"n": n, "d": 128, "k": k, "repeats": repeats, "load_s": load_s, "cases": []})
    for label, table, column in cases:
        scans = db.seqscan(table, repeats)
        reads, centers = [], None
        for _ in range(repeats):
            _, read, centers = read_step(db, table, column, init, k, 1)
            reads.append(read)
        db.set("kmeans.memory_limit", "64kB")
        try:
            streamed = [read_step(db, table, column, init, k, 5)[0] for _ in range(repeats)]
        finally:
            db.execute("RESET kmeans.memory_limit")
        entry = {"label": label, "table": table, "column": column, "seqscan_s": median(scans),
                 "read_s": median(reads), "streamed_fit_s": median(streamed), "centers": centers}
        log("pgvector: %s: scan %.3f s, read %.3f s, streamed fit %.3f s"
            % (label, entry["seqscan_s"], entry["read_s"], entry["streamed_fit_s"]))
        res["cases"].append(entry)
    ref = res["cases"][0]["centers"]
    for e in res["cases"]:
        # vector holds the real[] values exactly; halfvec rounds them, so only vector must match
        e["same_centers_as_real"] = e["centers"] == ref
    return res


def report_pgvector(res):
    head = "pgvector: %s" % res["describe"].split("\n")[0]
    if "skipped" in res:
        return "%s\n  skipped: %s" % (head, res["skipped"])
    base = res["cases"][0]
    rows = []
    for e in res["cases"]:
        rows.append([e["label"], "%.3f" % e["seqscan_s"], "%.3f" % e["read_s"],
                     "%.2f" % (e["read_s"] * 1e6 / res["n"]),
                     "%.2fx" % (e["read_s"] / base["read_s"]),
                     "%.3f" % e["streamed_fit_s"],
                     "%.2fx" % (e["streamed_fit_s"] / base["streamed_fit_s"]),
                     "yes" if e["same_centers_as_real"] else "no"])
    table = fmt_table(["column read", "plain scan s", "first pass s", "us/row", "vs real[]",
                       "streamed fit s", "vs real[]", "centers = real[]'s"], rows)
    vec = res["cases"][1]
    verdict = "target (vector within 1.1x of real[]): %s (%.2fx)" % (
        "met" if vec["read_s"] <= 1.1 * base["read_s"] else "NOT met", vec["read_s"] / base["read_s"])
    return "%s\n  n = %d x 128, k = %d, medians of %d runs; first pass = kmeans_last_fit's read step " \
           "(max_iter 1); streamed fit = 5 iterations with kmeans.memory_limit 64kB, every pass " \
           "reading the source\n%s\n  %s" % (head, res["n"], res["k"], res["repeats"], table, verdict)


register(Workload(
    name="pgvector",
    describe="the embed rows (n x 128, 1,024 blobs, seed 1) read from real[], pgvector's vector "
             "and halfvec, and through the cast v::real[]",
    k=8, make_data=None, run=run_pgvector, report=report_pgvector, engines=("ours",)))
