/* IDX reader (MNIST, Fashion-MNIST): see idx.h. */
#include "ics_build_config.h"
#include "data/idx.h"
#include "data/sha256.h"
#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

void ics_raw_dataset_clear(ics_raw_dataset *raw)
{
    ics_dataset_meta_clear(&raw->meta);
    free(raw->train.images);
    free(raw->train.labels);
    free(raw->test.images);
    free(raw->test.labels);
    memset(raw, 0, sizeof *raw);
}

/* Reads exactly n bytes; distinguishes gzip damage from a short file. */
static ics_status read_exact(gzFile f, void *buf, size_t n, const char *path, const char *what,
                             ics_error *err)
{
    unsigned char *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got < 0) {
            int code;
            const char *msg = gzerror(f, &code);
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: corrupt gzip data while reading %s: %s", path,
                            what, msg);
        }
        if (got == 0)
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: truncated while reading %s", path, what);
        p += got;
        n -= (size_t)got;
    }
    return ICS_OK;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Opens path, checks the magic (ubyte data, ndims dimensions), reads the
 * dimensions. */
static ics_status open_idx(const char *path, int ndims, gzFile *out, uint32_t *dims, ics_error *err)
{
    FILE *probe = fopen(path, "rb");
    if (!probe) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fclose(probe);
    gzFile f = gzopen(path, "rb");
    if (!f) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open", path);
    unsigned char header[16];
    ics_status st = read_exact(f, header, 4 + 4 * (size_t)ndims, path, "the header", err);
    if (!st) {
        uint32_t magic = be32(header);
        if (magic != (uint32_t)(0x0800 | ndims))
            st = ICS_FAIL(err, ICS_ERR_FORMAT,
                          "%s: bad magic number 0x%08x (want 0x%08x: idx%d-ubyte)", path,
                          (unsigned)magic, (unsigned)(0x0800 | ndims), ndims);
    }
    for (int i = 0; !st && i < ndims; i++) dims[i] = be32(header + 4 + 4 * i);
    if (st) {
        gzclose(f);
        return st;
    }
    *out = f;
    return ICS_OK;
}

/* After the payload the file must end: extra bytes mean a wrong header. */
static ics_status expect_end(gzFile f, const char *path, ics_error *err)
{
    unsigned char extra;
    int got = gzread(f, &extra, 1);
    if (got < 0) {
        int code;
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: corrupt gzip data: %s", path, gzerror(f, &code));
    }
    if (got > 0) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: extra bytes after the data the header announces", path);
    return ICS_OK;
}

ics_status ics_idx_read_images(const char *path, uint8_t **images, int64_t *count, int *height,
                               int *width, ics_error *err)
{
    gzFile f;
    uint32_t dims[3];
    *images = NULL;
    ics_status st = open_idx(path, 3, &f, dims, err);
    if (st) return st;
    if (dims[1] == 0 || dims[2] == 0 || dims[1] > 4096 || dims[2] > 4096 || dims[0] > (1u << 28)) {
        gzclose(f);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: implausible image dimensions %ux%ux%u", path,
                        (unsigned)dims[0], (unsigned)dims[1], (unsigned)dims[2]);
    }
    size_t bytes = (size_t)dims[0] * dims[1] * dims[2];
    uint8_t *buf = ics_malloc(bytes, "IDX images", err);
    st = buf ? read_exact(f, buf, bytes, path, "the images", err) : ICS_ERR_NOMEM;
    if (!st) st = expect_end(f, path, err);
    gzclose(f);
    if (st) {
        free(buf);
        return st;
    }
    *images = buf;
    *count = dims[0];
    *height = (int)dims[1];
    *width = (int)dims[2];
    return ICS_OK;
}

ics_status ics_idx_read_labels(const char *path, int num_classes, int32_t **labels, int64_t *count,
                               ics_error *err)
{
    gzFile f;
    uint32_t dims[1];
    *labels = NULL;
    ics_status st = open_idx(path, 1, &f, dims, err);
    if (st) return st;
    if (dims[0] > (1u << 28)) {
        gzclose(f);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: implausible label count %u", path, (unsigned)dims[0]);
    }
    uint8_t *bytes = ics_malloc(dims[0], "IDX labels", err);
    int32_t *out = bytes ? ics_malloc((size_t)dims[0] * sizeof *out, "labels", err) : NULL;
    st = out ? read_exact(f, bytes, dims[0], path, "the labels", err) : ICS_ERR_NOMEM;
    if (!st) st = expect_end(f, path, err);
    gzclose(f);
    for (uint32_t i = 0; !st && i < dims[0]; i++) {
        if (bytes[i] >= num_classes)
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: label %u at index %u is out of range 0..%d", path,
                          (unsigned)bytes[i], (unsigned)i, num_classes - 1);
        else
            out[i] = bytes[i];
    }
    free(bytes);
    if (st) {
        free(out);
        return st;
    }
    *labels = out;
    *count = dims[0];
    return ICS_OK;
}

/* dir/name.gz if it exists, else dir/name (malloc'd). */
static char *find_file(const char *dir, const char *name, ics_error *err)
{
    size_t n = strlen(dir) + strlen(name) + 8;
    char *path = ics_malloc(n, "path", err);
    if (!path) return NULL;
    struct stat sb;
    snprintf(path, n, "%s/%s.gz", dir, name);
    if (stat(path, &sb) == 0) return path;
    snprintf(path, n, "%s/%s", dir, name);
    return path;
}

ics_status ics_idx_load_dir(const char *dir, const char *const class_names[10], ics_raw_dataset *raw,
                            ics_error *err)
{
    static const char *const names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    memset(raw, 0, sizeof *raw);
    char *paths[4] = {NULL, NULL, NULL, NULL};
    ics_status st = ICS_OK;
    for (int i = 0; i < 4 && !st; i++)
        if (!(paths[i] = find_file(dir, names[i], err))) st = ICS_ERR_NOMEM;
    int h[2] = {0, 0}, w[2] = {0, 0};
    int64_t label_count[2] = {0, 0};
    ics_raw_split *splits[2] = {&raw->train, &raw->test};
    for (int s = 0; s < 2 && !st; s++) {
        st = ics_idx_read_images(paths[2 * s], &splits[s]->images, &splits[s]->count, &h[s], &w[s], err);
        if (!st) st = ics_idx_read_labels(paths[2 * s + 1], 10, &splits[s]->labels, &label_count[s], err);
        if (!st && label_count[s] != splits[s]->count)
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s has %lld images but %s has %lld labels", paths[2 * s],
                          (long long)splits[s]->count, paths[2 * s + 1], (long long)label_count[s]);
    }
    if (!st && (h[0] != h[1] || w[0] != w[1]))
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s is %dx%d but %s is %dx%d", paths[0], h[0], w[0], paths[2],
                      h[1], w[1]);
    /* The source digest covers the four files: SHA-256 over their digests. */
    ics_sha256 all;
    ics_sha256_init(&all);
    for (int i = 0; i < 4 && !st; i++) {
        char hex[65];
        st = ics_sha256_file(paths[i], hex, err);
        if (!st) ics_sha256_update(&all, hex, 64);
    }
    if (!st) {
        uint8_t digest[32];
        ics_sha256_final(&all, digest);
        ics_sha256_hex(digest, raw->meta.source_sha256);
        raw->meta.height = h[0];
        raw->meta.width = w[0];
        raw->meta.channels = 1;
        st = ics_dataset_meta_set_classes(&raw->meta, class_names, 10, err);
    }
    if (!st && !(raw->meta.source = ics_strdup(dir, err))) st = ICS_ERR_NOMEM;
    for (int i = 0; i < 4; i++) free(paths[i]);
    if (st) ics_raw_dataset_clear(raw);
    return st;
}
