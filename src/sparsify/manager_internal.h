/*
 * src/sparsify/manager_internal.h: the manager's state, shared by the
 * manager (schedule, masks, queries) and the modifier files (one per
 * modifier family: modifier_lr.c, modifier_weight_decay.c,
 * modifier_pruning.c, modifier_trainable.c, modifier_distillation.c).
 */
#ifndef ICS_SPARSIFY_MANAGER_INTERNAL_H
#define ICS_SPARSIFY_MANAGER_INTERNAL_H

#include <icsparse/manager.h>
#include "sparsify/mask.h"
#include "train/optim.h"

/* A parameter some pruning modifier selects. */
typedef struct mgr_param {
    int tensor; /* index in the model's tensor table */
    const char *name;
    float *data, *grad;
    size_t numel;
    int ndim;
    const int64_t *shape;
    float *mask; /* the combined mask: product of the enabled modifiers' masks */
    int active;  /* 1 when an enabled modifier masks it */
} mgr_param;

/* A pruning modifier's own state. */
typedef struct mgr_prune {
    size_t count;
    int *param;     /* indices into ics_manager.params */
    int *group;     /* sparsity group of each */
    float **mask;   /* this modifier's masks */
    double *init;   /* initial sparsity of each (__FROM_PARAM__: measured at start) */
    int enabled;    /* masks applied */
    double phase;   /* AC/DC: the current phase index, -1 before the start */
    double applied; /* sparsity of group 0 at the last mask update */
} mgr_prune;

/* A TrainableParamsModifier's state. */
typedef struct mgr_trainable {
    size_t count;
    int *tensor;        /* model tensor indices */
    unsigned char *was; /* frozen flags before the start (restored at the end) */
} mgr_trainable;

/* One modifier in schedule order with SparseML's started/ended flags. */
typedef struct mgr_mod {
    const ics_modifier *mod;
    int started, ended;
    double last_update; /* -1: never */
    mgr_prune *prune;
    mgr_trainable *trainable;
} mgr_mod;

struct ics_manager {
    const ics_recipe *recipe;
    ics_model *model;
    ics_optim *optim;
    size_t mod_count;
    mgr_mod *mods;
    size_t param_count;
    mgr_param *params;
    int controls_lr, has_pruning;
    /* TrainableParams: frozen flag per model tensor and, for each tensor
     * any modifier may freeze, room to save its data and optimizer state
     * across a step */
    unsigned char *frozen;
    size_t *save_offset; /* per model tensor: offset into save (SIZE_MAX: none) */
    long *optim_index;   /* per model tensor: the optimizer view index, -1 none */
    float *save;
    size_t save_floats;
    int frozen_saved; /* before_step saved the frozen tensors */
};

/* ---- modifier families ------------------------------------------------- */

/* 1 for the three LR modifier types. */
int mgr_is_lr(ics_modifier_type type);
/* The lr one LR modifier gives at epoch (clamped to its range), and the
 * epoch of its latest update at epoch (-1 when it has not started). */
double mgr_lr_value(const ics_modifier *mod, double epoch, int64_t steps_per_epoch,
                    double *update_epoch);

/* SetWeightDecayModifier start: every optimizer group's weight decay. */
ics_status mgr_weight_decay_start(ics_manager *m, mgr_mod *mm, ics_error *err);

/* Pruning: 1 for the five pruning types. */
int mgr_is_pruning(ics_modifier_type type);
/* Allocates a pruning modifier's state, selecting its params (adding them to
 * m->params) and checking the mask kind against each shape. */
ics_status mgr_prune_create(ics_manager *m, mgr_mod *mm, ics_error *err);
void mgr_prune_destroy(mgr_prune *p);
/* Runs the modifier's update at epoch (start, scheduled update, or end);
 * sets *changed when its masks or enabled flag changed. */
ics_status mgr_prune_update(ics_manager *m, mgr_mod *mm, double epoch, int starting, int ending,
                            int *changed, ics_error *err);
/* Computes the masks at the modifier's final state (one-shot). */
ics_status mgr_prune_oneshot(ics_manager *m, mgr_mod *mm, ics_error *err);
/* The modifier's mask kind. */
ics_mask_kind mgr_prune_kind(const ics_modifier *mod);

/* TrainableParams: state, start (freeze or unfreeze) and end (restore). */
ics_status mgr_trainable_create(ics_manager *m, mgr_mod *mm, ics_error *err);
void mgr_trainable_destroy(mgr_trainable *t);
void mgr_trainable_start(ics_manager *m, mgr_mod *mm);
void mgr_trainable_end(ics_manager *m, mgr_mod *mm);
/* Around the optimizer step: zero the frozen gradients and save data and
 * optimizer state; restore them after. */
void mgr_trainable_before_step(ics_manager *m);
void mgr_trainable_after_step(ics_manager *m);

/* QuantizationModifier: applies the QAT structure at the start and the
 * observer / BN-freeze epochs at every step after (starting: this step is
 * its start). */
/* Checks its options against the model when the recipe is bound. */
ics_status mgr_quant_check(const ics_manager *m, const ics_modifier *mod, ics_error *err);
ics_status mgr_quant_update(ics_manager *m, mgr_mod *mm, double epoch, int starting, ics_error *err);

/* Selects model parameters (weights, biases, BN affine) with a recipe's
 * selectors; selected has one flag per model tensor. */
ics_status mgr_select(const ics_manager *m, const ics_name_list *selectors, unsigned char *selected,
                      ics_error *err);

/* Distillation: the mixed loss and its gradient (modifier_distillation.c). */
float mgr_distillation_loss(int batch, int classes, const float *student_logits,
                            const int32_t *labels, const float *teacher_logits,
                            float label_smoothing, double hardness, double temperature, float scale,
                            float *dlogits, float *probs);

#endif
