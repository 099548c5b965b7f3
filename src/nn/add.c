/*
 * src/nn/add.c: the residual add y = a + b (ResNet blocks, MobileNetV2's
 * inverted residuals). Its gradient is dy for both inputs.
 */
#include "nn/layer.h"

#include <string.h>

void ics_nn_add_forward(const ics_layer_io *io)
{
    io->ops->add_forward(io->batch * ics_node_numel(io->node), io->x[0], io->x[1], io->y);
}

/* da = db = dy. The op table has no copy entry, so this is a host memcpy:
 * correct for the CPU table, to be replaced by a table entry when the
 * arena lives on a device. */
void ics_nn_add_backward(const ics_layer_io *io)
{
    size_t bytes = (size_t)(io->batch * ics_node_numel(io->node)) * sizeof(float);
    for (int k = 0; k < 2; k++)
        if (io->dx[k]) memcpy(io->dx[k], io->dy, bytes);
}
