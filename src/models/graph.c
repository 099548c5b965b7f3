/*
 * src/models/graph.c: the graph builder. Architecture files describe a
 * network as a sequence of builder calls in torch's module registration
 * order; each call appends one node (with its NHWC output shape computed by
 * PyTorch's formulas) and that module's tensors, so the tensor table comes
 * out in state_dict order by construction.
 */
#include "models/model_internal.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

/* Appends a zeroed node; grows the array geometrically. */
static ics_node *push_node(ics_model *m, ics_op_kind kind, const char *name, ics_error *err)
{
    if (m->num_nodes == m->cap_nodes) {
        int cap = m->cap_nodes ? 2 * m->cap_nodes : 64;
        ics_node *grown = ics_realloc(m->nodes, (size_t)cap * sizeof *grown, "model graph nodes", err);
        if (!grown) return NULL;
        m->nodes = grown;
        m->cap_nodes = cap;
    }
    ics_node *n = &m->nodes[m->num_nodes++];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    snprintf(n->name, sizeof n->name, "%s", name ? name : "");
    n->first_tensor = m->num_tensors;
    n->quant_index = -1;
    return n;
}

/* Appends tensor `name.suffix` of the last node, placing it at the end of
 * its slab. shape has ndim entries (ndim 0: a scalar). */
static int push_tensor(ics_model *m, const char *suffix, ics_tensor_kind kind, int ndim,
                       const int64_t *shape, ics_error *err)
{
    if (m->num_tensors == m->cap_tensors) {
        int cap = m->cap_tensors ? 2 * m->cap_tensors : 128;
        ics_tensor_info *grown =
            ics_realloc(m->tensors, (size_t)cap * sizeof *grown, "model tensor table", err);
        if (!grown) return -1;
        m->tensors = grown;
        m->cap_tensors = cap;
    }
    ics_node *n = &m->nodes[m->num_nodes - 1];
    ics_tensor_info *t = &m->tensors[m->num_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s.%s", n->name, suffix);
    t->kind = kind;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= shape[i];
    }
    t->node = m->num_nodes - 1;
    t->weight_decay = kind == ICS_TENSOR_WEIGHT;
    t->prunable = kind == ICS_TENSOR_WEIGHT;
    switch (kind) {
    case ICS_TENSOR_BUFFER:
        t->offset = m->num_buffers;
        m->num_buffers += (size_t)t->numel;
        break;
    case ICS_TENSOR_COUNTER:
        t->offset = m->num_counters;
        m->num_counters += 1;
        break;
    default:
        t->offset = m->num_params;
        m->num_params += (size_t)t->numel;
        break;
    }
    n->num_tensors++;
    return 0;
}

/* Validates an input index and returns that node. */
static const ics_node *input_node(ics_model *m, int in, const char *what, ics_error *err)
{
    if (in < 0 || in >= m->num_nodes) {
        ICS_FAIL(err, ICS_ERR_INVALID, "%s: input node %d does not exist", what, in);
        return NULL;
    }
    return &m->nodes[in];
}

int ics_build_input(ics_model *m, ics_error *err)
{
    ics_node *n = push_node(m, ICS_OP_INPUT, "", err);
    if (!n) return -1;
    n->out_h = m->opts.in_h;
    n->out_w = m->opts.in_w;
    n->out_c = m->opts.in_channels;
    return m->num_nodes - 1;
}

/* PyTorch's output size for a window over `in` (dilation 1, floor mode). */
static int window_out(int in, int kernel, int stride, int pad)
{
    int span = in + 2 * pad - kernel;
    return span < 0 ? 0 : span / stride + 1;
}

int ics_build_conv(ics_model *m, int in, const char *name, int out_c, int kernel, int stride,
                   int pad, int groups, int bias, ics_error *err)
{
    const ics_node *src = input_node(m, in, name, err);
    if (!src) return -1;
    int oh = window_out(src->out_h, kernel, stride, pad);
    int ow = window_out(src->out_w, kernel, stride, pad);
    if (oh < 1 || ow < 1)
        return ICS_FAIL(err, ICS_ERR_INVALID,
                        "%s: input %dx%d is too small for a %dx%d convolution with padding %d",
                        name, src->out_h, src->out_w, kernel, kernel, pad),
               -1;
    int in_c = src->out_c;
    ics_node *n = push_node(m, ICS_OP_CONV2D, name, err);
    if (!n) return -1;
    n->num_inputs = 1;
    n->inputs[0] = in;
    n->out_h = oh;
    n->out_w = ow;
    n->out_c = out_c;
    n->kernel_h = n->kernel_w = kernel;
    n->stride_h = n->stride_w = stride;
    n->pad_h = n->pad_w = pad;
    n->groups = groups;
    n->has_bias = bias;
    int64_t wshape[4] = {out_c, in_c / groups, kernel, kernel};
    if (push_tensor(m, "weight", ICS_TENSOR_WEIGHT, 4, wshape, err)) return -1;
    int64_t bshape[1] = {out_c};
    if (bias && push_tensor(m, "bias", ICS_TENSOR_BIAS, 1, bshape, err)) return -1;
    return m->num_nodes - 1;
}

/* BatchNorm2d with torch's defaults (eps 1e-5, momentum 0.1); its tensors
 * in state_dict order: weight, bias, running_mean, running_var,
 * num_batches_tracked. */
int ics_build_bn(ics_model *m, int in, const char *name, ics_error *err)
{
    const ics_node *src = input_node(m, in, name, err);
    if (!src) return -1;
    int h = src->out_h, w = src->out_w, c = src->out_c;
    ics_node *n = push_node(m, ICS_OP_BATCHNORM2D, name, err);
    if (!n) return -1;
    n->num_inputs = 1;
    n->inputs[0] = in;
    n->out_h = h;
    n->out_w = w;
    n->out_c = c;
    n->eps = 1e-5f;
    n->momentum = 0.1f;
    int64_t shape[1] = {c};
    if (push_tensor(m, "weight", ICS_TENSOR_BN_WEIGHT, 1, shape, err) ||
        push_tensor(m, "bias", ICS_TENSOR_BN_BIAS, 1, shape, err) ||
        push_tensor(m, "running_mean", ICS_TENSOR_BUFFER, 1, shape, err) ||
        push_tensor(m, "running_var", ICS_TENSOR_BUFFER, 1, shape, err) ||
        push_tensor(m, "num_batches_tracked", ICS_TENSOR_COUNTER, 0, NULL, err))
        return -1;
    return m->num_nodes - 1;
}

/* A node whose output has its input's shape and no tensors. */
static int push_same_shape(ics_model *m, int in, ics_op_kind kind, const char *name,
                           ics_error *err)
{
    const ics_node *src = input_node(m, in, name ? name : ics_op_kind_name(kind), err);
    if (!src) return -1;
    int h = src->out_h, w = src->out_w, c = src->out_c;
    ics_node *n = push_node(m, kind, name, err);
    if (!n) return -1;
    n->num_inputs = 1;
    n->inputs[0] = in;
    n->out_h = h;
    n->out_w = w;
    n->out_c = c;
    return m->num_nodes - 1;
}

int ics_build_act(ics_model *m, int in, ics_op_kind kind, const char *name, ics_error *err)
{
    return push_same_shape(m, in, kind, name, err);
}

/* MaxPool2d(kernel, stride, padding), floor mode as torchvision uses it. */
int ics_build_maxpool(ics_model *m, int in, const char *name, int kernel, int stride, int pad,
                      ics_error *err)
{
    const ics_node *src = input_node(m, in, name, err);
    if (!src) return -1;
    int oh = window_out(src->out_h, kernel, stride, pad);
    int ow = window_out(src->out_w, kernel, stride, pad);
    if (oh < 1 || ow < 1)
        return ICS_FAIL(err, ICS_ERR_INVALID,
                        "%s: input %dx%d is too small for a %dx%d max pool", name, src->out_h,
                        src->out_w, kernel, kernel),
               -1;
    int c = src->out_c;
    ics_node *n = push_node(m, ICS_OP_MAXPOOL2D, name, err);
    if (!n) return -1;
    n->num_inputs = 1;
    n->inputs[0] = in;
    n->out_h = oh;
    n->out_w = ow;
    n->out_c = c;
    n->kernel_h = n->kernel_w = kernel;
    n->stride_h = n->stride_w = stride;
    n->pad_h = n->pad_w = pad;
    return m->num_nodes - 1;
}

int ics_build_adaptive_avgpool(ics_model *m, int in, const char *name, int out_h, int out_w,
                               ics_error *err)
{
    const ics_node *src = input_node(m, in, name, err);
    if (!src) return -1;
    int c = src->out_c;
    ics_node *n = push_node(m, ICS_OP_ADAPTIVE_AVGPOOL2D, name, err);
    if (!n) return -1;
    n->num_inputs = 1;
    n->inputs[0] = in;
    n->out_h = out_h;
    n->out_w = out_w;
    n->out_c = c;
    return m->num_nodes - 1;
}

/* y = a + b; both inputs must have the same shape. */
int ics_build_add(ics_model *m, int a, int b, const char *name, ics_error *err)
{
    const ics_node *na = input_node(m, a, "add", err);
    const ics_node *nb = na ? input_node(m, b, "add", err) : NULL;
    if (!nb) return -1;
    if (na->out_h != nb->out_h || na->out_w != nb->out_w || na->out_c != nb->out_c)
        return ICS_FAIL(err, ICS_ERR_INVALID,
                        "add: shapes differ (%s %dx%dx%d, %s %dx%dx%d)", na->name, na->out_h,
                        na->out_w, na->out_c, nb->name, nb->out_h, nb->out_w, nb->out_c),
               -1;
    int h = na->out_h, w = na->out_w, c = na->out_c;
    ics_node *n = push_node(m, ICS_OP_ADD, name, err);
    if (!n) return -1;
    n->num_inputs = 2;
    n->inputs[0] = a;
    n->inputs[1] = b;
    n->out_h = h;
    n->out_w = w;
    n->out_c = c;
    return m->num_nodes - 1;
}

int ics_build_flatten(ics_model *m, int in, ics_error *err)
{
    const ics_node *src = input_node(m, in, "flatten", err);
    if (!src) return -1;
    int features = src->out_h * src->out_w * src->out_c;
    ics_node *n = push_node(m, ICS_OP_FLATTEN, "", err);
    if (!n) return -1;
    n->num_inputs = 1;
    n->inputs[0] = in;
    n->out_h = n->out_w = 1;
    n->out_c = features;
    return m->num_nodes - 1;
}

int ics_build_dropout(ics_model *m, int in, const char *name, float p, ics_error *err)
{
    int id = push_same_shape(m, in, ICS_OP_DROPOUT, name, err);
    if (id >= 0) m->nodes[id].dropout_p = p;
    return id;
}

/* Linear on a flat input (H = W = 1, as after flatten). */
int ics_build_linear(ics_model *m, int in, const char *name, int out_features, int bias,
                     ics_error *err)
{
    const ics_node *src = input_node(m, in, name, err);
    if (!src) return -1;
    if (src->out_h != 1 || src->out_w != 1)
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: linear input must be flat, got %dx%dx%d",
                        name, src->out_h, src->out_w, src->out_c),
               -1;
    int in_features = src->out_c;
    ics_node *n = push_node(m, ICS_OP_LINEAR, name, err);
    if (!n) return -1;
    n->num_inputs = 1;
    n->inputs[0] = in;
    n->out_h = n->out_w = 1;
    n->out_c = out_features;
    n->has_bias = bias;
    int64_t wshape[2] = {out_features, in_features};
    if (push_tensor(m, "weight", ICS_TENSOR_WEIGHT, 2, wshape, err)) return -1;
    int64_t bshape[1] = {out_features};
    if (bias && push_tensor(m, "bias", ICS_TENSOR_BIAS, 1, bshape, err)) return -1;
    return m->num_nodes - 1;
}
