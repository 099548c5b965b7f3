/*
 * src/train/lr_schedule.c: the closed forms described in lr_schedule.h.
 */
#include "ics_build_config.h"
#include "train/lr_schedule.h"

#include <math.h>
#include <string.h>

void ics_lr_schedule_init(ics_lr_schedule *s, ics_sched_kind kind, double base_lr)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->interval = ICS_SCHED_PER_EPOCH;
    s->base_lr = base_lr;
    s->step_size = 30;
    s->gamma = 0.1;
    s->t_max = 1;
    s->warmup = ICS_WARMUP_LINEAR;
    s->warmup_start_factor = 0.01; /* torchvision's --lr-warmup-decay */
}

static const char *const kind_names[] = {"constant", "step", "multistep", "exponential", "cosine"};

int ics_sched_kind_parse(const char *name)
{
    for (int k = 0; name && k < (int)(sizeof kind_names / sizeof *kind_names); k++)
        if (strcmp(name, kind_names[k]) == 0) return k;
    return -1;
}

const char *ics_sched_kind_name(ics_sched_kind kind)
{
    return (int)kind >= 0 && (int)kind < (int)(sizeof kind_names / sizeof *kind_names) ? kind_names[kind] : "unknown";
}

ics_status ics_lr_schedule_validate(const ics_lr_schedule *s, ics_error *err)
{
    if (!(s->base_lr >= 0.0)) return ICS_FAIL(err, ICS_ERR_CONFIG, "lr schedule: invalid base lr %g (must be >= 0)", s->base_lr);
    switch (s->kind) {
    case ICS_SCHED_CONSTANT: break;
    case ICS_SCHED_STEP:
        if (!(s->step_size > 0.0))
            return ICS_FAIL(err, ICS_ERR_CONFIG, "lr schedule step: step_size %g must be > 0", s->step_size);
        break;
    case ICS_SCHED_MULTISTEP:
        if (s->n_milestones < 0 || s->n_milestones > ICS_SCHED_MAX_MILESTONES)
            return ICS_FAIL(err, ICS_ERR_CONFIG, "lr schedule multistep: %d milestones (at most %d)", s->n_milestones,
                            ICS_SCHED_MAX_MILESTONES);
        for (int i = 1; i < s->n_milestones; i++)
            if (!(s->milestones[i] > s->milestones[i - 1]))
                return ICS_FAIL(err, ICS_ERR_CONFIG,
                                "lr schedule multistep: milestones must increase (milestone %d = %g after %g)", i,
                                s->milestones[i], s->milestones[i - 1]);
        break;
    case ICS_SCHED_EXPONENTIAL: break;
    case ICS_SCHED_COSINE:
        if (!(s->t_max > 0.0))
            return ICS_FAIL(err, ICS_ERR_CONFIG, "lr schedule cosine: T_max %g must be > 0", s->t_max);
        break;
    default: return ICS_FAIL(err, ICS_ERR_INVALID, "lr schedule: unknown kind %d", (int)s->kind);
    }
    if (s->kind != ICS_SCHED_CONSTANT && s->kind != ICS_SCHED_COSINE && !(s->gamma > 0.0))
        return ICS_FAIL(err, ICS_ERR_CONFIG, "lr schedule %s: gamma %g must be > 0", ics_sched_kind_name(s->kind),
                        s->gamma);
    if (!(s->warmup_epochs >= 0.0))
        return ICS_FAIL(err, ICS_ERR_CONFIG, "lr schedule: warm-up epochs %g must be >= 0", s->warmup_epochs);
    if (s->warmup_epochs > 0.0 && !(s->warmup_start_factor > 0.0 && s->warmup_start_factor <= 1.0))
        return ICS_FAIL(err, ICS_ERR_CONFIG, "lr schedule: warm-up start factor %g must be in (0, 1]",
                        s->warmup_start_factor);
    return ICS_OK;
}

/* The main schedule at t epochs after warm-up. */
static double main_lr(const ics_lr_schedule *s, double t)
{
    switch (s->kind) {
    case ICS_SCHED_CONSTANT: return s->base_lr;
    case ICS_SCHED_STEP: return s->base_lr * pow(s->gamma, floor(t / s->step_size));
    case ICS_SCHED_MULTISTEP: {
        int passed = 0;
        while (passed < s->n_milestones && s->milestones[passed] <= t) passed++;
        return s->base_lr * pow(s->gamma, passed);
    }
    case ICS_SCHED_EXPONENTIAL: return s->base_lr * pow(s->gamma, t);
    case ICS_SCHED_COSINE:
        return s->eta_min + (s->base_lr - s->eta_min) * (1.0 + cos(M_PI * t / s->t_max)) / 2.0;
    }
    return s->base_lr;
}

double ics_lr_schedule_at(const ics_lr_schedule *s, double epoch)
{
    double e = epoch < 0.0 ? 0.0 : epoch;
    if (s->interval == ICS_SCHED_PER_EPOCH) e = floor(e);
    if (e < s->warmup_epochs) {
        double f = s->warmup == ICS_WARMUP_CONSTANT
                       ? s->warmup_start_factor
                       : s->warmup_start_factor + (1.0 - s->warmup_start_factor) * e / s->warmup_epochs;
        return s->base_lr * f;
    }
    return main_lr(s, e - s->warmup_epochs);
}
