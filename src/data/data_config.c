/* data.* keys to loader options and files: see data_config.h. */
#include "ics_build_config.h"
#include "data/data_config.h"
#include "data/shard.h"
#include "core/alloc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ics_loader_options ics_loader_options_from_config(const ics_config *cfg, int train)
{
    ics_loader_options o = ics_loader_default_options();
    o.shuffle = train;
    o.drop_last = train && ics_config_bool(cfg, "data.drop_last");
    o.crop_padding = train ? (int)ics_config_int(cfg, "data.crop_padding") : 0;
    o.hflip = train && ics_config_bool(cfg, "data.hflip");
    o.random_resized_crop = train && ics_config_bool(cfg, "data.random_resized_crop");
    o.image_size = (int)ics_config_int(cfg, "data.image_size");
    o.normalize = ics_config_bool(cfg, "data.normalize");
    o.prefetch = ics_config_bool(cfg, "data.prefetch");
    return o;
}

void ics_data_files_free(char **paths, int count)
{
    for (int i = 0; paths && i < count; i++) free(paths[i]);
    free(paths);
}

static int is_part(const struct dirent *e)
{
    int s, m, used = 0;
    return sscanf(e->d_name, "part-%5d-of-%5d.h5%n", &s, &m, &used) == 2 && e->d_name[used] == '\0';
}

static ics_status list_shards(const char *dir, char ***paths, int *count, ics_error *err)
{
    struct dirent **list;
    int n = scandir(dir, &list, is_part, alphasort);
    if (n < 0) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot list the shards directory", dir);
    int total = 0;
    if (n > 0) sscanf(list[0]->d_name, "part-%*5d-of-%5d.h5", &total);
    ics_status st = ICS_OK;
    if (n == 0) st = ICS_FAIL(err, ICS_ERR_IO, "%s: no part-*-of-*.h5 shards (run icsparse-shard)", dir);
    else if (n != total) st = ICS_FAIL(err, ICS_ERR_IO, "%s: %d of %d shards present", dir, n, total);
    char **out = st ? NULL : ics_calloc((size_t)n, sizeof *out, "shard paths", err);
    if (!st && !out) st = ICS_ERR_NOMEM;
    for (int i = 0; !st && i < n; i++) {
        char expect[64];
        snprintf(expect, sizeof expect, "part-%05d-of-%05d.h5", i, total);
        if (strcmp(list[i]->d_name, expect) != 0) {
            st = ICS_FAIL(err, ICS_ERR_IO, "%s: shard %s is missing or misnamed", dir, expect);
            break;
        }
        size_t len = strlen(dir) + strlen(expect) + 2;
        if (!(out[i] = ics_malloc(len, "shard path", err))) st = ICS_ERR_NOMEM;
        else snprintf(out[i], len, "%s/%s", dir, expect);
    }
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
    if (st) {
        ics_data_files_free(out, n);
        return st;
    }
    *paths = out;
    *count = n;
    return ICS_OK;
}

ics_status ics_data_files_from_config(const ics_config *cfg, char ***paths, int *count, ics_error *err)
{
    *paths = NULL;
    *count = 0;
    const char *shards = ics_config_string(cfg, "data.shards_dir");
    if (shards[0]) return list_shards(shards, paths, count, err);
    char **out = ics_calloc(1, sizeof *out, "dataset path", err);
    if (!out) return ICS_ERR_NOMEM;
    const char *path = ics_config_string(cfg, "data.path");
    if (path[0]) {
        out[0] = ics_strdup(path, err);
    } else {
        const char *dir = ics_config_string(cfg, "data.dir"), *name = ics_config_string(cfg, "data.dataset");
        size_t len = strlen(dir) + strlen(name) + 8;
        if ((out[0] = ics_malloc(len, "dataset path", err))) snprintf(out[0], len, "%s/%s.h5", dir, name);
    }
    if (!out[0]) {
        free(out);
        return ICS_ERR_NOMEM;
    }
    *paths = out;
    *count = 1;
    return ICS_OK;
}
