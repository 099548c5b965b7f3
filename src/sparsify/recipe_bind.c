/*
 * Bind functions of the training modifiers (epoch range, learning rate,
 * weight decay, quantization, trainable params, distillation): evaluated
 * fields -> typed record, with the checks SparseML's constructors make.
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"
#include "core/alloc.h"
#include "core/log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* EpochRangeModifier only sets the epoch range: nothing beyond the
 * common start/end checks. */
ics_status rbind_epoch_range(rmod *m, const char *source, ics_error *err)
{
    (void)m, (void)source, (void)err;
    return ICS_OK;
}

/* LearningRateFunctionModifier: lr_func, the two learning rates (SparseML
 * keeps them in [0, 1]) and the cycle length of cyclic_linear. */
ics_status rbind_lr_function(rmod *m, const char *source, ics_error *err)
{
    ics_lr_function_spec *s = &m->pub.u.lr_function;
    const char *func = rmod_str(m, "lr_func");
    s->lr_func = strcmp(func, "linear") == 0   ? ICS_LR_FUNC_LINEAR
                 : strcmp(func, "cosine") == 0 ? ICS_LR_FUNC_COSINE
                                               : ICS_LR_FUNC_CYCLIC_LINEAR;
    s->init_lr = rmod_num(m, "init_lr", 0);
    s->final_lr = rmod_num(m, "final_lr", 0);
    s->cycle_epochs = rmod_num(m, "cycle_epochs", 1.0);
    /* SparseML's LearningRateFunctionModifier.validate ranges */
    if (!(s->init_lr >= 0 && s->init_lr <= 1))
        return rmod_field_fail(m, source, "init_lr", err, "init_lr must be in [0, 1], got %g",
                               s->init_lr);
    if (!(s->final_lr >= 0 && s->final_lr <= 1))
        return rmod_field_fail(m, source, "final_lr", err, "final_lr must be in [0, 1], got %g",
                               s->final_lr);
    if (m->pub.update_frequency != -1)
        return rmod_field_fail(m, source, "update_frequency", err,
                               "update_frequency is unused and must be -1");
    if (s->lr_func == ICS_LR_FUNC_CYCLIC_LINEAR && !(s->cycle_epochs > 0))
        return rmod_field_fail(m, source, "cycle_epochs", err,
                               "lr_func cyclic_linear needs cycle_epochs > 0");
    return ICS_OK;
}

/* lr_kwargs per lr_class, as SparseML's LearningRateModifier reads them. */
ics_status rbind_lr(rmod *m, const char *source, ics_error *err)
{
    ics_lr_spec *s = &m->pub.u.lr;
    const char *cls = rmod_str(m, "lr_class");
    static const char *const classes[] = {"StepLR", "MultiStepLR", "ExponentialLR",
                                          "CosineAnnealingWarmRestarts"};
    /* T_mult goes through to torch's CosineAnnealingWarmRestarts as upstream
     * passes unknown kwargs on */
    static const char *const allowed[] = {"step_size gamma", "milestones gamma", "gamma",
                                          "lr_min cycle_epochs T_mult"};
    int k = 0;
    while (strcmp(classes[k], cls) != 0)
        k++;
    s->lr_class = (ics_lr_class)k;
    s->init_lr = rmod_num(m, "init_lr", 0);
    /* SparseML's BaseLearningRateModifier.validate: 0 < init_lr <= 1 */
    if (!(s->init_lr > 0 && s->init_lr <= 1))
        return rmod_field_fail(m, source, "init_lr", err, "init_lr must be in (0, 1], got %g",
                               s->init_lr);
    if (m->pub.update_frequency != -1)
        return rmod_field_fail(m, source, "update_frequency", err,
                               "update_frequency is unused and must be -1");
    const rv *kw = rmod_get(m, "lr_kwargs");
    s->cycle_mult = 1;
    for (size_t i = 0; kw && i < kw->count; i++) {
        const char *key = kw->keys[i];
        const rv *v = &kw->items[i];
        char padded[64];
        snprintf(padded, sizeof padded, " %s ", key);
        char list[80];
        snprintf(list, sizeof list, " %s ", allowed[k]);
        if (!strstr(list, padded))
            return RECIPE_FAIL(err, source, v->line, v->column,
                               "%s: lr_kwargs key '%s' is not used by %s (it takes: %s)",
                               m->pub.type_name, key, cls, allowed[k]);
        if (strcmp(key, "milestones") == 0) {
            if (v->kind != RV_LIST || v->count == 0)
                return RECIPE_FAIL(err, source, v->line, v->column,
                                   "%s: milestones must be a list of epochs", m->pub.type_name);
            double *ms = rmod_alloc(m, v->count * sizeof *ms, err);
            if (!ms) return err ? err->status : ICS_ERR_NOMEM;
            for (size_t j = 0; j < v->count; j++) {
                if (!rv_is_number(&v->items[j]) || (j && v->items[j].num <= ms[j - 1]))
                    return RECIPE_FAIL(err, source, v->items[j].line, v->items[j].column,
                                       "%s: milestones must be increasing numbers",
                                       m->pub.type_name);
                ms[j] = v->items[j].num;
            }
            s->milestones = ms;
            s->milestone_count = v->count;
            continue;
        }
        if (!rv_is_number(v))
            return RECIPE_FAIL(err, source, v->line, v->column, "%s: lr_kwargs %s must be a number",
                               m->pub.type_name, key);
        if (strcmp(key, "gamma") == 0)
            s->gamma = v->num;
        else if (strcmp(key, "step_size") == 0)
            s->step_size = v->num;
        else if (strcmp(key, "lr_min") == 0)
            s->lr_min = v->num;
        else if (strcmp(key, "cycle_epochs") == 0)
            s->cycle_epochs = v->num;
        else if (v->kind != RV_INT || v->num < 1)
            return RECIPE_FAIL(err, source, v->line, v->column,
                               "%s: lr_kwargs T_mult must be an integer >= 1", m->pub.type_name);
        else
            s->cycle_mult = (int)v->num;
    }
    /* the keys SparseML's validate requires per class */
    static const char *const required[][2] = {{"step_size", "gamma"},
                                              {"milestones", "gamma"},
                                              {"gamma", NULL},
                                              {"lr_min", "cycle_epochs"}};
    for (int r = 0; r < 2; r++) {
        const char *need = required[k][r];
        if (need && (!kw || !rv_map_get(kw, need)))
            return rmod_field_fail(m, source, "lr_kwargs", err, "lr_kwargs needs '%s' for %s", need,
                                   cls);
    }
    /* MultiStepLR milestones are absolute epochs inside (start, end) */
    for (size_t j = 0; k == 1 && j < s->milestone_count; j++) {
        double mile = s->milestones[j];
        if (mile <= m->pub.start_epoch || (m->pub.end_epoch >= 0 && mile >= m->pub.end_epoch))
            return rmod_field_fail(m, source, "lr_kwargs", err,
                                   "milestone %g must be > start_epoch (%g) and < end_epoch (%g) "
                                   "unless end_epoch is -1",
                                   mile, m->pub.start_epoch, m->pub.end_epoch);
    }
    if (k == 0 && !(s->step_size > 0))
        return rmod_field_fail(m, source, "lr_kwargs", err, "step_size must be > 0");
    if (k == 3 && !(s->cycle_epochs > 0))
        return rmod_field_fail(m, source, "lr_kwargs", err, "cycle_epochs must be > 0");
    return ICS_OK;
}

/* SetLearningRateModifier: one learning rate, >= 0. */
ics_status rbind_set_lr(rmod *m, const char *source, ics_error *err)
{
    m->pub.u.learning_rate = rmod_num(m, "learning_rate", 0);
    if (!(m->pub.u.learning_rate >= 0))
        return rmod_field_fail(m, source, "learning_rate", err, "learning_rate must be >= 0");
    return ICS_OK;
}

/* SetWeightDecayModifier: one weight decay, >= 0. */
ics_status rbind_set_wd(rmod *m, const char *source, ics_error *err)
{
    m->pub.u.weight_decay = rmod_num(m, "weight_decay", 0);
    if (!(m->pub.u.weight_decay >= 0))
        return rmod_field_fail(m, source, "weight_decay", err, "weight_decay must be >= 0");
    return ICS_OK;
}

/* QuantizationModifier: what to quantize, bit widths, and the QAT epochs
 * (observer freeze, BN freeze) that must not come before start_epoch. */
ics_status rbind_quantization(rmod *m, const char *source, ics_error *err)
{
    ics_quantization_spec *s = &m->pub.u.quantization;
    const rv *sub = rmod_get(m, "submodules");
    s->has_submodules = sub != NULL;
    ics_status st = rmod_names(m, sub, &s->submodules, err);
    if (st != ICS_OK) return st;
    s->model_fuse_fn_name = rmod_str(m, "model_fuse_fn_name");
    s->disable_quantization_observer_epoch = rmod_num(m, "disable_quantization_observer_epoch", -1);
    s->freeze_bn_stats_epoch = rmod_num(m, "freeze_bn_stats_epoch", -1);
    s->quantize_embeddings = rmod_bool(m, "quantize_embeddings", 1);
    s->quantize_linear_activations = rmod_bool(m, "quantize_linear_activations", 1);
    s->quantize_conv_activations = rmod_bool(m, "quantize_conv_activations", 1);
    s->reduce_range = rmod_bool(m, "reduce_range", 0);
    s->num_bits = (int)rmod_num(m, "num_bits", 8);
    s->activation_bits = (int)rmod_num(m, "activation_bits", 8);
    s->weight_bits = (int)rmod_num(m, "weight_bits", 8);
    s->exclude_batchnorm = rmod_bool(m, "exclude_batchnorm", 1);
    s->num_calibration_steps = (int)rmod_num(m, "num_calibration_steps", -1);
    s->tensorrt = rmod_bool(m, "tensorrt", 0);
    /* exclude_module_types and ignore name the same thing in two SparseML
     * generations: one list */
    const rv *a = rmod_get(m, "exclude_module_types"), *b = rmod_get(m, "ignore");
    ics_name_list la, lb;
    st = rmod_names(m, a, &la, err);
    if (st == ICS_OK) st = rmod_names(m, b, &lb, err);
    if (st != ICS_OK) return st;
    size_t total = la.count + lb.count;
    const char **names = rmod_alloc(m, total * sizeof *names, err);
    int *lines = rmod_alloc(m, total * sizeof *lines, err);
    int *columns = rmod_alloc(m, total * sizeof *columns, err);
    if (!names || !lines || !columns) return err ? err->status : ICS_ERR_NOMEM;
    for (size_t i = 0; i < total; i++) {
        const ics_name_list *l = i < la.count ? &la : &lb;
        size_t j = i < la.count ? i : i - la.count;
        names[i] = l->names[j];
        lines[i] = l->lines[j];
        columns[i] = l->columns[j];
    }
    s->exclude_module_types.count = total;
    s->exclude_module_types.names = names;
    s->exclude_module_types.lines = lines;
    s->exclude_module_types.columns = columns;
    const char *bits[] = {"num_bits", "activation_bits", "weight_bits"};
    int values[] = {s->num_bits, s->activation_bits, s->weight_bits};
    for (int i = 0; i < 3; i++)
        if (values[i] < 2 || values[i] > 16)
            return rmod_field_fail(m, source, bits[i], err, "%s must be in [2, 16], got %d",
                                   bits[i], values[i]);
    double start = m->pub.start_epoch;
    if (s->disable_quantization_observer_epoch != -1 && start != -1 &&
        s->disable_quantization_observer_epoch < start)
        return rmod_field_fail(
            m, source, "disable_quantization_observer_epoch", err,
            "disable_quantization_observer_epoch (%g) must be >= start_epoch (%g)",
            s->disable_quantization_observer_epoch, start);
    if (s->freeze_bn_stats_epoch != -1 && start != -1 && s->freeze_bn_stats_epoch < start)
        return rmod_field_fail(m, source, "freeze_bn_stats_epoch", err,
                               "freeze_bn_stats_epoch (%g) must be >= start_epoch (%g)",
                               s->freeze_bn_stats_epoch, start);
    return ICS_OK;
}

/* TrainableParamsModifier: a non-empty selector list and the flag. */
ics_status rbind_trainable(rmod *m, const char *source, ics_error *err)
{
    ics_trainable_spec *s = &m->pub.u.trainable;
    s->trainable = rmod_bool(m, "trainable", 1);
    s->params_strict = rmod_bool(m, "params_strict", 1);
    ics_status st = rmod_names(m, rmod_get(m, "params"), &s->params, err);
    if (st == ICS_OK && s->params.count == 0)
        return rmod_field_fail(m, source, "params", err,
                               "params must select at least one parameter");
    return st;
}

/* DistillationModifier: loss = (1-h) task + h KD at temperature T
 * (KL * T^2); 0 <= h <= 1, T > 0. */
ics_status rbind_distillation(rmod *m, const char *source, ics_error *err)
{
    ics_distillation_spec *s = &m->pub.u.distillation;
    s->hardness = rmod_num(m, "hardness", 0.5);
    s->temperature = rmod_num(m, "temperature", 2.0);
    if (!(s->hardness >= 0 && s->hardness <= 1))
        return rmod_field_fail(m, source, "hardness", err, "hardness must be in [0, 1], got %g",
                               s->hardness);
    if (!(s->temperature > 0))
        return rmod_field_fail(m, source, "temperature", err, "temperature must be > 0, got %g",
                               s->temperature);
    const rv *keys = rmod_get(m, "distill_output_keys");
    s->has_output_keys = keys != NULL;
    return rmod_names(m, keys, &s->distill_output_keys, err);
}
