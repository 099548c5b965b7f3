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

#include <math.h>

static int64_t rows_of(const ics_layer_io *io)
{
    return (int64_t)io->batch * io->node->out_h * io->node->out_w;
}

/* Sums count doubles over ranks through the model's reducer; a failure is
 * recorded for the model to return (layers cannot fail themselves). */
static int reduce_sums(const ics_layer_io *io, double *values, int count)
{
    if (*io->reduce_status) return 0;
    ics_status st = io->reduce(io->reduce_ctx, values, count, io->reduce_error);
    if (st) *io->reduce_status = st;
    return st == ICS_OK;
}

/* Largest channel count synchronized BN handles (stack buffers). */
enum { SYNC_MAX_CHANNELS = 4096 };

/* torch.nn.SyncBatchNorm's forward: the mean and biased variance over
 * every rank's rows (sum and sum of squares reduced in double), the
 * running statistics updated from them (unbiased variance over the global
 * count), the normalization done by the eval op with those statistics. */
static void sync_forward(const ics_layer_io *io)
{
    const ics_node *n = io->node;
    int C = n->out_c;
    double sums[2 * SYNC_MAX_CHANNELS + 1];
    float var[SYNC_MAX_CHANNELS];
    float *save_mean = io->saved;
    float *save_invstd = save_mean + C;
    int64_t rows = rows_of(io);
    io->ops->batchnorm_channel_sums(rows, C, io->x[0], NULL, NULL, NULL, sums, sums + C);
    sums[2 * C] = (double)rows;
    if (!reduce_sums(io, sums, 2 * C + 1)) return;
    double count = sums[2 * C];
    float *running_mean = io->buffer[0], *running_var = io->buffer[1];
    for (int c = 0; c < C; c++) {
        double mean = sums[c] / count;
        double v = sums[C + c] / count - mean * mean;
        if (v < 0) v = 0;
        save_mean[c] = (float)mean;
        var[c] = (float)v;
        save_invstd[c] = (float)(1.0 / sqrt(v + n->eps));
        double unbiased = count > 1 ? v * count / (count - 1) : v;
        running_mean[c] = (float)((1.0 - n->momentum) * running_mean[c] + n->momentum * mean);
        running_var[c] = (float)((1.0 - n->momentum) * running_var[c] + n->momentum * unbiased);
    }
    io->ops->batchnorm_forward_eval(rows, C, io->x[0], io->param[0], io->param[1], save_mean, var, n->eps,
                                    io->y);
    (*io->counter)++;
}

/* SyncBatchNorm's backward: dgamma and dbeta from this rank's rows (DDP
 * averages them like every gradient); dx with the global means of dy and
 * dy*xhat. */
static void sync_backward(const ics_layer_io *io)
{
    const ics_node *n = io->node;
    int C = n->out_c;
    double sums[2 * SYNC_MAX_CHANNELS + 1];
    const float *save_mean = io->saved;
    const float *save_invstd = save_mean + C;
    int64_t rows = rows_of(io);
    io->ops->batchnorm_channel_sums(rows, C, io->x[0], io->dy, save_mean, save_invstd, sums, sums + C);
    for (int c = 0; c < C; c++) {
        io->grad[1][c] += (float)sums[c];     /* dbeta = sum dy */
        io->grad[0][c] += (float)sums[C + c]; /* dgamma = sum dy * xhat */
    }
    if (!io->dx[0]) return;
    sums[2 * C] = (double)rows;
    if (!reduce_sums(io, sums, 2 * C + 1)) return;
    double count = sums[2 * C];
    for (int i = 0; i < 2 * C; i++) sums[i] /= count;
    io->ops->batchnorm_backward_apply(rows, C, io->x[0], io->dy, io->param[0], save_mean, save_invstd, sums,
                                      sums + C, io->dx[0]);
}

/* A frozen BN in training (QAT's freeze_bn_stats): the running
 * statistics normalize, nothing updates, and the saved mean and invstd are
 * the running ones for the affine backward below. */
static void frozen_forward(const ics_layer_io *io)
{
    const ics_node *n = io->node;
    float *save_mean = io->saved;
    float *save_invstd = save_mean + n->out_c;
    for (int c = 0; c < n->out_c; c++) {
        save_mean[c] = io->buffer[0][c];
        save_invstd[c] = 1.0f / sqrtf(io->buffer[1][c] + n->eps);
    }
    io->ops->batchnorm_forward_eval(rows_of(io), n->out_c, io->x[0], io->param[0], io->param[1], io->buffer[0],
                                    io->buffer[1], n->eps, io->y);
}

/* Its backward: y = gamma (x - mean) invstd + beta with constant mean and
 * invstd, so dx = dy gamma invstd, dgamma = sum dy xhat, dbeta = sum dy. */
static void frozen_backward(const ics_layer_io *io)
{
    const ics_node *n = io->node;
    const int C = n->out_c;
    const int64_t rows = rows_of(io);
    const float *mean = io->saved;
    const float *invstd = mean + C;
    const float *x = io->x[0], *dy = io->dy, *gamma = io->param[0];
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            float g = dy[r * C + c];
            io->grad[1][c] += g;
            io->grad[0][c] += g * (x[r * C + c] - mean[c]) * invstd[c];
        }
    if (!io->dx[0]) return;
    float *dx = io->dx[0];
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) dx[r * C + c] = dy[r * C + c] * gamma[c] * invstd[c];
}

void ics_nn_batchnorm2d_forward(const ics_layer_io *io)
{
    const ics_node *n = io->node;
    if (io->training && io->bn_frozen) {
        frozen_forward(io);
        return;
    }
    if (io->training && io->reduce && n->out_c <= SYNC_MAX_CHANNELS) {
        sync_forward(io);
        return;
    }
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
    if (io->bn_frozen) {
        frozen_backward(io);
        return;
    }
    if (io->reduce && n->out_c <= SYNC_MAX_CHANNELS) {
        sync_backward(io);
        return;
    }
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
