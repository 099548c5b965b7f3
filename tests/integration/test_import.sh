#!/bin/bash
# Importing PyTorch checkpoints end to end: icsparse-consolidate --from-pth
# turns a torch.save file (SparseML checkpoint dict, module. prefix) into an
# icsparse checkpoint whose logits (icsparse-eval --inputs) equal torch's;
# icsparse-train --init-from starts from a .pth (transfer learning: another
# class count re-initializes the classifier with a warning); refusals.
# The checkpoint's recipe is applied: a pruned SparseML checkpoint trains
# on with its zeros held exactly (no recipe.path: a generated
# ConstantPruningModifier over the parameters its recipe pruned); a torch
# eager-QAT model (prepare_qat) keeps its QAT structure and quantizers:
# converted, its logits are torch's QAT eval logits within one step of the
# output quantizer; trained on, its checkpoints load again.
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
torch.save({"state_dict": m.state_dict(), "recipe": "- !QuantizationModifier {}\n"}, d + "/qat_bad.pth")

# pruned by a finished SparseML run: features.4 and the classifier half
# zeros (its recipe's params); features.0 has zeros its recipe did not make
p = models_ref.build("simple_cnn", 10, 1, 28, 28, 0, 1.0).eval()
p.load_state_dict(m.state_dict())
with torch.no_grad():
    for name in ("features.0.weight", "features.4.weight", "classifier.weight"):
        w = dict(p.named_parameters())[name]
        w[torch.rand_like(w) < 0.5] = 0
recipe = ("modifiers:\n  - !GMPruningModifier\n    params: [features.4.weight, classifier.weight]\n"
          "    init_sparsity: 0.05\n    final_sparsity: 0.5\n    start_epoch: 0.0\n"
          "    end_epoch: 5.0\n    update_frequency: 1.0\n")
torch.save({"state_dict": p.state_dict(), "epoch": -1, "recipe": recipe, "arch_key": "simple_cnn"},
           d + "/pruned.pth")

# torch's eager QAT with icsparse's quantizers (uint8 affine activations,
# int8 symmetric per-channel weights), calibrated, observers then off
import torch.ao.quantization as tq
q = models_ref.build("simple_cnn", 10, 1, 28, 28, 0, 1.0)
q.load_state_dict(m.state_dict())
q.train()
tq.fuse_modules_qat(q, [["features.0", "features.1", "features.2"],
                        ["features.4", "features.5", "features.6"]], inplace=True)
w = tq.QuantWrapper(q)
w.qconfig = tq.QConfig(
    activation=tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=0,
                                         quant_max=255, dtype=torch.quint8,
                                         qscheme=torch.per_tensor_affine, reduce_range=False),
    weight=tq.FakeQuantize.with_args(observer=tq.MovingAveragePerChannelMinMaxObserver,
                                     quant_min=-128, quant_max=127, dtype=torch.qint8,
                                     qscheme=torch.per_channel_symmetric))
tq.prepare_qat(w, inplace=True)
with torch.no_grad():
    for _ in range(3):
        w(torch.rand(8, 1, 28, 28) * 2 - 1)
w.apply(tq.disable_observer)
w.eval()
qrecipe = ("modifiers:\n  - !QuantizationModifier\n    start_epoch: 0.0\n"
           "    disable_quantization_observer_epoch: 1.0\n    freeze_bn_stats_epoch: 1.0\n")
torch.save({"state_dict": w.state_dict(), "epoch": -1, "recipe": qrecipe, "arch_key": "simple_cnn"},
           d + "/qat.pth")
with torch.no_grad():
    np.save(d + "/want_qat.npy", w(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy())
np.save(d + "/qat_step.npy", w.module.classifier.activation_post_process.scale.numpy())
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
check "a quantization recipe icsparse cannot read: refused" expect_exit 1 "$out" \
    icsparse-consolidate --from-pth "$TEST_TMP/qat_bad.pth" --arch simple_cnn --input-size 28 -o "$TEST_TMP/x.h5"
check "named" contains "$out" 'qat_bad.pth:recipe:1'
check "nothing written on refusals" test ! -e "$TEST_TMP/x.h5"

# a torch QAT model converted: icsparse-eval rebuilds the structure from
# the stored recipe and gets torch's QAT logits
check "--from-pth of a torch QAT model" expect_exit 0 "$out" \
    icsparse-consolidate --from-pth "$TEST_TMP/qat.pth" --input-size 28 -o "$TEST_TMP/qat.h5"
check "reported quantization-aware" contains "$out" 'quantization-aware\) into'
check "icsparse-eval of the QAT checkpoint" expect_exit 0 "$out" icsparse-eval -C "$TEST_TMP/qat.h5" \
    --inputs "$TEST_TMP/inputs.h5" --logits-out "$TEST_TMP/qat_logits.h5"
check "QAT logits equal torch's within one output step" "$PYTHON_TORCH" -c "
import h5py, numpy as np
got = h5py.File('$TEST_TMP/qat_logits.h5', 'r')['logits'][()]
want = np.load('$TEST_TMP/want_qat.npy')
step = float(np.load('$TEST_TMP/qat_step.npy')[0])
assert got.shape == want.shape, (got.shape, want.shape)
assert len(np.unique(want)) > 10, 'degenerate reference'
assert np.abs(got - want).max() <= step * 1.001, (np.abs(got - want).max(), step)"

cat >"$TEST_TMP/lr.yaml" <<'YAML'
modifiers:
  - !SetLearningRateModifier
    start_epoch: 0.0
    learning_rate: 0.05
YAML
python3 "$top_srcdir/tests/tools/idx_subset.py" "$TEST_TMP/idx" 256 64
icsparse-convert --source "$TEST_TMP/idx" --format idx -o "$TEST_TMP/fm.h5" --quiet
train() { icsparse-train --set data.path="$TEST_TMP/fm.h5" --set model.arch=simple_cnn --epochs 1 --batch-size 64 \
    --threads 1 --set train.test_at_end=false "$@"; }
check "train --init-from a .pth" expect_exit 0 "$out" train --run-dir "$TEST_TMP/r1" --set model.init_from="$TEST_TMP/cnn.pth"
check "initial weights named" contains "$out" 'initial weights from .*cnn.pth'
check "its recipe holds nothing" contains "$out" 'cnn.pth: its recipe has no pruning or quantization started by epoch 3'
check "its recipe kept for compose" cmp "$TEST_TMP/r1/init_from_recipe.yaml" <(printf 'modifiers: []\n')
check "transfer learning from 5 classes" expect_exit 0 "$out" train --run-dir "$TEST_TMP/r2" --set model.init_from="$TEST_TMP/five.pth"
check "classifier re-initialized with a warning" contains "$out" "classifier 'classifier' has 5 classes there, the model 10: 'classifier' is re-initialized"
check "a .pth of another architecture: exit 1" expect_exit 1 "$out" train --run-dir "$TEST_TMP/r3" --set model.arch=resnet18 \
    --set model.init_from="$TEST_TMP/cnn.pth"
check "missing tensor named" contains "$out" "tensor 'conv1.weight' of resnet18 is missing"

# a pruned SparseML checkpoint, no recipe.path: its recipe's pruned
# parameters keep their zeros exactly; the others train freely
check "train --init-from a pruned checkpoint" expect_exit 0 "$out" train --run-dir "$TEST_TMP/r4" \
    --set model.init_from="$TEST_TMP/pruned.pth"
check "its pruning held" contains "$out" 'pruned.pth: its pruning is held: the zeros of 2 parameters \(5'
check "the zeros stayed zero, the rest trained" "$PYTHON_TORCH" -c "
import h5py, numpy as np, torch
sd = torch.load('$TEST_TMP/pruned.pth')['state_dict']
f = h5py.File('$TEST_TMP/r4/ckpt/last.h5', 'r')
assert b'ConstantPruningModifier' in f['recipe'][()].tobytes()  # the held recipe
for name in ('features.4.weight', 'classifier.weight'):
    before, after = sd[name].numpy(), f['model/' + name][()]
    zero = before == 0
    assert zero.mean() > 0.4, name
    assert (after[zero] == 0).all(), name + ': a pruned weight moved'
    assert (after[~zero] != before[~zero]).mean() > 0.5, name + ': did not train'
before, after = sd['features.0.weight'].numpy(), f['model/features.0.weight'][()]
assert (after[before == 0] != 0).any(), 'features.0 is not in the recipe, yet its zeros were held'"
check "resumed, the held recipe goes on" expect_exit 0 "$out" train --run-dir "$TEST_TMP/r4" \
    --set model.init_from="$TEST_TMP/pruned.pth" --epochs 2 --set train.resume=auto
check "from the checkpoint's /recipe" contains "$out" 'last.h5: the recipe held for .*pruned.pth goes on'
check "the zeros stayed zero after the resume" "$PYTHON_TORCH" -c "
import h5py, torch
sd = torch.load('$TEST_TMP/pruned.pth')['state_dict']
f = h5py.File('$TEST_TMP/r4/ckpt/last.h5', 'r')
assert f.attrs['epoch'] == 2, f.attrs['epoch']
for name in ('features.4.weight', 'classifier.weight'):
    assert (f['model/' + name][()][sd[name].numpy() == 0] == 0).all(), name"
check "a recipe.path without pruning: the zeros are not held (warned)" expect_exit 0 "$out" \
    train --run-dir "$TEST_TMP/r5" --set model.init_from="$TEST_TMP/pruned.pth" \
    --set recipe.path="$TEST_TMP/lr.yaml"
check "warned" contains "$out" 'the zeros of its 2 pruned parameters are not held: recipe.path .*lr.yaml has no pruning modifier'

# a torch QAT model trains on quantization-aware; its checkpoints load
check "train --init-from a torch QAT model" expect_exit 0 "$out" train --run-dir "$TEST_TMP/r6" \
    --set model.init_from="$TEST_TMP/qat.pth"
check "quantizers from the file" contains "$out" 'qat.pth: QAT structure from its recipe \(epoch -1\): 7 quantizers from the file, observers off'
check "QAT continues" contains "$out" 'quantization-aware training continues \(its QuantizationModifier from epoch 0, observers off, BN statistics frozen\)'
check "its checkpoint evaluates (structure from the held recipe)" expect_exit 0 "$out" \
    icsparse-eval -C "$TEST_TMP/r6/ckpt/last.h5" --inputs "$TEST_TMP/inputs.h5" --logits-out "$TEST_TMP/r6.h5"
check "resumed inside QAT (quantizers restored)" expect_exit 0 "$out" train --run-dir "$TEST_TMP/r6" \
    --set model.init_from="$TEST_TMP/qat.pth" --epochs 2 --set train.resume=auto
check "resumed at epoch 1" contains "$out" 'resumed from .*r6/ckpt/last.h5 at step 4'
check "a recipe.path that does not quantize: exit 2" expect_exit 2 "$out" train --run-dir "$TEST_TMP/r7" \
    --set model.init_from="$TEST_TMP/qat.pth" --set recipe.path="$TEST_TMP/lr.yaml"
check "named" contains "$out" 'qat.pth is quantization-aware .*lr.yaml does not quantize from epoch 0'
finish
