/*
 * src/data/data_config.h: the data.* configuration keys turned into what
 * the trainer and evaluator need: the files to read and loader options.
 */
#ifndef ICS_DATA_DATA_CONFIG_H
#define ICS_DATA_DATA_CONFIG_H

#include <icsparse/config.h>
#include <icsparse/status.h>
#include "data/loader.h"

/* Loader options from data.*: train = 1 gives shuffling and the
 * configured augmentations (crop_padding, hflip, random_resized_crop);
 * train = 0 the deterministic eval transform. Both: image_size,
 * normalize, prefetch, drop_last (train only). */
ics_loader_options ics_loader_options_from_config(const ics_config *cfg, int train);

/* The files to read: every part-SSSSS-of-MMMMM.h5 of data.shards_dir when
 * that key is set (all M must be there), else data.path, else
 * data.dir/data.dataset.h5. Caller frees with ics_data_files_free. */
ics_status ics_data_files_from_config(const ics_config *cfg, char ***paths, int *count, ics_error *err);
void ics_data_files_free(char **paths, int count);

#endif
