/*
 * examples/export_api.c: exporting a checkpoint from a user's own program
 * through the public API only (icsparse/checkpoint.h, icsparse/export.h,
 * icsparse/qat.h):
 *
 *   export_api CHECKPOINT.h5 OUT_DIR
 *
 * Loads the checkpoint's model ready to run (a QAT checkpoint gets the
 * structure its recipe gives first), then writes OUT_DIR/model.onnx with a
 * dynamic batch (fp32, or int8 QDQ for a QAT model), OUT_DIR/model-b4.onnx
 * with a static batch of 4 and dynamic height and width where the model
 * allows it, and the deployment directory OUT_DIR/deployment. Prints what
 * it wrote, the model's sparsity and whether it is quantized.
 */
#include <icsparse/checkpoint.h>
#include <icsparse/export.h>
#include <icsparse/qat.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int fail(const char *what, const ics_error *err)
{
    fprintf(stderr, "export_api: %s: %s\n", what, err->message);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: export_api CHECKPOINT.h5 OUT_DIR\n");
        return 2;
    }
    ics_error err;
    ics_error_clear(&err);
    ics_checkpoint_reader *r = NULL;
    ics_model *model = NULL;
    if (ics_checkpoint_open(argv[1], &r, &err) != ICS_OK) return fail("opening the checkpoint", &err);
    ics_status st = ics_checkpoint_load_model(r, &model, &err);
    ics_checkpoint_close(r);
    if (st != ICS_OK) return fail("loading the model", &err);

    int rc = 0;
    char path[4096];
    if (mkdir(argv[2], 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "export_api: cannot create %s: %s\n", argv[2], strerror(errno));
        ics_model_destroy(model);
        return 1;
    }
    ics_export_options opts;
    ics_export_options_default(&opts); /* opset 13, dynamic batch, BN folded */
    opts.force = 1;
    snprintf(path, sizeof path, "%s/model.onnx", argv[2]);
    if (ics_export_onnx(model, &opts, path, &err) != ICS_OK) rc = fail("ONNX", &err);
    else printf("wrote %s\n", path);

    opts.batch_size = 4;
    opts.dynamic_shape = 1;
    snprintf(path, sizeof path, "%s/model-b4.onnx", argv[2]);
    if (!rc && ics_export_onnx(model, &opts, path, &err) != ICS_OK) {
        /* a classifier that needs a fixed input size: static shape */
        opts.dynamic_shape = 0;
        ics_error_clear(&err);
        if (ics_export_onnx(model, &opts, path, &err) != ICS_OK) rc = fail("ONNX, batch 4", &err);
    }
    if (!rc) printf("wrote %s (batch 4, %s height and width)\n", path, opts.dynamic_shape ? "dynamic" : "static");

    ics_export_options_default(&opts);
    opts.force = 1;
    if (!rc && ics_export_deployment_dir(model, &opts, argv[2], &err) != ICS_OK) rc = fail("deployment", &err);
    if (!rc) printf("wrote %s/deployment\n", argv[2]);
    if (!rc)
        printf("%s: sparsity %.4f, %s\n", ics_model_arch(model), ics_model_sparsity(model),
               ics_model_qat_active(model) ? "int8 QDQ" : "fp32");
    ics_model_destroy(model);
    return rc;
}
