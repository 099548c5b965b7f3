/* The configuration store, shared by config.c (layers) and config_print.c. */
#ifndef ICS_CONFIG_INTERNAL_H
#define ICS_CONFIG_INTERNAL_H

#include <icsparse/config.h>

typedef struct ics_config_value {
    const ics_config_key *key;
    long long i;
    double f;
    int b;
    char *s;
    double *list;
    int list_len;
    ics_config_origin_kind origin_kind;
    char *origin; /* "default", "site FILE:LINE", "job FILE:LINE", "--set" */
} ics_config_value;

struct ics_config {
    ics_config_value *values; /* one per schema key, in schema order */
    size_t count;
};

ics_config_value *ics_config_value_for(const ics_config *cfg, const char *key);

#endif
