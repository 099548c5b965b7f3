/*
 * The recipe manager (icsparse/manager.h): binds a loaded recipe to a model
 * and an optimizer and runs the modifiers at optimizer steps with
 * SparseML's scheduling rules (SparseML optim/modifier.py,
 * BaseScheduled/BaseUpdate):
 *   start pending  !started && !ended && (start == -1 || epoch >= start)
 *   end pending    started && !ended && end >= 0 && epoch >= end
 *   update ready   start or end pending, or started && !ended &&
 *                  epoch > start && (update_frequency == -1 ||
 *                  epoch >= last_update + update_frequency)
 * (the last comparison with 1e-9 slack: fractional epochs are step /
 * steps_per_epoch and 0.3 + 0.1 < 0.4 in doubles). The modifier families
 * live in modifier_*.c, the mask creators in mask.c.
 */
#include "ics_build_config.h"
#include "sparsify/manager_internal.h"
#include "backend/backend.h"
#include "core/alloc.h"
#include "core/log.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Parameters (not buffers) as the selectors see them. */
ics_status mgr_select(const ics_manager *m, const ics_name_list *selectors, unsigned char *selected,
                      ics_error *err)
{
    int nt = ics_model_num_tensors(m->model);
    ics_param_info *info = ics_malloc((size_t)nt * sizeof *info, "selector params", err);
    int *index = ics_malloc((size_t)nt * sizeof *index, "selector params", err);
    unsigned char *flags = ics_calloc((size_t)nt, 1, "selector flags", err);
    ics_status st = ICS_OK;
    if (!info || !index || !flags) {
        st = ICS_ERR_NOMEM;
        goto done;
    }
    size_t n = 0;
    for (int i = 0; i < nt; i++) {
        const ics_tensor_info *t = ics_model_tensor(m->model, i);
        if (t->kind == ICS_TENSOR_BUFFER || t->kind == ICS_TENSOR_COUNTER) continue;
        info[n] = (ics_param_info){t->name, t->prunable};
        index[n++] = i;
    }
    st = ics_recipe_select(selectors, info, n, flags, err);
    if (st == ICS_OK)
        for (size_t j = 0; j < n; j++)
            if (flags[j]) selected[index[j]] = 1;
done:
    free(info);
    free(index);
    free(flags);
    return st;
}

/* Recomputes the combined masks (product of the enabled modifiers' masks)
 * and applies them to the weights. */
static void combine_masks(ics_manager *m)
{
    for (size_t i = 0; i < m->param_count; i++) {
        mgr_param *pa = &m->params[i];
        for (size_t e = 0; e < pa->numel; e++)
            pa->mask[e] = 1.0f;
        pa->active = 0;
    }
    for (size_t k = 0; k < m->mod_count; k++) {
        mgr_prune *p = m->mods[k].prune;
        if (!p || !p->enabled) continue;
        for (size_t j = 0; j < p->count; j++) {
            mgr_param *pa = &m->params[p->param[j]];
            for (size_t e = 0; e < pa->numel; e++)
                pa->mask[e] *= p->mask[j][e];
            pa->active = 1;
        }
    }
}

/* w *= mask on every actively masked parameter. */
static void apply_masks(ics_manager *m)
{
    for (size_t i = 0; i < m->param_count; i++) {
        mgr_param *pa = &m->params[i];
        if (!pa->active) continue;
        for (size_t e = 0; e < pa->numel; e++)
            pa->data[e] *= pa->mask[e];
    }
}

/* The pruned params, in tensor-table order, from each pruning modifier's
 * selection (p->param holds tensor indices until here). */
static ics_status build_params(ics_manager *m, ics_error *err)
{
    int nt = ics_model_num_tensors(m->model);
    int *param_of = ics_malloc((size_t)nt * sizeof *param_of, "mask index", err);
    if (!param_of) return ICS_ERR_NOMEM;
    for (int i = 0; i < nt; i++)
        param_of[i] = -1;
    for (size_t k = 0; k < m->mod_count; k++) {
        mgr_prune *p = m->mods[k].prune;
        if (!p) continue;
        for (size_t j = 0; j < p->count; j++)
            param_of[p->param[j]] = 0;
    }
    for (int i = 0; i < nt; i++)
        if (param_of[i] == 0) m->param_count++;
    m->params = ics_calloc(m->param_count ? m->param_count : 1, sizeof *m->params, "masks", err);
    if (!m->params) {
        free(param_of);
        return ICS_ERR_NOMEM;
    }
    size_t n = 0;
    for (int i = 0; i < nt; i++) {
        if (param_of[i] != 0) continue;
        const ics_tensor_info *t = ics_model_tensor(m->model, i);
        mgr_param *pa = &m->params[n];
        pa->tensor = i;
        pa->name = t->name;
        pa->data = ics_model_tensor_data(m->model, i);
        pa->grad = ics_model_tensor_grad(m->model, i);
        pa->numel = (size_t)t->numel;
        pa->ndim = t->ndim;
        pa->shape = t->shape;
        pa->mask = ics_malloc(pa->numel * sizeof(float), "mask", err);
        if (!pa->mask) {
            free(param_of);
            return ICS_ERR_NOMEM;
        }
        for (size_t e = 0; e < pa->numel; e++)
            pa->mask[e] = 1.0f;
        param_of[i] = (int)n++;
    }
    for (size_t k = 0; k < m->mod_count; k++) {
        mgr_prune *p = m->mods[k].prune;
        if (!p) continue;
        for (size_t j = 0; j < p->count; j++)
            p->param[j] = param_of[p->param[j]];
    }
    free(param_of);
    return ICS_OK;
}

/* Optimizer view of each model tensor (matched by data pointer). */
static void map_optimizer(ics_manager *m)
{
    int nt = ics_model_num_tensors(m->model);
    for (int i = 0; i < nt; i++)
        m->optim_index[i] = -1;
    if (!m->optim) return;
    size_t np = ics_optim_param_count(m->optim);
    for (size_t v = 0; v < np; v++) {
        const ics_param_view *view = ics_optim_param(m->optim, v);
        for (int i = 0; i < nt; i++)
            if (ics_model_tensor_data(m->model, i) == view->data) m->optim_index[i] = (long)v;
    }
}

/* Modifiers icsparse refuses at bind time, and fields it cannot honour. */
static ics_status check_supported(const ics_modifier *mod, ics_error *err)
{
    if (mod->type == ICS_MOD_DISTILLATION) {
        const ics_name_list *keys = &mod->u.distillation.distill_output_keys;
        for (size_t i = 0; i < keys->count; i++)
            if (strcmp(keys->names[i], "0") != 0)
                return ICS_FAIL(err, ICS_ERR_INVALID,
                                "DistillationModifier (line %d): distill_output_keys '%s': the "
                                "models have one output (the logits, key 0)",
                                mod->line, keys->names[i]);
    }
    return ICS_OK;
}

ics_status ics_manager_create(const ics_recipe *recipe, ics_model *model, ics_optim *optim,
                              ics_manager **out, ics_error *err)
{
    *out = NULL;
    ics_manager *m = ics_calloc(1, sizeof *m, "manager", err);
    if (!m) return ICS_ERR_NOMEM;
    m->recipe = recipe;
    m->model = model;
    m->optim = optim;
    int nt = ics_model_num_tensors(model);
    m->frozen = ics_calloc((size_t)nt, 1, "frozen flags", err);
    m->save_offset = ics_malloc((size_t)nt * sizeof *m->save_offset, "frozen offsets", err);
    m->optim_index = ics_malloc((size_t)nt * sizeof *m->optim_index, "optimizer map", err);
    m->mod_count = recipe ? ics_recipe_modifier_count(recipe) : 0;
    m->mods = ics_calloc(m->mod_count ? m->mod_count : 1, sizeof *m->mods, "modifiers", err);
    ics_status st = ICS_OK;
    if (!m->frozen || !m->save_offset || !m->optim_index || !m->mods) {
        st = ICS_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < nt; i++)
        m->save_offset[i] = SIZE_MAX;
    map_optimizer(m);
    /* refusals first: a recipe icsparse cannot run says so before any
     * selector error */
    for (size_t k = 0; k < m->mod_count && st == ICS_OK; k++) {
        m->mods[k].mod = ics_recipe_modifier(recipe, k);
        m->mods[k].last_update = -1;
        st = check_supported(m->mods[k].mod, err);
    }
    for (size_t k = 0; k < m->mod_count && st == ICS_OK; k++) {
        mgr_mod *mm = &m->mods[k];
        if (mgr_is_lr(mm->mod->type)) m->controls_lr = 1;
        if (mgr_is_pruning(mm->mod->type)) {
            m->has_pruning = 1;
            st = mgr_prune_create(m, mm, err);
        } else if (mm->mod->type == ICS_MOD_TRAINABLE_PARAMS) {
            st = mgr_trainable_create(m, mm, err);
        } else if (mm->mod->type == ICS_MOD_QUANTIZATION) {
            st = mgr_quant_check(m, mm->mod, err);
        }
    }
    if (st == ICS_OK) st = build_params(m, err);
    if (st == ICS_OK && m->save_floats) {
        m->save = ics_malloc(m->save_floats * sizeof *m->save, "frozen parameter copies", err);
        if (!m->save) st = ICS_ERR_NOMEM;
    }
    if (st != ICS_OK) goto fail;
    *out = m;
    return ICS_OK;
fail:
    ics_manager_destroy(m);
    return st;
}

void ics_manager_destroy(ics_manager *m)
{
    if (!m) return;
    if (m->mods)
        for (size_t k = 0; k < m->mod_count; k++) {
            mgr_prune_destroy(m->mods[k].prune);
            mgr_trainable_destroy(m->mods[k].trainable);
        }
    if (m->params)
        for (size_t i = 0; i < m->param_count; i++)
            free(m->params[i].mask);
    free(m->params);
    free(m->mods);
    free(m->frozen);
    free(m->save_offset);
    free(m->optim_index);
    free(m->save);
    free(m);
}

double ics_manager_max_epochs(const ics_manager *m)
{
    return m && m->recipe ? (double)ics_recipe_max_epochs(m->recipe) : 0.0;
}

int ics_manager_controls_lr(const ics_manager *m)
{
    return m ? m->controls_lr : 0;
}
int ics_manager_has_pruning(const ics_manager *m)
{
    return m ? m->has_pruning : 0;
}
int ics_manager_qat_active(const ics_manager *m, double epoch)
{
    return m ? ics_recipe_qat_active(m->recipe, epoch) : 0;
}

static int start_pending(const mgr_mod *mm, double epoch)
{
    double s = mm->mod->start_epoch;
    return !mm->started && !mm->ended && (s == -1 || (s >= 0 && epoch >= s));
}

static int end_pending(const mgr_mod *mm, double epoch)
{
    double e = mm->mod->end_epoch;
    return mm->started && !mm->ended && e >= 0 && epoch >= e;
}

static int update_ready(const mgr_mod *mm, double epoch, int starting, int ending)
{
    if (starting || ending) return 1;
    double f = mm->mod->update_frequency;
    return mm->started && !mm->ended && epoch > mm->mod->start_epoch &&
           (f == -1 || (mm->last_update >= 0 && epoch >= mm->last_update + f - 1e-9));
}

/* One modifier's start / update / end at this step. */
static ics_status run_modifier(ics_manager *m, mgr_mod *mm, double epoch, int *changed,
                               ics_error *err)
{
    int starting = start_pending(mm, epoch);
    /* a modifier that starts at this step may also end at it (a range
     * shorter than a step): SparseML marks both in one update */
    int ending = (starting || mm->started) && !mm->ended && mm->mod->end_epoch >= 0 &&
                 epoch >= mm->mod->end_epoch;
    if (!starting) ending = end_pending(mm, epoch);
    ics_status st = ICS_OK;
    switch (mm->mod->type) {
    case ICS_MOD_SET_WEIGHT_DECAY:
        if (starting) st = mgr_weight_decay_start(m, mm, err);
        break;
    case ICS_MOD_TRAINABLE_PARAMS:
        if (starting) mgr_trainable_start(m, mm);
        if (ending) mgr_trainable_end(m, mm);
        break;
    case ICS_MOD_QUANTIZATION:
        st = mgr_quant_update(m, mm, epoch, starting, err);
        break;
    default:
        if (mm->prune && update_ready(mm, epoch, starting, ending)) {
            st = mgr_prune_update(m, mm, epoch, starting, ending, changed, err);
            mm->last_update = epoch;
        }
        break;
    }
    if (starting) mm->started = 1;
    if (ending) mm->ended = 1;
    return st;
}

ics_status ics_manager_before_step(ics_manager *m, double epoch, int64_t steps_per_epoch,
                                   ics_error *err)
{
    if (steps_per_epoch < 1)
        return ICS_FAIL(err, ICS_ERR_INVALID, "manager: steps_per_epoch must be >= 1, got %lld",
                        (long long)steps_per_epoch);
    int changed = 0;
    for (size_t k = 0; k < m->mod_count; k++) {
        ics_status st = run_modifier(m, &m->mods[k], epoch, &changed, err);
        if (st != ICS_OK) return st;
    }
    if (m->optim && m->controls_lr) {
        double lr = ics_manager_lr_at(m, epoch, steps_per_epoch);
        if (lr >= 0) ics_optim_set_lr(m->optim, lr);
    }
    if (changed) {
        combine_masks(m);
        apply_masks(m);
        ics_manager_log_sparsity(m, epoch);
    }
    /* allow_reintroduction False: pruned weights get no gradient */
    for (size_t i = 0; i < m->param_count; i++) {
        mgr_param *pa = &m->params[i];
        if (!pa->active || !pa->grad) continue;
        for (size_t e = 0; e < pa->numel; e++)
            pa->grad[e] *= pa->mask[e];
    }
    mgr_trainable_before_step(m);
    return ICS_OK;
}

ics_status ics_manager_after_step(ics_manager *m, double epoch, ics_error *err)
{
    (void)epoch;
    (void)err;
    /* momentum and weight decay move masked weights: mask again */
    apply_masks(m);
    mgr_trainable_after_step(m);
    return ICS_OK;
}

static const mgr_mod *active_distillation(const ics_manager *m, double epoch)
{
    if (!m) return NULL;
    for (size_t k = 0; k < m->mod_count; k++) {
        const ics_modifier *mod = m->mods[k].mod;
        if (mod->type != ICS_MOD_DISTILLATION) continue;
        if (mod->start_epoch >= 0 && epoch < mod->start_epoch) continue;
        if (mod->end_epoch >= 0 && epoch >= mod->end_epoch) continue;
        return &m->mods[k];
    }
    return NULL;
}

int ics_manager_distillation_active(const ics_manager *m, double epoch)
{
    return active_distillation(m, epoch) != NULL;
}

void ics_manager_distillation_params(const ics_manager *m, double epoch, double *hardness,
                                     double *temperature)
{
    const mgr_mod *d = active_distillation(m, epoch);
    *hardness = d ? d->mod->u.distillation.hardness : 0.0;
    *temperature = d ? d->mod->u.distillation.temperature : 1.0;
}

float ics_manager_loss(ics_manager *m, double epoch, int batch, int classes,
                       const float *student_logits, const int32_t *labels,
                       const float *teacher_logits, float label_smoothing, float scale,
                       float *dlogits, float *probs_scratch)
{
    const mgr_mod *d = active_distillation(m, epoch);
    if (d && teacher_logits)
        return mgr_distillation_loss(batch, classes, student_logits, labels, teacher_logits,
                                     label_smoothing, d->mod->u.distillation.hardness,
                                     d->mod->u.distillation.temperature, scale, dlogits,
                                     probs_scratch);
    const ics_backend_ops *ops = ics_backend_cpu();
    float loss = ops->softmax_xent_forward(batch, classes, student_logits, labels, label_smoothing,
                                           probs_scratch);
    ops->softmax_xent_backward(batch, classes, probs_scratch, labels, label_smoothing, scale,
                               dlogits);
    return loss;
}

int ics_manager_pruning_ended(const ics_manager *m, double epoch)
{
    if (!m) return 1;
    for (size_t k = 0; k < m->mod_count; k++) {
        const ics_modifier *mod = m->mods[k].mod;
        if (!mgr_is_pruning(mod->type)) continue;
        if (mod->end_epoch >= 0 ? epoch < mod->end_epoch
                                : (mod->start_epoch >= 0 && epoch < mod->start_epoch))
            return 0;
    }
    return 1;
}

int ics_manager_mask_count(const ics_manager *m)
{
    return m ? (int)m->param_count : 0;
}
const char *ics_manager_mask_name(const ics_manager *m, int i)
{
    return i >= 0 && (size_t)i < m->param_count ? m->params[i].name : NULL;
}
float *ics_manager_mask_data(ics_manager *m, int i)
{
    return i >= 0 && (size_t)i < m->param_count ? m->params[i].mask : NULL;
}
int64_t ics_manager_mask_numel(const ics_manager *m, int i)
{
    return i >= 0 && (size_t)i < m->param_count ? (int64_t)m->params[i].numel : 0;
}

ics_status ics_manager_resume(ics_manager *m, double epoch, ics_error *err)
{
    (void)err;
    for (size_t k = 0; k < m->mod_count; k++) {
        mgr_mod *mm = &m->mods[k];
        const ics_modifier *mod = mm->mod;
        if (!start_pending(mm, epoch)) continue;
        /* a modifier whose start is this epoch (-1: epoch 0) starts at the
         * next before_step, as in an uninterrupted run */
        if ((mod->start_epoch < 0 ? 0.0 : mod->start_epoch) >= epoch) continue;
        mm->started = 1;
        if (mod->end_epoch >= 0 && epoch > mod->end_epoch) mm->ended = 1;
        /* the last update an uninterrupted run made before epoch */
        double f = mod->update_frequency, s0 = mod->start_epoch < 0 ? 0 : mod->start_epoch;
        mm->last_update = f > 0 ? s0 + (floor((epoch - s0) / f - 1e-9)) * f : s0;
        if (mod->type == ICS_MOD_SET_WEIGHT_DECAY) {
            ics_status st = mgr_weight_decay_start(m, mm, err);
            if (st != ICS_OK) return st;
        } else if (mod->type == ICS_MOD_TRAINABLE_PARAMS) {
            mgr_trainable_start(m, mm);
            if (mm->ended) mgr_trainable_end(m, mm);
        } else if (mod->type == ICS_MOD_QUANTIZATION) {
            /* the QAT structure first: the checkpoint's quantizer state
             * loads into it next */
            ics_status st = mgr_quant_update(m, mm, epoch, 1, err);
            if (st != ICS_OK) return st;
        } else if (mm->prune) {
            mgr_prune *p = mm->prune;
            p->enabled = !mm->ended || mod->u.pruning.leave_enabled;
            if (mod->type == ICS_MOD_ACDC_PRUNING)
                p->phase = floor((mm->last_update - mod->start_epoch) / f + 1e-9);
            for (size_t j = 0; j < p->count; j++) {
                const mgr_param *pa = &m->params[p->param[j]];
                for (size_t e = 0; e < pa->numel; e++)
                    p->mask[j][e] = pa->mask[e] != 0.0f && pa->data[e] != 0.0f ? 1.0f : 0.0f;
            }
        }
    }
    combine_masks(m);
    apply_masks(m);
    if (m->optim && m->controls_lr) {
        /* steps_per_epoch only matters inside a step-quantized schedule;
         * before_step sets the exact value at the next step */
        double lr = ics_manager_lr_at(m, epoch, 1000000);
        if (lr >= 0) ics_optim_set_lr(m->optim, lr);
    }
    return ICS_OK;
}

int ics_manager_sparsity(const ics_manager *m, const char **names, double *values, int cap,
                         double *overall)
{
    size_t zeros = 0, total = 0;
    for (size_t i = 0; i < m->param_count; i++) {
        const mgr_param *pa = &m->params[i];
        size_t z = 0;
        for (size_t e = 0; e < pa->numel; e++)
            z += pa->data[e] == 0.0f;
        zeros += z;
        total += pa->numel;
        if ((int)i < cap) {
            if (names) names[i] = pa->name;
            if (values) values[i] = pa->numel ? (double)z / (double)pa->numel : 0.0;
        }
    }
    if (overall) *overall = total ? (double)zeros / (double)total : 0.0;
    return (int)m->param_count;
}

void ics_manager_log_sparsity(const ics_manager *m, double epoch)
{
    double overall;
    ics_manager_sparsity(m, NULL, NULL, 0, &overall);
    ics_log_step("sparsity at epoch %.4f: overall %.4f over %zu parameters", epoch, overall,
                 m->param_count);
    for (size_t i = 0; i < m->param_count; i++) {
        const char *name;
        double v;
        /* one entry at a time: no buffer sized by the model */
        size_t z = 0;
        const mgr_param *pa = &m->params[i];
        for (size_t e = 0; e < pa->numel; e++)
            z += pa->data[e] == 0.0f;
        name = pa->name;
        v = pa->numel ? (double)z / (double)pa->numel : 0.0;
        ics_log_step("sparsity %s %.4f", name, v);
    }
}

ics_status ics_manager_apply_oneshot(ics_manager *m, ics_error *err)
{
    for (size_t k = 0; k < m->mod_count; k++) {
        mgr_mod *mm = &m->mods[k];
        if (!mm->prune) continue;
        ics_status st = mgr_prune_oneshot(m, mm, err);
        if (st != ICS_OK) return st;
        mm->started = 1;
        /* a later modifier ranks the weights this one pruned */
        combine_masks(m);
        apply_masks(m);
    }
    return ics_manager_finalize(m, err);
}

ics_status ics_manager_finalize(ics_manager *m, ics_error *err)
{
    (void)err;
    apply_masks(m);
    ics_manager_log_sparsity(m, ics_manager_max_epochs(m));
    for (size_t k = 0; k < m->mod_count; k++) {
        mgr_mod *mm = &m->mods[k];
        if (mm->prune) mm->prune->enabled = 0;
        if (mm->trainable && mm->started && !mm->ended) mgr_trainable_end(m, mm);
        mm->ended = 1;
    }
    /* the last masks stay readable (checkpoints), none is applied now */
    for (size_t i = 0; i < m->param_count; i++)
        m->params[i].active = 0;
    return ICS_OK;
}
