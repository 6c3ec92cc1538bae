"""tslearn's TimeSeriesKMeans with the euclidean metric: the seed workload's reference (not
used by batch/embed: far too slow at 10^6 rows)."""

import warnings

import numpy as np

from ..util import timed
from .base import ElbowFit, Engine, FitRun, mean_sq_distance


class Tslearn(Engine):
    name, label = "tslearn", "tslearn"
    once = True

    def setup(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # h5py is optional for tslearn
            import tslearn
            from tslearn.clustering import TimeSeriesKMeans
        self.mod, self.TSK = tslearn, TimeSeriesKMeans

    def version(self):
        return self.mod.__version__

    def fit(self, case, max_iter):
        n, d = case.X.shape
        km = self.TSK(n_clusters=case.k, metric="euclidean", max_iter=max_iter, tol=0.0,
                      n_init=1, init=case.init.reshape(case.k, d, 1), random_state=0)
        _, t, c = timed(km.fit, case.X.reshape(n, d, 1))
        # tslearn's inertia_ is the mean squared distance of the last assignment, made before
        # the last update: like FAISS's last objective
        return FitRun(seconds=t, n_iter=int(km.n_iter_), inertia=float("nan"), cpu_s=c,
                      iter_inertia=[float(km.inertia_) * n])

    def elbow_fit(self, X, k, max_iter, check=True):
        """As the seed user runs it: TimeSeriesKMeans(n_clusters=k, metric="euclidean",
        max_iter, random_state=0) on X as (n, d, 1); defaults otherwise (k-means++, n_init 1,
        tol 1e-6; an empty cluster restarts the fit, up to 10 attempts)."""
        n, d = X.shape
        km = self.TSK(n_clusters=k, metric="euclidean", max_iter=max_iter, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, t, c = timed(km.fit, X.reshape(n, d, 1))
        if km.cluster_centers_ is None or not np.isfinite(km.inertia_):
            return ElbowFit(seconds=t, cpu_s=c, n_iter=int(km.n_iter_), mean_inertia=float("nan"))
        # inertia_ is already a mean per series, but of the last assignment made before the
        # last update; the comparable figure is that of the final centers
        m = mean_sq_distance(X, km.cluster_centers_.reshape(k, d))
        return ElbowFit(seconds=t, cpu_s=c, n_iter=int(km.n_iter_), mean_inertia=m,
                        own=float(km.inertia_), check=m)
