/*
 * src/backend/cpu/cpu_adaptive_pool.c: torch.nn.AdaptiveAvgPool2d on NHWC.
 * Output cell i along an axis of size in -> out averages input indices
 * [floor(i*in/out), ceil((i+1)*in/out)); for non-divisible sizes
 * neighbouring cells overlap. The common 1x1 case (global average pooling)
 * is the same loop with one window covering the image.
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#include <string.h>

static int cell_start(int i, int in, int out) { return (int)((int64_t)i * in / out); }
static int cell_end(int i, int in, int out) { return (int)(((int64_t)(i + 1) * in + out - 1) / out); }

/* See backend.h: y = the mean of each cell's input pixels. */
ICS_CPU_SIMD_CLONES
void cpu_adaptive_avgpool2d_forward(int batch, int in_h, int in_w, int channels, int out_h,
                                    int out_w, const float *x, float *y)
{
    const int C = channels;
    const int64_t jobs = (int64_t)batch * out_h;
    const int parallel = (int64_t)batch * in_h * in_w * C >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t job = 0; job < jobs; job++) {
        const int64_t n = job / out_h;
        const int oh = (int)(job % out_h);
        const int hs = cell_start(oh, in_h, out_h), he = cell_end(oh, in_h, out_h);
        for (int ow = 0; ow < out_w; ow++) {
            const int ws = cell_start(ow, in_w, out_w), we = cell_end(ow, in_w, out_w);
            float *out = y + (job * out_w + ow) * C;
            memset(out, 0, sizeof(float) * (size_t)C);
            for (int ih = hs; ih < he; ih++)
                for (int iw = ws; iw < we; iw++) {
                    const float *xs = x + ((n * in_h + ih) * in_w + iw) * C;
#pragma omp simd
                    for (int c = 0; c < C; c++) out[c] += xs[c];
                }
            const float inv = 1.0f / (float)((he - hs) * (we - ws));
            for (int c = 0; c < C; c++) out[c] *= inv;
        }
    }
}

/* See backend.h: dx = 0, then each cell adds dy / cell size to its pixels
 * (one thread per image, so overlapping cells add in a fixed order). */
ICS_CPU_SIMD_CLONES
void cpu_adaptive_avgpool2d_backward(int batch, int in_h, int in_w, int channels, int out_h,
                                     int out_w, const float *dy, float *dx)
{
    const int C = channels;
    const int64_t in_per_image = (int64_t)in_h * in_w * C;
    const int parallel = (int64_t)batch * in_per_image >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int n = 0; n < batch; n++) {
        float *dxn = dx + n * in_per_image;
        memset(dxn, 0, sizeof(float) * (size_t)in_per_image);
        for (int oh = 0; oh < out_h; oh++) {
            const int hs = cell_start(oh, in_h, out_h), he = cell_end(oh, in_h, out_h);
            for (int ow = 0; ow < out_w; ow++) {
                const int ws = cell_start(ow, in_w, out_w), we = cell_end(ow, in_w, out_w);
                const float inv = 1.0f / (float)((he - hs) * (we - ws));
                const float *g = dy + (((int64_t)n * out_h + oh) * out_w + ow) * C;
                for (int ih = hs; ih < he; ih++)
                    for (int iw = ws; iw < we; iw++) {
                        float *out = dxn + ((int64_t)ih * in_w + iw) * C;
#pragma omp simd
                        for (int c = 0; c < C; c++) out[c] += g[c] * inv;
                    }
            }
        }
    }
}
