/*
 * Fuzz target for the .pth reader (libFuzzer's entry point), also driven
 * deterministically by tests/unit/test_pth_fuzz.c in make check.
 *
 * Input: a whole .pth file; or, when the first byte is 'P', a pickle
 * stream that is wrapped in a minimal torch.save archive (with a correct
 * CRC-32 and one 64-float storage "0") so that mutations reach the pickle
 * VM and the tensor rebuilding instead of stopping at the zip's CRC check.
 *
 * Contract checked: the reader returns an error with a message, or a tree
 * that can be walked completely; it never crashes, reads out of bounds or
 * leaks (the sanitizers watch that).
 */
#include "ics_build_config.h"
#include "io/pth_reader.h"
#include "io/zip_format.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads every byte of the tree, so the sanitizers see any bad pointer;
 * shared and cyclic structure is bounded by a visit budget. */
static uint64_t walk(const ics_pv *v, int depth, long *budget)
{
    if (!v) abort();
    if (depth > 200 || --*budget < 0) return 0;
    uint64_t h = (uint64_t)v->kind;
    switch (v->kind) {
    case ICS_PV_STRING:
    case ICS_PV_BYTES:
        for (size_t i = 0; i < v->u.str.len; i++)
            h = h * 31 + (uint8_t)v->u.str.data[i];
        if (v->u.str.data[v->u.str.len] != '\0') abort();
        break;
    case ICS_PV_TUPLE:
    case ICS_PV_LIST:
        for (size_t i = 0; i < v->u.seq.len; i++)
            h += walk(v->u.seq.items[i], depth + 1, budget);
        break;
    case ICS_PV_DICT:
        for (size_t i = 0; i < v->u.dict.len; i++)
            h += walk(v->u.dict.keys[i], depth + 1, budget) +
                 walk(v->u.dict.values[i], depth + 1, budget);
        break;
    case ICS_PV_TENSOR: {
        size_t bytes = v->u.tensor.numel * ics_pv_dtype_size(v->u.tensor.dtype);
        for (size_t i = 0; i < bytes; i++)
            h = h * 31 + ((const uint8_t *)v->u.tensor.data)[i];
        break;
    }
    case ICS_PV_OBJECT:
        h += strlen(v->u.object.class_name);
        if (v->u.object.args) h += walk(v->u.object.args, depth + 1, budget);
        if (v->u.object.state) h += walk(v->u.object.state, depth + 1, budget);
        break;
    case ICS_PV_GLOBAL:
        h += strlen(v->u.global.module) + strlen(v->u.global.name);
        break;
    case ICS_PV_STORAGE:
        h += strlen(v->u.storage.key) + strlen(v->u.storage.location);
        break;
    default:
        break;
    }
    return h;
}

static uint8_t *put_entry(uint8_t *p, uint8_t *cd, size_t *cd_len, uint32_t offset,
                          const char *name, const void *body, size_t len)
{
    size_t n = strlen(name);
    uint32_t crc = ics_crc32_update(0, body, len);
    uint8_t *h = p;
    memset(h, 0, ICS_ZIP_LOCAL_HEADER_SIZE);
    ics_zip_wr32(h, ICS_ZIP_LOCAL_SIG);
    ics_zip_wr32(h + 14, crc);
    ics_zip_wr32(h + 18, (uint32_t)len);
    ics_zip_wr32(h + 22, (uint32_t)len);
    ics_zip_wr16(h + 26, (uint16_t)n);
    memcpy(h + ICS_ZIP_LOCAL_HEADER_SIZE, name, n);
    memcpy(h + ICS_ZIP_LOCAL_HEADER_SIZE + n, body, len);
    uint8_t *c = cd + *cd_len;
    memset(c, 0, ICS_ZIP_CENTRAL_HEADER_SIZE);
    ics_zip_wr32(c, ICS_ZIP_CENTRAL_SIG);
    ics_zip_wr32(c + 16, crc);
    ics_zip_wr32(c + 20, (uint32_t)len);
    ics_zip_wr32(c + 24, (uint32_t)len);
    ics_zip_wr16(c + 28, (uint16_t)n);
    ics_zip_wr32(c + 42, offset);
    memcpy(c + ICS_ZIP_CENTRAL_HEADER_SIZE, name, n);
    *cd_len += ICS_ZIP_CENTRAL_HEADER_SIZE + n;
    return p + ICS_ZIP_LOCAL_HEADER_SIZE + n + len;
}

/* A minimal archive: f/data.pkl = the pickle, f/data/0 = 64 floats. */
static uint8_t *wrap_pickle(const uint8_t *pickle, size_t len, size_t *out_size)
{
    float storage[64];
    for (int i = 0; i < 64; i++)
        storage[i] = (float)i;
    size_t cap = len + sizeof storage + 512;
    uint8_t *buf = malloc(cap), cd[256];
    if (!buf) return NULL;
    size_t cd_len = 0;
    uint8_t *p = put_entry(buf, cd, &cd_len, 0, "f/data.pkl", pickle, len);
    p = put_entry(p, cd, &cd_len, (uint32_t)(p - buf), "f/data/0", storage, sizeof storage);
    uint32_t cd_offset = (uint32_t)(p - buf);
    memcpy(p, cd, cd_len);
    p += cd_len;
    memset(p, 0, ICS_ZIP_EOCD_SIZE);
    ics_zip_wr32(p, ICS_ZIP_EOCD_SIG);
    ics_zip_wr16(p + 8, 2);
    ics_zip_wr16(p + 10, 2);
    ics_zip_wr32(p + 12, (uint32_t)cd_len);
    ics_zip_wr32(p + 16, cd_offset);
    *out_size = (size_t)(p + ICS_ZIP_EOCD_SIZE - buf);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *wrapped = NULL;
    if (size >= 1 && data[0] == 'P') {
        wrapped = wrap_pickle(data + 1, size - 1, &size);
        if (!wrapped) return 0;
        data = wrapped;
    }
    ics_error err;
    ics_error_clear(&err);
    ics_pth *pth = NULL;
    ics_status st = ics_pth_load_memory(data, size, "fuzz.pth", &pth, &err);
    if (st == ICS_OK) {
        long budget = 100000;
        volatile uint64_t h = walk(ics_pth_root(pth), 0, &budget);
        (void)h;
        (void)ics_pth_state_dict(pth);
        ics_pth_destroy(pth);
    } else if (pth || err.message[0] == '\0' || err.status != st) {
        abort(); /* an error must come alone and say what it is */
    }
    free(wrapped);
    return 0;
}
