#!/bin/bash
# tests/integration/test_slurm_cluster.sh: a real one-node Slurm cluster
# (slurm/start-cluster.sh: munged, slurmctld, slurmd) and real sbatch, srun
# and scontrol, no mocks: dependency chains with a failing step, a job array
# with an afterok collector, requeue after USR1 with SLURM_RESTART_COUNT=1,
# srun of an MPI program with PMIx, then the jobs/ scripts themselves.
# Skips (77) without root or the slurm-wlm and munge packages.
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
cd "$T"

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

finish
