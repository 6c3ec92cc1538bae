#!/usr/bin/env python3
"""kmeans_elbow's quality indices against scikit-learn's, on the same labels.

For each k of an elbow over real data, the labels come from kmeans_labels with the same options
(the same fit as the curve's, which the regression suite checks), and scikit-learn's
silhouette_score (all rows, no sampling), calinski_harabasz_score and davies_bouldin_score are
computed on them from the float64 version of the same float32 rows.  All three must agree within
1e-6 relative.

Data: scikit-learn's 8x8 digits (1,797 x 64), and the seismic profiles in ../shared/data
(11,346 x first 10 depths) when present.  Prints "N passed, M failed"; skips cleanly, exit 0,
when scikit-learn or psycopg2 is missing.
"""
import sys

try:
    import numpy as np
    import psycopg2  # noqa: F401  (for _common.connect; checked here to skip cleanly)
    from sklearn.datasets import load_digits
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
except ImportError as e:
    print(f"skipped: reference not installed ({e})")
    sys.exit(0)

from _common import Checks, connect, load_table, read_profiles  # noqa: E402

check = Checks()


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def compare(cur, name, x, k_min, k_max):
    x = np.asarray(x, dtype=np.float32)
    load_table(cur, name, x)
    cur.execute("SELECT k, silhouette, calinski_harabasz, davies_bouldin FROM "
                "kmeans_elbow(%s, 'v', %s, %s, silhouette_sample => %s) ORDER BY k",
                (name, k_min, k_max, len(x)))
    x64 = x.astype(np.float64)
    worst = [0.0, 0.0, 0.0]
    for k, sil, ch, db in cur.fetchall():
        cur.execute("SELECT id, cluster FROM kmeans_labels(%s, 'v', %s, id => 'id') ORDER BY id",
                    (name, k))
        labels = np.array([r[1] for r in cur.fetchall()])
        ref = (silhouette_score(x64, labels), calinski_harabasz_score(x64, labels),
               davies_bouldin_score(x64, labels))
        for i, (ours, theirs, what) in enumerate(zip((sil, ch, db), ref,
                                                     ("silhouette", "calinski_harabasz",
                                                      "davies_bouldin"))):
            worst[i] = max(worst[i], rel(ours, theirs))
            check(rel(ours, theirs) <= 1e-6, f"{name} k={k} {what}: {ours!r} vs {theirs!r}")
    print(f"{name}: n={len(x)} d={x.shape[1]} k={k_min}..{k_max}: largest relative difference "
          f"silhouette {worst[0]:.1e}, Calinski-Harabasz {worst[1]:.1e}, Davies-Bouldin {worst[2]:.1e}")


def main():
    cur = connect("elbow_check")

    compare(cur, "digits", load_digits().data, 2, 12)
    prof = read_profiles(10)
    if prof is not None:
        compare(cur, "profiles", prof, 3, 10)

    cur.execute("DROP SCHEMA elbow_check CASCADE")
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
