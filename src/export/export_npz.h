/*
 * src/export/export_npz.h: numpy's .npz, what numpy.savez writes and
 * numpy.load reads: a zip archive with one "<key>.npy" entry per array,
 * each in the .npy format version 1.0 (magic "\x93NUMPY", version 1 0, a
 * little-endian uint16 header length, a Python dict literal header
 * {'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 32, 32), }
 * padded with spaces to a multiple of 64 bytes and ended by '\n', then the
 * C-order little-endian data). Used for the SparseZoo directory's sample
 * inputs, outputs and labels.
 */
#ifndef ICS_EXPORT_NPZ_H
#define ICS_EXPORT_NPZ_H

#include <stddef.h>
#include <stdint.h>

#include <icsparse/status.h>

#define ICS_NPZ_MAX_DIMS 8

typedef struct ics_npz_array {
    const char *key;   /* numpy.load(...)[key]; letters, digits, '_', '-' */
    const char *descr; /* numpy dtype string: "<f4" (float32) or "<i8" (int64) */
    int ndim;          /* 0..ICS_NPZ_MAX_DIMS */
    const int64_t *shape;
    const void *data; /* C order, little-endian, product(shape) elements */
} ics_npz_array;

/* Writes the arrays to path as an .npz (entries STORED, the file written
 * to a temporary name and renamed). Errors: an unknown descr, a bad key or
 * shape, I/O, out of memory. */
ics_status ics_npz_write(const char *path, const ics_npz_array *arrays, int count, ics_error *err);

#endif
