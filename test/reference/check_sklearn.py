#!/usr/bin/env python3
"""kmeans_fit and kmeans_labels against scikit-learn's KMeans, from the same starting centers.

For each data set: the same float32 rows go into a table and (as float64) into
sklearn.cluster.KMeans(algorithm="lloyd", init=centers, n_init=1, max_iter=300, tol=1e-4).
Checks: every label equal, every center within 1e-5 relative (|ours - theirs| / |theirs| per
center), inertia within 1e-5 relative, the same number of iterations.

Data: small hand-made points, scikit-learn's 8x8 digits (1,797 x 64, shipped with it), and the
seismic profiles in ../shared/data (11,346 x 10) when present.  Connects with the libpq
environment (PGHOST, PGPORT, PGUSER, PGDATABASE); the extension must be installed.
Prints "N passed, M failed"; skips cleanly, exit 0, when scikit-learn or psycopg2 is missing.
"""
import sys

try:
    import numpy as np
    import psycopg2  # noqa: F401  (for _common.connect; checked here to skip cleanly)
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits
except ImportError as e:  # the reference is optional on a developer's machine
    print(f"skipped: reference not installed ({e})")
    sys.exit(0)

from _common import Checks, connect, load_table, pg_array, read_profiles  # noqa: E402

check = Checks()


def compare(cur, name, x, k, start_rows):
    """Fits x from the rows at start_rows with both implementations and compares."""
    x = np.asarray(x, dtype=np.float32)
    init = x[start_rows]
    load_table(cur, name, x)
    cur.execute(f"SELECT cluster, center, size, inertia FROM kmeans_fit(%s, 'v', %s, "
                f"init_centers => %s::real[], model => %s) ORDER BY cluster",
                (name, k, pg_array(init), name))
    fit = cur.fetchall()
    ours_centers = np.array([r[1] for r in fit], dtype=np.float64)
    ours_sizes = np.array([r[2] for r in fit])
    ours_inertia = sum(r[3] for r in fit)
    cur.execute("SELECT n_iter FROM kmeans_models WHERE name = %s", (name,))
    ours_iter = cur.fetchone()[0]
    cur.execute(f"SELECT id, cluster FROM kmeans_labels(%s, 'v', %s, id => 'id', "
                f"init_centers => %s::real[]) ORDER BY id", (name, k, pg_array(init)))
    ours_labels = np.array([r[1] for r in cur.fetchall()])

    ref = KMeans(n_clusters=k, init=init.astype(np.float64), n_init=1, max_iter=300,
                 tol=1e-4, algorithm="lloyd").fit(x.astype(np.float64))
    diff_labels = int(np.sum(ours_labels != ref.labels_))
    rel = np.linalg.norm(ours_centers - ref.cluster_centers_, axis=1) / \
        np.maximum(np.linalg.norm(ref.cluster_centers_, axis=1), 1e-30)
    inertia_rel = abs(ours_inertia - ref.inertia_) / max(ref.inertia_, 1e-30)
    print(f"{name}: n={len(x)} d={x.shape[1]} k={k}: labels differing {diff_labels}, "
          f"max center rel diff {rel.max():.2e}, inertia {ours_inertia:.6f} vs {ref.inertia_:.6f} "
          f"(rel {inertia_rel:.1e}), iterations {ours_iter} vs {ref.n_iter_}")
    check(diff_labels == 0, f"{name}: {diff_labels} labels differ")
    check(rel.max() <= 1e-5, f"{name}: centers differ by {rel.max():.2e} relative")
    check(inertia_rel <= 1e-5, f"{name}: inertia differs by {inertia_rel:.2e} relative")
    check(ours_iter == ref.n_iter_, f"{name}: {ours_iter} iterations vs {ref.n_iter_}")
    check(np.array_equal(ours_sizes, np.bincount(ref.labels_, minlength=k)),
          f"{name}: cluster sizes differ")


def main():
    cur = connect("reference_check")

    # small points: three blobs in two dimensions, start from one point of each blob
    small = np.array([[0, 0], [0, 1], [1, 0], [5, 5], [5, 6], [6, 5], [9, 0], [9, 1], [10, 0],
                      [3, 2]], dtype=np.float32)
    compare(cur, "small", small, 3, [0, 3, 6])

    # the 8x8 digits: 10 clusters from the first image of each class
    digits = load_digits()
    first_of_class = [int(np.argmax(digits.target == c)) for c in range(10)]
    compare(cur, "digits", digits.data, 10, first_of_class)
    # and 30 clusters from every 60th image
    compare(cur, "digits30", digits.data, 30, list(range(0, 1800, 60)))
    # 100 clusters from every 18th image: k >= 64 at d = 64 takes the bfloat16 screen where the
    # CPU has AVX512-BF16, and its labels must still be scikit-learn's float64 ones
    compare(cur, "digits100", digits.data, 100, list(range(0, 1800, 18)))

    prof = read_profiles(10)
    if prof is not None:
        rows = np.random.default_rng(1).choice(len(prof), 8, replace=False)
        compare(cur, "profiles", prof, 8, sorted(rows.tolist()))

    cur.execute("DELETE FROM kmeans_models WHERE name IN ('small', 'digits', 'digits30', 'digits100', 'profiles')")
    cur.execute("DROP SCHEMA reference_check CASCADE")
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
