/* icsparse-export: ONNX, TorchScript and .pth exports of a checkpoint. */
#include "ics_build_config.h"
#include "apps/app.h"

static const ics_app_option options[] = {
    {"checkpoint", 'C', 1, NULL, "FILE", "RUN/ckpt/best.h5", "checkpoint to export"},
    {"output", 'o', 1, "export.dir", "DIR", NULL, "output directory"},
    {"format", 'f', 1, NULL, "onnx|torchscript|pth", "onnx", "what to write"},
    {"opset", 0, 1, "export.opset", "N", NULL, "ONNX opset (13..17)"},
    {"batch-size", 'b', 1, "export.batch_size", "N", NULL, "static batch size (0: dynamic)"},
    {"dynamic-shape", 0, 0, NULL, NULL, "off", "dynamic height and width"},
    {"fold-bn", 0, 1, "export.fold_bn", "BOOL", NULL, "fold BatchNorm into convolutions"},
    {"one-shot", 0, 1, NULL, "RECIPE", "none", "apply a recipe's pruning and quantization first"},
    {"deployment-dir", 0, 1, NULL, "DIR", "none", "write DIR/deployment/{model.onnx,config.json}"},
    {"sparsezoo-dir", 0, 1, NULL, "DIR", "none", "write a SparseZoo-style model directory"},
    {"force", 0, 0, NULL, NULL, "off", "replace an existing output directory"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL}};

static ics_status run(ics_app *app, ics_error *err)
{
    (void)app;
    return ICS_FAIL(err, ICS_ERR_NOT_IMPLEMENTED, "export is not implemented yet");
}

int main(int argc, char **argv)
{
    static const ics_app_spec spec = {
        "icsparse-export", "Export a checkpoint to ONNX (fp32 or int8 QDQ), TorchScript or a PyTorch .pth.",
        NULL, 0, 0, options, 0, run};
    return ics_app_main(&spec, argc, argv);
}
