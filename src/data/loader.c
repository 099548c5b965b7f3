/* The prefetching data loader: see loader.h. */
#include "ics_build_config.h"
#include "data/loader.h"
#include "data/augment.h"
#include "data/rng.h"
#include "core/alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

ics_loader_options ics_loader_default_options(void)
{
    ics_loader_options o;
    memset(&o, 0, sizeof o);
    o.shuffle = 1;
    o.normalize = 1;
    o.prefetch = 1;
    return o;
}

typedef struct batch_slot {
    float *images;
    int32_t *labels;
    int count;
    int full; /* produced and not yet consumed */
} batch_slot;

struct ics_loader {
    ics_loader_options o;
    ics_dataset_meta meta;
    int batch_size, rank, world_size;
    uint64_t seed;
    int sharded;
    /* The rank's portion (sharded) or the whole split. */
    uint8_t *images;
    int32_t *labels;
    int64_t rows;
    size_t image_bytes;
    int out_h, out_w, out_c;
    size_t out_floats;
    float mean[ICS_DATASET_MAX_CHANNELS], std[ICS_DATASET_MAX_CHANNELS];
    /* The epoch: the rows this rank yields, in order. */
    int64_t epoch;
    int64_t *order;
    int64_t per_rank; /* rows per epoch for this rank */
    int64_t batches;
    int64_t next_batch; /* consumer position */
    /* Prefetch: a producer thread fills two slots in turn. */
    batch_slot slots[2];
    pthread_t thread;
    int thread_running;
    int stop;
    pthread_mutex_t lock;
    pthread_cond_t changed;
};

/* Fills one batch (index b of the epoch) into the given buffers. */
static int produce(const ics_loader *l, int64_t b, float *images, int32_t *labels)
{
    int64_t first = b * l->batch_size;
    int64_t n = l->per_rank - first < l->batch_size ? l->per_rank - first : l->batch_size;
    int train = l->o.crop_padding > 0 || l->o.hflip || l->o.random_resized_crop;
    const float *mean = l->o.normalize ? l->mean : NULL, *std = l->o.normalize ? l->std : NULL;
    int h = l->meta.height, w = l->meta.width, c = l->meta.channels;
    for (int64_t i = 0; i < n; i++) {
        int64_t row = l->order[first + i];
        const uint8_t *src = l->images + (size_t)row * l->image_bytes;
        ics_geometry g;
        if (train) {
            /* One stream per (seed, epoch, rank, position): independent of threads and timing. */
            ics_data_rng rng;
            ics_data_rng_seed(&rng, l->seed ^ 0xa06u, (uint64_t)l->epoch, ((uint64_t)l->rank << 40) + (uint64_t)(first + i));
            if (l->o.random_resized_crop) g = ics_geometry_random_resized_crop(h, w, l->out_h, &rng);
            else if (l->o.crop_padding > 0) g = ics_geometry_random_crop(h, w, l->o.crop_padding, &rng);
            else g = ics_geometry_identity(h, w);
            if (!l->o.random_resized_crop && l->o.image_size > 0 && l->o.crop_padding == 0)
                g = ics_geometry_eval(h, w, l->o.resize_to > 0 ? l->o.resize_to : l->o.image_size, l->o.image_size);
            if (l->o.hflip) g.flip = ics_data_rng_uniform(&rng) < 0.5f;
        } else if (l->o.image_size > 0) {
            g = ics_geometry_eval(h, w, l->o.resize_to > 0 ? l->o.resize_to : l->o.image_size, l->o.image_size);
        } else {
            g = ics_geometry_identity(h, w);
        }
        ics_augment_apply(src, h, w, c, &g, mean, std, images + (size_t)i * l->out_floats);
        labels[i] = l->labels[row];
    }
    return (int)n;
}

static void *producer(void *arg)
{
    ics_loader *l = arg;
    for (int64_t b = 0; b < l->batches; b++) {
        batch_slot *slot = &l->slots[b % 2];
        pthread_mutex_lock(&l->lock);
        while (slot->full && !l->stop) pthread_cond_wait(&l->changed, &l->lock);
        int stop = l->stop;
        pthread_mutex_unlock(&l->lock);
        if (stop) break;
        int n = produce(l, b, slot->images, slot->labels);
        pthread_mutex_lock(&l->lock);
        slot->count = n;
        slot->full = 1;
        pthread_cond_broadcast(&l->changed);
        pthread_mutex_unlock(&l->lock);
    }
    return NULL;
}

static void stop_thread(ics_loader *l)
{
    if (!l->thread_running) return;
    pthread_mutex_lock(&l->lock);
    l->stop = 1;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    l->thread_running = 0;
    l->stop = 0;
    l->slots[0].full = l->slots[1].full = 0;
}

/* Builds the epoch's row order for this rank. */
static void plan_epoch(ics_loader *l)
{
    ics_data_rng rng;
    if (!l->sharded) {
        /* DistributedSampler: global permutation, padded/cut to a
         * multiple of world_size, strided by rank. Reused buffer: the
         * permutation is built in a scratch area after the rank's part. */
        int64_t n = l->rows;
        int64_t *perm = l->order + l->per_rank;
        for (int64_t i = 0; i < n; i++) perm[i] = i;
        if (l->o.shuffle) {
            ics_data_rng_seed(&rng, l->seed, (uint64_t)l->epoch, 0x5a3u);
            ics_data_rng_shuffle(&rng, perm, n);
        }
        for (int64_t k = 0; k < l->per_rank; k++) {
            int64_t pos = (int64_t)l->rank + k * l->world_size;
            l->order[k] = perm[pos % n]; /* pos >= n only when padding: wrap around */
        }
    } else {
        int64_t n = l->rows;
        int64_t *perm = l->order + l->per_rank;
        for (int64_t i = 0; i < n; i++) perm[i] = i;
        if (l->o.shuffle) {
            ics_data_rng_seed(&rng, l->seed, (uint64_t)l->epoch, 0x5a30000u + (uint64_t)l->rank);
            ics_data_rng_shuffle(&rng, perm, n);
        }
        for (int64_t k = 0; k < l->per_rank; k++) l->order[k] = perm[k % n];
    }
    l->batches = l->o.drop_last ? l->per_rank / l->batch_size : (l->per_rank + l->batch_size - 1) / l->batch_size;
    l->next_batch = 0;
}

ics_status ics_loader_set_epoch(ics_loader *l, int64_t epoch, ics_error *err)
{
    stop_thread(l);
    l->epoch = epoch;
    plan_epoch(l);
    if (l->o.prefetch && l->batches > 0) {
        if (pthread_create(&l->thread, NULL, producer, l) != 0)
            return ICS_FAIL(err, ICS_ERR_RUNTIME, "cannot start the prefetch thread");
        l->thread_running = 1;
    }
    return ICS_OK;
}

ics_status ics_loader_next(ics_loader *l, float *images, int32_t *labels, int *count, ics_error *err)
{
    (void)err;
    *count = 0;
    if (l->next_batch >= l->batches) return ICS_OK;
    int64_t b = l->next_batch++;
    if (!l->thread_running) {
        *count = produce(l, b, images, labels);
        return ICS_OK;
    }
    batch_slot *slot = &l->slots[b % 2];
    pthread_mutex_lock(&l->lock);
    while (!slot->full) pthread_cond_wait(&l->changed, &l->lock);
    pthread_mutex_unlock(&l->lock);
    memcpy(images, slot->images, (size_t)slot->count * l->out_floats * sizeof *images);
    memcpy(labels, slot->labels, (size_t)slot->count * sizeof *labels);
    *count = slot->count;
    pthread_mutex_lock(&l->lock);
    slot->full = 0;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->lock);
    if (l->next_batch >= l->batches) stop_thread(l);
    return ICS_OK;
}

/* Appends a file's split to the portion in memory. */
static ics_status append_file(ics_loader *l, const char *path, const char *split, int first, ics_error *err)
{
    ics_dataset_reader *r;
    ics_status st = ics_dataset_open(path, &r, err);
    if (st) return st;
    const ics_dataset_meta *m = ics_dataset_reader_meta(r);
    if (first) {
        st = ics_dataset_meta_copy(&l->meta, m, err);
    } else if (m->height != l->meta.height || m->width != l->meta.width || m->channels != l->meta.channels ||
               m->num_classes != l->meta.num_classes) {
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: shape %dx%dx%d with %d classes differs from the first file's", path,
                      m->height, m->width, m->channels, m->num_classes);
    }
    int64_t n = ics_dataset_count(r, split);
    if (!st) {
        l->image_bytes = (size_t)l->meta.height * l->meta.width * l->meta.channels;
        uint8_t *images = ics_realloc(l->images, (size_t)(l->rows + n + 1) * l->image_bytes, "loader images", err);
        if (images) l->images = images;
        int32_t *labels = images ? ics_realloc(l->labels, (size_t)(l->rows + n + 1) * sizeof *labels, "loader labels", err) : NULL;
        if (labels) l->labels = labels;
        if (!labels) st = ICS_ERR_NOMEM;
    }
    if (!st && n > 0)
        st = ics_dataset_read(r, split, 0, n, l->images + (size_t)l->rows * l->image_bytes, l->labels + l->rows, err);
    if (!st) l->rows += n;
    ics_dataset_close(r);
    return st;
}

/* Row count of a file's split without reading it. */
static ics_status count_rows(const char *path, const char *split, int64_t *n, ics_error *err)
{
    ics_dataset_reader *r;
    ics_status st = ics_dataset_open(path, &r, err);
    if (st) return st;
    *n = ics_dataset_count(r, split);
    ics_dataset_close(r);
    return ICS_OK;
}

ics_status ics_loader_create(const char *const *paths, int path_count, const char *split, int batch_size, int rank,
                             int world_size, uint64_t seed, const ics_loader_options *options, ics_loader **out,
                             ics_error *err)
{
    *out = NULL;
    if (path_count < 1 || batch_size < 1 || world_size < 1 || rank < 0 || rank >= world_size)
        return ICS_FAIL(err, ICS_ERR_INVALID, "loader: bad arguments (%d files, batch %d, rank %d of %d)", path_count,
                        batch_size, rank, world_size);
    ics_loader *l = ics_calloc(1, sizeof *l, "loader", err);
    if (!l) return ICS_ERR_NOMEM;
    l->o = *options;
    l->batch_size = batch_size;
    l->rank = rank;
    l->world_size = world_size;
    l->seed = seed;
    l->sharded = path_count >= world_size && path_count > 1;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->changed, NULL);
    ics_status st = ICS_OK;
    int64_t target = 0;
    if (!l->sharded) {
        for (int i = 0; i < path_count && !st; i++) st = append_file(l, paths[i], split, i == 0, err);
        if (!st && l->rows == 0) st = ICS_FAIL(err, ICS_ERR_INVALID, "%s: no rows in split '%s'", paths[0], split);
        if (!st) {
            /* DistributedSampler: ceil(N/W) per rank when padding, floor when dropping. */
            target = l->o.drop_last ? l->rows / world_size : (l->rows + world_size - 1) / world_size;
        }
    } else {
        /* Every rank's total, from the files' sizes, to agree on one count without MPI. */
        int64_t lo = -1, hi = 0;
        for (int r = 0; r < world_size && !st; r++) {
            int64_t total = 0, n = 0;
            for (int i = r; i < path_count && !st; i += world_size) {
                st = count_rows(paths[i], split, &n, err);
                total += n;
            }
            if (lo < 0 || total < lo) lo = total;
            if (total > hi) hi = total;
        }
        for (int i = rank; i < path_count && !st; i += world_size) st = append_file(l, paths[i], split, i == rank, err);
        if (!st && (l->rows == 0 || lo == 0))
            st = ICS_FAIL(err, ICS_ERR_INVALID, "split '%s': a rank's shards hold no rows (%d files for %d ranks)", split,
                          path_count, world_size);
        target = l->o.drop_last ? lo : hi;
    }
    if (!st && (l->o.image_size < 0 || (l->o.random_resized_crop && l->o.image_size <= 0)))
        st = ICS_FAIL(err, ICS_ERR_INVALID, "loader: random resized crop needs an image size");
    if (!st) {
        l->per_rank = target;
        l->out_h = l->o.image_size > 0 && l->o.crop_padding == 0 ? l->o.image_size : l->meta.height;
        l->out_w = l->o.image_size > 0 && l->o.crop_padding == 0 ? l->o.image_size : l->meta.width;
        l->out_c = l->meta.channels;
        l->out_floats = (size_t)l->out_h * l->out_w * l->out_c;
        for (int k = 0; k < l->out_c; k++) {
            l->mean[k] = (float)l->meta.mean[k];
            l->std[k] = (float)l->meta.std[k];
        }
        l->order = ics_malloc((size_t)(target + l->rows + 1) * sizeof *l->order, "epoch order", err);
        if (!l->order) st = ICS_ERR_NOMEM;
    }
    for (int s = 0; s < 2 && !st && l->o.prefetch; s++) {
        l->slots[s].images = ics_malloc_aligned((size_t)batch_size * l->out_floats * sizeof(float), "prefetch images", err);
        l->slots[s].labels = l->slots[s].images ? ics_malloc((size_t)batch_size * sizeof(int32_t), "prefetch labels", err) : NULL;
        if (!l->slots[s].labels) st = ICS_ERR_NOMEM;
    }
    if (!st) st = ics_loader_set_epoch(l, 0, err);
    if (st) {
        ics_loader_destroy(l);
        return st;
    }
    *out = l;
    return ICS_OK;
}

void ics_loader_destroy(ics_loader *l)
{
    if (!l) return;
    stop_thread(l);
    for (int s = 0; s < 2; s++) {
        ics_free_aligned(l->slots[s].images);
        free(l->slots[s].labels);
    }
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->changed);
    ics_dataset_meta_clear(&l->meta);
    free(l->images);
    free(l->labels);
    free(l->order);
    free(l);
}

int64_t ics_loader_samples_per_epoch(const ics_loader *l) { return l->per_rank; }
int64_t ics_loader_batches_per_epoch(const ics_loader *l) { return l->batches; }
void ics_loader_output_shape(const ics_loader *l, int *h, int *w, int *c)
{
    *h = l->out_h;
    *w = l->out_w;
    *c = l->out_c;
}
const ics_dataset_meta *ics_loader_meta(const ics_loader *l) { return &l->meta; }
