/*
 * SetWeightDecayModifier: at its start, the optimizer's weight decay
 * becomes the recipe's value. Upstream sets it on every optimizer param
 * group (param_groups unset); icsparse does the same, so the no-decay
 * group (BN weights, biases) gets it too, as in a torch optimizer built
 * with one group.
 */
#include "ics_build_config.h"
#include "sparsify/manager_internal.h"
#include "core/log.h"

ics_status mgr_weight_decay_start(ics_manager *m, mgr_mod *mm, ics_error *err)
{
    if (!m->optim) return ICS_OK;
    int groups = ics_optim_group_count(m->optim);
    for (int g = 0; g < groups; g++) {
        ics_status st = ics_optim_set_weight_decay(m->optim, g, mm->mod->u.weight_decay, err);
        if (st != ICS_OK)
            return ics_error_prefix(err, "SetWeightDecayModifier (line %d): ", mm->mod->line);
    }
    ICS_INFO("SetWeightDecayModifier (line %d): weight_decay %g", mm->mod->line,
             mm->mod->u.weight_decay);
    return ICS_OK;
}
