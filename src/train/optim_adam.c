/*
 * src/train/optim_adam.c: one Adam or AdamW step over one parameter, in the
 * order of torch.optim.Adam / AdamW (_single_tensor_adam[w], amsgrad off):
 *   AdamW only: p = p * (1 - lr*wd)       (decoupled decay, Loshchilov & Hutter)
 *   Adam only:  g = grad + wd*p           (L2 penalty coupled into g)
 *   m = beta1*m + (1-beta1)*g
 *   v = beta2*v + (1-beta2)*g*g
 *   step_size = lr / (1 - beta1^t)        (bias corrections in double,
 *   denom = sqrt(v) / sqrt(1 - beta2^t) + eps   like torch's Python floats)
 *   p = p - step_size * m / denom
 * eps is added after dividing by the bias correction: that is torch's
 * placement (the paper's eps-hat differs by the factor sqrt(1-beta2^t)).
 */
#include "ics_build_config.h"
#include "train/optim_internal.h"

#include <math.h>

void ics_optim_adam_update(const ics_optim *opt, size_t index, int64_t step)
{
    const ics_param_view *pv = &opt->params[index];
    const ics_optim_group *grp = &opt->groups[pv->group];
    const double lr = opt->hp.lr * grp->lr_scale;
    const int decoupled = opt->hp.kind == ICS_OPTIM_ADAMW;
    const float wd = (float)grp->weight_decay;
    const float decay_factor = (float)(1.0 - lr * grp->weight_decay);
    const float beta1 = (float)opt->hp.beta1, beta2 = (float)opt->hp.beta2;
    const float one_minus_beta1 = (float)(1.0 - opt->hp.beta1);
    const float one_minus_beta2 = (float)(1.0 - opt->hp.beta2);
    const double bias_correction1 = 1.0 - pow(opt->hp.beta1, (double)step);
    const double bias_correction2 = 1.0 - pow(opt->hp.beta2, (double)step);
    const float neg_step_size = (float)(-(lr / bias_correction1));
    const float bc2_sqrt = (float)sqrt(bias_correction2);
    const float eps = (float)opt->hp.eps;
    float *restrict p = pv->data;
    const float *restrict grad = pv->grad;
    float *restrict m = opt->slots[0] + opt->offsets[index];
    float *restrict v = opt->slots[1] + opt->offsets[index];
    const size_t n = pv->numel;

#pragma omp parallel for schedule(static) if (n >= ICS_OPTIM_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        float w = p[i];
        if (decoupled) {
            if (wd != 0.0f) w = w * decay_factor;
        } else if (wd != 0.0f) {
            g = g + wd * w;
        }
        float mi = m[i] * beta1 + one_minus_beta1 * g;
        float vi = v[i] * beta2 + one_minus_beta2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = w + neg_step_size * (mi / denom);
    }
}
