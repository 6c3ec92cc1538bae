#!/usr/bin/env python3
"""metric => 'iou': anchor boxes on PASCAL VOC, against YOLOv2's figures and an independent numpy
implementation of the same k-means.

1. Independent reference: from the same starting boxes, a float64 numpy Lloyd loop with the
   distance 1 - IoU of boxes at a common corner, the mean as the update, an empty cluster
   relocated as the README documents, and scikit-learn's stopping rule; its anchors sorted by
   area.  Labels equal, anchors within 1e-4 relative, inertia (the sum of 1 - IoU) within 1e-5
   relative, the same iterations; also with center => 'median' (numpy's median per dimension).  On the VOC boxes when present, else on generated boxes.
2. VOC 2007+2012 trainval boxes (../shared/data/voc, 40,058 boxes; skipped with a message where
   absent): k-means++ anchors for k = 5 and 9; the average over every box of its best IoU with
   an anchor at least YOLOv2's clustering figures (61.0 % and 67.2 %, Redmon & Farhadi 2017)
   minus half a point, and 1 - inertia / n equal to that average (each box's own anchor is its
   best).  Prints the anchors.

Prints "N passed, M failed"; skips cleanly, exit 0, when numpy or psycopg2 is missing.
"""
import os
import sys

try:
    import numpy as np
    import psycopg2  # noqa: F401  (for _common.connect; checked here to skip cleanly)
except ImportError as e:  # the reference is optional on a developer's machine
    print(f"skipped: reference not installed ({e})")
    sys.exit(0)

from _common import HERE, Checks, connect, load_table, pg_array, relocate_empty  # noqa: E402

VOC = os.path.join(HERE, "..", "..", "..", "shared", "data", "voc", "voc0712_trainval_boxes.tsv")
check = Checks()


def iou_cost(x, c):
    """1 - IoU of every box of x (n x 2) with every box of c (k x 2), float64, n x k."""
    inter = np.minimum(x[:, None, 0], c[None, :, 0]) * np.minimum(x[:, None, 1], c[None, :, 1])
    union = (x[:, 0] * x[:, 1])[:, None] + (c[:, 0] * c[:, 1])[None, :] - inter
    return 1.0 - inter / union


def iou_kmeans(x, init, max_iter=300, tol=1e-4, median=False):
    """(labels, anchors sorted by area, inertia, n_iter) of IoU k-means in float64, each anchor
    the mean of its boxes or (median) their per-dimension median, as numpy's median takes it."""
    c = init.copy()
    k = len(c)
    tol_abs = tol * np.var(x, axis=0).mean()
    prev, n_iter = None, 0
    for it in range(1, max_iter + 1):
        cost = iou_cost(x, c)
        lab = np.argmin(cost, axis=1)
        changed = prev is None or np.any(lab != prev)
        means_of = relocate_empty(cost, lab, k)
        new = np.array([x[means_of == j].mean(axis=0) if np.any(means_of == j) else c[j]
                        for j in range(k)])
        if median:
            # the extension takes the medians of the pass's own labels; a cluster the repair
            # filled keeps the relocated box (the mean of its one box)
            new = np.array([np.median(x[lab == j], axis=0) if np.any(lab == j) else new[j]
                            for j in range(k)])
        shift = ((new - c) ** 2).sum()
        c, prev, n_iter = new, lab, it
        if not changed or shift <= tol_abs:
            break
    order = np.lexsort((np.arange(k), c[:, 0] * c[:, 1]))
    c = c[order]
    cost = iou_cost(x, c)
    lab = np.argmin(cost, axis=1)
    return lab, c, cost[np.arange(len(x)), lab].sum(), n_iter


def read_voc():
    if not os.path.exists(VOC):
        print(f"skipped the VOC boxes: {VOC} not found")
        return None
    with open(VOC) as f:
        return np.array([[float(v) for v in line.split("\t")[6:8]] for line in f], dtype=np.float32)


def compare_reference(cur, name, boxes, k, start_rows, center="mean"):
    init = boxes[start_rows]
    cur.execute("SELECT cluster, center, inertia FROM kmeans_fit(%s, 'v', %s, "
                "init_centers => %s::real[], metric => 'iou', center => %s, model => %s) "
                "ORDER BY cluster", (name, k, pg_array(init), center, name))
    fit = cur.fetchall()
    anchors = np.array([r[1] for r in fit], dtype=np.float64)
    inertia = sum(r[2] for r in fit)
    cur.execute("SELECT n_iter FROM kmeans_models WHERE name = %s", (name,))
    n_iter = cur.fetchone()[0]
    cur.execute("SELECT id, cluster FROM kmeans_labels(%s, 'v', %s, id => 'id', "
                "init_centers => %s::real[], metric => 'iou', center => %s) ORDER BY id",
                (name, k, pg_array(init), center))
    labels = np.array([r[1] for r in cur.fetchall()])
    rl, rc, ri, rn = iou_kmeans(boxes.astype(np.float64), init.astype(np.float64),
                                median=center == "median")
    name = "%s (%s)" % (name, center)
    diff = int(np.sum(labels != rl))
    crel = (np.abs(anchors - rc) / rc).max()
    irel = abs(inertia - ri) / ri
    print(f"{name}: n={len(boxes)} k={k}: labels differing {diff}, anchors within {crel:.1e}, "
          f"inertia {inertia:.6f} vs {ri:.6f} (rel {irel:.1e}), iterations {n_iter} vs {rn}")
    check(diff == 0, f"{name}: {diff} labels differ from the reference")
    check(crel <= 1e-4, f"{name}: anchors differ by {crel:.2e} relative")
    check(irel <= 1e-5, f"{name}: inertia differs by {irel:.2e} relative")
    check(n_iter == rn, f"{name}: {n_iter} iterations vs {rn}")


def anchors_on_voc(cur, boxes, k, yolo, center="mean"):
    cur.execute("SELECT cluster, center, size, inertia FROM kmeans_fit('voc', 'v', %s, "
                "metric => 'iou', center => %s) ORDER BY cluster", (k, center))
    fit = cur.fetchall()
    anchors = np.array([r[1] for r in fit], dtype=np.float64)
    inertia = sum(r[3] for r in fit)
    best = 1.0 - iou_cost(boxes.astype(np.float64), anchors).min(axis=1)
    avg = best.mean()
    areas = anchors[:, 0] * anchors[:, 1]
    print(f"VOC k={k}, {center}s: average best IoU {100 * avg:.2f} % (YOLOv2: {yolo:.1f} %), 1 - inertia/n "
          f"{100 * (1 - inertia / len(boxes)):.2f} %; anchors (w x h px): "
          + ", ".join(f"{w:.0f}x{h:.0f}" for w, h in anchors))
    check(avg >= (yolo - 0.5) / 100, f"VOC k={k}: average IoU {100 * avg:.2f} % below {yolo - 0.5} %")
    check(abs((1 - inertia / len(boxes)) - avg) <= 1e-6,
          f"VOC k={k}: 1 - inertia/n is not the average best IoU")
    check(bool(np.all(np.diff(areas) >= 0)), f"VOC k={k}: anchors not numbered by area")


def main():
    cur = connect("iou_check")
    voc = read_voc()
    if voc is None:
        rng = np.random.default_rng(5)
        gen = np.exp(rng.normal(4.0, 0.8, size=(5000, 2))).astype(np.float32)
        load_table(cur, "gen_boxes", gen)
        compare_reference(cur, "gen_boxes", gen, 9, list(range(0, 5000, 556)))
        compare_reference(cur, "gen_boxes", gen, 9, list(range(0, 5000, 556)), "median")
    else:
        load_table(cur, "voc", voc)
        rows = sorted(np.random.default_rng(2).choice(len(voc), 9, replace=False).tolist())
        compare_reference(cur, "voc", voc, 9, rows)
        compare_reference(cur, "voc", voc, 9, rows, "median")
        anchors_on_voc(cur, voc, 5, 61.0)
        anchors_on_voc(cur, voc, 9, 67.2)
        anchors_on_voc(cur, voc, 9, 67.2, "median")
    cur.execute("DELETE FROM kmeans_models WHERE name IN ('voc', 'gen_boxes')")
    cur.execute("DROP SCHEMA iou_check CASCADE")
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
