/*
 * icsparse/checkpoint.h: the checkpoint format (HDF5), written atomically.
 *
 * Layout (format "icsparse-checkpoint", format_version 1):
 *   attributes on /: format, format_version, arch, num_classes, in_channels,
 *     in_h, in_w, width_mult, cifar_stem, dropout, epoch (float: fractional
 *     epochs done, in the recipe's absolute epochs), global_step (optimizer
 *     steps), stage, world_size, steps_per_epoch, kind (last, best,
 *     best_pruned, best_pruned_quantized, epoch-N, final), metrics
 *     (val_loss, val_top1, val_top5, test_*: NaN when not measured),
 *     sparsity (overall fraction of zeros in prunable weights), qat_active,
 *     model_sha256 (SHA-256 of every /model tensor's bytes in table order,
 *     written by ics_checkpoint_put_model), complete (1 once the whole file
 *     is written)
 *   /model/<name>     every tensor of the model's state_dict, named and
 *                     shaped exactly as torchvision (num_batches_tracked int64)
 *   /ema/<name>       the EMA weights and buffers (attrs n_averaged, n_updates)
 *   /optimizer/<name>/<slot>   optimizer state (attrs kind, step_count, lr)
 *   /masks/<name>     pruning masks (uint8, the weight's shape)
 *   /quant/<module>/… fake-quantization state
 *   /rng/<stream>     per-rank random generator states (uint64 [world, k])
 *   /recipe, /recipe_args, /config   text (uint8 arrays)
 *
 * A writer creates "<path>.tmp-<pid>" in the same directory and renames it
 * onto path only after everything is written and flushed, so a crash never
 * leaves a half-written file under the final name. A reader refuses a file
 * of another format or version with one clear error line.
 */
#ifndef ICSPARSE_CHECKPOINT_H
#define ICSPARSE_CHECKPOINT_H

#include <stdint.h>
#include <icsparse/model.h>
#include <icsparse/status.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ICS_CHECKPOINT_FORMAT "icsparse-checkpoint"
#define ICS_CHECKPOINT_VERSION 1

struct ics_optim;
struct ics_ema;

typedef struct ics_checkpoint_info {
    char arch[64];
    ics_model_options model_options;
    double epoch;            /* fractional epochs done */
    int64_t global_step;     /* optimizer steps done */
    int stage;               /* recipe stage (0 without stages) */
    int world_size;          /* ranks that wrote it */
    int64_t steps_per_epoch; /* optimizer steps per epoch in that run */
    char kind[32];           /* "last", "best", ... */
    double val_loss, val_top1, val_top5;    /* NaN when not measured */
    double test_loss, test_top1, test_top5; /* NaN when not measured */
    double sparsity;         /* fraction of zeros over prunable weights */
    int qat_active;          /* fake quantization in the model */
} ics_checkpoint_info;

/* Metrics NaN, everything else zero/empty. */
void ics_checkpoint_info_init(ics_checkpoint_info *info);

/* ---- writing ------------------------------------------------------------ */

typedef struct ics_checkpoint_writer ics_checkpoint_writer;

/* Starts writing path (through a temporary file next to it). */
ics_status ics_checkpoint_begin(const char *path, ics_checkpoint_writer **out, ics_error *err);
ics_status ics_checkpoint_put_info(ics_checkpoint_writer *w, const ics_checkpoint_info *info, ics_error *err);
/* Every tensor of the model under /model. */
ics_status ics_checkpoint_put_model(ics_checkpoint_writer *w, ics_model *model, ics_error *err);
/* The optimizer's slots for every parameter, under /optimizer/<name>/<slot>. */
ics_status ics_checkpoint_put_optim(ics_checkpoint_writer *w, ics_model *model, struct ics_optim *optim,
                                    ics_error *err);
/* The attributes of /optimizer: the optimizer kind ("sgd", "adam",
 * "adamw"), its step count and learning rate at the save. */
typedef struct ics_checkpoint_optim_attrs {
    char kind[32];
    int64_t step_count;
    double lr;
} ics_checkpoint_optim_attrs;
/* Creates /optimizer with those attributes (ics_checkpoint_put_optim
 * writes them through this; the slots follow with put_tensor). */
ics_status ics_checkpoint_put_optim_attrs(ics_checkpoint_writer *w, const ics_checkpoint_optim_attrs *a,
                                          ics_error *err);
/* The EMA weights and buffers under /ema/<name>. */
ics_status ics_checkpoint_put_ema(ics_checkpoint_writer *w, ics_model *model, struct ics_ema *ema,
                                  ics_error *err);
/* Text under /<name> (recipe, recipe_args, config). */
ics_status ics_checkpoint_put_text(ics_checkpoint_writer *w, const char *name, const char *text,
                                   ics_error *err);
/* A float32 tensor at any path ("/masks/conv1.weight" stores uint8 when
 * as_mask is set: values are 0 or 1). */
ics_status ics_checkpoint_put_tensor(ics_checkpoint_writer *w, const char *path, const float *data,
                                     int ndim, const int64_t *shape, int as_mask, ics_error *err);
/* Raw uint64 words (RNG states): rows x cols. */
ics_status ics_checkpoint_put_u64(ics_checkpoint_writer *w, const char *path, const uint64_t *data,
                                  int64_t rows, int64_t cols, ics_error *err);
/* Marks complete, flushes, closes and renames onto the final path. Frees w. */
ics_status ics_checkpoint_commit(ics_checkpoint_writer *w, ics_error *err);
/* Abandons the write: the temporary file is removed, path is untouched. */
void ics_checkpoint_abort(ics_checkpoint_writer *w);

/* ---- reading ------------------------------------------------------------ */

typedef struct ics_checkpoint_reader ics_checkpoint_reader;

/* Opens and validates format, version and completeness; reads the info. */
ics_status ics_checkpoint_open(const char *path, ics_checkpoint_reader **out, ics_error *err);
void ics_checkpoint_close(ics_checkpoint_reader *r);
const ics_checkpoint_info *ics_checkpoint_get_info(const ics_checkpoint_reader *r);
const char *ics_checkpoint_path(const ics_checkpoint_reader *r);
/* Builds the checkpoint's architecture (unplanned) and loads its tensors. */
ics_status ics_checkpoint_create_model(ics_checkpoint_reader *r, ics_model **out, ics_error *err);
/* The model a checkpoint describes, ready to run: its architecture and
 * tensors and, for a QAT checkpoint, the QAT structure its recipe gives at
 * its epoch (update_architecture_from_recipe) with the quantizer state
 * (/quant). Errors: those of create_model, a QAT checkpoint without a
 * recipe, quantizer state that does not match the recipe's structure. */
ics_status ics_checkpoint_load_model(ics_checkpoint_reader *r, ics_model **out, ics_error *err);
/* A QAT model's quantizer state (/quant/...; nothing for other models),
 * and reading it back into a model with the same QAT structure. */
ics_status ics_checkpoint_put_quant(ics_checkpoint_writer *w, ics_model *model, ics_error *err);
ics_status ics_checkpoint_get_quant(ics_checkpoint_reader *r, ics_model *model, ics_error *err);
/* Loads /model into an existing model: every tensor must be present with
 * the same shape (the error names the tensor and both shapes). */
ics_status ics_checkpoint_get_model(ics_checkpoint_reader *r, ics_model *model, ics_error *err);
/* 1 if the checkpoint has optimizer state / EMA. */
int ics_checkpoint_has_optim(const ics_checkpoint_reader *r);
int ics_checkpoint_has_ema(const ics_checkpoint_reader *r);
/* Restores optimizer state; the optimizer kind must match. */
ics_status ics_checkpoint_get_optim(ics_checkpoint_reader *r, ics_model *model, struct ics_optim *optim,
                                    ics_error *err);
ics_status ics_checkpoint_get_ema(ics_checkpoint_reader *r, ics_model *model, struct ics_ema *ema,
                                  ics_error *err);
/* The attributes of an unsharded checkpoint's /optimizer (lr of a file
 * written before lr moved there: the root's). A missing one is an error
 * naming it. */
ics_status ics_checkpoint_get_optim_attrs(ics_checkpoint_reader *r, ics_checkpoint_optim_attrs *a,
                                          ics_error *err);
/* Text at /<name> (malloc'd) or NULL with ICS_OK when absent. */
ics_status ics_checkpoint_get_text(ics_checkpoint_reader *r, const char *name, char **text, ics_error *err);
/* 1 if a dataset or group exists at path. */
int ics_checkpoint_has(const ics_checkpoint_reader *r, const char *path);
/* Reads a tensor at path into data (float32; masks are converted). */
ics_status ics_checkpoint_get_tensor(ics_checkpoint_reader *r, const char *path, float *data, int ndim,
                                     const int64_t *shape, ics_error *err);
ics_status ics_checkpoint_get_u64(ics_checkpoint_reader *r, const char *path, uint64_t *data,
                                  int64_t rows, int64_t cols, ics_error *err);
/* Names of the datasets directly under group (e.g. "/masks"), sorted;
 * *names is a malloc'd array of malloc'd strings (free each and it). A
 * missing group gives 0 names. */
ics_status ics_checkpoint_list(ics_checkpoint_reader *r, const char *group, char ***names, int *count,
                               ics_error *err);
/* Recomputes the SHA-256 of the model's tensors after ics_checkpoint_get_model
 * and compares it with the stored model_sha256 (an error names both). */
ics_status ics_checkpoint_verify_model_checksum(ics_checkpoint_reader *r, ics_model *model, ics_error *err);
/* The SHA-256 (hex) of a model's tensors, as model_sha256 stores it. */
void ics_checkpoint_model_sha256(ics_model *model, char hex[65]);

/* Shape of the tensor at path (ndim and up to 8 dims). */
ics_status ics_checkpoint_tensor_shape(ics_checkpoint_reader *r, const char *path, int *ndim,
                                       int64_t *shape, ics_error *err);

/* ---- sharded checkpoints (src/io/checkpoint_shard.c) -------------------
 *
 * With train.checkpoint_sharded every rank writes its part of the
 * optimizer state and rank 0 the rest. A sharded checkpoint NAME is:
 *   NAME                          an ordinary checkpoint (model, masks,
 *                                 quant, EMA, texts, attributes) without
 *                                 /optimizer, plus the text /shards (the
 *                                 index below)
 *   NAME.part-K-of-N.ID           part K of N (format
 *                                 "icsparse-checkpoint-part" version 1):
 *                                 attributes format, format_version,
 *                                 shard_id (ID), shard_index (K),
 *                                 shard_count (N), checkpoint (NAME's base
 *                                 name), complete; /optimizer with the
 *                                 attributes kind, step_count, lr and the
 *                                 slots /optimizer/<name>/<slot> of the
 *                                 parameters it owns
 * Ownership: the optimizer's parameter i (the model's trainable tensors in
 * table order) belongs to rank i % N. The index /shards is text:
 *   icsparse-checkpoint-shards 1
 *   id ID
 *   count N
 *   part K FILE BYTES SHA256        (one line per part, K = 0 .. N-1)
 * FILE is a base name in NAME's directory, BYTES its size and SHA256 the
 * digest of its bytes, so a missing, truncated, damaged or foreign part is
 * refused with one line naming it. ID is random per save: the parts of a
 * new save never overwrite the parts the previous NAME points to, and NAME
 * is renamed last, so a crash leaves the previous checkpoint whole. Parts
 * are read by every rank, so a sharded checkpoint resumes at any world
 * size; icsparse-consolidate merges one into an ordinary checkpoint. */

typedef struct ics_checkpoint_shard_writer ics_checkpoint_shard_writer;

/* Collective (every rank): writes this rank's part of optim's state for
 * the checkpoint that will be `path` (temporary name, renamed once every
 * rank has written its part) and learns every part's size and digest.
 * On failure no part of this save is left. */
ics_status ics_checkpoint_shard_write_parts(const char *path, ics_model *model, struct ics_optim *optim,
                                            ics_checkpoint_shard_writer **out, ics_error *err);
/* Rank 0: the index /shards into the checkpoint (instead of
 * ics_checkpoint_put_optim). */
ics_status ics_checkpoint_put_shard_index(ics_checkpoint_writer *w, const ics_checkpoint_shard_writer *sw,
                                          ics_error *err);
/* Every rank, after agreeing whether the checkpoint was committed: when
 * it was, rank 0 removes the parts of earlier saves of that name; when not,
 * each rank removes its new part. Frees sw (NULL is fine). */
void ics_checkpoint_shard_finish(ics_checkpoint_shard_writer *sw, int committed);
/* Removes the parts next to path whose ID is not keep_id (NULL: all of
 * them): after an unsharded save of path, or with path itself. */
void ics_checkpoint_remove_parts(const char *path, const char *keep_id);

/* 1 if the checkpoint is sharded (has the index /shards). */
int ics_checkpoint_is_sharded(const ics_checkpoint_reader *r);

typedef struct ics_checkpoint_shards ics_checkpoint_shards;

/* Reads the index of a sharded checkpoint and checks every part: present,
 * the index's size and SHA-256, its format, version, ID, index and count,
 * complete, the same optimizer kind, step count and slots in all. */
ics_status ics_checkpoint_shards_open(ics_checkpoint_reader *r, ics_checkpoint_shards **out, ics_error *err);
void ics_checkpoint_shards_close(ics_checkpoint_shards *s);
int ics_checkpoint_shards_count(const ics_checkpoint_shards *s);
/* Every trainable tensor of model is in exactly one part, with the same
 * slots as the others, each of its shape; nothing else is. *tensors counts
 * the slot tensors. */
ics_status ics_checkpoint_shards_verify(ics_checkpoint_shards *s, ics_model *model, int *tensors, ics_error *err);
/* Restores optim's state from the parts (any world size reads them all);
 * the optimizer kind must match. */
ics_status ics_checkpoint_shards_get_optim(ics_checkpoint_shards *s, ics_model *model, struct ics_optim *optim,
                                           ics_error *err);
/* The merged optimizer state into an ordinary checkpoint being written:
 * the same /optimizer (and lr) ics_checkpoint_put_optim writes. */
ics_status ics_checkpoint_shards_put_optim(ics_checkpoint_shards *s, ics_checkpoint_writer *w, ics_model *model,
                                           ics_error *err);
/* Open, restore, close: ics_checkpoint_get_optim for a sharded checkpoint. */
ics_status ics_checkpoint_get_optim_sharded(ics_checkpoint_reader *r, ics_model *model, struct ics_optim *optim,
                                            ics_error *err);

#ifdef __cplusplus
}
#endif
#endif
