/* Protocol-2 pickle writer: see pickle_writer.h. Integer and float
 * encodings follow CPython's Modules/_pickle.c choices (smallest BININT
 * form that fits, LONG1 beyond 32 bits), so our bytes resemble torch's. */
#include "ics_build_config.h"
#include "io/pickle_writer.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

#define MAX_NESTING 64

enum {
    OP_BININT = 'J',
    OP_BININT1 = 'K',
    OP_BININT2 = 'M',
    OP_LONG1 = 0x8a,
    OP_BINFLOAT = 'G',
    OP_BINUNICODE = 'X',
    OP_GLOBAL = 'c'
};

void ics_pickle_writer_init(ics_pickle_writer *w, ics_error *err)
{
    memset(w, 0, sizeof *w);
    w->err = err;
    ics_pickle_emit_op(w, ICS_PICKLE_PROTO);
    ics_pickle_emit_op(w, 2);
}

void ics_pickle_writer_free(ics_pickle_writer *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

static void emit(ics_pickle_writer *w, const void *p, size_t n)
{
    if (w->status != ICS_OK) return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *buf = ics_realloc(w->buf, cap, "pickle output", w->err);
        if (!buf) {
            w->status = ICS_ERR_NOMEM;
            return;
        }
        w->buf = buf;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void emit_le(ics_pickle_writer *w, uint64_t v, int n)
{
    uint8_t b[8];
    for (int i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    emit(w, b, (size_t)n);
}

void ics_pickle_emit_op(ics_pickle_writer *w, uint8_t op)
{
    emit(w, &op, 1);
}

void ics_pickle_emit_int(ics_pickle_writer *w, int64_t v)
{
    if (v >= 0 && v <= 0xFF) {
        ics_pickle_emit_op(w, OP_BININT1);
        emit_le(w, (uint64_t)v, 1);
    } else if (v >= 0 && v <= 0xFFFF) {
        ics_pickle_emit_op(w, OP_BININT2);
        emit_le(w, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        ics_pickle_emit_op(w, OP_BININT);
        emit_le(w, (uint64_t)v, 4);
    } else {
        /* LONG1: the shortest little-endian two's complement that keeps
         * the sign (9 bytes never needed for int64) */
        uint64_t u = (uint64_t)v;
        int n = 8;
        while (n > 1) {
            uint8_t top = (uint8_t)(u >> (8 * (n - 1))), next = (uint8_t)(u >> (8 * (n - 2)));
            if ((top == 0x00 && !(next & 0x80)) || (top == 0xFF && (next & 0x80)))
                n--;
            else
                break;
        }
        ics_pickle_emit_op(w, OP_LONG1);
        ics_pickle_emit_op(w, (uint8_t)n);
        emit_le(w, u, n);
    }
}

void ics_pickle_emit_float(ics_pickle_writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint8_t b[9] = {OP_BINFLOAT};
    for (int i = 0; i < 8; i++)
        b[1 + i] = (uint8_t)(bits >> (56 - 8 * i)); /* big-endian */
    emit(w, b, sizeof b);
}

void ics_pickle_emit_string(ics_pickle_writer *w, const char *s, size_t len)
{
    if (w->status == ICS_OK && len > 0xFFFFFFFFu) {
        w->status =
            ICS_FAIL(w->err, ICS_ERR_INVALID, "string of %zu bytes is too long to pickle", len);
        return;
    }
    ics_pickle_emit_op(w, OP_BINUNICODE);
    emit_le(w, len, 4);
    emit(w, s, len);
}

void ics_pickle_emit_global(ics_pickle_writer *w, const char *module, const char *name)
{
    ics_pickle_emit_op(w, OP_GLOBAL);
    emit(w, module, strlen(module));
    ics_pickle_emit_op(w, '\n');
    emit(w, name, strlen(name));
    ics_pickle_emit_op(w, '\n');
}

void ics_pickle_emit_empty_ordered_dict(ics_pickle_writer *w)
{
    ics_pickle_emit_global(w, "collections", "OrderedDict");
    ics_pickle_emit_op(w, ICS_PICKLE_EMPTY_TUPLE);
    ics_pickle_emit_op(w, ICS_PICKLE_REDUCE);
}

void ics_pickle_emit_object_begin(ics_pickle_writer *w, const char *module, const char *name)
{
    ics_pickle_emit_global(w, module, name);
    ics_pickle_emit_op(w, ICS_PICKLE_EMPTY_TUPLE);
    ics_pickle_emit_op(w, ICS_PICKLE_NEWOBJ);
    ics_pickle_emit_op(w, ICS_PICKLE_EMPTY_DICT);
    ics_pickle_emit_op(w, ICS_PICKLE_MARK);
}

void ics_pickle_emit_object_end(ics_pickle_writer *w)
{
    ics_pickle_emit_op(w, ICS_PICKLE_SETITEMS);
    ics_pickle_emit_op(w, ICS_PICKLE_BUILD);
}

/* A tuple of ints (the empty tuple for 0 dims). */
static void emit_int_tuple(ics_pickle_writer *w, const int64_t *v, int n)
{
    if (n == 0) {
        ics_pickle_emit_op(w, ICS_PICKLE_EMPTY_TUPLE);
        return;
    }
    ics_pickle_emit_op(w, ICS_PICKLE_MARK);
    for (int i = 0; i < n; i++)
        ics_pickle_emit_int(w, v[i]);
    ics_pickle_emit_op(w, ICS_PICKLE_TUPLE);
}

void ics_pickle_emit_rebuild_tensor(ics_pickle_writer *w, const char *storage_class,
                                    const char *key, int64_t numel, int ndim, const int64_t *shape,
                                    int requires_grad)
{
    if (w->status == ICS_OK && (ndim < 0 || ndim > ICS_PV_MAX_DIMS)) {
        w->status =
            ICS_FAIL(w->err, ICS_ERR_INVALID, "tensor of %d dimensions cannot be pickled", ndim);
        return;
    }
    int64_t stride[ICS_PV_MAX_DIMS];
    /* contiguous strides as torch computes them: sizes of 0 count as 1 */
    int64_t acc = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        stride[d] = acc;
        acc *= shape[d] > 0 ? shape[d] : 1;
    }
    ics_pickle_emit_global(w, "torch._utils", "_rebuild_tensor_v2");
    ics_pickle_emit_op(w, ICS_PICKLE_MARK);
    ics_pickle_emit_op(w, ICS_PICKLE_MARK);
    ics_pickle_emit_string(w, "storage", 7);
    ics_pickle_emit_global(w, "torch", storage_class);
    ics_pickle_emit_string(w, key, strlen(key));
    ics_pickle_emit_string(w, "cpu", 3);
    ics_pickle_emit_int(w, numel);
    ics_pickle_emit_op(w, ICS_PICKLE_TUPLE);
    ics_pickle_emit_op(w, ICS_PICKLE_BINPERSID);
    ics_pickle_emit_int(w, 0);
    emit_int_tuple(w, shape, ndim);
    emit_int_tuple(w, stride, ndim);
    ics_pickle_emit_op(w, requires_grad ? ICS_PICKLE_NEWTRUE : ICS_PICKLE_NEWFALSE);
    ics_pickle_emit_empty_ordered_dict(w);
    ics_pickle_emit_op(w, ICS_PICKLE_TUPLE);
    ics_pickle_emit_op(w, ICS_PICKLE_REDUCE);
}

typedef struct hooks {
    ics_pickle_tensor_fn tensor;
    ics_pickle_dict_attrs_fn attrs;
    void *ctx;
} hooks;

static ics_status emit_value(ics_pickle_writer *w, const ics_pv *v, const hooks *h, int depth)
{
    if (w->status != ICS_OK) return w->status;
    if (depth > MAX_NESTING)
        return w->status = ICS_FAIL(w->err, ICS_ERR_INVALID, "value nested deeper than %d levels",
                                    MAX_NESTING);
    switch (v->kind) {
    case ICS_PV_NONE:
        ics_pickle_emit_op(w, ICS_PICKLE_NONE);
        break;
    case ICS_PV_BOOL:
        ics_pickle_emit_op(w, v->u.boolean ? ICS_PICKLE_NEWTRUE : ICS_PICKLE_NEWFALSE);
        break;
    case ICS_PV_INT:
        ics_pickle_emit_int(w, v->u.i);
        break;
    case ICS_PV_FLOAT:
        ics_pickle_emit_float(w, v->u.f);
        break;
    case ICS_PV_STRING:
        ics_pickle_emit_string(w, v->u.str.data, v->u.str.len);
        break;
    case ICS_PV_TUPLE: {
        size_t n = v->u.seq.len;
        if (n == 0) {
            ics_pickle_emit_op(w, ICS_PICKLE_EMPTY_TUPLE);
            break;
        }
        if (n > 3) ics_pickle_emit_op(w, ICS_PICKLE_MARK);
        for (size_t i = 0; i < n; i++)
            emit_value(w, v->u.seq.items[i], h, depth + 1);
        static const uint8_t small[] = {0, ICS_PICKLE_TUPLE1, ICS_PICKLE_TUPLE2, ICS_PICKLE_TUPLE3};
        ics_pickle_emit_op(w, n <= 3 ? small[n] : ICS_PICKLE_TUPLE);
        break;
    }
    case ICS_PV_LIST:
        ics_pickle_emit_op(w, ICS_PICKLE_EMPTY_LIST);
        if (v->u.seq.len == 0) break;
        ics_pickle_emit_op(w, ICS_PICKLE_MARK);
        for (size_t i = 0; i < v->u.seq.len; i++)
            emit_value(w, v->u.seq.items[i], h, depth + 1);
        ics_pickle_emit_op(w, ICS_PICKLE_APPENDS);
        break;
    case ICS_PV_DICT: {
        /* the attributes, if any, are set after the items: the object is
         * OrderedDict(), SETITEMS, then {attributes} BUILD, as pickle
         * writes an OrderedDict subclass instance with a __dict__ */
        const ics_pv *attrs = h->attrs ? h->attrs(h->ctx, v) : NULL;
        if (attrs && (!v->u.dict.ordered || attrs->kind != ICS_PV_DICT))
            return w->status =
                       ICS_FAIL(w->err, ICS_ERR_INVALID,
                                "attributes (a dict) can only be pickled on an OrderedDict");
        if (v->u.dict.ordered)
            ics_pickle_emit_empty_ordered_dict(w);
        else
            ics_pickle_emit_op(w, ICS_PICKLE_EMPTY_DICT);
        if (v->u.dict.len > 0) {
            ics_pickle_emit_op(w, ICS_PICKLE_MARK);
            for (size_t i = 0; i < v->u.dict.len; i++) {
                emit_value(w, v->u.dict.keys[i], h, depth + 1);
                emit_value(w, v->u.dict.values[i], h, depth + 1);
            }
            ics_pickle_emit_op(w, ICS_PICKLE_SETITEMS);
        }
        if (attrs) {
            emit_value(w, attrs, h, depth + 1);
            ics_pickle_emit_op(w, ICS_PICKLE_BUILD);
        }
        break;
    }
    case ICS_PV_TENSOR:
        if (!h->tensor)
            return w->status = ICS_FAIL(w->err, ICS_ERR_INVALID,
                                        "cannot pickle a tensor outside a .pth archive");
        if (w->status == ICS_OK) {
            ics_status st = h->tensor(h->ctx, w, v);
            if (st != ICS_OK && w->status == ICS_OK) w->status = st;
        }
        break;
    default:
        return w->status =
                   ICS_FAIL(w->err, ICS_ERR_INVALID,
                            "cannot pickle this %s%s%s: torch.load(weights_only=True) "
                            "would refuse it",
                            ics_pv_kind_name(v->kind), v->kind == ICS_PV_OBJECT ? " of class " : "",
                            v->kind == ICS_PV_OBJECT ? v->u.object.class_name : "");
    }
    return w->status;
}

ics_status ics_pickle_emit_value(ics_pickle_writer *w, const ics_pv *v, ics_pickle_tensor_fn tensor,
                                 void *ctx)
{
    hooks h = {tensor, NULL, ctx};
    return emit_value(w, v, &h, 0);
}

ics_status ics_pickle_emit_value_attrs(ics_pickle_writer *w, const ics_pv *v,
                                       ics_pickle_tensor_fn tensor, ics_pickle_dict_attrs_fn attrs,
                                       void *ctx)
{
    hooks h = {tensor, attrs, ctx};
    return emit_value(w, v, &h, 0);
}

ics_status ics_pickle_writer_finish(ics_pickle_writer *w)
{
    ics_pickle_emit_op(w, ICS_PICKLE_STOP);
    return w->status;
}
