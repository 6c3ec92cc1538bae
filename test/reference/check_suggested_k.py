#!/usr/bin/env python3
"""kmeans_elbow's suggested k on data whose k is known, with the table the README shows.

Against a live server (libpq variables).  Data: the demo's four provinces (scripts/demo.sh's
own SQL), scikit-learn's make_blobs with 3 to 8 centers at three spreads, the iris and wine
measurements raw and standardised, and the seismic profiles of ../shared/data where present
(no known k; shown for the record).  For each, the row marked elbow over k = 1..10 beside what
each index alone would say: the knee of the inertia curve (Kneedle, worked out here from the
returned inertia), the silhouette's and Calinski-Harabasz's peaks and Davies-Bouldin's minimum.

The check: the suggestion equals the known k on the demo, iris and wine, and on every blob set
whose centers are separated (every two at least 4 spreads apart, measured here from
make_blobs' own centers); blob sets whose centers nearly coincide are listed but not held to
their nominal k.  Prints the table and "N passed, M failed"; skips cleanly without scikit-learn.
"""
import os
import sys

try:
    import numpy as np
    import psycopg2
    from sklearn.datasets import load_iris, load_wine, make_blobs
    from sklearn.preprocessing import StandardScaler
except ImportError as e:  # pragma: no cover
    print(f"skipped: reference not installed ({e})")
    print("0 passed, 0 failed")
    sys.exit(0)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Checks, load_table, read_profiles  # noqa: E402

SEPARATED = 4.0     # centers at least this many spreads apart count as separated


def kneedle(ks, inertia):
    """km_knee's rule: k and inertia scaled to [0, 1], the k farthest below the chord."""
    ks = np.asarray(ks, dtype=float)
    y = np.asarray(inertia, dtype=float)
    xn = (ks - ks.min()) / (ks.max() - ks.min())
    yn = (y - y.min()) / (y.max() - y.min())
    return int(ks[int(np.argmax((1 - yn) - xn))])


def elbow(cur, table, k_min, k_max, silhouette=True):
    cur.execute("SELECT k, inertia, silhouette, calinski_harabasz, davies_bouldin, elbow "
                "FROM kmeans_elbow(%s, 'v', %s, %s, silhouette_sample => %s) ORDER BY k",
                (table, k_min, k_max, 2000 if silhouette else 0))
    rows = cur.fetchall()
    ks = [r[0] for r in rows]

    def best(col, pick):
        vals = [(r[0], r[col]) for r in rows if r[col] is not None]
        return pick(vals, key=lambda kv: kv[1])[0] if vals else None

    return {"suggested": [r[0] for r in rows if r[5]][0],
            "kneedle": kneedle(ks, [r[1] for r in rows]),
            "silhouette": best(2, max), "ch": best(3, max), "db": best(4, min)}


def main():
    checks = Checks()
    conn = psycopg2.connect("")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SET search_path = public")
    sets = []   # (name, known k or None, held to it, x or a table already made)

    demo = open(os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "demo.sh")).read()
    sql = demo[demo.index("CREATE TABLE profiles AS"):demo.index("FROM province;") + len("FROM province;")]
    cur.execute("DROP TABLE IF EXISTS profiles")
    cur.execute(sql)
    cur.execute("DROP TABLE IF EXISTS suggest_demo; "
                "CREATE TABLE suggest_demo AS SELECT id, dvs AS v FROM profiles; DROP TABLE profiles")
    sets.append(("demo: four provinces", 4, True, "suggest_demo"))

    for nc in range(3, 9):
        for std in (0.5, 1.0, 1.5):
            x, _, centers = make_blobs(n_samples=200 * nc, centers=nc, cluster_std=std,
                                       n_features=2, random_state=nc * 10 + int(std * 2),
                                       return_centers=True)
            gap = min(np.linalg.norm(centers[i] - centers[j])
                      for i in range(nc) for j in range(i + 1, nc)) / std
            sets.append((f"blobs: {nc} centers, spread {std} (closest {gap:.1f} spreads)", nc,
                         gap >= SEPARATED, x.astype(np.float32)))
    for name, data in (("iris", load_iris().data), ("wine", load_wine().data)):
        sets.append((f"{name}: raw", 3, True, data.astype(np.float32)))
        sets.append((f"{name}: standardised", 3, True,
                     StandardScaler().fit_transform(data).astype(np.float32)))

    print(f"{'data':52} {'k':>2} {'ours':>4} {'knee':>4} {'sil':>4} {'CH':>4} {'DB':>4}")
    right = held = 0
    for name, known, hold, x in sets:
        table = x if isinstance(x, str) else "suggest_data"
        if not isinstance(x, str):
            load_table(cur, table, x)
        r = elbow(cur, table, 1, 10)
        mark = "" if r["suggested"] == known else ("  <- wrong" if hold else "  (centers within 4 spreads)")
        print(f"{name:52} {known:>2} {r['suggested']:>4} {r['kneedle']:>4} {r['silhouette']:>4} "
              f"{r['ch']:>4} {r['db']:>4}{mark}")
        if hold:
            held += 1
            right += r["suggested"] == known
            checks(r["suggested"] == known, f"{name}: suggested {r['suggested']}, known {known}")
    print(f"right on {right} of {held} data sets held to their k")

    x = read_profiles(10)
    if x is not None:
        load_table(cur, "suggest_data", x)
        r = elbow(cur, "suggest_data", 3, 49, silhouette=False)
        print(f"{'seismic profiles, k = 3..49 (no known k)':52} {'-':>2} {r['suggested']:>4} "
              f"{r['kneedle']:>4} {'-':>4} {r['ch']:>4} {r['db']:>4}")
        # CH falls from the smallest k on: the suggestion is the knee of the curve
        checks(r["suggested"] == r["kneedle"], "seismic: the suggestion is not the knee")
    cur.execute("DROP TABLE IF EXISTS suggest_data, suggest_demo")
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
