/*
 * Schema section owned by src/data: the data.* keys (dataset conversion,
 * sharding, the loader and its augmentations). docs/DATASETS.md explains
 * each. Fields: key, type, default (text), min, max (min > max: no
 * range), choices (strings), one-line doc.
 */
#include "ics_build_config.h"
#include "config/schema.h"

#define NO_RANGE 1, 0

const ics_config_key ics_schema_data[] = {
    {"data.dir", ICS_CFG_STRING, "data", NO_RANGE, NULL,
     "directory for converted datasets, downloads and shards"},
    {"data.dataset", ICS_CFG_STRING, "fashion-mnist", NO_RANGE, NULL,
     "dataset name (fashion-mnist, mnist, cifar10, cifar100, imagenette) or 'folder'"},
    {"data.path", ICS_CFG_STRING, "", NO_RANGE, NULL,
     "converted dataset file (empty: DIR/DATASET.h5)"},
    {"data.source", ICS_CFG_STRING, "", NO_RANGE, NULL,
     "raw source (directory or archive) to convert (empty: the dataset's known local places)"},
    {"data.shards_dir", ICS_CFG_STRING, "", NO_RANGE, NULL,
     "directory of shards (empty: DIR/DATASET-shards); the loader reads shards when set"},
    {"data.num_shards", ICS_CFG_INT, "8", 1, 100000, NULL, "shards written by icsparse-shard"},
    {"data.val_fraction", ICS_CFG_FLOAT, "0.1", 0, 0.9, NULL,
     "fraction of train carved out as the val split (stratified by class)"},
    {"data.seed", ICS_CFG_INT, "1234", 0, 2147483647, NULL,
     "seed of the val split and the shard permutation (the loader uses run.seed)"},
    {"data.image_size", ICS_CFG_INT, "0", 0, 4096, NULL,
     "image side for image folders (resize shorter side + center crop) and the eval transform; 0: as stored"},
    {"data.crop_padding", ICS_CFG_INT, "0", 0, 1024, NULL,
     "training augmentation: random crop with this zero padding on each side (0: off)"},
    {"data.hflip", ICS_CFG_BOOL, "false", NO_RANGE, NULL, "training augmentation: random horizontal flip"},
    {"data.random_resized_crop", ICS_CFG_BOOL, "false", NO_RANGE, NULL,
     "training augmentation: random resized crop (scale 0.08-1, ratio 3/4-4/3) to image_size"},
    {"data.normalize", ICS_CFG_BOOL, "true", NO_RANGE, NULL,
     "subtract the dataset's mean and divide by its std (computed over train)"},
    {"data.prefetch", ICS_CFG_BOOL, "true", NO_RANGE, NULL,
     "prepare the next batch in a background thread (double buffering)"},
    {"data.drop_last", ICS_CFG_BOOL, "false", NO_RANGE, NULL,
     "drop the tail so every rank gets equal full counts (false: pad by repeating, like DistributedSampler)"},
    {"data.download", ICS_CFG_BOOL, "false", NO_RANGE, NULL,
     "fetch a named dataset's archives when no local source is found (checksums verified)"},
    {"data.compress", ICS_CFG_INT, "0", 0, 9, NULL, "deflate level of converted datasets (0: none)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
