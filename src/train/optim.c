/*
 * src/train/optim.c: optimizer creation, groups, learning rate and the
 * state slots. The update arithmetic is in optim_sgd.c and optim_adam.c,
 * gradient clipping in optim_clip.c.
 */
#include "ics_build_config.h"
#include "train/optim_internal.h"
#include "core/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Slab offsets are rounded up to 16 floats = 64 bytes (cache line, SIMD). */
#define SLAB_ALIGN_FLOATS 16

void ics_optim_hparams_default(ics_optim_hparams *hp, ics_optim_kind kind)
{
    memset(hp, 0, sizeof *hp);
    hp->kind = kind;
    hp->lr = kind == ICS_OPTIM_SGD ? 0.1 : 1e-3;
    hp->beta1 = 0.9;
    hp->beta2 = 0.999;
    hp->eps = 1e-8;
}

int ics_optim_kind_parse(const char *name)
{
    if (!name) return -1;
    if (strcmp(name, "sgd") == 0) return ICS_OPTIM_SGD;
    if (strcmp(name, "adam") == 0) return ICS_OPTIM_ADAM;
    if (strcmp(name, "adamw") == 0) return ICS_OPTIM_ADAMW;
    return -1;
}

const char *ics_optim_kind_name(ics_optim_kind kind)
{
    switch (kind) {
    case ICS_OPTIM_SGD: return "sgd";
    case ICS_OPTIM_ADAM: return "adam";
    case ICS_OPTIM_ADAMW: return "adamw";
    }
    return "unknown";
}

void ics_optim_assign_groups(ics_param_view *params, size_t n_params, int no_decay_1d)
{
    for (size_t i = 0; i < n_params; i++) params[i].group = (no_decay_1d && params[i].ndim <= 1) ? 1 : 0;
}

/* The checks torch.optim's constructors make, with the same meaning. */
static ics_status check_hparams(const ics_optim_hparams *hp, ics_error *err)
{
    if (!(hp->lr >= 0.0)) return ICS_FAIL(err, ICS_ERR_CONFIG, "optimizer: invalid learning rate %g (must be >= 0)", hp->lr);
    if (hp->kind == ICS_OPTIM_SGD) {
        if (!(hp->momentum >= 0.0))
            return ICS_FAIL(err, ICS_ERR_CONFIG, "optimizer sgd: invalid momentum %g (must be >= 0)", hp->momentum);
        if (!(hp->dampening >= 0.0 && hp->dampening <= 1.0))
            return ICS_FAIL(err, ICS_ERR_CONFIG, "optimizer sgd: invalid dampening %g (must be in [0, 1])",
                            hp->dampening);
        if (hp->nesterov && (hp->momentum <= 0.0 || hp->dampening != 0.0))
            return ICS_FAIL(err, ICS_ERR_CONFIG,
                            "optimizer sgd: nesterov momentum requires a momentum > 0 and zero dampening "
                            "(momentum %g, dampening %g)",
                            hp->momentum, hp->dampening);
    } else if (hp->kind == ICS_OPTIM_ADAM || hp->kind == ICS_OPTIM_ADAMW) {
        if (!(hp->eps >= 0.0)) return ICS_FAIL(err, ICS_ERR_CONFIG, "optimizer %s: invalid eps %g (must be >= 0)", ics_optim_kind_name(hp->kind), hp->eps);
        if (!(hp->beta1 >= 0.0 && hp->beta1 < 1.0))
            return ICS_FAIL(err, ICS_ERR_CONFIG, "optimizer %s: invalid beta1 %g (must be in [0, 1))",
                            ics_optim_kind_name(hp->kind), hp->beta1);
        if (!(hp->beta2 >= 0.0 && hp->beta2 < 1.0))
            return ICS_FAIL(err, ICS_ERR_CONFIG, "optimizer %s: invalid beta2 %g (must be in [0, 1))",
                            ics_optim_kind_name(hp->kind), hp->beta2);
    } else {
        return ICS_FAIL(err, ICS_ERR_INVALID, "optimizer: unknown kind %d", (int)hp->kind);
    }
    return ICS_OK;
}

ics_status ics_optim_create(ics_optim **out, const ics_optim_hparams *hp, const ics_optim_group *groups,
                            int n_groups, const ics_param_view *params, size_t n_params,
                            ics_error *err)
{
    *out = NULL;
    ics_status st = check_hparams(hp, err);
    if (st != ICS_OK) return st;
    if (n_groups < 1) return ICS_FAIL(err, ICS_ERR_INVALID, "optimizer: needs at least one parameter group");
    for (int g = 0; g < n_groups; g++) {
        if (!(groups[g].weight_decay >= 0.0))
            return ICS_FAIL(err, ICS_ERR_CONFIG, "optimizer: group %d: invalid weight decay %g (must be >= 0)", g,
                            groups[g].weight_decay);
        if (!(groups[g].lr_scale >= 0.0))
            return ICS_FAIL(err, ICS_ERR_CONFIG, "optimizer: group %d: invalid lr scale %g (must be >= 0)", g,
                            groups[g].lr_scale);
    }
    for (size_t i = 0; i < n_params; i++) {
        const ics_param_view *p = &params[i];
        const char *name = p->name ? p->name : "(unnamed)";
        if (p->group < 0 || p->group >= n_groups)
            return ICS_FAIL(err, ICS_ERR_INVALID, "optimizer: parameter %s: group %d does not exist (%d groups)", name,
                            p->group, n_groups);
        if (p->numel > 0 && (!p->data || !p->grad))
            return ICS_FAIL(err, ICS_ERR_INVALID, "optimizer: parameter %s has no %s buffer", name,
                            p->data ? "gradient" : "data");
    }

    ics_optim *opt = ics_calloc(1, sizeof *opt, "optimizer", err);
    if (!opt) return ICS_ERR_NOMEM;
    opt->hp = *hp;
    opt->n_groups = n_groups;
    opt->n_params = n_params;
    opt->groups = ics_malloc(sizeof *groups * (size_t)n_groups, "optimizer groups", err);
    opt->params = ics_malloc(sizeof *params * (n_params ? n_params : 1), "optimizer parameter views", err);
    opt->offsets = ics_malloc(sizeof(size_t) * (n_params ? n_params : 1), "optimizer slab offsets", err);
    opt->first_block = ics_malloc(sizeof(size_t) * (n_params ? n_params : 1), "optimizer norm blocks", err);
    if (!opt->groups || !opt->params || !opt->offsets || !opt->first_block) goto fail;
    memcpy(opt->groups, groups, sizeof *groups * (size_t)n_groups);
    if (n_params) memcpy(opt->params, params, sizeof *params * n_params);

    size_t floats = 0, blocks = 0;
    for (size_t i = 0; i < n_params; i++) {
        opt->offsets[i] = floats;
        floats += (params[i].numel + SLAB_ALIGN_FLOATS - 1) / SLAB_ALIGN_FLOATS * SLAB_ALIGN_FLOATS;
        opt->first_block[i] = blocks;
        blocks += (params[i].numel + ICS_OPTIM_NORM_BLOCK - 1) / ICS_OPTIM_NORM_BLOCK;
    }
    opt->slab_floats = floats;
    opt->n_blocks = blocks;
    opt->norm_partials = ics_malloc(sizeof(double) * (blocks ? blocks : 1), "gradient norm partial sums", err);
    opt->block_param = ics_malloc(sizeof(size_t) * (blocks ? blocks : 1), "gradient norm block table", err);
    if (!opt->norm_partials || !opt->block_param) goto fail;
    for (size_t i = 0; i < n_params; i++)
        for (size_t b = 0; b * ICS_OPTIM_NORM_BLOCK < params[i].numel; b++) opt->block_param[opt->first_block[i] + b] = i;

    if (hp->kind == ICS_OPTIM_SGD) {
        if (hp->momentum != 0.0) opt->slot_names[opt->n_slots++] = "momentum_buffer";
    } else {
        opt->slot_names[opt->n_slots++] = "exp_avg";
        opt->slot_names[opt->n_slots++] = "exp_avg_sq";
    }
    for (int s = 0; s < opt->n_slots; s++) {
        size_t bytes = sizeof(float) * (floats ? floats : 1);
        opt->slots[s] = ics_malloc_aligned(bytes, opt->slot_names[s], err);
        if (!opt->slots[s]) goto fail;
        memset(opt->slots[s], 0, bytes);
    }
    *out = opt;
    return ICS_OK;
fail:
    ics_optim_destroy(opt);
    return ICS_ERR_NOMEM;
}

void ics_optim_destroy(ics_optim *opt)
{
    if (!opt) return;
    for (int s = 0; s < ICS_OPTIM_MAX_SLOTS; s++) ics_free_aligned(opt->slots[s]);
    free(opt->norm_partials);
    free(opt->block_param);
    free(opt->first_block);
    free(opt->offsets);
    free(opt->params);
    free(opt->groups);
    free(opt);
}

void ics_optim_step(ics_optim *opt)
{
    /* torch increments the step before using it: the first step is 1. */
    int64_t step = opt->steps + 1;
    for (size_t i = 0; i < opt->n_params; i++) {
        if (opt->params[i].numel == 0) continue;
        if (opt->hp.kind == ICS_OPTIM_SGD)
            ics_optim_sgd_update(opt, i, step);
        else
            ics_optim_adam_update(opt, i, step);
    }
    opt->steps = step;
}

void ics_optim_zero_grad(ics_optim *opt)
{
    for (size_t i = 0; i < opt->n_params; i++)
        if (opt->params[i].numel) memset(opt->params[i].grad, 0, sizeof(float) * opt->params[i].numel);
}

void ics_optim_set_lr(ics_optim *opt, double lr) { opt->hp.lr = lr; }
double ics_optim_lr(const ics_optim *opt) { return opt->hp.lr; }

double ics_optim_group_lr(const ics_optim *opt, int group)
{
    if (group < 0 || group >= opt->n_groups) return 0.0;
    return opt->hp.lr * opt->groups[group].lr_scale;
}

int ics_optim_group_count(const ics_optim *opt) { return opt->n_groups; }

const ics_optim_group *ics_optim_group_get(const ics_optim *opt, int group)
{
    return group >= 0 && group < opt->n_groups ? &opt->groups[group] : NULL;
}

ics_status ics_optim_set_weight_decay(ics_optim *opt, int group, double weight_decay, ics_error *err)
{
    if (group < 0 || group >= opt->n_groups)
        return ICS_FAIL(err, ICS_ERR_INVALID, "optimizer: group %d does not exist (%d groups)", group, opt->n_groups);
    if (!(weight_decay >= 0.0))
        return ICS_FAIL(err, ICS_ERR_CONFIG, "optimizer: group %d: invalid weight decay %g (must be >= 0)", group,
                        weight_decay);
    opt->groups[group].weight_decay = weight_decay;
    return ICS_OK;
}

const ics_optim_hparams *ics_optim_get_hparams(const ics_optim *opt) { return &opt->hp; }

void ics_optim_zero_momentum(ics_optim *opt)
{
    /* Slot 0 is momentum_buffer (SGD) or exp_avg (Adam, AdamW). */
    if (opt->n_slots > 0) memset(opt->slots[0], 0, sizeof(float) * opt->slab_floats);
}

size_t ics_optim_param_count(const ics_optim *opt) { return opt->n_params; }

const ics_param_view *ics_optim_param(const ics_optim *opt, size_t index)
{
    return index < opt->n_params ? &opt->params[index] : NULL;
}

int ics_optim_slot_count(const ics_optim *opt) { return opt->n_slots; }

const char *ics_optim_slot_name(const ics_optim *opt, int slot)
{
    return slot >= 0 && slot < opt->n_slots ? opt->slot_names[slot] : NULL;
}

int ics_optim_slot_find(const ics_optim *opt, const char *name)
{
    for (int s = 0; s < opt->n_slots; s++)
        if (strcmp(opt->slot_names[s], name) == 0) return s;
    return -1;
}

float *ics_optim_slot_param(ics_optim *opt, int slot, size_t param_index)
{
    if (slot < 0 || slot >= opt->n_slots || param_index >= opt->n_params) return NULL;
    return opt->slots[slot] + opt->offsets[param_index];
}

float *ics_optim_slot_slab(ics_optim *opt, int slot, size_t *floats)
{
    if (slot < 0 || slot >= opt->n_slots) return NULL;
    if (floats) *floats = opt->slab_floats;
    return opt->slots[slot];
}

int64_t ics_optim_step_count(const ics_optim *opt) { return opt->steps; }
void ics_optim_set_step_count(ics_optim *opt, int64_t steps) { opt->steps = steps < 0 ? 0 : steps; }
