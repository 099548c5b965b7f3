/*
 * Shared by pth_import.c (weights) and pth_import_qat.c (torch's QAT state
 * mapped onto icsparse's quantizers). Not public.
 */
#ifndef ICS_IO_PTH_IMPORT_INTERNAL_H
#define ICS_IO_PTH_IMPORT_INTERNAL_H

#include "io/pth_import.h"
#include "io/pth_reader.h"

/* One state_dict entry: the file's key, the model name it stands for. */
typedef struct ics_pth_entry {
    const char *file_key;
    char name[ICS_NAME_MAX + 64];
    const ics_pv *tensor;
    int used; /* claimed by a model tensor or a quantizer */
} ics_pth_entry;

/* QAT training-only state: fake-quantization modules and their observers. */
int ics_pth_is_qat_key(const char *name);

/* Torch's fused QAT modules (ConvBn2d, ConvBnReLU2d) hold their BN as
 * "<conv>.bn": when name is "<conv>.bn.<p>", <conv> a convolution of model
 * followed by its BN node, writes "<bn node>.<p>" to out and returns 1;
 * 0 otherwise. */
int ics_pth_fused_bn_name(const ics_model *model, const char *name, char *out, size_t size);

/* The file's quantizer state, matched to a QAT model's quantizers and
 * checked: nothing is written into the model until ..._apply. */
typedef struct ics_pth_qat_plan ics_pth_qat_plan;
/* Claims (marks used) the QAT entries that match a quantizer of model;
 * the others are counted in rep->qat_extras. skip (NULL: none) names a
 * module whose quantizer state is dropped: the classifier transfer
 * learning re-initializes. Errors name the key. */
ics_status ics_pth_qat_plan_make(ics_pth_entry *e, size_t n, const char *label,
                                 const ics_model *model, const char *skip,
                                 ics_pth_import_report *rep, ics_pth_qat_plan **out,
                                 ics_error *err);
/* Writes the checked state: observer ranges, weight scales, the observer
 * flag. */
void ics_pth_qat_plan_apply(const ics_pth_qat_plan *plan, ics_model *model);
void ics_pth_qat_plan_destroy(ics_pth_qat_plan *plan);

#endif
