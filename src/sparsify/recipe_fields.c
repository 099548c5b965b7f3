/*
 * Field access for the modifier bind functions: typed reads of a
 * modifier's evaluated fields, errors that point at a field's line and
 * column, and storage owned by the modifier for the arrays its typed
 * record points to.
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"
#include "core/alloc.h"
#include "core/log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const rv *rmod_get(const rmod *m, const char *key)
{
    return rv_map_get(&m->fields, key);
}

double rmod_num(const rmod *m, const char *key, double dflt)
{
    const rv *v = rmod_get(m, key);
    return rv_is_number(v) ? v->num : dflt;
}

int rmod_bool(const rmod *m, const char *key, int dflt)
{
    const rv *v = rmod_get(m, key);
    return v && v->kind == RV_BOOL ? v->b : dflt;
}

const char *rmod_str(const rmod *m, const char *key)
{
    const rv *v = rmod_get(m, key);
    return v && v->kind == RV_STRING ? v->s : NULL;
}

/* An error at a field (or the modifier when the field is a default). */
ics_status rmod_field_fail(const rmod *m, const char *source, const char *key, ics_error *err,
                           const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const rv *v = key ? rmod_get(m, key) : NULL;
    int line = v && v->line ? v->line : m->pub.line;
    int column = v && v->line ? v->column : m->pub.column;
    return RECIPE_FAIL(err, source, line, column, "%s: %s", m->pub.type_name, msg);
}

void *rmod_alloc(rmod *m, size_t bytes, ics_error *err)
{
    void **allocs =
        ics_realloc(m->allocs, (m->alloc_count + 1) * sizeof *allocs, "modifier storage", err);
    if (!allocs) return NULL;
    m->allocs = allocs;
    void *p = ics_calloc(1, bytes ? bytes : 1, "modifier storage", err);
    if (!p) return NULL;
    m->allocs[m->alloc_count++] = p;
    return p;
}

/* A list value (of strings, or numbers for output keys) as a name list
 * pointing into the value. */
ics_status rmod_names(rmod *m, const rv *list, ics_name_list *out, ics_error *err)
{
    memset(out, 0, sizeof *out);
    if (!list || list->kind != RV_LIST) return ICS_OK;
    const char **names = rmod_alloc(m, list->count * sizeof *names, err);
    int *lines = rmod_alloc(m, list->count * sizeof *lines, err);
    int *columns = rmod_alloc(m, list->count * sizeof *columns, err);
    if (!names || !lines || !columns) return err ? err->status : ICS_ERR_NOMEM;
    for (size_t i = 0; i < list->count; i++) {
        const rv *item = &list->items[i];
        if (item->kind == RV_STRING) {
            names[i] = item->s;
        } else {
            /* numeric output keys (distill_output_keys: [0]) as text */
            char *text = rmod_alloc(m, 32, err);
            if (!text) return err ? err->status : ICS_ERR_NOMEM;
            snprintf(text, 32, "%.17g", item->num);
            names[i] = text;
        }
        lines[i] = item->line;
        columns[i] = item->column;
    }
    out->count = list->count;
    out->names = names;
    out->lines = lines;
    out->columns = columns;
    return ICS_OK;
}

ics_status rmod_check_fraction(const rmod *m, const char *source, const char *key, double v,
                               ics_error *err)
{
    if (!(v >= 0.0 && v < 1.0))
        return rmod_field_fail(m, source, key, err, "%s must be in [0, 1), got %g", key, v);
    return ICS_OK;
}
