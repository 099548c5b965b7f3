/*
 * src/sparsify/modifier_quantization.c: QuantizationModifier. At its start
 * the model gets its QAT structure (icsparse/qat.h: fused conv-BN groups,
 * fake-quantized weights and activations); from
 * disable_quantization_observer_epoch the observers stop (scales frozen)
 * and from freeze_bn_stats_epoch the folded BNs use their running
 * statistics. The same structure is rebuilt from a checkpoint's recipe
 * before its quantizer state loads (update_architecture_from_recipe).
 */
#include "sparsify/manager_internal.h"

#include <icsparse/qat.h>
#include <math.h>
#include <string.h>

#include "core/log.h"

enum { MAX_NAMES = 64 };

/* The QAT options a modifier asks for; names point into the recipe. */
static ics_status options_of(const ics_modifier *mod, ics_qat_options *o, const char **subs,
                             const char **excl, ics_error *err)
{
    const ics_quantization_spec *s = &mod->u.quantization;
    ics_qat_options_default(o);
    o->weight_bits = s->weight_bits;
    o->activation_bits = s->activation_bits;
    o->reduce_range = s->reduce_range;
    o->quantize_conv_activations = s->quantize_conv_activations;
    o->quantize_linear_activations = s->quantize_linear_activations;
    if (s->model_fuse_fn_name && strcmp(s->model_fuse_fn_name, "no_fuse") == 0) o->fold_bn = 0;
    if (s->submodules.count > MAX_NAMES || s->exclude_module_types.count > MAX_NAMES)
        return ICS_FAIL(err, ICS_ERR_INVALID, "QuantizationModifier (line %d): more than %d names in a list",
                        mod->line, MAX_NAMES);
    if (s->has_submodules) {
        for (size_t i = 0; i < s->submodules.count; i++) subs[i] = s->submodules.names[i];
        o->submodules = subs;
        o->num_submodules = (int)s->submodules.count;
    }
    for (size_t i = 0; i < s->exclude_module_types.count; i++) excl[i] = s->exclude_module_types.names[i];
    o->exclude_types = excl;
    o->num_exclude_types = (int)s->exclude_module_types.count;
    return ICS_OK;
}

/* 1 when `at` has reached a QAT epoch field (-1: never). */
static int reached(double field, double at) { return field >= 0 && at >= field; }

/* Applies the structure (once) and the flags for `epoch`. */
static ics_status apply(const ics_modifier *mod, ics_model *model, double epoch, ics_error *err)
{
    if (!ics_model_qat_active(model)) {
        ics_qat_options o;
        const char *subs[MAX_NAMES], *excl[MAX_NAMES];
        ics_status st = options_of(mod, &o, subs, excl, err);
        if (!st) st = ics_model_qat_prepare(model, &o, err);
        if (st) return ics_error_prefix(err, "QuantizationModifier (line %d): ", mod->line), st;
    }
    const ics_quantization_spec *s = &mod->u.quantization;
    if (reached(s->disable_quantization_observer_epoch, epoch)) ics_model_qat_set_observers(model, 0);
    if (reached(s->freeze_bn_stats_epoch, epoch)) ics_model_qat_freeze_bn(model, 1);
    return ICS_OK;
}

ics_status mgr_quant_check(const ics_manager *m, const ics_modifier *mod, ics_error *err)
{
    ics_qat_options o;
    const char *subs[MAX_NAMES], *excl[MAX_NAMES];
    ics_status st = options_of(mod, &o, subs, excl, err);
    if (!st) st = ics_model_qat_check(m->model, &o, err);
    if (!st) return ICS_OK;
    /* the recipe does not fit the model: a usage error, like a selector */
    ics_error_prefix(err, "QuantizationModifier (line %d): ", mod->line);
    if (err) err->status = ICS_ERR_CONFIG;
    return ICS_ERR_CONFIG;
}

/* Start, and each step after: SparseML checks the observer and BN epochs
 * at every update. */
ics_status mgr_quant_update(ics_manager *m, mgr_mod *mm, double epoch, int starting, ics_error *err)
{
    if (!starting && !mm->started) return ICS_OK;
    int was = ics_model_qat_active(m->model);
    ics_status st = apply(mm->mod, m->model, epoch, err);
    if (!st && !was) ics_log_step("quantization-aware training starts at epoch %.4f", epoch);
    return st;
}

ics_status ics_recipe_apply_structure(const ics_recipe *recipe, ics_model *model, double epoch, ics_error *err)
{
    if (!recipe) return ICS_OK;
    /* a finished run's checkpoint (epoch -1) has every modifier applied */
    double at = epoch < 0 ? INFINITY : epoch;
    size_t n = ics_recipe_modifier_count(recipe);
    for (size_t k = 0; k < n; k++) {
        const ics_modifier *mod = ics_recipe_modifier(recipe, k);
        if (mod->type != ICS_MOD_QUANTIZATION) continue;
        double start = mod->start_epoch < 0 ? 0.0 : mod->start_epoch;
        if (at < start) continue;
        ics_status st = apply(mod, model, at, err);
        if (st) return st;
    }
    return ICS_OK;
}

int ics_recipe_qat_active(const ics_recipe *recipe, double epoch)
{
    if (!recipe) return 0;
    size_t n = ics_recipe_modifier_count(recipe);
    for (size_t k = 0; k < n; k++) {
        const ics_modifier *mod = ics_recipe_modifier(recipe, k);
        if (mod->type == ICS_MOD_QUANTIZATION && epoch >= (mod->start_epoch < 0 ? 0.0 : mod->start_epoch))
            return 1;
    }
    return 0;
}
