/* icsparse-convert: turns a raw dataset (IDX, CIFAR binary archives, image
 * folders; by name or by path) into the HDF5 dataset format. */
#include "ics_build_config.h"
#include "apps/app.h"
#include "core/log.h"
#include "data/catalog.h"
#include "data/dataset.h"
#include "data/convert.h"
#include "data/download.h"
#include "data/source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const ics_app_option options[] = {
    {"source", 0, 1, "data.source", "PATH", NULL, "raw source: IDX directory, CIFAR .tar.gz, image folder"},
    {"format", 'f', 1, NULL, "FORMAT", "the dataset's", "source format: idx, cifar10, cifar100, folder"},
    {"output", 'o', 1, "data.path", "FILE", NULL, "dataset file to write"},
    {"data-dir", 'd', 1, "data.dir", "DIR", NULL, "directory for datasets and downloads"},
    {"val-fraction", 0, 1, "data.val_fraction", "F", NULL, "share of train carved out as val, per class"},
    {"seed", 0, 1, "data.seed", "N", NULL, "seed of the val split"},
    {"compress", 0, 1, "data.compress", "LEVEL", NULL, "deflate level 0-9"},
    {"image-size", 0, 1, "data.image_size", "N", NULL, "image folders: resize shorter side and center-crop to N"},
    {"download", 0, 0, "data.download", NULL, NULL, "fetch the archives when no local source is found"},
    {"sha256", 0, 1, NULL, "HEX", "the catalog's", "expected SHA-256 of the archive (for datasets without a pinned one)"},
    {"list", 0, 0, NULL, NULL, NULL, "list the datasets known by name and exit"},
    {"info", 0, 1, NULL, "FILE.h5", "none", "describe a dataset or shard file (format, shape, classes, counts, mean/std) and exit"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL}};

/* A one-line bar on a terminal; nothing in a batch log. */
static void progress_bar(void *ctx, const char *what, int64_t done, int64_t total)
{
    (void)ctx;
    if (!isatty(STDERR_FILENO) || total <= 0) return;
    int width = 30, filled = (int)(done * width / total);
    fprintf(stderr, "\r%-12s [%.*s%*s] %3d%%", what, filled, "##############################",
            width - filled, "", (int)(done * 100 / total));
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
}

static ics_status list_datasets(void)
{
    int n;
    const ics_catalog_entry *entries = ics_catalog_entries(&n);
    for (int i = 0; i < n; i++) printf("%-14s %s\n", entries[i].name, entries[i].summary);
    return ICS_OK;
}

/* What --info prints: everything a reader checks, one fact per line. */
static ics_status describe(const char *path, ics_error *err)
{
    ics_dataset_reader *r;
    ics_status st = ics_dataset_open(path, &r, err);
    if (st) return st;
    const ics_dataset_meta *m = ics_dataset_reader_meta(r);
    printf("file:       %s\n", path);
    printf("format:     %s, version %d\n", m->is_shard ? ICS_SHARD_FORMAT : ICS_DATASET_FORMAT, ICS_DATASET_FORMAT_VERSION);
    if (m->is_shard)
        printf("shard:      %d of %d, seed %llu\n", m->shard_index, m->shard_count, (unsigned long long)m->seed);
    printf("images:     %dx%dx%d uint8 (HWC)\n", m->height, m->width, m->channels);
    for (int s = 0; s < 3; s++) printf("%-11s %lld\n", ics_dataset_splits[s], (long long)ics_dataset_count(r, ics_dataset_splits[s]));
    printf("classes:    %d:", m->num_classes);
    for (int c = 0; c < m->num_classes; c++) printf("%s %s", c ? "," : "", m->class_names[c]);
    printf("\nmean:      ");
    for (int c = 0; c < m->channels; c++) printf(" %.6f", m->mean[c]);
    printf("\nstd:       ");
    for (int c = 0; c < m->channels; c++) printf(" %.6f", m->std[c]);
    printf("\nsource:     %s\nsha256:     %s\n", m->source ? m->source : "", m->source_sha256);
    ics_dataset_close(r);
    return ICS_OK;
}

static ics_status make_parent_dirs(const char *path, ics_error *err)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    return ICS_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static ics_status run(ics_app *app, ics_error *err)
{
    if (ics_app_option_value(app, "list")) return list_datasets();
    if (ics_app_option_value(app, "info")) return describe(ics_app_option_value(app, "info"), err);
    const ics_config *cfg = ics_app_config(app);
    const char *name = ics_app_positional_count(app) ? ics_app_positional(app, 0)
                                                    : ics_config_string(cfg, "data.dataset");
    const ics_catalog_entry *entry = ics_catalog_find(name);
    const char *format_text = ics_app_option_value(app, "format");
    int format = entry ? (int)entry->format : -1;
    if (format_text && (format = ics_source_format_parse(format_text)) < 0)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "unknown --format '%s' (idx, cifar10, cifar100, folder)", format_text);
    const char *source = ics_config_string(cfg, "data.source");
    if (!entry && (!source[0] || format < 0))
        return ICS_FAIL(err, ICS_ERR_CONFIG,
                        "unknown dataset '%s' (see --list); for your own data give --source and --format", name);
    const char *data_dir = ics_config_string(cfg, "data.dir");
    double t0 = now_s();
    char *located = NULL;
    ics_status st = ICS_OK;
    if (!source[0]) {
        st = ics_source_locate(entry, data_dir, &located, err);
        if (st == ICS_ERR_IO && ics_config_bool(cfg, "data.download")) {
            ics_download_options dopt = {ics_app_option_value(app, "sha256"), progress_bar, NULL};
            st = ics_download_entry(entry, data_dir, &dopt, err);
            if (!st) st = ics_source_locate(entry, data_dir, &located, err);
        }
        if (st) return st;
        source = located;
    }
    ICS_INFO("converting %s from %s", name, source);
    ics_raw_dataset raw;
    int image_size = (int)ics_config_int(cfg, "data.image_size");
    const char *const *class_names = entry && strcmp(entry->name, "fashion-mnist") == 0 ? ics_fashion_mnist_classes : NULL;
    st = ics_source_prepare_and_load((ics_source_format)format, source, entry, data_dir, class_names, image_size,
                                     progress_bar, NULL, &raw, err);
    if (st) {
        free(located);
        return st;
    }
    char default_path[4096];
    const char *out = ics_config_string(cfg, "data.path");
    if (!out[0]) {
        snprintf(default_path, sizeof default_path, "%s/%s.h5", data_dir, name);
        out = default_path;
    }
    st = make_parent_dirs(out, err);
    ics_convert_options copt = {ics_config_float(cfg, "data.val_fraction"), (uint64_t)ics_config_int(cfg, "data.seed"),
                                (int)ics_config_int(cfg, "data.compress"), progress_bar, NULL};
    if (!st) st = ics_convert_write(&raw, out, &copt, err);
    if (!st)
        ICS_INFO("wrote %s: %lld train + %lld test images %dx%dx%d, %d classes, in %.2f s", out,
                 (long long)raw.train.count, (long long)raw.test.count, raw.meta.height, raw.meta.width,
                 raw.meta.channels, raw.meta.num_classes, now_s() - t0);
    ics_raw_dataset_clear(&raw);
    free(located);
    return st;
}

int main(int argc, char **argv)
{
    static const ics_app_spec spec = {
        "icsparse-convert",
        "Convert a dataset (by name, or --source with --format) into the icsparse HDF5 dataset format.",
        "[DATASET]", 0, 1, options, 0, run};
    return ics_app_main(&spec, argc, argv);
}
