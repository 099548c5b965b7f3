"""PyTorch reference for tests/unit/test_ops.c.

Usage: ops_ref.py DIR. DIR/manifest.txt has one case per line:
    <op> name=<case> key=value ...
and DIR holds the case's inputs as .npy (activations in NHWC, parameters in
PyTorch's layout). For each case this script computes the forward with
torch.nn.functional in float64 (so the comparison measures only the C code's
float32 rounding), the backward with autograd from the given upstream
gradient, and writes <case>_<what>_ref.npy (activations back in NHWC).
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_grad_enabled(True)
DIR = sys.argv[1]


def load(name, dtype=torch.float64):
    return torch.from_numpy(np.load(os.path.join(DIR, name + ".npy"))).to(dtype)


def save(name, t):
    np.save(os.path.join(DIR, name + "_ref.npy"), t.detach().cpu().numpy())


def nchw(t):  # NHWC -> NCHW
    return t.permute(0, 3, 1, 2).contiguous()


def nhwc(t):  # NCHW -> NHWC
    return t.permute(0, 2, 3, 1).contiguous()


def leaf(t):
    return t.clone().requires_grad_(True)


def conv(c, a):
    x = leaf(nchw(load(c + "_x")))
    w = leaf(load(c + "_w"))
    b = leaf(load(c + "_b")) if a["bias"] == "1" else None
    y = F.conv2d(x, w, b, stride=(int(a["sh"]), int(a["sw"])),
                 padding=(int(a["ph"]), int(a["pw"])), groups=int(a["groups"]))
    y.backward(nchw(load(c + "_dy")))
    save(c + "_y", nhwc(y))
    save(c + "_dx", nhwc(x.grad))
    save(c + "_dw", w.grad)
    if b is not None:
        save(c + "_db", b.grad)


def bn(c, a):
    x = leaf(nchw(load(c + "_x")))
    g = leaf(load(c + "_gamma"))
    b = leaf(load(c + "_beta"))
    rm, rv = load(c + "_rm"), load(c + "_rv")
    mom, eps = float(a["momentum"]), float(a["eps"])
    # Eval first, with the running statistics as given.
    ye = F.batch_norm(nchw(load(c + "_x")), rm.clone(), rv.clone(), g.detach(), b.detach(),
                      training=False, momentum=mom, eps=eps)
    save(c + "_yeval", nhwc(ye))
    y = F.batch_norm(x, rm, rv, g, b, training=True, momentum=mom, eps=eps)
    y.backward(nchw(load(c + "_dy")))
    save(c + "_y", nhwc(y))
    save(c + "_rm", rm)
    save(c + "_rv", rv)
    save(c + "_dx", nhwc(x.grad))
    save(c + "_dgamma", g.grad)
    save(c + "_dbeta", b.grad)


def pool_args(a):
    return dict(kernel_size=(int(a["kh"]), int(a["kw"])), stride=(int(a["sh"]), int(a["sw"])),
                padding=(int(a["ph"]), int(a["pw"])), ceil_mode=a["ceil"] == "1")


def maxpool(c, a):
    x = leaf(nchw(load(c + "_x")))
    y, idx = F.max_pool2d(x, return_indices=True, **pool_args(a))
    y.backward(nchw(load(c + "_dy")))
    save(c + "_y", nhwc(y))
    save(c + "_idx", nhwc(idx).to(torch.int32))
    save(c + "_dx", nhwc(x.grad))


def avgpool(c, a):
    x = leaf(nchw(load(c + "_x")))
    y = F.avg_pool2d(x, count_include_pad=a["include_pad"] == "1", **pool_args(a))
    y.backward(nchw(load(c + "_dy")))
    save(c + "_y", nhwc(y))
    save(c + "_dx", nhwc(x.grad))


def adaptive(c, a):
    x = leaf(nchw(load(c + "_x")))
    y = F.adaptive_avg_pool2d(x, (int(a["oh"]), int(a["ow"])))
    y.backward(nchw(load(c + "_dy")))
    save(c + "_y", nhwc(y))
    save(c + "_dx", nhwc(x.grad))


def linear(c, a):
    x = leaf(load(c + "_x"))
    w = leaf(load(c + "_w"))
    b = leaf(load(c + "_b")) if a["bias"] == "1" else None
    y = F.linear(x, w, b)
    y.backward(load(c + "_dy"))
    save(c + "_y", y)
    save(c + "_dx", x.grad)
    save(c + "_dw", w.grad)
    if b is not None:
        save(c + "_db", b.grad)


def flatten(c, a):
    x = leaf(nchw(load(c + "_x")))
    y = torch.flatten(x, 1)
    y.backward(load(c + "_dy"))
    save(c + "_y", y)
    save(c + "_dx", nhwc(x.grad))


def dropout(c, a):
    # torch draws its own mask; the C op takes one, so the reference applies
    # the same mask with torch's scaling rule (x * mask / (1 - p)).
    x = leaf(load(c + "_x"))
    mask = load(c + "_mask")
    p = float(a["p"])
    y = x * mask / (1.0 - p)
    y.backward(load(c + "_dy"))
    save(c + "_y", y)
    save(c + "_dx", x.grad)


def xent(c, a):
    z = leaf(load(c + "_z"))
    labels = load(c + "_labels", torch.int64)
    loss = F.cross_entropy(z, labels, label_smoothing=float(a["ls"]))
    loss.backward()
    save(c + "_loss", loss.reshape(1))
    save(c + "_probs", torch.softmax(z.detach(), dim=1))
    save(c + "_dz", z.grad)


def elementwise(c, a):
    x = leaf(load(c + "_x"))
    other = leaf(load(c + "_b"))
    dy = load(c + "_dy")
    for name, fn in (("relu", F.relu), ("relu6", F.relu6)):
        xx = leaf(x.detach())
        y = fn(xx)
        y.backward(dy)
        save(c + "_" + name, y)
        save(c + "_d" + name, xx.grad)
    save(c + "_add", x.detach() + other.detach())


OPS = dict(conv=conv, bn=bn, maxpool=maxpool, avgpool=avgpool, adaptive=adaptive, linear=linear,
           flatten=flatten, dropout=dropout, xent=xent, elementwise=elementwise)

with open(os.path.join(DIR, "manifest.txt")) as f:
    for line in f:
        parts = line.split()
        if not parts:
            continue
        args = dict(p.split("=", 1) for p in parts[1:])
        OPS[parts[0]](args["name"], args)
print("ops_ref: done")
