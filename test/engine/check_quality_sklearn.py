#!/usr/bin/env python3
"""Compare the cluster-quality kernels (kernels/km_quality.c) with scikit-learn.

Builds kernels/km_quality.c and km_util.c into a shared library under /tmp (km_fail and
the RNG, which the product implements in other files), then, on float32 data, computes the
silhouette (full sample, no sampling), Calinski-Harabasz and Davies-Bouldin scores the way the
engine does and compares them with sklearn.metrics on the float64 version of the same data:
every score must agree within 1e-6 relative.

Data: synthetic blobs from numpy with a fixed seed, and the real seismic profiles
../shared/data/wus_sh_2010_dvs_profiles.tsv (relative to the repository root; first 10 of the
19 dvs values per row) when that file exists.  Labellings come from sklearn's KMeans for
k = 3, 10, 49, plus one uniformly random labelling.

Run from anywhere:  python3 test/engine/check_quality_sklearn.py
Prints "N passed, M failed" last; exits 1 on a failure, 0 with "skipped: ..." when numpy or
scikit-learn cannot be imported.  CC and KM_CFLAGS override the compiler and its flags.
"""

import ctypes
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

REL_TOL = 1e-6
ABS_FLOOR = 1e-12  # for scores that are (nearly) zero



class KmError(ctypes.Structure):
    _fields_ = [
        ("status", ctypes.c_int),
        ("file", ctypes.c_char_p),
        ("line", ctypes.c_int),
        ("message", ctypes.c_char * 256),
    ]


def build_library(root, workdir):
    """Compile km_quality.c with km_util.c (km_fail, random numbers) into a shared library."""
    cc = os.environ.get("CC", "gcc")
    cflags = shlex.split(os.environ.get(
        "KM_CFLAGS",
        "-O3 -march=native -std=gnu11 -Wall -Wextra -Werror -fno-strict-aliasing -fwrapv"))
    lib = workdir / "libkm_quality.so"
    cmd = [cc, *cflags, "-fPIC", "-shared", "-I", str(root / "kernels"),
           str(root / "kernels" / "km_quality.c"), str(root / "kernels" / "km_util.c"),
           "-o", str(lib), "-lm"]
    subprocess.run(cmd, check=True)
    return lib


def load(lib_path):
    """Load the library and declare the functions under test."""
    lib = ctypes.CDLL(str(lib_path))
    P = ctypes.POINTER
    lib.km_quality_scatter.restype = None
    lib.km_quality_scatter.argtypes = [
        P(ctypes.c_float), ctypes.c_int64, ctypes.c_int, P(ctypes.c_int32), ctypes.c_int,
        P(ctypes.c_double), P(ctypes.c_double), P(ctypes.c_double)]
    lib.km_calinski_harabasz.restype = ctypes.c_double
    lib.km_calinski_harabasz.argtypes = [
        ctypes.c_int64, ctypes.c_int, ctypes.c_int, P(ctypes.c_int64), P(ctypes.c_double),
        P(ctypes.c_double)]
    lib.km_davies_bouldin.restype = ctypes.c_double
    lib.km_davies_bouldin.argtypes = [
        ctypes.c_int, ctypes.c_int, P(ctypes.c_int64), P(ctypes.c_double), P(ctypes.c_double)]
    lib.km_silhouette_rows.restype = ctypes.c_int
    lib.km_silhouette_rows.argtypes = [
        P(ctypes.c_float), ctypes.c_int64, ctypes.c_int, ctypes.c_int, P(ctypes.c_int32), ctypes.c_int,
        P(ctypes.c_int), ctypes.c_int64, ctypes.c_int64, P(ctypes.c_double), P(KmError)]
    return lib


def ptr(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def engine_ch_db(np, lib, x32, labels, m, k):
    """CH and DB the engine's way: float64 means, then the scatter pass in batches."""
    n, d = x32.shape
    lab = labels[:, m]
    counts = np.bincount(lab, minlength=k).astype(np.int64)
    sums = np.zeros((k, d))
    np.add.at(sums, lab, x32.astype(np.float64))
    means = np.ascontiguousarray(sums / np.maximum(counts, 1)[:, None])
    sq = np.zeros(k)
    lin = np.zeros(k)
    nlab = labels.shape[1]
    batch = 1000
    for i0 in range(0, n, batch):
        nb = min(batch, n - i0)
        # labels interleaved with stride nlab, as the engine stores one column per k
        lab_ptr = ctypes.cast(labels.ctypes.data + (i0 * nlab + m) * 4,
                              ctypes.POINTER(ctypes.c_int32))
        xb = ctypes.cast(x32.ctypes.data + i0 * d * 4, ctypes.POINTER(ctypes.c_float))
        lib.km_quality_scatter(xb, nb, d, lab_ptr, nlab, ptr(means, ctypes.c_double),
                               ptr(sq, ctypes.c_double), ptr(lin, ctypes.c_double))
    ch = lib.km_calinski_harabasz(n, k, d, ptr(counts, ctypes.c_int64),
                                  ptr(means, ctypes.c_double), ptr(sq, ctypes.c_double))
    db = lib.km_davies_bouldin(k, d, ptr(counts, ctypes.c_int64),
                               ptr(means, ctypes.c_double), ptr(lin, ctypes.c_double))
    return ch, db


def engine_silhouette(np, lib, x32, labels, ks, pieces=3):
    """Silhouette values of every row for every labelling, rows split as threads would."""
    n, d = x32.shape
    nlab = labels.shape[1]
    ks_arr = np.asarray(ks, dtype=np.intc)
    out = np.full((n, nlab), np.nan)
    err = KmError()
    bounds = [n * p // pieces for p in range(pieces + 1)]
    for r0, r1 in zip(bounds[:-1], bounds[1:]):
        st = lib.km_silhouette_rows(ptr(x32, ctypes.c_float), n, d, 0, ptr(labels, ctypes.c_int32),
                                    nlab, ptr(ks_arr, ctypes.c_int), r0, r1,
                                    ptr(out, ctypes.c_double), ctypes.byref(err))
        if st != 0:
            raise RuntimeError(f"km_silhouette_rows failed: {err.message.decode()}")
    return out


def check_close(chk, what, got, want):
    """Counts in chk (a _common.Checks) whether got is within REL_TOL of scikit-learn's want."""
    ok = abs(got - want) <= max(REL_TOL * abs(want), ABS_FLOOR)
    rel = abs(got - want) / abs(want) if want != 0 else abs(got - want)
    if ok:
        print(f"ok: {what}: {got:.12g} vs sklearn {want:.12g} (rel diff {rel:.1e})")
    chk(ok, f"{what}: {got:.17g} vs sklearn {want:.17g} (rel diff {rel:.1e})")


def check_dataset(np, skm, lib, chk, name, x32, ks):
    """Cluster x32 for each k with KMeans (plus a random labelling) and compare all scores."""
    from sklearn.cluster import KMeans

    x64 = x32.astype(np.float64)
    n = x32.shape[0]
    cols = []
    names = []
    for k in ks:
        km = KMeans(n_clusters=k, n_init=1, random_state=0).fit(x64)
        cols.append(km.labels_.astype(np.int32))
        names.append(f"KMeans k={k}")
    rng = np.random.default_rng(7)
    cols.append(rng.integers(0, 5, size=n).astype(np.int32))
    names.append("random k=5")
    kk = list(ks) + [5]
    # an unused label: cluster 1 of the k=10 labelling moved to label k (k+1 clusters, one empty)
    lab_gap = cols[1].copy()
    lab_gap[lab_gap == 1] = kk[1]
    cols.append(lab_gap)
    names.append(f"KMeans k={kk[1]} relabelled into {kk[1] + 1} with one empty")
    kk.append(kk[1] + 1)
    labels = np.ascontiguousarray(np.stack(cols, axis=1))

    t0 = time.perf_counter()
    sil = engine_silhouette(np, lib, x32, labels, kk)
    t_ours = time.perf_counter() - t0
    print(f"{name}: n={n}, d={x32.shape[1]}, {labels.shape[1]} labellings; "
          f"kernel silhouette {t_ours:.2f} s")
    for m, what in enumerate(names):
        lab = labels[:, m]
        ch, db = engine_ch_db(np, lib, x32, labels, m, kk[m])
        check_close(chk, f"{name} {what}: Calinski-Harabasz", ch,
                    skm.calinski_harabasz_score(x64, lab))
        check_close(chk, f"{name} {what}: Davies-Bouldin", db, skm.davies_bouldin_score(x64, lab))
        mean = float(np.add.reduce(sil[:, m]) / n)
        check_close(chk, f"{name} {what}: silhouette", mean, skm.silhouette_score(x64, lab))
        samples = skm.silhouette_samples(x64, lab)
        worst = float(np.max(np.abs(sil[:, m] - samples)))
        chk(worst <= 1e-6, f"{name} {what}: per-row silhouette differs by {worst:.2e}")


def main():
    try:
        import numpy as np
        import sklearn.metrics as skm
        from sklearn.cluster import KMeans  # noqa: F401
    except ImportError as e:
        print(f"skipped: numpy or scikit-learn is not importable ({e})")
        return 0

    root = pathlib.Path(__file__).resolve().parents[2]
    # the reference checks' counting and profiles (test/reference/_common.py)
    sys.path.insert(0, str(root / "test" / "reference"))
    from _common import Checks, read_profiles

    chk = Checks()
    with tempfile.TemporaryDirectory(prefix="km_quality_", dir="/tmp") as tmp:
        lib = load(build_library(root, pathlib.Path(tmp)))

        # synthetic: 8 blobs of different spreads in 10-D, float32, fixed seed
        rng = np.random.default_rng(20240601)
        centers = rng.uniform(-10, 10, size=(8, 10))
        which = rng.integers(0, 8, size=3000)
        spread = rng.uniform(0.3, 2.5, size=8)[which][:, None]
        x = (centers[which] + rng.normal(size=(3000, 10)) * spread).astype(np.float32)
        check_dataset(np, skm, lib, chk, "blobs", np.ascontiguousarray(x), (3, 10, 49))

        # a small awkward one: few rows, many clusters (singletons and tiny clusters)
        x = rng.normal(size=(60, 3)).astype(np.float32)
        check_dataset(np, skm, lib, chk, "small", np.ascontiguousarray(x), (3, 10, 49))

        x = read_profiles(10)
        if x is not None:
            check_dataset(np, skm, lib, chk, "wus_sh_2010 profiles", np.ascontiguousarray(x),
                          (3, 10, 49))

    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
