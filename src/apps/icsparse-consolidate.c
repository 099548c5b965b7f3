/* icsparse-consolidate: verifies a checkpoint and merges it into one
 * self-contained file (a sharded checkpoint's per-rank parts included);
 * picks the best checkpoints of a run. */
#include "ics_build_config.h"
#include "apps/app.h"

#include "core/log.h"
#include "dist/dist.h"
#include "io/consolidate.h"
#include "io/pth_import.h"

#include <stdio.h>
#include <string.h>

static const ics_app_option options[] = {
    {"run-dir", 0, 1, "run.dir", "DIR", NULL, "run directory to pick the checkpoint from"},
    {"checkpoint", 'C', 1, NULL, "FILE", "RUN/ckpt/<pick>.h5", "checkpoint to verify and merge"},
    {"output", 'o', 1, NULL, "FILE", "RUN/model.h5", "merged checkpoint"},
    {"strip", 0, 0, "consolidate.strip_training_state", NULL, NULL, "drop optimizer and EMA state"},
    {"pick", 0, 1, NULL, "best|best_pruned|best_pruned_quantized|last", "best_pruned_quantized",
     "which checkpoint of the run (a missing one falls back to the next: best_pruned_quantized, best_pruned, best, "
     "last)"},
    {"verify-only", 0, 0, NULL, NULL, "off", "only verify; write nothing"},
    {"from-pth", 0, 1, NULL, "FILE.pth", "none", "convert a PyTorch or SparseZoo checkpoint instead"},
    {"arch", 0, 1, NULL, "ARCH", "the file's arch_key", "architecture of the --from-pth file"},
    {"input-size", 0, 1, NULL, "N|HxW", "224", "input size the --from-pth model is built for"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL}};

/* --from-pth: a PyTorch / SparseZoo checkpoint becomes an icsparse one
 * (src/io/pth_import.c). The architecture is --arch, else the file's
 * arch_key; model.* keys give the options, with the class count and input
 * channels read from the file when left at 0. */
static ics_status from_pth(ics_app *app, ics_error *err)
{
    const ics_config *cfg = ics_app_config(app);
    const char *pth = ics_app_option_value(app, "from-pth");
    const char *size = ics_app_option_value(app, "input-size");
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = (int)ics_config_int(cfg, "model.num_classes");
    o.in_channels = (int)ics_config_int(cfg, "model.in_channels");
    o.width_mult = (float)ics_config_float(cfg, "model.width_mult");
    o.cifar_stem = ics_config_bool(cfg, "model.cifar_stem");
    o.dropout = (float)ics_config_float(cfg, "model.dropout");
    if (size) {
        char extra;
        int ok = sscanf(size, "%d%c", &o.in_h, &extra) == 1;
        if (ok)
            o.in_w = o.in_h;
        else
            ok = sscanf(size, "%dx%d%c", &o.in_h, &o.in_w, &extra) == 2;
        if (!ok || o.in_h < 1 || o.in_w < 1 || o.in_h > 65536 || o.in_w > 65536)
            return ICS_FAIL(err, ICS_ERR_CONFIG, "--input-size '%s': expected N or HxW", size);
    }
    const char *arch = ics_app_option_value(app, "arch");
    char out[1200];
    const char *output = ics_app_option_value(app, "output");
    if (output)
        snprintf(out, sizeof out, "%s", output);
    else
        snprintf(out, sizeof out, "%s/model.h5", ics_config_string(cfg, "run.dir"));
    ics_status st = ICS_OK;
    if (ics_dist_rank() == 0) {
        st = ics_pth_import_to_checkpoint(pth, arch, &o, out, err);
        if (!st) printf("%s -> %s\n", pth, out);
    }
    return ics_dist_agree(st, err);
}

static ics_status run(ics_app *app, ics_error *err)
{
    const ics_config *cfg = ics_app_config(app);
    if (ics_app_option_value(app, "from-pth")) return from_pth(app, err);
    /* One process does the work; the other ranks of an MPI launch wait. */
    ics_status st = ICS_OK;
    if (ics_dist_rank() == 0) {
        const char *run_dir = ics_config_string(cfg, "run.dir");
        char in[1200], out[1200];
        const char *given = ics_app_option_value(app, "checkpoint");
        const char *pick = ics_app_option_value(app, "pick");
        if (given)
            snprintf(in, sizeof in, "%s", given);
        else
            st = ics_run_pick_checkpoint(run_dir, pick ? pick : "best_pruned_quantized", in, sizeof in, err);
        const char *output = ics_app_option_value(app, "output");
        if (output)
            snprintf(out, sizeof out, "%s", output);
        else
            snprintf(out, sizeof out, "%s/model.h5", run_dir);
        ics_verify_report rep;
        if (!st) st = ics_checkpoint_verify(in, &rep, err);
        if (!st && rep.shards)
            ICS_INFO("verified %s and its %d parts: %d tensors, %d masks, %d optimizer and %d EMA tensors, sparsity "
                     "%.2f%%", in, rep.shards, rep.tensors, rep.masks, rep.optimizer_tensors, rep.ema_tensors,
                     100 * rep.sparsity);
        else if (!st)
            ICS_INFO("verified %s: %d tensors, %d masks, %d optimizer and %d EMA tensors, sparsity %.2f%%", in,
                     rep.tensors, rep.masks, rep.optimizer_tensors, rep.ema_tensors, 100 * rep.sparsity);
        if (!st && !ics_app_option_value(app, "verify-only")) {
            int strip = ics_config_bool(cfg, "consolidate.strip_training_state");
            st = ics_checkpoint_consolidate(in, out, strip, err);
            if (!st) printf("%s -> %s%s\n", in, out, strip ? " (training state stripped)" : "");
        }
    }
    return ics_dist_agree(st, err);
}

int main(int argc, char **argv)
{
    static const ics_app_spec spec = {
        "icsparse-consolidate", "Verify a checkpoint, merge it into one file, pick the best of a run.",
        NULL, 0, 0, options, 1, run};
    return ics_app_main(&spec, argc, argv);
}
