/*
 * The trainer's state on disk: checkpoints (rank 0 writes; every rank
 * holds the same replicated state), resume, initial weights, and the
 * run's results.json.
 */
#include "ics_build_config.h"
#include "train/trainer_internal.h"

#include "core/alloc.h"
#include "core/log.h"
#include "dist/dist.h"
#include "io/pth_import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ics_status ics_train_save(ics_trainer *t, const char *name, const char *kind, const ics_eval_result *val,
                          const ics_eval_result *test, ics_error *err)
{
    ics_status st = ICS_OK;
    /* train.checkpoint_sharded: every rank first writes its part of the
     * optimizer state (src/io/checkpoint_shard.c); rank 0's file indexes
     * the parts instead of holding /optimizer. */
    ics_checkpoint_shard_writer *shards = NULL;
    if (ics_config_bool(t->cfg, "train.checkpoint_sharded")) {
        char path[1300];
        snprintf(path, sizeof path, "%s/%s", t->ckpt_dir, name);
        if ((st = ics_checkpoint_shard_write_parts(path, t->model, t->optim, &shards, err))) return st;
    }
    if (t->rank == 0) {
        char path[1300];
        snprintf(path, sizeof path, "%s/%s", t->ckpt_dir, name);
        ics_checkpoint_info info;
        ics_checkpoint_info_init(&info);
        snprintf(info.arch, sizeof info.arch, "%s", ics_model_arch(t->model));
        info.model_options = *ics_model_get_options(t->model);
        info.epoch = ics_train_epoch_of(t, t->global_step);
        info.global_step = t->global_step;
        info.stage = t->stage;
        info.world_size = t->world;
        info.steps_per_epoch = t->steps_per_epoch;
        snprintf(info.kind, sizeof info.kind, "%s", kind);
        if (val && val->count > 0) {
            info.val_loss = val->loss;
            info.val_top1 = val->top1;
            info.val_top5 = val->top5;
        }
        if (test && test->count > 0) {
            info.test_loss = test->loss;
            info.test_top1 = test->top1;
            info.test_top5 = test->top5;
        }
        info.sparsity = ics_train_sparsity(t);
        info.qat_active = ics_model_qat_active(t->model);
        char *config_text = ics_config_to_string(t->cfg, ICS_CONFIG_PRINT_ORIGINS, err);
        ics_checkpoint_writer *w = NULL;
        st = config_text ? ics_checkpoint_begin(path, &w, err) : ICS_ERR_NOMEM;
        if (!st) st = ics_checkpoint_put_info(w, &info, err);
        if (!st) st = ics_checkpoint_put_model(w, t->model, err);
        if (!st) st = ics_checkpoint_put_quant(w, t->model, err);
        if (!st)
            st = shards ? ics_checkpoint_put_shard_index(w, shards, err)
                        : ics_checkpoint_put_optim(w, t->model, t->optim, err);
        if (!st && t->ema) st = ics_checkpoint_put_ema(w, t->model, t->ema, err);
        if (!st) st = ics_checkpoint_put_text(w, "config", config_text, err);
        if (!st) st = ics_checkpoint_put_text(w, "recipe_args", ics_config_string(t->cfg, "recipe.args"), err);
        if (!st && t->recipe) {
            /* The recipe as it ran: variables evaluated, recipe_args applied,
             * all stages so far (what update_architecture_from_recipe and a
             * later compose read back). */
            char *yaml = ics_recipe_to_yaml(t->recipe, err);
            st = yaml ? ics_checkpoint_put_text(w, "recipe", yaml, err) : ICS_ERR_NOMEM;
            free(yaml);
        }
        for (int i = 0; !st && t->manager && i < ics_manager_mask_count(t->manager); i++) {
            const char *mask_name = ics_manager_mask_name(t->manager, i);
            int ti = ics_model_find_tensor(t->model, mask_name);
            const ics_tensor_info *ti_info = ics_model_tensor(t->model, ti);
            char mpath[600];
            snprintf(mpath, sizeof mpath, "/masks/%s", mask_name);
            st = ics_checkpoint_put_tensor(w, mpath, ics_manager_mask_data(t->manager, i), ti_info->ndim,
                                           ti_info->shape, 1, err);
        }
        if (!st) st = ics_checkpoint_commit(w, err);
        else if (w) ics_checkpoint_abort(w);
        /* parts of an earlier sharded save of this name are stale now */
        if (!st && !shards) ics_checkpoint_remove_parts(path, NULL);
        free(config_text);
    }
    /* Every rank learns whether rank 0 wrote it. */
    st = ics_dist_agree(st, err);
    ics_checkpoint_shard_finish(shards, st == ICS_OK);
    return st;
}

/* Loads weights (and, for a full resume, optimizer, EMA and the step) from
 * a checkpoint, on every rank. */
static ics_status load_checkpoint(ics_trainer *t, const char *path, int full, ics_error *err)
{
    ics_checkpoint_reader *r = NULL;
    ics_status st = ics_checkpoint_open(path, &r, err);
    if (st) return st;
    const ics_checkpoint_info *info = ics_checkpoint_get_info(r);
    if (strcmp(info->arch, ics_model_arch(t->model)) != 0) {
        st = ICS_FAIL(err, ICS_ERR_CONFIG, "%s: checkpoint of %s, but model.arch is %s", path, info->arch,
                      ics_model_arch(t->model));
        ics_checkpoint_close(r);
        return st;
    }
    st = ics_checkpoint_get_model(r, t->model, err);
    if (!st && full) {
        if (ics_checkpoint_has_optim(r)) st = ics_checkpoint_get_optim(r, t->model, t->optim, err);
        else if (ics_checkpoint_is_sharded(r)) st = ics_checkpoint_get_optim_sharded(r, t->model, t->optim, err);
        if (!st && t->ema && ics_checkpoint_has_ema(r)) st = ics_checkpoint_get_ema(r, t->model, t->ema, err);
        if (!st) {
            /* Steps are recounted from the epoch so that a checkpoint made
             * at another world size (another steps_per_epoch) resumes at
             * the same point of the schedule. */
            if (info->steps_per_epoch == t->steps_per_epoch)
                t->global_step = info->global_step;
            else
                t->global_step = (int64_t)llround(info->epoch * (double)t->steps_per_epoch);
        }
    }
    ics_checkpoint_close(r);
    return st;
}

ics_status ics_train_restore_masks(ics_trainer *t, const char *path, ics_error *err)
{
    if (!t->manager || ics_manager_mask_count(t->manager) == 0) return ICS_OK;
    ics_checkpoint_reader *r = NULL;
    ics_status st = ics_checkpoint_open(path, &r, err);
    for (int i = 0; !st && i < ics_manager_mask_count(t->manager); i++) {
        const char *name = ics_manager_mask_name(t->manager, i);
        char mpath[600];
        snprintf(mpath, sizeof mpath, "/masks/%s", name);
        if (!ics_checkpoint_has(r, mpath)) continue;
        const ics_tensor_info *ti = ics_model_tensor(t->model, ics_model_find_tensor(t->model, name));
        st = ics_checkpoint_get_tensor(r, mpath, ics_manager_mask_data(t->manager, i), ti->ndim, ti->shape, err);
    }
    ics_checkpoint_close(r);
    return st;
}

static ics_status restore_quant(ics_trainer *t, const char *path, ics_error *err)
{
    ics_checkpoint_reader *r = NULL;
    ics_status st = ics_checkpoint_open(path, &r, err);
    if (!st) st = ics_checkpoint_get_quant(r, t->model, err);
    ics_checkpoint_close(r);
    return st;
}

ics_status ics_train_init_from(ics_trainer *t, const char *path, ics_error *err)
{
    size_t len = strlen(path);
    if (len > 4 && (strcmp(path + len - 4, ".pth") == 0 || strcmp(path + len - 3, ".pt") == 0)) {
        /* A PyTorch / SparseZoo checkpoint, its recipe's structure applied
         * and held (src/train/train_import.c). */
        return ics_train_import_pth(t, path, err);
    }
    return load_checkpoint(t, path, 0, err);
}

ics_status ics_train_resume(ics_trainer *t, ics_error *err)
{
    const char *resume = ics_config_string(t->cfg, "train.resume");
    char path[1300] = "";
    if (strcmp(resume, "never") == 0) {
        path[0] = '\0';
    } else if (strcmp(resume, "auto") == 0) {
        snprintf(path, sizeof path, "%s/last.h5", t->ckpt_dir);
        if (access(path, R_OK) != 0) path[0] = '\0';
    } else {
        snprintf(path, sizeof path, "%s", resume);
    }
    ics_status st = ICS_OK;
    if (path[0]) {
        /* a run started from a .pth: its held recipe (train_import.c) */
        st = ics_train_import_resume(t, path, err);
        if (!st) st = load_checkpoint(t, path, 1, err);
        /* The recipe's state at that point: masks restored, started
         * modifiers started, the lr of that epoch. */
        if (!st && t->manager) st = ics_train_restore_masks(t, path, err);
        if (!st && t->manager) st = ics_manager_resume(t->manager, ics_train_epoch_of(t, t->global_step), err);
        /* the QAT structure the recipe gives at that epoch exists now:
         * the quantizers continue where they were */
        if (!st) st = restore_quant(t, path, err);
        if (!st && t->rank == 0)
            ICS_INFO("resumed from %s at step %lld (epoch %.3f)", path, (long long)t->global_step,
                     ics_train_epoch_of(t, t->global_step));
    } else if (ics_config_string(t->cfg, "model.init_from")[0]) {
        st = ics_train_init_from(t, ics_config_string(t->cfg, "model.init_from"), err);
        if (!st && t->rank == 0) ICS_INFO("initial weights from %s", ics_config_string(t->cfg, "model.init_from"));
    }
    return ics_dist_agree(st, err);
}

ics_status ics_train_log_scalar(ics_trainer *t, const char *tag, double value, ics_error *err)
{
    double epoch = ics_train_epoch_of(t, t->global_step);
    for (int i = 0; i < t->nloggers; i++) {
        ics_status st = ics_logger_scalar(t->loggers[i], tag, t->global_step, epoch, value, err);
        if (st) return st;
    }
    return ICS_OK;
}

/* JSON numbers: NaN has no JSON spelling; null says "not measured". */
static void json_number(FILE *f, const char *key, double v, int last)
{
    if (isfinite(v))
        fprintf(f, "  \"%s\": %.10g%s\n", key, v, last ? "" : ",");
    else
        fprintf(f, "  \"%s\": null%s\n", key, last ? "" : ",");
}

ics_status ics_train_write_results(ics_trainer *t, ics_error *err)
{
    if (t->rank != 0) return ICS_OK;
    char path[1300], tmp[1320];
    snprintf(path, sizeof path, "%s/results.json", t->run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write results", tmp);
    const ics_train_summary *s = &t->summary;
    fprintf(f, "{\n  \"arch\": \"%s\",\n", ics_model_arch(t->model));
    fprintf(f, "  \"global_step\": %lld,\n", (long long)s->global_step);
    json_number(f, "epoch", s->epoch, 0);
    json_number(f, "val_loss", s->val_loss, 0);
    json_number(f, "val_top1", s->val_top1, 0);
    json_number(f, "val_top5", s->val_top5, 0);
    json_number(f, "best_val_top1", s->best_val_top1, 0);
    json_number(f, "test_loss", s->test_loss, 0);
    json_number(f, "test_top1", s->test_top1, 0);
    json_number(f, "test_top5", s->test_top5, 0);
    json_number(f, "train_images_per_sec", s->train_images_per_sec, 0);
    json_number(f, "sparsity", s->sparsity, 1);
    fprintf(f, "}\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write results", path);
    }
    return ICS_OK;
}
