/*
 * CIFAR-10 and CIFAR-100 "binary version" archives, read straight from the
 * .tar.gz (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html):
 *   CIFAR-10:  cifar-10-batches-bin/data_batch_{1..5}.bin, test_batch.bin,
 *              batches.meta.txt; records <1 label byte><3072 pixel bytes>
 *   CIFAR-100: cifar-100-binary/train.bin, test.bin, fine_label_names.txt;
 *              records <coarse byte><fine byte><3072 pixel bytes>
 * Pixels are stored as three 32x32 planes (R, G, B); icsparse stores
 * NHWC, so each record is transposed. CIFAR-100 uses the fine labels.
 */
#include "ics_build_config.h"
#include "data/raw.h"
#include "data/sha256.h"
#include "data/tar.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CIFAR_PIXELS 3072

ics_status ics_cifar_load(const char *archive, int classes, ics_raw_dataset *raw, ics_error *err);

typedef struct part {
    uint8_t *bytes;
    uint64_t size;
} part;

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Which part a file is: 0..4 train batches (CIFAR-10), 0 train (100),
 * 5 test, 6 class names; -1 otherwise. */
static int part_index(const char *name, int classes)
{
    if (classes == 10) {
        for (int i = 0; i < 5; i++) {
            char want[32];
            snprintf(want, sizeof want, "data_batch_%d.bin", i + 1);
            if (strcmp(name, want) == 0) return i;
        }
        if (strcmp(name, "test_batch.bin") == 0) return 5;
        if (strcmp(name, "batches.meta.txt") == 0) return 6;
    } else {
        if (strcmp(name, "train.bin") == 0) return 0;
        if (strcmp(name, "test.bin") == 0) return 5;
        if (strcmp(name, "fine_label_names.txt") == 0) return 6;
    }
    return -1;
}

/* Decodes records of the concatenated parts into a split. */
static ics_status decode(const char *archive, const part *parts, int first, int last, int classes,
                         ics_raw_split *split, ics_error *err)
{
    size_t label_bytes = classes == 10 ? 1 : 2;
    size_t record = label_bytes + CIFAR_PIXELS;
    int64_t n = 0;
    for (int p = first; p <= last; p++) n += (int64_t)(parts[p].size / record);
    split->images = ics_malloc((size_t)n * CIFAR_PIXELS, "CIFAR images", err);
    split->labels = split->images ? ics_malloc((size_t)n * sizeof *split->labels, "CIFAR labels", err) : NULL;
    if (!split->labels) return ICS_ERR_NOMEM;
    int64_t row = 0;
    for (int p = first; p <= last; p++) {
        for (uint64_t r = 0; r < parts[p].size / record; r++, row++) {
            const uint8_t *rec = parts[p].bytes + r * record;
            int label = rec[label_bytes - 1];
            if (label >= classes)
                return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: label %d of record %llu is out of range 0..%d",
                                archive, label, (unsigned long long)r, classes - 1);
            split->labels[row] = label;
            const uint8_t *planes = rec + label_bytes;
            uint8_t *out = split->images + (size_t)row * CIFAR_PIXELS;
            for (int px = 0; px < 1024; px++) {
                out[3 * px] = planes[px];
                out[3 * px + 1] = planes[1024 + px];
                out[3 * px + 2] = planes[2048 + px];
            }
        }
    }
    split->count = n;
    return ICS_OK;
}

/* One name per non-empty line. */
static ics_status parse_names(const char *archive, const part *text, int classes, ics_dataset_meta *meta,
                              ics_error *err)
{
    char **names = ics_calloc((size_t)classes, sizeof *names, "class names", err);
    if (!names) return ICS_ERR_NOMEM;
    int count = 0;
    ics_status st = ICS_OK;
    const char *p = (const char *)text->bytes, *end = p + text->size;
    while (!st && p < end && count < classes) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        const char *e = stop;
        while (e > p && (e[-1] == '\r' || e[-1] == ' ')) e--;
        if (e > p) {
            names[count] = ics_malloc((size_t)(e - p) + 1, "class name", err);
            if (!names[count]) {
                st = ICS_ERR_NOMEM;
                break;
            }
            memcpy(names[count], p, (size_t)(e - p));
            names[count][e - p] = '\0';
            count++;
        }
        p = stop + 1;
    }
    if (!st && count != classes)
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: class name list has %d names, want %d", archive, count, classes);
    if (!st) st = ics_dataset_meta_set_classes(meta, (const char *const *)names, classes, err);
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
    return st;
}

ics_status ics_cifar_load(const char *archive, int classes, ics_raw_dataset *raw, ics_error *err)
{
    memset(raw, 0, sizeof *raw);
    part parts[7];
    memset(parts, 0, sizeof parts);
    size_t record = (classes == 10 ? 1 : 2) + CIFAR_PIXELS;
    ics_tar *t;
    ics_status st = ics_tar_open(archive, &t, err);
    if (st) return st;
    ics_tar_entry *e = ics_malloc(sizeof *e, "tar entry", err);
    if (!e) st = ICS_ERR_NOMEM;
    int done = 0;
    while (!st) {
        st = ics_tar_next(t, e, &done, err);
        if (st || done) break;
        int p = e->type == '0' ? part_index(base_name(e->name), classes) : -1;
        if (p < 0) continue;
        if (p < 6 && (e->size == 0 || e->size % record != 0 || e->size > ((uint64_t)1 << 32))) {
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s is %llu bytes, not a whole number of %zu-byte records (truncated, or not CIFAR-%d?)",
                          archive, e->name, (unsigned long long)e->size, record, classes);
            break;
        }
        if (p == 6 && e->size > (1u << 20)) continue;
        free(parts[p].bytes);
        parts[p].bytes = ics_malloc((size_t)e->size + 1, "CIFAR part", err);
        parts[p].size = e->size;
        st = parts[p].bytes ? ics_tar_read(t, parts[p].bytes, e->size, err) : ICS_ERR_NOMEM;
    }
    free(e);
    ics_tar_close(t);
    int train_last = classes == 10 ? 4 : 0;
    for (int p = 0; !st && p < 7; p++) {
        if ((p > train_last && p < 5) || parts[p].bytes) continue;
        char want[64];
        if (p == 6) snprintf(want, sizeof want, "%s", classes == 10 ? "batches.meta.txt" : "fine_label_names.txt");
        else if (p == 5) snprintf(want, sizeof want, "%s", classes == 10 ? "test_batch.bin" : "test.bin");
        else if (classes == 10) snprintf(want, sizeof want, "data_batch_%d.bin", p + 1);
        else snprintf(want, sizeof want, "train.bin");
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: not a CIFAR-%d binary archive (no %s)", archive, classes, want);
    }
    if (!st) st = decode(archive, parts, 0, train_last, classes, &raw->train, err);
    if (!st) st = decode(archive, parts, 5, 5, classes, &raw->test, err);
    if (!st) st = parse_names(archive, &parts[6], classes, &raw->meta, err);
    if (!st) {
        raw->meta.height = raw->meta.width = 32;
        raw->meta.channels = 3;
        st = ics_sha256_file(archive, raw->meta.source_sha256, err);
    }
    if (!st && !(raw->meta.source = ics_strdup(archive, err))) st = ICS_ERR_NOMEM;
    for (int p = 0; p < 7; p++) free(parts[p].bytes);
    if (st) ics_raw_dataset_clear(raw);
    return st;
}
