#!/usr/bin/env bash
# Make sure Debian's headless Chromium and its driver are here for the dashboard's browser tests.
#
#   scripts/chromium.sh    # exit 0: both present (one line says which); exit 3: missing (one line says why)
#
# Installs DEBIAN_PACKAGES with apt-get when they are missing and this is root on Debian; runs
# before the suite enters its loopback-only namespace (apt needs the network). Never upgrades.
set -u
DEBIAN_PACKAGES=(chromium chromium-driver)
LOG=/var/log/rock-envs-chromium.log

present() { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }

if ! present; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "ROCK-ENVS BROWSER: chromium/chromedriver missing and apt-get is not usable here (root on Debian needed)" >&2
        exit 3
    fi
    echo "browser: installing ${DEBIAN_PACKAGES[*]} with apt-get (once) ..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${DEBIAN_PACKAGES[@]}"; } \
        >>"$LOG" 2>&1 || { echo "ROCK-ENVS BROWSER: apt-get install ${DEBIAN_PACKAGES[*]} failed; see $LOG" >&2; exit 3; }
fi
echo "browser: $(chromium --version 2>/dev/null | head -1), $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
