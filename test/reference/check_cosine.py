#!/usr/bin/env python3
"""metric => 'cosine' against an independent float64 spherical k-means written here in numpy.

Spherical k-means (Dhillon & Modha 2001) from the same starting centers: every row scaled to
unit length, each row to the center of largest cosine (lowest index on ties), each center the
normalised sum of its rows, stopping when no label changes or when the squared center shift is
at most tol times the mean per-dimension variance of the unit rows (scikit-learn's rule, which
the extension applies to the rows it clusters), and an empty cluster relocated as the README
documents (_common.relocate_empty).  Checks on the 8x8 digits and on random
embeddings (blobs on the sphere, d = 64): every label equal, every center within 1e-5, the
inertia sum(1 - cos) within 1e-5 relative, the same iterations; kmeans_predict under the saved
model agrees with every label; and kmeans_elbow's silhouette under cosine equals scikit-learn's
silhouette_score(metric='cosine') of the same fit's labels.

Prints "N passed, M failed"; skips cleanly, exit 0, when numpy, scikit-learn or psycopg2 is
missing.
"""
import sys

try:
    import numpy as np
    import psycopg2  # noqa: F401  (for _common.connect; checked here to skip cleanly)
    from sklearn.datasets import load_digits
    from sklearn.metrics import silhouette_score
except ImportError as e:  # the reference is optional on a developer's machine
    print(f"skipped: reference not installed ({e})")
    sys.exit(0)

from _common import Checks, connect, load_table, pg_array, relocate_empty  # noqa: E402

check = Checks()


def spherical_kmeans(x, init, max_iter=300, tol=1e-4):
    """(labels, centers, inertia, n_iter) of spherical k-means in float64 from init."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    c = init / np.linalg.norm(init, axis=1, keepdims=True)
    tol_abs = tol * np.var(u, axis=0).mean()
    prev = None
    n_iter = 0
    for it in range(1, max_iter + 1):
        lab = np.argmax(u @ c.T, axis=1)
        changed = prev is None or np.any(lab != prev)
        means_of = relocate_empty(1.0 - u @ c.T, lab, len(c))
        new = np.array([u[means_of == j].sum(axis=0) if np.any(means_of == j) else c[j]
                        for j in range(len(c))])
        new /= np.linalg.norm(new, axis=1, keepdims=True)
        shift = ((new - c) ** 2).sum()
        c, prev, n_iter = new, lab, it
        if not changed or shift <= tol_abs:
            break
    lab = np.argmax(u @ c.T, axis=1)
    inertia = (1.0 - (u * c[lab]).sum(axis=1)).sum()
    return lab, c, inertia, n_iter


def compare(cur, name, x, k, start_rows):
    x = np.asarray(x, dtype=np.float32)
    init = x[start_rows]
    load_table(cur, name, x)
    cur.execute("SELECT cluster, center, inertia FROM kmeans_fit(%s, 'v', %s, "
                "init_centers => %s::real[], metric => 'cosine', model => %s) ORDER BY cluster",
                (name, k, pg_array(init), name))
    fit = cur.fetchall()
    centers = np.array([r[1] for r in fit], dtype=np.float64)
    inertia = sum(r[2] for r in fit)
    cur.execute("SELECT n_iter FROM kmeans_models WHERE name = %s", (name,))
    n_iter = cur.fetchone()[0]
    cur.execute("SELECT id, cluster FROM kmeans_labels(%s, 'v', %s, id => 'id', "
                "init_centers => %s::real[], metric => 'cosine') ORDER BY id",
                (name, k, pg_array(init)))
    labels = np.array([r[1] for r in cur.fetchall()])
    cur.execute(f"SELECT count(*) FILTER (WHERE kmeans_predict(%s, v) <> l.cluster) FROM {name} "
                f"JOIN kmeans_labels(%s, 'v', %s, id => 'id', init_centers => %s::real[], "
                f"metric => 'cosine') l USING (id)", (name, name, k, pg_array(init)))
    predict_diff = cur.fetchone()[0]

    rl, rc, ri, rn = spherical_kmeans(x.astype(np.float64), init.astype(np.float64))
    diff = int(np.sum(labels != rl))
    cdiff = np.abs(centers - rc).max()
    irel = abs(inertia - ri) / max(ri, 1e-30)
    print(f"{name}: n={len(x)} d={x.shape[1]} k={k}: labels differing {diff}, max center diff "
          f"{cdiff:.2e}, inertia {inertia:.6f} vs {ri:.6f} (rel {irel:.1e}), iterations {n_iter} "
          f"vs {rn}, kmeans_predict disagreeing {predict_diff}")
    check(diff == 0, f"{name}: {diff} labels differ from the reference")
    check(cdiff <= 1e-5, f"{name}: centers differ by {cdiff:.2e}")
    check(irel <= 1e-5, f"{name}: inertia differs by {irel:.2e} relative")
    check(n_iter == rn, f"{name}: {n_iter} iterations vs {rn}")
    check(predict_diff == 0, f"{name}: kmeans_predict disagrees with {predict_diff} labels")


def compare_silhouette(cur, name, x, ks):
    """kmeans_elbow's cosine silhouette (every row) against scikit-learn's on the same labels."""
    n = len(x)
    cur.execute("SELECT k, silhouette FROM kmeans_elbow(%s, 'v', %s, %s, metric => 'cosine', "
                "silhouette_sample => %s) ORDER BY k", (name, ks[0], ks[-1], n))
    ours = dict(cur.fetchall())
    worst = 0.0
    for k in ks:
        cur.execute("SELECT cluster FROM kmeans_labels(%s, 'v', %s, id => 'id', metric => 'cosine') "
                    "ORDER BY id", (name, k))
        lab = np.array([r[0] for r in cur.fetchall()])
        ref = silhouette_score(np.asarray(x, dtype=np.float64), lab, metric="cosine")
        worst = max(worst, abs(ours[k] - ref))
    print(f"{name}: cosine silhouette for k = {ks[0]}..{ks[-1]} within {worst:.1e} of scikit-learn's")
    check(worst <= 1e-6, f"{name}: cosine silhouette differs from scikit-learn's by {worst:.2e}")


def main():
    cur = connect("cosine_check")
    digits = load_digits()
    first_of_class = [int(np.argmax(digits.target == c)) for c in range(10)]
    compare(cur, "digits_cos", digits.data, 10, first_of_class)
    compare(cur, "digits_cos30", digits.data, 30, list(range(0, 1800, 60)))

    # embeddings: 20 directions on the sphere in d = 64, rows scattered around them, lengths
    # from 0.5 to 5 (which cosine ignores)
    rng = np.random.default_rng(3)
    dirs = rng.normal(size=(20, 64))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    pick = rng.integers(0, 20, 5000)
    emb = dirs[pick] + 0.35 * rng.normal(size=(5000, 64)) / np.sqrt(64)
    emb *= rng.uniform(0.5, 5.0, size=(5000, 1))
    compare(cur, "embed_cos", emb, 20, sorted(rng.choice(5000, 20, replace=False).tolist()))
    compare(cur, "embed_cos100", emb, 100, list(range(0, 5000, 50)))

    compare_silhouette(cur, "digits_cos", digits.data, [2, 3, 4, 5, 6])

    cur.execute("DELETE FROM kmeans_models WHERE name IN "
                "('digits_cos', 'digits_cos30', 'embed_cos', 'embed_cos100')")
    cur.execute("DROP SCHEMA cosine_check CASCADE")
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
