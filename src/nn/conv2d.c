/*
 * src/nn/conv2d.c: torch.nn.Conv2d on NHWC activations with an OIHW weight.
 * The op table does the arithmetic; this file maps a graph node to the
 * op's descriptor.
 */
#include "nn/layer.h"

/* The descriptor follows the node's attributes; out_h/out_w were computed
 * by the model builder with the same floor formula the op uses. */
void ics_nn_conv2d_desc(const ics_node *node, const ics_node *in, int batch, ics_conv2d_desc *d)
{
    d->batch = batch;
    d->in_h = in->out_h;
    d->in_w = in->out_w;
    d->in_c = in->out_c;
    d->out_h = node->out_h;
    d->out_w = node->out_w;
    d->out_c = node->out_c;
    d->kernel_h = node->kernel_h;
    d->kernel_w = node->kernel_w;
    d->stride_h = node->stride_h;
    d->stride_w = node->stride_w;
    d->pad_h = node->pad_h;
    d->pad_w = node->pad_w;
    d->groups = node->groups;
}

/* y = conv(x, W) + b. */
void ics_nn_conv2d_forward(const ics_layer_io *io)
{
    ics_conv2d_desc d;
    ics_nn_conv2d_desc(io->node, io->in_node[0], io->batch, &d);
    io->ops->conv2d_forward(&d, io->x[0], io->param[0], io->param[1], io->y, io->workspace);
}

/* dW += conv-grad, db += sum of dy, dx = transposed conv of dy (skipped
 * when the input needs no gradient, as for the first layer). */
void ics_nn_conv2d_backward(const ics_layer_io *io)
{
    ics_conv2d_desc d;
    ics_nn_conv2d_desc(io->node, io->in_node[0], io->batch, &d);
    io->ops->conv2d_backward(&d, io->x[0], io->param[0], io->dy, io->dx[0], io->grad[0],
                             io->grad[1], io->workspace);
}
