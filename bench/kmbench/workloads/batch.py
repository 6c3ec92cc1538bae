"""batch: 10^6 low-dimensional rows, many centers: the cost of one Lloyd iteration."""

from ..data import gen_uniform
from . import Workload, register

register(Workload(
    name="batch",
    describe="10^6 x 4 uniform [0,1) float32 (seed 0), k = 200",
    k=200,
    make_data=lambda args: gen_uniform(1_000_000, 4, 0),
    iters=(1, 21), repeats=3, whole_fit_iters=200))
