#!/usr/bin/env python3
"""algorithm => 'minibatch' against scikit-learn's MiniBatchKMeans, same batch size and epochs.

Both start from the same k-means++ centers (sklearn.cluster.kmeans_plusplus, passed to ours as
init_centers and to scikit-learn as init), with tol 0 and scikit-learn's early stop after 10
steps without a better smoothed inertia, which ours applies too.  Mini-batch is stochastic in
both (scikit-learn draws each batch with replacement, ours deals each window of rows into
batches), so each side runs five seeds and the medians of the final inertia (one full pass
over every row, in both) are compared: ours must be within 2 % of scikit-learn's, or lower.
Data: the 8x8 digits (k = 10, batch 256, 20 epochs) and 10^5 blobs in 8 dimensions (k = 20,
batch 1,024, 10 epochs).  Prints "N passed, M failed"; skips cleanly without scikit-learn.
"""
import statistics
import sys
import warnings

try:
    import numpy as np
    import psycopg2  # noqa: F401
    from sklearn.cluster import MiniBatchKMeans, kmeans_plusplus
    from sklearn.datasets import load_digits, make_blobs
except ImportError as e:
    print(f"skipped: reference not installed ({e})")
    sys.exit(0)

from _common import Checks, connect, load_table, pg_array  # noqa: E402

check = Checks()


def case(cur, name, x, k, batch, epochs):
    x = np.asarray(x, dtype=np.float32)
    start, _ = kmeans_plusplus(x.astype(np.float64), k, random_state=0)
    start = start.astype(np.float32)
    load_table(cur, name, x)
    ours = []
    for seed in range(5):
        cur.execute("SELECT sum(inertia) FROM kmeans_fit(%s, 'v', %s, init_centers => %s::real[], "
                    "algorithm => 'minibatch', batch_size => %s, max_iter => %s, seed => %s)",
                    (name, k, pg_array(start), batch, epochs, seed))
        ours.append(cur.fetchone()[0])
    theirs = []
    for seed in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = MiniBatchKMeans(n_clusters=k, init=start, n_init=1, batch_size=batch,
                                max_iter=epochs, tol=0.0, max_no_improvement=10,
                                random_state=seed).fit(x)
        theirs.append(float(m.inertia_))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"{name}: n = {len(x)}, k = {k}, batch {batch}, {epochs} epochs: median inertia ours {a:.6g} "
          f"(range {min(ours):.6g}..{max(ours):.6g}), scikit-learn {b:.6g} "
          f"(range {min(theirs):.6g}..{max(theirs):.6g}): {100 * (a / b - 1):+.2f} %")
    check(a <= 1.02 * b, f"{name}: ours {a} within 2 % of scikit-learn's {b}")


def main():
    cur = connect("check_minibatch")
    digits = load_digits().data
    case(cur, "digits", digits, 10, 256, 20)
    blobs, _ = make_blobs(n_samples=100000, n_features=8, centers=20, cluster_std=1.5, random_state=0)
    case(cur, "blobs", blobs, 20, 1024, 10)
    cur.execute("DROP SCHEMA check_minibatch CASCADE")
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
