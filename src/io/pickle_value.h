/*
 * The value tree that the pickle reader builds and the pickle writer
 * consumes: None, bool, int, float, str, bytes, tuple, list, dict (in
 * insertion order), tensor, opaque object, plus the two kinds that only
 * appear while a pickle is being read (a class reference and a storage).
 *
 * Values live in an arena: every value made by a reader or a builder call
 * belongs to the arena that made it and is freed with it, all at once. That
 * keeps shared references (the pickle memo) and even cycles made by a
 * hostile file safe to free. Containers hold borrowed pointers to values of
 * the same arena.
 */
#ifndef ICS_IO_PICKLE_VALUE_H
#define ICS_IO_PICKLE_VALUE_H

#include <stddef.h>
#include <stdint.h>
#include <icsparse/status.h>

typedef enum ics_pv_kind {
    ICS_PV_NONE = 0,
    ICS_PV_BOOL,
    ICS_PV_INT,    /* Python int within int64 */
    ICS_PV_FLOAT,  /* Python float (double) */
    ICS_PV_STRING, /* str, UTF-8, NUL-terminated */
    ICS_PV_BYTES,  /* bytes / bytearray */
    ICS_PV_TUPLE,
    ICS_PV_LIST,   /* list (also set and frozenset, in pickle order) */
    ICS_PV_DICT,   /* dict or collections.OrderedDict (flag "ordered") */
    ICS_PV_TENSOR, /* a torch.Tensor or Parameter, contiguous copy */
    ICS_PV_OBJECT, /* an instance of a class we do not interpret */
    ICS_PV_GLOBAL, /* a class or function reference (module, name) */
    ICS_PV_STORAGE /* a torch storage reference (persistent id) */
} ics_pv_kind;

/* Element types of torch storages, named after torch's dtypes. */
typedef enum ics_pv_dtype {
    ICS_DT_FLOAT32 = 0,
    ICS_DT_FLOAT64,
    ICS_DT_FLOAT16,
    ICS_DT_BFLOAT16,
    ICS_DT_INT64,
    ICS_DT_INT32,
    ICS_DT_INT16,
    ICS_DT_INT8,
    ICS_DT_UINT8,
    ICS_DT_BOOL,
    ICS_DT_COUNT
} ics_pv_dtype;

#define ICS_PV_MAX_DIMS 8

typedef struct ics_pv ics_pv;

struct ics_pv {
    ics_pv_kind kind;
    union {
        int boolean;
        int64_t i;
        double f;
        struct {
            char *data; /* NUL-terminated for both strings and bytes */
            size_t len;
        } str;
        struct {
            ics_pv **items;
            size_t len, cap;
        } seq; /* tuple, list */
        struct {
            ics_pv **keys;
            ics_pv **values;
            size_t len, cap;
            int ordered; /* came from / is written as collections.OrderedDict */
        } dict;
        struct {
            ics_pv_dtype dtype;
            int ndim;
            int64_t shape[ICS_PV_MAX_DIMS];
            size_t numel;
            void *data; /* numel elements of dtype, C order */
            int requires_grad;
            int is_parameter; /* rebuilt through torch._utils._rebuild_parameter */
        } tensor;
        struct {
            char *class_name; /* "module.qualname" */
            ics_pv *args;     /* tuple given to REDUCE / NEWOBJ, or NULL */
            ics_pv *state;    /* argument of BUILD, or NULL */
        } object;
        struct {
            char *module;
            char *name;
        } global;
        struct {
            ics_pv_dtype dtype;
            char *key;      /* entry name under data/ in the archive */
            char *location; /* "cpu", "cuda:0", ... */
            int64_t numel;
        } storage;
    } u;
};

typedef struct ics_pv_arena ics_pv_arena;

ics_pv_arena *ics_pv_arena_create(ics_error *err);
/* Frees every value the arena made. NULL is fine. */
void ics_pv_arena_destroy(ics_pv_arena *arena);
/* Bytes held by the arena's values (used to cap hostile inputs). */
size_t ics_pv_arena_bytes(const ics_pv_arena *arena);

/* Builders: each returns a new value owned by the arena, or NULL with err
 * set. Strings and tensor data are copied. */
ics_pv *ics_pv_new(ics_pv_arena *arena, ics_pv_kind kind, ics_error *err);
ics_pv *ics_pv_new_bool(ics_pv_arena *arena, int value, ics_error *err);
ics_pv *ics_pv_new_int(ics_pv_arena *arena, int64_t value, ics_error *err);
ics_pv *ics_pv_new_float(ics_pv_arena *arena, double value, ics_error *err);
ics_pv *ics_pv_new_string(ics_pv_arena *arena, const char *s, size_t len, ics_error *err);
ics_pv *ics_pv_new_bytes(ics_pv_arena *arena, const void *s, size_t len, ics_error *err);
ics_pv *ics_pv_new_dict(ics_pv_arena *arena, int ordered, ics_error *err);
/* A tensor of the given shape; data (numel elements of dtype, C order) is
 * copied when not NULL, else zero-filled. */
ics_pv *ics_pv_new_tensor(ics_pv_arena *arena, ics_pv_dtype dtype, int ndim, const int64_t *shape,
                          const void *data, ics_error *err);
/* Copies len bytes of s (zeros when s is NULL) plus a NUL into a buffer
 * owned by arena. */
char *ics_pv_arena_strdup(ics_pv_arena *arena, const char *s, size_t len, ics_error *err);

/* Appends to a tuple or list. */
ics_status ics_pv_seq_append(ics_pv_arena *arena, ics_pv *seq, ics_pv *item, ics_error *err);
/* d[key] = value with Python's semantics: an existing equal key (same
 * string, or same int/bool) keeps its position and gets the new value. */
ics_status ics_pv_dict_set(ics_pv_arena *arena, ics_pv *dict, ics_pv *key, ics_pv *value,
                           ics_error *err);
/* d["key"] = value. */
ics_status ics_pv_dict_set_str(ics_pv_arena *arena, ics_pv *dict, const char *key, ics_pv *value,
                               ics_error *err);

/* Lookups (NULL when absent or when d is not a dict). */
const ics_pv *ics_pv_dict_get(const ics_pv *d, const char *key);
/* d[key] as an int / float / string: 0 when present with that type. A
 * float lookup accepts an int; an int lookup accepts a bool. */
int ics_pv_get_int(const ics_pv *d, const char *key, int64_t *out);
int ics_pv_get_float(const ics_pv *d, const char *key, double *out);
const char *ics_pv_get_string(const ics_pv *d, const char *key);

/* Element size in bytes, torch's name ("float32"), and the storage class
 * that torch pickles for the dtype ("FloatStorage"). */
size_t ics_pv_dtype_size(ics_pv_dtype dtype);
const char *ics_pv_dtype_name(ics_pv_dtype dtype);
const char *ics_pv_dtype_storage_class(ics_pv_dtype dtype);
/* The dtype of a torch storage class name; -1 if unknown. */
int ics_pv_dtype_from_storage_class(const char *name);
/* Short name of a kind ("dict", "tensor", ...). */
const char *ics_pv_kind_name(ics_pv_kind kind);

/* Converts a tensor's elements to float32 (n must equal its numel). float16
 * and bfloat16 widen exactly; float64 and large ints round to nearest. */
ics_status ics_pv_tensor_to_f32(const ics_pv *tensor, float *out, size_t n, ics_error *err);

#endif
