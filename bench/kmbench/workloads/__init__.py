"""The workloads.  A workload names its data, k, the engines it runs, and the procedure that
measures (run) and the one that reports (report).  Two procedures exist: the per-iteration one
(periter.run, report.report_per_iteration: batch, embed) and the elbow one (elbow.run,
report.report_elbow: seed, wide).  Each workload is a module here that calls register()."""

import argparse
import importlib
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import numpy as np


@dataclass
class Bench:
    """What a workload's run gets: the options, the database and every engine by name."""
    args: argparse.Namespace
    db: object
    engines: Dict[str, object]


@dataclass
class Workload:
    name: str
    describe: str
    k: int
    make_data: Optional[Callable[[argparse.Namespace], np.ndarray]]
    iters: Tuple[int, int] = (1, 21)        # max_iter of the short and the long fit
    repeats: int = 3                        # runs of each fit; the median is used
    repeats_quick: Optional[int] = None     # the same under --quick, when different
    engines: Tuple[str, ...] = ("ours", "sklearn", "faiss")
    gpu_engines: Tuple[str, ...] = ("ours-gpu", "torch")   # added to engines by --gpu
    seqscan: bool = True                    # time a plain scan of the table too
    whole_fit_iters: Optional[int] = None   # --gpu: also time a whole fit of this many iterations
    run: Optional[Callable] = None          # (Bench, Workload) -> result dict
    report: Optional[Callable] = None       # (result dict) -> str
    params: dict = field(default_factory=dict)  # whatever a custom run needs


WORKLOADS: Dict[str, Workload] = {}


def register(w: Workload):
    """Adds w to WORKLOADS, with the per-iteration procedure unless it names its own."""
    from ..report import report_per_iteration
    from .periter import run_per_iteration
    w.run = w.run or run_per_iteration
    w.report = w.report or report_per_iteration
    WORKLOADS[w.name] = w


# each module registers its workload on import, in this order: the default order of --workloads
for _module in ("batch", "embed", "seed", "wide", "pgvector", "cosine", "anchors", "step",
                "groups", "converge", "minibatch", "dtw", "softdtw"):
    importlib.import_module("." + _module, __name__)
