/*
 * Evaluated recipe values (null, bool, int, float, string, list, mapping)
 * and their YAML flow-style text. Numbers are written so that they read
 * back to the same double and keep their int/float kind, and in a form
 * PyYAML also reads as a float (a point in the mantissa, a signed
 * exponent: YAML 1.1 reads "1e-05" as a string).
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"
#include "core/alloc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rv_clear(rv *v)
{
    if (!v) return;
    for (size_t i = 0; i < v->count; i++) {
        rv_clear(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->s);
    memset(v, 0, sizeof *v);
}

ics_status rv_copy(rv *dst, const rv *src, ics_error *err)
{
    *dst = *src;
    dst->s = NULL;
    dst->items = NULL;
    dst->keys = NULL;
    dst->count = 0;
    if (src->s && !(dst->s = ics_strdup(src->s, err))) return err ? err->status : ICS_ERR_NOMEM;
    for (size_t i = 0; i < src->count; i++) {
        rv item;
        ics_status st = rv_copy(&item, &src->items[i], err);
        if (st == ICS_OK)
            st = src->kind == RV_MAP ? rv_map_put(dst, src->keys[i], &item, err)
                                     : rv_list_push(dst, &item, err);
        if (st != ICS_OK) {
            rv_clear(&item);
            rv_clear(dst);
            return st;
        }
    }
    return ICS_OK;
}

static ics_status rv_grow(rv *v, int with_keys, ics_error *err)
{
    /* grow by one each time: lists are short (tens of names) */
    rv *items = ics_realloc(v->items, (v->count + 1) * sizeof *items, "recipe value list", err);
    if (!items) return err ? err->status : ICS_ERR_NOMEM;
    v->items = items;
    if (with_keys) {
        char **keys = ics_realloc(v->keys, (v->count + 1) * sizeof *keys, "recipe value keys", err);
        if (!keys) return err ? err->status : ICS_ERR_NOMEM;
        v->keys = keys;
    }
    return ICS_OK;
}

ics_status rv_list_push(rv *list, rv *item, ics_error *err)
{
    ics_status st = rv_grow(list, 0, err);
    if (st != ICS_OK) return st;
    list->items[list->count++] = *item;
    memset(item, 0, sizeof *item);
    return ICS_OK;
}

ics_status rv_map_put(rv *map, const char *key, rv *item, ics_error *err)
{
    rv *existing = rv_map_get(map, key);
    if (existing) {
        rv_clear(existing);
        *existing = *item;
        memset(item, 0, sizeof *item);
        return ICS_OK;
    }
    char *k = ics_strdup(key, err);
    if (!k) return err ? err->status : ICS_ERR_NOMEM;
    ics_status st = rv_grow(map, 1, err);
    if (st != ICS_OK) {
        free(k);
        return st;
    }
    map->keys[map->count] = k;
    map->items[map->count++] = *item;
    memset(item, 0, sizeof *item);
    return ICS_OK;
}

rv *rv_map_get(const rv *map, const char *key)
{
    if (!map || map->kind != RV_MAP) return NULL;
    for (size_t i = 0; i < map->count; i++)
        if (strcmp(map->keys[i], key) == 0) return &map->items[i];
    return NULL;
}

int rv_is_number(const rv *v)
{
    return v && (v->kind == RV_INT || v->kind == RV_FLOAT);
}

int rv_equal(const rv *a, const rv *b)
{
    if (rv_is_number(a) && rv_is_number(b)) return a->num == b->num;
    if (a->kind != b->kind || a->count != b->count) return 0;
    switch (a->kind) {
    case RV_NULL:
        return 1;
    case RV_BOOL:
        return a->b == b->b;
    case RV_STRING:
        return strcmp(a->s, b->s) == 0;
    default:
        break;
    }
    for (size_t i = 0; i < a->count; i++) {
        if (a->kind == RV_MAP && strcmp(a->keys[i], b->keys[i]) != 0) return 0;
        if (!rv_equal(&a->items[i], &b->items[i])) return 0;
    }
    return 1;
}

void rbuf_printf(rbuf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = room ? vsnprintf(b->data + b->len, room, fmt, ap) : -2;
        va_end(ap);
        if (n >= 0 && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t want = b->cap ? b->cap * 2 : 1024;
        if (n >= 0)
            while (want < b->len + (size_t)n + 1)
                want *= 2;
        /* plain realloc: a failure is reported by the caller through b->failed */
        char *data = realloc(b->data, want);
        if (!data) {
            b->failed = 1;
            return;
        }
        b->data = data;
        b->cap = want;
    }
}

void rbuf_number(rbuf *b, double v, int is_int)
{
    if (is_int && fabs(v) < 1e18) {
        rbuf_printf(b, "%lld", (long long)v);
        return;
    }
    char text[64];
    /* the shortest %g that reads back to the same double */
    int precision = 1;
    for (; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, v);
        if (strtod(text, NULL) == v) break;
    }
    /* %g switches to an exponent once it exceeds the precision (90 -> 9e+01);
     * between 1e-4 and 1e16 write all the digits instead */
    double mag = fabs(v);
    if (strpbrk(text, "eE") && mag >= 1e-4 && mag < 1e16) {
        int digits = (int)floor(log10(mag)) + 1;
        snprintf(text, sizeof text, "%.*g", digits > precision ? digits : precision, v);
    }
    char *e = strpbrk(text, "eE");
    if (!strchr(text, '.')) {
        if (e) {
            char mantissa[64];
            size_t m = (size_t)(e - text);
            memcpy(mantissa, text, m);
            mantissa[m] = '\0';
            rbuf_printf(b, "%s.0%s", mantissa, e);
            return;
        }
        rbuf_printf(b, "%s.0", text);
        return;
    }
    rbuf_printf(b, "%s", text);
}

void rbuf_string(rbuf *b, const char *s)
{
    int control = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        control |= *p < 0x20 || *p == 0x7f;
    if (!control) {
        /* single-quoted YAML: only ' needs escaping (as '') */
        rbuf_printf(b, "'");
        for (const char *p = s; *p; p++) {
            if (*p == '\'')
                rbuf_printf(b, "''");
            else
                rbuf_printf(b, "%c", *p);
        }
        rbuf_printf(b, "'");
        return;
    }
    /* a newline or tab would be folded in single quotes: double-quoted with
     * escapes keeps every character */
    rbuf_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n')
            rbuf_printf(b, "\\n");
        else if (*p == '\t')
            rbuf_printf(b, "\\t");
        else if (*p == '"' || *p == '\\')
            rbuf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            rbuf_printf(b, "\\x%02x", *p);
        else
            rbuf_printf(b, "%c", *p);
    }
    rbuf_printf(b, "\"");
}

/* A mapping key: plain when it is a simple name or number, else quoted. */
static void rbuf_key(rbuf *b, const char *key)
{
    int simple = key[0] != '\0';
    for (const char *p = key; *p; p++)
        simple &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || (*p == '-' && p != key);
    if (simple)
        rbuf_printf(b, "%s", key);
    else
        rbuf_string(b, key);
}

void rbuf_value(rbuf *b, const rv *v)
{
    switch (v->kind) {
    case RV_NULL:
        rbuf_printf(b, "null");
        break;
    case RV_BOOL:
        rbuf_printf(b, "%s", v->b ? "true" : "false");
        break;
    case RV_INT:
        rbuf_number(b, v->num, 1);
        break;
    case RV_FLOAT:
        rbuf_number(b, v->num, 0);
        break;
    case RV_STRING:
        rbuf_string(b, v->s);
        break;
    case RV_LIST:
        rbuf_printf(b, "[");
        for (size_t i = 0; i < v->count; i++) {
            if (i) rbuf_printf(b, ", ");
            rbuf_value(b, &v->items[i]);
        }
        rbuf_printf(b, "]");
        break;
    case RV_MAP:
        rbuf_printf(b, "{");
        for (size_t i = 0; i < v->count; i++) {
            if (i) rbuf_printf(b, ", ");
            rbuf_key(b, v->keys[i]);
            rbuf_printf(b, ": ");
            rbuf_value(b, &v->items[i]);
        }
        rbuf_printf(b, "}");
        break;
    }
}
