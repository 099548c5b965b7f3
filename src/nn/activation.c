/*
 * src/nn/activation.c: torch.nn.ReLU and torch.nn.ReLU6. Both backward
 * passes read the forward OUTPUT (y > 0, 0 < y < 6), which is what lets the
 * planner drop the input once the next layer has read it.
 */
#include "nn/layer.h"

static int64_t count_of(const ics_layer_io *io) { return io->batch * ics_node_numel(io->node); }

void ics_nn_relu_forward(const ics_layer_io *io)
{
    io->ops->relu_forward(count_of(io), io->x[0], io->y);
}

void ics_nn_relu_backward(const ics_layer_io *io)
{
    io->ops->relu_backward(count_of(io), io->y, io->dy, io->dx[0]);
}

/* min(max(x, 0), 6): MobileNetV2's activation. */
void ics_nn_relu6_forward(const ics_layer_io *io)
{
    io->ops->relu6_forward(count_of(io), io->x[0], io->y);
}

/* torch's hardtanh gradient: passes dy only strictly inside (0, 6). */
void ics_nn_relu6_backward(const ics_layer_io *io)
{
    io->ops->relu6_backward(count_of(io), io->y, io->dy, io->dx[0]);
}
