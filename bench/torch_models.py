"""bench/torch_models.py: PyTorch's side of bench/run-engine-bench.

usage: torch_models.py ARCH train|infer BATCH H W CHANNELS CLASSES CIFAR_STEM
                       STEPS THREADS nchw|channels_last
prints: torch-LAYOUT ARCH MODE BATCH IMAGES_PER_S PEAK_RSS_MIB

The models are the same module definitions the tests check icsparse against
(tests/torchref/models_ref.py, torchvision's structure). A train step is
forward + cross-entropy + backward + SGD(momentum 0.9, weight decay 5e-4),
as bench_models.c does. Set OMP_NUM_THREADS and OPENBLAS_NUM_THREADS as
well: Debian's torch ignores set_num_threads for its BLAS.
"""
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "torchref"))
import models_ref  # noqa: E402


def main():
    arch, mode = sys.argv[1], sys.argv[2]
    batch, h, w, c, classes, cifar, steps, threads = (int(v) for v in sys.argv[3:11])
    layout = sys.argv[11]
    torch.set_num_threads(threads)
    model = models_ref.build(arch, classes, c, h, w, cifar, 1.0)
    x = torch.rand(batch, c, h, w) * 2 - 1
    labels = torch.arange(batch) % classes
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train(mode == "train")
    start = 0.0
    for step in range(steps + 1):
        if step == 1:
            start = time.perf_counter()
        if mode == "train":
            loss = torch.nn.functional.cross_entropy(model(x), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)
    elapsed = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("torch-%s %s %s %d %.1f %.0f" % (layout, arch, mode, batch, steps * batch / elapsed, rss))


if __name__ == "__main__":
    main()
