/*
 * The configuration schema is assembled from section tables, one per
 * subsystem (schema_core.c here; schema_data.c, schema_optim.c beside their
 * code). A section that is not linked in is simply absent (weak symbols).
 */
#ifndef ICS_CONFIG_SCHEMA_H
#define ICS_CONFIG_SCHEMA_H

#include <icsparse/config.h>

extern const ics_config_key ics_schema_core[];
/* Owned by src/data and src/train; weak so the build works without them. */
extern const ics_config_key ics_schema_data[] __attribute__((weak));
extern const ics_config_key ics_schema_optim[] __attribute__((weak));

/* Edit distance between two keys, for "did you mean" suggestions. */
int ics_config_edit_distance(const char *a, const char *b);
/* The known key nearest to an unknown one, or NULL if none is close. */
const char *ics_config_suggest(const char *unknown);

#endif
