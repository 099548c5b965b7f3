/*
 * src/train/optim_clip.c: gradient clipping by the global L2 norm, with
 * torch.nn.utils.clip_grad_norm_'s semantics:
 *   total = sqrt(sum over all gradients of g^2)
 *   coef  = max_norm / (total + 1e-6); if coef < 1: g *= coef
 * The sum of squares is taken in double over fixed blocks of
 * ICS_OPTIM_NORM_BLOCK elements, one partial per block, and the partials
 * are added in block order: the result is the same for any thread count
 * (an OpenMP reduction clause would combine in arrival order).
 */
#include "ics_build_config.h"
#include "train/optim_internal.h"

#include <math.h>

void ics_optim_clip_grad_norm(ics_optim *opt, double max_norm, double *total_norm)
{
    double *partials = opt->norm_partials;
    const ics_param_view *params = opt->params;
    const size_t *first_block = opt->first_block;
    const size_t *block_param = opt->block_param;
    const size_t n_blocks = opt->n_blocks;

#pragma omp parallel for schedule(static) if (n_blocks >= 4)
    for (size_t b = 0; b < n_blocks; b++) {
        const ics_param_view *pv = &params[block_param[b]];
        size_t start = (b - first_block[block_param[b]]) * ICS_OPTIM_NORM_BLOCK;
        size_t end = start + ICS_OPTIM_NORM_BLOCK < pv->numel ? start + ICS_OPTIM_NORM_BLOCK : pv->numel;
        double s = 0.0;
        for (size_t i = start; i < end; i++) s += (double)pv->grad[i] * (double)pv->grad[i];
        partials[b] = s;
    }
    double sum = 0.0;
    for (size_t b = 0; b < n_blocks; b++) sum += partials[b];
    double total = sqrt(sum);
    if (total_norm) *total_norm = total;
    if (!isfinite(total)) return;
    double coef = max_norm / (total + 1e-6);
    if (coef >= 1.0) return;
    const float c = (float)coef;
    for (size_t pi = 0; pi < opt->n_params; pi++) {
        float *g = params[pi].grad;
        const size_t n = params[pi].numel;
#pragma omp parallel for schedule(static) if (n >= ICS_OPTIM_PARALLEL_MIN)
        for (size_t i = 0; i < n; i++) g[i] *= c;
    }
}
