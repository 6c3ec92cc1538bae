"""metric => 'softdtw' against tslearn's TimeSeriesKMeans(metric="softdtw") on the UCR Trace
series (../shared/data/trace, 100 train series x 275 samples, 4 classes), from the same starting
centers and for the same number of iterations (tol 0 on both sides, so neither stops early):
the same labels, the centers and the inertia within the tolerance below; with a Sakoe-Chiba
band and a smaller gamma too.  kmeans_softdtw against tslearn's soft_dtw, and kmeans_elbow's
silhouette under soft-DTW against tslearn's silhouette_score(metric="softdtw") on the same labels.

What is compared.  tslearn reports the labels of the assignment before its last center update
and the mean of the squared soft-DTW values as inertia_; ours come from one more assignment to
the final centers, and our inertia is the sum of the soft-DTW values (the objective k-means
under soft-DTW lowers, and which can be negative).  So the comparison is with tslearn's final
centers: predict() for the labels, and the sum of soft_dtw(row, its center) for the inertia.

The tolerance.  Both sides move a center by L-BFGS with scipy's L-BFGS-B rules and tol 1e-3
(tslearn's softdtw_barycenter), from the same point on the same objective; the objective's
float64 sums are added in another order (tslearn adds the series' gradients as its threads
finish), so the iterates agree to rounding until a stop test near its threshold goes the other
way.  Centers are compared within 1e-3 absolute (the series are z-normalised, values within
about +-3) and the inertia within 1e-5 relative.

Runs with the Python of scripts/test.sh's virtual environment (tslearn from PyPI); skips
cleanly, with a message, without tslearn or without the data."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Checks, connect, pg_array  # noqa: E402
from check_dtw_tslearn import TRACE, load_series, read_trace  # noqa: E402

CENTER_TOL = 1e-5
INERTIA_TOL = 1e-8
ITERATIONS = 3
BARYCENTER_ITER = 30


def ours(cur, table, k, init, band, gamma):
    """Labels (by id), centers and inertia of our fit from init (k x lc)."""
    args = (f"metric => 'softdtw', gamma => {gamma!r}, init_centers => '{pg_array(init)}', "
            f"max_iter => {ITERATIONS}, tol => 0, barycenter_iter => {BARYCENTER_ITER}"
            + (f", dtw_band => {band}" if band is not None else ""))
    cur.execute(f"SELECT id, cluster FROM kmeans_labels('{table}', 'v', {k}, id => 'id', {args}) ORDER BY id")
    labels = np.array([r[1] for r in cur.fetchall()])
    cur.execute(f"SELECT center, inertia FROM kmeans_fit('{table}', 'v', {k}, {args}) ORDER BY cluster")
    rows = cur.fetchall()
    centers = np.array([r[0] for r in rows], dtype=np.float64)
    inertia = sum(r[1] for r in rows)
    return labels, centers, inertia


def main():
    check = Checks()
    if not os.path.exists(TRACE):
        print(f"skipped: {TRACE} not found")
        return 0
    try:
        from tslearn.clustering import TimeSeriesKMeans, silhouette_score
        from tslearn.metrics import soft_dtw
        from tslearn.utils import to_time_series_dataset
    except ImportError as e:
        print(f"skipped: tslearn is not installed ({e}); scripts/test.sh installs it from PyPI")
        return 0
    cur = connect("ref_softdtw")
    x = read_trace()
    k = 4
    # one starting center per class: the first series of each, 0, 3, 4 and 11 in the file
    init = x[[0, 3, 4, 11]].astype(np.float64)
    load_series(cur, "trace_soft", [s for s in x])
    X = to_time_series_dataset([s.astype(np.float64) for s in x])

    def band_params(band):
        return {} if band is None else {"global_constraint": "sakoe_chiba",
                                        "sakoe_chiba_radius": band}

    for what, band, gamma in [("gamma 1", None, 1.0), ("gamma 0.1, band 10", 10, 0.1)]:
        params = dict(gamma=gamma, **band_params(band))
        km = TimeSeriesKMeans(n_clusters=k, metric="softdtw", init=init.reshape(k, -1, 1),
                              max_iter=ITERATIONS, tol=0, max_iter_barycenter=BARYCENTER_ITER,
                              metric_params=params, n_init=1, random_state=0).fit(X)
        ref_centers = km.cluster_centers_[:, :, 0]
        ref_labels = km.predict(X)
        ref_inertia = float(sum(soft_dtw(X[i], km.cluster_centers_[ref_labels[i]], **params)
                                for i in range(len(X))))

        labels, centers, inertia = ours(cur, "trace_soft", k, init, band, gamma)
        dc = np.max(np.abs(centers - ref_centers))
        rel = abs(inertia - ref_inertia) / abs(ref_inertia)
        check(np.array_equal(labels, ref_labels),
              f"{what}: labels differ in {int(np.sum(labels != ref_labels))} rows")
        check(dc <= CENTER_TOL, f"{what}: centers differ by {dc:.3g}")
        check(rel <= INERTIA_TOL, f"{what}: inertia {inertia!r} vs tslearn's {ref_inertia!r}")
        print(f"{what}: {int(np.sum(labels == ref_labels))}/{len(x)} labels equal, centers within "
              f"{dc:.2e}, inertia {inertia:.9g} vs {ref_inertia:.9g} (rel {rel:.2e})")

    # values, including series of different lengths and bands
    pairs = [(x[0], x[1], 1.0, None), (x[2][:150], x[3], 0.5, None), (x[4], x[5][:201], 2.0, 5),
             (x[6], x[7], 0.01, 0), (x[8][:30], x[9][:50], 1.0, 3)]
    for a, b, gamma, band in pairs:
        ref = soft_dtw(a.astype(np.float64), b.astype(np.float64), gamma=gamma, **band_params(band))
        cur.execute("SELECT kmeans_softdtw(%s::real[], %s::real[], %s, %s)",
                    (pg_array(a), pg_array(b), gamma, band))
        got = cur.fetchone()[0]
        check(abs(got - ref) <= 1e-9 * max(abs(ref), 1.0),
              f"kmeans_softdtw of {len(a)} and {len(b)} samples, gamma {gamma}, band {band}: "
              f"{got!r} vs tslearn's {ref!r}")

    # the elbow's silhouette under soft-DTW (tslearn's normalised soft-DTW), on the same labels
    cur.execute("SELECT silhouette FROM kmeans_elbow('trace_soft', 'v', 4, 4, metric => 'softdtw', "
                "silhouette_sample => 100, seed => 7, max_iter => 2)")
    sil = cur.fetchone()[0]
    cur.execute("SELECT cluster FROM kmeans_labels('trace_soft', 'v', 4, id => 'id', "
                "metric => 'softdtw', seed => 7, max_iter => 2) ORDER BY id")
    labels = np.array([r[0] for r in cur.fetchall()])
    ref_sil = silhouette_score(X, labels, metric="softdtw", metric_params={"gamma": 1.0})
    check(abs(sil - ref_sil) <= 1e-9, f"silhouette {sil!r} vs tslearn's {ref_sil!r}")
    print(f"silhouette {sil:.12g} vs tslearn's {ref_sil:.12g}")
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
