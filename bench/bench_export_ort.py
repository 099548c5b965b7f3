"""onnxruntime throughput of an exported model (bench/run-export-bench).

usage: bench_export_ort.py MODEL.onnx BATCH H W CHANNELS STEPS THREADS
prints: onnxruntime BATCH IMAGES_PER_S SESSION_MS
"""
import sys
import time

import numpy as np
import onnxruntime as ort

path, batch, h, w, c, steps, threads = sys.argv[1], *map(int, sys.argv[2:])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
t0 = time.perf_counter()
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
session_ms = (time.perf_counter() - t0) * 1e3
x = np.random.default_rng(1).uniform(-1, 1, (batch, c, h, w)).astype(np.float32)
sess.run(["output"], {"input": x})  # warm-up
t0 = time.perf_counter()
for _ in range(steps):
    sess.run(["output"], {"input": x})
print("onnxruntime %d %.1f %.1f" % (batch, steps * batch / (time.perf_counter() - t0), session_ms))
