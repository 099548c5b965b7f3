/*
 * src/nn/fake_quant.c: fake quantization (QAT). The activation node
 * (uint8 affine per tensor with a moving-average min/max observer) and the
 * per-channel symmetric weight quantizer the QAT conv and linear use.
 *
 * The arithmetic is torch's, so that a QAT model here and there agree bit
 * for bit on the same scales: q = zp + nearbyint(x * (1 / scale)) in
 * float32 (round half to even), clamped to [qmin, qmax], and
 * y = (q - zp) * scale; the gradient passes where q was not clamped.
 */
#include "nn/layer.h"

#include <float.h>
#include <math.h>

#include <icsparse/qat.h>

float ics_fake_quant_value(float x, float scale, int32_t zero_point, int32_t quant_min, int32_t quant_max)
{
    float inv = 1.0f / scale;
    float q = (float)zero_point + nearbyintf(x * inv);
    if (q < (float)quant_min) q = (float)quant_min;
    if (q > (float)quant_max) q = (float)quant_max;
    return (q - (float)zero_point) * scale;
}

void ics_quant_params(float min_val, float max_val, int32_t quant_min, int32_t quant_max, int symmetric,
                      float *scale, int32_t *zero_point)
{
    float lo = min_val < 0.0f ? min_val : 0.0f;
    float hi = max_val > 0.0f ? max_val : 0.0f;
    float s;
    int32_t zp = 0;
    if (symmetric) {
        float amax = -lo > hi ? -lo : hi;
        s = amax / ((float)(quant_max - quant_min) / 2.0f);
        if (!(s > FLT_EPSILON)) s = FLT_EPSILON;
    } else {
        s = (hi - lo) / (float)(quant_max - quant_min);
        if (!(s > FLT_EPSILON)) s = FLT_EPSILON;
        float z = (float)quant_min - nearbyintf(lo / s);
        if (z < (float)quant_min) z = (float)quant_min;
        if (z > (float)quant_max) z = (float)quant_max;
        zp = (int32_t)z;
    }
    *scale = s;
    *zero_point = zp;
}

/* ---- the activation node ------------------------------------------------ */

/* Batch min and max of n values (in parallel). */
static void min_max(int64_t n, const float *x, float *lo, float *hi)
{
    float mn = INFINITY, mx = -INFINITY;
#pragma omp parallel for reduction(min : mn) reduction(max : mx) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
    }
    *lo = mn;
    *hi = mx;
}

void ics_nn_fake_quant_forward(const ics_layer_io *io)
{
    int64_t n = io->batch * ics_node_numel(io->node);
    float *q = io->qstate;
    const ics_qat_ctx *ctx = io->qat;
    if ((io->training || ctx->calibrate) && ctx->observers) {
        float lo, hi;
        min_max(n, io->x[0], &lo, &hi);
        if (q[ICS_AQ_INITIALIZED] == 0.0f) {
            q[ICS_AQ_MIN] = lo;
            q[ICS_AQ_MAX] = hi;
            q[ICS_AQ_INITIALIZED] = 1.0f;
        } else {
            q[ICS_AQ_MIN] = q[ICS_AQ_MIN] + ctx->averaging * (lo - q[ICS_AQ_MIN]);
            q[ICS_AQ_MAX] = q[ICS_AQ_MAX] + ctx->averaging * (hi - q[ICS_AQ_MAX]);
        }
        float scale;
        int32_t zp;
        ics_quant_params(q[ICS_AQ_MIN], q[ICS_AQ_MAX], ctx->act_qmin, ctx->act_qmax, 0, &scale, &zp);
        q[ICS_AQ_SCALE] = scale;
        q[ICS_AQ_ZERO_POINT] = (float)zp;
    }
    const float scale = q[ICS_AQ_SCALE], inv = 1.0f / scale;
    const float zp = q[ICS_AQ_ZERO_POINT];
    const float qmin = (float)ctx->act_qmin, qmax = (float)ctx->act_qmax;
    const float *x = io->x[0];
    float *y = io->y;
    uint8_t *mask = io->training ? io->saved : NULL;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float v = zp + nearbyintf(x[i] * inv);
        if (mask) mask[i] = v >= qmin && v <= qmax;
        v = v < qmin ? qmin : v > qmax ? qmax : v;
        y[i] = (v - zp) * scale;
    }
}

/* The straight-through estimator: dx = dy where the input was in range. */
void ics_nn_fake_quant_backward(const ics_layer_io *io)
{
    int64_t n = io->batch * ics_node_numel(io->node);
    const uint8_t *mask = io->saved;
    const float *dy = io->dy;
    float *dx = io->dx[0];
    if (!dx) return; /* the model input's quantizer */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) dx[i] = mask[i] ? dy[i] : 0.0f;
}

/* Training keeps the pass-through mask, one byte per element. */
size_t ics_nn_fake_quant_saved_bytes(const ics_node *node, const ics_node *in, int batch, int training)
{
    (void)in;
    return training ? (size_t)batch * (size_t)ics_node_numel(node) : 0;
}

/* ---- weights -------------------------------------------------------------- */

void ics_nn_weight_fake_quant(int rows, int64_t cols, const float *w, float *scales, int observe, int32_t qmin,
                              int32_t qmax, float *wq, float *mask)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *wr = w + (int64_t)r * cols;
        if (observe) {
            float lo = INFINITY, hi = -INFINITY;
            for (int64_t k = 0; k < cols; k++) {
                if (wr[k] < lo) lo = wr[k];
                if (wr[k] > hi) hi = wr[k];
            }
            int32_t zp;
            ics_quant_params(lo, hi, qmin, qmax, 1, &scales[r], &zp);
        }
        const float scale = scales[r], inv = 1.0f / scale;
        float *out = wq + (int64_t)r * cols;
        float *m = mask ? mask + (int64_t)r * cols : NULL;
        for (int64_t k = 0; k < cols; k++) {
            float v = nearbyintf(wr[k] * inv);
            if (m) m[k] = v >= (float)qmin && v <= (float)qmax ? 1.0f : 0.0f;
            v = v < (float)qmin ? (float)qmin : v > (float)qmax ? (float)qmax : v;
            out[k] = v * scale;
        }
    }
}
