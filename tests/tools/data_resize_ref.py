"""PyTorch reference for ics_image_resize_center_crop (tests/unit/test_data_images.c).

For each K, reads DIR/rgb_K.npy (H, W, 3 values 0..255) and DIR/size_K.npy ([S]); resizes the
shorter side to S the way torchvision's tensor Resize does without
antialiasing (F.interpolate bilinear, align_corners=False, the longer side
int(S * long / short)), center-crops S x S (offsets rounded), rounds to
uint8 levels and writes DIR/want_K.npy (S, S, 3).
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

d = sys.argv[1]
k = 0
while os.path.exists(f"{d}/rgb_{k}.npy"):
    rgb = torch.from_numpy(np.load(f"{d}/rgb_{k}.npy").astype(np.float32)).permute(2, 0, 1)
    s = int(np.load(f"{d}/size_{k}.npy").reshape(-1)[0])
    h, w = rgb.shape[1:]
    if h <= w:
        vh, vw = s, int(s * w / h)
    else:
        vh, vw = int(s * h / w), s
    out = F.interpolate(rgb[None], size=(vh, vw), mode="bilinear", align_corners=False)[0]
    top, left = int(round((vh - s) / 2.0)), int(round((vw - s) / 2.0))
    out = out[:, top:top + s, left:left + s].round().clamp(0, 255)
    np.save(f"{d}/want_{k}.npy", out.permute(1, 2, 0).contiguous().numpy())
    k += 1
