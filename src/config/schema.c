/* Assembles the schema from the section tables: see schema.h. */
#include "ics_build_config.h"
#include "config/schema.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static ics_config_key *schema;
static size_t schema_count;
static pthread_once_t schema_once = PTHREAD_ONCE_INIT;

static size_t section_length(const ics_config_key *section)
{
    size_t n = 0;
    if (section)
        while (section[n].key) n++;
    return n;
}

static void assemble(void)
{
    const ics_config_key *sections[] = {ics_schema_core, ics_schema_data, ics_schema_optim};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) total += section_length(sections[i]);
    /* Allocated once for the life of the process; a failure here leaves an
     * empty schema, which every later lookup reports as unknown keys. */
    schema = calloc(total + 1, sizeof *schema);
    if (!schema) return;
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
        size_t n = section_length(sections[i]);
        memcpy(schema + schema_count, sections[i], n * sizeof *schema);
        schema_count += n;
    }
}

const ics_config_key *ics_config_schema(size_t *count)
{
    pthread_once(&schema_once, assemble);
    if (count) *count = schema_count;
    return schema;
}

const ics_config_key *ics_config_find_key(const char *key)
{
    size_t n;
    const ics_config_key *keys = ics_config_schema(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].key, key) == 0) return &keys[i];
    return NULL;
}

int ics_config_edit_distance(const char *a, const char *b)
{
    /* Optimal string alignment distance: Levenshtein plus adjacent
     * transpositions, which are the commonest typos ("optim.lr" vs "optim.rl"). */
    size_t la = strlen(a), lb = strlen(b);
    if (la > 128 || lb > 128) return 1000;
    int d[129][129];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *ics_config_suggest(const char *unknown)
{
    size_t n;
    const ics_config_key *keys = ics_config_schema(&n);
    const char *best = NULL;
    int best_d = 1000;
    for (size_t i = 0; i < n; i++) {
        int dist = ics_config_edit_distance(unknown, keys[i].key);
        if (dist < best_d) {
            best_d = dist;
            best = keys[i].key;
        }
        /* An unknown group ("trian = {...}") is compared with the groups. */
        for (const char *dot = strchr(keys[i].key, '.'); dot; dot = strchr(dot + 1, '.')) {
            char group[128];
            size_t glen = (size_t)(dot - keys[i].key);
            if (glen >= sizeof group) break;
            memcpy(group, keys[i].key, glen);
            group[glen] = '\0';
            int gd = ics_config_edit_distance(unknown, group);
            if (gd < best_d) {
                best_d = gd;
                best = keys[i].key;
                /* Suggest the group itself, not one of its keys. */
                static __thread char best_group[128];
                memcpy(best_group, group, glen + 1);
                best = best_group;
            }
        }
        /* A right key name in the wrong section ("train.lr" for "optim.lr"). */
        const char *leaf = strrchr(keys[i].key, '.');
        const char *uleaf = strrchr(unknown, '.');
        if (leaf && uleaf && strcmp(leaf, uleaf) == 0 && best_d > 2) {
            best_d = 2;
            best = keys[i].key;
        }
    }
    /* Close enough to be a typo: a third of the length, at least 2. */
    int limit = (int)strlen(unknown) / 3;
    if (limit < 2) limit = 2;
    return best_d <= limit ? best : NULL;
}
