/*
 * src/export/export_dir.c: the deployment directory SparseML's exporter
 * writes next to model.onnx: DIR/deployment/model.onnx, the model a
 * runtime (DeepSparse, onnxruntime) loads, and DIR/deployment/config.json,
 * which describes it. SparseML's config.json holds only an optional
 * labels_to_class_mapping; icsparse checkpoints carry no class names, so
 * it holds what a deployment needs to feed the model instead: arch,
 * classes, the input and output names and shapes (symbolic axes by name),
 * layout and the export settings, and for a QAT model that it is the int8
 * QDQ graph with its quantization scheme ("quantization").
 */
#include "ics_build_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <icsparse/export.h>
#include <icsparse/qat.h>

#include "export/export_internal.h"

/* One shape entry: a number, or the axis name in quotes when symbolic. */
static int put_dim(char *buf, size_t size, int symbolic, const char *name, int value)
{
    return symbolic ? snprintf(buf, size, "\"%s\"", name) : snprintf(buf, size, "%d", value);
}

/* Promise (export.h): DIR/deployment/{model.onnx,config.json}, each file
 * written atomically; refused when DIR/deployment/model.onnx exists and
 * opts->force is not set. */
ics_status ics_export_deployment_dir(ics_model *model, const ics_export_options *opts,
                                     const char *dir, ics_error *err)
{
    char sub[4096], onnx_path[4200], json_path[4200];
    if (snprintf(sub, sizeof sub, "%s/deployment", dir) >= (int)sizeof sub)
        return ICS_FAIL(err, ICS_ERR_INVALID, "path too long: %s", dir);
    snprintf(onnx_path, sizeof onnx_path, "%s/model.onnx", sub);
    snprintf(json_path, sizeof json_path, "%s/config.json", sub);
    ics_status st = ics_export_check_target(onnx_path, opts->force, err);
    if (st == ICS_OK) st = ics_export_check_target(json_path, opts->force, err);
    if (st == ICS_OK) st = ics_export_mkdirs(sub, err);
    /* model.onnx first: a config.json always describes the model beside it. */
    if (st == ICS_OK) st = ics_export_onnx(model, opts, onnx_path, err);
    if (st != ICS_OK) return st;

    const ics_model_options *mo = ics_model_get_options(model);
    char batch[32], h[32], w[32];
    put_dim(batch, sizeof batch, opts->batch_size == 0, "batch", opts->batch_size);
    put_dim(h, sizeof h, opts->dynamic_shape, "height", mo->in_h);
    put_dim(w, sizeof w, opts->dynamic_shape, "width", mo->in_w);
    /* A QAT model is the int8 QDQ graph: its integer ranges (icsparse
     * gives every activation quantizer one range and every weight
     * quantizer another). */
    char quant[512] = "";
    if (ics_model_qat_active(model)) {
        int aq_min = 0, aq_max = 0, w_min = 0, w_max = 0, have_a = 0, have_w = 0;
        for (int k = 0; k < ics_model_num_nodes(model); k++) {
            const ics_node *n = ics_model_node(model, k);
            ics_act_quant q;
            if (!have_a && n->kind == ICS_OP_FAKE_QUANT &&
                ics_model_act_quant_get(model, k, &q, NULL) == ICS_OK) {
                aq_min = q.quant_min;
                aq_max = q.quant_max;
                have_a = 1;
            }
            if (!have_w && (n->kind == ICS_OP_CONV2D || n->kind == ICS_OP_LINEAR) &&
                ics_model_weight_scales(model, k, NULL, &w_min, &w_max))
                have_w = 1;
        }
        snprintf(quant, sizeof quant,
                 "  \"quantization\": {\"format\": \"int8 QDQ\", \"activations\": \"uint8 "
                 "per-tensor affine\", \"activation_range\": [%d, %d], \"weights\": \"int8 "
                 "per-channel symmetric\", \"weight_range\": [%d, %d]},\n",
                 aq_min, aq_max, w_min, w_max);
    }
    /* Arch names are short (model.h's table) and numbers are ints: 2 KiB
     * always holds the description. */
    char json[2048];
    int n = snprintf(
        json, sizeof json,
        "{\n"
        "  \"arch\": \"%s\",\n"
        "  \"num_classes\": %d,\n"
        "  \"input\": {\"name\": \"input\", \"dtype\": \"float32\", \"layout\": \"NCHW\", "
        "\"shape\": [%s, %d, %s, %s]},\n"
        "  \"output\": {\"name\": \"output\", \"dtype\": \"float32\", \"shape\": [%s, %d]},\n"
        "  \"onnx_opset\": %d,\n"
        "  \"fold_bn\": %s,\n"
        "%s"
        "  \"producer\": \"icsparse %s\"\n"
        "}\n",
        ics_model_arch(model), mo->num_classes, batch, mo->in_channels, h, w, batch,
        mo->num_classes, opts->opset, opts->fold_bn ? "true" : "false", quant, PACKAGE_VERSION);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof json ? (size_t)n : sizeof json - 1;
    return ics_export_write_atomic(json_path, json, len, err);
}
