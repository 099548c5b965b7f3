"""Checks icsparse-export's int8 QDQ ONNX of a QAT checkpoint against onnx, onnxruntime and icsparse-eval.

Usage: export_qdq_check.py DIR. DIR/manifest.txt, written by tests/unit/test_export_qdq.c:
  arch ARCH NUM_CLASSES IN_CHANNELS H W
  eval PATH_TO_ICSPARSE_EVAL
  ckpt H W PATH          the QAT checkpoint (first line: the exported one; more
                         lines: the same model at other sizes, for --dynamic-shape)
  quantized CONVS LINEARS   how many conv / linear layers have int8 weights
  onnx PATH BATCH DYNAMIC_SHAPE OPSET   (BATCH 0: dynamic "batch")

For every ONNX file:
- onnx.checker.check_model(full_check=True), ir_version, opset, the input
  and output dims (dim_param "batch"/"height"/"width" exactly where dynamic);
- no BatchNormalization; every quantized layer's weight is the int8
  initializer "<weight key>_quantized" equal to this script's own
  quantization of the checkpoint (BN folded in float32 as torch's QAT
  ConvBn2d, scales from /quant or, with observers on, max|w| / 127.5 per
  channel, round half to even, clamp to [-128, 127]), with its float scales,
  an all-zero int8 zero point and DequantizeLinear axis 0; the int32 bias
  dequantizes to the folded bias within half its step; every activation
  quantizer is a QuantizeLinear/DequantizeLinear pair with the checkpoint's
  scale and uint8 zero point;
- per-layer sparsity of the int8 initializers equals the checkpoint's (the
  test model keeps nonzero weights away from zero);
- onnxruntime's optimized graph (ORT_ENABLE_EXTENDED, written through
  SessionOptions.optimized_model_filepath) has one QLinearConv per
  quantized conv, no float Conv left, and QGemm / QLinearMatMul for the
  quantized linear layers;
- onnxruntime's logits against icsparse-eval's on the same inputs, for the
  graph as written (ORT_DISABLE_ALL: the QDQ arithmetic in float) and
  optimized (integer kernels): on average within one step of the output
  quantizer (the last DequantizeLinear's scale), top-1 agreement at least
  99% on a batch of 256, at two batch sizes (dynamic batch) and every image
  size (dynamic shape). Two implementations of one int8 network differ in
  float rounding (x / s against x * (1 / s), summation order, the int32
  bias) and a one-step difference in an early layer spreads through the
  later ones, so single logits of a deep network may differ by a few steps.
  On x86 CPUs without VNNI onnxruntime's u8s8 kernels saturate int16 pair
  sums (its documentation says so): there the int8 file's optimized logits
  are printed, and the same integers stored as uint8 (zero point 128, the
  u8u8 kernels) are held to the bar instead.
Exit 77 (skip) without onnx, onnxruntime, h5py or numpy.
"""
import os
import platform
import subprocess
import sys

try:
    import h5py
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
except ImportError as e:  # the venv of tools/install-deps.sh has them all
    print("SKIP: export_qdq_check.py needs onnx, onnxruntime, h5py and numpy: %s" % e)
    sys.exit(77)

TOP1_BATCH = 256  # images of the top-1 agreement (dynamic batch, first file)
SMALL_BATCH = 32  # images of the other comparisons
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def load_ckpt(path):
    with h5py.File(path, "r") as f:
        tensors = {k: np.array(v) for k, v in f["model"].items()}
        quant = {}
        for k, g in f["quant"].items():
            if isinstance(g, h5py.Group):
                quant[k] = {kk: np.array(vv) for kk, vv in g.items()}
            else:
                quant[k] = np.array(g)
    return tensors, quant


def bn_of(layer, tensors):
    """The BatchNorm after a conv in torchvision's naming, or None."""
    cands = []
    head, _, last = layer.rpartition(".")
    if last.startswith("conv") and last[4:].isdigit():  # resnet convK -> bnK
        cands.append((head + "." if head else "") + "bn" + last[4:])
    if last.isdigit():  # Sequential: the next index
        cands.append((head + "." if head else "") + str(int(last) + 1))
    for c in cands:
        if c + ".running_var" in tensors:
            return c
    return None


def reference_int8(layer, tensors, quant, observers):
    """This script's own int8 weight, scales and folded bias of a QAT layer."""
    w = tensors[layer + ".weight"].astype(np.float32)
    out_c = w.shape[0]
    bias = tensors.get(layer + ".bias", np.zeros(out_c, np.float32)).astype(np.float32)
    bn = bn_of(layer, tensors) if w.ndim == 4 else None
    if bn:
        gamma, beta = tensors[bn + ".weight"], tensors[bn + ".bias"]
        mean, var = tensors[bn + ".running_mean"], tensors[bn + ".running_var"]
        f = (gamma / np.sqrt(var + np.float32(1e-5))).astype(np.float32)
        w = (w * f.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
        bias = (beta + (bias - mean) * f).astype(np.float32)
    rows = w.reshape(out_c, -1)
    if observers:  # torch's symmetric qparams from the current weight
        lo = np.minimum(rows.min(axis=1), 0).astype(np.float32)
        hi = np.maximum(rows.max(axis=1), 0).astype(np.float32)
        scale = (np.maximum(-lo, hi) / np.float32(127.5)).astype(np.float32)
        scale = np.where(scale > np.finfo(np.float32).eps, scale, np.finfo(np.float32).eps).astype(np.float32)
    else:
        scale = quant[layer + ".weight_fake_quant"]["scale"].astype(np.float32)
    inv = (np.float32(1) / scale).astype(np.float32)
    q = np.clip(np.rint(rows * inv[:, None]), -128, 127).astype(np.int8).reshape(w.shape)
    return q, scale, bias


def producers(graph):
    return {o: n for n in graph.node for o in n.output}


def icsparse_logits(eval_bin, ckpt, x, d, tag):
    xin, yout = os.path.join(d, "in_%s.h5" % tag), os.path.join(d, "logits_%s.h5" % tag)
    with h5py.File(xin, "w") as f:
        f["inputs"] = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # icsparse is NHWC
    # icsparse-eval starts MPI, whose plugins keep allocations LeakSanitizer
    # cannot attribute: no leak check for it here (as in export_check.py).
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    r = subprocess.run([eval_bin, "--checkpoint", ckpt, "--inputs", xin, "--logits-out", yout, "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    check(r.returncode == 0, "icsparse-eval on %s: %s" % (ckpt, r.stdout))
    if r.returncode != 0:
        return None
    with h5py.File(yout, "r") as f:
        return np.array(f["logits"])


def run_batched(sess, x, batch):
    if batch == 0:
        return sess.run(["output"], {"input": x})[0]
    return np.concatenate([sess.run(["output"], {"input": x[i:i + batch]})[0]
                           for i in range(0, len(x) - len(x) % batch, batch)])


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# onnxruntime's u8s8 int8 kernels on x86 without VNNI multiply with
# VPMADDUBSW, whose int16 pair sums saturate (onnxruntime's quantization
# documentation: use U8U8 or reduce_range there).
U8S8_SATURATES = platform.machine() in ("x86_64", "AMD64") and not (
    cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def optimized_session(model_bytes, path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = path
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def as_u8u8(model):
    """The model with its int8 weights stored as uint8 q + 128, zero point 128."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for t in m.graph.initializer:
        if t.name.endswith(".weight_quantized"):
            a = numpy_helper.to_array(t).astype(np.int16) + 128
            t.CopyFrom(numpy_helper.from_array(a.astype(np.uint8), t.name))
        elif t.name.endswith(".weight_zero_point"):
            t.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(t).shape, 128, np.uint8), t.name))
    return m


def output_step(graph, inits, prod):
    """One step of the output quantizer (the DequantizeLinear giving
    "output"); for a float last layer, what one step of its input
    quantizer moves a logit by at most (scale x max |W|)."""
    last = prod["output"]
    if last.op_type == "DequantizeLinear":
        return float(inits[last.input[1]])
    w = np.abs(inits[last.input[1]]).max()
    node = prod[last.input[0]]
    while node.op_type != "DequantizeLinear":
        node = prod[node.input[0]]
    return float(inits[node.input[1]]) * float(w)


def main():
    d = sys.argv[1]
    arch, ckpts, onnxs, eval_bin, n_conv, n_linear = None, [], [], None, 0, 0
    with open(os.path.join(d, "manifest.txt")) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] == "arch":
                arch = (w[1], int(w[2]), int(w[3]), int(w[4]), int(w[5]))
            elif w[0] == "eval":
                eval_bin = w[1]
            elif w[0] == "ckpt":
                ckpts.append((int(w[1]), int(w[2]), w[3]))
            elif w[0] == "quantized":
                n_conv, n_linear = int(w[1]), int(w[2])
            elif w[0] == "onnx":
                onnxs.append((w[1], int(w[2]), int(w[3]), int(w[4])))
    name, classes, channels = arch[0], arch[1], arch[2]
    tensors, quant = load_ckpt(ckpts[0][2])
    observers = bool(quant["flags"][0])
    base = (ckpts[0][0], ckpts[0][1])
    rng = np.random.default_rng(7)
    inputs, ref = {}, {}
    for h, w, path in ckpts:
        n = TOP1_BATCH if (h, w) == base else SMALL_BATCH
        inputs[(h, w)] = rng.standard_normal((n, channels, h, w)).astype(np.float32)
        ref[(h, w)] = icsparse_logits(eval_bin, path, inputs[(h, w)], d, "%dx%d" % (h, w))
        if ref[(h, w)] is None:
            return
    layers = sorted(k[:-len(".weight_fake_quant")] for k in quant if k.endswith(".weight_fake_quant"))
    act_quants = sorted(k for k in quant if isinstance(quant[k], dict) and "min_val" in quant[k])
    check(len(layers) == n_conv + n_linear, "%d quantized layers in /quant, the model has %d + %d"
          % (len(layers), n_conv, n_linear))

    for index, (path, batch, dyn, opset) in enumerate(onnxs):
        tag = "%s batch=%s shape=%s opset=%d" % (name, batch or "dyn", "dyn" if dyn else "static", opset)
        print(tag)
        m = onnx.load(path)
        try:
            onnx.checker.check_model(m, full_check=True)
        except Exception as e:  # the checker raises ValidationError / InferenceError
            check(False, "%s: checker: %s" % (tag, e))
        check(m.ir_version == (7 if opset <= 14 else 8), "%s: ir_version %d" % (tag, m.ir_version))
        check([(o.domain, o.version) for o in m.opset_import] == [("", opset)], "%s: opset_import" % tag)
        g = m.graph

        def dims(v):
            return [dd.dim_param if dd.HasField("dim_param") else dd.dim_value
                    for dd in v.type.tensor_type.shape.dim]
        bdim = batch if batch else "batch"
        want_in = [bdim, channels, "height" if dyn else base[0], "width" if dyn else base[1]]
        check(dims(g.input[0]) == want_in, "%s: input dims %s, want %s" % (tag, dims(g.input[0]), want_in))
        check(dims(g.output[0]) == [bdim, classes], "%s: output dims %s" % (tag, dims(g.output[0])))
        ops = [n.op_type for n in g.node]
        check("BatchNormalization" not in ops, "%s: a BatchNormalization is left" % tag)
        inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        nodes = {n.name: n for n in g.node}
        prod = producers(g)

        # int8 weights and int32 biases
        for layer in layers:
            key = layer + ".weight"
            qw = inits.get(key + "_quantized")
            check(qw is not None and qw.dtype == np.int8, "%s: no int8 %s_quantized" % (tag, key))
            check(key not in inits, "%s: float %s exported beside the int8 one" % (tag, key))
            if qw is None:
                continue
            want_q, want_s, want_b = reference_int8(layer, tensors, quant, observers)
            check(qw.shape == want_q.shape and np.array_equal(qw, want_q),
                  "%s: %s differs from the reference quantization in %d places"
                  % (tag, key, int(np.sum(qw != want_q)) if qw.shape == want_q.shape else -1))
            s = inits[key + "_scale"]
            zero_rows = ~want_q.reshape(len(want_q), -1).any(axis=1)
            check(s.dtype == np.float32 and np.array_equal(s[~zero_rows], want_s[~zero_rows]),
                  "%s: %s_scale differs from the checkpoint's" % (tag, key))
            zp = inits[key + "_zero_point"]
            check(zp.dtype == np.int8 and zp.shape == s.shape and not zp.any(), "%s: %s_zero_point" % (tag, key))
            dq = nodes.get(key + "/DequantizeLinear")
            check(dq is not None and [(a.name, a.i) for a in dq.attribute] == [("axis", 0)],
                  "%s: %s DequantizeLinear without axis 0" % (tag, key))
            zeros_ckpt, zeros_int8 = int(np.sum(tensors[key] == 0)), int(np.sum(qw == 0))
            check(zeros_ckpt == zeros_int8 and np.array_equal(qw == 0, tensors[key] == 0),
                  "%s: %s has %d int8 zeros, the checkpoint %d" % (tag, key, zeros_int8, zeros_ckpt))
            if index == 0:
                print("  sparsity %-34s checkpoint %.4f  int8 %.4f" % (key, zeros_ckpt / qw.size,
                                                                        zeros_int8 / qw.size))
            bkey = (layer + ".bias")
            bq = inits.get(bkey + "_quantized")
            check(bq is not None and bq.dtype == np.int32, "%s: no int32 %s_quantized" % (tag, bkey))
            if bq is not None:
                bs = inits[bkey + "_scale"]
                err = np.abs(bq.astype(np.float64) * bs - want_b) / bs
                check(float(err.max()) <= 0.5 + 1e-6, "%s: %s off by %.3f steps" % (tag, bkey, float(err.max())))
                check(not inits[bkey + "_zero_point"].any(), "%s: %s_zero_point" % (tag, bkey))

        # activation quantizers
        for aq in act_quants:
            sc, zp = inits.get(aq + ".scale"), inits.get(aq + ".zero_point")
            check(sc is not None and zp is not None and sc.shape == () and zp.dtype == np.uint8 and
                  sc == np.float32(quant[aq]["scale"][0]) and int(zp) == int(quant[aq]["zero_point"][0]),
                  "%s: quantizer %s: scale/zero point %s %s, checkpoint %s %s"
                  % (tag, aq, sc, zp, quant[aq]["scale"], quant[aq]["zero_point"]))
            q = nodes.get(aq + "/QuantizeLinear")
            check(q is not None and list(q.input[1:]) == [aq + ".scale", aq + ".zero_point"],
                  "%s: no QuantizeLinear for %s" % (tag, aq))
        step = output_step(g, inits, prod)

        # onnxruntime as written (QDQ in float) and optimized (integer kernels)
        plain = ort.SessionOptions()
        plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sessions = [("as written", ort.InferenceSession(path, plain, providers=["CPUExecutionProvider"]), True)]
        optimized_path = os.path.join(d, "optimized_%d.onnx" % index)
        sess_opt = optimized_session(m.SerializeToString(), optimized_path)
        om = onnx.load(optimized_path)
        oops = [n.op_type for n in om.graph.node]
        print("  optimized graph: %s" % {op: oops.count(op) for op in sorted(set(oops))})
        check(oops.count("QLinearConv") == n_conv, "%s: %d QLinearConv in the optimized graph, want %d"
              % (tag, oops.count("QLinearConv"), n_conv))
        check("Conv" not in oops, "%s: a float Conv is left in the optimized graph" % tag)
        qlin = oops.count("QGemm") + oops.count("QLinearMatMul")
        check(qlin >= n_linear, "%s: %d QGemm/QLinearMatMul in the optimized graph, want %d"
              % (tag, qlin, n_linear))
        sessions.append(("optimized", sess_opt, not U8S8_SATURATES))
        if U8S8_SATURATES:
            # The same integers as uint8 (q + 128, zero point 128) run the
            # same fused graph on onnxruntime's u8u8 kernels, which do not
            # saturate: what a VNNI CPU computes for the int8 file.
            sessions.append(("opt. u8u8", optimized_session(as_u8u8(m).SerializeToString(),
                                                            optimized_path + ".u8u8"), True))

        sizes = sorted(inputs) if dyn else [base]
        for size in sizes:
            x, want = inputs[size], ref[size]
            top1_batch = size == base and index == 0 and batch == 0
            if not top1_batch:
                x, want = x[:SMALL_BATCH], want[:SMALL_BATCH]
            if batch:
                x, want = x[:len(x) - len(x) % batch], want[:len(x) - len(x) % batch]
            for label, sess, asserted in sessions:
                y = run_batched(sess, x, batch)
                if batch == 0:
                    check(np.array_equal(run_batched(sess, x[:1], 0), y[:1]) and
                          np.array_equal(run_batched(sess, x[:3], 0), y[:3]),
                          "%s %s: batches 1 and 3 give other logits" % (tag, label))
                diff = np.abs(y - want) / step
                mean, top1 = float(diff.mean()), float(np.mean(np.argmax(y, 1) == np.argmax(want, 1)))
                print("  %-10s %dx%d n=%-3d |diff| mean %.3f max %.2f steps (step %.4g), within 1 step "
                      "%.1f%%, top-1 agreement %.2f%%%s"
                      % (label, size[0], size[1], len(x), mean, float(diff.max()), step,
                         100 * float(np.mean(diff <= 1 + 1e-3)), 100 * top1,
                         "" if asserted else "  (not asserted: u8s8 kernels saturate without VNNI)"))
                if not asserted:
                    continue
                check(mean <= 1.0, "%s %s %dx%d: logits %.3f output steps from icsparse on average"
                      % (tag, label, size[0], size[1], mean))
                if top1_batch:
                    check(top1 >= 0.99, "%s %s: top-1 agreement %.2f%%" % (tag, label, 100 * top1))

    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)
    print("all QDQ export checks passed")


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
