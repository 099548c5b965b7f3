"""PyTorch reference for the icsparse model tests (tests/unit/test_models.c).

torchvision is not installed on the build machines, so the architectures
are re-declared here following torchvision.models (resnet.py,
mobilenetv2.py, vgg.py) module by module: the state_dict keys, their order
and shapes are what the C side must reproduce.

Usage: models_ref.py DIR. DIR/cases.txt has one line per case:
  names CASE ARCH NUM_CLASSES IN_CHANNELS H W CIFAR_STEM WIDTH_MULT
      -> writes DIR/CASE.names: "key dim0,dim1,..." per state_dict entry
  run CASE ARCH NUM_CLASSES IN_CHANNELS H W CIFAR_STEM WIDTH_MULT MODE BATCH
      -> reads DIR/CASE/<key>.npy (every state_dict entry, counters as
         float), x.npy (NHWC), dy.npy (dlogits), mask_<module>.npy (dropout
         keep masks, train mode); writes logits.npy and, in train mode,
         grad_<key>.npy for every parameter and buf_<key>.npy for every
         running statistic after the step.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)


# ---- torchvision.models.resnet ---------------------------------------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes, in_channels, cifar_stem):
        super().__init__()
        self.inplanes = 64
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---- torchvision.models.mobilenetv2 -----------------------------------------
def _make_divisible(v, divisor, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    """torchvision.ops.misc.Conv2dNormActivation(norm=BN, activation=ReLU6)."""

    def __init__(self, inp, oup, kernel_size=3, stride=1, groups=1):
        padding = (kernel_size - 1) // 2
        super().__init__(nn.Conv2d(inp, oup, kernel_size, stride, padding, groups=groups, bias=False),
                         nn.BatchNorm2d(oup), nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden_dim, kernel_size=1))
        layers.extend([ConvBNReLU6(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
                       nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)])
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes, in_channels, width_mult, dropout=0.2):
        super().__init__()
        input_channel = _make_divisible(32 * width_mult, 8)
        last_channel = _make_divisible(1280 * max(1.0, width_mult), 8)
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                   [6, 160, 3, 2], [6, 320, 1, 1]]
        features = [ConvBNReLU6(in_channels, input_channel, stride=2)]
        for t, c, n, s in setting:
            output_channel = _make_divisible(c * width_mult, 8)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(ConvBNReLU6(input_channel, last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_channel, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


# ---- torchvision.models.vgg (batch norm variants) ---------------------------
VGG_CFGS = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
            16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
                 "M"]}


class VGG(nn.Module):
    def __init__(self, depth, num_classes, in_channels, dropout=0.5):
        super().__init__()
        layers, c = [], in_channels
        for v in VGG_CFGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---- icsparse's simple_cnn (src/models/simple_cnn.c) ------------------------
class SimpleCNN(nn.Module):
    def __init__(self, num_classes, in_channels, h, w):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
            nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(64 * (h // 2 // 2) * (w // 2 // 2), num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def build(arch, num_classes, in_channels, h, w, cifar_stem, width_mult):
    if arch == "resnet18":
        return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, cifar_stem)
    if arch == "resnet34":
        return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels, cifar_stem)
    if arch == "resnet50":
        return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, cifar_stem)
    if arch == "resnet101":
        return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_channels, cifar_stem)
    if arch == "mobilenet_v2":
        return MobileNetV2(num_classes, in_channels, width_mult)
    if arch == "vgg11_bn":
        return VGG(11, num_classes, in_channels)
    if arch == "vgg16_bn":
        return VGG(16, num_classes, in_channels)
    if arch == "simple_cnn":
        return SimpleCNN(num_classes, in_channels, h, w)
    raise SystemExit("unknown arch " + arch)


class no_init:
    """Makes layer constructors skip reset_parameters (memory stays torch.empty)."""

    def __enter__(self):
        self.saved = [(c, c.reset_parameters) for c in (nn.Conv2d, nn.Linear, nn.BatchNorm2d)]
        for c, _ in self.saved:
            c.reset_parameters = lambda self: None

    def __exit__(self, *exc):
        for c, f in self.saved:
            c.reset_parameters = f


def write_names(path, model):
    with open(path, "w") as f:
        for key, t in model.state_dict().items():
            f.write("%s %s\n" % (key, ",".join(str(d) for d in t.shape)))


def run_case(case_dir, model, mode, batch, dtype, prefix):
    state = {}
    for key, t in model.state_dict().items():
        a = np.load(os.path.join(case_dir, key + ".npy"))
        state[key] = torch.from_numpy(a.reshape(tuple(t.shape))).to(t.dtype)
    model.load_state_dict(state)
    # The reference runs in float64: Debian's torch 1.13 float32 CPU batch
    # norm backward loses digits to cancellation in channels whose mean is
    # large against their spread (seen in resnet50's layer4: 5x off in a
    # BN bias gradient, where float64 and finite differences agree with
    # icsparse), so float32 torch is not a trustworthy "truth".
    model.to(dtype)
    # Dropout: replay the C side's keep masks (y = x * mask / (1 - p)).
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Dropout) and mode == "train":
            mask = torch.from_numpy(np.load(os.path.join(case_dir, "mask_%s.npy" % name))).to(dtype)
            p = mod.p

            def hook(module, inputs, output, mask=mask, p=p):
                return inputs[0] * mask.reshape(inputs[0].shape) / (1.0 - p)
            mod.register_forward_hook(hook)
    x = torch.from_numpy(np.load(os.path.join(case_dir, "x.npy"))).permute(0, 3, 1, 2).contiguous()
    x = x.to(dtype)
    model.train(mode == "train")
    logits = model(x)
    np.save(os.path.join(case_dir, prefix + "logits.npy"), logits.detach().numpy().astype(np.float32))
    if mode != "train":
        return
    dy = torch.from_numpy(np.load(os.path.join(case_dir, "dy.npy"))).to(dtype)
    logits.backward(dy)
    for key, p in model.named_parameters():
        np.save(os.path.join(case_dir, prefix + "grad_%s.npy" % key), p.grad.numpy().astype(np.float32))
    for key, b in model.named_buffers():
        np.save(os.path.join(case_dir, prefix + "buf_%s.npy" % key), b.numpy().astype(np.float32))


def main():
    root = sys.argv[1]
    with open(os.path.join(root, "cases.txt")) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            what, case, arch = w[0], w[1], w[2]
            num_classes, in_ch, h, wd, cifar = (int(v) for v in w[3:8])
            width = float(w[8])
            if what == "names":
                # shapes only: skip the (slow, for VGG) random initialization
                with no_init():
                    model = build(arch, num_classes, in_ch, h, wd, cifar, width)
                write_names(os.path.join(root, case + ".names"), model)
            else:
                model = build(arch, num_classes, in_ch, h, wd, cifar, width)
                # float64: the truth; float32: torch's own rounding error,
                # the yardstick for icsparse's (see test_models_torch.c).
                run_case(os.path.join(root, case), model, w[9], int(w[10]), torch.float64, "")
                model = build(arch, num_classes, in_ch, h, wd, cifar, width)
                run_case(os.path.join(root, case), model, w[9], int(w[10]), torch.float32, "t32_")


if __name__ == "__main__":
    main()
