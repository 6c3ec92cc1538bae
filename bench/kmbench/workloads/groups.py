"""groups: one k-means per group, 1,000 groups of 2,000 points in the plane (d = 2), k = 5.

Each group is 5 gaussian blobs of its own (centers uniform in [0, 10)^2, spreads uniform in
[0.3, 1), each point's blob uniform; numpy, seed [7, g] per group).  The same points in two
tables: (g integer, v real[]) for ours and (g integer, geom geometry(Point)) for PostGIS, each
with an index on g.  Every engine runs with its own defaults (ours and scikit-learn k-means++
with seed 0, n_init 1, tol 1e-4; PostGIS its own initialisation), once per group:

* ours, kmeans_agg: SELECT g, (m).inertia FROM (SELECT g, kmeans_agg(v, 5) AS m FROM t GROUP BY g);
* PostGIS: ST_ClusterKMeans(geom, 5) OVER (PARTITION BY g), timed with only the labels
  consumed (SELECT count(*), sum(cid)), and again with its inertia computed in the same
  statement: per group and cluster n * (var_pop(x) + var_pop(y)), the sum of squared distances
  of the cluster's points to their centroid;
* ours, a loop of kmeans_fit calls: generate_series(0, 999) g, LATERAL kmeans_fit(format('SELECT v
  FROM t WHERE g = %s', g), 'v', 5);
* scikit-learn: KMeans(5, n_init=1, random_state=0) in a Python loop over the groups, reading
  the table included (one COPY ... (FORMAT binary) of (g, v)).

Beside them: the floor, SELECT g, array_agg(v) ... GROUP BY g (reading and grouping, no fit), and
ours and scikit-learn again with one thread (kmeans.threads = 1; threadpoolctl), which fits this
small may prefer (unless --threads sets the threads).

The target: kmeans_agg at least 10x faster than PostGIS (its labels-only time) at equal or lower
total inertia (within 0.1 %).  PostGIS is skipped, with a message, where CREATE EXTENSION
postgis fails.  --quick does not change this workload."""

import contextlib
import io
import time

import numpy as np

from ..data import array_table
from ..report import fmt_table, notes_block
from ..util import loadavg, log, median
from . import Workload, register

GROUPS, POINTS, K, BLOBS = 1000, 2000, 5, 5
INERTIA_TOL = 1e-3      # "equal" total inertia: within 0.1 %


def gen_groups(groups=GROUPS, points=POINTS, blobs=BLOBS, seed=7):
    """groups x points rows (group g is rows g*points ...), float32, d = 2."""
    X = np.empty((groups * points, 2), dtype=np.float32)
    for g in range(groups):
        rng = np.random.default_rng([seed, g])
        centers = rng.uniform(0, 10, (blobs, 2))
        spread = rng.uniform(0.3, 1.0, blobs)
        lab = rng.integers(0, blobs, points)
        X[g * points:(g + 1) * points] = centers[lab] + rng.standard_normal((points, 2)) * spread[lab, None]
    return X


def derived_table(db, base, suffix, columns, select, reload):
    """<base>_<suffix> made by CREATE TABLE AS from the base table (id, v), with an index on g;
    reused while its comment names the base table's own comment (the data's SHA-1)."""
    table = "%s_%s" % (base, suffix)
    tag = "from %s (%s)" % (base, db.scalar("SELECT obj_description(%s::regclass, 'pg_class')", (base,)))
    n = db.scalar("SELECT count(*) FROM %s" % base)
    if not reload and db.table_matches(table, n, tag):
        log("groups: reusing table %s" % table)
        return table
    log("groups: making %s (%s) from %s" % (table, columns, base))
    db.execute("DROP TABLE IF EXISTS %s" % table)
    db.execute("CREATE TABLE %s AS SELECT %s FROM %s ORDER BY id" % (table, select, base))
    db.execute("CREATE INDEX ON %s (g)" % table)
    db.execute("COMMENT ON TABLE %s IS %%s" % table, (tag,))
    db.execute("VACUUM ANALYZE %s" % table)
    return table


def postgis_available(db):
    """None, or why PostGIS cannot run."""
    try:
        db.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        return None
    except Exception as e:      # psycopg2.Error: not installed, or a broken install
        return "PostGIS not installed (CREATE EXTENSION postgis: %s)" % str(e).strip().splitlines()[0]


ROW = np.dtype([("nf", ">i2"), ("glen", ">i4"), ("g", ">i4"), ("vlen", ">i4"), ("ndim", ">i4"),
                ("flags", ">i4"), ("oid", ">i4"), ("dim", ">i4"), ("lb", ">i4"),
                ("el", [("len", ">i4"), ("x", ">f4")], (2,))])


def read_groups(db, table):
    """(g, X) of every row of `table` (g integer, v real[2]) by one binary COPY: the exact
    floats the server holds."""
    buf = io.BytesIO()
    db.conn.cursor().copy_expert("COPY %s (g, v) TO STDOUT (FORMAT binary)" % table, buf)
    raw = buf.getbuffer()
    header = 19                 # signature, flags, header extension length (0)
    rows = (len(raw) - header - 2) // ROW.itemsize
    rec = np.frombuffer(raw, dtype=ROW, count=rows, offset=header)
    if rows * ROW.itemsize + header + 2 != len(raw) or np.any(rec["dim"] != 2) or np.any(rec["nf"] != 2):
        raise RuntimeError("groups: COPY of %s is not (g, real[2]) rows" % table)
    return rec["g"].astype(np.int64), rec["el"]["x"].astype(np.float32)


def sklearn_loop(KMeans, db, table):
    """(seconds, reading seconds, {g: inertia}, total iterations): read the table, then one
    KMeans per group."""
    t0 = time.perf_counter()
    g, X = read_groups(db, table)
    order = np.argsort(g, kind="stable")
    g, X = g[order], X[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], len(g)]
    t_read = time.perf_counter() - t0
    out, iters = {}, 0
    for s, e in zip(starts, ends):
        km = KMeans(n_clusters=K, n_init=1, random_state=0).fit(X[s:e])
        out[int(g[s])] = float(km.inertia_)
        iters += int(km.n_iter_)
    return time.perf_counter() - t0, t_read, out, iters


def run_groups(bench, w):
    args, db = bench.args, bench.db
    res = {"workload": w.name, "describe": w.describe, "groups": GROUPS, "points": POINTS, "k": K}
    res["loadavg_start"] = loadavg()
    X = gen_groups()
    base, load_s = array_table(db, "groups", X, args.reload)
    table = derived_table(db, base, "byg", "g, v", "(id / %d)::integer AS g, v" % POINTS, args.reload)
    res.update({"n": len(X), "table": table, "load_s": load_s})
    why = postgis_available(db)
    gtable = None
    if why is None:
        gtable = derived_table(db, base, "geom", "g, geom", "(id / %d)::integer AS g, "
                               "ST_MakePoint(v[1], v[2])::geometry(Point) AS geom" % POINTS, args.reload)
    else:
        log("groups: PostGIS skipped: %s" % why)
    sk = bench.engines["sklearn"]
    sk_why = sk.error or (None if args.peers is None or "sklearn" in args.peers else "not asked for")

    agg_sql = "SELECT g, (m).inertia, (m).n_iter FROM (SELECT g, kmeans_agg(v, %d) AS m FROM %s " \
              "GROUP BY g) s ORDER BY g" % (K, table)
    loop_sql = "SELECT g, sum(f.inertia) FROM generate_series(0, %d) g, LATERAL kmeans_fit(" \
               "format('SELECT v FROM %s WHERE g = %%s', g), 'v', %d) f GROUP BY g ORDER BY g" \
               % (GROUPS - 1, table, K)
    pg_labels_sql = pg_sql = None
    if gtable:
        clusters = "SELECT g, geom, ST_ClusterKMeans(geom, %d) OVER (PARTITION BY g) AS cid FROM %s" \
                   % (K, gtable)
        pg_labels_sql = "SELECT count(*), sum(cid) FROM (%s) c" % clusters
        pg_sql = "SELECT g, sum(n * (vx + vy)) FROM (SELECT g, cid, count(*) AS n, " \
                 "var_pop(ST_X(geom)) AS vx, var_pop(ST_Y(geom)) AS vy FROM (%s) c GROUP BY g, cid) s " \
                 "GROUP BY g ORDER BY g" % clusters

    def per_group(rows):
        return {int(r[0]): float(r[1]) for r in rows}

    E = {"floor": {"times": []}, "agg": {"times": []}, "agg1": {"times": []},
         "postgis": {"times": [], "labels_times": []}, "loop": {"times": []}, "loop1": {"times": []},
         "sklearn": {"times": [], "read_times": []}, "sklearn1": {"times": [], "read_times": []}}
    if why:
        E["postgis"]["skipped"] = why
    if sk_why:
        E["sklearn"]["skipped"] = E["sklearn1"]["skipped"] = sk_why.split(" (")[0]
    limits = None
    if not sk_why:
        try:
            from threadpoolctl import threadpool_limits as limits
        except ImportError:
            E["sklearn1"]["skipped"] = "threadpoolctl not installed"
        if args.threads:
            limits, E["sklearn1"]["skipped"] = None, "--threads %d" % args.threads
    # ours once more with one thread each, unless --threads already sets kmeans.threads
    threads1 = not args.threads
    if not threads1:
        E["agg1"]["skipped"] = E["loop1"]["skipped"] = "--threads %d" % args.threads
    threads = db.scalar("SELECT current_setting('kmeans.threads')")
    # the plan kmeans_agg gets, as run (whether its HashAggregate spills to disk at work_mem)
    res["plans"] = {"agg": [r[0] for r in db.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, "
                                                     "SUMMARY OFF) " + agg_sql)]}
    res["work_mem"] = db.scalar("SHOW work_mem")
    if pg_sql:
        res["plans"]["postgis"] = [r[0] for r in db.execute("EXPLAIN " + pg_sql)]   # with JIT
    reps = args.repeats or w.repeats

    def ours(key, sql):
        rows, t, _ = db.timed(sql)
        E[key]["times"].append(t)
        E[key]["inertia"] = per_group(rows)
        if key.startswith("agg"):
            E[key]["n_iter"] = sum(int(x[2]) for x in rows)
            E[key]["rows"] = len(rows)

    floor_sql = "SELECT count(*) FROM (SELECT g, array_agg(v) FROM %s GROUP BY g) s" % table
    for r in range(reps + 1):           # run 0 warms every engine up, untimed
        E["floor"]["times"].append(db.timed(floor_sql)[1])
        ours("agg", agg_sql)
        if pg_sql:
            E["postgis"]["labels_times"].append(db.timed(pg_labels_sql)[1])
            rows, t, _ = db.timed(pg_sql)
            E["postgis"]["times"].append(t)
            E["postgis"]["inertia"] = per_group(rows)
        ours("loop", loop_sql)
        if threads1:
            db.set("kmeans.threads", 1)
            try:
                ours("agg1", agg_sql)
                ours("loop1", loop_sql)
            finally:
                db.set("kmeans.threads", threads)
        for key, one in (("sklearn", False), ("sklearn1", True)):
            if sk_why or (one and limits is None):
                continue
            # sklearn1: its OpenMP and BLAS pools limited to one thread
            with limits(limits=1) if one else contextlib.nullcontext():
                t, t_read, inertia, iters = sklearn_loop(sk.KMeans, db, table)
            E[key].update({"inertia": inertia, "n_iter": iters})
            E[key]["times"].append(t)
            E[key]["read_times"].append(t_read)
        log("groups: %s: kmeans_agg %.2f s, PostGIS %s, kmeans_fit loop %.2f s, %ssklearn %s%s"
            % ("warm-up" if r == 0 else "run %d of %d" % (r, reps), E["agg"]["times"][-1],
               "%.2f s (labels only %.2f s)" % (E["postgis"]["times"][-1], E["postgis"]["labels_times"][-1])
               if pg_sql else "skipped", E["loop"]["times"][-1],
               "with kmeans.threads 1 %.2f s and %.2f s, " % (E["agg1"]["times"][-1], E["loop1"]["times"][-1])
               if threads1 else "",
               "%.2f s" % E["sklearn"]["times"][-1] if not sk_why else "skipped",
               " (one thread %.2f s)" % E["sklearn1"]["times"][-1] if E["sklearn1"]["times"] else ""))
    for e in E.values():
        for key in ("times", "labels_times", "read_times"):
            if e.get(key):
                e[key] = e[key][1:]
                e[key.replace("times", "s")] = median(e[key])
        if "inertia" in e:
            e["total_inertia"] = sum(e["inertia"].values())
            e["groups_seen"] = len(e["inertia"])
    if not sk_why:
        E["sklearn"]["version"] = sk.version()
    res["loadavg_end"] = loadavg()
    res.update({"repeats": reps, "engines": E, "threads": threads})
    return res


def plan_nodes(lines):
    """A plan's nodes, top down, on one line, and whether it would be JIT-compiled."""
    nodes = [lines[0].strip()] + [x.split("->", 1)[1].strip() for x in lines[1:] if "->" in x]
    nodes = [x.split(" (actual")[0].split("  (cost")[0] for x in nodes]
    return " <- ".join(nodes) + (" (JIT)" if any(x.strip().startswith("JIT") for x in lines) else "")


def report_groups(res):
    E = res["engines"]
    pg = E["postgis"]
    pg_s = pg.get("labels_s")
    pg_in = pg.get("inertia")
    rows = []
    for key, label in (("floor", "floor: array_agg(v) GROUP BY g"),
                       ("agg", "ours: kmeans_agg(v, 5) GROUP BY g"),
                       ("postgis", "PostGIS: ST_ClusterKMeans OVER (PARTITION BY g)"),
                       ("loop", "ours: LATERAL kmeans_fit per group"),
                       ("agg1", "  kmeans_agg, kmeans.threads = 1"),
                       ("loop1", "  kmeans_fit loop, kmeans.threads = 1"),
                       ("sklearn", "scikit-learn KMeans, Python loop"),
                       ("sklearn1", "  scikit-learn, one thread (threadpoolctl)")):
        e = E[key]
        if "s" not in e:
            rows.append([label, e.get("skipped", "-")] + ["-"] * 6)
            continue
        if key == "postgis":
            time_cell = "%.3f (labels only %.3f)" % (e["s"], e["labels_s"])
            min_cell = "%.3f (%.3f)" % (min(e["times"]), min(e["labels_times"]))
        elif key.startswith("sklearn"):
            time_cell = "%.3f (reading %.3f)" % (e["s"], e["read_s"])
            min_cell = "%.3f (%.3f)" % (min(e["times"]), min(e["read_times"]))
        else:
            time_cell, min_cell = "%.3f" % e["s"], "%.3f" % min(e["times"])
        t = e["labels_s"] if key == "postgis" else e["s"]
        worse = better = "-"
        if "inertia" not in e:
            rows.append([label, time_cell, min_cell, "%.2f" % (t * 1e3 / res["groups"]),
                         "%.2fx" % (pg_s / t) if pg_s else "-", "-", "-", "-"])
            continue
        if pg_in and key != "postgis":
            worse = sum(1 for g, v in e["inertia"].items() if v > 1.01 * pg_in[g])
            better = sum(1 for g, v in e["inertia"].items() if v < 0.99 * pg_in[g])
        rows.append([label, time_cell, min_cell,
                     "%.2f" % (t * 1e3 / res["groups"]),
                     "%.2fx" % (pg_s / t) if pg_s else "-",
                     "%.6g" % e["total_inertia"],
                     "%+.2f %%" % (100 * (e["total_inertia"] / pg["total_inertia"] - 1)) if pg_in else "-",
                     "-" if worse == "-" else "%d / %d" % (worse, better)])
    table = fmt_table(["engine", "median s", "min s", "ms/group", "PostGIS s / engine s",
                       "total inertia", "vs PostGIS", "groups worse / better by 1 %"], rows)
    notes = []
    agg = E["agg"]
    if pg_s:
        ok_speed = pg_s >= 10 * agg["s"]
        ok_inertia = agg["total_inertia"] <= (1 + INERTIA_TOL) * pg["total_inertia"]
        notes.append("target (kmeans_agg >= 10x faster than PostGIS's labels-only time, at equal "
                     "(within %.1f %%) or lower total inertia): %s (%.2fx faster, total inertia "
                     "%+.2f %%)" % (100 * INERTIA_TOL, "met" if ok_speed and ok_inertia else "NOT met",
                                    pg_s / agg["s"], 100 * (agg["total_inertia"] / pg["total_inertia"] - 1)))
    else:
        notes.append("target not checked: %s" % pg.get("skipped", "PostGIS did not run"))
    same = sum(1 for g, v in agg["inertia"].items()
               if abs(v - E["loop"]["inertia"].get(g, np.nan)) <= 1e-9 * abs(v))
    notes.append("kmeans_agg returned %d groups (%d iterations in all); the kmeans_fit loop gave "
                 "the same inertia (to 1e-9) in %d of %d groups%s"
                 % (agg["rows"], agg["n_iter"], same, len(agg["inertia"]),
                    "" if "skipped" in E["agg1"] else "; the rows with kmeans.threads = 1 (the "
                    "server's default: %s) show what starting threads costs fits this small"
                    % ("all cores" if res["threads"] == "0" else res["threads"])))
    if "n_iter" in E["sklearn"]:
        notes.append("scikit-learn %s: %d iterations in all; its time includes reading the table "
                     "by COPY (FORMAT binary) into numpy" % (E["sklearn"]["version"], E["sklearn"]["n_iter"]))
    spill = [x.strip() for x in res["plans"]["agg"] if "Batches:" in x]
    notes.append("plans: kmeans_agg: %s%s%s" % (plan_nodes(res["plans"]["agg"]),
                 " (EXPLAIN ANALYZE at work_mem %s: %s)" % (res["work_mem"], spill[0]) if spill else "",
                 "; PostGIS with inertia: %s" % plan_nodes(res["plans"]["postgis"])
                 if "postgis" in res["plans"] else ""))
    notes.append("medians of %d runs after one warm-up run of each engine; each engine with its "
                 "own seeding (ours and scikit-learn greedy k-means++, seed 0); PostGIS's "
                 "inertia is computed in SQL in the timed statement (its 'median s'); the ratio "
                 "uses its labels-only time (count(*), sum(cid) of the window), the faster; "
                 "ms/group = that time / %d groups; groups worse / better = groups whose inertia "
                 "is more than 1 %% above / below PostGIS's; load average %s at the start, %s at "
                 "the end" % (res["repeats"], res["groups"], res["loadavg_start"], res["loadavg_end"]))
    if res.get("load_s"):
        notes.append("table loaded by COPY BINARY in %.1f s" % res["load_s"])
    return "== groups: %s\n  %d groups x %d points, d = 2, k = %d per group\n%s\n%s" % (
        res["describe"], res["groups"], res["points"], res["k"], table, notes_block(notes))


register(Workload(
    name="groups",
    describe="one k-means per group (1,000 groups of 2,000 points, 5 blobs each): kmeans_agg "
             "GROUP BY g beside PostGIS ST_ClusterKMeans, a kmeans_fit loop and scikit-learn",
    k=K, make_data=None, repeats=3, run=run_groups, report=report_groups, engines=("ours",),
    gpu_engines=()))
