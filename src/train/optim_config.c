/*
 * src/train/optim_config.c: configuration -> optimizer, schedule, EMA.
 * The schema has already checked types, ranges and choices; what is left
 * are the checks that involve several keys or the run.
 */
#include "ics_build_config.h"
#include "train/optim_config.h"

#include <string.h>

ics_status ics_optim_create_from_config(ics_optim **out, const ics_config *cfg, ics_param_view *params,
                                        size_t n_params, ics_error *err)
{
    *out = NULL;
    const char *name = ics_config_string(cfg, "optim.name");
    /* The schema's choices admit only known names; an unknown one would
     * still be refused by ics_optim_create ("unknown kind"). */
    int kind = ics_optim_kind_parse(name);
    ics_optim_hparams hp;
    ics_optim_hparams_default(&hp, (ics_optim_kind)kind);
    hp.lr = ics_config_float(cfg, "optim.lr");
    if (kind == ICS_OPTIM_SGD) {
        hp.momentum = ics_config_float(cfg, "optim.momentum");
        hp.dampening = ics_config_float(cfg, "optim.dampening");
        hp.nesterov = ics_config_bool(cfg, "optim.nesterov");
    } else {
        hp.beta1 = ics_config_float(cfg, "optim.beta1");
        hp.beta2 = ics_config_float(cfg, "optim.beta2");
        hp.eps = ics_config_float(cfg, "optim.eps");
    }
    double wd = ics_config_float(cfg, "optim.weight_decay");
    int no_decay = ics_config_bool(cfg, "optim.no_decay_bn_bias");
    ics_optim_assign_groups(params, n_params, no_decay);
    ics_optim_group groups[2] = {{1.0, wd}, {1.0, no_decay ? 0.0 : wd}};
    ics_status st = ics_optim_create(out, &hp, groups, 2, params, n_params, err);
    if (st != ICS_OK) ics_error_prefix(err, "configuration optim.*: ");
    return st;
}

ics_status ics_lr_schedule_from_config(ics_lr_schedule *s, const ics_config *cfg, double run_epochs,
                                       ics_error *err)
{
    const char *name = ics_config_string(cfg, "sched.name");
    /* Known by the schema's choices; ics_lr_schedule_validate refuses any other. */
    int kind = ics_sched_kind_parse(name);
    ics_lr_schedule_init(s, (ics_sched_kind)kind, ics_config_float(cfg, "optim.lr"));
    s->interval = strcmp(ics_config_string(cfg, "sched.interval"), "step") == 0 ? ICS_SCHED_PER_STEP
                                                                                : ICS_SCHED_PER_EPOCH;
    s->warmup_epochs = ics_config_float(cfg, "sched.warmup_epochs");
    s->warmup = strcmp(ics_config_string(cfg, "sched.warmup_method"), "constant") == 0 ? ICS_WARMUP_CONSTANT
                                                                                       : ICS_WARMUP_LINEAR;
    s->warmup_start_factor = ics_config_float(cfg, "sched.warmup_start_factor");
    s->step_size = ics_config_float(cfg, "sched.step_size");
    s->gamma = ics_config_float(cfg, "sched.gamma");
    s->eta_min = ics_config_float(cfg, "sched.min_lr");
    const double *milestones = NULL;
    int n = ics_config_float_list(cfg, "sched.milestones", &milestones);
    if (n > ICS_SCHED_MAX_MILESTONES)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "sched.milestones: %d milestones, at most %d", n,
                        ICS_SCHED_MAX_MILESTONES);
    if (kind == ICS_SCHED_MULTISTEP && n == 0)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "sched.milestones: the multistep schedule needs at least one milestone");
    s->n_milestones = n;
    for (int i = 0; i < n; i++) s->milestones[i] = milestones[i];
    s->t_max = ics_config_float(cfg, "sched.t_max");
    if (s->t_max == 0.0) {
        s->t_max = run_epochs - s->warmup_epochs;
        if (kind == ICS_SCHED_COSINE && !(s->t_max > 0.0))
            return ICS_FAIL(err, ICS_ERR_CONFIG,
                            "sched.t_max is 0 (the run's epochs minus warm-up) but the run has %g epochs and "
                            "sched.warmup_epochs is %g: set sched.t_max",
                            run_epochs, s->warmup_epochs);
        if (!(s->t_max > 0.0)) s->t_max = 1.0; /* unused by the other shapes */
    }
    ics_status st = ics_lr_schedule_validate(s, err);
    if (st != ICS_OK) ics_error_prefix(err, "configuration sched.*: ");
    return st;
}

ics_status ics_ema_config_from_config(ics_ema_config *ema, int *enabled, const ics_config *cfg, int world_size,
                                      double run_epochs, ics_error *err)
{
    memset(ema, 0, sizeof *ema);
    *enabled = ics_config_bool(cfg, "ema.enabled");
    const char *mode = ics_config_string(cfg, "ema.mode");
    /* Known by the schema's choices; ics_ema_create refuses any other. */
    ema->mode = (ics_ema_mode)ics_ema_mode_parse(mode);
    ema->decay = ics_config_float(cfg, "ema.decay");
    ema->every_steps = ics_config_int(cfg, "ema.every_steps");
    ema->warmup_epochs = ics_config_float(cfg, "ema.warmup_epochs");
    if (ema->warmup_epochs < 0) ema->warmup_epochs = ics_config_float(cfg, "sched.warmup_epochs");
    ema->buffers_averaged = strcmp(ics_config_string(cfg, "ema.buffers"), "average") == 0;
    ema->world_size = world_size;
    ema->batch_size = ics_config_int(cfg, "train.batch_size") * ics_config_int(cfg, "train.grad_accum_steps");
    ema->epochs = run_epochs;
    if (*enabled && ema->mode == ICS_EMA_TORCHVISION && !(run_epochs > 0.0))
        return ICS_FAIL(err, ICS_ERR_CONFIG,
                        "ema.mode torchvision scales the decay by the run's epochs, which are %g: use ema.mode = "
                        "\"constant\"",
                        run_epochs);
    return ICS_OK;
}
