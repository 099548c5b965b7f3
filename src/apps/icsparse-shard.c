/* icsparse-shard: splits a dataset into N shards with one global seeded
 * permutation (parallel HDF5, any number of ranks, identical files), writes
 * the manifest; --verify checks shards against their manifest. */
#include "ics_build_config.h"
#include "apps/app.h"
#include "core/log.h"
#include "data/shard.h"
#include "dist/dist.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const ics_app_option options[] = {
    {"output", 'o', 1, "data.shards_dir", "DIR", NULL, "directory for the shards and manifest.json"},
    {"num-shards", 'n', 1, "data.num_shards", "N", NULL, "number of shard files (independent of the rank count)"},
    {"seed", 0, 1, "data.seed", "N", NULL, "seed of the global permutation"},
    {"data-dir", 'd', 1, "data.dir", "DIR", NULL, "directory of converted datasets"},
    {"verify", 0, 0, NULL, NULL, NULL, "only verify the shards in --output against their manifest"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL}};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static ics_status run(ics_app *app, ics_error *err)
{
    const ics_config *cfg = ics_app_config(app);
    const char *data_dir = ics_config_string(cfg, "data.dir");
    const char *name = ics_config_string(cfg, "data.dataset");
    char dataset[4096], shards[4096];
    if (ics_app_positional_count(app)) snprintf(dataset, sizeof dataset, "%s", ics_app_positional(app, 0));
    else if (ics_config_string(cfg, "data.path")[0]) snprintf(dataset, sizeof dataset, "%s", ics_config_string(cfg, "data.path"));
    else snprintf(dataset, sizeof dataset, "%s/%s.h5", data_dir, name);
    if (ics_config_string(cfg, "data.shards_dir")[0]) snprintf(shards, sizeof shards, "%s", ics_config_string(cfg, "data.shards_dir"));
    else snprintf(shards, sizeof shards, "%s/%s-shards", data_dir, name);

    double t0 = now_s();
    ics_status st = ICS_OK;
    if (ics_app_option_value(app, "verify")) {
        st = ics_shard_verify(shards, err);
        if (!st && ics_dist_rank() == 0) ICS_INFO("%s: every shard matches manifest.json (%.2f s)", shards, now_s() - t0);
        return st;
    }
    ics_shard_options o = {(int)ics_config_int(cfg, "data.num_shards"), (uint64_t)ics_config_int(cfg, "data.seed"), 0};
    if (ics_dist_rank() == 0)
        ICS_INFO("sharding %s into %d shards under %s on %d rank(s)", dataset, o.num_shards, shards, ics_dist_size());
    st = ics_shard_write(dataset, shards, &o, err);
    if (!st && ics_dist_rank() == 0) ICS_INFO("wrote %d shards and manifest.json in %.2f s", o.num_shards, now_s() - t0);
    return st;
}

int main(int argc, char **argv)
{
    static const ics_app_spec spec = {
        "icsparse-shard", "Split a dataset into N shards (one seeded permutation, parallel HDF5) with a manifest.",
        "[DATASET.h5]", 0, 1, options, 1, run};
    return ics_app_main(&spec, argc, argv);
}
