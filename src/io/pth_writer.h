/*
 * Writing PyTorch files that torch.load reads (with weights_only=True on
 * torch >= 2.0; see pickle_writer.h for torch 1.13 and floats): a state_dict
 * (an ordered dict of tensors) or a training-checkpoint dict of tensors,
 * dicts, lists, strings, numbers, booleans and None. The layout is the one
 * torch.save makes: <folder>/data.pkl, <folder>/data/<key> per tensor,
 * <folder>/version, entries STORED and 64-byte aligned. Written to a
 * temporary name and renamed. A state_dict's _metadata attribute (module
 * versions): ics_pth_save_attrs.
 */
#ifndef ICS_IO_PTH_WRITER_H
#define ICS_IO_PTH_WRITER_H

#include "io/pickle_value.h"

/* Saves root to path. folder is the archive's top-level folder (NULL:
 * "archive", as torch >= 2.0 names it). Every tensor gets its own storage
 * (views are not shared). */
ics_status ics_pth_save(const char *path, const ics_pv *root, const char *folder, ics_error *err);

/* As ics_pth_save, with instance attributes on one ordered dict of the
 * tree: the OrderedDict `dict` (root itself or a value inside it) is
 * pickled with attrs, a dict {name: value}, set on it by BUILD. This is
 * how torch.save writes a state_dict, an OrderedDict whose attribute
 * _metadata maps every module prefix ("" the root) to {"version": N}:
 * pass attrs = {"_metadata": OrderedDict(...)}. torch.load gives the
 * object back with the attribute; src/io's reader ignores it. */
ics_status ics_pth_save_attrs(const char *path, const ics_pv *root, const char *folder,
                              const ics_pv *dict, const ics_pv *attrs, ics_error *err);

#endif
