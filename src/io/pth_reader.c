/* torch.save zip archives: see pth_reader.h and docs/FORMATS-PTH.md. */
#include "ics_build_config.h"
#include "io/pth_reader.h"
#include "io/pth_internal.h"
#include "io/pickle_reader.h"
#include "io/zip_reader.h"
#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* torch's newest zip format version we know of is 3 (torch.save); the
 * TorchScript writer uses up to 10 (caffe2/serialize/versions.h). */
#define PTH_MAX_FILE_VERSION 10

/* Extracts data/<key> once per load. */
static ics_status load_storage(ics_pth_loader *ld, const ics_pv *s, const uint8_t **data,
                               ics_error *err)
{
    char name[1024];
    snprintf(name, sizeof name, "%sdata/%s", ld->prefix, s->u.storage.key);
    size_t want = (size_t)s->u.storage.numel * ics_pv_dtype_size(s->u.storage.dtype);
    const ics_pth_storage *cached = NULL;
    for (size_t i = 0; i < ld->storage_count && !cached; i++)
        if (ld->storages[i].data && strcmp(ld->storages[i].key, s->u.storage.key) == 0)
            cached = &ld->storages[i];
    const ics_zip_entry *e = cached || !ld->zip ? NULL : ics_zip_find(ld->zip, name);
    if (!cached && !e)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: storage entry '%s' is missing", ld->label, name);
    /* checked on every use: two persistent ids may name one key with
     * different types or sizes */
    size_t have = cached ? cached->size : (size_t)e->size;
    if (have != want)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: storage '%s' holds %zu bytes, but %lld %s elements need %zu",
                        ld->label, name, have, (long long)s->u.storage.numel,
                        ics_pv_dtype_name(s->u.storage.dtype), want);
    if (cached) {
        *data = cached->data;
        return ICS_OK;
    }
    if (ld->storage_count == ld->storage_cap) {
        size_t cap = ld->storage_cap ? ld->storage_cap * 2 : 16;
        ics_pth_storage *p = ics_realloc(ld->storages, cap * sizeof *p, "storage table", err);
        if (!p) return ICS_ERR_NOMEM;
        ld->storages = p;
        ld->storage_cap = cap;
    }
    uint8_t *buf;
    size_t size;
    ics_status st = ics_zip_extract(ld->zip, e, want, &buf, &size, err);
    if (st != ICS_OK) return st;
    char *key = ics_strdup(s->u.storage.key, err);
    if (!key) {
        free(buf);
        return ICS_ERR_NOMEM;
    }
    ld->storages[ld->storage_count++] = (ics_pth_storage){key, buf, size, s->u.storage.dtype};
    *data = buf;
    return ICS_OK;
}

/* BINPERSID: torch.save's persistent id of a storage is the tuple
 * ('storage', <torch.XStorage class>, key, location, numel); the legacy
 * format adds a sixth item, view_metadata, None since torch 1.0. While a
 * legacy file is scanned, the storages named are recorded. */
static ics_pv *persistent_load(void *ctx, ics_pv_arena *arena, ics_pv *pid, ics_error *err)
{
    ics_pth_loader *ld = ctx;
    ics_pv **it = pid->u.seq.items;
    size_t n = pid->kind == ICS_PV_TUPLE ? pid->u.seq.len : 0;
    if ((n != 5 && !(n == 6 && it[5]->kind == ICS_PV_NONE)) || it[0]->kind != ICS_PV_STRING ||
        strcmp(it[0]->u.str.data, "storage") != 0 || it[1]->kind != ICS_PV_GLOBAL ||
        it[2]->kind != ICS_PV_STRING || it[3]->kind != ICS_PV_STRING || it[4]->kind != ICS_PV_INT) {
        ICS_FAIL(err, ICS_ERR_FORMAT,
                 "persistent id is not ('storage', class, key, location, numel)");
        return NULL;
    }
    int dtype = ics_pv_dtype_from_storage_class(it[1]->u.global.name);
    if (strcmp(it[1]->u.global.module, "torch") != 0 || dtype < 0) {
        ICS_FAIL(err, ICS_ERR_FORMAT, "unsupported storage class %s.%s", it[1]->u.global.module,
                 it[1]->u.global.name);
        return NULL;
    }
    if (it[4]->u.i < 0 || (uint64_t)it[4]->u.i > ((uint64_t)1 << 48) ||
        strchr(it[2]->u.str.data, '/') || strlen(it[2]->u.str.data) > 200) {
        ICS_FAIL(err, ICS_ERR_FORMAT, "storage '%s' has a bad key or size %lld", it[2]->u.str.data,
                 (long long)it[4]->u.i);
        return NULL;
    }
    if (ld->scanning &&
        ics_pth_loader_note(ld, it[2]->u.str.data, (ics_pv_dtype)dtype, err) != ICS_OK)
        return NULL;
    ics_pv *s = ics_pv_new(arena, ICS_PV_STORAGE, err);
    if (!s) return NULL;
    s->u.storage.dtype = (ics_pv_dtype)dtype;
    s->u.storage.key = it[2]->u.str.data;
    s->u.storage.location = it[3]->u.str.data;
    s->u.storage.numel = it[4]->u.i;
    return s;
}

/* Reads a tuple of ints (a size or a stride) into dims. */
static int read_dims(const ics_pv *t, int64_t *dims, int *ndim)
{
    if (t->kind != ICS_PV_TUPLE || t->u.seq.len > ICS_PV_MAX_DIMS) return 0;
    for (size_t d = 0; d < t->u.seq.len; d++) {
        if (t->u.seq.items[d]->kind != ICS_PV_INT || t->u.seq.items[d]->u.i < 0) return 0;
        dims[d] = t->u.seq.items[d]->u.i;
    }
    *ndim = (int)t->u.seq.len;
    return 1;
}

/* Copies the strided view (offset, size, stride) of a storage into
 * contiguous C order, walking the index like an odometer. */
static void gather(uint8_t *dst, const uint8_t *src, size_t elem, int ndim, const int64_t *size,
                   const int64_t *stride, int64_t offset, size_t numel)
{
    int64_t index[ICS_PV_MAX_DIMS] = {0};
    int64_t at = offset;
    for (size_t n = 0; n < numel; n++) {
        memcpy(dst + n * elem, src + (size_t)at * elem, elem);
        for (int d = ndim - 1; d >= 0; d--) {
            if (++index[d] < size[d]) {
                at += stride[d];
                break;
            }
            at -= stride[d] * (size[d] - 1);
            index[d] = 0;
        }
    }
}

/* torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
 * requires_grad, backward_hooks[, metadata]) and the older
 * _rebuild_tensor(storage, storage_offset, size, stride). */
static ics_status rebuild_tensor(ics_pth_loader *ld, ics_pv_arena *arena, const ics_pv *args,
                                 ics_pv **result, ics_error *err)
{
    size_t n = args->u.seq.len;
    ics_pv **a = args->u.seq.items;
    int64_t size[ICS_PV_MAX_DIMS], stride[ICS_PV_MAX_DIMS];
    int ndim = 0, nstride = -1;
    if ((n != 4 && n != 6 && n != 7) || a[0]->kind != ICS_PV_STORAGE || a[1]->kind != ICS_PV_INT ||
        a[1]->u.i < 0 || !read_dims(a[2], size, &ndim) || !read_dims(a[3], stride, &nstride) ||
        ndim != nstride)
        return ICS_FAIL(
            err, ICS_ERR_FORMAT,
            "_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, ...)");
    const ics_pv *s = a[0];
    size_t elem = ics_pv_dtype_size(s->u.storage.dtype);
    /* numel, bounded by the budget; the last element the view touches must
     * lie inside the storage */
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (size[d] != 0 && numel > ld->tensor_budget / elem / (uint64_t)size[d])
            return ICS_FAIL(err, ICS_ERR_FORMAT,
                            "tensor of storage '%s' is larger than the file allows",
                            s->u.storage.key);
        numel *= (size_t)size[d];
    }
    if (numel > 0) {
        int64_t limit = s->u.storage.numel - 1 - a[1]->u.i, reach = 0;
        for (int d = 0; d < ndim && limit >= 0; d++)
            if (stride[d] > 0 && size[d] > 1) {
                if (size[d] - 1 > (limit - reach) / stride[d]) {
                    limit = -1;
                    break;
                }
                reach += (size[d] - 1) * stride[d];
            }
        if (limit < 0)
            return ICS_FAIL(err, ICS_ERR_FORMAT,
                            "tensor view (offset %lld) reaches past the end of storage '%s' "
                            "(%lld elements)",
                            (long long)a[1]->u.i, s->u.storage.key, (long long)s->u.storage.numel);
    }
    const uint8_t *src = NULL;
    ics_status st = numel ? load_storage(ld, s, &src, err) : ICS_OK;
    if (st != ICS_OK) return st;
    ics_pv *t = ics_pv_new_tensor(arena, s->u.storage.dtype, ndim, size, NULL, err);
    if (!t) return err->status;
    ld->tensor_budget -= numel * elem;
    if (numel) gather(t->u.tensor.data, src, elem, ndim, size, stride, a[1]->u.i, numel);
    t->u.tensor.requires_grad = n >= 6 && a[4]->kind == ICS_PV_BOOL && a[4]->u.boolean;
    *result = t;
    return ICS_OK;
}

static ics_status call_hook(void *ctx, ics_pv_arena *arena, const ics_pv *g, ics_pv *args,
                            ics_pv **result, ics_error *err)
{
    ics_pth_loader *ld = ctx;
    if (ld->scanning || strcmp(g->u.global.module, "torch._utils") != 0) return ICS_OK;
    const char *name = g->u.global.name;
    if (strcmp(name, "_rebuild_tensor_v2") == 0 || strcmp(name, "_rebuild_tensor") == 0)
        return rebuild_tensor(ld, arena, args, result, err);
    if (strcmp(name, "_rebuild_parameter") == 0 ||
        strcmp(name, "_rebuild_parameter_with_state") == 0) {
        /* (data, requires_grad, backward_hooks[, state]): the tensor itself */
        if (args->u.seq.len < 2 || args->u.seq.items[0]->kind != ICS_PV_TENSOR)
            return ICS_FAIL(err, ICS_ERR_FORMAT,
                            "%s arguments are not (tensor, requires_grad, ...)", name);
        ics_pv *t = args->u.seq.items[0];
        t->u.tensor.is_parameter = 1;
        t->u.tensor.requires_grad =
            args->u.seq.items[1]->kind == ICS_PV_BOOL && args->u.seq.items[1]->u.boolean;
        *result = t;
    }
    return ICS_OK;
}

void ics_pth_loader_hooks(ics_pth_loader *ld, size_t file_size, ics_pickle_hooks *hooks)
{
    ld->tensor_budget = 4 * file_size + ((size_t)16 << 20);
    *hooks = (ics_pickle_hooks){.ctx = ld, .persistent_load = persistent_load, .call = call_hook};
}

ics_status ics_pth_loader_note(ics_pth_loader *ld, const char *key, ics_pv_dtype dtype,
                               ics_error *err)
{
    for (size_t i = 0; i < ld->storage_count; i++)
        if (strcmp(ld->storages[i].key, key) == 0) return ICS_OK;
    if (ld->storage_count == ld->storage_cap) {
        size_t cap = ld->storage_cap ? ld->storage_cap * 2 : 16;
        ics_pth_storage *p = ics_realloc(ld->storages, cap * sizeof *p, "storage table", err);
        if (!p) return ICS_ERR_NOMEM;
        ld->storages = p;
        ld->storage_cap = cap;
    }
    char *copy = ics_strdup(key, err);
    if (!copy) return ICS_ERR_NOMEM;
    ld->storages[ld->storage_count++] = (ics_pth_storage){copy, NULL, 0, dtype};
    return ICS_OK;
}

void ics_pth_loader_release(ics_pth_loader *ld)
{
    for (size_t i = 0; i < ld->storage_count; i++) {
        free(ld->storages[i].key);
        free(ld->storages[i].data);
    }
    free(ld->storages);
    ld->storages = NULL;
    ld->storage_count = ld->storage_cap = 0;
}

/* torch.save before 1.6 (and with _use_new_zipfile_serialization=False)
 * starts with pickle protocol 2 of the int 0x1950a86a20f9469cfc6c:
 * PROTO 2, LONG1 of 10 little-endian bytes. */
static int is_legacy(const uint8_t *d, size_t n)
{
    static const uint8_t magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
                                    0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    return n >= sizeof magic && memcmp(d, magic, sizeof magic) == 0;
}

/* Finds "<folder>/data.pkl" with a single top-level folder of any name. */
static const ics_zip_entry *find_data_pkl(const ics_zip_reader *zip)
{
    for (size_t i = 0; i < ics_zip_entry_count(zip); i++) {
        const ics_zip_entry *e = ics_zip_entry_at(zip, i);
        const char *slash = strchr(e->name, '/');
        if (slash && slash != e->name && strcmp(slash, "/data.pkl") == 0 &&
            (size_t)(slash - e->name) < 200)
            return e;
    }
    return NULL;
}

static ics_status check_version(const ics_zip_reader *zip, const char *label, const char *prefix,
                                ics_error *err)
{
    char name[256];
    snprintf(name, sizeof name, "%sversion", prefix);
    const ics_zip_entry *e = ics_zip_find(zip, name);
    if (!e) return ICS_OK; /* torch itself tolerates a missing version record */
    uint8_t *text;
    size_t len;
    ics_status st = ics_zip_extract(zip, e, 64, &text, &len, err);
    if (st != ICS_OK) return st;
    char *end;
    long v = strtol((char *)text, &end, 10);
    int ok = end != (char *)text && (*end == '\0' || *end == '\n') && v >= 1 &&
             v <= PTH_MAX_FILE_VERSION;
    free(text);
    if (!ok)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: unsupported archive version in '%s' (this reader knows 1 to %d)",
                        label, name, PTH_MAX_FILE_VERSION);
    return ICS_OK;
}

static ics_status load_archive(ics_pth *pth, const ics_zip_reader *zip, const char *label,
                               size_t file_size, ics_error *err)
{
    const ics_zip_entry *pkl = find_data_pkl(zip);
    if (!pkl)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: no <folder>/data.pkl entry: not a torch.save archive", label);
    size_t folder_len = (size_t)(strchr(pkl->name, '/') - pkl->name);
    memcpy(pth->archive_name, pkl->name, folder_len);
    pth->archive_name[folder_len] = '\0';
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s/", pth->archive_name);
    ics_status st = check_version(zip, label, prefix, err);
    if (st != ICS_OK) return st;
    uint8_t *pickle;
    size_t pickle_size;
    st = ics_zip_extract(zip, pkl, 0, &pickle, &pickle_size, err);
    if (st != ICS_OK) return st;
    ics_pth_loader ld = {.zip = zip, .label = label, .prefix = prefix};
    ics_pickle_hooks hooks;
    ics_pth_loader_hooks(&ld, file_size, &hooks);
    char pickle_label[1024];
    snprintf(pickle_label, sizeof pickle_label, "%s: %s", label, pkl->name);
    st = ics_pickle_load(pickle, pickle_size, pickle_label, pth->arena, &hooks, NULL, &pth->root,
                         err);
    free(pickle);
    ics_pth_loader_release(&ld);
    return st;
}

ics_status ics_pth_load_memory(const uint8_t *data, size_t size, const char *label, ics_pth **out,
                               ics_error *err)
{
    *out = NULL;
    if (!label) label = "pth file";
    int legacy = is_legacy(data, size);
    if (!legacy && (size < 4 || memcmp(data, "PK\x03\x04", 4) != 0))
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: not a PyTorch file (no zip signature)", label);
    ics_pth *pth = ics_calloc(1, sizeof *pth, "pth file", err);
    if (!pth) return ICS_ERR_NOMEM;
    pth->arena = ics_pv_arena_create(err);
    if (!pth->arena) {
        free(pth);
        return ICS_ERR_NOMEM;
    }
    ics_zip_reader *zip;
    ics_status st;
    if (legacy) {
        st = ics_pth_load_legacy(pth, data, size, label, err);
    } else if ((st = ics_zip_reader_open(data, size, label, &zip, err)) == ICS_OK) {
        st = load_archive(pth, zip, label, size, err);
        ics_zip_reader_close(zip);
    }
    if (st != ICS_OK) {
        ics_pth_destroy(pth);
        return st;
    }
    *out = pth;
    return ICS_OK;
}

ics_status ics_pth_load(const char *path, ics_pth **out, ics_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return ICS_FAIL(err, ICS_ERR_IO, "%s: not a regular file", path);
    }
    long size = (long)sb.st_size;
    uint8_t *data = ics_malloc((size_t)size, path, err);
    if (!data) {
        fclose(f);
        return ICS_ERR_NOMEM;
    }
    size_t got = fread(data, 1, (size_t)size, f);
    int read_error = ferror(f);
    fclose(f);
    if (got != (size_t)size || read_error) {
        free(data);
        return ICS_FAIL(err, ICS_ERR_IO, "%s: read %zu of %ld bytes", path, got, size);
    }
    ics_status st = ics_pth_load_memory(data, (size_t)size, path, out, err);
    free(data);
    return st;
}

void ics_pth_destroy(ics_pth *pth)
{
    if (!pth) return;
    ics_pv_arena_destroy(pth->arena);
    free(pth);
}

const ics_pv *ics_pth_root(const ics_pth *pth)
{
    return pth->root;
}

const char *ics_pth_archive_name(const ics_pth *pth)
{
    return pth->archive_name;
}

int ics_pth_is_tensor_dict(const ics_pv *v)
{
    if (!v || v->kind != ICS_PV_DICT) return 0;
    for (size_t i = 0; i < v->u.dict.len; i++)
        if (v->u.dict.keys[i]->kind != ICS_PV_STRING || v->u.dict.values[i]->kind != ICS_PV_TENSOR)
            return 0;
    return 1;
}

const ics_pv *ics_pth_state_dict(const ics_pth *pth)
{
    if (ics_pth_is_tensor_dict(pth->root)) return pth->root;
    static const char *const keys[] = {"state_dict", "model"};
    for (size_t i = 0; i < 2; i++) {
        const ics_pv *v = ics_pv_dict_get(pth->root, keys[i]);
        if (ics_pth_is_tensor_dict(v)) return v;
    }
    return NULL;
}

const char *ics_pth_strip_module_prefix(const char *name)
{
    return strncmp(name, "module.", 7) == 0 ? name + 7 : name;
}
