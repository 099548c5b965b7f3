/*
 * The trainer's set-up and tear-down: configuration -> dataset, model,
 * optimizer, schedule, EMA, DDP, loggers; then resume or initial weights.
 * The loop itself is in train_loop.c.
 */
#include "ics_build_config.h"
#include "train/trainer_internal.h"

#include "backend/backend.h"
#include "core/alloc.h"
#include "core/log.h"
#include "dist/dist.h"
#include "train/optim_config.h"
#include "train/preempt.h"
#include "train/wandb_launch.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_S(key) ics_config_string(t->cfg, key)
#define CFG_I(key) ics_config_int(t->cfg, key)
#define CFG_F(key) ics_config_float(t->cfg, key)
#define CFG_B(key) ics_config_bool(t->cfg, key)

/* Compute threads per rank: train.threads, or the cores shared out among
 * this node's ranks. */
static int pick_threads(const ics_trainer *t)
{
    long threads = (long)ics_config_int(t->cfg, "train.threads");
    if (threads > 0) return (int)threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int local = ics_dist_local_size();
    long per = cores / (local > 0 ? local : 1);
    return per > 0 ? (int)per : 1;
}

static ics_status build_model(ics_trainer *t, ics_error *err)
{
    ics_model_options o;
    ics_model_options_default(&o);
    long long classes = CFG_I("model.num_classes");
    long long channels = CFG_I("model.in_channels");
    if (classes && classes != t->num_classes)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "model.num_classes is %lld but the dataset has %d classes", classes,
                        t->num_classes);
    if (channels && channels != t->channels)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "model.in_channels is %lld but the dataset has %d channels",
                        channels, t->channels);
    o.num_classes = t->num_classes;
    o.in_channels = t->channels;
    o.in_h = t->height;
    o.in_w = t->width;
    o.width_mult = (float)CFG_F("model.width_mult");
    o.cifar_stem = CFG_B("model.cifar_stem");
    o.dropout = (float)CFG_F("model.dropout");
    ics_status st = ics_model_create(CFG_S("model.arch"), &o, &t->model, err);
    if (st) return st;
    ics_model_init_params(t->model, (uint64_t)CFG_I("run.seed"));
    return ics_model_plan(t->model, t->batch_size, 1, err);
}

static ics_status build_optimizer(ics_trainer *t, ics_error *err)
{
    int nt = ics_model_num_tensors(t->model);
    t->views = ics_calloc((size_t)nt, sizeof *t->views, "parameter views", err);
    if (!t->views) return ICS_ERR_NOMEM;
    for (int i = 0; i < nt; i++) {
        const ics_tensor_info *ti = ics_model_tensor(t->model, i);
        if (ti->kind == ICS_TENSOR_BUFFER || ti->kind == ICS_TENSOR_COUNTER) continue;
        ics_param_view *v = &t->views[t->nviews++];
        v->name = ti->name;
        v->data = ics_model_tensor_data(t->model, i);
        v->grad = ics_model_tensor_grad(t->model, i);
        v->numel = (size_t)ti->numel;
        v->ndim = ti->ndim;
    }
    ics_status st = ics_optim_create_from_config(&t->optim, t->cfg, t->views, t->nviews, err);
    if (st) return st;
    t->clip_grad_norm = CFG_F("optim.clip_grad_norm");
    return ics_lr_schedule_from_config(&t->schedule, t->cfg, t->epochs, err);
}

static ics_status build_ema(ics_trainer *t, ics_error *err)
{
    ics_ema_config ec;
    int enabled = 0;
    ics_status st = ics_ema_config_from_config(&ec, &enabled, t->cfg, t->world, t->epochs, err);
    if (st || !enabled) return st;
    size_t np = 0, nb = 0;
    ics_model_params(t->model, &np);
    ics_model_buffers(t->model, &nb);
    st = ics_ema_create(&t->ema, &ec, np, nb, err);
    if (st) return st;
    /* A second model evaluates the averaged weights (planned for inference). */
    st = ics_model_create(ics_model_arch(t->model), ics_model_get_options(t->model), &t->ema_model, err);
    if (!st) st = ics_model_plan(t->ema_model, t->batch_size, 0, err);
    return st;
}

/* The recipe (recipe.path with recipe.args): its epoch range replaces
 * train.epochs. */
static ics_status load_recipe(ics_trainer *t, ics_error *err)
{
    const char *path = CFG_S("recipe.path");
    if (!path[0]) return ICS_OK;
    const char *args = CFG_S("recipe.args");
    ics_status st = ics_recipe_load_file(path, args[0] ? args : NULL, &t->recipe, err);
    /* A recipe that cannot be read or does not load is a configuration
     * error (exit 2). */
    if (st == ICS_ERR_IO || st == ICS_ERR_FORMAT || st == ICS_ERR_INVALID) {
        st = ICS_ERR_CONFIG;
        if (err) err->status = st;
    }
    if (st) return st;
    int max_epochs = ics_recipe_max_epochs(t->recipe);
    if (max_epochs > 0) {
        if (t->rank == 0 && ics_config_origin(t->cfg, "train.epochs")[0] != 'd' && max_epochs != t->epochs)
            ICS_WARN("train.epochs = %g is replaced by the recipe's epoch range (%d epochs)", t->epochs, max_epochs);
        t->epochs = max_epochs;
    }
    return ICS_OK;
}

static int recipe_distills(const ics_recipe *r)
{
    for (size_t i = 0; r && i < ics_recipe_modifier_count(r); i++)
        if (ics_recipe_modifier(r, i)->type == ICS_MOD_DISTILLATION) return 1;
    return 0;
}

/* The manager binds the recipe to the model and optimizer; a recipe that
 * distills also needs its teacher. */
static ics_status build_manager(ics_trainer *t, ics_error *err)
{
    if (!t->recipe) return ICS_OK;
    ics_status st = ics_manager_create(t->recipe, t->model, t->optim, &t->manager, err);
    if (st) return ics_error_prefix(err, "%s: ", CFG_S("recipe.path"));
    if (!recipe_distills(t->recipe)) return ICS_OK;
    const char *teacher = CFG_S("distill.teacher");
    if (!teacher[0])
        return ICS_FAIL(err, ICS_ERR_CONFIG, "%s has a DistillationModifier: set distill.teacher (a checkpoint, or \"self\")",
                        CFG_S("recipe.path"));
    if (t->nreplicas > 1)
        return ICS_FAIL(err, ICS_ERR_NOT_IMPLEMENTED, "distillation with train.dp_devices > 1 is not implemented yet");
    if (strcmp(teacher, "self") == 0) {
        /* The student's own starting weights (copied once the run's
         * weights are known, see ics_trainer_run). */
        st = ics_model_create(ics_model_arch(t->model), ics_model_get_options(t->model), &t->teacher, err);
    } else {
        ics_checkpoint_reader *r = NULL;
        st = ics_checkpoint_open(teacher, &r, err);
        if (!st) st = ics_checkpoint_create_model(r, &t->teacher, err);
        ics_checkpoint_close(r);
        if (!st && ics_model_get_options(t->teacher)->num_classes != t->num_classes)
            st = ICS_FAIL(err, ICS_ERR_CONFIG, "distill.teacher %s has %d classes, the dataset %d", teacher,
                          ics_model_get_options(t->teacher)->num_classes, t->num_classes);
    }
    if (!st) st = ics_model_plan(t->teacher, t->batch_size, 0, err);
    return st;
}

/* The model's backward reports each finished node; on the last
 * micro-batch of a step that starts the DDP buckets whose gradients are
 * final. */
static ics_status ddp_backward_hook(void *ctx, int node, ics_error *err)
{
    ics_trainer *t = ctx;
    return t->ddp_armed ? ics_ddp_node_done(t->ddp, node, err) : ICS_OK;
}

/* Synchronized BatchNorm's reduction: a sum over every rank. */
static ics_status sync_bn_reduce(void *ctx, double *values, int count, ics_error *err)
{
    (void)ctx;
    return ics_dist_allreduce_sum_f64(values, (size_t)count, err);
}

/* Replica 0 is the trainer's model; the others start as exact copies and
 * get their own activations, gradients and BN statistics. */
static ics_status build_replicas(ics_trainer *t, ics_error *err)
{
    if (t->nreplicas > ICS_MAX_REPLICAS)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "train.dp_devices: at most %d replicas", ICS_MAX_REPLICAS);
    size_t logits = (size_t)t->batch_size * (size_t)t->num_classes;
    for (int r = 0; r < t->nreplicas; r++) {
        ics_replica *rep = &t->replicas[r];
        if (r == 0) {
            rep->model = t->model;
        } else {
            ics_status st = ics_model_create(ics_model_arch(t->model), ics_model_get_options(t->model), &rep->model, err);
            if (!st) st = ics_model_plan(rep->model, t->batch_size, 1, err);
            if (st) return st;
        }
        rep->dlogits = ics_malloc(logits * sizeof(float), "loss gradient", err);
        rep->probs = ics_malloc(logits * sizeof(float), "softmax probabilities", err);
        if (!rep->dlogits || !rep->probs) return ICS_ERR_NOMEM;
    }
    return ICS_OK;
}

static ics_status open_loggers(ics_trainer *t, ics_error *err)
{
    if (t->rank != 0) return ICS_OK;
    if (CFG_B("log.jsonl")) {
        ics_status st = ics_logger_open(&t->loggers[t->nloggers], "jsonl", t->run_dir, err);
        if (st) return st;
        t->nloggers++;
    }
    if (CFG_B("log.tensorboard")) {
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/tensorboard", t->run_dir);
        ics_status st = ics_logger_open(&t->loggers[t->nloggers], "tensorboard", dir, err);
        if (st) return st;
        t->nloggers++;
    }
    return ICS_OK;
}

ics_status ics_trainer_create(const ics_config *cfg, ics_trainer **out, ics_error *err)
{
    *out = NULL;
    ics_trainer *t = ics_calloc(1, sizeof *t, "the trainer", err);
    if (!t) return ICS_ERR_NOMEM;
    t->cfg = cfg;
    t->rank = ics_dist_rank();
    t->world = ics_dist_size();
    t->batch_size = (int)CFG_I("train.batch_size");
    t->nreplicas = (int)CFG_I("train.dp_devices");
    t->load_batch = t->batch_size * t->nreplicas;
    t->accum_steps = (int)CFG_I("train.grad_accum_steps");
    t->label_smoothing = CFG_F("train.label_smoothing");
    t->epochs = CFG_F("train.epochs");
    t->log_every = (int)CFG_I("log.every_steps");
    t->best_val_top1 = -INFINITY;
    t->best_pruned_top1 = -INFINITY;
    t->best_pruned_quantized_top1 = -INFINITY;
    t->stage = (int)CFG_I("recipe.stage") < 0 ? 0 : (int)CFG_I("recipe.stage");
    snprintf(t->run_dir, sizeof t->run_dir, "%s", CFG_S("run.dir"));
    snprintf(t->ckpt_dir, sizeof t->ckpt_dir, "%s/ckpt", t->run_dir);
    ics_train_summary *s = &t->summary;
    s->val_loss = s->val_top1 = s->val_top5 = NAN;
    s->test_loss = s->test_top1 = s->test_top5 = NAN;
    s->best_val_top1 = NAN;

    ics_status st = ICS_OK;
    if (t->rank == 0) {
        st = ics_log_mkdirs(t->run_dir, err);
        if (!st) st = ics_log_mkdirs(t->ckpt_dir, err);
    }
    st = ics_dist_agree(st, err);
    if (st) goto fail;
    /* Replicas share the process's cores: each runs its kernels on its
     * share of them (set on its own thread, see train_loop.c). */
    ics_backend_cpu_set_threads(t->nreplicas > 1 ? 1 : pick_threads(t));
    if (CFG_B("train.amp") && strcmp(CFG_S("train.device"), "cpu") == 0 && t->rank == 0)
        ICS_WARN("train.amp: mixed precision needs a GPU; training in float32 on the CPU");
    if (strcmp(CFG_S("train.device"), "cuda") == 0) {
        st = ICS_FAIL(err, ICS_ERR_NOT_IMPLEMENTED, "train.device = \"cuda\": the CUDA backend is not implemented yet");
        goto fail;
    }
    if ((st = ics_train_data_open(t, err))) goto fail;
    if ((st = build_model(t, err))) goto fail;
    if ((st = load_recipe(t, err))) goto fail;
    if ((st = build_optimizer(t, err))) goto fail;
    if ((st = build_manager(t, err))) goto fail;
    if ((st = build_ema(t, err))) goto fail;
    if ((st = ics_ddp_create(t->model, 0, &t->ddp, err))) goto fail;
    /* Overlap: buckets start as backward finishes their layers. With
     * replicas the gradients are complete only after the replicas are
     * summed, so the reduction waits for that. */
    t->ddp_overlap = t->nreplicas == 1 && t->world > 1;
    if (CFG_B("train.sync_bn") && t->world > 1) {
        if (t->nreplicas > 1) {
            st = ICS_FAIL(err, ICS_ERR_NOT_IMPLEMENTED,
                          "train.sync_bn with train.dp_devices > 1 is not implemented yet (use one replica per rank)");
            goto fail;
        }
        ics_model_set_bn_reducer(t->model, sync_bn_reduce, t);
    }
    if (t->ddp_overlap) ics_model_set_backward_hook(t->model, ddp_backward_hook, t);
    if ((st = build_replicas(t, err))) goto fail;
    t->steps_per_epoch = (t->batches_per_epoch + t->accum_steps - 1) / t->accum_steps;
    if (t->steps_per_epoch < 1) {
        st = ICS_FAIL(err, ICS_ERR_CONFIG, "the training split has fewer than one batch per rank "
                      "(train.batch_size = %d, %d ranks)", t->batch_size, t->world);
        goto fail;
    }
    long long cap = CFG_I("train.max_steps_per_epoch");
    if (cap > 0 && cap < t->steps_per_epoch) t->steps_per_epoch = cap;
    t->total_steps = (int64_t)ceil(t->epochs * (double)t->steps_per_epoch - 1e-9);

    /* Starting weights: identical on every rank (rank 0's, broadcast), then
     * a checkpoint or init_from replaces them on every rank alike. */
    if ((st = ics_ddp_broadcast_model(t->model, err))) goto fail;
    if ((st = ics_train_resume(t, err))) goto fail;
    if ((st = open_loggers(t, err))) goto fail;
    if (CFG_B("log.wandb") && t->rank == 0) t->wandb = ics_wandb_bridge_start(cfg, t->run_dir);
    st = ics_dist_agree(ICS_OK, err);
    if (st) goto fail;
    ics_preempt_install();
    *out = t;
    return ICS_OK;
fail:
    ics_dist_agree(st, NULL);
    ics_trainer_destroy(t);
    return st;
}

void ics_trainer_destroy(ics_trainer *t)
{
    if (!t) return;
    for (int i = 0; i < t->nloggers; i++) ics_logger_close(t->loggers[i], NULL);
    ics_wandb_bridge_finish(t->wandb, ICS_WANDB_FINISH_SECONDS); /* after metrics.jsonl is complete */
    ics_train_data_close(t);
    ics_ddp_destroy(t->ddp);
    ics_manager_destroy(t->manager);
    ics_recipe_destroy(t->recipe);
    ics_model_destroy(t->teacher);
    ics_ema_destroy(t->ema);
    ics_model_destroy(t->ema_model);
    ics_optim_destroy(t->optim);
    free(t->views);
    ics_model_destroy(t->model);
    for (int r = 0; r < t->nreplicas && r < ICS_MAX_REPLICAS; r++) {
        if (r > 0) ics_model_destroy(t->replicas[r].model);
        free(t->replicas[r].dlogits);
        free(t->replicas[r].probs);
    }
    free(t);
}

const ics_train_summary *ics_trainer_summary(const ics_trainer *t) { return &t->summary; }
ics_model *ics_trainer_model(ics_trainer *t) { return t->model; }
