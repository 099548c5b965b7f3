/*
 * icsparse/trainer.h: the training loop of icsparse-train, as a library.
 *
 * ics_trainer_create reads everything from a configuration (see
 * conf/defaults.cfg): the dataset (shards or one file), the model, the
 * optimizer and schedule, EMA, logging, the run directory, and resumes from
 * a checkpoint when train.resume says so. ics_trainer_run trains with
 * data-parallel ranks (when MPI is started), gradient accumulation and
 * optional data-parallel replicas inside the process, evaluates each
 * epoch, writes checkpoints (last, best, per epoch) and metrics, and
 * finishes with the test split. The x axis of every metric is the
 * optimizer step.
 *
 * Preemption: after SIGTERM or SIGUSR1 the run finishes its step, writes
 * RUN/ckpt/last.h5 and returns ICS_ERR_INTERRUPTED (exit code 75).
 */
#ifndef ICSPARSE_TRAINER_H
#define ICSPARSE_TRAINER_H

#include <stdint.h>
#include <icsparse/config.h>
#include <icsparse/model.h>
#include <icsparse/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ics_trainer ics_trainer;

/* Final figures of a run (NaN where not measured). */
typedef struct ics_train_summary {
    int64_t global_step;
    double epoch;
    double val_loss, val_top1, val_top5;
    double test_loss, test_top1, test_top5;
    double best_val_top1;
    double train_images_per_sec;
    double sparsity;
} ics_train_summary;

ics_status ics_trainer_create(const ics_config *cfg, ics_trainer **out, ics_error *err);
ics_status ics_trainer_run(ics_trainer *trainer, ics_error *err);
void ics_trainer_destroy(ics_trainer *trainer);

const ics_train_summary *ics_trainer_summary(const ics_trainer *trainer);
ics_model *ics_trainer_model(ics_trainer *trainer);

#ifdef __cplusplus
}
#endif
#endif
