/*
 * src/train/optim.h: optimizers over a list of parameter views.
 *
 * The model keeps its parameters in one slab and their gradients in another;
 * the optimizer sees only views (name, data, grad, numel, ndim, group) and
 * does not care where they live. Each view belongs to a parameter group with
 * its own lr multiplier and weight decay (group 0 = decay, group 1 = no decay
 * for BatchNorm weights and biases, by convention).
 *
 * Updates follow torch.optim (1.13/2.x single-tensor path) operation by
 * operation in float32, so trajectories match PyTorch to float rounding:
 *   SGD:   g = g + wd*p; buf = g (first step) or momentum*buf + (1-dampening)*g;
 *          g = nesterov ? g + momentum*buf : buf;  p -= lr*g
 *   Adam:  g = g + wd*p; m = beta1*m + (1-beta1)*g; v = beta2*v + (1-beta2)*g*g;
 *          p -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
 *   AdamW: p *= 1 - lr*wd, then Adam without the wd term.
 *
 * State (momentum_buffer, exp_avg, exp_avg_sq) lives in one slab per slot,
 * with the same parameter order as the views; slots are reachable by name so
 * checkpoints save and restore them exactly, together with the step count.
 * Update loops use OpenMP over elements; every element's arithmetic is
 * independent of the thread count, so results are deterministic.
 */
#ifndef ICS_TRAIN_OPTIM_H
#define ICS_TRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>
#include <icsparse/status.h>

/* A parameter as the optimizer sees it. name and the buffers are borrowed:
 * they must outlive the optimizer. ndim decides the default group
 * (ics_optim_assign_groups): 1-D tensors are biases and norm weights. */
typedef struct ics_param_view {
    const char *name;
    float *data;
    float *grad;
    size_t numel;
    int ndim;
    int group;
} ics_param_view;

typedef enum ics_optim_kind { ICS_OPTIM_SGD = 0, ICS_OPTIM_ADAM, ICS_OPTIM_ADAMW } ics_optim_kind;

/* Per-group settings: lr = schedule lr * lr_scale. */
typedef struct ics_optim_group {
    double lr_scale;
    double weight_decay;
} ics_optim_group;

/* Hyper-parameters shared by all groups. */
typedef struct ics_optim_hparams {
    ics_optim_kind kind;
    double lr;
    double momentum, dampening; /* SGD */
    int nesterov;               /* SGD; needs momentum > 0 and dampening == 0 (torch's rule) */
    double beta1, beta2, eps;   /* Adam, AdamW */
} ics_optim_hparams;

typedef struct ics_optim ics_optim;

/* torch.optim's defaults for kind: SGD lr 0.1 momentum 0 dampening 0, Adam
 * and AdamW lr 1e-3 betas (0.9, 0.999) eps 1e-8. */
void ics_optim_hparams_default(ics_optim_hparams *hp, ics_optim_kind kind);
/* "sgd" | "adam" | "adamw" -> kind; -1 if unknown. */
int ics_optim_kind_parse(const char *name);
const char *ics_optim_kind_name(ics_optim_kind kind);

/* Puts 1-D views (biases, norm weights) in group 1 when no_decay_1d, every
 * other view in group 0 (timm's and torchvision's norm_weight_decay rule). */
void ics_optim_assign_groups(ics_param_view *params, size_t n_params, int no_decay_1d);

/* Creates an optimizer over n_params views (copied; their buffers borrowed)
 * and n_groups groups (copied). Checks the hyper-parameters the way
 * torch.optim's constructors do and that every view's group exists.
 * State slabs are allocated here, zeroed; nothing is allocated per step. */
ics_status ics_optim_create(ics_optim **out, const ics_optim_hparams *hp, const ics_optim_group *groups,
                            int n_groups, const ics_param_view *params, size_t n_params,
                            ics_error *err);
void ics_optim_destroy(ics_optim *opt);

/* One update of every parameter from its gradient, at the current lr. */
void ics_optim_step(ics_optim *opt);
/* Sets every gradient to zero (gradients accumulate, so the trainer calls
 * this after each step). */
void ics_optim_zero_grad(ics_optim *opt);

/* The schedule's lr (before each group's lr_scale). */
void ics_optim_set_lr(ics_optim *opt, double lr);
double ics_optim_lr(const ics_optim *opt);
/* The lr a group actually uses. */
double ics_optim_group_lr(const ics_optim *opt, int group);
int ics_optim_group_count(const ics_optim *opt);
const ics_optim_group *ics_optim_group_get(const ics_optim *opt, int group);
/* Changes a group's weight decay (SetWeightDecayModifier). */
ics_status ics_optim_set_weight_decay(ics_optim *opt, int group, double weight_decay, ics_error *err);
const ics_optim_hparams *ics_optim_get_hparams(const ics_optim *opt);

/* Zeroes the first-moment state: SGD's momentum buffers (what SparseML's
 * AC/DC modifier does at each decompressed phase), Adam's exp_avg (the
 * analogue; SparseML leaves Adam alone). The step count is kept. */
void ics_optim_zero_momentum(ics_optim *opt);

/* Scales all gradients so that their global L2 norm is at most max_norm,
 * like torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6),
 * applied when < 1. Returns the norm before clipping in *total_norm
 * (computed in double, in a fixed order, so every rank and thread count
 * gets the same value). A non-finite norm leaves the gradients untouched
 * (torch would turn them into NaN); the caller sees it in *total_norm. */
void ics_optim_clip_grad_norm(ics_optim *opt, double max_norm, double *total_norm);

/* Parameters, in creation order. */
size_t ics_optim_param_count(const ics_optim *opt);
const ics_param_view *ics_optim_param(const ics_optim *opt, size_t index);

/* State slots by name: SGD with momentum has "momentum_buffer"; Adam and
 * AdamW have "exp_avg", "exp_avg_sq" (torch's state keys). SGD without
 * momentum has none. */
int ics_optim_slot_count(const ics_optim *opt);
const char *ics_optim_slot_name(const ics_optim *opt, int slot);
/* The slot's index, or -1 when this optimizer has no such slot. */
int ics_optim_slot_find(const ics_optim *opt, const char *name);
/* The slot's values for one parameter (numel floats, same order as data). */
float *ics_optim_slot_param(ics_optim *opt, int slot, size_t param_index);
/* The whole slab of a slot and its length in floats (parameters are laid
 * out in order, each starting on a 64-byte boundary). */
float *ics_optim_slot_slab(ics_optim *opt, int slot, size_t *floats);

/* Optimizer steps taken (torch's per-parameter "step"; all parameters step
 * together here). Restoring a checkpoint sets it with the slots: a count
 * > 0 means the momentum buffers hold state (torch's buffer exists). */
int64_t ics_optim_step_count(const ics_optim *opt);
void ics_optim_set_step_count(ics_optim *opt, int64_t steps);

#endif
