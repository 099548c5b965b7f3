/*
 * src/backend/cpu/cpu_ops.h: the CPU kernels behind the op table, one family
 * per file (cpu_conv2d.c, cpu_depthwise.c, cpu_batchnorm.c, ...). Only
 * cpu_backend.c puts them in the table; nothing else should call them.
 * Why NHWC, im2col with a (kh, kw, c) K order, and the reduction scheme:
 * docs/DESIGN-ENGINE.md.
 *
 * Determinism: reductions over rows (BN statistics, bias gradients, the
 * depthwise and small-K weight gradients) are split into slices fixed by
 * the shape, never by the thread count, and combined in a fixed order: the
 * same bits for any number of threads. GEMM row blocks (cpu_gemm.c) do not
 * change any element's summation order either. The im2col weight gradient
 * adds one partial per worker in worker order: the same bits for a given
 * thread count, as backend.h promises.
 */
#ifndef ICS_BACKEND_CPU_OPS_H
#define ICS_BACKEND_CPU_OPS_H

#include "backend/backend.h"

#include <stddef.h>
#include <stdint.h>

/* The hot loops are compiled twice, for x86-64-v3 (AVX2, 8 floats per
 * instruction) and the baseline (SSE2, 4), and the loader picks one per
 * machine (GCC's target_clones, an ifunc). -std=c11 keeps floating-point
 * contraction off, so no FMA is formed and elementwise results are the same
 * bits in both clones; only `omp simd reduction` sums may differ by the
 * lane count. Other compilers and CPUs get the plain function. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 12
#define ICS_CPU_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ICS_CPU_SIMD_CLONES
#endif

/* Loops with fewer elements than this run on one thread: the cost of
 * waking the team (a few microseconds) exceeds the work below it. */
#define ICS_CPU_PARALLEL_MIN 32768

/* Row slices of a deterministic column reduction (see cpu_reduce.c). */
#define ICS_CPU_REDUCE_SLICES 16

/* The epilogue of the fused forward kernels (conv2d_forward_fused,
 * linear_forward_fused) with the BN resolved to per-channel coefficients:
 * y = act(y * scale[c] + shift[c]) (no affine when scale is NULL), with
 * exactly cpu_batchnorm_forward_eval's affine pass and cpu_relu_forward's /
 * cpu_relu6_forward's arithmetic (NaN kept). Applied by each kernel to the
 * rows it has just written (still in cache); inlined into the callers'
 * SIMD clones. */
typedef struct cpu_epilogue {
    const float *scale, *shift; /* both NULL or both set */
    ics_activation act;
} cpu_epilogue;

#if defined(__GNUC__)
#define ICS_CPU_ALWAYS_INLINE __attribute__((always_inline))
#else
#define ICS_CPU_ALWAYS_INLINE
#endif
/* rows x channels floats of y (row-major, channels contiguous); ep may be
 * NULL (nothing to do). One pass: v = y*s + t, then the activation on v in
 * a register (the same operations, so the same bits, as the separate
 * ops). */
ICS_CPU_ALWAYS_INLINE static inline void cpu_apply_epilogue(const cpu_epilogue *ep, int64_t rows,
                                                            int channels, float *y)
{
    if (!ep) return;
    const float *s = ep->scale, *t = ep->shift;
    const ics_activation act = ep->act;
    if (s) {
        for (int64_t r = 0; r < rows; r++) {
            float *yr = y + r * channels;
            if (act == ICS_ACT_RELU) {
#pragma omp simd
                for (int c = 0; c < channels; c++) {
                    const float v = yr[c] * s[c] + t[c];
                    yr[c] = (v > 0.0f || v != v) ? v : 0.0f;
                }
            } else if (act == ICS_ACT_RELU6) {
#pragma omp simd
                for (int c = 0; c < channels; c++) {
                    const float v = yr[c] * s[c] + t[c];
                    yr[c] = v > 6.0f ? 6.0f : (v > 0.0f || v != v) ? v : 0.0f;
                }
            } else {
#pragma omp simd
                for (int c = 0; c < channels; c++) yr[c] = yr[c] * s[c] + t[c];
            }
        }
        return;
    }
    const int64_t n = rows * channels;
    if (act == ICS_ACT_RELU) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            const float v = y[i];
            y[i] = (v > 0.0f || v != v) ? v : 0.0f;
        }
    } else if (act == ICS_ACT_RELU6) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            const float v = y[i];
            y[i] = v > 6.0f ? 6.0f : (v > 0.0f || v != v) ? v : 0.0f;
        }
    }
}

/* The same as an out-of-line function compiled in the SIMD clones, for
 * callers that are not clones themselves (the GEMM paths). */
void cpu_epilogue_rows(const cpu_epilogue *ep, int64_t rows, int channels, float *y);

/* Resolves an ics_epilogue for `channels` outputs into out, the BN's
 * coefficients written to scale/shift (room for `channels` each): the
 * same floats cpu_batchnorm_forward_eval computes. NULL when ep is NULL or
 * does nothing. */
const cpu_epilogue *cpu_epilogue_resolve(const ics_epilogue *ep, int channels, float *scale,
                                         float *shift, cpu_epilogue *out);

/* ---- cpu_gemm.c -------------------------------------------------------- */
/* Worker slots that per-thread scratch is planned for: the machine's
 * processors, fixed for the process, so the planner and the kernels agree
 * however the thread setting changes in between. */
int cpu_worker_slots(void);
/* Threads a kernel may use now: the OpenMP setting, at most the slots. */
int cpu_worker_count(void);
/* Makes OpenBLAS run each call on the calling thread (see cpu_gemm.c). */
void cpu_blas_single_threaded(void);
/* Row-major C = alpha*op(A)*op(B) + beta*C, with the rows of C split into
 * one block per thread, each a single-threaded BLAS call. */
void cpu_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

/* ---- cpu_reduce.c ------------------------------------------------------ */
/* For a rows x channels row-major matrix a (and optionally b): sum_a[c] =
 * sum_r a[r,c]; if sum_ab is not NULL, sum_ab[c] = sum_r a[r,c] * (b[r,c] -
 * shift[c]) (shift may be NULL = 0). Accumulates in double, deterministic
 * for any thread count. Overwrites sum_a and sum_ab. */
void cpu_channel_sums(int64_t rows, int channels, const float *a, const float *b,
                      const float *shift, double *sum_a, double *sum_ab);

/* ---- cpu_conv2d.c (dispatch, GEMM and im2col paths) ------------------- */
size_t cpu_conv2d_workspace_bytes(const ics_conv2d_desc *d);
void cpu_conv2d_forward(const ics_conv2d_desc *d, const float *x, const float *weight,
                        const float *bias, float *y, void *workspace);
void cpu_conv2d_forward_fused(const ics_conv2d_desc *d, const float *x, const float *weight,
                              const float *bias, const ics_epilogue *ep, float *y, void *workspace);
void cpu_conv2d_backward(const ics_conv2d_desc *d, const float *x, const float *weight,
                         const float *dy, float *dx, float *dweight, float *dbias,
                         void *workspace);
/* Test hook: caps the im2col matrix of one batch chunk at `bytes` (0 = the
 * default, 4 MiB), so tests can walk the multi-chunk path with small
 * shapes. Call it before planning: conv2d_workspace_bytes depends on it. */
void cpu_conv2d_set_chunk_bytes(size_t bytes);

/* ---- cpu_im2col.c ------------------------------------------------------ */
/* Gathers images [n0, n0+count) of x (NHWC, in_c channels) into col, one
 * row per output pixel and K = kernel_h*kernel_w*cg columns ordered (kh, kw,
 * c) where c runs over the cg channels starting at c0 (one group). Padding
 * reads as zero. */
void cpu_im2col(const ics_conv2d_desc *d, const float *x, int n0, int count, int c0, int cg,
                float *col);
/* The adjoint of cpu_im2col: dx[n, ih, iw, c0 + c] = the sum of every col
 * entry that cpu_im2col would have copied from there (channels outside the
 * group untouched; pixels that no window reads are set to zero). */
void cpu_col2im(const ics_conv2d_desc *d, const float *col, int n0, int count, int c0, int cg,
                float *dx);

/* ---- cpu_conv_smallk.c ------------------------------------------------ */
/* Direct conv for groups == 1 and K = in_c*KH*KW <= ICS_CPU_SMALLK_MAX (the
 * first layer): below that size a GEMM is bound by memory, not flops. */
#define ICS_CPU_SMALLK_MAX 32
int cpu_conv_smallk_applies(const ics_conv2d_desc *d);
size_t cpu_conv_smallk_workspace_bytes(const ics_conv2d_desc *d);
void cpu_conv_smallk_forward(const ics_conv2d_desc *d, const float *x, const float *weight,
                             const float *bias, const cpu_epilogue *ep, float *y, void *workspace);
void cpu_conv_smallk_backward(const ics_conv2d_desc *d, const float *x, const float *weight,
                              const float *dy, float *dx, float *dweight, float *dbias,
                              void *workspace);

/* ---- cpu_depthwise.c --------------------------------------------------- */
/* groups == in_c == out_c; workspace from cpu_depthwise_workspace_bytes. */
size_t cpu_depthwise_workspace_bytes(const ics_conv2d_desc *d);
void cpu_depthwise_forward(const ics_conv2d_desc *d, const float *x, const float *weight,
                           const float *bias, const cpu_epilogue *ep, float *y, void *workspace);
void cpu_depthwise_backward(const ics_conv2d_desc *d, const float *x, const float *weight,
                            const float *dy, float *dx, float *dweight, float *dbias,
                            void *workspace);

/* ---- cpu_batchnorm_sync.c ---------------------------------------------- */
void cpu_batchnorm_channel_sums(int64_t rows, int channels, const float *x, const float *dy,
                                const float *mean, const float *invstd, double *sum_a, double *sum_b);
void cpu_batchnorm_backward_apply(int64_t rows, int channels, const float *x, const float *dy,
                                  const float *gamma, const float *mean, const float *invstd,
                                  const double *mean_dy, const double *mean_dy_xhat, float *dx);

/* ---- cpu_batchnorm.c --------------------------------------------------- */
void cpu_batchnorm_forward_train(int64_t rows, int channels, const float *x, const float *gamma,
                                 const float *beta, float *running_mean, float *running_var,
                                 float momentum, float eps, float *y, float *save_mean,
                                 float *save_invstd);
void cpu_batchnorm_forward_eval(int64_t rows, int channels, const float *x, const float *gamma,
                                const float *beta, const float *running_mean,
                                const float *running_var, float eps, float *y);
void cpu_batchnorm_backward(int64_t rows, int channels, const float *x, const float *dy,
                            const float *gamma, const float *save_mean, const float *save_invstd,
                            float *dx, float *dgamma, float *dbeta);

/* ---- cpu_activation.c -------------------------------------------------- */
void cpu_relu_forward(int64_t n, const float *x, float *y);
void cpu_relu_backward(int64_t n, const float *y, const float *dy, float *dx);
void cpu_relu6_forward(int64_t n, const float *x, float *y);
void cpu_relu6_backward(int64_t n, const float *y, const float *dy, float *dx);

/* ---- cpu_elementwise.c ------------------------------------------------- */
void cpu_add_forward(int64_t n, const float *a, const float *b, float *y);
void cpu_accumulate(int64_t n, const float *x, float *y);
void cpu_dropout_forward(int64_t n, float p, const float *x, const uint8_t *mask, float *y);
void cpu_dropout_backward(int64_t n, float p, const float *dy, const uint8_t *mask, float *dx);
void cpu_flatten_forward(int batch, int h, int w, int c, const float *x, float *y);
void cpu_flatten_backward(int batch, int h, int w, int c, const float *dy, float *dx);

/* ---- cpu_pool.c -------------------------------------------------------- */
void cpu_maxpool2d_forward(const ics_pool2d_desc *d, const float *x, float *y, int32_t *argmax);
void cpu_maxpool2d_backward(const ics_pool2d_desc *d, const float *dy, const int32_t *argmax,
                            float *dx);
void cpu_avgpool2d_forward(const ics_pool2d_desc *d, const float *x, float *y);
void cpu_avgpool2d_backward(const ics_pool2d_desc *d, const float *dy, float *dx);

/* ---- cpu_adaptive_pool.c ----------------------------------------------- */
void cpu_adaptive_avgpool2d_forward(int batch, int in_h, int in_w, int channels, int out_h,
                                    int out_w, const float *x, float *y);
void cpu_adaptive_avgpool2d_backward(int batch, int in_h, int in_w, int channels, int out_h,
                                     int out_w, const float *dy, float *dx);

/* ---- cpu_linear.c ------------------------------------------------------ */
void cpu_linear_forward(int batch, int in_features, int out_features, const float *x,
                        const float *weight, const float *bias, float *y);
void cpu_linear_forward_fused(int batch, int in_features, int out_features, const float *x,
                              const float *weight, const float *bias, const ics_epilogue *ep,
                              float *y);
void cpu_linear_backward(int batch, int in_features, int out_features, const float *x,
                         const float *weight, const float *dy, float *dx, float *dweight,
                         float *dbias);

/* ---- cpu_softmax_xent.c ------------------------------------------------ */
float cpu_softmax_xent_forward(int batch, int classes, const float *logits, const int32_t *labels,
                               float label_smoothing, float *probs);
void cpu_softmax_xent_backward(int batch, int classes, const float *probs, const int32_t *labels,
                               float label_smoothing, float scale, float *dlogits);

#endif
