"""PyTorch counterpart of bench_loader: the same training transforms on one
thread, on uint8 HWC images, producing normalized float NHWC batches of 64:
random crop with zero padding + horizontal flip, or random resized crop
(scale 0.08-1, ratio 3/4-4/3) + flip via F.interpolate (what torchvision's
tensor transforms do). Prints images/s.

Usage: bench_loader_ref.py SIDE CHANNELS RRC PAD SECONDS
"""
import math
import random
import sys
import time

import torch
import torch.nn.functional as F

side, channels, rrc, pad, seconds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
torch.set_num_threads(1)
n = 512 if side > 64 else 8192
data = torch.randint(0, 256, (n, side, side, channels), dtype=torch.uint8)
mean = torch.full((channels, 1, 1), 0.5)
std = torch.full((channels, 1, 1), 0.25)
rng = random.Random(1)


def transform(img):
    x = img.permute(2, 0, 1).float()
    if rrc:
        area = side * side
        for _ in range(10):
            target = area * rng.uniform(0.08, 1.0)
            aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= side and 0 < h <= side:
                i, j = rng.randint(0, side - h), rng.randint(0, side - w)
                break
        else:
            i, j, h, w = 0, 0, side, side
        x = F.interpolate(x[None, :, i:i + h, j:j + w], size=(side, side), mode="bilinear", align_corners=False)[0]
    else:
        x = F.pad(x, (pad, pad, pad, pad))
        i, j = rng.randint(0, 2 * pad), rng.randint(0, 2 * pad)
        x = x[:, i:i + side, j:j + side]
    if rng.random() < 0.5:
        x = torch.flip(x, dims=[2])
    x = (x / 255.0 - mean) / std
    return x.permute(1, 2, 0)


done, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    order = torch.randperm(n)
    for b in range(0, n, 64):
        batch = torch.stack([transform(data[k]) for k in order[b:b + 64]])
        done += batch.shape[0]
        if time.perf_counter() - t0 >= seconds:
            break
print(done / (time.perf_counter() - t0))
