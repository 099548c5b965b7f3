/*
 * src/train/eval_run.h: what icsparse-eval does, as library calls:
 * measure a checkpoint on a dataset split, and run a checkpoint on given
 * float inputs writing the logits (for cross-checks by other tools).
 */
#ifndef ICS_TRAIN_EVAL_RUN_H
#define ICS_TRAIN_EVAL_RUN_H

#include <icsparse/config.h>
#include <icsparse/model.h>
#include <icsparse/status.h>

#include "train/evaluate.h"

/* The checkpoint eval.checkpoint names, else RUN/ckpt/best.h5, else
 * RUN/ckpt/last.h5; copied into path. */
ics_status ics_eval_pick_checkpoint(const ics_config *cfg, char *path, size_t size, ics_error *err);

/* Loss, top-1 and top-5 of the checkpoint on eval.split of the configured
 * dataset (data.path or DIR/DATASET.h5), over all ranks. */
ics_status ics_eval_checkpoint(const ics_config *cfg, const char *checkpoint, ics_eval_result *out,
                               double *sparsity, ics_error *err);

/* Runs the checkpoint on the float32 dataset /inputs [N, H, W, C] (NHWC,
 * already normalized) of inputs_path and writes /logits [N, classes] to
 * logits_path (atomically). One process. */
ics_status ics_eval_logits(const char *checkpoint, const char *inputs_path, const char *logits_path,
                           ics_error *err);

/* Writes RUN/results.json (rank 0) from an evaluation of `split`. */
ics_status ics_eval_write_results(const ics_config *cfg, const char *checkpoint, const char *split,
                                  const ics_eval_result *r, double sparsity, ics_error *err);

#endif
