/* src/data loader and transforms: DistributedSampler semantics (pad,
 * drop_last, shuffle per epoch), shards per rank, determinism with and
 * without the prefetch thread, and the transforms against PyTorch. */
#include "ics_build_config.h"
#include "test_util.h"
#include "data/augment.h"
#include "data/data_config.h"
#include "data/shard.h"
#include <icsparse/config.h>
#include <sys/stat.h>
#include "data/dataset.h"
#include "data/loader.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *tmp;

/* A dataset whose image i is 2x2x1 filled with value i (so outputs name
 * their rows) and label i % 3; rows in train. */
static void write_rows(const char *path, int first, int n)
{
    ics_dataset_meta m;
    memset(&m, 0, sizeof m);
    m.height = m.width = 2;
    m.channels = 1;
    m.std[0] = 1;
    m.source = strdup("rows");
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_dataset_meta_number_classes(&m, 3, &err), ICS_OK);
    uint8_t *img = malloc((size_t)n * 4);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    for (int i = 0; i < n; i++) {
        memset(img + 4 * i, first + i, 4);
        lab[i] = (first + i) % 3;
    }
    const uint8_t *const im[3] = {img, NULL, NULL};
    const int32_t *const lb[3] = {lab, NULL, NULL};
    const int64_t counts[3] = {n, 0, 0};
    ics_dataset_write_options wo = {0, 0};
    CU_ASSERT_EQUAL(ics_dataset_write_file(path, &m, &wo, im, lb, counts, &err), ICS_OK);
    free(img);
    free(lab);
    ics_dataset_meta_clear(&m);
}

/* Collects the row ids a loader yields in one epoch. */
static int epoch_rows(ics_loader *l, int64_t epoch, int *rows, int max)
{
    ics_error err;
    CU_ASSERT_EQUAL(ics_loader_set_epoch(l, epoch, &err), ICS_OK);
    float images[4 * 64];
    int32_t labels[64];
    int total = 0, count;
    do {
        CU_ASSERT_EQUAL(ics_loader_next(l, images, labels, &count, &err), ICS_OK);
        for (int i = 0; i < count && total < max; i++) {
            int row = (int)lroundf(images[4 * i] * 255.0f);
            CU_ASSERT_EQUAL(labels[i], row % 3);
            rows[total++] = row;
        }
    } while (count > 0);
    return total;
}

static ics_loader *make(const char *const *paths, int n_paths, int batch, int rank, int world, int shuffle,
                        int drop_last, int prefetch)
{
    ics_loader_options o = ics_loader_default_options();
    o.shuffle = shuffle;
    o.drop_last = drop_last;
    o.normalize = 0;
    o.prefetch = prefetch;
    ics_loader *l = NULL;
    ics_error err;
    CU_ASSERT_EQUAL(ics_loader_create(paths, n_paths, "train", batch, rank, world, 7, &o, &l, &err), ICS_OK);
    return l;
}

static void test_distributed_sampler_order(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rows10.h5", tmp);
    write_rows(path, 0, 10);
    const char *paths[1] = {path};
    /* torch DistributedSampler(shuffle=False), 10 rows, 3 replicas:
     * padded indices 0..9,0,1; rank r takes [r::3]. */
    int want_pad[3][4] = {{0, 3, 6, 9}, {1, 4, 7, 0}, {2, 5, 8, 1}};
    int want_drop[3][3] = {{0, 3, 6}, {1, 4, 7}, {2, 5, 8}};
    for (int r = 0; r < 3; r++) {
        int rows[16];
        ics_loader *l = make(paths, 1, 3, r, 3, 0, 0, r % 2);
        CU_ASSERT_EQUAL(ics_loader_samples_per_epoch(l), 4);
        CU_ASSERT_EQUAL(ics_loader_batches_per_epoch(l), 2);
        CU_ASSERT_EQUAL(epoch_rows(l, 0, rows, 16), 4);
        CU_ASSERT_EQUAL(memcmp(rows, want_pad[r], sizeof want_pad[r]), 0);
        ics_loader_destroy(l);
        l = make(paths, 1, 2, r, 3, 0, 1, 1);
        CU_ASSERT_EQUAL(ics_loader_samples_per_epoch(l), 3);
        CU_ASSERT_EQUAL(ics_loader_batches_per_epoch(l), 1); /* drop_last drops the partial batch */
        CU_ASSERT_EQUAL(epoch_rows(l, 0, rows, 16), 2);
        CU_ASSERT_EQUAL(memcmp(rows, want_drop[r], 2 * sizeof(int)), 0);
        ics_loader_destroy(l);
    }
}

static void test_shuffle_per_epoch(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rows40.h5", tmp);
    write_rows(path, 0, 40);
    const char *paths[1] = {path};
    int seen[40] = {0}, first_epoch[2][20], again[20], later[20];
    for (int r = 0; r < 2; r++) {
        ics_loader *l = make(paths, 1, 6, r, 2, 1, 0, 1);
        CU_ASSERT_EQUAL(epoch_rows(l, 3, first_epoch[r], 20), 20);
        for (int i = 0; i < 20; i++) seen[first_epoch[r][i]]++;
        CU_ASSERT_EQUAL(epoch_rows(l, 4, later, 20), 20);
        CU_ASSERT_NOT_EQUAL(memcmp(later, first_epoch[r], sizeof later), 0);
        CU_ASSERT_EQUAL(epoch_rows(l, 3, again, 20), 20);
        CU_ASSERT_EQUAL(memcmp(again, first_epoch[r], sizeof again), 0);
        ics_loader_destroy(l);
    }
    /* Ranks partition the epoch. */
    for (int i = 0; i < 40; i++) CU_ASSERT_EQUAL(seen[i], 1);
}

static void test_shards_per_rank(void)
{
    /* 5 shards of 7, 7, 7, 6, 6 rows; 2 ranks: rank 0 has shards 0,2,4 (20
     * rows), rank 1 shards 1,3 (13). Pad: both yield 20; drop: 13. */
    char names[5][512];
    const char *paths[5];
    int first = 0, sizes[5] = {7, 7, 7, 6, 6};
    for (int s = 0; s < 5; s++) {
        snprintf(names[s], sizeof names[s], "%s/shard%d.h5", tmp, s);
        write_rows(names[s], first, sizes[s]);
        first += sizes[s];
        paths[s] = names[s];
    }
    int rows[64], seen[33] = {0};
    for (int r = 0; r < 2; r++) {
        ics_loader *l = make(paths, 5, 8, r, 2, 1, 0, 1);
        CU_ASSERT_EQUAL(epoch_rows(l, 0, rows, 64), 20);
        for (int i = 0; i < 20; i++) {
            /* Rows come only from the rank's own shards. */
            int shard = rows[i] < 7 ? 0 : rows[i] < 14 ? 1 : rows[i] < 21 ? 2 : rows[i] < 27 ? 3 : 4;
            CU_ASSERT_EQUAL(shard % 2, r);
            if (i < (r ? 13 : 20)) seen[rows[i]]++;
        }
        ics_loader_destroy(l);
        l = make(paths, 5, 8, r, 2, 1, 1, 0);
        CU_ASSERT_EQUAL(ics_loader_samples_per_epoch(l), 13);
        ics_loader_destroy(l);
    }
    int all = 1;
    for (int i = 0; i < 33; i++) all &= seen[i] >= 1;
    CU_ASSERT(all);
}

static void test_augmented_batches_are_deterministic(void)
{
    /* A real-looking 12x10 RGB dataset. */
    char path[512];
    snprintf(path, sizeof path, "%s/rgb.h5", tmp);
    ics_dataset_meta m;
    memset(&m, 0, sizeof m);
    m.height = 12;
    m.width = 10;
    m.channels = 3;
    for (int c = 0; c < 3; c++) {
        m.mean[c] = 0.4 + 0.1 * c;
        m.std[c] = 0.2 + 0.05 * c;
    }
    m.source = strdup("rgb");
    ics_error err;
    ics_dataset_meta_number_classes(&m, 4, &err);
    enum { N = 23 };
    uint8_t img[N * 360];
    int32_t lab[N];
    for (int i = 0; i < N * 360; i++) img[i] = (uint8_t)((i * 2654435761u) >> 24);
    for (int i = 0; i < N; i++) lab[i] = i % 4;
    const uint8_t *const im[3] = {img, NULL, NULL};
    const int32_t *const lb[3] = {lab, NULL, NULL};
    const int64_t counts[3] = {N, 0, 0};
    ics_dataset_write_options wo = {0, 0};
    CU_ASSERT_EQUAL_FATAL(ics_dataset_write_file(path, &m, &wo, im, lb, counts, &err), ICS_OK);
    ics_dataset_meta_clear(&m);
    const char *paths[1] = {path};
    ics_loader_options o = ics_loader_default_options();
    o.crop_padding = 2;
    o.hflip = 1;
    float *a = malloc(N * 360 * sizeof(float) * 2), *b = malloc(N * 360 * sizeof(float) * 2);
    int32_t la[N], lb2[N];
    for (int variant = 0; variant < 2; variant++) {
        if (variant == 1) {
            o.crop_padding = 0;
            o.random_resized_crop = 1;
            o.image_size = 8;
        }
        ics_loader *with = NULL, *without = NULL;
        o.prefetch = 1;
        CU_ASSERT_EQUAL_FATAL(ics_loader_create(paths, 1, "train", 5, 1, 2, 99, &o, &with, &err), ICS_OK);
        o.prefetch = 0;
        CU_ASSERT_EQUAL_FATAL(ics_loader_create(paths, 1, "train", 5, 1, 2, 99, &o, &without, &err), ICS_OK);
        int h, w, c;
        ics_loader_output_shape(with, &h, &w, &c);
        CU_ASSERT_EQUAL(h, variant ? 8 : 12);
        CU_ASSERT_EQUAL(w, variant ? 8 : 10);
        size_t per = (size_t)h * w * c;
        for (int epoch = 0; epoch < 2; epoch++) {
            ics_loader_set_epoch(with, epoch, &err);
            ics_loader_set_epoch(without, epoch, &err);
            int na, nb, batches = 0;
            do {
                ics_loader_next(with, a, la, &na, &err);
                ics_loader_next(without, b, lb2, &nb, &err);
                CU_ASSERT_EQUAL(na, nb);
                CU_ASSERT_EQUAL(memcmp(a, b, (size_t)na * per * sizeof(float)), 0);
                CU_ASSERT_EQUAL(memcmp(la, lb2, (size_t)na * sizeof(int32_t)), 0);
                batches += na > 0;
            } while (na > 0);
            CU_ASSERT_EQUAL(batches, 3); /* 12 rows per rank, batches of 5 */
        }
        /* Re-running an epoch gives the same first batch. */
        ics_loader_set_epoch(with, 0, &err);
        int n0, n1;
        ics_loader_next(with, a, la, &n0, &err);
        ics_loader_set_epoch(with, 0, &err);
        ics_loader_next(with, b, lb2, &n1, &err);
        CU_ASSERT_EQUAL(memcmp(a, b, (size_t)n0 * per * sizeof(float)), 0);
        ics_loader_destroy(with);
        ics_loader_destroy(without);
    }
    free(a);
    free(b);
}

static void test_loader_errors(void)
{
    const char *missing[1] = {"/nonexistent/x.h5"};
    ics_loader_options o = ics_loader_default_options();
    ics_loader *l = NULL;
    ics_error err;
    CU_ASSERT_EQUAL(ics_loader_create(missing, 1, "train", 4, 0, 1, 1, &o, &l, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "/nonexistent/x.h5: cannot open"));
    CU_ASSERT_EQUAL(ics_loader_create(missing, 1, "train", 0, 0, 1, 1, &o, &l, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "bad arguments"));
    char path[512];
    snprintf(path, sizeof path, "%s/rows10.h5", tmp);
    const char *paths[1] = {path};
    CU_ASSERT_EQUAL(ics_loader_create(paths, 1, "test", 4, 0, 1, 1, &o, &l, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "no rows in split 'test'"));
    o.random_resized_crop = 1;
    CU_ASSERT_EQUAL(ics_loader_create(paths, 1, "train", 4, 0, 1, 1, &o, &l, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "random resized crop needs an image size"));
    CU_ASSERT_PTR_NULL(l);
}

/* ---------------------------------------------------------------- transforms vs PyTorch */

static void test_geometry_formulas(void)
{
    /* torchvision Resize(32) on 48x64: 32x42 (42.67 truncated), CenterCrop(28):
     * top round(4/2)=2, left round(14/2)=7. */
    ics_geometry g = ics_geometry_eval(48, 64, 32, 28);
    CU_ASSERT_EQUAL(g.virt_h, 32);
    CU_ASSERT_EQUAL(g.virt_w, 42);
    CU_ASSERT_EQUAL(g.win_y, 2);
    CU_ASSERT_EQUAL(g.win_x, 7);
    g = ics_geometry_eval(64, 48, 32, 28);
    CU_ASSERT_EQUAL(g.virt_h, 42);
    CU_ASSERT_EQUAL(g.virt_w, 32);
    /* Random crops stay within the documented ranges. */
    ics_data_rng rng;
    ics_data_rng_seed(&rng, 5, 0, 0);
    int hit_lo = 0, hit_hi = 0;
    for (int i = 0; i < 2000; i++) {
        g = ics_geometry_random_crop(32, 32, 4, &rng);
        CU_ASSERT(g.win_y >= -4 && g.win_y <= 4 && g.win_x >= -4 && g.win_x <= 4);
        hit_lo |= g.win_y == -4;
        hit_hi |= g.win_x == 4;
        g = ics_geometry_random_resized_crop(40, 30, 16, &rng);
        CU_ASSERT(g.box_y >= 0 && g.box_x >= 0 && g.box_y + g.box_h <= 40 && g.box_x + g.box_w <= 30);
        double scale = (double)g.box_h * g.box_w / (40.0 * 30.0);
        CU_ASSERT(scale >= 0.07 && scale <= 1.0);
        CU_ASSERT(g.out_h == 16 && g.out_w == 16);
    }
    CU_ASSERT(hit_lo && hit_hi);
}

static void test_transforms_match_torch(void)
{
    if (!ics_test_have_torch()) {
        printf("\n  skipped: no torch in $PYTHON_TORCH\n");
        return;
    }
    char *dir = ics_test_tmpdir("augment");
    enum { H = 13, W = 17, C = 3 };
    uint8_t img[H * W * C];
    float imgf[H * W * C];
    uint64_t state = 11;
    ics_test_fill_uniform(imgf, H * W * C, 0, 256, &state);
    for (int i = 0; i < H * W * C; i++) {
        img[i] = (uint8_t)(imgf[i] >= 255 ? 255 : (int)imgf[i]);
        imgf[i] = img[i];
    }
    ics_geometry cases[] = {
        ics_geometry_identity(H, W),
        ics_geometry_eval(H, W, 11, 9),   /* downscale + center crop */
        ics_geometry_eval(H, W, 24, 20),  /* upscale + center crop */
        {2, 3, 7, 9, 16, 16, 0, 0, 16, 16, 1}, /* resized crop, flipped */
        {0, 0, H, W, H, W, -3, 2, H, W, 0},    /* random crop with padding */
        {4, 1, 9, 5, 6, 6, 0, 0, 6, 6, 0},     /* downscale a box */
    };
    int k_count = (int)(sizeof cases / sizeof *cases);
    float table[6 * 11], norm[2 * C] = {0.3f, 0.5f, 0.45f, 0.25f, 0.2f, 0.3f};
    for (int k = 0; k < k_count; k++) {
        const ics_geometry *g = &cases[k];
        int v[11] = {g->box_y, g->box_x, g->box_h, g->box_w, g->virt_h, g->virt_w, g->win_y, g->win_x,
                     g->out_h, g->out_w, g->flip};
        for (int j = 0; j < 11; j++) table[k * 11 + j] = (float)v[j];
    }
    int64_t ishape[3] = {H, W, C}, cshape[2] = {k_count, 11}, nshape[2] = {2, C};
    ics_test_npy_write_f32(dir, "image", imgf, ishape, 3);
    ics_test_npy_write_f32(dir, "cases", table, cshape, 2);
    ics_test_npy_write_f32(dir, "norm", norm, nshape, 2);
    CU_ASSERT_EQUAL_FATAL(ics_test_run_torch("tests/tools/data_augment_ref.py", dir), 0);
    for (int k = 0; k < k_count; k++) {
        const ics_geometry *g = &cases[k];
        size_t n = (size_t)g->out_h * g->out_w * C;
        float *got = malloc(n * sizeof *got);
        ics_augment_apply(img, H, W, C, g, norm, norm + C, got);
        char name[32];
        snprintf(name, sizeof name, "want_%d", k);
        int64_t shape[4];
        int ndim;
        float *want = ics_test_npy_read_f32(dir, name, shape, &ndim);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        CU_ASSERT_EQUAL(shape[0] * shape[1] * shape[2], (int64_t)n);
        char label[64];
        snprintf(label, sizeof label, "geometry case %d", k);
        ICS_ASSERT_CLOSE(label, got, want, n, 1e-5, 1e-5);
        free(got);
        free(want);
    }
    ics_test_rmtree(dir);
    free(dir);
}

static void test_files_and_options_from_config(void)
{
    ics_config *cfg;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_config_create(&cfg, &err), ICS_OK);
    char **paths;
    int n;
    CU_ASSERT_EQUAL(ics_data_files_from_config(cfg, &paths, &n, &err), ICS_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_STRING_EQUAL(paths[0], "data/fashion-mnist.h5");
    ics_data_files_free(paths, n);
    /* A shards directory: every part, in order. */
    char dir[512], set[600], p[700];
    snprintf(dir, sizeof dir, "%s/shards", tmp);
    mkdir(dir, 0755);
    for (int s = 0; s < 3; s++) {
        ics_shard_path(p, sizeof p, dir, s, 3);
        if (s != 1) write_rows(p, 0, 4);
    }
    snprintf(set, sizeof set, "data.shards_dir=%s", dir);
    CU_ASSERT_EQUAL(ics_config_set(cfg, set, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_data_files_from_config(cfg, &paths, &n, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "2 of 3 shards present"));
    ics_shard_path(p, sizeof p, dir, 1, 3);
    write_rows(p, 0, 4);
    CU_ASSERT_EQUAL_FATAL(ics_data_files_from_config(cfg, &paths, &n, &err), ICS_OK);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(paths[2], "shards/part-00002-of-00003.h5"));
    ics_data_files_free(paths, n);
    snprintf(set, sizeof set, "data.shards_dir=%s/none", tmp);
    CU_ASSERT_EQUAL(ics_config_set(cfg, set, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_data_files_from_config(cfg, &paths, &n, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot list the shards directory"));
    /* Options: augmentations only for training. */
    CU_ASSERT_EQUAL(ics_config_set(cfg, "data.hflip=true", &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_config_set(cfg, "data.crop_padding=4", &err), ICS_OK);
    ics_loader_options train = ics_loader_options_from_config(cfg, 1);
    ics_loader_options eval = ics_loader_options_from_config(cfg, 0);
    CU_ASSERT(train.hflip && train.crop_padding == 4 && train.shuffle && train.normalize);
    CU_ASSERT(!eval.hflip && eval.crop_padding == 0 && !eval.shuffle && eval.normalize);
    ics_config_destroy(cfg);
}

int main(void)
{
    tmp = ics_test_tmpdir("loader");
    static const ics_test_case loader[] = {
        {"DistributedSampler order, pad and drop_last", test_distributed_sampler_order},
        {"shuffle per epoch partitions the ranks", test_shuffle_per_epoch},
        {"shards per rank, equal counts", test_shards_per_rank},
        {"augmented batches identical with and without prefetch", test_augmented_batches_are_deterministic},
        {"loader errors", test_loader_errors},
        {"files and options from the configuration", test_files_and_options_from_config},
        {NULL, NULL}};
    static const ics_test_case transforms[] = {
        {"geometry formulas", test_geometry_formulas},
        {"transforms match PyTorch", test_transforms_match_torch},
        {NULL, NULL}};
    ics_test_add_suite("loader", loader);
    ics_test_add_suite("transforms", transforms);
    int rc = ics_test_main("test_data_loader");
    ics_test_rmtree(tmp);
    free(tmp);
    return rc;
}
