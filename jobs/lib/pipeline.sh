# shellcheck shell=bash
# jobs/lib/pipeline.sh: the chain of steps of one run and the two ways to
# run it: submitted to Slurm with afterok dependencies (jobs/submit-pipeline)
# or in order on this machine (the local executor, the default without
# sbatch). Sourced after common.sh.

# The steps of a whole run, in order.
readonly ICS_DEFAULT_STEPS=convert,shard,train,consolidate,eval,export

# ics_prepare_run JOB_FILE [STEPS]: creates the run directory named by run.dir (the
# current --set overrides in ICS_CFG_SETS apply) and freezes the run in it:
# run.cfg (a copy of JOB_FILE), overrides, and the recipes. recipe.path is
# empty (dense training, one stage), or names one recipe, whose stages (one for a flat recipe) are trained
# one job each, or a comma-separated list of recipes, one stage each,
# composed before each stage after the first (relative paths are relative
# to JOB_FILE's directory). RUN/recipes/stage-<N>.yaml is the recipe stage N
# trains with; RUN/recipes/input-<N>.yaml the files given. RUN/steps holds
# the steps to run: STEPS when given (a sweep's), else pipeline.steps. Later
# edits of the originals do not change queued jobs. Refuses a directory that already
# holds a run. Sets ICS_RUN_DIR (absolute).
ics_prepare_run() {
    local job_file=$1 steps=${2:-} run_dir cfg_dir recipes recipe i=0 n path
    [ -r "$job_file" ] || ics_die "$ICS_EX_USAGE" "cannot read the run file $job_file"
    # shellcheck disable=SC2034 # read by ics_cfg_get
    ICS_CFG_FILE=$job_file
    ics_cfg_dump "$job_file" >/dev/null || ics_die "$ICS_EX_USAGE" "cannot parse $job_file"
    if [ -n "$steps" ]; then
        ics_check_steps "$steps" sweep.steps
    else
        steps=$(ics_cfg_get pipeline.steps "$ICS_DEFAULT_STEPS")
        ics_check_steps "$steps" pipeline.steps
    fi
    run_dir=$(ics_cfg_get "$ICS_KEY_RUN_DIR" "")
    if [ -z "$run_dir" ]; then
        run_dir=runs/$(basename "$job_file" .cfg)-$(date +%Y%m%d-%H%M%S)
    fi
    if [ -e "$run_dir/run.cfg" ]; then
        ics_die "$ICS_EX_USAGE" "$run_dir already holds a run ($run_dir/run.cfg): choose another $ICS_KEY_RUN_DIR (--set $ICS_KEY_RUN_DIR=DIR)"
    fi
    cfg_dir=$(cd "$(dirname "$job_file")" && pwd)
    recipes=$(ics_cfg_get "$ICS_KEY_RECIPE" "")
    mkdir -p "$run_dir/logs" "$run_dir/recipes" || ics_die 1 "cannot create the run directory $run_dir"
    for recipe in ${recipes//,/ }; do
        case $recipe in /*) path=$recipe ;; *) path=$cfg_dir/$recipe ;; esac
        [ -r "$path" ] || ics_die "$ICS_EX_USAGE" "recipe $path not readable ($ICS_KEY_RECIPE in $job_file)"
        cp "$path" "$run_dir/recipes/input-$i.yaml"
        i=$((i + 1))
    done
    if [ "$i" = 0 ]; then
        # No recipe: one dense training stage.
        echo "1 dense" >"$run_dir/recipes/stages"
    elif [ "$i" = 1 ]; then
        # One (possibly staged) recipe: every stage trains with it as it is.
        n=$(ics_recipe_stage_count "$run_dir/recipes/input-0.yaml")
        echo "$n staged" >"$run_dir/recipes/stages"
        for ((i = 0; i < n; i++)); do cp "$run_dir/recipes/input-0.yaml" "$run_dir/recipes/stage-$i.yaml"; done
    else
        echo "$i composed" >"$run_dir/recipes/stages"
        cp "$run_dir/recipes/input-0.yaml" "$run_dir/recipes/stage-0.yaml"
    fi
    cp "$job_file" "$run_dir/run.cfg"
    echo "$steps" >"$run_dir/steps"
    : >"$run_dir/overrides"
    local set
    for set in "${ICS_CFG_SETS[@]+"${ICS_CFG_SETS[@]}"}"; do
        printf '%s\n' "$set" >>"$run_dir/overrides"
    done
    ICS_RUN_DIR=$(cd "$run_dir" && pwd)
}

# ics_chain: the steps of the loaded run, one "STEP STAGE" a line, in order:
# RUN/steps with train expanded to one train per recipe stage, and a
# compose before each stage after the first when the stages come from
# separate recipes.
ics_chain() {
    local steps step n mode s
    steps=$(cat "$ICS_RUN_DIR/steps")
    read -r n mode <"$ICS_RUN_DIR/recipes/stages"
    for step in ${steps//,/ }; do
        case $step in
            convert|shard|consolidate|eval|export) echo "$step 0" ;;
            train)
                echo "train 0"
                for ((s = 1; s < n; s++)); do
                    if [ "$mode" = composed ]; then echo "compose $s"; fi
                    echo "train $s"
                done ;;
        esac
    done
}

# ics_check_steps STEPS KEY: the comma-separated STEPS (the value of KEY)
# names only known steps (checked before a run directory is made).
ics_check_steps() {
    local steps=$1 key=$2 step
    for step in ${steps//,/ }; do
        case $step in
            convert|shard|train|consolidate|eval|export) ;;
            *) ics_die "$ICS_EX_USAGE" "$key: unknown step '$step' (convert, shard, train, consolidate, eval, export)" ;;
        esac
    done
}

# ics_step_label STEP STAGE: the name of a step's log ("train-s1").
ics_step_label() {
    case $1 in
        train|compose) echo "$1-s$2" ;;
        *) echo "$1" ;;
    esac
}

# ics_run_local: runs the loaded run's chain here, in order, each step
# through its own jobs/STEP.sbatch (the same script Slurm runs), output to
# the terminal and RUN/logs/<step>.log. Steps already listed in
# RUN/steps.done are skipped (a requeued sweep task starts again). A training
# step that stops with a resumable checkpoint (exit 75) runs again, resuming,
# up to pipeline.max_restarts times. The first failing step stops the chain
# with one line naming it and the steps not run; returns that step's code.
# The running step script is ICS_CHILD, so a caller's trap can signal it.
ics_run_local() {
    local -a chain
    local i step stage label rc restarts max_restarts text
    text=$(ics_chain) || return $?
    mapfile -t chain <<<"$text"
    max_restarts=$(ics_cfg_get pipeline.max_restarts 3)
    for ((i = 0; i < ${#chain[@]}; i++)); do
        read -r step stage <<<"${chain[$i]}"
        label=$(ics_step_label "$step" "$stage")
        if grep -qx "$label done" "$ICS_RUN_DIR/steps.done" 2>/dev/null; then
            ics_log "step $label: already done"
            continue
        fi
        restarts=0
        while :; do
            rc=0
            local fd tee_pid
            exec {fd}> >(tee -a "$ICS_RUN_DIR/logs/$label.log")
            tee_pid=$!
            ICS_RESTART_COUNT=$restarts bash "$ICS_JOBS_DIR/$step.sbatch" "$ICS_RUN_DIR" "$stage" >&"$fd" 2>&1 &
            # shellcheck disable=SC2034 # read by ics_wait_child and traps
            ICS_CHILD=$!
            exec {fd}>&-
            ics_wait_child || rc=$?
            wait "$tee_pid" || true
            if [ "$rc" = "$ICS_EX_TEMPFAIL" ] && [ "$step" = train ] && [ "$restarts" -lt "$max_restarts" ] &&
                ! ics_in_slurm; then
                restarts=$((restarts + 1))
                ics_log "step $label: resuming (restart $restarts of at most $max_restarts)"
                continue
            fi
            break
        done
        if [ "$rc" != 0 ]; then
            local rest="" j
            for ((j = i + 1; j < ${#chain[@]}; j++)); do
                read -r step stage <<<"${chain[$j]}"
                rest+=" $(ics_step_label "$step" "$stage")"
            done
            ics_log "pipeline stopped at step $label (exit $rc); not run:${rest:- nothing}"
            ics_log "run directory: $ICS_RUN_DIR (log: $ICS_RUN_DIR/logs/$label.log)"
            return "$rc"
        fi
        echo "$label done" >>"$ICS_RUN_DIR/steps.done"
    done
    ics_log "pipeline done: $ICS_RUN_DIR"
}

# ics_sbatch_site_args STEP: sbatch options from the configuration (defaults,
# site file, job file, --set): partition, account and qos for every job;
# time, nodes, cores per rank, memory, GPUs and the USR1 lead time for
# training jobs; then slurm.extra_args (split on blanks) for anything else.
# Empty values leave the script's #SBATCH default or the cluster's.
ics_sbatch_site_args() {
    local step=$1 v
    v=$(ics_cfg_get slurm.partition ""); [ -z "$v" ] || printf '%s\0' "--partition=$v"
    v=$(ics_cfg_get slurm.account ""); [ -z "$v" ] || printf '%s\0' "--account=$v"
    v=$(ics_cfg_get slurm.qos ""); [ -z "$v" ] || printf '%s\0' "--qos=$v"
    if [ "$step" = train ]; then
        v=$(ics_cfg_get slurm.time ""); [ -z "$v" ] || printf '%s\0' "--time=$v"
        v=$(ics_cfg_get slurm.nodes ""); [ -z "$v" ] || printf '%s\0' "--nodes=$v"
        v=$(ics_cfg_get slurm.cpus_per_task ""); [ -z "$v" ] || printf '%s\0' "--cpus-per-task=$v"
        v=$(ics_cfg_get slurm.mem ""); [ -z "$v" ] || printf '%s\0' "--mem=$v"
        v=$(ics_cfg_get slurm.gpus_per_node 0); [ "$v" = 0 ] || printf '%s\0' "--gpus-per-node=$v"
        v=$(ics_cfg_get slurm.signal_seconds ""); [ -z "$v" ] || printf '%s\0' "--signal=B:USR1@$v"
    fi
    v=$(ics_cfg_get slurm.extra_args "")
    local word
    for word in $v; do printf '%s\0' "$word"; done
}

# ics_submit_chain: submits the loaded run's chain to Slurm, each job
# depending (afterok) on the one before, with --kill-on-invalid-dep=yes so
# that a failed step cancels everything after it. Prints "LABEL JOBID" per
# step and records them in RUN/jobs.txt. A first dependency may be given
# ("afterok:123"); ICS_LAST_JOB is the last job's id.
ics_submit_chain() {
    local prev=${1:-}
    prev=${prev#afterok:}
    local -a chain opts site
    local line step stage label ranks shard_ranks id text
    text=$(ics_chain) || return $?
    mapfile -t chain <<<"$text"
    ranks=$(ics_cfg_get pipeline.ranks 2)
    shard_ranks=$(ics_cfg_get pipeline.shard_ranks 2)
    : >"$ICS_RUN_DIR/jobs.txt"
    for line in "${chain[@]}"; do
        read -r step stage <<<"$line"
        label=$(ics_step_label "$step" "$stage")
        opts=(--parsable --job-name="ics-$label" --output="$ICS_RUN_DIR/logs/$label-%j.out"
              --kill-on-invalid-dep=yes "--export=ALL,ICS_JOBS_DIR=$ICS_JOBS_DIR")
        case $step in
            shard) opts+=(--ntasks="$shard_ranks") ;;
            train|consolidate) opts+=(--ntasks="$ranks") ;;
        esac
        if [ -n "$prev" ]; then opts+=(--dependency="afterok:$prev"); fi
        mapfile -d '' -t site < <(ics_sbatch_site_args "$step")
        id=$(sbatch "${opts[@]}" "${site[@]+"${site[@]}"}" "$ICS_JOBS_DIR/$step.sbatch" "$ICS_RUN_DIR" "$stage") ||
            ics_die 1 "sbatch of step $label failed${prev:+ (after job $prev)}"
        id=${id%%;*}
        echo "$label $id" | tee -a "$ICS_RUN_DIR/jobs.txt"
        prev=$id
    done
    # shellcheck disable=SC2034 # read by the caller
    ICS_LAST_JOB=$prev
}
