/*
 * Where the trainer's data comes from. Training reads the shards written by
 * icsparse-shard when they exist (data.shards_dir, or DIR/DATASET-shards),
 * else the converted dataset file (data.path, or DIR/DATASET.h5), through
 * the prefetching loader (src/data/loader.h). Evaluation reads the dataset
 * file, or the shards' val/test splits when only shards are there.
 */
#include "ics_build_config.h"
#include "train/trainer_internal.h"

#include "core/alloc.h"
#include "data/loader.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ics_train_data {
    ics_loader *loader;
    float *images;
    int32_t *labels;
    char **paths;
    int npaths;
};

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The shard files of dir (part-*.h5), sorted; *count 0 if none. */
static ics_status list_shards(const char *dir, char ***out, int *count, ics_error *err)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return ICS_OK;
    char **paths = NULL;
    int n = 0, cap = 0;
    ics_status st = ICS_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "part-", 5) != 0 || len < 4 || strcmp(e->d_name + len - 3, ".h5") != 0) continue;
        if (n == ICS_MAX_SHARDS) {
            st = ICS_FAIL(err, ICS_ERR_INVALID, "%s: more than %d shards", dir, ICS_MAX_SHARDS);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = ics_realloc(paths, sizeof *paths * (size_t)cap, "shard list", err);
            if (!grown) {
                st = ICS_ERR_NOMEM;
                break;
            }
            paths = grown;
        }
        size_t plen = strlen(dir) + len + 2;
        paths[n] = ics_malloc(plen, "shard path", err);
        if (!paths[n]) {
            st = ICS_ERR_NOMEM;
            break;
        }
        snprintf(paths[n], plen, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (st) {
        for (int i = 0; i < n; i++) free(paths[i]);
        free(paths);
        return st;
    }
    if (n > 1) qsort(paths, (size_t)n, sizeof *paths, by_name);
    *out = paths;
    *count = n;
    return ICS_OK;
}

static ics_status open_readers(char **paths, int n, ics_dataset_reader ***out, ics_error *err)
{
    ics_dataset_reader **readers = ics_calloc((size_t)n, sizeof *readers, "dataset readers", err);
    if (!readers) return ICS_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        ics_status st = ics_dataset_open(paths[i], &readers[i], err);
        if (st) {
            for (int j = 0; j < i; j++) ics_dataset_close(readers[j]);
            free(readers);
            return st;
        }
    }
    *out = readers;
    return ICS_OK;
}

ics_status ics_train_data_open(ics_trainer *t, ics_error *err)
{
    const ics_config *cfg = t->cfg;
    char dataset[1100], shards[1100];
    const char *dir = ics_config_string(cfg, "data.dir"), *name = ics_config_string(cfg, "data.dataset");
    if (ics_config_string(cfg, "data.path")[0])
        snprintf(dataset, sizeof dataset, "%s", ics_config_string(cfg, "data.path"));
    else
        snprintf(dataset, sizeof dataset, "%s/%s.h5", dir, name);
    int explicit_shards = ics_config_string(cfg, "data.shards_dir")[0] != '\0';
    if (explicit_shards)
        snprintf(shards, sizeof shards, "%s", ics_config_string(cfg, "data.shards_dir"));
    else
        snprintf(shards, sizeof shards, "%s/%s-shards", dir, name);

    ics_train_data *d = ics_calloc(1, sizeof *d, "training data", err);
    if (!d) return ICS_ERR_NOMEM;
    t->data = d;
    ics_status st = ICS_OK;
    if (is_dir(shards)) st = list_shards(shards, &d->paths, &d->npaths, err);
    if (st) return st;
    if (explicit_shards && d->npaths == 0)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "data.shards_dir: no shards (part-*.h5) in %s", shards);
    int have_dataset = access(dataset, R_OK) == 0;
    if (d->npaths == 0) {
        if (!have_dataset)
            return ICS_FAIL(err, ICS_ERR_CONFIG,
                            "no training data: neither shards in %s nor the dataset %s (run icsparse-convert%s)", shards,
                            dataset, " and icsparse-shard");
        d->paths = ics_calloc(1, sizeof *d->paths, "dataset path", err);
        if (!d->paths || !(d->paths[0] = ics_strdup(dataset, err))) return ICS_ERR_NOMEM;
        d->npaths = 1;
    }
    /* Evaluation: the whole dataset file when present, else the shards. */
    if (have_dataset) {
        char *one[1] = {dataset};
        st = open_readers(one, 1, &t->eval_readers, err);
        t->n_eval_readers = st ? 0 : 1;
    } else {
        st = open_readers(d->paths, d->npaths, &t->eval_readers, err);
        t->n_eval_readers = st ? 0 : d->npaths;
    }
    if (st) return st;
    const ics_dataset_meta *meta = ics_dataset_reader_meta(t->eval_readers[0]);
    t->height = meta->height;
    t->width = meta->width;
    t->channels = meta->channels;
    t->num_classes = meta->num_classes;
    for (int c = 0; c < meta->channels && c < 4; c++) {
        t->mean[c] = meta->mean[c];
        t->std[c] = meta->std[c];
    }
    long long size = ics_config_int(cfg, "data.image_size");
    if (size > 0 && (size != meta->height || size != meta->width))
        return ICS_FAIL(err, ICS_ERR_NOT_IMPLEMENTED,
                        "data.image_size %lld differs from the stored %dx%d: resizing during training is not implemented yet "
                        "(convert the dataset at that size)", size, meta->height, meta->width);

    ics_loader_options o = ics_loader_default_options();
    o.shuffle = 1;
    o.drop_last = ics_config_bool(cfg, "data.drop_last");
    o.crop_padding = (int)ics_config_int(cfg, "data.crop_padding");
    o.hflip = ics_config_bool(cfg, "data.hflip");
    o.random_resized_crop = ics_config_bool(cfg, "data.random_resized_crop");
    o.normalize = ics_config_bool(cfg, "data.normalize");
    o.prefetch = ics_config_bool(cfg, "data.prefetch");
    st = ics_loader_create((const char *const *)d->paths, d->npaths, "train", t->load_batch, t->rank, t->world,
                           (uint64_t)ics_config_int(cfg, "run.seed"), &o, &d->loader, err);
    if (st) return st;
    t->batches_per_epoch = ics_loader_batches_per_epoch(d->loader);
    size_t row = (size_t)t->height * t->width * t->channels;
    d->images = ics_malloc_aligned(row * (size_t)t->load_batch * sizeof(float), "a training batch", err);
    d->labels = ics_malloc(sizeof(int32_t) * (size_t)t->load_batch, "training labels", err);
    if (!d->images || !d->labels) return ICS_ERR_NOMEM;
    return ICS_OK;
}

void ics_train_data_close(ics_trainer *t)
{
    for (int i = 0; i < t->n_eval_readers; i++) ics_dataset_close(t->eval_readers[i]);
    free(t->eval_readers);
    t->eval_readers = NULL;
    t->n_eval_readers = 0;
    ics_train_data *d = t->data;
    if (!d) return;
    ics_loader_destroy(d->loader);
    ics_free_aligned(d->images);
    free(d->labels);
    for (int i = 0; i < d->npaths; i++) free(d->paths[i]);
    free(d->paths);
    free(d);
    t->data = NULL;
}

ics_status ics_train_data_epoch(ics_trainer *t, int64_t epoch, ics_error *err)
{
    return ics_loader_set_epoch(t->data->loader, epoch, err);
}

ics_status ics_train_data_next(ics_trainer *t, const float **images, const int32_t **labels, int *count,
                               ics_error *err)
{
    ics_train_data *d = t->data;
    ics_status st = ics_loader_next(d->loader, d->images, d->labels, count, err);
    *images = d->images;
    *labels = d->labels;
    return st;
}
