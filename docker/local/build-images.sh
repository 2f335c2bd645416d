#!/bin/sh
# Base images for machines that cannot reach a container registry (used with docker-compose.local.yml):
#   medview-local/debian:bookworm   debootstrap --variant=minbase bookworm + docker import (needs root)
#   medview-local/python:3.11       stand-in for python:3.11-slim (Debian's python3 3.11, venv, pip)
#   medview-local/postgres:15       stand-in for postgres:15 (Debian's postgresql-15)
#   medview-local/redis:7           stand-in for redis:7 (Debian's redis-server 7.0)
# Images already present are kept (built once per machine); --force rebuilds them all. Needs docker,
# debootstrap and a Debian mirror (MEDVIEW_DEBIAN_MIRROR, default http://deb.debian.org/debian).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mirror=${MEDVIEW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
force=no
[ "${1:-}" = --force ] && force=yes
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}

have() { [ "$force" = no ] && docker image inspect "$1" >/dev/null 2>&1; }
timed() { start=$(date +%s); "$@"; echo "build-images: ${2:-$1} done in $(( $(date +%s) - start )) s"; }

base() {
  root=$(mktemp -d /var/tmp/medview-debootstrap.XXXXXX)
  trap 'umount "$root/proc" "$root/sys" 2>/dev/null; rm -rf --one-file-system "$root"' EXIT INT TERM
  debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" > "$root/etc/apt/sources.list"
  tar -C "$root" -c . | docker import -c 'CMD ["bash"]' -c 'ENV LANG=C.UTF-8' - medview-local/debian:bookworm >/dev/null
  rm -rf --one-file-system "$root"
  trap - EXIT INT TERM
}

image() {  # image NAME DOCKERFILE
  docker build -q --network host -t "$1" -f "$here/$2" "$here" >/dev/null
}

if ! have medview-local/debian:bookworm; then timed base; fi
# The three stand-ins only share the base: built side by side (their time is mostly downloads).
pids=""
for spec in python:3.11:python postgres:15:postgres redis:7:redis; do
  name=medview-local/${spec%:*}
  have "$name" && continue
  timed image "$name" "${spec##*:}.Dockerfile" &
  pids="$pids $!"
done
failed=no
for pid in $pids; do wait "$pid" || failed=yes; done
[ "$failed" = no ] || { echo "build-images: a stand-in image failed to build (see above)" >&2; exit 1; }
echo "build-images: medview-local/{debian:bookworm,python:3.11,postgres:15,redis:7} ready"
