#!/bin/sh
# Run migrations once, before the server's workers start (never racing inside each worker).
set -e
medview db upgrade
exec "$@"
