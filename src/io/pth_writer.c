/* torch.save-compatible writer: see pth_writer.h and docs/FORMATS-PTH.md. */
#include "ics_build_config.h"
#include "io/pth_writer.h"
#include "io/pickle_writer.h"
#include "io/zip_writer.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tensors met while pickling, in key order ("0", "1", ...). */
typedef struct tensor_list {
    const ics_pv **tensors;
    size_t count, cap;
    ics_error *err;
    const ics_pv *dict, *attrs; /* the ordered dict with attributes, and them */
} tensor_list;

static const ics_pv *dict_attrs(void *ctx, const ics_pv *dict)
{
    tensor_list *list = ctx;
    return dict == list->dict ? list->attrs : NULL;
}

static void emit_dims(ics_pickle_writer *w, const int64_t *dims, int ndim)
{
    if (ndim == 0) {
        ics_pickle_emit_op(w, ICS_PICKLE_EMPTY_TUPLE);
        return;
    }
    ics_pickle_emit_op(w, ICS_PICKLE_MARK);
    for (int d = 0; d < ndim; d++)
        ics_pickle_emit_int(w, dims[d]);
    ics_pickle_emit_op(w, ICS_PICKLE_TUPLE);
}

/* What torch.save emits for a tensor:
 *   torch._utils._rebuild_tensor_v2(
 *       persistent_load(('storage', torch.FloatStorage, '<key>', 'cpu', numel)),
 *       0, size, contiguous stride, requires_grad, OrderedDict())
 * wrapped in _rebuild_parameter(tensor, requires_grad, OrderedDict()) for
 * a Parameter. */
static ics_status emit_tensor(void *ctx, ics_pickle_writer *w, const ics_pv *t)
{
    tensor_list *list = ctx;
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 64;
        const ics_pv **p = ics_realloc(list->tensors, cap * sizeof *p, "tensor list", list->err);
        if (!p) return ICS_ERR_NOMEM;
        list->tensors = p;
        list->cap = cap;
    }
    char key[32];
    snprintf(key, sizeof key, "%zu", list->count);
    list->tensors[list->count++] = t;
    int ndim = t->u.tensor.ndim;
    int64_t stride[ICS_PV_MAX_DIMS];
    /* contiguous strides as torch computes them: sizes of 0 count as 1 */
    int64_t acc = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        stride[d] = acc;
        acc *= t->u.tensor.shape[d] > 0 ? t->u.tensor.shape[d] : 1;
    }
    if (t->u.tensor.is_parameter) ics_pickle_emit_global(w, "torch._utils", "_rebuild_parameter");
    if (t->u.tensor.is_parameter) ics_pickle_emit_op(w, ICS_PICKLE_MARK);
    ics_pickle_emit_global(w, "torch._utils", "_rebuild_tensor_v2");
    ics_pickle_emit_op(w, ICS_PICKLE_MARK);
    ics_pickle_emit_op(w, ICS_PICKLE_MARK);
    ics_pickle_emit_string(w, "storage", 7);
    ics_pickle_emit_global(w, "torch", ics_pv_dtype_storage_class(t->u.tensor.dtype));
    ics_pickle_emit_string(w, key, strlen(key));
    ics_pickle_emit_string(w, "cpu", 3);
    ics_pickle_emit_int(w, (int64_t)t->u.tensor.numel);
    ics_pickle_emit_op(w, ICS_PICKLE_TUPLE);
    ics_pickle_emit_op(w, ICS_PICKLE_BINPERSID);
    ics_pickle_emit_int(w, 0);
    emit_dims(w, t->u.tensor.shape, ndim);
    emit_dims(w, stride, ndim);
    ics_pickle_emit_op(w, t->u.tensor.requires_grad ? ICS_PICKLE_NEWTRUE : ICS_PICKLE_NEWFALSE);
    ics_pickle_emit_empty_ordered_dict(w);
    ics_pickle_emit_op(w, ICS_PICKLE_TUPLE);
    ics_pickle_emit_op(w, ICS_PICKLE_REDUCE);
    if (t->u.tensor.is_parameter) {
        ics_pickle_emit_op(w, t->u.tensor.requires_grad ? ICS_PICKLE_NEWTRUE : ICS_PICKLE_NEWFALSE);
        ics_pickle_emit_empty_ordered_dict(w);
        ics_pickle_emit_op(w, ICS_PICKLE_TUPLE);
        ics_pickle_emit_op(w, ICS_PICKLE_REDUCE);
    }
    return w->status;
}

ics_status ics_pth_save(const char *path, const ics_pv *root, const char *folder, ics_error *err)
{
    return ics_pth_save_attrs(path, root, folder, NULL, NULL, err);
}

ics_status ics_pth_save_attrs(const char *path, const ics_pv *root, const char *folder,
                              const ics_pv *dict, const ics_pv *attrs, ics_error *err)
{
    if (!folder) folder = "archive";
    if (!*folder || strchr(folder, '/') || strlen(folder) > 200)
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: bad archive folder name '%s'", path, folder);
    tensor_list list = {.err = err, .dict = dict, .attrs = attrs};
    ics_pickle_writer w;
    ics_pickle_writer_init(&w, err);
    ics_status st = ics_pickle_emit_value_attrs(&w, root, emit_tensor, dict_attrs, &list);
    if (st == ICS_OK) st = ics_pickle_writer_finish(&w);
    if (st != ICS_OK) {
        ics_error_prefix(err, "%s: ", path);
        ics_pickle_writer_free(&w);
        free(list.tensors);
        return st;
    }
    ics_zip_writer *zw = NULL;
    st = ics_zip_writer_open(path, &zw, err);
    char name[256];
    if (st == ICS_OK) {
        snprintf(name, sizeof name, "%s/data.pkl", folder);
        st = ics_zip_writer_add(zw, name, w.buf, w.len, err);
    }
    for (size_t i = 0; i < list.count && st == ICS_OK; i++) {
        const ics_pv *t = list.tensors[i];
        snprintf(name, sizeof name, "%s/data/%zu", folder, i);
        st = ics_zip_writer_add(zw, name, t->u.tensor.data,
                                t->u.tensor.numel * ics_pv_dtype_size(t->u.tensor.dtype), err);
    }
    if (st == ICS_OK) {
        /* torch.save's archive format version */
        snprintf(name, sizeof name, "%s/version", folder);
        st = ics_zip_writer_add(zw, name, "3\n", 2, err);
    }
    if (st == ICS_OK)
        st = ics_zip_writer_close(zw, err);
    else
        ics_zip_writer_abort(zw);
    ics_pickle_writer_free(&w);
    free(list.tensors);
    return st;
}
