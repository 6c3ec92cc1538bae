"""converge: whole fits to convergence from the same starting centers, with and without the
engine's pruning bounds (kmeans.prune, kernels/km_bounds.c), beside the peers.

Two cases:

* batch: 10^6 x 4 uniform [0,1) float32 (seed 0, as the batch workload), k = 200, tol 1e-4,
  max_iter 300, the k starting centers the rows data.initial_rows picks.  Engines: ours with
  and without pruning, scikit-learn's lloyd and elkan (float32, the same init, tol and
  max_iter, so the same stopping rule: centers moving less than tol times the mean variance,
  or no label changing), and FAISS run for as many iterations as ours took (it has no
  convergence test).
* postgis: 10^6 uniform 2-D points (seed 1), k = 200, PostGIS's stopping rule: until no label
  changes (tol => 0).  Ours with and without pruning from the same starting rows, ours again
  with its own seeding (greedy k-means++, seed 0, timed with the fit), and
  ST_ClusterKMeans(geom, 200) OVER () with its own seeding; the inertia of every engine is
  the sum of squared distances to the final centroids (for PostGIS computed in the same
  statement, per cluster n (var_pop(x) + var_pop(y))).

Ours is timed untraced; a second run with kmeans.trace on gives, per iteration, the rows the
pass compared with every center, so the table shows the share of distance computations the
bounds skipped.  Targets (issue 16): batch whole fit at least 40x faster than the faster
scikit-learn algorithm and 3x faster than ours unpruned; postgis at least 30x faster than
PostGIS at equal or lower inertia.  --quick runs only the batch case, once."""

import collections
import re
import time

import numpy as np

from ..data import array_table, gen_uniform, initial_rows, real_array_literal
from ..report import fmt_table, notes_block
from ..util import loadavg, log, median
from . import Workload, register

FIT_SQL = ("SELECT sum(size), sum(inertia) FROM kmeans_fit(source => %s, column_name => 'v', "
           "k => %s, max_iter => %s, tol => %s, init_centers => %s::real[], device => 'cpu')")
# ours with its own seeding (greedy k-means++, seed 0), timed with it: beside PostGIS, which
# seeds itself
OWN_SQL = ("SELECT sum(size), sum(inertia) FROM kmeans_fit(source => %s, column_name => 'v', "
           "k => %s, max_iter => %s, tol => %s, device => 'cpu', seed => 0)")
TRACE = re.compile(r"iteration (\d+):.* (\d+) of (\d+) rows compared with every center")
CASES = (
    {"name": "batch", "n": 1_000_000, "d": 4, "seed": 0, "k": 200, "tol": 1e-4, "max_iter": 300,
     "peers": ("sklearn-lloyd", "sklearn-elkan", "faiss")},
    {"name": "postgis", "n": 1_000_000, "d": 2, "seed": 1, "k": 200, "tol": 0.0, "max_iter": 10_000,
     "peers": ("ours-own-seeding", "postgis")},
)


def Notices():
    """psycopg2 keeps only the last 50 notices in a plain list: a deque keeps them all."""
    return collections.deque()


def ours_fit(db, table, case, literal, prune, trace=False):
    """(seconds, iterations, inertia, per-iteration (rows scanned, rows) or None); literal None:
    the engine's own seeding."""
    db.set("kmeans.prune", "on" if prune else "off")
    db.set("kmeans.trace", "on" if trace else "off")
    if trace:
        db.conn.notices = Notices()
    try:
        if literal is None:
            rows, t, _ = db.timed(OWN_SQL, (table, case["k"], case["max_iter"], case["tol"]))
        else:
            rows, t, _ = db.timed(FIT_SQL, (table, case["k"], case["max_iter"], case["tol"], literal))
    finally:
        db.set("kmeans.trace", "off")
        db.set("kmeans.prune", "on")
    size, inertia = rows[0]
    if int(size) != case["n"]:
        raise RuntimeError("converge: kmeans_fit sized %s rows, expected %d" % (size, case["n"]))
    iters = db.scalar("SELECT count(*) FROM kmeans_last_fit() WHERE phase = 'iterate'")
    scans = None
    if trace:
        scans = [(int(m.group(2)), int(m.group(3))) for m in map(TRACE.search, db.conn.notices) if m]
        db.conn.notices = Notices()
    return t, int(iters), float(inertia), scans


def sklearn_fit(KMeans, X, C, case, algorithm):
    km = KMeans(n_clusters=case["k"], init=C, n_init=1, max_iter=case["max_iter"], tol=case["tol"],
                algorithm=algorithm, random_state=0)
    t0 = time.perf_counter()
    km.fit(X)
    return time.perf_counter() - t0, int(km.n_iter_), float(km.inertia_)


def faiss_fit(faiss, X, C, iters):
    km = faiss.Kmeans(X.shape[1], len(C), niter=iters, seed=1234, min_points_per_centroid=1,
                      max_points_per_centroid=10 ** 9, verbose=False)
    t0 = time.perf_counter()
    km.train(X, init_centroids=C)
    t = time.perf_counter() - t0
    D, _ = km.index.search(X, 1)
    return t, iters, float(D.astype(np.float64).sum())


def postgis_table(db, table):
    """<table>_geom (geom geometry(Point)) from the (id, v) table, made once per base table."""
    gtable = table + "_geom"
    tag = "from %s (%s)" % (table, db.scalar("SELECT obj_description(%s::regclass, 'pg_class')", (table,)))
    n = db.scalar("SELECT count(*) FROM %s" % table)
    if not db.table_matches(gtable, n, tag):
        log("converge: making %s" % gtable)
        db.execute("DROP TABLE IF EXISTS %s" % gtable)
        db.execute("CREATE TABLE %s AS SELECT id, ST_MakePoint(v[1], v[2])::geometry(Point) AS geom "
                   "FROM %s ORDER BY id" % (gtable, table))
        db.execute("COMMENT ON TABLE %s IS %%s" % gtable, (tag,))
        db.execute("VACUUM ANALYZE %s" % gtable)
    return gtable


def postgis_fit(db, gtable, k):
    sql = ("SELECT sum(n * (vx + vy)) FROM (SELECT cid, count(*) AS n, var_pop(ST_X(geom)) AS vx, "
           "var_pop(ST_Y(geom)) AS vy FROM (SELECT geom, ST_ClusterKMeans(geom, %d) OVER () AS cid "
           "FROM %s) c GROUP BY cid) s" % (k, gtable))
    rows, t, _ = db.timed(sql)
    return t, None, float(rows[0][0])


def run_converge(bench, w):
    args, db = bench.args, bench.db
    res = {"workload": w.name, "describe": w.describe, "cases": [], "loadavg_start": loadavg()}
    reps = 1 if args.quick else (args.repeats or w.repeats)
    for case in CASES[:1] if args.quick else CASES:
        X = gen_uniform(case["n"], case["d"], case["seed"])
        table, _ = array_table(db, "converge_" + case["name"], X, args.reload)
        C = X[initial_rows(case["n"], case["k"])]
        literal = real_array_literal(C)
        E = {}
        for key, prune in (("ours", True), ("ours-unpruned", False)):
            runs = [ours_fit(db, table, case, literal, prune) for _ in range(reps)]
            E[key] = {"s": median([r[0] for r in runs]), "times": [r[0] for r in runs],
                      "n_iter": runs[0][1], "inertia": runs[0][2],
                      "repeatable": len({(r[1], r[2]) for r in runs}) == 1}
            log("converge %s: %s %.2f s, %d iterations" % (case["name"], key, E[key]["s"], runs[0][1]))
        _, it, inertia, scans = ours_fit(db, table, case, literal, True, trace=True)
        E["ours"]["scans"] = scans
        E["ours"]["same_as_unpruned"] = (E["ours"]["n_iter"], E["ours"]["inertia"]) == \
            (E["ours-unpruned"]["n_iter"], E["ours-unpruned"]["inertia"]) == (it, inertia)
        sk = bench.engines["sklearn"]
        fa = bench.engines["faiss"]
        for peer in case["peers"]:
            if peer.startswith("sklearn"):
                if sk.error:
                    E[peer] = {"skipped": sk.error.split(" (")[0]}
                    continue
                algo = peer.split("-")[1]
                runs = [sklearn_fit(sk.KMeans, X, C, case, algo) for _ in range(reps)]
            elif peer == "ours-own-seeding":
                runs = [ours_fit(db, table, case, None, True)[:3] for _ in range(reps)]
            elif peer == "faiss":
                if fa.error:
                    E[peer] = {"skipped": fa.error.split(" (")[0]}
                    continue
                runs = [faiss_fit(fa.faiss, X, C, E["ours"]["n_iter"]) for _ in range(reps)]
            else:
                try:
                    db.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                except Exception as e:
                    E[peer] = {"skipped": "PostGIS not installed (%s)" % str(e).strip().splitlines()[0]}
                    continue
                gtable = postgis_table(db, table)
                runs = [postgis_fit(db, gtable, case["k"])]     # once: it is the slow one
            E[peer] = {"s": median([r[0] for r in runs]), "times": [r[0] for r in runs],
                       "n_iter": runs[0][1], "inertia": runs[0][2]}
            log("converge %s: %s %.2f s" % (case["name"], peer, E[peer]["s"]))
        res["cases"].append({"case": case, "engines": E, "repeats": reps})
    res["loadavg_end"] = loadavg()
    return res


LABELS = {"ours": "ours, pruned (kmeans.prune on)", "ours-unpruned": "ours, unpruned (kmeans.prune off)",
          "sklearn-lloyd": "scikit-learn lloyd", "sklearn-elkan": "scikit-learn elkan",
          "faiss": "FAISS (as many iterations as ours)", "postgis": "PostGIS ST_ClusterKMeans",
          "ours-own-seeding": "ours, pruned, own k-means++ seeding"}


def skipped_share(scans):
    """{iteration: share of rows the bounds settled} for a few iterations, and over all."""
    shares = [1.0 - s / n for s, n in scans]
    picks = {i + 1: shares[i] for i in sorted({0, 1, 2, 4, 9, 19, 49, 99, len(shares) - 1})
             if i < len(shares)}
    return picks, 1.0 - sum(s for s, _ in scans) / max(1, sum(n for _, n in scans))


def report_converge(res):
    out = ["converge: %s" % res["describe"]]
    for c in res["cases"]:
        case, E = c["case"], c["engines"]
        ours = E["ours"]
        rows = []
        for key in ("ours", "ours-unpruned") + case["peers"]:
            e = E[key]
            if "s" not in e:
                rows.append([LABELS[key], e.get("skipped", "-"), "-", "-", "-", "-"])
                continue
            rows.append([LABELS[key], "%.2f" % e["s"], "%.1fx" % (e["s"] / ours["s"]),
                         "-" if e["n_iter"] is None else str(e["n_iter"]), "%.8g" % e["inertia"],
                         "%+.3f %%" % (100 * (e["inertia"] / ours["inertia"] - 1))])
        out.append("")
        out.append("%s: n = %d x %d, k = %d, tol %g, max_iter %d; median of %d run(s) (PostGIS once)"
                   % (case["name"], case["n"], case["d"], case["k"], case["tol"], case["max_iter"],
                      c["repeats"]))
        out.append(fmt_table(["engine", "whole fit s", "engine s / ours", "iterations",
                              "final inertia", "vs ours"], rows))
        notes = []
        picks, total = skipped_share(ours["scans"] or [])
        notes.append("distance computations the bounds skipped (rows settled without comparing "
                     "them with every center), by iteration: %s; over the whole fit %.1f %%"
                     % (", ".join("%d: %.1f %%" % (i, 100 * v) for i, v in picks.items()), 100 * total))
        notes.append("pruned and unpruned: same iterations and inertia: %s; each repeatable: %s"
                     % (ours["same_as_unpruned"], ours["repeatable"] and E["ours-unpruned"]["repeatable"]))
        unp = E["ours-unpruned"]["s"] / ours["s"]
        if case["name"] == "batch":
            sk = [E[p]["s"] for p in ("sklearn-lloyd", "sklearn-elkan") if "s" in E.get(p, {})]
            if sk:
                notes.append("target (>= 40x faster than the faster scikit-learn algorithm, >= 3x "
                             "faster than ours unpruned): %s (%.1fx and %.1fx)"
                             % ("met" if min(sk) >= 40 * ours["s"] and unp >= 3 else "NOT met",
                                min(sk) / ours["s"], unp))
        else:
            pg = E.get("postgis", {})
            if "s" in pg:
                for key in ("ours", "ours-own-seeding"):
                    e = E.get(key, {})
                    if "s" not in e:
                        continue
                    notes.append("target (>= 30x faster than PostGIS at equal or lower inertia), %s: "
                                 "%s (%.1fx, inertia %+.2f %% against PostGIS)"
                                 % (LABELS[key], "met" if pg["s"] >= 30 * e["s"] and
                                    e["inertia"] <= pg["inertia"] else "NOT met", pg["s"] / e["s"],
                                    100 * (e["inertia"] / pg["inertia"] - 1)))
                notes.append("pruned %.1fx faster than unpruned from the same rows" % unp)
        out.append(notes_block(notes))
    out.append(notes_block(["load average %s at the start, %s at the end"
                            % (res["loadavg_start"], res["loadavg_end"])]))
    return "\n".join(out)


register(Workload(
    name="converge",
    describe="whole fits to convergence from the same starting centers, pruned and unpruned, "
             "beside scikit-learn (lloyd, elkan), FAISS and PostGIS",
    k=200, make_data=None, repeats=3, run=run_converge, report=report_converge))
