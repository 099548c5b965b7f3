"""Fixtures for tests/unit/test_pth_import.c: checkpoints made by torch.save.

Usage: import_make.py DIR. Writes into DIR:
  x.npy                      inputs, NHWC [2, 8, 8, 3]
  r18_plain.pth              resnet18 (cifar stem, 10 classes) state_dict
  r18_plain_logits.npy       its logits (eval mode) on x
  r18_zoo.pth                the same architecture, other random weights,
                             half of each conv / linear weight zero, saved as
                             a SparseML checkpoint: SparseZoo names with a
                             module. prefix, epoch, recipe, arch_key,
                             optimizer state (SGD momentum)
  r18_zoo_logits.npy
  cnn_f64.pth                simple_cnn (3x8x8, 10 classes) in float64 under
                             {"model": ...}, num_batches_tracked 7
  cnn_f64_logits.npy
  cnn_half.pth               simple_cnn in float16 (module. prefix)
  cnn_half_logits.npy        logits of the float16 weights widened
  cnn_transfer.pth           simple_cnn with 5 classes (+ conv0.npy: its
                             first conv weight)
  cnn_qat.pth                simple_cnn + fake-quant / observer keys
  cnn_qat_recipe.pth         checkpoint whose recipe quantizes, no
                             quantizer state
  cnn_torchqat.pth           simple_cnn through torch's eager QAT
                             (fuse_modules_qat, QuantWrapper, prepare_qat
                             with icsparse's quantizers: uint8 affine
                             activations, int8 symmetric per-channel
                             weights), observers calibrated on random
                             batches then disabled, saved with a finished
                             QuantizationModifier recipe (epoch -1)
  cnn_torchqat_logits.npy    its eval-mode logits on x;
  cnn_torchqat_step.npy      the output quantizer's scale
  cnn_torchqat_w4scale.npy   features.4's per-channel weight scales
  cnn_torchqat_nofq4.pth     without features.4's activation quantizer
  cnn_torchqat_affine.pth    a nonzero weight zero point
  cnn_missing.pth            features.5.weight renamed features.5.wieght
  cnn_shape.pth              features.4.weight with 3x3 -> 1x1 kernel
  cnn_extra.pth              an extra key "head.weight"
  not_a_state_dict.pth       a list
  cnn_dup.pth, cnn_longkey.pth, cnn_counter.pth: a key given twice (with
                             and without module.), a 300-character key, a
                             num_batches_tracked of 2 elements
  cnn_bias.pth               a classifier bias of 5 with a weight of 10 rows
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models_ref  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(1234)
out = sys.argv[1]


def randomize(model):
    """Random weights and running statistics (not the init: any mapping
    mistake then shows in the logits)."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(int(torch.randint(1, 1000, ())))
            elif name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn_like(t) * 0.1)
            elif t.dim() >= 2:
                fan_in = t[0].numel()
                t.copy_(torch.randn_like(t) * (2.0 / fan_in) ** 0.5)
            else:
                t.copy_(torch.randn_like(t) * 0.1 + (1.0 if name.endswith("weight") else 0.0))
    return model.eval()


def logits(model, x, dtype=torch.float32):
    with torch.no_grad():
        m = model.to(dtype)
        y = m(torch.from_numpy(x).permute(0, 3, 1, 2).to(dtype))
        model.float()
        return y.float().numpy()


def zoo_name(key):
    """torchvision resnet name -> SparseML's own resnet name."""
    parts = key.split(".")
    if parts[0] == "conv1":
        return "input.conv." + ".".join(parts[1:])
    if parts[0] == "bn1":
        return "input.bn." + ".".join(parts[1:])
    if parts[0] == "fc":
        return "classifier.fc." + ".".join(parts[1:])
    s = int(parts[0][len("layer"):]) - 1
    rest = ".".join(parts[2:])
    rest = rest.replace("downsample.0.", "identity.conv.").replace("downsample.1.", "identity.bn.")
    return "sections.%d.%s.%s" % (s, parts[1], rest)


x = np.random.RandomState(7).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
np.save(os.path.join(out, "x.npy"), x)

# resnet18, plain state_dict
r18 = randomize(models_ref.build("resnet18", 10, 3, 8, 8, 1, 1.0))
torch.save(r18.state_dict(), os.path.join(out, "r18_plain.pth"))
np.save(os.path.join(out, "r18_plain_logits.npy"), logits(r18, x))

# resnet18, pruned SparseML checkpoint with SparseZoo names
r18 = randomize(models_ref.build("resnet18", 10, 3, 8, 8, 1, 1.0))
opt = torch.optim.SGD(r18.parameters(), lr=0.01, momentum=0.9)
r18(torch.randn(2, 3, 8, 8)).sum().backward()  # eval mode: running stats stay random
opt.step()
with torch.no_grad():
    for name, p in r18.named_parameters():
        if p.dim() >= 2:
            p[torch.rand_like(p) < 0.5] = 0
sd = {"module." + zoo_name(k): v for k, v in r18.state_dict().items()}
recipe = ("---\nversion: 1.1.0\n---\nmodifiers:\n  - !EpochRangeModifier\n    start_epoch: 0.0\n"
          "    end_epoch: 10.0\n  - !GMPruningModifier\n    params: __ALL_PRUNABLE__\n"
          "    init_sparsity: 0.05\n    final_sparsity: 0.5\n    start_epoch: 0.0\n    end_epoch: 5.0\n"
          "    update_frequency: 1.0\n")
torch.save({"state_dict": sd, "epoch": 9, "recipe": recipe, "arch_key": "resnet18",
            "optimizer": opt.state_dict()}, os.path.join(out, "r18_zoo.pth"))
np.save(os.path.join(out, "r18_zoo_logits.npy"), logits(r18, x))
zeros = sum(int((p == 0).sum()) for p in r18.parameters() if p.dim() >= 2)
total = sum(p.numel() for p in r18.parameters() if p.dim() >= 2)
np.save(os.path.join(out, "r18_zoo_sparsity.npy"), np.array([zeros / total], np.float32))

# simple_cnn variants
cnn = randomize(models_ref.build("simple_cnn", 10, 3, 8, 8, 0, 1.0))
with torch.no_grad():
    cnn.features[1].num_batches_tracked.fill_(7)
sd64 = {k: (v.double() if v.is_floating_point() else v) for k, v in cnn.state_dict().items()}
torch.save({"model": sd64, "epoch": 2.5}, os.path.join(out, "cnn_f64.pth"))
np.save(os.path.join(out, "cnn_f64_logits.npy"), logits(cnn, x, torch.float64))

sd16 = {"module." + k: (v.half() if v.is_floating_point() else v) for k, v in cnn.state_dict().items()}
torch.save(sd16, os.path.join(out, "cnn_half.pth"))
cnn16 = models_ref.build("simple_cnn", 10, 3, 8, 8, 0, 1.0).eval()
cnn16.load_state_dict({k[len("module."):]: v.float() for k, v in sd16.items()})
np.save(os.path.join(out, "cnn_half_logits.npy"), logits(cnn16, x))

small = randomize(models_ref.build("simple_cnn", 5, 3, 8, 8, 0, 1.0))
torch.save(small.state_dict(), os.path.join(out, "cnn_transfer.pth"))
np.save(os.path.join(out, "conv0.npy"), small.features[0].weight.detach().numpy())

sd = dict(cnn.state_dict())
sd["features.0.weight_fake_quant.scale"] = torch.ones(1)
sd["features.0.weight_fake_quant.zero_point"] = torch.zeros(1, dtype=torch.int32)
sd["features.2.activation_post_process.min_val"] = torch.zeros(())
torch.save(sd, os.path.join(out, "cnn_qat.pth"))
torch.save({"state_dict": cnn.state_dict(), "epoch": -1,
            "recipe": "modifiers:\n  - !QuantizationModifier\n    start_epoch: 0.0\n"},
           os.path.join(out, "cnn_qat_recipe.pth"))

sd = dict(cnn.state_dict())
sd["features.5.wieght"] = sd.pop("features.5.weight")
torch.save(sd, os.path.join(out, "cnn_missing.pth"))
sd = dict(cnn.state_dict())
sd["features.4.weight"] = torch.zeros(64, 32, 1, 1)
torch.save(sd, os.path.join(out, "cnn_shape.pth"))
sd = dict(cnn.state_dict())
sd["head.weight"] = torch.zeros(3)
torch.save(sd, os.path.join(out, "cnn_extra.pth"))
torch.save([1, 2, 3], os.path.join(out, "not_a_state_dict.pth"))
sd = dict(cnn.state_dict())
sd["module.features.0.weight"] = sd["features.0.weight"]
torch.save(sd, os.path.join(out, "cnn_dup.pth"))
sd = dict(cnn.state_dict())
sd["x" * 300] = torch.zeros(1)
torch.save(sd, os.path.join(out, "cnn_longkey.pth"))
sd = dict(cnn.state_dict())
sd["features.1.num_batches_tracked"] = torch.zeros(2, dtype=torch.int64)
torch.save(sd, os.path.join(out, "cnn_counter.pth"))
sd = dict(cnn.state_dict())
sd["classifier.bias"] = torch.zeros(5)
torch.save(sd, os.path.join(out, "cnn_bias.pth"))

# simple_cnn through torch's eager-mode QAT, with icsparse's quantizers
import torch.ao.quantization as tq  # noqa: E402

qat = randomize(models_ref.build("simple_cnn", 10, 3, 8, 8, 0, 1.0)).train()
tq.fuse_modules_qat(qat, [["features.0", "features.1", "features.2"],
                          ["features.4", "features.5", "features.6"]], inplace=True)
wrapped = tq.QuantWrapper(qat)
wrapped.qconfig = tq.QConfig(
    activation=tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=0,
                                         quant_max=255, dtype=torch.quint8,
                                         qscheme=torch.per_tensor_affine, reduce_range=False),
    weight=tq.FakeQuantize.with_args(observer=tq.MovingAveragePerChannelMinMaxObserver,
                                     quant_min=-128, quant_max=127, dtype=torch.qint8,
                                     qscheme=torch.per_channel_symmetric))
tq.prepare_qat(wrapped, inplace=True)
with torch.no_grad():
    for _ in range(3):  # training-mode forwards calibrate the observers
        wrapped(torch.rand(4, 3, 8, 8) * 2 - 1)
wrapped.apply(tq.disable_observer)
wrapped.eval()
qat_recipe = ("modifiers:\n  - !QuantizationModifier\n    start_epoch: 0.0\n"
              "    disable_quantization_observer_epoch: 2.0\n    freeze_bn_stats_epoch: 2.0\n")
sd = wrapped.state_dict()
torch.save({"state_dict": sd, "epoch": -1, "recipe": qat_recipe, "arch_key": "simple_cnn"},
           os.path.join(out, "cnn_torchqat.pth"))
np.save(os.path.join(out, "cnn_torchqat_logits.npy"), logits(wrapped, x))
np.save(os.path.join(out, "cnn_torchqat_step.npy"),
        wrapped.module.classifier.activation_post_process.scale.detach().numpy())
np.save(os.path.join(out, "cnn_torchqat_w4scale.npy"),
        wrapped.module.features[4].weight_fake_quant.scale.detach().numpy())
part = {k: v for k, v in sd.items() if not k.startswith("module.features.4.activation_post_process")}
torch.save({"state_dict": part, "epoch": -1, "recipe": qat_recipe},
           os.path.join(out, "cnn_torchqat_nofq4.pth"))
affine = dict(sd)
affine["module.classifier.weight_fake_quant.zero_point"] = torch.full((10,), 3, dtype=torch.int32)
torch.save({"state_dict": affine, "epoch": -1, "recipe": qat_recipe},
           os.path.join(out, "cnn_torchqat_affine.pth"))
