/* Built-in classes of the pickle reader: see pickle_builtins.h. */
#include "ics_build_config.h"
#include "io/pickle_builtins.h"

#include <string.h>

static int global_is(const ics_pv *g, const char *module, const char *name)
{
    return strcmp(g->u.global.module, module) == 0 && strcmp(g->u.global.name, name) == 0;
}

/* Protocol 2 has no bytes opcode: Python 3 pickles bytes as
 * _codecs.encode(text, 'latin1'), whose code points are the byte values.
 * Decodes the UTF-8 of such text back into bytes. */
static ics_status latin1_bytes(ics_pv_arena *arena, const ics_pv *text, ics_pv **result,
                               ics_error *err)
{
    ics_pv *b = ics_pv_new_bytes(arena, "", 0, err);
    if (!b) return err->status;
    /* decoded in place in a copy: each byte needs at least one UTF-8 byte */
    char *out = ics_pv_arena_strdup(arena, text->u.str.data, text->u.str.len, err);
    if (!out) return err->status;
    const uint8_t *s = (const uint8_t *)text->u.str.data;
    size_t n = 0;
    for (size_t i = 0; i < text->u.str.len; i++) {
        if (s[i] < 0x80) {
            out[n++] = (char)s[i];
        } else if ((s[i] & 0xFE) == 0xC2 && i + 1 < text->u.str.len && (s[i + 1] & 0xC0) == 0x80) {
            out[n++] = (char)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3F));
            i++;
        } else {
            return ICS_FAIL(err, ICS_ERR_FORMAT, "latin-1 text holds a character above U+00FF");
        }
    }
    out[n] = '\0';
    b->u.str.data = out;
    b->u.str.len = n;
    *result = b;
    return ICS_OK;
}

static int is_latin1_name(const ics_pv *v)
{
    return v->kind == ICS_PV_STRING &&
           (strcmp(v->u.str.data, "latin1") == 0 || strcmp(v->u.str.data, "latin-1") == 0);
}

ics_status ics_pickle_builtin_call(ics_pv_arena *arena, const ics_pv *g, ics_pv *args,
                                   ics_pv **result, ics_error *err)
{
    if (global_is(g, "collections", "OrderedDict")) {
        ics_pv *d = ics_pv_new_dict(arena, 1, err);
        if (!d) return ICS_ERR_NOMEM;
        /* OrderedDict(iterable of pairs), as in copyreg's reduction */
        if (args->u.seq.len == 1 && args->u.seq.items[0]->kind == ICS_PV_LIST) {
            const ics_pv *pairs = args->u.seq.items[0];
            for (size_t i = 0; i < pairs->u.seq.len; i++) {
                const ics_pv *kv = pairs->u.seq.items[i];
                if ((kv->kind != ICS_PV_TUPLE && kv->kind != ICS_PV_LIST) || kv->u.seq.len != 2)
                    return ICS_FAIL(err, ICS_ERR_FORMAT, "OrderedDict item is not a pair");
                ics_status st =
                    ics_pv_dict_set(arena, d, kv->u.seq.items[0], kv->u.seq.items[1], err);
                if (st != ICS_OK) return st;
            }
        } else if (args->u.seq.len != 0) {
            return ICS_FAIL(err, ICS_ERR_FORMAT, "OrderedDict called with unexpected arguments");
        }
        *result = d;
    } else if ((global_is(g, "builtins", "set") || global_is(g, "builtins", "frozenset")) &&
               args->u.seq.len <= 1) {
        ics_pv *list = ics_pv_new(arena, ICS_PV_LIST, err);
        if (!list) return ICS_ERR_NOMEM;
        if (args->u.seq.len == 1) {
            const ics_pv *items = args->u.seq.items[0];
            if (items->kind != ICS_PV_LIST && items->kind != ICS_PV_TUPLE)
                return ICS_FAIL(err, ICS_ERR_FORMAT, "set built from a non-sequence");
            for (size_t i = 0; i < items->u.seq.len; i++) {
                ics_status st = ics_pv_seq_append(arena, list, items->u.seq.items[i], err);
                if (st != ICS_OK) return st;
            }
        }
        *result = list;
    } else if (global_is(g, "_codecs", "encode") || global_is(g, "builtins", "bytearray") ||
               global_is(g, "builtins", "bytes")) {
        /* encode(text, 'latin1'), bytes(), bytes(b), bytearray(text, 'latin-1') */
        ics_pv **a = args->u.seq.items;
        size_t n = args->u.seq.len;
        if (n == 2 && a[0]->kind == ICS_PV_STRING && is_latin1_name(a[1]))
            return latin1_bytes(arena, a[0], result, err);
        if (n == 1 && a[0]->kind == ICS_PV_BYTES && g->u.global.module[0] == 'b')
            *result = a[0];
        else if (n == 0 && g->u.global.module[0] == 'b' &&
                 !(*result = ics_pv_new_bytes(arena, "", 0, err)))
            return err->status;
    }
    return ICS_OK;
}
