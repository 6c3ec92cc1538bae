# Sourced by demo.sh, test.sh and bench.sh: the Debian packages a script needs, installed when
# missing.  As root they are installed with apt-get; as another user the script stops and says
# which packages are missing and the command that installs them.

# The packages every script needs: the build tools, PostgreSQL 15's server and its headers.
KMEANS_BUILD_PACKAGES="make gcc g++ postgresql-15 postgresql-server-dev-15"

# What bench.sh needs besides: Debian's python3 and its venv module, from which it makes the
# virtual environment that holds the benchmark's PyPI packages (bench/requirements.txt).
KMEANS_BENCH_PACKAGES="python3 python3-venv"

# Installs (as root) or names (otherwise) the packages of "$@" that are not installed.
kmeans_require() {
    local missing=() p
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "note: not a Debian system; make sure these are installed: $*" >&2
        return 0
    fi
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} = 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "missing packages: ${missing[*]}" >&2
        echo "install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "== installing ${missing[*]}"
    # the packaged server's own cluster is not needed: the scripts run throwaway servers
    if ! DEBIAN_FRONTEND=noninteractive apt-get update -qq >/tmp/kmeans-apt.log 2>&1 ||
       ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
            >>/tmp/kmeans-apt.log 2>&1; then
        tail -20 /tmp/kmeans-apt.log >&2
        echo "apt-get could not install: ${missing[*]}" >&2
        exit 1
    fi
}

# pg_config of PostgreSQL 15 where the Debian packages put it, unless PG_CONFIG says otherwise.
kmeans_pg_config() {
    if [ -z "${PG_CONFIG:-}" ]; then
        if [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
            PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
        else
            PG_CONFIG=pg_config
        fi
    fi
    export PG_CONFIG
}

# Packages that only some checks need (pg_cron for test/cron): as root they are installed like
# the others, and a failure stops the script (CI must run those checks); as another user a
# missing one is named and the function returns 1, so the caller skips the checks that need it.
kmeans_want() {
    local missing=() p
    if [ "$(id -u)" = 0 ] || ! command -v dpkg-query >/dev/null 2>&1; then
        kmeans_require "$@"
        return 0
    fi
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} = 0 ] && return 0
    echo "note: not installed: ${missing[*]}; the checks that need them will be skipped" >&2
    echo "install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    return 1
}
