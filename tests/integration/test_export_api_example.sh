#!/bin/bash
# examples/export_api: exporting from a user's own program (public headers
# only). A dense checkpoint exports fp32 ONNX and a QAT checkpoint int8
# QDQ, each at a dynamic batch and at a static batch of 4, plus the
# deployment directory; onnxruntime runs every file and agrees with
# icsparse-eval's logits; a missing checkpoint is one error line.
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

example=$top_builddir/examples/export_api
out=$TEST_TMP/out
python3 "$top_srcdir/tests/tools/idx_subset.py" "$TEST_TMP/idx" 640 128
icsparse-convert --source "$TEST_TMP/idx" --format idx -o "$TEST_TMP/fm.h5" --quiet
printf 'modifiers:\n  - !EpochRangeModifier\n    start_epoch: 0.0\n    end_epoch: 2.0\n  - !QuantizationModifier\n    start_epoch: 1.0\n' \
    >"$TEST_TMP/qat.yaml"
train() {
    icsparse-train --set data.path="\"$TEST_TMP/fm.h5\"" --set data.shards_dir='""' --set model.arch='"simple_cnn"' \
        --set optim.lr=0.05 --set train.test_at_end=false --threads 1 -q "$@"
}
check "a dense checkpoint" expect_exit 0 "$out" train --epochs 1 --run-dir "$TEST_TMP/dense"
check "a QAT checkpoint" expect_exit 0 "$out" train --recipe "$TEST_TMP/qat.yaml" --run-dir "$TEST_TMP/qat"

check "export the dense one" expect_exit 0 "$out" "$example" "$TEST_TMP/dense/ckpt/last.h5" "$TEST_TMP/e-dense"
check "... fp32, three outputs" bash -c "grep -q 'simple_cnn: sparsity 0.0000, fp32' '$out' &&
    [ -s '$TEST_TMP/e-dense/model.onnx' ] && [ -s '$TEST_TMP/e-dense/model-b4.onnx' ] &&
    [ -s '$TEST_TMP/e-dense/deployment/model.onnx' ] && [ -s '$TEST_TMP/e-dense/deployment/config.json' ]"
check "export the QAT one" expect_exit 0 "$out" "$example" "$TEST_TMP/qat/ckpt/last.h5" "$TEST_TMP/e-qat"
check "... int8 QDQ" contains "$out" 'simple_cnn: sparsity 0.0000, int8 QDQ'
check "a missing checkpoint: one error line" expect_exit 1 "$out" "$example" "$TEST_TMP/none.h5" "$TEST_TMP/x"
check "... naming it" contains "$out" '^export_api: opening the checkpoint: .*none.h5'

if "$PYTHON_TORCH" -c 'import onnxruntime, h5py' 2>/dev/null; then
    "$PYTHON_TORCH" -c "
import h5py, numpy as np
x = np.random.default_rng(3).standard_normal((4, 28, 28, 1)).astype(np.float32)
with h5py.File('$TEST_TMP/inputs.h5', 'w') as f: f['inputs'] = x"
    for kind in dense qat; do
        icsparse-eval -C "$TEST_TMP/$kind/ckpt/last.h5" --inputs "$TEST_TMP/inputs.h5" \
            --logits-out "$TEST_TMP/logits-$kind.h5" >/dev/null 2>&1
        check "onnxruntime runs the $kind exports like icsparse-eval" "$PYTHON_TORCH" - "$TEST_TMP" "$kind" <<'PY'
import sys, h5py, numpy as np, onnxruntime as ort
d, kind = sys.argv[1], sys.argv[2]
x = h5py.File(d + "/inputs.h5", "r")["inputs"][...]
want = h5py.File(d + "/logits-%s.h5" % kind, "r")["logits"][...]
# int8: the graph as written (QuantizeLinear/DequantizeLinear in float);
# onnxruntime's fused int8 kernels saturate on CPUs without VNNI (its own
# documentation), which test_export_qdq covers where the CPU allows
so = ort.SessionOptions()
if kind == "qat":
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
for name in ["model.onnx", "model-b4.onnx", "deployment/model.onnx"]:
    s = ort.InferenceSession("%s/e-%s/%s" % (d, kind, name), so, providers=["CPUExecutionProvider"])
    got = s.run(None, {"input": x.transpose(0, 3, 1, 2).copy()})[0]
    if kind == "dense":
        assert np.allclose(got, want, rtol=1e-4, atol=1e-4), (name, np.abs(got - want).max())
    else:  # int8: within two output-quantizer steps, same top-1
        step = (want.max() - want.min()) / 255
        assert np.abs(got - want).max() <= 2 * step + 1e-6, (name, np.abs(got - want).max(), step)
        assert (got.argmax(1) == want.argmax(1)).all(), name
print("ok")
PY
    done
fi
finish
