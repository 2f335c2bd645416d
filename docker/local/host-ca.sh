#!/bin/sh
# Run a build command with this host's extra CA certificates (/usr/local/share/ca-certificates/*.crt, e.g. a
# TLS-inspecting proxy's) copied into the build context for pip to trust, and removed afterwards:
#   docker/local/host-ca.sh docker-compose -f docker-compose.yml -f docker-compose.full.yml \
#       -f docker-compose.local.yml build
# Without such certificates it just runs the command.
set -u
dest="$(cd "$(dirname "$0")/.." && pwd)/host-ca"
src=${MEDVIEW_HOST_CA_DIR:-/usr/local/share/ca-certificates}
copied=""
for crt in "$src"/*.crt; do
  [ -f "$crt" ] || continue
  cp "$crt" "$dest/" && copied="$copied $dest/$(basename "$crt")"
done
cleanup() { [ -z "$copied" ] || rm -f $copied; }
trap cleanup EXIT INT TERM
"$@"
rc=$?
exit $rc
