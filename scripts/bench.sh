#!/usr/bin/env bash
# The benchmark end to end: build and install kmeans, start a throwaway PostgreSQL, run
# bench/bench.py (ours beside scikit-learn, FAISS and tslearn on the same data) and stop.
#
#   scripts/bench.sh [bench.py options, e.g. --workloads batch,seed --quick]
#
# The peers are Python packages (pip install scikit-learn faiss-cpu tslearn psycopg2-binary);
# a missing one is reported as "not installed".  The seed workload needs ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_lib.sh

kmeans_build_install
kmeans_start_server "${KMEANS_BENCH_PORT:-54332}"
python3 bench/bench.py "$@"
