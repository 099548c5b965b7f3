/* icsparse-consolidate: verifies and merges a sharded checkpoint. */
#include "ics_build_config.h"
#include "apps/app.h"

static const ics_app_option options[] = {
    {"run-dir", 0, 1, "run.dir", "DIR", NULL, "run directory to pick best checkpoints from"},
    {"checkpoint", 'C', 1, NULL, "FILE", "RUN/ckpt/last.h5", "checkpoint to verify and merge"},
    {"output", 'o', 1, NULL, "FILE", "RUN/model.h5", "merged checkpoint"},
    {"strip", 0, 0, NULL, NULL, "off", "drop optimizer, EMA and RNG state"},
    {"pick", 0, 1, NULL, "best|best_pruned|best_pruned_quantized|last", "best", "which checkpoint of the run"},
    {"from-pth", 0, 1, NULL, "FILE.pth", "none", "convert a PyTorch or SparseZoo checkpoint instead"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL}};

static ics_status run(ics_app *app, ics_error *err)
{
    (void)app;
    return ICS_FAIL(err, ICS_ERR_NOT_IMPLEMENTED, "consolidation is not implemented yet");
}

int main(int argc, char **argv)
{
    static const ics_app_spec spec = {
        "icsparse-consolidate", "Verify a (sharded) checkpoint, merge it into one file, pick the best of a run.",
        NULL, 0, 0, options, 1, run};
    return ics_app_main(&spec, argc, argv);
}
