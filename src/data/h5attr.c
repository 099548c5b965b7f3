/* Checked HDF5 attribute helpers: see h5attr.h. */
#include "ics_build_config.h"
#include "data/h5attr.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

void ics_h5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Creates (replacing) attribute name with the given type and space, writes
 * buf. Closes what it opened. */
static ics_status put(hid_t obj, const char *name, hid_t type, hid_t space, const void *buf,
                      const char *file, ics_error *err)
{
    ics_status st = ICS_OK;
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, type, buf) < 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write attribute '%s'", file, name);
    if (attr >= 0) H5Aclose(attr);
    return st;
}

ics_status ics_h5_attr_put_string(hid_t obj, const char *name, const char *value, const char *file,
                                  ics_error *err)
{
    char *values[1] = {(char *)value};
    hid_t type = H5Tcopy(H5T_C_S1);
    hid_t space = H5Screate(H5S_SCALAR);
    ics_status st;
    if (type < 0 || space < 0 || H5Tset_size(type, strlen(value) + 1) < 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot describe attribute '%s'", file, name);
    else
        st = put(obj, name, type, space, values[0], file, err);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    return st;
}

ics_status ics_h5_attr_put_strings(hid_t obj, const char *name, char *const *values, int count,
                                   const char *file, ics_error *err)
{
    size_t width = 1;
    for (int i = 0; i < count; i++)
        if (strlen(values[i]) + 1 > width) width = strlen(values[i]) + 1;
    /* calloc so the padding bytes are zero: the file is byte-deterministic. */
    char *packed = ics_calloc((size_t)(count > 0 ? count : 1), width, "string attribute", err);
    if (!packed) return ICS_ERR_NOMEM;
    for (int i = 0; i < count; i++) memcpy(packed + (size_t)i * width, values[i], strlen(values[i]));
    hsize_t dims[1] = {(hsize_t)count};
    hid_t type = H5Tcopy(H5T_C_S1);
    hid_t space = H5Screate_simple(1, dims, NULL);
    ics_status st;
    if (type < 0 || space < 0 || H5Tset_size(type, width) < 0 ||
        H5Tset_strpad(type, H5T_STR_NULLTERM) < 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot describe attribute '%s'", file, name);
    else
        st = put(obj, name, type, space, packed, file, err);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    free(packed);
    return st;
}

static ics_status put_numbers(hid_t obj, const char *name, hid_t file_type, hid_t mem_type,
                              const void *values, int count, int scalar, const char *file,
                              ics_error *err)
{
    hsize_t dims[1] = {(hsize_t)count};
    hid_t space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
    if (space < 0) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot describe attribute '%s'", file, name);
    ics_status st = ICS_OK;
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t attr = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, mem_type, values) < 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write attribute '%s'", file, name);
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    return st;
}

ics_status ics_h5_attr_put_i64(hid_t obj, const char *name, int64_t value, const char *file,
                               ics_error *err)
{
    return put_numbers(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, 1, 1, file, err);
}

ics_status ics_h5_attr_put_u64(hid_t obj, const char *name, uint64_t value, const char *file,
                               ics_error *err)
{
    return put_numbers(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value, 1, 1, file, err);
}

ics_status ics_h5_attr_put_f64s(hid_t obj, const char *name, const double *values, int count,
                                const char *file, ics_error *err)
{
    return put_numbers(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values, count, 0, file, err);
}

int ics_h5_attr_exists(hid_t obj, const char *name)
{
    return H5Aexists(obj, name) > 0;
}

/* Opens attribute name, checks its type class and element count (count <
 * 0: any). On success *attr, *space and *type are open. */
static ics_status open_checked(hid_t obj, const char *name, H5T_class_t want_class, int want_count,
                               hid_t *attr, hid_t *space, hid_t *type, hssize_t *count,
                               const char *file, ics_error *err)
{
    *space = *type = -1;
    if (H5Aexists(obj, name) <= 0)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: missing attribute '%s'", file, name);
    *attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (*attr < 0) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open attribute '%s'", file, name);
    *space = H5Aget_space(*attr);
    *type = H5Aget_type(*attr);
    *count = *space >= 0 ? H5Sget_simple_extent_npoints(*space) : -1;
    if (*type < 0 || *count < 0 || H5Tget_class(*type) != want_class ||
        (want_count >= 0 && *count != want_count)) {
        H5Aclose(*attr);
        if (*space >= 0) H5Sclose(*space);
        if (*type >= 0) H5Tclose(*type);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: attribute '%s' has the wrong type or length",
                        file, name);
    }
    return ICS_OK;
}

static void close3(hid_t attr, hid_t space, hid_t type)
{
    H5Tclose(type);
    H5Sclose(space);
    H5Aclose(attr);
}

ics_status ics_h5_attr_get_strings(hid_t obj, const char *name, char ***values, int *count,
                                   const char *file, ics_error *err)
{
    hid_t attr, space, type;
    hssize_t n;
    *values = NULL;
    *count = 0;
    ics_status st = open_checked(obj, name, H5T_STRING, -1, &attr, &space, &type, &n, file, err);
    if (st) return st;
    if (H5Tis_variable_str(type) > 0) {
        close3(attr, space, type);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: attribute '%s' is a variable-length string",
                        file, name);
    }
    size_t width = H5Tget_size(type);
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, width);
    /* NULLPAD in memory: the full width arrives (a NULLTERM memory type
     * would drop the last byte of a string that fills its width, as h5py
     * writes them); the terminator is added below. */
    H5Tset_strpad(mem, H5T_STR_NULLPAD);
    char *packed = ics_calloc((size_t)(n > 0 ? n : 1), width + 1, "string attribute", err);
    char **out = packed ? ics_calloc((size_t)(n > 0 ? n : 1), sizeof *out, "strings", err) : NULL;
    if (!out) st = ICS_ERR_NOMEM;
    else if (H5Aread(attr, mem, packed) < 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot read attribute '%s'", file, name);
    for (hssize_t i = 0; !st && i < n; i++) {
        char *s = ics_malloc(width + 1, "string", err);
        if (!s) {
            st = ICS_ERR_NOMEM;
            break;
        }
        memcpy(s, packed + (size_t)i * width, width);
        s[width] = '\0';
        out[i] = s;
    }
    H5Tclose(mem);
    close3(attr, space, type);
    free(packed);
    if (st) {
        for (hssize_t i = 0; out && i < n; i++) free(out[i]);
        free(out);
        return st;
    }
    *values = out;
    *count = (int)n;
    return ICS_OK;
}

ics_status ics_h5_attr_get_string(hid_t obj, const char *name, char **value, const char *file,
                                  ics_error *err)
{
    char **values;
    int count;
    *value = NULL;
    ics_status st = ics_h5_attr_get_strings(obj, name, &values, &count, file, err);
    if (st) return st;
    if (count != 1) {
        for (int i = 0; i < count; i++) free(values[i]);
        free(values);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: attribute '%s' is not a single string", file,
                        name);
    }
    *value = values[0];
    free(values);
    return ICS_OK;
}

static ics_status get_numbers(hid_t obj, const char *name, H5T_class_t cls, hid_t mem_type,
                              void *values, int count, const char *file, ics_error *err)
{
    hid_t attr, space, type;
    hssize_t n;
    ics_status st = open_checked(obj, name, cls, count, &attr, &space, &type, &n, file, err);
    if (st) return st;
    if (H5Aread(attr, mem_type, values) < 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot read attribute '%s'", file, name);
    close3(attr, space, type);
    return st;
}

ics_status ics_h5_attr_get_i64(hid_t obj, const char *name, int64_t *value, const char *file,
                               ics_error *err)
{
    return get_numbers(obj, name, H5T_INTEGER, H5T_NATIVE_INT64, value, 1, file, err);
}

ics_status ics_h5_attr_get_u64(hid_t obj, const char *name, uint64_t *value, const char *file,
                               ics_error *err)
{
    return get_numbers(obj, name, H5T_INTEGER, H5T_NATIVE_UINT64, value, 1, file, err);
}

ics_status ics_h5_attr_get_f64s(hid_t obj, const char *name, double *values, int count,
                                const char *file, ics_error *err)
{
    return get_numbers(obj, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, values, count, file, err);
}
