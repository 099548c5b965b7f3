/*
 * src/data/raw.h: a source dataset decoded into memory, the common shape
 * every converter (IDX, CIFAR, image folders) produces before
 * convert.c carves val, computes mean/std and writes the HDF5 dataset.
 */
#ifndef ICS_DATA_RAW_H
#define ICS_DATA_RAW_H

#include <stdint.h>
#include "data/dataset.h"

typedef struct ics_raw_split {
    uint8_t *images; /* count * H*W*C, NHWC */
    int32_t *labels;
    int64_t count;
} ics_raw_split;

typedef struct ics_raw_dataset {
    ics_dataset_meta meta; /* shape, classes, source, source_sha256 */
    ics_raw_split train, test;
} ics_raw_dataset;

/* Frees everything and zeroes the record. */
void ics_raw_dataset_clear(ics_raw_dataset *raw);

#endif
