"""What every engine shares: the case a fit works on, what a fit returns, and the Engine base
class that imports an engine's package once and says why it cannot run when it cannot."""

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np


@dataclass
class Case:
    """What one fit works on: the data (for peers), its table (for ours), k and the start."""
    name: str
    X: np.ndarray
    table: Optional[str]
    k: int
    init_rows: np.ndarray
    init: np.ndarray            # k x d float32: X[init_rows]
    init_literal: Optional[str]

    def prefix(self, rows, k):
        """The first `rows` rows and k centers: a small case for warming up a peer."""
        X = self.X[:rows]
        return Case(self.name, X, None, k, np.arange(k), X[:k], None)


@dataclass
class FitRun:
    seconds: float
    n_iter: int
    inertia: float                              # after the last update (final assignment)
    iter_inertia: List[float] = field(default_factory=list)   # per iteration, before update
    cpu_s: Optional[float] = None                             # CPU seconds the engine used
    extra: dict = field(default_factory=dict)


@dataclass
class ElbowFit:
    """One fit of a loop over k (the elbow workloads): the engine's own defaults and seeding."""
    seconds: float
    cpu_s: Optional[float]
    n_iter: int
    mean_inertia: float         # sum of squared distances to the final centers / n
    own: Optional[float] = None     # the engine's own figure, as mean per row (see each peer)
    check: Optional[float] = None   # mean_inertia recomputed in float64 from the centers


def mean_sq_distance(X, C):
    """Mean over the rows of X of the squared distance to the nearest row of C, in float64
    (|x|^2 - 2 x.c + |c|^2: in float64 the cancellation costs about 1e-13 of |x|^2)."""
    X = np.asarray(X, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    d2 = (X * X).sum(axis=1)[:, None] - 2.0 * (X @ C.T) + (C * C).sum(axis=1)[None, :]
    return float(np.maximum(d2.min(axis=1), 0.0).sum()) / len(X)


class Engine:
    """One engine.  fit(case, max_iter) runs Lloyd from case.init for max_iter iterations
    (tol 0) and returns a FitRun; elbow_fit(X, k, max_iter) is a fit with the engine's own
    defaults and seeding (the elbow workloads).  A subclass imports its package in setup();
    an ImportError there leaves the engine with error "not installed (...)", and the bench
    reports that instead of running it."""
    name = "?"
    label = "?"
    warm_up_rows = None     # warm up on this many rows (k = 8, 2 iterations); None: fit(case, 1)
    once = False            # elbow: too slow to repeat or to warm up; runs last, once

    def __init__(self):
        self.error = None           # why it cannot run, or None
        try:
            self.setup()
        except ImportError as e:
            self.error = "not installed (%s)" % e

    def setup(self):
        pass

    def version(self):
        return None

    def fit(self, case: Case, max_iter: int) -> FitRun:
        raise NotImplementedError

    def warm_up(self, case: Case):
        """A fit before the timed ones: imports, thread pools, caches, the device."""
        if self.warm_up_rows:
            self.fit(case.prefix(self.warm_up_rows, 8), 2)
        else:
            self.fit(case, 1)

    def summarize(self, entry, runs, lo, hi, res):
        """Engine-specific figures of a per-iteration workload, from its runs ({max_iter:
        [FitRun]}) and the entry computed so far: a dict merged into the entry."""
        return {}

    def elbow_fit(self, X, k, max_iter, check=True) -> ElbowFit:
        raise NotImplementedError
