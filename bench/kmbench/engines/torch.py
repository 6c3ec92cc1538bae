"""Lloyd in PyTorch on the GPU (--gpu), as users write it: expanded distances by matmul,
argmin, index_add_ for the sums.  The data is copied to the device outside the timing."""

import time

import numpy as np

from .base import Engine, FitRun


class Torch(Engine):
    name, label = "torch", "PyTorch (GPU)"

    def setup(self):
        self._X = None
        import torch
        self.torch = torch
        if not torch.cuda.is_available():
            self.error = "no CUDA device"

    def version(self):
        return self.torch.__version__

    def fit(self, case, max_iter):
        torch = self.torch
        if self._X is None or self._X[0] is not case.X:
            self._X = (case.X, torch.from_numpy(case.X).cuda())
        X = self._X[1]
        k = case.k
        xx = (X * X).sum(1, keepdim=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        C = torch.from_numpy(np.ascontiguousarray(case.init, dtype=np.float32)).cuda()
        n_iter = 0
        for _ in range(max_iter):
            d2 = xx - 2.0 * (X @ C.T) + (C * C).sum(1)
            lab = d2.argmin(1)
            sums = torch.zeros_like(C).index_add_(0, lab, X)
            cnt = torch.bincount(lab, minlength=k).unsqueeze(1)
            C = torch.where(cnt > 0, sums / cnt.clamp(min=1), C)
            n_iter += 1
        d2 = (xx - 2.0 * (X @ C.T) + (C * C).sum(1)).clamp(min=0)
        inertia = float(d2.min(1).values.double().sum())
        torch.cuda.synchronize()
        return FitRun(seconds=time.perf_counter() - t0, n_iter=n_iter, inertia=inertia, cpu_s=None)
