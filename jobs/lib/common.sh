# shellcheck shell=bash
# jobs/lib/common.sh: what every job script shares: exit codes, where the
# executables are, the run directory, and how a step is launched (srun inside
# a Slurm allocation, mpirun or a plain call elsewhere).
# Sourced (not run) by jobs/*.sbatch, jobs/submit-* and the local executor;
# expects `set -euo pipefail` in the caller.

# The constants below are used by the scripts that source this file.
# shellcheck disable=SC2034
{
# icsparse-train exits with EX_TEMPFAIL (sysexits.h) when it was asked to stop
# (SIGUSR1/SIGTERM before a time limit or preemption) and saved a resumable
# checkpoint: the job requeues itself and the next run resumes. Defined here
# only.
readonly ICS_EX_TEMPFAIL=75
# The executables' usage/configuration error code, which is also what a
# step that is "not implemented yet" answers.
readonly ICS_EX_USAGE=2

# The configuration keys the scripts read or set, in one place so that a
# renamed key is a one-line change here.
readonly ICS_KEY_RUN_DIR=run.dir
readonly ICS_KEY_RECIPE=recipe.path
readonly ICS_KEY_RECIPE_ARGS=recipe.args
readonly ICS_KEY_STAGE=recipe.stage
readonly ICS_KEY_RESUME=train.resume
readonly ICS_KEY_SHARDS=data.shards_dir
readonly ICS_KEY_SCRATCH=site.scratch_dir
}

ICS_JOBS_DIR=${ICS_JOBS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export ICS_JOBS_DIR
# shellcheck source-path=SCRIPTDIR
# shellcheck source=config.sh
. "$ICS_JOBS_DIR/lib/config.sh"

# ics_log MESSAGE...: one line on stderr, prefixed so it stands out in logs.
ics_log() { echo "icsparse-jobs: $*" >&2; }

# ics_die CODE MESSAGE...: says why and exits with CODE.
ics_die() {
    local code=$1
    shift
    ics_log "error: $*"
    exit "$code"
}

# ics_find_exe NAME: prints the path of executable NAME: $ICSPARSE_BINDIR
# first (a build tree or an install prefix), then PATH. Returns 1 if absent.
ics_find_exe() {
    local name=$1 dir
    if [ -n "${ICSPARSE_BINDIR:-}" ]; then
        for dir in "$ICSPARSE_BINDIR" "$ICSPARSE_BINDIR/src/apps" "$ICSPARSE_BINDIR/data-tools"; do
            if [ -x "$dir/$name" ]; then echo "$dir/$name"; return 0; fi
        done
    fi
    command -v "$name" 2>/dev/null || return 1
}

# ics_load_run RUN_DIR: makes RUN_DIR the current run: its frozen job file
# RUN_DIR/run.cfg and the overrides RUN_DIR/overrides (one key=value a line)
# become the configuration layers. Sets ICS_RUN_DIR (absolute).
ics_load_run() {
    local dir=$1
    [ -r "$dir/run.cfg" ] || ics_die 1 "$dir is not a run directory (no run.cfg): submit with jobs/submit-pipeline"
    ICS_RUN_DIR=$(cd "$dir" && pwd)
    ICS_CFG_FILE=$ICS_RUN_DIR/run.cfg
    ICS_CFG_SETS=()
    local line
    if [ -r "$ICS_RUN_DIR/overrides" ]; then
        while IFS= read -r line; do
            if [ -n "$line" ]; then ICS_CFG_SETS+=("$line"); fi
        done <"$ICS_RUN_DIR/overrides"
    fi
    export ICS_RUN_DIR
}

# ics_exe_args: prints, NUL-separated, the arguments every executable gets:
# the run's job file, its overrides and the run directory.
ics_exe_args() {
    local set
    printf '%s\0' --config "$ICS_CFG_FILE"
    for set in "${ICS_CFG_SETS[@]+"${ICS_CFG_SETS[@]}"}"; do
        printf '%s\0' --set "$set"
    done
    printf '%s\0' --set "$ICS_KEY_RUN_DIR=\"$ICS_RUN_DIR\""
}

# ics_in_slurm: true inside a Slurm allocation where srun can start steps
# (and ICS_LOCAL does not force the local launcher).
ics_in_slurm() {
    [ -n "${SLURM_JOB_ID:-}" ] && [ -z "${ICS_LOCAL:-}" ] && command -v srun >/dev/null 2>&1
}

# ics_launch NRANKS COMMAND...: starts COMMAND on NRANKS MPI ranks and
# returns its exit code. In Slurm: srun with PMIx (PMI2 makes Debian's Open
# MPI abort in MPI_Init; slurm.mpi names the plugin). Elsewhere: mpirun
# (with mpi.mpirun_args, --oversubscribe by default) for more than one rank,
# a plain call (MPI singleton) for one. The command runs in the
# background so that a signal to this script (USR1 before the time limit) is
# handled at once and forwarded to it.
ics_launch() {
    local ranks=$1
    shift
    local -a cmd
    if ics_in_slurm; then
        cmd=(srun "--mpi=$(ics_cfg_get slurm.mpi pmix)" --ntasks="$ranks" --kill-on-bad-exit=1 "$@")
    elif [ "$ranks" -gt 1 ]; then
        if [ "$(id -u)" = 0 ]; then
            export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
        fi
        local -a extra
        read -r -a extra <<<"$(ics_cfg_get mpi.mpirun_args --oversubscribe)"
        cmd=("${MPIRUN:-mpirun}" "${extra[@]+"${extra[@]}"}" -n "$ranks" "$@")
    else
        cmd=("$@")
    fi
    ics_log "running: ${cmd[*]}"
    "${cmd[@]}" &
    ICS_CHILD=$!
    ics_wait_child
}

# ics_wait_child: waits for the background process ICS_CHILD and returns its
# exit code. wait returns early (>128) when a trapped signal arrives; the
# trap forwards the signal to ICS_CHILD, and we wait again for the real code.
ics_wait_child() {
    local rc
    while :; do
        rc=0
        wait "$ICS_CHILD" || rc=$?
        if [ "$rc" -gt 128 ] && kill -0 "$ICS_CHILD" 2>/dev/null; then continue; fi
        break
    done
    ICS_CHILD=""
    return "$rc"
}

# ics_recipe_stage_count FILE: the number of stages of a SparseML recipe:
# top-level keys whose mapping holds a *modifiers* list (stage_0, stage_1,
# ...); 1 for a flat recipe.
ics_recipe_stage_count() {
    awk '
        /^[A-Za-z_][A-Za-z0-9_]*[ \t]*:/ { top = $0; sub(/[ \t]*:.*/, "", top); next }
        /^[ \t]+[A-Za-z0-9_]*modifiers[A-Za-z0-9_]*[ \t]*:/ {
            if (top != "" && top !~ /modifiers/ && !(top in seen)) { seen[top] = 1; n++ }
        }
        END { print (n > 0 ? n : 1) }' "$1"
}

# ics_run_exe STEP NRANKS EXE_NAME ARGS...: runs one icsparse executable for
# pipeline step STEP with the run's configuration, and turns the two ways a
# step can be missing into one plain line: the executable is not built, or
# it answers "not implemented yet" (exit 2). Returns the executable's code.
ics_run_exe() {
    local step=$1 ranks=$2 name=$3
    shift 3
    local exe out rc=0
    exe=$(ics_find_exe "$name") ||
        ics_die 127 "step $step: $name not found (build it, or set ICSPARSE_BINDIR or PATH)"
    local -a base
    mapfile -d '' -t base < <(ics_exe_args)
    out=$(mktemp "${TMPDIR:-/tmp}/icsparse-step.XXXXXX")
    # The output goes to this script's output and to $out (to look for "not
    # implemented yet"); tee is waited for by PID so that $out is complete.
    local fd tee_pid
    exec {fd}> >(tee "$out")
    tee_pid=$!
    ics_launch "$ranks" "$exe" "${base[@]}" "$@" >&"$fd" 2>&1 || rc=$?
    exec {fd}>&-
    wait "$tee_pid" || true
    if [ "$rc" = "$ICS_EX_USAGE" ] && grep -q "not implemented yet" "$out"; then
        rm -f "$out"
        ics_log "step $step: $name is not implemented yet; stopping here"
        return "$rc"
    fi
    rm -f "$out"
    if [ "$rc" != 0 ]; then ics_log "step $step: $name exited with $rc"; fi
    return "$rc"
}
