/* The checkpoint format: see include/icsparse/checkpoint.h. */
#include "ics_build_config.h"
#include <icsparse/checkpoint.h>

#include "core/alloc.h"
#include "data/h5attr.h"
#include "data/sha256.h"
#include "io/h5_tensor.h"
#include "train/ema.h"
#include "train/optim.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ics_checkpoint_writer {
    char *path;
    char *tmp_path;
    hid_t file;
};

struct ics_checkpoint_reader {
    char *path;
    hid_t file;
    ics_checkpoint_info info;
};

void ics_checkpoint_info_init(ics_checkpoint_info *info)
{
    memset(info, 0, sizeof *info);
    info->val_loss = info->val_top1 = info->val_top5 = NAN;
    info->test_loss = info->test_top1 = info->test_top5 = NAN;
    info->world_size = 1;
    snprintf(info->kind, sizeof info->kind, "last");
}

/* ---- writing ------------------------------------------------------------ */

ics_status ics_checkpoint_begin(const char *path, ics_checkpoint_writer **out, ics_error *err)
{
    *out = NULL;
    ics_h5_quiet();
    ics_checkpoint_writer *w = ics_calloc(1, sizeof *w, "a checkpoint writer", err);
    if (!w) return ICS_ERR_NOMEM;
    w->file = -1;
    size_t len = strlen(path) + 32;
    w->path = ics_strdup(path, err);
    w->tmp_path = ics_malloc(len, "a checkpoint path", err);
    if (!w->path || !w->tmp_path) {
        free(w->path);
        free(w->tmp_path);
        free(w);
        return ICS_ERR_NOMEM;
    }
    snprintf(w->tmp_path, len, "%s.tmp-%ld", path, (long)getpid());
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (w->file < 0) {
        ics_status st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create checkpoint (%s)", w->tmp_path,
                                 errno ? strerror(errno) : "HDF5 error");
        free(w->path);
        free(w->tmp_path);
        free(w);
        return st;
    }
    ics_status st = ics_h5_attr_put_string(w->file, "format", ICS_CHECKPOINT_FORMAT, w->tmp_path, err);
    if (!st) st = ics_h5_attr_put_i64(w->file, "format_version", ICS_CHECKPOINT_VERSION, w->tmp_path, err);
    if (!st) st = ics_h5_attr_put_i64(w->file, "complete", 0, w->tmp_path, err);
    if (st) {
        ics_checkpoint_abort(w);
        return st;
    }
    *out = w;
    return ICS_OK;
}

static ics_status put_f64(ics_checkpoint_writer *w, const char *name, double v, ics_error *err)
{
    return ics_h5_attr_put_f64s(w->file, name, &v, 1, w->tmp_path, err);
}

ics_status ics_checkpoint_put_info(ics_checkpoint_writer *w, const ics_checkpoint_info *info, ics_error *err)
{
    const char *f = w->tmp_path;
    hid_t o = w->file;
    const ics_model_options *mo = &info->model_options;
    ics_status st = ics_h5_attr_put_string(o, "arch", info->arch, f, err);
    if (!st) st = ics_h5_attr_put_i64(o, "num_classes", mo->num_classes, f, err);
    if (!st) st = ics_h5_attr_put_i64(o, "in_channels", mo->in_channels, f, err);
    if (!st) st = ics_h5_attr_put_i64(o, "in_h", mo->in_h, f, err);
    if (!st) st = ics_h5_attr_put_i64(o, "in_w", mo->in_w, f, err);
    if (!st) st = put_f64(w, "width_mult", mo->width_mult, err);
    if (!st) st = ics_h5_attr_put_i64(o, "cifar_stem", mo->cifar_stem, f, err);
    if (!st) st = put_f64(w, "dropout", mo->dropout, err);
    if (!st) st = put_f64(w, "epoch", info->epoch, err);
    if (!st) st = ics_h5_attr_put_i64(o, "global_step", info->global_step, f, err);
    if (!st) st = ics_h5_attr_put_i64(o, "stage", info->stage, f, err);
    if (!st) st = ics_h5_attr_put_i64(o, "world_size", info->world_size, f, err);
    if (!st) st = ics_h5_attr_put_i64(o, "steps_per_epoch", info->steps_per_epoch, f, err);
    if (!st) st = ics_h5_attr_put_string(o, "kind", info->kind, f, err);
    if (!st) st = put_f64(w, "val_loss", info->val_loss, err);
    if (!st) st = put_f64(w, "val_top1", info->val_top1, err);
    if (!st) st = put_f64(w, "val_top5", info->val_top5, err);
    if (!st) st = put_f64(w, "test_loss", info->test_loss, err);
    if (!st) st = put_f64(w, "test_top1", info->test_top1, err);
    if (!st) st = put_f64(w, "test_top5", info->test_top5, err);
    if (!st) st = put_f64(w, "sparsity", info->sparsity, err);
    if (!st) st = ics_h5_attr_put_i64(o, "qat_active", info->qat_active, f, err);
    return st;
}

/* "/group/name" into buf. */
static const char *join(char *buf, size_t size, const char *group, const char *name, const char *leaf)
{
    if (leaf)
        snprintf(buf, size, "/%s/%s/%s", group, name, leaf);
    else
        snprintf(buf, size, "/%s/%s", group, name);
    return buf;
}

void ics_checkpoint_model_sha256(ics_model *model, char hex[65])
{
    ics_sha256 ctx;
    ics_sha256_init(&ctx);
    for (int i = 0; i < ics_model_num_tensors(model); i++) {
        const ics_tensor_info *t = ics_model_tensor(model, i);
        if (t->kind == ICS_TENSOR_COUNTER)
            ics_sha256_update(&ctx, ics_model_tensor_counter(model, i), sizeof(int64_t));
        else
            ics_sha256_update(&ctx, ics_model_tensor_data(model, i), (size_t)t->numel * sizeof(float));
    }
    uint8_t digest[32];
    ics_sha256_final(&ctx, digest);
    ics_sha256_hex(digest, hex);
}

ics_status ics_checkpoint_put_model(ics_checkpoint_writer *w, ics_model *model, ics_error *err)
{
    char path[512];
    char hex[65];
    ics_checkpoint_model_sha256(model, hex);
    ics_status hst = ics_h5_attr_put_string(w->file, "model_sha256", hex, w->tmp_path, err);
    if (hst) return hst;
    for (int i = 0; i < ics_model_num_tensors(model); i++) {
        const ics_tensor_info *t = ics_model_tensor(model, i);
        ics_status st;
        join(path, sizeof path, "model", t->name, NULL);
        if (t->kind == ICS_TENSOR_COUNTER)
            st = ics_h5_write_tensor(w->file, path, ICS_H5_I64, ics_model_tensor_counter(model, i), 0,
                                     t->shape, w->tmp_path, err);
        else
            st = ics_h5_write_tensor(w->file, path, ICS_H5_F32, ics_model_tensor_data(model, i), t->ndim,
                                     t->shape, w->tmp_path, err);
        if (st) return st;
    }
    return ICS_OK;
}

ics_status ics_checkpoint_put_optim_attrs(ics_checkpoint_writer *w, const ics_checkpoint_optim_attrs *a,
                                          ics_error *err)
{
    hid_t g = H5Gcreate2(w->file, "/optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create /optimizer", w->tmp_path);
    ics_status st = ics_h5_attr_put_string(g, "kind", a->kind, w->tmp_path, err);
    if (!st) st = ics_h5_attr_put_i64(g, "step_count", a->step_count, w->tmp_path, err);
    if (!st) st = ics_h5_attr_put_f64s(g, "lr", &a->lr, 1, w->tmp_path, err);
    H5Gclose(g);
    return st;
}

ics_status ics_checkpoint_put_optim(ics_checkpoint_writer *w, ics_model *model, struct ics_optim *optim,
                                    ics_error *err)
{
    char path[512];
    ics_checkpoint_optim_attrs a;
    snprintf(a.kind, sizeof a.kind, "%s", ics_optim_kind_name(ics_optim_get_hparams(optim)->kind));
    a.step_count = ics_optim_step_count(optim);
    a.lr = ics_optim_lr(optim);
    ics_status st = ics_checkpoint_put_optim_attrs(w, &a, err);
    for (size_t p = 0; !st && p < ics_optim_param_count(optim); p++) {
        const ics_param_view *v = ics_optim_param(optim, p);
        int ti = ics_model_find_tensor(model, v->name);
        if (ti < 0) return ICS_FAIL(err, ICS_ERR_INVALID, "optimizer parameter %s is not in the model", v->name);
        const ics_tensor_info *t = ics_model_tensor(model, ti);
        for (int s = 0; !st && s < ics_optim_slot_count(optim); s++) {
            join(path, sizeof path, "optimizer", v->name, ics_optim_slot_name(optim, s));
            st = ics_h5_write_tensor(w->file, path, ICS_H5_F32, ics_optim_slot_param(optim, s, p), t->ndim,
                                     t->shape, w->tmp_path, err);
        }
    }
    return st;
}

ics_status ics_checkpoint_put_ema(ics_checkpoint_writer *w, ics_model *model, struct ics_ema *ema,
                                  ics_error *err)
{
    char path[512];
    float *params = ics_ema_params(ema), *buffers = ics_ema_buffers(ema);
    for (int i = 0; i < ics_model_num_tensors(model); i++) {
        const ics_tensor_info *t = ics_model_tensor(model, i);
        if (t->kind == ICS_TENSOR_COUNTER) continue;
        const float *src = (t->kind == ICS_TENSOR_BUFFER ? buffers : params) + t->offset;
        join(path, sizeof path, "ema", t->name, NULL);
        ics_status st = ics_h5_write_tensor(w->file, path, ICS_H5_F32, src, t->ndim, t->shape, w->tmp_path, err);
        if (st) return st;
    }
    hid_t g = H5Gopen2(w->file, "/ema", H5P_DEFAULT);
    if (g < 0) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open /ema", w->tmp_path);
    ics_status st = ics_h5_attr_put_i64(g, "n_averaged", ics_ema_n_averaged(ema), w->tmp_path, err);
    if (!st) st = ics_h5_attr_put_i64(g, "n_updates", ics_ema_n_updates(ema), w->tmp_path, err);
    H5Gclose(g);
    return st;
}

ics_status ics_checkpoint_put_text(ics_checkpoint_writer *w, const char *name, const char *text,
                                   ics_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "/%s", name);
    return ics_h5_write_text(w->file, path, text ? text : "", w->tmp_path, err);
}

ics_status ics_checkpoint_put_tensor(ics_checkpoint_writer *w, const char *path, const float *data,
                                     int ndim, const int64_t *shape, int as_mask, ics_error *err)
{
    if (!as_mask) return ics_h5_write_tensor(w->file, path, ICS_H5_F32, data, ndim, shape, w->tmp_path, err);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    uint8_t *bytes = ics_malloc((size_t)n, "a mask", err);
    if (!bytes) return ICS_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) bytes[i] = data[i] != 0.0f;
    ics_status st = ics_h5_write_tensor(w->file, path, ICS_H5_U8, bytes, ndim, shape, w->tmp_path, err);
    free(bytes);
    return st;
}

ics_status ics_checkpoint_put_u64(ics_checkpoint_writer *w, const char *path, const uint64_t *data,
                                  int64_t rows, int64_t cols, ics_error *err)
{
    int64_t shape[2] = {rows, cols};
    return ics_h5_write_tensor(w->file, path, ICS_H5_U64, data, 2, shape, w->tmp_path, err);
}

static void writer_free(ics_checkpoint_writer *w)
{
    free(w->path);
    free(w->tmp_path);
    free(w);
}

ics_status ics_checkpoint_commit(ics_checkpoint_writer *w, ics_error *err)
{
    ics_status st = ics_h5_attr_put_i64(w->file, "complete", 1, w->tmp_path, err);
    if (!st && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot flush checkpoint", w->tmp_path);
    if (H5Fclose(w->file) < 0 && !st) st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot close checkpoint", w->tmp_path);
    w->file = -1;
    if (!st && rename(w->tmp_path, w->path) != 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "cannot rename %s to %s: %s", w->tmp_path, w->path, strerror(errno));
    if (st) unlink(w->tmp_path);
    writer_free(w);
    return st;
}

void ics_checkpoint_abort(ics_checkpoint_writer *w)
{
    if (!w) return;
    if (w->file >= 0) H5Fclose(w->file);
    unlink(w->tmp_path);
    writer_free(w);
}

/* ---- reading ------------------------------------------------------------ */

static ics_status get_f64(ics_checkpoint_reader *r, const char *name, double *v, ics_error *err)
{
    return ics_h5_attr_get_f64s(r->file, name, v, 1, r->path, err);
}

static ics_status get_int(ics_checkpoint_reader *r, const char *name, int *v, ics_error *err)
{
    int64_t x = 0;
    ics_status st = ics_h5_attr_get_i64(r->file, name, &x, r->path, err);
    *v = (int)x;
    return st;
}

static ics_status read_info(ics_checkpoint_reader *r, ics_error *err)
{
    ics_checkpoint_info *in = &r->info;
    ics_checkpoint_info_init(in);
    char *s = NULL;
    ics_status st = ics_h5_attr_get_string(r->file, "arch", &s, r->path, err);
    if (st) return st;
    snprintf(in->arch, sizeof in->arch, "%s", s);
    free(s);
    double width = 1.0, dropout = -1.0;
    ics_model_options *mo = &in->model_options;
    if (!st) st = get_int(r, "num_classes", &mo->num_classes, err);
    if (!st) st = get_int(r, "in_channels", &mo->in_channels, err);
    if (!st) st = get_int(r, "in_h", &mo->in_h, err);
    if (!st) st = get_int(r, "in_w", &mo->in_w, err);
    if (!st) st = get_f64(r, "width_mult", &width, err);
    if (!st) st = get_int(r, "cifar_stem", &mo->cifar_stem, err);
    if (!st) st = get_f64(r, "dropout", &dropout, err);
    mo->width_mult = (float)width;
    mo->dropout = (float)dropout;
    if (!st) st = get_f64(r, "epoch", &in->epoch, err);
    if (!st) st = ics_h5_attr_get_i64(r->file, "global_step", &in->global_step, r->path, err);
    if (!st) st = get_int(r, "stage", &in->stage, err);
    if (!st) st = get_int(r, "world_size", &in->world_size, err);
    if (!st) st = ics_h5_attr_get_i64(r->file, "steps_per_epoch", &in->steps_per_epoch, r->path, err);
    if (!st) st = ics_h5_attr_get_string(r->file, "kind", &s, r->path, err);
    if (!st) {
        snprintf(in->kind, sizeof in->kind, "%s", s);
        free(s);
    }
    if (!st) st = get_f64(r, "val_loss", &in->val_loss, err);
    if (!st) st = get_f64(r, "val_top1", &in->val_top1, err);
    if (!st) st = get_f64(r, "val_top5", &in->val_top5, err);
    if (!st) st = get_f64(r, "test_loss", &in->test_loss, err);
    if (!st) st = get_f64(r, "test_top1", &in->test_top1, err);
    if (!st) st = get_f64(r, "test_top5", &in->test_top5, err);
    if (!st) st = get_f64(r, "sparsity", &in->sparsity, err);
    if (!st) st = get_int(r, "qat_active", &in->qat_active, err);
    return st;
}

ics_status ics_checkpoint_open(const char *path, ics_checkpoint_reader **out, ics_error *err)
{
    *out = NULL;
    ics_h5_quiet();
    if (access(path, R_OK) != 0)
        return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot read checkpoint: %s", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: not an icsparse checkpoint (not an HDF5 file)", path);
    ics_checkpoint_reader *r = ics_calloc(1, sizeof *r, "a checkpoint reader", err);
    if (!r) return ICS_ERR_NOMEM;
    r->path = ics_strdup(path, err);
    if (!r->path) {
        free(r);
        return ICS_ERR_NOMEM;
    }
    r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ics_status st = ICS_OK;
    if (r->file < 0) st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: cannot open checkpoint (corrupt HDF5 file)", path);
    char *format = NULL;
    if (!st && !ics_h5_attr_exists(r->file, "format"))
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: not an icsparse checkpoint (no format attribute)", path);
    if (!st) st = ics_h5_attr_get_string(r->file, "format", &format, path, err);
    if (!st && strcmp(format, ICS_CHECKPOINT_FORMAT) != 0)
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: format is '%s', expected '%s'", path, format, ICS_CHECKPOINT_FORMAT);
    free(format);
    int64_t version = 0, complete = 0;
    if (!st) st = ics_h5_attr_get_i64(r->file, "format_version", &version, path, err);
    if (!st && version != ICS_CHECKPOINT_VERSION)
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s version %lld is not supported (this icsparse reads version %d)",
                      path, ICS_CHECKPOINT_FORMAT, (long long)version, ICS_CHECKPOINT_VERSION);
    if (!st) st = ics_h5_attr_get_i64(r->file, "complete", &complete, path, err);
    if (!st && complete != 1) st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: incomplete checkpoint", path);
    if (!st) st = read_info(r, err);
    if (st) {
        ics_checkpoint_close(r);
        return st;
    }
    *out = r;
    return ICS_OK;
}

void ics_checkpoint_close(ics_checkpoint_reader *r)
{
    if (!r) return;
    if (r->file >= 0) H5Fclose(r->file);
    free(r->path);
    free(r);
}

const ics_checkpoint_info *ics_checkpoint_get_info(const ics_checkpoint_reader *r) { return &r->info; }
const char *ics_checkpoint_path(const ics_checkpoint_reader *r) { return r->path; }

ics_status ics_checkpoint_get_model(ics_checkpoint_reader *r, ics_model *model, ics_error *err)
{
    char path[512];
    for (int i = 0; i < ics_model_num_tensors(model); i++) {
        const ics_tensor_info *t = ics_model_tensor(model, i);
        join(path, sizeof path, "model", t->name, NULL);
        ics_status st;
        if (t->kind == ICS_TENSOR_COUNTER)
            st = ics_h5_read_tensor(r->file, path, ICS_H5_I64, ics_model_tensor_counter(model, i), 0, t->shape,
                                    r->path, err);
        else
            st = ics_h5_read_tensor(r->file, path, ICS_H5_F32, ics_model_tensor_data(model, i), t->ndim, t->shape,
                                    r->path, err);
        if (st) return st;
    }
    return ICS_OK;
}

ics_status ics_checkpoint_create_model(ics_checkpoint_reader *r, ics_model **out, ics_error *err)
{
    ics_model *model = NULL;
    ics_status st = ics_model_create(r->info.arch, &r->info.model_options, &model, err);
    if (st) return ics_error_prefix(err, "%s: ", r->path);
    st = ics_checkpoint_get_model(r, model, err);
    if (st) {
        ics_model_destroy(model);
        return st;
    }
    *out = model;
    return ICS_OK;
}

int ics_checkpoint_has_optim(const ics_checkpoint_reader *r) { return ics_h5_exists(r->file, "/optimizer"); }
int ics_checkpoint_has_ema(const ics_checkpoint_reader *r) { return ics_h5_exists(r->file, "/ema"); }
int ics_checkpoint_has(const ics_checkpoint_reader *r, const char *path) { return ics_h5_exists(r->file, path); }

ics_status ics_checkpoint_get_optim(ics_checkpoint_reader *r, ics_model *model, struct ics_optim *optim,
                                    ics_error *err)
{
    hid_t g = H5Gopen2(r->file, "/optimizer", H5P_DEFAULT);
    if (g < 0) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: no optimizer state", r->path);
    char *kind = NULL;
    int64_t steps = 0;
    ics_status st = ics_h5_attr_get_string(g, "kind", &kind, r->path, err);
    if (!st) st = ics_h5_attr_get_i64(g, "step_count", &steps, r->path, err);
    H5Gclose(g);
    const char *want = ics_optim_kind_name(ics_optim_get_hparams(optim)->kind);
    if (!st && strcmp(kind, want) != 0)
        st = ICS_FAIL(err, ICS_ERR_CONFIG, "%s: optimizer state is for %s, the run uses %s", r->path, kind, want);
    free(kind);
    char path[512];
    for (size_t p = 0; !st && p < ics_optim_param_count(optim); p++) {
        const ics_param_view *v = ics_optim_param(optim, p);
        int ti = ics_model_find_tensor(model, v->name);
        if (ti < 0) return ICS_FAIL(err, ICS_ERR_INVALID, "optimizer parameter %s is not in the model", v->name);
        const ics_tensor_info *t = ics_model_tensor(model, ti);
        for (int s = 0; !st && s < ics_optim_slot_count(optim); s++) {
            join(path, sizeof path, "optimizer", v->name, ics_optim_slot_name(optim, s));
            st = ics_h5_read_tensor(r->file, path, ICS_H5_F32, ics_optim_slot_param(optim, s, p), t->ndim, t->shape,
                                    r->path, err);
        }
    }
    if (!st) ics_optim_set_step_count(optim, steps);
    return st;
}

ics_status ics_checkpoint_get_optim_attrs(ics_checkpoint_reader *r, ics_checkpoint_optim_attrs *a,
                                          ics_error *err)
{
    memset(a, 0, sizeof *a);
    hid_t g = H5Gopen2(r->file, "/optimizer", H5P_DEFAULT);
    if (g < 0) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: no optimizer state", r->path);
    static const char *const names[] = {"kind", "step_count"};
    ics_status st = ICS_OK;
    for (int i = 0; !st && i < 2; i++)
        if (!ics_h5_attr_exists(g, names[i]))
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: /optimizer has no attribute '%s'", r->path, names[i]);
    char *kind = NULL;
    if (!st) st = ics_h5_attr_get_string(g, "kind", &kind, r->path, err);
    if (!st) snprintf(a->kind, sizeof a->kind, "%s", kind);
    free(kind);
    if (!st) st = ics_h5_attr_get_i64(g, "step_count", &a->step_count, r->path, err);
    /* files written before lr moved into /optimizer hold it on the root */
    hid_t lr_at = ics_h5_attr_exists(g, "lr") ? g : r->file;
    if (!st && !ics_h5_attr_exists(lr_at, "lr"))
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: /optimizer has no attribute 'lr'", r->path);
    if (!st) st = ics_h5_attr_get_f64s(lr_at, "lr", &a->lr, 1, r->path, err);
    H5Gclose(g);
    return st;
}

ics_status ics_checkpoint_get_ema(ics_checkpoint_reader *r, ics_model *model, struct ics_ema *ema,
                                  ics_error *err)
{
    char path[512];
    float *params = ics_ema_params(ema), *buffers = ics_ema_buffers(ema);
    for (int i = 0; i < ics_model_num_tensors(model); i++) {
        const ics_tensor_info *t = ics_model_tensor(model, i);
        if (t->kind == ICS_TENSOR_COUNTER) continue;
        float *dst = (t->kind == ICS_TENSOR_BUFFER ? buffers : params) + t->offset;
        join(path, sizeof path, "ema", t->name, NULL);
        ics_status st = ics_h5_read_tensor(r->file, path, ICS_H5_F32, dst, t->ndim, t->shape, r->path, err);
        if (st) return st;
    }
    hid_t g = H5Gopen2(r->file, "/ema", H5P_DEFAULT);
    if (g < 0) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: no EMA", r->path);
    int64_t n_averaged = 0, n_updates = 0;
    ics_status st = ics_h5_attr_get_i64(g, "n_averaged", &n_averaged, r->path, err);
    if (!st) st = ics_h5_attr_get_i64(g, "n_updates", &n_updates, r->path, err);
    H5Gclose(g);
    if (!st) {
        ics_ema_set_n_averaged(ema, n_averaged);
        ics_ema_set_n_updates(ema, n_updates);
    }
    return st;
}

ics_status ics_checkpoint_get_text(ics_checkpoint_reader *r, const char *name, char **text, ics_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "/%s", name);
    *text = NULL;
    if (!ics_h5_exists(r->file, path)) return ICS_OK;
    return ics_h5_read_text(r->file, path, text, r->path, err);
}

ics_status ics_checkpoint_get_tensor(ics_checkpoint_reader *r, const char *path, float *data, int ndim,
                                     const int64_t *shape, ics_error *err)
{
    return ics_h5_read_tensor(r->file, path, ICS_H5_F32, data, ndim, shape, r->path, err);
}

ics_status ics_checkpoint_get_u64(ics_checkpoint_reader *r, const char *path, uint64_t *data,
                                  int64_t rows, int64_t cols, ics_error *err)
{
    int64_t shape[2] = {rows, cols};
    return ics_h5_read_tensor(r->file, path, ICS_H5_U64, data, 2, shape, r->path, err);
}

typedef struct name_list {
    char **names;
    int count, cap;
    int failed;
} name_list;

static herr_t collect_name(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group, (void)info;
    name_list *l = data;
    if (l->count == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        char **grown = realloc(l->names, sizeof *grown * (size_t)cap);
        if (!grown) return (l->failed = 1, -1);
        l->names = grown;
        l->cap = cap;
    }
    l->names[l->count] = strdup(name);
    if (!l->names[l->count]) return (l->failed = 1, -1);
    l->count++;
    return 0;
}

ics_status ics_checkpoint_list(ics_checkpoint_reader *r, const char *group, char ***names, int *count,
                               ics_error *err)
{
    *names = NULL;
    *count = 0;
    if (!ics_h5_exists(r->file, group)) return ICS_OK;
    hid_t g = H5Gopen2(r->file, group, H5P_DEFAULT);
    if (g < 0) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s is not a group", r->path, group);
    name_list l = {NULL, 0, 0, 0};
    hsize_t idx = 0;
    herr_t rc = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, &l);
    H5Gclose(g);
    if (rc < 0 || l.failed) {
        for (int i = 0; i < l.count; i++) free(l.names[i]);
        free(l.names);
        return l.failed ? ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory listing %s", group)
                        : ICS_FAIL(err, ICS_ERR_FORMAT, "%s: cannot list %s", r->path, group);
    }
    *names = l.names;
    *count = l.count;
    return ICS_OK;
}

ics_status ics_checkpoint_verify_model_checksum(ics_checkpoint_reader *r, ics_model *model, ics_error *err)
{
    char *stored = NULL;
    if (!ics_h5_attr_exists(r->file, "model_sha256"))
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: no model_sha256 attribute", r->path);
    ics_status st = ics_h5_attr_get_string(r->file, "model_sha256", &stored, r->path, err);
    if (st) return st;
    char hex[65];
    ics_checkpoint_model_sha256(model, hex);
    if (strcmp(hex, stored) != 0)
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: model checksum mismatch (stored %.16s..., computed %.16s...): the file "
                      "is damaged", r->path, stored, hex);
    free(stored);
    return st;
}

ics_status ics_checkpoint_tensor_shape(ics_checkpoint_reader *r, const char *path, int *ndim,
                                       int64_t *shape, ics_error *err)
{
    return ics_h5_tensor_shape(r->file, path, ndim, shape, r->path, err);
}
