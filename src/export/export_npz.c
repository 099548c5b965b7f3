/* numpy .npz writer: see export_npz.h (numpy's format description:
 * numpy/lib/format.py docstring, version 1.0). */
#include "ics_build_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "export/export_npz.h"
#include "io/zip_writer.h"

/* Element size of a supported dtype string, 0 for any other. */
static size_t descr_size(const char *descr)
{
    if (strcmp(descr, "<f4") == 0) return 4;
    if (strcmp(descr, "<i8") == 0) return 8;
    return 0;
}

static int valid_key(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* The .npy bytes of one array into a malloc'd buffer. */
static ics_status npy_bytes(const char *path, const ics_npz_array *a, uint8_t **out, size_t *len,
                            ics_error *err)
{
    size_t elem = descr_size(a->descr);
    if (!elem)
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: unsupported npy dtype '%s' for '%s'", path,
                        a->descr, a->key);
    if (!valid_key(a->key))
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: bad npz key '%s'", path, a->key);
    if (a->ndim < 0 || a->ndim > ICS_NPZ_MAX_DIMS)
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: '%s' has %d dimensions (0..%d)", path, a->key,
                        a->ndim, ICS_NPZ_MAX_DIMS);
    /* the shape as a Python tuple: (), (4,), (1, 3, 32, 32) */
    char shape[256] = "(";
    size_t numel = 1;
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] < 0 || a->shape[d] > (int64_t)1 << 40)
            return ICS_FAIL(err, ICS_ERR_INVALID, "%s: '%s' has a bad dimension %lld", path, a->key,
                            (long long)a->shape[d]);
        size_t k = strlen(shape);
        snprintf(shape + k, sizeof shape - k, "%lld%s", (long long)a->shape[d],
                 a->ndim == 1      ? ","
                 : d + 1 < a->ndim ? ", "
                                   : "");
        numel *= (size_t)a->shape[d];
    }
    strcat(shape, ")");
    char header[512];
    int n = snprintf(header, sizeof header,
                     "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", a->descr, shape);
    /* magic (6) + version (2) + length (2) + header padded with spaces and
     * '\n' to a multiple of 64, as numpy writes it (data aligned) */
    size_t total = 10 + (size_t)n + 1;
    total = (total + 63) / 64 * 64;
    size_t hlen = total - 10;
    size_t data_bytes = numel * elem;
    uint8_t *buf = ics_malloc(total + data_bytes, "npy array", err);
    if (!buf) return ICS_ERR_NOMEM;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(hlen & 0xFF);
    buf[9] = (uint8_t)(hlen >> 8);
    memset(buf + 10, ' ', hlen);
    memcpy(buf + 10, header, (size_t)n);
    buf[total - 1] = '\n';
    if (data_bytes) memcpy(buf + total, a->data, data_bytes);
    *out = buf;
    *len = total + data_bytes;
    return ICS_OK;
}

ics_status ics_npz_write(const char *path, const ics_npz_array *arrays, int count, ics_error *err)
{
    uint8_t **bufs = ics_calloc((size_t)count + 1, sizeof *bufs, "npz arrays", err);
    size_t *lens = ics_calloc((size_t)count + 1, sizeof *lens, "npz arrays", err);
    ics_status st = bufs && lens ? ICS_OK : ICS_ERR_NOMEM;
    for (int i = 0; i < count && st == ICS_OK; i++)
        st = npy_bytes(path, &arrays[i], &bufs[i], &lens[i], err);
    ics_zip_writer *zw = NULL;
    if (st == ICS_OK) st = ics_zip_writer_open(path, &zw, err);
    for (int i = 0; i < count && st == ICS_OK; i++) {
        char name[80];
        snprintf(name, sizeof name, "%s.npy", arrays[i].key);
        st = ics_zip_writer_add(zw, name, bufs[i], lens[i], err);
    }
    if (zw) {
        if (st == ICS_OK)
            st = ics_zip_writer_close(zw, err);
        else
            ics_zip_writer_abort(zw);
    }
    for (int i = 0; bufs && i < count; i++)
        free(bufs[i]);
    free(bufs);
    free(lens);
    return st;
}
