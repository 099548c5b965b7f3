"""Reads a TensorBoard log directory with TensorBoard's own reader and
prints every scalar as "tag<TAB>step<TAB>value" (value with repr, so the
float32 read back is exact), sorted by tag then file order.

Usage: tb_read.py DIR. Exits 77 (automake SKIP) when tensorboard is not
importable, so a test can tell "cannot check" from "wrong".
"""
import sys

try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
except ImportError as e:  # pragma: no cover - depends on the machine
    print("tensorboard is not importable by %s: %s (pip install tensorboard)" % (sys.executable, e))
    sys.exit(77)

acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
for tag in sorted(acc.Tags()["scalars"]):
    for ev in acc.Scalars(tag):
        print("%s\t%d\t%r" % (tag, ev.step, ev.value))
