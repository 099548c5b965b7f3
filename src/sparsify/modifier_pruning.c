/*
 * Pruning modifiers at training time: GMPruningModifier,
 * MagnitudePruningModifier, GlobalMagnitudePruningModifier (gradual
 * magnitude pruning: the sparsity follows SparseML's interpolate() from
 * init_sparsity at start_epoch to final_sparsity at end_epoch, masks are
 * recomputed from |w| at each update), ACDCPruningModifier (alternating
 * dense and compressed phases, arXiv 2106.12379) and
 * ConstantPruningModifier (the zeros present at the start stay zero).
 * Each modifier keeps its own masks; the manager applies their product.
 */
#include "ics_build_config.h"
#include "sparsify/manager_internal.h"
#include "core/alloc.h"
#include "core/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int mgr_is_pruning(ics_modifier_type type)
{
    return type == ICS_MOD_GM_PRUNING || type == ICS_MOD_MAGNITUDE_PRUNING ||
           type == ICS_MOD_GLOBAL_MAGNITUDE_PRUNING || type == ICS_MOD_ACDC_PRUNING ||
           type == ICS_MOD_CONSTANT_PRUNING;
}

ics_mask_kind mgr_prune_kind(const ics_modifier *mod)
{
    const ics_pruning_spec *s = &mod->u.pruning;
    ics_mask_kind k = {s->mask_type, s->mask_n, s->mask_m, s->block_rows, s->block_cols};
    if (mod->type == ICS_MOD_CONSTANT_PRUNING) k.type = ICS_MASK_UNSTRUCTURED;
    return k;
}

/* Selects each sparsity group's params; p->param holds model tensor
 * indices here (the manager maps them to its params afterwards). A
 * parameter named by two groups belongs to the first. */
ics_status mgr_prune_create(ics_manager *m, mgr_mod *mm, ics_error *err)
{
    const ics_modifier *mod = mm->mod;
    const ics_pruning_spec *s = &mod->u.pruning;
    int nt = ics_model_num_tensors(m->model);
    mgr_prune *p = ics_calloc(1, sizeof *p, "pruning state", err);
    unsigned char *sel = ics_calloc((size_t)nt, 1, "pruning selection", err);
    int *group_of = ics_malloc((size_t)nt * sizeof *group_of, "pruning groups", err);
    ics_status st = ICS_OK;
    if (!p || !sel || !group_of) {
        free(p);
        st = ICS_ERR_NOMEM;
        goto done;
    }
    mm->prune = p;
    p->phase = -1;
    for (int i = 0; i < nt; i++)
        group_of[i] = -1;
    /* ConstantPruningModifier has no sparsity groups: its params are one */
    size_t ngroups = s->group_count ? s->group_count : 1;
    for (size_t g = 0; g < ngroups; g++) {
        memset(sel, 0, (size_t)nt);
        st = mgr_select(m, s->group_count ? &s->groups[g].params : &s->params, sel, err);
        if (st != ICS_OK) {
            ics_error_prefix(err, "%s (line %d): ", mod->type_name, mod->line);
            goto done;
        }
        for (int i = 0; i < nt; i++)
            if (sel[i] && group_of[i] < 0) {
                group_of[i] = (int)g;
                p->count++;
            }
    }
    size_t n = p->count ? p->count : 1;
    p->param = ics_malloc(n * sizeof *p->param, "pruning params", err);
    p->group = ics_malloc(n * sizeof *p->group, "pruning params", err);
    p->mask = ics_calloc(n, sizeof *p->mask, "pruning masks", err);
    p->init = ics_calloc(n, sizeof *p->init, "pruning init", err);
    if (!p->param || !p->group || !p->mask || !p->init) {
        st = ICS_ERR_NOMEM;
        goto done;
    }
    ics_mask_kind kind = mgr_prune_kind(mod);
    size_t k = 0;
    for (int i = 0; i < nt; i++) {
        if (group_of[i] < 0) continue;
        const ics_tensor_info *info = ics_model_tensor(m->model, i);
        st = ics_mask_check(&kind, info->name, info->ndim, info->shape, err);
        if (st != ICS_OK) {
            ics_error_prefix(err, "%s (line %d): ", mod->type_name, mod->line);
            goto done;
        }
        p->param[k] = i;
        p->group[k] = group_of[i];
        p->init[k] = s->init_sparsity;
        p->mask[k] = ics_malloc((size_t)info->numel * sizeof(float), "pruning mask", err);
        if (!p->mask[k]) {
            st = ICS_ERR_NOMEM;
            goto done;
        }
        for (int64_t e = 0; e < info->numel; e++)
            p->mask[k][e] = 1.0f;
        k++;
    }
done:
    free(sel);
    free(group_of);
    return st;
}

void mgr_prune_destroy(mgr_prune *p)
{
    if (!p) return;
    if (p->mask)
        for (size_t j = 0; j < p->count; j++)
            free(p->mask[j]);
    free(p->mask);
    free(p->param);
    free(p->group);
    free(p->init);
    free(p);
}

static double zero_fraction(const float *x, size_t n, size_t *zeros)
{
    size_t z = 0;
    for (size_t i = 0; i < n; i++)
        z += x[i] == 0.0f;
    if (zeros) *zeros = z;
    return n ? (double)z / (double)n : 0.0;
}

/* Writes this modifier's masks for the params of group g (or every group
 * when g < 0) at sparsity target(j) per param (layer-wise) or one value
 * per group (global: the first param's). */
static ics_status compute_masks(ics_manager *m, mgr_mod *mm, int g, const double *target,
                                ics_error *err)
{
    mgr_prune *p = mm->prune;
    const ics_modifier *mod = mm->mod;
    ics_mask_kind kind = mgr_prune_kind(mod);
    size_t ngroups = mod->u.pruning.group_count;
    ics_mask_target *t = ics_malloc((p->count ? p->count : 1) * sizeof *t, "mask targets", err);
    double *s = ics_malloc((p->count ? p->count : 1) * sizeof *s, "mask sparsities", err);
    ics_status st = ICS_OK;
    if (!t || !s) {
        st = ICS_ERR_NOMEM;
        goto done;
    }
    for (size_t grp = 0; grp < ngroups && st == ICS_OK; grp++) {
        if (g >= 0 && (size_t)g != grp) continue;
        size_t n = 0;
        for (size_t j = 0; j < p->count; j++) {
            if ((size_t)p->group[j] != grp) continue;
            const mgr_param *pa = &m->params[p->param[j]];
            t[n] =
                (ics_mask_target){pa->name, pa->data, p->mask[j], pa->ndim, pa->shape, pa->numel};
            s[n] = target[j];
            n++;
        }
        if (n == 0) continue;
        if (mod->u.pruning.global_sparsity)
            st = ics_mask_compute_global(&kind, t, n, s[0], err);
        else
            st = ics_mask_compute_layerwise(&kind, t, n, s, err);
    }
    if (st != ICS_OK) ics_error_prefix(err, "%s (line %d): ", mod->type_name, mod->line);
done:
    free(t);
    free(s);
    return st;
}

/* __FROM_PARAM__: the initial sparsity is the zeros present at the start,
 * per param (layer-wise) or over the group (global). */
static void measure_init(ics_manager *m, mgr_mod *mm)
{
    mgr_prune *p = mm->prune;
    const ics_pruning_spec *s = &mm->mod->u.pruning;
    for (size_t j = 0; j < p->count; j++) {
        const mgr_param *pa = &m->params[p->param[j]];
        p->init[j] = zero_fraction(pa->data, pa->numel, NULL);
    }
    if (!s->global_sparsity) return;
    for (size_t g = 0; g < s->group_count; g++) {
        size_t zeros = 0, total = 0, z;
        for (size_t j = 0; j < p->count; j++)
            if ((size_t)p->group[j] == g) {
                const mgr_param *pa = &m->params[p->param[j]];
                zero_fraction(pa->data, pa->numel, &z);
                zeros += z;
                total += pa->numel;
            }
        for (size_t j = 0; j < p->count; j++)
            if ((size_t)p->group[j] == g) p->init[j] = total ? (double)zeros / total : 0.0;
    }
}

/* Constant pruning: the mask is the current nonzeros. */
static void constant_masks(ics_manager *m, mgr_prune *p)
{
    for (size_t j = 0; j < p->count; j++) {
        const mgr_param *pa = &m->params[p->param[j]];
        for (size_t e = 0; e < pa->numel; e++)
            p->mask[j][e] = pa->data[e] != 0.0f ? 1.0f : 0.0f;
    }
}

/* Gradual magnitude pruning update: sparsity s(epoch) per param from
 * SparseML's interpolate (start -1 counts as 0; end -1: final at once). */
static ics_status gmp_update(ics_manager *m, mgr_mod *mm, double epoch, ics_error *err)
{
    mgr_prune *p = mm->prune;
    const ics_modifier *mod = mm->mod;
    const ics_pruning_spec *s = &mod->u.pruning;
    double *target = ics_malloc((p->count ? p->count : 1) * sizeof *target, "sparsities", err);
    if (!target) return ICS_ERR_NOMEM;
    double start = mod->start_epoch < 0 ? 0.0 : mod->start_epoch;
    for (size_t j = 0; j < p->count; j++) {
        double final = s->groups[p->group[j]].sparsity;
        target[j] = mod->end_epoch < 0 ? final
                                       : ics_interpolate(epoch, start, mod->end_epoch, p->init[j],
                                                         final, s->inter_func);
    }
    ics_status st = compute_masks(m, mm, -1, target, err);
    if (p->count) p->applied = target[0];
    free(target);
    return st;
}

/* AC/DC: phase = floor((epoch - start) / update_frequency); even phases are
 * dense (mask all ones), odd phases compressed (masks from |w| at
 * compression_sparsity, computed once at the phase's start). Entering a
 * dense phase after a compressed one zeroes the optimizer's momentum when
 * momentum_buffer_reset. */
static ics_status acdc_update(ics_manager *m, mgr_mod *mm, double epoch, ics_error *err)
{
    mgr_prune *p = mm->prune;
    const ics_modifier *mod = mm->mod;
    double phase = floor((epoch - mod->start_epoch) / mod->update_frequency + 1e-9);
    if (phase == p->phase) return ICS_OK;
    int compressed = fmod(phase, 2.0) == 1.0;
    double *target = ics_malloc((p->count ? p->count : 1) * sizeof *target, "sparsities", err);
    if (!target) return ICS_ERR_NOMEM;
    for (size_t j = 0; j < p->count; j++)
        target[j] = compressed ? mod->u.pruning.compression_sparsity : 0.0;
    ics_status st = compute_masks(m, mm, -1, target, err);
    free(target);
    if (st != ICS_OK) return st;
    if (!compressed && p->phase >= 1 && mod->u.pruning.momentum_buffer_reset && m->optim) {
        ics_optim_zero_momentum(m->optim);
        ICS_INFO("ACDCPruningModifier (line %d): epoch %g: dense phase, momentum reset", mod->line,
                 epoch);
    }
    p->phase = phase;
    p->applied = compressed ? mod->u.pruning.compression_sparsity : 0.0;
    return ICS_OK;
}

ics_status mgr_prune_update(ics_manager *m, mgr_mod *mm, double epoch, int starting, int ending,
                            int *changed, ics_error *err)
{
    mgr_prune *p = mm->prune;
    const ics_modifier *mod = mm->mod;
    ics_status st = ICS_OK;
    if (starting) {
        p->enabled = 1;
        *changed = 1;
        if (mod->type == ICS_MOD_CONSTANT_PRUNING) constant_masks(m, p);
        if (mod->u.pruning.init_from_param) measure_init(m, mm);
    }
    if (mod->type == ICS_MOD_ACDC_PRUNING) {
        /* the end comes after a compressed phase: its masks stay */
        if (!ending) {
            double before = p->phase;
            st = acdc_update(m, mm, epoch, err);
            if (p->phase != before) *changed = 1;
        }
    } else if (mod->type != ICS_MOD_CONSTANT_PRUNING) {
        st = gmp_update(m, mm, epoch, err);
        *changed = 1;
    }
    if (st != ICS_OK) return st;
    if (ending && !mod->u.pruning.leave_enabled) {
        p->enabled = 0;
        *changed = 1;
    }
    return ICS_OK;
}

ics_status mgr_prune_oneshot(ics_manager *m, mgr_mod *mm, ics_error *err)
{
    mgr_prune *p = mm->prune;
    const ics_modifier *mod = mm->mod;
    p->enabled = 1;
    if (mod->type == ICS_MOD_CONSTANT_PRUNING) {
        constant_masks(m, p);
        return ICS_OK;
    }
    double *target = ics_malloc((p->count ? p->count : 1) * sizeof *target, "sparsities", err);
    if (!target) return ICS_ERR_NOMEM;
    for (size_t j = 0; j < p->count; j++)
        target[j] = mod->type == ICS_MOD_ACDC_PRUNING ? mod->u.pruning.compression_sparsity
                                                      : mod->u.pruning.groups[p->group[j]].sparsity;
    ics_status st = compute_masks(m, mm, -1, target, err);
    if (p->count) p->applied = target[0];
    free(target);
    return st;
}
