"""dtw: time-series k-means under DTW on the UCR Trace series (../shared/data/trace, train and
test together: 200 series x 275 samples, 4 classes), ours (SQL, reading the table included)
beside tslearn's TimeSeriesKMeans(metric="dtw") in the same run:

  - a whole k = 4 fit from the same 4 starting series (max_iter 50, tol 1e-6 as tslearn's
    defaults), where both must end with the same labels;
  - a whole k = 4 fit with each engine's own k-means++ seeding (seed 0, random_state 0);
  - the elbow k = 2..10 with the DTW silhouette over every series: one kmeans_elbow call beside
    tslearn's loop of fits and silhouette_score(metric="dtw").

tslearn runs with n_jobs=-1 (every core, as ours), after a small fit that compiles its numba
code, so compilation is not timed.  The target: ours at least 50x faster.  Skips where the Trace
files or tslearn are absent."""

import os
import time

import numpy as np

from ..data import array_table, initial_rows, real_array_literal, shared_data_dir
from ..report import fmt_table
from ..util import log, median
from . import Workload, register

K = 4
ELBOW = (2, 10)
MAX_ITER = 50


def read_trace():
    rows, paths = [], []
    for part in ("train", "test"):
        path = os.path.join(shared_data_dir(), "trace", "trace_%s.tsv" % part)
        paths.append(path)
        if not os.path.exists(path):
            return None, path
        with open(path) as f:
            rows += [[float(v) for v in line.split("\t")[1].strip().strip("{}").split(",")]
                     for line in f]
    return np.array(rows, dtype=np.float32), " + ".join(paths)


def run_dtw(bench, w):
    args, db = bench.args, bench.db
    res = {"workload": w.name, "describe": w.describe}
    X, path = read_trace()
    if X is None:
        res["skipped"] = "%s not found" % path
        log("dtw: skipped: %s" % res["skipped"])
        return res
    try:
        import tslearn
        from tslearn.clustering import TimeSeriesKMeans, silhouette_score
    except ImportError:
        res["skipped"] = "tslearn not installed"
        log("dtw: skipped: tslearn not installed")
        return res
    table, load_s = array_table(db, "trace", X, args.reload)
    n = len(X)
    init = X[initial_rows(n, K)]
    lit = real_array_literal(init)
    repeats = args.repeats or 3
    res.update({"n": n, "len": X.shape[1], "k": K, "repeats": repeats, "load_s": load_s,
                "tslearn": tslearn.__version__, "rows": {}})

    def ours_fit(extra, params):
        runs = []
        for _ in range(repeats + 1):    # the first warms the caches
            rows, seconds, _ = db.timed(
                "SELECT sum(inertia), count(*) FROM kmeans_fit(%s, 'v', %s, metric => 'dtw', "
                "max_iter => %s" + extra + ")", (table, K, MAX_ITER) + params)
            runs.append((seconds, float(rows[0][0])))
        runs = runs[1:]
        labels = [r[0] for r in db.timed(
            "SELECT cluster FROM kmeans_labels(%s, 'v', %s, id => 'id', metric => 'dtw', "
            "max_iter => %s" + extra + ") ORDER BY id", (table, K, MAX_ITER) + params)[0]]
        n_iter = db.scalar("SELECT count(*) FROM kmeans_last_fit() WHERE phase = 'iterate'")
        return {"seconds": median([r[0] for r in runs]), "inertia": runs[0][1],
                "n_iter": n_iter, "labels": np.array(labels)}

    def tslearn_fit(**kw):
        t0 = time.perf_counter()
        m = TimeSeriesKMeans(n_clusters=K, metric="dtw", max_iter=MAX_ITER, n_jobs=-1, **kw).fit(X)
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "inertia": float(m.inertia_) * n, "n_iter": int(m.n_iter_),
                "labels": m.labels_}

    # numba compiles tslearn's DTW and DBA on first use: once, untimed
    TimeSeriesKMeans(n_clusters=2, metric="dtw", max_iter=2, random_state=0).fit(X[:8, :20])

    ours_same = ours_fit(", init_centers => %s::real[]", (lit,))
    peer_same = tslearn_fit(init=init[:, :, None].astype(np.float64))
    res["rows"]["same"] = {"ours": ours_same, "tslearn": peer_same,
                           "labels_equal": bool(np.array_equal(ours_same["labels"],
                                                               peer_same["labels"]))}
    ours_own = ours_fit(", seed => 0", ())
    peer_own = tslearn_fit(random_state=0)
    res["rows"]["own"] = {"ours": ours_own, "tslearn": peer_own}
    for what, r in res["rows"].items():
        log("dtw: k=4 %s: ours %.3f s (%d it, inertia %.4f), tslearn %.2f s (%d it, inertia %.4f)"
            % (what, r["ours"]["seconds"], r["ours"]["n_iter"], r["ours"]["inertia"],
               r["tslearn"]["seconds"], r["tslearn"]["n_iter"], r["tslearn"]["inertia"]))

    k0, k1 = ELBOW
    runs = []
    for _ in range(repeats):
        rows, seconds, _ = db.timed(
            "SELECT k, inertia, silhouette FROM kmeans_elbow(%s, 'v', %s, %s, metric => 'dtw', "
            "max_iter => %s, seed => 0, silhouette_sample => %s) ORDER BY k",
            (table, k0, k1, MAX_ITER, n))
        runs.append((seconds, rows))
    ours_elbow = {"seconds": median([r[0] for r in runs]),
                  "silhouette": {int(r[0]): float(r[2]) for r in runs[0][1]}}
    t0 = time.perf_counter()
    peer_sil = {}
    for k in range(k0, k1 + 1):
        m = TimeSeriesKMeans(n_clusters=k, metric="dtw", max_iter=MAX_ITER, n_jobs=-1,
                             random_state=0).fit(X)
        peer_sil[k] = float(silhouette_score(X, m.labels_, metric="dtw", n_jobs=-1))
    peer_elbow = {"seconds": time.perf_counter() - t0, "silhouette": peer_sil}
    res["elbow"] = {"ours": ours_elbow, "tslearn": peer_elbow}
    log("dtw: elbow k=%d..%d: ours %.3f s, tslearn %.1f s" % (k0, k1, ours_elbow["seconds"],
                                                              peer_elbow["seconds"]))
    return res


def report_dtw(res):
    head = "== dtw: %s" % res["describe"]
    if "skipped" in res:
        return "%s\n  skipped: %s" % (head, res["skipped"])
    rows, ratios = [], []
    for what, label in (("same", "k = 4 fit, same starting series"),
                        ("own", "k = 4 fit, own k-means++ seeding")):
        r = res["rows"][what]
        o, p = r["ours"], r["tslearn"]
        ratios.append(p["seconds"] / o["seconds"])
        rows.append([label, "%.3f" % o["seconds"], "%.2f" % p["seconds"], "%.1fx" % ratios[-1],
                     "%d / %d" % (o["n_iter"], p["n_iter"]),
                     "%.4f / %.4f" % (o["inertia"], p["inertia"]),
                     ("labels %s" % ("equal" if r["labels_equal"] else "DIFFER"))
                     if "labels_equal" in r else ""])
    e = res["elbow"]
    o, p = e["ours"], e["tslearn"]
    ratios.append(p["seconds"] / o["seconds"])
    best_o = max(o["silhouette"], key=o["silhouette"].get)
    best_p = max(p["silhouette"], key=p["silhouette"].get)
    rows.append(["elbow k = %d..%d + DTW silhouette" % ELBOW, "%.3f" % o["seconds"],
                 "%.2f" % p["seconds"], "%.1fx" % ratios[-1], "-", "-",
                 "best k by silhouette %d / %d" % (best_o, best_p)])
    return ("%s\n  n = %d series x %d samples, max_iter %d, tol 1e-6, tslearn %s with n_jobs=-1; "
            "ours medians of %d runs, tslearn one run; inertia = sum of DTW^2\n%s\n"
            "  target (ours >= 50x faster than tslearn): %s (smallest ratio %.1fx)") % (
        head, res["n"], res["len"], MAX_ITER, res["tslearn"], res["repeats"],
        fmt_table(["", "ours s", "tslearn s", "tslearn / ours", "iterations ours / tslearn",
                   "inertia ours / tslearn", "note"], rows),
        "met" if min(ratios) >= 50 else "NOT met", min(ratios))


register(Workload(
    name="dtw",
    describe="DTW k-means on the UCR Trace series (../shared/data/trace, train + test), k = 4 "
             "whole fits and the elbow k = 2..10, beside tslearn",
    k=K, make_data=None, run=run_dtw, report=report_dtw, engines=("ours",)))
