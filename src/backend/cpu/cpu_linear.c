/*
 * src/backend/cpu/cpu_linear.c: torch.nn.Linear on [N, in] rows with the
 * PyTorch [out, in] weight, as three GEMMs (cpu_gemm: row blocks per thread):
 *   y = x W^T + b,   dW += dy^T x,   dx = dy W,   db += colsum(dy).
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#include <string.h>

/* See backend.h. */
void cpu_linear_forward(int batch, int in_features, int out_features, const float *x,
                        const float *weight, const float *bias, float *y)
{
    cpu_linear_forward_fused(batch, in_features, out_features, x, weight, bias, NULL, y);
}

/* See backend.h. The bias is written first and the GEMM adds to it (beta =
 * 1): one write pass instead of a later read-modify-write pass. The
 * epilogue then runs over y (batch x out is small: a classifier head). */
void cpu_linear_forward_fused(int batch, int in_features, int out_features, const float *x,
                              const float *weight, const float *bias, const ics_epilogue *ep,
                              float *y)
{
    if (batch <= 0 || out_features <= 0) return;
    if (bias)
        for (int n = 0; n < batch; n++)
            memcpy(y + (int64_t)n * out_features, bias, sizeof(float) * (size_t)out_features);
    if (in_features <= 0) {
        if (!bias) memset(y, 0, sizeof(float) * (size_t)batch * (size_t)out_features);
    } else {
        cpu_gemm(0, 1, batch, out_features, in_features, 1.0f, x, in_features, weight, in_features,
                 bias ? 1.0f : 0.0f, y, out_features);
    }
    if (ep) {
        float scale[out_features], shift[out_features];
        cpu_epilogue e;
        const cpu_epilogue *r = cpu_epilogue_resolve(ep, out_features, scale, shift, &e);
        if (r) cpu_epilogue_rows(r, batch, out_features, y);
    }
}

/* See backend.h: dx overwritten (may be NULL), dweight and dbias accumulate. */
void cpu_linear_backward(int batch, int in_features, int out_features, const float *x,
                         const float *weight, const float *dy, float *dx, float *dweight,
                         float *dbias)
{
    if (batch <= 0) return;
    if (dbias && out_features > 0) {
        double sums[out_features];
        cpu_channel_sums(batch, out_features, dy, NULL, NULL, sums, NULL);
        for (int o = 0; o < out_features; o++) dbias[o] += (float)sums[o];
    }
    if (out_features <= 0 || in_features <= 0) {
        if (dx && in_features > 0) memset(dx, 0, sizeof(float) * (size_t)batch * (size_t)in_features);
        return;
    }
    if (dweight)
        cpu_gemm(1, 0, out_features, in_features, batch, 1.0f, dy, out_features, x, in_features, 1.0f,
                 dweight, in_features);
    if (dx)
        cpu_gemm(0, 0, batch, in_features, out_features, 1.0f, dy, out_features, weight, in_features,
                 0.0f, dx, in_features);
}
