#!/bin/bash
# icsparse-consolidate: verifies checkpoints completely (shapes, checksum,
# masks against weights, recipe, optimizer and EMA state), merges them into
# one file with or without training state, picks the best of a run; every
# damaged checkpoint gets one clear error and nothing is written.
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

out=$TEST_TMP/out
python3 "$top_srcdir/tests/tools/idx_subset.py" "$TEST_TMP/idx" 640 128
icsparse-convert --source "$TEST_TMP/idx" --format idx -o "$TEST_TMP/fm.h5" --quiet
run=$TEST_TMP/run
icsparse-train --set data.path="$TEST_TMP/fm.h5" --run-dir "$run" --epochs 1 --batch-size 64 --threads 1 \
    --set ema.enabled=true --set ema.every_steps=1 --set train.test_at_end=false --quiet

check "verify the best checkpoint" expect_exit 0 "$out" icsparse-consolidate --run-dir "$run" --verify-only
check "verify reports what it checked" contains "$out" 'verified .*/ckpt/best.h5: 14 tensors, 0 masks, 8 optimizer and 12 EMA tensors, sparsity 0.00%'
check "--verify-only writes nothing" test ! -e "$run/model.h5"
check "consolidate into RUN/model.h5" expect_exit 0 "$out" icsparse-consolidate --run-dir "$run"
check "model.h5 holds the optimizer and EMA" bash -c "h5ls '$run/model.h5' | grep -q '^optimizer' && h5ls '$run/model.h5' | grep -q '^ema'"
check "the merged model is the same model" h5diff "$run/ckpt/best.h5" "$run/model.h5" /model /model
check "--strip drops the training state" expect_exit 0 "$out" icsparse-consolidate --run-dir "$run" --strip -o "$TEST_TMP/s.h5"
check "stripped: no optimizer, no EMA" bash -c "! h5ls '$TEST_TMP/s.h5' | grep -qE '^(optimizer|ema)'"
check "stripped: the model stays" h5diff "$run/ckpt/best.h5" "$TEST_TMP/s.h5" /model /model
check "stripped file verifies" expect_exit 0 "$out" icsparse-consolidate --checkpoint "$TEST_TMP/s.h5" --verify-only
check "--pick best_pruned falls back to best in a dense run" expect_exit 0 "$out" icsparse-consolidate --run-dir "$run" --pick best_pruned --verify-only
check "fallback named" contains "$out" 'verified .*/ckpt/best.h5'
check "--pick last" expect_exit 0 "$out" icsparse-consolidate --run-dir "$run" --pick last --verify-only
check "--pick of an unknown kind: exit 2" expect_exit 2 "$out" icsparse-consolidate --run-dir "$run" --pick worst
check "an empty run dir: exit 2" expect_exit 2 "$out" icsparse-consolidate --run-dir "$TEST_TMP/empty"
check "empty run named" contains "$out" 'empty/ckpt has no best_pruned_quantized checkpoint \(nor a fallback\)'

# damage CASE PYTHON: copies best.h5 to CASE.h5 and edits it with h5py.
damage() {
    cp "$run/ckpt/best.h5" "$TEST_TMP/$1.h5"
    "$PYTHON_TORCH" -c "
import h5py, numpy as np
f = h5py.File('$TEST_TMP/$1.h5', 'r+')
$2
f.close()"
}
# refused CASE PATTERN: verify and consolidate both fail with one line
# matching PATTERN, and no output file appears.
refused() {
    expect_exit 1 "$out" icsparse-consolidate --checkpoint "$TEST_TMP/$1.h5" -o "$TEST_TMP/$1-out.h5" &&
        contains "$out" "$2" && [ "$(grep -c 'error:' "$out")" = 1 ] && test ! -e "$TEST_TMP/$1-out.h5" &&
        ! ls "$TEST_TMP" | grep -q "$1-out.h5.tmp"
}
if "$PYTHON_TORCH" -c 'import h5py' 2>/dev/null; then
    damage sum "d = f['model/classifier.bias']; v = d[...]; v[0] += 1; d[...] = v"
    check "a changed weight: checksum mismatch" refused sum 'model checksum mismatch .* the file is damaged'
    damage missing "del f['model/features.1.running_var']"
    check "a missing tensor" refused missing 'missing /model/features.1.running_var'
    damage shape "del f['model/classifier.bias']; f['model/classifier.bias'] = np.zeros(5, 'f4')"
    check "a tensor of the wrong shape" refused shape '/model/classifier.bias has shape \[5\], expected \[10\]'
    damage masks "f['recipe'] = np.frombuffer(b'modifiers: []', 'u1'); f['masks/features.0.weight'] = np.zeros((32, 1, 3, 3), 'u1')"
    check "masks that disagree with the weights" refused masks 'features.0.weight has 288 nonzero weights where its mask is 0'
    damage norecipe "f['masks/features.0.weight'] = np.ones((32, 1, 3, 3), 'u1')"
    check "masks without a recipe" refused norecipe 'has pruning masks but no /recipe'
    damage notprunable "f['recipe'] = np.frombuffer(b'x', 'u1'); f['masks/features.1.weight'] = np.ones(32, 'u1')"
    check "a mask on a BatchNorm weight" refused notprunable 'mask features.1.weight is on a tensor that is not prunable'
    damage incomplete "f.attrs['complete'] = np.int64(0)"
    check "an incomplete checkpoint" refused incomplete 'incomplete checkpoint'
    damage optim "del f['optimizer/classifier.weight/momentum_buffer']"
    check "incomplete optimizer state" refused optim 'optimizer state of classifier.weight is incomplete'
    damage format "f.attrs['format'] = np.bytes_(b'icsparse-dataset')"
    check "another format" refused format "format is 'icsparse-dataset', expected 'icsparse-checkpoint'"
else
    echo "SKIP: damaged-checkpoint cases need h5py in $PYTHON_TORCH"
fi
printf 'garbage' >"$TEST_TMP/garbage.h5"
check "not HDF5 at all" refused garbage 'not an icsparse checkpoint \(not an HDF5 file\)'
finish
