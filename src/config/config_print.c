/*
 * Prints the effective configuration in libconfig syntax, grouped by
 * section, optionally with each value's origin as a comment. The output
 * reads back with ics_config_load_file (checkpoints store it).
 */
#include "ics_build_config.h"
#include "config/config_internal.h"
#include "config/schema.h"
#include "core/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The group part of a key ("train.ema" for "train.ema.decay"). */
static size_t group_len(const char *key)
{
    const char *dot = strrchr(key, '.');
    return dot ? (size_t)(dot - key) : 0;
}

/* Number of leading path components two group paths share. */
static int shared_depth(const char *a, size_t alen, const char *b, size_t blen)
{
    int depth = 0;
    size_t i = 0;
    while (i < alen && i < blen && a[i] == b[i]) {
        if (a[i] == '.') depth++;
        i++;
    }
    if ((i == alen || a[i] == '.') && (i == blen || b[i] == '.') && i > 0) depth++;
    return depth;
}

static int count_components(const char *g, size_t len)
{
    if (len == 0) return 0;
    int n = 1;
    for (size_t i = 0; i < len; i++) n += g[i] == '.';
    return n;
}

static void print_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (*s == '\t')
            fputs("\\t", out);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

/* A float that libconfig reads back as a float, exactly. */
static void print_float(FILE *out, double d)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", d);
    /* Prefer the shortest text that reads back to the same double. */
    for (int prec = 1; prec <= 17; prec++) {
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) {
            memcpy(buf, tmp, sizeof tmp);
            break;
        }
    }
    fputs(buf, out);
    if (!strpbrk(buf, ".eEn")) fputs(".0", out);
}

static void print_value(FILE *out, const ics_config_value *v)
{
    switch (v->key->type) {
    case ICS_CFG_INT:
        fprintf(out, "%lld%s", v->i, (v->i > 2147483647LL || v->i < -2147483648LL) ? "L" : "");
        break;
    case ICS_CFG_FLOAT: print_float(out, v->f); break;
    case ICS_CFG_BOOL: fputs(v->b ? "true" : "false", out); break;
    case ICS_CFG_STRING: print_string(out, v->s ? v->s : ""); break;
    case ICS_CFG_FLOAT_LIST:
        fputc('[', out);
        for (int i = 0; i < v->list_len; i++) {
            if (i) fputs(", ", out);
            print_float(out, v->list[i]);
        }
        fputc(']', out);
        break;
    }
}

static void indent(FILE *out, int depth)
{
    for (int i = 0; i < depth; i++) fputs("  ", out);
}

ics_status ics_config_print(const ics_config *cfg, FILE *out, int with_origins, ics_error *err)
{
    /* Order: groups by first appearance in the schema, keys in schema order
     * within a group, so sections spread over several tables print once. */
    size_t n = cfg->count;
    size_t *order = ics_malloc(sizeof(size_t) * (n ? n : 1), "configuration print order", err);
    if (!order) return ICS_ERR_NOMEM;
    size_t m = 0;
    char *done = ics_calloc(n ? n : 1, 1, "configuration print order", err);
    if (!done) {
        free(order);
        return ICS_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (done[i]) continue;
        const char *top = cfg->values[i].key->key;
        const char *dot = strchr(top, '.');
        size_t tlen = dot ? (size_t)(dot - top) : strlen(top);
        for (size_t j = i; j < n; j++) {
            const char *k = cfg->values[j].key->key;
            if (!done[j] && strncmp(k, top, tlen) == 0 && (k[tlen] == '.' || k[tlen] == '\0')) {
                order[m++] = j;
                done[j] = 1;
            }
        }
    }
    free(done);

    if (with_origins == ICS_CONFIG_PRINT_ORIGINS)
        fputs("# icsparse effective configuration (# origin of each value)\n", out);
    const char *open = "";
    size_t open_len = 0;
    int open_depth = 0;
    for (size_t oi = 0; oi < m; oi++) {
        const ics_config_value *v = &cfg->values[order[oi]];
        const char *key = v->key->key;
        size_t glen = group_len(key);
        int keep = shared_depth(open, open_len, key, glen);
        while (open_depth > keep) {
            open_depth--;
            indent(out, open_depth);
            fputs("};\n", out);
        }
        int want = count_components(key, glen);
        while (open_depth < want) {
            /* Component number open_depth of the key. */
            const char *c = key;
            for (int d = 0; d < open_depth; d++) c = strchr(c, '.') + 1;
            const char *e = strchr(c, '.');
            if (open_depth == 0 && oi > 0) fputc('\n', out);
            indent(out, open_depth);
            fprintf(out, "%.*s = {\n", (int)(e - c), c);
            open_depth++;
        }
        open = key;
        open_len = glen;
        if (with_origins == ICS_CONFIG_PRINT_DOCS) {
            const ics_config_key *k = v->key;
            indent(out, open_depth);
            fprintf(out, "# %s", k->doc);
            if (k->choices) fprintf(out, " (one of: %s)", k->choices);
            if (k->min <= k->max) fprintf(out, " [%g .. %g]", k->min, k->max);
            fputc('\n', out);
        }
        indent(out, open_depth);
        fprintf(out, "%s = ", key + (glen ? glen + 1 : 0));
        print_value(out, v);
        fputc(';', out);
        if (with_origins == ICS_CONFIG_PRINT_ORIGINS) fprintf(out, "  # %s", v->origin);
        fputc('\n', out);
    }
    while (open_depth > 0) {
        open_depth--;
        indent(out, open_depth);
        fputs("};\n", out);
    }
    free(order);
    return ICS_OK;
}

char *ics_config_to_string(const ics_config *cfg, int with_origins, ics_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem) {
        ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory printing the configuration");
        return NULL;
    }
    ics_status st = ics_config_print(cfg, mem, with_origins, err);
    fclose(mem);
    if (st) {
        free(buf);
        return NULL;
    }
    return buf;
}
