/*
 * src/backend/cpu/cpu_pool.c: max and average pooling (torch.nn.MaxPool2d,
 * torch.nn.AvgPool2d) on NHWC. Each output pixel reduces a window of input
 * pixels whose C channels are contiguous, so the inner loop is a vector
 * over channels. Forward runs in parallel over (image, output row); backward
 * scatters into dx in parallel over images (windows may overlap within an
 * image, so one thread owns each image and the summation order is fixed).
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#include <math.h>
#include <string.h>

/* The input window of output index o along one axis, clipped to the input.
 * The unclipped end is also clipped to in + pad: that is the extent
 * count_include_pad counts (torch's avg_pool2d: pool_size is taken after
 * limiting the end to in + pad, before limiting to in). */
typedef struct window {
    int start, end;  /* clipped to [0, in) */
    int padded_size; /* end - start clipped only to [-pad, in + pad) */
} window;

static window window_at(int o, int in, int kernel, int stride, int pad)
{
    window w;
    int s = o * stride - pad;
    int e = s + kernel;
    if (e > in + pad) e = in + pad;
    w.padded_size = e - s;
    w.start = s < 0 ? 0 : s;
    w.end = e > in ? in : e;
    return w;
}

/* See backend.h. argmax holds the input pixel index ih*in_w + iw inside the
 * image, as torch's return_indices gives per (n, c) plane; the first
 * maximum in row-major window order wins, and a NaN wins (torch's rule:
 * `val > max || isnan(val)`). Padding never wins: it is -infinity. */
ICS_CPU_SIMD_CLONES
void cpu_maxpool2d_forward(const ics_pool2d_desc *d, const float *x, float *y, int32_t *argmax)
{
    const int H = d->in_h, W = d->in_w, C = d->channels, OH = d->out_h, OW = d->out_w;
    const int64_t jobs = (int64_t)d->batch * OH;
    const int parallel = jobs * OW * C * d->kernel_h * d->kernel_w >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t job = 0; job < jobs; job++) {
        const int64_t n = job / OH;
        const int oh = (int)(job % OH);
        const window wh = window_at(oh, H, d->kernel_h, d->stride_h, d->pad_h);
        for (int ow = 0; ow < OW; ow++) {
            const window ww = window_at(ow, W, d->kernel_w, d->stride_w, d->pad_w);
            float *out = y + (job * OW + ow) * C;
            int32_t *idx = argmax + (job * OW + ow) * C;
            const int32_t first = wh.start * W + ww.start;
            for (int c = 0; c < C; c++) {
                out[c] = -INFINITY;
                idx[c] = first;
            }
            for (int ih = wh.start; ih < wh.end; ih++)
                for (int iw = ww.start; iw < ww.end; iw++) {
                    const float *xs = x + ((n * H + ih) * W + iw) * C;
                    const int32_t here = ih * W + iw;
#pragma omp simd
                    for (int c = 0; c < C; c++) {
                        const float v = xs[c];
                        const int take = v > out[c] || v != v;
                        out[c] = take ? v : out[c];
                        idx[c] = take ? here : idx[c];
                    }
                }
        }
    }
}

/* See backend.h: dx = 0, then dx[n, argmax, c] += dy for every output. */
void cpu_maxpool2d_backward(const ics_pool2d_desc *d, const float *dy, const int32_t *argmax,
                            float *dx)
{
    const int C = d->channels;
    const int64_t in_per_image = (int64_t)d->in_h * d->in_w * C;
    const int64_t out_pixels = (int64_t)d->out_h * d->out_w;
    const int parallel = (int64_t)d->batch * in_per_image >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int n = 0; n < d->batch; n++) {
        float *dxn = dx + n * in_per_image;
        memset(dxn, 0, sizeof(float) * (size_t)in_per_image);
        const float *g = dy + n * out_pixels * C;
        const int32_t *idx = argmax + n * out_pixels * C;
        for (int64_t p = 0; p < out_pixels; p++)
            for (int c = 0; c < C; c++) dxn[(int64_t)idx[p * C + c] * C + c] += g[p * C + c];
    }
}

/* The divisor of one window: the padded extent with count_include_pad,
 * else only the real input pixels (0 for an empty window: output 0). */
static float avg_divisor(const ics_pool2d_desc *d, window wh, window ww)
{
    int count = d->count_include_pad ? wh.padded_size * ww.padded_size
                                     : (wh.end - wh.start) * (ww.end - ww.start);
    return count > 0 ? 1.0f / (float)count : 0.0f;
}

/* See backend.h: the window mean, with torch's divisor rules. */
ICS_CPU_SIMD_CLONES
void cpu_avgpool2d_forward(const ics_pool2d_desc *d, const float *x, float *y)
{
    const int H = d->in_h, W = d->in_w, C = d->channels, OH = d->out_h, OW = d->out_w;
    const int64_t jobs = (int64_t)d->batch * OH;
    const int parallel = jobs * OW * C * d->kernel_h * d->kernel_w >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t job = 0; job < jobs; job++) {
        const int64_t n = job / OH;
        const int oh = (int)(job % OH);
        const window wh = window_at(oh, H, d->kernel_h, d->stride_h, d->pad_h);
        for (int ow = 0; ow < OW; ow++) {
            const window ww = window_at(ow, W, d->kernel_w, d->stride_w, d->pad_w);
            float *out = y + (job * OW + ow) * C;
            memset(out, 0, sizeof(float) * (size_t)C);
            for (int ih = wh.start; ih < wh.end; ih++)
                for (int iw = ww.start; iw < ww.end; iw++) {
                    const float *xs = x + ((n * H + ih) * W + iw) * C;
#pragma omp simd
                    for (int c = 0; c < C; c++) out[c] += xs[c];
                }
            const float inv = avg_divisor(d, wh, ww);
            for (int c = 0; c < C; c++) out[c] *= inv;
        }
    }
}

/* See backend.h: dx = 0, then every window gets dy/divisor added. */
ICS_CPU_SIMD_CLONES
void cpu_avgpool2d_backward(const ics_pool2d_desc *d, const float *dy, float *dx)
{
    const int H = d->in_h, W = d->in_w, C = d->channels, OH = d->out_h, OW = d->out_w;
    const int64_t in_per_image = (int64_t)H * W * C;
    const int parallel = (int64_t)d->batch * in_per_image >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int n = 0; n < d->batch; n++) {
        float *dxn = dx + n * in_per_image;
        memset(dxn, 0, sizeof(float) * (size_t)in_per_image);
        for (int oh = 0; oh < OH; oh++) {
            const window wh = window_at(oh, H, d->kernel_h, d->stride_h, d->pad_h);
            for (int ow = 0; ow < OW; ow++) {
                const window ww = window_at(ow, W, d->kernel_w, d->stride_w, d->pad_w);
                const float inv = avg_divisor(d, wh, ww);
                const float *g = dy + (((int64_t)n * OH + oh) * OW + ow) * C;
                for (int ih = wh.start; ih < wh.end; ih++)
                    for (int iw = ww.start; iw < ww.end; iw++) {
                        float *out = dxn + ((int64_t)ih * W + iw) * C;
#pragma omp simd
                        for (int c = 0; c < C; c++) out[c] += g[c] * inv;
                    }
            }
        }
    }
}
