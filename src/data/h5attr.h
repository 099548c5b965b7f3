/*
 * src/data/h5attr.h: checked HDF5 attribute helpers for the dataset and
 * shard formats. Every helper names the file and attribute in its error,
 * and turns HDF5's own error printing off (the library never prints).
 * Attributes are written identically on every rank (HDF5 requires
 * attribute writes to be collective under the MPI-IO driver).
 */
#ifndef ICS_DATA_H5ATTR_H
#define ICS_DATA_H5ATTR_H

#include <hdf5.h>
#include <stdint.h>
#include <icsparse/status.h>

/* Turns off HDF5's automatic error stack printing (once per process). */
void ics_h5_quiet(void);

ics_status ics_h5_attr_put_string(hid_t obj, const char *name, const char *value, const char *file,
                                  ics_error *err);
/* A fixed-length string array attribute (all strings padded to the longest). */
ics_status ics_h5_attr_put_strings(hid_t obj, const char *name, char *const *values, int count,
                                   const char *file, ics_error *err);
ics_status ics_h5_attr_put_i64(hid_t obj, const char *name, int64_t value, const char *file,
                               ics_error *err);
ics_status ics_h5_attr_put_u64(hid_t obj, const char *name, uint64_t value, const char *file,
                               ics_error *err);
ics_status ics_h5_attr_put_f64s(hid_t obj, const char *name, const double *values, int count,
                                const char *file, ics_error *err);

/* 1 if obj has the attribute. */
int ics_h5_attr_exists(hid_t obj, const char *name);
/* Reads a scalar string attribute into a malloc'd string. */
ics_status ics_h5_attr_get_string(hid_t obj, const char *name, char **value, const char *file,
                                  ics_error *err);
/* Reads a string array attribute: malloc'd array of malloc'd strings. */
ics_status ics_h5_attr_get_strings(hid_t obj, const char *name, char ***values, int *count,
                                   const char *file, ics_error *err);
ics_status ics_h5_attr_get_i64(hid_t obj, const char *name, int64_t *value, const char *file,
                               ics_error *err);
ics_status ics_h5_attr_get_u64(hid_t obj, const char *name, uint64_t *value, const char *file,
                               ics_error *err);
/* Reads exactly count doubles; a different length is a format error. */
ics_status ics_h5_attr_get_f64s(hid_t obj, const char *name, double *values, int count,
                                const char *file, ics_error *err);

#endif
