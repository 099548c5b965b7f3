/*
 * src/backend/cpu/cpu_backend.c: the CPU op table, the thread setting shared
 * by OpenMP and the BLAS, and the shape helpers of backend.h.
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* The thread count last set (0 = not set: the OpenMP default). Process-wide
 * by nature: OpenMP's and OpenBLAS's own settings are global too. */
static int cpu_threads_set;

/* Output size of a window op along one axis. PyTorch's rule: floor((in +
 * 2*pad - kernel) / stride) + 1, or with ceil_mode the ceiling, except that
 * the last window must start inside the input or the left padding
 * (torch/nn/functional pooling_output_shape). */
static int window_out_size(int in, int kernel, int stride, int pad, int ceil_mode)
{
    int span = in + 2 * pad - kernel;
    if (span < 0) return 0;
    int out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

/* Fills out_h/out_w from PyTorch's Conv2d formula (dilation 1). */
void ics_conv2d_desc_finish(ics_conv2d_desc *d)
{
    d->out_h = window_out_size(d->in_h, d->kernel_h, d->stride_h, d->pad_h, 0);
    d->out_w = window_out_size(d->in_w, d->kernel_w, d->stride_w, d->pad_w, 0);
}

/* Fills out_h/out_w from PyTorch's pooling formula, ceil_mode included. */
void ics_pool2d_desc_finish(ics_pool2d_desc *d)
{
    d->out_h = window_out_size(d->in_h, d->kernel_h, d->stride_h, d->pad_h, d->ceil_mode);
    d->out_w = window_out_size(d->in_w, d->kernel_w, d->stride_w, d->pad_w, d->ceil_mode);
}

/* Sets the threads of the CPU kernels; 0 means every core the process may
 * use. They are OpenMP threads; the BLAS stays single-threaded and is
 * called from inside them (cpu_gemm.c says why). */
void ics_backend_cpu_set_threads(int threads)
{
    int n = threads;
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
#else
    if (n <= 0) n = 1;
#endif
    cpu_blas_single_threaded();
    cpu_threads_set = n;
}

/* The threads the CPU kernels use now. */
int ics_backend_cpu_threads(void)
{
    if (cpu_threads_set > 0) return cpu_threads_set;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static const ics_backend_ops cpu_ops = {
    .name = "cpu",
    .conv2d_workspace_bytes = cpu_conv2d_workspace_bytes,
    .conv2d_forward = cpu_conv2d_forward,
    .conv2d_forward_fused = cpu_conv2d_forward_fused,
    .conv2d_backward = cpu_conv2d_backward,
    .batchnorm_forward_train = cpu_batchnorm_forward_train,
    .batchnorm_forward_eval = cpu_batchnorm_forward_eval,
    .batchnorm_backward = cpu_batchnorm_backward,
    .batchnorm_channel_sums = cpu_batchnorm_channel_sums,
    .batchnorm_backward_apply = cpu_batchnorm_backward_apply,
    .relu_forward = cpu_relu_forward,
    .relu_backward = cpu_relu_backward,
    .relu6_forward = cpu_relu6_forward,
    .relu6_backward = cpu_relu6_backward,
    .add_forward = cpu_add_forward,
    .accumulate = cpu_accumulate,
    .dropout_forward = cpu_dropout_forward,
    .dropout_backward = cpu_dropout_backward,
    .maxpool2d_forward = cpu_maxpool2d_forward,
    .maxpool2d_backward = cpu_maxpool2d_backward,
    .avgpool2d_forward = cpu_avgpool2d_forward,
    .avgpool2d_backward = cpu_avgpool2d_backward,
    .adaptive_avgpool2d_forward = cpu_adaptive_avgpool2d_forward,
    .adaptive_avgpool2d_backward = cpu_adaptive_avgpool2d_backward,
    .flatten_forward = cpu_flatten_forward,
    .flatten_backward = cpu_flatten_backward,
    .linear_forward = cpu_linear_forward,
    .linear_forward_fused = cpu_linear_forward_fused,
    .linear_backward = cpu_linear_backward,
    .softmax_xent_forward = cpu_softmax_xent_forward,
    .softmax_xent_backward = cpu_softmax_xent_backward,
};

/* The CPU op table: always present, stateless, shared by every caller.
 * Handing it out also puts the BLAS in single-threaded mode, since the
 * kernels parallelise GEMMs themselves. */
const ics_backend_ops *ics_backend_cpu(void)
{
    cpu_blas_single_threaded();
    return &cpu_ops;
}

/* No CUDA op table exists yet, so this answers NULL in every build. It lives
 * here only until src/backend/cuda/ grows a table; that work moves this
 * definition there (behind HAVE_CUDA) and keeps a NULL twin for builds
 * without CUDA. */
const ics_backend_ops *ics_backend_cuda(void) { return NULL; }
