"""scikit-learn's KMeans (Lloyd, float32 in, threads at its default: all cores)."""

from ..util import timed
from .base import ElbowFit, Engine, FitRun, mean_sq_distance


class Sklearn(Engine):
    name, label = "sklearn", "scikit-learn"
    warm_up_rows = 20_000

    def setup(self):
        import sklearn
        from sklearn.cluster import KMeans
        self.mod, self.KMeans = sklearn, KMeans

    def version(self):
        return self.mod.__version__

    def fit(self, case, max_iter):
        km = self.KMeans(n_clusters=case.k, init=case.init, n_init=1, max_iter=max_iter,
                         tol=0.0, algorithm="lloyd", random_state=0)
        _, t, c = timed(km.fit, case.X)
        return FitRun(seconds=t, n_iter=int(km.n_iter_), inertia=float(km.inertia_), cpu_s=c)

    def elbow_fit(self, X, k, max_iter, check=True):
        """As a user runs it: k-means++ (sklearn's greedy variant), n_init 1, tol 1e-4."""
        km = self.KMeans(n_clusters=k, max_iter=max_iter, n_init=1, random_state=0)
        _, t, c = timed(km.fit, X)
        # inertia_ is the final assignment to the final centers
        own = float(km.inertia_) / len(X)
        return ElbowFit(seconds=t, cpu_s=c, n_iter=int(km.n_iter_), mean_inertia=own, own=own,
                        check=mean_sq_distance(X, km.cluster_centers_) if check else None)
