/* One-shot sparsification of a checkpoint: see oneshot.h. */
#include "ics_build_config.h"
#include "sparsify/oneshot.h"

#include <icsparse/checkpoint.h>
#include <icsparse/manager.h>
#include <icsparse/qat.h>
#include <icsparse/recipe.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "data/dataset.h"
#include "train/evaluate.h"

/* Batches from the quantization modifiers (num_calibration_steps). */
static int calibration_batches(const ics_recipe *recipe, const ics_oneshot_calibration *cal)
{
    if (cal && cal->batches > 0) return cal->batches;
    size_t n = ics_recipe_modifier_count(recipe);
    for (size_t k = 0; k < n; k++) {
        const ics_modifier *mod = ics_recipe_modifier(recipe, k);
        if (mod->type == ICS_MOD_QUANTIZATION && mod->u.quantization.num_calibration_steps > 0)
            return mod->u.quantization.num_calibration_steps;
    }
    return 16;
}

/* The QAT structure of every QuantizationModifier, observers fed with
 * calibration batches in evaluation mode, then frozen. */
static ics_status quantize(ics_model *model, const ics_recipe *recipe, const ics_oneshot_calibration *cal,
                           ics_error *err)
{
    if (!ics_recipe_qat_active(recipe, INFINITY)) return ICS_OK;
    if (!cal || !cal->dataset || !cal->dataset[0])
        return ICS_FAIL(err, ICS_ERR_CONFIG,
                        "the recipe quantizes (QuantizationModifier): one-shot quantization needs calibration "
                        "data (--calibration-data DATASET.h5)");
    ics_status st = ics_recipe_apply_structure(recipe, model, -1, err);
    if (st) return st;
    ics_model_qat_set_observers(model, 1);
    ics_dataset_reader *d = NULL;
    st = ics_dataset_open(cal->dataset, &d, err);
    if (st) return st;
    const ics_dataset_meta *meta = ics_dataset_reader_meta(d);
    const ics_model_options *mo = ics_model_get_options(model);
    const char *split = cal->split && cal->split[0] ? cal->split : "train";
    int batch = cal->batch_size > 0 ? cal->batch_size : 64;
    int64_t rows = ics_dataset_count(d, split);
    if (meta->height != mo->in_h || meta->width != mo->in_w || meta->channels != mo->in_channels)
        st = ICS_FAIL(err, ICS_ERR_CONFIG, "%s: %dx%dx%d images, the model takes %dx%dx%d", cal->dataset,
                      meta->height, meta->width, meta->channels, mo->in_h, mo->in_w, mo->in_channels);
    else if (rows == 0)
        st = ICS_FAIL(err, ICS_ERR_CONFIG, "%s has no %s split to calibrate on", cal->dataset, split);
    size_t row = (size_t)meta->height * meta->width * meta->channels;
    uint8_t *raw = st ? NULL : ics_malloc(row * (size_t)batch, "calibration images", err);
    float *x = st ? NULL : ics_malloc_aligned(row * (size_t)batch * sizeof(float), "calibration inputs", err);
    if (!st && (!raw || !x)) st = ICS_ERR_NOMEM;
    if (!st) st = ics_model_plan(model, batch, 0, err);
    int batches = calibration_batches(recipe, cal);
    for (int b = 0; !st && b < batches && (int64_t)b * batch < rows; b++) {
        int64_t first = (int64_t)b * batch;
        int n = (int)(rows - first < batch ? rows - first : batch);
        st = ics_dataset_read(d, split, first, n, raw, NULL, err);
        if (!st) {
            ics_normalize_images(raw, x, (int64_t)n * meta->height * meta->width, meta->channels, meta->mean,
                                 meta->std);
            st = ics_model_qat_calibrate(model, x, n, err);
        }
    }
    ics_model_qat_set_observers(model, 0);
    free(raw);
    ics_free_aligned(x);
    ics_dataset_close(d);
    return st;
}

ics_status ics_oneshot_checkpoint(const char *in, const char *recipe_path, const char *recipe_args,
                                  const char *out, double *sparsity, ics_error *err)
{
    return ics_oneshot_checkpoint_calibrated(in, recipe_path, recipe_args, NULL, out, sparsity, err);
}

ics_status ics_oneshot_checkpoint_calibrated(const char *in, const char *recipe_path, const char *recipe_args,
                                             const ics_oneshot_calibration *cal, const char *out,
                                             double *sparsity, ics_error *err)
{
    ics_checkpoint_reader *r = NULL;
    ics_model *model = NULL;
    ics_recipe *recipe = NULL;
    ics_manager *m = NULL;
    ics_checkpoint_writer *w = NULL;
    char *yaml = NULL, *config = NULL;
    ics_status st = ics_checkpoint_open(in, &r, err);
    if (!st) st = ics_checkpoint_create_model(r, &model, err);
    if (!st) {
        st = ics_recipe_load_file(recipe_path, recipe_args, &recipe, err);
        /* A recipe that cannot be read or does not load is a usage error. */
        if (st == ICS_ERR_IO || st == ICS_ERR_FORMAT || st == ICS_ERR_INVALID) {
            st = ICS_ERR_CONFIG;
            if (err) err->status = st;
        }
    }
    /* No optimizer: only structural effects (masks) apply. */
    if (!st) st = ics_manager_create(recipe, model, NULL, &m, err);
    if (!st) st = ics_manager_apply_oneshot(m, err);
    if (!st) st = quantize(model, recipe, cal, err);
    if (!st && sparsity) ics_manager_sparsity(m, NULL, NULL, 0, sparsity);
    if (!st) yaml = ics_recipe_to_yaml(recipe, err);
    if (!st && !yaml) st = err ? err->status : ICS_ERR_NOMEM;
    if (!st) st = ics_checkpoint_get_text(r, "config", &config, err);
    if (!st) st = ics_checkpoint_begin(out, &w, err);
    if (!st) {
        ics_checkpoint_info info = *ics_checkpoint_get_info(r);
        snprintf(info.kind, sizeof info.kind, "one-shot");
        double s = 0;
        ics_manager_sparsity(m, NULL, NULL, 0, &s);
        info.sparsity = s;
        info.qat_active = ics_model_qat_active(model);
        /* every modifier applied: a finished checkpoint, so that loading
         * it rebuilds the whole structure from the recipe */
        if (info.qat_active) info.epoch = -1;
        st = ics_checkpoint_put_info(w, &info, err);
    }
    if (!st) st = ics_checkpoint_put_model(w, model, err);
    if (!st) st = ics_checkpoint_put_quant(w, model, err);
    if (!st) st = ics_checkpoint_put_text(w, "recipe", yaml, err);
    if (!st && config) st = ics_checkpoint_put_text(w, "config", config, err);
    for (int i = 0; !st && i < ics_manager_mask_count(m); i++) {
        const char *name = ics_manager_mask_name(m, i);
        const ics_tensor_info *t = ics_model_tensor(model, ics_model_find_tensor(model, name));
        char path[600];
        snprintf(path, sizeof path, "/masks/%s", name);
        st = ics_checkpoint_put_tensor(w, path, ics_manager_mask_data(m, i), t->ndim, t->shape, 1, err);
    }
    if (!st) {
        st = ics_checkpoint_commit(w, err);
        w = NULL;
    }
    if (w) ics_checkpoint_abort(w);
    free(yaml);
    free(config);
    ics_manager_destroy(m);
    ics_recipe_destroy(recipe);
    ics_model_destroy(model);
    ics_checkpoint_close(r);
    return st;
}
