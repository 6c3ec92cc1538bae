#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the demo, the tests and the benchmark.
#
#   scripts/pg-throwaway.sh start DIR [PORT [SETTING...]]
#                                              initdb + start; prints export lines for PGHOST/PGPORT/PGUSER
#   scripts/pg-throwaway.sh stop DIR           stop and delete the cluster
#
# Each SETTING (e.g. "shared_preload_libraries = 'pg_cron'") is a postgresql.conf line, added
# after the defaults below, so it can also override them.
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the ordinary user
# $KMEANS_PG_USER (default kmeans_pg), created if missing.  Binaries come from
# $KMEANS_PG_BINDIR (the private tree of scripts/_lib.sh) or else from pg_config.
set -euo pipefail

cmd=${1:?usage: pg-throwaway.sh start|stop DIR [PORT]}
dir=${2:?usage: pg-throwaway.sh start|stop DIR [PORT]}
port=${3:-54329}
bindir=${KMEANS_PG_BINDIR:-$("${PG_CONFIG:-pg_config}" --bindir)}
user=$(id -un)

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        su "$user" -s /bin/bash -c "$*"
    else
        bash -c "$*"
    fi
}

if [ "$(id -u)" = 0 ]; then
    user=${KMEANS_PG_USER:-kmeans_pg}
    id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /bin/bash "$user"
fi

case "$cmd" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown "$user" "$dir"
    as_owner "'$bindir/initdb' -D '$dir/data' -U '$user' -A trust --no-sync -E UTF8 --locale=C" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
max_parallel_workers_per_gather = 2
CONF
    shift 3 2>/dev/null || shift $#
    for setting in "$@"; do
        printf '%s\n' "$setting" >>"$dir/data/postgresql.conf"
    done
    as_owner "'$bindir/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w start" >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    echo "export PGHOST='$dir' PGPORT=$port PGUSER='$user' PGDATABASE=postgres"
    ;;
stop)
    if [ -d "$dir/data" ]; then
        as_owner "'$bindir/pg_ctl' -D '$dir/data' -m fast -w stop" >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: pg-throwaway.sh start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
