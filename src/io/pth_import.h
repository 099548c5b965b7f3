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
 * be present with its shape and no other key may be left, except the QAT
 * training-only extras (*fake_quant*, *activation_post_process*), which are
 * skipped and counted. A checkpoint whose recipe quantizes cannot be
 * imported yet (NOT_IMPLEMENTED). Transfer learning: the classifier (the
 * model's last linear layer) of another number of classes keeps the
 * model's own initialization, with a warning naming it.
 */
#ifndef ICS_IO_PTH_IMPORT_H
#define ICS_IO_PTH_IMPORT_H

#include <icsparse/model.h>
#include <icsparse/status.h>

typedef struct ics_pth_import_report {
    int tensors_loaded;              /* model tensors taken from the file */
    int reinitialized;               /* classifier tensors left at the model's init */
    char reinit_layer[ICS_NAME_MAX]; /* that classifier's module name, "" if none */
    int renamed;                     /* keys mapped from SparseZoo names */
    int module_prefix;               /* keys that had a "module." prefix */
    int qat_extras;                  /* fake-quant / observer keys skipped */
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
 * differs). Nothing is written into model unless every check passes.
 * report may be NULL; otherwise it is filled (free it with
 * ics_pth_import_report_free, also after an error). Errors name the file
 * and the tensor (and the closest key present for a missing one). */
ics_status ics_pth_import_into_model(const char *path, ics_model *model,
                                     ics_pth_import_report *report, ics_error *err);

/* Converts the .pth into an icsparse checkpoint at out_h5 (written
 * atomically). arch: NULL or "" takes the file's arch_key. opts may be
 * NULL (defaults); num_classes <= 0 takes the class count from the file's
 * classifier, in_channels <= 0 from the first convolution. The file's
 * recipe is stored as /recipe; epoch is 0 (training starts here). */
ics_status ics_pth_import_to_checkpoint(const char *pth, const char *arch,
                                        const ics_model_options *opts, const char *out_h5,
                                        ics_error *err);

/* The state_dict key that the file's key `key` stands for in torchvision
 * naming ("module." stripped, SparseZoo ResNet names mapped), written to
 * out. Returns 1 if it was renamed (SparseZoo), 0 otherwise; -1 if out is
 * too small. */
int ics_pth_import_map_key(const char *key, char *out, size_t size);

#endif
