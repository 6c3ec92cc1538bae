"""The command line: options, the run of each workload in order, the report and the JSON."""

import argparse
import time

from . import __doc__ as DOC
from .db import Database
from .engines import make_engines
from .report import machine_info, report_machine, write_json
from .util import T_START, log
from .workloads import WORKLOADS, Bench


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="bench.py", description=DOC.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="batch,embed,seed,wide",
                    help="comma-separated, from: %s (default batch,embed,seed,wide)"
                         % ", ".join(WORKLOADS))
    ap.add_argument("--db", default="kmbench",
                    help="database to use, created if missing (default kmbench); the server is "
                         "found through the libpq variables PGHOST, PGPORT, PGUSER")
    ap.add_argument("--reload", action="store_true", help="reload the tables even when they match")
    ap.add_argument("--quick", action="store_true",
                    help="embed with n = 200,000 instead of 10^6; seed: tslearn only at k in "
                         "3,10,20,49, its loop time extrapolated")
    ap.add_argument("--repeats", type=int, default=None,
                    help="runs of each fit (default: batch 3, embed 1, embed --quick 3); for "
                         "seed/wide, runs of ours and of each peer loop (default: ours 5 on "
                         "seed, 3 on wide; peer loops 3; tslearn always 1)")
    ap.add_argument("--tslearn-ks", default=None, metavar="KS",
                    help="seed: the k at which tslearn runs, e.g. 'all', '3-49', '3,10,20,49' "
                         "(default all; with --quick 3,10,20,49); on a subset its loop time "
                         "is extrapolated from the mean time per k")
    ap.add_argument("--peers", default=None,
                    help="comma-separated peers to run (default: each workload's own)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for every engine: sets kmeans.threads and limits the peers' "
                         "OpenMP/BLAS pools (default: each engine's own default, all cores)")
    ap.add_argument("--gpu", action="store_true",
                    help="also run ours on the GPU (every workload) and PyTorch's k-means there "
                         "(batch, embed)")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON to FILE")
    args = ap.parse_args(argv)
    args.names = [x.strip() for x in args.workloads.split(",") if x.strip()]
    for nm in args.names:
        if nm not in WORKLOADS:
            ap.error("unknown workload %r (known: %s)" % (nm, ", ".join(WORKLOADS)))
    args.peers = None if args.peers is None else [p.strip() for p in args.peers.split(",")]
    return args


def limit_threads(bench, threads):
    """--threads: kmeans.threads, the peers' OpenMP/BLAS pools and FAISS's OpenMP; returns the
    threadpoolctl limiter to restore at the end, or None."""
    bench.db.set("kmeans.threads", threads)
    limiter = None
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=threads)
    except ImportError:
        log("threadpoolctl not installed: the peers' thread pools are not limited")
    if not bench.engines["faiss"].error:
        bench.engines["faiss"].faiss.omp_set_num_threads(threads)
    return limiter


def main(argv=None):
    args = parse_args(argv)
    if args.gpu:
        for w in WORKLOADS.values():
            w.engines = tuple(w.engines) + tuple(w.gpu_engines)
    db = Database(args.db)
    # every workload reads ours' timings from the engine's step log
    db.ensure_function("kmeans_last_fit", " (the step log the bench times ours with)")
    bench = Bench(args, db, make_engines(db))
    limiter = limit_threads(bench, args.threads) if args.threads else None
    info = machine_info(db, bench.engines)
    results = {}
    for nm in args.names:
        t0 = time.perf_counter()
        results[nm] = WORKLOADS[nm].run(bench, WORKLOADS[nm])
        results[nm]["wall_s"] = time.perf_counter() - t0
        log("%s done in %.1f s" % (nm, results[nm]["wall_s"]))

    print(report_machine(info))
    for nm in args.names:
        print()
        print(WORKLOADS[nm].report(results[nm]))
    total = time.perf_counter() - T_START
    print("\ntotal wall time %.1f s (%s)" % (total, ", ".join(
        "%s %.1f s" % (nm, results[nm]["wall_s"]) for nm in args.names)))
    if args.json:
        write_json(args.json, info, results, total)
    if limiter is not None:
        limiter.restore_original_limits()
