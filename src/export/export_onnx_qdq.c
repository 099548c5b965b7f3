/*
 * src/export/export_onnx_qdq.c: a QAT model (icsparse/qat.h) as an int8
 * QDQ ONNX graph: the fp32 graph of export_onnx.c with the quantizers made
 * explicit, the form onnxruntime's QDQ transformers turn into QLinearConv,
 * QGemm, QLinearAdd and QLinearGlobalAveragePool.
 *
 *  - a fake-quant node N becomes QuantizeLinear(x, N.scale, N.zero_point)
 *    -> DequantizeLinear with the same per-tensor scale (float scalar) and
 *    zero point (uint8 scalar): exactly the node's q = clamp(round(x / s)
 *    + zp, 0, 255), y = (q - zp) s;
 *  - a quantized conv becomes Conv(x, DequantizeLinear(W_q), DequantizeLinear
 *    (b_q)): W_q the BN-folded weight (ics_model_qat_inference_weight)
 *    quantized int8 with the node's per-output-channel symmetric scales,
 *    the bit-identical integers the QAT forward computes with, stored as
 *    "<weight key>_quantized" with "<weight key>_scale" [O] and an
 *    explicit all-zero int8 "<weight key>_zero_point" [O], axis 0; b_q the
 *    folded bias as int32 at scale input_scale * weight_scale[o] (the scale
 *    QLinearConv's bias has), "<bias key>_quantized" / "_scale" /
 *    "_zero_point", axis 0. The folded BatchNorm disappears: at inference
 *    the QAT group computes conv(x, W_q) + folded bias, which is this;
 *  - a quantized linear is Gemm(x, DQ(W_q [out, in], axis 0), DQ(b_q),
 *    transB = 1) the same way;
 *  - ReLU / ReLU6 of a group stay as Relu / Clip before the group's
 *    QuantizeLinear (they are exact; onnxruntime drops them when the
 *    quantizer's range already starts at 0 / ends below 6);
 *  - max pool and flatten of a quantized value are followed by a
 *    QuantizeLinear -> DequantizeLinear with their source quantizer's
 *    parameters: exact (they only select or move values on that grid) and
 *    the pattern onnxruntime runs on uint8 directly;
 *  - adds, average pools, unquantized layers as in fp32.
 * Pruned weights stay exactly zero: 0 * fold factor / scale rounds to 0.
 */
#include "ics_build_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <icsparse/qat.h>

#include "core/alloc.h"
#include "export/export_onnx_internal.h"

enum { NAME_LEN = ICS_NAME_MAX + 64 };

static int has_quantized_weight(const ics_node *n)
{
    return (n->kind == ICS_OP_CONV2D || n->kind == ICS_OP_LINEAR) && n->quant_index >= 0;
}

/* Promise (export_onnx_internal.h). */
ics_status ics_onnx_qdq_check(ics_model *model, const ics_export_options *opts, ics_error *err)
{
    if (!opts->fold_bn)
        return ICS_FAIL(err, ICS_ERR_INVALID,
                        "ONNX export: --fold-bn false: %s has fake quantization (QAT), whose "
                        "BatchNorms are folded into its int8 weights; the int8 QDQ graph has no "
                        "BatchNormalization to keep (export with --fold-bn true)",
                        ics_model_arch(model));
    for (int i = 0; i < ics_model_num_nodes(model); i++) {
        const ics_node *n = ics_model_node(model, i);
        if (n->kind == ICS_OP_FAKE_QUANT) {
            ics_act_quant q;
            ics_status st = ics_model_act_quant_get(model, i, &q, err);
            if (st != ICS_OK) return st;
            if (q.quant_min < 0 || q.quant_max > 255)
                return ICS_FAIL(err, ICS_ERR_INVALID,
                                "ONNX export: %s quantizes to [%d, %d], wider than uint8 (int8 QDQ "
                                "export needs activation_bits <= 8)",
                                n->name, q.quant_min, q.quant_max);
        }
        int qmin = 0, qmax = 0;
        if (has_quantized_weight(n) && ics_model_weight_scales(model, i, NULL, &qmin, &qmax) &&
            (qmin < -128 || qmax > 127))
            return ICS_FAIL(err, ICS_ERR_INVALID,
                            "ONNX export: %s.weight quantizes to [%d, %d], wider than int8 (int8 "
                            "QDQ export needs weight_bits <= 8)",
                            n->name, qmin, qmax);
    }
    return ICS_OK;
}

/* Promise (export_onnx_internal.h): per icsparse node at most five ONNX
 * nodes (Q, Clip, DQ of a quantizer; two DQs and the op of a quantized
 * layer; the op, Q and DQ of a re-quantized max pool) and eight
 * initializers (weight, bias and their scales and zero points; a
 * quantizer's scale, zero point and clip bounds). */
void ics_onnx_qdq_capacity(ics_model *model, size_t *nodes, size_t *inits)
{
    size_t count = (size_t)ics_model_num_nodes(model);
    *nodes = 5 * count + 8;
    *inits = (size_t)ics_model_num_tensors(model) + 8 * count + 8;
}

/* Promise (export_onnx_internal.h). */
int ics_onnx_qdq_keeps_bn(ics_model *model, int conv)
{
    const ics_node *n = ics_model_node(model, conv);
    return has_quantized_weight(n) && !n->fold_bn;
}

/* The names of quantizer fq's initializers. */
static void quantizer_names(const ics_node *fq, char scale[NAME_LEN], char zero_point[NAME_LEN])
{
    snprintf(scale, NAME_LEN, "%s.scale", fq->name);
    snprintf(zero_point, NAME_LEN, "%s.zero_point", fq->name);
}

/* QuantizeLinear -> DequantizeLinear of value `in` into `out` with the
 * parameters of quantizer node fq (whose initializers exist). A range
 * narrower than uint8 (fewer bits, reduce_range) clamps the integers with
 * a Clip between the two, as torch's ONNX export does for (0, 127). */
static ics_status add_qdq(onnx_builder *b, int fq, const char *base, const char *in,
                          const char *out)
{
    const ics_node *q = ics_model_node(b->model, fq);
    ics_act_quant aq;
    ics_status st = ics_model_act_quant_get(b->model, fq, &aq, b->err);
    if (st != ICS_OK) return st;
    char scale[NAME_LEN], zp[NAME_LEN], node[NAME_LEN], quantized[NAME_LEN];
    quantizer_names(q, scale, zp);
    snprintf(node, sizeof node, "%s/QuantizeLinear", base);
    snprintf(quantized, sizeof quantized, "%s.quantized", base);
    const char *qin[3] = {in, scale, zp};
    st = ics_onnx_add_node(b, "QuantizeLinear", node, qin, 3, quantized, NULL, 0);
    if (st == ICS_OK && (aq.quant_min > 0 || aq.quant_max < 255)) {
        char lo[NAME_LEN], hi[NAME_LEN], clipped[NAME_LEN];
        snprintf(lo, sizeof lo, "%s.quant_min", q->name);
        snprintf(hi, sizeof hi, "%s.quant_max", q->name);
        snprintf(node, sizeof node, "%s/Clip", base);
        snprintf(clipped, sizeof clipped, "%s.clipped", base);
        const char *cin[3] = {quantized, lo, hi};
        st = ics_onnx_add_node(b, "Clip", node, cin, 3, clipped, NULL, 0);
        snprintf(quantized, sizeof quantized, "%s", clipped);
    }
    snprintf(node, sizeof node, "%s/DequantizeLinear", base);
    const char *din[3] = {quantized, scale, zp};
    if (st == ICS_OK) st = ics_onnx_add_node(b, "DequantizeLinear", node, din, 3, out, NULL, 0);
    return st;
}

/* A fake-quant node: its scale and zero point, then Q -> DQ. */
static ics_status emit_quantizer(onnx_builder *b, walk_state *ws, int i)
{
    const ics_node *n = ics_model_node(b->model, i);
    ics_act_quant aq;
    ics_status st = ics_model_act_quant_get(b->model, i, &aq, b->err);
    if (st != ICS_OK) return st;
    char scale[NAME_LEN], zp[NAME_LEN];
    quantizer_names(n, scale, zp);
    uint8_t zero_point = (uint8_t)aq.zero_point; /* in [0, 255]: ics_onnx_qdq_check */
    st = ics_onnx_add_init(b, scale, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL, &aq.scale);
    if (st == ICS_OK)
        st = ics_onnx_add_init(b, zp, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 0, NULL, &zero_point);
    if (st == ICS_OK && (aq.quant_min > 0 || aq.quant_max < 255)) {
        /* the integer range add_qdq clamps to */
        char lo[NAME_LEN], hi[NAME_LEN];
        uint8_t v[2] = {(uint8_t)aq.quant_min, (uint8_t)aq.quant_max};
        snprintf(lo, sizeof lo, "%s.quant_min", n->name);
        snprintf(hi, sizeof hi, "%s.quant_max", n->name);
        st = ics_onnx_add_init(b, lo, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 0, NULL, &v[0]);
        if (st == ICS_OK)
            st = ics_onnx_add_init(b, hi, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 0, NULL, &v[1]);
    }
    if (st != ICS_OK) return st;
    return add_qdq(b, i, n->name, ws->value[ws->alias[n->inputs[0]]], ws->value[i]);
}

/* Max pool or flatten of a quantized value: the fp32 op into
 * "<value>_float", then Q -> DQ on its source quantizer's grid. */
static ics_status emit_requantized(onnx_builder *b, walk_state *ws, int i, int fq)
{
    char value[sizeof ws->value[i]], tmp[sizeof ws->value[i]];
    snprintf(value, sizeof value, "%s", ws->value[i]);
    if (snprintf(tmp, sizeof tmp, "%s_float", value) >= (int)sizeof tmp)
        return ICS_FAIL(b->err, ICS_ERR_INVALID, "ONNX export: value name '%s' too long", value);
    snprintf(ws->value[i], sizeof ws->value[i], "%s", tmp);
    ics_status st = ics_onnx_emit_fp32(b, ws, i);
    snprintf(ws->value[i], sizeof ws->value[i], "%s", value);
    if (st != ICS_OK) return st;
    return add_qdq(b, fq, value, tmp, value);
}

/* DequantizeLinear(axis 0) of an initializer triple base_quantized /
 * base_scale / base_zero_point into base_dequantized. */
static ics_status add_dequantize(onnx_builder *b, const char *base, char out[NAME_LEN])
{
    char q[NAME_LEN], s[NAME_LEN], z[NAME_LEN], node[NAME_LEN];
    snprintf(q, sizeof q, "%s_quantized", base);
    snprintf(s, sizeof s, "%s_scale", base);
    snprintf(z, sizeof z, "%s_zero_point", base);
    snprintf(node, sizeof node, "%s/DequantizeLinear", base);
    snprintf(out, NAME_LEN, "%s_dequantized", base);
    const char *in[3] = {q, s, z};
    Onnx__AttributeProto *attrs[1] = {ics_onnx_attr_int(b, "axis", 0)};
    return ics_onnx_add_node(b, "DequantizeLinear", node, in, 3, out, attrs, 1);
}

/* The int8 weight of quantized conv / linear node i with the QAT
 * forward's own arithmetic (nearbyintf(w * (1 / scale)), clamped), its
 * scales (a channel whose integers are all zero may take a larger scale,
 * see quantize_bias) and zero points, and its DequantizeLinear. */
static ics_status add_weight(onnx_builder *b, int i, const float *w, const float *scales,
                             float *out_scales, char dq[NAME_LEN])
{
    const ics_node *n = ics_model_node(b->model, i);
    const ics_tensor_info *wi =
        ics_model_tensor(b->model, ics_onnx_find_tensors(b->model, n).weight);
    int qmin = 0, qmax = 0, channels = 0;
    ics_model_weight_scales(b->model, i, &channels, &qmin, &qmax);
    int64_t cols = wi->numel / channels, c64 = channels;
    int8_t *wq = ics_malloc((size_t)wi->numel, "int8 weight", b->err);
    int8_t *zeros = ics_calloc((size_t)channels, 1, "int8 zero points", b->err);
    ics_status st = ICS_ERR_NOMEM;
    if (wq && zeros) {
        for (int c = 0; c < channels; c++) {
            const float inv = 1.0f / scales[c];
            for (int64_t k = 0; k < cols; k++) {
                float v = nearbyintf(w[c * cols + k] * inv);
                v = v < (float)qmin ? (float)qmin : v > (float)qmax ? (float)qmax : v;
                wq[c * cols + k] = (int8_t)v;
            }
        }
        char name[NAME_LEN];
        snprintf(name, sizeof name, "%s_quantized", wi->name);
        st = ics_onnx_add_init(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, wi->ndim, wi->shape,
                               wq);
        snprintf(name, sizeof name, "%s_scale", wi->name);
        if (st == ICS_OK)
            st = ics_onnx_add_init(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, &c64,
                                   out_scales);
        snprintf(name, sizeof name, "%s_zero_point", wi->name);
        if (st == ICS_OK)
            st = ics_onnx_add_init(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, 1, &c64, zeros);
        if (st == ICS_OK) st = add_dequantize(b, wi->name, dq);
    }
    free(wq);
    free(zeros);
    return st;
}

/* The int32 bias at scale input_scale * weight_scale[c], rounded half to
 * even, into bq / bscale. The largest product representable: a bias of a
 * channel whose weights quantize to all zeros (a pruned filter, or a
 * weight below half a step) that does not fit int32 raises that channel's
 * weight scale, which changes no value (0 * any scale = 0). */
static ics_status quantize_bias(onnx_builder *b, const ics_node *n, const float *w,
                                const float *scales, float *out_scales, const float *bias,
                                float input_scale, int channels, int64_t cols, int32_t *bq,
                                float *bscale)
{
    const double limit = 2147483647.0;
    for (int c = 0; c < channels; c++) {
        bscale[c] = input_scale * out_scales[c]; /* the float product QLinearConv forms */
        double q = nearbyint((double)bias[c] / (double)bscale[c]);
        if (fabs(q) > limit) {
            int zero = 1;
            const float inv = 1.0f / scales[c];
            for (int64_t k = 0; k < cols && zero; k++)
                zero = nearbyintf(w[c * cols + k] * inv) == 0.0f;
            if (!zero)
                return ICS_FAIL(b->err, ICS_ERR_INVALID,
                                "ONNX export: %s: bias[%d] = %g does not fit int32 at scale %g "
                                "(input scale %g x weight scale %g)",
                                n->name, c, (double)bias[c], (double)(input_scale * out_scales[c]),
                                (double)input_scale, (double)out_scales[c]);
            out_scales[c] = (float)(fabs((double)bias[c]) / ((double)input_scale * 1073741824.0));
            bscale[c] = input_scale * out_scales[c];
            q = nearbyint((double)bias[c] / (double)bscale[c]);
        }
        bq[c] = (int32_t)q;
    }
    return ICS_OK;
}

/* A quantized conv or linear (see the file comment). */
static ics_status emit_quantized_layer(onnx_builder *b, walk_state *ws, int i)
{
    ics_model *model = b->model;
    const ics_node *n = ics_model_node(model, i);
    node_tensors t = ics_onnx_find_tensors(model, n);
    const ics_tensor_info *wi = ics_model_tensor(model, t.weight);
    int channels = 0;
    const float *scales = ics_model_weight_scales(model, i, &channels, NULL, NULL);
    int64_t cols = wi->numel / channels, c64 = channels;
    const char *in0 = ws->value[ws->alias[n->inputs[0]]];
    const char *name = n->name[0] ? n->name : ws->value[i];
    /* The bias keeps the layer's key; a folded conv without one gets
     * "<conv>.bias" (as the fp32 fold); no bias at all stays absent. */
    int with_bias = t.bias >= 0 || n->fold_bn;
    char bias_key[NAME_LEN];
    if (t.bias >= 0)
        snprintf(bias_key, sizeof bias_key, "%s", ics_model_tensor(model, t.bias)->name);
    else
        snprintf(bias_key, sizeof bias_key, "%s.bias", n->name);
    int fq = ws->qsource[n->inputs[0]];
    float input_scale = 0.0f;
    if (fq >= 0) {
        ics_act_quant aq;
        ics_status st = ics_model_act_quant_get(model, fq, &aq, b->err);
        if (st != ICS_OK) return st;
        input_scale = aq.scale;
    }

    float *w = ics_malloc((size_t)wi->numel * sizeof *w, "folded weight", b->err);
    float *bias = ics_malloc((size_t)channels * sizeof *bias, "folded bias", b->err);
    float *out_scales = ics_malloc((size_t)channels * sizeof *out_scales, "scales", b->err);
    float *bscale = ics_malloc((size_t)channels * sizeof *bscale, "bias scales", b->err);
    int32_t *bq = ics_malloc((size_t)channels * sizeof *bq, "int32 bias", b->err);
    int32_t *bzero = ics_calloc((size_t)channels, sizeof *bzero, "int32 zero points", b->err);
    ics_status st = ICS_ERR_NOMEM;
    char wdq[NAME_LEN], bdq[NAME_LEN] = "";
    if (w && bias && out_scales && bscale && bq && bzero) {
        /* With observers on this also refreshes the scales from the weight,
         * as the QAT forward would. */
        st = ics_model_qat_inference_weight(model, i, w, bias, b->err);
        if (st == ICS_OK) {
            scales = ics_model_weight_scales(model, i, NULL, NULL, NULL);
            memcpy(out_scales, scales, (size_t)channels * sizeof *out_scales);
        }
        if (st == ICS_OK && with_bias && fq >= 0) {
            /* The bias scale needs the weight scales first, and may change
             * those of all-zero channels before the weight is written. */
            st = quantize_bias(b, n, w, scales, out_scales, bias, input_scale, channels, cols, bq,
                               bscale);
            char key[NAME_LEN];
            snprintf(key, sizeof key, "%s_quantized", bias_key);
            if (st == ICS_OK)
                st = ics_onnx_add_init(b, key, ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 1, &c64, bq);
            snprintf(key, sizeof key, "%s_scale", bias_key);
            if (st == ICS_OK)
                st = ics_onnx_add_init(b, key, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, &c64,
                                       bscale);
            snprintf(key, sizeof key, "%s_zero_point", bias_key);
            if (st == ICS_OK)
                st =
                    ics_onnx_add_init(b, key, ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 1, &c64, bzero);
            if (st == ICS_OK) st = add_dequantize(b, bias_key, bdq);
        } else if (st == ICS_OK && with_bias) {
            /* An unquantized input (not produced by icsparse's QAT, which
             * quantizes every quantized layer's input): a float bias. */
            st =
                ics_onnx_add_init(b, bias_key, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, &c64, bias);
            snprintf(bdq, sizeof bdq, "%s", bias_key);
        }
        if (st == ICS_OK) st = add_weight(b, i, w, scales, out_scales, wdq);
    }
    free(w);
    free(bias);
    free(out_scales);
    free(bscale);
    free(bq);
    free(bzero);
    if (st != ICS_OK) return st;
    if (n->kind == ICS_OP_CONV2D)
        return ics_onnx_add_conv(b, n, name, in0, wdq, bdq[0] ? bdq : NULL, ws->value[i]);
    /* torch's Linear: y = x W^T + b, Gemm with transB = 1 */
    const char *inputs[3] = {in0, wdq, bdq};
    Onnx__AttributeProto *attrs[1] = {ics_onnx_attr_int(b, "transB", 1)};
    return ics_onnx_add_node(b, "Gemm", name, inputs, bdq[0] ? 3 : 2, ws->value[i], attrs, 1);
}

/* Promise (export_onnx_internal.h). */
ics_status ics_onnx_qdq_emit(onnx_builder *b, walk_state *ws, int i)
{
    const ics_node *n = ics_model_node(b->model, i);
    switch (n->kind) {
    case ICS_OP_FAKE_QUANT:
        return emit_quantizer(b, ws, i);
    case ICS_OP_CONV2D:
    case ICS_OP_LINEAR:
        if (has_quantized_weight(n)) return emit_quantized_layer(b, ws, i);
        break;
    case ICS_OP_MAXPOOL2D:
    case ICS_OP_FLATTEN:
        if (ws->qsource[n->inputs[0]] >= 0)
            return emit_requantized(b, ws, i, ws->qsource[n->inputs[0]]);
        break;
    default:
        break;
    }
    return ics_onnx_emit_fp32(b, ws, i);
}
