#!/usr/bin/env bash
# The load generators of `make bench` (python -m bench runs this first): wrk, pgbench and psql.
# wrk comes from Debian's package; pgbench ships with the PostgreSQL server package on Debian 12
# (postgresql-15), psql with the client. Only what is missing is installed.
set -euo pipefail

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# /usr/bin/pgbench and /usr/bin/psql are wrappers that exist without the real programs.
pgbench --version >/dev/null 2>&1 || missing+=(postgresql)
psql --version >/dev/null 2>&1 || missing+=(postgresql-client)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "missing ${missing[*]}: installing needs root: apt-get install ${missing[*]}" >&2
  exit 1
fi
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
echo "bench tools missing: installing Debian's ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
