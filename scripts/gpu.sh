#!/usr/bin/env bash
# Everything that needs a GPU, in one run on the GPU machine: build with nvcc, the engine's
# GPU-against-CPU test on the device, the pg_regress suite with kmeans.device = 'gpu', and the
# benchmark with ours on the GPU beside PyTorch.  Outputs go to $OUT (the device tool's
# folder) or ./gpu-results.  PostgreSQL comes from the kit described in ../shared/gpu/README.md:
#
#   source .gpu-carry/pg-kit-env.sh .gpu-carry/pgkit.tar.xz && eval "$(.gpu-carry/pg-kit-start.sh)" &&
#   scripts/gpu.sh [--no-bench] [bench.py options]
#
# Without a running server (PGHOST unset) it stops after the engine tests.
#
# The GPU machine has PyTorch and NumPy but not psycopg2, which bench/bench.py needs.  Carry
# it as a wheel in .whl (ignored by git), made here once:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_17_x86_64 -d .whl psycopg2-binary
#
# and name .whl in the run's carry; this script installs what it finds there.  The seed elbow
# needs the profiles, which live outside the repository: copy them into the carried kit,
#
#   mkdir -p .gpu-carry/data && cp ../shared/data/wus_sh_2010_dvs_profiles.tsv .gpu-carry/data/
#
# (never into a commit); without them the benchmark skips that workload.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
[ -d .gpu-carry/data ] && export KMEANS_DATA_DIR=$PWD/.gpu-carry/data
if ! python3 -c 'import psycopg2' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
bench=1
[ "${1:-}" = --no-bench ] && { bench=0; shift; }

nvidia-smi > "$out/nvidia-smi.txt" 2>&1
nvcc --version > "$out/nvcc.txt" 2>&1
PG_CONFIG=${PG_CONFIG:-pg_config}
status=0

echo "== build"
make -s clean >/dev/null 2>&1
# sm_90 (Hopper) and PTX are enough for this machine and keep the build short
if ! make -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" CUDA_ARCH="${CUDA_ARCH:-90}" > "$out/build.txt" 2>&1; then
    tail -30 "$out/build.txt"; echo "build failed"; exit 1
fi
make -s PG_CONFIG="$PG_CONFIG" CUDA_ARCH="${CUDA_ARCH:-90}" install >> "$out/build.txt" 2>&1 || { echo "install failed"; exit 1; }

echo "== engine tests (test_cuda runs the kernels on the device)"
make -s PG_CONFIG="$PG_CONFIG" CUDA_ARCH="${CUDA_ARCH:-90}" check-engine > "$out/engine.txt" 2>&1 || status=1
grep -E '^(==|device:|skipped|FAIL|[0-9]+ passed)' "$out/engine.txt"

if [ -z "${PGHOST:-}" ]; then
    echo "no PostgreSQL server (PGHOST unset): stopping after the engine tests"
    exit $status
fi

echo "== pg_regress with kmeans.device = 'gpu'"
make -s PG_CONFIG="$PG_CONFIG" CUDA_ARCH="${CUDA_ARCH:-90}" installcheck REGRESS_DEVICE=gpu > "$out/regress-gpu.txt" 2>&1 || status=1
grep -E '^(test |ok |not ok| *[0-9]+ of| All)' "$out/regress-gpu.txt"
cp test/regression.diffs "$out/" 2>/dev/null
cp -r test/results "$out/regress-results" 2>/dev/null

if [ $bench = 1 ]; then
    echo "== benchmark: ours on the GPU beside PyTorch"
    python3 bench/bench.py --gpu --workloads "${WORKLOADS:-batch,embed,seed}" --peers torch \
        --json "$out/bench.json" "$@" 2>&1 | tee "$out/bench.txt" || status=1
fi
exit $status
