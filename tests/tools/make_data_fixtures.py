"""Generates small real-format dataset sources for the data integration tests.

Usage: make_data_fixtures.py OUTDIR

Writes, with the Python standard library only:
  idx/                    MNIST-layout IDX files (gzip), 60 train + 20 test 5x4 images
  idx-bad-magic/          the same with a label file's magic in the image file
  idx-truncated/          the train image file cut short
  idx-bad-label/          a train label 12 (10 classes)
  cifar-10-binary.tar.gz  CIFAR-10 layout: 5 batches of 8 + test of 6, batches.meta.txt
  cifar-100-binary.tar.gz CIFAR-100 layout: train 30, test 10, fine_label_names.txt
  cifar10-truncated.tar.gz  a batch whose size is not a whole number of records
  cifar10-bad-label.tar.gz  a record with label 10
  not-a-tar.tar.gz        gzip of random bytes
  escape.tar.gz           an entry named ../escaped.txt
  folders.tgz             ImageFolder layout mini/{train,val}/{cat,dog}/*.png (RGB PNGs)
  cifar10-expected.bin    train row 9 (batch 2, record 1) as HWC bytes, then its label byte
"""
import gzip
import io
import os
import random
import struct
import sys
import tarfile

out = sys.argv[1]
rng = random.Random(1234)


def idx_dir(name, n_train=60, n_test=20, h=5, w=4, bad_magic=False, truncate=False, bad_label=False):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        pixels = bytes(rng.randrange(256) for _ in range(n * h * w))
        labels = bytearray(i % 10 for i in range(n))
        if bad_label and prefix == "train":
            labels[7] = 12
        magic = 0x801 if bad_magic and prefix == "train" else 0x803
        images = struct.pack(">IIII", magic, n, h, w) + pixels
        if truncate and prefix == "train":
            images = images[: len(images) - 7]
        with gzip.open(os.path.join(d, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
            f.write(images)
        with gzip.open(os.path.join(d, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + bytes(labels))


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def records(n, label_bytes, classes, bad_label_at=None):
    data = bytearray()
    for i in range(n):
        label = i % classes
        if i == bad_label_at:
            label = classes
        if label_bytes == 2:
            data += bytes([label % 20, label])
        else:
            data += bytes([label])
        data += bytes(rng.randrange(256) for _ in range(3072))
    return bytes(data)


def cifar10(path, truncate=False, bad_label=False):
    with tarfile.open(path, "w:gz") as tar:
        add(tar, "cifar-10-batches-bin/batches.meta.txt",
            b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n")
        for b in range(1, 6):
            data = records(8, 1, 10, bad_label_at=3 if bad_label and b == 2 else None)
            if b == 2 and not (truncate or bad_label):
                rec = data[3073:2 * 3073]
                planes = rec[1:]
                hwc = bytes(planes[c * 1024 + px] for px in range(1024) for c in range(3))
                with open(os.path.join(out, "cifar10-expected.bin"), "wb") as f:
                    f.write(hwc + rec[:1])
            if truncate and b == 3:
                data = data[:-100]
            add(tar, f"cifar-10-batches-bin/data_batch_{b}.bin", data)
        add(tar, "cifar-10-batches-bin/test_batch.bin", records(6, 1, 10))
        add(tar, "cifar-10-batches-bin/readme.html", b"<html></html>")


def cifar100(path):
    with tarfile.open(path, "w:gz") as tar:
        names = "".join(f"fine{i}\n" for i in range(100)).encode()
        add(tar, "cifar-100-binary/fine_label_names.txt", names)
        add(tar, "cifar-100-binary/coarse_label_names.txt", b"".join(b"c%d\n" % i for i in range(20)))
        add(tar, "cifar-100-binary/train.bin", records(30, 2, 100))
        add(tar, "cifar-100-binary/test.bin", records(10, 2, 100))


def png(width, height, seed):
    """An 8-bit RGB PNG written with zlib (no filter), a smooth gradient."""
    import zlib
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        for x in range(width):
            raw += bytes(((x * 7 + seed * 40) % 256, (y * 5 + seed * 20) % 256, (x + y + seed) % 256))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))


def folders(path):
    with tarfile.open(path, "w:gz") as tar:
        k = 0
        for split, per_class in (("train", 5), ("val", 2)):
            for cls in ("cat", "dog"):
                for i in range(per_class):
                    k += 1
                    add(tar, f"mini/{split}/{cls}/{i:03d}.png", png(12 + i, 10 + k % 3, k))


os.makedirs(out, exist_ok=True)
idx_dir("idx")
idx_dir("idx-bad-magic", bad_magic=True)
idx_dir("idx-truncated", truncate=True)
idx_dir("idx-bad-label", bad_label=True)
cifar10(os.path.join(out, "cifar-10-binary.tar.gz"))
cifar10(os.path.join(out, "cifar10-truncated.tar.gz"), truncate=True)
cifar10(os.path.join(out, "cifar10-bad-label.tar.gz"), bad_label=True)
cifar100(os.path.join(out, "cifar-100-binary.tar.gz"))
with gzip.open(os.path.join(out, "not-a-tar.tar.gz"), "wb") as f:
    f.write(bytes(rng.randrange(256) for _ in range(5000)))
folders(os.path.join(out, "folders.tgz"))
with tarfile.open(os.path.join(out, "escape.tar.gz"), "w:gz") as tar:
    add(tar, "top/ok.txt", b"fine\n")
    add(tar, "top/../../escaped.txt", b"gotcha\n")
