/*
 * Schema section owned by src/train: optimizer (optim.*), learning-rate
 * schedule (sched.*) and weight EMA (ema.*). Defaults are torch.optim's and
 * torchvision's reference trainer's unless the doc says otherwise. A recipe's
 * learning-rate modifiers take precedence over sched.* (as in SparseML's
 * trainer, which drops its scheduler when the recipe has LR modifiers).
 * Fields: key, type, default (text), min, max (min > max: no range),
 * choices (strings), one-line doc.
 */
#include "ics_build_config.h"
#include "config/schema.h"

#define NO_RANGE 1, 0

const ics_config_key ics_schema_optim[] = {
    /* optim */
    {"optim.name", ICS_CFG_STRING, "sgd", NO_RANGE, "sgd|adam|adamw", "optimizer (torch.optim.SGD, Adam, AdamW)"},
    {"optim.lr", ICS_CFG_FLOAT, "0.1", 0, 1e6, NULL, "base learning rate (the schedule scales it)"},
    {"optim.momentum", ICS_CFG_FLOAT, "0.9", 0, 1, NULL, "SGD momentum (0: plain SGD, no momentum buffers)"},
    {"optim.dampening", ICS_CFG_FLOAT, "0", 0, 1, NULL, "SGD dampening of the gradient added to the momentum"},
    {"optim.nesterov", ICS_CFG_BOOL, "false", NO_RANGE, NULL, "SGD Nesterov momentum (needs momentum > 0, dampening 0)"},
    {"optim.weight_decay", ICS_CFG_FLOAT, "1e-4", 0, 1, NULL,
     "weight decay (SGD, Adam: L2 added to the gradient; AdamW: decoupled)"},
    {"optim.no_decay_bn_bias", ICS_CFG_BOOL, "false", NO_RANGE, NULL,
     "no weight decay for 1-D parameters (biases, BatchNorm weights)"},
    {"optim.beta1", ICS_CFG_FLOAT, "0.9", 0, 0.999999, NULL, "Adam/AdamW first-moment decay"},
    {"optim.beta2", ICS_CFG_FLOAT, "0.999", 0, 0.999999999, NULL, "Adam/AdamW second-moment decay"},
    {"optim.eps", ICS_CFG_FLOAT, "1e-8", 0, 1, NULL, "Adam/AdamW term added to the denominator"},
    {"optim.clip_grad_norm", ICS_CFG_FLOAT, "0", 0, 1e9, NULL, "clip gradients to this global L2 norm (0: off)"},

    /* sched */
    {"sched.name", ICS_CFG_STRING, "constant", NO_RANGE, "constant|step|multistep|exponential|cosine",
     "learning-rate schedule after warm-up (torch.optim.lr_scheduler shapes)"},
    {"sched.interval", ICS_CFG_STRING, "epoch", NO_RANGE, "epoch|step",
     "epoch: lr changes once per epoch (torchvision trainer); step: evaluated at the fractional epoch"},
    {"sched.warmup_epochs", ICS_CFG_FLOAT, "0", 0, 1e6, NULL, "epochs of warm-up before the schedule (0: none)"},
    {"sched.warmup_method", ICS_CFG_STRING, "linear", NO_RANGE, "linear|constant",
     "warm-up shape: linear from the start factor to 1 (LinearLR), or constant (ConstantLR)"},
    {"sched.warmup_start_factor", ICS_CFG_FLOAT, "0.01", 1e-12, 1, NULL,
     "lr factor at the start of warm-up (torchvision's --lr-warmup-decay)"},
    {"sched.step_size", ICS_CFG_FLOAT, "30", 1e-9, 1e6, NULL, "step: epochs between decays"},
    {"sched.gamma", ICS_CFG_FLOAT, "0.1", 1e-12, 1e3, NULL, "step, multistep: factor per decay; exponential: per epoch"},
    {"sched.milestones", ICS_CFG_FLOAT_LIST, "[]", 0, 1e6, NULL,
     "multistep: epochs (counted after warm-up) at which the lr is multiplied by gamma"},
    {"sched.min_lr", ICS_CFG_FLOAT, "0", 0, 1e6, NULL, "cosine: lowest learning rate (eta_min)"},
    {"sched.t_max", ICS_CFG_FLOAT, "0", 0, 1e6, NULL,
     "cosine: epochs from the top to min_lr (0: the run's epochs minus warm-up, as torchvision)"},

    /* ema */
    {"ema.enabled", ICS_CFG_BOOL, "false", NO_RANGE, NULL, "keep an exponential moving average of the weights"},
    {"ema.decay", ICS_CFG_FLOAT, "0.99998", 0, 1, NULL, "EMA decay (before the mode's adjustment)"},
    {"ema.every_steps", ICS_CFG_INT, "32", 1, 1e9, NULL, "update the EMA every N optimizer steps"},
    {"ema.warmup_epochs", ICS_CFG_FLOAT, "-1", -1, 1e6, NULL,
     "the EMA copies the weights until this epoch (-1: sched.warmup_epochs, as torchvision)"},
    {"ema.mode", ICS_CFG_STRING, "torchvision", NO_RANGE, "torchvision|constant|warmup",
     "decay used: torchvision (scaled by global batch x every_steps / epochs), constant, or "
     "warmup (min(decay, (1+n)/(10+n)))"},
    {"ema.buffers", ICS_CFG_STRING, "copy", NO_RANGE, "copy|average",
     "BatchNorm statistics in the EMA: copied from the model, or averaged like weights (torchvision)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};
