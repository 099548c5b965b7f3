#!/bin/bash
# icsparse-consolidate: verifies checkpoints completely (shapes, checksum,
# masks against weights, recipe, optimizer and EMA state), merges them into
# one file with or without training state, picks the best of a run; every
# damaged checkpoint gets one clear error and nothing is written. An
# unsharded checkpoint (pruned, quantized, with EMA) consolidates into a
# file that holds everything the original holds, the /optimizer attributes
# included, and training resumed from it ends bit for bit where training
# resumed from the original ends (and where the uninterrupted run ended).
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
    damage optkind "del f['optimizer'].attrs['kind']"
    check "/optimizer without its kind" refused optkind '/optimizer has no attribute .kind.'
    damage optlr "del f['optimizer'].attrs['lr']"
    check "/optimizer without its lr" refused optlr '/optimizer has no attribute .lr.'
    damage optlion "f['optimizer'].attrs['kind'] = np.bytes_(b'lion')"
    check "/optimizer of an unknown optimizer" refused optlion "/optimizer is for an unknown optimizer 'lion'"
    # lr was a root attribute before it moved into /optimizer
    damage oldlr "f.attrs['lr'] = f['optimizer'].attrs['lr']; del f['optimizer'].attrs['lr']"
    check "an older file's root lr goes into /optimizer" bash -c "
        icsparse-consolidate -C '$TEST_TMP/oldlr.h5' -o '$TEST_TMP/oldlr-out.h5' >'$out' 2>&1 &&
        diff <(h5dump -a /lr '$TEST_TMP/oldlr.h5' | tail -n +3) <(h5dump -a /optimizer/lr '$TEST_TMP/oldlr-out.h5' | tail -n +3)"
    damage format "f.attrs['format'] = np.bytes_(b'icsparse-dataset')"
    check "another format" refused format "format is 'icsparse-dataset', expected 'icsparse-checkpoint'"
else
    echo "SKIP: damaged-checkpoint cases need h5py in $PYTHON_TORCH"
fi
printf 'garbage' >"$TEST_TMP/garbage.h5"
check "not HDF5 at all" refused garbage 'not an icsparse checkpoint \(not an HDF5 file\)'

# An unsharded checkpoint consolidated keeps what resume reads: 3 epochs
# that prune (epoch 0-1), then quantize (from epoch 1), with EMA; the
# checkpoint after epoch 2 is consolidated, and epoch 3 is trained again
# from the original and from the consolidated file.
cat >"$TEST_TMP/pq.yaml" <<'YAML'
version: 1.1.0
modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: 3.0
  - !GMPruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.1
    final_sparsity: 0.5
    start_epoch: 0.0
    end_epoch: 1.0
    update_frequency: 0.5
  - !QuantizationModifier
    start_epoch: 1.0
YAML
# pq RUN_DIR [ARGS...]: the pruned, quantized run
pq() {
    local dir=$1
    shift
    icsparse-train --set data.path="$TEST_TMP/fm.h5" --run-dir "$dir" --batch-size 64 --threads 1 \
        --recipe "$TEST_TMP/pq.yaml" --set ema.enabled=true --set ema.every_steps=1 \
        --set train.test_at_end=false --set train.keep_last=3 "$@"
}
check "a pruned, quantized run of 3 epochs" expect_exit 0 "$out" pq "$TEST_TMP/pq" --quiet
e2=$TEST_TMP/pq/ckpt/epoch-0002.h5
c2=$TEST_TMP/c2.h5
check "consolidate its unsharded epoch-2 checkpoint" expect_exit 0 "$out" icsparse-consolidate -C "$e2" -o "$c2"
check "verified with masks, optimizer and EMA" contains "$out" '3 masks, 8 optimizer and 12 EMA tensors'
# same_attr OBJECT/NAME: the attribute is in both files, the same (h5dump)
same_attr() {
    h5dump -a "$1" "$e2" >"$TEST_TMP/a1" && h5dump -a "$1" "$c2" >"$TEST_TMP/a2" &&
        diff <(tail -n +2 "$TEST_TMP/a1") <(tail -n +2 "$TEST_TMP/a2") >&2
}
for a in /optimizer/kind /optimizer/step_count /optimizer/lr /ema/n_averaged /ema/n_updates \
    /global_step /epoch /stage /qat_active /sparsity /model_sha256; do
    check "consolidated keeps the attribute $a" same_attr "$a"
done
check "its step count is the run's optimizer steps" test "$(h5dump -a /optimizer/step_count "$c2" | grep -o '(0): .*')" \
    = "$(h5dump -a /global_step "$e2" | grep -o '(0): .*')"
for g in /model /optimizer /ema /masks /quant; do
    check "consolidated keeps $g" h5diff "$e2" "$c2" "$g" "$g"
done
if "$PYTHON_TORCH" -c 'import h5py' 2>/dev/null; then
    check "consolidated: every object, dataset and attribute of the original (h5py)" \
        "$PYTHON_TORCH" - "$e2" "$c2" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
def items(f):
    d = {"/": f}
    f.visititems(lambda n, o: d.__setitem__(n, o))
    return d
ia, ib = items(a), items(b)
assert sorted(ia) == sorted(ib), sorted(set(ia) ^ set(ib))
for name, oa in ia.items():
    ob = ib[name]
    assert sorted(oa.attrs) == sorted(ob.attrs), (name, sorted(set(oa.attrs) ^ set(ob.attrs)))
    for k in oa.attrs:
        if name == "/" and k == "kind":
            assert ob.attrs[k] == b"consolidated" or ob.attrs[k] == "consolidated", ob.attrs[k]
            continue
        va, vb = np.asarray(oa.attrs[k]), np.asarray(ob.attrs[k])
        assert va.dtype == vb.dtype and np.array_equal(va, vb, equal_nan=va.dtype.kind == "f"), (name, k)
    if isinstance(oa, h5py.Dataset):
        assert oa.dtype == ob.dtype and oa.shape == ob.shape, name
        assert np.array_equal(oa[...], ob[...]), name
print(len(ia), "objects equal")
PY
fi
for from in orig:"$e2" cons:"$c2"; do
    check "resume epoch 3 from the ${from%%:*} checkpoint" expect_exit 0 "$out" \
        pq "$TEST_TMP/re-${from%%:*}" --set train.resume="${from#*:}"
    check "  it resumed after epoch 2" contains "$out" "resumed from ${from#*:} at step [0-9]+ \(epoch 2.000\)"
done
for g in /model /optimizer /ema /masks /quant; do
    check "resumed from the consolidated file: the same $g, bit for bit" \
        h5diff "$TEST_TMP/re-orig/ckpt/last.h5" "$TEST_TMP/re-cons/ckpt/last.h5" "$g" "$g"
done
check "and the uninterrupted run's weights" h5diff "$TEST_TMP/pq/ckpt/last.h5" "$TEST_TMP/re-cons/ckpt/last.h5" /model /model
finish
