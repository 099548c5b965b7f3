/* icsparse-export: ONNX, TorchScript and .pth exports of a checkpoint. */
#include "ics_build_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <icsparse/export.h>

#include "apps/app.h"
#include "sparsify/oneshot.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static const ics_app_option options[] = {
    {"checkpoint", 'C', 1, NULL, "FILE", "RUN/model.h5, else RUN/ckpt/best.h5", "checkpoint to export"},
    {"output", 'o', 1, "export.dir", "DIR", NULL,
     "output directory (model.onnx, model.pth or model.pt; empty: RUN/export)"},
    {"format", 'f', 1, NULL, "onnx|torchscript|pth", "onnx", "what to write"},
    {"opset", 0, 1, "export.opset", "N", NULL, "ONNX opset (13..17)"},
    {"batch-size", 'b', 1, "export.batch_size", "N", NULL, "static batch size (0: dynamic)"},
    {"dynamic-shape", 0, 0, NULL, NULL, "off (export.dynamic_shape)", "dynamic height and width"},
    {"fold-bn", 0, 1, "export.fold_bn", "BOOL", NULL, "fold BatchNorm into convolutions"},
    {"one-shot", 0, 1, NULL, "RECIPE", "none",
     "apply a recipe's pruning and quantization first (no training); recipe.args apply"},
    {"calibration-data", 0, 1, NULL, "DATASET.h5", "the configured dataset (data.path)",
     "one-shot quantization: images its observers calibrate on"},
    {"calibration-batches", 0, 1, NULL, "N", "the recipe's num_calibration_steps, else 16",
     "one-shot quantization: batches of 64 images"},
    {"deployment-dir", 0, 1, NULL, "DIR", "none", "write DIR/deployment/{model.onnx,config.json}"},
    {"sparsezoo-dir", 0, 1, NULL, "DIR", "none", "write a SparseZoo-style model directory"},
    {"samples", 0, 1, NULL, "N", "4", "SparseZoo sample inputs/outputs (.npz) to write (0: none)"},
    {"samples-from", 0, 1, NULL, "SPLIT", "none (random inputs)",
     "take the SparseZoo samples from this split of the configured dataset (data.path)"},
    {"force", 0, 0, NULL, NULL, "off", "replace existing output files"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL}};

static ics_status run(ics_app *app, ics_error *err)
{
    const ics_config *cfg = ics_app_config(app);

    ics_export_format format = ICS_EXPORT_ONNX;
    const char *fmt = ics_app_option_value(app, "format");
    ics_status st = ics_export_format_parse(fmt ? fmt : "onnx", &format, err);
    if (st != ICS_OK) return st;

    ics_export_options opts;
    ics_export_options_default(&opts);
    opts.opset = (int)ics_config_int(cfg, "export.opset");
    opts.batch_size = (int)ics_config_int(cfg, "export.batch_size");
    opts.dynamic_shape = ics_app_option_value(app, "dynamic-shape") != NULL ||
                         ics_config_bool(cfg, "export.dynamic_shape");
    opts.fold_bn = ics_config_bool(cfg, "export.fold_bn");
    opts.force = ics_app_option_value(app, "force") != NULL;

    /* SparseZoo samples: --samples N, and --samples-from SPLIT of the
     * dataset icsparse-eval would read (data.path, else
     * data.dir/data.dataset.h5); without it random normal inputs. */
    const char *samples = ics_app_option_value(app, "samples");
    if (samples) {
        char *end = NULL;
        errno = 0;
        long n = strtol(samples, &end, 10);
        if (errno || end == samples || *end || n < 0 || n > 10000)
            return ICS_FAIL(err, ICS_ERR_CONFIG, "--samples: '%s' is not a count in 0..10000",
                            samples);
        opts.num_samples = (int)n;
    }
    char sample_dataset[4096];
    opts.sample_split = ics_app_option_value(app, "samples-from");
    if (opts.sample_split) {
        if (ics_config_string(cfg, "data.path")[0])
            snprintf(sample_dataset, sizeof sample_dataset, "%s",
                     ics_config_string(cfg, "data.path"));
        else
            snprintf(sample_dataset, sizeof sample_dataset, "%s/%s.h5",
                     ics_config_string(cfg, "data.dir"), ics_config_string(cfg, "data.dataset"));
        opts.sample_dataset = sample_dataset;
    }

    const char *run_dir = ics_config_string(cfg, "run.dir");
    char checkpoint[4096], output[4096];
    const char *given = ics_app_option_value(app, "checkpoint");
    if (given) {
        snprintf(checkpoint, sizeof checkpoint, "%s", given);
    } else {
        /* the run's consolidated model (the pipeline's consolidate step) */
        snprintf(checkpoint, sizeof checkpoint, "%s/model.h5", run_dir);
        if (access(checkpoint, R_OK) != 0) snprintf(checkpoint, sizeof checkpoint, "%s/ckpt/best.h5", run_dir);
    }
    const char *dir = ics_config_string(cfg, "export.dir");
    if (dir[0])
        snprintf(output, sizeof output, "%s", dir);
    else
        snprintf(output, sizeof output, "%s/export", run_dir);
    /* --one-shot: the recipe's pruning applied to the checkpoint first,
     * into OUTPUT/model-one-shot.h5 (kept: it is the exported model's
     * checkpoint, masks and recipe included). */
    const char *oneshot = ics_app_option_value(app, "one-shot");
    if (oneshot) {
        char sparse[4200];
        if (mkdir(output, 0777) != 0 && errno != EEXIST)
            return ICS_FAIL(err, ICS_ERR_IO, "cannot create %s: %s", output, strerror(errno));
        snprintf(sparse, sizeof sparse, "%s/model-one-shot.h5", output);
        const char *args = ics_config_string(cfg, "recipe.args");
        double sparsity = 0;
        /* calibration images for a recipe that quantizes: --calibration-data,
         * else the configured dataset's train split */
        ics_oneshot_calibration cal = {NULL, "train", 0, 64};
        char cal_dataset[4096] = "";
        const char *cal_given = ics_app_option_value(app, "calibration-data");
        if (cal_given)
            snprintf(cal_dataset, sizeof cal_dataset, "%s", cal_given);
        else if (ics_config_string(cfg, "data.path")[0])
            snprintf(cal_dataset, sizeof cal_dataset, "%s", ics_config_string(cfg, "data.path"));
        else
            snprintf(cal_dataset, sizeof cal_dataset, "%s/%s.h5", ics_config_string(cfg, "data.dir"),
                     ics_config_string(cfg, "data.dataset"));
        if (cal_given || access(cal_dataset, R_OK) == 0) cal.dataset = cal_dataset;
        const char *nb = ics_app_option_value(app, "calibration-batches");
        if (nb) {
            char *end = NULL;
            errno = 0;
            long n = strtol(nb, &end, 10);
            if (errno || end == nb || *end || n < 1 || n > 1000000)
                return ICS_FAIL(err, ICS_ERR_CONFIG, "--calibration-batches: '%s' is not a count >= 1", nb);
            cal.batches = (int)n;
        }
        st = ics_oneshot_checkpoint_calibrated(checkpoint, oneshot, args[0] ? args : NULL, &cal, sparse,
                                               &sparsity, err);
        if (st != ICS_OK) return st;
        fprintf(stderr, "icsparse-export: one-shot %s: sparsity %.2f%% -> %s\n", oneshot, 100 * sparsity, sparse);
        snprintf(checkpoint, sizeof checkpoint, "%s", sparse);
    }
    char written[4200];
    return ics_export_checkpoint(
        checkpoint, format, &opts, output, ics_app_option_value(app, "deployment-dir"),
        ics_app_option_value(app, "sparsezoo-dir"), written, sizeof written, err);
}

int main(int argc, char **argv)
{
    static const ics_app_spec spec = {
        "icsparse-export",
        "Export a checkpoint to ONNX (fp32 or int8 QDQ), TorchScript, a PyTorch .pth or a "
        "deployment directory.",
        NULL,
        0,
        0,
        options,
        0,
        run};
    return ics_app_main(&spec, argc, argv);
}
