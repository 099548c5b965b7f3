/*
 * src/io/consolidate.h: what icsparse-consolidate does to checkpoints:
 * verify one completely, merge it into one self-contained file (optionally
 * without training state), and pick the best checkpoints of a run.
 */
#ifndef ICS_IO_CONSOLIDATE_H
#define ICS_IO_CONSOLIDATE_H

#include <stddef.h>
#include <icsparse/status.h>

typedef struct ics_verify_report {
    int tensors;        /* model tensors checked */
    int masks;          /* masks checked against the weights */
    int optimizer_tensors;
    int ema_tensors;
    int shards;         /* parts of a sharded checkpoint (0: not sharded) */
    double sparsity;    /* of the prunable weights */
} ics_verify_report;

/* Verifies a checkpoint: format, version, completeness; every model tensor
 * present with the architecture's shape; the model checksum; every mask
 * names a prunable weight of the same shape, is 0/1, and the weight is
 * exactly zero where the mask is 0; a recipe is present when masks are;
 * optimizer and EMA state complete; for a sharded checkpoint, every part
 * present and undamaged (size and SHA-256 from the index) and the parts
 * together every parameter's optimizer state once. The first problem is
 * the error. */
ics_status ics_checkpoint_verify(const char *path, ics_verify_report *report, ics_error *err);

/* Writes a verified checkpoint's content to out (atomically): model,
 * masks, quantization state, texts and attributes; the optimizer and EMA
 * state too unless strip_training_state. A sharded checkpoint's parts are
 * merged: the output is one ordinary checkpoint. */
ics_status ics_checkpoint_consolidate(const char *in, const char *out, int strip_training_state, ics_error *err);

/* RUN/ckpt/<which>.h5 for which in best, best_pruned,
 * best_pruned_quantized, last; when absent, the next best that exists in
 * the order best_pruned_quantized > best_pruned > best > last, down from
 * `which` (a run without pruning has no best_pruned). */
ics_status ics_run_pick_checkpoint(const char *run_dir, const char *which, char *path, size_t size, ics_error *err);

#endif
