"""PyTorch timings for bench/bench_ops.c, on the same shapes, in PyTorch's
fastest eager CPU setting for convnets (channels_last, float32).

Usage: OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 python3 ops_bench.py OUT
writes "name<TAB>fwd_ms bwd_ms" lines: process CPU time, best of 7 after a
warm-up (CPU time because wall time on the shared machines swings 2-3x).
"""
import sys
import time

import torch
import torch.nn.functional as F

CASES = [
    ("cnn.conv1 1->32 3x3 28x28 b128", "c", 128, 28, 28, 1, 32, 3, 1, 1, 1),
    ("cnn.conv2 32->64 3x3 14x14 b128", "c", 128, 14, 14, 32, 64, 3, 1, 1, 1),
    ("cnn.bn1 32ch 28x28 b128", "b", 128, 28, 28, 32, 32, 0, 0, 0, 0),
    ("cnn.pool1 2x2 32ch 28x28 b128", "p", 128, 28, 28, 32, 32, 2, 2, 0, 0),
    ("cnn.fc 3136->10 b128", "l", 128, 1, 1, 3136, 10, 0, 0, 0, 0),
    ("r18.conv 64->64 3x3 32x32 b128", "c", 128, 32, 32, 64, 64, 3, 1, 1, 1),
    ("r18.conv 128->128 3x3 16x16 b128", "c", 128, 16, 16, 128, 128, 3, 1, 1, 1),
    ("r50.conv1 3->64 7x7/2 224 b16", "c", 16, 224, 224, 3, 64, 7, 2, 3, 1),
    ("r50.1x1 256->64 56x56 b16", "c", 16, 56, 56, 256, 64, 1, 1, 0, 1),
    ("r50.3x3 64->64 56x56 b16", "c", 16, 56, 56, 64, 64, 3, 1, 1, 1),
    ("mbv2.dw 3x3 96ch 112x112 b16", "c", 16, 112, 112, 96, 96, 3, 1, 1, 96),
    ("mbv2.dw 3x3/2 144ch 56x56 b16", "c", 16, 56, 56, 144, 144, 3, 2, 1, 144),
]


def best_ms(fn, reps=7):
    fn()
    best = 1e30
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best * 1e3


def main():
    out = []
    for name, kind, n, h, w, cin, cout, k, s, pad, groups in CASES:
        if kind == "l":
            x = torch.randn(n, cin)
            mod = torch.nn.Linear(cin, cout)
        else:
            x = torch.randn(n, cin, h, w).to(memory_format=torch.channels_last)
            if kind == "c":
                mod = torch.nn.Conv2d(cin, cout, k, s, pad, groups=groups, bias=True)
            elif kind == "b":
                mod = torch.nn.BatchNorm2d(cin)
            else:
                mod = torch.nn.MaxPool2d(k, s)
            mod = mod.to(memory_format=torch.channels_last)
        x.requires_grad_(cin > 3)
        with torch.no_grad():
            fwd = best_ms(lambda: mod(x))
        y = mod(x)
        dy = torch.randn_like(y)
        bwd = best_ms(lambda: y.backward(dy, retain_graph=True))
        out.append("%s\t%.4f %.4f\n" % (name, fwd, bwd))
    with open(sys.argv[1], "w") as f:
        f.writelines(out)


main()
