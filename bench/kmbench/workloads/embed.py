"""embed: embeddings-like data (d = 128, k = 1,024), where the distance product dominates."""

from ..data import gen_blobs
from . import Workload, register


def embed_n(args):
    return 200_000 if args.quick else 1_000_000


register(Workload(
    name="embed",
    describe="n x 128 float32: 1,024 gaussian blobs + 5% uniform noise (seed 1), k = 1,024",
    k=1024,
    make_data=lambda args: gen_blobs(embed_n(args), 128, 1024, 1),
    iters=(1, 3), repeats=1, repeats_quick=3))
