#!/usr/bin/env bash
# Make sure Debian's redis-server is here for the control/data split's tests and benchmark.
#
#   scripts/redis.sh    # exit 0: present (one line says which); exit 3: missing (one line says why)
#
# Installs DEBIAN_PACKAGES with apt-get when missing and this is root on Debian; runs before the
# suite enters its loopback-only namespace (apt needs the network). Never upgrades, never starts a
# server: each test session starts its own on 127.0.0.1 (tests/support/redis.py).
set -u
DEBIAN_PACKAGES=(redis-server)
LOG=/var/log/rock-envs-redis.log

present() { command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ]; }

if ! present; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "ROCK-ENVS REDIS: redis-server missing and apt-get is not usable here (root on Debian needed)" >&2
        exit 3
    fi
    echo "redis: installing ${DEBIAN_PACKAGES[*]} with apt-get (once) ..." >&2
    # Another apt-get (chromium.sh, a neighbour) may hold the lock: wait for it rather than fail.
    # A policy-rc.d saying 101 keeps the package's own service from starting (each test session
    # starts its own on a free port); one that is there already is left as it is.
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
    fi
    { apt-get -o DPkg::Lock::Timeout=600 update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${DEBIAN_PACKAGES[@]}"; } \
        >>"$LOG" 2>&1
    status=$?
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
    [ $status = 0 ] || { echo "ROCK-ENVS REDIS: apt-get install ${DEBIAN_PACKAGES[*]} failed; see $LOG" >&2; exit 3; }
fi
echo "redis: $(redis-server --version 2>/dev/null | cut -d' ' -f1-3)"
