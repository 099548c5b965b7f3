/*
 * The legacy torch.save format (torch < 1.6, or
 * _use_new_zipfile_serialization=False), from torch/serialization.py's
 * _legacy_save: a sequence of pickles, then the raw storages.
 *
 *   pickle(MAGIC_NUMBER = 0x1950a86a20f9469cfc6c)
 *   pickle(PROTOCOL_VERSION = 1001)
 *   pickle(sys_info: {'protocol_version', 'little_endian', 'type_sizes'})
 *   pickle(obj), storages as ('storage', cls, key, location, numel, None)
 *   pickle(sorted list of storage keys)
 *   per key: int64 numel (little-endian), then numel elements
 *
 * The storages follow the object, so the object pickle is read twice:
 * once to learn the storages' dtypes (which give the byte counts in the
 * tail), then, with the storages read, to rebuild the tensors.
 */
#include "ics_build_config.h"
#include "io/pth_internal.h"
#include "io/zip_format.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

/* PROTO 2, LONG1 of 10 bytes, STOP: the magic number's pickle. */
#define MAGIC_PICKLE_SIZE 15
#define LEGACY_PROTOCOL_VERSION 1001

/* Reads the storage key list and the storages after it into ld's table. */
static ics_status read_storages(ics_pth_loader *ld, const ics_pv *keys, const uint8_t *data,
                                size_t size, size_t pos, ics_error *err)
{
    if (keys->kind != ICS_PV_LIST)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: legacy storage key list is a %s, not a list",
                        ld->label, ics_pv_kind_name(keys->kind));
    for (size_t k = 0; k < keys->u.seq.len; k++) {
        const ics_pv *key = keys->u.seq.items[k];
        ics_pth_storage *s = NULL;
        for (size_t i = 0; key->kind == ICS_PV_STRING && i < ld->storage_count && !s; i++)
            if (strcmp(ld->storages[i].key, key->u.str.data) == 0) s = &ld->storages[i];
        if (!s || s->data)
            return ICS_FAIL(err, ICS_ERR_FORMAT,
                            "%s: legacy storage list names a storage the object does not use "
                            "(item %zu)",
                            ld->label, k);
        size_t elem = ics_pv_dtype_size(s->dtype);
        uint64_t numel = size - pos >= 8 ? ics_zip_rd64(data + pos) : UINT64_MAX;
        if (numel == UINT64_MAX || numel > (size - pos - 8) / elem)
            return ICS_FAIL(err, ICS_ERR_FORMAT,
                            "%s: legacy storage '%s' is truncated (at offset %zu)", ld->label,
                            s->key, pos);
        pos += 8;
        size_t bytes = (size_t)numel * elem;
        s->data = ics_malloc(bytes, s->key, err);
        if (!s->data) return ICS_ERR_NOMEM;
        if (bytes) memcpy(s->data, data + pos, bytes);
        s->size = bytes;
        pos += bytes;
    }
    return ICS_OK;
}

/* The three header pickles: magic, protocol version, little-endian sys_info. */
static ics_status read_header(ics_pv_arena *tmp, const uint8_t *data, size_t size,
                              const char *label, size_t *pos, ics_error *err)
{
    if (size < MAGIC_PICKLE_SIZE || data[MAGIC_PICKLE_SIZE - 1] != '.')
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: legacy torch.save header is damaged", label);
    *pos = MAGIC_PICKLE_SIZE;
    ics_pv *v;
    size_t used;
    ics_status st =
        ics_pickle_load_prefix(data + *pos, size - *pos, label, tmp, NULL, NULL, &v, &used, err);
    if (st != ICS_OK) return st;
    if (v->kind != ICS_PV_INT || v->u.i != LEGACY_PROTOCOL_VERSION)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: legacy torch.save protocol version is not %d",
                        label, LEGACY_PROTOCOL_VERSION);
    *pos += used;
    st = ics_pickle_load_prefix(data + *pos, size - *pos, label, tmp, NULL, NULL, &v, &used, err);
    if (st != ICS_OK) return st;
    const ics_pv *little = ics_pv_dict_get(v, "little_endian");
    if (!little || little->kind != ICS_PV_BOOL || !little->u.boolean)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: legacy file not written on a little-endian machine "
                        "(sys_info['little_endian'] is not True)",
                        label);
    *pos += used;
    return ICS_OK;
}

ics_status ics_pth_load_legacy(ics_pth *pth, const uint8_t *data, size_t size, const char *label,
                               ics_error *err)
{
    ics_pv_arena *tmp = ics_pv_arena_create(err);
    if (!tmp) return ICS_ERR_NOMEM;
    ics_pth_loader ld = {.zip = NULL, .label = label, .prefix = ""};
    ics_pickle_hooks hooks;
    size_t pos = 0, used = 0, object_at = 0;
    ics_pv *v = NULL;
    ics_status st = read_header(tmp, data, size, label, &pos, err);
    if (st == ICS_OK) {
        /* pass 1: which storages, of which dtypes */
        object_at = pos;
        ics_pth_loader_hooks(&ld, size, &hooks);
        ld.scanning = 1;
        st = ics_pickle_load_prefix(data + pos, size - pos, label, tmp, &hooks, NULL, &v, &used,
                                    err);
    }
    if (st == ICS_OK) {
        pos += used;
        st = ics_pickle_load_prefix(data + pos, size - pos, label, tmp, NULL, NULL, &v, &used, err);
    }
    if (st == ICS_OK) st = read_storages(&ld, v, data, size, pos + used, err);
    if (st == ICS_OK) {
        /* pass 2: the object, with its tensors */
        ics_pth_loader_hooks(&ld, size, &hooks);
        ld.scanning = 0;
        st = ics_pickle_load_prefix(data + object_at, size - object_at, label, pth->arena, &hooks,
                                    NULL, &pth->root, NULL, err);
    }
    pth->archive_name[0] = '\0';
    ics_pth_loader_release(&ld);
    ics_pv_arena_destroy(tmp);
    return st;
}
