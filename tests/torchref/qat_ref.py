"""PyTorch reference for the QAT cross-checks (tests/unit/test_qat_torch.c).

Everything runs in float32: fake quantization is defined by float32
arithmetic (x * (1 / scale), round half to even), so the reference is
torch's own float32 QAT modules and functions, not a float64 "truth".

Usage: qat_ref.py DIR. DIR/cases.txt has one line per case; inputs are
DIR/<ID>_<what>.npy (float32, C order), outputs are written next to them.

  fq_tensor ID     x, qp = [scale, zero_point, quant_min, quant_max]
                   -> y (torch.fake_quantize_per_tensor_affine with float
                      qparams), yt (tensor qparams, what FakeQuantize calls),
                      g (its gradient for dy = 1)
  fq_channel ID    x [C, K], scale [C], zp [C], range [quant_min, quant_max]
                   -> y, g (torch.fake_quantize_per_channel_affine, axis 0)
  wquant ID        w [C, K] -> scale, zp, y, g: the weight FakeQuantize of
                   the qconfig below (per-channel symmetric int8 observer)
  qparams ID       ranges [n, 2] -> affine [n, 2] (quint8 0..255 affine),
                   sym [n, 2] (qint8 -128..127 per-channel symmetric):
                   scale and zero point from the observers' calculate_qparams
  observer ID N    b0 .. b{N-1} -> min, max, scale, zp [N] after each batch
                   (MovingAverageMinMaxObserver, averaging_constant 0.01)
  group ID N H W CIN COUT K STRIDE PAD BIAS FROZEN
                   x (NHWC), w, b, gamma, beta, rmean, rvar, dy (NHWC)
                   -> y (NHWC, after the activation FakeQuantize), dx (NHWC),
                      gw, gb, ggamma, gbeta, rmean_after, rvar_after,
                      nbt (num_batches_tracked), wscale, aq = [scale, zp]:
                   torch.nn.intrinsic.qat.ConvBnReLU2d in training mode
                   (freeze_bn_stats() first when FROZEN) followed by the
                   activation FakeQuantize
  model ID ARCH CLASSES IN_C H W BATCH
                   DIR/ID/<key>.npy (every state_dict entry), x.npy (NHWC),
                   dy.npy -> logits.npy, grad_<key>.npy, buf_<key>.npy,
                   aq_<name>.npy = [scale, zp, min, max] per activation
                   quantizer and ws_<module>.npy per weight quantizer,
                   icsparse names; the float model fused with
                   fuse_modules_qat, a QuantStub in front, prepare_qat, one
                   training-mode forward and backward. yard_<kind>.npy
                   (logits, grad, buf, aq): the largest relative L2
                   distance of torch from itself over that kind's outputs
                   and two runs that differ only by rounding (model_case)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.intrinsic.qat as nniqat
from torch.ao.quantization import (DeQuantStub, FakeQuantize, MovingAverageMinMaxObserver,
                                   MovingAveragePerChannelMinMaxObserver, QConfig, QuantStub)
from torch.ao.quantization import fuse_modules_qat, prepare_qat

torch.set_num_threads(1)

ACT = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, averaging_constant=0.01, quant_min=0,
                             quant_max=255, dtype=torch.quint8, qscheme=torch.per_tensor_affine,
                             reduce_range=False)
WEIGHT = FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver, averaging_constant=1.0,
                                quant_min=-128, quant_max=127, dtype=torch.qint8,
                                qscheme=torch.per_channel_symmetric, reduce_range=False, ch_axis=0)
QCONFIG = QConfig(activation=ACT, weight=WEIGHT)


def load(root, name):
    return torch.from_numpy(np.load(os.path.join(root, name + ".npy")))


def save(root, name, t):
    a = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    np.save(os.path.join(root, name + ".npy"), a.astype(np.float32))


def nhwc_to_nchw(t):
    return t.permute(0, 3, 1, 2).contiguous()


def nchw_to_nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


def fq_tensor(root, cid):
    x = load(root, cid + "_x").requires_grad_(True)
    scale, zp, qmin, qmax = load(root, cid + "_qp").tolist()
    y = torch.fake_quantize_per_tensor_affine(x, scale, int(zp), int(qmin), int(qmax))
    y.backward(torch.ones_like(y))
    save(root, cid + "_y", y)
    save(root, cid + "_g", x.grad)
    yt = torch.fake_quantize_per_tensor_affine(x.detach(), torch.tensor([scale], dtype=torch.float32),
                                               torch.tensor([int(zp)], dtype=torch.int32), int(qmin), int(qmax))
    save(root, cid + "_yt", yt)


def fq_channel(root, cid):
    x = load(root, cid + "_x").requires_grad_(True)
    scale = load(root, cid + "_scale")
    zp = load(root, cid + "_zp").to(torch.int32)
    qmin, qmax = (int(v) for v in load(root, cid + "_range").tolist())
    y = torch.fake_quantize_per_channel_affine(x, scale, zp, 0, qmin, qmax)
    y.backward(torch.ones_like(y))
    save(root, cid + "_y", y)
    save(root, cid + "_g", x.grad)


def wquant(root, cid):
    w = load(root, cid + "_w").requires_grad_(True)
    fq = WEIGHT()
    y = fq(w)
    y.backward(torch.ones_like(y))
    save(root, cid + "_scale", fq.scale)
    save(root, cid + "_zp", fq.zero_point)
    save(root, cid + "_y", y)
    save(root, cid + "_g", w.grad)


def qparams(root, cid):
    ranges = load(root, cid + "_ranges")
    aff = ACT().activation_post_process
    sym = WEIGHT().activation_post_process
    out_a, out_s = [], []
    for lo, hi in ranges.tolist():
        lo_t = torch.tensor(lo, dtype=torch.float32)
        hi_t = torch.tensor(hi, dtype=torch.float32)
        s, z = aff._calculate_qparams(lo_t, hi_t)
        out_a.append([float(s[0]), float(z[0])])
        s, z = sym._calculate_qparams(lo_t.reshape(1), hi_t.reshape(1))
        out_s.append([float(s[0]), float(z[0])])
    save(root, cid + "_affine", np.array(out_a, dtype=np.float32))
    save(root, cid + "_sym", np.array(out_s, dtype=np.float32))


def observer(root, cid, n):
    obs = MovingAverageMinMaxObserver(averaging_constant=0.01, dtype=torch.quint8,
                                      qscheme=torch.per_tensor_affine)
    rows = []
    for k in range(n):
        obs(load(root, "%s_b%d" % (cid, k)))
        s, z = obs.calculate_qparams()
        rows.append([float(obs.min_val), float(obs.max_val), float(s[0]), float(z[0])])
    a = np.array(rows, dtype=np.float32)
    for j, name in enumerate(("min", "max", "scale", "zp")):
        save(root, cid + "_" + name, a[:, j])


def group(root, cid, n, h, w, cin, cout, k, stride, pad, bias, frozen):
    m = nniqat.ConvBnReLU2d(cin, cout, k, stride, pad, bias=bool(bias), qconfig=QCONFIG)
    with torch.no_grad():
        m.weight.copy_(load(root, cid + "_w").reshape(m.weight.shape))
        if bias:
            m.bias.copy_(load(root, cid + "_b"))
        m.bn.weight.copy_(load(root, cid + "_gamma"))
        m.bn.bias.copy_(load(root, cid + "_beta"))
        m.bn.running_mean.copy_(load(root, cid + "_rmean"))
        m.bn.running_var.copy_(load(root, cid + "_rvar"))
    act = QCONFIG.activation()
    m.train()
    if frozen:
        m.freeze_bn_stats()
    x = nhwc_to_nchw(load(root, cid + "_x").reshape(n, h, w, cin)).requires_grad_(True)
    y = act(m(x))
    dy = nhwc_to_nchw(load(root, cid + "_dy").reshape(nchw_to_nhwc(y).shape))
    y.backward(dy)
    save(root, cid + "_y", nchw_to_nhwc(y))
    save(root, cid + "_dx", nchw_to_nhwc(x.grad))
    save(root, cid + "_gw", m.weight.grad)
    if bias:
        save(root, cid + "_gb", m.bias.grad)
    save(root, cid + "_ggamma", m.bn.weight.grad)
    save(root, cid + "_gbeta", m.bn.bias.grad)
    save(root, cid + "_rmean_after", m.bn.running_mean)
    save(root, cid + "_rvar_after", m.bn.running_var)
    save(root, cid + "_nbt", np.array([float(m.bn.num_batches_tracked)]))
    save(root, cid + "_wscale", m.weight_fake_quant.scale)
    save(root, cid + "_aq", np.array([float(act.scale[0]), float(act.zero_point[0])]))


# ---- the models, with icsparse's module names -----------------------------
class SimpleCNN(nn.Module):
    """src/models/simple_cnn.c, as tests/torchref/models_ref.py."""

    def __init__(self, num_classes, in_channels, h, w):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
            nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(64 * (h // 2 // 2) * (w // 2 // 2), num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))

    fuse = [["features.0", "features.1", "features.2"], ["features.4", "features.5", "features.6"]]


class BasicBlock(nn.Module):
    """torchvision's BasicBlock with the residual add as a FloatFunctional
    named "add" (add_relu: the ReLU before its quantizer, as icsparse's
    add -> ReLU -> "layerN.M.add.activation_post_process")."""

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.add = nn.quantized.FloatFunctional()

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.add.add_relu(out, identity)


class ResNet18Cifar(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(64)
        self.layer2 = self._make_layer(128, 2)
        self.layer3 = self._make_layer(256, 2)
        self.layer4 = self._make_layer(512, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        self.fuse = [["conv1", "bn1", "relu"]]
        for li in range(1, 5):
            for b in range(2):
                p = "layer%d.%d." % (li, b)
                self.fuse += [[p + "conv1", p + "bn1", p + "relu"], [p + "conv2", p + "bn2"]]
                if li > 1 and b == 0:
                    self.fuse.append([p + "downsample.0", p + "downsample.1"])

    def _make_layer(self, planes, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample), BasicBlock(planes, planes)]
        self.inplanes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Quantized(nn.Module):
    """QuantStub (icsparse's "quant") in front of the model."""

    def __init__(self, model):
        super().__init__()
        self.quant = QuantStub()
        self.model = model
        self.dequant = DeQuantStub()

    def forward(self, x):
        return self.dequant(self.model(self.quant(x)))


def observe_output(module):
    """An activation FakeQuantize after a module torch's eager mode leaves
    unobserved (an average pool: icsparse quantizes its output, see
    docs/SPARSIFICATION.md), attached as prepare_qat attaches its own."""
    module.activation_post_process = QCONFIG.activation()
    module.register_forward_hook(lambda mod, inp, out: mod.activation_post_process(out))


def build_float(case_dir, arch, classes, in_c, h, w):
    if arch == "simple_cnn":
        model = SimpleCNN(classes, in_c, h, w)
    elif arch == "resnet18":
        model = ResNet18Cifar(classes, in_c)
    else:
        raise SystemExit("qat_ref.py: no QAT reference for " + arch)
    state = {}
    for key, t in model.state_dict().items():
        a = np.load(os.path.join(case_dir, key + ".npy"))
        state[key] = torch.from_numpy(a.reshape(tuple(t.shape))).to(t.dtype)
    model.load_state_dict(state)
    return model


def qat_step(case_dir, arch, classes, in_c, h, w, x, dy, channels_last=False):
    """One training-mode forward and backward of the prepared QAT model;
    returns {output name: array} with icsparse's names (see the module
    docstring) and the input quantizer's scale."""
    model = build_float(case_dir, arch, classes, in_c, h, w)
    keys = list(model.state_dict().keys())
    model.train()
    fuse = model.fuse
    model = fuse_modules_qat(model, fuse)
    # where each icsparse state_dict key lives after fusion (a BN moves
    # into its conv as ".bn")
    moved = {}
    for names in fuse:
        if len(names) > 1:
            moved[names[1] + "."] = names[0] + ".bn."
    q = Quantized(model)
    q.qconfig = QCONFIG
    q.train()
    prepare_qat(q, inplace=True)
    if arch == "resnet18":
        observe_output(q.model.avgpool)
    if channels_last:
        q = q.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    logits = q(x)
    logits.backward(dy)
    out = {"logits": logits.detach().numpy()}
    params = dict(q.model.named_parameters())
    buffers = dict(q.model.named_buffers())
    for key in keys:
        where = key
        for src, dst in moved.items():
            if key.startswith(src):
                where = dst + key[len(src):]
        if where in params:
            out["grad_" + key] = params[where].grad.numpy().copy()
        elif not key.endswith("num_batches_tracked"):
            out["buf_" + key] = buffers[where].numpy().copy()
        else:
            out["buf_" + key] = np.array([float(buffers[where])])
    for name, mod in q.named_modules():
        if not isinstance(mod, FakeQuantize):
            continue
        obs = mod.activation_post_process
        if name.endswith(".weight_fake_quant"):
            module = name[len("model."):-len(".weight_fake_quant")]
            out["ws_" + module] = mod.scale.numpy().copy()
            continue
        # icsparse's names: "quant" for the input, "<module>.activation_post_process"
        ours = "quant" if name == "quant.activation_post_process" else name[len("model."):]
        out["aq_" + ours] = np.array([float(mod.scale[0]), float(mod.zero_point[0]), float(obs.min_val),
                                      float(obs.max_val)])
    return out, float(q.quant.activation_post_process.scale[0])


def rel_l2(a, b):
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    den = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / den) if den > 0 else float(np.linalg.norm(a - b))


def model_case(case_dir, arch, classes, in_c, h, w, batch):
    x = nhwc_to_nchw(torch.from_numpy(np.load(os.path.join(case_dir, "x.npy"))))
    dy = torch.from_numpy(np.load(os.path.join(case_dir, "dy.npy")))
    ref, in_scale = qat_step(case_dir, arch, classes, in_c, h, w, x, dy)
    for name, a in ref.items():
        save(case_dir, name, a)
    # torch against itself, the yardstick for chance (test_qat_torch.c):
    # (1) another summation order (channels-last convolutions), (2) one
    # element of the input moved by one quantization step (a single
    # rounding flip at the model input, as a 1-ulp difference makes one)
    flat = x.flatten()
    mid = (flat.max() + flat.min()) / 2
    i = int((flat - mid).abs().argmin())
    x_flip = flat.clone()
    x_flip[i] += in_scale
    variants = [qat_step(case_dir, arch, classes, in_c, h, w, x, dy, channels_last=True)[0],
                qat_step(case_dir, arch, classes, in_c, h, w, x_flip.reshape(x.shape), dy)[0]]
    # one yardstick per kind of output (which tensors a flip disturbs most
    # is chance): the largest distance over its tensors and both variants
    yard = {"logits": 0.0, "grad": 0.0, "buf": 0.0, "aq": 0.0}
    for name, a in ref.items():
        kind = name.split("_")[0] if name != "logits" else "logits"
        if kind in yard and not name.endswith("num_batches_tracked"):
            yard[kind] = max([yard[kind]] + [rel_l2(v[name], a) for v in variants])
    for kind, value in yard.items():
        save(case_dir, "yard_" + kind, np.array([value]))


def main():
    root = sys.argv[1]
    with open(os.path.join(root, "cases.txt")) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            kind, cid, args = w[0], w[1], [int(v) for v in w[2:]] if w[0] != "model" else w[2:]
            if kind == "fq_tensor":
                fq_tensor(root, cid)
            elif kind == "fq_channel":
                fq_channel(root, cid)
            elif kind == "wquant":
                wquant(root, cid)
            elif kind == "qparams":
                qparams(root, cid)
            elif kind == "observer":
                observer(root, cid, *args)
            elif kind == "group":
                group(root, cid, *args)
            elif kind == "model":
                model_case(os.path.join(root, cid), args[0], *(int(v) for v in args[1:]))
            else:
                raise SystemExit("qat_ref.py: unknown case " + kind)


if __name__ == "__main__":
    main()
