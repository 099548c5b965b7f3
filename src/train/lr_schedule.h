/*
 * src/train/lr_schedule.h: learning-rate schedules as pure functions of the
 * fractional epoch (epoch = optimizer steps / steps per epoch).
 *
 * The shapes are torch.optim.lr_scheduler's closed forms, with t the epoch
 * since the end of warm-up:
 *   constant     base
 *   step         base * gamma^floor(t / step_size)                (StepLR)
 *   multistep    base * gamma^(number of milestones <= t)         (MultiStepLR)
 *   exponential  base * gamma^t                                   (ExponentialLR)
 *   cosine       eta_min + (base - eta_min) * (1 + cos(pi t / T_max)) / 2
 *                                                        (CosineAnnealingLR;
 *                past T_max it rises again, as torch's does)
 * Warm-up over W epochs (torchvision's SequentialLR([LinearLR or ConstantLR,
 * main], milestones=[W])): for e < W the lr is base * f(e) with
 *   linear    f = s + (1 - s) * e / W     (LinearLR, start_factor s)
 *   constant  f = s                       (ConstantLR, factor s)
 * and from e = W on the main schedule runs at t = e - W.
 *
 * Fractional epochs. torch's schedulers are discrete: the torchvision trainer
 * calls scheduler.step() once per epoch, so the lr is constant within an
 * epoch. interval = ICS_SCHED_PER_EPOCH reproduces that exactly: e is
 * replaced by floor(e) before anything else. interval = ICS_SCHED_PER_STEP
 * evaluates the same closed forms at the fractional epoch itself (what a
 * per-iteration torch scheduler with epoch-scaled parameters gives): a
 * smooth cosine, exponential and warm-up, while step/multistep still
 * change at the (possibly fractional) boundaries. Both modes agree with
 * torch at every integer epoch.
 */
#ifndef ICS_TRAIN_LR_SCHEDULE_H
#define ICS_TRAIN_LR_SCHEDULE_H

#include <icsparse/status.h>

#define ICS_SCHED_MAX_MILESTONES 32

typedef enum ics_sched_kind {
    ICS_SCHED_CONSTANT = 0,
    ICS_SCHED_STEP,
    ICS_SCHED_MULTISTEP,
    ICS_SCHED_EXPONENTIAL,
    ICS_SCHED_COSINE
} ics_sched_kind;

typedef enum ics_sched_interval { ICS_SCHED_PER_EPOCH = 0, ICS_SCHED_PER_STEP } ics_sched_interval;
typedef enum ics_sched_warmup { ICS_WARMUP_LINEAR = 0, ICS_WARMUP_CONSTANT } ics_sched_warmup;

typedef struct ics_lr_schedule {
    ics_sched_kind kind;
    ics_sched_interval interval;
    double base_lr;
    double step_size;  /* step: epochs between decays (> 0) */
    double gamma;      /* step, multistep, exponential */
    double milestones[ICS_SCHED_MAX_MILESTONES]; /* multistep: epochs after warm-up, increasing */
    int n_milestones;
    double t_max;      /* cosine: epochs of the half period (> 0) */
    double eta_min;    /* cosine: lowest lr */
    double warmup_epochs;       /* 0: none */
    ics_sched_warmup warmup;
    double warmup_start_factor; /* in (0, 1] for linear, > 0 for constant */
} ics_lr_schedule;

/* A constant schedule at base_lr with torch's defaults for the rest
 * (gamma 0.1, step_size 30, no warm-up, per-epoch). */
void ics_lr_schedule_init(ics_lr_schedule *s, ics_sched_kind kind, double base_lr);
/* Names used in configuration: "constant", "step", "multistep",
 * "exponential", "cosine"; -1 if unknown. */
int ics_sched_kind_parse(const char *name);
const char *ics_sched_kind_name(ics_sched_kind kind);

/* Checks a schedule's parameters (positive step size and T_max, increasing
 * milestones, a sensible warm-up factor). */
ics_status ics_lr_schedule_validate(const ics_lr_schedule *s, ics_error *err);

/* The lr at a fractional epoch (>= 0). Pure: same input, same output. */
double ics_lr_schedule_at(const ics_lr_schedule *s, double epoch);

#endif
