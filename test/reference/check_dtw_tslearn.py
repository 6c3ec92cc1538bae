"""metric => 'dtw' against tslearn's TimeSeriesKMeans(metric="dtw") on the UCR Trace series
(../shared/data/trace, 100 train series x 275 samples, 4 classes), from the same starting
centers: the same labels, the inertia within 1e-4 relative and the centers within 1e-4; with a
Sakoe-Chiba band too (given to tslearn as sakoe_chiba_radius alone, see below), and on series of different lengths.  kmeans_dtw against tslearn's dtw, and
kmeans_elbow's DTW silhouette against tslearn's silhouette_score on the same labels.

tslearn reports the labels and inertia of the assignment before its last center update; ours
come from one more assignment to the final centers, so the comparison is with tslearn's final
centers: predict() for the labels and the squared DTW of every row to its center for the
inertia (the sum, where tslearn's inertia_ is the mean).

Runs with the Python of scripts/test.sh's virtual environment (tslearn from PyPI); skips
cleanly, with a message, without tslearn or without the data."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Checks, connect, pg_array  # noqa: E402

TRACE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared",
                     "data", "trace", "trace_train.tsv")


def read_trace():
    with open(TRACE) as f:
        rows = [[float(v) for v in line.split("\t")[1].strip().strip("{}").split(",")] for line in f]
    return np.array(rows, dtype=np.float32)


def load_series(cur, name, series):
    """Table name (id bigint, v real[]) of the series (1-D float32 arrays of any length)."""
    import io

    cur.execute(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id bigint, v real[])")
    buf = io.StringIO("".join(f"{i}\t{pg_array(s)}\n" for i, s in enumerate(series)))
    cur.copy_expert(f"COPY {name} FROM STDIN", buf)


def ours(cur, table, k, init, band):
    """Labels (by id), centers and inertia of our fit from init (k x lc)."""
    args = (f"metric => 'dtw', init_centers => '{pg_array(init)}', max_iter => 50"
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
        from tslearn.metrics import cdist_dtw, dtw
        from tslearn.utils import to_time_series_dataset
    except ImportError as e:
        print(f"skipped: tslearn is not installed ({e}); scripts/test.sh installs it from PyPI")
        return 0
    cur = connect("ref_dtw")
    x = read_trace()
    k = 4
    # one starting center per class: the first series of each, 0, 3, 4 and 11 in the file
    init_rows = [0, 3, 4, 11]

    cases = [("no band", None, [s for s in x]),
             ("band 10", 10, [s for s in x]),
             # ragged: every series cut to 200 + (i * 7) % 76 samples, centers of the longest
             ("ragged", None, [s[:200 + (i * 7) % 76] for i, s in enumerate(x)])]
    for what, band, series in cases:
        lc = max(len(s) for s in series)
        init = np.array([np.interp(np.linspace(0, len(series[r]) - 1, lc),
                                   np.arange(len(series[r])), series[r].astype(np.float64))
                         if len(series[r]) != lc else series[r].astype(np.float64)
                         for r in init_rows])
        # float32 as the database holds them
        init = init.astype(np.float32).astype(np.float64)
        table = "trace_" + what.replace(" ", "_")
        load_series(cur, table, series)
        # the radius alone: tslearn 0.10 hands metric_params to DBA's compiled path search
        # as given, where the string "sakoe_chiba" matches no constraint code and the band
        # is silently dropped; with the radius alone both steps infer the Sakoe-Chiba band
        params = None if band is None else {"sakoe_chiba_radius": band}
        X = to_time_series_dataset([s.astype(np.float64) for s in series])
        km = TimeSeriesKMeans(n_clusters=k, metric="dtw", init=init.reshape(k, lc, 1),
                              max_iter=50, tol=1e-6, n_init=1, metric_params=params,
                              random_state=0).fit(X)
        ref_centers = km.cluster_centers_[:, :, 0]
        ref_labels = km.predict(X)
        d = cdist_dtw(X, km.cluster_centers_, **({} if params is None else params))
        ref_inertia = float(np.sum(d[np.arange(len(series)), ref_labels] ** 2))

        labels, centers, inertia = ours(cur, table, k, init, band)
        check(np.array_equal(labels, ref_labels),
              f"{what}: labels differ in {int(np.sum(labels != ref_labels))} rows")
        check(abs(inertia - ref_inertia) <= 1e-4 * ref_inertia,
              f"{what}: inertia {inertia!r} vs tslearn's {ref_inertia!r}")
        check(centers.shape == ref_centers.shape and np.max(np.abs(centers - ref_centers)) < 1e-4,
              f"{what}: centers differ by {np.max(np.abs(centers - ref_centers)) if centers.shape == ref_centers.shape else centers.shape}")
        print(f"{what}: {int(np.sum(labels == ref_labels))}/{len(series)} labels equal, inertia "
              f"{inertia:.9g} vs {ref_inertia:.9g} (rel {abs(inertia - ref_inertia) / ref_inertia:.2e}), "
              f"tslearn n_iter {km.n_iter_}")

    # distances, including series of different lengths and bands
    pairs = [(x[0], x[1], None), (x[2][:150], x[3], None), (x[4], x[5][:201], 5), (x[6], x[7], 0),
             (x[8][:30], x[9][:50], 3)]
    for a, b, band in pairs:
        params = {} if band is None else {"sakoe_chiba_radius": band}
        ref = dtw(a.astype(np.float64), b.astype(np.float64), **params)
        cur.execute("SELECT kmeans_dtw(%s::real[], %s::real[], %s)", (pg_array(a), pg_array(b), band))
        got = cur.fetchone()[0]
        check(abs(got - ref) <= 1e-9 * max(ref, 1e-300),
              f"kmeans_dtw of {len(a)} and {len(b)} samples, band {band}: {got!r} vs tslearn's {ref!r}")

    # the elbow's silhouette under DTW, on the labels of the same seeded fit
    cur.execute("SELECT silhouette FROM kmeans_elbow('trace_no_band', 'v', 4, 4, metric => 'dtw', "
                "silhouette_sample => 100, seed => 7)")
    sil = cur.fetchone()[0]
    cur.execute("SELECT cluster FROM kmeans_labels('trace_no_band', 'v', 4, id => 'id', "
                "metric => 'dtw', seed => 7) ORDER BY id")
    labels = np.array([r[0] for r in cur.fetchall()])
    ref_sil = silhouette_score(to_time_series_dataset(x.astype(np.float64)), labels, metric="dtw")
    check(abs(sil - ref_sil) <= 1e-9, f"silhouette {sil!r} vs tslearn's {ref_sil!r}")
    print(f"silhouette {sil:.12g} vs tslearn's {ref_sil:.12g}")
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
