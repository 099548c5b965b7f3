/* The HDF5 dataset format, writer and reader: see dataset.h. */
#include "ics_build_config.h"
#include "data/dataset.h"
#include "data/h5attr.h"
#include "core/alloc.h"
#include "dist/dist.h"

#include <errno.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ics_dataset_splits[3] = {"train", "val", "test"};

static int split_index(const char *split)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(split, ics_dataset_splits[i]) == 0) return i;
    return -1;
}

/* ---------------------------------------------------------------- metadata */

void ics_dataset_meta_clear(ics_dataset_meta *meta)
{
    for (int i = 0; meta->class_names && i < meta->num_classes; i++) free(meta->class_names[i]);
    free(meta->class_names);
    free(meta->source);
    memset(meta, 0, sizeof *meta);
}

ics_status ics_dataset_meta_set_classes(ics_dataset_meta *meta, const char *const *names, int count,
                                        ics_error *err)
{
    char **copy = ics_calloc((size_t)(count > 0 ? count : 1), sizeof *copy, "class names", err);
    if (!copy) return ICS_ERR_NOMEM;
    for (int i = 0; i < count; i++) {
        copy[i] = ics_strdup(names[i], err);
        if (!copy[i]) {
            for (int j = 0; j < i; j++) free(copy[j]);
            free(copy);
            return ICS_ERR_NOMEM;
        }
    }
    for (int i = 0; meta->class_names && i < meta->num_classes; i++) free(meta->class_names[i]);
    free(meta->class_names);
    meta->class_names = copy;
    meta->num_classes = count;
    return ICS_OK;
}

ics_status ics_dataset_meta_number_classes(ics_dataset_meta *meta, int count, ics_error *err)
{
    /* One buffer of 12-byte names ("0".."N-1") and pointers into it. */
    char *text = ics_calloc((size_t)(count > 0 ? count : 1), 12, "class names", err);
    const char **names = text ? ics_calloc((size_t)(count > 0 ? count : 1), sizeof *names, "class names", err) : NULL;
    if (!names) {
        free(text);
        return ICS_ERR_NOMEM;
    }
    for (int i = 0; i < count; i++) {
        snprintf(text + 12 * i, 12, "%d", i);
        names[i] = text + 12 * i;
    }
    ics_status st = ics_dataset_meta_set_classes(meta, names, count, err);
    free(names);
    free(text);
    return st;
}

ics_status ics_dataset_meta_copy(ics_dataset_meta *dst, const ics_dataset_meta *src, ics_error *err)
{
    *dst = *src;
    dst->class_names = NULL;
    dst->source = NULL;
    dst->num_classes = 0;
    ics_status st = ics_dataset_meta_set_classes(dst, (const char *const *)src->class_names,
                                                 src->num_classes, err);
    if (st) return st;
    if (src->source && !(dst->source = ics_strdup(src->source, err))) {
        ics_dataset_meta_clear(dst);
        return ICS_ERR_NOMEM;
    }
    return ICS_OK;
}

/* ---------------------------------------------------------------- writer */

struct ics_dataset_writer {
    char *path, *temp_path;
    ics_dataset_meta meta;
    ics_dataset_write_options options;
    hid_t file;
    hid_t images[3], labels[3];
    int64_t counts[3];
};

/* "dir/.name.partial": same directory, so rename() is atomic. */
static char *temp_name_for(const char *path, ics_error *err)
{
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path + 1) : 0;
    size_t n = strlen(path) + 16;
    char *temp = ics_malloc(n, "temporary file name", err);
    if (temp) snprintf(temp, n, "%.*s.%s.partial", (int)dir_len, path, path + dir_len);
    return temp;
}

static void writer_free(ics_dataset_writer *w)
{
    for (int s = 0; s < 3; s++) {
        if (w->images[s] >= 0) H5Dclose(w->images[s]);
        if (w->labels[s] >= 0) H5Dclose(w->labels[s]);
    }
    if (w->file >= 0) H5Fclose(w->file);
    ics_dataset_meta_clear(&w->meta);
    free(w->path);
    free(w->temp_path);
    free(w);
}

/* In parallel mode the ranks agree on every collective step, so one rank's
 * failure fails all of them instead of leaving the others in a
 * collective HDF5 call. */
static ics_status agree(const ics_dataset_writer *w, ics_status local, ics_error *err)
{
    if (!w->options.parallel) return local;
    ics_error other;
    ics_error_clear(&other);
    ics_status all = ics_dist_agree(local, &other);
    if (all && !local)
        return ICS_FAIL(err, all, "%s: another rank failed while writing", w->path);
    return local ? local : all;
}

ics_status ics_dataset_writer_create(const char *path, const ics_dataset_meta *meta,
                                     const ics_dataset_write_options *options,
                                     ics_dataset_writer **out, ics_error *err)
{
    ics_h5_quiet();
    *out = NULL;
    if (meta->channels < 1 || meta->channels > ICS_DATASET_MAX_CHANNELS || meta->height < 1 ||
        meta->width < 1 || meta->num_classes < 1)
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: bad dataset shape %dx%dx%d with %d classes", path,
                        meta->height, meta->width, meta->channels, meta->num_classes);
    if (options->parallel && options->deflate_level > 0)
        return ICS_FAIL(err, ICS_ERR_INVALID,
                        "%s: deflate is not available for parallel writes", path);
    ics_dataset_writer *w = ics_calloc(1, sizeof *w, "dataset writer", err);
    if (!w) return ICS_ERR_NOMEM;
    w->file = -1;
    for (int s = 0; s < 3; s++) w->images[s] = w->labels[s] = -1;
    w->options = *options;
    ics_status st = ICS_OK;
    if (!(w->path = ics_strdup(path, err)) || !(w->temp_path = temp_name_for(path, err)))
        st = ICS_ERR_NOMEM;
    if (!st) st = ics_dataset_meta_copy(&w->meta, meta, err);
    if (st) {
        writer_free(w);
        return st;
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fapl >= 0 && options->parallel) {
        const MPI_Comm *comm = ics_dist_mpi_comm_world();
        if (!comm || H5Pset_fapl_mpio(fapl, *comm, MPI_INFO_NULL) < 0)
            st = ICS_FAIL(err, ICS_ERR_MPI, "%s: cannot use MPI-IO (is MPI started?)", path);
    }
    /* No timestamps on the root group either (determinism). */
    if (fcpl >= 0) H5Pset_obj_track_times(fcpl, 0);
    if (!st && fapl >= 0 && fcpl >= 0)
        w->file = H5Fcreate(w->temp_path, H5F_ACC_TRUNC, fcpl, fapl);
    if (!st && w->file < 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create temporary file %s", path, w->temp_path);
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    st = agree(w, st, err);
    if (st) {
        writer_free(w);
        return st;
    }
    *out = w;
    return ICS_OK;
}

static hid_t create_dataset(hid_t group, const char *name, hid_t type, int rank, const hsize_t *dims,
                            const hsize_t *chunk, const ics_dataset_write_options *options)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t gen = -1;
    if (space >= 0 && dcpl >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0 &&
        H5Pset_chunk(dcpl, rank, chunk) >= 0 && H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0 &&
        (options->deflate_level <= 0 || H5Pset_deflate(dcpl, (unsigned)options->deflate_level) >= 0) &&
        (options->deflate_level > 0 || H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) >= 0))
        gen = H5Dcreate2(group, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (space >= 0) H5Sclose(space);
    if (dcpl >= 0) H5Pclose(dcpl);
    return gen;
}

ics_status ics_dataset_writer_create_split(ics_dataset_writer *w, const char *split, int64_t count,
                                           ics_error *err)
{
    int s = split_index(split);
    if (s < 0) return ICS_FAIL(err, ICS_ERR_INVALID, "%s: unknown split '%s'", w->path, split);
    if (w->images[s] >= 0) return ICS_FAIL(err, ICS_ERR_INVALID, "%s: split '%s' written twice", w->path, split);
    ics_status st = ICS_OK;
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    hid_t group = -1;
    if (gcpl >= 0 && H5Pset_obj_track_times(gcpl, 0) >= 0)
        group = H5Gcreate2(w->file, split, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (group < 0) st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create group /%s", w->path, split);
    if (!st) {
        hsize_t chunk_rows = count < ICS_DATASET_CHUNK_IMAGES ? (hsize_t)(count > 0 ? count : 1)
                                                              : ICS_DATASET_CHUNK_IMAGES;
        hsize_t dims[4] = {(hsize_t)count, (hsize_t)w->meta.height, (hsize_t)w->meta.width,
                           (hsize_t)w->meta.channels};
        hsize_t chunk[4] = {chunk_rows, dims[1], dims[2], dims[3]};
        /* Labels in chunks of 64 images' worth so small files stay small. */
        hsize_t label_chunk[1] = {chunk_rows * 64 < (hsize_t)count ? chunk_rows * 64 : chunk_rows};
        if (label_chunk[0] > (hsize_t)(count > 0 ? count : 1)) label_chunk[0] = (hsize_t)(count > 0 ? count : 1);
        w->images[s] = create_dataset(group, "images", H5T_STD_U8LE, 4, dims, chunk, &w->options);
        w->labels[s] = create_dataset(group, "labels", H5T_STD_I32LE, 1, dims, label_chunk, &w->options);
        if (w->images[s] < 0 || w->labels[s] < 0)
            st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create /%s/images and labels", w->path, split);
        w->counts[s] = count;
    }
    if (group >= 0) H5Gclose(group);
    if (gcpl >= 0) H5Pclose(gcpl);
    return agree(w, st, err);
}

ics_status ics_dataset_writer_write(ics_dataset_writer *w, const char *split, int64_t first,
                                    int64_t n, const uint8_t *images, const int32_t *labels,
                                    ics_error *err)
{
    int s = split_index(split);
    if (s < 0 || w->images[s] < 0)
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: split '%s' was not created", w->path, split ? split : "?");
    if (first < 0 || n < 0 || first + n > w->counts[s])
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: rows %lld..%lld outside /%s (%lld rows)", w->path,
                        (long long)first, (long long)(first + n), split, (long long)w->counts[s]);
    if (n == 0) return ICS_OK;
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= w->meta.num_classes)
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: label %d of row %lld outside 0..%d", w->path,
                            (int)labels[i], (long long)(first + i), w->meta.num_classes - 1);
    hsize_t start[4] = {(hsize_t)first, 0, 0, 0};
    hsize_t count[4] = {(hsize_t)n, (hsize_t)w->meta.height, (hsize_t)w->meta.width,
                        (hsize_t)w->meta.channels};
    ics_status st = ICS_OK;
    for (int which = 0; which < 2 && !st; which++) {
        hid_t dset = which ? w->labels[s] : w->images[s];
        int rank = which ? 1 : 4;
        hid_t fspace = H5Dget_space(dset);
        hid_t mspace = H5Screate_simple(rank, count, NULL);
        if (fspace < 0 || mspace < 0 ||
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dwrite(dset, which ? H5T_NATIVE_INT32 : H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT,
                     which ? (const void *)labels : (const void *)images) < 0)
            st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write rows %lld..%lld of /%s/%s", w->path,
                          (long long)first, (long long)(first + n), split, which ? "labels" : "images");
        if (fspace >= 0) H5Sclose(fspace);
        if (mspace >= 0) H5Sclose(mspace);
    }
    return st;
}

static ics_status write_root_attributes(ics_dataset_writer *w, ics_error *err)
{
    const ics_dataset_meta *m = &w->meta;
    hid_t f = w->file;
    const char *p = w->path;
    ics_status st = ics_h5_attr_put_string(f, "format", m->is_shard ? ICS_SHARD_FORMAT : ICS_DATASET_FORMAT, p, err);
    if (!st) st = ics_h5_attr_put_i64(f, "format_version", ICS_DATASET_FORMAT_VERSION, p, err);
    if (!st) st = ics_h5_attr_put_strings(f, "classes", m->class_names, m->num_classes, p, err);
    if (!st) st = ics_h5_attr_put_i64(f, "height", m->height, p, err);
    if (!st) st = ics_h5_attr_put_i64(f, "width", m->width, p, err);
    if (!st) st = ics_h5_attr_put_i64(f, "channels", m->channels, p, err);
    if (!st) st = ics_h5_attr_put_f64s(f, "mean", m->mean, m->channels, p, err);
    if (!st) st = ics_h5_attr_put_f64s(f, "std", m->std, m->channels, p, err);
    if (!st) st = ics_h5_attr_put_string(f, "source", m->source ? m->source : "", p, err);
    if (!st) st = ics_h5_attr_put_string(f, "source_sha256", m->source_sha256, p, err);
    if (!st && m->is_shard) {
        st = ics_h5_attr_put_i64(f, "shard_index", m->shard_index, p, err);
        if (!st) st = ics_h5_attr_put_i64(f, "shard_count", m->shard_count, p, err);
        if (!st) st = ics_h5_attr_put_u64(f, "seed", m->seed, p, err);
    }
    return st;
}

void ics_dataset_writer_abort(ics_dataset_writer *w)
{
    if (!w) return;
    int parallel = w->options.parallel;
    char *temp = w->temp_path;
    w->temp_path = NULL;
    writer_free(w);
    if (!parallel || ics_dist_rank() == 0) remove(temp);
    free(temp);
}

ics_status ics_dataset_writer_commit(ics_dataset_writer *w, ics_error *err)
{
    ics_status st = agree(w, write_root_attributes(w, err), err);
    for (int s = 0; !st && s < 3; s++) {
        if (w->images[s] >= 0 && H5Dclose(w->images[s]) < 0) st = ICS_FAIL(err, ICS_ERR_IO, "%s: closing /%s/images failed", w->path, ics_dataset_splits[s]);
        if (w->labels[s] >= 0 && H5Dclose(w->labels[s]) < 0 && !st) st = ICS_FAIL(err, ICS_ERR_IO, "%s: closing /%s/labels failed", w->path, ics_dataset_splits[s]);
        w->images[s] = w->labels[s] = -1;
    }
    if (!st) {
        herr_t rc = H5Fclose(w->file);
        w->file = -1;
        if (rc < 0) st = ICS_FAIL(err, ICS_ERR_IO, "%s: flushing and closing failed", w->path);
    }
    st = agree(w, st, err);
    if (!st && (!w->options.parallel || ics_dist_rank() == 0) && rename(w->temp_path, w->path) != 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot rename from %s: %s", w->path, w->temp_path,
                      strerror(errno));
    st = agree(w, st, err);
    if (st) {
        ics_dataset_writer_abort(w);
        return st;
    }
    writer_free(w);
    return ICS_OK;
}

ics_status ics_dataset_write_file(const char *path, const ics_dataset_meta *meta,
                                  const ics_dataset_write_options *options,
                                  const uint8_t *const images[3], const int32_t *const labels[3],
                                  const int64_t counts[3], ics_error *err)
{
    ics_dataset_writer *w;
    ics_status st = ics_dataset_writer_create(path, meta, options, &w, err);
    if (st) return st;
    for (int s = 0; s < 3 && !st; s++) {
        if (counts[s] <= 0) continue;
        st = ics_dataset_writer_create_split(w, ics_dataset_splits[s], counts[s], err);
        if (!st) st = ics_dataset_writer_write(w, ics_dataset_splits[s], 0, counts[s], images[s], labels[s], err);
    }
    if (st) {
        ics_dataset_writer_abort(w);
        return st;
    }
    return ics_dataset_writer_commit(w, err);
}

/* ---------------------------------------------------------------- reader */

struct ics_dataset_reader {
    char *path;
    hid_t file;
    hid_t images[3], labels[3];
    int64_t counts[3];
    ics_dataset_meta meta;
};

void ics_dataset_close(ics_dataset_reader *r)
{
    if (!r) return;
    for (int s = 0; s < 3; s++) {
        if (r->images[s] >= 0) H5Dclose(r->images[s]);
        if (r->labels[s] >= 0) H5Dclose(r->labels[s]);
    }
    if (r->file >= 0) H5Fclose(r->file);
    ics_dataset_meta_clear(&r->meta);
    free(r->path);
    free(r);
}

/* Checks that a dataset has the expected type (integer of the given size
 * and signedness) and shape, returns its row count. */
static ics_status check_dataset(ics_dataset_reader *r, const char *split, const char *name,
                                hid_t dset, size_t elem_size, H5T_sign_t sign, int rank,
                                const hsize_t *tail, hsize_t *rows, ics_error *err)
{
    hid_t type = H5Dget_type(dset);
    hid_t space = H5Dget_space(dset);
    hsize_t dims[8];
    int got_rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    int ok = type >= 0 && H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == elem_size &&
             H5Tget_sign(type) == sign && got_rank == rank &&
             H5Sget_simple_extent_dims(space, dims, NULL) == rank;
    for (int i = 1; ok && i < rank; i++) ok = dims[i] == tail[i - 1];
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (!ok)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: /%s/%s has the wrong type or shape (want %s)", r->path,
                        split, name, rank == 4 ? "uint8 [N,height,width,channels]" : "int32 [N]");
    *rows = dims[0];
    return ICS_OK;
}

static ics_status read_meta(ics_dataset_reader *r, ics_error *err)
{
    hid_t f = r->file;
    const char *p = r->path;
    char *format = NULL;
    if (!ics_h5_attr_exists(f, "format"))
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: not an icsparse dataset (no 'format' attribute)", p);
    ics_status st = ics_h5_attr_get_string(f, "format", &format, p, err);
    if (st) return st;
    int is_dataset = strcmp(format, ICS_DATASET_FORMAT) == 0;
    int is_shard = strcmp(format, ICS_SHARD_FORMAT) == 0;
    if (!is_dataset && !is_shard) {
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: format '%s' is not an icsparse dataset (want '%s' or '%s')",
                      p, format, ICS_DATASET_FORMAT, ICS_SHARD_FORMAT);
        free(format);
        return st;
    }
    free(format);
    int64_t version = 0, h = 0, wd = 0, c = 0;
    st = ics_h5_attr_get_i64(f, "format_version", &version, p, err);
    if (!st && version != ICS_DATASET_FORMAT_VERSION)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: format_version %lld is not supported (this icsparse reads %d)",
                        p, (long long)version, ICS_DATASET_FORMAT_VERSION);
    if (!st) st = ics_h5_attr_get_i64(f, "height", &h, p, err);
    if (!st) st = ics_h5_attr_get_i64(f, "width", &wd, p, err);
    if (!st) st = ics_h5_attr_get_i64(f, "channels", &c, p, err);
    if (st) return st;
    if (h < 1 || wd < 1 || c < 1 || c > ICS_DATASET_MAX_CHANNELS || h > 65536 || wd > 65536)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: bad image shape %lldx%lldx%lld", p, (long long)h,
                        (long long)wd, (long long)c);
    r->meta.height = (int)h;
    r->meta.width = (int)wd;
    r->meta.channels = (int)c;
    st = ics_h5_attr_get_strings(f, "classes", &r->meta.class_names, &r->meta.num_classes, p, err);
    if (!st && r->meta.num_classes < 1) st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: no classes", p);
    if (!st) st = ics_h5_attr_get_f64s(f, "mean", r->meta.mean, (int)c, p, err);
    if (!st) st = ics_h5_attr_get_f64s(f, "std", r->meta.std, (int)c, p, err);
    if (!st) st = ics_h5_attr_get_string(f, "source", &r->meta.source, p, err);
    char *digest = NULL;
    if (!st) st = ics_h5_attr_get_string(f, "source_sha256", &digest, p, err);
    if (!st) snprintf(r->meta.source_sha256, sizeof r->meta.source_sha256, "%s", digest);
    free(digest);
    if (!st && is_shard) {
        int64_t index = 0, count = 0;
        r->meta.is_shard = 1;
        st = ics_h5_attr_get_i64(f, "shard_index", &index, p, err);
        if (!st) st = ics_h5_attr_get_i64(f, "shard_count", &count, p, err);
        if (!st) st = ics_h5_attr_get_u64(f, "seed", &r->meta.seed, p, err);
        if (!st && (count < 1 || index < 0 || index >= count))
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: shard_index %lld outside shard_count %lld", p,
                          (long long)index, (long long)count);
        r->meta.shard_index = (int)index;
        r->meta.shard_count = (int)count;
    }
    return st;
}

ics_status ics_dataset_open(const char *path, ics_dataset_reader **out, ics_error *err)
{
    ics_h5_quiet();
    *out = NULL;
    FILE *probe = fopen(path, "rb");
    if (!probe) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fclose(probe);
    if (H5Fis_hdf5(path) <= 0)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: not an HDF5 file", path);
    ics_dataset_reader *r = ics_calloc(1, sizeof *r, "dataset reader", err);
    if (!r) return ICS_ERR_NOMEM;
    for (int s = 0; s < 3; s++) r->images[s] = r->labels[s] = -1;
    r->path = ics_strdup(path, err);
    r->file = r->path ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    ics_status st = !r->path ? ICS_ERR_NOMEM : ICS_OK;
    if (!st && r->file < 0) st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: HDF5 cannot open it (damaged?)", path);
    if (!st) st = read_meta(r, err);
    hsize_t tail[3] = {(hsize_t)r->meta.height, (hsize_t)r->meta.width, (hsize_t)r->meta.channels};
    for (int s = 0; !st && s < 3; s++) {
        const char *split = ics_dataset_splits[s];
        if (H5Lexists(r->file, split, H5P_DEFAULT) <= 0) continue;
        char name[32];
        snprintf(name, sizeof name, "%s/images", split);
        r->images[s] = H5Dopen2(r->file, name, H5P_DEFAULT);
        snprintf(name, sizeof name, "%s/labels", split);
        r->labels[s] = H5Dopen2(r->file, name, H5P_DEFAULT);
        if (r->images[s] < 0 || r->labels[s] < 0) {
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: /%s lacks 'images' or 'labels'", path, split);
            break;
        }
        hsize_t n_images = 0, n_labels = 0;
        st = check_dataset(r, split, "images", r->images[s], 1, H5T_SGN_NONE, 4, tail, &n_images, err);
        if (!st) st = check_dataset(r, split, "labels", r->labels[s], 4, H5T_SGN_2, 1, tail, &n_labels, err);
        if (!st && n_images != n_labels)
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: /%s has %llu images but %llu labels", path, split,
                          (unsigned long long)n_images, (unsigned long long)n_labels);
        r->counts[s] = (int64_t)n_images;
    }
    if (st) {
        ics_dataset_close(r);
        return st;
    }
    *out = r;
    return ICS_OK;
}

const ics_dataset_meta *ics_dataset_reader_meta(const ics_dataset_reader *r) { return &r->meta; }
const char *ics_dataset_reader_path(const ics_dataset_reader *r) { return r->path; }

int64_t ics_dataset_count(const ics_dataset_reader *r, const char *split)
{
    int s = split_index(split);
    return s < 0 ? 0 : r->counts[s];
}

ics_status ics_dataset_read(ics_dataset_reader *r, const char *split, int64_t first, int64_t n,
                            uint8_t *images, int32_t *labels, ics_error *err)
{
    int s = split_index(split);
    if (s < 0 || r->images[s] < 0)
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: no split '%s'", r->path, split);
    if (first < 0 || n < 0 || first + n > r->counts[s])
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: rows %lld..%lld outside /%s (%lld rows)", r->path,
                        (long long)first, (long long)(first + n), split, (long long)r->counts[s]);
    if (n == 0) return ICS_OK;
    hsize_t start[4] = {(hsize_t)first, 0, 0, 0};
    hsize_t count[4] = {(hsize_t)n, (hsize_t)r->meta.height, (hsize_t)r->meta.width,
                        (hsize_t)r->meta.channels};
    for (int which = 0; which < 2; which++) {
        void *buf = which ? (void *)labels : (void *)images;
        if (!buf) continue;
        hid_t dset = which ? r->labels[s] : r->images[s];
        hid_t fspace = H5Dget_space(dset);
        hid_t mspace = H5Screate_simple(which ? 1 : 4, count, NULL);
        herr_t rc = -1;
        if (fspace >= 0 && mspace >= 0 &&
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0)
            rc = H5Dread(dset, which ? H5T_NATIVE_INT32 : H5T_NATIVE_UINT8, mspace, fspace,
                         H5P_DEFAULT, buf);
        if (fspace >= 0) H5Sclose(fspace);
        if (mspace >= 0) H5Sclose(mspace);
        if (rc < 0)
            return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot read rows %lld..%lld of /%s/%s (damaged?)",
                            r->path, (long long)first, (long long)(first + n), split,
                            which ? "labels" : "images");
    }
    for (int64_t i = 0; labels && i < n; i++)
        if (labels[i] < 0 || labels[i] >= r->meta.num_classes)
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: /%s/labels[%lld] = %d is outside 0..%d", r->path,
                            split, (long long)(first + i), (int)labels[i], r->meta.num_classes - 1);
    return ICS_OK;
}
