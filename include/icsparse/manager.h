/*
 * icsparse/manager.h: the recipe manager, what SparseML's
 * ScheduledModifierManager does inside a training loop.
 *
 * A manager binds a loaded recipe (icsparse/recipe.h) to a model and, when
 * training, to an optimizer. The training loop calls it around every
 * optimizer step:
 *
 *   ics_manager_create(recipe, model, optim, &m, &err);   recipe may be NULL
 *   for epoch in [start, ics_manager_max_epochs(m)):
 *     for each optimizer step (global_step, epoch = global_step / spe):
 *       forward; loss = ics_manager_loss(...); backward   (every micro-batch)
 *       ics_manager_before_step(m, epoch, spe, &err);     LR, WD, masks, grads
 *       ics_optim_step(optim);
 *       ics_manager_after_step(m, epoch, &err);           weights re-masked
 *   ics_manager_finalize(m, &err);
 *
 * Modifiers follow SparseML's scheduling rules (docs/SPARSIFICATION.md):
 * a modifier starts at the first step whose epoch >= start_epoch, ends at
 * the first step whose epoch >= end_epoch, and an update modifier updates
 * every update_frequency epochs in between. Pruned weights stay exactly
 * zero: their gradients are zeroed before each step and the weights are
 * masked again after it. QuantizationModifier gives the model its QAT
 * structure at its start (icsparse/qat.h); a trainer holding copies of the
 * model (replicas, EMA) gives them the same with
 * ics_model_qat_prepare_like.
 */
#ifndef ICSPARSE_MANAGER_H
#define ICSPARSE_MANAGER_H

#include <stdint.h>

#include <icsparse/model.h>
#include <icsparse/recipe.h>
#include <icsparse/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ics_manager ics_manager;
struct ics_optim;

/* Binds a loaded recipe (NULL: dense training, no modifiers) to a model
 * (selectors resolved against its state_dict names; an error names the
 * selector and its recipe line) and an optimizer (NULL for one-shot use;
 * then LR, weight-decay and AC/DC momentum effects are skipped). The recipe
 * and the model must outlive the manager. Errors: a selector matching nothing, an N:M or block
 * mask on a tensor it cannot apply to, a DistillationModifier's
 * distill_output_keys (one output here), out of memory. */
ics_status ics_manager_create(const ics_recipe *recipe, ics_model *model, struct ics_optim *optim,
                              ics_manager **out, ics_error *err);
void ics_manager_destroy(ics_manager *m);

/* SparseML's max_epochs: max of ceil(start_epoch), ceil(end_epoch) over the
 * modifiers (0 without a recipe: the trainer's own epoch count applies). */
double ics_manager_max_epochs(const ics_manager *m);
/* 1 when the recipe has a learning-rate modifier (LearningRateModifier,
 * LearningRateFunctionModifier or SetLearningRateModifier): the trainer's
 * own schedule is then off. */
int ics_manager_controls_lr(const ics_manager *m);

/* Before an optimizer step at fractional epoch `epoch` (global_step /
 * steps_per_epoch, steps counted in optimizer steps): runs every ready
 * modifier's update in schedule order (LR and WD set on the optimizer,
 * pruning masks recomputed on schedule, AC/DC momentum reset at each
 * decompressed phase after a compressed one), then zeroes the gradients
 * of masked weights and of frozen (TrainableParams) parameters. Call it
 * after backward, before ics_optim_step. */
ics_status ics_manager_before_step(ics_manager *m, double epoch, int64_t steps_per_epoch,
                                   ics_error *err);
/* After the optimizer step: re-applies the masks so pruned weights stay
 * exactly 0, and restores frozen parameters (and their optimizer state),
 * which the step must not change (torch skips params without grad). */
ics_status ics_manager_after_step(ics_manager *m, double epoch, ics_error *err);

/* The loss of a batch and its gradient wrt the student logits (times
 * scale) in dlogits. Without an active DistillationModifier (or with
 * teacher_logits NULL): cross-entropy with label smoothing, as
 * torch.nn.functional.cross_entropy. With one (hardness h, temperature T):
 *   loss = (1-h) * CE(s, y) + h * T^2 * KL(softmax(t/T) || softmax(s/T)) / batch
 * i.e. kl_div(log_softmax(s/T), softmax(t/T), reduction='batchmean') * T^2,
 * SparseML's KD loss. probs_scratch (batch * classes floats) gets the
 * student's softmax (T = 1). */
float ics_manager_loss(ics_manager *m, double epoch, int batch, int classes,
                       const float *student_logits, const int32_t *labels,
                       const float *teacher_logits, float label_smoothing, float scale,
                       float *dlogits, float *probs_scratch);
/* 1 when a DistillationModifier is active at epoch (start <= epoch < end):
 * the trainer then runs the teacher forward. */
int ics_manager_distillation_active(const ics_manager *m, double epoch);
/* The active distillation modifier's hardness and temperature (0 and 1
 * when none is active). */
void ics_manager_distillation_params(const ics_manager *m, double epoch, double *hardness,
                                     double *temperature);

/* 1 when the recipe has a pruning modifier (GM, Magnitude, GlobalMagnitude,
 * AC/DC, Constant). */
int ics_manager_has_pruning(const ics_manager *m);
/* 1 when every pruning modifier has ended by epoch (ones that never end,
 * end_epoch -1, count as ended from their start: they hold masks fixed);
 * 1 without pruning. Best-pruned checkpoints only count after this. */
int ics_manager_pruning_ended(const ics_manager *m, double epoch);
/* 1 when a QuantizationModifier has started by epoch (start -1: from 0). */
int ics_manager_qat_active(const ics_manager *m, double epoch);
int ics_recipe_qat_active(const ics_recipe *recipe, double epoch);

/* update_architecture_from_recipe: gives a model the QAT structure the
 * recipe's QuantizationModifiers have applied by epoch (-1: a finished
 * run, every modifier applied), with the observer and BN-freeze flags of
 * that epoch, so that a checkpoint's quantizer state can load into it.
 * Nothing happens without such a modifier. */
ics_status ics_recipe_apply_structure(const ics_recipe *recipe, ics_model *model, double epoch, ics_error *err);

/* Masks, one per parameter any pruning modifier selects, in tensor-table
 * order. Saved in checkpoints as /masks/<name>; restored by writing the
 * data before ics_manager_resume. */
int ics_manager_mask_count(const ics_manager *m);
/* The parameter's state_dict name. */
const char *ics_manager_mask_name(const ics_manager *m, int i);
/* 0/1 floats, the weight's shape (torch layout), numel elements. */
float *ics_manager_mask_data(ics_manager *m, int i);
/* Number of elements of mask i. */
int64_t ics_manager_mask_numel(const ics_manager *m, int i);

/* Restores the schedule position after a resume at `epoch`: modifiers whose
 * start already passed are started (and those whose end passed are ended)
 * without re-running past updates; update modifiers count their last update
 * as `epoch`. The masks of started pruning modifiers become the restored
 * masks (ics_manager_mask_data) AND the weights' nonzeros; LR modifiers set
 * the optimizer's lr for `epoch`. */
ics_status ics_manager_resume(ics_manager *m, double epoch, ics_error *err);

/* Sparsity (fraction of exact zeros) of each parameter any pruning modifier
 * selects: fills names/values up to cap entries and returns the count;
 * *overall (may be NULL) gets zeros / elements over all of them. */
int ics_manager_sparsity(const ics_manager *m, const char **names, double *values, int cap,
                         double *overall);
/* Logs the per-layer and overall sparsity (ICS_INFO, rank 0 per-step lines). */
void ics_manager_log_sparsity(const ics_manager *m, double epoch);

/* One-shot (SparseML's manager.apply): every pruning modifier computes its
 * masks at its final state (GM/Magnitude/Global: final_sparsity; AC/DC:
 * compression_sparsity; Constant: the current zeros), masks are applied,
 * then finalized. No optimizer needed. */
ics_status ics_manager_apply_oneshot(ics_manager *m, ics_error *err);
/* End of training (SparseML's finalize): masks applied once more, then
 * every modifier is disabled (no more masking); TrainableParams restored. */
ics_status ics_manager_finalize(ics_manager *m, ics_error *err);

/* The learning rate the recipe's LR modifiers give at epoch, or -1 when none
 * has started by then (the optimizer's lr is left alone). Pure: no state. */
double ics_manager_lr_at(const ics_manager *m, double epoch, int64_t steps_per_epoch);

#ifdef __cplusplus
}
#endif
#endif
