/* icsparse-eval: evaluates a checkpoint on a dataset split, or runs it on
 * given inputs and writes the logits. */
#include "ics_build_config.h"
#include "apps/app.h"

#include "core/log.h"
#include "dist/dist.h"
#include "train/eval_run.h"

#include <stdio.h>

static const ics_app_option options[] = {
    {"checkpoint", 'C', 1, "eval.checkpoint", "FILE", NULL, "checkpoint to evaluate"},
    {"split", 0, 1, "eval.split", "SPLIT", NULL, "dataset split"},
    {"run-dir", 'o', 1, "run.dir", "DIR", NULL, "run directory (results.json; default checkpoint)"},
    {"inputs", 0, 1, NULL, "FILE.h5", "none", "run on float inputs /inputs [N,H,W,C] from this HDF5 file instead"},
    {"logits-out", 0, 1, NULL, "FILE.h5", "none", "write the logits of --inputs here as /logits [N,classes]"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL}};

static ics_status run(ics_app *app, ics_error *err)
{
    const ics_config *cfg = ics_app_config(app);
    char checkpoint[1100];
    ics_status st = ics_eval_pick_checkpoint(cfg, checkpoint, sizeof checkpoint, err);
    if (st) return st;
    const char *inputs = ics_app_option_value(app, "inputs");
    const char *logits = ics_app_option_value(app, "logits-out");
    if (inputs || logits) {
        if (!inputs || !logits)
            return ICS_FAIL(err, ICS_ERR_CONFIG, "--inputs and --logits-out go together");
        if (ics_dist_size() > 1) return ICS_FAIL(err, ICS_ERR_CONFIG, "--inputs runs on one process");
        st = ics_eval_logits(checkpoint, inputs, logits, err);
        if (!st) ICS_INFO("wrote %s", logits);
        return st;
    }
    ics_eval_result r;
    double sparsity = 0;
    st = ics_eval_checkpoint(cfg, checkpoint, &r, &sparsity, err);
    if (st) return st;
    const char *split = ics_config_string(cfg, "eval.split");
    if (ics_dist_rank() == 0)
        printf("%s on %s: loss %.4f top-1 %.2f%% top-5 %.2f%% (%lld images), sparsity %.2f%%\n", checkpoint, split,
               r.loss, r.top1, r.top5, (long long)r.count, 100 * sparsity);
    return ics_eval_write_results(cfg, checkpoint, split, &r, sparsity, err);
}

int main(int argc, char **argv)
{
    static const ics_app_spec spec = {
        "icsparse-eval", "Evaluate a checkpoint: loss, top-1 and top-5 on a split, or logits of given inputs.",
        NULL, 0, 0, options, 1, run};
    return ics_app_main(&spec, argc, argv);
}
