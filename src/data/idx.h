/*
 * src/data/idx.h: the IDX format of MNIST and Fashion-MNIST (LeCun's
 * "big-endian magic, dims, raw bytes"), gzip-compressed or raw. Images are
 * idx3 uint8 (magic 0x00000803), labels idx1 uint8 (0x00000801).
 */
#ifndef ICS_DATA_IDX_H
#define ICS_DATA_IDX_H

#include <stdint.h>
#include <icsparse/status.h>
#include "data/raw.h"

/* Reads an idx3-ubyte image file into a malloc'd [count,h,w] array.
 * Wrong magic, truncation, trailing bytes and gzip damage are format
 * errors naming the file. */
ics_status ics_idx_read_images(const char *path, uint8_t **images, int64_t *count, int *height,
                               int *width, ics_error *err);
/* Reads an idx1-ubyte label file; every label must be < num_classes. */
ics_status ics_idx_read_labels(const char *path, int num_classes, int32_t **labels, int64_t *count,
                               ics_error *err);

/* Loads the four standard files (train-images-idx3-ubyte, train-labels-
 * idx1-ubyte, t10k-...; each with or without .gz) from dir into raw (one
 * channel, 10 classes named by class_names). source_sha256 is the SHA-256
 * of the four files' digests concatenated in that order. */
ics_status ics_idx_load_dir(const char *dir, const char *const class_names[10], ics_raw_dataset *raw,
                            ics_error *err);

#endif
