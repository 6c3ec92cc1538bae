"""Small helpers every module uses: progress lines, medians, CPU seconds, the machine's load."""

import os
import statistics
import sys
import time

T_START = time.perf_counter()


def log(msg):
    """A progress line on stderr, stamped with the seconds since the program started."""
    print("[%7.1fs] %s" % (time.perf_counter() - T_START, msg), file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs) if xs else None


def cpu_seconds_of_pid(pid):
    """user + system CPU seconds of a local process and all its threads, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_seconds_self():
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def timed(fn, *args, **kwargs):
    """(fn's result, wall seconds, CPU seconds of this process) of one call: how every
    in-process peer's fit is timed."""
    c0, t0 = cpu_seconds_self(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, cpu_seconds_self() - c0


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
