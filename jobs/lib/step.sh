# shellcheck shell=bash
# jobs/lib/step.sh: the frame of one pipeline step script (jobs/*.sbatch):
# arguments, run directory, rank count, restart count, and staging shards to
# node-local scratch. Sourced after common.sh.

# ics_step_begin STEP RUN_DIR [STAGE]: loads the run and says what runs
# where. Sets ICS_STEP and ICS_STAGE (0 when not given).
ics_step_begin() {
    ICS_STEP=$1
    shift
    if [ $# -lt 1 ] || [ $# -gt 2 ]; then
        ics_die "$ICS_EX_USAGE" "usage: $ICS_STEP.sbatch RUN_DIR [STAGE]"
    fi
    ics_load_run "$1"
    ICS_STAGE=${2:-0}
    case $ICS_STAGE in
        ''|*[!0-9]*) ics_die "$ICS_EX_USAGE" "step $ICS_STEP: stage '$ICS_STAGE' is not a number" ;;
    esac
    ics_log "step $ICS_STEP stage $ICS_STAGE run $ICS_RUN_DIR job ${SLURM_JOB_ID:-local}" \
        "restart $(ics_restart_count) on $(hostname)"
}

# ics_restart_count: how many times this step has been started before: Slurm
# counts requeues in SLURM_RESTART_COUNT, the local executor in
# ICS_RESTART_COUNT.
ics_restart_count() { echo "${SLURM_RESTART_COUNT:-${ICS_RESTART_COUNT:-0}}"; }

# ics_step_ranks KEY: MPI ranks for this step: the allocation's task count
# under Slurm, else the configuration's KEY (pipeline.ranks,
# pipeline.shard_ranks).
ics_step_ranks() {
    if ics_in_slurm && [ -n "${SLURM_NTASKS:-}" ]; then
        echo "$SLURM_NTASKS"
    else
        ics_cfg_get "$1" 2
    fi
}

# ics_stage_dir SRC_DIR: copies the files of SRC_DIR to node-local scratch
# when site.scratch_dir names a directory ($SLURM_JOB_ID in it is expanded), and sets ICS_STAGED_DIR to where they
# are (SRC_DIR itself when staging is off). Not for use in $(...): it sets
# globals. In a Slurm job the copy is made on every node
# of the allocation with sbcast (the destination must exist first: one mkdir
# per node); elsewhere with cp. The copy is removed when the script exits.
# shellcheck disable=SC2034 # ICS_STAGED_DIR is read by the caller
ics_stage_dir() {
    local src=$1 scratch dest f
    scratch=$(ics_cfg_get "$ICS_KEY_SCRATCH" "")
    ICS_STAGED_DIR=$src
    if [ -z "$scratch" ]; then return 0; fi
    [ -d "$src" ] || ics_die 1 "step $ICS_STEP: nothing to stage: $src is not a directory"
    # Expand $SLURM_JOB_ID (written literally in site files); locally the
    # shell's PID stands in for it.
    local job=${SLURM_JOB_ID:-local-$$}
    scratch=${scratch//\$\{SLURM_JOB_ID\}/$job}
    scratch=${scratch//\$SLURM_JOB_ID/$job}
    ICS_STAGED_ROOT=$scratch/icsparse-stage-$job
    dest=$ICS_STAGED_ROOT/$(basename "$src")
    if ics_in_slurm; then
        srun --ntasks-per-node=1 --ntasks="${SLURM_JOB_NUM_NODES:-1}" mkdir -p "$dest" >&2 ||
            ics_die 1 "step $ICS_STEP: cannot create $dest on the nodes"
        for f in "$src"/*; do
            [ -f "$f" ] || continue
            sbcast --force "$f" "$dest/$(basename "$f")" >&2 ||
                ics_die 1 "step $ICS_STEP: sbcast of $f to $dest failed"
        done
        ics_log "staged $src to $dest with sbcast"
    else
        if ! { mkdir -p "$dest" && cp -r "$src"/. "$dest"/; }; then
            ics_die 1 "step $ICS_STEP: copying $src to $dest failed"
        fi
        ics_log "staged $src to $dest"
    fi
    ICS_STAGED_DIR=$dest
}

# ics_unstage: removes what ics_stage_dir copied (on every node in Slurm).
ics_unstage() {
    [ -n "${ICS_STAGED_ROOT:-}" ] || return 0
    if ics_in_slurm; then
        srun --ntasks-per-node=1 --ntasks="${SLURM_JOB_NUM_NODES:-1}" rm -rf "$ICS_STAGED_ROOT" || true
    else
        rm -rf "$ICS_STAGED_ROOT"
    fi
}
