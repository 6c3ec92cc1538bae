"""anchors: YOLO anchor boxes by 1 - IoU k-means on the PASCAL VOC 2007+2012 trainval boxes
(../shared/data/voc, 40,058 boxes (w, h) in pixels), k = 9: a whole fit from the same starting
boxes, ours (SQL, reading the table included) beside the same IoU k-means written in numpy (the
loop practitioners run, vectorised: an n x k cost matrix per iteration, the means by bincount),
and beside PyTorch on the CPU where it is installed.  Each stops as ours does: no label changed,
or the squared center shift at most tol x the mean per-dimension variance.  The target: ours at
least 20x faster.  Skips where the VOC boxes are absent."""

import os
import time

import numpy as np

from ..data import array_table, initial_rows, real_array_literal, shared_data_dir
from ..report import fmt_table
from ..util import log, median
from . import Workload, register

K = 9


def read_boxes():
    path = os.path.join(shared_data_dir(), "voc", "voc0712_trainval_boxes.tsv")
    if not os.path.exists(path):
        return None, path
    with open(path) as f:
        return np.array([[float(v) for v in line.split("\t")[6:8]] for line in f],
                        dtype=np.float32), path


def iou_kmeans_numpy(x, init, max_iter=300, tol=1e-4):
    """(seconds, iterations, average IoU of each box with its anchor) of IoU k-means in numpy."""
    t0 = time.perf_counter()
    c = init.astype(np.float64).copy()
    x = x.astype(np.float64)
    k = len(c)
    tol_abs = tol * np.var(x, axis=0).mean()
    area = x[:, 0] * x[:, 1]
    prev, it = None, 0
    for it in range(1, max_iter + 1):
        inter = np.minimum(x[:, None, 0], c[None, :, 0]) * np.minimum(x[:, None, 1], c[None, :, 1])
        iou = inter / (area[:, None] + (c[:, 0] * c[:, 1])[None, :] - inter)
        lab = np.argmax(iou, axis=1)
        counts = np.bincount(lab, minlength=k)
        new = c.copy()
        live = counts > 0
        new[live, 0] = np.bincount(lab, weights=x[:, 0], minlength=k)[live] / counts[live]
        new[live, 1] = np.bincount(lab, weights=x[:, 1], minlength=k)[live] / counts[live]
        shift = ((new - c) ** 2).sum()
        changed = prev is None or np.any(lab != prev)
        c, prev = new, lab
        if not changed or shift <= tol_abs:
            break
    inter = np.minimum(x[:, None, 0], c[None, :, 0]) * np.minimum(x[:, None, 1], c[None, :, 1])
    iou = inter / (area[:, None] + (c[:, 0] * c[:, 1])[None, :] - inter)
    return time.perf_counter() - t0, it, float(iou.max(axis=1).mean())


def iou_kmeans_torch(torch, x, init, max_iter=300, tol=1e-4):
    """The same loop in PyTorch (CPU, float64)."""
    t0 = time.perf_counter()
    x = torch.from_numpy(x.astype(np.float64))
    c = torch.from_numpy(init.astype(np.float64)).clone()
    k = len(c)
    tol_abs = tol * float(x.var(dim=0, unbiased=False).mean())
    area = x[:, 0] * x[:, 1]
    prev, it = None, 0
    for it in range(1, max_iter + 1):
        inter = torch.minimum(x[:, None, 0], c[None, :, 0]) * torch.minimum(x[:, None, 1], c[None, :, 1])
        iou = inter / (area[:, None] + (c[:, 0] * c[:, 1])[None, :] - inter)
        lab = iou.argmax(dim=1)
        counts = torch.bincount(lab, minlength=k).to(x.dtype)
        sums = torch.zeros((k, 2), dtype=x.dtype).index_add_(0, lab, x)
        new = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], c)
        shift = float(((new - c) ** 2).sum())
        changed = prev is None or bool((lab != prev).any())
        c, prev = new, lab
        if not changed or shift <= tol_abs:
            break
    inter = torch.minimum(x[:, None, 0], c[None, :, 0]) * torch.minimum(x[:, None, 1], c[None, :, 1])
    iou = inter / (area[:, None] + (c[:, 0] * c[:, 1])[None, :] - inter)
    return time.perf_counter() - t0, it, float(iou.max(dim=1).values.mean())


def run_anchors(bench, w):
    args, db = bench.args, bench.db
    res = {"workload": w.name, "describe": w.describe}
    X, path = read_boxes()
    if X is None:
        res["skipped"] = "%s not found" % path
        log("anchors: skipped: %s" % res["skipped"])
        return res
    table, load_s = array_table(db, "voc", X, args.reload)
    n = len(X)
    init = X[initial_rows(n, K)]
    lit = real_array_literal(init)
    repeats = args.repeats or 5
    res.update({"n": n, "k": K, "repeats": repeats, "load_s": load_s, "engines": {}})

    ours = []
    for _ in range(repeats + 1):    # the first warms the caches, as the peers' first does
        rows, seconds, _ = db.timed("SELECT sum(size), sum(inertia) FROM kmeans_fit(%s, 'v', %s, "
                                    "init_centers => %s::real[], metric => 'iou')", (table, K, lit))
        n_iter = db.scalar("SELECT count(*) FROM kmeans_last_fit() WHERE phase = 'iterate'")
        ours.append((seconds, n_iter, 1.0 - float(rows[0][1]) / n))
    ours = ours[1:]
    res["engines"]["ours"] = {"seconds": median([o[0] for o in ours]), "n_iter": ours[0][1],
                              "avg_iou": ours[0][2]}
    runs = [iou_kmeans_numpy(X, init) for _ in range(repeats)]
    res["engines"]["numpy"] = {"seconds": median([r[0] for r in runs]), "n_iter": runs[0][1],
                               "avg_iou": runs[0][2], "version": np.__version__}
    try:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        tr = [iou_kmeans_torch(torch, X, init) for _ in range(repeats)]
        res["engines"]["torch"] = {"seconds": median([r[0] for r in tr]), "n_iter": tr[0][1],
                                   "avg_iou": tr[0][2], "version": torch.__version__}
    except ImportError:
        res["engines"]["torch"] = {"skipped": "not installed"}
    for name, e in res["engines"].items():
        if "seconds" in e:
            log("anchors: %s %.3f s, %d iterations, average IoU %.4f"
                % (name, e["seconds"], e["n_iter"], e["avg_iou"]))
    return res


def report_anchors(res):
    head = "== anchors: %s" % res["describe"]
    if "skipped" in res:
        return "%s\n  skipped: %s" % (head, res["skipped"])
    E = res["engines"]
    ours = E["ours"]["seconds"]
    rows = []
    for name, label in (("ours", "ours (SQL, reading included)"), ("numpy", "numpy loop"),
                        ("torch", "PyTorch loop (CPU)")):
        e = E[name]
        if "seconds" not in e:
            rows.append([label, e.get("skipped", "-"), "-", "-", "-"])
            continue
        rows.append([label, "%.1f" % (e["seconds"] * 1e3), str(e["n_iter"]),
                     "%.2f %%" % (100 * e["avg_iou"]), "%.1fx" % (e["seconds"] / ours)])
    peer = E["numpy"]["seconds"]
    return "%s\n  n = %d boxes, k = %d, the same %d starting boxes for every engine, tol 1e-4, " \
           "medians of %d runs\n%s\n  target (ours >= 20x faster than the numpy loop): %s (%.1fx)" % (
               head, res["n"], res["k"], res["k"], res["repeats"],
               fmt_table(["engine", "whole fit ms", "iterations", "average IoU", "time / ours"], rows),
               "met" if peer >= 20 * ours else "NOT met", peer / ours)


register(Workload(
    name="anchors",
    describe="YOLO anchors by 1 - IoU on the VOC 2007+2012 trainval boxes (../shared/data/voc), "
             "k = 9, a whole fit",
    k=K, make_data=None, run=run_anchors, report=report_anchors, engines=("ours",)))
