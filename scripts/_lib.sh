# Sourced by demo.sh, test.sh and bench.sh (from the repository root): a scratch folder, the
# build and install, and a throwaway server, all removed when the script exits.

PG_CONFIG=${PG_CONFIG:-pg_config}
KMEANS_TMP=$(mktemp -d /tmp/kmeans.XXXXXX)
chmod 755 "$KMEANS_TMP"
trap 'scripts/pg-throwaway.sh stop "$KMEANS_TMP/pg" >/dev/null 2>&1; rm -rf "$KMEANS_TMP"' EXIT

# Builds and installs the extension (extra make variables as arguments); shows the log on failure.
kmeans_build_install() {
    { make -s PG_CONFIG="$PG_CONFIG" "$@" && make -s PG_CONFIG="$PG_CONFIG" install; } \
        >"$KMEANS_TMP/build.log" 2>&1 || { cat "$KMEANS_TMP/build.log"; return 1; }
}

# Starts a throwaway server on port $1 and exports PGHOST, PGPORT, PGUSER and PGDATABASE.
kmeans_start_server() {
    local env
    env=$(scripts/pg-throwaway.sh start "$KMEANS_TMP/pg" "$1") || return 1
    eval "$env"
}
