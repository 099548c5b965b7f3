"""Checks icsparse-export's .pth and SparseZoo directory of a QAT checkpoint.

Usage: export_qat_pth_check.py DIR. DIR holds, from tests/unit/test_export_qdq.c:
  manifest.txt   arch ARCH NUM_CLASSES IN_CHANNELS H W / eval PATH / ckpt PATH
  p/model.pth    icsparse-export --format pth of the checkpoint
  zoo/           icsparse-export --sparsezoo-dir of it (8 random samples)
  rt.h5, rt_zoo.h5   icsparse-consolidate --from-pth of p/model.pth and of
                 zoo/training/model.pth

Checks:
- the .pth (torch.load, weights_only=True) is a dict with state_dict,
  recipe (the checkpoint's), arch_key and epoch; the state_dict's float
  tensors are the checkpoint's under torchvision names (a folded BN as
  "<conv>.bn.*"), every weight quantizer's scale is /quant's, every
  activation quantizer's min/max/scale/zero point are /quant's;
- the state_dict's _metadata (module versions): an OrderedDict led by the
  root "", holding every module prefix of the keys, with the _version of
  torch's classes for what the keys say a module is (BatchNorm2d, the
  fused ConvBn2d / ConvBnReLU2d, the qconfig's FakeQuantize and its
  observers) and nn.Module's for every other module;
- the round trip: rt.h5 and rt_zoo.h5 hold the checkpoint's tensors and
  /quant quantizer state, and icsparse-eval gives bit-identical logits on
  64 random images;
- simple_cnn without reduce_range: both files' _metadata equal the
  state_dict()._metadata of torch's eager QAT module (fuse_modules_qat, a
  QuantStub "quant" at the top, prepare_qat with icsparse's qconfig), keys,
  order and versions; that module takes the state_dict as loaded (no
  _metadata copied in) with load_state_dict(strict=True) and, observers
  off, its eval logits are within one output-quantizer step of
  icsparse-eval's (every logit) with equal top-1;
- the SparseZoo directory: model.onnx and deployment/model.onnx are the
  int8 QDQ model (QuantizeLinear, no BatchNormalization); no
  training/model.pt; model.md and deployment/config.json say int8 QDQ; the
  sample outputs are icsparse-eval's logits of the sample inputs (icsparse's
  own QAT forward); onnxruntime on model.onnx reproduces them on average
  within one output-quantizer step, top-1 equal on every sample.
Exit 77 (skip) without torch, onnx, onnxruntime, h5py or numpy.
"""
import collections
import glob
import json
import os
import sys

try:
    import h5py  # noqa: F401
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    import torch.ao.quantization as tq
    import torch.nn.intrinsic.qat as nniqat
    from onnx import numpy_helper
except ImportError as e:
    print("SKIP: export_qat_pth_check.py needs torch, onnx, onnxruntime, h5py and numpy: %s" % e)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_qdq_check as qdq  # noqa: E402
import models_ref  # noqa: E402
import qat_ref  # noqa: E402

torch.set_num_threads(1)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def fq_prefix(name):
    """The torch key prefix of icsparse's activation quantizer `name`."""
    return name if name.endswith(".activation_post_process") else name + ".activation_post_process"


def check_pth(path, tensors, quant, recipe):
    ck = torch.load(path, weights_only=True)
    check(isinstance(ck, dict) and {"state_dict", "arch_key", "epoch"} <= set(ck),
          "%s: a checkpoint dict with state_dict, arch_key, epoch" % path)
    check(ck.get("recipe") == recipe, "%s: recipe is the checkpoint's" % path)
    sd = ck["state_dict"]
    used = set()
    for key, want in tensors.items():
        where = key
        if key not in sd:  # a BN folded into the conv before it
            head, _, field = key.rpartition(".")
            cands = [k for k in sd if k.endswith(".bn." + field) and
                     k[:-len(".bn." + field)] + ".weight" in tensors]
            cands = [k for k in cands if qdq.bn_of(k[:-len(".bn." + field)], tensors) == head]
            check(len(cands) == 1, "%s: %s not found (as %s or a fused .bn.)" % (path, key, key))
            if len(cands) != 1:
                continue
            where = cands[0]
        used.add(where)
        got = sd[where].numpy()
        check(np.array_equal(got.reshape(want.shape), want), "%s: %s differs" % (path, where))
    for name, g in quant.items():
        if not isinstance(g, dict):
            continue
        if name.endswith(".weight_fake_quant"):
            check(np.array_equal(sd[name + ".scale"].numpy(), g["scale"].astype(np.float32)),
                  "%s: %s.scale" % (path, name))
            check(not sd[name + ".zero_point"].numpy().any(), "%s: %s.zero_point" % (path, name))
            used.update(k for k in sd if k.startswith(name + "."))
        elif "min_val" in g:
            p = fq_prefix(name)
            obs = p + ".activation_post_process."
            if "initialized" in g and not int(np.ravel(g["initialized"])[0]):
                continue
            check(float(sd[obs + "min_val"]) == float(np.ravel(g["min_val"])[0]) and
                  float(sd[obs + "max_val"]) == float(np.ravel(g["max_val"])[0]),
                  "%s: %s range" % (path, p))
            used.update(k for k in sd if k.startswith(p + "."))
    check(used == set(sd), "%s: keys not accounted for: %s" % (path, sorted(set(sd) - used)[:5]))
    check_metadata(path, sd)
    return sd


def check_metadata(path, sd):
    """sd's _metadata: every module prefix of its keys, with torch's versions."""
    md = getattr(sd, "_metadata", None)
    check(isinstance(md, collections.OrderedDict) and list(md)[:1] == [""],
          "%s: no _metadata led by the root module" % path)
    if not isinstance(md, collections.OrderedDict):
        return
    prefixes = set()
    for key in sd:
        parts = key.split(".")[:-1]
        prefixes.update(".".join(parts[:i]) for i in range(len(parts) + 1))
    check(prefixes <= set(md), "%s: _metadata lacks %s" % (path, sorted(prefixes - set(md))[:5]))
    # what each module is, told by its keys; versions from torch's classes
    wfq, act = qat_ref.QCONFIG.weight(), qat_ref.QCONFIG.activation()
    want = {}
    for key in sd:
        mod, _, field = key.rpartition(".")
        if field == "running_mean":
            want[mod] = torch.nn.BatchNorm2d._version
            if mod.endswith(".bn"):
                assert nniqat.ConvBn2d._version == nniqat.ConvBnReLU2d._version
                want[mod[:-len(".bn")]] = nniqat.ConvBn2d._version
        elif field == "scale" and mod.endswith(".weight_fake_quant"):
            want[mod] = type(wfq)._version
            want[mod + ".activation_post_process"] = type(wfq.activation_post_process)._version
        elif field == "scale":
            want[mod] = type(act)._version
            want[mod + ".activation_post_process"] = type(act.activation_post_process)._version
    for name, entry in md.items():
        v = want.get(name, torch.nn.Module._version)
        check(entry == {"version": v}, "%s: _metadata[%r] = %s, torch's class has version %d" %
              (path, name, entry, v))


def torch_simple_cnn(sds, classes, in_c, h, w):
    """torch's eager QAT simple_cnn, QuantStub "quant" at the top level,
    loaded from sds[0] (every state_dict of sds must carry its _metadata)."""
    base = models_ref.build("simple_cnn", classes, in_c, h, w, 0, 1.0)

    class QSimple(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = tq.QuantStub()
            self.features = base.features
            self.classifier = base.classifier

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(self.quant(x)), 1))

    m = QSimple().train()
    tq.fuse_modules_qat(m, [["features.0", "features.1", "features.2"],
                            ["features.4", "features.5", "features.6"]], inplace=True)
    m.qconfig = qat_ref.QCONFIG
    tq.prepare_qat(m, inplace=True)
    # the module versions: without them torch 1.13's per-channel observers
    # would look for their pre-1.8 keys min_vals / max_vals
    want = m.state_dict()._metadata
    for k, sd in enumerate(sds):
        got = getattr(sd, "_metadata", None)
        check(got == want, "state_dict %d: _metadata is not torch's module's:\n  got  %s\n  want %s" %
              (k, list(got.items()) if got else None, list(want.items())))
    m.load_state_dict(sds[0], strict=True)
    m.apply(tq.disable_observer)
    return m.eval()


def main():
    d = sys.argv[1]
    man = {}
    for line in open(os.path.join(d, "manifest.txt")):
        parts = line.split()
        man[parts[0]] = parts[1:]
    arch = man["arch"][0]
    classes, in_c, h, w = (int(v) for v in man["arch"][1:])
    eval_bin, ckpt = man["eval"][0], man["ckpt"][0]
    tensors, quant = qdq.load_ckpt(ckpt)
    with h5py.File(ckpt, "r") as f:
        recipe = None
        if "recipe" in f:
            v = f["recipe"][()]
            v = v.tobytes() if isinstance(v, np.ndarray) else v
            recipe = (v.decode() if isinstance(v, bytes) else str(v)).rstrip("\0")
    sd = check_pth(os.path.join(d, "p", "model.pth"), tensors, quant, recipe)
    sd_zoo = check_pth(os.path.join(d, "zoo", "training", "model.pth"), tensors, quant, recipe)

    # the round trip through icsparse-consolidate --from-pth
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, in_c, h, w)).astype(np.float32)
    want = qdq.icsparse_logits(eval_bin, ckpt, x, d, "orig")
    for tag in ("rt", "rt_zoo"):
        path = os.path.join(d, tag + ".h5")
        t2, q2 = qdq.load_ckpt(path)
        check(set(t2) == set(tensors) and all(np.array_equal(t2[k], tensors[k]) for k in tensors),
              "%s: tensors equal the checkpoint's" % tag)
        for name, g in quant.items():
            if isinstance(g, dict):
                check(name in q2 and all(np.array_equal(q2[name].get(k), v) for k, v in g.items()),
                      "%s: /quant/%s equals the checkpoint's" % (tag, name))
        got = qdq.icsparse_logits(eval_bin, path, x, d, tag)
        check(got is not None and want is not None and np.array_equal(got, want),
              "%s: icsparse-eval logits bit-identical to the checkpoint's" % tag)

    # the zoo directory's model
    zoo = os.path.join(d, "zoo")
    model = onnx.load(os.path.join(zoo, "model.onnx"))
    ops = {n.op_type for n in model.graph.node}
    check("QuantizeLinear" in ops and "BatchNormalization" not in ops, "zoo model.onnx is int8 QDQ")
    check(open(os.path.join(zoo, "deployment", "model.onnx"), "rb").read() ==
          model.SerializeToString(), "deployment/model.onnx is model.onnx")
    check(not os.path.exists(os.path.join(zoo, "training", "model.pt")), "no TorchScript")
    cfg = json.load(open(os.path.join(zoo, "deployment", "config.json")))
    check(cfg.get("quantization", {}).get("format") == "int8 QDQ", "config.json: int8 QDQ")
    card = open(os.path.join(zoo, "model.md")).read()
    check("int8 QDQ" in card and "Sparsity per layer" in card, "model.md: int8 QDQ, sparsity")
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    step = qdq.output_step(model.graph, inits, qdq.producers(model.graph))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ins = sorted(glob.glob(os.path.join(zoo, "sample_inputs", "*.npz")))
    outs = sorted(glob.glob(os.path.join(zoo, "sample_outputs", "*.npz")))
    check(len(ins) == 8 and len(outs) == 8, "8 samples")
    xs = np.concatenate([np.load(p)["input"] for p in ins])
    ys = np.concatenate([np.load(p)["output"] for p in outs])
    ours = qdq.icsparse_logits(eval_bin, ckpt, xs, d, "samples")
    # batch 1 against icsparse-eval's batch: another summation order (the
    # fp32 layers of a partly quantized model) may move a rounding
    check(ours is not None and float(np.abs(ours - ys).mean()) <= 0.05 * step and
          np.array_equal(ours.argmax(1), ys.argmax(1)),
          "sample outputs are icsparse-eval's logits of the sample inputs")
    ort_y = sess.run(None, {"input": xs})[0]
    mean_steps = float(np.abs(ort_y - ys).mean() / step)
    print("%s: onnxruntime vs the samples: %.3f output steps on average, max %.3f" %
          (arch, mean_steps, float(np.abs(ort_y - ys).max() / step)))
    check(mean_steps <= 1.0, "onnxruntime within one output step on average (%.3f)" % mean_steps)
    check(np.array_equal(ort_y.argmax(1), ys.argmax(1)), "onnxruntime top-1 equal on the samples")

    # torch's own QAT module loads the .pth strictly
    if arch == "simple_cnn" and "reduce_range" not in (recipe or ""):
        m = torch_simple_cnn([sd, sd_zoo], classes, in_c, h, w)
        with torch.no_grad():
            t = m(torch.from_numpy(x)).numpy()
        tstep = float(m.classifier.activation_post_process.scale[0])
        diff = np.abs(t - want) / tstep
        agree = float((t.argmax(1) == want.argmax(1)).mean())
        print("simple_cnn: torch QAT vs icsparse-eval: %.3f output steps on average, max %.3f, "
              "top-1 agreement %.3f" % (diff.mean(), diff.max(), agree))
        # x / s (torch) against x * (1 / s) and summation order: a single
        # rounding flip early moves a logit by a step or two
        check(diff.mean() <= 1.0, "torch logits within one output step on average (%.3f)" %
              diff.mean())
        check(agree >= 0.95, "torch top-1 agreement %.3f" % agree)


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
