#!/usr/bin/env bash
# The benchmark end to end: build and install kmeans, start a throwaway PostgreSQL, run
# bench/bench.py (ours beside scikit-learn, FAISS and tslearn on the same data) and stop.
#
#   scripts/bench.sh [bench.py options, e.g. --workloads batch,seed --quick]
#
# The peers come from PyPI, so they go into a virtual environment of their own, made once from
# Debian's /usr/bin/python3 (isolated from the system site-packages) and reused:
#
#   KMEANS_BENCH_VENV   where it lives (default ~/.cache/kmeans/bench-venv)
#
# bench/requirements.txt pins what is installed there (numpy, psycopg2-binary, scikit-learn,
# faiss-cpu, tslearn, threadpoolctl and what they pull in); when that file changes, the next run
# installs it again.  With --gpu, bench/requirements-gpu.txt (torch) is installed too.  Nothing
# is ever pip-installed into the system Python: there pip could replace Debian's numpy with 2.x
# under Debian's scikit-learn.  If the environment cannot be made or pip cannot reach PyPI, the
# bench runs with /usr/bin/python3 and its Debian packages, and says which peers it lacks (their
# cells read "not installed").  The seed workload needs ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_deps.sh
kmeans_require $KMEANS_BENCH_PACKAGES

venv=${KMEANS_BENCH_VENV:-$HOME/.cache/kmeans/bench-venv}
. scripts/_venv.sh
base_python=$kmeans_venv_base
gpu=0
for a in "$@"; do [ "$a" = --gpu ] && gpu=1; done

# Makes (or reuses) the environment and sets $python to its interpreter; returns 1 when it
# cannot be made or bench/requirements.txt cannot be installed.
bench_venv() {
    kmeans_venv_make "$venv" || return 1
    kmeans_venv_install "$venv" bench/requirements.txt || return 1
    python=$venv/bin/python
    if [ $gpu = 1 ] && ! kmeans_venv_install "$venv" bench/requirements-gpu.txt; then
        echo "note: without torch, the PyTorch rows of --gpu read \"not installed\"" >&2
    fi
    return 0
}

python=
# one run at a time sets the environment up (another bench.sh may be installing into it)
mkdir -p "$(dirname "$venv")"
exec 9>>"$venv.lock"
command -v flock >/dev/null 2>&1 && flock 9
if ! bench_venv; then
    python=$base_python
    missing=$("$python" - <<'PY'
import importlib.util
names = {"numpy": "numpy", "psycopg2": "psycopg2", "sklearn": "scikit-learn", "faiss": "FAISS",
         "tslearn": "tslearn", "threadpoolctl": "threadpoolctl"}
print(" ".join(v for k, v in names.items() if importlib.util.find_spec(k) is None))
PY
)
    echo "note: running the bench with $python and its own packages instead;" \
         "missing there: ${missing:-nothing}" >&2
    case " $missing " in
        *" numpy "*|*" psycopg2 "*)
            echo "the bench needs numpy and psycopg2: apt-get install python3-numpy python3-psycopg2" >&2
            exit 1 ;;
    esac
fi
exec 9>&-
echo "== bench python: $python ($("$python" -c 'import sys; print(sys.version.split()[0])'))" >&2

. scripts/_lib.sh
kmeans_build_install
kmeans_start_server "${KMEANS_BENCH_PORT:-54332}"
"$python" bench/bench.py "$@"
