"""Ours: the extension's SQL functions, on the CPU and (--gpu) on the GPU.

Where a fit's time went comes from the engine's own step log, kmeans_last_fit(): one row per
step of the session's last fit (the read of the source, each seeding run, each Lloyd
iteration, each final pass, kmeans_elbow's quality indices), each with its wall-clock seconds
and, for iterate and final, the pass's inertia.  It describes the last fit of the same
connection, so it is read right after the timed call."""

from ..util import median
from .base import Engine, FitRun

STEP_COLUMNS = ("step", "phase", "run", "iteration", "k_running", "seconds", "inertia")
ELBOW_COLUMNS = ("k", "inertia", "mean_inertia", "n_iter", "silhouette", "calinski_harabasz",
                 "davies_bouldin", "elbow")
PHASES = ("read", "seed", "iterate", "final", "quality")
FIT_SQL = ("SELECT count(*), sum(size), sum(inertia) FROM kmeans_fit("
           "source => %s, column_name => 'v', k => %s, max_iter => %s, tol => 0, "
           "init_centers => %s::real[], device => %s, metric => %s)")


def phase_rows(steps, phase, run=None):
    return [s for s in steps if s["phase"] == phase and (run is None or s["run"] == run)]


def phase_seconds(steps):
    """{phase: seconds summed over its steps} of one step log, every phase named."""
    return {p: sum(s["seconds"] for s in phase_rows(steps, p)) for p in PHASES}


class Ours(Engine):
    name, label = "ours", "ours (kmeans)"
    device = "cpu"      # named, so that 'auto' on a GPU machine cannot move this row
    metric = "euclidean"

    def __init__(self, db):
        self.db = db
        super().__init__()

    def version(self):
        return self.db.scalar("SELECT extversion FROM pg_extension WHERE extname = 'kmeans'")

    def last_fit(self):
        """The step log of the connection's last fit, as a list of dicts in step order."""
        return [dict(zip(STEP_COLUMNS, r))
                for r in self.db.execute("SELECT %s FROM kmeans_last_fit() ORDER BY step"
                                         % ", ".join(STEP_COLUMNS))]

    def _timed(self, sql, params):
        """(rows, seconds, cpu seconds, step log, seconds outside the steps) of one call."""
        rows, seconds, cpu = self.db.timed(sql, params)
        steps = self.last_fit()
        return rows, seconds, cpu, steps, seconds - sum(s["seconds"] for s in steps)

    def fit(self, case, max_iter):
        rows, seconds, cpu, steps, outside = self._timed(FIT_SQL, (
            case.table, case.k, max_iter, case.init_literal, self.device, self.metric))
        nclusters, size, inertia = rows[0]
        if nclusters != case.k or int(size) != len(case.X):
            raise RuntimeError("kmeans_fit returned %s clusters of %s rows in all; expected %d and %d"
                               % (nclusters, size, case.k, len(case.X)))
        # explicit centers: one run; its iterate steps carry the pass's inertia before the update
        iterate = phase_rows(steps, "iterate", 1)
        return FitRun(seconds=seconds, n_iter=len(iterate), inertia=float(inertia),
                      iter_inertia=[s["inertia"] for s in iterate], cpu_s=cpu,
                      extra={"steps": steps, "outside_s": outside})

    def summarize(self, entry, runs, lo, hi, res):
        out = {}
        # the same fit must give the same numbers every time
        distinct = {(f.inertia, tuple(f.iter_inertia)) for m in runs for f in runs[m] if f.n_iter == hi}
        out["repeatable"] = len(distinct) <= 1
        # From the step log of each long fit: its median iteration, its read (plus setup:
        # the source query, validating and copying the vectors, the statistics), its final
        # pass, and what the client waited for outside the steps (parsing the call with its
        # init_centers literal, sending the result)
        fits = runs[hi]
        out["step_iter_s"] = median([median([s["seconds"] for s in phase_rows(f.extra["steps"], "iterate", 1)])
                                     for f in fits if f.n_iter])
        out["read_s"] = median([sum(s["seconds"] for s in phase_rows(f.extra["steps"], "read")) for f in fits])
        out["final_s"] = median([sum(s["seconds"] for s in phase_rows(f.extra["steps"], "final")) for f in fits])
        out["outside_s"] = median([f.extra["outside_s"] for f in fits])
        out["read_diff_s"] = (entry["seconds_lo"] - (lo + 1) * entry["per_iter_s"]
                              - res["init_literal_s"])
        return out

    def elbow(self, table, column, kmin, kmax, max_iter, silhouette):
        """One kmeans_elbow call for k = kmin..kmax: its seconds, backend CPU seconds, rows
        and step log.  silhouette None: the function's default sample."""
        sql = "SELECT * FROM kmeans_elbow(%s, %s, %s, %s, max_iter => %s, device => %s"
        params = [table, column, kmin, kmax, max_iter, self.device]
        if silhouette is not None:
            sql += ", silhouette_sample => %s"
            params.append(silhouette)
        rows, seconds, cpu, steps, outside = self._timed(sql + ")", params)
        return {"seconds": seconds, "cpu_s": cpu,
                "rows": [dict(zip(ELBOW_COLUMNS, r)) for r in rows],
                "steps": steps, "phase_s": phase_seconds(steps), "outside_s": outside}


class OursGpu(Ours):
    """The same SQL calls on the GPU backend (--gpu)."""
    name, label = "ours-gpu", "ours (kmeans, GPU)"
    device = "gpu"


class OursCosine(Ours):
    """Ours with metric => 'cosine' (spherical k-means), for the cosine workload."""
    name, label = "ours-cosine", "ours, cosine"
    metric = "cosine"
