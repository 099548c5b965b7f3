/*
 * src/backend/cpu/cpu_elementwise.c: residual add, gradient accumulation,
 * dropout with a given mask, and flatten (the NHWC -> PyTorch (c, h, w)
 * feature order). All memory-bound single passes, parallel over elements
 * (or images for flatten).
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#include <string.h>

/* y = a + b; y may alias a or b (elementwise, read before write). */
void cpu_add_forward(int64_t n, const float *a, const float *b, float *y)
{
#pragma omp parallel for simd schedule(static) if (n >= ICS_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* y += x (fan-out gradients, residual backward). */
void cpu_accumulate(int64_t n, const float *x, float *y)
{
#pragma omp parallel for simd schedule(static) if (n >= ICS_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* Inverted dropout as torch.nn.Dropout in training: kept elements are
 * scaled by 1/(1-p) so the expectation is unchanged. p >= 1 drops
 * everything (torch returns zeros there rather than dividing by zero). */
static float dropout_scale(float p) { return p >= 1.0f ? 0.0f : 1.0f / (1.0f - p); }

/* y = x * mask / (1 - p); y may alias x. */
void cpu_dropout_forward(int64_t n, float p, const float *x, const uint8_t *mask, float *y)
{
    const float scale = dropout_scale(p);
#pragma omp parallel for simd schedule(static) if (n >= ICS_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = mask[i] ? x[i] * scale : 0.0f;
}

/* dx = dy * mask / (1 - p); dx may alias dy. */
void cpu_dropout_backward(int64_t n, float p, const float *dy, const uint8_t *mask, float *dx)
{
    const float scale = dropout_scale(p);
#pragma omp parallel for simd schedule(static) if (n >= ICS_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
}

/* Per image, a [HW, C] -> [C, HW] transpose, in tiles so both sides move
 * whole cache lines. transpose_image(rows=HW, cols=C) gives the forward;
 * with rows and cols swapped it is the inverse. */
#define TILE 16
static void transpose_image(int rows, int cols, const float *src, float *dst)
{
    for (int r0 = 0; r0 < rows; r0 += TILE)
        for (int c0 = 0; c0 < cols; c0 += TILE) {
            const int r1 = r0 + TILE < rows ? r0 + TILE : rows;
            const int c1 = c0 + TILE < cols ? c0 + TILE : cols;
            for (int c = c0; c < c1; c++)
                for (int r = r0; r < r1; r++)
                    dst[(int64_t)c * rows + r] = src[(int64_t)r * cols + c];
        }
}

/* y[n, c*H*W + h*W + w] = x[n, h, w, c]: torch.flatten(x, 1) of the NCHW
 * tensor, so a following linear layer uses torchvision's weight as is. With
 * H = W = 1 (after global pooling) both orders agree and it is a copy. */
void cpu_flatten_forward(int batch, int h, int w, int c, const float *x, float *y)
{
    const int hw = h * w;
    const int64_t per_image = (int64_t)hw * c;
    if (hw == 1 || c == 1) {
        if (y != x) memcpy(y, x, sizeof(float) * (size_t)(per_image * batch));
        return;
    }
#pragma omp parallel for schedule(static) if (per_image * batch >= ICS_CPU_PARALLEL_MIN)
    for (int n = 0; n < batch; n++)
        transpose_image(hw, c, x + n * per_image, y + n * per_image);
}

/* The inverse permutation: dx[n, h, w, c] = dy[n, c*H*W + h*W + w]. */
void cpu_flatten_backward(int batch, int h, int w, int c, const float *dy, float *dx)
{
    const int hw = h * w;
    const int64_t per_image = (int64_t)hw * c;
    if (hw == 1 || c == 1) {
        if (dx != dy) memcpy(dx, dy, sizeof(float) * (size_t)(per_image * batch));
        return;
    }
#pragma omp parallel for schedule(static) if (per_image * batch >= ICS_CPU_PARALLEL_MIN)
    for (int n = 0; n < batch; n++)
        transpose_image(c, hw, dy + n * per_image, dx + n * per_image);
}
