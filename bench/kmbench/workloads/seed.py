"""seed: the seed user's elbow on the real seismic profiles (../shared/data), ours against a
loop over k with scikit-learn, FAISS and tslearn (as the seed user runs it)."""

from ..data import seed_table
from ..report import report_elbow
from . import Workload, register
from .elbow import run_elbow


def prepare(bench, w):
    return seed_table(bench.db, w.name, w.params["column"], w.params["dims"], bench.args.reload)


register(Workload(
    name="seed",
    describe="the seed elbow: wUS-SH-2010 dvs profiles (../shared/data), dvs[1:10] = 11,346 x 10, "
             "k = 3..49, max_iter 10",
    k=49, make_data=None, run=run_elbow, report=report_elbow, gpu_engines=(),
    params={"prepare": prepare, "column": "dvs[1:10]", "dims": 10, "k_range": (3, 49),
            "max_iter": 10, "repeats": 5, "silhouette_repeats": 5, "peer_repeats": 3,
            "peers": ("sklearn", "faiss", "tslearn"), "target_s": 0.15,
            "gpu_target_s": 0.020,
            # the seed user's published elbow (tslearn, mean inertia per profile)
            "reference": {3: 13.9, 10: 7.0, 49: 2.75}}))
