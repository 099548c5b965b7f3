/*
 * Schedule facts shared by the trainer and the explain printer: the
 * recipe's length in epochs and the sparsity a pruning modifier applies at
 * a (fractional) epoch.
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"

#include <float.h>
#include <math.h>

/* SparseML's manager.max_epochs: max of ceil(start) and ceil(end) over the
 * values > -1 (-1 means "from the start" / "never ends"). */
int ics_recipe_max_epochs(const ics_recipe *r)
{
    double best = 0;
    for (size_t i = 0; i < r->mod_count; i++) {
        const ics_modifier *m = &r->mods[i]->pub;
        if (m->start_epoch > -1 && ceil(m->start_epoch) > best) best = ceil(m->start_epoch);
        if (m->end_epoch > -1 && ceil(m->end_epoch) > best) best = ceil(m->end_epoch);
    }
    return (int)best;
}

/* sparseml/utils/helpers.py interpolate(): no clamping of x; y past the
 * ends snaps to init/final through the eps tests. */
double ics_interpolate(double epoch, double start, double end, double init, double final,
                       ics_inter_func func)
{
    const double eps = DBL_EPSILON; /* upstream: sys.float_info.epsilon */
    double x = (epoch - start) / (end - start);
    double y;
    switch (func) {
    case ICS_INTER_LINEAR:
        y = x;
        break;
    case ICS_INTER_CUBIC:
        y = 1.0 - pow(1.0 - x, 3.0);
        break;
    default:
        /* (1-x)^(1/3) with the real cube root: for x > 1 Python's ** gives a
         * complex number (and a TypeError in the comparison below) */
        y = 1.0 - cbrt(1.0 - x);
        break;
    }
    if (y <= eps) return init;
    if (y >= 1.0 - eps) return final;
    return init + y * (final - init);
}

double ics_modifier_sparsity_at(const ics_modifier *m, size_t group, double epoch)
{
    const ics_pruning_spec *s = &m->u.pruning;
    if (group >= s->group_count) return 0.0;
    double target = s->groups[group].sparsity;
    if (m->type == ICS_MOD_ACDC_PRUNING) {
        /* phase = floor((epoch - start) / f): even decompressed, odd compressed */
        if (epoch < m->start_epoch) return 0.0;
        double phase = floor((epoch - m->start_epoch) / m->update_frequency);
        return fmod(phase, 2.0) == 1.0 ? target : 0.0;
    }
    if (m->start_epoch != -1 && epoch < m->start_epoch) return s->init_sparsity;
    if (m->end_epoch == -1) return target;
    double start = m->start_epoch == -1 ? 0.0 : m->start_epoch;
    return ics_interpolate(epoch, start, m->end_epoch, s->init_sparsity, target, s->inter_func);
}
