/*
 * src/nn/batchnorm2d.c: torch.nn.BatchNorm2d. NHWC makes the statistics a
 * reduction over rows = batch*H*W of C contiguous channels.
 *
 * Training: y = (x - mean_B) / sqrt(var_B + eps) * gamma + beta with the
 * batch's biased variance; the running statistics move by
 * r = (1 - momentum) r + momentum * stat (running_var takes the unbiased
 * variance), and num_batches_tracked counts the batches, exactly as torch
 * with momentum set (torch only uses the counter when momentum is None).
 * Evaluation: the running statistics replace the batch's.
 */
#include "nn/layer.h"

static int64_t rows_of(const ics_layer_io *io)
{
    return (int64_t)io->batch * io->node->out_h * io->node->out_w;
}

void ics_nn_batchnorm2d_forward(const ics_layer_io *io)
{
    const ics_node *n = io->node;
    if (io->training) {
        float *save_mean = io->saved;
        float *save_invstd = save_mean + n->out_c;
        io->ops->batchnorm_forward_train(rows_of(io), n->out_c, io->x[0], io->param[0],
                                         io->param[1], io->buffer[0], io->buffer[1], n->momentum,
                                         n->eps, io->y, save_mean, save_invstd);
        (*io->counter)++;
    } else {
        io->ops->batchnorm_forward_eval(rows_of(io), n->out_c, io->x[0], io->param[0],
                                        io->param[1], io->buffer[0], io->buffer[1], n->eps,
                                        io->y);
    }
}

/* The batch-statistics backward (the mean and variance depend on x). */
void ics_nn_batchnorm2d_backward(const ics_layer_io *io)
{
    const ics_node *n = io->node;
    const float *save_mean = io->saved;
    io->ops->batchnorm_backward(rows_of(io), n->out_c, io->x[0], io->dy, io->param[0], save_mean,
                                save_mean + n->out_c, io->dx[0], io->grad[0], io->grad[1]);
}

/* Training keeps the batch mean and 1/sqrt(var + eps) per channel. */
size_t ics_nn_batchnorm2d_saved_bytes(const ics_node *node, const ics_node *in, int batch,
                                      int training)
{
    (void)in;
    (void)batch;
    return training ? 2 * (size_t)node->out_c * sizeof(float) : 0;
}
