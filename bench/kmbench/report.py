"""The report: the tables and notes of each workload (stdout), the machine it ran on, and the
JSON of every number."""

import hashlib
import json
import os
import platform
import subprocess
import sys
import textwrap
import time

import numpy as np
import psycopg2

from .util import log, median, usable_cores

def rel_diff(a, b):
    if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or b == 0:
        return None
    return (a - b) / abs(b)


def fmt_ms(s):
    return "-" if s is None else "%.1f" % (s * 1e3) if abs(s) < 10 else "%.0f" % (s * 1e3)


def fmt_table(header, rows):
    cols = list(zip(*([header] + rows)))
    widths = [max(len(str(c)) for c in col) for col in cols]
    lines = []
    for i, row in enumerate([header] + rows):
        lines.append("  ".join(str(c).rjust(wd) if j else str(c).ljust(wd)
                               for j, (c, wd) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


PEER_LABELS = {"ours": "ours", "ours-cosine": "ours cosine", "faiss-spherical": "FAISS spherical",
               "sklearn": "sklearn", "faiss": "FAISS", "tslearn": "tslearn",
               "ours-gpu": "ours GPU", "torch": "PyTorch GPU"}


def engine_cell(e):
    if "error" in e:
        return e["error"].split(" (")[0].splitlines()[0]
    if "skipped" in e:
        return e["skipped"]
    return fmt_ms(e.get("per_iter_s"))


def agreement(e, ours):
    """Relative difference of an engine's inertia from ours after the same iterations: the
    final assignment where the engine reports it, else the last iteration's objective."""
    if e is ours:
        return None
    if e.get("inertia_hi") is not None and np.isfinite(e["inertia_hi"]):
        return rel_diff(e["inertia_hi"], ours.get("inertia_hi"))
    if e.get("iter_inertia_hi") and ours.get("iter_inertia_hi"):
        return rel_diff(e["iter_inertia_hi"][-1], ours["iter_inertia_hi"][-1])
    return None


def shown_inertia(e):
    if e.get("inertia_hi") is not None and np.isfinite(e["inertia_hi"]):
        return "%.7g" % e["inertia_hi"]
    if e.get("iter_inertia_hi"):
        return "%.7g*" % e["iter_inertia_hi"][-1]
    return "-"


def notes_block(notes):
    return "\n".join(textwrap.fill(x, width=110, initial_indent="  ", subsequent_indent="    ")
                     for x in notes)


def report_per_iteration(res):
    E = res["engines"]
    lo, hi = res["iters"]
    flop = res["flop_per_iter"]
    ours = E.get("ours", {})
    ours_t = ours.get("per_iter_s")
    peers = [nm for nm in E if nm != "ours"]

    best = None
    for name in peers:
        if name.startswith("ours"):
            continue
        t = E[name].get("per_iter_s")
        if t is not None and (best is None or t < best[1]):
            best = (name, t)
    ratio = "-" if best is None or not ours_t else "%.2fx (%s)" % (best[1] / ours_t,
                                                                    PEER_LABELS.get(best[0], best[0]))
    out = ["== %s: %s" % (res["workload"], res["describe"])]
    out.append(fmt_table(
        ["workload", "n", "d", "k", "ours ms/iter"]
        + ["%s ms/iter" % PEER_LABELS.get(nm, nm) for nm in peers] + ["best peer/ours"],
        [[res["workload"], res["n"], res["d"], res["k"], engine_cell(ours)]
         + [engine_cell(E[nm]) for nm in peers] + [ratio]]))
    out.append("")
    rows = []
    for name, e in E.items():
        if "per_iter_s" not in e:
            continue
        t = e["per_iter_s"]
        agree = agreement(e, ours)
        rows.append([PEER_LABELS.get(name, name), "%.3f" % e["seconds_lo"], "%.3f" % e["seconds_hi"],
                     "%d/%d" % (e["n_iter_lo"], e["n_iter_hi"]), fmt_ms(t),
                     fmt_ms(e["fit_over_iters_s"]),
                     "-" if not t else "%.1f" % (flop / t / 1e9),
                     "%.2fx" % (t / ours_t) if t and ours_t else "-",
                     shown_inertia(e), "-" if agree is None else "%+.1e" % agree,
                     "-" if e.get("cpu_share_hi") is None else "%.0f%%" % (100 * e["cpu_share_hi"]),
                     fmt_ms(e.get("cpu_per_iter_s"))])
    if rows:
        out.append(fmt_table(
            ["engine", "fit s (%d it)" % lo, "fit s (%d it)" % hi, "iters", "ms/iter",
             "fit/iters ms", "GFLOP/s", "vs ours", "inertia", "rel.diff", "cpu", "cpu ms/iter"],
            rows))
    notes = []
    if "step_iter_s" in ours:
        notes.append("ours from the engine's step log (kmeans_last_fit): %s ms/iter (median of the "
                     "iterate steps); final pass %s ms, and %s ms outside the steps (the rest of the "
                     "statement: parsing the call and its init_centers, starting the engine, the "
                     "result); repeated fits gave %s"
                     % (fmt_ms(ours["step_iter_s"]), fmt_ms(ours["final_s"]), fmt_ms(ours["outside_s"]),
                        "identical results" if ours.get("repeatable") else "DIFFERENT RESULTS"))
    oc = E.get("ours-cosine", {}).get("per_iter_s")
    if oc and ours_t:
        sk = E.get("sklearn", {}).get("per_iter_s")
        so = E["ours-cosine"].get("step_iter_s")
        notes.append("cosine: ours with metric => 'cosine' takes %.2fx ours Euclidean per iteration "
                     "on the same unit rows (target <= 1.15x: %s; by the step logs' iterate medians "
                     "%s and %s ms: %s)%s"
                     % (oc / ours_t, "met" if oc <= 1.15 * ours_t else "NOT met",
                        fmt_ms(ours.get("step_iter_s")), fmt_ms(so),
                        "%.2fx" % (so / ours["step_iter_s"]) if so and ours.get("step_iter_s") else "-",
                        "; scikit-learn (Euclidean Lloyd on the unit rows) takes %.2fx ours cosine "
                        "(target >= 1.5x: %s)" % (sk / oc, "met" if sk >= 1.5 * oc else "NOT met")
                        if sk else ""))
    if "stats_iter_s" in E.get("faiss", {}):
        notes.append("FAISS's own iteration_stats: %s ms/iter" % fmt_ms(E["faiss"]["stats_iter_s"]))
    if "seqscan_s" in res and "read_s" in ours:
        sq = median(res["seqscan_s"])
        notes.append("reading: plain seq scan SELECT count(v) (no parallel workers), median of 5: "
                     "%s ms; ours read + setup: %s ms = %.1fx the seq scan (the step log's read "
                     "step, median over the %d-iteration fits; cross-check from fit(%d it) - %d "
                     "iterations - the %s ms init_centers takes to parse: %s ms, noisy under load)"
                     % (fmt_ms(sq), fmt_ms(ours["read_s"]), ours["read_s"] / sq, hi,
                        lo, lo + 1, fmt_ms(res["init_literal_s"]), fmt_ms(ours["read_diff_s"])))
    wf = res.get("whole_fit")
    if wf:
        og, tg = wf.get("ours-gpu", {}), wf.get("torch", {})
        notes.append("a whole fit of %d iterations from the same start, median of %d: ours on "
                     "the GPU %s (SQL, reading the table included; target <= 1 s on one H100: "
                     "%s); PyTorch on the GPU %s (its data already on the device)"
                     % (wf["iters"], res["repeats"],
                        "%.3f s" % og["seconds"] if "seconds" in og else og.get("error", "not run"),
                        ("met" if og["seconds"] <= 1.0 else "NOT MET") if "seconds" in og else "-",
                        "%.3f s" % tg["seconds"] if "seconds" in tg else tg.get("error", "not run")))
    if res.get("load_s"):
        notes.append("table loaded by COPY BINARY in %.1f s" % res["load_s"])
    notes.append("ms/iter = (median fit(%d it) - median fit(%d it)) / (%d - %d), every engine "
                 "alike, %d run(s) of each fit; fit/iters = median fit(%d it) / its iterations "
                 "(includes setup, init and the final assignment); GFLOP/s = 2nkd / (ms/iter); "
                 "vs ours = engine ms/iter / ours ms/iter, and best peer/ours > 1 means ours is "
                 "faster; inertia after %d iterations and rel.diff = its relative difference from "
                 "ours (* = the objective of iteration %d's assignment, made before its update, "
                 "compared with ours at the same point)."
                 % (hi, lo, hi, lo, res["repeats"], hi, hi, hi))
    notes.append("cpu = CPU time of the engine's threads / (wall time x %s cores), median over the "
                 "%d-iteration fits: well under 100%% means the engine left cores idle or other "
                 "processes took them (load average %s at the start, %s at the end); cpu ms/iter "
                 "= the ms/iter differencing on CPU seconds (includes OpenMP spin-waiting)."
                 % (res.get("cores"), hi, res.get("loadavg_start"), res.get("loadavg_end")))
    out.append(notes_block(notes))
    return "\n".join(out)


def fmt_s(x):
    if x is None:
        return "-"
    return "%.3f" % x if x < 10 else "%.1f" % x


def fmt_pct(x, plus=True):
    return "-" if x is None else ("%+.2f%%" if plus else "%.2f%%") % (100 * x)


def report_elbow(res):
    kmin, kmax = res["ks"]
    title = "== %s: %s" % (res["workload"], res["describe"])
    if "skipped" in res:
        return title + "\n  skipped: " + res["skipped"]
    E = res["engines"]
    ours = E.get("ours", {})
    ot = ours.get("seconds")
    ks = list(range(kmin, kmax + 1))
    out = [title]
    labels = {"ours": "ours: kmeans_elbow, silhouette_sample => 0",
              "ours_silhouette": "ours: kmeans_elbow, default silhouette (2000)",
              "ours-gpu": "ours on the GPU: kmeans_elbow, silhouette_sample => 0",
              "sklearn": "scikit-learn KMeans loop", "faiss": "FAISS Kmeans loop",
              "tslearn": "tslearn TimeSeriesKMeans loop"}
    rows = []
    for name in ["ours", "ours_silhouette", "ours-gpu"] + [nm for nm in E if not nm.startswith("ours")]:
        e = E.get(name)
        if e is None:
            continue
        label = labels.get(name, name)
        if "seconds" not in e:
            cell = e.get("error", e.get("skipped", "not run")).split(" (")[0].splitlines()[0]
            rows.append([label, cell] + ["-"] * 6)
            continue
        total = fmt_s(e["seconds"])
        runs = str(e["runs"])
        if e.get("extrapolated"):
            total += " (extrapolated)"
            runs = "1, k in %s" % ",".join(map(str, e["ks_run"]))
        rows.append([label, "%d..%d" % (kmin, kmax), runs, total, fmt_s(e.get("seconds_min")),
                     "%.2fx" % (e["seconds"] / ot) if ot else "-",
                     fmt_s(e.get("cpu_s")),
                     "-" if e.get("cpu_share") is None else "%.0f%%" % (100 * e["cpu_share"])])
    out.append(fmt_table(["engine", "k", "runs", "total s (median)", "min s", "vs ours",
                          "cpu s", "cpu"], rows))
    notes = []
    if res.get("target_s") and ot is not None:
        notes.append("target: ours <= %.2f s for the whole range: %s (median %.3f s, best %.3f s)"
                     % (res["target_s"], "met" if ot <= res["target_s"] else "NOT MET",
                        ot, ours["seconds_min"]))
    og = E.get("ours-gpu", {})
    if og.get("seconds") is not None:
        target = ""
        if res.get("gpu_target_s"):
            target = " (target <= %.0f ms on one H100: %s)" % (
                1000 * res["gpu_target_s"], "met" if og["seconds"] <= res["gpu_target_s"] else "NOT MET")
        notes.append("ours on the GPU: median %.1f ms for the whole range%s; mean inertia per k "
                     "within %.2g relative of ours on the CPU"
                     % (1000 * og["seconds"], target, og.get("max_rel_diff_vs_cpu", float("nan"))))
    ts = E.get("tslearn", {})
    if ts.get("extrapolated"):
        notes.append("tslearn ran only k in %s (%.1f s measured); its total is EXTRAPOLATED: the "
                     "mean time per k x %d k; --tslearn-ks all runs the whole range"
                     % (",".join(map(str, ts["ks_run"])), ts["measured_s"], len(ks)))
    if res.get("no_tslearn"):
        notes.append(res["no_tslearn"])
    notes.append("total = end-to-end wall time for the whole range: ours one SQL statement (reading "
                 "the table included, result fetched), a peer its loop of fit() calls on the "
                 "in-memory array; vs ours = engine / ours (> 1: ours faster); cpu = CPU seconds "
                 "(ours: the backend process; peers: this process) and cpu share = cpu / (wall x %d "
                 "cores); load average %s at the start, %s at the end"
                 % (res["cores"], res.get("loadavg_start"), res.get("loadavg_end")))
    out.append(notes_block(notes))
    out.append("")

    # per k: mean inertia per row
    peers = [nm for nm in ("sklearn", "faiss", "tslearn") if E.get(nm, {}).get("mean_inertia")]
    mi = {nm: dict(zip(E[nm]["ks"], E[nm]["mean_inertia"])) for nm in ["ours"] + peers
          if E.get(nm, {}).get("mean_inertia")}
    it = {nm: dict(zip(E[nm]["ks"], E[nm]["n_iter"])) for nm in mi}
    if "ours" not in mi:
        out.append("  (no per-k table: ours did not run)")
        return "\n".join(out)
    diffs = {}
    if "sklearn" in mi:
        for k in ks:
            if mi["ours"].get(k) is not None and mi["sklearn"].get(k):
                diffs[k] = mi["ours"][k] / mi["sklearn"][k] - 1

    def mark(dv):
        if dv is None:
            return "-"
        if abs(dv) <= 0.02:
            return "✓"
        return "✓ lower" if dv < 0 else "✗"

    shown = sorted(set([kmin, kmax, 10] + [k for k in ks if k % 5 == 0]
                       + [k for k, dv in diffs.items() if dv > 0.02]) & set(ks))
    hdr = ["k", "ours"] + [PEER_LABELS[nm] for nm in peers] + ["ours vs sklearn", "2%",
                                                                 "iters " + "/".join(["ours"] + [PEER_LABELS[nm] for nm in peers])]
    trows = []
    for k in shown:
        row = [str(k)] + ["-" if mi[nm].get(k) is None else "%.4f" % mi[nm][k] for nm in ["ours"] + peers]
        row += [fmt_pct(diffs.get(k)), mark(diffs.get(k)),
                "/".join("-" if it[nm].get(k) is None else str(it[nm][k]) for nm in ["ours"] + peers)]
        trows.append(row)
    out.append("mean inertia per row (sum of squared distances to the final centers / n), "
               "k = %s" % ("all" if len(shown) == len(ks) else
                           "%d, every 5th, %d and every k that misses the 2%% target" % (kmin, kmax)))
    out.append(fmt_table(hdr, trows))
    notes = []
    if diffs:
        worst = max(diffs, key=lambda k: abs(diffs[k]))
        over = [k for k, dv in diffs.items() if dv > 0.02]
        lower = [k for k, dv in diffs.items() if dv < 0]
        notes.append("ours vs scikit-learn over all %d k: max |difference| %s at k = %d; ours "
                     "lower at %d of %d k; ours more than 2%% above at %d k%s -> target (within "
                     "2%% of scikit-learn at every k) %s. The difference comes from the seedings "
                     "(each engine its own k-means++ or random start), not from the iterations"
                     % (len(diffs), fmt_pct(diffs[worst]), worst, len(lower), len(diffs),
                        len(over), (" (k = %s)" % ", ".join(map(str, over))) if over else "",
                        "MET" if not over else "NOT MET"))
        notes.append("2%% column: ✓ = |ours/sklearn - 1| <= 2%%; ✓ lower = ours more than 2%% "
                     "below (better); ✗ = more than 2%% above. Median difference %s"
                     % fmt_pct(median(list(diffs.values()))))
    for nm in peers:
        if nm == "sklearn":
            continue
        dd = [mi["ours"][k] / mi[nm][k] - 1 for k in ks
              if mi[nm].get(k) and mi["ours"].get(k) is not None and np.isfinite(mi[nm][k])]
        if dd:
            notes.append("ours vs %s: median difference %s, ours lower at %d of %d k, max %s"
                         % (PEER_LABELS[nm], fmt_pct(median(dd)), sum(x < 0 for x in dd), len(dd),
                            fmt_pct(max(dd, key=abs))))
    if res.get("reference"):
        ref = ", ".join("k = %d: %.2f (ours %s, tslearn %s)" % (
            k, v, "%.3f" % mi["ours"][k] if mi["ours"].get(k) is not None else "-",
            "%.3f" % mi["tslearn"][k] if mi.get("tslearn", {}).get(k) is not None else "-")
            for k, v in res["reference"])
        notes.append("the seed user's published elbow (tslearn, mean per profile): " + ref)
    xc = []
    for nm, what in (("sklearn", "inertia_/n"), ("faiss", "index search")):
        e = E.get(nm, {})
        pairs = [(a, b) for a, b in zip(e.get("mean_inertia", []), e.get("check", []))
                 if a is not None and b]
        if pairs:
            xc.append("%s %s %.1e" % (PEER_LABELS[nm], what, max(abs(a / b - 1) for a, b in pairs)))
    if xc:
        notes.append("peers' inertias against a float64 recomputation from their centers (max "
                     "relative difference): " + "; ".join(xc))
    if mi.get("tslearn"):
        own = [(a, b) for a, b in zip(E["tslearn"]["own"], E["tslearn"]["mean_inertia"]) if a and b]
        if own:
            notes.append("tslearn column: the final centers' mean squared distance. tslearn's own "
                         "inertia_ (already a mean per series) is that of the last assignment, "
                         "made before the last update: it is %s to %s above"
                         % (fmt_pct(min(a / b - 1 for a, b in own)),
                            fmt_pct(max(a / b - 1 for a, b in own))))
    if "faiss" in mi:
        notes.append("FAISS starts from random rows (no k-means++) and runs with subsampling off "
                     "(by default it would train on at most 256 rows per centroid)")
    notes.append("iters: iterations each engine ran (max %d; ours and sklearn stop early at tol "
                 "1e-4, tslearn at 1e-6)" % res["max_iter"])
    sil = E.get("ours_silhouette")
    if sil and sil.get("rows"):
        s_ = {r["k"]: r["silhouette"] for r in sil["rows"]}
        notes.append("ours with the default silhouette: silhouette at k = %s; suggested k (elbow) %s"
                     % (", ".join("%d: %s" % (k, "-" if s_.get(k) is None else "%.3f" % s_[k])
                                  for k in (kmin, 10, kmax) if k in s_), sil.get("elbow_k")))
    elif ours.get("elbow_k") is not None:
        notes.append("ours' suggested k (elbow): %s" % ours["elbow_k"])
    if res.get("seqscan_s"):
        notes.append("reading: plain seq scan SELECT count(%s) (no parallel workers), median of 5: "
                     "%s ms" % (res["column"], fmt_ms(median(res["seqscan_s"]))))
    if res.get("load_s"):
        notes.append("table loaded by COPY in %.2f s" % res["load_s"])
    if ours.get("phase_s"):
        ph, nst = ours["phase_s"], ours["phase_steps"]
        qs = (sil or {}).get("phase_s", {}).get("quality")
        notes.append("ours from the engine's step log (kmeans_last_fit), median of the "
                     "silhouette_sample => 0 calls: read %s ms, %d seeding step(s) %s ms, %d "
                     "iterate steps %s ms, %d final pass(es) %s ms, quality indices %s ms%s, and "
                     "%s ms outside the steps (the rest of the statement)"
                     % (fmt_ms(ph["read"]), nst["seed"], fmt_ms(ph["seed"]), nst["iterate"],
                        fmt_ms(ph["iterate"]), nst["final"], fmt_ms(ph["final"]),
                        fmt_ms(ph["quality"]),
                        "" if qs is None else " (%s ms with the default silhouette)" % fmt_ms(qs),
                        fmt_ms(ours["outside_s"])))
    for issue in res.get("ours_issues", []):
        notes.append("WARNING (ours): " + issue)
    out.append(notes_block(notes))
    return "\n".join(out)


def machine_info(db, engines):
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": usable_cores(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "psycopg2": psycopg2.__version__.split()[0],
        "postgresql": db.scalar("SHOW server_version"),
        "server_host": os.environ.get("PGHOST", "(default)"),
        "kmeans": db.scalar("SELECT extversion FROM pg_extension WHERE extname = 'kmeans'"),
        "kmeans.threads": db.scalar("SELECT current_setting('kmeans.threads')"),
        "kmeans.memory_limit": db.scalar("SELECT current_setting('kmeans.memory_limit')"),
    }
    info["kmeans_library"] = library_fingerprint(db)
    for name, eng in engines.items():
        if name != "ours":
            info[name] = eng.error.split(" (")[0] if eng.error else eng.version()
    try:
        from threadpoolctl import threadpool_info
        info["peer_threads"] = sorted({"%s=%d" % (p["internal_api"], p["num_threads"])
                                       for p in threadpool_info()})
    except Exception:
        pass
    return info


def library_fingerprint(db):
    """mtime and SHA-1 of the kmeans.so the server loads (the server on this host), so that
    results can be matched to a build.  The folder is the server's own PKGLIBDIR (a private
    tree's, where scripts/bench.sh runs one), else that of pg_config on PATH."""
    try:
        try:
            libdir = db.scalar("SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'")
        except Exception:       # the pg_config view is for superusers only
            libdir = subprocess.run(["pg_config", "--pkglibdir"], capture_output=True, text=True,
                                    check=True).stdout.strip()
        path = os.path.join(libdir, "kmeans.so")
        with open(path, "rb") as f:
            digest = hashlib.sha1(f.read()).hexdigest()[:12]
        mtime = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(path)))
        return "%s (built %s, sha1 %s)" % (path, mtime, digest)
    except (OSError, subprocess.SubprocessError):
        return None


def report_machine(info):
    return ("machine: %s, %s cores (%s usable), %s GB; %s\n"
            "versions: PostgreSQL %s, kmeans %s (kmeans.threads=%s, memory_limit=%s), "
            "scikit-learn %s, FAISS %s, tslearn %s, numpy %s, psycopg2 %s, Python %s\n"
            "kmeans library: %s\n"
            "peer thread pools: %s"
            % (info["cpu"], info["cores"], info["cores_usable"], info["memory_gb"], info["os"],
               info["postgresql"], info["kmeans"], info["kmeans.threads"],
               info["kmeans.memory_limit"], info.get("sklearn"), info.get("faiss"),
               info.get("tslearn"), info["numpy"], info["psycopg2"], info["python"],
               info.get("kmeans_library") or "?",
               ", ".join(info.get("peer_threads", [])) or "?"))


def write_json(path, info, results, total):
    """Every number of the run: the machine, and each workload's result dict."""
    with open(path, "w") as f:
        json.dump({"argv": sys.argv[1:], "machine": info, "workloads": results,
                   "total_s": total}, f, indent=1, default=float)
    log("wrote %s" % path)
