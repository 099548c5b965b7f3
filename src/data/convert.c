/* From a decoded source to the HDF5 dataset: see convert.h. */
#include "ics_build_config.h"
#include "data/convert.h"
#include "data/rng.h"
#include "core/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int compare_rows(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

ics_status ics_split_stratified(const int32_t *labels, int64_t n, int num_classes, double fraction,
                                uint64_t seed, int64_t **train_rows, int64_t *n_train,
                                int64_t **val_rows, int64_t *n_val, ics_error *err)
{
    *train_rows = *val_rows = NULL;
    *n_train = *n_val = 0;
    if (!(fraction >= 0.0 && fraction < 1.0))
        return ICS_FAIL(err, ICS_ERR_INVALID, "val fraction %g is outside [0, 1)", fraction);
    int64_t *per_class = ics_calloc((size_t)num_classes + 1, sizeof *per_class, "class counts", err);
    int64_t *order = per_class ? ics_malloc((size_t)(n > 0 ? n : 1) * sizeof *order, "row order", err) : NULL;
    int64_t *train = order ? ics_malloc((size_t)(n > 0 ? n : 1) * sizeof *train, "train rows", err) : NULL;
    int64_t *val = train ? ics_malloc((size_t)(n > 0 ? n : 1) * sizeof *val, "val rows", err) : NULL;
    if (!val) {
        free(per_class);
        free(order);
        free(train);
        return ICS_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= num_classes) {
            free(per_class);
            free(order);
            free(train);
            free(val);
            return ICS_FAIL(err, ICS_ERR_FORMAT, "label %d of row %lld is outside 0..%d", (int)labels[i],
                            (long long)i, num_classes - 1);
        }
        per_class[labels[i] + 1]++;
    }
    /* Counting sort by class (stable), then a seeded shuffle within each
     * class: the first round(n_c * fraction) rows of a class go to val. */
    int64_t *start = per_class;
    for (int c = 0; c < num_classes; c++) start[c + 1] += start[c];
    int64_t *fill = ics_malloc((size_t)num_classes * sizeof *fill + 1, "class cursor", err);
    if (!fill) {
        free(per_class);
        free(order);
        free(train);
        free(val);
        return ICS_ERR_NOMEM;
    }
    memcpy(fill, start, (size_t)num_classes * sizeof *fill);
    for (int64_t i = 0; i < n; i++) order[fill[labels[i]]++] = i;
    free(fill);
    int64_t nt = 0, nv = 0;
    for (int c = 0; c < num_classes; c++) {
        int64_t count = start[c + 1] - start[c];
        int64_t take = (int64_t)floor((double)count * fraction + 0.5);
        ics_data_rng rng;
        ics_data_rng_seed(&rng, seed, 0x5a1u, (uint64_t)c);
        ics_data_rng_shuffle(&rng, order + start[c], count);
        for (int64_t k = 0; k < count; k++) {
            int64_t row = order[start[c] + k];
            if (k < take) val[nv++] = row;
            else train[nt++] = row;
        }
    }
    free(per_class);
    free(order);
    qsort(train, (size_t)nt, sizeof *train, compare_rows);
    qsort(val, (size_t)nv, sizeof *val, compare_rows);
    *train_rows = train;
    *val_rows = val;
    *n_train = nt;
    *n_val = nv;
    return ICS_OK;
}

void ics_image_stats(const uint8_t *images, int64_t n, int64_t pixels_per_image, int channels,
                     double *mean, double *std)
{
    /* Exact integer sums (no rounding drift over millions of pixels):
     * mean = S1/N, var = S2/N - mean^2 in units of 255. */
    uint64_t s1[ICS_DATASET_MAX_CHANNELS] = {0}, s2[ICS_DATASET_MAX_CHANNELS] = {0};
    int64_t values = n * pixels_per_image;
    for (int64_t i = 0; i < values; i++)
        for (int c = 0; c < channels; c++) {
            uint64_t v = images[i * channels + c];
            s1[c] += v;
            s2[c] += v * v;
        }
    for (int c = 0; c < channels; c++) {
        if (values == 0) {
            mean[c] = 0.0;
            std[c] = 1.0;
            continue;
        }
        double m = (double)s1[c] / (double)values;
        double var = (double)s2[c] / (double)values - m * m;
        mean[c] = m / 255.0;
        std[c] = sqrt(var > 0 ? var : 0) / 255.0;
        if (std[c] == 0.0) std[c] = 1.0; /* a constant channel: normalize by 1, not 0 */
    }
}

/* Copies the chosen rows of a split into new buffers. */
static ics_status gather(const ics_raw_split *src, const int64_t *rows, int64_t n, size_t image_bytes,
                         uint8_t **images, int32_t **labels, ics_error *err)
{
    *images = ics_malloc((size_t)(n > 0 ? n : 1) * image_bytes, "split images", err);
    *labels = *images ? ics_malloc((size_t)(n > 0 ? n : 1) * sizeof **labels, "split labels", err) : NULL;
    if (!*labels) {
        free(*images);
        *images = NULL;
        return ICS_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        memcpy(*images + (size_t)i * image_bytes, src->images + (size_t)rows[i] * image_bytes, image_bytes);
        (*labels)[i] = src->labels[rows[i]];
    }
    return ICS_OK;
}

/* ics_dataset_write_file in blocks of rows, reporting progress. */
static ics_status write_with_progress(const char *path, const ics_dataset_meta *meta,
                                      const ics_dataset_write_options *wo, const uint8_t *const images[3],
                                      const int32_t *const labels[3], const int64_t counts[3], size_t image_bytes,
                                      const ics_convert_options *options, ics_error *err)
{
    enum { BLOCK = 4096 };
    ics_dataset_writer *w;
    ics_status st = ics_dataset_writer_create(path, meta, wo, &w, err);
    if (st) return st;
    int64_t total = counts[0] + counts[1] + counts[2], done = 0;
    for (int s = 0; s < 3 && !st; s++) {
        if (counts[s] <= 0) continue;
        st = ics_dataset_writer_create_split(w, ics_dataset_splits[s], counts[s], err);
        for (int64_t first = 0; !st && first < counts[s]; first += BLOCK) {
            int64_t n = counts[s] - first < BLOCK ? counts[s] - first : BLOCK;
            st = ics_dataset_writer_write(w, ics_dataset_splits[s], first, n, images[s] + (size_t)first * image_bytes,
                                          labels[s] + first, err);
            done += n;
            if (!st && options->progress) options->progress(options->progress_ctx, "writing", done, total);
        }
    }
    if (st) {
        ics_dataset_writer_abort(w);
        return st;
    }
    return ics_dataset_writer_commit(w, err);
}

ics_status ics_convert_write(const ics_raw_dataset *raw, const char *path,
                             const ics_convert_options *options, ics_error *err)
{
    const ics_dataset_meta *m = &raw->meta;
    size_t image_bytes = (size_t)m->height * m->width * m->channels;
    int64_t *train_rows, *val_rows, n_train, n_val;
    ics_status st = ics_split_stratified(raw->train.labels, raw->train.count, m->num_classes,
                                         options->val_fraction, options->seed, &train_rows, &n_train,
                                         &val_rows, &n_val, err);
    if (st) return st;
    uint8_t *images[3] = {NULL, NULL, NULL};
    int32_t *labels[3] = {NULL, NULL, NULL};
    st = gather(&raw->train, train_rows, n_train, image_bytes, &images[0], &labels[0], err);
    if (!st) st = gather(&raw->train, val_rows, n_val, image_bytes, &images[1], &labels[1], err);
    free(train_rows);
    free(val_rows);
    ics_dataset_meta meta;
    memset(&meta, 0, sizeof meta);
    if (!st) st = ics_dataset_meta_copy(&meta, m, err);
    if (!st) {
        ics_image_stats(images[0], n_train, (int64_t)m->height * m->width, m->channels, meta.mean, meta.std);
        ics_dataset_write_options wo = {options->deflate_level, 0};
        const uint8_t *const im[3] = {images[0], images[1], raw->test.images};
        const int32_t *const lb[3] = {labels[0], labels[1], raw->test.labels};
        const int64_t counts[3] = {n_train, n_val, raw->test.count};
        st = write_with_progress(path, &meta, &wo, im, lb, counts, image_bytes, options, err);
    }
    ics_dataset_meta_clear(&meta);
    for (int s = 0; s < 2; s++) {
        free(images[s]);
        free(labels[s]);
    }
    return st;
}
