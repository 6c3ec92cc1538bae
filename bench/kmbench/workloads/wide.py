"""wide: the elbow at d = 100 on synthetic smooth profiles, ours against the sklearn and FAISS
loops (tslearn is left out: at d = 100 it would take most of the run)."""

from ..data import gen_profiles
from ..report import report_elbow
from . import Workload, register
from .elbow import prepare_generated, run_elbow

register(Workload(
    name="wide",
    describe="11,346 x 100 synthetic smooth profiles in 8 families (seed 2), k = 3..49, max_iter 10",
    k=49, make_data=lambda args: gen_profiles(11_346, 100, 8, 2), run=run_elbow,
    report=report_elbow, gpu_engines=(),
    params={"prepare": prepare_generated, "column": "v", "k_range": (3, 49), "max_iter": 10,
            "repeats": 3, "silhouette_repeats": 3, "peer_repeats": 3,
            "peers": ("sklearn", "faiss"), "target_s": 0.5,
            "no_tslearn": True}))
