/*
 * src/backend/backend.h: the op table, the one interface between the
 * training engine and a device. The CPU table (src/backend/cpu) and the CUDA
 * table (src/backend/cuda) implement the same entries, so nothing above this
 * layer branches on the device.
 *
 * Layout contract (why: docs/DESIGN-ENGINE.md):
 *  - activations are float32 NHWC ("channels last"): element (n, h, w, c) of
 *    an [N, H, W, C] tensor is at ((n*H + h)*W + w)*C + c. A flat feature
 *    vector is NHWC with H = W = 1.
 *  - parameters keep PyTorch's layout so checkpoints map one-to-one:
 *    conv weight [C_out, C_in/groups, KH, KW] (OIHW), linear weight
 *    [out, in], BN gamma/beta/running stats [C].
 *  - gradients of parameters ACCUMULATE (+=) into the given buffers (so
 *    gradient accumulation and shared parameters need nothing special);
 *    gradients of activations (dx) are OVERWRITTEN (=); the graph sums
 *    fan-out itself. A NULL dx means "not needed" (the first layer).
 *  - every op is deterministic for a given thread count.
 * Buffers never alias unless an entry says in-place is allowed.
 */
#ifndef ICS_BACKEND_BACKEND_H
#define ICS_BACKEND_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct ics_conv2d_desc {
    int batch;
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_h, pad_w; /* symmetric zero padding, as torch.nn.Conv2d(padding=p) */
    int groups;       /* 1, in_c (depthwise), or any divisor of in_c and out_c */
} ics_conv2d_desc;

/* Fills out_h/out_w from the rest (PyTorch's floor formula, dilation 1). */
void ics_conv2d_desc_finish(ics_conv2d_desc *d);

/* What a fused forward kernel applies to its output where it writes it
 * (inference fusion, docs/DESIGN-ENGINE.md): an evaluation-mode BatchNorm
 * over the output channels, when bn_gamma is set, with exactly
 * batchnorm_forward_eval's arithmetic (on the output including its bias),
 * then an activation with exactly relu_forward's or relu6_forward's (NaN
 * kept). The statistics are read at the call, so the caller passes the
 * BN's current ones. */
typedef enum ics_activation {
    ICS_ACT_NONE = 0,
    ICS_ACT_RELU,  /* max(x, 0) */
    ICS_ACT_RELU6  /* min(max(x, 0), 6) */
} ics_activation;

typedef struct ics_epilogue {
    const float *bn_gamma, *bn_beta;     /* NULL bn_gamma: no BN (beta may be NULL: 0) */
    const float *bn_mean, *bn_var;       /* running statistics */
    float bn_eps;
    ics_activation act;
} ics_epilogue;

typedef struct ics_pool2d_desc {
    int batch, in_h, in_w, channels;
    int out_h, out_w;
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int ceil_mode;         /* torch's ceil_mode */
    int count_include_pad; /* avg pool only; torch's default is 1 */
} ics_pool2d_desc;

/* Fills out_h/out_w (PyTorch's formula, including ceil_mode's rule that the
 * last window must start inside the input or left padding). */
void ics_pool2d_desc_finish(ics_pool2d_desc *d);

typedef struct ics_backend_ops {
    const char *name; /* "cpu", "cuda" */

    /* ---- conv2d: y = conv(x, weight) + bias ---------------------------- */
    /* Scratch bytes the conv needs (im2col buffers...), for the planner. */
    size_t (*conv2d_workspace_bytes)(const ics_conv2d_desc *d);
    /* bias may be NULL. */
    void (*conv2d_forward)(const ics_conv2d_desc *d, const float *x, const float *weight,
                           const float *bias, float *y, void *workspace);
    /* conv2d_forward with an epilogue (ics_epilogue above; NULL = none):
     * y = act(BN_eval(conv(x, weight) + bias)), the BN and activation
     * applied where the kernel writes y (no extra pass over it); same
     * workspace as conv2d_forward. Equal to conv2d_forward followed by
     * batchnorm_forward_eval and relu/relu6_forward, except that a kernel
     * may split a GEMM differently (the CPU's pointwise path works in
     * cache-sized row blocks), which changes the last bits of a sum and
     * never more. May be NULL in a table without fused kernels: callers
     * then run those three ops, in place on y. */
    void (*conv2d_forward_fused)(const ics_conv2d_desc *d, const float *x, const float *weight,
                                 const float *bias, const ics_epilogue *ep, float *y,
                                 void *workspace);
    /* dx may be NULL (overwritten otherwise); dweight += ; dbias += (may be NULL). */
    void (*conv2d_backward)(const ics_conv2d_desc *d, const float *x, const float *weight,
                            const float *dy, float *dx, float *dweight, float *dbias,
                            void *workspace);

    /* ---- batchnorm2d over rows = N*H*W of C channels --------------------- */
    /* Training: normalizes with the batch mean and biased variance; updates
     * running_mean/var with momentum as PyTorch does (running_var takes the
     * UNBIASED batch variance): r = (1-momentum)*r + momentum*batch_stat.
     * Saves mean and 1/sqrt(var+eps) for backward. */
    void (*batchnorm_forward_train)(int64_t rows, int channels, const float *x, const float *gamma,
                                    const float *beta, float *running_mean, float *running_var,
                                    float momentum, float eps, float *y, float *save_mean,
                                    float *save_invstd);
    /* Evaluation: normalizes with the running statistics (y may alias x). */
    void (*batchnorm_forward_eval)(int64_t rows, int channels, const float *x, const float *gamma,
                                   const float *beta, const float *running_mean,
                                   const float *running_var, float eps, float *y);
    /* dx =; dgamma +=; dbeta +=. */
    void (*batchnorm_backward)(int64_t rows, int channels, const float *x, const float *dy,
                               const float *gamma, const float *save_mean,
                               const float *save_invstd, float *dx, float *dgamma, float *dbeta);

    /* Synchronized BatchNorm (statistics over every rank's rows) in three
     * pieces around the all-reduces: per-channel sums in double, then the
     * normalization with given statistics (batchnorm_forward_eval with the
     * global mean and biased variance), then the backward with given
     * global means of dy and dy*xhat.
     * dy == NULL: sum_a[c] = sum x, sum_b[c] = sum x^2.
     * dy != NULL: sum_a[c] = sum dy, sum_b[c] = sum dy * (x - mean) * invstd. */
    void (*batchnorm_channel_sums)(int64_t rows, int channels, const float *x, const float *dy,
                                   const float *mean, const float *invstd, double *sum_a,
                                   double *sum_b);
    /* dx = gamma * invstd * (dy - mean_dy - xhat * mean_dy_xhat) (dx =). */
    void (*batchnorm_backward_apply)(int64_t rows, int channels, const float *x, const float *dy,
                                     const float *gamma, const float *mean, const float *invstd,
                                     const double *mean_dy, const double *mean_dy_xhat, float *dx);

    /* ---- elementwise (y may alias x for forward; dx may alias dy) -------- */
    void (*relu_forward)(int64_t n, const float *x, float *y);
    /* Uses y (the forward output): dx = dy where y > 0. */
    void (*relu_backward)(int64_t n, const float *y, const float *dy, float *dx);
    void (*relu6_forward)(int64_t n, const float *x, float *y);
    /* Uses y: dx = dy where 0 < y < 6 (PyTorch's hardtanh gradient). */
    void (*relu6_backward)(int64_t n, const float *y, const float *dy, float *dx);
    /* y = a + b (y may alias a or b). */
    void (*add_forward)(int64_t n, const float *a, const float *b, float *y);
    /* y += x. */
    void (*accumulate)(int64_t n, const float *x, float *y);
    /* Dropout with a caller-drawn keep mask (1 keep, 0 drop): y = x*mask/(1-p). */
    void (*dropout_forward)(int64_t n, float p, const float *x, const uint8_t *mask, float *y);
    void (*dropout_backward)(int64_t n, float p, const float *dy, const uint8_t *mask, float *dx);

    /* ---- pooling ------------------------------------------------------- */
    /* argmax (int32, one per output element) records the input index. */
    void (*maxpool2d_forward)(const ics_pool2d_desc *d, const float *x, float *y, int32_t *argmax);
    void (*maxpool2d_backward)(const ics_pool2d_desc *d, const float *dy, const int32_t *argmax,
                               float *dx);
    void (*avgpool2d_forward)(const ics_pool2d_desc *d, const float *x, float *y);
    void (*avgpool2d_backward)(const ics_pool2d_desc *d, const float *dy, float *dx);
    /* torch.nn.AdaptiveAvgPool2d((out_h, out_w)) with PyTorch's start/end
     * index rule: start = floor(i*in/out), end = ceil((i+1)*in/out). */
    void (*adaptive_avgpool2d_forward)(int batch, int in_h, int in_w, int channels, int out_h,
                                       int out_w, const float *x, float *y);
    void (*adaptive_avgpool2d_backward)(int batch, int in_h, int in_w, int channels, int out_h,
                                        int out_w, const float *dy, float *dx);

    /* ---- flatten: NHWC [N,H,W,C] -> [N, C*H*W] in PyTorch's (c, h, w) order,
     * so a linear layer after it uses torchvision's weight as is. ---------- */
    void (*flatten_forward)(int batch, int h, int w, int c, const float *x, float *y);
    void (*flatten_backward)(int batch, int h, int w, int c, const float *dy, float *dx);

    /* ---- linear: y[N,out] = x[N,in] * W^T + b ------------------------- */
    void (*linear_forward)(int batch, int in_features, int out_features, const float *x,
                           const float *weight, const float *bias, float *y);
    /* linear_forward with an epilogue (BN over out_features, activation):
     * the same values as linear_forward followed by the epilogue's ops. May
     * be NULL (callers fall back as for conv2d_forward_fused). */
    void (*linear_forward_fused)(int batch, int in_features, int out_features, const float *x,
                                 const float *weight, const float *bias, const ics_epilogue *ep,
                                 float *y);
    /* dx may be NULL; dweight +=; dbias += (may be NULL). */
    void (*linear_backward)(int batch, int in_features, int out_features, const float *x,
                            const float *weight, const float *dy, float *dx, float *dweight,
                            float *dbias);

    /* ---- loss: mean softmax cross-entropy with label smoothing ----------
     * loss = mean_n [ (1-ls) * -log p[n, y_n] + ls * mean_k -log p[n, k] ]
     * (torch.nn.functional.cross_entropy(label_smoothing=ls)). probs (N x K)
     * is saved for backward. Returns the mean loss. */
    float (*softmax_xent_forward)(int batch, int classes, const float *logits,
                                  const int32_t *labels, float label_smoothing, float *probs);
    /* dlogits = scale * d(mean loss)/dlogits (scale = 1/K for accumulation). */
    void (*softmax_xent_backward)(int batch, int classes, const float *probs,
                                  const int32_t *labels, float label_smoothing, float scale,
                                  float *dlogits);
} ics_backend_ops;

/* The CPU op table (always present). */
const ics_backend_ops *ics_backend_cpu(void);
/* The CUDA op table, or NULL when built without CUDA or no device exists. */
const ics_backend_ops *ics_backend_cuda(void);

/* Threads used by the CPU kernels (OpenMP and the BLAS). 0 = all cores. */
void ics_backend_cpu_set_threads(int threads);
int ics_backend_cpu_threads(void);

#endif
