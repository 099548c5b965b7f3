#!/bin/bash
# slurm/start-cluster.sh: starts a private one-node Slurm cluster (munged,
# slurmctld, slurmd) under a fresh short directory and waits until the node
# is idle. Prints the environment to use, e.g.
#   export SLURM_CONF=/tmp/slurm.AbC123/slurm.conf
# (also written to DIR/env.sh). Stop it with slurm/stop-cluster.sh DIR.
#
# Usage: start-cluster.sh [--dir DIR] [--timeout SECONDS]
# Needs root (slurmd starts jobs as their users) and Debian's slurm-wlm and
# munge packages. Exit codes: 0 ready, 1 failed (logs are kept in DIR),
# 2 usage, 77 missing root or binaries (the automake SKIP code).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
template=${ICSPARSE_SLURM_TEMPLATE:-$here/slurm.conf.in}
dir=""
timeout=30

usage() { echo "usage: $0 [--dir DIR] [--timeout SECONDS]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --dir) [ $# -ge 2 ] || usage; dir=$2; shift 2 ;;
        --timeout) [ $# -ge 2 ] || usage; timeout=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "$0: unknown argument '$1'" >&2; usage ;;
    esac
done

if [ "$(id -u)" != 0 ]; then
    echo "$0: needs root (slurmd runs jobs as their owners)" >&2
    exit 77
fi
for tool in munged slurmctld slurmd sinfo; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$0: $tool not found (install slurm-wlm and munge)" >&2
        exit 77
    fi
done
[ -r "$template" ] || { echo "$0: template $template not readable" >&2; exit 1; }

if [ -z "$dir" ]; then
    # Short on purpose: the munge and slurmd sockets live here (108-byte limit).
    dir=$(mktemp -d /tmp/slurm.XXXXXX)
else
    mkdir -p "$dir"
    chmod 700 "$dir"
fi
mkdir -p "$dir/state" "$dir/spool"

# used_ports: every local TCP port in use (any state), in decimal.
used_ports() {
    local f
    for f in /proc/net/tcp /proc/net/tcp6; do
        [ -r "$f" ] || continue
        awk 'NR > 1 { split($2, a, ":"); print a[2] }' "$f"
    done | while read -r hex; do echo "$((16#$hex))"; done | sort -u
}

# free_port EXCLUDE...: a port in 20000-59999 that nothing uses and that is
# not among EXCLUDE. A daemon started on a busy port exits 0 and dies later,
# and clients then talk to another cluster: hence the explicit choice.
free_port() {
    local used port tries=0
    used=$(used_ports)
    while [ $tries -lt 200 ]; do
        port=$((20000 + RANDOM % 40000))
        tries=$((tries + 1))
        if ! grep -qx -- "$port" <<<"$used" && ! grep -qwx -- "$port" <<<"$*"; then
            echo "$port"
            return 0
        fi
    done
    echo "$0: no free TCP port found" >&2
    return 1
}

ctld_port=$(free_port)
slurmd_port=$(free_port "$ctld_port")
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 / 2 }' /proc/meminfo)
user=$(id -un)
sed -e "s|@DIR@|$dir|g" -e "s|@CTLD_PORT@|$ctld_port|g" \
    -e "s|@SLURMD_PORT@|$slurmd_port|g" -e "s|@MEM_MB@|$mem_mb|g" \
    -e "s|@USER@|$user|g" "$template" >"$dir/slurm.conf"
export SLURM_CONF=$dir/slurm.conf

# A private munge key and daemon: the system one may be absent or foreign.
dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge.key"

# start_daemon NAME COMMAND...: runs COMMAND in the background (in the
# foreground mode of the daemon) and records its PID in DIR/NAME.pid.run.
start_daemon() {
    local name=$1
    shift
    "$@" >"$dir/$name.out" 2>&1 </dev/null &
    echo $! >"$dir/$name.pid.run"
}

# fail MESSAGE: says what failed and where the logs are, stops what started.
fail() {
    echo "$0: $*" >&2
    local log
    for log in munged.log munged.out slurmctld.log slurmctld.out slurmd.log slurmd.out; do
        [ -s "$dir/$log" ] || continue
        echo "--- $dir/$log (last lines)" >&2
        tail -n 15 "$dir/$log" >&2
    done
    "$here/stop-cluster.sh" --keep "$dir" >/dev/null 2>&1 || true
    exit 1
}

# alive NAME: the daemon recorded under NAME is still running.
alive() {
    local pid
    pid=$(cat "$dir/$1.pid.run")
    kill -0 "$pid" 2>/dev/null
}

start_daemon munged munged --foreground --force --socket="$dir/munge.sock" \
    --key-file="$dir/munge.key" --pid-file="$dir/munged.pid" \
    --log-file="$dir/munged.log" --seed-file="$dir/munged.seed"
for _ in $(seq 50); do
    [ -S "$dir/munge.sock" ] && break
    alive munged || fail "munged exited"
    sleep 0.1
done
[ -S "$dir/munge.sock" ] || fail "munged did not create its socket"

start_daemon slurmctld slurmctld -D -i -f "$dir/slurm.conf"
start_daemon slurmd slurmd -D -N localhost -f "$dir/slurm.conf"

deadline=$((SECONDS + timeout))
state=""
while [ $SECONDS -lt $deadline ]; do
    for d in munged slurmctld slurmd; do
        alive "$d" || fail "$d exited while starting"
    done
    state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
done
[ "$state" = idle ] || fail "node not idle after ${timeout}s (state '${state:-none}')"

echo "export SLURM_CONF=$dir/slurm.conf" >"$dir/env.sh"
echo "export SLURM_CONF=$dir/slurm.conf"
echo "# cluster directory: $dir (stop: $here/stop-cluster.sh $dir)"
