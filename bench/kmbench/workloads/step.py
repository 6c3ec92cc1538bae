"""step: one Lloyd iteration as the aggregate kmeans_step(x, centers), serial and under Gather.

A table of n x 16 real[] rows (10^7; 10^6 with --quick), uniform in [0, 1), made in SQL by
INSERT ... SELECT with random() after setseed(0.25), and k = 64 starting centers: its first 64
rows (by id), passed to every statement as one k x d real[] literal.  Timed, each a median over
the runs:

* SELECT kmeans_step(v, centers) FROM t with max_parallel_workers_per_gather = 0, 1 and 2
  (parallel_setup_cost, parallel_tuple_cost and min_parallel_table_scan_size at 0, so that 1
  and 2 give a Partial Aggregate under Gather: an EXPLAIN ANALYZE of each, which is also its
  warm-up run, says so, and how many workers were launched);
* ours' own resident path, kmeans_fit(t, 'v', 64, init_centers => centers, max_iter => 1,
  tol => 0): the whole call, and its one iterate step from kmeans_last_fit();
* the floor: plain scans SELECT count(*) and count(v) with 2 workers, count(v) with none.

The three kmeans_step results (0, 1, 2 workers) must be the same bits: their text forms are
compared.  The fit's iterate step must see the same inertia as kmeans_step, and its centers
after the one update must be kmeans_step's.  The target: kmeans_step with 2 workers within 2x
of the parallel count(*)."""

from ..report import fmt_table, notes_block
from ..util import loadavg, log, median
from . import Workload, register

K, D = 64, 16
SEED = 0.25                     # setseed() before the INSERT
WORKERS = (0, 1, 2)
PARALLEL = (("parallel_setup_cost", "0"), ("parallel_tuple_cost", "0"),
            ("min_parallel_table_scan_size", "0"))


def step_n(args):
    return 1_000_000 if args.quick else 10_000_000


def random_table(db, n, d, reload):
    """kmbench_step_n<n>_d<d> (id bigint, v real[]): n rows of d random() values after
    setseed(SEED), generated in the server in one INSERT ... SELECT (so the first 10^6 rows of
    the 10^7 table are the 10^6 table).  Reused while its comment and row count match.
    (table, load seconds or None)."""
    table = "kmbench_step_n%d_d%d" % (n, d)
    tag = "kmeans bench data v1 step: setseed(%r), then %d x %d random() by INSERT ... SELECT " \
          "from generate_series, PostgreSQL %s" % (SEED, n, d, db.scalar("SHOW server_version_num"))
    if not reload and db.table_matches(table, n, tag):
        log("step: reusing table %s (%d rows)" % (table, n))
        return table, None
    log("step: generating %s: %d x %d random() in SQL" % (table, n, d))
    cur = db.conn.cursor()
    _, load_s, _ = db.timed("BEGIN")
    try:
        for sql in ("DROP TABLE IF EXISTS %s" % table,
                    "CREATE TABLE %s (id bigint NOT NULL, v real[] NOT NULL)" % table,
                    "SELECT setseed(%r)" % SEED,
                    "INSERT INTO %s SELECT i, ARRAY[%s]::real[] FROM generate_series(0, %d) i"
                    % (table, ", ".join(["random()"] * d), n - 1)):
            load_s += db.timed(sql)[1]
        cur.execute("COMMENT ON TABLE %s IS %%s" % table, (tag,))
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    log("  VACUUM ANALYZE %s" % table)
    load_s += db.timed("VACUUM ANALYZE %s" % table)[1]
    log("step: generated in %.1f s" % load_s)
    return table, load_s


def set_workers(db, workers):
    for name, value in PARALLEL:
        db.set(name, value)
    db.set("max_parallel_workers_per_gather", workers)


def reset_parallel(db):
    for name, _ in PARALLEL + (("max_parallel_workers_per_gather", None),):
        db.execute("RESET %s" % name)


def plan_of(db, sql, params, workers):
    """EXPLAIN ANALYZE (the case's warm-up run): (plan text, what it says about the parallel
    plan, whether that is the plan asked for)."""
    lines = [r[0] for r in db.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                                      + sql, params)]
    text = "\n".join(lines)
    launched = [int(x.split(":")[1]) for x in lines if "Workers Launched:" in x]
    gather = any("Gather" in x for x in lines)
    partial = any("Partial Aggregate" in x for x in lines)
    if workers == 0:
        return text, ("serial" if not gather else "Gather (not asked for)"), not gather
    if gather:
        said = "%sunder Gather, %d planned, %s launched" % (
            "Partial Aggregate " if partial else "",
            sum(int(x.split(":")[1]) for x in lines if "Workers Planned:" in x),
            "+".join(map(str, launched)) or "?")
    else:
        said = "no Gather"
    return text, said, gather and partial and sum(launched) == workers


def run_step(bench, w):
    args, db = bench.args, bench.db
    n = step_n(args)
    res = {"workload": w.name, "describe": w.describe, "n": n, "d": D, "k": K}
    res["loadavg_start"] = loadavg()
    table, load_s = random_table(db, n, D, args.reload)
    res.update({"table": table, "load_s": load_s})
    # the starting centers: the first K rows, as the server prints them (float4 output is the
    # shortest text that reads back to the same bits)
    centers, dims = db.execute("SELECT array_agg(v ORDER BY id)::text, array_dims(array_agg(v ORDER BY id)) "
                               "FROM (SELECT id, v FROM %s ORDER BY id LIMIT %d) s" % (table, K))[0]
    if dims != "[1:%d][1:%d]" % (K, D):
        raise RuntimeError("step: the starting centers are %s, not %d x %d" % (dims, K, D))
    reps = args.repeats or w.repeats

    step_sql = "SELECT kmeans_step(v, %%s::real[]) FROM %s" % table
    fit_sql = ("SELECT cluster, center FROM kmeans_fit(%%s, 'v', %d, max_iter => 1, tol => 0, "
               "init_centers => %%s::real[]) ORDER BY cluster" % K)
    agg_sql = ("SELECT cluster, center FROM kmeans_fit(%%s, 'v', %d, max_iter => 1, tol => 0, "
               "init_centers => %%s::real[], strategy => 'aggregate') ORDER BY cluster" % K)
    cases = [("kmeans_step", wk, step_sql, (centers,)) for wk in WORKERS]
    cases += [("count(*)", 2, "SELECT count(*) FROM %s" % table, None),
              ("count(v)", 2, "SELECT count(v) FROM %s" % table, None),
              ("count(v)", 0, "SELECT count(v) FROM %s" % table, None)]
    E = {}
    for label, wk, sql, params in cases:
        set_workers(db, wk)
        text, said, ok = plan_of(db, sql, params, wk)
        E["%s/%d" % (label, wk)] = {"label": label, "workers": wk, "plan": text, "plan_said": said,
                                    "plan_ok": ok, "times": []}
        log("step: %s, %d workers: %s" % (label, wk, said))
    reset_parallel(db)
    db.execute(fit_sql, (table, centers))          # warm-up of the fit
    fit = {"label": "kmeans_fit", "times": [], "iterate": [], "read": [], "final": []}
    aggfit = {wk: {"times": [], "iterate": []} for wk in (0, 2)}
    results = {}
    for r in range(reps):
        for label, wk, sql, params in cases:
            e = E["%s/%d" % (label, wk)]
            set_workers(db, wk)
            rows, seconds, _ = db.timed(sql, params)
            e["times"].append(seconds)
            if label == "kmeans_step":
                results.setdefault(wk, set()).add(rows[0][0])
                e["text"] = rows[0][0]
        reset_parallel(db)
        rows, seconds, _ = db.timed(fit_sql, (table, centers))
        fit["times"].append(seconds)
        steps = db.execute("SELECT phase, seconds, inertia FROM kmeans_last_fit() ORDER BY step")
        for phase in ("iterate", "read", "final"):
            fit[phase].append(sum(s for p, s, _ in steps if p == phase))
        fit["iterate_inertia"] = [i for p, _, i in steps if p == "iterate"][0]
        fit["centers"] = [c for _, c in rows]
        # the aggregate strategy's own iteration: one kmeans_step_partial query per pass
        for wk in (0, 2):
            set_workers(db, wk)
            _, seconds_a, _ = db.timed(agg_sql, (table, centers))
            aggfit[wk]["times"].append(seconds_a)
            aggfit[wk]["iterate"].append(db.scalar(
                "SELECT sum(seconds) FROM kmeans_last_fit() WHERE phase = 'iterate'"))
        reset_parallel(db)
        log("step: run %d of %d: kmeans_step %s s; fit %.2f s (iterate %.2f s); count(*) %.2f s"
            % (r + 1, reps, " / ".join("%.2f" % E["kmeans_step/%d" % wk]["times"][-1] for wk in WORKERS),
               seconds, fit["iterate"][-1], E["count(*)/2"]["times"][-1]))
    for e in E.values():
        e["seconds"] = median(e["times"])
        e["min_s"] = min(e["times"])
    for phase in ("times", "iterate", "read", "final"):
        fit[phase + "_s"] = median(fit[phase])
    res["loadavg_end"] = loadavg()
    for wk in (0, 2):
        aggfit[wk]["times_s"] = median(aggfit[wk]["times"])
        aggfit[wk]["iterate_s"] = median(aggfit[wk]["iterate"])
    res["aggfit"] = {str(wk): v for wk, v in aggfit.items()}
    res.update({"repeats": reps, "engines": E, "fit": fit,
                "threads": db.scalar("SELECT current_setting('kmeans.threads')")})

    # the same bits however parallel, and in every run
    texts = [E["kmeans_step/%d" % wk]["text"] for wk in WORKERS]
    res["identical"] = all(len(results[wk]) == 1 for wk in WORKERS) and len(set(texts)) == 1
    res["repeatable"] = all(len(results[wk]) == 1 for wk in WORKERS)
    step_inertia, step_centers, step_rows = db.execute(
        "SELECT (r).inertia, (r).centers, (r).n_rows FROM (SELECT %s::kmeans_step_result AS r) s",
        (texts[0],))[0]
    res["step_inertia"], res["step_rows"] = step_inertia, step_rows
    res["fit_inertia_rel"] = (fit["iterate_inertia"] - step_inertia) / step_inertia
    res["fit_centers_max_diff"] = max(abs(a - b) for ra, rb in zip(fit["centers"], step_centers)
                                      for a, b in zip(ra, rb))
    return res


def report_step(res):
    E, fit = res["engines"], res["fit"]
    floor = E["count(*)/2"]["seconds"]
    n, flop = res["n"], 2.0 * res["n"] * res["k"] * res["d"]

    def row(label, workers, seconds, min_s, plan, gflop=True):
        return [label, workers, "%.3f" % seconds, "-" if min_s is None else "%.3f" % min_s,
                "%.0f" % (seconds * 1e9 / n), "%.1f" % (flop / seconds / 1e9) if gflop else "-",
                "%.2fx" % (seconds / floor), plan]

    rows = [row("kmeans_step(v, centers)", str(wk), E["kmeans_step/%d" % wk]["seconds"],
                E["kmeans_step/%d" % wk]["min_s"], E["kmeans_step/%d" % wk]["plan_said"])
            for wk in WORKERS]
    threads = "threads " + ("all" if res["threads"] == "0" else res["threads"])
    rows.append(row("kmeans_fit max_iter 1: iterate step", threads, fit["iterate_s"],
                    min(fit["iterate"]), "kmeans_last_fit()", True))
    rows.append(row("kmeans_fit max_iter 1: whole call", threads, fit["times_s"], min(fit["times"]),
                    "read %.3f s + iterate + final %.3f s" % (fit["read_s"], fit["final_s"]), False))
    for wk in ("0", "2"):
        a = res["aggfit"][wk]
        rows.append(row("kmeans_fit strategy aggregate: iterate step", wk, a["iterate_s"],
                        min(a["iterate"]), "kmeans_last_fit(); whole call %.3f s" % a["times_s"]))
    for key, label in (("count(*)/2", "SELECT count(*)"), ("count(v)/2", "SELECT count(v)"),
                       ("count(v)/0", "SELECT count(v)")):
        e = E[key]
        rows.append(row(label, str(e["workers"]), e["seconds"], e["min_s"], e["plan_said"], False))
    table = fmt_table(["statement", "workers", "median s", "min s", "ns/row", "GFLOP/s",
                       "vs count(*) 2 workers", "plan (EXPLAIN ANALYZE)"], rows)
    par = E["kmeans_step/2"]["seconds"]
    plans_ok = all(E["kmeans_step/%d" % wk]["plan_ok"] for wk in WORKERS)
    notes = [
        "bit-identical kmeans_step results with 0, 1 and 2 workers (text forms compared, every "
        "run): %s" % ("yes" if res["identical"] else "NO" + (
            "" if res["repeatable"] else " (not even repeated runs with the same workers agree)")),
        "plans: %s" % ("a Partial Aggregate under Gather with 1 and 2 workers launched, serial with 0"
                       if plans_ok else "NOT as asked: " + "; ".join(
                           "%d workers: %s" % (wk, E["kmeans_step/%d" % wk]["plan_said"]) for wk in WORKERS)),
        "target (kmeans_step with 2 workers within 2x of the parallel count(*)): %s (%.2fx); with "
        "1 worker %.2fx, serial %.2fx; the fit's iterate step %.2fx"
        % ("met" if par <= 2 * floor else "NOT met", par / floor,
           E["kmeans_step/1"]["seconds"] / floor, E["kmeans_step/0"]["seconds"] / floor,
           fit["iterate_s"] / floor),
        "the fit's iterate step against kmeans_step: inertia %.10g vs %.10g (rel.diff %+.1e), "
        "centers after the update differ by at most %.2g; kmeans_step saw %d rows"
        % (fit["iterate_inertia"], res["step_inertia"], res["fit_inertia_rel"],
           res["fit_centers_max_diff"], res["step_rows"]),
        "medians of %d runs, after one warm-up run of each statement (the EXPLAIN ANALYZE); "
        "GFLOP/s = 2nkd / time; the parallel settings: parallel_setup_cost, parallel_tuple_cost, "
        "min_parallel_table_scan_size = 0; the fit runs with the server's defaults (its rows "
        "resident, kmeans.threads threads); load average %s at the start, %s at the end"
        % (res["repeats"], res["loadavg_start"], res["loadavg_end"]),
    ]
    if res.get("load_s"):
        notes.append("table %s generated in SQL in %.1f s" % (res["table"], res["load_s"]))
    return "== step: %s\n  n = %d x %d, k = %d, the first %d rows as starting centers\n%s\n%s" % (
        res["describe"], n, res["d"], res["k"], res["k"], table, notes_block(notes))


register(Workload(
    name="step",
    describe="one Lloyd iteration by the aggregate kmeans_step, serial and under Gather, beside "
             "kmeans_fit's own iteration and a plain parallel scan",
    k=K, make_data=None, repeats=3, run=run_step, report=report_step, engines=("ours",),
    gpu_engines=()))
