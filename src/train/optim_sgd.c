/*
 * src/train/optim_sgd.c: one SGD step over one parameter, in the order of
 * torch.optim.SGD (_single_tensor_sgd):
 *   g = grad + wd*p                      (weight decay coupled into g)
 *   buf = g                              (first step: torch clones d_p)
 *   buf = momentum*buf + (1-dampening)*g (later steps)
 *   g = nesterov ? g + momentum*buf : buf
 *   p = p - lr*g
 * Every scalar is rounded to float first, as torch turns a Python float
 * into the tensor's dtype, so the float32 results agree to rounding.
 */
#include "ics_build_config.h"
#include "train/optim_internal.h"

void ics_optim_sgd_update(const ics_optim *opt, size_t index, int64_t step)
{
    const ics_param_view *pv = &opt->params[index];
    const ics_optim_group *grp = &opt->groups[pv->group];
    const float lr = (float)(opt->hp.lr * grp->lr_scale);
    const float wd = (float)grp->weight_decay;
    const float momentum = (float)opt->hp.momentum;
    const float keep = (float)(1.0 - opt->hp.dampening);
    const int nesterov = opt->hp.nesterov;
    /* A zeroed buffer (ics_optim_zero_momentum) is still a buffer: only
     * the very first step starts from g. */
    const int first = step == 1;
    float *restrict p = pv->data;
    const float *restrict grad = pv->grad;
    float *restrict buf = opt->n_slots ? opt->slots[0] + opt->offsets[index] : NULL;
    const size_t n = pv->numel;

    if (!buf) {
#pragma omp parallel for schedule(static) if (n >= ICS_OPTIM_PARALLEL_MIN)
        for (size_t i = 0; i < n; i++) {
            float g = grad[i];
            if (wd != 0.0f) g = g + wd * p[i];
            p[i] = p[i] + (-lr) * g;
        }
        return;
    }
#pragma omp parallel for schedule(static) if (n >= ICS_OPTIM_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        if (wd != 0.0f) g = g + wd * p[i];
        float b = first ? g : buf[i] * momentum + keep * g;
        buf[i] = b;
        g = nesterov ? g + momentum * b : b;
        p[i] = p[i] + (-lr) * g;
    }
}
