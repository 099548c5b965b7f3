/* Checked HDF5 tensor and text datasets: see h5_tensor.h. */
#include "ics_build_config.h"
#include "io/h5_tensor.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

static hid_t mem_type(ics_h5_dtype t)
{
    switch (t) {
    case ICS_H5_F32: return H5T_NATIVE_FLOAT;
    case ICS_H5_I64: return H5T_NATIVE_INT64;
    case ICS_H5_U8: return H5T_NATIVE_UINT8;
    case ICS_H5_I8: return H5T_NATIVE_INT8;
    case ICS_H5_U64: return H5T_NATIVE_UINT64;
    case ICS_H5_F64: return H5T_NATIVE_DOUBLE;
    }
    return H5T_NATIVE_FLOAT;
}

static hid_t file_type(ics_h5_dtype t)
{
    switch (t) {
    case ICS_H5_F32: return H5T_IEEE_F32LE;
    case ICS_H5_I64: return H5T_STD_I64LE;
    case ICS_H5_U8: return H5T_STD_U8LE;
    case ICS_H5_I8: return H5T_STD_I8LE;
    case ICS_H5_U64: return H5T_STD_U64LE;
    case ICS_H5_F64: return H5T_IEEE_F64LE;
    }
    return H5T_IEEE_F32LE;
}

int ics_h5_exists(hid_t file, const char *path)
{
    char buf[1024];
    if (strlen(path) >= sizeof buf) return 0;
    strcpy(buf, path);
    /* H5Lexists needs every parent to exist: check each prefix in turn. */
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int ok = H5Lexists(file, buf, H5P_DEFAULT) > 0;
        *p = '/';
        if (!ok) return 0;
    }
    return H5Lexists(file, buf, H5P_DEFAULT) > 0;
}

ics_status ics_h5_make_parents(hid_t file, const char *path, const char *filename, ics_error *err)
{
    char buf[1024];
    if (strlen(path) >= sizeof buf) return ICS_FAIL(err, ICS_ERR_INVALID, "%s: path too long: %s", filename, path);
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) {
            hid_t g = H5Gcreate2(file, buf, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (g < 0) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create group %s", filename, buf);
            H5Gclose(g);
        }
        *p = '/';
    }
    return ICS_OK;
}

ics_status ics_h5_write_tensor(hid_t file, const char *path, ics_h5_dtype dtype, const void *data,
                               int ndim, const int64_t *shape, const char *filename, ics_error *err)
{
    ics_status st = ics_h5_make_parents(file, path, filename, err);
    if (st) return st;
    hsize_t dims[8];
    for (int i = 0; i < ndim && i < 8; i++) dims[i] = (hsize_t)shape[i];
    hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl >= 0) H5Pset_obj_track_times(dcpl, 0);
    hid_t ds = space < 0 ? -1
                         : H5Dcreate2(file, path, file_type(dtype), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write %s", filename, path);
    if (ds >= 0) H5Dclose(ds);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return st;
}

ics_status ics_h5_tensor_shape(hid_t file, const char *path, int *ndim, int64_t *shape,
                               const char *filename, ics_error *err)
{
    if (!ics_h5_exists(file, path)) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: missing %s", filename, path);
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s is not a dataset", filename, path);
    hid_t space = H5Dget_space(ds);
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    ics_status st = ICS_OK;
    if (nd < 0 || nd > 8) {
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: cannot read the shape of %s", filename, path);
    } else {
        hsize_t dims[8];
        H5Sget_simple_extent_dims(space, dims, NULL);
        *ndim = nd;
        for (int i = 0; i < nd; i++) shape[i] = (int64_t)dims[i];
    }
    if (space >= 0) H5Sclose(space);
    H5Dclose(ds);
    return st;
}

static void shape_text(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < size) snprintf(buf + len, size - len, "]");
}

ics_status ics_h5_read_tensor(hid_t file, const char *path, ics_h5_dtype dtype, void *data, int ndim,
                              const int64_t *shape, const char *filename, ics_error *err)
{
    int got_ndim = 0;
    int64_t got[8] = {0};
    ics_status st = ics_h5_tensor_shape(file, path, &got_ndim, got, filename, err);
    if (st) return st;
    int same = got_ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = got[i] == shape[i];
    if (!same) {
        char want_s[128], got_s[128];
        shape_text(want_s, sizeof want_s, ndim, shape);
        shape_text(got_s, sizeof got_s, got_ndim, got);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s has shape %s, expected %s", filename, path, got_s, want_s);
    }
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0 || H5Dread(ds, mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: cannot read %s", filename, path);
    if (ds >= 0) H5Dclose(ds);
    return st;
}

ics_status ics_h5_write_text(hid_t file, const char *path, const char *text, const char *filename,
                             ics_error *err)
{
    /* Stored as a 1-D uint8 array of the bytes (no terminator): any length,
     * any content, and h5py reads it as bytes. */
    int64_t n = (int64_t)strlen(text);
    return ics_h5_write_tensor(file, path, ICS_H5_U8, n ? (const void *)text : (const void *)"", 1, &n,
                               filename, err);
}

ics_status ics_h5_read_text(hid_t file, const char *path, char **text, const char *filename,
                            ics_error *err)
{
    *text = NULL;
    int ndim = 0;
    int64_t shape[8];
    ics_status st = ics_h5_tensor_shape(file, path, &ndim, shape, filename, err);
    if (st) return st;
    if (ndim != 1) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s is not text", filename, path);
    char *buf = ics_malloc((size_t)shape[0] + 1, "text from a checkpoint", err);
    if (!buf) return ICS_ERR_NOMEM;
    if (shape[0] > 0) {
        st = ics_h5_read_tensor(file, path, ICS_H5_U8, buf, 1, shape, filename, err);
        if (st) {
            free(buf);
            return st;
        }
    }
    buf[shape[0]] = '\0';
    *text = buf;
    return ICS_OK;
}
