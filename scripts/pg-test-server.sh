#!/usr/bin/env bash
# A throwaway PostgreSQL server for the Terraform `pg` backend tests and benchmark:
# initdb on a temp dir as the `postgres` user, listening on loopback only.
#   scripts/pg-test-server.sh start [PORT]   prints the connection string (default port 55432)
#   scripts/pg-test-server.sh stop [PORT]
# The data dir is /tmp/pipedeck-pg-PORT; `start` on a running server only prints its URL.
# Debian's `postgresql` package provides the binaries (.ci/run installs it).
set -euo pipefail
cmd="${1:-start}"
port="${2:-55432}"
dir="/tmp/pipedeck-pg-$port"
bin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && bin="$d"; done
if [ -z "$bin" ]; then
  bin="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")"
fi
if [ ! -x "$bin/pg_ctl" ] || [ ! -x "$bin/initdb" ]; then
  echo "pg-test-server: no initdb/pg_ctl found (install Debian's postgresql package)" >&2
  exit 2
fi
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
case "$cmd" in
  start)
    if [ -f "$dir/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      echo "$url"; exit 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    chmod 700 "$dir"
    as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C >"$dir.initdb.log" 2>&1 \
      || { cat "$dir.initdb.log" >&2; exit 1; }
    as_pg "$bin/pg_ctl" -D "$dir" -w -t 30 -l "$dir/server.log" \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    # Terraform's pg backend keeps one sequence for all its schemas and makes it on a
    # schema's first init with CREATE SEQUENCE IF NOT EXISTS, which is not safe against
    # a concurrent one: one of two first inits at once fails on a duplicate key. The
    # tests init in parallel (each in its own schema, and plain terraform beside the
    # engine's), so the sequence is made here, once.
    psql="$bin/psql"; [ -x "$psql" ] || psql="psql"
    as_pg "$psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt \
      -c "CREATE SEQUENCE IF NOT EXISTS public.global_states_id_seq AS bigint" >/dev/null
    echo "$url"
    ;;
  stop)
    if [ -d "$dir" ]; then
      as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
      rm -rf "$dir" "$dir.initdb.log"
    fi
    ;;
  *) echo "usage: $0 start|stop [PORT]" >&2; exit 2 ;;
esac
