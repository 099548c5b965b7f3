"""Checks icsparse-export's files against onnx, onnxruntime, torch and icsparse-eval.

Usage: export_check.py DIR. DIR/manifest.txt, written by tests/unit/test_export.c:
  arch ARCH NUM_CLASSES IN_CHANNELS H W CIFAR_STEM WIDTH_MULT
  eval PATH_TO_ICSPARSE_EVAL
  ckpt H W PATH          the same weights at an image size (first line: the
                         exported checkpoint; more lines: other sizes for
                         --dynamic-shape models)
  onnx PATH BATCH DYNAMIC_SHAPE FOLD_BN OPSET   (BATCH 0: dynamic "batch")
  pth PATH
  deploy DIR

For every ONNX file: onnx.checker.check_model(full_check=True); ir_version
and opset; input "input" [N, C, H, W] and output "output" [N, classes] with
dim_param "batch"/"height"/"width" exactly where dynamic; initializers named
as the checkpoint's tensors (bit-identical when BN is kept); pruned weights
exactly zero where the checkpoint's are zero (also when BN is folded); and
onnxruntime's logits equal icsparse-eval's logits on the same inputs (fp32,
1e-4 of the largest logit) at two batch sizes (dynamic batch) and at every
image size (dynamic shape). The .pth loads with torch.load(weights_only=True)
and into the torchvision-structured module (tests/torchref/models_ref.py;
lenet as src/models/lenet.c describes it) with load_state_dict(strict=True),
bit-identical to the checkpoint, and that module's logits equal
icsparse-eval's; its _metadata (module versions) equals that module's
state_dict()._metadata: every module prefix, root "" first, in torch's
order, with torch's versions. Exit 77 (skip) without onnx or onnxruntime.
"""
import json
import os
import subprocess
import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
    import h5py
    import torch
except ImportError as e:  # the venv of tools/install-deps.sh has them all
    print("SKIP: export_check.py needs onnx, onnxruntime, h5py and torch: %s" % e)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models_ref  # noqa: E402  (torchvision-structured modules)

TOL = 1e-4
failures = []


class LeNet(torch.nn.Module):
    """icsparse's lenet (src/models/lenet.c) as a torch module."""

    def __init__(self, num_classes, in_channels, h, w):
        super().__init__()
        nn = torch.nn
        self.features = nn.Sequential(nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        side = ((h // 2) - 4) // 2, ((w // 2) - 4) // 2
        self.classifier = nn.Sequential(nn.Linear(16 * side[0] * side[1], 120), nn.ReLU(), nn.Linear(120, 84),
                                        nn.ReLU(), nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def build_module(arch):
    if arch[0] == "lenet":
        return LeNet(*arch[1:5])
    return models_ref.build(*arch)


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def close(got, want, what):
    scale = float(np.max(np.abs(want))) or 1.0
    err = float(np.max(np.abs(got - want))) / scale
    print("  %-60s max |diff| / max |ref| = %.2e" % (what, err))
    check(got.shape == want.shape and err <= TOL, "%s: relative error %.3e > %g" % (what, err, TOL))


def load_ckpt(path):
    with h5py.File(path, "r") as f:
        return {k: np.array(v) for k, v in f["model"].items()}


def main():
    d = sys.argv[1]
    arch = None
    ckpts, onnxs, pths, deploys = [], [], [], []
    eval_bin = None
    with open(os.path.join(d, "manifest.txt")) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] == "arch":
                arch = (w[1], int(w[2]), int(w[3]), int(w[4]), int(w[5]), int(w[6]), float(w[7]))
            elif w[0] == "eval":
                eval_bin = w[1]
            elif w[0] == "ckpt":
                ckpts.append((int(w[1]), int(w[2]), w[3]))
            elif w[0] == "onnx":
                onnxs.append((w[1], int(w[2]), int(w[3]), int(w[4]), int(w[5])))
            elif w[0] == "pth":
                pths.append(w[1])
            elif w[0] == "deploy":
                deploys.append(w[1])
    name, classes, channels = arch[0], arch[1], arch[2]
    tensors = load_ckpt(ckpts[0][2])
    rng = np.random.default_rng(7)

    # icsparse-eval's logits at each image size, on 3 random NCHW images.
    inputs, ref = {}, {}
    # icsparse-eval starts MPI, whose plugins (dlopen'd, unloaded at exit)
    # keep allocations LeakSanitizer cannot attribute by library name: in a
    # sanitizer build leaks are not checked for it here, as in the other
    # tests that run the MPI executables.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    for h, w, path in ckpts:
        x = rng.standard_normal((3, channels, h, w)).astype(np.float32)
        xin, yout = os.path.join(d, "in_%dx%d.h5" % (h, w)), os.path.join(d, "logits_%dx%d.h5" % (h, w))
        with h5py.File(xin, "w") as f:
            f["inputs"] = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # icsparse is NHWC
        r = subprocess.run([eval_bin, "--checkpoint", path, "--inputs", xin, "--logits-out", yout, "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        check(r.returncode == 0, "icsparse-eval on %s: %s" % (path, r.stdout))
        if r.returncode != 0:
            return
        with h5py.File(yout, "r") as f:
            ref[(h, w)] = np.array(f["logits"])
        inputs[(h, w)] = x
    base = (ckpts[0][0], ckpts[0][1])

    for path, batch, dyn, fold, opset in onnxs:
        tag = "%s batch=%s shape=%s fold=%d opset=%d" % (name, batch or "dyn", "dyn" if dyn else "static",
                                                         fold, opset)
        print(tag)
        m = onnx.load(path)
        try:
            onnx.checker.check_model(m, full_check=True)
        except Exception as e:  # the checker raises ValidationError / InferenceError
            check(False, "%s: checker: %s" % (tag, e))
        check(m.ir_version == (7 if opset <= 14 else 8), "%s: ir_version %d" % (tag, m.ir_version))
        check([(o.domain, o.version) for o in m.opset_import] == [("", opset)], "%s: opset_import" % tag)
        g = m.graph
        check([i.name for i in g.input] == ["input"] and [o.name for o in g.output] == ["output"],
              "%s: graph inputs/outputs %s %s" % (tag, [i.name for i in g.input], [o.name for o in g.output]))

        def dims(v):
            return [dd.dim_param if dd.HasField("dim_param") else dd.dim_value
                    for dd in v.type.tensor_type.shape.dim]
        bdim = batch if batch else "batch"
        want_in = [bdim, channels, "height" if dyn else base[0], "width" if dyn else base[1]]
        check(dims(g.input[0]) == want_in, "%s: input dims %s, want %s" % (tag, dims(g.input[0]), want_in))
        check(dims(g.output[0]) == [bdim, classes], "%s: output dims %s" % (tag, dims(g.output[0])))

        inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for k, v in tensors.items():
            if k.endswith("num_batches_tracked"):
                check(k not in inits, "%s: %s exported" % (tag, k))
                continue
            if not fold:
                check(k in inits and inits[k].shape == v.shape and
                      np.array_equal(inits[k].view(np.uint32), v.astype(np.float32).view(np.uint32)),
                      "%s: initializer %s differs from the checkpoint" % (tag, k))
            elif ".running_" in k:
                check(k not in inits, "%s: %s still there after folding" % (tag, k))
            # pruned weights: zero exactly where the checkpoint is zero
            if k.endswith("weight") and v.ndim in (2, 4) and (v == 0).any():
                check(k in inits and np.array_equal(inits[k] == 0, v == 0),
                      "%s: zeros of %s not preserved" % (tag, k))
        helpers = [k for k in inits if k not in tensors]
        check(all(k.startswith("relu6.") or ".pool_" in k or (fold and k.endswith(".bias")) for k in helpers),
              "%s: initializers not named as the checkpoint: %s" % (tag, helpers))

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        sizes = sorted(inputs) if dyn else [base]
        batches = [1, 3] if batch == 0 else [batch]
        for size in sizes:
            for b in batches:
                y = sess.run(["output"], {"input": inputs[size][:b]})[0]
                close(y, ref[size][:b], "onnxruntime vs icsparse-eval %dx%d batch %d" % (size[0], size[1], b))

    for path in pths:
        print("%s .pth %s" % (name, path))
        sd = torch.load(path, weights_only=True)
        model = build_module(arch)
        want = model.state_dict()
        check(list(sd.keys()) == list(want.keys()), "%s: state_dict keys/order differ" % path)
        got_md = getattr(sd, "_metadata", None)
        check(got_md == want._metadata, "%s: _metadata is not torch's module's:\n  got  %s\n  want %s" %
              (path, list(got_md.items()) if got_md else None, list(want._metadata.items())))
        model.load_state_dict(sd, strict=True)
        model.eval()
        for k, v in sd.items():
            if k.endswith("num_batches_tracked"):
                check(v.dtype == torch.int64 and v.dim() == 0 and int(v) == int(tensors[k]),
                      "%s: %s = %s" % (path, k, v))
            else:
                check(v.dtype == torch.float32 and np.array_equal(v.numpy(), tensors[k]),
                      "%s: %s differs from the checkpoint" % (path, k))
        with torch.no_grad():
            y = model(torch.from_numpy(inputs[base])).numpy()
        close(y, ref[base], "torch (load_state_dict strict) vs icsparse-eval")

    for dd in deploys:
        dep = os.path.join(dd, "deployment")
        check(os.path.isfile(os.path.join(dep, "model.onnx")), "%s: no model.onnx" % dep)
        with open(os.path.join(dep, "config.json")) as f:
            cfg = json.load(f)
        check(cfg["arch"] == name and cfg["num_classes"] == classes and cfg["input"]["name"] == "input",
              "%s: config.json %s" % (dep, cfg))
        m = onnx.load(os.path.join(dep, "model.onnx"))
        onnx.checker.check_model(m, full_check=True)
        sess = ort.InferenceSession(os.path.join(dep, "model.onnx"), providers=["CPUExecutionProvider"])
        y = sess.run(["output"], {"input": inputs[base][:1]})[0]
        close(y, ref[base][:1], "deployment/model.onnx vs icsparse-eval")

    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)
    print("all export checks passed")


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
