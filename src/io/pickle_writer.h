/*
 * A pickle writer, protocol 2 (what torch.save writes), limited to what
 * torch.load(weights_only=True) accepts: None, bool, int, float, str, tuple,
 * list, dict and collections.OrderedDict, and tensors through a hook that
 * the caller provides (pth_writer emits _rebuild_tensor_v2 with a storage
 * persistent id). Anything else is refused with an error naming it.
 *
 * For TorchScript archives (torch.jit.save's data.pkl) the writer also
 * emits objects of TorchScript classes, as torch.jit.save does:
 * GLOBAL '__torch__.<module> <Class>', EMPTY_TUPLE, NEWOBJ, then the
 * attribute dict and BUILD (ics_pickle_emit_object_begin / _end), and the
 * _rebuild_tensor_v2 call itself (ics_pickle_emit_rebuild_tensor).
 *
 * Note: torch 1.13's weights_only unpickler has no BINFLOAT (floats load
 * only with weights_only=False there); torch >= 2.0 accepts them.
 */
#ifndef ICS_IO_PICKLE_WRITER_H
#define ICS_IO_PICKLE_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include "io/pickle_value.h"

/* The opcodes the writer and its hooks emit (see pickletools). */
enum {
    ICS_PICKLE_MARK = '(',
    ICS_PICKLE_STOP = '.',
    ICS_PICKLE_EMPTY_TUPLE = ')',
    ICS_PICKLE_TUPLE = 't',
    ICS_PICKLE_TUPLE1 = 0x85,
    ICS_PICKLE_TUPLE2 = 0x86,
    ICS_PICKLE_TUPLE3 = 0x87,
    ICS_PICKLE_EMPTY_LIST = ']',
    ICS_PICKLE_APPENDS = 'e',
    ICS_PICKLE_EMPTY_DICT = '}',
    ICS_PICKLE_SETITEMS = 'u',
    ICS_PICKLE_REDUCE = 'R',
    ICS_PICKLE_BINPERSID = 'Q',
    ICS_PICKLE_NONE = 'N',
    ICS_PICKLE_NEWTRUE = 0x88,
    ICS_PICKLE_NEWFALSE = 0x89,
    ICS_PICKLE_PROTO = 0x80,
    ICS_PICKLE_NEWOBJ = 0x81,
    ICS_PICKLE_BUILD = 'b'
};

typedef struct ics_pickle_writer {
    uint8_t *buf;
    size_t len, cap;
    ics_status status; /* sticky: the first failure; emits after it do nothing */
    ics_error *err;
} ics_pickle_writer;

/* Writes a tensor value (e.g. as a persistent-id storage): the hook emits
 * opcodes that leave exactly one value on the unpickler's stack. */
typedef ics_status (*ics_pickle_tensor_fn)(void *ctx, ics_pickle_writer *w, const ics_pv *tensor);

/* Starts a pickle (PROTO 2) in memory; errors go to err. */
void ics_pickle_writer_init(ics_pickle_writer *w, ics_error *err);
void ics_pickle_writer_free(ics_pickle_writer *w);

void ics_pickle_emit_op(ics_pickle_writer *w, uint8_t op);
void ics_pickle_emit_int(ics_pickle_writer *w, int64_t v);
void ics_pickle_emit_float(ics_pickle_writer *w, double v);
void ics_pickle_emit_string(ics_pickle_writer *w, const char *s, size_t len);
void ics_pickle_emit_global(ics_pickle_writer *w, const char *module, const char *name);
/* collections.OrderedDict() */
void ics_pickle_emit_empty_ordered_dict(ics_pickle_writer *w);

/* An object of class module.name built the way torch.jit.save pickles a
 * scripted module: cls.__new__(cls) (GLOBAL, EMPTY_TUPLE, NEWOBJ), then an
 * attribute dict is opened (EMPTY_DICT, MARK): emit key, value pairs, then
 * ics_pickle_emit_object_end (SETITEMS, BUILD) sets them on the object. */
void ics_pickle_emit_object_begin(ics_pickle_writer *w, const char *module, const char *name);
void ics_pickle_emit_object_end(ics_pickle_writer *w);

/* A tensor as torch.save and torch.jit.save pickle it:
 *   torch._utils._rebuild_tensor_v2(
 *       persistent_load(('storage', torch.<storage_class>, key, 'cpu', numel)),
 *       0, shape, contiguous stride, requires_grad, OrderedDict())
 * storage_class as ics_pv_dtype_storage_class gives it ("FloatStorage"). */
void ics_pickle_emit_rebuild_tensor(ics_pickle_writer *w, const char *storage_class,
                                    const char *key, int64_t numel, int ndim, const int64_t *shape,
                                    int requires_grad);

/* The instance attributes of an ordered dict (NULL: none). torch's
 * state_dict is an OrderedDict carrying one, _metadata; pickle writes such
 * an object as the OrderedDict with its items, then the attribute dict and
 * BUILD, which torch.load(weights_only=True) applies to an OrderedDict. */
typedef const ics_pv *(*ics_pickle_dict_attrs_fn)(void *ctx, const ics_pv *dict);

/* Emits value v (recursively, at most 64 levels deep). */
ics_status ics_pickle_emit_value(ics_pickle_writer *w, const ics_pv *v, ics_pickle_tensor_fn tensor,
                                 void *ctx);
/* The same, and every ordered dict for which attrs (when not NULL) gives
 * an attribute dict is followed by that dict and BUILD; an attribute dict
 * for a plain dict is refused (torch builds only OrderedDicts). */
ics_status ics_pickle_emit_value_attrs(ics_pickle_writer *w, const ics_pv *v,
                                       ics_pickle_tensor_fn tensor, ics_pickle_dict_attrs_fn attrs,
                                       void *ctx);
/* Ends the pickle (STOP); the bytes are w->buf[0 .. w->len). */
ics_status ics_pickle_writer_finish(ics_pickle_writer *w);

#endif
