/* One-shot sparsification of a checkpoint: see oneshot.h. */
#include "ics_build_config.h"
#include "sparsify/oneshot.h"

#include <icsparse/checkpoint.h>
#include <icsparse/manager.h>
#include <icsparse/recipe.h>

#include <stdio.h>
#include <stdlib.h>

ics_status ics_oneshot_checkpoint(const char *in, const char *recipe_path, const char *recipe_args,
                                  const char *out, double *sparsity, ics_error *err)
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
        st = ics_checkpoint_put_info(w, &info, err);
    }
    if (!st) st = ics_checkpoint_put_model(w, model, err);
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
