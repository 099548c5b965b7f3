/*
 * src/data/shard.h: splitting a dataset into N shard files with one global
 * seeded permutation, written with parallel HDF5 (every rank writes its
 * part of every shard), plus a manifest; and the manifest's verifier.
 *
 * Shard s of M holds, for each split with n rows, the rows at positions
 * [s*n/M, (s+1)*n/M) of the split's permutation (Fisher-Yates, stream
 * (seed, split)), in that order. The result depends on (dataset, M, seed)
 * only, never on the number of ranks: the files are byte-identical for
 * 1..P ranks.
 *
 * Files: DIR/part-SSSSS-of-MMMMM.h5 (format "icsparse-shard", same layout
 * as the dataset plus shard_index, shard_count, seed) and DIR/manifest.json
 * (counts per shard, split and class; SHA-256 of each shard).
 */
#ifndef ICS_DATA_SHARD_H
#define ICS_DATA_SHARD_H

#include <stddef.h>
#include <stdint.h>
#include <icsparse/status.h>

typedef struct ics_shard_options {
    int num_shards;
    uint64_t seed;
    int64_t max_memory_bytes; /* refuse a split larger than this (read whole per rank); 0: 8 GiB */
} ics_shard_options;

/* "DIR/part-00003-of-00008.h5" into buf. */
void ics_shard_path(char *buf, size_t size, const char *dir, int index, int count);

/* Collective over the MPI ranks (works without MPI as one rank): writes
 * the shards and the manifest into out_dir (created if needed). */
ics_status ics_shard_write(const char *dataset_path, const char *out_dir, const ics_shard_options *options,
                           ics_error *err);

/* Recomputes the manifest of out_dir from its shard files (collective when
 * MPI runs: each rank reads and hashes a share) and compares it with the
 * stored one; checks each shard's index/count/seed attributes and,
 * when the source dataset is still there, the totals per split and class. */
ics_status ics_shard_verify(const char *out_dir, ics_error *err);

#endif
