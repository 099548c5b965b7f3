/*
 * src/train/optim_config.h: builds the optimizer, the learning-rate schedule
 * and the EMA settings from the configuration (optim.*, sched.*, ema.*;
 * keys in src/config/schema_optim.c). Errors name the keys involved.
 */
#ifndef ICS_TRAIN_OPTIM_CONFIG_H
#define ICS_TRAIN_OPTIM_CONFIG_H

#include <icsparse/config.h>
#include "train/ema.h"
#include "train/lr_schedule.h"
#include "train/optim.h"

/* Creates the optimizer named by optim.name over the views. Sets each
 * view's group first: with optim.no_decay_bn_bias, 1-D views go to group 1
 * (weight decay 0), the rest to group 0 (optim.weight_decay); both groups
 * use the full lr. */
ics_status ics_optim_create_from_config(ics_optim **out, const ics_config *cfg, ics_param_view *params,
                                        size_t n_params, ics_error *err);

/* Fills the schedule from sched.* with base lr optim.lr. run_epochs (the
 * run's total epochs) gives T_max when sched.t_max is 0: run_epochs minus
 * the warm-up, as torchvision's trainer does. */
ics_status ics_lr_schedule_from_config(ics_lr_schedule *s, const ics_config *cfg, double run_epochs,
                                       ics_error *err);

/* Fills the EMA settings from ema.* (and sched.warmup_epochs when
 * ema.warmup_epochs is -1). The torchvision decay adjustment counts images
 * per EMA update: world_size x train.batch_size x train.grad_accum_steps
 * per optimizer step. *enabled gets ema.enabled. */
ics_status ics_ema_config_from_config(ics_ema_config *ema, int *enabled, const ics_config *cfg, int world_size,
                                      double run_epochs, ics_error *err);

#endif
