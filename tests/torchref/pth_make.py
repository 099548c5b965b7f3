"""Fixtures for tests/unit/test_pth.c, made with the real torch.save.

Usage: pth_make.py DIR. Writes into DIR:
  sd.pth            a state_dict of many dtypes (torch.save defaults)
  sd_p4.pth         the same with pickle_protocol=4 (FRAME, MEMOIZE, ...)
  sd_zip64.pth      sd.pth repacked by Python's zipfile with ZIP64 records
  sd_deflate.pth    sd.pth repacked with DEFLATED entries
  sd_nostorage.pth  sd.pth without its first storage entry
  sd_short.pth      sd.pth with one storage entry cut short (CRC redone)
  legacy.pth        the same saved with _use_new_zipfile_serialization=False
  ckpt.pth          a SparseML-style training checkpoint (module. prefixes,
                    optimizer state, argparse.Namespace, a Parameter)
  expect_sd.txt/.bin, expect_ckpt.txt/.bin
                    each tensor: a line "name dtype ndim dims..." and its
                    contiguous bytes, in state_dict order
  f32_<name>.npy    torch's float32 conversion of some tensors
  recipe.txt        the checkpoint's recipe text
  plain_pN.pkl, plain_pN.txt  a plain object pickled with protocol N and
                    its canonical dump (the format of dump() in test_pth.c)
Then, when DIR holds sd_c.pth (written by test_pth.c), runs pth_check.py DIR.
"""
import argparse
import collections
import io
import math
import os
import pickle
import runpy
import struct
import sys
import zipfile

import torch

out = sys.argv[1]
g = torch.Generator().manual_seed(1234)


def randn(*shape):
    return torch.randn(*shape, generator=g)


sd = collections.OrderedDict()
sd["conv1.weight"] = randn(4, 3, 3, 3)
base = randn(5, 6)
sd["fc.weight_t"] = base.t()  # non-contiguous view (strides (1, 6))
sd["fc.window"] = base[1:4, 2:5]  # storage offset 8, strides (6, 1)
special = randn(6)
special[0], special[1], special[2], special[3] = float("nan"), float("inf"), -0.0, 1e-42
sd["bn1.weight"] = special
sd["bn1.num_batches_tracked"] = torch.tensor(123456789012, dtype=torch.int64)
sd["double"] = randn(2, 3).double()
sd["half"] = randn(7).half()
sd["bfloat"] = randn(3, 2).bfloat16()
sd["int32"] = torch.randint(-100000, 100000, (4,), dtype=torch.int32, generator=g)
sd["int16"] = torch.randint(-30000, 30000, (3,), dtype=torch.int16, generator=g)
sd["int8"] = torch.randint(-128, 127, (5,), dtype=torch.int8, generator=g)
sd["uint8"] = torch.randint(0, 255, (2, 2), dtype=torch.uint8, generator=g)
sd["mask"] = torch.rand(6, generator=g) > 0.5
sd["int64"] = torch.randint(-(2**40), 2**40, (3,), dtype=torch.int64, generator=g)
sd["empty"] = torch.zeros(0, 3)
sd["expanded"] = randn(3, 1).expand(3, 4)  # stride 0


def dump_expect(name, tensors):
    with open(f"{out}/{name}.txt", "w") as txt, open(f"{out}/{name}.bin", "wb") as binf:
        for k, t in tensors.items():
            dtype = str(t.dtype).replace("torch.", "")
            txt.write(f"{k} {dtype} {t.dim()} {' '.join(str(s) for s in t.shape)}\n")
            binf.write(t.detach().contiguous().flatten().view(torch.uint8).numpy().tobytes())


torch.save(sd, f"{out}/sd.pth")
torch.save(sd, f"{out}/sd_p4.pth", pickle_protocol=4)
torch.save(sd, f"{out}/legacy.pth", _use_new_zipfile_serialization=False)
dump_expect("expect_sd", sd)


def write_npy_f32(name, t):
    """torch's own conversion to float32, for the C conversion to match."""
    import numpy as np

    np.save(f"{out}/{name}.npy", t.float().numpy().astype(np.float32))


for k in ("half", "bfloat", "double", "int32", "int8", "uint8", "mask", "int64"):
    write_npy_f32(f"f32_{k}", sd[k])


def repack(src, dst, compression=zipfile.ZIP_STORED, zip64=False, drop=None, cut=None):
    saved = zipfile.ZIP64_LIMIT
    if zip64:
        zipfile.ZIP64_LIMIT = 0  # every size and offset "too large": ZIP64 records
    try:
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression, allowZip64=True) as zo:
            for info in zin.infolist():
                data = zin.read(info.filename)
                if drop and info.filename.endswith(drop):
                    continue
                if cut and info.filename.endswith(cut):
                    data = data[: len(data) // 2]
                zo.writestr(info.filename, data, compress_type=compression)
    finally:
        zipfile.ZIP64_LIMIT = saved


repack(f"{out}/sd.pth", f"{out}/sd_zip64.pth", zip64=True)
assert b"PK\x06\x06" in open(f"{out}/sd_zip64.pth", "rb").read(), "no ZIP64 end record"
repack(f"{out}/sd.pth", f"{out}/sd_deflate.pth", zipfile.ZIP_DEFLATED)
repack(f"{out}/sd.pth", f"{out}/sd_nostorage.pth", drop="/data/0")
repack(f"{out}/sd.pth", f"{out}/sd_short.pth", cut="/data/1")

RECIPE = """version: 1.1.0
# µ-recipe with a non-ASCII character
modifiers:
    - !EpochRangeModifier
        start_epoch: 0.0
        end_epoch: 10.0
"""
msd = collections.OrderedDict()
msd["module.conv1.weight"] = randn(2, 1, 3, 3)
msd["module.bn1.num_batches_tracked"] = torch.tensor(5, dtype=torch.int64)
msd["module.fc.bias"] = randn(10)
ckpt = {
    "state_dict": msd,
    "epoch": 7,
    "recipe": RECIPE,
    "arch_key": "resnet18",
    "optimizer": {
        "state": {0: {"momentum_buffer": randn(2, 1, 3, 3)}},
        "param_groups": [
            {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False, "params": [0, 1]}
        ],
    },
    "args": argparse.Namespace(lr=0.1, arch_key="resnet18"),
    "param": torch.nn.Parameter(randn(2)),
    "big": 2**40,
    "negbig": -(2**62),
    "neg": -5,
    "nothing": None,
    "pair": (1, "a"),
    "long_text": "x" * 300,
}
torch.save(ckpt, f"{out}/ckpt.pth")
dump_expect("expect_ckpt", msd)
with open(f"{out}/recipe.txt", "w", encoding="utf-8") as f:
    f.write(RECIPE)


def dump(v):
    """The canonical text that dump() in test_pth.c prints for a value."""
    if v is None:
        return "N"
    if v is True or v is False:
        return "T" if v else "F"
    if isinstance(v, int):
        return f"i{v}"
    if isinstance(v, float):
        return f"f{struct.unpack('<q', struct.pack('<d', v))[0]}"
    if isinstance(v, str):
        return f"s'{v.encode('utf-8').hex()}'"
    if isinstance(v, (bytes, bytearray)):
        return f"b'{bytes(v).hex()}'"
    if isinstance(v, tuple):
        return "(" + ",".join(dump(x) for x in v) + ")"
    if isinstance(v, (list, set, frozenset)):
        return "[" + ",".join(dump(x) for x in v) + "]"
    if isinstance(v, dict):
        o = "o" if isinstance(v, collections.OrderedDict) else ""
        return o + "{" + ",".join(dump(k) + ":" + dump(x) for k, x in v.items()) + "}"
    raise TypeError(type(v))


shared = [1, 2]
plain = {
    "ints": [0, 1, 255, 256, 65535, 65536, -1, -(2**31), 2**31 - 1, 2**31, 2**63 - 1, -(2**63)],
    "floats": [0.0, -0.0, 0.1, 1e300, -2.5, math.inf],
    "text": ["", "a", "héllo", "x" * 300],
    "bytes": [b"", b"\x00\xff", bytearray(b"ab")],
    "nested": ((), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)),
    "shared": (shared, shared),
    "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
    "intkeys": {1: "one", 2: "two"},
    "set": frozenset([7]),
    "flags": [True, False, None],
}
for proto in (2, 3, 4, 5):
    with open(f"{out}/plain_p{proto}.pkl", "wb") as f:
        pickle.dump(plain, f, protocol=proto)
    with open(f"{out}/plain_p{proto}.txt", "w") as f:
        f.write(dump(plain))
# The files test_pth.c wrote with icsparse's writer, when present: checked
# in this same run, so that torch starts once per test program.
if os.path.exists(f"{out}/sd_c.pth"):
    sys.argv = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "pth_check.py"), out]
    runpy.run_path(sys.argv[0], run_name="__main__")
print("ok")
