/*
 * src/nn/conv2d_qat.c: the conv of a QAT conv [-> BN] group, as torch's
 * intrinsic QAT ConvBn2d computes it (BN folding simulated in training):
 *
 *   f     = gamma / sqrt(running_var + eps)          (per output channel)
 *   wq    = fake_quant(w * f)                        (int8, per channel)
 *   y     = conv(x, wq) / f + b                      (this node's output)
 *
 * and the BN node that follows normalizes y as usual (batch statistics in
 * training, running statistics in evaluation or once frozen), so that at
 * inference BN(y) is exactly conv(x, wq) + folded bias: what int8 export
 * writes. Without a folded BN, f = 1. The fold factor depends on gamma, so
 * backward also adds to the BN's gamma gradient:
 *   dL/df_c = sum_k g_ck w_ck - sum_rows dy (y - b) / f,  dgamma += dL/df / std
 * where g = the gradient of wq masked by the straight-through estimator.
 * Backward must use the forward's f, as torch's autograd does: the BN has
 * updated running_var in between, so a training forward keeps the variance
 * it folded with after the weight scales (io->qstate + C).
 */
#include "nn/layer.h"

#include <math.h>
#include <string.h>

/* f per channel into ctx->fold from the running variance var (1 without a
 * folded BN). */
static void fold_factors(const ics_layer_io *io, int C, const float *var)
{
    float *f = io->qat->fold;
    for (int c = 0; c < C; c++)
        f[c] = io->bn_gamma ? io->bn_gamma[c] / sqrtf(var[c] + io->bn_eps) : 1.0f;
}

/* wq (and the mask when asked) from the current weights; observe refreshes
 * the scales. */
static void quantize_weight(const ics_layer_io *io, int C, int64_t cols, int observe, float *mask)
{
    const ics_qat_ctx *ctx = io->qat;
    const float *w = io->param[0];
    const float *src = w;
    if (io->bn_gamma) {
        const float *f = ctx->fold;
        for (int c = 0; c < C; c++)
            for (int64_t k = 0; k < cols; k++) ctx->wbuf[(int64_t)c * cols + k] = w[(int64_t)c * cols + k] * f[c];
        src = ctx->wbuf;
    }
    ics_nn_weight_fake_quant(C, cols, src, io->qstate, observe, ctx->w_qmin, ctx->w_qmax, ctx->wbuf, mask);
}

void ics_nn_conv2d_qat_forward(const ics_layer_io *io)
{
    ics_conv2d_desc d;
    ics_nn_conv2d_desc(io->node, io->in_node[0], io->batch, &d);
    const int C = io->node->out_c;
    const int64_t cols = (int64_t)(d.in_c / d.groups) * d.kernel_h * d.kernel_w;
    fold_factors(io, C, io->bn_var);
    if (io->bn_gamma && io->training) memcpy(io->qstate + C, io->bn_var, (size_t)C * sizeof(float));
    quantize_weight(io, C, cols, io->qat->observers, NULL);
    if (!io->bn_gamma) {
        io->ops->conv2d_forward(&d, io->x[0], io->qat->wbuf, io->param[1], io->y, io->workspace);
        return;
    }
    io->ops->conv2d_forward(&d, io->x[0], io->qat->wbuf, NULL, io->y, io->workspace);
    const float *f = io->qat->fold, *b = io->param[1];
    int64_t rows = (int64_t)io->batch * d.out_h * d.out_w;
    float *y = io->y;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *yr = y + r * C;
        for (int c = 0; c < C; c++) {
            float v = yr[c] / f[c];
            yr[c] = b ? v + b[c] : v;
        }
    }
}

void ics_nn_conv2d_qat_backward(const ics_layer_io *io)
{
    ics_conv2d_desc d;
    ics_nn_conv2d_desc(io->node, io->in_node[0], io->batch, &d);
    const ics_qat_ctx *ctx = io->qat;
    const int C = io->node->out_c;
    const int64_t cols = (int64_t)(d.in_c / d.groups) * d.kernel_h * d.kernel_w;
    const int64_t rows = (int64_t)io->batch * d.out_h * d.out_w;
    const float *var = io->bn_gamma ? io->qstate + C : NULL; /* the forward's running_var */
    fold_factors(io, C, var);
    float *dy = (float *)io->dy; /* this node's own gradient buffer: read only here */
    float *dfold = ctx->dfold;
    const float *f = ctx->fold, *b = io->param[1];
    if (io->bn_gamma) {
        /* the division by f: its gradient, db, then dy / f in place */
        for (int c = 0; c < C; c++) dfold[c] = 0.0f;
        const float *y = io->y;
        for (int64_t r = 0; r < rows; r++) {
            const float *dyr = dy + r * C, *yr = y + r * C;
            for (int c = 0; c < C; c++) dfold[c] -= dyr[c] * (b ? yr[c] - b[c] : yr[c]);
        }
        if (io->grad[1])
            for (int64_t r = 0; r < rows; r++)
                for (int c = 0; c < C; c++) io->grad[1][c] += dy[r * C + c];
        for (int c = 0; c < C; c++) dfold[c] /= f[c];
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++)
            for (int c = 0; c < C; c++) dy[r * C + c] /= f[c];
    }
    quantize_weight(io, C, cols, 0, ctx->mbuf);
    int64_t numel = (int64_t)C * cols;
    memset(ctx->dwbuf, 0, (size_t)numel * sizeof(float));
    io->ops->conv2d_backward(&d, io->x[0], ctx->wbuf, dy, io->dx[0], ctx->dwbuf, io->bn_gamma ? NULL : io->grad[1],
                             io->workspace);
    const float *w = io->param[0];
    float *dw = io->grad[0];
    for (int c = 0; c < C; c++) {
        double df = 0.0;
        for (int64_t k = 0; k < cols; k++) {
            int64_t i = (int64_t)c * cols + k;
            float g = ctx->dwbuf[i] * ctx->mbuf[i];
            dw[i] += g * f[c];
            df += (double)g * w[i];
        }
        if (io->bn_gamma) {
            dfold[c] += (float)df;
            io->bn_gamma_grad[c] += dfold[c] / sqrtf(var[c] + io->bn_eps);
        }
    }
}
