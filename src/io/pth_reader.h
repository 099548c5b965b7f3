/*
 * Reading PyTorch files made by torch.save (zip format, torch >= 1.6):
 * state_dicts and SparseML / SparseZoo training checkpoints. The archive's
 * data.pkl is run through the data-only pickle reader; tensors are rebuilt
 * from their storages (torch._utils._rebuild_tensor_v2 with offset, size and
 * stride: views become contiguous copies; _rebuild_parameter too); every
 * other class becomes an opaque object. Nothing from the file is executed.
 *
 * The legacy pre-1.6 format (a sequence of pickles starting with the magic
 * number 0x1950a86a20f9469cfc6c, then raw storages) is read too
 * (pth_legacy.c); its archive name is "".
 */
#ifndef ICS_IO_PTH_READER_H
#define ICS_IO_PTH_READER_H

#include <stddef.h>
#include <stdint.h>
#include "io/pickle_value.h"

typedef struct ics_pth ics_pth;

/* Reads a .pth file. *out is owned by the caller (ics_pth_destroy). */
ics_status ics_pth_load(const char *path, ics_pth **out, ics_error *err);
/* The same from a buffer in memory (borrowed for the call only); label
 * names it in errors. */
ics_status ics_pth_load_memory(const uint8_t *data, size_t size, const char *label, ics_pth **out,
                               ics_error *err);
void ics_pth_destroy(ics_pth *pth);

/* The object torch.save was given. */
const ics_pv *ics_pth_root(const ics_pth *pth);
/* The archive's top-level folder name ("archive", or the file's stem for
 * older torch). */
const char *ics_pth_archive_name(const ics_pth *pth);

/* 1 if v is a dict whose keys are strings and values tensors. */
int ics_pth_is_tensor_dict(const ics_pv *v);
/* The model weights: the root itself when it is a dict of tensors (a plain
 * state_dict), else root["state_dict"] or root["model"] when that is one
 * (training checkpoints). NULL when there is none. */
const ics_pv *ics_pth_state_dict(const ics_pth *pth);
/* name without a leading "module." (what DataParallel / DDP add). */
const char *ics_pth_strip_module_prefix(const char *name);

#endif
