#!/usr/bin/env python3
"""kmeans_progress seen from a second connection while a fit runs, and a cancel from it.

Against a live server (libpq variables): one session runs a long Lloyd fit (tol 0, many
iterations), then a long mini-batch fit, both streamed from the table; a second session polls
the view every 20 ms and cancels once it has seen two iterations.  It
must see the fit's pid, function and k, its phase move on to iterating and its iteration rise,
rows done within rows total, and an inertia once an iteration has ended; then it cancels the fit
with pg_cancel_backend, which must stop it within a second, and the view must be empty again.
Prints "N passed, M failed".
"""
import os
import sys
import threading
import time

import psycopg2

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s" % what)


def connect():
    conn = psycopg2.connect("")
    conn.autocommit = True
    return conn


def watch(call, label, min_iter):
    """Runs call in session a, watches it from session b until iteration >= min_iter, cancels."""
    a, b = connect(), connect()
    ca, cb = a.cursor(), b.cursor()
    ca.execute("SET search_path = kmeans_progress_check, public")
    # rows read again on every pass: an iteration lasts a scan of the table, longer than a look
    # (kept in memory, a pruned iteration of these rows takes about 2 ms, and the first look at
    # an iteration could already be the one that cancels)
    ca.execute("SET kmeans.memory_limit = '64kB'")
    ca.execute("SELECT pg_backend_pid()")
    pid = ca.fetchone()[0]
    result = {}

    def run():
        t0 = time.time()
        try:
            ca.execute(call)
            result["error"] = None
        except psycopg2.Error as e:
            result["error"] = e.pgcode
        result["end"] = time.time()

    th = threading.Thread(target=run)
    th.start()
    seen = []
    cancel_at = None
    deadline = time.time() + 120
    while th.is_alive() and time.time() < deadline:
        cb.execute("SELECT function, phase, k_min, k_max, run, iteration, rows_done, rows_total, "
                   "inertia FROM kmeans_progress WHERE pid = %s", (pid,))
        row = cb.fetchone()
        if row:
            seen.append(row)
            iterations = {r[5] for r in seen if r[1] == "iterating"}
            if cancel_at is None and len(iterations) >= 2 and max(iterations) >= min_iter:
                cb.execute("SELECT pg_cancel_backend(%s)", (pid,))
                cancel_at = time.time()
        time.sleep(0.02)
    th.join()
    phases = [r[1] for r in seen]
    iters = [r[5] for r in seen if r[1] == "iterating"]
    check(len(seen) > 0, "%s: the fit is seen from the other session" % label)
    if not seen:
        return
    check(all(r[0] == seen[0][0] for r in seen), "%s: one function throughout" % label)
    check(seen[0][2] == 8 and seen[0][3] == 8, "%s: k = 8 shown, got %r" % (label, seen[0][2:4]))
    check("iterating" in phases, "%s: the phase moves on to iterating (seen %s)" % (label, sorted(set(phases))))
    check(len(set(iters)) >= 2 and iters == sorted(iters),
          "%s: the iteration rises (seen %s)" % (label, sorted(set(iters))[:10]))
    check(all(r[7] is None or 0 <= r[6] <= r[7] for r in seen), "%s: rows done within rows total" % label)
    check(any(r[8] is not None for r in seen if r[1] == "iterating" and r[5] >= 2),
          "%s: an inertia once an iteration has ended" % label)
    check(cancel_at is not None and result.get("error") == "57014",
          "%s: cancelled (SQLSTATE %s)" % (label, result.get("error")))
    if cancel_at is not None:
        took = result["end"] - cancel_at
        check(took < 1.0, "%s: stopped %.3f s after the cancel" % (label, took))
    cb.execute("SELECT count(*) FROM kmeans_progress WHERE pid = %s", (pid,))
    check(cb.fetchone()[0] == 0, "%s: the slot is given back after the cancel" % label)
    print("%s: %d looks, phases %s, iterations %s..%s" % (label, len(seen), sorted(set(phases)),
                                                          min(iters or [0]), max(iters or [0])))
    a.close()
    b.close()


def main():
    c = connect().cursor()
    c.execute("CREATE EXTENSION IF NOT EXISTS kmeans")
    c.execute("DROP SCHEMA IF EXISTS kmeans_progress_check CASCADE; CREATE SCHEMA kmeans_progress_check")
    c.execute("CREATE TABLE kmeans_progress_check.pts AS SELECT i AS id, "
              "ARRAY[sin(i), cos(i * 0.3), sin(i * 0.7), cos(i * 1.1)]::real[] AS v "
              "FROM generate_series(1, 400000) i")
    watch("SELECT count(*) FROM kmeans_fit('pts', 'v', 8, tol => 0, max_iter => 100000, init => 'random')",
          "lloyd", 3)
    watch("SELECT count(*) FROM kmeans_fit('pts', 'v', 8, algorithm => 'minibatch', batch_size => 64, "
          "max_iter => 100000, init => 'random')", "minibatch", 2)
    c.execute("DROP SCHEMA kmeans_progress_check CASCADE")
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
