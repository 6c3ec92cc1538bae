"""cosine: the embed workload's rows scaled to unit length (n x 128, k = 1,024), where ours with
metric => 'cosine' (spherical k-means) should cost what the Euclidean fit costs, beside
scikit-learn's Lloyd on the same unit rows and FAISS's spherical k-means."""

import numpy as np

from ..data import gen_blobs
from . import Workload, register
from .embed import embed_n


def unit_rows(args):
    X = gen_blobs(embed_n(args), 128, 1024, 1)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32)


register(Workload(
    name="cosine",
    describe="the embed rows scaled to unit length (n x 128, 1,024 blobs, seed 1), k = 1,024: "
             "ours Euclidean and cosine, scikit-learn on the unit rows, FAISS spherical",
    k=1024, make_data=unit_rows, iters=(1, 3), repeats=1, repeats_quick=3,
    engines=("ours", "ours-cosine", "sklearn", "faiss-spherical"), gpu_engines=()))
