/*
 * src/export/export_zoo.c: a SparseZoo-style model directory, the layout
 * SparseZoo serves a model in (model.md card with YAML front matter,
 * model.onnx, deployment/, training/model.pth, recipe/), so a checkpoint
 * can be dropped where SparseZoo tooling or a person expects one. Sample
 * inputs/outputs (.npz tarballs) and TensorBoard logs are not written:
 * icsparse's run directory holds the logs, and samples need a dataset.
 */
#include "ics_build_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <icsparse/checkpoint.h>
#include <icsparse/export.h>

#include "export/export_internal.h"

/* "null" for a metric that was not measured (NaN), else the number. */
static void put_metric(char *buf, size_t size, double v)
{
    if (isnan(v))
        snprintf(buf, size, "null");
    else
        snprintf(buf, size, "%.6g", v);
}

/* Promise (export.h): DIR/{model.md, model.onnx, deployment/, training/
 * model.pth, recipe/recipe_original.md when a recipe is given}; refused
 * when DIR/model.onnx or DIR/model.md exists and opts->force is unset. */
ics_status ics_export_sparsezoo_dir(ics_model *model, const ics_checkpoint_info *info,
                                    const char *recipe, const ics_export_options *opts,
                                    const char *dir, ics_error *err)
{
    char onnx[4200], card[4200], training[4200], pth[4200], recipe_dir[4200], recipe_path[4200];
    if (strlen(dir) > 4000) return ICS_FAIL(err, ICS_ERR_INVALID, "path too long: %s", dir);
    snprintf(onnx, sizeof onnx, "%s/model.onnx", dir);
    snprintf(card, sizeof card, "%s/model.md", dir);
    snprintf(training, sizeof training, "%s/training", dir);
    snprintf(pth, sizeof pth, "%s/training/model.pth", dir);
    snprintf(recipe_dir, sizeof recipe_dir, "%s/recipe", dir);
    snprintf(recipe_path, sizeof recipe_path, "%s/recipe/recipe_original.md", dir);
    ics_status st = ics_export_check_target(onnx, opts->force, err);
    if (st == ICS_OK) st = ics_export_check_target(card, opts->force, err);
    if (st == ICS_OK) st = ics_export_mkdirs(training, err);
    if (st == ICS_OK) st = ics_export_onnx(model, opts, onnx, err);
    if (st == ICS_OK) st = ics_export_deployment_dir(model, opts, dir, err);
    if (st == ICS_OK) st = ics_export_pth(model, pth, opts->force, err);
    if (st == ICS_OK && recipe) {
        st = ics_export_mkdirs(recipe_dir, err);
        if (st == ICS_OK) st = ics_export_write_atomic(recipe_path, recipe, strlen(recipe), err);
    }
    if (st != ICS_OK) return st;

    /* The card last: its presence says the directory is complete. */
    const ics_model_options *mo = ics_model_get_options(model);
    char top1[32], top5[32], loss[32];
    put_metric(top1, sizeof top1, info->val_top1);
    put_metric(top5, sizeof top5, info->val_top5);
    put_metric(loss, sizeof loss, info->val_loss);
    char text[4096];
    int n =
        snprintf(text, sizeof text,
                 "---\n"
                 "domain: cv\n"
                 "sub_domain: classification\n"
                 "architecture: %s\n"
                 "framework: pytorch\n"
                 "repo: icsparse\n"
                 "dataset_classes: %d\n"
                 "input_shape: [%d, %d, %d]\n"
                 "sparsity: %.6g\n"
                 "epoch: %.6g\n"
                 "metrics: {val_top1: %s, val_top5: %s, val_loss: %s}\n"
                 "onnx_opset: %d\n"
                 "---\n\n"
                 "# %s (icsparse)\n\n"
                 "Exported by icsparse %s from a checkpoint of kind '%s'. `model.onnx` and\n"
                 "`deployment/model.onnx` take `input` [batch, %d, %d, %d] (NCHW float32,\n"
                 "normalized as in training) and give `output` [batch, %d] logits;\n"
                 "`training/model.pth` is the torchvision state_dict%s.\n",
                 ics_model_arch(model), mo->num_classes, mo->in_channels, mo->in_h, mo->in_w,
                 info->sparsity, info->epoch, top1, top5, loss, opts->opset, ics_model_arch(model),
                 PACKAGE_VERSION, info->kind, mo->in_channels, mo->in_h, mo->in_w, mo->num_classes,
                 recipe ? "; `recipe/recipe_original.md` is the recipe that produced it" : "");
    size_t len = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    return ics_export_write_atomic(card, text, len, err);
}
