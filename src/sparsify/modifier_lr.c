/*
 * Learning-rate modifiers: LearningRateFunctionModifier (linear, cosine,
 * cyclic_linear), LearningRateModifier (torch.optim.lr_scheduler classes
 * with epochs converted to optimizer steps as SparseML does) and
 * SetLearningRateModifier. Each is a pure function of the epoch, so a
 * resumed run gets the same lr as an uninterrupted one.
 */
#include "ics_build_config.h"
#include "sparsify/manager_internal.h"

#include <math.h>

int mgr_is_lr(ics_modifier_type type)
{
    return type == ICS_MOD_LR_FUNCTION || type == ICS_MOD_LR || type == ICS_MOD_SET_LR;
}

/* Optimizer steps from the modifier's start to epoch (start -1 is 0), as
 * SparseML counts them: round(epochs * steps_per_epoch). */
static int64_t steps_since(double start, double epoch, int64_t spe)
{
    double s = start < 0 ? 0.0 : start;
    return (int64_t)llround((epoch - s) * (double)spe);
}

/* LearningRateFunctionModifier (SparseML modifier_lr.py):
 *   linear         init + x * (final - init),  x = (epoch - start) / (end - start)
 *   cosine         cosine from init to final over [start, end]: going down,
 *                  final + (init - final) * (1 + cos(pi x)) / 2; going up,
 *                  init + (final - init) * (1 + cos(pi (x + 1))) / 2
 *   cyclic_linear  linear from init to final over each cycle of cycle_epochs
 *                  (counted in optimizer steps), restarting at init
 * x is clamped to [0, 1]: past end_epoch the lr stays at final. */
static double lr_function(const ics_modifier *mod, double epoch, int64_t spe)
{
    const ics_lr_function_spec *s = &mod->u.lr_function;
    double start = mod->start_epoch < 0 ? 0.0 : mod->start_epoch;
    double x = (epoch - start) / (mod->end_epoch - start);
    if (x < 0) x = 0;
    if (x > 1) x = 1;
    switch (s->lr_func) {
    case ICS_LR_FUNC_LINEAR:
        return s->init_lr + x * (s->final_lr - s->init_lr);
    case ICS_LR_FUNC_COSINE:
        if (s->final_lr < s->init_lr)
            return s->final_lr + 0.5 * (1.0 + cos(M_PI * x)) * (s->init_lr - s->final_lr);
        return s->init_lr + 0.5 * (1.0 + cos(M_PI * (x + 1.0))) * (s->final_lr - s->init_lr);
    default: {
        int64_t cycle = (int64_t)llround(s->cycle_epochs * (double)spe);
        if (cycle < 1) cycle = 1;
        double end = mod->end_epoch;
        double e = epoch > end ? end : epoch;
        int64_t step = steps_since(mod->start_epoch, e, spe);
        if (step < 0) step = 0;
        double pos = (double)(step % cycle) / (double)cycle;
        return s->init_lr + pos * (s->final_lr - s->init_lr);
    }
    }
}

/* LearningRateModifier: the torch scheduler SparseML builds at the start,
 * stepped once per optimizer step with epoch-valued arguments converted to
 * steps:
 *   StepLR       init * gamma^floor(steps / round(step_size * spe))
 *   MultiStepLR  init * gamma^(number of milestones m with
 *                round((m - start) * spe) <= steps); milestones are epochs
 *   ExponentialLR init * gamma^floor(steps / spe)  (one decay per epoch)
 *   CosineAnnealingWarmRestarts  eta_min + (init - eta_min)(1 + cos(pi T_cur/T_i))/2
 *                with T_0 = cycle_epochs, T_i = T_0 * T_mult^cycle (epochs)
 * After end_epoch the lr stays at its value at end_epoch. */
static double lr_class(const ics_modifier *mod, double epoch, int64_t spe)
{
    const ics_lr_spec *s = &mod->u.lr;
    if (mod->end_epoch >= 0 && epoch > mod->end_epoch) epoch = mod->end_epoch;
    int64_t steps = steps_since(mod->start_epoch, epoch, spe);
    if (steps < 0) steps = 0;
    switch (s->lr_class) {
    case ICS_LR_STEP: {
        int64_t size = (int64_t)llround(s->step_size * (double)spe);
        if (size < 1) size = 1;
        return s->init_lr * pow(s->gamma, (double)(steps / size));
    }
    case ICS_LR_MULTI_STEP: {
        int passed = 0;
        for (size_t i = 0; i < s->milestone_count; i++)
            if (steps_since(mod->start_epoch, s->milestones[i], spe) <= steps) passed++;
        return s->init_lr * pow(s->gamma, passed);
    }
    case ICS_LR_EXPONENTIAL:
        return s->init_lr * pow(s->gamma, (double)(steps / (spe > 0 ? spe : 1)));
    default: {
        double t = (double)steps / (double)(spe > 0 ? spe : 1);
        double t0 = s->cycle_epochs, ti = t0, tcur;
        if (s->cycle_mult <= 1) {
            tcur = fmod(t, t0);
        } else {
            /* torch's closed form for T_mult > 1 */
            double mult = s->cycle_mult;
            double n = floor(log(t / t0 * (mult - 1.0) + 1.0) / log(mult));
            tcur = t - t0 * (pow(mult, n) - 1.0) / (mult - 1.0);
            ti = t0 * pow(mult, n);
        }
        return s->lr_min + (s->init_lr - s->lr_min) * (1.0 + cos(M_PI * tcur / ti)) / 2.0;
    }
    }
}

double mgr_lr_value(const ics_modifier *mod, double epoch, int64_t spe, double *update_epoch)
{
    double start = mod->start_epoch;
    if (start >= 0 && epoch < start) {
        *update_epoch = -1;
        return -1;
    }
    double s0 = start < 0 ? 0.0 : start;
    switch (mod->type) {
    case ICS_MOD_SET_LR:
        /* set once, at the start */
        *update_epoch = s0;
        return mod->u.learning_rate;
    case ICS_MOD_LR_FUNCTION:
        *update_epoch = epoch > mod->end_epoch ? mod->end_epoch : epoch;
        return lr_function(mod, epoch, spe);
    default:
        *update_epoch = mod->end_epoch >= 0 && epoch > mod->end_epoch ? mod->end_epoch : epoch;
        return lr_class(mod, epoch, spe);
    }
}

/* The lr the recipe gives at epoch: of the LR modifiers started by then,
 * the one that updated last wins (ties: the later in schedule order), which
 * is what running them step by step does: a SetLearningRateModifier sets
 * the lr once at its start, a function or scheduler modifier every step
 * until its end. -1 before any has started. */
double ics_manager_lr_at(const ics_manager *m, double epoch, int64_t steps_per_epoch)
{
    double lr = -1, best = -INFINITY;
    if (!m) return -1;
    for (size_t i = 0; i < m->mod_count; i++) {
        const ics_modifier *mod = m->mods[i].mod;
        if (!mgr_is_lr(mod->type)) continue;
        double when;
        double v = mgr_lr_value(mod, epoch, steps_per_epoch, &when);
        if (when < 0 || v < 0) continue;
        if (when >= best) {
            best = when;
            lr = v;
        }
    }
    return lr;
}
