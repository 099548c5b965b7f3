#!/bin/bash
# slurm/stop-cluster.sh: stops a cluster started by start-cluster.sh: cancels
# its jobs, waits for its queue to drain, then TERMs only the daemons it
# started (their PIDs are in DIR/*.pid.run) and waits for them. Removes DIR
# unless --keep is given.
# Usage: stop-cluster.sh [--keep] DIR
set -euo pipefail

keep=0
if [ "${1:-}" = --keep ]; then keep=1; shift; fi
if [ $# -ne 1 ]; then echo "usage: $0 [--keep] DIR" >&2; exit 2; fi
dir=$1
[ -d "$dir" ] || { echo "$0: no cluster directory $dir" >&2; exit 1; }
export SLURM_CONF=$dir/slurm.conf

# pid_of NAME: the recorded PID of a daemon, empty when none.
pid_of() { if [ -r "$dir/$1.pid.run" ]; then cat "$dir/$1.pid.run"; fi; }

ctld=$(pid_of slurmctld)
if [ -n "$ctld" ] && kill -0 "$ctld" 2>/dev/null && [ -r "$SLURM_CONF" ]; then
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086 # one job id per word
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 100); do
            [ -z "$(squeue -h -o %A 2>/dev/null || true)" ] && break
            sleep 0.2
        done
    fi
fi

# Reverse start order: the node and controller first, munge last.
for name in slurmd slurmctld munged; do
    pid=$(pid_of "$name")
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$0: $name ($pid) ignored TERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
done

if [ "$keep" = 0 ]; then rm -rf "$dir"; fi
