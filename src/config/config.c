/*
 * The layered configuration store: see include/icsparse/config.h.
 * libconfig reads the files; this file checks every setting against the
 * schema and records where each value came from.
 */
#include "ics_build_config.h"
#include "config/config_internal.h"
#include "config/schema.h"
#include "core/alloc.h"

#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifndef ICS_SYSCONFDIR
#define ICS_SYSCONFDIR "/etc"
#endif

ics_config_value *ics_config_value_for(const ics_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->count; i++)
        if (strcmp(cfg->values[i].key->key, key) == 0) return &cfg->values[i];
    return NULL;
}

static const char *type_name(ics_config_type t)
{
    switch (t) {
    case ICS_CFG_INT: return "an integer";
    case ICS_CFG_FLOAT: return "a number";
    case ICS_CFG_BOOL: return "a boolean (true or false)";
    case ICS_CFG_STRING: return "a string";
    case ICS_CFG_FLOAT_LIST: return "a list of numbers";
    }
    return "a value";
}

/* Range and choice checks shared by every layer; where names the setting
 * ("run.cfg:3: key" or "--set key"). */
static ics_status check_number(const ics_config_key *k, double v, const char *where, ics_error *err)
{
    if (isnan(v) || isinf(v)) return ICS_FAIL(err, ICS_ERR_CONFIG, "%s: value must be finite", where);
    if (k->min <= k->max && (v < k->min || v > k->max))
        return ICS_FAIL(err, ICS_ERR_CONFIG, "%s: value %g out of range [%g, %g]", where, v, k->min,
                        k->max);
    return ICS_OK;
}

static ics_status check_choice(const ics_config_key *k, const char *s, const char *where, ics_error *err)
{
    if (!k->choices) return ICS_OK;
    size_t n = strlen(s);
    for (const char *c = k->choices; *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, s, n) == 0) return ICS_OK;
        c += len + (bar ? 1 : 0);
    }
    return ICS_FAIL(err, ICS_ERR_CONFIG, "%s: '%s' is not one of %s", where, s, k->choices);
}

static ics_status set_origin(ics_config_value *v, ics_config_origin_kind kind, const char *origin,
                             ics_error *err)
{
    char *copy = ics_strdup(origin, err);
    if (!copy) return ICS_ERR_NOMEM;
    free(v->origin);
    v->origin = copy;
    v->origin_kind = kind;
    return ICS_OK;
}

static ics_status set_string(ics_config_value *v, const char *s, ics_error *err)
{
    char *copy = ics_strdup(s, err);
    if (!copy) return ICS_ERR_NOMEM;
    free(v->s);
    v->s = copy;
    return ICS_OK;
}

static int parse_bool(const char *s, int *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = 1, 1;
        if (strcasecmp(s, no[i]) == 0) return *out = 0, 1;
    }
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    while (*s == ' ') s++;
    if (!*s) return 0;
    *out = strtod(s, &end);
    while (*end == ' ') end++;
    return errno == 0 && *end == '\0';
}

static int parse_int(const char *s, long long *out)
{
    char *end;
    errno = 0;
    while (*s == ' ') s++;
    if (!*s) return 0;
    *out = strtoll(s, &end, 10);
    if (*end == 'L') end++; /* libconfig's 64-bit suffix */
    while (*end == ' ') end++;
    return errno == 0 && *end == '\0';
}

/* Parses a float list given as text: "[1, 2.5]" or "1,2.5" or "[]". */
static ics_status parse_list(const char *text, double **out, int *out_len, const char *where,
                             ics_error *err)
{
    char *copy = ics_strdup(text, err);
    if (!copy) return ICS_ERR_NOMEM;
    char *p = copy;
    while (*p == ' ') p++;
    if (*p == '[' || *p == '(') p++;
    char *close = strpbrk(p, "])");
    if (close) *close = '\0';
    int cap = 8, n = 0;
    double *vals = ics_malloc(sizeof(double) * (size_t)cap, "a list value", err);
    if (!vals) {
        free(copy);
        return ICS_ERR_NOMEM;
    }
    char *save = NULL;
    for (char *tok = strtok_r(p, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        double d;
        int blank = 1;
        for (char *c = tok; *c; c++) blank &= (*c == ' ');
        if (blank) continue;
        if (!parse_double(tok, &d)) {
            ics_status st = ICS_FAIL(err, ICS_ERR_CONFIG, "%s: '%s' is not a number", where, tok);
            free(vals);
            free(copy);
            return st;
        }
        if (n == cap) {
            double *grown = ics_realloc(vals, sizeof(double) * (size_t)(cap *= 2), "a list value", err);
            if (!grown) {
                free(vals);
                free(copy);
                return ICS_ERR_NOMEM;
            }
            vals = grown;
        }
        vals[n++] = d;
    }
    free(copy);
    *out = vals;
    *out_len = n;
    return ICS_OK;
}

/* Assigns a value given as text (defaults and --set) after type checks. */
static ics_status assign_text(ics_config_value *v, const char *text, const char *where, ics_error *err)
{
    const ics_config_key *k = v->key;
    ics_status st;
    switch (k->type) {
    case ICS_CFG_INT: {
        long long i;
        if (!parse_int(text, &i))
            return ICS_FAIL(err, ICS_ERR_CONFIG, "%s: '%s' is not %s", where, text, type_name(k->type));
        if ((st = check_number(k, (double)i, where, err))) return st;
        v->i = i;
        return ICS_OK;
    }
    case ICS_CFG_FLOAT: {
        double d;
        if (!parse_double(text, &d))
            return ICS_FAIL(err, ICS_ERR_CONFIG, "%s: '%s' is not %s", where, text, type_name(k->type));
        if ((st = check_number(k, d, where, err))) return st;
        v->f = d;
        return ICS_OK;
    }
    case ICS_CFG_BOOL:
        if (!parse_bool(text, &v->b))
            return ICS_FAIL(err, ICS_ERR_CONFIG, "%s: '%s' is not %s", where, text, type_name(k->type));
        return ICS_OK;
    case ICS_CFG_STRING: {
        /* --set a.b="x y" arrives with its quotes when the shell kept them. */
        size_t n = strlen(text);
        char buf[4096];
        if (n >= 2 && text[0] == '"' && text[n - 1] == '"' && n - 2 < sizeof buf) {
            memcpy(buf, text + 1, n - 2);
            buf[n - 2] = '\0';
            text = buf;
        }
        if ((st = check_choice(k, text, where, err))) return st;
        return set_string(v, text, err);
    }
    case ICS_CFG_FLOAT_LIST: {
        double *vals = NULL;
        int len = 0;
        if ((st = parse_list(text, &vals, &len, where, err))) return st;
        for (int i = 0; i < len; i++)
            if ((st = check_number(k, vals[i], where, err))) {
                free(vals);
                return st;
            }
        free(v->list);
        v->list = vals;
        v->list_len = len;
        return ICS_OK;
    }
    }
    return ICS_FAIL(err, ICS_ERR_CONFIG, "%s: unsupported type", where);
}

void ics_config_destroy(ics_config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < cfg->count; i++) {
        free(cfg->values[i].s);
        free(cfg->values[i].list);
        free(cfg->values[i].origin);
    }
    free(cfg->values);
    free(cfg);
}

ics_status ics_config_create(ics_config **out, ics_error *err)
{
    *out = NULL;
    size_t n;
    const ics_config_key *keys = ics_config_schema(&n);
    if (!keys) return ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory assembling the configuration schema");
    ics_config *cfg = ics_calloc(1, sizeof *cfg, "the configuration", err);
    if (!cfg) return ICS_ERR_NOMEM;
    cfg->values = ics_calloc(n ? n : 1, sizeof *cfg->values, "configuration values", err);
    if (!cfg->values) {
        free(cfg);
        return ICS_ERR_NOMEM;
    }
    cfg->count = n;
    for (size_t i = 0; i < n; i++) {
        ics_config_value *v = &cfg->values[i];
        v->key = &keys[i];
        char where[256];
        snprintf(where, sizeof where, "built-in default of %s", keys[i].key);
        ics_status st = assign_text(v, keys[i].default_value, where, err);
        if (!st) st = set_origin(v, ICS_ORIGIN_DEFAULT, "default", err);
        if (st) {
            ics_config_destroy(cfg);
            return st;
        }
    }
    *out = cfg;
    return ICS_OK;
}

/* Builds "a.b.c" for a libconfig setting. */
static void setting_path(const config_setting_t *s, char *buf, size_t size)
{
    const char *names[32];
    int depth = 0;
    for (const config_setting_t *p = s; p && config_setting_name(p) && depth < 32; p = config_setting_parent(p))
        names[depth++] = config_setting_name(p);
    buf[0] = '\0';
    size_t len = 0;
    for (int i = depth - 1; i >= 0; i--)
        len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s", names[i], i ? "." : "");
}

/* True when some schema key starts with "prefix." (a known group). */
static int is_known_group(const char *prefix)
{
    size_t n, len = strlen(prefix);
    const ics_config_key *keys = ics_config_schema(&n);
    for (size_t i = 0; i < n; i++)
        if (strncmp(keys[i].key, prefix, len) == 0 && keys[i].key[len] == '.') return 1;
    return 0;
}

static ics_status unknown_key(const char *file, int line, const char *path, ics_error *err)
{
    const char *near = ics_config_suggest(path);
    if (near)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "%s:%d: unknown key '%s' (did you mean '%s'?)", file, line,
                        path, near);
    return ICS_FAIL(err, ICS_ERR_CONFIG, "%s:%d: unknown key '%s'", file, line, path);
}

/* Applies one libconfig scalar or list setting to its schema value. */
static ics_status apply_setting(ics_config *cfg, const config_setting_t *s, const char *file,
                                ics_config_origin_kind layer, ics_error *err)
{
    char path[512];
    setting_path(s, path, sizeof path);
    int line = (int)config_setting_source_line(s);
    int type = config_setting_type(s);
    if (type == CONFIG_TYPE_GROUP) {
        if (!is_known_group(path)) {
            if (ics_config_find_key(path))
                return ICS_FAIL(err, ICS_ERR_CONFIG, "%s:%d: key '%s' is a value, not a group", file,
                                line, path);
            return unknown_key(file, line, path, err);
        }
        for (int i = 0; i < config_setting_length(s); i++) {
            ics_status st = apply_setting(cfg, config_setting_get_elem(s, (unsigned)i), file, layer, err);
            if (st) return st;
        }
        return ICS_OK;
    }
    ics_config_value *v = ics_config_value_for(cfg, path);
    if (!v) {
        if (is_known_group(path))
            return ICS_FAIL(err, ICS_ERR_CONFIG, "%s:%d: '%s' is a group of keys, not a value", file,
                            line, path);
        return unknown_key(file, line, path, err);
    }
    const ics_config_key *k = v->key;
    char where[700];
    snprintf(where, sizeof where, "%s:%d: %s", file, line, path);
    ics_status st = ICS_OK;
    int is_int = type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
    switch (k->type) {
    case ICS_CFG_INT:
        if (!is_int) goto wrong_type;
        if ((st = check_number(k, (double)config_setting_get_int64(s), where, err))) return st;
        v->i = config_setting_get_int64(s);
        break;
    case ICS_CFG_FLOAT:
        if (!is_int && type != CONFIG_TYPE_FLOAT) goto wrong_type;
        {
            double d = is_int ? (double)config_setting_get_int64(s) : config_setting_get_float(s);
            if ((st = check_number(k, d, where, err))) return st;
            v->f = d;
        }
        break;
    case ICS_CFG_BOOL:
        if (type != CONFIG_TYPE_BOOL) goto wrong_type;
        v->b = config_setting_get_bool(s);
        break;
    case ICS_CFG_STRING:
        if (type != CONFIG_TYPE_STRING) goto wrong_type;
        if ((st = check_choice(k, config_setting_get_string(s), where, err))) return st;
        if ((st = set_string(v, config_setting_get_string(s), err))) return st;
        break;
    case ICS_CFG_FLOAT_LIST: {
        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) goto wrong_type;
        int len = config_setting_length(s);
        double *vals = ics_malloc(sizeof(double) * (size_t)(len ? len : 1), "a list value", err);
        if (!vals) return ICS_ERR_NOMEM;
        for (int i = 0; i < len; i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            int et = config_setting_type(e);
            if (et == CONFIG_TYPE_INT || et == CONFIG_TYPE_INT64)
                vals[i] = (double)config_setting_get_int64(e);
            else if (et == CONFIG_TYPE_FLOAT)
                vals[i] = config_setting_get_float(e);
            else {
                free(vals);
                goto wrong_type;
            }
            if ((st = check_number(k, vals[i], where, err))) {
                free(vals);
                return st;
            }
        }
        free(v->list);
        v->list = vals;
        v->list_len = len;
        break;
    }
    }
    {
        char origin[700];
        snprintf(origin, sizeof origin, "%s %s:%d", layer == ICS_ORIGIN_SITE ? "site" : "job", file, line);
        return set_origin(v, layer, origin, err);
    }
wrong_type:
    return ICS_FAIL(err, ICS_ERR_CONFIG, "%s: expected %s", where, type_name(k->type));
}

static ics_status load_parsed(ics_config *cfg, config_t *lc, int ok, const char *name,
                              ics_config_origin_kind layer, ics_error *err)
{
    if (!ok) {
        ics_status st;
        if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
            st = ICS_FAIL(err, ICS_ERR_CONFIG, "%s: cannot read configuration file", name);
        else
            st = ICS_FAIL(err, ICS_ERR_CONFIG, "%s:%d: %s", name, config_error_line(lc),
                          config_error_text(lc));
        config_destroy(lc);
        return st;
    }
    const config_setting_t *root = config_root_setting(lc);
    for (int i = 0; i < config_setting_length(root); i++) {
        ics_status st = apply_setting(cfg, config_setting_get_elem(root, (unsigned)i), name, layer, err);
        if (st) {
            config_destroy(lc);
            return st;
        }
    }
    config_destroy(lc);
    return ICS_OK;
}

ics_status ics_config_load_file(ics_config *cfg, const char *path, ics_config_origin_kind layer,
                                ics_error *err)
{
    if (access(path, R_OK) != 0)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "%s: cannot read configuration file: %s", path,
                        strerror(errno));
    config_t lc;
    config_init(&lc);
    int ok = config_read_file(&lc, path) == CONFIG_TRUE;
    return load_parsed(cfg, &lc, ok, path, layer, err);
}

ics_status ics_config_load_string(ics_config *cfg, const char *text, const char *name,
                                  ics_config_origin_kind layer, ics_error *err)
{
    config_t lc;
    config_init(&lc);
    int ok = config_read_string(&lc, text) == CONFIG_TRUE;
    return load_parsed(cfg, &lc, ok, name, layer, err);
}

ics_status ics_config_load_site(ics_config *cfg, ics_error *err)
{
    const char *env = getenv("ICSPARSE_SITE_CONFIG");
    if (env && *env) {
        /* An explicit site file must exist, except the documented "none". */
        if (strcmp(env, "none") == 0 || strcmp(env, "/dev/null/none") == 0) return ICS_OK;
        return ics_config_load_file(cfg, env, ICS_ORIGIN_SITE, err);
    }
    const char *path = ICS_SYSCONFDIR "/icsparse/site.cfg";
    if (access(path, F_OK) != 0) path = "/etc/icsparse/site.cfg";
    if (access(path, F_OK) != 0) return ICS_OK;
    return ics_config_load_file(cfg, path, ICS_ORIGIN_SITE, err);
}

ics_status ics_config_set(ics_config *cfg, const char *assignment, ics_error *err)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "--set %s: expected key=value", assignment);
    char key[256];
    size_t klen = (size_t)(eq - assignment);
    if (klen >= sizeof key) return ICS_FAIL(err, ICS_ERR_CONFIG, "--set: key too long");
    memcpy(key, assignment, klen);
    key[klen] = '\0';
    ics_config_value *v = ics_config_value_for(cfg, key);
    if (!v) {
        const char *near = ics_config_suggest(key);
        if (near)
            return ICS_FAIL(err, ICS_ERR_CONFIG, "--set %s: unknown key '%s' (did you mean '%s'?)",
                            assignment, key, near);
        return ICS_FAIL(err, ICS_ERR_CONFIG, "--set %s: unknown key '%s'", assignment, key);
    }
    char where[600];
    snprintf(where, sizeof where, "--set %s", key);
    ics_status st = assign_text(v, eq + 1, where, err);
    if (st) return st;
    return set_origin(v, ICS_ORIGIN_SET, "--set", err);
}

/* Getters: a wrong key or type is a bug in icsparse, not user input. */
static const ics_config_value *typed(const ics_config *cfg, const char *key, ics_config_type type)
{
    const ics_config_value *v = ics_config_value_for(cfg, key);
    if (!v || v->key->type != type) {
        fprintf(stderr, "icsparse internal error: configuration key '%s' %s\n", key,
                v ? "read with the wrong type" : "is not in the schema");
        abort();
    }
    return v;
}

long long ics_config_int(const ics_config *cfg, const char *key) { return typed(cfg, key, ICS_CFG_INT)->i; }
double ics_config_float(const ics_config *cfg, const char *key) { return typed(cfg, key, ICS_CFG_FLOAT)->f; }
int ics_config_bool(const ics_config *cfg, const char *key) { return typed(cfg, key, ICS_CFG_BOOL)->b; }
const char *ics_config_string(const ics_config *cfg, const char *key) { return typed(cfg, key, ICS_CFG_STRING)->s; }

int ics_config_float_list(const ics_config *cfg, const char *key, const double **values)
{
    const ics_config_value *v = typed(cfg, key, ICS_CFG_FLOAT_LIST);
    if (values) *values = v->list;
    return v->list_len;
}

const char *ics_config_origin(const ics_config *cfg, const char *key)
{
    const ics_config_value *v = ics_config_value_for(cfg, key);
    return v ? v->origin : NULL;
}
