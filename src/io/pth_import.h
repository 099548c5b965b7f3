/*
 * Importing PyTorch and SparseZoo checkpoints (.pth / .pt made by
 * torch.save) into an icsparse model or checkpoint.
 *
 * Accepted: a plain torchvision state_dict; a SparseML / SparseZoo training
 * checkpoint dict (state_dict, epoch, recipe, arch_key, optimizer, ...);
 * keys with a "module." prefix (DataParallel / DDP); SparseZoo's own ResNet
 * names (input.conv -> conv1, input.bn -> bn1, sections.S.B -> layer{S+1}.B,
 * identity.conv / identity.bn -> downsample.0 / downsample.1, classifier.fc
 * -> fc). Every dtype is converted to float32; num_batches_tracked goes to
 * the model's int64 counter.
 *
 * Strict like torch's load_state_dict(strict=True): every model tensor must
 * be present with its shape and no other key may be left, except QAT state
 * (*fake_quant*, *activation_post_process*). Transfer learning: the
 * classifier (the model's last linear layer) of another number of classes
 * keeps the model's own initialization, with a warning naming it.
 *
 * The file's recipe is applied first (SparseML's
 * update_architecture_from_recipe): when a QuantizationModifier has
 * started by the file's epoch (-1 or none: a finished run, every modifier
 * applied), the model gets that QAT structure, then torch's fake-quant and
 * observer state is mapped onto its quantizers (pth_import_qat.c): fused
 * modules' "<conv>.bn.*" are the BN's tensors, observer ranges and
 * per-channel weight scales are loaded, the observer flag is the file's.
 * QAT keys that match no quantizer (or any, for a model without QAT) are
 * skipped and counted. Pruning is not this file's business: the zeros
 * arrive as zeros, and what holds them is the caller's (the trainer's
 * src/train/train_import.c).
 */
#ifndef ICS_IO_PTH_IMPORT_H
#define ICS_IO_PTH_IMPORT_H

#include <icsparse/model.h>
#include <icsparse/recipe.h>
#include <icsparse/status.h>

#include "io/pth_reader.h"

typedef struct ics_pth_import_report {
    int tensors_loaded;              /* model tensors taken from the file */
    int reinitialized;               /* classifier tensors left at the model's init */
    char reinit_layer[ICS_NAME_MAX]; /* that classifier's module name, "" if none */
    int renamed;                     /* keys mapped from SparseZoo names */
    int module_prefix;               /* keys that had a "module." prefix */
    int fused_bn;                    /* "<conv>.bn.*" keys of fused QAT modules */
    int qat_extras;                  /* fake-quant / observer keys skipped */
    int qat_structure;               /* the recipe gave the model its QAT structure */
    int qat_quantizers;              /* quantizers set from the file */
    int qat_missing;                 /* the model's quantizers the file has no state for */
    int qat_observers;               /* observers on after the import (QAT models) */
    int recipe_unread;               /* the recipe is there but could not be loaded */
    int has_optimizer;               /* the file holds optimizer state (not imported) */
    int has_epoch;                   /* epoch below is from the file */
    double epoch;                    /* the file's "epoch" (SparseML: -1 = finished) */
    char arch_key[64];               /* the file's "arch_key", "" if none */
    int file_num_classes;            /* rows of the file's classifier weight, 0 if unknown */
    char *recipe;                    /* the file's "recipe" text (malloc'd) or NULL */
} ics_pth_import_report;

/* Frees what a report holds (the recipe) and zeroes it. NULL is fine. */
void ics_pth_import_report_free(ics_pth_import_report *report);

/* Loads the weights of the .pth at path into model (already created and
 * initialized: the classifier keeps that init when its class count
 * differs), with the QAT structure and state its recipe gives. No weight
 * is written into model unless every check passes (a failure after the
 * checks of the weights may leave the QAT structure applied).
 * report may be NULL; otherwise it is filled (free it with
 * ics_pth_import_report_free, also after an error). Errors name the file
 * and the tensor (and the closest key present for a missing one). The
 * same in three steps: */
ics_status ics_pth_import_into_model(const char *path, ics_model *model,
                                     ics_pth_import_report *report, ics_error *err);

/* 1. Reads the file and its metadata into report (zeroed first; free it
 * also after an error). *pth is the caller's (ics_pth_destroy). */
ics_status ics_pth_import_open(const char *path, ics_pth **pth, ics_pth_import_report *report,
                               ics_error *err);
/* 2. The file's recipe loaded (*out NULL without one). A recipe icsparse
 * cannot load is an error when it mentions QuantizationModifier (the
 * weights need that structure); otherwise a warning, *out NULL and
 * report->recipe_unread set. label names the file in messages. */
ics_status ics_pth_import_recipe(ics_pth_import_report *report, const char *label, ics_recipe **out,
                                 ics_error *err);
/* 3. The QAT structure recipe (may be NULL) gives at the file's epoch,
 * then the weights and quantizer state. */
ics_status ics_pth_import_apply(const ics_pth *pth, const char *label, const ics_recipe *recipe,
                                ics_model *model, ics_pth_import_report *report, ics_error *err);
/* The file's epoch, -1 (finished) when it has none. */
double ics_pth_import_epoch(const ics_pth_import_report *report);

/* Converts the .pth into an icsparse checkpoint at out_h5 (written
 * atomically). arch: NULL or "" takes the file's arch_key. opts may be
 * NULL (defaults); num_classes <= 0 takes the class count from the file's
 * classifier, in_channels <= 0 from the first convolution. The file's
 * recipe is stored as /recipe; epoch is 0 (training starts here), except
 * for a QAT model (/quant written): the file's epoch, or the recipe's end
 * for a finished run, where loading rebuilds its structure. */
ics_status ics_pth_import_to_checkpoint(const char *pth, const char *arch,
                                        const ics_model_options *opts, const char *out_h5,
                                        ics_error *err);

/* The state_dict key that the file's key `key` stands for in torchvision
 * naming ("module." stripped, SparseZoo ResNet names mapped), written to
 * out. Returns 1 if it was renamed (SparseZoo), 0 otherwise; -1 if out is
 * too small. */
int ics_pth_import_map_key(const char *key, char *out, size_t size);

#endif
