/*
 * Checkpoints for the export tests: a model of any architecture with
 * random weights (torchvision's init from a seed), random BatchNorm
 * statistics and affine parameters, random biases, a third of every
 * prunable weight set to exactly zero, and num_batches_tracked = 12345,
 * written with the checkpoint writer.
 */
#ifndef ICS_TEST_EXPORT_CKPT_H
#define ICS_TEST_EXPORT_CKPT_H

#include <stdint.h>
#include <icsparse/model.h>

/* Creates the model (caller destroys it) and randomizes it from seed. */
ics_model *export_test_model(const char *arch, const ics_model_options *opts, uint64_t seed);

/* Writes model to path as a checkpoint; arch_override (NULL: the model's)
 * and qat set the info fields, recipe (NULL: none) goes to /recipe.
 * Returns 0 on success. */
int export_test_write_checkpoint(ics_model *model, const char *path, const char *arch_override,
                                 int qat, const char *recipe);

/* Writes the same tensors as `model` at another input size (in_h x in_w)
 * to path: the checkpoint icsparse-eval needs for a second image size. */
int export_test_write_resized(ics_model *model, int in_h, int in_w, const char *path);

#endif
