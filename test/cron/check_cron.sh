#!/usr/bin/env bash
# The README's pg_cron recipe ("Scheduling refits with pg_cron"), run as written: a throwaway
# server with pg_cron preloaded, a job that refits a saved model, two runs of it with the data
# changed in between, then the model row and the relabelling checked against group means that
# plain SQL computes.  Prints "N passed, M failed".
#
#   test/cron/check_cron.sh     (scripts/test.sh runs it with the private tree it built; alone
#                               it builds and installs kmeans into a private tree of its own)
#
# pg_cron comes from Debian's postgresql-15-cron.  Bookworm's is 1.4.2, whose finest schedule is
# once a minute ('* * * * *'), so the two runs take 1 to 2 minutes; from pg_cron 1.5 on, the
# job runs every 2 seconds instead.  Skips cleanly (exit 0) when pg_cron is not installed and
# cannot be (not root).
#
# Environment: PG_CONFIG, KMEANS_CRON_PORT (default KMEANS_TEST_PORT + 1, i.e. 54332),
# KMEANS_CRON_WAIT: seconds to wait for each run (default 75), WERROR as for scripts/test.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/_deps.sh
kmeans_pg_config

port=${KMEANS_CRON_PORT:-$((${KMEANS_TEST_PORT:-54331} + 1))}
wait_s=${KMEANS_CRON_WAIT:-75}
sys_lib=$("$PG_CONFIG" --pkglibdir)
sys_share=$("$PG_CONFIG" --sharedir)
start=$SECONDS

if [ ! -e "$sys_lib/pg_cron.so" ]; then
    kmeans_want postgresql-15-cron ||
        { echo "skipped: pg_cron is not installed (Debian package postgresql-15-cron)"; exit 0; }
fi

# The private tree: the caller's (scripts/test.sh exports KMEANS_PG_BINDIR), or one made here.
own_tree=0
if [ -z "${KMEANS_PG_BINDIR:-}" ] || [ ! -x "$KMEANS_PG_BINDIR/postgres" ]; then
    unset KMEANS_PG_BINDIR
    . scripts/_lib.sh
    own_tree=1
    echo "building and installing kmeans into $KMEANS_ROOT"
    kmeans_build_install WERROR="${WERROR:-0}" || { echo "0 passed, 1 failed"; exit 1; }
fi
root=${KMEANS_PG_BINDIR%"$("$PG_CONFIG" --bindir)"}
if [ ! -e "$root$sys_lib/kmeans.so" ]; then
    echo "kmeans is not installed in the private tree $root"
    echo "0 passed, 1 failed"
    exit 1
fi
# pg_cron's library and extension files into the tree the server runs from (the tree is a copy
# of the system's installation, which may have been made before pg_cron was installed)
for f in "$sys_lib/pg_cron.so" "$sys_share"/extension/pg_cron[-.]*; do
    cp "$f" "$root$f" && chmod a+r "$root$f" || { echo "could not copy $f into $root"; exit 1; }
done

work=$(mktemp -d /tmp/kmeans-cron.XXXXXX)
chmod 755 "$work"
cleanup() {
    scripts/pg-throwaway.sh stop "$work/pg" >/dev/null 2>&1
    rm -rf "$work"
    if [ $own_tree = 1 ]; then rm -rf "$KMEANS_TMP"; fi
}
trap cleanup EXIT

passed=0
failed=0
check() {                       # check WHAT VALUE [EXPECTED, default t]
    if [ "$2" = "${3:-t}" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $1: got '$2', expected '${3:-t}'"
    fi
}
finish() {
    echo "($((SECONDS - start))s)"
    echo "$passed passed, $failed failed"
    [ $failed = 0 ]
    exit
}
q() {                           # q SQL: one statement in the test database, unaligned output
    "$KMEANS_PG_BINDIR/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d kmeans_cron -c "$1"
}

# --- the recipe's postgresql.conf lines (the README has the same) --------------------------
if ! env=$(scripts/pg-throwaway.sh start "$work/pg" "$port" \
        "shared_preload_libraries = 'pg_cron'" \
        "cron.database_name = 'kmeans_cron'" \
        "cron.use_background_workers = on" \
        "cron.max_running_jobs = 2"); then
    echo "could not start a server with pg_cron preloaded"
    failed=1
    finish
fi
eval "$env"
log=$work/pg/server.log
"$KMEANS_PG_BINDIR/psql" -X -q -d postgres -c "CREATE DATABASE kmeans_cron" || { failed=1; finish; }

# --- the extensions, in the database cron.database_name names ----------------------------
q "CREATE EXTENSION pg_cron" && q "CREATE EXTENSION kmeans" || { failed=1; finish; }
cron_version=$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'")
# interval schedules ('2 seconds') came with pg_cron 1.5
if [ "$(printf '%s\n' "$cron_version" 1.5 | sort -V | head -1)" = 1.5 ]; then
    schedule='2 seconds'
else
    schedule='* * * * *'
fi
echo "pg_cron $cron_version: the job runs on the schedule '$schedule'"

# the launcher connects to kmeans_cron (it exits and is restarted every second until the
# database exists: one FATAL in the log)
for _ in $(seq 30); do
    launcher=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher'")
    [ "$launcher" = 1 ] && break
    sleep 1
done
check "pg_cron's launcher is running" "$launcher" 1

# --- three groups of 20 points, around (0, 0), (100, 0) and (200, 0) -----------------------
q "CREATE TABLE points (id int PRIMARY KEY, g int NOT NULL, v real[] NOT NULL)"
q "INSERT INTO points
   SELECT i, i % 3, ARRAY[100 * (i % 3) + ((i * 7) % 11 - 5) * 0.1, ((i * 3) % 7 - 3) * 0.1]::real[]
   FROM generate_series(1, 60) i"

# --- the job: the README's cron.schedule call -------------------------------------------------
job_command="SET kmeans.threads = 1; SELECT count(*) FROM kmeans_fit('points', 'v', 3, model => 'nightly')"
jobid=$(q "SELECT cron.schedule('refit-nightly', '$schedule', \$job\$$job_command\$job\$)")
echo "job $jobid scheduled at $(q "SELECT clock_timestamp()::timestamp(0)")"

# Waits for a run of the job that started after $1 and succeeded; a failed run is reported
# at once.  Then pauses the job and waits for any run already started to end, so that the
# checks read one model.
wait_run() {
    local since=$1 what=$2 t n failed_run
    for ((t = 0; t < wait_s; t++)); do
        failed_run=$(q "SELECT return_message FROM cron.job_run_details
                        WHERE jobid = $jobid AND status = 'failed' LIMIT 1")
        if [ -n "$failed_run" ]; then
            check "$what: the run succeeded" "failed: $failed_run" succeeded
            return 1
        fi
        n=$(q "SELECT count(*) FROM cron.job_run_details
               WHERE jobid = $jobid AND status = 'succeeded' AND start_time > '$since'")
        [ "$n" -ge 1 ] && break
        sleep 1
    done
    q "SELECT cron.alter_job($jobid, active => false)" >/dev/null
    for ((t = 0; t < 30; t++)); do
        [ "$(q "SELECT count(*) FROM cron.job_run_details
                WHERE jobid = $jobid AND status IN ('starting', 'running')")" = 0 ] && break
        sleep 1
    done
    if [ "$n" -lt 1 ]; then
        check "$what: a run that succeeded within ${wait_s}s of $since (schedule '$schedule')" none succeeded
        return 1
    fi
    echo "$what: succeeded after $((SECONDS - start))s"
}

# The model row against the group means of the points as they are now: k, dim, n_rows, and
# each group's rows labelled alike by kmeans_predict, with that cluster's center at the group's
# mean (avg in float8, independent of kmeans) and every row labelled with its nearest center.
check_model() {
    local what=$1
    check "$what: k, dim, n_rows" "$(q "SELECT k || ' ' || dim || ' ' || n_rows FROM kmeans_models WHERE name = 'nightly'")" "3 2 60"
    check "$what: each group one label, three labels" "$(q "
        SELECT count(DISTINCT (g, kmeans_predict('nightly', v))) = 3
           AND count(DISTINCT kmeans_predict('nightly', v)) = 3 FROM points")"
    check "$what: centers at the group means" "$(q "
        WITH m AS (SELECT g, avg(v[1]) AS m1, avg(v[2]) AS m2, min(kmeans_predict('nightly', v)) AS cluster
                   FROM points GROUP BY g)
        SELECT bool_and(abs(c.centers[m.cluster + 1][1] - m.m1) < 1e-4
                    AND abs(c.centers[m.cluster + 1][2] - m.m2) < 1e-4)
        FROM m, kmeans_models c WHERE c.name = 'nightly'")"
    check "$what: every row labelled with its nearest center" "$(q "
        WITH c AS (SELECT i - 1 AS cluster, centers[i][1] AS c1, centers[i][2] AS c2
                   FROM kmeans_models, generate_subscripts(centers, 1) i WHERE name = 'nightly')
        SELECT count(*) FROM points p
        WHERE kmeans_predict('nightly', p.v) <>
              (SELECT cluster FROM c ORDER BY (p.v[1] - c1) ^ 2 + (p.v[2] - c2) ^ 2 LIMIT 1)")" 0
}

# The group whose rows share the label kmeans_predict gives the probe point (80, 0).
probe_group() {
    q "SELECT min(g) FROM points WHERE kmeans_predict('nightly', v) = kmeans_predict('nightly', '{80,0}')"
}

t0=$(q "SELECT now() - interval '1 second'")
if ! wait_run "$t0" "first run"; then finish; fi
created1=$(q "SELECT created_at FROM kmeans_models WHERE name = 'nightly'")
check "first run: the model row is there" "$([ -n "$created1" ] && echo t)"
check_model "first run"
# (80, 0) is nearer group 1's center (100, 0) than group 0's (0, 0)
check "first run: the probe (80, 0) labelled as group 1" "$(probe_group)" 1

# the data moves: every point 40 to the right, and group g up by g; the centers become
# (40, 0), (140, 1), (240, 2), so the probe is now nearer group 0's
q "UPDATE points SET v = ARRAY[v[1] + 40, v[2] + g]::real[]"
t1=$(q "SELECT clock_timestamp()")
q "SELECT cron.alter_job($jobid, active => true)" >/dev/null
if ! wait_run "$t1" "second run"; then finish; fi
check "second run: created_at advanced" "$(q "SELECT created_at > '$created1' FROM kmeans_models WHERE name = 'nightly'")"
check_model "second run"
check "second run: the probe (80, 0) relabelled as group 0" "$(probe_group)" 0

# every run succeeded and said only its last command tag, and no job raised a NOTICE: pg_cron's
# worker writes each one to the server log as "cron job N: NOTICE: ..." (and into return_message
# while the job runs, where the next command tag replaces it).  In a build with the GPU backend
# on a machine without a GPU, the fit's 'auto' falls back to the CPU here on every run.
check "runs: at least two, all succeeded" "$(q "SELECT count(*) >= 2 AND bool_and(status = 'succeeded')
                                                FROM cron.job_run_details WHERE jobid = $jobid")"
check "runs: every return_message is the command tag alone" \
    "$(q "SELECT string_agg(DISTINCT return_message, ' | ') FROM cron.job_run_details WHERE jobid = $jobid")" "SELECT 1"
check "server log: no NOTICE from a job, nothing about the GPU" \
    "$(grep -c -E "cron job $jobid: NOTICE|no usable GPU" "$log")" 0

q "SELECT cron.unschedule($jobid)" >/dev/null
finish
