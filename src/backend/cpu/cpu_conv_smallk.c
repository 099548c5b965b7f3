/*
 * src/backend/cpu/cpu_conv_smallk.c: direct conv2d for a tiny reduction
 * size K = in_c*KH*KW (the first layer on gray or RGB images: K = 9 or 27).
 *
 * Why: with K ~ 9 an im2col GEMM does ~2 flops per byte it moves and the
 * im2col itself copies one or three floats per call. Directly, every
 * output pixel is a sum of K rank-1 updates over the output channels,
 * out[:] += x_tap * w[tap][:], with the weight transposed once to [K][Cout]
 * so the channel loop is contiguous (SIMD) and the accumulator row stays in
 * registers/L1. Backward: dW[tap][:] += x_tap * dy[p][:] summed per shape
 * slice (deterministic, as everywhere), dx as a gather of dot products.
 *
 * Workspace: the transposed weight, then ICS_CPU_REDUCE_SLICES partial
 * weight gradients, K*Cout floats each.
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#include <string.h>

/* See cpu_ops.h. */
int cpu_conv_smallk_applies(const ics_conv2d_desc *d)
{
    return d->groups == 1 && d->in_c * d->kernel_h * d->kernel_w <= ICS_CPU_SMALLK_MAX;
}

static int64_t weight_size(const ics_conv2d_desc *d)
{
    return (int64_t)d->out_c * d->in_c * d->kernel_h * d->kernel_w;
}

/* See cpu_ops.h. */
size_t cpu_conv_smallk_workspace_bytes(const ics_conv2d_desc *d)
{
    return (size_t)(1 + ICS_CPU_REDUCE_SLICES) * (size_t)weight_size(d) * sizeof(float);
}

/* wt[(kh*KW + kw)*C + c][o] = w[o][c][kh][kw]. */
static void transpose_weight(const ics_conv2d_desc *d, const float *w, float *wt)
{
    const int C = d->in_c, O = d->out_c, khw = d->kernel_h * d->kernel_w;
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < khw; k++)
                wt[((int64_t)k * C + c) * O + o] = w[((int64_t)o * C + c) * khw + k];
}

/* Output channels per register block: 16 floats are two AVX2 registers,
 * so a block's accumulators stay in registers across all K taps. */
#define OUT_BLOCK 16

/* 8 floats as one value (GCC/Clang vector extension): an AVX register in
 * the x86-64-v3 clone, two SSE registers in the baseline one. aligned(4)
 * makes loads and stores through it legal at any float address. Using a
 * vector type rather than a float[16] array is what keeps the accumulators
 * in registers: GCC leaves arrays on the stack. */
typedef float v8f __attribute__((vector_size(32), aligned(4)));

/* One output pixel: out[o] = bias[o] + sum over the ntaps valid taps of
 * x[xoff[t]] * wtap[t][o], 16 channels at a time (two vectors of
 * accumulators carried across all taps). */
__attribute__((always_inline)) static inline void smallk_pixel(int ntaps, const float *x,
                                                               const int64_t *xoff,
                                                               const float *const *wtap, int O,
                                                               const float *bias, float *out)
{
    int o0 = 0;
    for (; o0 + OUT_BLOCK <= O; o0 += OUT_BLOCK) {
        v8f acc0 = {0}, acc1 = {0};
        if (bias) {
            acc0 = *(const v8f *)(bias + o0);
            acc1 = *(const v8f *)(bias + o0 + 8);
        }
        for (int t = 0; t < ntaps; t++) {
            const float v = x[xoff[t]];
            const float *wc = wtap[t] + o0;
            acc0 += v * *(const v8f *)wc;
            acc1 += v * *(const v8f *)(wc + 8);
        }
        *(v8f *)(out + o0) = acc0;
        *(v8f *)(out + o0 + 8) = acc1;
    }
    for (int o = o0; o < O; o++) {
        float acc = bias ? bias[o] : 0.0f;
        for (int t = 0; t < ntaps; t++) acc += x[xoff[t]] * wtap[t][o];
        out[o] = acc;
    }
}

/* See backend.h (conv2d_forward_fused). Interior pixels (every tap inside
 * the image) share one precomputed tap table; border pixels build their
 * own. The epilogue (ep may be NULL) runs over each output row once it is
 * complete (in L1/L2). */
ICS_CPU_SIMD_CLONES
void cpu_conv_smallk_forward(const ics_conv2d_desc *d, const float *x, const float *weight,
                             const float *bias, const cpu_epilogue *ep, float *y, void *workspace)
{
    const int H = d->in_h, W = d->in_w, C = d->in_c, O = d->out_c, OH = d->out_h, OW = d->out_w;
    const int KH = d->kernel_h, KW = d->kernel_w, SH = d->stride_h, SW = d->stride_w;
    const int PH = d->pad_h, PW = d->pad_w;
    float *wt = workspace;
    transpose_weight(d, weight, wt);
    /* The full tap table, x offsets relative to the window's top-left. */
    int64_t full_off[ICS_CPU_SMALLK_MAX];
    const float *full_w[ICS_CPU_SMALLK_MAX];
    int nfull = 0;
    for (int kh = 0; kh < KH; kh++)
        for (int kw = 0; kw < KW; kw++)
            for (int c = 0; c < C; c++, nfull++) {
                full_off[nfull] = ((int64_t)kh * W + kw) * C + c;
                full_w[nfull] = wt + (((int64_t)kh * KW + kw) * C + c) * O;
            }
    const int64_t jobs = (int64_t)d->batch * OH;
    const int parallel = jobs * OW * O >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t job = 0; job < jobs; job++) {
        const int64_t n = job / OH;
        const int oh = (int)(job % OH);
        const int ih0 = oh * SH - PH;
        const int rows_inside = ih0 >= 0 && ih0 + KH <= H;
        const float *ximg = x + n * H * W * C;
        int64_t off[ICS_CPU_SMALLK_MAX];
        const float *wtap[ICS_CPU_SMALLK_MAX];
        for (int ow = 0; ow < OW; ow++) {
            const int iw0 = ow * SW - PW;
            float *out = y + (job * OW + ow) * O;
            if (rows_inside && iw0 >= 0 && iw0 + KW <= W) {
                smallk_pixel(nfull, ximg + ((int64_t)ih0 * W + iw0) * C, full_off, full_w, O, bias,
                             out);
                continue;
            }
            int ntaps = 0;
            for (int kh = 0; kh < KH; kh++) {
                const int ih = ih0 + kh;
                if (ih < 0 || ih >= H) continue;
                for (int kw = 0; kw < KW; kw++) {
                    const int iw = iw0 + kw;
                    if (iw < 0 || iw >= W) continue;
                    for (int c = 0; c < C; c++, ntaps++) {
                        off[ntaps] = ((int64_t)ih * W + iw) * C + c;
                        wtap[ntaps] = wt + (((int64_t)kh * KW + kw) * C + c) * O;
                    }
                }
            }
            smallk_pixel(ntaps, ximg, off, wtap, O, bias, out);
        }
        cpu_apply_epilogue(ep, OW, O, y + job * OW * O);
    }
}

/* dweight[o][c][kh][kw] += sum over output pixels of dy[p][o] * x_tap(p). */
ICS_CPU_SIMD_CLONES
static void smallk_backward_weight(const ics_conv2d_desc *d, const float *x, const float *dy,
                                   float *dweight, float *partials)
{
    const int H = d->in_h, W = d->in_w, C = d->in_c, O = d->out_c, OH = d->out_h, OW = d->out_w;
    const int KH = d->kernel_h, KW = d->kernel_w;
    const int64_t wsize = weight_size(d);
    const int64_t jobs = (int64_t)d->batch * OH;
    const int slices = jobs < ICS_CPU_REDUCE_SLICES ? (int)jobs : ICS_CPU_REDUCE_SLICES;
    const int parallel = jobs * OW * O >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int s = 0; s < slices; s++) {
        float *part = partials + (int64_t)s * wsize;
        memset(part, 0, sizeof(float) * (size_t)wsize);
        for (int64_t job = jobs * s / slices; job < jobs * (s + 1) / slices; job++) {
            const int64_t n = job / OH;
            const int oh = (int)(job % OH);
            for (int ow = 0; ow < OW; ow++) {
                const float *g = dy + (job * OW + ow) * O;
                for (int kh = 0; kh < KH; kh++) {
                    const int ih = oh * d->stride_h - d->pad_h + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (int kw = 0; kw < KW; kw++) {
                        const int iw = ow * d->stride_w - d->pad_w + kw;
                        if (iw < 0 || iw >= W) continue;
                        const float *xs = x + ((n * H + ih) * W + iw) * C;
                        float *pk = part + ((int64_t)kh * KW + kw) * C * O;
                        for (int c = 0; c < C; c++) {
                            const float v = xs[c];
                            float *pc = pk + (int64_t)c * O;
#pragma omp simd
                            for (int o = 0; o < O; o++) pc[o] += v * g[o];
                        }
                    }
                }
            }
        }
    }
    const int khw = KH * KW;
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < khw; k++) {
                const int64_t t = ((int64_t)k * C + c) * O + o;
                float sum = 0.0f;
                for (int s = 0; s < slices; s++) sum += partials[(int64_t)s * wsize + t];
                dweight[((int64_t)o * C + c) * khw + k] += sum;
            }
}

/* dx[n, ih, iw, c] = sum over the taps that read it of dot(dy[p][:], w[:][c][tap]). */
ICS_CPU_SIMD_CLONES
static void smallk_backward_data(const ics_conv2d_desc *d, const float *wt, const float *dy,
                                 float *dx)
{
    const int H = d->in_h, W = d->in_w, C = d->in_c, O = d->out_c, OH = d->out_h, OW = d->out_w;
    const int KH = d->kernel_h, KW = d->kernel_w, SH = d->stride_h, SW = d->stride_w;
    const int64_t jobs = (int64_t)d->batch * H;
    const int parallel = jobs * W * O >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t job = 0; job < jobs; job++) {
        const int64_t n = job / H;
        const int ih = (int)(job % H);
        for (int iw = 0; iw < W; iw++) {
            float *out = dx + (job * W + iw) * C;
            for (int c = 0; c < C; c++) out[c] = 0.0f;
            for (int kh = 0; kh < KH; kh++) {
                const int th = ih + d->pad_h - kh;
                if (th < 0) break;
                if (th % SH) continue;
                const int oh = th / SH;
                if (oh >= OH) continue;
                for (int kw = 0; kw < KW; kw++) {
                    const int tw = iw + d->pad_w - kw;
                    if (tw < 0) break;
                    if (tw % SW) continue;
                    const int ow = tw / SW;
                    if (ow >= OW) continue;
                    const float *g = dy + ((n * OH + oh) * OW + ow) * O;
                    const float *wk = wt + ((int64_t)kh * KW + kw) * C * O;
                    for (int c = 0; c < C; c++) {
                        const float *wc = wk + (int64_t)c * O;
                        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                        for (int o = 0; o < O; o++) acc += g[o] * wc[o];
                        out[c] += acc;
                    }
                }
            }
        }
    }
}

/* See backend.h (conv2d_backward). */
void cpu_conv_smallk_backward(const ics_conv2d_desc *d, const float *x, const float *weight,
                              const float *dy, float *dx, float *dweight, float *dbias,
                              void *workspace)
{
    float *wt = workspace;
    float *partials = wt + weight_size(d);
    const int64_t out_rows = (int64_t)d->batch * d->out_h * d->out_w;
    if (dbias && out_rows > 0) {
        double sums[d->out_c];
        cpu_channel_sums(out_rows, d->out_c, dy, NULL, NULL, sums, NULL);
        for (int o = 0; o < d->out_c; o++) dbias[o] += (float)sums[o];
    }
    if (dweight && out_rows > 0) smallk_backward_weight(d, x, dy, dweight, partials);
    if (dx) {
        transpose_weight(d, weight, wt);
        smallk_backward_data(d, wt, dy, dx);
    }
}
