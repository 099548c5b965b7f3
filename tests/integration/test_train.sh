#!/bin/bash
# icsparse-train and icsparse-eval end to end on real Fashion-MNIST images
# (a small subset, so the test stays short): training on 1 and 2 MPI ranks,
# checkpoints and metrics, exact resume, preemption by SIGUSR1 and SIGTERM
# with exit code 75 and a resume that finishes, TensorBoard read back by
# TensorBoard, icsparse-eval on a split and on given inputs, bad input.
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

out=$TEST_TMP/out
python3 "$top_srcdir/tests/tools/idx_subset.py" "$TEST_TMP/idx" 1280 256
icsparse-convert --source "$TEST_TMP/idx" --format idx -o "$TEST_TMP/fm.h5" --quiet
cat >"$TEST_TMP/job.cfg" <<CFG
data = { path = "$TEST_TMP/fm.h5"; shards_dir = ""; prefetch = true; };
model = { arch = "simple_cnn"; };
train = { batch_size = 64; keep_last = 0; checkpoint_every_minutes = 0.0; };
optim = { lr = 0.05; momentum = 0.9; nesterov = true; weight_decay = 5e-4; };
sched = { name = "cosine"; interval = "step"; };
log = { every_steps = 5; progress = "lines"; };
CFG
train() { icsparse-train --config "$TEST_TMP/job.cfg" --threads 1 "$@"; }

# 1. One rank, two epochs: checkpoints, metrics, results.
check "train 2 epochs on 1 rank" expect_exit 0 "$out" train --run-dir "$TEST_TMP/r1" --epochs 2
check "progress lines in optimizer steps" contains "$out" 'step 10/36 epoch 0\.56 loss'
check "last and best checkpoints" test -s "$TEST_TMP/r1/ckpt/last.h5" -a -s "$TEST_TMP/r1/ckpt/best.h5"
check "no temporary files left" bash -c "! ls '$TEST_TMP/r1/ckpt' | grep -q tmp"
check "metrics.jsonl has train loss at step 5" contains "$TEST_TMP/r1/metrics.jsonl" '"step": ?5\b.*"train/loss"'
check "metrics.jsonl has val top-1 at the last step" contains "$TEST_TMP/r1/metrics.jsonl" '"step": ?36\b.*"val/top1"'
check "results.json: learned something (test top-1 > 50%)" \
    "$PYTHON_TORCH" -c "import json,sys; r=json.load(open('$TEST_TMP/r1/results.json')); print(r); sys.exit(0 if r['test_top1'] > 50 and r['global_step'] == 36 else 1)"

check "train.eval_every_steps evaluates between epoch ends" expect_exit 0 "$out" train --run-dir "$TEST_TMP/mid" \
    --epochs 1 --set train.eval_every_steps=4 --set train.test_at_end=false
check "val/top1 logged at steps 4, 8, 12, 16 and 18" bash -c "
    for s in 4 8 12 16 18; do grep -qE '\"step\":\s*'\$s',.*\"val/top1\"' '$TEST_TMP/mid/metrics.jsonl' || exit 1; done
    ! grep -qE '\"step\":\s*6,.*\"val/top1\"' '$TEST_TMP/mid/metrics.jsonl'"
check "EMA weights evaluated and checkpointed" expect_exit 0 "$out" train --run-dir "$TEST_TMP/ema" --epochs 1 \
    --set ema.enabled=true --set ema.every_steps=2 --set train.test_at_end=false
check "val_ema/top1 logged" contains "$TEST_TMP/ema/metrics.jsonl" '"val_ema/top1"'
check "EMA in the checkpoint" bash -c "h5ls '$TEST_TMP/ema/ckpt/last.h5' | grep -q '^ema'"

# 2. TensorBoard's own reader sees the same steps and values as metrics.jsonl.
tb_rc=0
"$PYTHON_TORCH" "$top_srcdir/tests/tools/tb_read.py" "$TEST_TMP/r1/tensorboard" >"$TEST_TMP/tb.txt" 2>&1 || tb_rc=$?
if [ "$tb_rc" = 77 ]; then
    echo "SKIP: TensorBoard check: $(cat "$TEST_TMP/tb.txt")"
else
    check "TensorBoard reads the run" test "$tb_rc" = 0
    check "TensorBoard and metrics.jsonl agree" "$PYTHON_TORCH" - "$TEST_TMP/tb.txt" "$TEST_TMP/r1/metrics.jsonl" <<'PY'
import json, sys
tb = {}
for line in open(sys.argv[1]):
    tag, step, value = line.rstrip("\n").split("\t")
    tb.setdefault(tag, {})[int(step)] = float(value)
js = {}
for line in open(sys.argv[2]):
    rec = json.loads(line)
    for k, v in rec.items():
        if k not in ("step", "epoch", "time") and v is not None:
            js.setdefault(k, {})[rec["step"]] = v
assert set(tb) == set(js), (sorted(tb), sorted(js))
for tag in tb:
    assert sorted(tb[tag]) == sorted(js[tag]), tag
    for step, v in tb[tag].items():
        assert abs(v - js[tag][step]) <= 1e-6 * max(1, abs(v)), (tag, step, v, js[tag][step])
assert "train/loss" in tb and "val/top1" in tb and "train/lr" in tb and "train/images_per_sec" in tb
print("tags:", sorted(tb))
PY
fi

# 3. Resume continues exactly: 4 epochs straight == 2 epochs + resume to 4.
# (The cosine's period is pinned: a run set to 2 epochs would otherwise
# anneal over 2 epochs, not 4.)
check "4 epochs straight" expect_exit 0 "$out" train --run-dir "$TEST_TMP/straight" --epochs 4 --set sched.t_max=4
check "2 epochs" expect_exit 0 "$out" train --run-dir "$TEST_TMP/resumed" --epochs 2 --set sched.t_max=4
check "resume to 4 epochs" expect_exit 0 "$out" train --run-dir "$TEST_TMP/resumed" --epochs 4 --set sched.t_max=4
check "resume message" contains "$out" 'resumed from .*/last.h5 at step 36 \(epoch 2.000\)'
check "identical weights after resume" h5diff "$TEST_TMP/straight/ckpt/last.h5" "$TEST_TMP/resumed/ckpt/last.h5" /model /model
check "identical optimizer state after resume" h5diff "$TEST_TMP/straight/ckpt/last.h5" "$TEST_TMP/resumed/ckpt/last.h5" /optimizer /optimizer

# 4. Two ranks (DDP); and a checkpoint of 2 ranks resumes on 1 rank.
check "train on 2 ranks" expect_exit 0 "$out" "$MPIRUN" -n 2 --oversubscribe \
    icsparse-train --config "$TEST_TMP/job.cfg" --threads 1 --run-dir "$TEST_TMP/r2" --epochs 1
check "2 ranks: 9 steps per epoch of 2x64 images" contains "$out" '2 ranks x 1 replicas x batch 64 x 1 accumulation = 128 images per step, 9 steps per epoch'
check "2-rank checkpoint resumes on 1 rank" expect_exit 0 "$out" train --run-dir "$TEST_TMP/r2" --epochs 2
check "resumed at the same epoch" contains "$out" 'resumed from .* \(epoch 1.000\)'

check "DP: 2 replicas in one process" expect_exit 0 "$out" train --run-dir "$TEST_TMP/dp" --epochs 1 \
    --set train.batch_size=32 --set train.dp_devices=2
check "DP: 2 x 32 images per step" contains "$out" '1 ranks x 2 replicas x batch 32 x 1 accumulation = 64 images per step'

# 5. Preemption: SIGUSR1 (Slurm's --signal) and SIGTERM finish the step,
#    write last.h5 and exit 75; the next run resumes and finishes.
for sig in USR1 TERM; do
    run=$TEST_TMP/pre-$sig
    icsparse-train --config "$TEST_TMP/job.cfg" --threads 1 --run-dir "$run" --epochs 50 >"$out.$sig" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
        grep -q '"train/loss"' "$run/metrics.jsonl" 2>/dev/null && break
        sleep 0.1
    done
    kill -"$sig" "$pid"
    rc=0
    wait "$pid" || rc=$?
    check "SIGUSR1/SIGTERM ($sig) exits 75" test "$rc" = 75
    check "$sig: the message names the checkpoint" contains "$out.$sig" 'preempted by signal [0-9]+: checkpoint written to .*/ckpt/last.h5'
    check "$sig: last.h5 written" test -s "$run/ckpt/last.h5"
done
check "the preempted run resumes and finishes" expect_exit 0 "$out" train --run-dir "$TEST_TMP/pre-USR1" --epochs 1
check "it resumed mid-run" contains "$out" 'resumed from'
check "preemption under mpirun" bash -c "
    $MPIRUN -n 2 --oversubscribe icsparse-train --config '$TEST_TMP/job.cfg' --threads 1 --run-dir '$TEST_TMP/pre-mpi' --epochs 50 >'$out.mpi' 2>&1 &
    pid=\$!
    for _ in \$(seq 1 300); do grep -q train/loss '$TEST_TMP/pre-mpi/metrics.jsonl' 2>/dev/null && break; sleep 0.1; done
    kill -USR1 \$pid; rc=0; wait \$pid || rc=\$?
    [ \$rc = 75 ] && test -s '$TEST_TMP/pre-mpi/ckpt/last.h5'"

# 6. icsparse-eval: the same figures as training's final test evaluation.
cp "$TEST_TMP/r1/results.json" "$TEST_TMP/r1/results.json.train"
check "eval the run's last checkpoint" expect_exit 0 "$out" icsparse-eval --config "$TEST_TMP/job.cfg" \
    --run-dir "$TEST_TMP/r1" --checkpoint "$TEST_TMP/r1/ckpt/last.h5"
mv "$TEST_TMP/r1/results.json" "$TEST_TMP/r1/results.json.eval"
cp "$TEST_TMP/r1/results.json.train" "$TEST_TMP/r1/results.json"
check "eval prints the figures" contains "$out" 'on test: loss [0-9.]+ top-1 [0-9.]+% top-5'
check "eval of last.h5 equals training's final test figures" "$PYTHON_TORCH" -c "
import json, sys
t = json.load(open('$TEST_TMP/r1/results.json'))
e = json.load(open('$TEST_TMP/r1/results.json.eval'))
sys.exit(0 if abs(t['test_top1'] - e['test_top1']) < 1e-9 and abs(t['test_loss'] - e['test_loss']) < 1e-6 else 1)" 2>/dev/null
check "eval on 2 ranks equals eval on 1" bash -c "
    icsparse-eval --config '$TEST_TMP/job.cfg' --checkpoint '$TEST_TMP/r1/ckpt/last.h5' --run-dir '$TEST_TMP/r1' | sed 's/ (.*//' >'$TEST_TMP/e1.txt'
    $MPIRUN -n 2 --oversubscribe icsparse-eval --config '$TEST_TMP/job.cfg' --checkpoint '$TEST_TMP/r1/ckpt/last.h5' --run-dir '$TEST_TMP/r1' | sed 's/ (.*//' >'$TEST_TMP/e2.txt'
    diff '$TEST_TMP/e1.txt' '$TEST_TMP/e2.txt'"
check "eval --inputs writes the logits of given inputs" bash -c "
    '$PYTHON_TORCH' -c \"
import h5py, numpy
x = numpy.random.RandomState(0).standard_normal((5, 28, 28, 1)).astype('float32')
x[4] = x[0]
with h5py.File('$TEST_TMP/in.h5', 'w') as f: f['inputs'] = x\" &&
    icsparse-eval --checkpoint '$TEST_TMP/r1/ckpt/last.h5' --inputs '$TEST_TMP/in.h5' --logits-out '$TEST_TMP/logits.h5' &&
    '$PYTHON_TORCH' -c \"
import h5py, numpy, sys
y = h5py.File('$TEST_TMP/logits.h5', 'r')['logits'][...]
sys.exit(0 if y.shape == (5, 10) and numpy.isfinite(y).all() and numpy.allclose(y[4], y[0], rtol=1e-5, atol=1e-5) and not (y[1] == y[0]).all() else 1)\""
check "eval --inputs of the wrong shape: one clear line" bash -c "
    '$PYTHON_TORCH' -c \"
import h5py, numpy
with h5py.File('$TEST_TMP/in3.h5', 'w') as f: f['inputs'] = numpy.zeros((2, 32, 32, 3), 'float32')\" &&
    ! icsparse-eval --checkpoint '$TEST_TMP/r1/ckpt/last.h5' --inputs '$TEST_TMP/in3.h5' --logits-out '$TEST_TMP/l3.h5' 2>'$TEST_TMP/l3.err' &&
    grep -q 'in3.h5: /inputs must be float \[N, 28, 28, 1\] (NHWC) for this model' '$TEST_TMP/l3.err' && test ! -e '$TEST_TMP/l3.h5'"

# 7. Bad input: one clear line, exit codes 1 or 2.
check "missing data: exit 2" expect_exit 2 "$out" icsparse-train --set data.path="$TEST_TMP/none.h5" --set data.dir="$TEST_TMP/nodata" --run-dir "$TEST_TMP/bad"
check "missing data: names the files" contains "$out" "no training data: neither shards in .* nor the dataset .*none.h5"
printf 'not a checkpoint\n' >"$TEST_TMP/bad.h5"
check "bad resume checkpoint: exit 1" expect_exit 1 "$out" train --run-dir "$TEST_TMP/bad" --set train.resume="$TEST_TMP/bad.h5"
check "bad resume checkpoint: one clear line" contains "$out" "bad.h5: not an icsparse checkpoint \(not an HDF5 file\)"
check "checkpoint of another arch: exit 2" expect_exit 2 "$out" train --run-dir "$TEST_TMP/bad2" \
    --set train.resume="$TEST_TMP/r1/ckpt/last.h5" --arch resnet18 --set model.cifar_stem=true
check "another arch: named" contains "$out" "checkpoint of simple_cnn, but model.arch is resnet18"
check "eval without a checkpoint: exit 2" expect_exit 2 "$out" icsparse-eval --run-dir "$TEST_TMP/empty"
check "eval without a checkpoint: named" contains "$out" "no checkpoint to evaluate"
finish
