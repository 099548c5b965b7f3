/*
 * src/nn/pool.c: torch.nn.MaxPool2d, AvgPool2d and AdaptiveAvgPool2d (one
 * op family: windows over H and W, channels independent).
 */
#include "nn/layer.h"

static void pool_desc(const ics_layer_io *io, ics_pool2d_desc *d)
{
    const ics_node *n = io->node, *in = io->in_node[0];
    d->batch = io->batch;
    d->in_h = in->out_h;
    d->in_w = in->out_w;
    d->channels = in->out_c;
    d->out_h = n->out_h;
    d->out_w = n->out_w;
    d->kernel_h = n->kernel_h;
    d->kernel_w = n->kernel_w;
    d->stride_h = n->stride_h;
    d->stride_w = n->stride_w;
    d->pad_h = n->pad_h;
    d->pad_w = n->pad_w;
    d->ceil_mode = n->ceil_mode;
    d->count_include_pad = n->count_include_pad;
}

/* The forward records each output's argmax, which backward scatters to. */
void ics_nn_maxpool2d_forward(const ics_layer_io *io)
{
    ics_pool2d_desc d;
    pool_desc(io, &d);
    io->ops->maxpool2d_forward(&d, io->x[0], io->y, io->saved);
}

void ics_nn_maxpool2d_backward(const ics_layer_io *io)
{
    ics_pool2d_desc d;
    pool_desc(io, &d);
    io->ops->maxpool2d_backward(&d, io->dy, io->saved, io->dx[0]);
}

/* One int32 argmax per output element, in training and inference alike
 * (the op writes it either way). */
size_t ics_nn_maxpool2d_saved_bytes(const ics_node *node, const ics_node *in, int batch,
                                    int training)
{
    (void)in;
    (void)training;
    return (size_t)batch * (size_t)ics_node_numel(node) * sizeof(int32_t);
}

void ics_nn_avgpool2d_forward(const ics_layer_io *io)
{
    ics_pool2d_desc d;
    pool_desc(io, &d);
    io->ops->avgpool2d_forward(&d, io->x[0], io->y);
}

void ics_nn_avgpool2d_backward(const ics_layer_io *io)
{
    ics_pool2d_desc d;
    pool_desc(io, &d);
    io->ops->avgpool2d_backward(&d, io->dy, io->dx[0]);
}

void ics_nn_adaptive_avgpool2d_forward(const ics_layer_io *io)
{
    const ics_node *n = io->node, *in = io->in_node[0];
    io->ops->adaptive_avgpool2d_forward(io->batch, in->out_h, in->out_w, in->out_c, n->out_h,
                                        n->out_w, io->x[0], io->y);
}

void ics_nn_adaptive_avgpool2d_backward(const ics_layer_io *io)
{
    const ics_node *n = io->node, *in = io->in_node[0];
    io->ops->adaptive_avgpool2d_backward(io->batch, in->out_h, in->out_w, in->out_c, n->out_h,
                                         n->out_w, io->dy, io->dx[0]);
}
