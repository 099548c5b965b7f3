"""Checks icsparse-export's TorchScript archives and SparseZoo samples against torch,
onnxruntime, numpy and icsparse-eval.

Usage: torchscript_check.py DIR. DIR/manifest.txt, written by
tests/unit/test_export_torchscript.c:
  arch ARCH NUM_CLASSES IN_CHANNELS H W CIFAR_STEM WIDTH_MULT
  eval PATH_TO_ICSPARSE_EVAL
  ckpt H W PATH        the same weights at an image size (first line: the
                       exported checkpoint; more lines: other image sizes)
  ts PATH              a TorchScript archive (--format torchscript)
  train                also compare train() mode with the torchvision-structured
                       module of models_ref.py (batch statistics, running
                       statistics, num_batches_tracked)
  zoo DIR SAMPLES [DATASET SPLIT]   a SparseZoo directory and its samples

For every archive: the zip's CRCs, torch.jit.load, eval mode as saved, the
state_dict's keys (in torchvision's order where models_ref.py has the
architecture) and values bit-identical to the checkpoint, parameters vs
buffers, logits equal to icsparse-eval's (1e-4 of the largest logit) at
batch sizes 1 and 3 and at every image size, and torch.jit.save of the
loaded module loading again with the same logits. For a SparseZoo
directory: every file, numpy.load of each sample (.npz: keys, shapes,
dtypes), onnxruntime's run of model.onnx and torch's run of
training/model.pt on each input equal to the stored output, inputs equal
to the dataset rows normalized ((x/255 - mean)/std, NCHW) and labels equal
to the dataset's, or without a dataset, inputs that look standard normal.
Exit 77 (skip) without torch, h5py or (for a zoo line) onnxruntime.
"""
import io
import os
import subprocess
import sys
import zipfile

try:
    import numpy as np
    import h5py
    import torch
except ImportError as e:  # the venv of tools/install-deps.sh has them all
    print("SKIP: torchscript_check.py needs numpy, h5py and torch: %s" % e)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models_ref  # noqa: E402  (torchvision-structured modules)

TOL = 1e-4
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def close(got, want, what, tol=TOL):
    got, want = np.asarray(got), np.asarray(want)
    scale = float(np.max(np.abs(want))) or 1.0
    err = float(np.max(np.abs(got - want))) / scale if got.shape == want.shape else float("inf")
    print("  %-66s max |diff| / max |ref| = %.2e" % (what, err))
    check(got.shape == want.shape and err <= tol, "%s: relative error %.3e > %g (shapes %s %s)" %
          (what, err, tol, got.shape, want.shape))


def load_ckpt(path):
    with h5py.File(path, "r") as f:
        return {k: np.array(v) for k, v in f["model"].items()}


def reference_order(arch):
    """torchvision's state_dict key order, where models_ref.py has the architecture."""
    name = arch[0]
    if name not in ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2", "vgg11_bn",
                    "vgg16_bn", "simple_cnn"):
        return None
    with models_ref.no_init():
        return list(models_ref.build(*arch).state_dict().keys())


def run_eval(eval_bin, ckpt, x, d, tag, env):
    xin, yout = os.path.join(d, "in_%s.h5" % tag), os.path.join(d, "logits_%s.h5" % tag)
    with h5py.File(xin, "w") as f:
        f["inputs"] = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # icsparse is NHWC
    r = subprocess.run([eval_bin, "--checkpoint", ckpt, "--inputs", xin, "--logits-out", yout, "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    check(r.returncode == 0, "icsparse-eval on %s: %s" % (ckpt, r.stdout))
    if r.returncode != 0:
        return None
    with h5py.File(yout, "r") as f:
        return np.array(f["logits"])


def check_archive(path, name, tensors, order, inputs, ref):
    print("%s TorchScript %s" % (name, path))
    with zipfile.ZipFile(path) as z:
        check(z.testzip() is None, "%s: a zip entry fails its CRC" % path)
        names = z.namelist()
        folder = names[0].split("/")[0]
        for want in ("data.pkl", "constants.pkl", "version", "code/__torch__/icsparse.py"):
            check(folder + "/" + want in names, "%s: no %s" % (path, want))
        check(all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist()), "%s: not STORED" % path)
    m = torch.jit.load(path)
    check(not m.training, "%s: loaded in training mode" % path)
    sd = m.state_dict()
    keys = list(sd.keys())
    if order is not None:
        check(keys == order, "%s: state_dict keys/order differ from torchvision's: %s" % (path, keys[:8]))
    check(sorted(keys) == sorted(tensors), "%s: state_dict keys differ from the checkpoint's" % path)
    for k, v in sd.items():
        if k not in tensors:
            continue
        if k.endswith("num_batches_tracked"):
            check(v.dtype == torch.int64 and v.dim() == 0 and int(v) == int(tensors[k]), "%s: %s = %s" % (path, k, v))
        else:
            want = tensors[k].astype(np.float32)
            check(v.dtype == torch.float32 and tuple(v.shape) == want.shape and
                  np.array_equal(v.numpy().view(np.uint32), want.view(np.uint32)),
                  "%s: %s differs from the checkpoint" % (path, k))
    params = {k for k, _ in m.named_parameters()}
    buffers = {k for k, _ in m.named_buffers()}
    check(buffers == {k for k in keys if ".running_" in k or k.endswith("num_batches_tracked")},
          "%s: buffers %s" % (path, sorted(buffers)[:6]))
    check(params == set(keys) - buffers, "%s: parameters differ" % path)
    check(all(p.requires_grad for p in m.parameters()), "%s: a parameter without requires_grad" % path)

    with torch.no_grad():
        for size in sorted(inputs):
            for b in (1, 3):
                y = m(torch.from_numpy(inputs[size][:b])).numpy()
                close(y, ref[size][:b], "torch.jit.load vs icsparse-eval %dx%d batch %d" % (size[0], size[1], b))
        # torch's own writer takes the module back: the archive is a complete scripted module
        buf = io.BytesIO()
        torch.jit.save(m, buf)
        buf.seek(0)
        m2 = torch.jit.load(buf)
        size = sorted(inputs)[0]
        y = m2(torch.from_numpy(inputs[size][:2])).numpy()
        close(y, ref[size][:2], "torch.jit.save + load again vs icsparse-eval")
    return m


def check_train_mode(m, arch, x):
    """train(): batch statistics, running statistics and counters as the torch modules."""
    ref = models_ref.build(*arch)
    ref.load_state_dict(m.state_dict(), strict=True)
    tensors_before = {k: v.clone() for k, v in m.state_dict().items()}
    ref.train()
    m.train()
    xt = torch.from_numpy(x)
    with torch.no_grad():
        y = m(xt).numpy()
        y_ref = ref(xt).numpy()
    close(y, y_ref, "train() forward vs torchvision-structured module")
    sd, sd_ref = m.state_dict(), ref.state_dict()
    for k in sd_ref:
        if k.endswith("num_batches_tracked"):
            check(int(sd[k]) == int(sd_ref[k]) == int(tensors_before[k]) + 1,
                  "train(): %s = %d, torch %d" % (k, int(sd[k]), int(sd_ref[k])))
    running = [k for k in sd_ref if ".running_" in k]
    close(np.concatenate([sd[k].numpy().ravel() for k in running]),
          np.concatenate([sd_ref[k].numpy().ravel() for k in running]),
          "train(): running statistics updated as torch does (%d buffers)" % len(running))
    m.eval()


def npz(path, key, shape, dtype):
    with np.load(path) as f:
        check(list(f.keys()) == [key], "%s: keys %s, want [%s]" % (path, list(f.keys()), key))
        a = f[key]
    check(a.shape == shape and a.dtype == dtype, "%s: %s %s, want %s %s" % (path, a.shape, a.dtype, shape, dtype))
    return a


def check_zoo(zoo, count, dataset, split, arch):
    import onnxruntime as ort
    name, classes, channels, h, w = arch[0], arch[1], arch[2], arch[3], arch[4]
    print("%s SparseZoo %s (%d samples, %s)" % (name, zoo, count, dataset or "random inputs"))
    for f in ("model.md", "model.onnx", "deployment/model.onnx", "deployment/config.json", "training/model.pth",
              "training/model.pt"):
        check(os.path.isfile(os.path.join(zoo, f)), "%s: no %s" % (zoo, f))
    with open(os.path.join(zoo, "model.md")) as f:
        card = f.read()
    check("training/model.pt" in card and "sample_inputs" in card, "%s: model.md does not describe the files" % zoo)
    sess = ort.InferenceSession(os.path.join(zoo, "model.onnx"), providers=["CPUExecutionProvider"])
    ts = torch.jit.load(os.path.join(zoo, "training/model.pt"))
    inputs_dir, outputs_dir = os.path.join(zoo, "sample_inputs"), os.path.join(zoo, "sample_outputs")
    labels_dir = os.path.join(zoo, "sample_labels")
    check(sorted(os.listdir(inputs_dir)) == ["inp-%04d.npz" % k for k in range(count)],
          "%s: sample_inputs holds %s" % (zoo, sorted(os.listdir(inputs_dir))))
    check(sorted(os.listdir(outputs_dir)) == ["out-%04d.npz" % k for k in range(count)],
          "%s: sample_outputs holds %s" % (zoo, sorted(os.listdir(outputs_dir))))
    xs = []
    for k in range(count):
        x = npz(os.path.join(inputs_dir, "inp-%04d.npz" % k), "input", (1, channels, h, w), np.float32)
        y = npz(os.path.join(outputs_dir, "out-%04d.npz" % k), "output", (1, classes), np.float32)
        xs.append(x)
        close(sess.run(["output"], {"input": x})[0], y, "sample %d: onnxruntime(model.onnx) vs out-%04d.npz" % (k, k))
        with torch.no_grad():
            close(ts(torch.from_numpy(x)).numpy(), y, "sample %d: training/model.pt vs out-%04d.npz" % (k, k))
    xs = np.concatenate(xs)
    if dataset:
        check(sorted(os.listdir(labels_dir)) == ["lab-%04d.npz" % k for k in range(count)],
              "%s: sample_labels holds %s" % (zoo, sorted(os.listdir(labels_dir))))
        with h5py.File(dataset, "r") as f:
            images = np.array(f[split]["images"][:count])
            labels = np.array(f[split]["labels"][:count])
            mean, std = np.array(f.attrs["mean"]), np.array(f.attrs["std"])
        want = ((images.astype(np.float64) / 255.0 - mean) / std).transpose(0, 3, 1, 2)
        check(np.allclose(xs, want, rtol=0, atol=1e-5), "%s: inputs are not the normalized %s rows" % (zoo, split))
        print("  inputs = normalized %s rows: max |diff| %.2e" % (split, float(np.max(np.abs(xs - want)))))
        for k in range(count):
            lab = npz(os.path.join(labels_dir, "lab-%04d.npz" % k), "label", (1,), np.int64)
            check(int(lab[0]) == int(labels[k]), "%s: label %d is %d, dataset %d" % (zoo, k, lab[0], labels[k]))
    else:
        check(not os.path.exists(labels_dir), "%s: sample_labels without a dataset" % zoo)
        mu, sd = float(xs.mean()), float(xs.std())
        print("  random inputs: mean %.3f std %.3f over %d values" % (mu, sd, xs.size))
        check(abs(mu) < 0.1 and abs(sd - 1) < 0.1, "%s: random inputs are not standard normal" % zoo)


def main():
    d = sys.argv[1]
    arch, eval_bin = None, None
    ckpts, archives, zoos, train = [], [], [], False
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
            elif w[0] == "ts":
                archives.append(w[1])
            elif w[0] == "train":
                train = True
            elif w[0] == "zoo":
                zoos.append((w[1], int(w[2]), w[3] if len(w) > 3 else None, w[4] if len(w) > 4 else None))
    if zoos:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as e:
            print("SKIP: SparseZoo samples need onnxruntime: %s" % e)
            sys.exit(77)
    name, channels = arch[0], arch[2]
    tensors = load_ckpt(ckpts[0][2])
    rng = np.random.default_rng(11)
    # icsparse-eval starts MPI, whose plugins keep allocations LeakSanitizer
    # cannot attribute: no leak check for it here, as in export_check.py.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    inputs, ref = {}, {}
    for h, w, path in ckpts:
        x = rng.standard_normal((3, channels, h, w)).astype(np.float32)
        y = run_eval(eval_bin, path, x, d, "%dx%d" % (h, w), env)
        if y is None:
            return
        inputs[(h, w)], ref[(h, w)] = x, y
    order = reference_order(arch)
    for path in archives:
        m = check_archive(path, name, tensors, order, inputs, ref)
        if train:
            base = (ckpts[0][0], ckpts[0][1])
            check_train_mode(m, arch, np.concatenate([inputs[base], inputs[base][:1] * 0.5]))
    for zoo, count, dataset, split in zoos:
        check_zoo(zoo, count, dataset, split, arch)
    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)
    print("all TorchScript checks passed")


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
