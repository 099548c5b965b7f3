#!/bin/bash
# Importing PyTorch checkpoints end to end: icsparse-consolidate --from-pth
# turns a torch.save file (SparseML checkpoint dict, module. prefix) into an
# icsparse checkpoint whose logits (icsparse-eval --inputs) equal torch's;
# icsparse-train --init-from starts from a .pth (transfer learning: another
# class count re-initializes the classifier with a warning); refusals.
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

out=$TEST_TMP/out
# The executables start MPI, whose plugins (NCCL in CUDA builds) leave
# allocations LeakSanitizer reports; the import code's own leaks are
# checked by tests/unit/test_pth_import.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
if ! "$PYTHON_TORCH" -c 'import torch, h5py' 2>/dev/null; then
    echo "test_import: \$PYTHON_TORCH cannot import torch and h5py: skipped"
    exit 77
fi
"$PYTHON_TORCH" - "$TEST_TMP" "$top_srcdir/tests/torchref" <<'PY'
import sys
import h5py
import numpy as np
import torch
sys.path.insert(0, sys.argv[2])
import models_ref
d = sys.argv[1]
torch.manual_seed(3)
m = models_ref.build("simple_cnn", 10, 1, 28, 28, 0, 1.0).eval()
with torch.no_grad():
    for k, t in m.state_dict().items():
        if k.endswith("running_var"):
            t.copy_(torch.rand_like(t) + 0.5)
        elif k.endswith("running_mean"):
            t.copy_(torch.randn_like(t) * 0.1)
sd = {"module." + k: v for k, v in m.state_dict().items()}
torch.save({"state_dict": sd, "epoch": 3, "arch_key": "simple_cnn", "recipe": "modifiers: []\n"}, d + "/cnn.pth")
x = np.random.RandomState(0).uniform(-1, 1, (4, 28, 28, 1)).astype(np.float32)
with h5py.File(d + "/inputs.h5", "w") as f:
    f["inputs"] = x
with torch.no_grad():
    np.save(d + "/want.npy", m(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy())
five = models_ref.build("simple_cnn", 5, 1, 28, 28, 0, 1.0)
torch.save(five.state_dict(), d + "/five.pth")
torch.save({"state_dict": m.state_dict(), "recipe": "- !QuantizationModifier {}\n"}, d + "/qat.pth")
PY

check "--from-pth converts (arch_key, classes from the file)" expect_exit 0 "$out" \
    icsparse-consolidate --from-pth "$TEST_TMP/cnn.pth" --input-size 28 -o "$TEST_TMP/cnn.h5"
check "conversion reported" contains "$out" 'cnn.pth -> .*cnn.h5'
check "the converted checkpoint verifies" expect_exit 0 "$out" icsparse-consolidate --checkpoint "$TEST_TMP/cnn.h5" --verify-only
check "icsparse-eval on given inputs" expect_exit 0 "$out" icsparse-eval -C "$TEST_TMP/cnn.h5" \
    --inputs "$TEST_TMP/inputs.h5" --logits-out "$TEST_TMP/logits.h5"
check "logits equal torch's (1e-4 relative)" "$PYTHON_TORCH" -c "
import h5py, numpy as np
got = h5py.File('$TEST_TMP/logits.h5', 'r')['logits'][()]
want = np.load('$TEST_TMP/want.npy')
assert got.shape == want.shape, (got.shape, want.shape)
assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max() + 1e-6, np.abs(got - want).max()"
check "--from-pth of a plain state_dict needs --arch" expect_exit 2 "$out" \
    icsparse-consolidate --from-pth "$TEST_TMP/five.pth" --input-size 28 -o "$TEST_TMP/x.h5"
check "named" contains "$out" 'five.pth has no arch_key: name the architecture \(--arch\)'
check "--arch given: converts" expect_exit 0 "$out" \
    icsparse-consolidate --from-pth "$TEST_TMP/five.pth" --arch simple_cnn --input-size 28x28 -o "$TEST_TMP/five.h5"
check "wrong input size: the tensor named" expect_exit 1 "$out" \
    icsparse-consolidate --from-pth "$TEST_TMP/cnn.pth" --input-size 32 -o "$TEST_TMP/x.h5"
check "named" contains "$out" "tensor 'module.classifier.weight' has shape \[10, 3136\], simple_cnn expects \[10, 4096\]"
check "bad --input-size" expect_exit 2 "$out" icsparse-consolidate --from-pth "$TEST_TMP/cnn.pth" --input-size 3y
check "named" contains "$out" "input-size '3y': expected N or HxW"
check "a quantization recipe: not implemented (exit 2)" expect_exit 2 "$out" \
    icsparse-consolidate --from-pth "$TEST_TMP/qat.pth" --arch simple_cnn --input-size 28 -o "$TEST_TMP/x.h5"
check "named" contains "$out" 'recipe has quantization'
check "nothing written on refusals" test ! -e "$TEST_TMP/x.h5"

python3 "$top_srcdir/tests/tools/idx_subset.py" "$TEST_TMP/idx" 256 64
icsparse-convert --source "$TEST_TMP/idx" --format idx -o "$TEST_TMP/fm.h5" --quiet
train() { icsparse-train --set data.path="$TEST_TMP/fm.h5" --set model.arch=simple_cnn --epochs 1 --batch-size 64 \
    --threads 1 --set train.test_at_end=false "$@"; }
check "train --init-from a .pth" expect_exit 0 "$out" train --run-dir "$TEST_TMP/r1" --set model.init_from="$TEST_TMP/cnn.pth"
check "initial weights named" contains "$out" 'initial weights from .*cnn.pth'
check "the recipe is reported, not applied" contains "$out" 'cnn.pth carries a recipe \(epoch 3\): not applied'
check "transfer learning from 5 classes" expect_exit 0 "$out" train --run-dir "$TEST_TMP/r2" --set model.init_from="$TEST_TMP/five.pth"
check "classifier re-initialized with a warning" contains "$out" "classifier 'classifier' has 5 classes there, the model 10: 'classifier' is re-initialized"
check "a .pth of another architecture: exit 1" expect_exit 1 "$out" train --run-dir "$TEST_TMP/r3" --set model.arch=resnet18 \
    --set model.init_from="$TEST_TMP/cnn.pth"
check "missing tensor named" contains "$out" "tensor 'conv1.weight' of resnet18 is missing"
finish
