/*
 * src/export/export_pth_metadata.h: torch's _metadata of a state_dict, the
 * attribute Module.state_dict() sets on the OrderedDict it returns: every
 * module prefix of torch's module of the model ("" the root, then the
 * submodules depth first in registration order, parameterless ones
 * included) mapped to {"version": N}, N the class's _version. The .pth
 * writers of export_pth.c (fp32 state_dict and QAT checkpoint) attach it
 * with ics_pth_save_attrs; how the tree and the versions are derived:
 * export_pth_metadata.c.
 */
#ifndef ICS_EXPORT_PTH_METADATA_H
#define ICS_EXPORT_PTH_METADATA_H

#include <icsparse/model.h>
#include <icsparse/status.h>

#include "io/pickle_value.h"

/* The longest state_dict key (and so module prefix) the .pth export makes:
 * a tensor name and the quantizer suffixes a QAT key adds. */
#define ICS_PTH_KEY_LEN (ICS_NAME_MAX + 128)

/* Builds the module tree of model whose state_dict is sd (its keys as
 * written, in order) and its _metadata OrderedDict, allocated in a, into
 * *out. Errors: out of memory (err set). */
ics_status ics_pth_module_metadata(ics_pv_arena *a, ics_model *model, const ics_pv *sd,
                                   ics_pv **out, ics_error *err);

#endif
