#!/bin/bash
# shellcheck source-path=SCRIPTDIR/../..
# tests/integration/test_jobs_local.sh: the jobs/ scripts without Slurm:
# the libconfig reader, the local executor (same step scripts, in order,
# mpirun for the MPI steps), stage expansion and compose, resuming a
# training step that exits 75, staging to scratch, the plain stop on a step
# that is missing or "not implemented yet", every error message of the
# scripts, and the real executables as far as they go.
# shellcheck source=tests/lib.sh
. "$top_srcdir/tests/lib.sh"
# shellcheck source=tests/integration/test_jobs_stubs.sh
. "$top_srcdir/tests/integration/test_jobs_stubs.sh"

jobs=$top_srcdir/jobs
T=$TEST_TMP
cd "$T" || exit 1
make_stubs "$T/stubs"
make_recipes "$T"
export STUB_LOG=$T/stub.log
export ICSPARSE_BINDIR=$T/stubs
# The scripts must not see the build's executables for the stub runs.
export PATH=/usr/bin:/bin
export ICSPARSE_DEFAULTS_CONFIG=$top_srcdir/conf/defaults.cfg

# --- the libconfig reader -------------------------------------------------
cat >"$T/reader.cfg" <<'CFG'
# comment
run = { dir = "runs/x # not a comment"; };
train: {
  epochs = 3; // trailing comment
  lr = 0.1; /* block
  comment */ name = "a" "b";
  milestones = [30, 60];
};
sweep = { grid = { final_sparsity = [0.5, 0.9]; }; };
CFG
cat >"$T/site.cfg" <<'CFG'
train = { epochs = 9; lr = 0.5; };
slurm = { partition = "gpu"; };
CFG
reader() {
    # shellcheck source=jobs/lib/common.sh
    . "$jobs/lib/common.sh"
    ics_cfg_dump "$T/reader.cfg" >"$T/dump.txt"
    diff -u - "$T/dump.txt" <<'WANT' || return 1
run.dir	runs/x # not a comment
train.epochs	3
train.lr	0.1
train.name	ab
train.milestones	[30, 60]
sweep.grid.final_sparsity	[0.5, 0.9]
WANT
    # shellcheck disable=SC2034 # read by ics_cfg_get
    ICS_CFG_FILE=$T/reader.cfg ICSPARSE_SITE_CONFIG=$T/site.cfg
    # shellcheck disable=SC2034
    ICS_CFG_SETS=("train.lr=0.25" 'run.name="n1"')
    # job file beats site, --set beats both, site beats defaults.cfg
    [ "$(ics_cfg_get train.epochs 1)" = 3 ] &&
        [ "$(ics_cfg_get train.lr 1)" = 0.25 ] &&
        [ "$(ics_cfg_get run.name x)" = n1 ] &&
        [ "$(ics_cfg_get slurm.partition x)" = gpu ] &&
        [ "$(ics_cfg_get slurm.mpi x)" = pmix ] &&
        [ "$(ics_cfg_get no.such fallback)" = fallback ]
}
check "libconfig reader: syntax and layers" bash -c "$(declare -f reader); jobs=$jobs T=$T; set -euo pipefail; reader"
check "libconfig reader: unreadable file" expect_exit 1 "$T/o" bash -c ". $jobs/lib/common.sh; ics_cfg_dump $T/none.cfg"
check "  says which file" contains "$T/o" "config: cannot read $T/none.cfg"

# --- a two-stage pipeline from separate recipes ----------------------------
cat >"$T/two.cfg" <<'CFG'
run = { dir = "run-two"; };
recipe = { path = "prune.yaml,quant.yaml"; };
pipeline = { ranks = 2; shard_ranks = 3; };
CFG
: >"$STUB_LOG"
check "two-stage pipeline runs to the end" expect_exit 0 "$T/two.out" "$jobs/submit-pipeline" --local --set train.epochs=1 two.cfg
check "  steps in order" diff -u - run-two/steps.done <<'WANT'
convert done
shard done
train-s0 done
compose-s1 done
train-s1 done
consolidate done
eval done
export done
WANT
check "  prints the run directory" contains "$T/two.out" "^run directory: $T/run-two$"
check "  one log per step" test -s run-two/logs/train-s1.log -a -s run-two/logs/compose-s1.log -a -s run-two/logs/export.log
check "  frozen run file, overrides and recipes" \
    bash -c "cmp two.cfg run-two/run.cfg && cmp prune.yaml run-two/recipes/stage-0.yaml && cmp quant.yaml run-two/recipes/input-1.yaml && grep -qx train.epochs=1 run-two/overrides"
check "  train ranks 2, shard ranks 3" \
    bash -c "[ \$(grep -c '^icsparse-train ' $STUB_LOG) = 4 ] && [ \$(grep -c '^icsparse-shard ' $STUB_LOG) = 3 ] && [ \$(grep -c '^icsparse-convert ' $STUB_LOG) = 1 ]"
check "  every step gets the run file, overrides and run.dir" \
    contains "$STUB_LOG" "^icsparse-eval 0 --config $T/run-two/run.cfg --set train.epochs=1 --set run.dir=\"$T/run-two\"$"
check "  stage 0 trains the flat recipe whole" \
    contains "$STUB_LOG" "^icsparse-train 0 .* --set recipe.path=\"$T/run-two/recipes/stage-0.yaml\" --set recipe.stage=-1$"
check "  compose joins the stage trained so far and the next" \
    contains "$STUB_LOG" "^icsparse-compose 0 .* --base $T/run-two/recipes/stage-0.yaml --next $T/run-two/recipes/input-1.yaml -o $T/run-two/recipes/stage-1.yaml$"
check "  stage 1 trains its stage of the composed recipe" \
    bash -c "printf 'stage_0:\n  stage_0_modifiers: []\nstage_1:\n  stage_1_modifiers: []\n' > /dev/null; grep -q 'recipe.path=\"$T/run-two/recipes/stage-1.yaml\" --set recipe.stage=' $STUB_LOG"
check "  outputs of every step" test -f run-two/ckpt/last.h5 -a -f run-two/model.h5 -a -f run-two/results.json -a -f run-two/export/model.onnx

# --- one staged recipe: a train job per stage, no compose -------------------
cat >"$T/staged.cfg" <<'CFG'
run = { dir = "run-staged"; };
recipe = { path = "staged.yaml"; };
pipeline = { steps = "train,eval"; };
CFG
: >"$STUB_LOG"
check "staged recipe: one train per stage" expect_exit 0 "$T/o" "$jobs/submit-pipeline" --local staged.cfg
check "  stages 0 and 1, then eval" diff -u - run-staged/steps.done <<'WANT'
train-s0 done
train-s1 done
eval done
WANT
check "  recipe.stage 0 then 1" bash -c "grep '^icsparse-train 0' $STUB_LOG | grep -q 'recipe.stage=0\$' && grep '^icsparse-train 0' $STUB_LOG | grep -q 'recipe.stage=1\$' && ! grep -q '^icsparse-compose' $STUB_LOG"

# --- a training step that stops with a resumable checkpoint (exit 75) -------
cat >"$T/one.cfg" <<'CFG'
recipe = { path = "prune.yaml"; };
pipeline = { steps = "train,consolidate"; ranks = 1; };
CFG
check "exit 75: the local executor resumes the step" \
    expect_exit 0 "$T/o" env STUB_TEMPFAIL=once "$jobs/submit-pipeline" --local --set run.dir=run-resume one.cfg
check "  says so" contains "$T/o" "step train-s0: resuming \(restart 1 of at most 3\)"
check "  second run resumes" contains run-resume/logs/train-s0.log "restart 1 on .*"
check "  with train.resume=auto" contains "$STUB_LOG" "--set train.resume=\"auto\"$"
check "  then goes on" test -f run-resume/model.h5

# --- staging shards to scratch ---------------------------------------------
cat >"$T/stage.cfg" <<CFG
recipe = { path = "prune.yaml"; };
data = { shards_dir = "$T/shards"; };
site = { scratch_dir = "$T/scratch/\$SLURM_JOB_ID"; };
pipeline = { steps = "shard,train"; ranks = 1; shard_ranks = 1; };
CFG
check "staging: train reads shards from scratch" \
    expect_exit 0 "$T/o" env STUB_SHARDS="$T/shards" "$jobs/submit-pipeline" --local --set run.dir=run-stage stage.cfg
check "  the copies" contains run-stage/train-saw-shards.txt '^part-00001-of-00002.h5$'
check "  under scratch" contains run-stage/train-saw-shards.txt "^$T/scratch/local-[0-9]+/icsparse-stage-local-[0-9]+/shards$"
check "  removed afterwards" bash -c "[ -z \"\$(ls -A $T/scratch/*/ 2>/dev/null)\" ]"
check "  staging a missing directory fails" \
    expect_exit 1 "$T/o" "$jobs/submit-pipeline" --local --set run.dir=run-stage2 --set 'pipeline.steps="train"' \
    --set "data.shards_dir=\"$T/shards2\"" stage.cfg
check "  and says which" contains "$T/o" "step train: nothing to stage: $T/shards2 is not a directory"

# --- a step that is not implemented yet, or not built -----------------------
check "not implemented yet: the pipeline stops" \
    expect_exit 2 "$T/o" env STUB_NOTIMPL=icsparse-consolidate "$jobs/submit-pipeline" --local --set run.dir=run-ni two.cfg
check "  naming the step" contains "$T/o" "step consolidate: icsparse-consolidate is not implemented yet; stopping here"
check "  and what did not run" contains "$T/o" "pipeline stopped at step consolidate \(exit 2\); not run: eval export"
check "  nothing after it ran" bash -c "! grep -q '^consolidate done' run-ni/steps.done && [ ! -e run-ni/results.json ]"
mkdir -p "$T/empty"
check "missing executable: the pipeline stops" \
    expect_exit 127 "$T/o" env ICSPARSE_BINDIR="$T/empty" "$jobs/submit-pipeline" --local --set run.dir=run-none two.cfg
check "  naming it" contains "$T/o" "step convert: icsparse-convert not found \(build it, or set ICSPARSE_BINDIR or PATH\)"
check "  and the rest" contains "$T/o" "not run: shard train-s0 compose-s1 train-s1 consolidate eval export$"
check "a failing step stops the chain with its code" \
    expect_exit 3 "$T/o" bash -c "printf '#!/bin/bash\nexit 3\n' > $T/stubs/icsparse-eval; chmod +x $T/stubs/icsparse-eval; $jobs/submit-pipeline --local --set run.dir=run-fail two.cfg"
check "  says so" contains "$T/o" "step eval: icsparse-eval exited with 3"
make_stubs "$T/stubs"

# --- usage and configuration errors ----------------------------------------
check "run directory in use" expect_exit 2 "$T/o" "$jobs/submit-pipeline" --local two.cfg
check "  message" contains "$T/o" "run-two already holds a run \(run-two/run.cfg\): choose another run.dir \(--set run.dir=DIR\)"
check "no run file" expect_exit 2 "$T/o" "$jobs/submit-pipeline" --local "$T/none.cfg"
check "  message" contains "$T/o" "cannot read the run file $T/none.cfg"
check "no arguments" expect_exit 2 "$T/o" "$jobs/submit-pipeline"
check "  usage" contains "$T/o" "^usage: submit-pipeline \[--local\] \[--set KEY=VALUE\]... RUN.cfg$"
check "unknown option" expect_exit 2 "$T/o" "$jobs/submit-pipeline" --bogus two.cfg
check "  message" contains "$T/o" "unknown option '--bogus'"
check "--set without =" expect_exit 2 "$T/o" "$jobs/submit-pipeline" --set novalue two.cfg
check "  message" contains "$T/o" "--set wants KEY=VALUE, not 'novalue'"
echo 'run = { dir = "r"; };' >"$T/norecipe.cfg"
: >"$STUB_LOG"
check "no recipe: one dense training stage" expect_exit 0 "$T/o" "$jobs/submit-pipeline" --local norecipe.cfg
check "  train without recipe keys" contains "$STUB_LOG" "^icsparse-train 0 --config $T/r/run.cfg --set run.dir=\"$T/r\"$"
check "  stage 1 of a dense run" expect_exit 1 "$T/o" bash "$jobs/train.sbatch" r 1
check "  message" contains "$T/o" "step train: a run without recipe has only stage 0, not 1"
check "missing recipe" expect_exit 2 "$T/o" "$jobs/submit-pipeline" --local --set 'recipe.path="nope.yaml"' --set run.dir=r2 norecipe.cfg
check "  message" contains "$T/o" "recipe $T/nope.yaml not readable \(recipe.path in norecipe.cfg\)"
check "unknown step" expect_exit 2 "$T/o" "$jobs/submit-pipeline" --local --set 'pipeline.steps="convert,fly"' --set run.dir=r3 one.cfg
check "  message" contains "$T/o" "pipeline.steps: unknown step 'fly'"
check "step script: usage" expect_exit 2 "$T/o" bash "$jobs/eval.sbatch"
check "  message" contains "$T/o" "usage: eval.sbatch RUN_DIR \[STAGE\]"
check "step script: not a run directory" expect_exit 1 "$T/o" bash "$jobs/eval.sbatch" "$T"
check "  message" contains "$T/o" "$T is not a run directory \(no run.cfg\): submit with jobs/submit-pipeline"
check "step script: bad stage" expect_exit 2 "$T/o" bash "$jobs/train.sbatch" run-two x1
check "  message" contains "$T/o" "step train: stage 'x1' is not a number"
check "compose of stage 0" expect_exit 2 "$T/o" bash "$jobs/compose.sbatch" run-two 0
check "  message" contains "$T/o" "step compose: stage must be 1 or more"
check "train of a stage without recipe" expect_exit 1 "$T/o" bash "$jobs/train.sbatch" run-two 7
check "  message" contains "$T/o" "step train: no recipe $T/run-two/recipes/stage-7.yaml for stage 7"
check "jobs library not found" expect_exit 1 "$T/o" env ICS_JOBS_DIR="$T/empty" bash "$jobs/eval.sbatch" run-two
check "  message" contains "$T/o" "cannot find the jobs library $T/empty/lib \(set ICS_JOBS_DIR; jobs/submit-pipeline does\)"

# --- sweeps ---------------------------------------------------------------
cat >"$T/sweep-run.cfg" <<'CFG'
recipe = { path = "prune.yaml"; };
pipeline = { ranks = 1; shard_ranks = 1; };
CFG
cat >"$T/sweep.cfg" <<'CFG'
sweep = {
  run = "sweep-run.cfg";
  dir = "sweep1";
  grid = { final_sparsity = [0.5, 0.9]; init_lr = [0.01, 0.1]; };
};
CFG
: >"$STUB_LOG"
check "sweep: every point, then one table" expect_exit 0 "$T/o" "$jobs/submit-sweep" --local sweep.cfg
check "  the table (CSV)" diff -u - <(cut -d, -f1-6 sweep1/results.csv) <<'WANT'
task,final_sparsity,init_lr,test_top1,sparsity,status
0,0.5,0.01,85,0.5,ok
1,0.5,0.1,85,0.5,ok
2,0.9,0.01,81,0.9,ok
3,0.9,0.1,81,0.9,ok
WANT
check "  the table (Markdown)" contains sweep1/results.md '^\| 3 \| 0.9 \| 0.1 \| 81 \| 0.9 \| ok \|$'
check "  the plot is a PNG" bash -c "[ \"\$(head -c 8 sweep1/results.png | od -An -tx1 | tr -d ' \n')\" = 89504e470d0a1a0a ]"
check "  each point its own run with its recipe_args" \
    contains sweep1/task-002/overrides '^recipe.args="\{final_sparsity: 0.9, init_lr: 0.01\}"$'
check "  and its params.json" contains sweep1/task-002/params.json '^\{"final_sparsity": 0.9, "init_lr": 0.01\}$'
check "  data prepared once" bash -c "[ \$(grep -c '^icsparse-convert ' $STUB_LOG) = 1 ] && [ \$(grep -c '^icsparse-train ' $STUB_LOG) = 4 ]"
check "  the collector says where" contains "$T/o" "collect-sweep: 4 points -> $T/sweep1/results.csv, results.md"
check "sweep: a failed point" expect_exit 1 "$T/o" env STUB_NOTIMPL=icsparse-eval \
    "$jobs/submit-sweep" --local --set 'sweep.dir="sweep2"' sweep.cfg
check "  is named" contains "$T/o" "sweep: point\(s\) 0 1 2 3 failed \(see their logs under $T/sweep2/task-\*/logs\)"
check "  and missing in the table" contains sweep2/results.csv '^0,0.5,0.01,,,missing,'
check "  the collector says so" contains "$T/o" "collect-sweep: no metrics for task\(s\) 0, 1, 2, 3"
echo '{"test_top1": 1}' >sweep1/task-001/results.json
check "collect-sweep: a results.json without sparsity" expect_exit 1 "$T/o" "$jobs/collect-sweep" sweep1
check "  message" contains "$T/o" "collect-sweep: task 1: $T/sweep1/task-001/results.json: no sparsity"
check "sweep: the prepare steps fail" expect_exit 2 "$T/o" env STUB_NOTIMPL=icsparse-shard \
    "$jobs/submit-sweep" --local --set 'sweep.dir="sweep3"' sweep.cfg
check "  message" contains "$T/o" "sweep: the prepare steps failed: no point can run"
example_points() {
    # shellcheck source=jobs/lib/common.sh
    . "$jobs/lib/common.sh"
    # shellcheck source=jobs/lib/pipeline.sh
    . "$jobs/lib/pipeline.sh"
    # shellcheck source=jobs/lib/sweep.sh
    . "$jobs/lib/sweep.sh"
    ics_sweep_points "$top_srcdir/conf/run-sweep-fashion-mnist.cfg" | cut -f2
}
check "the example sweep's grid" diff -u - <(export jobs; example_points) <<'WANT'
{"final_sparsity": 0.5, "init_lr": 0.01}
{"final_sparsity": 0.5, "init_lr": 0.05}
{"final_sparsity": 0.7, "init_lr": 0.01}
{"final_sparsity": 0.7, "init_lr": 0.05}
{"final_sparsity": 0.9, "init_lr": 0.01}
{"final_sparsity": 0.9, "init_lr": 0.05}
WANT
check "sweep: unknown step" expect_exit 2 "$T/o" "$jobs/submit-sweep" --local --set 'sweep.steps="train,fly"' --set 'sweep.dir="sweep4"' sweep.cfg
check "  message" contains "$T/o" "sweep.steps: unknown step 'fly'"
check "  nothing made" test ! -e sweep4
check "sweep: only eval per point" expect_exit 0 "$T/o" "$jobs/submit-sweep" --local --set 'sweep.steps="eval"' --set 'sweep.prepare=""' --set 'sweep.dir="sweep5"' sweep.cfg
check "  no prepare run, one step per point" bash -c "[ ! -e sweep5/prepare ] && [ \"\$(cat sweep5/task-003/steps)\" = eval ] && [ \"\$(cat sweep5/task-003/steps.done)\" = 'eval done' ]"
check "  steps are not passed to the executables" bash -c "! grep -q 'pipeline.steps' sweep5/task-003/overrides"
check "sweep dir in use" expect_exit 2 "$T/o" "$jobs/submit-sweep" --local sweep.cfg
check "  message" contains "$T/o" "sweep1 already holds a sweep \(sweep1/sweep.cfg\): choose another sweep.dir"
echo 'sweep = { run = "sweep-run.cfg"; };' >"$T/nogrid.cfg"
check "sweep without grid" expect_exit 2 "$T/o" "$jobs/submit-sweep" --local nogrid.cfg
check "  message" contains "$T/o" "nogrid.cfg: no sweep.grid values \(sweep = \{ grid = \{ VAR = \[..\]; \}; \}\)"
echo 'sweep = { run = "sweep-run.cfg"; grid = { lr = []; }; };' >"$T/emptygrid.cfg"
check "sweep with an empty list" expect_exit 2 "$T/o" "$jobs/submit-sweep" --local emptygrid.cfg
check "  message" contains "$T/o" "emptygrid.cfg: sweep.grid.lr has no values"
echo 'sweep = { grid = { lr = [0.1]; }; };' >"$T/norun.cfg"
check "sweep without run file" expect_exit 2 "$T/o" "$jobs/submit-sweep" --local norun.cfg
check "  message" contains "$T/o" "norun.cfg names no run file \(sweep.run\)"
check "sweep file missing" expect_exit 2 "$T/o" "$jobs/submit-sweep" --local none.cfg
check "  message" contains "$T/o" "cannot read the sweep file none.cfg"
check "submit-sweep usage" expect_exit 2 "$T/o" "$jobs/submit-sweep"
check "  message" contains "$T/o" "^usage: submit-sweep \[--local\] \[--set KEY=VALUE\]... SWEEP.cfg$"
check "collect-sweep usage" expect_exit 2 "$T/o" "$jobs/collect-sweep"
check "  message" contains "$T/o" "^usage: collect-sweep SWEEP_DIR$"
check "collect-sweep: not a sweep" expect_exit 2 "$T/o" "$jobs/collect-sweep" "$T"
check "  message" contains "$T/o" "collect-sweep: $T is not a sweep directory \(no tasks.tsv\)"
check "sweep-task: usage" expect_exit 2 "$T/o" bash "$jobs/sweep-task.sbatch"
check "  message" contains "$T/o" "usage: sweep-task.sbatch SWEEP_DIR \[INDEX\]"
check "sweep-task: no index" expect_exit 2 "$T/o" env -u SLURM_ARRAY_TASK_ID bash "$jobs/sweep-task.sbatch" sweep1
check "  message" contains "$T/o" "sweep-task: no INDEX and no SLURM_ARRAY_TASK_ID"
check "sweep-task: no such task" expect_exit 1 "$T/o" bash "$jobs/sweep-task.sbatch" sweep1 9
check "  message" contains "$T/o" "sweep sweep1 has no task 9"
check "sweep-task: a point by hand skips its done steps" expect_exit 0 "$T/o" bash "$jobs/sweep-task.sbatch" sweep1 0
check "  message" contains "$T/o" "step train-s0: already done"

# --- the real executables: every step runs and leaves its output ------------
real_run() {
    local run=$T/run-real rc=0
    # Leak checking is off for this run only: in a sanitizer build the MPI
    # executables report allocations of dlopen'ed plugins (CUDA runtime,
    # Open MPI components) as "<unknown module>", which no suppression can
    # name; each executable's own tests check its leaks.
    PATH="$top_builddir/src/apps:$top_builddir/data-tools:/usr/bin:/bin" ICSPARSE_BINDIR="" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
        "$jobs/submit-pipeline" --local --set "run.dir=\"$run\"" \
        --set "data.dir=\"$T/data\"" --set train.epochs=1 --set train.max_steps_per_epoch=2 \
        --set train.test_at_end=false \
        "$top_srcdir/conf/run-fashion-mnist.cfg" >"$T/real.out" 2>&1 || rc=$?
    sed 's/^/  | /' "$T/real.out" | tail -n 20
    real_outputs "$run" "$T/data" || return 1
    [ "$rc" = 0 ] && [ "$(wc -l <"$run/steps.done")" = 8 ]
}
unset ICSPARSE_BINDIR STUB_LOG
check "real executables: the whole chain (prune, compose, QAT, consolidate, eval, int8 export)" real_run

finish
