/*
 * src/sparsify/checkpoint_quant.c: a QAT model's quantizer state in a
 * checkpoint, and loading a checkpoint into a model with the structure its
 * recipe gives (update_architecture_from_recipe).
 *
 * Layout (float32 datasets):
 *   /quant/flags                            [2] observers on, BN frozen
 *   /quant/<name>.activation_post_process/  scale, zero_point, min_val,
 *                                           max_val, initialized   [1] each
 *   /quant/<conv>.weight_fake_quant/        scale, zero_point      [out_c]
 * (the names torch's QAT modules give these in a state_dict).
 */
#include <icsparse/checkpoint.h>
#include <icsparse/manager.h>
#include <icsparse/qat.h>
#include <icsparse/recipe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

enum { PATH_MAX_LEN = 400 };

static const char *const act_fields[] = {"scale", "zero_point", "min_val", "max_val", "initialized"};

ics_status ics_checkpoint_put_quant(ics_checkpoint_writer *w, ics_model *model, ics_error *err)
{
    if (!ics_model_qat_active(model)) return ICS_OK;
    float flags[2] = {(float)ics_model_qat_observers(model), (float)ics_model_qat_bn_frozen(model)};
    int64_t two = 2;
    ics_status st = ics_checkpoint_put_tensor(w, "/quant/flags", flags, 1, &two, 0, err);
    char path[PATH_MAX_LEN];
    for (int i = 0; !st && i < ics_model_num_nodes(model); i++) {
        const ics_node *n = ics_model_node(model, i);
        if (n->kind == ICS_OP_FAKE_QUANT) {
            ics_act_quant q;
            st = ics_model_act_quant_get(model, i, &q, err);
            float v[5] = {q.scale, (float)q.zero_point, q.min_val, q.max_val, (float)q.initialized};
            int64_t one = 1;
            for (int f = 0; !st && f < 5; f++) {
                snprintf(path, sizeof path, "/quant/%s/%s", n->name, act_fields[f]);
                st = ics_checkpoint_put_tensor(w, path, &v[f], 1, &one, 0, err);
            }
            continue;
        }
        int channels = 0;
        const float *scales = ics_model_weight_scales(model, i, &channels, NULL, NULL);
        if (!scales) continue;
        int64_t c = channels;
        snprintf(path, sizeof path, "/quant/%s.weight_fake_quant/scale", n->name);
        st = ics_checkpoint_put_tensor(w, path, scales, 1, &c, 0, err);
        float *zeros = st ? NULL : ics_calloc((size_t)channels, sizeof *zeros, "zero points", err);
        if (!st && !zeros) st = ICS_ERR_NOMEM;
        snprintf(path, sizeof path, "/quant/%s.weight_fake_quant/zero_point", n->name);
        if (!st) st = ics_checkpoint_put_tensor(w, path, zeros, 1, &c, 0, err);
        free(zeros);
    }
    return st;
}

ics_status ics_checkpoint_get_quant(ics_checkpoint_reader *r, ics_model *model, ics_error *err)
{
    const char *file = ics_checkpoint_path(r);
    int has = ics_checkpoint_has(r, "/quant/flags");
    if (!ics_model_qat_active(model)) {
        if (has)
            return ICS_FAIL(err, ICS_ERR_FORMAT,
                            "%s: the checkpoint holds quantizer state (/quant) but its recipe gives the model no "
                            "QAT structure",
                            file);
        return ICS_OK;
    }
    if (!has)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: /quant/flags missing: not a QAT checkpoint of this recipe", file);
    float flags[2];
    int64_t two = 2;
    ics_status st = ics_checkpoint_get_tensor(r, "/quant/flags", flags, 1, &two, err);
    if (st) return st;
    ics_model_qat_set_observers(model, flags[0] != 0.0f);
    ics_model_qat_freeze_bn(model, flags[1] != 0.0f);
    char path[PATH_MAX_LEN];
    for (int i = 0; !st && i < ics_model_num_nodes(model); i++) {
        const ics_node *n = ics_model_node(model, i);
        if (n->kind == ICS_OP_FAKE_QUANT) {
            float v[5];
            int64_t one = 1;
            for (int f = 0; !st && f < 5; f++) {
                snprintf(path, sizeof path, "/quant/%s/%s", n->name, act_fields[f]);
                if (!ics_checkpoint_has(r, path))
                    st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s missing (the recipe's QAT structure differs)", file,
                                  path);
                else st = ics_checkpoint_get_tensor(r, path, &v[f], 1, &one, err);
            }
            if (!st) st = ics_model_act_quant_set(model, i, v[2], v[3], v[4] != 0.0f, err);
            if (st) return ics_error_prefix(err, "%s: ", file), st;
            continue;
        }
        int channels = 0;
        if (!ics_model_weight_scales(model, i, &channels, NULL, NULL)) continue;
        float *scales = ics_model_weight_scales_mut(model, i);
        int64_t c = channels;
        snprintf(path, sizeof path, "/quant/%s.weight_fake_quant/scale", n->name);
        if (!ics_checkpoint_has(r, path))
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s missing (the recipe's QAT structure differs)", file, path);
        st = ics_checkpoint_get_tensor(r, path, scales, 1, &c, err);
        for (int k = 0; !st && k < channels; k++)
            if (!(scales[k] > 0.0f))
                st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s[%d] = %g is not a positive scale", file, path, k,
                              (double)scales[k]);
    }
    return st;
}

ics_status ics_checkpoint_load_model(ics_checkpoint_reader *r, ics_model **out, ics_error *err)
{
    *out = NULL;
    ics_model *model = NULL;
    ics_status st = ics_checkpoint_create_model(r, &model, err);
    const ics_checkpoint_info *info = ics_checkpoint_get_info(r);
    if (!st && (info->qat_active || ics_checkpoint_has(r, "/quant/flags"))) {
        char *text = NULL;
        st = ics_checkpoint_get_text(r, "recipe", &text, err);
        if (!st && !text)
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: a QAT checkpoint without its recipe (/recipe)",
                          ics_checkpoint_path(r));
        ics_recipe *recipe = NULL;
        if (!st) {
            char source[PATH_MAX_LEN];
            snprintf(source, sizeof source, "%s:/recipe", ics_checkpoint_path(r));
            st = ics_recipe_load_string(text, source, NULL, &recipe, err);
        }
        if (!st) st = ics_recipe_apply_structure(recipe, model, info->epoch, err);
        if (!st) st = ics_checkpoint_get_quant(r, model, err);
        ics_recipe_destroy(recipe);
        free(text);
    }
    if (st) {
        ics_model_destroy(model);
        return st;
    }
    *out = model;
    return ICS_OK;
}
