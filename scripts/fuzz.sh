#!/usr/bin/env bash
# Fuzzes the reader and the option parser for a bounded time.  Builds the extension with
# coverage instrumentation (make FUZZ=1) into the private PostgreSQL tree of _lib.sh, starts a
# throwaway server whose backends count their edges into a shared file, prepares the database
# of fuzz/setup.sql, and runs the libFuzzer target fuzz/fuzz_sql.c against it from fuzz/corpus
# with fuzz/sql.dict.  Prints a summary (executions, coverage, findings with their SQL) and
# exits non-zero when anything was found.  Crash inputs and their minimised forms stay in the
# run's folder; the corpus it grew is kept for the next run.
#
#   scripts/fuzz.sh [SECONDS]      (default 600)
#
# Environment: PG_CONFIG (default: PostgreSQL 15's), KMEANS_FUZZ_PORT (default 54360),
# KMEANS_FUZZ_OUT (default fuzz/out: corpus/ and one run-*/ folder per run),
# KMEANS_FUZZ_FORK=0 to stop at the first finding instead of going on (fork mode).
# A finding becomes a test once its minimised input is copied to test/fuzz/cases/, which
# scripts/test.sh replays.  As root it installs what it needs (clang with libFuzzer, libpq).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_deps.sh
kmeans_require $KMEANS_BUILD_PACKAGES clang libclang-rt-14-dev libpq-dev
kmeans_pg_config
. scripts/_lib.sh

budget=${1:-600}
port=${KMEANS_FUZZ_PORT:-54360}
out=${KMEANS_FUZZ_OUT:-fuzz/out}
run=$out/run-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out/corpus" "$run/crashes" "$run/minimized"
# cov.h's KMEANS_COV_HEADER and KMEANS_COV_EDGES: where the block bytes start
blocks_at=$((4096 + 65536))

echo "== build with coverage (make FUZZ=1) and the fuzz target (${SECONDS}s)"
# the objects of the instrumented build must not outlive it in the checkout
make -s clean >/dev/null 2>&1
kmeans_build_install FUZZ=1
make -s clean >/dev/null 2>&1
make -s PG_CONFIG="$PG_CONFIG" fuzz/bin/fuzz_sql >"$run/build.log" 2>&1 || { cat "$run/build.log"; exit 1; }
so=$KMEANS_ROOT$("$PG_CONFIG" --pkglibdir)/kmeans.so
blocks=$(objdump -d "$so" 2>/dev/null | grep -c 'call.*<__sanitizer_cov_trace_pc>' || true)

echo "== server on port $port, database kmeans_fuzz (${SECONDS}s)"
# The backends inherit the coverage file's name; the fuzz target creates the file, so that the
# setup below is not counted.  A bounded address space turns a runaway allocation into an
# ordinary out-of-memory error instead of the kernel's OOM killer, which would look like a crash.
export KMEANS_FUZZ_COV=$KMEANS_TMP/cov
ulimit -S -v $((8 * 1024 * 1024))
kmeans_start_server "$port"
ulimit -S -v unlimited
"$KMEANS_PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -f fuzz/setup.sql >"$run/setup.log" 2>&1 \
    || { cat "$run/setup.log"; exit 1; }

echo "== fuzzing for ${budget}s; log in $run/fuzzer.log (${SECONDS}s)"
args=(-max_total_time="$budget" -timeout=60 -rss_limit_mb=4096 -max_len=2048
      -dict=fuzz/sql.dict -artifact_prefix="$run/crashes/" -print_final_stats=1)
[ "${KMEANS_FUZZ_FORK:-1}" = 0 ] || args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
start=$(date +%s)
KMEANS_FUZZ_LOG=$run/findings.log fuzz/bin/fuzz_sql "${args[@]}" "$out/corpus" fuzz/corpus \
    >"$run/fuzzer.log" 2>&1 &
pid=$!
# a progress line a minute
ticks=0
while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    ticks=$((ticks + 1))
    if [ $((ticks % 12)) = 0 ] && kill -0 "$pid" 2>/dev/null; then
        grep -E '^#[0-9]+' "$run/fuzzer.log" | tail -1 | cut -c1-150 || true
    fi
done
status=0
wait "$pid" || status=$?
elapsed=$(( $(date +%s) - start ))

# the counters the fuzz target keeps in the coverage file's header (cov.h)
header=($(od -An -tu8 -N24 "$KMEANS_FUZZ_COV"))
execs=${header[0]} findings=${header[1]} timeouts=${header[2]}
hit=$(od -An -v -tu1 -j "$blocks_at" "$KMEANS_FUZZ_COV" | tr -s ' ' '\n' | grep -c '^[1-9]' || true)
last=$(grep -E '^#[0-9]+' "$run/fuzzer.log" | tail -1 || true)
cp "$KMEANS_TMP/pg/server.log" "$run/server.log" 2>/dev/null || true
crashes=$(find "$run/crashes" -type f -name 'crash-*' | sort)
first=$(grep -m1 'FINDING' "$run/findings.log" 2>/dev/null || true)

echo
echo "== summary"
echo "time:        ${elapsed}s, libFuzzer exit status $status"
echo "executions:  $execs ($(( execs / (elapsed > 0 ? elapsed : 1) ))/s), $timeouts timed out (statement_timeout 500 ms)"
echo "coverage:    $(sed -nE 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [0-9/]+[a-zA-Z]*).*/\1/p' <<<"$last")" \
     "(libFuzzer: client pcs, features with the server's edges and message kinds, corpus)"
echo "server code: $hit of $blocks instrumented blocks of src/ reached"
echo "crashes:     $(grep -c 'terminated by signal' "$run/server.log" 2>/dev/null || true) server processes killed by a signal"
echo "findings:    $findings, $(wc -w <<<"$crashes") inputs saved in $run/crashes"
if [ -n "$first" ]; then
    first_at=$(date -d "$(cut -c1-19 <<<"$first")" +%s)
    echo "first:       after $((first_at - start))s, at execution $(sed -nE 's/.* execs=([0-9]+) .*/\1/p' <<<"$first")"
    echo
    # every finding, with the SQL that reproduces it, once per kind of finding
    awk '/FINDING/ { sub(/.* FINDING/, "FINDING"); key = $0; show = !(key in seen); seen[key] = 1 }
         show' "$run/findings.log" | head -60
fi

# minimised forms of the first few crash inputs (each run crashes the server again)
if [ -n "$crashes" ]; then
    echo
    echo "== minimising (${SECONDS}s)"
    for f in $(head -5 <<<"$crashes"); do
        KMEANS_FUZZ_LOG= fuzz/bin/fuzz_sql -minimize_crash=1 -max_total_time=60 -timeout=60 \
            -exact_artifact_path="$run/minimized/$(basename "$f")" "$f" >"$run/minimize.log" 2>&1 || true
        [ -f "$run/minimized/$(basename "$f")" ] || cp "$f" "$run/minimized/"
        echo "--- $run/minimized/$(basename "$f")"
        cat "$run/minimized/$(basename "$f")"; echo
    done
fi
echo "(${SECONDS}s in all)"
[ -z "$crashes" ] && [ "$findings" = 0 ]
