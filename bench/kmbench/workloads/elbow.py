"""The elbow procedure (seed, wide): one kmeans_elbow call for every k of a range against a
loop over k with each peer, every engine with its own seeding (k-means++ for ours, sklearn and
tslearn, random rows for FAISS).  The times are end to end; the inertias are compared per k as
the mean squared distance per row (tslearn's definition of inertia)."""

import numpy as np

from ..data import DataMissing, array_table
from ..engines.ours import PHASES
from ..util import loadavg, log, median, usable_cores

QUICK_TSLEARN_KS = (3, 10, 20, 49)


def prepare_generated(bench, w):
    """A generated elbow data set: (X, table, load seconds)."""
    X = w.make_data(bench.args)
    table, load_s = array_table(bench.db, w.name, X, bench.args.reload)
    return X, table, load_s


def parse_ks(spec, full):
    """'all', 'a-b' or 'a,b,c' (mixable: '3-9,20'), within the full range."""
    if spec is None or spec.strip() == "all":
        return list(full)
    ks = set()
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            ks.update(range(int(a), int(b) + 1))
        elif part:
            ks.add(int(part))
    bad = sorted(k for k in ks if k not in full)
    if bad:
        raise SystemExit("--tslearn-ks: %s outside the range %d..%d" % (bad, full[0], full[-1]))
    return sorted(ks)


def check_ours(runs_plain, runs_sil, ks, n, max_iter):
    """What looks wrong in kmeans_elbow's results: a list of sentences."""
    issues = []
    if not runs_plain:
        return issues
    rows = runs_plain[0]["rows"]
    got = [r["k"] for r in rows]
    if got != list(ks):
        issues.append("kmeans_elbow returned k = %s, expected %d..%d in order"
                      % (got, ks[0], ks[-1]))
    for r in rows:
        if r["inertia"] is None or not np.isfinite(r["inertia"]) or r["inertia"] < 0:
            issues.append("k = %s: inertia %r" % (r["k"], r["inertia"]))
            continue
        if r["mean_inertia"] is None or abs(r["mean_inertia"] * n - r["inertia"]) > 1e-9 * r["inertia"]:
            issues.append("k = %s: mean_inertia %r is not inertia / n = %r"
                          % (r["k"], r["mean_inertia"], r["inertia"] / n))
        if r["n_iter"] is None or not 1 <= r["n_iter"] <= max_iter:
            issues.append("k = %s: n_iter %r outside 1..%d" % (r["k"], r["n_iter"], max_iter))
        if r["silhouette"] is not None:
            issues.append("k = %s: silhouette %r although silhouette_sample => 0"
                          % (r["k"], r["silhouette"]))
    ups = [(a["k"], b["k"], b["inertia"] / a["inertia"] - 1) for a, b in zip(rows, rows[1:])
           if a["inertia"] and b["inertia"] is not None and b["inertia"] > a["inertia"]]
    if ups:
        issues.append("inertia rises with k at %d step(s) (possible with independent seedings, "
                      "but worth a look): %s" % (len(ups), ", ".join(
                          "%d->%d %+.2f%%" % (a, b, 100 * x) for a, b, x in ups[:6])))
    elbows = [r["k"] for r in rows if r["elbow"]]
    if len(elbows) != 1:
        issues.append("elbow is true for %d rows (k = %s), expected exactly one" % (len(elbows), elbows))

    def sig(run):
        return tuple((r["k"], r["inertia"], r["n_iter"]) for r in run["rows"])

    if len({sig(x) for x in runs_plain}) > 1:
        issues.append("repeated identical calls gave different inertias / iteration counts")
    if runs_sil:
        if len({sig(x) for x in runs_sil}) > 1:
            issues.append("repeated calls with the default silhouette gave different inertias")
        if sig(runs_sil[0]) != sig(runs_plain[0]):
            diff = [(a["k"], a["inertia"], b["inertia"]) for a, b in
                    zip(runs_plain[0]["rows"], runs_sil[0]["rows"]) if a["inertia"] != b["inertia"]]
            issues.append("silhouette_sample changed the clustering itself at %d k: %s"
                          % (len(diff), diff[:3]))
        for r in runs_sil[0]["rows"]:
            s_ = r["silhouette"]
            if s_ is None or not -1 <= s_ <= 1:
                issues.append("k = %s: silhouette %r with the default sample" % (r["k"], s_))
                break
            for q in ("calinski_harabasz", "davies_bouldin"):
                if r[q] is None or not np.isfinite(r[q]) or r[q] < 0:
                    issues.append("k = %s: %s %r" % (r["k"], q, r[q]))
    return issues


def summarize(runs, per_k, cores):
    """The entry of one engine: times over its runs ({seconds, cpu_s[, phase_s, outside_s]}
    each), and per_k, its figures per k."""
    tot = [x["seconds"] for x in runs]
    cpu = [x["cpu_s"] for x in runs if x["cpu_s"] is not None]
    e = {"runs": len(runs), "seconds": median(tot), "seconds_min": min(tot), "all_seconds": tot,
         "cpu_s": median(cpu) if cpu else None,
         "cpu_share": median([x["cpu_s"] / (x["seconds"] * cores) for x in runs
                              if x["cpu_s"] is not None]) if cpu else None}
    if runs and "phase_s" in runs[0]:
        # ours: where the time went, from the step log of each call (median over the calls)
        e["phase_s"] = {p: median([x["phase_s"][p] for x in runs]) for p in PHASES}
        e["phase_steps"] = {p: sum(s["phase"] == p for s in runs[0]["steps"]) for p in PHASES}
        e["outside_s"] = median([x["outside_s"] for x in runs])
        e["steps"] = [x["steps"] for x in runs]
    e.update(per_k)
    return e


def ours_per_k(rows):
    return {"ks": [r["k"] for r in rows], "mean_inertia": [r["mean_inertia"] for r in rows],
            "n_iter": [r["n_iter"] for r in rows], "rows": rows}


def run_slow_peer(bench, eng, X, ks, max_iter, cores, entry, name):
    """The once-only peer (tslearn): at the k --tslearn-ks (or --quick) names, its loop time
    extrapolated to the whole range when that is a subset."""
    args = bench.args
    spec = args.tslearn_ks
    if spec is None and args.quick:
        spec = ",".join(str(k) for k in QUICK_TSLEARN_KS if k in ks)
    tks = parse_ks(spec, ks)
    fits = []
    try:
        for k in tks:
            f = eng.elbow_fit(X, k, max_iter)
            fits.append(f)
            log("%s: %s k = %d: %.2f s, %d iterations" % (name, eng.name, k, f.seconds, f.n_iter))
    except Exception as e:
        log("%s: %s failed: %s" % (name, eng.name, e))
        entry["error"] = "error: %s" % e
    if fits:
        secs = [f.seconds for f in fits]
        cpus = [f.cpu_s for f in fits]
        full = len(fits) == len(ks)
        scale = 1.0 if full else len(ks) / len(fits)
        by_k = {k: f for k, f in zip(tks, fits)}
        entry.update({
            "runs": 1, "ks_run": tks[:len(fits)], "extrapolated": not full,
            "seconds": sum(secs) * scale, "seconds_min": None, "measured_s": sum(secs),
            "cpu_s": sum(cpus) * scale,
            "cpu_share": sum(cpus) / (sum(secs) * cores),
            "ks": ks,
            "mean_inertia": [by_k[k].mean_inertia if k in by_k else None for k in ks],
            "own": [by_k[k].own if k in by_k else None for k in ks],
            "n_iter": [by_k[k].n_iter if k in by_k else None for k in ks],
            "seconds_per_k": [by_k[k].seconds if k in by_k else None for k in ks]})


def run_elbow(bench, w):
    args, P, db = bench.args, w.params, bench.db
    ours, gpu = bench.engines["ours"], bench.engines["ours-gpu"]
    kmin, kmax = P["k_range"]
    ks = list(range(kmin, kmax + 1))
    max_iter = P["max_iter"]
    res = {"workload": w.name, "describe": w.describe, "ks": [kmin, kmax], "max_iter": max_iter,
           "target_s": P.get("target_s"), "gpu_target_s": P.get("gpu_target_s"),
           "reference": sorted(P.get("reference", {}).items()), "engines": {}}
    if P.get("no_tslearn"):
        res["no_tslearn"] = ("tslearn is not run on this workload, to keep the run short: it "
                             "is the slowest engine on seed, and its time per k grows with d "
                             "(scipy cdist in float64 and a Python loop over the clusters)")
    try:
        X, table, load_s = P["prepare"](bench, w)
    except DataMissing as e:
        log("%s: skipped: %s" % (w.name, e))
        res["skipped"] = str(e)
        return res
    db.ensure_function("kmeans_elbow")
    n, d = X.shape
    cores = usable_cores()
    col = P["column"]
    res.update({"n": n, "d": d, "table": table, "column": col, "load_s": load_s,
                "cores": cores, "loadavg_start": loadavg()})
    log("%s: seq scan x5" % w.name)
    res["seqscan_s"] = db.seqscan(table, 5, col)

    R_ours = args.repeats or P["repeats"]
    R_sil = args.repeats or P.get("silhouette_repeats", 0)
    R_peer = args.repeats or P["peer_repeats"]

    # warm-up: loads the library and the table into the backend / OS cache
    log("%s: ours warm-up" % w.name)
    ours.elbow(table, col, kmin, kmax, max_iter, 0)
    gpu_runs = []
    if args.gpu:
        try:
            gpu.elbow(table, col, kmin, kmax, max_iter, 0)      # starts CUDA
        except Exception as e:
            log("%s: ours on the GPU failed: %s" % (w.name, e))
            res["engines"]["ours-gpu"] = {"error": "error: %s" % e}
    active = []
    for name in P["peers"]:
        eng = bench.engines[name]
        if args.peers is not None and name not in args.peers:
            res["engines"][name] = {"skipped": "not selected"}
        elif eng.error:
            res["engines"][name] = {"error": eng.error}
        else:
            res["engines"][name] = {"version": eng.version()}
            if not eng.once:
                try:
                    eng.elbow_fit(X, kmin, 2)       # warm-up (imports, thread pools)
                    active.append(name)
                except Exception as e:
                    log("%s: %s failed: %s" % (w.name, name, e))
                    res["engines"][name]["error"] = "error: %s" % e
    plain, sil, loops = [], [], {nm: [] for nm in active}
    for r in range(max(R_ours, R_sil, R_peer)):
        if r < R_ours:
            x = ours.elbow(table, col, kmin, kmax, max_iter, 0)
            plain.append(x)
            log("%s: ours silhouette_sample => 0, run %d/%d: %.3f s" % (w.name, r + 1, R_ours, x["seconds"]))
        if r < R_sil:
            x = ours.elbow(table, col, kmin, kmax, max_iter, None)
            sil.append(x)
            log("%s: ours default silhouette, run %d/%d: %.3f s" % (w.name, r + 1, R_sil, x["seconds"]))
        if r < R_ours and args.gpu and "ours-gpu" not in res["engines"]:
            x = gpu.elbow(table, col, kmin, kmax, max_iter, 0)
            gpu_runs.append(x)
            log("%s: ours on the GPU, run %d/%d: %.3f s" % (w.name, r + 1, R_ours, x["seconds"]))
        for name in list(active):
            if r >= R_peer:
                continue
            try:
                # the inertias of the first run are the ones compared (the seedings are
                # fixed), so only its centers are checked in float64
                fits = [bench.engines[name].elbow_fit(X, k, max_iter, check=(r == 0)) for k in ks]
            except Exception as e:
                log("%s: %s failed: %s" % (w.name, name, e))
                res["engines"][name]["error"] = "error: %s" % e
                active.remove(name)
                continue
            loops[name].append(fits)
            log("%s: %s loop over k = %d..%d, run %d/%d: %.3f s"
                % (w.name, name, kmin, kmax, r + 1, R_peer, sum(f.seconds for f in fits)))

    if plain:
        rows = plain[0]["rows"]
        res["engines"]["ours"] = summarize(plain, dict(
            ours_per_k(rows), elbow_k=[r["k"] for r in rows if r["elbow"]]), cores)
    if sil:
        rows = sil[0]["rows"]
        res["engines"]["ours_silhouette"] = summarize(sil, {
            "rows": rows, "elbow_k": [r["k"] for r in rows if r["elbow"]]}, cores)
    if gpu_runs:
        res["engines"]["ours-gpu"] = summarize(gpu_runs, ours_per_k(gpu_runs[0]["rows"]), cores)
        if plain:
            # the same fit on another device: inertia per k should agree closely
            cpu_mi = dict(zip(res["engines"]["ours"]["ks"], res["engines"]["ours"]["mean_inertia"]))
            res["engines"]["ours-gpu"]["max_rel_diff_vs_cpu"] = max(
                abs(r["mean_inertia"] - cpu_mi[r["k"]]) / cpu_mi[r["k"]] for r in gpu_runs[0]["rows"]
                if cpu_mi.get(r["k"]))
    res["ours_issues"] = check_ours(plain, sil, ks, n, max_iter)
    for name in active:
        fits_runs = loops[name]
        runs = [{"seconds": sum(f.seconds for f in fits), "cpu_s": sum(f.cpu_s for f in fits)}
                for fits in fits_runs]
        first = fits_runs[0]
        res["engines"][name].update(summarize(runs, {
            "ks": ks, "mean_inertia": [f.mean_inertia for f in first],
            "own": [f.own for f in first], "check": [f.check for f in first],
            "n_iter": [f.n_iter for f in first],
            "seconds_per_k": [median([fits[i].seconds for fits in fits_runs]) for i in range(len(ks))]},
            cores))

    # the once-only peer last: it takes minutes for the whole range
    for name in P["peers"]:
        entry = res["engines"][name]
        if bench.engines[name].once and "version" in entry and "error" not in entry:
            run_slow_peer(bench, bench.engines[name], X, ks, max_iter, cores, entry, w.name)
    res["loadavg_end"] = loadavg()
    for issue in res["ours_issues"]:
        log("%s: WARNING (ours): %s" % (w.name, issue))
    return res
