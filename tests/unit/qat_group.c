/* The layer-level QAT group of qat_group.h. */
#include "qat_group.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

static float *falloc(int64_t n)
{
    return calloc((size_t)(n > 0 ? n : 1), sizeof(float));
}

int qat_group_init(qat_group *g)
{
    const ics_backend_ops *ops = ics_backend_cpu();
    memset(&g->in, 0, sizeof g->in);
    g->in.kind = ICS_OP_INPUT;
    g->in.out_h = g->in_h;
    g->in.out_w = g->in_w;
    g->in.out_c = g->in_c;
    memset(&g->conv, 0, sizeof g->conv);
    g->conv.kind = ICS_OP_CONV2D;
    snprintf(g->conv.name, sizeof g->conv.name, "conv");
    g->conv.num_inputs = 1;
    g->conv.out_h = (g->in_h + 2 * g->pad - g->kernel) / g->stride + 1;
    g->conv.out_w = (g->in_w + 2 * g->pad - g->kernel) / g->stride + 1;
    g->conv.out_c = g->out_c;
    g->conv.kernel_h = g->conv.kernel_w = g->kernel;
    g->conv.stride_h = g->conv.stride_w = g->stride;
    g->conv.pad_h = g->conv.pad_w = g->pad;
    g->conv.groups = 1;
    g->conv.has_bias = g->has_bias;
    g->conv.fold_bn = g->has_bn;
    g->bn = g->conv;
    g->bn.kind = ICS_OP_BATCHNORM2D;
    snprintf(g->bn.name, sizeof g->bn.name, "bn");
    g->bn.eps = 1e-5f;
    g->bn.momentum = 0.1f;
    g->bn.fold_bn = 0;
    g->relu = g->bn;
    g->relu.kind = ICS_OP_RELU;
    g->fq = g->bn;
    g->fq.kind = ICS_OP_FAKE_QUANT;

    g->x_count = (int64_t)g->batch * g->in_h * g->in_w * g->in_c;
    g->y_count = (int64_t)g->batch * g->conv.out_h * g->conv.out_w * g->out_c;
    g->w_count = (int64_t)g->out_c * g->in_c * g->kernel * g->kernel;
    const int C = g->out_c;
    g->x = falloc(g->x_count);
    g->w = falloc(g->w_count);
    g->b = g->has_bias ? falloc(C) : NULL;
    g->gamma = falloc(C);
    g->beta = falloc(C);
    g->running_mean = falloc(C);
    g->running_var = falloc(C);
    g->w_state = falloc(2 * C);
    g->y_conv = falloc(g->y_count);
    g->y_bn = falloc(g->y_count);
    g->y_relu = falloc(g->y_count);
    g->y_fq = falloc(g->y_count);
    g->d_fq_in = falloc(g->y_count);
    g->d_relu_in = falloc(g->y_count);
    g->d_bn_in = falloc(g->y_count);
    g->dx = falloc(g->x_count);
    g->gw = falloc(g->w_count);
    g->gb = falloc(C);
    g->ggamma = falloc(C);
    g->gbeta = falloc(C);
    g->bn_saved = falloc(2 * C);
    g->mask = calloc((size_t)g->y_count, 1);
    ics_conv2d_desc d;
    ics_nn_conv2d_desc(&g->conv, &g->in, g->batch, &d);
    size_t ws = ops->conv2d_workspace_bytes(&d);
    g->workspace = calloc(ws > 0 ? ws : 1, 1);
    memset(&g->ctx, 0, sizeof g->ctx);
    g->ctx.wbuf = falloc(g->w_count);
    g->ctx.dwbuf = falloc(g->w_count);
    g->ctx.mbuf = falloc(g->w_count);
    g->ctx.fold = falloc(C);
    g->ctx.dfold = falloc(C);
    g->ctx.w_qmin = -(1 << (g->weight_bits - 1));
    g->ctx.w_qmax = (1 << (g->weight_bits - 1)) - 1;
    g->ctx.act_qmin = 0;
    g->ctx.act_qmax = (1 << g->activation_bits) - 1;
    g->ctx.averaging = 0.01f;
    for (int c = 0; c < C; c++) {
        g->gamma[c] = 1.0f;
        g->running_var[c] = 1.0f;
        g->w_state[c] = 1.0f;
    }
    memset(g->act_state, 0, sizeof g->act_state);
    g->act_state[ICS_AQ_SCALE] = 1.0f;
    g->counter = 0;
    if (!g->x || !g->w || !g->y_conv || !g->y_fq || !g->dx || !g->gw || !g->mask || !g->workspace ||
        !g->ctx.wbuf || !g->ctx.dwbuf || !g->ctx.mbuf || !g->ctx.fold || !g->ctx.dfold ||
        !g->w_state || !g->bn_saved || !g->d_bn_in)
        return -1;
    return 0;
}

void qat_group_free(qat_group *g)
{
    float *f[] = {
        g->x,           g->w,         g->b,        g->gamma,    g->beta,      g->running_mean,
        g->running_var, g->w_state,   g->y_conv,   g->y_bn,     g->y_relu,    g->y_fq,
        g->d_fq_in,     g->d_relu_in, g->d_bn_in,  g->dx,       g->gw,        g->gb,
        g->ggamma,      g->gbeta,     g->bn_saved, g->ctx.wbuf, g->ctx.dwbuf, g->ctx.mbuf,
        g->ctx.fold,    g->ctx.dfold};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        free(f[i]);
    free(g->mask);
    free(g->workspace);
}

static void base(const qat_group *g, const ics_node *node, const ics_node *in, ics_layer_io *io)
{
    memset(io, 0, sizeof *io);
    io->ops = ics_backend_cpu();
    io->node = node;
    io->in_node[0] = in;
    io->batch = g->batch;
    io->training = g->training;
    io->workspace = g->workspace;
    io->qat = &g->ctx;
}

static void conv_io(qat_group *g, ics_layer_io *io)
{
    base(g, &g->conv, &g->in, io);
    io->x[0] = g->x;
    io->y = g->y_conv;
    io->param[0] = g->w;
    io->param[1] = g->b;
    io->grad[0] = g->gw;
    io->grad[1] = g->has_bias ? g->gb : NULL;
    io->qstate = g->w_state;
    if (g->has_bn) {
        io->bn_gamma = g->gamma;
        io->bn_var = g->running_var;
        io->bn_gamma_grad = g->ggamma;
        io->bn_eps = g->bn.eps;
    }
}

static void bn_io(qat_group *g, ics_layer_io *io)
{
    base(g, &g->bn, &g->conv, io);
    io->x[0] = g->y_conv;
    io->y = g->y_bn;
    io->param[0] = g->gamma;
    io->param[1] = g->beta;
    io->grad[0] = g->ggamma;
    io->grad[1] = g->gbeta;
    io->buffer[0] = g->running_mean;
    io->buffer[1] = g->running_var;
    io->counter = &g->counter;
    io->saved = g->bn_saved;
    io->bn_frozen = g->bn_frozen;
}

/* The input of the ReLU and of the fake-quant node. */
static float *relu_input(qat_group *g)
{
    return g->has_bn ? g->y_bn : g->y_conv;
}
static float *fq_input(qat_group *g)
{
    return g->has_relu ? g->y_relu : relu_input(g);
}

void qat_group_forward(qat_group *g)
{
    ics_layer_io io;
    g->ctx.observers = g->observers;
    conv_io(g, &io);
    ics_nn_conv2d_qat_forward(&io);
    g->y_out = g->y_conv;
    if (g->has_bn) {
        bn_io(g, &io);
        ics_nn_batchnorm2d_forward(&io);
        g->y_out = g->y_bn;
    }
    if (g->has_relu) {
        base(g, &g->relu, &g->bn, &io);
        io.x[0] = relu_input(g);
        io.y = g->y_relu;
        ics_nn_relu_forward(&io);
        g->y_out = g->y_relu;
    }
    if (g->act_quant) {
        base(g, &g->fq, &g->relu, &io);
        io.x[0] = fq_input(g);
        io.y = g->y_fq;
        io.qstate = g->act_state;
        io.saved = g->training ? g->mask : NULL;
        ics_nn_fake_quant_forward(&io);
        g->y_out = g->y_fq;
    }
}

void qat_group_backward(qat_group *g, const float *dy)
{
    const int C = g->out_c;
    memset(g->gw, 0, (size_t)g->w_count * sizeof(float));
    memset(g->gb, 0, (size_t)C * sizeof(float));
    memset(g->ggamma, 0, (size_t)C * sizeof(float));
    memset(g->gbeta, 0, (size_t)C * sizeof(float));
    size_t bytes = (size_t)g->y_count * sizeof(float);
    ics_layer_io io;
    /* the gradient arriving at each node's output, walked backwards */
    const float *d = dy;
    if (g->act_quant) {
        base(g, &g->fq, &g->relu, &io);
        io.x[0] = fq_input(g);
        io.y = g->y_fq;
        io.dy = d;
        io.dx[0] = g->d_fq_in;
        io.qstate = g->act_state;
        io.saved = g->mask;
        ics_nn_fake_quant_backward(&io);
        d = g->d_fq_in;
    }
    if (g->has_relu) {
        base(g, &g->relu, &g->bn, &io);
        io.x[0] = relu_input(g);
        io.y = g->y_relu;
        io.dy = d;
        io.dx[0] = g->d_relu_in;
        ics_nn_relu_backward(&io);
        d = g->d_relu_in;
    }
    if (g->has_bn) {
        bn_io(g, &io);
        io.dy = d;
        io.dx[0] = g->d_bn_in;
        ics_nn_batchnorm2d_backward(&io);
    } else {
        memcpy(g->d_bn_in, d, bytes);
    }
    /* the conv's gradient buffer is its own (its backward scales it in place) */
    conv_io(g, &io);
    io.dy = g->d_bn_in;
    io.dx[0] = g->dx;
    ics_nn_conv2d_qat_backward(&io);
}
