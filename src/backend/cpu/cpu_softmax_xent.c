/*
 * src/backend/cpu/cpu_softmax_xent.c: mean softmax cross-entropy with label
 * smoothing, as torch.nn.functional.cross_entropy(logits, labels,
 * label_smoothing=ls):
 *   loss_n = (1 - ls) * (lse_n - z[n, y_n]) + ls * mean_k (lse_n - z[n, k])
 * with lse_n = log sum_k exp z[n, k], computed after subtracting the row max
 * so exp never overflows. Its gradient w.r.t. z[n, k] is
 *   (p[n, k] - (1 - ls) * [k == y_n] - ls / K) / N.
 *
 * Labels must lie in [0, classes): the data reader validates them. A label
 * outside that range cannot be reported through this void/float interface,
 * so it poisons the loss with NaN (the trainer's finiteness check stops the
 * run) and its row's gradient is zero instead of reading out of bounds.
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#include <math.h>

/* See backend.h. Row losses are summed in double in row order, so the
 * returned mean does not depend on the thread count. */
float cpu_softmax_xent_forward(int batch, int classes, const float *logits, const int32_t *labels,
                               float label_smoothing, float *probs)
{
    if (batch <= 0 || classes <= 0) return 0.0f;
    double total = 0.0;
    int bad_label = 0;
    for (int n = 0; n < batch; n++) {
        const float *z = logits + (int64_t)n * classes;
        float *p = probs + (int64_t)n * classes;
        float zmax = z[0];
        for (int k = 1; k < classes; k++)
            if (z[k] > zmax) zmax = z[k];
        double sum_exp = 0.0, sum_z = 0.0;
        for (int k = 0; k < classes; k++) {
            const float e = expf(z[k] - zmax);
            p[k] = e;
            sum_exp += e;
            sum_z += z[k];
        }
        const double lse = zmax + log(sum_exp);
        const float inv = (float)(1.0 / sum_exp);
        for (int k = 0; k < classes; k++) p[k] *= inv;
        const int32_t y = labels[n];
        if (y < 0 || y >= classes) {
            bad_label = 1;
            continue;
        }
        const double nll = lse - z[y];
        const double smooth = lse - sum_z / classes;
        total += (1.0 - label_smoothing) * nll + label_smoothing * smooth;
    }
    return bad_label ? NAN : (float)(total / batch);
}

/* See backend.h: dlogits = scale * (p - (1-ls)*onehot - ls/K) / N. */
void cpu_softmax_xent_backward(int batch, int classes, const float *probs, const int32_t *labels,
                               float label_smoothing, float scale, float *dlogits)
{
    if (batch <= 0 || classes <= 0) return;
    const float f = scale / (float)batch;
    const float uniform = label_smoothing / (float)classes;
    for (int n = 0; n < batch; n++) {
        const float *p = probs + (int64_t)n * classes;
        float *g = dlogits + (int64_t)n * classes;
        const int32_t y = labels[n];
        if (y < 0 || y >= classes) {
            for (int k = 0; k < classes; k++) g[k] = 0.0f;
            continue;
        }
        for (int k = 0; k < classes; k++) g[k] = (p[k] - uniform) * f;
        g[y] -= (1.0f - label_smoothing) * f;
    }
}
