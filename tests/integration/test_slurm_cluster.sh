#!/bin/bash
# shellcheck source-path=SCRIPTDIR/../..
# tests/integration/test_slurm_cluster.sh: a real one-node Slurm cluster
# (slurm/start-cluster.sh: munged, slurmctld, slurmd) and real sbatch, srun
# and scontrol, no mocks: dependency chains with a failing step, a job array
# with an afterok collector, requeue after USR1 with SLURM_RESTART_COUNT=1,
# srun of an MPI program with PMIx, then the jobs/ scripts themselves.
# Skips (77) without root or the slurm-wlm and munge packages.
# shellcheck source=tests/lib.sh
. "$top_srcdir/tests/lib.sh"

if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root to run slurmd"; exit 77; fi
for tool in munged slurmctld slurmd sbatch srun scontrol sinfo squeue sbcast; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool not found (apt-get install slurm-wlm munge)"
        exit 77
    fi
done

cluster_out=$TEST_TMP/start.out
if ! "$top_srcdir/slurm/start-cluster.sh" >"$cluster_out" 2>&1; then
    cat "$cluster_out" >&2
    echo "FAIL: the test cluster did not start" >&2
    exit 1
fi
cluster_dir=$(sed -n 's/^export SLURM_CONF=\(.*\)\/slurm.conf$/\1/p' "$cluster_out")
export SLURM_CONF=$cluster_dir/slurm.conf
trap '"$top_srcdir/slurm/stop-cluster.sh" "$cluster_dir"; rm -rf "$TEST_TMP"' EXIT
echo "cluster in $cluster_dir"
T=$TEST_TMP
cd "$T" || exit 1

# job_field ID FIELD: one field of scontrol show job (JobState, ExitCode, ...).
job_field() {
    scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# wait_done ID [SECONDS]: waits until job ID has ended; prints its state.
wait_done() {
    local id=$1 limit=${2:-60} state=""
    local deadline=$((SECONDS + limit))
    while [ $SECONDS -lt $deadline ]; do
        state=$(job_field "$id" JobState)
        case $state in
            COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
                echo "$state"; return 0 ;;
        esac
        sleep 0.3
    done
    echo "still-${state:-unknown}"
}

# expect_state ID STATE: job ID ended in STATE.
expect_state() {
    local got
    got=$(wait_done "$1" 90)
    if [ "$got" != "$2" ]; then
        echo "  job $1 ended $got, wanted $2" >&2
        scontrol show job "$1" | sed 's/^/  | /' >&2
        return 1
    fi
}

# 1. A three-step afterok chain whose second step fails: the third is
# cancelled (DependencyParameters=kill_invalid_depend), never run.
test_chain() {
    local j1 j2 j3
    j1=$(sbatch --parsable -o "$T/chain1.out" --wrap "echo one > $T/chain1")
    j2=$(sbatch --parsable -o "$T/chain2.out" --dependency="afterok:$j1" --wrap "exit 3")
    j3=$(sbatch --parsable -o "$T/chain3.out" --dependency="afterok:$j2" --wrap "echo three > $T/chain3")
    expect_state "$j1" COMPLETED && expect_state "$j2" FAILED &&
        [ "$(job_field "$j2" ExitCode)" = 3:0 ] &&
        expect_state "$j3" CANCELLED &&
        [ "$(job_field "$j3" Reason)" = DependencyNeverSatisfied ] &&
        [ -f "$T/chain1" ] && [ ! -e "$T/chain3" ]
}
check "afterok chain: a failed step cancels the next" test_chain

# 2. A job array and a collector that waits for every element.
test_array() {
    local arr col
    arr=$(sbatch --parsable --array=0-2 -o "$T/arr-%a.out" \
        --wrap "echo \$((SLURM_ARRAY_TASK_ID * 10)) > $T/arr.\$SLURM_ARRAY_TASK_ID")
    col=$(sbatch --parsable -o "$T/collect.out" --dependency="afterok:$arr" \
        --wrap "cat $T/arr.* | sort -n | paste -sd, - > $T/collected")
    expect_state "$col" COMPLETED && [ "$(cat "$T/collected")" = "0,10,20" ]
}
check "job array + afterok collector" test_array

# 3. USR1 to the batch script, which requeues itself; the second run sees
# SLURM_RESTART_COUNT=1 (cred_expire=5 lets it start after ~6 s).
test_requeue() {
    cat >"$T/requeue.sh" <<'SCRIPT'
#!/bin/bash
#SBATCH --requeue
#SBATCH --open-mode=append
log=$1
echo "start restart=${SLURM_RESTART_COUNT:-0}" >>"$log"
if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then
    trap 'echo usr1 >>"$log"; scontrol requeue "$SLURM_JOB_ID"; exit 0' USR1
    echo ready >>"$log"
    for _ in $(seq 600); do sleep 0.1; done
    exit 1
fi
echo resumed >>"$log"
SCRIPT
    local id
    id=$(sbatch --parsable -o "$T/requeue.out" "$T/requeue.sh" "$T/requeue.log")
    for _ in $(seq 100); do grep -q ready "$T/requeue.log" 2>/dev/null && break; sleep 0.2; done
    scancel --signal=USR1 --batch "$id"
    expect_state "$id" COMPLETED &&
        contains "$T/requeue.log" '^usr1$' &&
        contains "$T/requeue.log" '^start restart=1$' &&
        contains "$T/requeue.log" '^resumed$' &&
        [ "$(job_field "$id" Restarts)" = 1 ]
}
check "USR1 -> scontrol requeue -> SLURM_RESTART_COUNT=1" test_requeue

# 4. srun: plain tasks, and an Open MPI program through PMIx, directly and
# inside a batch job.
test_srun() {
    srun -n 2 hostname >"$T/hostname.out" 2>&1 && [ "$(wc -l <"$T/hostname.out")" = 2 ]
}
check "srun -n 2 hostname" test_srun

test_srun_mpi() {
    if ! command -v mpicc >/dev/null 2>&1; then echo "  (no mpicc: skipped)"; return 0; fi
    cat >"$T/hello.c" <<'C'
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    printf("hello %d of %d\n", rank, size);
    MPI_Finalize();
    return 0;
}
C
    mpicc -o "$T/hello" "$T/hello.c" || return 1
    srun -n 2 "$T/hello" >"$T/hello.out" 2>&1 || { cat "$T/hello.out" >&2; return 1; }
    contains "$T/hello.out" '^hello 0 of 2$' && contains "$T/hello.out" '^hello 1 of 2$' || return 1
    local id
    id=$(sbatch --parsable -n 3 -o "$T/hello-batch.out" --wrap "srun $T/hello")
    expect_state "$id" COMPLETED && [ "$(grep -c '^hello [0-2] of 3$' "$T/hello-batch.out")" = 3 ]
}
check "srun of an MPI program (PMIx), direct and in sbatch" test_srun_mpi

# 5. The jobs/ scripts on the cluster, with stand-ins for the executables:
# the afterok chain of a two-stage run, site settings turned into sbatch
# options, shards staged with sbcast, training stopped by USR1 (exit 75),
# requeued and resumed, logs under the run directory.
# shellcheck source=tests/integration/test_jobs_stubs.sh
. "$top_srcdir/tests/integration/test_jobs_stubs.sh"
make_stubs "$T/stubs"
make_recipes "$T"
export STUB_LOG=$T/stub.log ICSPARSE_BINDIR=$T/stubs
export ICSPARSE_DEFAULTS_CONFIG=$top_srcdir/conf/defaults.cfg
cat >"$T/site.cfg" <<CFG
site = { scratch_dir = "$T/scratch/\$SLURM_JOB_ID"; };
slurm = { partition = "long"; extra_args = "--comment=icsparse-test"; signal_seconds = 30; };
CFG
cat >"$T/two.cfg" <<CFG
run = { dir = "$T/run-two"; };
recipe = { path = "prune.yaml,quant.yaml"; };
data = { shards_dir = "$T/shards"; };
pipeline = { ranks = 2; shard_ranks = 2; };
CFG

# wait_chain RUN_DIR: waits for every job of RUN_DIR/jobs.txt; prints
# "LABEL STATE" lines.
wait_chain() {
    local label id
    while read -r label id; do
        echo "$label $(wait_done "$id" 120)"
    done <"$1/jobs.txt"
}

test_jobs_chain() {
    ICSPARSE_SITE_CONFIG=$T/site.cfg STUB_SHARDS=$T/shards STUB_TEMPFAIL=usr1 \
        "$top_srcdir/jobs/submit-pipeline" "$T/two.cfg" >"$T/submit.out" 2>&1 || { cat "$T/submit.out" >&2; return 1; }
    contains "$T/submit.out" "^run directory: $T/run-two$" || return 1
    [ "$(grep -cE '^(convert|shard|train-s0|compose-s1|train-s1|consolidate|eval|export) [0-9]+$' "$T/submit.out")" = 8 ] || return 1
    local train
    train=$(awk '$1 == "train-s0" { print $2 }' "$T/run-two/jobs.txt")
    for _ in $(seq 300); do [ -f "$T/run-two/train-waiting.txt" ] && break; sleep 0.2; done
    scancel --signal=USR1 --batch "$train"
    wait_chain "$T/run-two" >"$T/states.txt"
    diff -u - "$T/states.txt" <<WANT || return 1
convert COMPLETED
shard COMPLETED
train-s0 COMPLETED
compose-s1 COMPLETED
train-s1 COMPLETED
consolidate COMPLETED
eval COMPLETED
export COMPLETED
WANT
    [ "$(job_field "$train" Restarts)" = 1 ] &&
        [ "$(job_field "$train" Partition)" = long ] &&
        [ "$(job_field "$train" Comment)" = icsparse-test ] &&
        [ "$(job_field "$train" NumTasks)" = 2 ] &&
        contains "$T/run-two/train-usr1.txt" '^checkpoint$' &&
        contains "$T/run-two/logs/train-s0-$train.out" "step train: got USR1; asking icsparse-train to checkpoint and stop" &&
        contains "$T/run-two/logs/train-s0-$train.out" "requeueing job $train" &&
        contains "$T/run-two/logs/train-s0-$train.out" "restart 1 on " &&
        contains "$T/run-two/logs/train-s0-$train.out" "staged $T/shards to $T/scratch/$train/icsparse-stage-$train/shards with sbcast" &&
        contains "$T/run-two/train-saw-shards.txt" '^part-00000-of-00002.h5$' &&
        contains "$STUB_LOG" "^icsparse-train 0 .*--set train.resume=\"auto\"" &&
        [ -f "$T/run-two/export/model.onnx" ] && [ ! -e "$T/scratch/$train/icsparse-stage-$train" ]
}
check "jobs/submit-pipeline: chain, site options, sbcast staging, USR1 requeue" test_jobs_chain

# A step that is not implemented yet fails its job; the rest are cancelled.
test_jobs_notimpl() {
    STUB_NOTIMPL=icsparse-consolidate "$top_srcdir/jobs/submit-pipeline" \
        --set "run.dir=\"$T/run-ni\"" --set 'pipeline.steps="train,consolidate,eval,export"' \
        "$T/two.cfg" >"$T/submit-ni.out" 2>&1 || { cat "$T/submit-ni.out" >&2; return 1; }
    wait_chain "$T/run-ni" >"$T/states-ni.txt"
    diff -u - "$T/states-ni.txt" <<WANT || return 1
train-s0 COMPLETED
compose-s1 COMPLETED
train-s1 COMPLETED
consolidate FAILED
eval CANCELLED
export CANCELLED
WANT
    local id
    id=$(awk '$1 == "consolidate" { print $2 }' "$T/run-ni/jobs.txt")
    contains "$T/run-ni/logs/consolidate-$id.out" "step consolidate: icsparse-consolidate is not implemented yet; stopping here" &&
        [ "$(job_field "$id" ExitCode)" = 2:0 ]
}
check "jobs: a step not implemented yet cancels the rest" test_jobs_notimpl

# A sweep: prepare chain, job array (one run per point, srun per step),
# afterok collector writing the table and plot.
test_jobs_sweep() {
    cat >"$T/sweep-run.cfg" <<'CFG'
recipe = { path = "prune.yaml"; };
pipeline = { ranks = 2; shard_ranks = 1; };
CFG
    cat >"$T/sweep.cfg" <<CFG
sweep = {
  run = "sweep-run.cfg";
  dir = "$T/sweep";
  max_parallel = 2;
  grid = { final_sparsity = [0.5, 0.9]; init_lr = [0.01, 0.1]; };
};
CFG
    "$top_srcdir/jobs/submit-sweep" "$T/sweep.cfg" >"$T/sweep.out" 2>&1 || { cat "$T/sweep.out" >&2; return 1; }
    contains "$T/sweep.out" "^sweep directory: $T/sweep \(4 points\)$" || return 1
    local array collect
    array=$(awk '$1 == "array" { print $2 }' "$T/sweep/jobs.txt")
    collect=$(awk '$1 == "collect" { print $2 }' "$T/sweep/jobs.txt")
    expect_state "$collect" COMPLETED || { cat "$T"/sweep/logs/* >&2; return 1; }
    diff -u - <(cut -d, -f1-6 "$T/sweep/results.csv") <<'WANT' || return 1
task,final_sparsity,init_lr,test_top1,sparsity,status
0,0.5,0.01,85,0.5,ok
1,0.5,0.1,85,0.5,ok
2,0.9,0.01,81,0.9,ok
3,0.9,0.1,81,0.9,ok
WANT
    [ -s "$T/sweep/results.png" ] && [ -s "$T/sweep/results.md" ] &&
        [ "$(job_field "${array}_3" JobState)" = COMPLETED ] &&
        [ "$(job_field "${array}_3" NumTasks)" = 2 ] &&
        contains "$T/sweep/logs/task-2-$array.out" "sweep task 2: \{\"final_sparsity\": 0.9, \"init_lr\": 0.01\}" &&
        contains "$T/sweep/task-002/logs/train-s0.log" "running: srun --mpi=pmix --ntasks=2"
}
check "jobs/submit-sweep: array + collector on the cluster" test_jobs_sweep

# A sweep task whose training is stopped by USR1: the task forwards it to
# the step, which requeues the array task; the next run resumes training
# and finishes the point.
test_sweep_requeue() {
    cat >"$T/sweep-rq.cfg" <<CFG
sweep = {
  run = "sweep-run.cfg";
  dir = "$T/sweep-rq";
  prepare = "";
  steps = "train,eval";
  grid = { final_sparsity = [0.7]; };
};
CFG
    STUB_TEMPFAIL=usr1 "$top_srcdir/jobs/submit-sweep" "$T/sweep-rq.cfg" >"$T/sweep-rq.out" 2>&1 ||
        { cat "$T/sweep-rq.out" >&2; return 1; }
    local array collect
    array=$(awk '$1 == "array" { print $2 }' "$T/sweep-rq/jobs.txt")
    collect=$(awk '$1 == "collect" { print $2 }' "$T/sweep-rq/jobs.txt")
    for _ in $(seq 300); do [ -f "$T/sweep-rq/task-000/train-waiting.txt" ] && break; sleep 0.2; done
    scancel --signal=USR1 --batch "${array}_0"
    expect_state "$collect" COMPLETED || { cat "$T"/sweep-rq/logs/* >&2; return 1; }
    [ "$(job_field "${array}_0" Restarts)" = 1 ] &&
        contains "$T/sweep-rq/logs/task-0-$array.out" "sweep task 0: got USR1; passing it to the running step" &&
        contains "$T/sweep-rq/task-000/train-usr1.txt" '^checkpoint$' &&
        contains "$T/sweep-rq/task-000/logs/train-s0.log" "requeueing job" &&
        [ "$(cat "$T/sweep-rq/task-000/steps.done")" = "$(printf 'train-s0 done\neval done')" ] &&
        contains "$T/sweep-rq/results.csv" '^0,0.7,83,0.7,ok,'
}
check "jobs/submit-sweep: a requeued task resumes its point" test_sweep_requeue

# The real executables: every job of the default pipeline completes (prune,
# compose, QAT, consolidate, eval, int8 export) and leaves its output.
test_jobs_real() {
    local run=$T/run-real label state id
    # Leak checking is off for this run only: in a sanitizer build the MPI
    # executables report allocations of dlopen'ed plugins (CUDA runtime,
    # Open MPI components) as "<unknown module>", which no suppression can
    # name; each executable's own tests check its leaks.
    PATH="$top_builddir/src/apps:$top_builddir/data-tools:$PATH" ICSPARSE_BINDIR="" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" STUB_LOG="" \
        "$top_srcdir/jobs/submit-pipeline" --set "run.dir=\"$run\"" --set "data.dir=\"$T/data\"" \
        --set train.epochs=1 --set train.max_steps_per_epoch=2 --set train.test_at_end=false \
        "$top_srcdir/conf/run-fashion-mnist.cfg" >"$T/submit-real.out" 2>&1 || { cat "$T/submit-real.out" >&2; return 1; }
    wait_chain "$run" >"$T/states-real.txt"
    sed 's/^/  | /' "$T/states-real.txt"
    while read -r label state; do
        [ "$state" = COMPLETED ] && continue
        id=$(awk -v l="$label" '$1 == l { print $2 }' "$run/jobs.txt")
        sed 's/^/  | /' "$run/logs/$label-$id.out" >&2
        return 1
    done <"$T/states-real.txt"
    [ "$(wc -l <"$T/states-real.txt")" = 8 ] && real_outputs "$run" "$T/data" "$T/states-real.txt"
}
check "jobs: the real executables run the whole chain (prune, QAT, int8 export)" test_jobs_real

finish
