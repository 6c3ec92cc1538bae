"""The per-iteration procedure (batch, embed): every engine runs Lloyd from the same k rows
for lo and for hi iterations with tol 0, and its time per iteration is the difference of the
two fits over the difference in iterations.  Ours' own step log gives a second measure."""

from typing import List

from ..data import array_table, initial_rows, real_array_literal
from ..engines import Case, FitRun
from ..util import loadavg, log, median, usable_cores


def per_iter(runs_lo: List[FitRun], runs_hi: List[FitRun]):
    """(median long fit - median short fit) / (iterations long - short), in seconds."""
    it_lo, it_hi = runs_lo[0].n_iter, runs_hi[0].n_iter
    if it_hi <= it_lo:
        return None
    return (median([r.seconds for r in runs_hi]) - median([r.seconds for r in runs_lo])) / (it_hi - it_lo)


def cpu_per_iter(runs_lo: List[FitRun], runs_hi: List[FitRun]):
    """The same differencing on CPU seconds (all threads): less sensitive to other load."""
    lo = [r.cpu_s for r in runs_lo if r.cpu_s is not None]
    hi = [r.cpu_s for r in runs_hi if r.cpu_s is not None]
    it_lo, it_hi = runs_lo[0].n_iter, runs_hi[0].n_iter
    if not lo or not hi or it_hi <= it_lo:
        return None
    return (median(hi) - median(lo)) / (it_hi - it_lo)


def make_case(bench, w, X, table):
    """The case every engine fits: the same k rows of X as the start, also as a real[]
    literal, checked to read back as exactly the table's rows."""
    n = len(X)
    rows = initial_rows(n, w.k)
    init = X[rows].copy()
    case = Case(w.name, X, table, w.k, rows, init, real_array_literal(init))
    same = bench.db.scalar(
        "SELECT %%s::real[] = (SELECT array_agg(v ORDER BY ord) FROM unnest(%%s::bigint[]) "
        "WITH ORDINALITY AS u(id, ord) JOIN %s t USING (id))" % table,
        (case.init_literal, [int(r) for r in rows]))
    if not same:
        raise RuntimeError("init_centers literal does not read back as the table's rows")
    return case


def run_per_iteration(bench, w):
    args, db = bench.args, bench.db
    X = w.make_data(args)
    table, load_s = array_table(db, w.name, X, args.reload)
    n, d = X.shape
    case = make_case(bench, w, X, table)
    # what sending and parsing the init_centers literal costs, apart from the fit
    lit_times = [db.timed("SELECT cardinality(%s::real[])", (case.init_literal,))[1] for _ in range(3)]

    repeats = args.repeats or (w.repeats_quick if args.quick and w.repeats_quick else w.repeats)
    cores = usable_cores()
    lo, hi = w.iters
    res = {"workload": w.name, "describe": w.describe, "n": n, "d": d, "k": w.k,
           "table": table, "load_s": load_s, "iters": [lo, hi], "repeats": repeats,
           "flop_per_iter": 2.0 * n * w.k * d, "init_literal_s": median(lit_times),
           "loadavg_start": loadavg(), "cores": cores, "engines": {}}

    if w.seqscan:
        log("%s: seq scan x5" % w.name)
        res["seqscan_s"] = db.seqscan(table, 5)

    # warm up every engine, then run the fits engine after engine within each repeat, so that
    # load that comes and goes on the machine falls on all engines alike
    active, runs = [], {}
    for name in w.engines:
        eng = bench.engines[name]
        if args.peers is not None and name != "ours" and name not in args.peers:
            res["engines"][name] = {"skipped": "not selected"}
            continue
        if eng.error:
            res["engines"][name] = {"error": eng.error}
            continue
        res["engines"][name] = {"version": eng.version()}
        try:
            log("%s: %s warm-up" % (w.name, name))
            eng.warm_up(case)
            active.append(name)
            runs[name] = {lo: [], hi: []}
        except Exception as e:  # a peer's failure is reported, never fatal
            log("%s: %s failed: %s" % (w.name, name, e))
            res["engines"][name]["error"] = "error: %s" % e
    for r in range(repeats):
        for name in list(active):
            try:
                for m in (lo, hi):
                    fr = bench.engines[name].fit(case, m)
                    runs[name][m].append(fr)
                    log("%s: %s max_iter=%d run %d/%d: %.3f s, %d iterations"
                        % (w.name, name, m, r + 1, repeats, fr.seconds, fr.n_iter))
            except Exception as e:
                log("%s: %s failed: %s" % (w.name, name, e))
                res["engines"][name]["error"] = "error: %s" % e
                active.remove(name)
    # the GPU target counts a whole fit: 200 iterations, reading the table included
    whole = w.whole_fit_iters if args.gpu else None
    if whole:
        res["whole_fit"] = {"iters": whole}
        for name in [nm for nm in ("ours-gpu", "torch") if nm in active]:
            try:
                frs = [bench.engines[name].fit(case, whole) for _ in range(repeats)]
                res["whole_fit"][name] = {"seconds": median([f.seconds for f in frs]),
                                          "n_iter": frs[0].n_iter, "inertia": frs[0].inertia}
                log("%s: %s, %d iterations: %.3f s" % (w.name, name, whole,
                                                       res["whole_fit"][name]["seconds"]))
            except Exception as e:
                log("%s: %s failed: %s" % (w.name, name, e))
                res["whole_fit"][name] = {"error": "error: %s" % e}
    for name in active:
        entry, R = res["engines"][name], runs[name]
        entry["runs"] = {str(m): [vars(fr) for fr in R[m]] for m in R}
        entry["seconds_lo"] = median([f.seconds for f in R[lo]])
        entry["seconds_hi"] = median([f.seconds for f in R[hi]])
        entry["n_iter_lo"] = R[lo][0].n_iter
        entry["n_iter_hi"] = R[hi][0].n_iter
        entry["per_iter_s"] = per_iter(R[lo], R[hi])
        entry["fit_over_iters_s"] = entry["seconds_hi"] / max(1, entry["n_iter_hi"])
        entry["inertia_hi"] = R[hi][0].inertia
        entry["iter_inertia_hi"] = R[hi][0].iter_inertia
        shares = [f.cpu_s / (f.seconds * cores) for f in R[hi] if f.cpu_s is not None]
        entry["cpu_share_hi"] = median(shares)
        entry["cpu_per_iter_s"] = cpu_per_iter(R[lo], R[hi])
        entry.update(bench.engines[name].summarize(entry, R, lo, hi, res))
        if entry.get("repeatable") is False:
            log("%s: WARNING: %s gave different results for the same fit: %s" % (
                w.name, name, sorted({(f.inertia, tuple(f.iter_inertia)) for m in R for f in R[m]})))
    res["loadavg_end"] = loadavg()
    return res
