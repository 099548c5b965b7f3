/*
 * The trainer's state, shared by trainer.c (set-up), train_loop.c (the
 * loop), train_state.c (checkpoints and resume), train_data.c (batches)
 * and train_progress.c (stdout). Not public: include/icsparse/trainer.h is.
 */
#ifndef ICS_TRAIN_TRAINER_INTERNAL_H
#define ICS_TRAIN_TRAINER_INTERNAL_H

#include <icsparse/checkpoint.h>
#include <icsparse/config.h>
#include <icsparse/manager.h>
#include <icsparse/recipe.h>
#include <icsparse/model.h>
#include <icsparse/qat.h>
#include <icsparse/trainer.h>
#include <stdio.h>

#include "data/dataset.h"
#include "dist/ddp.h"
#include "log/logger.h"
#include "train/ema.h"
#include "train/evaluate.h"
#include "train/lr_schedule.h"
#include "train/optim.h"

enum { ICS_MAX_LOGGERS = 4, ICS_MAX_SHARDS = 4096 };

/* Where batches come from (train_data.c). */
typedef struct ics_train_data ics_train_data;

enum { ICS_MAX_REPLICAS = 64 };

/* One data-parallel replica inside the process (train.dp_devices): its own
 * model (activations, gradients, BN statistics), fed a slice of each
 * micro-batch on its own thread. Replica 0's model is the trainer's. */
typedef struct ics_replica {
    ics_model *model;
    float *dlogits, *probs;
    /* the current micro-batch slice and its results */
    const float *x;
    const int32_t *y;
    int n;
    double loss_sum, top1_sum;
    ics_status status;
    ics_error err;
} ics_replica;

struct ics_trainer {
    const ics_config *cfg;
    char run_dir[1024];
    char ckpt_dir[1100];
    int rank, world;

    /* data */
    ics_dataset_reader **eval_readers; /* the dataset file, or the shards, holding val/test */
    int n_eval_readers;
    double mean[4], std[4];
    int height, width, channels, num_classes;
    ics_train_data *data;
    int64_t batches_per_epoch; /* micro-batches per rank per epoch */

    /* model and optimization */
    ics_model *model;
    ics_param_view *views;
    size_t nviews;
    ics_optim *optim;
    ics_lr_schedule schedule;
    ics_ema *ema;
    ics_model *ema_model; /* for evaluating the EMA weights */
    ics_recipe *recipe;   /* recipe.path, loaded with recipe.args */
    ics_manager *manager; /* its modifiers bound to the model (NULL: dense) */
    ics_model *teacher;   /* distillation teacher (inference plan) */
    ics_ddp *ddp;
    int ddp_overlap; /* reductions start inside backward (no replicas) */
    int ddp_armed;   /* this backward is the last of an optimizer step */
    int batch_size, accum_steps;
    double label_smoothing, clip_grad_norm;
    ics_replica replicas[ICS_MAX_REPLICAS];
    int nreplicas;   /* train.dp_devices */
    int load_batch;  /* images per micro-batch per process: batch_size x replicas */

    /* schedule */
    int64_t steps_per_epoch; /* optimizer steps per epoch: ceil(batches / accum) */
    double epochs;
    int64_t total_steps;
    int64_t global_step;
    int stage;

    /* logging */
    ics_logger *loggers[ICS_MAX_LOGGERS];
    int nloggers;
    struct ics_wandb_bridge *wandb; /* log.wandb: the bridge run beside rank 0 (wandb_launch.h) */
    int log_every;
    int progress_bar;
    double last_checkpoint_time;

    /* results */
    ics_train_summary summary;
    double best_val_top1;
    double best_pruned_top1;
    double best_pruned_quantized_top1;
};

/* train_data.c */
ics_status ics_train_data_open(ics_trainer *t, ics_error *err);
void ics_train_data_close(ics_trainer *t);
/* Starts an epoch (reseeds the per-epoch shuffle). */
ics_status ics_train_data_epoch(ics_trainer *t, int64_t epoch, ics_error *err);
/* Next micro-batch of this rank: *count 0 at the end of the epoch. */
ics_status ics_train_data_next(ics_trainer *t, const float **images, const int32_t **labels, int *count,
                               ics_error *err);

/* train_state.c */
ics_status ics_train_save(ics_trainer *t, const char *name, const char *kind, const ics_eval_result *val,
                          const ics_eval_result *test, ics_error *err);
ics_status ics_train_resume(ics_trainer *t, ics_error *err);
ics_status ics_train_init_from(ics_trainer *t, const char *path, ics_error *err);
ics_status ics_train_write_results(ics_trainer *t, ics_error *err);
/* Reads the masks of a checkpoint into the manager (missing: left alone). */
ics_status ics_train_restore_masks(ics_trainer *t, const char *path, ics_error *err);

/* train_import.c: model.init_from = FILE.pth: the file's recipe structure
 * (QAT) applied, its weights and quantizer state loaded; without
 * recipe.path, a generated recipe (t->recipe, t->manager) holds its pruning
 * and quantization. */
ics_status ics_train_import_pth(ics_trainer *t, const char *path, ics_error *err);
/* Before resuming from ckpt: a run started from a .pth without recipe.path
 * takes its held recipe back from the checkpoint (nothing otherwise). */
ics_status ics_train_import_resume(ics_trainer *t, const char *ckpt, ics_error *err);

/* train_progress.c */
void ics_train_progress(ics_trainer *t, double loss, double top1, double lr, double images_per_sec,
                        double eta_seconds);
void ics_train_progress_done(ics_trainer *t);
ics_status ics_train_log_scalar(ics_trainer *t, const char *tag, double value, ics_error *err);

/* train_loop.c */
double ics_train_epoch_of(const ics_trainer *t, int64_t step);
double ics_train_sparsity(ics_trainer *t);

#endif
