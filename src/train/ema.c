/*
 * src/train/ema.c: weight EMA, as described in ema.h.
 */
#include "ics_build_config.h"
#include "train/ema.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

#define EMA_PARALLEL_MIN 32768

struct ics_ema {
    ics_ema_config cfg;
    size_t n_params, n_buffers;
    float *params;
    float *buffers;
    int64_t n_averaged;
    int64_t n_updates;
};

int ics_ema_mode_parse(const char *name)
{
    if (!name) return -1;
    if (strcmp(name, "torchvision") == 0) return ICS_EMA_TORCHVISION;
    if (strcmp(name, "constant") == 0) return ICS_EMA_CONSTANT;
    if (strcmp(name, "warmup") == 0) return ICS_EMA_WARMUP;
    return -1;
}

double ics_ema_effective_decay(const ics_ema_config *cfg, int64_t n_updates)
{
    switch (cfg->mode) {
    case ICS_EMA_TORCHVISION: {
        double adjust = (double)cfg->world_size * (double)cfg->batch_size * (double)cfg->every_steps / cfg->epochs;
        double alpha = (1.0 - cfg->decay) * adjust;
        if (alpha > 1.0) alpha = 1.0;
        return 1.0 - alpha;
    }
    case ICS_EMA_WARMUP: {
        double ramp = (1.0 + (double)n_updates) / (10.0 + (double)n_updates);
        return ramp < cfg->decay ? ramp : cfg->decay;
    }
    case ICS_EMA_CONSTANT: break;
    }
    return cfg->decay;
}

ics_status ics_ema_create(ics_ema **out, const ics_ema_config *cfg, size_t n_params, size_t n_buffers,
                          ics_error *err)
{
    *out = NULL;
    if ((int)cfg->mode < ICS_EMA_TORCHVISION || cfg->mode > ICS_EMA_WARMUP)
        return ICS_FAIL(err, ICS_ERR_INVALID, "ema: unknown mode %d", (int)cfg->mode);
    if (!(cfg->decay >= 0.0 && cfg->decay <= 1.0))
        return ICS_FAIL(err, ICS_ERR_CONFIG, "ema: decay %g must be in [0, 1]", cfg->decay);
    if (cfg->every_steps < 1)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "ema: every_steps %lld must be >= 1", (long long)cfg->every_steps);
    if (cfg->mode == ICS_EMA_TORCHVISION &&
        (cfg->world_size < 1 || cfg->batch_size < 1 || !(cfg->epochs > 0.0)))
        return ICS_FAIL(err, ICS_ERR_CONFIG,
                        "ema: the torchvision decay adjustment needs world_size, batch_size and epochs > 0 "
                        "(got %d, %lld, %g)",
                        cfg->world_size, (long long)cfg->batch_size, cfg->epochs);
    ics_ema *ema = ics_calloc(1, sizeof *ema, "ema", err);
    if (!ema) return ICS_ERR_NOMEM;
    ema->cfg = *cfg;
    ema->n_params = n_params;
    ema->n_buffers = n_buffers;
    ema->params = ics_calloc(n_params ? n_params : 1, sizeof(float), "ema weights", err);
    ema->buffers = ics_calloc(n_buffers ? n_buffers : 1, sizeof(float), "ema buffers", err);
    if (!ema->params || !ema->buffers) {
        ics_ema_destroy(ema);
        return ICS_ERR_NOMEM;
    }
    *out = ema;
    return ICS_OK;
}

void ics_ema_destroy(ics_ema *ema)
{
    if (!ema) return;
    free(ema->params);
    free(ema->buffers);
    free(ema);
}

/* avg = decay*avg + (1-decay)*x in float, in torchvision's ema_avg order
 * (decay * avg_param + (1 - decay) * param); a plain copy when copy. */
static void blend(float *restrict avg, const float *restrict x, size_t n, int copy, double decay)
{
    if (copy) {
        memcpy(avg, x, n * sizeof(float));
        return;
    }
    const float d = (float)decay, one_minus_d = (float)(1.0 - decay);
#pragma omp parallel for schedule(static) if (n >= EMA_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) avg[i] = d * avg[i] + one_minus_d * x[i];
}

void ics_ema_update(ics_ema *ema, double epoch, const float *params, const float *buffers)
{
    double decay = ics_ema_effective_decay(&ema->cfg, ema->n_updates);
    int copy = ema->n_averaged == 0;
    blend(ema->params, params, ema->n_params, copy, decay);
    if (ema->n_buffers && buffers) blend(ema->buffers, buffers, ema->n_buffers, copy || !ema->cfg.buffers_averaged, decay);
    ema->n_averaged++;
    ema->n_updates++;
    /* torchvision: "Reset ema buffer to keep copying weights during warmup
     * period" (n_averaged.fill_(0) while epoch < lr_warmup_epochs). */
    if (epoch < ema->cfg.warmup_epochs) ema->n_averaged = 0;
}

int ics_ema_maybe_update(ics_ema *ema, int64_t global_step, double epoch, const float *params,
                         const float *buffers)
{
    if (global_step % ema->cfg.every_steps != 0) return 0;
    ics_ema_update(ema, epoch, params, buffers);
    return 1;
}

float *ics_ema_params(ics_ema *ema) { return ema->params; }
float *ics_ema_buffers(ics_ema *ema) { return ema->buffers; }
int64_t ics_ema_n_averaged(const ics_ema *ema) { return ema->n_averaged; }
void ics_ema_set_n_averaged(ics_ema *ema, int64_t n) { ema->n_averaged = n < 0 ? 0 : n; }
int64_t ics_ema_n_updates(const ics_ema *ema) { return ema->n_updates; }
void ics_ema_set_n_updates(ics_ema *ema, int64_t n) { ema->n_updates = n < 0 ? 0 : n; }
