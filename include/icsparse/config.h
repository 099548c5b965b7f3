/*
 * icsparse/config.h: the layered configuration.
 *
 * One schema names every key (section.key, e.g. "train.epochs") with its
 * type, default, allowed range and a one-line doc. Values come in layers,
 * later wins: built-in defaults < site file ($ICSPARSE_SITE_CONFIG or
 * /etc/icsparse/site.cfg) < job file (--config) < --set key=value. Each
 * value remembers where it came from. Unknown keys, wrong types and
 * out-of-range values are errors naming file, line and key (with the
 * nearest known key suggested for a typo).
 */
#ifndef ICSPARSE_CONFIG_H
#define ICSPARSE_CONFIG_H

#include <stdio.h>
#include <icsparse/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ics_config_type {
    ICS_CFG_INT,    /* 64-bit integer */
    ICS_CFG_FLOAT,  /* double; an integer literal is accepted */
    ICS_CFG_BOOL,
    ICS_CFG_STRING, /* choices, when given, is a "|"-separated list of allowed values */
    ICS_CFG_FLOAT_LIST
} ics_config_type;

/* One schema entry. */
typedef struct ics_config_key {
    const char *key;           /* "train.epochs" */
    ics_config_type type;
    const char *default_value; /* as text: "5", "0.1", "true", "sgd", "[30, 60]" */
    double min, max;           /* numeric range (inclusive); ignored when min > max */
    const char *choices;       /* strings only: "sgd|adam|adamw", or NULL for any */
    const char *doc;           /* one line */
} ics_config_key;

typedef struct ics_config ics_config;

/* Where a value came from. */
typedef enum ics_config_origin_kind {
    ICS_ORIGIN_DEFAULT,
    ICS_ORIGIN_SITE,
    ICS_ORIGIN_JOB,
    ICS_ORIGIN_SET
} ics_config_origin_kind;

/* A configuration holding every schema key at its default. */
ics_status ics_config_create(ics_config **out, ics_error *err);
void ics_config_destroy(ics_config *cfg);

/* Reads a libconfig file as the given layer (ICS_ORIGIN_SITE or _JOB). */
ics_status ics_config_load_file(ics_config *cfg, const char *path, ics_config_origin_kind layer,
                                ics_error *err);
/* Reads libconfig text (for tests and embedded defaults); name is used in errors. */
ics_status ics_config_load_string(ics_config *cfg, const char *text, const char *name,
                                  ics_config_origin_kind layer, ics_error *err);
/* Applies "key=value" from the command line. */
ics_status ics_config_set(ics_config *cfg, const char *assignment, ics_error *err);
/* Applies the site layer: $ICSPARSE_SITE_CONFIG if set (an error if that
 * file is missing), else /etc/icsparse/site.cfg if it exists. */
ics_status ics_config_load_site(ics_config *cfg, ics_error *err);

/* Typed getters; the key must exist in the schema with that type (a
 * programming error otherwise: the getter aborts with a message). */
long long ics_config_int(const ics_config *cfg, const char *key);
double ics_config_float(const ics_config *cfg, const char *key);
int ics_config_bool(const ics_config *cfg, const char *key);
const char *ics_config_string(const ics_config *cfg, const char *key);
/* Float list: returns the count and points *values at the array. */
int ics_config_float_list(const ics_config *cfg, const char *key, const double **values);
/* Where the key's value came from, as text: "default", "site /etc/x.cfg:12",
 * "job run.cfg:3", "--set". */
const char *ics_config_origin(const ics_config *cfg, const char *key);

/* What ics_config_print adds to each value. */
enum { ICS_CONFIG_PRINT_PLAIN = 0, ICS_CONFIG_PRINT_ORIGINS = 1, ICS_CONFIG_PRINT_DOCS = 2 };

/* The effective configuration in libconfig syntax, each value with its
 * origin as a comment (ICS_CONFIG_PRINT_ORIGINS: what --print-config prints
 * and checkpoints store) or with the schema's doc line above it
 * (ICS_CONFIG_PRINT_DOCS: conf/defaults.cfg). The output reads back. */
ics_status ics_config_print(const ics_config *cfg, FILE *out, int with_origins, ics_error *err);
/* The same into a malloc'd string (caller frees). */
char *ics_config_to_string(const ics_config *cfg, int with_origins, ics_error *err);

/* The schema, terminated by an entry with key == NULL. */
const ics_config_key *ics_config_schema(size_t *count);
const ics_config_key *ics_config_find_key(const char *key);

#ifdef __cplusplus
}
#endif
#endif
