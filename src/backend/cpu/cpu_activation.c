/*
 * src/backend/cpu/cpu_activation.c: ReLU and ReLU6, forward and backward.
 * Forward may run in place (y == x) and backward too (dx == dy): each
 * element is read before it is written. Backward takes the forward OUTPUT,
 * which is what an in-place forward leaves behind.
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

/* y = max(x, 0). NaN stays NaN, as in torch.relu (x > 0 is false for NaN,
 * so the select below would zero it; the explicit x != x keeps it). */
void cpu_relu_forward(int64_t n, const float *x, float *y)
{
#pragma omp parallel for simd schedule(static) if (n >= ICS_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        y[i] = (v > 0.0f || v != v) ? v : 0.0f;
    }
}

/* dx = dy where y > 0, else 0 (torch's threshold_backward on the output). */
void cpu_relu_backward(int64_t n, const float *y, const float *dy, float *dx)
{
#pragma omp parallel for simd schedule(static) if (n >= ICS_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* y = min(max(x, 0), 6) (torch.nn.ReLU6 = hardtanh(x, 0, 6)); NaN stays NaN. */
void cpu_relu6_forward(int64_t n, const float *x, float *y)
{
#pragma omp parallel for simd schedule(static) if (n >= ICS_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        y[i] = v > 6.0f ? 6.0f : (v > 0.0f || v != v) ? v : 0.0f;
    }
}

/* dx = dy where 0 < y < 6: hardtanh's gradient is zero at and beyond both
 * limits (torch's hardtanh_backward uses strict inequalities). */
void cpu_relu6_backward(int64_t n, const float *y, const float *dy, float *dx)
{
#pragma omp parallel for simd schedule(static) if (n >= ICS_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] = (y[i] > 0.0f && y[i] < 6.0f) ? dy[i] : 0.0f;
}
