"""Checks the files test_pth.c wrote with icsparse's .pth writer, using the
real torch.load and Python's zipfile.

Usage: pth_check.py DIR. Reads from DIR:
  sd_c.pth + expect_c.txt/.bin  a state_dict; torch.load(weights_only=True)
                                must give the same names, dtypes, shapes and
                                bytes
  ckpt_c.pth                    a checkpoint without floats; weights_only=True;
                                its state_dict with a _metadata attribute
  ckpt_c_float.pth              a checkpoint with floats (see below)
  zip64_c.zip                   a zip the C writer made with ZIP64 records
The checkpoint values are the ones test_pth.c builds (keep them in step).
Prints what differs and exits 1, or prints "ok".
"""
import collections
import math
import sys
import zipfile

import torch

d = sys.argv[1]
errors = []


def check(cond, what):
    if not cond:
        errors.append(what)


def check_zip(path, folder):
    with zipfile.ZipFile(path) as z:
        check(z.testzip() is None, f"{path}: CRC-32 mismatch")
        for info in z.infolist():
            check(info.filename.startswith(folder + "/"), f"{info.filename} not under {folder}/")
            check(info.compress_type == zipfile.ZIP_STORED, f"{info.filename} not stored")
            with open(path, "rb") as f:
                f.seek(info.header_offset + 26)
                n, m = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
            start = info.header_offset + 30 + n + m
            check(start % 64 == 0, f"{info.filename}: data at {start}, not 64-byte aligned")


# 1. state_dict, bitwise
check_zip(f"{d}/sd_c.pth", "archive")
sd = torch.load(f"{d}/sd_c.pth", weights_only=True)
check(type(sd) is collections.OrderedDict, f"state_dict is a {type(sd)}")
check(not hasattr(sd, "_metadata"), "state_dict written without attributes has _metadata")
lines = open(f"{d}/expect_c.txt").read().splitlines()
blob = open(f"{d}/expect_c.bin", "rb").read()
check(list(sd.keys()) == [l.split()[0] for l in lines], f"keys {list(sd.keys())}")
off = 0
for line in lines:
    name, dtype, ndim, *dims = line.split()
    t = sd[name]
    check(str(t.dtype) == "torch." + dtype, f"{name}: dtype {t.dtype}, expected {dtype}")
    check(list(t.shape) == [int(x) for x in dims], f"{name}: shape {list(t.shape)}")
    raw = t.contiguous().flatten().view(torch.uint8).numpy().tobytes()
    check(raw == blob[off : off + len(raw)], f"{name}: bytes differ")
    off += len(raw)
check(off == len(blob), "expectation has more bytes than the tensors")

# 2. checkpoint without floats: weights_only=True
check_zip(f"{d}/ckpt_c.pth", "ckpt")
ck = torch.load(f"{d}/ckpt_c.pth", weights_only=True)
check(type(ck) is dict, f"checkpoint is a {type(ck)}")
check(list(ck.keys()) == ["state_dict", "epoch", "recipe", "arch_key", "optimizer", "big", "neg",
                          "small", "tuple", "param"], f"checkpoint keys {list(ck.keys())}")
check(list(ck["state_dict"].keys()) == ["module.conv1.weight", "module.bn1.num_batches_tracked"],
      "checkpoint state_dict keys")
md = getattr(ck["state_dict"], "_metadata", None)
check(type(md) is collections.OrderedDict and
      list(md.items()) == [("", {"version": 1}), ("module", {"version": 1}),
                           ("module.conv1", {"version": 1}), ("module.bn1", {"version": 2})],
      f"checkpoint state_dict _metadata {md}")
nbt = ck["state_dict"]["module.bn1.num_batches_tracked"]
check(nbt.dtype == torch.int64 and nbt.dim() == 0 and int(nbt) == 2**40 + 3, f"nbt {nbt}")
check(ck["epoch"] == -1 and ck["arch_key"] == "resnet50", "epoch / arch_key")
check(ck["recipe"] == "version: 1.1.0\nmodifiers: []\n# \u00b5 recipe\n", repr(ck["recipe"]))
check(ck["optimizer"] == {"state": {0: {"step": 10}},
                          "param_groups": [{"params": [0, 1], "nesterov": True, "dampening": None}]},
      f"optimizer {ck['optimizer']}")
check(ck["big"] == 2**40 and ck["neg"] == -(2**62) and ck["small"] == -5, "ints")
check(ck["tuple"] == (1, "two", None, False), f"tuple {ck['tuple']}")
p = ck["param"]
check(isinstance(p, torch.nn.Parameter) and p.requires_grad and p.shape == (3,), f"param {p}")
check(torch.equal(p.detach(), torch.tensor([1.0, 2.0, 3.0])), f"param values {p}")

# 3. floats: torch 1.13's weights_only unpickler lacks BINFLOAT; >= 2.0 has it
major = int(torch.__version__.split(".")[0])
if major >= 2:
    ckf = torch.load(f"{d}/ckpt_c_float.pth", weights_only=True)
else:
    try:
        torch.load(f"{d}/ckpt_c_float.pth", weights_only=True)
        errors.append("torch 1.13 weights_only accepted BINFLOAT: update pickle_writer.h's note")
    except Exception as e:  # the refusal we document
        check("Unsupported operand 71" in str(e), f"unexpected refusal: {e}")
    ckf = torch.load(f"{d}/ckpt_c_float.pth", weights_only=False)
check(ckf["lr"] == 0.1 and ckf["epoch"] == 2.5, f"floats {ckf}")
v = ckf["values"]
check(v[0] == 1e-4 and math.copysign(1, v[1]) == -1 and v[2] == math.inf, f"values {v}")

# 4. ZIP64 records written by the C writer
with zipfile.ZipFile(f"{d}/zip64_c.zip") as z:
    check(z.testzip() is None, "zip64: CRC")
    check(z.namelist() == ["a/x", "a/y"], f"zip64 names {z.namelist()}")
    check(z.read("a/x") == bytes(range(100)) and z.read("a/y") == b"hello", "zip64 contents")
check(b"PK\x06\x06" in open(f"{d}/zip64_c.zip", "rb").read(), "zip64: no ZIP64 end record")

if errors:
    print("\n".join(errors))
    sys.exit(1)
print("ok")
