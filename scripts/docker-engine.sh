#!/usr/bin/env bash
# Make sure a Docker engine answers on /var/run/docker.sock, starting one if we can.
#
#   scripts/docker-engine.sh        # exit 0: engine up (one line says which); exit 3: none (one line says why)
#
# Safe to run repeatedly: an engine that already answers is used as is, and this script never
# stops or restarts anything. When it starts dockerd itself, it leaves it running (later test runs
# and other users share it); the pid is in $PIDFILE and the log in $LOG.
#
# Environment:
#   ROCK_ENVS_DOCKER_STORAGE  storage driver(s) to try, in order (default "overlay2 vfs")
#   ROCK_ENVS_DOCKER_WAIT     seconds to wait for a started dockerd to answer (default 60)
set -u

SOCK=/var/run/docker.sock
PIDFILE=/var/run/rock-envs-dockerd.pid
LOG=/var/log/rock-envs-dockerd.log
WAIT=${ROCK_ENVS_DOCKER_WAIT:-60}
# Only the local unix socket counts: a DOCKER_HOST pointing elsewhere is not "this machine's engine".
export DOCKER_HOST=unix://$SOCK

fail() { echo "ROCK-ENVS DOCKER: NO ENGINE: $*" >&2; exit 3; }

answers() { command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; }

report() {
    echo "docker engine: $(timeout 10 docker info --format \
        '{{.ServerVersion}} on {{.OperatingSystem}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}} ({{.CgroupDriver}})' 2>/dev/null) at $SOCK$1"
    exit 0
}

# Wait until the engine answers, or until the dockerd with pid $1 exits, or $WAIT seconds pass.
wait_for() {
    local pid=$1 deadline=$((SECONDS + WAIT))
    while ((SECONDS < deadline)); do
        answers && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.5
    done
    return 2
}

answers && report ""
[[ -S $SOCK && ! -w $SOCK ]] && fail "no permission to use $SOCK (run as root or join the group that owns it)"

# A dockerd we started earlier may still be coming up (e.g. two callers racing): wait for it
# instead of starting a second one.
# (A pid file left by a crashed one may name an unrelated process by now: check it is dockerd.)
ours=$(cat "$PIDFILE" 2>/dev/null)
if [[ -n $ours && $(cat "/proc/$ours/comm" 2>/dev/null) == dockerd ]]; then
    wait_for "$ours" && report " (started earlier by this script, pid $ours)"
    fail "dockerd pid $ours started earlier does not answer on $SOCK; see $LOG"
fi

# Someone else's dockerd may be starting (its socket exists before it answers): wait, never touch it.
if [[ -S $SOCK ]] && other=$(pgrep -xo dockerd); then
    wait_for "$other" && report " (a dockerd not started by this script, pid $other)"
    fail "dockerd pid $other (not started by this script) does not answer on $SOCK"
fi

[[ $(id -u) == 0 ]] || fail "no engine answers on $SOCK and we are not root, so we cannot start dockerd"

if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    command -v apt-get >/dev/null || fail "no engine answers on $SOCK, docker.io is not installed and apt-get is missing"
    echo "docker engine: installing docker.io with apt-get (once) ..." >&2
    # docker.io also ships /usr/bin/docker; /usr/local/bin/docker (if any) stays first on PATH.
    # --no-install-recommends: skip git, apparmor, needrestart and friends we do not need.
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io; } \
        >>"$LOG" 2>&1 || fail "apt-get install docker.io failed; see $LOG"
    # Where services may start (no policy-rc.d), the package starts its own engine: use it.
    answers && report " (started by the docker.io package)"
fi

# No dockerd serves it, so a socket file left here belongs to a dead one and would block ours.
rm -f "$SOCK"

# Keep using vfs where an earlier engine used it (its images live under that driver's folder).
drivers=${ROCK_ENVS_DOCKER_STORAGE:-overlay2 vfs}
[[ -z ${ROCK_ENVS_DOCKER_STORAGE:-} && -d /var/lib/docker/vfs && ! -d /var/lib/docker/overlay2 ]] && drivers=vfs

# --bridge=none/--iptables=false: containers get no network or the host's, and we leave the
# host's firewall alone. overlay2 needs kernel overlayfs on a suitable filesystem; vfs always works
# but copies every layer, so it is only the fallback.
for driver in $drivers; do
    echo "=== $(date -Is) starting dockerd --storage-driver=$driver" >>"$LOG"
    # setsid: the engine must outlive this script and the test run that called it.
    setsid dockerd --host="unix://$SOCK" --pidfile="$PIDFILE" --storage-driver="$driver" \
        --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
        </dev/null >>"$LOG" 2>&1 &
    pid=$!
    wait_for "$pid"
    case $? in
        0) report " (started now by this script, pid $pid, log $LOG)" ;;
        1) echo "docker engine: dockerd exited with --storage-driver=$driver, trying the next driver" >&2 ;;
        *) fail "dockerd pid $pid (--storage-driver=$driver) did not answer within ${WAIT}s; see $LOG" ;;
    esac
done
fail "dockerd would not start with any storage driver in '$drivers'; see $LOG"
