#!/bin/bash
# Quantization-aware training from the command line (1280 training images,
# 18 steps per epoch): a prune-then-quantize
# recipe trains the small CNN, QAT starts at the recipe's epoch, the
# observers and BN statistics freeze on schedule, pruned weights stay zero,
# checkpoints carry the quantizers (/quant) and best_pruned_quantized,
# icsparse-eval rebuilds the QAT model from a checkpoint's recipe and gets
# the run's own test figure, a run preempted during QAT resumes to exactly
# the uninterrupted weights and quantizers, and the same recipe run as two
# staged jobs (icsparse-compose between them) ends exactly where the one
# combined recipe ends.
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

out=$TEST_TMP/out
python3 "$top_srcdir/tests/tools/idx_subset.py" "$TEST_TMP/idx" 1280 256
icsparse-convert --source "$TEST_TMP/idx" --format idx -o "$TEST_TMP/fm.h5" --quiet

# stage 0: prune; stage 1: quantize (epochs relative to the stage)
cat >"$TEST_TMP/stage0.yaml" <<'YAML'
version: 1.1.0
training_modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: 2.0
  - !SetLearningRateModifier
    start_epoch: 0.0
    learning_rate: 0.05
pruning_modifiers:
  - !GMPruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.05
    final_sparsity: 0.8
    start_epoch: 0.0
    end_epoch: 1.5
    update_frequency: 0.5
YAML
cat >"$TEST_TMP/stage1.yaml" <<'YAML'
version: 1.1.0
training_modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: 2.0
  - !SetLearningRateModifier
    start_epoch: 0.0
    learning_rate: 0.01
quantization_modifiers:
  - !QuantizationModifier
    start_epoch: 0.0
    freeze_bn_stats_epoch: 1.0
    disable_quantization_observer_epoch: 1.5
YAML
# the same as one recipe
cat >"$TEST_TMP/combined.yaml" <<'YAML'
version: 1.1.0
training_modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: 4.0
  - !SetLearningRateModifier
    start_epoch: 0.0
    learning_rate: 0.05
  - !SetLearningRateModifier
    start_epoch: 2.0
    learning_rate: 0.01
pruning_modifiers:
  - !GMPruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.05
    final_sparsity: 0.8
    start_epoch: 0.0
    end_epoch: 1.5
    update_frequency: 0.5
quantization_modifiers:
  - !QuantizationModifier
    start_epoch: 2.0
    freeze_bn_stats_epoch: 3.0
    disable_quantization_observer_epoch: 3.5
YAML
cat >"$TEST_TMP/job.cfg" <<CFG
data = { path = "$TEST_TMP/fm.h5"; shards_dir = ""; };
model = { arch = "simple_cnn"; };
train = { batch_size = 64; keep_last = 0; checkpoint_every_minutes = 0.0; };
optim = { momentum = 0.9; };
recipe = { path = "$TEST_TMP/combined.yaml"; };
log = { every_steps = 3; progress = "lines"; };
CFG
train() { icsparse-train --config "$TEST_TMP/job.cfg" --threads 1 "$@"; }

check "prune then quantize in one recipe" expect_exit 0 "$out" train --run-dir "$TEST_TMP/one"
check "QAT starts at epoch 2" contains "$out" 'quantization-aware training starts at epoch 2.0000'
check "best_pruned_quantized written" test -s "$TEST_TMP/one/ckpt/best_pruned_quantized.h5"
test_top1=$(sed -n 's/.*test: loss [0-9.]* top-1 \([0-9.]*\)%.*/\1/p' "$out" | tail -1)
check "a test figure was reported" test -n "$test_top1"
if "$PYTHON_TORCH" -c 'import h5py' 2>/dev/null; then
    check "quantizers saved, frozen on schedule; zeros kept; best_pruned_quantized after QAT" \
        "$PYTHON_TORCH" - "$TEST_TMP/one/ckpt" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
f = h5py.File(d + "/last.h5", "r")
assert f.attrs["qat_active"] == 1
q = f["quant"]
flags = q["flags"][...]
assert list(flags) == [0.0, 1.0], flags            # observers off, BN frozen
names = sorted(q)
for n in ["quant", "features.0.activation_post_process", "features.4.activation_post_process",
          "classifier.activation_post_process", "features.0.weight_fake_quant",
          "features.4.weight_fake_quant", "classifier.weight_fake_quant"]:
    assert n in names, (n, names)
a = q["features.0.activation_post_process"]
scale, zp = float(a["scale"][0]), float(a["zero_point"][0])
lo, hi = float(a["min_val"][0]), float(a["max_val"][0])
# torch's qparams from the observed range (post-ReLU: min 0, zero point 0)
want = (max(hi, 0) - min(lo, 0)) / 255.0
assert abs(scale - want) <= 1e-6 * want and zp == 0 and lo >= 0 and hi > 0, (scale, want, zp, lo, hi)
ws = q["features.4.weight_fake_quant"]["scale"][...]
assert ws.shape == (64,) and (ws > 0).all()
for n in ["features.0.weight", "features.4.weight", "classifier.weight"]:
    w = f["model"][n][...]
    z = float((w == 0).mean())
    assert abs(z - 0.8) < 0.01, (n, z)
bpq = h5py.File(d + "/best_pruned_quantized.h5", "r")
assert bpq.attrs["epoch"] >= 2.0 and bpq.attrs["qat_active"] == 1, dict(bpq.attrs)
print("ok", list(flags), scale, zp)
PY
fi
check "icsparse-eval rebuilds the QAT model from the checkpoint's recipe" expect_exit 0 "$out" \
    icsparse-eval -C "$TEST_TMP/one/ckpt/last.h5" --set data.path="\"$TEST_TMP/fm.h5\"" --set eval.split='"test"' \
    --set run.dir="\"$TEST_TMP/evalrun\""
check "... and gets the run's own test top-1 ($test_top1%)" contains "$out" "top-1 $test_top1"

check "consolidate best_pruned_quantized (QAT structure and quantizers verified)" expect_exit 0 "$out" \
    icsparse-consolidate --run-dir "$TEST_TMP/one" --pick best_pruned_quantized --strip -o "$TEST_TMP/bpq.h5"
check "the consolidated file keeps the quantizers" h5diff "$TEST_TMP/one/ckpt/best_pruned_quantized.h5" \
    "$TEST_TMP/bpq.h5" /quant /quant
check "eval of the consolidated QAT checkpoint" expect_exit 0 "$out.c" \
    icsparse-eval -C "$TEST_TMP/bpq.h5" --set data.path="\"$TEST_TMP/fm.h5\"" --set eval.split='"test"' \
    --set run.dir="\"$TEST_TMP/evalrun\""
expect_exit 0 "$out.b" icsparse-eval -C "$TEST_TMP/one/ckpt/best_pruned_quantized.h5" \
    --set data.path="\"$TEST_TMP/fm.h5\"" --set eval.split='"test"' --set run.dir="\"$TEST_TMP/evalrun\""
check "... the same figures as the checkpoint it came from" \
    test "$(grep -o 'loss.*' "$out.c")" = "$(grep -o 'loss.*' "$out.b")"
cp "$TEST_TMP/one/ckpt/last.h5" "$TEST_TMP/broken.h5"
if "$PYTHON_TORCH" -c 'import h5py' 2>/dev/null; then
    "$PYTHON_TORCH" -c "import h5py; f = h5py.File('$TEST_TMP/broken.h5', 'r+'); del f['quant/features.4.activation_post_process']"
    check "a QAT checkpoint missing a quantizer: refused" expect_exit 1 "$out" \
        icsparse-consolidate -C "$TEST_TMP/broken.h5" --verify-only
    check "... naming it" contains "$out" '/quant/features.4.activation_post_process/scale missing'
fi

# Preempted during QAT (epoch ~2.5), resumed: the same weights and quantizers.
icsparse-train --config "$TEST_TMP/job.cfg" --threads 1 --run-dir "$TEST_TMP/pre" >"$out.pre" 2>&1 &
pid=$!
for _ in $(seq 1 1200); do
    grep -qE '"step": ?45,' "$TEST_TMP/pre/metrics.jsonl" 2>/dev/null && break
    sleep 0.1
done
kill -USR1 "$pid"
rc=0
wait "$pid" || rc=$?
check "preempted during QAT: exit 75" test "$rc" = 75
check "resumed run finishes" expect_exit 0 "$out" train --run-dir "$TEST_TMP/pre"
check "it resumed inside QAT" contains "$out" 'resumed from .*last.h5 at step (4[5-9]|5[0-9]|6[0-9]) '
check "same weights as the uninterrupted run" h5diff "$TEST_TMP/one/ckpt/last.h5" "$TEST_TMP/pre/ckpt/last.h5" /model /model
check "same quantizers as the uninterrupted run" h5diff "$TEST_TMP/one/ckpt/last.h5" "$TEST_TMP/pre/ckpt/last.h5" /quant /quant

# Two staged jobs: stage 0 alone, compose, stage 1 continuing in the same
# run directory (what jobs/train.sbatch does).
check "stage 0 job" expect_exit 0 "$out" train --run-dir "$TEST_TMP/staged" --recipe "$TEST_TMP/stage0.yaml"
check "compose stage 1 after stage 0" expect_exit 0 "$out" icsparse-compose --base "$TEST_TMP/stage0.yaml" \
    --next "$TEST_TMP/stage1.yaml" -o "$TEST_TMP/staged.yaml"
check "stage 1 job" expect_exit 0 "$out" train --run-dir "$TEST_TMP/staged" --recipe "$TEST_TMP/staged.yaml" \
    --set recipe.stage=1
check "stage 1 continued from stage 0's checkpoint" contains "$out" 'resumed from .*last.h5 at step 36 '
check "staged: same weights as one combined recipe" h5diff "$TEST_TMP/one/ckpt/last.h5" \
    "$TEST_TMP/staged/ckpt/last.h5" /model /model
check "staged: same quantizers as one combined recipe" h5diff "$TEST_TMP/one/ckpt/last.h5" \
    "$TEST_TMP/staged/ckpt/last.h5" /quant /quant
check "staged: same masks" h5diff "$TEST_TMP/one/ckpt/last.h5" "$TEST_TMP/staged/ckpt/last.h5" /masks /masks
finish
