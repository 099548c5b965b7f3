/*
 * DistillationModifier's loss (SparseML's knowledge distillation on the
 * logits):
 *   loss = (1-h) * CE(s, y) + h * T^2 * KL(softmax(t/T) || softmax(s/T))
 * averaged over the batch, where CE is torch's cross_entropy with label
 * smoothing ls (target q = (1-ls) onehot(y) + ls/C) and the KL term is
 * torch.nn.functional.kl_div(log_softmax(s/T), softmax(t/T),
 * reduction='batchmean') * T^2. Gradient wrt the student logits, per row:
 *   (1-h) * (softmax(s) - q) + h * T * (softmax(s/T) - softmax(t/T)),
 * divided by the batch (the T^2 factor keeps the soft gradient's scale
 * independent of T, Hinton et al. 2015). Sums run in double.
 */
#include "ics_build_config.h"
#include "sparsify/manager_internal.h"

#include <math.h>

/* log-sum-exp of x[0..n) / t. */
static double logsumexp(const float *x, int n, double t)
{
    double mx = -INFINITY;
    for (int k = 0; k < n; k++)
        if (x[k] / t > mx) mx = x[k] / t;
    double sum = 0;
    for (int k = 0; k < n; k++)
        sum += exp(x[k] / t - mx);
    return mx + log(sum);
}

float mgr_distillation_loss(int batch, int classes, const float *s, const int32_t *labels,
                            const float *t, float label_smoothing, double h, double temp,
                            float scale, float *dlogits, float *probs)
{
    double total = 0;
    double ls = label_smoothing;
    for (int n = 0; n < batch; n++) {
        const float *sr = s + (size_t)n * classes, *tr = t + (size_t)n * classes;
        float *dr = dlogits + (size_t)n * classes, *pr = probs + (size_t)n * classes;
        double lse = logsumexp(sr, classes, 1.0);
        double lse_s = logsumexp(sr, classes, temp);
        double lse_t = logsumexp(tr, classes, temp);
        double ce = 0, kl = 0;
        for (int k = 0; k < classes; k++) {
            double logp = sr[k] - lse;
            double q = (k == labels[n] ? 1.0 - ls : 0.0) + ls / classes;
            ce -= q * logp;
            double logq_s = sr[k] / temp - lse_s; /* student, softened */
            double logp_t = tr[k] / temp - lse_t; /* teacher, softened */
            double p_t = exp(logp_t);
            if (p_t > 0) kl += p_t * (logp_t - logq_s);
            double p = exp(logp);
            pr[k] = (float)p;
            double g = (1.0 - h) * (p - q) + h * temp * (exp(logq_s) - p_t);
            dr[k] = (float)(g / batch * scale);
        }
        total += (1.0 - h) * ce + h * temp * temp * kl;
    }
    return (float)(total / batch);
}
