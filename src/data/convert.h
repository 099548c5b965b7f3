/*
 * src/data/convert.h: from a decoded source (raw.h) to the HDF5 dataset:
 * the val split carved from train (stratified by class, seeded), mean and
 * std over the final train split, and the write through a temporary name.
 */
#ifndef ICS_DATA_CONVERT_H
#define ICS_DATA_CONVERT_H

#include <stdint.h>
#include <icsparse/status.h>
#include "data/raw.h"

/* Progress callback (the executable draws a bar; the library never prints). */
typedef void (*ics_progress_fn)(void *ctx, const char *what, int64_t done, int64_t total);

typedef struct ics_convert_options {
    double val_fraction;    /* in [0, 1): share of each class moved from train to val */
    uint64_t seed;          /* names the val split */
    int deflate_level;      /* 0: none */
    ics_progress_fn progress;
    void *progress_ctx;
} ics_convert_options;

/* Stratified split of rows 0..n-1: for each class c with n_c rows,
 * round(n_c * fraction) rows chosen by a seeded shuffle (stream seed, c)
 * go to val, the rest to train; both lists ascending (source order kept).
 * Labels must be in [0, num_classes). */
ics_status ics_split_stratified(const int32_t *labels, int64_t n, int num_classes, double fraction,
                                uint64_t seed, int64_t **train_rows, int64_t *n_train,
                                int64_t **val_rows, int64_t *n_val, ics_error *err);

/* Per-channel mean and population std of n NHWC images in [0,1] units
 * (pixel/255), the numbers torchvision's Normalize expects. */
void ics_image_stats(const uint8_t *images, int64_t n, int64_t pixels_per_image, int channels,
                     double *mean, double *std);

/* Carves val from raw->train, computes mean/std over train, writes path.
 * raw is left unchanged. */
ics_status ics_convert_write(const ics_raw_dataset *raw, const char *path,
                             const ics_convert_options *options, ics_error *err);

#endif
