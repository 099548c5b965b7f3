/*
 * src/nn/flatten.c: torch.flatten(x, 1). NHWC memory is reordered into
 * PyTorch's (c, h, w) feature order so the following linear layer uses a
 * torchvision weight unchanged (VGG's 512*7*7 classifier, the small CNN's
 * 64*7*7 one). With H = W = 1 both orders coincide.
 */
#include "nn/layer.h"

void ics_nn_flatten_forward(const ics_layer_io *io)
{
    const ics_node *in = io->in_node[0];
    io->ops->flatten_forward(io->batch, in->out_h, in->out_w, in->out_c, io->x[0], io->y);
}

void ics_nn_flatten_backward(const ics_layer_io *io)
{
    const ics_node *in = io->in_node[0];
    io->ops->flatten_backward(io->batch, in->out_h, in->out_w, in->out_c, io->dy, io->dx[0]);
}
