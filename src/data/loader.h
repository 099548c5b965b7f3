/*
 * src/data/loader.h: the training and eval data loader.
 *
 * Each rank holds its portion of a split in memory (read on the calling
 * thread at create time: HDF5 is not thread-safe here), then produces
 * batches of NHWC float32 (the engine's layout) with int32 labels:
 *  - one file, or fewer files than ranks: torch's DistributedSampler over
 *    the whole split: a permutation seeded by (seed, epoch) when shuffling,
 *    padded by wrapping around (or cut, with drop_last) to a multiple of
 *    world_size, rank r taking positions r, r+W, r+2W, ...
 *  - shards (at least as many files as ranks): rank r reads files r, r+W,
 *    ...; its rows are shuffled by (seed, epoch, rank) and padded by
 *    wrapping (or cut) to the same count on every rank (the largest, or
 *    with drop_last the smallest, rank total).
 * Training transforms (random crop with padding, random resized crop,
 * horizontal flip) draw from a stream named by (seed, epoch, rank, sample
 * position): identical batches for identical (seed, epoch, rank), with or
 * without the prefetch thread. Batches: full ones, then the remainder,
 * unless drop_last also drops the last partial batch.
 */
#ifndef ICS_DATA_LOADER_H
#define ICS_DATA_LOADER_H

#include <stdint.h>
#include <icsparse/status.h>
#include "data/dataset.h"

typedef struct ics_loader_options {
    int shuffle;             /* per-epoch shuffle (training) */
    int drop_last;           /* cut instead of pad; drop the last partial batch */
    int crop_padding;        /* > 0: RandomCrop(stored size, padding) */
    int hflip;               /* RandomHorizontalFlip(0.5) */
    int random_resized_crop; /* RandomResizedCrop(image_size) */
    int image_size;          /* output side; 0: as stored. Without random_resized_crop: eval transform */
    int resize_to;           /* eval: shorter side before the center crop; 0: image_size (no border) */
    int normalize;           /* (x/255 - mean)/std with the dataset's mean and std */
    int prefetch;            /* background thread, double buffering */
} ics_loader_options;

/* Training defaults: shuffle, normalize, prefetch; nothing else. */
ics_loader_options ics_loader_default_options(void);

typedef struct ics_loader ics_loader;

/* paths: one dataset file or a list of shard files (all of the same
 * dataset shape and classes). */
ics_status ics_loader_create(const char *const *paths, int path_count, const char *split, int batch_size, int rank,
                             int world_size, uint64_t seed, const ics_loader_options *options, ics_loader **out,
                             ics_error *err);
void ics_loader_destroy(ics_loader *loader);

/* Starts epoch `epoch` (0-based): reshuffles. Without a call, epoch 0. */
ics_status ics_loader_set_epoch(ics_loader *loader, int64_t epoch, ics_error *err);
/* The next batch of the epoch into images [batch, H, W, C] and labels;
 * *count = rows filled, 0 when the epoch is over. */
ics_status ics_loader_next(ics_loader *loader, float *images, int32_t *labels, int *count, ics_error *err);

/* Rows this rank yields per epoch, batches per epoch, output shape. */
int64_t ics_loader_samples_per_epoch(const ics_loader *loader);
int64_t ics_loader_batches_per_epoch(const ics_loader *loader);
void ics_loader_output_shape(const ics_loader *loader, int *height, int *width, int *channels);
const ics_dataset_meta *ics_loader_meta(const ics_loader *loader);

#endif
