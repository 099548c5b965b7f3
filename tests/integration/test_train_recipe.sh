#!/bin/bash
# icsparse-train with SparseML recipes: gradual magnitude pruning reaches
# the recipe's final sparsity with pruned weights exactly zero, the recipe's
# epoch range and learning rate replace the configuration's, best_pruned
# appears only once pruning has ended, masks and recipe are saved in every
# checkpoint, and a run preempted in the middle of pruning resumes to
# exactly the weights of an uninterrupted run. A recipe that does not fit
# the model is refused plainly. (Quantization: test_train_qat.sh.)
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

out=$TEST_TMP/out
python3 "$top_srcdir/tests/tools/idx_subset.py" "$TEST_TMP/idx" 1280 256
icsparse-convert --source "$TEST_TMP/idx" --format idx -o "$TEST_TMP/fm.h5" --quiet
cat >"$TEST_TMP/prune.yaml" <<'YAML'
version: 1.1.0
num_epochs: 3.0
final_sparsity: 0.85
training_modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: eval(num_epochs)
  - !LearningRateFunctionModifier
    start_epoch: 0.0
    end_epoch: eval(num_epochs)
    lr_func: cosine
    init_lr: 0.02
    final_lr: 0.001
pruning_modifiers:
  - !GMPruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.05
    final_sparsity: eval(final_sparsity)
    start_epoch: 0.0
    end_epoch: 2.0
    update_frequency: 0.5
YAML
cat >"$TEST_TMP/job.cfg" <<CFG
data = { path = "$TEST_TMP/fm.h5"; shards_dir = ""; };
model = { arch = "simple_cnn"; };
train = { batch_size = 64; keep_last = 0; checkpoint_every_minutes = 0.0; epochs = 9.0; };
optim = { lr = 0.5; momentum = 0.9; };
recipe = { path = "$TEST_TMP/prune.yaml"; };
log = { every_steps = 3; progress = "lines"; };
CFG
train() { icsparse-train --config "$TEST_TMP/job.cfg" --threads 1 "$@"; }

check "train with a pruning recipe" expect_exit 0 "$out" train --run-dir "$TEST_TMP/r1"
check "the recipe's epochs replace train.epochs" contains "$out" 'train.epochs = 9 is replaced by the recipe.s epoch range \(3 epochs\)'
check "54 steps (3 epochs of 18)" contains "$out" '3.00 epochs \(54 steps\)'
check "the recipe's cosine lr, not optim.lr" contains "$TEST_TMP/r1/metrics.jsonl" '"step": ?3,.*"train/lr": ?0\.0199'
check "checkpoints: last, best, best_pruned" test -s "$TEST_TMP/r1/ckpt/best_pruned.h5" -a -s "$TEST_TMP/r1/ckpt/last.h5"
check "per-layer sparsity logged" contains "$TEST_TMP/r1/metrics.jsonl" '"sparsity/features.4.weight"'
if "$PYTHON_TORCH" -c 'import h5py' 2>/dev/null; then
    check "final sparsity per layer, exact zeros, masks and recipe saved" "$PYTHON_TORCH" - "$TEST_TMP/r1/ckpt" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
f = h5py.File(d + "/last.h5", "r")
names = sorted(f["masks"])
assert names == ["classifier.weight", "features.0.weight", "features.4.weight"], names
for n in names:
    w, m = f["model"][n][...], f["masks"][n][...]
    k = round(0.85 * w.size)            # layer-wise: exactly round(s * n) zeros
    zeros = int((w == 0).sum())
    assert abs(zeros - k) <= 1, (n, zeros, k, w.size)
    assert ((m == 0) <= (w == 0)).all(), n    # masked weights are exactly zero
    assert int((m == 0).sum()) == zeros, n
recipe = bytes(f["recipe"][...]).decode()
assert "GMPruningModifier" in recipe and "final_sparsity: 0.85" in recipe, recipe
bp = h5py.File(d + "/best_pruned.h5", "r")
assert bp.attrs["epoch"] >= 2.0, bp.attrs["epoch"]   # only after pruning ended
assert abs(bp.attrs["sparsity"] - 0.85) < 0.01, bp.attrs["sparsity"]
print("ok", f.attrs["sparsity"])
PY
fi
check "recipe_args override the recipe's variables" expect_exit 0 "$out" train --run-dir "$TEST_TMP/r2" \
    --recipe-args '{"final_sparsity": 0.5, "num_epochs": 4}'
check "num_epochs override: 4 epochs" contains "$out" '4.00 epochs \(72 steps\)'
check "final_sparsity override: 50%" contains "$out" 'sparsity at epoch 2.0000: overall 0.5000'

# Preempted in the middle of pruning, resumed: the same weights and masks
# as the uninterrupted run r1.
icsparse-train --config "$TEST_TMP/job.cfg" --threads 1 --run-dir "$TEST_TMP/pre" >"$out.pre" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    grep -qE '"step": ?21,' "$TEST_TMP/pre/metrics.jsonl" 2>/dev/null && break
    sleep 0.1
done
kill -USR1 "$pid"
rc=0
wait "$pid" || rc=$?
check "preempted during pruning: exit 75" test "$rc" = 75
check "resumed run finishes" expect_exit 0 "$out" train --run-dir "$TEST_TMP/pre"
check "it resumed inside pruning" contains "$out" 'resumed from .*last.h5 at step (2[1-9]|3[0-5]) '
check "same weights as the uninterrupted run" h5diff "$TEST_TMP/r1/ckpt/last.h5" "$TEST_TMP/pre/ckpt/last.h5" /model /model
check "same masks as the uninterrupted run" h5diff "$TEST_TMP/r1/ckpt/last.h5" "$TEST_TMP/pre/ckpt/last.h5" /masks /masks

check "consolidate best_pruned verifies masks against weights" expect_exit 0 "$out" \
    icsparse-consolidate --run-dir "$TEST_TMP/r1" --pick best_pruned --strip
check "3 masks checked" contains "$out" 'best_pruned.h5: 14 tensors, 3 masks'

# One-shot: a recipe's pruning applied to a dense checkpoint by
# icsparse-export, no training; the ONNX file holds the zeros.
check "a dense checkpoint" expect_exit 0 "$out" icsparse-train --config "$TEST_TMP/job.cfg" --threads 1 \
    --run-dir "$TEST_TMP/dense" --set recipe.path='""' --epochs 1 --set train.test_at_end=false
check "export --one-shot" expect_exit 0 "$out" icsparse-export -C "$TEST_TMP/dense/ckpt/last.h5" \
    -o "$TEST_TMP/oneshot" --one-shot "$TEST_TMP/prune.yaml" --set recipe.args='{"final_sparsity": 0.7}'
check "one-shot sparsity reported" contains "$out" 'one-shot .*prune.yaml: sparsity 70.00%'
check "the one-shot checkpoint verifies (masks against weights)" expect_exit 0 "$out" \
    icsparse-consolidate --checkpoint "$TEST_TMP/oneshot/model-one-shot.h5" --verify-only
if "$PYTHON_TORCH" -c 'import onnx' 2>/dev/null; then
    check "the ONNX weights are 70% zeros" "$PYTHON_TORCH" -c "
import onnx, sys
from onnx import numpy_helper
m = onnx.load('$TEST_TMP/oneshot/model.onnx')
ws = [numpy_helper.to_array(i) for i in m.graph.initializer if i.name.endswith('weight') and numpy_helper.to_array(i).ndim > 1]
z = [float((w == 0).mean()) for w in ws]
print(z)
sys.exit(0 if len(ws) == 3 and all(abs(v - 0.7) < 0.01 for v in z) else 1)"
fi

# Bad recipes: one line with the recipe's file and line.
printf 'modifiers:\n  - !GMPruningModifer\n    params: __ALL_PRUNABLE__\n' >"$TEST_TMP/typo.yaml"
check "an unknown modifier: exit 2" expect_exit 2 "$out" train --run-dir "$TEST_TMP/bad" --recipe "$TEST_TMP/typo.yaml"
check "an unknown modifier: named with its line" contains "$out" 'typo.yaml:2.*GMPruningModifer'
printf 'modifiers:\n  - !QuantizationModifier\n    start_epoch: 0.0\n    submodules: [nothing_here]\n' >"$TEST_TMP/qat.yaml"
check "quantization of a module the model lacks: exit 2" expect_exit 2 "$out" train --run-dir "$TEST_TMP/bad" \
    --recipe "$TEST_TMP/qat.yaml"
check "... named with the modifier's line" contains "$out" "QuantizationModifier \\(line 2\\).*submodule 'nothing_here' names no module"
check "a failure every rank shares: exit 2 under mpirun" expect_exit 2 "$out" $MPIRUN -n 2 --oversubscribe \
    icsparse-train --config "$TEST_TMP/job.cfg" --threads 1 --run-dir "$TEST_TMP/bad" --recipe "$TEST_TMP/typo.yaml"
check "... printed once, without MPI_Abort" bash -c "[ \"\$(grep -c 'icsparse-train: error:' '$out')\" = 1 ] && ! grep -q MPI_ABORT '$out'"
finish
