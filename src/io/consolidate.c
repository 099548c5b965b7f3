/* Verify, merge, pick: see consolidate.h. */
#include "ics_build_config.h"
#include "io/consolidate.h"

#include <icsparse/checkpoint.h>

#include "core/alloc.h"
#include "train/ema.h"
#include "train/optim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int64_t numel_of(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

/* Reads every float dataset under group/<name>[/<leaf>] (two levels for
 * the optimizer, one for EMA and masks) and hands it to fn. */
typedef ics_status (*tensor_fn)(void *ctx, const char *path, const float *data, int ndim, const int64_t *shape,
                                ics_error *err);

static ics_status walk_floats(ics_checkpoint_reader *r, const char *group, int depth, tensor_fn fn, void *ctx,
                              int *count, ics_error *err)
{
    char **names = NULL;
    int n = 0;
    ics_status st = ics_checkpoint_list(r, group, &names, &n, err);
    for (int i = 0; !st && i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", group, names[i]);
        if (depth > 1) {
            st = walk_floats(r, path, depth - 1, fn, ctx, count, err);
            continue;
        }
        int ndim = 0;
        int64_t shape[8];
        st = ics_checkpoint_tensor_shape(r, path, &ndim, shape, err);
        if (st) break;
        int64_t numel = numel_of(ndim, shape);
        float *data = ics_malloc((size_t)(numel ? numel : 1) * sizeof(float), path, err);
        if (!data) {
            st = ICS_ERR_NOMEM;
            break;
        }
        st = ics_checkpoint_get_tensor(r, path, data, ndim, shape, err);
        if (!st) st = fn(ctx, path, data, ndim, shape, err);
        free(data);
        if (count) (*count)++;
    }
    free_names(names, n);
    return st;
}

static ics_status count_only(void *ctx, const char *path, const float *data, int ndim, const int64_t *shape,
                             ics_error *err)
{
    (void)ctx, (void)path, (void)data, (void)ndim, (void)shape, (void)err;
    return ICS_OK;
}

typedef struct mask_check {
    ics_checkpoint_reader *r;
    ics_model *model;
} mask_check;

static ics_status check_mask(void *ctx, const char *path, const float *mask, int ndim, const int64_t *shape,
                             ics_error *err)
{
    mask_check *mc = ctx;
    const char *file = ics_checkpoint_path(mc->r);
    const char *name = path + strlen("/masks/");
    int ti = ics_model_find_tensor(mc->model, name);
    if (ti < 0) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: mask %s names no tensor of the model", file, name);
    const ics_tensor_info *t = ics_model_tensor(mc->model, ti);
    if (!t->prunable) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: mask %s is on a tensor that is not prunable", file, name);
    int same = ndim == t->ndim;
    for (int i = 0; same && i < ndim; i++) same = shape[i] == t->shape[i];
    if (!same) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: mask %s does not have its weight's shape", file, name);
    const float *w = ics_model_tensor_data(mc->model, ti);
    int64_t bad = 0, first_bad = -1;
    for (int64_t k = 0; k < t->numel; k++) {
        if (mask[k] != 0.0f && mask[k] != 1.0f)
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: mask %s holds %g at %lld (masks are 0 or 1)", file, name,
                            (double)mask[k], (long long)k);
        if (mask[k] == 0.0f && w[k] != 0.0f) {
            if (first_bad < 0) first_bad = k;
            bad++;
        }
    }
    if (bad)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: %s has %lld nonzero weights where its mask is 0 (first at element %lld): masks and "
                        "weights disagree",
                        file, name, (long long)bad, (long long)first_bad);
    return ICS_OK;
}

ics_status ics_checkpoint_verify(const char *path, ics_verify_report *rep, ics_error *err)
{
    memset(rep, 0, sizeof *rep);
    ics_checkpoint_reader *r = NULL;
    ics_model *model = NULL;
    ics_status st = ics_checkpoint_open(path, &r, err);
    /* a QAT checkpoint: its recipe's structure and the quantizers too */
    if (!st) st = ics_checkpoint_load_model(r, &model, err);
    if (!st) st = ics_checkpoint_verify_model_checksum(r, model, err);
    if (!st) {
        rep->tensors = ics_model_num_tensors(model);
        mask_check mc = {r, model};
        st = walk_floats(r, "/masks", 1, check_mask, &mc, &rep->masks, err);
    }
    if (!st && rep->masks > 0 && !ics_checkpoint_has(r, "/recipe"))
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: has pruning masks but no /recipe that made them", path);
    if (!st && ics_checkpoint_has_optim(r) && ics_checkpoint_is_sharded(r))
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: has both /optimizer and the part index /shards", path);
    if (!st && ics_checkpoint_is_sharded(r)) {
        /* The parts: present, undamaged (size and SHA-256 from the index),
         * of this save, and together every trainable tensor's slots once. */
        ics_checkpoint_shards *shards = NULL;
        st = ics_checkpoint_shards_open(r, &shards, err);
        if (!st) {
            rep->shards = ics_checkpoint_shards_count(shards);
            st = ics_checkpoint_shards_verify(shards, model, &rep->optimizer_tensors, err);
        }
        ics_checkpoint_shards_close(shards);
    } else if (!st && ics_checkpoint_has_optim(r)) {
        /* The attributes resume reads (kind, step_count) and lr; every
         * trainable tensor has the same slots, each with its shape. */
        char **slots = NULL;
        int nslots = 0;
        ics_checkpoint_optim_attrs oa;
        st = ics_checkpoint_get_optim_attrs(r, &oa, err);
        if (!st && ics_optim_kind_parse(oa.kind) < 0)
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: /optimizer is for an unknown optimizer '%s'", path, oa.kind);
        if (!st) st = walk_floats(r, "/optimizer", 2, count_only, NULL, &rep->optimizer_tensors, err);
        for (int i = 0; !st && i < ics_model_num_tensors(model); i++) {
            const ics_tensor_info *t = ics_model_tensor(model, i);
            if (t->kind == ICS_TENSOR_BUFFER || t->kind == ICS_TENSOR_COUNTER) continue;
            char group[512];
            snprintf(group, sizeof group, "/optimizer/%s", t->name);
            int n = 0;
            char **names = NULL;
            st = ics_checkpoint_list(r, group, &names, &n, err);
            if (st) break;
            if (slots == NULL) {
                slots = names;
                nslots = n;
            } else {
                if (n != nslots) st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: optimizer state of %s is incomplete", path, t->name);
                free_names(names, n);
            }
            for (int s = 0; !st && s < nslots; s++) {
                char sp[700];
                int ndim = 0;
                int64_t shape[8];
                snprintf(sp, sizeof sp, "%s/%s", group, slots[s]);
                st = ics_checkpoint_tensor_shape(r, sp, &ndim, shape, err);
                if (!st && numel_of(ndim, shape) != t->numel)
                    st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s does not have its parameter's size", path, sp);
            }
        }
        free_names(slots, nslots);
    }
    if (!st && ics_checkpoint_has_ema(r)) {
        st = walk_floats(r, "/ema", 1, count_only, NULL, &rep->ema_tensors, err);
        int want = 0;
        for (int i = 0; i < ics_model_num_tensors(model); i++)
            want += ics_model_tensor(model, i)->kind != ICS_TENSOR_COUNTER;
        if (!st && rep->ema_tensors != want)
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: EMA has %d tensors, the model %d", path, rep->ema_tensors, want);
    }
    if (!st) rep->sparsity = ics_model_sparsity(model);
    ics_model_destroy(model);
    ics_checkpoint_close(r);
    return st;
}

static ics_status copy_tensor(void *ctx, const char *path, const float *data, int ndim, const int64_t *shape,
                              ics_error *err)
{
    int as_mask = strncmp(path, "/masks/", 7) == 0;
    return ics_checkpoint_put_tensor(ctx, path, data, ndim, shape, as_mask, err);
}

/* The EMA through an ics_ema, so that its counters (the /ema attributes
 * n_averaged and n_updates, which a resume needs) come along with the
 * tensors. Only the averages and the counters are stored in a checkpoint;
 * the configuration here is a placeholder. */
static ics_status copy_ema(ics_checkpoint_reader *r, ics_checkpoint_writer *w, ics_model *model, ics_error *err)
{
    size_t n_params = 0, n_buffers = 0;
    ics_model_params(model, &n_params);
    ics_model_buffers(model, &n_buffers);
    ics_ema_config ec = {ICS_EMA_CONSTANT, 0.999, 1, 0.0, 0, 1, 1, 1.0};
    ics_ema *ema = NULL;
    ics_status st = ics_ema_create(&ema, &ec, n_params, n_buffers, err);
    if (!st) st = ics_checkpoint_get_ema(r, model, ema, err);
    if (!st) st = ics_checkpoint_put_ema(w, model, ema, err);
    ics_ema_destroy(ema);
    return st;
}

ics_status ics_checkpoint_consolidate(const char *in, const char *out, int strip, ics_error *err)
{
    ics_verify_report rep;
    ics_status st = ics_checkpoint_verify(in, &rep, err);
    if (st) return st;
    ics_checkpoint_reader *r = NULL;
    ics_model *model = NULL;
    ics_checkpoint_writer *w = NULL;
    st = ics_checkpoint_open(in, &r, err);
    if (!st) st = ics_checkpoint_load_model(r, &model, err);
    if (!st) st = ics_checkpoint_begin(out, &w, err);
    if (!st) {
        ics_checkpoint_info info = *ics_checkpoint_get_info(r);
        snprintf(info.kind, sizeof info.kind, "consolidated");
        st = ics_checkpoint_put_info(w, &info, err);
    }
    if (!st) st = ics_checkpoint_put_model(w, model, err);
    if (!st) st = walk_floats(r, "/masks", 1, copy_tensor, w, NULL, err);
    if (!st) st = ics_checkpoint_put_quant(w, model, err);
    if (!st && !strip && ics_checkpoint_is_sharded(r)) {
        /* the parts merged: the /optimizer an unsharded save writes */
        ics_checkpoint_shards *shards = NULL;
        st = ics_checkpoint_shards_open(r, &shards, err);
        if (!st) st = ics_checkpoint_shards_put_optim(shards, w, model, err);
        ics_checkpoint_shards_close(shards);
    } else if (!st && !strip && ics_checkpoint_has_optim(r)) {
        /* as ics_checkpoint_put_optim wrote it: the attributes, the slots */
        ics_checkpoint_optim_attrs oa;
        st = ics_checkpoint_get_optim_attrs(r, &oa, err);
        if (!st) st = ics_checkpoint_put_optim_attrs(w, &oa, err);
        if (!st) st = walk_floats(r, "/optimizer", 2, copy_tensor, w, NULL, err);
    }
    if (!st && !strip && ics_checkpoint_has_ema(r)) st = copy_ema(r, w, model, err);
    static const char *const texts[] = {"recipe", "recipe_args", "config"};
    for (int i = 0; !st && i < 3; i++) {
        char *text = NULL;
        st = ics_checkpoint_get_text(r, texts[i], &text, err);
        if (!st && text) st = ics_checkpoint_put_text(w, texts[i], text, err);
        free(text);
    }
    if (!st) {
        st = ics_checkpoint_commit(w, err);
        w = NULL;
    }
    if (w) ics_checkpoint_abort(w);
    ics_model_destroy(model);
    ics_checkpoint_close(r);
    return st;
}

ics_status ics_run_pick_checkpoint(const char *run_dir, const char *which, char *path, size_t size, ics_error *err)
{
    static const char *const order[] = {"best_pruned_quantized", "best_pruned", "best", "last"};
    int start = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(which, order[i]) == 0) start = i;
    if (start < 0)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "--pick %s: one of best_pruned_quantized, best_pruned, best, last", which);
    for (int i = start; i < 4; i++) {
        snprintf(path, size, "%s/ckpt/%s.h5", run_dir, order[i]);
        if (access(path, R_OK) == 0) return ICS_OK;
    }
    return ICS_FAIL(err, ICS_ERR_CONFIG, "%s/ckpt has no %s checkpoint (nor a fallback)", run_dir, which);
}
