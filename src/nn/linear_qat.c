/*
 * src/nn/linear_qat.c: torch's QAT Linear: y = x fake_quant(W)^T + b with
 * W fake-quantized int8 per output row; the gradient reaches W through the
 * straight-through estimator.
 */
#include "nn/layer.h"

#include <string.h>

void ics_nn_linear_qat_forward(const ics_layer_io *io)
{
    const ics_qat_ctx *ctx = io->qat;
    int in = (int)ics_node_numel(io->in_node[0]), out = io->node->out_c;
    ics_nn_weight_fake_quant(out, in, io->param[0], io->qstate, ctx->observers, ctx->w_qmin, ctx->w_qmax, ctx->wbuf,
                             NULL);
    io->ops->linear_forward(io->batch, in, out, io->x[0], ctx->wbuf, io->param[1], io->y);
}

void ics_nn_linear_qat_backward(const ics_layer_io *io)
{
    const ics_qat_ctx *ctx = io->qat;
    int in = (int)ics_node_numel(io->in_node[0]), out = io->node->out_c;
    ics_nn_weight_fake_quant(out, in, io->param[0], io->qstate, 0, ctx->w_qmin, ctx->w_qmax, ctx->wbuf, ctx->mbuf);
    int64_t numel = (int64_t)in * out;
    memset(ctx->dwbuf, 0, (size_t)numel * sizeof(float));
    io->ops->linear_backward(io->batch, in, out, io->x[0], ctx->wbuf, io->dy, io->dx[0], ctx->dwbuf, io->grad[1]);
    float *dw = io->grad[0];
    for (int64_t i = 0; i < numel; i++) dw[i] += ctx->dwbuf[i] * ctx->mbuf[i];
}
