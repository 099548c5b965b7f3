/*
 * src/backend/cpu/cpu_depthwise.c: depthwise conv2d (groups == in_c ==
 * out_c, MobileNet's 3x3 layers) as direct NHWC kernels.
 *
 * Why direct: each channel is its own tiny convolution (K = KH*KW, often 9),
 * so an im2col + GEMM per channel would be nothing but overhead and copies.
 * In NHWC the C channels of one pixel are contiguous, so every kernel tap is
 * a vector multiply-add over channels: y[p, :] += x[q, :] * w[tap, :], with
 * the weight transposed once per call from [C][KH*KW] to [KH*KW][C].
 *
 * Workspace: the transposed weight, then ICS_CPU_REDUCE_SLICES partial
 * weight gradients (the slices split the (image, output row) pairs by shape
 * only, so the sum is the same for any thread count).
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#include <string.h>

static int64_t taps_times_channels(const ics_conv2d_desc *d)
{
    return (int64_t)d->kernel_h * d->kernel_w * d->in_c;
}

/* See cpu_ops.h. */
size_t cpu_depthwise_workspace_bytes(const ics_conv2d_desc *d)
{
    return (size_t)(1 + ICS_CPU_REDUCE_SLICES) * (size_t)taps_times_channels(d) * sizeof(float);
}

/* wt[k][c] = w[c][k]: the taps become the outer index so the channel loop is
 * contiguous for both x and w. */
static void transpose_weight(const ics_conv2d_desc *d, const float *w, float *wt)
{
    const int C = d->in_c, taps = d->kernel_h * d->kernel_w;
    for (int c = 0; c < C; c++)
        for (int k = 0; k < taps; k++) wt[(int64_t)k * C + c] = w[(int64_t)c * taps + k];
}

/* See backend.h (conv2d_forward_fused): the epilogue (ep may be NULL) is
 * applied to each output row right after it is computed, while it is
 * still in L1. */
ICS_CPU_SIMD_CLONES
void cpu_depthwise_forward(const ics_conv2d_desc *d, const float *x, const float *weight,
                           const float *bias, const cpu_epilogue *ep, float *y, void *workspace)
{
    const int H = d->in_h, W = d->in_w, C = d->in_c, OH = d->out_h, OW = d->out_w;
    const int KH = d->kernel_h, KW = d->kernel_w, SH = d->stride_h, SW = d->stride_w;
    const int PH = d->pad_h, PW = d->pad_w;
    float *wt = workspace;
    transpose_weight(d, weight, wt);
    const int64_t jobs = (int64_t)d->batch * OH;
    const int parallel = jobs * OW * C * KH * KW >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t job = 0; job < jobs; job++) {
        const int64_t n = job / OH;
        const int oh = (int)(job % OH);
        for (int ow = 0; ow < OW; ow++) {
            float *out = y + (job * OW + ow) * C;
            if (bias)
                memcpy(out, bias, sizeof(float) * (size_t)C);
            else
                memset(out, 0, sizeof(float) * (size_t)C);
            for (int kh = 0; kh < KH; kh++) {
                const int ih = oh * SH - PH + kh;
                if (ih < 0 || ih >= H) continue;
                for (int kw = 0; kw < KW; kw++) {
                    const int iw = ow * SW - PW + kw;
                    if (iw < 0 || iw >= W) continue;
                    const float *xs = x + ((n * H + ih) * W + iw) * C;
                    const float *wk = wt + ((int64_t)kh * KW + kw) * C;
#pragma omp simd
                    for (int c = 0; c < C; c++) out[c] += xs[c] * wk[c];
                }
            }
        }
        cpu_apply_epilogue(ep, OW, C, y + job * OW * C);
    }
}

/* dx[n, ih, iw, c] = sum over the taps that read it of dy * w (a gather, so
 * each dx element has one writer). */
ICS_CPU_SIMD_CLONES
static void depthwise_backward_data(const ics_conv2d_desc *d, const float *wt, const float *dy,
                                    float *dx)
{
    const int H = d->in_h, W = d->in_w, C = d->in_c, OH = d->out_h, OW = d->out_w;
    const int KH = d->kernel_h, KW = d->kernel_w, SH = d->stride_h, SW = d->stride_w;
    const int PH = d->pad_h, PW = d->pad_w;
    const int64_t jobs = (int64_t)d->batch * H;
    const int parallel = jobs * W * C * KH * KW >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t job = 0; job < jobs; job++) {
        const int64_t n = job / H;
        const int ih = (int)(job % H);
        for (int iw = 0; iw < W; iw++) {
            float *out = dx + (job * W + iw) * C;
            memset(out, 0, sizeof(float) * (size_t)C);
            for (int kh = 0; kh < KH; kh++) {
                const int th = ih + PH - kh;
                if (th < 0) break;
                if (th % SH) continue;
                const int oh = th / SH;
                if (oh >= OH) continue;
                for (int kw = 0; kw < KW; kw++) {
                    const int tw = iw + PW - kw;
                    if (tw < 0) break;
                    if (tw % SW) continue;
                    const int ow = tw / SW;
                    if (ow >= OW) continue;
                    const float *g = dy + ((n * OH + oh) * OW + ow) * C;
                    const float *wk = wt + ((int64_t)kh * KW + kw) * C;
#pragma omp simd
                    for (int c = 0; c < C; c++) out[c] += g[c] * wk[c];
                }
            }
        }
    }
}

/* dweight[c][tap] += sum over (n, oh, ow) of dy[n,oh,ow,c] * x[n,ih,iw,c],
 * summed per slice of (n, oh) rows, then over slices in order. */
ICS_CPU_SIMD_CLONES
static void depthwise_backward_weight(const ics_conv2d_desc *d, const float *x, const float *dy,
                                      float *dweight, float *partials)
{
    const int H = d->in_h, W = d->in_w, C = d->in_c, OH = d->out_h, OW = d->out_w;
    const int KH = d->kernel_h, KW = d->kernel_w, SH = d->stride_h, SW = d->stride_w;
    const int PH = d->pad_h, PW = d->pad_w;
    const int64_t tc = taps_times_channels(d);
    const int64_t jobs = (int64_t)d->batch * OH;
    const int slices = jobs < ICS_CPU_REDUCE_SLICES ? (int)jobs : ICS_CPU_REDUCE_SLICES;
    const int parallel = jobs * OW * tc >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int s = 0; s < slices; s++) {
        float *part = partials + (int64_t)s * tc;
        memset(part, 0, sizeof(float) * (size_t)tc);
        for (int64_t job = jobs * s / slices; job < jobs * (s + 1) / slices; job++) {
            const int64_t n = job / OH;
            const int oh = (int)(job % OH);
            for (int ow = 0; ow < OW; ow++) {
                const float *g = dy + (job * OW + ow) * C;
                for (int kh = 0; kh < KH; kh++) {
                    const int ih = oh * SH - PH + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (int kw = 0; kw < KW; kw++) {
                        const int iw = ow * SW - PW + kw;
                        if (iw < 0 || iw >= W) continue;
                        const float *xs = x + ((n * H + ih) * W + iw) * C;
                        float *pk = part + ((int64_t)kh * KW + kw) * C;
#pragma omp simd
                        for (int c = 0; c < C; c++) pk[c] += g[c] * xs[c];
                    }
                }
            }
        }
    }
    const int taps = KH * KW;
    for (int c = 0; c < C; c++)
        for (int k = 0; k < taps; k++) {
            float sum = 0.0f;
            for (int s = 0; s < slices; s++) sum += partials[(int64_t)s * tc + (int64_t)k * C + c];
            dweight[(int64_t)c * taps + k] += sum;
        }
}

/* See backend.h (conv2d_backward). */
void cpu_depthwise_backward(const ics_conv2d_desc *d, const float *x, const float *weight,
                            const float *dy, float *dx, float *dweight, float *dbias,
                            void *workspace)
{
    float *wt = workspace;
    float *partials = wt + taps_times_channels(d);
    const int64_t out_rows = (int64_t)d->batch * d->out_h * d->out_w;
    if (dbias && out_rows > 0) {
        double sums[d->out_c];
        cpu_channel_sums(out_rows, d->out_c, dy, NULL, NULL, sums, NULL);
        for (int c = 0; c < d->out_c; c++) dbias[c] += (float)sums[c];
    }
    if (dweight) depthwise_backward_weight(d, x, dy, dweight, partials);
    if (dx) {
        transpose_weight(d, weight, wt);
        depthwise_backward_data(d, wt, dy, dx);
    }
}
