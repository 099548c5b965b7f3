#!/usr/bin/env python3
"""Writes a small IDX dataset (gzip) made of the first rows of Debian's
Fashion-MNIST, for tests that need real images but little time.

usage: idx_subset.py OUT_DIR N_TRAIN N_TEST [SRC_DIR]
"""
import gzip
import os
import struct
import sys


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def write_idx(path, dims, payload, dtype_code=0x08):
    header = struct.pack(">I", (dtype_code << 8) | len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
    with gzip.open(path, "wb") as f:
        f.write(header + payload)


def subset(src, out, prefix, count):
    (n, h, w), images = read_idx(os.path.join(src, prefix + "-images-idx3-ubyte.gz"))
    (nl,), labels = read_idx(os.path.join(src, prefix + "-labels-idx1-ubyte.gz"))
    count = min(count, n)
    write_idx(os.path.join(out, prefix + "-images-idx3-ubyte.gz"), (count, h, w), images[:count * h * w])
    write_idx(os.path.join(out, prefix + "-labels-idx1-ubyte.gz"), (count,), labels[:count])


def main():
    out, n_train, n_test = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    src = sys.argv[4] if len(sys.argv) > 4 else "/usr/share/datasets/fashion-mnist"
    os.makedirs(out, exist_ok=True)
    subset(src, out, "train", n_train)
    subset(src, out, "t10k", n_test)


if __name__ == "__main__":
    main()
