/*
 * src/sparsify/oneshot.h: one-shot sparsification of a checkpoint (SparseML's
 * manager.apply): every pruning modifier of a recipe applied at its final
 * state, without training, and the result written as a new checkpoint with
 * its masks and the recipe (what icsparse-export --one-shot exports).
 */
#ifndef ICS_SPARSIFY_ONESHOT_H
#define ICS_SPARSIFY_ONESHOT_H

#include <icsparse/status.h>

/* Reads checkpoint `in`, applies the recipe (recipe_args may be NULL) one
 * shot, writes checkpoint `out` (atomically). *sparsity (may be NULL) gets
 * the pruned fraction of the selected weights. */
ics_status ics_oneshot_checkpoint(const char *in, const char *recipe_path, const char *recipe_args,
                                  const char *out, double *sparsity, ics_error *err);

#endif
