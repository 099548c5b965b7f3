/*
 * src/backend/cpu/cpu_batchnorm.c: BatchNorm2d over NHWC rows (rows = N*H*W,
 * channels contiguous), matching torch.nn.BatchNorm2d.
 *
 * Training statistics come from one pass that sums x and x^2 in double
 * (cpu_channel_sums); the double keeps E[x^2] - E[x]^2 accurate to ~1e-9
 * relative unless |mean|/std exceeds ~10^3, far beyond what activations
 * reach. Every normalisation is then one fused pass y = x*scale + shift with
 * per-channel scale = gamma*invstd and shift = beta - mean*scale.
 *
 * gamma/beta may be NULL (affine=False: 1 and 0); dgamma/dbeta may be NULL.
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#include <math.h>

/* y[r, c] = x[r, c] * scale[c] + shift[c]; y may alias x. */
ICS_CPU_SIMD_CLONES
static void affine_rows(int64_t rows, int channels, const float *x, const float *scale,
                        const float *shift, float *y)
{
    const int parallel = rows * channels >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * channels;
        float *yr = y + r * channels;
#pragma omp simd
        for (int c = 0; c < channels; c++) yr[c] = xr[c] * scale[c] + shift[c];
    }
}

/* See backend.h. PyTorch: y = (x - mean)/sqrt(var_biased + eps)*gamma + beta;
 * running = (1 - momentum)*running + momentum*stat with the unbiased
 * variance var_biased*n/(n-1) for running_var. */
void cpu_batchnorm_forward_train(int64_t rows, int channels, const float *x, const float *gamma,
                                 const float *beta, float *running_mean, float *running_var,
                                 float momentum, float eps, float *y, float *save_mean,
                                 float *save_invstd)
{
    if (rows <= 0) return;
    double sum[channels], sumsq[channels];
    float scale[channels], shift[channels];
    cpu_channel_sums(rows, channels, x, x, NULL, sum, sumsq);
    const double n = (double)rows;
    for (int c = 0; c < channels; c++) {
        const double mean = sum[c] / n;
        double var = sumsq[c] / n - mean * mean;
        if (var < 0) var = 0; /* rounding when all values are equal */
        const double invstd = 1.0 / sqrt(var + (double)eps);
        const double g = gamma ? gamma[c] : 1.0, b = beta ? beta[c] : 0.0;
        scale[c] = (float)(g * invstd);
        shift[c] = (float)(b - mean * g * invstd);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        /* torch raises for n == 1 in training; we keep the biased 0 there
         * instead of dividing by zero. */
        const double unbiased = rows > 1 ? var * n / (n - 1.0) : var;
        if (running_mean)
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
        if (running_var)
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
    affine_rows(rows, channels, x, scale, shift, y);
}

/* The evaluation-mode coefficients: y = x*scale + shift per channel. One
 * function for the BN op and the fused kernels' epilogue, so both round
 * alike. */
static void eval_coefficients(int channels, const float *gamma, const float *beta,
                              const float *running_mean, const float *running_var, float eps,
                              float *scale, float *shift)
{
    for (int c = 0; c < channels; c++) {
        const double invstd = 1.0 / sqrt((double)running_var[c] + (double)eps);
        const double g = gamma ? gamma[c] : 1.0, b = beta ? beta[c] : 0.0;
        scale[c] = (float)(g * invstd);
        shift[c] = (float)(b - running_mean[c] * g * invstd);
    }
}

/* See backend.h: y = (x - running_mean)/sqrt(running_var + eps)*gamma + beta. */
void cpu_batchnorm_forward_eval(int64_t rows, int channels, const float *x, const float *gamma,
                                const float *beta, const float *running_mean,
                                const float *running_var, float eps, float *y)
{
    float scale[channels], shift[channels];
    eval_coefficients(channels, gamma, beta, running_mean, running_var, eps, scale, shift);
    affine_rows(rows, channels, x, scale, shift, y);
}

/* See cpu_ops.h. */
ICS_CPU_SIMD_CLONES
void cpu_epilogue_rows(const cpu_epilogue *ep, int64_t rows, int channels, float *y)
{
    cpu_apply_epilogue(ep, rows, channels, y);
}

/* See cpu_ops.h. */
const cpu_epilogue *cpu_epilogue_resolve(const ics_epilogue *ep, int channels, float *scale,
                                         float *shift, cpu_epilogue *out)
{
    if (!ep || (!ep->bn_gamma && ep->act == ICS_ACT_NONE)) return NULL;
    out->scale = out->shift = NULL;
    out->act = ep->act;
    if (ep->bn_gamma) {
        eval_coefficients(channels, ep->bn_gamma, ep->bn_beta, ep->bn_mean, ep->bn_var, ep->bn_eps,
                          scale, shift);
        out->scale = scale;
        out->shift = shift;
    }
    return out;
}

/* See backend.h. With xhat = (x - mean)*invstd, the batch-statistics
 * gradient (the one autograd gives in training mode) is
 *   dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy*xhat)),
 *   dgamma += sum(dy*xhat), dbeta += sum(dy),
 * written as dx = (dy - mean(dy))*a + (x - mean)*b per channel for a single
 * fused pass (centering first avoids cancelling two large terms when
 * |mean| >> std). */
ICS_CPU_SIMD_CLONES
void cpu_batchnorm_backward(int64_t rows, int channels, const float *x, const float *dy,
                            const float *gamma, const float *save_mean, const float *save_invstd,
                            float *dx, float *dgamma, float *dbeta)
{
    if (rows <= 0) return;
    double sum_dy[channels], sum_dy_xmu[channels];
    float a[channels], b[channels], mean_dy[channels];
    cpu_channel_sums(rows, channels, dy, x, save_mean, sum_dy, sum_dy_xmu);
    const double n = (double)rows;
    for (int c = 0; c < channels; c++) {
        const double is = save_invstd[c], g = gamma ? gamma[c] : 1.0;
        if (dbeta) dbeta[c] += (float)sum_dy[c];
        if (dgamma) dgamma[c] += (float)(sum_dy_xmu[c] * is);
        const double ac = g * is;
        const double bc = -g * is * is * is * sum_dy_xmu[c] / n;
        a[c] = (float)ac;
        b[c] = (float)bc;
        mean_dy[c] = (float)(sum_dy[c] / n);
    }
    if (!dx) return;
    const int parallel = rows * channels >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * channels, *gr = dy + r * channels;
        float *out = dx + r * channels;
#pragma omp simd
        for (int c = 0; c < channels; c++)
            out[c] = (gr[c] - mean_dy[c]) * a[c] + (xr[c] - save_mean[c]) * b[c];
    }
}
