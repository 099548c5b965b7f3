/* icsparse-eval: evaluates a checkpoint on a dataset split, or runs it on
 * given inputs and writes the logits. */
#include "ics_build_config.h"
#include "apps/app.h"

static const ics_app_option options[] = {
    {"checkpoint", 'C', 1, "eval.checkpoint", "FILE", NULL, "checkpoint to evaluate"},
    {"split", 0, 1, "eval.split", "SPLIT", NULL, "dataset split"},
    {"inputs", 0, 1, NULL, "FILE.h5", "none", "run on float inputs [N,H,W,C] from this HDF5 file instead"},
    {"logits-out", 0, 1, NULL, "FILE.h5", "none", "write the logits of --inputs here"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL}};

static ics_status run(ics_app *app, ics_error *err)
{
    (void)app;
    return ICS_FAIL(err, ICS_ERR_NOT_IMPLEMENTED, "evaluation is not implemented yet");
}

int main(int argc, char **argv)
{
    static const ics_app_spec spec = {
        "icsparse-eval", "Evaluate a checkpoint: loss, top-1 and top-5 on a split, or logits of given inputs.",
        NULL, 0, 0, options, 1, run};
    return ics_app_main(&spec, argc, argv);
}
