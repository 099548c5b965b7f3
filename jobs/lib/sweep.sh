# shellcheck shell=bash
# jobs/lib/sweep.sh: a sweep is one run per point of a grid of recipe
# variables (recipe_args), e.g. final_sparsity x init_lr. The sweep file
# (libconfig, read only by these scripts):
#   sweep = {
#     run = "run-fashion-mnist.cfg";  # the run file every point starts from
#     dir = "runs/sweep";             # DIR/task-NNN is point NNN's run directory
#     prepare = "convert,shard";      # steps run once before the points
#     steps = "train,consolidate,eval";  # steps of every point
#     max_parallel = 0;               # array throttle (0: no limit)
#     grid = { final_sparsity = [0.5, 0.8]; init_lr = [0.01, 0.1]; };
#   };
# Sourced after common.sh and pipeline.sh.

# ics_sweep_points FILE: the grid's points, one a line: the recipe_args as a
# YAML flow mapping ("{final_sparsity: 0.5, init_lr: 0.01}"), a tab, and
# the same as JSON. The first key varies slowest.
ics_sweep_points() {
    local file=$1 dump key list v
    dump=$(ics_cfg_dump "$file") || return 1
    local -a keys=() points=("")
    while IFS=$'\t' read -r key list; do
        [ -n "$key" ] || continue
        key=${key#sweep.grid.}
        list=${list#[[(]}
        list=${list%[])]}
        local -a next=() values=()
        IFS=',' read -r -a values <<<"$list"
        [ "${#values[@]}" -gt 0 ] || ics_die "$ICS_EX_USAGE" "$file: sweep.grid.$key has no values"
        local p
        for p in "${points[@]}"; do
            for v in "${values[@]}"; do
                v=${v# }
                v=${v% }
                next+=("$p${p:+|}$key=$v")
            done
        done
        points=("${next[@]}")
        keys+=("$key")
    done < <(grep "^sweep\.grid\." <<<"$dump" || true)
    [ "${#keys[@]}" -gt 0 ] || ics_die "$ICS_EX_USAGE" "$file: no sweep.grid values (sweep = { grid = { VAR = [..]; }; })"
    local point pair yaml json k
    for point in "${points[@]}"; do
        yaml="" json=""
        IFS='|' read -r -a pairs <<<"$point"
        for pair in "${pairs[@]}"; do
            k=${pair%%=*}
            v=${pair#*=}
            yaml+="${yaml:+, }$k: $v"
            json+="${json:+, }\"$k\": $v"
        done
        printf '{%s}\t{%s}\n' "$yaml" "$json"
    done
}

# ics_prepare_sweep FILE: creates the sweep directory sweep.dir (refused if
# it holds a sweep), with sweep.cfg (a copy of FILE), prepare/ (the run
# of the prepare steps) and one run directory per point, task-NNN, whose
# overrides set recipe.args to the point and whose steps are sweep.steps; tasks.tsv lists "INDEX<TAB>RUN_DIR<TAB>PARAMS_JSON" and each
# task-NNN/params.json the point. Sets ICS_SWEEP_DIR and ICS_SWEEP_COUNT.
ics_prepare_sweep() {
    local file=$1 dir run cfg_dir prepare steps points i=0 yaml json task
    [ -r "$file" ] || ics_die "$ICS_EX_USAGE" "cannot read the sweep file $file"
    cfg_dir=$(cd "$(dirname "$file")" && pwd)
    points=$(ics_sweep_points "$file") || exit $?
    dir=$(ICS_CFG_FILE=$file ics_cfg_get sweep.dir "")
    [ -n "$dir" ] || dir=runs/$(basename "$file" .cfg)-$(date +%Y%m%d-%H%M%S)
    run=$(ICS_CFG_FILE=$file ics_cfg_get sweep.run "")
    [ -n "$run" ] || ics_die "$ICS_EX_USAGE" "$file names no run file (sweep.run)"
    case $run in /*) ;; *) run=$cfg_dir/$run ;; esac
    prepare=$(ICS_CFG_FILE=$file ics_cfg_get sweep.prepare "convert,shard")
    [ -z "$prepare" ] || ics_check_steps "$prepare" sweep.prepare
    steps=$(ICS_CFG_FILE=$file ics_cfg_get sweep.steps "train,consolidate,eval")
    ics_check_steps "$steps" sweep.steps
    if [ -e "$dir/sweep.cfg" ]; then
        ics_die "$ICS_EX_USAGE" "$dir already holds a sweep ($dir/sweep.cfg): choose another sweep.dir"
    fi
    mkdir -p "$dir" || ics_die 1 "cannot create the sweep directory $dir"
    ICS_SWEEP_DIR=$(cd "$dir" && pwd)
    local -a base_sets=("${ICS_CFG_SETS[@]+"${ICS_CFG_SETS[@]}"}")
    if [ -n "$prepare" ]; then
        ICS_CFG_SETS=("${base_sets[@]+"${base_sets[@]}"}" "$ICS_KEY_RUN_DIR=\"$ICS_SWEEP_DIR/prepare\"")
        ics_prepare_run "$run" "$prepare"
    fi
    : >"$ICS_SWEEP_DIR/tasks.tsv"
    while IFS=$'\t' read -r yaml json; do
        task=$ICS_SWEEP_DIR/$(printf 'task-%03d' "$i")
        ICS_CFG_SETS=("${base_sets[@]+"${base_sets[@]}"}" "$ICS_KEY_RUN_DIR=\"$task\""
                      "$ICS_KEY_RECIPE_ARGS=\"$yaml\"")
        ics_prepare_run "$run" "$steps"
        echo "$json" >"$task/params.json"
        printf '%d\t%s\t%s\n' "$i" "$task" "$json" >>"$ICS_SWEEP_DIR/tasks.tsv"
        i=$((i + 1))
    done <<<"$points"
    cp "$file" "$ICS_SWEEP_DIR/sweep.cfg"
    # shellcheck disable=SC2034 # read by the caller
    ICS_SWEEP_COUNT=$i
}

# ics_sweep_task_dir SWEEP_DIR INDEX: the run directory of task INDEX.
ics_sweep_task_dir() {
    awk -F '\t' -v i="$2" '$1 == i { print $2; found = 1 } END { exit !found }' "$1/tasks.tsv" ||
        ics_die 1 "sweep $1 has no task $2"
}
