"""PyTorch reference for src/data/augment.c (run by tests/unit/test_data_loader.c).

Reads DIR/image.npy (H, W, C float holding uint8 values), DIR/cases.npy (K x 11:
box_y box_x box_h box_w virt_h virt_w win_y win_x out_h out_w flip) and
DIR/norm.npy (2 x C: mean, std). For each case: crop the box, resize it to
(virt_h, virt_w) with F.interpolate(bilinear, align_corners=False) -- what
torchvision's tensor Resize/resized_crop do without antialiasing -- take the
window with zero padding outside, mirror if asked, then ToTensor's /255 and
Normalize. Writes DIR/want_K.npy (out_h, out_w, C).
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

d = sys.argv[1]
img = torch.from_numpy(np.load(f"{d}/image.npy").astype(np.float32)).permute(2, 0, 1)  # C,H,W
cases = np.load(f"{d}/cases.npy").astype(np.int64)
mean, std = np.load(f"{d}/norm.npy").astype(np.float32)
for k, (by, bx, bh, bw, vh, vw, wy, wx, oh, ow, flip) in enumerate(cases):
    box = img[:, by:by + bh, bx:bx + bw]
    if (vh, vw) != (bh, bw):
        box = F.interpolate(box[None], size=(int(vh), int(vw)), mode="bilinear", align_corners=False)[0]
    c = box.shape[0]
    out = torch.zeros(c, oh, ow)
    # The window in virtual coordinates, intersected with the virtual image.
    y0, x0 = max(wy, 0), max(wx, 0)
    y1, x1 = min(wy + oh, vh), min(wx + ow, vw)
    if y1 > y0 and x1 > x0:
        out[:, y0 - wy:y1 - wy, x0 - wx:x1 - wx] = box[:, y0:y1, x0:x1]
    if flip:
        out = torch.flip(out, dims=[2])
    out = out / 255.0
    out = (out - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    np.save(f"{d}/want_{k}.npy", out.permute(1, 2, 0).contiguous().numpy())
