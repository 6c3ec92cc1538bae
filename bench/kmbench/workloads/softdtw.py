"""softdtw: time-series k-means under soft-DTW on the UCR Trace series (../shared/data/trace,
train and test together: 200 series x 275 samples, 4 classes), ours (SQL, reading the table
included) beside tslearn's TimeSeriesKMeans(metric="softdtw") in the same run: a k = 4 fit
from the same 4 starting series, gamma 1, a fixed number of iterations (tol 0 on both sides)
and barycenter_iter = max_iter_barycenter = 30, where both must end with the same labels.

tslearn runs with n_jobs=-1 (every core, as ours), after a small fit that compiles its numba
code, so compilation is not timed.  The inertia shown is the sum of the soft-DTW values to the
final centers (tslearn's inertia_ is the mean of their squares; it is recomputed here from its
centers).  Skips where the Trace files or tslearn are absent."""

import time

import numpy as np

from ..data import array_table, initial_rows, real_array_literal
from ..report import fmt_table
from ..util import log, median
from . import Workload, register
from .dtw import read_trace

K = 4
ITERATIONS = 5
BARYCENTER_ITER = 30
GAMMA = 1.0


def run_softdtw(bench, w):
    args, db = bench.args, bench.db
    res = {"workload": w.name, "describe": w.describe}
    X, path = read_trace()
    if X is None:
        res["skipped"] = "%s not found" % path
        log("softdtw: skipped: %s" % res["skipped"])
        return res
    try:
        import tslearn
        from tslearn.clustering import TimeSeriesKMeans
        from tslearn.metrics import soft_dtw
    except ImportError:
        res["skipped"] = "tslearn not installed"
        log("softdtw: skipped: tslearn not installed")
        return res
    table, load_s = array_table(db, "trace", X, args.reload)
    n = len(X)
    init = X[initial_rows(n, K)]
    lit = real_array_literal(init)
    repeats = args.repeats or 3
    res.update({"n": n, "len": X.shape[1], "k": K, "repeats": repeats, "load_s": load_s,
                "tslearn": tslearn.__version__})
    opts = ("metric => 'softdtw', gamma => %s, max_iter => %s, tol => 0, barycenter_iter => %s, "
            "init_centers => %%s::real[]" % (GAMMA, ITERATIONS, BARYCENTER_ITER))

    runs = []
    for _ in range(repeats + 1):    # the first warms the caches
        rows, seconds, _ = db.timed("SELECT sum(inertia) FROM kmeans_fit(%s, 'v', %s, " + opts + ")",
                                    (table, K, lit))
        runs.append((seconds, float(rows[0][0])))
    runs = runs[1:]
    labels = np.array([r[0] for r in db.timed(
        "SELECT cluster FROM kmeans_labels(%s, 'v', %s, id => 'id', " + opts + ") ORDER BY id",
        (table, K, lit))[0]])
    ours = {"seconds": median([r[0] for r in runs]), "inertia": runs[0][1]}

    # numba compiles tslearn's soft-DTW and its barycenter on first use: once, untimed
    TimeSeriesKMeans(n_clusters=2, metric="softdtw", max_iter=2, max_iter_barycenter=2,
                     random_state=0).fit(X[:8, :20])
    Xd = X[:, :, None].astype(np.float64)
    t0 = time.perf_counter()
    m = TimeSeriesKMeans(n_clusters=K, metric="softdtw", init=init[:, :, None].astype(np.float64),
                         max_iter=ITERATIONS, tol=0, max_iter_barycenter=BARYCENTER_ITER,
                         metric_params={"gamma": GAMMA}, n_jobs=-1).fit(Xd)
    peer_s = time.perf_counter() - t0
    peer_labels = m.predict(Xd)
    peer_inertia = float(sum(soft_dtw(Xd[i], m.cluster_centers_[peer_labels[i]], gamma=GAMMA)
                             for i in range(n)))
    res["ours"] = ours
    res["tslearn_run"] = {"seconds": peer_s, "inertia": peer_inertia}
    res["labels_equal"] = bool(np.array_equal(labels, peer_labels))
    log("softdtw: k=4: ours %.3f s (inertia %.4f), tslearn %.2f s (inertia %.4f), labels %s"
        % (ours["seconds"], ours["inertia"], peer_s, peer_inertia,
           "equal" if res["labels_equal"] else "DIFFER"))
    return res


def report_softdtw(res):
    head = "== softdtw: %s" % res["describe"]
    if "skipped" in res:
        return "%s\n  skipped: %s" % (head, res["skipped"])
    o, p = res["ours"], res["tslearn_run"]
    ratio = p["seconds"] / o["seconds"]
    rows = [["k = 4 fit, same starting series", "%.3f" % o["seconds"], "%.2f" % p["seconds"],
             "%.1fx" % ratio, "%.4f / %.4f" % (o["inertia"], p["inertia"]),
             "labels %s" % ("equal" if res["labels_equal"] else "DIFFER")]]
    return ("%s\n  n = %d series x %d samples, gamma %g, %d iterations, barycenter_iter %d, "
            "tslearn %s with n_jobs=-1; ours medians of %d runs, tslearn one run; inertia = sum of "
            "soft-DTW\n%s") % (
        head, res["n"], res["len"], GAMMA, ITERATIONS, BARYCENTER_ITER, res["tslearn"],
        res["repeats"],
        fmt_table(["", "ours s", "tslearn s", "tslearn / ours", "inertia ours / tslearn", "note"],
                  rows))


register(Workload(
    name="softdtw",
    describe="soft-DTW k-means on the UCR Trace series (../shared/data/trace, train + test), "
             "a k = 4 fit from the same starting series, beside tslearn",
    k=K, make_data=None, run=run_softdtw, report=report_softdtw, engines=("ours",)))
