/*
 * Writing PyTorch files that torch.load reads (with weights_only=True on
 * torch >= 2.0; see pickle_writer.h for torch 1.13 and floats): a state_dict
 * (an ordered dict of tensors) or a training-checkpoint dict of tensors,
 * dicts, lists, strings, numbers, booleans and None. The layout is the one
 * torch.save makes: <folder>/data.pkl, <folder>/data/<key> per tensor,
 * <folder>/version, entries STORED and 64-byte aligned. Written to a
 * temporary name and renamed.
 */
#ifndef ICS_IO_PTH_WRITER_H
#define ICS_IO_PTH_WRITER_H

#include "io/pickle_value.h"

/* Saves root to path. folder is the archive's top-level folder (NULL:
 * "archive", as torch >= 2.0 names it). Every tensor gets its own storage
 * (views are not shared). */
ics_status ics_pth_save(const char *path, const ics_pv *root, const char *folder, ics_error *err);

#endif
