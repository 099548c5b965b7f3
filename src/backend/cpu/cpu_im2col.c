/*
 * src/backend/cpu/cpu_im2col.c: the NHWC im2col gather and its adjoint.
 *
 * The column matrix has one row per output pixel and K = KH*KW*cg columns in
 * (kh, kw, c) order. In NHWC that order makes every (kh, kw) entry a run of
 * cg contiguous floats of x, and when the group spans all channels the KW
 * entries of one kernel row are KW*C contiguous floats (neighbouring pixels
 * of one input row): one memcpy instead of a strided gather. PyTorch's OIHW
 * weight has K in (c, kh, kw) order instead, so cpu_conv2d.c permutes the
 * (small) weight once per call rather than the (large) activations.
 *
 * col2im is written as a gather over input pixels (each input pixel sums
 * the column entries that read it) rather than a scatter-add over output
 * pixels: every dx element is then written by exactly one thread, in a
 * fixed order, with no zeroing pass and no races.
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#include <string.h>

/* See cpu_ops.h. */
void cpu_im2col(const ics_conv2d_desc *d, const float *x, int n0, int count, int c0, int cg,
                float *col)
{
    const int H = d->in_h, W = d->in_w, C = d->in_c, OH = d->out_h, OW = d->out_w;
    const int KH = d->kernel_h, KW = d->kernel_w, SH = d->stride_h, SW = d->stride_w;
    const int PH = d->pad_h, PW = d->pad_w;
    const int64_t K = (int64_t)KH * KW * cg;
    const int whole_rows = cg == C; /* a kernel row of x is then contiguous */
    const int64_t jobs = (int64_t)count * OH;
    const int parallel = jobs * OW * K >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t job = 0; job < jobs; job++) {
        const int n = n0 + (int)(job / OH), oh = (int)(job % OH);
        float *dst_row = col + job * OW * K;
        for (int ow = 0; ow < OW; ow++) {
            float *dst = dst_row + (int64_t)ow * K;
            const int iw0 = ow * SW - PW;
            for (int kh = 0; kh < KH; kh++) {
                const int ih = oh * SH - PH + kh;
                float *dk = dst + (int64_t)kh * KW * cg;
                if (ih < 0 || ih >= H) {
                    memset(dk, 0, sizeof(float) * (size_t)KW * (size_t)cg);
                    continue;
                }
                const float *src = x + (((int64_t)n * H + ih) * W) * C + c0;
                if (whole_rows && iw0 >= 0 && iw0 + KW <= W) {
                    memcpy(dk, src + (int64_t)iw0 * C, sizeof(float) * (size_t)KW * (size_t)C);
                    continue;
                }
                for (int kw = 0; kw < KW; kw++) {
                    const int iw = iw0 + kw;
                    float *dc = dk + (int64_t)kw * cg;
                    if (iw < 0 || iw >= W)
                        memset(dc, 0, sizeof(float) * (size_t)cg);
                    else
                        memcpy(dc, src + (int64_t)iw * C, sizeof(float) * (size_t)cg);
                }
            }
        }
    }
}

/* See cpu_ops.h. An input coordinate i is read by kernel tap k of output o
 * when o*stride - pad + k == i, i.e. o = (i + pad - k) / stride when that
 * division is exact and 0 <= o < out. */
ICS_CPU_SIMD_CLONES
void cpu_col2im(const ics_conv2d_desc *d, const float *col, int n0, int count, int c0, int cg,
                float *dx)
{
    const int H = d->in_h, W = d->in_w, C = d->in_c, OH = d->out_h, OW = d->out_w;
    const int KH = d->kernel_h, KW = d->kernel_w, SH = d->stride_h, SW = d->stride_w;
    const int PH = d->pad_h, PW = d->pad_w;
    const int64_t K = (int64_t)KH * KW * cg;
    const int64_t jobs = (int64_t)count * H;
    const int parallel = jobs * W * K >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t job = 0; job < jobs; job++) {
        const int nl = (int)(job / H), ih = (int)(job % H);
        const int64_t n = n0 + nl;
        for (int iw = 0; iw < W; iw++) {
            float *out = dx + ((n * H + ih) * W + iw) * C + c0;
            for (int c = 0; c < cg; c++) out[c] = 0.0f;
            for (int kh = 0; kh < KH; kh++) {
                const int th = ih + PH - kh;
                if (th < 0) break; /* larger kh only lowers th */
                if (th % SH) continue;
                const int oh = th / SH;
                if (oh >= OH) continue;
                for (int kw = 0; kw < KW; kw++) {
                    const int tw = iw + PW - kw;
                    if (tw < 0) break;
                    if (tw % SW) continue;
                    const int ow = tw / SW;
                    if (ow >= OW) continue;
                    const float *src =
                        col + (((int64_t)nl * OH + oh) * OW + ow) * K + ((int64_t)kh * KW + kw) * cg;
#pragma omp simd
                    for (int c = 0; c < cg; c++) out[c] += src[c];
                }
            }
        }
    }
}
