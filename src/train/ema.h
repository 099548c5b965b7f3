/*
 * src/train/ema.h: exponential moving average of the weights (the model an
 * evaluation can use instead of the raw weights).
 *
 * It follows torchvision's reference trainer (ExponentialMovingAverage, an
 * AveragedModel): every every_steps optimizer steps
 *   first update (n_averaged == 0):  ema = p
 *   later updates:                   ema = decay * ema + (1 - decay) * p
 * and n_averaged is reset to 0 after each update while epoch < warmup_epochs,
 * so during warm-up the EMA simply follows the weights.
 *
 * The decay actually used depends on the mode:
 *   ICS_EMA_TORCHVISION  torchvision's adjustment, so that the averaging
 *       horizon is measured in epochs whatever the batch size and update
 *       period: adjust = world_size * batch_size * every_steps / epochs,
 *       alpha = min(1, (1 - decay) * adjust), decay_eff = 1 - alpha.
 *       (torchvision's default decay 0.99998 with 32-step updates.)
 *   ICS_EMA_CONSTANT     decay as given.
 *   ICS_EMA_WARMUP       min(decay, (1 + n) / (10 + n)) with n the number of
 *       updates so far (TensorFlow's ExponentialMovingAverage num_updates
 *       rule): a short effective horizon early on.
 * Buffers (BatchNorm running statistics) are copied from the model at each
 * update by default; buffers_averaged = 1 averages them like the weights
 * (torchvision's use_buffers=True).
 */
#ifndef ICS_TRAIN_EMA_H
#define ICS_TRAIN_EMA_H

#include <stddef.h>
#include <stdint.h>
#include <icsparse/status.h>

typedef enum ics_ema_mode { ICS_EMA_TORCHVISION = 0, ICS_EMA_CONSTANT, ICS_EMA_WARMUP } ics_ema_mode;

typedef struct ics_ema_config {
    ics_ema_mode mode;
    double decay;          /* in [0, 1] */
    int64_t every_steps;   /* >= 1 */
    double warmup_epochs;  /* n_averaged reset while epoch < this */
    int buffers_averaged;  /* 0: buffers copied; 1: averaged like weights */
    /* For ICS_EMA_TORCHVISION: global batch = world_size * batch_size. */
    int world_size;
    int64_t batch_size;
    double epochs;         /* the run's epochs (> 0) */
} ics_ema_config;

typedef struct ics_ema ics_ema;

/* "torchvision" | "constant" | "warmup" -> mode; -1 if unknown. */
int ics_ema_mode_parse(const char *name);

/* The decay an update uses after n_updates earlier updates. */
double ics_ema_effective_decay(const ics_ema_config *cfg, int64_t n_updates);

/* An EMA over n_params weights and n_buffers buffers (floats), its own
 * copies allocated here and not yet meaningful (n_averaged 0: the first
 * update copies). */
ics_status ics_ema_create(ics_ema **out, const ics_ema_config *cfg, size_t n_params, size_t n_buffers,
                          ics_error *err);
void ics_ema_destroy(ics_ema *ema);

/* Called after every optimizer step with the global step count (after the
 * step: 1 for the first) and the fractional epoch. Updates when
 * global_step % every_steps == 0 and returns 1, else returns 0. params and
 * buffers have the sizes given at creation (buffers may be NULL when 0). */
int ics_ema_maybe_update(ics_ema *ema, int64_t global_step, double epoch, const float *params,
                         const float *buffers);
/* One update now, regardless of the step. */
void ics_ema_update(ics_ema *ema, double epoch, const float *params, const float *buffers);

/* The averaged weights and buffers (checkpoints save them as /ema/<name>,
 * and restore them by writing here). */
float *ics_ema_params(ics_ema *ema);
float *ics_ema_buffers(ics_ema *ema);
/* torchvision's n_averaged (0: the next update copies). */
int64_t ics_ema_n_averaged(const ics_ema *ema);
void ics_ema_set_n_averaged(ics_ema *ema, int64_t n);
/* Updates made in total (drives ICS_EMA_WARMUP; never reset by warm-up). */
int64_t ics_ema_n_updates(const ics_ema *ema);
void ics_ema_set_n_updates(ics_ema *ema, int64_t n);

#endif
