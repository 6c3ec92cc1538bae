"""The engines: ours (the extension, CPU and GPU) and the peers it is measured against.  Each
module holds one engine, a subclass of base.Engine."""

from .base import Case, ElbowFit, Engine, FitRun, mean_sq_distance
from .faiss import Faiss, FaissSpherical
from .ours import Ours, OursCosine, OursGpu
from .sklearn import Sklearn
from .torch import Torch
from .tslearn import Tslearn

__all__ = ["Case", "ElbowFit", "Engine", "FitRun", "mean_sq_distance", "Ours", "OursCosine",
           "OursGpu", "Sklearn", "Faiss", "FaissSpherical", "Tslearn", "Torch", "PEERS",
           "make_engines"]

# the peers by their --peers name; a peer that cannot be imported reports "not installed"
PEERS = {"sklearn": Sklearn, "faiss": Faiss, "faiss-spherical": FaissSpherical,
         "tslearn": Tslearn, "torch": Torch}


def make_engines(db):
    """Every engine by name: ours on the CPU and the GPU, then the peers."""
    engines = {"ours": Ours(db), "ours-cosine": OursCosine(db), "ours-gpu": OursGpu(db)}
    for name, make in PEERS.items():
        engines[name] = make()
    return engines
