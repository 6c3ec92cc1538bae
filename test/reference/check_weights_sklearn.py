#!/usr/bin/env python3
"""Weighted fits (weight => ...) against scikit-learn's sample_weight, and against duplicated rows.

1. From the same starting centers, kmeans_fit and kmeans_labels with weight => 'w' and
   sklearn.cluster.KMeans(algorithm="lloyd", init=centers, n_init=1).fit(x, sample_weight=w)
   give every label equal, centers and inertia within 1e-5 relative and the same iterations,
   on hand-made points, the 8x8 digits (weights from 0 to 3, a tenth of them 0) and the seismic
   profiles in ../shared/data when present.
2. Independently of scikit-learn: integer weights equal rows repeated that many times (the
   definition of a weight), from the same starting centers: labels equal, centers and inertia
   within 1e-6 relative (the two tables have different means, so their rows are centred
   differently and the float32 distances round differently).
3. A streamed fit (rows re-read every pass) equals the resident one bit for bit.

Prints "N passed, M failed"; skips cleanly, exit 0, when scikit-learn or psycopg2 is missing.
"""
import io
import sys

try:
    import numpy as np
    import psycopg2  # noqa: F401  (for _common.connect; checked here to skip cleanly)
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits
except ImportError as e:  # the reference is optional on a developer's machine
    print(f"skipped: reference not installed ({e})")
    sys.exit(0)

from _common import Checks, connect, pg_array, read_profiles  # noqa: E402

check = Checks()


def load_weighted(cur, name, x, w):
    """(Re)creates table name (id bigint, v real[], w float8) from the rows of x and weights w."""
    cur.execute("SELECT current_schema()")
    schema = cur.fetchone()[0]
    cur.execute(f"DROP TABLE IF EXISTS {schema}.{name}; "
                f"CREATE TABLE {schema}.{name} (id bigint, v real[], w float8)")
    buf = io.StringIO("".join(f"{i}\t{pg_array(r)}\t{float(wi)!r}\n"
                              for i, (r, wi) in enumerate(zip(x, w))))
    cur.copy_expert(f"COPY {name} FROM STDIN", buf)


def ours(cur, name, k, init, extra=""):
    """kmeans_fit (centers, sizes, inertia) and kmeans_labels (labels by id) of table name."""
    cur.execute(f"SELECT cluster, center, size, inertia FROM kmeans_fit(%s, 'v', %s, "
                f"init_centers => %s::real[], weight => 'w', model => %s{extra}) ORDER BY cluster",
                (name, k, pg_array(init), name))
    fit = cur.fetchall()
    cur.execute("SELECT n_iter FROM kmeans_models WHERE name = %s", (name,))
    n_iter = cur.fetchone()[0]
    cur.execute(f"SELECT id, cluster, distance FROM kmeans_labels(%s, 'v', %s, id => 'id', "
                f"init_centers => %s::real[], weight => 'w'{extra}) ORDER BY id",
                (name, k, pg_array(init)))
    lab = cur.fetchall()
    return (np.array([r[1] for r in fit], dtype=np.float64), np.array([r[2] for r in fit]),
            sum(r[3] for r in fit), n_iter, np.array([r[1] for r in lab]),
            np.array([r[2] for r in lab]))


def compare(cur, name, x, w, k, start_rows):
    """Fits x with weights w from the rows at start_rows with both implementations."""
    x = np.asarray(x, dtype=np.float32)
    w = np.asarray(w, dtype=np.float64)
    init = x[start_rows]
    load_weighted(cur, name, x, w)
    centers, sizes, inertia, n_iter, labels, _ = ours(cur, name, k, init)
    ref = KMeans(n_clusters=k, init=init.astype(np.float64), n_init=1, max_iter=300,
                 tol=1e-4, algorithm="lloyd").fit(x.astype(np.float64), sample_weight=w)
    diff = int(np.sum(labels != ref.labels_))
    rel = np.linalg.norm(centers - ref.cluster_centers_, axis=1) / \
        np.maximum(np.linalg.norm(ref.cluster_centers_, axis=1), 1e-30)
    inertia_rel = abs(inertia - ref.inertia_) / max(ref.inertia_, 1e-30)
    print(f"{name}: n={len(x)} d={x.shape[1]} k={k}, weights {w.min():g}..{w.max():g}: labels "
          f"differing {diff}, max center rel diff {rel.max():.2e}, inertia {inertia:.6f} vs "
          f"{ref.inertia_:.6f} (rel {inertia_rel:.1e}), iterations {n_iter} vs {ref.n_iter_}")
    check(diff == 0, f"{name}: {diff} labels differ from scikit-learn's")
    check(rel.max() <= 1e-5, f"{name}: centers differ by {rel.max():.2e} relative")
    check(inertia_rel <= 1e-5, f"{name}: inertia differs by {inertia_rel:.2e} relative")
    check(n_iter == ref.n_iter_, f"{name}: {n_iter} iterations vs {ref.n_iter_}")
    # size is the number of rows labelled with the cluster, whatever their weight
    check(np.array_equal(sizes, np.bincount(ref.labels_, minlength=k)),
          f"{name}: cluster sizes are not the row counts")


def compare_repeated(cur, name, x, reps, k, start_rows):
    """Integer weights against the rows repeated that many times (rows of weight 0 dropped)."""
    x = np.asarray(x, dtype=np.float32)
    init = x[start_rows]
    load_weighted(cur, name, x, reps)
    wc, _, wi, wn, wl, _ = ours(cur, name, k, init)
    rep = np.repeat(x, reps, axis=0)
    load_weighted(cur, name + "_rep", rep, np.ones(len(rep)))
    cur.execute(f"SELECT center, inertia FROM kmeans_fit(%s, 'v', %s, init_centers => %s::real[]) "
                f"ORDER BY cluster", (name + "_rep", k, pg_array(init)))
    rows = cur.fetchall()
    rc = np.array([r[0] for r in rows], dtype=np.float64)
    ri = sum(r[1] for r in rows)
    cur.execute(f"SELECT id, cluster FROM kmeans_labels(%s, 'v', %s, id => 'id', "
                f"init_centers => %s::real[]) ORDER BY id", (name + "_rep", k, pg_array(init)))
    rl = np.array([r[1] for r in cur.fetchall()])
    crel = np.abs(wc - rc).max() / max(np.abs(rc).max(), 1e-30)
    irel = abs(wi - ri) / max(ri, 1e-30)
    print(f"{name}: weights 0..{max(reps)} against {len(rep)} repeated rows: center rel diff "
          f"{crel:.1e}, inertia {wi:.6f} vs {ri:.6f}")
    check(np.array_equal(np.repeat(wl, reps), rl), f"{name}: labels differ from the repeated rows'")
    check(crel <= 1e-6, f"{name}: centers differ from the repeated rows' by {crel:.1e}")
    check(irel <= 1e-6, f"{name}: inertia differs from the repeated rows' by {irel:.1e}")


def compare_streamed(cur, name, k, start_rows, x):
    """The same weighted fit with the rows kept and re-read every pass: identical output."""
    init = np.asarray(x, dtype=np.float32)[start_rows]
    resident = ours(cur, name, k, init)
    cur.execute("SET kmeans.memory_limit = '64kB'")
    try:
        streamed = ours(cur, name, k, init)
    finally:
        cur.execute("RESET kmeans.memory_limit")
    same = all(np.array_equal(a, b) for a, b in zip(resident, streamed))
    check(same, f"{name}: the streamed weighted fit differs from the resident one")
    print(f"{name}: streamed and resident weighted fits {'identical' if same else 'DIFFER'}")


def main():
    cur = connect("weights_check")

    # three blobs with an outlier whose weight decides where the middle center goes
    small = np.array([[0, 0], [0, 1], [1, 0], [5, 5], [5, 6], [6, 5], [9, 0], [9, 1], [10, 0],
                      [3, 2]], dtype=np.float32)
    compare(cur, "small_w", small, [1, 2, 3, 1, 1, 4, 0.5, 0.5, 2, 6], 3, [0, 3, 6])

    # the digits are small integers, where two starting centers (rows) can be exactly as far
    # from a row; float32 distances of centred rows break such a tie by rounding and
    # scikit-learn's float64 ones by index, so the values get a jitter below 1e-3
    digits = load_digits()
    rng = np.random.default_rng(7)
    digits.data = digits.data + rng.uniform(0.0, 1e-3, digits.data.shape)
    w = rng.uniform(0.0, 3.0, len(digits.data))
    w[rng.random(len(w)) < 0.1] = 0.0
    first_of_class = [int(np.argmax((digits.target == c) & (w > 0))) for c in range(10)]
    compare(cur, "digits_w", digits.data, w, 10, first_of_class)
    # wide rows take the grouped accumulation (d > 16) and k >= 64 the large-k kernels
    positive = np.flatnonzero(w > 0)
    compare(cur, "digits100_w", digits.data, w, 100, positive[::len(positive) // 100][:100].tolist())

    reps = rng.integers(0, 4, len(digits.data))
    reps[first_of_class] = 1
    compare_repeated(cur, "digits_rep", digits.data, reps, 10, first_of_class)
    compare_repeated(cur, "small_rep", small, [1, 2, 3, 1, 1, 4, 0, 1, 2, 3], 3, [0, 3, 6])

    compare_streamed(cur, "digits_w", 10, first_of_class, digits.data)

    prof = read_profiles(10)
    if prof is not None:
        pw = rng.uniform(0.1, 5.0, len(prof))
        rows = sorted(rng.choice(len(prof), 8, replace=False).tolist())
        compare(cur, "profiles_w", prof, pw, 8, rows)

    cur.execute("DELETE FROM kmeans_models WHERE name IN "
                "('small_w', 'digits_w', 'digits100_w', 'digits_rep', 'small_rep', 'profiles_w')")
    cur.execute("DROP SCHEMA weights_check CASCADE")
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
