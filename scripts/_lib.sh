# Sourced by demo.sh, test.sh, bench.sh and fuzz.sh (from the repository root): the build
# packages and pg_config (scripts/_deps.sh), a scratch folder, the build and install, and a
# throwaway server, all removed when the script exits.  A script that needs more packages than
# the build's names them with kmeans_require before sourcing this.
#
# The extension is installed into a private copy of the PostgreSQL installation under the
# scratch folder ($KMEANS_TMP/root, laid out as `make install DESTDIR=...` lays it), and the
# throwaway server runs from that copy: the server finds its share and library folders relative
# to its own binary, so the machine's own installation of kmeans is never replaced.

. scripts/_deps.sh
kmeans_require $KMEANS_BUILD_PACKAGES
kmeans_pg_config

KMEANS_TMP=$(mktemp -d /tmp/kmeans.XXXXXX)
chmod 755 "$KMEANS_TMP"
trap 'scripts/pg-throwaway.sh stop "$KMEANS_TMP/pg" >/dev/null 2>&1; rm -rf "$KMEANS_TMP"' EXIT

KMEANS_ROOT=$KMEANS_TMP/root
# The private tree's pg_config-equivalent folders; pg-throwaway.sh takes its binaries from here.
export KMEANS_PG_BINDIR=$KMEANS_ROOT$("$PG_CONFIG" --bindir)

# Copies the server's binaries, libraries and share folder into the private tree (once).
kmeans_private_tree() {
    local dir
    [ -x "$KMEANS_PG_BINDIR/postgres" ] && return 0
    for dir in "$("$PG_CONFIG" --bindir)" "$("$PG_CONFIG" --pkglibdir)" "$("$PG_CONFIG" --sharedir)"; do
        mkdir -p "$KMEANS_ROOT$dir" && cp -a "$dir/." "$KMEANS_ROOT$dir/" || return 1
    done
    chmod -R a+rX "$KMEANS_ROOT"
}

# Builds the extension and installs it into the private tree (extra make variables as
# arguments); shows the log on failure.
kmeans_build_install() {
    kmeans_private_tree || { echo "could not copy PostgreSQL into $KMEANS_ROOT"; return 1; }
    { make -s PG_CONFIG="$PG_CONFIG" "$@" && make -s PG_CONFIG="$PG_CONFIG" DESTDIR="$KMEANS_ROOT" install; } \
        >"$KMEANS_TMP/build.log" 2>&1 || { cat "$KMEANS_TMP/build.log"; return 1; }
}

# Starts a throwaway server on port $1 and exports PGHOST, PGPORT, PGUSER and PGDATABASE; any
# further arguments are postgresql.conf lines (see scripts/pg-throwaway.sh).
kmeans_start_server() {
    local env
    env=$(scripts/pg-throwaway.sh start "$KMEANS_TMP/pg" "$@") || return 1
    eval "$env"
}
