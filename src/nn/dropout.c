/*
 * src/nn/dropout.c: torch.nn.Dropout(p). Training draws a keep mask
 * (probability 1 - p per element) from the model's dropout RNG and scales
 * the kept values by 1/(1 - p) (inverted dropout, as torch), so evaluation
 * is the identity.
 */
#include "nn/layer.h"

#include <string.h>

void ics_nn_dropout_forward(const ics_layer_io *io)
{
    int64_t n = io->batch * ics_node_numel(io->node);
    float p = io->node->dropout_p;
    if (!io->training || p <= 0.0f) {
        /* Identity. A host memcpy: see add.c on the missing copy entry. */
        if (io->y != io->x[0]) memcpy(io->y, io->x[0], (size_t)n * sizeof(float));
        if (io->saved) memset(io->saved, 1, (size_t)n);
        return;
    }
    uint8_t *mask = io->saved;
    for (int64_t i = 0; i < n; i++) mask[i] = ics_rng_uniform(io->rng) >= (double)p;
    io->ops->dropout_forward(n, p, io->x[0], mask, io->y);
}

void ics_nn_dropout_backward(const ics_layer_io *io)
{
    int64_t n = io->batch * ics_node_numel(io->node);
    io->ops->dropout_backward(n, io->node->dropout_p, io->dy, io->saved, io->dx[0]);
}

/* One byte of mask per element when training. */
size_t ics_nn_dropout_saved_bytes(const ics_node *node, const ics_node *in, int batch,
                                  int training)
{
    (void)in;
    return training ? (size_t)batch * (size_t)ics_node_numel(node) : 0;
}
