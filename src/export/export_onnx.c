/*
 * src/export/export_onnx.c: the model graph written as an fp32 ONNX model
 * through protobuf-c (onnx.proto compiled by protoc-c at build time).
 *
 * icsparse computes in NHWC; the ONNX graph is NCHW like the one
 * torch.onnx.export writes for the torchvision module, so the parameters go
 * in unchanged (PyTorch layout: conv OIHW, linear [out, in]) and the
 * flatten before the classifier keeps PyTorch's (c, h, w) order, which is
 * the order icsparse's flatten reproduces.
 *
 * protobuf-c writes a proto2 optional scalar only when its has_* flag is
 * set: every scalar below sets it, or the field would silently vanish and
 * the checker would reject the model. All messages live in one arena freed
 * at the end, so no error path leaks.
 *
 * A QAT model (fake quantization) is written as an int8 QDQ graph by
 * export_onnx_qdq.c over the same builder and walk
 * (export_onnx_internal.h); this file decides which path a node takes.
 */
#include "ics_build_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <icsparse/export.h>
#include <icsparse/qat.h>

#include "core/alloc.h"
#include "export/export_onnx_internal.h"

/* ---- arena -------------------------------------------------------------- */

/* Zeroed memory owned by the arena; NULL with err set on failure. */
static void *arena_alloc(onnx_arena *a, size_t bytes, ics_error *err)
{
    if (a->len == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 256;
        void **blocks = ics_realloc(a->blocks, cap * sizeof *blocks, "ONNX arena", err);
        if (!blocks) return NULL;
        a->blocks = blocks;
        a->cap = cap;
    }
    void *p = ics_calloc(1, bytes ? bytes : 1, "ONNX message", err);
    if (p) a->blocks[a->len++] = p;
    return p;
}

static char *arena_strdup(onnx_arena *a, const char *s, ics_error *err)
{
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(a, n, err);
    if (p) memcpy(p, s, n);
    return p;
}

void *ics_onnx_alloc(onnx_builder *b, size_t bytes)
{
    return arena_alloc(&b->arena, bytes, b->err);
}

static void arena_free(onnx_arena *a)
{
    for (size_t i = 0; i < a->len; i++)
        free(a->blocks[i]);
    free(a->blocks);
    a->blocks = NULL;
    a->len = a->cap = 0;
}

/* ---- builder ------------------------------------------------------------ */

static Onnx__AttributeProto *attr_new(onnx_builder *b, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = arena_alloc(&b->arena, sizeof *a, b->err);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = arena_strdup(&b->arena, name, b->err);
    if (!a->name) return NULL;
    a->has_type = 1;
    a->type = type;
    return a;
}

Onnx__AttributeProto *ics_onnx_attr_int(onnx_builder *b, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_new(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (!a) return NULL;
    a->has_i = 1;
    a->i = v;
    return a;
}

Onnx__AttributeProto *ics_onnx_attr_float(onnx_builder *b, const char *name, float v)
{
    Onnx__AttributeProto *a = attr_new(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (!a) return NULL;
    a->has_f = 1;
    a->f = v;
    return a;
}

/* A 2-D attribute list (h, w) or a 4-entry pads list (t, l, b, r). */
Onnx__AttributeProto *ics_onnx_attr_ints(onnx_builder *b, const char *name, const int64_t *v,
                                         size_t n)
{
    Onnx__AttributeProto *a = attr_new(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (!a) return NULL;
    a->ints = arena_alloc(&b->arena, n * sizeof *a->ints, b->err);
    if (!a->ints) return NULL;
    memcpy(a->ints, v, n * sizeof *v);
    a->n_ints = n;
    return a;
}

/* Appends a node; attrs may hold NULLs only when an allocation failed, in
 * which case the node is refused (err already says why). */
ics_status ics_onnx_add_node(onnx_builder *b, const char *op_type, const char *name,
                             const char *const *inputs, size_t n_inputs, const char *output,
                             Onnx__AttributeProto **attrs, size_t n_attrs)
{
    for (size_t i = 0; i < n_attrs; i++)
        if (!attrs[i]) return b->err ? b->err->status : ICS_ERR_NOMEM;
    if (b->n_nodes == b->cap_nodes)
        return ICS_FAIL(b->err, ICS_ERR_RUNTIME, "ONNX export: more than %zu nodes", b->cap_nodes);
    Onnx__NodeProto *n = arena_alloc(&b->arena, sizeof *n, b->err);
    if (!n) return ICS_ERR_NOMEM;
    onnx__node_proto__init(n);
    n->op_type = arena_strdup(&b->arena, op_type, b->err);
    n->name = arena_strdup(&b->arena, name, b->err);
    n->input = arena_alloc(&b->arena, n_inputs * sizeof(char *), b->err);
    n->output = arena_alloc(&b->arena, sizeof(char *), b->err);
    n->attribute = arena_alloc(&b->arena, n_attrs * sizeof *attrs, b->err);
    if (!n->op_type || !n->name || !n->input || !n->output || !n->attribute) return ICS_ERR_NOMEM;
    for (size_t i = 0; i < n_inputs; i++) {
        n->input[i] = arena_strdup(&b->arena, inputs[i], b->err);
        if (!n->input[i]) return ICS_ERR_NOMEM;
    }
    n->n_input = n_inputs;
    n->output[0] = arena_strdup(&b->arena, output, b->err);
    if (!n->output[0]) return ICS_ERR_NOMEM;
    n->n_output = 1;
    if (n_attrs) memcpy(n->attribute, attrs, n_attrs * sizeof *attrs);
    n->n_attribute = n_attrs;
    b->nodes[b->n_nodes++] = n;
    return ICS_OK;
}

/* Promise (export_onnx_internal.h): an initializer with raw_data
 * little-endian as the format requires (written byte by byte so a
 * big-endian host would be right too). A 0-dim tensor (ndim 0) has no
 * dims. */
ics_status ics_onnx_add_init(onnx_builder *b, const char *name, int data_type, int ndim,
                             const int64_t *dims, const void *data)
{
    size_t numel = 1;
    for (int d = 0; d < ndim; d++)
        numel *= (size_t)dims[d];
    size_t elem = data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT8 ||
                          data_type == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8
                      ? 1
                      : 4; /* FLOAT, INT32 */
    if (b->n_inits == b->cap_inits)
        return ICS_FAIL(b->err, ICS_ERR_RUNTIME, "ONNX export: more than %zu initializers",
                        b->cap_inits);
    Onnx__TensorProto *t = arena_alloc(&b->arena, sizeof *t, b->err);
    if (!t) return ICS_ERR_NOMEM;
    onnx__tensor_proto__init(t);
    t->name = arena_strdup(&b->arena, name, b->err);
    if (!t->name) return ICS_ERR_NOMEM;
    if (ndim > 0) {
        t->dims = arena_alloc(&b->arena, (size_t)ndim * sizeof *t->dims, b->err);
        if (!t->dims) return ICS_ERR_NOMEM;
        memcpy(t->dims, dims, (size_t)ndim * sizeof *dims);
    }
    t->n_dims = (size_t)ndim;
    t->has_data_type = 1;
    t->data_type = data_type;
    uint8_t *raw = arena_alloc(&b->arena, numel * elem, b->err);
    if (!raw) return ICS_ERR_NOMEM;
    if (elem == 1) {
        memcpy(raw, data, numel);
    } else {
        const uint8_t *src = data;
        for (size_t i = 0; i < numel; i++) {
            uint32_t u;
            memcpy(&u, src + 4 * i, 4);
            raw[4 * i] = (uint8_t)u;
            raw[4 * i + 1] = (uint8_t)(u >> 8);
            raw[4 * i + 2] = (uint8_t)(u >> 16);
            raw[4 * i + 3] = (uint8_t)(u >> 24);
        }
    }
    t->has_raw_data = 1;
    t->raw_data.len = numel * elem;
    t->raw_data.data = raw;
    b->inits[b->n_inits++] = t;
    return ICS_OK;
}

static ics_status add_init_f32(onnx_builder *b, const char *name, int ndim, const int64_t *dims,
                               const float *data)
{
    return ics_onnx_add_init(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims, data);
}

/* Adds a model tensor as an initializer under its state_dict name. */
static ics_status add_model_tensor(onnx_builder *b, int index)
{
    const ics_tensor_info *ti = ics_model_tensor(b->model, index);
    return add_init_f32(b, ti->name, ti->ndim, ti->shape, ics_model_tensor_data(b->model, index));
}

/* ---- the graph walk ----------------------------------------------------- */

node_tensors ics_onnx_find_tensors(ics_model *model, const ics_node *n)
{
    node_tensors t = {-1, -1, -1, -1, -1, -1};
    for (int i = n->first_tensor; i < n->first_tensor + n->num_tensors; i++) {
        const ics_tensor_info *ti = ics_model_tensor(model, i);
        size_t len = strlen(ti->name);
        switch (ti->kind) {
        case ICS_TENSOR_WEIGHT:
            t.weight = i;
            break;
        case ICS_TENSOR_BIAS:
            t.bias = i;
            break;
        case ICS_TENSOR_BN_WEIGHT:
            t.gamma = i;
            break;
        case ICS_TENSOR_BN_BIAS:
            t.beta = i;
            break;
        case ICS_TENSOR_BUFFER:
            if (len >= 12 && strcmp(ti->name + len - 12, "running_mean") == 0)
                t.mean = i;
            else if (len >= 11 && strcmp(ti->name + len - 11, "running_var") == 0)
                t.var = i;
            break;
        case ICS_TENSOR_COUNTER:
            break;
        }
    }
    return t;
}

/* Number of nodes that read node i. */
static int count_readers(ics_model *model, int i)
{
    int readers = 0;
    for (int j = i + 1; j < ics_model_num_nodes(model); j++) {
        const ics_node *n = ics_model_node(model, j);
        for (int k = 0; k < n->num_inputs; k++)
            readers += n->inputs[k] == i;
    }
    return readers;
}

/* Folds BatchNorm (eval: y = (x - mean) / sqrt(var + eps) * gamma + beta)
 * into the conv before it: W'[o] = W[o] * s_o, b'_o = (b_o - mean_o) * s_o
 * + beta_o with s_o = gamma_o / sqrt(var_o + eps), computed in double and
 * rounded once, so the folded conv differs from conv-then-BN by float
 * rounding only. A pruned weight stays exactly 0. */
static ics_status add_folded_conv(onnx_builder *b, const ics_node *conv, const ics_node *bn,
                                  char *bias_name, size_t bias_name_size)
{
    node_tensors ct = ics_onnx_find_tensors(b->model, conv);
    node_tensors bt = ics_onnx_find_tensors(b->model, bn);
    /* The model library gives every conv a weight and every BatchNorm its
     * four tensors (model.h), so all roles are found. */
    const ics_tensor_info *wi = ics_model_tensor(b->model, ct.weight);
    int64_t out_c = wi->shape[0];
    size_t per_out = (size_t)(wi->numel / out_c);
    const float *w = ics_model_tensor_data(b->model, ct.weight);
    const float *bias = ct.bias >= 0 ? ics_model_tensor_data(b->model, ct.bias) : NULL;
    const float *gamma = ics_model_tensor_data(b->model, bt.gamma);
    const float *beta = ics_model_tensor_data(b->model, bt.beta);
    const float *mean = ics_model_tensor_data(b->model, bt.mean);
    const float *var = ics_model_tensor_data(b->model, bt.var);
    float *fw = ics_malloc((size_t)wi->numel * sizeof *fw, "folded conv weight", b->err);
    float *fb = ics_malloc((size_t)out_c * sizeof *fb, "folded conv bias", b->err);
    ics_status st = ICS_ERR_NOMEM;
    if (fw && fb) {
        for (int64_t o = 0; o < out_c; o++) {
            double s = (double)gamma[o] / sqrt((double)var[o] + (double)bn->eps);
            for (size_t k = 0; k < per_out; k++)
                fw[(size_t)o * per_out + k] = (float)((double)w[(size_t)o * per_out + k] * s);
            double b0 = bias ? (double)bias[o] : 0.0;
            fb[o] = (float)((b0 - (double)mean[o]) * s + (double)beta[o]);
        }
        /* The folded bias keeps the conv's name; a conv without bias gets
         * "<conv>.bias", the key torch's fuse_conv_bn_eval would create. */
        if (ct.bias >= 0)
            snprintf(bias_name, bias_name_size, "%s", ics_model_tensor(b->model, ct.bias)->name);
        else
            snprintf(bias_name, bias_name_size, "%s.bias", conv->name);
        st = add_init_f32(b, wi->name, wi->ndim, wi->shape, fw);
        if (st == ICS_OK) st = add_init_f32(b, bias_name, 1, &out_c, fb);
    }
    free(fw);
    free(fb);
    return st;
}

/* Adaptive average pooling to (oh, ow) from a static (ih, iw) that is not
 * a whole-window pooling: y = A_h x A_w^T with A[o][i] = 1/len over
 * torch's window [floor(o*in/out), ceil((o+1)*in/out)). Two MatMuls with
 * constant matrices (NCHW x [W, OW], then [OH, H] x that, broadcast over N
 * and C) reproduce torch exactly up to summation order, including the
 * 1x1 -> 7x7 replication of VGG at 32x32 inputs. */
static ics_status add_adaptive_matmul(onnx_builder *b, const ics_node *n, int index, const char *in,
                                      const char *out, int ih, int iw)
{
    char rows[ICS_NAME_MAX + 32], cols[ICS_NAME_MAX + 32], mid[ICS_NAME_MAX + 32];
    const char *base = n->name[0] ? n->name : "adaptive_avgpool";
    snprintf(rows, sizeof rows, "%s.pool_rows_%d", base, index);
    snprintf(cols, sizeof cols, "%s.pool_cols_%d", base, index);
    snprintf(mid, sizeof mid, "%s.pool_w_%d", base, index);
    int oh = n->out_h, ow = n->out_w;
    float *ah = ics_calloc((size_t)oh * (size_t)ih, sizeof *ah, "pool matrix", b->err);
    float *awt = ics_calloc((size_t)iw * (size_t)ow, sizeof *awt, "pool matrix", b->err);
    ics_status st = ICS_ERR_NOMEM;
    if (ah && awt) {
        for (int o = 0; o < oh; o++) {
            int s = (o * ih) / oh, e = ((o + 1) * ih + oh - 1) / oh;
            for (int i = s; i < e; i++)
                ah[(size_t)o * (size_t)ih + (size_t)i] = 1.0f / (float)(e - s);
        }
        for (int o = 0; o < ow; o++) {
            int s = (o * iw) / ow, e = ((o + 1) * iw + ow - 1) / ow;
            for (int i = s; i < e; i++)
                awt[(size_t)i * (size_t)ow + (size_t)o] = 1.0f / (float)(e - s);
        }
        int64_t dh[2] = {oh, ih}, dw[2] = {iw, ow};
        st = add_init_f32(b, rows, 2, dh, ah);
        if (st == ICS_OK) st = add_init_f32(b, cols, 2, dw, awt);
        const char *in1[2] = {in, cols}, *in2[2] = {rows, mid};
        if (st == ICS_OK) st = ics_onnx_add_node(b, "MatMul", mid, in1, 2, mid, NULL, 0);
        if (st == ICS_OK) st = ics_onnx_add_node(b, "MatMul", base, in2, 2, out, NULL, 0);
    }
    free(ah);
    free(awt);
    return st;
}

/* Promise (export_onnx_internal.h): torch's Conv2d as an ONNX Conv. */
ics_status ics_onnx_add_conv(onnx_builder *b, const ics_node *n, const char *name, const char *in,
                             const char *weight, const char *bias, const char *out)
{
    int64_t kernel[2] = {n->kernel_h, n->kernel_w}, strides[2] = {n->stride_h, n->stride_w};
    int64_t pads[4] = {n->pad_h, n->pad_w, n->pad_h, n->pad_w}; /* t, l, b, r */
    int64_t ones[2] = {1, 1};
    const char *inputs[3] = {in, weight, bias ? bias : ""};
    Onnx__AttributeProto *attrs[5] = {
        ics_onnx_attr_ints(b, "dilations", ones, 2), ics_onnx_attr_int(b, "group", n->groups),
        ics_onnx_attr_ints(b, "kernel_shape", kernel, 2), ics_onnx_attr_ints(b, "pads", pads, 4),
        ics_onnx_attr_ints(b, "strides", strides, 2)};
    return ics_onnx_add_node(b, "Conv", name, inputs, bias ? 3 : 2, out, attrs, 5);
}

/* The ONNX node(s) of icsparse node i, reading the values of its inputs
 * and producing ws->value[i]. */
ics_status ics_onnx_emit_fp32(onnx_builder *b, walk_state *ws, int i)
{
    ics_model *model = b->model;
    const ics_node *n = ics_model_node(model, i);
    const char *in0 = n->num_inputs > 0 ? ws->value[ws->alias[n->inputs[0]]] : "";
    const char *out = ws->value[i];
    const char *name = n->name[0] ? n->name : out;
    int64_t kernel[2] = {n->kernel_h, n->kernel_w}, strides[2] = {n->stride_h, n->stride_w};
    int64_t pads[4] = {n->pad_h, n->pad_w, n->pad_h, n->pad_w}; /* t, l, b, r */
    switch (n->kind) {
    case ICS_OP_CONV2D: {
        node_tensors t = ics_onnx_find_tensors(model, n);
        char bias_name[ICS_NAME_MAX + 32] = "";
        ics_status st;
        if (ws->fold_into[i] >= 0) {
            st = add_folded_conv(b, n, ics_model_node(model, ws->fold_into[i]), bias_name,
                                 sizeof bias_name);
        } else {
            st = add_model_tensor(b, t.weight);
            if (st == ICS_OK && t.bias >= 0) {
                snprintf(bias_name, sizeof bias_name, "%s", ics_model_tensor(model, t.bias)->name);
                st = add_model_tensor(b, t.bias);
            }
        }
        if (st != ICS_OK) return st;
        return ics_onnx_add_conv(b, n, name, in0, ics_model_tensor(model, t.weight)->name,
                                 bias_name[0] ? bias_name : NULL, out);
    }
    case ICS_OP_BATCHNORM2D: {
        node_tensors t = ics_onnx_find_tensors(model, n);
        const int roles[4] = {t.gamma, t.beta, t.mean, t.var};
        const char *inputs[5] = {in0};
        for (int k = 0; k < 4; k++) {
            ics_status st = add_model_tensor(b, roles[k]);
            if (st != ICS_OK) return st;
            inputs[k + 1] = ics_model_tensor(model, roles[k])->name;
        }
        /* momentum is training-only; ONNX's is 1 - torch's. */
        Onnx__AttributeProto *attrs[2] = {ics_onnx_attr_float(b, "epsilon", n->eps),
                                          ics_onnx_attr_float(b, "momentum", 1.0f - n->momentum)};
        return ics_onnx_add_node(b, "BatchNormalization", name, inputs, 5, out, attrs, 2);
    }
    case ICS_OP_RELU:
        return ics_onnx_add_node(b, "Relu", name, &in0, 1, out, NULL, 0);
    case ICS_OP_RELU6: {
        /* Clip takes min and max as inputs since opset 11. */
        if (!b->have_clip_bounds) {
            const float lo = 0.0f, hi = 6.0f;
            ics_status st = add_init_f32(b, "relu6.min", 0, NULL, &lo);
            if (st == ICS_OK) st = add_init_f32(b, "relu6.max", 0, NULL, &hi);
            if (st != ICS_OK) return st;
            b->have_clip_bounds = 1;
        }
        const char *inputs[3] = {in0, "relu6.min", "relu6.max"};
        return ics_onnx_add_node(b, "Clip", name, inputs, 3, out, NULL, 0);
    }
    case ICS_OP_MAXPOOL2D: {
        Onnx__AttributeProto *attrs[4] = {ics_onnx_attr_int(b, "ceil_mode", n->ceil_mode),
                                          ics_onnx_attr_ints(b, "kernel_shape", kernel, 2),
                                          ics_onnx_attr_ints(b, "pads", pads, 4),
                                          ics_onnx_attr_ints(b, "strides", strides, 2)};
        return ics_onnx_add_node(b, "MaxPool", name, &in0, 1, out, attrs, 4);
    }
    case ICS_OP_AVGPOOL2D: {
        Onnx__AttributeProto *attrs[5] = {
            ics_onnx_attr_int(b, "ceil_mode", n->ceil_mode),
            ics_onnx_attr_int(b, "count_include_pad", n->count_include_pad),
            ics_onnx_attr_ints(b, "kernel_shape", kernel, 2),
            ics_onnx_attr_ints(b, "pads", pads, 4), ics_onnx_attr_ints(b, "strides", strides, 2)};
        return ics_onnx_add_node(b, "AveragePool", name, &in0, 1, out, attrs, 5);
    }
    case ICS_OP_ADAPTIVE_AVGPOOL2D: {
        const ics_node *src = ics_model_node(model, n->inputs[0]);
        int ih = src->out_h, iw = src->out_w;
        if (n->out_h == 1 && n->out_w == 1)
            return ics_onnx_add_node(b, "GlobalAveragePool", name, &in0, 1, out, NULL, 0);
        if (!ws->fixed_size[n->inputs[0]])
            return ICS_FAIL(
                b->err, ICS_ERR_INVALID,
                "ONNX export: node '%s' (adaptive average pool to %dx%d) needs a fixed input "
                "size: export without --dynamic-shape",
                name, n->out_h, n->out_w);
        if (ih % n->out_h == 0 && iw % n->out_w == 0) {
            /* Equal windows: adaptive pooling is plain average pooling. */
            int64_t k[2] = {ih / n->out_h, iw / n->out_w};
            int64_t zero[4] = {0, 0, 0, 0};
            Onnx__AttributeProto *attrs[3] = {ics_onnx_attr_ints(b, "kernel_shape", k, 2),
                                              ics_onnx_attr_ints(b, "pads", zero, 4),
                                              ics_onnx_attr_ints(b, "strides", k, 2)};
            return ics_onnx_add_node(b, "AveragePool", name, &in0, 1, out, attrs, 3);
        }
        return add_adaptive_matmul(b, n, i, in0, out, ih, iw);
    }
    case ICS_OP_ADD: {
        const char *inputs[2] = {in0, ws->value[ws->alias[n->inputs[1]]]};
        return ics_onnx_add_node(b, "Add", name, inputs, 2, out, NULL, 0);
    }
    case ICS_OP_FLATTEN: {
        Onnx__AttributeProto *attrs[1] = {ics_onnx_attr_int(b, "axis", 1)};
        return ics_onnx_add_node(b, "Flatten", name, &in0, 1, out, attrs, 1);
    }
    case ICS_OP_LINEAR: {
        /* torch's Linear: y = x W^T + b, i.e. Gemm with transB = 1. */
        node_tensors t = ics_onnx_find_tensors(model, n);
        ics_status st = add_model_tensor(b, t.weight);
        if (st == ICS_OK && t.bias >= 0) st = add_model_tensor(b, t.bias);
        if (st != ICS_OK) return st;
        const char *inputs[3] = {in0, ics_model_tensor(model, t.weight)->name,
                                 t.bias >= 0 ? ics_model_tensor(model, t.bias)->name : ""};
        Onnx__AttributeProto *attrs[1] = {ics_onnx_attr_int(b, "transB", 1)};
        return ics_onnx_add_node(b, "Gemm", name, inputs, t.bias >= 0 ? 3 : 2, out, attrs, 1);
    }
    case ICS_OP_INPUT:
    case ICS_OP_DROPOUT:
    case ICS_OP_FAKE_QUANT: /* QAT models export through ics_onnx_qdq_emit */
    case ICS_OP_COUNT:
        break;
    }
    return ICS_OK;
}

/* Decides aliases, folding, names and fixed sizes for every node,
 * and refuses what has no ONNX form under the options (naming the node). */
static ics_status plan_walk(onnx_builder *b, walk_state *ws, int *final_node)
{
    ics_model *model = b->model;
    int count = ics_model_num_nodes(model);
    int qat = ics_model_qat_active(model);
    for (int i = 0; i < count; i++) {
        const ics_node *n = ics_model_node(model, i);
        ws->alias[i] = i;
        ws->fold_into[i] = -1;
        int in = n->num_inputs > 0 ? n->inputs[0] : -1;
        ws->fixed_size[i] = in >= 0 ? ws->fixed_size[in] : !b->opts->dynamic_shape;
        /* A value stays on its fake-quant node's grid through the nodes that
         * only move or select values (max pool, flatten, dropout). */
        ws->qsource[i] = n->kind == ICS_OP_FAKE_QUANT ? i
                         : (n->kind == ICS_OP_MAXPOOL2D || n->kind == ICS_OP_FLATTEN ||
                            n->kind == ICS_OP_DROPOUT)
                             ? ws->qsource[in]
                             : -1;
        if (n->name[0])
            snprintf(ws->value[i], sizeof ws->value[i], "%s", n->name);
        else
            snprintf(ws->value[i], sizeof ws->value[i], "%s_%d", ics_op_kind_name(n->kind), i);
        switch (n->kind) {
        case ICS_OP_INPUT:
            snprintf(ws->value[i], sizeof ws->value[i], "input");
            break;
        case ICS_OP_DROPOUT: /* the identity at inference */
            ws->alias[i] = ws->alias[in];
            break;
        case ICS_OP_BATCHNORM2D:
            if (b->opts->fold_bn && ics_model_node(model, in)->kind == ICS_OP_CONV2D &&
                count_readers(model, in) == 1 && !(qat && ics_onnx_qdq_keeps_bn(model, in))) {
                ws->fold_into[in] = i;
                ws->alias[i] = ws->alias[in];
            }
            break;
        case ICS_OP_ADD:
            ws->fixed_size[i] = ws->fixed_size[in] && ws->fixed_size[n->inputs[1]];
            break;
        case ICS_OP_ADAPTIVE_AVGPOOL2D:
            ws->fixed_size[i] = 1;
            break;
        case ICS_OP_FLATTEN:
            if (!ws->fixed_size[in])
                return ICS_FAIL(
                    b->err, ICS_ERR_INVALID,
                    "ONNX export: --dynamic-shape: %s flattens a %dx%dx%d map whose size follows "
                    "the input size, so the classifier needs a fixed %dx%d input (the model has "
                    "no adaptive pooling before it)",
                    ics_model_arch(model), ics_model_node(model, in)->out_c,
                    ics_model_node(model, in)->out_h, ics_model_node(model, in)->out_w,
                    ics_model_get_options(model)->in_h, ics_model_get_options(model)->in_w);
            break;
        default:
            break;
        }
    }
    /* Every architecture ends with flatten -> (dropout) -> linear (model.h),
     * so the last value is [batch, classes] and Gemm reads a 2-D input. */
    int final = ws->alias[count - 1];
    snprintf(ws->value[final], sizeof ws->value[final], "output");
    *final_node = final;
    return ICS_OK;
}

/* A graph input or output: float tensor with the given dims, where a dim
 * of -1 is symbolic and named by `params`. */
static Onnx__ValueInfoProto *value_info(onnx_builder *b, const char *name, int ndim,
                                        const int64_t *dims, const char *const *params)
{
    Onnx__ValueInfoProto *v = arena_alloc(&b->arena, sizeof *v, b->err);
    Onnx__TypeProto *type = arena_alloc(&b->arena, sizeof *type, b->err);
    Onnx__TypeProto__Tensor *tt = arena_alloc(&b->arena, sizeof *tt, b->err);
    Onnx__TensorShapeProto *shape = arena_alloc(&b->arena, sizeof *shape, b->err);
    Onnx__TensorShapeProto__Dimension **dim =
        arena_alloc(&b->arena, (size_t)ndim * sizeof *dim, b->err);
    if (!v || !type || !tt || !shape || !dim) return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(type);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(shape);
    for (int d = 0; d < ndim; d++) {
        dim[d] = arena_alloc(&b->arena, sizeof *dim[d], b->err);
        if (!dim[d]) return NULL;
        onnx__tensor_shape_proto__dimension__init(dim[d]);
        if (dims[d] < 0) {
            dim[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dim[d]->dim_param = arena_strdup(&b->arena, params[d], b->err);
            if (!dim[d]->dim_param) return NULL;
        } else {
            dim[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dim[d]->dim_value = dims[d];
        }
    }
    shape->n_dim = (size_t)ndim;
    shape->dim = dim;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = shape;
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tt;
    v->name = arena_strdup(&b->arena, name, b->err);
    v->type = type;
    return v->name ? v : NULL;
}

/* Builds the ModelProto in the builder's arena. */
static ics_status build_model(onnx_builder *b, Onnx__ModelProto **out)
{
    ics_model *model = b->model;
    int count = ics_model_num_nodes(model);
    walk_state ws;
    ws.alias = arena_alloc(&b->arena, (size_t)count * sizeof *ws.alias, b->err);
    ws.fold_into = arena_alloc(&b->arena, (size_t)count * sizeof *ws.fold_into, b->err);
    ws.fixed_size = arena_alloc(&b->arena, (size_t)count * sizeof *ws.fixed_size, b->err);
    ws.qsource = arena_alloc(&b->arena, (size_t)count * sizeof *ws.qsource, b->err);
    ws.value = arena_alloc(&b->arena, (size_t)count * sizeof *ws.value, b->err);
    /* Each icsparse node gives at most two ONNX nodes (adaptive pooling as
     * two MatMuls) and at most two extra initializers (pool matrices, the
     * ReLU6 bounds); the QDQ graph of a QAT model says what it needs. */
    int qat = ics_model_qat_active(model);
    b->cap_nodes = 2 * (size_t)count;
    b->cap_inits = (size_t)ics_model_num_tensors(model) + 2 * (size_t)count + 2;
    if (qat) ics_onnx_qdq_capacity(model, &b->cap_nodes, &b->cap_inits);
    b->nodes = arena_alloc(&b->arena, b->cap_nodes * sizeof *b->nodes, b->err);
    b->inits = arena_alloc(&b->arena, b->cap_inits * sizeof *b->inits, b->err);
    if (!ws.alias || !ws.fold_into || !ws.fixed_size || !ws.qsource || !ws.value || !b->nodes ||
        !b->inits)
        return ICS_ERR_NOMEM;
    int final = 0;
    ics_status st = plan_walk(b, &ws, &final);
    for (int i = 1; i < count && st == ICS_OK; i++)
        if (ws.alias[i] == i)
            st = qat ? ics_onnx_qdq_emit(b, &ws, i) : ics_onnx_emit_fp32(b, &ws, i);
    if (st != ICS_OK) return st;

    const ics_model_options *mo = ics_model_get_options(model);
    const ics_export_options *o = b->opts;
    int64_t batch = o->batch_size > 0 ? o->batch_size : -1;
    int64_t in_dims[4] = {batch, mo->in_channels, o->dynamic_shape ? -1 : mo->in_h,
                          o->dynamic_shape ? -1 : mo->in_w};
    const char *in_params[4] = {"batch", NULL, "height", "width"};
    int64_t out_dims[2] = {batch, ics_model_node(model, final)->out_c};
    const char *out_params[2] = {"batch", NULL};

    Onnx__GraphProto *g = arena_alloc(&b->arena, sizeof *g, b->err);
    Onnx__ModelProto *m = arena_alloc(&b->arena, sizeof *m, b->err);
    Onnx__OperatorSetIdProto *opset = arena_alloc(&b->arena, sizeof *opset, b->err);
    Onnx__OperatorSetIdProto **opsets = arena_alloc(&b->arena, sizeof *opsets, b->err);
    Onnx__ValueInfoProto **ins = arena_alloc(&b->arena, sizeof *ins, b->err);
    Onnx__ValueInfoProto **outs = arena_alloc(&b->arena, sizeof *outs, b->err);
    if (!g || !m || !opset || !opsets || !ins || !outs) return ICS_ERR_NOMEM;
    onnx__graph_proto__init(g);
    onnx__model_proto__init(m);
    onnx__operator_set_id_proto__init(opset);
    ins[0] = value_info(b, "input", 4, in_dims, in_params);
    outs[0] = value_info(b, "output", 2, out_dims, out_params);
    g->name = arena_strdup(&b->arena, ics_model_arch(model), b->err);
    opset->domain = arena_strdup(&b->arena, "", b->err);
    m->producer_name = arena_strdup(&b->arena, "icsparse", b->err);
    m->producer_version = arena_strdup(&b->arena, PACKAGE_VERSION, b->err);
    if (!ins[0] || !outs[0] || !g->name || !opset->domain || !m->producer_name ||
        !m->producer_version)
        return ICS_ERR_NOMEM;
    g->n_input = g->n_output = 1;
    g->input = ins;
    g->output = outs;
    g->n_node = b->n_nodes;
    g->node = b->nodes;
    g->n_initializer = b->n_inits;
    g->initializer = b->inits;
    opset->has_version = 1;
    opset->version = o->opset;
    opsets[0] = opset;
    /* IR 7 goes with opsets 13/14 and IR 8 with 15..18; the IR of the
     * current onnx.proto is newer than onnxruntime accepts. */
    m->has_ir_version = 1;
    m->ir_version = o->opset <= 14 ? 7 : 8;
    m->n_opset_import = 1;
    m->opset_import = opsets;
    m->graph = g;
    *out = m;
    return ICS_OK;
}

/* Promise (export.h): the serialized ModelProto of the model, or one
 * error naming what could not be exported. */
ics_status ics_export_onnx_bytes(ics_model *model, const ics_export_options *opts, uint8_t **bytes,
                                 size_t *len, ics_error *err)
{
    *bytes = NULL;
    *len = 0;
    if (opts->opset < ICS_EXPORT_OPSET_MIN || opts->opset > ICS_EXPORT_OPSET_MAX)
        return ICS_FAIL(err, ICS_ERR_INVALID, "ONNX export: opset %d is out of range (%d..%d)",
                        opts->opset, ICS_EXPORT_OPSET_MIN, ICS_EXPORT_OPSET_MAX);
    if (opts->batch_size < 0)
        return ICS_FAIL(err, ICS_ERR_INVALID, "ONNX export: batch size %d is negative (0: dynamic)",
                        opts->batch_size);
    if (ics_model_qat_active(model)) {
        ics_status st = ics_onnx_qdq_check(model, opts, err);
        if (st != ICS_OK) return st;
    }
    onnx_builder b;
    memset(&b, 0, sizeof b);
    b.model = model;
    b.opts = opts;
    b.err = err;
    Onnx__ModelProto *m = NULL;
    ics_status st = build_model(&b, &m);
    if (st == ICS_OK) {
        /* protobuf messages are limited to 2 GiB; the largest architecture
         * (vgg16_bn, 138M parameters) is 553 MB, so no external data file
         * is needed. */
        size_t size = onnx__model_proto__get_packed_size(m);
        *bytes = ics_malloc(size ? size : 1, "ONNX model bytes", err);
        if (!*bytes)
            st = ICS_ERR_NOMEM;
        else
            *len = onnx__model_proto__pack(m, *bytes);
    }
    arena_free(&b.arena);
    return st;
}
