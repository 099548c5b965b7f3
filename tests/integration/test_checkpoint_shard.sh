#!/bin/bash
# Sharded checkpoints (train.checkpoint_sharded): on 2 MPI ranks each rank
# writes its part of the optimizer state beside rank 0's checkpoint; the
# model is the unsharded run's, the parts together hold exactly its
# optimizer state; resuming from the sharded checkpoint on 2 ranks and on
# 1 rank gives the same weights and optimizer state as resuming from the
# unsharded one; icsparse-consolidate merges the parts into one ordinary
# checkpoint equal to the unsharded one tensor for tensor; a missing,
# truncated or damaged part is refused with one error line.
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

out=$TEST_TMP/out
python3 "$top_srcdir/tests/tools/idx_subset.py" "$TEST_TMP/idx" 640 128
icsparse-convert --source "$TEST_TMP/idx" --format idx -o "$TEST_TMP/fm.h5" --quiet
cat >"$TEST_TMP/job.cfg" <<CFG
data = { path = "$TEST_TMP/fm.h5"; shards_dir = ""; };
model = { arch = "simple_cnn"; };
train = { batch_size = 64; keep_last = 0; checkpoint_every_minutes = 0.0; test_at_end = false; };
optim = { lr = 0.02; momentum = 0.9; weight_decay = 5e-4; };
sched = { name = "cosine"; interval = "step"; t_max = 2.0; };
ema = { enabled = true; every_steps = 1; };
CFG
# train RANKS RUN_DIR [ARGS...]
train() {
    local ranks=$1 run=$2
    shift 2
    "$MPIRUN" -n "$ranks" --oversubscribe icsparse-train --config "$TEST_TMP/job.cfg" --threads 1 --run-dir "$run" "$@"
}
sharded=(--set train.checkpoint_sharded=true)
ck=ckpt/last.h5

# 1. One epoch on 2 ranks, unsharded and sharded.
check "unsharded, 2 ranks" expect_exit 0 "$out" train 2 "$TEST_TMP/un" --epochs 1
check "sharded, 2 ranks" expect_exit 0 "$out" train 2 "$TEST_TMP/sh" --epochs 1 "${sharded[@]}"
check "two parts beside last.h5" test "$(find "$TEST_TMP/sh/ckpt" -name 'last.h5.part-*-of-2.*' | wc -l)" = 2
check "no temporary files left" bash -c "! ls '$TEST_TMP/sh/ckpt' | grep -q tmp"
check "last.h5 holds the index, not /optimizer" \
    bash -c "h5ls '$TEST_TMP/sh/$ck' | grep -q '^shards' && ! h5ls '$TEST_TMP/sh/$ck' | grep -q '^optimizer'"
check "the same model as the unsharded run" h5diff "$TEST_TMP/un/$ck" "$TEST_TMP/sh/$ck" /model /model
check "the same EMA" h5diff "$TEST_TMP/un/$ck" "$TEST_TMP/sh/$ck" /ema /ema
if "$PYTHON_TORCH" -c 'import h5py, torch' 2>/dev/null; then
    check "the parts: parameter i on rank i % 2, together the unsharded /optimizer" \
        "$PYTHON_TORCH" - "$top_srcdir/tests/torchref" "$TEST_TMP/un/$ck" "$TEST_TMP/sh/$ck" <<'PY'
import glob, sys, h5py, numpy as np
sys.path.insert(0, sys.argv[1])
import models_ref
un, main = h5py.File(sys.argv[2], "r"), h5py.File(sys.argv[3], "r")
# the optimizer's parameters are the model's trainable tensors in
# state_dict order: PyTorch's named_parameters order
order = [n for n, _ in models_ref.build("simple_cnn", 10, 1, 28, 28, False, 1.0).named_parameters()]
assert sorted(order) == sorted(un["optimizer"]), (order, list(un["optimizer"]))
index = bytes(main["shards"][...]).decode().splitlines()
assert index[0] == "icsparse-checkpoint-shards 1" and index[2] == "count 2", index
parts = sorted(glob.glob(sys.argv[3] + ".part-*-of-2.*"))
assert [l.split()[2] for l in index[3:]] == [p.rsplit("/", 1)[1] for p in parts], (index, parts)
seen = {}
for k, p in enumerate(parts):
    f = h5py.File(p, "r")
    assert int(f.attrs["shard_index"]) == k and int(f.attrs["shard_count"]) == 2
    assert f["optimizer"].attrs["step_count"] == un["optimizer"].attrs["step_count"]
    assert sorted(f["optimizer"]) == sorted(order[k::2]), (k, sorted(f["optimizer"]))
    for name in f["optimizer"]:
        assert name not in seen, name
        seen[name] = k
        assert sorted(f["optimizer"][name]) == sorted(un["optimizer"][name])
        for slot in f["optimizer"][name]:
            a, b = f["optimizer"][name][slot][...], un["optimizer"][name][slot][...]
            assert a.shape == b.shape and np.array_equal(a, b), (name, slot)
assert sorted(seen) == sorted(order)
print("part 0:", order[0::2], "part 1:", order[1::2])
PY
fi

# 2. Resume to 2 epochs, on 2 ranks and on 1 rank: from the sharded
#    checkpoint exactly as from the unsharded one.
for r in un sh; do
    cp -r "$TEST_TMP/$r" "$TEST_TMP/$r-2"
    cp -r "$TEST_TMP/$r" "$TEST_TMP/$r-1"
done
check "unsharded resume on 2 ranks" expect_exit 0 "$out" train 2 "$TEST_TMP/un-2" --epochs 2
check "sharded resume on 2 ranks" expect_exit 0 "$out" train 2 "$TEST_TMP/sh-2" --epochs 2 "${sharded[@]}"
check "it resumed from the sharded checkpoint" contains "$out" 'resumed from .*/last.h5 at step 5 \(epoch 1.000\)'
check "the previous save's parts are gone, the new ones there" \
    test "$(find "$TEST_TMP/sh-2/ckpt" -name 'last.h5.part-*' | wc -l)" = 2
check "unsharded resume on 1 rank" expect_exit 0 "$out" train 1 "$TEST_TMP/un-1" --epochs 2
check "sharded resume on 1 rank (writes 1 part)" expect_exit 0 "$out" train 1 "$TEST_TMP/sh-1" --epochs 2 "${sharded[@]}"
check "resumed at the same epoch" contains "$out" 'resumed from .*/last.h5 at step [0-9]+ \(epoch 1.000\)'
check "one part of 1" test "$(find "$TEST_TMP/sh-1/ckpt" -name 'last.h5.part-0-of-1.*' | wc -l)" = 1
check "2 ranks: same weights after resuming" h5diff "$TEST_TMP/un-2/$ck" "$TEST_TMP/sh-2/$ck" /model /model
check "1 rank: same weights after resuming" h5diff "$TEST_TMP/un-1/$ck" "$TEST_TMP/sh-1/$ck" /model /model
check "1 rank: same EMA after resuming" h5diff "$TEST_TMP/un-1/$ck" "$TEST_TMP/sh-1/$ck" /ema /ema

# 3. icsparse-consolidate merges the parts: an ordinary checkpoint equal to
#    the unsharded one tensor for tensor (optimizer state included).
check "verify the sharded checkpoint" expect_exit 0 "$out" icsparse-consolidate -C "$TEST_TMP/sh/$ck" --verify-only
check "verify names the parts" contains "$out" \
    'verified .*/sh/ckpt/last.h5 and its 2 parts: 14 tensors, 0 masks, 8 optimizer and 12 EMA tensors'
for r in sh sh-2 sh-1; do
    check "merge $r (under mpirun -n 2)" expect_exit 0 "$out" "$MPIRUN" -n 2 --oversubscribe \
        icsparse-consolidate -C "$TEST_TMP/$r/$ck" -o "$TEST_TMP/$r-merged.h5"
done
check "merged: no index, a whole /optimizer" bash -c "h5ls '$TEST_TMP/sh-merged.h5' | grep -q '^optimizer' &&
    ! h5ls '$TEST_TMP/sh-merged.h5' | grep -q '^shards'"
for pair in un:sh un-2:sh-2 un-1:sh-1; do
    u=${pair%%:*} s=${pair##*:}
    check "$s merged == $u: /model" h5diff "$TEST_TMP/$u/$ck" "$TEST_TMP/$s-merged.h5" /model /model
    check "$s merged == $u: /optimizer" h5diff "$TEST_TMP/$u/$ck" "$TEST_TMP/$s-merged.h5" /optimizer /optimizer
    check "$s merged == $u: /ema" h5diff "$TEST_TMP/$u/$ck" "$TEST_TMP/$s-merged.h5" /ema /ema
done
if "$PYTHON_TORCH" -c 'import h5py' 2>/dev/null; then
    check "merged == unsharded: every dataset and attribute (h5py)" \
        "$PYTHON_TORCH" - "$TEST_TMP/un/$ck" "$TEST_TMP/sh-merged.h5" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
def items(f):
    d = {}
    f.visititems(lambda n, o: d.__setitem__(n, o))
    return d
ia, ib = items(a), items(b)
assert sorted(ia) == sorted(ib), set(ia) ^ set(ib)
n = 0
for name, oa in ia.items():
    ob = ib[name]
    for k in oa.attrs:
        assert np.array_equal(oa.attrs[k], ob.attrs[k]), (name, k)
    if isinstance(oa, h5py.Dataset) and name != "config":  # config names the run
        assert oa.dtype == ob.dtype and oa.shape == ob.shape, name
        assert np.array_equal(oa[...], ob[...]), name
        n += 1
for k in a.attrs:
    if k not in ("kind", "model_sha256"):
        assert np.array_equal(a.attrs[k], b.attrs[k], equal_nan=True) if a.attrs[k].dtype.kind == "f" \
            else a.attrs[k] == b.attrs[k], k
assert a.attrs["model_sha256"] == b.attrs["model_sha256"]
print(n, "datasets equal")
PY
fi
check "the merged checkpoint resumes like the unsharded one" bash -c "
    mkdir -p '$TEST_TMP/m-1/ckpt' && cp '$TEST_TMP/sh-merged.h5' '$TEST_TMP/m-1/$ck' &&
    $MPIRUN -n 1 icsparse-train --config '$TEST_TMP/job.cfg' --threads 1 --run-dir '$TEST_TMP/m-1' --epochs 2 >'$out' 2>&1 &&
    h5diff '$TEST_TMP/un-1/$ck' '$TEST_TMP/m-1/$ck' /model /model"
check "--strip merges without training state" expect_exit 0 "$out" \
    icsparse-consolidate -C "$TEST_TMP/sh/$ck" --strip -o "$TEST_TMP/stripped.h5"
check "stripped: no optimizer, no EMA, no index" bash -c "! h5ls '$TEST_TMP/stripped.h5' | grep -qE '^(optimizer|ema|shards)'"
check "stripped: the model stays" h5diff "$TEST_TMP/un/$ck" "$TEST_TMP/stripped.h5" /model /model

# 4. Masks and recipe in a sharded checkpoint: verified against the weights.
cat >"$TEST_TMP/prune.yaml" <<'YAML'
version: 1.1.0
modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: 1.0
  - !GMPruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.1
    final_sparsity: 0.5
    start_epoch: 0.0
    end_epoch: 0.6
    update_frequency: 0.2
YAML
check "sharded pruning run, 2 ranks" expect_exit 0 "$out" train 2 "$TEST_TMP/pr" --recipe "$TEST_TMP/prune.yaml" "${sharded[@]}"
check "consolidate verifies masks, recipe and parts" expect_exit 0 "$out" \
    icsparse-consolidate -C "$TEST_TMP/pr/$ck" -o "$TEST_TMP/pr-merged.h5"
check "3 masks checked" contains "$out" 'and its 2 parts: 14 tensors, 3 masks, 8 optimizer'
check "merged masks are the run's" h5diff "$TEST_TMP/pr/$ck" "$TEST_TMP/pr-merged.h5" /masks /masks

# 5. A missing, truncated or damaged part: one error line, exit 1, nothing
#    written; resuming from it fails the same way on every rank.
# damaged CASE COMMAND: a copy of sh's checkpoint dir, COMMAND run in it.
damaged() {
    rm -rf "${TEST_TMP:?}/$1"
    cp -r "$TEST_TMP/sh" "$TEST_TMP/$1"
    (cd "$TEST_TMP/$1/ckpt" && eval "$2")
}
# refused CASE PATTERN: consolidate fails with one line matching PATTERN.
refused() {
    expect_exit 1 "$out" icsparse-consolidate -C "$TEST_TMP/$1/$ck" -o "$TEST_TMP/$1-out.h5" &&
        contains "$out" "$2" && [ "$(grep -c 'error:' "$out")" = 1 ] && [ "$(wc -l <"$out")" = 1 ] &&
        test ! -e "$TEST_TMP/$1-out.h5" && [ -z "$(find "$TEST_TMP" -maxdepth 1 -name "$1-out.h5.tmp*")" ]
}
damaged missing 'rm last.h5.part-1-of-2.*'
check "a missing part" refused missing 'last.h5: part 1 of 2 \(last.h5.part-1-of-2.[0-9a-f]{16}\) is missing'
damaged truncated 'truncate -s 1000 last.h5.part-0-of-2.*'
check "a truncated part" refused truncated 'part 0 of 2 .* is truncated or damaged: 1000 bytes, the index says [0-9]+'
damaged flipped "printf 'X' | dd of=\"\$(ls last.h5.part-1-of-2.*)\" bs=1 seek=3000 conv=notrunc status=none"
check "a damaged part (same size)" refused flipped 'part 1 of 2 .* is damaged: SHA-256 [0-9a-f]{16}\.\.\., the index says'
# shellcheck disable=SC2016 # expanded by damaged, in the copy
damaged foreign 'p=$(ls last.h5.part-0-of-2.*); cp best.h5.part-0-of-2.* "$p"'
check "another save's part" refused foreign 'part 0 of 2 .* is (damaged|truncated)'
# Consistent but wrong: a part edited with h5py and the index rewritten to
# its new size and digest, so that only the content checks can see it.
# edited CASE PART PYTHON: PYTHON edits part PART (h5py file p).
edited() {
    damaged "$1" true
    "$PYTHON_TORCH" - "$TEST_TMP/$1/$ck" "$2" "$3" <<'PY'
import glob, hashlib, os, sys, h5py, numpy as np
main, k, code = sys.argv[1], int(sys.argv[2]), sys.argv[3]
path = sorted(glob.glob(main + ".part-*"))[k]
with h5py.File(path, "r+") as p:
    exec(code)
with h5py.File(main, "r+") as f:
    lines = bytes(f["shards"][...]).decode().splitlines()
    for i, l in enumerate(lines):
        w = l.split()
        if w[0] == "part" and int(w[1]) == k:
            w[3] = str(os.path.getsize(path))
            w[4] = hashlib.sha256(open(path, "rb").read()).hexdigest()
            lines[i] = " ".join(w)
    del f["shards"]
    f["shards"] = np.frombuffer(("\n".join(lines) + "\n").encode(), "u1")
PY
}
if "$PYTHON_TORCH" -c 'import h5py' 2>/dev/null; then
    edited noparam 1 'del p["optimizer/classifier.bias"]'
    check "a parameter in no part" refused noparam 'optimizer state of classifier.bias is in no part'
    edited twice 1 'p.copy(h5py.File(path.replace("part-1-of-2", "part-0-of-2"), "r")["optimizer/features.0.weight"], "optimizer/features.0.weight")'
    check "a parameter in two parts" refused twice 'optimizer state of features.0.weight is in two parts'
    edited shape 0 'del p["optimizer/classifier.weight/momentum_buffer"]; p["optimizer/classifier.weight/momentum_buffer"] = np.zeros((3136, 10), "f4")'
    check "a slot of the wrong shape" refused shape 'momentum_buffer in part 0 of 2 .* does not have its parameter.s shape'
    edited otherid 0 'p.attrs["shard_id"] = np.bytes_(b"0123456789abcdef")'
    check "a part of another save" refused otherid 'part 0 of 2 .* is part 0 of 2 of save 0123456789abcdef, not of this checkpoint'
    edited step 1 'p["optimizer"].attrs["step_count"] = np.int64(1)'
    check "parts at different steps" refused step 'part 1 of 2 .* disagrees with part 0 \(optimizer sgd at step 1, part 0: sgd at [0-9]+\)'
    damaged badindex "$PYTHON_TORCH"' -c "import h5py, numpy as np; f = h5py.File(\"last.h5\", \"r+\"); del f[\"shards\"]; f[\"shards\"] = np.frombuffer(b\"parts: 2\", \"u1\")"'
    check "a malformed index" refused badindex 'last.h5: the index /shards is malformed'
fi
check "resume from a checkpoint with a missing part: exit 1" expect_exit 1 "$out" train 2 "$TEST_TMP/missing" --epochs 2
check "one error line" bash -c "[ \"\$(grep -c 'error:' '$out')\" = 1 ] && grep -qE 'part 1 of 2 .* is missing' '$out'"
finish
