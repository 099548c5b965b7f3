/* The pickle value tree and its arena: see pickle_value.h. */
#include "ics_build_config.h"
#include "io/pickle_value.h"
#include "core/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ics_pv_arena {
    ics_pv **values; /* every value made here */
    size_t count, cap;
    void **blocks; /* strings and other plain buffers made here */
    size_t block_count, block_cap;
    size_t bytes;
};

/* The dict's hash index lives beside the value so that ics_pv stays a
 * plain struct: an open-addressing table of positions + 1 (0 = empty),
 * 2^bits slots, rebuilt when more than half full. */
typedef struct dict_index {
    size_t *slots;
    unsigned bits;
} dict_index;

typedef struct pv_box {
    ics_pv value;
    dict_index index; /* used by dicts only */
} pv_box;

ics_pv_arena *ics_pv_arena_create(ics_error *err)
{
    return ics_calloc(1, sizeof(ics_pv_arena), "pickle value arena", err);
}

static void free_value(ics_pv *v)
{
    switch (v->kind) {
    case ICS_PV_TUPLE:
    case ICS_PV_LIST:
        free(v->u.seq.items);
        break;
    case ICS_PV_DICT:
        free(v->u.dict.keys);
        free(v->u.dict.values);
        free(((pv_box *)v)->index.slots);
        break;
    case ICS_PV_TENSOR:
        ics_free_aligned(v->u.tensor.data);
        break;
    default:
        break;
    }
    free(v);
}

void ics_pv_arena_destroy(ics_pv_arena *arena)
{
    if (!arena) return;
    for (size_t i = 0; i < arena->count; i++)
        free_value(arena->values[i]);
    for (size_t i = 0; i < arena->block_count; i++)
        free(arena->blocks[i]);
    free(arena->values);
    free(arena->blocks);
    free(arena);
}

size_t ics_pv_arena_bytes(const ics_pv_arena *arena)
{
    return arena->bytes;
}

/* Grows a pointer array to hold one more element (doubling). */
static int grow(void ***array, size_t *cap, size_t count, const char *what, ics_error *err)
{
    if (count < *cap) return 1;
    size_t cap2 = *cap ? *cap * 2 : 16;
    void **p = ics_realloc(*array, cap2 * sizeof *p, what, err);
    if (!p) return 0;
    *array = p;
    *cap = cap2;
    return 1;
}

ics_pv *ics_pv_new(ics_pv_arena *arena, ics_pv_kind kind, ics_error *err)
{
    if (!grow((void ***)&arena->values, &arena->cap, arena->count, "pickle values", err))
        return NULL;
    pv_box *box = ics_calloc(1, sizeof *box, "pickle value", err);
    if (!box) return NULL;
    box->value.kind = kind;
    arena->values[arena->count++] = &box->value;
    arena->bytes += sizeof *box;
    return &box->value;
}

char *ics_pv_arena_strdup(ics_pv_arena *arena, const char *s, size_t len, ics_error *err)
{
    if (!grow(&arena->blocks, &arena->block_cap, arena->block_count, "pickle strings", err))
        return NULL;
    char *p = ics_malloc(len + 1, "pickle string", err);
    if (!p) return NULL;
    if (len) {
        if (s)
            memcpy(p, s, len);
        else
            memset(p, 0, len);
    }
    p[len] = '\0';
    arena->blocks[arena->block_count++] = p;
    arena->bytes += len + 1;
    return p;
}

ics_pv *ics_pv_new_bool(ics_pv_arena *arena, int value, ics_error *err)
{
    ics_pv *v = ics_pv_new(arena, ICS_PV_BOOL, err);
    if (v) v->u.boolean = value != 0;
    return v;
}

ics_pv *ics_pv_new_int(ics_pv_arena *arena, int64_t value, ics_error *err)
{
    ics_pv *v = ics_pv_new(arena, ICS_PV_INT, err);
    if (v) v->u.i = value;
    return v;
}

ics_pv *ics_pv_new_float(ics_pv_arena *arena, double value, ics_error *err)
{
    ics_pv *v = ics_pv_new(arena, ICS_PV_FLOAT, err);
    if (v) v->u.f = value;
    return v;
}

static ics_pv *new_text(ics_pv_arena *arena, ics_pv_kind kind, const void *s, size_t len,
                        ics_error *err)
{
    ics_pv *v = ics_pv_new(arena, kind, err);
    if (!v) return NULL;
    v->u.str.data = ics_pv_arena_strdup(arena, s, len, err);
    v->u.str.len = len;
    return v->u.str.data ? v : NULL;
}

ics_pv *ics_pv_new_string(ics_pv_arena *arena, const char *s, size_t len, ics_error *err)
{
    return new_text(arena, ICS_PV_STRING, s, len, err);
}

ics_pv *ics_pv_new_bytes(ics_pv_arena *arena, const void *s, size_t len, ics_error *err)
{
    return new_text(arena, ICS_PV_BYTES, s, len, err);
}

ics_pv *ics_pv_new_dict(ics_pv_arena *arena, int ordered, ics_error *err)
{
    ics_pv *v = ics_pv_new(arena, ICS_PV_DICT, err);
    if (v) v->u.dict.ordered = ordered;
    return v;
}

ics_pv *ics_pv_new_tensor(ics_pv_arena *arena, ics_pv_dtype dtype, int ndim, const int64_t *shape,
                          const void *data, ics_error *err)
{
    if (ndim < 0 || ndim > ICS_PV_MAX_DIMS || (unsigned)dtype >= ICS_DT_COUNT) {
        ICS_FAIL(err, ICS_ERR_INVALID, "tensor with %d dimensions (at most %d) or bad dtype", ndim,
                 ICS_PV_MAX_DIMS);
        return NULL;
    }
    size_t numel = 1, elem = ics_pv_dtype_size(dtype);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] > 0 && numel > SIZE_MAX / elem / (size_t)shape[d])) {
            ICS_FAIL(err, ICS_ERR_INVALID, "tensor dimension %d has bad size %lld", d,
                     (long long)shape[d]);
            return NULL;
        }
        numel *= (size_t)shape[d];
    }
    ics_pv *v = ics_pv_new(arena, ICS_PV_TENSOR, err);
    if (!v) return NULL;
    v->u.tensor.dtype = dtype;
    v->u.tensor.ndim = ndim;
    for (int d = 0; d < ndim; d++)
        v->u.tensor.shape[d] = shape[d];
    v->u.tensor.numel = numel;
    v->u.tensor.data = ics_malloc_aligned(numel * elem, "tensor data", err);
    if (!v->u.tensor.data) return NULL;
    if (data)
        memcpy(v->u.tensor.data, data, numel * elem);
    else
        memset(v->u.tensor.data, 0, numel * elem);
    arena->bytes += numel * elem;
    return v;
}

ics_status ics_pv_seq_append(ics_pv_arena *arena, ics_pv *seq, ics_pv *item, ics_error *err)
{
    (void)arena;
    if (seq->kind != ICS_PV_TUPLE && seq->kind != ICS_PV_LIST)
        return ICS_FAIL(err, ICS_ERR_INVALID, "cannot append to a %s", ics_pv_kind_name(seq->kind));
    if (!grow((void ***)&seq->u.seq.items, &seq->u.seq.cap, seq->u.seq.len, "pickle list", err))
        return ICS_ERR_NOMEM;
    seq->u.seq.items[seq->u.seq.len++] = item;
    return ICS_OK;
}

/* Python's dict equality for the key types we index: str by content, int
 * and bool by value (True == 1). Other keys are never merged. */
static int key_hashable(const ics_pv *k, uint64_t *hash)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    if (k->kind == ICS_PV_STRING) {
        for (size_t i = 0; i < k->u.str.len; i++)
            h = (h ^ (uint8_t)k->u.str.data[i]) * 1099511628211ull;
    } else if (k->kind == ICS_PV_INT || k->kind == ICS_PV_BOOL) {
        uint64_t x = k->kind == ICS_PV_INT ? (uint64_t)k->u.i : (uint64_t)k->u.boolean;
        h = (x ^ 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    } else {
        return 0;
    }
    *hash = h;
    return 1;
}

static int keys_equal(const ics_pv *a, const ics_pv *b)
{
    if (a->kind == ICS_PV_STRING || b->kind == ICS_PV_STRING)
        return a->kind == b->kind && a->u.str.len == b->u.str.len &&
               memcmp(a->u.str.data, b->u.str.data, a->u.str.len) == 0;
    int64_t x = a->kind == ICS_PV_INT ? a->u.i : a->u.boolean;
    int64_t y = b->kind == ICS_PV_INT ? b->u.i : b->u.boolean;
    return x == y;
}

/* Finds key's slot: *slot is the matching position (>= 0) or -1, and
 * *free_slot the empty slot where it would go. */
static long index_find(const ics_pv *d, const dict_index *ix, const ics_pv *key, uint64_t hash,
                       size_t *free_slot)
{
    size_t mask = ((size_t)1 << ix->bits) - 1;
    for (size_t s = hash & mask;; s = (s + 1) & mask) {
        size_t pos = ix->slots[s];
        if (pos == 0) {
            *free_slot = s;
            return -1;
        }
        if (keys_equal(d->u.dict.keys[pos - 1], key)) return (long)pos - 1;
    }
}

static ics_status index_rebuild(ics_pv *d, dict_index *ix, ics_error *err)
{
    unsigned bits = 4;
    while (((size_t)1 << bits) < 2 * (d->u.dict.len + 1))
        bits++;
    size_t *slots = ics_calloc((size_t)1 << bits, sizeof *slots, "dict index", err);
    if (!slots) return ICS_ERR_NOMEM;
    free(ix->slots);
    ix->slots = slots;
    ix->bits = bits;
    for (size_t i = 0; i < d->u.dict.len; i++) {
        uint64_t h;
        size_t free_slot;
        if (!key_hashable(d->u.dict.keys[i], &h)) continue;
        if (index_find(d, ix, d->u.dict.keys[i], h, &free_slot) < 0) ix->slots[free_slot] = i + 1;
    }
    return ICS_OK;
}

ics_status ics_pv_dict_set(ics_pv_arena *arena, ics_pv *d, ics_pv *key, ics_pv *value,
                           ics_error *err)
{
    (void)arena;
    if (d->kind != ICS_PV_DICT)
        return ICS_FAIL(err, ICS_ERR_INVALID, "cannot set an item of a %s",
                        ics_pv_kind_name(d->kind));
    dict_index *ix = &((pv_box *)d)->index;
    uint64_t h;
    size_t free_slot = 0;
    int hashable = key_hashable(key, &h);
    if (hashable) {
        if (!ix->slots || 2 * (d->u.dict.len + 1) > ((size_t)1 << ix->bits)) {
            ics_status st = index_rebuild(d, ix, err);
            if (st != ICS_OK) return st;
        }
        long pos = index_find(d, ix, key, h, &free_slot);
        if (pos >= 0) {
            d->u.dict.values[pos] = value;
            return ICS_OK;
        }
    }
    size_t cap = d->u.dict.cap;
    if (!grow((void ***)&d->u.dict.keys, &cap, d->u.dict.len, "dict keys", err) ||
        !grow((void ***)&d->u.dict.values, &d->u.dict.cap, d->u.dict.len, "dict values", err))
        return ICS_ERR_NOMEM;
    d->u.dict.keys[d->u.dict.len] = key;
    d->u.dict.values[d->u.dict.len] = value;
    d->u.dict.len++;
    if (hashable) ix->slots[free_slot] = d->u.dict.len;
    return ICS_OK;
}

ics_status ics_pv_dict_set_str(ics_pv_arena *arena, ics_pv *d, const char *key, ics_pv *value,
                               ics_error *err)
{
    ics_pv *k = ics_pv_new_string(arena, key, strlen(key), err);
    return k ? ics_pv_dict_set(arena, d, k, value, err) : ICS_ERR_NOMEM;
}

const ics_pv *ics_pv_dict_get(const ics_pv *d, const char *key)
{
    if (!d || d->kind != ICS_PV_DICT) return NULL;
    size_t len = strlen(key);
    for (size_t i = 0; i < d->u.dict.len; i++) {
        const ics_pv *k = d->u.dict.keys[i];
        if (k->kind == ICS_PV_STRING && k->u.str.len == len && memcmp(k->u.str.data, key, len) == 0)
            return d->u.dict.values[i];
    }
    return NULL;
}

int ics_pv_get_int(const ics_pv *d, const char *key, int64_t *out)
{
    const ics_pv *v = ics_pv_dict_get(d, key);
    if (!v || (v->kind != ICS_PV_INT && v->kind != ICS_PV_BOOL)) return -1;
    *out = v->kind == ICS_PV_INT ? v->u.i : v->u.boolean;
    return 0;
}

int ics_pv_get_float(const ics_pv *d, const char *key, double *out)
{
    const ics_pv *v = ics_pv_dict_get(d, key);
    if (!v || (v->kind != ICS_PV_FLOAT && v->kind != ICS_PV_INT)) return -1;
    *out = v->kind == ICS_PV_FLOAT ? v->u.f : (double)v->u.i;
    return 0;
}

const char *ics_pv_get_string(const ics_pv *d, const char *key)
{
    const ics_pv *v = ics_pv_dict_get(d, key);
    return v && v->kind == ICS_PV_STRING ? v->u.str.data : NULL;
}

/* One row per dtype: size, torch name, the legacy typed storage class that
 * torch.save pickles in the persistent id (torch/storage.py). */
static const struct {
    size_t size;
    const char *name;
    const char *storage;
} dtype_table[ICS_DT_COUNT] = {
    [ICS_DT_FLOAT32] = {4, "float32", "FloatStorage"},
    [ICS_DT_FLOAT64] = {8, "float64", "DoubleStorage"},
    [ICS_DT_FLOAT16] = {2, "float16", "HalfStorage"},
    [ICS_DT_BFLOAT16] = {2, "bfloat16", "BFloat16Storage"},
    [ICS_DT_INT64] = {8, "int64", "LongStorage"},
    [ICS_DT_INT32] = {4, "int32", "IntStorage"},
    [ICS_DT_INT16] = {2, "int16", "ShortStorage"},
    [ICS_DT_INT8] = {1, "int8", "CharStorage"},
    [ICS_DT_UINT8] = {1, "uint8", "ByteStorage"},
    [ICS_DT_BOOL] = {1, "bool", "BoolStorage"},
};

size_t ics_pv_dtype_size(ics_pv_dtype dtype)
{
    return (unsigned)dtype < ICS_DT_COUNT ? dtype_table[dtype].size : 0;
}

const char *ics_pv_dtype_name(ics_pv_dtype dtype)
{
    return (unsigned)dtype < ICS_DT_COUNT ? dtype_table[dtype].name : "unknown";
}

const char *ics_pv_dtype_storage_class(ics_pv_dtype dtype)
{
    return (unsigned)dtype < ICS_DT_COUNT ? dtype_table[dtype].storage : "UnknownStorage";
}

int ics_pv_dtype_from_storage_class(const char *name)
{
    for (int t = 0; t < ICS_DT_COUNT; t++)
        if (strcmp(dtype_table[t].storage, name) == 0) return t;
    return -1;
}

const char *ics_pv_kind_name(ics_pv_kind kind)
{
    static const char *const names[] = {"None",   "bool",   "int",    "float", "str",
                                        "bytes",  "tuple",  "list",   "dict",  "tensor",
                                        "object", "global", "storage"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

/* IEEE binary16 to binary32: every half value is exactly representable.
 * Subnormal halves (exponent 0) are mantissa * 2^-24. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    uint32_t bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (mant << 13); /* inf, nan */
    } else if (exp == 0) {
        float f = ldexpf((float)mant, -24);
        return sign ? -f : f;
    } else {
        bits = sign | ((exp + 112u) << 23) | (mant << 13); /* rebias 15 -> 127 */
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

ics_status ics_pv_tensor_to_f32(const ics_pv *t, float *out, size_t n, ics_error *err)
{
    if (t->kind != ICS_PV_TENSOR)
        return ICS_FAIL(err, ICS_ERR_INVALID, "expected a tensor, got a %s",
                        ics_pv_kind_name(t->kind));
    if (n != t->u.tensor.numel)
        return ICS_FAIL(err, ICS_ERR_INVALID, "tensor has %zu elements, buffer %zu",
                        t->u.tensor.numel, n);
    const void *src = t->u.tensor.data;
    for (size_t i = 0; i < n; i++) {
        switch (t->u.tensor.dtype) {
        case ICS_DT_FLOAT32:
            memcpy(&out[i], (const float *)src + i, 4);
            break;
        case ICS_DT_FLOAT64:
            out[i] = (float)((const double *)src)[i];
            break;
        case ICS_DT_FLOAT16:
            out[i] = half_to_float(((const uint16_t *)src)[i]);
            break;
        case ICS_DT_BFLOAT16: {
            /* bfloat16 is the top half of a float32 */
            uint32_t bits = (uint32_t)((const uint16_t *)src)[i] << 16;
            memcpy(&out[i], &bits, 4);
            break;
        }
        case ICS_DT_INT64:
            out[i] = (float)((const int64_t *)src)[i];
            break;
        case ICS_DT_INT32:
            out[i] = (float)((const int32_t *)src)[i];
            break;
        case ICS_DT_INT16:
            out[i] = (float)((const int16_t *)src)[i];
            break;
        case ICS_DT_INT8:
            out[i] = (float)((const int8_t *)src)[i];
            break;
        case ICS_DT_UINT8:
            out[i] = (float)((const uint8_t *)src)[i];
            break;
        case ICS_DT_BOOL:
            out[i] = ((const uint8_t *)src)[i] ? 1.0f : 0.0f;
            break;
        case ICS_DT_COUNT:
            break; /* not a dtype: ics_pv_new_tensor refuses it */
        }
    }
    return ICS_OK;
}
