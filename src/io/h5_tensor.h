/*
 * Checked HDF5 datasets for checkpoints: tensors (float32, int64, uint8,
 * int8) with their shapes, and text. Errors name the file and the dataset
 * path. Writes are plain (contiguous, no timestamps) so the same state
 * gives the same bytes.
 */
#ifndef ICS_IO_H5_TENSOR_H
#define ICS_IO_H5_TENSOR_H

#include <hdf5.h>
#include <stdint.h>
#include <icsparse/status.h>

typedef enum ics_h5_dtype { ICS_H5_F32 = 0, ICS_H5_I64, ICS_H5_U8, ICS_H5_I8, ICS_H5_U64, ICS_H5_F64 } ics_h5_dtype;

/* Creates the intermediate groups of path ("/a/b/c" creates /a and /a/b). */
ics_status ics_h5_make_parents(hid_t file, const char *path, const char *filename, ics_error *err);
/* Writes a tensor dataset (ndim 0 = a scalar). */
ics_status ics_h5_write_tensor(hid_t file, const char *path, ics_h5_dtype dtype, const void *data,
                               int ndim, const int64_t *shape, const char *filename, ics_error *err);
/* Reads a tensor whose shape must be exactly ndim/shape (an error names
 * both shapes otherwise), converting to dtype. */
ics_status ics_h5_read_tensor(hid_t file, const char *path, ics_h5_dtype dtype, void *data, int ndim,
                              const int64_t *shape, const char *filename, ics_error *err);
/* Reads a tensor's shape: ndim and up to 8 dims. */
ics_status ics_h5_tensor_shape(hid_t file, const char *path, int *ndim, int64_t *shape,
                               const char *filename, ics_error *err);
/* Text as a scalar variable-length-free fixed string dataset. */
ics_status ics_h5_write_text(hid_t file, const char *path, const char *text, const char *filename,
                             ics_error *err);
/* Reads text into a malloc'd string. */
ics_status ics_h5_read_text(hid_t file, const char *path, char **text, const char *filename,
                            ics_error *err);
/* 1 if the link path exists (all its parents too). */
int ics_h5_exists(hid_t file, const char *path);

#endif
