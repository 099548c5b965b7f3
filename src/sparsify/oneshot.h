/*
 * src/sparsify/oneshot.h: one-shot sparsification of a checkpoint (SparseML's
 * manager.apply): every pruning modifier of a recipe applied at its final
 * state, without training, and the result written as a new checkpoint with
 * its masks and the recipe (what icsparse-export --one-shot exports); with
 * quantization, calibrated on a dataset.
 */
#ifndef ICS_SPARSIFY_ONESHOT_H
#define ICS_SPARSIFY_ONESHOT_H

#include <icsparse/status.h>

/* Reads checkpoint `in`, applies the recipe (recipe_args may be NULL) one
 * shot, writes checkpoint `out` (atomically). *sparsity (may be NULL) gets
 * the pruned fraction of the selected weights. */
ics_status ics_oneshot_checkpoint(const char *in, const char *recipe_path, const char *recipe_args,
                                  const char *out, double *sparsity, ics_error *err);

/* Calibration data for a recipe with a QuantizationModifier: images of a
 * dataset split run through the quantized model in evaluation mode while
 * the activation observers record their ranges (then the observers stop). */
typedef struct ics_oneshot_calibration {
    const char *dataset; /* an icsparse dataset file (convert) */
    const char *split;   /* "train" by default */
    int batches;         /* number of batches; 0: the modifier's
                          * num_calibration_steps, else 16 */
    int batch_size;      /* 0: 64 */
} ics_oneshot_calibration;

/* ics_oneshot_checkpoint with quantization: pruning first, then the QAT
 * structure (every QuantizationModifier applied) calibrated on cal. A
 * recipe with quantization and no calibration data is an error (exit 2).
 * The checkpoint written is a finished one (epoch -1) with /quant. */
ics_status ics_oneshot_checkpoint_calibrated(const char *in, const char *recipe_path, const char *recipe_args,
                                             const ics_oneshot_calibration *cal, const char *out,
                                             double *sparsity, ics_error *err);

#endif
