/*
 * The pieces of synchronized BatchNorm (torch.nn.SyncBatchNorm) on the CPU:
 * per-channel sums over this rank's rows (NHWC: rows of C contiguous
 * channels), and the backward with the global means the caller reduced
 * over ranks. Sums run in double over rows in a fixed order, so every
 * thread count gives the same bits.
 */
#include "ics_build_config.h"
#include "backend/cpu/cpu_ops.h"

#include <stdlib.h>
#include <string.h>

void cpu_batchnorm_channel_sums(int64_t rows, int channels, const float *x, const float *dy,
                                const float *mean, const float *invstd, double *sum_a, double *sum_b)
{
    /* One channel per iteration: its rows are read with stride C, which the
     * prefetcher follows; channels are independent, so threads split them. */
#pragma omp parallel for schedule(static)
    for (int c = 0; c < channels; c++) {
        double a = 0, b = 0;
        if (!dy) {
            for (int64_t r = 0; r < rows; r++) {
                double v = x[r * channels + c];
                a += v;
                b += v * v;
            }
        } else {
            double m = mean[c], s = invstd[c];
            for (int64_t r = 0; r < rows; r++) {
                double g = dy[r * channels + c];
                a += g;
                b += g * ((double)x[r * channels + c] - m) * s;
            }
        }
        sum_a[c] = a;
        sum_b[c] = b;
    }
}

void cpu_batchnorm_backward_apply(int64_t rows, int channels, const float *x, const float *dy,
                                  const float *gamma, const float *mean, const float *invstd,
                                  const double *mean_dy, const double *mean_dy_xhat, float *dx)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        for (int c = 0; c < channels; c++) {
            float xhat = (x[r * channels + c] - mean[c]) * invstd[c];
            dx[r * channels + c] = gamma[c] * invstd[c] *
                                   (dy[r * channels + c] - (float)mean_dy[c] - xhat * (float)mean_dy_xhat[c]);
        }
    }
}
