/*
 * bench_loader: data loader throughput, images/s on one thread (no
 * prefetch thread: the producer's own speed) with training augmentation,
 * at 28x28x1 (random crop pad 2 + flip), 32x32x3 (random crop pad 4 +
 * flip) and 224x224x3 (random resized crop + flip), from a synthetic
 * dataset written to $TMPDIR. With --torch, runs bench/bench_loader_ref.py
 * (the same transforms in PyTorch, one thread) and prints its figure and
 * the ratio.
 *
 * Usage: bench_loader [--torch] [--seconds S]
 */
#include "ics_build_config.h"
#include "data/dataset.h"
#include "data/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int write_synthetic(const char *path, int side, int channels, int n)
{
    ics_dataset_meta m;
    memset(&m, 0, sizeof m);
    m.height = m.width = side;
    m.channels = channels;
    for (int c = 0; c < channels; c++) {
        m.mean[c] = 0.5;
        m.std[c] = 0.25;
    }
    m.source = strdup("bench");
    ics_error err;
    if (ics_dataset_meta_number_classes(&m, 10, &err)) return 1;
    size_t bytes = (size_t)n * side * side * channels;
    uint8_t *img = malloc(bytes);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    if (!img || !lab) return 1;
    for (size_t i = 0; i < bytes; i++) img[i] = (uint8_t)((i * 2654435761u) >> 24);
    for (int i = 0; i < n; i++) lab[i] = i % 10;
    const uint8_t *const im[3] = {img, NULL, NULL};
    const int32_t *const lb[3] = {lab, NULL, NULL};
    const int64_t counts[3] = {n, 0, 0};
    ics_dataset_write_options wo = {0, 0};
    ics_status st = ics_dataset_write_file(path, &m, &wo, im, lb, counts, &err);
    if (st) fprintf(stderr, "bench_loader: %s\n", err.message);
    free(img);
    free(lab);
    ics_dataset_meta_clear(&m);
    return st != ICS_OK;
}

/* Images per second over at least `seconds`. */
static double measure(const char *path, int side, int channels, int rrc, int pad, double seconds)
{
    ics_loader_options o = ics_loader_default_options();
    o.prefetch = 0;
    o.hflip = 1;
    o.crop_padding = pad;
    o.random_resized_crop = rrc;
    o.image_size = rrc ? side : 0;
    const char *paths[1] = {path};
    ics_loader *l;
    ics_error err;
    int batch = 64;
    if (ics_loader_create(paths, 1, "train", batch, 0, 1, 1, &o, &l, &err)) {
        fprintf(stderr, "bench_loader: %s\n", err.message);
        return -1;
    }
    float *images = malloc((size_t)batch * side * side * channels * sizeof *images);
    int32_t labels[64];
    long done = 0;
    double t0 = now_s(), t;
    int64_t epoch = 0;
    do {
        int count;
        ics_loader_next(l, images, labels, &count, &err);
        if (count == 0) ics_loader_set_epoch(l, ++epoch, &err);
        done += count;
        t = now_s() - t0;
    } while (t < seconds);
    free(images);
    ics_loader_destroy(l);
    return done / t;
}

int main(int argc, char **argv)
{
    int torch = 0;
    double seconds = 2.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--torch") == 0) torch = 1;
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
    }
    const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    struct { const char *name; int side, channels, n, rrc, pad; } cases[] = {
        {"28x28x1 crop(pad 2)+flip", 28, 1, 8192, 0, 2},
        {"32x32x3 crop(pad 4)+flip", 32, 3, 8192, 0, 4},
        {"224x224x3 rrc+flip", 224, 3, 512, 1, 0},
    };
    printf("%-28s %14s %14s %8s\n", "loader (1 thread)", "icsparse img/s", "torch img/s", "ratio");
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/bench-loader-%d-%d.h5", tmpdir, cases[k].side, (int)getpid());
        if (write_synthetic(path, cases[k].side, cases[k].channels, cases[k].n)) return 1;
        double ours = measure(path, cases[k].side, cases[k].channels, cases[k].rrc, cases[k].pad, seconds);
        double ref = -1;
        if (torch) {
            char cmd[8192];
            snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s '%s/bench/bench_loader_ref.py' %d %d %d %d %g",
                     getenv("PYTHON_TORCH") ? getenv("PYTHON_TORCH") : "/usr/bin/python3",
                     getenv("top_srcdir") ? getenv("top_srcdir") : ".", cases[k].side, cases[k].channels,
                     cases[k].rrc, cases[k].pad, seconds);
            FILE *p = popen(cmd, "r");
            if (p) {
                if (fscanf(p, "%lf", &ref) != 1) ref = -1;
                pclose(p);
            }
        }
        remove(path);
        if (ref > 0)
            printf("%-28s %14.0f %14.0f %8.2f\n", cases[k].name, ours, ref, ours / ref);
        else
            printf("%-28s %14.0f %14s %8s\n", cases[k].name, ours, "-", "-");
    }
    return 0;
}
