/*
 * src/data/dataset.h: the HDF5 dataset format (one file per dataset or per
 * shard), its writer and its reader.
 *
 * Layout: per split group (/train, /val, /test) `images` uint8 [N,H,W,C]
 * chunked by ICS_DATASET_CHUNK_IMAGES images (optionally deflate) and
 * `labels` int32 [N]. Root attributes: format ("icsparse-dataset" or, for a
 * shard, "icsparse-shard"), format_version (1), classes (names), height,
 * width, channels, mean[C], std[C] (over train, in [0,1] units like
 * torchvision's Normalize), source, source_sha256; shards add shard_index,
 * shard_count and seed. docs/DATASETS.md is the reference.
 *
 * Files are written byte-deterministically (no object timestamps, no fill
 * writes, fixed chunking, zero padding) to a temporary name in the target
 * directory, then renamed: a failure never leaves a file under the final
 * name, and the same content always gives the same bytes.
 */
#ifndef ICS_DATA_DATASET_H
#define ICS_DATA_DATASET_H

#include <stdint.h>
#include <icsparse/status.h>

#define ICS_DATASET_FORMAT "icsparse-dataset"
#define ICS_SHARD_FORMAT "icsparse-shard"
#define ICS_DATASET_FORMAT_VERSION 1
#define ICS_DATASET_MAX_CHANNELS 4
#define ICS_DATASET_CHUNK_IMAGES 32

/* The three splits, in file order. */
extern const char *const ics_dataset_splits[3];

typedef struct ics_dataset_meta {
    int height, width, channels;
    int num_classes;
    char **class_names; /* num_classes strings, owned */
    double mean[ICS_DATASET_MAX_CHANNELS], std[ICS_DATASET_MAX_CHANNELS];
    char *source;       /* owned; where the data came from ("fashion-mnist (/usr/share/...)") */
    char source_sha256[65]; /* hex digest of the source archive(s), "" if unknown */
    /* Shards only (is_shard = 1): */
    int is_shard;
    int shard_index, shard_count;
    uint64_t seed;
} ics_dataset_meta;

/* Frees the owned strings and zeroes the record. */
void ics_dataset_meta_clear(ics_dataset_meta *meta);
/* Deep copy (dst is overwritten, not cleared first). */
ics_status ics_dataset_meta_copy(ics_dataset_meta *dst, const ics_dataset_meta *src, ics_error *err);
/* Sets class names (copied) and num_classes. */
ics_status ics_dataset_meta_set_classes(ics_dataset_meta *meta, const char *const *names, int count,
                                        ics_error *err);
/* Sets classes "0".."count-1" (sources without class names). */
ics_status ics_dataset_meta_number_classes(ics_dataset_meta *meta, int count, ics_error *err);

/* ---------------------------------------------------------------- writer */

typedef struct ics_dataset_write_options {
    int deflate_level; /* 0 = no compression, 1..9 = deflate (serial writes only) */
    int parallel;      /* 1: every rank opens the file (MPI-IO driver) and writes its rows */
} ics_dataset_write_options;

typedef struct ics_dataset_writer ics_dataset_writer;

/* Starts writing path (through a temporary name beside it). In parallel
 * mode every rank calls this, and every later call, collectively, except
 * ics_dataset_writer_write which each rank calls for its own rows. */
ics_status ics_dataset_writer_create(const char *path, const ics_dataset_meta *meta,
                                     const ics_dataset_write_options *options,
                                     ics_dataset_writer **out, ics_error *err);
/* Creates a split with count rows (its datasets allocated at full size). */
ics_status ics_dataset_writer_create_split(ics_dataset_writer *w, const char *split, int64_t count,
                                           ics_error *err);
/* Writes rows [first, first+n) of a created split. */
ics_status ics_dataset_writer_write(ics_dataset_writer *w, const char *split, int64_t first,
                                    int64_t n, const uint8_t *images, const int32_t *labels,
                                    ics_error *err);
/* Writes the root attributes, closes the file, renames it to its final
 * name and frees the writer (also on failure, which removes the temp). */
ics_status ics_dataset_writer_commit(ics_dataset_writer *w, ics_error *err);
/* Gives up: closes and removes the temporary file, frees the writer. */
void ics_dataset_writer_abort(ics_dataset_writer *w);

/* Convenience for one process: a whole dataset in one call. images[s] and
 * labels[s] hold counts[s] rows for split s (train, val, test); a split
 * with count 0 is omitted. */
ics_status ics_dataset_write_file(const char *path, const ics_dataset_meta *meta,
                                  const ics_dataset_write_options *options,
                                  const uint8_t *const images[3], const int32_t *const labels[3],
                                  const int64_t counts[3], ics_error *err);

/* ---------------------------------------------------------------- reader */

typedef struct ics_dataset_reader ics_dataset_reader;

/* Opens a dataset or shard file for reading. Refuses, with one line naming
 * the file, anything that is not HDF5, has no or another format, or a
 * format_version it does not know, or inconsistent shapes. */
ics_status ics_dataset_open(const char *path, ics_dataset_reader **out, ics_error *err);
void ics_dataset_close(ics_dataset_reader *r);
const ics_dataset_meta *ics_dataset_reader_meta(const ics_dataset_reader *r);
const char *ics_dataset_reader_path(const ics_dataset_reader *r);
/* Rows in a split; 0 when the split is absent. */
int64_t ics_dataset_count(const ics_dataset_reader *r, const char *split);
/* Reads rows [first, first+n) of a split: images (n*H*W*C bytes) and/or
 * labels (either may be NULL). Labels are checked to be in
 * [0, num_classes): an out-of-range label is a format error naming the
 * row. */
ics_status ics_dataset_read(ics_dataset_reader *r, const char *split, int64_t first, int64_t n,
                            uint8_t *images, int32_t *labels, ics_error *err);

#endif
