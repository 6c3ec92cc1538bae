"""FAISS's Kmeans (CPU), with subsampling switched off so that it clusters every row."""

import numpy as np

from ..util import median, timed
from .base import ElbowFit, Engine, FitRun, mean_sq_distance


class Faiss(Engine):
    name, label = "faiss", "FAISS"
    warm_up_rows = 20_000

    def setup(self):
        import faiss
        self.faiss = faiss

    def version(self):
        return getattr(self.faiss, "__version__", "?")

    spherical = False

    def kmeans(self, d, k, max_iter):
        """faiss.Kmeans with every row used: by default FAISS trains on at most 256 rows per
        centroid (at k = 3 on 768 rows), so the engines would not cluster the same rows."""
        return self.faiss.Kmeans(d, k, niter=max_iter, seed=1234, spherical=self.spherical,
                                 min_points_per_centroid=1, max_points_per_centroid=10 ** 9,
                                 verbose=False)

    def fit(self, case, max_iter):
        km = self.kmeans(case.X.shape[1], case.k, max_iter)
        _, t, c = timed(km.train, case.X, init_centroids=case.init)
        stats = km.iteration_stats
        # FAISS's obj[i] is the objective of the assignment in iteration i+1, before its update
        return FitRun(seconds=t, n_iter=len(stats), inertia=float("nan"), cpu_s=c,
                      iter_inertia=[float(s["obj"]) for s in stats],
                      extra={"stats_time_s": [float(s["time"]) for s in stats]})

    def summarize(self, entry, runs, lo, hi, res):
        # FAISS's own timer of each iteration (cumulative in iteration_stats)
        st = [np.diff([0.0] + f.extra["stats_time_s"]) for f in runs[hi]]
        return {"stats_iter_s": median([x for s in st for x in s[1:]])}

    def elbow_fit(self, X, k, max_iter, check=True):
        """faiss.Kmeans(d, k, niter, seed): random rows as the start, subsampling off."""
        n, d = X.shape
        km = self.kmeans(d, k, max_iter)
        _, t, c = timed(km.train, X)
        # FAISS's obj is the objective of each iteration's assignment, before its update; the
        # inertia of the final centers comes from a search of the data against them
        index = self.faiss.IndexFlatL2(d)
        index.add(np.ascontiguousarray(km.centroids, dtype=np.float32))
        D, _ = index.search(X, 1)
        stats = km.iteration_stats
        return ElbowFit(seconds=t, cpu_s=c, n_iter=len(stats),
                        mean_inertia=float(D.astype(np.float64).sum()) / n,
                        own=float(stats[-1]["obj"]) / n if stats else None,
                        check=mean_sq_distance(X, km.centroids) if check else None)


class FaissSpherical(Faiss):
    """FAISS's spherical k-means (centroids normalised after each update), for the cosine
    workload."""
    name, label = "faiss-spherical", "FAISS spherical"
    spherical = True
