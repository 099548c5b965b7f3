/*
 * src/nn/linear.c: torch.nn.Linear, y = x W^T + b with W [out, in].
 */
#include "nn/layer.h"

void ics_nn_linear_forward(const ics_layer_io *io)
{
    io->ops->linear_forward(io->batch, (int)ics_node_numel(io->in_node[0]), io->node->out_c,
                            io->x[0], io->param[0], io->param[1], io->y);
}

/* dW += dy^T x, db += sum dy, dx = dy W. */
void ics_nn_linear_backward(const ics_layer_io *io)
{
    io->ops->linear_backward(io->batch, (int)ics_node_numel(io->in_node[0]), io->node->out_c,
                             io->x[0], io->param[0], io->dy, io->dx[0], io->grad[0], io->grad[1]);
}
